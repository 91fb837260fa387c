//! The native runtime: runs a launch with no Apptainer or Singularity, by
//! building the same container view itself (issue: native runtime).
//!
//! The launcher plans a native launch like any other (L14) and execs its
//! own binary under the name [`NATIVE_ARGV0`], which `main` dispatches
//! here. It takes the `exec` subset the launcher emits (`cli`), builds the
//! environment without the real runtimes' quirks (`environment`), mounts
//! the base and images in private namespaces (`container`: loop devices as
//! root, squashfuse in a user namespace otherwise), and replaces itself
//! with the program. Never setuid: it has the caller's privileges only.

pub mod cli;
mod container;
pub mod environment;
mod fuse;
mod loopdev;

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// `argv[0]` the launcher gives its own binary to run it as the runtime.
pub const NATIVE_ARGV0: &str = "launcher-native";
/// The native runtime's own failures (as the launcher's, L18).
pub const EXIT_NATIVE_ERROR: i32 = 125;

/// One line saying what went wrong, and maybe a hint.
#[derive(Debug)]
pub struct NativeError {
    message: String,
    hint: Option<String>,
    code: i32,
}

impl NativeError {
    pub fn new(message: String) -> NativeError {
        NativeError {
            message,
            hint: None,
            code: EXIT_NATIVE_ERROR,
        }
    }

    fn hint(mut self, hint: &str) -> NativeError {
        self.hint = Some(hint.to_string());
        self
    }

    fn code(mut self, code: i32) -> NativeError {
        self.code = code;
        self
    }

    pub fn hint_text(&self) -> Option<&str> {
        self.hint.as_deref()
    }

    pub fn exit_code(&self) -> i32 {
        self.code
    }
}

impl std::fmt::Display for NativeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// Is this process the native runtime (by the name it was started under)?
pub fn is_native_call(argv0: Option<&OsStr>) -> bool {
    argv0.is_some_and(|a| Path::new(a).file_name() == Some(OsStr::new(NATIVE_ARGV0)))
}

/// Run `args` (without argv[0]). Only returns on failure.
pub fn run(args: &[OsString]) -> NativeError {
    let request = match cli::parse(args) {
        Ok(request) => request,
        Err(e) => return e,
    };
    let host: Vec<(OsString, OsString)> = std::env::vars_os().collect();
    let home = host.iter().find(|(k, _)| k == "HOME").map(|(_, v)| PathBuf::from(v));
    let host_path = host.iter().find(|(k, _)| k == "PATH").map(|(_, v)| v.clone());
    let env = environment::container_environment(host);
    let entered = match container::enter(&request, home.as_deref(), host_path.as_deref()) {
        Ok(entered) => entered,
        Err(e) => return e,
    };
    let program = match look_up(
        &request.command,
        env.get(OsStr::new("PATH")).map(OsString::as_os_str),
        &entered.cwd,
    ) {
        Ok(program) => program,
        Err(e) => return e,
    };
    let error = Command::new(&program)
        .arg0(&request.command)
        .args(&request.args)
        .env_clear()
        .envs(&env)
        .exec();
    let code = match error.raw_os_error() {
        Some(libc::ENOENT) => 127,
        _ => 126,
    };
    NativeError::new(format!("cannot run {} in the container: {error}", program.display())).code(code)
}

/// A path as given; a bare name on the container's `PATH`.
fn look_up(command: &OsStr, path_var: Option<&OsStr>, cwd: &Path) -> Result<PathBuf, NativeError> {
    if command.as_bytes().contains(&b'/') {
        return Ok(cwd.join(command));
    }
    path_var
        .unwrap_or_default()
        .as_bytes()
        .split(|&b| b == b':')
        .filter(|d| !d.is_empty())
        .map(|d| Path::new(OsStr::from_bytes(d)).join(command))
        .find(|p| {
            p.metadata()
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
        .ok_or_else(|| {
            NativeError::new(format!(
                "{}: command not found in the container",
                command.to_string_lossy()
            ))
            .code(127)
        })
}
