//! Direct-mode flag parser (L4): total, and the command's own arguments are
//! never touched. Input: NUL-separated arguments.
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;

fuzz_target!(|data: &[u8]| {
    let args: Vec<OsString> = data
        .split(|&b| b == 0)
        .map(|a| OsString::from_vec(a.to_vec()))
        .collect();
    if let Ok(call) = launcher::flags::parse_direct(&args) {
        // The command and its arguments are the tail of the input, as given;
        // what comes before is flags alone: read on their own they give the
        // same flags and no command. (Not "the first argument equal to the
        // command": in `--path '' ''` that is the value of --path.)
        match &call.command {
            Some(command) => {
                let at = args
                    .len()
                    .checked_sub(call.args.len() + 1)
                    .expect("more arguments than given");
                assert_eq!(&args[at], command);
                assert_eq!(&call.args[..], &args[at + 1..]);
                let flags = launcher::flags::parse_direct(&args[..at]).expect("the flags alone parse");
                assert_eq!(flags.flags, call.flags);
                assert_eq!(flags.command, None);
            }
            None => assert!(call.args.is_empty()),
        }
    }
});
