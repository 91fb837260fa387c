//! Python like a normal install (issue 11; docs/python.md): scenarios
//! E16–E23 through the real launcher and the stand-in runtime (or the
//! native runtime, `LAUNCHER_TEST_NATIVE=1`), with the bed's conda-like
//! main env (`support/conda_env.rs`): a Python with its own stdlib at
//! `/opt/conda/<env>`, env-only packages (`envpkg`, the C extension
//! `envext`), conda-style entry points, pip and ipykernel.
//!
//! Run them alone with `cargo test --test python_env`.

mod support;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use support::bed::Bed;
use support::conda_env::{self, EXTENSION, PURE};
use support::images::{CONTAINER_PREFIX, MAIN_ALIAS, MAIN_ENV, SECOND_ENV};
use support::run::{run, Outcome};

/// `/opt/conda/<env>`
fn prefix() -> String {
    format!("{CONTAINER_PREFIX}/{MAIN_ENV}")
}

/// The env's interpreter file (`python3` and `python` link to it).
fn real_python() -> String {
    format!("{}/bin/{}", prefix(), conda_env::INTERPRETER)
}

/// The env's site dir, where its packages are.
fn site_dir() -> String {
    format!("{}/{}", prefix(), conda_env::SITE_DIR)
}

/// Prints: sys.executable, sys.prefix, sys.exec_prefix, sys.base_prefix,
/// the binary really running, inside or not.
const PY_IDENTITY: &str = "import os, sys\n\
    print(sys.executable)\n\
    print(sys.prefix)\n\
    print(sys.exec_prefix)\n\
    print(sys.base_prefix)\n\
    print(os.readlink('/proc/self/exe'))\n\
    print('inside' if os.path.isdir('/.singularity.d') else 'outside')\n";

#[track_caller]
fn lines(outcome: &Outcome) -> Vec<String> {
    outcome.assert_success();
    outcome.stdout_lines()
}

#[test]
fn e16_sys_executable_is_the_scripts_path_and_sys_prefix_the_envs() {
    let Some(bed) = Bed::for_test("e16_sys_executable_is_the_scripts_path_and_sys_prefix_the_envs") else {
        return;
    };
    // Every interpreter name, and through the alias.
    for link in [
        bed.link(MAIN_ENV, "python3"),
        bed.link(MAIN_ENV, "python"),
        bed.link(MAIN_ENV, conda_env::INTERPRETER),
        bed.link(MAIN_ALIAS, "python3"),
    ] {
        let outcome = run(bed.command(&link).args(["-c", PY_IDENTITY]));
        assert_eq!(
            lines(&outcome),
            [
                link.display().to_string(),
                prefix(),
                prefix(),
                prefix(),
                real_python(),
                "inside".into()
            ],
            "{}: {outcome:#?}",
            link.display()
        );
    }
    // The env's site dir is on sys.path, the host's is not.
    let outcome = run(bed
        .command(bed.link(MAIN_ENV, "python3"))
        .args(["-c", "import sys; print('\\n'.join(sys.path))"]));
    let path = lines(&outcome);
    assert!(path.contains(&site_dir()), "{path:?}");
    assert!(
        !path.iter().any(|p| p.starts_with("/usr/lib/python3")),
        "the host's Python dirs leak in: {path:?}"
    );
}

#[test]
fn e17_env_only_packages_import_and_pip_lists_them() {
    let Some(bed) = Bed::for_test("e17_env_only_packages_import_and_pip_lists_them") else {
        return;
    };
    let python = bed.link(MAIN_ENV, "python3");
    let outcome = run(bed.command(&python).args([
        "-c",
        "import envpkg, envext, ipykernel\n\
         print(envpkg.__version__, envpkg.__file__)\n\
         print(envext.__version__, envext.add(40, 2), envext.__file__)\n\
         print(envpkg.where())\n",
    ]));
    let out = lines(&outcome);
    assert_eq!(
        out[0],
        format!("{} {}/envpkg/__init__.py", PURE.version, site_dir()),
        "{outcome:#?}"
    );
    assert!(
        out[1].starts_with(&format!("{} 42 {}/envext.cpython-311-", EXTENSION.version, site_dir())),
        "{outcome:#?}"
    );
    assert_eq!(out[2], prefix());

    // Only the env has them: the host's Python does not.
    let outcome = run(bed.command("/usr/bin/python3").args(["-c", "import envpkg"]));
    assert_ne!(outcome.code(), Some(0), "envpkg must be env-only: {outcome:#?}");

    // pip, run by the env's Python through the link, lists the env's
    // distributions (from their .dist-info), not the host's.
    let outcome = run(bed
        .command(&python)
        .args(["-m", "pip", "list", "--format=freeze"])
        .env("PIP_DISABLE_PIP_VERSION_CHECK", "1"));
    let listed = lines(&outcome);
    for wanted in [
        format!("{}=={}", PURE.name, PURE.version),
        format!("{}=={}", EXTENSION.name, EXTENSION.version),
    ] {
        assert!(listed.contains(&wanted), "{wanted} missing in {listed:?}");
    }
    assert!(listed.iter().any(|l| l.starts_with("ipykernel==")), "{listed:?}");
    let outcome = run(bed
        .command(&python)
        .args(["-m", "pip", "show", "-f", PURE.name])
        .env("PIP_DISABLE_PIP_VERSION_CHECK", "1"));
    let shown = lines(&outcome);
    for wanted in [
        format!("Location: {}", site_dir()),
        format!("Version: {}", PURE.version),
        "  ../../../bin/envpkg-info".to_string(),
        "  envpkg/cli.py".to_string(),
    ] {
        assert!(shown.contains(&wanted), "{wanted:?} missing in {shown:#?}");
    }
}

#[test]
fn e18_entry_point_script_runs_through_its_farm_link() {
    let Some(bed) = Bed::for_test("e18_entry_point_script_runs_through_its_farm_link") else {
        return;
    };
    // The script is conda's: `#!<prefix>/bin/python3.11`.
    let outcome = run(bed.command(bed.link(MAIN_ENV, "python3")).args([
        "-c",
        &format!("print(open('{}/bin/envpkg-info').readline(), end='')", prefix()),
    ]));
    assert_eq!(lines(&outcome), [format!("#!{}", real_python())]);

    for env in [MAIN_ENV, MAIN_ALIAS] {
        let link = bed.link(env, "envpkg-info");
        let outcome = run(bed.command(&link));
        assert_eq!(
            lines(&outcome),
            [
                format!("envpkg {} envext {} 42", PURE.version, EXTENSION.version),
                format!("prefix {}", prefix()),
                format!("executable {}", real_python()),
                format!("argv0 {}/bin/envpkg-info", prefix()),
                "inside".into(),
            ],
            "{}: {outcome:#?}",
            link.display()
        );
    }
    // pip's own entry point too.
    let outcome = run(bed.command(bed.link(MAIN_ENV, "pip3")).arg("--version"));
    let out = lines(&outcome);
    assert!(out[0].contains(&format!("from {}/pip ", site_dir())), "{out:?}");
}

/// A program the env's Python runs as a file (spawn needs an importable
/// `__main__`): a `subprocess` child and two `spawn` workers report who
/// they are.
const SPAWN_PROGRAM: &str = r#"import multiprocessing, os, subprocess, sys

IDENT = "import os, sys; print(sys.executable, sys.prefix, os.readlink('/proc/self/exe'))"


def work(x):
    import envext
    return f"{envext.add(x, 1)} {sys.executable} {sys.prefix} {os.readlink('/proc/self/exe')}"


if __name__ == "__main__":
    child = subprocess.run([sys.executable, "-c", IDENT + "; import envpkg"], capture_output=True, text=True)
    print("subprocess", child.returncode, child.stdout.strip(), child.stderr.strip())
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(2) as pool:
        for line in pool.map(work, [1, 2]):
            print("spawn", line)
"#;

#[test]
fn e19_subprocess_and_spawn_children_run_sys_executable_inside() {
    let Some(bed) = Bed::for_test("e19_subprocess_and_spawn_children_run_sys_executable_inside") else {
        return;
    };
    fs::write(bed.work.join("spawner.py"), SPAWN_PROGRAM).unwrap();
    let python = bed.link(MAIN_ENV, "python3");
    let outcome = run(bed.command(&python).arg("spawner.py"));
    let me = format!("{} {} {}", python.display(), prefix(), real_python());
    assert_eq!(
        lines(&outcome),
        [
            format!("subprocess 0 {me} "),
            format!("spawn 2 {me}"),
            format!("spawn 3 {me}"),
        ],
        "{outcome:#?}"
    );
}

#[test]
fn e20_job_script_written_with_sys_executable_runs_from_the_host() {
    let Some(bed) = Bed::for_test("e20_job_script_written_with_sys_executable_runs_from_the_host") else {
        return;
    };
    // As dask-jobqueue writes a worker's job script: `{sys.executable} -m …`;
    // and a `#!{sys.executable}` script.
    let writer = "import os, sys\n\
        check = \"import envpkg, os, sys; print(envpkg.__version__, sys.prefix, sys.executable, \
        'inside' if os.path.isdir('/.singularity.d') else 'outside')\"\n\
        with open('job.sh', 'w') as f:\n\
        \x20   f.write(f'#!/bin/sh\\nexec {sys.executable} -c \"{check}\"\\n')\n\
        with open('job.py', 'w') as f:\n\
        \x20   f.write(f'#!{sys.executable}\\n{check}\\n')\n\
        os.chmod('job.py', 0o755)\n";
    let python = bed.link(MAIN_ENV, "python3");
    lines(&run(bed.command(&python).args(["-c", writer])));
    let job = fs::read_to_string(bed.work.join("job.sh")).unwrap();
    assert!(
        job.contains(&format!("exec {} -c", python.display())),
        "the job names the host-valid scripts path: {job}"
    );
    let expected = format!("{} {} {} inside", PURE.version, prefix(), python.display());
    // Later, on a node: no module loaded (no scripts dir on PATH, no
    // CONTAINER_OVERLAY_PATH), an empty environment as a batch system gives.
    let mut by_shell = bed.command("/bin/sh");
    by_shell.arg(bed.work.join("job.sh"));
    for mut job in [by_shell, bed.command(bed.work.join("job.py"))] {
        job.env_clear().env("PATH", "/usr/bin:/bin");
        let outcome = run(job);
        assert_eq!(lines(&outcome), std::slice::from_ref(&expected), "{outcome:#?}");
    }
}

/// `python3 -m venv --system-site-packages V` through the link, a module
/// of V's own in V's site dir, then `V/bin/python` importing it and the
/// env's `envpkg`. Returns V and that run.
fn venv_on_top(bed: &Bed) -> (std::path::PathBuf, Outcome) {
    let venv = bed.work.join("V");
    lines(&run(bed
        .command(bed.link(MAIN_ENV, "python3"))
        .args(["-m", "venv", "--system-site-packages", "--without-pip"])
        .arg(&venv)));
    let vpython = venv.join("bin/python");
    let outcome = run(bed
        .command(&vpython)
        .args(["-c", "import sysconfig; print(sysconfig.get_path('purelib'))"]));
    let purelib = lines(&outcome)[0].clone();
    assert!(Path::new(&purelib).starts_with(&venv), "V's site dir is V's: {purelib}");
    fs::write(Path::new(&purelib).join("vonly.py"), "WHERE = 'V'\n").unwrap();
    let outcome = run(bed.command(&vpython).args([
        "-c",
        "import os, sys\n\
         print(sys.prefix)\n\
         print(sys.executable)\n\
         print('inside' if os.path.isdir('/.singularity.d') else 'outside')\n\
         import vonly\n\
         print(vonly.WHERE)\n\
         print(sys.base_prefix, file=sys.stderr)\n\
         import envpkg\n\
         print(envpkg.__version__)\n",
    ]));
    (venv, outcome)
}

#[test]
fn e21_venv_on_top_of_the_env_has_its_own_prefix_and_packages() {
    let Some(bed) = Bed::for_test("e21_venv_on_top_of_the_env_has_its_own_prefix_and_packages") else {
        return;
    };
    let (venv, outcome) = venv_on_top(&bed);
    // sys.prefix = V, and V's own package: CPython's pyvenv.cfg rule.
    assert_eq!(
        outcome.stdout_lines().get(..4),
        Some(
            &[
                venv.display().to_string(),
                venv.join("bin/python").display().to_string(),
                "inside".into(),
                "V".into()
            ][..]
        ),
        "{outcome:#?}"
    );
}

/// The env's packages from V need V's *base* to be the env. CPython finds a
/// venv's base by searching for `lib/python3.11/os.py` from pyvenv.cfg's
/// `home` — the scripts bin — without resolving links (see
/// `cpython_rule_a_venvs_base_is_searched_from_home_without_resolving_links`),
/// so with the scripts tree as it is (no `<env>.d/lib`) a relocated Python
/// falls back to its compiled-in prefix (`/usr` for this Debian one; a
/// conda Python's is the env's). Waits on the farm (docs/python.md, "venvs").
#[test]
fn e21_venv_on_top_of_the_env_sees_the_envs_packages() {
    let Some(bed) = Bed::for_test("e21_venv_on_top_of_the_env_sees_the_envs_packages") else {
        return;
    };
    let (_, outcome) = venv_on_top(&bed);
    outcome.assert_success();
    assert_eq!(
        outcome.stdout_lines().get(4),
        Some(&PURE.version.to_string()),
        "{outcome:#?}"
    );
}

/// Not an E-scenario: the CPython 3.11 rule the venv case depends on, shown
/// with Debian's interpreter in a temp dir (no container). A relocated
/// Python run through a link finds its prefix from the resolved file; a venv
/// made through that link records the link's directory as `home`, and V's
/// base is searched upwards from `home` as written, links not resolved: it
/// is found only when `<home>/../lib/python3.11/os.py` exists, else the
/// compiled-in prefix (`/usr`) is used.
#[test]
fn cpython_rule_a_venvs_base_is_searched_from_home_without_resolving_links() {
    if !support::prereq::allowed(
        "cpython_rule_a_venvs_base_is_searched_from_home_without_resolving_links",
        conda_env::missing(),
    ) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    // The env: the interpreter (a file of its own) and its stdlib (a link).
    let env = root.join("env");
    fs::create_dir_all(env.join("bin")).unwrap();
    fs::create_dir_all(env.join("lib/python3/dist-packages")).unwrap();
    support::files::copy_executable(Path::new(conda_env::SYSTEM_INTERPRETER), &env.join("bin/python3.11")).unwrap();
    std::os::unix::fs::symlink(conda_env::SYSTEM_STDLIB, env.join("lib/python3.11")).unwrap();
    fs::write(env.join("lib/python3/dist-packages/envonly.py"), "").unwrap();
    // The scripts bin as `.inside` makes it inside a container.
    let bin = root.join("scripts/e.d/bin");
    fs::create_dir_all(&bin).unwrap();
    std::os::unix::fs::symlink(env.join("bin/python3.11"), bin.join("python3")).unwrap();
    let python = |program: &Path, code: &str| {
        let outcome = run(Command::new(program)
            .args(["-c", code])
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .current_dir(root));
        lines(&outcome)
    };
    let ident = "import sys; print(sys.executable); print(sys.prefix); print(sys.base_prefix)";
    assert_eq!(
        python(&bin.join("python3"), ident),
        [
            bin.join("python3").display().to_string(),
            env.display().to_string(),
            env.display().to_string()
        ]
    );
    let venv = root.join("V");
    lines(&run(Command::new(bin.join("python3"))
        .args(["-m", "venv", "--system-site-packages", "--without-pip"])
        .arg(&venv)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")));
    let cfg = fs::read_to_string(venv.join("pyvenv.cfg")).unwrap();
    assert!(cfg.lines().any(|l| l == format!("home = {}", bin.display())), "{cfg}");
    let probe = "import sys, importlib.util as u; print(sys.prefix); print(sys.base_prefix); \
                 print(u.find_spec('envonly') is not None)";
    let vpython = venv.join("bin/python");
    // `home` is searched as written: nothing there, the compiled-in prefix.
    assert_eq!(
        python(&vpython, probe),
        [venv.display().to_string(), "/usr".into(), "False".into()]
    );
    // With `<env>.d/lib` leading to the env's lib, the search from `home`
    // lands in the env: V sees the env's packages.
    std::os::unix::fs::symlink(env.join("lib"), root.join("scripts/e.d/lib")).unwrap();
    assert_eq!(
        python(&vpython, probe),
        [
            venv.display().to_string(),
            root.join("scripts/e.d").display().to_string(),
            "True".into()
        ]
    );
}

/// VS Code's `get_output_via_markers.py`, as its Python extension runs it
/// from `~/.vscode-server/extensions/ms-python.python-*/python_files/`.
const VSCODE_MARKERS: &str = r#"import runpy, sys
print(">>>PYTHON-EXEC-OUTPUT")
try:
    module = sys.argv[1]
    sys.argv = sys.argv[1:]
    runpy.run_path(module, run_name="__main__")
finally:
    print("<<<PYTHON-EXEC-OUTPUT")
"#;

/// What VS Code's `interpreterInfo.py` reports (one JSON line).
const VSCODE_INTERPRETER_INFO: &str = r#"import json, sys
obj = {}
obj["versionInfo"] = tuple(sys.version_info)
obj["sysPrefix"] = sys.prefix
obj["sysVersion"] = sys.version
obj["is64Bit"] = sys.maxsize > 2**32
obj["executable"] = sys.executable
print(json.dumps(obj))
"#;

#[test]
fn e22_ide_interpreter_discovery_through_the_farms_python3() {
    let Some(bed) = Bed::for_test("e22_ide_interpreter_discovery_through_the_farms_python3") else {
        return;
    };
    let python = bed.link(MAIN_ENV, "python3");
    // What Spyder's `is_python_interpreter` checks: a python-like name that
    // resolves to an executable binary, not a text (wrapper) script.
    let real = fs::canonicalize(&python).unwrap();
    let head = fs::read(&real).unwrap();
    assert_eq!(&head[..4], b"\x7fELF", "{} is an ELF executable", real.display());
    assert!(fs::metadata(&real).unwrap().permissions().mode() & 0o111 == 0o111);

    // VS Code's discovery: `python3 -I <markers> <interpreterInfo>` with the
    // helpers in $HOME, from $HOME.
    let files = bed
        .home
        .join(".vscode-server/extensions/ms-python.python-2024.2.1/python_files");
    fs::create_dir_all(&files).unwrap();
    fs::write(files.join("get_output_via_markers.py"), VSCODE_MARKERS).unwrap();
    fs::write(files.join("interpreterInfo.py"), VSCODE_INTERPRETER_INFO).unwrap();
    let outcome = run(bed
        .command(&python)
        .arg("-I")
        .arg(files.join("get_output_via_markers.py"))
        .arg(files.join("interpreterInfo.py"))
        .current_dir(&bed.home));
    let out = lines(&outcome);
    assert_eq!(out.len(), 3, "{outcome:#?}");
    assert_eq!(
        (out[0].as_str(), out[2].as_str()),
        (">>>PYTHON-EXEC-OUTPUT", "<<<PYTHON-EXEC-OUTPUT")
    );
    for wanted in [
        format!("\"sysPrefix\": \"{}\"", prefix()),
        format!("\"executable\": \"{}\"", python.display()),
        "\"versionInfo\": [3, 11,".to_string(),
        "\"is64Bit\": true".to_string(),
    ] {
        assert!(out[1].contains(&wanted), "{wanted} missing in {}", out[1]);
    }
    // The interpreter VS Code then records runs the user's code the same way.
    let outcome = run(bed
        .command(&python)
        .args(["-c", "import sys, envpkg; print(sys.executable, sys.prefix)"])
        .current_dir(&bed.home));
    assert_eq!(lines(&outcome), [format!("{} {}", python.display(), prefix())]);
}

/// The Jupyter side, with the host's `jupyter_client` (Debian's
/// python3-jupyter-client): every kernelspec of DIR is started, runs code,
/// and is shut down. One block of lines per kernel.
const JUPYTER_DRIVER: &str = r#"import sys
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import KernelManager

ksm = KernelSpecManager(kernel_dirs=[sys.argv[1]], ensure_native_kernel=False)
code = (
    "import os, sys, envpkg\n"
    "print(sys.prefix)\n"
    "print(sys.executable)\n"
    "print(envpkg.__version__)\n"
    "print(os.environ.get('KERNEL_ACTIVATION'))\n"
    "print('inside' if os.path.isdir('/.singularity.d') else 'outside')\n"
)
for name in sorted(ksm.find_kernel_specs()):
    spec = ksm.get_kernel_spec(name)
    km = KernelManager(kernel_name=name, kernel_spec_manager=ksm)
    km.start_kernel()
    kc = km.client()
    kc.start_channels()
    kc.wait_for_ready(timeout=90)
    out = []
    def hook(msg):
        if msg["msg_type"] == "stream":
            out.append(msg["content"]["text"])
    reply = kc.execute_interactive(code, timeout=60, output_hook=hook)
    kc.stop_channels()
    km.shutdown_kernel(now=False)
    print(f"kernel {name}|{spec.display_name}|{reply['content']['status']}|alive={km.is_alive()}")
    for line in "".join(out).splitlines():
        print(f"  {line}")
"#;

#[test]
fn e23_jupyter_kernels_of_each_env_and_alias_start_run_and_shut_down() {
    let Some(bed) = Bed::for_test("e23_jupyter_kernels_of_each_env_and_alias_start_run_and_shut_down") else {
        return;
    };
    let jupyter_ok = Command::new("/usr/bin/python3")
        .args(["-c", "import jupyter_client"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !support::prereq::allowed(
        "e23_jupyter_kernels_of_each_env_and_alias_start_run_and_shut_down",
        (!jupyter_ok)
            .then(|| "the host's /usr/bin/python3 has no jupyter_client (install python3-jupyter-client)".into()),
    ) {
        return;
    }
    // An activation variable, as `installer farm` records it (I7).
    let env_toml = bed.scripts.join(format!("{MAIN_ENV}.d/env.toml"));
    fs::write(&env_toml, "[env]\nKERNEL_ACTIVATION = \"from env.toml\"\n").unwrap();
    fs::set_permissions(&env_toml, fs::Permissions::from_mode(0o644)).unwrap();

    let kernels = bed.home.join("share/jupyter/kernels");
    let installer = support::binaries::installer().expect("installer binary");
    let outcome = run(bed
        .command(&installer)
        .arg("--scripts")
        .arg(&bed.scripts)
        .arg("kernels")
        .arg(&kernels));
    outcome.assert_success();
    let mut written: Vec<String> = fs::read_dir(&kernels)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    written.sort();
    // The second env has no python3: no kernel.
    assert_eq!(written, [MAIN_ALIAS, MAIN_ENV], "{outcome:#?}");
    assert!(!written.iter().any(|w| w == SECOND_ENV));
    let spec = fs::read_to_string(kernels.join(MAIN_ALIAS).join("kernel.json")).unwrap();
    assert!(
        spec.contains(&format!("\"{}\",", bed.link(MAIN_ALIAS, "python3").display())),
        "the alias's kernel runs the alias's link: {spec}"
    );

    let runtime_dir = bed.home.join("jupyter-runtime");
    let outcome = run(bed
        .command("/usr/bin/python3")
        .args(["-c", JUPYTER_DRIVER])
        .arg(&kernels)
        .env("JUPYTER_RUNTIME_DIR", &runtime_dir)
        .env("JUPYTER_CONFIG_DIR", bed.home.join(".jupyter"))
        .env("JUPYTER_DATA_DIR", bed.home.join("jupyter-data")));
    let body = |link: &Path| {
        [
            format!("  {}", prefix()),
            format!("  {}", link.display()),
            format!("  {}", PURE.version),
            "  from env.toml".to_string(),
            "  inside".to_string(),
        ]
    };
    let mut expected = vec![format!(
        "kernel {MAIN_ALIAS}|Python 3 ({MAIN_ALIAS}, now {MAIN_ENV})|ok|alive=False"
    )];
    expected.extend(body(&bed.link(MAIN_ALIAS, "python3")));
    expected.push(format!("kernel {MAIN_ENV}|Python 3 ({MAIN_ENV})|ok|alive=False"));
    expected.extend(body(&bed.link(MAIN_ENV, "python3")));
    assert_eq!(lines(&outcome), expected, "{outcome:#?}");
    // Shut down cleanly: the connection files are gone.
    let left: Vec<_> = fs::read_dir(&runtime_dir)
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "left in the runtime dir: {left:?}");
}
