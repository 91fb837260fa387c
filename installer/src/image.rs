//! Reading an environment's squashfs image directly, with `backhand` (I1):
//! no mount, no root, no container runtime.
//!
//! `backhand` parses the whole directory tree when an image is opened; that
//! is one sequential read of the image's metadata, fine even for 250,000
//! files. Only the superblock is read when all we need is the inode count
//! (`status`).

use std::ffi::OsString;
use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use backhand::{FilesystemReader, InnerNode};

use crate::error::{io_reason, InstallError, Result};

/// What an entry of a directory in the image is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryKind {
    File,
    Symlink(PathBuf),
    Dir,
    /// Device, fifo or socket.
    Special,
}

/// One entry of a directory in the image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub name: OsString,
    pub kind: EntryKind,
}

/// An opened image.
pub struct EnvImage {
    path: PathBuf,
    fs: FilesystemReader<'static>,
}

impl EnvImage {
    pub fn open(path: &Path) -> Result<EnvImage> {
        let file = File::open(path).map_err(|e| InstallError::Image {
            path: path.to_path_buf(),
            reason: format!("cannot open: {}", io_reason(&e)),
        })?;
        let fs = FilesystemReader::from_reader(BufReader::new(file)).map_err(|e| InstallError::Image {
            path: path.to_path_buf(),
            reason: format!("not a readable squashfs image: {e}"),
        })?;
        Ok(EnvImage {
            path: path.to_path_buf(),
            fs,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The parsed image, for reading its data blocks (`verify`).
    pub(crate) fn reader(&self) -> &FilesystemReader<'static> {
        &self.fs
    }

    /// The kind of the node at absolute path `inner`, if there is one.
    pub fn kind_of(&self, inner: &Path) -> Option<EntryKind> {
        self.fs
            .files()
            .find(|node| node.fullpath == inner)
            .map(|node| kind(&node.inner))
    }

    /// The entries of directory `inner` (absolute, inside the image), in the
    /// image's order; `None` when `inner` is not a directory of the image.
    pub fn list_dir(&self, inner: &Path) -> Option<Vec<Entry>> {
        if self.kind_of(inner)? != EntryKind::Dir {
            return None;
        }
        let entries = self
            .fs
            .files()
            .filter(|node| node.fullpath.parent() == Some(inner))
            .filter_map(|node| {
                Some(Entry {
                    name: node.fullpath.file_name()?.to_os_string(),
                    kind: kind(&node.inner),
                })
            })
            .collect();
        Some(entries)
    }

    /// The entries of `<prefix>/<env>/bin`; an error naming the image when
    /// there is no such directory.
    pub fn bin_entries(&self, bin: &Path, env: &str) -> Result<Vec<Entry>> {
        self.list_dir(bin).ok_or_else(|| InstallError::NoBinDir {
            path: self.path.clone(),
            inner: bin.to_path_buf(),
            env: env.to_string(),
        })
    }

    /// The contents of the regular file at absolute path `inner`; `None`
    /// when there is no regular file there. Small files only (activation
    /// scripts): the whole file is read into memory.
    pub fn read_file(&self, inner: &Path) -> Option<std::io::Result<Vec<u8>>> {
        let node = self.fs.files().find(|node| node.fullpath == inner)?;
        let InnerNode::File(file) = &node.inner else {
            return None;
        };
        let mut bytes = Vec::new();
        Some(std::io::Read::read_to_end(&mut self.fs.file(file).reader(), &mut bytes).map(|_| bytes))
    }

    /// Number of nodes in the image (files, directories, links, …).
    pub fn node_count(&self) -> u64 {
        self.fs.files().count() as u64
    }
}

fn kind<T>(inner: &InnerNode<T>) -> EntryKind {
    match inner {
        InnerNode::File(_) => EntryKind::File,
        InnerNode::Symlink(link) => EntryKind::Symlink(link.link.clone()),
        InnerNode::Dir(_) => EntryKind::Dir,
        _ => EntryKind::Special,
    }
}

/// The number of inodes recorded in the image's superblock (every file,
/// directory and link inside), without reading anything else.
pub fn inode_count(path: &Path) -> Result<u64> {
    let image_error = |reason: String| InstallError::Image {
        path: path.to_path_buf(),
        reason,
    };
    let file = File::open(path).map_err(|e| image_error(format!("cannot open: {}", io_reason(&e))))?;
    let mut reader: Box<dyn backhand::BufReadSeek> = Box::new(BufReader::new(file));
    let (superblock, _) = backhand::Squashfs::superblock_and_compression_options(
        &mut reader,
        &backhand::kind::Kind::from_const(backhand::kind::LE_V4_0).map_err(|e| image_error(e.to_string()))?,
    )
    .map_err(|e| image_error(format!("not a readable squashfs image: {e}")))?;
    Ok(u64::from(superblock.inode_count))
}
