//! End-to-end scenarios E1–E14 (spec: testing.md; bed: docs/testing.md):
//! the real launcher binary, called through the scripts tree, into the
//! stand-in runtime (or a real one, `LAUNCHER_TEST_RUNTIME`), running real
//! programs out of real squashfs images.
//!
//! Run one scenario alone with `cargo test --test e2e e5_`.

mod support;

use std::ffi::OsString;
use std::fs;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::Path;

use support::bed::{Bed, Flavour};
use support::images::{CONTAINER_PREFIX, MAIN_ALIAS, MAIN_ENV, SECOND_ENV};
use support::run::{first_line_then_close, run, run_with_input, Outcome};

/// `/opt/conda/<env>/bin/<command>`: the real program inside the container.
fn real_bin(env: &str, command: &str) -> String {
    format!("{CONTAINER_PREFIX}/{env}/bin/{command}")
}

/// The main env's interpreter, the file `/proc/self/exe` names: `python3`
/// is a link to `python3.11` in the conda-like env (`support/conda_env.rs`).
fn real_python() -> String {
    real_bin(MAIN_ENV, support::conda_env::INTERPRETER)
}

/// Python that prints, one per line: sys.executable, the binary really
/// running, whether it runs in a container, and its arguments.
const PY_REPORT: &str = "import os, sys\n\
    print(sys.executable)\n\
    print(os.readlink('/proc/self/exe'))\n\
    print('inside' if os.path.isdir('/.singularity.d') else 'outside')\n\
    print(sys.argv[1:])\n";

/// A launcher error: the documented status, one `launcher: …` line naming
/// `names`, at most one more `launcher: hint: …` line, nothing else.
#[track_caller]
fn assert_launcher_error(outcome: &Outcome, code: i32, names: &str) {
    assert_eq!(outcome.code(), Some(code), "exit status; {outcome:#?}");
    let lines: Vec<&str> = outcome.stderr.lines().collect();
    assert!(
        !lines.is_empty() && lines.len() <= 2,
        "one line (+ hint) expected: {:?}",
        outcome.stderr
    );
    assert!(lines[0].starts_with("launcher: "), "{:?}", lines[0]);
    assert!(lines[0].contains(names), "{:?} should name {names:?}", lines[0]);
    if let Some(hint) = lines.get(1) {
        assert!(
            hint.starts_with("launcher: hint: "),
            "second line must be a hint: {hint:?}"
        );
    }
    assert!(
        outcome.stdout.is_empty(),
        "nothing on stdout: {:?}",
        outcome.stdout_text()
    );
}

#[test]
fn e1_python_runs_inside_with_scripts_sys_executable() {
    let Some(bed) = Bed::for_test("e1_python_runs_inside_with_scripts_sys_executable") else {
        return;
    };
    let python = bed.link(MAIN_ENV, "python3");
    let outcome = run(bed.command(&python).args(["-c", PY_REPORT, "arg"]));
    outcome.assert_success();
    assert_eq!(
        outcome.stdout_lines(),
        [
            python.display().to_string(),
            real_python(),
            "inside".into(),
            "['arg']".into(),
        ]
    );
    // `sys.prefix` is the env's, as for a normal install: the env is
    // conda-like (a Python with its own stdlib, which finds its prefix from
    // its real file) and the outside hop binds `.inside` over the scripts
    // bin, where `python3` links straight to it (docs/python.md).
    let prefix = format!("{CONTAINER_PREFIX}/{MAIN_ENV}");
    let outcome = run(bed.command(&python).args([
        "-c",
        "import sys; print(sys.prefix); print(sys.exec_prefix); print(sys.base_prefix)",
    ]));
    outcome.assert_success();
    assert_eq!(outcome.stdout_lines(), [prefix.as_str(); 3], "{outcome:#?}");
}

#[test]
fn e2_shebang_scripts_run_inside() {
    let Some(bed) = Bed::for_test("e2_shebang_scripts_run_inside") else {
        return;
    };
    let python = bed.link(MAIN_ENV, "python3");

    let direct = bed.work.join("direct.py");
    bed.write_executable(&direct, &format!("#!{}\n{PY_REPORT}", python.display()))
        .unwrap();
    let outcome = run(bed.command(&direct).args(["a b", "c"]));
    outcome.assert_success();
    assert_eq!(
        outcome.stdout_lines(),
        [
            python.display().to_string(),
            real_python(),
            "inside".into(),
            "['a b', 'c']".into()
        ]
    );

    // A script named relative to the working directory, by a link named
    // relative to it too: both resolve inside because the cwd is kept.
    fs::write(bed.work.join("relative.py"), PY_REPORT).unwrap();
    let relative_link = Path::new("..").join(python.strip_prefix(&bed.root).unwrap());
    let outcome = run(bed.command(&relative_link).arg("relative.py"));
    outcome.assert_success();
    assert_eq!(
        outcome.stdout_lines()[1..],
        [real_python(), "inside".into(), "[]".into()]
    );

    let via_env = bed.work.join("via_env.py");
    bed.write_executable(&via_env, &format!("#!/usr/bin/env python3\n{PY_REPORT}"))
        .unwrap();
    let path = format!("{}:{}", bed.env_bin(MAIN_ENV).display(), bed.host_path());
    let outcome = run(bed.command(&via_env).env("PATH", path).arg("x"));
    outcome.assert_success();
    assert_eq!(
        outcome.stdout_lines(),
        [
            python.display().to_string(),
            real_python(),
            "inside".into(),
            "['x']".into()
        ]
    );
}

#[test]
fn e3_alias_directory_reaches_the_same_env() {
    let Some(bed) = Bed::for_test("e3_alias_directory_reaches_the_same_env") else {
        return;
    };
    let python = bed.link(MAIN_ALIAS, "python3");
    let outcome = run(bed.command(&python).args(["-c", PY_REPORT]));
    outcome.assert_success();
    assert_eq!(
        outcome.stdout_lines(),
        [
            python.display().to_string(),
            real_python(),
            "inside".into(),
            "[]".into()
        ]
    );

    let script = bed.work.join("alias.py");
    bed.write_executable(&script, &format!("#!{}\n{PY_REPORT}", python.display()))
        .unwrap();
    let outcome = run(bed.command(&script));
    outcome.assert_success();
    assert_eq!(outcome.stdout_lines()[1..3], [real_python(), "inside".into()]);

    let outcome = run(bed.command(bed.link(MAIN_ALIAS, "hello")));
    outcome.assert_success();
    assert_eq!(outcome.stdout_text(), "hello from analysis3-22.10\n");
}

#[test]
fn e4_launcher_link_runs_commands_inside_and_usage_without_one() {
    let Some(bed) = Bed::for_test("e4_launcher_link_runs_commands_inside_and_usage_without_one") else {
        return;
    };
    let launcher = bed.link(MAIN_ENV, "launcher");
    // A scripts link called from inside runs straight (L6): nesting works.
    let outcome = run(bed
        .command(&launcher)
        .args(["bash", "-c", "command -v python3; \"$0\""])
        .arg(bed.link(MAIN_ENV, "hello")));
    outcome.assert_success();
    assert_eq!(
        outcome.stdout_lines(),
        [real_bin(MAIN_ENV, "python3"), "hello from analysis3-22.10".into()]
    );

    for no_command in [launcher, bed.scripts.join("launcher")] {
        let outcome = run(bed.command(&no_command));
        assert_eq!(outcome.code(), Some(2), "{no_command:?}: {outcome:#?}");
        assert!(
            outcome.stderr.to_lowercase().contains("usage"),
            "{no_command:?}: {:?}",
            outcome.stderr
        );
        assert!(outcome.stdout.is_empty());
    }
}

#[test]
fn e5_arguments_arrive_byte_for_byte() {
    let Some(bed) = Bed::for_test("e5_arguments_arrive_byte_for_byte") else {
        return;
    };
    let args: Vec<OsString> = vec![
        "two words".into(),
        "'single' \"double\"".into(),
        "$HOME ${PATH} $(id) `id`".into(),
        "* ? [a-z]".into(),
        "line one\nline two\n".into(),
        "".into(),
        " ".into(),
        "--overlay=/evil".into(),
        "-s".into(),
        OsString::from_vec(vec![b'l', b'a', b't', b'i', b'n', 0xe9, 0xff, 0xfe]),
        "\\ \t ; | & < >".into(),
    ];
    let expected: Vec<u8> = args
        .iter()
        .flat_map(|a| a.as_bytes().iter().copied().chain([0]))
        .collect();

    // Command mode (a link) and direct mode (`launcher printargs`).
    let outcome = run(bed.command(bed.link(MAIN_ENV, "printargs")).args(&args));
    outcome.assert_success();
    assert_eq!(outcome.stdout, expected, "through the printargs link");

    let outcome = run(bed.command(bed.link(MAIN_ENV, "launcher")).arg("printargs").args(&args));
    outcome.assert_success();
    assert_eq!(outcome.stdout, expected, "through `launcher printargs`");
}

#[test]
fn e6_exit_status_signals_and_streams_pass_through() {
    let Some(bed) = Bed::for_test("e6_exit_status_signals_and_streams_pass_through") else {
        return;
    };
    for code in [0, 1, 42] {
        let outcome = run(bed.command(bed.link(MAIN_ENV, "exitwith")).arg(code.to_string()));
        assert_eq!(outcome.code(), Some(code), "{outcome:#?}");
    }
    let outcome = run(bed.command(bed.link(MAIN_ENV, "killself")).arg("USR1"));
    assert_eq!(outcome.signal(), Some(libc::SIGUSR1), "{outcome:#?}");

    let outcome = run_with_input(
        bed.command(bed.link(MAIN_ENV, "python3"))
            .args(["-c", "import sys; sys.stdout.write(sys.stdin.read().upper())"]),
        b"streamed through\nstdin\n",
    );
    outcome.assert_success();
    assert_eq!(outcome.stdout_text(), "STREAMED THROUGH\nSTDIN\n");

    // `spew | head -1`: the writer must die of SIGPIPE when the reader goes.
    let (line, status) = first_line_then_close(bed.command(bed.link(MAIN_ENV, "spew")));
    assert_eq!(line, "spew\n");
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(
        status.signal(),
        Some(libc::SIGPIPE),
        "writer ended with {status:?}, not by SIGPIPE"
    );
}

#[test]
fn e7_env_command_from_inside_goes_straight_to_the_real_binary() {
    let Some(bed) = Bed::for_test("e7_env_command_from_inside_goes_straight_to_the_real_binary") else {
        return;
    };
    let program = "import os, shutil, subprocess\n\
        print(shutil.which('pip'))\n\
        r = subprocess.run(['pip', '--version'], capture_output=True, text=True)\n\
        print(r.returncode)\n\
        print(r.stdout.strip())\n\
        print('launcher in the way' if 'launcher' in r.stderr else 'no launcher hop')\n\
        print(os.environ['PATH'])\n";
    // With the env's scripts bin on PATH, as a loaded module would set it,
    // after a directory of the user's own.
    let own = bed.work.join("mybin");
    fs::create_dir(&own).unwrap();
    let path = format!(
        "{}:{}:{}",
        own.display(),
        bed.env_bin(MAIN_ENV).display(),
        bed.host_path()
    );
    let outcome = run(bed
        .command(bed.link(MAIN_ENV, "python3"))
        .args(["-c", program])
        .env("PATH", path)
        .env("LAUNCHER_DEBUG", "1"));
    outcome.assert_success();
    let lines = outcome.stdout_lines();
    assert_eq!(lines[0], real_bin(MAIN_ENV, "pip"), "{outcome:#?}");
    assert_eq!(lines[1], "0", "{outcome:#?}");
    assert!(
        lines[2].contains(&format!("{CONTAINER_PREFIX}/{MAIN_ENV}/lib/python3")),
        "{lines:?}"
    );
    assert_eq!(lines[3], "no launcher hop", "{outcome:#?}");
    // No way back into the launcher from inside: the scripts bin became the
    // real bin, in place.
    assert_eq!(
        lines[4],
        format!(
            "{}:{CONTAINER_PREFIX}/{MAIN_ENV}/bin:{}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            own.display(),
            bed.hostbin.display()
        )
    );
}

#[test]
fn e8_venv_made_with_the_env_python_works() {
    let Some(bed) = Bed::for_test("e8_venv_made_with_the_env_python_works") else {
        return;
    };
    let venv = bed.work.join("V");
    let outcome = run(bed
        .command(bed.link(MAIN_ENV, "python3"))
        .args(["-m", "venv", "--system-site-packages"])
        .arg(&venv));
    outcome.assert_success();
    // The venv's python leads back to the launcher (through the scripts link).
    let resolved = fs::canonicalize(venv.join("bin/python")).unwrap();
    assert_eq!(
        resolved,
        bed.scripts.join("launcher"),
        "V/bin/python must go through the launcher"
    );

    let outcome = run(bed.command(venv.join("bin/python")).args([
        "-c",
        "import os, sys; print(sys.prefix); print(sys.executable); \
         print('inside' if os.path.isdir('/.singularity.d') else 'outside')",
    ]));
    outcome.assert_success();
    assert_eq!(
        outcome.stdout_lines(),
        [
            venv.display().to_string(),
            venv.join("bin/python").display().to_string(),
            "inside".into()
        ]
    );
}

/// `whereami` output of a normal launch, to compare remote launches with.
fn normal_whereami(bed: &Bed, path: &str, overlay_path: &Path) -> Vec<String> {
    let outcome = run(bed
        .command(bed.link(MAIN_ENV, "whereami"))
        .env("PATH", path)
        .env("CONTAINER_OVERLAY_PATH", overlay_path));
    outcome.assert_success();
    outcome.stdout_lines()
}

#[test]
fn e9_pbs_tmrsh_remote_command_runs_in_the_same_container() {
    let Some(bed) = Bed::for_test("e9_pbs_tmrsh_remote_command_runs_in_the_same_container") else {
        return;
    };
    let path = format!("{}:{}", bed.env_bin(MAIN_ENV).display(), bed.host_path());
    let extra = bed.image(SECOND_ENV);
    let expected = normal_whereami(&bed, &path, &extra);
    assert_eq!(expected[0], "inside");
    assert!(
        expected[2].contains(SECOND_ENV),
        "the extra image is visible: {expected:?}"
    );

    // As MPI does: `pbs_tmrsh` found on PATH (the scripts link), with options.
    let outcome = run(bed
        .command("pbs_tmrsh")
        .args(["-n", "-l", "someone", "node7", "whereami"])
        .env("PATH", &path)
        .env("CONTAINER_OVERLAY_PATH", &extra));
    outcome.assert_success();
    assert!(
        outcome.stderr.contains("pbs_tmrsh: host node7"),
        "the real pbs_tmrsh ran: {outcome:#?}"
    );
    assert_eq!(outcome.stdout_lines(), expected, "{outcome:#?}");
}

#[test]
fn e9_pbs_tmrsh_from_inside_the_container() {
    let Some(bed) = Bed::for_test("e9_pbs_tmrsh_from_inside_the_container") else {
        return;
    };
    let path = format!("{}:{}", bed.env_bin(MAIN_ENV).display(), bed.host_path());
    let extra = bed.image(SECOND_ENV);
    let expected = normal_whereami(&bed, &path, &extra);
    // mpirun runs inside and calls the scripts' pbs_tmrsh by its path.
    let outcome = run(bed
        .command(bed.link(MAIN_ENV, "launcher"))
        .args(["sh", "-c", "exec \"$0\" node7 whereami"])
        .arg(bed.link(MAIN_ENV, "pbs_tmrsh"))
        .env("PATH", &path)
        .env("CONTAINER_OVERLAY_PATH", &extra));
    outcome.assert_success();
    assert!(outcome.stderr.contains("pbs_tmrsh: host node7"), "{outcome:#?}");
    assert_eq!(outcome.stdout_lines(), expected, "{outcome:#?}");
}

#[test]
fn e10_host_command_runs_on_the_host_from_outside_and_inside() {
    let Some(bed) = Bed::for_test("e10_host_command_runs_on_the_host_from_outside_and_inside") else {
        return;
    };
    let ssh = bed.link(MAIN_ENV, "ssh");
    let outcome = run(bed.command(&ssh).args(["node1", "uptime"]));
    outcome.assert_success();
    assert_eq!(outcome.stdout_text(), "host-ssh outside: node1 uptime\n");

    // From inside: the host's ssh (bound in), never an env program; the
    // scripts bin is on PATH as a module would put it.
    let path = format!("{}:{}", bed.env_bin(MAIN_ENV).display(), bed.host_path());
    let outcome = run(bed
        .command(bed.link(MAIN_ENV, "launcher"))
        .args(["sh", "-c", "\"$0\" node2 hostname"])
        .arg(&ssh)
        .env("PATH", path));
    outcome.assert_success();
    assert_eq!(outcome.stdout_text(), "host-ssh inside: node2 hostname\n");
}

#[test]
fn e11_overlays_all_shows_every_env_image() {
    let Some(bed) = Bed::for_test("e11_overlays_all_shows_every_env_image") else {
        return;
    };
    let outcome = run(bed.command(bed.link(MAIN_ENV, "jupyter")));
    outcome.assert_success();
    let lines = outcome.stdout_lines();
    let visible: Vec<&str> = lines[0].split_whitespace().collect();
    assert_eq!(visible, [MAIN_ENV, SECOND_ENV], "{outcome:#?}");
    assert_eq!(lines[1], MAIN_ENV, "the env's own image must be on top");

    // Other commands see only their own image.
    let outcome = run(bed.command(bed.link(MAIN_ENV, "whereami")));
    outcome.assert_success();
    assert_eq!(
        outcome.stdout_lines()[2].split_whitespace().collect::<Vec<_>>(),
        [MAIN_ENV]
    );
}

#[test]
fn e12_override_script_replaces_the_command_and_calls_back() {
    let Some(bed) = Bed::for_test("e12_override_script_replaces_the_command_and_calls_back") else {
        return;
    };
    // Configured: [commands.greet] script = "overrides/greet.sh".
    bed.write_executable(
        &bed.scripts.join("overrides/greet.sh"),
        "#!/bin/sh\necho \"override $LAUNCHER_COMMAND of $LAUNCHER_ENV:\" \"$@\"\nexec \"$LAUNCHER_BIN\" greet \"$@\"\n",
    )
    .unwrap();
    let outcome = run(bed.command(bed.link(MAIN_ENV, "greet")).args(["a", "b c"]));
    outcome.assert_success();
    assert_eq!(
        outcome.stdout_text(),
        format!("override greet of {MAIN_ENV}: a b c\ngreet from analysis3-22.10: a b c\n")
    );

    // Compat: an executable <env>.d/overrides/NAME.sh.
    let overrides = bed.scripts.join(format!("{MAIN_ENV}.d/overrides"));
    fs::create_dir(&overrides).unwrap();
    bed.write_executable(
        &overrides.join("hello.sh"),
        "#!/bin/sh\necho compat override\nexec \"$LAUNCHER_BIN\" hello\n",
    )
    .unwrap();
    let outcome = run(bed.command(bed.link(MAIN_ENV, "hello")));
    outcome.assert_success();
    assert_eq!(outcome.stdout_text(), "compat override\nhello from analysis3-22.10\n");
}

#[test]
fn e13_wrong_marker_ends_with_125_not_a_loop() {
    let Some(bed) = Bed::for_test("e13_wrong_marker_ends_with_125_not_a_loop") else {
        return;
    };
    let config = bed
        .default_config()
        .replace("[container]\n", "[container]\nmarker = \"/no-such-marker-anywhere\"\n");
    bed.write_config(&config);
    let outcome = run(bed.command(bed.link(MAIN_ENV, "hello")));
    assert_launcher_error(&outcome, 125, "LAUNCHER_DEPTH");
}

#[test]
fn e14_missing_env_image() {
    let Some(bed) = Bed::for_test("e14_missing_env_image") else {
        return;
    };
    let image = bed.image(MAIN_ENV);
    fs::remove_file(&image).unwrap();
    let outcome = run(bed.command(bed.link(MAIN_ENV, "hello")));
    // Named as the config spells it (envs_dir is relative: `scripts/../envs/…`).
    assert_launcher_error(&outcome, 125, &format!("envs/{MAIN_ENV}.sqsh"));
}

#[test]
fn e14_missing_base_image() {
    let Some(bed) = Bed::for_test("e14_missing_base_image") else {
        return;
    };
    let config = bed.default_config();
    let image_line = config.lines().find(|l| l.starts_with("image = ")).unwrap().to_owned();
    bed.write_config(&config.replace(&image_line, "image = \"../no-base\""));
    let outcome = run(bed.command(bed.link(MAIN_ENV, "hello")));
    assert_launcher_error(&outcome, 125, "no-base");
}

#[test]
fn e14_missing_runtime() {
    let Some(bed) = Bed::for_test("e14_missing_runtime") else {
        return;
    };
    let config = bed.default_config();
    if support::prereq::native_runtime() {
        // The native runtime is the launcher itself, unless runtime.path names another.
        let config = config.replace("[runtime]\n", "[runtime]\npath = \"../runtime/bin/not-there\"\n");
        bed.write_config(&config);
        let outcome = run(bed.command(bed.link(MAIN_ENV, "hello")));
        assert_launcher_error(&outcome, 125, "not-there");
        return;
    }
    let path_line = config.lines().find(|l| l.starts_with("path = ")).unwrap().to_owned();
    bed.write_config(&config.replace(&path_line, "path = \"../runtime/bin/not-there\""));
    let outcome = run(bed.command(bed.link(MAIN_ENV, "hello")));
    assert_launcher_error(&outcome, 125, "not-there");

    // No runtime.path and none on PATH: says where it looked.
    bed.write_config(&config.replace(&path_line, ""));
    let outcome = run(bed.command(bed.link(MAIN_ENV, "hello")));
    assert_launcher_error(&outcome, 125, "PATH");
}

#[test]
fn e14_malformed_config() {
    let Some(bed) = Bed::for_test("e14_malformed_config") else {
        return;
    };
    bed.write_config("default_env = \"x\"\n[runtime\npath = 1\n");
    let outcome = run(bed.command(bed.link(MAIN_ENV, "hello")));
    assert_launcher_error(&outcome, 125, "launcher.toml:2:");
}

#[test]
fn e14_unknown_config_key() {
    let Some(bed) = Bed::for_test("e14_unknown_config_key") else {
        return;
    };
    let config = bed
        .default_config()
        .replace("[container]\n", "[container]\ncolour = \"blue\"\n");
    let line = config.lines().position(|l| l.starts_with("colour")).unwrap() + 1;
    bed.write_config(&config);
    let outcome = run(bed.command(bed.link(MAIN_ENV, "hello")));
    assert_launcher_error(&outcome, 125, &format!("launcher.toml:{line}:"));
    assert!(outcome.stderr.contains("colour"), "{}", outcome.stderr);
}

#[test]
fn e14_world_writable_config() {
    let Some(bed) = Bed::for_test("e14_world_writable_config") else {
        return;
    };
    fs::set_permissions(bed.config_path(), fs::Permissions::from_mode(0o666)).unwrap();
    let outcome = run(bed.command(bed.link(MAIN_ENV, "hello")));
    assert_launcher_error(&outcome, 125, &bed.config_path().display().to_string());
}

#[test]
fn e14_unknown_command() {
    let Some(bed) = Bed::for_test("e14_unknown_command") else {
        return;
    };
    // A link for a command the env's image does not have.
    let ghost = bed.link(MAIN_ENV, "ghost");
    symlink("../../launcher", &ghost).unwrap();
    let outcome = run(bed.command(&ghost));
    assert_launcher_error(&outcome, 127, "ghost");
}

#[test]
fn e14_command_not_executable() {
    let Some(bed) = Bed::for_test("e14_command_not_executable") else {
        return;
    };
    let outcome = run(bed.command(bed.link(MAIN_ENV, "notexec")));
    assert_launcher_error(&outcome, 126, "notexec");
}

/// Not an E-scenario: E1's path with the runtime installed as SingularityCE
/// (`bin/singularity`, reads only `SINGULARITYENV_`), so the launcher's
/// flavour choice (L10) is proven against a runtime that would ignore the
/// wrong prefix.
#[test]
fn singularityce_layout_runs_env_commands_inside() {
    let Some(bed) = Bed::with_flavour("singularityce_layout_runs_env_commands_inside", Flavour::SingularityCe) else {
        return;
    };
    let outcome = run(bed.command(bed.link(MAIN_ENV, "launcher")).args([
        "sh",
        "-c",
        "command -v python3; echo $PYTHONNOUSERSITE",
    ]));
    outcome.assert_success();
    assert_eq!(outcome.stdout_lines(), [real_bin(MAIN_ENV, "python3"), "x".to_string()]);
}

/// Not an E-scenario: L21 end to end. The hop counter must not reach the
/// final program, in command mode and in direct mode, or legitimate nesting
/// (a shell from `launcher bash` starting host jobs that launch again)
/// counts hops that never re-entered the runtime.
#[test]
fn l21_launcher_depth_never_reaches_the_program() {
    let Some(bed) = Bed::for_test("l21_launcher_depth_never_reaches_the_program") else {
        return;
    };
    let show = "import os; print(os.environ.get('LAUNCHER_DEPTH', 'unset'))";
    let outcome = run(bed.command(bed.link(MAIN_ENV, "python3")).args(["-c", show]));
    outcome.assert_success();
    assert_eq!(outcome.stdout_text(), "unset\n", "command mode");

    let outcome = run(bed
        .command(bed.link(MAIN_ENV, "launcher"))
        .args(["python3", "-c", show]));
    outcome.assert_success();
    assert_eq!(outcome.stdout_text(), "unset\n", "direct mode (`launcher python3`)");
}
