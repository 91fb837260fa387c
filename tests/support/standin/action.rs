//! The action script's shell part, run for real inside the container.
//!
//! Apptainer interprets its built-in `action_script.sh` in an embedded
//! shell (`mvdan.cc/sh`): it sources `/.singularity.d/env/*.sh`, sources
//! the injected `export KEY="VALUE"` lines right after `99-base.sh` (or on
//! their own when the image has no `env/`), then the virtual
//! `99-runtimevars.sh`. The stand-in runs the same steps with the
//! container's `/bin/sh`, so prefixed values are evaluated once for real
//! (`$VAR`, backticks and `$(…)` run inside, `\\` becomes `\`), and an
//! injection that does not parse (a value ending in `\`, an unbalanced
//! quote) is skipped whole — every prefixed variable lost — with one
//! `source:` line on stderr, as mvdan's `source` reports it.
//!
//! The environment the script ends with is written as `env -0` to fd 3.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io::Read;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStringExt;
use std::os::unix::process::CommandExt;
use std::process::Command;

use super::environment::{Flavour, Handoff};

/// The driver. `__STANDIN_INJECT` holds the injection script.
const SCRIPT: &str = r#"
__standin_inject() {
    if /bin/sh -n -c "$__STANDIN_INJECT" 2>/dev/null; then
        eval "$__STANDIN_INJECT"
    else
        echo 'source: /.inject-apptainer-env.sh: reached EOF without closing quote "' >&2
    fi
}
if test -d /.singularity.d/env; then
    for __standin_script in /.singularity.d/env/*.sh; do
        if test -f "$__standin_script"; then
            . "$__standin_script"
            if test "$__standin_script" = /.singularity.d/env/99-base.sh; then
                __standin_inject
            fi
        fi
    done
else
    __standin_inject
fi
unset __STANDIN_INJECT
# runtime_vars.sh
if test -n "${SING_USER_DEFINED_PREPEND_PATH:-}"; then
    PATH="${SING_USER_DEFINED_PREPEND_PATH}:${PATH}"
    unset SING_USER_DEFINED_PREPEND_PATH
fi
if test -n "${SING_USER_DEFINED_APPEND_PATH:-}"; then
    PATH="${PATH}:${SING_USER_DEFINED_APPEND_PATH}"
    unset SING_USER_DEFINED_APPEND_PATH
fi
if test -n "${SING_USER_DEFINED_PATH:-}"; then
    PATH="${SING_USER_DEFINED_PATH}"
    unset SING_USER_DEFINED_PATH
fi
export PATH
exec /usr/bin/env -0 >&3
"#;

/// Run the env scripts and the injection in the container (we are already
/// chrooted) and return the environment the command gets.
pub fn run(handoff: &Handoff, flavour: Flavour, no_eval: bool) -> Result<BTreeMap<OsString, OsString>, String> {
    let (reader, writer): (OwnedFd, OwnedFd) = nix::unistd::pipe().map_err(|e| format!("pipe: {e}"))?;
    let write_fd = writer.as_raw_fd();
    let mut command = Command::new("/bin/sh");
    command
        .arg("-c")
        .arg(SCRIPT)
        .env_clear()
        .envs(handoff.visible_to_scripts(flavour))
        .env(
            "__STANDIN_INJECT",
            OsString::from_vec(handoff.injection_script(no_eval)),
        );
    // SAFETY: dup2 is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        command.pre_exec(move || {
            if libc::dup2(write_fd, 3) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = command
        .spawn()
        .map_err(|e| format!("cannot run the container's /bin/sh for the action script: {e}"))?;
    drop(writer);
    let mut dump = Vec::new();
    std::fs::File::from(reader)
        .read_to_end(&mut dump)
        .map_err(|e| format!("reading the action script's environment: {e}"))?;
    let status = child.wait().map_err(|e| format!("action script: {e}"))?;
    if !status.success() {
        return Err(format!("action script failed ({status}) in the container"));
    }
    let mut after = BTreeMap::new();
    for entry in dump.split(|&b| b == 0).filter(|e| !e.is_empty()) {
        if let Some(eq) = entry.iter().position(|&b| b == b'=') {
            after.insert(
                OsString::from_vec(entry[..eq].to_vec()),
                OsString::from_vec(entry[eq + 1..].to_vec()),
            );
        }
    }
    let mut env = handoff.restore(after);
    finish(&mut env, flavour);
    Ok(env)
}

/// The end of `action_script.sh`: a prompt when `PS1` is empty, the
/// `PROMPT_COMMAND` that forces it on bash, `*_ENVIRONMENT`.
fn finish(env: &mut BTreeMap<OsString, OsString>, flavour: Flavour) {
    let ps1 = match env.get(std::ffi::OsStr::new("PS1")) {
        Some(v) if !v.is_empty() => v.to_string_lossy().into_owned(),
        _ => {
            env.insert("PS1".into(), flavour.prompt().into());
            flavour.prompt().to_string()
        }
    };
    let prompt_command = match env
        .get(std::ffi::OsStr::new("PROMPT_COMMAND"))
        .filter(|v| !v.is_empty())
    {
        None => format!("PS1=\"{ps1}\"; unset PROMPT_COMMAND"),
        Some(existing) => format!(
            "{}; PROMPT_COMMAND=\"${{PROMPT_COMMAND%%; PROMPT_COMMAND=*}}\"; PS1=\"{ps1}\"",
            existing.to_string_lossy()
        ),
    };
    env.insert("PROMPT_COMMAND".into(), prompt_command.into());
    let environment = "/.singularity.d/env/91-environment.sh";
    if flavour == Flavour::Apptainer {
        env.insert("APPTAINER_ENVIRONMENT".into(), environment.into());
    }
    env.insert("SINGULARITY_ENVIRONMENT".into(), environment.into());
}
