//! The environment of the program the native runtime starts: the same
//! variables the launcher asks a real runtime for (L13), with none of the
//! real runtimes' quirks (no JSON hop, no shell evaluation, host variables
//! not dropped, `HOME` kept).
//!
//! The launcher plans a native launch with the Apptainer conventions:
//! `APPTAINERENV_NAME` (over `SINGULARITYENV_NAME`) sets `NAME`;
//! `PREPEND_PATH`/`APPEND_PATH` go around the default `PATH`, and a prefixed
//! `PATH` replaces it.

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};

/// `PATH` in the container before the prefixed changes.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// Lowest priority first.
const PREFIXES: [&str; 2] = ["SINGULARITYENV_", "APPTAINERENV_"];

/// The program's environment, from the runtime's.
pub fn container_environment(host: impl IntoIterator<Item = (OsString, OsString)>) -> BTreeMap<OsString, OsString> {
    let mut env = BTreeMap::new();
    let mut requested: [BTreeMap<OsString, OsString>; 2] = Default::default();
    for (name, value) in host {
        let bytes = name.as_bytes();
        match PREFIXES.iter().position(|p| bytes.starts_with(p.as_bytes())) {
            Some(rank) => {
                let stripped = &bytes[PREFIXES[rank].len()..];
                if !stripped.is_empty() {
                    requested[rank].insert(OsString::from_vec(stripped.to_vec()), value);
                }
            }
            None => {
                env.insert(name, value);
            }
        }
    }
    // As the real runtimes: the host's PATH and LD_LIBRARY_PATH mean nothing inside.
    env.remove(OsStr::new("PATH"));
    env.remove(OsStr::new("LD_LIBRARY_PATH"));
    let [low, high] = requested;
    let mut wanted = low;
    wanted.extend(high);
    let prepend = wanted.remove(OsStr::new("PREPEND_PATH")).filter(|v| !v.is_empty());
    let append = wanted.remove(OsStr::new("APPEND_PATH")).filter(|v| !v.is_empty());
    let replace = wanted.remove(OsStr::new("PATH")).filter(|v| !v.is_empty());
    let path = match replace {
        Some(path) => path,
        None => {
            let mut path = OsString::new();
            for part in [prepend.as_deref(), Some(OsStr::new(DEFAULT_PATH)), append.as_deref()]
                .into_iter()
                .flatten()
            {
                if !path.is_empty() {
                    path.push(":");
                }
                path.push(part);
            }
            path
        }
    };
    env.extend(wanted);
    env.insert("PATH".into(), path);
    env
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<OsString, OsString> {
        container_environment(pairs.iter().map(|(k, v)| (OsString::from(k), OsString::from(v))))
    }

    fn get<'a>(env: &'a BTreeMap<OsString, OsString>, key: &str) -> Option<&'a str> {
        env.get(OsStr::new(key)).map(|v| v.to_str().unwrap())
    }

    #[test]
    fn native_l13_prefixed_variables_verbatim_and_path_rules() {
        let e = env(&[
            ("PATH", "/host/bin"),
            ("LD_LIBRARY_PATH", "/host/lib"),
            ("HOME", "/home/u"),
            ("KEEP", "1"),
            ("APPTAINERENV_PREPEND_PATH", "/opt/conda/e/bin"),
            ("APPTAINERENV_ODD", "a $HOME `x` \\"),
            ("SINGULARITYENV_ODD", "loses"),
            ("SINGULARITYENV_OLD", "old"),
            ("APPTAINERENV_LD_LIBRARY_PATH", "/l"),
        ]);
        assert_eq!(
            get(&e, "PATH"),
            Some(format!("/opt/conda/e/bin:{DEFAULT_PATH}").as_str())
        );
        assert_eq!(get(&e, "ODD"), Some("a $HOME `x` \\"), "no evaluation");
        assert_eq!(get(&e, "OLD"), Some("old"));
        assert_eq!(get(&e, "LD_LIBRARY_PATH"), Some("/l"));
        assert_eq!(get(&e, "HOME"), Some("/home/u"));
        assert_eq!(get(&e, "KEEP"), Some("1"));
        assert!(e.keys().all(|k| !k.to_str().unwrap().contains("ENV_")));
        let e = env(&[("APPTAINERENV_PREPEND_PATH", "/p"), ("APPTAINERENV_PATH", "/only")]);
        assert_eq!(get(&e, "PATH"), Some("/only"));
        assert_eq!(get(&e, "LD_LIBRARY_PATH"), None);
    }
}
