//! `installer status` (I11): the figures per env, checked against
//! independent counts (unsquashfs's own inode count, the files on disk).
mod common;

use std::os::unix::fs::symlink;
use std::process::Command;

use common::*;

/// The cells of the row for `env` (columns are separated by 2+ spaces).
fn row(text: &str, env: &str) -> Vec<String> {
    let line = text
        .lines()
        .find(|l| l.starts_with(&format!("{env} ")))
        .unwrap_or_else(|| panic!("no row {env}:\n{text}"));
    line.split("  ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(String::from)
        .collect()
}

fn unsquashfs_inodes(image: &std::path::Path) -> u64 {
    let out = Command::new("unsquashfs").arg("-s").arg(image).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.starts_with("Number of inodes"))
        .expect("unsquashfs -s output");
    line.rsplit(' ').next().unwrap().parse().unwrap()
}

#[test]
fn i11_figures_per_env() {
    let f = Fixture::new();
    let n = 300;
    let image = f.image("e-1.0", &files(&numbered(n)));
    f.farm("e-1.0");
    symlink("/opt/conda/e-1.0", f.envs.join("e-1.0")).unwrap();
    symlink("e-1.0.d", f.env_dir("e")).unwrap();
    let out = f.installer().arg("status").output().unwrap();
    assert_success(&out);
    let text = stdout(&out);
    let cells = row(&text, "e-1.0");
    assert_eq!(cells[1], "1.0", "version\n{text}");
    assert_eq!(cells[2], "e", "aliases\n{text}");
    assert!(cells[3].ends_with("KiB"), "size\n{text}");
    let files_in_image = unsquashfs_inodes(&image);
    assert_eq!(
        files_in_image,
        n as u64 + 5,
        "root, opt, conda, e-1.0, bin and the files"
    );
    assert_eq!(cells[4], files_in_image.to_string(), "files in image\n{text}");
    // <env>.d, bin, n + 2 links (launcher, launcher.sh), env.toml; the image; the envs link; the alias.
    let on_disk = (1 + 1 + (n + 2) + 1) + 1 + 1 + 1;
    assert_eq!(cells[5], on_disk.to_string(), "inodes on disk\n{text}");
    assert_eq!(
        cells[6],
        format!("{:.1}:1", files_in_image as f64 / on_disk as f64),
        "ratio\n{text}"
    );
    // The table ends with the total; then each env's generations (issue 14).
    let total = text
        .lines()
        .position(|l| l.starts_with("total (1 envs"))
        .expect("a total line");
    let rest: Vec<&str> = text.lines().skip(total + 1).filter(|l| !l.is_empty()).collect();
    assert_eq!(rest[0], "e-1.0:", "{text}");
    assert!(
        rest[1].contains("live") && rest[1].contains("no provenance manifest (made by pack)"),
        "{text}"
    );
}
