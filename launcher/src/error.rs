//! Every way a launch can fail, with the exit code L18 documents for it.
//!
//! Messages are one line naming the thing at fault; `hint` adds a second line
//! only where there is an obvious fix.

use std::path::PathBuf;

/// Exit status for launcher errors (config, image, runtime, recursion): L18.
pub const EXIT_LAUNCHER: i32 = 125;
/// Exit status for a command that exists but cannot be executed: L18.
pub const EXIT_NOT_EXECUTABLE: i32 = 126;
/// Exit status for a command that does not exist: L18.
pub const EXIT_NOT_FOUND: i32 = 127;
/// Exit status for a usage error (no command in direct mode, bad flag): L3.
pub const EXIT_USAGE: i32 = 2;

#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    #[error("{path}:{line}:{column}: {message}")]
    ConfigSyntax {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{path}: {message}")]
    ConfigInvalid { path: PathBuf, message: String },
    #[error("cannot read {what} {path}: {reason}")]
    Unreadable {
        what: &'static str,
        path: PathBuf,
        reason: String,
    },
    /// L19: someone but root, the installation's owner and the caller
    /// could change the file or the way to it (`trust::check`).
    #[error("refusing {what} {path}: {why}")]
    Insecure {
        what: &'static str,
        path: PathBuf,
        /// Names the file or directory at fault and who can change it.
        why: String,
        /// The fix, for the hint line; never a mode that is still unsafe.
        fix: String,
    },
    #[error("cannot work out the environment from {path}: {why}")]
    NoEnvironment { path: PathBuf, why: String },
    #[error("image {path} of environment '{env}' is missing or unreadable")]
    MissingImage { env: String, path: PathBuf },
    #[error("base image {path} (runtime.image) not found")]
    MissingBaseImage { path: PathBuf },
    #[error("no container runtime: {looked}")]
    NoRuntime { looked: String },
    #[error("{key} is not set in {config}")]
    MissingSetting { key: &'static str, config: PathBuf },
    #[error("command '{command}' not found{place}")]
    CommandNotFound { command: String, place: String },
    #[error("{path} cannot be executed: {reason}")]
    NotExecutable { path: PathBuf, reason: String },
    /// `execve` said ENOENT, yet the file is there: what it names to start
    /// it (its `#!` interpreter, an ELF's dynamic loader) is missing.
    #[error("cannot run {path}: {why}")]
    InterpreterNotFound {
        path: PathBuf,
        /// `its interpreter /usr/bin/python9 was not found`.
        why: String,
        /// The `#!` line, for the hint, when the file has one.
        shebang: Option<String>,
    },
    #[error("{path} is a launcher link; refusing to exec the launcher from inside the container")]
    SelfExec { path: PathBuf },
    #[error("container runtime re-entered {depth} times (LAUNCHER_DEPTH); the container is never detected")]
    Recursion { depth: u32 },
    #[error("{0}")]
    Usage(String),
    #[error("cannot exec {path}: {reason}")]
    ExecFailed { path: PathBuf, reason: String },
}

impl LaunchError {
    /// The process exit status this error maps to (L18).
    pub fn exit_code(&self) -> i32 {
        match self {
            LaunchError::Usage(_) => EXIT_USAGE,
            LaunchError::CommandNotFound { .. } => EXIT_NOT_FOUND,
            LaunchError::NotExecutable { .. } | LaunchError::InterpreterNotFound { .. } => EXIT_NOT_EXECUTABLE,
            _ => EXIT_LAUNCHER,
        }
    }

    /// A second line with the obvious fix, where there is one.
    pub fn hint(&self) -> Option<String> {
        match self {
            LaunchError::NoRuntime { .. } => Some(
                "hint: set runtime.path in launcher.toml, pass --runtime PATH, or load the apptainer/singularity module"
                    .into(),
            ),
            LaunchError::Insecure { fix, .. } => Some(format!("hint: {fix}")),
            LaunchError::InterpreterNotFound {
                path,
                shebang: Some(line),
                ..
            } => Some(format!(
                "hint: the first line of {} is {line}: install that interpreter or fix the line",
                path.display()
            )),
            LaunchError::Recursion { .. } => Some(
                "hint: check container.marker in launcher.toml: it must exist inside the container"
                    .into(),
            ),
            LaunchError::MissingImage { .. } => Some(
                "hint: check container.envs_dir, or use --no-default-overlay with --overlay-path".into(),
            ),
            LaunchError::MissingSetting { key, .. } => Some(format!(
                "hint: host launches need {key}; every key is documented in launcher.toml.example"
            )),
            LaunchError::ConfigSyntax { .. } | LaunchError::ConfigInvalid { .. } => Some(
                "hint: every key is documented in launcher.toml.example".into(),
            ),
            _ => None,
        }
    }
}
