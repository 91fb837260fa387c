//! `installer diff A B` (issue 14): the packages added, removed and changed
//! between two images, from the provenance manifests inside them. A and B
//! are image files, env names (their live image), `ENV@backup` (the most
//! recent backup, what `rollback` puts back) or `ENV@ID` (a kept
//! generation, see `deploy --keep`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::error::{InstallError, Result};
use crate::image::EnvImage;
use crate::manifest::Manifest;
use crate::site::Site;

/// One difference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Added { package: String, version: String },
    Removed { package: String, version: String },
    Changed { package: String, from: String, to: String },
}

/// The manifest of an image and how it was named.
pub struct Side {
    pub shown: String,
    pub image: PathBuf,
    pub manifest: Manifest,
}

/// Find what `spec` names: an existing file is an image; else an env name
/// (`NAME` or `NAME@ID`) of the site.
pub fn resolve(spec: &str, site: Option<&Site>, container_prefix: &Path) -> Result<Side> {
    let path = Path::new(spec);
    let (image, env_hint) = if path.is_file() {
        (crate::site::absolute(path)?, None)
    } else {
        let site = site.ok_or_else(|| {
            InstallError::Usage(format!(
                "{spec} is not an image file; to name an env, pass --scripts or --config"
            ))
        })?;
        let (env, id) = match spec.split_once('@') {
            Some((env, id)) => (env, Some(id)),
            None => (spec, None),
        };
        crate::site::check_env_name(env)?;
        let image = match id {
            None => site.image_path(env)?,
            Some("backup") => crate::generations::backup_dir(site)?.join(format!("{env}.sqsh")),
            Some(id) => crate::generations::path_of(site, env, id)?,
        };
        (image, Some(env.to_string()))
    };
    let opened = EnvImage::open(&image)?;
    // The prefix inside: from the env name when given, else the image's
    // single env under the container prefix.
    let envs: Vec<String> = match env_hint {
        Some(env) => vec![env],
        None => opened
            .list_dir(container_prefix)
            .unwrap_or_default()
            .into_iter()
            .map(|e| e.name.to_string_lossy().into_owned())
            .filter(|n| !n.starts_with('.'))
            .collect(),
    };
    for env in &envs {
        if let Some(manifest) = Manifest::from_image(&opened, &container_prefix.join(env))? {
            return Ok(Side {
                shown: spec.to_string(),
                image,
                manifest,
            });
        }
    }
    Err(InstallError::Image {
        path: image,
        reason: format!(
            "has no provenance manifest ({}/ENV/{}): it was not made by installer build or update",
            container_prefix.display(),
            crate::manifest::FILE_IN_ENV
        ),
    })
}

pub fn changes(a: &Manifest, b: &Manifest) -> Vec<Change> {
    let (old, new) = (a.package_versions(), b.package_versions());
    let mut out = Vec::new();
    let keys: std::collections::BTreeSet<&String> = old.keys().chain(new.keys()).collect();
    for key in keys {
        match (old.get(key), new.get(key)) {
            (None, Some(v)) => out.push(Change::Added {
                package: key.clone(),
                version: v.clone(),
            }),
            (Some(v), None) => out.push(Change::Removed {
                package: key.clone(),
                version: v.clone(),
            }),
            (Some(f), Some(t)) if f != t => out.push(Change::Changed {
                package: key.clone(),
                from: f.clone(),
                to: t.clone(),
            }),
            _ => {}
        }
    }
    out
}

/// The report: a header naming both sides, one line per change, a summary.
pub fn render(a: &Side, b: &Side, changes: &[Change]) -> String {
    let mut out = format!(
        "--- {} ({}, {})\n+++ {} ({}, {})\n",
        a.shown,
        a.manifest.date,
        a.image.display(),
        b.shown,
        b.manifest.date,
        b.image.display()
    );
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for change in changes {
        let line = match change {
            Change::Added { package, version } => {
                *counts.entry("added").or_default() += 1;
                format!("+ {package} {version}")
            }
            Change::Removed { package, version } => {
                *counts.entry("removed").or_default() += 1;
                format!("- {package} {version}")
            }
            Change::Changed { package, from, to } => {
                *counts.entry("changed").or_default() += 1;
                format!("~ {package} {from} -> {to}")
            }
        };
        out.push_str(&line);
        out.push('\n');
    }
    let count = |k: &str| counts.get(k).copied().unwrap_or(0);
    out.push_str(&format!(
        "{} added, {} removed, {} changed\n",
        count("added"),
        count("removed"),
        count("changed")
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::Packages;

    fn with(pip: &[&str], conda: &[&str]) -> Manifest {
        Manifest {
            packages: Packages {
                pip: pip.iter().map(|s| s.to_string()).collect(),
                conda: conda.iter().map(|s| s.to_string()).collect(),
            },
            ..Manifest::default()
        }
    }

    #[test]
    fn added_removed_changed() {
        let a = with(&["a==1", "b==2", "Same_Name==3"], &["python=3.11=h_0"]);
        let b = with(&["a==1.1", "c==1", "same-name==3"], &["python=3.11=h_0", "zlib=1.3=0"]);
        assert_eq!(
            changes(&a, &b),
            [
                Change::Added {
                    package: "conda:zlib".into(),
                    version: "1.3=0".into()
                },
                Change::Changed {
                    package: "pip:a".into(),
                    from: "1".into(),
                    to: "1.1".into()
                },
                Change::Removed {
                    package: "pip:b".into(),
                    version: "2".into()
                },
                Change::Added {
                    package: "pip:c".into(),
                    version: "1".into()
                },
            ]
        );
    }
}
