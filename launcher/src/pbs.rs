//! The `pbs_tmrsh` builtin (L16).
//!
//! MPI starts ranks on other nodes through PBS's `pbs_tmrsh`, and the remote
//! side starts with none of the user's environment. The builtin rewrites the
//! remote command so that it goes through this env's launcher again, with the
//! same runtime, images and `PATH` spelled out as flags.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// `pbs_tmrsh [-n] [-l USER | -lUSER] HOST [-n] [-l USER] CMD ARGS…`, split.
#[derive(Debug, Clone, PartialEq)]
pub struct PbsCall {
    /// `-n`, `-l USER`, `-lUSER` exactly as given (before and after HOST).
    pub options: Vec<OsString>,
    pub host: OsString,
    /// CMD and its arguments.
    pub command: Vec<OsString>,
}

/// Parse the arguments after `argv[0]`; `None` when they do not have the
/// documented shape (then the real `pbs_tmrsh` gets them untouched and
/// reports the problem itself).
pub fn parse(args: &[OsString]) -> Option<PbsCall> {
    let mut options = Vec::new();
    let mut rest = args;
    let mut host = None;
    loop {
        let (first, tail) = rest.split_first()?;
        let bytes = first.as_bytes();
        if bytes == b"-n" {
            options.push(first.clone());
            rest = tail;
        } else if bytes == b"-l" {
            let (user, tail) = tail.split_first()?;
            options.push(first.clone());
            options.push(user.clone());
            rest = tail;
        } else if bytes.starts_with(b"-l") {
            options.push(first.clone());
            rest = tail;
        } else if host.is_none() && !bytes.starts_with(b"-") {
            host = Some(first.clone());
            rest = tail;
        } else if host.is_some() {
            break;
        } else {
            return None;
        }
    }
    if rest.is_empty() {
        return None;
    }
    Some(PbsCall {
        options,
        host: host?,
        command: rest.to_vec(),
    })
}

/// What the remote launcher needs to rebuild the same container.
pub struct Remote<'a> {
    /// `<scripts>/<env>.d/bin/launcher`.
    pub launcher: &'a Path,
    pub runtime: Option<&'a Path>,
    pub overlay_path: &'a OsStr,
    pub path: Option<&'a OsStr>,
}

/// The arguments for the real `pbs_tmrsh` (after its `argv[0]`).
pub fn remote_args(call: &PbsCall, remote: &Remote) -> Vec<OsString> {
    let mut out = call.options.clone();
    out.push(call.host.clone());
    out.push(remote.launcher.into());
    if let Some(runtime) = remote.runtime {
        out.push("--runtime".into());
        out.push(runtime.into());
    }
    out.push("--launcher".into());
    out.push(remote.launcher.into());
    out.push("--overlay-path".into());
    out.push(remote.overlay_path.into());
    if let Some(path) = remote.path {
        out.push("--path".into());
        out.push(path.into());
    }
    out.push("--".into());
    match shell_line(&call.command) {
        // What ssh would do with it: the remote shell reads the words joined.
        Some(line) => out.extend([OsString::from("/bin/sh"), OsString::from("-c"), line]),
        None => out.extend(call.command.iter().cloned()),
    }
    out
}

/// The remote command when it is written for a shell, as OpenMPI writes it
/// for any rsh agent (`PATH=…:$PATH ; export PATH ; … orted …`, or ` orted`
/// with a leading space under `--noprefix`): the words joined by spaces, as
/// ssh would hand them to the remote shell. `None` for a plain command,
/// which keeps its exact arguments (L20).
pub fn shell_line(command: &[OsString]) -> Option<OsString> {
    let first = command.first()?.as_bytes();
    let assignment = first.iter().position(|&b| b == b'=').is_some_and(|eq| {
        eq > 0 && !first[0].is_ascii_digit() && first[..eq].iter().all(|b| b.is_ascii_alphanumeric() || *b == b'_')
    });
    let separator = command.iter().any(|w| {
        let w = w.as_bytes();
        matches!(w, b";" | b"&&" | b"||" | b"|") || w.ends_with(b";")
    });
    let leading_space = first.first().is_some_and(u8::is_ascii_whitespace);
    if !(assignment || separator || leading_space) {
        return None;
    }
    let mut line = OsString::new();
    for (i, word) in command.iter().enumerate() {
        if i > 0 {
            line.push(" ");
        }
        line.push(word);
    }
    Some(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(args: &[&str]) -> Vec<OsString> {
        args.iter().map(OsString::from).collect()
    }

    #[test]
    fn l16_openmpis_shell_lines_run_through_a_shell() {
        // OpenMPI's automatic --prefix, and --noprefix's leading space.
        let prefixed = os(&[
            "PATH=/s/e.d/bin:$PATH",
            ";",
            "export",
            "PATH",
            ";",
            "/s/e.d/bin/orted",
            "-mca",
            "x",
            "\"1\"",
        ]);
        assert_eq!(
            shell_line(&prefixed).unwrap(),
            "PATH=/s/e.d/bin:$PATH ; export PATH ; /s/e.d/bin/orted -mca x \"1\""
        );
        assert!(shell_line(&os(&[" orted", "-mca", "x"])).is_some());
        let call = parse(&os(&["node1", " orted", "-mca"])).unwrap();
        let remote = Remote {
            launcher: Path::new("/s/e.d/bin/launcher"),
            runtime: None,
            overlay_path: OsStr::new(""),
            path: None,
        };
        let args = remote_args(&call, &remote);
        assert_eq!(args[args.len() - 3..], os(&["/bin/sh", "-c", " orted -mca"]));
        // Plain commands keep their exact words.
        for plain in [
            &["hostname", "-f"][..],
            &["python3", "-c", "a=1; print(a)"],
            &["/bin/echo", "x=y"],
        ] {
            assert_eq!(shell_line(&os(plain)), None, "{plain:?}");
        }
    }

    #[test]
    fn l16_options_before_and_after_host() {
        let call = parse(&os(&["-n", "-l", "user", "node1", "-n", "-luser2", "hostname", "-f"])).unwrap();
        assert_eq!(call.options, os(&["-n", "-l", "user", "-n", "-luser2"]));
        assert_eq!(call.host, "node1");
        assert_eq!(call.command, os(&["hostname", "-f"]));
    }

    #[test]
    fn l16_command_arguments_that_look_like_options_stay() {
        let call = parse(&os(&["node1", "ls", "-l", "-n"])).unwrap();
        assert!(call.options.is_empty());
        assert_eq!(call.command, os(&["ls", "-l", "-n"]));
    }

    #[test]
    fn l16_malformed_is_none() {
        assert_eq!(parse(&os(&[])), None);
        assert_eq!(parse(&os(&["node1"])), None);
        assert_eq!(parse(&os(&["-l"])), None);
        assert_eq!(parse(&os(&["-x", "node1", "cmd"])), None);
    }

    #[test]
    fn l16_remote_args_shape() {
        let call = parse(&os(&["-l", "u", "node1", "python3", "-c", "x"])).unwrap();
        let remote = Remote {
            launcher: Path::new("/s/e-1.d/bin/launcher"),
            runtime: Some(Path::new("/usr/bin/apptainer")),
            overlay_path: OsStr::new("/a.sqsh"),
            path: Some(OsStr::new("/p:/q")),
        };
        assert_eq!(
            remote_args(&call, &remote),
            os(&[
                "-l",
                "u",
                "node1",
                "/s/e-1.d/bin/launcher",
                "--runtime",
                "/usr/bin/apptainer",
                "--launcher",
                "/s/e-1.d/bin/launcher",
                "--overlay-path",
                "/a.sqsh",
                "--path",
                "/p:/q",
                "--",
                "python3",
                "-c",
                "x",
            ])
        );
    }
}
