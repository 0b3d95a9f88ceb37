//! `burstcert up`: the whole environment, kept until Ctrl-C.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use burstcert::target::Launch;
use burstcert::tools::Minor;
use clap::{Args, ValueEnum};

/// Where `up` brings the environment up.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum UpClusterArg {
    /// The host node runs the add-on's pods as processes.
    Local,
    /// A kind cluster from locally made images.
    Kind,
}

impl UpClusterArg {
    /// The target this value has the harness bring up at `kubernetes`.
    fn launch(self, kubernetes: &'static Minor) -> Arc<dyn Launch> {
        match self {
            UpClusterArg::Local => Arc::new(burstcert::target::local::Local {
                kubernetes,
                ..Default::default()
            }),
            UpClusterArg::Kind => Arc::new(burstcert::target::kind::Kind { kubernetes }),
        }
    }
}

/// The arguments of `up`.
#[derive(Args)]
pub struct UpArgs {
    /// The add-on release to install.
    #[arg(long, default_value = burstcert::certify::DEFAULT_RELEASE, value_parser = burstcert::certify::parse_release)]
    pub release: burst_rules::release::Release,
    /// `local` (the host node runs the add-on's pods as processes) or `kind` (a kind
    /// cluster from locally made images, the mock CCI in a container; needs Docker).
    #[arg(long, value_enum, default_value_t = UpClusterArg::Local)]
    pub cluster: UpClusterArg,
    /// The cluster's Kubernetes minor, e.g. `1.30` [default: the pinned one].
    #[arg(long, value_name = "MINOR", value_parser = Minor::parse)]
    pub kubernetes: Option<&'static Minor>,
}

/// Brings the environment up, prints its kubeconfig, and tears it down on Ctrl-C.
pub fn run(args: UpArgs) -> anyhow::Result<ExitCode> {
    let UpArgs {
        release,
        cluster,
        kubernetes,
    } = args;
    let setup = burstcert::env::Setup::at(release);
    let env = burstcert::env::Env::launch(
        cluster.launch(kubernetes.unwrap_or(Minor::PINNED)).as_ref(),
        &setup,
    )?;
    eprintln!(
        "burstcert: up: add-on {release} Running; cluster id {}; mock CCI at {}; Ctrl-C stops everything",
        env.cluster_id,
        env.cci.url()
    );
    println!("{}", env.kubeconfig().display());
    let runtime = tokio::runtime::Runtime::new().context("start tokio")?;
    runtime.block_on(tokio::signal::ctrl_c())?;
    env.destroy()?;
    Ok(ExitCode::SUCCESS)
}
