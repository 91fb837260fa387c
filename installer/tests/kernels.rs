//! `installer kernels DIR` and `--kernels DIR` on deploy, rollback and alias
//! (issue 11, docs/python.md): one kernelspec per env and alias whose image
//! has ipykernel, rewritten when an alias moves, removed when it goes; a
//! kernel someone else wrote is left alone. Starting the kernels for real
//! is E23 (tests/python_env.rs).
mod common;

use std::fs;
use std::path::{Path, PathBuf};

use common::*;

/// `installer pack` of an env with `bin/python3` and an activation script,
/// and with `ipykernel` in its site-packages when `ipykernel` is true.
fn pack(f: &Fixture, env: &str, ipykernel: bool, activate: &str) -> PathBuf {
    let build = build_env(
        &f.root().join(format!("build-{env}")),
        &["python3"],
        &[("a.sh", activate)],
    );
    if ipykernel {
        let package = build.join("lib/python3.11/site-packages/ipykernel");
        fs::create_dir_all(&package).unwrap();
        fs::write(package.join("__init__.py"), "").unwrap();
    }
    let out = f.root().join(format!("{env}.sqsh"));
    let status = f
        .installer()
        .args(["-q", "pack"])
        .arg(&build)
        .args(["--env", env, "--force", "-o"])
        .arg(&out)
        .output()
        .unwrap();
    assert_success(&status);
    out
}

fn kernel(dir: &Path, name: &str) -> String {
    fs::read_to_string(dir.join(name).join("kernel.json"))
        .unwrap_or_else(|e| panic!("{}/{name}/kernel.json: {e}", dir.display()))
}

fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn kernels_follow_deploy_and_alias() {
    let f = Fixture::new();
    let k = f.root().join("kernels");
    for (env, ipykernel, value) in [("e-1", true, "one"), ("e-2", true, "two"), ("tools", false, "t")] {
        let image = pack(&f, env, ipykernel, &format!("export WHICH={value}\n"));
        let out = f.deploy(&image, env).arg("--kernels").arg(&k).output().unwrap();
        assert_success(&out);
    }
    // The env without ipykernel gets none.
    assert_eq!(names(&k), ["e-1", "e-2"]);
    let e1 = kernel(&k, "e-1");
    for line in [
        format!("    \"{}\",", f.scripts.join("e-1.d/bin/python3").display()),
        "    \"ipykernel_launcher\",".to_string(),
        "    \"{connection_file}\"".to_string(),
        "  \"display_name\": \"Python 3 (e-1)\",".to_string(),
        "    \"WHICH\": \"one\"".to_string(),
        format!("    \"launcher_scripts\": \"{}\",", f.scripts.display()),
    ] {
        assert!(e1.lines().any(|l| l == line), "{line:?} missing in\n{e1}");
    }

    let alias = |args: &[&str]| {
        let out = f
            .installer()
            .arg("--kernels")
            .arg(&k)
            .arg("alias")
            .args(args)
            .output()
            .unwrap();
        assert_success(&out);
        out
    };
    alias(&["stable", "e-1"]);
    assert_eq!(names(&k), ["e-1", "e-2", "stable"]);
    let stable = kernel(&k, "stable");
    assert!(
        stable.contains(&format!("\"{}\",", f.scripts.join("stable.d/bin/python3").display())),
        "the alias's kernel runs through the alias: {stable}"
    );
    assert!(stable.contains("\"Python 3 (stable, now e-1)\""), "{stable}");
    assert!(stable.contains("\"WHICH\": \"one\""), "{stable}");

    // The alias moves: its kernel names the new env and its variables.
    alias(&["stable", "e-2"]);
    let stable = kernel(&k, "stable");
    assert!(stable.contains("\"Python 3 (stable, now e-2)\""), "{stable}");
    assert!(stable.contains("\"WHICH\": \"two\""), "{stable}");
    // Nothing to change: nothing rewritten.
    let out = alias(&["stable", "e-2"]);
    assert!(stdout(&out).contains("kernels unchanged"), "{}", stdout(&out));

    // A kernel of the same name that someone else wrote stays as it is.
    let theirs = "{\"argv\": [\"python3\"], \"display_name\": \"mine\", \"language\": \"python\"}\n";
    fs::create_dir_all(k.join("mine")).unwrap();
    fs::write(k.join("mine/kernel.json"), theirs).unwrap();
    let image = pack(&f, "mine", true, "export WHICH=m\n");
    let out = f.deploy(&image, "mine").arg("--kernels").arg(&k).output().unwrap();
    assert_success(&out);
    assert!(stderr(&out).contains("was not written for"), "{}", stderr(&out));
    assert_eq!(kernel(&k, "mine"), theirs);

    // The alias goes: so does its kernel; the others stay.
    alias(&["--remove", "stable"]);
    assert_eq!(names(&k), ["e-1", "e-2", "mine"]);
    assert_eq!(kernel(&k, "mine"), theirs);
}

#[test]
fn kernels_command_limits_dry_run_and_errors() {
    let f = Fixture::new();
    for env in ["e-1", "e-2"] {
        assert_success(&f.deploy(&pack(&f, env, true, ""), env).output().unwrap());
    }
    let k = f.root().join("k");
    let kernels = |args: &[&str]| f.installer().arg("kernels").args(args).arg(&k).output().unwrap();
    let out = kernels(&["--dry-run"]);
    assert_success(&out);
    assert!(stdout(&out).contains("would write"), "{}", stdout(&out));
    assert!(!k.exists(), "a dry run writes nothing");

    assert_success(&kernels(&["--env", "e-2"]));
    assert_eq!(names(&k), ["e-2"]);
    // The activation variables every env has (env.toml).
    let e2 = kernel(&k, "e-2");
    for line in [
        "    \"CONDA_DEFAULT_ENV\": \"e-2\",",
        "    \"CONDA_PREFIX\": \"/opt/conda/e-2\"",
    ] {
        assert!(e2.lines().any(|l| l == line), "{line:?} missing in\n{e2}");
    }

    let out = kernels(&["--env", "nope"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("no env or alias 'nope'"), "{}", stderr(&out));

    // The whole tree; a kernel of an env that is gone is removed.
    fs::create_dir_all(k.join("gone")).unwrap();
    fs::write(k.join("gone/kernel.json"), kernel(&k, "e-2").replace("e-2", "gone")).unwrap();
    assert_success(&kernels(&[]));
    assert_eq!(names(&k), ["e-1", "e-2"]);
}
