//! Provenance manifests (issue 14): what made an image.
//!
//! `installer build` and `installer update` write one into the env itself,
//! at `<prefix>/<env>/.launcher-manifest.toml` (so it travels inside the
//! image, wherever the image is copied), and one beside the image
//! (`NAME.manifest.toml` next to `NAME.sqsh`; `deploy` keeps
//! `<envs>/<env>.manifest.toml` beside the live image). The copy inside the
//! image is the authority: `status` and `diff` read it with `backhand`.
//!
//! It records every step that made the env (the build, then each update:
//! the command, the date, the checksums of the input files named on the
//! command line, the image an update started from), the package list after
//! the last step, the base image of the site, the launcher version and the
//! date. TOML, written by hand (no serializer needed), read back with the
//! `toml` crate.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fs;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::error::{InstallError, Result};
use crate::image::EnvImage;

/// The manifest's file name inside the env (`<prefix>/<env>/…`).
pub const FILE_IN_ENV: &str = ".launcher-manifest.toml";
/// Version of the format below.
pub const FORMAT: u32 = 1;

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct Manifest {
    #[serde(default)]
    pub format: u32,
    pub env: String,
    /// `<container_prefix>/<env>`.
    pub prefix: String,
    /// Of the last step (RFC 3339, UTC).
    pub date: String,
    pub launcher_version: String,
    /// `runtime.image` of the site the build ran for, when one was given.
    #[serde(default)]
    pub base_image: Option<String>,
    #[serde(default)]
    pub steps: Vec<Step>,
    #[serde(default)]
    pub packages: Packages,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct Step {
    /// `build` or `update`.
    pub kind: String,
    pub date: String,
    /// The command as run (each argument, lossy UTF-8).
    pub command: Vec<String>,
    /// The working directory the command ran in.
    #[serde(default)]
    pub cwd: String,
    /// The image an update started from, and its sha256.
    #[serde(default)]
    pub from_image: Option<String>,
    #[serde(default)]
    pub from_sha256: Option<String>,
    #[serde(default)]
    pub inputs: Vec<Input>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Input {
    pub path: String,
    pub sha256: String,
}

/// What is installed, as the tools list it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct Packages {
    /// `name==version` (`pip list --format=freeze`).
    #[serde(default)]
    pub pip: Vec<String>,
    /// `name=version=build` (`conda list --export`, read from `conda-meta/`).
    #[serde(default)]
    pub conda: Vec<String>,
}

impl Manifest {
    pub fn parse(text: &str, source: &Path) -> Result<Manifest> {
        toml::from_str(text).map_err(|e| InstallError::Image {
            path: source.to_path_buf(),
            reason: format!(
                "provenance manifest {FILE_IN_ENV} does not parse: {}",
                e.to_string().lines().next().unwrap_or("")
            ),
        })
    }

    /// The manifest inside `image` (`None` when there is none: an image
    /// made by `pack` from an env built elsewhere).
    pub fn from_image(image: &EnvImage, prefix_in_image: &Path) -> Result<Option<Manifest>> {
        match image.read_file(&prefix_in_image.join(FILE_IN_ENV)) {
            None => Ok(None),
            Some(Err(e)) => Err(InstallError::Image {
                path: image.path().to_path_buf(),
                reason: format!("cannot read {FILE_IN_ENV}: {}", crate::error::io_reason(&e)),
            }),
            Some(Ok(bytes)) => Manifest::parse(&String::from_utf8_lossy(&bytes), image.path()).map(Some),
        }
    }

    /// The manifest inside the env at `prefix` (a directory), if any.
    pub fn from_dir(prefix: &Path) -> Result<Option<Manifest>> {
        let path = prefix.join(FILE_IN_ENV);
        match fs::read_to_string(&path) {
            Ok(text) => Manifest::parse(&text, &path).map(Some),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(InstallError::io(&path, e)),
        }
    }

    /// Every package as `(source:name, version)`, names lower-cased with
    /// `-`/`_`/`.` folded (as pip compares them).
    pub fn package_versions(&self) -> BTreeMap<String, String> {
        let mut all = BTreeMap::new();
        for line in &self.packages.pip {
            if let Some((name, version)) = line.split_once("==") {
                all.insert(format!("pip:{}", normalize(name)), version.to_string());
            }
        }
        for line in &self.packages.conda {
            if let Some((name, rest)) = line.split_once('=') {
                all.insert(format!("conda:{}", normalize(name)), rest.to_string());
            }
        }
        all
    }

    pub fn package_count(&self) -> usize {
        self.packages.pip.len() + self.packages.conda.len()
    }

    /// The TOML text.
    pub fn render(&self) -> String {
        let mut out = String::new();
        out.push_str("# Provenance of this env, written by `installer build`/`installer update`; do not edit.\n");
        out.push_str(&format!("format = {FORMAT}\n"));
        out.push_str(&format!("env = {}\n", quote(&self.env)));
        out.push_str(&format!("prefix = {}\n", quote(&self.prefix)));
        out.push_str(&format!("date = {}\n", quote(&self.date)));
        out.push_str(&format!("launcher_version = {}\n", quote(&self.launcher_version)));
        if let Some(base) = &self.base_image {
            out.push_str(&format!("base_image = {}\n", quote(base)));
        }
        out.push_str("\n[packages]\n");
        out.push_str(&format!("pip = {}\n", array(&self.packages.pip)));
        out.push_str(&format!("conda = {}\n", array(&self.packages.conda)));
        for step in &self.steps {
            out.push_str("\n[[steps]]\n");
            out.push_str(&format!("kind = {}\n", quote(&step.kind)));
            out.push_str(&format!("date = {}\n", quote(&step.date)));
            out.push_str(&format!("command = {}\n", inline(&step.command)));
            out.push_str(&format!("cwd = {}\n", quote(&step.cwd)));
            if let Some(from) = &step.from_image {
                out.push_str(&format!("from_image = {}\n", quote(from)));
            }
            if let Some(sum) = &step.from_sha256 {
                out.push_str(&format!("from_sha256 = {}\n", quote(sum)));
            }
            out.push_str("inputs = [");
            for (i, input) in step.inputs.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&format!(
                    "\n  {{ path = {}, sha256 = {} }}",
                    quote(&input.path),
                    quote(&input.sha256)
                ));
            }
            out.push_str(if step.inputs.is_empty() { "]\n" } else { ",\n]\n" });
        }
        out
    }

    /// One line per step for `status`: `build 2026-… micromamba create …`.
    pub fn step_lines(&self) -> Vec<String> {
        self.steps
            .iter()
            .map(|s| {
                let mut line = format!("{} {} {}", s.kind, s.date, shell_words(&s.command));
                for input in &s.inputs {
                    line.push_str(&format!(
                        " [{} sha256:{}]",
                        input.path,
                        &input.sha256[..input.sha256.len().min(12)]
                    ));
                }
                line
            })
            .collect()
    }
}

fn normalize(name: &str) -> String {
    name.trim()
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c == '_' || c == '.' { '-' } else { c })
        .collect()
}

/// A TOML basic string.
pub fn quote(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn inline(items: &[String]) -> String {
    format!("[{}]", items.iter().map(|i| quote(i)).collect::<Vec<_>>().join(", "))
}

fn array(items: &[String]) -> String {
    if items.is_empty() {
        return "[]".into();
    }
    let mut out = String::from("[\n");
    for item in items {
        out.push_str(&format!("  {},\n", quote(item)));
    }
    out.push(']');
    out
}

/// Arguments joined for display, each quoted when it needs it.
pub fn shell_words(args: &[String]) -> String {
    args.iter()
        .map(|a| {
            if !a.is_empty() && a.chars().all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c)) {
                a.clone()
            } else {
                format!("'{}'", a.replace('\'', "'\\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// sha256 of a file, in hex.
pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut file = fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// Files under these are the system's, not inputs of a build.
const SYSTEM_DIRS: [&str; 6] = ["/usr/", "/bin/", "/sbin/", "/lib/", "/lib64/", "/etc/"];

/// The input files named on a command line: every argument (or the value
/// of a `--opt=VALUE` argument) that names an existing regular file,
/// relative to `cwd`, except files inside the env being built (`inside`)
/// and the system's (`/usr`, `/bin`, `/sbin`, `/lib`, `/lib64`, `/etc`).
/// Absolute paths, checksummed.
pub fn inputs_of(command: &[OsString], cwd: &Path, inside: &Path, extra: &[PathBuf]) -> Result<Vec<Input>> {
    let mut seen = std::collections::BTreeSet::new();
    let mut inputs = Vec::new();
    let candidates = command
        .iter()
        .flat_map(|arg| {
            let bytes = arg.as_bytes();
            let mut out = vec![PathBuf::from(arg)];
            if let Some(at) = bytes.iter().position(|&b| b == b'=') {
                out.push(PathBuf::from(std::ffi::OsStr::from_bytes(&bytes[at + 1..])));
            }
            out
        })
        .chain(extra.iter().cloned());
    for candidate in candidates {
        if candidate.as_os_str().is_empty() {
            continue;
        }
        let path = if candidate.is_absolute() {
            candidate
        } else {
            cwd.join(candidate)
        };
        if !fs::metadata(&path).is_ok_and(|m| m.is_file()) || path.starts_with(inside) {
            continue;
        }
        let shown = fs::canonicalize(&path).unwrap_or(path);
        // The system's own programs (`/usr/bin/python3`) are not inputs.
        if SYSTEM_DIRS.iter().any(|d| shown.starts_with(d)) {
            continue;
        }
        if !seen.insert(shown.clone()) {
            continue;
        }
        let sha256 = sha256_file(&shown).map_err(|e| InstallError::io(&shown, e))?;
        inputs.push(Input {
            path: shown.to_string_lossy().into_owned(),
            sha256,
        });
    }
    Ok(inputs)
}

/// The packages of the env at `prefix` (run inside the build's namespace,
/// where `prefix` is the env's real path): `conda-meta/*.json` names (the
/// `name=version=build` lines of `conda list --export`), and the env's
/// Python's `pip list --format=freeze` (or, without pip, the same list from
/// `importlib.metadata`).
pub fn list_packages(prefix: &Path) -> (Packages, Vec<String>) {
    let mut notes = Vec::new();
    let mut packages = Packages::default();
    if let Ok(entries) = fs::read_dir(prefix.join("conda-meta")) {
        let mut conda: Vec<String> = entries
            .flatten()
            .filter_map(|e| conda_meta_line(&e.file_name().to_string_lossy()))
            .collect();
        conda.sort();
        packages.conda = conda;
    }
    let python = ["bin/python3", "bin/python"]
        .iter()
        .map(|p| prefix.join(p))
        .find(|p| p.exists());
    if let Some(python) = python {
        match pip_freeze(&python) {
            Ok(list) => packages.pip = list,
            Err(why) => notes.push(format!("no pip package list: {why}")),
        }
    }
    (packages, notes)
}

/// `numpy-1.26.4-py311h64a7726_0.json` → `numpy=1.26.4=py311h64a7726_0`
/// (conda forbids `-` in versions and build strings, not in names).
pub fn conda_meta_line(file_name: &str) -> Option<String> {
    let stem = file_name.strip_suffix(".json")?;
    let mut parts = stem.rsplitn(3, '-');
    let build = parts.next()?;
    let version = parts.next()?;
    let name = parts.next()?;
    (!name.is_empty()).then(|| format!("{name}={version}={build}"))
}

const METADATA_LIST: &str = r#"import importlib.metadata as m
seen = {}
for d in m.distributions():
    n = d.metadata["Name"]
    if n and n.lower() not in seen:
        seen[n.lower()] = f"{n}=={d.version}"
print("\n".join(sorted(seen.values(), key=str.lower)))
"#;

fn pip_freeze(python: &Path) -> std::result::Result<Vec<String>, String> {
    let run = |args: &[&str]| {
        Command::new(python)
            .args(args)
            .env("PIP_DISABLE_PIP_VERSION_CHECK", "1")
            .env("PIP_NO_INPUT", "1")
            .env("PYTHONNOUSERSITE", "1")
            .env_remove("PYTHONPATH")
            .current_dir("/")
            .stdin(Stdio::null())
            .stderr(Stdio::piped())
            .output()
    };
    let out = run(&["-m", "pip", "list", "--format=freeze"]).map_err(|e| format!("{}: {e}", python.display()))?;
    let out = if out.status.success() {
        out
    } else {
        let fallback = run(&["-c", METADATA_LIST]).map_err(|e| format!("{}: {e}", python.display()))?;
        if !fallback.status.success() {
            return Err(format!(
                "{} failed: {}",
                python.display(),
                String::from_utf8_lossy(&fallback.stderr).lines().last().unwrap_or("")
            ));
        }
        fallback
    };
    let mut list: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::trim)
        .filter(|l| l.contains("=="))
        .map(str::to_string)
        .collect();
    list.sort_by_key(|l| l.to_ascii_lowercase());
    Ok(list)
}

/// Now, as `2026-12-02T06:50:00Z`.
pub fn now_rfc3339() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    rfc3339(secs)
}

/// Seconds since the epoch as `YYYY-MM-DDTHH:MM:SSZ` (UTC).
pub fn rfc3339(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Howard Hinnant's days-to-civil.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Manifest {
        Manifest {
            format: FORMAT,
            env: "e-1".into(),
            prefix: "/opt/conda/e-1".into(),
            date: "2026-12-02T06:50:00Z".into(),
            launcher_version: "0.1.0".into(),
            base_image: Some("/apps/base.sif".into()),
            steps: vec![
                Step {
                    kind: "build".into(),
                    date: "2026-12-01T00:00:00Z".into(),
                    command: vec!["pip".into(), "install".into(), "-r".into(), "req \"x\".txt".into()],
                    cwd: "/ci".into(),
                    from_image: None,
                    from_sha256: None,
                    inputs: vec![Input {
                        path: "/ci/req \"x\".txt".into(),
                        sha256: "ab".repeat(32),
                    }],
                },
                Step {
                    kind: "update".into(),
                    date: "2026-12-02T06:50:00Z".into(),
                    command: vec!["pip".into(), "uninstall".into(), "-y".into(), "x\ty".into()],
                    cwd: "/ci".into(),
                    from_image: Some("/envs/e-1.sqsh".into()),
                    from_sha256: Some("cd".repeat(32)),
                    inputs: vec![],
                },
            ],
            packages: Packages {
                pip: vec!["Alpha==1.0".into(), "beta_pkg==2.1".into()],
                conda: vec!["python=3.11.7=h1234_0".into()],
            },
        }
    }

    #[test]
    fn render_parses_back_to_the_same() {
        let m = sample();
        let text = m.render();
        assert_eq!(Manifest::parse(&text, Path::new("x")).unwrap(), m, "{text}");
        let empty = Manifest {
            steps: vec![],
            packages: Packages::default(),
            base_image: None,
            ..sample()
        };
        assert_eq!(Manifest::parse(&empty.render(), Path::new("x")).unwrap(), empty);
    }

    #[test]
    fn package_keys_are_normalised() {
        let versions = sample().package_versions();
        assert_eq!(versions.get("pip:alpha").map(String::as_str), Some("1.0"));
        assert_eq!(versions.get("pip:beta-pkg").map(String::as_str), Some("2.1"));
        assert_eq!(versions.get("conda:python").map(String::as_str), Some("3.11.7=h1234_0"));
    }

    #[test]
    fn conda_meta_names_split_from_the_right() {
        assert_eq!(
            conda_meta_line("ca-certificates-2024.2.2-hbcca054_0.json").as_deref(),
            Some("ca-certificates=2024.2.2=hbcca054_0")
        );
        assert_eq!(conda_meta_line("history"), None);
        assert_eq!(conda_meta_line("x-1.json"), None);
    }

    #[test]
    fn dates_are_utc_rfc3339() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_709_251_199), "2024-02-29T23:59:59Z");
        assert_eq!(rfc3339(1_798_761_600), "2027-01-01T00:00:00Z");
    }

    #[test]
    fn inputs_are_files_named_on_the_command_line() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("req.txt"), "x==1\n").unwrap();
        fs::write(dir.path().join("env.yml"), "name: e\n").unwrap();
        fs::create_dir(dir.path().join("prefix")).unwrap();
        fs::write(dir.path().join("prefix/inside"), "").unwrap();
        let command: Vec<OsString> = [
            "pip",
            "install",
            "-r",
            "req.txt",
            "--file=env.yml",
            "prefix/inside",
            "req.txt",
        ]
        .map(OsString::from)
        .to_vec();
        let inputs = inputs_of(&command, dir.path(), &dir.path().join("prefix"), &[]).unwrap();
        let names: Vec<&str> = inputs.iter().map(|i| i.path.rsplit('/').next().unwrap()).collect();
        assert_eq!(names, ["req.txt", "env.yml"]);
        assert_eq!(inputs[0].sha256, sha256_file(&dir.path().join("req.txt")).unwrap());
        assert!(inputs[0].path.starts_with('/'));
    }

    #[test]
    fn sha256_of_a_known_string() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("abc"), "abc").unwrap();
        assert_eq!(
            sha256_file(&dir.path().join("abc")).unwrap(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
