//! Finding the container runtime the way the launcher will (L9, L10), so
//! that `check` and `demo` can say which one a launch would use.

use std::path::{Path, PathBuf};

use launcher::config::{Config, FlavourSetting};

/// The runtime names searched on `PATH`, in order (L9).
pub const RUNTIME_NAMES: [&str; 2] = ["apptainer", "singularity"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavour {
    Apptainer,
    Singularity,
}

impl Flavour {
    pub fn name(self) -> &'static str {
        match self {
            Flavour::Apptainer => "apptainer",
            Flavour::Singularity => "singularity",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Runtime {
    pub path: PathBuf,
    /// `None`: flavour "auto" and the binary's name tells neither.
    pub flavour: Option<Flavour>,
}

/// The runtime a launch would use: `runtime.path`, else the first of
/// `apptainer`, `singularity` on `PATH`. The error says where it looked.
pub fn find(config: &Config) -> Result<Runtime, String> {
    let path = match &config.runtime.path {
        Some(path) if is_executable(path) => path.clone(),
        Some(path) => return Err(format!("runtime.path {} is not an executable file", path.display())),
        None => RUNTIME_NAMES
            .iter()
            .find_map(|name| which(name))
            .ok_or_else(|| format!("neither {} is on PATH and runtime.path is not set", RUNTIME_NAMES.join(" nor ")))?,
    };
    let flavour = match config.runtime.flavour {
        FlavourSetting::Apptainer => Some(Flavour::Apptainer),
        FlavourSetting::Singularity => Some(Flavour::Singularity),
        FlavourSetting::Auto => flavour_from_name(&path),
    };
    Ok(Runtime { path, flavour })
}

/// L10 "auto": the name the binary finally links to (Apptainer installs
/// `singularity` as a link to `apptainer`).
pub fn flavour_from_name(path: &Path) -> Option<Flavour> {
    let real = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let name = real.file_name()?.to_string_lossy().into_owned();
    if name.contains("apptainer") {
        Some(Flavour::Apptainer)
    } else if name.contains("singularity") {
        Some(Flavour::Singularity)
    } else {
        None
    }
}

/// The first executable file called `name` in `PATH`.
pub fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .filter(|dir| !dir.as_os_str().is_empty())
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn l10_flavour_follows_the_final_link_name() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("apptainer");
        std::fs::write(&real, "").unwrap();
        let alias = dir.path().join("singularity");
        std::os::unix::fs::symlink(&real, &alias).unwrap();
        assert_eq!(flavour_from_name(&alias), Some(Flavour::Apptainer));
        assert_eq!(flavour_from_name(Path::new("/x/singularity-ce")), Some(Flavour::Singularity));
        assert_eq!(flavour_from_name(Path::new("/x/standin")), None);
    }
}
