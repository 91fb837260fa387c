//! `installer demo DIR` (I12): a complete, self-contained installation in
//! one command, with no network: a generated env, its image, a base
//! sandbox, a relative `launcher.toml`, the farm; then one command run
//! through the launcher, for real wherever some runtime can run it.
//!
//! Everything is built in a staging directory beside DIR and moved into
//! place at the end (every path in it is relative), so a failure leaves
//! nothing half-built.
//!
//! The env is a small conda-style env that shares the host's Python: its
//! `bin/python3` and its standard library are symlinks into `/usr` (bound
//! into the container), and its activation sets `PYTHONHOME` to the env's
//! in-container prefix, so that Python reports that prefix as `sys.prefix`
//! (E1) even though it is called through the scripts path. Nothing is run
//! to make it: no privilege needed, nothing left on the host.
//!
//! Packing: `mksquashfs` when it is on `PATH`, else the `backhand` library
//! (no package to install). Running: `--runtime`, else `apptainer` or
//! `singularity` on `PATH`, else the launcher's own native runtime; only
//! when that cannot run here either is the runtime command printed instead.

use std::fs;
use std::io;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::error::{io_reason, InstallError, Result};
use crate::farm::{self, FarmOptions};
use crate::pack::Packer;
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
/// The Python the demo runs through the launcher: what it prints shows it
/// runs the env's Python, from the image, inside the container (E1).
pub const PYTHON_PROGRAM: &str = "import os, sys; \
     print(\"hello from Python\", sys.version.split()[0], \
     \"inside\" if os.path.isdir(\"/.singularity.d\") else \"outside\", \"the container\"); \
     print(\"  sys.executable =\", sys.executable); \
     print(\"  sys.prefix     =\", sys.prefix); \
     print(\"  CONDA_PREFIX   =\", os.environ.get(\"CONDA_PREFIX\")); \
     print(\"  os module      =\", os.__file__)";
/// What the launcher and the native runtime print their own errors with.
const NATIVE_ERROR_PREFIX: &str = "launcher-native: ";
/// The native runtime's (and the launcher's) own failures (L18).
const NATIVE_ERROR_EXIT: i32 = launcher::native::EXIT_NATIVE_ERROR;

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
    /// The host's Python (linked in) plus shell tools.
    Python,
    /// Shell tools only (no usable system Python).
    ShellOnly,
}

/// The runtime the demo runs its command with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Runner {
    /// `--runtime PATH`: written into the config.
    Given(PathBuf),
    /// `apptainer` or `singularity` found on `PATH`: the config names none,
    /// the launcher finds the same one.
    OnPath(PathBuf),
    /// Neither: the launcher's own runtime (`runtime.flavour = "native"`).
    Native,
}

impl Runner {
    /// `--runtime`, else `apptainer`/`singularity` on `PATH`, else native.
    pub fn choose(given: Option<&Path>) -> Result<Runner> {
        if let Some(path) = given {
            return Ok(Runner::Given(crate::site::absolute(path)?));
        }
        Ok(runtime::RUNTIME_NAMES
            .iter()
            .find_map(|n| runtime::which(n))
            .map_or(Runner::Native, Runner::OnPath))
    }

    fn config(&self) -> ConfigRuntime<'_> {
        match self {
            Runner::Given(path) => ConfigRuntime::Path(path),
            Runner::OnPath(_) => ConfigRuntime::Auto,
            Runner::Native => ConfigRuntime::Native,
        }
    }

    fn describe(&self) -> String {
        match self {
            Runner::Given(path) | Runner::OnPath(path) => {
                let name = path
                    .file_name()
                    .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
                format!("{name} ({})", path.display())
            }
            Runner::Native => format!("the native runtime ({})", native_mode()),
        }
    }
}

/// How the native runtime mounts, for this user.
fn native_mode() -> &'static str {
    if nix::unistd::geteuid().is_root() {
        "as root: kernel squashfs on loop devices"
    } else {
        "as a user: a user namespace and squashfuse"
    }
}

/// What the demo's `launcher.toml` says about the runtime.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigRuntime<'a> {
    /// No key: `apptainer` or `singularity` on `PATH` (L9).
    Auto,
    /// `runtime.path`.
    Path(&'a Path),
    /// `runtime.flavour = "native"`.
    Native,
}

pub fn run(opts: &DemoOptions, ui: &Ui) -> Result<()> {
    check_env_name(&opts.env)?;
    let packer = Packer::find();
    let launcher = opts
        .launcher
        .clone()
        .or_else(farm::default_launcher_source)
        .filter(|p| p.is_file())
        .ok_or_else(|| InstallError::Io {
            path: farm::default_launcher_source().unwrap_or_else(|| PathBuf::from("launcher")),
            reason: "launcher binary not found; build it (cargo build -p launcher) or pass --launcher PATH".into(),
        })?;
    let runner = Runner::choose(opts.runtime.as_deref())?;
    let dir = crate::site::absolute(&opts.dir)?;
    check_destination(&dir)?;
    if opts.dry_run {
        print_plan(&dir, opts, &launcher, &packer, &runner, ui);
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
        packer.describe()
    ));
    let envs = root.join("envs");
    mkdir(&envs)?;
    pack(&packer, &env_root, &envs.join(format!("{}.sqsh", opts.env)))?;
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
        config_text(&opts.env, &binds, runner.config()).as_bytes(),
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
    let demo = Demo {
        dir: &dir,
        env: &opts.env,
        kind,
        binds: &binds,
    };
    demo.run_command(&runner, ui)
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

fn print_plan(dir: &Path, opts: &DemoOptions, launcher: &Path, packer: &Packer, runner: &Runner, ui: &Ui) {
    let env = &opts.env;
    ui.info(format!("would create {}", dir.display()));
    ui.info(format!(
        "would generate env {env} at {PREFIX}/{env}: {SYSTEM_PYTHON} and its standard library linked in, and shell tools"
    ));
    ui.info(format!(
        "would pack it into {}/envs/{env}.sqsh with {}",
        dir.display(),
        packer.describe()
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
    match runner {
        Runner::Native => ui.info(format!(
            "would run python3 through the launcher with {} (no apptainer/singularity on PATH), \
             or print the runtime command if that cannot run here",
            runner.describe()
        )),
        _ => ui.info(format!(
            "would run python3 through the launcher with {}",
            runner.describe()
        )),
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

/// Where the system Python keeps its standard library, as it says itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PythonLayout {
    /// `3.11`
    pub version: String,
    /// Directories to link into the env, relative to the env prefix, and
    /// their absolute host paths (`lib/python3.11` → `/usr/lib/python3.11`).
    pub links: Vec<(PathBuf, PathBuf)>,
}

/// Ask `python` (isolated from the caller's `PYTHON*` variables) for its
/// version, prefix and standard library directories.
pub fn python_layout(python: &Path) -> std::result::Result<PythonLayout, String> {
    let output = Command::new(python)
        .args([
            "-I",
            "-c",
            "import sys, sysconfig; print('%d.%d' % sys.version_info[:2]); print(sys.base_prefix); \
             print(sysconfig.get_path('stdlib')); print(sysconfig.get_path('platstdlib'))",
        ])
        .output()
        .map_err(|e| format!("cannot run {}: {}", python.display(), io_reason(&e)))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        return Err(format!(
            "{} failed ({}): {}",
            python.display(),
            output.status,
            stderr.lines().last().unwrap_or("")
        ));
    }
    parse_python_layout(&String::from_utf8_lossy(&output.stdout))
}

/// The layout from the four lines `python_layout` asks for. The standard
/// library must lie under the prefix, and the prefix under `/usr` (bound
/// into the container).
pub fn parse_python_layout(text: &str) -> std::result::Result<PythonLayout, String> {
    let lines: Vec<&str> = text.lines().collect();
    let [version, prefix, stdlib, platstdlib] = lines[..] else {
        return Err(format!("unexpected answer from {SYSTEM_PYTHON}: {text:?}"));
    };
    let prefix = Path::new(prefix);
    if !prefix.starts_with("/usr") {
        return Err(format!(
            "its prefix {} is not under /usr, which is what the demo binds into the container",
            prefix.display()
        ));
    }
    let mut links = Vec::new();
    for dir in [stdlib, platstdlib] {
        let dir = Path::new(dir);
        let rel = dir.strip_prefix(prefix).map_err(|_| {
            format!(
                "its standard library {} is not under its prefix {}",
                dir.display(),
                prefix.display()
            )
        })?;
        if rel.as_os_str().is_empty() || links.iter().any(|(r, _): &(PathBuf, PathBuf)| r == rel) {
            continue;
        }
        links.push((rel.to_path_buf(), dir.to_path_buf()));
    }
    Ok(PythonLayout {
        version: version.to_string(),
        links,
    })
}

/// Generate the env under `env_root` + `<prefix>/<env>` (the image's root).
pub fn generate_env(env_root: &Path, env: &str, ui: &Ui) -> Result<EnvKind> {
    let prefix_in_root = env_root.join(PREFIX.trim_start_matches('/'));
    mkdir(&prefix_in_root)?;
    let env_dir = prefix_in_root.join(env);
    mkdir(&env_dir)?;
    let layout = if Path::new(SYSTEM_PYTHON).is_file() {
        python_layout(Path::new(SYSTEM_PYTHON))
    } else {
        Err(format!("{SYSTEM_PYTHON} not found"))
    };
    let kind = match layout {
        Ok(layout) => {
            ui.info(format!(
                "demo: generating env {env} at {PREFIX}/{env}: Python {} ({SYSTEM_PYTHON} and its standard library linked in) and shell tools",
                layout.version
            ));
            write_python(&env_dir, &layout)?;
            EnvKind::Python
        }
        Err(why) => {
            ui.warn(format!("{why}: the demo env has shell tools only"));
            EnvKind::ShellOnly
        }
    };
    write_tools(&env_dir, env, kind)?;
    Ok(kind)
}

/// The env's Python: `bin/python3` (and `python`, `python3.X`) link to the
/// system Python, its standard library directories are linked in at the
/// same place under the env prefix. With `PYTHONHOME` = the env prefix (the
/// activation script), Python finds its library through the env and
/// reports the env prefix as `sys.prefix`.
fn write_python(env_dir: &Path, layout: &PythonLayout) -> Result<()> {
    let bin = env_dir.join("bin");
    mkdir(&bin)?;
    let links = [
        ("python3".to_string(), PathBuf::from(SYSTEM_PYTHON)),
        (format!("python{}", layout.version), PathBuf::from("python3")),
        ("python".to_string(), PathBuf::from("python3")),
    ];
    for (name, target) in links {
        let link = bin.join(name);
        symlink(&target, &link).map_err(|e| InstallError::io(&link, e))?;
    }
    for (rel, host) in &layout.links {
        let link = env_dir.join(rel);
        if let Some(parent) = link.parent() {
            mkdir(parent)?;
        }
        symlink(host, &link).map_err(|e| InstallError::io(&link, e))?;
    }
    Ok(())
}

/// Small tools every demo env has, plus an activation script (I7).
fn write_tools(env_dir: &Path, env: &str, kind: EnvKind) -> Result<()> {
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
    let mut script = format!("export DEMO_DATA={}/share/demo\n", prefix.display());
    if kind == EnvKind::Python {
        // The env's Python finds its library, and its sys.prefix, here.
        script.push_str(&format!("export PYTHONHOME={}\n", prefix.display()));
    }
    write_file(&activate.join("demo.sh"), script.as_bytes(), 0o644)?;
    mkdir(&env_dir.join("share/demo"))?;
    write_file(&env_dir.join("share/demo/README"), b"data of the demo env\n", 0o644)
}

/// Pack `root` (which holds `<prefix>/<env>/…`) into `image` (I5).
pub fn pack(packer: &Packer, root: &Path, image: &Path) -> Result<()> {
    let mksquashfs = match packer {
        Packer::Backhand => {
            crate::pack::write_with_backhand(root, image)?;
            return Ok(());
        }
        Packer::Mksquashfs(path) => path,
    };
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
pub fn config_text(env: &str, binds: &[String], runtime: ConfigRuntime<'_>) -> String {
    let quoted: Vec<String> = binds.iter().map(|b| format!("\"{b}\"")).collect();
    let runtime_line = match runtime {
        ConfigRuntime::Path(path) => format!("path = \"{}\"\n", path.display()),
        ConfigRuntime::Auto => "# path: apptainer or singularity on PATH\n".to_string(),
        ConfigRuntime::Native => "# No apptainer or singularity: the launcher mounts the images itself.\n\
             flavour = \"native\"\n"
            .to_string(),
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

/// The command the demo runs through the launcher: with a runtime, the
/// real thing; without, a dry run (L17). Variables of the caller that
/// would change what the launcher does (a dry run, another site's
/// overlays) are removed.
pub fn demo_command(dir: &Path, env: &str, kind: EnvKind, dry_run: bool) -> Command {
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
    for name in ["CONTAINER_OVERLAY_PATH", "CONTAINER_OVERLAY_PATH_OVERRIDE"] {
        command.env_remove(name);
    }
    if dry_run {
        command.env("LAUNCHER_DRY_RUN", "1");
    } else {
        command.env_remove("LAUNCHER_DRY_RUN");
    }
    command
}

/// The native runtime's own error (exit 125 and `launcher-native: …` on
/// stderr) as one line: why it cannot run here, with its hint.
pub fn native_failure(output: &Output) -> Option<String> {
    if output.status.code() != Some(NATIVE_ERROR_EXIT) {
        return None;
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    let mut message = None;
    let mut hint = None;
    for line in stderr.lines() {
        let Some(rest) = line.strip_prefix(NATIVE_ERROR_PREFIX) else {
            continue;
        };
        match rest.strip_prefix("hint: ") {
            Some(h) => hint = hint.or(Some(h.trim())),
            None => message = message.or(Some(rest.trim())),
        }
    }
    let message = message?;
    Some(match hint {
        Some(hint) => format!("{message} (hint: {hint})"),
        None => message.to_string(),
    })
}

/// The finished installation and what to run in it.
struct Demo<'a> {
    dir: &'a Path,
    env: &'a str,
    kind: EnvKind,
    binds: &'a [String],
}

impl Demo<'_> {
    fn shown(command: &Command) -> String {
        std::iter::once(command.get_program())
            .chain(command.get_args())
            .map(|a| shell_quote(&a.to_string_lossy()))
            .collect::<Vec<_>>()
            .join(" ")
    }

    fn run_command(&self, runner: &Runner, ui: &Ui) -> Result<()> {
        let mut command = demo_command(self.dir, self.env, self.kind, false);
        let shown = Self::shown(&command);
        let lead = match runner {
            Runner::Native => {
                "demo: no apptainer or singularity on PATH: running, with the launcher's own native runtime \
                 (runtime.flavour = \"native\"):"
                    .to_string()
            }
            _ => format!("demo: running, with the runtime {}:", runner.describe()),
        };
        ui.info(format!("{lead}\n  {shown}"));
        let output = command
            .output()
            .map_err(|e| InstallError::Demo(format!("cannot run {shown}: {}", io_reason(&e))))?;
        if *runner == Runner::Native {
            if let Some(why) = native_failure(&output) {
                return self.print_instead(&why, ui);
            }
        }
        crate::output::out(&String::from_utf8_lossy(&output.stdout));
        crate::output::err(&String::from_utf8_lossy(&output.stderr));
        if !output.status.success() {
            return Err(InstallError::Demo(format!(
                "the command run through the launcher failed ({})",
                output.status
            )));
        }
        let what = match self.kind {
            EnvKind::Python => "the env's python",
            EnvKind::ShellOnly => "the env's hello",
        };
        ui.info(format!(
            "demo: that was {what}, run from the image envs/{}.sqsh by {}",
            self.env,
            runner.describe()
        ));
        self.done(ui);
        Ok(())
    }

    /// No runtime at all can run the command here: say why, point the
    /// config at apptainer/singularity on PATH again (a later install of
    /// one makes the demo work), and print the exact command one would run.
    fn print_instead(&self, why: &str, ui: &Ui) -> Result<()> {
        let failed = InstallError::Demo;
        let config = self.dir.join("scripts").join(launcher::config::CONFIG_FILE_NAME);
        let temp = config.with_file_name(format!(".{}.new", launcher::config::CONFIG_FILE_NAME));
        write_file(
            &temp,
            config_text(self.env, self.binds, ConfigRuntime::Auto).as_bytes(),
            0o644,
        )?;
        fs::rename(&temp, &config).map_err(|e| InstallError::io(&config, e))?;

        let mut command = demo_command(self.dir, self.env, self.kind, true);
        ui.info(format!(
            "demo: no runtime can run it here: no apptainer or singularity on PATH, and the native runtime cannot: {why}"
        ));
        ui.info(format!(
            "demo: so the launcher only prints the exact runtime command it would run (LAUNCHER_DRY_RUN=1) for:\n  {}\n\
             demo: the launcher would run:",
            Self::shown(&command)
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
        let shown = Self::shown(&command);
        let output = command
            .output()
            .map_err(|e| failed(format!("cannot run {shown}: {}", io_reason(&e))))?;
        let fake_text = fake.to_string_lossy().into_owned();
        let tidy = |bytes: &[u8]| String::from_utf8_lossy(bytes).replace(&fake_text, runtime::RUNTIME_NAMES[0]);
        crate::output::out(&tidy(&output.stdout));
        crate::output::err(&tidy(&output.stderr));
        if !output.status.success() {
            return Err(failed(format!("the launcher's dry run failed ({})", output.status)));
        }
        self.done(ui);
        Ok(())
    }

    fn done(&self, ui: &Ui) {
        ui.info(format!(
            "demo: done. Try {}/scripts/{}.d/bin/launcher bash, or `installer --scripts {}/scripts status`",
            self.dir.display(),
            self.env,
            self.dir.display()
        ));
    }
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
        use launcher::config::{Config, FlavourSetting};
        let text = config_text("demo-1.0", &["/usr".into(), "/etc".into()], ConfigRuntime::Auto);
        let config = Config::parse(text.as_bytes(), Path::new("/d/scripts/launcher.toml")).unwrap();
        assert_eq!(config.runtime.image.unwrap(), Path::new("/d/scripts/../base"));
        assert_eq!(config.container.envs_dir.unwrap(), Path::new("/d/scripts/../envs"));
        assert_eq!(config.default_env.as_deref(), Some("demo-1.0"));
        assert!(config.runtime.path.is_none());
        assert_eq!(config.runtime.flavour, FlavourSetting::Auto);
        let with_rt = config_text("e", &[], ConfigRuntime::Path(Path::new("/opt/rt/apptainer")));
        let config = Config::parse(with_rt.as_bytes(), Path::new("/d/s/launcher.toml")).unwrap();
        assert_eq!(config.runtime.path.unwrap(), Path::new("/opt/rt/apptainer"));
        let native = config_text("e", &[], ConfigRuntime::Native);
        let config = Config::parse(native.as_bytes(), Path::new("/d/s/launcher.toml")).unwrap();
        assert_eq!(config.runtime.flavour, FlavourSetting::Native);
        assert!(
            config.runtime.path.is_none(),
            "the native runtime is the launcher itself"
        );
    }

    #[test]
    fn python_layout_links_the_standard_library_under_the_prefix() {
        let debian = parse_python_layout("3.11\n/usr\n/usr/lib/python3.11\n/usr/lib/python3.11\n").unwrap();
        assert_eq!(debian.version, "3.11");
        assert_eq!(
            debian.links,
            [(PathBuf::from("lib/python3.11"), PathBuf::from("/usr/lib/python3.11"))]
        );
        let fedora = parse_python_layout("3.12\n/usr\n/usr/lib/python3.12\n/usr/lib64/python3.12\n").unwrap();
        assert_eq!(fedora.links.len(), 2);
        assert_eq!(fedora.links[1].0, Path::new("lib64/python3.12"));
        let local = parse_python_layout("3.12\n/usr/local\n/usr/local/lib/python3.12\n/usr/local/lib/python3.12\n");
        assert!(local.is_ok());
        assert!(parse_python_layout("3.12\n/opt/py\n/opt/py/lib\n/opt/py/lib\n")
            .unwrap_err()
            .contains("not under /usr"));
        assert!(parse_python_layout("3.12\n/usr\n/lib/python3\n/lib/python3\n")
            .unwrap_err()
            .contains("not under its prefix"));
        assert!(parse_python_layout("garbage").is_err());
    }

    #[test]
    fn native_failure_is_one_line_with_its_hint() {
        use std::os::unix::process::ExitStatusExt;
        let output = |code: i32, stderr: &str| Output {
            status: std::process::ExitStatus::from_raw(code << 8),
            stdout: Vec::new(),
            stderr: stderr.as_bytes().to_vec(),
        };
        let both = output(
            125,
            "launcher-native: cannot create a user namespace: Operation not permitted\n\
             launcher-native: hint: see sysctl user.max_user_namespaces\n",
        );
        assert_eq!(
            native_failure(&both).unwrap(),
            "cannot create a user namespace: Operation not permitted (hint: see sysctl user.max_user_namespaces)"
        );
        assert_eq!(
            native_failure(&output(125, "launcher-native: no loop devices\n")).unwrap(),
            "no loop devices"
        );
        // The launcher's own errors (also 125), the program's own 125, other codes: not the runtime.
        assert_eq!(native_failure(&output(125, "launcher: bad config\n")), None);
        assert_eq!(native_failure(&output(1, "launcher-native: x\n")), None);
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
        let c = demo_command(Path::new("/d"), "e", EnvKind::Python, true);
        assert_eq!(c.get_program(), Path::new("/d/scripts/e.d/bin/python3"));
        assert!(c
            .get_envs()
            .any(|(k, v)| k == "LAUNCHER_DRY_RUN" && v == Some("1".as_ref())));
        let c = demo_command(Path::new("/d"), "e", EnvKind::ShellOnly, false);
        assert_eq!(c.get_program(), Path::new("/d/scripts/e.d/bin/hello"));
        // A real run: the caller's dry run and overlays are removed.
        assert!(c.get_envs().all(|(_, v)| v.is_none()));
        assert!(c.get_envs().any(|(k, _)| k == "LAUNCHER_DRY_RUN"));
    }

    #[test]
    fn quoting() {
        assert_eq!(shell_quote("a/b"), "a/b");
        assert_eq!(shell_quote("it's"), "'it'\\''s'");
        assert_eq!(shell_quote(""), "''");
    }
}
