//! pbs_tmrsh argument parser (L16): total, and the remote command always
//! ends with the original CMD ARGS. Input: NUL-separated arguments.
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStringExt;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let args: Vec<OsString> = data.split(|&b| b == 0).map(|a| OsString::from_vec(a.to_vec())).collect();
    if let Some(call) = launcher::pbs::parse(&args) {
        assert!(args.ends_with(&call.command));
        let remote = launcher::pbs::Remote {
            launcher: Path::new("/s/e.d/bin/launcher"),
            runtime: None,
            overlay_path: OsStr::new(""),
            path: None,
        };
        assert!(launcher::pbs::remote_args(&call, &remote).ends_with(&call.command));
    }
});
