//! One installation under test, in its own temp dir: the runtime (the
//! stand-in, or a real one from `LAUNCHER_TEST_RUNTIME`), a base image, the
//! env images, and the scripts tree the launcher expects (launcher.md,
//! "Installed layout"):
//!
//! ```text
//! <root>/runtime/bin/apptainer, singularity -> apptainer   (stand-in)
//! <root>/base/                                           (sandbox base image)
//! <root>/envs/<env>.sqsh, <env> -> /opt/conda/<env>
//! <root>/scripts/launcher, launcher.toml, overrides/
//! <root>/scripts/<env>.d/bin/<cmd> -> ../../launcher     (each entry of the image's bin/)
//! <root>/scripts/analysis3.d -> analysis3-22.10.d        (alias)
//! <root>/hostbin/                                        (fake host commands: ssh, pbs_tmrsh)
//! <root>/home/, <root>/work/                             (HOME and cwd of the commands)
//! ```

use std::ffi::OsStr;
use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use super::images::{self, EnvImage, CONTAINER_PREFIX, MAIN_ALIAS, MAIN_ENV};
use super::{binaries, prereq};

/// Host commands the config marks as such; they get scripts links too.
const HOST_COMMANDS: &[&str] = &["ssh", "pbs_tmrsh"];

/// Which runtime layout to install the stand-in as (L10).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavour {
    /// `bin/apptainer` + `bin/singularity -> apptainer`, as Apptainer ships.
    Apptainer,
    /// `bin/singularity` only (SingularityCE).
    SingularityCe,
}

/// Set to keep each bed's directory after the test (its path is printed).
pub const KEEP_VAR: &str = "LAUNCHER_BED_KEEP";

pub struct Bed {
    /// `None` when kept for inspection (`LAUNCHER_BED_KEEP=1`).
    _dir: Option<tempfile::TempDir>,
    pub root: PathBuf,
    pub scripts: PathBuf,
    pub envs: PathBuf,
    /// The runtime binary the config names.
    pub runtime: PathBuf,
    pub base: PathBuf,
    pub hostbin: PathBuf,
    pub home: PathBuf,
    pub work: PathBuf,
}

impl Bed {
    /// A complete installation of the main and second env with the
    /// Apptainer layout, or `None` (after printing why) when the bed cannot
    /// run here. Panics on a real failure to build it.
    pub fn for_test(test: &str) -> Option<Bed> {
        Bed::with_flavour(test, Flavour::Apptainer)
    }

    pub fn with_flavour(test: &str, flavour: Flavour) -> Option<Bed> {
        if !prereq::bed_available(test) {
            return None;
        }
        Some(Bed::build(flavour).unwrap_or_else(|e| panic!("{test}: cannot build the test bed: {e}")))
    }

    fn build(flavour: Flavour) -> Result<Bed, String> {
        let envs_built = [images::main_env()?, images::second_env()?];
        let launcher = binaries::launcher()?;
        let dir = tempfile::Builder::new()
            .prefix("launcher-bed-")
            .tempdir()
            .map_err(|e| e.to_string())?;
        let root = dir.path().to_owned();
        let dir = if std::env::var_os(KEEP_VAR).is_some_and(|v| v == "1") {
            eprintln!("{KEEP_VAR}: keeping the bed in {}", root.display());
            let _ = dir.keep();
            None
        } else {
            Some(dir)
        };
        let bed = Bed {
            scripts: root.join("scripts"),
            envs: root.join("envs"),
            runtime: root.join("runtime/bin").join(match flavour {
                Flavour::Apptainer => "apptainer",
                Flavour::SingularityCe => "singularity",
            }),
            base: root.join("base"),
            hostbin: root.join("hostbin"),
            home: root.join("home"),
            work: root.join("work"),
            root,
            _dir: dir,
        };
        for dir in [
            &bed.scripts,
            &bed.envs,
            &bed.hostbin,
            &bed.home,
            &bed.work,
            &bed.scripts.join("overrides"),
        ] {
            fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        }
        bed.install_runtime(flavour)?;
        images::base_sandbox(&bed.base)?;
        super::files::copy_executable(&launcher, &bed.scripts.join("launcher"))?;
        for env in &envs_built {
            bed.install_env(env)?;
        }
        symlink(format!("{MAIN_ENV}.d"), bed.scripts.join(format!("{MAIN_ALIAS}.d"))).map_err(|e| e.to_string())?;
        bed.write_config(&bed.default_config());
        bed.install_host_commands()?;
        Ok(bed)
    }

    /// The stand-in under the flavour's layout, or a symlink to the real
    /// runtime from `LAUNCHER_TEST_RUNTIME`.
    fn install_runtime(&self, flavour: Flavour) -> Result<(), String> {
        let bin = self.runtime.parent().expect("runtime has a dir");
        match prereq::real_runtime() {
            Some(real) => {
                fs::create_dir_all(bin).map_err(|e| e.to_string())?;
                symlink(real, &self.runtime).map_err(|e| e.to_string())
            }
            None => install_standin(bin, flavour).map(drop),
        }
    }

    /// Install one more env image (e.g. the cluster's MPI env) the way the
    /// bed installs its own: the image and its `<env>.d` links.
    pub fn add_env(&self, env: &EnvImage) -> Result<(), String> {
        self.install_env(env)
    }

    /// `<envs>/<env>.sqsh` and the `<env>.d/bin` links for it.
    fn install_env(&self, env: &EnvImage) -> Result<(), String> {
        let image = self.image(env.name);
        if fs::hard_link(&env.image, &image).is_err() {
            fs::copy(&env.image, &image).map_err(|e| format!("copy {}: {e}", env.image.display()))?;
        }
        symlink(format!("{CONTAINER_PREFIX}/{}", env.name), self.envs.join(env.name)).map_err(|e| e.to_string())?;
        let bin = self.env_bin(env.name);
        fs::create_dir_all(&bin).map_err(|e| e.to_string())?;
        let commands = env
            .bin_entries
            .iter()
            .map(String::as_str)
            .chain(HOST_COMMANDS.iter().copied());
        // `.inside`: the same entries, the interpreters straight to the env's
        // (as `installer farm` writes it; issue 11, docs/python.md).
        let inside = bin.with_file_name(".inside");
        fs::create_dir_all(&inside).map_err(|e| e.to_string())?;
        // `<env>.d/lib`, as the farm writes it for an env with a Python.
        if env
            .bin_entries
            .iter()
            .any(|e| launcher::config::is_interpreter_name(std::ffi::OsStr::new(e)))
        {
            symlink(
                format!("{CONTAINER_PREFIX}/{}/lib", env.name),
                bin.with_file_name("lib"),
            )
            .map_err(|e| e.to_string())?;
        }
        for command in commands.chain(["launcher"]) {
            let link = bin.join(command);
            if !link.exists() {
                symlink("../../launcher", &link).map_err(|e| format!("{}: {e}", link.display()))?;
            }
            let target = if launcher::config::is_interpreter_name(std::ffi::OsStr::new(command))
                && env.bin_entries.iter().any(|e| e == command)
            {
                format!("{CONTAINER_PREFIX}/{}/bin/{command}", env.name)
            } else {
                "../../launcher".to_string()
            };
            let link = inside.join(command);
            if !link.exists() {
                symlink(target, &link).map_err(|e| format!("{}: {e}", link.display()))?;
            }
        }
        Ok(())
    }

    /// Fake host commands. `pbs_tmrsh` behaves like PBS starting a command
    /// on a remote node: it runs on that node's host (never in the caller's
    /// container: called from inside, it re-enters the test process's mount
    /// namespace with `nsenter`) with an empty environment. `ssh` reports
    /// whether it runs in a container.
    fn install_host_commands(&self) -> Result<(), String> {
        let pbs_tmrsh = format!(
            "#!/bin/sh\n\
            # Fake PBS remote shell: skip options, report, run the rest on the host with an empty environment.\n\
            while [ $# -gt 0 ]; do case \"$1\" in -n) shift;; -l) shift 2;; -l*) shift;; *) break;; esac; done\n\
            echo \"pbs_tmrsh: host $1 runs:\" \"$@\" >&2; shift\n\
            if [ -d /.singularity.d ]; then\n\
            \x20 exec /usr/bin/nsenter --target {host_pid} --mount --root \\\n\
            \x20   /bin/sh -c 'cd \"$0\" && exec /usr/bin/env -i \"$@\"' \"$PWD\" \"$@\"\n\
            fi\n\
            exec /usr/bin/env -i \"$@\"\n",
            host_pid = std::process::id()
        );
        let ssh = "#!/bin/sh\n\
            if [ -d /.singularity.d ]; then where=inside; else where=outside; fi\n\
            echo \"host-ssh $where: $*\"\n";
        self.write_executable(&self.hostbin.join("pbs_tmrsh"), &pbs_tmrsh)?;
        self.write_executable(&self.hostbin.join("ssh"), ssh)
    }

    pub fn write_executable(&self, path: &Path, text: &str) -> Result<(), String> {
        super::files::write_executable(path, text)
    }

    /// The config every scenario starts from; paths relative to the config
    /// file where the schema allows it (so that is exercised too).
    pub fn default_config(&self) -> String {
        let image = match std::env::var_os(prereq::BASE_IMAGE_VAR) {
            Some(real) => Path::new(&real).display().to_string(),
            None => "../base".into(),
        };
        let mut binds: Vec<String> = ["/usr", "/etc", "/lib", "/lib64"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        binds.push(self.root.display().to_string());
        let runtime = if prereq::native_runtime() {
            "flavour = \"native\"".to_string()
        } else {
            format!(
                "path = \"../runtime/bin/{}\"",
                self.runtime.file_name().expect("runtime name").to_string_lossy()
            )
        };
        format!(
            r#"default_env = "{MAIN_ENV}"

[runtime]
{runtime}
image = "{image}"

[container]
binds = [{binds}]
envs_dir = "../envs"
prefix = "{CONTAINER_PREFIX}"

[container.env]
PYTHONNOUSERSITE = "x"

[commands.jupyter]
overlays = "all"

[commands.ssh]
host = true

[commands.pbs_tmrsh]
builtin = "pbs_tmrsh"

[commands.greet]
script = "overrides/greet.sh"
"#,
            binds = binds.iter().map(|b| format!("{b:?}")).collect::<Vec<_>>().join(", "),
        )
    }

    pub fn config_path(&self) -> PathBuf {
        self.scripts.join("launcher.toml")
    }

    pub fn write_config(&self, text: &str) {
        let path = self.config_path();
        fs::write(&path, text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).expect("chmod config");
    }

    /// `<scripts>/<env>.d/bin`
    pub fn env_bin(&self, env: &str) -> PathBuf {
        self.scripts.join(format!("{env}.d/bin"))
    }

    /// `<scripts>/<env>.d/bin/<command>`: what users run.
    pub fn link(&self, env: &str, command: &str) -> PathBuf {
        self.env_bin(env).join(command)
    }

    /// `<envs>/<env>.sqsh`
    pub fn image(&self, env: &str) -> PathBuf {
        self.envs.join(format!("{env}.sqsh"))
    }

    /// The `PATH` commands start with: fake host commands, then the usual
    /// system dirs (no scripts dir: tests that want one add it).
    pub fn host_path(&self) -> String {
        format!(
            "{}:/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin",
            self.hostbin.display()
        )
    }

    /// `program` with a small, known environment (nothing inherited from the
    /// test process, which carries cargo's variables), run in `work/`.
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        let mut command = Command::new(program);
        command
            .env_clear()
            .env("PATH", self.host_path())
            .env("HOME", &self.home)
            .env("LANG", "C.UTF-8")
            .current_dir(&self.work);
        command
    }
}

/// Copy the stand-in into `bin` the way the flavour's runtime is installed
/// (`apptainer` + `singularity -> apptainer`, or `singularity`); returns the
/// path the launcher should call.
pub fn install_standin(bin: &Path, flavour: Flavour) -> Result<PathBuf, String> {
    fs::create_dir_all(bin).map_err(|e| format!("{}: {e}", bin.display()))?;
    let name = match flavour {
        Flavour::Apptainer => "apptainer",
        Flavour::SingularityCe => "singularity",
    };
    let runtime = bin.join(name);
    super::files::copy_executable(&binaries::standin_runtime(), &runtime)?;
    if flavour == Flavour::Apptainer {
        symlink("apptainer", bin.join("singularity")).map_err(|e| e.to_string())?;
    }
    Ok(runtime)
}
