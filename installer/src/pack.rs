//! `installer pack PREFIX --env NAME -o NAME.sqsh` (I5): a built conda env
//! into a squashfs image whose root holds `<container_prefix>/<env>/…`,
//! with the real `mksquashfs`.
//!
//! `mksquashfs` (4.5, Debian 12) can only put a source directory at the
//! image's root; it has no option to place it deeper, and it does not
//! follow a symlinked source. Copying a 250,000-file env into a staging
//! tree is what we must not do, and bind-mounting it there needs root. So
//! the env is packed as the root in one run (all the data, compression,
//! the progress bar), then each component of `<container_prefix>/<env>`,
//! innermost first, is added by one append run with `-root-becomes NAME`
//! and an empty source: the old root becomes directory NAME of a new root.
//! An append rewrites only the directory and inode tables, never the data.
//! Everything is written to a temporary name beside the output, checked
//! with `backhand`, synced and renamed into place: a failure or a kill
//! leaves no partial image at the output path.

use std::ffi::OsString;
use std::fs;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};
use std::process::{Command, Stdio};

use crate::error::{io_reason, InstallError, Result};
use crate::image::EnvImage;
use crate::runtime;
use crate::site::check_env_name;
use crate::swap::sync_dir;
use crate::ui::Ui;

/// Compression of the image. Only what the installer itself can read back
/// (`backhand` is built with gzip, xz and zstd) is offered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Compression {
    /// mksquashfs's default; every kernel and squashfuse reads it.
    Gzip,
    /// Smallest images, slowest to pack and to read.
    Xz,
    /// Fast to read, small; needs Linux >= 4.14 or a squashfuse built with zstd.
    Zstd,
    /// No compression at all (-noI -noD -noF -noX): fastest to pack and read.
    None,
}

impl Compression {
    /// The mksquashfs arguments that select it.
    pub fn args(self) -> &'static [&'static str] {
        match self {
            Compression::Gzip => &["-comp", "gzip"],
            Compression::Xz => &["-comp", "xz"],
            Compression::Zstd => &["-comp", "zstd"],
            Compression::None => &["-noI", "-noD", "-noF", "-noX"],
        }
    }
}

#[derive(Debug, Clone)]
pub struct PackOptions {
    /// The built env (e.g. `/scratch/build/envs/analysis3-22.10`).
    pub prefix: PathBuf,
    pub env: String,
    pub output: PathBuf,
    /// `<container_prefix>`: where envs live inside the container.
    pub container_prefix: PathBuf,
    pub compression: Compression,
    /// Replace an existing output file.
    pub force: bool,
    pub dry_run: bool,
    /// Passed to the main mksquashfs run as they are (e.g. `-b 1M`).
    pub extra_args: Vec<OsString>,
}

/// Pack `opts.prefix` into `opts.output`.
pub fn run(opts: &PackOptions, ui: &Ui) -> Result<()> {
    check_env_name(&opts.env)?;
    if !opts.container_prefix.is_absolute() {
        return Err(InstallError::Usage(format!(
            "container prefix '{}' must be an absolute path",
            opts.container_prefix.display()
        )));
    }
    let prefix = crate::site::absolute(&opts.prefix)?;
    match fs::metadata(prefix.join("bin")) {
        Ok(meta) if meta.is_dir() => {}
        _ if !prefix.is_dir() => return Err(InstallError::Usage(format!("{} is not a directory", prefix.display()))),
        _ => {
            return Err(InstallError::Usage(format!(
                "{} has no bin/ directory: not a conda environment",
                prefix.display()
            )))
        }
    }
    let mksquashfs = runtime::which("mksquashfs").ok_or(InstallError::MissingTool {
        tool: "mksquashfs",
        package: "squashfs-tools",
    })?;
    let output = crate::site::absolute(&opts.output)?;
    let out_dir = output.parent().unwrap_or(Path::new("/")).to_path_buf();
    if fs::symlink_metadata(&output).is_ok() && !opts.force {
        return Err(InstallError::Usage(format!(
            "{} exists; pass --force to replace it",
            output.display()
        )));
    }
    let inner = opts.container_prefix.join(&opts.env);
    let layers = layers(&inner);

    if opts.dry_run {
        let temp = out_dir.join(format!(".{}.new-XXXX", file_name(&output)));
        let main = main_args(&prefix, &temp, opts, false);
        ui.info(format!("would run {} {}", mksquashfs.display(), shown_args(&main)));
        for layer in &layers {
            let args = append_args(Path::new("EMPTY-DIR"), &temp, layer);
            ui.info(format!("would run {} {}", mksquashfs.display(), shown_args(&args)));
        }
        ui.info(format!(
            "would check {} in it, sync it and rename it to {}",
            inner.join("bin").display(),
            output.display()
        ));
        return Ok(());
    }

    let temp = tempfile::Builder::new()
        .prefix(&format!(".{}.new-", file_name(&output)))
        .tempfile_in(&out_dir)
        .map_err(|e| InstallError::io(&out_dir, e))?
        .into_temp_path();
    let show_bar = ui.shows_progress();
    let bar = ui.progress(0, &format!("packing {}", opts.env));
    run_mksquashfs(
        &mksquashfs,
        &main_args(&prefix, &temp, opts, show_bar),
        show_bar.then_some(&bar),
    )?;
    bar.finish_and_clear();
    let empty = tempfile::tempdir_in(&out_dir).map_err(|e| InstallError::io(&out_dir, e))?;
    fs::set_permissions(empty.path(), fs::Permissions::from_mode(0o755))
        .map_err(|e| InstallError::io(empty.path(), e))?;
    for layer in &layers {
        run_mksquashfs(&mksquashfs, &append_args(empty.path(), &temp, layer), None)?;
    }
    drop(empty);

    // The image must be what farm and the launcher will look for.
    let image = EnvImage::open(&temp)?;
    image.bin_entries(&inner.join("bin"), &opts.env)?;
    let nodes = image.node_count();
    drop(image);
    let file = fs::File::open(&temp).map_err(|e| InstallError::io(&temp, e))?;
    file.sync_all().map_err(|e| InstallError::io(&temp, e))?;
    fs::set_permissions(&temp, fs::Permissions::from_mode(0o644)).map_err(|e| InstallError::io(&temp, e))?;
    temp.persist(&output).map_err(|e| InstallError::io(&output, e.error))?;
    sync_dir(&out_dir)?;
    let size = fs::metadata(&output).map(|m| m.len()).unwrap_or(0);
    ui.info(format!(
        "packed {} into {} ({}, {nodes} files inside, root holds {})",
        prefix.display(),
        output.display(),
        crate::status::human_bytes(size),
        inner.display()
    ));
    Ok(())
}

/// The names the packed root must be moved under, innermost first:
/// `/opt/conda/e` gives `e`, `conda`, `opt`.
pub fn layers(inner: &Path) -> Vec<OsString> {
    let mut names: Vec<OsString> = inner
        .components()
        .filter_map(|c| match c {
            Component::Normal(name) => Some(name.to_os_string()),
            _ => None,
        })
        .collect();
    names.reverse();
    names
}

fn main_args(prefix: &Path, temp: &Path, opts: &PackOptions, progress: bool) -> Vec<OsString> {
    let mut args: Vec<OsString> = vec![prefix.into(), temp.into()];
    // Owners inside the image mean nothing on other machines, and the
    // image is read-only anyway; no recovery file in $HOME.
    args.extend(["-noappend", "-all-root", "-no-recovery"].map(OsString::from));
    args.extend(opts.compression.args().iter().map(OsString::from));
    if progress {
        args.push("-quiet".into());
    } else {
        args.extend(["-quiet", "-no-progress"].map(OsString::from));
    }
    args.extend(opts.extra_args.iter().cloned());
    args
}

fn append_args(empty: &Path, temp: &Path, layer: &OsString) -> Vec<OsString> {
    let mut args: Vec<OsString> = vec![empty.into(), temp.into(), "-root-becomes".into(), layer.clone()];
    args.extend(["-all-root", "-no-recovery", "-quiet", "-no-progress"].map(OsString::from));
    args
}

/// Run mksquashfs; with a bar, follow its progress output (`[==  ] N/M P%`).
fn run_mksquashfs(mksquashfs: &Path, args: &[OsString], bar: Option<&indicatif::ProgressBar>) -> Result<()> {
    let mut child = Command::new(mksquashfs)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| InstallError::ToolFailed {
            tool: mksquashfs.display().to_string(),
            reason: format!("cannot run it: {}", io_reason(&e)),
        })?;
    // Read stderr on a thread so that neither pipe can fill up and block it.
    let mut stderr = child.stderr.take();
    let errors = std::thread::spawn(move || {
        let mut text = String::new();
        if let Some(pipe) = stderr.as_mut() {
            let _ = pipe.read_to_string(&mut text);
        }
        text
    });
    let mut stdout_text = Vec::new();
    if let Some(mut pipe) = child.stdout.take() {
        let mut buf = [0u8; 4096];
        loop {
            let n = match pipe.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            stdout_text.extend_from_slice(&buf[..n]);
            if let Some(bar) = bar {
                if let Some((done, total)) = last_progress(&String::from_utf8_lossy(&buf[..n])) {
                    bar.set_length(total);
                    bar.set_position(done);
                }
            }
            // Keep only the tail: the progress output can be long.
            if stdout_text.len() > 64 * 1024 {
                stdout_text.drain(..stdout_text.len() - 16 * 1024);
            }
        }
    }
    let status = child.wait().map_err(|e| InstallError::ToolFailed {
        tool: mksquashfs.display().to_string(),
        reason: io_reason(&e),
    })?;
    let stderr_text = errors.join().unwrap_or_default();
    if status.success() {
        return Ok(());
    }
    let stdout_text = String::from_utf8_lossy(&stdout_text);
    Err(InstallError::ToolFailed {
        tool: mksquashfs.display().to_string(),
        reason: format!("{status}: {}", error_line(&stderr_text, &stdout_text)),
    })
}

/// The line of a failed mksquashfs's output that says what went wrong: the
/// first `mksquashfs: …` or `FATAL …` line, else the first line with text
/// (the usage text that may follow is no help).
pub fn error_line(stderr: &str, stdout: &str) -> String {
    let lines = || {
        stderr
            .lines()
            .chain(stdout.lines())
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('['))
    };
    lines()
        .find(|l| l.starts_with("mksquashfs:") || l.contains("FATAL"))
        .or_else(|| lines().next())
        .unwrap_or("")
        .to_string()
}

/// The last `N/M` of mksquashfs's progress output in `text`.
pub fn last_progress(text: &str) -> Option<(u64, u64)> {
    text.split(['\r', '\n']).rev().find_map(|line| {
        let after_bar = &line[line.rfind(']')? + 1..];
        let (done, rest) = after_bar.trim_start().split_once('/')?;
        let total = rest.split_whitespace().next()?;
        Some((done.parse().ok()?, total.parse().ok()?))
    })
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned())
}

fn shown_args(args: &[OsString]) -> String {
    args.iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    #[test]
    fn error_line_is_the_one_naming_the_fault() {
        let usage = "mksquashfs: invalid option\n\nSYNTAX:mksquashfs source1 ...\n-b <block_size> set data block\n";
        assert_eq!(error_line(usage, ""), "mksquashfs: invalid option");
        let fatal = "Parallel mksquashfs: Using 2 processors\nFATAL ERROR: Failed to write to output filesystem\n";
        assert_eq!(
            error_line("", fatal),
            "FATAL ERROR: Failed to write to output filesystem"
        );
        assert_eq!(error_line("\n  something odd\nmore\n", ""), "something odd");
        assert_eq!(error_line("", ""), "");
    }

    use super::*;

    #[test]
    fn layers_are_innermost_first() {
        assert_eq!(
            layers(Path::new("/opt/conda/e-1")),
            ["e-1", "conda", "opt"].map(OsString::from)
        );
        assert_eq!(layers(Path::new("/e")), [OsString::from("e")]);
    }

    #[test]
    fn progress_lines_are_parsed() {
        assert_eq!(last_progress("[===|   ] 12/345  3%"), Some((12, 345)));
        assert_eq!(last_progress("[=/ ] 1/4 25%\r[==- ] 2/4  50%\r"), Some((2, 4)));
        assert_eq!(last_progress("Parallel mksquashfs: Using 2 processors\n"), None);
    }

    #[test]
    fn no_compression_turns_every_table_off() {
        assert_eq!(Compression::None.args(), ["-noI", "-noD", "-noF", "-noX"]);
    }
}
