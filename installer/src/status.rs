//! `installer status` (I11): one row per env: what is installed, and what
//! it costs the file system. The last two columns are the point of the
//! whole system: the files inside an image against the inodes the
//! installation really uses on disk.

use std::path::Path;

use crate::image;
use crate::site::{is_alias_link, Site};
use crate::swap::{self, Live};
use crate::Result;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub env: String,
    /// The part of the env name after its last `-`, when it starts with a
    /// digit (`analysis3-22.10` → `22.10`).
    pub version: Option<String>,
    pub aliases: Vec<String>,
    pub image_bytes: Option<u64>,
    /// Inodes inside the image (files, directories, links).
    pub files_in_image: Option<u64>,
    /// `<env>.d` tree + image + `<envs>/<env>` link + alias links.
    pub inodes_on_disk: u64,
}

impl Row {
    pub fn ratio(&self) -> Option<f64> {
        let files = self.files_in_image? as f64;
        (self.inodes_on_disk > 0).then(|| files / self.inodes_on_disk as f64)
    }
}

/// Rows for every env with an image in `envs_dir` (or just `only`).
pub fn rows(site: &Site, only: &[String]) -> Result<Vec<Row>> {
    let envs = if only.is_empty() {
        site.envs_with_images()?
    } else {
        only.to_vec()
    };
    let envs_dir = site.envs_dir()?.to_path_buf();
    let mut rows = Vec::new();
    for env in envs {
        let image_path = site.image_path(&env)?;
        let aliases = aliases_of(site, &env, &envs_dir);
        let mut inodes = count_inodes(&site.env_dir(&env));
        if let Ok(Live::Versioned(root)) = swap::inspect(&site.scripts, &env) {
            // The versioned directory plus its helper links, and the symlink.
            inodes += count_inodes(&root) - count_inodes(&site.env_dir(&env)) + 1;
        }
        let image_meta = std::fs::metadata(&image_path).ok();
        inodes += u64::from(image_meta.is_some());
        inodes += u64::from(std::fs::symlink_metadata(envs_dir.join(&env)).is_ok());
        inodes += aliases.len() as u64;
        rows.push(Row {
            version: version_of(&env),
            aliases,
            image_bytes: image_meta.map(|m| m.len()),
            files_in_image: image::inode_count(&image_path).ok(),
            inodes_on_disk: inodes,
            env,
        });
    }
    Ok(rows)
}

pub fn version_of(env: &str) -> Option<String> {
    let (_, version) = env.rsplit_once('-')?;
    version
        .starts_with(|c: char| c.is_ascii_digit())
        .then(|| version.to_string())
}

/// Names `X` of `<scripts>/X.d` and `<envs>/X.sqsh` links that lead to `env`.
fn aliases_of(site: &Site, env: &str, envs_dir: &Path) -> Vec<String> {
    let mut names = std::collections::BTreeSet::new();
    let real_tree = std::fs::canonicalize(site.env_dir(env)).ok();
    if let Ok(entries) = std::fs::read_dir(&site.scripts) {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(alias) = name.strip_suffix(".d") else { continue };
            if alias != env
                && matches!(swap::inspect(&site.scripts, alias), Ok(Live::Alias(_)))
                && std::fs::canonicalize(entry.path()).ok() == real_tree
            {
                names.insert(alias.to_string());
            }
        }
    }
    let real_image = std::fs::canonicalize(envs_dir.join(format!("{env}.sqsh"))).ok();
    if let Ok(entries) = std::fs::read_dir(envs_dir) {
        for entry in entries.flatten() {
            let Some(alias) = crate::site::image_env_name(&entry.file_name()) else {
                continue;
            };
            if alias != env && is_alias_link(&entry.path()) && std::fs::canonicalize(entry.path()).ok() == real_image {
                names.insert(alias);
            }
        }
    }
    names.into_iter().collect()
}

/// Inodes used by the tree at `path` (following `path` itself if it is a
/// symlink, nothing inside): the directory and everything below it.
pub fn count_inodes(path: &Path) -> u64 {
    let Ok(meta) = std::fs::metadata(path) else { return 0 };
    if !meta.is_dir() {
        return 1;
    }
    let mut count = 1;
    if let Ok(entries) = std::fs::read_dir(path) {
        for entry in entries.flatten() {
            count += match entry.file_type() {
                Ok(t) if t.is_dir() => count_inodes(&entry.path()),
                _ => 1,
            };
        }
    }
    count
}

/// `1.2 GiB`, `340 MiB`, `12 KiB`.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 || value >= 10.0 {
        format!("{value:.0} {}", UNITS[unit])
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// The table, with a totals line.
pub fn render(rows: &[Row], shared_inodes: u64) -> String {
    let dash = || "-".to_string();
    let mut table = vec![[
        "ENV".to_string(),
        "VERSION".into(),
        "ALIASES".into(),
        "IMAGE SIZE".into(),
        "FILES IN IMAGE".into(),
        "INODES ON DISK".into(),
        "RATIO".into(),
    ]];
    let ratio = |r: Option<f64>| {
        r.map_or_else(dash, |r| {
            if r >= 10.0 {
                format!("{r:.0}:1")
            } else {
                format!("{r:.1}:1")
            }
        })
    };
    for row in rows {
        table.push([
            row.env.clone(),
            row.version.clone().unwrap_or_else(dash),
            if row.aliases.is_empty() {
                dash()
            } else {
                row.aliases.join(",")
            },
            row.image_bytes.map_or_else(dash, human_bytes),
            row.files_in_image.map_or_else(dash, |n| n.to_string()),
            row.inodes_on_disk.to_string(),
            ratio(row.ratio()),
        ]);
    }
    let files: u64 = rows.iter().filter_map(|r| r.files_in_image).sum();
    let inodes: u64 = rows.iter().map(|r| r.inodes_on_disk).sum::<u64>() + shared_inodes;
    let bytes: u64 = rows.iter().filter_map(|r| r.image_bytes).sum();
    table.push([
        format!("total ({} envs + {shared_inodes} shared)", rows.len()),
        String::new(),
        String::new(),
        human_bytes(bytes),
        files.to_string(),
        inodes.to_string(),
        ratio((inodes > 0).then(|| files as f64 / inodes as f64)),
    ]);
    let widths: Vec<usize> = (0..7)
        .map(|c| table.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in &table {
        let cells: Vec<String> = row
            .iter()
            .enumerate()
            .map(|(c, cell)| {
                // Text columns left-aligned, numbers right-aligned.
                if c < 3 {
                    format!("{cell:<w$}", w = widths[c])
                } else {
                    format!("{cell:>w$}", w = widths[c])
                }
            })
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

/// Inodes shared by every env: the launcher, its config, the lock file and
/// the site overrides.
pub fn shared_inodes(site: &Site) -> u64 {
    [
        site.launcher_path(),
        site.config_path(),
        site.scripts.join(crate::lock::LOCK_FILE_NAME),
    ]
    .iter()
    .filter(|p| p.exists())
    .count() as u64
        + count_inodes(&site.overrides_dir())
        + 1 // <scripts> itself
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_come_from_the_name() {
        assert_eq!(version_of("analysis3-22.10").as_deref(), Some("22.10"));
        assert_eq!(version_of("analysis3"), None);
        assert_eq!(version_of("my-env"), None);
    }

    #[test]
    fn bytes_are_human() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(300 * 1024 * 1024), "300 MiB");
    }

    #[test]
    fn table_has_a_row_per_env_and_a_total() {
        let row = Row {
            env: "e-1.0".into(),
            version: Some("1.0".into()),
            aliases: vec!["e".into()],
            image_bytes: Some(4096),
            files_in_image: Some(1000),
            inodes_on_disk: 10,
        };
        let text = render(&[row], 3);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(lines[1].starts_with("e-1.0") && lines[1].ends_with("100:1"), "{text}");
        assert!(lines[2].contains("1000") && lines[2].contains(" 13 "), "{text}");
    }
}
