//! Wire types of the CCI 2.0 API (Kubernetes-style JSON under `/apis/cci/v2/...`).
//!
//! The engine speaks these as a client and the mock serves them. Sharing the *shapes* is fine;
//! the mock still validates every request itself (it is the engine's adversary, not its twin).
//!
//! CCI objects reuse the Kubernetes `ObjectMeta`, `PodSpec` and `PodStatus` bodies, but carry
//! `apiVersion: cci/v2`, which the k8s-openapi top-level types refuse to deserialize; hence the
//! thin envelopes here.
#![warn(missing_docs)]

pub mod aksk;
pub mod requests;
pub mod signing;

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{
    PersistentVolumeClaimSpec, PersistentVolumeClaimStatus, PodSpec, PodStatus, ServiceSpec,
    ServiceStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ListMeta, ObjectMeta};
use serde::{Deserialize, Serialize};

/// The `apiVersion` of every CCI 2.0 object.
pub const API_VERSION: &str = "cci/v2";
/// Path prefix of the CCI 2.0 API group.
pub const API_PREFIX: &str = "/apis/cci/v2";
/// The `apiVersion` of the network objects (the yangtse API group).
pub const NETWORK_API_VERSION: &str = "yangtse/v2";
/// Path prefix of the yangtse (network) API group.
pub const NETWORK_API_PREFIX: &str = "/apis/yangtse/v2";
/// The header that carries the caller's token.
pub const AUTH_HEADER: &str = "X-Auth-Token";
/// Label put on every CCI pod by the engine: the UID of the cluster pod it stands for.
pub const LABEL_CLUSTER_POD_UID: &str = "bursting.cci.io/cluster-pod-uid";
/// Annotation on every CCI pod: `namespace/name` of the cluster pod it stands for.
pub const ANNOTATION_CLUSTER_POD: &str = "bursting.cci.io/cluster-pod";
/// Label on the CCI namespace naming the cluster that owns it.
pub const LABEL_CLUSTER_ID: &str = "bursting.cci.io/cluster-id";

/// Annotation on a CCI pod naming the protocol its network sidecar speaks (e.g. `v2` for pods
/// burst by releases `>= 1.5.18`); a pod without it speaks `v1`. The mock's `probe` reads it.
pub const ANNOTATION_SIDECAR_PROTOCOL: &str = "bursting.cci.io/sidecar-protocol";

/// Annotation on a CCI pod: the add-on release (`X.Y.Z`) of the engine that created it. Kept as
/// written: an engine restarted at another release does not rewrite existing pods, so this says
/// which release's rules (e.g. which sidecar) the pod was burst under (BEHAVIOR.md §9).
pub const ANNOTATION_RELEASE: &str = "bursting.cci.io/release";

/// A short fingerprint of a token (hex SHA-256, first 12 digits): how a request log names the
/// token a request carried without holding it.
pub fn token_fingerprint(token: &str) -> String {
    use sha2::Digest as _;
    sha2::Sha256::digest(token.as_bytes())
        .iter()
        .take(6)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The CCI namespace a cluster's burst pods live in: `bursting-{clusterID}`.
pub fn namespace_for_cluster(cluster_id: &str) -> String {
    format!("bursting-{cluster_id}")
}

/// A CCI namespace.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Namespace {
    /// Always [`API_VERSION`].
    #[serde(default)]
    pub api_version: String,
    /// Always `Namespace`.
    #[serde(default)]
    pub kind: String,
    /// Name, labels, uid, creation time.
    pub metadata: ObjectMeta,
    /// Its phase, as CCI answers it (`Active`, or `Terminating` once deleted); never sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<NamespaceStatus>,
}

impl Namespace {
    /// A namespace object ready to be created.
    pub fn new(metadata: ObjectMeta) -> Self {
        Self {
            api_version: API_VERSION.into(),
            kind: "Namespace".into(),
            metadata,
            status: None,
        }
    }

    /// Whether CCI is deleting it (`status.phase: Terminating`, or a `deletionTimestamp`):
    /// it refuses new objects until it is gone.
    pub fn is_terminating(&self) -> bool {
        self.metadata.deletion_timestamp.is_some()
            || self
                .status
                .as_ref()
                .is_some_and(|s| s.phase.as_deref() == Some(NAMESPACE_TERMINATING))
    }
}

/// The phase of a namespace being deleted.
pub const NAMESPACE_TERMINATING: &str = "Terminating";

/// The phase of a namespace in use.
pub const NAMESPACE_ACTIVE: &str = "Active";

/// A namespace's status: its phase (CCI 2.0's createNamespace / deleteNamespace answers).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NamespaceStatus {
    /// `Active` or `Terminating`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
}

/// A CCI pod: a Kubernetes pod body under the `cci/v2` API version.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Pod {
    /// Always [`API_VERSION`].
    #[serde(default)]
    pub api_version: String,
    /// Always `Pod`.
    #[serde(default)]
    pub kind: String,
    /// Name, namespace, labels, annotations; uid and resourceVersion are set by the service.
    pub metadata: ObjectMeta,
    /// The pod's desired state.
    #[serde(default)]
    pub spec: PodSpec,
    /// Set by the service; ignored on create.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<PodStatus>,
}

impl Pod {
    /// A pod object ready to be created.
    pub fn new(metadata: ObjectMeta, spec: PodSpec) -> Self {
        Self {
            api_version: API_VERSION.into(),
            kind: "Pod".into(),
            metadata,
            spec,
            status: None,
        }
    }
}

/// What a status reader needs of a CCI pod: its metadata, its containers' names and images, and
/// its status, read from the same JSON as a [`Pod`] with the rest of the spec skipped unparsed.
///
/// NB: a parsed `PodSpec` takes ~16 KiB of memory (its optional volume sources are inline), so a
/// status round that parsed 4000 pods whole held ~60 MiB at once, every round (measured with
/// heaptrack); the summary of the same pods takes a tenth of that.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
pub struct PodSummary {
    /// Name, namespace, labels, annotations.
    pub metadata: ObjectMeta,
    /// The containers of the spec, name and image only.
    #[serde(default)]
    pub spec: PodSpecSummary,
    /// Set by the service.
    #[serde(default)]
    pub status: Option<PodStatus>,
}

/// The part of a pod spec a [`PodSummary`] keeps.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
pub struct PodSpecSummary {
    /// The (non-init) containers, in spec order.
    #[serde(default)]
    pub containers: Vec<ContainerSummary>,
}

/// A container of a [`PodSummary`].
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
pub struct ContainerSummary {
    /// The container's name.
    pub name: String,
    /// The container's image.
    #[serde(default)]
    pub image: Option<String>,
}

impl From<&Pod> for PodSummary {
    fn from(pod: &Pod) -> Self {
        Self {
            metadata: pod.metadata.clone(),
            spec: PodSpecSummary {
                containers: pod
                    .spec
                    .containers
                    .iter()
                    .map(|c| ContainerSummary {
                        name: c.name.clone(),
                        image: c.image.clone(),
                    })
                    .collect(),
            },
            status: pod.status.clone(),
        }
    }
}

/// A CCI ConfigMap: a Kubernetes ConfigMap body under the `cci/v2` API version.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConfigMap {
    /// Always [`API_VERSION`].
    #[serde(default)]
    pub api_version: String,
    /// Always `ConfigMap`.
    #[serde(default)]
    pub kind: String,
    /// Name, labels; uid and resourceVersion are set by the service.
    pub metadata: ObjectMeta,
    /// UTF-8 entries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<BTreeMap<String, String>>,
    /// Binary entries (base64 on the wire).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub binary_data: Option<BTreeMap<String, ByteString>>,
    /// When true, the data can no longer be changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub immutable: Option<bool>,
}

impl ConfigMap {
    /// A ConfigMap object ready to be created.
    pub fn new(metadata: ObjectMeta, data: BTreeMap<String, String>) -> Self {
        Self {
            api_version: API_VERSION.into(),
            kind: "ConfigMap".into(),
            metadata,
            data: Some(data),
            ..Self::default()
        }
    }
}

/// A CCI Secret: a Kubernetes Secret body under the `cci/v2` API version.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Secret {
    /// Always [`API_VERSION`].
    #[serde(default)]
    pub api_version: String,
    /// Always `Secret`.
    #[serde(default)]
    pub kind: String,
    /// Name, labels; uid and resourceVersion are set by the service.
    pub metadata: ObjectMeta,
    /// Entries (base64 on the wire).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<BTreeMap<String, ByteString>>,
    /// Write-only UTF-8 entries, merged into `data` by the service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub string_data: Option<BTreeMap<String, String>>,
    /// `Opaque` (the default), `kubernetes.io/dockerconfigjson`, ...
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub type_: Option<String>,
    /// When true, the data can no longer be changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub immutable: Option<bool>,
}

impl Secret {
    /// A Secret object ready to be created.
    pub fn new(metadata: ObjectMeta, data: BTreeMap<String, ByteString>) -> Self {
        Self {
            api_version: API_VERSION.into(),
            kind: "Secret".into(),
            metadata,
            data: Some(data),
            ..Self::default()
        }
    }
}

/// A CCI PersistentVolumeClaim: Kubernetes claim bodies under the `cci/v2` API version.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PersistentVolumeClaim {
    /// Always [`API_VERSION`].
    #[serde(default)]
    pub api_version: String,
    /// Always `PersistentVolumeClaim`.
    #[serde(default)]
    pub kind: String,
    /// Name, labels; uid and resourceVersion are set by the service.
    pub metadata: ObjectMeta,
    /// The claim: storage class, access modes, size.
    #[serde(default)]
    pub spec: PersistentVolumeClaimSpec,
    /// Set by the service; ignored on create.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<PersistentVolumeClaimStatus>,
}

impl PersistentVolumeClaim {
    /// A claim object ready to be created.
    pub fn new(metadata: ObjectMeta, spec: PersistentVolumeClaimSpec) -> Self {
        Self {
            api_version: API_VERSION.into(),
            kind: "PersistentVolumeClaim".into(),
            metadata,
            spec,
            status: None,
        }
    }
}

/// A CCI Service: a Kubernetes Service body under the `cci/v2` API version.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Service {
    /// Always [`API_VERSION`].
    #[serde(default)]
    pub api_version: String,
    /// Always `Service`.
    #[serde(default)]
    pub kind: String,
    /// Name, labels; uid and resourceVersion are set by the service.
    pub metadata: ObjectMeta,
    /// Ports, selector, type; `clusterIP` is assigned by the service.
    #[serde(default)]
    pub spec: ServiceSpec,
    /// Set by the service; ignored on create.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<ServiceStatus>,
}

/// The registration of a cluster's network proxy (BEHAVIOR.md §10): which cluster Services CCI
/// pods of the namespace may reach through it, which sidecar protocols it speaks, and where the
/// pods' sidecars open their tunnels to it. Created by the add-on's `proxy` component; the
/// mock's `probe` reads it and sends its request through the endpoint.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProxyRegistration {
    /// Always [`API_VERSION`].
    #[serde(default)]
    pub api_version: String,
    /// Always `ProxyRegistration`.
    #[serde(default)]
    pub kind: String,
    /// Name (one per proxy), labels.
    pub metadata: ObjectMeta,
    /// What the proxy offers.
    #[serde(default)]
    pub spec: ProxyRegistrationSpec,
}

/// What a registered proxy offers.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProxyRegistrationSpec {
    /// The sidecar protocols it speaks, e.g. `["v1", "v2"]`.
    #[serde(default)]
    pub protocols: Vec<String>,
    /// The cluster Services it forwards to, as `namespace/name`; `*` for all.
    #[serde(default)]
    pub services: Vec<String>,
    /// Where sidecars reach the proxy, `IP:port`: each opens a tunnel there with an HTTP/1.1
    /// `CONNECT {service}.{namespace}:{port}` carrying its protocol in
    /// [`HEADER_SIDECAR_PROTOCOL`]. Absent: the proxy offers no data path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// The key a sidecar presents on its `CONNECT` (`Proxy-Authorization: Bearer {key}`): the
    /// proxy opens no tunnel for a connection without it. Derived from the add-on's credential
    /// (never the credential itself), so every replica of the proxy holds the same one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tunnel_key: Option<String>,
}

/// The header of a sidecar's `CONNECT` to a registered proxy that names the sidecar protocol it
/// speaks (`v1` when absent).
pub const HEADER_SIDECAR_PROTOCOL: &str = "bursting-sidecar-protocol";

/// A command run in a CCI pod's container (`POST …/pods/{name}/exec`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExecRequest {
    /// The container; may be omitted when the pod has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    /// The command and its arguments.
    pub command: Vec<String>,
}

/// What a command run in a container printed and how it exited.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExecResult {
    /// The exit code (0 is success).
    pub exit_code: i32,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

/// The name the engine gives the Network of its cluster's CCI namespace.
pub const CLUSTER_NETWORK_NAME: &str = "bursting-net";
/// The only network type CCI 2.0 offers (the published examples spell it with an underscore).
pub const NETWORK_TYPE_UNDERLAY: &str = "underlay_neutron";
/// The network status a namespace's pods need before they get addresses.
pub const NETWORK_STATUS_READY: &str = "Ready";
/// Network annotation: the tenant's project ID (required by the published getting-started).
pub const ANNOTATION_NETWORK_PROJECT_ID: &str = "yangtse.io/project-id";
/// Network annotation: the tenant's account (domain) ID (required likewise).
pub const ANNOTATION_NETWORK_DOMAIN_ID: &str = "yangtse.io/domain-id";

/// A CCI network (`yangtse/v2`): the VPC subnets and security groups a namespace's pods use.
/// A namespace needs a `Ready` one before its pods get addresses.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Network {
    /// Always [`NETWORK_API_VERSION`].
    #[serde(default)]
    pub api_version: String,
    /// Always `Network`.
    #[serde(default)]
    pub kind: String,
    /// Name, labels, annotations (the project and domain IDs); uid and resourceVersion are set
    /// by the service.
    pub metadata: ObjectMeta,
    /// Where the pods' interfaces go.
    #[serde(default)]
    pub spec: NetworkSpec,
    /// Set by the service; ignored on create.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<NetworkStatus>,
}

impl Network {
    /// Whether the service reports it `Ready`.
    pub fn is_ready(&self) -> bool {
        self.status
            .as_ref()
            .and_then(|s| s.status.as_deref())
            .is_some_and(|s| s == NETWORK_STATUS_READY)
    }

    /// The subnet IDs it names, in order.
    pub fn subnet_ids(&self) -> Vec<&str> {
        self.spec
            .subnets
            .iter()
            .flatten()
            .map(|s| s.subnet_id.as_str())
            .collect()
    }
}

/// The desired state of a [`Network`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NetworkSpec {
    /// `IPv4` and/or `IPv6`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_families: Option<Vec<String>>,
    /// [`NETWORK_TYPE_UNDERLAY`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_type: Option<String>,
    /// Security group IDs applied to the pods' interfaces (`[""]`: enabled, denying all).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security_groups: Option<Vec<String>>,
    /// The VPC subnets the pods get addresses from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subnets: Option<Vec<NetworkSubnet>>,
}

/// One subnet of a [`NetworkSpec`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NetworkSubnet {
    /// The VPC subnet's (IPv4) ID.
    #[serde(default, rename = "subnetID")]
    pub subnet_id: String,
}

/// The observed state of a [`Network`].
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NetworkStatus {
    /// `Ready`, `Failed` or `IPInsufficient`; absent while the service sets it up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// E.g. `NetworkSynced`, `NetworkExternalDependenciesSynced`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conditions: Option<Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition>>,
    /// The subnets as the VPC knows them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subnet_attrs: Option<Vec<NetworkSubnetAttr>>,
}

/// One subnet of a [`NetworkStatus`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NetworkSubnetAttr {
    /// The VPC network ID the subnet belongs to.
    #[serde(default, rename = "networkID", skip_serializing_if = "Option::is_none")]
    pub network_id: Option<String>,
    /// The subnet's IPv4 ID.
    #[serde(
        default,
        rename = "subnetV4ID",
        skip_serializing_if = "Option::is_none"
    )]
    pub subnet_v4_id: Option<String>,
    /// The subnet's IPv6 ID.
    #[serde(
        default,
        rename = "subnetV6ID",
        skip_serializing_if = "Option::is_none"
    )]
    pub subnet_v6_id: Option<String>,
}

/// One line of a watch stream (`?watch=true`): newline-delimited JSON, as Kubernetes sends it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WatchEvent<T> {
    /// `ADDED`, `MODIFIED`, `DELETED`, or `ERROR` (then `object` is a [`Status`]).
    #[serde(rename = "type")]
    pub type_: String,
    /// The object after the change (before it, for `DELETED`).
    pub object: T,
}

/// A list of objects, as returned by collection GETs.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct List<T> {
    /// Always [`API_VERSION`].
    #[serde(default)]
    pub api_version: String,
    /// `PodList`, `NamespaceList`, ...
    pub kind: String,
    /// Carries the collection's resourceVersion.
    #[serde(default)]
    pub metadata: ListMeta,
    /// The objects.
    pub items: Vec<T>,
}

/// The one error body of the API: Kubernetes `Status`, plus the CCI error code. Every field
/// may be absent when read (the published 404 example carries no `errorCode`; see
/// `mock-cci/README.md`), so a client never fails on an error body it does not fully know.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Status {
    /// `Status`.
    pub kind: String,
    /// `v1`.
    pub api_version: String,
    /// `Failure` for errors.
    pub status: String,
    /// A sentence a person can act on.
    pub message: String,
    /// Machine-readable reason: `NotFound`, `AlreadyExists`, `Unauthorized`, `Invalid`, ...
    pub reason: String,
    /// The HTTP status code.
    pub code: u16,
    /// The CCI error code, e.g. `CCI.01.400001`.
    pub error_code: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_body_without_a_cci_code_still_reads() {
        let published_404 = r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"pods \"x\" not found","reason":"NotFound","details":{"name":"x","kind":"pods"},"code":404}"#;
        let status: Status = serde_json::from_str(published_404).unwrap();
        assert_eq!((status.code, status.reason.as_str()), (404, "NotFound"));
        assert_eq!(status.error_code, "");
    }

    #[test]
    fn a_pod_summary_reads_a_full_pod_body_and_keeps_what_statuses_need() {
        let body = serde_json::json!({
            "apiVersion": API_VERSION, "kind": "Pod",
            "metadata": {"name": "p", "labels": {LABEL_CLUSTER_POD_UID: "u-1"}},
            "spec": {
                "containers": [{"name": "main", "image": "nginx:1.27",
                                "resources": {"limits": {"cpu": "1", "memory": "2Gi"}}}],
                "volumes": [{"name": "cm", "configMap": {"name": "cm-1"}}]
            },
            "status": {"phase": "Running", "podIP": "192.168.0.9"}
        });
        let full: Pod = serde_json::from_value(body.clone()).unwrap();
        let summary: PodSummary = serde_json::from_value(body).unwrap();
        assert_eq!(summary, PodSummary::from(&full));
        assert_eq!(
            summary.spec.containers[0].image.as_deref(),
            Some("nginx:1.27")
        );
        assert_eq!(
            summary.status.and_then(|s| s.phase).as_deref(),
            Some("Running")
        );
    }
}
