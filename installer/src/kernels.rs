//! `installer kernels [--env NAME…] DIR` (issue 11): one Jupyter kernelspec
//! per env and per alias of the scripts tree, so that any Jupyter outside the
//! container starts a kernel in each env through the launcher, with only
//! that env's image mounted (no `overlays = "all"`).
//!
//! `DIR/<name>/kernel.json`, `<name>` being the env or alias name in the
//! kernel-name alphabet (lower case; `+` becomes `_`):
//!
//! ```json
//! {
//!   "argv": ["<scripts>/<name>.d/bin/python3", "-m", "ipykernel_launcher", "-f", "{connection_file}"],
//!   "display_name": "Python 3 (analysis3-22.10)",
//!   "language": "python",
//!   "env": { …the env's activation variables, from <env>.d/env.toml… },
//!   "metadata": { "launcher_scripts": "<scripts>", "launcher_env": "…", "launcher_alias": "…" }
//! }
//! ```
//!
//! An alias's kernel runs `<alias>.d/bin/python3`, so it follows the alias
//! when it moves; its display name and variables name the env it points at
//! now, which is why `deploy`, `rollback` and `alias` rewrite the kernels
//! directory they are given (`--kernels DIR`). Only envs whose farm has
//! `python3` and whose image has `ipykernel` get a kernel (a kernelspec
//! that cannot start helps nobody). Each file is replaced atomically and
//! left alone when already right. A kernel this scripts tree wrote (its
//! `launcher_scripts`) whose env or alias is gone is removed when the whole
//! tree is written (no `--env`); a kernel of the same name that something
//! else wrote is never touched (a warning says so).

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use launcher::config::{EnvFacts, ENV_FILE_NAME};

use crate::error::{InstallError, Result};
use crate::image::{EntryKind, EnvImage};
use crate::site::{valid_env_name, Site};
use crate::swap::{self, install_file, Live};
use crate::ui::Ui;

/// The file Jupyter reads in each kernel directory.
pub const KERNEL_FILE: &str = "kernel.json";
/// The interpreter a kernel runs, in `<name>.d/bin`.
pub const KERNEL_PYTHON: &str = "python3";
/// The metadata key naming the scripts tree that wrote a kernel.
const OWNER_KEY: &str = "launcher_scripts";

/// `installer kernels`.
#[derive(clap::Args, Debug)]
pub struct KernelsArgs {
    /// The kernels directory (e.g. /g/data/…/share/jupyter/kernels, or
    /// ~/.local/share/jupyter/kernels): one <name>/kernel.json per env and alias.
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
    /// Only these envs or aliases (default: every one of the scripts tree,
    /// and kernels of envs that are gone are removed).
    #[arg(long = "env", value_name = "NAME")]
    pub envs: Vec<String>,
    /// Fail (exit 6) instead of waiting when another run holds the lock.
    #[arg(long)]
    pub no_wait: bool,
    /// Print each change instead of making it.
    #[arg(long)]
    pub dry_run: bool,
}

/// One kernelspec to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kernel {
    /// The kernel's directory name.
    pub name: String,
    /// The env it runs in.
    pub env: String,
    /// The alias it goes through, if any.
    pub alias: Option<String>,
    /// `kernel.json`.
    pub json: String,
}

/// `installer kernels DIR`: under the scripts lock, like every writer.
pub fn run(site: &Site, args: &KernelsArgs, ui: &Ui) -> Result<()> {
    let dir = crate::site::absolute(&args.dir)?;
    let only = (!args.envs.is_empty()).then_some(args.envs.as_slice());
    if args.dry_run {
        write(site, &dir, only, true, ui)?;
        return Ok(());
    }
    crate::farm::ensure_scripts_dir(&site.scripts)?;
    let _lock = crate::lock::acquire(&site.scripts, !args.no_wait, |msg| {
        crate::output::err_line(&format!("installer: {msg}"))
    })?;
    write(site, &dir, only, false, ui)?;
    Ok(())
}

/// Bring `dir` up to date with the scripts tree (the caller holds the
/// lock): every env and alias, or only those named in `only`. True when
/// anything changed.
pub fn write(site: &Site, dir: &Path, only: Option<&[String]>, dry_run: bool, ui: &Ui) -> Result<bool> {
    let kernels = plan(site, only, ui)?;
    let mut changed = false;
    if !dry_run {
        swap::create_dirs(dir).map_err(|e| InstallError::io(dir, e))?;
    }
    for kernel in &kernels {
        let path = dir.join(&kernel.name).join(KERNEL_FILE);
        if let Ok(old) = fs::read_to_string(&path) {
            if old == kernel.json {
                continue;
            }
            if owner(&old).as_deref() != Some(site.scripts.as_path()) {
                ui.warn(format!(
                    "{} was not written for {}: left alone, no kernel for {}",
                    path.display(),
                    site.scripts.display(),
                    kernel.alias.as_deref().unwrap_or(&kernel.env)
                ));
                continue;
            }
        } else if path.exists() {
            return Err(InstallError::Io {
                path,
                reason: "exists but cannot be read".into(),
            });
        }
        if dry_run {
            ui.info(format!("would write {}", path.display()));
            continue;
        }
        let kernel_dir = dir.join(&kernel.name);
        swap::create_dirs(&kernel_dir).map_err(|e| InstallError::io(&kernel_dir, e))?;
        if install_file(&path, kernel.json.as_bytes(), 0o644)? {
            ui.info(format!("wrote {}", path.display()));
            changed = true;
        }
    }
    if only.is_none() {
        changed |= remove_stale(site, dir, &kernels, dry_run, ui)?;
    }
    if !changed && !dry_run {
        ui.info(format!("{}: kernels unchanged", dir.display()));
    }
    Ok(changed)
}

/// The kernels the scripts tree calls for, sorted by name.
pub fn plan(site: &Site, only: Option<&[String]>, ui: &Ui) -> Result<Vec<Kernel>> {
    let found = envs_and_aliases(site)?;
    if let Some(names) = only {
        for name in names {
            crate::site::check_env_name(name)?;
            if !found.contains_key(name) {
                return Err(InstallError::Usage(format!(
                    "no env or alias '{name}' in {} (deploy it first)",
                    site.scripts.display()
                )));
            }
        }
    }
    let mut kernels = Vec::new();
    let mut has_ipykernel: BTreeMap<String, bool> = BTreeMap::new();
    for (name, alias_of) in &found {
        if only.is_some_and(|names| !names.contains(name)) {
            continue;
        }
        let env = alias_of.as_deref().unwrap_or(name);
        let python = site.env_dir(name).join("bin").join(KERNEL_PYTHON);
        if fs::symlink_metadata(&python).is_err() {
            ui.info(format!(
                "{name}: no {KERNEL_PYTHON} in {}: no kernel",
                python.parent().unwrap_or(&python).display()
            ));
            continue;
        }
        let ok = match has_ipykernel.get(env) {
            Some(ok) => *ok,
            None => {
                let ok = image_has_ipykernel(site, env)?;
                has_ipykernel.insert(env.to_string(), ok);
                ok
            }
        };
        if !ok {
            ui.info(format!("{name}: the image of {env} has no ipykernel: no kernel"));
            continue;
        }
        let facts = env_facts(site, env)?;
        let alias = alias_of.as_ref().map(|_| name.clone());
        let json = kernel_json(&site.scripts, &python, env, alias.as_deref(), &facts)?;
        kernels.push(Kernel {
            name: kernel_name(name),
            env: env.to_string(),
            alias,
            json,
        });
    }
    kernels.sort_by(|a, b| a.name.cmp(&b.name));
    for pair in kernels.windows(2) {
        if pair[0].name == pair[1].name {
            return Err(InstallError::Usage(format!(
                "'{}' and '{}' make the same kernel name '{}'",
                pair[0].alias.as_deref().unwrap_or(&pair[0].env),
                pair[1].alias.as_deref().unwrap_or(&pair[1].env),
                pair[0].name
            )));
        }
    }
    Ok(kernels)
}

/// Every `<name>.d` of the scripts tree: an env (`None`) or an alias
/// (`Some(env)`).
fn envs_and_aliases(site: &Site) -> Result<BTreeMap<String, Option<String>>> {
    let mut found = BTreeMap::new();
    let entries = match fs::read_dir(&site.scripts) {
        Ok(entries) => entries,
        Err(e) => return Err(InstallError::io(&site.scripts, e)),
    };
    for entry in entries.flatten() {
        let file_name = entry.file_name();
        let Some(name) = file_name.to_str().and_then(|n| n.strip_suffix(".d")) else {
            continue;
        };
        if !valid_env_name(name) {
            continue;
        }
        match swap::inspect(&site.scripts, name).map_err(|e| InstallError::io(&entry.path(), e))? {
            Live::Dir | Live::Versioned(_) => {
                found.insert(name.to_string(), None);
            }
            Live::Alias(target) => {
                let target = target.to_string_lossy();
                if let Some(env) = target.strip_suffix(".d").filter(|t| valid_env_name(t)) {
                    found.insert(name.to_string(), Some(env.to_string()));
                }
            }
            Live::Absent | Live::Foreign => {}
        }
    }
    Ok(found)
}

/// Whether the env's image has `ipykernel` in one of its site dirs
/// (`lib/python3.X/site-packages`, Debian's `lib/python3/dist-packages`,
/// `lib/python3.X/dist-packages`).
fn image_has_ipykernel(site: &Site, env: &str) -> Result<bool> {
    let image = EnvImage::open(&site.image_path(env)?)?;
    let lib = site.config.container.prefix.join(env).join("lib");
    let Some(entries) = image.list_dir(&lib) else {
        return Ok(false);
    };
    for entry in entries {
        let name = entry.name.to_string_lossy();
        if !name.starts_with("python3") {
            continue;
        }
        for site_dir in ["site-packages", "dist-packages"] {
            let package = lib.join(&*name).join(site_dir).join("ipykernel");
            if image.kind_of(&package) == Some(EntryKind::Dir) {
                return Ok(true);
            }
        }
    }
    Ok(false)
}

/// `<env>.d/env.toml` (written by `farm`); none: no variables.
fn env_facts(site: &Site, env: &str) -> Result<EnvFacts> {
    let path = site.env_dir(env).join(ENV_FILE_NAME);
    match crate::site::read_config(&path) {
        Ok(bytes) => EnvFacts::parse(&bytes, &path).map_err(|e| InstallError::Config(e.to_string())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(EnvFacts::default()),
        Err(e) => Err(InstallError::io(&path, e)),
    }
}

/// The kernel directory name of an env or alias: Jupyter's kernel names
/// are `[a-z0-9._-]` (it lower-cases them).
pub fn kernel_name(name: &str) -> String {
    name.chars()
        .map(|c| match c.to_ascii_lowercase() {
            c @ ('a'..='z' | '0'..='9' | '.' | '_' | '-') => c,
            _ => '_',
        })
        .collect()
}

/// The display name Jupyter shows.
pub fn display_name(env: &str, alias: Option<&str>) -> String {
    match alias {
        Some(alias) => format!("Python 3 ({alias}, now {env})"),
        None => format!("Python 3 ({env})"),
    }
}

/// `kernel.json` text.
pub fn kernel_json(scripts: &Path, python: &Path, env: &str, alias: Option<&str>, facts: &EnvFacts) -> Result<String> {
    let text = |p: &Path| {
        p.to_str().map(str::to_owned).ok_or_else(|| {
            InstallError::Usage(format!(
                "{} is not UTF-8: Jupyter's kernel.json cannot name it",
                p.display()
            ))
        })
    };
    let argv = [
        text(python)?,
        "-m".into(),
        "ipykernel_launcher".into(),
        "-f".into(),
        "{connection_file}".into(),
    ];
    let mut out = String::from("{\n  \"argv\": [\n");
    out.push_str(
        &argv
            .iter()
            .map(|a| format!("    {}", json_string(a)))
            .collect::<Vec<_>>()
            .join(",\n"),
    );
    out.push_str("\n  ],\n");
    out.push_str(&format!(
        "  \"display_name\": {},\n",
        json_string(&display_name(env, alias))
    ));
    out.push_str("  \"language\": \"python\",\n");
    out.push_str("  \"interrupt_mode\": \"signal\",\n");
    if facts.env.is_empty() {
        out.push_str("  \"env\": {},\n");
    } else {
        let vars: Vec<String> = facts
            .env
            .iter()
            .map(|(k, v)| format!("    {}: {}", json_string(k), json_string(v)))
            .collect();
        out.push_str(&format!("  \"env\": {{\n{}\n  }},\n", vars.join(",\n")));
    }
    let mut metadata = vec![(OWNER_KEY, text(scripts)?), ("launcher_env", env.to_string())];
    if let Some(alias) = alias {
        metadata.push(("launcher_alias", alias.to_string()));
    }
    let metadata: Vec<String> = metadata
        .iter()
        .map(|(k, v)| format!("    {}: {}", json_string(k), json_string(v)))
        .collect();
    out.push_str(&format!("  \"metadata\": {{\n{}\n  }}\n}}\n", metadata.join(",\n")));
    Ok(out)
}

/// A JSON string literal.
pub fn json_string(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The scripts tree a `kernel.json` names as its writer, if it is one of
/// ours (the line `"launcher_scripts": "…"` as `kernel_json` writes it).
fn owner(text: &str) -> Option<PathBuf> {
    let prefix = format!("{}: ", json_string(OWNER_KEY));
    let value = text.lines().find_map(|l| l.trim().strip_prefix(prefix.as_str()))?;
    let value = value.trim_end_matches(',');
    json_unquote(value).map(PathBuf::from)
}

/// The value of a JSON string literal (the escapes `json_string` writes).
fn json_unquote(literal: &str) -> Option<String> {
    let inner = literal.strip_prefix('"')?.strip_suffix('"')?;
    let mut out = String::new();
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next()? {
            'n' => out.push('\n'),
            'r' => out.push('\r'),
            't' => out.push('\t'),
            'u' => {
                let hex: String = chars.by_ref().take(4).collect();
                out.push(char::from_u32(u32::from_str_radix(&hex, 16).ok()?)?);
            }
            other => out.push(other),
        }
    }
    Some(out)
}

/// Remove the kernels this scripts tree wrote whose env or alias is gone.
fn remove_stale(site: &Site, dir: &Path, kernels: &[Kernel], dry_run: bool, ui: &Ui) -> Result<bool> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Ok(false);
    };
    let mut changed = false;
    let mut names: Vec<_> = entries.flatten().map(|e| e.file_name()).collect();
    names.sort();
    for name in names {
        if kernels.iter().any(|k| *k.name == *name) {
            continue;
        }
        let kernel_dir = dir.join(&name);
        let file = kernel_dir.join(KERNEL_FILE);
        let Ok(text) = fs::read_to_string(&file) else { continue };
        if owner(&text).as_deref() != Some(site.scripts.as_path()) {
            continue;
        }
        if dry_run {
            ui.info(format!("would remove {}", kernel_dir.display()));
            continue;
        }
        fs::remove_file(&file).map_err(|e| InstallError::io(&file, e))?;
        // Only the directory we made: a file someone put beside it stays.
        if fs::remove_dir(&kernel_dir).is_err() {
            ui.warn(format!(
                "removed {} but kept {}: it holds other files",
                file.display(),
                kernel_dir.display()
            ));
        }
        swap::sync_dir(dir)?;
        ui.info(format!("removed {}", kernel_dir.display()));
        changed = true;
    }
    Ok(changed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_names_are_in_jupyters_alphabet() {
        assert_eq!(kernel_name("analysis3-22.10"), "analysis3-22.10");
        assert_eq!(kernel_name("Analysis3_X+1"), "analysis3_x_1");
    }

    #[test]
    fn kernel_json_runs_the_scripts_python_with_the_activation_variables() {
        let facts = EnvFacts {
            env: BTreeMap::from([
                ("CONDA_PREFIX".into(), "/opt/conda/e-1".into()),
                ("QUOTED".into(), "a \"b\" \\ c\n".into()),
            ]),
            not_captured: vec![],
        };
        let json = kernel_json(
            Path::new("/s"),
            Path::new("/s/a.d/bin/python3"),
            "e-1",
            Some("a"),
            &facts,
        )
        .unwrap();
        assert_eq!(
            json,
            r#"{
  "argv": [
    "/s/a.d/bin/python3",
    "-m",
    "ipykernel_launcher",
    "-f",
    "{connection_file}"
  ],
  "display_name": "Python 3 (a, now e-1)",
  "language": "python",
  "interrupt_mode": "signal",
  "env": {
    "CONDA_PREFIX": "/opt/conda/e-1",
    "QUOTED": "a \"b\" \\ c\n"
  },
  "metadata": {
    "launcher_scripts": "/s",
    "launcher_env": "e-1",
    "launcher_alias": "a"
  }
}
"#
        );
        assert_eq!(owner(&json).as_deref(), Some(Path::new("/s")));
        assert_eq!(owner("{\"launcher_scripts\": 1}"), None);
    }

    #[test]
    fn json_strings_round_trip() {
        for value in ["plain", "a \"q\" \\ \n\t\u{1}", "é ü"] {
            assert_eq!(json_unquote(&json_string(value)).as_deref(), Some(value));
        }
    }
}
