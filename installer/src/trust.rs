//! L19 as `installer check` sees it: no user but root and the installation's
//! owner may be able to change what a launch reads or runs.
//!
//! Each path is looked up component by component, as the kernel does, and
//! every directory on the way (every ancestor, every symlink hop) is judged:
//!
//! - a directory writable by others without the sticky bit lets anyone
//!   rename or replace the entry the lookup goes through: unsafe;
//! - a sticky one (`1777`, like `/tmp`) protects only entries whose owner is
//!   trusted, so it is safe on the way to an entry of root or the owner;
//! - but the installation's own directories (`<scripts>`, `<envs>`,
//!   `overrides/`, the runtime's directory, `modules_dir`, …) are where the
//!   launcher and the runtime look for files that may not exist yet (an
//!   override script, `zzz.sqsh` under `overlays = "all"`, a modulefile), and
//!   there a sticky bit stops nobody from adding one: any o+w is unsafe.
//!
//! The files themselves must not be writable by others, and the files and
//! every directory on the way must belong to root or the installation's owner
//! (the owner of `<scripts>`): their owner can change them whatever the mode.
//! These are the launcher's own rules (`launcher::trust`), so what `check`
//! passes a launch does not refuse. Group write is not judged: who is in a
//! group is the site's business.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::ffi::OsString;
use std::fs::{self, Metadata};
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};

/// Symlinks followed in one lookup before giving up (the kernel's limit).
pub const MAX_HOPS: usize = 40;

/// What a checked path is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A file a launch reads or runs.
    File,
    /// A directory of the installation, where entries are looked up.
    OwnDir,
}

/// One directory entry a lookup went through.
#[derive(Debug)]
struct Step {
    /// The directory (no symlink in it: it is built from resolved entries).
    dir: PathBuf,
    /// The entry's `lstat`.
    entry: Metadata,
    /// `dir/name`.
    path: PathBuf,
}

/// Every entry looked up to reach `path`, following symlinks like the
/// kernel (at most `MAX_HOPS`); and where it really is.
fn lookup(path: &Path) -> io::Result<(Vec<Step>, PathBuf)> {
    let path = std::path::absolute(path)?;
    let mut pending: VecDeque<OsString> = names(&path).collect();
    let mut dir = PathBuf::from("/");
    let mut steps = Vec::new();
    let mut hops = 0;
    while let Some(name) = pending.pop_front() {
        if name == ".." {
            dir.pop();
            continue;
        }
        let entry_path = dir.join(&name);
        let entry = fs::symlink_metadata(&entry_path)?;
        let is_link = entry.file_type().is_symlink();
        let is_dir = entry.is_dir();
        steps.push(Step {
            dir: dir.clone(),
            entry,
            path: entry_path.clone(),
        });
        if is_link {
            hops += 1;
            if hops > MAX_HOPS {
                return Err(io::Error::from_raw_os_error(nix::libc::ELOOP));
            }
            let target = fs::read_link(&entry_path)?;
            if target.is_absolute() {
                dir = PathBuf::from("/");
            }
            let mut target_names: Vec<OsString> = names(&target).collect();
            target_names.reverse();
            for n in target_names {
                pending.push_front(n);
            }
        } else if !pending.is_empty() && !is_dir {
            return Err(io::Error::from_raw_os_error(nix::libc::ENOTDIR));
        } else {
            dir = entry_path;
        }
    }
    Ok((steps, dir))
}

fn names(path: &Path) -> impl Iterator<Item = OsString> + '_ {
    path.components().filter_map(|c| match c {
        Component::Normal(n) => Some(n.to_os_string()),
        Component::ParentDir => Some(OsString::from("..")),
        _ => None,
    })
}

/// Collects L19 findings over many paths, each reported once.
pub struct Checker {
    owner: u32,
    owner_of: PathBuf,
    own_dirs: BTreeSet<PathBuf>,
    dir_modes: BTreeMap<PathBuf, Option<Metadata>>,
    reported: BTreeSet<PathBuf>,
    pub problems: Vec<String>,
}

impl Checker {
    /// `owner_of`: the path whose owner is the installation's owner
    /// (`<scripts>`); `own_dirs`: the installation's directories.
    pub fn new(owner_of: &Path, own_dirs: &[PathBuf]) -> Checker {
        let owner = fs::metadata(owner_of).map_or(0, |m| m.uid());
        Checker {
            owner,
            owner_of: owner_of.to_path_buf(),
            own_dirs: own_dirs.iter().filter_map(|d| fs::canonicalize(d).ok()).collect(),
            dir_modes: BTreeMap::new(),
            reported: BTreeSet::new(),
            problems: Vec::new(),
        }
    }

    fn trusted(&self, uid: u32) -> bool {
        uid == 0 || uid == self.owner
    }

    fn who(&self) -> String {
        format!(
            "neither root nor the installation's owner (uid {}, the owner of {})",
            self.owner,
            self.owner_of.display()
        )
    }

    fn report(&mut self, key: &Path, text: String) {
        if self.reported.insert(key.to_path_buf()) {
            self.problems.push(text);
        }
    }

    fn dir_meta(&mut self, dir: &Path) -> Option<Metadata> {
        self.dir_modes
            .entry(dir.to_path_buf())
            .or_insert_with(|| fs::metadata(dir).ok())
            .clone()
    }

    /// Judge `path` (what it is: `kind`) and every directory on the way to
    /// it. A path that does not exist is left to the other checks.
    pub fn check(&mut self, path: &Path, kind: Kind) {
        let (steps, real) = match lookup(path) {
            Ok(found) => found,
            Err(e) if e.raw_os_error() == Some(nix::libc::ELOOP) => {
                return self.report(
                    path,
                    format!(
                        "{}: more than {MAX_HOPS} symlinks on the way (L19): the launcher refuses it",
                        path.display()
                    ),
                )
            }
            Err(_) => return,
        };
        for step in &steps {
            self.judge_step(step);
        }
        let Ok(meta) = fs::metadata(&real) else { return };
        let mode = meta.mode() & 0o7777;
        match kind {
            Kind::File if mode & 0o002 != 0 => self.report(
                &real,
                format!(
                    "{} is writable by others (L19): chmod o-w {}",
                    real.display(),
                    real.display()
                ),
            ),
            Kind::OwnDir if mode & 0o002 != 0 => self.report(&real, own_dir_text(&real, mode)),
            _ => {
                if !self.trusted(meta.uid()) {
                    let text = format!(
                        "{} belongs to uid {}, {} (L19): that user can change it; chown it",
                        real.display(),
                        meta.uid(),
                        self.who()
                    );
                    self.report(&real, text);
                }
            }
        }
    }

    fn judge_step(&mut self, step: &Step) {
        let Some(dir) = self.dir_meta(&step.dir) else { return };
        let mode = dir.mode() & 0o7777;
        if mode & 0o002 == 0 {
            if !self.trusted(dir.uid()) {
                // Its owner can rename what is in it (the launcher's rule too).
                let text = format!(
                    "directory {} belongs to uid {}, {} (L19): that user can replace {} in it; chown it",
                    step.dir.display(),
                    dir.uid(),
                    self.who(),
                    step.path.display()
                );
                self.report(&step.dir.clone(), text);
            }
            return;
        }
        if self.own_dirs.contains(&step.dir) {
            let text = own_dir_text(&step.dir, mode);
            return self.report(&step.dir.clone(), text);
        }
        if mode & 0o1000 == 0 {
            let text = format!(
                "directory {} is writable by others (mode {mode:04o}) (L19): anyone can replace {} in it; \
                 chmod o-w {}",
                step.dir.display(),
                step.path.display(),
                step.dir.display()
            );
            return self.report(&step.dir.clone(), text);
        }
        if !self.trusted(step.entry.uid()) {
            let text = format!(
                "{} sits in {}, which is writable by others (mode {mode:04o}), and belongs to uid {}, {} (L19): \
                 a sticky directory protects only entries of a trusted owner; chown it or move the installation",
                step.path.display(),
                step.dir.display(),
                step.entry.uid(),
                self.who()
            );
            self.report(&step.path.clone(), text);
        }
    }
}

fn own_dir_text(dir: &Path, mode: u32) -> String {
    let why = if mode & 0o1000 != 0 {
        "the sticky bit does not stop anyone adding files to it"
    } else {
        "anyone can add or replace files in it"
    };
    format!(
        "directory {} is writable by others (mode {mode:04o}) (L19): {why}; chmod o-w {}",
        dir.display(),
        dir.display()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{symlink, PermissionsExt};

    fn chmod(path: &Path, mode: u32) {
        fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
    }

    #[test]
    fn lookup_follows_links_like_the_kernel() {
        let dir = tempfile::tempdir().unwrap();
        let root = fs::canonicalize(dir.path()).unwrap();
        fs::create_dir_all(root.join("a/b")).unwrap();
        fs::write(root.join("a/b/f"), "").unwrap();
        symlink("a/b", root.join("l")).unwrap();
        symlink(root.join("l"), root.join("abs")).unwrap();
        let (steps, real) = lookup(&root.join("abs/../b/f")).unwrap();
        assert_eq!(real, root.join("a/b/f"));
        let walked: Vec<PathBuf> = steps.iter().map(|s| s.path.clone()).collect();
        assert!(walked.contains(&root.join("abs")) && walked.contains(&root.join("l")));
        symlink("loop", root.join("loop")).unwrap();
        assert_eq!(
            lookup(&root.join("loop")).unwrap_err().raw_os_error(),
            Some(nix::libc::ELOOP)
        );
    }

    #[test]
    fn sticky_and_plain_world_writable_directories() {
        let dir = tempfile::tempdir().unwrap();
        let root = fs::canonicalize(dir.path()).unwrap();
        chmod(&root, 0o755);
        let own = root.join("own");
        fs::create_dir_all(own.join("sub")).unwrap();
        fs::write(own.join("sub/f"), "").unwrap();
        let check = || {
            let mut c = Checker::new(&root, std::slice::from_ref(&own));
            c.check(&own.join("sub/f"), Kind::File);
            c.problems
        };
        assert!(check().is_empty(), "{:?}", check());
        // A sticky ancestor protects entries of a trusted owner (root here).
        chmod(&own.join("sub"), 0o1777);
        assert!(check().is_empty(), "{:?}", check());
        chmod(&own.join("sub"), 0o777);
        assert!(check()[0].contains("anyone can replace"), "{:?}", check());
        chmod(&own.join("sub"), 0o755);
        // An own directory: sticky or not, o+w is unsafe.
        chmod(&own, 0o1777);
        assert!(check()[0].contains("sticky bit does not stop"), "{:?}", check());
        chmod(&own, 0o755);
        chmod(&own.join("sub/f"), 0o666);
        assert!(check()[0].contains("sub/f is writable by others"), "{:?}", check());
    }
}
