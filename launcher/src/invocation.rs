//! Who am I? The path this process was started through (L1) and the
//! environment and command it names (L2).
//!
//! `/proc/self/exe` and `current_exe()` are never used here: they resolve
//! the symlink and lose the command name, which is the whole point of a
//! multicall binary.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use crate::probe::Probe;
use crate::vars::Vars;

/// Longest symlink chain followed (the kernel's own limit is 40).
const MAX_LINK_HOPS: usize = 40;
/// Longest chain of directory aliases (`analysis3.d -> analysis3-22.10.d`).
const MAX_ALIAS_HOPS: usize = 8;

/// How the process was started: the raw facts, before any interpretation.
#[derive(Debug, Clone, Default)]
pub struct Invocation {
    /// `argv`, byte for byte; `argv[0]` may be missing.
    pub argv: Vec<OsString>,
    /// The kernel's `AT_EXECFN`: the path given to `execve` (for a `#!`
    /// script, the script).
    pub at_execfn: Option<OsString>,
    /// The working directory, used only to make a relative path absolute.
    pub cwd: Option<PathBuf>,
}

/// L1: the path this process was started through.
///
/// `argv[0]` when it holds a `/`; else `AT_EXECFN` when its basename is
/// `argv[0]` (a `PATH` lookup by a shell or `env`); else `argv[0]` searched on
/// `PATH` (`exec -a name`); else `AT_EXECFN` as the last resort.
pub fn invoked_path(inv: &Invocation, vars: &Vars, probe: &dyn Probe) -> Option<PathBuf> {
    let argv0 = inv.argv.first().filter(|a| !a.is_empty());
    let execfn = inv.at_execfn.as_deref().filter(|a| !a.is_empty());
    let chosen: PathBuf = match (argv0, execfn) {
        (Some(a0), _) if a0.as_bytes().contains(&b'/') => PathBuf::from(a0),
        (Some(a0), Some(ef)) if Path::new(ef).file_name() == Some(a0.as_os_str()) => PathBuf::from(ef),
        // `exec -a NAME`: a NAME found on PATH counts only if it is the very
        // file the kernel ran (`ls` or `python` elsewhere on PATH are not).
        (Some(a0), ef) => {
            let ran = ef.and_then(|ef| probe.stat(Path::new(ef)).ok());
            let same_as_ran = |found: &crate::probe::FileStat| ran.is_none_or(|ran| ran.same_file(found));
            match search_path(a0, vars.get("PATH"), probe, same_as_ran) {
                Some(found) => found,
                None => PathBuf::from(ef?),
            }
        }
        (None, Some(ef)) => PathBuf::from(ef),
        (None, None) => return None,
    };
    Some(absolute(chosen, inv.cwd.as_deref()))
}

fn absolute(path: PathBuf, cwd: Option<&Path>) -> PathBuf {
    match cwd {
        Some(cwd) if path.is_relative() => cwd.join(path),
        _ => path,
    }
}

/// First `dir/name` on the colon list `path_var` that is an executable file
/// and that `accept` takes. Empty entries mean the current directory, as in
/// POSIX shells.
pub fn search_path(
    name: &OsStr,
    path_var: Option<&OsStr>,
    probe: &dyn Probe,
    mut accept: impl FnMut(&crate::probe::FileStat) -> bool,
) -> Option<PathBuf> {
    for dir in split_path_list(path_var?) {
        let dir = if dir.is_empty() { OsStr::new(".") } else { dir };
        let candidate = Path::new(dir).join(name);
        if let Ok(stat) = probe.stat(&candidate) {
            if stat.is_executable_file() && accept(&stat) {
                return Some(candidate);
            }
        }
    }
    None
}

/// Split a colon-separated list, keeping empty entries (callers decide).
pub fn split_path_list(list: &OsStr) -> impl Iterator<Item = &OsStr> {
    list.as_bytes().split(|&b| b == b':').map(OsStr::from_bytes)
}

/// What following the symlink chain of the invoked path told us (L2).
#[derive(Debug, Clone, PartialEq)]
pub struct Resolved {
    /// The path we were invoked through (absolute).
    pub invoked: PathBuf,
    /// Where the chain ends: the launcher binary itself (not canonical; the
    /// kernel resolves `..` through the links).
    pub launcher: PathBuf,
    /// The last hop that lives in an `X.d/bin` directory, if any.
    pub env_link: Option<EnvLink>,
}

/// A link `<scripts>/<X>.d/bin/<command>` found on the chain.
#[derive(Debug, Clone, PartialEq)]
pub struct EnvLink {
    /// The hop itself, e.g. `/apps/scripts/analysis3.d/bin/python3`.
    pub path: PathBuf,
    /// Its directory as spelled on the chain, e.g. `/apps/scripts/analysis3.d/bin`.
    pub bin_dir: PathBuf,
    /// The scripts directory, e.g. `/apps/scripts`.
    pub scripts_dir: PathBuf,
    /// The alias spelling seen on the chain, e.g. `analysis3`.
    pub alias: String,
    /// The environment after resolving directory aliases, e.g. `analysis3-22.10`.
    pub env: String,
    /// The command: the hop's file name, e.g. `python3`.
    pub command: OsString,
    /// The alias links of `X.d` are all plain sibling names, so the real env
    /// dir is `<scripts>/<env>.d` (see `resolve`).
    pub sibling_aliases: bool,
}

impl EnvLink {
    /// `<scripts>/<env>.d`: the canonical per-env directory.
    pub fn env_dir(&self) -> PathBuf {
        self.scripts_dir.join(format!("{}.d", self.env))
    }
}

/// L2: follow the symlink chain from `invoked`; the last hop in an `X.d/bin`
/// directory names the environment (aliases of `X.d` resolved) and command.
pub fn resolve(invoked: PathBuf, probe: &dyn Probe) -> Resolved {
    let mut current = invoked.clone();
    let mut env_link = None;
    for _ in 0..MAX_LINK_HOPS {
        let hop_link = env_link_of(&current, probe);
        let Ok(target) = probe.read_link(&current) else {
            env_link = hop_link.or(env_link);
            break;
        };
        current = match &hop_link {
            // `../../launcher` from an env link whose aliases are siblings
            // (`X.d -> Y.d`, the installer's layout): the real env dir is
            // `<scripts>/Y.d`, so the path can be written without `..`.
            Some(link) if target.is_relative() && link.sibling_aliases => {
                normalize(&link.env_dir().join("bin").join(&target))
            }
            // Anything else (e.g. `X.d -> .versions/X.123/X.d`): leave `..`
            // for the kernel, which resolves it through the links at use time.
            _ => follow(&current, target),
        };
        env_link = hop_link.or(env_link);
    }
    // Through a non-sibling alias the path still holds `..` hops through
    // the alias target (correct, but long and tied to that target). The
    // launcher normally sits in the scripts dir: say so when it is the same
    // file (two stats, only in that layout).
    if let Some(link) = env_link.as_ref().filter(|l| !l.sibling_aliases) {
        if let Some(name) = current.file_name() {
            let plain = link.scripts_dir.join(name);
            if let (Ok(a), Ok(b)) = (probe.stat(&plain), probe.stat(&current)) {
                if a.same_file(&b) {
                    current = plain;
                }
            }
        }
    }
    Resolved {
        invoked,
        launcher: current,
        env_link,
    }
}

/// L2, the fallback when no hop of the chain is named `<X>.d/bin/<command>`:
/// the directory of the invoked path may be reached through links under
/// other names (`~/a3 -> <scripts>/analysis3.d`, `~/a3bin -> …/bin`). Resolve
/// that directory's links component by component and try again from there.
/// Costs a `readlink` per component, so it is only used when the chain did
/// not name an env. `invoked` keeps its spelling (it is argv[0], L6).
pub fn resolve_through_linked_dirs(invoked: &Path, probe: &dyn Probe) -> Option<Resolved> {
    let name = normal_name(invoked)?;
    let dir = invoked.parent()?;
    let real_dir = physical_path(dir, probe)?;
    if real_dir == dir {
        return None;
    }
    let again = resolve(real_dir.join(name), probe);
    again.env_link.as_ref()?;
    Some(Resolved {
        invoked: invoked.to_path_buf(),
        ..again
    })
}

/// `path` (absolute) with every symlink on it resolved, as the kernel would;
/// `None` past the kernel's 40 links or for a relative path.
fn physical_path(path: &Path, probe: &dyn Probe) -> Option<PathBuf> {
    if !path.is_absolute() {
        return None;
    }
    let mut pending: Vec<OsString> = path
        .components()
        .rev()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_os_string()),
            Component::ParentDir => Some(OsString::from("..")),
            _ => None,
        })
        .collect();
    let mut resolved = PathBuf::from("/");
    let mut links = 0;
    while let Some(component) = pending.pop() {
        if component == ".." {
            resolved.pop();
            continue;
        }
        let candidate = resolved.join(&component);
        match probe.read_link(&candidate) {
            Ok(target) => {
                links += 1;
                if links > 40 {
                    return None;
                }
                if target.is_absolute() {
                    resolved = PathBuf::from("/");
                }
                pending.extend(target.components().rev().filter_map(|c| match c {
                    Component::Normal(n) => Some(n.to_os_string()),
                    Component::ParentDir => Some(OsString::from("..")),
                    _ => None,
                }));
            }
            Err(_) => resolved = candidate,
        }
    }
    Some(resolved)
}

/// Where the symlink `link`, whose content is `target`, points: a relative
/// target is joined to the link's directory as text (`..` is left for the
/// kernel, which resolves it through any links on the way).
pub fn follow(link: &Path, target: PathBuf) -> PathBuf {
    match link.parent() {
        Some(dir) if target.is_relative() => dir.join(target),
        _ => target,
    }
}

/// Remove `.` and `..` components lexically. Only used below a real env dir
/// reached through sibling aliases, whose `bin` is a plain directory (the
/// installer never makes it a link): there it is exact.
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    out.push("..");
                }
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

/// If `hop` is `<scripts>/<X>.d/bin/<command>`, describe it.
fn env_link_of(hop: &Path, probe: &dyn Probe) -> Option<EnvLink> {
    let command = normal_name(hop)?;
    let bin_dir = hop.parent()?;
    if normal_name(bin_dir)? != "bin" {
        return None;
    }
    let env_dir = bin_dir.parent()?;
    let alias = normal_name(env_dir)?.to_str()?.strip_suffix(".d")?.to_string();
    let real = resolve_env_dir(env_dir, probe);
    let env = env_name(&real.path)?;
    // As spelled on the chain: a versioned layout's `.versions/X.123` must
    // never become "the scripts dir" (it is deleted by the next deploy).
    let scripts_dir = env_dir.parent()?.to_path_buf();
    Some(EnvLink {
        path: hop.to_path_buf(),
        bin_dir: bin_dir.to_path_buf(),
        scripts_dir,
        alias,
        env,
        command: command.to_os_string(),
        sibling_aliases: real.sibling_aliases,
    })
}

/// The last component when it is a normal name (not `..` or `.`).
fn normal_name(path: &Path) -> Option<&OsStr> {
    match path.components().next_back()? {
        Component::Normal(name) => Some(name),
        _ => None,
    }
}

/// Where an env directory's alias links end.
struct RealEnvDir {
    path: PathBuf,
    /// Every hop was a plain sibling name (`X.d -> Y.d`), so `path` is
    /// exactly `<same dir>/Y.d`.
    sibling_aliases: bool,
}

/// Follow `X.d -> Y.d -> …` links of an env directory to the real one.
/// Relative targets are joined, not collapsed: `..` is the kernel's to
/// resolve (the directory may be reached through other links).
fn resolve_env_dir(env_dir: &Path, probe: &dyn Probe) -> RealEnvDir {
    let mut current = env_dir.to_path_buf();
    let mut sibling_aliases = true;
    for _ in 0..MAX_ALIAS_HOPS {
        let Ok(target) = probe.read_link(&current) else { break };
        let plain =
            target.components().count() == 1 && matches!(target.components().next(), Some(Component::Normal(_)));
        sibling_aliases &= plain;
        current = follow(&current, target);
    }
    RealEnvDir {
        path: current,
        sibling_aliases,
    }
}

/// `analysis3-22.10` from `…/analysis3-22.10.d`.
fn env_name(env_dir: &Path) -> Option<String> {
    let name = normal_name(env_dir)?.to_str()?;
    let env = name.strip_suffix(".d").unwrap_or(name);
    (!env.is_empty()).then(|| env.to_string())
}

/// The env an env directory (`<scripts>/<X>.d`, maybe an alias) stands for.
pub fn resolve_env_alias(env_dir: &Path, probe: &dyn Probe) -> Option<String> {
    env_name(&resolve_env_dir(env_dir, probe).path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::OsProbe;
    use std::os::unix::fs::symlink;

    /// A scripts tree: scripts/launcher, scripts/e-1.d/bin/{python3,launcher},
    /// scripts/e.d -> e-1.d.
    fn tree() -> tempfile::TempDir {
        let t = tempfile::tempdir().unwrap();
        let s = t.path().join("scripts");
        std::fs::create_dir_all(s.join("e-1.d/bin")).unwrap();
        std::fs::write(s.join("launcher"), b"#!/bin/true\n").unwrap();
        let exe = <std::fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(0o755);
        std::fs::set_permissions(s.join("launcher"), exe).unwrap();
        symlink("../../launcher", s.join("e-1.d/bin/python3")).unwrap();
        symlink("../../launcher", s.join("e-1.d/bin/launcher")).unwrap();
        symlink("e-1.d", s.join("e.d")).unwrap();
        t
    }

    fn inv(argv0: &str, execfn: Option<&str>) -> Invocation {
        Invocation {
            argv: vec![argv0.into(), "arg".into()],
            at_execfn: execfn.map(Into::into),
            cwd: Some(PathBuf::from("/work")),
        }
    }

    #[test]
    fn l1_argv0_with_slash_wins() {
        let p = invoked_path(&inv("/a/b/python3", Some("/x/y")), &Vars::default(), &OsProbe);
        assert_eq!(p.unwrap(), PathBuf::from("/a/b/python3"));
    }

    #[test]
    fn l1_relative_argv0_made_absolute() {
        let p = invoked_path(&inv("./bin/python3", None), &Vars::default(), &OsProbe);
        assert_eq!(p.unwrap(), PathBuf::from("/work/./bin/python3"));
    }

    #[test]
    fn l1_path_lookup_uses_at_execfn_when_basename_matches() {
        let p = invoked_path(&inv("python3", Some("/s/e.d/bin/python3")), &Vars::default(), &OsProbe);
        assert_eq!(p.unwrap(), PathBuf::from("/s/e.d/bin/python3"));
    }

    #[test]
    fn l1_shebang_argv0_is_interpreter_not_script() {
        // #!/s/e.d/bin/python3 in /home/u/job.py: argv[0] is the interpreter.
        let p = invoked_path(
            &inv("/s/e.d/bin/python3", Some("/home/u/job.py")),
            &Vars::default(),
            &OsProbe,
        );
        assert_eq!(p.unwrap(), PathBuf::from("/s/e.d/bin/python3"));
    }

    #[test]
    fn l1_exec_a_searches_path_for_argv0() {
        let t = tree();
        let bin = t.path().join("scripts/e-1.d/bin");
        let vars = Vars::from_pairs([("PATH", format!("/nonexistent:{}", bin.display()))]);
        let p = invoked_path(&inv("python3", Some("/other/name")), &vars, &OsProbe);
        assert_eq!(p.unwrap(), bin.join("python3"));
    }

    #[test]
    fn l1_exec_a_name_of_another_program_on_path_is_not_taken() {
        let t = tree();
        let bin = t.path().join("scripts/e-1.d/bin");
        // `ls` on PATH is not the file the kernel ran.
        let vars = Vars::from_pairs([("PATH", "/usr/bin:/bin")]);
        let execfn = bin.join("python3").display().to_string();
        let p = invoked_path(&inv("ls", Some(&execfn)), &vars, &OsProbe);
        assert_eq!(p.unwrap(), bin.join("python3"));
    }

    #[test]
    fn l1_exec_a_unknown_name_falls_back_to_at_execfn() {
        let vars = Vars::from_pairs([("PATH", "/nonexistent")]);
        let p = invoked_path(&inv("othername", Some("/s/e.d/bin/python3")), &vars, &OsProbe);
        assert_eq!(p.unwrap(), PathBuf::from("/s/e.d/bin/python3"));
    }

    #[test]
    fn l2_link_names_env_and_command() {
        let t = tree();
        let s = t.path().join("scripts");
        let r = resolve(s.join("e-1.d/bin/python3"), &OsProbe);
        let link = r.env_link.unwrap();
        assert_eq!(link.env, "e-1");
        assert_eq!(link.command, "python3");
        assert_eq!(link.scripts_dir, s);
        assert_eq!(r.launcher, s.join("launcher"));
    }

    #[test]
    fn l2_alias_directory_resolves_to_real_env() {
        let t = tree();
        let s = t.path().join("scripts");
        let r = resolve(s.join("e.d/bin/python3"), &OsProbe);
        assert_eq!(r.launcher, s.join("launcher"));
        let link = r.env_link.unwrap();
        assert_eq!(link.env, "e-1");
        assert_eq!(link.scripts_dir, s);
        assert_eq!(link.alias, "e");
        assert_eq!(link.bin_dir, s.join("e.d/bin"));
    }

    #[test]
    fn l2_venv_chain_takes_last_env_hop() {
        let t = tree();
        let s = t.path().join("scripts");
        let venv = t.path().join("venv/bin");
        std::fs::create_dir_all(&venv).unwrap();
        symlink(s.join("e.d/bin/python3"), venv.join("python")).unwrap();
        let r = resolve(venv.join("python"), &OsProbe);
        let link = r.env_link.unwrap();
        assert_eq!((link.env.as_str(), link.command.to_str().unwrap()), ("e-1", "python3"));
    }

    #[test]
    fn l2_top_level_launcher_has_no_env() {
        let t = tree();
        let r = resolve(t.path().join("scripts/launcher"), &OsProbe);
        assert!(r.env_link.is_none());
    }
}
