//! L19 attacked for real: a second uid (2002, through `setpriv`) changes
//! what a launch runs; the victim's launch of the built binary is refused
//! with 125 and one line naming the path and who can change it, and the
//! attacker's code never runs. Also: only regular files of sane size are
//! read as config or `env.toml`.
//!
//! Needs root (to switch uids), like the rest of the suite's set-up.

use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const ATTACKER: u32 = 2002;
const VICTIM: u32 = 2001;

/// Copy an executable through a child process (`install`), never through an
/// fd of this multi-threaded test process (ETXTBSY; see `run.rs`).
fn install(src: &Path, dst: &Path, mode: &str) {
    let status = Command::new("install")
        .args(["-D", "-m", mode])
        .arg(src)
        .arg(dst)
        .status()
        .unwrap();
    assert!(status.success(), "install {} failed", dst.display());
}

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

struct Tree {
    dir: tempfile::TempDir,
}

impl Tree {
    /// `scripts/{launcher,launcher.toml}`, `scripts/e-1.d/bin/{python3,hello}`,
    /// `envs/e-1.sqsh`, `base`, `rt/apptainer` (touches `out/runtime`),
    /// `out/` (anyone may write: the victim may be uid 2001). All root's,
    /// readable by everyone.
    fn new() -> Tree {
        let t = Tree {
            dir: tempfile::tempdir().unwrap(),
        };
        chmod(t.dir.path(), 0o755);
        let s = t.p("scripts");
        install(Path::new(env!("CARGO_BIN_EXE_launcher")), &s.join("launcher"), "0755");
        std::fs::create_dir_all(s.join("e-1.d/bin")).unwrap();
        for cmd in ["python3", "hello"] {
            symlink("../../launcher", s.join("e-1.d/bin").join(cmd)).unwrap();
        }
        std::fs::create_dir_all(t.p("envs")).unwrap();
        std::fs::write(t.p("envs/e-1.sqsh"), "").unwrap();
        std::fs::write(t.p("base"), "").unwrap();
        std::fs::create_dir_all(t.p("out")).unwrap();
        chmod(&t.p("out"), 0o777);
        t.script("rt/apptainer", "runtime");
        let config = "[runtime]\npath = \"../rt/apptainer\"\nimage = \"../base\"\n\
                      [container]\nenvs_dir = \"../envs\"\nmarker = \"../marker\"\n";
        std::fs::write(s.join("launcher.toml"), config).unwrap();
        t
    }

    /// `[commands.hello] script = "SCRIPT"`.
    fn hello_script(&self, script: &str) {
        let path = self.p("scripts/launcher.toml");
        let config = std::fs::read_to_string(&path).unwrap();
        std::fs::write(path, format!("{config}[commands.hello]\nscript = \"{script}\"\n")).unwrap();
    }

    fn p(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }
    fn s(&self, rel: &str) -> String {
        self.p(rel).display().to_string()
    }

    /// An executable `rel` (root's, 0755) that touches `out/<name>`.
    fn script(&self, rel: &str, name: &str) {
        let staging = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(
            staging.path(),
            format!("#!/bin/sh\ntouch {}\n", self.s(&format!("out/{name}"))),
        )
        .unwrap();
        install(staging.path(), &self.p(rel), "0755");
    }

    /// Run shell commands as the attacker, in the tree's directory.
    fn attack(&self, commands: &str) {
        let out = as_uid(ATTACKER, "/bin/sh", &["-c", commands], self.dir.path());
        assert!(
            out.status.success(),
            "attack failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The victim (root) runs the env link `name`.
    fn launch(&self, name: &str) -> Output {
        Command::new(self.p(&format!("scripts/e-1.d/bin/{name}")))
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .current_dir("/")
            .output()
            .unwrap()
    }

    fn ran(&self, name: &str) -> bool {
        self.p(&format!("out/{name}")).exists()
    }
}

fn as_uid(uid: u32, program: &str, args: &[&str], cwd: &Path) -> Output {
    Command::new("setpriv")
        .arg(format!("--reuid={uid}"))
        .arg(format!("--regid={uid}"))
        .arg("--clear-groups")
        .arg(program)
        .args(args)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .current_dir(cwd)
        .output()
        .expect("setpriv (util-linux) is needed")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn ok(out: &Output) {
    assert!(out.status.success(), "status {:?}: {}", out.status, stderr(out));
}

/// Exit 125, one `launcher: refusing …` line containing every needle, and a
/// hint that does not advise a mode that is still unsafe.
fn refused(out: &Output, needles: &[&str]) {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(125), "{err}");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 2, "one line and a hint: {err}");
    assert!(lines[0].starts_with("launcher: refusing "), "{err}");
    for needle in needles {
        assert!(lines[0].contains(needle), "{needle:?} not in {err}");
    }
    assert!(lines[1].starts_with("launcher: hint: "), "{err}");
    assert!(!lines[1].contains("+t") && !lines[1].contains("sticky"), "{err}");
}

/// `script = "<d>/pub/tools/hello.sh"` with `pub` at 0777: the attacker
/// renames `tools` and plants their own `hello.sh`.
#[test]
fn l19_world_writable_ancestor_of_a_script_is_refused() {
    let t = Tree::new();
    t.hello_script(&t.s("pub/tools/hello.sh"));
    t.script("pub/tools/hello.sh", "legit");
    ok(&t.launch("hello"));
    assert!(t.ran("legit"), "a safe tree runs the script");
    chmod(&t.p("pub"), 0o777);
    refused(
        &t.launch("hello"),
        &[
            &t.s("pub/tools/hello.sh"),
            &format!("directory {} is writable by others (mode 0777)", t.s("pub")),
        ],
    );
    t.attack(&format!(
        "cd pub && mv tools tools.old && mkdir tools && printf '#!/bin/sh\\ntouch {}\\n' > tools/hello.sh && chmod 755 tools/hello.sh",
        t.s("out/pwned")
    ));
    refused(
        &t.launch("hello"),
        &[&format!("directory {} is writable by others", t.s("pub"))],
    );
    assert!(!t.ran("pwned"), "the attacker's script ran");
}

/// `overrides/` at 1777: the attacker creates `python3.sh`, which every
/// victim's `python3` would run.
#[test]
fn l19_override_in_a_sticky_world_writable_directory_is_refused() {
    let t = Tree::new();
    std::fs::create_dir_all(t.p("scripts/overrides")).unwrap();
    chmod(&t.p("scripts/overrides"), 0o1777);
    ok(&t.launch("python3"));
    assert!(t.ran("runtime"), "no override: the runtime runs");
    t.attack(&format!(
        "printf '#!/bin/sh\\ntouch {}\\n' > scripts/overrides/python3.sh && chmod 755 scripts/overrides/python3.sh",
        t.s("out/pwned")
    ));
    let planted = t.s("scripts/overrides/python3.sh");
    let who = format!(
        "{planted} belongs to uid {ATTACKER} in {}, a directory others can write (mode 1777)",
        t.s("scripts/overrides")
    );
    refused(&t.launch("python3"), &[&planted, &who]);
    // A victim other than root is refused the same way.
    let out = as_uid(VICTIM, &t.s("scripts/e-1.d/bin/python3"), &[], Path::new("/"));
    refused(&out, &[&who]);
    assert!(!t.ran("pwned"), "the attacker's override ran");
    // Even root's own file there: anyone could have put it there.
    std::fs::remove_file(t.p("scripts/overrides/python3.sh")).unwrap();
    t.script("scripts/overrides/python3.sh", "override");
    refused(
        &t.launch("python3"),
        &[&format!(
            "it is in {}, a directory others can write (mode 1777), where anyone could have put it",
            t.s("scripts/overrides")
        )],
    );
    assert!(!t.ran("override"));
    chmod(&t.p("scripts/overrides"), 0o755);
    ok(&t.launch("python3"));
    assert!(t.ran("override"), "a safe override runs");
}

/// A chain of 12 symlinks (more than the old limit of 8) ending in a
/// directory anyone can write.
#[test]
fn l19_long_symlink_chain_into_a_world_writable_directory_is_refused() {
    let t = Tree::new();
    t.hello_script(&t.s("scripts/links/l0"));
    let links = t.p("scripts/links");
    std::fs::create_dir_all(&links).unwrap();
    t.script("drop/hello.sh", "legit");
    for i in 0..12 {
        let target = if i == 11 {
            t.s("drop/hello.sh")
        } else {
            format!("l{}", i + 1)
        };
        symlink(target, links.join(format!("l{i}"))).unwrap();
    }
    ok(&t.launch("hello"));
    assert!(t.ran("legit"));
    chmod(&t.p("drop"), 0o777);
    t.attack(&format!(
        "rm -f drop/hello.sh && printf '#!/bin/sh\\ntouch {}\\n' > drop/hello.sh && chmod 755 drop/hello.sh",
        t.s("out/pwned")
    ));
    refused(
        &t.launch("hello"),
        &[
            &t.s("scripts/links/l0"),
            &format!("directory {} is writable by others", t.s("drop")),
        ],
    );
    assert!(!t.ran("pwned"));
}

/// `script = "<d>/pub/x/../tools/hello.sh"` with `pub` at 0777: the attacker
/// turns `x` into a link to a directory of theirs, so `x/..` is theirs too.
#[test]
fn l19_dot_dot_after_a_world_writable_component_is_refused() {
    let t = Tree::new();
    let script = format!("{}/pub/x/../tools/hello.sh", t.dir.path().display());
    t.hello_script(&script);
    std::fs::create_dir_all(t.p("pub/x")).unwrap();
    t.script("pub/tools/hello.sh", "legit");
    ok(&t.launch("hello"));
    assert!(t.ran("legit"));
    chmod(&t.p("pub"), 0o777);
    t.attack(&format!(
        "cd pub && mkdir -p evil/a evil/tools && printf '#!/bin/sh\\ntouch {}\\n' > evil/tools/hello.sh \
         && chmod 755 evil/tools/hello.sh && mv x x.old && ln -s evil/a x",
        t.s("out/pwned")
    ));
    refused(
        &t.launch("hello"),
        &[&script, &format!("directory {} is writable by others", t.s("pub"))],
    );
    assert!(!t.ran("pwned"));
}

/// A script or `env.toml` owned by another user is refused even in a safe
/// directory: its owner can rewrite it.
#[test]
fn l19_files_owned_by_another_user_are_refused() {
    let t = Tree::new();
    t.hello_script(&t.s("tools/hello.sh"));
    t.script("tools/hello.sh", "legit");
    std::os::unix::fs::chown(t.p("tools/hello.sh"), Some(ATTACKER), None).unwrap();
    refused(
        &t.launch("hello"),
        &[
            &t.s("tools/hello.sh"),
            &format!("it belongs to uid {ATTACKER}, who can change it"),
        ],
    );
    assert!(!t.ran("legit"));
    std::fs::write(t.p("scripts/e-1.d/env.toml"), "[env]\nA = \"1\"\n").unwrap();
    std::os::unix::fs::chown(t.p("scripts/e-1.d/env.toml"), Some(ATTACKER), None).unwrap();
    refused(
        &t.launch("python3"),
        &[&t.s("scripts/e-1.d/env.toml"), "belongs to uid 2002"],
    );
    // The config too, and the directory it is in.
    std::os::unix::fs::chown(t.p("scripts/launcher.toml"), Some(ATTACKER), None).unwrap();
    refused(
        &t.launch("python3"),
        &[&t.s("scripts/launcher.toml"), "belongs to uid 2002"],
    );
    std::os::unix::fs::chown(t.p("scripts/launcher.toml"), Some(0), None).unwrap();
    std::os::unix::fs::chown(t.p("scripts/e-1.d"), Some(ATTACKER), None).unwrap();
    refused(
        &t.launch("python3"),
        &[&format!("directory {} belongs to uid {ATTACKER}", t.s("scripts/e-1.d"))],
    );
}

/// Exactly one `launcher: cannot read config …` line and 125, quickly.
fn unreadable_config(config: &Path, needle: &str) {
    let t = Tree::new();
    let out = Command::new("timeout")
        .arg("20")
        .arg(t.p("scripts/e-1.d/bin/python3"))
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("LAUNCHER_CONFIG", config)
        .output()
        .unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(125), "{}: {err}", config.display());
    assert_eq!(err.lines().count(), 1, "{err}");
    assert_eq!(
        err.trim_end(),
        format!("launcher: cannot read config {}: {needle}", config.display())
    );
}

#[test]
fn l19_config_must_be_a_regular_file_of_sane_size() {
    let t = tempfile::tempdir().unwrap();
    unreadable_config(Path::new("/dev/zero"), "not a regular file (a character device)");
    unreadable_config(t.path(), "not a regular file (a directory)");
    let fifo = t.path().join("fifo");
    assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    unreadable_config(&fifo, "not a regular file (a FIFO)");
    let big = t.path().join("big.toml");
    std::fs::File::create(&big).unwrap().set_len(1 << 30).unwrap();
    unreadable_config(&big, "larger than the limit of 1048576 bytes (1 MiB): 1073741824 bytes");
}

#[test]
fn l19_env_toml_must_be_a_regular_file() {
    let t = Tree::new();
    let env_toml = t.p("scripts/e-1.d/env.toml");
    assert!(Command::new("mkfifo").arg(&env_toml).status().unwrap().success());
    let out = Command::new("timeout")
        .arg("20")
        .arg(t.p("scripts/e-1.d/bin/python3"))
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(125), "{}", stderr(&out));
    assert_eq!(
        stderr(&out).trim_end(),
        format!(
            "launcher: cannot read env.toml {}: not a regular file (a FIFO)",
            env_toml.display()
        )
    );
}
