//! A small in-memory model of a directory tree of links, files and
//! directories: what `<env>.d` should contain, what it does contain, and the
//! difference. Comparing the two first is what makes `farm` idempotent (I3):
//! when they are equal nothing on disk is touched.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{symlink, DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Permission bits of the directories the installer creates.
pub const DIR_MODE: u32 = 0o755;
/// Permission bits of the plain files the installer creates.
pub const FILE_MODE: u32 = 0o644;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    Dir {
        mode: u32,
    },
    Link {
        target: PathBuf,
    },
    File {
        bytes: Vec<u8>,
        mode: u32,
    },
    /// Found on disk only: a device, fifo or socket.
    Other,
}

impl Node {
    pub fn dir() -> Node {
        Node::Dir { mode: DIR_MODE }
    }
    pub fn link(target: impl Into<PathBuf>) -> Node {
        Node::Link { target: target.into() }
    }
    pub fn file(bytes: impl Into<Vec<u8>>) -> Node {
        Node::File {
            bytes: bytes.into(),
            mode: FILE_MODE,
        }
    }
}

/// Entries by path relative to the tree's root. A `BTreeMap` keyed by
/// `PathBuf` orders a directory before everything inside it, which is the
/// order they must be created in.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tree {
    pub entries: BTreeMap<PathBuf, Node>,
}

/// How an existing tree differs from the desired one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Diff {
    /// In the desired tree only.
    pub missing: Vec<PathBuf>,
    /// On disk only.
    pub extra: Vec<PathBuf>,
    /// In both, but different (link target, kind, content or mode).
    pub changed: Vec<PathBuf>,
}

impl Diff {
    pub fn is_empty(&self) -> bool {
        self.missing.is_empty() && self.extra.is_empty() && self.changed.is_empty()
    }
}

impl Tree {
    pub fn insert(&mut self, path: impl Into<PathBuf>, node: Node) {
        self.entries.insert(path.into(), node);
    }

    pub fn get(&self, path: &Path) -> Option<&Node> {
        self.entries.get(path)
    }

    /// Read the tree under `root` (following `root` itself if it is a
    /// symlink, but no link inside). `Ok(None)` when `root` does not exist.
    pub fn read(root: &Path) -> io::Result<Option<Tree>> {
        let mut tree = Tree::default();
        match read_into(root, Path::new(""), &mut tree) {
            Ok(()) => Ok(Some(tree)),
            Err(e) if e.kind() == io::ErrorKind::NotFound && !exists(root) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Create every entry under `root`, an existing empty directory, and
    /// sync it all (files, then directories), so that the tree is on disk
    /// before it is swapped in.
    pub fn write_into(&self, root: &Path) -> io::Result<()> {
        let mut dirs = vec![root.to_path_buf()];
        for (rel, node) in &self.entries {
            let path = root.join(rel);
            match node {
                Node::Dir { mode } => {
                    fs::DirBuilder::new().mode(*mode).create(&path)?;
                    // The umask may have cleared bits the tree asks for.
                    fs::set_permissions(&path, fs::Permissions::from_mode(*mode))?;
                    dirs.push(path);
                }
                Node::Link { target } => symlink(target, &path)?,
                Node::File { bytes, mode } => {
                    let mut file = fs::File::create(&path)?;
                    file.write_all(bytes)?;
                    file.set_permissions(fs::Permissions::from_mode(*mode))?;
                    file.sync_all()?;
                }
                Node::Other => {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidInput,
                        format!("cannot create special file {}", path.display()),
                    ))
                }
            }
        }
        for dir in dirs.iter().rev() {
            fs::File::open(dir)?.sync_all()?;
        }
        Ok(())
    }

    /// What `actual` (on disk) lacks, has in excess, or has differently
    /// compared with `self` (desired).
    pub fn diff(&self, actual: &Tree) -> Diff {
        let mut diff = Diff::default();
        for (path, want) in &self.entries {
            match actual.entries.get(path) {
                None => diff.missing.push(path.clone()),
                Some(have) if have != want => diff.changed.push(path.clone()),
                Some(_) => {}
            }
        }
        for path in actual.entries.keys() {
            if !self.entries.contains_key(path) {
                diff.extra.push(path.clone());
            }
        }
        diff
    }

    /// Number of entries (not counting the root directory itself).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

fn exists(path: &Path) -> bool {
    fs::symlink_metadata(path).is_ok()
}

fn read_into(root: &Path, rel: &Path, tree: &mut Tree) -> io::Result<()> {
    for entry in fs::read_dir(root.join(rel))? {
        let entry = entry?;
        let rel = rel.join(entry.file_name());
        let file_type = entry.file_type()?;
        let node = if file_type.is_symlink() {
            Node::link(fs::read_link(entry.path())?)
        } else if file_type.is_dir() {
            let mode = entry.metadata()?.permissions().mode() & 0o7777;
            read_into(root, &rel, tree)?;
            Node::Dir { mode }
        } else if file_type.is_file() {
            let mode = entry.metadata()?.permissions().mode() & 0o7777;
            Node::File {
                bytes: fs::read(entry.path())?,
                mode,
            }
        } else {
            Node::Other
        };
        tree.insert(rel, node);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Tree {
        let mut t = Tree::default();
        t.insert("bin", Node::dir());
        t.insert("bin/python3", Node::link("../../launcher"));
        t.insert("bin/with space", Node::link("../../launcher"));
        t.insert("env.toml", Node::file(b"[env]\n".to_vec()));
        t
    }

    #[test]
    fn written_tree_reads_back_equal() {
        let dir = tempfile::tempdir().unwrap();
        let t = sample();
        t.write_into(dir.path()).unwrap();
        let back = Tree::read(dir.path()).unwrap().unwrap();
        assert_eq!(back, t);
        assert!(t.diff(&back).is_empty());
    }

    #[test]
    fn missing_root_reads_as_none() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(Tree::read(&dir.path().join("nope")).unwrap(), None);
    }

    #[test]
    fn diff_names_missing_extra_and_changed() {
        let want = sample();
        let mut have = sample();
        have.entries.remove(Path::new("bin/python3"));
        have.insert("bin/old", Node::link("../../launcher"));
        have.insert("bin/with space", Node::link("/elsewhere"));
        let d = want.diff(&have);
        assert_eq!(d.missing, vec![PathBuf::from("bin/python3")]);
        assert_eq!(d.extra, vec![PathBuf::from("bin/old")]);
        assert_eq!(d.changed, vec![PathBuf::from("bin/with space")]);
    }

    #[test]
    fn mode_differences_count_as_changes() {
        let dir = tempfile::tempdir().unwrap();
        let t = sample();
        t.write_into(dir.path()).unwrap();
        fs::set_permissions(dir.path().join("env.toml"), fs::Permissions::from_mode(0o666)).unwrap();
        let back = Tree::read(dir.path()).unwrap().unwrap();
        assert_eq!(t.diff(&back).changed, vec![PathBuf::from("env.toml")]);
    }
}
