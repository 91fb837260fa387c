//! The env life cycle with `installer build` and `installer update` (issue
//! 14), end to end as root: the admin guide's walk (docs/admin-guide.md §9,
//! its `walk:` blocks run as they are) from a requirements.txt to a live,
//! aliased env with a modulefile, commands run through the launcher (its
//! native runtime: kernel squashfs and overlayfs in a private namespace),
//! an update with one more package, `diff`, a rollback after which the
//! package is gone; a failing build leaves the live env untouched; an
//! update that uninstalls a package (overlay whiteouts) packs an image
//! without it.
//!
//! No network: the packages are wheels built from `tests/data/packages`
//! with `pip wheel --no-index --no-build-isolation`, installed with `pip
//! install --no-index --find-links`.
mod support;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use support::{binaries, prereq};

const ENV: &str = "app-1.0";
const SYSTEM_PATH: &str = "/usr/sbin:/usr/bin:/sbin:/bin";

/// Why this machine cannot run these tests, if it cannot.
fn missing() -> Option<String> {
    if !nix::unistd::geteuid().is_root() {
        return Some("needs root (build namespace, loop-mounted images, the native runtime as root)".into());
    }
    if !Path::new("/dev/loop-control").exists() {
        return Some("no loop devices".into());
    }
    for tool in ["mksquashfs", "unsquashfs"] {
        if prereq::find_on_path(tool).is_none() {
            return Some(format!("{tool} not found (install squashfs-tools)"));
        }
    }
    let python = Command::new("/usr/bin/python3")
        .args(["-c", "import venv, ensurepip, setuptools, wheel"])
        .output();
    if !python.is_ok_and(|o| o.status.success()) {
        return Some(
            "/usr/bin/python3 with venv, ensurepip, setuptools and wheel is needed (python3-venv, python3-pip)".into(),
        );
    }
    None
}

struct Site {
    _dir: tempfile::TempDir,
    root: PathBuf,
    scripts: PathBuf,
    envs: PathBuf,
    ci: PathBuf,
    wheels: PathBuf,
    bin_dir: PathBuf,
}

fn check(out: &Output, what: &str) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{what} failed with {}:\nstdout: {stdout}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

impl Site {
    fn new() -> Site {
        let dir = tempfile::Builder::new()
            .prefix("installer-build-")
            .tempdir_in("/tmp")
            .unwrap();
        let root = dir.path().to_path_buf();
        fs::set_permissions(&root, fs::Permissions::from_mode(0o755)).unwrap();
        let scripts = root.join("scripts");
        let envs = root.join("envs");
        let ci = root.join("ci");
        let wheels = root.join("wheels");
        for d in [&scripts, &envs, &ci, &wheels] {
            fs::create_dir_all(d).unwrap();
        }
        support::images::base_sandbox(&root.join("base")).unwrap();
        fs::create_dir_all(root.join("base").join(root.strip_prefix("/").unwrap())).unwrap();
        fs::write(
            scripts.join("launcher.toml"),
            format!(
                "modules_dir = \"../modules/conda\"\n\
                 [runtime]\nflavour = \"native\"\nimage = \"../base\"\n\
                 [container]\nenvs_dir = \"../envs\"\n\
                 binds = [\"/usr\", \"/etc\", \"/lib\", \"/lib64\", \"{}\"]\n",
                root.display()
            ),
        )
        .unwrap();
        // The wheels, from sources copied out of the tree (pip writes build/
        // and *.egg-info beside them).
        let src = root.join("src");
        let out = Command::new("cp")
            .arg("-r")
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/packages"))
            .arg(&src)
            .output()
            .unwrap();
        check(&out, "cp");
        let out = Command::new("/usr/bin/python3")
            .args([
                "-m",
                "pip",
                "wheel",
                "-q",
                "--no-index",
                "--no-build-isolation",
                "--no-deps",
                "-w",
            ])
            .arg(&wheels)
            .arg(src.join("greet_a"))
            .arg(src.join("greet_b"))
            .env("PIP_DISABLE_PIP_VERSION_CHECK", "1")
            .current_dir(&root)
            .output()
            .unwrap();
        check(&out, "pip wheel");
        let installer = binaries::installer().unwrap();
        binaries::launcher().unwrap();
        let bin_dir = installer.parent().unwrap().to_path_buf();
        Site {
            _dir: dir,
            root,
            scripts,
            envs,
            ci,
            wheels,
            bin_dir,
        }
    }

    /// A shell with the walk's variables, the installer (and the launcher
    /// beside it) on PATH, the system's Python first.
    fn shell(&self, script: &str) -> Command {
        let mut c = Command::new("/bin/bash");
        c.args(["-euo", "pipefail", "-c", script])
            .env_clear()
            .env("PATH", format!("{}:{SYSTEM_PATH}", self.bin_dir.display()))
            .env("HOME", &self.root)
            .env("INSTALLER_SCRIPTS", &self.scripts)
            .env("WHEELS", &self.wheels)
            .env("CI_DIR", &self.ci)
            .current_dir(&self.root);
        c
    }

    fn installer(&self, args: &[&str]) -> Output {
        let quoted: Vec<String> = args.iter().map(|a| format!("'{}'", a.replace('\'', "'\\''"))).collect();
        self.shell(&format!("cd \"$CI_DIR\"; installer {}", quoted.join(" ")))
            .output()
            .unwrap()
    }

    fn live(&self) -> PathBuf {
        self.envs.join(format!("{ENV}.sqsh"))
    }

    fn link(&self, name: &str) -> PathBuf {
        self.scripts.join(format!("{ENV}.d/bin/{name}"))
    }

    fn image_listing(&self) -> String {
        let out = Command::new("unsquashfs")
            .args(["-l"])
            .arg(self.live())
            .output()
            .unwrap();
        check(&out, "unsquashfs -l")
    }

    /// Nothing of a build left mounted or attached on the host.
    fn assert_no_mounts_left(&self) {
        let needle = self.root.display().to_string();
        let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap();
        assert!(!mounts.contains(&needle), "mounts left:\n{mounts}");
        if let Ok(entries) = fs::read_dir("/sys/block") {
            for e in entries.flatten() {
                let backing = fs::read_to_string(e.path().join("loop/backing_file")).unwrap_or_default();
                assert!(!backing.contains(&needle), "loop device left: {backing}");
            }
        }
        let builds: Vec<_> = fs::read_dir(&self.ci)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains(".build-"))
            .collect();
        assert!(builds.is_empty(), "build directories left: {builds:?}");
    }
}

/// The `<!-- walk: NAME -->` block of docs/admin-guide.md.
fn walk(name: &str) -> String {
    let guide = fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/admin-guide.md")).unwrap();
    let marker = format!("<!-- walk: {name} -->");
    let after = guide
        .split_once(&marker)
        .unwrap_or_else(|| panic!("docs/admin-guide.md has no {marker}"))
        .1;
    let body = after
        .trim_start()
        .strip_prefix("```sh\n")
        .unwrap_or_else(|| panic!("{marker} is not followed by a sh block"));
    body.split_once("\n```").expect("the block ends").0.to_string()
}

#[test]
fn build_deploy_run_update_run_rollback_and_the_package_is_gone() {
    const TEST: &str = "build_deploy_run_update_run_rollback_and_the_package_is_gone";
    if !prereq::allowed(TEST, missing()) {
        return;
    }
    let site = Site::new();

    // From a requirements.txt to a live, aliased env with a module.
    let out = check(
        &site.shell(&walk("requirements")).output().unwrap(),
        "walk requirements",
    );
    assert!(
        out.contains(&format!("greet_a 1.0 from /opt/conda/{ENV}/lib/python3")),
        "greet-a did not run from the image:\n{out}"
    );
    assert!(out.contains(&format!("prefix /opt/conda/{ENV}")), "{out}");
    assert!(
        !Path::new("/opt/conda").join(ENV).exists(),
        "the build left /opt/conda/{ENV} on the host"
    );
    let modulefile = fs::read_to_string(site.root.join("modules/conda").join(ENV)).unwrap();
    assert!(modulefile.contains(&format!("{ENV}.d/bin")), "{modulefile}");
    let modulerc = fs::read_to_string(site.root.join("modules/conda/.modulerc")).unwrap();
    assert!(modulerc.contains("app"), "{modulerc}");
    // Provenance: inside the image, beside the built image, shown by status.
    let beside = fs::read_to_string(site.ci.join(format!("{ENV}.manifest.toml"))).unwrap();
    assert!(
        beside.contains("\"greet-a==1.0\"") || beside.contains("\"greet_a==1.0\""),
        "{beside}"
    );
    let req_sum = installer::manifest::sha256_file(&site.ci.join("requirements.txt")).unwrap();
    assert!(beside.contains(&req_sum), "{beside}");
    assert!(out.contains("live") && out.contains("packages, made"), "status:\n{out}");
    assert!(site.image_listing().contains(".launcher-manifest.toml"));
    site.assert_no_mounts_left();

    // A failing build packs nothing and leaves the live env as it was.
    let before = fs::read(site.live()).unwrap();
    let out = site.installer(&[
        "build",
        "--env",
        ENV,
        "--deploy",
        "--force",
        "-o",
        "broken.sqsh",
        "--",
        "sh",
        "-c",
        "mkdir -p /opt/conda/app-1.0/bin && echo half > /opt/conda/app-1.0/bin/half && exit 3",
    ]);
    assert_eq!(out.status.code(), Some(8), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("exit status: 3") && err.contains("nothing packed") && err.lines().count() == 1,
        "{err}"
    );
    assert_eq!(fs::read(site.live()).unwrap(), before, "the live image changed");
    assert!(!site.ci.join("broken.sqsh").exists());
    site.assert_no_mounts_left();

    // One more package, run, diff, rollback: gone.
    let out = check(&site.shell(&walk("update")).output().unwrap(), "walk update");
    assert!(out.contains("greet_b 2.0 with greet_a 1.0"), "{out}");
    assert!(
        out.contains("+ pip:greet-b 2.0") && out.contains("1 added, 0 removed, 0 changed"),
        "{out}"
    );
    assert!(
        !site.link("greet-b").exists(),
        "greet-b is still linked after the rollback"
    );
    assert!(site.link("greet-a").exists());
    assert_eq!(
        fs::read(site.live()).unwrap(),
        before,
        "the rollback did not put the first build back"
    );
    assert!(!site.image_listing().contains("greet_b"));
    site.assert_no_mounts_left();
}

#[test]
fn update_that_uninstalls_packs_an_image_without_the_package() {
    const TEST: &str = "update_that_uninstalls_packs_an_image_without_the_package";
    if !prereq::allowed(TEST, missing()) {
        return;
    }
    let site = Site::new();
    check(
        &site.shell(&walk("requirements")).output().unwrap(),
        "walk requirements",
    );
    assert!(site.image_listing().contains("site-packages/greet_a/__init__.py"));
    let out = site.installer(&[
        "update",
        "--env",
        ENV,
        "--deploy",
        "--force",
        "-o",
        "app-1.0.sqsh",
        "--",
        "/opt/conda/app-1.0/bin/pip",
        "uninstall",
        "-y",
        "-q",
        "greet_a",
    ]);
    check(&out, "update (pip uninstall)");
    // Deleted in the upper layer (whiteouts): absent from the new image.
    let listing = site.image_listing();
    assert!(
        !listing.contains("greet_a"),
        "greet_a is still in the image:\n{listing}"
    );
    assert!(listing.contains("bin/pip"), "{listing}");
    assert!(!site.link("greet-a").exists());
    let out = site.installer(&["diff", "app-1.0@backup", ENV]);
    let text = check(&out, "diff");
    assert!(
        text.contains("- pip:greet-a 1.0") && text.contains("0 added, 1 removed"),
        "{text}"
    );
    // The manifest records both steps, the update with the image it started from.
    let manifest = fs::read_to_string(site.ci.join(format!("{ENV}.manifest.toml"))).unwrap();
    assert!(
        manifest.contains("kind = \"build\"") && manifest.contains("kind = \"update\""),
        "{manifest}"
    );
    assert!(manifest.contains("from_sha256 = "), "{manifest}");
    site.assert_no_mounts_left();
}

/// As an ordinary user (uid 2002): `build` in a user namespace, `update`
/// with squashfuse and overlayfs in a user namespace; a file the update
/// deletes is not in the new image; no build directory is left.
#[test]
fn build_and_update_as_an_ordinary_user() {
    const TEST: &str = "build_and_update_as_an_ordinary_user";
    use std::os::unix::process::CommandExt;
    const USER: u32 = 2002;
    let reason = missing().or_else(|| {
        let userns = Command::new("/usr/bin/unshare")
            .args(["--user", "--map-current-user", "true"])
            .uid(USER)
            .gid(USER)
            .output()
            .is_ok_and(|o| o.status.success());
        if !userns {
            Some("unprivileged user namespaces are off".into())
        } else if prereq::find_on_path("squashfuse").is_none() {
            Some("squashfuse not found (apt-get install squashfuse)".into())
        } else {
            None
        }
    });
    if !prereq::allowed(TEST, reason) {
        return;
    }
    let dir = tempfile::Builder::new()
        .prefix("installer-user-")
        .tempdir_in("/var/tmp")
        .unwrap();
    let work = dir.path();
    fs::set_permissions(work, fs::Permissions::from_mode(0o755)).unwrap();
    nix::unistd::chown(work, Some(USER.into()), Some(USER.into())).unwrap();
    // The installer where the user can run it.
    let installer = work.join("installer");
    support::files::copy_executable(&binaries::installer().unwrap(), &installer).unwrap();
    let run = |args: &[&str]| {
        Command::new(&installer)
            .args(args)
            .env_clear()
            .env("PATH", SYSTEM_PATH)
            .env("HOME", work)
            .current_dir(work)
            .uid(USER)
            .gid(USER)
            .output()
            .unwrap()
    };
    check(
        &run(&[
            "build",
            "--env",
            "u-1",
            "--",
            "sh",
            "-c",
            "/usr/bin/python3 -m venv --without-pip /opt/conda/u-1 && test \"$(id -u)\" = 2002",
        ]),
        "build as uid 2002",
    );
    let out = run(&[
        "update",
        "--env",
        "u-1",
        "--from",
        "u-1.sqsh",
        "-o",
        "u-2.sqsh",
        "--",
        "sh",
        "-c",
        "rm /opt/conda/u-1/bin/activate.csh && echo new > /opt/conda/u-1/bin/newtool",
    ]);
    check(&out, "update as uid 2002");
    let listing = check(
        &Command::new("unsquashfs")
            .arg("-l")
            .arg(work.join("u-2.sqsh"))
            .output()
            .unwrap(),
        "unsquashfs",
    );
    assert!(listing.contains("/opt/conda/u-1/bin/newtool"), "{listing}");
    assert!(
        !listing.contains("activate.csh") && listing.contains("bin/activate.fish"),
        "{listing}"
    );
    let left: Vec<_> = fs::read_dir(work)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".build-"))
        .collect();
    assert!(
        left.is_empty(),
        "build directories left: {left:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The guide's environment.yml walk, when `micromamba` is on PATH (it
/// needs its channel: conda-forge, or `MICROMAMBA_TEST_CHANNEL`, e.g. a
/// local channel directory). Skipped otherwise: CI has neither.
#[test]
fn environment_yml_walk_with_micromamba_when_present() {
    const TEST: &str = "environment_yml_walk_with_micromamba_when_present";
    let reason = missing().or_else(|| {
        prereq::find_on_path("micromamba")
            .is_none()
            .then(|| "micromamba not on PATH".to_string())
    });
    if reason.is_some() {
        // Optional by design: never a failure, even under LAUNCHER_E2E_REQUIRED.
        println!("SKIP {TEST}: {}", reason.unwrap_or_default());
        return;
    }
    let site = Site::new();
    let channel = std::env::var("MICROMAMBA_TEST_CHANNEL").unwrap_or_else(|_| "conda-forge".into());
    fs::write(
        site.ci.join("environment.yml"),
        format!("name: geo\nchannels: [{channel}]\ndependencies: [python]\n"),
    )
    .unwrap();
    let mut shell = site.shell(&walk("environment-yml"));
    if let Some(micromamba) = prereq::find_on_path("micromamba") {
        shell.env(
            "PATH",
            format!(
                "{}:{}:{SYSTEM_PATH}",
                site.bin_dir.display(),
                micromamba.parent().unwrap().display()
            ),
        );
    }
    let out = check(&shell.output().unwrap(), "walk environment-yml");
    assert!(out.contains("/opt/conda/geo-1.0"), "{out}");
    let manifest = fs::read_to_string(site.envs.join("geo-1.0.manifest.toml")).unwrap();
    assert!(manifest.contains("\"python="), "no conda package list: {manifest}");
}

/// A build killed with -9 (installer, its child and COMMAND) leaves its
/// build directory; the next build of the env removes it, and never one
/// that is still in use or was kept with --keep-build-dir.
#[test]
fn a_build_killed_with_kill_9_is_cleaned_up_by_the_next() {
    const TEST: &str = "a_build_killed_with_kill_9_is_cleaned_up_by_the_next";
    use std::os::unix::process::CommandExt;
    if !prereq::allowed(TEST, missing()) {
        return;
    }
    let site = Site::new();
    let builds = || -> Vec<String> {
        fs::read_dir(&site.ci)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains(".build-") && !n.ends_with(".lock"))
            .collect()
    };
    let installer = binaries::installer().unwrap();
    let mut child = Command::new(&installer)
        .args(["build", "--env", "k-1", "-o", "k.sqsh", "--", "sleep", "60"])
        .current_dir(&site.ci)
        .process_group(0)
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while builds().is_empty() {
        assert!(std::time::Instant::now() < deadline, "the build never started");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    std::thread::sleep(std::time::Duration::from_millis(300));
    nix::sys::signal::killpg(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let _ = child.wait();
    let left = builds();
    assert_eq!(left.len(), 1, "{left:?}");
    // A kept build directory is not touched.
    let out = site.installer(&[
        "build",
        "--env",
        "k-1",
        "--keep-build-dir",
        "-o",
        "kept.sqsh",
        "--",
        "sh",
        "-c",
        "mkdir -p /opt/conda/k-1/bin",
    ]);
    check(&out, "build --keep-build-dir");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!("removed {}", site.ci.join(&left[0]).display())),
        "{text}"
    );
    let after = builds();
    assert_eq!(after.len(), 1, "only the kept one: {after:?}");
    assert_ne!(after[0], left[0]);
    let out = site.installer(&[
        "build",
        "--env",
        "k-1",
        "--force",
        "-o",
        "kept.sqsh",
        "--",
        "sh",
        "-c",
        "mkdir -p /opt/conda/k-1/bin",
    ]);
    check(&out, "build");
    assert_eq!(builds(), after, "the kept build directory was removed");
}
