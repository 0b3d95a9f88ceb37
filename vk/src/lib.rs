//! A small virtual-kubelet framework.
//!
//! A virtual kubelet registers a [`Node`](k8s_openapi::api::core::v1::Node) that no machine
//! backs, keeps it alive (lease and status heartbeat), and runs the pods the scheduler binds to
//! it through a [`Provider`]: another service that creates, deletes and reports on them.
//!
//! [`run`] does all of it:
//!
//! - **node**: created or brought up to date from a [`NodeConfig`] (labels, taints, capacity,
//!   conditions `Ready`, `MemoryPressure`, `DiskPressure`, `PIDPressure`,
//!   `NetworkUnavailable`); its Lease in `kube-node-lease` renewed every
//!   [`Config::lease_interval`]; its status posted every [`Config::node_status_interval`]; the
//!   node registered again if someone deletes it.
//! - **pods**: a watch on `spec.nodeName=<node>` feeds a work queue keyed by namespace/name.
//!   A new pod is created on the provider; a pod with a deletion timestamp is deleted on the
//!   provider (which starts the deletion and returns) and stays `Terminating`, its status kept
//!   up to date, until the provider no longer has it or its grace period (plus
//!   [`TERMINATION_SLACK`]) is over; then it is removed from the cluster (grace period 0). A pod
//!   that vanishes is deleted on the provider. Transient failures are retried with backoff. See
//!   [`Provider`] for the termination protocol and what cancellation a provider must tolerate.
//! - **statuses**: every [`Config::status_interval`] one [`Provider::pod_statuses`] call; a
//!   pod's status is patched only when it changed, several patches in flight at once.
//! - **orphans**: remote pods whose cluster pod is really gone are deleted, only after the first
//!   full list of the node's pods, and only after the API server confirms the pod is gone.
//! - **kubelet API** (when [`Config::kubelet_listen`] is set): `kubectl logs` through the API
//!   server, over HTTPS with client certificates checked; see [`kubelet`].
//! - **replicas**: [`leader`] elects one of several replicas on a Lease before it runs the
//!   node; the others wait and take over when it stops renewing.
//!
//! # The smallest provider
//!
//! This one compiles and does nothing; `examples/smallest.rs` (shown in the crate's README with
//! the contract in short) runs pods in memory and reports them `Running`.
//!
//! ```no_run
//! use k8s_openapi::api::core::v1::Pod;
//! use vk::{Config, NodeConfig, Provider, ProviderResult, RemotePod};
//!
//! /// Accepts every pod and runs none of them.
//! struct Nothing;
//!
//! impl Provider for Nothing {
//!     async fn create_pod(&self, _pod: &Pod) -> ProviderResult<()> {
//!         Ok(())
//!     }
//!     async fn delete_pod(&self, _pod: &Pod) -> ProviderResult<()> {
//!         Ok(())
//!     }
//!     async fn list_pods(&self) -> ProviderResult<Vec<RemotePod>> {
//!         Ok(Vec::new())
//!     }
//! }
//!
//! # async fn start() -> Result<(), Box<dyn std::error::Error>> {
//! let client = kube::Client::try_default().await?;
//! let config = Config::new(NodeConfig::new("my-virtual-node"));
//! let shutdown = async {
//!     let _ = tokio::signal::ctrl_c().await;
//! };
//! vk::run(client, config, Nothing, shutdown).await?;
//! # Ok(())
//! # }
//! ```
#![warn(missing_docs)]

mod cache;
mod decide;
mod error;
pub mod kubelet;
pub mod leader;
mod node;
mod pods;
mod provider;
mod queue;
pub mod status;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use kube::Client;
use tokio::task::JoinSet;

pub use cache::CachedPod;
pub use error::{BoxError, Error, ProviderError, ProviderResult, Result};
pub use node::{
    DEFAULT_CPU, DEFAULT_INTERNAL_IP, DEFAULT_KUBELET_PORT, DEFAULT_MEMORY, DEFAULT_PODS, Health,
    LABEL_TYPE, NODE_LEASE_NAMESPACE, NodeConfig, NodeResources, PROVIDER_UNREACHABLE,
    TYPE_VIRTUAL_KUBELET, node_object, node_status,
};
pub use provider::{LogOptions, PodStatuses, Provider, RemotePod};

use node::NodeAgent;
use pods::PodController;

/// Default [`Config::status_interval`].
pub const DEFAULT_STATUS_INTERVAL: Duration = Duration::from_secs(1);
/// Default [`Config::lease_interval`].
pub const DEFAULT_LEASE_INTERVAL: Duration = Duration::from_secs(10);
/// Default [`Config::lease_duration_seconds`] (the kubelet's).
pub const DEFAULT_LEASE_DURATION_SECONDS: i32 = 40;
/// Default [`Config::node_status_interval`].
pub const DEFAULT_NODE_STATUS_INTERVAL: Duration = Duration::from_secs(60);
/// Default [`Config::orphan_sweep_interval`].
pub const DEFAULT_ORPHAN_SWEEP_INTERVAL: Duration = Duration::from_secs(60);
/// Default [`Config::ping_interval`].
pub const DEFAULT_PING_INTERVAL: Duration = Duration::from_secs(5);
/// Default [`Config::workers`].
pub const DEFAULT_WORKERS: usize = 4;
/// Default [`Config::retry_base`].
pub const DEFAULT_RETRY_BASE: Duration = Duration::from_millis(200);
/// Default [`Config::retry_max`].
pub const DEFAULT_RETRY_MAX: Duration = Duration::from_secs(30);
/// How long after a terminating pod's `deletionTimestamp` (the end of its grace period) the
/// controller still waits for the provider to report the remote pod gone before it removes the
/// cluster pod anyway (see the termination protocol on [`Provider`]).
///
/// NB: it covers what lies between the API server's clock and the provider's answer: the
/// watch and the work queue delivering the deletion to the provider (under a second, more in a
/// burst of deletions), the kill at the grace period's end and the remote removal (a kubelet
/// allows its SIGKILL about 2 s), one status round ([`Config::status_interval`]) to see it, and
/// a few seconds of clock skew between the API server and the controller. Longer would only
/// keep a pod that the backend lost `Terminating` for nothing.
pub const TERMINATION_SLACK: Duration = Duration::from_secs(10);

/// How the virtual kubelet runs.
#[derive(Clone, Debug)]
pub struct Config {
    /// The node to register.
    pub node: NodeConfig,
    /// How often pod statuses are read from the provider.
    pub status_interval: Duration,
    /// How often the node lease is renewed.
    pub lease_interval: Duration,
    /// `leaseDurationSeconds` of the node lease.
    pub lease_duration_seconds: i32,
    /// How often the node status (conditions' heartbeat) is posted.
    pub node_status_interval: Duration,
    /// How often remote pods are checked for orphans (the first check follows the first full
    /// list of cluster pods).
    pub orphan_sweep_interval: Duration,
    /// How often the provider is pinged ([`Provider::ping`]): a failing ping shows on the node
    /// within this interval, and so does its recovery.
    pub ping_interval: Duration,
    /// How many pods are synced concurrently. Provider calls are short (deletions start and
    /// return; see [`Provider`]), so a few workers serve many pods.
    pub workers: usize,
    /// First retry delay of a failed pod sync; doubles on each failure.
    pub retry_base: Duration,
    /// Longest retry delay.
    pub retry_max: Duration,
    /// Serve the kubelet API ([`kubelet`]: `/containerLogs`, `/healthz`) on this address;
    /// `None` (the default) serves nothing. The API server calls the node's InternalIP at
    /// [`NodeConfig::kubelet_port`], so that is what to listen on.
    pub kubelet_listen: Option<SocketAddr>,
    /// The CA certificates (DER) that sign the client certificates the kubelet API accepts: the
    /// cluster CA that signs the API server's `--kubelet-client-certificate`. Required when
    /// [`kubelet_listen`](Self::kubelet_listen) is set.
    pub kubelet_client_ca: Vec<Vec<u8>>,
    /// Register the node again when someone deletes it (the default). Off, a deleted node stays
    /// deleted until the virtual kubelet restarts, and its lease is not renewed meanwhile.
    pub reregister_deleted_node: bool,
}

impl Config {
    /// The defaults (`DEFAULT_*`) for `node`.
    pub fn new(node: NodeConfig) -> Self {
        Self {
            node,
            status_interval: DEFAULT_STATUS_INTERVAL,
            lease_interval: DEFAULT_LEASE_INTERVAL,
            lease_duration_seconds: DEFAULT_LEASE_DURATION_SECONDS,
            node_status_interval: DEFAULT_NODE_STATUS_INTERVAL,
            orphan_sweep_interval: DEFAULT_ORPHAN_SWEEP_INTERVAL,
            ping_interval: DEFAULT_PING_INTERVAL,
            workers: DEFAULT_WORKERS,
            retry_base: DEFAULT_RETRY_BASE,
            retry_max: DEFAULT_RETRY_MAX,
            kubelet_listen: None,
            kubelet_client_ca: Vec::new(),
            reregister_deleted_node: true,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Self::new(NodeConfig::default())
    }
}

/// Register the node and run its pods through `provider` until `shutdown` completes.
///
/// Shutdown stops every loop and returns `Ok`; it deregisters nothing and deletes no remote pod
/// (a restarted kubelet picks its pods up again). Registration is retried while the API server
/// is unreachable; it fails at once on a refusal (e.g. missing RBAC). With
/// [`Config::kubelet_listen`], its address is bound first, and a failure to bind it (or to set
/// up its TLS) fails at once, before the node is registered.
pub async fn run<P: Provider>(
    client: Client,
    config: Config,
    provider: P,
    shutdown: impl Future<Output = ()>,
) -> Result<()> {
    let kubelet_server = match config.kubelet_listen {
        Some(listen) => Some(kubelet::KubeletServer::bind(
            listen,
            &config.node,
            &config.kubelet_client_ca,
        )?),
        None => None,
    };
    let provider = Arc::new(provider);
    let work = async {
        let mut agent = NodeAgent::new(
            client.clone(),
            config.node.clone(),
            config.lease_duration_seconds,
        )
        .reregistering(config.reregister_deleted_node);
        let mut attempt = 0;
        while let Err(e) = agent.register().await {
            if !e.is_retryable() {
                return Err(e);
            }
            let delay = queue::backoff(config.retry_base, config.retry_max, attempt);
            attempt += 1;
            tracing::warn!(error = %e, retry_in = ?delay, "node registration failed");
            tokio::time::sleep(delay).await;
        }
        if let Err(e) = agent.renew_lease().await {
            tracing::warn!(error = %e, "first lease renewal failed");
        }

        let controller = Arc::new(PodController::new(
            client.clone(),
            &config,
            Arc::clone(&provider),
        ));
        let mut tasks = JoinSet::new();
        let (health_tx, health_rx) = tokio::sync::watch::channel(node::Health::Healthy);
        tasks.spawn(agent.keep_alive(
            config.lease_interval,
            config.node_status_interval,
            health_rx,
        ));
        let pinged = Arc::clone(&provider);
        let ping_interval = config.ping_interval;
        tasks.spawn(async move {
            let mut tick = tokio::time::interval(ping_interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let health = match pinged.ping().await {
                    Ok(()) => node::Health::Healthy,
                    Err(e) => node::Health::Unreachable(e.to_string()),
                };
                health_tx.send_if_modified(|h| {
                    let changed = *h != health;
                    *h = health;
                    changed
                });
            }
        });
        tasks.spawn(Arc::clone(&controller).watch());
        // Nothing touches pods before the first full list: an empty cache must not read as
        // "every pod is gone". NB: awaited once, here; kube-runtime's readiness future wakes only
        // the last of several concurrent waiters.
        tokio::select! {
            ready = controller.ready() => if !ready {
                return Err(Error::TaskStopped("the pod watch ended before its first list".into()));
            },
            ended = tasks.join_next() => return Err(stopped(ended)),
        }
        tracing::info!(node = %config.node.name, "virtual kubelet running");
        // After the first list: until then every pod would read as "not on this node".
        if let Some(server) = kubelet_server {
            let app = kubelet::app(
                kubelet::KubeletState::new(
                    Arc::clone(&provider),
                    controller.store(),
                    config.node.name.clone(),
                )
                .with_authorizer(client.clone()),
            );
            tracing::info!(addr = %server.addr(), "serving the kubelet API (containerLogs) over TLS");
            tasks.spawn(async move {
                if let Err(e) = server.serve(app).await {
                    tracing::error!(error = %e, "the kubelet API stopped");
                }
            });
        }
        let status_interval = config.status_interval;
        let sweep_interval = config.orphan_sweep_interval;
        let c = Arc::clone(&controller);
        tasks.spawn(async move {
            let mut tick = tokio::time::interval(status_interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                c.sync_statuses().await;
            }
        });
        let c = Arc::clone(&controller);
        tasks.spawn(async move {
            let mut tick = tokio::time::interval(sweep_interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                if let Err(e) = c.sweep_orphans().await {
                    tracing::warn!(error = %e, "orphan sweep failed");
                }
            }
        });
        for _ in 0..config.workers.max(1) {
            tasks.spawn(Arc::clone(&controller).work());
        }

        // Every task loops forever: one ending is a bug, reported rather than limped along with.
        let ended = tasks.join_next().await;
        controller.queue.close();
        Err(stopped(ended))
    };
    tokio::select! {
        result = work => result,
        () = shutdown => {
            tracing::info!("shutdown requested; stopping the virtual kubelet");
            Ok(())
        }
    }
}

/// The error for a background task that ended (they all loop forever).
fn stopped(ended: Option<Result<(), tokio::task::JoinError>>) -> Error {
    Error::TaskStopped(match ended {
        Some(Err(e)) if e.is_panic() => format!("a task panicked: {e}"),
        Some(Err(e)) => e.to_string(),
        _ => "a task returned".into(),
    })
}
