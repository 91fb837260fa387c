//! What the container mounts: overlay images (L11, L15 `overlays = "all"`)
//! and host bind directories (L12).

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::error::LaunchError;
use crate::invocation::split_path_list;
use crate::probe::Probe;

/// The image file of `env` in `envs_dir`.
pub fn own_image(envs_dir: &Path, env: &str) -> PathBuf {
    envs_dir.join(format!("{env}.sqsh"))
}

/// What decides the overlay list.
pub struct OverlayRequest<'a> {
    /// `CONTAINER_OVERLAY_PATH` or `--overlay-path`: a colon list.
    pub user_list: Option<&'a OsStr>,
    /// The env's own image.
    pub own: &'a Path,
    /// `--no-default-overlay`.
    pub skip_own: bool,
    /// `overlays = "all"`: every image in this directory.
    pub all_from: Option<&'a Path>,
}

/// L11: the overlay images in `--overlay` order (the last one wins).
///
/// Default: the env's own image first, then the user's list, so a user's
/// explicit image (e.g. a test copy on local disk) overrides it. With
/// `overlays = "all"`: every other image in `envs_dir` (sorted), the env's own
/// image, then the user's list.
pub fn overlays(req: &OverlayRequest, probe: &dyn Probe) -> Result<Vec<PathBuf>, LaunchError> {
    let user: Vec<PathBuf> = req
        .user_list
        .map(|list| {
            split_path_list(list)
                .filter(|e| !e.is_empty())
                .map(PathBuf::from)
                .collect()
        })
        .unwrap_or_default();
    let mut out: Vec<PathBuf> = Vec::new();
    if let Some(dir) = req.all_from {
        let mut others: Vec<PathBuf> = probe
            .list_dir(dir)
            .map_err(|e| LaunchError::Unreadable {
                what: "envs_dir",
                path: dir.to_path_buf(),
                reason: e.to_string(),
            })?
            .into_iter()
            .filter(|name| is_image_name(name))
            .map(|name| dir.join(name))
            .filter(|p| p != req.own)
            .collect();
        others.sort();
        out.extend(others);
    }
    if !req.skip_own && !user.iter().any(|p| p == req.own) {
        if probe.readable(req.own) {
            out.push(req.own.to_path_buf());
        } else if user.is_empty() {
            return Err(LaunchError::MissingImage {
                env: env_name_of(req.own),
                path: req.own.to_path_buf(),
            });
        }
        // Else an explicit list supplies the env (a test tree before its
        // deploy, as launcher.sh allowed); a wrong list is then the
        // runtime's error or the inside hop's "not found".
    }
    for image in user {
        if !out.contains(&image) {
            out.push(image);
        }
    }
    Ok(out)
}

/// `NAME.sqsh`, not hidden (backups live in `.backup/`, temp files start with `.`).
fn is_image_name(name: &OsStr) -> bool {
    let bytes = name.as_bytes();
    !bytes.starts_with(b".") && bytes.ends_with(b".sqsh") && bytes.len() > ".sqsh".len()
}

fn env_name_of(image: &Path) -> String {
    image
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// L12: the configured binds that exist on this host, joined with `,`;
/// `None` when none exists (then no `--bind` at all).
pub fn bind_list(binds: &[PathBuf], probe: &dyn Probe) -> Option<OsString> {
    let mut list = OsString::new();
    for bind in binds.iter().filter(|b| probe.stat(b).is_ok()) {
        if !list.is_empty() {
            list.push(",");
        }
        list.push(bind);
    }
    (!list.is_empty()).then_some(list)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::OsProbe;

    fn envs() -> tempfile::TempDir {
        let t = tempfile::tempdir().unwrap();
        for name in ["b.sqsh", "a.sqsh", "own.sqsh", ".tmp.sqsh", "notes.txt"] {
            std::fs::write(t.path().join(name), b"").unwrap();
        }
        std::fs::create_dir(t.path().join(".backup")).unwrap();
        t
    }

    #[test]
    fn l11_own_image_first_then_user_list_dropping_empty_entries() {
        let t = envs();
        let own = t.path().join("own.sqsh");
        let req = OverlayRequest {
            user_list: Some("::/x/test.sqsh::/y.sqsh:".as_ref()),
            own: &own,
            skip_own: false,
            all_from: None,
        };
        let got = overlays(&req, &OsProbe).unwrap();
        assert_eq!(
            got,
            vec![own.clone(), PathBuf::from("/x/test.sqsh"), PathBuf::from("/y.sqsh")]
        );
    }

    #[test]
    fn l11_own_image_not_repeated_when_listed() {
        let t = envs();
        let own = t.path().join("own.sqsh");
        let list = format!("/x.sqsh:{}", own.display());
        let req = OverlayRequest {
            user_list: Some(list.as_ref()),
            own: &own,
            skip_own: false,
            all_from: None,
        };
        assert_eq!(
            overlays(&req, &OsProbe).unwrap(),
            vec![PathBuf::from("/x.sqsh"), own.clone()]
        );
    }

    #[test]
    fn l11_no_default_overlay_and_missing_image() {
        let own = PathBuf::from("/no/such/e.sqsh");
        let req = OverlayRequest {
            user_list: None,
            own: &own,
            skip_own: false,
            all_from: None,
        };
        let e = overlays(&req, &OsProbe).unwrap_err();
        assert_eq!(e.exit_code(), 125);
        assert!(e.to_string().contains("/no/such/e.sqsh"));
        let req = OverlayRequest {
            user_list: Some("/u.sqsh".as_ref()),
            own: &own,
            skip_own: true,
            all_from: None,
        };
        assert_eq!(overlays(&req, &OsProbe).unwrap(), vec![PathBuf::from("/u.sqsh")]);
    }

    #[test]
    fn l15_overlays_all_lists_every_image_own_last() {
        let t = envs();
        let own = t.path().join("own.sqsh");
        let req = OverlayRequest {
            user_list: None,
            own: &own,
            skip_own: false,
            all_from: Some(t.path()),
        };
        let got = overlays(&req, &OsProbe).unwrap();
        assert_eq!(got, vec![t.path().join("a.sqsh"), t.path().join("b.sqsh"), own]);
    }

    #[test]
    fn l12_only_existing_binds_joined_with_commas() {
        let t = tempfile::tempdir().unwrap();
        let binds = vec![
            PathBuf::from("/nonexistent-bind"),
            t.path().to_path_buf(),
            PathBuf::from("/"),
        ];
        assert_eq!(
            bind_list(&binds, &OsProbe).unwrap(),
            OsString::from(format!("{},/", t.path().display()))
        );
        assert_eq!(bind_list(&[PathBuf::from("/nonexistent-bind")], &OsProbe), None);
    }
}
