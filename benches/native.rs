//! The native runtime's cost per call (issue: native runtime), with a
//! system-call census. As root.
//!
//! Run after `cargo build --release -p launcher`:
//!
//! ```sh
//! cargo bench --bench native            # NATIVE_ITERATIONS=N to change the count
//! ```
//!
//! In one run, interleaved so that noise hits all alike, each starting the
//! same static no-op program: (a) directly, the exec floor; (b) through the
//! native runtime (`launcher-native exec … BASE /noop`) with 1 and with 10
//! squashfs overlays; (c) through the stand-in runtime (the test model of
//! Apptainer: `mount` helpers and a shell for the action script) with the
//! same images. Prints medians, each runtime's overhead over (a), the ratios,
//! and the census of the native runtime's calls before the program's exec.
//! Exits 1 when the budget fails, 2 when it cannot run.

#[path = "common/mod.rs"]
mod common;
use common::release_launcher;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Issue budget: per-call overhead of the native runtime over a direct exec,
/// whatever the number of overlays up to 10 (ms).
const OVERHEAD_BUDGET_MS: f64 = 10.0;

fn fail(message: &str) -> ! {
    eprintln!("native bench: {message}");
    std::process::exit(2);
}

fn build_noop(dir: &Path) -> PathBuf {
    let src = dir.join("noop.c");
    let bin = dir.join("noop");
    std::fs::write(&src, "int main(void) { return 0; }\n").unwrap();
    let ok = Command::new("cc")
        .args(["-static", "-O2", "-o"])
        .arg(&bin)
        .arg(&src)
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        fail("cc -static failed (apt-get install gcc libc6-dev)");
    }
    bin
}

/// `count` small squashfs images, one env each.
fn build_images(dir: &Path, count: usize) -> Vec<PathBuf> {
    (0..count)
        .map(|i| {
            let stage = dir.join(format!("stage{i}"));
            let bin = stage.join(format!("opt/conda/env{i}/bin"));
            std::fs::create_dir_all(&bin).unwrap();
            std::fs::write(bin.join("tool"), "#!/bin/sh\n").unwrap();
            std::fs::set_permissions(bin.join("tool"), std::fs::Permissions::from_mode(0o755)).unwrap();
            let image = dir.join(format!("env{i}.sqsh"));
            let ok = Command::new("mksquashfs")
                .arg(&stage)
                .arg(&image)
                .args(["-noappend", "-all-root", "-quiet", "-no-progress"])
                .stdout(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if !ok {
                fail("mksquashfs failed (apt-get install squashfs-tools)");
            }
            image
        })
        .collect()
}

struct Variant {
    name: String,
    program: PathBuf,
    argv0: String,
    args: Vec<String>,
    samples: Vec<Duration>,
}

fn runtime_args(base: &Path, images: &[PathBuf], noop: &Path) -> Vec<String> {
    let mut args = vec![
        "-s".to_string(),
        "exec".into(),
        "--bind".into(),
        "/usr,/etc,/lib,/lib64".into(),
    ];
    args.extend(images.iter().map(|i| format!("--overlay={}:ro", i.display())));
    args.push(base.display().to_string());
    args.push(noop.display().to_string());
    args
}

fn run_once(v: &Variant) -> Duration {
    use std::os::unix::process::CommandExt;
    let start = Instant::now();
    let status = Command::new(&v.program)
        .arg0(&v.argv0)
        .args(&v.args)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("HOME", "/root")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .status()
        .unwrap_or_else(|e| fail(&format!("cannot run {}: {e}", v.name)));
    let elapsed = start.elapsed();
    if !status.success() {
        fail(&format!("{} exited with {status}", v.name));
    }
    elapsed
}

fn median_ms(samples: &[Duration]) -> f64 {
    let mut ms: Vec<f64> = samples.iter().map(|d| d.as_secs_f64() * 1e3).collect();
    ms.sort_by(|a, b| a.partial_cmp(b).unwrap());
    ms[ms.len() / 2]
}

/// Calls of the native runtime before it execs the program, by name.
fn census(v: &Variant, dir: &Path) -> Vec<(String, usize)> {
    let out = dir.join("strace.out");
    let mut args = vec!["-f".to_string(), "-qq".into(), "-o".into(), out.display().to_string()];
    args.push("--".into());
    // strace cannot set argv[0]: go through a link named launcher-native.
    let link = dir.join("launcher-native");
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(&v.program, &link).unwrap();
    args.push(link.display().to_string());
    args.extend(v.args.iter().cloned());
    let ok = Command::new("strace")
        .args(&args)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("HOME", "/root")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        fail("strace failed (apt-get install strace)");
    }
    let text = std::fs::read_to_string(&out).unwrap();
    let mut counts: std::collections::BTreeMap<String, usize> = Default::default();
    let mut execs = 0;
    for line in text.lines() {
        let body = line.split_once(' ').map_or(line, |(_, rest)| rest.trim_start());
        let Some(name) = body.split('(').next() else { continue };
        if name == "execve" {
            execs += 1;
            if execs == 2 {
                break;
            }
            continue;
        }
        if execs == 1 && !name.starts_with('+') && !name.starts_with('-') && !name.is_empty() {
            *counts.entry(name.to_string()).or_default() += 1;
        }
    }
    let mut list: Vec<(String, usize)> = counts.into_iter().collect();
    list.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    list
}

fn main() {
    if unsafe { libc::geteuid() } != 0 {
        fail("run as root (kernel squashfs mounts)");
    }
    let launcher = release_launcher();
    if !launcher.exists() {
        fail(&format!(
            "{} not found: run `cargo build --release -p launcher` first",
            launcher.display()
        ));
    }
    let standin = PathBuf::from(env!("CARGO_BIN_EXE_standin-runtime"));
    let iterations: usize = std::env::var("NATIVE_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let tmp = tempfile::tempdir().unwrap();
    let noop = build_noop(tmp.path());
    let base = tmp.path().join("base");
    common::base_sandbox(&base);
    let images = build_images(tmp.path(), 10);
    // The stand-in takes its flavour from its file name.
    let apptainer = tmp.path().join("rt/bin/apptainer");
    std::fs::create_dir_all(apptainer.parent().unwrap()).unwrap();
    std::fs::copy(&standin, &apptainer).unwrap();

    let variant = |name: &str, program: &Path, argv0: &str, args: Vec<String>| Variant {
        name: name.to_string(),
        program: program.to_path_buf(),
        argv0: argv0.to_string(),
        args,
        samples: Vec::new(),
    };
    let mut variants = vec![
        variant("exec floor (static no-op)", &noop, "noop", vec![]),
        variant(
            "native, 1 overlay",
            &launcher,
            "launcher-native",
            runtime_args(&base, &images[..1], &noop),
        ),
        variant(
            "native, 10 overlays",
            &launcher,
            "launcher-native",
            runtime_args(&base, &images, &noop),
        ),
        variant(
            "stand-in, 1 overlay",
            &apptainer,
            "apptainer",
            runtime_args(&base, &images[..1], &noop),
        ),
        variant(
            "stand-in, 10 overlays",
            &apptainer,
            "apptainer",
            runtime_args(&base, &images, &noop),
        ),
    ];
    for v in &variants {
        for _ in 0..5 {
            run_once(v);
        }
    }
    for _ in 0..iterations {
        for v in variants.iter_mut() {
            let d = run_once(v);
            v.samples.push(d);
        }
    }
    let floor = median_ms(&variants[0].samples);
    println!(
        "native runtime, {iterations} interleaved runs each, kernel {}",
        kernel()
    );
    println!(
        "{:<28} {:>10} {:>14} {:>10}",
        "variant", "median ms", "over floor ms", "x floor"
    );
    let mut worst_native: f64 = 0.0;
    for v in &variants {
        let m = median_ms(&v.samples);
        let over = m - floor;
        if v.name.starts_with("native") {
            worst_native = worst_native.max(over);
        }
        println!("{:<28} {:>10.3} {:>14.3} {:>10.1}", v.name, m, over, m / floor);
    }
    let ratio =
        |a: usize, b: usize| (median_ms(&variants[a].samples) - floor) / (median_ms(&variants[b].samples) - floor);
    println!(
        "stand-in/native overhead: 1 overlay {:.1}x, 10 overlays {:.1}x",
        ratio(3, 1),
        ratio(4, 2)
    );
    println!();
    println!("census: native runtime, 10 overlays, calls before the program's execve");
    let counts = census(&variants[2], tmp.path());
    let total: usize = counts.iter().map(|(_, n)| n).sum();
    println!(
        "  {total} calls: {}",
        counts
            .iter()
            .map(|(n, c)| format!("{n} {c}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!();
    if worst_native > OVERHEAD_BUDGET_MS {
        println!("BUDGET FAILED: native overhead {worst_native:.3} ms > {OVERHEAD_BUDGET_MS} ms");
        std::process::exit(1);
    }
    println!("budget ok: native overhead at most {worst_native:.3} ms (budget {OVERHEAD_BUDGET_MS} ms)");
}

fn kernel() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}
