//! pbs_tmrsh argument parser (L16): total, and the remote command always
//! ends with the original CMD ARGS — or, when they are written for a shell
//! (OpenMPI's lines, `pbs::shell_line`), with `/bin/sh -c` and the words
//! joined by spaces, as ssh would hand them to the remote shell. Input:
//! NUL-separated arguments.
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let args: Vec<OsString> = data
        .split(|&b| b == 0)
        .map(|a| OsString::from_vec(a.to_vec()))
        .collect();
    if let Some(call) = launcher::pbs::parse(&args) {
        assert!(args.ends_with(&call.command));
        let remote = launcher::pbs::Remote {
            launcher: Path::new("/s/e.d/bin/launcher"),
            runtime: None,
            overlay_path: OsStr::new(""),
            path: None,
        };
        let out = launcher::pbs::remote_args(&call, &remote);
        let tail: Vec<OsString> = match launcher::pbs::shell_line(&call.command) {
            Some(line) => {
                let words: Vec<&[u8]> = call.command.iter().map(|w| w.as_bytes()).collect();
                assert_eq!(line.as_bytes(), words.join(&b' ').as_slice());
                vec!["/bin/sh".into(), "-c".into(), line]
            }
            None => call.command.clone(),
        };
        assert!(out.ends_with(&tail));
        // The options and the host first, unchanged; `--` before the command.
        assert!(out.starts_with(&call.options));
        assert_eq!(out[call.options.len()], call.host);
        assert_eq!(out[out.len() - tail.len() - 1], "--");
    }
});
