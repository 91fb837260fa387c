//! `installer check` (I10): looks at a live installation and lists every
//! problem; the run fails (exit 1) when there is any. Warnings (things that
//! may be fine on a given site) are listed but do not fail it.

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

use launcher::config::{FlavourSetting, ENV_FILE_NAME};

use crate::base::{self, SandboxFs};
use crate::farm::desired_tree;
use crate::image::EnvImage;
use crate::modulefile;
use crate::runtime::{self, Flavour};
use crate::site::{image_env_name, is_alias_link, Site};
use crate::swap::{self, Live};
use crate::tree::{Node, Tree};
use crate::ui::Ui;
use launcher::probe::{OsProbe, Probe};

/// At most this many lines per kind of farm difference and env.
const MAX_LISTED: usize = 10;

#[derive(Debug, Default)]
pub struct Report {
    pub problems: Vec<String>,
    pub warnings: Vec<String>,
    /// Facts worth knowing (the runtime's version and mode); never a failure.
    pub infos: Vec<String>,
    pub envs: Vec<String>,
}

impl Report {
    fn info(&mut self, text: impl Into<String>) {
        self.infos.push(text.into());
    }
    fn problem(&mut self, text: impl Into<String>) {
        self.problems.push(text.into());
    }
    fn warning(&mut self, text: impl Into<String>) {
        self.warnings.push(text.into());
    }
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// How much `check` looks at.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// The `--modules` directory, if given (else `modules_dir`).
    pub modules: Option<PathBuf>,
    /// `--verify-images`: read every data block of each env's image and
    /// backup (`verify`).
    pub verify_images: bool,
}

/// Check the installation of `site`; `only` limits the per-env checks to
/// those envs (all when empty). `ui` only draws progress bars.
pub fn run(site: &Site, only: &[String], opts: &Options, ui: &Ui) -> Report {
    let modules = opts.modules.as_deref();
    let mut report = Report::default();
    check_launcher(site, &mut report);
    check_runtime(site, &mut report);
    check_base(site, &mut report);
    check_host_commands(site, &mut report);
    let envs = match envs_to_check(site, only, &mut report) {
        Some(envs) => envs,
        None => return report,
    };
    for env in &envs {
        check_env(site, env, &mut report);
        if opts.verify_images {
            verify_images(site, env, ui, &mut report);
        }
    }
    check_aliases(site, &mut report);
    check_interrupted_deploys(site, &mut report);
    check_leftovers(site, modules, &mut report);
    for path in swap::leftovers(&site.scripts) {
        report.warning(format!(
            "{}: left by an interrupted installer run; the next `installer farm` removes it",
            path.display()
        ));
    }
    check_permissions(site, &envs, modules, &mut report);
    check_access(site, &envs, &mut report);
    check_visibility(site, &mut report);
    report.envs = envs;
    report
}

fn check_launcher(site: &Site, report: &mut Report) {
    let path = site.launcher_path();
    match OsProbe.stat(&path) {
        Ok(s) if s.is_executable_file() => {}
        Ok(_) => report.problem(format!("launcher {} is not an executable file", path.display())),
        Err(e) => report.problem(format!("launcher {}: {}", path.display(), crate::error::io_reason(&e))),
    }
}

fn check_runtime(site: &Site, report: &mut Report) {
    if site.config.runtime.flavour == FlavourSetting::Native {
        check_native_runtime(site, report);
    } else {
        check_container_runtime(site, report);
    }
    match &site.config.runtime.image {
        None => report.problem(format!(
            "runtime.image (the base image) is not set in {}",
            site.config_source.display()
        )),
        Some(image) if !image.exists() => {
            report.problem(format!("base image {} (runtime.image) not found", image.display()))
        }
        Some(_) => {}
    }
}

/// `runtime.flavour = "native"`: the runtime is the launcher itself (or the
/// launcher binary `runtime.path` names), so nothing is looked for on
/// `PATH`; what the native runtime needs here is reported instead (as
/// root: loop devices; as a user: user namespaces, `/dev/fuse`,
/// `squashfuse`), as info and warning lines.
fn check_native_runtime(site: &Site, report: &mut Report) {
    if let Some(path) = &site.config.runtime.path {
        match OsProbe.stat(path) {
            Ok(s) if s.is_executable_file() => {}
            Ok(_) => report.problem(format!(
                "runtime {} (runtime.path: the launcher binary the native runtime runs as) is not an executable file",
                path.display()
            )),
            Err(e) => report.problem(format!(
                "runtime {} (runtime.path: the launcher binary the native runtime runs as): {}",
                path.display(),
                crate::error::io_reason(&e)
            )),
        }
    }
    let native = runtime::NativeHost::probe().report();
    for line in native.infos {
        report.info(line);
    }
    for line in native.warnings {
        report.warning(line);
    }
}

/// Apptainer or Singularity: `runtime.path`, else on `PATH` (L9).
fn check_container_runtime(site: &Site, report: &mut Report) {
    match runtime::find(&site.config) {
        Ok(rt) => {
            if rt.flavour.is_none() {
                report.warning(format!(
                    "runtime {}: cannot tell apptainer from singularity by its name; set runtime.flavour",
                    rt.path.display()
                ));
            }
            check_runtime_product(&rt, report);
        }
        Err(why) => report.problem(format!("no container runtime: {why}")),
    }
}

/// The runtime's product, version and mode (`RUNTIME --version`, its
/// setuid starter), and what follows from them.
fn check_runtime_product(rt: &runtime::Runtime, report: &mut Report) {
    use runtime::{Mode, Product, VersionError};
    let path = rt.path.display();
    let text = match runtime::version_output(&rt.path, runtime::VERSION_TIMEOUT) {
        Ok(text) => text,
        Err(VersionError::CannotRun(why)) => return report.problem(format!("runtime {path}: {why}")),
        Err(VersionError::Failed(why)) => {
            return report.warning(format!("runtime {path}: {why}; its version and mode are unknown"))
        }
    };
    let Some(version) = runtime::parse_version(&text) else {
        let first = text.lines().next().unwrap_or("").trim();
        return report.warning(format!(
            "runtime {path}: `--version` printed {first:?}, not `apptainer version …`, `singularity-ce version …` \
             or `singularity version …`; its version and mode are unknown"
        ));
    };
    let mode = runtime::mode(&rt.path);
    report.info(format!(
        "runtime {path}: {} {}, {}",
        version.product.name(),
        version.version,
        mode.describe()
    ));
    if version.product != Product::Apptainer {
        if matches!(mode, Mode::UserNamespace(_)) {
            report.warning(format!(
                "runtime {path}: {} without setuid cannot mount squashfs overlays (its native mode mounts images \
                 through loop devices only), so no env image would be mounted; install it setuid (starter-suid)",
                version.product.name()
            ));
        }
        if rt.flavour == Some(Flavour::Apptainer) {
            report.problem(format!(
                "runtime {path} is {} {}, which ignores the APPTAINERENV_ variables the launcher would pass \
                 (runtime.flavour): set runtime.flavour = \"singularity\"",
                version.product.name(),
                version.version
            ));
        }
    }
}

/// The base image (issue 9 §3): a sandbox directory must be on a file system
/// the runtimes can overlay, have `99-base.sh` when it has `env/`, the marker,
/// and a mount point for every bind and the container prefix.
fn check_base(site: &Site, report: &mut Report) {
    let Some(image) = &site.config.runtime.image else {
        return;
    };
    let Ok(meta) = std::fs::metadata(image) else { return };
    let shown = image.display();
    if !meta.is_dir() {
        report.info(format!(
            "base image {shown}: an image file (SIF), not inspected inside; one made by `apptainer build` \
             or `singularity build` has what the runtimes need"
        ));
        return;
    }
    match base::sandbox_fs(image) {
        Ok(SandboxFs::Local) => {}
        Ok(SandboxFs::DropsOverlays(fs)) => report.problem(format!(
            "base image {shown} is a sandbox directory on {fs}: Apptainer and SingularityCE cannot put an overlay \
             over it and silently drop every --overlay, so no env would be mounted; use a SIF \
             (apptainer build base.sif {shown}) or a sandbox on local storage"
        )),
        Ok(SandboxFs::Network(fs)) => report.warning(format!(
            "base image {shown} is a sandbox directory on {fs}: the runtimes still overlay it, but every launch \
             reads the base's files over the network; a SIF or a sandbox on local storage is faster and safer"
        )),
        Err(e) => report.warning(format!(
            "base image {shown}: cannot tell its file system: {}",
            crate::error::io_reason(&e)
        )),
    }
    let in_base = |p: &Path| base::resolve_in_root(image, p);
    let marker = &site.config.container.marker;
    if marker.is_absolute() && in_base(marker).is_err() {
        report.problem(format!(
            "base image {shown} has no {} (container.marker): inside the container the launcher could not tell \
             that it is inside (L5); images made by `apptainer build` have it",
            marker.display()
        ));
    }
    let has_env_dir = in_base(Path::new(base::ENV_DIR)).is_ok_and(|p| p.is_dir());
    if has_env_dir && in_base(Path::new(base::BASE_ENV_SCRIPT)).is_err() {
        report.problem(format!(
            "base image {shown} has {}/ but no 99-base.sh: Apptainer and SingularityCE then drop every \
             APPTAINERENV_/SINGULARITYENV_ variable (the env's PATH, CONDA_PREFIX, activation variables); \
             add an empty {shown}{}",
            base::ENV_DIR,
            base::BASE_ENV_SCRIPT
        ));
    }
    for point in base::mount_points(&site.config) {
        let want = if point.file { "file" } else { "directory" };
        match in_base(&point.path) {
            Ok(found) => {
                let is_dir = found.is_dir();
                if is_dir == point.file {
                    report.problem(format!(
                        "base image {shown}: mount point {} ({}) is {}, the bind needs a {want}",
                        point.path.display(),
                        point.source,
                        if is_dir { "a directory" } else { "not a directory" },
                    ));
                }
            }
            Err(_) => report.problem(format!(
                "base image {shown}: no mount point {} ({}): make it a {want} in the base; a runtime that \
                 cannot put a writable layer over the base does not create it",
                point.path.display(),
                point.source
            )),
        }
    }
}

/// L8: a host command called from inside the container runs in the
/// container's namespaces, with setuid blocked.
fn check_host_commands(site: &Site, report: &mut Report) {
    for (name, command) in &site.config.commands {
        if command.host {
            report.warning(format!(
                "commands.{name}: host = true: called from inside the container, {name} still runs in the \
                 container's namespaces with setuid blocked (no_new_privs), so ssh host-based authentication \
                 (ssh-keysign), sudo and su fail there (L8)"
            ));
        }
    }
}

/// Every env with an image or a scripts tree (aliases excluded), or `only`.
fn envs_to_check(site: &Site, only: &[String], report: &mut Report) -> Option<Vec<String>> {
    if !only.is_empty() {
        return Some(only.to_vec());
    }
    let mut envs = BTreeSet::new();
    match site.envs_with_images() {
        Ok(found) => envs.extend(found),
        Err(e) => {
            report.problem(e.to_string());
            return None;
        }
    }
    if let Ok(entries) = std::fs::read_dir(&site.scripts) {
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(env) = name.to_str().and_then(|n| n.strip_suffix(".d")) else {
                continue;
            };
            if crate::site::valid_env_name(env) && !matches!(swap::inspect(&site.scripts, env), Ok(Live::Alias(_))) {
                envs.insert(env.to_string());
            }
        }
    }
    Some(envs.into_iter().collect())
}

fn check_env(site: &Site, env: &str, report: &mut Report) {
    let env_dir = site.env_dir(env);
    let image_path = match site.image_path(env) {
        Ok(path) => path,
        Err(e) => return report.problem(e.to_string()),
    };
    let image = match EnvImage::open(&image_path) {
        Ok(image) => Some(image),
        Err(e) => {
            report.problem(format!("{env}: {e}"));
            None
        }
    };
    let live = match swap::inspect(&site.scripts, env) {
        Ok(live) => live,
        Err(e) => return report.problem(format!("{}: {}", env_dir.display(), crate::error::io_reason(&e))),
    };
    match live {
        Live::Absent => {
            return report.problem(format!(
                "{env}: no scripts tree {}; run `installer farm {env}`",
                env_dir.display()
            ))
        }
        Live::Foreign => return report.problem(format!("{}: not a directory", env_dir.display())),
        Live::Alias(_) => return,
        Live::Dir | Live::Versioned(_) => {}
    }
    let Some(image) = image else { return };
    let desired = match desired_tree(site, env, &image) {
        Ok(desired) => {
            for n in &desired.activation.not_captured {
                report.warning(format!(
                    "{env}: activation script {} not captured ({}): set what it sets in [container.env] if shebang users need it",
                    n.script, n.reason
                ));
            }
            desired.tree
        }
        Err(e) => return report.problem(format!("{env}: {e}")),
    };
    let actual = match Tree::read(&env_dir) {
        Ok(tree) => tree.unwrap_or_default(),
        Err(e) => return report.problem(format!("{}: {}", env_dir.display(), crate::error::io_reason(&e))),
    };
    let diff = desired.diff(&actual);
    let name = |p: &Path| Path::new(&format!("{env}.d")).join(p).display().to_string();
    let listed = |report: &mut Report, paths: &[PathBuf], what: &dyn Fn(&Path) -> String| {
        for path in paths.iter().take(MAX_LISTED) {
            report.problem(what(path));
        }
        if paths.len() > MAX_LISTED {
            report.problem(format!("{env}: … and {} more like the above", paths.len() - MAX_LISTED));
        }
    };
    listed(report, &diff.missing, &|p| {
        format!("{}: missing (the image has it; run `installer farm {env}`)", name(p))
    });
    listed(report, &diff.extra, &|p| {
        format!("{}: stale (not in the image)", name(p))
    });
    listed(report, &diff.changed, &|p| match (desired.get(p), actual.get(p)) {
        (Some(Node::Link { target: want }), Some(Node::Link { target: have })) => format!(
            "{}: points at {}, not the launcher ({})",
            name(p),
            have.display(),
            want.display()
        ),
        (Some(Node::Dir { mode: want }), Some(Node::Dir { mode: have }))
        | (Some(Node::File { mode: want, .. }), Some(Node::File { mode: have, .. }))
            if want != have =>
        {
            format!("{}: mode {have:04o}, `installer farm` writes {want:04o}", name(p))
        }
        _ => format!("{}: differs from what `installer farm` writes", name(p)),
    });
}

/// `--verify-images`: every data block of the env's image and of its
/// backup decompresses (what `deploy` checks before an image goes live).
fn verify_images(site: &Site, env: &str, ui: &Ui, report: &mut Report) {
    let Ok(live) = site.image_path(env) else { return };
    let backup = live
        .parent()
        .map(|envs| envs.join(crate::deploy::BACKUP_DIR_NAME).join(format!("{env}.sqsh")));
    for (path, what) in [(Some(live), "image"), (backup, "backup")] {
        let Some(path) = path.filter(|p| p.is_file()) else {
            continue;
        };
        // An image that does not open is reported by `check_env` already.
        let Ok(image) = EnvImage::open(&path) else { continue };
        let bar = ui.progress_bytes(0, &format!("verifying {}", path.display()));
        let result = crate::verify::verify(&image, &bar);
        bar.finish_and_clear();
        match result {
            Ok(verified) => report.info(format!("{env}: verified {}: {}", path.display(), verified.describe())),
            Err(e) if what == "backup" => report.problem(format!(
                "{env}: backup {e} (`installer rollback --env {env}` would refuse it)"
            )),
            Err(e) => report.problem(format!("{env}: {e}")),
        }
    }
}

/// `<scripts>/X.d` and `<envs>/X.sqsh` aliases must resolve (I9).
fn check_aliases(site: &Site, report: &mut Report) {
    let mut candidates = Vec::new();
    if let Ok(entries) = std::fs::read_dir(&site.scripts) {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Some(env) = name.strip_suffix(".d") {
                if matches!(swap::inspect(&site.scripts, env), Ok(Live::Alias(_))) {
                    candidates.push(entry.path());
                }
            }
        }
    }
    if let Ok(dir) = site.envs_dir() {
        if let Ok(entries) = std::fs::read_dir(dir) {
            for entry in entries.flatten() {
                if image_env_name(&entry.file_name()).is_some() && is_alias_link(&entry.path()) {
                    candidates.push(entry.path());
                }
            }
        }
    }
    for alias in candidates {
        if std::fs::metadata(&alias).is_err() {
            let target = std::fs::read_link(&alias).unwrap_or_default();
            report.problem(format!(
                "alias {} -> {} does not resolve",
                alias.display(),
                target.display()
            ));
        }
    }
}

/// I6: an interrupted rollback must be finished (its journal is still
/// there); temporary images of a killed deploy are only clutter.
fn check_interrupted_deploys(site: &Site, report: &mut Report) {
    let Ok(envs) = site.envs_dir() else { return };
    for dir in [envs.to_path_buf(), envs.join(crate::deploy::BACKUP_DIR_NAME)] {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Some(env) = name.strip_prefix('.').and_then(|n| n.strip_suffix(".rollback")) {
                report.problem(format!(
                    "{}: a rollback of {env} was interrupted; run `installer rollback --env {env}` to finish it",
                    entry.path().display()
                ));
            } else if let Some(env) = name.strip_prefix('.').and_then(|n| n.strip_suffix(".sqsh.prev")) {
                report.warning(format!(
                    "{}: left by an interrupted rollback of {env}; `installer rollback --env {env}` or the next deploy of {env} removes it",
                    entry.path().display()
                ));
            }
        }
    }
}

/// Temporary files of killed runs in `<envs>`, the backup and the modules
/// directory (`leftovers`); while another run holds a directory's lock,
/// they may be that run's own, and the warning says so.
fn check_leftovers(site: &Site, modules: Option<&Path>, report: &mut Report) {
    for (dir, place) in crate::leftovers::shared_dirs(site, None, modules) {
        let found = crate::leftovers::find(&dir, place);
        if found.is_empty() {
            continue;
        }
        let running = crate::lock::holder(&dir)
            .map(|who| {
                format!(
                    " (or of the run that holds {} now: {who})",
                    dir.join(crate::lock::LOCK_FILE_NAME).display()
                )
            })
            .unwrap_or_default();
        for leftover in found {
            let fix = if leftover.removable {
                "the next `installer farm`, `deploy` or `rollback` removes it"
            } else {
                "remove it by hand once no `installer pack` writes it"
            };
            report.warning(format!(
                "{}: {}, left by an interrupted run{running}; {fix}",
                leftover.path.display(),
                leftover.what
            ));
        }
    }
}

/// L19 (`trust`): nothing a launch reads or runs may be changeable by a
/// user other than root and the installation's owner: the config, the
/// launcher, each `env.toml`, override and `script =` file, the env images,
/// the base image, the runtime, the modulefiles; every directory of the
/// installation; and every directory on the way to any of them.
fn check_permissions(site: &Site, envs: &[String], modules: Option<&Path>, report: &mut Report) {
    use crate::trust::{Checker, Kind};
    let mut files = vec![site.config_path(), site.launcher_path()];
    let mut dirs = vec![site.scripts.clone(), site.scripts.join(swap::VERSIONS_DIR)];
    for command in site.config.commands.values() {
        files.extend(command.script.clone());
    }
    let mut override_dirs = vec![site.overrides_dir()];
    override_dirs.extend(envs.iter().map(|e| site.overrides_dir().join(e)));
    for env in envs {
        let env_dir = site.env_dir(env);
        if !env_dir.exists() {
            continue;
        }
        // In the versioned layout, also `.versions/<env>.ID` (its parent).
        if let Ok(real) = std::fs::canonicalize(&env_dir) {
            dirs.extend(real.parent().map(Path::to_path_buf));
            dirs.push(real);
        }
        dirs.push(env_dir.clone());
        dirs.push(env_dir.join("bin"));
        files.push(env_dir.join(ENV_FILE_NAME));
        override_dirs.push(env_dir.join("overrides"));
    }
    for dir in override_dirs {
        files.extend(visible_files(&dir));
        dirs.push(dir);
    }
    if let Ok(envs_dir) = site.envs_dir() {
        dirs.push(envs_dir.to_path_buf());
        let backup = envs_dir.join(crate::deploy::BACKUP_DIR_NAME);
        for env in envs {
            files.push(envs_dir.join(format!("{env}.sqsh")));
            files.push(backup.join(format!("{env}.sqsh")));
        }
        dirs.push(backup);
    }
    if let Some(image) = &site.config.runtime.image {
        if image.is_dir() {
            dirs.push(image.clone());
            let env_scripts = image.join(base::ENV_DIR.trim_start_matches('/'));
            dirs.push(env_scripts.parent().map_or_else(PathBuf::new, Path::to_path_buf));
            dirs.push(env_scripts.clone());
            files.extend(visible_files(&env_scripts));
        } else {
            files.push(image.clone());
        }
    }
    // The native runtime with no runtime.path is the launcher: checked above.
    let native_is_launcher =
        site.config.runtime.flavour == FlavourSetting::Native && site.config.runtime.path.is_none();
    if let Some(rt) = runtime::find(&site.config).ok().filter(|_| !native_is_launcher) {
        dirs.extend(rt.path.parent().map(Path::to_path_buf));
        if let Some(real_dir) = std::fs::canonicalize(&rt.path)
            .ok()
            .and_then(|p| p.parent().map(Path::to_path_buf))
        {
            dirs.push(real_dir);
        }
        files.push(rt.path);
    }
    if let Some(modules) = modulefile::dir(site, modules) {
        files.push(modules.join(crate::modulefile::MODULERC));
        files.extend(envs.iter().map(|e| modules.join(e)));
        dirs.push(modules);
    }
    let dirs: Vec<PathBuf> = dirs.into_iter().filter(|d| d.is_dir()).collect();
    let mut checker = Checker::new(&site.scripts, &dirs);
    for dir in &dirs {
        checker.check(dir, Kind::OwnDir);
    }
    for file in &files {
        checker.check(file, Kind::File);
    }
    report.problems.extend(checker.problems);
}

/// Every user must be able to run what is installed: execute the launcher,
/// read the config, each `env.toml` and image, and search every directory
/// on the way to them.
fn check_access(site: &Site, envs: &[String], report: &mut Report) {
    const READ: (u32, &str, &str) = (0o004, "readable", "o+r");
    const EXEC: (u32, &str, &str) = (0o001, "executable", "o+x");
    const SEARCH: (u32, &str, &str) = (0o001, "searchable", "o+x");
    let mut needs = vec![
        (site.launcher_path(), EXEC),
        (site.config_path(), READ),
        (site.scripts.clone(), SEARCH),
    ];
    if let Ok(dir) = site.envs_dir() {
        needs.push((dir.to_path_buf(), SEARCH));
    }
    for env in envs {
        let env_dir = site.env_dir(env);
        if let Ok(real) = std::fs::canonicalize(&env_dir) {
            if let Ok(scripts) = std::fs::canonicalize(&site.scripts) {
                // The versioned layout: `.versions` and `.versions/<env>.ID`.
                let mut dir = real.parent();
                while let Some(d) = dir.filter(|d| d.starts_with(&scripts) && *d != scripts) {
                    needs.push((d.to_path_buf(), SEARCH));
                    dir = d.parent();
                }
            }
        }
        needs.push((env_dir.clone(), SEARCH));
        needs.push((env_dir.join("bin"), SEARCH));
        needs.push((env_dir.join(ENV_FILE_NAME), READ));
        if let Ok(image) = site.image_path(env) {
            needs.push((image, READ));
        }
    }
    let mut seen = BTreeSet::new();
    for (path, (bit, what, chmod)) in needs {
        let Ok(meta) = std::fs::metadata(&path) else { continue };
        if !seen.insert(std::fs::canonicalize(&path).unwrap_or_else(|_| path.clone())) {
            continue;
        }
        let mode = meta.permissions().mode() & 0o7777;
        if mode & bit == 0 {
            report.problem(format!(
                "{} is not {what} by other users (mode {mode:04o}), so they cannot use this installation: chmod {chmod} {}",
                path.display(),
                path.display()
            ));
        }
    }
}

fn visible_files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .collect()
}

/// Binds every Singularity/Apptainer installation makes by default.
const DEFAULT_BINDS: [&str; 2] = ["/tmp", "/var/tmp"];

/// L6: the scripts tree must be visible inside the container at the same
/// path. Warn when no configured bind (nor a default one) covers it.
fn check_visibility(site: &Site, report: &mut Report) {
    let scripts = std::fs::canonicalize(&site.scripts).unwrap_or_else(|_| site.scripts.clone());
    let home = std::env::var_os("HOME").map(PathBuf::from);
    let covered = site
        .config
        .container
        .binds
        .iter()
        .cloned()
        .chain(DEFAULT_BINDS.iter().map(PathBuf::from))
        .chain(home)
        .any(|bind| is_under(&scripts, &bind));
    if !covered {
        report.warning(format!(
            "scripts tree {} is not under any container.binds entry (nor /tmp, /var/tmp, $HOME): \
             unless the site's runtime config binds it, links run inside the container will not be found (L6)",
            scripts.display()
        ));
    }
}

fn is_under(path: &Path, dir: &Path) -> bool {
    let dir = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    dir.components().all(|c| c != Component::ParentDir) && path.starts_with(&dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn under() {
        assert!(!is_under(Path::new("/g/data/x/scripts"), Path::new("/g/other")));
        assert!(is_under(Path::new("/usr/share/x"), Path::new("/usr")));
        assert!(!is_under(Path::new("/usrx/y"), Path::new("/usr")));
    }
}
