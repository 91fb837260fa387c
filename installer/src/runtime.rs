//! The container runtime a launch would use (L9, L10), found by the
//! launcher's own code so that `check` and `demo` can never disagree with a
//! real launch.

use std::path::PathBuf;

use launcher::config::{Config, FlavourSetting};
use launcher::invocation::search_path;
use launcher::probe::OsProbe;
pub use launcher::runtime::{Flavour, RUNTIME_NAMES};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Runtime {
    pub path: PathBuf,
    /// `None`: flavour "auto" and the binary's name tells neither.
    pub flavour: Option<Flavour>,
}

/// The runtime a launch would use: `runtime.path`, else `apptainer` or
/// `singularity` from `PATH`. The error says where it looked.
pub fn find(config: &Config) -> Result<Runtime, String> {
    let path_var = std::env::var_os("PATH");
    let path = launcher::runtime::find_runtime(None, config.runtime.path.as_deref(), path_var.as_deref(), &OsProbe)
        .map_err(|e| e.to_string())?;
    let flavour = match config.runtime.flavour {
        FlavourSetting::Auto => launcher::runtime::flavour_by_name(&path, &OsProbe),
        setting => Some(launcher::runtime::flavour(setting, &path, &OsProbe)),
    };
    Ok(Runtime { path, flavour })
}

/// The first executable file called `name` on `PATH`.
pub fn which(name: &str) -> Option<PathBuf> {
    let path_var = std::env::var_os("PATH");
    search_path(name.as_ref(), path_var.as_deref(), &OsProbe, |_| true)
}
