//! Finding and exec'ing the command inside the container.

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Where `command` is: itself when it names a path, else the first
/// executable regular file of that name on the container's `PATH`.
pub fn resolve(command: &OsStr, path_var: Option<&OsStr>) -> Result<PathBuf, String> {
    if command.as_bytes().contains(&b'/') {
        return Ok(PathBuf::from(command));
    }
    let search = path_var.map(OsStr::as_bytes).unwrap_or_default();
    search
        .split(|&b| b == b':')
        .map(|dir| {
            let dir = if dir.is_empty() {
                Path::new(".")
            } else {
                Path::new(OsStr::from_bytes(dir))
            };
            dir.join(command)
        })
        .find(|candidate| {
            candidate
                .metadata()
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
        .ok_or_else(|| format!("{command:?}: executable file not found in $PATH"))
}

/// Replace this process with `program`, argv[0] = `command` as given (as the
/// runtime's `exec "$@"` does). Only returns on failure.
///
/// `Command::exec` resets SIGPIPE to its default disposition before
/// `execve` (the Rust runtime ignores it), so `… | head` behaves as on a
/// host (L22).
pub fn exec(program: &Path, command: &OsStr, args: &[OsString], env: &BTreeMap<OsString, OsString>) -> String {
    let error = Command::new(program)
        .arg0(command)
        .args(args)
        .env_clear()
        .envs(env)
        .exec();
    format!("exec {}: {error}", program.display())
}
