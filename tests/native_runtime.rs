//! The native runtime (`runtime.flavour = "native"`): clean ends as root,
//! and the ordinary-user path (user namespace + squashfuse) as a second
//! real uid. The E-scenarios run under it too (`LAUNCHER_TEST_NATIVE=1`,
//! `.ci/test`); this file covers what only the native runtime promises.

mod support;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::bed::Bed;
use support::images::MAIN_ENV;
use support::run::run;

/// The uid the ordinary-user tests run as.
const USER: u32 = 2002;

fn native_bed(test: &str) -> Option<Bed> {
    let bed = Bed::for_test(test)?;
    let config = bed.default_config();
    let runtime_line = config.lines().find(|l| l.starts_with("path = ")).map(str::to_owned);
    let config = match runtime_line {
        Some(line) => config.replace(&line, "flavour = \"native\""),
        None => config,
    };
    bed.write_config(&config);
    Some(bed)
}

/// Mounts on the host that mention `dir`.
fn host_mounts_under(dir: &Path) -> Vec<String> {
    let needle = dir.display().to_string();
    fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter(|l| l.contains(&needle))
        .map(str::to_owned)
        .collect()
}

/// Loop devices whose backing file is under `dir`.
fn loop_devices_under(dir: &Path) -> Vec<String> {
    let needle = dir.display().to_string();
    let Ok(entries) = fs::read_dir("/sys/block") else {
        return vec![];
    };
    entries
        .flatten()
        .filter_map(|e| fs::read_to_string(e.path().join("loop/backing_file")).ok())
        .filter(|backing| backing.contains(&needle))
        .collect()
}

/// Live (not zombie) processes whose command line mentions `dir`.
fn live_processes_mentioning(dir: &Path, name: &str) -> Vec<u32> {
    let needle = dir.display().to_string();
    let mut found = Vec::new();
    for entry in fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(cmdline) = fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let text = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        let state = fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
        let zombie = state
            .rsplit(')')
            .next()
            .is_some_and(|rest| rest.trim_start().starts_with('Z'));
        if !zombie && text.contains(name) && text.contains(&needle) {
            found.push(pid);
        }
    }
    found
}

/// Wait (bounded) until `check` holds; the bound is a hang guard, not a timing assertion.
fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !check() {
        assert!(Instant::now() < deadline, "never happened: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn native_root_leaves_no_mount_or_loop_device_after_exit_signal_or_kill9() {
    let Some(bed) = native_bed("native_root_leaves_no_mount_or_loop_device_after_exit_signal_or_kill9") else {
        return;
    };
    let outcome = run(bed.command(bed.link(MAIN_ENV, "exitwith")).arg("42"));
    assert_eq!(outcome.code(), Some(42));
    let outcome = run(bed.command(bed.link(MAIN_ENV, "killself")).arg("USR1"));
    assert_eq!(outcome.signal(), Some(libc::SIGUSR1));
    // Killed with -9 while running.
    let mut child = bed
        .command(bed.link(MAIN_ENV, "launcher"))
        .args(["sleep", "60"])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    eventually("the sleep runs in the container", || {
        !loop_devices_under(&bed.root).is_empty()
    });
    child.kill().unwrap();
    let status = child.wait().unwrap();
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(libc::SIGKILL)
    );
    eventually("loop devices are freed", || loop_devices_under(&bed.root).is_empty());
    assert!(
        host_mounts_under(&bed.root).is_empty(),
        "{:?}",
        host_mounts_under(&bed.root)
    );
}

#[test]
fn native_images_are_mounted_read_only_nosuid_nodev() {
    let Some(bed) = native_bed("native_images_are_mounted_read_only_nosuid_nodev") else {
        return;
    };
    let outcome = run(bed.command(bed.link(MAIN_ENV, "launcher")).args([
        "sh",
        "-c",
        "awk '$5 == \"/\" {print $6}' /proc/self/mountinfo; touch /opt/conda/x 2>&1 || echo refused",
    ]));
    outcome.assert_success();
    let lines = outcome.stdout_lines();
    let options: Vec<&str> = lines[0].split(',').collect();
    for want in ["ro", "nosuid", "nodev"] {
        assert!(options.contains(&want), "root mounted {:?}", lines[0]);
    }
    assert_eq!(lines.last().map(String::as_str), Some("refused"));
}

/// Prepare a bed an ordinary user can run, or say why not.
fn user_bed(test: &str) -> Option<Bed> {
    let bed = native_bed(test)?;
    let fuse_ok = fs::metadata("/dev/fuse").is_ok_and(|m| m.permissions().mode() & 0o006 == 0o006);
    let squashfuse = support::prereq::find_on_path("squashfuse").is_some();
    let reason = match (fuse_ok, squashfuse) {
        (false, _) => {
            Some("/dev/fuse is not usable by users (mode 0666 as distributions ship it; .ci/run sets it)".into())
        }
        (_, false) => Some("squashfuse is not installed (apt-get install squashfuse)".into()),
        _ => None,
    };
    if !support::prereq::allowed(test, reason) {
        return None;
    }
    fs::set_permissions(&bed.root, fs::Permissions::from_mode(0o755)).unwrap();
    fs::set_permissions(&bed.work, fs::Permissions::from_mode(0o777)).unwrap();
    Some(bed)
}

fn as_user(bed: &Bed, program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut command = bed.command(program);
    // std drops the supplementary groups (setgroups) when it sets the uid as root.
    command.uid(USER).gid(USER);
    command
}

#[test]
fn native_as_a_user_runs_the_env_with_its_status_and_signals() {
    let Some(bed) = user_bed("native_as_a_user_runs_the_env_with_its_status_and_signals") else {
        return;
    };
    let outcome = run(as_user(&bed, bed.link(MAIN_ENV, "hello")));
    outcome.assert_success();
    assert_eq!(outcome.stdout_text(), "hello from analysis3-22.10\n");
    let python = bed.link(MAIN_ENV, "python3");
    let outcome = run(as_user(&bed, &python).args([
        "-c",
        "import os, sys; print(os.getuid(), sys.executable, os.readlink('/proc/self/exe'))",
    ]));
    outcome.assert_success();
    assert_eq!(
        outcome.stdout_text(),
        // python3 -> python3.11 in the conda-like env (support/conda_env.rs).
        format!(
            "{USER} {} /opt/conda/{MAIN_ENV}/bin/{}\n",
            python.display(),
            support::conda_env::INTERPRETER
        )
    );
    let outcome = run(as_user(&bed, bed.link(MAIN_ENV, "exitwith")).arg("42"));
    assert_eq!(outcome.code(), Some(42));
    let outcome = run(as_user(&bed, bed.link(MAIN_ENV, "killself")).arg("USR1"));
    assert_eq!(outcome.signal(), Some(libc::SIGUSR1));
    // The FUSE helpers are not the program's children: a bare `wait` returns.
    let outcome = run(as_user(&bed, bed.link(MAIN_ENV, "launcher")).args(["sh", "-c", "wait; echo waited"]));
    outcome.assert_success();
    assert_eq!(outcome.stdout_text(), "waited\n");
}

#[test]
fn native_as_a_user_leaves_no_helper_after_kill9() {
    let Some(bed) = user_bed("native_as_a_user_leaves_no_helper_after_kill9") else {
        return;
    };
    // The launcher names images as `<scripts>/../envs/…`: match on the bed dir.
    let image = bed.root.clone();
    let mut child = as_user(&bed, bed.link(MAIN_ENV, "launcher"))
        .args(["sleep", "60"])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    eventually("a squashfuse helper serves the image", || {
        !live_processes_mentioning(&image, "squashfuse").is_empty()
    });
    child.kill().unwrap();
    child.wait().unwrap();
    eventually("every helper has exited", || {
        live_processes_mentioning(&image, "squashfuse").is_empty()
    });
    // And after a normal exit.
    run(as_user(&bed, bed.link(MAIN_ENV, "hello"))).assert_success();
    eventually("every helper has exited", || {
        live_processes_mentioning(&image, "squashfuse").is_empty()
    });
}

#[test]
fn native_l19_refuses_an_image_others_could_change() {
    let Some(bed) = native_bed("native_l19_refuses_an_image_others_could_change") else {
        return;
    };
    let image = bed.image(MAIN_ENV);
    // The bed's image is a hard link to the shared cache: change a copy.
    let copy = image.with_extension("copy");
    fs::copy(&image, &copy).unwrap();
    fs::rename(&copy, &image).unwrap();
    fs::set_permissions(&image, fs::Permissions::from_mode(0o666)).unwrap();
    let outcome = run(bed.command(bed.link(MAIN_ENV, "hello")));
    assert_eq!(outcome.code(), Some(125), "{outcome:#?}");
    assert!(outcome.stderr.starts_with("launcher-native: "), "{}", outcome.stderr);
    assert!(
        outcome.stderr.contains(&format!("{MAIN_ENV}.sqsh")),
        "{}",
        outcome.stderr
    );
    assert!(outcome.stdout.is_empty());
}

#[test]
fn native_as_a_user_without_squashfuse_says_why_with_125() {
    let Some(bed) = user_bed("native_as_a_user_without_squashfuse_says_why_with_125") else {
        return;
    };
    // No squashfuse on this PATH: the ordinary-user path cannot work.
    let outcome = run(as_user(&bed, bed.link(MAIN_ENV, "hello")).env("PATH", &bed.hostbin));
    assert_eq!(outcome.code(), Some(125), "{outcome:#?}");
    let lines: Vec<&str> = outcome.stderr.lines().collect();
    assert_eq!(lines.len(), 2, "{}", outcome.stderr);
    assert!(
        lines[0].starts_with("launcher-native: ") && lines[0].contains("squashfuse"),
        "{}",
        lines[0]
    );
    assert!(lines[1].starts_with("launcher-native: hint: "), "{}", lines[1]);
    assert!(outcome.stdout.is_empty());
}

#[test]
fn native_as_a_user_whose_own_installation_sits_under_tmp() {
    let Some(bed) = user_bed("native_as_a_user_whose_own_installation_sits_under_tmp") else {
        return;
    };
    // The user owns the scripts tree (the installation's owner is uid 2002):
    // inside the user namespace `/` and `/tmp` show as the overflow uid, and
    // the inside hop must not take them for another user's.
    let chown = |path: &Path| std::os::unix::fs::lchown(path, Some(USER), Some(USER)).unwrap();
    chown(&bed.scripts);
    chown(&bed.config_path());
    let outcome = run(as_user(&bed, bed.link(MAIN_ENV, "launcher")).args(["sh", "-c", "echo inside-ok"]));
    outcome.assert_success();
    assert_eq!(outcome.stdout_text(), "inside-ok\n");
}
