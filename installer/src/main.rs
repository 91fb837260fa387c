//! `installer`: builds and maintains a launcher installation (see
//! `../shared/spec/installer.md`). Subcommands arrive with their own issues.
use clap::Parser;

/// Build and maintain the scripts tree of squashfs-packed conda environments.
#[derive(Parser)]
#[command(name = "installer", version, about)]
struct Cli {}

fn main() {
    let _cli = Cli::parse();
    eprintln!("installer: no subcommands yet; see --help");
    std::process::exit(2);
}
