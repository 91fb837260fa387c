//! The one place that acts on a plan: replace this process (L14).
//!
//! `CommandExt::exec` is an `execve` with no fork and no waiting parent, so
//! signals, the exit status and the PID go straight to the new program. It
//! also restores the default `SIGPIPE` disposition that the Rust runtime
//! ignores at start (L22), so `python3 … | head` ends as it should.

use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;

use crate::error::LaunchError;
use crate::plan::ExecPlan;

/// Replace the current process with `plan`. Returns only on failure.
pub fn perform(plan: &ExecPlan) -> LaunchError {
    let mut command = Command::new(&plan.program);
    if let Some(argv0) = plan.argv.first() {
        command.arg0(argv0);
    }
    command.args(plan.argv.iter().skip(1));
    for name in &plan.unset_env {
        command.env_remove(name);
    }
    for (name, value) in &plan.set_env {
        command.env(name, value);
    }
    let error = command.exec();
    let path = plan.program.clone();
    match error.raw_os_error() {
        Some(libc::ENOENT) | Some(libc::ENOTDIR) => match missing_interpreter(&path) {
            Some((why, shebang)) => LaunchError::InterpreterNotFound { path, why, shebang },
            None => LaunchError::CommandNotFound {
                command: path.display().to_string(),
                place: String::new(),
            },
        },
        Some(libc::EACCES) | Some(libc::ENOEXEC) | Some(libc::EPERM) => LaunchError::NotExecutable {
            path,
            reason: error.to_string(),
        },
        _ => LaunchError::ExecFailed {
            path,
            reason: error.to_string(),
        },
    }
}

/// How many bytes of a `#!` line the kernel reads (`BINPRM_BUF_SIZE`).
const SHEBANG_MAX: usize = 256;

/// `execve` said ENOENT (or ENOTDIR): is it the program that is missing, or
/// something it names to start? `None` when the program itself is not
/// there (127); otherwise why it cannot run and its `#!` line (126). Only
/// on this error path: reads at most the first line of the file.
fn missing_interpreter(program: &Path) -> Option<(String, Option<String>)> {
    let mut file = match std::fs::File::open(program) {
        Ok(file) => file,
        // There but unreadable (an execute-only binary): cannot tell which.
        Err(_) if std::fs::metadata(program).is_ok() => {
            return Some((
                "a file it needs to start (its #! interpreter or dynamic loader) was not found".into(),
                None,
            ))
        }
        Err(_) => return None,
    };
    let mut head = Vec::with_capacity(SHEBANG_MAX);
    // A short or failed read leaves what was read: judged below.
    let _ = file.by_ref().take(SHEBANG_MAX as u64).read_to_end(&mut head);
    Some(describe_start(&head))
}

/// Why a file that is there got ENOENT from `execve`, from its first bytes.
fn describe_start(head: &[u8]) -> (String, Option<String>) {
    if let Some(rest) = head.strip_prefix(b"#!") {
        let line = rest.split(|&b| b == b'\n').next().unwrap_or_default();
        // As the kernel reads it: blanks, then the interpreter up to a blank.
        let start = line.iter().position(|&b| b != b' ' && b != b'\t').unwrap_or(line.len());
        let interpreter: &[u8] = line[start..]
            .split(|&b| b == b' ' || b == b'\t')
            .next()
            .unwrap_or_default();
        // Escaped, so a `\r` left by a DOS line end shows.
        let shown = |bytes: &[u8]| String::from_utf8_lossy(bytes).escape_debug().to_string();
        let named = shown(interpreter);
        let shebang = format!("#!{}", shown(line));
        let why = if !interpreter.is_empty() && Path::new(std::ffi::OsStr::from_bytes(interpreter)).exists() {
            // Nested: the interpreter is there, what it needs is not.
            format!("its interpreter {named} cannot start (its own interpreter or dynamic loader was not found)")
        } else if interpreter.ends_with(b"\r") {
            format!("its interpreter {named} was not found (the #! line ends with a DOS carriage return)")
        } else {
            format!("its interpreter {named} was not found")
        };
        return (why, Some(shebang));
    }
    if head.starts_with(b"\x7fELF") {
        return (
            "its dynamic loader (the ELF interpreter it names) was not found".into(),
            None,
        );
    }
    (
        "a file it needs to start (its interpreter or dynamic loader) was not found".into(),
        None,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn l18_shebang_interpreter_is_named() {
        let (why, line) = describe_start(b"#!/nonexistent/python9 -u\nprint(1)\n");
        assert_eq!(why, "its interpreter /nonexistent/python9 was not found");
        assert_eq!(line.as_deref(), Some("#!/nonexistent/python9 -u"));
        let (why, _) = describe_start(b"#! \t/nonexistent/sh");
        assert_eq!(why, "its interpreter /nonexistent/sh was not found");
        let (why, line) = describe_start(b"#!/nonexistent/sh\r\necho\r\n");
        assert!(
            why.starts_with("its interpreter /nonexistent/sh\\r was not found (the #! line ends with a DOS"),
            "{why}"
        );
        assert_eq!(line.as_deref(), Some("#!/nonexistent/sh\\r"));
        // The interpreter is there: what it needs is not.
        let (why, _) = describe_start(b"#!/bin/sh\n");
        assert!(why.contains("/bin/sh cannot start"), "{why}");
        let (why, line) = describe_start(b"\x7fELF\x02\x01");
        assert!(why.contains("dynamic loader"), "{why}");
        assert_eq!(line, None);
    }

    #[test]
    fn l18_missing_program_is_not_an_interpreter_problem() {
        assert_eq!(missing_interpreter(Path::new("/nonexistent/program")), None);
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("s");
        std::fs::write(&script, "#!/nonexistent/interp\n").unwrap();
        let (why, _) = missing_interpreter(&script).unwrap();
        assert_eq!(why, "its interpreter /nonexistent/interp was not found");
    }
}
