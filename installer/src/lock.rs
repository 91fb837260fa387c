//! Serialising installer runs (I4): an exclusive `flock` on
//! `.installer.lock` in every directory a run changes.
//!
//! The scripts tree is not the only shared place: several scripts trees
//! (a test tree and the production one, two sites' trees) may share one
//! envs dir, one backup dir or one modules dir, and a run of one would
//! remove the other's temporary copy or lose a backup generation (issue 10
//! item 8). So a run locks each of them: `<scripts>`, `<envs>`, the backup
//! directory and the modules directory, as far as it writes there.
//!
//! **Order.** Locks are taken one directory after the other in the order
//! of their canonical paths (byte order), each directory once however it is
//! named (same device and inode). Every run agrees on that order whatever
//! role a directory plays in its own site (one tree's envs dir may be
//! another's modules dir), so no two runs can each hold a lock the other
//! waits for: no deadlock.
//!
//! The holder writes who it is into each file, so that a second run can
//! say what it is waiting for. The kernel drops the locks when the holder
//! exits, however it exits, so a stale lock file never blocks anyone.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

use crate::error::{io_reason, InstallError, Result};
use crate::site::Site;

/// File name of the lock inside `<scripts>` (and every other directory
/// a run changes).
pub const LOCK_FILE_NAME: &str = ".installer.lock";

/// The lock of one directory, held until dropped.
pub struct ScriptsLock {
    _lock: Flock<File>,
    pub path: PathBuf,
}

/// How a run needs the lock of a directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Need {
    /// Only when the directory exists and the lock file can be created
    /// there: the run only reads the directory, or only removes what killed
    /// runs left in it (`farm` in `<envs>`, the backup and modules dirs).
    /// A directory this run cannot write is one it leaves alone.
    IfWritable,
    /// The run writes there: failing to lock is an error.
    Required,
}

/// Every lock one run holds (`acquire_all`), until dropped.
pub struct RunLock {
    held: Vec<ScriptsLock>,
}

impl RunLock {
    /// The directories locked, in the order they were locked.
    pub fn dirs(&self) -> Vec<PathBuf> {
        self.held
            .iter()
            .filter_map(|l| l.path.parent().map(Path::to_path_buf))
            .collect()
    }

    /// Whether `dir` is one of the locked directories (by device and inode).
    pub fn covers(&self, dir: &Path) -> bool {
        let Ok(want) = std::fs::metadata(dir) else { return false };
        self.dirs()
            .iter()
            .filter_map(|d| std::fs::metadata(d).ok())
            .any(|m| m.dev() == want.dev() && m.ino() == want.ino())
    }
}

/// Lock every directory of `dirs` (see the module doc for the order);
/// `wait` and `on_wait` as for `acquire`. A `Required` directory must exist.
pub fn acquire_all(dirs: &[(PathBuf, Need)], wait: bool, on_wait: impl Fn(&str)) -> Result<RunLock> {
    // One entry per directory (device, inode), with the strongest need.
    let mut unique: Vec<(PathBuf, (u64, u64), Need)> = Vec::new();
    for (dir, need) in dirs {
        let meta = match std::fs::metadata(dir) {
            Ok(meta) if meta.is_dir() => meta,
            Ok(_) if *need == Need::IfWritable => continue,
            Ok(_) => {
                return Err(InstallError::Io {
                    path: dir.clone(),
                    reason: "not a directory".into(),
                })
            }
            Err(_) if *need == Need::IfWritable => continue,
            Err(e) => return Err(InstallError::io(dir, e)),
        };
        let id = (meta.dev(), meta.ino());
        let canonical = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.clone());
        match unique.iter_mut().find(|(_, other, _)| *other == id) {
            Some(entry) => entry.2 = entry.2.max(*need),
            None => unique.push((canonical, id, *need)),
        }
    }
    unique.sort_by(|a, b| a.0.as_os_str().as_bytes().cmp(b.0.as_os_str().as_bytes()));
    let mut held = Vec::new();
    for (dir, _, need) in unique {
        match lock_dir(&dir, wait, &on_wait) {
            Ok(lock) => held.push(lock),
            Err(Unlocked::CannotCreate(_)) if need == Need::IfWritable => {}
            Err(Unlocked::CannotCreate(e)) => {
                return Err(InstallError::Io {
                    path: dir.clone(),
                    reason: format!("cannot create lock file {LOCK_FILE_NAME}: {}", io_reason(&e)),
                })
            }
            Err(Unlocked::Failed(e)) => return Err(e),
        }
    }
    Ok(RunLock { held })
}

/// The usual lock set of a run on `site`: `<scripts>` (required), `<envs>`
/// (`envs`), and each of `also`. Waiting is reported on stderr.
pub fn acquire_site(site: &Site, envs: Need, also: &[(PathBuf, Need)], wait: bool) -> Result<RunLock> {
    let mut dirs = vec![(site.scripts.clone(), Need::Required)];
    if let Ok(dir) = site.envs_dir() {
        dirs.push((dir.to_path_buf(), envs));
    }
    dirs.extend(also.iter().cloned());
    acquire_all(&dirs, wait, |msg| crate::output::err_line(&format!("installer: {msg}")))
}

enum Unlocked {
    /// The lock file could not be opened (a directory this run cannot write).
    CannotCreate(std::io::Error),
    Failed(InstallError),
}

fn lock_dir(dir: &Path, wait: bool, on_wait: &dyn Fn(&str)) -> std::result::Result<ScriptsLock, Unlocked> {
    let path = dir.join(LOCK_FILE_NAME);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o644)
        .open(&path)
        .map_err(Unlocked::CannotCreate)?;
    take(file, path, wait, on_wait).map_err(Unlocked::Failed)
}

/// Take the lock of the scripts tree at `scripts`. When another run holds
/// it: fail with `LockHeld` if `wait` is false, else say who holds it (via
/// `on_wait`) and block until it is free.
pub fn acquire(scripts: &Path, wait: bool, on_wait: impl Fn(&str)) -> Result<ScriptsLock> {
    lock_dir(scripts, wait, &on_wait).map_err(|e| match e {
        Unlocked::CannotCreate(e) => InstallError::NotWritable {
            path: scripts.to_path_buf(),
            reason: format!("cannot create lock file {}: {}", LOCK_FILE_NAME, io_reason(&e)),
        },
        Unlocked::Failed(e) => e,
    })
}

/// `flock` the opened lock file `path`, waiting (and saying so) or not.
fn take(file: File, path: PathBuf, wait: bool, on_wait: &dyn Fn(&str)) -> Result<ScriptsLock> {
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

/// Who holds the lock of `dir` now, if anyone: tested with a shared
/// non-blocking `flock` of the lock file opened read-only (`check`, which
/// changes nothing and may run as a user who cannot write `dir`).
pub fn holder(dir: &Path) -> Option<String> {
    let file = File::open(dir.join(LOCK_FILE_NAME)).ok()?;
    match Flock::lock(file, FlockArg::LockSharedNonblock) {
        Ok(_) => None,
        Err((mut file, Errno::EWOULDBLOCK)) => Some(describe_holder(&mut file)),
        Err(_) => None,
    }
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

    #[test]
    fn holder_is_named_only_while_the_lock_is_held() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(holder(dir.path()), None, "no lock file yet");
        let held = acquire(dir.path(), false, |_| {}).unwrap();
        let who = holder(dir.path()).expect("held");
        assert!(who.contains(&format!("pid {}", std::process::id())), "{who}");
        drop(held);
        assert_eq!(holder(dir.path()), None);
        // Asking took no lock: the next run gets it at once.
        acquire(dir.path(), false, |_| panic!("must not wait")).unwrap();
    }

    #[test]
    fn every_directory_is_locked_once_in_path_order() {
        let root = tempfile::tempdir().unwrap();
        let (a, b) = (root.path().join("b-scripts"), root.path().join("a-envs"));
        std::fs::create_dir_all(&a).unwrap();
        std::fs::create_dir_all(&b).unwrap();
        std::os::unix::fs::symlink(&a, root.path().join("alias")).unwrap();
        let dirs = [
            (a.clone(), Need::IfWritable),
            (b.clone(), Need::Required),
            // The same directory by another name: locked once, required.
            (root.path().join("alias"), Need::Required),
            (root.path().join("missing"), Need::IfWritable),
        ];
        // Without the deduplication the second flock of one file would
        // fail (no waiting here).
        let held = acquire_all(&dirs, false, |_| panic!("must not wait")).unwrap();
        let real = |p: &Path| std::fs::canonicalize(p).unwrap();
        assert_eq!(held.dirs(), vec![real(&b), real(&a)]);
        assert!(held.covers(&root.path().join("alias")) && !held.covers(root.path()));
        // Another run wanting any of them is refused (or would wait).
        let err = match acquire_all(&[(b.clone(), Need::IfWritable)], false, |_| {}) {
            Err(e) => e,
            Ok(_) => panic!("lock taken twice"),
        };
        assert_eq!(err.exit_code(), crate::error::EXIT_LOCK_HELD);
        // A required directory that does not exist is an error.
        assert!(acquire_all(&[(root.path().join("missing"), Need::Required)], false, |_| {}).is_err());
        drop(held);
        acquire_all(&dirs, false, |_| panic!("must not wait")).unwrap();
    }
}
