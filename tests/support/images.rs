//! The test images, built by the tests themselves (no blobs in the repo):
//!
//! - a bare base sandbox (directories, `/.singularity.d`, merged-usr links),
//!   into which the host's OS directories are bound by the launcher config;
//! - env images made with the real `mksquashfs`: the main env is built like
//!   a conda env (`conda_env.rs`: a Python with its own stdlib at its
//!   in-container path `/opt/conda/<env>`, packages, entry points), plus
//!   small shell tools; a second small env serves the multi-image cases. The
//!   venv the main env used to be is still built on request
//!   ([`main_env_venv`]), for tests about venvs.
//!
//! Env images are cached under cargo's target tmp dir, keyed by a hash of
//! everything that goes into them, so an env is built once, not per test.

use std::collections::hash_map::DefaultHasher;
use std::fs;
use std::hash::{Hash, Hasher};
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use super::prereq::SYSTEM_PYTHON;

/// Where envs live inside the container (the launcher's default prefix).
pub const CONTAINER_PREFIX: &str = "/opt/conda";
/// The main env: a conda-like Python env plus shell tools.
pub const MAIN_ENV: &str = "analysis3-22.10";
/// The alias directory of the main env (`analysis3.d -> analysis3-22.10.d`).
pub const MAIN_ALIAS: &str = "analysis3";
/// The second env, for multi-image cases. Sorts after MAIN_ENV on purpose:
/// "own image last" (L15) is then not the same as "sorted".
pub const SECOND_ENV: &str = "tools-1.0";
/// A file every env image carries at the same path, holding the env's name:
/// reading it in the container tells which image is on top.
pub const TOP_IMAGE_FILE: &str = "/opt/conda/.top-image";

/// A small executable (or deliberately not) placed in an env's `bin/`.
pub struct Tool {
    pub name: &'static str,
    pub mode: u32,
    pub text: &'static str,
}

/// Tools of the main env. Each prints something only it could print.
pub const MAIN_TOOLS: &[Tool] = &[
    Tool {
        name: "hello",
        mode: 0o755,
        text: "#!/bin/sh\necho \"hello from analysis3-22.10\"\n",
    },
    // Exit with the status given.
    Tool {
        name: "exitwith",
        mode: 0o755,
        text: "#!/bin/sh\nexit \"$1\"\n",
    },
    // Die by the signal given.
    Tool {
        name: "killself",
        mode: 0o755,
        text: "#!/bin/sh\nkill -s \"$1\" $$\nsleep 5\nexit 99\n",
    },
    // Each argument followed by a NUL byte, so byte-exactness can be checked.
    Tool {
        name: "printargs",
        mode: 0o755,
        text: "#!/bin/sh\nfor a in \"$@\"; do printf '%s\\0' \"$a\"; done\n",
    },
    // Where am I: in or out of a container, PATH, and the envs visible.
    Tool {
        name: "whereami",
        mode: 0o755,
        text: "#!/bin/sh\nif [ -d /.singularity.d ]; then echo inside; else echo outside; fi\n\
               echo \"PATH=$PATH\"\nls /opt/conda 2>/dev/null | tr '\\n' ' '; echo\n\
               cat /opt/conda/.top-image 2>/dev/null || echo no-top-image\n",
    },
    // Writes forever: ends only by SIGPIPE (or EPIPE) when its reader goes.
    Tool {
        name: "spew",
        mode: 0o755,
        text: "#!/bin/sh\nexec yes spew\n",
    },
    // Exists but may not be executed.
    Tool {
        name: "notexec",
        mode: 0o644,
        text: "#!/bin/sh\necho notexec ran\n",
    },
    // Replaced by an override script in E12.
    Tool {
        name: "greet",
        mode: 0o755,
        text: "#!/bin/sh\necho \"greet from analysis3-22.10:\" \"$@\"\n",
    },
    // Says which env it belongs to (both envs have one: the alias race test).
    Tool {
        name: "envname",
        mode: 0o755,
        text: "#!/bin/sh\necho analysis3-22.10\n",
    },
    // Stands for Jupyter (overlays = \"all\"): lists the envs it can see.
    Tool {
        name: "jupyter",
        mode: 0o755,
        text: "#!/bin/sh\nls /opt/conda | tr '\\n' ' '; echo\ncat /opt/conda/.top-image\n",
    },
];

/// Tools of the second env.
pub const SECOND_TOOLS: &[Tool] = &[
    Tool {
        name: "tool2",
        mode: 0o755,
        text: "#!/bin/sh\necho \"tool2 from tools-1.0\"\n",
    },
    Tool {
        name: "envname",
        mode: 0o755,
        text: "#!/bin/sh\necho tools-1.0\n",
    },
];

/// A built env image and the names in its `bin/` (for the scripts tree).
#[derive(Debug, Clone)]
pub struct EnvImage {
    pub name: &'static str,
    pub image: PathBuf,
    pub bin_entries: Vec<String>,
}

/// How an env image's `<prefix>/<env>` is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EnvKind {
    /// Only the tools in `bin/`.
    Tools,
    /// `python3 -m venv --copies` of the system Python, plus the tools.
    Venv,
    /// A conda-like env (`conda_env.rs`), plus the tools.
    Conda,
}

/// The main env image (conda-like + tools), built once per test process.
pub fn main_env() -> Result<EnvImage, String> {
    static IMAGE: OnceLock<Result<EnvImage, String>> = OnceLock::new();
    IMAGE
        .get_or_init(|| cached(MAIN_ENV, MAIN_TOOLS, EnvKind::Conda))
        .clone()
}

/// The main env as the venv it used to be (same name, same tools), for
/// tests about venvs: put it in place of a bed's image of [`MAIN_ENV`].
pub fn main_env_venv() -> Result<EnvImage, String> {
    static IMAGE: OnceLock<Result<EnvImage, String>> = OnceLock::new();
    IMAGE
        .get_or_init(|| cached(MAIN_ENV, MAIN_TOOLS, EnvKind::Venv))
        .clone()
}

/// The second env image (tools only).
pub fn second_env() -> Result<EnvImage, String> {
    static IMAGE: OnceLock<Result<EnvImage, String>> = OnceLock::new();
    IMAGE
        .get_or_init(|| cached(SECOND_ENV, SECOND_TOOLS, EnvKind::Tools))
        .clone()
}

/// Shell run in a private mount namespace with a tmpfs over /opt, so that the
/// venv is created at its in-container path and nothing is left on the host.
const VENV_BUILD_SCRIPT: &str = r#"
set -eu
python="$1"; env="$2"; tools="$3"; out="$4"
mount -t tmpfs -o mode=0755 launcher-bed /opt
mkdir -p /opt/conda
"$python" -m venv --copies "/opt/conda/$env"
cp -a "$tools/." "/opt/conda/$env/bin/"
printf '%s\n' "$env" > /opt/conda/.top-image
mksquashfs /opt "$out" -keep-as-directory -root-mode 755 -noappend -all-root -no-xattrs -quiet -no-progress
"#;

fn cached(env: &'static str, tools: &[Tool], kind: EnvKind) -> Result<EnvImage, String> {
    let cache = Path::new(env!("CARGO_TARGET_TMPDIR")).join("bed-images");
    let dir = cache.join(format!("{env}-{:016x}", recipe_hash(env, tools, kind)));
    let image = dir.join(format!("{env}.sqsh"));
    let listing = dir.join("bin-entries");
    if !image.is_file() || !listing.is_file() {
        let building = cache.join(format!("{env}.building-{}", std::process::id()));
        let _ = fs::remove_dir_all(&building);
        fs::create_dir_all(&building).map_err(|e| format!("{}: {e}", building.display()))?;
        build_env_image(env, tools, kind, &building)?;
        // Another test process may have won the race: either copy is good.
        if fs::rename(&building, &dir).is_err() {
            let _ = fs::remove_dir_all(&building);
        }
    }
    let bin_entries = fs::read_to_string(&listing)
        .map_err(|e| format!("{}: {e}", listing.display()))?
        .lines()
        .map(str::to_owned)
        .collect();
    Ok(EnvImage {
        name: env,
        image,
        bin_entries,
    })
}

/// Everything that decides an image's content.
fn recipe_hash(env: &str, tools: &[Tool], kind: EnvKind) -> u64 {
    let mut hasher = DefaultHasher::new();
    // `Venv` hashes as the `true` of the former `venv: bool`: the cached
    // venv image keeps its key.
    (env, kind != EnvKind::Tools, VENV_BUILD_SCRIPT).hash(&mut hasher);
    for tool in tools {
        (tool.name, tool.mode, tool.text).hash(&mut hasher);
    }
    if kind == EnvKind::Conda {
        super::conda_env::hash_recipe(&mut hasher);
    }
    if kind == EnvKind::Venv {
        // A Python upgrade must rebuild the venv (its binary is copied in).
        if let Ok(meta) = fs::metadata(fs::canonicalize(SYSTEM_PYTHON).unwrap_or(SYSTEM_PYTHON.into())) {
            use std::os::unix::fs::MetadataExt;
            (meta.len(), meta.mtime()).hash(&mut hasher);
        }
    }
    hasher.finish()
}

fn build_env_image(env: &str, tools: &[Tool], kind: EnvKind, into: &Path) -> Result<(), String> {
    let out = into.join(format!("{env}.sqsh"));
    let stage = into.join("stage");
    let bin = match kind {
        EnvKind::Venv => stage.join("tools"),
        EnvKind::Conda => stage.join("prefix/bin"),
        EnvKind::Tools => stage.join(format!("opt/conda/{env}/bin")),
    };
    fs::create_dir_all(&bin).map_err(|e| format!("{}: {e}", bin.display()))?;
    write_tools(&bin, tools)?;
    if kind == EnvKind::Conda {
        super::conda_env::build(env, &stage, &out)?;
    } else if kind == EnvKind::Venv {
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
                VENV_BUILD_SCRIPT,
                "build-venv",
            ])
            .arg(SYSTEM_PYTHON)
            .arg(env)
            .arg(&bin)
            .arg(&out);
        run_build_step(&mut command, "venv image")?;
    } else {
        fs::write(stage.join("opt/conda/.top-image"), format!("{env}\n")).map_err(|e| e.to_string())?;
        pack(&stage, &out)?;
    }
    let entries = list_image_bin(&out, env)?;
    fs::write(into.join("bin-entries"), entries.join("\n") + "\n").map_err(|e| e.to_string())?;
    fs::remove_dir_all(&stage).map_err(|e| format!("{}: {e}", stage.display()))
}

/// Names in `<prefix>/<env>/bin/` of the image, read back with `unsquashfs`.
pub fn list_image_bin(image: &Path, env: &str) -> Result<Vec<String>, String> {
    let output = Command::new("unsquashfs")
        .args(["-lc", "-d", ""])
        .arg(image)
        .output()
        .map_err(|e| format!("cannot run unsquashfs: {e}"))?;
    let prefix = format!("/opt/conda/{env}/bin/");
    let mut names: Vec<String> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| line.strip_prefix(&prefix))
        .filter(|rest| !rest.contains('/'))
        .map(str::to_owned)
        .collect();
    names.sort();
    if names.is_empty() {
        return Err(format!("image {} has nothing in {prefix}", image.display()));
    }
    Ok(names)
}

fn write_tools(dir: &Path, tools: &[Tool]) -> Result<(), String> {
    for tool in tools {
        let path = dir.join(tool.name);
        fs::write(&path, tool.text).map_err(|e| format!("{}: {e}", path.display()))?;
        fs::set_permissions(&path, fs::Permissions::from_mode(tool.mode)).map_err(|e| e.to_string())?;
    }
    Ok(())
}

pub fn run_build_step(command: &mut Command, what: &str) -> Result<(), String> {
    let output = command.output().map_err(|e| format!("cannot build the {what}: {e}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "building the {what} failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

/// A squashfs image holding `files` (path inside the image → content):
/// for the stand-in's own tests.
pub fn squashfs_with(files: &[(&str, &str)], out: &Path) -> Result<(), String> {
    let stage = out.with_extension("stage");
    for (path, content) in files {
        let target = stage.join(path.trim_start_matches('/'));
        fs::create_dir_all(target.parent().expect("file has a parent")).map_err(|e| e.to_string())?;
        fs::write(&target, content).map_err(|e| e.to_string())?;
        fs::set_permissions(&target, fs::Permissions::from_mode(0o755)).map_err(|e| e.to_string())?;
    }
    pack(&stage, out)?;
    fs::remove_dir_all(&stage).map_err(|e| e.to_string())
}

/// The base's env script that real runtimes need (runtime-semantics.md §2).
pub const BASE_ENV_SCRIPT: &str = ".singularity.d/env/99-base.sh";
/// What it does in images made by the runtimes' `build`: the GPU library
/// dir on `LD_LIBRARY_PATH`, and a prompt.
pub const BASE_ENV_SCRIPT_TEXT: &str = "# written like the one a runtime's `build` makes\n\
if [ -z \"${LD_LIBRARY_PATH:-}\" ]; then LD_LIBRARY_PATH=/.singularity.d/libs; \
else LD_LIBRARY_PATH=\"$LD_LIBRARY_PATH:/.singularity.d/libs\"; fi\n\
PS1=\"Container> \"\nexport LD_LIBRARY_PATH PS1\n";

/// A bare base sandbox like a site's base container: empty mount points for
/// the host OS directories (bound in by the launcher config), merged-usr
/// links, and the `/.singularity.d` marker.
pub fn base_sandbox(at: &Path) -> Result<(), String> {
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
        fs::create_dir_all(at.join(dir)).map_err(|e| format!("{}: {e}", at.join(dir).display()))?;
    }
    fs::set_permissions(at.join("tmp"), fs::Permissions::from_mode(0o1777)).map_err(|e| e.to_string())?;
    // Real runtimes inject the prefixed variables right after 99-base.sh and
    // drop them all when env/ exists without it (action_script.sh).
    fs::write(at.join(BASE_ENV_SCRIPT), BASE_ENV_SCRIPT_TEXT)
        .map_err(|e| format!("{}: {e}", at.join(BASE_ENV_SCRIPT).display()))?;
    for (link, target) in [("bin", "usr/bin"), ("sbin", "usr/sbin")] {
        symlink(target, at.join(link)).map_err(|e| format!("{}: {e}", at.join(link).display()))?;
    }
    Ok(())
}

/// `mksquashfs STAGE OUT` as every test image is made: root-owned, no
/// xattrs, a fresh file.
fn pack(stage: &Path, out: &Path) -> Result<(), String> {
    let mut command = Command::new("mksquashfs");
    command.arg(stage).arg(out).args([
        "-root-mode",
        "755",
        "-noappend",
        "-all-root",
        "-no-xattrs",
        "-quiet",
        "-no-progress",
    ]);
    run_build_step(&mut command, "squashfs image")
}
