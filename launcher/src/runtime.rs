//! Which container runtime to run (L9) and which environment prefix it
//! reads (L10).

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use crate::config::FlavourSetting;
use crate::error::LaunchError;
use crate::invocation::{follow, search_path, split_path_list};
use crate::probe::Probe;

/// Runtime names searched on `PATH`, in order of preference within a dir.
pub const RUNTIME_NAMES: [&str; 2] = ["apptainer", "singularity"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavour {
    Apptainer,
    Singularity,
    /// The launcher's own runtime (`native`): Apptainer's variable
    /// conventions, none of its quirks (no evaluation, no JSON hand-off).
    Native,
}

impl Flavour {
    /// The prefix of variables the runtime passes into the container.
    pub fn env_prefix(self) -> &'static str {
        match self {
            Flavour::Apptainer | Flavour::Native => "APPTAINERENV_",
            Flavour::Singularity => "SINGULARITYENV_",
        }
    }

    /// Every prefix the runtime reads, the winning one first: Apptainer
    /// also reads `SINGULARITYENV_`, with lower priority (`env.go:44`).
    pub fn env_prefixes_read(self) -> &'static [&'static str] {
        match self {
            Flavour::Apptainer | Flavour::Native => &["APPTAINERENV_", "SINGULARITYENV_"],
            Flavour::Singularity => &["SINGULARITYENV_"],
        }
    }

    /// Prefixes of the runtime's own flag variables (`APPTAINER_NO_EVAL`…).
    pub fn flag_prefixes(self) -> &'static [&'static str] {
        match self {
            Flavour::Apptainer => &["APPTAINER_", "SINGULARITY_"],
            Flavour::Singularity => &["SINGULARITY_"],
            Flavour::Native => &[],
        }
    }

    /// Does the runtime evaluate prefixed values and pass arguments through
    /// a JSON hand-off (runtime-semantics.md §2, §6)? The native one does not.
    pub fn mangles(self) -> bool {
        self != Flavour::Native
    }
}

/// L9: `--runtime`, else `runtime.path`, else the first `apptainer` or
/// `singularity` found walking `PATH` (apptainer first within a directory).
pub fn find_runtime(
    flag: Option<&Path>,
    configured: Option<&Path>,
    path_var: Option<&OsStr>,
    probe: &dyn Probe,
) -> Result<PathBuf, LaunchError> {
    let explicit = flag
        .map(|p| (p, "--runtime"))
        .or(configured.map(|p| (p, "runtime.path")));
    if let Some((path, source)) = explicit {
        // A bare name (`--runtime apptainer`) means what a shell means by it:
        // the one on PATH, never a file of that name in the current directory.
        if !path.as_os_str().as_encoded_bytes().contains(&b'/') {
            return search_path(path.as_os_str(), path_var, probe, |_| true).ok_or_else(|| LaunchError::NoRuntime {
                looked: format!("{source} {}: not found on PATH", path.display()),
            });
        }
        return match probe.stat(path) {
            Ok(stat) if stat.is_executable_file() => Ok(path.to_path_buf()),
            Ok(_) => Err(LaunchError::NoRuntime {
                looked: format!("{source} {} is not an executable file", path.display()),
            }),
            Err(e) => Err(LaunchError::NoRuntime {
                looked: format!("{source} {}: {e}", path.display()),
            }),
        };
    }
    if let Some(list) = path_var {
        for dir in split_path_list(list).filter(|d| !d.is_empty()) {
            for name in RUNTIME_NAMES {
                let candidate = Path::new(dir).join(name);
                if probe.stat(&candidate).is_ok_and(|s| s.is_executable_file()) {
                    return Ok(candidate);
                }
            }
        }
    }
    Err(LaunchError::NoRuntime {
        looked: "no --runtime flag, no runtime.path in launcher.toml, and neither apptainer nor singularity on PATH"
            .into(),
    })
}

/// L10: the configured flavour, or for `auto` the name the runtime binary
/// finally links to (Apptainer installs `singularity -> apptainer`). An
/// unrecognised name gets SingularityCE's prefix, which Apptainer also reads.
pub fn flavour(setting: FlavourSetting, runtime: &Path, probe: &dyn Probe) -> Flavour {
    match setting {
        FlavourSetting::Apptainer => Flavour::Apptainer,
        FlavourSetting::Singularity => Flavour::Singularity,
        FlavourSetting::Native => Flavour::Native,
        FlavourSetting::Auto => flavour_by_name(runtime, probe).unwrap_or(Flavour::Singularity),
    }
}

/// The flavour the runtime binary's final link target names, if it names one.
pub fn flavour_by_name(runtime: &Path, probe: &dyn Probe) -> Option<Flavour> {
    let target = final_target(runtime, probe);
    let name = target.file_name()?.to_string_lossy();
    if name.contains("apptainer") {
        Some(Flavour::Apptainer)
    } else if name.contains("singularity") {
        Some(Flavour::Singularity)
    } else {
        None
    }
}

fn final_target(path: &Path, probe: &dyn Probe) -> PathBuf {
    let mut current = path.to_path_buf();
    for _ in 0..16 {
        match probe.read_link(&current) {
            Ok(target) => current = follow(&current, target),
            Err(_) => break,
        }
    }
    current
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::OsProbe;
    use std::os::unix::fs::{symlink, PermissionsExt};

    fn exe(path: &Path) {
        std::fs::write(path, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    #[test]
    fn l9_flag_beats_config_beats_path() {
        let t = tempfile::tempdir().unwrap();
        let (a, b) = (t.path().join("a"), t.path().join("b"));
        exe(&a);
        exe(&b);
        let path = t.path().as_os_str();
        assert_eq!(find_runtime(Some(&a), Some(&b), Some(path), &OsProbe).unwrap(), a);
        assert_eq!(find_runtime(None, Some(&b), Some(path), &OsProbe).unwrap(), b);
    }

    #[test]
    fn l9_path_search_prefers_apptainer_in_a_dir_and_earlier_dirs() {
        let t = tempfile::tempdir().unwrap();
        let (d1, d2) = (t.path().join("d1"), t.path().join("d2"));
        std::fs::create_dir_all(&d1).unwrap();
        std::fs::create_dir_all(&d2).unwrap();
        exe(&d1.join("singularity"));
        exe(&d2.join("apptainer"));
        let list = format!("{}:{}", d1.display(), d2.display());
        assert_eq!(
            find_runtime(None, None, Some(list.as_ref()), &OsProbe).unwrap(),
            d1.join("singularity")
        );
        exe(&d1.join("apptainer"));
        assert_eq!(
            find_runtime(None, None, Some(list.as_ref()), &OsProbe).unwrap(),
            d1.join("apptainer")
        );
    }

    #[test]
    fn l9_bare_runtime_name_is_looked_up_on_path() {
        let t = tempfile::tempdir().unwrap();
        exe(&t.path().join("apptainer"));
        let found = find_runtime(Some(Path::new("apptainer")), None, Some(t.path().as_os_str()), &OsProbe).unwrap();
        assert_eq!(found, t.path().join("apptainer"));
        let e = find_runtime(
            Some(Path::new("apptainer")),
            None,
            Some("/nonexistent".as_ref()),
            &OsProbe,
        )
        .unwrap_err();
        assert_eq!(e.exit_code(), 125);
        assert!(e.to_string().contains("--runtime apptainer: not found on PATH"), "{e}");
    }

    #[test]
    fn l9_none_found_says_where_it_looked() {
        let e = find_runtime(None, None, Some("/nonexistent".as_ref()), &OsProbe).unwrap_err();
        assert_eq!(e.exit_code(), 125);
        assert!(e.to_string().contains("runtime.path"), "{e}");
        let e = find_runtime(None, Some(Path::new("/no/such")), None, &OsProbe).unwrap_err();
        assert!(e.to_string().contains("/no/such"), "{e}");
    }

    #[test]
    fn l10_auto_flavour_follows_link_to_apptainer() {
        let t = tempfile::tempdir().unwrap();
        exe(&t.path().join("apptainer"));
        symlink("apptainer", t.path().join("singularity")).unwrap();
        let s = t.path().join("singularity");
        assert_eq!(flavour(FlavourSetting::Auto, &s, &OsProbe), Flavour::Apptainer);
        assert_eq!(flavour(FlavourSetting::Singularity, &s, &OsProbe), Flavour::Singularity);
        let t2 = tempfile::tempdir().unwrap();
        exe(&t2.path().join("singularity"));
        assert_eq!(
            flavour(FlavourSetting::Auto, &t2.path().join("singularity"), &OsProbe),
            Flavour::Singularity
        );
        exe(&t2.path().join("standin"));
        assert_eq!(flavour_by_name(&t2.path().join("standin"), &OsProbe), None);
        assert_eq!(
            flavour(FlavourSetting::Auto, &t2.path().join("standin"), &OsProbe),
            Flavour::Singularity
        );
    }
}
