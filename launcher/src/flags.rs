//! The launcher's own flags (L4), read only in direct mode and only before
//! the command. A symlinked command's arguments are never looked at.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use crate::error::LaunchError;

/// Flags given to a direct call (`launcher [FLAGS] CMD ARGS…`).
#[derive(Debug, Default, Clone, PartialEq)]
pub struct DirectFlags {
    /// Do not add the env's own image (L11).
    pub no_default_overlay: bool,
    /// Replaces `CONTAINER_OVERLAY_PATH`.
    pub overlay_path: Option<OsString>,
    /// The `PATH` to use.
    pub path: Option<OsString>,
    /// Path of the launcher that remote calls go back to (L16); recorded for
    /// callbacks, since direct mode is already known by the time flags are read.
    pub launcher: Option<PathBuf>,
    /// Container runtime binary (L9).
    pub runtime: Option<PathBuf>,
    /// Environment for a direct call of the top-level launcher (L3).
    pub env: Option<String>,
    pub dry_run: bool,
    pub help: bool,
    pub version: bool,
}

/// A direct call, split into flags, command and its arguments.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct DirectCall {
    pub flags: DirectFlags,
    pub command: Option<OsString>,
    pub args: Vec<OsString>,
}

/// Which field a value-taking flag fills.
#[derive(Clone, Copy)]
enum ValueFlag {
    OverlayPath,
    Path,
    Launcher,
    Runtime,
    Env,
}

/// Every spelling that takes a value: legacy (what remote nodes may still
/// receive from old override scripts) and clean.
const VALUE_FLAGS: &[(&str, ValueFlag)] = &[
    ("--cms_singularity_overlay_path", ValueFlag::OverlayPath),
    ("--overlay-path", ValueFlag::OverlayPath),
    ("--cms_singularity_in_container_path", ValueFlag::Path),
    ("--path", ValueFlag::Path),
    ("--cms_singularity_launcher_override", ValueFlag::Launcher),
    ("--launcher", ValueFlag::Launcher),
    ("--cms_singularity_singularity_path", ValueFlag::Runtime),
    ("--runtime", ValueFlag::Runtime),
    ("--env", ValueFlag::Env),
];

pub const USAGE: &str = "\
usage: launcher [FLAGS] COMMAND [ARGS...]
Run COMMAND inside the environment's container (outside), or directly (inside).
flags (only before COMMAND; `--` ends them):
  --env NAME             environment (default: the link's env, or default_env)
  --no-default-overlay   do not add the env's own image
  --overlay-path P       colon list replacing CONTAINER_OVERLAY_PATH
  --path P               the PATH to use
  --runtime P            container runtime binary
  --launcher P           launcher path used for remote callbacks
  --dry-run              print the command that would run, and exit
  --help, --version
legacy spellings: --cms_singularity_overlay_path_override, --cms_singularity_overlay_path,
  --cms_singularity_in_container_path, --cms_singularity_launcher_override,
  --cms_singularity_singularity_path
environment: LAUNCHER_CONFIG, LAUNCHER_DEBUG=1, LAUNCHER_DRY_RUN=1";

fn usage_error(message: String) -> LaunchError {
    LaunchError::Usage(message)
}

/// Parse `args` (everything after `argv[0]`) of a direct call.
pub fn parse_direct(args: &[OsString]) -> Result<DirectCall, LaunchError> {
    let mut flags = DirectFlags::default();
    let mut i = 0;
    while i < args.len() {
        let arg = args[i].as_bytes();
        if arg == b"--" {
            i += 1;
            break;
        }
        if !arg.starts_with(b"-") || arg == b"-" {
            break;
        }
        match arg {
            b"--cms_singularity_overlay_path_override" | b"--no-default-overlay" => flags.no_default_overlay = true,
            b"--dry-run" => flags.dry_run = true,
            b"--help" | b"-h" => flags.help = true,
            b"--version" | b"-V" => flags.version = true,
            _ => {
                let (name, inline) = match arg.iter().position(|&b| b == b'=') {
                    Some(eq) => (&arg[..eq], Some(OsStr::from_bytes(&arg[eq + 1..]).to_os_string())),
                    None => (arg, None),
                };
                let Some(&(spelling, which)) = VALUE_FLAGS.iter().find(|(s, _)| s.as_bytes() == name) else {
                    return Err(usage_error(format!(
                        "unknown flag '{}' (see launcher --help)",
                        String::from_utf8_lossy(arg)
                    )));
                };
                let value = match inline {
                    Some(v) => v,
                    None => {
                        i += 1;
                        args.get(i)
                            .cloned()
                            .ok_or_else(|| usage_error(format!("{spelling} needs a value")))?
                    }
                };
                set_value(&mut flags, which, value, spelling)?;
            }
        }
        i += 1;
    }
    Ok(DirectCall {
        flags,
        command: args.get(i).cloned(),
        args: args.get(i + 1..).unwrap_or_default().to_vec(),
    })
}

fn set_value(flags: &mut DirectFlags, which: ValueFlag, value: OsString, spelling: &str) -> Result<(), LaunchError> {
    match which {
        ValueFlag::OverlayPath => flags.overlay_path = Some(value),
        ValueFlag::Path => flags.path = Some(value),
        ValueFlag::Launcher => flags.launcher = Some(value.into()),
        ValueFlag::Runtime => flags.runtime = Some(value.into()),
        ValueFlag::Env => {
            let name = value
                .into_string()
                .ok()
                .filter(|n| !n.is_empty() && !n.contains('/'))
                .ok_or_else(|| usage_error(format!("{spelling} needs a plain environment name")))?;
            flags.env = Some(name);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(args: &[&str]) -> Vec<OsString> {
        args.iter().map(OsString::from).collect()
    }

    #[test]
    fn l4_clean_flags_then_command() {
        let call = parse_direct(&os(&[
            "--no-default-overlay",
            "--overlay-path",
            "/a:/b",
            "--path=/p",
            "--runtime",
            "/r",
            "--env",
            "e",
            "--dry-run",
            "python3",
            "--path",
            "x",
        ]))
        .unwrap();
        assert!(call.flags.no_default_overlay && call.flags.dry_run);
        assert_eq!(call.flags.overlay_path.unwrap(), "/a:/b");
        assert_eq!(call.flags.path.unwrap(), "/p");
        assert_eq!(call.flags.runtime.unwrap(), PathBuf::from("/r"));
        assert_eq!(call.flags.env.as_deref(), Some("e"));
        assert_eq!(call.command.unwrap(), "python3");
        assert_eq!(call.args, os(&["--path", "x"]), "flags after the command belong to it");
    }

    #[test]
    fn l4_legacy_spellings() {
        let call = parse_direct(&os(&[
            "--cms_singularity_overlay_path_override",
            "--cms_singularity_overlay_path",
            "/o",
            "--cms_singularity_in_container_path",
            "/p",
            "--cms_singularity_launcher_override",
            "/l",
            "--cms_singularity_singularity_path",
            "/r",
            "bash",
        ]))
        .unwrap();
        let f = call.flags;
        assert!(f.no_default_overlay);
        assert_eq!((f.overlay_path.unwrap(), f.path.unwrap()), ("/o".into(), "/p".into()));
        assert_eq!((f.launcher.unwrap(), f.runtime.unwrap()), ("/l".into(), "/r".into()));
        assert_eq!(call.command.unwrap(), "bash");
    }

    #[test]
    fn l4_double_dash_ends_flags() {
        let call = parse_direct(&os(&["--", "--dry-run", "x"])).unwrap();
        assert!(!call.flags.dry_run);
        assert_eq!(call.command.unwrap(), "--dry-run");
        assert_eq!(call.args, os(&["x"]));
    }

    #[test]
    fn l4_unknown_flag_and_missing_value_are_usage_errors() {
        let e = parse_direct(&os(&["--bogus", "x"])).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert!(e.to_string().contains("--bogus"));
        let e = parse_direct(&os(&["--runtime"])).unwrap_err();
        assert!(e.to_string().contains("--runtime needs a value"));
    }

    /// The `flags` fuzz target's input `--path\0\0` (issue 10): `--path`
    /// takes the empty string as its value, the next empty string is the
    /// command, and it has no arguments (the old oracle took the first
    /// empty string, the value, for the command).
    #[test]
    fn l4_empty_value_then_empty_command() {
        let call = parse_direct(&os(&["--path", "", ""])).unwrap();
        assert_eq!(call.flags.path.as_deref(), Some(OsStr::new("")));
        assert_eq!(call.command.as_deref(), Some(OsStr::new("")));
        assert!(call.args.is_empty());
        let call = parse_direct(&os(&["--env", "x", "x", "x"])).unwrap();
        assert_eq!(call.flags.env.as_deref(), Some("x"));
        assert_eq!((call.command.unwrap(), call.args), ("x".into(), os(&["x"])));
    }

    #[test]
    fn l3_no_command_is_none() {
        let call = parse_direct(&os(&["--env", "e"])).unwrap();
        assert!(call.command.is_none());
    }
}
