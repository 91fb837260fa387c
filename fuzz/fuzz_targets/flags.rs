//! Direct-mode flag parser (L4): total, and the command's own arguments are
//! never touched. Input: NUL-separated arguments.
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;

fuzz_target!(|data: &[u8]| {
    let args: Vec<OsString> = data.split(|&b| b == 0).map(|a| OsString::from_vec(a.to_vec())).collect();
    if let Ok(call) = launcher::flags::parse_direct(&args) {
        if let Some(command) = &call.command {
            let at = args.iter().position(|a| a == command).unwrap();
            assert_eq!(&call.args[..], &args[at + 1..]);
        }
    }
});
