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

use launcher::error::LaunchError;
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

fn fail(error: &LaunchError) -> ! {
    let mut stderr = std::io::stderr().lock();
    let _ = writeln!(stderr, "launcher: {error}");
    if let Some(hint) = error.hint() {
        let _ = writeln!(stderr, "launcher: {hint}");
    }
    std::process::exit(error.exit_code());
}

#[no_mangle]
pub extern "C" fn main(_argc: libc::c_int, _argv: *const *const libc::c_char) -> libc::c_int {
    run()
}

fn run() -> ! {
    let argv: Vec<OsString> = std::env::args_os().collect();
    let needs_cwd = argv.first().is_none_or(|a| !a.as_encoded_bytes().starts_with(b"/"));
    let invocation = Invocation {
        argv,
        at_execfn: at_execfn(),
        cwd: if needs_cwd { std::env::current_dir().ok() } else { None },
    };
    let vars = Vars::from_process();
    let planned = plan(&invocation, &vars, &OsProbe).unwrap_or_else(|e| fail(&e));
    if let Some(notes) = &planned.notes {
        let mut stderr = std::io::stderr().lock();
        for note in notes {
            let _ = writeln!(stderr, "launcher: debug: {note}");
        }
    }
    match planned.action {
        Action::Show { text, stderr, exit } => {
            if stderr {
                eprintln!("{text}");
            } else {
                println!("{text}");
            }
            std::process::exit(exit);
        }
        Action::Exec(exec) => {
            if planned.dry_run || planned.notes.is_some() {
                let line = exec.shell_line();
                if planned.dry_run {
                    println!("{line}");
                    std::process::exit(0);
                }
                eprintln!("launcher: debug: exec {line}");
            }
            fail(&perform(&exec));
        }
    }
}
