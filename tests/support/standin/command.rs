//! The action script's `exec` builtin: find the command and replace this
//! process with it (`process_linux.go` `execBuiltin` and `Exec`).
//!
//! `argv[0]` becomes `LookPath(argv[0])` (mvdan `interp/handler.go`): an
//! absolute path unchanged (even with `..` or `//`), a relative one joined
//! with the working directory and cleaned, a bare name the full `PATH` hit.
//! A command that is missing or not executable is a runtime error (255).

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Component, Path, PathBuf};
use std::process::Command;

/// What `LookPath` returns for `command`, or the runtime's error text.
pub fn look_path(command: &OsStr, path_var: Option<&OsStr>, cwd: &Path) -> Result<PathBuf, String> {
    let bytes = command.as_bytes();
    if bytes.contains(&b'/') {
        let path = if bytes.starts_with(b"/") {
            PathBuf::from(command)
        } else {
            clean(&cwd.join(command))
        };
        return check_executable(&path).map(|()| path);
    }
    let search = path_var.map(OsStr::as_bytes).unwrap_or_default();
    for dir in search.split(|&b| b == b':') {
        let dir = if dir.is_empty() {
            Path::new(".")
        } else {
            Path::new(OsStr::from_bytes(dir))
        };
        let candidate = dir.join(command);
        if check_executable(&candidate).is_ok() {
            return Ok(candidate);
        }
    }
    Err(format!("{:?}: executable file not found in $PATH", command))
}

fn check_executable(path: &Path) -> Result<(), String> {
    match path.metadata() {
        Ok(m) if !m.is_dir() && m.permissions().mode() & 0o111 != 0 => Ok(()),
        Ok(_) => Err(format!("stat {}: permission denied", path.display())),
        Err(e) => Err(format!("stat {}: {e}", path.display())),
    }
}

/// Go's `filepath.Clean` for an absolute path.
fn clean(path: &Path) -> PathBuf {
    let mut out = PathBuf::from("/");
    for component in path.components() {
        match component {
            Component::ParentDir => {
                out.pop();
            }
            Component::Normal(name) => out.push(name),
            _ => {}
        }
    }
    out
}

/// Replace this process with `program` (`argv[0]` = `program`, as the
/// builtin sets it). Only returns on failure. A file the kernel cannot
/// execute (`ENOEXEC`, no `#!`) is retried with `/bin/sh`, as `Exec` does.
///
/// `Command::exec` resets SIGPIPE to its default disposition before
/// `execve` (the Rust runtime ignores it), as a Go exec does (L22).
pub fn exec(program: &Path, args: &[OsString], env: &BTreeMap<OsString, OsString>) -> String {
    let error = Command::new(program).args(args).env_clear().envs(env).exec();
    if error.raw_os_error() == Some(libc::ENOEXEC) {
        let error = Command::new("/bin/sh")
            .arg(program)
            .args(args)
            .env_clear()
            .envs(env)
            .exec();
        return format!("exec /bin/sh {}: {error}", program.display());
    }
    format!("exec {}: {error}", program.display())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handler_go_look_path_rules() {
        let cwd = Path::new("/usr/lib");
        // Absolute: unchanged, `..` and `//` kept.
        let abs = look_path(OsStr::new("/usr/bin/../bin//env"), None, cwd).unwrap();
        assert_eq!(abs, PathBuf::from("/usr/bin/../bin//env"));
        // Bare: the PATH hit.
        let bare = look_path(OsStr::new("env"), Some(OsStr::new("/nonexistent:/usr/bin")), cwd).unwrap();
        assert_eq!(bare, PathBuf::from("/usr/bin/env"));
        // Relative: joined with the cwd and cleaned.
        let rel = look_path(OsStr::new("../bin/env"), None, cwd).unwrap();
        assert_eq!(rel, PathBuf::from("/usr/bin/env"));
        // Missing: an error (the runtime's FATAL, 255).
        assert!(look_path(OsStr::new("/no/such/cmd"), None, cwd).is_err());
        assert!(look_path(OsStr::new("no-such-cmd-x"), Some(OsStr::new("/usr/bin")), cwd).is_err());
    }
}
