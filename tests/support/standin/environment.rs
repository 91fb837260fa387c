//! The environment a command sees inside the container, as Apptainer and
//! SingularityCE compute it from the host environment (the rules the
//! launcher depends on, L13).

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::Path;

/// `PATH` inside the container before any `…ENV_PREPEND_PATH`/`APPEND_PATH`.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// Both runtimes append this to `LD_LIBRARY_PATH` (GPU driver libraries).
pub const CONTAINER_LIBS: &str = "/.singularity.d/libs";

/// Which runtime is being imitated: decides the prefixes that are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavour {
    /// Reads `APPTAINERENV_`, and `SINGULARITYENV_` with lower priority.
    Apptainer,
    /// SingularityCE: reads `SINGULARITYENV_` only.
    SingularityCe,
}

impl Flavour {
    /// The flavour of a runtime binary installed under `file_name`
    /// (Apptainer ships `singularity` as a symlink to `apptainer`, so the
    /// caller passes the name of the final target).
    pub fn from_binary_name(file_name: &OsStr) -> Option<Flavour> {
        match file_name.as_bytes() {
            b"apptainer" => Some(Flavour::Apptainer),
            b"singularity" => Some(Flavour::SingularityCe),
            _ => None,
        }
    }

    /// Prefixes honoured, lowest priority first.
    fn prefixes(self) -> &'static [&'static str] {
        match self {
            Flavour::Apptainer => &["SINGULARITYENV_", "APPTAINERENV_"],
            Flavour::SingularityCe => &["SINGULARITYENV_"],
        }
    }

    /// `(NAME, CONTAINER)` variable names the runtime sets.
    fn identity_variables(self) -> &'static [(&'static str, &'static str)] {
        match self {
            Flavour::Apptainer => &[
                ("APPTAINER_NAME", "APPTAINER_CONTAINER"),
                ("SINGULARITY_NAME", "SINGULARITY_CONTAINER"),
            ],
            Flavour::SingularityCe => &[("SINGULARITY_NAME", "SINGULARITY_CONTAINER")],
        }
    }
}

/// The environment of the command run in `image`, from the host's.
pub fn container_environment(
    host: impl IntoIterator<Item = (OsString, OsString)>,
    flavour: Flavour,
    image: &Path,
) -> BTreeMap<OsString, OsString> {
    let mut plain = BTreeMap::new();
    // Per prefix, in priority order, the variables it asks to set.
    let mut requested: Vec<BTreeMap<OsString, OsString>> = vec![BTreeMap::new(); flavour.prefixes().len()];
    for (name, value) in host {
        match flavour
            .prefixes()
            .iter()
            .position(|prefix| name.as_bytes().starts_with(prefix.as_bytes()))
        {
            Some(rank) => {
                let stripped = &name.as_bytes()[flavour.prefixes()[rank].len()..];
                if !stripped.is_empty() {
                    requested[rank].insert(OsString::from_vec(stripped.to_vec()), value);
                }
            }
            None => {
                plain.insert(name, value);
            }
        }
    }
    // Runtimes never import these two from the host.
    plain.remove(OsStr::new("PATH"));
    plain.remove(OsStr::new("LD_LIBRARY_PATH"));

    let mut wanted: BTreeMap<OsString, OsString> = BTreeMap::new();
    for layer in requested {
        wanted.extend(layer);
    }
    let prepend = wanted.remove(OsStr::new("PREPEND_PATH"));
    let append = wanted.remove(OsStr::new("APPEND_PATH"));

    let mut env = plain;
    env.insert("PATH".into(), DEFAULT_PATH.into());
    env.extend(wanted);

    let mut path = env.remove(OsStr::new("PATH")).unwrap_or_default();
    if let Some(front) = prepend.filter(|v| !v.is_empty()) {
        path = join_path(&front, &path);
    }
    if let Some(back) = append.filter(|v| !v.is_empty()) {
        path = join_path(&path, &back);
    }
    env.insert("PATH".into(), path);

    let libraries = match env.remove(OsStr::new("LD_LIBRARY_PATH")) {
        Some(value) if !value.is_empty() => join_path(&value, OsStr::new(CONTAINER_LIBS)),
        _ => CONTAINER_LIBS.into(),
    };
    env.insert("LD_LIBRARY_PATH".into(), libraries);

    let name = image.file_name().unwrap_or(image.as_os_str());
    for (name_var, container_var) in flavour.identity_variables() {
        env.insert((*name_var).into(), name.to_owned());
        env.insert((*container_var).into(), image.as_os_str().to_owned());
    }
    env
}

fn join_path(first: &OsStr, second: &OsStr) -> OsString {
    let mut joined = first.to_owned();
    joined.push(":");
    joined.push(second);
    joined
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(vars: &[(&str, &str)]) -> Vec<(OsString, OsString)> {
        vars.iter()
            .map(|(k, v)| (OsString::from(k), OsString::from(v)))
            .collect()
    }

    fn get<'a>(env: &'a BTreeMap<OsString, OsString>, key: &str) -> Option<&'a str> {
        env.get(OsStr::new(key)).map(|v| v.to_str().unwrap())
    }

    #[test]
    fn path_is_reset_and_prefixed_vars_applied() {
        let env = container_environment(
            host(&[
                ("PATH", "/host/bin"),
                ("LD_LIBRARY_PATH", "/host/lib"),
                ("KEEP", "1"),
                ("APPTAINERENV_PREPEND_PATH", "/env/bin"),
                ("APPTAINERENV_APPEND_PATH", "/late/bin"),
                ("APPTAINERENV_FOO", "a"),
                ("SINGULARITYENV_FOO", "s"),
                ("SINGULARITYENV_BAR", "b"),
                ("APPTAINERENV_LD_LIBRARY_PATH", "/lib/x"),
            ]),
            Flavour::Apptainer,
            Path::new("/images/base"),
        );
        assert_eq!(get(&env, "PATH"), Some(&*format!("/env/bin:{DEFAULT_PATH}:/late/bin")));
        assert_eq!(get(&env, "FOO"), Some("a"), "APPTAINERENV_ wins over SINGULARITYENV_");
        assert_eq!(get(&env, "BAR"), Some("b"));
        assert_eq!(get(&env, "KEEP"), Some("1"));
        assert_eq!(get(&env, "LD_LIBRARY_PATH"), Some("/lib/x:/.singularity.d/libs"));
        assert_eq!(get(&env, "APPTAINER_CONTAINER"), Some("/images/base"));
        assert_eq!(get(&env, "SINGULARITY_NAME"), Some("base"));
        assert!(env.keys().all(|k| !k.to_str().unwrap().contains("ENV_")));
    }

    #[test]
    fn singularity_ignores_apptainer_prefix() {
        let env = container_environment(
            host(&[("APPTAINERENV_FOO", "a"), ("LD_LIBRARY_PATH", "/host/lib")]),
            Flavour::SingularityCe,
            Path::new("/base"),
        );
        assert_eq!(get(&env, "FOO"), None);
        assert_eq!(get(&env, "APPTAINERENV_FOO"), Some("a"));
        assert_eq!(get(&env, "LD_LIBRARY_PATH"), Some(CONTAINER_LIBS));
        assert_eq!(get(&env, "PATH"), Some(DEFAULT_PATH));
        assert_eq!(get(&env, "APPTAINER_CONTAINER"), None);
        assert_eq!(get(&env, "SINGULARITY_CONTAINER"), Some("/base"));
    }
}
