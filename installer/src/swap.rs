//! Replacing live files and trees so that no reader ever sees a partial or
//! missing one (I2, I3).
//!
//! * Files (`launcher`, `launcher.toml`): written under a temporary name in
//!   the same directory, synced, then renamed over the old one.
//! * Trees (`<env>.d`): built beside the live one, then swapped in with one
//!   `renameat2(RENAME_EXCHANGE)`. Where the file system lacks it (NFS,
//!   some parallel file systems), `<env>.d` becomes a symlink to a versioned
//!   directory `.versions/<env>.<id>/<env>.d` and is swapped by renaming a
//!   new symlink over it. The versioned directory keeps the final component
//!   `<env>.d` (the launcher names the env after it, L2) and holds
//!   `launcher` and `overrides` links, so the relative `../../launcher`
//!   links resolve from there exactly as from `<scripts>/<env>.d/bin`.
//!
//! The old tree is never removed here: it is handed back as `Retired`, for
//! the caller to remove after every swap is done (and a short grace).

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{renameat2, RenameFlags};

use crate::error::{io_reason, InstallError, Result};
use crate::tree::{Node, Tree, DIR_MODE};

/// Directory of `<scripts>` holding versioned trees (fallback layout).
pub const VERSIONS_DIR: &str = ".versions";
/// Setting this variable to `1` makes the installer act as if the file
/// system had no `RENAME_EXCHANGE` (tests of the fallback layout).
pub const NO_EXCHANGE_VAR: &str = "INSTALLER_NO_EXCHANGE";

/// Install `bytes` at `dest` with permission bits `mode`, atomically.
/// Returns false (and touches nothing) when `dest` already has exactly
/// these bytes and this mode.
pub fn install_file(dest: &Path, bytes: &[u8], mode: u32) -> Result<bool> {
    if let Ok(meta) = fs::metadata(dest) {
        if meta.is_file()
            && meta.permissions().mode() & 0o7777 == mode
            && meta.len() == bytes.len() as u64
            && fs::read(dest).is_ok_and(|old| old == bytes)
        {
            return Ok(false);
        }
    }
    let dir = dest.parent().unwrap_or(Path::new("."));
    let name = dest
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    let mut temp = tempfile::Builder::new()
        .prefix(&format!(".{name}.new-"))
        .tempfile_in(dir)
        .map_err(|e| InstallError::io(dir, e))?;
    let write = |temp: &mut tempfile::NamedTempFile| -> io::Result<()> {
        temp.write_all(bytes)?;
        temp.as_file().set_permissions(fs::Permissions::from_mode(mode))?;
        temp.as_file().sync_all()
    };
    write(&mut temp).map_err(|e| InstallError::io(temp.path(), e))?;
    crate::fault::after(&format!("temp:{name}"));
    temp.persist(dest).map_err(|e| InstallError::io(dest, e.error))?;
    sync_dir(dir)?;
    Ok(true)
}

/// Create `dir` and its missing parents with mode 0755 whatever the umask:
/// the launcher refuses a directory writable by others (L19), and one
/// writable by the group or others would let them put code in users' way.
/// Directories that exist already are left as they are.
pub fn create_dirs(dir: &Path) -> io::Result<()> {
    match fs::metadata(dir) {
        Ok(meta) if meta.is_dir() => return Ok(()),
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
                create_dirs(parent)?;
            }
        }
        Err(e) => return Err(e),
    }
    match fs::create_dir(dir) {
        Ok(()) => fs::set_permissions(dir, fs::Permissions::from_mode(DIR_MODE)),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists && dir.is_dir() => Ok(()),
        Err(e) => Err(e),
    }
}

/// `fsync` a directory, so that the renames and links made in it survive
/// a crash of the machine (not only of the process).
pub fn sync_dir(dir: &Path) -> Result<()> {
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| InstallError::io(dir, e))
}

/// What is at `<scripts>/<env>.d` now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Live {
    Absent,
    /// A real directory.
    Dir,
    /// Our symlink to `.versions/<env>.<id>/<env>.d`; holds the absolute
    /// path of `.versions/<env>.<id>`.
    Versioned(PathBuf),
    /// A symlink to something else: an alias of another env (I9).
    Alias(PathBuf),
    /// A file or anything else the installer did not make.
    Foreign,
}

pub fn inspect(scripts: &Path, env: &str) -> io::Result<Live> {
    let live = scripts.join(format!("{env}.d"));
    let meta = match fs::symlink_metadata(&live) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Live::Absent),
        Err(e) => return Err(e),
    };
    if meta.is_dir() {
        return Ok(Live::Dir);
    }
    if !meta.file_type().is_symlink() {
        return Ok(Live::Foreign);
    }
    let target = fs::read_link(&live)?;
    Ok(match version_root_of(&target, env) {
        Some(root) => Live::Versioned(scripts.join(root)),
        None => Live::Alias(target),
    })
}

/// `.versions/<env>.<id>` when `target` is `.versions/<env>.<id>/<env>.d`.
fn version_root_of(target: &Path, env: &str) -> Option<PathBuf> {
    let mut parts = target.components().map(|c| c.as_os_str().to_str());
    let (Some(Some(versions)), Some(Some(id)), Some(Some(leaf)), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return None;
    };
    let ours = versions == VERSIONS_DIR
        && id.strip_prefix(env).is_some_and(|rest| rest.starts_with('.'))
        && leaf == format!("{env}.d");
    ours.then(|| Path::new(versions).join(id))
}

/// What runs killed part-way leave in `<scripts>`: staging and retired
/// trees (`.<env>.d.new-*`, `.<env>.d.old-*`), temporary links
/// (`.<env>.d.link-*`) and files (`.NAME.new-*`), scratch directories
/// (`.exchange-probe-*`), and versioned trees (`.versions/*`) that no
/// `<env>.d` link points at. Only safe to remove under the lock.
pub fn leftovers(scripts: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut live_roots = Vec::new();
    let Ok(entries) = fs::read_dir(scripts) else {
        return found;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(env) = name.strip_suffix(".d") {
            if let Ok(Live::Versioned(root)) = inspect(scripts, env) {
                live_roots.extend(root.file_name().map(|n| n.to_os_string()));
            }
        } else if name.starts_with('.')
            && (name.contains(".new-")
                || name.contains(".d.old-")
                || name.contains(".d.link-")
                || name.starts_with(".exchange-probe-"))
        {
            found.push(entry.path());
        }
    }
    if let Ok(entries) = fs::read_dir(scripts.join(VERSIONS_DIR)) {
        for entry in entries.flatten() {
            if !live_roots.contains(&entry.file_name()) {
                found.push(entry.path());
            }
        }
    }
    found.sort();
    found
}

/// Remove a file, link or whole directory (not following links).
pub fn remove_any(path: &Path) -> io::Result<()> {
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Whether `renameat2(RENAME_EXCHANGE)` works in directory `dir`: tried on
/// two scratch directories, since only the file system can tell.
pub fn exchange_supported(dir: &Path) -> bool {
    if std::env::var_os(NO_EXCHANGE_VAR).is_some_and(|v| v == "1") {
        return false;
    }
    let (Ok(a), Ok(b)) = (
        tempfile::Builder::new().prefix(".exchange-probe-").tempdir_in(dir),
        tempfile::Builder::new().prefix(".exchange-probe-").tempdir_in(dir),
    ) else {
        return false;
    };
    renameat2(None, a.path(), None, b.path(), RenameFlags::RENAME_EXCHANGE).is_ok()
}

/// Old trees to remove once every swap of the run is done.
#[derive(Debug, Default)]
pub struct Retired(Vec<PathBuf>);

impl Retired {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    pub fn extend(&mut self, other: Retired) {
        self.0.extend(other.0);
    }
    /// Remove them all; the first failure is returned, the rest still tried.
    pub fn remove(self) -> Result<()> {
        let mut first = None;
        for path in self.0 {
            if let Err(e) = fs::remove_dir_all(&path) {
                if e.kind() != io::ErrorKind::NotFound {
                    first.get_or_insert(InstallError::io(&path, e));
                }
            }
        }
        first.map_or(Ok(()), Err)
    }
}

/// Swaps new `<env>.d` trees into one scripts directory.
pub struct Swapper {
    scripts: PathBuf,
    launcher_name: String,
    exchange: bool,
}

impl Swapper {
    pub fn new(scripts: &Path, launcher_name: &str) -> Swapper {
        Swapper {
            scripts: scripts.to_path_buf(),
            launcher_name: launcher_name.to_string(),
            exchange: exchange_supported(scripts),
        }
    }

    /// Build `tree` and make it the live `<env>.d` in one step; `warn` is
    /// told when that cannot be fully atomic (a one-time layout change).
    /// Nothing new is left behind on error.
    pub fn replace(&self, env: &str, tree: &Tree, live: &Live, warn: &dyn Fn(&str)) -> Result<Retired> {
        let live_path = self.scripts.join(format!("{env}.d"));
        match live {
            Live::Alias(target) => {
                return Err(InstallError::Usage(format!(
                    "{} is an alias (-> {}); build the farm of the env it points at",
                    live_path.display(),
                    target.display()
                )))
            }
            Live::Foreign => {
                return Err(InstallError::Io {
                    path: live_path,
                    reason: "exists and is not a directory the installer made; move it away".into(),
                })
            }
            _ => {}
        }
        let use_dir = self.exchange && matches!(live, Live::Absent | Live::Dir);
        if use_dir {
            self.replace_dir(env, tree, &live_path, live)
        } else {
            self.replace_versioned(env, tree, &live_path, live, warn)
        }
    }

    fn replace_dir(&self, env: &str, tree: &Tree, live_path: &Path, live: &Live) -> Result<Retired> {
        let staged = self.stage_dir(&self.scripts, &format!(".{env}.d.new-"))?;
        tree.write_into(staged.path())
            .map_err(|e| InstallError::io(staged.path(), e))?;
        if *live == Live::Absent {
            // Nothing to exchange with; a rename onto a free name is atomic.
            fs::rename(staged.path(), live_path).map_err(|e| InstallError::io(live_path, e))?;
            let _ = staged.keep();
            sync_dir(&self.scripts)?;
            return Ok(Retired::default());
        }
        renameat2(None, staged.path(), None, live_path, RenameFlags::RENAME_EXCHANGE)
            .map_err(|e| errno_error(live_path, e))?;
        // The staging name now holds the old tree.
        let old = staged.keep();
        sync_dir(&self.scripts)?;
        Ok(Retired(vec![old]))
    }

    fn replace_versioned(
        &self,
        env: &str,
        tree: &Tree,
        live_path: &Path,
        live: &Live,
        warn: &dyn Fn(&str),
    ) -> Result<Retired> {
        let versions = self.scripts.join(VERSIONS_DIR);
        create_dirs(&versions).map_err(|e| InstallError::io(&versions, e))?;
        let root = self.stage_dir(&versions, &format!("{env}."))?;
        let leaf = format!("{env}.d");
        let mut with_helpers = Tree::default();
        with_helpers.insert(
            &self.launcher_name,
            Node::link(Path::new("../..").join(&self.launcher_name)),
        );
        with_helpers.insert("overrides", Node::link("../../overrides"));
        with_helpers.insert(&leaf, Node::dir());
        for (path, node) in &tree.entries {
            with_helpers.insert(Path::new(&leaf).join(path), node.clone());
        }
        with_helpers
            .write_into(root.path())
            .map_err(|e| InstallError::io(root.path(), e))?;

        sync_dir(&versions)?;
        let id = root.path().file_name().unwrap_or_default().to_os_string();
        let target = Path::new(VERSIONS_DIR).join(&id).join(&leaf);
        let temp_link = self.scripts.join(format!(".{env}.d.link-{}", std::process::id()));
        let _ = fs::remove_file(&temp_link);
        symlink(&target, &temp_link).map_err(|e| InstallError::io(&temp_link, e))?;

        let mut retired = Retired::default();
        match live {
            Live::Versioned(old_root) => retired.0.push(old_root.clone()),
            Live::Dir => {
                // A real directory cannot be replaced by a symlink in one
                // step: move it aside first. Happens once per env.
                warn(&format!(
                    "{}: this file system has no RENAME_EXCHANGE; switching to the versioned \
                     layout (the tree is absent for an instant, this once)",
                    live_path.display()
                ));
                let aside = self.scripts.join(format!(".{env}.d.old-{}", std::process::id()));
                if let Err(e) = fs::rename(live_path, &aside) {
                    let _ = fs::remove_file(&temp_link);
                    return Err(InstallError::io(live_path, e));
                }
                retired.0.push(aside);
            }
            _ => {}
        }
        if let Err(e) = fs::rename(&temp_link, live_path) {
            let _ = fs::remove_file(&temp_link);
            return Err(InstallError::io(live_path, e));
        }
        let _ = root.keep();
        sync_dir(&self.scripts)?;
        Ok(retired)
    }

    /// An empty directory with mode 0755 under `parent`, removed on drop
    /// unless kept.
    fn stage_dir(&self, parent: &Path, prefix: &str) -> Result<tempfile::TempDir> {
        let dir = tempfile::Builder::new()
            .prefix(prefix)
            .tempdir_in(parent)
            .map_err(|e| InstallError::io(parent, e))?;
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(DIR_MODE))
            .map_err(|e| InstallError::io(dir.path(), e))?;
        Ok(dir)
    }
}

fn errno_error(path: &Path, errno: Errno) -> InstallError {
    InstallError::Io {
        path: path.to_path_buf(),
        reason: io_reason(&io::Error::from(errno)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versioned_targets_are_recognised_only_for_their_env() {
        let t = Path::new(".versions/e-1.abc123/e-1.d");
        assert_eq!(version_root_of(t, "e-1"), Some(PathBuf::from(".versions/e-1.abc123")));
        assert_eq!(version_root_of(t, "e"), None);
        assert_eq!(version_root_of(Path::new("e-1.d"), "e"), None);
        assert_eq!(version_root_of(Path::new("/abs/.versions/e.x/e.d"), "e"), None);
    }

    #[test]
    fn install_file_skips_identical_content() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("launcher.toml");
        assert!(install_file(&dest, b"a = 1\n", 0o644).unwrap());
        let before = fs::metadata(&dest).unwrap();
        assert!(!install_file(&dest, b"a = 1\n", 0o644).unwrap());
        let after = fs::metadata(&dest).unwrap();
        use std::os::unix::fs::MetadataExt;
        assert_eq!(before.ino(), after.ino());
        assert!(install_file(&dest, b"a = 2\n", 0o644).unwrap());
        assert_eq!(fs::read(&dest).unwrap(), b"a = 2\n");
        assert!(install_file(&dest, b"a = 2\n", 0o600).unwrap());
        assert_eq!(fs::metadata(&dest).unwrap().permissions().mode() & 0o777, 0o600);
        // No temporary files left over.
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
