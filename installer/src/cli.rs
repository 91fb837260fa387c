//! The command line (see docs/installer.md): parsing with clap, dispatch to
//! the subcommands, and the mapping of results to exit statuses.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::alias::{self, AliasOptions};
use crate::deploy::{self, DeployOptions};
use crate::error::{InstallError, EXIT_CHECK_FAILED};
use crate::farm::{self, FarmOptions};
use crate::pack::{self, Compression, PackOptions};
use crate::site::Site;
use crate::ui::Ui;
use crate::{check, demo, modulefile, output, status};

/// Build and maintain the scripts tree of squashfs-packed conda
/// environments for the launcher.
#[derive(Parser, Debug)]
#[command(name = "installer", version, about, long_about = None)]
pub struct Cli {
    /// Print only warnings and errors.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    #[command(flatten)]
    pub site: SiteArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Which installation to work on.
#[derive(Args, Debug, Clone)]
pub struct SiteArgs {
    /// The scripts tree (holds launcher, launcher.toml, <env>.d/).
    /// Default: the directory of --config.
    #[arg(long, global = true, value_name = "DIR", env = "INSTALLER_SCRIPTS")]
    pub scripts: Option<PathBuf>,
    /// The site config to use (and for `farm`, to install as
    /// <scripts>/launcher.toml). Default: <scripts>/launcher.toml.
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Directory of the modulefiles (I8): <DIR>/<env>, <DIR>/.modulerc.
    /// Default: modules_dir of the config.
    #[arg(long, global = true, value_name = "DIR", env = "INSTALLER_MODULES")]
    pub modules: Option<PathBuf>,
    /// Jupyter kernels directory that deploy, rollback and alias keep
    /// current (one kernelspec per env and alias; see `kernels`).
    #[arg(long, global = true, value_name = "DIR", env = "INSTALLER_KERNELS")]
    pub kernels: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Build or refresh <scripts>/<env>.d from each env's image (I1-I4);
    /// installs the launcher and launcher.toml at <scripts>/.
    Farm(FarmArgs),
    /// Verify a live installation; exit 1 listing each problem (I10).
    Check(CheckArgs),
    /// Per-env table: version, aliases, image size, files in the image,
    /// inodes on disk and their ratio (I11).
    Status(EnvList),
    /// Build a complete demo installation in DIR from a generated env and
    /// run a command through the launcher (I12).
    Demo(DemoArgs),
    /// Pack a built conda env into a squashfs image whose root holds
    /// <container_prefix>/<env>/ (I5), with mksquashfs.
    Pack(PackArgs),
    /// Put an image live as <envs_dir>/<env>.sqsh, keeping the previous one
    /// as the backup; then rebuild the farm and the modulefile (I6).
    Deploy(DeployArgs),
    /// Move the backup image back into place (the live one becomes the
    /// backup); then rebuild the farm and the modulefile (I6).
    Rollback(RollbackArgs),
    /// Write the modulefile of an env and the .modulerc of aliases (I8).
    Module(ModuleArgs),
    /// Write one Jupyter kernelspec per env and alias into DIR, running the
    /// env's python3 through the launcher.
    Kernels(crate::kernels::KernelsArgs),
    /// Point alias NAME (<scripts>/NAME.d, <envs>/NAME, the module alias) at
    /// env TARGET, atomically (I9); or remove it with --remove.
    Alias(AliasArgs),
    /// Run a build COMMAND where <container_prefix>/<env> is a fresh
    /// directory (private mount namespace), pack it, and with --deploy
    /// deploy it; a provenance manifest goes inside and beside the image.
    Build(crate::lifecycle::BuildArgs),
    /// Run COMMAND over the live image (read-only, with a writable overlay
    /// at <container_prefix>/<env>), pack the merged tree as a new image.
    Update(crate::lifecycle::UpdateArgs),
    /// Packages added, removed and changed between two images (files, env
    /// names or ENV@ID generations), from their provenance manifests.
    Diff(crate::lifecycle::DiffArgs),
}

#[derive(Args, Debug)]
pub struct PackArgs {
    /// The built env (its bin/, lib/, …).
    #[arg(value_name = "PREFIX")]
    pub prefix: PathBuf,
    /// The env's name: the image holds <container_prefix>/NAME/.
    #[arg(long, value_name = "NAME")]
    pub env: String,
    /// The image to write. Default: NAME.sqsh in the current directory.
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Default zstd: smallest but xz, and the fastest compressed image to
    /// import from (docs/performance.md); gzip for kernels before 4.14.
    #[arg(long, value_enum, default_value = "zstd")]
    pub compression: Compression,
    /// <container_prefix>. Default: container.prefix of the config when
    /// --scripts/--config is given, else /opt/conda.
    #[arg(long, value_name = "DIR")]
    pub container_prefix: Option<PathBuf>,
    /// Replace FILE if it exists.
    #[arg(long)]
    pub force: bool,
    /// Print the mksquashfs commands instead of running them.
    #[arg(long)]
    pub dry_run: bool,
    /// Extra mksquashfs options, after `--` (e.g. -- -b 1M -processors 8).
    #[arg(last = true, value_name = "MKSQUASHFS_ARGS")]
    pub mksquashfs_args: Vec<OsString>,
}

#[derive(Args, Debug)]
pub struct DeployArgs {
    /// The image made by `installer pack`.
    #[arg(value_name = "IMAGE")]
    pub image: PathBuf,
    #[command(flatten)]
    pub common: DeployCommon,
    /// The launcher binary the farm installs (as `farm --launcher`).
    #[arg(long, value_name = "PATH")]
    pub launcher: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct RollbackArgs {
    #[command(flatten)]
    pub common: DeployCommon,
    /// Put back generation ID (as `installer status` lists them) instead of
    /// the most recent backup.
    #[arg(long, value_name = "ID")]
    pub to: Option<String>,
}

#[derive(Args, Debug)]
pub struct DeployCommon {
    /// The environment.
    #[arg(long, value_name = "NAME")]
    pub env: String,
    /// Where the previous image is kept; must be on the file system of
    /// envs_dir. Default: <envs_dir>/.backup.
    #[arg(long, value_name = "DIR")]
    pub backup_dir: Option<PathBuf>,
    /// Fail (exit 6) instead of waiting when another run holds the lock.
    #[arg(long)]
    pub no_wait: bool,
    /// Print each change instead of making it.
    #[arg(long)]
    pub dry_run: bool,
    /// Do not read every data block of the image before it goes live
    /// (a warning says so).
    #[arg(long)]
    pub no_verify: bool,
    /// Keep N backup generations (each a hard link <backup>/<env>@ID.sqsh,
    /// ID the time it went live), removing older ones. Default: the most
    /// recent backup only (plus any generations kept before).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub keep: Option<u32>,
}

#[derive(Args, Debug)]
pub struct CheckArgs {
    /// Limit to these environments (default: all).
    #[arg(value_name = "ENV")]
    pub envs: Vec<String>,
    /// Also read every data block of each env's image and of its backup
    /// (as deploy does); a damaged one is a problem. Costs a full read.
    #[arg(long)]
    pub verify_images: bool,
}

#[derive(Args, Debug)]
pub struct ModuleArgs {
    /// The environment.
    #[arg(long, value_name = "NAME")]
    pub env: String,
    /// Fail (exit 6) instead of waiting when another run holds the lock.
    #[arg(long)]
    pub no_wait: bool,
    /// Print each change instead of making it.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Args, Debug)]
pub struct AliasArgs {
    /// The alias (e.g. analysis3, analysis3-unstable).
    #[arg(value_name = "NAME")]
    pub name: String,
    /// The environment it names (e.g. analysis3-22.10).
    #[arg(value_name = "TARGET", required_unless_present = "remove", conflicts_with = "remove")]
    pub target: Option<String>,
    /// Remove the alias instead.
    #[arg(long)]
    pub remove: bool,
    /// Fail (exit 6) instead of waiting when another run holds the lock.
    #[arg(long)]
    pub no_wait: bool,
    /// Print each change instead of making it.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Args, Debug)]
pub struct FarmArgs {
    /// Environments to build (their images are <envs_dir>/<ENV>.sqsh).
    #[arg(value_name = "ENV", required_unless_present = "all", conflicts_with = "all")]
    pub envs: Vec<String>,
    /// Every env with an image in envs_dir.
    #[arg(long)]
    pub all: bool,
    /// The launcher binary to install. Default: `launcher` beside this
    /// program (the one at <scripts>/ is kept when there is none).
    #[arg(long, value_name = "PATH")]
    pub launcher: Option<PathBuf>,
    /// Fail (exit 6) instead of waiting when another run holds the lock.
    #[arg(long)]
    pub no_wait: bool,
    /// Print each change instead of making it.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Args, Debug)]
pub struct EnvList {
    /// Limit to these environments (default: all).
    #[arg(value_name = "ENV")]
    pub envs: Vec<String>,
}

#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Directory to create (or replace, if it holds an earlier demo).
    pub dir: PathBuf,
    /// The launcher binary to install. Default: `launcher` beside this program.
    #[arg(long, value_name = "PATH")]
    pub launcher: Option<PathBuf>,
    /// Container runtime to run the demo command with (written into the
    /// demo's launcher.toml). Default: apptainer or singularity on PATH,
    /// else the launcher's native runtime.
    #[arg(long, value_name = "PATH")]
    pub runtime: Option<PathBuf>,
    /// Name of the generated environment.
    #[arg(long, value_name = "NAME", default_value = demo::DEFAULT_ENV)]
    pub env: String,
    /// Print the steps instead of doing them.
    #[arg(long)]
    pub dry_run: bool,
}

/// Parse the command line, run, and return the exit status.
pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // --help and --version go to stdout, usage errors to stderr.
            if let Err(write) = e.print() {
                if e.use_stderr() {
                    return e.exit_code();
                }
                output::stdout_failed(write);
            }
            return output::finish(e.exit_code());
        }
    };
    let ui = Ui::new(cli.quiet);
    let code = match run(cli, &ui) {
        Ok(code) => code,
        Err(e) => {
            output::err_line(&format!("installer: {e}"));
            e.exit_code()
        }
    };
    output::finish(code)
}

fn load(site: &SiteArgs) -> Result<Site, InstallError> {
    Site::load(site.scripts.as_deref(), site.config.as_deref())
}

pub fn run(cli: Cli, ui: &Ui) -> Result<i32, InstallError> {
    match cli.command {
        Command::Farm(args) => {
            let site = load(&cli.site)?;
            let opts = FarmOptions {
                dry_run: args.dry_run,
                wait: !args.no_wait,
                launcher_source: args.launcher,
                modules: cli.site.modules.clone(),
                ..FarmOptions::default()
            };
            farm::run(&site, (!args.all).then_some(args.envs.as_slice()), &opts, ui)?;
            Ok(0)
        }
        Command::Check(args) => {
            // A config that does not parse is a finding, not a crash.
            let site = match load(&cli.site) {
                Ok(site) => site,
                Err(InstallError::Config(msg)) => {
                    output::out_line(&format!("problem: {msg}"));
                    output::out_line("1 problem");
                    return Ok(EXIT_CHECK_FAILED);
                }
                Err(e) => return Err(e),
            };
            let opts = check::Options {
                modules: cli.site.modules.clone(),
                verify_images: args.verify_images,
            };
            let report = check::run(&site, &args.envs, &opts, ui);
            for info in &report.infos {
                ui.info(format!("info: {info}"));
            }
            for warning in &report.warnings {
                output::out_line(&format!("warning: {warning}"));
            }
            for problem in &report.problems {
                output::out_line(&format!("problem: {problem}"));
            }
            let summary = format!(
                "{} envs checked: {} problems, {} warnings",
                report.envs.len(),
                report.problems.len(),
                report.warnings.len()
            );
            if report.ok() {
                ui.info(summary);
                Ok(0)
            } else {
                output::out_line(&summary);
                Ok(EXIT_CHECK_FAILED)
            }
        }
        Command::Status(args) => {
            let site = load(&cli.site)?;
            let rows = status::rows(&site, &args.envs)?;
            output::out(&status::render(&rows, status::shared_inodes(&site)));
            let envs: Vec<String> = rows.iter().map(|r| r.env.clone()).collect();
            output::out(&crate::lifecycle::status_section(&site, &envs));
            Ok(0)
        }
        Command::Demo(args) => {
            demo::run(
                &demo::DemoOptions {
                    dir: args.dir,
                    env: args.env,
                    launcher: args.launcher,
                    runtime: args.runtime,
                    dry_run: args.dry_run,
                },
                ui,
            )?;
            Ok(0)
        }
        Command::Pack(args) => {
            // A site is optional: it only supplies the container prefix.
            let site = if cli.site.scripts.is_some() || cli.site.config.is_some() {
                Some(load(&cli.site)?)
            } else {
                None
            };
            let container_prefix = args
                .container_prefix
                .or_else(|| site.map(|s| s.config.container.prefix))
                .unwrap_or_else(|| PathBuf::from("/opt/conda"));
            let output = args
                .output
                .unwrap_or_else(|| PathBuf::from(format!("{}.sqsh", args.env)));
            pack::run(
                &PackOptions {
                    prefix: args.prefix,
                    env: args.env,
                    output,
                    container_prefix,
                    compression: args.compression,
                    force: args.force,
                    dry_run: args.dry_run,
                    extra_args: args.mksquashfs_args,
                },
                ui,
            )?;
            Ok(0)
        }
        Command::Deploy(args) => {
            let site = load(&cli.site)?;
            deploy::deploy(
                &site,
                &args.image,
                &deploy_options(&cli.site, &args.common, args.launcher),
                ui,
            )?;
            Ok(0)
        }
        Command::Rollback(args) => {
            let site = load(&cli.site)?;
            let opts = DeployOptions {
                rollback_to: args.to.clone(),
                ..deploy_options(&cli.site, &args.common, None)
            };
            deploy::rollback(&site, &opts, ui)?;
            Ok(0)
        }
        Command::Module(args) => {
            let site = load(&cli.site)?;
            let dir = modulefile::dir(&site, cli.site.modules.as_deref()).ok_or_else(|| {
                InstallError::Usage(format!(
                    "no module directory: pass --modules DIR or set modules_dir in {}",
                    site.config_source.display()
                ))
            })?;
            crate::site::check_env_name(&args.env)?;
            let _lock = if args.dry_run {
                None
            } else {
                crate::farm::ensure_scripts_dir(&site.scripts)?;
                // The modules directory may be shared with other trees.
                crate::swap::create_dirs(&dir).map_err(|e| InstallError::io(&dir, e))?;
                let dirs = [
                    (site.scripts.clone(), crate::lock::Need::Required),
                    (dir.clone(), crate::lock::Need::Required),
                ];
                Some(crate::lock::acquire_all(&dirs, !args.no_wait, |msg| {
                    crate::output::err_line(&format!("installer: {msg}"))
                })?)
            };
            modulefile::write(&site, &args.env, &dir, args.dry_run, ui)?;
            Ok(0)
        }
        Command::Kernels(args) => {
            crate::kernels::run(&load(&cli.site)?, &args, ui)?;
            Ok(0)
        }
        Command::Alias(args) => {
            let site = load(&cli.site)?;
            alias::run(
                &site,
                &AliasOptions {
                    name: args.name,
                    target: args.target,
                    modules: cli.site.modules.clone(),
                    kernels: cli.site.kernels.clone(),
                    wait: !args.no_wait,
                    dry_run: args.dry_run,
                },
                ui,
            )?;
            Ok(0)
        }
        Command::Build(args) => crate::lifecycle::run_build(&cli.site, &args, None, ui),
        Command::Update(args) => crate::lifecycle::run_update(&cli.site, &args, ui),
        Command::Diff(args) => crate::lifecycle::run_diff(&cli.site, &args),
    }
}

pub(crate) fn deploy_options(site: &SiteArgs, common: &DeployCommon, launcher: Option<PathBuf>) -> DeployOptions {
    DeployOptions {
        env: common.env.clone(),
        backup_dir: common.backup_dir.clone(),
        launcher,
        modules: site.modules.clone(),
        kernels: site.kernels.clone(),
        wait: !common.no_wait,
        dry_run: common.dry_run,
        verify: !common.no_verify,
        keep: common.keep.map(|n| n as usize),
        rollback_to: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn farm_needs_envs_or_all_but_not_both() {
        assert!(Cli::try_parse_from(["installer", "farm"]).is_err());
        assert!(Cli::try_parse_from(["installer", "farm", "--all", "e"]).is_err());
        assert!(Cli::try_parse_from(["installer", "--scripts", "/s", "farm", "e"]).is_ok());
        assert!(Cli::try_parse_from(["installer", "farm", "--scripts", "/s", "--all", "-q"]).is_ok());
    }
}
