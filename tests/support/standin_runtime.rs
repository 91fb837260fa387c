//! Stand-in container runtime (test support only; never shipped).
//!
//! Implements, with real kernel mechanisms, the subset of `singularity exec`
//! / `apptainer exec` that the launcher uses, so the end-to-end tests run
//! real programs out of real squashfs images. What it models and what it
//! does not is listed in docs/testing.md.
//!
//! Installed by the tests as `bin/apptainer` (+ `bin/singularity ->
//! apptainer`) or as `bin/singularity`: the name of the installed file picks
//! the flavour, as the launcher's `flavour = "auto"` expects (L10).
//! Bad input: one line on stderr, exit 255 (as the real runtimes do).

#[path = "standin/cli.rs"]
mod cli;
#[path = "standin/command.rs"]
mod command;
#[path = "standin/environment.rs"]
mod environment;
#[path = "standin/mounts.rs"]
mod mounts;

use std::ffi::OsString;
use std::path::PathBuf;

use environment::Flavour;

/// Exit status of the runtime itself failing (the real runtimes use 255).
const EXIT_RUNTIME_ERROR: i32 = 255;

fn main() {
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    let message = run(&args);
    eprintln!("standin-runtime: {message}");
    std::process::exit(EXIT_RUNTIME_ERROR);
}

/// Only returns on failure, with the message to print.
fn run(args: &[OsString]) -> String {
    match try_run(args) {
        Ok(never) => match never {},
        Err(message) => message,
    }
}

fn try_run(args: &[OsString]) -> Result<std::convert::Infallible, String> {
    let binary = std::fs::read_link("/proc/self/exe").map_err(|e| format!("/proc/self/exe: {e}"))?;
    let flavour = binary.file_name().and_then(Flavour::from_binary_name).ok_or_else(|| {
        format!(
            "cannot tell the flavour from the binary name {}: install it as `apptainer` or `singularity`",
            binary.display()
        )
    })?;
    let request = cli::parse(args)?;
    let cwd = std::env::current_dir().map_err(|e| format!("working directory: {e}"))?;
    let home = std::env::var_os("HOME").map(PathBuf::from);
    let layout = mounts::Layout::check(&request, home.as_deref(), &cwd)?;
    let env = environment::container_environment(std::env::vars_os(), flavour, &request.image);

    let root = mounts::assemble(&layout, &session_directory(&binary))?;
    mounts::enter(&root, &cwd)?;
    let program = command::resolve(
        &request.command,
        env.get(std::ffi::OsStr::new("PATH")).map(|v| v.as_os_str()),
    )?;
    Err(command::exec(&program, &request.command, &request.args, &env))
}

/// `<install prefix>/var/standin-runtime/session`, beside the binary's
/// `bin/`, like Apptainer's `$prefix/var/apptainer/mnt/session`.
fn session_directory(binary: &std::path::Path) -> PathBuf {
    let prefix = binary
        .parent()
        .and_then(|bin| bin.parent())
        .unwrap_or(std::path::Path::new("/"));
    prefix.join("var/standin-runtime/session")
}
