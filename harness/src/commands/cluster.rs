//! `burstcert cluster`: local clusters (a real control plane and kwok nodes, as processes on
//! loopback) and the kind clusters burstcert made.

use anyhow::{Context as _, bail};
use burstcert::cluster::local::{self, LocalCluster, LocalOptions};
use burstcert::cluster::nodes::{NodeShape, create_nodes};
use burstcert::cluster::{ClusterProvider as _, client_for};
use burstcert::progress::Progress;
use burstcert::tools::{Minor, Tools};
use clap::Subcommand;

#[derive(Subcommand)]
pub enum ClusterCommand {
    /// Bring up a cluster and leave it running; prints the kubeconfig path on stdout.
    Up {
        /// Cluster name (default: a random `burstcert-xxxxxx`).
        #[arg(long)]
        name: Option<String>,
        /// Number of ordinary (kwok) nodes: 4 CPU, 16Gi, 110 pods, amd64 each.
        #[arg(long, default_value_t = 2)]
        nodes: usize,
        /// The cluster's Kubernetes minor, e.g. `1.30` [default: the pinned one].
        #[arg(long, value_name = "MINOR", value_parser = Minor::parse)]
        kubernetes: Option<&'static Minor>,
    },
    /// Stop a cluster and remove its files (default: the only cluster there is).
    Down {
        /// Cluster name.
        #[arg(long, conflicts_with = "all")]
        name: Option<String>,
        /// Remove every kind cluster and container burstcert made (`burstcert-*`, what a killed
        /// `--cluster kind` run left behind; not those a running burstcert owns) and every local
        /// cluster.
        #[arg(long)]
        all: bool,
    },
    /// List local clusters.
    List,
}

/// Runs a `cluster` subcommand.
pub fn run(command: ClusterCommand, progress: &Progress) -> anyhow::Result<()> {
    match command {
        ClusterCommand::List => {
            for name in local::list()? {
                println!("{name}\t{}", local::kubeconfig_path(&name)?.display());
            }
        }
        ClusterCommand::Down { name: _, all: true } => {
            let tools = Tools::ensure(progress)?;
            for name in local::list()? {
                local::delete(&tools, &name)?;
                eprintln!("burstcert: cluster {name} is down");
            }
            if burstcert::kind::check_docker().is_ok() {
                let kind_tools = burstcert::tools::ensure_kind(progress)?;
                burstcert::kind::delete_all(&kind_tools, &mut std::io::stderr())?;
            }
        }
        ClusterCommand::Down { name, all: false } => {
            let name = match name {
                Some(n) => n,
                None => match local::list()?.as_slice() {
                    [only] => only.clone(),
                    [] => bail!("there is no local cluster"),
                    many => bail!(
                        "there are {} clusters ({}); name one with --name",
                        many.len(),
                        many.join(", ")
                    ),
                },
            };
            let tools = Tools::ensure(progress)?;
            local::delete(&tools, &name)?;
            eprintln!("burstcert: cluster {name} is down");
        }
        ClusterCommand::Up {
            name,
            nodes,
            kubernetes,
        } => {
            let tools = Tools::ensure_for(kubernetes.unwrap_or(Minor::PINNED), progress)?;
            // Torn down if anything below fails; kept only once it is complete.
            let cluster = LocalCluster::create(
                &tools,
                LocalOptions {
                    name,
                    cleanup_at_exit: true,
                    ..LocalOptions::default()
                },
                progress,
            )?;
            let runtime = tokio::runtime::Runtime::new().context("start tokio")?;
            runtime.block_on(async {
                let client = client_for(cluster.kubeconfig()).await?;
                let shapes: Vec<NodeShape> = (0..nodes).map(NodeShape::standard).collect();
                create_nodes(&client, &shapes).await?;
                anyhow::Ok(())
            })?;
            let (name, kubeconfig) = cluster.keep_running();
            eprintln!(
                "burstcert: cluster {name} is up with {nodes} kwok nodes; `burstcert cluster down --name {name}` stops it"
            );
            println!("{}", kubeconfig.display());
        }
    }
    Ok(())
}
