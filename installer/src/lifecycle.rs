//! The command line of the env life cycle (issue 14): `build`, `update`,
//! `diff`, and what `status` adds (provenance, generations). Kept apart
//! from `cli` so that the subcommands' options live with their code.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::Args;

use crate::build::{self, BuildOptions, Mode};
use crate::cli::{DeployCommon, SiteArgs};
use crate::error::{InstallError, Result};
use crate::generations;
use crate::image::EnvImage;
use crate::manifest::Manifest;
use crate::pack::Compression;
use crate::site::Site;
use crate::ui::Ui;

#[derive(Args, Debug)]
pub struct BuildArgs {
    #[command(flatten)]
    pub common: DeployCommon,
    /// Deploy the image once it is packed (as `installer deploy`).
    #[arg(long)]
    pub deploy: bool,
    /// The image to write. Default: NAME.sqsh in the current directory.
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Replace FILE if it exists.
    #[arg(long)]
    pub force: bool,
    /// Compression of the image (as `pack`; docs/performance.md).
    #[arg(long, value_enum, default_value = "zstd")]
    pub compression: Compression,
    /// <container_prefix>. Default: container.prefix of the config when
    /// --scripts/--config is given, else /opt/conda.
    #[arg(long, value_name = "DIR")]
    pub container_prefix: Option<PathBuf>,
    /// Where the build directory (.NAME.build-XXXX) is made. Default: the
    /// directory of the output image.
    #[arg(long, value_name = "DIR")]
    pub build_dir: Option<PathBuf>,
    /// Keep the build directory (removed by default, also on failure).
    #[arg(long)]
    pub keep_build_dir: bool,
    /// An input file to checksum into the manifest besides those named on
    /// the command line (repeatable).
    #[arg(long, value_name = "FILE")]
    pub input: Vec<PathBuf>,
    /// The launcher binary the farm installs (with --deploy).
    #[arg(long, value_name = "PATH")]
    pub launcher: Option<PathBuf>,
    /// The build command and its arguments, after `--`.
    #[arg(last = true, required = true, value_name = "COMMAND")]
    pub command: Vec<OsString>,
}

#[derive(Args, Debug)]
pub struct UpdateArgs {
    #[command(flatten)]
    pub build: BuildArgs,
    /// Start from this image instead of the live <envs>/NAME.sqsh.
    #[arg(long, value_name = "IMAGE")]
    pub from: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct DiffArgs {
    /// The old image: a file, an env name (its live image), ENV@backup (the
    /// most recent backup) or ENV@ID (a kept generation).
    #[arg(value_name = "A")]
    pub a: String,
    /// The new image, named the same ways.
    #[arg(value_name = "B")]
    pub b: String,
    /// <container_prefix>, for image files named without --scripts.
    #[arg(long, value_name = "DIR")]
    pub container_prefix: Option<PathBuf>,
}

fn optional_site(site: &SiteArgs) -> Result<Option<Site>> {
    if site.scripts.is_some() || site.config.is_some() {
        Site::load(site.scripts.as_deref(), site.config.as_deref()).map(Some)
    } else {
        Ok(None)
    }
}

fn container_prefix(given: &Option<PathBuf>, site: Option<&Site>) -> PathBuf {
    given
        .clone()
        .or_else(|| site.map(|s| s.config.container.prefix.clone()))
        .unwrap_or_else(|| PathBuf::from("/opt/conda"))
}

/// `installer build` (`from` None) and `installer update`.
pub fn run_build(site_args: &SiteArgs, args: &BuildArgs, from: Option<Mode>, ui: &Ui) -> Result<i32> {
    let site = optional_site(site_args)?;
    if args.deploy && site.is_none() {
        return Err(InstallError::Usage(
            "--deploy needs the installation: pass --scripts or --config".into(),
        ));
    }
    let env = args.common.env.clone();
    let mode = match from {
        Some(mode) => mode,
        None => Mode::Build,
    };
    let opts = BuildOptions {
        env: env.clone(),
        mode,
        command: args.command.clone(),
        output: args
            .output
            .clone()
            .unwrap_or_else(|| PathBuf::from(format!("{env}.sqsh"))),
        container_prefix: container_prefix(&args.container_prefix, site.as_ref()),
        compression: args.compression,
        force: args.force,
        build_dir: args.build_dir.clone(),
        keep_build_dir: args.keep_build_dir,
        inputs: args.input.clone(),
        base_image: site.as_ref().and_then(|s| s.config.runtime.image.clone()),
        dry_run: args.common.dry_run,
    };
    let image = build::run(&opts, ui)?;
    if args.deploy {
        let site = site.as_ref().expect("checked above");
        let deploy_opts = crate::cli::deploy_options(site_args, &args.common, args.launcher.clone());
        if args.common.dry_run {
            ui.info(format!("would deploy {} as {}", image.display(), env));
        } else {
            crate::deploy::deploy(site, &image, &deploy_opts, ui)?;
        }
    }
    Ok(0)
}

/// `installer update`: the live image (or --from) is the lower layer.
pub fn run_update(site_args: &SiteArgs, args: &UpdateArgs, ui: &Ui) -> Result<i32> {
    let from = match &args.from {
        Some(from) => from.clone(),
        None => {
            let site = optional_site(site_args)?.ok_or_else(|| {
                InstallError::Usage("update needs the live image: pass --scripts/--config, or --from IMAGE".into())
            })?;
            crate::site::check_env_name(&args.build.common.env)?;
            let live = site.image_path(&args.build.common.env)?;
            if !live.exists() {
                return Err(InstallError::Image {
                    path: live,
                    reason: "no live image to update (build and deploy it first)".into(),
                });
            }
            live
        }
    };
    run_build(site_args, &args.build, Some(Mode::Update { from }), ui)
}

/// `installer diff A B`.
pub fn run_diff(site_args: &SiteArgs, args: &DiffArgs) -> Result<i32> {
    let site = optional_site(site_args)?;
    let prefix = container_prefix(&args.container_prefix, site.as_ref());
    let a = crate::diff::resolve(&args.a, site.as_ref(), &prefix)?;
    let b = crate::diff::resolve(&args.b, site.as_ref(), &prefix)?;
    let changes = crate::diff::changes(&a.manifest, &b.manifest);
    crate::output::out(&crate::diff::render(&a, &b, &changes));
    Ok(0)
}

/// What `status` prints after its table: per env, the provenance of the
/// live image and its generations.
pub fn status_section(site: &Site, envs: &[String]) -> String {
    let mut out = String::new();
    let Ok(backup) = generations::backup_dir(site) else {
        return out;
    };
    for env in envs {
        let Ok(live) = site.image_path(env) else { continue };
        let gens = generations::list(&live, &backup, env);
        if gens.is_empty() {
            continue;
        }
        out.push_str(&format!("\n{env}:\n"));
        let inner = site.config.container.prefix.join(env);
        for generation in &gens {
            let manifest = EnvImage::open(&generation.path)
                .ok()
                .and_then(|image| Manifest::from_image(&image, &inner).ok().flatten());
            let role = if generation.live {
                "live"
            } else if generation.latest_backup {
                "backup (rollback)"
            } else {
                "backup"
            };
            let what = match &manifest {
                Some(m) => format!(
                    "{} packages, made {} (launcher {})",
                    m.package_count(),
                    m.date,
                    m.launcher_version
                ),
                None => "no provenance manifest (made by pack)".into(),
            };
            out.push_str(&format!("  {:<18} {:<18} {what}\n", generation.id, role));
            if generation.live {
                if let Some(m) = &manifest {
                    if let Some(base) = &m.base_image {
                        out.push_str(&format!("    base image {base}\n"));
                    }
                    for line in m.step_lines() {
                        out.push_str(&format!("    {line}\n"));
                    }
                }
            }
        }
    }
    out
}
