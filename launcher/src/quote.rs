//! Shell quoting for `--dry-run` and `LAUNCHER_DEBUG` output (L17): what is
//! printed can be pasted into bash and runs the same command, byte for byte.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;

/// One word, quoted for a POSIX shell; bytes that are not printable UTF-8
/// (and newlines) use bash's `$'…'` form so they survive a paste.
pub fn quote(word: &OsStr) -> String {
    match word.to_str() {
        Some(text) if !text.chars().any(|c| c.is_control()) => shell_words::quote(text).into_owned(),
        _ => ansi_c_quote(word.as_bytes()),
    }
}

fn ansi_c_quote(bytes: &[u8]) -> String {
    let mut out = String::from("$'");
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\'' => out.push_str("\\'"),
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\t' => out.push_str("\\t"),
                c if c.is_control() => {
                    let mut buf = [0u8; 4];
                    for b in c.encode_utf8(&mut buf).bytes() {
                        out.push_str(&format!("\\x{b:02x}"));
                    }
                }
                c => out.push(c),
            }
        }
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out.push('\'');
    out
}

/// `NAME=VALUE` as a shell assignment prefix.
pub fn assignment(name: &OsStr, value: &OsStr) -> String {
    format!("{}={}", name.to_string_lossy(), quote(value))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsString;
    use std::os::unix::ffi::OsStringExt;
    use std::process::Command;

    /// The quoted word, read back by a real bash, gives the original bytes.
    fn bash_round_trip(word: &OsStr) -> Vec<u8> {
        let script = format!("printf '%s' {}", quote(word));
        Command::new("bash").arg("-c").arg(script).output().unwrap().stdout
    }

    #[test]
    fn l17_plain_words_stay_readable() {
        assert_eq!(quote(OsStr::new("/usr/bin/python3")), "/usr/bin/python3");
        assert_eq!(quote(OsStr::new("a b")), "'a b'");
        assert_eq!(quote(OsStr::new("")), "''");
    }

    #[test]
    fn l17_l20_quoted_words_survive_bash() {
        let words: Vec<OsString> = vec![
            "a b".into(),
            "it's \"q\" $HOME * ?".into(),
            "line\nbreak\ttab".into(),
            "".into(),
            OsString::from_vec(vec![b'x', 0xff, 0xfe, b'\'', b'\\']),
            "ünïcødé".into(),
        ];
        for w in words {
            assert_eq!(bash_round_trip(&w), w.as_bytes(), "{w:?} -> {}", quote(&w));
        }
    }
}
