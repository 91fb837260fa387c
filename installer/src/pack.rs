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

/// Which program packed an image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Packer {
    /// The real `mksquashfs` (what `installer pack` always uses).
    Mksquashfs(PathBuf),
    /// The `backhand` library's writer, in this process: no package needed.
    /// Only `installer demo` uses it, when `mksquashfs` is not on `PATH`.
    Backhand,
}

impl Packer {
    /// `mksquashfs` on `PATH`, else `backhand`.
    pub fn find() -> Packer {
        runtime::which("mksquashfs").map_or(Packer::Backhand, Packer::Mksquashfs)
    }

    /// How the demo names it.
    pub fn describe(&self) -> String {
        match self {
            Packer::Mksquashfs(path) => format!("mksquashfs ({})", path.display()),
            Packer::Backhand => "the backhand library (no mksquashfs on PATH)".to_string(),
        }
    }
}

/// A file given to `backhand`'s writer, opened only when the writer reads
/// it and closed at its end, so that a tree of any size never holds more
/// than one descriptor.
struct LazyFile {
    path: PathBuf,
    file: Option<fs::File>,
    done: bool,
}

impl Read for LazyFile {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.done {
            return Ok(0);
        }
        let file = match &mut self.file {
            Some(file) => file,
            None => {
                let file = fs::File::open(&self.path).map_err(|e| {
                    std::io::Error::new(e.kind(), format!("{}: {}", self.path.display(), io_reason(&e)))
                })?;
                self.file.insert(file)
            }
        };
        let n = file.read(buf)?;
        if n == 0 && !buf.is_empty() {
            self.file = None;
            self.done = true;
        }
        Ok(n)
    }
}

/// The gzip level the demo packs with (both packers): fast rather than small.
pub const DEMO_GZIP_LEVEL: u32 = 1;

/// Write the tree at `root` as the squashfs image `image` with `backhand`:
/// gzip at level [`DEMO_GZIP_LEVEL`] (read by every kernel and squashfuse),
/// every entry owned by root (as `mksquashfs -all-root`), modes and
/// modification times kept,
/// directories, regular files and symlinks (anything else is refused, and
/// hard links are stored as separate files). Returns the number of entries.
/// The image's root holds what `root` holds; `demo` puts the env at
/// `<prefix>/<env>` in `root` itself.
pub fn write_with_backhand(root: &Path, image: &Path) -> Result<usize> {
    use backhand::compression::Compressor;
    use backhand::{FilesystemCompressor, FilesystemWriter, NodeHeader};

    let failed = |what: &Path, e: backhand::BackhandError| match e {
        backhand::BackhandError::StdIo(e) => InstallError::io(what, e),
        other => InstallError::ToolFailed {
            tool: "backhand".into(),
            reason: format!("{}: {other}", what.display()),
        },
    };
    let header = |meta: &fs::Metadata| {
        use std::os::unix::fs::MetadataExt;
        // Squashfs keeps 12 mode bits and 32-bit times.
        NodeHeader::new(
            (meta.mode() & 0o7777) as u16,
            0,
            0,
            u32::try_from(meta.mtime().max(0)).unwrap_or(u32::MAX),
        )
    };
    let mut writer = FilesystemWriter::default();
    // Level 1 (`-Xcompression-level 1`): the demo's env is mostly a Python
    // standard library, which level 9 packs a seventh smaller, eight
    // times slower.
    let fast = backhand::compression::CompressionOptions::Gzip(backhand::compression::Gzip {
        compression_level: DEMO_GZIP_LEVEL,
        window_size: 15,
        strategies: 0,
    });
    let compressor = FilesystemCompressor::new(Compressor::Gzip, Some(fast)).map_err(|e| failed(image, e))?;
    writer.set_compressor(compressor);
    let root_meta = fs::metadata(root).map_err(|e| InstallError::io(root, e))?;
    let root_header = header(&root_meta);
    writer.set_root_mode(root_header.permissions);
    writer.set_time(root_header.mtime);

    let mut count = 0;
    let mut pending = vec![PathBuf::new()];
    while let Some(rel) = pending.pop() {
        let dir = root.join(&rel);
        let mut names: Vec<OsString> = fs::read_dir(&dir)
            .map_err(|e| InstallError::io(&dir, e))?
            .map(|entry| entry.map(|e| e.file_name()))
            .collect::<std::io::Result<_>>()
            .map_err(|e| InstallError::io(&dir, e))?;
        names.sort();
        for name in names {
            let rel = rel.join(&name);
            let path = root.join(&rel);
            let meta = fs::symlink_metadata(&path).map_err(|e| InstallError::io(&path, e))?;
            let head = header(&meta);
            let file_type = meta.file_type();
            if file_type.is_dir() {
                writer.push_dir(&rel, head).map_err(|e| failed(&path, e))?;
                pending.push(rel);
            } else if file_type.is_file() {
                let file = LazyFile {
                    path: path.clone(),
                    file: None,
                    done: false,
                };
                writer.push_file(file, &rel, head).map_err(|e| failed(&path, e))?;
            } else if file_type.is_symlink() {
                let target = fs::read_link(&path).map_err(|e| InstallError::io(&path, e))?;
                writer.push_symlink(target, &rel, head).map_err(|e| failed(&path, e))?;
            } else {
                return Err(InstallError::Io {
                    path,
                    reason: "not a directory, regular file or symlink: the backhand packer takes only those".into(),
                });
            }
            count += 1;
        }
    }
    let out = fs::File::create(image).map_err(|e| InstallError::io(image, e))?;
    let mut out = std::io::BufWriter::new(out);
    writer.write(&mut out).map_err(|e| failed(image, e))?;
    let out = out.into_inner().map_err(|e| InstallError::io(image, e.into_error()))?;
    out.sync_all().map_err(|e| InstallError::io(image, e))?;
    Ok(count)
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
    fn backhand_writes_what_the_tree_holds() {
        use crate::image::{EntryKind, EnvImage};
        use std::os::unix::fs::symlink;
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("root");
        let bin = root.join("opt/conda/e/bin");
        fs::create_dir_all(&bin).unwrap();
        fs::write(bin.join("tool"), "#!/bin/sh\necho hi\n").unwrap();
        fs::set_permissions(bin.join("tool"), fs::Permissions::from_mode(0o750)).unwrap();
        fs::write(bin.join("empty"), "").unwrap();
        let big: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        fs::write(root.join("opt/conda/e/data"), &big).unwrap();
        symlink("tool", bin.join("alias")).unwrap();
        symlink("/usr/bin/python3", bin.join("python3")).unwrap();
        let image = tmp.path().join("e.sqsh");
        assert_eq!(write_with_backhand(&root, &image).unwrap(), 9);

        let read = EnvImage::open(&image).unwrap();
        let names: Vec<String> = read
            .bin_entries(Path::new("/opt/conda/e/bin"), "e")
            .unwrap()
            .into_iter()
            .map(|e| e.name.to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["alias", "empty", "python3", "tool"]);
        assert_eq!(
            read.kind_of(Path::new("/opt/conda/e/bin/python3")),
            Some(EntryKind::Symlink("/usr/bin/python3".into()))
        );
        let tool = read.read_file(Path::new("/opt/conda/e/bin/tool")).unwrap().unwrap();
        assert_eq!(tool, b"#!/bin/sh\necho hi\n");
        assert_eq!(read.read_file(Path::new("/opt/conda/e/data")).unwrap().unwrap(), big);
        assert!(read
            .read_file(Path::new("/opt/conda/e/bin/empty"))
            .unwrap()
            .unwrap()
            .is_empty());
    }

    #[test]
    fn backhand_refuses_special_files_with_one_line() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("root");
        fs::create_dir(&root).unwrap();
        nix::unistd::mkfifo(&root.join("fifo"), nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();
        let err = write_with_backhand(&root, &tmp.path().join("x.sqsh")).unwrap_err();
        assert_eq!(err.exit_code(), crate::error::EXIT_FILESYSTEM);
        assert!(
            err.to_string()
                .contains("fifo: not a directory, regular file or symlink"),
            "{err}"
        );
        let err = write_with_backhand(&tmp.path().join("missing"), &tmp.path().join("y.sqsh")).unwrap_err();
        assert!(err.to_string().contains("missing"), "{err}");
    }

    #[test]
    fn no_compression_turns_every_table_off() {
        assert_eq!(Compression::None.args(), ["-noI", "-noD", "-noF", "-noX"]);
    }
}
