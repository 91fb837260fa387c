//! The stand-in runtime's own behaviour (no launcher involved): what the
//! end-to-end scenarios rely on it to do like a real Apptainer/SingularityCE.

mod support;

use std::ffi::OsString;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use support::bed::{install_standin, Flavour};
use support::images;
use support::prereq;
use support::run::{run, Outcome};

/// A runtime install, a base sandbox and a working dir in a temp dir.
struct Fixture {
    _dir: tempfile::TempDir,
    root: PathBuf,
    runtime: PathBuf,
    base: PathBuf,
    work: PathBuf,
}

impl Fixture {
    fn new(flavour: Flavour) -> Fixture {
        let dir = tempfile::Builder::new()
            .prefix("standin-test-")
            .tempdir()
            .expect("tempdir");
        let root = dir.path().to_owned();
        let runtime = install_standin(&root.join("runtime/bin"), flavour).expect("install stand-in");
        let base = root.join("base");
        images::base_sandbox(&base).expect("base sandbox");
        let work = root.join("work");
        std::fs::create_dir(&work).expect("work dir");
        Fixture {
            _dir: dir,
            root,
            runtime,
            base,
            work,
        }
    }

    /// `<runtime> -s exec --bind <host OS dirs> [extra…] <base> <command…>`,
    /// with a known environment, in `work/`.
    fn exec(&self, extra: &[OsString], command: &[&str]) -> Command {
        self.exec_as(&self.runtime, extra, command)
    }

    fn exec_as(&self, runtime: &Path, extra: &[OsString], command: &[&str]) -> Command {
        let mut cmd = Command::new(runtime);
        cmd.env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("HOME", &self.work)
            .current_dir(&self.work)
            .args(["-s", "exec", "--bind", &host_os_binds()])
            .args(extra)
            .arg(&self.base)
            .args(command);
        cmd
    }

    fn squashfs(&self, name: &str, files: &[(&str, &str)]) -> PathBuf {
        let image = self.root.join(name);
        images::squashfs_with(files, &image).expect("squashfs image");
        image
    }
}

/// The host OS directories the base sandbox expects to be bound.
fn host_os_binds() -> String {
    ["/usr", "/etc", "/lib", "/lib64"]
        .iter()
        .filter(|d| Path::new(d).exists())
        .copied()
        .collect::<Vec<_>>()
        .join(",")
}

fn overlay(image: &Path) -> OsString {
    let mut arg = OsString::from("--overlay=");
    arg.push(image);
    arg
}

/// The environment printed by `env -0` inside the container.
fn env_of(outcome: &Outcome) -> Vec<(String, String)> {
    outcome
        .stdout
        .split(|&b| b == 0)
        .filter(|entry| !entry.is_empty())
        .map(|entry| {
            let text = String::from_utf8_lossy(entry);
            let (k, v) = text.split_once('=').expect("NAME=value");
            (k.to_owned(), v.to_owned())
        })
        .collect()
}

fn lookup<'a>(env: &'a [(String, String)], key: &str) -> Option<&'a str> {
    env.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

#[track_caller]
fn assert_runtime_error(outcome: &Outcome, names: &str) {
    assert_eq!(outcome.code(), Some(255), "{outcome:#?}");
    let lines: Vec<&str> = outcome.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one line expected: {:?}", outcome.stderr);
    assert!(lines[0].contains(names), "message {:?} should name {names:?}", lines[0]);
    assert!(!outcome.stderr.contains("panicked"), "{}", outcome.stderr);
}

// ---- bad input: exit 255 and one line, before anything is mounted ----

#[test]
fn unknown_flag_is_rejected_with_255() {
    let fx = Fixture::new(Flavour::Apptainer);
    let outcome = run(fx.exec(&["--writable".into()], &["true"]));
    assert_runtime_error(&outcome, "--writable");
    let outcome = run(Command::new(&fx.runtime).args(["--debug", "exec", "/x", "true"]));
    assert_runtime_error(&outcome, "--debug");
}

#[test]
fn missing_image_is_rejected_with_255() {
    let fx = Fixture::new(Flavour::Apptainer);
    let missing = fx.root.join("no-such-base");
    let outcome = run(Command::new(&fx.runtime).arg("exec").arg(&missing).arg("true"));
    assert_runtime_error(&outcome, &missing.display().to_string());
}

#[test]
fn image_without_marker_is_rejected_with_255() {
    let fx = Fixture::new(Flavour::Apptainer);
    let outcome = run(Command::new(&fx.runtime).arg("exec").arg(&fx.work).arg("true"));
    assert_runtime_error(&outcome, &fx.work.display().to_string());
}

#[test]
fn missing_overlay_file_is_rejected_with_255() {
    let fx = Fixture::new(Flavour::Apptainer);
    let missing = fx.root.join("gone.sqsh");
    let outcome = run(fx.exec(&[overlay(&missing)], &["true"]));
    assert_runtime_error(&outcome, &missing.display().to_string());
}

#[test]
fn missing_command_and_subcommand_are_rejected_with_255() {
    let fx = Fixture::new(Flavour::Apptainer);
    assert_runtime_error(&run(Command::new(&fx.runtime).arg("exec").arg(&fx.base)), "no command");
    assert_runtime_error(&run(Command::new(&fx.runtime).arg("run").arg(&fx.base)), "run");
    assert_runtime_error(&run(&mut Command::new(&fx.runtime)), "no subcommand");
}

#[test]
fn missing_bind_source_is_rejected_with_255() {
    let fx = Fixture::new(Flavour::Apptainer);
    let outcome = run(fx.exec(&["--bind".into(), "/no/such/dir".into()], &["true"]));
    assert_runtime_error(&outcome, "/no/such/dir");
}

#[test]
fn binary_name_that_is_not_a_runtime_is_rejected() {
    let outcome = run(Command::new(support::binaries::standin_runtime()).args(["exec", "/", "true"]));
    assert_runtime_error(&outcome, "flavour");
}

// ---- behaviour ----

#[test]
fn last_overlay_is_on_top() {
    if !prereq::standin_available("last_overlay_is_on_top") {
        return;
    }
    let fx = Fixture::new(Flavour::Apptainer);
    let first = fx.squashfs("first.sqsh", &[("/data/which", "first\n"), ("/data/only-first", "1\n")]);
    let second = fx.squashfs("second.sqsh", &[("/data/which", "second\n")]);
    let show = ["/bin/sh", "-c", "cat /data/which /data/only-first"];

    let outcome = run(fx.exec(&[overlay(&first), overlay(&second)], &show));
    outcome.assert_success();
    assert_eq!(outcome.stdout_text(), "second\n1\n");

    let outcome = run(fx.exec(&[overlay(&second), overlay(&first)], &show));
    outcome.assert_success();
    assert_eq!(outcome.stdout_text(), "first\n1\n");
}

#[test]
fn container_root_is_the_base_image_and_read_only() {
    if !prereq::standin_available("container_root_is_the_base_image_and_read_only") {
        return;
    }
    let fx = Fixture::new(Flavour::Apptainer);
    std::fs::write(fx.base.join("etc-marker"), "base\n").unwrap();
    let outcome = run(fx.exec(
        &[],
        &[
            "/bin/sh",
            "-c",
            "cat /etc-marker; test -d /.singularity.d && echo marker; touch /new 2>/dev/null || echo read-only",
        ],
    ));
    outcome.assert_success();
    assert_eq!(outcome.stdout_text(), "base\nmarker\nread-only\n");
    assert!(!fx.base.join("new").exists());
}

#[test]
fn environment_rules_apptainer_layout() {
    if !prereq::standin_available("environment_rules_apptainer_layout") {
        return;
    }
    let fx = Fixture::new(Flavour::Apptainer);
    // Called through the `singularity -> apptainer` link: still Apptainer.
    let via_link = fx.runtime.with_file_name("singularity");
    let outcome = run(fx
        .exec_as(&via_link, &[], &["env", "-0"])
        .env("PATH", "/host/only:/usr/bin:/bin")
        .env("LD_LIBRARY_PATH", "/host/lib")
        .env("KEPT", "host value")
        .env("APPTAINERENV_PREPEND_PATH", "/env/bin")
        .env("SINGULARITYENV_APPEND_PATH", "/late/bin")
        .env("APPTAINERENV_BOTH", "apptainer")
        .env("SINGULARITYENV_BOTH", "singularity")
        .env("SINGULARITYENV_OLD", "old prefix")
        .env("APPTAINERENV_LD_LIBRARY_PATH", "/env/lib"));
    outcome.assert_success();
    let env = env_of(&outcome);
    assert_eq!(
        lookup(&env, "PATH"),
        Some("/env/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:/late/bin")
    );
    assert_eq!(lookup(&env, "LD_LIBRARY_PATH"), Some("/env/lib:/.singularity.d/libs"));
    assert_eq!(lookup(&env, "KEPT"), Some("host value"));
    assert_eq!(lookup(&env, "BOTH"), Some("apptainer"));
    assert_eq!(lookup(&env, "OLD"), Some("old prefix"));
    let base = fx.base.display().to_string();
    assert_eq!(lookup(&env, "APPTAINER_CONTAINER"), Some(base.as_str()));
    assert_eq!(lookup(&env, "SINGULARITY_CONTAINER"), Some(base.as_str()));
    assert_eq!(lookup(&env, "APPTAINER_NAME"), Some("base"));
    assert_eq!(lookup(&env, "SINGULARITY_NAME"), Some("base"));
    assert!(
        env.iter().all(|(k, _)| !k.contains("ENV_")),
        "prefixed vars left: {env:?}"
    );
}

#[test]
fn environment_rules_singularityce_layout() {
    if !prereq::standin_available("environment_rules_singularityce_layout") {
        return;
    }
    let fx = Fixture::new(Flavour::SingularityCe);
    let outcome = run(fx
        .exec(&[], &["env", "-0"])
        .env("LD_LIBRARY_PATH", "/host/lib")
        .env("APPTAINERENV_FOO", "ignored")
        .env("SINGULARITYENV_PREPEND_PATH", "/env/bin")
        .env("SINGULARITYENV_BAR", "bar"));
    outcome.assert_success();
    let env = env_of(&outcome);
    assert_eq!(
        lookup(&env, "PATH"),
        Some("/env/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
    );
    assert_eq!(lookup(&env, "LD_LIBRARY_PATH"), Some("/.singularity.d/libs"));
    assert_eq!(lookup(&env, "FOO"), None);
    assert_eq!(lookup(&env, "APPTAINERENV_FOO"), Some("ignored"));
    assert_eq!(lookup(&env, "BAR"), Some("bar"));
    assert_eq!(lookup(&env, "APPTAINER_CONTAINER"), None);
    assert_eq!(lookup(&env, "SINGULARITY_NAME"), Some("base"));
}

#[test]
fn binds_defaults_and_created_mount_points() {
    if !prereq::standin_available("binds_defaults_and_created_mount_points") {
        return;
    }
    let fx = Fixture::new(Flavour::Apptainer);
    let data = fx.root.join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::write(data.join("f"), "bound\n").unwrap();
    std::fs::write(fx.root.join("single"), "file bind\n").unwrap();
    let list = format!(
        "{}:/mnt/deep/data,{}:/single",
        data.display(),
        fx.root.join("single").display()
    );
    let script = "cat /mnt/deep/data/f /single; test -r /proc/self/status && echo proc; \
                  test -c /dev/null && echo dev; test -d /sys/kernel && echo sys; \
                  test -d \"$HOME\" && echo home; test -d /tmp && echo tmp";
    let outcome = run(fx.exec(&["--bind".into(), list.into()], &["/bin/sh", "-c", script]));
    outcome.assert_success();
    assert_eq!(outcome.stdout_text(), "bound\nfile bind\nproc\ndev\nsys\nhome\ntmp\n");
    // The mount points were made in the container's session layer, not in the image.
    assert!(!fx.base.join("mnt").exists() && !fx.base.join("single").exists());
}

#[test]
fn working_directory_is_kept() {
    if !prereq::standin_available("working_directory_is_kept") {
        return;
    }
    let fx = Fixture::new(Flavour::Apptainer);
    std::fs::write(fx.work.join("here"), "").unwrap();
    let outcome = run(fx.exec(&[], &["/bin/sh", "-c", "pwd; ls"]));
    outcome.assert_success();
    assert_eq!(outcome.stdout_text(), format!("{}\nhere\n", fx.work.display()));
}

#[test]
fn exit_status_and_signals_pass_through() {
    if !prereq::standin_available("exit_status_and_signals_pass_through") {
        return;
    }
    let fx = Fixture::new(Flavour::Apptainer);
    for code in [0, 1, 42] {
        let outcome = run(fx.exec(&[], &["/bin/sh", "-c", &format!("exit {code}")]));
        assert_eq!(outcome.code(), Some(code), "{outcome:#?}");
    }
    let outcome = run(fx.exec(&[], &["/bin/sh", "-c", "kill -s USR1 $$; sleep 5"]));
    assert_eq!(outcome.signal(), Some(libc::SIGUSR1), "{outcome:#?}");
}

#[test]
fn command_gets_default_sigpipe_and_arguments_through_the_starter_go_json_handoff() {
    if !prereq::standin_available("command_gets_default_sigpipe_and_arguments_through_the_starter_go_json_handoff") {
        return;
    }
    let fx = Fixture::new(Flavour::Apptainer);
    // SigIgn is a hex mask; SIGPIPE (13) is bit 12.
    let outcome = run(fx.exec(&[], &["/bin/sh", "-c", "grep SigIgn /proc/self/status"]));
    outcome.assert_success();
    let mask = outcome
        .stdout_text()
        .split_whitespace()
        .nth(1)
        .map(|h| u64::from_str_radix(h, 16).unwrap());
    assert_eq!(mask.map(|m| m & (1 << (libc::SIGPIPE - 1))), Some(0), "{outcome:#?}");

    let args: Vec<OsString> = vec![
        "a b".into(),
        "".into(),
        "$HOME *".into(),
        "line\nbreak".into(),
        OsString::from_vec(vec![0xff, 0xfe, b'x']),
    ];
    let mut command = fx.exec(
        &[],
        &["/bin/sh", "-c", "for a in \"$@\"; do printf '%s\\0' \"$a\"; done", "sh"],
    );
    command.args(&args);
    let outcome = run(&mut command);
    outcome.assert_success();
    // Everything survives but bytes that are not UTF-8: Go's encoding/json
    // (starter.go) turns each into U+FFFD (runtime-semantics.md §6).
    let mut expected: Vec<u8> = args[..4]
        .iter()
        .flat_map(|a| a.as_bytes().iter().copied().chain([0]))
        .collect();
    expected.extend_from_slice("\u{FFFD}\u{FFFD}x\0".as_bytes());
    assert_eq!(outcome.stdout, expected);
}

#[test]
fn command_is_looked_up_on_the_container_path() {
    if !prereq::standin_available("command_is_looked_up_on_the_container_path") {
        return;
    }
    let fx = Fixture::new(Flavour::Apptainer);
    let image = fx.squashfs(
        "tools.sqsh",
        &[("/opt/tools/bin/only-in-image", "#!/bin/sh\necho found \"$0\"\n")],
    );
    let outcome = run(fx
        .exec(&[overlay(&image)], &["only-in-image"])
        .env("APPTAINERENV_PREPEND_PATH", "/opt/tools/bin"));
    outcome.assert_success();
    assert_eq!(outcome.stdout_text(), "found /opt/tools/bin/only-in-image\n");
    // Not on the container PATH (the host PATH is not imported): 255.
    let outcome = run(fx
        .exec(&[overlay(&image)], &["only-in-image"])
        .env("PATH", "/opt/tools/bin"));
    assert_runtime_error(&outcome, "only-in-image");
}

#[test]
fn nothing_stays_mounted_on_the_host() {
    if !prereq::standin_available("nothing_stays_mounted_on_the_host") {
        return;
    }
    let fx = Fixture::new(Flavour::Apptainer);
    let image = fx.squashfs("one.sqsh", &[("/data/x", "x\n")]);
    run(fx.exec(&[overlay(&image)], &["/bin/true"])).assert_success();
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let root = fx.root.display().to_string();
    assert!(!mounts.contains(&root), "host mount table mentions {root}:\n{mounts}");
    let loops = Command::new("losetup").args(["-j"]).arg(&image).output();
    if let Ok(loops) = loops {
        // Autoclear may lag the namespace teardown by a moment; only report.
        if !loops.stdout.is_empty() {
            eprintln!(
                "note: loop device still attached: {}",
                String::from_utf8_lossy(&loops.stdout)
            );
        }
    }
}

// ---- the real runtimes' environment and exec semantics (runtime-semantics.md) ----

/// `env -0` in the container with `extra` host variables, through the
/// Apptainer layout.
fn container_env(fx: &Fixture, extra_args: &[OsString], vars: &[(&str, &str)]) -> (Outcome, Vec<(String, String)>) {
    let mut command = fx.exec(extra_args, &["env", "-0"]);
    for (k, v) in vars {
        command.env(k, v);
    }
    let outcome = run(command);
    let env = env_of(&outcome);
    (outcome, env)
}

#[test]
fn process_linux_go_prefixed_values_are_evaluated_once_as_shell_text() {
    if !prereq::standin_available("process_linux_go_prefixed_values_are_evaluated_once_as_shell_text") {
        return;
    }
    let fx = Fixture::new(Flavour::Apptainer);
    let (outcome, env) = container_env(
        &fx,
        &[],
        &[
            ("APPTAINERENV_DOLLAR", "$HOME/x"),
            ("APPTAINERENV_TICKS", "a`echo hi`b"),
            ("APPTAINERENV_SUBST", "$(echo sub)"),
            ("APPTAINERENV_SLASHES", "one\\\\two"),
            ("APPTAINERENV_QUOTE", "say \"hi\""),
        ],
    );
    outcome.assert_success();
    let home = lookup(&env, "HOME").expect("HOME").to_owned();
    assert_eq!(lookup(&env, "DOLLAR"), Some(format!("{home}/x").as_str()));
    assert_eq!(lookup(&env, "TICKS"), Some("ahib"));
    assert_eq!(lookup(&env, "SUBST"), Some("sub"));
    assert_eq!(lookup(&env, "SLASHES"), Some("one\\two"));
    assert_eq!(lookup(&env, "QUOTE"), Some("say \"hi\""), "escape.go escapes only '\"'");
}

#[test]
fn action_script_injection_that_does_not_parse_drops_every_prefixed_variable() {
    if !prereq::standin_available("action_script_injection_that_does_not_parse_drops_every_prefixed_variable") {
        return;
    }
    let fx = Fixture::new(Flavour::Apptainer);
    for bad in ["ends\\", "a`b", "$(x"] {
        let (outcome, env) = container_env(
            &fx,
            &[],
            &[
                ("APPTAINERENV_PREPEND_PATH", "/env/bin"),
                ("APPTAINERENV_CONDA_PREFIX", "/opt/conda/e"),
                ("APPTAINERENV_BAD", bad),
                ("CONDA_PREFIX", "host value"),
            ],
        );
        outcome.assert_success();
        assert_eq!(lookup(&env, "PATH"), Some(support::standin_default_path()), "{bad}");
        assert_eq!(lookup(&env, "CONDA_PREFIX"), Some("host value"), "{bad}");
        assert_eq!(lookup(&env, "BAD"), None);
        assert!(outcome.stderr.contains("source: "), "{bad}: {}", outcome.stderr);
    }
    // --no-eval (and APPTAINER_NO_EVAL): single-quoted, verbatim.
    let (outcome, env) = container_env(&fx, &["--no-eval".into()], &[("APPTAINERENV_RAW", "$X `y` \\")]);
    outcome.assert_success();
    assert_eq!(lookup(&env, "RAW"), Some("$X `y` \\"));
}

#[test]
fn action_script_env_scripts_are_sourced_and_need_99_base_sh() {
    if !prereq::standin_available("action_script_env_scripts_are_sourced_and_need_99_base_sh") {
        return;
    }
    let fx = Fixture::new(Flavour::Apptainer);
    let env_dir = fx.base.join(".singularity.d/env");
    std::fs::write(
        env_dir.join("90-environment.sh"),
        "export KEEP=from-container\nexport SITE=1\n",
    )
    .unwrap();
    let vars = [
        ("KEEP", "from-host"),
        ("APPTAINERENV_SITE", "injected"),
        ("APPTAINERENV_PREPEND_PATH", "/env/bin"),
        ("APPTAINERENV_APPEND_PATH", "/late/bin"),
    ];
    let (outcome, env) = container_env(&fx, &[], &vars);
    outcome.assert_success();
    // A container value beats a host value of the same name.
    assert_eq!(lookup(&env, "KEEP"), Some("from-container"));
    // 90-environment.sh runs before 99-base.sh, so the injection beats it.
    assert_eq!(lookup(&env, "SITE"), Some("injected"));
    // 99-base.sh of a built image.
    assert_eq!(lookup(&env, "LD_LIBRARY_PATH"), Some("/.singularity.d/libs"));
    assert_eq!(
        lookup(&env, "PATH"),
        Some(format!("/env/bin:{}:/late/bin", support::standin_default_path()).as_str())
    );
    // env/ without 99-base.sh: nothing prefixed arrives.
    std::fs::remove_file(env_dir.join("99-base.sh")).unwrap();
    let (outcome, env) = container_env(&fx, &[], &vars);
    outcome.assert_success();
    assert_eq!(lookup(&env, "SITE"), Some("1"));
    assert_eq!(lookup(&env, "PATH"), Some(support::standin_default_path()));
}

#[test]
fn runtime_vars_sh_prefixed_path_replaces_path_outright() {
    if !prereq::standin_available("runtime_vars_sh_prefixed_path_replaces_path_outright") {
        return;
    }
    let fx = Fixture::new(Flavour::Apptainer);
    let (outcome, env) = container_env(
        &fx,
        &[],
        &[
            ("APPTAINERENV_PREPEND_PATH", "/env/bin"),
            ("APPTAINERENV_APPEND_PATH", "/late/bin"),
            ("SINGULARITYENV_PATH", "/user/path:/usr/bin"),
        ],
    );
    outcome.assert_success();
    assert_eq!(lookup(&env, "PATH"), Some("/user/path:/usr/bin"));
}

#[test]
fn create_go_runtime_variables_cleanenv_and_containall() {
    if !prereq::standin_available("create_go_runtime_variables_cleanenv_and_containall") {
        return;
    }
    let fx = Fixture::new(Flavour::Apptainer);
    let vars = [
        ("PLAIN", "host"),
        ("APPTAINER_SOMETHING", "x"),
        ("SINGULARITY_OTHER", "y"),
        ("APPTAINERENV_CARRIED", "prefixed"),
    ];
    let (outcome, env) = container_env(&fx, &[], &vars);
    outcome.assert_success();
    assert_eq!(lookup(&env, "PLAIN"), Some("host"));
    assert_eq!(lookup(&env, "APPTAINER_SOMETHING"), None, "create.go:147-153");
    assert_eq!(lookup(&env, "SINGULARITY_OTHER"), None);
    for (flags, extra) in [
        (vec![OsString::from("--cleanenv")], None),
        (vec![OsString::from("--containall")], None),
        (vec![], Some(("APPTAINER_CLEANENV", "1"))),
        (vec![], Some(("SINGULARITY_CONTAINALL", "true"))),
    ] {
        let mut all = vars.to_vec();
        all.extend(extra);
        let (outcome, env) = container_env(&fx, &flags, &all);
        outcome.assert_success();
        assert_eq!(lookup(&env, "PLAIN"), None, "{flags:?} {extra:?}");
        assert_eq!(lookup(&env, "LANG"), Some("C"));
        assert_eq!(lookup(&env, "CARRIED"), Some("prefixed"), "{flags:?} {extra:?}");
    }
}

#[test]
fn process_linux_go_empty_ld_library_path_is_exported_empty() {
    if !prereq::standin_available("process_linux_go_empty_ld_library_path_is_exported_empty") {
        return;
    }
    let fx = Fixture::new(Flavour::Apptainer);
    let (outcome, env) = container_env(&fx, &[], &[("APPTAINERENV_LD_LIBRARY_PATH", "")]);
    outcome.assert_success();
    assert_eq!(lookup(&env, "LD_LIBRARY_PATH"), Some(""));
}

#[test]
fn process_linux_go_exec_builtin_argv0_missing_command_and_home() {
    if !prereq::standin_available("process_linux_go_exec_builtin_argv0_missing_command_and_home") {
        return;
    }
    let fx = Fixture::new(Flavour::Apptainer);
    // argv[0] of a bare name is its PATH hit.
    let outcome = run(fx.exec(&[], &["cat", "/proc/self/cmdline"]));
    outcome.assert_success();
    let argv0 = outcome.stdout.split(|&b| b == 0).next().unwrap().to_vec();
    assert_eq!(String::from_utf8(argv0).unwrap(), "/usr/bin/cat");
    // A missing command is the runtime's error, 255.
    let outcome = run(fx.exec(&[], &["/no/such/command"]));
    assert_runtime_error(&outcome, "/no/such/command");
    // HOME is the account's home directory, not $HOME.
    let (outcome, env) = container_env(&fx, &[], &[("HOME", "/somewhere/else")]);
    outcome.assert_success();
    let account = nix::unistd::User::from_uid(nix::unistd::getuid()).unwrap().unwrap().dir;
    assert_eq!(lookup(&env, "HOME"), Some(account.to_str().unwrap()));
}
