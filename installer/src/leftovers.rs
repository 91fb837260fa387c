//! Temporary files a run killed part-way (`kill -9`, a crash, a power cut)
//! leaves in the directories it shares with other runs: `<envs>`, the
//! backup directory and the modules directory (issue 10 item 9). What it
//! leaves in `<scripts>` is `swap::leftovers`.
//!
//! `check` reports them (`find`); every run that holds the lock of such a
//! directory — `farm`, `deploy`, `rollback` — removes them first (`clean`):
//! with the lock held nobody else is writing there (`lock`), so whatever
//! temporary is found belongs to a run that is gone.
//!
//! Names (each made by one place of the installer):
//!
//! | directory | name | made by |
//! |---|---|---|
//! | `<envs>` | `.<env>.sqsh.deploy-XXXXXX` | `deploy`: the copy of the image |
//! | `<envs>` | `.<name>.link-PID` | `deploy`, `rollback`, `alias`: a new `<envs>/<name>` link |
//! | `<envs>`, modules | `.<name>.new-XXXXXX` (not `*.sqsh.new-*` in `<envs>`) | a file written then renamed (`<envs>/<env>.manifest.toml`, modulefiles, `.modulerc`) |
//! | backup | `.<env>.sqsh.new-PID`, `.<env>.sqsh.new-XXXXXX` | `deploy`: the hard link that becomes the backup |
//!
//! `.<file>.sqsh.new-XXXXXX` in `<envs>` is also what `installer pack -o
//! <envs>/<file>.sqsh` writes (pack takes no lock: it may be running), and
//! what a `deploy` of an older installer left: reported, never removed.
//! `<backup>/.<env>.sqsh.prev` and `.<env>.rollback` are not temporaries but
//! the state of an interrupted rollback (`deploy`).

use std::fs;
use std::path::{Path, PathBuf};

use crate::error::{InstallError, Result};
use crate::lock::RunLock;
use crate::site::Site;
use crate::ui::Ui;

/// Which shared directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    Envs,
    Backup,
    Modules,
}

/// A temporary file found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leftover {
    pub path: PathBuf,
    /// What made it, for messages.
    pub what: &'static str,
    /// Whether a run holding the directory's lock may remove it (else it
    /// may belong to a program that takes no lock).
    pub removable: bool,
}

/// What `name`, found in a directory of kind `place`, is, if it is a
/// temporary of an installer run: (what made it, removable).
pub fn classify(name: &str, place: Place) -> Option<(&'static str, bool)> {
    let hidden = name.strip_prefix('.').filter(|rest| !rest.is_empty())?;
    let suffix_after = |marker: &str| {
        hidden
            .rfind(marker)
            .map(|at| (&hidden[..at], &hidden[at + marker.len()..]))
    };
    let alnum = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric());
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    match place {
        Place::Envs => {
            if let Some((stem, rest)) = suffix_after(".sqsh.deploy-") {
                return (!stem.is_empty() && alnum(rest)).then_some(("a copy of an image by a deploy", true));
            }
            if let Some((stem, rest)) = suffix_after(".link-") {
                return (!stem.is_empty() && digits(rest)).then_some(("a new symbolic link", true));
            }
            if let Some((stem, rest)) = suffix_after(".new-") {
                if stem.is_empty() || !alnum(rest) {
                    return None;
                }
                if stem.ends_with(".sqsh") {
                    return Some((
                        "an image being written by `installer pack -o` (or by a deploy of an older installer)",
                        false,
                    ));
                }
                return Some(("a file being written", true));
            }
            None
        }
        Place::Backup => {
            let (stem, rest) = suffix_after(".sqsh.new-")?;
            (!stem.is_empty() && alnum(rest)).then_some(("a new backup link by a deploy", true))
        }
        Place::Modules => {
            let (stem, rest) = suffix_after(".new-")?;
            (!stem.is_empty() && alnum(rest)).then_some(("a modulefile being written", true))
        }
    }
}

/// The temporaries in `dir` (a directory of kind `place`), sorted.
pub fn find(dir: &Path, place: Place) -> Vec<Leftover> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut found: Vec<Leftover> = entries
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name();
            let (what, removable) = classify(name.to_str()?, place)?;
            // Only files and links: a directory of that name is not ours.
            let meta = fs::symlink_metadata(entry.path()).ok()?;
            (!meta.is_dir()).then(|| Leftover {
                path: entry.path(),
                what,
                removable,
            })
        })
        .collect();
    found.sort_by(|a, b| a.path.cmp(&b.path));
    found
}

/// The shared directories of `site`: `<envs>`, the backup directory
/// (`backup`, else `<envs>/.backup`) and the modules directory, if any.
pub fn shared_dirs(site: &Site, backup: Option<&Path>, modules: Option<&Path>) -> Vec<(PathBuf, Place)> {
    let mut dirs = Vec::new();
    if let Ok(envs) = site.envs_dir() {
        dirs.push((envs.to_path_buf(), Place::Envs));
        let backup = backup.map_or_else(|| envs.join(crate::deploy::BACKUP_DIR_NAME), Path::to_path_buf);
        dirs.push((backup, Place::Backup));
    }
    if let Some(dir) = crate::modulefile::dir(site, modules) {
        dirs.push((dir, Place::Modules));
    }
    dirs
}

/// Remove the removable temporaries of every directory of `dirs` that
/// `lock` covers (another run may be writing in one it does not), saying
/// so for each.
pub fn clean(dirs: &[(PathBuf, Place)], lock: &RunLock, ui: &Ui) -> Result<()> {
    for (dir, place) in dirs {
        if !lock.covers(dir) {
            continue;
        }
        for leftover in find(dir, *place).into_iter().filter(|l| l.removable) {
            match fs::remove_file(&leftover.path) {
                Ok(()) => ui.info(format!(
                    "removed {} ({}), left by an interrupted run",
                    leftover.path.display(),
                    leftover.what
                )),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(InstallError::io(&leftover.path, e)),
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_of_temporaries_are_told_apart() {
        use Place::*;
        let removable = |name: &str, place| classify(name, place).map(|(_, r)| r);
        assert_eq!(removable(".e-1.sqsh.deploy-a1B2c3", Envs), Some(true));
        assert_eq!(removable(".e-1.link-1234", Envs), Some(true));
        assert_eq!(removable(".e-1.manifest.toml.new-x9Y8z7", Envs), Some(true));
        // What pack writes, or an older deploy: reported, never removed.
        assert_eq!(removable(".e-1.sqsh.new-a1B2c3", Envs), Some(false));
        assert_eq!(removable(".e-1.sqsh.new-4321", Backup), Some(true));
        assert_eq!(removable(".e-1.new-a1B2c3", Modules), Some(true));
        assert_eq!(removable("..modulerc.new-a1B2c3", Modules), Some(true));
        for (name, place) in [
            ("e-1.sqsh", Envs),
            (".installer.lock", Envs),
            (".backup", Envs),
            (".e-1.link-12ab", Envs),
            (".link-12", Envs),
            (".e-1.sqsh.prev", Backup),
            (".e-1.rollback", Backup),
            (".e-1.sqsh.deploy-", Envs),
            (".modulerc", Modules),
            (".version", Modules),
            ("e-1", Modules),
        ] {
            assert_eq!(classify(name, place), None, "{name}");
        }
    }
}
