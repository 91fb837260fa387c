//! The command line the stand-in accepts: the subset of `singularity exec`
//! that the launcher emits (L14), and nothing else.
//!
//! `[-s|--silent] exec [EXEC FLAGS] [--bind LIST]… [--overlay=P[:ro] | --overlay P[:ro]]… IMAGE CMD ARGS…`
//!
//! Exec flags modelled: `-e/--cleanenv`, `-C/--containall`, `-c/--contain`,
//! `--no-eval`, and `--nv`/`--rocm` (accepted; no GPU libraries exist here).
//! Anything outside that subset is rejected, so a launcher that starts
//! relying on a flag the stand-in does not model fails loudly instead of
//! being silently "supported".

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

/// One `--bind` entry: `src[:dst]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindSpec {
    pub source: PathBuf,
    pub destination: PathBuf,
}

/// A parsed `exec` request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecRequest {
    pub binds: Vec<BindSpec>,
    /// In command-line order: the last one ends up on top.
    pub overlays: Vec<PathBuf>,
    pub image: PathBuf,
    pub command: OsString,
    pub args: Vec<OsString>,
    /// `--cleanenv` (or implied by `--containall`): plain host variables dropped.
    pub cleanenv: bool,
    /// `--contain` (or implied by `--containall`): no host `$HOME`, `/tmp`, cwd.
    pub contain: bool,
    /// `--no-eval`: prefixed values are single-quoted, not evaluated.
    pub no_eval: bool,
}

pub const USAGE: &str =
    "usage: [-s|--silent] exec [-e|-c|-C|--no-eval|--nv|--rocm]... [--bind LIST]... [--overlay=IMG[:ro]]... IMAGE COMMAND [ARGS...]";

/// Parse the runtime's arguments (without argv[0]).
pub fn parse(args: &[OsString]) -> Result<ExecRequest, String> {
    let mut rest = args.iter();
    // Global flags, then the subcommand.
    loop {
        match rest.next().map(|a| a.as_bytes()) {
            Some(b"-s") | Some(b"--silent") => continue,
            Some(b"exec") => break,
            Some(other) if other.starts_with(b"-") => {
                return Err(format!(
                    "unknown global flag {:?} (the stand-in models only -s/--silent)",
                    OsStr::from_bytes(other)
                ))
            }
            Some(other) => {
                return Err(format!(
                    "unsupported subcommand {:?} (the stand-in models only `exec`)",
                    OsStr::from_bytes(other)
                ))
            }
            None => return Err(format!("no subcommand; {USAGE}")),
        }
    }

    let mut binds = Vec::new();
    let mut overlays = Vec::new();
    let (mut cleanenv, mut contain, mut no_eval) = (false, false, false);
    let image = loop {
        let Some(arg) = rest.next() else {
            return Err(format!("exec: no image given; {USAGE}"));
        };
        let bytes = arg.as_bytes();
        if bytes == b"--bind" {
            let list = rest.next().ok_or("exec: --bind needs a value")?;
            binds.extend(parse_bind_list(list.as_bytes())?);
        } else if let Some(list) = bytes.strip_prefix(b"--bind=") {
            binds.extend(parse_bind_list(list)?);
        } else if bytes == b"--overlay" {
            let path = rest.next().ok_or("exec: --overlay needs a value")?;
            overlays.push(parse_overlay(path.as_bytes())?);
        } else if let Some(path) = bytes.strip_prefix(b"--overlay=") {
            overlays.push(parse_overlay(path)?);
        } else if bytes == b"-B" {
            let list = rest.next().ok_or("exec: -B needs a value")?;
            binds.extend(parse_bind_list(list.as_bytes())?);
        } else if bytes == b"-e" || bytes == b"--cleanenv" {
            cleanenv = true;
        } else if bytes == b"-c" || bytes == b"--contain" {
            contain = true;
        } else if bytes == b"-C" || bytes == b"--containall" {
            // contain + cleanenv (+ PID/IPC namespaces, not modelled: docs/testing.md).
            contain = true;
            cleanenv = true;
        } else if bytes == b"--no-eval" {
            no_eval = true;
        } else if bytes == b"--nv" || bytes == b"--rocm" {
            // No GPU here: the real runtimes warn that no driver files were
            // found and go on, which is what the stand-in does (silently).
        } else if bytes.starts_with(b"-") {
            return Err(format!(
                "exec: unknown flag {arg:?} (the stand-in models only --bind, --overlay, \
                 -e/--cleanenv, -c/--contain, -C/--containall, --no-eval, --nv, --rocm)"
            ));
        } else {
            break PathBuf::from(arg);
        }
    };
    let command = rest
        .next()
        .cloned()
        .ok_or_else(|| format!("exec: no command to run in image {}; {USAGE}", image.display()))?;
    Ok(ExecRequest {
        binds,
        overlays,
        image,
        command,
        args: rest.cloned().collect(),
        cleanenv,
        contain,
        no_eval,
    })
}

fn parse_overlay(path: &[u8]) -> Result<PathBuf, String> {
    if path.is_empty() {
        return Err("exec: empty --overlay value".into());
    }
    // `IMG:ro` is what both runtimes accept for a squashfs overlay (always
    // mounted read-only anyway); other options are not modelled.
    let image = path.strip_suffix(b":ro").unwrap_or(path);
    if image.contains(&b':') || image.is_empty() {
        return Err(format!(
            "exec: --overlay {:?}: only the ':ro' option is modelled",
            OsStr::from_bytes(path)
        ));
    }
    Ok(PathBuf::from(OsStr::from_bytes(image)))
}

/// `src[:dst],src[:dst],…`
fn parse_bind_list(list: &[u8]) -> Result<Vec<BindSpec>, String> {
    list.split(|&b| b == b',')
        .map(|entry| {
            let shown = OsStr::from_bytes(entry);
            let parts: Vec<&[u8]> = entry.split(|&b| b == b':').collect();
            let (source, destination) = match parts.as_slice() {
                [src] => (*src, *src),
                [src, dst] => (*src, *dst),
                _ => {
                    return Err(format!(
                        "exec: --bind entry {shown:?}: bind options (src:dst:opts) are not modelled"
                    ))
                }
            };
            if !source.starts_with(b"/") || !destination.starts_with(b"/") {
                return Err(format!(
                    "exec: --bind entry {shown:?}: source and destination must be absolute paths"
                ));
            }
            Ok(BindSpec {
                source: PathBuf::from(OsStr::from_bytes(source)),
                destination: PathBuf::from(OsStr::from_bytes(destination)),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<OsString> {
        list.iter().map(OsString::from).collect()
    }

    #[test]
    fn full_subset_parses_in_order() {
        let request = parse(&args(&[
            "-s",
            "exec",
            "--bind",
            "/a,/b:/c",
            "--bind=/d",
            "--overlay=/1.sqsh",
            "--overlay",
            "/2.sqsh:ro",
            "/base",
            "cmd",
            "--overlay",
            "",
        ]))
        .unwrap();
        assert_eq!(
            request.overlays,
            vec![PathBuf::from("/1.sqsh"), PathBuf::from("/2.sqsh")]
        );
        assert_eq!(
            request.binds,
            vec![
                BindSpec {
                    source: "/a".into(),
                    destination: "/a".into()
                },
                BindSpec {
                    source: "/b".into(),
                    destination: "/c".into()
                },
                BindSpec {
                    source: "/d".into(),
                    destination: "/d".into()
                },
            ]
        );
        assert_eq!(request.image, PathBuf::from("/base"));
        assert_eq!(request.command, OsString::from("cmd"));
        // Arguments after the command are never flags of the runtime.
        assert_eq!(request.args, args(&["--overlay", ""]));
        assert!(!request.cleanenv && !request.contain && !request.no_eval);
    }

    #[test]
    fn exec_flags_cleanenv_containall_no_eval() {
        // action_flags.go: -e/--cleanenv, -c/--contain, -C/--containall (= contain + cleanenv + …).
        let request = parse(&args(&["exec", "-C", "--nv", "/base", "cmd"])).unwrap();
        assert!(request.cleanenv && request.contain && !request.no_eval);
        let request = parse(&args(&["exec", "--cleanenv", "--no-eval", "/base", "cmd"])).unwrap();
        assert!(request.cleanenv && !request.contain && request.no_eval);
    }

    #[test]
    fn rejects_what_is_not_modelled() {
        for bad in [
            &["exec", "--writable", "/base", "cmd"][..],
            &["--debug", "exec", "/base", "cmd"],
            &["run", "/base"],
            &["exec", "/base"],
            &["exec"],
            &[],
            &["exec", "--bind", "/a:/b:ro", "/base", "cmd"],
            &["exec", "--bind", "relative", "/base", "cmd"],
            &["exec", "--overlay=/x.img:rw", "/base", "cmd"],
            &["exec", "--overlay=:ro", "/base", "cmd"],
            &["exec", "--overlay"],
        ] {
            assert!(parse(&args(bad)).is_err(), "{bad:?} was accepted");
        }
    }
}
