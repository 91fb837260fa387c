//! The environment a command sees inside the container, as Apptainer and
//! SingularityCE compute it from the host environment (the rules the
//! launcher depends on, L13). Sources: runtime-semantics.md §2.
//!
//! The real runtimes work in three steps, and so does the model:
//!
//! 1. `create.go` (CLI side) splits the host environment: prefixed variables
//!    (`APPTAINERENV_X`, `SINGULARITYENV_X`) become the *injection*; plain ones
//!    are passed on, except `PATH`, `LD_LIBRARY_PATH` and `HOME` (reset) and
//!    the runtime's own `APPTAINER_*`/`SINGULARITY_*`; `--cleanenv` and
//!    `--containall` keep only `TERM` and the proxies (`LANG=C`).
//! 2. The embedded action script (`action_script.sh`) hides those plain
//!    variables, sources `/.singularity.d/env/*.sh`, sources the injection
//!    right after `99-base.sh` (or alone when there is no `env/`) as
//!    `export KEY="VALUE"` lines — evaluated once by a shell — applies
//!    `runtime_vars.sh` (`PREPEND_PATH`, `APPEND_PATH`, then `PATH` outright),
//!    and finally restores each plain variable the scripts did not set.
//!    That shell part runs for real in `action.rs`.
//! 3. The `exec` builtin looks the command up (`process_linux.go`).

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::Path;

/// `PATH` inside the container before any `…ENV_PREPEND_PATH`/`APPEND_PATH`
/// (`env.DefaultPath`).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// Both runtimes append this to an injected non-empty `LD_LIBRARY_PATH`.
pub const CONTAINER_LIBS: &str = "/.singularity.d/libs";

/// Which runtime is being imitated: decides the prefixes that are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavour {
    /// Reads `APPTAINERENV_`, and `SINGULARITYENV_` with lower priority.
    Apptainer,
    /// SingularityCE: reads `SINGULARITYENV_` only.
    SingularityCe,
}

impl Flavour {
    /// The flavour of a runtime binary installed under `file_name`
    /// (Apptainer ships `singularity` as a symlink to `apptainer`, so the
    /// caller passes the name of the final target).
    pub fn from_binary_name(file_name: &OsStr) -> Option<Flavour> {
        match file_name.as_bytes() {
            b"apptainer" => Some(Flavour::Apptainer),
            b"singularity" => Some(Flavour::SingularityCe),
            _ => None,
        }
    }

    /// Prefixes honoured, lowest priority first (`env.go:44`: the first set
    /// of `APPTAINERENV_`, `SINGULARITYENV_` wins).
    fn prefixes(self) -> &'static [&'static str] {
        match self {
            Flavour::Apptainer => &["SINGULARITYENV_", "APPTAINERENV_"],
            Flavour::SingularityCe => &["SINGULARITYENV_"],
        }
    }

    /// Host variables of the runtime itself, never forwarded
    /// (`create.go:147-153`; SingularityCE `clean.go:66-68` drops only its own).
    fn own_variable_prefixes(self) -> &'static [&'static str] {
        match self {
            Flavour::Apptainer => &["APPTAINER_", "SINGULARITY_"],
            Flavour::SingularityCe => &["SINGULARITY_"],
        }
    }

    /// Prefixes of the flag variables the runtime reads (`APPTAINER_CLEANENV`…).
    fn flag_variable_prefixes(self) -> &'static [&'static str] {
        match self {
            Flavour::Apptainer => &["APPTAINER_", "SINGULARITY_"],
            Flavour::SingularityCe => &["SINGULARITY_"],
        }
    }

    /// `(NAME, CONTAINER)` variable names the runtime sets.
    fn identity_variables(self) -> &'static [(&'static str, &'static str)] {
        match self {
            Flavour::Apptainer => &[
                ("APPTAINER_NAME", "APPTAINER_CONTAINER"),
                ("SINGULARITY_NAME", "SINGULARITY_CONTAINER"),
            ],
            Flavour::SingularityCe => &[("SINGULARITY_NAME", "SINGULARITY_CONTAINER")],
        }
    }

    /// Variables `clear_env` keeps visible to the env scripts.
    fn kept_while_scripts_run(self) -> &'static [&'static str] {
        match self {
            Flavour::Apptainer => &["PWD", "HOME", "APPTAINER_NAME", "APPTAINER_CONTAINER"],
            Flavour::SingularityCe => &["PWD", "HOME", "SINGULARITY_NAME", "SINGULARITY_CONTAINER"],
        }
    }

    /// The prompt the action script forces when `PS1` is empty.
    pub fn prompt(self) -> &'static str {
        match self {
            Flavour::Apptainer => "Apptainer> ",
            Flavour::SingularityCe => "Singularity> ",
        }
    }

    /// `APPTAINER_CLEANENV=1` and friends: a flag turned on from the
    /// environment (`action_flags.go`, `pkg/cmdline/flag.go`; Go `ParseBool`).
    pub fn flag_from_env(self, host: &[(OsString, OsString)], flag: &str) -> bool {
        self.flag_variable_prefixes().iter().any(|prefix| {
            let name = format!("{prefix}{flag}");
            host.iter()
                .find(|(k, _)| k.as_bytes() == name.as_bytes())
                .is_some_and(|(_, v)| matches!(v.as_bytes(), b"1" | b"t" | b"T" | b"true" | b"TRUE" | b"True"))
        })
    }
}

/// What the CLI side hands to the action script.
#[derive(Debug, Default)]
pub struct Handoff {
    /// Plain variables of the process (step 1): restored after the scripts.
    pub exported: Vec<(OsString, OsString)>,
    /// `KEY -> VALUE` to inject, `PREPEND_PATH` etc. already renamed.
    pub injected: BTreeMap<OsString, OsString>,
}

impl Handoff {
    /// The variables the env scripts run with: all but these are hidden
    /// by `clear_env`.
    pub fn visible_to_scripts(&self, flavour: Flavour) -> Vec<(OsString, OsString)> {
        self.exported
            .iter()
            .filter(|(k, _)| {
                flavour
                    .kept_while_scripts_run()
                    .iter()
                    .any(|n| n.as_bytes() == k.as_bytes())
            })
            .cloned()
            .collect()
    }

    /// `/.inject-apptainer-env.sh` as the injector writes it
    /// (`process_linux.go` `injectEnvHandler`): `export K="V"` with only `"`
    /// escaped (`shell.EscapeDoubleQuotes`), or single-quoted with `--no-eval`.
    pub fn injection_script(&self, no_eval: bool) -> Vec<u8> {
        let mut script = Vec::new();
        script.extend_from_slice(
            format!("if [ -z \"${{PATH+x}}\" ]; then export PATH=\"{DEFAULT_PATH}\"; fi\n").as_bytes(),
        );
        for (key, value) in &self.injected {
            if key == "UID" || key == "GID" {
                continue;
            }
            let mut value = value.as_bytes().to_vec();
            if key == "LD_LIBRARY_PATH" && !value.is_empty() {
                value.extend_from_slice(b":");
                value.extend_from_slice(CONTAINER_LIBS.as_bytes());
            }
            script.extend_from_slice(b"export ");
            script.extend_from_slice(key.as_bytes());
            script.extend_from_slice(b"=");
            if no_eval {
                script.push(b'\'');
                for &b in &value {
                    if b == b'\'' {
                        script.extend_from_slice(b"'\"'\"'");
                    } else {
                        script.push(b);
                    }
                }
                script.push(b'\'');
            } else {
                script.push(b'"');
                for &b in &value {
                    if b == b'"' {
                        script.push(b'\\');
                    }
                    script.push(b);
                }
                script.push(b'"');
            }
            script.push(b'\n');
        }
        script
    }

    /// `restore_env`: each exported variable the scripts left unset comes
    /// back; one they set empty is removed. Container values win.
    pub fn restore(&self, mut after_scripts: BTreeMap<OsString, OsString>) -> BTreeMap<OsString, OsString> {
        for (key, value) in &self.exported {
            match after_scripts.get(key) {
                None => {
                    after_scripts.insert(key.clone(), value.clone());
                }
                Some(v) if v.is_empty() => {
                    after_scripts.remove(key);
                }
                Some(_) => {}
            }
        }
        after_scripts
    }
}

/// Step 1: what the CLI hands on, from the host environment.
pub fn handoff(host: &[(OsString, OsString)], flavour: Flavour, image: &Path, home: &Path, cleanenv: bool) -> Handoff {
    let mut plain = BTreeMap::new();
    // Per prefix, in priority order, the variables it asks to set.
    let mut requested: Vec<BTreeMap<OsString, OsString>> = vec![BTreeMap::new(); flavour.prefixes().len()];
    for (name, value) in host {
        let bytes = name.as_bytes();
        if let Some(rank) = flavour.prefixes().iter().position(|p| bytes.starts_with(p.as_bytes())) {
            let stripped = &bytes[flavour.prefixes()[rank].len()..];
            if !stripped.is_empty() {
                requested[rank].insert(OsString::from_vec(stripped.to_vec()), value.clone());
            }
            continue;
        }
        if flavour
            .own_variable_prefixes()
            .iter()
            .any(|p| bytes.starts_with(p.as_bytes()))
        {
            continue;
        }
        if matches!(bytes, b"PATH" | b"LD_LIBRARY_PATH" | b"HOME") {
            continue;
        }
        if cleanenv && !(bytes == b"TERM" || bytes.to_ascii_lowercase().ends_with(b"_proxy")) {
            continue;
        }
        plain.insert(name.clone(), value.clone());
    }
    if cleanenv {
        plain.insert("LANG".into(), "C".into());
    }
    plain.insert("PATH".into(), DEFAULT_PATH.into());
    plain.insert("HOME".into(), home.as_os_str().to_owned());
    let name = image.file_name().unwrap_or(image.as_os_str());
    for (name_var, container_var) in flavour.identity_variables() {
        plain.insert((*name_var).into(), name.to_owned());
        plain.insert((*container_var).into(), image.as_os_str().to_owned());
    }
    if flavour == Flavour::Apptainer {
        plain.insert("APPTAINER_COMMAND".into(), "exec".into());
    }

    let mut injected: BTreeMap<OsString, OsString> = BTreeMap::new();
    for layer in requested {
        injected.extend(layer);
    }
    // create.go:75-80: the three PATH variables go through runtime_vars.sh.
    for (from, to) in [
        ("PREPEND_PATH", "SING_USER_DEFINED_PREPEND_PATH"),
        ("APPEND_PATH", "SING_USER_DEFINED_APPEND_PATH"),
        ("PATH", "SING_USER_DEFINED_PATH"),
    ] {
        if let Some(value) = injected.remove(OsStr::new(from)) {
            injected.insert(to.into(), value);
        }
    }
    // HOME cannot be injected over the account's home (create.go:35-43).
    injected.remove(OsStr::new("HOME"));
    Handoff {
        exported: plain.into_iter().collect(),
        injected,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(vars: &[(&str, &str)]) -> Vec<(OsString, OsString)> {
        vars.iter()
            .map(|(k, v)| (OsString::from(k), OsString::from(v)))
            .collect()
    }

    fn get<'a>(list: &'a [(OsString, OsString)], key: &str) -> Option<&'a str> {
        list.iter().find(|(k, _)| k == key).map(|(_, v)| v.to_str().unwrap())
    }

    #[test]
    fn create_go_splits_prefixed_plain_and_runtime_variables() {
        let handoff = handoff(
            &host(&[
                ("PATH", "/host/bin"),
                ("LD_LIBRARY_PATH", "/host/lib"),
                ("HOME", "/not/the/account/home"),
                ("KEEP", "1"),
                ("APPTAINER_BIND", "/x"),
                ("SINGULARITY_SHELL", "/bin/zsh"),
                ("APPTAINERENV_PREPEND_PATH", "/env/bin"),
                ("APPTAINERENV_FOO", "a"),
                ("SINGULARITYENV_FOO", "s"),
                ("SINGULARITYENV_BAR", "b"),
                ("APPTAINERENV_HOME", "/evil"),
            ]),
            Flavour::Apptainer,
            Path::new("/images/base"),
            Path::new("/root"),
            false,
        );
        let exported = &handoff.exported;
        assert_eq!(get(exported, "PATH"), Some(DEFAULT_PATH));
        assert_eq!(
            get(exported, "HOME"),
            Some("/root"),
            "create.go: HOME is the account's home"
        );
        assert_eq!(get(exported, "LD_LIBRARY_PATH"), None);
        assert_eq!(get(exported, "KEEP"), Some("1"));
        assert_eq!(get(exported, "APPTAINER_BIND"), None, "create.go:147-153");
        assert_eq!(get(exported, "SINGULARITY_SHELL"), None);
        assert_eq!(get(exported, "APPTAINER_CONTAINER"), Some("/images/base"));
        assert_eq!(get(exported, "SINGULARITY_NAME"), Some("base"));
        let injected = &handoff.injected;
        assert_eq!(injected.get(OsStr::new("FOO")).unwrap(), "a", "APPTAINERENV_ wins");
        assert_eq!(injected.get(OsStr::new("BAR")).unwrap(), "b");
        assert_eq!(
            injected.get(OsStr::new("SING_USER_DEFINED_PREPEND_PATH")).unwrap(),
            "/env/bin"
        );
        assert!(!injected.contains_key(OsStr::new("HOME")));
    }

    #[test]
    fn create_go_cleanenv_keeps_term_and_proxies_only() {
        let handoff = handoff(
            &host(&[
                ("TERM", "xterm"),
                ("https_proxy", "p"),
                ("USER", "u"),
                ("SINGULARITYENV_X", "x"),
            ]),
            Flavour::SingularityCe,
            Path::new("/b"),
            Path::new("/root"),
            true,
        );
        assert_eq!(get(&handoff.exported, "TERM"), Some("xterm"));
        assert_eq!(get(&handoff.exported, "https_proxy"), Some("p"));
        assert_eq!(get(&handoff.exported, "USER"), None);
        assert_eq!(get(&handoff.exported, "LANG"), Some("C"));
        assert_eq!(
            handoff.injected.get(OsStr::new("X")).unwrap(),
            "x",
            "--env survives --cleanenv"
        );
    }

    #[test]
    fn process_linux_go_injection_escapes_only_double_quotes() {
        let mut handoff = Handoff::default();
        handoff.injected.insert("A".into(), "say \"$HOME\" `x` \\".into());
        handoff.injected.insert("LD_LIBRARY_PATH".into(), "/l".into());
        let script = String::from_utf8(handoff.injection_script(false)).unwrap();
        assert!(script.contains("export A=\"say \\\"$HOME\\\" `x` \\\"\n"), "{script}");
        assert!(
            script.contains("export LD_LIBRARY_PATH=\"/l:/.singularity.d/libs\"\n"),
            "{script}"
        );
        let script = String::from_utf8(handoff.injection_script(true)).unwrap();
        assert!(script.contains("export A='say \"$HOME\" `x` \\'\n"), "{script}");
    }

    #[test]
    fn action_script_restore_env_container_value_wins() {
        let handoff = Handoff {
            exported: host(&[("KEEP", "host"), ("ONLY_HOST", "h"), ("EMPTIED", "h")]),
            injected: BTreeMap::new(),
        };
        let after: BTreeMap<OsString, OsString> = [("KEEP", "container"), ("EMPTIED", "")]
            .iter()
            .map(|(k, v)| (OsString::from(k), OsString::from(v)))
            .collect();
        let env = handoff.restore(after);
        assert_eq!(env.get(OsStr::new("KEEP")).unwrap(), "container");
        assert_eq!(env.get(OsStr::new("ONLY_HOST")).unwrap(), "h");
        assert!(!env.contains_key(OsStr::new("EMPTIED")));
    }
}
