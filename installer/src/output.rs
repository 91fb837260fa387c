//! The one way the installer writes to stdout and stderr (`print!` and
//! friends are denied crate-wide: they panic when a write fails).
//!
//! - stdout: the first write error is remembered and every later write is
//!   skipped; the run goes on (a change in progress is never abandoned
//!   because a reader went away), and `finish` turns the error into the exit
//!   status: a closed pipe (`EPIPE`) ends quietly with `EXIT_BROKEN_PIPE`,
//!   as coreutils killed by `SIGPIPE` look to a shell; any other error (a
//!   full disk, `>/dev/full`) is one line on stderr naming stdout and
//!   `EXIT_FILESYSTEM`.
//! - stderr: errors are ignored; there is nowhere left to report them.

use std::io::{self, Write};
use std::sync::Mutex;

use crate::error::{io_reason, EXIT_CHECK_FAILED, EXIT_FILESYSTEM};

/// Exit status when stdout is a pipe nobody reads any more: 128 + SIGPIPE,
/// what a shell shows for a program killed by SIGPIPE.
pub const EXIT_BROKEN_PIPE: i32 = 141;

/// The first error writing to stdout, if any.
static STDOUT_FAILED: Mutex<Option<io::Error>> = Mutex::new(None);

fn failed() -> std::sync::MutexGuard<'static, Option<io::Error>> {
    STDOUT_FAILED.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Write `text` to stdout as it is.
pub fn out(text: &str) {
    let mut failed = failed();
    if failed.is_some() {
        return;
    }
    let mut stdout = io::stdout().lock();
    if let Err(e) = stdout.write_all(text.as_bytes()).and_then(|()| stdout.flush()) {
        *failed = Some(e);
    }
}

/// Write `line` and a newline to stdout.
pub fn out_line(line: &str) {
    out(&format!("{line}\n"));
}

/// Write `text` to stderr as it is; errors are ignored.
pub fn err(text: &str) {
    let mut stderr = io::stderr().lock();
    let _ = stderr.write_all(text.as_bytes());
    let _ = stderr.flush();
}

/// Write `line` and a newline to stderr; errors are ignored.
pub fn err_line(line: &str) {
    err(&format!("{line}\n"));
}

/// Record an error of a write to stdout made elsewhere (clap's help).
pub fn stdout_failed(e: io::Error) {
    failed().get_or_insert(e);
}

/// The exit status of a run that would exit with `code`, given what
/// happened to stdout. A run that already failed keeps its own status (its
/// error is on stderr); otherwise a stdout error decides.
pub fn finish(code: i32) -> i32 {
    out("");
    let Some(e) = failed().take() else { return code };
    if code != 0 && code != EXIT_CHECK_FAILED {
        return code;
    }
    if e.kind() == io::ErrorKind::BrokenPipe {
        EXIT_BROKEN_PIPE
    } else {
        err_line(&format!("installer: cannot write to stdout: {}", io_reason(&e)));
        EXIT_FILESYSTEM
    }
}
