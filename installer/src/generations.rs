//! Backup generations (issue 14: rollback depth).
//!
//! `<backup>/<env>.sqsh` is the most recent backup, as I6 has always kept
//! it. `deploy --keep N` (N > 1) keeps older ones too, each as a hard link
//! `<backup>/<env>@<ID>.sqsh`, where ID is the time the image went live
//! (the modification time of the file `deploy` copied into place, kept by
//! every later rename and link): `YYYYMMDD-HHMMSS-mmm`, UTC, to the
//! millisecond, with `-2`, `-3` appended when two images have the same
//! time (a file system that keeps whole seconds). An image keeps
//! its ID for life, so `rollback --to ID` names the same image before and
//! after other deploys and rollbacks; the most recent backup has an ID too
//! (its time), `<env>.sqsh` is only its second name.
//!
//! Every change here is a hard link made at a temporary name and renamed
//! into place, or the removal of one name of a file that has another or
//! is no longer wanted: a kill at any instant leaves each generation either
//! kept or pruned, never half written.

use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::error::{InstallError, Result};
use crate::site::Site;

/// One image of an env: the live one or a backup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Generation {
    pub id: String,
    pub path: PathBuf,
    /// The live image.
    pub live: bool,
    /// `<backup>/<env>.sqsh`: what a plain `rollback` puts back.
    pub latest_backup: bool,
}

/// `YYYYMMDD-HHMMSS-mmm` of a modification time (UTC, milliseconds).
pub fn id_from_mtime(secs: i64, nanos: i64) -> String {
    let text = crate::manifest::rfc3339(secs.max(0) as u64);
    // 2026-12-02T06:50:00Z -> 20261202-065000
    let digits: String = text.chars().filter(|c| c.is_ascii_digit()).collect();
    format!(
        "{}-{}-{:03}",
        &digits[..8],
        &digits[8..14],
        nanos.clamp(0, 999_999_999) / 1_000_000
    )
}

fn mtime_id(meta: &fs::Metadata) -> String {
    id_from_mtime(meta.mtime(), meta.mtime_nsec())
}

fn base_id(path: &Path) -> io::Result<String> {
    Ok(mtime_id(&fs::metadata(path)?))
}

/// `<backup>/<env>@<ID>.sqsh`.
pub fn kept_path(backup_dir: &Path, env: &str, id: &str) -> PathBuf {
    backup_dir.join(format!("{env}@{id}.sqsh"))
}

/// The default backup directory of a site.
pub fn backup_dir(site: &Site) -> Result<PathBuf> {
    Ok(site.envs_dir()?.join(crate::deploy::BACKUP_DIR_NAME))
}

/// IDs of the `<env>@ID.sqsh` files in `backup_dir`, with their paths.
fn kept(backup_dir: &Path, env: &str) -> Vec<(String, PathBuf)> {
    let prefix = format!("{env}@");
    let mut found: Vec<(String, PathBuf)> = fs::read_dir(backup_dir)
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|e| {
                    let name = e.file_name().to_string_lossy().into_owned();
                    let id = name.strip_prefix(&prefix)?.strip_suffix(".sqsh")?.to_string();
                    (!id.is_empty() && !id.contains('/')).then(|| (id, e.path()))
                })
                .collect()
        })
        .unwrap_or_default();
    found.sort();
    found
}

fn same_file(a: &fs::Metadata, b: &fs::Metadata) -> bool {
    a.dev() == b.dev() && a.ino() == b.ino()
}

/// Every generation of `env`, newest first: the live image, the most
/// recent backup, then the kept ones. One entry per file (names of the
/// same file are merged, the `@ID` name giving the ID).
pub fn list(live: &Path, backup_dir: &Path, env: &str) -> Vec<Generation> {
    let mut all: Vec<(Generation, fs::Metadata)> = Vec::new();
    let mut add = |path: PathBuf, id: Option<String>, live: bool, latest: bool| {
        let Ok(meta) = fs::metadata(&path) else { return };
        if let Some((existing, _)) = all.iter_mut().find(|(_, m)| same_file(m, &meta)) {
            existing.live |= live;
            existing.latest_backup |= latest;
            if let Some(id) = id {
                existing.id = id;
            }
            return;
        }
        let id = id.unwrap_or_else(|| mtime_id(&meta));
        all.push((
            Generation {
                id,
                path,
                live,
                latest_backup: latest,
            },
            meta,
        ));
    };
    add(live.to_path_buf(), None, true, false);
    add(backup_dir.join(format!("{env}.sqsh")), None, false, true);
    for (id, path) in kept(backup_dir, env) {
        add(path, Some(id), false, false);
    }
    let mut gens: Vec<Generation> = all.into_iter().map(|(g, _)| g).collect();
    gens.sort_by(|a, b| b.live.cmp(&a.live).then(b.id.cmp(&a.id)));
    gens
}

/// The image of generation `id` of `env` (default backup directory).
pub fn path_of(site: &Site, env: &str, id: &str) -> Result<PathBuf> {
    let live = site.image_path(env)?;
    find(&live, &backup_dir(site)?, env, id)
}

/// The image of generation `id`, or exit 4 listing the IDs there are.
pub fn find(live: &Path, backup_dir: &Path, env: &str, id: &str) -> Result<PathBuf> {
    let gens = list(live, backup_dir, env);
    if let Some(found) = gens.iter().find(|g| g.id == id) {
        return Ok(found.path.clone());
    }
    let ids: Vec<String> = gens
        .iter()
        .map(|g| {
            if g.live {
                format!("{} (live)", g.id)
            } else {
                g.id.clone()
            }
        })
        .collect();
    Err(InstallError::Image {
        path: kept_path(backup_dir, env, id),
        reason: format!(
            "no generation {id} of {env}; there are: {}",
            if ids.is_empty() { "none".into() } else { ids.join(", ") }
        ),
    })
}

/// Give `image` (a backup about to lose its `<env>.sqsh` name) its own
/// name `<env>@ID.sqsh`, unless it has one. Hard link at a temporary name,
/// renamed; the directory synced.
pub fn preserve(backup_dir: &Path, env: &str, image: &Path) -> Result<()> {
    let meta = match fs::metadata(image) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(InstallError::io(image, e)),
    };
    let kept = kept(backup_dir, env);
    if kept
        .iter()
        .any(|(_, p)| fs::metadata(p).is_ok_and(|m| same_file(&m, &meta)))
    {
        return Ok(());
    }
    let base = base_id(image).map_err(|e| InstallError::io(image, e))?;
    let mut id = base.clone();
    let mut n = 2;
    while kept.iter().any(|(k, _)| *k == id) {
        id = format!("{base}-{n}");
        n += 1;
    }
    let dest = kept_path(backup_dir, env, &id);
    let temp = backup_dir.join(format!(".{env}.sqsh.new-{}", std::process::id()));
    let _ = fs::remove_file(&temp);
    fs::hard_link(image, &temp).map_err(|e| InstallError::io(&temp, e))?;
    fs::rename(&temp, &dest).map_err(|e| InstallError::io(&dest, e))?;
    crate::swap::sync_dir(backup_dir)
}

/// Keep the `keep` newest backups of `env` (the most recent backup,
/// `<env>.sqsh`, always among them); remove the other `@ID` names, and
/// an `@ID` name of the live image or of the most recent backup is kept
/// as it is (it costs nothing: the same file). Returns the IDs removed.
pub fn prune(live: &Path, backup_dir: &Path, env: &str, keep: usize) -> Result<Vec<String>> {
    let gens = list(live, backup_dir, env);
    let backups: Vec<&Generation> = gens.iter().filter(|g| !g.live).collect();
    let mut removed = Vec::new();
    for (index, generation) in backups.iter().enumerate() {
        if index < keep.max(1) || generation.latest_backup {
            continue;
        }
        let path = kept_path(backup_dir, env, &generation.id);
        match fs::remove_file(&path) {
            Ok(()) => removed.push(generation.id.clone()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(InstallError::io(&path, e)),
        }
    }
    if !removed.is_empty() {
        crate::swap::sync_dir(backup_dir)?;
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, SystemTime};

    fn file_at(path: &Path, secs: u64, text: &str) {
        fs::write(path, text).unwrap();
        let f = fs::File::options().write(true).open(path).unwrap();
        f.set_modified(SystemTime::UNIX_EPOCH + Duration::from_secs(secs))
            .unwrap();
    }

    #[test]
    fn ids_are_times() {
        assert_eq!(id_from_mtime(1_709_251_199, 123_456_789), "20240229-235959-123");
    }

    #[test]
    fn preserve_list_find_prune() {
        let dir = tempfile::tempdir().unwrap();
        let backup = dir.path().join(".backup");
        fs::create_dir(&backup).unwrap();
        let live = dir.path().join("e.sqsh");
        file_at(&live, 400, "live");
        let latest = backup.join("e.sqsh");
        // Three older images preserved in turn, then the latest backup.
        for (secs, text) in [(100, "g1"), (200, "g2"), (300, "g3")] {
            file_at(&latest, secs, text);
            preserve(&backup, "e", &latest).unwrap();
            preserve(&backup, "e", &latest).unwrap(); // idempotent
            fs::remove_file(&latest).unwrap();
        }
        file_at(&latest, 350, "g4");
        let ids: Vec<String> = list(&live, &backup, "e").into_iter().map(|g| g.id).collect();
        assert_eq!(
            ids,
            [
                "19700101-000640-000",
                "19700101-000550-000",
                "19700101-000500-000",
                "19700101-000320-000",
                "19700101-000140-000"
            ]
        );
        assert_eq!(
            fs::read_to_string(find(&live, &backup, "e", "19700101-000320-000").unwrap()).unwrap(),
            "g2"
        );
        let err = find(&live, &backup, "e", "nope").unwrap_err();
        assert!(err.to_string().contains("19700101-000640-000 (live)"), "{err}");
        // Keep 2 backups: the latest and g3.
        let removed = prune(&live, &backup, "e", 2).unwrap();
        assert_eq!(removed, ["19700101-000320-000", "19700101-000140-000"]);
        assert_eq!(list(&live, &backup, "e").len(), 3);
    }

    #[test]
    fn same_second_gets_a_suffix() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a");
        let b = dir.path().join("b");
        file_at(&a, 100, "a");
        file_at(&b, 100, "b");
        preserve(dir.path(), "e", &a).unwrap();
        preserve(dir.path(), "e", &b).unwrap();
        assert!(kept_path(dir.path(), "e", "19700101-000140-000").exists());
        assert!(kept_path(dir.path(), "e", "19700101-000140-000-2").exists());
    }
}
