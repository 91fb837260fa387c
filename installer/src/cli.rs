//! The command line (see docs/installer.md): parsing with clap, dispatch to
//! the subcommands, and the mapping of results to exit statuses.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::error::{InstallError, EXIT_CHECK_FAILED};
use crate::farm::{self, FarmOptions};
use crate::site::Site;
use crate::ui::Ui;
use crate::{check, demo, status};

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
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Build or refresh <scripts>/<env>.d from each env's image (I1-I4);
    /// installs the launcher and launcher.toml at <scripts>/.
    Farm(FarmArgs),
    /// Verify a live installation; exit 1 listing each problem (I10).
    Check(EnvList),
    /// Per-env table: version, aliases, image size, files in the image,
    /// inodes on disk and their ratio (I11).
    Status(EnvList),
    /// Build a complete demo installation in DIR from a generated env and
    /// run a command through the launcher (I12).
    Demo(DemoArgs),
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
    /// demo's launcher.toml). Default: apptainer or singularity on PATH.
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
            let _ = e.print();
            return e.exit_code();
        }
    };
    let ui = Ui::new(cli.quiet);
    match run(cli, &ui) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("installer: {e}");
            e.exit_code()
        }
    }
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
                    println!("problem: {msg}");
                    println!("1 problem");
                    return Ok(EXIT_CHECK_FAILED);
                }
                Err(e) => return Err(e),
            };
            let report = check::run(&site, &args.envs);
            for warning in &report.warnings {
                println!("warning: {warning}");
            }
            for problem in &report.problems {
                println!("problem: {problem}");
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
                println!("{summary}");
                Ok(EXIT_CHECK_FAILED)
            }
        }
        Command::Status(args) => {
            let site = load(&cli.site)?;
            let rows = status::rows(&site, &args.envs)?;
            print!("{}", status::render(&rows, status::shared_inodes(&site)));
            Ok(0)
        }
        Command::Demo(args) => {
            demo::run(&demo::DemoOptions {
                dir: args.dir,
                env: args.env,
                launcher: args.launcher,
                runtime: args.runtime,
                dry_run: args.dry_run,
            }, ui)?;
            Ok(0)
        }
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
