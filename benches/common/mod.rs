//! Helpers shared by the whole-process benches (`#[path]`-included: each
//! bench is its own crate, and not every bench uses every helper).
#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// The release launcher beside this benchmark, whatever the host triple and
/// `CARGO_TARGET_DIR`: a bench runs from `<target>/<triple>/release/deps/`,
/// and `cargo build --release -p launcher` puts the launcher in
/// `<target>/<triple>/release/`.
pub fn release_launcher() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    exe.parent()
        .and_then(Path::parent)
        .expect("a bench binary lives in <profile>/deps/")
        .join("launcher")
}

/// A sandbox base like the test bed's: the marker, `libs/`, a `99-base.sh`,
/// mount points for the binds the benches use, `bin -> usr/bin`.
pub fn base_sandbox(at: &Path) {
    for dir in [
        ".singularity.d/env",
        ".singularity.d/libs",
        "usr",
        "etc",
        "lib",
        "lib64",
        "proc",
        "sys",
        "dev",
        "tmp",
        "root",
        "home",
        "run",
        "var",
        "opt/conda",
    ] {
        std::fs::create_dir_all(at.join(dir)).unwrap();
    }
    std::fs::write(
        at.join(".singularity.d/env/99-base.sh"),
        "export LD_LIBRARY_PATH=/.singularity.d/libs\n",
    )
    .unwrap();
    std::os::unix::fs::symlink("usr/bin", at.join("bin")).unwrap();
}
