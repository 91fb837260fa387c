//! `installer pack` (I5) with the real mksquashfs, checked with unsquashfs.
mod common;

use std::fs;
use std::os::unix::fs::symlink;
use std::process::Command;

use common::*;

fn unsquashfs(args: &[&str], image: &std::path::Path) -> String {
    let out = Command::new("unsquashfs")
        .args(args)
        .arg(image)
        .output()
        .expect("unsquashfs (squashfs-tools)");
    assert_success(&out);
    stdout(&out)
}

#[test]
fn i5_image_root_holds_prefix_env_for_every_compression() {
    let f = Fixture::new();
    let build = build_env(
        &f.root().join("build"),
        &["python3", "with space"],
        &[("proj.sh", "export A=1\n")],
    );
    symlink("python3", build.join("bin/python")).unwrap();
    fs::create_dir_all(build.join("lib/python3.11/site-packages")).unwrap();
    fs::write(
        build.join("lib/python3.11/site-packages/mod.py"),
        "x = 1\n".repeat(10_000),
    )
    .unwrap();
    for (compression, superblock_line) in [
        ("none", "Data is uncompressed"),
        ("gzip", "Compression gzip"),
        ("xz", "Compression xz"),
        ("zstd", "Compression zstd"),
    ] {
        let image = f.root().join(format!("{compression}.sqsh"));
        let out = Command::new(env!("CARGO_BIN_EXE_installer"))
            .arg("pack")
            .arg(&build)
            .args(["--env", "e-1", "--compression", compression, "-o"])
            .arg(&image)
            .output()
            .unwrap();
        assert_success(&out);
        let listing = unsquashfs(&["-lls"], &image);
        let names: Vec<&str> = listing
            .lines()
            .filter_map(|l| l.split_once("squashfs-root").map(|(_, path)| path))
            .map(|p| p.split(" -> ").next().unwrap())
            .collect();
        for want in [
            "",
            "/opt",
            "/opt/conda",
            "/opt/conda/e-1",
            "/opt/conda/e-1/bin/python3",
            "/opt/conda/e-1/bin/with space",
            "/opt/conda/e-1/bin/python",
            "/opt/conda/e-1/etc/conda/activate.d/proj.sh",
            "/opt/conda/e-1/lib/python3.11/site-packages/mod.py",
        ] {
            assert!(names.contains(&want), "{compression}: {want:?} missing in\n{listing}");
        }
        assert_eq!(names.len(), 16, "{compression}: nothing else at the root:\n{listing}");
        assert!(listing.contains("/opt/conda/e-1/bin/python -> python3"), "{listing}");
        assert!(unsquashfs(&["-s"], &image).contains(superblock_line), "{compression}");
        // The farm reads it.
        fs::copy(&image, f.envs.join("e-1.sqsh")).unwrap();
        f.farm("e-1");
    }
    let leftovers: Vec<_> = fs::read_dir(f.root())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n.to_string_lossy().starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn i5_prefix_from_the_config_and_extra_mksquashfs_args() {
    let f = Fixture::new();
    f.write_config("prefix = \"/apps/envs\"\n");
    let build = build_env(&f.root().join("build"), &["tool"], &[]);
    let image = f.root().join("e.sqsh");
    let out = f
        .installer()
        .arg("pack")
        .arg(&build)
        .args(["--env", "e", "-o"])
        .arg(&image)
        .args(["--", "-b", "64K"])
        .output()
        .unwrap();
    assert_success(&out);
    assert!(unsquashfs(&["-l"], &image).contains("squashfs-root/apps/envs/e/bin/tool"));
    assert!(unsquashfs(&["-s"], &image).contains("Block size 65536"));
}

#[test]
fn i5_errors_name_the_thing_and_leave_nothing() {
    let f = Fixture::new();
    let build = build_env(&f.root().join("build"), &["tool"], &[]);
    let image = f.root().join("e.sqsh");
    let pack = || {
        let mut c = Command::new(env!("CARGO_BIN_EXE_installer"));
        c.arg("pack").arg(&build).args(["--env", "e", "-o"]).arg(&image);
        c
    };
    // No mksquashfs on PATH: exit 7, names the package.
    let out = pack().env("PATH", f.root()).output().unwrap();
    assert_eq!(out.status.code(), Some(7), "{}", stderr(&out));
    assert_eq!(
        stderr(&out),
        "installer: mksquashfs not found on PATH; install the package squashfs-tools\n"
    );
    // mksquashfs fails (a bad extra option): exit 8, mksquashfs named, no file.
    let out = pack().args(["--", "-no-such-option"]).output().unwrap();
    assert_eq!(out.status.code(), Some(8), "{}", stderr(&out));
    assert!(
        stderr(&out).starts_with("installer: ")
            && stderr(&out).contains("mksquashfs failed")
            && stderr(&out).contains("mksquashfs: invalid option"),
        "{}",
        stderr(&out)
    );
    assert!(!image.exists());
    // Existing output: refused without --force, untouched.
    fs::write(&image, b"precious").unwrap();
    let out = pack().output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("exists; pass --force"), "{}", stderr(&out));
    assert_eq!(fs::read(&image).unwrap(), b"precious");
    assert_success(&pack().arg("--force").output().unwrap());
    // Not an env.
    let out = Command::new(env!("CARGO_BIN_EXE_installer"))
        .arg("pack")
        .arg(f.root().join("nope"))
        .args(["--env", "e"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let leftovers: Vec<_> = fs::read_dir(f.root())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n.to_string_lossy().starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}
