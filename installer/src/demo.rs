//! `installer demo DIR` (I12): a complete, self-contained installation in
//! one command, with no network: a generated env, its image, a base
//! sandbox, a relative `launcher.toml`, the farm; then one command run
//! through the launcher.
//!
//! Everything is built in a staging directory beside DIR and moved into
//! place at the end (every path in it is relative), so a failure leaves
//! nothing half-built.
//!
//! The env is a Python venv made by the system Python *at the in-container
//! path* `<prefix>/<env>`, so that its paths are right inside the
//! container. To do that without touching the host, the venv is created in
//! a private mount namespace where the staging directory is bind-mounted
//! over `<prefix>` (over a tmpfs on the nearest existing ancestor when
//! `<prefix>` does not exist). Without the privilege for that (not root),
//! the env gets shell tools only, and the demo says so.

use std::ffi::CString;
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::error::{io_reason, InstallError, Result};
use crate::farm::{self, FarmOptions};
use crate::runtime;
use crate::site::{check_env_name, Site};
use crate::ui::Ui;

pub const DEFAULT_ENV: &str = "demo-1.0";
/// The container prefix the demo uses (the launcher's default).
pub const PREFIX: &str = "/opt/conda";
/// The system Python the venv is made from (Debian's; bound in via /usr).
pub const SYSTEM_PYTHON: &str = "/usr/bin/python3";
/// Marks a directory as made by `installer demo`, so a rerun may replace it.
pub const MARKER: &str = ".installer-demo";
/// Top-level directories that are symlinks (merged /usr) or get bound in.
const HOST_TOP_DIRS: [&str; 6] = ["bin", "sbin", "lib", "lib32", "lib64", "libx32"];
/// Mount points the base sandbox provides.
const MOUNT_POINTS: [&str; 12] = [
    "proc", "sys", "dev", "tmp", "var/tmp", "home", "root", "run", "usr", "etc", "opt", "mnt",
];
/// The Python the demo runs through the launcher.
pub const PYTHON_PROGRAM: &str = "import os, sys; print('hello from Python', sys.version.split()[0], \
     'of env', os.environ.get('CONDA_PREFIX'), '-', 'inside' if os.path.exists('/.singularity.d') else 'outside', \
     'the container; sys.executable =', sys.executable)";

#[derive(Debug, Clone)]
pub struct DemoOptions {
    pub dir: PathBuf,
    pub env: String,
    pub launcher: Option<PathBuf>,
    pub runtime: Option<PathBuf>,
    pub dry_run: bool,
}

/// What the generated env contains.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnvKind {
    /// A Python venv plus shell tools.
    Python,
    /// Shell tools only (no mount namespace or no system Python).
    ShellOnly,
}

pub fn run(opts: &DemoOptions, ui: &Ui) -> Result<()> {
    check_env_name(&opts.env)?;
    let mksquashfs = runtime::which("mksquashfs").ok_or(InstallError::MissingTool {
        tool: "mksquashfs",
        package: "squashfs-tools",
    })?;
    let launcher = opts
        .launcher
        .clone()
        .or_else(farm::default_launcher_source)
        .filter(|p| p.is_file())
        .ok_or_else(|| InstallError::Io {
            path: farm::default_launcher_source().unwrap_or_else(|| PathBuf::from("launcher")),
            reason: "launcher binary not found; build it (cargo build -p launcher) or pass --launcher PATH".into(),
        })?;
    let runtime = match &opts.runtime {
        Some(path) => Some(crate::site::absolute(path)?),
        None => runtime::RUNTIME_NAMES.iter().find_map(|n| runtime::which(n)),
    };
    let dir = crate::site::absolute(&opts.dir)?;
    check_destination(&dir)?;
    if opts.dry_run {
        print_plan(&dir, opts, &launcher, runtime.as_deref(), ui);
        return Ok(());
    }

    let parent = dir.parent().unwrap_or(Path::new("/"));
    crate::swap::create_dirs(parent).map_err(|e| InstallError::io(parent, e))?;
    let leaf = dir
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    let stage = tempfile::Builder::new()
        .prefix(&format!(".{leaf}.new-"))
        .tempdir_in(parent)
        .map_err(|e| InstallError::io(parent, e))?;
    let root = stage.path();
    fs::set_permissions(root, fs::Permissions::from_mode(0o755)).map_err(|e| InstallError::io(root, e))?;

    let binds = make_base(&root.join("base"))?;
    let env_root = root.join("env-root");
    let kind = generate_env(&env_root, &opts.env, ui)?;
    ui.info(format!(
        "demo: packing envs/{}.sqsh with {}",
        opts.env,
        mksquashfs.display()
    ));
    let envs = root.join("envs");
    mkdir(&envs)?;
    pack(&mksquashfs, &env_root, &envs.join(format!("{}.sqsh", opts.env)))?;
    fs::remove_dir_all(&env_root).map_err(|e| InstallError::io(&env_root, e))?;
    let envs_link = envs.join(&opts.env);
    symlink(Path::new(PREFIX).join(&opts.env), &envs_link).map_err(|e| InstallError::io(&envs_link, e))?;

    let scripts = root.join("scripts");
    mkdir(&scripts)?;
    let config = scripts.join(launcher::config::CONFIG_FILE_NAME);
    ui.info("demo: writing scripts/launcher.toml");
    let mut binds = binds;
    // The scripts tree must be visible inside the container (L6).
    match dir.to_str() {
        Some(text) if !text.contains([',', '"', '\\']) => binds.push(text.to_string()),
        _ => ui.warn(format!(
            "{} cannot be a bind path; links run inside the container may not be found",
            dir.display()
        )),
    }
    write_file(
        &config,
        config_text(&opts.env, &binds, opts.runtime.as_ref().and(runtime.as_deref())).as_bytes(),
        0o644,
    )?;
    make_mount_points(&root.join("base"), &binds)?;
    write_file(&root.join(MARKER), b"made by `installer demo`; safe to delete\n", 0o644)?;

    ui.info("demo: building the farm");
    let site = Site::load(Some(&scripts), None)?;
    let farm_opts = FarmOptions {
        launcher_source: Some(launcher),
        ..FarmOptions::default()
    };
    // The farm's own report would name the staging directory: keep it quiet.
    farm::run(&site, Some(std::slice::from_ref(&opts.env)), &farm_opts, &Ui::new(true))?;

    move_into_place(stage, &dir)?;
    ui.info(format!("demo: installation ready in {}", dir.display()));
    run_command(&dir, &opts.env, kind, runtime.as_deref(), ui)
}

/// DIR must be absent, empty, or an earlier demo.
fn check_destination(dir: &Path) -> Result<()> {
    match fs::read_dir(dir) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(InstallError::io(dir, e)),
        Ok(mut entries) => {
            if entries.next().is_none() || dir.join(MARKER).exists() {
                Ok(())
            } else {
                Err(InstallError::Io {
                    path: dir.to_path_buf(),
                    reason: "exists, is not empty and is not an earlier demo; choose another directory".into(),
                })
            }
        }
    }
}

fn print_plan(dir: &Path, opts: &DemoOptions, launcher: &Path, runtime: Option<&Path>, ui: &Ui) {
    let env = &opts.env;
    ui.info(format!("would create {}", dir.display()));
    ui.info(format!("would generate env {env}: a venv of {SYSTEM_PYTHON} at {PREFIX}/{env} (private mount namespace) and shell tools"));
    ui.info(format!(
        "would pack it into {}/envs/{env}.sqsh with mksquashfs",
        dir.display()
    ));
    ui.info(format!(
        "would write {}/base (sandbox base image) and {}/scripts/launcher.toml",
        dir.display(),
        dir.display()
    ));
    ui.info(format!(
        "would install {} and build {}/scripts/{env}.d",
        launcher.display(),
        dir.display()
    ));
    match runtime {
        Some(rt) => ui.info(format!("would run python3 through the launcher with {}", rt.display())),
        None => ui.info("would print the runtime command (no apptainer/singularity on PATH)"),
    }
}

fn mkdir(path: &Path) -> Result<()> {
    crate::swap::create_dirs(path).map_err(|e| InstallError::io(path, e))?;
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).map_err(|e| InstallError::io(path, e))
}

fn write_file(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    fs::write(path, bytes).map_err(|e| InstallError::io(path, e))?;
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).map_err(|e| InstallError::io(path, e))
}

/// The base "image": a sandbox directory with `/.singularity.d` (the L5
/// marker), `env/99-base.sh` (without it a real runtime drops every prefixed
/// variable), `libs/`, and mount points. Merged-/usr symlinks are copied from
/// the host; real top-level directories become binds. Returns every bind to
/// configure; their mount points are made by `make_mount_points` once the
/// config is written.
pub fn make_base(base: &Path) -> Result<Vec<String>> {
    for sub in [".singularity.d/env", ".singularity.d/actions", crate::base::LIBS_DIR] {
        mkdir(&base.join(sub.trim_start_matches('/')))?;
    }
    write_file(
        &base.join(crate::base::BASE_ENV_SCRIPT.trim_start_matches('/')),
        crate::base::BASE_ENV_TEXT.as_bytes(),
        0o755,
    )?;
    for point in MOUNT_POINTS {
        mkdir(&base.join(point))?;
    }
    let mut binds = vec!["/usr".to_string(), "/etc".to_string()];
    for top in HOST_TOP_DIRS {
        let host = Path::new("/").join(top);
        let inside = base.join(top);
        match fs::symlink_metadata(&host) {
            Ok(meta) if meta.file_type().is_symlink() => {
                let target = fs::read_link(&host).map_err(|e| InstallError::io(&host, e))?;
                symlink(&target, &inside).map_err(|e| InstallError::io(&inside, e))?;
            }
            Ok(meta) if meta.is_dir() => {
                mkdir(&inside)?;
                binds.push(host.to_string_lossy().into_owned());
            }
            _ => {}
        }
    }
    Ok(binds)
}

/// A directory in `base` for every bind (all directories; DIR itself may not
/// exist yet) and for the container prefix: what `installer check` asks of a
/// sandbox base.
pub fn make_mount_points(base: &Path, binds: &[String]) -> Result<()> {
    for path in binds.iter().map(String::as_str).chain([PREFIX]) {
        let point = crate::base::MountPoint {
            path: PathBuf::from(path),
            file: false,
            source: String::new(),
        };
        crate::base::make_mount_point(base, &point)
            .map_err(|e| InstallError::io(&base.join(path.trim_start_matches('/')), e))?;
    }
    Ok(())
}

/// Generate the env under `env_root` + `<prefix>/<env>` (the image's root).
pub fn generate_env(env_root: &Path, env: &str, ui: &Ui) -> Result<EnvKind> {
    let prefix_in_root = env_root.join(PREFIX.trim_start_matches('/'));
    mkdir(&prefix_in_root)?;
    let env_dir = prefix_in_root.join(env);
    let kind = if !Path::new(SYSTEM_PYTHON).is_file() {
        ui.warn(format!("{SYSTEM_PYTHON} not found: the demo env has shell tools only"));
        EnvKind::ShellOnly
    } else {
        ui.info(format!(
            "demo: generating env {env}: a venv of {SYSTEM_PYTHON} at {PREFIX}/{env} (private mount namespace)"
        ));
        match make_venv(&prefix_in_root, Path::new(PREFIX), env) {
            Ok(()) => EnvKind::Python,
            Err(why) => {
                ui.warn(format!(
                    "cannot create the venv at {PREFIX}/{env} ({why}); the demo env has shell tools only"
                ));
                if env_dir.exists() {
                    fs::remove_dir_all(&env_dir).map_err(|e| InstallError::io(&env_dir, e))?;
                }
                EnvKind::ShellOnly
            }
        }
    };
    write_tools(&env_dir, env)?;
    Ok(kind)
}

/// Run `python3 -m venv --without-pip <prefix>/<env>` in a private mount
/// namespace where `staged_prefix` is mounted over `prefix`.
fn make_venv(staged_prefix: &Path, prefix: &Path, env: &str) -> std::result::Result<(), String> {
    let plan = NamespacePlan::new(staged_prefix, prefix).map_err(|e| e.to_string())?;
    let mut command = Command::new(SYSTEM_PYTHON);
    command.args(["-m", "venv", "--without-pip"]).arg(prefix.join(env));
    // SAFETY: the closure only makes system calls on strings prepared
    // before the fork; it allocates nothing.
    unsafe {
        command.pre_exec(move || plan.enter());
    }
    let output = command.output().map_err(|e| io_reason(&e))?;
    if output.status.success() {
        Ok(())
    } else {
        let stderr = String::from_utf8_lossy(&output.stderr);
        Err(stderr.lines().last().unwrap_or("venv failed").to_string())
    }
}

/// The mounts that put the staging directory at the prefix, prepared as C
/// strings so that the child (after fork) does not allocate.
struct NamespacePlan {
    /// Where to mount a tmpfs first (when the prefix does not exist).
    tmpfs_at: Option<CString>,
    /// Directories to create inside that tmpfs, outermost first.
    make_dirs: Vec<CString>,
    source: CString,
    target: CString,
}

impl NamespacePlan {
    fn new(staged_prefix: &Path, prefix: &Path) -> io::Result<NamespacePlan> {
        let c = |p: &Path| CString::new(p.as_os_str().as_bytes()).map_err(io::Error::other);
        let mut existing = prefix.to_path_buf();
        let mut make_dirs = Vec::new();
        while !existing.is_dir() {
            make_dirs.push(c(&existing)?);
            if !existing.pop() {
                break;
            }
        }
        make_dirs.reverse();
        let tmpfs_at = if make_dirs.is_empty() {
            None
        } else if existing.parent().is_none() {
            return Err(io::Error::other(format!(
                "no directory to mount a tmpfs on above {}",
                prefix.display()
            )));
        } else {
            Some(c(&existing)?)
        };
        Ok(NamespacePlan {
            tmpfs_at,
            make_dirs,
            source: c(staged_prefix)?,
            target: c(prefix)?,
        })
    }

    /// In the child: unshare the mount namespace, make it private, mount.
    fn enter(&self) -> io::Result<()> {
        use nix::libc;
        let check = |rc: libc::c_int| {
            if rc == 0 {
                Ok(())
            } else {
                Err(io::Error::last_os_error())
            }
        };
        let null = std::ptr::null::<libc::c_char>();
        // SAFETY: plain system calls with valid NUL-terminated strings.
        unsafe {
            check(libc::unshare(libc::CLONE_NEWNS))?;
            check(libc::mount(
                null,
                c"/".as_ptr(),
                null,
                libc::MS_REC | libc::MS_PRIVATE,
                std::ptr::null(),
            ))?;
            if let Some(at) = &self.tmpfs_at {
                check(libc::mount(
                    c"tmpfs".as_ptr(),
                    at.as_ptr(),
                    c"tmpfs".as_ptr(),
                    0,
                    c"mode=0755".as_ptr().cast(),
                ))?;
                for dir in &self.make_dirs {
                    check(libc::mkdir(dir.as_ptr(), 0o755))?;
                }
            }
            check(libc::mount(
                self.source.as_ptr(),
                self.target.as_ptr(),
                null,
                libc::MS_BIND,
                std::ptr::null(),
            ))?;
        }
        Ok(())
    }
}

/// Small tools every demo env has, plus an activation script (I7).
fn write_tools(env_dir: &Path, env: &str) -> Result<()> {
    let bin = env_dir.join("bin");
    mkdir(&bin)?;
    let prefix = Path::new(PREFIX).join(env);
    let tools = [
        ("hello", format!("#!/bin/sh\necho \"hello from {env}: $0 $*\"\n")),
        (
            "demo-info",
            "#!/bin/sh\necho \"env prefix: ${CONDA_PREFIX:-unset}\"\necho \"PATH: $PATH\"\n\
             if [ -d /.singularity.d ]; then echo 'inside a container'; else echo 'on the host'; fi\n"
                .to_string(),
        ),
    ];
    for (name, text) in tools {
        write_file(&bin.join(name), text.as_bytes(), 0o755)?;
    }
    let hi = bin.join("hi");
    if !hi.exists() {
        symlink("hello", &hi).map_err(|e| InstallError::io(&hi, e))?;
    }
    let activate = env_dir.join("etc/conda/activate.d");
    mkdir(&activate)?;
    let script = format!("export DEMO_DATA={}/share/demo\n", prefix.display());
    write_file(&activate.join("demo.sh"), script.as_bytes(), 0o644)?;
    mkdir(&env_dir.join("share/demo"))?;
    write_file(&env_dir.join("share/demo/README"), b"data of the demo env\n", 0o644)
}

/// `mksquashfs ROOT IMAGE`: the image's root holds `<prefix>/<env>/…` (I5).
pub fn pack(mksquashfs: &Path, root: &Path, image: &Path) -> Result<()> {
    let output = Command::new(mksquashfs)
        .arg(root)
        .arg(image)
        .args(["-noappend", "-all-root", "-no-progress", "-quiet"])
        .output()
        .map_err(|e| InstallError::Demo(format!("cannot run {}: {}", mksquashfs.display(), io_reason(&e))))?;
    if output.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    Err(InstallError::Demo(format!(
        "{} failed ({}): {}",
        mksquashfs.display(),
        output.status,
        stderr.lines().last().unwrap_or("")
    )))
}

/// The demo's `launcher.toml`; every path relative to it, so the whole tree
/// can be built elsewhere and moved.
pub fn config_text(env: &str, binds: &[String], runtime: Option<&Path>) -> String {
    let quoted: Vec<String> = binds.iter().map(|b| format!("\"{b}\"")).collect();
    let runtime_line = match runtime {
        Some(path) => format!("path = \"{}\"\n", path.display()),
        None => "# path: apptainer or singularity on PATH\n".to_string(),
    };
    format!(
        "# Demo installation made by `installer demo`. Paths are relative to this file.\n\
         default_env = \"{env}\"\n\
         \n\
         [runtime]\n\
         {runtime_line}\
         # A sandbox directory with /.singularity.d, the host's OS bound in.\n\
         image = \"../base\"\n\
         \n\
         [container]\n\
         envs_dir = \"../envs\"\n\
         prefix = \"{PREFIX}\"\n\
         binds = [{}]\n\
         \n\
         [container.env]\n\
         PYTHONNOUSERSITE = \"1\"\n",
        quoted.join(", ")
    )
}

/// Put the finished stage at `dir`, replacing an earlier demo.
fn move_into_place(stage: tempfile::TempDir, dir: &Path) -> Result<()> {
    if dir.exists() {
        // Checked before: empty, or an earlier demo.
        fs::remove_dir_all(dir).map_err(|e| InstallError::io(dir, e))?;
    }
    fs::rename(stage.path(), dir).map_err(|e| InstallError::io(dir, e))?;
    let _ = stage.keep();
    Ok(())
}

/// The command the demo runs through the launcher, and the variables it
/// needs: with a runtime, the real thing; without, a dry run (L17).
pub fn demo_command(dir: &Path, env: &str, kind: EnvKind, have_runtime: bool) -> Command {
    let bin = dir.join("scripts").join(format!("{env}.d")).join("bin");
    let mut command = match kind {
        EnvKind::Python => {
            let mut c = Command::new(bin.join("python3"));
            c.args(["-c", PYTHON_PROGRAM]);
            c
        }
        EnvKind::ShellOnly => {
            let mut c = Command::new(bin.join("hello"));
            c.arg("world");
            c
        }
    };
    if !have_runtime {
        command.env("LAUNCHER_DRY_RUN", "1");
    }
    command
}

fn run_command(dir: &Path, env: &str, kind: EnvKind, runtime: Option<&Path>, ui: &Ui) -> Result<()> {
    let mut command = demo_command(dir, env, kind, runtime.is_some());
    let shown = std::iter::once(command.get_program())
        .chain(command.get_args())
        .map(|a| shell_quote(&a.to_string_lossy()))
        .collect::<Vec<_>>()
        .join(" ");
    let failed = |what: String| InstallError::Demo(what);
    let cannot_run = |e: io::Error| failed(format!("cannot run {shown}: {}", io_reason(&e)));
    match runtime {
        Some(rt) => {
            ui.info(format!("demo: running, with the runtime {}:\n  {shown}", rt.display()));
            let status = command.status().map_err(cannot_run)?;
            if !status.success() {
                return Err(failed(format!(
                    "the command run through the launcher failed ({status})"
                )));
            }
        }
        None => {
            ui.info(format!(
                "demo: no container runtime found (neither apptainer nor singularity is on PATH), so the\n\
                 demo: launcher only prints the exact runtime command it would run (LAUNCHER_DRY_RUN=1) for:\n  {shown}\n\
                 demo: the launcher would run:"
            ));
            // The launcher wants an executable runtime even for a dry run:
            // lend it a placeholder `apptainer` and show its bare name.
            let placeholder = tempfile::Builder::new()
                .prefix(".installer-demo-runtime-")
                .tempdir()
                .map_err(|e| failed(format!("cannot make a temporary directory: {}", io_reason(&e))))?;
            let fake = placeholder.path().join(runtime::RUNTIME_NAMES[0]);
            write_file(
                &fake,
                b"#!/bin/sh\necho 'no container runtime is installed' >&2\nexit 125\n",
                0o755,
            )?;
            let path = std::env::var_os("PATH").unwrap_or_default();
            let mut dirs = vec![placeholder.path().to_path_buf()];
            dirs.extend(std::env::split_paths(&path));
            command.env("PATH", std::env::join_paths(dirs).map_err(|e| failed(e.to_string()))?);
            let output = command.output().map_err(cannot_run)?;
            let fake_text = fake.to_string_lossy().into_owned();
            let tidy = |bytes: &[u8]| String::from_utf8_lossy(bytes).replace(&fake_text, runtime::RUNTIME_NAMES[0]);
            crate::output::out(&tidy(&output.stdout));
            crate::output::err(&tidy(&output.stderr));
            if !output.status.success() {
                return Err(failed(format!("the launcher's dry run failed ({})", output.status)));
            }
        }
    }
    ui.info(format!(
        "demo: done. Try {}/scripts/{env}.d/bin/launcher bash, or `installer --scripts {}/scripts status`",
        dir.display(),
        dir.display()
    ));
    Ok(())
}

/// Quote for pasting into a POSIX shell.
fn shell_quote(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./=:,+@%".contains(&b));
    if plain {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', "'\\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_config_parses_and_is_relative() {
        let text = config_text("demo-1.0", &["/usr".into(), "/etc".into()], None);
        let config = launcher::config::Config::parse(text.as_bytes(), Path::new("/d/scripts/launcher.toml")).unwrap();
        assert_eq!(config.runtime.image.unwrap(), Path::new("/d/scripts/../base"));
        assert_eq!(config.container.envs_dir.unwrap(), Path::new("/d/scripts/../envs"));
        assert_eq!(config.default_env.as_deref(), Some("demo-1.0"));
        assert!(config.runtime.path.is_none());
        let with_rt = config_text("e", &[], Some(Path::new("/opt/rt/apptainer")));
        let config = launcher::config::Config::parse(with_rt.as_bytes(), Path::new("/d/s/launcher.toml")).unwrap();
        assert_eq!(config.runtime.path.unwrap(), Path::new("/opt/rt/apptainer"));
    }

    #[test]
    fn base_has_the_marker_and_mirrors_merged_usr() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("base");
        let binds = make_base(&base).unwrap();
        assert!(base.join(".singularity.d").is_dir());
        assert!(binds.contains(&"/usr".to_string()) && binds.contains(&"/etc".to_string()));
        for top in HOST_TOP_DIRS {
            let host = Path::new("/").join(top);
            if let Ok(target) = fs::read_link(&host) {
                assert_eq!(fs::read_link(base.join(top)).unwrap(), target);
                assert!(!binds.contains(&host.to_string_lossy().into_owned()));
            } else if host.is_dir() {
                assert!(binds.contains(&host.to_string_lossy().into_owned()));
            }
        }
    }

    #[test]
    fn dry_run_command_without_runtime() {
        let c = demo_command(Path::new("/d"), "e", EnvKind::Python, false);
        assert_eq!(c.get_program(), Path::new("/d/scripts/e.d/bin/python3"));
        assert!(c
            .get_envs()
            .any(|(k, v)| k == "LAUNCHER_DRY_RUN" && v == Some("1".as_ref())));
        let c = demo_command(Path::new("/d"), "e", EnvKind::ShellOnly, true);
        assert_eq!(c.get_program(), Path::new("/d/scripts/e.d/bin/hello"));
        assert_eq!(c.get_envs().count(), 0);
    }

    #[test]
    fn quoting() {
        assert_eq!(shell_quote("a/b"), "a/b");
        assert_eq!(shell_quote("it's"), "'it'\\''s'");
        assert_eq!(shell_quote(""), "''");
    }
}
