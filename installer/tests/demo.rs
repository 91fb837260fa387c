//! `installer demo DIR` (I12) with a stand-in launcher binary that prints
//! how it was called: everything up to the final launcher run is the
//! installer's own work and is checked here: the env, the packer (mksquashfs
//! or backhand), the config, which runtime is chosen and the fallback to
//! printing the command. (E15 with the real launcher, under the stand-in
//! runtime and the native runtime, lives in the workspace's end-to-end
//! tests: `tests/e15_demo.rs`.)
mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::*;
use installer::image::{EntryKind, EnvImage};
use launcher::config::FlavourSetting;

/// A directory for `PATH` holding links to just the `tools` this machine
/// has (never a runtime, unless the test puts one there).
fn tool_dir(root: &Path, tools: &[&str]) -> PathBuf {
    let dir = root.join("path");
    fs::create_dir_all(&dir).unwrap();
    for tool in tools {
        for prefix in ["/usr/bin", "/bin", "/usr/sbin", "/sbin"] {
            let real = Path::new(prefix).join(tool);
            if real.is_file() && !dir.join(tool).exists() {
                std::os::unix::fs::symlink(&real, dir.join(tool)).unwrap();
                break;
            }
        }
    }
    dir
}

fn demo_with_path(dir: &Path, launcher: &Path, extra: &[&str], path: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_installer"))
        .arg("demo")
        .arg(dir)
        .arg("--launcher")
        .arg(launcher)
        .args(extra)
        .env("PATH", path)
        .output()
        .unwrap()
}

/// The demo with `mksquashfs` (when installed) and no runtime on `PATH`.
fn demo(dir: &Path, launcher: &Path, extra: &[&str]) -> Output {
    let path = tool_dir(dir.parent().unwrap(), &["mksquashfs"]);
    demo_with_path(dir, launcher, extra, &path)
}

/// A launcher that says how it was called and succeeds, as the native
/// runtime does where it can run.
fn stub_launcher(dir: &Path) -> PathBuf {
    let path = dir.join("stub-launcher");
    write_exec(
        &path,
        "#!/bin/sh\necho \"stub launcher: $0 [$1] LAUNCHER_DRY_RUN=$LAUNCHER_DRY_RUN\"\n",
    );
    path
}

/// A launcher whose native runtime cannot run here (its exit 125 and
/// `launcher-native:` lines, as the real one prints them); its dry run works.
fn stub_launcher_native_fails(dir: &Path) -> PathBuf {
    let path = dir.join("stub-launcher");
    write_exec(
        &path,
        "#!/bin/sh\n\
         if [ \"$LAUNCHER_DRY_RUN\" != 1 ]; then\n\
           echo 'launcher-native: cannot create a user namespace: Operation not permitted' >&2\n\
           echo 'launcher-native: hint: see sysctl user.max_user_namespaces' >&2\n\
           exit 125\n\
         fi\n\
         echo \"stub launcher: $0 [$1] LAUNCHER_DRY_RUN=$LAUNCHER_DRY_RUN\"\n",
    );
    path
}

fn config_of(dir: &Path) -> launcher::config::Config {
    let path = dir.join("scripts/launcher.toml");
    launcher::config::Config::parse(&fs::read(&path).unwrap(), &path).unwrap()
}

fn bin_names(image: &EnvImage, bin: &str) -> Vec<String> {
    image
        .list_dir(Path::new(bin))
        .unwrap()
        .into_iter()
        .map(|e| e.name.to_string_lossy().into_owned())
        .collect()
}

/// The env's Python, conda-like: the interpreter's own file and its
/// standard library copied in (never linked to the host's), `python3` and
/// `python` linking to `python3.X`, the package `demopkg` with its
/// `.dist-info` in Debian's site dir, its console script with the env's
/// interpreter as `#!`; and the farm gives the env `.inside` and `lib`.
fn assert_python_env(image: &EnvImage, dir: &Path, env: &str) {
    let prefix = format!("/opt/conda/{env}");
    let at = |rel: &str| PathBuf::from(format!("{prefix}/{rel}"));
    let read = |rel: &str| String::from_utf8(image.read_file(&at(rel)).unwrap().unwrap()).unwrap();
    let bin = bin_names(image, &format!("{prefix}/bin"));
    let interpreter = bin
        .iter()
        .find(|n| n.starts_with("python3.") && n[8..].chars().all(|c| c.is_ascii_digit()))
        .unwrap_or_else(|| panic!("no python3.X in {bin:?}"))
        .clone();
    assert_eq!(image.kind_of(&at(&format!("bin/{interpreter}"))), Some(EntryKind::File));
    let copied = image.read_file(&at(&format!("bin/{interpreter}"))).unwrap().unwrap();
    assert_eq!(copied, fs::read(format!("/usr/bin/{interpreter}")).unwrap());
    for name in ["python3", "python"] {
        assert_eq!(
            image.kind_of(&at(&format!("bin/{name}"))),
            Some(EntryKind::Symlink(interpreter.clone().into()))
        );
    }
    let version = &interpreter["python".len()..];
    let stdlib = format!("lib/python{version}");
    assert_eq!(image.kind_of(&at(&stdlib)), Some(EntryKind::Dir), "copied, not linked");
    assert_eq!(image.kind_of(&at(&format!("{stdlib}/os.py"))), Some(EntryKind::File));
    assert_eq!(
        image.kind_of(&at(&format!("{stdlib}/lib-dynload"))),
        Some(EntryKind::Dir)
    );
    for skipped in ["__pycache__", "test", "EXTERNALLY-MANAGED", "sitecustomize.py"] {
        assert_eq!(image.kind_of(&at(&format!("{stdlib}/{skipped}"))), None, "{skipped}");
    }
    let site = "lib/python3/dist-packages";
    assert!(read(&format!("{site}/demopkg/__init__.py")).contains("__version__ = \"1.0\"\n"));
    let metadata = read(&format!("{site}/demopkg-1.0.dist-info/METADATA"));
    assert!(metadata.contains("Name: demopkg\nVersion: 1.0\n"), "{metadata}");
    let record = read(&format!("{site}/demopkg-1.0.dist-info/RECORD"));
    assert!(record.contains("demopkg/__init__.py,sha256="), "{record}");
    assert!(record.contains("../../../bin/demopkg-info,sha256="), "{record}");
    let script = read("bin/demopkg-info");
    assert_eq!(script.lines().next(), Some(&*format!("#!{prefix}/bin/{interpreter}")));
    // The farm: a link for the console script, `.inside` and `lib` (docs/python.md).
    let tree = dir.join(format!("scripts/{env}.d"));
    assert_eq!(
        fs::read_link(tree.join("bin/demopkg-info")).unwrap(),
        Path::new("../../launcher")
    );
    assert_eq!(
        fs::read_link(tree.join(".inside/python3")).unwrap(),
        Path::new(&format!("{prefix}/bin/python3"))
    );
    assert_eq!(
        fs::read_link(tree.join("lib")).unwrap(),
        Path::new(&format!("{prefix}/lib"))
    );
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

    // The image: the env at <prefix>/<env> inside, with the system Python
    // copied in when there is one, and the shell tools always.
    let image = EnvImage::open(&dir.join("envs/demo-1.0.sqsh")).unwrap();
    let bin = bin_names(&image, "/opt/conda/demo-1.0/bin");
    for tool in ["hello", "demo-info", "hi"] {
        assert!(bin.contains(&tool.to_string()), "{bin:?}");
    }
    let python = Path::new("/usr/bin/python3").is_file();
    let run_bin = if python { "python3" } else { "hello" };
    let read = |inner: &str| String::from_utf8(image.read_file(Path::new(inner)).unwrap().unwrap()).unwrap();
    let activation = read("/opt/conda/demo-1.0/etc/conda/activate.d/demo.sh");
    // No PYTHONHOME anywhere: it would leak into every process the env starts.
    assert!(!activation.contains("PYTHONHOME"), "{activation}");
    let env_toml = fs::read_to_string(dir.join("scripts/demo-1.0.d/env.toml")).unwrap();
    assert!(!env_toml.contains("PYTHONHOME"), "{env_toml}");
    assert!(env_toml.contains("DEMO_DATA"), "{env_toml}");
    if python {
        assert_python_env(&image, &dir, "demo-1.0");
    }
    // Nothing made on the host.
    assert_eq!(Path::new("/opt/conda").exists(), opt_conda_existed);
    let packer = if tmp.path().join("path/mksquashfs").exists() {
        "with mksquashfs ("
    } else {
        "with the backhand library (no mksquashfs on PATH)"
    };
    assert!(text.contains(packer), "{text}");

    // The installation: config, base, farm, envs link.
    let config = config_of(&dir);
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
        .filter(|n| n != "path")
        .collect();
    assert_eq!(leftovers.len(), 2, "staging directory left behind: {leftovers:?}");

    // No apptainer/singularity on PATH: the native runtime, for real.
    assert_eq!(config.runtime.flavour, FlavourSetting::Native);
    assert!(config.runtime.path.is_none());
    assert!(
        text.contains("running, with the launcher's own native runtime"),
        "{text}"
    );
    let called = format!(
        "stub launcher: {}",
        dir.join("scripts/demo-1.0.d/bin").join(run_bin).display()
    );
    assert!(text.contains(&called), "{text}");
    assert!(
        text.contains("LAUNCHER_DRY_RUN=\n"),
        "a real run, not a dry run\n{text}"
    );
    assert!(
        text.contains("run from the image envs/demo-1.0.sqsh by the native runtime (as "),
        "{text}"
    );
}

/// Where the native runtime cannot run either, the demo says why in one
/// line, prints the runtime command instead, and leaves a config that
/// finds apptainer/singularity on PATH once one is installed.
#[test]
fn i12_demo_prints_the_command_only_when_no_runtime_can_run_it() {
    let tmp = tempfile::tempdir().unwrap();
    let launcher = stub_launcher_native_fails(tmp.path());
    let dir = tmp.path().join("demo");
    let out = demo(&dir, &launcher, &[]);
    assert_success(&out);
    let text = stdout(&out);
    let why: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("no runtime can run it here"))
        .collect();
    assert_eq!(
        why,
        [
            "demo: no runtime can run it here: no apptainer or singularity on PATH, and the native runtime \
          cannot: cannot create a user namespace: Operation not permitted (hint: see sysctl \
          user.max_user_namespaces)"
        ],
        "{text}"
    );
    assert!(text.contains("LAUNCHER_DRY_RUN=1"), "{text}");
    assert!(!text.contains("run from the image"), "{text}");
    let config = config_of(&dir);
    assert_eq!(config.runtime.flavour, FlavourSetting::Auto);
    assert!(config.runtime.path.is_none());
}

/// A failure of the launcher itself (not the native runtime's exit 125)
/// is the demo's failure: exit 8, no fallback.
#[test]
fn i12_demo_fails_when_the_launcher_fails() {
    let tmp = tempfile::tempdir().unwrap();
    let launcher = tmp.path().join("stub-launcher");
    write_exec(
        &launcher,
        "#!/bin/sh\necho 'launcher: something is wrong' >&2\nexit 125\n",
    );
    let dir = tmp.path().join("demo");
    let out = demo(&dir, &launcher, &[]);
    assert_eq!(out.status.code(), Some(installer::error::EXIT_DEMO), "{}", stdout(&out));
    assert!(
        stderr(&out).contains("launcher: something is wrong"),
        "{}",
        stderr(&out)
    );
    assert!(
        stderr(&out).contains("installer: demo: the command run through the launcher failed"),
        "{}",
        stderr(&out)
    );
    assert!(!stdout(&out).contains("LAUNCHER_DRY_RUN=1"), "{}", stdout(&out));
}

/// No mksquashfs on PATH (a fresh machine): the demo packs with the
/// backhand library and says so; the image is a valid squashfs image
/// (read back by backhand, and by unsquashfs where it is installed).
#[test]
fn i12_demo_packs_with_backhand_without_mksquashfs() {
    let tmp = tempfile::tempdir().unwrap();
    let launcher = stub_launcher(tmp.path());
    let dir = tmp.path().join("demo");
    let empty = tool_dir(tmp.path(), &[]);
    let out = demo_with_path(&dir, &launcher, &[], &empty);
    assert_success(&out);
    let text = stdout(&out);
    assert!(
        text.contains("demo: packing envs/demo-1.0.sqsh with the backhand library (no mksquashfs on PATH)"),
        "{text}"
    );
    let image_path = dir.join("envs/demo-1.0.sqsh");
    let image = EnvImage::open(&image_path).unwrap();
    let bin = bin_names(&image, "/opt/conda/demo-1.0/bin");
    for tool in ["hello", "demo-info", "hi"] {
        assert!(bin.contains(&tool.to_string()), "{bin:?}");
    }
    if Path::new("/usr/bin/python3").is_file() {
        assert_python_env(&image, &dir, "demo-1.0");
    }
    let hello = image
        .read_file(Path::new("/opt/conda/demo-1.0/bin/hello"))
        .unwrap()
        .unwrap();
    assert!(String::from_utf8_lossy(&hello).starts_with("#!/bin/sh\n"));
    assert_eq!(
        fs::read_link(dir.join("scripts/demo-1.0.d/bin/hi")).unwrap(),
        Path::new("../../launcher")
    );
    // The reference reader agrees: modes, owners, link targets.
    if let Some(unsquashfs) = ["/usr/bin/unsquashfs", "/usr/sbin/unsquashfs"]
        .iter()
        .map(Path::new)
        .find(|p| p.is_file())
    {
        let listing = Command::new(unsquashfs).arg("-lls").arg(&image_path).output().unwrap();
        assert_success(&listing);
        let listing = stdout(&listing);
        for want in [
            "-rwxr-xr-x root/root",
            "squashfs-root/opt/conda/demo-1.0/bin/hello",
            "squashfs-root/opt/conda/demo-1.0/bin/hi -> hello",
            "squashfs-root/opt/conda/demo-1.0/etc/conda/activate.d/demo.sh",
        ] {
            assert!(listing.contains(want), "{want} not in\n{listing}");
        }
        for want in [
            "squashfs-root/opt/conda/demo-1.0/bin/python3 -> python3.",
            "squashfs-root/opt/conda/demo-1.0/lib/python3/dist-packages/demopkg/__init__.py",
        ] {
            if !Path::new("/usr/bin/python3").is_file() {
                break;
            }
            assert!(listing.contains(want), "{want} not in\n{listing}");
        }
        let extracted = tmp.path().join("extracted");
        let out = Command::new(unsquashfs)
            .arg("-d")
            .arg(&extracted)
            .arg(&image_path)
            .output()
            .unwrap();
        assert_success(&out);
        assert_eq!(fs::read(extracted.join("opt/conda/demo-1.0/bin/hello")).unwrap(), hello);
        // The Python read back from the image runs where it lies: its own
        // prefix, its package, a C module of its lib-dynload.
        let python = extracted.join("opt/conda/demo-1.0/bin/python3");
        if python.exists() {
            let out = Command::new(&python)
                .args([
                    "-I",
                    "-B",
                    "-c",
                    "import sys, _decimal, importlib.metadata as m; \
                     print(sys.prefix, m.version('demopkg'), _decimal.__file__.startswith(sys.prefix + '/lib/'))",
                ])
                .env_clear()
                .current_dir("/")
                .output()
                .unwrap();
            assert_success(&out);
            let prefix = fs::canonicalize(extracted.join("opt/conda/demo-1.0")).unwrap();
            assert_eq!(stdout(&out), format!("{} 1.0 True\n", prefix.display()));
        }
    }
}

/// apptainer or singularity on PATH wins over the native runtime; the
/// config names no runtime, so the launcher finds the same one.
#[test]
fn i12_demo_prefers_a_runtime_on_path() {
    let tmp = tempfile::tempdir().unwrap();
    let launcher = stub_launcher(tmp.path());
    let path = tool_dir(tmp.path(), &["mksquashfs"]);
    write_exec(&path.join("singularity"), "#!/bin/sh\nexit 0\n");
    let dir = tmp.path().join("demo");
    let out = demo_with_path(&dir, &launcher, &[], &path);
    assert_success(&out);
    let text = stdout(&out);
    assert!(
        text.contains(&format!(
            "demo: running, with the runtime singularity ({}):",
            path.join("singularity").display()
        )),
        "{text}"
    );
    assert!(text.contains("LAUNCHER_DRY_RUN=\n"), "{text}");
    let config = config_of(&dir);
    assert_eq!(config.runtime.flavour, FlavourSetting::Auto);
    assert!(config.runtime.path.is_none());
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

/// An ordinary user builds the same env (copying needs no privilege), with
/// either packer. Run as root, switching to uid 2002.
#[test]
fn i12_demo_as_a_user_copies_the_python_with_both_packers() {
    use std::os::unix::process::CommandExt;
    const USER: u32 = 2002;
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: switches to uid {USER}; run the tests as root");
        return;
    }
    let tmp = tempfile::Builder::new()
        .prefix("installer-demo-user-")
        .tempdir_in("/var/tmp")
        .unwrap();
    let root = tmp.path();
    fs::set_permissions(root, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let installer = root.join("installer");
    copy_exec(Path::new(env!("CARGO_BIN_EXE_installer")), &installer);
    let launcher = stub_launcher(root);
    let with_mksquashfs = tool_dir(root, &["mksquashfs"]);
    let none = root.join("no-tools");
    fs::create_dir(&none).unwrap();
    let home = root.join("home");
    fs::create_dir(&home).unwrap();
    nix::unistd::chown(&home, Some(USER.into()), Some(USER.into())).unwrap();
    for (name, path) in [("mksquashfs", &with_mksquashfs), ("backhand", &none)] {
        let dir = home.join(format!("demo-{name}"));
        let out = Command::new(&installer)
            .arg("demo")
            .arg(&dir)
            .arg("--launcher")
            .arg(&launcher)
            .env_clear()
            .env("PATH", path)
            .env("HOME", &home)
            .current_dir(&home)
            .uid(USER)
            .gid(USER)
            .output()
            .unwrap();
        assert_success(&out);
        let text = stdout(&out);
        assert!(!stderr(&out).contains("shell tools only"), "{}", stderr(&out));
        if name == "backhand" || !path.join("mksquashfs").exists() {
            assert!(text.contains("with the backhand library"), "{text}");
        } else {
            assert!(text.contains("with mksquashfs ("), "{text}");
        }
        let image = EnvImage::open(&dir.join("envs/demo-1.0.sqsh")).unwrap();
        if Path::new("/usr/bin/python3").is_file() {
            assert_python_env(&image, &dir, "demo-1.0");
        }
        use std::os::unix::fs::MetadataExt;
        assert_eq!(fs::metadata(dir.join("envs/demo-1.0.sqsh")).unwrap().uid(), USER);
    }
}
