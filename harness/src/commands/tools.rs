//! `burstcert tools`: the pinned upstream binaries.

use burstcert::progress::Progress;
use burstcert::tools::Tools;
use clap::Subcommand;

#[derive(Subcommand)]
pub enum ToolsCommand {
    /// Build (or find) the pinned binaries and print their folder.
    Build,
    /// Print the pinned versions.
    Versions,
}

/// Runs a `tools` subcommand.
pub fn run(command: ToolsCommand, progress: &Progress) -> anyhow::Result<()> {
    match command {
        ToolsCommand::Build => {
            let tools = Tools::ensure(progress)?;
            println!("{}", tools.dir().display());
        }
        ToolsCommand::Versions => {
            let pins = burstcert::tools::Pins::current();
            println!(
                "kubernetes {}\netcd {}\nkwok {}",
                pins.kubernetes, pins.etcd, pins.kwok
            );
        }
    }
    Ok(())
}
