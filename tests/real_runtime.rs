//! End-to-end checks of what a real runtime does to a launch, against the
//! faithful stand-in (runtime-semantics.md): the value evaluation, the
//! `--cleanenv` family, the user's own prefixed `PATH`, the alias race, the
//! runtime's exec flags, an interactive `launcher bash` on a terminal, and
//! what sites switching from `launcher.sh` rely on. Each test names its rule.

mod support;

use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::symlink;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use support::bed::Bed;
use support::images::{CONTAINER_PREFIX, MAIN_ALIAS, MAIN_ENV, SECOND_ENV};
use support::run::run;

/// Print the named variables inside, one `NAME=value` a line (`unset` if unset).
fn printenv_inside(bed: &Bed, names: &[&str]) -> Command {
    let script = "for n in \"$@\"; do eval \"v=\\${$n-unset}\"; printf '%s=%s\\n' \"$n\" \"$v\"; done";
    let mut command = bed.command(bed.link(MAIN_ENV, "launcher"));
    command.args(["sh", "-c", script, "sh"]).args(names);
    command
}

/// The default config with `keys` added to each `[table]` (the table is
/// appended when the default config has none).
/// What a real runtime's `99-base.sh` appends to `LD_LIBRARY_PATH`; the
/// native runtime has no GPU library dir and appends nothing.
fn container_libs(value: &str) -> String {
    match (support::prereq::native_runtime(), value.is_empty()) {
        (true, true) => "unset".into(),
        (true, false) => value.into(),
        (false, true) => "/.singularity.d/libs".into(),
        (false, false) => format!("{value}:/.singularity.d/libs"),
    }
}

/// The native runtime refuses the real runtimes' exec flags with one line.
#[track_caller]
fn assert_native_refuses(outcome: &support::run::Outcome, flag: &str) {
    assert_eq!(outcome.code(), Some(125), "{outcome:#?}");
    assert!(
        outcome.stderr.starts_with("launcher-native: exec flag"),
        "{}",
        outcome.stderr
    );
    assert!(outcome.stderr.contains(flag), "{}", outcome.stderr);
}

fn add_to_config(bed: &Bed, edits: &[(&str, &str)]) {
    let mut config = bed.default_config();
    for (table, keys) in edits {
        let header = format!("{table}\n");
        match config.find(&header) {
            Some(at) => config.insert_str(at + header.len(), keys),
            None => config.push_str(&format!("\n{header}{keys}")),
        }
    }
    bed.write_config(&config);
}

#[test]
fn l13_values_arrive_verbatim_through_the_evaluation() {
    let Some(bed) = Bed::for_test("l13_values_arrive_verbatim_through_the_evaluation") else {
        return;
    };
    let odd = r#"a $HOME `echo ran` $(echo ran) "q" \x ends\"#;
    add_to_config(&bed, &[("[container.env]", &format!("ODD = '{odd}'\n"))]);
    fs::write(
        bed.scripts.join(format!("{MAIN_ENV}.d/env.toml")),
        format!("[env]\nACTIVATED = '{odd}'\n"),
    )
    .unwrap();
    let odd_dir = bed.root.join("odd $dir`x`");
    fs::create_dir_all(&odd_dir).unwrap();
    let path = format!("{}:{}", odd_dir.display(), bed.host_path());
    let outcome = run(printenv_inside(&bed, &["ODD", "ACTIVATED", "LD_LIBRARY_PATH", "PATH"])
        .env("PATH", &path)
        .env("LD_LIBRARY_PATH", "/lib/$x\\"));
    outcome.assert_success();
    let lines = outcome.stdout_lines();
    assert_eq!(lines[0], format!("ODD={odd}"));
    assert_eq!(lines[1], format!("ACTIVATED={odd}"));
    assert_eq!(lines[2], format!("LD_LIBRARY_PATH={}", container_libs("/lib/$x\\")));
    assert!(
        lines[3].contains(&odd_dir.display().to_string()),
        "PATH entry verbatim: {}",
        lines[3]
    );
    assert!(
        lines[3].starts_with(&format!("PATH={CONTAINER_PREFIX}/{MAIN_ENV}/bin:")),
        "{}",
        lines[3]
    );
}

#[test]
fn l13_l21_what_the_launcher_needs_survives_cleanenv_and_containall() {
    let Some(bed) = Bed::for_test("l13_l21_what_the_launcher_needs_survives_cleanenv_and_containall") else {
        return;
    };
    let per_command = ("[commands.sh]", "env = { WRAPPER_MPI_DIST_OVERRIDE = \"ompi3\" }\n");
    let report = "command -v python3; echo \"${PYTHONNOUSERSITE-unset} ${WRAPPER_MPI_DIST_OVERRIDE-unset}\"";
    for (how, exec_flags, var) in [
        ("APPTAINER_CLEANENV=1", "", Some(("APPTAINER_CLEANENV", "1"))),
        ("SINGULARITY_CONTAINALL=1", "", Some(("SINGULARITY_CONTAINALL", "1"))),
        ("exec_flags --containall", "exec_flags = [\"--containall\"]\n", None),
        ("exec_flags --cleanenv", "exec_flags = [\"--cleanenv\"]\n", None),
    ] {
        let with_var = |mut command: Command| {
            if let Some((k, v)) = var {
                command.env(k, v);
            }
            command
        };
        add_to_config(&bed, &[("[runtime]", exec_flags), per_command]);
        // The env's bin, activation and per-command env reach the program.
        let mut command = bed.command(bed.link(MAIN_ENV, "launcher"));
        command.args(["sh", "-c", report]);
        let outcome = run(with_var(command));
        if support::prereq::native_runtime() && !exec_flags.is_empty() {
            assert_native_refuses(
                &outcome,
                if how.contains("containall") {
                    "--containall"
                } else {
                    "--cleanenv"
                },
            );
            continue;
        }
        outcome.assert_success();
        assert_eq!(
            outcome.stdout_lines(),
            [format!("{CONTAINER_PREFIX}/{MAIN_ENV}/bin/python3"), "x ompi3".into()],
            "{how}"
        );
        // The depth counter still works: with a wrong marker every hop looks
        // "outside", and the counter stops the chain.
        let config = fs::read_to_string(bed.config_path()).unwrap();
        bed.write_config(&config.replace("[container]\n", "[container]\nmarker = \"/no/such/marker\"\n"));
        let outcome = run(with_var(bed.command(bed.link(MAIN_ALIAS, "hello"))));
        assert_eq!(outcome.code(), Some(125), "{how}: {outcome:#?}");
        assert!(outcome.stderr.contains("launcher: "), "{how}: {}", outcome.stderr);
    }
}

#[test]
fn l13_empty_ld_library_path_and_users_own_prefixed_path() {
    let Some(bed) = Bed::for_test("l13_empty_ld_library_path_and_users_own_prefixed_path") else {
        return;
    };
    let outcome = run(printenv_inside(&bed, &["LD_LIBRARY_PATH"]).env("LD_LIBRARY_PATH", ""));
    outcome.assert_success();
    assert_eq!(
        outcome.stdout_text(),
        format!("LD_LIBRARY_PATH={}\n", container_libs(""))
    );
    for user in ["APPTAINERENV_PATH", "SINGULARITYENV_PATH"] {
        let outcome = run(bed
            .command(bed.link(MAIN_ENV, "launcher"))
            .args(["sh", "-c", "command -v python3; echo \"$PATH\""])
            .env(user, "/mine/bin:/usr/bin:/bin"));
        outcome.assert_success();
        let lines = outcome.stdout_lines();
        assert_eq!(lines[0], format!("{CONTAINER_PREFIX}/{MAIN_ENV}/bin/python3"), "{user}");
        assert!(lines[1].ends_with(":/mine/bin:/usr/bin:/bin"), "{user}: {}", lines[1]);
    }
}

#[test]
fn l24_exec_flags_reach_the_runtime() {
    let Some(bed) = Bed::for_test("l24_exec_flags_reach_the_runtime") else {
        return;
    };
    // --nv is accepted (no GPU here); --cleanenv per command drops host variables.
    add_to_config(
        &bed,
        &[
            ("[runtime]", "exec_flags = [\"--nv\"]\n"),
            ("[commands.envname]", "exec_flags = [\"--cleanenv\"]\n"),
        ],
    );
    let outcome = run(bed.command(bed.link(MAIN_ENV, "envname")));
    if support::prereq::native_runtime() {
        assert_native_refuses(&outcome, "--nv");
        return;
    }
    outcome.assert_success();
    let outcome = run(bed.command(bed.link(MAIN_ENV, "launcher")).args(["--dry-run", "true"]));
    outcome.assert_success();
    assert!(
        outcome.stdout_text().contains(" exec --nv --bind "),
        "{}",
        outcome.stdout_text()
    );
}

/// L2: aliases move between the outside and the inside hop; every launch
/// must still run, in the env whose image the outside hop mounted.
#[test]
fn l2_alias_race_every_launch_runs_while_aliases_move() {
    let Some(bed) = Bed::for_test("l2_alias_race_every_launch_runs_while_aliases_move") else {
        return;
    };
    let launches: usize = std::env::var("LAUNCHER_RACE_LAUNCHES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    let alias = bed.scripts.join(format!("{MAIN_ALIAS}.d"));
    let stop = Arc::new(AtomicBool::new(false));
    let mover = {
        let stop = stop.clone();
        let alias = alias.clone();
        std::thread::spawn(move || {
            let temp = alias.with_file_name(".alias-moving");
            let mut flips = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let target = [SECOND_ENV, MAIN_ENV][usize::from(flips & 1 == 1)];
                let _ = fs::remove_file(&temp);
                symlink(format!("{target}.d"), &temp).unwrap();
                fs::rename(&temp, &alias).unwrap();
                flips += 1;
                std::thread::sleep(Duration::from_micros(300));
            }
            flips
        })
    };
    let link = alias.join("bin/envname");
    let failures = Arc::new(Mutex::new(Vec::new()));
    let workers: Vec<_> = (0..2)
        .map(|_| {
            let mut command = bed.command(&link);
            command.stdin(Stdio::null());
            let failures = failures.clone();
            let count = launches / 2;
            std::thread::spawn(move || {
                let mut seen = [0usize; 2];
                for _ in 0..count {
                    let out = command.output().expect("spawn");
                    let text = String::from_utf8_lossy(&out.stdout).into_owned();
                    match (out.status.code(), text.as_str()) {
                        (Some(0), "analysis3-22.10\n") => seen[0] += 1,
                        (Some(0), "tools-1.0\n") => seen[1] += 1,
                        _ => failures.lock().unwrap().push(format!(
                            "{:?} {text:?} {}",
                            out.status,
                            String::from_utf8_lossy(&out.stderr)
                        )),
                    }
                }
                seen
            })
        })
        .collect();
    let seen: Vec<[usize; 2]> = workers.into_iter().map(|w| w.join().unwrap()).collect();
    stop.store(true, Ordering::Relaxed);
    let flips = mover.join().unwrap();
    let failures = failures.lock().unwrap();
    eprintln!(
        "alias race: {launches} launches, {flips} alias moves, envs seen {seen:?}, {} failures",
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "{} of {launches} launches failed, e.g. {:?}",
        failures.len(),
        &failures[..failures.len().min(3)]
    );
    assert!(flips > 10, "the alias must really move during the launches");
}

/// A terminal session driven through util-linux `script`, which gives the
/// command a pseudo-terminal as its controlling terminal.
struct Terminal {
    child: Child,
    input: std::process::ChildStdin,
    output: Arc<Mutex<Vec<u8>>>,
}

impl Terminal {
    fn start(mut command: Command) -> Terminal {
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("script(1)");
        let input = child.stdin.take().unwrap();
        let mut stdout = child.stdout.take().unwrap();
        let output = Arc::new(Mutex::new(Vec::new()));
        let sink = output.clone();
        std::thread::spawn(move || {
            let mut buffer = [0u8; 4096];
            while let Ok(n) = stdout.read(&mut buffer) {
                if n == 0 {
                    break;
                }
                sink.lock().unwrap().extend_from_slice(&buffer[..n]);
            }
        });
        Terminal { child, input, output }
    }

    fn send(&mut self, bytes: &[u8]) {
        self.input.write_all(bytes).unwrap();
        self.input.flush().unwrap();
    }

    /// Wait until `needle` has been printed (after `from`); returns the
    /// output length after it.
    fn expect(&self, needle: &str, from: usize) -> usize {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            {
                let out = self.output.lock().unwrap();
                let text = String::from_utf8_lossy(&out[from.min(out.len())..]).into_owned();
                if let Some(at) = text.find(needle) {
                    return from + at + needle.len();
                }
                if Instant::now() > deadline {
                    panic!(
                        "terminal never showed {needle:?}; output: {:?}",
                        String::from_utf8_lossy(&out)
                    );
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

#[test]
fn l3_launcher_bash_is_a_real_interactive_shell() {
    let Some(bed) = Bed::for_test("l3_launcher_bash_is_a_real_interactive_shell") else {
        return;
    };
    if !Path::new("/usr/bin/script").exists() || !Path::new("/usr/bin/less").exists() {
        // Skips with the reason, or fails when the bed is required (CI).
        support::prereq::allowed(
            "l3_launcher_bash_is_a_real_interactive_shell",
            Some("needs script(1) (bsdutils) and less".into()),
        );
        return;
    }
    let launcher = bed.link(MAIN_ENV, "launcher");
    let mut command = bed.command("/usr/bin/script");
    command
        .args(["-qfec"])
        .arg(format!("{} bash --norc --noprofile -i", launcher.display()))
        .arg("/dev/null")
        .env("TERM", "xterm");
    let mut term = Terminal::start(command);
    // The shell runs inside, on the terminal.
    term.send(b"test -t 0 && test -d /.singularity.d && echo TTY-$((40+2))-INSIDE\n");
    let at = term.expect("TTY-42-INSIDE", 0);
    // Ctrl-C reaches the foreground program inside, not the shell.
    term.send(b"sleep 30\n");
    std::thread::sleep(Duration::from_millis(700));
    term.send(b"\x03");
    term.send(b"echo SLEEP-ENDED-$?\n");
    let at = term.expect("SLEEP-ENDED-130", at);
    // A pager owns the terminal and quits on `q`.
    term.send(b"seq 1 500 | less\n");
    let at = term.expect("\n10", at);
    term.send(b"q");
    term.send(b"echo PAGER-$((1+1))-DONE\n");
    let at = term.expect("PAGER-2-DONE", at);
    // Job control: Ctrl-Z stops the foreground job, `jobs` lists it.
    term.send(b"sleep 30\n");
    std::thread::sleep(Duration::from_millis(700));
    term.send(b"\x1a");
    let at = term.expect("Stopped", at);
    term.send(b"kill -9 %1; wait; jobs; echo JOBS-$((2+2))-DONE\n");
    term.expect("JOBS-4-DONE", at);
    // `exit 3` is the caller's status.
    term.send(b"exit 3\n");
    // bash answers a first `exit` with "There are stopped jobs." when a job
    // is still stopped (a loaded machine can leave one behind): a second
    // `exit` ends it, as at a real terminal.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut asked_again = false;
    let status = loop {
        if let Some(status) = term.child.try_wait().unwrap() {
            break status;
        }
        let stopped_jobs = String::from_utf8_lossy(&term.output.lock().unwrap()).contains("There are stopped jobs");
        if stopped_jobs && !asked_again {
            term.send(b"exit 3\n");
            asked_again = true;
        }
        assert!(
            Instant::now() < deadline,
            "the shell did not exit; terminal: {:?}",
            String::from_utf8_lossy(&term.output.lock().unwrap())
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(3));
}

#[test]
fn l2_symlink_to_an_env_dir_under_another_name() {
    let Some(bed) = Bed::for_test("l2_symlink_to_an_env_dir_under_another_name") else {
        return;
    };
    let a3 = bed.home.join("a3");
    symlink(bed.scripts.join(format!("{MAIN_ALIAS}.d")), &a3).unwrap();
    let bin = bed.home.join("a3bin");
    symlink(bed.env_bin(MAIN_ALIAS), &bin).unwrap();
    for link in [a3.join("bin/hello"), bin.join("hello")] {
        let outcome = run(bed.command(&link));
        outcome.assert_success();
        assert_eq!(
            outcome.stdout_text(),
            "hello from analysis3-22.10\n",
            "{}",
            link.display()
        );
    }
}

#[test]
fn l11_image_from_the_list_and_override_variable() {
    let Some(bed) = Bed::for_test("l11_image_from_the_list_and_override_variable") else {
        return;
    };
    // A test tree before deploy: the env image is elsewhere, named by the list.
    let elsewhere = bed.root.join("testing");
    fs::create_dir_all(&elsewhere).unwrap();
    let moved = elsewhere.join(format!("{MAIN_ENV}.sqsh"));
    fs::rename(bed.image(MAIN_ENV), &moved).unwrap();
    let outcome = run(bed
        .command(bed.link(MAIN_ENV, "hello"))
        .env("CONTAINER_OVERLAY_PATH", &moved));
    outcome.assert_success();
    assert_eq!(outcome.stdout_text(), "hello from analysis3-22.10\n");
    fs::rename(&moved, bed.image(MAIN_ENV)).unwrap();
    // CONTAINER_OVERLAY_PATH_OVERRIDE=1: only the list is mounted.
    let outcome = run(bed
        .command(bed.link(MAIN_ENV, "launcher"))
        .args(["sh", "-c", "ls /opt/conda"])
        .env("CONTAINER_OVERLAY_PATH", bed.image(SECOND_ENV))
        .env("CONTAINER_OVERLAY_PATH_OVERRIDE", "1"));
    outcome.assert_success();
    let text = outcome.stdout_text();
    assert!(
        text.contains(SECOND_ENV) && !text.contains(MAIN_ENV),
        "only the list: {text:?}"
    );
}

#[test]
fn l16_pbs_tmrsh_inside_a_remotely_started_container_forwards_the_real_list() {
    let Some(bed) = Bed::for_test("l16_pbs_tmrsh_inside_a_remotely_started_container_forwards_the_real_list") else {
        return;
    };
    let path = format!("{}:{}", bed.env_bin(MAIN_ENV).display(), bed.host_path());
    let extra = bed.image(SECOND_ENV);
    // The way a remote node starts it: the list as a flag, not a variable.
    let outcome = run(bed
        .command(bed.link(MAIN_ENV, "launcher"))
        .arg("--overlay-path")
        .arg(&extra)
        .args(["sh", "-c", "exec \"$0\" node7 whereami"])
        .arg(bed.link(MAIN_ENV, "pbs_tmrsh"))
        .env("PATH", &path));
    outcome.assert_success();
    assert!(outcome.stderr.contains("pbs_tmrsh: host node7"), "{outcome:#?}");
    let lines = outcome.stdout_lines();
    assert_eq!(lines[0], "inside");
    assert!(
        lines[2].contains(SECOND_ENV),
        "the remote hop mounted the extra image: {lines:?}"
    );
}

#[test]
fn l3_help_and_version_work_with_no_config() {
    let Some(bed) = Bed::for_test("l3_help_and_version_work_with_no_config") else {
        return;
    };
    fs::remove_file(bed.config_path()).unwrap();
    let outcome = run(bed.command(bed.scripts.join("launcher")).arg("--version"));
    outcome.assert_success();
    assert!(outcome.stdout_text().starts_with("launcher "));
    let outcome = run(bed.command(bed.scripts.join("launcher")).arg("--help"));
    outcome.assert_success();
    assert!(!outcome.stdout.is_empty());
}
