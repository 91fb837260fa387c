//! `installer build` and `installer update` (issue 14): run a site's own
//! build command where `<container_prefix>/<env>` is a fresh writable
//! directory, in a private mount namespace, then pack the result (I5).
//!
//! The installer provides the place, the isolation and the packing; the
//! command is whatever the site uses (`micromamba create -p …`, `python3 -m
//! venv …`, `pip install -r …`, a script).
//!
//! **How.** The run forks; the child enters a private mount namespace
//! (root: `unshare(CLONE_NEWNS)`; anyone else: a user namespace mapping only
//! their own uid and gid, then a mount namespace), puts the env directory
//! at `<prefix>/<env>`, runs COMMAND there (its output streams to the
//! terminal), lists the packages with the env's own tools, writes the
//! provenance manifest into the env, and packs `<prefix>/<env>` with
//! `pack::run` (mksquashfs, progress bar). The parent waits, removes the
//! build directory, writes the manifest beside the image, and deploys when
//! asked. Nothing the child mounts outlives it: its namespace dies with it.
//!
//! - `build`: the env directory is `<build>/env`, a new empty directory.
//! - `update`: the live image is mounted read-only at `<build>/lower`
//!   (root: `mount -o loop,ro`, kernel squashfs; else `squashfuse`), and
//!   overlayfs puts `<build>/upper` over its `<prefix>/<env>` at
//!   `<build>/merged`, which becomes `<prefix>/<env>`. The *merged* view is
//!   packed, so a file the command deleted (an overlay whiteout in the upper
//!   layer) is simply absent from the new image.
//!
//! **Placing the env at `<prefix>/<env>`.** When that directory exists on
//! the host, the env directory is bind-mounted over it. Otherwise the
//! deepest existing ancestor A (e.g. `/opt`) gets a tmpfs over it holding a
//! bind of each of A's entries (so `/opt/other` stays visible to the
//! command), the missing directories are made in the tmpfs, and the env
//! directory is bound at the end. A may not be `/` (a mount over `/` would
//! not be seen): create the top directory (`/opt`) on the host.

use std::ffi::{OsStr, OsString};
use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use nix::mount::{mount, MsFlags};
use nix::sched::{unshare, CloneFlags};
use nix::sys::signal::{signal, SigHandler, Signal};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{fork, ForkResult};

use crate::error::{io_reason, InstallError, Result, EXIT_DEMO, EXIT_USAGE};
use crate::image::EnvImage;
use crate::manifest::{self, Manifest, Step};
use crate::pack::{self, Compression, PackOptions};
use crate::site::check_env_name;
use crate::ui::Ui;

/// How long `update` waits for squashfuse to mount the live image.
const MOUNT_WAIT_SECS: u64 = 30;

/// What the env directory starts as.
#[derive(Debug, Clone)]
pub enum Mode {
    /// A new empty directory.
    Build,
    /// The env of this image (the live one, for `update`), read-only, with
    /// a writable layer over it.
    Update { from: PathBuf },
}

#[derive(Debug, Clone)]
pub struct BuildOptions {
    pub env: String,
    pub mode: Mode,
    /// COMMAND and its arguments.
    pub command: Vec<OsString>,
    /// The image to write.
    pub output: PathBuf,
    pub container_prefix: PathBuf,
    pub compression: Compression,
    /// Replace an existing output image.
    pub force: bool,
    /// Where the build directory is made. Default: the output's directory.
    pub build_dir: Option<PathBuf>,
    pub keep_build_dir: bool,
    /// More input files to checksum into the manifest (besides the ones
    /// named on the command line).
    pub inputs: Vec<PathBuf>,
    /// `runtime.image` of the site, recorded in the manifest.
    pub base_image: Option<PathBuf>,
    pub dry_run: bool,
}

/// The file beside an image that holds a copy of its manifest:
/// `X.sqsh` → `X.manifest.toml`.
pub fn manifest_beside(image: &Path) -> PathBuf {
    let name = image
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    let stem = name.strip_suffix(".sqsh").unwrap_or(&name);
    image.with_file_name(format!("{stem}.manifest.toml"))
}

/// Run the build or update; returns the image written.
pub fn run(opts: &BuildOptions, ui: &Ui) -> Result<PathBuf> {
    check_env_name(&opts.env)?;
    if opts.command.is_empty() {
        return Err(InstallError::Usage("no COMMAND given (after --)".into()));
    }
    if !opts.container_prefix.is_absolute() {
        return Err(InstallError::Usage(format!(
            "container prefix '{}' must be an absolute path",
            opts.container_prefix.display()
        )));
    }
    let inner = opts.container_prefix.join(&opts.env);
    let output = crate::site::absolute(&opts.output)?;
    if fs::symlink_metadata(&output).is_ok() && !opts.force {
        return Err(InstallError::Usage(format!(
            "{} exists; pass --force to replace it",
            output.display()
        )));
    }
    if crate::runtime::which("mksquashfs").is_none() {
        return Err(InstallError::MissingTool {
            tool: "mksquashfs",
            package: "squashfs-tools",
        });
    }
    let anchor = anchor_of(&inner)?;
    let cwd = std::env::current_dir().map_err(|e| InstallError::io(Path::new("."), e))?;
    let root = nix::unistd::geteuid().is_root();

    // What the update starts from: checked before anything is made.
    let mut steps = Vec::new();
    let mut from_sum = None;
    let from = match &opts.mode {
        Mode::Build => None,
        Mode::Update { from } => {
            let from = crate::site::absolute(from)?;
            let image = EnvImage::open(&from)?;
            image.bin_entries(&inner.join("bin"), &opts.env)?;
            if let Some(old) = Manifest::from_image(&image, &inner)? {
                steps = old.steps;
            }
            if !root && crate::runtime::which("squashfuse").is_none() {
                return Err(InstallError::MissingTool {
                    tool: "squashfuse",
                    package: "squashfuse (or run as root)",
                });
            }
            from_sum = Some(manifest::sha256_file(&from).map_err(|e| InstallError::io(&from, e))?);
            Some(from)
        }
    };
    let inputs = manifest::inputs_of(&opts.command, &cwd, &inner, &opts.inputs)?;
    let date = manifest::now_rfc3339();
    steps.push(Step {
        kind: if from.is_some() { "update" } else { "build" }.into(),
        date: date.clone(),
        command: opts.command.iter().map(|a| a.to_string_lossy().into_owned()).collect(),
        cwd: cwd.to_string_lossy().into_owned(),
        from_image: from.as_ref().map(|f| f.to_string_lossy().into_owned()),
        from_sha256: from_sum,
        inputs,
    });
    let record = Manifest {
        format: manifest::FORMAT,
        env: opts.env.clone(),
        prefix: inner.to_string_lossy().into_owned(),
        date,
        launcher_version: env!("CARGO_PKG_VERSION").into(),
        base_image: opts.base_image.as_ref().map(|b| b.to_string_lossy().into_owned()),
        steps,
        packages: Default::default(),
    };

    let parent = match &opts.build_dir {
        Some(dir) => crate::site::absolute(dir)?,
        None => output.parent().unwrap_or(Path::new("/")).to_path_buf(),
    };
    let shown = manifest::shell_words(&record.steps.last().map(|s| s.command.clone()).unwrap_or_default());
    if opts.dry_run {
        ui.info(format!(
            "would make a build directory in {} and, in a private mount namespace{}, {}put it at {}",
            parent.display(),
            if root { "" } else { " (user namespace)" },
            match &from {
                Some(f) => format!("mount {} read-only with a writable layer over it and ", f.display()),
                None => String::new(),
            },
            inner.display()
        ));
        ui.info(format!("would run: {shown}"));
        ui.info(format!(
            "would list its packages, write {} in it, and pack it into {} ({:?})",
            manifest::FILE_IN_ENV,
            output.display(),
            opts.compression
        ));
        return Ok(output);
    }

    swap_create_dir(&parent)?;
    remove_abandoned(&parent, &opts.env, ui);
    let build = tempfile::Builder::new()
        .prefix(&format!(".{}.build-", opts.env))
        .tempdir_in(&parent)
        .map_err(|e| InstallError::io(&parent, e))?
        .keep();
    let _ = fs::set_permissions(&build, fs::Permissions::from_mode(0o755));
    // Held (by this run, its child and COMMAND, which inherit it) while the
    // build directory is in use; a later run removes a build directory
    // whose lock nobody holds any more (a run killed with -9).
    let _held = fs::File::create(build_lock(&build))
        .ok()
        .and_then(|f| nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusiveNonblock).ok());
    ui.info(format!(
        "{} {} in {} as {}",
        if from.is_some() { "updating" } else { "building" },
        opts.env,
        build.display(),
        inner.display()
    ));

    let plan = Plan {
        build: build.clone(),
        inner,
        anchor,
        from,
        root,
        command: opts.command.clone(),
        record,
        pack: PackOptions {
            prefix: PathBuf::new(),
            env: opts.env.clone(),
            output: output.clone(),
            container_prefix: opts.container_prefix.clone(),
            compression: opts.compression,
            force: opts.force,
            dry_run: false,
            extra_args: vec![],
        },
    };
    let result = in_namespace(&plan, ui);
    let _ = fs::remove_file(build_lock(&build));
    if !opts.keep_build_dir {
        if let Err(e) = remove_build_dir(&build) {
            ui.warn(format!(
                "cannot remove the build directory {}: {}",
                build.display(),
                io_reason(&e)
            ));
        }
    } else {
        ui.info(format!(
            "kept the build directory {} (--keep-build-dir)",
            build.display()
        ));
    }
    if let Err(e) = result {
        let kept = if opts.keep_build_dir {
            format!("build directory kept at {}", build.display())
        } else {
            "build directory removed".into()
        };
        return Err(InstallError::Reported {
            code: e.exit_code(),
            message: format!("{e}; nothing packed ({kept})"),
        });
    }
    // The copy of the manifest beside the image, read back from the image.
    let image = EnvImage::open(&output)?;
    if let Some(found) = Manifest::from_image(&image, &plan.inner)? {
        let beside = manifest_beside(&output);
        crate::swap::install_file(&beside, found.render().as_bytes(), 0o644)?;
        ui.info(format!(
            "provenance: {} packages, manifest in the image and in {}",
            found.package_count(),
            beside.display()
        ));
    }
    Ok(output)
}

/// `<build>.lock`, beside the build directory (so that removing the
/// directory never races with its lock).
fn build_lock(build: &Path) -> PathBuf {
    let mut name = build.as_os_str().to_os_string();
    name.push(".lock");
    PathBuf::from(name)
}

/// Build directories of `env` in `parent` left by runs killed before they
/// could clean up: their lock is free. One line each.
fn remove_abandoned(parent: &Path, env: &str, ui: &Ui) {
    let prefix = format!(".{env}.build-");
    let Ok(entries) = fs::read_dir(parent) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.starts_with(&prefix) || name.ends_with(".lock") || !entry.path().is_dir() {
            continue;
        }
        let lock = build_lock(&entry.path());
        let free = fs::File::open(&lock)
            .map(|f| nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusiveNonblock).is_ok())
            // No lock file: kept with --keep-build-dir (or just being made).
            .unwrap_or(false);
        if free {
            match remove_build_dir(&entry.path()) {
                Ok(()) => ui.info(format!(
                    "removed {}, left by a build that was killed",
                    entry.path().display()
                )),
                Err(e) => ui.warn(format!("cannot remove {}: {}", entry.path().display(), io_reason(&e))),
            }
            let _ = fs::remove_file(&lock);
        }
    }
}

/// Remove the build directory. Overlayfs leaves `work/work` with mode
/// 0000 (an ordinary user's own directory they cannot read): directories
/// are made readable and the removal tried again.
fn remove_build_dir(build: &Path) -> std::io::Result<()> {
    if fs::remove_dir_all(build).is_ok() {
        return Ok(());
    }
    fn open_up(dir: &Path) {
        let _ = fs::set_permissions(dir, fs::Permissions::from_mode(0o700));
        if let Ok(entries) = fs::read_dir(dir) {
            for entry in entries.flatten() {
                if entry.file_type().is_ok_and(|t| t.is_dir()) {
                    open_up(&entry.path());
                }
            }
        }
    }
    open_up(build);
    fs::remove_dir_all(build)
}

fn swap_create_dir(dir: &Path) -> Result<()> {
    crate::swap::create_dirs(dir).map_err(|e| InstallError::io(dir, e))
}

/// The deepest existing directory above (or at) `inner`; refuses `/` as
/// the place of the tmpfs when `inner` itself does not exist.
fn anchor_of(inner: &Path) -> Result<PathBuf> {
    if inner.is_dir() {
        return Ok(inner.to_path_buf());
    }
    let mut anchor = inner.parent();
    while let Some(dir) = anchor {
        if dir.is_dir() {
            break;
        }
        anchor = dir.parent();
    }
    match anchor {
        Some(dir) if dir != Path::new("/") => Ok(dir.to_path_buf()),
        _ => {
            let top = inner.components().nth(1).map_or_else(String::new, |c| {
                Path::new("/").join(c.as_os_str()).display().to_string()
            });
            Err(InstallError::Usage(format!(
                "{} cannot be made in a private namespace: no directory on the way to it exists but /; create {top} on this host (an empty directory will do)",
                inner.display()
            )))
        }
    }
}

/// Everything the child needs.
struct Plan {
    build: PathBuf,
    inner: PathBuf,
    anchor: PathBuf,
    from: Option<PathBuf>,
    root: bool,
    command: Vec<OsString>,
    record: Manifest,
    pack: PackOptions,
}

/// Fork; the child does the namespace part and reports an error through a
/// pipe; the parent waits (ignoring the terminal's SIGINT/SIGQUIT, which
/// reach the child and COMMAND, so that it can clean up after them).
fn in_namespace(plan: &Plan, ui: &Ui) -> Result<()> {
    let (read_end, write_end) = nix::unistd::pipe().map_err(|e| InstallError::Io {
        path: PathBuf::from("pipe"),
        reason: e.desc().to_string(),
    })?;
    // SAFETY: the installer is single-threaded here (no progress bar or
    // other thread is running), so the child may allocate and run code.
    match unsafe { fork() } {
        Err(e) => Err(InstallError::Io {
            path: PathBuf::from("fork"),
            reason: e.desc().to_string(),
        }),
        Ok(ForkResult::Child) => {
            drop(read_end);
            let code = match child(plan, ui) {
                Ok(()) => 0,
                Err(e) => {
                    let mut pipe = fs::File::from(write_end);
                    let _ = write!(pipe, "{}\n{e}", e.exit_code());
                    e.exit_code().max(1)
                }
            };
            crate::output::finish(0);
            std::process::exit(code);
        }
        Ok(ForkResult::Parent { child }) => {
            drop(write_end);
            let old_int = unsafe { signal(Signal::SIGINT, SigHandler::SigIgn) };
            let old_quit = unsafe { signal(Signal::SIGQUIT, SigHandler::SigIgn) };
            let mut report = String::new();
            let _ = fs::File::from(read_end).read_to_string(&mut report);
            let status = loop {
                match waitpid(child, None) {
                    Err(nix::errno::Errno::EINTR) => continue,
                    other => break other,
                }
            };
            unsafe {
                if let Ok(h) = old_int {
                    let _ = signal(Signal::SIGINT, h);
                }
                if let Ok(h) = old_quit {
                    let _ = signal(Signal::SIGQUIT, h);
                }
            }
            match status {
                Ok(WaitStatus::Exited(_, 0)) => Ok(()),
                _ if !report.is_empty() => {
                    let (code, message) = report.split_once('\n').unwrap_or(("8", &report));
                    Err(InstallError::Reported {
                        code: code.parse().unwrap_or(EXIT_DEMO),
                        message: message.to_string(),
                    })
                }
                Ok(WaitStatus::Signaled(_, sig, _)) => Err(InstallError::Reported {
                    code: EXIT_DEMO,
                    message: format!("the build was killed by {sig}"),
                }),
                other => Err(InstallError::Reported {
                    code: EXIT_DEMO,
                    message: format!("the build ended with {other:?}"),
                }),
            }
        }
    }
}

fn os_err(what: impl Into<String>, e: nix::errno::Errno) -> InstallError {
    InstallError::Io {
        path: PathBuf::from(what.into()),
        reason: e.desc().to_string(),
    }
}

fn write_proc(path: &str, text: &str) -> Result<()> {
    fs::write(path, text).map_err(|e| InstallError::io(Path::new(path), e))
}

fn mkdir(dir: &Path) -> Result<()> {
    fs::create_dir_all(dir).map_err(|e| InstallError::io(dir, e))
}

/// The child: namespace, env in place, COMMAND, packages, manifest, pack.
fn child(plan: &Plan, ui: &Ui) -> Result<()> {
    let uid = nix::unistd::getuid();
    let gid = nix::unistd::getgid();
    if plan.root {
        unshare(CloneFlags::CLONE_NEWNS).map_err(|e| os_err("unshare(CLONE_NEWNS)", e))?;
    } else {
        unshare(CloneFlags::CLONE_NEWUSER | CloneFlags::CLONE_NEWNS).map_err(|e| InstallError::Io {
            path: PathBuf::from("unshare(CLONE_NEWUSER)"),
            reason: format!(
                "{}: unprivileged user namespaces are off here (sysctl user.max_user_namespaces, kernel.unprivileged_userns_clone); run as root",
                e.desc()
            ),
        })?;
        write_proc("/proc/self/setgroups", "deny")?;
        // An update runs squashfuse, whose libfuse mounts by itself only as
        // root (else it calls the setuid fusermount3, which refuses in a
        // user namespace): the user is root in the namespace then. A build
        // keeps the user's own uid (pip and conda then do not act as root).
        let inside = |id: u32| if plan.from.is_some() { 0 } else { id };
        write_proc("/proc/self/uid_map", &format!("{} {uid} 1", inside(uid.as_raw())))?;
        write_proc("/proc/self/gid_map", &format!("{} {gid} 1", inside(gid.as_raw())))?;
    }
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .map_err(|e| os_err("making / private", e))?;

    let mut fuse: Option<Child> = None;
    let env_dir = match &plan.from {
        None => {
            let dir = plan.build.join("env");
            mkdir(&dir)?;
            fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).map_err(|e| InstallError::io(&dir, e))?;
            dir
        }
        Some(image) => {
            let lower = plan.build.join("lower");
            let upper = plan.build.join("upper");
            let work = plan.build.join("work");
            let merged = plan.build.join("merged");
            for dir in [&lower, &upper, &work, &merged] {
                mkdir(dir)?;
            }
            fs::set_permissions(&upper, fs::Permissions::from_mode(0o755)).map_err(|e| InstallError::io(&upper, e))?;
            if plan.root {
                let out = Command::new("mount")
                    .args(["-t", "squashfs", "-o", "loop,ro"])
                    .arg(image)
                    .arg(&lower)
                    .stdin(Stdio::null())
                    .output()
                    .map_err(|e| InstallError::ToolFailed {
                        tool: "mount".into(),
                        reason: io_reason(&e),
                    })?;
                if !out.status.success() {
                    return Err(InstallError::ToolFailed {
                        tool: format!("mount -o loop,ro {}", image.display()),
                        reason: String::from_utf8_lossy(&out.stderr).trim().to_string(),
                    });
                }
            } else {
                fuse = Some(squashfuse(image, &lower)?);
            }
            let lower_env = lower.join(plan.inner.strip_prefix("/").unwrap_or(&plan.inner));
            let mut options = format!(
                "lowerdir={},upperdir={},workdir={}",
                lower_env.display(),
                upper.display(),
                work.display()
            );
            if !plan.root {
                options.push_str(",userxattr");
            }
            mount(
                Some("overlay"),
                &merged,
                Some("overlay"),
                MsFlags::empty(),
                Some(options.as_str()),
            )
            .map_err(|e| os_err(format!("overlay on {}", merged.display()), e))?;
            merged
        }
    };
    let result = (|| {
        place(&env_dir, &plan.inner, &plan.anchor, &plan.build)?;
        run_command(plan)?;
        let (packages, notes) = manifest::list_packages(&plan.inner);
        for note in notes {
            ui.warn(format!("{}: {note}", plan.inner.display()));
        }
        let record = Manifest {
            packages,
            ..plan.record.clone()
        };
        let path = plan.inner.join(manifest::FILE_IN_ENV);
        let _ = fs::remove_file(&path);
        fs::write(&path, record.render()).map_err(|e| InstallError::io(&path, e))?;
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).map_err(|e| InstallError::io(&path, e))?;
        if !plan.inner.join("bin").is_dir() {
            return Err(InstallError::Usage(format!(
                "the command made no {}: not an environment; nothing packed",
                plan.inner.join("bin").display()
            )));
        }
        pack::run(
            &PackOptions {
                prefix: plan.inner.clone(),
                ..plan.pack.clone()
            },
            ui,
        )
    })();
    if let Some(mut helper) = fuse {
        // Unmounting is left to the namespace's end; the helper must go so
        // that the namespace can end.
        let _ = helper.kill();
        let _ = helper.wait();
    }
    result
}

/// `squashfuse -f IMAGE DIR` in the background, waited for until mounted.
fn squashfuse(image: &Path, dir: &Path) -> Result<Child> {
    let tool = crate::runtime::which("squashfuse").ok_or(InstallError::MissingTool {
        tool: "squashfuse",
        package: "squashfuse",
    })?;
    // The device of the empty mount point, read before squashfuse starts: a
    // fast mount must not be taken for the "before" state.
    let before = fs::metadata(dir).map(|m| std::os::unix::fs::MetadataExt::dev(&m)).ok();
    let mut helper = Command::new(&tool)
        .arg("-f")
        .arg(image)
        .arg(dir)
        .stdin(Stdio::null())
        .spawn()
        .map_err(|e| InstallError::ToolFailed {
            tool: tool.display().to_string(),
            reason: io_reason(&e),
        })?;
    // Generous: a loaded machine can take seconds to start a FUSE server.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(MOUNT_WAIT_SECS);
    while std::time::Instant::now() < deadline {
        if let Ok(Some(status)) = helper.try_wait() {
            return Err(InstallError::ToolFailed {
                tool: tool.display().to_string(),
                reason: format!("{status} mounting {}", image.display()),
            });
        }
        let now = fs::metadata(dir).map(|m| std::os::unix::fs::MetadataExt::dev(&m)).ok();
        if now.is_some() && now != before {
            return Ok(helper);
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let _ = helper.kill();
    Err(InstallError::ToolFailed {
        tool: tool.display().to_string(),
        reason: format!("{} not mounted after {MOUNT_WAIT_SECS} s", image.display()),
    })
}

/// Put `env_dir` at `inner` (see the module's doc).
fn place(env_dir: &Path, inner: &Path, anchor: &Path, build: &Path) -> Result<()> {
    let bind = |from: &Path, to: &Path| {
        mount(
            Some(from),
            to,
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None::<&str>,
        )
        .map_err(|e| os_err(format!("bind {} on {}", from.display(), to.display()), e))
    };
    if anchor != inner {
        // Keep what the anchor holds visible: stash it, tmpfs over it, bind
        // each entry back.
        let stash = build.join("stash");
        mkdir(&stash)?;
        bind(anchor, &stash)?;
        let mode = fs::metadata(anchor).map_or(0o755, |m| m.permissions().mode() & 0o7777);
        mount(
            Some("installer-build"),
            anchor,
            Some("tmpfs"),
            MsFlags::empty(),
            Some(format!("mode={mode:o}").as_str()),
        )
        .map_err(|e| os_err(format!("tmpfs on {}", anchor.display()), e))?;
        let entries = fs::read_dir(&stash).map_err(|e| InstallError::io(&stash, e))?;
        for entry in entries.flatten() {
            let from = entry.path();
            let to = anchor.join(entry.file_name());
            let Ok(meta) = fs::symlink_metadata(&from) else {
                continue;
            };
            if meta.file_type().is_symlink() {
                if let Ok(target) = fs::read_link(&from) {
                    let _ = symlink(target, &to);
                }
                continue;
            }
            if meta.is_dir() {
                mkdir(&to)?;
            } else {
                fs::write(&to, b"").map_err(|e| InstallError::io(&to, e))?;
            }
            bind(&from, &to)?;
        }
        let mut dir = PathBuf::from(anchor);
        for part in inner.strip_prefix(anchor).unwrap_or(Path::new("")).components() {
            dir.push(part);
            if !dir.exists() {
                fs::create_dir(&dir).map_err(|e| InstallError::io(&dir, e))?;
                let _ = fs::set_permissions(&dir, fs::Permissions::from_mode(0o755));
            }
        }
    }
    bind(env_dir, inner)
}

fn run_command(plan: &Plan) -> Result<()> {
    let shown = manifest::shell_words(&plan.record.steps.last().map(|s| s.command.clone()).unwrap_or_default());
    let status = Command::new(&plan.command[0])
        .args(&plan.command[1..])
        .env("INSTALLER_ENV_PREFIX", &plan.inner)
        .status()
        .map_err(|e| InstallError::Reported {
            code: if e.kind() == std::io::ErrorKind::NotFound {
                EXIT_USAGE
            } else {
                EXIT_DEMO
            },
            message: format!("cannot run {}: {}", shown_name(&plan.command[0]), io_reason(&e)),
        })?;
    if status.success() {
        Ok(())
    } else {
        Err(InstallError::ToolFailed {
            tool: format!("the command `{shown}`"),
            reason: status.to_string(),
        })
    }
}

fn shown_name(name: &OsStr) -> String {
    name.to_string_lossy().into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_beside_replaces_the_extension() {
        assert_eq!(
            manifest_beside(Path::new("/x/e-1.sqsh")),
            Path::new("/x/e-1.manifest.toml")
        );
        assert_eq!(manifest_beside(Path::new("/x/img")), Path::new("/x/img.manifest.toml"));
    }

    #[test]
    fn the_anchor_is_the_deepest_existing_directory() {
        let dir = tempfile::tempdir().unwrap();
        let inner = dir.path().join("conda/e-1");
        assert_eq!(anchor_of(&inner).unwrap(), dir.path());
        fs::create_dir_all(&inner).unwrap();
        assert_eq!(anchor_of(&inner).unwrap(), inner);
        let err = anchor_of(Path::new("/no-such-top-dir-xyz/conda/e")).unwrap_err();
        assert!(err.to_string().contains("create /no-such-top-dir-xyz"), "{err}");
    }
}
