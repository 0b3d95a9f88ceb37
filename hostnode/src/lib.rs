//! The host node: a [`vk`] provider whose pods run as local processes, so that a real
//! (local) cluster can run real workloads without a container runtime. The harness `burstcert`
//! uses it to run the add-on's own Deployments and Jobs (virtual-kubelet, webhook, proxy, gc
//! jobs) from their manifests; nothing in it knows the add-on: images resolve to the binaries
//! the caller names ([`HostNodeOptions::images`]).
//!
//! Its unit tests are here; its tests against a real control plane are the harness's
//! (`harness/tests/cluster/host_node.rs`), which brings the cluster up.
//!
//! [`HostNode::start`] registers node [`HostNodeOptions::node_name`] (default [`HOST_NODE`];
//! labels `burstcert.dev/host-node=true`,
//! `type=host`, `kubernetes.io/os=linux`, `kubernetes.io/arch=amd64`; taint
//! `burstcert.dev/host-node=true:NoSchedule`, so only pods that tolerate it land there;
//! InternalIP 127.0.0.1) and serves it from a thread with its own tokio runtime, so it outlives
//! the runtimes of the tests that use it.
//!
//! # Images
//!
//! An image resolves only as `{registry.address}/{registry.user}/{name}[:tag][@digest]` with
//! `name` one of [`HostNodeOptions::images`]; it stands for that local binary, which is the
//! image's entrypoint. Any other image (another registry, another user, an unknown name) leaves
//! the container waiting `ErrImagePull` (`failed to pull image "X": not found in registry
//! {address}/{user}`) for 3 s, then `ImagePullBackOff` for 10 s, 20 s, … (at most 5 min), and
//! round again, with `Failed` / `BackOff` events like a kubelet's; the pod stays `Pending` and
//! nothing of it starts.
//!
//! # Processes
//!
//! - **argv** as a kubelet builds it: `command` replaces the entrypoint, `args` follow; the image
//!   holds only its binary, so `command[0]` must be the image's name, the binary's file name, or
//!   a path ending in either (or a file under a mount path, e.g. a script from a ConfigMap).
//!   Otherwise the start fails (`StartError`, exit code 128).
//! - **`$(VAR)`** references in `command`, `args` and `env` values are expanded from the
//!   container's environment by the Kubernetes rules (`$$` escapes, unknown stays literal).
//! - **environment**: exactly the container's, nothing of the harness's: `env` (`value`,
//!   `fieldRef` for `metadata.name|namespace|uid|labels['k']|annotations['k']`, `spec.nodeName`,
//!   `spec.serviceAccountName`, `status.podIP(s)`, `status.hostIP(s)`; `secretKeyRef`,
//!   `configMapKeyRef`) and `envFrom` (ConfigMaps, Secrets), read from the API at each start; a
//!   missing non-optional object or key leaves the container waiting
//!   `CreateContainerConfigError` (retried every 2 s). Besides, `PATH` (Docker's default), `HOME`
//!   (the pod folder), `HOSTNAME` (the pod name), and `KUBECONFIG` (below).
//! - Each pod gets its own loopback address, 127.100.0.1 upward (a live one is never handed out
//!   twice), reported as `podIP` (hostIP 127.0.0.1): processes bind to it (`$(POD_IP)` from
//!   `fieldRef: status.podIP`), so replicas can share a port.
//! - Every process runs under [`process::Guarded`] in its own process group, with output
//!   appended to `{logs}/pods/{ns}_{name}_{uid}/{container}.log`: it dies with the process
//!   that started the host node, however that process ends.
//! - **restarts** follow `restartPolicy` and the real exit code (`Always`; `OnFailure` on
//!   non-zero; `Never`), after 1 s, 2 s, 4 s … at most 10 s (`CrashLoopBackOff`), counting
//!   `restartCount`, with `lastState`. Init containers run one after the other to success first.
//!   The phase is the kubelet's: `Running` while a container runs or will restart, `Succeeded`
//!   when all exited 0 for good, `Failed` when all ended for good and one did not exit 0 — so
//!   the Job controller completes or fails Jobs by itself.
//! - **readiness**: a container is ready once its process runs and, with a `tcpSocket` or
//!   `httpGet` (HTTP or HTTPS, certificate not checked) readiness probe, once the probe passes
//!   (not ready again after `failureThreshold` failures). Probes run every
//!   `min(periodSeconds, 1 s)` — faster than a kubelet, so tests wait less. `exec` and `grpc`
//!   probes, and liveness and startup probes, are not run.
//! - **deletion**: SIGTERM to the process group, SIGKILL after the grace period (the deletion's,
//!   else `terminationGracePeriodSeconds`, at most 10 s; a later delete with a shorter one
//!   shortens it). `delete_pod` starts this and returns; the pod stays listed, its containers
//!   shown terminated as they stop, until its processes are gone, and the cluster pod stays
//!   `Terminating` until then (vk's termination protocol). The pod folder stays, for its logs.
//!
//! # Files and paths
//!
//! A pod's folder is `{logs}/pods/{ns}_{name}_{uid}/`. Volumes are materialized under
//! `volumes/{volume}/` when the pod starts: `configMap`, `secret` (with `items`, modes),
//! `emptyDir`, `downwardAPI` (`fieldRef` items), `projected` (the same, and
//! `serviceAccountToken`); `hostPath` is the host path itself; other types are empty folders.
//! ConfigMap and Secret changes after the start are not propagated.
//!
//! A process cannot see mount points, so **paths are rewritten**: an environment value or an
//! argument that starts with one of the container's `mountPath`s (the whole value, or the part
//! after the first `=` of an argument starting with `-`, as in `--tls-cert-file=/certs/tls.crt`)
//! has that prefix replaced by the volume's local folder (plus `subPath`); the longest matching
//! `mountPath` wins, and a prefix only matches whole path segments. `workingDir` is rewritten
//! the same way (the pod folder when unset). Values are rewritten once, after `$(VAR)`
//! expansion.
//!
//! # Service account
//!
//! Unless `automountServiceAccountToken: false`, the host node requests a token for the pod's
//! service account (TokenRequest, bound to the pod, 1 h, refreshed at 80 %) and writes
//! `serviceaccount/{token,ca.crt,namespace}` and `kubeconfig` (the admin kubeconfig's server
//! and CA, the service account as user with `tokenFile` pointing at the token, so clients pick
//! up refreshed tokens) into the pod folder; every container gets `KUBECONFIG` set to it, and
//! `/var/run/secrets/kubernetes.io/serviceaccount` rewrites to `serviceaccount/`. So the
//! add-on's RBAC is really exercised.
//!
//! # Services
//!
//! See [`service_proxy`]: Services selecting host-node pods are reachable at
//! [`service_vip`]`(namespace, name)` on each of their TCP ports ([`service_url`] for
//! `https://`). Ports below 1024 (a webhook Service's 443) need root or
//! `CAP_NET_BIND_SERVICE`, which the harness has on CI; otherwise the listener is logged as
//! failing.
//!
//! # For diagnoses and faults
//!
//! [`HostNode::pod_dir`], [`HostNode::pod_log`] and [`HostNode::newest_log`] find pod folders
//! and logs (also of pods already gone); [`HostNode::kill_containers`] SIGKILLs running
//! containers as a crash would.
//!
//! # Not done
//!
//! Liveness/startup probes, `exec`/`grpc` probes, `resourceFieldRef`, resource limits, native
//! sidecars (init containers with `restartPolicy: Always` run as ordinary init containers),
//! `kubectl logs`/`exec` through the API server (there is no kubelet port; use
//! [`HostNode::pod_log`]; the provider's `logs` honours `tailLines` and `previous`, not
//! `timestamps`), UDP Services, readiness gates.

#![warn(missing_docs)]

mod error;
mod expand;
mod image;
pub mod ips;
mod probe;
pub use probe::AcceptAny;
pub mod process;
mod provider;
mod runner;
mod sandbox;
pub mod service_proxy;
mod status;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Node;
use kube::api::Api;

pub use service_proxy::{service_url, service_vip};

/// Label on the host node naming its address block (so a CLI finds its service VIPs).
pub const ADDRESS_BLOCK_LABEL: &str = "burstcert.dev/address-block";

pub use error::{Error, Result};
use provider::HostProvider;

/// Name of the host node.
pub const HOST_NODE: &str = "burstcert-host";
/// Label (value `"true"`) of the host node, and key of its `NoSchedule` taint.
pub const HOST_NODE_LABEL: &str = "burstcert.dev/host-node";
/// Value of the host node's `type` label.
pub const HOST_NODE_TYPE: &str = "host";
/// How often pod statuses are posted.
pub const STATUS_INTERVAL: Duration = Duration::from_millis(500);
/// Default [`HostNodeOptions::ready_timeout`].
pub const DEFAULT_READY_TIMEOUT: Duration = Duration::from_secs(60);

/// The one registry that "has" the images.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Registry {
    /// Registry address, e.g. `registry.burstcert.local:5000`.
    pub address: String,
    /// The user (namespace) under it, e.g. `burstcert`.
    pub user: String,
}

/// How the host node runs.
#[derive(Clone, Debug)]
pub struct HostNodeOptions {
    /// Node name (default [`HOST_NODE`]).
    pub node_name: String,
    /// Images resolve only under `{address}/{user}/`.
    pub registry: Registry,
    /// Image repository name (e.g. `bursting-engine`) → the local binary it stands for.
    pub images: Vec<(String, PathBuf)>,
    /// The admin kubeconfig: the host node's own credentials, and the server and CA written into
    /// pods' kubeconfigs.
    pub kubeconfig: PathBuf,
    /// Folder for per-pod files and container logs (`{logs}/pods/...`).
    pub logs: PathBuf,
    /// Pod capacity.
    pub pods: u32,
    /// CPU capacity, e.g. `"8"`.
    pub cpu: String,
    /// Memory capacity, e.g. `"16Gi"`.
    pub memory: String,
    /// Second octet of the pods' loopback addresses, and the salt of the service VIPs (claim
    /// one with [`ips::claim_block`] when several host nodes may run on one machine).
    pub address_block: u8,
    /// How long [`HostNode::start`] waits for the node to be `Ready`.
    pub ready_timeout: Duration,
}

impl HostNodeOptions {
    /// Options with the defaults: node [`HOST_NODE`], 32 pods, 8 CPU, 16Gi, address block
    /// [`ips::DEFAULT_BLOCK`], [`DEFAULT_READY_TIMEOUT`].
    pub fn new(
        registry: Registry,
        images: Vec<(String, PathBuf)>,
        kubeconfig: impl Into<PathBuf>,
        logs: impl Into<PathBuf>,
    ) -> Self {
        Self {
            node_name: HOST_NODE.into(),
            registry,
            images,
            kubeconfig: kubeconfig.into(),
            logs: logs.into(),
            pods: 32,
            cpu: "8".into(),
            memory: "16Gi".into(),
            address_block: ips::DEFAULT_BLOCK,
            ready_timeout: DEFAULT_READY_TIMEOUT,
        }
    }
}

/// The node as the cluster sees it: labels, taint, capacity, InternalIP 127.0.0.1.
pub fn host_node_config(options: &HostNodeOptions) -> vk::NodeConfig {
    let mut config = vk::NodeConfig::new(&options.node_name)
        .with_label(vk::LABEL_TYPE, HOST_NODE_TYPE)
        .with_label(HOST_NODE_LABEL, "true")
        .with_label(ADDRESS_BLOCK_LABEL, options.address_block.to_string())
        .with_taint(HOST_NODE_LABEL, "true", "NoSchedule");
    config.internal_ip = "127.0.0.1".into();
    config.capacity = vk::NodeResources {
        cpu: options.cpu.clone(),
        memory: options.memory.clone(),
        pods: options.pods.to_string(),
    };
    config.os = "linux".into();
    config.arch = "amd64".into();
    config.kubelet_version = format!("v1.36.0-burstcert-host-{}", env!("CARGO_PKG_VERSION"));
    config
}

/// A running host node. Stopping it (or dropping it) stops every pod process and the node's
/// loops; the node object stays in the cluster (it goes NotReady like a stopped kubelet's).
pub struct HostNode {
    node_name: String,
    logs: PathBuf,
    provider: Arc<HostProvider>,
    stop: Option<tokio::sync::watch::Sender<bool>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl std::fmt::Debug for HostNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostNode")
            .field("node_name", &self.node_name)
            .field("logs", &self.logs)
            .finish_non_exhaustive()
    }
}

impl HostNode {
    /// Registers the node and serves it from a background thread with its own tokio runtime;
    /// returns once the node is Ready (at most [`HostNodeOptions::ready_timeout`]). Blocking: from async code, call it
    /// inside `tokio::task::spawn_blocking`.
    pub fn start(options: HostNodeOptions) -> Result<HostNode> {
        let node_name = options.node_name.clone();
        let logs = options.logs.clone();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let thread = std::thread::Builder::new()
            .name(format!("host-node-{node_name}"))
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .thread_name("host-node")
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = ready_tx.send(Err(Error::io("start the host node's runtime")(e)));
                        return;
                    }
                };
                runtime.block_on(serve(options, ready_tx, stop_rx));
            })
            .map_err(Error::io("start the host node's thread"))?;
        match ready_rx.recv() {
            Ok(Ok(provider)) => Ok(HostNode {
                node_name,
                logs,
                provider,
                stop: Some(stop_tx),
                thread: Some(thread),
            }),
            failed => {
                let _ = stop_tx.send(true);
                let _ = thread.join();
                Err(match failed {
                    Ok(Err(e)) => e,
                    _ => Error::NotStarted {
                        node: node_name,
                        detail: "its thread ended before the node was Ready".into(),
                    },
                })
            }
        }
    }

    /// The node's name.
    pub fn node_name(&self) -> &str {
        &self.node_name
    }

    /// Stops every pod process (SIGTERM, SIGKILL after at most 5 s) and the node's loops, and
    /// waits for them. Idempotent; also done on drop.
    pub fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(true);
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }

    /// The folder of pod `namespace/pod`: the live one, else the newest left by an earlier pod of
    /// that name.
    pub fn pod_dir(&self, namespace: &str, pod: &str) -> Option<PathBuf> {
        if let Some(handle) = self.provider.find(namespace, pod) {
            return Some(handle.dir.clone());
        }
        let prefix = format!("{namespace}_{pod}_");
        std::fs::read_dir(self.logs.join("pods"))
            .ok()?
            .filter_map(|e| e.ok())
            .filter(|e| {
                e.file_name()
                    .to_string_lossy()
                    .strip_prefix(&prefix)
                    .is_some_and(|uid| !uid.contains('_'))
            })
            .max_by_key(|e| e.metadata().and_then(|m| m.modified()).ok())
            .map(|e| e.path())
    }

    /// The log file of a container (every run appended, each after a `---- started by
    /// burstcert` line), if the pod ran here.
    pub fn pod_log(&self, namespace: &str, pod: &str, container: &str) -> Option<PathBuf> {
        let path = self
            .pod_dir(namespace, pod)?
            .join(format!("{container}.log"));
        path.is_file().then_some(path)
    }

    /// The newest log of container `container` among the pods whose folder names start with
    /// `prefix` (`{namespace}_{pod name prefix}`, e.g. `kube-system_bursting-webhook-`), live
    /// or gone.
    pub fn newest_log(&self, prefix: &str, container: &str) -> Option<PathBuf> {
        let file = format!("{container}.log");
        self.logs_of(prefix)
            .into_iter()
            .filter(|p| p.file_name().is_some_and(|n| *n == *file))
            .max_by_key(|p| p.metadata().and_then(|m| m.modified()).ok())
    }

    /// Every container log (`*.log`) of the pods whose folder names start with `prefix`
    /// (`{ns}_{name-prefix}`), of running pods and of pods already gone.
    pub fn logs_of(&self, prefix: &str) -> Vec<PathBuf> {
        let Ok(pods) = std::fs::read_dir(self.logs.join("pods")) else {
            return Vec::new();
        };
        let mut logs: Vec<PathBuf> = pods
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().starts_with(prefix))
            .filter_map(|e| std::fs::read_dir(e.path()).ok())
            .flat_map(|files| files.filter_map(|f| f.ok()).map(|f| f.path()))
            .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "log"))
            .collect();
        logs.sort();
        logs
    }

    /// Pids of the running processes of container `container` in the pods of `namespace`
    /// whose names start with `pod_prefix` (for measurements such as the engine's RSS).
    pub fn container_pids(&self, namespace: &str, pod_prefix: &str, container: &str) -> Vec<u32> {
        self.provider.running_pids(namespace, pod_prefix, container)
    }

    /// Kills (SIGKILL, to the whole process group) the running processes of container
    /// `container` in the pods of `namespace` whose names start with `pod_prefix`, as a crash
    /// would; the host node then restarts them per the pods' restart policy. Returns how many
    /// processes were killed.
    pub fn kill_containers(&self, namespace: &str, pod_prefix: &str, container: &str) -> usize {
        self.provider
            .running_pids(namespace, pod_prefix, container)
            .into_iter()
            .filter(|pid| {
                std::process::Command::new("kill")
                    .args(["-KILL", "--", &format!("-{pid}")])
                    .stderr(std::process::Stdio::null())
                    .status()
                    .is_ok_and(|s| s.success())
            })
            .count()
    }

    /// Where per-pod folders go.
    pub fn logs(&self) -> &Path {
        &self.logs
    }
}

impl Drop for HostNode {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Whether a node reports `Ready=True`.
pub fn node_ready(node: &Node) -> bool {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// A kube client for a kubeconfig file (its current context).
pub async fn client_for(kubeconfig: &Path) -> Result<kube::Client> {
    let invalid = |detail: String| Error::Kubeconfig {
        path: kubeconfig.to_owned(),
        detail,
    };
    let raw =
        kube::config::Kubeconfig::read_from(kubeconfig).map_err(|e| invalid(e.to_string()))?;
    let config = kube::Config::from_custom_kubeconfig(raw, &Default::default())
        .await
        .map_err(|e| invalid(e.to_string()))?;
    kube::Client::try_from(config).map_err(|source| Error::Kube {
        context: format!("make a client for kubeconfig {}", kubeconfig.display()),
        source,
    })
}

/// The host node's thread: the virtual kubelet, the service proxy, until `stop`.
async fn serve(
    options: HostNodeOptions,
    ready: std::sync::mpsc::Sender<Result<Arc<HostProvider>>>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let setup = async {
        let client = client_for(&options.kubeconfig).await?;
        let admin = sandbox::Admin::read(&options.kubeconfig)?;
        Ok::<_, Error>((client, admin))
    };
    let (client, admin) = match setup.await {
        Ok(v) => v,
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    let provider = Arc::new(HostProvider::new(
        provider::Ctx::new(client.clone(), &options, admin),
        options.address_block,
    ));
    let mut config = vk::Config::new(host_node_config(&options));
    config.status_interval = STATUS_INTERVAL;
    let shutdown = {
        let mut stop = stop.clone();
        async move {
            let _ = stop.wait_for(|s| *s).await;
        }
    };
    let mut kubelet = tokio::spawn(vk::run(
        client.clone(),
        config,
        Arc::clone(&provider),
        shutdown,
    ));
    let proxy = tokio::spawn(service_proxy::run(
        client.clone(),
        Arc::clone(&provider),
        options.address_block,
    ));

    let nodes: Api<Node> = Api::all(client.clone());
    let name = options.node_name.clone();
    // An API error is "not yet" (the API server may be restarting); the last one is reported.
    let mut last_error = None;
    let became_ready = tokio::time::timeout(options.ready_timeout, async {
        loop {
            match nodes.get_opt(&name).await {
                Ok(Some(node)) if node_ready(&node) => return,
                Ok(_) => {}
                Err(e) => last_error = Some(e),
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    tokio::select! {
        result = became_ready => match result {
            Ok(()) => {
                tracing::info!(node = %name, "host node Ready");
                let _ = ready.send(Ok(Arc::clone(&provider)));
            }
            Err(_) => {
                let mut detail = format!("not Ready after {:?}", options.ready_timeout);
                if let Some(e) = last_error {
                    detail.push_str(&format!(" (last error: {e})"));
                }
                let _ = ready.send(Err(Error::NotStarted { node: name, detail }));
                kubelet.abort();
                proxy.abort();
                return;
            }
        },
        ended = &mut kubelet => {
            let detail = match ended {
                Ok(Ok(())) => "the virtual kubelet stopped".to_owned(),
                Ok(Err(e)) => e.to_string(),
                Err(e) => e.to_string(),
            };
            let _ = ready.send(Err(Error::NotStarted { node: name, detail }));
            proxy.abort();
            return;
        }
    }
    let stopped_first = tokio::select! {
        _ = stop.wait_for(|s| *s) => true,
        ended = &mut kubelet => {
            tracing::error!(node = %name, result = ?ended.map(|r| r.map_err(|e| e.to_string())), "host node: the virtual kubelet stopped");
            false
        }
    };
    if stopped_first {
        // The kubelet's shutdown future fired too; it returns at once.
        let _ = kubelet.await;
    } else {
        let _ = stop.wait_for(|s| *s).await;
    }
    proxy.abort();
    provider.stop_all().await;
    tracing::info!(node = %name, "host node stopped");
}
