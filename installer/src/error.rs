//! Every way an installer run can fail, and the exit status each maps to.
//!
//! One line per error, naming the file, directory or key at fault. The codes
//! are documented in docs/installer.md; scripts and CI may rely on them
//! (e.g. retry on 6, "lock held").

use std::path::{Path, PathBuf};

/// A `check` found problems (I10).
pub const EXIT_CHECK_FAILED: i32 = 1;
/// Bad command line (clap's own code for usage errors).
pub const EXIT_USAGE: i32 = 2;
/// `launcher.toml` unreadable, invalid, or missing a needed key.
pub const EXIT_CONFIG: i32 = 3;
/// An environment image is unreadable, corrupt, or lacks `<prefix>/<env>/bin`.
pub const EXIT_IMAGE: i32 = 4;
/// The scripts tree (or another file the installer writes) cannot be changed.
pub const EXIT_FILESYSTEM: i32 = 5;
/// Another installer holds the lock and `--no-wait` was given.
pub const EXIT_LOCK_HELD: i32 = 6;
/// An external program the installer needs is not installed.
pub const EXIT_MISSING_TOOL: i32 = 7;
/// A program the installer runs failed (`mksquashfs`), or a step of
/// `demo` (building the env, running the launcher).
pub const EXIT_DEMO: i32 = 8;

#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error("{0}")]
    Usage(String),
    /// Already formatted by the launcher's config parser (path:line:col: …).
    #[error("{0}")]
    Config(String),
    #[error("{key} is not set in {}", config.display())]
    MissingSetting { key: &'static str, config: PathBuf },
    #[error("image {}: {reason}", path.display())]
    Image { path: PathBuf, reason: String },
    #[error("image {} has no directory {} (is it the image of environment '{env}'?)", path.display(), inner.display())]
    NoBinDir { path: PathBuf, inner: PathBuf, env: String },
    #[error("scripts directory {} is not writable: {reason}", path.display())]
    NotWritable { path: PathBuf, reason: String },
    #[error("{}: {reason}", path.display())]
    Io { path: PathBuf, reason: String },
    #[error("lock {} is held by {holder} (--no-wait given)", path.display())]
    LockHeld { path: PathBuf, holder: String },
    #[error("{tool} not found on PATH; install the package {package}")]
    MissingTool { tool: &'static str, package: &'static str },
    #[error("demo: {0}")]
    Demo(String),
    #[error("{tool} failed: {reason}")]
    ToolFailed { tool: String, reason: String },
    /// An error a forked child of this run (`build`, `update`) met and
    /// reported, with the exit status it maps to.
    #[error("{message}")]
    Reported { code: i32, message: String },
}

impl InstallError {
    pub fn exit_code(&self) -> i32 {
        match self {
            InstallError::Usage(_) => EXIT_USAGE,
            InstallError::Config(_) | InstallError::MissingSetting { .. } => EXIT_CONFIG,
            InstallError::Image { .. } | InstallError::NoBinDir { .. } => EXIT_IMAGE,
            InstallError::NotWritable { .. } | InstallError::Io { .. } => EXIT_FILESYSTEM,
            InstallError::LockHeld { .. } => EXIT_LOCK_HELD,
            InstallError::MissingTool { .. } => EXIT_MISSING_TOOL,
            InstallError::Demo(_) | InstallError::ToolFailed { .. } => EXIT_DEMO,
            InstallError::Reported { code, .. } => *code,
        }
    }

    /// A file-system error on `path`, worded like the OS worded it.
    pub fn io(path: &Path, err: std::io::Error) -> InstallError {
        InstallError::Io {
            path: path.to_path_buf(),
            reason: io_reason(&err),
        }
    }
}

/// `std::io::Error`'s text without the "(os error N)" tail.
pub fn io_reason(err: &std::io::Error) -> String {
    let text = err.to_string();
    match text.find(" (os error") {
        Some(at) => text[..at].to_string(),
        None => text,
    }
}

pub type Result<T, E = InstallError> = std::result::Result<T, E>;
