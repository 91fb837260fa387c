//! launcher.toml and env.toml parsers: any bytes give a value or a
//! one-line error, never a panic (L19).
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    if let Err(e) = launcher::config::Config::parse(data, Path::new("/f/launcher.toml")) {
        assert!(!e.to_string().contains('\n'));
    }
    let _ = launcher::config::EnvFacts::parse(data, Path::new("/f/env.toml"));
});
