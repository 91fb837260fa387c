//! `installer alias NAME TARGET` (I9): points the alias `NAME` (e.g.
//! `analysis3`, `analysis3-unstable`) at the env `TARGET`:
//! `<scripts>/NAME.d -> TARGET.d`, `<envs>/NAME -> TARGET`, and the module
//! alias in `.modulerc`. Each link is replaced in one step (a new symlink
//! at a temporary name renamed over the old one), so a user resolving
//! `NAME.d/bin/python3` at any instant finds the old or the new env, never
//! nothing. `--remove NAME` retires an alias.

use std::fs;
use std::path::{Path, PathBuf};

use crate::deploy::replace_symlink;
use crate::error::{InstallError, Result};
use crate::lock;
use crate::modulefile;
use crate::site::{check_env_name, Site};
use crate::swap::{self, sync_dir, Live};
use crate::ui::Ui;

#[derive(Debug, Clone)]
pub struct AliasOptions {
    pub name: String,
    /// `None`: remove the alias.
    pub target: Option<String>,
    pub modules: Option<PathBuf>,
    /// The Jupyter kernels directory to keep current (`--kernels`).
    pub kernels: Option<PathBuf>,
    pub wait: bool,
    pub dry_run: bool,
}

pub fn run(site: &Site, opts: &AliasOptions, ui: &Ui) -> Result<()> {
    let name = &opts.name;
    for n in std::iter::once(name).chain(opts.target.as_ref()) {
        check_env_name(n)?;
    }
    let envs = site.envs_dir()?.to_path_buf();
    let scripts_link = site.env_dir(name);
    let envs_link = envs.join(name);
    match swap::inspect(&site.scripts, name).map_err(|e| InstallError::io(&scripts_link, e))? {
        Live::Absent | Live::Alias(_) => {}
        Live::Dir | Live::Versioned(_) => {
            return Err(InstallError::Usage(format!(
                "{} is the tree of environment '{name}', not an alias",
                scripts_link.display()
            )))
        }
        Live::Foreign => {
            return Err(InstallError::Io {
                path: scripts_link,
                reason: "exists and is not a link the installer made; move it away".into(),
            })
        }
    }
    if fs::symlink_metadata(&envs_link).is_ok_and(|m| !m.file_type().is_symlink()) {
        return Err(InstallError::Usage(format!(
            "{} exists and is not a symbolic link",
            envs_link.display()
        )));
    }
    let links = match &opts.target {
        Some(target) => {
            check_target(site, name, target)?;
            Some((PathBuf::from(format!("{target}.d")), PathBuf::from(target)))
        }
        None => None,
    };
    let modules_dir = modulefile::dir(site, opts.modules.as_deref());

    if opts.dry_run {
        match &links {
            Some((tree, env)) => {
                ui.info(format!("would point {} at {}", scripts_link.display(), tree.display()));
                ui.info(format!("would point {} at {}", envs_link.display(), env.display()));
            }
            None => ui.info(format!(
                "would remove {} and {}",
                scripts_link.display(),
                envs_link.display()
            )),
        }
        if let Some(dir) = &modules_dir {
            ui.info(format!("would rewrite {}", dir.join(modulefile::MODULERC).display()));
        }
        if let Some(dir) = &opts.kernels {
            ui.info(format!("would rewrite the Jupyter kernels in {}", dir.display()));
        }
        return Ok(());
    }
    crate::farm::ensure_scripts_dir(&site.scripts)?;
    // `<envs>/NAME` and `.modulerc` change too: their directories are
    // locked as well (other scripts trees may share them).
    let mut also = Vec::new();
    if let Some(dir) = &modules_dir {
        swap::create_dirs(dir).map_err(|e| InstallError::io(dir, e))?;
        also.push((dir.clone(), lock::Need::Required));
    }
    let _lock = lock::acquire_site(site, lock::Need::Required, &also, opts.wait)?;
    let mut changed = false;
    match &links {
        Some((tree, env)) => {
            for (link, target) in [(&scripts_link, tree), (&envs_link, env)] {
                if fs::read_link(link).ok().as_deref() != Some(target.as_path()) {
                    replace_symlink(link, target)?;
                    changed = true;
                }
            }
        }
        None => {
            for link in [&scripts_link, &envs_link] {
                if fs::symlink_metadata(link).is_ok() {
                    fs::remove_file(link).map_err(|e| InstallError::io(link, e))?;
                    sync_dir(link.parent().unwrap_or(Path::new("/")))?;
                    changed = true;
                }
            }
        }
    }
    if let Some(dir) = &modules_dir {
        changed |= modulefile::write_modulerc(site, dir, ui)?;
    }
    if let Some(dir) = &opts.kernels {
        changed |= crate::kernels::write(site, dir, None, false, ui)?;
    }
    let what = match &opts.target {
        Some(target) => format!("alias {name} -> {target}"),
        None => format!("alias {name} removed"),
    };
    ui.info(if changed { what } else { format!("{what}: unchanged") });
    Ok(())
}

/// TARGET must be an env with a tree and an image, not another alias.
fn check_target(site: &Site, name: &str, target: &str) -> Result<()> {
    if name == target {
        return Err(InstallError::Usage(format!("alias '{name}' cannot point at itself")));
    }
    match swap::inspect(&site.scripts, target).map_err(|e| InstallError::io(&site.env_dir(target), e))? {
        Live::Dir | Live::Versioned(_) => {}
        Live::Alias(_) => {
            return Err(InstallError::Usage(format!(
                "'{target}' is itself an alias; point '{name}' at the environment it names"
            )))
        }
        Live::Absent | Live::Foreign => {
            return Err(InstallError::Usage(format!(
                "'{target}' has no scripts tree {}; deploy it first (installer deploy)",
                site.env_dir(target).display()
            )))
        }
    }
    let image = site.image_path(target)?;
    if !image.is_file() {
        return Err(InstallError::Image {
            path: image,
            reason: "missing; deploy the environment first".into(),
        });
    }
    Ok(())
}
