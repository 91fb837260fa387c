//! Building a symlink farm from a squashfs image (I1–I3), for images with
//! 10, 1,000 and 10,000 entries in `bin/`: the whole `installer farm` path
//! (read the image with backhand, compare with the tree on disk, build the
//! new tree, rename it in), in-process. Also the second, "unchanged" run.
//!
//! ```sh
//! cargo bench --bench farm                          # in the system temp dir
//! FARM_BENCH_DIR=/dev/shm cargo bench --bench farm  # on tmpfs: the installer's own cost
//! ```
//! Needs `mksquashfs` (package squashfs-tools) to make the images. Creating
//! symlinks costs very different amounts on different file systems (see
//! docs/performance.md), hence the choice of directory.

use std::path::Path;
use std::process::Command;

use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion};
use installer::farm::{self, FarmOptions};
use installer::site::Site;
use installer::ui::Ui;

/// An installation in `root` with one env whose image has `n` bin entries.
fn installation(root: &Path, n: usize) -> Site {
    let bin = root.join("src/opt/conda/e/bin");
    std::fs::create_dir_all(&bin).unwrap();
    for i in 0..n {
        std::fs::write(bin.join(format!("cmd{i:05}")), b"").unwrap();
    }
    std::fs::create_dir_all(root.join("envs")).unwrap();
    let out = Command::new("mksquashfs")
        .arg(root.join("src"))
        .arg(root.join("envs/e.sqsh"))
        .args(["-noappend", "-all-root", "-no-progress", "-quiet"])
        .output()
        .expect("mksquashfs (package squashfs-tools) is needed");
    assert!(out.status.success());
    let scripts = root.join("scripts");
    std::fs::create_dir_all(&scripts).unwrap();
    std::fs::write(scripts.join("launcher.toml"), "[container]\nenvs_dir = \"../envs\"\n").unwrap();
    std::fs::write(scripts.join("launcher"), b"#!/bin/sh\n").unwrap();
    Site::load(Some(&scripts), None).unwrap()
}

fn bench_farm(c: &mut Criterion) {
    let ui = Ui::new(true);
    let envs = ["e".to_string()];
    let mut group = c.benchmark_group("farm");
    group.sample_size(10);
    for n in [10, 1_000, 10_000] {
        let dir = match std::env::var_os("FARM_BENCH_DIR") {
            Some(base) => tempfile::tempdir_in(base).unwrap(),
            None => tempfile::tempdir().unwrap(),
        };
        let site = installation(dir.path(), n);
        let opts = FarmOptions {
            launcher_source: Some(site.scripts.join("launcher")),
            ..FarmOptions::default()
        };
        let env_dir = site.env_dir("e");
        group.bench_with_input(BenchmarkId::new("build", n), &n, |b, _| {
            b.iter_batched(
                || {
                    let _ = std::fs::remove_dir_all(&env_dir);
                },
                |()| farm::run(&site, Some(&envs), &opts, &ui).unwrap(),
                BatchSize::PerIteration,
            )
        });
        farm::run(&site, Some(&envs), &opts, &ui).unwrap();
        group.bench_with_input(BenchmarkId::new("unchanged", n), &n, |b, _| {
            b.iter(|| farm::run(&site, Some(&envs), &opts, &ui).unwrap())
        });
    }
    group.finish();
}

criterion_group!(benches, bench_farm);
criterion_main!(benches);
