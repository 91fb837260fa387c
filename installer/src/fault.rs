//! Fault injection for the crash-safety tests (I6): with
//! `INSTALLER_FAULT=after:<step>`, the installer kills itself with SIGKILL
//! right after the named step of `deploy` or `rollback` completes, exactly
//! as a `kill -9` from outside would at that instant. The step names are
//! listed in `deploy::DEPLOY_STEPS` and `deploy::ROLLBACK_STEPS` (and in
//! docs/installer.md). Unset or any other value: no effect.

use nix::sys::signal::{kill, Signal};
use nix::unistd::getpid;

/// The variable read at every named step.
pub const FAULT_VAR: &str = "INSTALLER_FAULT";

/// Mark the end of `step`; dies here when `INSTALLER_FAULT=after:<step>`.
pub fn after(step: &str) {
    let Some(value) = std::env::var_os(FAULT_VAR) else {
        return;
    };
    if value.to_str().and_then(|v| v.strip_prefix("after:")) == Some(step) {
        // Nothing is flushed or cleaned up: that is the point.
        let _ = kill(getpid(), Signal::SIGKILL);
        // SIGKILL cannot be caught; this is never reached.
        std::process::abort();
    }
}
