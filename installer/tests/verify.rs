//! Issue 10 item 7: an image whose data blocks are damaged (superblock and
//! directory tables fine, `unsquashfs` fails to uncompress) never goes live.
//! `deploy` (and `rollback`) read every data block first; `--no-verify`
//! skips that with a warning; `check --verify-images` finds the damage.
mod common;

use std::fs;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

const ENV: &str = "e-1";

fn bytes(path: &Path) -> Vec<u8> {
    fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Text that compresses well (so that its blocks are stored compressed)
/// but is not trivially repetitive.
fn text(seed: u64, len: usize) -> String {
    const WORDS: [&str; 10] = [
        "alpha", "beta", "gamma", "delta", "conda", "python", "numpy", "lib", "share", "data",
    ];
    let mut x = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    let mut out = String::with_capacity(len + 8);
    while out.len() < len {
        x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        out.push_str(WORDS[(x >> 33) as usize % WORDS.len()]);
        out.push(if (x >> 20) & 15 == 0 { '\n' } else { ' ' });
    }
    out
}

/// `installer pack` of an env with `bin/tool` and `files` (path, contents)
/// into `<root>/<file>`.
fn pack_with(f: &Fixture, files: &[(&str, String)], file: &str) -> PathBuf {
    let build = build_env(&f.root().join(format!("build-{file}")), &["tool"], &[]);
    for (path, contents) in files {
        let path = build.join(path);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, contents).unwrap();
    }
    let out = f.root().join(file);
    let status = f
        .installer()
        .args(["-q", "pack"])
        .arg(&build)
        .args(["--env", ENV, "--force", "-o"])
        .arg(&out)
        .output()
        .unwrap();
    assert_success(&status);
    out
}

/// The data region of a squashfs image: from the end of the superblock to
/// the start of the inode table (superblock bytes 64..72).
fn data_region(image: &Path) -> (u64, u64) {
    let file = fs::File::open(image).unwrap();
    let mut superblock = [0u8; 96];
    file.read_exact_at(&mut superblock, 0).unwrap();
    let inode_table = u64::from_le_bytes(superblock[64..72].try_into().unwrap());
    (96, inode_table)
}

/// A copy of `good` at `bad` with 16 bytes inverted in the middle of its
/// data region; `unsquashfs` must fail on it, and list it fine.
fn damaged(good: &Path, bad: &Path) {
    let (start, end) = data_region(good);
    assert!(end > start + 64, "no data region in {}", good.display());
    let mut image = bytes(good);
    let middle = ((start + end) / 2) as usize;
    for byte in &mut image[middle..middle + 16] {
        *byte ^= 0xff;
    }
    fs::write(bad, image).unwrap();
    let listed = Command::new("unsquashfs").args(["-lls"]).arg(bad).output().unwrap();
    assert_success(&listed);
    let scratch = tempfile::tempdir().unwrap();
    let extracted = Command::new("unsquashfs")
        .args(["-n", "-no-xattrs", "-d"])
        .arg(scratch.path().join("x"))
        .arg(bad)
        .output()
        .unwrap();
    assert!(
        !extracted.status.success(),
        "unsquashfs extracted the damaged image: the damage missed the data"
    );
}

#[test]
fn i6_a_corrupt_image_never_goes_live() {
    let f = Fixture::new();
    let good = pack_with(&f, &[("lib/data.txt", text(1, 1_500_000))], "good.sqsh");
    let next = pack_with(&f, &[("lib/data.txt", text(2, 1_500_000))], "next.sqsh");
    let bad = f.root().join("bad.sqsh");
    damaged(&next, &bad);
    let out = f.deploy(&good, ENV).output().unwrap();
    assert_success(&out);
    assert!(stdout(&out).contains("verified "), "{}", stdout(&out));
    let live = bytes(&f.live(ENV));

    // Refused: exit 4, one line naming the image and the file.
    let out = f.deploy(&bad, ENV).output().unwrap();
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with(&format!(
            "installer: image {}: corrupt: cannot read /opt/conda/{ENV}/lib/data.txt",
            bad.display()
        )),
        "{err}"
    );
    assert_eq!(bytes(&f.live(ENV)), live, "the live image changed");
    assert!(
        !f.envs.join(".backup").join(format!("{ENV}.sqsh")).exists(),
        "a backup was made"
    );
    assert!(f.image_leftovers().is_empty(), "{:?}", f.image_leftovers());
    // A dry run reads it too, and says the same.
    let out = f.deploy(&bad, ENV).arg("--dry-run").output().unwrap();
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    f.check_clean();

    // --no-verify: deployed, with a warning.
    let out = f.deploy(&bad, ENV).arg("--no-verify").output().unwrap();
    assert_success(&out);
    assert!(
        stderr(&out).contains("installer: warning: --no-verify: the data blocks of"),
        "{}",
        stderr(&out)
    );
    assert_eq!(bytes(&f.live(ENV)), bytes(&bad));
    // A plain check reads no data; --verify-images does.
    f.check_clean();
    let out = f.installer().args(["check", "--verify-images"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(
        stdout(&out)
            .lines()
            .any(|l| l.starts_with(&format!("problem: {ENV}: image "))
                && l.contains(&format!(
                    "/{ENV}.sqsh: corrupt: cannot read /opt/conda/{ENV}/lib/data.txt"
                ))),
        "{}",
        stdout(&out)
    );
    // Deploying the same damaged image again is refused (it is live already).
    let out = f.deploy(&bad, ENV).output().unwrap();
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));

    // Roll back to the good one (the backup is read first); a second
    // rollback would put the damaged one back: refused, unless --no-verify.
    assert_success(&f.installer().args(["rollback", "--env", ENV]).output().unwrap());
    assert_eq!(bytes(&f.live(ENV)), live);
    let out = f.installer().args(["rollback", "--env", ENV]).output().unwrap();
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(stderr(&out).contains("corrupt: cannot read"), "{}", stderr(&out));
    assert_eq!(bytes(&f.live(ENV)), live);
    let out = f.installer().args(["check", "--verify-images"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(
        stdout(&out).contains(&format!("problem: {ENV}: backup image ")),
        "{}",
        stdout(&out)
    );
    let out = f
        .installer()
        .args(["rollback", "--env", ENV, "--no-verify"])
        .output()
        .unwrap();
    assert_success(&out);
    assert!(stderr(&out).contains("warning: --no-verify"), "{}", stderr(&out));
    assert_eq!(bytes(&f.live(ENV)), bytes(&bad));
}

#[test]
fn i6_a_damaged_fragment_names_a_file_in_it() {
    // Small files only: all of them are tail-packed into fragment blocks.
    let f = Fixture::new();
    let files: Vec<(String, String)> = (0..40)
        .map(|i| (format!("share/doc/f{i:02}.txt"), text(i, 3000)))
        .collect();
    let files: Vec<(&str, String)> = files.iter().map(|(p, t)| (p.as_str(), t.clone())).collect();
    let good = pack_with(&f, &files, "small.sqsh");
    let bad = f.root().join("bad-small.sqsh");
    damaged(&good, &bad);
    let out = f.deploy(&bad, ENV).output().unwrap();
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains(&format!("corrupt: cannot read /opt/conda/{ENV}/")) && err.contains("fragment block"),
        "{err}"
    );
    assert!(!f.live(ENV).exists());
    assert!(f.image_leftovers().is_empty(), "{:?}", f.image_leftovers());
}

#[test]
fn i6_verify_reads_every_kind_of_file_of_a_good_image() {
    // Empty, duplicate (deduplicated), sparse, block-sized and tail-packed
    // files, hard links, and blocks mksquashfs stores uncompressed; every
    // compression the installer reads.
    let f = Fixture::new();
    let src = f.root().join("src");
    let lib = src.join("opt/conda").join(ENV).join("lib");
    fs::create_dir_all(src.join("opt/conda").join(ENV).join("bin")).unwrap();
    fs::create_dir_all(&lib).unwrap();
    fs::write(lib.join("empty"), "").unwrap();
    fs::write(lib.join("a"), text(7, 300_000)).unwrap();
    fs::write(lib.join("a-copy"), text(7, 300_000)).unwrap();
    fs::hard_link(lib.join("a"), lib.join("a-link")).unwrap();
    fs::write(lib.join("block"), text(8, 128 * 1024)).unwrap();
    fs::write(lib.join("tail"), text(9, 128 * 1024 + 10)).unwrap();
    let sparse = fs::File::create(lib.join("sparse")).unwrap();
    // (backhand refuses a file larger than the whole image, sparse or not)
    sparse.set_len(1 << 18).unwrap();
    sparse.write_all_at(b"end", (1 << 18) - 3).unwrap();
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let noise: Vec<u8> = (0..400_000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect();
    fs::write(lib.join("noise"), noise).unwrap();
    for compression in ["gzip", "xz", "zstd", "none"] {
        let image = f.root().join(format!("{compression}.sqsh"));
        let _ = fs::remove_file(&image);
        let mut args = vec!["-noappend", "-all-root", "-quiet", "-no-progress", "-comp", "gzip"];
        match compression {
            "none" => args.extend(["-noI", "-noD", "-noF", "-noX"]),
            other => args[5] = other,
        }
        let out = Command::new("mksquashfs")
            .arg(&src)
            .arg(&image)
            .args(&args)
            .output()
            .unwrap();
        assert_success(&out);
        let opened = installer::image::EnvImage::open(&image).unwrap();
        let verified = installer::verify::verify(&opened, &indicatif::ProgressBar::hidden())
            .unwrap_or_else(|e| panic!("{compression}: {e}"));
        assert_eq!(verified.files, 8, "{compression}: {verified:?}");
        // Each distinct content once: a, block, tail, sparse's last block, noise.
        let distinct = 300_000 + 128 * 1024 + (128 * 1024 + 10) + 400_000;
        assert!(verified.bytes_out >= distinct, "{compression}: {verified:?}");
        assert!(
            verified.bytes_out < distinct + 2 * (1 << 20),
            "{compression}: {verified:?}"
        );
    }
}
