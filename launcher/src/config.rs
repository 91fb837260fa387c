//! `launcher.toml` (site configuration) and `<env>.d/env.toml` (per-env
//! facts written by the installer): schema, parsing and validation (L19).
//!
//! Unknown keys are errors with line and column, so a typo never silently
//! changes behaviour. Relative paths are taken relative to the config file's
//! directory, so a whole installation can be moved or built in a temp dir.
//! The schema is documented key by key in `launcher.toml.example`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::LaunchError;

/// The name a direct call is recognised by (L3), unless configured.
pub const DEFAULT_LAUNCHER_NAME: &str = "launcher";
/// Names that also mean "called directly" (L3), whatever `launcher_name`
/// says: remote nodes and override scripts of sites migrating from the bash
/// scripts tree still call `<env>.d/bin/launcher.sh` (docs/admin-guide.md).
pub const LEGACY_LAUNCHER_NAMES: &[&str] = &["launcher.sh"];
/// File name of the site configuration, beside the launcher binary (L19).
pub const CONFIG_FILE_NAME: &str = "launcher.toml";
/// File name of the per-env facts inside `<env>.d/` (I7, L13).
pub const ENV_FILE_NAME: &str = "env.toml";
/// `<env>.d/.inside/`: `bin/` as seen inside the container for a Python
/// launch — the same entries, but the interpreters are direct links to
/// `<prefix>/<env>/bin/…`, so CPython finds its prefix from the real file
/// (docs/python.md). The installer writes it beside `bin/`.
pub const INSIDE_DIR_NAME: &str = ".inside";

/// `python`, `python3`, `python3.11`…: the commands `.inside` links straight
/// to the interpreter.
pub fn is_interpreter_name(name: &std::ffi::OsStr) -> bool {
    let Some(rest) = name.to_str().and_then(|n| n.strip_prefix("python")) else {
        return false;
    };
    rest.is_empty()
        || (rest.starts_with(|c: char| c.is_ascii_digit()) && rest.chars().all(|c| c.is_ascii_digit() || c == '.'))
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Environment for direct calls of the top-level `<scripts>/launcher` (L3).
    #[serde(default)]
    pub default_env: Option<String>,
    /// The launcher's own name: a command of this name means direct mode (L3).
    #[serde(default = "default_launcher_name")]
    pub launcher_name: String,
    #[serde(default)]
    pub runtime: RuntimeConfig,
    #[serde(default)]
    pub container: ContainerConfig,
    /// Per-command settings (L15), keyed by command name.
    #[serde(default)]
    pub commands: BTreeMap<String, CommandConfig>,
    /// Where the installer writes modulefiles (I8). Unused by the launcher.
    #[serde(default)]
    pub modules_dir: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RuntimeConfig {
    /// Runtime binary; else `apptainer` or `singularity` from `PATH` (L9).
    #[serde(default)]
    pub path: Option<PathBuf>,
    #[serde(default)]
    pub flavour: FlavourSetting,
    /// Arguments before `exec` (L14).
    #[serde(default = "default_runtime_flags")]
    pub flags: Vec<String>,
    /// Arguments right after `exec`, before the binds (L24): `--nv`, `--rocm`…
    #[serde(default)]
    pub exec_flags: Vec<String>,
    /// The bare base container image (L14).
    #[serde(default)]
    pub image: Option<PathBuf>,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig {
            path: None,
            flavour: FlavourSetting::Auto,
            flags: default_runtime_flags(),
            exec_flags: Vec::new(),
            image: None,
        }
    }
}

/// Which environment prefix the runtime reads (L10).
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum FlavourSetting {
    #[default]
    Auto,
    Apptainer,
    Singularity,
    /// The launcher's own runtime: no Apptainer or Singularity needed.
    Native,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ContainerConfig {
    /// Exists inside every container, never on a host (L5).
    #[serde(default = "default_marker")]
    pub marker: PathBuf,
    /// Host directories bound into the container when they exist (L12).
    #[serde(default)]
    pub binds: Vec<PathBuf>,
    /// Where `<env>.sqsh` images live (L11).
    #[serde(default)]
    pub envs_dir: Option<PathBuf>,
    /// `<container_prefix>`: envs live at `<prefix>/<env>` inside (L6).
    #[serde(default = "default_prefix")]
    pub prefix: PathBuf,
    /// Variables passed into the container (L13).
    #[serde(default)]
    pub env: BTreeMap<String, String>,
}

impl Default for ContainerConfig {
    fn default() -> Self {
        ContainerConfig {
            marker: default_marker(),
            binds: Vec::new(),
            envs_dir: None,
            prefix: default_prefix(),
            env: BTreeMap::new(),
        }
    }
}

/// `[commands.NAME]` (L15).
#[derive(Debug, Clone, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct CommandConfig {
    /// Exported before the runtime starts (outside only).
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// `"all"`: every `<envs>/*.sqsh`, the env's own image last.
    #[serde(default)]
    pub overlays: Option<OverlaySet>,
    /// Never run in the container (L8).
    #[serde(default)]
    pub host: bool,
    /// Exec this script instead (outside only), with `LAUNCHER_*` set.
    #[serde(default)]
    pub script: Option<PathBuf>,
    /// A behaviour built into the launcher (L16).
    #[serde(default)]
    pub builtin: Option<Builtin>,
    /// Runtime arguments after `runtime.exec_flags` for this command (L24).
    #[serde(default)]
    pub exec_flags: Vec<String>,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum OverlaySet {
    /// Only the env's own image (the default).
    Own,
    /// Every image in `envs_dir`.
    All,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
pub enum Builtin {
    #[serde(rename = "pbs_tmrsh")]
    PbsTmrsh,
}

/// `<env>.d/env.toml`, written by the installer (I7).
#[derive(Debug, Clone, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct EnvFacts {
    /// Activation variables passed into the container (L13).
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Activation scripts whose effect could not be captured statically
    /// (informational: `installer check` reports them).
    #[serde(default)]
    pub not_captured: Vec<String>,
}

fn default_launcher_name() -> String {
    DEFAULT_LAUNCHER_NAME.to_string()
}
fn default_runtime_flags() -> Vec<String> {
    vec!["-s".to_string()]
}
fn default_marker() -> PathBuf {
    PathBuf::from("/.singularity.d")
}
fn default_prefix() -> PathBuf {
    PathBuf::from("/opt/conda")
}

impl Default for Config {
    fn default() -> Self {
        Config {
            default_env: None,
            launcher_name: default_launcher_name(),
            runtime: RuntimeConfig::default(),
            container: ContainerConfig::default(),
            commands: BTreeMap::new(),
            modules_dir: None,
        }
    }
}

/// 1-based line and column of a byte offset.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

/// Parse TOML `text` read from `path` into `T`, turning errors into one line
/// with line and column.
fn parse_toml<T: serde::de::DeserializeOwned>(text: &[u8], path: &Path) -> Result<T, LaunchError> {
    let text = std::str::from_utf8(text).map_err(|e| {
        let (line, column) = line_column(&String::from_utf8_lossy(&text[..e.valid_up_to()]), e.valid_up_to());
        LaunchError::ConfigSyntax {
            path: path.to_path_buf(),
            line,
            column,
            message: "not valid UTF-8".into(),
        }
    })?;
    toml::from_str(text).map_err(|e| {
        let (line, column) = e.span().map_or((1, 1), |span| line_column(text, span.start));
        LaunchError::ConfigSyntax {
            path: path.to_path_buf(),
            line,
            column,
            message: e.message().trim().replace('\n', " "),
        }
    })
}

fn invalid(path: &Path, message: String) -> LaunchError {
    LaunchError::ConfigInvalid {
        path: path.to_path_buf(),
        message,
    }
}

fn check_var_name(path: &Path, table: &str, name: &str) -> Result<(), LaunchError> {
    let ok = !name.is_empty()
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(invalid(
            path,
            format!(
                "{table}: '{}' is not a valid environment variable name",
                name.escape_debug()
            ),
        ))
    }
}

/// L21: names the launcher sets itself, or that decide the container's
/// `PATH`, cannot be set as container variables: a wrong `LAUNCHER_DEPTH`
/// would defeat the loop guard, and a `PREPEND_PATH` would hide the env.
fn check_not_reserved(path: &Path, table: &str, name: &str) -> Result<(), LaunchError> {
    let reserved = name.starts_with("LAUNCHER_") || matches!(name, "PREPEND_PATH" | "APPEND_PATH" | "PATH");
    if reserved {
        return Err(invalid(
            path,
            format!("{table}: '{name}' is reserved for the launcher (LAUNCHER_*, PATH, PREPEND_PATH, APPEND_PATH)"),
        ));
    }
    Ok(())
}

/// No value handed to `execve` can hold a NUL byte (argv, environment and
/// paths are C strings): say so naming the key, before anything runs.
fn check_no_nul(path: &Path, key: impl FnOnce() -> String, value: &[u8]) -> Result<(), LaunchError> {
    if value.contains(&0) {
        let what = "which no environment variable, argument or path can carry";
        return Err(invalid(
            path,
            format!("{}: the value contains a NUL byte (\\u0000), {what}", key()),
        ));
    }
    Ok(())
}

/// Every environment table (`container.env`, `commands.NAME.env`, env.toml's
/// `env`): valid names, no NUL in values, and (`reserved`) none of the
/// launcher's own names.
fn check_env_table(
    path: &Path,
    table: &str,
    env: &BTreeMap<String, String>,
    reserved: bool,
) -> Result<(), LaunchError> {
    for (name, value) in env {
        check_var_name(path, table, name)?;
        if reserved {
            check_not_reserved(path, table, name)?;
        }
        check_no_nul(path, || format!("{table}.{name}"), value.as_bytes())?;
    }
    Ok(())
}

/// A single path component: no `/`, not empty, not `.` or `..`.
pub(crate) fn is_plain_name(name: &str) -> bool {
    !name.is_empty() && name != "." && name != ".." && !name.contains('/') && !name.contains('\0')
}

impl Config {
    /// Parse and validate `launcher.toml` read from `path`; relative paths
    /// are resolved against `path`'s directory.
    pub fn parse(text: &[u8], path: &Path) -> Result<Config, LaunchError> {
        let mut config: Config = parse_toml(text, path)?;
        config.validate(path)?;
        let base = path.parent().unwrap_or(Path::new("/"));
        config.resolve_relative_paths(base);
        Ok(config)
    }

    fn validate(&self, path: &Path) -> Result<(), LaunchError> {
        if !is_plain_name(&self.launcher_name) {
            return Err(invalid(
                path,
                format!("launcher_name '{}' must be a plain file name", self.launcher_name),
            ));
        }
        if let Some(env) = &self.default_env {
            if !is_plain_name(env) {
                return Err(invalid(path, format!("default_env '{env}' must be a plain name")));
            }
        }
        for (i, bind) in self.container.binds.iter().enumerate() {
            if bind.as_os_str().as_encoded_bytes().contains(&b',') {
                return Err(invalid(
                    path,
                    format!(
                        "container.binds[{i}] '{}' contains ',', which the runtime's --bind list cannot carry",
                        bind.display()
                    ),
                ));
            }
        }
        if !self.container.prefix.is_absolute() {
            return Err(invalid(
                path,
                format!(
                    "container.prefix '{}' must be an absolute path (it is a path inside the container)",
                    self.container.prefix.display()
                ),
            ));
        }
        check_env_table(path, "container.env", &self.container.env, true)?;
        self.check_no_nul_anywhere(path)?;
        for (name, command) in &self.commands {
            if !is_plain_name(name) {
                return Err(invalid(path, format!("commands.'{name}': not a plain command name")));
            }
            check_env_table(path, &format!("commands.{name}.env"), &command.env, false)?;
            if let Some(script) = &command.script {
                check_no_nul(
                    path,
                    || format!("commands.{name}.script"),
                    script.as_os_str().as_encoded_bytes(),
                )?;
            }
            for (i, flag) in command.exec_flags.iter().enumerate() {
                check_no_nul(path, || format!("commands.{name}.exec_flags[{i}]"), flag.as_bytes())?;
            }
            let kinds = [command.host, command.script.is_some(), command.builtin.is_some()]
                .iter()
                .filter(|&&set| set)
                .count();
            if kinds > 1 {
                return Err(invalid(
                    path,
                    format!("commands.{name}: set only one of host, script, builtin"),
                ));
            }
        }
        Ok(())
    }

    /// The paths and runtime arguments outside `[commands]` (whose own
    /// settings are checked with the command): no NUL, naming the key.
    fn check_no_nul_anywhere(&self, path: &Path) -> Result<(), LaunchError> {
        let paths = [
            ("runtime.path", self.runtime.path.as_deref()),
            ("runtime.image", self.runtime.image.as_deref()),
            ("container.envs_dir", self.container.envs_dir.as_deref()),
            ("container.marker", Some(self.container.marker.as_path())),
            ("container.prefix", Some(self.container.prefix.as_path())),
            ("modules_dir", self.modules_dir.as_deref()),
        ];
        for (key, value) in paths {
            if let Some(value) = value {
                check_no_nul(path, || key.to_string(), value.as_os_str().as_encoded_bytes())?;
            }
        }
        for (i, bind) in self.container.binds.iter().enumerate() {
            check_no_nul(
                path,
                || format!("container.binds[{i}]"),
                bind.as_os_str().as_encoded_bytes(),
            )?;
        }
        for (key, list) in [
            ("runtime.flags", &self.runtime.flags),
            ("runtime.exec_flags", &self.runtime.exec_flags),
        ] {
            for (i, flag) in list.iter().enumerate() {
                check_no_nul(path, || format!("{key}[{i}]"), flag.as_bytes())?;
            }
        }
        Ok(())
    }

    fn resolve_relative_paths(&mut self, base: &Path) {
        let resolve = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        self.runtime.path.as_mut().map(resolve);
        self.runtime.image.as_mut().map(resolve);
        self.container.envs_dir.as_mut().map(resolve);
        self.modules_dir.as_mut().map(resolve);
        resolve(&mut self.container.marker);
        self.container.binds.iter_mut().for_each(resolve);
        for command in self.commands.values_mut() {
            command.script.as_mut().map(resolve);
        }
    }

    /// Whether a command of this name is a direct call of the launcher (L3).
    pub fn is_launcher_name(&self, name: &std::ffi::OsStr) -> bool {
        name == self.launcher_name.as_str() || LEGACY_LAUNCHER_NAMES.iter().any(|legacy| name == *legacy)
    }

    /// Names of commands that get a link in every `<env>.d/bin` although the
    /// image may not have them: host commands, builtins, scripts (I2).
    pub fn extra_commands(&self) -> impl Iterator<Item = &str> {
        self.commands
            .iter()
            .filter(|(_, c)| c.host || c.builtin.is_some() || c.script.is_some())
            .map(|(name, _)| name.as_str())
    }
}

impl EnvFacts {
    pub fn parse(text: &[u8], path: &Path) -> Result<EnvFacts, LaunchError> {
        let facts: EnvFacts = parse_toml(text, path)?;
        check_env_table(path, "env", &facts.env, true)?;
        Ok(facts)
    }
}

#[cfg(test)]
mod reserved_tests {
    use super::*;

    #[test]
    fn l21_launcher_names_cannot_be_set_as_container_variables() {
        let path = Path::new("/s/launcher.toml");
        for name in [
            "LAUNCHER_DEPTH",
            "LAUNCHER_MOUNTED_ENV",
            "PREPEND_PATH",
            "APPEND_PATH",
            "PATH",
        ] {
            let text = format!("[container.env]\n{name} = \"x\"\n");
            let err = Config::parse(text.as_bytes(), path).unwrap_err();
            assert_eq!(err.exit_code(), 125);
            assert!(err.to_string().contains(name), "{err}");
            let text = format!("[env]\n{name} = \"x\"\n");
            assert!(
                EnvFacts::parse(text.as_bytes(), Path::new("/s/e.d/env.toml")).is_err(),
                "{name}"
            );
        }
        assert!(Config::parse(b"[container.env]\nLAUNCHERX = \"x\"\n", path).is_ok());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, LaunchError> {
        Config::parse(text.as_bytes(), Path::new("/site/scripts/launcher.toml"))
    }

    #[test]
    fn l19_empty_config_gives_defaults() {
        let c = parse("").unwrap();
        assert_eq!(c.launcher_name, "launcher");
        assert_eq!(c.runtime.flags, vec!["-s"]);
        assert_eq!(c.container.marker, PathBuf::from("/.singularity.d"));
        assert_eq!(c.container.prefix, PathBuf::from("/opt/conda"));
    }

    #[test]
    fn l19_unknown_key_is_an_error_with_line_and_column() {
        let err = parse("[runtime]\nflavor = \"auto\"\n").unwrap_err();
        match &err {
            LaunchError::ConfigSyntax {
                line, column, message, ..
            } => {
                assert_eq!((*line, *column), (2, 1));
                assert!(message.contains("unknown field `flavor`"), "{message}");
            }
            other => panic!("wrong error {other:?}"),
        }
        assert!(!err.to_string().contains('\n'));
    }

    #[test]
    fn l19_syntax_error_names_line() {
        let err = parse("default_env = \"a\"\n[container\n").unwrap_err();
        assert!(err.to_string().starts_with("/site/scripts/launcher.toml:2:"), "{err}");
    }

    #[test]
    fn l19_relative_paths_resolve_against_config_dir() {
        let c = parse("[runtime]\nimage = \"base.sif\"\n[container]\nenvs_dir = \"../envs\"\n").unwrap();
        assert_eq!(c.runtime.image.unwrap(), PathBuf::from("/site/scripts/base.sif"));
        assert_eq!(c.container.envs_dir.unwrap(), PathBuf::from("/site/scripts/../envs"));
    }

    #[test]
    fn l12_bind_with_comma_is_a_config_error() {
        let err = parse("[container]\nbinds = [\"/a\", \"/b,c\"]\n").unwrap_err();
        assert!(err.to_string().contains("container.binds[1]"), "{err}");
    }

    #[test]
    fn l15_command_table_parses_every_kind() {
        let c = parse(
            "[commands.jupyter]\noverlays = \"all\"\n[commands.mpicc]\nenv = { A = \"1\" }\n\
             [commands.ssh]\nhost = true\n[commands.pbs_tmrsh]\nbuiltin = \"pbs_tmrsh\"\n",
        )
        .unwrap();
        assert_eq!(c.commands["jupyter"].overlays, Some(OverlaySet::All));
        assert_eq!(c.commands["mpicc"].env["A"], "1");
        assert!(c.commands["ssh"].host);
        assert_eq!(c.commands["pbs_tmrsh"].builtin, Some(Builtin::PbsTmrsh));
        let mut extra: Vec<_> = c.extra_commands().collect();
        extra.sort();
        assert_eq!(extra, vec!["pbs_tmrsh", "ssh"]);
    }

    #[test]
    fn l15_conflicting_command_kinds_rejected() {
        let err = parse("[commands.x]\nhost = true\nbuiltin = \"pbs_tmrsh\"\n").unwrap_err();
        assert!(err.to_string().contains("commands.x"), "{err}");
    }

    #[test]
    fn l13_bad_variable_name_rejected() {
        assert!(parse("[container.env]\n\"A-B\" = \"x\"\n").is_err());
    }

    #[test]
    fn l19_example_config_parses_and_sets_every_section() {
        let text = include_str!("../../launcher.toml.example");
        let c = Config::parse(text.as_bytes(), Path::new("/site/launcher.toml")).unwrap();
        assert_eq!(c.default_env.as_deref(), Some("analysis3"));
        assert!(c.runtime.path.is_some() && c.runtime.image.is_some());
        assert!(c.container.envs_dir.is_some() && !c.container.binds.is_empty());
        assert_eq!(c.container.env["PYTHONNOUSERSITE"], "x");
        assert_eq!(
            c.commands["qsub"].script.as_deref(),
            Some(Path::new("/site/overrides/qsub.sh"))
        );
    }

    /// Issue 10: a NUL in a value is an error naming the key, whichever
    /// table or setting it is in (execve could not carry it).
    #[test]
    fn l19_nul_in_a_value_names_the_key() {
        for (text, key) in [
            (
                "[container.env]\nGOOD = \"x\"\nBAD_ONE = \"a\\u0000b\"\n",
                "container.env.BAD_ONE",
            ),
            (
                "[commands.mpicc]\nenv = { OK = \"1\", WRAPPER = \"\\u0000\" }\n",
                "commands.mpicc.env.WRAPPER",
            ),
            ("[commands.x]\nscript = \"/a\\u0000b\"\n", "commands.x.script"),
            (
                "[commands.x]\nexec_flags = [\"--nv\", \"-B\\u0000\"]\n",
                "commands.x.exec_flags[1]",
            ),
            ("[runtime]\nexec_flags = [\"\\u0000\"]\n", "runtime.exec_flags[0]"),
            ("[runtime]\nflags = [\"-s\", \"x\\u0000\"]\n", "runtime.flags[1]"),
            ("[runtime]\nimage = \"/b\\u0000.sif\"\n", "runtime.image"),
            ("[container]\nbinds = [\"/a\", \"/b\\u0000\"]\n", "container.binds[1]"),
            ("[container]\nenvs_dir = \"/e\\u0000\"\n", "container.envs_dir"),
        ] {
            let err = parse(text).unwrap_err();
            let line = err.to_string();
            assert!(
                line.contains(&format!("{key}: the value contains a NUL byte")),
                "{text}: {line}"
            );
            assert!(!line.contains('\0') && !line.contains('\n'), "{line:?}");
            assert_eq!(err.exit_code(), 125);
        }
        let err = EnvFacts::parse(b"[env]\nPROJ_DATA = \"/x\\u0000\"\n", Path::new("/e.d/env.toml")).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("/e.d/env.toml: env.PROJ_DATA: the value contains a NUL byte"),
            "{err}"
        );
    }

    #[test]
    fn i7_env_facts_parse() {
        let f = EnvFacts::parse(b"[env]\nCONDA_PREFIX = \"/opt/conda/e\"\n", Path::new("/e.toml")).unwrap();
        assert_eq!(f.env["CONDA_PREFIX"], "/opt/conda/e");
        assert!(EnvFacts::parse(b"[vars]\n", Path::new("/e.toml")).is_err());
    }
}
