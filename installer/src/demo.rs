//! `installer demo DIR` (I12): a complete, self-contained installation in
//! one command, with no network: a generated env, its image, a base
//! sandbox, a relative `launcher.toml`, the farm; then one command run
//! through the launcher, for real wherever some runtime can run it.
//!
//! Everything is built in a staging directory beside DIR and moved into
//! place at the end (every path in it is relative), so a failure leaves
//! nothing half-built.
//!
//! The env is a small conda-style env made from the host's Python, as
//! the test bed's (`tests/support/conda_env.rs`): the interpreter's own
//! file and its standard library are *copied* to `<prefix>/<env>`, so that
//! CPython, which looks for its library above its resolved executable,
//! reports the env's in-container prefix as `sys.prefix` (E1) with no
//! variable set (no `PYTHONHOME`, which would leak into every process the
//! env starts); a pure-Python package with its `.dist-info` and a console
//! script make it an env with something installed. Copying needs no
//! privilege and nothing is left on the host.
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
/// The system Python whose interpreter and standard library the env gets.
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
     print(\"  os module      =\", os.__file__); \
     import importlib.metadata, demopkg; \
     print(\"  demopkg        =\", importlib.metadata.version(\"demopkg\"), \"from\", demopkg.__file__)";
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
    /// The host's Python (copied in), a package, plus shell tools.
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
    let wanted = opts.launcher.clone().or_else(farm::default_launcher_source);
    let launcher = wanted.clone().filter(|p| p.is_file()).ok_or_else(|| InstallError::Io {
        path: wanted.unwrap_or_else(|| PathBuf::from("launcher")),
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
        "would generate env {env} at {PREFIX}/{env}: {SYSTEM_PYTHON} and its standard library copied in, \
         the package {DEMO_PACKAGE} {DEMO_PACKAGE_VERSION}, and shell tools"
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

/// Where the system Python keeps itself and its standard library, as it
/// says itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PythonLayout {
    /// `3.11`
    pub version: String,
    /// The interpreter's own file (`/usr/bin/python3.11`, links resolved):
    /// copied to the env's `bin/python3.11`.
    pub executable: PathBuf,
    /// Directories to copy into the env, relative to the env prefix, and
    /// their absolute host paths (`lib/python3.11` ← `/usr/lib/python3.11`).
    pub copies: Vec<(PathBuf, PathBuf)>,
    /// The site dir this Python's `site.py` adds for a prefix of its own,
    /// relative to it: Debian's `lib/python3/dist-packages`, upstream's
    /// `lib/python3.11/site-packages`.
    pub site_dir: PathBuf,
}

impl PythonLayout {
    /// `python3.11`: the interpreter's name in the env's `bin/`.
    pub fn interpreter_name(&self) -> String {
        format!("python{}", self.version)
    }
}

/// Ask `python` (isolated from the caller's `PYTHON*` variables) for its
/// version, prefix, own file, standard library directories and site dirs.
pub fn python_layout(python: &Path) -> std::result::Result<PythonLayout, String> {
    let output = Command::new(python)
        .args([
            "-I",
            "-c",
            "import os, site, sys, sysconfig; print('%d.%d' % sys.version_info[:2]); print(sys.base_prefix); \
             print(os.path.realpath(sys.executable)); \
             print(sysconfig.get_path('stdlib')); print(sysconfig.get_path('platstdlib')); \
             print(*site.getsitepackages([sys.base_prefix]), sep='\\n')",
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

/// The layout from the lines `python_layout` asks for: version, prefix,
/// executable, stdlib, platstdlib, then the site dirs. The standard library
/// must lie under the prefix (it is copied to the same place under the env
/// prefix, where CPython looks for it from the interpreter's real
/// location), and the prefix under `/usr` (bound into the container: the
/// interpreter's shared libraries are found there).
pub fn parse_python_layout(text: &str) -> std::result::Result<PythonLayout, String> {
    let lines: Vec<&str> = text.lines().collect();
    let [version, prefix, executable, stdlib, platstdlib, sites @ ..] = &lines[..] else {
        return Err(format!("unexpected answer from {SYSTEM_PYTHON}: {text:?}"));
    };
    if version.is_empty() || !version.chars().all(|c| c.is_ascii_digit() || c == '.') {
        return Err(format!("unexpected version from {SYSTEM_PYTHON}: {version:?}"));
    }
    let prefix = Path::new(prefix);
    if !prefix.starts_with("/usr") {
        return Err(format!(
            "its prefix {} is not under /usr, which is what the demo binds into the container",
            prefix.display()
        ));
    }
    let executable = PathBuf::from(executable);
    if !executable.is_absolute() {
        return Err(format!("it does not know its own file ({executable:?})"));
    }
    let mut copies = Vec::new();
    for dir in [stdlib, platstdlib] {
        let dir = Path::new(dir);
        let rel = dir.strip_prefix(prefix).map_err(|_| {
            format!(
                "its standard library {} is not under its prefix {}",
                dir.display(),
                prefix.display()
            )
        })?;
        if rel.as_os_str().is_empty() || copies.iter().any(|(r, _): &(PathBuf, PathBuf)| r == rel) {
            continue;
        }
        copies.push((rel.to_path_buf(), dir.to_path_buf()));
    }
    // The first site dir of the prefix itself (not of `local/`).
    let site_dir = sites
        .iter()
        .filter_map(|s| Path::new(s).strip_prefix(prefix).ok())
        .find(|rel| !rel.starts_with("local") && !rel.as_os_str().is_empty())
        .ok_or_else(|| format!("it names no site dir under its prefix ({sites:?})"))?
        .to_path_buf();
    Ok(PythonLayout {
        version: version.to_string(),
        executable,
        copies,
        site_dir,
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
                "demo: generating env {env} at {PREFIX}/{env}: Python {} ({} and its standard library copied in), \
                 the package {DEMO_PACKAGE} {DEMO_PACKAGE_VERSION}, and shell tools",
                layout.version,
                layout.executable.display()
            ));
            match write_python(&env_dir, env, &layout) {
                Ok(()) => EnvKind::Python,
                Err(why) => {
                    ui.warn(format!("{why}: the demo env has shell tools only"));
                    fs::remove_dir_all(&env_dir).map_err(|e| InstallError::io(&env_dir, e))?;
                    mkdir(&env_dir)?;
                    EnvKind::ShellOnly
                }
            }
        }
        Err(why) => {
            ui.warn(format!("{why}: the demo env has shell tools only"));
            EnvKind::ShellOnly
        }
    };
    write_tools(&env_dir, env)?;
    Ok(kind)
}

/// The env's Python, as conda lays one out: the interpreter's own file
/// copied to `bin/python3.X` (`python3` and `python` link to it), its
/// standard library (with `lib-dynload`) copied to the same place under the
/// env prefix, and [`DEMO_PACKAGE`] installed in its site dir. CPython
/// looks for `lib/python3.X/os.py` above its resolved executable, so inside
/// the container it reports the env prefix as `sys.prefix`, with no
/// variable set. Checked here by running the copy from the staging dir;
/// any failure is the reason the env gets shell tools only.
fn write_python(env_dir: &Path, env: &str, layout: &PythonLayout) -> std::result::Result<(), String> {
    let failed = |e: InstallError| e.to_string();
    let bin = env_dir.join("bin");
    mkdir(&bin).map_err(failed)?;
    let interpreter = layout.interpreter_name();
    let copy = bin.join(&interpreter);
    fs::copy(&layout.executable, &copy)
        .map_err(|e| format!("cannot copy {}: {}", layout.executable.display(), io_reason(&e)))?;
    fs::set_permissions(&copy, fs::Permissions::from_mode(0o755)).map_err(|e| failed(InstallError::io(&copy, e)))?;
    for name in ["python3", "python"] {
        let link = bin.join(name);
        if name != interpreter {
            symlink(&interpreter, &link).map_err(|e| failed(InstallError::io(&link, e)))?;
        }
    }
    for (rel, host) in &layout.copies {
        copy_stdlib(host, &env_dir.join(rel)).map_err(failed)?;
    }
    write_package(env_dir, env, layout).map_err(failed)?;
    check_python(&copy, env_dir)
}

/// Directories of a standard library not copied: byte code (not needed,
/// the demo runs a few modules), the test suites, the build configuration
/// (`config-3.X-…`, the static libpython), and the host's own packages.
fn skipped_in_stdlib(name: &str, top: bool) -> bool {
    matches!(name, "__pycache__" | "test" | "tests" | "idle_test")
        || (top && (name.starts_with("config-") || matches!(name, "site-packages" | "dist-packages")))
}

/// Files of a standard library not copied: the distribution's marks of a
/// system Python (`EXTERNALLY-MANAGED`, `sitecustomize.py`, Debian's link
/// to its hooks in `/etc`).
const STDLIB_FILES_SKIPPED: [&str; 2] = ["EXTERNALLY-MANAGED", "sitecustomize.py"];

/// Copy the standard library directory `from` to `to`: directories, regular
/// files (with their mode) and symlinks as they are; nothing else.
pub fn copy_stdlib(from: &Path, to: &Path) -> Result<()> {
    fn walk(from: &Path, to: &Path, top: bool) -> Result<()> {
        mkdir(to)?;
        let entries = fs::read_dir(from).map_err(|e| InstallError::io(from, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| InstallError::io(from, e))?;
            let name = entry.file_name();
            let name_text = name.to_string_lossy();
            let (source, dest) = (entry.path(), to.join(&name));
            let kind = entry.file_type().map_err(|e| InstallError::io(&source, e))?;
            if kind.is_dir() {
                if !skipped_in_stdlib(&name_text, top) {
                    walk(&source, &dest, false)?;
                }
            } else if top && STDLIB_FILES_SKIPPED.contains(&&*name_text) {
                continue;
            } else if kind.is_symlink() {
                let target = fs::read_link(&source).map_err(|e| InstallError::io(&source, e))?;
                symlink(&target, &dest).map_err(|e| InstallError::io(&dest, e))?;
            } else if kind.is_file() {
                fs::copy(&source, &dest).map_err(|e| InstallError::io(&source, e))?;
            }
        }
        Ok(())
    }
    walk(from, to, true)
}

/// Run the staged copy: it must find its own prefix and the package.
fn check_python(python: &Path, env_dir: &Path) -> std::result::Result<(), String> {
    let want = fs::canonicalize(env_dir).map_err(|e| format!("{}: {}", env_dir.display(), io_reason(&e)))?;
    let output = Command::new(python)
        .args(["-I", "-B", "-c", CHECK_PROGRAM])
        .env_clear()
        .current_dir("/")
        .output()
        .map_err(|e| format!("cannot run the copied Python {}: {}", python.display(), io_reason(&e)))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let want = format!("{} {DEMO_PACKAGE_VERSION}", want.display());
    if output.status.success() && stdout.trim_end() == want {
        return Ok(());
    }
    Err(format!(
        "the copied Python does not find its own prefix and package (wanted {want:?}, got {:?}{}{})",
        stdout.trim_end(),
        if stderr.trim().is_empty() { "" } else { ": " },
        stderr.lines().last().unwrap_or("")
    ))
}

/// What [`check_python`] runs: the prefix and the package's version.
const CHECK_PROGRAM: &str = "import sys, importlib.metadata as m; print(sys.prefix, m.version('demopkg'))";

/// The demo env's own package: a pure-Python package with its
/// `.dist-info` (as pip or conda installs one) and a console script.
pub const DEMO_PACKAGE: &str = "demopkg";
pub const DEMO_PACKAGE_VERSION: &str = "1.0";
/// The console script of [`DEMO_PACKAGE`] in the env's `bin/`.
pub const DEMO_PACKAGE_SCRIPT: &str = "demopkg-info";

/// `demopkg/__init__.py`, after its `__version__` line.
const DEMO_PACKAGE_INIT: &str = r#"


def main():
    """The `demopkg-info` console script: where it runs."""
    import os
    import sys

    print(f"demopkg {__version__} from {__file__}")
    print(f"  sys.executable = {sys.executable}")
    print(f"  sys.prefix     = {sys.prefix}")
    print("  " + ("inside" if os.path.isdir("/.singularity.d") else "outside") + " the container")
    return 0
"#;

/// Install [`DEMO_PACKAGE`] into the env's site dir, with its
/// `.dist-info` (`METADATA`, `INSTALLER`, `top_level.txt`,
/// `entry_points.txt`, `RECORD` with hashes) and its console script, whose
/// `#!` names the env's interpreter by its in-container path, as conda
/// writes them.
fn write_package(env_dir: &Path, env: &str, layout: &PythonLayout) -> Result<()> {
    let site = env_dir.join(&layout.site_dir);
    let package = site.join(DEMO_PACKAGE);
    mkdir(&package)?;
    let info_name = format!("{DEMO_PACKAGE}-{DEMO_PACKAGE_VERSION}.dist-info");
    let info = site.join(&info_name);
    mkdir(&info)?;
    let script = format!(
        "#!{PREFIX}/{env}/bin/{}\n\
         # -*- coding: utf-8 -*-\n\
         import re\n\
         import sys\n\
         \n\
         from {DEMO_PACKAGE} import main\n\
         \n\
         if __name__ == '__main__':\n\
         \x20   sys.argv[0] = re.sub(r'(-script\\.pyw?|\\.exe)?$', '', sys.argv[0])\n\
         \x20   sys.exit(main())\n",
        layout.interpreter_name()
    );
    let files: Vec<(PathBuf, String, u32)> = vec![
        (
            package.join("__init__.py"),
            format!(
                "\"\"\"The demo env's own package, made by `installer demo`.\"\"\"\n\n\
                 __version__ = \"{DEMO_PACKAGE_VERSION}\"\n{DEMO_PACKAGE_INIT}"
            ),
            0o644,
        ),
        (
            info.join("METADATA"),
            format!(
                "Metadata-Version: 2.1\nName: {DEMO_PACKAGE}\nVersion: {DEMO_PACKAGE_VERSION}\n\
                 Summary: The demo env's own package (installer demo)\nRequires-Python: >=3.8\n"
            ),
            0o644,
        ),
        (info.join("INSTALLER"), "installer-demo\n".to_string(), 0o644),
        (info.join("top_level.txt"), format!("{DEMO_PACKAGE}\n"), 0o644),
        (
            info.join("entry_points.txt"),
            format!("[console_scripts]\n{DEMO_PACKAGE_SCRIPT} = {DEMO_PACKAGE}:main\n"),
            0o644,
        ),
        (env_dir.join("bin").join(DEMO_PACKAGE_SCRIPT), script, 0o755),
    ];
    let mut record = String::new();
    for (path, text, mode) in &files {
        write_file(path, text.as_bytes(), *mode)?;
        let rel = relative_path(&site, path);
        record.push_str(&format!(
            "{rel},sha256={},{}\n",
            record_digest(text.as_bytes()),
            text.len()
        ));
    }
    record.push_str(&format!("{info_name}/RECORD,,\n"));
    write_file(&info.join("RECORD"), record.as_bytes(), 0o644)
}

/// `path` relative to `from` (a directory above it, or beside one: the
/// console script in `bin/` is `../../../bin/demopkg-info` from the site dir).
fn relative_path(from: &Path, path: &Path) -> String {
    let from: Vec<_> = from.components().collect();
    let to: Vec<_> = path.components().collect();
    let common = from.iter().zip(&to).take_while(|(a, b)| a == b).count();
    let mut parts: Vec<String> = vec!["..".to_string(); from.len() - common];
    parts.extend(
        to[common..]
            .iter()
            .map(|c| c.as_os_str().to_string_lossy().into_owned()),
    );
    parts.join("/")
}

/// A `RECORD` hash: the SHA-256 in URL-safe base64 without padding.
fn record_digest(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let digest = Sha256::digest(bytes);
    let mut out = String::new();
    for chunk in digest.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
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
        .args([
            "-noappend",
            "-all-root",
            "-no-progress",
            "-quiet",
            "-comp",
            "gzip",
            "-Xcompression-level",
        ])
        .arg(crate::pack::DEMO_GZIP_LEVEL.to_string())
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
    fn python_layout_copies_the_standard_library_under_the_prefix() {
        let debian = parse_python_layout(
            "3.11\n/usr\n/usr/bin/python3.11\n/usr/lib/python3.11\n/usr/lib/python3.11\n\
             /usr/local/lib/python3.11/dist-packages\n/usr/lib/python3/dist-packages\n/usr/lib/python3.11/dist-packages\n",
        )
        .unwrap();
        assert_eq!(debian.version, "3.11");
        assert_eq!(debian.interpreter_name(), "python3.11");
        assert_eq!(debian.executable, Path::new("/usr/bin/python3.11"));
        assert_eq!(
            debian.copies,
            [(PathBuf::from("lib/python3.11"), PathBuf::from("/usr/lib/python3.11"))]
        );
        assert_eq!(debian.site_dir, Path::new("lib/python3/dist-packages"));
        let fedora = parse_python_layout(
            "3.12\n/usr\n/usr/bin/python3.12\n/usr/lib/python3.12\n/usr/lib64/python3.12\n\
             /usr/lib64/python3.12/site-packages\n/usr/lib/python3.12/site-packages\n",
        )
        .unwrap();
        assert_eq!(fedora.copies.len(), 2);
        assert_eq!(fedora.copies[1].0, Path::new("lib64/python3.12"));
        assert_eq!(fedora.site_dir, Path::new("lib64/python3.12/site-packages"));
        let local = parse_python_layout(
            "3.12\n/usr/local\n/usr/local/bin/python3.12\n/usr/local/lib/python3.12\n/usr/local/lib/python3.12\n\
             /usr/local/lib/python3.12/site-packages\n",
        );
        assert_eq!(local.unwrap().site_dir, Path::new("lib/python3.12/site-packages"));
        assert!(
            parse_python_layout("3.12\n/opt/py\n/opt/py/bin/python3\n/opt/py/lib\n/opt/py/lib\n/opt/py/lib/s\n")
                .unwrap_err()
                .contains("not under /usr")
        );
        assert!(
            parse_python_layout("3.12\n/usr\n/usr/bin/python3\n/lib/python3\n/lib/python3\n/usr/lib/s\n")
                .unwrap_err()
                .contains("not under its prefix")
        );
        assert!(
            parse_python_layout("3.12\n/usr\n/usr/bin/python3\n/usr/lib/python3\n/usr/lib/python3\n")
                .unwrap_err()
                .contains("no site dir")
        );
        assert!(parse_python_layout("garbage").is_err());
    }

    #[test]
    fn stdlib_copy_skips_byte_code_tests_build_config_and_system_marks() {
        let dir = tempfile::tempdir().unwrap();
        let from = dir.path().join("python3.11");
        for sub in [
            "__pycache__",
            "test",
            "config-3.11-x86_64-linux-gnu",
            "site-packages",
            "lib-dynload",
            "json/tests",
            "email/__pycache__",
        ] {
            fs::create_dir_all(from.join(sub)).unwrap();
        }
        for file in [
            "os.py",
            "EXTERNALLY-MANAGED",
            "json/__init__.py",
            "json/tests/t.py",
            "lib-dynload/_x.so",
            "__pycache__/os.pyc",
        ] {
            fs::write(from.join(file), file).unwrap();
        }
        fs::set_permissions(from.join("lib-dynload/_x.so"), fs::Permissions::from_mode(0o755)).unwrap();
        symlink("/etc/python3.11/sitecustomize.py", from.join("sitecustomize.py")).unwrap();
        symlink("os.py", from.join("alias.py")).unwrap();
        let to = dir.path().join("env/lib/python3.11");
        copy_stdlib(&from, &to).unwrap();
        let mut found: Vec<String> = Vec::new();
        fn list(root: &Path, dir: &Path, found: &mut Vec<String>) {
            for entry in fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                found.push(path.strip_prefix(root).unwrap().to_string_lossy().into_owned());
                if fs::symlink_metadata(&path).unwrap().is_dir() {
                    list(root, &path, found);
                }
            }
        }
        list(&to, &to, &mut found);
        found.sort();
        assert_eq!(
            found,
            [
                "alias.py",
                "email",
                "json",
                "json/__init__.py",
                "lib-dynload",
                "lib-dynload/_x.so",
                "os.py"
            ]
        );
        assert_eq!(fs::read_link(to.join("alias.py")).unwrap(), Path::new("os.py"));
        assert!(!fs::symlink_metadata(to.join("os.py")).unwrap().file_type().is_symlink());
        let mode = fs::metadata(to.join("lib-dynload/_x.so")).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o755);
    }

    #[test]
    fn record_hashes_and_paths_are_as_pip_writes_them() {
        // sha256 of nothing and of "hello\n", URL-safe base64 without padding.
        assert_eq!(record_digest(b""), "47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU");
        assert_eq!(record_digest(b"hello\n"), "WJG1tSLV3whtD_CxEPvZ0hu0_HFjrzTQgoai6Eb2vgM");
        let site = Path::new("/e/lib/python3/dist-packages");
        assert_eq!(
            relative_path(site, &site.join("demopkg/__init__.py")),
            "demopkg/__init__.py"
        );
        assert_eq!(
            relative_path(site, Path::new("/e/bin/demopkg-info")),
            "../../../bin/demopkg-info"
        );
        assert!(PYTHON_PROGRAM.contains(&format!("version(\"{DEMO_PACKAGE}\")")));
        assert!(CHECK_PROGRAM.contains(&format!("version('{DEMO_PACKAGE}')")));
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
