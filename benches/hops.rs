//! Whole-process benchmark of the launcher's hops, with a syscall census
//! (issue 6; L23; testing.md "Performance").
//!
//! Run after `cargo build --release -p launcher`:
//!
//! ```sh
//! cargo bench --bench hops            # HOPS_ITERATIONS=N to change the count
//! ```
//!
//! In one run, on one machine, interleaved so that noise hits all alike:
//! (a) a static no-op program run directly; (b) the outside hop: a link →
//! launcher → a no-op "runtime"; (c) the inside hop: a link inside a fake
//! container root (marker present) → launcher → the no-op program; (d) a bash
//! wrapper doing the job of (b) in the style such wrappers have. Prints
//! medians and spread, each hop's overhead over (a), the ratio (d)/(b), the
//! syscall census of each hop, and the scaling cases. Exits 1 when a budget
//! fails, 2 when it cannot run.

#[path = "common/mod.rs"]
mod common;
use common::release_launcher;

use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Budget of one hop's overhead over a direct exec of the no-op (µs).
const HOP_BUDGET_US: f64 = 1000.0;
/// What the launcher may add over the cheapest possible exec hop (e) (µs).
/// On this kind of VM an exec alone costs 300–700 µs, which dwarfs the
/// launcher's own work; this budget is the one that catches a regression.
const OWN_WORK_BUDGET_US: f64 = 250.0;
/// L23: system calls of one hop before its final execve.
const TOTAL_CALLS_BUDGET: usize = 40;
/// L23: file-system calls of the inside hop before its final execve.
const FS_CALLS_BUDGET_INSIDE: usize = 12;
/// The outside hop also stats each bind, the runtime, the base image, the
/// env image and the two compat override paths, and opens env.toml: see
/// docs/performance.md for the itemised list. With one bind: 16.
const FS_CALLS_BUDGET_OUTSIDE: usize = 16;

fn fail(message: &str) -> ! {
    eprintln!("hops: {message}");
    std::process::exit(2);
}

fn write_exe(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// A static no-op program: the floor every hop is measured against.
fn build_noop(dir: &Path) -> PathBuf {
    build_static_c(dir, "noop", "int main(void) { return 0; }\n")
}

/// The cheapest possible hop: a static C program that only execs the no-op.
/// What it costs over (a) is the price of any exec on this machine.
fn build_c_hop(dir: &Path, noop: &Path) -> PathBuf {
    let source = format!(
        "#include <unistd.h>\nint main(void) {{ char *argv[] = {{ \"{0}\", 0 }}; execv(\"{0}\", argv); return 127; }}\n",
        noop.display()
    );
    build_static_c(dir, "c-hop", &source)
}

fn build_static_c(dir: &Path, name: &str, source: &str) -> PathBuf {
    let src = dir.join(format!("{name}.c"));
    let bin = dir.join(name);
    std::fs::write(&src, source).unwrap();
    let status = Command::new("cc")
        .args(["-static", "-O2", "-o"])
        .arg(&bin)
        .arg(&src)
        .status()
        .unwrap_or_else(|e| {
            fail(&format!(
                "cannot run cc to build the static helper programs: {e} (apt-get install gcc libc6-dev)"
            ))
        });
    if !status.success() {
        fail("cc -static failed (is libc6-dev installed?)");
    }
    bin
}

/// One scripts tree: `<root>/scripts/{launcher,launcher.toml}`,
/// `<root>/scripts/e-1.d/bin/noop -> ../../launcher` plus `extra_links`
/// more links, `<root>/envs/e-1.sqsh`, `<root>/base.sif`, and the no-op as
/// runtime and as the env's real `noop`.
struct TreeSpec<'a> {
    inside: bool,
    extra_links: usize,
    binds: usize,
    noop: &'a Path,
    launcher: &'a Path,
}

fn build_tree(root: &Path, spec: &TreeSpec) {
    let scripts = root.join("scripts");
    let bin = scripts.join("e-1.d/bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::copy(spec.launcher, scripts.join("launcher")).unwrap();
    symlink("../../launcher", bin.join("noop")).unwrap();
    for i in 0..spec.extra_links {
        symlink("../../launcher", bin.join(format!("tool{i:05}"))).unwrap();
    }
    symlink("e-1.d", scripts.join("e.d")).unwrap();
    std::fs::create_dir_all(root.join("envs")).unwrap();
    std::fs::write(root.join("envs/e-1.sqsh"), "").unwrap();
    std::fs::write(root.join("base.sif"), "").unwrap();
    std::fs::create_dir_all(root.join("rt")).unwrap();
    std::fs::copy(spec.noop, root.join("rt/apptainer")).unwrap();
    std::fs::create_dir_all(root.join("opt/conda/e-1/bin")).unwrap();
    std::fs::copy(spec.noop, root.join("opt/conda/e-1/bin/noop")).unwrap();
    if spec.inside {
        std::fs::create_dir_all(root.join("marker")).unwrap();
    }
    let mut binds = vec!["\"/etc\"".to_string()];
    for i in 1..spec.binds {
        let dir = root.join(format!("bind{i:02}"));
        std::fs::create_dir_all(&dir).unwrap();
        binds.push(format!("\"{}\"", dir.display()));
    }
    let config = format!(
        "[runtime]\npath = \"../rt/apptainer\"\nflavour = \"apptainer\"\nimage = \"../base.sif\"\n\
         [container]\nenvs_dir = \"../envs\"\nmarker = \"../marker\"\nprefix = \"{}\"\nbinds = [{}]\n\
         [container.env]\nPYTHONNOUSERSITE = \"x\"\n",
        root.join("opt/conda").display(),
        binds.join(", ")
    );
    std::fs::write(scripts.join("launcher.toml"), config).unwrap();
}

/// The baseline users know: a bash wrapper that sources a config file,
/// resolves itself with realpath, takes the command from its name with
/// parameter expansions, and execs the runtime.
fn build_bash_wrapper(root: &Path) -> PathBuf {
    let dir = root.join("bash-scripts");
    std::fs::create_dir_all(dir.join("e-1.d/bin")).unwrap();
    std::fs::write(
        dir.join("launcher_conf.sh"),
        format!(
            "export SINGULARITY_BINARY_PATH={rt}\nexport CONTAINER_PATH={base}\nexport ENVS_DIR={envs}\n\
             export CONDA_INSTALLATION_PATH=/opt/conda\nexport SINGULARITYENV_PYTHONNOUSERSITE=x\n\
             declare -a bind_dirs=( \"/etc\" )\n",
            rt = root.join("rt/apptainer").display(),
            base = root.join("base.sif").display(),
            envs = root.join("envs").display()
        ),
    )
    .unwrap();
    write_exe(
        &dir.join("launcher.sh"),
        r#"#!/bin/bash
source "$( dirname "$( realpath "${BASH_SOURCE[0]}" )" )/launcher_conf.sh"
cmd="${0##*/}"
env_dir="${0%/bin/*}"
env_name="${env_dir##*/}"
env_name="${env_name%.d}"
overlays=( "--overlay=${ENVS_DIR}/${env_name}.sqsh" )
IFS=: read -ra extra <<< "${CONTAINER_OVERLAY_PATH:-}"
for o in "${extra[@]}"; do [[ -n "$o" ]] && overlays+=( "--overlay=$o" ); done
binds=""
for d in "${bind_dirs[@]}"; do [[ -e "$d" ]] && binds="${binds:+$binds,}$d"; done
export SINGULARITYENV_PREPEND_PATH="${CONDA_INSTALLATION_PATH}/${env_name}/bin:${PATH}"
exec "$SINGULARITY_BINARY_PATH" -s exec --bind "$binds" "${overlays[@]}" "$CONTAINER_PATH" "$0" "$@"
"#,
    );
    symlink("../../launcher.sh", dir.join("e-1.d/bin/noop")).unwrap();
    dir.join("e-1.d/bin/noop")
}

struct Variant {
    name: &'static str,
    program: PathBuf,
    /// `PATH` for this variant's runs.
    path_var: String,
    samples: Vec<Duration>,
}

impl Variant {
    fn new(name: &'static str, program: &Path, path_var: &str) -> Variant {
        Variant {
            name,
            program: program.to_path_buf(),
            path_var: path_var.to_string(),
            samples: Vec::new(),
        }
    }
}

fn run_once(program: &Path, path_var: &str) -> Duration {
    let start = Instant::now();
    let status = Command::new(program)
        .env("PATH", path_var)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .status()
        .unwrap_or_else(|e| fail(&format!("cannot run {}: {e}", program.display())));
    let elapsed = start.elapsed();
    if !status.success() {
        fail(&format!("{} exited with {status}", program.display()));
    }
    elapsed
}

/// Median, 10th and 90th percentile, in µs.
fn stats(samples: &[Duration]) -> (f64, f64, f64) {
    let mut us: Vec<f64> = samples.iter().map(|d| d.as_secs_f64() * 1e6).collect();
    us.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let at = |q: f64| us[((us.len() - 1) as f64 * q).round() as usize];
    (at(0.5), at(0.1), at(0.9))
}

/// Interleave the variants `iterations` times; returns them with samples.
fn measure(mut variants: Vec<Variant>, iterations: usize) -> Vec<Variant> {
    for v in &variants {
        for _ in 0..20 {
            run_once(&v.program, &v.path_var); // warm the page cache
        }
    }
    for _ in 0..iterations {
        for v in variants.iter_mut() {
            let d = run_once(&v.program, &v.path_var);
            v.samples.push(d);
        }
    }
    variants
}

/// Syscalls one hop makes before its final execve.
struct Census {
    total: usize,
    fs: usize,
    forks: usize,
    fs_calls: Vec<String>,
}

const FS_SYSCALLS: &[&str] = &[
    "open",
    "openat",
    "openat2",
    "stat",
    "lstat",
    "fstat",
    "newfstatat",
    "statx",
    "readlink",
    "readlinkat",
    "access",
    "faccessat",
    "faccessat2",
    "getdents64",
    "getcwd",
    "chdir",
];

fn census(program: &Path, path_var: &str, dir: &Path) -> Census {
    let out = dir.join("strace.out");
    let status = Command::new("strace")
        .args(["-f", "-qq", "-s", "256", "-o"])
        .arg(&out)
        .arg(program)
        .env("PATH", path_var)
        .stdout(Stdio::null())
        .status()
        .unwrap_or_else(|e| fail(&format!("cannot run strace: {e} (apt-get install strace)")));
    if !status.success() {
        fail(&format!("strace {} failed", program.display()));
    }
    let text = std::fs::read_to_string(&out).unwrap();
    let mut c = Census {
        total: 0,
        fs: 0,
        forks: 0,
        fs_calls: Vec::new(),
    };
    let mut execs = 0;
    for line in text.lines() {
        // "PID name(args) = ret" with -f; "name(args) = ret" without.
        let body = line
            .split_once(' ')
            .filter(|(pid, _)| pid.chars().all(|ch| ch.is_ascii_digit()))
            .map_or(line, |(_, rest)| rest.trim_start());
        let Some(name) = body.split('(').next() else { continue };
        if name == "execve" {
            execs += 1;
            if execs == 2 {
                break; // the hop's own exec of its target
            }
            continue;
        }
        if execs == 0 {
            continue;
        }
        c.total += 1;
        if matches!(name, "fork" | "vfork" | "clone" | "clone3") {
            c.forks += 1;
        }
        if FS_SYSCALLS.contains(&name) {
            c.fs += 1;
            c.fs_calls.push(body.chars().take(110).collect());
        }
    }
    if execs < 2 {
        fail(&format!("strace of {} saw no final execve", program.display()));
    }
    c
}

fn main() {
    let launcher = release_launcher();
    if !launcher.exists() {
        fail(&format!(
            "{} not found: run `cargo build --release -p launcher` first",
            launcher.display()
        ));
    }
    let iterations: usize = std::env::var("HOPS_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let tmp = tempfile::tempdir().unwrap();
    let noop = build_noop(tmp.path());
    let c_hop = build_c_hop(tmp.path(), &noop);
    let tree = |name: &str, inside: bool, extra_links: usize, binds: usize| -> PathBuf {
        let dir = tmp.path().join(name);
        build_tree(
            &dir,
            &TreeSpec {
                inside,
                extra_links,
                binds,
                noop: &noop,
                launcher: &launcher,
            },
        );
        dir.join("scripts/e.d/bin/noop")
    };
    let outside = tree("out", false, 0, 1);
    let inside = tree("in", true, 0, 1);
    let bash = build_bash_wrapper(&tmp.path().join("out"));
    let path_var = "/usr/local/bin:/usr/bin:/bin";

    println!("launcher hop benchmark: {iterations} interleaved runs per variant");
    println!(
        "machine: {} cores, kernel {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        kernel()
    );
    let variants = measure(
        vec![
            Variant::new("(a) no-op, direct", &noop, path_var),
            Variant::new("(b) outside hop: link -> launcher -> runtime", &outside, path_var),
            Variant::new("(c) inside hop: link -> launcher -> program", &inside, path_var),
            Variant::new("(d) bash wrapper -> runtime", &bash, path_var),
            Variant::new("(e) floor: static C program -> exec no-op", &c_hop, path_var),
        ],
        iterations,
    );
    let medians: Vec<f64> = variants.iter().map(|v| stats(&v.samples).0).collect();
    println!(
        "\n{:<48} {:>10} {:>10} {:>10}",
        "variant", "median µs", "p10 µs", "p90 µs"
    );
    for v in &variants {
        let (m, lo, hi) = stats(&v.samples);
        println!("{:<48} {:>10.1} {:>10.1} {:>10.1}", v.name, m, lo, hi);
    }
    let over_b = medians[1] - medians[0];
    let over_c = medians[2] - medians[0];
    println!(
        "\noverhead over (a): outside hop {over_b:.1} µs ({:.2}x), inside hop {over_c:.1} µs ({:.2}x)",
        medians[1] / medians[0],
        medians[2] / medians[0]
    );
    println!(
        "bash wrapper / outside hop: {:.1}x ({:.1} µs vs {:.1} µs)",
        medians[3] / medians[1],
        medians[3],
        medians[1]
    );
    let (own_b, own_c) = (medians[1] - medians[4], medians[2] - medians[4]);
    println!(
        "any exec hop costs {:.1} µs here (e - a); the launcher's own work: outside {own_b:.1} µs, inside {own_c:.1} µs",
        medians[4] - medians[0]
    );

    let mut failed = Vec::new();
    for (name, over, own) in [("outside", over_b, own_b), ("inside", over_c, own_c)] {
        if over > HOP_BUDGET_US {
            failed.push(format!("{name} hop overhead {over:.1} µs > budget {HOP_BUDGET_US} µs"));
        }
        if own > OWN_WORK_BUDGET_US {
            failed.push(format!(
                "{name} hop: launcher's own work {own:.1} µs > budget {OWN_WORK_BUDGET_US} µs"
            ));
        }
    }

    println!("\nsyscall census (strace -f, calls between the launcher's start and its execve):");
    // L19 walks the config's path: one lstat per directory from / to
    // <scripts>, where the budgets above count the one stat of <scripts>
    // (docs/performance.md).
    let walk = tmp.path().join("out/scripts").ancestors().count() - 1;
    for (name, program, fs_budget) in [
        ("outside", &outside, FS_CALLS_BUDGET_OUTSIDE + walk),
        ("inside", &inside, FS_CALLS_BUDGET_INSIDE + walk),
    ] {
        let c = census(program, path_var, tmp.path());
        println!("  {name:<8} total {:>3} (budget {TOTAL_CALLS_BUDGET}), file-system {:>3} (budget {fs_budget}), fork/clone {}", c.total, c.fs, c.forks);
        for call in &c.fs_calls {
            println!("      {call}");
        }
        if c.forks > 0 {
            failed.push(format!("{name} hop forks ({} fork/clone calls)", c.forks));
        }
        if c.total > TOTAL_CALLS_BUDGET {
            failed.push(format!(
                "{name} hop makes {} system calls > {TOTAL_CALLS_BUDGET}",
                c.total
            ));
        }
        if c.fs > fs_budget {
            failed.push(format!("{name} hop makes {} file-system calls > {fs_budget}", c.fs));
        }
    }

    println!(
        "\nscaling (outside hop, median µs; {} runs each, interleaved):",
        iterations / 2
    );
    let big_farm = tree("farm10k", false, 10_000, 1);
    let many_binds = tree("binds30", false, 0, 30);
    let long_path: String = (0..100)
        .map(|i| format!("/nonexistent/p{i:03}/bin"))
        .chain(["/usr/bin".into(), "/bin".into()])
        .collect::<Vec<_>>()
        .join(":");
    let scaled = measure(
        vec![
            Variant::new("(a) no-op", &noop, path_var),
            Variant::new("1 link in env dir", &outside, path_var),
            Variant::new("10,001 links in env dir", &big_farm, path_var),
            Variant::new("30 binds", &many_binds, path_var),
            Variant::new("PATH of 102 entries", &outside, &long_path),
        ],
        iterations / 2,
    );
    let base = stats(&scaled[0].samples).0;
    for v in scaled.iter().skip(1) {
        let m = stats(&v.samples).0;
        println!("  {:<28} {:>8.1}  (overhead {:>7.1})", v.name, m, m - base);
    }

    if failed.is_empty() {
        println!("\nbudgets: all hold");
    } else {
        println!("\nbudgets FAILED:");
        for f in &failed {
            println!("  {f}");
        }
        std::process::exit(1);
    }
}

fn kernel() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}
