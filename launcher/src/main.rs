//! The `launcher` binary: gather the facts, plan, then exec (or explain).
//!
//! `no_main`: the C `main` below skips the Rust runtime's start-up work
//! (stdio polling, SIGPIPE ignoring, stack-guard discovery through
//! `/proc/self/maps`, signal handlers): about a dozen system calls per hop
//! that a process living for microseconds never needs (L23). As a bonus the
//! default SIGPIPE disposition is never changed, so the exec'd program
//! inherits it (L22). `std::env::args_os` still works: on glibc, std reads
//! argv from an `.init_array` hook.
#![no_main]

use std::ffi::{CStr, OsString};
use std::io::Write;
use std::os::unix::ffi::OsStringExt;

use launcher::error::{LaunchError, EXIT_LAUNCHER};
use launcher::exec::perform;
use launcher::invocation::Invocation;
use launcher::plan::{plan, Action};
use launcher::probe::OsProbe;
use launcher::vars::Vars;

/// The kernel's `AT_EXECFN`: the path handed to `execve`.
fn at_execfn() -> Option<OsString> {
    // SAFETY: getauxval has no preconditions; AT_EXECFN, when present, points
    // at a NUL-terminated string on the initial stack that lives as long as
    // the process.
    let ptr = unsafe { libc::getauxval(libc::AT_EXECFN) } as *const libc::c_char;
    if ptr.is_null() {
        return None;
    }
    let bytes = unsafe { CStr::from_ptr(ptr) }.to_bytes().to_vec();
    Some(OsString::from_vec(bytes))
}

/// Exit status when stdout's reader has gone and SIGPIPE is ignored (so
/// `write` says EPIPE instead of the signal ending us): 128 + SIGPIPE, what a
/// shell reports for a program SIGPIPE ended, as coreutils are in the same
/// place. Nothing is printed (L18, docs/architecture.md).
const EXIT_BROKEN_PIPE: i32 = 128 + libc::SIGPIPE;

/// Before writing to stderr: a reader that has gone must not end the
/// launcher by SIGPIPE, changing its exit status or, for debug notes,
/// stopping the launch. The exec restores the default for the program
/// (`CommandExt::exec`, L22).
fn ignore_sigpipe() {
    // SAFETY: setting a disposition to SIG_IGN has no preconditions.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
    }
}

/// Lines to stderr. Errors are ignored: there is nowhere left to report them.
fn to_stderr<S: AsRef<str>>(lines: &[S]) {
    ignore_sigpipe();
    let mut stderr = std::io::stderr().lock();
    for line in lines {
        let _ = writeln!(stderr, "{}", line.as_ref());
    }
}

/// All of `bytes` to file descriptor `fd`, unbuffered (nothing is left in a
/// buffer to be retried at exit).
fn write_fd(fd: libc::c_int, mut bytes: &[u8]) -> std::io::Result<()> {
    while !bytes.is_empty() {
        // SAFETY: the pointer and length describe a live slice.
        let n = unsafe { libc::write(fd, bytes.as_ptr().cast(), bytes.len()) };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        bytes = &bytes[n as usize..];
    }
    Ok(())
}

/// Print `text` and a newline on stdout (`--help`, `--version`,
/// `--dry-run`), then exit with `code` (L18): a closed stdout (EBADF) is
/// like `/dev/null`; a reader that has gone ends quietly (SIGPIPE, or
/// `EXIT_BROKEN_PIPE` when SIGPIPE is ignored); any other error (a full
/// disk) is one line and 125.
fn print_and_exit(text: &str, code: i32) -> ! {
    let mut bytes = Vec::with_capacity(text.len() + 1);
    bytes.extend_from_slice(text.as_bytes());
    bytes.push(b'\n');
    match write_fd(libc::STDOUT_FILENO, &bytes) {
        Ok(()) => std::process::exit(code),
        Err(e) if e.raw_os_error() == Some(libc::EBADF) => std::process::exit(code),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(EXIT_BROKEN_PIPE),
        Err(e) => {
            to_stderr(&[format!("launcher: cannot write to stdout: {e}")]);
            std::process::exit(EXIT_LAUNCHER);
        }
    }
}

fn fail(error: &LaunchError) -> ! {
    let mut lines = vec![format!("launcher: {error}")];
    if let Some(hint) = error.hint() {
        lines.push(format!("launcher: {hint}"));
    }
    to_stderr(&lines);
    std::process::exit(error.exit_code());
}

#[no_mangle]
pub extern "C" fn main(_argc: libc::c_int, _argv: *const *const libc::c_char) -> libc::c_int {
    run()
}

fn run() -> ! {
    let argv: Vec<OsString> = std::env::args_os().collect();
    // Multicall: the launcher runs its own binary as the native runtime.
    if launcher::native::is_native_call(argv.first().map(OsString::as_os_str)) {
        let error = launcher::native::run(&argv[1..]);
        let mut lines = vec![format!("launcher-native: {error}")];
        lines.extend(error.hint_text().map(|h| format!("launcher-native: hint: {h}")));
        to_stderr(&lines);
        std::process::exit(error.exit_code());
    }
    let needs_cwd = argv.first().is_none_or(|a| !a.as_encoded_bytes().starts_with(b"/"));
    let invocation = Invocation {
        argv,
        at_execfn: at_execfn(),
        cwd: if needs_cwd { std::env::current_dir().ok() } else { None },
    };
    let vars = Vars::from_process();
    let planned = plan(&invocation, &vars, &OsProbe).unwrap_or_else(|e| fail(&e));
    if let Some(notes) = &planned.notes {
        let lines: Vec<String> = notes.iter().map(|note| format!("launcher: debug: {note}")).collect();
        to_stderr(&lines);
    }
    match planned.action {
        Action::Show {
            text,
            stderr: true,
            exit,
        } => {
            to_stderr(&[text]);
            std::process::exit(exit);
        }
        Action::Show {
            text,
            stderr: false,
            exit,
        } => print_and_exit(&text, exit),
        Action::Exec(exec) => {
            if planned.dry_run || planned.notes.is_some() {
                let line = exec.shell_line();
                if planned.dry_run {
                    print_and_exit(&line, 0);
                }
                to_stderr(&[format!("launcher: debug: exec {line}")]);
            }
            fail(&perform(&exec));
        }
    }
}
