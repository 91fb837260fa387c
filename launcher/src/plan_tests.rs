//! Table-style tests of the planner, one or more per L-rule, on real
//! temporary scripts trees (the planner never execs, so nothing runs).

use super::*;
use crate::probe::OsProbe;
use std::cell::RefCell;
use std::os::unix::ffi::OsStringExt;
use std::os::unix::fs::{symlink, PermissionsExt};

struct Fixture {
    dir: tempfile::TempDir,
}

fn exe(path: &Path) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, "#!/bin/sh\n").unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

impl Fixture {
    /// scripts/{launcher,launcher.toml}, scripts/e-1.d/bin/{python3,launcher,ssh,pbs_tmrsh},
    /// scripts/e.d -> e-1.d, envs/{e-1,other}.sqsh, base.sif, rt/apptainer,
    /// rt/singularity -> apptainer, host/{ssh,pbs_tmrsh}, opt/conda/e-1/bin/python3.
    fn new(extra_config: &str) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let fx = Fixture { dir };
        let s = fx.p("scripts");
        exe(&s.join("launcher"));
        std::fs::create_dir_all(s.join("e-1.d/bin")).unwrap();
        for cmd in ["python3", "launcher", "ssh", "pbs_tmrsh", "qsub"] {
            symlink("../../launcher", s.join("e-1.d/bin").join(cmd)).unwrap();
        }
        symlink("e-1.d", s.join("e.d")).unwrap();
        std::fs::create_dir_all(fx.p("envs")).unwrap();
        std::fs::write(fx.p("envs/e-1.sqsh"), "").unwrap();
        std::fs::write(fx.p("envs/other.sqsh"), "").unwrap();
        std::fs::write(fx.p("base.sif"), "").unwrap();
        exe(&fx.p("rt/apptainer"));
        symlink("apptainer", fx.p("rt/singularity")).unwrap();
        exe(&fx.p("host/ssh"));
        exe(&fx.p("host/pbs_tmrsh"));
        exe(&fx.p("opt/conda/e-1/bin/python3"));
        std::fs::create_dir_all(fx.p("bindme")).unwrap();
        fx.config(extra_config);
        fx
    }

    fn p(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn config(&self, extra: &str) {
        let text = format!(
            "[runtime]\nimage = \"../base.sif\"\n\
             [container]\nenvs_dir = \"../envs\"\nmarker = \"../marker\"\nprefix = \"{}\"\n\
             binds = [\"../bindme\", \"/nonexistent-bind\"]\n{extra}",
            self.p("opt/conda").display()
        );
        let path = self.p("scripts/launcher.toml");
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    }

    fn go_inside(&self) {
        std::fs::create_dir_all(self.p("marker")).unwrap();
    }

    fn path_var(&self) -> String {
        format!("{}:{}:/usr/bin:/bin", self.p("rt").display(), self.p("host").display())
    }

    fn vars(&self, extra: &[(&str, &str)]) -> Vars {
        let mut vars = Vars::from_pairs([("PATH", self.path_var())]);
        for (k, v) in extra {
            vars.set(*k, *v);
        }
        vars
    }

    fn plan(&self, argv: &[&str], vars: &Vars) -> Result<Plan, LaunchError> {
        plan(&invocation(argv.iter().map(OsString::from).collect()), vars, &OsProbe)
    }

    fn exec(&self, argv: &[&str], vars: &Vars) -> ExecPlan {
        match self.plan(argv, vars).unwrap().action {
            Action::Exec(e) => e,
            other => panic!("expected exec, got {other:?}"),
        }
    }

    fn s(&self, rel: &str) -> String {
        self.p(rel).display().to_string()
    }
}

fn invocation(argv: Vec<OsString>) -> Invocation {
    Invocation {
        argv,
        at_execfn: None,
        cwd: Some(PathBuf::from("/")),
    }
}

fn strs(v: &[OsString]) -> Vec<String> {
    v.iter().map(|s| s.to_string_lossy().into_owned()).collect()
}

#[test]
fn l14_command_mode_outside_builds_exact_runtime_command() {
    let fx = Fixture::new("");
    let link = fx.s("scripts/e.d/bin/python3");
    let e = fx.exec(&[&link, "-c", "print(1)"], &fx.vars(&[]));
    assert_eq!(e.program, fx.p("rt/apptainer"));
    assert_eq!(
        strs(&e.argv),
        vec![
            fx.s("rt/apptainer"),
            "-s".into(),
            "exec".into(),
            "--bind".into(),
            fx.s("scripts/../bindme"),
            format!("--overlay={}:ro", fx.s("scripts/../envs/e-1.sqsh")),
            fx.s("scripts/../base.sif"),
            link.clone(),
            "-c".into(),
            "print(1)".into(),
        ]
    );
    // The counter travels with the prefix (L13, L21); the host's is dropped.
    assert_eq!(e.env_value("APPTAINERENV_LAUNCHER_DEPTH").unwrap(), "1");
    assert!(e.unset_env.contains(&OsString::from("LAUNCHER_DEPTH")));
}

#[test]
fn l2_alias_and_venv_chain_name_the_real_env() {
    let fx = Fixture::new("");
    let venv = fx.p("venv/bin");
    std::fs::create_dir_all(&venv).unwrap();
    symlink(fx.p("scripts/e.d/bin/python3"), venv.join("python")).unwrap();
    let e = fx.exec(&[&fx.s("venv/bin/python")], &fx.vars(&[]));
    assert!(strs(&e.argv).contains(&format!("--overlay={}:ro", fx.s("scripts/../envs/e-1.sqsh"))));
    assert_eq!(
        strs(&e.argv).last().unwrap(),
        &fx.s("venv/bin/python"),
        "CMD is the invoked path"
    );
}

#[test]
fn l1_shebang_uses_interpreter_path_not_script() {
    let fx = Fixture::new("");
    let link = fx.s("scripts/e.d/bin/python3");
    let inv = Invocation {
        argv: vec![link.clone().into(), "/home/u/job.py".into()],
        at_execfn: Some("/home/u/job.py".into()),
        cwd: None,
    };
    let Action::Exec(e) = plan(&inv, &fx.vars(&[]), &OsProbe).unwrap().action else {
        panic!()
    };
    let argv = strs(&e.argv);
    assert_eq!(&argv[argv.len() - 2..], &[link, "/home/u/job.py".to_string()]);
}

#[test]
fn l3_direct_mode_runs_bare_command_and_needs_one() {
    let fx = Fixture::new("");
    let e = fx.exec(&[&fx.s("scripts/e.d/bin/launcher"), "bash", "-l"], &fx.vars(&[]));
    let argv = strs(&e.argv);
    assert_eq!(&argv[argv.len() - 2..], &["bash".to_string(), "-l".to_string()]);
    match fx
        .plan(&[&fx.s("scripts/e.d/bin/launcher")], &fx.vars(&[]))
        .unwrap()
        .action
    {
        Action::Show {
            stderr: true,
            exit: 2,
            text,
        } => assert!(text.starts_with("usage:")),
        other => panic!("{other:?}"),
    }
}

#[test]
fn l3_top_level_launcher_takes_env_flag_or_default_env() {
    let fx = Fixture::new("");
    let top = fx.s("scripts/launcher");
    let e = fx.exec(&[&top, "--env", "e", "bash"], &fx.vars(&[]));
    assert!(
        strs(&e.argv).contains(&format!("--overlay={}:ro", fx.s("scripts/../envs/e-1.sqsh"))),
        "alias e resolved"
    );
    let err = fx.plan(&[&top, "bash"], &fx.vars(&[])).unwrap_err();
    assert_eq!(err.exit_code(), 2);
    assert!(err.to_string().contains("--env"));
    fx.config("");
    std::fs::write(
        fx.p("scripts/launcher.toml"),
        format!(
            "default_env = \"e\"\n{}",
            std::fs::read_to_string(fx.p("scripts/launcher.toml")).unwrap()
        ),
    )
    .unwrap();
    let e = fx.exec(&[&top, "bash"], &fx.vars(&[]));
    assert!(strs(&e.argv).contains(&format!("--overlay={}:ro", fx.s("scripts/../envs/e-1.sqsh"))));
}

#[test]
fn l4_flags_only_in_direct_mode_and_before_command() {
    let fx = Fixture::new("");
    // Command mode: the flag belongs to python3.
    let e = fx.exec(&[&fx.s("scripts/e.d/bin/python3"), "--dry-run"], &fx.vars(&[]));
    assert_eq!(strs(&e.argv).last().unwrap(), "--dry-run");
    // Direct mode, legacy spelling.
    let e = fx.exec(
        &[
            &fx.s("scripts/e.d/bin/launcher"),
            "--cms_singularity_overlay_path_override",
            "--cms_singularity_overlay_path",
            "/x.sqsh",
            "bash",
        ],
        &fx.vars(&[]),
    );
    let overlays: Vec<_> = strs(&e.argv)
        .into_iter()
        .filter(|a| a.starts_with("--overlay="))
        .collect();
    assert_eq!(overlays, vec!["--overlay=/x.sqsh:ro".to_string()]);
}

#[test]
fn l5_marker_decides_inside() {
    let fx = Fixture::new("");
    let link = fx.s("scripts/e.d/bin/python3");
    let outside = fx.exec(&[&link], &fx.vars(&[("SINGULARITY_CONTAINER", "/leaked.sif")]));
    assert_eq!(
        outside.program,
        fx.p("rt/apptainer"),
        "a leaked variable alone does not mean inside"
    );
    fx.go_inside();
    let inside = fx.exec(&[&link], &fx.vars(&[]));
    assert_eq!(inside.program, fx.p("opt/conda/e-1/bin/python3"));
}

#[test]
fn l6_inside_execs_real_binary_with_invoked_argv0() {
    let fx = Fixture::new("");
    fx.go_inside();
    let link = fx.s("scripts/e.d/bin/python3");
    let e = fx.exec(&[&link, "a b"], &fx.vars(&[("LAUNCHER_DEPTH", "1")]));
    assert_eq!(e.program, fx.p("opt/conda/e-1/bin/python3"));
    assert_eq!(strs(&e.argv), vec![link, "a b".to_string()]);
    assert_eq!(
        e.unset_env,
        vec![
            OsString::from("LAUNCHER_DEPTH"),
            OsString::from("LAUNCHER_MOUNTED_ENV"),
            OsString::from("LAUNCHER_ARGV_HEX")
        ],
        "L21: what the outside hop handed over is removed for the program"
    );
}

#[test]
fn l7_inside_direct_skips_launcher_links_on_path() {
    let fx = Fixture::new("");
    fx.go_inside();
    let path = format!("{}:{}", fx.s("scripts/e.d/bin"), fx.s("opt/conda/e-1/bin"));
    let e = fx.exec(
        &[&fx.s("scripts/e.d/bin/launcher"), "python3", "-V"],
        &fx.vars(&[("PATH", &path)]),
    );
    assert_eq!(e.program, fx.p("opt/conda/e-1/bin/python3"));
    assert_eq!(strs(&e.argv), vec!["python3", "-V"]);
}

#[test]
fn l8_host_command_outside_and_inside() {
    let fx = Fixture::new("[commands.ssh]\nhost = true\n");
    let path = format!("{}:{}", fx.s("scripts/e.d/bin"), fx.path_var());
    for inside in [false, true] {
        if inside {
            fx.go_inside();
        }
        let e = fx.exec(
            &[&fx.s("scripts/e.d/bin/ssh"), "node1", "hostname"],
            &fx.vars(&[("PATH", &path)]),
        );
        assert_eq!(e.program, fx.p("host/ssh"), "inside={inside}");
        assert_eq!(strs(&e.argv), vec!["ssh", "node1", "hostname"]);
    }
}

#[test]
fn l9_no_runtime_is_exit_125_naming_where_it_looked() {
    let fx = Fixture::new("");
    let err = fx
        .plan(
            &[&fx.s("scripts/e.d/bin/python3")],
            &fx.vars(&[("PATH", "/nonexistent")]),
        )
        .unwrap_err();
    assert_eq!(err.exit_code(), 125);
    assert!(err.to_string().contains("runtime.path"), "{err}");
    assert!(err.hint().unwrap().contains("--runtime"));
}

#[test]
fn l10_flavour_sets_prefix() {
    let fx = Fixture::new("");
    let link = fx.s("scripts/e.d/bin/python3");
    let e = fx.exec(&[&link], &fx.vars(&[]));
    assert!(e.env_value("APPTAINERENV_PREPEND_PATH").is_some());
    fx.config("");
    let text = std::fs::read_to_string(fx.p("scripts/launcher.toml"))
        .unwrap()
        .replace("[runtime]\n", "[runtime]\nflavour = \"singularity\"\n");
    std::fs::write(fx.p("scripts/launcher.toml"), text).unwrap();
    let e = fx.exec(&[&link], &fx.vars(&[]));
    assert!(e.env_value("SINGULARITYENV_PREPEND_PATH").is_some());
    assert!(e.env_value("APPTAINERENV_PREPEND_PATH").is_none());
}

#[test]
fn l11_overlay_path_merged_one_argument_each() {
    let fx = Fixture::new("");
    let e = fx.exec(
        &[&fx.s("scripts/e.d/bin/python3")],
        &fx.vars(&[("CONTAINER_OVERLAY_PATH", "/a.sqsh::/b c.sqsh")]),
    );
    let overlays: Vec<_> = strs(&e.argv)
        .into_iter()
        .filter(|a| a.starts_with("--overlay"))
        .collect();
    assert_eq!(
        overlays,
        vec![
            format!("--overlay={}:ro", fx.s("scripts/../envs/e-1.sqsh")),
            "--overlay=/a.sqsh:ro".into(),
            "--overlay=/b c.sqsh:ro".into()
        ]
    );
}

#[test]
fn l11_missing_own_image_is_125() {
    let fx = Fixture::new("");
    std::fs::remove_file(fx.p("envs/e-1.sqsh")).unwrap();
    let err = fx.plan(&[&fx.s("scripts/e.d/bin/python3")], &fx.vars(&[])).unwrap_err();
    assert_eq!(err.exit_code(), 125);
    assert!(err.to_string().contains("e-1.sqsh"), "{err}");
}

#[test]
fn l12_no_bind_argument_when_no_bind_exists() {
    let fx = Fixture::new("");
    std::fs::remove_dir(fx.p("bindme")).unwrap();
    let e = fx.exec(&[&fx.s("scripts/e.d/bin/python3")], &fx.vars(&[]));
    assert!(!strs(&e.argv).contains(&"--bind".to_string()));
}

#[test]
fn l13_container_environment() {
    let fx = Fixture::new("[container.env]\nPYTHONNOUSERSITE = \"x\"\n");
    std::fs::write(
        fx.p("scripts/e-1.d/env.toml"),
        "[env]\nCONDA_PREFIX = \"/opt/conda/e-1\"\nPROJ_DATA = \"/opt/conda/e-1/share/proj\"\n",
    )
    .unwrap();
    let path = format!("/home/u/bin:{}:{}", fx.s("scripts/e.d/bin"), fx.path_var());
    let e = fx.exec(
        &[&fx.s("scripts/e.d/bin/python3")],
        &fx.vars(&[
            ("PATH", &path),
            ("LD_LIBRARY_PATH", "/apps/lib"),
            ("APPTAINERENV_PREPEND_PATH", "/first"),
        ]),
    );
    let real_bin = fx.s("opt/conda/e-1/bin");
    assert_eq!(
        e.env_value("APPTAINERENV_PREPEND_PATH").unwrap().to_str().unwrap(),
        format!("/first:/home/u/bin:{real_bin}:{}", fx.s("host")),
        "runtime dir and std dirs dropped, scripts bin replaced"
    );
    assert_eq!(e.env_value("APPTAINERENV_LD_LIBRARY_PATH").unwrap(), "/apps/lib");
    assert_eq!(e.env_value("APPTAINERENV_PYTHONNOUSERSITE").unwrap(), "x");
    assert_eq!(e.env_value("APPTAINERENV_CONDA_PREFIX").unwrap(), "/opt/conda/e-1");
    assert_eq!(
        e.env_value("APPTAINERENV_PROJ_DATA").unwrap(),
        "/opt/conda/e-1/share/proj"
    );
    assert_eq!(
        e.env_value("APPTAINERENV_CONDA_BASE").unwrap().to_str().unwrap(),
        fx.s("scripts/../envs/e-1")
    );
}

#[test]
fn l13_user_set_prefixed_variable_wins() {
    let fx = Fixture::new("[container.env]\nPYTHONNOUSERSITE = \"x\"\n");
    let e = fx.exec(
        &[&fx.s("scripts/e.d/bin/python3")],
        &fx.vars(&[("APPTAINERENV_PYTHONNOUSERSITE", "")]),
    );
    assert_eq!(e.env_value("APPTAINERENV_PYTHONNOUSERSITE"), None);
}

/// L13, issue 10: 40,000 `[container.env]` keys arrive once each, in order,
/// with the usual precedence (a user's prefixed value, `[container.env]`
/// over `env.toml`, a per-command `env` last), and building them compares
/// names a number of times linear in the keys, not quadratic (a scan per
/// key made 800 million comparisons; counted, not timed).
#[test]
fn l13_forty_thousand_container_variables_linear() {
    const N: usize = 40_000;
    let mut extra = String::from("[container.env]\n");
    for i in 0..N {
        extra.push_str(&format!("VAR_{i:05} = \"v{i}\"\n"));
    }
    extra.push_str("[commands.python3]\nenv = { VAR_00003 = \"cmd\" }\n");
    let fx = Fixture::new(&extra);
    std::fs::write(
        fx.p("scripts/e-1.d/env.toml"),
        "[env]\nVAR_00001 = \"env.toml\"\nONLY_ENV_TOML = \"t\"\n",
    )
    .unwrap();
    let vars = fx.vars(&[("APPTAINERENV_VAR_00002", "user")]);
    let before = NAME_COMPARISONS.with(|c| c.get());
    let e = fx.exec(&[&fx.s("scripts/e.d/bin/python3")], &vars);
    let comparisons = NAME_COMPARISONS.with(|c| c.get()) - before;
    assert!(comparisons <= N as u64, "{comparisons} name comparisons for {N} keys");

    let names: Vec<&str> = e.set_env.iter().map(|(n, _)| n.to_str().unwrap()).collect();
    let unique: HashSet<&str> = names.iter().copied().collect();
    assert_eq!(unique.len(), names.len(), "every name set once");
    let vars_set: Vec<&str> = names
        .iter()
        .filter_map(|n| n.strip_prefix("APPTAINERENV_VAR_"))
        .collect();
    // Sorted, the user's VAR_00002 left alone, VAR_00003 moved to the end
    // by the per-command env.
    let mut expected: Vec<String> = (0..N)
        .filter(|&i| i != 2 && i != 3)
        .map(|i| format!("{i:05}"))
        .collect();
    expected.push("00003".into());
    assert_eq!(vars_set, expected);
    assert_eq!(e.env_value("APPTAINERENV_VAR_00000").unwrap(), "v0");
    assert_eq!(e.env_value("APPTAINERENV_VAR_00001").unwrap(), "v1");
    assert_eq!(e.env_value("APPTAINERENV_VAR_00003").unwrap(), "cmd");
    assert_eq!(e.env_value("APPTAINERENV_VAR_39999").unwrap(), "v39999");
    assert_eq!(e.env_value("APPTAINERENV_ONLY_ENV_TOML").unwrap(), "t");
    let at = |name: &str| names.iter().position(|n| *n == name).unwrap();
    assert!(at("APPTAINERENV_ONLY_ENV_TOML") < at("APPTAINERENV_VAR_00000"));
    assert!(at("APPTAINERENV_VAR_39999") < at("APPTAINERENV_CONDA_BASE"));
    assert!(at("APPTAINERENV_CONDA_BASE") < at("APPTAINERENV_VAR_00003"));
}

/// `settle_env` keeps the last setting of each name at its place, as a
/// remove-then-append per `set` would.
#[test]
fn settle_env_keeps_last_setting_in_place() {
    let mut plan = ExecPlan::new(PathBuf::from("/bin/true"), vec![]);
    for (n, v) in [("A", "1"), ("B", "2"), ("A", "3"), ("C", "4"), ("B", "5")] {
        plan.set(n, v);
    }
    assert_eq!(plan.env_value("A").unwrap(), "3");
    plan.settle_env();
    let got: Vec<(String, String)> = plan
        .set_env
        .iter()
        .map(|(n, v)| (n.to_string_lossy().into(), v.to_string_lossy().into()))
        .collect();
    assert_eq!(
        got,
        [("A", "3"), ("C", "4"), ("B", "5")].map(|(n, v)| (n.to_string(), v.to_string()))
    );
}

#[test]
fn l15_per_command_env_and_overlays_all() {
    let fx = Fixture::new("[commands.python3]\noverlays = \"all\"\nenv = { WRAPPER = \"ompi3\" }\n");
    let e = fx.exec(&[&fx.s("scripts/e.d/bin/python3")], &fx.vars(&[]));
    let overlays: Vec<_> = strs(&e.argv)
        .into_iter()
        .filter(|a| a.starts_with("--overlay"))
        .collect();
    assert_eq!(
        overlays,
        vec![
            format!("--overlay={}:ro", fx.s("scripts/../envs/other.sqsh")),
            format!("--overlay={}:ro", fx.s("scripts/../envs/e-1.sqsh"))
        ]
    );
    assert_eq!(e.env_value("WRAPPER").unwrap(), "ompi3");
}

#[test]
fn l15_override_script_configured_and_compat() {
    let fx = Fixture::new("[commands.qsub]\nscript = \"overrides/qsub-site\"\n");
    exe(&fx.p("scripts/overrides/qsub-site"));
    let e = fx.exec(&[&fx.s("scripts/e.d/bin/qsub"), "job.sh"], &fx.vars(&[]));
    assert_eq!(e.program, fx.p("scripts/overrides/qsub-site"));
    assert_eq!(strs(&e.argv)[1..], ["job.sh".to_string()]);
    assert_eq!(
        e.env_value("LAUNCHER_BIN").unwrap().to_str().unwrap(),
        fx.s("scripts/e-1.d/bin/launcher")
    );
    assert_eq!(e.env_value("LAUNCHER_COMMAND").unwrap(), "qsub");
    assert_eq!(e.env_value("LAUNCHER_ENV").unwrap(), "e-1");
    // Compat: <scripts>/overrides/NAME.sh, without config.
    fx.config("");
    exe(&fx.p("scripts/overrides/python3.sh"));
    let e = fx.exec(&[&fx.s("scripts/e.d/bin/python3")], &fx.vars(&[]));
    assert_eq!(e.program, fx.p("scripts/overrides/python3.sh"));
    // A direct call (the script calling back) never takes the override.
    let e = fx.exec(&[&fx.s("scripts/e.d/bin/launcher"), "python3"], &fx.vars(&[]));
    assert_eq!(e.program, fx.p("rt/apptainer"));
}

#[test]
fn l16_pbs_tmrsh_rewrites_remote_command() {
    let fx = Fixture::new("[commands.pbs_tmrsh]\nbuiltin = \"pbs_tmrsh\"\n");
    let path = format!("{}:{}", fx.s("scripts/e.d/bin"), fx.path_var());
    let vars = fx.vars(&[("PATH", &path), ("CONTAINER_OVERLAY_PATH", "/x.sqsh")]);
    for user_args in [vec!["-l", "user"], vec!["-luser"]] {
        let mut argv = vec![fx.s("scripts/e.d/bin/pbs_tmrsh")];
        argv.extend(user_args.iter().map(|s| s.to_string()));
        argv.extend(["node2".to_string(), "python3".into(), "-c".into(), "x".into()]);
        let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
        let e = fx.exec(&argv, &vars);
        assert_eq!(e.program, fx.p("host/pbs_tmrsh"));
        let env_launcher = fx.s("scripts/e-1.d/bin/launcher");
        let mut want: Vec<String> = vec!["pbs_tmrsh".into()];
        want.extend(user_args.iter().map(|s| s.to_string()));
        want.extend([
            "node2".into(),
            env_launcher.clone(),
            "--runtime".into(),
            fx.s("rt/apptainer"),
            "--launcher".into(),
            env_launcher,
            "--overlay-path".into(),
            "/x.sqsh".into(),
            "--path".into(),
            path.clone(),
            "--".into(),
            "python3".into(),
            "-c".into(),
            "x".into(),
        ]);
        assert_eq!(strs(&e.argv), want);
    }
}

#[test]
fn l17_dry_run_and_debug_notes() {
    let fx = Fixture::new("");
    let p = fx
        .plan(&[&fx.s("scripts/e.d/bin/launcher"), "--dry-run", "bash"], &fx.vars(&[]))
        .unwrap();
    assert!(p.dry_run && p.notes.is_none());
    let p = fx
        .plan(
            &[&fx.s("scripts/e.d/bin/python3")],
            &fx.vars(&[("LAUNCHER_DEBUG", "1"), ("LAUNCHER_DRY_RUN", "1")]),
        )
        .unwrap();
    assert!(p.dry_run);
    let notes = p.notes.unwrap().join("\n");
    assert!(
        notes.contains("outside the container") && notes.contains("runtime"),
        "{notes}"
    );
    let p = fx
        .plan(
            &[&fx.s("scripts/e.d/bin/python3")],
            &fx.vars(&[("CMS_CONDA_DEBUG_SCRIPTS", "1")]),
        )
        .unwrap();
    assert!(p.notes.is_some(), "legacy debug variable");
}

#[test]
fn l18_inside_missing_and_non_executable_commands() {
    let fx = Fixture::new("");
    fx.go_inside();
    symlink("../../launcher", fx.p("scripts/e-1.d/bin/nosuch")).unwrap();
    let err = fx.plan(&[&fx.s("scripts/e.d/bin/nosuch")], &fx.vars(&[])).unwrap_err();
    assert_eq!(err.exit_code(), 127);
    std::fs::write(fx.p("opt/conda/e-1/bin/data"), "").unwrap();
    symlink("../../launcher", fx.p("scripts/e-1.d/bin/data")).unwrap();
    let err = fx.plan(&[&fx.s("scripts/e.d/bin/data")], &fx.vars(&[])).unwrap_err();
    assert_eq!(err.exit_code(), 126);
    let err = fx
        .plan(&[&fx.s("scripts/e.d/bin/launcher"), "no-such-cmd"], &fx.vars(&[]))
        .unwrap_err();
    assert_eq!(err.exit_code(), 127);
}

#[test]
fn l19_world_writable_config_and_directory_refused() {
    let fx = Fixture::new("");
    let cfg = fx.p("scripts/launcher.toml");
    let link = fx.s("scripts/e.d/bin/python3");
    std::fs::set_permissions(&cfg, std::fs::Permissions::from_mode(0o666)).unwrap();
    let err = fx.plan(&[&link], &fx.vars(&[])).unwrap_err();
    assert_eq!(err.exit_code(), 125);
    assert!(err.to_string().contains("writable by others"), "{err}");
    std::fs::set_permissions(&cfg, std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::set_permissions(fx.p("scripts"), std::fs::Permissions::from_mode(0o777)).unwrap();
    let err = fx.plan(&[&link], &fx.vars(&[])).unwrap_err();
    assert!(err.to_string().contains("directory"), "{err}");
    std::fs::set_permissions(fx.p("scripts"), std::fs::Permissions::from_mode(0o1777)).unwrap();
    assert!(fx.plan(&[&link], &fx.vars(&[])).is_ok(), "sticky directory is fine");
}

#[test]
fn l19_launcher_config_variable_and_missing_config() {
    let fx = Fixture::new("");
    let link = fx.s("scripts/e.d/bin/python3");
    std::fs::rename(fx.p("scripts/launcher.toml"), fx.p("elsewhere.toml")).unwrap();
    let err = fx.plan(&[&link], &fx.vars(&[])).unwrap_err();
    assert_eq!(err.exit_code(), 125);
    assert!(err.to_string().contains("launcher.toml"), "{err}");
    // Relative paths are now relative to the other file's directory.
    let text = std::fs::read_to_string(fx.p("elsewhere.toml"))
        .unwrap()
        .replace("../", "");
    std::fs::write(fx.p("elsewhere.toml"), text).unwrap();
    let cfg = fx.s("elsewhere.toml");
    let e = fx.exec(&[&link], &fx.vars(&[("LAUNCHER_CONFIG", &cfg)]));
    assert_eq!(e.program, fx.p("rt/apptainer"));
}

#[test]
fn l20_arguments_byte_for_byte() {
    let fx = Fixture::new("");
    fx.go_inside();
    let weird = OsString::from_vec(vec![b'a', 0xff, b'\n', b'$', b'*', b'"', b'\'']);
    let argv = vec![
        fx.p("scripts/e.d/bin/python3").into_os_string(),
        weird.clone(),
        OsString::new(),
        "x y".into(),
    ];
    let Action::Exec(e) = plan(&invocation(argv.clone()), &fx.vars(&[]), &OsProbe).unwrap().action else {
        panic!()
    };
    assert_eq!(e.argv[1..], argv[1..]);
}

#[test]
fn l21_depth_limit_and_self_exec() {
    let fx = Fixture::new("");
    let link = fx.s("scripts/e.d/bin/python3");
    let err = fx.plan(&[&link], &fx.vars(&[("LAUNCHER_DEPTH", "3")])).unwrap_err();
    assert_eq!(err.exit_code(), 125);
    assert!(err.to_string().contains("LAUNCHER_DEPTH"));
    assert!(fx.plan(&[&link], &fx.vars(&[("LAUNCHER_DEPTH", "2")])).is_ok());
    // Inside, a real binary that is itself a launcher link.
    fx.go_inside();
    std::fs::remove_file(fx.p("opt/conda/e-1/bin/python3")).unwrap();
    symlink(fx.p("scripts/launcher"), fx.p("opt/conda/e-1/bin/python3")).unwrap();
    let err = fx.plan(&[&link], &fx.vars(&[])).unwrap_err();
    assert_eq!(err.exit_code(), 125);
    assert!(err.to_string().contains("launcher link"), "{err}");
}

/// Counts every probe call, by kind.
struct CountingProbe {
    calls: RefCell<Vec<(String, PathBuf)>>,
}

impl CountingProbe {
    fn record(&self, kind: &str, path: &Path) {
        self.calls.borrow_mut().push((kind.to_string(), path.to_path_buf()));
    }
}

impl Probe for CountingProbe {
    fn read_link(&self, path: &Path) -> std::io::Result<PathBuf> {
        self.record("readlink", path);
        OsProbe.read_link(path)
    }
    fn stat(&self, path: &Path) -> std::io::Result<FileStat> {
        self.record("stat", path);
        OsProbe.stat(path)
    }
    fn lstat(&self, path: &Path) -> std::io::Result<FileStat> {
        self.record("lstat", path);
        OsProbe.lstat(path)
    }
    fn read_file(&self, path: &Path) -> std::io::Result<crate::probe::FileRead> {
        self.record("read", path);
        OsProbe.read_file(path)
    }
    fn readable(&self, path: &Path) -> bool {
        self.record("access", path);
        OsProbe.readable(path)
    }
    fn list_dir(&self, path: &Path) -> std::io::Result<Vec<OsString>> {
        self.record("list", path);
        OsProbe.list_dir(path)
    }
}

#[test]
fn l23_inside_hop_asks_few_questions_and_never_reads_env_toml() {
    let fx = Fixture::new("");
    fx.go_inside();
    std::fs::write(fx.p("scripts/e-1.d/env.toml"), "[env]\nA = \"1\"\n").unwrap();
    let probe = CountingProbe {
        calls: RefCell::new(Vec::new()),
    };
    let inv = invocation(vec![fx.p("scripts/e.d/bin/python3").into()]);
    plan(&inv, &fx.vars(&[]), &probe).unwrap();
    let calls = probe.calls.borrow();
    // L19 walks the config's path: one lstat per directory from / to
    // <scripts> (docs/performance.md), in place of the one stat of <scripts>.
    let walk = fx.p("scripts").ancestors().count();
    assert!(calls.len() <= 9 + walk, "{calls:?}");
    assert!(
        !calls.iter().any(|(k, p)| k == "list" || p.ends_with("env.toml")),
        "{calls:?}"
    );
}

#[test]
fn l23_outside_hop_lists_envs_only_for_overlays_all() {
    let fx = Fixture::new("");
    let probe = CountingProbe {
        calls: RefCell::new(Vec::new()),
    };
    let inv = invocation(vec![fx.p("scripts/e.d/bin/python3").into()]);
    plan(&inv, &fx.vars(&[]), &probe).unwrap();
    let calls = probe.calls.borrow();
    assert!(!calls.iter().any(|(k, _)| k == "list"), "{calls:?}");
    // L19, as above; + 1: a Python command asks whether `<env>.d/.inside`
    // exists (issue 11).
    let walk = fx.p("scripts").ancestors().count();
    assert!(calls.len() <= 16 + walk, "{} calls: {calls:?}", calls.len());
}

#[test]
fn l13_any_alias_spelling_of_the_scripts_bin_is_replaced() {
    let fx = Fixture::new("");
    symlink("e.d", fx.p("scripts/e-stable.d")).unwrap(); // alias of an alias
    symlink("e-1.d", fx.p("scripts/other.d")).unwrap();
    std::fs::create_dir_all(fx.p("scripts/e-2.d/bin")).unwrap(); // another env: kept
    let path = format!(
        "{}:{}/:{}:{}",
        fx.s("scripts//e-stable.d/bin"),
        fx.s("scripts/other.d/bin"),
        fx.s("scripts/e-2.d/bin"),
        fx.path_var()
    );
    let e = fx.exec(&[&fx.s("scripts/e.d/bin/python3")], &fx.vars(&[("PATH", &path)]));
    assert_eq!(
        e.env_value("APPTAINERENV_PREPEND_PATH").unwrap().to_str().unwrap(),
        format!(
            "{}:{}:{}",
            fx.s("opt/conda/e-1/bin"),
            fx.s("scripts/e-2.d/bin"),
            fx.s("host")
        )
    );
}

#[test]
fn l3_l4_legacy_launcher_sh_name_is_a_direct_call() {
    let fx = Fixture::new("");
    symlink("../../launcher", fx.p("scripts/e-1.d/bin/launcher.sh")).unwrap();
    let e = fx.exec(
        &[
            &fx.s("scripts/e.d/bin/launcher.sh"),
            "--cms_singularity_overlay_path_override",
            "--cms_singularity_overlay_path",
            "/x.sqsh",
            "bash",
        ],
        &fx.vars(&[]),
    );
    let argv = strs(&e.argv);
    assert!(argv.contains(&"--overlay=/x.sqsh:ro".to_string()), "{argv:?}");
    assert!(!argv.iter().any(|a| a.contains("e-1.sqsh")), "{argv:?}");
    assert_eq!(argv.last().unwrap(), "bash");
}

#[test]
fn l18_missing_setting_names_the_key_and_the_config_file() {
    let fx = Fixture::new("");
    let text = std::fs::read_to_string(fx.p("scripts/launcher.toml"))
        .unwrap()
        .replace("image = \"../base.sif\"\n", "");
    std::fs::write(fx.p("scripts/launcher.toml"), text).unwrap();
    let err = fx.plan(&[&fx.s("scripts/e.d/bin/python3")], &fx.vars(&[])).unwrap_err();
    assert_eq!(err.exit_code(), 125);
    assert_eq!(
        err.to_string(),
        format!("runtime.image is not set in {}", fx.s("scripts/launcher.toml"))
    );
}

/// The installer's fallback layout where RENAME_EXCHANGE is missing:
/// `<env>.d -> .versions/<env>.<id>/<env>.d`, whose version dir is deleted by
/// the next deploy. No path the launcher hands on may run through it.
#[test]
fn l2_versioned_layout_never_leaks_the_version_dir() {
    let fx = Fixture::new("[commands.qsub]\nscript = \"overrides/qsub-site\"\n");
    exe(&fx.p("scripts/overrides/qsub-site"));
    let versions = fx.p("scripts/.versions/e-1.123");
    std::fs::create_dir_all(&versions).unwrap();
    std::fs::rename(fx.p("scripts/e-1.d"), versions.join("e-1.d")).unwrap();
    symlink("../../launcher", versions.join("launcher")).unwrap();
    symlink(".versions/e-1.123/e-1.d", fx.p("scripts/e-1.d")).unwrap();
    for link in ["scripts/e.d/bin/python3", "scripts/e-1.d/bin/python3"] {
        let e = fx.exec(&[&fx.s(link)], &fx.vars(&[]));
        let words = strs(&e.argv).join(" ") + &format!("{:?}", e.set_env);
        assert!(!words.contains(".versions"), "{words}");
        assert!(
            words.contains(&format!("--overlay={}:ro", fx.s("scripts/../envs/e-1.sqsh"))),
            "{words}"
        );
        assert!(!words.contains("bin/.."), "{words}");
    }
    let e = fx.exec(&[&fx.s("scripts/e.d/bin/qsub")], &fx.vars(&[]));
    assert_eq!(
        e.env_value("LAUNCHER_BIN").unwrap().to_str().unwrap(),
        fx.s("scripts/e-1.d/bin/launcher")
    );
    assert_eq!(
        e.env_value("LAUNCHER_SCRIPTS").unwrap().to_str().unwrap(),
        fx.s("scripts")
    );
}

/// A hand-made alias with a `../` target, reached through a symlinked
/// scripts dir: `..` must be left to the kernel, not collapsed as text.
#[test]
fn l2_relative_alias_through_a_symlinked_scripts_dir() {
    let fx = Fixture::new("");
    symlink("../scripts/e-1.d", fx.p("scripts/b.d")).unwrap();
    std::fs::create_dir_all(fx.p("lx")).unwrap();
    symlink(fx.p("scripts"), fx.p("lx/scripts-link")).unwrap();
    let link = fx.s("lx/scripts-link/b.d/bin/python3");
    let e = fx.exec(&[&link], &fx.vars(&[]));
    assert!(
        strs(&e.argv).contains(&format!("--overlay={}:ro", fx.s("lx/scripts-link/../envs/e-1.sqsh"))),
        "{:?}",
        e.argv
    );
    assert_eq!(strs(&e.argv).last().unwrap(), &link);
}

#[test]
fn l19_symlink_into_a_world_writable_directory_is_refused() {
    let fx = Fixture::new("");
    let unsafe_dir = fx.p("drop");
    std::fs::create_dir_all(&unsafe_dir).unwrap();
    std::fs::set_permissions(&unsafe_dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    let link = fx.s("scripts/e.d/bin/python3");
    // The config.
    std::fs::rename(fx.p("scripts/launcher.toml"), unsafe_dir.join("launcher.toml")).unwrap();
    let text = std::fs::read_to_string(unsafe_dir.join("launcher.toml"))
        .unwrap()
        .replace("../", "../scripts/../");
    std::fs::write(unsafe_dir.join("launcher.toml"), text).unwrap();
    symlink(unsafe_dir.join("launcher.toml"), fx.p("scripts/launcher.toml")).unwrap();
    let err = fx.plan(&[&link], &fx.vars(&[])).unwrap_err();
    assert_eq!(err.exit_code(), 125);
    assert!(
        err.to_string()
            .contains(&format!("directory {} is writable by others", unsafe_dir.display())),
        "{err}"
    );
    assert!(err
        .hint()
        .unwrap()
        .contains(&format!("chmod o-w {}", unsafe_dir.display())));
    std::fs::set_permissions(&unsafe_dir, std::fs::Permissions::from_mode(0o1777)).unwrap();
    assert!(fx.plan(&[&link], &fx.vars(&[])).is_ok(), "sticky is fine");
    std::fs::set_permissions(&unsafe_dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    std::fs::remove_file(fx.p("scripts/launcher.toml")).unwrap();
    std::fs::rename(unsafe_dir.join("launcher.toml"), fx.p("scripts/launcher.toml")).unwrap();
    fx.config("");
    // env.toml and an override script.
    std::fs::write(unsafe_dir.join("env.toml"), "[env]\nEVIL = \"1\"\n").unwrap();
    symlink(unsafe_dir.join("env.toml"), fx.p("scripts/e-1.d/env.toml")).unwrap();
    assert!(fx
        .plan(&[&link], &fx.vars(&[]))
        .unwrap_err()
        .to_string()
        .contains("env.toml"));
    std::fs::remove_file(fx.p("scripts/e-1.d/env.toml")).unwrap();
    exe(&unsafe_dir.join("python3.sh"));
    std::fs::create_dir_all(fx.p("scripts/overrides")).unwrap();
    symlink(unsafe_dir.join("python3.sh"), fx.p("scripts/overrides/python3.sh")).unwrap();
    assert!(fx
        .plan(&[&link], &fx.vars(&[]))
        .unwrap_err()
        .to_string()
        .contains("override script"));
}

#[test]
fn l16_inside_pbs_tmrsh_names_the_runtime_the_outside_hop_used() {
    let fx = Fixture::new("[commands.pbs_tmrsh]\nbuiltin = \"pbs_tmrsh\"\n");
    let outside = fx.exec(&[&fx.s("scripts/e.d/bin/python3")], &fx.vars(&[]));
    let recorded = outside
        .env_value("APPTAINERENV_LAUNCHER_RUNTIME")
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    assert_eq!(recorded, fx.s("rt/apptainer"));
    // Inside: the runtime's dir is not on PATH any more.
    fx.go_inside();
    let path = format!("{}:/usr/bin:/bin", fx.s("host"));
    let e = fx.exec(
        &[&fx.s("scripts/e.d/bin/pbs_tmrsh"), "node2", "hostname"],
        &fx.vars(&[("PATH", &path), ("LAUNCHER_RUNTIME", &recorded)]),
    );
    let argv = strs(&e.argv);
    let at = argv.iter().position(|a| a == "--runtime").expect("--runtime passed on");
    assert_eq!(argv[at + 1], recorded);
}

/// L17/L6: the printed line, pasted into bash, runs the same program with
/// the same argv[0], environment changes and arguments.
#[test]
fn l17_shell_line_keeps_argv0_and_environment() {
    let script = r#"printf '%s|' "$FOO" "${GONE-unset}"; tr '\0' '|' < /proc/$$/cmdline"#;
    let mut plan = ExecPlan::new(
        PathBuf::from("/bin/sh"),
        vec![
            "/scripts/e.d/bin/python3".into(),
            "-c".into(),
            script.into(),
            "a b".into(),
        ],
    );
    plan.set("FOO", "it's");
    plan.unset_env.push("GONE".into());
    let line = plan.shell_line();
    let out = std::process::Command::new("bash")
        .arg("-c")
        .arg(&line)
        .env("GONE", "x")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.starts_with("it's|unset|/scripts/e.d/bin/python3|-c|"),
        "{line}\n{text}"
    );
    assert!(text.ends_with("|a b|"), "{line}\n{text}");
}

// ---- real-runtime semantics (runtime-semantics.md; issue: real runtimes) ----

fn overlay_args(e: &ExecPlan) -> Vec<String> {
    strs(&e.argv)
        .into_iter()
        .filter(|a| a.starts_with("--overlay"))
        .collect()
}

#[test]
fn l13_prefixed_values_are_escaped_for_the_runtimes_one_evaluation() {
    let fx = Fixture::new("[container.env]\nODD = 'a $HOME `id` \"q\" ends\\'\n");
    let path = format!("/home/u/$dollar:{}", fx.path_var());
    let e = fx.exec(
        &[&fx.s("scripts/e.d/bin/python3")],
        &fx.vars(&[("PATH", &path), ("LD_LIBRARY_PATH", "/l/`x`")]),
    );
    assert_eq!(
        e.env_value("APPTAINERENV_ODD").unwrap(),
        "a \\$HOME \\`id\\` \"q\" ends\\\\"
    );
    assert!(e
        .env_value("APPTAINERENV_PREPEND_PATH")
        .unwrap()
        .to_str()
        .unwrap()
        .contains("/home/u/\\$dollar"));
    assert_eq!(e.env_value("APPTAINERENV_LD_LIBRARY_PATH").unwrap(), "/l/\\`x\\`");
    // --no-eval, in exec_flags or from the environment: passed as they are.
    for (in_config, vars) in [(true, vec![]), (false, vec![("APPTAINER_NO_EVAL", "1")])] {
        let fx = Fixture::new("[container.env]\nODD = 'a $HOME'\n");
        if in_config {
            let text = std::fs::read_to_string(fx.p("scripts/launcher.toml"))
                .unwrap()
                .replace("[runtime]\n", "[runtime]\nexec_flags = [\"--no-eval\"]\n");
            std::fs::write(fx.p("scripts/launcher.toml"), text).unwrap();
        }
        let e = fx.exec(&[&fx.s("scripts/e.d/bin/python3")], &fx.vars(&vars));
        assert_eq!(
            e.env_value("APPTAINERENV_ODD").unwrap(),
            "a $HOME",
            "{in_config} {vars:?}"
        );
    }
}

#[test]
fn l13_empty_ld_library_path_not_forwarded_and_user_path_keeps_env_bin() {
    let fx = Fixture::new("");
    let link = fx.s("scripts/e.d/bin/python3");
    let e = fx.exec(&[&link], &fx.vars(&[("LD_LIBRARY_PATH", "")]));
    assert_eq!(e.env_value("APPTAINERENV_LD_LIBRARY_PATH"), None);
    let real_bin = fx.s("opt/conda/e-1/bin");
    for user in ["APPTAINERENV_PATH", "SINGULARITYENV_PATH"] {
        let e = fx.exec(&[&link], &fx.vars(&[(user, "/mine/bin:/usr/bin")]));
        let path = e.env_value("APPTAINERENV_PATH").unwrap().to_str().unwrap().to_owned();
        assert!(path.starts_with(&real_bin), "{user}: {path}");
        assert!(path.ends_with(":/mine/bin:/usr/bin"), "{user}: {path}");
    }
    // A user's legacy SINGULARITYENV_X is not beaten by the launcher's APPTAINERENV_X.
    let fx = Fixture::new("[container.env]\nPYTHONNOUSERSITE = \"x\"\n");
    let e = fx.exec(&[&link], &fx.vars(&[("SINGULARITYENV_PYTHONNOUSERSITE", "")]));
    assert_eq!(e.env_value("APPTAINERENV_PYTHONNOUSERSITE"), None);
}

#[test]
fn l13_l21_what_the_inside_hop_needs_travels_with_the_prefix() {
    let fx = Fixture::new("[commands.python3]\nenv = { WRAPPER = \"ompi3\", APPTAINER_NV = \"1\" }\n");
    let e = fx.exec(
        &[&fx.s("scripts/e.d/bin/python3")],
        &fx.vars(&[("CONTAINER_OVERLAY_PATH", "/u.sqsh")]),
    );
    assert_eq!(e.env_value("APPTAINERENV_LAUNCHER_DEPTH").unwrap(), "1");
    assert_eq!(e.env_value("APPTAINERENV_LAUNCHER_MOUNTED_ENV").unwrap(), "e=e-1");
    assert_eq!(e.env_value("APPTAINERENV_WRAPPER").unwrap(), "ompi3");
    assert_eq!(e.env_value("WRAPPER").unwrap(), "ompi3");
    // The runtime's own variables are for the runtime only.
    assert_eq!(e.env_value("APPTAINER_NV").unwrap(), "1");
    assert_eq!(e.env_value("APPTAINERENV_APPTAINER_NV"), None);
    assert_eq!(
        e.env_value("APPTAINERENV_LAUNCHER_OVERLAYS").unwrap().to_str().unwrap(),
        format!("{}:/u.sqsh", fx.s("scripts/../envs/e-1.sqsh"))
    );
}

#[test]
fn l24_exec_flags_go_after_exec_before_the_binds() {
    let fx = Fixture::new("[commands.python3]\nexec_flags = [\"--rocm\"]\n");
    let text = std::fs::read_to_string(fx.p("scripts/launcher.toml"))
        .unwrap()
        .replace("[runtime]\n", "[runtime]\nexec_flags = [\"--nv\", \"-B\", \"/x\"]\n");
    std::fs::write(fx.p("scripts/launcher.toml"), text).unwrap();
    let e = fx.exec(&[&fx.s("scripts/e.d/bin/python3")], &fx.vars(&[]));
    assert_eq!(
        strs(&e.argv)[1..8],
        ["-s", "exec", "--nv", "-B", "/x", "--rocm", "--bind"]
    );
    // Other commands get only the site-wide ones.
    let e = fx.exec(&[&fx.s("scripts/e.d/bin/launcher"), "bash"], &fx.vars(&[]));
    assert_eq!(strs(&e.argv)[1..7], ["-s", "exec", "--nv", "-B", "/x", "--bind"]);
}

#[test]
fn l11_ro_override_variable_and_image_supplied_by_the_list() {
    let fx = Fixture::new("");
    let link = fx.s("scripts/e.d/bin/python3");
    let e = fx.exec(
        &[&link],
        &fx.vars(&[
            ("CONTAINER_OVERLAY_PATH", "/u.sqsh"),
            ("CONTAINER_OVERLAY_PATH_OVERRIDE", "1"),
        ]),
    );
    assert_eq!(overlay_args(&e), ["--overlay=/u.sqsh:ro"]);
    // The env image may be missing when the list supplies it (launcher.sh compat).
    std::fs::remove_file(fx.p("envs/e-1.sqsh")).unwrap();
    let e = fx.exec(&[&link], &fx.vars(&[("CONTAINER_OVERLAY_PATH", "/test/e-1.sqsh")]));
    assert_eq!(overlay_args(&e), ["--overlay=/test/e-1.sqsh:ro"]);
    let err = fx.plan(&[&link], &fx.vars(&[])).unwrap_err();
    assert_eq!(err.exit_code(), 125);
}

#[test]
fn l2_inside_hop_uses_the_env_the_outside_hop_mounted() {
    let fx = Fixture::new("");
    fx.go_inside();
    exe(&fx.p("opt/conda/e-2/bin/python3"));
    std::fs::create_dir_all(fx.p("scripts/e-2.d/bin")).unwrap();
    symlink("../../launcher", fx.p("scripts/e-2.d/bin/python3")).unwrap();
    // The alias has moved to e-2 since the outside hop mounted e-1.
    std::fs::remove_file(fx.p("scripts/e.d")).unwrap();
    symlink("e-2.d", fx.p("scripts/e.d")).unwrap();
    let link = fx.s("scripts/e.d/bin/python3");
    let e = fx.exec(&[&link], &fx.vars(&[("LAUNCHER_MOUNTED_ENV", "e=e-1")]));
    assert_eq!(e.program, fx.p("opt/conda/e-1/bin/python3"));
    assert_eq!(strs(&e.argv)[0], link);
    // Without the hand-over the link decides; a malformed name is ignored.
    let e = fx.exec(&[&link], &fx.vars(&[("LAUNCHER_MOUNTED_ENV", "e=../x")]));
    assert_eq!(e.program, fx.p("opt/conda/e-2/bin/python3"));
    // Another alias's hand-over (one that outlived its hop) never applies.
    let e = fx.exec(&[&link], &fx.vars(&[("LAUNCHER_MOUNTED_ENV", "other=e-1")]));
    assert_eq!(e.program, fx.p("opt/conda/e-2/bin/python3"));
}

#[test]
fn l20_non_utf8_arguments_are_carried_and_restored() {
    let fx = Fixture::new("");
    let link = fx.s("scripts/e.d/bin/python3");
    let bad = OsString::from_vec(b"latin\xe9\xff\xfe".to_vec());
    let argv = vec![OsString::from(&link), bad.clone(), OsString::from("ok")];
    let outside = match plan(&invocation(argv.clone()), &fx.vars(&[]), &OsProbe).unwrap().action {
        Action::Exec(e) => e,
        other => panic!("{other:?}"),
    };
    let hex = outside
        .env_value("APPTAINERENV_LAUNCHER_ARGV_HEX")
        .expect("encoded")
        .to_owned();
    // All-UTF-8 arguments need nothing.
    let plain = fx.exec(&[&link, "a"], &fx.vars(&[]));
    assert_eq!(plain.env_value("APPTAINERENV_LAUNCHER_ARGV_HEX"), None);
    // Inside, after the runtime replaced the bytes: restored.
    fx.go_inside();
    let mangled = vec![
        OsString::from(&link),
        OsString::from("latin\u{FFFD}\u{FFFD}\u{FFFD}"),
        OsString::from("ok"),
    ];
    let mut vars = fx.vars(&[]);
    vars.set("LAUNCHER_ARGV_HEX", hex);
    let inside = match plan(&invocation(mangled), &vars, &OsProbe).unwrap().action {
        Action::Exec(e) => e,
        other => panic!("{other:?}"),
    };
    assert_eq!(inside.argv[1..], [bad, OsString::from("ok")]);
    assert!(inside.unset_env.contains(&OsString::from("LAUNCHER_ARGV_HEX")));
}

#[test]
fn l16_pbs_tmrsh_inside_forwards_the_mounted_overlays() {
    let fx = Fixture::new("[commands.pbs_tmrsh]\nbuiltin = \"pbs_tmrsh\"\n");
    fx.go_inside();
    let vars = fx.vars(&[("LAUNCHER_OVERLAYS", "/envs/e-1.sqsh:/extra.sqsh")]);
    let e = fx.exec(&[&fx.s("scripts/e.d/bin/pbs_tmrsh"), "node2", "python3"], &vars);
    let argv = strs(&e.argv);
    let at = argv.iter().position(|a| a == "--overlay-path").expect("--overlay-path");
    assert_eq!(argv[at + 1], "/envs/e-1.sqsh:/extra.sqsh");
}

#[test]
fn l3_help_and_version_need_no_config() {
    let fx = Fixture::new("");
    std::fs::remove_file(fx.p("scripts/launcher.toml")).unwrap();
    for flag in ["--help", "--version"] {
        let plan = fx.plan(&[&fx.s("scripts/launcher"), flag], &fx.vars(&[])).unwrap();
        assert!(matches!(plan.action, Action::Show { exit: 0, .. }), "{flag}: {plan:?}");
    }
    let err = fx
        .plan(&[&fx.s("scripts/launcher"), "bash"], &fx.vars(&[]))
        .unwrap_err();
    assert_eq!(err.exit_code(), 125);
}

#[test]
fn l21_a_depth_that_is_not_a_number_stops_the_chain() {
    let fx = Fixture::new("");
    let link = fx.s("scripts/e.d/bin/python3");
    for garbage in ["x", "-1", "99999999999"] {
        let err = fx.plan(&[&link], &fx.vars(&[("LAUNCHER_DEPTH", garbage)])).unwrap_err();
        assert_eq!(err.exit_code(), 125, "{garbage}");
    }
    let e = fx.exec(&[&link], &fx.vars(&[("LAUNCHER_DEPTH", "")]));
    assert_eq!(e.env_value("APPTAINERENV_LAUNCHER_DEPTH").unwrap(), "1");
}

#[test]
fn l19_overlays_all_never_mounts_an_image_another_user_could_plant() {
    let fx = Fixture::new("[commands.python3]\noverlays = \"all\"\n");
    let link = fx.s("scripts/e.d/bin/python3");
    assert!(fx.plan(&[&link], &fx.vars(&[])).is_ok());
    // envs/ at 1777: the attacker's zzz.sqsh (theirs, or even root-owned
    // but found by listing a directory others can write) is refused.
    std::fs::set_permissions(fx.p("envs"), std::fs::Permissions::from_mode(0o1777)).unwrap();
    std::fs::write(fx.p("envs/zzz.sqsh"), "").unwrap();
    let err = fx.plan(&[&link], &fx.vars(&[])).unwrap_err();
    assert_eq!(err.exit_code(), 125);
    assert!(err.to_string().contains("refusing env image"), "{err}");
}

#[test]
fn python_interpreters_go_straight_to_the_real_binary_through_inside() {
    let fx = Fixture::new("");
    let link = fx.s("scripts/e.d/bin/python3");
    // No `.inside`: the usual inside hop.
    let e = fx.exec(&[&link, "-c", "x"], &fx.vars(&[]));
    assert!(!strs(&e.argv).iter().any(|a| a.contains(".inside")));
    assert_eq!(e.env_value("APPTAINERENV_LAUNCHER_DEPTH").unwrap(), "1");
    std::fs::create_dir_all(fx.p("scripts/e-1.d/.inside")).unwrap();
    let e = fx.exec(&[&link, "-c", "x"], &fx.vars(&[]));
    let binds = strs(&e.argv)[strs(&e.argv).iter().position(|a| a == "--bind").unwrap() + 1].clone();
    assert!(
        binds.ends_with(&format!(
            ",{}:{}",
            fx.s("scripts/e-1.d/.inside"),
            fx.s("scripts/e-1.d/bin")
        )),
        "{binds}"
    );
    // No inside hop to remove the counter: it is not set (nothing inside can loop).
    assert_eq!(e.env_value("APPTAINERENV_LAUNCHER_DEPTH"), None);
    // Not for other commands, direct mode, or arguments the inside hop must restore.
    symlink("../../launcher", fx.p("scripts/e-1.d/bin/hello")).unwrap();
    for argv in [
        vec![OsString::from(fx.s("scripts/e.d/bin/hello"))],
        vec![fx.p("scripts/e.d/bin/launcher").into(), "python3".into()],
        vec![OsString::from(&link), OsString::from_vec(b"\xff".to_vec())],
    ] {
        let e = match plan(&invocation(argv.clone()), &fx.vars(&[]), &OsProbe).unwrap().action {
            Action::Exec(e) => e,
            other => panic!("{other:?}"),
        };
        assert!(!strs(&e.argv).iter().any(|a| a.contains(".inside")), "{argv:?}");
    }
    for (name, yes) in [
        ("python", true),
        ("python3", true),
        ("python3.11", true),
        ("pythonw", false),
        ("python-config", false),
        ("ipython", false),
    ] {
        assert_eq!(crate::config::is_interpreter_name(OsStr::new(name)), yes, "{name}");
    }
}
