//! `installer farm` on real images made with mksquashfs (I1–I3).
mod common;

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use common::*;
use launcher::config::EnvFacts;

fn link_target(path: &Path) -> PathBuf {
    fs::read_link(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn i2_ten_entries_get_relative_links_plus_launcher() {
    let f = Fixture::new();
    let names = numbered(10);
    f.image("e-1.0", &files(&names));
    let out = f.farm("e-1.0");
    assert!(stdout(&out).contains("e-1.0: built (12 links)"), "{}", stdout(&out));
    let mut want = names.clone();
    want.push(b"launcher".to_vec());
    want.push(b"launcher.sh".to_vec());
    want.sort();
    assert_eq!(f.bin_names("e-1.0"), want);
    for name in &want {
        let link = f.bin("e-1.0").join(String::from_utf8_lossy(name).as_ref());
        assert_eq!(link_target(&link), Path::new("../../launcher"));
        // The chain ends at the installed launcher binary.
        assert_eq!(
            fs::canonicalize(&link).unwrap(),
            fs::canonicalize(f.scripts.join("launcher")).unwrap()
        );
    }
    assert_eq!(
        fs::read(f.scripts.join("launcher")).unwrap(),
        fs::read(&f.launcher).unwrap()
    );
    assert_eq!(fs::metadata(f.scripts.join("launcher")).unwrap().mode() & 0o777, 0o755);
    let facts = EnvFacts::parse(
        &fs::read(f.env_dir("e-1.0").join("env.toml")).unwrap(),
        Path::new("env.toml"),
    )
    .unwrap();
    assert_eq!(facts.env["CONDA_PREFIX"], "/opt/conda/e-1.0");
    assert_eq!(facts.env["CONDA_DEFAULT_ENV"], "e-1.0");
    assert!(f.leftovers().is_empty(), "{:?}", f.leftovers());
}

#[test]
fn i2_ten_thousand_entries() {
    let f = Fixture::new();
    let names = numbered(10_000);
    f.image("big", &files(&names));
    f.farm("big");
    let got = f.bin_names("big");
    assert_eq!(got.len(), 10_002, "10,000 entries, launcher, launcher.sh");
    assert!(got.contains(&b"cmd09999".to_vec()) && got.contains(&b"cmd00000".to_vec()));
    assert_eq!(link_target(&f.bin("big").join("cmd04242")), Path::new("../../launcher"));
}

#[test]
fn i1_odd_names_symlinks_and_directories() {
    let f = Fixture::new();
    let entries = [
        Entry::File(b"with space"),
        Entry::File("ünïcødé-ツール".as_bytes()),
        Entry::File(b"caf\xe9"), // not UTF-8
        Entry::File(b"'quote\"$*"),
        Entry::File(b".hidden"),
        Entry::File(b"tab\there"),
        Entry::File(b"nl\nhere"),
        Entry::File(b"launcher"),
        Entry::Link(b"python", "python3.11"),
        Entry::Link(b"dangling", "/nowhere/at/all"),
        Entry::File(b"python3.11"),
        Entry::Dir(b"subdir"),
    ];
    f.image("odd", &entries);
    let out = f.farm("odd");
    let got = f.bin_names("odd");
    let mut want: Vec<Vec<u8>> = [
        &b"with space"[..],
        "ünïcødé-ツール".as_bytes(),
        b"caf\xe9",
        b"'quote\"$*",
        b"python",
        b"dangling",
        b"python3.11",
        b"launcher",
        b"launcher.sh",
    ]
    .iter()
    .map(|n| n.to_vec())
    .collect();
    want.sort();
    assert_eq!(got, want);
    // One warning per skipped entry, naming it and why; none for the directory.
    let err = stderr(&out);
    let warnings: Vec<&str> = err.lines().filter(|l| l.contains("warning")).collect();
    assert_eq!(warnings.len(), 4, "{err}");
    assert!(err.contains("\".hidden\": name starts with '.'"), "{err}");
    assert!(
        err.contains("\"tab\\there\": name contains a control character"),
        "{err}"
    );
    assert!(
        err.contains("\"nl\\nhere\": name contains a control character"),
        "{err}"
    );
    assert!(
        err.contains("\"launcher\": conflicts with the launcher's own name"),
        "{err}"
    );
    assert!(!err.contains("subdir"), "{err}");
    // The launcher link is ours, not the image's.
    assert_eq!(link_target(&f.bin("odd").join("launcher")), Path::new("../../launcher"));
    // `.inside` mirrors bin/ with the interpreters straight to the env's (issue 11).
    let inside = f.bin("odd").with_file_name(".inside");
    assert_eq!(
        link_target(&inside.join("python3.11")),
        Path::new("/opt/conda/odd/bin/python3.11")
    );
    assert_eq!(
        link_target(&inside.join("python")),
        Path::new("/opt/conda/odd/bin/python")
    );
    assert_eq!(link_target(&inside.join("with space")), Path::new("../../launcher"));
    assert_eq!(link_target(&inside.join("launcher")), Path::new("../../launcher"));
    let mut names: Vec<Vec<u8>> = std::fs::read_dir(&inside)
        .unwrap()
        .map(|e| std::os::unix::ffi::OsStrExt::as_bytes(e.unwrap().file_name().as_os_str()).to_vec())
        .collect();
    names.sort();
    assert_eq!(names, want, ".inside has exactly bin/'s entries");
    // The env's lib/ for venvs made with the scripts python3 (docs/python.md).
    assert_eq!(
        link_target(&f.bin("odd").with_file_name("lib")),
        Path::new("/opt/conda/odd/lib")
    );
    // An env without an interpreter gets none.
    f.image("tools", &[Entry::File(b"tool")]);
    f.farm("tools");
    assert!(!f.bin("tools").with_file_name(".inside").exists());
    assert!(std::fs::symlink_metadata(f.bin("tools").with_file_name("lib")).is_err());
}

#[test]
fn i2_configured_commands_and_overrides_get_links() {
    let f = Fixture::new();
    f.write_config("[commands.ssh]\nhost = true\n[commands.pbs_tmrsh]\nbuiltin = \"pbs_tmrsh\"\n[commands.jupyter]\noverlays = \"all\"\n");
    let overrides = f.scripts.join("overrides");
    fs::create_dir_all(overrides.join("e")).unwrap();
    write_exec(&overrides.join("qsub.sh"), "#!/bin/sh\n");
    write_exec(&overrides.join("e/mpirun.sh"), "#!/bin/sh\n");
    f.image("e", &[Entry::File(b"python3")]);
    f.farm("e");
    assert_eq!(
        f.bin_names("e"),
        vec![
            b"launcher".to_vec(),
            b"launcher.sh".to_vec(),
            b"pbs_tmrsh".to_vec(),
            b"python3".to_vec(),
            b"ssh".to_vec()
        ],
        "jupyter is only configured, not a host/builtin/script command"
    );
    let o = f.env_dir("e").join("overrides");
    assert_eq!(link_target(&o.join("qsub.sh")), Path::new("../../overrides/qsub.sh"));
    assert_eq!(
        link_target(&o.join("mpirun.sh")),
        Path::new("../../overrides/e/mpirun.sh")
    );
    assert!(o.join("qsub.sh").is_file() && o.join("mpirun.sh").is_file());
}

/// Inode and mtime of every entry of the tree, the tree root included.
fn snapshot(root: &Path) -> Vec<(PathBuf, u64, i64, i64)> {
    let mut out = Vec::new();
    let meta = fs::symlink_metadata(root).unwrap();
    out.push((root.to_path_buf(), meta.ino(), meta.mtime(), meta.mtime_nsec()));
    if meta.is_dir() {
        let mut entries: Vec<_> = fs::read_dir(root).unwrap().map(|e| e.unwrap().path()).collect();
        entries.sort();
        for path in entries {
            out.extend(snapshot(&path));
        }
    }
    out
}

#[test]
fn i3_second_run_is_unchanged_and_touches_nothing() {
    let f = Fixture::new();
    f.image("e-2", &files(&numbered(50)));
    f.farm("e-2");
    // `<scripts>` itself too: not even a probe of the file system in it.
    let scripts = |f: &Fixture| {
        let meta = fs::metadata(&f.scripts).unwrap();
        (meta.mtime(), meta.mtime_nsec())
    };
    let before = (
        snapshot(&f.env_dir("e-2")),
        snapshot(&f.scripts.join("launcher")),
        snapshot(&f.scripts.join("launcher.toml")),
        scripts(&f),
    );
    std::thread::sleep(std::time::Duration::from_millis(20));
    let out = f.farm("e-2");
    assert_eq!(stdout(&out).trim(), "e-2: unchanged (52 links)");
    let after = (
        snapshot(&f.env_dir("e-2")),
        snapshot(&f.scripts.join("launcher")),
        snapshot(&f.scripts.join("launcher.toml")),
        scripts(&f),
    );
    assert_eq!(before, after);
}

#[test]
fn i3_changed_image_updates_and_dry_run_only_prints() {
    let f = Fixture::new();
    f.image("e", &[Entry::File(b"a"), Entry::File(b"b")]);
    f.farm("e");
    f.image("e", &[Entry::File(b"b"), Entry::File(b"c")]);
    let dry = f
        .installer()
        .args(["farm", "e", "--dry-run"])
        .arg("--launcher")
        .arg(&f.launcher)
        .output()
        .unwrap();
    assert_success(&dry);
    let text = stdout(&dry);
    assert!(text.contains("would add    e.d/bin/c -> ../../launcher"), "{text}");
    assert!(text.contains("would remove e.d/bin/a"), "{text}");
    assert_eq!(
        f.bin_names("e"),
        vec![
            b"a".to_vec(),
            b"b".to_vec(),
            b"launcher".to_vec(),
            b"launcher.sh".to_vec()
        ],
        "dry run changed the tree"
    );
    let out = f.farm("e");
    assert!(
        stdout(&out).contains("e: updated: 1 added, 1 removed, 0 changed"),
        "{}",
        stdout(&out)
    );
    assert_eq!(
        f.bin_names("e"),
        vec![
            b"b".to_vec(),
            b"c".to_vec(),
            b"launcher".to_vec(),
            b"launcher.sh".to_vec()
        ]
    );
    assert!(f.leftovers().is_empty(), "{:?}", f.leftovers());
}

#[test]
fn i3_hand_made_changes_are_repaired() {
    let f = Fixture::new();
    f.image("e", &[Entry::File(b"a")]);
    f.farm("e");
    fs::remove_file(f.bin("e").join("a")).unwrap();
    std::os::unix::fs::symlink("/bin/true", f.bin("e").join("launcher.tmp")).unwrap();
    let out = f.farm("e");
    assert!(stdout(&out).contains("updated: 1 added, 1 removed"), "{}", stdout(&out));
    assert_eq!(
        f.bin_names("e"),
        vec![b"a".to_vec(), b"launcher".to_vec(), b"launcher.sh".to_vec()]
    );
}

#[test]
fn i3_fallback_layout_without_rename_exchange() {
    let f = Fixture::new();
    f.image("e-1", &[Entry::File(b"a")]);
    let farm = |extra: &[&str]| {
        let out = f
            .installer()
            .env("INSTALLER_NO_EXCHANGE", "1")
            .args(["farm", "e-1"])
            .args(extra)
            .arg("--launcher")
            .arg(&f.launcher)
            .output()
            .unwrap();
        assert_success(&out);
        out
    };
    farm(&[]);
    let live = f.env_dir("e-1");
    let target = link_target(&live);
    assert!(target.starts_with(".versions"), "{}", target.display());
    assert_eq!(
        target.file_name().unwrap(),
        "e-1.d",
        "the launcher names the env after this (L2)"
    );
    // The relative links resolve to the one launcher through the versioned dir.
    assert_eq!(
        fs::canonicalize(live.join("bin/a")).unwrap(),
        fs::canonicalize(f.scripts.join("launcher")).unwrap()
    );
    let out = farm(&[]);
    assert!(stdout(&out).contains("unchanged"), "{}", stdout(&out));
    assert_eq!(link_target(&live), target);
    f.image("e-1", &[Entry::File(b"b")]);
    farm(&[]);
    let new_target = link_target(&live);
    assert_ne!(new_target, target);
    assert!(!f.scripts.join(&target).exists(), "old version not removed");
    assert_eq!(fs::read_dir(f.scripts.join(".versions")).unwrap().count(), 1);
    assert_eq!(
        f.bin_names("e-1"),
        vec![b"b".to_vec(), b"launcher".to_vec(), b"launcher.sh".to_vec()]
    );
    // A real directory (made where exchange works) is converted, with a warning.
    let g = Fixture::new();
    g.image("e", &[Entry::File(b"a")]);
    g.farm("e");
    g.image("e", &[Entry::File(b"b")]);
    let out = g
        .installer()
        .env("INSTALLER_NO_EXCHANGE", "1")
        .args(["farm", "e"])
        .arg("--launcher")
        .arg(&g.launcher)
        .output()
        .unwrap();
    assert_success(&out);
    assert!(
        stderr(&out).contains("switching to the versioned layout"),
        "{}",
        stderr(&out)
    );
    assert!(fs::symlink_metadata(g.env_dir("e")).unwrap().file_type().is_symlink());
    assert_eq!(
        g.bin_names("e"),
        vec![b"b".to_vec(), b"launcher".to_vec(), b"launcher.sh".to_vec()]
    );
    assert!(g.leftovers().is_empty(), "{:?}", g.leftovers());
}

#[test]
fn i2_config_given_elsewhere_is_installed_and_resolved_from_scripts() {
    let f = Fixture::new();
    f.image("e", &[Entry::File(b"a")]);
    let source = f.root().join("site-config.toml");
    // Relative paths mean "relative to <scripts>/launcher.toml", where it goes.
    fs::write(&source, "[container]\nenvs_dir = \"../envs\"\n").unwrap();
    let scripts = f.root().join("new-scripts");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_installer"))
        .args(["farm", "--all", "--config"])
        .arg(&source)
        .arg("--scripts")
        .arg(&scripts)
        .arg("--launcher")
        .arg(&f.launcher)
        .output()
        .unwrap();
    assert_success(&out);
    assert_eq!(
        fs::read(scripts.join("launcher.toml")).unwrap(),
        fs::read(&source).unwrap()
    );
    assert!(scripts.join("e.d/bin/a").symlink_metadata().is_ok());
}

#[test]
fn i9_an_alias_is_not_rebuilt_in_place() {
    let f = Fixture::new();
    f.image("e-1", &[Entry::File(b"a")]);
    f.farm("e-1");
    std::os::unix::fs::symlink("e-1.d", f.env_dir("e")).unwrap();
    fs::copy(f.envs.join("e-1.sqsh"), f.envs.join("e.sqsh")).unwrap();
    let out = f
        .installer()
        .args(["farm", "e"])
        .arg("--launcher")
        .arg(&f.launcher)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("is an alias"), "{}", stderr(&out));
    assert_eq!(link_target(&f.env_dir("e")), Path::new("e-1.d"));
}

#[test]
fn i4_farm_waiting_for_the_lock_reads_the_image_live_when_it_gets_it() {
    let f = Fixture::new();
    f.image("e", &[Entry::File(b"a")]);
    f.farm("e");
    let lock = f.hold_lock();
    let waiting = spawn_waiting(f.installer().args(["farm", "e"]).arg("--launcher").arg(&f.launcher));
    // What a deploy holding the lock does: put a new image live.
    f.image("e", &[Entry::File(b"b")]);
    drop(lock);
    let (code, err) = waiting.finish();
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(
        f.bin_names("e"),
        vec![b"b".to_vec(), b"launcher".to_vec(), b"launcher.sh".to_vec()],
        "the tree is not the one of the image live when the lock was taken"
    );
}

#[test]
fn leftovers_of_a_killed_run_are_reported_by_check_and_removed_by_farm() {
    let f = Fixture::new();
    f.image("e", &[Entry::File(b"a")]);
    let farm = || {
        let out = f
            .installer()
            .args(["farm", "e", "--launcher"])
            .arg(&f.launcher)
            .env(installer::swap::NO_EXCHANGE_VAR, "1")
            .output()
            .unwrap();
        assert_success(&out);
        stdout(&out)
    };
    farm();
    let live_root = fs::canonicalize(f.env_dir("e"))
        .unwrap()
        .parent()
        .unwrap()
        .to_path_buf();
    let versions = f.scripts.join(".versions");
    assert!(live_root.starts_with(fs::canonicalize(&versions).unwrap()));
    let left = [
        f.scripts.join(".e.d.new-Ab12Cd"),
        f.scripts.join(".e.d.old-4242"),
        f.scripts.join(".e.d.link-4242"),
        f.scripts.join(".launcher.new-Xy12"),
        versions.join("e.Zz98Yy"),
    ];
    fs::create_dir_all(left[0].join("bin")).unwrap();
    fs::create_dir(&left[1]).unwrap();
    std::os::unix::fs::symlink(".versions/e.Zz98Yy/e.d", &left[2]).unwrap();
    fs::write(&left[3], b"partial").unwrap();
    fs::create_dir_all(left[4].join("e.d/bin")).unwrap();

    let text = stdout(&f.check_clean());
    for path in &left {
        assert!(
            text.contains(&format!(
                "warning: {}: left by an interrupted installer run",
                path.display()
            )),
            "{}: {text}",
            path.display()
        );
    }
    let text = farm();
    for path in &left {
        assert!(
            fs::symlink_metadata(path).is_err(),
            "{} is still there: {text}",
            path.display()
        );
    }
    assert!(live_root.is_dir(), "the live versioned tree was removed");
    assert_eq!(
        f.bin_names("e"),
        vec![b"a".to_vec(), b"launcher".to_vec(), b"launcher.sh".to_vec()]
    );
    let text = stdout(&f.check_clean());
    assert!(!text.contains("warning: "), "{text}");
}
