//! The JSON hand-off between the runtime's command line and its starter.
//!
//! Apptainer and SingularityCE `json.Marshal` the whole engine config,
//! `Process.Args` and `Process.Env` included, into the starter's environment
//! (`internal/pkg/util/starter/starter.go`). Go's `encoding/json` replaces
//! every byte that is not part of valid UTF-8 with U+FFFD, one replacement
//! per bad byte (`utf8.DecodeRune` returns width 1 for an invalid byte). So
//! the program in the container never sees non-UTF-8 bytes in its
//! arguments or environment (runtime-semantics.md §6, row 6c/2j).

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;

/// `bytes` as they come out of a Go JSON round trip.
pub fn json_round_trip(bytes: &OsStr) -> OsString {
    let mut rest = bytes.as_bytes();
    let mut out = String::with_capacity(rest.len());
    loop {
        match std::str::from_utf8(rest) {
            Ok(valid) => {
                out.push_str(valid);
                return OsString::from(out);
            }
            Err(error) => {
                let valid = error.valid_up_to();
                out.push_str(std::str::from_utf8(&rest[..valid]).unwrap_or_default());
                out.push(char::REPLACEMENT_CHARACTER);
                rest = &rest[valid + 1..];
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starter_go_json_replaces_each_invalid_byte() {
        // runtime-semantics.md §6: `latin\xe9\xff\xfe` arrives as three U+FFFD.
        let out = json_round_trip(OsStr::from_bytes(b"latin\xe9\xff\xfe"));
        assert_eq!(out, OsString::from("latin\u{FFFD}\u{FFFD}\u{FFFD}"));
        // A truncated 3-byte sequence is two bad bytes, as Go decodes them.
        let out = json_round_trip(OsStr::from_bytes(b"\xe2\x82A"));
        assert_eq!(out, OsString::from("\u{FFFD}\u{FFFD}A"));
        // Valid text, empty strings, newlines and `$` survive.
        for ok in ["", "two words", "line1\nline2", "$HOME", "é"] {
            assert_eq!(json_round_trip(OsStr::new(ok)), OsString::from(ok));
        }
    }
}
