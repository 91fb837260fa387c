//! Output errors (issue 10 item 5): a closed pipe ends quietly with 141, any
//! other write error (`>/dev/full`) is one line naming stdout and exit 5;
//! never a panic. Real pipes and /dev/full, real child processes.
mod common;

use std::fs::File;
use std::process::{Command, Output, Stdio};

use common::*;
use installer::error::{EXIT_CONFIG, EXIT_FILESYSTEM};
use installer::output::EXIT_BROKEN_PIPE;

/// The write end of a pipe whose read end is already closed.
fn closed_pipe() -> Stdio {
    // O_CLOEXEC: a child that another test thread forks meanwhile must not
    // inherit the read end and keep the pipe open.
    let (read, write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();
    drop(read);
    Stdio::from(write)
}

fn dev_full() -> Stdio {
    Stdio::from(File::options().write(true).open("/dev/full").unwrap())
}

fn run(mut command: Command, stdout: Stdio) -> Output {
    command.stdout(stdout).stderr(Stdio::piped()).output().unwrap()
}

fn assert_quiet_exit(out: &Output, code: i32) {
    assert_eq!(
        out.status.code(),
        Some(code),
        "{:?}\nstderr: {}",
        out.status,
        stderr(out)
    );
    assert!(!stderr(out).contains("panicked"), "{}", stderr(out));
}

fn assert_one_line_about_stdout(out: &Output) {
    assert_quiet_exit(out, EXIT_FILESYSTEM);
    assert_eq!(
        stderr(out),
        "installer: cannot write to stdout: No space left on device\n",
        "exactly one line naming stdout"
    );
}

fn installed() -> Fixture {
    let f = Fixture::new();
    f.image("e-1.0", &[Entry::File(b"python3"), Entry::File(b"pip")]);
    f.farm("e-1.0");
    f
}

fn installer(f: &Fixture, args: &[&str]) -> Command {
    let mut c = f.installer();
    c.args(args);
    c
}

#[test]
fn status_and_check_to_a_closed_pipe_end_quietly_with_141() {
    let f = installed();
    for args in [&["status"][..], &["check"], &["status", "e-1.0"]] {
        let out = run(installer(&f, args), closed_pipe());
        assert_quiet_exit(&out, EXIT_BROKEN_PIPE);
        assert_eq!(stderr(&out), "", "{args:?}: nothing on stderr");
    }
    // A clean `check -q` writes nothing, so nothing failed.
    assert_quiet_exit(&run(installer(&f, &["check", "-q"]), closed_pipe()), 0);
    // check with problems: still the pipe's status.
    std::fs::remove_file(f.bin("e-1.0").join("pip")).unwrap();
    let out = run(installer(&f, &["check"]), closed_pipe());
    assert_quiet_exit(&out, EXIT_BROKEN_PIPE);
}

#[test]
fn status_and_check_to_dev_full_say_so_in_one_line() {
    let f = installed();
    for args in [&["status"][..], &["check"]] {
        assert_one_line_about_stdout(&run(installer(&f, args), dev_full()));
    }
}

#[test]
fn help_and_version_to_a_closed_pipe_or_dev_full() {
    for args in [&["--help"][..], &["--version"], &["check", "--help"]] {
        let mut c = Command::new(env!("CARGO_BIN_EXE_installer"));
        c.args(args);
        assert_quiet_exit(&run(c, closed_pipe()), EXIT_BROKEN_PIPE);
        let mut c = Command::new(env!("CARGO_BIN_EXE_installer"));
        c.args(args);
        assert_one_line_about_stdout(&run(c, dev_full()));
    }
}

/// A change in progress is finished even when nobody reads its report.
#[test]
fn farm_to_a_closed_pipe_still_builds_the_tree() {
    let f = Fixture::new();
    f.image("e-1.0", &[Entry::File(b"python3")]);
    let mut c = installer(&f, &["farm", "e-1.0", "--launcher"]);
    c.arg(&f.launcher);
    let out = run(c, closed_pipe());
    assert_quiet_exit(&out, EXIT_BROKEN_PIPE);
    assert_eq!(f.bin_names("e-1.0").len(), 3, "{:?}", f.bin_names("e-1.0"));
    f.check_clean();
    // And to /dev/full: done, then the one line.
    f.image("e-2.0", &[Entry::File(b"python3")]);
    let mut c = installer(&f, &["farm", "e-2.0", "--launcher"]);
    c.arg(&f.launcher);
    assert_one_line_about_stdout(&run(c, dev_full()));
    assert!(f.bin("e-2.0").join("python3").is_symlink());
}

/// An error keeps its own status and line; stderr that cannot be written
/// to is no panic either.
#[test]
fn errors_keep_their_status_whatever_stdout_and_stderr_are() {
    let f = installed();
    std::fs::remove_file(f.scripts.join("launcher.toml")).unwrap();
    let out = run(installer(&f, &["status"]), closed_pipe());
    assert_quiet_exit(&out, EXIT_CONFIG);
    assert_eq!(stderr(&out).lines().count(), 1, "{}", stderr(&out));
    let out = installer(&f, &["status"])
        .stdout(dev_full())
        .stderr(dev_full())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(EXIT_CONFIG), "{:?}", out.status);
    let out = installer(&f, &["check"])
        .stdout(closed_pipe())
        .stderr(dev_full())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(EXIT_BROKEN_PIPE), "{:?}", out.status);
}
