//! The virtual node: its configuration, registration, lease and status heartbeat.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::StreamExt as _;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::{
    DaemonEndpoint, Node, NodeAddress, NodeCondition, NodeDaemonEndpoints, NodeSpec, NodeStatus,
    NodeSystemInfo, Taint,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, OwnerReference, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Patch, PatchParams, PostParams};
use kube::runtime::WatchStreamExt as _;
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client};

use crate::error::api_code;
use crate::{Error, Result};

/// Namespace holding the node leases.
pub const NODE_LEASE_NAMESPACE: &str = "kube-node-lease";
/// Label every virtual node carries by default: `type=virtual-kubelet`.
pub const LABEL_TYPE: &str = "type";
/// Value of [`LABEL_TYPE`].
pub const TYPE_VIRTUAL_KUBELET: &str = "virtual-kubelet";

/// Default CPU capacity of a node.
pub const DEFAULT_CPU: &str = "20";
/// Default memory capacity of a node.
pub const DEFAULT_MEMORY: &str = "100Gi";
/// Default pod capacity of a node.
pub const DEFAULT_PODS: &str = "110";
/// Default internal IP of a node.
pub const DEFAULT_INTERNAL_IP: &str = "127.0.0.1";
/// Default kubelet port advertised in the node status.
pub const DEFAULT_KUBELET_PORT: i32 = 10250;

/// CPU, memory and pod count, as Kubernetes quantities (`"2000"`, `"8Ti"`, `"5000"`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeResources {
    /// CPU cores, e.g. `"2000"` or `"500m"`.
    pub cpu: String,
    /// Memory, e.g. `"8Ti"`.
    pub memory: String,
    /// Maximum number of pods.
    pub pods: String,
}

impl Default for NodeResources {
    fn default() -> Self {
        Self {
            cpu: DEFAULT_CPU.into(),
            memory: DEFAULT_MEMORY.into(),
            pods: DEFAULT_PODS.into(),
        }
    }
}

impl NodeResources {
    fn to_map(&self) -> BTreeMap<String, Quantity> {
        BTreeMap::from([
            ("cpu".to_string(), Quantity(self.cpu.clone())),
            ("memory".to_string(), Quantity(self.memory.clone())),
            ("pods".to_string(), Quantity(self.pods.clone())),
        ])
    }
}

/// What the virtual node looks like to the cluster.
#[derive(Clone, Debug, PartialEq)]
pub struct NodeConfig {
    /// Node name.
    pub name: String,
    /// Extra labels. `kubernetes.io/hostname`, `kubernetes.io/os` and `kubernetes.io/arch` are
    /// always set from the fields below; a label here with the same key overrides them.
    pub labels: BTreeMap<String, String>,
    /// Taints. Taints other actors put on the node under other keys are kept on re-registration.
    pub taints: Vec<Taint>,
    /// Capacity.
    pub capacity: NodeResources,
    /// Allocatable; `None` means the same as the capacity.
    pub allocatable: Option<NodeResources>,
    /// The `InternalIP` address of the node.
    pub internal_ip: String,
    /// The kubelet port advertised in `status.daemonEndpoints`.
    pub kubelet_port: i32,
    /// Operating system (`kubernetes.io/os`).
    pub os: String,
    /// Architecture (`kubernetes.io/arch`).
    pub arch: String,
    /// The kubelet version reported in `status.nodeInfo`.
    pub kubelet_version: String,
}

impl NodeConfig {
    /// A node named `name` with the defaults: label `type=virtual-kubelet`, no taints, capacity
    /// [`DEFAULT_CPU`] / [`DEFAULT_MEMORY`] / [`DEFAULT_PODS`], IP [`DEFAULT_INTERNAL_IP`],
    /// port [`DEFAULT_KUBELET_PORT`], `linux` / `amd64`.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            labels: BTreeMap::from([(LABEL_TYPE.to_string(), TYPE_VIRTUAL_KUBELET.to_string())]),
            taints: Vec::new(),
            capacity: NodeResources::default(),
            allocatable: None,
            internal_ip: DEFAULT_INTERNAL_IP.into(),
            kubelet_port: DEFAULT_KUBELET_PORT,
            os: "linux".into(),
            arch: "amd64".into(),
            kubelet_version: format!("v0.0.0-vk-{}", env!("CARGO_PKG_VERSION")),
        }
    }

    /// Add or replace a label.
    pub fn with_label(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.labels.insert(key.into(), value.into());
        self
    }

    /// Add a taint (key, value, effect such as `NoSchedule`).
    pub fn with_taint(
        mut self,
        key: impl Into<String>,
        value: impl Into<String>,
        effect: impl Into<String>,
    ) -> Self {
        self.taints.push(Taint {
            key: key.into(),
            value: Some(value.into()),
            effect: effect.into(),
            time_added: None,
        });
        self
    }

    /// The labels the node object carries: well-known ones, then [`NodeConfig::labels`].
    pub fn node_labels(&self) -> BTreeMap<String, String> {
        let mut labels = BTreeMap::from([
            ("kubernetes.io/hostname".to_string(), self.name.clone()),
            ("kubernetes.io/os".to_string(), self.os.clone()),
            ("kubernetes.io/arch".to_string(), self.arch.clone()),
        ]);
        labels.extend(self.labels.clone());
        labels
    }
}

impl Default for NodeConfig {
    fn default() -> Self {
        Self::new("virtual-kubelet")
    }
}

fn condition(
    type_: &str,
    status: &str,
    reason: &str,
    message: &str,
    now: &Timestamp,
) -> NodeCondition {
    NodeCondition {
        type_: type_.into(),
        status: status.into(),
        reason: Some(reason.into()),
        message: Some(message.into()),
        last_heartbeat_time: Some(Time(*now)),
        last_transition_time: Some(Time(*now)),
    }
}

/// Reason of the node's `Ready=False` condition while the provider's ping fails.
pub const PROVIDER_UNREACHABLE: &str = "ProviderUnreachable";

/// The node's health as the provider's last ping found it ([`crate::Provider::ping`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Health {
    /// The last ping succeeded (or none failed yet).
    #[default]
    Healthy,
    /// The last ping failed, with its error.
    Unreachable(String),
}

/// The node status the kubelet reports: conditions (`Ready` from `health`, no pressure),
/// capacity, addresses, node info.
///
/// `transition` is the time the conditions last changed (registration, or the last change of
/// health).
pub fn node_status(
    config: &NodeConfig,
    health: &Health,
    transition: &Timestamp,
    now: &Timestamp,
) -> NodeStatus {
    let ready = match health {
        Health::Healthy => condition(
            "Ready",
            "True",
            "KubeletReady",
            "kubelet is posting ready status",
            now,
        ),
        Health::Unreachable(error) => condition(
            "Ready",
            "False",
            PROVIDER_UNREACHABLE,
            &format!("the provider does not answer: {error}"),
            now,
        ),
    };
    let mut conditions = vec![
        ready,
        condition(
            "MemoryPressure",
            "False",
            "KubeletHasSufficientMemory",
            "kubelet has sufficient memory available",
            now,
        ),
        condition(
            "DiskPressure",
            "False",
            "KubeletHasNoDiskPressure",
            "kubelet has no disk pressure",
            now,
        ),
        condition(
            "PIDPressure",
            "False",
            "KubeletHasSufficientPID",
            "kubelet has sufficient PID available",
            now,
        ),
        condition(
            "NetworkUnavailable",
            "False",
            "RouteCreated",
            "virtual node network is always available",
            now,
        ),
    ];
    for c in &mut conditions {
        c.last_transition_time = Some(Time(*transition));
    }
    NodeStatus {
        capacity: Some(config.capacity.to_map()),
        allocatable: Some(
            config
                .allocatable
                .as_ref()
                .unwrap_or(&config.capacity)
                .to_map(),
        ),
        conditions: Some(conditions),
        addresses: Some(vec![
            NodeAddress {
                type_: "InternalIP".into(),
                address: config.internal_ip.clone(),
            },
            NodeAddress {
                type_: "Hostname".into(),
                address: config.name.clone(),
            },
        ]),
        daemon_endpoints: Some(NodeDaemonEndpoints {
            kubelet_endpoint: Some(DaemonEndpoint {
                port: config.kubelet_port,
            }),
        }),
        node_info: Some(NodeSystemInfo {
            architecture: config.arch.clone(),
            operating_system: config.os.clone(),
            kubelet_version: config.kubelet_version.clone(),
            container_runtime_version: "vk://".into(),
            // The rest (kernel, OS image, machine and boot IDs…) are empty: no host to describe.
            ..NodeSystemInfo::default()
        }),
        ..NodeStatus::default()
    }
}

/// The node's lease in `kube-node-lease`, held by the node, renewed `now`, owned by the node
/// (`node_uid`) so it goes when the node is deleted.
pub fn node_lease(name: &str, node_uid: Option<&str>, seconds: i32, now: Timestamp) -> Lease {
    Lease {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            namespace: Some(NODE_LEASE_NAMESPACE.into()),
            owner_references: node_uid.map(|uid| {
                vec![OwnerReference {
                    api_version: "v1".into(),
                    kind: "Node".into(),
                    name: name.to_owned(),
                    uid: uid.to_owned(),
                    ..OwnerReference::default()
                }]
            }),
            ..ObjectMeta::default()
        },
        spec: Some(LeaseSpec {
            holder_identity: Some(name.to_owned()),
            lease_duration_seconds: Some(seconds),
            renew_time: Some(MicroTime(now)),
            ..LeaseSpec::default()
        }),
    }
}

/// The full node object to create.
pub fn node_object(config: &NodeConfig, now: &Timestamp) -> Node {
    Node {
        metadata: ObjectMeta {
            name: Some(config.name.clone()),
            labels: Some(config.node_labels()),
            ..ObjectMeta::default()
        },
        spec: Some(NodeSpec {
            taints: (!config.taints.is_empty()).then(|| config.taints.clone()),
            ..NodeSpec::default()
        }),
        status: Some(node_status(config, &Health::Healthy, now, now)),
    }
}

/// Our taints, plus the ones other actors set under other keys (a cordon, a node lock).
fn merged_taints(existing: &[Taint], ours: &[Taint]) -> Vec<Taint> {
    existing
        .iter()
        .filter(|t| !ours.iter().any(|o| o.key == t.key && o.effect == t.effect))
        .cloned()
        .chain(ours.iter().cloned())
        .collect()
}

/// The merge patch that brings an existing node up to date: our labels and taints. It names
/// nothing else of the spec, so a cordon (`spec.unschedulable`, e.g. a node lock) survives
/// re-registration.
fn meta_patch(config: &NodeConfig, current_taints: &[Taint]) -> serde_json::Value {
    serde_json::json!({
        "metadata": { "labels": config.node_labels() },
        "spec": { "taints": merged_taints(current_taints, &config.taints) },
    })
}

/// What the watch of the node's own object tells the agent to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum NodeWatch {
    /// Nothing.
    Keep,
    /// The node is gone: register it again now, not at the next heartbeat.
    Reregister,
}

/// Decides on one event of the watch of the node's own object (`metadata.name=<node>`).
/// `listed` tracks whether the current (re)list contained the node: a list that ends without it
/// means it was deleted while the watch was down.
pub(crate) fn on_node_event<K>(event: &Event<K>, listed: &mut bool) -> NodeWatch {
    match event {
        Event::Delete(_) => NodeWatch::Reregister,
        Event::Init => {
            *listed = false;
            NodeWatch::Keep
        }
        Event::InitApply(_) => {
            *listed = true;
            NodeWatch::Keep
        }
        Event::InitDone if !*listed => NodeWatch::Reregister,
        Event::InitDone | Event::Apply(_) => NodeWatch::Keep,
    }
}

/// Registers the node and keeps it alive: lease renewals and status heartbeats.
pub(crate) struct NodeAgent {
    nodes: Api<Node>,
    leases: Api<Lease>,
    config: NodeConfig,
    lease_duration_seconds: i32,
    /// The provider's health as last reported.
    health: Health,
    /// When the conditions last changed: registration, or the last change of health.
    transition: Timestamp,
    /// UID of the node object we registered (owner of the lease).
    uid: Option<String>,
    /// Whether a deleted node is registered again ([`crate::Config::reregister_deleted_node`]).
    reregister: bool,
}

impl NodeAgent {
    pub(crate) fn new(client: Client, config: NodeConfig, lease_duration_seconds: i32) -> Self {
        Self {
            nodes: Api::all(client.clone()),
            leases: Api::namespaced(client, NODE_LEASE_NAMESPACE),
            config,
            lease_duration_seconds,
            health: Health::Healthy,
            transition: Timestamp::now(),
            uid: None,
            reregister: true,
        }
    }

    /// Whether a deleted node is registered again (see [`crate::Config::reregister_deleted_node`]).
    pub(crate) fn reregistering(mut self, reregister: bool) -> Self {
        self.reregister = reregister;
        self
    }

    /// Create the node, or bring an existing one up to date (labels, our taints, status).
    pub(crate) async fn register(&mut self) -> Result<()> {
        let name = self.config.name.clone();
        let now = Timestamp::now();
        self.transition = now;
        let existing = self
            .nodes
            .get_opt(&name)
            .await
            .map_err(|e| Error::kube(format!("get node {name}"), e))?;
        let node = match existing {
            None => {
                let node = node_object(&self.config, &now);
                match self.nodes.create(&PostParams::default(), &node).await {
                    Ok(created) => {
                        tracing::info!(node = %name, "registered node");
                        created
                    }
                    Err(e) if api_code(&e) == Some(409) => self.update_meta(None).await?,
                    Err(e) => return Err(Error::kube(format!("create node {name}"), e)),
                }
            }
            Some(existing) => {
                tracing::info!(node = %name, "node exists; updating it");
                self.update_meta(Some(&existing)).await?
            }
        };
        self.uid = node.metadata.uid.clone();
        self.patch_status().await?;
        Ok(())
    }

    async fn update_meta(&self, existing: Option<&Node>) -> Result<Node> {
        let name = &self.config.name;
        let existing = match existing {
            Some(n) => n.clone(),
            None => self
                .nodes
                .get(name)
                .await
                .map_err(|e| Error::kube(format!("get node {name}"), e))?,
        };
        let current_taints = existing
            .spec
            .as_ref()
            .and_then(|s| s.taints.clone())
            .unwrap_or_default();
        let patch = meta_patch(&self.config, &current_taints);
        self.nodes
            .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map_err(|e| Error::kube(format!("update node {name}"), e))
    }

    async fn patch_status(&self) -> Result<()> {
        let name = &self.config.name;
        let status = node_status(
            &self.config,
            &self.health,
            &self.transition,
            &Timestamp::now(),
        );
        let patch = serde_json::json!({ "status": status });
        self.nodes
            .patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map_err(|e| Error::kube(format!("patch status of node {name}"), e))?;
        Ok(())
    }

    /// Post the status heartbeat; recreate the node if someone deleted it.
    pub(crate) async fn heartbeat(&mut self) -> Result<()> {
        match self.patch_status().await {
            Err(Error::Kube { source, .. })
                if api_code(&source) == Some(404) && self.reregister =>
            {
                tracing::warn!(node = %self.config.name, "node was deleted; registering it again");
                self.register().await
            }
            other => other,
        }
    }

    /// Renew the node lease, creating it (owned by the node) when missing.
    pub(crate) async fn renew_lease(&mut self) -> Result<()> {
        let name = self.config.name.clone();
        let patch = serde_json::json!({
            "spec": {
                "holderIdentity": name,
                "leaseDurationSeconds": self.lease_duration_seconds,
                "renewTime": MicroTime(Timestamp::now()),
            }
        });
        match self
            .leases
            .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if api_code(&e) == Some(404) => {
                // The lease is owned by the node: gone together means the node was deleted.
                if self
                    .nodes
                    .get_opt(&name)
                    .await
                    .map_err(|e| Error::kube(format!("get node {name}"), e))?
                    .is_none()
                {
                    if !self.reregister {
                        // Owned by the node: a lease made now would name the deleted one.
                        return Ok(());
                    }
                    tracing::warn!(node = %name, "node was deleted; registering it again");
                    self.register().await?;
                }
                self.create_lease().await
            }
            Err(e) => Err(Error::kube(format!("renew lease {name}"), e)),
        }
    }

    async fn create_lease(&self) -> Result<()> {
        let name = &self.config.name;
        let lease = node_lease(
            name,
            self.uid.as_deref(),
            self.lease_duration_seconds,
            Timestamp::now(),
        );
        match self.leases.create(&PostParams::default(), &lease).await {
            Ok(_) => Ok(()),
            // Someone (a previous run) created it between our patch and create: renewed next tick.
            Err(e) if api_code(&e) == Some(409) => Ok(()),
            Err(e) => Err(Error::kube(format!("create lease {name}"), e)),
        }
    }

    /// Takes the provider's health; a change is posted at once (with a new transition time).
    async fn set_health(&mut self, health: Health) {
        if health == self.health {
            return;
        }
        match &health {
            Health::Healthy => {
                tracing::info!(node = %self.config.name, "provider answers again; node Ready")
            }
            Health::Unreachable(e) => {
                tracing::warn!(node = %self.config.name, error = %e, "provider does not answer; node NotReady")
            }
        }
        self.health = health;
        self.transition = Timestamp::now();
        if let Err(e) = self.heartbeat().await {
            tracing::warn!(error = %e, "node status update failed");
        }
    }

    /// Registers the node again after it was deleted (and its lease with it), retrying with the
    /// next event or tick on failure.
    async fn reregister(&mut self) {
        tracing::warn!(node = %self.config.name, "node was deleted; registering it again");
        if let Err(e) = self.register().await {
            tracing::warn!(error = %e, "registering the node again failed");
            return;
        }
        if let Err(e) = self.renew_lease().await {
            tracing::warn!(error = %e, "lease renewal after registering again failed");
        }
    }

    /// Renew the lease every `lease_interval`, post the status every `status_interval` and at
    /// once when `health` changes, and register the node again as soon as a watch of it sees
    /// it deleted, forever; failures are logged and retried on the next tick.
    ///
    /// The watch is why a deleted node is back within a second rather than at the next lease
    /// or status tick: while the node is missing, kube-controller-manager's pod GC may judge
    /// every pod bound to it orphaned and force-delete them.
    pub(crate) async fn keep_alive(
        mut self,
        lease_interval: Duration,
        status_interval: Duration,
        mut health: tokio::sync::watch::Receiver<Health>,
    ) {
        let mut lease_tick = tokio::time::interval(lease_interval);
        let mut status_tick = tokio::time::interval(status_interval);
        lease_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        status_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // The first status tick fires at once; registration just posted it.
        status_tick.tick().await;
        let mut pinging = true;
        let own = watcher::Config::default().fields(&format!("metadata.name={}", self.config.name));
        let events = watcher::watcher(self.nodes.clone(), own).default_backoff();
        futures::pin_mut!(events);
        let mut watching = true;
        let mut listed = true;
        loop {
            tokio::select! {
                event = events.next(), if watching => match event {
                    Some(Ok(event)) => {
                        if on_node_event(&event, &mut listed) == NodeWatch::Reregister
                            && self.reregister
                        {
                            self.reregister().await;
                        }
                    }
                    Some(Err(e)) => tracing::warn!(error = %e, "watch of the node failed; retrying"),
                    // Never ends (it backs off and retries); the heartbeat still re-registers.
                    None => watching = false,
                },
                _ = lease_tick.tick() => {
                    if let Err(e) = self.renew_lease().await {
                        tracing::warn!(error = %e, "lease renewal failed");
                    }
                }
                _ = status_tick.tick() => {
                    if let Err(e) = self.heartbeat().await {
                        tracing::warn!(error = %e, "node status heartbeat failed");
                    }
                }
                changed = health.changed(), if pinging => {
                    if changed.is_err() {
                        // The pinger is gone (shutting down): keep the last health.
                        pinging = false;
                        continue;
                    }
                    let now = health.borrow_and_update().clone();
                    self.set_health(now).await;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_node_lease_is_held_and_owned_by_the_node_and_renewed_now() {
        let now = Timestamp::from_second(1_700_000_000).unwrap();
        let lease = node_lease("bursting-node", Some("node-uid"), 40, now);
        assert_eq!(lease.metadata.name.as_deref(), Some("bursting-node"));
        assert_eq!(lease.metadata.namespace.as_deref(), Some("kube-node-lease"));
        let owner = &lease.metadata.owner_references.unwrap()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.name.as_str(), owner.uid.as_str()),
            ("Node", "bursting-node", "node-uid")
        );
        let spec = lease.spec.unwrap();
        assert_eq!(spec.holder_identity.as_deref(), Some("bursting-node"));
        assert_eq!(spec.lease_duration_seconds, Some(40));
        assert_eq!(spec.renew_time, Some(MicroTime(now)));
        // Before the node is known, no owner.
        assert!(
            node_lease("n", None, 40, now)
                .metadata
                .owner_references
                .is_none()
        );
    }

    #[test]
    fn node_object_carries_well_known_labels_taints_and_capacity() {
        let config = NodeConfig::new("bursting-node")
            .with_label("type", "virtual-kubelet")
            .with_taint("virtual-kubelet.io/provider", "cci", "NoSchedule");
        let node = node_object(&config, &Timestamp::now());
        assert_eq!(node.metadata.name.as_deref(), Some("bursting-node"));
        let labels = node.metadata.labels.unwrap();
        assert_eq!(labels["kubernetes.io/hostname"], "bursting-node");
        assert_eq!(labels["kubernetes.io/os"], "linux");
        assert_eq!(labels["type"], "virtual-kubelet");
        let taints = node.spec.unwrap().taints.unwrap();
        assert_eq!(taints[0].key, "virtual-kubelet.io/provider");
        let status = node.status.unwrap();
        assert_eq!(status.capacity.unwrap()["pods"], Quantity("110".into()));
        let types: Vec<_> = status
            .conditions
            .unwrap()
            .into_iter()
            .map(|c| (c.type_, c.status))
            .collect();
        assert!(types.contains(&("Ready".into(), "True".into())));
        assert!(types.contains(&("NetworkUnavailable".into(), "False".into())));
    }

    #[test]
    fn an_unreachable_provider_turns_ready_false_naming_the_reason_and_the_error() {
        let config = NodeConfig::new("bursting-node");
        let (then, now) = (Timestamp::UNIX_EPOCH, Timestamp::now());
        let status = node_status(
            &config,
            &Health::Unreachable("503 Service Unavailable".into()),
            &then,
            &now,
        );
        let conditions = status.conditions.unwrap();
        let ready = conditions.iter().find(|c| c.type_ == "Ready").unwrap();
        assert_eq!(ready.status, "False");
        assert_eq!(ready.reason.as_deref(), Some(PROVIDER_UNREACHABLE));
        assert!(
            ready
                .message
                .as_deref()
                .unwrap()
                .contains("503 Service Unavailable")
        );
        assert_eq!(ready.last_transition_time, Some(Time(then)));
        assert_eq!(ready.last_heartbeat_time, Some(Time(now)));
        // The other conditions say nothing about the provider.
        for c in conditions.iter().filter(|c| c.type_ != "Ready") {
            assert_eq!(c.status, "False", "{}", c.type_);
        }
        let healthy = node_status(&config, &Health::Healthy, &then, &now);
        let ready = healthy
            .conditions
            .unwrap()
            .into_iter()
            .find(|c| c.type_ == "Ready")
            .unwrap();
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_deref()),
            ("True", Some("KubeletReady"))
        );
    }

    #[test]
    fn the_status_carries_room_addresses_the_kubelet_port_and_node_info() {
        let mut config = NodeConfig::new("bursting-node");
        config.internal_ip = "10.1.2.3".into();
        config.kubelet_port = 10999;
        let now = Timestamp::now();
        let status = node_status(&config, &Health::Healthy, &now, &now);
        // Without its own allocatable the node offers its whole capacity.
        assert_eq!(status.allocatable, status.capacity);
        assert_eq!(
            status.capacity.as_ref().unwrap()["pods"],
            Quantity("110".into())
        );
        let addresses: Vec<(String, String)> = status
            .addresses
            .unwrap()
            .into_iter()
            .map(|a| (a.type_, a.address))
            .collect();
        assert_eq!(
            addresses,
            vec![
                ("InternalIP".to_owned(), "10.1.2.3".to_owned()),
                ("Hostname".to_owned(), "bursting-node".to_owned())
            ]
        );
        let port = status
            .daemon_endpoints
            .unwrap()
            .kubelet_endpoint
            .unwrap()
            .port;
        assert_eq!(port, 10999);
        let info = status.node_info.unwrap();
        assert_eq!(info.kubelet_version, config.kubelet_version);
        assert_eq!(info.container_runtime_version, "vk://");
        assert_eq!(
            (info.operating_system.as_str(), info.architecture.as_str()),
            ("linux", "amd64")
        );
        config.allocatable = Some(NodeResources {
            pods: "7".into(),
            ..NodeResources::default()
        });
        let status = node_status(&config, &Health::Healthy, &now, &now);
        assert_eq!(status.allocatable.unwrap()["pods"], Quantity("7".into()));
    }

    #[test]
    fn the_node_is_registered_again_when_deleted_or_missing_from_a_relist() {
        let node = Node::default();
        let mut listed = true;
        let cases: [(Event<Node>, NodeWatch); 7] = [
            (Event::Apply(node.clone()), NodeWatch::Keep),
            (Event::Delete(node.clone()), NodeWatch::Reregister),
            // A relist that finds the node.
            (Event::Init, NodeWatch::Keep),
            (Event::InitApply(node.clone()), NodeWatch::Keep),
            (Event::InitDone, NodeWatch::Keep),
            // A relist that does not: deleted while the watch was down.
            (Event::Init, NodeWatch::Keep),
            (Event::InitDone, NodeWatch::Reregister),
        ];
        for (i, (event, want)) in cases.iter().enumerate() {
            assert_eq!(
                on_node_event(event, &mut listed),
                *want,
                "event {i}: {event:?}"
            );
        }
    }

    #[test]
    fn re_registration_leaves_a_cordon_alone() {
        let config = NodeConfig::new("bursting-node").with_taint("k", "v", "NoSchedule");
        let patch = meta_patch(&config, &[]);
        let spec = patch["spec"].as_object().unwrap();
        assert_eq!(spec.keys().collect::<Vec<_>>(), vec!["taints"]);
        assert!(patch.get("status").is_none());
    }

    #[test]
    fn merged_taints_keep_foreign_keys_and_replace_ours() {
        let foreign = Taint {
            key: "node.kubernetes.io/unschedulable".into(),
            effect: "NoSchedule".into(),
            ..Taint::default()
        };
        let old_ours = Taint {
            key: "virtual-kubelet.io/provider".into(),
            value: Some("old".into()),
            effect: "NoSchedule".into(),
            ..Taint::default()
        };
        let ours = Taint {
            value: Some("cci".into()),
            ..old_ours.clone()
        };
        let merged = merged_taints(&[foreign.clone(), old_ours], std::slice::from_ref(&ours));
        assert_eq!(merged, vec![foreign, ours]);
    }
}

#[cfg(test)]
#[path = "node_scripted.rs"]
mod scripted;
