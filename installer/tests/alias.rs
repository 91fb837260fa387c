//! `installer alias` (I9): the alias moves atomically. While it is swapped
//! back and forth between two envs, a reader resolving it in a loop never
//! finds a path missing; errors leave the alias alone.
mod common;

use std::fs;
use std::path::{Path, PathBuf};

use common::*;

const SWAPS: usize = 40;

fn two_envs() -> Fixture {
    let f = Fixture::new();
    f.write_config("");
    for env in ["e-1", "e-2"] {
        let image = f.pack(env, &["common", env], &[], &format!("{env}.sqsh"));
        assert_success(&f.deploy(&image, env).arg("-q").output().unwrap());
    }
    f
}

fn alias(f: &Fixture, args: &[&str]) -> std::process::Output {
    f.installer()
        .arg("--modules")
        .arg(f.root().join("modules/conda"))
        .arg("alias")
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn i9_reader_never_sees_a_missing_path_while_the_alias_moves() {
    let f = two_envs();
    assert_success(&alias(&f, &["stable", "e-1"]));
    let watched: Vec<PathBuf> = vec![
        f.scripts.join("stable.d/bin/common"),
        f.scripts.join("stable.d/bin/launcher"),
        f.scripts.join("stable.d/env.toml"),
        f.root().join("modules/conda/.modulerc"),
    ];
    let envs_link = f.envs.join("stable");
    let envs_link_ok = || match fs::read_link(&envs_link) {
        Ok(t) if t == Path::new("e-1") || t == Path::new("e-2") => None,
        other => Some(format!("{}: {other:?}", envs_link.display())),
    };
    assert_never_missing(&watched, envs_link_ok, SWAPS as u64 * 4, || {
        for i in 0..SWAPS {
            let target = if i % 2 == 0 { "e-2" } else { "e-1" };
            assert_success(&alias(&f, &["-q", "stable", target]));
        }
    });
    // The last swap pointed it at e-1.
    assert_eq!(fs::read_link(f.scripts.join("stable.d")).unwrap(), Path::new("e-1.d"));
    assert_eq!(fs::read_link(&envs_link).unwrap(), Path::new("e-1"));
    let rc = fs::read_to_string(f.root().join("modules/conda/.modulerc")).unwrap();
    assert!(rc.lines().any(|l| l == "module-version conda/e-1 stable"), "{rc}");
    let leftovers: Vec<_> = fs::read_dir(&f.envs)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".") && n != ".backup" && n != installer::lock::LOCK_FILE_NAME)
        .collect();
    assert!(
        leftovers.is_empty() && f.leftovers().is_empty(),
        "{leftovers:?} {:?}",
        f.leftovers()
    );
    f.check_clean();
}

#[test]
fn i9_repeat_remove_and_errors() {
    let f = two_envs();
    assert_success(&alias(&f, &["stable", "e-1"]));
    let out = alias(&f, &["stable", "e-1"]);
    assert_success(&out);
    assert!(
        stdout(&out).contains("alias stable -> e-1: unchanged"),
        "{}",
        stdout(&out)
    );
    for (args, code, text) in [
        (&["e-1", "e-2"][..], 2, "is the tree of environment 'e-1', not an alias"),
        (&["x", "stable"][..], 2, "'stable' is itself an alias"),
        (&["x", "nope"][..], 2, "'nope' has no scripts tree"),
        (&["x", "x"][..], 2, "cannot point at itself"),
        (
            &["bad/name", "e-1"][..],
            2,
            "'bad/name' is not a valid environment name",
        ),
    ] {
        let out = alias(&f, args);
        assert_eq!(out.status.code(), Some(code), "{args:?}: {}", stderr(&out));
        assert!(
            stderr(&out).contains(text) && stderr(&out).lines().count() == 1,
            "{args:?}: {}",
            stderr(&out)
        );
    }
    assert_eq!(fs::read_link(f.scripts.join("stable.d")).unwrap(), Path::new("e-1.d"));
    assert_success(&alias(&f, &["--remove", "stable"]));
    assert!(
        fs::symlink_metadata(f.scripts.join("stable.d")).is_err()
            && fs::symlink_metadata(f.envs.join("stable")).is_err()
    );
    let rc = fs::read_to_string(f.root().join("modules/conda/.modulerc")).unwrap();
    assert!(!rc.contains("stable"), "{rc}");
    f.check_clean();
}
