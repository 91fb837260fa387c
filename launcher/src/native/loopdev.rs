//! Loop devices for kernel squashfs mounts (the native runtime as root).
//!
//! `LOOP_CTL_GET_FREE` then `LOOP_CONFIGURE` (Linux ≥ 5.8: attach, read-only
//! and autoclear in one call; older kernels get `LOOP_SET_FD` +
//! `LOOP_SET_STATUS64`). Autoclear frees the device when its mount goes,
//! which is when the last process of the private mount namespace exits: no
//! device outlives the command.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;

const LOOP_CTL_GET_FREE: libc::c_ulong = 0x4C82;
const LOOP_SET_FD: libc::c_ulong = 0x4C00;
const LOOP_SET_STATUS64: libc::c_ulong = 0x4C04;
const LOOP_CONFIGURE: libc::c_ulong = 0x4C0A;
const LO_FLAGS_READ_ONLY: u32 = 1;
const LO_FLAGS_AUTOCLEAR: u32 = 4;

/// `struct loop_info64` (linux/loop.h).
#[repr(C)]
struct LoopInfo64 {
    lo_device: u64,
    lo_inode: u64,
    lo_rdevice: u64,
    lo_offset: u64,
    lo_sizelimit: u64,
    lo_number: u32,
    lo_encrypt_type: u32,
    lo_encrypt_key_size: u32,
    lo_flags: u32,
    lo_file_name: [u8; 64],
    lo_crypt_name: [u8; 64],
    lo_encrypt_key: [u8; 32],
    lo_init: [u64; 2],
}

/// `struct loop_config` (linux/loop.h).
#[repr(C)]
struct LoopConfig {
    fd: u32,
    block_size: u32,
    info: LoopInfo64,
    reserved: [u64; 8],
}

fn info() -> LoopInfo64 {
    LoopInfo64 {
        lo_device: 0,
        lo_inode: 0,
        lo_rdevice: 0,
        lo_offset: 0,
        lo_sizelimit: 0,
        lo_number: 0,
        lo_encrypt_type: 0,
        lo_encrypt_key_size: 0,
        lo_flags: LO_FLAGS_READ_ONLY | LO_FLAGS_AUTOCLEAR,
        lo_file_name: [0; 64],
        lo_crypt_name: [0; 64],
        lo_encrypt_key: [0; 32],
        lo_init: [0; 2],
    }
}

/// A loop device attached read-only to `image`; its path is for `mount`.
/// Keep the returned file open until the mount is made.
pub fn attach(image: &File) -> io::Result<(PathBuf, File)> {
    let control = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_CLOEXEC)
        .open("/dev/loop-control")?;
    for _ in 0..32 {
        // SAFETY: an ioctl without argument on the control device.
        let number = unsafe { libc::ioctl(control.as_raw_fd(), LOOP_CTL_GET_FREE as _) };
        if number < 0 {
            return Err(io::Error::last_os_error());
        }
        let path = PathBuf::from(format!("/dev/loop{number}"));
        let device = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_CLOEXEC)
            .open(&path)?;
        let config = LoopConfig {
            fd: image.as_raw_fd() as u32,
            block_size: 0,
            info: info(),
            reserved: [0; 8],
        };
        // SAFETY: `config` is a valid `struct loop_config` for the call's duration.
        if unsafe { libc::ioctl(device.as_raw_fd(), LOOP_CONFIGURE as _, &config) } == 0 {
            return Ok((path, device));
        }
        match io::Error::last_os_error().raw_os_error() {
            // Another process took this device between the two calls.
            Some(libc::EBUSY) => continue,
            // No LOOP_CONFIGURE (Linux < 5.8).
            Some(libc::EINVAL) | Some(libc::ENOTTY) => return attach_old(&device, image).map(|()| (path, device)),
            _ => return Err(io::Error::last_os_error()),
        }
    }
    Err(io::Error::new(
        io::ErrorKind::WouldBlock,
        "no free loop device after 32 tries",
    ))
}

fn attach_old(device: &File, image: &File) -> io::Result<()> {
    // SAFETY: plain ioctls on an open loop device with valid arguments.
    unsafe {
        if libc::ioctl(device.as_raw_fd(), LOOP_SET_FD as _, image.as_raw_fd()) != 0 {
            return Err(io::Error::last_os_error());
        }
        let info = info();
        if libc::ioctl(device.as_raw_fd(), LOOP_SET_STATUS64 as _, &info) != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}
