//! Test fixtures: real squashfs images made with `mksquashfs`, and a
//! scripts tree with a relative `launcher.toml`, all in a temp dir.
#![allow(dead_code)]

use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// One entry of an image's `bin/`.
pub enum Entry<'a> {
    File(&'a [u8]),
    Link(&'a [u8], &'a str),
    Dir(&'a [u8]),
}

pub const PREFIX: &str = "/opt/conda";

pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub scripts: PathBuf,
    pub envs: PathBuf,
    /// A stand-in launcher binary (a shell script) to install.
    pub launcher: PathBuf,
}

impl Fixture {
    /// A site whose config names a fake runtime and an existing base image,
    /// so that a correct installation passes `check`.
    pub fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
        let scripts = dir.path().join("scripts");
        let envs = dir.path().join("envs");
        fs::create_dir_all(&scripts).unwrap();
        fs::create_dir_all(&envs).unwrap();
        // A sandbox base with the marker and the mount points `check` asks
        // for: the bind (the fixture's root) and the container prefix.
        let base = dir.path().join("base");
        fs::create_dir_all(base.join(".singularity.d")).unwrap();
        fs::create_dir_all(base.join(PREFIX.trim_start_matches('/'))).unwrap();
        fs::create_dir_all(base.join(dir.path().strip_prefix("/").unwrap())).unwrap();
        let runtime = dir.path().join("rt/apptainer");
        fs::create_dir_all(runtime.parent().unwrap()).unwrap();
        write_exec(
            &runtime,
            "#!/bin/sh\n[ \"$1\" = --version ] && echo 'apptainer version 1.3.6'\nexit 0\n",
        );
        let launcher = dir.path().join("launcher-bin");
        write_exec(&launcher, "#!/bin/sh\necho \"stub launcher: $0 $*\"\n");
        let fixture = Fixture {
            dir,
            scripts,
            envs,
            launcher,
        };
        fixture.write_config("");
        fixture
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    /// `scripts/launcher.toml` with the standard settings plus `extra`.
    pub fn write_config(&self, extra: &str) {
        self.write_config_with("path = \"../rt/apptainer\"\n", extra);
    }

    /// `scripts/launcher.toml` whose `[runtime]` table holds `runtime` and
    /// the standard `image`, then the standard `[container]` plus `extra`.
    pub fn write_config_with(&self, runtime: &str, extra: &str) {
        self.write_config_top("", runtime, extra);
    }

    /// `write_config_with`, with top-level keys `top` first.
    pub fn write_config_top(&self, top: &str, runtime: &str, extra: &str) {
        let text = format!(
            "{top}[runtime]\n{runtime}image = \"../base\"\n\
             [container]\nenvs_dir = \"../envs\"\nbinds = [\"{}\"]\n{extra}",
            self.root().display()
        );
        let path = self.scripts.join("launcher.toml");
        fs::write(&path, text).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
    }

    /// Make `envs/<env>.sqsh` whose `<prefix>/<env>/bin` holds `entries`.
    pub fn image(&self, env: &str, entries: &[Entry]) -> PathBuf {
        let path = self.envs.join(format!("{env}.sqsh"));
        make_image(&self.root().join(format!("src-{env}")), PREFIX, env, entries, &path);
        path
    }

    /// `installer --scripts <scripts> ARGS…`.
    pub fn installer(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_installer"));
        c.arg("--scripts").arg(&self.scripts);
        c.env_remove("INSTALLER_SCRIPTS");
        c
    }

    /// `installer farm ENV --launcher <stub>`; panics unless it succeeds.
    pub fn farm(&self, env: &str) -> Output {
        let out = self
            .installer()
            .args(["farm", env])
            .arg("--launcher")
            .arg(&self.launcher)
            .output()
            .unwrap();
        assert_success(&out);
        out
    }

    pub fn env_dir(&self, env: &str) -> PathBuf {
        self.scripts.join(format!("{env}.d"))
    }

    pub fn bin(&self, env: &str) -> PathBuf {
        self.env_dir(env).join("bin")
    }

    /// Sorted names in `<env>.d/bin`.
    pub fn bin_names(&self, env: &str) -> Vec<Vec<u8>> {
        let mut names: Vec<Vec<u8>> = fs::read_dir(self.bin(env))
            .unwrap()
            .map(|e| e.unwrap().file_name().as_bytes().to_vec())
            .collect();
        names.sort();
        names
    }

    /// Names in the scripts dir other than the ones a farm leaves there.
    pub fn leftovers(&self) -> Vec<String> {
        let keep = [".installer.lock", "launcher", "launcher.toml", ".versions", "overrides"];
        fs::read_dir(&self.scripts)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| !keep.contains(&n.as_str()) && !n.ends_with(".d"))
            .collect()
    }
}

/// Build a squashfs image at `image` whose root holds `<prefix>/<env>/bin/…`.
pub fn make_image(src: &Path, prefix: &str, env: &str, entries: &[Entry], image: &Path) {
    let _ = fs::remove_dir_all(src);
    let bin = src.join(prefix.trim_start_matches('/')).join(env).join("bin");
    fs::create_dir_all(&bin).unwrap();
    for entry in entries {
        match entry {
            Entry::File(name) => fs::write(bin.join(OsStr::from_bytes(name)), b"#!/bin/sh\n").unwrap(),
            Entry::Link(name, target) => symlink(target, bin.join(OsStr::from_bytes(name))).unwrap(),
            Entry::Dir(name) => fs::create_dir(bin.join(OsStr::from_bytes(name))).unwrap(),
        }
    }
    mksquashfs(src, image);
    fs::remove_dir_all(src).unwrap();
}

pub fn mksquashfs(src: &Path, image: &Path) {
    let _ = fs::remove_file(image);
    let out = Command::new("mksquashfs")
        .arg(src)
        .arg(image)
        .args(["-noappend", "-all-root", "-no-progress", "-quiet"])
        .output()
        .expect("mksquashfs (package squashfs-tools) must be installed");
    assert!(
        out.status.success(),
        "mksquashfs failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// An executable written by a child process (`install`), never through an fd
/// of this multi-threaded test process: a writable fd that another test
/// thread's fork inherits makes exec'ing the file fail with ETXTBSY.
pub fn write_exec(path: &Path, text: &str) {
    let staging = tempfile::NamedTempFile::new().unwrap();
    fs::write(staging.path(), text).unwrap();
    copy_exec(staging.path(), path);
}

/// Copy an executable to `dst` (mode 0755) through a child process, for the
/// same reason as `write_exec`.
pub fn copy_exec(src: &Path, dst: &Path) {
    let status = Command::new("install")
        .args(["-D", "-m", "0755"])
        .arg(src)
        .arg(dst)
        .status()
        .unwrap();
    assert!(status.success(), "install {} failed", dst.display());
}

pub fn assert_success(out: &Output) {
    assert!(
        out.status.success(),
        "failed with {}:\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `n` plain file entries named `cmd0000`…
pub fn numbered(n: usize) -> Vec<Vec<u8>> {
    (0..n).map(|i| format!("cmd{i:05}").into_bytes()).collect()
}

pub fn files(names: &[Vec<u8>]) -> Vec<Entry<'_>> {
    names.iter().map(|n| Entry::File(n.as_slice())).collect()
}

/// A built env at `dir` (what `installer pack` takes): `bin/NAME` for each
/// of `tools`, and `etc/conda/activate.d/NAME` for each of `activate`.
pub fn build_env(dir: &Path, tools: &[&str], activate: &[(&str, &str)]) -> PathBuf {
    let _ = fs::remove_dir_all(dir);
    fs::create_dir_all(dir.join("bin")).unwrap();
    for tool in tools {
        write_exec(&dir.join("bin").join(tool), &format!("#!/bin/sh\necho {tool}\n"));
    }
    let scripts = dir.join("etc/conda/activate.d");
    fs::create_dir_all(&scripts).unwrap();
    for (name, text) in activate {
        fs::write(scripts.join(name), text).unwrap();
    }
    dir.to_path_buf()
}

impl Fixture {
    /// `installer pack <build> --env ENV -o <root>/<file>`; panics unless it succeeds.
    pub fn pack(&self, env: &str, tools: &[&str], activate: &[(&str, &str)], file: &str) -> PathBuf {
        let build = build_env(&self.root().join(format!("build-{file}")), tools, activate);
        let out = self.root().join(file);
        let status = self
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

    /// `installer deploy IMAGE --env ENV --launcher <stub>` with extra args.
    pub fn deploy(&self, image: &Path, env: &str) -> Command {
        let mut c = self.installer();
        c.arg("deploy")
            .arg(image)
            .args(["--env", env, "--launcher"])
            .arg(&self.launcher);
        c
    }

    /// `installer check`: asserts exit 0 and returns the output.
    pub fn check_clean(&self) -> Output {
        let out = self.installer().arg("check").output().unwrap();
        assert_success(&out);
        out
    }

    /// The live image of `env`.
    pub fn live(&self, env: &str) -> PathBuf {
        self.envs.join(format!("{env}.sqsh"))
    }

    /// Hidden temporary files left in envs_dir or its backup directory.
    pub fn image_leftovers(&self) -> Vec<String> {
        let mut found = Vec::new();
        for dir in [self.envs.clone(), self.envs.join(".backup")] {
            let Ok(entries) = fs::read_dir(&dir) else { continue };
            for e in entries {
                let name = e.unwrap().file_name().to_string_lossy().into_owned();
                if name.starts_with('.') && name != ".backup" && name != installer::lock::LOCK_FILE_NAME {
                    found.push(format!("{}/{name}", dir.display()));
                }
            }
        }
        found
    }
}

impl Fixture {
    /// Take the scripts tree's lock, as another installer run would.
    pub fn hold_lock(&self) -> installer::lock::ScriptsLock {
        installer::lock::acquire(&self.scripts, false, |_| {}).unwrap()
    }
}

/// A child installer run blocked on the lock.
pub struct Waiting {
    child: std::process::Child,
    stderr: std::thread::JoinHandle<String>,
}

/// Start `cmd` and return once it reports that it waits for the lock.
pub fn spawn_waiting(cmd: &mut Command) -> Waiting {
    use std::io::{BufRead, BufReader};
    let mut child = cmd
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut reader = BufReader::new(child.stderr.take().unwrap());
    let mut seen = String::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap() == 0 {
            panic!("exited without waiting for the lock: {seen}");
        }
        seen.push_str(&line);
        if line.contains("waiting for lock") {
            break;
        }
    }
    let stderr = std::thread::spawn(move || {
        let mut rest = String::new();
        std::io::Read::read_to_string(&mut reader, &mut rest).unwrap();
        seen + &rest
    });
    Waiting { child, stderr }
}

impl Waiting {
    /// Wait for the run to end: its exit code and stderr.
    pub fn finish(mut self) -> (Option<i32>, String) {
        let status = self.child.wait().unwrap();
        (status.code(), self.stderr.join().unwrap())
    }
}

/// Runs `work` while another thread looks up every path of `watched` in a
/// loop (`metadata` follows the whole symlink chain) and asks `also` for one
/// more failure, if any, each round. Fails the test if any lookup failed, or
/// if the reader made no more than `min_reads` lookups (it hardly ran).
pub fn assert_never_missing(
    watched: &[PathBuf],
    also: impl Fn() -> Option<String> + Sync,
    min_reads: u64,
    work: impl FnOnce(),
) {
    use std::sync::atomic::{AtomicBool, Ordering};
    /// Stops the reader even when `work` panics, so the scope can end.
    struct StopOnDrop<'a>(&'a AtomicBool);
    impl Drop for StopOnDrop<'_> {
        fn drop(&mut self) {
            self.0.store(true, Ordering::Relaxed);
        }
    }
    let stop = AtomicBool::new(false);
    let (reads, failures) = std::thread::scope(|scope| {
        let reader = scope.spawn(|| {
            let (mut reads, mut failures) = (0u64, Vec::new());
            while !stop.load(Ordering::Relaxed) {
                for path in watched {
                    reads += 1;
                    if let Err(e) = fs::metadata(path) {
                        failures.push(format!("{}: {e}", path.display()));
                    }
                }
                failures.extend(also());
            }
            (reads, failures)
        });
        let guard = StopOnDrop(&stop);
        work();
        drop(guard);
        reader.join().unwrap()
    });
    assert!(
        failures.is_empty(),
        "{} of {reads} lookups failed, e.g. {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
    assert!(reads > min_reads, "the reader hardly ran ({reads} lookups)");
}
