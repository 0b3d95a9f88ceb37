//! `burstcert tools`: the pinned upstream binaries.

use burstcert::progress::Progress;
use burstcert::tools::{Minor, Tools};
use clap::Subcommand;

#[derive(Subcommand)]
pub enum ToolsCommand {
    /// Build (or find) the pinned binaries and print their folder.
    Build {
        /// The Kubernetes minor, e.g. `1.30` [default: the pinned one].
        #[arg(long, value_name = "MINOR", value_parser = Minor::parse)]
        kubernetes: Option<&'static Minor>,
    },
    /// Print the pinned versions, and each supported Kubernetes minor's.
    Versions,
}

/// Runs a `tools` subcommand.
pub fn run(command: ToolsCommand, progress: &Progress) -> anyhow::Result<()> {
    match command {
        ToolsCommand::Build { kubernetes } => {
            let tools = Tools::ensure_for(kubernetes.unwrap_or(Minor::PINNED), progress)?;
            println!("{}", tools.dir().display());
        }
        ToolsCommand::Versions => {
            let pins = burstcert::tools::Pins::current();
            println!(
                "kubernetes {}\netcd {}\nkwok {}",
                pins.kubernetes, pins.etcd, pins.kwok
            );
            for minor in Minor::SUPPORTED {
                let pins = burstcert::tools::Pins::of(minor);
                println!(
                    "supported {} kubernetes {} etcd {} kwok {}",
                    minor.minor(),
                    pins.kubernetes,
                    pins.etcd,
                    pins.kwok
                );
            }
        }
    }
    Ok(())
}
