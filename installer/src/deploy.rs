//! `installer deploy IMAGE --env NAME` and `installer rollback --env NAME`
//! (I6): put a new image live, or move the backup back, while users keep
//! launching, such that a `kill -9` at any instant leaves either the old or
//! the new image at `<envs>/<env>.sqsh`, never a partial one and never none.
//!
//! The tools: a new image is copied to a temporary name in `<envs>` (same
//! file system) and synced before anything live is touched; every change of
//! a live name is one `rename(2)` over the old name, followed by an `fsync`
//! of the directory; the backup is a *hard link* of the live image, so both
//! names are always held (moving the live image away first would leave the
//! live path empty for an instant). The backup directory must therefore be
//! on the same file system as `<envs>`.
//!
//! Steps are named (`DEPLOY_STEPS`, `ROLLBACK_STEPS`) for the fault
//! injection hook (`fault::after`) that the crash tests use.
//!
//! Re-running after a crash finishes the job: `deploy` finds the live image
//! identical to IMAGE and only rebuilds the farm and modulefile; `rollback`
//! keeps a journal (`<backup>/.<env>.rollback`, the inode of the image it
//! is moving back) and, when the live image already is that inode, only
//! finishes instead of rolling back a second time.

use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::error::{io_reason, InstallError, Result};
use crate::farm::{self, FarmOptions};
use crate::fault;
use crate::generations;
use crate::image::EnvImage;
use crate::lock::{self, Need, RunLock};
use crate::modulefile;
use crate::site::{check_env_name, Site};
use crate::swap::{self, install_file, sync_dir, Live};
use crate::ui::Ui;

/// Default backup directory, inside `<envs>`.
pub const BACKUP_DIR_NAME: &str = ".backup";

/// The named steps of `deploy`, in order (fault injection: `after:<step>`).
pub const DEPLOY_STEPS: [&str; 9] = [
    "copy", "sync", "keep", "backup", "swap", "link", "farm", "module", "prune",
];
/// The named steps of `rollback`, in order.
pub const ROLLBACK_STEPS: [&str; 7] = ["journal", "stage", "swap", "backup", "link", "farm", "module"];

#[derive(Debug, Clone)]
pub struct DeployOptions {
    pub env: String,
    /// `None`: `<envs>/.backup`.
    pub backup_dir: Option<PathBuf>,
    /// The launcher binary the farm installs (as `farm --launcher`).
    pub launcher: Option<PathBuf>,
    /// The modulefile directory (else `modules_dir` of the config).
    pub modules: Option<PathBuf>,
    /// The Jupyter kernels directory to keep current (`--kernels`).
    pub kernels: Option<PathBuf>,
    pub wait: bool,
    pub dry_run: bool,
    /// Read every data block of the image before it goes live (`deploy`)
    /// or before the backup is put back (`rollback`); `--no-verify` clears it.
    pub verify: bool,
    /// `--keep N`: keep N backup generations (`generations`), pruning older
    /// ones. `None`: the backup is replaced as always, except that an env
    /// that already has kept generations keeps the outgoing backup too.
    pub keep: Option<usize>,
    /// `rollback --to ID`: the generation to put back (default: the most
    /// recent backup).
    pub rollback_to: Option<String>,
}

/// The paths one env's deployment works on.
struct Paths {
    envs: PathBuf,
    live: PathBuf,
    backup_dir: PathBuf,
    backup: PathBuf,
    /// The live image kept during a rollback (`<backup>/.<env>.sqsh.prev`).
    prev: PathBuf,
    journal: PathBuf,
}

impl Paths {
    fn new(site: &Site, opts: &DeployOptions) -> Result<Paths> {
        let envs = site.envs_dir()?.to_path_buf();
        let backup_dir = match &opts.backup_dir {
            Some(dir) => crate::site::absolute(dir)?,
            None => envs.join(BACKUP_DIR_NAME),
        };
        let env = &opts.env;
        Ok(Paths {
            live: envs.join(format!("{env}.sqsh")),
            backup: backup_dir.join(format!("{env}.sqsh")),
            prev: backup_dir.join(format!(".{env}.sqsh.prev")),
            journal: backup_dir.join(format!(".{env}.rollback")),
            envs,
            backup_dir,
        })
    }
}

/// `installer deploy IMAGE --env NAME`.
pub fn deploy(site: &Site, image: &Path, opts: &DeployOptions, ui: &Ui) -> Result<()> {
    check_env(site, &opts.env)?;
    let paths = Paths::new(site, opts)?;
    let image = crate::site::absolute(image)?;
    // Read it before touching anything: a bad image changes nothing.
    let source = EnvImage::open(&image)?;
    source.bin_entries(&site.bin_in_image(&opts.env), &opts.env)?;
    farm::check_launcher_source(site, opts.launcher.as_deref())?;
    if !opts.verify {
        warn_no_verify(&image, ui);
    }
    if opts.dry_run {
        if opts.verify {
            // Read-only, and it tells whether the deploy would be refused.
            verify_image(&source, &image, ui)?;
        }
        ui.info(format!(
            "would copy {} to a temporary name in {} and sync it",
            image.display(),
            paths.envs.display()
        ));
        if paths.live.exists() {
            ui.info(format!(
                "would keep the live image as {} (hard link)",
                paths.backup.display()
            ));
        }
        ui.info(format!("would rename it to {}", paths.live.display()));
        dry_run_tail(site, opts, ui);
        return Ok(());
    }
    let lock = prepare(site, &paths, opts)?;
    remove_stale(site, &paths, opts, &lock, ui)?;
    // A rollback interrupted before is superseded by this deploy: the image
    // it kept aside goes (the live one becomes the backup), then its journal.
    remove_if_present(&paths.prev)?;
    remove_if_present(&paths.journal)?;

    drop(source);
    if same_contents(&image, &paths.live).map_err(|e| InstallError::io(&paths.live, e))? {
        if opts.verify {
            // Live already, maybe put there with --no-verify: say so if it
            // is damaged (nothing to change: it is the live image).
            verify_image(&EnvImage::open(&paths.live)?, &image, ui)?;
        }
        // As a fresh copy would be: readable by every user.
        fs::set_permissions(&paths.live, fs::Permissions::from_mode(0o644))
            .map_err(|e| InstallError::io(&paths.live, e))?;
        ui.info(format!(
            "{}: identical to {}; image unchanged",
            paths.live.display(),
            image.display()
        ));
    } else {
        let temp = copy_to_temp(&image, &paths.envs, &opts.env, ui)?;
        // IMAGE may have changed while this run waited for the lock: what
        // goes live is the copy, so the copy is what must be an image of
        // this env (the check above only fails early).
        let copy = EnvImage::open(temp.path())
            .and_then(|copy| {
                copy.bin_entries(&site.bin_in_image(&opts.env), &opts.env)?;
                Ok(copy)
            })
            .map_err(|e| match e {
                InstallError::Image { reason, .. } => InstallError::Image {
                    path: image.clone(),
                    reason: format!("{reason} (in the copy taken after waiting for the lock)"),
                },
                InstallError::NoBinDir { inner, env, .. } => InstallError::NoBinDir {
                    path: image.clone(),
                    inner,
                    env,
                },
                other => other,
            })?;
        // What goes live is the copy: every block of it is read (the copy
        // is still in the page cache). A damaged image is refused here,
        // its copy removed, nothing live touched.
        if opts.verify {
            verify_image(&copy, &image, ui)?;
        }
        drop(copy);
        fault::after("copy");
        temp.as_file()
            .sync_all()
            .map_err(|e| InstallError::io(temp.path(), e))?;
        sync_dir(&paths.envs)?;
        fault::after("sync");
        // The backup about to be replaced keeps a name of its own when
        // generations are kept (`deploy --keep N`, N > 1).
        let ring = match opts.keep {
            Some(n) => n > 1,
            None => !generations::list(&paths.live, &paths.backup_dir, &opts.env)
                .iter()
                .all(|g| g.live || g.latest_backup),
        };
        if ring && paths.live.exists() && !same_inode(&paths.live, &paths.backup) {
            generations::preserve(&paths.backup_dir, &opts.env, &paths.backup)?;
        }
        fault::after("keep");
        if paths.live.exists() {
            keep_as_backup(&paths, &opts.env)?;
            ui.info(format!("kept the previous image as {}", paths.backup.display()));
        }
        fault::after("backup");
        temp.persist(&paths.live)
            .map_err(|e| InstallError::io(&paths.live, e.error))?;
        sync_dir(&paths.envs)?;
        ui.info(format!("deployed {} as {}", image.display(), paths.live.display()));
    }
    fault::after("swap");
    finish(site, &paths, opts, ui, &lock)?;
    prune(&paths, opts, ui)?;
    fault::after("prune");
    Ok(())
}

/// `--keep N`: the older generations go.
fn prune(paths: &Paths, opts: &DeployOptions, ui: &Ui) -> Result<()> {
    if let Some(keep) = opts.keep {
        for id in generations::prune(&paths.live, &paths.backup_dir, &opts.env, keep)? {
            ui.info(format!(
                "removed backup generation {id} of {} (--keep {keep})",
                opts.env
            ));
        }
    }
    Ok(())
}

/// `installer rollback --env NAME`: the backup becomes live, the live
/// image becomes the backup (so a second rollback undoes the first).
pub fn rollback(site: &Site, opts: &DeployOptions, ui: &Ui) -> Result<()> {
    check_env(site, &opts.env)?;
    let paths = Paths::new(site, opts)?;
    farm::check_launcher_source(site, None)?;
    // What goes back: the most recent backup, or generation --to ID.
    let source = match &opts.rollback_to {
        Some(id) if !journal_done(&paths)? => generations::find(&paths.live, &paths.backup_dir, &opts.env, id)?,
        _ => paths.backup.clone(),
    };
    if !opts.verify {
        warn_no_verify(&source, ui);
    }
    if opts.dry_run {
        if journal_done(&paths)? {
            ui.info(format!("would finish the interrupted rollback of {}", opts.env));
        } else {
            let backup = require_backup(site, &paths, &source, &opts.env)?;
            if opts.verify {
                verify_image(&backup.2, &source, ui)?;
            }
            ui.info(format!(
                "would rename {} to {}, keeping the live image as the backup",
                source.display(),
                paths.live.display()
            ));
        }
        dry_run_tail(site, opts, ui);
        return Ok(());
    }
    let lock = prepare(site, &paths, opts)?;
    remove_stale(site, &paths, opts, &lock, ui)?;
    if journal_done(&paths)? {
        ui.info(format!("{}: finishing an interrupted rollback", opts.env));
        if paths.prev.exists() {
            generations::preserve(&paths.backup_dir, &opts.env, &paths.backup)?;
            rename(&paths.prev, &paths.backup)?;
            sync_dir(&paths.backup_dir)?;
        }
    } else {
        let (dev, ino, backup) = require_backup(site, &paths, &source, &opts.env)?;
        if opts.verify {
            verify_image(&backup, &source, ui)?;
        }
        drop(backup);
        install_file(&paths.journal, format!("{dev} {ino}\n").as_bytes(), 0o644)?;
        sync_dir(&paths.backup_dir)?;
        fault::after("journal");
        let had_live = paths.live.exists();
        if had_live {
            remove_if_present(&paths.prev)?;
            fs::hard_link(&paths.live, &paths.prev).map_err(|e| link_error(&paths.prev, &paths.envs, e))?;
            sync_dir(&paths.backup_dir)?;
        }
        fault::after("stage");
        rename(&source, &paths.live)?;
        sync_dir(&paths.envs)?;
        sync_dir(&paths.backup_dir)?;
        ui.info(format!("rolled {} back to {}", paths.live.display(), source.display()));
        fault::after("swap");
        if had_live {
            // The most recent backup, if it is still there (rollback --to an
            // older generation), keeps a name of its own.
            generations::preserve(&paths.backup_dir, &opts.env, &paths.backup)?;
            rename(&paths.prev, &paths.backup)?;
            sync_dir(&paths.backup_dir)?;
            ui.info(format!("kept the image rolled back from as {}", paths.backup.display()));
        }
    }
    fault::after("backup");
    finish(site, &paths, opts, ui, &lock)?;
    remove_if_present(&paths.journal)?;
    sync_dir(&paths.backup_dir)?;
    prune(&paths, opts, ui)
}

fn check_env(site: &Site, env: &str) -> Result<()> {
    check_env_name(env)?;
    // An alias is moved by `installer alias`, never deployed to.
    if let Ok(Live::Alias(target)) = swap::inspect(&site.scripts, env) {
        return Err(InstallError::Usage(format!(
            "{} is an alias (-> {}); deploy to the env it points at",
            site.env_dir(env).display(),
            target.display()
        )));
    }
    let live = site.image_path(env)?;
    if fs::symlink_metadata(&live).is_ok_and(|m| m.file_type().is_symlink()) {
        return Err(InstallError::Usage(format!(
            "{} is a symbolic link; deploy to the image it points at",
            live.display()
        )));
    }
    Ok(())
}

/// Directories exist, scripts writable, locks taken: `<scripts>`,
/// `<envs>`, the backup directory and the modules directory (other scripts
/// trees may share any of them).
fn prepare(site: &Site, paths: &Paths, opts: &DeployOptions) -> Result<RunLock> {
    farm::ensure_scripts_dir(&site.scripts)?;
    let modules = modulefile::dir(site, opts.modules.as_deref());
    for dir in [&paths.envs, &paths.backup_dir].into_iter().chain(modules.as_ref()) {
        swap::create_dirs(dir).map_err(|e| InstallError::io(dir, e))?;
    }
    let mut also = vec![(paths.backup_dir.clone(), Need::Required)];
    also.extend(modules.map(|dir| (dir, Need::Required)));
    lock::acquire_site(site, Need::Required, &also, opts.wait)
}

/// The `<envs>/<env>` link, the farm and the modulefile: all idempotent.
fn finish(site: &Site, paths: &Paths, opts: &DeployOptions, ui: &Ui, lock: &RunLock) -> Result<()> {
    ensure_env_link(site, &paths.envs, &opts.env, ui)?;
    write_manifest_beside(site, paths, &opts.env)?;
    fault::after("link");
    let farm_opts = FarmOptions {
        launcher_source: opts.launcher.clone(),
        wait: opts.wait,
        modules: opts.modules.clone(),
        ..FarmOptions::default()
    };
    farm::run_locked(site, std::slice::from_ref(&opts.env), &farm_opts, ui, lock)?;
    fault::after("farm");
    match modulefile::dir(site, opts.modules.as_deref()) {
        Some(dir) => {
            modulefile::write(site, &opts.env, &dir, false, ui)?;
        }
        None => ui.info("no modules_dir configured (nor --modules): no modulefile written"),
    }
    fault::after("module");
    if let Some(dir) = &opts.kernels {
        crate::kernels::write(site, dir, None, false, ui)?;
    }
    Ok(())
}

/// `<envs>/<env>.manifest.toml`: a copy of the provenance manifest inside
/// the live image (`installer build`/`update`), or none for an image that
/// has none. The image's own copy is the authority; this one is for people
/// and tools without a squashfs reader.
fn write_manifest_beside(site: &Site, paths: &Paths, env: &str) -> Result<()> {
    let beside = paths.envs.join(format!("{env}.manifest.toml"));
    let image = EnvImage::open(&paths.live)?;
    match crate::manifest::Manifest::from_image(&image, &site.config.container.prefix.join(env))? {
        Some(manifest) => {
            install_file(&beside, manifest.render().as_bytes(), 0o644)?;
        }
        None => remove_if_present(&beside)?,
    }
    Ok(())
}

fn dry_run_tail(site: &Site, opts: &DeployOptions, ui: &Ui) {
    let envs = site.envs_dir().map(Path::to_path_buf).unwrap_or_default();
    ui.info(format!(
        "would make {} -> {}",
        envs.join(&opts.env).display(),
        site.config.container.prefix.join(&opts.env).display()
    ));
    ui.info(format!(
        "would rebuild {} (installer farm {})",
        site.env_dir(&opts.env).display(),
        opts.env
    ));
    match modulefile::dir(site, opts.modules.as_deref()) {
        Some(dir) => ui.info(format!(
            "would write the modulefile {} and {}",
            dir.join(&opts.env).display(),
            dir.join(modulefile::MODULERC).display()
        )),
        None => ui.info("no modules_dir configured (nor --modules): no modulefile"),
    }
    if let Some(dir) = &opts.kernels {
        ui.info(format!("would rewrite the Jupyter kernels in {}", dir.display()));
    }
}

/// Temporary files killed runs (of any env, any scripts tree) left in
/// `<envs>`, the backup and the modules directory: this run holds their
/// locks, so no other run is writing them (`leftovers`).
fn remove_stale(site: &Site, paths: &Paths, opts: &DeployOptions, lock: &RunLock, ui: &Ui) -> Result<()> {
    let dirs = crate::leftovers::shared_dirs(site, Some(&paths.backup_dir), opts.modules.as_deref());
    crate::leftovers::clean(&dirs, lock, ui)
}

/// Whether the journal of an interrupted rollback says the backup it was
/// moving is already live.
fn journal_done(paths: &Paths) -> Result<bool> {
    let text = match fs::read_to_string(&paths.journal) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(InstallError::io(&paths.journal, e)),
    };
    let mut words = text.split_whitespace().map(str::parse::<u64>);
    let (Some(Ok(dev)), Some(Ok(ino))) = (words.next(), words.next()) else {
        return Ok(false);
    };
    Ok(fs::metadata(&paths.live).is_ok_and(|m| m.dev() == dev && m.ino() == ino))
}

/// The backup image, checked like a new image; its device and inode.
fn require_backup(site: &Site, paths: &Paths, source: &Path, env: &str) -> Result<(u64, u64, EnvImage)> {
    let meta = fs::metadata(source).map_err(|e| InstallError::Image {
        path: source.to_path_buf(),
        reason: format!("no backup to roll back to: {}", io_reason(&e)),
    })?;
    if same_inode(source, &paths.live) {
        return Err(InstallError::Image {
            path: source.to_path_buf(),
            reason: "is the live image itself (an interrupted deploy?); nothing to roll back to".into(),
        });
    }
    let image = EnvImage::open(source)?;
    image.bin_entries(&site.bin_in_image(env), env)?;
    Ok((meta.dev(), meta.ino(), image))
}

/// Read every data block of `image` (`verify`), with a progress bar on a
/// terminal; errors name `shown` (what the user gave, not a temporary copy).
fn verify_image(image: &EnvImage, shown: &Path, ui: &Ui) -> Result<()> {
    let name = shown
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    let bar = ui.progress_bytes(0, &format!("verifying {name}"));
    let result = crate::verify::verify(image, &bar);
    bar.finish_and_clear();
    match result {
        Ok(verified) => {
            ui.info(format!("verified {}: {}", shown.display(), verified.describe()));
            Ok(())
        }
        Err(InstallError::Image { reason, .. }) => Err(InstallError::Image {
            path: shown.to_path_buf(),
            reason,
        }),
        Err(other) => Err(other),
    }
}

fn warn_no_verify(image: &Path, ui: &Ui) {
    ui.warn(format!(
        "--no-verify: the data blocks of {} are not read before it goes live; a damaged image would only fail when used",
        image.display()
    ));
}

/// `<backup>/<env>.sqsh` becomes a hard link of the live image: linked at
/// a temporary name, renamed over the old backup, directory synced.
fn keep_as_backup(paths: &Paths, env: &str) -> Result<()> {
    if same_inode(&paths.live, &paths.backup) {
        // Already (a re-run after a crash): rename(2) of a link onto
        // another link of the same file would do nothing and leave the
        // temporary name behind.
        return Ok(());
    }
    let temp = paths.backup_dir.join(format!(".{env}.sqsh.new-{}", std::process::id()));
    remove_if_present(&temp)?;
    fs::hard_link(&paths.live, &temp).map_err(|e| link_error(&temp, &paths.envs, e))?;
    fault::after("temp:backup");
    rename(&temp, &paths.backup)?;
    sync_dir(&paths.backup_dir)
}

fn same_inode(a: &Path, b: &Path) -> bool {
    match (fs::metadata(a), fs::metadata(b)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

fn link_error(at: &Path, envs: &Path, e: io::Error) -> InstallError {
    if e.raw_os_error() == Some(nix::libc::EXDEV) {
        InstallError::Io {
            path: at.parent().unwrap_or(at).to_path_buf(),
            reason: format!(
                "the backup directory must be on the same file system as {}",
                envs.display()
            ),
        }
    } else {
        InstallError::io(at, e)
    }
}

/// Copy `image` to a new temporary file in `envs`, mode 0644.
fn copy_to_temp(image: &Path, envs: &Path, env: &str, ui: &Ui) -> Result<tempfile::NamedTempFile> {
    let mut source = fs::File::open(image).map_err(|e| InstallError::io(image, e))?;
    let len = source.metadata().map(|m| m.len()).unwrap_or(0);
    let mut temp = tempfile::Builder::new()
        .prefix(&format!(".{env}.sqsh.deploy-"))
        .tempfile_in(envs)
        .map_err(|e| InstallError::io(envs, e))?;
    let bar = ui.progress_bytes(len, &format!("copying {env}.sqsh"));
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = source.read(&mut buf).map_err(|e| InstallError::io(image, e))?;
        if n == 0 {
            break;
        }
        temp.write_all(&buf[..n])
            .map_err(|e| InstallError::io(temp.path(), e))?;
        bar.inc(n as u64);
    }
    bar.finish_and_clear();
    temp.as_file()
        .set_permissions(fs::Permissions::from_mode(0o644))
        .map_err(|e| InstallError::io(temp.path(), e))?;
    Ok(temp)
}

/// Byte-for-byte equality of two files; false when `b` does not exist.
pub fn same_contents(a: &Path, b: &Path) -> io::Result<bool> {
    let (ma, mb) = match (fs::metadata(a), fs::metadata(b)) {
        (Ok(ma), Ok(mb)) => (ma, mb),
        (_, Err(e)) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        (Err(e), _) | (_, Err(e)) => return Err(e),
    };
    if ma.len() != mb.len() {
        return Ok(false);
    }
    if ma.dev() == mb.dev() && ma.ino() == mb.ino() {
        return Ok(true);
    }
    let (mut fa, mut fb) = (fs::File::open(a)?, fs::File::open(b)?);
    let (mut ba, mut bb) = (vec![0u8; 1 << 20], vec![0u8; 1 << 20]);
    loop {
        let n = read_full(&mut fa, &mut ba)?;
        let m = read_full(&mut fb, &mut bb)?;
        if n != m || ba[..n] != bb[..m] {
            return Ok(false);
        }
        if n == 0 {
            return Ok(true);
        }
    }
}

fn read_full(file: &mut fs::File, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match file.read(&mut buf[filled..])? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
}

/// `<envs>/<env> -> <container_prefix>/<env>` (dangling outside the
/// container, by design), made by renaming a new link over the old one.
pub fn ensure_env_link(site: &Site, envs: &Path, env: &str, ui: &Ui) -> Result<()> {
    let link = envs.join(env);
    let target = site.config.container.prefix.join(env);
    match fs::symlink_metadata(&link) {
        Ok(meta) if meta.file_type().is_symlink() => {
            if fs::read_link(&link).is_ok_and(|t| t == target) {
                return Ok(());
            }
        }
        Ok(_) => {
            ui.warn(format!(
                "{} exists and is not a symbolic link; left as it is",
                link.display()
            ));
            return Ok(());
        }
        Err(_) => {}
    }
    replace_symlink(&link, &target)
}

/// Make `link` point at `target` in one step: a new symlink at a
/// temporary name, renamed over the old one, directory synced.
pub fn replace_symlink(link: &Path, target: &Path) -> Result<()> {
    let dir = link.parent().unwrap_or(Path::new("."));
    let name = link
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    let temp = dir.join(format!(".{name}.link-{}", std::process::id()));
    remove_if_present(&temp)?;
    symlink(target, &temp).map_err(|e| InstallError::io(&temp, e))?;
    fault::after("temp:link");
    if let Err(e) = fs::rename(&temp, link) {
        let _ = fs::remove_file(&temp);
        return Err(InstallError::io(link, e));
    }
    sync_dir(dir)
}

fn rename(from: &Path, to: &Path) -> Result<()> {
    fs::rename(from, to).map_err(|e| InstallError::io(to, e))
}

fn remove_if_present(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(InstallError::io(path, e)),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_contents_compares_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b, c) = (dir.path().join("a"), dir.path().join("b"), dir.path().join("c"));
        fs::write(&a, b"12345").unwrap();
        fs::write(&b, b"12345").unwrap();
        fs::write(&c, b"12346").unwrap();
        assert!(same_contents(&a, &b).unwrap());
        assert!(!same_contents(&a, &c).unwrap());
        assert!(!same_contents(&a, &dir.path().join("none")).unwrap());
    }
}
