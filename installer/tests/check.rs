//! `installer check` (I10): a correct installation passes; each kind of
//! damage is found, named, and fails the run with exit 1.
mod common;

use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::process::Output;

use common::*;

fn installed() -> Fixture {
    let f = Fixture::new();
    f.image(
        "e-1.0",
        &[
            Entry::File(b"python3"),
            Entry::File(b"pip"),
            Entry::Link(b"python", "python3"),
        ],
    );
    f.farm("e-1.0");
    f
}

fn check(f: &Fixture) -> Output {
    f.installer().arg("check").output().unwrap()
}

fn assert_problem(out: &Output, needle: &str) {
    let text = stdout(out);
    assert_eq!(out.status.code(), Some(1), "check must fail:\n{text}{}", stderr(out));
    assert!(
        text.lines().any(|l| l.starts_with("problem: ") && l.contains(needle)),
        "no problem line containing {needle:?}:\n{text}"
    );
}

#[test]
fn i10_a_correct_installation_passes() {
    let f = installed();
    let out = check(&f);
    assert_success(&out);
    assert!(stdout(&out).contains("1 envs checked: 0 problems"), "{}", stdout(&out));
}

#[test]
fn i10_missing_link() {
    let f = installed();
    fs::remove_file(f.bin("e-1.0").join("pip")).unwrap();
    assert_problem(&check(&f), "e-1.0.d/bin/pip: missing");
}

#[test]
fn i10_stale_link() {
    let f = installed();
    symlink("../../launcher", f.bin("e-1.0").join("gone-tool")).unwrap();
    assert_problem(&check(&f), "e-1.0.d/bin/gone-tool: stale");
}

#[test]
fn i10_link_to_the_wrong_target() {
    let f = installed();
    let link = f.bin("e-1.0").join("python3");
    fs::remove_file(&link).unwrap();
    symlink("/usr/bin/python3", &link).unwrap();
    assert_problem(
        &check(&f),
        "e-1.0.d/bin/python3: points at /usr/bin/python3, not the launcher",
    );
}

#[test]
fn i10_l19_world_writable_config() {
    let f = installed();
    let config = f.scripts.join("launcher.toml");
    fs::set_permissions(&config, fs::Permissions::from_mode(0o666)).unwrap();
    assert_problem(&check(&f), "launcher.toml is writable by others");
}

#[test]
fn i10_l19_world_writable_directory_sticky_or_not() {
    let f = installed();
    let bin = f.bin("e-1.0");
    fs::set_permissions(&bin, fs::Permissions::from_mode(0o777)).unwrap();
    assert_problem(&check(&f), "e-1.0.d/bin is writable by others (mode 0777)");
    // issue 10: a sticky o+w directory of the installation is unsafe too:
    // anyone may add a file to it.
    fs::set_permissions(&bin, fs::Permissions::from_mode(0o1777)).unwrap();
    let out = check(&f);
    assert_problem(
        &out,
        "e-1.0.d/bin is writable by others (mode 1777) (L19): the sticky bit does not stop",
    );
    assert_problem(&out, "e-1.0.d/bin: mode 1777, `installer farm` writes 0755");
    // farm repairs it.
    f.farm("e-1.0");
    assert_success(&check(&f));
}

#[test]
fn i10_l19_world_writable_override_script() {
    let f = installed();
    fs::create_dir(f.scripts.join("overrides")).unwrap();
    write_exec(&f.scripts.join("overrides/qsub.sh"), "#!/bin/sh\n");
    f.farm("e-1.0");
    assert_success(&check(&f));
    fs::set_permissions(f.scripts.join("overrides/qsub.sh"), fs::Permissions::from_mode(0o757)).unwrap();
    assert_problem(&check(&f), "qsub.sh is writable by others");
}

#[test]
fn i10_config_that_does_not_parse() {
    let f = installed();
    fs::write(f.scripts.join("launcher.toml"), "[runtime]\nflavor = \"auto\"\n").unwrap();
    assert_problem(&check(&f), "launcher.toml:2:1: unknown field `flavor`");
}

#[test]
fn i10_no_runtime_and_no_base_image() {
    let f = installed();
    fs::remove_file(f.root().join("rt/apptainer")).unwrap();
    fs::remove_dir_all(f.root().join("base")).unwrap();
    let out = check(&f);
    assert_problem(&out, "runtime.path");
    assert_problem(&out, "base image");
}

/// `runtime.flavour = "native"`: the launcher itself is the runtime, so no
/// apptainer or singularity anywhere is not "no container runtime". The
/// native runtime is reported instead, with what it needs here: as root,
/// loop devices; as a user, user namespaces, a usable /dev/fuse and
/// squashfuse on PATH (info lines for what is there, warnings for what is
/// not: the run still passes).
#[test]
fn i10_native_runtime_is_reported_not_a_missing_runtime() {
    let f = installed();
    f.write_config_with("flavour = \"native\"\n", "");
    let bare = f.root().join("bare-path");
    fs::create_dir(&bare).unwrap();
    let check_with_path = |path: &std::path::Path| f.installer().arg("check").env("PATH", path).output().unwrap();
    let out = check_with_path(&bare);
    assert_success(&out);
    let text = stdout(&out);
    assert!(!text.contains("no container runtime"), "{text}");
    assert!(!text.contains("runtime.path"), "{text}");
    assert!(
        text.contains("info: runtime: the launcher's own native runtime (runtime.flavour = \"native\")"),
        "{text}"
    );
    let root_line = text
        .lines()
        .find(|l| l.contains("native runtime as root: "))
        .unwrap_or_else(|| panic!("nothing about root:\n{text}"));
    if std::path::Path::new("/dev/loop-control").exists() {
        assert!(
            root_line.starts_with("info: ") && root_line.contains("loop devices"),
            "{text}"
        );
    } else {
        assert!(root_line.starts_with("warning: "), "{text}");
    }
    // No squashfuse on this PATH: ordinary users' launches would fail.
    assert!(
        text.lines().any(|l| l
            == "warning: native runtime as a user: squashfuse not found on PATH \
                (Debian: apt-get install squashfuse): ordinary users' launches fail"),
        "{text}"
    );
    // With squashfuse on PATH that warning goes; where user namespaces and
    // /dev/fuse work too, an info line says how users' launches mount.
    if let Some(squashfuse) = ["/usr/bin/squashfuse", "/bin/squashfuse"]
        .map(std::path::Path::new)
        .into_iter()
        .find(|p| p.is_file())
    {
        let with = f.root().join("with-squashfuse");
        fs::create_dir(&with).unwrap();
        symlink(squashfuse, with.join("squashfuse")).unwrap();
        let out = check_with_path(&with);
        assert_success(&out);
        let text = stdout(&out);
        assert!(!text.contains("squashfuse not found"), "{text}");
        let user_lines: Vec<&str> = text
            .lines()
            .filter(|l| l.contains("native runtime as a user: "))
            .collect();
        assert!(!user_lines.is_empty(), "{text}");
        if user_lines.iter().all(|l| l.starts_with("info: ")) {
            assert_eq!(
                user_lines,
                [format!(
                    "info: native runtime as a user: a user namespace and squashfuse ({}): \
                     user namespaces allowed, /dev/fuse usable",
                    with.join("squashfuse").display()
                )]
            );
        }
    }
    // `runtime.path` with the native flavour names the launcher binary that
    // serves as the runtime: it must be there.
    f.write_config_with("flavour = \"native\"\npath = \"../no-such-launcher\"\n", "");
    assert_problem(&check_with_path(&bare), "no-such-launcher");
}

#[test]
fn i10_image_problems_and_missing_trees() {
    let f = installed();
    // An image without a tree, and a tree whose image is corrupt.
    f.image("new-2.0", &[Entry::File(b"x")]);
    fs::write(f.envs.join("e-1.0.sqsh"), b"not squashfs at all").unwrap();
    let out = check(&f);
    assert_problem(&out, "new-2.0: no scripts tree");
    assert_problem(&out, "e-1.0: image");
}

#[test]
fn i10_aliases_must_resolve() {
    let f = installed();
    symlink("e-1.0.d", f.env_dir("e")).unwrap();
    assert_success(&check(&f));
    symlink("e-0.9.d", f.env_dir("old")).unwrap();
    assert_problem(&check(&f), "alias");
}

#[test]
fn i10_warns_when_the_scripts_tree_is_not_bound() {
    let f = installed();
    f.write_config("");
    let text = fs::read_to_string(f.scripts.join("launcher.toml")).unwrap();
    let unbound = text.replace(&format!("binds = [\"{}\"]", f.root().display()), "binds = [\"/usr\"]");
    fs::write(f.scripts.join("launcher.toml"), unbound).unwrap();
    fs::create_dir(f.root().join("base/usr")).unwrap();
    let out = check(&f);
    // Under /tmp the runtime's default binds cover it; elsewhere they would not.
    if f.root().starts_with("/tmp") {
        assert_success(&out);
    } else {
        assert!(stdout(&out).contains("warning: scripts tree"), "{}", stdout(&out));
    }
    assert!(!stdout(&out).contains("problem:"), "{}", stdout(&out));
}

#[test]
fn i10_an_installation_other_users_cannot_run_is_a_problem() {
    let f = installed();
    let env_dir = f.env_dir("e-1.0");
    let cases = [
        (f.scripts.join("launcher"), 0o700, "not executable by other users"),
        (f.scripts.join("launcher.toml"), 0o600, "not readable by other users"),
        (env_dir.join("env.toml"), 0o600, "not readable by other users"),
        (f.live("e-1.0"), 0o600, "not readable by other users"),
        (f.scripts.clone(), 0o700, "not searchable by other users"),
        (env_dir.clone(), 0o700, "not searchable by other users"),
        (env_dir.join("bin"), 0o700, "not searchable by other users"),
        (f.envs.clone(), 0o700, "not searchable by other users"),
    ];
    for (path, mode, why) in cases {
        let before = fs::metadata(&path).unwrap().permissions();
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
        let out = check(&f);
        fs::set_permissions(&path, before).unwrap();
        let name = path.file_name().unwrap().to_string_lossy();
        assert_problem(&out, &format!("{name} is {why}"));
    }
    f.check_clean();
}

fn assert_warning(out: &Output, needle: &str) {
    let text = stdout(out);
    assert!(
        text.lines().any(|l| l.starts_with("warning: ") && l.contains(needle)),
        "no warning line containing {needle:?}:\n{text}{}",
        stderr(out)
    );
}

fn assert_info(out: &Output, needle: &str) {
    let text = stdout(out);
    assert!(
        text.lines().any(|l| l.starts_with("info: ") && l.contains(needle)),
        "no info line containing {needle:?}:\n{text}{}",
        stderr(out)
    );
}

/// issue 9 §3, L13: a base with `/.singularity.d/env/` but no `99-base.sh`
/// makes the real runtimes drop every prefixed variable.
#[test]
fn i10_l13_base_env_dir_without_99_base_sh() {
    let f = installed();
    let env = f.root().join("base/.singularity.d/env");
    fs::create_dir(&env).unwrap();
    assert_problem(&check(&f), "has /.singularity.d/env/ but no 99-base.sh");
    fs::write(env.join("99-base.sh"), "#!/bin/sh\n").unwrap();
    f.check_clean();
    // No env/ at all is fine too (the runtimes then inject as well): the fixture.
}

/// issue 9 §3, L5: the marker must be in the base.
#[test]
fn i10_l5_base_without_the_marker() {
    let f = installed();
    fs::remove_dir(f.root().join("base/.singularity.d")).unwrap();
    assert_problem(&check(&f), "has no /.singularity.d (container.marker)");
}

/// issue 9 §3, L12: a sandbox base needs a mount point for every bind that
/// exists (configured or in exec_flags) and for the container prefix; a file
/// bind needs a file.
#[test]
fn i10_l12_base_mount_points() {
    let f = installed();
    let base = f.root().join("base");
    fs::remove_dir(base.join("opt/conda")).unwrap();
    assert_problem(&check(&f), "no mount point /opt/conda (container.prefix)");
    fs::create_dir(base.join("opt/conda")).unwrap();
    f.check_clean();

    let bound = base.join(f.root().strip_prefix("/").unwrap());
    fs::remove_dir(&bound).unwrap();
    assert_problem(
        &check(&f),
        &format!("no mount point {} (container.binds)", f.root().display()),
    );
    // A symlink inside the base leads to it the way the runtime follows it.
    fs::create_dir_all(base.join("elsewhere")).unwrap();
    symlink("/elsewhere", &bound).unwrap();
    f.check_clean();

    // exec_flags binds (L24): a file bind needs a file; a missing source needs nothing.
    let hosts = f.root().join("hosts");
    fs::write(&hosts, "").unwrap();
    f.write_config_with(
        &format!(
            "path = \"../rt/apptainer\"\nexec_flags = [\"--nv\", \"-B\", \"{}:/etc/hosts.site,/nonexistent:/x\"]\n",
            hosts.display()
        ),
        "",
    );
    assert_problem(&check(&f), "no mount point /etc/hosts.site (runtime.exec_flags)");
    fs::create_dir_all(base.join("etc/hosts.site")).unwrap();
    assert_problem(
        &check(&f),
        "mount point /etc/hosts.site (runtime.exec_flags) is a directory, the bind needs a file",
    );
    fs::remove_dir(base.join("etc/hosts.site")).unwrap();
    fs::write(base.join("etc/hosts.site"), "").unwrap();
    f.check_clean();
}

/// A runtime at `<root>/<prefix>/bin/<name>` that prints `version` for
/// `--version`, named in the config.
fn runtime_at(f: &Fixture, prefix: &str, name: &str, script: &str) -> std::path::PathBuf {
    let path = f.root().join(prefix).join("bin").join(name);
    write_exec(&path, script);
    f.write_config_with(&format!("path = \"../{prefix}/bin/{name}\"\n"), "");
    path
}

fn starter_suid(f: &Fixture, prefix: &str, name: &str, mode: u32) {
    let starter = f
        .root()
        .join(prefix)
        .join("libexec")
        .join(name)
        .join("bin/starter-suid");
    write_exec(&starter, "#!/bin/sh\n");
    fs::set_permissions(&starter, fs::Permissions::from_mode(mode)).unwrap();
}

/// issue 9 §3: the runtime's product, version and mode are reported.
#[test]
fn i10_runtime_version_and_mode_apptainer() {
    let f = installed();
    let root = nix::unistd::geteuid().is_root();
    runtime_at(
        &f,
        "ap",
        "apptainer",
        "#!/bin/sh\necho 'apptainer version 1.3.6-1.el9'\n",
    );
    let out = f.check_clean();
    assert_info(&out, "Apptainer 1.3.6-1.el9, user-namespace mode (no starter-suid in");
    starter_suid(&f, "ap", "apptainer", 0o755);
    assert_info(&f.check_clean(), "user-namespace mode (");
    assert_info(&f.check_clean(), "starter-suid is not setuid root)");
    starter_suid(&f, "ap", "apptainer", 0o4755);
    if root {
        assert_info(&f.check_clean(), "Apptainer 1.3.6-1.el9, setuid mode (");
        fs::create_dir_all(f.root().join("ap/etc/apptainer")).unwrap();
        fs::write(
            f.root().join("ap/etc/apptainer/apptainer.conf"),
            "# allow setuid = yes\nallow setuid = no\n",
        )
        .unwrap();
        assert_info(&f.check_clean(), "apptainer.conf says allow setuid = no)");
    }
    // `singularity` as a link to apptainer (how Apptainer installs it).
    symlink("apptainer", f.root().join("ap/bin/singularity")).unwrap();
    f.write_config_with("path = \"../ap/bin/singularity\"\n", "");
    assert_info(&f.check_clean(), "ap/bin/singularity: Apptainer 1.3.6-1.el9");
}

/// issue 9 §3: SingularityCE without setuid cannot mount squashfs overlays;
/// and a runtime that says it is SingularityCE must not get APPTAINERENV_.
#[test]
fn i10_runtime_singularity_ce_needs_setuid() {
    let f = installed();
    runtime_at(
        &f,
        "sce",
        "singularity",
        "#!/bin/sh\necho 'singularity-ce version 4.1.0'\n",
    );
    let out = f.check_clean();
    assert_info(&out, "SingularityCE 4.1.0, user-namespace mode");
    assert_warning(&out, "SingularityCE without setuid cannot mount squashfs overlays");
    if nix::unistd::geteuid().is_root() {
        starter_suid(&f, "sce", "singularity", 0o4755);
        let out = f.check_clean();
        assert_info(&out, "SingularityCE 4.1.0, setuid mode");
        assert!(!stdout(&out).contains("cannot mount squashfs"), "{}", stdout(&out));
    }
    // Legacy Singularity 3.x, called `apptainer` by a confused site: the
    // launcher would pass APPTAINERENV_, which it ignores.
    runtime_at(&f, "old", "apptainer", "#!/bin/sh\necho 'singularity version 3.8.7'\n");
    let out = check(&f);
    assert_problem(&out, "is Singularity 3.8.7, which ignores the APPTAINERENV_ variables");
    f.write_config_with("path = \"../old/bin/apptainer\"\nflavour = \"singularity\"\n", "");
    assert_info(&f.check_clean(), "Singularity 3.8.7");
}

/// A runtime that cannot be run is a problem; one that fails, prints
/// something else or hangs is a warning; never a panic, never a hang.
#[test]
fn i10_runtime_that_cannot_be_run() {
    let f = installed();
    runtime_at(&f, "bad", "apptainer", "#!/nonexistent/interpreter\n");
    let out = check(&f);
    assert_problem(&out, "cannot run `");
    assert!(!stderr(&out).contains("panicked"), "{}", stderr(&out));

    runtime_at(
        &f,
        "fails",
        "apptainer",
        "#!/bin/sh\necho 'apptainer version 1' ; exit 3\n",
    );
    assert_warning(&f.check_clean(), "--version` failed (exit status: 3)");

    runtime_at(&f, "odd", "apptainer", "#!/bin/sh\necho 'hello'\n");
    assert_warning(&f.check_clean(), "`--version` printed \"hello\"");

    runtime_at(
        &f,
        "hangs",
        "apptainer",
        "#!/bin/sh\nsleep 120\necho 'apptainer version 1'\n",
    );
    let started = std::time::Instant::now();
    let out = f.check_clean();
    assert_warning(&out, "--version` did not finish within 5 s");
    assert!(started.elapsed().as_secs() < 30, "{:?}", started.elapsed());
}

/// L8: a host command is warned about (setuid is blocked inside).
#[test]
fn i10_l8_host_command_warning() {
    let f = installed();
    f.write_config("[commands.ssh]\nhost = true\n");
    f.farm("e-1.0");
    let out = f.check_clean();
    assert_warning(&out, "commands.ssh: host = true: called from inside the container");
    assert_warning(&out, "ssh-keysign");
}

/// `path` at `mode` makes `check` report a problem containing `needle`;
/// restored, the installation is clean again.
fn assert_mode_is_a_problem(f: &Fixture, path: &std::path::Path, mode: u32, needle: &str) {
    let before = fs::metadata(path).unwrap().permissions();
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
    let out = check(f);
    fs::set_permissions(path, before).unwrap();
    assert_problem(&out, needle);
    f.check_clean();
}

/// issue 10 item 4: everything a launch depends on that others can write is
/// a problem, one line each; an o+w directory of the installation is one
/// even with the sticky bit.
#[test]
fn i10_l19_everything_a_launch_depends_on_o_w() {
    let f = installed();
    let root = f.root().to_path_buf();
    let modules = root.join("modules/conda");
    f.write_config_top(
        "modules_dir = \"../modules/conda\"\n",
        "path = \"../rt/apptainer\"\n",
        "",
    );
    assert_success(&f.installer().args(["module", "--env", "e-1.0"]).output().unwrap());
    f.check_clean();
    let image = f.live("e-1.0");
    let shown = |p: &std::path::Path| p.display().to_string();
    let file = |p: &std::path::Path| format!("{} is writable by others (L19)", shown(p));
    let dir =
        |p: &std::path::Path, mode: u32| format!("directory {} is writable by others (mode {mode:04o})", shown(p));
    // The env image, the envs dir (sticky or not).
    assert_mode_is_a_problem(&f, &image, 0o646, &file(&image));
    assert_mode_is_a_problem(&f, &f.envs, 0o777, &dir(&f.envs, 0o777));
    assert_mode_is_a_problem(&f, &f.envs, 0o1777, &dir(&f.envs, 0o1777));
    // The base image (a sandbox directory here), its env scripts.
    let base = root.join("base");
    assert_mode_is_a_problem(&f, &base, 0o777, &dir(&base, 0o777));
    assert_mode_is_a_problem(&f, &base, 0o1777, &dir(&base, 0o1777));
    // The runtime and its directory.
    let rt = root.join("rt/apptainer");
    assert_mode_is_a_problem(&f, &rt, 0o757, "rt/apptainer is writable by others (L19)");
    assert_mode_is_a_problem(&f, &root.join("rt"), 0o1777, &dir(&root.join("rt"), 0o1777));
    // Every ancestor of <scripts>.
    assert_mode_is_a_problem(&f, &root, 0o777, &dir(&root, 0o777));
    // The modulefile, .modulerc, modules_dir and its parent.
    assert_mode_is_a_problem(&f, &modules.join("e-1.0"), 0o666, &file(&modules.join("e-1.0")));
    assert_mode_is_a_problem(&f, &modules.join(".modulerc"), 0o666, &file(&modules.join(".modulerc")));
    assert_mode_is_a_problem(&f, &modules, 0o1777, &dir(&modules, 0o1777));
    assert_mode_is_a_problem(&f, &root.join("modules"), 0o777, &dir(&root.join("modules"), 0o777));
    // Overrides: a sticky overrides/ lets anyone add python3.sh (issue 10 item 2).
    let overrides = f.scripts.join("overrides");
    fs::create_dir(&overrides).unwrap();
    assert_mode_is_a_problem(&f, &overrides, 0o1777, &dir(&overrides, 0o1777));
}

/// A SIF-like base image file writable by others.
#[test]
fn i10_l19_base_image_file_o_w() {
    let f = installed();
    let base = f.root().join("base");
    fs::rename(&base, f.root().join("base.dir")).unwrap();
    fs::write(&base, "SIF").unwrap();
    fs::set_permissions(&base, fs::Permissions::from_mode(0o644)).unwrap();
    assert_info(&f.check_clean(), "an image file (SIF), not inspected inside");
    assert_mode_is_a_problem(&f, &base, 0o666, &format!("{} is writable by others", base.display()));
}

/// A sticky o+w ancestor is safe on the way to an entry of root or the
/// installation's owner, not to anyone else's (issue 10 item 2, L19).
#[test]
fn i10_l19_sticky_ancestor_protects_only_trusted_entries() {
    if !nix::unistd::geteuid().is_root() {
        return; // needs chown
    }
    let f = installed();
    let root = f.root().to_path_buf();
    fs::set_permissions(&root, fs::Permissions::from_mode(0o1777)).unwrap();
    f.check_clean();
    // The base, owned by nobody, in a sticky world-writable directory.
    let base = root.join("base");
    std::os::unix::fs::chown(&base, Some(65534), None).unwrap();
    let out = check(&f);
    assert_problem(
        &out,
        &format!(
            "{} sits in {}, which is writable by others (mode 1777), and belongs to uid 65534",
            base.display(),
            root.display()
        ),
    );
    // Not in a sticky directory: still someone else's.
    fs::set_permissions(&root, fs::Permissions::from_mode(0o755)).unwrap();
    assert_problem(
        &check(&f),
        &format!(
            "{} belongs to uid 65534, neither root nor the installation's owner",
            base.display()
        ),
    );
    std::os::unix::fs::chown(&base, Some(0), None).unwrap();
    f.check_clean();
}

/// issue 10 item 1 from check's side: a `script =` behind an o+w ancestor,
/// and one reached through a symlink whose directory is o+w.
#[test]
fn i10_l19_script_behind_an_o_w_ancestor_or_symlink_hop() {
    let f = installed();
    let root = f.root().to_path_buf();
    let tools = root.join("pub/tools");
    fs::create_dir_all(&tools).unwrap();
    write_exec(&tools.join("hello.sh"), "#!/bin/sh\n");
    f.write_config(&format!(
        "[commands.hello]\nscript = \"{}/hello.sh\"\n",
        tools.display()
    ));
    f.farm("e-1.0");
    f.check_clean();
    assert_mode_is_a_problem(
        &f,
        &root.join("pub"),
        0o777,
        &format!(
            "directory {}/pub is writable by others (mode 0777) (L19): anyone can replace {}",
            root.display(),
            tools.display()
        ),
    );
    // An ancestor that another user owns: they can swap tools/ (the launcher
    // refuses it too).
    if nix::unistd::geteuid().is_root() {
        std::os::unix::fs::chown(root.join("pub"), Some(65534), None).unwrap();
        assert_problem(
            &check(&f),
            &format!(
                "directory {}/pub belongs to uid 65534, neither root nor the installation's owner",
                root.display()
            ),
        );
        std::os::unix::fs::chown(root.join("pub"), Some(0), None).unwrap();
    }
    // Through a symlink that lives in an o+w directory.
    let links = root.join("links");
    fs::create_dir(&links).unwrap();
    symlink(&tools, links.join("tools")).unwrap();
    f.write_config(&format!(
        "[commands.hello]\nscript = \"{}/tools/hello.sh\"\n",
        links.display()
    ));
    f.check_clean();
    assert_mode_is_a_problem(
        &f,
        &links,
        0o777,
        &format!("anyone can replace {}/tools in it", links.display()),
    );
}
