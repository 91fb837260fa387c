//! The command line the native runtime takes: the subset of
//! `apptainer exec` that the launcher emits (L14), so that the launcher
//! plans a native launch exactly like any other.
//!
//! `[-s|--silent|-q|--quiet] exec [--bind LIST | -B LIST]… [--overlay=IMG[:ro]]… IMAGE CMD ARGS…`

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use super::NativeError;

/// One bind: `src[:dst]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bind {
    pub source: PathBuf,
    pub destination: PathBuf,
}

/// A parsed `exec` request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub binds: Vec<Bind>,
    /// In command-line order: the last one is on top.
    pub overlays: Vec<PathBuf>,
    pub image: PathBuf,
    pub command: OsString,
    pub args: Vec<OsString>,
}

fn usage(what: String) -> NativeError {
    NativeError::new(what)
        .hint("the native runtime takes: exec [--bind LIST]... [--overlay=IMAGE[:ro]]... BASE COMMAND [ARGS...]")
}

pub fn parse(args: &[OsString]) -> Result<Request, NativeError> {
    let mut rest = args.iter();
    loop {
        match rest.next().map(|a| a.as_bytes()) {
            Some(b"-s" | b"--silent" | b"-q" | b"--quiet") => continue,
            Some(b"exec") => break,
            Some(other) => return Err(usage(format!("unsupported argument {:?}", OsStr::from_bytes(other)))),
            None => return Err(usage("no subcommand".into())),
        }
    }
    let mut binds = Vec::new();
    let mut overlays = Vec::new();
    let image = loop {
        let Some(arg) = rest.next() else {
            return Err(usage("no base image".into()));
        };
        let bytes = arg.as_bytes();
        let value = |rest: &mut std::slice::Iter<OsString>, flag: &str| {
            rest.next()
                .map(|v| v.as_bytes().to_vec())
                .ok_or_else(|| usage(format!("{flag} needs a value")))
        };
        if bytes == b"--bind" || bytes == b"-B" {
            binds.extend(parse_binds(&value(&mut rest, "--bind")?)?);
        } else if let Some(list) = bytes.strip_prefix(b"--bind=") {
            binds.extend(parse_binds(list)?);
        } else if bytes == b"--overlay" {
            overlays.push(parse_overlay(&value(&mut rest, "--overlay")?)?);
        } else if let Some(path) = bytes.strip_prefix(b"--overlay=") {
            overlays.push(parse_overlay(path)?);
        } else if bytes.starts_with(b"-") {
            return Err(
                NativeError::new(format!("exec flag {:?} is not supported by the native runtime", arg))
                    .hint("remove it from runtime.exec_flags, or use Apptainer/SingularityCE (runtime.flavour)"),
            );
        } else {
            break PathBuf::from(arg);
        }
    };
    let command = rest.next().cloned().ok_or_else(|| usage("no command".into()))?;
    Ok(Request {
        binds,
        overlays,
        image,
        command,
        args: rest.cloned().collect(),
    })
}

fn parse_overlay(value: &[u8]) -> Result<PathBuf, NativeError> {
    let path = value.strip_suffix(b":ro").unwrap_or(value);
    if path.is_empty() || path.contains(&b':') || !path.starts_with(b"/") {
        return Err(usage(format!(
            "--overlay {:?}: an absolute image path, optionally with ':ro'",
            OsStr::from_bytes(value)
        )));
    }
    Ok(PathBuf::from(OsStr::from_bytes(path)))
}

fn parse_binds(list: &[u8]) -> Result<Vec<Bind>, NativeError> {
    list.split(|&b| b == b',')
        .filter(|entry| !entry.is_empty())
        .map(|entry| {
            let parts: Vec<&[u8]> = entry.split(|&b| b == b':').collect();
            let (source, destination) = match parts.as_slice() {
                [src] => (*src, *src),
                [src, dst] => (*src, *dst),
                _ => {
                    return Err(usage(format!(
                        "--bind {:?}: bind options are not supported",
                        OsStr::from_bytes(entry)
                    )))
                }
            };
            if !source.starts_with(b"/") || !destination.starts_with(b"/") {
                return Err(usage(format!(
                    "--bind {:?}: paths must be absolute",
                    OsStr::from_bytes(entry)
                )));
            }
            Ok(Bind {
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
    fn native_parses_what_the_launcher_emits() {
        let r = parse(&args(&[
            "-s",
            "exec",
            "--bind",
            "/a,/b:/c",
            "--overlay=/e.sqsh:ro",
            "--overlay=/f.sqsh",
            "/base",
            "cmd",
            "--bind",
            "x",
        ]))
        .unwrap();
        assert_eq!(r.binds.len(), 2);
        assert_eq!(r.binds[1].destination, PathBuf::from("/c"));
        assert_eq!(r.overlays, [PathBuf::from("/e.sqsh"), PathBuf::from("/f.sqsh")]);
        assert_eq!(r.image, PathBuf::from("/base"));
        assert_eq!(r.command, OsString::from("cmd"));
        assert_eq!(r.args, args(&["--bind", "x"]));
    }

    #[test]
    fn native_refuses_what_it_does_not_do() {
        for bad in [
            &["exec", "--nv", "/base", "cmd"][..],
            &["run", "/base"],
            &["exec", "/base"],
            &["exec", "--bind", "/a:/b:ro", "/base", "cmd"],
            &["exec", "--overlay=rel.sqsh", "/base", "cmd"],
            &["exec", "--overlay=/x.img:rw", "/base", "cmd"],
        ] {
            let err = parse(&args(bad)).unwrap_err();
            assert!(!err.to_string().is_empty(), "{bad:?}");
        }
    }
}
