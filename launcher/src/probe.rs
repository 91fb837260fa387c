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

/// Largest file `Probe::read_file` reads (config, `env.toml`): 1 MiB. A real
/// `launcher.toml` is a few KiB; the cap keeps `/dev/zero`-like mistakes
/// from costing more than a bounded allocation (L19).
pub const MAX_READ_SIZE: u64 = 1 << 20;

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
    /// them), and whether `path` itself is a symlink. Only a regular file of
    /// at most `MAX_READ_SIZE` bytes is read; anything else (a FIFO, a
    /// device, a directory, a huge file) is an error, never a hang (L19).
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
    /// Does this process run in a user namespace that maps only part of the
    /// uids (`/proc/self/uid_map` other than the initial `0 0 4294967295`)?
    /// There the overflow uid (65534) stands for every unmapped owner, root
    /// included. Asked only when the trust walk meets that uid.
    fn in_partial_user_namespace(&self) -> bool {
        match std::fs::read_to_string("/proc/self/uid_map") {
            Ok(map) => map.split_whitespace().collect::<Vec<_>>() != ["0", "0", "4294967295"],
            Err(_) => false,
        }
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

/// `"a FIFO"` and so on, for "not a regular file" messages.
fn kind_of(file_type: std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if file_type.is_dir() {
        "a directory"
    } else if file_type.is_fifo() {
        "a FIFO"
    } else if file_type.is_char_device() {
        "a character device"
    } else if file_type.is_block_device() {
        "a block device"
    } else if file_type.is_socket() {
        "a socket"
    } else {
        "a special file"
    }
}

fn too_big(size: &str) -> io::Error {
    let message = format!("larger than the limit of {MAX_READ_SIZE} bytes (1 MiB): {size}");
    io::Error::new(io::ErrorKind::InvalidData, message)
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
        // O_NONBLOCK: opening a FIFO must not wait for a writer (a regular
        // file ignores the flag). O_CLOEXEC comes with std's open.
        let open = |flags| {
            std::fs::OpenOptions::new()
                .read(true)
                .custom_flags(flags | libc::O_NONBLOCK)
                .open(path)
        };
        // O_NOFOLLOW first: the common case (not a symlink) then needs no
        // readlink to know it; a symlink fails with ELOOP and is opened again.
        let (mut file, through_symlink) = match open(libc::O_NOFOLLOW) {
            Ok(file) => (file, false),
            Err(e) if e.raw_os_error() == Some(libc::ELOOP) => (open(0)?, true),
            Err(e) => return Err(e),
        };
        let meta = file.metadata()?;
        if !meta.is_file() {
            let message = format!("not a regular file ({})", kind_of(meta.file_type()));
            return Err(io::Error::new(io::ErrorKind::InvalidInput, message));
        }
        if meta.len() > MAX_READ_SIZE {
            return Err(too_big(&format!("{} bytes", meta.len())));
        }
        // Sized from the fstat above and read by hand: `read_to_end` would
        // fstat and lseek again (L23 counts every call). One byte more than
        // the size, so that the usual read ends with the 0 of end of file; a
        // file that grows meanwhile is still capped.
        let mut bytes = vec![0u8; meta.len() as usize + 1];
        let mut filled = 0;
        loop {
            if filled == bytes.len() {
                if filled as u64 > MAX_READ_SIZE {
                    return Err(too_big("it grew while being read"));
                }
                bytes.resize((bytes.len() * 2).min(MAX_READ_SIZE as usize + 1), 0);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(path: &Path) -> String {
        match OsProbe.read_file(path) {
            Ok(read) => panic!("{} read: {} bytes", path.display(), read.bytes.len()),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn l19_only_regular_files_of_sane_size_are_read() {
        let t = tempfile::tempdir().unwrap();
        assert_eq!(
            refused(Path::new("/dev/zero")),
            "not a regular file (a character device)"
        );
        assert_eq!(refused(t.path()), "not a regular file (a directory)");
        let fifo = t.path().join("fifo");
        let c = CString::new(fifo.as_os_str().as_bytes()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
        // Opened without a writer: O_NONBLOCK, so no hang.
        assert_eq!(refused(&fifo), "not a regular file (a FIFO)");
        let big = t.path().join("big");
        let file = std::fs::File::create(&big).unwrap();
        file.set_len(1 << 30).unwrap(); // sparse: no disk used
        assert_eq!(
            refused(&big),
            "larger than the limit of 1048576 bytes (1 MiB): 1073741824 bytes"
        );
        file.set_len(MAX_READ_SIZE).unwrap();
        assert_eq!(OsProbe.read_file(&big).unwrap().bytes.len() as u64, MAX_READ_SIZE);
        file.set_len(MAX_READ_SIZE + 1).unwrap();
        assert!(refused(&big).starts_with("larger than the limit"));
    }

    #[test]
    fn l19_read_file_says_when_it_came_through_a_symlink() {
        let t = tempfile::tempdir().unwrap();
        std::fs::write(t.path().join("f"), "x").unwrap();
        std::os::unix::fs::symlink("f", t.path().join("l")).unwrap();
        let direct = OsProbe.read_file(&t.path().join("f")).unwrap();
        let linked = OsProbe.read_file(&t.path().join("l")).unwrap();
        assert!(!direct.through_symlink && linked.through_symlink);
        assert_eq!((direct.bytes, linked.bytes), (b"x".to_vec(), b"x".to_vec()));
        assert!(OsProbe.lstat(&t.path().join("l")).unwrap().is_symlink());
        assert!(!OsProbe.stat(&t.path().join("l")).unwrap().is_symlink());
    }
}
