//! Building the container for real: private namespaces, the images mounted
//! read-only (`ro,nosuid,nodev`), overlayfs with the last overlay on top and
//! the base at the bottom, the binds, then `chroot`.
//!
//! As root: kernel squashfs on loop devices in a private mount namespace.
//! As an ordinary user: a user namespace (the caller's uid and gid mapped
//! to themselves), squashfuse helpers (`fuse.rs`) and overlayfs inside it.
//! Everything lives in the private mount namespace, so it all goes when the
//! last process of the command exits, however it exits.
//!
//! The session's scratch space is a tmpfs on `/tmp` *in that namespace*;
//! host paths under `/tmp` (binds, the base, the working directory) stay
//! reachable through a descriptor opened before (`/proc/self/fd/N/…`).

use std::ffi::{CString, OsStr};
use std::fs::{self, File};
use std::io::{self, Read};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Component, Path, PathBuf};

use super::cli::{Bind, Request};
use super::{fuse, loopdev, NativeError};

const SESSION: &str = "/tmp";
const SQUASHFS_MAGIC: &[u8; 4] = b"hsqs";

/// Where the command runs from, after `enter`.
pub struct Entered {
    pub cwd: PathBuf,
}

fn os_error(what: String, error: io::Error) -> NativeError {
    NativeError::new(format!("{what}: {error}"))
}

/// A file the runtime mounts: a squashfs image, opened now (before the
/// namespaces) and checked.
struct Image {
    path: PathBuf,
    file: File,
}

fn open_image(path: &Path, what: &str) -> Result<Image, NativeError> {
    let mut file = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_CLOEXEC | libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| os_error(format!("{what} {}", path.display()), e))?;
    let meta = file
        .metadata()
        .map_err(|e| os_error(format!("{what} {}", path.display()), e))?;
    if !meta.is_file() {
        return Err(NativeError::new(format!(
            "{what} {} is not a regular file",
            path.display()
        )));
    }
    let mut magic = [0u8; 4];
    if file.read_exact(&mut magic).is_err() || &magic != SQUASHFS_MAGIC {
        return Err(
            NativeError::new(format!("{what} {} is not a squashfs image", path.display()))
                .hint("the native runtime mounts squashfs images and sandbox directories (not SIF)"),
        );
    }
    Ok(Image {
        path: path.to_path_buf(),
        file,
    })
}

/// The base: a sandbox directory or a squashfs image.
enum Base {
    Directory,
    Image(Image),
}

fn c(path: &Path) -> Result<CString, NativeError> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| NativeError::new(format!("path {} contains a NUL byte", path.display())))
}

fn mount(
    source: Option<&Path>,
    target: &Path,
    fstype: Option<&str>,
    flags: libc::c_ulong,
    data: Option<&str>,
) -> io::Result<()> {
    let source = source.map(|s| CString::new(s.as_os_str().as_bytes())).transpose()?;
    let target = CString::new(target.as_os_str().as_bytes())?;
    let fstype = fstype.map(CString::new).transpose()?;
    let data = data.map(CString::new).transpose()?;
    // SAFETY: every pointer is a valid C string or null, as mount(2) takes.
    let rc = unsafe {
        libc::mount(
            source.as_ref().map_or(std::ptr::null(), |s| s.as_ptr()),
            target.as_ptr(),
            fstype.as_ref().map_or(std::ptr::null(), |s| s.as_ptr()),
            flags,
            data.as_ref().map_or(std::ptr::null(), |s| s.as_ptr().cast()),
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

fn open_path(path: &Path) -> Result<OwnedFd, NativeError> {
    let file = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_PATH | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| os_error(format!("{}", path.display()), e))?;
    Ok(file.into())
}

/// `path` as reachable once the session tmpfs covers `/tmp`.
fn host_path(path: &Path, tmp: &OwnedFd) -> PathBuf {
    match path.strip_prefix(SESSION) {
        Ok(rest) => PathBuf::from(format!("/proc/self/fd/{}", tmp.as_raw_fd())).join(rest),
        Err(_) => path.to_path_buf(),
    }
}

fn write_file(path: &str, text: &str) -> Result<(), NativeError> {
    fs::write(path, text).map_err(|e| os_error(format!("writing {path}"), e))
}

fn unshare(flags: libc::c_int) -> io::Result<()> {
    // SAFETY: unshare(2) with constant flags.
    if unsafe { libc::unshare(flags) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Build the container described by `request` and move into it.
pub fn enter(request: &Request, home: Option<&Path>, path_var: Option<&OsStr>) -> Result<Entered, NativeError> {
    // SAFETY: trivial getters.
    let (uid, gid, euid) = unsafe { (libc::getuid(), libc::getgid(), libc::geteuid()) };
    let privileged = euid == 0;
    let cwd = std::env::current_dir().map_err(|e| os_error("working directory".into(), e))?;

    // Everything checked and opened before any namespace: one clear line
    // naming the path at fault.
    let base = match fs::metadata(&request.image) {
        Ok(m) if m.is_dir() => {
            if !request.image.join(".singularity.d").is_dir() {
                return Err(NativeError::new(format!(
                    "base {} has no /.singularity.d (the launcher's inside marker)",
                    request.image.display()
                )));
            }
            Base::Directory
        }
        Ok(_) => Base::Image(open_image(&request.image, "base image")?),
        Err(e) => return Err(os_error(format!("base image {}", request.image.display()), e)),
    };
    let overlays: Vec<Image> = request
        .overlays
        .iter()
        .map(|p| open_image(p, "overlay"))
        .collect::<Result<_, _>>()?;
    // L19 for what the runtime mounts: nobody but root, the installation's
    // owner (who owns this binary) and the caller may be able to change it.
    let owner = fs::metadata("/proc/self/exe")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m))
        .unwrap_or(0);
    for (path, what) in
        std::iter::once((&request.image, "base image")).chain(request.overlays.iter().map(|p| (p, "overlay image")))
    {
        let check = crate::trust::Request {
            path,
            what,
            lookup: crate::trust::Lookup::Required,
            known: None,
            owner: crate::trust::Owner::Uid(owner),
        };
        crate::trust::check(&crate::probe::OsProbe, &check).map_err(|e| {
            let mut error = NativeError::new(e.to_string());
            if let Some(hint) = e.hint() {
                error = error.hint(hint.trim_start_matches("hint: "));
            }
            error
        })?;
    }
    for bind in &request.binds {
        if fs::symlink_metadata(&bind.source).is_err() {
            return Err(NativeError::new(format!(
                "bind source {} does not exist",
                bind.source.display()
            )));
        }
    }
    // The images to mount, bottom (base) first.
    let mut images: Vec<&Image> = Vec::new();
    if let Base::Image(image) = &base {
        images.push(image);
    }
    images.extend(overlays.iter());

    let helpers = if privileged {
        None
    } else {
        let squashfuse = fuse::find_squashfuse(path_var).ok_or_else(|| {
            NativeError::new("the native runtime needs squashfuse to mount images as an ordinary user".into())
                .hint("install it (Debian: apt-get install squashfuse), or run as root")
        })?;
        let paths: Vec<PathBuf> = images.iter().map(|i| i.path.clone()).collect();
        Some(fuse::Helpers::spawn(&squashfuse, &paths).map_err(|e| os_error("starting squashfuse".into(), e))?)
    };

    if privileged {
        unshare(libc::CLONE_NEWNS).map_err(|e| os_error("private mount namespace".into(), e))?;
    } else {
        unshare(libc::CLONE_NEWUSER | libc::CLONE_NEWNS).map_err(|e| {
            NativeError::new(format!("cannot create a user namespace: {e}")).hint(
                "unprivileged user namespaces are off here: see sysctl user.max_user_namespaces, \
                 kernel.unprivileged_userns_clone, kernel.apparmor_restrict_unprivileged_userns; or run as root",
            )
        })?;
        write_file("/proc/self/setgroups", "deny")?;
        write_file("/proc/self/uid_map", &format!("{uid} {uid} 1"))?;
        write_file("/proc/self/gid_map", &format!("{gid} {gid} 1"))?;
    }
    mount(None, Path::new("/"), None, libc::MS_REC | libc::MS_SLAVE, None)
        .map_err(|e| os_error("making / a slave mount".into(), e))?;

    // Descriptors of mounts of *this* namespace (opened after unshare:
    // overlayfs and bind refuse mounts of another namespace).
    let tmp = open_path(Path::new(SESSION))?;
    let base_dir = match &base {
        Base::Directory => Some(open_path(&request.image)?),
        Base::Image(_) => None,
    };
    let session = Path::new(SESSION);
    mount(
        Some(Path::new("launcher-native")),
        session,
        Some("tmpfs"),
        libc::MS_NOSUID | libc::MS_NODEV,
        Some("mode=0700"),
    )
    .map_err(|e| os_error(format!("session tmpfs on {SESSION}"), e))?;

    // The layers.
    let flags = libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV;
    let mut layer_dirs = Vec::new();
    for (index, image) in images.iter().enumerate() {
        let dir = session.join(format!("layer{index}"));
        fs::create_dir(&dir).map_err(|e| os_error(format!("mkdir {}", dir.display()), e))?;
        let failed = |e: io::Error| os_error(format!("cannot mount {}", image.path.display()), e);
        match &helpers {
            None => {
                let (device, _keep) = loopdev::attach(&image.file).map_err(failed)?;
                mount(Some(&device), &dir, Some("squashfs"), flags, None).map_err(failed)?;
            }
            Some(helpers) => {
                let device = fuse::open_device().map_err(|e| {
                    os_error("/dev/fuse".into(), e)
                        .hint("/dev/fuse must be usable by users (mode 0666, as distributions ship it)")
                })?;
                let options = format!("fd={},rootmode=40000,user_id={uid},group_id={gid}", device.as_raw_fd());
                mount(
                    Some(Path::new("squashfuse")),
                    &dir,
                    Some("fuse.squashfuse"),
                    flags,
                    Some(&options),
                )
                .map_err(failed)?;
                helpers.serve(index, device).map_err(failed)?;
            }
        }
        layer_dirs.push(dir);
    }
    let mut lower: Vec<PathBuf> = layer_dirs.iter().rev().cloned().collect();
    if let Some(fd) = &base_dir {
        lower.push(PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd())));
    }
    let scratch = session.join("scratch");
    let upper = scratch.join("upper");
    let work = scratch.join("work");
    let root = session.join("root");
    for dir in [&scratch, &upper, &work, &root] {
        fs::create_dir(dir).map_err(|e| os_error(format!("mkdir {}", dir.display()), e))?;
    }
    let lowerdir = lower
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(":");
    let mut options = format!(
        "lowerdir={lowerdir},upperdir={},workdir={}",
        upper.display(),
        work.display()
    );
    if !privileged {
        options.push_str(",userxattr");
    }
    mount(
        Some(Path::new("overlay")),
        &root,
        Some("overlay"),
        libc::MS_NOSUID | libc::MS_NODEV,
        Some(&options),
    )
    .map_err(|e| os_error("cannot mount the container's overlay".into(), e))?;

    // The binds: the runtime's defaults, the requested ones, then the cwd.
    let mut binds: Vec<Bind> = ["/proc", "/sys", "/dev"].iter().map(|p| same(Path::new(p))).collect();
    if let Some(home) = home.filter(|h| h.is_absolute() && *h != Path::new("/") && h.is_dir()) {
        binds.push(same(home));
    }
    binds.push(same(Path::new("/tmp")));
    binds.extend(request.binds.iter().cloned());
    if cwd != Path::new("/") {
        binds.push(same(&cwd));
    }
    // Shortest destination first, as Apptainer >= 1.1 does: a bind inside
    // another (`<env>.d/.inside` over `<env>.d/bin`) lands on top of it.
    binds.sort_by_key(|b| b.destination.as_os_str().len());
    for bind in &binds {
        bind_into(&root, bind, &tmp)?;
    }
    mount(
        None,
        &root,
        None,
        libc::MS_REMOUNT | libc::MS_BIND | libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV,
        None,
    )
    .map_err(|e| os_error("read-only container root".into(), e))?;
    let root_c = c(&root)?;
    // SAFETY: chroot(2) with a valid C string.
    if unsafe { libc::chroot(root_c.as_ptr()) } != 0 {
        return Err(os_error("chroot".into(), io::Error::last_os_error()));
    }
    let here = [Some(cwd.as_path()), home, Some(Path::new("/"))]
        .into_iter()
        .flatten()
        .find(|dir| std::env::set_current_dir(dir).is_ok())
        .unwrap_or(Path::new("/"))
        .to_path_buf();
    Ok(Entered { cwd: here })
}

fn same(path: &Path) -> Bind {
    Bind {
        source: path.to_path_buf(),
        destination: path.to_path_buf(),
    }
}

fn bind_into(root: &Path, bind: &Bind, tmp: &OwnedFd) -> Result<(), NativeError> {
    let source = host_path(&bind.source, tmp);
    let mut target = root.to_path_buf();
    target.extend(
        bind.destination
            .components()
            .filter(|c| matches!(c, Component::Normal(_))),
    );
    if fs::symlink_metadata(&target).is_err() {
        let made = if source.is_dir() {
            fs::create_dir_all(&target)
        } else {
            target
                .parent()
                .map_or(Ok(()), fs::create_dir_all)
                .and_then(|()| File::create(&target).map(drop))
        };
        made.map_err(|e| {
            os_error(
                format!(
                    "cannot make a mount point for {} in the container",
                    bind.destination.display()
                ),
                e,
            )
        })?;
    }
    // Under /tmp a recursive bind would also copy the session tmpfs that
    // covers it here; host mounts below /tmp are not carried (documented).
    let recursive = if bind.source.starts_with(SESSION) {
        0
    } else {
        libc::MS_REC
    };
    mount(Some(&source), &target, None, libc::MS_BIND | recursive, None).map_err(|e| {
        os_error(
            format!(
                "cannot bind {} to {}",
                bind.source.display(),
                bind.destination.display()
            ),
            e,
        )
    })
}
