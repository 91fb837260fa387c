//! The environment handed to the container (L13).
//!
//! Runtimes reset `PATH` inside and do not import `LD_LIBRARY_PATH`; they
//! read `<PREFIX>NAME` variables instead. This module computes those.

use std::collections::HashSet;
use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use crate::invocation::split_path_list;

/// Directories the runtime puts on the container's `PATH` by itself.
pub const RUNTIME_STANDARD_DIRS: [&str; 6] = [
    "/usr/local/sbin",
    "/usr/local/bin",
    "/usr/sbin",
    "/usr/bin",
    "/sbin",
    "/bin",
];

/// Inputs of the `PREPEND_PATH` computation.
pub struct PathRequest<'a> {
    /// Existing `APPTAINERENV_PREPEND_PATH` / `SINGULARITYENV_PREPEND_PATH`.
    pub existing: &'a [&'a OsStr],
    /// The host `PATH` (or `--path`).
    pub path: Option<&'a OsStr>,
    /// The runtime binary's directory: meaningless inside.
    pub runtime_dir: Option<&'a Path>,
    /// `<container_prefix>/<env>/bin`.
    pub real_bin: &'a Path,
}

/// L13 `PREPEND_PATH`: existing value first, then `PATH` minus the runtime's
/// standard dirs and its own dir, with this env's scripts bin (any alias
/// spelling, decided by `is_env_scripts_bin`) replaced by the env's real bin;
/// duplicates removed; the real bin first when it was absent.
pub fn prepend_path(req: &PathRequest, mut is_env_scripts_bin: impl FnMut(&Path) -> bool) -> OsString {
    let mut entries = Entries::default();
    for list in req.existing {
        for entry in split_path_list(list) {
            entries.push(entry);
        }
    }
    let real_bin = req.real_bin.as_os_str();
    let runtime_dir = req.runtime_dir.map(|d| trim_trailing_slashes(d.as_os_str()));
    for entry in req.path.map(split_path_list).into_iter().flatten() {
        let trimmed = trim_trailing_slashes(entry);
        if trimmed.is_empty()
            || RUNTIME_STANDARD_DIRS.iter().any(|d| d.as_bytes() == trimmed.as_bytes())
            || Some(trimmed) == runtime_dir
        {
            continue;
        }
        if is_env_scripts_bin(Path::new(trimmed)) {
            entries.push(real_bin);
        } else {
            entries.push(entry);
        }
    }
    let mut out = OsString::new();
    if !entries.seen.contains(trim_trailing_slashes(real_bin).as_bytes()) {
        out.push(real_bin);
    }
    for entry in entries.list {
        if !out.is_empty() {
            out.push(":");
        }
        out.push(entry);
    }
    out
}

/// `PATH` entries in order, without duplicates (ignoring trailing slashes).
#[derive(Default)]
struct Entries<'a> {
    list: Vec<&'a OsStr>,
    seen: HashSet<&'a [u8]>,
}

impl<'a> Entries<'a> {
    /// Add `entry` unless empty or already there.
    fn push(&mut self, entry: &'a OsStr) {
        let trimmed = trim_trailing_slashes(entry).as_bytes();
        if !trimmed.is_empty() && self.seen.insert(trimmed) {
            self.list.push(entry);
        }
    }
}

fn trim_trailing_slashes(entry: &OsStr) -> &OsStr {
    let mut bytes = entry.as_bytes();
    while bytes.len() > 1 && bytes.ends_with(b"/") {
        bytes = &bytes[..bytes.len() - 1];
    }
    OsStr::from_bytes(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(existing: &[&str], path: &str, runtime_dir: Option<&str>) -> String {
        let existing: Vec<&OsStr> = existing.iter().map(OsStr::new).collect();
        let req = PathRequest {
            existing: &existing,
            path: Some(OsStr::new(path)),
            runtime_dir: runtime_dir.map(Path::new),
            real_bin: Path::new("/opt/conda/e-1/bin"),
        };
        let scripts = ["/s/e.d/bin", "/s/e-1.d/bin"];
        prepend_path(&req, |p| scripts.iter().any(|s| Path::new(s) == p))
            .into_string()
            .unwrap()
    }

    #[test]
    fn l13_scripts_bin_replaced_in_place_std_dirs_dropped() {
        assert_eq!(
            run(&[], "/home/u/bin:/s/e.d/bin:/usr/bin:/apps/x/bin:/bin", None),
            "/home/u/bin:/opt/conda/e-1/bin:/apps/x/bin"
        );
    }

    #[test]
    fn l13_existing_value_first_and_duplicates_removed() {
        assert_eq!(
            run(&["/pre/a:/pre/b"], "/pre/b/:/s/e-1.d/bin:/s/e.d/bin:/x", None),
            "/pre/a:/pre/b:/opt/conda/e-1/bin:/x"
        );
    }

    #[test]
    fn l13_real_bin_first_when_env_not_on_path() {
        assert_eq!(run(&[], "/home/u/bin:/usr/bin", None), "/opt/conda/e-1/bin:/home/u/bin");
        assert_eq!(run(&[], "", None), "/opt/conda/e-1/bin");
    }

    #[test]
    fn l13_runtime_dir_dropped() {
        assert_eq!(
            run(&[], "/opt/apptainer/bin:/s/e.d/bin", Some("/opt/apptainer/bin")),
            "/opt/conda/e-1/bin"
        );
    }
}
