//! Which compression should `installer pack`/`build` use? (issue 14). As
//! root (mounts, and dropping the page cache).
//!
//! Run after `cargo build --release -p launcher -p installer`:
//!
//! ```sh
//! cargo bench --bench compression         # COMPRESSION_RUNS=N (default 5)
//! ```
//!
//! One env is built once with `installer build` (a `python3 -m venv
//! --copies` holding a copy of Debian's `/usr/lib/python3/dist-packages`:
//! IPython, jedi, cryptography, … about 8,300 files, 96 MiB) and packed
//! with each of none, gzip, lz4, zstd (and xz) by `mksquashfs` run as
//! `installer pack` runs it (`-noappend -all-root -no-recovery`, the env as
//! the root, then the `-root-becomes` layers; lz4 is done here because the
//! installer cannot read lz4 images back). For each image it reports:
//!
//! - the image size;
//! - the pack time (all mksquashfs runs, wall clock, one pack);
//! - the cold-cache time of importing ten of the env's packages through the
//!   launcher (`<env>.d/bin/launcher python3 -c 'import IPython, jedi, …'`,
//!   the native runtime): before each run the page cache is dropped with
//!   `sync; echo 3 > /proc/sys/vm/drop_caches` (root only), so the image,
//!   the launcher, the Python and the host's stdlib are all read again;
//! - the warm-cache time of the same command (after one unmeasured run).
//!
//! Each image is packed once; the imports run in COMPRESSION_RUNS
//! interleaved rounds (each round: every variant cold, then warm — the run
//! right after the cold one), medians reported. The env goes live by
//! `deploy` (gzip, which the installer reads to build the farm) and each
//! variant is renamed over the live image before its runs (the farm is the
//! same for all). Note that every launch mounts the image anew, so "warm"
//! means the image's (compressed) blocks are in the page cache: the
//! decompression is paid by every launch.

#[path = "common/mod.rs"]
mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const ENV: &str = "bench-1.0";
const PREFIX: &str = "/opt/conda";
const IMPORTS: &str = "import IPython, jedi, pygments.lexers, cryptography.x509, yaml, jupyter_client, dateutil.parser, packaging.version, oauthlib, httplib2";

fn fail(message: &str) -> ! {
    eprintln!("compression bench: {message}");
    std::process::exit(2);
}

fn release_bin(name: &str) -> PathBuf {
    // `<target>/<host triple>/`: this bench runs from its `release/deps/`,
    // whatever the triple and CARGO_TARGET_DIR (no triple spelled, issue 10).
    let exe = std::env::current_exe().unwrap_or_else(|e| fail(&format!("current_exe: {e}")));
    let triple_dir = exe
        .parent()
        .and_then(Path::parent)
        .and_then(Path::parent)
        .unwrap_or_else(|| fail("a bench binary lives in <triple>/<profile>/deps/"));
    // COMPRESSION_PROFILE=debug uses the debug binaries (the figures are
    // mksquashfs's and the imports', not the installer's).
    let profile = std::env::var("COMPRESSION_PROFILE").unwrap_or_else(|_| "release".into());
    let path = triple_dir.join(profile).join(name);
    if !path.is_file() {
        fail(&format!(
            "{} missing: cargo build --release -p launcher -p installer",
            path.display()
        ));
    }
    path
}

fn run(command: &mut Command, what: &str) {
    let out = command.output().unwrap_or_else(|e| fail(&format!("{what}: {e}")));
    if !out.status.success() {
        fail(&format!(
            "{what} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
}

fn drop_caches() {
    let _ = Command::new("sync").status();
    if fs::write("/proc/sys/vm/drop_caches", "3\n").is_err() {
        fail("cannot write /proc/sys/vm/drop_caches (run as root)");
    }
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

/// mksquashfs as `installer pack` runs it, with `comp` its compression args.
fn pack(src: &Path, out: &Path, comp: &[&str]) -> Duration {
    let start = Instant::now();
    let mut main = Command::new("mksquashfs");
    main.arg(src)
        .arg(out)
        .args(["-noappend", "-all-root", "-no-recovery"])
        .args(comp)
        .args(["-quiet", "-no-progress"]);
    run(&mut main, "mksquashfs");
    let empty = out.with_extension("empty");
    fs::create_dir_all(&empty).unwrap();
    for layer in installer::pack::layers(&Path::new(PREFIX).join(ENV)) {
        let mut append = Command::new("mksquashfs");
        append.arg(&empty).arg(out).arg("-root-becomes").arg(&layer).args([
            "-all-root",
            "-no-recovery",
            "-quiet",
            "-no-progress",
        ]);
        run(&mut append, "mksquashfs -root-becomes");
    }
    let elapsed = start.elapsed();
    fs::remove_dir(&empty).unwrap();
    elapsed
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    if !nix::unistd::geteuid().is_root() {
        fail("needs root (build namespace, mounts, drop_caches)");
    }
    let runs: usize = std::env::var("COMPRESSION_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5)
        .max(1);
    let installer = release_bin("installer");
    release_bin("launcher");
    let dir = tempfile::Builder::new()
        .prefix("bench-compression-")
        .tempdir_in("/var/tmp")
        .unwrap();
    let root = dir.path();
    fs::set_permissions(root, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let scripts = root.join("scripts");
    fs::create_dir_all(&scripts).unwrap();
    fs::create_dir_all(root.join("envs")).unwrap();
    common::base_sandbox(&root.join("base"));
    fs::create_dir_all(root.join("base").join(root.strip_prefix("/").unwrap())).unwrap();
    fs::write(
        scripts.join("launcher.toml"),
        format!(
            "[runtime]\nflavour = \"native\"\nimage = \"../base\"\n[container]\nenvs_dir = \"../envs\"\n\
             binds = [\"/usr\", \"/etc\", \"/lib\", \"/lib64\", \"{}\"]\n",
            root.display()
        ),
    )
    .unwrap();

    // The env, built once (kept build dir: its env/ is the tree to pack).
    let build_dir = root.join("build");
    fs::create_dir_all(&build_dir).unwrap();
    let env_prefix = format!("{PREFIX}/{ENV}");
    let script = format!(
        "/usr/bin/python3 -m venv --copies --without-pip {env_prefix} && \
         cp -a /usr/lib/python3/dist-packages/. {env_prefix}/lib/python3.11/site-packages/"
    );
    run(
        Command::new(&installer)
            .args([
                "-q",
                "build",
                "--env",
                ENV,
                "--keep-build-dir",
                "--compression",
                "gzip",
                "-o",
            ])
            .arg(root.join("gzip-built.sqsh"))
            .arg("--build-dir")
            .arg(&build_dir)
            .args(["--", "sh", "-c", &script]),
        "installer build",
    );
    let tree = fs::read_dir(&build_dir)
        .unwrap()
        .flatten()
        .map(|e| e.path().join("env"))
        .find(|p| p.is_dir())
        .unwrap_or_else(|| fail("no kept build dir"));
    let files = walk_count(&tree);

    // Live: deploy the gzip image (the farm), then swap each variant in.
    run(
        Command::new(&installer)
            .arg("-q")
            .arg("--scripts")
            .arg(&scripts)
            .arg("deploy")
            .arg(root.join("gzip-built.sqsh"))
            .args(["--env", ENV]),
        "installer deploy",
    );
    let live = root.join("envs").join(format!("{ENV}.sqsh"));
    let launcher_link = scripts.join(format!("{ENV}.d/bin/launcher"));

    let variants: [(&str, &[&str]); 5] = [
        ("none", &["-noI", "-noD", "-noF", "-noX"]),
        ("gzip", &["-comp", "gzip"]),
        ("lz4", &["-comp", "lz4"]),
        ("zstd", &["-comp", "zstd"]),
        ("xz", &["-comp", "xz"]),
    ];
    // Pack each once (mksquashfs's time, wall clock), staged in envs_dir.
    let mut staged = Vec::new();
    let mut packed = Vec::new();
    for (name, comp) in variants {
        let image = root.join(format!("{name}.sqsh"));
        let time = pack(&tree, &image, comp);
        let size = fs::metadata(&image).unwrap().len();
        let at = root.join("envs").join(format!(".{ENV}.{name}.bench"));
        fs::copy(&image, &at).unwrap();
        staged.push(at);
        packed.push((time, size));
    }
    let put_live = |variant: &Path| {
        let temp = root.join("envs").join(format!(".{ENV}.sqsh.bench-link"));
        let _ = fs::remove_file(&temp);
        fs::hard_link(variant, &temp).unwrap();
        fs::rename(&temp, &live).unwrap();
    };
    let import = |name: &str| {
        let start = Instant::now();
        let status = Command::new(&launcher_link)
            .args(["python3", "-c", IMPORTS])
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("HOME", root)
            .stdout(Stdio::null())
            .status()
            .unwrap();
        if !status.success() {
            fail(&format!("import through the launcher failed with {name}: {status}"));
        }
        start.elapsed()
    };
    // Interleaved rounds (none, gzip, lz4, zstd, xz, none, …), so that the
    // load of a shared machine hits every variant alike.
    let mut cold: Vec<Vec<Duration>> = vec![Vec::new(); variants.len()];
    let mut warm: Vec<Vec<Duration>> = vec![Vec::new(); variants.len()];
    for _ in 0..runs {
        for (i, (name, _)) in variants.iter().enumerate() {
            put_live(&staged[i]);
            drop_caches();
            cold[i].push(import(name));
            warm[i].push(import(name));
        }
    }
    println!(
        "env: {files} files, {} MiB; {runs} interleaved runs per import figure, medians",
        du_mib(&tree)
    );
    println!(
        "| compression | image size | pack time | import, cold cache | import, warm cache |\n|---|---:|---:|---:|---:|"
    );
    for (i, (name, _)) in variants.iter().enumerate() {
        println!(
            "| {name} | {:.1} MiB | {:.2} s | {:.0} ms | {:.0} ms |",
            packed[i].1 as f64 / (1 << 20) as f64,
            packed[i].0.as_secs_f64(),
            median(cold[i].clone()).as_secs_f64() * 1000.0,
            median(warm[i].clone()).as_secs_f64() * 1000.0
        );
    }
}

fn walk_count(dir: &Path) -> usize {
    let mut n = 0;
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in fs::read_dir(&d).unwrap().flatten() {
            n += 1;
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                todo.push(e.path());
            }
        }
    }
    n
}

fn du_mib(dir: &Path) -> u64 {
    let out = Command::new("du").args(["-sm"]).arg(dir).output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}
