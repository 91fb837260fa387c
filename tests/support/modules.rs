//! Loading modulefiles with the real `module` command of both tools a site
//! may run, Environment Modules and Lmod (spec I8), so a test can check what
//! a modulefile does to a user's environment without caring how each tool is
//! wired into a shell.
//!
//! Each run is one clean `bash --norc --noprofile` with exactly the given
//! environment and `MODULEPATH`, a `module` function defined as the tools'
//! own init scripts define it (`eval "$(<tool command> bash "$@")"`), the
//! commands run in order, and the environment read back at the end.
//! `.ci/install-module-tools` installs both tools (docs/testing.md,
//! "Modulefile tools").

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

use super::prereq;
use super::run::run;

/// The two implementations of `module` a site may have.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ModuleTool {
    /// Environment Modules (Tcl, `modulecmd.tcl`), Debian's `environment-modules`.
    EnvironmentModules,
    /// Lmod (Lua), Debian's `lmod`, unpacked beside the other one.
    Lmod,
}

/// Where `.ci/install-module-tools` leaves each tool, then where a plain
/// `apt-get install` of it would put it (a machine with only that one).
const ENVIRONMENT_MODULES_COMMANDS: &[&str] = &["/usr/bin/modulecmd"];
const LMOD_COMMANDS: &[&str] = &[
    "/opt/lmod/usr/share/lmod/lmod/libexec/lmod",
    "/usr/share/lmod/lmod/libexec/lmod",
];

/// A tool found and answering: what to run, and the version it reported.
#[derive(Clone, Debug)]
pub struct InstalledTool {
    pub tool: ModuleTool,
    /// Called as `<command> bash <subcommand> <args…>`; prints bash code.
    pub command: PathBuf,
    /// Its `--version` line, e.g. `Modules Release 5.2.0 (2022-11-08)` or
    /// `Modules based on Lua: Version 8.6.19  2022-04-16 …`.
    pub version: String,
}

impl ModuleTool {
    pub const BOTH: [ModuleTool; 2] = [ModuleTool::EnvironmentModules, ModuleTool::Lmod];

    pub fn name(self) -> &'static str {
        match self {
            ModuleTool::EnvironmentModules => "Environment Modules",
            ModuleTool::Lmod => "Lmod",
        }
    }

    /// The tool, or why it cannot be used here. Checked once per process by
    /// running its `--version`, so a broken install (e.g. a missing Lua
    /// library) is reported here rather than as a confusing test failure.
    pub fn locate(self) -> Result<&'static InstalledTool, String> {
        static FOUND: [OnceLock<Result<InstalledTool, String>>; 2] = [OnceLock::new(), OnceLock::new()];
        let slot = match self {
            ModuleTool::EnvironmentModules => &FOUND[0],
            ModuleTool::Lmod => &FOUND[1],
        };
        slot.get_or_init(|| self.probe()).as_ref().map_err(Clone::clone)
    }

    /// `true` when a test may use this tool; otherwise prints
    /// `SKIP <test>: <reason>` and returns `false`, or panics under
    /// `LAUNCHER_E2E_REQUIRED=1` (the rule of `prereq.rs`).
    pub fn available(self, test: &str) -> bool {
        prereq::allowed(test, self.locate().err())
    }

    fn candidates(self) -> &'static [&'static str] {
        match self {
            ModuleTool::EnvironmentModules => ENVIRONMENT_MODULES_COMMANDS,
            ModuleTool::Lmod => LMOD_COMMANDS,
        }
    }

    /// What its `--version` prints (on stderr, for both tools).
    fn version_marker(self) -> &'static str {
        match self {
            ModuleTool::EnvironmentModules => "Modules Release",
            ModuleTool::Lmod => "Modules based on Lua",
        }
    }

    fn probe(self) -> Result<InstalledTool, String> {
        let install_hint = "run .ci/install-module-tools (as root)";
        let Some(command) = self.candidates().iter().map(PathBuf::from).find(|c| c.is_file()) else {
            return Err(format!(
                "{} not found (looked for {}); {install_hint}",
                self.name(),
                self.candidates().join(", ")
            ));
        };
        let output = Command::new(&command)
            .args(["bash", "--version"])
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .output()
            .map_err(|e| format!("{} cannot start: {e}; {install_hint}", command.display()))?;
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        match said.lines().find(|l| l.contains(self.version_marker())) {
            Some(line) if output.status.success() => Ok(InstalledTool {
                tool: self,
                command,
                version: line.trim().to_owned(),
            }),
            _ => Err(format!(
                "{} {} does not work ({}): {}; {install_hint}",
                self.name(),
                command.display(),
                output.status,
                said.trim()
            )),
        }
    }
}

impl fmt::Display for ModuleTool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One `module …` command and what it did.
#[derive(Clone, Debug)]
pub struct Step {
    /// As given, e.g. `load conda/analysis3`.
    pub command: String,
    /// Exit status of `module` (both tools make the eval'd code fail on error).
    pub status: i32,
    /// `module`'s own stdout (rarely anything: both tools report on stderr).
    pub stdout: String,
    /// Where both tools print `avail`, `show`, `list` and errors.
    pub stderr: String,
}

impl Step {
    pub fn succeeded(&self) -> bool {
        self.status == 0
    }
    /// stdout then stderr: what a user would see on the terminal.
    pub fn text(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

/// A sequence of `module` commands run in one shell.
#[derive(Clone, Debug)]
pub struct ModuleRun {
    pub tool: ModuleTool,
    /// Those that ran: all of them, or up to and including the first failure.
    pub steps: Vec<Step>,
    /// The shell's exported environment after the last step that ran.
    pub env: HashMap<String, String>,
}

impl ModuleRun {
    pub fn succeeded(&self) -> bool {
        self.steps.iter().all(Step::succeeded)
    }

    /// The first step whose command is exactly `command`.
    #[track_caller]
    pub fn step(&self, command: &str) -> &Step {
        self.steps
            .iter()
            .find(|s| s.command == command)
            .unwrap_or_else(|| panic!("no step `{command}` ran:\n{self}"))
    }

    /// Full names of the loaded modules, from `LOADEDMODULES` (both tools
    /// keep it), e.g. `["conda/analysis3-22.10"]` after loading an alias.
    pub fn loaded_modules(&self) -> Vec<String> {
        loaded_modules(&self.env)
    }
}

/// The transcript, for failure messages.
impl fmt::Display for ModuleRun {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}:", self.tool)?;
        for step in &self.steps {
            writeln!(f, "$ module {}   # exit {}", step.command, step.status)?;
            for line in step.text().lines() {
                writeln!(f, "  {line}")?;
            }
        }
        Ok(())
    }
}

/// Runs `commands` (each `module` arguments split on whitespace, e.g.
/// `"load conda/analysis3"`) in a clean bash whose environment is exactly
/// `base_env` plus `MODULEPATH` (the directories joined with `:`, replacing
/// any in `base_env`). `HOME` is a scratch directory unless `base_env` sets
/// it, so neither tool reads or writes the real home. Stops after the first
/// failing command. `Err` only when the tool or the shell cannot run; a
/// failing `module` command is recorded in the returned steps.
pub fn run_module_commands<K: AsRef<str>, V: AsRef<str>>(
    tool: ModuleTool,
    modulepath: &[&Path],
    base_env: &[(K, V)],
    commands: &[&str],
) -> Result<ModuleRun, String> {
    let installed = tool.locate()?;
    let scratch = ScratchDir::new()?;
    let dir = scratch.path();

    let mut script = format!(
        "module() {{ eval \"$({} bash \"$@\")\"; }}\n\
         save_env() {{ /usr/bin/env -0 >{}; }}\n",
        shell_quote(&installed.command.to_string_lossy()),
        shell_quote(&dir.join("env").to_string_lossy()),
    );
    for (i, command) in commands.iter().enumerate() {
        let args: Vec<String> = command.split_whitespace().map(shell_quote).collect();
        let out = shell_quote(&dir.join(format!("{i}.out")).to_string_lossy());
        let err = shell_quote(&dir.join(format!("{i}.err")).to_string_lossy());
        let status = shell_quote(&dir.join(format!("{i}.status")).to_string_lossy());
        script.push_str(&format!(
            "module {} >{out} 2>{err}\n\
             s=$?; echo \"$s\" >{status}\n\
             [ \"$s\" = 0 ] || {{ save_env; exit 0; }}\n",
            args.join(" ")
        ));
    }
    script.push_str("save_env\n");

    let mut bash = Command::new("/bin/bash");
    bash.args(["--norc", "--noprofile", "-c", &script])
        .env_clear()
        .current_dir(dir);
    let given: HashMap<&str, &str> = base_env.iter().map(|(k, v)| (k.as_ref(), v.as_ref())).collect();
    bash.envs(given.iter().filter(|(k, _)| **k != "MODULEPATH"));
    let modulepath = std::env::join_paths(modulepath)
        .map_err(|e| format!("MODULEPATH: {e}"))?
        .into_string()
        .map_err(|p| format!("MODULEPATH is not UTF-8: {p:?}"))?;
    bash.env("MODULEPATH", &modulepath);
    if !given.contains_key("HOME") {
        bash.env("HOME", dir);
    }

    let outcome = run(bash);
    let read = |name: String| std::fs::read(dir.join(&name));
    let mut steps = Vec::new();
    for (i, command) in commands.iter().enumerate() {
        let Ok(status) = read(format!("{i}.status")) else {
            break;
        };
        let status = String::from_utf8_lossy(&status).trim().parse().unwrap_or(-1);
        let text = |name: String| String::from_utf8_lossy(&read(name).unwrap_or_default()).into_owned();
        steps.push(Step {
            command: command.to_string(),
            status,
            stdout: text(format!("{i}.out")),
            stderr: text(format!("{i}.err")),
        });
    }
    let env = read("env".into()).map_err(|e| format!("the {tool} shell did not finish ({e}); bash: {outcome:#?}"))?;

    let mut env = parse_env(&env);
    // What bash adds on its own, and the scratch HOME, are not the test's.
    for own in ["_", "SHLVL", "PWD", "OLDPWD", "HOME"] {
        if !given.contains_key(own) {
            env.remove(own);
        }
    }
    Ok(ModuleRun { tool, steps, env })
}

/// The environment after `commands` (see [`run_module_commands`]), or the
/// whole transcript as the error when any of them failed.
pub fn environment_after<K: AsRef<str>, V: AsRef<str>>(
    tool: ModuleTool,
    modulepath: &[&Path],
    base_env: &[(K, V)],
    commands: &[&str],
) -> Result<HashMap<String, String>, String> {
    let run = run_module_commands(tool, modulepath, base_env, commands)?;
    if run.succeeded() {
        Ok(run.env)
    } else {
        Err(format!("a module command failed; {run}"))
    }
}

/// What one `module` command (e.g. `"-t avail"`, `"show conda/analysis3"`)
/// prints, stdout then stderr; `Err` with its output when it fails.
pub fn module_output<K: AsRef<str>, V: AsRef<str>>(
    tool: ModuleTool,
    modulepath: &[&Path],
    base_env: &[(K, V)],
    command: &str,
) -> Result<String, String> {
    let run = run_module_commands(tool, modulepath, base_env, &[command])?;
    match run.steps.first() {
        Some(step) if step.succeeded() => Ok(step.text()),
        _ => Err(format!("`module {command}` failed; {run}")),
    }
}

/// The full name(s) `module load name` really loads in a fresh shell: how a
/// test checks an alias or symbolic version portably (the tools' listings
/// of aliases differ in format; `LOADEDMODULES` does not).
pub fn resolve(tool: ModuleTool, modulepath: &[&Path], name: &str) -> Result<Vec<String>, String> {
    let env = environment_after(
        tool,
        modulepath,
        &[("PATH", "/usr/bin:/bin")],
        &[&format!("load {name}")],
    )?;
    Ok(loaded_modules(&env))
}

/// Full names in `LOADEDMODULES`, in load order.
pub fn loaded_modules(env: &HashMap<String, String>) -> Vec<String> {
    env.get("LOADEDMODULES")
        .map(|v| v.split(':').filter(|m| !m.is_empty()).map(str::to_owned).collect())
        .unwrap_or_default()
}

/// Variables a tool keeps for its own bookkeeping (loaded list, reference
/// counts, Lmod's serialised module table). They may stay behind after an
/// unload, so compare environments without them.
pub fn is_tool_bookkeeping(name: &str) -> bool {
    matches!(name, "LOADEDMODULES" | "_LMFILES_")
        || name.starts_with("__MODULES_")
        || name.starts_with("__LMOD_")
        || name.starts_with("_ModuleTable")
}

/// `env` without [`is_tool_bookkeeping`] variables.
pub fn without_bookkeeping(env: &HashMap<String, String>) -> HashMap<String, String> {
    env.iter()
        .filter(|(k, _)| !is_tool_bookkeeping(k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// `env -0` output: NUL-terminated `NAME=value` entries.
fn parse_env(raw: &[u8]) -> HashMap<String, String> {
    raw.split(|b| *b == 0)
        .filter(|e| !e.is_empty())
        .filter_map(|entry| {
            let entry = String::from_utf8_lossy(entry);
            let (name, value) = entry.split_once('=')?;
            Some((name.to_owned(), value.to_owned()))
        })
        .collect()
}

/// `'…'` with embedded `'` closed, escaped and reopened.
fn shell_quote(word: &str) -> String {
    format!("'{}'", word.replace('\'', r"'\''"))
}

/// A private directory for one run's output files, removed on drop.
struct ScratchDir(PathBuf);

impl ScratchDir {
    fn new() -> Result<Self, String> {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "launcher-modules-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(ScratchDir(path))
    }
    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
