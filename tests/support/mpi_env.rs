//! The MPI env of the cluster scenarios (M1–M6, `tests/cluster.rs`):
//! `mpi-1.0`, built by the suite and cached like the other env images
//! (`images.rs`):
//!
//! - `bin/mpi_probe`, a C program compiled with the host's `mpicc` against
//!   Debian's OpenMPI; the container gets the libraries through the `/usr`
//!   bind;
//! - `bin/mpirun` and `bin/orted`, links to the host's OpenMPI, the way
//!   sites swap conda's MPI for the system's (hh5 links `/apps`' OpenMPI).
//!
//! The Python scenarios (M2, M5) use the main env, which is conda-like.

use std::collections::hash_map::DefaultHasher;
use std::fs;
use std::hash::{Hash, Hasher};
use std::os::unix::fs::symlink;
use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;

use super::images::{list_image_bin, run_build_step, EnvImage};

/// The env's name (`<scripts>/mpi-1.0.d`, `/opt/conda/mpi-1.0`).
pub const MPI_ENV: &str = "mpi-1.0";
/// `mpi_probe`: one line per rank (host, inside or not, top image, the envs
/// it sees, `PATH`, its PID and Slurm's `SLURM_TASK_PID`, whether its parent
/// is in the same mount namespace, i.e. the same container) and an
/// `MPI_Allreduce` of rank+1 over all ranks. `--hold` then waits for a
/// signal (M6).
pub const MPI_PROBE_SOURCE: &str = r#"#include <dirent.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int main(int argc, char **argv) {
    char host[256] = "?", top[256] = "none", envs[1024] = "";
    const char *path = getenv("PATH"), *task = getenv("SLURM_TASK_PID");
    char parent[64];
    struct stat st, pst;
    struct dirent *entry;
    DIR *dir;
    FILE *file;
    int rank = -1, size = 0, sum = 0, mine, same_mnt;

    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    mine = rank + 1;
    MPI_Allreduce(&mine, &sum, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    gethostname(host, sizeof host - 1);
    if ((file = fopen("/opt/conda/.top-image", "r")) != NULL) {
        if (fgets(top, sizeof top, file) != NULL) top[strcspn(top, "\n")] = 0;
        fclose(file);
    }
    if ((dir = opendir("/opt/conda")) != NULL) {
        while ((entry = readdir(dir)) != NULL) {
            if (entry->d_name[0] == '.') continue;
            if (envs[0] != 0) strncat(envs, ",", sizeof envs - strlen(envs) - 1);
            strncat(envs, entry->d_name, sizeof envs - strlen(envs) - 1);
        }
        closedir(dir);
    }
    snprintf(parent, sizeof parent, "/proc/%d/ns/mnt", (int)getppid());
    same_mnt = stat("/proc/self/ns/mnt", &st) == 0 && stat(parent, &pst) == 0 && st.st_ino == pst.st_ino;
    printf("mpi_probe rank=%d size=%d host=%s where=%s top=%s envs=%s sum=%d pid=%d task_pid=%s parent=%s "
           "path=%s\n",
           rank, size, host, stat("/.singularity.d", &st) == 0 ? "inside" : "outside", top, envs, sum,
           (int)getpid(), task ? task : "-", same_mnt ? "same-mnt" : "other-mnt", path ? path : "-");
    fflush(stdout);
    if (argc > 1 && strcmp(argv[1], "--hold") == 0) {
        MPI_Barrier(MPI_COMM_WORLD);
        for (;;) pause();
    }
    MPI_Finalize();
    return 0;
}
"#;

/// `bin/` links to the host's OpenMPI (absolute: valid inside the
/// container, which binds the host's `/usr`).
const LINKS: &[(&str, &str)] = &[("mpirun", "/usr/bin/mpirun"), ("orted", "/usr/bin/orted")];

/// The MPI env image (M1–M6), built once per test process and cached like
/// the others; needs `mpicc` (libopenmpi-dev).
pub fn mpi_env() -> Result<EnvImage, String> {
    static IMAGE: OnceLock<Result<EnvImage, String>> = OnceLock::new();
    IMAGE.get_or_init(build_mpi_env_cached).clone()
}

fn build_mpi_env_cached() -> Result<EnvImage, String> {
    let cache = Path::new(env!("CARGO_TARGET_TMPDIR")).join("bed-images");
    let mut hasher = DefaultHasher::new();
    (MPI_ENV, MPI_PROBE_SOURCE, LINKS).hash(&mut hasher);
    // A new OpenMPI must rebuild it (mpi_probe links against libmpi).
    for file in ["/usr/bin/mpicc", "/usr/lib/x86_64-linux-gnu/libmpi.so"] {
        if let Ok(meta) = fs::metadata(fs::canonicalize(file).unwrap_or(file.into())) {
            use std::os::unix::fs::MetadataExt;
            (file, meta.len(), meta.mtime()).hash(&mut hasher);
        }
    }
    let dir = cache.join(format!("{MPI_ENV}-{:016x}", hasher.finish()));
    let image = dir.join(format!("{MPI_ENV}.sqsh"));
    let listing = dir.join("bin-entries");
    if !image.is_file() || !listing.is_file() {
        let building = cache.join(format!("{MPI_ENV}.building-{}", std::process::id()));
        let _ = fs::remove_dir_all(&building);
        fs::create_dir_all(&building).map_err(|e| format!("{}: {e}", building.display()))?;
        build_mpi_env(&building)?;
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
        name: MPI_ENV,
        image,
        bin_entries,
    })
}

fn build_mpi_env(into: &Path) -> Result<(), String> {
    let out = into.join(format!("{MPI_ENV}.sqsh"));
    let stage = into.join("stage");
    let bin = stage.join(format!("opt/conda/{MPI_ENV}/bin"));
    fs::create_dir_all(&bin).map_err(|e| format!("{}: {e}", bin.display()))?;
    let source = into.join("mpi_probe.c");
    fs::write(&source, MPI_PROBE_SOURCE).map_err(|e| e.to_string())?;
    let mut compile = Command::new("mpicc");
    compile
        .args(["-O2", "-Wall", "-o"])
        .arg(bin.join("mpi_probe"))
        .arg(&source);
    run_build_step(&mut compile, "mpi_probe (mpicc)")?;
    for (name, target) in LINKS {
        symlink(target, bin.join(name)).map_err(|e| format!("{name}: {e}"))?;
    }
    fs::write(stage.join("opt/conda/.top-image"), format!("{MPI_ENV}\n")).map_err(|e| e.to_string())?;
    let mut pack = Command::new("mksquashfs");
    pack.arg(&stage).arg(&out).args([
        "-root-mode",
        "755",
        "-noappend",
        "-all-root",
        "-no-xattrs",
        "-quiet",
        "-no-progress",
    ]);
    run_build_step(&mut pack, "MPI env image")?;
    let entries = list_image_bin(&out, MPI_ENV)?;
    fs::write(into.join("bin-entries"), entries.join("\n") + "\n").map_err(|e| e.to_string())?;
    fs::remove_dir_all(&stage).map_err(|e| format!("{}: {e}", stage.display()))?;
    fs::remove_file(&source).map_err(|e| e.to_string())
}
