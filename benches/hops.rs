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

use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Budget of one hop's overhead over a direct exec of the no-op (µs).
const HOP_BUDGET_US: f64 = 1000.0;
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
    let src = dir.join("noop.c");
    let bin = dir.join("noop");
    std::fs::write(&src, "int main(void) { return 0; }\n").unwrap();
    let status = Command::new("cc")
        .args(["-static", "-O2", "-o"])
        .arg(&bin)
        .arg(&src)
        .status()
        .unwrap_or_else(|e| fail(&format!("cannot run cc to build the static no-op: {e} (apt-get install gcc libc6-dev)")));
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
    samples: Vec<Duration>,
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
fn measure(mut variants: Vec<Variant>, iterations: usize, path_var: &str) -> Vec<Variant> {
    for v in &variants {
        for _ in 0..20 {
            run_once(&v.program, path_var); // warm the page cache
        }
    }
    for _ in 0..iterations {
        for v in variants.iter_mut() {
            let d = run_once(&v.program, path_var);
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
    "open", "openat", "openat2", "stat", "lstat", "fstat", "newfstatat", "statx", "readlink", "readlinkat",
    "access", "faccessat", "faccessat2", "getdents64", "getcwd", "chdir",
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
    let mut c = Census { total: 0, fs: 0, forks: 0, fs_calls: Vec::new() };
    let mut execs = 0;
    for line in text.lines() {
        // "PID name(args) = ret" with -f; "name(args) = ret" without.
        let body = line.split_once(' ').filter(|(pid, _)| pid.chars().all(|ch| ch.is_ascii_digit())).map_or(line, |(_, rest)| rest.trim_start());
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
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let launcher = root.join("target/x86_64-unknown-linux-gnu/release/launcher");
    if !launcher.exists() {
        fail(&format!("{} not found: run `cargo build --release -p launcher` first", launcher.display()));
    }
    let iterations: usize = std::env::var("HOPS_ITERATIONS").ok().and_then(|v| v.parse().ok()).unwrap_or(1000);
    let tmp = tempfile::tempdir().unwrap();
    let noop = build_noop(tmp.path());
    let tree = |name: &str, inside: bool, extra_links: usize, binds: usize| -> PathBuf {
        let dir = tmp.path().join(name);
        build_tree(&dir, &TreeSpec { inside, extra_links, binds, noop: &noop, launcher: &launcher });
        dir.join("scripts/e.d/bin/noop")
    };
    let outside = tree("out", false, 0, 1);
    let inside = tree("in", true, 0, 1);
    let bash = build_bash_wrapper(&tmp.path().join("out"));
    let path_var = "/usr/local/bin:/usr/bin:/bin";

    println!("launcher hop benchmark: {iterations} interleaved runs per variant");
    println!("machine: {} cores, kernel {}", std::thread::available_parallelism().map_or(0, |n| n.get()), kernel());
    let variants = measure(
        vec![
            Variant { name: "(a) no-op, direct", program: noop.clone(), samples: vec![] },
            Variant { name: "(b) outside hop: link -> launcher -> runtime", program: outside.clone(), samples: vec![] },
            Variant { name: "(c) inside hop: link -> launcher -> program", program: inside.clone(), samples: vec![] },
            Variant { name: "(d) bash wrapper -> runtime", program: bash.clone(), samples: vec![] },
        ],
        iterations,
        path_var,
    );
    let medians: Vec<f64> = variants.iter().map(|v| stats(&v.samples).0).collect();
    println!("\n{:<48} {:>10} {:>10} {:>10}", "variant", "median µs", "p10 µs", "p90 µs");
    for v in &variants {
        let (m, lo, hi) = stats(&v.samples);
        println!("{:<48} {:>10.1} {:>10.1} {:>10.1}", v.name, m, lo, hi);
    }
    let over_b = medians[1] - medians[0];
    let over_c = medians[2] - medians[0];
    println!("\noverhead over (a): outside hop {over_b:.1} µs ({:.2}x), inside hop {over_c:.1} µs ({:.2}x)", medians[1] / medians[0], medians[2] / medians[0]);
    println!("bash wrapper / outside hop: {:.1}x ({:.1} µs vs {:.1} µs)", medians[3] / medians[1], medians[3], medians[1]);

    let mut failed = Vec::new();
    for (name, over) in [("outside", over_b), ("inside", over_c)] {
        if over > HOP_BUDGET_US {
            failed.push(format!("{name} hop overhead {over:.1} µs > budget {HOP_BUDGET_US} µs"));
        }
    }

    println!("\nsyscall census (strace -f, calls between the launcher's start and its execve):");
    for (name, program, fs_budget) in
        [("outside", &outside, FS_CALLS_BUDGET_OUTSIDE), ("inside", &inside, FS_CALLS_BUDGET_INSIDE)]
    {
        let c = census(program, path_var, tmp.path());
        println!("  {name:<8} total {:>3} (budget {TOTAL_CALLS_BUDGET}), file-system {:>3} (budget {fs_budget}), fork/clone {}", c.total, c.fs, c.forks);
        for call in &c.fs_calls {
            println!("      {call}");
        }
        if c.forks > 0 {
            failed.push(format!("{name} hop forks ({} fork/clone calls)", c.forks));
        }
        if c.total > TOTAL_CALLS_BUDGET {
            failed.push(format!("{name} hop makes {} system calls > {TOTAL_CALLS_BUDGET}", c.total));
        }
        if c.fs > fs_budget {
            failed.push(format!("{name} hop makes {} file-system calls > {fs_budget}", c.fs));
        }
    }

    println!("\nscaling (outside hop, median µs; {} runs each, interleaved with (a)):", iterations / 2);
    let big_farm = tree("farm10k", false, 10_000, 1);
    let many_binds = tree("binds30", false, 0, 30);
    let long_path: String = (0..100).map(|i| format!("/nonexistent/p{i:03}/bin")).chain(["/usr/bin".into(), "/bin".into()]).collect::<Vec<_>>().join(":");
    let scaled = measure(
        vec![
            Variant { name: "(a) no-op", program: noop.clone(), samples: vec![] },
            Variant { name: "1 link in env dir", program: outside.clone(), samples: vec![] },
            Variant { name: "10,001 links in env dir", program: big_farm, samples: vec![] },
            Variant { name: "30 binds", program: many_binds, samples: vec![] },
        ],
        iterations / 2,
        path_var,
    );
    let long = measure(vec![Variant { name: "PATH of 102 entries", program: outside.clone(), samples: vec![] }], iterations / 2, &long_path);
    let base = stats(&scaled[0].samples).0;
    for v in scaled.iter().skip(1).chain(long.iter()) {
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
    std::fs::read_to_string("/proc/sys/kernel/osrelease").map(|s| s.trim().to_string()).unwrap_or_default()
}
