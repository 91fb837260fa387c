//! `installer farm` (I1–I4): the scripts tree of each env, built from the
//! listing of `<prefix>/<env>/bin` inside its image.
//!
//! The run is: take the lock; install the launcher and `launcher.toml`;
//! for every env, compute the desired `<env>.d` tree and compare it with the
//! one on disk; swap in a new tree only where they differ; remove old trees
//! after every swap (and a short grace, so that a path lookup that started
//! in an old tree can finish).

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use launcher::config::{is_interpreter_name, ENV_FILE_NAME, INSIDE_DIR_NAME, LEGACY_LAUNCHER_NAMES};

use crate::activation::{self, Activation};
use crate::error::{InstallError, Result};
use crate::image::{EntryKind, EnvImage};
use crate::lock::{self, Need, RunLock};
use crate::site::{check_env_name, Site};
use crate::swap::{self, install_file, Live, Retired, Swapper};
use crate::tree::{Diff, Node, Tree};
use crate::ui::Ui;

/// How long old trees stay after the swap before they are removed.
pub const DEFAULT_GRACE: Duration = Duration::from_millis(50);

#[derive(Debug, Clone)]
pub struct FarmOptions {
    /// Print each change instead of making it.
    pub dry_run: bool,
    /// Wait for the lock (else fail with `LockHeld`).
    pub wait: bool,
    /// The launcher binary to install; default: `launcher` beside the
    /// installer's own executable.
    pub launcher_source: Option<PathBuf>,
    pub grace: Duration,
    /// The modules directory (`--modules`; else `modules_dir` of the
    /// config): locked too, as every run that changes it locks it.
    pub modules: Option<PathBuf>,
}

impl Default for FarmOptions {
    fn default() -> Self {
        FarmOptions {
            dry_run: false,
            wait: true,
            launcher_source: None,
            grace: DEFAULT_GRACE,
            modules: None,
        }
    }
}

/// What happened to one env's tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Already as desired: nothing touched.
    Unchanged,
    /// Created, or replaced because it differed.
    Changed(Diff),
}

/// An image entry that gets no link, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    pub name: OsString,
    pub why: &'static str,
}

/// Why `name` cannot become a link in `<env>.d/bin` (I1), if it cannot.
pub fn link_name_problem(name: &OsStr, launcher_name: &str) -> Option<&'static str> {
    let bytes = name.as_bytes();
    if bytes.is_empty() {
        Some("empty name")
    } else if bytes.contains(&b'/') {
        Some("name contains '/'")
    } else if bytes[0] == b'.' {
        Some("name starts with '.'")
    } else if has_control(name) {
        Some("name contains a control character")
    } else if bytes == launcher_name.as_bytes() || LEGACY_LAUNCHER_NAMES.iter().any(|l| l.as_bytes() == bytes) {
        Some("conflicts with the launcher's own name")
    } else {
        None
    }
}

fn has_control(name: &OsStr) -> bool {
    match name.to_str() {
        Some(text) => text.chars().any(char::is_control),
        None => name.as_bytes().iter().any(|&b| b < 0x20 || b == 0x7f),
    }
}

/// What `<env>.d` must be, with what the image told us on the way.
#[derive(Debug, Clone)]
pub struct Desired {
    pub tree: Tree,
    /// Image bin entries that get no link.
    pub skipped: Vec<Skipped>,
    /// Override files that get no link: the launcher would refuse them (L19).
    pub refused_overrides: Vec<RefusedOverride>,
    /// The activation variables written into `env.toml` (I7).
    pub activation: Activation,
}

/// The tree `<env>.d` must be: links for the image's bin entries (those in
/// `entries`), the configured extra commands and the launcher itself;
/// override links; `env.toml` with the activation variables (I7).
pub fn desired_tree(site: &Site, env: &str, image: &EnvImage) -> Result<Desired> {
    let entries = image.bin_entries(&site.bin_in_image(env), env)?;
    let launcher_name = site.config.launcher_name.as_str();
    let link = Node::link(site.link_target());
    let mut tree = Tree::default();
    let mut skipped = Vec::new();
    tree.insert("bin", Node::dir());
    let from_image: Vec<OsString> = entries
        .into_iter()
        .filter(|entry| entry.kind != EntryKind::Dir)
        .map(|entry| entry.name)
        .collect();
    // `.inside` (issue 11, docs/python.md): `bin/` as the container sees it
    // for a Python launch; the interpreters point straight at the env's.
    let real_bin = site.config.container.prefix.join(env).join("bin");
    let interpreters: Vec<&OsString> = from_image.iter().filter(|n| is_interpreter_name(n)).collect();
    let inside = Path::new(INSIDE_DIR_NAME);
    if !interpreters.is_empty() {
        tree.insert(inside, Node::dir());
        // `<env>.d/lib -> <prefix>/<env>/lib` (dangling on the host, like
        // `<envs>/<env>`): a venv made with the scripts python3 has
        // `home = <env>.d/bin`, and CPython looks for the base's `lib/` next
        // to it without following links (docs/python.md).
        tree.insert("lib", Node::link(site.config.container.prefix.join(env).join("lib")));
    }
    let names = from_image
        .iter()
        .cloned()
        .chain(site.config.extra_commands().map(OsString::from));
    for name in names {
        match link_name_problem(&name, launcher_name) {
            None => {
                tree.insert(Path::new("bin").join(&name), link.clone());
                if !interpreters.is_empty() {
                    let target = if interpreters.contains(&&name) {
                        Node::link(real_bin.join(&name))
                    } else {
                        link.clone()
                    };
                    tree.insert(inside.join(&name), target);
                }
            }
            Some(why) => skipped.push(Skipped { name, why }),
        }
    }
    for name in std::iter::once(launcher_name).chain(LEGACY_LAUNCHER_NAMES.iter().copied()) {
        tree.insert(Path::new("bin").join(name), link.clone());
        if !interpreters.is_empty() {
            tree.insert(inside.join(name), link.clone());
        }
    }
    let (overrides, refused_overrides) = override_links(site, env);
    for (name, target) in overrides {
        tree.insert("overrides", Node::dir());
        tree.insert(Path::new("overrides").join(name), Node::link(target));
    }
    let activation = activation::read(image, &site.config.container.prefix.join(env), env);
    tree.insert(ENV_FILE_NAME, Node::file(env_toml(&activation)));
    Ok(Desired {
        tree,
        skipped,
        refused_overrides,
        activation,
    })
}

/// An override file the farm does not link, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefusedOverride {
    pub path: PathBuf,
    /// The launcher's own refusal (one line) and its hint.
    pub why: String,
}

/// Links for `<env>.d/overrides/`: every visible file of
/// `<scripts>/overrides/`, then of `<scripts>/overrides/<env>/` (which wins
/// for a name in both). Targets are relative to `<env>.d/overrides/`.
///
/// A file the launcher would refuse (L19, `launcher::trust`, as a file
/// looked up in case it exists, the installation's owner being the owner
/// of `<scripts>`) gets no link: writable by others, owned by someone
/// else, in a directory others can write (sticky or not), or behind such a
/// directory or link. Those are returned apart, for a warning.
fn override_links(site: &Site, env: &str) -> (Vec<(OsString, PathBuf)>, Vec<RefusedOverride>) {
    use launcher::trust::{Lookup, Owner, Request};
    use std::os::unix::fs::MetadataExt;
    let owner = std::fs::metadata(&site.scripts).map_or(0, |m| m.uid());
    let mut links = std::collections::BTreeMap::new();
    let mut refused = Vec::new();
    let site_dir = site.overrides_dir();
    for (dir, rel) in [
        (site_dir.clone(), PathBuf::from("../../overrides")),
        (site_dir.join(env), Path::new("../../overrides").join(env)),
    ] {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let is_dir = std::fs::metadata(entry.path()).map(|m| m.is_dir()).unwrap_or(true);
            if is_dir || link_name_problem(&name, "").is_some() {
                continue;
            }
            let path = entry.path();
            let request = Request {
                path: &path,
                what: "override script",
                lookup: Lookup::Optional,
                known: None,
                owner: Owner::Uid(owner),
            };
            if let Err(e) = launcher::trust::check(&launcher::probe::OsProbe, &request) {
                let hint = e
                    .hint()
                    .map(|h| format!("; {}", h.trim_start_matches("hint: ")))
                    .unwrap_or_default();
                refused.push(RefusedOverride {
                    path,
                    why: format!("{e}{hint}"),
                });
                continue;
            }
            links.insert(name.clone(), rel.join(&name));
        }
    }
    (links.into_iter().collect(), refused)
}

/// `<env>.d/env.toml` (I7, schema `launcher::config::EnvFacts`).
pub fn env_toml(activation: &Activation) -> Vec<u8> {
    let mut text =
        String::from("# Written by the installer from the image's activation; rebuilt on every farm, do not edit.\n");
    if !activation.not_captured.is_empty() {
        text.push_str("# Activation scripts that compute their values: their variables are not set below.\n");
        let names: Vec<String> = activation.not_captured.iter().map(|n| toml_string(&n.script)).collect();
        text.push_str(&format!("not_captured = [{}]\n", names.join(", ")));
    }
    text.push_str("[env]\n");
    for (name, value) in &activation.env {
        text.push_str(&format!("{name} = {}\n", toml_string(value)));
    }
    text.into_bytes()
}

/// A TOML basic string.
fn toml_string(value: &str) -> String {
    let mut out = String::from("\"");
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Show a name from an image safely on one line.
pub fn shown(name: &OsStr) -> String {
    format!("{:?}", name.to_string_lossy())
}

/// Build or refresh the farms of `envs`; `None`: of every env with an
/// image in `envs_dir`.
pub fn run(site: &Site, envs: Option<&[String]>, opts: &FarmOptions, ui: &Ui) -> Result<Vec<(String, Outcome)>> {
    build(site, envs, opts, ui, None)
}

/// `run`, for a caller that already holds the locks (`deploy`,
/// `rollback`): a second `flock` of the same file would wait for ever.
pub fn run_locked(
    site: &Site,
    envs: &[String],
    opts: &FarmOptions,
    ui: &Ui,
    held: &RunLock,
) -> Result<Vec<(String, Outcome)>> {
    build(site, Some(envs), opts, ui, Some(held))
}

fn build(
    site: &Site,
    envs: Option<&[String]>,
    opts: &FarmOptions,
    ui: &Ui,
    held: Option<&RunLock>,
) -> Result<Vec<(String, Outcome)>> {
    for env in envs.unwrap_or_default() {
        check_env_name(env)?;
    }
    let launcher_bytes = launcher_binary(site, opts)?;
    if opts.dry_run {
        let plans = plan(site, envs, ui)?;
        return dry_run(site, &plans, launcher_bytes.as_deref(), ui);
    }
    // Before anything else: relative config paths may lead through it.
    ensure_scripts_dir(&site.scripts)?;
    // The lock before the images: a run that waited for a deploy must see
    // the image that deploy put live. `<envs>`, its backup directory and
    // the modules directory too, where other scripts trees may work.
    let _lock = match held {
        Some(_) => None,
        None => Some(lock_for_farm(site, opts)?),
    };
    // What a run killed part-way left: only this run can be writing here.
    for path in swap::leftovers(&site.scripts) {
        swap::remove_any(&path).map_err(|e| InstallError::io(&path, e))?;
        ui.info(format!("removed {}, left by an interrupted run", path.display()));
    }
    // And in the shared directories it could lock (a `deploy` calling this
    // has cleaned them already).
    if let Some(lock) = &_lock {
        let dirs = crate::leftovers::shared_dirs(site, None, opts.modules.as_deref());
        crate::leftovers::clean(&dirs, lock, ui)?;
    }
    let plans = plan(site, envs, ui)?;

    if let Some(bytes) = &launcher_bytes {
        if install_file(&site.launcher_path(), bytes, 0o755)? {
            ui.info(format!("installed {}", site.launcher_path().display()));
        }
    }
    if site.config_source != site.config_path() && install_file(&site.config_path(), &site.config_bytes, 0o644)? {
        ui.info(format!("installed {}", site.config_path().display()));
    }

    // Built at the first change: its probe of RENAME_EXCHANGE changes
    // `<scripts>` (two scratch directories), which an unchanged run must not.
    let mut swapper = None;
    let mut retired = Retired::default();
    let mut outcomes = Vec::new();
    let progress = ui.progress(plans.len() as u64, "building farms");
    for (env, tree) in plans {
        let (live, diff) = compare(site, &env, &tree)?;
        let outcome = if diff.is_empty() {
            ui.info(format!("{env}: unchanged ({} links)", count_links(&tree)));
            Outcome::Unchanged
        } else {
            let warn = |msg: &str| ui.warn(msg);
            let swapper = swapper.get_or_insert_with(|| Swapper::new(&site.scripts, &site.config.launcher_name));
            retired.extend(swapper.replace(&env, &tree, &live, &warn)?);
            ui.info(format!(
                "{env}: {}",
                describe(&diff, live == Live::Absent, count_links(&tree))
            ));
            Outcome::Changed(diff)
        };
        outcomes.push((env, outcome));
        progress.inc(1);
    }
    progress.finish_and_clear();
    if !retired.is_empty() {
        std::thread::sleep(opts.grace);
        retired.remove()?;
    }
    Ok(outcomes)
}

/// The locks of a farm: `<scripts>`, and, if this run can write them (it
/// only reads images there, and removes what killed runs left),
/// `<envs>`, `<envs>/.backup` and the modules directory.
fn lock_for_farm(site: &Site, opts: &FarmOptions) -> Result<RunLock> {
    let mut also = Vec::new();
    if let Ok(envs) = site.envs_dir() {
        also.push((envs.join(crate::deploy::BACKUP_DIR_NAME), Need::IfWritable));
    }
    if let Some(dir) = crate::modulefile::dir(site, opts.modules.as_deref()) {
        also.push((dir, Need::IfWritable));
    }
    lock::acquire_site(site, Need::IfWritable, &also, opts.wait)
}

/// The desired tree of each of `envs` (`None`: every env with an image),
/// read from the images. Every image is read first: a bad one stops the
/// run before anything changes.
fn plan(site: &Site, envs: Option<&[String]>, ui: &Ui) -> Result<Vec<(String, Tree)>> {
    let all;
    let envs = match envs {
        Some(envs) => envs,
        None => {
            all = site.envs_with_images()?;
            if all.is_empty() {
                ui.warn(format!("no images (*.sqsh) in {}", site.envs_dir()?.display()));
            }
            &all
        }
    };
    let progress = ui.progress(envs.len() as u64, "reading images");
    let mut plans = Vec::new();
    for env in envs {
        refuse_alias(site, env)?;
        let image = EnvImage::open(&site.image_path(env)?)?;
        let desired = desired_tree(site, env, &image)?;
        for s in &desired.skipped {
            ui.warn(format!(
                "{}: skipping bin entry {}: {}",
                image.path().display(),
                shown(&s.name),
                s.why
            ));
        }
        for r in &desired.refused_overrides {
            ui.warn(format!(
                "{}: not linked into {env}.d/overrides (L19): {}",
                r.path.display(),
                r.why
            ));
        }
        for n in &desired.activation.not_captured {
            ui.warn(format!(
                "{}: activation script {} not captured ({}); its variables are not in {env}.d/{ENV_FILE_NAME}",
                image.path().display(),
                n.script,
                n.reason
            ));
        }
        plans.push((env.clone(), desired.tree));
        progress.inc(1);
    }
    progress.finish_and_clear();
    Ok(plans)
}

/// An alias (`<env>.d` -> another env's tree) is moved by `alias`, never
/// rebuilt in place.
fn refuse_alias(site: &Site, env: &str) -> Result<()> {
    match swap::inspect(&site.scripts, env) {
        Ok(Live::Alias(target)) => Err(InstallError::Usage(format!(
            "{} is an alias (-> {}); build the farm of the env it points at",
            site.env_dir(env).display(),
            target.display()
        ))),
        _ => Ok(()),
    }
}

/// The live state of `<env>.d` and how it differs from `tree`.
pub fn compare(site: &Site, env: &str, tree: &Tree) -> Result<(Live, Diff)> {
    let live = swap::inspect(&site.scripts, env).map_err(|e| InstallError::io(&site.env_dir(env), e))?;
    let existing = match live {
        Live::Dir | Live::Versioned(_) => Tree::read(&site.env_dir(env))
            .map_err(|e| InstallError::io(&site.env_dir(env), e))?
            .unwrap_or_default(),
        _ => Tree::default(),
    };
    Ok((live, tree.diff(&existing)))
}

fn count_links(tree: &Tree) -> usize {
    tree.entries
        .iter()
        .filter(|(path, node)| path.starts_with("bin") && matches!(node, Node::Link { .. }))
        .count()
}

fn describe(diff: &Diff, created: bool, links: usize) -> String {
    if created {
        format!("built ({links} links)")
    } else {
        format!(
            "updated: {} added, {} removed, {} changed ({links} links)",
            diff.missing.len(),
            diff.extra.len(),
            diff.changed.len()
        )
    }
}

/// Fail now, before anything changes, when `farm` would find no launcher
/// binary to install or keep (`deploy` checks this before swapping images).
pub fn check_launcher_source(site: &Site, launcher: Option<&Path>) -> Result<()> {
    let opts = FarmOptions {
        launcher_source: launcher.map(Path::to_path_buf),
        ..FarmOptions::default()
    };
    launcher_binary(site, &opts).map(|_| ())
}

/// The launcher binary's bytes, or `None` to keep the installed one.
fn launcher_binary(site: &Site, opts: &FarmOptions) -> Result<Option<Vec<u8>>> {
    let source = match &opts.launcher_source {
        Some(path) => path.clone(),
        None => {
            let beside = default_launcher_source();
            match beside {
                Some(path) if path.is_file() => path,
                _ if site.launcher_path().is_file() => return Ok(None),
                _ => {
                    return Err(InstallError::Io {
                        path: beside.unwrap_or_else(|| PathBuf::from("launcher")),
                        reason: "launcher binary not found; pass --launcher PATH".into(),
                    })
                }
            }
        }
    };
    std::fs::read(&source)
        .map(Some)
        .map_err(|e| InstallError::io(&source, e))
}

/// `launcher` in the directory of the running installer (how both ship).
pub fn default_launcher_source() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    Some(exe.parent()?.join(launcher::config::DEFAULT_LAUNCHER_NAME))
}

/// Create `<scripts>` if needed, and fail early and clearly when it cannot
/// be written to.
pub fn ensure_scripts_dir(scripts: &Path) -> Result<()> {
    let not_writable = |reason: String| InstallError::NotWritable {
        path: scripts.to_path_buf(),
        reason,
    };
    swap::create_dirs(scripts).map_err(|e| not_writable(crate::error::io_reason(&e)))?;
    nix::unistd::access(scripts, nix::unistd::AccessFlags::W_OK | nix::unistd::AccessFlags::X_OK)
        .map_err(|e| not_writable(e.desc().to_string()))
}

fn dry_run(site: &Site, plans: &[(String, Tree)], launcher: Option<&[u8]>, ui: &Ui) -> Result<Vec<(String, Outcome)>> {
    let differs = |path: &Path, bytes: &[u8]| std::fs::read(path).map_or(true, |old| old != bytes);
    if launcher.is_some_and(|bytes| differs(&site.launcher_path(), bytes)) {
        ui.info(format!("would install {}", site.launcher_path().display()));
    }
    if site.config_source != site.config_path() && differs(&site.config_path(), &site.config_bytes) {
        ui.info(format!("would install {}", site.config_path().display()));
    }
    let mut outcomes = Vec::new();
    for (env, tree) in plans {
        let (live, diff) = compare(site, env, tree)?;
        let env_dir = site.env_dir(env);
        let name = env_dir.file_name().map(PathBuf::from).unwrap_or_default();
        for path in &diff.missing {
            ui.info(format!(
                "would add    {}{}",
                name.join(path).display(),
                target_suffix(tree.get(path))
            ));
        }
        for path in &diff.extra {
            ui.info(format!("would remove {}", name.join(path).display()));
        }
        for path in &diff.changed {
            ui.info(format!(
                "would change {}{}",
                name.join(path).display(),
                target_suffix(tree.get(path))
            ));
        }
        let outcome = if diff.is_empty() {
            ui.info(format!("{env}: unchanged ({} links)", count_links(tree)));
            Outcome::Unchanged
        } else {
            ui.info(format!(
                "{env}: would be {}",
                describe(&diff, live == Live::Absent, count_links(tree))
            ));
            Outcome::Changed(diff)
        };
        outcomes.push((env.clone(), outcome));
    }
    Ok(outcomes)
}

fn target_suffix(node: Option<&Node>) -> String {
    match node {
        Some(Node::Link { target }) => format!(" -> {}", target.display()),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn i1_bad_names_are_named_with_a_reason() {
        let bad = [
            ("", "empty name"),
            ("a/b", "name contains '/'"),
            (".hidden", "name starts with '.'"),
            ("..", "name starts with '.'"),
            ("tab\there", "name contains a control character"),
            ("del\u{7f}", "name contains a control character"),
            ("c1\u{85}", "name contains a control character"),
            ("launcher", "conflicts with the launcher's own name"),
        ];
        for (name, why) in bad {
            assert_eq!(link_name_problem(OsStr::new(name), "launcher"), Some(why), "{name:?}");
        }
        for good in ["python3", "with space", "ünïcødé", "x-1.2_3", "[", "launcher2"] {
            assert_eq!(link_name_problem(OsStr::new(good), "launcher"), None, "{good:?}");
        }
        let non_utf8 = OsStr::from_bytes(b"caf\xe9");
        assert_eq!(link_name_problem(non_utf8, "launcher"), None);
        assert!(link_name_problem(OsStr::from_bytes(b"\xe9\x01"), "launcher").is_some());
    }

    #[test]
    fn toml_strings_round_trip() {
        let text = format!("[env]\nA = {}\n", toml_string("q\"uo\\te\nnl"));
        let facts = launcher::config::EnvFacts::parse(text.as_bytes(), Path::new("/e.toml")).unwrap();
        assert_eq!(facts.env["A"], "q\"uo\\te\nnl");
    }
}
