//! The built `launcher` binary, run through symlinks in a temp scripts tree
//! against a recording fake runtime: proves the exact command line and
//! environment a real runtime would receive (testing.md layer 2), and every
//! user error with its exit code and message.

use std::collections::HashMap;
use std::ffi::OsString;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The recording fake runtime (and fake programs): writes its argv, argv[0]
/// included, and its environment, NUL-terminated, to
/// `$RECORD_DIR/<name>.{argv,env}`, where name is the file it was exec'd as.
/// C rather than a script, because a `#!` script cannot see its argv[0].
const RECORDER_C: &str = r#"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
extern char **environ;
static void dump(const char *name, const char *ext, char **list) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s.%s", getenv("RECORD_DIR"), name, ext);
    FILE *f = fopen(path, "wb");
    if (!f) { perror(path); exit(99); }
    for (; *list; list++) fwrite(*list, 1, strlen(*list) + 1, f);
    fclose(f);
}
int main(int argc, char **argv) {
    const char *self = (const char *)getauxval(AT_EXECFN);
    const char *name = strrchr(self, '/') ? strrchr(self, '/') + 1 : self;
    dump(name, "argv", argv);
    dump(name, "env", environ);
    return 0;
}
"#;

/// Compile the recorder once per test process.
fn recorder() -> &'static Path {
    static RECORDER: std::sync::OnceLock<(tempfile::TempDir, PathBuf)> = std::sync::OnceLock::new();
    &RECORDER
        .get_or_init(|| {
            let dir = tempfile::tempdir().unwrap();
            let src = dir.path().join("recorder.c");
            let bin = dir.path().join("recorder");
            std::fs::write(&src, RECORDER_C).unwrap();
            let status = Command::new("cc")
                .arg("-O1")
                .arg("-o")
                .arg(&bin)
                .arg(&src)
                .status()
                .expect("a C compiler (cc) is needed");
            assert!(status.success(), "compiling the recorder failed");
            (dir, bin)
        })
        .1
}

fn write_recorder(path: &Path) {
    install_executable(recorder(), path);
}

/// Copy an executable through a child process (`install`), never through an
/// fd of this multi-threaded test process: a writable fd that another test
/// thread's fork inherits makes exec'ing the file fail with ETXTBSY.
fn install_executable(src: &Path, dst: &Path) {
    let status = Command::new("install")
        .args(["-D", "-m", "0755"])
        .arg(src)
        .arg(dst)
        .status()
        .unwrap();
    assert!(status.success(), "install {} failed", dst.display());
}

struct Tree {
    dir: tempfile::TempDir,
}

fn write_exe(path: &Path, text: &str) {
    let staging = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(staging.path(), text).unwrap();
    install_executable(staging.path(), path);
}

impl Tree {
    fn new(extra_config: &str) -> Tree {
        let t = Tree {
            dir: tempfile::tempdir().unwrap(),
        };
        let s = t.p("scripts");
        std::fs::create_dir_all(s.join("e-1.d/bin")).unwrap();
        install_executable(Path::new(env!("CARGO_BIN_EXE_launcher")), &s.join("launcher"));
        for cmd in [
            "python3",
            "launcher",
            "ssh",
            "pbs_tmrsh",
            "jupyter",
            "mpicc",
            "qsub",
            "data",
            "nosuch",
        ] {
            symlink("../../launcher", s.join("e-1.d/bin").join(cmd)).unwrap();
        }
        symlink("e-1.d", s.join("e.d")).unwrap();
        std::fs::create_dir_all(t.p("envs")).unwrap();
        for img in ["e-1.sqsh", "zz.sqsh", "aa.sqsh"] {
            std::fs::write(t.p("envs").join(img), "").unwrap();
        }
        std::fs::create_dir_all(t.p("base.sandbox/.singularity.d")).unwrap();
        write_recorder(&t.p("rt/apptainer"));
        symlink("apptainer", t.p("rt/singularity")).unwrap();
        write_recorder(&t.p("ce/singularity"));
        write_recorder(&t.p("host/ssh"));
        write_recorder(&t.p("host/pbs_tmrsh"));
        std::fs::create_dir_all(t.p("rec")).unwrap();
        // The "inside" world: the env's real bin.
        write_recorder(&t.p("opt/conda/e-1/bin/python3"));
        std::fs::write(t.p("opt/conda/e-1/bin/data"), "").unwrap();
        t.config(extra_config);
        t
    }

    fn p(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }
    fn s(&self, rel: &str) -> String {
        self.p(rel).display().to_string()
    }

    fn config(&self, extra: &str) {
        let text = format!(
            "[runtime]\nimage = \"../base.sandbox\"\n[container]\nenvs_dir = \"../envs\"\nmarker = \"../marker\"\n\
             prefix = \"{}\"\nbinds = [\"/etc\", \"/nonexistent-bind\"]\n{extra}",
            self.s("opt/conda")
        );
        std::fs::write(self.p("scripts/launcher.toml"), text).unwrap();
    }

    fn path_var(&self) -> String {
        format!("{}:{}:/usr/bin:/bin", self.s("rt"), self.s("host"))
    }

    /// Run `program` with a clean environment plus `env`.
    fn run(&self, program: &str, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut cmd = Command::new(program);
        cmd.args(args)
            .env_clear()
            .env("PATH", self.path_var())
            .env("RECORD_DIR", self.p("rec"));
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.output().unwrap()
    }

    fn recorded_argv(&self, name: &str) -> Vec<String> {
        let bytes = std::fs::read(self.p("rec").join(format!("{name}.argv")))
            .unwrap_or_else(|e| panic!("{name} was not run: {e}"));
        let mut args: Vec<String> = bytes
            .split(|&b| b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        args.pop(); // after the last NUL
        args
    }

    fn recorded_env(&self, name: &str) -> HashMap<String, String> {
        let bytes = std::fs::read(self.p("rec").join(format!("{name}.env"))).unwrap();
        bytes
            .split(|&b| b == 0)
            .filter_map(|kv| {
                let kv = String::from_utf8_lossy(kv);
                kv.split_once('=').map(|(k, v)| (k.to_string(), v.to_string()))
            })
            .collect()
    }
}

fn ok(out: &Output) {
    assert!(
        out.status.success(),
        "status {:?}, stderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Exactly one `launcher: …` line (plus at most one hint line), exit `code`.
fn assert_error(out: &Output, code: i32, needle: &str) {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(code), "stderr: {err}");
    let lines: Vec<&str> = err.lines().collect();
    assert!(!lines.is_empty() && lines.len() <= 2, "one line (+hint): {err}");
    assert!(
        lines[0].starts_with("launcher: ") && lines[0].contains(needle),
        "{needle:?} not in {err}"
    );
    assert!(!err.contains("panicked") && !err.contains("RUST_BACKTRACE"), "{err}");
}

#[test]
fn command_mode_exact_runtime_command_l14() {
    let t = Tree::new("");
    let link = t.s("scripts/e.d/bin/python3");
    ok(&t.run(&link, &["-c", "print(1)"], &[]));
    assert_eq!(
        t.recorded_argv("apptainer"),
        vec![
            t.s("rt/apptainer"),
            "-s".into(),
            "exec".into(),
            "--bind".into(),
            "/etc".into(),
            format!("--overlay={}:ro", t.s("scripts/../envs/e-1.sqsh")),
            t.s("scripts/../base.sandbox"),
            link,
            "-c".into(),
            "print(1)".into(),
        ]
    );
    let env = t.recorded_env("apptainer");
    assert_eq!(env["APPTAINERENV_LAUNCHER_DEPTH"], "1");
    assert!(!env.contains_key("LAUNCHER_DEPTH"), "only the prefixed counter (L13)");
    assert_eq!(
        env["APPTAINERENV_PREPEND_PATH"],
        format!("{}:{}", t.s("opt/conda/e-1/bin"), t.s("host"))
    );
    assert_eq!(env["APPTAINERENV_CONDA_BASE"], t.s("scripts/../envs/e-1"));
}

#[test]
fn direct_mode_runs_bare_command_l3() {
    let t = Tree::new("");
    ok(&t.run(&t.s("scripts/e-1.d/bin/launcher"), &["bash", "-c", "echo hi"], &[]));
    let argv = t.recorded_argv("apptainer");
    assert_eq!(argv[argv.len() - 3..], ["bash", "-c", "echo hi"]);
    ok(&t.run(&t.s("scripts/launcher"), &["--env", "e", "bash"], &[]));
    let argv = t.recorded_argv("apptainer");
    assert!(
        argv.contains(&format!("--overlay={}:ro", t.s("scripts/../envs/e-1.sqsh"))),
        "{argv:?}"
    );
}

#[test]
fn alias_dir_resolves_env_l2() {
    let t = Tree::new("");
    ok(&t.run(&t.s("scripts/e.d/bin/python3"), &[], &[]));
    assert!(t
        .recorded_argv("apptainer")
        .contains(&format!("--overlay={}:ro", t.s("scripts/../envs/e-1.sqsh"))));
}

#[test]
fn venv_chain_l2() {
    let t = Tree::new("");
    std::fs::create_dir_all(t.p("venv/bin")).unwrap();
    symlink(t.p("scripts/e.d/bin/python3"), t.p("venv/bin/python")).unwrap();
    ok(&t.run(&t.s("venv/bin/python"), &["x"], &[]));
    let argv = t.recorded_argv("apptainer");
    assert_eq!(argv[argv.len() - 2..], [t.s("venv/bin/python"), "x".into()]);
    assert!(argv.contains(&format!("--overlay={}:ro", t.s("scripts/../envs/e-1.sqsh"))));
}

#[test]
fn shebang_line_l1() {
    let t = Tree::new("");
    let script = t.p("job.py");
    write_exe(&script, &format!("#!{}\nprint('hi')\n", t.s("scripts/e.d/bin/python3")));
    ok(&t.run(&script.display().to_string(), &["arg"], &[]));
    let argv = t.recorded_argv("apptainer");
    assert_eq!(
        argv[argv.len() - 3..],
        [
            t.s("scripts/e.d/bin/python3"),
            script.display().to_string(),
            "arg".into()
        ]
    );
    // #!/usr/bin/env python3 with the scripts bin on PATH.
    write_exe(&script, "#!/usr/bin/env python3\nprint('hi')\n");
    let path = format!("{}:{}", t.s("scripts/e.d/bin"), t.path_var());
    ok(&t.run(&script.display().to_string(), &[], &[("PATH", &path)]));
    let argv = t.recorded_argv("apptainer");
    assert_eq!(
        argv[argv.len() - 2..],
        [t.s("scripts/e.d/bin/python3"), script.display().to_string()]
    );
}

#[test]
fn path_lookup_and_exec_a_l1() {
    let t = Tree::new("");
    let path = format!("{}:{}", t.s("scripts/e.d/bin"), t.path_var());
    // sh looks python3 up on PATH and execs it with argv[0] = "python3".
    ok(&t.run("/bin/sh", &["-c", "exec python3 -V"], &[("PATH", &path)]));
    let argv = t.recorded_argv("apptainer");
    assert_eq!(argv[argv.len() - 2..], [t.s("scripts/e.d/bin/python3"), "-V".into()]);
    // exec -a othername: argv[0] is no PATH name; AT_EXECFN is used.
    ok(&t.run(
        "/bin/bash",
        &[
            "-c",
            &format!("exec -a othername {} -V", t.s("scripts/e.d/bin/python3")),
        ],
        &[],
    ));
    let argv = t.recorded_argv("apptainer");
    assert_eq!(argv[argv.len() - 2..], [t.s("scripts/e.d/bin/python3"), "-V".into()]);
}

#[test]
fn both_flavours_l10() {
    let t = Tree::new("");
    // Apptainer layout: singularity -> apptainer; found as `singularity` too.
    ok(&t.run(
        &t.s("scripts/e.d/bin/python3"),
        &["-V"],
        &[("PATH", &format!("{}:/usr/bin", t.s("rt")))],
    ));
    assert!(t.recorded_env("apptainer").contains_key("APPTAINERENV_PREPEND_PATH"));
    // SingularityCE layout.
    ok(&t.run(
        &t.s("scripts/e.d/bin/python3"),
        &[],
        &[("PATH", &format!("{}:/usr/bin", t.s("ce")))],
    ));
    let env = t.recorded_env("singularity");
    assert!(env.contains_key("SINGULARITYENV_PREPEND_PATH"), "{env:?}");
    assert!(!env.contains_key("APPTAINERENV_PREPEND_PATH"));
}

#[test]
fn container_overlay_path_merging_l11() {
    let t = Tree::new("");
    ok(&t.run(
        &t.s("scripts/e.d/bin/python3"),
        &[],
        &[("CONTAINER_OVERLAY_PATH", "/x/a.sqsh::/x/b c.sqsh:")],
    ));
    let overlays: Vec<String> = t
        .recorded_argv("apptainer")
        .into_iter()
        .filter(|a| a.starts_with("--overlay"))
        .collect();
    assert_eq!(
        overlays,
        vec![
            format!("--overlay={}:ro", t.s("scripts/../envs/e-1.sqsh")),
            "--overlay=/x/a.sqsh:ro".into(),
            "--overlay=/x/b c.sqsh:ro".into()
        ]
    );
}

#[test]
fn overlays_all_l15() {
    let t = Tree::new("[commands.jupyter]\noverlays = \"all\"\n");
    ok(&t.run(&t.s("scripts/e.d/bin/jupyter"), &["lab"], &[]));
    let overlays: Vec<String> = t
        .recorded_argv("apptainer")
        .into_iter()
        .filter(|a| a.starts_with("--overlay"))
        .collect();
    let img = |n: &str| format!("--overlay={}:ro", t.s(&format!("scripts/../envs/{n}")));
    assert_eq!(overlays, vec![img("aa.sqsh"), img("zz.sqsh"), img("e-1.sqsh")]);
}

#[test]
fn per_command_env_l15() {
    let t = Tree::new("[commands.mpicc]\nenv = { WRAPPER_MPI_DIST_OVERRIDE = \"ompi3\" }\n[container.env]\nPYTHONNOUSERSITE = \"x\"\n");
    ok(&t.run(&t.s("scripts/e.d/bin/mpicc"), &[], &[]));
    let env = t.recorded_env("apptainer");
    assert_eq!(env["WRAPPER_MPI_DIST_OVERRIDE"], "ompi3");
    assert_eq!(env["APPTAINERENV_PYTHONNOUSERSITE"], "x");
}

#[test]
fn override_script_calls_launcher_back_l15() {
    let t = Tree::new("");
    write_exe(
        &t.p("scripts/overrides/qsub.sh"),
        "#!/bin/sh\nexec \"$LAUNCHER_BIN\" --no-default-overlay --overlay-path \"$LAUNCHER_IMAGE\" \"$LAUNCHER_COMMAND\" --wrapped \"$@\"\n",
    );
    ok(&t.run(&t.s("scripts/e.d/bin/qsub"), &["job.sh"], &[]));
    let argv = t.recorded_argv("apptainer");
    assert_eq!(argv[argv.len() - 3..], ["qsub", "--wrapped", "job.sh"]);
    assert_eq!(
        t.recorded_env("apptainer")["APPTAINERENV_LAUNCHER_DEPTH"],
        "2",
        "script hop counted"
    );
}

#[test]
fn host_command_l8() {
    let t = Tree::new("[commands.ssh]\nhost = true\n");
    let path = format!("{}:{}", t.s("scripts/e.d/bin"), t.path_var());
    ok(&t.run(&t.s("scripts/e.d/bin/ssh"), &["node1", "hostname"], &[("PATH", &path)]));
    assert_eq!(t.recorded_argv("ssh"), vec!["ssh", "node1", "hostname"]);
    assert!(!t.p("rec/apptainer.argv").exists(), "never through the runtime");
}

#[test]
fn pbs_tmrsh_rewriting_l16() {
    let t = Tree::new("[commands.pbs_tmrsh]\nbuiltin = \"pbs_tmrsh\"\n");
    let path = format!("{}:{}", t.s("scripts/e.d/bin"), t.path_var());
    let launcher = t.s("scripts/e-1.d/bin/launcher");
    for user in [vec!["-l", "user"], vec!["-luser"]] {
        let mut args: Vec<&str> = user.clone();
        args.extend(["node2", "python3", "a b"]);
        ok(&t.run(
            &t.s("scripts/e.d/bin/pbs_tmrsh"),
            &args,
            &[("PATH", &path), ("CONTAINER_OVERLAY_PATH", "/o.sqsh")],
        ));
        let mut want: Vec<String> = vec!["pbs_tmrsh".into()];
        want.extend(user.iter().map(|s| s.to_string()));
        want.extend([
            "node2".into(),
            launcher.clone(),
            "--runtime".into(),
            t.s("rt/apptainer"),
            "--launcher".into(),
            launcher.clone(),
            "--overlay-path".into(),
            "/o.sqsh".into(),
            "--path".into(),
            path.clone(),
            "--".into(),
            "python3".into(),
            "a b".into(),
        ]);
        assert_eq!(t.recorded_argv("pbs_tmrsh"), want);
    }
}

#[test]
fn inside_execs_program_with_argv0_and_no_depth_l6() {
    let t = Tree::new("");
    std::fs::create_dir_all(t.p("marker")).unwrap();
    let link = t.s("scripts/e.d/bin/python3");
    ok(&t.run(&link, &["-V"], &[("LAUNCHER_DEPTH", "1")]));
    assert_eq!(t.recorded_argv("python3"), vec![link, "-V".into()]);
    assert!(!t.recorded_env("python3").contains_key("LAUNCHER_DEPTH"));
}

#[test]
fn arguments_byte_for_byte_l20() {
    let t = Tree::new("");
    let weird = OsString::from_vec(vec![b'a', 0xff, b'\n', b' ', b'$', b'*', b'"', b'\'']);
    let out = Command::new(t.p("scripts/e.d/bin/python3"))
        .arg(&weird)
        .arg("")
        .env_clear()
        .env("PATH", t.path_var())
        .env("RECORD_DIR", t.p("rec"))
        .output()
        .unwrap();
    ok(&out);
    let bytes = std::fs::read(t.p("rec/apptainer.argv")).unwrap();
    let mut want = weird.as_bytes().to_vec();
    want.extend_from_slice(b"\0\0");
    assert!(bytes.ends_with(&want), "{bytes:?}");
}

#[test]
fn default_sigpipe_in_child_l22() {
    let t = Tree::new("");
    std::fs::create_dir_all(t.p("marker")).unwrap();
    symlink("/usr/bin/yes", t.p("opt/conda/e-1/bin/yes")).unwrap();
    symlink("../../launcher", t.p("scripts/e-1.d/bin/yes")).unwrap();
    let script = format!("{} | head -1; echo \"${{PIPESTATUS[0]}}\"", t.s("scripts/e.d/bin/yes"));
    let out = t.run("/bin/bash", &["-c", &script], &[]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "y\n141\n",
        "yes must die of SIGPIPE (128+13): {}",
        stderr(&out)
    );
}

#[test]
fn dry_run_prints_pasteable_command_l17() {
    let t = Tree::new("");
    let out = t.run(
        &t.s("scripts/e.d/bin/launcher"),
        &["--dry-run", "printf", "%s|", "a b", "it's"],
        &[],
    );
    ok(&out);
    let line = String::from_utf8_lossy(&out.stdout).trim_end().to_string();
    assert!(!t.p("rec/apptainer.argv").exists(), "dry run runs nothing");
    // Paste it into a shell: the recorder receives exactly the planned argv.
    ok(&t.run("/bin/sh", &["-c", &line], &[]));
    let argv = t.recorded_argv("apptainer");
    assert_eq!(argv[argv.len() - 4..], ["printf", "%s|", "a b", "it's"]);
    assert_eq!(t.recorded_env("apptainer")["APPTAINERENV_LAUNCHER_DEPTH"], "1");
    // The environment variable form, and debug output on stderr.
    let out = t.run(
        &t.s("scripts/e.d/bin/python3"),
        &[],
        &[("LAUNCHER_DRY_RUN", "1"), ("LAUNCHER_DEBUG", "1")],
    );
    ok(&out);
    assert!(
        stderr(&out).contains("launcher: debug: outside the container"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn errors_have_one_line_and_documented_codes_l18() {
    let t = Tree::new("");
    let link = t.s("scripts/e.d/bin/python3");
    // Missing image.
    std::fs::rename(t.p("envs/e-1.sqsh"), t.p("envs/moved")).unwrap();
    assert_error(&t.run(&link, &[], &[]), 125, "e-1.sqsh");
    std::fs::rename(t.p("envs/moved"), t.p("envs/e-1.sqsh")).unwrap();
    // No runtime.
    assert_error(
        &t.run(&link, &[], &[("PATH", "/nonexistent")]),
        125,
        "no container runtime",
    );
    // Missing config.
    std::fs::rename(t.p("scripts/launcher.toml"), t.p("scripts/moved.toml")).unwrap();
    assert_error(&t.run(&link, &[], &[]), 125, "launcher.toml");
    std::fs::rename(t.p("scripts/moved.toml"), t.p("scripts/launcher.toml")).unwrap();
    // Syntax error and unknown key, with line and column.
    std::fs::write(t.p("scripts/launcher.toml"), "[runtime\n").unwrap();
    assert_error(&t.run(&link, &[], &[]), 125, "launcher.toml:1:");
    t.config("flavor = \"auto\"\n");
    assert_error(
        &t.run(&link, &[], &[]),
        125,
        "launcher.toml:8:1: unknown field `flavor`",
    );
    t.config("");
    // World-writable config.
    std::fs::set_permissions(t.p("scripts/launcher.toml"), std::fs::Permissions::from_mode(0o666)).unwrap();
    assert_error(&t.run(&link, &[], &[]), 125, "writable by others");
    std::fs::set_permissions(t.p("scripts/launcher.toml"), std::fs::Permissions::from_mode(0o644)).unwrap();
    // Missing base image.
    std::fs::rename(t.p("base.sandbox"), t.p("base.moved")).unwrap();
    assert_error(&t.run(&link, &[], &[]), 125, "base image");
    std::fs::rename(t.p("base.moved"), t.p("base.sandbox")).unwrap();
    // Recursion.
    assert_error(&t.run(&link, &[], &[("LAUNCHER_DEPTH", "3")]), 125, "re-entered");
    // Inside: unknown command (127), not executable (126).
    std::fs::create_dir_all(t.p("marker")).unwrap();
    assert_error(&t.run(&t.s("scripts/e.d/bin/nosuch"), &[], &[]), 127, "nosuch");
    assert_error(&t.run(&t.s("scripts/e.d/bin/data"), &[], &[]), 126, "data");
    assert_error(
        &t.run(&t.s("scripts/e.d/bin/launcher"), &["no-such-command"], &[]),
        127,
        "no-such-command",
    );
    // Usage: no command, unknown flag.
    let out = t.run(&t.s("scripts/e.d/bin/launcher"), &[], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).starts_with("usage:"));
    assert_error(
        &t.run(&t.s("scripts/e.d/bin/launcher"), &["--bogus"], &[]),
        2,
        "--bogus",
    );
    // Not a link in an env dir at all.
    let stray = t.p("stray");
    symlink(t.p("scripts/launcher"), &stray).unwrap();
    assert_error(
        &t.run(&stray.display().to_string(), &[], &[]),
        125,
        "cannot work out the environment",
    );
}

/// L18, issue 10: a program that is there but whose `#!` interpreter is not
/// is "cannot run X: its interpreter Y was not found", 126 (it exists but
/// cannot be executed; bash says "bad interpreter", 126), with the `#!` line
/// in the hint; not "command not found". Inside (the env's program) and
/// outside (an override script).
#[test]
fn missing_interpreter_is_named_not_command_not_found_l18() {
    let t = Tree::new("");
    for (name, text) in [
        ("badinterp", "#!/nonexistent/python9 -u\nprint(1)\n"),
        ("dosline", "#!/bin/sh\r\necho hi\r\n"),
    ] {
        symlink("../../launcher", t.p("scripts/e-1.d/bin").join(name)).unwrap();
        write_exe(&t.p("opt/conda/e-1/bin").join(name), text);
    }
    std::fs::create_dir_all(t.p("marker")).unwrap();
    let program = t.s("opt/conda/e-1/bin/badinterp");
    let out = t.run(&t.s("scripts/e.d/bin/badinterp"), &[], &[]);
    assert_error(
        &out,
        126,
        &format!("cannot run {program}: its interpreter /nonexistent/python9 was not found"),
    );
    assert!(
        stderr(&out)
            .lines()
            .nth(1)
            .is_some_and(|l| l.contains("#!/nonexistent/python9 -u")),
        "{}",
        stderr(&out)
    );
    assert_error(
        &t.run(&t.s("scripts/e.d/bin/dosline"), &[], &[]),
        126,
        "its interpreter /bin/sh\\r was not found (the #! line ends with a DOS carriage return)",
    );
    // A program that is really missing is still 127.
    std::fs::remove_file(&program).unwrap();
    assert_error(&t.run(&t.s("scripts/e.d/bin/badinterp"), &[], &[]), 127, "badinterp");
    // Outside: an override script whose interpreter is missing.
    std::fs::remove_dir(t.p("marker")).unwrap();
    write_exe(&t.p("scripts/overrides/qsub.sh"), "#!/nonexistent/bash\nexit 0\n");
    assert_error(
        &t.run(&t.s("scripts/e.d/bin/qsub"), &[], &[]),
        126,
        "qsub.sh: its interpreter /nonexistent/bash was not found",
    );
}

/// The release launcher of this build: a test runs from
/// `<target>/<triple>/<profile>/deps/`, and `cargo build --release -p
/// launcher` puts it in `<target>/<triple>/release/`, whatever the host
/// triple and `CARGO_TARGET_DIR` (issue 10: no triple spelled anywhere).
fn release_launcher() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let triple_dir = exe
        .parent()
        .and_then(Path::parent)
        .and_then(Path::parent)
        .expect("a test binary lives in <triple>/<profile>/deps/");
    triple_dir.join("release/launcher")
}

/// L23: the release binary is static. CI builds it before the tests run.
#[test]
fn release_binary_is_static_l23() {
    let binary = release_launcher();
    if !binary.exists() {
        if std::env::var_os("LAUNCHER_E2E_REQUIRED").is_some() {
            panic!("{} missing: CI must build the release binary first", binary.display());
        }
        eprintln!(
            "SKIP release_binary_is_static_l23: no release build at {} (run cargo build --release)",
            binary.display()
        );
        return;
    }
    let out = Command::new("readelf")
        .arg("-d")
        .arg(&binary)
        .output()
        .expect("readelf (binutils) is needed");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!text.contains("(NEEDED)"), "dynamic dependencies:\n{text}");
}
