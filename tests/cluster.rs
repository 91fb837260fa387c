//! Across nodes for real (issue 12): scenarios M1–M6 on a test cluster of
//! network-namespace nodes running Slurm, munge, sshd and OpenMPI
//! (`tests/support/cluster.rs`, docs/testing.md "Multi-node"), plus the
//! cluster support's own test.
//!
//! Every rank and worker runs through the launcher, inside the container,
//! on its node: `mpi_probe` (the MPI env's C program) reports its host, the
//! marker, the top image and an `MPI_Allreduce` sum.
//!
//! Run one scenario alone with `cargo test --test cluster m3_`.

mod support;

use std::collections::BTreeMap;
use std::fs;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::Stdio;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use support::cluster::{Cluster, NODES, SUBNET};
use support::images::{CONTAINER_PREFIX, MAIN_ENV};
use support::mpi_env::MPI_ENV;
use support::run::Outcome;

/// Ranks of the MPI scenarios: two per node.
const RANKS: usize = 6;
/// 1 + 2 + … + RANKS: each rank adds rank + 1.
const SUM: usize = RANKS * (RANKS + 1) / 2;

/// One `mpi_probe` line: `mpi_probe key=value …`.
#[derive(Debug, Clone)]
struct Rank(BTreeMap<String, String>);

impl Rank {
    fn get(&self, key: &str) -> &str {
        self.0.get(key).map(String::as_str).unwrap_or("")
    }
    fn number(&self, key: &str) -> usize {
        self.get(key).parse().unwrap_or(usize::MAX)
    }
}

fn ranks_in(stdout: &str) -> Vec<Rank> {
    let mut ranks: Vec<Rank> = stdout
        .lines()
        .filter_map(|line| line.strip_prefix("mpi_probe "))
        .map(|rest| {
            Rank(
                rest.split_whitespace()
                    .filter_map(|kv| kv.split_once('='))
                    .map(|(k, v)| (k.to_owned(), v.to_owned()))
                    .collect(),
            )
        })
        .collect();
    ranks.sort_by_key(|r| r.number("rank"));
    ranks
}

/// Every rank of a 6-rank job reported: two per node, inside the
/// container, the MPI env's image on top, the right sum.
#[track_caller]
fn assert_ranks_everywhere_inside(out: &Outcome, cluster: &Cluster) -> Vec<Rank> {
    let text = out.stdout_text();
    let ranks = ranks_in(&text);
    assert_eq!(ranks.len(), RANKS, "one line per rank; {out:#?}\n{}", cluster.logs());
    for (i, rank) in ranks.iter().enumerate() {
        assert_eq!(rank.number("rank"), i, "{text}");
        assert_eq!(rank.number("size"), RANKS, "{text}");
        assert_eq!(
            rank.get("where"),
            "inside",
            "rank {i} ran outside the container: {text}"
        );
        assert_eq!(rank.get("top"), MPI_ENV, "rank {i}: wrong image on top: {text}");
        assert_eq!(rank.number("sum"), SUM, "rank {i}: MPI_Allreduce sum: {text}");
    }
    for node in &cluster.nodes {
        let here = ranks.iter().filter(|r| r.get("host") == node.name).count();
        assert_eq!(here, RANKS / NODES, "ranks on {}: {text}", node.name);
    }
    assert!(
        !out.stderr.lines().any(|l| l.starts_with("launcher: ")),
        "no launcher error expected: {}",
        out.stderr
    );
    ranks
}

/// With the stand-in (and the native runtime as root) nothing forks between
/// the task and the program; a real runtime's program is its monitor's child.
fn every_hop_execs() -> bool {
    support::prereq::real_runtime().is_none()
}

#[test]
fn cluster_support_starts_isolated_nodes_and_stops_everything() {
    let hosts_before = fs::read("/etc/hosts").ok();
    let Some(cluster) = Cluster::start("cluster_support_starts_isolated_nodes_and_stops_everything") else {
        return;
    };
    assert_eq!(cluster.nodes.len(), NODES);
    for node in &cluster.nodes {
        let out = cluster.run(cluster.on(&node.name, "hostname"));
        assert_eq!(out.stdout_text().trim(), node.name, "{out:#?}");
        // Its own address, from the cluster's subnet only, and no route
        // anywhere else.
        let out = cluster.run(cluster.on(&node.name, "ip").args(["-o", "addr", "show"]));
        let addrs: Vec<String> = out
            .stdout_text()
            .lines()
            .filter_map(|l| {
                l.split_whitespace()
                    .skip_while(|w| *w != "inet" && *w != "inet6")
                    .nth(1)
            })
            .map(str::to_owned)
            .collect();
        assert_eq!(
            addrs,
            ["127.0.0.1/8".to_string(), format!("{}/24", node.addr)],
            "{out:#?}"
        );
        let out = cluster.run(cluster.on(&node.name, "ip").args(["route", "show"]));
        assert_eq!(
            out.stdout_text().trim(),
            format!("{} dev eth0 proto kernel scope link src {}", SUBNET, node.addr)
        );
        let out = cluster.run(cluster.on(&node.name, "ip").args(["-6", "route", "show"]));
        assert_eq!(out.stdout_text().trim(), "", "no IPv6 on a node");
        let out = cluster.run(cluster.on(&node.name, "cat").arg("/etc/hosts"));
        for other in &cluster.nodes {
            assert!(
                out.stdout_text().contains(&format!("{} {}", other.addr, other.name)),
                "{out:#?}"
            );
        }
    }
    // Slurm sees every node; ssh reaches every node.
    let out = cluster.run(cluster.on("n1", "srun").args(["-N3", "-n3", "hostname"]));
    out.assert_success();
    let mut hosts = out.stdout_lines();
    hosts.sort();
    assert_eq!(hosts, ["n1", "n2", "n3"]);
    for node in &cluster.nodes {
        let out = cluster.run(cluster.on("n1", "ssh").args([node.name.as_str(), "hostname"]));
        assert_eq!(out.stdout_text().trim(), node.name, "{out:#?}");
    }
    // Teardown: every daemon and node process gone by PID, namespaces,
    // bridge and files removed, the host's /etc/hosts untouched.
    let pids: Vec<u32> = cluster.daemon_pids().into_iter().map(|(_, pid)| pid).collect();
    assert!(
        pids.len() >= 2 + 2 * NODES,
        "munged, slurmctld, slurmd and sshd per node: {pids:?}"
    );
    let namespaces: Vec<String> = cluster.nodes.iter().map(|n| n.netns.clone()).collect();
    let bridge = cluster.bridge.clone();
    let root = cluster.bed.root.clone();
    let keep = std::env::var_os(support::bed::KEEP_VAR).is_some_and(|v| v == "1");
    drop(cluster);
    for pid in pids {
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists(),
            "daemon {pid} still running"
        );
    }
    for netns in namespaces {
        assert!(!Path::new("/run/netns").join(&netns).exists(), "{netns} left behind");
    }
    assert!(
        !Path::new("/sys/class/net").join(&bridge).exists(),
        "bridge {bridge} left behind"
    );
    assert!(keep || !root.exists(), "{} left behind", root.display());
    assert_eq!(
        fs::read("/etc/hosts").ok(),
        hosts_before,
        "the host's /etc/hosts changed"
    );
}

/// M1: `srun -N3 -n6 <scripts>/mpi-1.0.d/bin/mpi_probe` from n1, with PMIx.
#[test]
fn m1_srun_ranks_run_inside_the_container_on_every_node() {
    let Some(cluster) = Cluster::start("m1_srun_ranks_run_inside_the_container_on_every_node") else {
        return;
    };
    let mut srun = cluster.on("n1", "srun");
    srun.args(["-N3", "-n6"])
        .arg(cluster.mpi_link("mpi_probe"))
        .envs(cluster.mpi_settings());
    let out = cluster.run(srun);
    out.assert_success();
    let ranks = assert_ranks_everywhere_inside(&out, &cluster);
    for rank in &ranks {
        // Each task entered its own container (its parent, slurmstepd, is
        // on the host), and the program is the very process Slurm started:
        // launcher → runtime → launcher → program, every hop an exec.
        assert_eq!(rank.get("parent"), "other-mnt", "{rank:?}");
        if every_hop_execs() {
            assert_eq!(rank.get("pid"), rank.get("task_pid"), "a hop forked: {rank:?}");
        }
        assert!(
            rank.get("path").starts_with(&format!("/opt/conda/{MPI_ENV}/bin:")),
            "{rank:?}"
        );
    }
}

/// The main env's package that only the env has (conda-like env, issue 11).
const ENV_PACKAGE: &str = "envpkg";

/// Python printing where it runs and where the env package comes from.
const PY_REPORT: &str = "import os, socket, sys\n\
    import envpkg\n\
    print('host=%s where=%s executable=%s prefix=%s envpkg=%s' % (socket.gethostname(),\n\
    \x20   'inside' if os.path.isdir('/.singularity.d') else 'outside', sys.executable, sys.prefix,\n\
    \x20   os.path.dirname(envpkg.__file__)))\n";

/// What [`PY_REPORT`] prints for the main env's Python run through its
/// scripts link on `host`.
fn py_report_line(cluster: &Cluster, host: &str) -> String {
    let prefix = format!("{CONTAINER_PREFIX}/{MAIN_ENV}");
    format!(
        "host={host} where=inside executable={} prefix={prefix} envpkg={prefix}/{}/{ENV_PACKAGE}",
        cluster.bed.link(MAIN_ENV, "python3").display(),
        support::conda_env::SITE_DIR
    )
}

/// M2: an sbatch script whose `#!` is the env's python3 runs on another
/// node with no module loaded (`--export=NONE`: not even a `PATH`) and
/// imports the env's own package.
#[test]
fn m2_sbatch_script_with_the_env_python_as_interpreter() {
    let Some(cluster) = Cluster::start("m2_sbatch_script_with_the_env_python_as_interpreter") else {
        return;
    };
    let script = cluster.bed.work.join("m2-job.py");
    let python = cluster.bed.link(MAIN_ENV, "python3");
    fs::write(
        &script,
        format!("#!{}\n#SBATCH --job-name=m2\n{PY_REPORT}", python.display()),
    )
    .expect("write the job script");
    let output = cluster.bed.work.join("m2-%j.out");
    let mut sbatch = cluster.on("n1", "sbatch");
    sbatch
        .args(["--wait", "--export=NONE", "-w", "n2", "-o"])
        .arg(&output)
        .arg(&script);
    let out = cluster.run(sbatch);
    out.assert_success();
    let job = out
        .stdout_text()
        .split_whitespace()
        .last()
        .unwrap_or_default()
        .to_owned();
    let log = cluster.bed.work.join(format!("m2-{job}.out"));
    let text = fs::read_to_string(&log).unwrap_or_else(|e| panic!("{}: {e}; {out:#?}", log.display()));
    assert_eq!(text.trim(), py_report_line(&cluster, "n2"), "{}", cluster.logs());
}

/// `mpirun` (the env's link: it runs inside the container) on n1 for six
/// ranks of the bare `mpi_probe` (resolved by each node's daemon on its
/// `PATH`), with `settings` and `extra` arguments.
fn mpirun(cluster: &Cluster, extra: &[&str], settings: &[(&str, &std::path::PathBuf)]) -> Outcome {
    let mut mpirun = cluster.on("n1", cluster.mpi_link("mpirun"));
    mpirun
        .args(extra)
        .args(["--host", "n1:2,n2:2,n3:2", "-np", "6", "mpi_probe"])
        .envs(cluster.mpi_settings());
    for (name, value) in settings {
        mpirun.env(name, value);
    }
    cluster.run(mpirun)
}

/// M3: mpirun over ssh. ssh is a host command (L8): mpirun calls the env's
/// `ssh` link from inside the container and the launcher execs the site's
/// ssh. The remote daemon re-enters the container through the launcher
/// (`OMPI_MCA_orte_launch_agent` = the env's `orted` link).
#[test]
fn m3_mpirun_over_ssh_remote_daemons_reenter_the_container() {
    let Some(cluster) = Cluster::start("m3_mpirun_over_ssh_remote_daemons_reenter_the_container") else {
        return;
    };
    let ssh = cluster.mpi_link("ssh");
    let orted = cluster.mpi_link("orted");
    let agents = [("OMPI_MCA_plm_rsh_agent", &ssh), ("OMPI_MCA_orte_launch_agent", &orted)];
    // As users run it, and with --noprefix: the launch agent alone is enough
    // (mpirun through the launcher sees an absolute argv[0] and turns
    // OpenMPI's automatic --prefix on, which also names <prefix>/bin/orted).
    for extra in [&[][..], &["--noprefix"][..]] {
        let _ = fs::remove_file(&cluster.ssh_log);
        let out = mpirun(&cluster, extra, &agents);
        out.assert_success();
        let ranks = assert_ranks_everywhere_inside(&out, &cluster);
        for rank in &ranks {
            // The daemon that started it (mpirun on n1, orted elsewhere) is
            // in the same container: the rank did not enter one of its own.
            assert_eq!(rank.get("parent"), "same-mnt", "mpirun {extra:?}: {rank:?}");
        }
        // The site's ssh ran, called from inside the container, once for
        // each other node.
        let calls = fs::read_to_string(&cluster.ssh_log).unwrap_or_default();
        let mut hosts: Vec<&str> = calls
            .lines()
            .filter_map(|l| l.strip_prefix("ssh inside: "))
            .filter_map(|args| args.split_whitespace().find(|w| w.starts_with('n') && w.len() == 2))
            .collect();
        hosts.sort();
        assert_eq!(hosts, ["n2", "n3"], "mpirun {extra:?}: ssh calls:\n{calls}");
    }
    // Control: without the launch agent the remote daemon is the host's
    // orted, outside the container, and cannot find the env's program.
    let out = mpirun(&cluster, &["--noprefix"], &[("OMPI_MCA_plm_rsh_agent", &ssh)]);
    assert!(!out.status.success(), "{out:#?}");
    let text = format!("{}{}", out.stdout_text(), out.stderr);
    assert!(
        text.contains(&format!("/opt/conda/{MPI_ENV}/bin/mpi_probe")),
        "the remote orted cannot find the env's program: {text}"
    );
}

/// M4: mpirun's remote starts go through the launcher's pbs_tmrsh builtin
/// (L16) and a pbs_tmrsh stand-in built on ssh that drops the whole
/// environment (`env -i`), as a PBS remote start does. The remote ranks run
/// in the same images with the same PATH (E9 across real hosts).
#[test]
fn m4_pbs_tmrsh_remote_starts_rebuild_the_same_container() {
    let Some(cluster) = Cluster::start("m4_pbs_tmrsh_remote_starts_rebuild_the_same_container") else {
        return;
    };
    let pbs_tmrsh = cluster.mpi_link("pbs_tmrsh");
    // --noprefix: the remote command is ` orted …` (a leading space and
    // quoted values, written for a shell); the automatic-prefix case is the
    // next test. L16 runs either through /bin/sh inside (docs/admin-guide.md).
    let out = mpirun(&cluster, &["--noprefix"], &[("OMPI_MCA_plm_rsh_agent", &pbs_tmrsh)]);
    out.assert_success();
    let ranks = assert_ranks_everywhere_inside(&out, &cluster);
    let local = &ranks[0];
    assert_eq!(local.get("host"), "n1");
    for rank in &ranks {
        assert_eq!(rank.get("path"), local.get("path"), "same PATH as on n1: {rank:?}");
        assert_eq!(rank.get("envs"), local.get("envs"), "same images as on n1: {rank:?}");
        assert_eq!(
            rank.get("parent"),
            "same-mnt",
            "started by a daemon in the container: {rank:?}"
        );
    }
    // Each remote start went through the builtin: the env's launcher, the
    // runtime, the overlay list and PATH of the container on n1, then orted
    // (through /bin/sh -c).
    let calls = fs::read_to_string(&cluster.pbs_tmrsh_log).unwrap_or_default();
    let launcher = cluster.mpi_link("launcher");
    let image = format!("{}/mpi-1.0.sqsh", "envs");
    let mut hosts = Vec::new();
    for call in calls.lines() {
        let (host, command) = call
            .strip_prefix("pbs_tmrsh ")
            .and_then(|c| c.split_once(": "))
            .unwrap_or_else(|| panic!("{calls}"));
        hosts.push(host.to_owned());
        let words: Vec<&str> = command.split_whitespace().collect();
        assert_eq!(words[0], launcher.display().to_string(), "{call}");
        for flag in ["--runtime", "--launcher", "--overlay-path", "--path"] {
            assert!(words.contains(&flag), "{flag} missing: {call}");
        }
        let overlays = words[words.iter().position(|w| *w == "--overlay-path").unwrap() + 1];
        assert!(overlays.ends_with(&image), "{call}");
        let path = words[words.iter().position(|w| *w == "--path").unwrap() + 1];
        assert_eq!(path, local.get("path"), "{call}");
        // OpenMPI wrote the daemon's command for a shell: L16 hands it to
        // /bin/sh inside the remote container.
        let command_at = words.iter().position(|w| *w == "--").unwrap() + 1;
        assert_eq!(words[command_at..command_at + 3], ["/bin/sh", "-c", "orted"], "{call}");
    }
    hosts.sort();
    assert_eq!(hosts, ["n2", "n3"], "{calls}");
}

/// M5: a Dask-style worker command, written by the env's Python from
/// `sys.executable` on n1, started with srun on n3 and with ssh on n2 (no
/// module loaded there), imports the env-only package.
#[test]
fn m5_worker_command_from_sys_executable_runs_on_other_nodes() {
    let Some(cluster) = Cluster::start("m5_worker_command_from_sys_executable_runs_on_other_nodes") else {
        return;
    };
    let worker = cluster.bed.work.join("m5-worker.sh");
    // As dask-jobqueue writes its job scripts: `{sys.executable} …`.
    let writer = "import shlex, sys\n\
        cmd = shlex.join([sys.executable, '-c', sys.argv[2]])\n\
        open(sys.argv[1], 'w').write('#!/bin/sh\\nexec ' + cmd + '\\n')\n";
    let python = cluster.bed.link(MAIN_ENV, "python3");
    let out = cluster.run(
        cluster
            .on("n1", &python)
            .args(["-c", writer])
            .arg(&worker)
            .arg(PY_REPORT),
    );
    out.assert_success();
    let script = fs::read_to_string(&worker).expect("worker script");
    assert!(
        script.starts_with(&format!("#!/bin/sh\nexec {} -c ", python.display())),
        "{script}"
    );
    let out = cluster.run(
        cluster
            .on("n1", "srun")
            .args(["-N1", "-n1", "-w", "n3", "/bin/sh"])
            .arg(&worker),
    );
    out.assert_success();
    assert_eq!(out.stdout_text().trim(), py_report_line(&cluster, "n3"), "{out:#?}");
    let out = cluster.run(cluster.on("n1", "ssh").args(["n2", "/bin/sh"]).arg(&worker));
    out.assert_success();
    assert_eq!(out.stdout_text().trim(), py_report_line(&cluster, "n2"), "{out:#?}");
}

/// M6: a node where the image cannot be read gives that rank one launcher
/// line and exit 125; the job fails and nothing hangs. `scancel` of a
/// running srun ends the containerised ranks on every node.
#[test]
fn m6_unreadable_image_on_one_node_and_scancel() {
    let Some(cluster) = Cluster::start("m6_unreadable_image_on_one_node_and_scancel") else {
        return;
    };
    // scancel first (the image is still there).
    let mut srun = cluster.on("n1", "srun");
    srun.args(["-J", "m6-hold", "-N3", "-n6"])
        .arg(cluster.mpi_link("mpi_probe"))
        .arg("--hold")
        .envs(cluster.mpi_settings())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut held = srun.spawn().expect("start srun");
    let (lines, seen) = mpsc::channel();
    let stdout = held.stdout.take().expect("piped");
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = lines.send(line);
        }
    });
    let stderr = held.stderr.take().expect("piped");
    let stderr_text = std::thread::spawn(move || {
        let mut text = String::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            text.push_str(&line);
            text.push('\n');
        }
        text
    });
    let mut text = String::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while ranks_in(&text).len() < RANKS {
        let left = deadline.saturating_duration_since(Instant::now());
        match seen.recv_timeout(left) {
            Ok(line) => {
                text.push_str(&line);
                text.push('\n');
            }
            Err(_) => {
                let _ = held.kill();
                panic!("the held job did not start its ranks: {text}\n{}", cluster.logs());
            }
        }
    }
    let ranks = ranks_in(&text);
    let pids: Vec<u32> = ranks.iter().map(|r| r.get("pid").parse().expect("pid")).collect();
    for pid in &pids {
        assert!(Path::new(&format!("/proc/{pid}")).exists(), "rank {pid} not running");
    }
    let out = cluster.run(cluster.on("n1", "scancel").args(["--name", "m6-hold"]));
    out.assert_success();
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = held.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = held.kill();
            panic!("srun still running 30 s after scancel\n{}", cluster.logs());
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(!status.success(), "a cancelled job step fails: {status}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while pids.iter().any(|pid| Path::new(&format!("/proc/{pid}")).exists()) {
        assert!(Instant::now() < deadline, "ranks still running after scancel: {pids:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
    let messages = stderr_text.join().unwrap_or_default();
    for node in &cluster.nodes {
        // The signal reached each node's ranks (SIGTERM: "Terminated").
        assert!(
            messages
                .lines()
                .any(|l| l.contains(&format!("{}: task", node.name)) && l.contains("Terminated")),
            "{}: {messages}",
            node.name
        );
    }

    // Then the image: gone from n3's view (its file system not mounted
    // there), as seen by the slurmd that starts n3's tasks.
    let slurmd = cluster.daemon_pid("slurmd", "n3");
    let hide = std::process::Command::new("/usr/bin/nsenter")
        .arg(format!("--target={slurmd}"))
        .args(["--mount", "--", "mount", "-t", "tmpfs", "-o", "mode=0755", "no-envs"])
        .arg(&cluster.bed.envs)
        .status()
        .expect("nsenter");
    assert!(hide.success());
    let mut srun = cluster.on("n1", "srun");
    srun.args(["-N3", "-n6"])
        .arg(cluster.mpi_link("mpi_probe"))
        .envs(cluster.mpi_settings());
    let started = Instant::now();
    let out = cluster.run_within(srun, Duration::from_secs(60));
    assert!(!out.status.success(), "{out:#?}");
    let image = cluster.bed.image(MPI_ENV);
    let errors: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.starts_with("launcher: ") && !l.starts_with("launcher: hint: "))
        .collect();
    assert_eq!(
        errors.len(),
        RANKS / NODES,
        "one launcher line per rank on n3: {out:#?}"
    );
    for line in &errors {
        assert!(
            line.contains("mpi-1.0.sqsh"),
            "names the image ({}): {line}",
            image.display()
        );
    }
    assert!(
        out.stderr
            .lines()
            .any(|l| l.contains("n3: task") && l.contains("Exited with exit code 125")),
        "n3's ranks exit 125: {}",
        out.stderr
    );
    eprintln!(
        "m6: failed job ended {:.1} s after its start",
        started.elapsed().as_secs_f64()
    );
}

/// M4 as users would run it, with OpenMPI's automatic `--prefix` (which the
/// launcher's absolute `argv[0]` turns on): the remote command is then one
/// shell line, `PATH=…:$PATH ; export PATH ; … orted …`, which the L16
/// builtin hands to `/bin/sh -c` inside the remote container.
#[test]
fn m4_pbs_tmrsh_with_openmpis_automatic_prefix() {
    let Some(cluster) = Cluster::start("m4_pbs_tmrsh_with_openmpis_automatic_prefix") else {
        return;
    };
    let pbs_tmrsh = cluster.mpi_link("pbs_tmrsh");
    let out = mpirun(&cluster, &[], &[("OMPI_MCA_plm_rsh_agent", &pbs_tmrsh)]);
    out.assert_success();
    assert_ranks_everywhere_inside(&out, &cluster);
}

/// L8 from inside the container, as `mpirun` calls its rsh agent: the env's
/// `ssh` link must run the host's ssh even when the env ships an `ssh` of
/// its own (conda's openssh), which inside comes first on `PATH`.
#[test]
fn l8_ssh_from_inside_is_the_hosts_even_when_the_env_ships_one() {
    let test = "l8_ssh_from_inside_is_the_hosts_even_when_the_env_ships_one";
    let Some(bed) = support::bed::Bed::for_test(test) else {
        return;
    };
    bed.add_env(&support::mpi_env::mpi_env().expect("MPI env"))
        .expect("add the MPI env");
    // An image on top of the env's with `bin/ssh`: as if the env had it.
    let overlay = bed.work.join("env-ssh.sqsh");
    support::images::squashfs_with(
        &[(
            &format!("opt/conda/{MPI_ENV}/bin/ssh"),
            "#!/bin/sh\necho \"the env's own ssh\"\n",
        )],
        &overlay,
    )
    .expect("overlay with an ssh");
    let ssh = bed.link(MPI_ENV, "ssh");
    let out = support::run::run(
        bed.command(bed.link(MPI_ENV, "launcher"))
            .env("CONTAINER_OVERLAY_PATH", &overlay)
            .args(["sh", "-c", &format!("{} n2 true", ssh.display())]),
    );
    assert_eq!(out.stdout_text().trim(), "host-ssh inside: n2 true", "{out:#?}");
}
