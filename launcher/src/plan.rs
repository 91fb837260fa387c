//! The heart of the launcher: a pure decision of what to exec.
//!
//! `plan` takes how we were invoked, the environment variables and a
//! file-system `Probe`, and returns a `Plan`. It never execs, forks or
//! writes; `exec::perform` is the one place that acts on a plan. That split
//! makes every rule testable without exec and gives `--dry-run` for free.

use std::collections::HashSet;
use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

use crate::config::{
    Builtin, CommandConfig, Config, EnvFacts, FlavourSetting, OverlaySet, CONFIG_FILE_NAME, ENV_FILE_NAME,
};
use crate::container_env::{prepend_path, PathRequest};
use crate::error::LaunchError;
use crate::flags::{parse_direct, DirectCall, USAGE};
use crate::handover::{decode_args, encode_args, escape_for_eval, ARGV_VAR, MOUNTED_ENV_VAR, OVERLAYS_VAR};
use crate::invocation::{invoked_path, resolve, resolve_env_alias, search_path, EnvLink, Invocation};
use crate::mounts::{bind_list, overlays, own_image, OverlayRequest};
use crate::pbs;
use crate::probe::{FileStat, Probe};
use crate::quote::{assignment, quote};
use crate::runtime::{find_runtime, flavour, Flavour};
use crate::vars::Vars;

/// Re-entries of the runtime tolerated before L21 stops the chain.
pub const MAX_DEPTH: u32 = 3;
/// Set inside the container to the runtime the outside hop used, so that
/// `pbs_tmrsh` there can tell the remote node which runtime to run (L16).
pub const RUNTIME_VAR: &str = "LAUNCHER_RUNTIME";
/// The L21 counter, passed through the runtime with the prefix (L13).
pub use crate::handover::DEPTH_VAR;
/// Variables the inside hop consumes: never passed on to the program (L21).
const HANDOVER_VARS: [&str; 3] = [DEPTH_VAR, MOUNTED_ENV_VAR, ARGV_VAR];

/// A process image to replace ourselves with.
#[derive(Debug, Clone, PartialEq)]
pub struct ExecPlan {
    /// The file to `execve`.
    pub program: PathBuf,
    /// Full argv, `argv[0]` included.
    pub argv: Vec<OsString>,
    /// Variables set on top of the inherited environment, in this order.
    pub set_env: Vec<(OsString, OsString)>,
    /// Variables removed from the inherited environment.
    pub unset_env: Vec<OsString>,
}

impl ExecPlan {
    fn new(program: PathBuf, argv: Vec<OsString>) -> ExecPlan {
        ExecPlan {
            program,
            argv,
            set_env: Vec::new(),
            unset_env: Vec::new(),
        }
    }

    /// Remove what the outside hop handed over for the inside hop (L21).
    fn drop_handover(&mut self) {
        self.unset_env.extend(HANDOVER_VARS.iter().map(OsString::from));
    }

    /// Set `name`; a later `set` of the same name wins and takes the later
    /// place. Only appends: `settle_env` drops the overwritten entries once,
    /// at the end of planning (a scan per `set` made 40,000
    /// `[container.env]` keys cost 800 million comparisons, issue 10).
    fn set(&mut self, name: impl Into<OsString>, value: impl Into<OsString>) {
        self.set_env.push((name.into(), value.into()));
    }

    /// Keep only the last setting of each name, at its place: what a
    /// remove-then-append per `set` gives, in one pass with a hash set.
    fn settle_env(&mut self) {
        let mut keep: Vec<bool> = {
            let mut seen: HashSet<NameKey<'_>> = HashSet::with_capacity(self.set_env.len());
            self.set_env
                .iter()
                .rev()
                .map(|(n, _)| seen.insert(NameKey(n)))
                .collect()
        };
        keep.reverse();
        let mut keep = keep.into_iter();
        self.set_env.retain(|_| keep.next().unwrap_or(true));
    }

    /// The value this plan gives `name`, if it sets it (the last setting).
    pub fn env_value(&self, name: &str) -> Option<&OsStr> {
        self.set_env
            .iter()
            .rev()
            .find(|(n, _)| NameKey(n) == NameKey(OsStr::new(name)))
            .map(|(_, v)| v.as_os_str())
    }

    /// A line that can be pasted into a shell: changed variables as
    /// assignments, then the command. `argv[0]` is shown through `exec -a`
    /// when it differs from the program path.
    pub fn shell_line(&self) -> String {
        let command: Vec<String> = std::iter::once(quote(self.program.as_os_str()))
            .chain(self.argv.iter().skip(1).map(|a| quote(a)))
            .collect();
        let command = command.join(" ");
        let argv0_differs = self.argv.first().is_some_and(|a| Path::new(a) != self.program);
        if argv0_differs {
            // bash's `exec -a` sets argv[0]; a subshell keeps the changes to
            // the environment out of the caller's shell.
            let mut line = String::from("(");
            for name in &self.unset_env {
                line.push_str(&format!("unset {}; ", quote(name)));
            }
            for (name, value) in &self.set_env {
                line.push_str(&format!("export {}; ", assignment(name, value)));
            }
            line.push_str(&format!("exec -a {} {command})", quote(&self.argv[0])));
            return line;
        }
        let mut words: Vec<String> = Vec::new();
        if !self.unset_env.is_empty() {
            words.push("env".into());
            for name in &self.unset_env {
                words.push(format!("-u {}", quote(name)));
            }
        }
        words.extend(self.set_env.iter().map(|(n, v)| assignment(n, v)));
        words.push(command);
        words.join(" ")
    }
}

/// A variable name as `ExecPlan` compares it. Every comparison of two
/// names in `ExecPlan` goes through this `PartialEq`, which tests count
/// (`NAME_COMPARISONS`) to show that building a plan's environment is
/// linear in the number of variables.
struct NameKey<'a>(&'a OsStr);

impl std::hash::Hash for NameKey<'_> {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.hash(state);
    }
}

impl Eq for NameKey<'_> {}

impl PartialEq for NameKey<'_> {
    fn eq(&self, other: &Self) -> bool {
        #[cfg(test)]
        NAME_COMPARISONS.with(|c| c.set(c.get() + 1));
        self.0 == other.0
    }
}

#[cfg(test)]
thread_local! {
    /// Name comparisons made by `ExecPlan` on this thread (tests only).
    static NAME_COMPARISONS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// What the launcher decided.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Replace the process (the normal case).
    Exec(ExecPlan),
    /// Print text and exit: `--help`, `--version`, usage.
    Show { text: String, stderr: bool, exit: i32 },
}

/// A plan plus how to carry it out.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub action: Action,
    /// `--dry-run` or `LAUNCHER_DRY_RUN=1`: print the command, exit 0.
    pub dry_run: bool,
    /// `LAUNCHER_DEBUG=1`: the decisions made, in order.
    pub notes: Option<Vec<String>>,
}

/// Truthy: set, non-empty and not `0`.
fn truthy(vars: &Vars, name: &str) -> bool {
    vars.get(name).is_some_and(|v| !v.is_empty() && v != "0")
}

/// Decide what to exec (L1–L22).
pub fn plan(inv: &Invocation, vars: &Vars, probe: &dyn Probe) -> Result<Plan, LaunchError> {
    let debug = truthy(vars, "LAUNCHER_DEBUG") || vars.is_set("CMS_CONDA_DEBUG_SCRIPTS");
    let mut planner = Planner {
        vars,
        probe,
        notes: debug.then(Vec::new),
        launcher_stat: None,
        config_path: PathBuf::new(),
    };
    let mut dry_run = truthy(vars, "LAUNCHER_DRY_RUN");
    let mut action = planner.decide(inv, &mut dry_run)?;
    if let Action::Exec(exec) = &mut action {
        exec.settle_env();
    }
    Ok(Plan {
        action,
        dry_run,
        notes: planner.notes,
    })
}

/// How the command was asked for.
enum Mode {
    /// Through a link `<env>.d/bin/<command>` (L2).
    Command { link: EnvLink, args: Vec<OsString> },
    /// The launcher by its own name, command in the arguments (L3).
    Direct { link: Option<EnvLink>, call: DirectCall },
}

/// Everything known about the launch once the mode is settled.
#[derive(Clone)]
struct Launch<'a> {
    config: &'a Config,
    env: String,
    scripts_dir: PathBuf,
    /// The link we came through, when there was one.
    link: Option<EnvLink>,
    /// What the final program (or the runtime, outside) is told to run.
    command: OsString,
    args: Vec<OsString>,
    direct: Option<DirectCall>,
    invoked: PathBuf,
    launcher: PathBuf,
}

impl Launch<'_> {
    fn command_config(&self) -> Option<&CommandConfig> {
        self.command.to_str().and_then(|c| self.config.commands.get(c))
    }

    fn env_dir(&self) -> PathBuf {
        self.scripts_dir.join(format!("{}.d", self.env))
    }

    /// `<scripts>/<env>.d/bin/launcher`: what remote callbacks run.
    fn env_launcher(&self) -> PathBuf {
        self.env_dir().join("bin").join(&self.config.launcher_name)
    }

    fn real_bin(&self) -> PathBuf {
        self.config.container.prefix.join(&self.env).join("bin")
    }

    fn flags(&self) -> Option<&crate::flags::DirectFlags> {
        self.direct.as_ref().map(|d| &d.flags)
    }

    /// `PATH` for lookups: `--path`, else the environment's.
    fn path_var<'v>(&'v self, vars: &'v Vars) -> Option<&'v OsStr> {
        self.flags()
            .and_then(|f| f.path.as_deref())
            .or_else(|| vars.get("PATH"))
    }
}

struct Planner<'a> {
    vars: &'a Vars,
    probe: &'a dyn Probe,
    notes: Option<Vec<String>>,
    launcher_stat: Option<Option<FileStat>>,
    /// Where the config was read from, for messages about its settings.
    config_path: PathBuf,
}

impl Planner<'_> {
    fn note(&mut self, text: impl FnOnce() -> String) {
        if let Some(notes) = &mut self.notes {
            notes.push(text());
        }
    }

    fn decide(&mut self, inv: &Invocation, dry_run: &mut bool) -> Result<Action, LaunchError> {
        let invoked = invoked_path(inv, self.vars, self.probe).ok_or_else(|| LaunchError::NoEnvironment {
            path: PathBuf::from("(no argv[0] and no AT_EXECFN)"),
            why: "the process was started without a name".into(),
        })?;
        let resolved = resolve(invoked, self.probe);
        self.note(|| format!("invoked as {}", resolved.invoked.display()));
        let args: Vec<OsString> = inv.argv.iter().skip(1).cloned().collect();
        let config = match self.load_config(&resolved.launcher) {
            Ok(config) => config,
            Err(error) => {
                // `launcher --help` and `--version` need no config (a site
                // migrating from launcher.sh, a user checking the install).
                let called = resolved
                    .env_link
                    .as_ref()
                    .map(|l| l.command.clone())
                    .or_else(|| resolved.invoked.file_name().map(OsStr::to_os_string));
                let default_name = called.is_some_and(|c| Config::default().is_launcher_name(&c));
                if default_name {
                    if let Some(show) = parse_direct(&args).ok().and_then(|call| help_or_version(&call.flags)) {
                        return Ok(show);
                    }
                }
                return Err(error);
            }
        };
        // `~/a3/bin/python3` with `~/a3 -> <scripts>/analysis3.d`: the env
        // dir reached under another name (L2; launcher.sh compatibility).
        let top_level = resolved.invoked.file_name().is_some_and(|n| config.is_launcher_name(n));
        let resolved = match &resolved.env_link {
            None if !top_level => {
                crate::invocation::resolve_through_linked_dirs(&resolved.invoked, self.probe).unwrap_or(resolved)
            }
            _ => resolved,
        };
        let mode = match resolved.env_link {
            Some(link) if !config.is_launcher_name(&link.command) => Mode::Command { link, args },
            Some(link) => Mode::Direct {
                link: Some(link),
                call: parse_direct(&args)?,
            },
            // Only the launcher's own name means a top-level direct call: a
            // stray link `python3 -> launcher` outside an env dir is an error.
            None if resolved
                .invoked
                .file_name()
                .is_some_and(|name| config.is_launcher_name(name)) =>
            {
                Mode::Direct {
                    link: None,
                    call: parse_direct(&args)?,
                }
            }
            None => {
                return Err(LaunchError::NoEnvironment {
                    path: resolved.invoked.clone(),
                    why: "no link in a '<env>.d/bin' directory on its symlink chain".into(),
                })
            }
        };

        let launch = match mode {
            Mode::Command { link, args } => {
                self.note(|| {
                    format!(
                        "command mode: env {} command {}",
                        link.env,
                        link.command.to_string_lossy()
                    )
                });
                Launch {
                    config: &config,
                    env: link.env.clone(),
                    scripts_dir: link.scripts_dir.clone(),
                    command: link.command.clone(),
                    link: Some(link),
                    args,
                    direct: None,
                    invoked: resolved.invoked.clone(),
                    launcher: resolved.launcher.clone(),
                }
            }
            Mode::Direct { link, call } => {
                if let Some(show) = help_or_version(&call.flags) {
                    return Ok(show);
                }
                *dry_run |= call.flags.dry_run;
                let Some(command) = call.command.clone() else {
                    return Ok(Action::Show {
                        text: USAGE.into(),
                        stderr: true,
                        exit: crate::error::EXIT_USAGE,
                    });
                };
                let scripts_dir = match &link {
                    Some(link) => link.scripts_dir.clone(),
                    None => resolved.launcher.parent().map(Path::to_path_buf).unwrap_or_default(),
                };
                let env = match (&call.flags.env, &link, &config.default_env) {
                    (Some(name), _, _) => self.env_from_name(&scripts_dir, name),
                    (None, Some(link), _) => link.env.clone(),
                    (None, None, Some(name)) => self.env_from_name(&scripts_dir, name),
                    (None, None, None) => {
                        return Err(LaunchError::Usage(format!(
                            "no environment: pass --env NAME or set default_env in {}",
                            CONFIG_FILE_NAME
                        )))
                    }
                };
                self.note(|| format!("direct mode: env {env} command {}", command.to_string_lossy()));
                Launch {
                    config: &config,
                    env,
                    scripts_dir,
                    link,
                    command,
                    args: call.args.clone(),
                    direct: Some(call),
                    invoked: resolved.invoked.clone(),
                    launcher: resolved.launcher.clone(),
                }
            }
        };
        self.dispatch(&launch)
    }

    /// An env named by `--env` or `default_env`, aliases resolved.
    fn env_from_name(&self, scripts_dir: &Path, name: &str) -> String {
        resolve_env_alias(&scripts_dir.join(format!("{name}.d")), self.probe).unwrap_or_else(|| name.to_string())
    }

    /// L19: `LAUNCHER_CONFIG`, else `launcher.toml` beside the launcher.
    fn load_config(&mut self, launcher: &Path) -> Result<Config, LaunchError> {
        let path = match self.vars.get("LAUNCHER_CONFIG").filter(|p| !p.is_empty()) {
            Some(p) => PathBuf::from(p),
            None => launcher.parent().unwrap_or(Path::new("/")).join(CONFIG_FILE_NAME),
        };
        self.note(|| format!("config {}", path.display()));
        let text = self.read_trusted(&path, "config")?;
        let config = Config::parse(&text, &path)?;
        self.config_path = path;
        Ok(config)
    }

    /// Read a file the launcher acts on, refusing it when others could have
    /// written it (L19).
    fn read_trusted(&self, path: &Path, what: &'static str) -> Result<Vec<u8>, LaunchError> {
        let read = self.probe.read_file(path).map_err(|e| LaunchError::Unreadable {
            what,
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        self.check_trusted(path, &read.stat, read.through_symlink, what)?;
        Ok(read.bytes)
    }

    /// L19, walked by `trust::check`: refuse `path` when anyone but root,
    /// the installation's owner and the caller could change it or the way to
    /// it. `stat` is `path`'s own `lstat` unless `may_be_link`. `what` says
    /// whose file it is: `config` (the owner comes from it), `script` (a
    /// `script =` target), or `env.toml` / `override script`, which are
    /// looked up only in case they exist (`Lookup::Optional`).
    fn check_trusted(
        &self,
        path: &Path,
        stat: &FileStat,
        may_be_link: bool,
        what: &'static str,
    ) -> Result<(), LaunchError> {
        let named = self.vars.get("LAUNCHER_CONFIG").is_some_and(|p| !p.is_empty());
        let owner = match what {
            "config" if named => crate::trust::Owner::OfItself,
            "config" => crate::trust::Owner::OfItsDirectory,
            _ => crate::trust::Owner::FromConfig {
                config: &self.config_path,
                named,
            },
        };
        let lookup = match what {
            "env.toml" | "override script" => crate::trust::Lookup::Optional,
            _ => crate::trust::Lookup::Required,
        };
        let request = crate::trust::Request {
            path,
            what,
            lookup,
            known: (!may_be_link).then_some(*stat),
            owner,
        };
        crate::trust::check(self.probe, &request).map(drop)
    }

    /// The launcher binary's identity, to recognise launcher links (L7, L8, L21).
    fn launcher_stat(&mut self, launcher: &Path) -> Option<FileStat> {
        if self.launcher_stat.is_none() {
            self.launcher_stat = Some(self.probe.stat(launcher).ok());
        }
        self.launcher_stat.unwrap()
    }

    fn dispatch(&mut self, launch: &Launch) -> Result<Action, LaunchError> {
        let inside = self.probe.stat(&launch.config.container.marker).is_ok();
        self.note(|| {
            format!(
                "{} the container (marker {})",
                if inside { "inside" } else { "outside" },
                launch.config.container.marker.display()
            )
        });
        let adopted;
        let launch = if inside {
            adopted = self.adopt_handover(launch);
            &adopted
        } else {
            launch
        };
        let command_config = launch.command_config();
        if command_config.and_then(|c| c.builtin) == Some(Builtin::PbsTmrsh) {
            return self.pbs_tmrsh(launch, inside).map(Action::Exec);
        }
        if command_config.is_some_and(|c| c.host) {
            return self.host_command(launch, inside).map(Action::Exec);
        }
        if inside {
            return match launch.direct {
                None => self.inside_command(launch),
                Some(_) => self.inside_direct(launch),
            }
            .map(Action::Exec);
        }
        if launch.direct.is_none() {
            if let Some(script) = self.override_script(launch)? {
                return self.script_plan(launch, script).map(Action::Exec);
            }
        }
        self.runtime_plan(launch).map(Action::Exec)
    }

    /// Inside: take what the outside hop handed over (L2, L20): the env it
    /// mounted, even if an alias moved since, and the arguments as they
    /// were before the runtime's JSON hand-off.
    fn adopt_handover<'l>(&mut self, launch: &Launch<'l>) -> Launch<'l> {
        let mut adopted = launch.clone();
        let mounted = self
            .vars
            .get(MOUNTED_ENV_VAR)
            .and_then(OsStr::to_str)
            .and_then(|v| v.split_once('='));
        let alias = launch.link.as_ref().map(|l| l.alias.as_str());
        if let Some((_, env)) = mounted.filter(|(named, _)| Some(*named) == alias) {
            if crate::config::is_plain_name(env) && env != launch.env {
                self.note(|| {
                    format!(
                        "inside: env {env}, as mounted by the outside hop (link says {})",
                        launch.env
                    )
                });
                adopted.env = env.to_string();
            }
        }
        if let Some(hex) = self.vars.get(ARGV_VAR) {
            if let Some(args) = decode_args(hex, &launch.args) {
                self.note(|| "inside: arguments restored byte for byte".into());
                adopted.args = args;
            }
        }
        adopted
    }

    /// L6: exec `<prefix>/<env>/bin/<command>` with argv[0] = the invoked path.
    fn inside_command(&mut self, launch: &Launch) -> Result<ExecPlan, LaunchError> {
        let target = launch.real_bin().join(&launch.command);
        let stat = self.probe.stat(&target).map_err(|_| LaunchError::CommandNotFound {
            command: launch.command.to_string_lossy().into_owned(),
            place: format!(" in {}", launch.real_bin().display()),
        })?;
        if !stat.is_executable_file() {
            return Err(LaunchError::NotExecutable {
                path: target,
                reason: "not an executable file".into(),
            });
        }
        if self.launcher_stat(&launch.launcher).is_some_and(|l| l.same_file(&stat)) {
            return Err(LaunchError::SelfExec { path: target });
        }
        let mut argv = vec![launch.invoked.clone().into_os_string()];
        argv.extend(launch.args.iter().cloned());
        let mut plan = ExecPlan::new(target, argv);
        plan.drop_handover();
        self.note(|| format!("inside: exec {}", plan.program.display()));
        Ok(plan)
    }

    /// L7: the command from `PATH`, skipping launcher links.
    fn inside_direct(&mut self, launch: &Launch) -> Result<ExecPlan, LaunchError> {
        let program = self.lookup_not_launcher(launch, None)?;
        let mut argv = vec![launch.command.clone()];
        argv.extend(launch.args.iter().cloned());
        let mut plan = ExecPlan::new(program, argv);
        plan.drop_handover();
        Ok(plan)
    }

    /// L8: a host command, on either side: the first of that name on `PATH`
    /// that is not a launcher link — inside, nor an env's own program (an env
    /// that ships `ssh` must not take the host's place, issue 12).
    fn host_command(&mut self, launch: &Launch, inside: bool) -> Result<ExecPlan, LaunchError> {
        let program = self.lookup_host_program(launch, inside)?;
        self.note(|| format!("host command: exec {}", program.display()));
        let mut argv = vec![launch.command.clone()];
        argv.extend(launch.args.iter().cloned());
        let mut plan = ExecPlan::new(program, argv);
        plan.drop_handover();
        Ok(plan)
    }

    /// A host program (L8, L16): as `lookup_not_launcher`, and inside the
    /// container also skipping every `PATH` entry below the container prefix.
    fn lookup_host_program(&mut self, launch: &Launch, inside: bool) -> Result<PathBuf, LaunchError> {
        if !inside {
            return self.lookup_not_launcher(launch, None);
        }
        let prefix = launch.config.container.prefix.as_os_str().as_bytes();
        let host_only: Vec<&OsStr> = launch
            .path_var(self.vars)
            .map(|p| {
                crate::invocation::split_path_list(p)
                    .filter(|dir| {
                        let dir = dir.as_bytes();
                        !(dir.starts_with(prefix) && dir.get(prefix.len()) == Some(&b'/'))
                    })
                    .collect()
            })
            .unwrap_or_default();
        let joined = std::env::join_paths(host_only).unwrap_or_default();
        self.lookup_not_launcher(launch, Some(&joined))
    }

    /// Find `launch.command` on `PATH` (or `path_override`), skipping every
    /// launcher link; a name with a `/` is taken as it is.
    fn lookup_not_launcher(&mut self, launch: &Launch, path_override: Option<&OsStr>) -> Result<PathBuf, LaunchError> {
        let command = &launch.command;
        if command.as_bytes().contains(&b'/') {
            let path = PathBuf::from(command);
            return match self.probe.stat(&path) {
                Ok(s) if s.is_executable_file() => Ok(path),
                Ok(_) => Err(LaunchError::NotExecutable {
                    path,
                    reason: "not an executable file".into(),
                }),
                Err(_) => Err(LaunchError::CommandNotFound {
                    command: command.to_string_lossy().into_owned(),
                    place: String::new(),
                }),
            };
        }
        let launcher = self.launcher_stat(&launch.launcher);
        let path_var = path_override.or_else(|| launch.path_var(self.vars));
        search_path(command, path_var, self.probe, |s| {
            !launcher.is_some_and(|l| l.same_file(s))
        })
        .ok_or_else(|| LaunchError::CommandNotFound {
            command: command.to_string_lossy().into_owned(),
            place: " on PATH (launcher links skipped)".into(),
        })
    }

    /// L15: a configured `script`, or an executable compat
    /// `<env>.d/overrides/NAME.sh` / `<scripts>/overrides/NAME.sh`.
    fn override_script(&mut self, launch: &Launch) -> Result<Option<PathBuf>, LaunchError> {
        if let Some(script) = launch.command_config().and_then(|c| c.script.clone()) {
            let stat = self.probe.stat(&script).map_err(|_| LaunchError::CommandNotFound {
                command: script.display().to_string(),
                place: " (override script)".into(),
            })?;
            if !stat.is_executable_file() {
                return Err(LaunchError::NotExecutable {
                    path: script,
                    reason: "override script is not executable".into(),
                });
            }
            self.check_trusted(&script, &stat, true, "script")?;
            return Ok(Some(script));
        }
        let mut name = launch.command.clone();
        name.push(".sh");
        for dir in [launch.env_dir().join("overrides"), launch.scripts_dir.join("overrides")] {
            let candidate = dir.join(&name);
            if let Ok(stat) = self.probe.stat(&candidate) {
                if stat.is_executable_file() {
                    self.check_trusted(&candidate, &stat, true, "override script")?;
                    return Ok(Some(candidate));
                }
            }
        }
        Ok(None)
    }

    /// The incoming L21 counter, refusing to go deeper than `MAX_DEPTH`.
    fn next_depth(&self) -> Result<u32, LaunchError> {
        // A value that is not a number is nobody's count: treat it as
        // exhausted rather than as 0, which would let a loop run forever.
        let depth = match self.vars.get(DEPTH_VAR).filter(|v| !v.is_empty()) {
            None => 0,
            Some(v) => v.to_str().and_then(|v| v.parse::<u32>().ok()).unwrap_or(MAX_DEPTH),
        };
        if depth >= MAX_DEPTH {
            return Err(LaunchError::Recursion { depth });
        }
        Ok(depth + 1)
    }

    fn envs_dir<'c>(&self, config: &'c Config) -> Result<&'c Path, LaunchError> {
        config
            .container
            .envs_dir
            .as_deref()
            .ok_or_else(|| LaunchError::MissingSetting {
                key: "container.envs_dir",
                config: self.config_path.clone(),
            })
    }

    /// L15: exec the override script with the original arguments and
    /// `LAUNCHER_*` variables, so it can call the launcher back.
    fn script_plan(&mut self, launch: &Launch, script: PathBuf) -> Result<ExecPlan, LaunchError> {
        let depth = self.next_depth()?;
        self.note(|| format!("override script {}", script.display()));
        let mut argv = vec![script.clone().into_os_string()];
        argv.extend(launch.args.iter().cloned());
        let mut plan = ExecPlan::new(script, argv);
        plan.set("LAUNCHER_ENV", &launch.env);
        plan.set("LAUNCHER_COMMAND", &launch.command);
        plan.set("LAUNCHER_BIN", launch.env_launcher());
        plan.set("LAUNCHER_SCRIPTS", &launch.scripts_dir);
        plan.set("LAUNCHER_INVOKED", &launch.invoked);
        if let Some(envs_dir) = &launch.config.container.envs_dir {
            plan.set("LAUNCHER_IMAGE", own_image(envs_dir, &launch.env));
        }
        plan.set(DEPTH_VAR, depth.to_string());
        Ok(plan)
    }

    /// L16: rewrite a `pbs_tmrsh` call so the remote side re-enters the
    /// same container, then exec the real `pbs_tmrsh`.
    fn pbs_tmrsh(&mut self, launch: &Launch, inside: bool) -> Result<ExecPlan, LaunchError> {
        let program = self.lookup_host_program(launch, inside)?;
        let mut argv = vec![launch.command.clone()];
        match pbs::parse(&launch.args) {
            Some(call) => {
                let runtime = find_runtime(
                    launch.flags().and_then(|f| f.runtime.as_deref()),
                    launch.config.runtime.path.as_deref(),
                    launch.path_var(self.vars),
                    self.probe,
                )
                .ok()
                // Inside, the runtime's dir is no longer on PATH (L13): the
                // outside hop left its path in LAUNCHER_RUNTIME.
                .or_else(|| self.vars.get(RUNTIME_VAR).filter(|r| !r.is_empty()).map(PathBuf::from));
                if runtime.is_none() && !inside {
                    self.note(|| "pbs_tmrsh: no runtime found; the remote launcher will look for one".into());
                }
                let env_launcher = launch.env_launcher();
                // Inside, the overlays this container really has (the outside
                // hop may have had them from --overlay-path, not the variable).
                let mounted = inside.then(|| self.vars.get(OVERLAYS_VAR)).flatten();
                let overlay_path = launch
                    .flags()
                    .and_then(|f| f.overlay_path.clone())
                    .or_else(|| mounted.map(OsStr::to_os_string))
                    .or_else(|| self.vars.get("CONTAINER_OVERLAY_PATH").map(OsStr::to_os_string))
                    .unwrap_or_default();
                let remote = pbs::Remote {
                    launcher: &env_launcher,
                    runtime: runtime.as_deref(),
                    overlay_path: &overlay_path,
                    path: launch.path_var(self.vars),
                };
                argv.extend(pbs::remote_args(&call, &remote));
            }
            None => {
                self.note(|| "pbs_tmrsh: arguments not understood; passed through unchanged".into());
                argv.extend(launch.args.iter().cloned());
            }
        }
        let mut plan = ExecPlan::new(program, argv);
        plan.drop_handover();
        Ok(plan)
    }

    /// L9–L14: `RUNTIME [flags] exec [--bind LIST] --overlay=… IMAGE CMD ARGS…`.
    fn runtime_plan(&mut self, launch: &Launch) -> Result<ExecPlan, LaunchError> {
        let config = launch.config;
        let flags = launch.flags();
        let depth = self.next_depth()?;
        let path_var = launch.path_var(self.vars);
        let native = config.runtime.flavour == FlavourSetting::Native;
        let runtime = match (
            native,
            flags.and_then(|f| f.runtime.as_deref()),
            config.runtime.path.as_deref(),
        ) {
            // The native runtime is this binary, unless configured elsewhere.
            (true, None, None) => launch.launcher.clone(),
            (_, flag, configured) => find_runtime(flag, configured, path_var, self.probe)?,
        };
        let flavour = flavour(config.runtime.flavour, &runtime, self.probe);
        self.note(|| format!("runtime {} ({:?})", runtime.display(), flavour));
        let image = config
            .runtime
            .image
            .as_deref()
            .ok_or_else(|| LaunchError::MissingSetting {
                key: "runtime.image",
                config: self.config_path.clone(),
            })?;
        if self.probe.stat(image).is_err() {
            return Err(LaunchError::MissingBaseImage {
                path: image.to_path_buf(),
            });
        }
        let envs_dir = self.envs_dir(config)?;
        let own = own_image(envs_dir, &launch.env);
        let command_config = launch.command_config();
        let all = command_config.and_then(|c| c.overlays) == Some(OverlaySet::All);
        let user_list = match flags.and_then(|f| f.overlay_path.as_deref()) {
            Some(list) => Some(list),
            None => self.vars.get("CONTAINER_OVERLAY_PATH"),
        };
        let images = overlays(
            &OverlayRequest {
                user_list,
                own: &own,
                skip_own: flags.is_some_and(|f| f.no_default_overlay)
                    || truthy(self.vars, "CONTAINER_OVERLAY_PATH_OVERRIDE"),
                all_from: all.then_some(envs_dir),
            },
            self.probe,
        )?;
        self.note(|| format!("overlays {images:?}"));
        if all {
            // L19: an image found by listing envs_dir is looked up in case it
            // exists, so in a directory others can write (sticky or not) it is
            // never trusted: nobody may slip a `zzz.sqsh` into every jupyter.
            for image in images.iter().filter(|i| i.parent() == Some(envs_dir) && **i != own) {
                let check = crate::trust::Request {
                    path: image,
                    what: "env image",
                    lookup: crate::trust::Lookup::Optional,
                    known: None,
                    owner: crate::trust::Owner::FromConfig {
                        config: &self.config_path,
                        named: self.vars.get("LAUNCHER_CONFIG").is_some_and(|p| !p.is_empty()),
                    },
                };
                crate::trust::check(self.probe, &check)?;
            }
        }

        let argv0 = if native {
            OsString::from(crate::native::NATIVE_ARGV0)
        } else {
            runtime.clone().into_os_string()
        };
        let mut argv: Vec<OsString> = vec![argv0];
        argv.extend(config.runtime.flags.iter().map(OsString::from));
        argv.push("exec".into());
        let exec_flags: Vec<&String> = config
            .runtime
            .exec_flags
            .iter()
            .chain(command_config.iter().flat_map(|c| c.exec_flags.iter()))
            .collect();
        argv.extend(exec_flags.iter().map(OsString::from));
        let interpreter_bind = self.interpreter_bind(launch, flavour);
        let binds = match (bind_list(&config.container.binds, self.probe), &interpreter_bind) {
            (Some(mut list), Some(extra)) => {
                list.push(",");
                list.push(extra);
                Some(list)
            }
            (list, extra) => list.or_else(|| extra.clone()),
        };
        if let Some(binds) = binds {
            argv.push("--bind".into());
            argv.push(binds);
        }
        for overlay in &images {
            let mut arg = OsString::from("--overlay=");
            arg.push(overlay);
            arg.push(":ro");
            argv.push(arg);
        }
        argv.push(image.into());
        match launch.direct {
            // The runtime starts the link again inside, which takes L6.
            None => argv.push(launch.invoked.clone().into()),
            // Direct mode: the env's launcher link runs inside too (L7), so
            // that it removes LAUNCHER_DEPTH before the program starts (L21)
            // and looks the command up skipping launcher links.
            Some(_) => {
                argv.push(launch.env_launcher().into());
                argv.push("--".into());
                argv.push(launch.command.clone());
            }
        }
        argv.extend(launch.args.iter().cloned());

        let mut plan = ExecPlan::new(runtime.clone(), argv);
        let no_eval = !flavour.mangles()
            || exec_flags.iter().any(|f| *f == "--no-eval")
            || self.runtime_flag_set(flavour, "NO_EVAL");
        let mut carrier = Carrier {
            plan: &mut plan,
            vars: self.vars,
            flavour,
            no_eval,
        };
        // L13 PATH: the user's own prefixed value first (either prefix),
        // then the host PATH with this env's scripts bin made real.
        let existing: Vec<&OsStr> = ["APPTAINERENV_PREPEND_PATH", "SINGULARITYENV_PREPEND_PATH"]
            .iter()
            .filter_map(|n| self.vars.get(n))
            .collect();
        let real_bin = launch.real_bin();
        let runtime_dir = runtime.parent();
        let prepend = {
            let matcher = ScriptsBinMatcher::new(launch);
            let probe = self.probe;
            prepend_path(
                &PathRequest {
                    existing: &existing,
                    path: path_var,
                    runtime_dir,
                    real_bin: &real_bin,
                },
                |entry| matcher.matches(entry, probe),
            )
        };
        match carrier.user_value("PATH") {
            // `<P>PATH` replaces PATH outright (runtime_vars.sh): keep the
            // user's, with the env's entries in front.
            Some(user_path) => {
                let mut path = prepend;
                if !user_path.is_empty() {
                    path.push(":");
                    path.push(user_path);
                }
                carrier.set("PATH", &path);
            }
            None => carrier.set("PREPEND_PATH", &prepend),
        }
        // A set-but-empty LD_LIBRARY_PATH would be exported empty and lose
        // /.singularity.d/libs.
        if let Some(ld) = self.vars.get("LD_LIBRARY_PATH").filter(|v| !v.is_empty()) {
            carrier.set_unless_user("LD_LIBRARY_PATH", ld);
        }
        let facts_path = launch.env_dir().join(ENV_FILE_NAME);
        if let Some(facts) = self.env_facts(&facts_path)? {
            for (name, value) in &facts.env {
                carrier.set_unless_user(name, OsStr::new(value));
            }
        }
        for (name, value) in &config.container.env {
            carrier.set_unless_user(name, OsStr::new(value));
        }
        carrier.set_unless_user("CONDA_BASE", envs_dir.join(&launch.env).as_os_str());
        if let Some(c) = command_config {
            for (name, value) in &c.env {
                // Exported for the runtime itself, and carried with the
                // prefix so that --cleanenv keeps it (L13); the runtime's own
                // variables (APPTAINER_NV…) are for the runtime only.
                carrier.plan.set(name.as_str(), value.as_str());
                if !Flavour::Apptainer.flag_prefixes().iter().any(|p| name.starts_with(p)) {
                    carrier.set(name, OsStr::new(value));
                }
            }
        }
        carrier.set_unless_user(RUNTIME_VAR, runtime.as_os_str());
        // What the inside hop needs travels with the prefix too (L13, L21).
        // A Python launch through `.inside` has no inside hop: nothing would
        // remove the counter, and nothing inside can loop back to the runtime.
        if interpreter_bind.is_none() {
            carrier.set(DEPTH_VAR, OsStr::new(&depth.to_string()));
        }
        // The env an alias named, for the inside hop should the alias move
        // (L2); qualified by the alias, so that it never applies to another
        // env's link even where it outlives the hop.
        if let Some(link) = launch.link.as_ref().filter(|l| l.alias != launch.env) {
            carrier.set(MOUNTED_ENV_VAR, OsStr::new(&format!("{}={}", link.alias, launch.env)));
        }
        let overlay_list = std::env::join_paths(&images).unwrap_or_default();
        carrier.set(OVERLAYS_VAR, &overlay_list);
        if let Some(hex) = encode_args(&launch.args).filter(|_| flavour.mangles()) {
            carrier.set(ARGV_VAR, &hex);
        }
        plan.unset_env.push(DEPTH_VAR.into());
        Ok(plan)
    }

    /// Issue 11: for a Python interpreter, bind `<env>.d/.inside` over
    /// `<env>.d/bin` so that inside the container the scripts path resolves
    /// straight to the interpreter (argv[0] stays the scripts path: L6). Only
    /// in command mode, when the tree has `.inside`, and when no argument
    /// needs the inside hop to restore it (L20).
    fn interpreter_bind(&self, launch: &Launch, flavour: Flavour) -> Option<OsString> {
        if launch.direct.is_some() || !crate::config::is_interpreter_name(&launch.command) {
            return None;
        }
        if flavour.mangles() && launch.args.iter().any(|a| a.to_str().is_none()) {
            return None;
        }
        let env_dir = launch.env_dir();
        let inside = env_dir.join(crate::config::INSIDE_DIR_NAME);
        let bin = env_dir.join("bin");
        let plain = |p: &Path| !p.as_os_str().as_bytes().iter().any(|b| matches!(b, b',' | b':'));
        if !plain(&env_dir) || !self.probe.stat(&inside).is_ok_and(|s| s.is_dir()) {
            return None;
        }
        let mut bind = inside.into_os_string();
        bind.push(":");
        bind.push(bin);
        Some(bind)
    }

    /// A runtime flag switched on from the environment (`APPTAINER_NO_EVAL=1`):
    /// Go's `ParseBool` truth values.
    fn runtime_flag_set(&self, flavour: Flavour, flag: &str) -> bool {
        flavour.flag_prefixes().iter().any(|prefix| {
            self.vars
                .get(&format!("{prefix}{flag}"))
                .is_some_and(|v| matches!(v.as_bytes(), b"1" | b"t" | b"T" | b"true" | b"TRUE" | b"True"))
        })
    }

    /// `<env>.d/env.toml` when present (absent is normal: no activation vars).
    fn env_facts(&self, path: &Path) -> Result<Option<EnvFacts>, LaunchError> {
        match self.probe.read_file(path) {
            Ok(read) => {
                self.check_trusted(path, &read.stat, read.through_symlink, "env.toml")?;
                EnvFacts::parse(&read.bytes, path).map(Some)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(LaunchError::Unreadable {
                what: "env.toml",
                path: path.to_path_buf(),
                reason: e.to_string(),
            }),
        }
    }
}

/// `--help` / `--version`, which need nothing but the flags.
fn help_or_version(flags: &crate::flags::DirectFlags) -> Option<Action> {
    let text = if flags.help {
        USAGE.to_string()
    } else if flags.version {
        format!("launcher {}", env!("CARGO_PKG_VERSION"))
    } else {
        return None;
    };
    Some(Action::Show {
        text,
        stderr: false,
        exit: 0,
    })
}

/// Sets `<PREFIX>NAME` variables on a runtime plan so that each value
/// arrives verbatim through the runtime's one shell evaluation (L13).
struct Carrier<'p, 'v> {
    plan: &'p mut ExecPlan,
    vars: &'v Vars,
    flavour: Flavour,
    /// `--no-eval`: the runtime single-quotes values; nothing to escape.
    no_eval: bool,
}

impl Carrier<'_, '_> {
    fn set(&mut self, name: &str, value: &OsStr) {
        let value = if self.no_eval {
            value.to_os_string()
        } else {
            escape_for_eval(value)
        };
        self.plan.set(format!("{}{name}", self.flavour.env_prefix()), value);
    }

    /// The user's own value of `NAME` under any prefix the runtime reads,
    /// the one the runtime would use.
    fn user_value(&self, name: &str) -> Option<&OsStr> {
        self.flavour
            .env_prefixes_read()
            .iter()
            .find_map(|prefix| self.vars.get(&format!("{prefix}{name}")))
    }

    /// Set unless the user set it under a prefix the runtime reads: theirs
    /// wins, and ours must not beat a legacy `SINGULARITYENV_` of theirs.
    fn set_unless_user(&mut self, name: &str, value: &OsStr) {
        if self.user_value(name).is_none() {
            self.set(name, value);
        }
    }
}

/// Recognises this env's scripts bin directory among `PATH` entries, in any
/// alias spelling (L13). Built once per launch; plain byte comparisons, since
/// a long `PATH` is walked entry by entry. Only entries of the form
/// `<scripts>/<X>.d/bin` that are not already known cost a `readlink`.
struct ScriptsBinMatcher<'a> {
    /// The spelling on the invocation chain, and the canonical `<env>.d/bin`.
    known: [Vec<u8>; 2],
    scripts_dir: &'a [u8],
    env: &'a str,
}

impl<'a> ScriptsBinMatcher<'a> {
    fn new(launch: &'a Launch) -> ScriptsBinMatcher<'a> {
        let canonical = launch.env_dir().join("bin").into_os_string().into_vec();
        let on_chain = launch
            .link
            .as_ref()
            .map_or_else(|| canonical.clone(), |l| l.bin_dir.as_os_str().as_bytes().to_vec());
        ScriptsBinMatcher {
            known: [on_chain, canonical],
            scripts_dir: launch.scripts_dir.as_os_str().as_bytes(),
            env: &launch.env,
        }
    }

    fn matches(&self, entry: &Path, probe: &dyn Probe) -> bool {
        let collapsed;
        let mut bytes = entry.as_os_str().as_bytes();
        if bytes.windows(2).any(|w| w == b"//") {
            // `/apps//scripts/e.d/bin` names the same directory.
            collapsed = collapse_slashes(bytes);
            bytes = &collapsed;
        }
        if self.known.iter().any(|k| k.as_slice() == bytes) {
            return true;
        }
        // `<scripts>/<X>.d/bin`, with `<scripts>` spelled as on the chain.
        let Some(env_dir) = bytes.strip_suffix(b"/bin") else {
            return false;
        };
        let Some(rest) = env_dir.strip_prefix(self.scripts_dir) else {
            return false;
        };
        let Some(name) = rest.strip_prefix(b"/") else {
            return false;
        };
        if name.contains(&b'/') || !name.ends_with(b".d") {
            return false;
        }
        resolve_env_alias(Path::new(OsStr::from_bytes(env_dir)), probe).as_deref() == Some(self.env)
    }
}

/// `a//b///c` → `a/b/c`.
fn collapse_slashes(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    for &b in bytes {
        if !(b == b'/' && out.last() == Some(&b'/')) {
            out.push(b);
        }
    }
    out
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
