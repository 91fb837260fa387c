//! The installer's outputs used by the real consumers: the activation
//! variables of env.toml (I7) in the launcher's runtime command (L13), and
//! the modulefiles and `.modulerc` (I8, I9) loaded, resolved and unloaded
//! with both Environment Modules and Lmod.
//!
//! The installation is made the way a site makes it: `installer pack` of a
//! built env, `installer deploy`, `installer alias`.
mod support;

use std::collections::HashMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use support::binaries;
use support::modules::{environment_after, resolve, without_bookkeeping, ModuleTool};

const OLD: &str = "analysis3-22.10";
const NEW: &str = "analysis3-23.01";
const BASE_PATH: &str = "/usr/bin:/bin";

/// Static: captured. Conditional: not captured.
const PROJ_SH: &str = "export PROJ_DATA=\"${CONDA_PREFIX}/share/proj\"\nexport PROJ_NETWORK=ON\n";
const GDAL_SH: &str = "if [ -n \"$GDAL_DATA\" ]; then\n  export _OLD_GDAL_DATA=$GDAL_DATA\nfi\nexport GDAL_DATA=$CONDA_PREFIX/share/gdal\n";

struct Site {
    _dir: tempfile::TempDir,
    root: PathBuf,
    scripts: PathBuf,
}

fn write_exec(path: &Path, text: &str) {
    support::files::write_executable(path, text).unwrap();
}

fn check(out: &Output) {
    assert!(
        out.status.success(),
        "failed with {}:\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Site {
    /// Two versions deployed, `analysis3` -> old, `analysis3-unstable` -> new.
    fn new() -> Site {
        let dir = tempfile::Builder::new()
            .prefix("installer-life-")
            .tempdir_in("/tmp")
            .unwrap();
        let root = dir.path().to_path_buf();
        fs::set_permissions(&root, fs::Permissions::from_mode(0o755)).unwrap();
        let scripts = root.join("scripts");
        fs::create_dir_all(&scripts).unwrap();
        fs::create_dir_all(root.join("base/.singularity.d")).unwrap();
        // Mount points `installer check` asks of a sandbox base: the bind
        // (this root) and the container prefix.
        fs::create_dir_all(root.join("base/opt/conda")).unwrap();
        fs::create_dir_all(root.join("base").join(root.strip_prefix("/").unwrap())).unwrap();
        // A runtime that is never run: the launcher is only asked for a dry run.
        write_exec(&root.join("rt/apptainer"), "#!/bin/sh\nexit 99\n");
        fs::write(
            scripts.join("launcher.toml"),
            format!(
                "modules_dir = \"../modules/conda\"\n\
                 [runtime]\npath = \"../rt/apptainer\"\nimage = \"../base\"\n\
                 [container]\nenvs_dir = \"../envs\"\nbinds = [\"{}\"]\n",
                root.display()
            ),
        )
        .unwrap();
        let site = Site {
            _dir: dir,
            root,
            scripts,
        };
        for env in [OLD, NEW] {
            let build = site.root.join("build").join(env);
            write_exec(&build.join("bin/hello"), "#!/bin/sh\necho hello\n");
            fs::create_dir_all(build.join("etc/conda/activate.d")).unwrap();
            fs::write(build.join("etc/conda/activate.d/proj.sh"), PROJ_SH).unwrap();
            fs::write(build.join("etc/conda/activate.d/gdal.sh"), GDAL_SH).unwrap();
            let image = site.root.join(format!("{env}.sqsh"));
            check(
                &site
                    .installer()
                    .arg("pack")
                    .arg(&build)
                    .args(["--env", env, "-o"])
                    .arg(&image)
                    .output()
                    .unwrap(),
            );
            let out = site
                .installer()
                .arg("deploy")
                .arg(&image)
                .args(["--env", env, "--launcher"])
                .arg(binaries::launcher().unwrap())
                .output()
                .unwrap();
            check(&out);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(
                stderr.contains("activation script etc/conda/activate.d/gdal.sh not captured (line 1:"),
                "the computing script must be named in a warning: {stderr}"
            );
        }
        check(&site.installer().args(["alias", "analysis3", OLD]).output().unwrap());
        check(
            &site
                .installer()
                .args(["alias", "analysis3-unstable", NEW])
                .output()
                .unwrap(),
        );
        site
    }

    fn installer(&self) -> Command {
        let mut c = Command::new(binaries::installer().unwrap());
        c.arg("--scripts")
            .arg(&self.scripts)
            .env_remove("INSTALLER_SCRIPTS")
            .env_remove("INSTALLER_MODULES");
        c
    }

    fn modules(&self) -> PathBuf {
        self.root.join("modules")
    }

    fn bin(&self, env: &str) -> String {
        self.scripts.join(format!("{env}.d/bin")).display().to_string()
    }

    fn image(&self, env: &str) -> String {
        // Spelled as the config resolves it, like the launcher does.
        self.scripts.join(format!("../envs/{env}.sqsh")).display().to_string()
    }
}

#[test]
fn i7_env_toml_holds_static_activation_and_names_what_it_could_not_capture() {
    let site = Site::new();
    let text = fs::read(site.scripts.join(format!("{OLD}.d/env.toml"))).unwrap();
    let facts = launcher::config::EnvFacts::parse(&text, Path::new("env.toml")).unwrap();
    let prefix = format!("/opt/conda/{OLD}");
    let want: Vec<(&str, String)> = vec![
        ("CONDA_DEFAULT_ENV", OLD.into()),
        ("CONDA_PREFIX", prefix.clone()),
        ("PROJ_DATA", format!("{prefix}/share/proj")),
        ("PROJ_NETWORK", "ON".into()),
    ];
    let got: Vec<(&str, String)> = facts.env.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
    assert_eq!(got, want);
    assert_eq!(facts.not_captured, ["etc/conda/activate.d/gdal.sh"]);
}

#[test]
fn i7_l13_activation_variables_reach_the_runtime_command() {
    let site = Site::new();
    for link in [format!("{OLD}.d/bin/hello"), "analysis3.d/bin/hello".to_string()] {
        let out = Command::new(site.scripts.join(&link))
            .arg("world")
            .env_clear()
            .env("PATH", BASE_PATH)
            .env("LAUNCHER_DRY_RUN", "1")
            .output()
            .unwrap();
        check(&out);
        let line = String::from_utf8_lossy(&out.stdout).into_owned();
        let prefix = format!("/opt/conda/{OLD}");
        for want in [
            format!("APPTAINERENV_PROJ_DATA={prefix}/share/proj "),
            "APPTAINERENV_PROJ_NETWORK=ON ".to_string(),
            format!("APPTAINERENV_CONDA_PREFIX={prefix} "),
            format!("APPTAINERENV_CONDA_DEFAULT_ENV={OLD} "),
        ] {
            assert!(line.contains(&want), "{link}: {want:?} missing in {line}");
        }
        assert!(
            !line.contains("GDAL_DATA"),
            "{link}: a not-captured variable leaked: {line}"
        );
    }
}

/// Each check with Environment Modules, then with Lmod.
fn with_each_tool(test: &str, check: impl Fn(ModuleTool)) {
    for tool in ModuleTool::BOTH {
        if tool.available(&format!("{test}::{tool:?}")) {
            check(tool);
        }
    }
}

#[test]
fn i8_modulefile_loads_and_unloads_with_both_tools() {
    let site = Site::new();
    let modules = site.modules();
    // A user's own image already listed: the env's goes first (L11).
    let base = [("PATH", BASE_PATH), ("CONTAINER_OVERLAY_PATH", "/site/other.sqsh")];
    with_each_tool("i8_modulefile_loads_and_unloads_with_both_tools", |tool| {
        let name = format!("conda/{OLD}");
        let loaded = environment_after(tool, &[&modules], &base, &[&format!("load {name}")]).unwrap();
        assert_eq!(loaded["PATH"], format!("{}:{BASE_PATH}", site.bin(OLD)), "{tool}");
        assert_eq!(
            loaded["CONTAINER_OVERLAY_PATH"],
            format!("{}:/site/other.sqsh", site.image(OLD)),
            "{tool}"
        );
        assert_eq!(loaded["PROJ_DATA"], format!("/opt/conda/{OLD}/share/proj"), "{tool}");
        assert_eq!(loaded["CONDA_PREFIX"], format!("/opt/conda/{OLD}"), "{tool}");
        assert_eq!(loaded["CONDA_DEFAULT_ENV"], OLD, "{tool}");
        assert!(!loaded.contains_key("GDAL_DATA"), "{tool}");

        let unloaded = environment_after(
            tool,
            &[&modules],
            &base,
            &[&format!("load {name}"), &format!("unload {name}")],
        )
        .unwrap();
        let mut expected: HashMap<String, String> = base.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        expected.insert("MODULEPATH".into(), modules.display().to_string());
        assert_eq!(
            without_bookkeeping(&unloaded),
            expected,
            "{tool}: everything the module set must vanish"
        );
    });
}

#[test]
fn i8_i9_module_aliases_follow_installer_alias() {
    let site = Site::new();
    let modules = site.modules();
    with_each_tool("i8_i9_module_aliases_follow_installer_alias", |tool| {
        assert_eq!(
            resolve(tool, &[&modules], "conda/analysis3").unwrap(),
            [format!("conda/{OLD}")],
            "{tool}"
        );
        assert_eq!(
            resolve(tool, &[&modules], "conda/analysis3-unstable").unwrap(),
            [format!("conda/{NEW}")],
            "{tool}"
        );
    });
    // Stable moves to the new version: the module alias moves with the links.
    check(&site.installer().args(["alias", "analysis3", NEW]).output().unwrap());
    assert_eq!(
        fs::read_link(site.scripts.join("analysis3.d")).unwrap(),
        Path::new(&format!("{NEW}.d"))
    );
    assert_eq!(fs::read_link(site.root.join("envs/analysis3")).unwrap(), Path::new(NEW));
    with_each_tool("i8_i9_module_aliases_follow_installer_alias", |tool| {
        assert_eq!(
            resolve(tool, &[&modules], "conda/analysis3").unwrap(),
            [format!("conda/{NEW}")],
            "{tool}"
        );
        let env = environment_after(tool, &[&modules], &[("PATH", BASE_PATH)], &["load conda/analysis3"]).unwrap();
        assert_eq!(env["CONTAINER_OVERLAY_PATH"], site.image(NEW), "{tool}");
    });
    check(&site.installer().arg("check").output().unwrap());
}

/// testing.md "Reliability": users keep launching while the site deploys,
/// rolls back and swaps aliases in a loop. Every launch (a dry run through
/// the alias and through the versioned link: config, symlink chain, env
/// alias, image, env.toml all read for real) must succeed.
#[test]
fn launches_never_fail_while_the_installer_deploys_rolls_back_and_swaps_aliases() {
    let site = Site::new();
    // A second build of the old env, so deploy really replaces the image.
    let build = site.root.join("build").join(OLD);
    write_exec(&build.join("bin/hello"), "#!/bin/sh\necho hello again\n");
    let second = site.root.join(format!("{OLD}-second.sqsh"));
    check(
        &site
            .installer()
            .arg("pack")
            .arg(&build)
            .args(["--env", OLD, "-o"])
            .arg(&second)
            .output()
            .unwrap(),
    );
    let first = site.root.join(format!("{OLD}.sqsh"));

    let done = std::sync::atomic::AtomicBool::new(false);
    let cycles = 8;
    let (launches, failures) = std::thread::scope(|scope| {
        let admin = scope.spawn(|| {
            for _ in 0..cycles {
                for args in [
                    vec![
                        "deploy".into(),
                        second.display().to_string(),
                        "--env".into(),
                        OLD.into(),
                    ],
                    vec!["rollback".into(), "--env".into(), OLD.into()],
                    vec!["deploy".into(), first.display().to_string(), "--env".into(), OLD.into()],
                    vec!["alias".into(), "analysis3".into(), NEW.into()],
                    vec!["alias".into(), "analysis3".into(), OLD.into()],
                ] {
                    check(&site.installer().args(&args).output().unwrap());
                }
            }
            done.store(true, std::sync::atomic::Ordering::SeqCst);
        });
        let mut launches = 0usize;
        let mut failures: Vec<String> = Vec::new();
        let links = [
            site.scripts.join("analysis3.d/bin/hello"),
            site.scripts.join(format!("{OLD}.d/bin/hello")),
        ];
        while !done.load(std::sync::atomic::Ordering::SeqCst) || launches < 1000 {
            let link = &links[launches % 2];
            let out = Command::new(link)
                .env_clear()
                .env("PATH", BASE_PATH)
                .env("LAUNCHER_DRY_RUN", "1")
                .output()
                .unwrap();
            launches += 1;
            if !out.status.success() && failures.len() < 5 {
                failures.push(format!(
                    "{}: {} {}",
                    link.display(),
                    out.status,
                    String::from_utf8_lossy(&out.stderr)
                ));
            }
        }
        admin.join().expect("installer loop");
        (launches, failures)
    });
    assert!(failures.is_empty(), "{} launches, failures: {failures:#?}", launches);
    eprintln!("{launches} launches during {cycles} deploy/rollback/deploy/alias/alias cycles, none failed");
}
