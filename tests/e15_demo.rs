//! E15: `installer demo DIR` builds a whole installation, and E1 passes on
//! it: the demo's `python3` link runs the env's Python (the host's, copied
//! into the env with its standard library, as conda lays one out) inside the
//! container, with the scripts path as `sys.executable`, the env's
//! in-container prefix as `sys.prefix` (no `PYTHONHOME` set anywhere) and
//! the env's own package `demopkg` 1.0 installed. Under the stand-in runtime (or a real one from
//! `LAUNCHER_TEST_RUNTIME`), and, as on a fresh machine with no container
//! runtime (the README's first command), under the launcher's own native
//! runtime, with the image packed by `mksquashfs` or, without it, by the
//! `backhand` library.
mod support;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use support::{binaries, prereq};

const ENV_PREFIX: &str = "/opt/conda/demo-1.0";

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

fn installer() -> PathBuf {
    binaries::installer().unwrap()
}

/// `installer demo DIR` with the real launcher, a clean environment and
/// `PATH`; `extra` after DIR.
fn demo(root: &Path, dir: &Path, path: &Path, extra: &[&std::ffi::OsStr]) -> Output {
    let launcher = binaries::launcher().unwrap();
    Command::new(installer())
        .arg("demo")
        .arg(dir)
        .arg("--launcher")
        .arg(&launcher)
        .args(extra)
        .env_clear()
        .env("PATH", path)
        .env("HOME", root)
        .current_dir(root)
        .output()
        .unwrap()
}

fn assert_demo_succeeded(out: &Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "demo failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// E1 on the demo's output: its Python ran inside the container, called
/// through the scripts path, with the env's prefix, its standard library
/// and its package from the env (paths that exist only in the image), the
/// package's version read from its `.dist-info`. And the env sets no
/// `PYTHONHOME`.
fn assert_python_ran_inside(stdout: &str, dir: &Path) {
    let start = stdout
        .lines()
        .position(|l| l.starts_with("hello from Python "))
        .unwrap_or_else(|| panic!("the demo's python printed nothing:\n{stdout}"));
    let lines: Vec<&str> = stdout.lines().skip(start).take(6).collect();
    assert_eq!(lines.len(), 6, "{stdout}");
    assert!(lines[0].ends_with(" inside the container"), "{stdout}");
    let python = dir.join("scripts/demo-1.0.d/bin/python3");
    assert_eq!(lines[1], format!("  sys.executable = {}", python.display()), "{stdout}");
    assert_eq!(lines[2], format!("  sys.prefix     = {ENV_PREFIX}"), "{stdout}");
    assert_eq!(lines[3], format!("  CONDA_PREFIX   = {ENV_PREFIX}"), "{stdout}");
    let os_module = lines[4].strip_prefix("  os module      = ").unwrap_or("");
    assert!(
        os_module.starts_with(&format!("{ENV_PREFIX}/lib/python3.")) && os_module.ends_with("/os.py"),
        "{stdout}"
    );
    assert_eq!(
        lines[5],
        format!("  demopkg        = 1.0 from {ENV_PREFIX}/lib/python3/dist-packages/demopkg/__init__.py"),
        "{stdout}"
    );
    let env_toml = fs::read_to_string(dir.join("scripts/demo-1.0.d/env.toml")).unwrap();
    assert!(!env_toml.contains("PYTHONHOME"), "{env_toml}");
    assert!(
        !Path::new(ENV_PREFIX).exists(),
        "{ENV_PREFIX} exists on the host: the test cannot tell the image from it"
    );
}

#[test]
fn e15_demo_builds_an_installation_and_e1_passes_on_it() {
    const TEST: &str = "e15_demo_builds_an_installation_and_e1_passes_on_it";
    if !prereq::bed_available(TEST) {
        return;
    }
    let root = tempfile::Builder::new()
        .prefix("launcher-e15-")
        .tempdir_in("/tmp")
        .unwrap();
    let runtime = runtime(root.path());
    let dir = root.path().join("demo");
    let out = demo(
        root.path(),
        &dir,
        Path::new("/usr/sbin:/usr/bin:/sbin:/bin"),
        &["--runtime".as_ref(), runtime.as_os_str()],
    );
    let stdout = assert_demo_succeeded(&out);
    assert_python_ran_inside(&stdout, &dir);
    assert!(
        stdout.contains(&format!(
            "by {} ({})",
            runtime.file_name().unwrap().to_string_lossy(),
            runtime.display()
        )),
        "{stdout}"
    );
    // The installation it left passes the installer's own check.
    let check = Command::new(installer())
        .args(["check", "--scripts"])
        .arg(dir.join("scripts"))
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .output()
        .unwrap();
    assert!(check.status.success(), "{}", String::from_utf8_lossy(&check.stdout));
}

/// Why the native runtime cannot run the demo as root here, if it cannot.
fn native_root_missing() -> Option<String> {
    if !nix::unistd::geteuid().is_root() {
        return Some("runs the demo as root (the native runtime's loop devices); run the tests as root".into());
    }
    if !Path::new("/dev/loop-control").exists() {
        return Some("/dev/loop-control missing: no loop devices to mount squashfs images".into());
    }
    let filesystems = fs::read_to_string("/proc/filesystems").unwrap_or_default();
    if !filesystems.lines().any(|l| l.ends_with("\toverlay")) {
        return Some("the kernel has no overlayfs (not in /proc/filesystems)".into());
    }
    if !Path::new(prereq::SYSTEM_PYTHON).is_file() {
        return Some(format!(
            "{} not found (the demo's env copies it)",
            prereq::SYSTEM_PYTHON
        ));
    }
    None
}

/// A directory for `PATH` with links to just `tools` (when installed), and
/// no container runtime: a machine where only those are installed.
fn tool_dir(root: &Path, tools: &[&str]) -> PathBuf {
    let dir = root.join("path");
    fs::create_dir_all(&dir).unwrap();
    for tool in tools {
        if let Some(real) = prereq::find_on_path(tool) {
            std::os::unix::fs::symlink(real, dir.join(tool)).unwrap();
        }
    }
    dir
}

/// The demo with no container runtime on `PATH`, as root: it must choose
/// the native runtime, write it into the config, and run Python from the
/// image for real.
fn native_demo(test: &str, tools: &[&str]) -> Option<(String, PathBuf, tempfile::TempDir)> {
    if !prereq::allowed(test, native_root_missing()) {
        return None;
    }
    let root = tempfile::Builder::new()
        .prefix("launcher-e15-native-")
        .tempdir_in("/tmp")
        .unwrap();
    let path = tool_dir(root.path(), tools);
    let dir = root.path().join("demo");
    let stdout = assert_demo_succeeded(&demo(root.path(), &dir, &path, &[]));
    assert_python_ran_inside(&stdout, &dir);
    assert!(
        stdout.contains(
            "demo: no apptainer or singularity on PATH: running, with the launcher's own native runtime \
             (runtime.flavour = \"native\"):"
        ),
        "{stdout}"
    );
    assert!(
        stdout.contains(
            "demo: that was the env's python, run from the image envs/demo-1.0.sqsh by the native runtime \
             (as root: kernel squashfs on loop devices)"
        ),
        "{stdout}"
    );
    let config_path = dir.join("scripts/launcher.toml");
    let config = launcher::config::Config::parse(&fs::read(&config_path).unwrap(), &config_path).unwrap();
    assert_eq!(config.runtime.flavour, launcher::config::FlavourSetting::Native);
    assert!(
        config.runtime.path.is_none(),
        "the native runtime is the launcher itself"
    );
    // It stays usable: the same link runs again, straight from the scripts
    // tree. Nothing leaks into what it starts: another Python (the host's,
    // bound in) started from it has its own prefix (a PYTHONHOME set by the
    // env would give it the env's, with the wrong standard library).
    let again = Command::new(dir.join("scripts/demo-1.0.d/bin/python3"))
        .args([
            "-c",
            "import os, subprocess, sys; print(sys.prefix, os.environ.get('PYTHONHOME')); \
             print(subprocess.run(['/usr/bin/python3', '-c', 'import sys, json; print(sys.prefix)'], \
             capture_output=True, text=True, check=True).stdout, end='')",
        ])
        .env_clear()
        .env("PATH", &path)
        .output()
        .unwrap();
    assert!(again.status.success(), "{}", String::from_utf8_lossy(&again.stderr));
    assert_eq!(
        String::from_utf8_lossy(&again.stdout),
        format!("{ENV_PREFIX} None\n/usr\n")
    );
    // The package's console script, through its farm link: its `#!` names
    // the env's interpreter by its in-container path.
    let script = Command::new(dir.join("scripts/demo-1.0.d/bin/demopkg-info"))
        .env_clear()
        .env("PATH", &path)
        .output()
        .unwrap();
    assert!(script.status.success(), "{}", String::from_utf8_lossy(&script.stderr));
    let text = String::from_utf8_lossy(&script.stdout);
    assert!(
        text.starts_with(&format!(
            "demopkg 1.0 from {ENV_PREFIX}/lib/python3/dist-packages/demopkg/__init__.py\n"
        )),
        "{text}"
    );
    assert!(text.contains(&format!("  sys.prefix     = {ENV_PREFIX}\n")), "{text}");
    assert!(text.contains("  inside the container\n"), "{text}");
    Some((stdout, dir, root))
}

/// The README's first command on a machine with squashfs-tools but no
/// container runtime: mksquashfs packs, the native runtime runs.
#[test]
fn e15_demo_runs_python_from_the_image_under_the_native_runtime() {
    let Some((stdout, _dir, _root)) = native_demo(
        "e15_demo_runs_python_from_the_image_under_the_native_runtime",
        &["mksquashfs"],
    ) else {
        return;
    };
    if prereq::find_on_path("mksquashfs").is_some() {
        assert!(
            stdout.contains("demo: packing envs/demo-1.0.sqsh with mksquashfs ("),
            "{stdout}"
        );
    }
}

/// A fresh machine: no squashfs-tools either. The backhand library packs
/// the image, and the kernel mounts it (the native runtime as root).
#[test]
fn e15_demo_packs_with_backhand_and_the_image_mounts_and_runs() {
    let Some((stdout, dir, _root)) = native_demo("e15_demo_packs_with_backhand_and_the_image_mounts_and_runs", &[])
    else {
        return;
    };
    assert!(
        stdout.contains("demo: packing envs/demo-1.0.sqsh with the backhand library (no mksquashfs on PATH)"),
        "{stdout}"
    );
    // The shell tools from the backhand image run too, with the env's activation.
    let out = Command::new(dir.join("scripts/demo-1.0.d/bin/demo-info"))
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(&format!("env prefix: {ENV_PREFIX}\n")), "{text}");
    assert!(text.contains("inside a container"), "{text}");
}

/// The uid the ordinary-user demo runs as (as in `tests/native_runtime.rs`).
const USER: u32 = 2002;

/// Why the native runtime cannot run the demo as an ordinary user here.
fn native_user_missing() -> Option<String> {
    if !nix::unistd::geteuid().is_root() {
        return Some("switches to a second uid: run the tests as root".into());
    }
    let fuse_ok = fs::metadata("/dev/fuse")
        .is_ok_and(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o006 == 0o006);
    if !fuse_ok {
        return Some("/dev/fuse is not usable by users (mode 0666 as distributions ship it; .ci/run sets it)".into());
    }
    if prereq::find_on_path("squashfuse").is_none() {
        return Some("squashfuse is not installed (apt-get install squashfuse)".into());
    }
    if !Path::new(prereq::SYSTEM_PYTHON).is_file() {
        return Some(format!(
            "{} not found (the demo's env copies it)",
            prereq::SYSTEM_PYTHON
        ));
    }
    None
}

/// The demo as an ordinary user on a machine without squashfs-tools or a
/// container runtime, but with squashfuse: backhand packs, the native
/// runtime mounts the image with squashfuse in a user namespace, and the
/// Python runs from it. (Under `/var/tmp`: as a user, an installation
/// under `/tmp` is refused by the launcher's inside hop; see
/// docs/installer.md, known limits.)
#[test]
fn e15_demo_as_a_user_runs_python_under_the_native_runtime() {
    let test = "e15_demo_as_a_user_runs_python_under_the_native_runtime";
    if !prereq::allowed(test, native_user_missing()) {
        return;
    }
    let root = tempfile::Builder::new()
        .prefix("launcher-e15-user-")
        .tempdir_in("/var/tmp")
        .unwrap();
    // Copies the user can run, wherever the build tree is.
    let installer_copy = root.path().join("bin/installer");
    let launcher_copy = root.path().join("bin/launcher");
    support::files::copy_executable(&installer(), &installer_copy).unwrap();
    support::files::copy_executable(&binaries::launcher().unwrap(), &launcher_copy).unwrap();
    let path = tool_dir(root.path(), &["squashfuse"]);
    let home = root.path().join("home");
    fs::create_dir(&home).unwrap();
    for dir in [root.path(), &home] {
        nix::unistd::chown(dir, Some(USER.into()), Some(USER.into())).unwrap();
    }
    fs::set_permissions(root.path(), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let dir = root.path().join("demo");
    let out = {
        use std::os::unix::process::CommandExt;
        Command::new(&installer_copy)
            .arg("demo")
            .arg(&dir)
            .arg("--launcher")
            .arg(&launcher_copy)
            .env_clear()
            .env("PATH", &path)
            .env("HOME", &home)
            .current_dir(&home)
            .uid(USER)
            .gid(USER)
            .output()
            .unwrap()
    };
    let stdout = assert_demo_succeeded(&out);
    assert!(
        stdout.contains("demo: packing envs/demo-1.0.sqsh with the backhand library (no mksquashfs on PATH)"),
        "{stdout}"
    );
    assert_python_ran_inside(&stdout, &dir);
    assert!(
        stdout.contains(
            "demo: that was the env's python, run from the image envs/demo-1.0.sqsh by the native runtime \
             (as a user: a user namespace and squashfuse)"
        ),
        "{stdout}"
    );
}
