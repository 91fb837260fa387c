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

#[path = "standin/action.rs"]
mod action;
#[path = "standin/cli.rs"]
mod cli;
#[path = "standin/command.rs"]
mod command;
#[path = "standin/environment.rs"]
mod environment;
#[path = "standin/handoff.rs"]
mod handoff;
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
    let host: Vec<(OsString, OsString)> = std::env::vars_os().collect();
    let mut request = cli::parse(args)?;
    // Flags can be turned on from the environment (action_flags.go).
    request.cleanenv |= flavour.flag_from_env(&host, "CLEANENV") || flavour.flag_from_env(&host, "CONTAINALL");
    request.contain |= flavour.flag_from_env(&host, "CONTAIN") || flavour.flag_from_env(&host, "CONTAINALL");
    request.no_eval |= flavour.flag_from_env(&host, "NO_EVAL");
    // The JSON hand-off to the starter (starter.go): invalid UTF-8 becomes U+FFFD.
    let command = handoff::json_round_trip(&request.command);
    let command_args: Vec<OsString> = request.args.iter().map(|a| handoff::json_round_trip(a)).collect();
    let host: Vec<(OsString, OsString)> = host
        .iter()
        .map(|(k, v)| (handoff::json_round_trip(k), handoff::json_round_trip(v)))
        .collect();

    let cwd = std::env::current_dir().map_err(|e| format!("working directory: {e}"))?;
    // HOME is the account's home directory from the password database,
    // not $HOME (create.go:180-183; bind_paths_and_mounts.rst).
    let home = account_home()?;
    let layout = mounts::Layout::check(&request, &home, &cwd)?;
    let image = std::path::absolute(&request.image).map_err(|e| format!("image path: {e}"))?;
    let handoff = environment::handoff(&host, flavour, &image, &home, request.cleanenv);

    let root = mounts::assemble(&layout, &session_directory(&binary))?;
    mounts::enter(&root, &cwd, &home)?;
    let env = action::run(&handoff, flavour, request.no_eval)?;
    let here = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
    let program = command::look_path(
        &command,
        env.get(std::ffi::OsStr::new("PATH")).map(|v| v.as_os_str()),
        &here,
    )
    .map_err(|e| format!("FATAL: {e}"))?;
    Err(command::exec(&program, &command_args, &env))
}

/// The calling account's home directory (`getpwuid`).
fn account_home() -> Result<PathBuf, String> {
    let uid = nix::unistd::getuid();
    match nix::unistd::User::from_uid(uid) {
        Ok(Some(user)) => Ok(user.dir),
        Ok(None) => Err(format!("no password entry for uid {uid}")),
        Err(e) => Err(format!("password entry for uid {uid}: {e}")),
    }
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
