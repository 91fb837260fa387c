//! Every user-caused error: one line `installer: …` naming the thing at
//! fault, the documented exit status, and nothing half-built left behind.
mod common;

use std::fs;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use common::*;
use installer::error::*;

/// Exactly one line on stderr, `installer: …` containing `needle`.
fn assert_error(out: &Output, code: i32, needle: &str) {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(code), "stderr: {err}");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "want one line: {err}");
    assert!(
        lines[0].starts_with("installer: ") && lines[0].contains(needle),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
}

fn farm(f: &Fixture, env: &str) -> Output {
    f.installer()
        .args(["farm", env, "--launcher"])
        .arg(&f.launcher)
        .output()
        .unwrap()
}

fn assert_untouched(f: &Fixture, env: &str) {
    assert!(fs::symlink_metadata(f.env_dir(env)).is_err(), "a tree was built");
    assert!(!f.scripts.join("launcher").exists(), "the launcher was installed");
    assert!(f.leftovers().is_empty(), "{:?}", f.leftovers());
}

#[test]
fn corrupt_image() {
    let f = Fixture::new();
    fs::write(f.envs.join("e.sqsh"), vec![0x5a; 8192]).unwrap();
    assert_error(&farm(&f, "e"), EXIT_IMAGE, "e.sqsh: not a readable squashfs image");
    assert_untouched(&f, "e");
}

#[test]
fn truncated_image() {
    let f = Fixture::new();
    let image = f.image("e", &files(&numbered(500)));
    let bytes = fs::read(&image).unwrap();
    fs::write(&image, &bytes[..bytes.len() / 2]).unwrap();
    assert_error(&farm(&f, "e"), EXIT_IMAGE, "e.sqsh");
    assert_untouched(&f, "e");
}

#[test]
fn missing_image() {
    let f = Fixture::new();
    assert_error(&farm(&f, "nope"), EXIT_IMAGE, "nope.sqsh: cannot open");
    assert_untouched(&f, "nope");
}

#[test]
fn image_without_the_env_bin() {
    let f = Fixture::new();
    // Built for env "other", installed under the name "e".
    make_image(
        &f.root().join("src"),
        PREFIX,
        "other",
        &[Entry::File(b"x")],
        &f.envs.join("e.sqsh"),
    );
    assert_error(&farm(&f, "e"), EXIT_IMAGE, "has no directory /opt/conda/e/bin");
    assert_untouched(&f, "e");
}

#[test]
fn a_bad_image_stops_the_run_before_any_change() {
    let f = Fixture::new();
    f.image("good", &[Entry::File(b"x")]);
    fs::write(f.envs.join("bad.sqsh"), b"junk").unwrap();
    let out = f
        .installer()
        .args(["farm", "--all", "--launcher"])
        .arg(&f.launcher)
        .output()
        .unwrap();
    assert_error(&out, EXIT_IMAGE, "bad.sqsh");
    assert_untouched(&f, "good");
}

#[test]
fn scripts_dir_not_writable() {
    let f = Fixture::new();
    f.image("e", &[Entry::File(b"x")]);
    let root = nix::unistd::geteuid().is_root();
    let mut command = if root {
        // Root may write anywhere: run as user nobody instead, from a copy
        // of the installer inside the fixture, where that user can reach it
        // (the build tree may sit in a private directory, e.g. `mktemp -d`).
        let installer = f.root().join("installer-copy");
        copy_exec(Path::new(env!("CARGO_BIN_EXE_installer")), &installer);
        let mut command = Command::new(installer);
        command.arg("--scripts").arg(&f.scripts).env_remove("INSTALLER_SCRIPTS");
        command
    } else {
        f.installer()
    };
    command.args(["farm", "e", "--launcher"]).arg(&f.launcher);
    if root {
        fs::set_permissions(&f.launcher, fs::Permissions::from_mode(0o755)).unwrap();
        command.uid(65534).gid(65534);
    } else {
        fs::set_permissions(&f.scripts, fs::Permissions::from_mode(0o555)).unwrap();
    }
    let out = command.output().unwrap();
    fs::set_permissions(&f.scripts, fs::Permissions::from_mode(0o755)).unwrap();
    assert_error(
        &out,
        EXIT_FILESYSTEM,
        &format!("scripts directory {} is not writable", f.scripts.display()),
    );
    assert_untouched(&f, "e");
}

#[test]
fn i4_lock_held_with_no_wait() {
    let f = Fixture::new();
    f.image("e", &[Entry::File(b"x")]);
    let held = installer::lock::acquire(&f.scripts, false, |_| {}).unwrap();
    let out = f
        .installer()
        .args(["farm", "e", "--no-wait", "--launcher"])
        .arg(&f.launcher)
        .output()
        .unwrap();
    assert_error(&out, EXIT_LOCK_HELD, &format!("held by pid {}", std::process::id()));
    assert!(fs::symlink_metadata(f.env_dir("e")).is_err());
    drop(held);
}

#[test]
fn i4_second_run_waits_for_the_lock_and_says_so() {
    let f = Fixture::new();
    f.image("e", &[Entry::File(b"x")]);
    let held = installer::lock::acquire(&f.scripts, false, |_| {}).unwrap();
    let mut child = f
        .installer()
        .args(["farm", "e", "--launcher"])
        .arg(&f.launcher)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    let mut err = BufReader::new(child.stderr.take().unwrap());
    err.read_line(&mut first).unwrap();
    assert!(
        first.starts_with("installer: waiting for lock ") && first.contains("held by pid"),
        "{first}"
    );
    // Still waiting: nothing built while we hold the lock.
    assert!(fs::symlink_metadata(f.env_dir("e")).is_err());
    drop(held);
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    assert!(f.bin("e").join("x").symlink_metadata().is_ok());
}

#[test]
fn config_errors() {
    let f = Fixture::new();
    f.image("e", &[Entry::File(b"x")]);
    fs::write(
        f.scripts.join("launcher.toml"),
        "[container]\nenvs_dir = \"../envs\"\nbindz = []\n",
    )
    .unwrap();
    assert_error(&farm(&f, "e"), EXIT_CONFIG, "launcher.toml:3:1: unknown field `bindz`");
    fs::write(f.scripts.join("launcher.toml"), "").unwrap();
    assert_error(&farm(&f, "e"), EXIT_CONFIG, "container.envs_dir is not set");
    fs::remove_file(f.scripts.join("launcher.toml")).unwrap();
    assert_error(&farm(&f, "e"), EXIT_CONFIG, "cannot read config");
    assert!(fs::symlink_metadata(f.env_dir("e")).is_err());
}

#[test]
fn usage_errors() {
    let f = Fixture::new();
    let bare = std::process::Command::new(env!("CARGO_BIN_EXE_installer"))
        .env_remove("INSTALLER_SCRIPTS")
        .args(["farm", "e"])
        .output()
        .unwrap();
    assert_error(&bare, EXIT_USAGE, "pass --scripts DIR or --config FILE");
    assert_error(&farm(&f, "../x"), EXIT_USAGE, "'../x' is not a valid environment name");
    // ':' breaks PATH-like lists; Lmod cannot read a non-ASCII modulefile name.
    for bad in ["a:b", "ünï"] {
        f.image(bad, &[Entry::File(b"a")]);
        let rule = "not a valid environment name: names are ASCII letters";
        assert_error(&farm(&f, bad), EXIT_USAGE, rule);
        let out = f.installer().args(["alias", bad, "e"]).output().unwrap();
        assert_error(&out, EXIT_USAGE, rule);
        let out = f.deploy(&f.live(bad), bad).output().unwrap();
        assert_error(&out, EXIT_USAGE, rule);
    }
    let out = f.installer().arg("frobnicate").output().unwrap();
    assert_eq!(out.status.code(), Some(EXIT_USAGE));
}

#[test]
fn missing_launcher_binary() {
    let f = Fixture::new();
    f.image("e", &[Entry::File(b"x")]);
    let out = f
        .installer()
        .args(["farm", "e", "--launcher", "/nonexistent/launcher"])
        .output()
        .unwrap();
    assert_error(&out, EXIT_FILESYSTEM, "/nonexistent/launcher");
    assert_untouched(&f, "e");
}

/// Without mksquashfs the demo packs with the backhand library (tested in
/// `tests/demo.rs`, `i12_demo_packs_with_backhand_without_mksquashfs`); what
/// it cannot do without is the launcher binary: one line naming the path it
/// looked at and how to get one, exit 5, nothing made.
#[test]
fn i12_demo_without_a_launcher_binary_says_how_to_build_it() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_installer"))
        .arg("demo")
        .arg(dir.path().join("demo"))
        .args(["--launcher", "/nonexistent/launcher"])
        .env("PATH", dir.path())
        .output()
        .unwrap();
    assert_error(
        &out,
        EXIT_FILESYSTEM,
        "/nonexistent/launcher: launcher binary not found; build it (cargo build -p launcher) or pass --launcher PATH",
    );
    assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0, "something was made");
}

#[test]
fn every_subcommand_has_help() {
    for sub in ["farm", "check", "status", "demo"] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_installer"))
            .args([sub, "--help"])
            .output()
            .unwrap();
        assert_success(&out);
        assert!(stdout(&out).contains("Usage: installer"), "{sub}: {}", stdout(&out));
    }
}

/// issue 10 item 6, for the installer: only a regular file of at most 1 MiB
/// is read as a config; `/dev/zero`, a FIFO or a huge file is one line and
/// exit 3, never an allocation abort or a hang.
#[test]
fn config_that_is_not_a_sane_file() {
    let f = Fixture::new();
    let fifo = f.root().join("fifo.toml");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();
    let huge = f.root().join("huge.toml");
    fs::File::create(&huge).unwrap().set_len((1 << 20) + 1).unwrap();
    let cases = [
        (Path::new("/dev/zero"), "not a regular file"),
        (fifo.as_path(), "not a regular file"),
        (
            huge.as_path(),
            "larger than the limit of 1048576 bytes (1 MiB): 1048577 bytes",
        ),
    ];
    for (config, why) in cases {
        let out = Command::new(env!("CARGO_BIN_EXE_installer"))
            .arg("--config")
            .arg(config)
            .args(["--scripts"])
            .arg(&f.scripts)
            .arg("status")
            .output()
            .unwrap();
        assert_error(
            &out,
            EXIT_CONFIG,
            &format!("cannot read config {}: {why}", config.display()),
        );
    }
}
