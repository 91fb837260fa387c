//! One installation ("site"): the scripts tree, its `launcher.toml`, and the
//! paths the installed layout derives from them (launcher.md, "Installed
//! layout").
//!
//! The config is always parsed as if it sat at `<scripts>/launcher.toml`,
//! even when `--config` names a source file elsewhere: that is where it will
//! be installed, and relative paths in it must mean the same thing to the
//! installer as they will to the launcher.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use launcher::config::{Config, CONFIG_FILE_NAME};

use crate::error::{io_reason, InstallError, Result};

/// Where envs' trees, images and the shared files live.
#[derive(Debug, Clone)]
pub struct Site {
    /// `<scripts>`, absolute.
    pub scripts: PathBuf,
    /// Where the config was read from (may differ from the installed path).
    pub config_source: PathBuf,
    /// The config's bytes, installed verbatim by `farm`.
    pub config_bytes: Vec<u8>,
    pub config: Config,
}

impl Site {
    /// Load from `--scripts` and/or `--config`. The scripts dir defaults to
    /// the config's directory; the config defaults to
    /// `<scripts>/launcher.toml`.
    pub fn load(scripts: Option<&Path>, config: Option<&Path>) -> Result<Site> {
        let scripts = match (scripts, config) {
            (Some(dir), _) => dir.to_path_buf(),
            (None, Some(file)) => file.parent().map_or_else(|| PathBuf::from("."), Path::to_path_buf),
            (None, None) => {
                return Err(InstallError::Usage(
                    "no installation given: pass --scripts DIR or --config FILE".into(),
                ))
            }
        };
        let scripts = absolute(&scripts)?;
        let config_source = match config {
            Some(file) => absolute(file)?,
            None => scripts.join(CONFIG_FILE_NAME),
        };
        let config_bytes = read_config(&config_source).map_err(|e| {
            InstallError::Config(format!(
                "cannot read config {}: {}",
                config_source.display(),
                io_reason(&e)
            ))
        })?;
        let installed = scripts.join(CONFIG_FILE_NAME);
        let config = Config::parse(&config_bytes, &installed).map_err(|e| {
            // Name the file the user gave, not the install destination.
            let text = e.to_string();
            let shown = installed.to_string_lossy().into_owned();
            InstallError::Config(text.replacen(&shown, &config_source.to_string_lossy(), 1))
        })?;
        Ok(Site {
            scripts,
            config_source,
            config_bytes,
            config,
        })
    }

    /// `<scripts>/launcher.toml`: where the launcher reads its config (L19).
    pub fn config_path(&self) -> PathBuf {
        self.scripts.join(CONFIG_FILE_NAME)
    }

    /// `<scripts>/<launcher_name>`: the one launcher binary.
    pub fn launcher_path(&self) -> PathBuf {
        self.scripts.join(&self.config.launcher_name)
    }

    /// What every link in `<env>.d/bin` points at: `../../<launcher_name>`.
    pub fn link_target(&self) -> PathBuf {
        Path::new("../..").join(&self.config.launcher_name)
    }

    /// `<scripts>/overrides`: site override scripts (L15).
    pub fn overrides_dir(&self) -> PathBuf {
        self.scripts.join("overrides")
    }

    /// `<scripts>/<env>.d`.
    pub fn env_dir(&self, env: &str) -> PathBuf {
        self.scripts.join(format!("{env}.d"))
    }

    /// `container.envs_dir`, which farm, check and status need.
    pub fn envs_dir(&self) -> Result<&Path> {
        self.config
            .container
            .envs_dir
            .as_deref()
            .ok_or_else(|| InstallError::MissingSetting {
                key: "container.envs_dir",
                config: self.config_source.clone(),
            })
    }

    /// `<envs>/<env>.sqsh`.
    pub fn image_path(&self, env: &str) -> Result<PathBuf> {
        Ok(self.envs_dir()?.join(format!("{env}.sqsh")))
    }

    /// `<container_prefix>/<env>/bin`: the env's bin inside the image.
    pub fn bin_in_image(&self, env: &str) -> PathBuf {
        self.config.container.prefix.join(env).join("bin")
    }

    /// Names of the envs whose image is in `envs_dir`, sorted. An image that
    /// is a symlink to another image of the same directory is an alias, not
    /// an env of its own.
    pub fn envs_with_images(&self) -> Result<Vec<String>> {
        let dir = self.envs_dir()?;
        let entries = std::fs::read_dir(dir).map_err(|e| InstallError::io(dir, e))?;
        let mut envs = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| InstallError::io(dir, e))?;
            let Some(env) = image_env_name(&entry.file_name()) else {
                continue;
            };
            if is_alias_link(&entry.path()) {
                continue;
            }
            envs.push(env);
        }
        envs.sort();
        Ok(envs)
    }
}

/// `NAME` for a file `NAME.sqsh` whose NAME is a valid env name.
pub fn image_env_name(file_name: &OsStr) -> Option<String> {
    let name = file_name.to_str()?.strip_suffix(".sqsh")?;
    valid_env_name(name).then(|| name.to_string())
}

/// A symlink whose target lies in the same directory (an alias such as
/// `analysis3.sqsh -> analysis3-22.10.sqsh` or `analysis3.d -> analysis3-22.10.d`).
pub fn is_alias_link(path: &Path) -> bool {
    match std::fs::read_link(path) {
        Ok(target) => target.components().count() == 1,
        Err(_) => false,
    }
}

/// The rule for env and alias names, as error messages state it.
pub const ENV_NAME_RULE: &str =
    "names are ASCII letters, digits, '_', '+', '.' and '-', not starting with '.' or '-' (^[A-Za-z0-9_+][A-Za-z0-9._+-]*$)";

/// An env (or alias) name: one visible path component that is safe in
/// PATH-like lists (no ':') and that Lmod can read (ASCII only).
pub fn valid_env_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    let first_ok = |b: u8| b.is_ascii_alphanumeric() || b == b'_' || b == b'+';
    match bytes.next() {
        Some(first) if first_ok(first) => bytes.all(|b| first_ok(b) || b == b'.' || b == b'-'),
        _ => false,
    }
}

/// `Ok` for a valid env name, else a usage error that states the rule.
pub fn check_env_name(name: &str) -> Result<()> {
    if valid_env_name(name) {
        Ok(())
    } else {
        Err(InstallError::Usage(format!(
            "'{}' is not a valid environment name: {ENV_NAME_RULE}",
            name.escape_debug()
        )))
    }
}

/// Absolute form of `path` without resolving symlinks (aliases must keep
/// their spelling).
/// Largest config the installer reads: the launcher's limit (1 MiB, L19).
pub const MAX_CONFIG_SIZE: u64 = 1 << 20;

/// Read a config file: a regular file of at most `MAX_CONFIG_SIZE` bytes.
/// Opened without blocking, so a FIFO is refused instead of waited on, and
/// `/dev/zero` is refused instead of read until memory runs out.
pub fn read_config(path: &Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NONBLOCK)
        .open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(std::io::Error::other("not a regular file"));
    }
    if meta.len() > MAX_CONFIG_SIZE {
        return Err(std::io::Error::other(format!(
            "larger than the limit of {MAX_CONFIG_SIZE} bytes (1 MiB): {} bytes",
            meta.len()
        )));
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.take(MAX_CONFIG_SIZE + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_CONFIG_SIZE {
        return Err(std::io::Error::other("grew beyond the limit of 1 MiB while read"));
    }
    Ok(bytes)
}

pub fn absolute(path: &Path) -> Result<PathBuf> {
    std::path::absolute(path).map_err(|e| InstallError::io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_names() {
        for good in ["analysis3-22.10", "e", "_x", "+y", "a.b-c_d+e", "9"] {
            assert!(valid_env_name(good), "{good:?}");
            assert!(check_env_name(good).is_ok());
        }
        for bad in ["", ".hidden", "-opt", "a/b", "a\nb", "a:b", "ünï", "a b", "a\tb", "a=b"] {
            let err = check_env_name(bad).unwrap_err();
            assert_eq!(err.exit_code(), crate::error::EXIT_USAGE);
            assert!(err.to_string().contains("[A-Za-z0-9_+]"), "{err}");
            assert!(!valid_env_name(bad), "{bad:?}");
        }
    }

    #[test]
    fn image_names() {
        assert_eq!(image_env_name(OsStr::new("e-1.0.sqsh")).as_deref(), Some("e-1.0"));
        assert_eq!(image_env_name(OsStr::new("e.sif")), None);
        assert_eq!(image_env_name(OsStr::new(".e.sqsh")), None);
    }

    #[test]
    fn config_relative_paths_resolve_against_the_scripts_dir() {
        let dir = tempfile::tempdir().unwrap();
        let source = dir.path().join("src.toml");
        std::fs::write(&source, "[container]\nenvs_dir = \"../envs\"\n").unwrap();
        let scripts = dir.path().join("site/scripts");
        let site = Site::load(Some(&scripts), Some(&source)).unwrap();
        assert_eq!(site.envs_dir().unwrap(), scripts.join("../envs"));
        assert_eq!(site.config_path(), scripts.join("launcher.toml"));
    }

    #[test]
    fn config_errors_name_the_source_file() {
        let dir = tempfile::tempdir().unwrap();
        let source = dir.path().join("src.toml");
        std::fs::write(&source, "[container]\nenvs = 1\n").unwrap();
        let err = Site::load(Some(&dir.path().join("s")), Some(&source)).unwrap_err();
        assert_eq!(err.exit_code(), crate::error::EXIT_CONFIG);
        assert!(
            err.to_string().starts_with(&format!("{}:2:", source.display())),
            "{err}"
        );
    }
}
