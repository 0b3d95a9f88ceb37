//! `burstcert cci`: operations on the CCI side.

use anyhow::Context as _;
use clap::Subcommand;

use super::{read_auth, read_ca_file};

#[derive(Subcommand)]
pub enum CciCommand {
    /// Remove what a cluster deleted without uninstall left on CCI (its bursting-{id}
    /// namespace and billable pods), and report it.
    Purge {
        /// The deleted cluster's id.
        #[arg(long)]
        cluster_id: String,
        /// Base URL of the CCI API.
        #[arg(long, value_name = "URL")]
        cci_endpoint: String,
        /// A file holding the CCI token; or the token in the environment variable CCI_TOKEN
        /// (no flag takes the token itself).
        #[arg(long, value_name = "PATH")]
        cci_token_file: Option<std::path::PathBuf>,
        /// A file holding an AK/SK pair (one line AK:SK) to sign with instead of a token; or
        /// the pair in CCI_ACCESS_KEY and CCI_SECRET_KEY.
        #[arg(long, value_name = "PATH")]
        cci_aksk_file: Option<std::path::PathBuf>,
        /// PEM file of the CA certificates CCI's certificate is checked against (a private
        /// endpoint); default: the system's CA roots.
        #[arg(long, value_name = "PATH")]
        cci_ca_file: Option<std::path::PathBuf>,
    },
}

/// Runs a `cci` subcommand.
pub fn run(command: CciCommand) -> anyhow::Result<()> {
    let CciCommand::Purge {
        cluster_id,
        cci_endpoint,
        cci_token_file,
        cci_aksk_file,
        cci_ca_file,
    } = command;
    let auth = read_auth(cci_token_file, cci_aksk_file)?.context(
        "no CCI credential: set CCI_TOKEN or give --cci-token-file PATH, or an AK/SK pair in CCI_ACCESS_KEY and CCI_SECRET_KEY or --cci-aksk-file PATH",
    )?;
    let ca = read_ca_file(cci_ca_file)?;
    let cci = burstcert::cci::CciClient::with_auth(&cci_endpoint, auth, ca.as_deref())?;
    let runtime = tokio::runtime::Runtime::new().context("start tokio")?;
    let report = runtime.block_on(burstcert::addon::purge::purge(&cci, &cluster_id))?;
    println!("{report}");
    Ok(())
}
