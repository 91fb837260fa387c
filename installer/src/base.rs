//! What a base image needs so that Apptainer and SingularityCE accept it in
//! full (`../shared/reference/runtime-semantics.md` §1, §2, §4), shared by
//! `demo` (which writes one) and `check` (which inspects the configured one).
//!
//! - `/.singularity.d/env/99-base.sh`: the runtimes inject the prefixed
//!   variables (`APPTAINERENV_…`, `SINGULARITYENV_…`) only when it exists or
//!   when `/.singularity.d/env/` does not; an `env/` without it silently drops
//!   every one of them (`action_script.sh`).
//! - `/.singularity.d/libs`: where `--nv`/`--rocm` put the host's libraries.
//! - a mount point for every bind and for the container prefix: a runtime
//!   that has no writable layer over the base (no overlay, no underlay, as on
//!   a sandbox it cannot overlay) skips a bind whose destination is missing
//!   ("Skipping mount … doesn't exist in container").

use std::collections::VecDeque;
use std::ffi::OsString;
use std::fs;
use std::io;
use std::path::{Component, Path, PathBuf};

use launcher::config::Config;

/// `/.singularity.d/env`, where the runtimes source `*.sh` from.
pub const ENV_DIR: &str = "/.singularity.d/env";
/// The env script whose presence decides whether prefixed variables arrive.
pub const BASE_ENV_SCRIPT: &str = "/.singularity.d/env/99-base.sh";
/// Where `--nv`/`--rocm` bind the host's GPU libraries.
pub const LIBS_DIR: &str = "/.singularity.d/libs";
/// The `99-base.sh` that `installer demo` writes: it sets nothing.
pub const BASE_ENV_TEXT: &str = "#!/bin/sh\n\
# Written by `installer demo`. It sets nothing, but it must exist:\n\
# Apptainer and SingularityCE pass APPTAINERENV_*/SINGULARITYENV_* variables\n\
# into the container only when /.singularity.d/env/99-base.sh exists (or when\n\
# /.singularity.d/env/ does not); otherwise they drop every one of them.\n";

/// Symlinks followed inside a base before giving up (the kernel's limit).
const MAX_HOPS: usize = 40;

/// A path the container needs to exist in the base, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountPoint {
    /// Absolute, as seen inside the container.
    pub path: PathBuf,
    /// The bind source is a file (the mount point must be a file too).
    pub file: bool,
    /// The config key it comes from (`container.binds`, `container.prefix`, …).
    pub source: String,
}

/// Every mount point a launch needs in the base: each configured bind that
/// exists on this host (the launcher binds only those, L12), each `-B`/`--bind`
/// of `runtime.exec_flags` and `[commands.X].exec_flags` (L24), and the
/// container prefix. A path below another bind is left out: the host's
/// directory, bound first, provides it.
pub fn mount_points(config: &Config) -> Vec<MountPoint> {
    let mut binds = Vec::new();
    for bind in &config.container.binds {
        if let Ok(meta) = fs::metadata(bind) {
            binds.push(MountPoint {
                path: bind.clone(),
                file: !meta.is_dir(),
                source: "container.binds".into(),
            });
        }
    }
    let flag_sets = std::iter::once(("runtime.exec_flags".to_string(), &config.runtime.exec_flags)).chain(
        config
            .commands
            .iter()
            .map(|(name, c)| (format!("commands.{name}.exec_flags"), &c.exec_flags)),
    );
    for (source, flags) in flag_sets {
        for (host, inside) in flag_binds(flags) {
            if let Ok(meta) = fs::metadata(&host) {
                binds.push(MountPoint {
                    path: inside,
                    file: !meta.is_dir(),
                    source: source.clone(),
                });
            }
        }
    }
    let mut all = binds.clone();
    all.push(MountPoint {
        path: config.container.prefix.clone(),
        file: false,
        source: "container.prefix".into(),
    });
    let mut seen = std::collections::BTreeSet::new();
    all.into_iter()
        .filter(|m| m.path.is_absolute())
        .filter(|m| {
            !binds
                .iter()
                .any(|b| !b.file && b.path != m.path && m.path.starts_with(&b.path))
        })
        .filter(|m| seen.insert(m.path.clone()))
        .collect()
}

/// `(host source, container destination)` of every `-B`/`--bind` in `flags`
/// (`SRC[:DEST[:OPTS]]`, comma-separated lists, `--bind=…` and `-B=…` too).
pub fn flag_binds(flags: &[String]) -> Vec<(PathBuf, PathBuf)> {
    let mut specs = Vec::new();
    let mut it = flags.iter();
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "-B" | "--bind" => specs.extend(it.next().cloned()),
            _ => {
                if let Some(value) = flag.strip_prefix("--bind=").or_else(|| flag.strip_prefix("-B=")) {
                    specs.push(value.to_string());
                }
            }
        }
    }
    specs
        .iter()
        .flat_map(|list| list.split(','))
        .filter(|spec| !spec.is_empty())
        .map(|spec| {
            let mut parts = spec.split(':');
            let host = PathBuf::from(parts.next().unwrap_or_default());
            let inside = parts
                .next()
                .filter(|d| !d.is_empty())
                .map_or_else(|| host.clone(), PathBuf::from);
            (host, inside)
        })
        .collect()
}

/// Where the container path `path` lands in the sandbox `root`, following
/// symlinks inside the sandbox the way the runtime does (an absolute target
/// starts again at `root`, `..` never leaves it). `NotFound` when a component
/// is missing.
pub fn resolve_in_root(root: &Path, path: &Path) -> io::Result<PathBuf> {
    let mut pending: VecDeque<OsString> = components(path).collect();
    let mut resolved: Vec<OsString> = Vec::new();
    let mut hops = 0;
    while let Some(name) = pending.pop_front() {
        if name == ".." {
            resolved.pop();
            continue;
        }
        let host: PathBuf = std::iter::once(root.as_os_str())
            .chain(resolved.iter().map(|c| c.as_os_str()))
            .chain(std::iter::once(name.as_os_str()))
            .collect();
        let meta = fs::symlink_metadata(&host)?;
        if meta.file_type().is_symlink() {
            hops += 1;
            if hops > MAX_HOPS {
                return Err(io::Error::from_raw_os_error(nix::libc::ELOOP));
            }
            let target = fs::read_link(&host)?;
            if target.is_absolute() {
                resolved.clear();
            }
            for c in components(&target).collect::<Vec<_>>().into_iter().rev() {
                pending.push_front(c);
            }
        } else if !pending.is_empty() && !meta.is_dir() {
            return Err(io::Error::from_raw_os_error(nix::libc::ENOTDIR));
        } else {
            resolved.push(name);
        }
    }
    Ok(std::iter::once(root.as_os_str())
        .chain(resolved.iter().map(|c| c.as_os_str()))
        .collect())
}

/// The named components of `path`, with `..` kept as `..`.
fn components(path: &Path) -> impl Iterator<Item = OsString> + '_ {
    path.components().filter_map(|c| match c {
        Component::Normal(name) => Some(name.to_os_string()),
        Component::ParentDir => Some(OsString::from("..")),
        Component::RootDir | Component::CurDir | Component::Prefix(_) => None,
    })
}

/// Make `point` in the sandbox `root`: a directory, or an empty file for a
/// file bind, with its missing parents (mode 0755). A symlink on the way is
/// refused, never followed: an absolute one would lead out of the sandbox.
pub fn make_mount_point(root: &Path, point: &MountPoint) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let names: Vec<OsString> = components(&point.path).filter(|c| c != "..").collect();
    let mut at = root.to_path_buf();
    for (i, name) in names.iter().enumerate() {
        at.push(name);
        let last = i + 1 == names.len();
        match fs::symlink_metadata(&at) {
            Ok(meta) if meta.file_type().is_symlink() => {
                return Err(io::Error::other(format!(
                    "a symlink in the base, on the way to the mount point {}",
                    point.path.display()
                )))
            }
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                if last && point.file {
                    fs::write(&at, b"")?;
                    fs::set_permissions(&at, fs::Permissions::from_mode(0o644))?;
                } else {
                    fs::create_dir(&at)?;
                    fs::set_permissions(&at, fs::Permissions::from_mode(0o755))?;
                }
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// How the file system a sandbox base lives on treats it as an overlay
/// lower directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SandboxFs {
    /// Fine (local disk, tmpfs, …).
    Local,
    /// Apptainer and SingularityCE refuse it as an overlay lower directory:
    /// they fall back to an underlay and drop every `--overlay`
    /// (`incompatibleFs` with `lowerDir` in `internal/pkg/util/fs/overlay`).
    DropsOverlays(&'static str),
    /// A network file system the runtimes still overlay (they refuse it only
    /// as a writable upper directory), but every launch reads the base
    /// through it.
    Network(&'static str),
}

/// Classify a `statfs(2)` `f_type`. Pure, so each magic number is
/// unit-tested.
pub fn classify_fs(f_type: u64) -> SandboxFs {
    // A 32-bit magic read through a signed 32-bit f_type arrives sign-extended.
    let magic = if f_type >> 32 == 0xFFFF_FFFF {
        f_type & 0xFFFF_FFFF
    } else {
        f_type
    };
    match magic {
        0x0BD0_0BD0 => SandboxFs::DropsOverlays("Lustre"),
        0x4750_4653 => SandboxFs::DropsOverlays("GPFS (IBM Storage Scale)"),
        0xAAD7_AAEA => SandboxFs::DropsOverlays("PanFS"),
        0xF15F => SandboxFs::DropsOverlays("eCryptfs"),
        0xF_FEA3_6969 => SandboxFs::DropsOverlays("DPC (OceanStor Pacific)"),
        0x6969 => SandboxFs::Network("NFS"),
        0xFF53_4D42 => SandboxFs::Network("CIFS"),
        0xFE53_4D42 => SandboxFs::Network("SMB2"),
        0x517B => SandboxFs::Network("SMB"),
        0x1983_0326 => SandboxFs::Network("BeeGFS"),
        0x6573_5546 => SandboxFs::Network("FUSE"),
        _ => SandboxFs::Local,
    }
}

/// The class of the file system `path` is on.
pub fn sandbox_fs(path: &Path) -> io::Result<SandboxFs> {
    let stat = nix::sys::statfs::statfs(path).map_err(io::Error::from)?;
    #[allow(clippy::unnecessary_cast, clippy::useless_conversion)]
    let raw = stat.filesystem_type().0 as i64;
    Ok(classify_fs(raw as u64))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn every_magic_number() {
        let drops = [
            (0x0BD0_0BD0u64, "Lustre"),
            (0x4750_4653, "GPFS"),
            (0xAAD7_AAEA, "PanFS"),
            (0xF15F, "eCryptfs"),
            (0xF_FEA3_6969, "DPC"),
        ];
        for (magic, name) in drops {
            assert!(
                matches!(classify_fs(magic), SandboxFs::DropsOverlays(n) if n.starts_with(name)),
                "{magic:#x}"
            );
        }
        let network = [
            (0x6969u64, "NFS"),
            (0xFF53_4D42, "CIFS"),
            (0xFE53_4D42, "SMB2"),
            (0x517B, "SMB"),
            (0x1983_0326, "BeeGFS"),
            (0x6573_5546, "FUSE"),
        ];
        for (magic, name) in network {
            assert_eq!(classify_fs(magic), SandboxFs::Network(name), "{magic:#x}");
        }
        // ext4, xfs, tmpfs, btrfs, overlayfs, zfs
        for magic in [
            0xEF53u64,
            0x5846_5342,
            0x0102_1994,
            0x9123_683E,
            0x794C_7630,
            0x2FC1_2FC1,
        ] {
            assert_eq!(classify_fs(magic), SandboxFs::Local, "{magic:#x}");
        }
        // A signed 32-bit f_type, sign-extended.
        assert_eq!(
            classify_fs(0xFF53_4D42u32 as i32 as i64 as u64),
            SandboxFs::Network("CIFS")
        );
        assert!(matches!(
            classify_fs(0xAAD7_AAEAu32 as i32 as i64 as u64),
            SandboxFs::DropsOverlays("PanFS")
        ));
    }

    #[test]
    fn this_test_runs_on_some_file_system() {
        assert!(sandbox_fs(Path::new("/")).is_ok());
        assert!(sandbox_fs(Path::new("/nonexistent/x")).is_err());
    }

    #[test]
    fn resolving_inside_a_sandbox() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::create_dir_all(root.join("usr/lib")).unwrap();
        fs::create_dir_all(root.join("opt/conda")).unwrap();
        symlink("usr/lib", root.join("lib")).unwrap();
        // An absolute link means the sandbox's root, never the host's.
        symlink("/opt", root.join("apps")).unwrap();
        symlink("/etc", root.join("hostetc")).unwrap();
        symlink("loop", root.join("loop")).unwrap();
        fs::write(root.join("file"), "").unwrap();
        assert_eq!(resolve_in_root(root, Path::new("/lib")).unwrap(), root.join("usr/lib"));
        assert_eq!(
            resolve_in_root(root, Path::new("/apps/conda")).unwrap(),
            root.join("opt/conda")
        );
        assert_eq!(
            resolve_in_root(root, Path::new("/../../opt/./conda")).unwrap(),
            root.join("opt/conda")
        );
        let missing = |p: &str| resolve_in_root(root, Path::new(p)).unwrap_err();
        assert_eq!(missing("/hostetc/passwd").kind(), io::ErrorKind::NotFound);
        assert_eq!(missing("/opt/conda/x").kind(), io::ErrorKind::NotFound);
        assert_eq!(missing("/loop").raw_os_error(), Some(nix::libc::ELOOP));
        assert_eq!(missing("/file/x").raw_os_error(), Some(nix::libc::ENOTDIR));
    }

    #[test]
    fn binds_in_exec_flags() {
        let flags: Vec<String> = [
            "--nv",
            "-B",
            "/a,/b:/c:ro",
            "--bind=/d",
            "--contain",
            "-B=/e:/f",
            "--bind",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let want: Vec<(PathBuf, PathBuf)> = [("/a", "/a"), ("/b", "/c"), ("/d", "/d"), ("/e", "/f")]
            .iter()
            .map(|(h, i)| (PathBuf::from(h), PathBuf::from(i)))
            .collect();
        assert_eq!(flag_binds(&flags), want);
    }

    #[test]
    fn mount_points_of_a_config() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        fs::create_dir_all(data.join("sub")).unwrap();
        fs::write(dir.path().join("hosts"), "").unwrap();
        let text = format!(
            "[runtime]\nexec_flags = [\"-B\", \"{d}/hosts:/etc/hosts2\"]\n\
             [container]\nprefix = \"/opt/conda\"\n\
             binds = [\"{d}/data\", \"{d}/data/sub\", \"{d}/missing\"]\n\
             [commands.x]\nexec_flags = [\"--bind={d}/data:/mnt/data\"]\n",
            d = dir.path().display()
        );
        let config = Config::parse(text.as_bytes(), &dir.path().join("launcher.toml")).unwrap();
        let points: Vec<(String, bool, String)> = mount_points(&config)
            .into_iter()
            .map(|m| (m.path.display().to_string(), m.file, m.source))
            .collect();
        let d = dir.path().display();
        assert_eq!(
            points,
            vec![
                (format!("{d}/data"), false, "container.binds".to_string()),
                ("/etc/hosts2".to_string(), true, "runtime.exec_flags".to_string()),
                ("/mnt/data".to_string(), false, "commands.x.exec_flags".to_string()),
                ("/opt/conda".to_string(), false, "container.prefix".to_string()),
            ]
        );
    }
}
