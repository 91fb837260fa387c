//! Running a process to completion and capturing what it did, with a hang
//! guard (not a timing assertion: a generous limit after which the test
//! fails instead of hanging the suite, e.g. on a launch loop).

use std::borrow::BorrowMut;
use std::io::Write;
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// A process that hangs this long is killed and the test fails.
pub const HANG_LIMIT: Duration = Duration::from_secs(120);

pub struct Outcome {
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    pub stderr: String,
}

/// Shows the output as text (lossily), which is what a failing test needs.
impl std::fmt::Debug for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outcome")
            .field("status", &self.status)
            .field("stdout", &self.stdout_text())
            .field("stderr", &self.stderr)
            .finish()
    }
}

impl Outcome {
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }
    pub fn signal(&self) -> Option<i32> {
        self.status.signal()
    }
    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
    pub fn stdout_lines(&self) -> Vec<String> {
        self.stdout_text().lines().map(str::to_owned).collect()
    }
    /// Panics with everything known about the run unless it exited 0.
    #[track_caller]
    pub fn assert_success(&self) -> &Self {
        assert!(
            self.status.success(),
            "expected success, got {self:#?}\nstdout: {}",
            self.stdout_text()
        );
        self
    }
}

/// Run `command` with `stdin` as its input and wait for it.
#[track_caller]
pub fn run_with_input(mut command: impl BorrowMut<Command>, stdin: &[u8]) -> Outcome {
    let command = command.borrow_mut();
    let described = format!("{command:?}");
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {described}: {e}"));
    let mut input = child.stdin.take().expect("stdin is piped");
    let data = stdin.to_vec();
    let feeder = std::thread::spawn(move || {
        // The program may exit without reading: a broken pipe is fine.
        let _ = input.write_all(&data);
    });
    let pid = child.id();
    let (done, finished) = mpsc::channel::<()>();
    let guard = std::thread::spawn(move || {
        if finished.recv_timeout(HANG_LIMIT).is_err() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
            true
        } else {
            false
        }
    });
    let output = child.wait_with_output().expect("wait for child");
    let _ = done.send(());
    let killed = guard.join().unwrap_or(false);
    let _ = feeder.join();
    assert!(
        !killed,
        "{described} did not finish within {HANG_LIMIT:?} and was killed"
    );
    Outcome {
        status: output.status,
        stdout: output.stdout,
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

#[track_caller]
pub fn run(command: impl BorrowMut<Command>) -> Outcome {
    run_with_input(command, b"")
}

/// Start `command`, read the first line of its output, then close the pipe
/// as `… | head -1` does, and wait: returns the line and how it ended.
#[track_caller]
pub fn first_line_then_close(mut command: impl BorrowMut<Command>) -> (String, ExitStatus) {
    use std::io::BufRead;
    let command = command.borrow_mut();
    let described = format!("{command:?}");
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {described}: {e}"));
    let mut reader = std::io::BufReader::new(child.stdout.take().expect("stdout is piped"));
    let mut line = String::new();
    let _ = reader.read_line(&mut line);
    drop(reader);
    let pid = child.id();
    let (done, finished) = mpsc::channel::<()>();
    let guard = std::thread::spawn(move || {
        let timed_out = finished.recv_timeout(HANG_LIMIT).is_err();
        if timed_out {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        timed_out
    });
    let status = child.wait().expect("wait for child");
    let _ = done.send(());
    let killed = guard.join().unwrap_or(false);
    assert!(
        !killed,
        "{described} kept running after its reader went away; killed after {HANG_LIMIT:?}"
    );
    (line, status)
}
