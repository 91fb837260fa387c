//! squashfuse helpers for the native runtime as an ordinary user.
//!
//! A FUSE mount in a user namespace needs `/dev/fuse` opened *inside* that
//! namespace (the kernel checks the opener's user namespace), but its server
//! must not live inside the private mount namespace, or it would keep the
//! namespace — and so its own mount — alive for ever. So each helper is
//! forked before the namespaces are entered, detached (double fork, own
//! session: not the program's child, no terminal signals), and waits on a
//! socket. The runtime then opens `/dev/fuse`, mounts it, and hands the
//! descriptor over (`SCM_RIGHTS`); the helper execs `squashfuse -f IMAGE
//! /dev/fd/N` (libfuse ≥ 3.3 serves an already mounted descriptor). The
//! runtime closes its own copy, so a helper that dies aborts the connection
//! instead of hanging the mount. When the program ends, the namespace and
//! its mounts go, the connection aborts and the helper exits.

use std::ffi::{CString, OsStr};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

/// Descriptor number the helper gives `squashfuse` (`/dev/fd/N`).
const FUSE_FD_IN_HELPER: RawFd = 3;

/// Waiting helpers, one per image, in order.
pub struct Helpers {
    sockets: Vec<UnixStream>,
}

/// `squashfuse` on `PATH`.
pub fn find_squashfuse(path_var: Option<&OsStr>) -> Option<PathBuf> {
    let path_var = path_var.unwrap_or(OsStr::new("/usr/local/bin:/usr/bin:/bin"));
    path_var
        .as_bytes()
        .split(|&b| b == b':')
        .filter(|d| d.starts_with(b"/"))
        .map(|d| Path::new(OsStr::from_bytes(d)).join("squashfuse"))
        .find(|p| p.is_file())
}

impl Helpers {
    /// Start one detached helper per image.
    pub fn spawn(squashfuse: &Path, images: &[PathBuf]) -> io::Result<Helpers> {
        let mut sockets = Vec::with_capacity(images.len());
        for image in images {
            let (ours, theirs) = UnixStream::pair()?;
            let program = cstring(squashfuse.as_os_str())?;
            let argv = [
                program.clone(),
                cstring(OsStr::new("-f"))?,
                cstring(image.as_os_str())?,
                cstring(OsStr::new(&format!("/dev/fd/{FUSE_FD_IN_HELPER}")))?,
            ];
            // SAFETY: the launcher is single-threaded; the children only
            // call async-signal-safe functions before exec or _exit.
            match unsafe { libc::fork() } {
                -1 => return Err(io::Error::last_os_error()),
                0 => unsafe {
                    if libc::fork() != 0 {
                        libc::_exit(0);
                    }
                    helper(theirs.as_raw_fd(), ours.as_raw_fd(), &program, &argv)
                },
                child => {
                    let mut status = 0;
                    // SAFETY: reaping our own short-lived child.
                    unsafe { libc::waitpid(child, &mut status, 0) };
                }
            }
            drop(theirs);
            sockets.push(ours);
        }
        Ok(Helpers { sockets })
    }

    /// Hand helper `index` the mounted FUSE descriptor.
    pub fn serve(&self, index: usize, fuse: OwnedFd) -> io::Result<()> {
        send_fd(&self.sockets[index], fuse.as_raw_fd())
        // `fuse` is closed here: the helper holds the only copy.
    }
}

fn cstring(s: &OsStr) -> io::Result<CString> {
    CString::new(s.as_bytes()).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in a path"))
}

/// In the detached grandchild: new session, wait for the descriptor, exec.
unsafe fn helper(socket: RawFd, other_end: RawFd, program: &CString, argv: &[CString; 4]) -> ! {
    libc::close(other_end);
    libc::setsid();
    let fd = match recv_fd(socket) {
        Some(fd) => fd,
        None => libc::_exit(0),
    };
    if libc::dup2(fd, FUSE_FD_IN_HELPER) < 0 {
        libc::_exit(1);
    }
    let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
    if null >= 0 {
        libc::dup2(null, 0);
        libc::dup2(null, 1);
        libc::dup2(null, 2);
    }
    let ptrs: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).chain([std::ptr::null()]).collect();
    libc::execv(program.as_ptr(), ptrs.as_ptr());
    libc::_exit(127)
}

fn send_fd(socket: &UnixStream, fd: RawFd) -> io::Result<()> {
    let mut byte = [0u8; 1];
    let mut iov = libc::iovec {
        iov_base: byte.as_mut_ptr().cast(),
        iov_len: 1,
    };
    // SAFETY: building a one-descriptor SCM_RIGHTS control message in a
    // buffer of the size CMSG_SPACE says.
    unsafe {
        let space = libc::CMSG_SPACE(std::mem::size_of::<RawFd>() as u32) as usize;
        let mut control = vec![0u8; space];
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = space as _;
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        (*cmsg).cmsg_level = libc::SOL_SOCKET;
        (*cmsg).cmsg_type = libc::SCM_RIGHTS;
        (*cmsg).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<RawFd>() as u32) as _;
        std::ptr::write_unaligned(libc::CMSG_DATA(cmsg).cast::<RawFd>(), fd);
        if libc::sendmsg(socket.as_raw_fd(), &msg, 0) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

unsafe fn recv_fd(socket: RawFd) -> Option<RawFd> {
    let mut byte = [0u8; 1];
    let mut iov = libc::iovec {
        iov_base: byte.as_mut_ptr().cast(),
        iov_len: 1,
    };
    let mut control = [0u8; 64];
    let mut msg: libc::msghdr = std::mem::zeroed();
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = control.len() as _;
    if libc::recvmsg(socket, &mut msg, 0) <= 0 {
        return None;
    }
    let cmsg = libc::CMSG_FIRSTHDR(&msg);
    if cmsg.is_null() || (*cmsg).cmsg_type != libc::SCM_RIGHTS {
        return None;
    }
    Some(std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast::<RawFd>()))
}

/// Open `/dev/fuse` (in the user namespace) for one mount.
pub fn open_device() -> io::Result<OwnedFd> {
    // SAFETY: open(2) with a constant path; the result is checked.
    let fd = unsafe { libc::open(c"/dev/fuse".as_ptr(), libc::O_RDWR | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a fresh descriptor we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}
