//! Building the container's file system for real: a private mount
//! namespace, the squashfs overlays stacked on the sandbox base image with
//! overlayfs, the runtime's default binds and `--bind`, then `chroot`.
//!
//! Everything is mounted in a mount namespace private to this process, so it
//! all disappears when the command inside exits; nothing is left on the host
//! but the (empty) session directory beside the stand-in binary.

use std::fs;
use std::path::{Component, Path, PathBuf};
use std::process::Command;

use nix::mount::{mount, MsFlags};
use nix::sched::{unshare, CloneFlags};

use super::cli::{BindSpec, ExecRequest};

/// Marker directory that makes a directory a sandbox image.
pub const SANDBOX_MARKER: &str = ".singularity.d";

/// What to mount, checked before anything is mounted so that bad input gets
/// a one-line message naming the path at fault.
#[derive(Debug)]
pub struct Layout {
    image: PathBuf,
    overlays: Vec<PathBuf>,
    /// Runtime defaults first, then `--bind` entries, then the working
    /// directory: later binds may sit inside earlier ones.
    binds: Vec<BindSpec>,
}

impl Layout {
    pub fn check(request: &ExecRequest, home: &Path, cwd: &Path) -> Result<Layout, String> {
        let image = &request.image;
        if !image.exists() {
            return Err(format!("image {} does not exist", image.display()));
        }
        if !image.join(SANDBOX_MARKER).is_dir() {
            return Err(format!(
                "image {} is not a sandbox directory with /{SANDBOX_MARKER} (SIF is not modelled)",
                image.display()
            ));
        }
        for overlay in &request.overlays {
            match fs::metadata(overlay) {
                Ok(meta) if meta.is_file() => {}
                Ok(_) => return Err(format!("overlay {} is not a file", overlay.display())),
                Err(e) => return Err(format!("overlay {}: {e}", overlay.display())),
            }
            for (what, path) in [("overlay", overlay), ("image", image)] {
                let text = path.as_os_str().as_encoded_bytes();
                if text.contains(&b':') || text.contains(&b',') {
                    return Err(format!("{what} path {} contains ':' or ','", path.display()));
                }
            }
        }
        let mut binds: Vec<BindSpec> = ["/proc", "/sys", "/dev"]
            .iter()
            .map(|p| same_path_bind(Path::new(p)))
            .collect();
        // `--contain`: no host home, /tmp or cwd (the real runtimes put
        // fresh tmpfs directories there; the stand-in leaves the image's).
        if !request.contain {
            if home.is_dir() && home != Path::new("/") {
                binds.push(same_path_bind(home));
            }
            binds.push(same_path_bind(Path::new("/tmp")));
        }
        for bind in &request.binds {
            if !bind.source.exists() {
                return Err(format!("bind source {} does not exist", bind.source.display()));
            }
            binds.push(bind.clone());
        }
        if cwd != Path::new("/") && !request.contain {
            binds.push(same_path_bind(cwd));
        }
        // Apptainer >= 1.1 mounts bind destinations shortest first
        // (CHANGELOG 1.1.0), so a bind inside another lands on top of it.
        binds.sort_by_key(|b| b.destination.as_os_str().len());
        Ok(Layout {
            image: image.clone(),
            overlays: request.overlays.clone(),
            binds,
        })
    }
}

fn same_path_bind(path: &Path) -> BindSpec {
    BindSpec {
        source: path.to_owned(),
        destination: path.to_owned(),
    }
}

/// Mount the container below `session` (a directory on the host that the
/// stand-in owns, like Apptainer's `var/apptainer/mnt/session`) and return
/// the path of its root. The calling process moves to a new mount namespace.
pub fn assemble(layout: &Layout, session: &Path) -> Result<PathBuf, String> {
    unshare(CloneFlags::CLONE_NEWNS).map_err(|e| format!("unshare(CLONE_NEWNS): {e} (needs root)"))?;
    mount_flags(Path::new("/"), MsFlags::MS_REC | MsFlags::MS_PRIVATE)?;

    fs::create_dir_all(session).map_err(|e| format!("session directory {}: {e}", session.display()))?;
    mount(
        Some("tmpfs"),
        session,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some("mode=0700"),
    )
    .map_err(|e| format!("mount tmpfs on {}: {e}", session.display()))?;
    // Recursive binds of a host directory that contains the session (e.g. the
    // working directory) must not copy the container into itself.
    mount_flags(session, MsFlags::MS_UNBINDABLE)?;

    let mut lower = Vec::new();
    for (index, overlay) in layout.overlays.iter().enumerate() {
        let layer = make_dir(&session.join(format!("layer{index}")))?;
        mount_squashfs(overlay, &layer)?;
        lower.push(layer);
    }
    // overlayfs lists the top layer first: last --overlay, …, base image.
    lower.reverse();
    lower.push(layout.image.clone());

    // The upper layer only ever receives mount points created for binds (as
    // Apptainer's underlay does); the root is remounted read-only afterwards.
    // overlayfs refuses an upper layer on an unbindable mount: give it its own tmpfs.
    let scratch = make_dir(&session.join("scratch"))?;
    mount(
        Some("tmpfs"),
        &scratch,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some("mode=0700"),
    )
    .map_err(|e| format!("mount tmpfs on {}: {e}", scratch.display()))?;
    let upper = make_dir(&scratch.join("upper"))?;
    let work = make_dir(&scratch.join("work"))?;
    let root = make_dir(&session.join("root"))?;
    let lowerdir = lower
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(":");
    let options = format!(
        "lowerdir={lowerdir},upperdir={},workdir={}",
        upper.display(),
        work.display()
    );
    mount(
        Some("overlay"),
        &root,
        Some("overlay"),
        MsFlags::empty(),
        Some(options.as_str()),
    )
    .map_err(|e| format!("mount overlay ({options}): {e}"))?;

    for bind in &layout.binds {
        bind_into(&root, bind)?;
    }
    mount_flags(&root, MsFlags::MS_REMOUNT | MsFlags::MS_BIND | MsFlags::MS_RDONLY)?;
    Ok(root)
}

/// `chroot` into the assembled root and go back to the working directory;
/// where it is not in the container, the home directory, then `/`
/// (container_linux.go: the runtimes fall back with a warning).
pub fn enter(root: &Path, cwd: &Path, home: &Path) -> Result<(), String> {
    nix::unistd::chroot(root).map_err(|e| format!("chroot {}: {e}", root.display()))?;
    std::env::set_current_dir(cwd)
        .or_else(|_| std::env::set_current_dir(home))
        .or_else(|_| std::env::set_current_dir("/"))
        .map_err(|e| format!("no working directory in the container: {e}"))
}

fn bind_into(root: &Path, bind: &BindSpec) -> Result<(), String> {
    let target = inside(root, &bind.destination);
    if !target.exists() {
        let created = if bind.source.is_dir() {
            fs::create_dir_all(&target)
        } else {
            target
                .parent()
                .map_or(Ok(()), fs::create_dir_all)
                .and_then(|()| fs::File::create(&target).map(drop))
        };
        created.map_err(|e| {
            format!(
                "cannot create mount point {} in the container for bind {}: {e}",
                bind.destination.display(),
                bind.source.display()
            )
        })?;
    }
    mount(
        Some(&bind.source),
        &target,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )
    .map_err(|e| {
        format!(
            "bind {} to {} in the container: {e}",
            bind.source.display(),
            bind.destination.display()
        )
    })
}

/// `path` (absolute, in the container) as seen from outside, below `root`.
fn inside(root: &Path, path: &Path) -> PathBuf {
    let mut joined = root.to_owned();
    joined.extend(path.components().filter(|c| matches!(c, Component::Normal(_))));
    joined
}

/// Loop-mount a squashfs image read-only. mount(8) does the loop-device
/// dance (and sets autoclear, so the device is freed with the namespace).
fn mount_squashfs(image: &Path, at: &Path) -> Result<(), String> {
    let output = Command::new("/bin/mount")
        .args(["-t", "squashfs", "-o", "ro,loop"])
        .arg(image)
        .arg(at)
        .output()
        .map_err(|e| format!("cannot run /bin/mount for overlay {}: {e}", image.display()))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "cannot mount overlay {}: {}",
            image.display(),
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

fn mount_flags(target: &Path, flags: MsFlags) -> Result<(), String> {
    mount(None::<&str>, target, None::<&str>, flags, None::<&str>)
        .map_err(|e| format!("mount {flags:?} on {}: {e}", target.display()))
}

fn make_dir(path: &Path) -> Result<PathBuf, String> {
    fs::create_dir(path).map_err(|e| format!("mkdir {}: {e}", path.display()))?;
    Ok(path.to_owned())
}
