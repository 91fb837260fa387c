//! Serialising installer runs on one scripts tree (I4): an exclusive
//! `flock` on `<scripts>/.installer.lock`.
//!
//! The holder writes who it is into the file, so that a second run can say
//! what it is waiting for. The kernel drops the lock when the holder exits,
//! however it exits, so a stale lock file never blocks anyone.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

use crate::error::{io_reason, InstallError, Result};

/// File name of the lock inside `<scripts>`.
pub const LOCK_FILE_NAME: &str = ".installer.lock";

/// Held until dropped.
pub struct ScriptsLock {
    _lock: Flock<File>,
    pub path: PathBuf,
}

/// Take the lock of the scripts tree at `scripts`. When another run holds
/// it: fail with `LockHeld` if `wait` is false, else say who holds it (via
/// `on_wait`) and block until it is free.
pub fn acquire(scripts: &Path, wait: bool, on_wait: impl FnOnce(&str)) -> Result<ScriptsLock> {
    let path = scripts.join(LOCK_FILE_NAME);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o644)
        .open(&path)
        .map_err(|e| InstallError::NotWritable {
            path: scripts.to_path_buf(),
            reason: format!("cannot create lock file {}: {}", LOCK_FILE_NAME, io_reason(&e)),
        })?;
    let lock = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(lock) => lock,
        Err((mut file, Errno::EWOULDBLOCK)) => {
            let holder = describe_holder(&mut file);
            if !wait {
                return Err(InstallError::LockHeld { path, holder });
            }
            on_wait(&format!("waiting for lock {} held by {holder}", path.display()));
            Flock::lock(file, FlockArg::LockExclusive).map_err(|(_, errno)| lock_error(&path, errno))?
        }
        Err((_, errno)) => return Err(lock_error(&path, errno)),
    };
    let mut lock = lock;
    let _ = record_holder(&mut lock);
    Ok(ScriptsLock { _lock: lock, path })
}

fn lock_error(path: &Path, errno: Errno) -> InstallError {
    InstallError::Io {
        path: path.to_path_buf(),
        reason: format!("cannot lock: {}", errno.desc()),
    }
}

/// What the holder wrote, plus how long ago it took the lock.
fn describe_holder(file: &mut File) -> String {
    let mut text = String::new();
    let _ = file.read_to_string(&mut text);
    let text = text.trim();
    let who = if text.is_empty() { "another installer run" } else { text };
    let age = file
        .metadata()
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| SystemTime::now().duration_since(t).ok());
    match age {
        Some(age) => format!("{who} (for {} s)", age.as_secs()),
        None => who.to_string(),
    }
}

/// "pid N on HOST: installer ARGS…", one line.
fn record_holder(file: &mut File) -> std::io::Result<()> {
    let host = nix::unistd::gethostname()
        .map(|h| h.to_string_lossy().into_owned())
        .unwrap_or_else(|_| "?".into());
    let args: Vec<String> = std::env::args().collect();
    let line = format!(
        "pid {} on {host}: {}\n",
        std::process::id(),
        args.join(" ").replace('\n', " ")
    );
    file.set_len(0)?;
    file.rewind()?;
    file.write_all(line.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_lock_without_wait_fails_naming_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let first = acquire(dir.path(), false, |_| panic!("must not wait")).unwrap();
        let err = match acquire(dir.path(), false, |_| {}) {
            Err(e) => e,
            Ok(_) => panic!("lock taken twice"),
        };
        assert_eq!(err.exit_code(), crate::error::EXIT_LOCK_HELD);
        assert!(
            err.to_string().contains(&format!("pid {}", std::process::id())),
            "{err}"
        );
        drop(first);
        acquire(dir.path(), false, |_| panic!("must not wait")).unwrap();
    }
}
