//! Modulefiles (I8): one Tcl modulefile per env, `<modules_dir>/<env>`,
//! that both Environment Modules and Lmod read, and `<modules_dir>/.modulerc`
//! mapping the aliases of the scripts tree (`<scripts>/X.d -> Y.d`, I9) to
//! module versions, so `module load conda/analysis3` loads
//! `conda/analysis3-22.10`.
//!
//! The modulefile puts `<scripts>/<env>.d/bin` first on `PATH`, the env's
//! image first on `CONTAINER_OVERLAY_PATH` (L11), and sets the activation
//! variables of `<env>.d/env.toml` (I7): it is generated from that file,
//! so the farm must exist first. The aliases come from the scripts tree,
//! the one place they are recorded. Both files are replaced atomically
//! (temporary name, rename), and left alone when already right.

use std::fs;
use std::path::{Path, PathBuf};

use launcher::config::{EnvFacts, ENV_FILE_NAME};

use crate::error::{InstallError, Result};
use crate::site::Site;
use crate::swap::{self, install_file, Live};
use crate::ui::Ui;

/// The alias file in the modules directory.
pub const MODULERC: &str = ".modulerc";

/// The modules directory: `--modules DIR`, else `modules_dir` of the config.
pub fn dir(site: &Site, cli: Option<&Path>) -> Option<PathBuf> {
    cli.map(Path::to_path_buf).or_else(|| site.config.modules_dir.clone())
}

/// The module family: the last component of the modules directory
/// (`.../modules/conda` gives `conda`, loaded as `conda/<env>`).
pub fn family(modules_dir: &Path) -> String {
    modules_dir
        .file_name()
        .map_or_else(|| "conda".to_string(), |n| n.to_string_lossy().into_owned())
}

/// Write `<modules_dir>/<env>` and `<modules_dir>/.modulerc`; true when
/// anything changed.
pub fn write(site: &Site, env: &str, modules_dir: &Path, dry_run: bool, ui: &Ui) -> Result<bool> {
    let facts_path = site.env_dir(env).join(ENV_FILE_NAME);
    let bytes = fs::read(&facts_path).map_err(|e| InstallError::Io {
        path: facts_path.clone(),
        reason: format!(
            "{}; build the farm first (installer farm {env})",
            crate::error::io_reason(&e)
        ),
    })?;
    let facts = EnvFacts::parse(&bytes, &facts_path).map_err(|e| InstallError::Config(e.to_string()))?;
    let image = site.image_path(env)?;
    let modulefile = modulefile_text(
        &family(modules_dir),
        env,
        &site.env_dir(env).join("bin"),
        &image,
        &facts,
    );
    let modulerc = modulerc_text(&family(modules_dir), &aliases(site));
    let files = [
        (modules_dir.join(env), modulefile),
        (modules_dir.join(MODULERC), modulerc),
    ];
    if dry_run {
        for (path, text) in &files {
            if fs::read(path).map_or(true, |old| old != text.as_bytes()) {
                ui.info(format!("would write {}", path.display()));
            }
        }
        return Ok(false);
    }
    crate::swap::create_dirs(modules_dir).map_err(|e| InstallError::io(modules_dir, e))?;
    let mut changed = false;
    for (path, text) in &files {
        if install_file(path, text.as_bytes(), 0o644)? {
            ui.info(format!("wrote {}", path.display()));
            changed = true;
        }
    }
    if !changed {
        ui.info(format!("{}: modulefile unchanged", env));
    }
    Ok(changed)
}

/// Rewrite only `.modulerc` (after an alias moved); true when it changed.
pub fn write_modulerc(site: &Site, modules_dir: &Path, ui: &Ui) -> Result<bool> {
    crate::swap::create_dirs(modules_dir).map_err(|e| InstallError::io(modules_dir, e))?;
    let path = modules_dir.join(MODULERC);
    let changed = install_file(
        &path,
        modulerc_text(&family(modules_dir), &aliases(site)).as_bytes(),
        0o644,
    )?;
    if changed {
        ui.info(format!("wrote {}", path.display()));
    }
    Ok(changed)
}

/// Every alias of the scripts tree: (alias, env), sorted by alias.
pub fn aliases(site: &Site) -> Vec<(String, String)> {
    let mut found = Vec::new();
    let Ok(entries) = fs::read_dir(&site.scripts) else {
        return found;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(alias) = name.strip_suffix(".d") else { continue };
        if let Ok(Live::Alias(target)) = swap::inspect(&site.scripts, alias) {
            let target = target.to_string_lossy();
            if let Some(env) = target.strip_suffix(".d").filter(|t| !t.contains('/')) {
                found.push((alias.to_string(), env.to_string()));
            }
        }
    }
    found.sort();
    found
}

/// The Tcl modulefile of `env`.
pub fn modulefile_text(family: &str, env: &str, bin: &Path, image: &Path, facts: &EnvFacts) -> String {
    let mut text = format!(
        "#%Module1.0\n\
         ## {family}/{env}: written by the installer (deploy, rollback, module); do not edit.\n\
         module-whatis {}\n\
         prepend-path PATH {}\n\
         prepend-path CONTAINER_OVERLAY_PATH {}\n",
        tcl_word(&format!(
            "conda environment {env}, run from its squashfs image through the launcher"
        )),
        tcl_word(&bin.to_string_lossy()),
        tcl_word(&image.to_string_lossy()),
    );
    for (name, value) in &facts.env {
        text.push_str(&format!("setenv {name} {}\n", tcl_word(value)));
    }
    for script in &facts.not_captured {
        text.push_str(&format!(
            "## not captured (computes its values): {}\n",
            script.replace('\n', " ")
        ));
    }
    text
}

/// `.modulerc`: one `module-version` per alias.
pub fn modulerc_text(family: &str, aliases: &[(String, String)]) -> String {
    let mut text = format!(
        "#%Module1.0\n## Aliases of {family}/*: written by the installer (alias, deploy, module); do not edit.\n"
    );
    for (alias, env) in aliases {
        text.push_str(&format!(
            "module-version {} {}\n",
            tcl_word(&format!("{family}/{env}")),
            tcl_word(alias)
        ));
    }
    text
}

/// One Tcl word: bare when it is plain, else double-quoted with `\`, `"`,
/// `$`, `[`, `]` escaped (nothing is substituted).
pub fn tcl_word(value: &str) -> String {
    let plain = !value.is_empty()
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_./:,+=@%-".contains(c));
    if plain {
        return value.to_string();
    }
    let mut out = String::from("\"");
    for c in value.chars() {
        match c {
            '\\' | '"' | '$' | '[' | ']' | '{' | '}' => {
                out.push('\\');
                out.push(c);
            }
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn tcl_words_are_bare_or_escaped() {
        assert_eq!(tcl_word("/opt/conda/e-1.0"), "/opt/conda/e-1.0");
        assert_eq!(tcl_word("a b"), "\"a b\"");
        assert_eq!(tcl_word("$x [y] \"z\" \\"), "\"\\$x \\[y\\] \\\"z\\\" \\\\\"");
        assert_eq!(tcl_word(""), "\"\"");
    }

    #[test]
    fn modulefile_sets_path_overlay_and_activation() {
        let facts = EnvFacts {
            env: BTreeMap::from([
                ("CONDA_PREFIX".into(), "/opt/conda/e".into()),
                ("X".into(), "a b".into()),
            ]),
            not_captured: vec!["etc/conda/activate.d/x.sh".into()],
        };
        let text = modulefile_text("conda", "e", Path::new("/s/e.d/bin"), Path::new("/v/e.sqsh"), &facts);
        assert!(text.starts_with("#%Module1.0\n"));
        for line in [
            "prepend-path PATH /s/e.d/bin",
            "prepend-path CONTAINER_OVERLAY_PATH /v/e.sqsh",
            "setenv CONDA_PREFIX /opt/conda/e",
            "setenv X \"a b\"",
            "## not captured (computes its values): etc/conda/activate.d/x.sh",
        ] {
            assert!(text.lines().any(|l| l == line), "{line:?} missing in\n{text}");
        }
    }

    #[test]
    fn modulerc_maps_aliases_to_versions() {
        let text = modulerc_text("conda", &[("a".into(), "a-1".into())]);
        assert!(text.lines().any(|l| l == "module-version conda/a-1 a"), "{text}");
    }
}
