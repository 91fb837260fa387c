//! `installer check` (I10): a correct installation passes; each kind of
//! damage is found, named, and fails the run with exit 1.
mod common;

use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::process::Output;

use common::*;

fn installed() -> Fixture {
    let f = Fixture::new();
    f.image(
        "e-1.0",
        &[
            Entry::File(b"python3"),
            Entry::File(b"pip"),
            Entry::Link(b"python", "python3"),
        ],
    );
    f.farm("e-1.0");
    f
}

fn check(f: &Fixture) -> Output {
    f.installer().arg("check").output().unwrap()
}

fn assert_problem(out: &Output, needle: &str) {
    let text = stdout(out);
    assert_eq!(out.status.code(), Some(1), "check must fail:\n{text}{}", stderr(out));
    assert!(
        text.lines().any(|l| l.starts_with("problem: ") && l.contains(needle)),
        "no problem line containing {needle:?}:\n{text}"
    );
}

#[test]
fn i10_a_correct_installation_passes() {
    let f = installed();
    let out = check(&f);
    assert_success(&out);
    assert!(stdout(&out).contains("1 envs checked: 0 problems"), "{}", stdout(&out));
}

#[test]
fn i10_missing_link() {
    let f = installed();
    fs::remove_file(f.bin("e-1.0").join("pip")).unwrap();
    assert_problem(&check(&f), "e-1.0.d/bin/pip: missing");
}

#[test]
fn i10_stale_link() {
    let f = installed();
    symlink("../../launcher", f.bin("e-1.0").join("gone-tool")).unwrap();
    assert_problem(&check(&f), "e-1.0.d/bin/gone-tool: stale");
}

#[test]
fn i10_link_to_the_wrong_target() {
    let f = installed();
    let link = f.bin("e-1.0").join("python3");
    fs::remove_file(&link).unwrap();
    symlink("/usr/bin/python3", &link).unwrap();
    assert_problem(
        &check(&f),
        "e-1.0.d/bin/python3: points at /usr/bin/python3, not the launcher",
    );
}

#[test]
fn i10_l19_world_writable_config() {
    let f = installed();
    let config = f.scripts.join("launcher.toml");
    fs::set_permissions(&config, fs::Permissions::from_mode(0o666)).unwrap();
    assert_problem(&check(&f), "launcher.toml is writable by others");
}

#[test]
fn i10_l19_world_writable_directory_without_sticky_bit() {
    let f = installed();
    let bin = f.bin("e-1.0");
    fs::set_permissions(&bin, fs::Permissions::from_mode(0o777)).unwrap();
    assert_problem(&check(&f), "writable by others without the sticky bit");
    fs::set_permissions(&bin, fs::Permissions::from_mode(0o1777)).unwrap();
    let out = check(&f);
    assert_problem(&out, "e-1.0.d/bin: mode 1777, `installer farm` writes 0755");
    assert!(!stdout(&out).contains("sticky"), "{}", stdout(&out));
    // farm repairs it.
    f.farm("e-1.0");
    assert_success(&check(&f));
}

#[test]
fn i10_l19_world_writable_override_script() {
    let f = installed();
    fs::create_dir(f.scripts.join("overrides")).unwrap();
    write_exec(&f.scripts.join("overrides/qsub.sh"), "#!/bin/sh\n");
    f.farm("e-1.0");
    assert_success(&check(&f));
    fs::set_permissions(f.scripts.join("overrides/qsub.sh"), fs::Permissions::from_mode(0o757)).unwrap();
    assert_problem(&check(&f), "qsub.sh is writable by others");
}

#[test]
fn i10_config_that_does_not_parse() {
    let f = installed();
    fs::write(f.scripts.join("launcher.toml"), "[runtime]\nflavor = \"auto\"\n").unwrap();
    assert_problem(&check(&f), "launcher.toml:2:1: unknown field `flavor`");
}

#[test]
fn i10_no_runtime_and_no_base_image() {
    let f = installed();
    fs::remove_file(f.root().join("rt/apptainer")).unwrap();
    fs::remove_dir_all(f.root().join("base")).unwrap();
    let out = check(&f);
    assert_problem(&out, "runtime.path");
    assert_problem(&out, "base image");
}

#[test]
fn i10_image_problems_and_missing_trees() {
    let f = installed();
    // An image without a tree, and a tree whose image is corrupt.
    f.image("new-2.0", &[Entry::File(b"x")]);
    fs::write(f.envs.join("e-1.0.sqsh"), b"not squashfs at all").unwrap();
    let out = check(&f);
    assert_problem(&out, "new-2.0: no scripts tree");
    assert_problem(&out, "e-1.0: image");
}

#[test]
fn i10_aliases_must_resolve() {
    let f = installed();
    symlink("e-1.0.d", f.env_dir("e")).unwrap();
    assert_success(&check(&f));
    symlink("e-0.9.d", f.env_dir("old")).unwrap();
    assert_problem(&check(&f), "alias");
}

#[test]
fn i10_warns_when_the_scripts_tree_is_not_bound() {
    let f = installed();
    f.write_config("");
    let text = fs::read_to_string(f.scripts.join("launcher.toml")).unwrap();
    let unbound = text.replace(&format!("binds = [\"{}\"]", f.root().display()), "binds = [\"/usr\"]");
    fs::write(f.scripts.join("launcher.toml"), unbound).unwrap();
    let out = check(&f);
    // Under /tmp the runtime's default binds cover it; elsewhere they would not.
    if f.root().starts_with("/tmp") {
        assert_success(&out);
    } else {
        assert!(stdout(&out).contains("warning: scripts tree"), "{}", stdout(&out));
    }
    assert!(!stdout(&out).contains("problem:"), "{}", stdout(&out));
}

#[test]
fn i10_an_installation_other_users_cannot_run_is_a_problem() {
    let f = installed();
    let env_dir = f.env_dir("e-1.0");
    let cases = [
        (f.scripts.join("launcher"), 0o700, "not executable by other users"),
        (f.scripts.join("launcher.toml"), 0o600, "not readable by other users"),
        (env_dir.join("env.toml"), 0o600, "not readable by other users"),
        (f.live("e-1.0"), 0o600, "not readable by other users"),
        (f.scripts.clone(), 0o700, "not searchable by other users"),
        (env_dir.clone(), 0o700, "not searchable by other users"),
        (env_dir.join("bin"), 0o700, "not searchable by other users"),
        (f.envs.clone(), 0o700, "not searchable by other users"),
    ];
    for (path, mode, why) in cases {
        let before = fs::metadata(&path).unwrap().permissions();
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
        let out = check(&f);
        fs::set_permissions(&path, before).unwrap();
        let name = path.file_name().unwrap().to_string_lossy();
        assert_problem(&out, &format!("{name} is {why}"));
    }
    f.check_clean();
}
