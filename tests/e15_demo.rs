//! E15: `installer demo DIR` builds a whole installation, and E1 passes on
//! it: the demo's `python3` link runs the env's Python inside the container
//! (the stand-in runtime, or a real one from `LAUNCHER_TEST_RUNTIME`), with
//! the scripts path as `sys.executable`.
mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use support::{binaries, prereq};

const TEST: &str = "e15_demo_builds_an_installation_and_e1_passes_on_it";

/// The installer binary (another package's bin: built here, like the launcher).
fn installer() -> PathBuf {
    let dir = binaries::profile_dir();
    let profile = match dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") | None => "dev".to_owned(),
        Some(other) => other.to_owned(),
    };
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let out = Command::new(cargo)
        .args([
            "build",
            "--quiet",
            "-p",
            "installer",
            "--bin",
            "installer",
            "--profile",
            &profile,
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cannot run cargo to build the installer");
    assert!(
        out.status.success(),
        "cargo build -p installer failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    dir.join("installer")
}

/// The runtime as the demo's config will name it: the stand-in must be
/// called `apptainer` (it takes its flavour from its own file name).
fn runtime(root: &Path) -> PathBuf {
    if let Some(real) = prereq::real_runtime() {
        return real;
    }
    let path = root.join("runtime/apptainer");
    support::files::copy_executable(&binaries::standin_runtime(), &path).unwrap();
    path
}

#[test]
fn e15_demo_builds_an_installation_and_e1_passes_on_it() {
    if !prereq::bed_available(TEST) {
        return;
    }
    let launcher = binaries::launcher().unwrap();
    let root = tempfile::Builder::new()
        .prefix("launcher-e15-")
        .tempdir_in("/tmp")
        .unwrap();
    let runtime = runtime(root.path());
    let dir = root.path().join("demo");
    let out = Command::new(installer())
        .arg("demo")
        .arg(&dir)
        .arg("--launcher")
        .arg(&launcher)
        .arg("--runtime")
        .arg(&runtime)
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("HOME", root.path())
        .current_dir(root.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "demo failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    let python = dir.join("scripts/demo-1.0.d/bin/python3");
    let want = format!(
        "of env /opt/conda/demo-1.0 - inside the container; sys.executable = {}",
        python.display()
    );
    let line = stdout
        .lines()
        .find(|l| l.starts_with("hello from Python "))
        .unwrap_or_else(|| panic!("the demo's command printed nothing:\n{stdout}\n{stderr}"));
    assert!(line.ends_with(&want), "{line}\nwant …{want}");
    // The installation it left passes the installer's own check.
    let check = Command::new(installer())
        .args(["check", "--scripts"])
        .arg(dir.join("scripts"))
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .output()
        .unwrap();
    assert!(check.status.success(), "{}", String::from_utf8_lossy(&check.stdout));
}
