//! Creating executables that tests then exec, without "Text file busy".
//!
//! Tests run on many threads. A file this process holds open for writing is
//! copied into every child another thread forks at that moment, until that
//! child execs; exec'ing the file meanwhile fails with ETXTBSY. So
//! executables are written by a child process (`install`), never through an
//! fd of this one.

use std::path::Path;
use std::process::Command;

/// Copy `src` to `dst` with mode 0755, parents created.
pub fn copy_executable(src: &Path, dst: &Path) -> Result<(), String> {
    let status = Command::new("install")
        .args(["-D", "-m", "0755"])
        .arg(src)
        .arg(dst)
        .status()
        .map_err(|e| format!("install {}: {e}", dst.display()))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!(
            "install {} -> {} failed: {status}",
            src.display(),
            dst.display()
        ))
    }
}

/// Write `text` to `dst` with mode 0755. The text goes to a plain file first
/// (never exec'd), then a child process installs it.
pub fn write_executable(dst: &Path, text: &str) -> Result<(), String> {
    let staging = tempfile::NamedTempFile::new().map_err(|e| format!("temp file: {e}"))?;
    std::fs::write(staging.path(), text).map_err(|e| format!("{}: {e}", staging.path().display()))?;
    copy_executable(staging.path(), dst)
}
