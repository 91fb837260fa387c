//! L18: writing output never panics. A reader that has gone ends the
//! launcher quietly (SIGPIPE, or exit 141 when SIGPIPE is ignored); a full
//! disk is one `launcher: cannot write to stdout: …` line and 125; debug
//! notes and error lines to a stderr nobody reads change nothing.

use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::fs::{symlink, PermissionsExt};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// A scripts tree around the built launcher; the runtime `rt/apptainer`
/// touches `out/runtime`.
struct Tree {
    dir: tempfile::TempDir,
}

fn install(src: &Path, dst: &Path) {
    // Through a child process: see `run.rs` (ETXTBSY).
    let status = Command::new("install")
        .args(["-D", "-m", "0755"])
        .arg(src)
        .arg(dst)
        .status()
        .unwrap();
    assert!(status.success());
}

impl Tree {
    fn new() -> Tree {
        let t = Tree {
            dir: tempfile::tempdir().unwrap(),
        };
        let s = t.p("scripts");
        install(Path::new(env!("CARGO_BIN_EXE_launcher")), &s.join("launcher"));
        std::fs::create_dir_all(s.join("e-1.d/bin")).unwrap();
        for cmd in ["launcher", "python3", "yes"] {
            symlink("../../launcher", s.join("e-1.d/bin").join(cmd)).unwrap();
        }
        std::fs::create_dir_all(t.p("envs")).unwrap();
        std::fs::write(t.p("envs/e-1.sqsh"), "").unwrap();
        std::fs::write(t.p("base"), "").unwrap();
        std::fs::create_dir_all(t.p("out")).unwrap();
        let staging = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(
            staging.path(),
            format!("#!/bin/sh\ntouch {}\n", t.p("out/runtime").display()),
        )
        .unwrap();
        install(staging.path(), &t.p("rt/apptainer"));
        std::fs::write(
            s.join("launcher.toml"),
            format!(
                "[runtime]\npath = \"../rt/apptainer\"\nimage = \"../base\"\n\
                 [container]\nenvs_dir = \"../envs\"\nmarker = \"../marker\"\nprefix = \"{}\"\n",
                t.p("opt/conda").display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(s.join("launcher.toml"), std::fs::Permissions::from_mode(0o644)).unwrap();
        t
    }

    fn p(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn command(&self, link: &str, args: &[&str]) -> Command {
        let mut cmd = Command::new(self.p(&format!("scripts/e-1.d/bin/{link}")));
        cmd.args(args).env_clear().env("PATH", "/usr/bin:/bin");
        cmd
    }
}

/// The write end of a pipe whose read end is already closed.
fn widowed_pipe() -> OwnedFd {
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills two fds, which are then owned here.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    let (reader, writer) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    drop(reader);
    writer
}

fn dev_full() -> std::fs::File {
    std::fs::OpenOptions::new().write(true).open("/dev/full").unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn no_panic(out: &Output) {
    let err = stderr(out);
    assert!(!err.contains("panicked") && !err.contains("RUST_BACKTRACE"), "{err}");
    assert_ne!(out.status.signal(), Some(libc::SIGABRT), "{err}");
}

const HELP: &[&str] = &["--help"];
const VERSION: &[&str] = &["--version"];
const DRY_RUN: &[&str] = &["--dry-run", "bash"];

#[test]
fn l18_full_disk_on_stdout_is_one_line_and_125() {
    let t = Tree::new();
    for args in [HELP, VERSION, DRY_RUN] {
        let out = t.command("launcher", args).stdout(dev_full()).output().unwrap();
        no_panic(&out);
        assert_eq!(out.status.code(), Some(125), "{args:?}: {}", stderr(&out));
        assert_eq!(
            stderr(&out),
            "launcher: cannot write to stdout: No space left on device (os error 28)\n",
            "{args:?}"
        );
    }
}

#[test]
fn l18_reader_gone_ends_quietly() {
    let t = Tree::new();
    for args in [HELP, VERSION, DRY_RUN] {
        // SIGPIPE at its default, as a shell leaves it: the signal ends us,
        // as it ends coreutils (a shell reports 141).
        let out = t.command("launcher", args).stdout(widowed_pipe()).output().unwrap();
        no_panic(&out);
        assert_eq!(out.status.signal(), Some(libc::SIGPIPE), "{args:?}: {}", stderr(&out));
        assert_eq!(stderr(&out), "");
        // SIGPIPE ignored by whoever started us: EPIPE, then exit 141 quietly.
        let mut cmd = Command::new("/bin/sh");
        cmd.arg("-c")
            .arg("trap '' PIPE; exec \"$@\"")
            .arg("sh")
            .arg(t.p("scripts/e-1.d/bin/launcher"))
            .args(args)
            .env_clear()
            .stdout(widowed_pipe());
        let out = cmd.output().unwrap();
        no_panic(&out);
        assert_eq!(out.status.code(), Some(141), "{args:?}: {}", stderr(&out));
        assert_eq!(stderr(&out), "");
    }
    // The shell's own way of saying it, whichever of the two happens first.
    let script = format!(
        "{} --help | true; echo \"${{PIPESTATUS[0]}}\"",
        t.p("scripts/e-1.d/bin/launcher").display()
    );
    let out = Command::new("/bin/bash").arg("-c").arg(&script).output().unwrap();
    no_panic(&out);
    let status = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(status == "0" || status == "141", "{status}: {}", stderr(&out));
}

#[test]
fn l18_closed_stdout_is_like_dev_null() {
    let t = Tree::new();
    let script = format!("exec {} --help >&-", t.p("scripts/e-1.d/bin/launcher").display());
    let out = Command::new("/bin/sh").arg("-c").arg(&script).output().unwrap();
    no_panic(&out);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

#[test]
fn l18_l17_debug_notes_nobody_reads_do_not_stop_the_launch() {
    let t = Tree::new();
    // stderr a pipe nobody reads, a full disk, or closed: the runtime still runs.
    for how in ["pipe", "full", "closed"] {
        let _ = std::fs::remove_file(t.p("out/runtime"));
        let mut cmd = t.command("python3", &[]);
        cmd.env("LAUNCHER_DEBUG", "1");
        let out = match how {
            "pipe" => cmd.stderr(widowed_pipe()).output().unwrap(),
            "full" => cmd.stderr(dev_full()).output().unwrap(),
            _ => {
                let script = format!(
                    "LAUNCHER_DEBUG=1 exec {} 2>&-",
                    t.p("scripts/e-1.d/bin/python3").display()
                );
                Command::new("/bin/sh").arg("-c").arg(&script).output().unwrap()
            }
        };
        no_panic(&out);
        assert_eq!(out.status.code(), Some(0), "{how}");
        assert!(t.p("out/runtime").exists(), "{how}: the runtime did not run");
    }
    // Error lines to a stderr nobody reads keep their exit status.
    let out = t
        .command("launcher", &["--no-such-flag"])
        .stderr(widowed_pipe())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = t
        .command("launcher", &["--dry-run", "bash"])
        .env("LAUNCHER_CONFIG", "/nonexistent.toml")
        .stderr(dev_full())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(125));
    // With debug notes and a dry run, the reader gone: still quiet.
    let out = t
        .command("launcher", DRY_RUN)
        .env("LAUNCHER_DEBUG", "1")
        .stdout(widowed_pipe())
        .stderr(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(141));
}

/// Debug notes ignore SIGPIPE while they are written; the program the
/// launcher execs still gets the default disposition (L22).
#[test]
fn l22_program_gets_default_sigpipe_after_debug_notes() {
    let t = Tree::new();
    std::fs::create_dir_all(t.p("marker")).unwrap();
    std::fs::create_dir_all(t.p("opt/conda/e-1/bin")).unwrap();
    symlink("/usr/bin/yes", t.p("opt/conda/e-1/bin/yes")).unwrap();
    let script = format!(
        "LAUNCHER_DEBUG=1 {} 2>/dev/null | head -1; echo \"${{PIPESTATUS[0]}}\"",
        t.p("scripts/e-1.d/bin/yes").display()
    );
    let out = Command::new("/bin/bash").arg("-c").arg(&script).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "y\n141\n", "{}", stderr(&out));
}
