//! `bursting-engine`: the reference bursting engine, one binary with subcommands. Every
//! subcommand logs to stderr (level from `RUST_LOG`, default `info`); stdout carries only the
//! lines a caller waits for. A bad flag exits with code 2 and names the flag. Where a kubeconfig
//! is used, `--kubeconfig` is optional: the usual inference applies (`KUBECONFIG`,
//! `~/.kube/config`, or the in-cluster service account). The CCI token comes from
//! `--cci-token` or the environment variable `CCI_TOKEN`; instead of a token, an AK/SK pair
//! signs every request (`SDK-HMAC-SHA256`), from the environment variables `CCI_ACCESS_KEY` and
//! `CCI_SECRET_KEY` or from `--cci-aksk-file PATH` (one line `AK:SK`); no flag takes a secret
//! key. CCI is spoken over HTTPS (or plain HTTP, for a local mock): server certificates are
//! checked against the system's CA roots, or, with `--cci-ca-file PATH` (or `CCI_CA_FILE`),
//! against the PEM bundle's CA certificates only (a private endpoint). No redirect is
//! followed. `--release X.Y.Z` is the add-on release a component runs as (the gates of
//! `burst_rules::release`).
//!
//! # `virtual-kubelet`: the virtual node
//!
//! ```text
//! CCI_TOKEN=secret bursting-engine virtual-kubelet \
//!     --kubeconfig ~/.kube/config \
//!     --cci-endpoint http://127.0.0.1:8443 \
//!     --cluster-id my-cluster [--release 1.5.18]
//! ```
//!
//! Pods bound to the node run on CCI in the namespace `bursting-{clusterID}`. New CCI pods get
//! the sidecar of `--release` (default 1.5.18; annotation `bursting.cci.io/sidecar-protocol`:
//! `v2` from 1.5.18, else `v1`), its volume gates, and record it (`bursting.cci.io/release`).
//! Pods already on CCI are never recreated or rewritten when the engine restarts at another
//! release. SIGINT or SIGTERM stops it; the node and the CCI pods are left in place.
//!
//! With `--leader-elect` (the add-on always passes it; `ha` runs two replicas) it first waits
//! to hold the Lease `kube-system/{node-name}-virtual-kubelet` (`vk::leader`; identity
//! `POD_NAME`): a waiting replica touches neither the node nor CCI. A leader that loses the lease
//! exits with an error (its pod restarts as a candidate); one stopped by a signal gives the
//! lease up, so the other replica takes over at once. RBAC: `get`, `create`, `update` on leases.
//!
//! Pod statuses are read from CCI by a watch of the namespace's pods, with a full list every
//! `--cci-resync-seconds` (default 300; `bursting_engine::cci_watch`), not by a list every
//! status round. The counts of the engine's CCI requests since start, by kind, are logged every
//! `--cci-request-log-seconds` (default 60) as `cci requests` with a JSON object `counts`.
//!
//! `kubectl logs` of burst pods: the engine serves the kubelet API (`vk::kubelet`:
//! `/containerLogs`, `/healthz`) over HTTPS on `--kubelet-listen` (default
//! `{--node-ip}:{--kubelet-port}`, which the node advertises; `off` serves nothing), with a
//! self-signed certificate made at start, and accepts only clients whose certificate a CA of
//! `--kubelet-client-ca` signed (default: the CA of the kubeconfig in use, i.e. the cluster CA
//! that signs the API server's `--kubelet-client-certificate`). `follow` answers the logs as of
//! now and ends.
//!
//! RBAC: besides the node, its lease and its pods (and their status and events), the engine
//! reads the ConfigMaps, Secrets and PersistentVolumeClaims burst pods use and watches
//! ConfigMaps and Secrets in all namespaces (metadata only), to mirror them to CCI: its identity
//! needs `get` on those three and `list`, `watch` on the first two, cluster-wide; `get` on
//! serviceaccounts, to find the token Secret of a pod's account when the pod has a projected
//! `serviceAccountToken` source (the account's UID and `secrets` list; the namespace's Secrets of
//! type `kubernetes.io/service-account-token` are listed under the `list` on Secrets); and
//! `patch` on its node, which it cordons for `--lock-duration-secs` (default 30 minutes) when CCI
//! answers sold out (see `lock`).
//!
//! # `webhook`: the admission webhook
//!
//! ```text
//! bursting-engine webhook --release 1.5.18 --listen 0.0.0.0:8443 \
//!     --tls-cert-file tls.crt --tls-key-file tls.key
//! ```
//!
//! Prints `webhook listening on https://ADDR`. RBAC: `get` on the workloads that own pods
//! (ReplicaSets, Deployments, StatefulSets, Jobs, CronJobs, DaemonSets; the Deployment
//! `volcano-scheduler` in `volcano-system` or `kube-system` tells the installed Volcano's
//! version), `list` on pods, PersistentVolumeClaims and StorageClasses, `create` on events.
//! On SIGTERM it drains for `--shutdown-delay-secs` (default 3): it keeps answering, each
//! answer with `Connection: close`, while its Service stops routing to it, then stops.
//!
//! # `proxy`: the network interconnect (BEHAVIOR.md §10)
//!
//! ```text
//! CCI_TOKEN=secret bursting-engine proxy --cci-endpoint http://127.0.0.1:8443 \
//!     --cluster-id my-cluster [--release 1.5.18] [--resync-secs 10] \
//!     [--listen 127.0.0.1:8900] [--advertise IP:PORT] [--kubeconfig PATH]
//! ```
//!
//! Serves the sidecars' tunnels on `--listen` (`CONNECT service.namespace:port`, see
//! `bursting_engine::tunnel`): each goes to a ready pod of the Service, read from the cluster.
//! Ensures the CCI namespace and keeps the `ProxyRegistration` `cluster-proxy` in it: every
//! Service (`*`), protocols `v1` (and `v2` from 1.5.18), the endpoint `--advertise` (default:
//! the address it listens on), re-asserted every `--resync-secs`. Prints `proxy registered`
//! once first registered. SIGINT or SIGTERM stops it and leaves the registration in place (a
//! rolling upgrade replaces the proxy; the uninstall gc removes it). RBAC: `get` on Services
//! and `list` on pods (to find a Service's ready pods); the CCI token.
//!
//! # `gc`: the uninstall gc (BEHAVIOR.md §8)
//!
//! ```text
//! CCI_TOKEN=secret bursting-engine gc --scope resources|namespace \
//!     --cci-endpoint http://127.0.0.1:8443 --cluster-id my-cluster
//! ```
//!
//! What the add-on's `virtual-kubelet-*-resource-gc-jobs` (`--scope resources`) and
//! `virtual-kubelet-*-namespace-gc-jobs` (`--scope namespace`) run: deletes every pod (grace 0),
//! ConfigMap, Secret, PersistentVolumeClaim, Service, ProxyRegistration and network in
//! `bursting-{clusterID}` and waits (up to 60 s) until no pod is left; with `namespace`, then
//! deletes the namespace and waits until it is gone. No other CCI namespace is touched, and a
//! second run, or a cluster with nothing on CCI, succeeds. Prints one summary line, e.g.
//! `gc namespace bursting-abc: removed 3 pods, 2 configmaps, 1 secrets, 0 pvcs, 0 services,
//! 1 proxyregistrations, 0 networks; namespace removed`, and exits 0; on an error it exits 1
//! naming the failed step. RBAC: none in the cluster; only the CCI token (list and delete in the
//! namespace, delete the namespace).

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use burst_rules::release::Release;
use bursting_engine::breakage::{self, Breakage};
use bursting_engine::cci::{ACCESS_KEY_ENV, SECRET_KEY_ENV};
use bursting_engine::gc::Scope;
use bursting_engine::lock::NodeLock;
use bursting_engine::node::{self, cci_node_config};
use bursting_engine::{CciAuth, CciClient, CciProvider, DEFAULT_RELEASE};
use clap::{Args, Parser, Subcommand};
use kube::config::{KubeConfigOptions, Kubeconfig};
use tracing_subscriber::EnvFilter;

/// Default `--pod-workers` (vk's default is 4; upstream virtual-kubelet's `--pod-sync-workers`
/// is 10). NB: measured with `burstcert bench` (1000 replicas, release build, loaded machine,
/// 2026-12-02): once the webhook stopped reading owners per pod, 16 workers took the burst to
/// Running in 40.1 s and 42.3 s (ratio to kwok nodes 1.14, 1.10), 4 workers in 48.1 s (1.20).
/// Each create is a CCI `POST` and a `PATCH` of the cluster pod; a real CCI answers slower than
/// the mock, which favours more workers still.
const DEFAULT_POD_WORKERS: u16 = 16;

/// The reference bursting engine.
#[derive(Parser)]
#[command(name = "bursting-engine", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the virtual node: pods bound to it run on CCI.
    VirtualKubelet(Box<VirtualKubeletArgs>),
    /// Serve the admission webhook (POST /mutate) over TLS.
    Webhook(WebhookArgs),
    /// Run the network-interconnect proxy: keep its registration on CCI.
    Proxy(ProxyArgs),
    /// Remove the cluster's resources (and namespace) from CCI: the uninstall gc.
    Gc(GcArgs),
}

#[derive(Args)]
struct GcArgs {
    /// What to remove: everything in the namespace, or that and the namespace itself.
    #[arg(long, value_enum)]
    scope: GcScope,
    /// Base URL of the CCI API, e.g. http://127.0.0.1:8443.
    #[arg(long, value_name = "URL")]
    cci_endpoint: String,
    #[command(flatten)]
    cci_credential: CciCredentialArgs,
    /// The cluster's ID; only the CCI namespace bursting-{ID} is touched.
    #[arg(long, value_name = "ID")]
    cluster_id: String,
}

/// How a component authenticates to CCI: a token, or an AK/SK pair that signs every request.
/// No flag takes a secret key: it comes from the environment or a file.
#[derive(Args)]
struct CciCredentialArgs {
    /// A file holding the IAM token sent as X-Auth-Token to CCI (e.g. the add-on's Secret,
    /// mounted): read again when it changes and when CCI answers 401, so a renewed token is used
    /// without a restart. Or the token in the environment variable CCI_TOKEN (read once). No
    /// flag takes a credential itself. Not with an AK/SK pair, which signs every request instead:
    /// from the environment variables CCI_ACCESS_KEY and CCI_SECRET_KEY, or --cci-aksk-file.
    #[arg(long, value_name = "PATH")]
    cci_token_file: Option<PathBuf>,
    /// A file holding the AK/SK pair that signs every CCI request (no token is sent): one line
    /// AK:SK, `#` starts a comment.
    #[arg(long, value_name = "PATH")]
    cci_aksk_file: Option<PathBuf>,
    /// A PEM file of the CA certificates CCI's serving certificate is checked against, instead
    /// of the system's CA roots (a private endpoint).
    #[arg(long, env = "CCI_CA_FILE", value_name = "PATH")]
    cci_ca_file: Option<PathBuf>,
}

impl CciCredentialArgs {
    /// The CCI client at `endpoint` with the one credential given. A credential missing, given
    /// twice or unreadable is a usage error (exit code 2), as a missing flag is.
    fn client(self, endpoint: &str) -> anyhow::Result<CciClient> {
        let ca = self.ca();
        Ok(CciClient::with_auth_and_ca(
            endpoint,
            self.auth(),
            ca.as_deref(),
        )?)
    }

    /// The CA bundle of `--cci-ca-file`, if given; unreadable, a usage error.
    fn ca(&self) -> Option<Vec<u8>> {
        self.cci_ca_file.as_ref().map(|path| {
            std::fs::read(path).unwrap_or_else(|e| {
                usage_error(format!("cannot read the CA file {}: {e}", path.display()))
            })
        })
    }

    /// The one credential given (see [`CciCredentialArgs::client`]).
    fn auth(self) -> CciAuth {
        let file = self.cci_aksk_file.as_ref().map(|path| {
            std::fs::read_to_string(path).unwrap_or_else(|e| {
                usage_error(format!(
                    "cannot read the AK/SK file {}: {e}",
                    path.display()
                ))
            })
        });
        let env = |name| std::env::var(name).ok().filter(|value| !value.is_empty());
        if let Some(path) = self.cci_token_file {
            if env(TOKEN_ENV).is_some()
                || file.is_some()
                || env(ACCESS_KEY_ENV).is_some()
                || env(SECRET_KEY_ENV).is_some()
            {
                usage_error(format!(
                    "--cci-token-file and another CCI credential ({TOKEN_ENV}, {ACCESS_KEY_ENV}/{SECRET_KEY_ENV} or --cci-aksk-file) are given: give one"
                ));
            }
            return CciAuth::TokenFile(
                bursting_engine::cci::TokenFile::open(path).unwrap_or_else(|e| usage_error(e)),
            );
        }
        CciAuth::choose(
            env(TOKEN_ENV),
            file.as_deref(),
            env(ACCESS_KEY_ENV),
            env(SECRET_KEY_ENV),
        )
        .unwrap_or_else(|problem| usage_error(problem))
    }
}

/// The environment variable a CCI token may come from (no flag takes it).
const TOKEN_ENV: &str = "CCI_TOKEN";

/// Exits as clap does for a bad command line: the message on stderr, exit code 2.
fn usage_error(message: String) -> ! {
    use clap::CommandFactory as _;
    Cli::command()
        .error(clap::error::ErrorKind::MissingRequiredArgument, message)
        .exit()
}

/// `--scope` of `gc`.
#[derive(Clone, Copy, clap::ValueEnum)]
enum GcScope {
    /// Pods, ConfigMaps, Secrets, claims, Services, proxy registrations, networks.
    Resources,
    /// All of the above, then the namespace.
    Namespace,
}

impl From<GcScope> for Scope {
    fn from(scope: GcScope) -> Self {
        match scope {
            GcScope::Resources => Scope::Resources,
            GcScope::Namespace => Scope::Namespace,
        }
    }
}

#[derive(Args)]
struct ProxyArgs {
    /// Kubeconfig file (to read Services and their pods); default: KUBECONFIG, ~/.kube/config,
    /// or in-cluster.
    #[arg(long, value_name = "PATH")]
    kubeconfig: Option<PathBuf>,
    /// Address the tunnels are served on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:8900")]
    listen: SocketAddr,
    /// The endpoint registered for sidecars, IP:PORT (e.g. a Service's address in front of the
    /// replicas); default: the address listened on.
    #[arg(long, value_name = "IP:PORT")]
    advertise: Option<SocketAddr>,
    /// Base URL of the CCI API, e.g. http://127.0.0.1:8443.
    #[arg(long, value_name = "URL")]
    cci_endpoint: String,
    #[command(flatten)]
    cci_credential: CciCredentialArgs,
    /// The cluster's ID; the registration lives in the CCI namespace bursting-{ID}.
    #[arg(long, value_name = "ID")]
    cluster_id: String,
    /// The add-on release the proxy runs as: it speaks v1, and v2 too from 1.5.18.
    #[arg(long, value_name = "X.Y.Z", default_value_t = DEFAULT_RELEASE, value_parser = parse_release)]
    release: Release,
    /// How often the registration is re-asserted, in seconds.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    resync_secs: u64,
    /// The most tunnels open at once; more are refused until one closes.
    #[arg(long, default_value_t = bursting_engine::tunnel::DEFAULT_MAX_TUNNELS, value_parser = parse_positive)]
    max_tunnels: usize,
    /// A tunnel through which nothing passed for this many seconds is closed.
    #[arg(long, default_value_t = bursting_engine::tunnel::DEFAULT_IDLE.as_secs(), value_parser = clap::value_parser!(u64).range(1..))]
    tunnel_idle_secs: u64,
}

fn parse_positive(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(e) => Err(e.to_string()),
    }
}

#[derive(Args)]
struct WebhookArgs {
    /// Kubeconfig file; default: KUBECONFIG, ~/.kube/config, or in-cluster.
    #[arg(long, value_name = "PATH")]
    kubeconfig: Option<PathBuf>,
    /// Address to listen on (port 0 picks a free port; the bound address is printed).
    #[arg(long, default_value = "127.0.0.1:8443")]
    listen: std::net::SocketAddr,
    /// PEM file with the serving certificate (chain).
    #[arg(long, value_name = "PATH")]
    tls_cert_file: PathBuf,
    /// PEM file with the serving certificate's private key.
    #[arg(long, value_name = "PATH")]
    tls_key_file: PathBuf,
    /// The add-on release whose rules apply, e.g. 1.5.18.
    #[arg(long, value_name = "X.Y.Z", value_parser = parse_release)]
    release: Release,
    /// Seconds to keep answering after SIGTERM, each answer asking its client to close the
    /// connection, before the server stops: a Service stops routing to a terminating pod only
    /// after it got SIGTERM, and a kept-alive connection closed under a request fails it.
    #[arg(long, default_value_t = 3, value_name = "SECONDS")]
    shutdown_delay_secs: u64,
}

/// The Network the flags describe: none without `--subnet-id`.
fn network_of(args: &VirtualKubeletArgs) -> Option<bursting_engine::ClusterNetwork> {
    if args.subnet_ids.is_empty() {
        return None;
    }
    let security_group_ids = if args.security_group_ids.is_empty() {
        vec![String::new()]
    } else {
        args.security_group_ids.clone()
    };
    Some(bursting_engine::ClusterNetwork {
        subnet_ids: args.subnet_ids.clone(),
        security_group_ids,
        project_id: args.project_id.clone(),
        domain_id: args.domain_id.clone(),
        ready_timeout: Duration::from_secs(args.network_ready_timeout_secs),
    })
}

#[derive(Args)]
struct VirtualKubeletArgs {
    /// Kubeconfig file; default: KUBECONFIG, ~/.kube/config, or in-cluster.
    #[arg(long, value_name = "PATH")]
    kubeconfig: Option<PathBuf>,
    /// Base URL of the CCI API, e.g. http://127.0.0.1:8443.
    #[arg(long, value_name = "URL")]
    cci_endpoint: String,
    #[command(flatten)]
    cci_credential: CciCredentialArgs,
    /// The cluster's ID; pods run in the CCI namespace bursting-{ID}.
    #[arg(long, value_name = "ID")]
    cluster_id: String,
    /// The add-on release the engine runs as: its sidecar and volume gates apply to new pods.
    #[arg(long, value_name = "X.Y.Z", default_value_t = DEFAULT_RELEASE, value_parser = parse_release)]
    release: Release,
    /// Name of the virtual node.
    #[arg(long, default_value = node::DEFAULT_NODE_NAME)]
    node_name: String,
    /// How often pod statuses are read from CCI, in milliseconds.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..))]
    status_interval_ms: u64,
    /// InternalIP address of the node.
    #[arg(long, default_value = "127.0.0.1")]
    node_ip: IpAddr,
    /// CPU capacity of the node.
    #[arg(long, default_value = node::DEFAULT_CPU)]
    node_cpu: String,
    /// Memory capacity of the node.
    #[arg(long, default_value = node::DEFAULT_MEMORY)]
    node_memory: String,
    /// Pod capacity of the node.
    #[arg(long, default_value = node::DEFAULT_PODS)]
    node_pods: String,
    /// Kubelet port advertised in the node status.
    #[arg(long, default_value_t = 10250)]
    kubelet_port: u16,
    /// Where the kubelet API (`kubectl logs` through the API server) listens: ADDR:PORT, or
    /// `off`. Default: --node-ip at --kubelet-port, where the API server calls.
    #[arg(long, value_name = "ADDR:PORT|off", value_parser = parse_kubelet_listen)]
    kubelet_listen: Option<KubeletListen>,
    /// PEM file of the CAs whose client certificates the kubelet API accepts (the API server's
    /// --kubelet-client-certificate). Default: the CA of the kubeconfig in use.
    #[arg(long, value_name = "PATH")]
    kubelet_client_ca: Option<PathBuf>,
    /// How often the node lease is renewed, in seconds.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    lease_interval_secs: u64,
    /// How many pods are created, updated or deleted on CCI at once.
    #[arg(long, default_value_t = DEFAULT_POD_WORKERS, value_parser = clap::value_parser!(u16).range(1..=256))]
    pod_workers: u16,
    /// How often the CCI pods are listed in full, in seconds; between lists the engine follows
    /// them with a watch. The bound on how long a change the watch missed could go unseen.
    #[arg(long, default_value_t = bursting_engine::cci_watch::DEFAULT_RESYNC.as_secs(), value_parser = clap::value_parser!(u64).range(1..))]
    cci_resync_seconds: u64,
    /// How often the counts of the engine's CCI requests are logged (`cci requests`), in
    /// seconds; 0 never.
    #[arg(long, default_value_t = 60, value_name = "SECONDS")]
    cci_request_log_seconds: u64,
    /// How long the node stays locked (cordoned) after CCI answers sold out, in seconds.
    #[arg(long, default_value_t = 1800, value_parser = clap::value_parser!(u64).range(1..))]
    lock_duration_secs: u64,
    /// How long a CCI pod may stay Pending for lack of capacity (`PodScheduled` False,
    /// `Unschedulable`) before the node is locked as for a sold-out, in seconds. Both locks
    /// are off when the environment has `CHECK_RESOURCE_PRESSURE=false`.
    #[arg(long, default_value_t = bursting_engine::lock::DEFAULT_PENDING_LOCK_THRESHOLD.as_secs(), value_parser = clap::value_parser!(u64).range(1..))]
    pending_lock_threshold_secs: u64,
    /// The add-on's VPC subnet (`subnet_id`), and any extra ones (repeat the flag): before its
    /// first pod the CCI namespace gets a Network on them (pods get their addresses there).
    /// Without it the engine creates no Network.
    #[arg(long = "subnet-id", value_name = "ID")]
    subnet_ids: Vec<String>,
    /// A security group of the pods' interfaces (repeatable); none: `[""]`, CCI's "deny all".
    #[arg(long = "security-group-id", value_name = "ID")]
    security_group_ids: Vec<String>,
    /// The tenant's project ID, written on the Network (`yangtse.io/project-id`).
    #[arg(long, value_name = "ID", default_value = "")]
    project_id: String,
    /// The tenant's account ID, written on the Network (`yangtse.io/domain-id`).
    #[arg(long, value_name = "ID", default_value = "")]
    domain_id: String,
    /// How long a pod waits for the Network to turn Ready before its creation fails (and is
    /// retried), in seconds.
    #[arg(long, default_value_t = 120, value_parser = clap::value_parser!(u64).range(1..))]
    network_ready_timeout_secs: u64,
    /// Elect a leader on a Lease before running the node, so several replicas (the add-on's
    /// `ha` spec) never drive it at once; the others wait and take over when it stops.
    #[arg(long)]
    leader_elect: bool,
    /// Namespace of the leader lease.
    #[arg(long, default_value = "kube-system", value_name = "NAMESPACE")]
    leader_elect_namespace: String,
    /// Name of the leader lease [default: {node-name}-virtual-kubelet].
    #[arg(long, value_name = "NAME")]
    leader_elect_lease: Option<String>,
    /// This replica's identity in the election (the pod's name) [default: {hostname}-{pid}].
    #[arg(long, env = "POD_NAME", value_name = "ID")]
    leader_elect_identity: Option<String>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    // Only a build with the feature `breakages` reads the variable (see `breakage`); a name it
    // does not know must not run an intact engine that then "passes" as a broken one.
    match bursting_engine::breakage::from_env() {
        Ok(None) => {}
        Ok(Some(b)) => tracing::warn!(
            breakage = b.name(),
            "BREAKAGE ACTIVE: {}: {}",
            b.name(),
            b.description()
        ),
        Err(e) => anyhow::bail!("refusing to start: {e}"),
    }
    match cli.command {
        Command::VirtualKubelet(args) => virtual_kubelet(*args).await,
        Command::Webhook(args) => webhook(args).await,
        Command::Proxy(args) => proxy(args).await,
        Command::Gc(args) => gc(args).await,
    }
}

/// `--kubelet-listen`.
#[derive(Clone, Copy, Debug)]
enum KubeletListen {
    /// `off`: no kubelet API.
    Off,
    /// Listen here.
    At(SocketAddr),
}

fn parse_kubelet_listen(value: &str) -> Result<KubeletListen, String> {
    if value == "off" {
        return Ok(KubeletListen::Off);
    }
    value
        .parse()
        .map(KubeletListen::At)
        .map_err(|_| format!("{value:?} is neither ADDR:PORT (e.g. 0.0.0.0:10250) nor off"))
}

/// The CA certificates (DER) the kubelet API checks client certificates against: those of
/// `file`, else the kubeconfig's CA.
fn kubelet_client_ca(file: Option<&Path>, kube: &kube::Config) -> anyhow::Result<Vec<Vec<u8>>> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject as _;
    let from_pem = |path: &Path| -> anyhow::Result<Vec<Vec<u8>>> {
        CertificateDer::pem_file_iter(path)
            .and_then(|certs| {
                certs
                    .map(|c| c.map(|c| c.to_vec()))
                    .collect::<Result<Vec<_>, _>>()
            })
            .with_context(|| format!("reading the CA certificates in {}", path.display()))
    };
    let certificates = match (file, &kube.root_cert, &kube.root_cert_file) {
        (Some(path), _, _) => from_pem(path)?,
        (None, Some(der), _) => der.clone(),
        (None, None, Some(path)) => from_pem(path)?,
        (None, None, None) => anyhow::bail!(
            "--kubelet-client-ca is needed: the kubeconfig names no CA to check the API server's client certificate against (or --kubelet-listen=off)"
        ),
    };
    anyhow::ensure!(
        !certificates.is_empty(),
        "no CA certificate for the kubelet API's clients (--kubelet-client-ca or the kubeconfig's CA)"
    );
    Ok(certificates)
}

/// `--release`: `X.Y.Z`, read by the same parser as everywhere else (clap names the flag).
fn parse_release(value: &str) -> Result<Release, String> {
    value.parse().map_err(|e: burst_rules::Error| e.to_string())
}

async fn kube_client(kubeconfig: Option<&PathBuf>) -> anyhow::Result<kube::Client> {
    kube::Client::try_from(kube_config(kubeconfig).await?).context("building the Kubernetes client")
}

/// How long a Kubernetes API answer may be silent before the connection is given up: no call
/// hangs for ever on a connection the API server dropped without a word. Watches stay well
/// inside it: the API server sends them a bookmark about every minute.
const API_READ_TIMEOUT: Duration = Duration::from_secs(120);
/// How long sending a request to the Kubernetes API may take.
const API_WRITE_TIMEOUT: Duration = Duration::from_secs(30);

async fn kube_config(kubeconfig: Option<&PathBuf>) -> anyhow::Result<kube::Config> {
    let mut config = kube_config_as_given(kubeconfig).await?;
    config.read_timeout = Some(API_READ_TIMEOUT);
    // The timeout counts from the request, not from when its pooled connection went idle.
    config.reset_reader_on_write = true;
    config.write_timeout = Some(API_WRITE_TIMEOUT);
    Ok(config)
}

async fn kube_config_as_given(kubeconfig: Option<&PathBuf>) -> anyhow::Result<kube::Config> {
    Ok(match kubeconfig {
        Some(path) => {
            let kc = Kubeconfig::read_from(path)
                .with_context(|| format!("reading kubeconfig {}", path.display()))?;
            kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
                .await
                .with_context(|| format!("loading kubeconfig {}", path.display()))?
        }
        None => kube::Config::infer()
            .await
            .context("no kubeconfig given and none could be inferred")?,
    })
}

async fn webhook(args: WebhookArgs) -> anyhow::Result<()> {
    let release = args.release;
    // NB: rustls needs one process-wide crypto provider; ring is the one kube-rs uses too.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let tls = axum_server::tls_rustls::RustlsConfig::from_pem_file(
        &args.tls_cert_file,
        &args.tls_key_file,
    )
    .await
    .with_context(|| {
        format!(
            "loading the serving certificate {} and key {}",
            args.tls_cert_file.display(),
            args.tls_key_file.display()
        )
    })?;
    let client = kube_client(args.kubeconfig.as_ref()).await?;
    let listener = std::net::TcpListener::bind(args.listen)
        .with_context(|| format!("binding {}", args.listen))?;
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    let draining = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (owners, watch_owners) = bursting_engine::webhook::OwnerCache::start(&client);
    let mut background = tokio::task::JoinSet::new();
    background.spawn(named("the owner cache's watches", watch_owners));
    background.spawn(named(
        "the serving certificate's reload",
        reload_when_changed(
            tls.clone(),
            args.tls_cert_file.clone(),
            args.tls_key_file.clone(),
        ),
    ));
    let app = bursting_engine::webhook::drain_on(
        bursting_engine::webhook::router(
            bursting_engine::webhook::WebhookState::new(client, release).with_owner_cache(owners),
        ),
        Arc::clone(&draining),
    );
    let handle = axum_server::Handle::new();
    let stop = handle.clone();
    let shutdown = shutdown_signal()?;
    let delay = Duration::from_secs(args.shutdown_delay_secs);
    tokio::spawn(async move {
        shutdown.await;
        // Drain first: keep serving while the Service stops routing here, closing each
        // connection after its answer, so that no idle kept-alive connection is left for the
        // final close to race (the API server would see its webhook call reset).
        tracing::info!(
            ?delay,
            "draining: answering with Connection: close, then stopping"
        );
        draining.store(true, std::sync::atomic::Ordering::Relaxed);
        tokio::time::sleep(delay).await;
        stop.graceful_shutdown(Some(Duration::from_secs(5)));
    });
    {
        use std::io::Write as _;
        let mut out = std::io::stdout().lock();
        writeln!(out, "webhook listening on https://{addr}")?;
        out.flush()?;
    }
    tracing::info!(%addr, release = %args.release, "serving the admission webhook");
    let serving = axum_server::from_tcp_rustls(listener, tls)?
        .handle(handle)
        .serve(app.into_make_service());
    tokio::select! {
        served = serving => served.context("serving the webhook"),
        Some(ended) = background.join_next() => Err(background_ended(ended)),
    }
}

async fn virtual_kubelet(args: VirtualKubeletArgs) -> anyhow::Result<()> {
    let network = network_of(&args);
    let cci = args.cci_credential.client(&args.cci_endpoint)?;
    let counted = cci.clone();
    // Checked before the cluster is contacted: a bad flag is reported as such.
    bursting_engine::translate::check_cluster_id(&args.cluster_id)?;
    let kubelet_listen = match args.kubelet_listen {
        None => Some(SocketAddr::new(args.node_ip, args.kubelet_port)),
        Some(KubeletListen::Off) => None,
        Some(KubeletListen::At(addr)) => Some(addr),
    };
    if let Some(addr) = kubelet_listen
        && addr.port() != args.kubelet_port
    {
        tracing::warn!(%addr, kubelet_port = args.kubelet_port, "the kubelet API listens on another port than the node advertises: the API server will not reach it");
    }
    let kube_config = kube_config(args.kubeconfig.as_ref()).await?;
    let kubelet_client_ca = match kubelet_listen {
        Some(_) => kubelet_client_ca(args.kubelet_client_ca.as_deref(), &kube_config)?,
        None => Vec::new(),
    };
    let client = kube::Client::try_from(kube_config).context("building the Kubernetes client")?;
    let shutdown = futures::FutureExt::shared(Box::pin(shutdown_signal()?));
    // NB: before anything acts on the node or on CCI: a waiting replica only waits.
    let leadership = if args.leader_elect {
        let election = vk::leader::LeaderElection::new(
            &args.leader_elect_namespace,
            args.leader_elect_lease
                .clone()
                .unwrap_or_else(|| format!("{}-virtual-kubelet", args.node_name)),
            args.leader_elect_identity.clone().unwrap_or_else(|| {
                let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
                    .map(|h| h.trim().to_owned())
                    .unwrap_or_else(|_| "virtual-kubelet".into());
                format!("{host}-{}", std::process::id())
            }),
        );
        tokio::select! {
            leadership = election.acquire(&client) => {
                Some(leadership.context("electing the leader")?)
            }
            () = shutdown.clone() => {
                tracing::info!("stopped while waiting to lead");
                return Ok(());
            }
        }
    } else {
        None
    };
    let node_lock = Arc::new(NodeLock::new(
        client.clone(),
        &args.node_name,
        Duration::from_secs(args.lock_duration_secs),
    ));
    let mut provider =
        CciProvider::new(cci, client.clone(), &args.cluster_id)?.with_release(args.release);
    // NB: with the check off the lock task still runs, so a lock taken before is released.
    let pressure = std::env::var(bursting_engine::lock::ENV_CHECK_RESOURCE_PRESSURE).ok();
    if bursting_engine::lock::resource_pressure_checked(pressure.as_deref()) {
        provider = provider
            .with_node_lock(Arc::clone(&node_lock))
            .with_pending_lock(Duration::from_secs(args.pending_lock_threshold_secs));
    } else {
        tracing::info!(
            "CHECK_RESOURCE_PRESSURE=false: the node is never locked for lack of CCI capacity"
        );
    }
    if let Some(network) = network {
        provider = provider.with_network(network);
    }
    let provider = Arc::new(provider);
    let stopping = Arc::clone(&provider);

    let mut node = cci_node_config(
        &args.node_name,
        &args.node_ip.to_string(),
        vk::NodeResources {
            cpu: args.node_cpu,
            memory: args.node_memory,
            pods: if breakage::is(Breakage::NodePodCapacityTooSmall) {
                "3".into()
            } else {
                args.node_pods
            },
        },
    );
    node.kubelet_port = i32::from(args.kubelet_port);
    let mut config = vk::Config::new(node);
    config.status_interval = Duration::from_millis(args.status_interval_ms);
    config.workers = usize::from(args.pod_workers);
    config.lease_interval = if breakage::is(Breakage::LeaseNotRenewed) {
        // Created at start, then never again within any test's patience.
        Duration::from_secs(24 * 3600)
    } else {
        Duration::from_secs(args.lease_interval_secs)
    };
    config.reregister_deleted_node = !breakage::is(Breakage::NodeNotRecreated);
    config.kubelet_listen = kubelet_listen;
    config.kubelet_client_ca = kubelet_client_ca;

    if let Err(e) = provider.ensure_namespace().await {
        // Not fatal: it is retried with the first pod.
        tracing::warn!(error = %e, namespace = provider.namespace(), "could not ensure the CCI namespace yet");
    }
    tracing::info!(
        node = %args.node_name,
        cci = %args.cci_endpoint,
        namespace = provider.namespace(),
        release = %args.release,
        "starting the virtual kubelet"
    );
    // NB: ended when this function returns (the task is aborted with the JoinSet).
    // Each task runs for ever; one that ends (a panic included) ends the process below, so the
    // pod restarts instead of running on without, say, its CCI watch.
    let mut background = tokio::task::JoinSet::new();
    background.spawn(named(
        "the watch of the cluster's objects",
        Arc::clone(&provider).watch_cluster_objects(client.clone()),
    ));
    background.spawn(named(
        "the watch of the CCI pods",
        Arc::clone(&provider).watch_cci_pods(Duration::from_secs(args.cci_resync_seconds)),
    ));
    if args.cci_request_log_seconds > 0 {
        background.spawn(named(
            "the CCI request counter",
            log_request_counts(counted, Duration::from_secs(args.cci_request_log_seconds)),
        ));
    }
    // Also at start-up: a lock that ended while the engine was down is released.
    background.spawn(named("the node lock", node_lock.run()));
    let lost = async {
        match &leadership {
            Some(leadership) => leadership.hold().await,
            None => std::future::pending().await,
        }
    };
    let result = tokio::select! {
        result = vk::run(client, config, provider, shutdown) => result.map_err(anyhow::Error::from),
        // Stop leading at once: another replica may take the node over from here on.
        lost = lost => Err(anyhow::Error::from(lost)),
        Some(ended) = background.join_next() => Err(background_ended(ended)),
    };
    background.abort_all();
    if let Some(leadership) = &leadership {
        // A no-op when the lease is someone else's by now.
        leadership.release().await;
    }
    result?;
    if breakage::is(Breakage::PodsDeletedOnShutdown) {
        delete_every_cci_pod(&stopping).await;
    }
    tracing::info!("stopped");
    Ok(())
}

/// The bug of `pods-deleted-on-shutdown`: "clean up on the way out", every CCI pod deleted
/// at once, as a drained node's pods would be.
async fn delete_every_cci_pod(provider: &CciProvider) {
    use vk::Provider as _;
    let Ok(pods) = provider.list_pods().await else {
        return;
    };
    for remote in pods {
        let mut stub = remote.to_stub_pod();
        stub.metadata.deletion_grace_period_seconds = Some(0);
        let _ = provider.delete_pod(&stub).await;
    }
}

/// How often the webhook looks whether its certificate files changed.
const CERTIFICATE_CHECK: Duration = Duration::from_secs(30);

/// Serves the certificate and key in `cert`/`key` from the moment they change (a renewed Secret,
/// as the kubelet updates its files), so a renewal needs no restart. A pair that cannot be read
/// or does not load is logged and the one in use kept.
async fn reload_when_changed(
    tls: axum_server::tls_rustls::RustlsConfig,
    cert: PathBuf,
    key: PathBuf,
) {
    let read = || (std::fs::read(&cert).ok(), std::fs::read(&key).ok());
    let mut loaded = read();
    let mut tick = tokio::time::interval(CERTIFICATE_CHECK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let now = read();
        if now == loaded {
            continue;
        }
        match tls.reload_from_pem_file(&cert, &key).await {
            Ok(()) => {
                tracing::info!(cert = %cert.display(), "serving the renewed certificate");
                loaded = now;
            }
            Err(e) => {
                tracing::warn!(cert = %cert.display(), error = %e, "a changed certificate did not load; keeping the one in use")
            }
        }
    }
}

/// `task`, answering `name` when it ends (see [`background_ended`]).
async fn named(name: &'static str, task: impl Future<Output = ()>) -> &'static str {
    task.await;
    name
}

/// The error that stops a component whose background task ended: a task meant to run for ever
/// that returned, or panicked. The process exits with it and its pod restarts.
fn background_ended(ended: Result<&'static str, tokio::task::JoinError>) -> anyhow::Error {
    match ended {
        Ok(name) => anyhow::anyhow!("{name} ended; stopping so that the pod restarts"),
        Err(e) => {
            anyhow::anyhow!("a background task failed ({e}); stopping so that the pod restarts")
        }
    }
}

/// Logs the counts of `cci`'s requests since start every `every` (`cci requests`, the counts
/// as a JSON object in the field `counts`, e.g. `{"GET list pods":2,"GET watch pods":3}`): what
/// `burstcert bench` and a person reading the engine's log compare over time.
async fn log_request_counts(cci: CciClient, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        let counts = cci.request_counts();
        let json = serde_json::to_string(&counts).unwrap_or_default();
        tracing::info!(total = counts.total(), counts = %json, "cci requests");
    }
}

async fn proxy(args: ProxyArgs) -> anyhow::Result<()> {
    bursting_engine::translate::check_cluster_id(&args.cluster_id)?;
    let ca = args.cci_credential.ca();
    let auth = args.cci_credential.auth();
    let key = bursting_engine::tunnel::key_of(&auth);
    let cci = CciClient::with_auth_and_ca(&args.cci_endpoint, auth, ca.as_deref())?;
    let client = kube_client(args.kubeconfig.as_ref()).await?;
    let shutdown = shutdown_signal()?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("listening on {} for tunnels", args.listen))?;
    let listening = listener.local_addr()?;
    let endpoint = args.advertise.unwrap_or(listening);
    anyhow::ensure!(
        !endpoint.ip().is_unspecified(),
        "--advertise is needed: sidecars cannot dial {endpoint}"
    );
    let data_path = bursting_engine::proxy::DataPath {
        endpoint: endpoint.to_string(),
        key: key.clone(),
    };
    let endpoint = endpoint.to_string();
    tracing::info!(
        cci = %args.cci_endpoint,
        namespace = %cci_api::namespace_for_cluster(&args.cluster_id),
        release = %args.release,
        protocols = ?bursting_engine::proxy::protocols(args.release),
        %listening,
        %endpoint,
        "starting the proxy"
    );
    let tunnels = tokio::spawn(bursting_engine::tunnel::serve(
        listener,
        bursting_engine::proxy::protocols(args.release),
        Arc::new(bursting_engine::tunnel::ClusterResolver::new(client)),
        bursting_engine::tunnel::Limits {
            key,
            max_tunnels: args.max_tunnels,
            idle: Duration::from_secs(args.tunnel_idle_secs),
        },
    ));
    let registered = || {
        use std::io::Write as _;
        let mut out = std::io::stdout().lock();
        // NB: a closed stdout must not stop the proxy; the log says the same.
        let _ = writeln!(out, "proxy registered").and_then(|()| out.flush());
    };
    let mut tunnels = tunnels;
    tokio::select! {
        ended = &mut tunnels => {
            return Err(background_ended(ended.map(|()| "the tunnel listener")));
        }
        () = bursting_engine::proxy::run(
            &cci,
            &args.cluster_id,
            args.release,
            Some(&data_path),
            Duration::from_secs(args.resync_secs),
            registered,
        ) => {}
        () = shutdown => {}
    }
    tunnels.abort();
    // The registration stays: a rolling upgrade replaces this pod, the uninstall gc removes it.
    tracing::info!("stopped; the proxy registration is left in place");
    Ok(())
}

async fn gc(args: GcArgs) -> anyhow::Result<()> {
    let cci = args.cci_credential.client(&args.cci_endpoint)?;
    let report = bursting_engine::gc::collect(&cci, &args.cluster_id, args.scope.into()).await?;
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{report}")?;
    out.flush()?;
    Ok(())
}

/// Completes on SIGINT or SIGTERM.
fn shutdown_signal() -> anyhow::Result<impl Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut interrupt = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    let mut terminate =
        signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => tracing::info!("SIGINT received"),
            _ = terminate.recv() => tracing::info!("SIGTERM received"),
        }
    })
}
