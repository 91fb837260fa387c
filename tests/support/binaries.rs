//! Where the binaries under test are: the stand-in runtime (a bin of this
//! package, so cargo builds it for the tests) and the launcher (a bin of
//! another package, which `cargo test --test …` does not build: it is built
//! here once per test process).

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

/// The freshly built stand-in runtime.
pub fn standin_runtime() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_standin-runtime"))
}

/// `target/<triple>/<profile>/`: the directory holding this test's `deps/`.
pub fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    exe.parent()
        .and_then(|deps| deps.parent())
        .expect("test binary lives in <profile>/deps/")
        .to_owned()
}

/// The launcher binary, built (or found up to date) by `cargo build`.
pub fn launcher() -> Result<PathBuf, String> {
    static LAUNCHER: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    LAUNCHER.get_or_init(|| build("launcher")).clone()
}

/// The installer binary, built the same way.
pub fn installer() -> Result<PathBuf, String> {
    static INSTALLER: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    INSTALLER.get_or_init(|| build("installer")).clone()
}

/// `cargo build -p NAME --bin NAME` in this test's profile.
fn build(name: &str) -> Result<PathBuf, String> {
    let dir = profile_dir();
    let profile = match dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") => "dev".to_owned(),
        Some(other) => other.to_owned(),
        None => "dev".to_owned(),
    };
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let output = Command::new(cargo)
        .args(["build", "--quiet", "-p", name, "--bin", name, "--profile", &profile])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .map_err(|e| format!("cannot run cargo to build the {name}: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "cargo build -p {name} failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    let binary = dir.join(name);
    if binary.is_file() {
        Ok(binary)
    } else {
        Err(format!("cargo built the {name} but {} is missing", binary.display()))
    }
}
