//! The container runtime a launch would use (L9, L10), found by the
//! launcher's own code so that `check` and `demo` can never disagree with a
//! real launch.

use std::path::PathBuf;

use launcher::config::{Config, FlavourSetting};
use launcher::invocation::search_path;
use launcher::probe::OsProbe;
pub use launcher::runtime::{Flavour, RUNTIME_NAMES};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Runtime {
    pub path: PathBuf,
    /// `None`: flavour "auto" and the binary's name tells neither.
    pub flavour: Option<Flavour>,
}

/// The runtime a launch would use: `runtime.path`, else `apptainer` or
/// `singularity` from `PATH`. The error says where it looked.
pub fn find(config: &Config) -> Result<Runtime, String> {
    let path_var = std::env::var_os("PATH");
    let path = launcher::runtime::find_runtime(None, config.runtime.path.as_deref(), path_var.as_deref(), &OsProbe)
        .map_err(|e| e.to_string())?;
    let flavour = match config.runtime.flavour {
        FlavourSetting::Auto => launcher::runtime::flavour_by_name(&path, &OsProbe),
        setting => Some(launcher::runtime::flavour(setting, &path, &OsProbe)),
    };
    Ok(Runtime { path, flavour })
}

/// The first executable file called `name` on `PATH`.
pub fn which(name: &str) -> Option<PathBuf> {
    let path_var = std::env::var_os("PATH");
    search_path(name.as_ref(), path_var.as_deref(), &OsProbe, |_| true)
}

/// Which product a runtime says it is (`RUNTIME --version`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Product {
    /// `apptainer version X` (also when called as `singularity`).
    Apptainer,
    /// `singularity-ce version X`.
    SingularityCe,
    /// `singularity version X`: Singularity before the Apptainer/SingularityCE split.
    Singularity,
}

impl Product {
    pub fn name(self) -> &'static str {
        match self {
            Product::Apptainer => "Apptainer",
            Product::SingularityCe => "SingularityCE",
            Product::Singularity => "Singularity",
        }
    }
}

/// What `RUNTIME --version` told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    pub product: Product,
    pub version: String,
}

/// Read `apptainer version 1.3.6`, `singularity-ce version 4.1.0` or
/// `singularity version 3.8.7` out of `--version`'s output.
pub fn parse_version(text: &str) -> Option<Version> {
    text.lines().find_map(|line| {
        let words: Vec<&str> = line.split_whitespace().collect();
        let [name, "version", version, ..] = words.as_slice() else {
            return None;
        };
        let product = match name.to_ascii_lowercase().as_str() {
            "apptainer" => Product::Apptainer,
            "singularity-ce" => Product::SingularityCe,
            "singularity" => Product::Singularity,
            _ => return None,
        };
        Some(Version {
            product,
            version: version.to_string(),
        })
    })
}

/// Why `RUNTIME --version` gave no answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VersionError {
    /// The binary cannot be started at all (bad interpreter, not executable):
    /// a launch would fail the same way.
    CannotRun(String),
    /// It ran but failed, or did not finish in time.
    Failed(String),
}

/// How long `RUNTIME --version` may take.
pub const VERSION_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Run `RUNTIME --version` (stdin and stderr closed, at most 64 KiB of
/// stdout read) and return its standard output. A runtime that hangs is
/// killed, with its whole process group, after `timeout`.
pub fn version_output(runtime: &std::path::Path, timeout: std::time::Duration) -> Result<String, VersionError> {
    use std::io::Read;
    use std::os::unix::process::CommandExt;
    use std::process::{Command, Stdio};
    use std::time::Instant;

    let shown = format!("`{} --version`", runtime.display());
    let mut child = Command::new(runtime)
        .arg("--version")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .map_err(|e| VersionError::CannotRun(format!("cannot run {shown}: {}", crate::error::io_reason(&e))))?;
    let (tx, rx) = std::sync::mpsc::channel();
    if let Some(stdout) = child.stdout.take() {
        // A thread, so that a grandchild holding the pipe open cannot block us.
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = stdout.take(64 * 1024).read_to_end(&mut bytes);
            let _ = tx.send(bytes);
        });
    }
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(std::time::Duration::from_millis(10)),
            Ok(None) => {
                let pid = nix::unistd::Pid::from_raw(child.id() as i32);
                let _ = nix::sys::signal::killpg(pid, nix::sys::signal::Signal::SIGKILL);
                let _ = child.wait();
                return Err(VersionError::Failed(format!(
                    "{shown} did not finish within {} s",
                    timeout.as_secs()
                )));
            }
            Err(e) => {
                return Err(VersionError::Failed(format!(
                    "{shown}: {}",
                    crate::error::io_reason(&e)
                )))
            }
        }
    };
    let bytes = rx
        .recv_timeout(std::time::Duration::from_millis(500))
        .unwrap_or_default();
    if !status.success() {
        return Err(VersionError::Failed(format!("{shown} failed ({status})")));
    }
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// Whether the runtime runs containers through its setuid starter or in a
/// user namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// `<prefix>/libexec/{apptainer,singularity}/bin/starter-suid`, setuid root.
    Setuid(PathBuf),
    /// No usable setuid starter; the text says why.
    UserNamespace(String),
}

impl Mode {
    pub fn describe(&self) -> String {
        match self {
            Mode::Setuid(starter) => format!("setuid mode ({} is setuid root)", starter.display()),
            Mode::UserNamespace(why) => format!("user-namespace mode ({why})"),
        }
    }
}

/// The mode of the runtime at `runtime`: its install prefix is the parent
/// of the (link-resolved) binary's `bin/`; setuid when the starter there is
/// setuid root and the runtime's config does not say `allow setuid = no`.
pub fn mode(runtime: &std::path::Path) -> Mode {
    use std::os::unix::fs::MetadataExt;
    let real = std::fs::canonicalize(runtime).unwrap_or_else(|_| runtime.to_path_buf());
    let Some(prefix) = real.parent().and_then(std::path::Path::parent) else {
        return Mode::UserNamespace(format!("{} has no install prefix", real.display()));
    };
    for name in ["apptainer", "singularity"] {
        let starter = prefix.join("libexec").join(name).join("bin/starter-suid");
        let Ok(meta) = std::fs::metadata(&starter) else {
            continue;
        };
        if meta.mode() & 0o4000 == 0 || meta.uid() != 0 {
            return Mode::UserNamespace(format!("{} is not setuid root", starter.display()));
        }
        if let Some(conf) = setuid_disallowed(prefix, name) {
            return Mode::UserNamespace(format!("{} says allow setuid = no", conf.display()));
        }
        return Mode::Setuid(starter);
    }
    Mode::UserNamespace(format!(
        "no starter-suid in {}/libexec/{{apptainer,singularity}}/bin",
        prefix.display()
    ))
}

/// The runtime's config (`<prefix>/etc/NAME/NAME.conf`, `/etc/NAME/NAME.conf`
/// for a `/usr` install) when it says `allow setuid = no`.
fn setuid_disallowed(prefix: &std::path::Path, name: &str) -> Option<PathBuf> {
    let conf_in = |etc: &std::path::Path| etc.join(name).join(format!("{name}.conf"));
    let mut candidates = vec![conf_in(&prefix.join("etc"))];
    if prefix == std::path::Path::new("/usr") {
        candidates.push(conf_in(std::path::Path::new("/etc")));
    }
    let conf = candidates.into_iter().find(|c| c.is_file())?;
    let text = std::fs::read_to_string(&conf).ok()?;
    text.lines()
        .filter_map(|line| line.split_once('='))
        .any(|(key, value)| key.split_whitespace().collect::<Vec<_>>() == ["allow", "setuid"] && value.trim() == "no")
        .then_some(conf)
}

/// What the launcher's own runtime (`runtime.flavour = "native"`) needs on
/// this host, as `installer check` reports it: as root, loop devices; as an
/// ordinary user, unprivileged user namespaces, a `/dev/fuse` users can open
/// and `squashfuse` on `PATH` (docs/native-runtime.md). Facts read from the
/// host by [`NativeHost::probe`], judged by [`NativeHost::report`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NativeHost {
    /// `/dev/loop-control` exists.
    pub loop_control: bool,
    /// `user.max_user_namespaces`.
    pub max_user_namespaces: Option<u64>,
    /// `kernel.unprivileged_userns_clone` (Debian, Ubuntu kernels).
    pub unprivileged_userns_clone: Option<u64>,
    /// `kernel.apparmor_restrict_unprivileged_userns` (Ubuntu ≥ 23.10).
    pub apparmor_restrict_userns: Option<u64>,
    /// `/dev/fuse`'s permission bits, when it is a character device.
    pub dev_fuse_mode: Option<u32>,
    /// `squashfuse` on `PATH`.
    pub squashfuse: Option<PathBuf>,
}

/// `info:` and `warning:` lines about the native runtime.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NativeReport {
    pub infos: Vec<String>,
    pub warnings: Vec<String>,
}

impl NativeHost {
    /// Read the facts from this host (`PATH` of the caller for squashfuse,
    /// as the launcher looks it up).
    pub fn probe() -> NativeHost {
        use std::os::unix::fs::{FileTypeExt, PermissionsExt};
        let sysctl = |path: &str| {
            std::fs::read_to_string(path)
                .ok()
                .and_then(|text| text.trim().parse::<u64>().ok())
        };
        NativeHost {
            loop_control: std::path::Path::new("/dev/loop-control").exists(),
            max_user_namespaces: sysctl("/proc/sys/user/max_user_namespaces"),
            unprivileged_userns_clone: sysctl("/proc/sys/kernel/unprivileged_userns_clone"),
            apparmor_restrict_userns: sysctl("/proc/sys/kernel/apparmor_restrict_unprivileged_userns"),
            dev_fuse_mode: std::fs::metadata("/dev/fuse")
                .ok()
                .filter(|m| m.file_type().is_char_device())
                .map(|m| m.permissions().mode() & 0o7777),
            squashfuse: which("squashfuse"),
        }
    }

    /// One `info:` line naming the runtime, one per way of mounting that
    /// works here, and a `warning:` per thing a way lacks.
    pub fn report(&self) -> NativeReport {
        let mut report = NativeReport::default();
        report.infos.push(
            "runtime: the launcher's own native runtime (runtime.flavour = \"native\"): \
             no apptainer or singularity needed"
                .to_string(),
        );
        if self.loop_control {
            report
                .infos
                .push("native runtime as root: kernel squashfs on loop devices (/dev/loop-control)".to_string());
        } else {
            report.warnings.push(
                "native runtime as root: /dev/loop-control not found: no loop devices to mount the images on \
                 (load the loop module)"
                    .to_string(),
            );
        }
        let mut user_missing = Vec::new();
        let off = [
            ("user.max_user_namespaces", self.max_user_namespaces, 0),
            ("kernel.unprivileged_userns_clone", self.unprivileged_userns_clone, 0),
            (
                "kernel.apparmor_restrict_unprivileged_userns",
                self.apparmor_restrict_userns,
                1,
            ),
        ];
        for (name, value, bad) in off {
            if value == Some(bad) {
                user_missing.push(format!("unprivileged user namespaces are off ({name} = {bad})"));
            }
        }
        match self.dev_fuse_mode {
            None => user_missing.push("/dev/fuse not found (load the fuse module)".to_string()),
            Some(mode) if mode & 0o006 != 0o006 => user_missing.push(format!(
                "/dev/fuse is not usable by users (mode {mode:04o}; distributions ship it 0666)"
            )),
            Some(_) => {}
        }
        match &self.squashfuse {
            None => user_missing.push("squashfuse not found on PATH (Debian: apt-get install squashfuse)".to_string()),
            Some(path) if user_missing.is_empty() => report.infos.push(format!(
                "native runtime as a user: a user namespace and squashfuse ({}): user namespaces allowed, \
                 /dev/fuse usable",
                path.display()
            )),
            Some(_) => {}
        }
        for why in user_missing {
            report.warnings.push(format!(
                "native runtime as a user: {why}: ordinary users' launches fail"
            ));
        }
        report
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ready() -> NativeHost {
        NativeHost {
            loop_control: true,
            max_user_namespaces: Some(63_000),
            unprivileged_userns_clone: None,
            apparmor_restrict_userns: Some(0),
            dev_fuse_mode: Some(0o666),
            squashfuse: Some("/usr/bin/squashfuse".into()),
        }
    }

    #[test]
    fn native_runtime_ready_for_root_and_users_is_info_only() {
        let report = ready().report();
        assert!(report.warnings.is_empty(), "{report:?}");
        assert_eq!(report.infos.len(), 3, "{report:?}");
        assert!(report.infos[0].contains("native runtime (runtime.flavour = \"native\")"));
        assert!(report.infos[1].contains("as root: kernel squashfs on loop devices"));
        assert!(report.infos[2].contains("as a user: a user namespace and squashfuse (/usr/bin/squashfuse)"));
    }

    #[test]
    fn native_runtime_lacks_are_warnings_naming_the_fix() {
        let host = NativeHost {
            loop_control: false,
            max_user_namespaces: Some(0),
            unprivileged_userns_clone: Some(0),
            apparmor_restrict_userns: Some(1),
            dev_fuse_mode: Some(0o600),
            squashfuse: None,
        };
        let report = host.report();
        assert_eq!(report.infos.len(), 1, "{report:?}");
        let all = report.warnings.join("\n");
        for want in [
            "as root: /dev/loop-control not found",
            "user.max_user_namespaces = 0",
            "kernel.unprivileged_userns_clone = 0",
            "kernel.apparmor_restrict_unprivileged_userns = 1",
            "/dev/fuse is not usable by users (mode 0600",
            "squashfuse not found on PATH",
        ] {
            assert!(all.contains(want), "{want} not in\n{all}");
        }
        assert_eq!(report.warnings.len(), 6);
        let no_fuse = NativeHost {
            dev_fuse_mode: None,
            ..ready()
        };
        assert_eq!(
            no_fuse.report().warnings,
            ["native runtime as a user: /dev/fuse not found (load the fuse module): ordinary users' launches fail"]
        );
    }

    #[test]
    fn versions() {
        let v = |t: &str| parse_version(t).map(|v| (v.product, v.version));
        assert_eq!(
            v("apptainer version 1.1.9\n"),
            Some((Product::Apptainer, "1.1.9".into()))
        );
        assert_eq!(
            v("singularity-ce version 4.1.0-jammy\n"),
            Some((Product::SingularityCe, "4.1.0-jammy".into()))
        );
        assert_eq!(
            v("singularity version 3.8.7"),
            Some((Product::Singularity, "3.8.7".into()))
        );
        assert_eq!(
            v("INFO: x\napptainer version 1.3.6"),
            Some((Product::Apptainer, "1.3.6".into()))
        );
        assert_eq!(v(""), None);
        assert_eq!(v("docker version 20"), None);
        assert_eq!(v("apptainer 1.1"), None);
    }
}
