//! A real test cluster on one host (issue 12, scenarios M1–M6 in
//! `tests/cluster.rs`, docs/testing.md "Multi-node"): three "nodes", each a
//! network namespace with its own hostname, address, `slurmd` and `sshd`;
//! `slurmctld` and `munged` on the first. Real programs from Debian's
//! packages: Slurm 22.05, munge, OpenSSH, OpenMPI 4.1 (PMIx).
//!
//! ```text
//! bridge lcb<pid>.<n> (root namespace, no address)
//!   ├─ veth ─ netns lcl-<pid>-<n>-n1: eth0 198.18.0.2/24, hostname n1: munged, slurmctld, slurmd, sshd
//!   ├─ veth ─ netns lcl-<pid>-<n>-n2: eth0 198.18.0.3/24, hostname n2: slurmd, sshd
//!   └─ veth ─ netns lcl-<pid>-<n>-n3: eth0 198.18.0.4/24, hostname n3: slurmd, sshd
//! ```
//!
//! - Addresses only from 198.18.0.0/24 (the benchmarking range), only inside
//!   the namespaces made here; no default route, no NAT, no forwarding, IPv6
//!   off; every daemon and every client runs in a node, so nothing can reach
//!   anything else (a DNS lookup fails at once: no route).
//! - "On node nX" = `nsenter --net` into its namespace, then new UTS and
//!   mount namespaces: hostname `nX`, a private hosts file (n1..n3) bound
//!   over `/etc/hosts`, a tmpfs on `/run` (sshd's `/run/sshd`), and the
//!   cluster's own home bound over `/root` (remote shells never read the
//!   developer's `~/.bashrc`). Each step execs, so a daemon's PID is its own.
//!   The host's files are never touched.
//! - All nodes share the host's file system, as a parallel file system is
//!   shared: the bed (scripts tree, images, work dir) and the cluster's
//!   files (`<bed>/cluster/`: keys, configs, logs, Slurm spool) are on it.
//! - Keys and configs are made at set-up: munge key, ssh host and user keys,
//!   `slurm.conf`. `Drop` stops the daemons by PID (TERM, then KILL), kills
//!   by PID whatever else still runs in a node (job steps, ranks, ssh
//!   sessions), deletes the namespaces and the bridge; the bed then removes
//!   the directory. Also on a failed test (unwinding). Namespaces left by a
//!   test process that was killed (its PID is gone) are cleaned at the next
//!   start.
//! - Clusters in one test process come one at a time (a lock): the VM has
//!   two cores.
//!
//! ```ignore
//! let Some(cluster) = Cluster::start("m1_srun") else { return }; // SKIP printed
//! let out = cluster.run(cluster.on("n1", "srun").args(["-N3", "hostname"]));
//! ```

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::fs;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use super::bed::Bed;
use super::mpi_env::{self, MPI_ENV};
use super::prereq;
use super::run::Outcome;

/// The cluster's network; nothing else is ever addressed.
pub const SUBNET: &str = "198.18.0.0/24";
/// Nodes per cluster.
pub const NODES: usize = 3;
/// CPUs each node offers Slurm (`-N3 -n6` puts two ranks on each).
pub const CPUS_PER_NODE: usize = 2;
/// The longest a cluster command may take before the test fails as hung.
pub const COMMAND_LIMIT: Duration = Duration::from_secs(90);
/// How long set-up waits for the daemons to be ready.
const READY_LIMIT: Duration = Duration::from_secs(60);

/// Programs the cluster needs, and the Debian package of each.
const PROGRAMS: &[(&str, &str)] = &[
    ("/usr/sbin/slurmctld", "slurmctld"),
    ("/usr/sbin/slurmd", "slurmd"),
    ("/usr/bin/srun", "slurm-client"),
    ("/usr/bin/sbatch", "slurm-client"),
    ("/usr/bin/scancel", "slurm-client"),
    ("/usr/bin/sinfo", "slurm-client"),
    ("/usr/sbin/munged", "munge"),
    ("/usr/sbin/mungekey", "munge"),
    ("/usr/sbin/sshd", "openssh-server"),
    ("/usr/bin/ssh", "openssh-client"),
    ("/usr/bin/ssh-keygen", "openssh-client"),
    ("/usr/bin/mpirun", "openmpi-bin"),
    ("/usr/bin/orted", "openmpi-bin"),
    ("/usr/bin/mpicc", "libopenmpi-dev"),
    ("/usr/bin/nsenter", "util-linux"),
    ("/usr/bin/unshare", "util-linux"),
];
/// Slurm's PMIx plugin (`srun --mpi=pmix`; Debian's OpenMPI has no PMI1/2).
const PMIX_PLUGIN: &str = "/usr/lib/x86_64-linux-gnu/slurm-wlm/mpi_pmix.so";

/// Run on a node: hostname, private `/etc/hosts`, `/run`, home; then exec.
/// `$0` = node name, `$1` = hosts file, `$2` = home, the rest the command.
const NODE_ENTRY: &str = r#"set -e
hostname "$0"
mount --bind "$1" /etc/hosts
mount -t tmpfs -o mode=0755 launcher-node /run
mkdir -m 0755 /run/sshd
mount --bind "$2" /root
shift 2
exec "$@"
"#;

/// One "node".
#[derive(Debug, Clone)]
pub struct Node {
    /// `n1`, `n2`, …: its hostname and Slurm node name.
    pub name: String,
    /// Its address in [`SUBNET`].
    pub addr: String,
    /// Its network namespace, `/run/netns/<netns>`.
    pub netns: String,
    /// The host end of its veth pair (on the bridge).
    veth: String,
}

struct Daemon {
    what: String,
    log: PathBuf,
    child: Child,
}

/// A running cluster with a bed (main, second and MPI env) on its shared
/// file system. Dropping it stops everything.
pub struct Cluster {
    /// The installation the nodes share.
    pub bed: Bed,
    /// `<bed>/cluster`: keys, configs, logs, Slurm state and spool.
    pub dir: PathBuf,
    pub nodes: Vec<Node>,
    /// `SLURM_CONF` of every command run on a node.
    pub slurm_conf: PathBuf,
    /// The ssh client config (`hostbin/ssh` passes it with `-F`).
    pub ssh_config: PathBuf,
    /// One line per call of the site `ssh` (`hostbin/ssh`): inside|outside, args.
    pub ssh_log: PathBuf,
    /// One line per call of the `pbs_tmrsh` stand-in: host, command.
    pub pbs_tmrsh_log: PathBuf,
    /// The bridge in the root namespace.
    pub bridge: String,
    hosts: PathBuf,
    home: PathBuf,
    daemons: Vec<Daemon>,
    _one_at_a_time: MutexGuard<'static, ()>,
}

/// Clusters of one test process, one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

impl Cluster {
    /// A running cluster of [`NODES`] nodes, or `None` after printing why it
    /// cannot run here (a failure under `LAUNCHER_E2E_REQUIRED=1`). Panics,
    /// with the daemons' logs, when set-up fails on a machine that has
    /// everything.
    pub fn start(test: &str) -> Option<Cluster> {
        if !prereq::bed_available(test) || !prereq::allowed(test, unavailable_reason()) {
            return None;
        }
        let serial = SERIAL.lock().unwrap_or_else(PoisonError::into_inner);
        reap_stale();
        let started = Instant::now();
        let bed = Bed::for_test(test)?;
        let mpi = mpi_env::mpi_env().unwrap_or_else(|e| panic!("{test}: cannot build the MPI env: {e}"));
        bed.add_env(&mpi)
            .unwrap_or_else(|e| panic!("{test}: cannot install the MPI env: {e}"));
        // From here on, Drop undoes whatever set-up did, also when it panics.
        let mut cluster = Cluster::prepare(bed, serial);
        if let Err(e) = cluster.set_up() {
            panic!("{test}: cannot start the test cluster: {e}\n{}", cluster.logs());
        }
        eprintln!(
            "{test}: cluster of {NODES} nodes up in {:.1} s ({})",
            started.elapsed().as_secs_f64(),
            cluster.dir.display()
        );
        Some(cluster)
    }

    fn prepare(bed: Bed, serial: MutexGuard<'static, ()>) -> Cluster {
        static SEQUENCE: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let seq = SEQUENCE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let pid = std::process::id();
        let dir = bed.root.join("cluster");
        let nodes = (1..=NODES)
            .map(|i| Node {
                name: format!("n{i}"),
                addr: format!("198.18.0.{}", i + 1),
                netns: netns_name(pid, seq, i),
                veth: format!("lcv{pid:x}.{seq:x}.{i}"),
            })
            .collect();
        Cluster {
            slurm_conf: dir.join("slurm/slurm.conf"),
            ssh_config: dir.join("ssh/config"),
            ssh_log: dir.join("log/ssh-calls.log"),
            pbs_tmrsh_log: dir.join("log/pbs_tmrsh-calls.log"),
            hosts: dir.join("hosts"),
            home: dir.join("home"),
            bridge: bridge_name(pid, seq),
            dir,
            nodes,
            bed,
            daemons: Vec::new(),
            _one_at_a_time: serial,
        }
    }

    fn set_up(&mut self) -> Result<(), String> {
        for sub in [
            "log",
            "home",
            "ssh",
            "munge",
            "munge-socket",
            "slurm/state",
            "slurm/spool",
            "slurm/tmp",
        ] {
            mkdir(&self.dir.join(sub))?;
        }
        for node in &self.nodes {
            mkdir(&self.dir.join("slurm/tmp").join(&node.name))?;
        }
        // munged refuses a socket directory others cannot reach; the key's
        // must be private.
        chmod(&self.dir.join("munge-socket"), 0o755)?;
        chmod(&self.dir.join("munge"), 0o700)?;
        chmod(&self.dir, 0o755)?;
        self.write_files()?;
        self.make_keys()?;
        self.make_network()?;
        self.start_daemons()?;
        self.wait_ready()
    }

    /// hosts, ssh configs, slurm.conf, and the site commands in `hostbin/`.
    fn write_files(&self) -> Result<(), String> {
        let mut hosts = String::from("127.0.0.1 localhost\n");
        for node in &self.nodes {
            hosts.push_str(&format!("{} {}\n", node.addr, node.name));
        }
        write(&self.hosts, &hosts)?;
        let ssh = self.dir.join("ssh");
        write(
            &ssh.join("sshd_config"),
            &format!(
                "Port 22\nAddressFamily inet\nListenAddress 0.0.0.0\nHostKey {ssh}/host_ed25519\n\
                 AuthorizedKeysFile {ssh}/authorized_keys\nPermitRootLogin prohibit-password\n\
                 PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n\
                 # the keys sit under /tmp, which others can write\nStrictModes no\n\
                 PidFile none\nPrintMotd no\nPrintLastLog no\nUseDNS no\nX11Forwarding no\n",
                ssh = ssh.display()
            ),
        )?;
        write(
            &self.ssh_config,
            &format!(
                "Host *\n  User root\n  IdentityFile {ssh}/id_ed25519\n  IdentitiesOnly yes\n\
                 \x20 StrictHostKeyChecking no\n  UserKnownHostsFile /dev/null\n  GlobalKnownHostsFile /dev/null\n\
                 \x20 AddressFamily inet\n  BatchMode yes\n  ConnectTimeout 10\n  LogLevel ERROR\n",
                ssh = ssh.display()
            ),
        )?;
        write(&self.slurm_conf, &self.slurm_conf_text())?;
        if Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
            // cgroup v2 only, no systemd: what Slurm 22.05 needs there
            // (not exercised on the project's hybrid-cgroup VM).
            write(
                &self.slurm_conf.with_file_name("cgroup.conf"),
                "CgroupPlugin=cgroup/v2\nIgnoreSystemd=yes\n",
            )?;
        }
        // The site's ssh: OpenSSH with the cluster's client config. Every
        // call is logged with where it ran (L8: a host command, also when
        // called from inside a container).
        self.bed.write_executable(
            &self.bed.hostbin.join("ssh"),
            &format!(
                "#!/bin/sh\n\
                 # The site's ssh on the test cluster (logged: where it ran, arguments).\n\
                 if [ -d /.singularity.d ]; then where=inside; else where=outside; fi\n\
                 echo \"ssh $where: $*\" >> {log}\n\
                 exec /usr/bin/ssh -F {config} \"$@\"\n",
                log = self.ssh_log.display(),
                config = self.ssh_config.display()
            ),
        )?;
        self.bed.write_executable(
            &self.bed.hostbin.join("pbs_tmrsh"),
            &format!(
                "#!/bin/sh\n\
                 # pbs_tmrsh stand-in on the test cluster: PBS's remote shell, built on ssh.\n\
                 # pbs_tmrsh [-n] [-l USER|-lUSER] HOST [-n] [-l USER] CMD ARGS...: CMD ARGS start\n\
                 # on HOST with none of the caller's environment (env -i), as a PBS remote\n\
                 # start does. Like PBS's tm_spawn, and unlike ssh, it runs CMD ARGS as\n\
                 # given, no shell: each word is quoted for the ssh transport.\n\
                 skip() {{ n=0; while [ $# -gt 0 ]; do case \"$1\" in -n) shift; n=$((n+1));; -l) shift 2; n=$((n+2));; -l?*) shift; n=$((n+1));; *) break;; esac; done; }}\n\
                 skip \"$@\"; shift $n\n\
                 host=$1; shift\n\
                 skip \"$@\"; shift $n\n\
                 echo \"pbs_tmrsh $host: $*\" >> {log}\n\
                 q=; for a in \"$@\"; do q=\"$q '$(printf '%s' \"$a\" | sed \"s/'/'\\\\\\\\''/g\")'\"; done\n\
                 exec /usr/bin/ssh -F {config} -- \"$host\" \"exec /usr/bin/env -i$q\"\n",
                log = self.pbs_tmrsh_log.display(),
                config = self.ssh_config.display()
            ),
        )?;
        Ok(())
    }

    fn slurm_conf_text(&self) -> String {
        let d = self.dir.display();
        let controller = &self.nodes[0];
        let mut text = format!(
            "# Test cluster (tests/support/cluster.rs); made at set-up.\n\
             ClusterName=launcher-test\n\
             SlurmctldHost={ctl}({ctl_addr})\n\
             AuthType=auth/munge\nCredType=cred/munge\n\
             AuthInfo=socket={d}/munge-socket/munge.socket\n\
             SlurmUser=root\nSlurmdUser=root\n\
             StateSaveLocation={d}/slurm/state\n\
             # %n: the nodes share one disk\n\
             SlurmdSpoolDir={d}/slurm/spool/%n\n\
             SlurmctldPidFile={d}/slurm/slurmctld.pid\nSlurmdPidFile={d}/slurm/slurmd-%n.pid\n\
             SlurmctldLogFile={d}/log/slurmctld.log\nSlurmdLogFile={d}/log/slurmd-%n.log\n\
             # PMIx puts its per-job dirs here: one per node, or they collide\n\
             TmpFS={d}/slurm/tmp/%n\n\
             ProctrackType=proctrack/linuxproc\nTaskPlugin=task/none\n\
             # Debian's OpenMPI has no PMI1/PMI2 support: PMIx for every srun\n\
             MpiDefault=pmix\n\
             # a rank that fails before MPI_Init must not leave the others waiting\n\
             KillOnBadExit=1\n\
             KillWait=5\nInactiveLimit=0\nMessageTimeout=10\n\
             SlurmctldTimeout=30\nSlurmdTimeout=30\nReturnToService=2\n\
             MailProg=/bin/true\n\
             # the nodes' real CPUs are the host's\n\
             SlurmdParameters=config_overrides\n\
             SchedulerType=sched/builtin\nSelectType=select/cons_tres\nSelectTypeParameters=CR_CPU\n\
             AccountingStorageType=accounting_storage/none\nJobAcctGatherType=jobacct_gather/none\n\
             JobCompType=jobcomp/none\n",
            ctl = controller.name,
            ctl_addr = controller.addr,
        );
        for node in &self.nodes {
            text.push_str(&format!(
                "NodeName={} NodeAddr={} CPUs={CPUS_PER_NODE} State=UNKNOWN\n",
                node.name, node.addr
            ));
        }
        text.push_str("PartitionName=main Nodes=ALL Default=YES MaxTime=INFINITE State=UP\n");
        text
    }

    fn make_keys(&self) -> Result<(), String> {
        let ssh = self.dir.join("ssh");
        for key in ["host_ed25519", "id_ed25519"] {
            let mut keygen = Command::new("/usr/bin/ssh-keygen");
            keygen
                .args(["-q", "-t", "ed25519", "-N", "", "-C", "launcher-test-cluster", "-f"])
                .arg(ssh.join(key));
            check(&mut keygen, "ssh-keygen")?;
        }
        fs::copy(ssh.join("id_ed25519.pub"), ssh.join("authorized_keys"))
            .map_err(|e| format!("authorized_keys: {e}"))?;
        let mut mungekey = Command::new("/usr/sbin/mungekey");
        mungekey
            .arg("--create")
            .arg(format!("--keyfile={}", self.dir.join("munge/munge.key").display()));
        check(&mut mungekey, "mungekey")
    }

    /// The bridge, one namespace and veth pair per node, addresses; IPv6
    /// off before any link is up (no router solicitations, no DAD).
    fn make_network(&self) -> Result<(), String> {
        ip(&["link", "add", &self.bridge, "type", "bridge"])?;
        disable_ipv6(&self.bridge)?;
        ip(&["link", "set", &self.bridge, "up"])?;
        for node in &self.nodes {
            ip(&["netns", "add", &node.netns])?;
            let mut sysctl = self.in_netns(node, "/bin/sh");
            sysctl.args([
                "-c",
                "for f in /proc/sys/net/ipv6/conf/default/disable_ipv6 /proc/sys/net/ipv6/conf/all/disable_ipv6; \
                 do [ ! -e $f ] || echo 1 > $f; done",
            ]);
            check(&mut sysctl, "disable IPv6 in the node")?;
            ip(&[
                "link",
                "add",
                &node.veth,
                "type",
                "veth",
                "peer",
                "name",
                "eth0",
                "netns",
                &node.netns,
            ])?;
            disable_ipv6(&node.veth)?;
            ip(&["link", "set", &node.veth, "master", &self.bridge, "up"])?;
            let cidr = format!("{}/24", node.addr);
            for args in [
                vec!["addr", "add", cidr.as_str(), "dev", "eth0"],
                vec!["link", "set", "eth0", "up"],
                vec!["link", "set", "lo", "up"],
            ] {
                let mut all = vec!["-n", node.netns.as_str()];
                all.extend(args);
                ip(&all)?;
            }
        }
        Ok(())
    }

    fn start_daemons(&mut self) -> Result<(), String> {
        let d = self.dir.clone();
        let conf = self.slurm_conf.display().to_string();
        let socket = d.join("munge-socket/munge.socket");
        self.spawn_daemon(
            "n1",
            "munged",
            &[
                "/usr/sbin/munged".into(),
                "--foreground".into(),
                format!("--key-file={}", d.join("munge/munge.key").display()),
                format!("--socket={}", socket.display()),
                format!("--pid-file={}", d.join("munge/munged.pid").display()),
                format!("--seed-file={}", d.join("munge/munged.seed").display()),
                "--num-threads=2".into(),
            ],
        )?;
        wait_for(&mut self.daemons, "munged's socket", || socket.exists())?;
        self.spawn_daemon(
            "n1",
            "slurmctld",
            &[
                "/usr/sbin/slurmctld".into(),
                "-D".into(),
                "-i".into(),
                "-f".into(),
                conf.clone(),
            ],
        )?;
        let names: Vec<String> = self.nodes.iter().map(|n| n.name.clone()).collect();
        for name in &names {
            self.spawn_daemon(
                name,
                "slurmd",
                &[
                    "/usr/sbin/slurmd".into(),
                    "-D".into(),
                    "-N".into(),
                    name.clone(),
                    "-f".into(),
                    conf.clone(),
                ],
            )?;
            self.spawn_daemon(
                name,
                "sshd",
                &[
                    "/usr/sbin/sshd".into(),
                    "-D".into(),
                    "-e".into(),
                    "-f".into(),
                    d.join("ssh/sshd_config").display().to_string(),
                ],
            )?;
        }
        Ok(())
    }

    fn spawn_daemon(&mut self, node: &str, what: &str, argv: &[String]) -> Result<(), String> {
        let log = self.dir.join("log").join(format!("{what}-{node}.out"));
        let out = fs::File::create(&log).map_err(|e| format!("{}: {e}", log.display()))?;
        let err = out.try_clone().map_err(|e| e.to_string())?;
        let mut command = self.on(node, &argv[0]);
        command.args(&argv[1..]).stdin(Stdio::null()).stdout(out).stderr(err);
        let child = command
            .spawn()
            .map_err(|e| format!("cannot start {what} on {node}: {e}"))?;
        self.daemons.push(Daemon {
            what: format!("{what} on {node}"),
            log,
            child,
        });
        Ok(())
    }

    /// Every node `idle` in Slurm, every sshd answering.
    fn wait_ready(&mut self) -> Result<(), String> {
        let nodes = self.nodes.len();
        let mut sinfo = self.on("n1", "sinfo");
        sinfo.args(["-h", "-N", "-o", "%N %t"]);
        wait_for(&mut self.daemons, "every node idle in sinfo", || {
            let out = sinfo.output();
            let text = out
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                .unwrap_or_default();
            text.lines().filter(|l| l.ends_with(" idle")).count() == nodes
        })?;
        for node in self.nodes.clone() {
            let mut ssh = self.on("n1", "/usr/bin/ssh");
            ssh.arg("-F")
                .arg(&self.ssh_config)
                .args([node.name.as_str(), "true"])
                .stdin(Stdio::null());
            wait_for(&mut self.daemons, &format!("sshd on {}", node.name), || {
                ssh.output().is_ok_and(|o| o.status.success())
            })?;
        }
        Ok(())
    }

    /// `program` on node `name` (`n1`, …) with the bed's clean environment
    /// (`PATH` = `hostbin` + system dirs, no scripts dir: no module
    /// loaded), `SLURM_CONF`, the OpenMPI root allowance, in the bed's
    /// `work/`. Add arguments and variables as to any `Command`.
    pub fn on(&self, name: &str, program: impl AsRef<OsStr>) -> Command {
        let node = self.node(name);
        let mut command = self.in_netns(node, "/usr/bin/unshare");
        command
            .args([
                "--uts",
                "--mount",
                "--propagation",
                "private",
                "--",
                "/bin/sh",
                "-c",
                NODE_ENTRY,
            ])
            .arg(&node.name)
            .arg(&self.hosts)
            .arg(&self.home)
            .arg(program)
            .env_clear()
            .env("PATH", self.bed.host_path())
            .env("HOME", &self.bed.home)
            .env("LANG", "C.UTF-8")
            .env("SLURM_CONF", &self.slurm_conf)
            .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
            .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
            .current_dir(&self.bed.work);
        command
    }

    fn in_netns(&self, node: &Node, program: &str) -> Command {
        let mut command = Command::new("/usr/bin/nsenter");
        command
            .arg(format!("--net=/run/netns/{}", node.netns))
            .arg("--")
            .arg(program);
        command
    }

    pub fn node(&self, name: &str) -> &Node {
        self.nodes
            .iter()
            .find(|n| n.name == name)
            .unwrap_or_else(|| panic!("no node {name} in the cluster"))
    }

    /// OpenMPI settings for the cluster's network (docs/admin-guide.md,
    /// "Multi-node"): TCP only, on the cluster's subnet.
    pub fn mpi_settings(&self) -> [(&'static str, &'static str); 3] {
        [
            ("OMPI_MCA_btl", "tcp,self"),
            ("OMPI_MCA_btl_tcp_if_include", SUBNET),
            ("OMPI_MCA_oob_tcp_if_include", SUBNET),
        ]
    }

    /// `<scripts>/mpi-1.0.d/bin/<command>`.
    pub fn mpi_link(&self, command: &str) -> PathBuf {
        self.bed.link(MPI_ENV, command)
    }

    /// PID of a daemon (`"slurmd"`, `"sshd"`, …) on a node.
    pub fn daemon_pid(&self, what: &str, node: &str) -> u32 {
        let name = format!("{what} on {node}");
        self.daemons
            .iter()
            .find(|d| d.what == name)
            .map(|d| d.child.id())
            .unwrap_or_else(|| panic!("no {name}"))
    }

    /// Every daemon: what and where, PID.
    pub fn daemon_pids(&self) -> Vec<(String, u32)> {
        self.daemons.iter().map(|d| (d.what.clone(), d.child.id())).collect()
    }

    /// Run to completion with a hang guard of `limit`: a command still
    /// running then is killed (SIGKILL, by PID) and the test fails.
    #[track_caller]
    pub fn run_within(&self, mut command: impl std::borrow::BorrowMut<Command>, limit: Duration) -> Outcome {
        let command = command.borrow_mut();
        let described = format!("{command:?}");
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {described}: {e}"));
        let mut out = child.stdout.take().expect("piped");
        let mut err = child.stderr.take().expect("piped");
        let reader_out = std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = out.read_to_end(&mut buf);
            buf
        });
        let reader_err = std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = err.read_to_end(&mut buf);
            buf
        });
        let deadline = Instant::now() + limit;
        let status = loop {
            if let Some(status) = child.try_wait().expect("wait") {
                break Some(status);
            }
            if Instant::now() > deadline {
                let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGKILL);
                let _ = child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        // A daemon's child (a job step) may hold the pipes open: give the
        // readers a moment, not forever.
        let stdout = join_within(reader_out, Duration::from_secs(10));
        let stderr = String::from_utf8_lossy(&join_within(reader_err, Duration::from_secs(10))).into_owned();
        let Some(status) = status else {
            panic!(
                "{described} did not finish within {limit:?} and was killed\nstdout: {}\nstderr: {stderr}\n{}",
                String::from_utf8_lossy(&stdout),
                self.logs()
            );
        };
        Outcome { status, stdout, stderr }
    }

    /// [`run_within`](Self::run_within) with [`COMMAND_LIMIT`].
    #[track_caller]
    pub fn run(&self, command: impl std::borrow::BorrowMut<Command>) -> Outcome {
        self.run_within(command, COMMAND_LIMIT)
    }

    /// The end of every daemon's output and log, for a failure message.
    pub fn logs(&self) -> String {
        let mut text = String::new();
        let mut files: BTreeSet<PathBuf> = self.daemons.iter().map(|d| d.log.clone()).collect();
        if let Ok(entries) = fs::read_dir(self.dir.join("log")) {
            files.extend(entries.flatten().map(|e| e.path()));
        }
        for file in files {
            let content = fs::read_to_string(&file).unwrap_or_default();
            let lines: Vec<&str> = content.lines().collect();
            let tail = &lines[lines.len().saturating_sub(15)..];
            text.push_str(&format!(
                "--- {} (last {} lines)\n{}\n",
                file.display(),
                tail.len(),
                tail.join("\n")
            ));
        }
        text
    }

    /// PIDs of every process in a node's network namespace.
    pub fn processes_on_nodes(&self) -> Vec<u32> {
        let inodes: Vec<(u64, u64)> = self
            .nodes
            .iter()
            .filter_map(|n| fs::metadata(format!("/run/netns/{}", n.netns)).ok())
            .map(|m| (m.dev(), m.ino()))
            .collect();
        processes_in(&inodes)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // 1. The daemons, by PID: TERM, a grace period, then KILL.
        for daemon in &self.daemons {
            let _ = kill(Pid::from_raw(daemon.child.id() as i32), Signal::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        for daemon in &mut self.daemons {
            while daemon.child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            if daemon.child.try_wait().ok().flatten().is_none() {
                let _ = daemon.child.kill();
                let _ = daemon.child.wait();
            }
        }
        // 2. Whatever else still runs on a node (job steps, ranks, remote
        //    shells), by PID.
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let left = self.processes_on_nodes();
            if left.is_empty() || Instant::now() > deadline {
                break;
            }
            for pid in left {
                let _ = kill(Pid::from_raw(pid as i32), Signal::SIGKILL);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        // 3. The network.
        for node in &self.nodes {
            let _ = ip(&["netns", "delete", &node.netns]);
        }
        let _ = ip(&["link", "delete", &self.bridge]);
    }
}

/// Why no cluster can run here (besides the bed's own needs).
pub fn unavailable_reason() -> Option<String> {
    if !nix::unistd::geteuid().is_root() {
        return Some("the test cluster needs root (network namespaces, slurmd, sshd)".into());
    }
    let missing: Vec<String> = PROGRAMS
        .iter()
        .filter(|(path, _)| !Path::new(path).exists())
        .map(|(path, package)| format!("{path} ({package})"))
        .collect();
    if !missing.is_empty() {
        return Some(format!(
            "missing {}; install slurmctld slurmd slurm-client munge openmpi-bin libopenmpi-dev \
             openssh-server openssh-client iproute2 (.ci/run does)",
            missing.join(", ")
        ));
    }
    if ip_binary().is_none() {
        return Some("ip not found (iproute2)".into());
    }
    if !Path::new(PMIX_PLUGIN).exists() {
        return Some(format!(
            "{PMIX_PLUGIN} missing: Slurm without PMIx (slurm-wlm-basic-plugins)"
        ));
    }
    let netns = Command::new("/usr/bin/unshare")
        .args(["--net", "--uts", "--mount", "true"])
        .output();
    if !netns.is_ok_and(|o| o.status.success()) {
        return Some("cannot create network namespaces (needs CAP_SYS_ADMIN and CAP_NET_ADMIN)".into());
    }
    None
}

/// Poll `ready` until true; fail early when a daemon has died.
fn wait_for(daemons: &mut [Daemon], what: &str, mut ready: impl FnMut() -> bool) -> Result<(), String> {
    let deadline = Instant::now() + READY_LIMIT;
    loop {
        if ready() {
            return Ok(());
        }
        for daemon in daemons.iter_mut() {
            if let Ok(Some(status)) = daemon.child.try_wait() {
                return Err(format!("{} exited ({status}) while waiting for {what}", daemon.what));
            }
        }
        if Instant::now() > deadline {
            return Err(format!("timed out after {READY_LIMIT:?} waiting for {what}"));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn netns_name(pid: u32, seq: u32, node: usize) -> String {
    format!("lcl-{pid}-{seq}-n{node}")
}

/// Interface names are at most 15 bytes: `lcb` + PID (≤ 6 hex) + `.` + sequence.
fn bridge_name(pid: u32, seq: u32) -> String {
    format!("lcb{pid:x}.{seq:x}")
}

/// Namespaces and bridges left by test processes that no longer exist
/// (killed before `Drop` ran): their processes are killed by PID, then they
/// are deleted.
fn reap_stale() {
    let Ok(entries) = fs::read_dir("/run/netns") else {
        return;
    };
    let mut bridges = BTreeSet::new();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let parts: Vec<&str> = name.split('-').collect();
        let [_, pid, seq, _] = parts[..] else { continue };
        if !name.starts_with("lcl-") {
            continue;
        }
        let (Ok(pid), Ok(seq)) = (pid.parse::<u32>(), seq.parse::<u32>()) else {
            continue;
        };
        if Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        if let Ok(meta) = entry.metadata() {
            for victim in processes_in(&[(meta.dev(), meta.ino())]) {
                let _ = kill(Pid::from_raw(victim as i32), Signal::SIGKILL);
            }
        }
        let _ = ip(&["netns", "delete", &name]);
        bridges.insert(bridge_name(pid, seq));
    }
    for bridge in bridges {
        if Path::new("/sys/class/net").join(&bridge).exists() {
            let _ = ip(&["link", "delete", &bridge]);
        }
    }
}

/// PIDs whose network namespace is one of `namespaces` (device, inode).
fn processes_in(namespaces: &[(u64, u64)]) -> Vec<u32> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            fs::metadata(format!("/proc/{pid}/ns/net")).is_ok_and(|m| namespaces.contains(&(m.dev(), m.ino())))
        })
        .collect()
}

fn ip_binary() -> Option<&'static str> {
    ["/usr/sbin/ip", "/usr/bin/ip", "/sbin/ip", "/bin/ip"]
        .into_iter()
        .find(|p| Path::new(p).exists())
}

fn ip(args: &[&str]) -> Result<(), String> {
    let mut command = Command::new(ip_binary().unwrap_or("ip"));
    command.args(args);
    check(&mut command, &format!("ip {}", args.join(" ")))
}

fn disable_ipv6(interface: &str) -> Result<(), String> {
    let knob = format!("/proc/sys/net/ipv6/conf/{interface}/disable_ipv6");
    if Path::new(&knob).exists() {
        fs::write(&knob, "1").map_err(|e| format!("{knob}: {e}"))?;
    }
    Ok(())
}

fn check(command: &mut Command, what: &str) -> Result<(), String> {
    let output = command.output().map_err(|e| format!("cannot run {what}: {e}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{what} failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

fn mkdir(dir: &Path) -> Result<(), String> {
    fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))
}

fn chmod(path: &Path, mode: u32) -> Result<(), String> {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).map_err(|e| format!("chmod {}: {e}", path.display()))
}

fn write(path: &Path, text: &str) -> Result<(), String> {
    fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))
}

fn join_within(reader: std::thread::JoinHandle<Vec<u8>>, limit: Duration) -> Vec<u8> {
    let deadline = Instant::now() + limit;
    while !reader.is_finished() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    if reader.is_finished() {
        reader.join().unwrap_or_default()
    } else {
        b"(output still held open by another process)".to_vec()
    }
}
