//! The one place that acts on a plan: replace this process (L14).
//!
//! `CommandExt::exec` is an `execve` with no fork and no waiting parent, so
//! signals, the exit status and the PID go straight to the new program. It
//! also restores the default `SIGPIPE` disposition that the Rust runtime
//! ignores at start (L22), so `python3 … | head` ends as it should.

use std::os::unix::process::CommandExt;
use std::process::Command;

use crate::error::LaunchError;
use crate::plan::ExecPlan;

/// Replace the current process with `plan`. Returns only on failure.
pub fn perform(plan: &ExecPlan) -> LaunchError {
    let mut command = Command::new(&plan.program);
    if let Some(argv0) = plan.argv.first() {
        command.arg0(argv0);
    }
    command.args(plan.argv.iter().skip(1));
    for name in &plan.unset_env {
        command.env_remove(name);
    }
    for (name, value) in &plan.set_env {
        command.env(name, value);
    }
    let error = command.exec();
    let path = plan.program.clone();
    match error.raw_os_error() {
        Some(libc::ENOENT) | Some(libc::ENOTDIR) => LaunchError::CommandNotFound {
            command: path.display().to_string(),
            place: String::new(),
        },
        Some(libc::EACCES) | Some(libc::ENOEXEC) | Some(libc::EPERM) => LaunchError::NotExecutable {
            path,
            reason: error.to_string(),
        },
        _ => LaunchError::ExecFailed {
            path,
            reason: error.to_string(),
        },
    }
}
