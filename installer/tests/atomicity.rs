//! I3: while the farm is rebuilt over and over with a changing set of
//! names, a reader resolving links in a loop never finds a name missing
//! that both versions have. Run for both swap methods.
mod common;

use std::fs;
use std::path::{Path, PathBuf};

use common::*;

const REBUILDS: usize = 40;

fn names(prefix: &str, n: usize) -> Vec<Vec<u8>> {
    (0..n).map(|i| format!("{prefix}{i}").into_bytes()).collect()
}

fn run(no_exchange: bool) {
    let f = Fixture::new();
    let common = names("common", 20);
    let version_a: Vec<Vec<u8>> = common.iter().cloned().chain(names("a", 5)).collect();
    let version_b: Vec<Vec<u8>> = common.iter().cloned().chain(names("b", 5)).collect();
    let image_a = f.root().join("a.sqsh");
    let image_b = f.root().join("b.sqsh");
    make_image(&f.root().join("src-a"), PREFIX, "e", &files(&version_a), &image_a);
    make_image(&f.root().join("src-b"), PREFIX, "e", &files(&version_b), &image_b);
    let live_image = f.envs.join("e.sqsh");
    let put = |image: &Path| {
        let temp = f.envs.join(".e.sqsh.tmp");
        fs::copy(image, &temp).unwrap();
        fs::rename(&temp, &live_image).unwrap();
    };
    let farm = || {
        let mut c = f.installer();
        c.args(["-q", "farm", "e", "--launcher"]).arg(&f.launcher);
        if no_exchange {
            c.env("INSTALLER_NO_EXCHANGE", "1");
        }
        assert_success(&c.output().unwrap());
    };
    put(&image_a);
    farm();

    let bin = f.bin("e");
    let watched: Vec<PathBuf> = common
        .iter()
        .map(|n| bin.join(String::from_utf8_lossy(n).as_ref()))
        .chain([
            bin.join("launcher"),
            bin.join("launcher.sh"),
            f.env_dir("e").join("env.toml"),
        ])
        .collect();
    // Each lookup follows the whole chain: <env>.d, bin/NAME, ../../launcher.
    assert_never_missing(
        &watched,
        || None,
        REBUILDS as u64 * 22,
        || {
            for i in 0..REBUILDS {
                put(if i % 2 == 0 { &image_b } else { &image_a });
                farm();
            }
        },
    );
    // The last rebuild put version A back.
    let mut want = version_a.clone();
    want.push(b"launcher".to_vec());
    want.push(b"launcher.sh".to_vec());
    want.sort();
    assert_eq!(f.bin_names("e"), want);
    assert!(f.leftovers().is_empty(), "{:?}", f.leftovers());
    if no_exchange {
        assert_eq!(
            fs::read_dir(f.scripts.join(".versions")).unwrap().count(),
            1,
            "old versions left behind"
        );
    }
}

#[test]
fn i3_reader_never_sees_a_missing_link_with_rename_exchange() {
    run(false);
}

#[test]
fn i3_reader_never_sees_a_missing_link_with_versioned_symlinks() {
    run(true);
}
