//! Helpers shared by the whole-process benches (`#[path]`-included: each
//! bench is its own crate).

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
