//! Can this machine run the end-to-end bed? If not, tests are skipped with a
//! printed reason, unless `LAUNCHER_E2E_REQUIRED=1` (CI) makes that a failure.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// Set to `1` to turn every skip into a test failure.
pub const REQUIRED_VAR: &str = "LAUNCHER_E2E_REQUIRED";
/// Path of a real `apptainer`/`singularity` to use instead of the stand-in.
pub const RUNTIME_VAR: &str = "LAUNCHER_TEST_RUNTIME";
/// A real base image (SIF or sandbox) to use with `LAUNCHER_TEST_RUNTIME`.
pub const BASE_IMAGE_VAR: &str = "LAUNCHER_TEST_BASE_IMAGE";
/// `LAUNCHER_TEST_NATIVE=1`: the beds use the launcher's native runtime
/// (`runtime.flavour = "native"`) instead of the stand-in.
pub const NATIVE_VAR: &str = "LAUNCHER_TEST_NATIVE";

/// Do the beds run the native runtime?
pub fn native_runtime() -> bool {
    std::env::var_os(NATIVE_VAR).is_some_and(|v| v == "1")
}
/// The Python the env images are built from (Debian's, with `venv`).
pub const SYSTEM_PYTHON: &str = "/usr/bin/python3";

/// `true` when an end-to-end test may go on. Otherwise prints
/// `SKIP <test>: <reason>` and returns `false`, or panics when skips are not
/// allowed.
pub fn bed_available(test: &str) -> bool {
    allowed(test, unavailable_reason())
}

/// Like [`bed_available`], for tests of the stand-in alone (no venv needed,
/// always the stand-in, never a real runtime).
pub fn standin_available(test: &str) -> bool {
    static REASON: OnceLock<Option<String>> = OnceLock::new();
    allowed(
        test,
        REASON.get_or_init(|| tools_missing().or_else(standin_missing)).clone(),
    )
}

/// The skip rule itself, for other prerequisites (e.g. the module tools):
/// `true` when `reason` is `None`, else skip or fail as above.
pub fn allowed(test: &str, reason: Option<String>) -> bool {
    let Some(reason) = reason else { return true };
    if std::env::var_os(REQUIRED_VAR).is_some_and(|v| v == "1") {
        panic!("{test}: the end-to-end bed is required ({REQUIRED_VAR}=1) but unavailable: {reason}");
    }
    println!("SKIP {test}: {reason}");
    eprintln!("SKIP {test}: {reason}");
    false
}

/// A real runtime named by `LAUNCHER_TEST_RUNTIME`, if any.
pub fn real_runtime() -> Option<PathBuf> {
    std::env::var_os(RUNTIME_VAR)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// Why the bed cannot run here, checked once per test process.
pub fn unavailable_reason() -> Option<String> {
    static REASON: OnceLock<Option<String>> = OnceLock::new();
    REASON.get_or_init(check).clone()
}

fn check() -> Option<String> {
    if let Some(reason) = tools_missing() {
        return Some(reason);
    }
    if !Path::new(SYSTEM_PYTHON).exists() {
        return Some(format!("{SYSTEM_PYTHON} not found (the env images are built from it)"));
    }
    let venv_ok = std::process::Command::new(SYSTEM_PYTHON)
        .args(["-c", "import venv, ensurepip"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !venv_ok {
        return Some(format!("{SYSTEM_PYTHON} cannot make venvs (install python3-venv)"));
    }
    // The main env is built like a conda env from Debian's Python (issue 11).
    if let Some(reason) = super::conda_env::missing() {
        return Some(reason);
    }
    match real_runtime() {
        Some(runtime) if !runtime.is_file() => Some(format!("{RUNTIME_VAR}={} is not a file", runtime.display())),
        Some(_) if !nix::unistd::geteuid().is_root() && !user_namespaces_work() => {
            Some("building the venv image needs root or unprivileged user namespaces".into())
        }
        Some(_) => None,
        None => standin_missing(),
    }
}

/// Programs the image builders call.
fn tools_missing() -> Option<String> {
    for tool in ["mksquashfs", "unsquashfs"] {
        if find_on_path(tool).is_none() {
            return Some(format!("{tool} not found on PATH (install squashfs-tools)"));
        }
    }
    if !Path::new("/usr/bin/unshare").exists() {
        return Some("/usr/bin/unshare not found (util-linux)".into());
    }
    None
}

/// What the stand-in runtime needs to mount.
fn standin_missing() -> Option<String> {
    if !nix::unistd::geteuid().is_root() {
        return Some(
            "the stand-in runtime needs root (mount namespace, loop-mounted squashfs, overlayfs); \
             its unprivileged mode (user namespaces + squashfuse) is not implemented; \
             run as root or set LAUNCHER_TEST_RUNTIME to a real apptainer"
                .into(),
        );
    }
    if !Path::new("/dev/loop-control").exists() {
        return Some("/dev/loop-control missing: no loop devices to mount squashfs images".into());
    }
    let filesystems = std::fs::read_to_string("/proc/filesystems").unwrap_or_default();
    if !filesystems.lines().any(|l| l.ends_with("\toverlay")) {
        return Some("the kernel has no overlayfs (not in /proc/filesystems)".into());
    }
    None
}

fn user_namespaces_work() -> bool {
    std::process::Command::new("/usr/bin/unshare")
        .args(["--map-root-user", "--mount", "true"])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// First `name` on the test process's `PATH`.
pub fn find_on_path(name: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}
