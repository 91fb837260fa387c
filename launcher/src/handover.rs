//! What the outside hop hands to the inside hop through the runtime.
//!
//! A real runtime changes what it carries (runtime-semantics.md §2, §6):
//! every `<PREFIX>NAME` value is evaluated once as shell text, plain host
//! variables vanish under `--cleanenv`/`--containall` (or
//! `APPTAINER_CLEANENV=1`), and its JSON hand-off turns bytes that are not
//! UTF-8 into U+FFFD. The launcher owns both hops, so it protects what it
//! sends:
//!
//! - every prefixed value is escaped so that the one evaluation gives it
//!   back verbatim (`escape_for_eval`), unless the runtime was told
//!   `--no-eval`;
//! - what the inside hop needs (the depth counter, the env the outside hop
//!   mounted, the overlay list) travels with the prefix, which survives
//!   `--cleanenv`;
//! - arguments that are not UTF-8 also travel hex-encoded (`encode_args`),
//!   and the inside hop restores them (`decode_args`) (L20).

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};

/// The L21 counter.
pub const DEPTH_VAR: &str = "LAUNCHER_DEPTH";
/// The env whose image the outside hop mounted (L2: the inside hop uses it
/// even if an alias moved in between).
pub const MOUNTED_ENV_VAR: &str = "LAUNCHER_MOUNTED_ENV";
/// The overlay list the container was started with, `:`-separated, for
/// `pbs_tmrsh` inside (L16).
pub const OVERLAYS_VAR: &str = "LAUNCHER_OVERLAYS";
/// The inside hop's arguments, hex-encoded, NUL-separated (L20).
pub const ARGV_VAR: &str = "LAUNCHER_ARGV_HEX";

/// `value` such that a shell's double-quoted evaluation gives it back:
/// `\`, `$` and `` ` `` get a backslash. `"` does not: the runtimes escape
/// it themselves (`shell.EscapeDoubleQuotes`).
pub fn escape_for_eval(value: &OsStr) -> OsString {
    let bytes = value.as_bytes();
    if !bytes.iter().any(|b| matches!(b, b'\\' | b'$' | b'`')) {
        return value.to_os_string();
    }
    let mut out = Vec::with_capacity(bytes.len() + 8);
    for &b in bytes {
        if matches!(b, b'\\' | b'$' | b'`') {
            out.push(b'\\');
        }
        out.push(b);
    }
    OsString::from_vec(out)
}

/// `Some(hex)` when any of `args` is not UTF-8 and so would be changed by
/// the runtime's JSON hand-off; `None` when all would arrive intact.
pub fn encode_args(args: &[OsString]) -> Option<OsString> {
    if args.iter().all(|a| a.to_str().is_some()) {
        return None;
    }
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = Vec::new();
    for (i, arg) in args.iter().enumerate() {
        if i > 0 {
            out.extend_from_slice(b"00");
        }
        for &b in arg.as_bytes() {
            out.push(HEX[usize::from(b >> 4)]);
            out.push(HEX[usize::from(b & 15)]);
        }
    }
    Some(OsString::from_vec(out))
}

/// The arguments `encode_args` encoded, if `hex` is well formed and fits
/// what arrived: as many arguments, and every UTF-8 one unchanged (a
/// runtime only replaces bytes that are not UTF-8). Anything else means the
/// variable is not for this call, and it is ignored.
pub fn decode_args(hex: &OsStr, received: &[OsString]) -> Option<Vec<OsString>> {
    let bytes = hex.as_bytes();
    if bytes.len() & 1 != 0 {
        return None;
    }
    let mut args: Vec<OsString> = Vec::new();
    let mut current = Vec::new();
    for pair in bytes.chunks(2) {
        let byte = (hex_value(pair[0])? << 4) | hex_value(pair[1])?;
        if byte == 0 {
            args.push(OsString::from_vec(std::mem::take(&mut current)));
        } else {
            current.push(byte);
        }
    }
    args.push(OsString::from_vec(current));
    let fits = args.len() == received.len()
        && args
            .iter()
            .zip(received)
            .all(|(sent, got)| sent.to_str().is_none() || sent == got);
    fits.then_some(args)
}

fn hex_value(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(list: &[&[u8]]) -> Vec<OsString> {
        list.iter().map(|b| OsString::from_vec(b.to_vec())).collect()
    }

    #[test]
    fn l13_escaped_values_survive_one_double_quoted_evaluation() {
        // What `export K="<escaped, with runtime's \" escaping>"` gives back, checked with a real sh.
        for value in [
            "plain",
            "$HOME",
            "a`id`b",
            "back\\slash",
            "ends\\",
            "say \"hi\"",
            "$(x",
            "\\\"",
            "\n",
        ] {
            let escaped = escape_for_eval(OsStr::new(value));
            let mut script = b"printf %s \"".to_vec();
            for &b in escaped.as_bytes() {
                if b == b'"' {
                    script.push(b'\\');
                }
                script.push(b);
            }
            script.push(b'"');
            let out = std::process::Command::new("/bin/sh")
                .arg("-c")
                .arg(OsStr::from_bytes(&script))
                .output()
                .expect("sh");
            assert_eq!(String::from_utf8_lossy(&out.stdout), value, "value {value:?}");
        }
    }

    #[test]
    fn l20_args_round_trip_only_when_needed() {
        assert_eq!(encode_args(&os(&[b"a", b"b c"])), None);
        for args in [
            os(&[b"latin\xe9\xff\xfe"]),
            os(&[b"\xff", b"", b"x"]),
            os(&[b"", b"\xfe"]),
            os(&[b"\xff", b""]),
        ] {
            let hex = encode_args(&args).expect("needs encoding");
            assert!(hex.to_str().unwrap().bytes().all(|b| b.is_ascii_hexdigit()));
            let received: Vec<OsString> = args
                .iter()
                .map(|a| OsString::from(String::from_utf8_lossy(a.as_bytes()).into_owned()))
                .collect();
            assert_eq!(decode_args(&hex, &received), Some(args.clone()));
        }
    }

    #[test]
    fn l20_a_stale_encoding_is_ignored() {
        let hex = encode_args(&os(&[b"\xff", b"x"])).unwrap();
        assert_eq!(decode_args(&hex, &os(&[b"?", b"y"])), None, "UTF-8 argument differs");
        assert_eq!(decode_args(&hex, &os(&[b"?"])), None, "count differs");
        assert_eq!(decode_args(OsStr::new("zz"), &os(&[b"?"])), None, "not hex");
        assert_eq!(decode_args(OsStr::new("abc"), &os(&[b"?"])), None, "odd length");
    }
}
