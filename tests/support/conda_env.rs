//! The main test env, built like a conda env (issue 11), with no network:
//!
//! - a Python with its own stdlib at `/opt/conda/<env>`: Debian's
//!   `/usr/bin/python3.11` (it links only libc, libm, libz and libexpat;
//!   libpython is built in) copied to `bin/python3.11`, with `python3` and
//!   `python` symlinks, and `/usr/lib/python3.11` (with `lib-dynload`) copied
//!   to `lib/python3.11`. CPython finds its prefix by looking for
//!   `lib/python3.11/os.py` above the *resolved* executable, so run by its
//!   real path it reports `sys.prefix = /opt/conda/<env>`, as a conda
//!   Python does (the build checks it);
//! - its site dir is Debian's layout, `lib/python3/dist-packages` (what the
//!   Debian `site.py` adds for any prefix: `local/lib/python3.11/dist-packages`,
//!   `lib/python3/dist-packages`, `lib/python3.11/dist-packages`; conda's
//!   `lib/python3.11/site-packages` is only added in a venv). It holds:
//!   - Debian's `python3-ipykernel` and `python3-pip` with every `python3-*`
//!     package they depend on, copied file by file from
//!     `/usr/lib/python3/dist-packages` (`dpkg -L`), so the kernels test has
//!     an ipykernel and `python3 -m pip list` works (pip 23 as Debian ships
//!     it keeps its vendored libraries);
//!   - [`PURE`], a pure-Python package, and [`EXTENSION`], a C extension
//!     compiled with the system `gcc` against `/usr/include/python3.11`,
//!     each with a `.dist-info` (`METADATA`, `RECORD` with hashes,
//!     `INSTALLER`, `WHEEL`, `top_level.txt`, entry points);
//!   - byte code for all of it (`compileall`, at the final path, as conda
//!     does at install time: the image is read-only);
//! - console scripts ([`ENTRY_POINTS`]) whose `#!` is
//!   `/opt/conda/<env>/bin/python3.11`, in conda's template;
//! - the shell tools of `images::MAIN_TOOLS` in `bin/`.
//!
//! About 8,000 files, so `installer status` has something to show. Built in
//! `unshare --mount` with a tmpfs over `/opt` (nothing lands on the host),
//! packed with `mksquashfs`, cached by `images.rs` like every test image.
//! The Debian interpreter's compiled-in prefix is `/usr`, unlike conda's,
//! which conda rewrites to the env's prefix: where CPython's landmark search
//! fails (a venv whose `home` is a scripts dir), this env falls back to
//! `/usr` where a conda env would not (docs/python.md).

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::hash::Hash;
use std::path::Path;
use std::process::Command;

/// The interpreter's file name in the env's `bin/` (`python3`, `python` link to it).
pub const INTERPRETER: &str = "python3.11";
/// Where the interpreter and its stdlib are copied from.
pub const SYSTEM_INTERPRETER: &str = "/usr/bin/python3.11";
pub const SYSTEM_STDLIB: &str = "/usr/lib/python3.11";
/// Debian's site dir, the source of the copied packages.
pub const SYSTEM_DIST_PACKAGES: &str = "/usr/lib/python3/dist-packages";
/// The headers the C extension is compiled against (python3-dev).
pub const PYTHON_HEADER: &str = "/usr/include/python3.11/Python.h";
/// The env's site dir, relative to its prefix.
pub const SITE_DIR: &str = "lib/python3/dist-packages";
/// Debian packages copied into the env's site dir, with their `python3-*`
/// dependencies.
pub const DEBIAN_ROOTS: &[&str] = &["python3-ipykernel", "python3-pip"];

/// A distribution the suite writes itself.
pub struct Dist {
    pub name: &'static str,
    pub version: &'static str,
    pub summary: &'static str,
    /// `Root-Is-Purelib` and the wheel tag of its `WHEEL` file.
    pub purelib: bool,
}

impl Dist {
    /// `<name>-<version>.dist-info`
    pub fn dist_info(&self) -> String {
        format!("{}-{}.dist-info", self.name, self.version)
    }
}

/// A pure-Python package only the env has (not on the host).
pub const PURE: Dist = Dist {
    name: "envpkg",
    version: "1.4.2",
    summary: "A pure-Python package only the test env has",
    purelib: true,
};

/// A C extension module only the env has.
pub const EXTENSION: Dist = Dist {
    name: "envext",
    version: "0.3.1",
    summary: "A C extension only the test env has",
    purelib: false,
};

/// Console scripts in the env's `bin/`: (name, module, function).
pub const ENTRY_POINTS: &[(&str, &str, &str)] = &[
    ("envpkg-info", "envpkg.cli", "main"),
    ("pip", "pip._internal.cli.main", "main"),
    ("pip3", "pip._internal.cli.main", "main"),
    ("pip3.11", "pip._internal.cli.main", "main"),
];

/// `envpkg/__init__.py`
const PURE_INIT: &str = r#""""A pure-Python package that only the launcher's test env has (issue 11)."""

__version__ = "1.4.2"


def where():
    """The prefix of the Python running this package."""
    import sys

    return sys.prefix
"#;

/// `envpkg/cli.py`: the `envpkg-info` entry point.
const PURE_CLI: &str = r#""""envpkg-info: what the entry point sees."""

import os
import sys

import envext
import envpkg


def main():
    print(f"envpkg {envpkg.__version__} envext {envext.__version__} {envext.add(40, 2)}")
    print(f"prefix {sys.prefix}")
    print(f"executable {sys.executable}")
    print(f"argv0 {sys.argv[0]}")
    print("inside" if os.path.isdir("/.singularity.d") else "outside")
    return 0
"#;

/// `envext.c`
const EXTENSION_C: &str = r#"/* A C extension that only the launcher's test env has (issue 11). */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

static PyObject *envext_add(PyObject *self, PyObject *args)
{
    long a, b;
    if (!PyArg_ParseTuple(args, "ll", &a, &b))
        return NULL;
    return PyLong_FromLong(a + b);
}

static PyMethodDef envext_methods[] = {
    {"add", envext_add, METH_VARARGS, "Add two integers, in C."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef envext_module = {
    PyModuleDef_HEAD_INIT, "envext", "A C extension only the test env has.", -1, envext_methods,
};

PyMODINIT_FUNC PyInit_envext(void)
{
    PyObject *module = PyModule_Create(&envext_module);
    if (module != NULL && PyModule_AddStringConstant(module, "__version__", ENVEXT_VERSION) < 0) {
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
"#;

/// Writes `RECORD` for each (dist-info, top-level globs, scripts) triple, as
/// an installer does: `path,sha256=<urlsafe b64>,size`, paths relative to
/// the site dir.
const RECORD_PY: &str = r#"import base64, glob, hashlib, os, sys

site, bindir, spec = sys.argv[1], sys.argv[2], sys.argv[3:]
for i in range(0, len(spec), 3):
    info = spec[i]
    tops = spec[i + 1].split(",") + [info]
    scripts = [s for s in spec[i + 2].split(",") if s]
    paths = []
    for top in tops:
        for full in glob.glob(os.path.join(site, top)):
            if os.path.isdir(full):
                for d, _, files in os.walk(full):
                    paths += [os.path.join(d, f) for f in files]
            else:
                paths.append(full)
    paths += [os.path.join(bindir, s) for s in scripts]
    record = os.path.join(info, "RECORD")
    lines = []
    for path in sorted(set(paths)):
        rel = os.path.relpath(path, site)
        if rel == record:
            continue
        with open(path, "rb") as f:
            data = f.read()
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        lines.append(f"{rel},sha256={digest},{len(data)}")
    lines.append(f"{record},,")
    with open(os.path.join(site, record), "w") as f:
        f.write("\n".join(lines) + "\n")
"#;

/// Run in a private mount namespace with a tmpfs over /opt: the env is made
/// at its in-container path, checked, and packed; nothing is left on the
/// host. `$stage/prefix` holds what the suite wrote (bin/, the site dir).
const BUILD_SCRIPT: &str = r#"
set -eu
stage="$1"; env="$2"; out="$3"; ext_version="$4"
mount -t tmpfs -o mode=0755 launcher-bed /opt
prefix="/opt/conda/$env"
site="$prefix/lib/python3/dist-packages"
mkdir -p "$prefix/bin" "$site"
# The interpreter, a file of its own, and its stdlib beside it.
cp /usr/bin/python3.11 "$prefix/bin/python3.11"
ln -s python3.11 "$prefix/bin/python3"
ln -s python3.11 "$prefix/bin/python"
cp -a /usr/lib/python3.11 "$prefix/lib/"
# Not a Debian system Python any more: pip may install here; no host hook.
rm -f "$prefix/lib/python3.11/EXTERNALLY-MANAGED" "$prefix/lib/python3.11/sitecustomize.py"
# Debian's ipykernel and pip with their dependencies, at the same relative place.
tar -C /usr/lib/python3/dist-packages --no-recursion -cf - -T "$stage/debian-files" | tar -C "$site" -xf -
# The suite's own: tools, entry points, a pure package, a C extension.
cp -a "$stage/prefix/." "$prefix/"
python="$prefix/bin/python3.11"
suffix=$("$python" -c 'import sysconfig; print(sysconfig.get_config_var("EXT_SUFFIX"))')
gcc -shared -fPIC -O2 -Wall -Werror -I/usr/include/python3.11 "-DENVEXT_VERSION=\"$ext_version\"" \
  -o "$site/envext$suffix" "$stage/envext.c"
"$python" "$stage/record.py" "$site" "$prefix/bin" $(cat "$stage/records")
"$python" -m compileall -q -j 0 "$site" >/dev/null
# The check: run by its real path, it finds its prefix and the packages.
got=$(cd / && env -i "$prefix/bin/python3" -c 'import sys, envpkg, envext, ipykernel, pip; print(sys.prefix)')
if [ "$got" != "$prefix" ]; then
  echo "the env's python3 reports sys.prefix $got, not $prefix" >&2
  exit 1
fi
printf '%s\n' "$env" > /opt/conda/.top-image
mksquashfs /opt "$out" -keep-as-directory -root-mode 755 -noappend -all-root -no-xattrs -quiet -no-progress
"#;

/// Why the conda-like env cannot be built here (`None`: it can).
pub fn missing() -> Option<String> {
    for (path, package) in [
        (SYSTEM_INTERPRETER, "python3.11"),
        (&format!("{SYSTEM_STDLIB}/os.py") as &str, "python3.11"),
        (PYTHON_HEADER, "python3-dev"),
    ] {
        if !Path::new(path).exists() {
            return Some(format!(
                "{path} not found (install {package}): the conda-like test env is built from it"
            ));
        }
    }
    if super::prereq::find_on_path("gcc").is_none() {
        return Some("gcc not found on PATH (install gcc): the test env's C extension is compiled with it".into());
    }
    let installed = match installed_packages() {
        Ok(installed) => installed,
        Err(e) => return Some(e),
    };
    let absent: Vec<&str> = DEBIAN_ROOTS
        .iter()
        .copied()
        .filter(|p| !installed.contains_key(*p))
        .collect();
    if !absent.is_empty() {
        return Some(format!(
            "Debian packages {} not installed: the test env copies them (install them, or run .ci/run)",
            absent.join(" ")
        ));
    }
    None
}

/// Everything that decides the env's content, for the image cache key.
pub fn hash_recipe(hasher: &mut impl std::hash::Hasher) {
    (
        BUILD_SCRIPT,
        RECORD_PY,
        PURE_INIT,
        PURE_CLI,
        EXTENSION_C,
        SITE_DIR,
        DEBIAN_ROOTS,
        ENTRY_POINTS,
    )
        .hash(hasher);
    for dist in [&PURE, &EXTENSION] {
        (dist.name, dist.version, dist.summary, dist.purelib).hash(hasher);
    }
    // A Debian upgrade (of the interpreter or of a copied package) rebuilds.
    if let Ok(installed) = installed_packages() {
        for package in closure(&installed) {
            (&package, &installed[&package].version).hash(hasher);
        }
    }
    for path in [SYSTEM_INTERPRETER, PYTHON_HEADER] {
        if let Ok(meta) = fs::metadata(path) {
            use std::os::unix::fs::MetadataExt;
            (meta.len(), meta.mtime()).hash(hasher);
        }
    }
}

/// Build the image `out` of env `env`. `stage` is an empty scratch dir
/// whose `prefix/bin` already holds the env's tools.
pub fn build(env: &str, stage: &Path, out: &Path) -> Result<(), String> {
    let installed = installed_packages()?;
    let files = debian_files(&closure(&installed))?;
    write(&stage.join("debian-files"), &(files.join("\n") + "\n"))?;
    write_own_files(env, stage)?;
    let mut command = Command::new("/usr/bin/unshare");
    if !nix::unistd::geteuid().is_root() {
        command.arg("--map-root-user");
    }
    command
        .args([
            "--mount",
            "--propagation",
            "private",
            "/bin/sh",
            "-c",
            BUILD_SCRIPT,
            "build-conda-env",
        ])
        .arg(stage)
        .arg(env)
        .arg(out)
        .arg(EXTENSION.version);
    let output = command
        .output()
        .map_err(|e| format!("cannot build the conda-like env: {e}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "building the conda-like env failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

/// What the suite writes itself: the packages, their dist-infos, the C
/// source, the console scripts, and the arguments of `record.py`.
fn write_own_files(env: &str, stage: &Path) -> Result<(), String> {
    let prefix = stage.join("prefix");
    let site = prefix.join(SITE_DIR);
    write(&site.join("envpkg/__init__.py"), PURE_INIT)?;
    write(&site.join("envpkg/cli.py"), PURE_CLI)?;
    write(&stage.join("envext.c"), EXTENSION_C)?;
    write(&stage.join("record.py"), RECORD_PY)?;
    let own_scripts: Vec<&str> = ENTRY_POINTS
        .iter()
        .filter(|(_, module, _)| module.starts_with("envpkg"))
        .map(|(name, _, _)| *name)
        .collect();
    for (dist, top_level, scripts) in [(&PURE, "envpkg", own_scripts.clone()), (&EXTENSION, "envext", vec![])] {
        let info = site.join(dist.dist_info());
        let tag = if dist.purelib {
            "py3-none-any"
        } else {
            "cp311-cp311-linux_x86_64"
        };
        write(
            &info.join("METADATA"),
            &format!(
                "Metadata-Version: 2.1\nName: {}\nVersion: {}\nSummary: {}\nRequires-Python: >=3.8\n",
                dist.name, dist.version, dist.summary
            ),
        )?;
        write(
            &info.join("WHEEL"),
            &format!(
                "Wheel-Version: 1.0\nGenerator: launcher-test-bed\nRoot-Is-Purelib: {}\nTag: {tag}\n",
                dist.purelib
            ),
        )?;
        write(&info.join("INSTALLER"), "conda\n")?;
        write(&info.join("top_level.txt"), &format!("{top_level}\n"))?;
        if !scripts.is_empty() {
            let mut text = String::from("[console_scripts]\n");
            for (name, module, function) in ENTRY_POINTS.iter().filter(|(n, _, _)| scripts.contains(n)) {
                text.push_str(&format!("{name} = {module}:{function}\n"));
            }
            write(&info.join("entry_points.txt"), &text)?;
        }
    }
    let records = [
        PURE.dist_info(),
        "envpkg".into(),
        own_scripts.join(","),
        EXTENSION.dist_info(),
        "envext.*.so".into(),
        String::new(),
    ];
    write(
        &stage.join("records"),
        &(records.map(|r| quote_word(&r)).join(" ") + "\n"),
    )?;
    let bin = prefix.join("bin");
    for (name, module, function) in ENTRY_POINTS {
        super::files::write_executable(&bin.join(name), &entry_point_script(env, module, function))?;
    }
    Ok(())
}

/// `$(cat records)` is split by the shell on whitespace: an empty field
/// must still be a word.
fn quote_word(word: &str) -> String {
    if word.is_empty() {
        ",".into()
    } else {
        word.to_string()
    }
}

/// A console script as conda writes it.
pub fn entry_point_script(env: &str, module: &str, function: &str) -> String {
    format!(
        "#!/opt/conda/{env}/bin/{INTERPRETER}\n\
         # -*- coding: utf-8 -*-\n\
         import re\n\
         import sys\n\
         \n\
         from {module} import {function}\n\
         \n\
         if __name__ == '__main__':\n\
         \x20   sys.argv[0] = re.sub(r'(-script\\.pyw?|\\.exe)?$', '', sys.argv[0])\n\
         \x20   sys.exit({function}())\n"
    )
}

fn write(path: &Path, text: &str) -> Result<(), String> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))
}

/// An installed Debian package: its version and what it depends on (the
/// first alternative of each dependency, without version or arch).
struct Installed {
    version: String,
    depends: Vec<Vec<String>>,
}

/// Every installed package, from one `dpkg-query` call.
fn installed_packages() -> Result<BTreeMap<String, Installed>, String> {
    let output = Command::new("dpkg-query")
        .args([
            "-W",
            "-f",
            "${Package}\t${Version}\t${db:Status-Abbrev}\t${Depends}, ${Pre-Depends}\n",
        ])
        .output()
        .map_err(|e| format!("cannot run dpkg-query (a Debian system is needed): {e}"))?;
    let mut installed = BTreeMap::new();
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        let fields: Vec<&str> = line.split('\t').collect();
        let [package, version, status, depends] = fields[..] else {
            continue;
        };
        if !status.starts_with("ii") {
            continue;
        }
        let depends = depends
            .split(',')
            .map(|dep| {
                dep.split('|')
                    .map(|alt| {
                        let name = alt.trim().split([' ', '(']).next().unwrap_or("");
                        name.split(':').next().unwrap_or("").to_string()
                    })
                    .filter(|name| !name.is_empty())
                    .collect::<Vec<_>>()
            })
            .filter(|alts| !alts.is_empty())
            .collect();
        installed.insert(
            package.split(':').next().unwrap_or(package).to_string(),
            Installed {
                version: version.to_string(),
                depends,
            },
        );
    }
    Ok(installed)
}

/// [`DEBIAN_ROOTS`] and the `python3-*` packages they need, transitively
/// (for each dependency, its first installed alternative).
fn closure(installed: &BTreeMap<String, Installed>) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    let mut todo: Vec<String> = DEBIAN_ROOTS.iter().map(|s| s.to_string()).collect();
    while let Some(package) = todo.pop() {
        let Some(info) = installed.get(&package) else { continue };
        if !seen.insert(package) {
            continue;
        }
        for alternatives in &info.depends {
            if let Some(dep) = alternatives.iter().find(|a| installed.contains_key(*a)) {
                if dep.starts_with("python3-") && !seen.contains(dep) {
                    todo.push(dep.clone());
                }
            }
        }
    }
    seen
}

/// The packages' files under Debian's site dir, relative to it.
fn debian_files(packages: &BTreeSet<String>) -> Result<Vec<String>, String> {
    let output = Command::new("dpkg")
        .arg("-L")
        .args(packages)
        .output()
        .map_err(|e| format!("cannot run dpkg -L: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "dpkg -L failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    let prefix = format!("{SYSTEM_DIST_PACKAGES}/");
    let files: BTreeSet<String> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| line.strip_prefix(&prefix))
        .map(str::to_owned)
        .collect();
    if files.is_empty() {
        return Err(format!("no files of {packages:?} under {SYSTEM_DIST_PACKAGES}"));
    }
    Ok(files.into_iter().collect())
}
