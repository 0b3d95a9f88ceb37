//! The `burstcert render`, `burstcert addon …` and `burstcert cci purge` commands.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use burst_rules::release::Release;
use clap::{Args, Subcommand, ValueEnum};

use super::lifecycle::{self, UninstallOptions};
use super::params::{ClusterType, InstallParams, NetworkMode, Spec};
use super::render::{self, Target};
use crate::progress::Progress;

/// Where the add-on's pods go.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum TargetKind {
    /// A local burstcert cluster (its host node runs the add-on's pods) if the cluster has one,
    /// otherwise production.
    Auto,
    /// A local burstcert cluster with its host node.
    Local,
    /// Any other cluster: webhooks by Service, no host-node overlay.
    Production,
}

/// Install parameters (`BEHAVIOR.md` §2). For `upgrade` and `configure`, a flag not given keeps
/// the installed value.
#[derive(Args, Debug, Clone)]
pub struct ParamsArgs {
    /// Add-on release, e.g. 1.5.18.
    #[arg(long, value_name = "X.Y.Z")]
    pub release: Option<String>,
    /// `single` (1 replica per component) or `ha` (2).
    #[arg(long)]
    pub spec: Option<String>,
    /// Network interconnect (installs the proxy).
    #[arg(long, value_name = "BOOL")]
    pub interconnect: Option<bool>,
    /// Registry address of the add-on's images (and its gc jobs).
    #[arg(long)]
    pub swr_addr: Option<String>,
    /// Registry user.
    #[arg(long)]
    pub swr_user: Option<String>,
    /// Cluster id (the CCI namespace is bursting-{id}).
    #[arg(long)]
    pub cluster_id: Option<String>,
    /// Cluster name.
    #[arg(long)]
    pub cluster_name: Option<String>,
    /// Subnet CIDR of the cluster (must not overlap 10.247.0.0/16).
    #[arg(long)]
    pub subnet_cidr: Option<String>,
    /// VPC id.
    #[arg(long)]
    pub vpc_id: Option<String>,
    /// Subnet id.
    #[arg(long)]
    pub subnet_id: Option<String>,
    /// Project id.
    #[arg(long)]
    pub project_id: Option<String>,
    /// Security group of the burst pods (on the CCI namespace's Network).
    #[arg(long)]
    pub security_group_id: Option<String>,
    /// Account (domain) id (on the CCI namespace's Network).
    #[arg(long)]
    pub domain_id: Option<String>,
    /// Base URL of the CCI API.
    #[arg(long, value_name = "URL")]
    pub cci_endpoint: Option<String>,
    /// A file holding the CCI token (stored in the add-on's Secret); or the token in the
    /// environment variable CCI_TOKEN. No flag takes the token itself: a command line is seen
    /// by everyone on the machine (`ps`).
    #[arg(long, value_name = "PATH")]
    pub cci_token_file: Option<std::path::PathBuf>,
    /// A file holding an AK/SK pair (one line AK:SK) the add-on signs every CCI request with
    /// instead of sending a token (stored in the add-on's Secret); or the pair in the
    /// environment variables CCI_ACCESS_KEY and CCI_SECRET_KEY. Not with a token.
    #[arg(long, value_name = "PATH")]
    pub cci_aksk_file: Option<std::path::PathBuf>,
    /// PEM file of the CA certificates the add-on checks the CCI endpoint against (a private
    /// endpoint); default: the system's CA roots.
    #[arg(long, value_name = "PATH")]
    pub cci_ca_file: Option<std::path::PathBuf>,
    /// Node lock duration after sold out, in seconds (a test knob; default: the engine's 30 min).
    #[arg(long)]
    pub lock_duration_secs: Option<u64>,
    /// `podDisruptionBudget`: make a PodDisruptionBudget for each component, allowing this many
    /// of its pods to be disrupted at once (e.g. by a node drain).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(i32).range(0..))]
    pub pdb_max_unavailable: Option<i32>,
}

impl ParamsArgs {
    /// `base` with every given flag applied.
    pub fn apply(&self, mut base: InstallParams) -> anyhow::Result<InstallParams> {
        if let Some(r) = &self.release {
            base.release = Release::parse(r).map_err(|e| anyhow::anyhow!("--release {r}: {e}"))?;
        }
        if let Some(s) = &self.spec {
            base.spec = s
                .parse::<Spec>()
                .map_err(|e| anyhow::anyhow!("--spec: {e}"))?;
        }
        macro_rules! set {
            ($($field:ident),*) => {$(
                if let Some(v) = &self.$field {
                    base.$field = v.clone();
                }
            )*};
        }
        set!(
            swr_addr,
            swr_user,
            cluster_id,
            cluster_name,
            subnet_cidr,
            vpc_id,
            subnet_id,
            project_id,
            security_group_id,
            domain_id,
            cci_endpoint
        );
        // One credential: a token given replaces a pair installed before, and the reverse.
        match self.auth()? {
            Some(crate::cci::CciAuth::Token(token)) => {
                base.cci_token = token;
                base.cci_aksk = None;
            }
            Some(crate::cci::CciAuth::AkSk(pair)) => {
                base.cci_token = String::new();
                base.cci_aksk = Some(format!("{}:{}", pair.access_key(), pair.secret_key()));
            }
            None => {}
        }
        if let Some(i) = self.interconnect {
            base.interconnect = i;
        }
        if let Some(path) = &self.cci_ca_file {
            base.cci_ca = Some(
                std::fs::read_to_string(path)
                    .map_err(|e| anyhow::anyhow!("--cci-ca-file {}: {e}", path.display()))?,
            );
        }
        if self.lock_duration_secs.is_some() {
            base.lock_duration_secs = self.lock_duration_secs;
        }
        if let Some(max_unavailable) = self.pdb_max_unavailable {
            base.pod_disruption_budget = Some(super::params::DisruptionBudget {
                create: true,
                max_unavailable,
            });
        }
        Ok(base)
    }

    /// The credential of `--cci-token-file` or `CCI_TOKEN`, or of `--cci-aksk-file` or
    /// `CCI_ACCESS_KEY` and `CCI_SECRET_KEY`, if one is given.
    fn auth(&self) -> anyhow::Result<Option<crate::cci::CciAuth>> {
        crate::cci::CciAuth::from_files_or_env(
            self.cci_token_file.as_deref(),
            self.cci_aksk_file.as_deref(),
        )
        .map_err(|problem| anyhow::anyhow!(problem))
    }

    /// Parameters for a fresh install: the flags over documented defaults; the identity flags
    /// are required.
    pub fn for_install(&self) -> anyhow::Result<InstallParams> {
        let base = InstallParams {
            release: Release::parse(super::params::DEFAULT_RELEASE).expect("default release"),
            spec: Spec::Single,
            interconnect: false,
            swr_addr: String::new(),
            swr_user: String::new(),
            cluster_id: String::new(),
            cluster_name: String::new(),
            network_mode: NetworkMode::Vpc,
            cluster_type: ClusterType::Standard,
            vpc_id: String::new(),
            subnet_id: String::new(),
            subnet_cidr: "192.168.0.0/16".into(),
            project_id: String::new(),
            security_group_id: String::new(),
            domain_id: String::new(),
            cci_endpoint: String::new(),
            cci_token: String::new(),
            cci_ca: None,
            lock_duration_secs: None,
            pending_lock_threshold_secs: None,
            check_resource_pressure: None,
            pod_disruption_budget: None,
            cci_aksk: None,
        };
        let params = self.apply(base)?;
        anyhow::ensure!(
            !params.cci_token.is_empty() || params.cci_aksk.is_some(),
            "a CCI credential is required to install: CCI_TOKEN (or --cci-token-file), or an AK/SK pair in CCI_ACCESS_KEY and CCI_SECRET_KEY (or --cci-aksk-file)"
        );
        for (flag, value) in [
            ("--cluster-id", &params.cluster_id),
            ("--cci-endpoint", &params.cci_endpoint),
            ("--swr-addr", &params.swr_addr),
            ("--swr-user", &params.swr_user),
        ] {
            anyhow::ensure!(!value.is_empty(), "{flag} is required to install");
        }
        Ok(params)
    }
}

/// How to reach the cluster.
#[derive(Args, Debug, Clone)]
pub struct ClusterArgs {
    /// Kubeconfig of the cluster (default: KUBECONFIG, ~/.kube/config).
    #[arg(long, value_name = "PATH")]
    pub kubeconfig: Option<PathBuf>,
    /// Where the add-on's pods go.
    #[arg(long, value_enum, default_value_t = TargetKind::Auto)]
    pub target: TargetKind,
}

/// `burstcert addon …`.
#[derive(Subcommand, Debug)]
pub enum AddonCommand {
    /// Check the preconditions, then install the add-on into kube-system and wait until it runs.
    Install {
        /// How to reach the cluster.
        #[command(flatten)]
        cluster: ClusterArgs,
        /// The parameters.
        #[command(flatten)]
        params: ParamsArgs,
    },
    /// Replace the add-on's components with another release or parameters; burst pods stay.
    Upgrade {
        /// How to reach the cluster.
        #[command(flatten)]
        cluster: ClusterArgs,
        /// The parameters.
        #[command(flatten)]
        params: ParamsArgs,
    },
    /// Return to the release and parameters before the last upgrade.
    Rollback {
        /// How to reach the cluster.
        #[command(flatten)]
        cluster: ClusterArgs,
    },
    /// Run the gc jobs, then remove everything of the add-on and the virtual node.
    Uninstall {
        /// How to reach the cluster.
        #[command(flatten)]
        cluster: ClusterArgs,
        /// How long to wait for the gc jobs before failing (DeleteFailed).
        #[arg(long, default_value_t = 210)]
        gc_timeout_secs: u64,
    },
    /// Change the recorded parameters without redeploying (used by the next upgrade or uninstall).
    Configure {
        /// How to reach the cluster.
        #[command(flatten)]
        cluster: ClusterArgs,
        /// The parameters.
        #[command(flatten)]
        params: ParamsArgs,
    },
    /// Print the add-on's status, release and parameters.
    Status {
        /// How to reach the cluster.
        #[command(flatten)]
        cluster: ClusterArgs,
    },
}

async fn connect(args: &ClusterArgs) -> anyhow::Result<(kube::Client, Target)> {
    let client = match &args.kubeconfig {
        Some(path) => crate::cluster::client_for(&crate::binaries::user_path(path)).await?,
        None => kube::Client::try_default()
            .await
            .context("no --kubeconfig given and none could be inferred")?,
    };
    let nodes: kube::Api<k8s_openapi::api::core::v1::Node> = kube::Api::all(client.clone());
    let host = nodes
        .get_opt(vk_hostnode::HOST_NODE)
        .await
        .context("look for the host node")?;
    let block = host
        .as_ref()
        .and_then(|n| n.metadata.labels.as_ref())
        .and_then(|l| l.get(vk_hostnode::ADDRESS_BLOCK_LABEL))
        .and_then(|b| b.parse().ok())
        .unwrap_or(vk_hostnode::ips::DEFAULT_BLOCK);
    let local = || Target::local(block);
    let target = match args.target {
        TargetKind::Local => local(),
        TargetKind::Production => Target::Production,
        TargetKind::Auto => {
            if host.is_some() {
                local()
            } else {
                Target::Production
            }
        }
    };
    Ok((client, target))
}

async fn installed(client: &kube::Client) -> anyhow::Result<lifecycle::AddonState> {
    lifecycle::state(client)
        .await?
        .context("the add-on is not installed on this cluster")
}

/// Runs one `burstcert addon` command.
pub async fn run(command: AddonCommand, progress: &Progress) -> anyhow::Result<()> {
    match command {
        AddonCommand::Install { cluster, params } => {
            let (client, target) = connect(&cluster).await?;
            lifecycle::install(&client, &params.for_install()?, &target, progress).await?;
        }
        AddonCommand::Upgrade { cluster, params } => {
            let (client, target) = connect(&cluster).await?;
            let next = params.apply(installed(&client).await?.params)?;
            lifecycle::upgrade(&client, &next, &target, progress).await?;
        }
        AddonCommand::Rollback { cluster } => {
            let (client, target) = connect(&cluster).await?;
            let to = lifecycle::rollback(&client, &target, progress).await?;
            eprintln!("burstcert: rolled back to {}", to.release);
        }
        AddonCommand::Uninstall {
            cluster,
            gc_timeout_secs,
        } => {
            let (client, target) = connect(&cluster).await?;
            let options = UninstallOptions {
                gc_timeout: Duration::from_secs(gc_timeout_secs),
            };
            lifecycle::uninstall(&client, &target, &options, progress).await?;
        }
        AddonCommand::Configure { cluster, params } => {
            let (client, _) = connect(&cluster).await?;
            let next = params.apply(installed(&client).await?.params)?;
            lifecycle::configure(&client, &next).await?;
        }
        AddonCommand::Status { cluster } => {
            let (client, _) = connect(&cluster).await?;
            match lifecycle::state(&client).await? {
                None => println!("not installed"),
                Some(state) => {
                    let mut shown = state.params.clone();
                    shown.cci_token = "(in Secret bursting-cci-credentials)".into();
                    // NB: the pair is as secret as the token.
                    if shown.cci_aksk.is_some() {
                        shown.cci_aksk = Some("(in Secret bursting-cci-credentials)".into());
                    }
                    println!("status:   {}", state.status);
                    println!("release:  {}", state.params.release);
                    if let Some(previous) = &state.previous {
                        println!("previous: {} (rollback returns there)", previous.release);
                    }
                    if !state.message.is_empty() {
                        println!("message:  {}", state.message);
                    }
                    println!("params:   {}", serde_json::to_string_pretty(&shown)?);
                    print!("{}", lifecycle::diagnose(&client).await);
                }
            }
        }
    }
    Ok(())
}

/// The value `burstcert render` prints for the credential Secret's token.
pub const RENDERED_TOKEN: &str = "(not printed: install reads it from CCI_TOKEN)";

/// The value `burstcert render` prints for the credential Secret's AK/SK pair.
pub const RENDERED_AKSK: &str =
    "(not printed: install reads it from CCI_ACCESS_KEY and CCI_SECRET_KEY)";

/// `burstcert render`: the add-on's objects as YAML (with a freshly generated webhook PKI).
pub fn render_yaml(params: &ParamsArgs, local: bool) -> anyhow::Result<String> {
    let mut params = params.for_install()?;
    // What is printed may be pasted, logged or committed: the Secret names where its value
    // comes from, never the value (BEHAVIOR.md §13).
    params.cci_token = RENDERED_TOKEN.into();
    if params.cci_aksk.is_some() {
        params.cci_token = String::new();
        params.cci_aksk = Some(RENDERED_AKSK.into());
    }
    let target = if local {
        Target::local(vk_hostnode::ips::DEFAULT_BLOCK)
    } else {
        Target::Production
    };
    let pki = crate::pki::generate(
        &[format!("{}.{}.svc", render::WEBHOOK, render::NAMESPACE)],
        &[],
    )?;
    Ok(render::to_yaml(&render::render(&params, &target, &pki)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Render {
        #[command(flatten)]
        params: ParamsArgs,
    }

    #[test]
    fn an_aksk_file_makes_the_add_on_sign_and_render_prints_neither_key() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("aksk");
        std::fs::write(&file, "# the tenant's pair\nRENDERAK:render-secret-key\n").unwrap();
        let args = Render::parse_from([
            "render",
            "--cluster-id=c1",
            "--cci-endpoint=https://cci.example",
            "--swr-addr=swr.example",
            "--swr-user=user",
            "--cci-aksk-file",
            file.to_str().unwrap(),
        ]);
        let params = args.params.for_install().unwrap();
        assert_eq!(
            params.cci_aksk.as_deref(),
            Some("RENDERAK:render-secret-key")
        );
        assert_eq!(params.cci_token, "");
        let yaml = render_yaml(&args.params, false).unwrap();
        assert!(
            !yaml.contains("render-secret-key"),
            "the secret key was rendered"
        );
        assert!(
            yaml.contains("--cci-aksk-file="),
            "the add-on does not sign"
        );
        assert!(
            yaml.contains(RENDERED_AKSK),
            "the Secret does not say where the pair comes from"
        );
    }
}
