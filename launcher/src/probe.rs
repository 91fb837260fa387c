//! The few file-system questions the planner asks, behind a trait.
//!
//! The planner (`plan`) never touches the file system itself: it asks a
//! `Probe`. The real one (`OsProbe`) makes exactly one system call per
//! question, which is what keeps a hop inside the L23 budget; tests can wrap
//! it to count or deny calls.

use std::ffi::{CString, OsString};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// What `stat(2)` (or `lstat(2)`) says about a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileStat {
    pub mode: u32,
    pub dev: u64,
    pub ino: u64,
    /// The owner (L19 trusts root and the installation's owner only).
    pub uid: u32,
}

impl FileStat {
    pub fn is_dir(&self) -> bool {
        self.mode & libc::S_IFMT == libc::S_IFDIR
    }
    pub fn is_file(&self) -> bool {
        self.mode & libc::S_IFMT == libc::S_IFREG
    }
    /// Only `Probe::lstat` can say so; `stat` follows links.
    pub fn is_symlink(&self) -> bool {
        self.mode & libc::S_IFMT == libc::S_IFLNK
    }
    /// Any execute bit set on a regular file.
    pub fn is_executable_file(&self) -> bool {
        self.is_file() && self.mode & 0o111 != 0
    }
    /// Writable by others (o+w).
    pub fn world_writable(&self) -> bool {
        self.mode & 0o002 != 0
    }
    pub fn sticky(&self) -> bool {
        self.mode & libc::S_ISVTX != 0
    }
    /// Same inode as `other`: how launcher links are recognised.
    pub fn same_file(&self, other: &FileStat) -> bool {
        self.dev == other.dev && self.ino == other.ino
    }
}

/// A file read whole by `Probe::read_file`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileRead {
    pub bytes: Vec<u8>,
    /// `fstat` of the open file.
    pub stat: FileStat,
    /// `path` was a symlink (its final component), so where the file really
    /// lives is somewhere else (L19 checks that directory too).
    pub through_symlink: bool,
}

pub trait Probe {
    /// `readlink(2)`; an error (EINVAL) when the path is not a symlink.
    fn read_link(&self, path: &Path) -> io::Result<PathBuf>;
    /// `stat(2)`, following symlinks.
    fn stat(&self, path: &Path) -> io::Result<FileStat>;
    /// `lstat(2)`: a symlink itself, not its target (the L19 walk).
    fn lstat(&self, path: &Path) -> io::Result<FileStat>;
    /// The whole file and the `fstat` of the open file (no race between
    /// them), and whether `path` itself is a symlink.
    fn read_file(&self, path: &Path) -> io::Result<FileRead>;
    /// `access(R_OK)`.
    fn readable(&self, path: &Path) -> bool;
    /// Names in a directory (unsorted); only `overlays = "all"` needs it.
    fn list_dir(&self, path: &Path) -> io::Result<Vec<OsString>>;
    /// The effective uid of this process: a caller's own files are as safe
    /// for it as root's (L19). Not a file-system call; asked only when the
    /// trust walk meets an owner other than root.
    fn caller_uid(&self) -> u32 {
        // SAFETY: geteuid(2) has no preconditions and cannot fail.
        unsafe { libc::geteuid() }
    }
}

/// The real file system.
#[derive(Debug, Default, Clone, Copy)]
pub struct OsProbe;

fn to_stat(m: &std::fs::Metadata) -> FileStat {
    FileStat {
        mode: m.mode(),
        dev: m.dev(),
        ino: m.ino(),
        uid: m.uid(),
    }
}

impl Probe for OsProbe {
    fn read_link(&self, path: &Path) -> io::Result<PathBuf> {
        std::fs::read_link(path)
    }

    fn stat(&self, path: &Path) -> io::Result<FileStat> {
        std::fs::metadata(path).map(|m| to_stat(&m))
    }

    fn lstat(&self, path: &Path) -> io::Result<FileStat> {
        std::fs::symlink_metadata(path).map(|m| to_stat(&m))
    }

    fn read_file(&self, path: &Path) -> io::Result<FileRead> {
        use std::io::Read;
        use std::os::unix::fs::OpenOptionsExt;
        // O_NOFOLLOW first: the common case (not a symlink) then needs no
        // readlink to know it; a symlink fails with ELOOP and is opened again.
        let nofollow = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(path);
        let (mut file, through_symlink) = match nofollow {
            Ok(file) => (file, false),
            Err(e) if e.raw_os_error() == Some(libc::ELOOP) => (std::fs::File::open(path)?, true),
            Err(e) => return Err(e),
        };
        let meta = file.metadata()?;
        // Sized from the fstat above and read by hand: `read_to_end` would
        // fstat and lseek again (L23 counts every call).
        let mut bytes = vec![0u8; meta.len() as usize + 1];
        let mut filled = 0;
        loop {
            if filled == bytes.len() {
                bytes.resize(bytes.len() * 2, 0);
            }
            match file.read(&mut bytes[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        bytes.truncate(filled);
        Ok(FileRead {
            bytes,
            stat: to_stat(&meta),
            through_symlink,
        })
    }

    fn readable(&self, path: &Path) -> bool {
        match CString::new(path.as_os_str().as_bytes()) {
            // SAFETY: a valid NUL-terminated string; access(2) has no other preconditions.
            Ok(c) => unsafe { libc::access(c.as_ptr(), libc::R_OK) == 0 },
            Err(_) => false,
        }
    }

    fn list_dir(&self, path: &Path) -> io::Result<Vec<OsString>> {
        std::fs::read_dir(path)?
            .map(|entry| entry.map(|e| e.file_name()))
            .collect()
    }
}
