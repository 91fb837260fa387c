//! `installer demo DIR` (I12) with a stand-in launcher binary that prints
//! how it was called: everything up to the final launcher run is the
//! installer's own work and is checked here. (E15 with the real launcher
//! and the stand-in runtime lives in the workspace's end-to-end tests.)
mod common;

use std::fs;
use std::path::Path;
use std::process::{Command, Output};

use common::*;
use installer::image::{EntryKind, EnvImage};

fn demo(dir: &Path, launcher: &Path, extra: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_installer"))
        .arg("demo")
        .arg(dir)
        .arg("--launcher")
        .arg(launcher)
        .args(extra)
        // No runtime on this PATH, whatever the machine has.
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .output()
        .unwrap()
}

fn stub_launcher(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("stub-launcher");
    write_exec(
        &path,
        "#!/bin/sh\necho \"stub launcher: $0 [$1] LAUNCHER_DRY_RUN=$LAUNCHER_DRY_RUN\"\n",
    );
    path
}

#[test]
fn i12_demo_builds_a_whole_installation_and_runs_through_the_launcher() {
    let tmp = tempfile::tempdir().unwrap();
    let launcher = stub_launcher(tmp.path());
    let dir = tmp.path().join("demo");
    let opt_conda_existed = Path::new("/opt/conda").exists();
    let out = demo(&dir, &launcher, &[]);
    assert_success(&out);
    let text = stdout(&out);

    // The image: the env at <prefix>/<env> inside, with a venv when we are
    // allowed a private mount namespace, and the shell tools always.
    let image = EnvImage::open(&dir.join("envs/demo-1.0.sqsh")).unwrap();
    let bin: Vec<String> = image
        .list_dir(Path::new("/opt/conda/demo-1.0/bin"))
        .unwrap()
        .into_iter()
        .map(|e| e.name.to_string_lossy().into_owned())
        .collect();
    for tool in ["hello", "demo-info", "hi"] {
        assert!(bin.contains(&tool.to_string()), "{bin:?}");
    }
    let python = nix::unistd::geteuid().is_root();
    let run_bin = if python { "python3" } else { "hello" };
    if python {
        assert!(bin.contains(&"python3".to_string()), "{bin:?}");
        assert_eq!(
            image.kind_of(Path::new("/opt/conda/demo-1.0/pyvenv.cfg")),
            Some(EntryKind::File)
        );
    }
    // Nothing left on the host by the private mount namespace.
    assert_eq!(Path::new("/opt/conda").exists(), opt_conda_existed);

    // The installation: config, base, farm, envs link.
    let config = fs::read(dir.join("scripts/launcher.toml")).unwrap();
    let config = launcher::config::Config::parse(&config, &dir.join("scripts/launcher.toml")).unwrap();
    assert!(config.runtime.image.unwrap().join(".singularity.d").is_dir());
    assert!(
        config.container.binds.contains(&dir),
        "the scripts tree must be bound: {:?}",
        config.container.binds
    );
    assert_eq!(
        fs::read_link(dir.join("scripts/demo-1.0.d/bin").join(run_bin)).unwrap(),
        Path::new("../../launcher")
    );
    assert_eq!(
        fs::read_link(dir.join("envs/demo-1.0")).unwrap(),
        Path::new("/opt/conda/demo-1.0")
    );
    let leftovers: Vec<_> = fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(leftovers.len(), 2, "staging directory left behind: {leftovers:?}");

    // The final step: no runtime on PATH, so a dry run through the launcher.
    assert!(text.contains("no container runtime found"), "{text}");
    let called = format!(
        "stub launcher: {}",
        dir.join("scripts/demo-1.0.d/bin").join(run_bin).display()
    );
    assert!(text.contains(&called), "{text}");
    assert!(text.contains("LAUNCHER_DRY_RUN=1"), "{text}");
}

#[test]
fn i12_demo_with_a_runtime_passes_check_and_can_be_rebuilt() {
    let tmp = tempfile::tempdir().unwrap();
    let launcher = stub_launcher(tmp.path());
    let runtime = tmp.path().join("apptainer");
    write_exec(&runtime, "#!/bin/sh\nexit 0\n");
    let dir = tmp.path().join("demo");
    let out = demo(
        &dir,
        &launcher,
        &["--runtime", runtime.to_str().unwrap(), "--env", "try-2"],
    );
    assert_success(&out);
    assert!(stdout(&out).contains("stub launcher: "), "{}", stdout(&out));
    assert!(
        !stdout(&out).contains("LAUNCHER_DRY_RUN=1"),
        "a runtime was given: no dry run\n{}",
        stdout(&out)
    );
    let check = Command::new(env!("CARGO_BIN_EXE_installer"))
        .args(["check", "--scripts"])
        .arg(dir.join("scripts"))
        .output()
        .unwrap();
    assert_success(&check);
    // A second demo replaces the first.
    fs::write(dir.join("scripts/marker-of-first"), "").unwrap();
    assert_success(&demo(
        &dir,
        &launcher,
        &["--runtime", runtime.to_str().unwrap(), "--env", "try-2"],
    ));
    assert!(!dir.join("scripts/marker-of-first").exists());
}

#[test]
fn i12_demo_refuses_a_directory_it_did_not_make() {
    let tmp = tempfile::tempdir().unwrap();
    let launcher = stub_launcher(tmp.path());
    let dir = tmp.path().join("precious");
    fs::create_dir(&dir).unwrap();
    fs::write(dir.join("thesis.tex"), "").unwrap();
    let out = demo(&dir, &launcher, &[]);
    assert_eq!(
        out.status.code(),
        Some(installer::error::EXIT_FILESYSTEM),
        "{}",
        stderr(&out)
    );
    assert!(stderr(&out).contains("is not an earlier demo"), "{}", stderr(&out));
    assert_eq!(fs::read_dir(&dir).unwrap().count(), 1);
}

/// issue 9 §3: the base the demo writes is one real runtimes accept in full:
/// `env/99-base.sh` (without it Apptainer and SingularityCE drop every
/// prefixed variable, L13), `libs/`, and a mount point for every bind of the
/// generated launcher.toml and for the container prefix (a runtime with no
/// writable layer over the base skips binds whose mount point is missing).
/// And `installer check` finds nothing wrong with it.
#[test]
fn i12_l13_demo_base_is_a_base_real_runtimes_accept() {
    let tmp = tempfile::tempdir().unwrap();
    let launcher = stub_launcher(tmp.path());
    let dir = tmp.path().join("demo");
    assert_success(&demo(&dir, &launcher, &["--env", "b-1"]));
    let config = fs::read(dir.join("scripts/launcher.toml")).unwrap();
    let config = launcher::config::Config::parse(&config, &dir.join("scripts/launcher.toml")).unwrap();
    let base = config.runtime.image.clone().unwrap();
    let inside = |p: &Path| base.join(p.strip_prefix("/").unwrap());
    let script = inside(Path::new("/.singularity.d/env/99-base.sh"));
    let meta = fs::symlink_metadata(&script).unwrap();
    assert!(meta.is_file(), "{}", script.display());
    // It sets nothing: only comments (and the #! line).
    let text = fs::read_to_string(&script).unwrap();
    assert!(text.lines().all(|l| l.is_empty() || l.starts_with('#')), "{text}");
    assert!(fs::symlink_metadata(inside(Path::new("/.singularity.d/libs")))
        .unwrap()
        .is_dir());
    assert!(!config.container.binds.is_empty());
    for point in config.container.binds.iter().chain([&config.container.prefix]) {
        let at = inside(point);
        let meta = fs::symlink_metadata(&at).unwrap_or_else(|e| panic!("no mount point {}: {e}", at.display()));
        assert!(meta.is_dir(), "mount point {} is not a directory", at.display());
    }
    assert_eq!(config.container.prefix, Path::new("/opt/conda"));
    let runtime = tmp.path().join("apptainer");
    write_exec(&runtime, "#!/bin/sh\necho 'apptainer version 1.3.6'\n");
    let check = Command::new(env!("CARGO_BIN_EXE_installer"))
        .args(["check", "--scripts"])
        .arg(dir.join("scripts"))
        .env("PATH", format!("{}:/usr/bin:/bin", tmp.path().display()))
        .output()
        .unwrap();
    assert_success(&check);
    assert!(!stdout(&check).contains("problem:"), "{}", stdout(&check));
}
