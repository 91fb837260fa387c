//! Directories the installer creates get mode 0755 whatever the umask
//! (the launcher refuses directories writable by others, L19), and `check`
//! looks at the versioned layout's directories too.
mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::*;

const ENV: &str = "e-1";

fn mode(path: &Path) -> u32 {
    fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o7777
}

/// `installer --scripts SCRIPTS ARGS…` run under `umask 000`.
fn under_umask_0(scripts: &Path) -> Command {
    let mut c = Command::new("sh");
    c.args(["-c", "umask 000; exec \"$0\" \"$@\""])
        .arg(env!("CARGO_BIN_EXE_installer"))
        .arg("--scripts")
        .arg(scripts)
        .env_remove("INSTALLER_SCRIPTS")
        .env(installer::swap::NO_EXCHANGE_VAR, "1");
    c
}

fn combined(out: &Output) -> String {
    stdout(out) + &stderr(out)
}

/// A deploy (and a second one, for the backup directory) into a site
/// whose scripts, envs and module directories do not exist yet.
fn deployed_under_umask_0() -> (Fixture, PathBuf) {
    let f = Fixture::new();
    let a = f.pack(ENV, &["tool-a"], &[], "a.sqsh");
    let b = f.pack(ENV, &["tool-b"], &[], "b.sqsh");
    fs::remove_dir_all(&f.envs).unwrap();
    let scripts = f.root().join("scripts2");
    for image in [&a, &b] {
        let out = under_umask_0(&scripts)
            .arg("--config")
            .arg(f.scripts.join("launcher.toml"))
            .arg("deploy")
            .arg(image)
            .args(["--env", ENV, "--launcher"])
            .arg(&f.launcher)
            .arg("--modules")
            .arg(f.root().join("modules/conda"))
            .output()
            .unwrap();
        assert_success(&out);
    }
    (f, scripts)
}

fn versioned_root(scripts: &Path) -> PathBuf {
    let real = fs::canonicalize(scripts.join(format!("{ENV}.d"))).unwrap();
    assert!(real.starts_with(fs::canonicalize(scripts.join(".versions")).unwrap()));
    real.parent().unwrap().to_path_buf()
}

#[test]
fn directories_made_under_umask_0_are_0755() {
    let (f, scripts) = deployed_under_umask_0();
    let dirs = [
        scripts.clone(),
        scripts.join(".versions"),
        versioned_root(&scripts),
        scripts.join(format!("{ENV}.d/bin")),
        f.envs.clone(),
        f.envs.join(".backup"),
        f.root().join("modules"),
        f.root().join("modules/conda"),
    ];
    for dir in dirs {
        assert_eq!(mode(&dir), 0o755, "{}", dir.display());
    }
    let out = Command::new(env!("CARGO_BIN_EXE_installer"))
        .arg("--scripts")
        .arg(&scripts)
        .arg("check")
        .output()
        .unwrap();
    assert_success(&out);
}

#[test]
fn check_reports_world_writable_versioned_directories() {
    let (_f, scripts) = deployed_under_umask_0();
    let check = || {
        Command::new(env!("CARGO_BIN_EXE_installer"))
            .arg("--scripts")
            .arg(&scripts)
            .arg("check")
            .output()
            .unwrap()
    };
    assert_success(&check());
    for dir in [scripts.join(".versions"), versioned_root(&scripts)] {
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o777)).unwrap();
        let out = check();
        assert_eq!(out.status.code(), Some(1), "{}", combined(&out));
        let real = fs::canonicalize(&dir).unwrap();
        assert!(
            combined(&out).contains(&format!("directory {} is writable by others", real.display())),
            "{}",
            combined(&out)
        );
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
    }
}
