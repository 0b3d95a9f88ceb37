//! Cluster pod ⇄ CCI pod, and the cluster objects a pod needs on CCI: pure functions, no IO.
//!
//! # Naming
//!
//! A cluster pod `{namespace}/{name}` becomes the CCI pod `{namespace}.{name}` in the CCI
//! namespace `bursting-{clusterID}`. Cluster namespaces are DNS labels (no dots), so the first
//! dot splits the name back unambiguously and two cluster namespaces can never collide. The CCI
//! pod carries the cluster pod's UID as the label [`LABEL_CLUSTER_POD_UID`] (its identity: a pod
//! recreated under the same name is another pod) and `namespace/name` as the annotation
//! [`ANNOTATION_CLUSTER_POD`].
//!
//! The ConfigMaps, Secrets and PersistentVolumeClaims a pod uses are mirrored under the same
//! scheme ([`mirror_name`]): cluster ConfigMap `shop/app-config` is the CCI ConfigMap
//! `shop.app-config`, and every reference in the CCI pod is renamed accordingly.
//!
//! # What is carried over
//!
//! - The pod's `restartPolicy`; its `resource.cci.io/pod-size-specs` annotation.
//! - For each app **and init** container: name, image, command, args, ports (container port,
//!   name, protocol), `restartPolicy` (sidecars), resources (see below), `env` (literal values;
//!   `valueFrom` with `fieldRef`, `resourceFieldRef` and `fileKeyRef` as they are;
//!   `configMapKeyRef` / `secretKeyRef` renamed to the mirrored object), `envFrom` (renamed,
//!   prefix kept) and `volumeMounts` (name, mountPath, subPath, readOnly).
//! - Volumes: emptyDir (medium, sizeLimit), downwardAPI (as is), configMap and secret (renamed;
//!   items, defaultMode, optional kept), persistentVolumeClaim (renamed), projected (configMap
//!   and secret sources renamed, downwardAPI kept, a `serviceAccountToken` source replaced, see
//!   below) and hostPath **only** for the path `/etc/localtime`. Any other volume is refused
//!   ([`Error::Translate`]): the webhook has already replaced or refused those, so one reaching
//!   the engine is a pod that cannot run on CCI.
//!
//! # Release
//!
//! The engine runs "as" an add-on release ([`Release`]) and translates through the one gate
//! table of `burst_rules::release`, as the webhook decides through it:
//!
//! - downwardAPI and projected volumes need [`Gate::DownwardApiAndProjected`] (`>= 1.3.25`), the
//!   hostPath `/etc/localtime` needs [`Gate::EtcLocaltimeHostPath`] (`>= 1.5.9`); below those
//!   the pod is refused with the gate named. (The injected `kube-api-access-*` volume is dropped
//!   whatever the release.)
//! - The CCI pod says which sidecar it gets: [`ANNOTATION_SIDECAR_PROTOCOL`] is
//!   [`SIDECAR_PROTOCOL_V2`] when the release allows [`Gate::SidecarV2`] (`>= 1.5.18`), else
//!   [`SIDECAR_PROTOCOL_V1`]; and [`ANNOTATION_RELEASE`] records the release itself (§9).
//!
//! These describe the pod *as created*: a CCI pod is never rewritten, so one burst under
//! another release keeps its sidecar (the provider adopts it as it is after a restart).
//!
//! # What is changed
//!
//! - **Limits equal requests** (CCI's rule, `BEHAVIOR.md` §4): for each container and each
//!   resource it names, its request becomes both (its limit, when it has no request).
//! - **Size**: `resource.cci.io/size` is §4's size of the *cluster* pod, as
//!   `burst_rules::flavour` computes it: max(sum of requests, each limit, largest init
//!   container) rounded up to a flavour (or the one `resource.cci.io/pod-size-specs` pins),
//!   written `{vCPU}_{GiB}` (`0.5_1`). Two containers of request 0.5 / limit 1 vCPU are `1_2`,
//!   not the `2_4` their limits would add up to. CCI sizes a pod from the containers it is sent,
//!   so when a limit makes the pod larger than its translated containers round up to, the
//!   engine pins that size with `resource.cci.io/pod-size-specs` on the CCI pod. A pod that fits
//!   no flavour, or names no resources at all, is refused with the numbers.
//! - **Image pulls** always use the CCI secret `imagepull-secret` (§4); the cluster pod's own
//!   `imagePullSecrets` mean nothing on CCI.
//! - A projected **`serviceAccountToken`** source becomes the `token` key of the service
//!   account's long-lived token Secret, mirrored like any Secret; `expirationSeconds` and
//!   `audience` have no effect (§5). That Secret is the one Kubernetes defines: type
//!   [`SERVICE_ACCOUNT_TOKEN_TYPE`] in the pod's namespace, annotated
//!   [`ANNOTATION_SERVICE_ACCOUNT_NAME`] with the account (and [`ANNOTATION_SERVICE_ACCOUNT_UID`],
//!   when set, with its UID), whatever its name. The caller finds it ([`choose_token_secret`],
//!   from the account and the namespace's token Secrets) and hands its name to [`to_cci_pod`];
//!   without one the pod waits ([`Error::WaitingForToken`], naming what to create). The add-on
//!   never creates one: the seed only says the pod mounts "the token of the corresponding
//!   service-account-token Secret".
//!
//! # What is dropped
//!
//! Everything that only means something on a cluster node: `nodeName`, `nodeSelector`,
//! `affinity`, `tolerations`, `schedulerName`, `priority`/`priorityClassName`, the service
//! account, the `kube-api-access-*` projected volume the API server injects (CCI has no API
//! server token to put there) and every mount of it, ephemeral containers, security contexts,
//! probes, lifecycle hooks, host ports, host networking/PID/IPC, DNS settings,
//! hostname/subdomain and the termination grace period. The cluster pod's annotations are not
//! copied either (except the size pin).
//!
//! # Labels
//!
//! The CCI pod carries the cluster pod's labels as they are when it is created (so CCI-side
//! views can be filtered as the cluster's are, e.g. by `job-name`), with the engine's own
//! label [`LABEL_CLUSTER_POD_UID`] on top: on a conflict the engine's value wins, since it is
//! the pod's identity. The API server has already checked the labels' syntax, which is CCI's
//! too. A CCI pod is never rewritten, so later label changes on the cluster pod stay there.

use std::collections::{BTreeMap, BTreeSet};

use burst_rules::flavour::ANNOTATION_POD_SIZE_SPECS;
use burst_rules::quantity::Quantity as RulesQuantity;
use burst_rules::release::{Gate, Release};
use cci_api::{
    ANNOTATION_CLUSTER_POD, ANNOTATION_RELEASE, ANNOTATION_SIDECAR_PROTOCOL, LABEL_CLUSTER_ID,
    LABEL_CLUSTER_POD_UID,
};
use k8s_openapi::api::core::v1::{
    ConfigMap, ConfigMapEnvSource, ConfigMapKeySelector, ConfigMapProjection,
    ConfigMapVolumeSource, Container, ContainerPort, ContainerStatus, EnvFromSource, EnvVar,
    EnvVarSource, HostIP, HostPathVolumeSource, KeyToPath, LocalObjectReference,
    PersistentVolumeClaim, PersistentVolumeClaimSpec, PersistentVolumeClaimVolumeSource, Pod,
    PodCondition, PodIP, PodSpec, PodStatus, ProjectedVolumeSource, ResourceRequirements, Secret,
    SecretEnvSource, SecretKeySelector, SecretProjection, SecretVolumeSource, ServiceAccount,
    Volume, VolumeMount, VolumeProjection,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::breakage::{self, Breakage};
use crate::{Error, Result};

/// Longest CCI pod name (a DNS-1123 subdomain).
pub const MAX_CCI_POD_NAME_LEN: usize = 253;
/// Longest cluster ID: the CCI namespace `bursting-{id}` must stay a 63-character DNS label.
pub const MAX_CLUSTER_ID_LEN: usize = 63 - "bursting-".len();
/// The image pull secret every CCI pod uses (`BEHAVIOR.md` §4).
pub const IMAGE_PULL_SECRET: &str = "imagepull-secret";
/// The only hostPath a CCI pod may mount (`BEHAVIOR.md` §5, from release 1.5.9).
pub const LOCALTIME_PATH: &str = "/etc/localtime";
/// Name prefix of the projected service account token volume the API server injects.
pub const KUBE_API_ACCESS_PREFIX: &str = "kube-api-access-";
/// Label on every mirrored CCI object: `{namespace}.{name}` of the cluster object (left out
/// when longer than a label value may be; the annotation of the same key always has it).
pub const LABEL_CLUSTER_OBJECT: &str = "bursting.cci.io/cluster-object";
/// Annotation on every mirrored CCI object: `{namespace}/{name}` of the cluster object.
pub const ANNOTATION_CLUSTER_OBJECT: &str = "bursting.cci.io/cluster-object";
/// Annotation on every mirrored CCI object: the cluster object's `resourceVersion` it copies.
pub const ANNOTATION_CLUSTER_RESOURCE_VERSION: &str = "bursting.cci.io/cluster-resource-version";

/// The sidecar protocol of pods burst by releases before 1.5.18 (and of pods that do not say).
pub const SIDECAR_PROTOCOL_V1: &str = "v1";
/// The protocol of the new sidecar, injected from release 1.5.18 ([`Gate::SidecarV2`]).
pub const SIDECAR_PROTOCOL_V2: &str = "v2";

/// The sidecar protocol a pod burst by `release` speaks: [`SIDECAR_PROTOCOL_V2`] when the
/// release allows [`Gate::SidecarV2`], else [`SIDECAR_PROTOCOL_V1`].
pub fn sidecar_protocol(release: Release) -> &'static str {
    if release.allows(Gate::SidecarV2) && !breakage::is(Breakage::SidecarAlwaysV1) {
        SIDECAR_PROTOCOL_V2
    } else {
        SIDECAR_PROTOCOL_V1
    }
}

/// The CCI pod name of cluster pod `namespace/name`: `{namespace}.{name}`.
pub fn cci_pod_name(namespace: &str, name: &str) -> String {
    format!("{namespace}.{name}")
}

/// The CCI name of the mirror of cluster object `namespace/name` (a ConfigMap, Secret or
/// PersistentVolumeClaim): `{namespace}.{name}`, the scheme of pods.
pub fn mirror_name(namespace: &str, name: &str) -> String {
    format!("{namespace}.{name}")
}

/// The type of a service account's long-lived token Secret.
pub const SERVICE_ACCOUNT_TOKEN_TYPE: &str = "kubernetes.io/service-account-token";
/// Annotation of a token Secret: the name of the service account it holds the token of.
pub const ANNOTATION_SERVICE_ACCOUNT_NAME: &str = "kubernetes.io/service-account.name";
/// Annotation of a token Secret: the UID of that service account (set by the token controller).
pub const ANNOTATION_SERVICE_ACCOUNT_UID: &str = "kubernetes.io/service-account.uid";
/// The key of a token Secret that holds the token.
pub const TOKEN_KEY: &str = "token";

/// What [`choose_token_secret`] found for a service account.
#[derive(Debug, PartialEq)]
pub enum TokenSecret<'a> {
    /// A token Secret of the account with its token filled in: the one to mount.
    Ready(&'a Secret),
    /// Token Secrets of the account exist, but the token controller has filled in none yet;
    /// this is the one that will be mounted once it has.
    NotFilled(&'a Secret),
    /// The account has no token Secret.
    Missing,
}

/// The service account whose token a projected `serviceAccountToken` source of `pod` stands for
/// (the pod's account, `default` when it names none), if the pod has such a source outside the
/// dropped `kube-api-access-*` volume.
pub fn token_account(pod: &Pod) -> Option<&str> {
    let spec = pod.spec.as_ref()?;
    let wants_token = spec
        .volumes
        .iter()
        .flatten()
        .filter(|v| !is_kube_api_access(v))
        .flat_map(|v| v.projected.iter().flat_map(|p| p.sources.iter().flatten()))
        .any(|s| s.service_account_token.is_some());
    wants_token.then(|| service_account(spec))
}

/// Whether `secret` is a token Secret of service account `account` (as Kubernetes defines one):
/// type [`SERVICE_ACCOUNT_TOKEN_TYPE`], in the account's namespace, annotated
/// [`ANNOTATION_SERVICE_ACCOUNT_NAME`] with the account's name and, when the Secret carries
/// [`ANNOTATION_SERVICE_ACCOUNT_UID`] and the account has a UID, with that UID (a Secret of an
/// earlier account of the same name is not this one's).
pub fn is_token_secret_of(secret: &Secret, account: &ServiceAccount) -> bool {
    let annotation = |key: &str| {
        secret
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(key))
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    };
    let account_uid = account.metadata.uid.as_deref().filter(|u| !u.is_empty());
    let uid_matches = match (annotation(ANNOTATION_SERVICE_ACCOUNT_UID), account_uid) {
        (Some(on_secret), Some(of_account)) => on_secret == of_account,
        _ => true,
    };
    secret.type_.as_deref() == Some(SERVICE_ACCOUNT_TOKEN_TYPE)
        && secret.metadata.namespace == account.metadata.namespace
        && annotation(ANNOTATION_SERVICE_ACCOUNT_NAME).is_some()
        && annotation(ANNOTATION_SERVICE_ACCOUNT_NAME) == account.metadata.name.as_deref()
        && uid_matches
}

/// Whether the token controller has filled in `secret`'s token.
fn has_token(secret: &Secret) -> bool {
    secret
        .data
        .as_ref()
        .and_then(|d| d.get(TOKEN_KEY))
        .is_some_and(|t| !t.0.is_empty())
}

/// The token Secret of service account `account` a projected `serviceAccountToken` source
/// becomes, among `secrets` (those of the account's namespace; any others are ignored).
///
/// Only token Secrets of the account count ([`is_token_secret_of`]). When several do, the choice
/// is stable: one whose token is filled in before one whose token is not, then one the account
/// lists in its `secrets`, then the oldest (`creationTimestamp`; one without comes last), then
/// the first by name.
pub fn choose_token_secret<'a>(account: &ServiceAccount, secrets: &'a [Secret]) -> TokenSecret<'a> {
    let listed: BTreeSet<&str> = account
        .secrets
        .iter()
        .flatten()
        .filter_map(|r| r.name.as_deref())
        .collect();
    let chosen = secrets
        .iter()
        .filter(|s| is_token_secret_of(s, account))
        .min_by_key(|s| {
            let name = s.metadata.name.as_deref().unwrap_or_default();
            let created = s.metadata.creation_timestamp.as_ref();
            (
                !has_token(s),
                !listed.contains(name),
                created.is_none(),
                created,
                name,
            )
        });
    match chosen {
        Some(s) if has_token(s) => TokenSecret::Ready(s),
        Some(s) => TokenSecret::NotFilled(s),
        None => TokenSecret::Missing,
    }
}

/// The pod waits: service account `namespace/account` has no token Secret; says what to create.
pub fn missing_token_secret(namespace: &str, account: &str) -> Error {
    Error::WaitingForToken {
        namespace: namespace.into(),
        account: account.into(),
        reason: format!(
            "none exists; create one in namespace {namespace}: a Secret of type {SERVICE_ACCOUNT_TOKEN_TYPE} with the annotation {ANNOTATION_SERVICE_ACCOUNT_NAME}: {account} (any name; the token controller fills in its token); the pod starts on CCI once it has its token"
        ),
    }
}

/// The cluster `(namespace, name)` a CCI pod name stands for (split at the first dot).
pub fn cluster_pod_of(cci_name: &str) -> Option<(&str, &str)> {
    cci_name
        .split_once('.')
        .filter(|(ns, name)| !ns.is_empty() && !name.is_empty())
}

/// Check that `cluster_id` can name the CCI namespace `bursting-{cluster_id}` (a DNS label).
pub fn check_cluster_id(cluster_id: &str) -> Result<()> {
    let b = cluster_id.as_bytes();
    let alnum = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    let ok = !b.is_empty()
        && b.len() <= MAX_CLUSTER_ID_LEN
        && b.first().is_some_and(alnum)
        && b.last().is_some_and(alnum)
        && b.iter().all(|c| alnum(c) || *c == b'-');
    if ok {
        Ok(())
    } else {
        Err(Error::ClusterId(cluster_id.into()))
    }
}

/// The CCI namespace object of a cluster: `bursting-{clusterID}`, labelled with the cluster ID.
pub fn cci_namespace(cluster_id: &str) -> cci_api::Namespace {
    cci_api::Namespace::new(ObjectMeta {
        name: Some(cci_api::namespace_for_cluster(cluster_id)),
        labels: Some(BTreeMap::from([(
            LABEL_CLUSTER_ID.to_string(),
            cluster_id.to_string(),
        )])),
        ..ObjectMeta::default()
    })
}

/// Namespace, name and UID of a cluster pod, or why the pod cannot be named on CCI.
pub fn identity(pod: &Pod) -> Result<(&str, &str, &str)> {
    let m = &pod.metadata;
    let namespace = m.namespace.as_deref().unwrap_or_default();
    let name = m.name.as_deref().unwrap_or_default();
    let uid = m.uid.as_deref().unwrap_or_default();
    let refuse = |reason: &str| Error::Translate {
        pod: format!("{namespace}/{name}"),
        reason: reason.into(),
    };
    if namespace.is_empty() || name.is_empty() {
        return Err(refuse("has no namespace or no name"));
    }
    if namespace.contains('.') {
        return Err(refuse(
            "its namespace contains a dot, which CCI pod names reserve",
        ));
    }
    if uid.is_empty() {
        return Err(refuse("has no uid"));
    }
    Ok((namespace, name, uid))
}

/// The kind of a cluster object a pod needs mirrored to CCI.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ObjectKind {
    /// A ConfigMap.
    ConfigMap,
    /// A Secret.
    Secret,
    /// A PersistentVolumeClaim.
    PersistentVolumeClaim,
}

impl ObjectKind {
    /// The kind's name in messages: `configmap`, `secret`, `persistentvolumeclaim`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ConfigMap => "configmap",
            Self::Secret => "secret",
            Self::PersistentVolumeClaim => "persistentvolumeclaim",
        }
    }

    /// The resource's plural in CCI API paths: `configmaps`, `secrets`,
    /// `persistentvolumeclaims`.
    pub fn plural(self) -> &'static str {
        match self {
            Self::ConfigMap => "configmaps",
            Self::Secret => "secrets",
            Self::PersistentVolumeClaim => "persistentvolumeclaims",
        }
    }
}

impl std::fmt::Display for ObjectKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One cluster object: kind, namespace and name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectKey {
    /// What it is.
    pub kind: ObjectKind,
    /// Its cluster namespace (the pod's).
    pub namespace: String,
    /// Its cluster name.
    pub name: String,
}

impl ObjectKey {
    /// The key of `kind` `namespace/name`.
    pub fn new(kind: ObjectKind, namespace: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            kind,
            namespace: namespace.into(),
            name: name.into(),
        }
    }

    /// The CCI name of its mirror.
    pub fn mirror_name(&self) -> String {
        mirror_name(&self.namespace, &self.name)
    }
}

impl ObjectKind {
    /// The kind as the Kubernetes API names it (`ConfigMap`, `Secret`,
    /// `PersistentVolumeClaim`).
    pub fn api_kind(self) -> &'static str {
        match self {
            ObjectKind::ConfigMap => "ConfigMap",
            ObjectKind::Secret => "Secret",
            ObjectKind::PersistentVolumeClaim => "PersistentVolumeClaim",
        }
    }
}

impl std::fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}/{}", self.kind, self.namespace, self.name)
    }
}

/// The cluster objects a pod's CCI copy refers to, each with whether every reference to it is
/// `optional` (a pod waits for a missing object unless it is optional everywhere).
pub type References = BTreeMap<ObjectKey, bool>;

/// Every ConfigMap, Secret and PersistentVolumeClaim the CCI copy of `pod` refers to: volumes,
/// projected sources, `env` and `envFrom` of every app and init container, and `token_secret`
/// (the service account's token Secret, [`choose_token_secret`]) when a projected
/// `serviceAccountToken` source stands for it. The `kube-api-access-*` volume is not counted
/// (it is dropped).
pub fn references(pod: &Pod, token_secret: Option<&str>) -> References {
    let namespace = pod.metadata.namespace.as_deref().unwrap_or_default();
    let mut refs = References::new();
    let Some(spec) = pod.spec.as_ref() else {
        return refs;
    };
    let mut add = |kind: ObjectKind, name: &str, optional: Option<bool>| {
        if name.is_empty() {
            return;
        }
        let optional = optional == Some(true);
        refs.entry(ObjectKey::new(kind, namespace, name))
            .and_modify(|o| *o &= optional)
            .or_insert(optional);
    };
    for v in spec.volumes.iter().flatten() {
        if is_kube_api_access(v) {
            continue;
        }
        if let Some(s) = &v.config_map {
            add(ObjectKind::ConfigMap, &s.name, s.optional);
        }
        if let Some(s) = &v.secret {
            add(
                ObjectKind::Secret,
                s.secret_name.as_deref().unwrap_or_default(),
                s.optional,
            );
        }
        if let Some(s) = &v.persistent_volume_claim {
            add(ObjectKind::PersistentVolumeClaim, &s.claim_name, None);
        }
        for p in v.projected.iter().flat_map(|p| p.sources.iter().flatten()) {
            if let Some(s) = &p.config_map {
                add(ObjectKind::ConfigMap, &s.name, s.optional);
            }
            if let Some(s) = &p.secret {
                add(ObjectKind::Secret, &s.name, s.optional);
            }
            if p.service_account_token.is_some()
                && let Some(token_secret) = token_secret
            {
                add(ObjectKind::Secret, token_secret, None);
            }
        }
    }
    let containers = spec
        .init_containers
        .iter()
        .flatten()
        .chain(&spec.containers);
    for c in containers {
        for source in c.env.iter().flatten().filter_map(|e| e.value_from.as_ref()) {
            if let Some(r) = &source.config_map_key_ref {
                add(ObjectKind::ConfigMap, &r.name, r.optional);
            }
            if let Some(r) = &source.secret_key_ref {
                add(ObjectKind::Secret, &r.name, r.optional);
            }
        }
        for from in c.env_from.iter().flatten() {
            if let Some(r) = &from.config_map_ref {
                add(ObjectKind::ConfigMap, &r.name, r.optional);
            }
            if let Some(r) = &from.secret_ref {
                add(ObjectKind::Secret, &r.name, r.optional);
            }
        }
    }
    refs
}

fn service_account(spec: &PodSpec) -> &str {
    #[allow(deprecated)]
    let legacy = spec.service_account.as_deref();
    spec.service_account_name
        .as_deref()
        .or(legacy)
        .filter(|s| !s.is_empty())
        .unwrap_or("default")
}

fn is_kube_api_access(v: &Volume) -> bool {
    v.name.starts_with(KUBE_API_ACCESS_PREFIX)
}

/// The CCI pod standing for cluster pod `pod` of cluster `cluster_id`, burst by an engine
/// running as `release` (see the module docs). `token_secret` names the service account's
/// token Secret ([`choose_token_secret`]) a projected `serviceAccountToken` source becomes;
/// `None` when there is none.
///
/// Refuses pods that cannot run on CCI: DaemonSet pods (they never burst), pods without
/// containers, pods whose CCI name would exceed [`MAX_CCI_POD_NAME_LEN`], volumes CCI does not
/// mount (or not at `release`), and pods that fit no flavour. After every refusal is ruled out,
/// a pod with a `serviceAccountToken` source and no `token_secret` is
/// [`Error::WaitingForToken`] ([`missing_token_secret`]).
pub fn to_cci_pod(
    pod: &Pod,
    cluster_id: &str,
    release: Release,
    token_secret: Option<&str>,
) -> Result<cci_api::Pod> {
    let (namespace, name, uid) = identity(pod)?;
    let refuse = |reason: String| Error::Translate {
        pod: format!("{namespace}/{name}"),
        reason,
    };
    let owned_by_daemonset = pod
        .metadata
        .owner_references
        .iter()
        .flatten()
        .any(|o| o.kind == "DaemonSet");
    if owned_by_daemonset {
        return Err(refuse(
            "is a DaemonSet pod; DaemonSet pods never burst to CCI: keep them off the virtual node (do not tolerate virtual-kubelet.io/provider)".into(),
        ));
    }
    let cci_name = cci_pod_name(namespace, name);
    if cci_name.len() > MAX_CCI_POD_NAME_LEN {
        return Err(refuse(format!(
            "the CCI pod name {namespace}.{name} would be {} characters, over CCI's {MAX_CCI_POD_NAME_LEN}: shorten the pod name",
            cci_name.len()
        )));
    }
    let empty = PodSpec::default();
    let spec = pod.spec.as_ref().unwrap_or(&empty);
    if spec.containers.is_empty() {
        return Err(refuse("has no containers".into()));
    }
    let mut volumes = Vec::new();
    let mut dropped = BTreeSet::new();
    for v in spec.volumes.iter().flatten() {
        if is_kube_api_access(v) {
            dropped.insert(v.name.as_str());
            continue;
        }
        if breakage::is(Breakage::LocaltimeHostPathDropped)
            && v.host_path
                .as_ref()
                .is_some_and(|h| h.path == LOCALTIME_PATH)
        {
            dropped.insert(v.name.as_str());
            continue;
        }
        // NB: without a token Secret the name is never used: the pod waits, below.
        let token = token_secret.unwrap_or_default();
        volumes.push(to_cci_volume(namespace, token, release, v).map_err(refuse)?);
    }
    let container = |c: &Container| to_cci_container(namespace, c, &dropped).map_err(refuse);
    let containers = spec
        .containers
        .iter()
        .map(container)
        .collect::<Result<Vec<_>>>()?;
    let init_containers = spec
        .init_containers
        .iter()
        .flatten()
        .map(container)
        .collect::<Result<Vec<_>>>()?;
    let cci_spec = PodSpec {
        containers,
        init_containers: (!init_containers.is_empty()).then_some(init_containers),
        volumes: (!volumes.is_empty()).then_some(volumes),
        image_pull_secrets: Some(vec![LocalObjectReference {
            name: IMAGE_PULL_SECRET.into(),
        }]),
        restart_policy: spec.restart_policy.clone(),
        ..PodSpec::default()
    };
    let pinned = pod
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(ANNOTATION_POD_SIZE_SPECS));
    // §4's size comes from the cluster pod's own resources: max(sum of requests, each limit,
    // largest init container). The translated containers hold only their requests, so when a
    // limit makes the pod larger than they add up to, the size is pinned for CCI (which sizes a
    // pod from its containers unless pod-size-specs names a larger flavour).
    let without_init;
    let sized = if breakage::is(Breakage::InitContainersNotSized) {
        without_init = PodSpec {
            init_containers: None,
            ..spec.clone()
        };
        &without_init
    } else {
        spec
    };
    let sizing = burst_rules::flavour::size(sized, pinned.map(String::as_str))
        .map_err(|e| refuse(e.to_string()))?;
    if token_secret.is_none()
        && let Some(account) = token_account(pod)
    {
        return Err(missing_token_secret(namespace, account));
    }
    let containers_round_to = burst_rules::flavour::size(&cci_spec, None)
        .ok()
        .map(|s| s.flavour);
    let mut annotations = BTreeMap::from([
        (
            ANNOTATION_CLUSTER_POD.to_string(),
            format!("{namespace}/{name}"),
        ),
        (
            ANNOTATION_SIDECAR_PROTOCOL.to_string(),
            sidecar_protocol(release).to_string(),
        ),
        (ANNOTATION_RELEASE.to_string(), release.to_string()),
    ]);
    if let Some(pinned) = pinned {
        annotations.insert(ANNOTATION_POD_SIZE_SPECS.to_string(), pinned.clone());
    } else if containers_round_to != Some(sizing.flavour) {
        annotations.insert(ANNOTATION_POD_SIZE_SPECS.to_string(), sizing.flavour.spec());
    }
    let mut labels = if breakage::is(Breakage::ClusterLabelsDropped) {
        BTreeMap::new()
    } else {
        pod.metadata.labels.clone().unwrap_or_default()
    };
    // NB: inserted last, so a cluster label of the same key never hides the pod's identity.
    labels.insert(LABEL_CLUSTER_POD_UID.to_string(), uid.to_string());
    let metadata = ObjectMeta {
        name: Some(cci_name),
        namespace: Some(cci_api::namespace_for_cluster(cluster_id)),
        labels: Some(labels),
        annotations: Some(annotations),
        ..ObjectMeta::default()
    };
    Ok(cci_api::Pod::new(metadata, cci_spec))
}

/// The CCI volume for cluster volume `v` of a pod in `namespace` whose service account's token
/// Secret is `token_secret`, or why CCI cannot mount it (at `release`).
fn to_cci_volume(
    namespace: &str,
    token_secret: &str,
    release: Release,
    v: &Volume,
) -> std::result::Result<Volume, String> {
    let rename = |name: &str| mirror_name(namespace, name);
    // Worded like the webhook's refusals: the volume, the gate, what to do.
    let gated = |gate: Gate, what: &str| {
        (!release.allows(gate)).then(|| {
            format!(
                "{what} volume {:?} cannot run on CCI: it {}; upgrade the add-on, or remove the volume",
                v.name,
                gate.explain(release)
            )
        })
    };
    let out = Volume {
        name: v.name.clone(),
        ..Volume::default()
    };
    if let Some(s) = &v.empty_dir {
        let mut s = s.clone();
        if breakage::is(Breakage::EmptyDirSizeLimitDropped) {
            s.size_limit = None;
        }
        return Ok(Volume {
            empty_dir: Some(s),
            ..out
        });
    }
    if let Some(s) = &v.host_path {
        if s.path != LOCALTIME_PATH {
            return Err(format!(
                "hostPath volume {:?} (path {:?}) cannot run on CCI, a shared cluster; only {LOCALTIME_PATH:?} is passed through: remove it or replace it with coordinator.cci.io/hostpath-replacement",
                v.name, s.path
            ));
        }
        if let Some(refusal) = gated(Gate::EtcLocaltimeHostPath, "hostPath") {
            return Err(refusal);
        }
        return Ok(Volume {
            host_path: Some(HostPathVolumeSource {
                path: s.path.clone(),
                type_: s.type_.clone(),
            }),
            ..out
        });
    }
    if let Some(s) = &v.config_map {
        return Ok(Volume {
            config_map: Some(ConfigMapVolumeSource {
                name: rename(&s.name),
                ..s.clone()
            }),
            ..out
        });
    }
    if let Some(s) = &v.secret {
        return Ok(Volume {
            secret: Some(SecretVolumeSource {
                secret_name: s.secret_name.as_deref().map(rename),
                ..s.clone()
            }),
            ..out
        });
    }
    if let Some(s) = &v.persistent_volume_claim {
        return Ok(Volume {
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: rename(&s.claim_name),
                read_only: s.read_only,
            }),
            ..out
        });
    }
    if let Some(s) = &v.downward_api {
        if let Some(refusal) = gated(Gate::DownwardApiAndProjected, "downwardAPI") {
            return Err(refusal);
        }
        return Ok(Volume {
            downward_api: Some(s.clone()),
            ..out
        });
    }
    if let Some(p) = &v.projected {
        if let Some(refusal) = gated(Gate::DownwardApiAndProjected, "projected") {
            return Err(refusal);
        }
        let sources = p
            .sources
            .iter()
            .flatten()
            .map(|s| to_cci_projection(&v.name, &rename, token_secret, s))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        return Ok(Volume {
            projected: Some(ProjectedVolumeSource {
                default_mode: p.default_mode,
                sources: Some(sources),
            }),
            ..out
        });
    }
    // NB: name the type from the wire form, so every present and future type reads right.
    let kind = serde_json::to_value(v)
        .ok()
        .and_then(|j| {
            j.as_object()
                .and_then(|o| o.keys().find(|k| *k != "name").cloned())
        })
        .unwrap_or_else(|| "untyped".into());
    Err(format!(
        "{kind} volume {:?} cannot run on CCI: CCI mounts emptyDir, configMap, secret, downwardAPI, projected, persistentVolumeClaim (SFS, SFS Turbo) and the hostPath {LOCALTIME_PATH}",
        v.name
    ))
}

fn to_cci_projection(
    volume: &str,
    rename: &impl Fn(&str) -> String,
    token_secret: &str,
    s: &VolumeProjection,
) -> std::result::Result<VolumeProjection, String> {
    if let Some(c) = &s.config_map {
        return Ok(VolumeProjection {
            config_map: Some(ConfigMapProjection {
                name: rename(&c.name),
                ..c.clone()
            }),
            ..VolumeProjection::default()
        });
    }
    if let Some(c) = &s.secret {
        return Ok(VolumeProjection {
            secret: Some(SecretProjection {
                name: rename(&c.name),
                ..c.clone()
            }),
            ..VolumeProjection::default()
        });
    }
    if let Some(d) = &s.downward_api {
        return Ok(VolumeProjection {
            downward_api: Some(d.clone()),
            ..VolumeProjection::default()
        });
    }
    if let Some(t) = &s.service_account_token
        && breakage::is(Breakage::ProjectedTokenPassedThrough)
    {
        return Ok(VolumeProjection {
            service_account_token: Some(t.clone()),
            ..VolumeProjection::default()
        });
    }
    if let Some(t) = &s.service_account_token {
        // §5: the long-lived token of the service account's token Secret; expirationSeconds and
        // audience have no effect.
        return Ok(VolumeProjection {
            secret: Some(SecretProjection {
                name: rename(token_secret),
                items: Some(vec![KeyToPath {
                    key: TOKEN_KEY.into(),
                    path: t.path.clone(),
                    mode: None,
                }]),
                optional: None,
            }),
            ..VolumeProjection::default()
        });
    }
    Err(format!(
        "projected volume {volume:?}: clusterTrustBundle and podCertificate sources cannot run on CCI"
    ))
}

fn to_cci_container(
    namespace: &str,
    c: &Container,
    dropped_volumes: &BTreeSet<&str>,
) -> std::result::Result<Container, String> {
    let rename = |name: &str| mirror_name(namespace, name);
    let env = c.env.as_ref().map(|env| {
        env.iter()
            .map(|e| EnvVar {
                name: e.name.clone(),
                value: e.value.clone(),
                value_from: e.value_from.as_ref().map(|s| EnvVarSource {
                    config_map_key_ref: s.config_map_key_ref.as_ref().map(|r| {
                        ConfigMapKeySelector {
                            name: if breakage::is(Breakage::EnvConfigMapRefNotRenamed) {
                                r.name.clone()
                            } else {
                                rename(&r.name)
                            },
                            ..r.clone()
                        }
                    }),
                    secret_key_ref: s.secret_key_ref.as_ref().map(|r| SecretKeySelector {
                        name: rename(&r.name),
                        ..r.clone()
                    }),
                    ..s.clone()
                }),
            })
            .collect()
    });
    let env_from = c.env_from.as_ref().map(|from| {
        from.iter()
            .map(|f| EnvFromSource {
                prefix: f.prefix.clone(),
                config_map_ref: f.config_map_ref.as_ref().map(|r| ConfigMapEnvSource {
                    name: rename(&r.name),
                    optional: r.optional,
                }),
                secret_ref: f.secret_ref.as_ref().map(|r| SecretEnvSource {
                    name: rename(&r.name),
                    optional: r.optional,
                }),
            })
            .collect()
    });
    let mounts: Vec<VolumeMount> = c
        .volume_mounts
        .iter()
        .flatten()
        .filter(|m| {
            !dropped_volumes.contains(m.name.as_str())
                && !m.name.starts_with(KUBE_API_ACCESS_PREFIX)
        })
        .map(|m| VolumeMount {
            name: m.name.clone(),
            mount_path: m.mount_path.clone(),
            sub_path: m.sub_path.clone(),
            read_only: m.read_only,
            ..VolumeMount::default()
        })
        .collect();
    Ok(Container {
        name: c.name.clone(),
        image: c.image.clone(),
        command: c.command.clone(),
        args: c.args.clone(),
        env,
        env_from,
        ports: c.ports.as_ref().map(|ports| {
            ports
                .iter()
                .map(|p| ContainerPort {
                    container_port: p.container_port,
                    name: p.name.clone(),
                    protocol: p.protocol.clone(),
                    host_ip: None,
                    host_port: None,
                })
                .collect()
        }),
        resources: c
            .resources
            .as_ref()
            .map(|r| limits_equal_requests(&c.name, r))
            .transpose()?,
        volume_mounts: (!mounts.is_empty()).then_some(mounts),
        restart_policy: c.restart_policy.clone(),
        ..Container::default()
    })
}

/// `requests` and `limits` both set, per resource, to the request (CCI requires them equal,
/// §4; "limits made equal to requests"); a resource with a limit only gets the limit on both, as
/// Kubernetes defaults a missing request to the limit. A limit above the request is not lost: it
/// counts in the pod's size, which CCI gives the pod as a whole (see [`to_cci_pod`]).
fn limits_equal_requests(
    container: &str,
    r: &ResourceRequirements,
) -> std::result::Result<ResourceRequirements, String> {
    let empty = BTreeMap::new();
    let requests = r.requests.as_ref().unwrap_or(&empty);
    let limits = r.limits.as_ref().unwrap_or(&empty);
    let millis = |side: &str, resource: &str, q: &Quantity| {
        RulesQuantity::parse(&q.0)
            .ok()
            .and_then(|v| v.millis())
            .ok_or_else(|| {
                format!(
                    "container {container:?}: resources.{side}.{resource} {:?} is not a usable quantity",
                    q.0
                )
            })
    };
    let mut both = BTreeMap::new();
    for resource in requests.keys().chain(limits.keys()) {
        if both.contains_key(resource) {
            continue;
        }
        let value = match (requests.get(resource), limits.get(resource)) {
            (Some(req), Some(lim)) => {
                // Both are read, so an unusable limit is refused even though the request wins.
                millis("limits", resource, lim)?;
                millis("requests", resource, req)?;
                if breakage::is(Breakage::LimitsNotRequests) {
                    lim
                } else {
                    req
                }
            }
            (Some(one), None) | (None, Some(one)) => one,
            (None, None) => continue,
        };
        both.insert(resource.clone(), value.clone());
    }
    if both.is_empty() {
        return Ok(ResourceRequirements::default());
    }
    Ok(ResourceRequirements {
        requests: Some(both.clone()),
        limits: Some(both),
        claims: None,
    })
}

/// Labels and annotations of the CCI mirror of cluster object `namespace/name`.
fn mirror_meta(
    cluster_id: &str,
    namespace: &str,
    name: &str,
    resource_version: Option<&str>,
) -> ObjectMeta {
    let mut labels = BTreeMap::from([(LABEL_CLUSTER_ID.to_string(), cluster_id.to_string())]);
    let dotted = mirror_name(namespace, name);
    // NB: a label value holds at most 63 characters; the annotation always names the object.
    if dotted.len() <= 63 {
        labels.insert(LABEL_CLUSTER_OBJECT.to_string(), dotted.clone());
    }
    let mut annotations = BTreeMap::from([(
        ANNOTATION_CLUSTER_OBJECT.to_string(),
        format!("{namespace}/{name}"),
    )]);
    if let Some(rv) = resource_version {
        annotations.insert(
            ANNOTATION_CLUSTER_RESOURCE_VERSION.to_string(),
            rv.to_string(),
        );
    }
    ObjectMeta {
        name: Some(dotted),
        namespace: Some(cci_api::namespace_for_cluster(cluster_id)),
        labels: Some(labels),
        annotations: Some(annotations),
        ..ObjectMeta::default()
    }
}

fn namespace_and_name(meta: &ObjectMeta) -> (&str, &str) {
    (
        meta.namespace.as_deref().unwrap_or_default(),
        meta.name.as_deref().unwrap_or_default(),
    )
}

/// The CCI mirror of a cluster ConfigMap: data, binary data and immutability.
pub fn cci_config_map(cm: &ConfigMap, cluster_id: &str) -> cci_api::ConfigMap {
    let (namespace, name) = namespace_and_name(&cm.metadata);
    cci_api::ConfigMap {
        binary_data: cm.binary_data.clone(),
        immutable: cm.immutable,
        ..cci_api::ConfigMap::new(
            mirror_meta(
                cluster_id,
                namespace,
                name,
                cm.metadata.resource_version.as_deref(),
            ),
            cm.data.clone().unwrap_or_default(),
        )
    }
}

/// The CCI mirror of a cluster Secret: data and type. A service account token Secret becomes
/// `Opaque` (on CCI it is only the token's carrier); `stringData` is write-only and never read
/// back from the cluster.
pub fn cci_secret(secret: &Secret, cluster_id: &str) -> cci_api::Secret {
    let (namespace, name) = namespace_and_name(&secret.metadata);
    let type_ = match secret.type_.as_deref() {
        Some(SERVICE_ACCOUNT_TOKEN_TYPE) => Some("Opaque".to_string()),
        other => other.map(str::to_string),
    };
    cci_api::Secret {
        type_,
        immutable: secret.immutable,
        ..cci_api::Secret::new(
            mirror_meta(
                cluster_id,
                namespace,
                name,
                secret.metadata.resource_version.as_deref(),
            ),
            secret.data.clone().unwrap_or_default(),
        )
    }
}

/// The CCI mirror of a cluster claim: access modes, size, storage class and volume mode. The
/// binding to a cluster volume (`volumeName`, `selector`, `dataSource`) means nothing on CCI.
pub fn cci_claim(
    claim: &PersistentVolumeClaim,
    cluster_id: &str,
) -> cci_api::PersistentVolumeClaim {
    let (namespace, name) = namespace_and_name(&claim.metadata);
    let spec = claim.spec.clone().unwrap_or_default();
    cci_api::PersistentVolumeClaim::new(
        mirror_meta(
            cluster_id,
            namespace,
            name,
            claim.metadata.resource_version.as_deref(),
        ),
        PersistentVolumeClaimSpec {
            access_modes: spec.access_modes,
            resources: spec.resources,
            storage_class_name: spec.storage_class_name,
            volume_mode: spec.volume_mode,
            ..PersistentVolumeClaimSpec::default()
        },
    )
}

/// The cluster pod a CCI pod stands for, with its status mapped back and its flavour as the
/// cluster pod's annotations (§1); `None` for a CCI pod the engine did not create (no UID
/// label, or no readable cluster name).
pub fn remote_pod(cci: &cci_api::PodSummary) -> Option<vk::RemotePod> {
    let m = &cci.metadata;
    let uid = m.labels.as_ref()?.get(LABEL_CLUSTER_POD_UID)?.clone();
    let (namespace, name) = match m
        .annotations
        .as_ref()
        .and_then(|a| a.get(ANNOTATION_CLUSTER_POD))
    {
        Some(annotation) => annotation.split_once('/')?,
        None => cluster_pod_of(m.name.as_deref()?)?,
    };
    Some(vk::RemotePod {
        namespace: namespace.to_string(),
        name: name.to_string(),
        uid,
        status: cci
            .status
            .as_ref()
            .map(|s| cluster_status(s, &cci.spec.containers)),
        // The flavour the pod was rounded up to, for the cluster pod (§1): written with its
        // status, so a burst pod costs the API server one write, not two.
        annotations: m
            .annotations
            .as_ref()
            .and_then(|a| a.get(burst_rules::flavour::ANNOTATION_SIZE))
            .and_then(|size| burst_rules::flavour::parse_pod_size_specs(size).ok())
            .map(|flavour| flavour.cluster_pod_annotations())
            .unwrap_or_default(),
    })
}

/// The UID label of a CCI pod.
pub fn cluster_uid_of(cci: &cci_api::Pod) -> Option<&str> {
    cci.metadata
        .labels
        .as_ref()?
        .get(LABEL_CLUSTER_POD_UID)
        .map(String::as_str)
}

/// The cluster pod status for a CCI pod status: phase, reason, message, IPs, start time,
/// conditions and container statuses.
///
/// Fields that belong to the cluster (QoS class, observed generation, nominated node, resize,
/// resource claims) are left out. `podIPs`/`hostIPs` are derived from `podIP`/`hostIP` when CCI
/// only gives the latter, since the API server requires them to agree. A container status
/// without an image gets the image of the CCI spec's container of that name.
pub fn cluster_status(cci: &PodStatus, containers: &[cci_api::ContainerSummary]) -> PodStatus {
    let image_of = |name: &str| {
        containers
            .iter()
            .find(|c| c.name == name)
            .and_then(|c| c.image.clone())
            .unwrap_or_default()
    };
    let container = |s: &ContainerStatus| ContainerStatus {
        name: s.name.clone(),
        state: s.state.clone(),
        last_state: s.last_state.clone(),
        ready: s.ready,
        restart_count: s.restart_count,
        image: if s.image.is_empty() {
            image_of(&s.name)
        } else {
            s.image.clone()
        },
        image_id: s.image_id.clone(),
        container_id: s.container_id.clone(),
        started: s.started,
        ..ContainerStatus::default()
    };
    let condition = |c: &PodCondition| PodCondition {
        type_: c.type_.clone(),
        status: c.status.clone(),
        reason: c.reason.clone(),
        message: c.message.clone(),
        last_probe_time: c.last_probe_time.clone(),
        last_transition_time: c.last_transition_time.clone(),
        observed_generation: None,
    };
    let pod_ips = cci
        .pod_ips
        .clone()
        .or_else(|| cci.pod_ip.as_ref().map(|ip| vec![PodIP { ip: ip.clone() }]));
    let host_ips = cci.host_ips.clone().or_else(|| {
        cci.host_ip
            .as_ref()
            .map(|ip| vec![HostIP { ip: ip.clone() }])
    });
    PodStatus {
        phase: cci.phase.clone(),
        reason: cci.reason.clone(),
        message: cci.message.clone(),
        pod_ip: cci.pod_ip.clone(),
        pod_ips,
        host_ip: cci.host_ip.clone(),
        host_ips,
        start_time: cci.start_time.clone(),
        conditions: cci
            .conditions
            .as_ref()
            .map(|cs| cs.iter().map(condition).collect()),
        container_statuses: cci
            .container_statuses
            .as_ref()
            .map(|cs| cs.iter().map(container).collect()),
        ..PodStatus::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burst_rules::flavour::ANNOTATION_SIZE;
    use k8s_openapi::api::core::v1::{
        Affinity, ClusterTrustBundleProjection, ContainerState, ContainerStateRunning,
        DownwardAPIProjection, DownwardAPIVolumeFile, DownwardAPIVolumeSource,
        EmptyDirVolumeSource, NFSVolumeSource, ObjectFieldSelector, ResourceFieldSelector,
        ServiceAccountTokenProjection, Toleration, VolumeResourceRequirements,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
    use rstest::rstest;

    /// The release the engine runs as by default: every gate of the table but the last is open.
    const LATEST: Release = crate::DEFAULT_RELEASE;

    fn cluster_pod(namespace: &str, name: &str) -> Pod {
        Pod {
            metadata: ObjectMeta {
                namespace: Some(namespace.into()),
                name: Some(name.into()),
                uid: Some("6f1c0d7e-0000-4000-8000-000000000001".into()),
                labels: Some(BTreeMap::from([("app".into(), "web".into())])),
                ..ObjectMeta::default()
            },
            spec: Some(PodSpec {
                node_name: Some("bursting-node".into()),
                node_selector: Some(BTreeMap::from([("type".into(), "virtual-kubelet".into())])),
                affinity: Some(Affinity::default()),
                tolerations: Some(vec![Toleration {
                    key: Some("virtual-kubelet.io/provider".into()),
                    operator: Some("Exists".into()),
                    ..Toleration::default()
                }]),
                service_account_name: Some("default".into()),
                volumes: Some(vec![Volume {
                    name: "kube-api-access-abcde".into(),
                    ..Volume::default()
                }]),
                restart_policy: Some("Never".into()),
                containers: vec![Container {
                    name: "app".into(),
                    image: Some("nginx:1.27".into()),
                    command: Some(vec!["nginx".into()]),
                    args: Some(vec!["-g".into(), "daemon off;".into()]),
                    env: Some(vec![
                        EnvVar {
                            name: "MODE".into(),
                            value: Some("burst".into()),
                            value_from: None,
                        },
                        EnvVar {
                            name: "POD_NAME".into(),
                            value: None,
                            value_from: Some(EnvVarSource {
                                field_ref: Some(ObjectFieldSelector {
                                    field_path: "metadata.name".into(),
                                    api_version: None,
                                }),
                                ..EnvVarSource::default()
                            }),
                        },
                    ]),
                    ports: Some(vec![ContainerPort {
                        container_port: 80,
                        host_port: Some(8080),
                        name: Some("http".into()),
                        protocol: Some("TCP".into()),
                        host_ip: None,
                    }]),
                    resources: Some(ResourceRequirements {
                        requests: Some(BTreeMap::from([("cpu".into(), Quantity("500m".into()))])),
                        limits: Some(BTreeMap::from([("cpu".into(), Quantity("500m".into()))])),
                        claims: None,
                    }),
                    ..Container::default()
                }],
                ..PodSpec::default()
            }),
            status: None,
        }
    }

    #[test]
    fn a_cluster_pod_becomes_a_cci_pod_named_namespace_dot_name_in_the_cluster_namespace() {
        let cci = to_cci_pod(&cluster_pod("shop", "web-0"), "c1", LATEST, None).unwrap();
        assert_eq!(cci.api_version, "cci/v2");
        assert_eq!(cci.kind, "Pod");
        assert_eq!(cci.metadata.name.as_deref(), Some("shop.web-0"));
        assert_eq!(cci.metadata.namespace.as_deref(), Some("bursting-c1"));
        assert_eq!(
            cci.metadata.labels.unwrap()[LABEL_CLUSTER_POD_UID],
            "6f1c0d7e-0000-4000-8000-000000000001"
        );
        assert_eq!(
            cci.metadata.annotations.unwrap()[ANNOTATION_CLUSTER_POD],
            "shop/web-0"
        );
    }

    #[test]
    fn the_cci_pod_carries_the_cluster_pods_labels_and_the_engines_own_label_wins() {
        let mut pod = cluster_pod("shop", "pi-x7k2p");
        pod.metadata.labels = Some(BTreeMap::from([
            ("job-name".into(), "pi".into()),
            ("batch.kubernetes.io/job-name".into(), "pi".into()),
            ("virtual-kubelet.io/burst-to-cci".into(), "enforce".into()),
            // A label claiming another pod's identity must not hide this pod's.
            (LABEL_CLUSTER_POD_UID.into(), "someone-else".into()),
        ]));
        let labels = to_cci_pod(&pod, "c1", LATEST, None)
            .unwrap()
            .metadata
            .labels
            .unwrap();
        assert_eq!(
            labels,
            BTreeMap::from([
                ("batch.kubernetes.io/job-name".to_string(), "pi".to_string()),
                ("job-name".to_string(), "pi".to_string()),
                (
                    "virtual-kubelet.io/burst-to-cci".to_string(),
                    "enforce".to_string()
                ),
                (
                    LABEL_CLUSTER_POD_UID.to_string(),
                    "6f1c0d7e-0000-4000-8000-000000000001".to_string()
                ),
            ])
        );
        // The identity read back is the pod's own UID.
        let cci = to_cci_pod(&pod, "c1", LATEST, None).unwrap();
        assert_eq!(
            cluster_uid_of(&cci),
            Some("6f1c0d7e-0000-4000-8000-000000000001")
        );
    }

    #[test]
    fn a_cluster_pod_without_labels_gets_only_the_engines_label() {
        let mut pod = cluster_pod("shop", "web-0");
        pod.metadata.labels = None;
        let labels = to_cci_pod(&pod, "c1", LATEST, None)
            .unwrap()
            .metadata
            .labels
            .unwrap();
        assert_eq!(
            labels.keys().collect::<Vec<_>>(),
            [LABEL_CLUSTER_POD_UID],
            "{labels:?}"
        );
    }

    #[test]
    fn containers_keep_what_runs_them_and_drop_what_binds_them_to_a_node() {
        let cci = to_cci_pod(&cluster_pod("shop", "web-0"), "c1", LATEST, None).unwrap();
        let spec = &cci.spec;
        assert_eq!(spec.restart_policy.as_deref(), Some("Never"));
        assert_eq!(spec.node_name, None);
        assert_eq!(spec.node_selector, None);
        assert_eq!(spec.affinity, None);
        assert_eq!(spec.tolerations, None);
        assert_eq!(spec.service_account_name, None);
        assert_eq!(spec.volumes, None);
        let c = &spec.containers[0];
        assert_eq!(c.image.as_deref(), Some("nginx:1.27"));
        assert_eq!(c.command.as_ref().unwrap(), &["nginx"]);
        assert_eq!(c.args.as_ref().unwrap().len(), 2);
        let env = c.env.as_ref().unwrap();
        assert_eq!(env.len(), 2, "fieldRef variables are kept");
        assert_eq!(env[0].value.as_deref(), Some("burst"));
        let field_ref = env[1].value_from.as_ref().unwrap().field_ref.as_ref();
        assert_eq!(field_ref.unwrap().field_path, "metadata.name");
        let port = &c.ports.as_ref().unwrap()[0];
        assert_eq!((port.container_port, port.host_port), (80, None));
        assert_eq!(
            c.resources.as_ref().unwrap().limits.as_ref().unwrap()["cpu"],
            Quantity("500m".into())
        );
    }

    #[test]
    fn a_cci_pod_name_of_253_characters_is_the_longest_that_runs() {
        let mut pod = cluster_pod("shop", "web-0");
        pod.metadata.name = Some("a".repeat(248));
        let cci = to_cci_pod(&pod, "c1", LATEST, None).expect("253 characters fit");
        assert_eq!(cci.metadata.name.map(|n| n.len()), Some(253));
    }

    #[test]
    fn translation_does_not_depend_on_the_cluster_pods_status() {
        let mut a = cluster_pod("shop", "web-0");
        let b = a.clone();
        a.status = Some(PodStatus {
            phase: Some("Pending".into()),
            ..PodStatus::default()
        });
        assert_eq!(
            to_cci_pod(&a, "c1", LATEST, None).unwrap(),
            to_cci_pod(&b, "c1", LATEST, None).unwrap()
        );
    }

    #[rstest]
    #[case::no_uid(|p: &mut Pod| p.metadata.uid = None, "has no uid")]
    #[case::no_namespace(|p: &mut Pod| p.metadata.namespace = None, "no namespace")]
    #[case::no_containers(|p: &mut Pod| p.spec.as_mut().unwrap().containers.clear(), "has no containers")]
    #[case::daemonset(|p: &mut Pod| p.metadata.owner_references = Some(vec![OwnerReference {
        kind: "DaemonSet".into(), name: "agent".into(), ..OwnerReference::default()
    }]), "DaemonSet pods never burst")]
    // `shop.` and 249 characters: 254, one over.
    #[case::name_too_long(|p: &mut Pod| p.metadata.name = Some("a".repeat(249)), "would be 254 characters, over CCI's 253")]
    fn pods_that_cannot_run_on_cci_are_refused_with_the_reason(
        #[case] break_it: fn(&mut Pod),
        #[case] hint: &str,
    ) {
        let mut pod = cluster_pod("shop", "web-0");
        break_it(&mut pod);
        let err = to_cci_pod(&pod, "c1", LATEST, None).unwrap_err();
        assert!(err.to_string().contains(hint), "{err}");
        assert!(matches!(
            vk::ProviderError::from(err),
            vk::ProviderError::InvalidInput(_)
        ));
    }

    #[rstest]
    #[case::plain("shop.web-0", Some(("shop", "web-0")))]
    #[case::dotted_pod_name("shop.web.v2", Some(("shop", "web.v2")))]
    #[case::no_dot("web-0", None)]
    #[case::empty_namespace(".web", None)]
    fn cci_names_split_back_at_the_first_dot(
        #[case] cci_name: &str,
        #[case] expected: Option<(&str, &str)>,
    ) {
        assert_eq!(cluster_pod_of(cci_name), expected);
    }

    #[rstest]
    #[case::plain("c1", true)]
    #[case::dashes("cluster-42", true)]
    // `bursting-` and 54 characters make a namespace name of 63, a DNS label's most.
    #[case::longest(&"a".repeat(54), true)]
    #[case::too_long(&"a".repeat(55), false)]
    #[case::upper("C1", false)]
    #[case::dot("c.1", false)]
    #[case::leading_dash("-c1", false)]
    #[case::empty("", false)]
    fn cluster_ids_must_make_a_namespace_name(#[case] id: &str, #[case] ok: bool) {
        assert_eq!(check_cluster_id(id).is_ok(), ok, "{id}");
        if ok {
            assert!(cci_api::namespace_for_cluster(id).len() <= 63, "{id}");
        }
    }

    #[test]
    fn the_cci_namespace_is_named_and_labelled_for_the_cluster() {
        let ns = cci_namespace("c1");
        assert_eq!(ns.metadata.name.as_deref(), Some("bursting-c1"));
        assert_eq!(ns.metadata.labels.unwrap()[LABEL_CLUSTER_ID], "c1");
        assert_eq!(ns.kind, "Namespace");
    }

    fn running_cci_pod() -> cci_api::Pod {
        let mut cci = to_cci_pod(&cluster_pod("shop", "web.v2"), "c1", LATEST, None).unwrap();
        cci.metadata.uid = Some("cci-uid".into());
        cci.status = Some(PodStatus {
            phase: Some("Running".into()),
            pod_ip: Some("192.168.0.9".into()),
            host_ip: Some("10.1.0.3".into()),
            qos_class: Some("Guaranteed".into()),
            observed_generation: Some(3),
            conditions: Some(vec![PodCondition {
                type_: "Ready".into(),
                status: "True".into(),
                observed_generation: Some(3),
                ..PodCondition::default()
            }]),
            container_statuses: Some(vec![ContainerStatus {
                name: "app".into(),
                ready: true,
                restart_count: 1,
                state: Some(ContainerState {
                    running: Some(ContainerStateRunning::default()),
                    ..ContainerState::default()
                }),
                ..ContainerStatus::default()
            }]),
            ..PodStatus::default()
        });
        cci
    }

    #[test]
    fn a_cci_pod_names_its_cluster_pod_and_brings_its_status_back() {
        let remote = remote_pod(&(&running_cci_pod()).into()).unwrap();
        assert_eq!(
            (remote.namespace.as_str(), remote.name.as_str()),
            ("shop", "web.v2")
        );
        assert_eq!(remote.uid, "6f1c0d7e-0000-4000-8000-000000000001");
        let status = remote.status.unwrap();
        assert_eq!(status.phase.as_deref(), Some("Running"));
        assert_eq!(status.pod_ip.as_deref(), Some("192.168.0.9"));
        assert_eq!(status.pod_ips.unwrap()[0].ip, "192.168.0.9");
        assert_eq!(status.host_ips.unwrap()[0].ip, "10.1.0.3");
        assert_eq!(status.qos_class, None);
        assert_eq!(status.observed_generation, None);
        assert_eq!(status.conditions.unwrap()[0].observed_generation, None);
        let cs = &status.container_statuses.unwrap()[0];
        assert_eq!((cs.ready, cs.restart_count), (true, 1));
        assert_eq!(cs.image, "nginx:1.27", "image filled in from the CCI spec");
    }

    #[test]
    fn every_field_of_a_cci_status_the_cluster_pod_has_is_carried_back_and_the_rest_left_out() {
        let time = "2026-12-03T07:00:00Z";
        let terminated = |code: i32, reason: &str| {
            serde_json::json!({"terminated": {"exitCode": code, "reason": reason,
                "startedAt": time, "finishedAt": time}})
        };
        let container = serde_json::json!({
            "name": "app", "image": "nginx:1.27", "imageID": "sha256:abc",
            "containerID": "containerd://c0ffee", "ready": false, "restartCount": 2,
            "started": false, "state": terminated(137, "OOMKilled"),
            "lastState": terminated(1, "Error"),
        });
        let mut on_cci = container.clone();
        on_cci["allocatedResources"] = serde_json::json!({"cpu": "1"});
        let cci: PodStatus = serde_json::from_value(serde_json::json!({
            "phase": "Failed", "reason": "Evicted", "message": "the node ran out of memory",
            "podIP": "192.168.0.9", "hostIP": "10.1.0.3", "startTime": time,
            "qosClass": "Guaranteed", "nominatedNodeName": "cci-node-7",
            "containerStatuses": [on_cci],
        }))
        .unwrap();
        let status = cluster_status(&cci, &[]);
        assert_eq!(
            serde_json::to_value(&status).unwrap(),
            serde_json::json!({
                "phase": "Failed", "reason": "Evicted", "message": "the node ran out of memory",
                "podIP": "192.168.0.9", "podIPs": [{"ip": "192.168.0.9"}],
                "hostIP": "10.1.0.3", "hostIPs": [{"ip": "10.1.0.3"}], "startTime": time,
                "containerStatuses": [container],
            })
        );
    }

    #[test]
    fn a_cci_pod_without_the_uid_label_is_not_ours() {
        let mut cci = running_cci_pod();
        cci.metadata.labels = None;
        assert_eq!(remote_pod(&(&cci).into()), None);
    }

    #[test]
    fn without_the_annotation_the_cluster_pod_is_read_from_the_cci_name() {
        let mut cci = running_cci_pod();
        cci.metadata.annotations = None;
        let remote = remote_pod(&(&cci).into()).unwrap();
        assert_eq!(
            (remote.namespace.as_str(), remote.name.as_str()),
            ("shop", "web.v2")
        );
    }

    // --- volumes, mounts, env, resources, size ---

    fn resources(pairs: &[(&str, &str, &str)]) -> ResourceRequirements {
        let side = |limits: bool| {
            let map: BTreeMap<String, Quantity> = pairs
                .iter()
                .map(|&(r, req, lim)| (r, if limits { lim } else { req }))
                .filter(|(_, v)| !v.is_empty())
                .map(|(r, v)| (r.to_string(), Quantity(v.into())))
                .collect();
            (!map.is_empty()).then_some(map)
        };
        ResourceRequirements {
            requests: side(false),
            limits: side(true),
            claims: None,
        }
    }

    /// A pod of 0.5 vCPU / 1 GiB in namespace `shop` with one app container and `volumes`.
    fn pod_with(volumes: Vec<Volume>, mounts: Vec<VolumeMount>) -> Pod {
        let mut pod = cluster_pod("shop", "web-0");
        let spec = pod.spec.as_mut().unwrap();
        spec.volumes = Some(volumes);
        spec.containers[0].volume_mounts = Some(mounts);
        spec.containers[0].resources =
            Some(resources(&[("cpu", "500m", "500m"), ("memory", "1Gi", "")]));
        pod
    }

    fn volume(name: &str, set: impl FnOnce(&mut Volume)) -> Volume {
        let mut v = Volume {
            name: name.into(),
            ..Volume::default()
        };
        set(&mut v);
        v
    }

    fn only_volume(pod: &Pod) -> Volume {
        let cci = to_cci_pod(pod, "c1", LATEST, Some("default-long-lived")).unwrap();
        let volumes = cci.spec.volumes.unwrap();
        assert_eq!(volumes.len(), 1, "{volumes:?}");
        volumes.into_iter().next().unwrap()
    }

    fn key_to_path(key: &str, path: &str) -> KeyToPath {
        KeyToPath {
            key: key.into(),
            path: path.into(),
            mode: None,
        }
    }

    #[rstest]
    #[case::empty_dir(
        volume("scratch", |v| v.empty_dir = Some(EmptyDirVolumeSource {
            medium: Some("Memory".into()), size_limit: Some(Quantity("1Gi".into())),
        })),
        volume("scratch", |v| v.empty_dir = Some(EmptyDirVolumeSource {
            medium: Some("Memory".into()), size_limit: Some(Quantity("1Gi".into())),
        })),
    )]
    #[case::localtime(
        volume("tz", |v| v.host_path = Some(HostPathVolumeSource {
            path: "/etc/localtime".into(), type_: Some("File".into()),
        })),
        volume("tz", |v| v.host_path = Some(HostPathVolumeSource {
            path: "/etc/localtime".into(), type_: Some("File".into()),
        })),
    )]
    #[case::config_map(
        volume("conf", |v| v.config_map = Some(ConfigMapVolumeSource {
            name: "app-config".into(), items: Some(vec![key_to_path("a", "b")]),
            default_mode: Some(0o440), optional: Some(true),
        })),
        volume("conf", |v| v.config_map = Some(ConfigMapVolumeSource {
            name: "shop.app-config".into(), items: Some(vec![key_to_path("a", "b")]),
            default_mode: Some(0o440), optional: Some(true),
        })),
    )]
    #[case::secret(
        volume("creds", |v| v.secret = Some(SecretVolumeSource {
            secret_name: Some("db".into()), items: Some(vec![key_to_path("pw", "password")]),
            default_mode: Some(0o400), optional: None,
        })),
        volume("creds", |v| v.secret = Some(SecretVolumeSource {
            secret_name: Some("shop.db".into()), items: Some(vec![key_to_path("pw", "password")]),
            default_mode: Some(0o400), optional: None,
        })),
    )]
    #[case::claim(
        volume("data", |v| v.persistent_volume_claim = Some(PersistentVolumeClaimVolumeSource {
            claim_name: "shared".into(), read_only: Some(true),
        })),
        volume("data", |v| v.persistent_volume_claim = Some(PersistentVolumeClaimVolumeSource {
            claim_name: "shop.shared".into(), read_only: Some(true),
        })),
    )]
    #[case::downward_api(
        volume("info", |v| v.downward_api = Some(downward())),
        volume("info", |v| v.downward_api = Some(downward())),
    )]
    #[case::projected(
        volume("bundle", |v| v.projected = Some(ProjectedVolumeSource {
            default_mode: Some(0o444),
            sources: Some(vec![
                VolumeProjection { config_map: Some(ConfigMapProjection {
                    name: "app-config".into(), items: None, optional: Some(true) }),
                    ..VolumeProjection::default() },
                VolumeProjection { secret: Some(SecretProjection {
                    name: "db".into(), items: Some(vec![key_to_path("pw", "pw")]), optional: None }),
                    ..VolumeProjection::default() },
                VolumeProjection { downward_api: Some(DownwardAPIProjection {
                    items: downward().items }), ..VolumeProjection::default() },
                VolumeProjection { service_account_token: Some(ServiceAccountTokenProjection {
                    path: "sa/token".into(), expiration_seconds: Some(600),
                    audience: Some("vault".into()) }),
                    ..VolumeProjection::default() },
            ]),
        })),
        volume("bundle", |v| v.projected = Some(ProjectedVolumeSource {
            default_mode: Some(0o444),
            sources: Some(vec![
                VolumeProjection { config_map: Some(ConfigMapProjection {
                    name: "shop.app-config".into(), items: None, optional: Some(true) }),
                    ..VolumeProjection::default() },
                VolumeProjection { secret: Some(SecretProjection {
                    name: "shop.db".into(), items: Some(vec![key_to_path("pw", "pw")]), optional: None }),
                    ..VolumeProjection::default() },
                VolumeProjection { downward_api: Some(DownwardAPIProjection {
                    items: downward().items }), ..VolumeProjection::default() },
                VolumeProjection { secret: Some(SecretProjection {
                    name: "shop.default-long-lived".into(),
                    items: Some(vec![key_to_path("token", "sa/token")]), optional: None }),
                    ..VolumeProjection::default() },
            ]),
        })),
    )]
    fn each_volume_type_cci_mounts_is_carried_over_with_mirrored_names(
        #[case] cluster: Volume,
        #[case] expected: Volume,
    ) {
        assert_eq!(only_volume(&pod_with(vec![cluster], vec![])), expected);
    }

    fn downward() -> DownwardAPIVolumeSource {
        DownwardAPIVolumeSource {
            default_mode: None,
            items: Some(vec![DownwardAPIVolumeFile {
                path: "labels".into(),
                field_ref: Some(ObjectFieldSelector {
                    field_path: "metadata.labels".into(),
                    api_version: None,
                }),
                ..DownwardAPIVolumeFile::default()
            }]),
        }
    }

    #[rstest]
    #[case::other_host_path(
        volume("logs", |v| v.host_path = Some(HostPathVolumeSource { path: "/var/log".into(), type_: None })),
        "hostPath volume \"logs\" (path \"/var/log\") cannot run on CCI"
    )]
    #[case::nfs(
        volume("share", |v| v.nfs = Some(NFSVolumeSource { path: "/x".into(), server: "nas".into(), read_only: None })),
        "nfs volume \"share\" cannot run on CCI"
    )]
    #[case::untyped(volume("nothing", |_| {}), "untyped volume \"nothing\"")]
    #[case::trust_bundle(
        volume("ca", |v| v.projected = Some(ProjectedVolumeSource { default_mode: None, sources: Some(vec![
            VolumeProjection { cluster_trust_bundle: Some(ClusterTrustBundleProjection {
                path: "ca.pem".into(), ..ClusterTrustBundleProjection::default() }),
                ..VolumeProjection::default() }]) })),
        "clusterTrustBundle and podCertificate sources cannot run on CCI"
    )]
    fn volumes_cci_cannot_mount_are_refused_naming_the_volume(
        #[case] cluster: Volume,
        #[case] hint: &str,
    ) {
        let err = to_cci_pod(&pod_with(vec![cluster], vec![]), "c1", LATEST, None).unwrap_err();
        assert!(err.to_string().contains(hint), "{err}");
        assert!(matches!(
            vk::ProviderError::from(err),
            vk::ProviderError::InvalidInput(_)
        ));
    }

    fn mount(name: &str, path: &str) -> VolumeMount {
        VolumeMount {
            name: name.into(),
            mount_path: path.into(),
            ..VolumeMount::default()
        }
    }

    #[test]
    fn mounts_keep_name_path_sub_path_and_read_only_and_the_api_access_volume_is_dropped() {
        let conf = volume("conf", |v| {
            v.config_map = Some(ConfigMapVolumeSource {
                name: "app-config".into(),
                ..ConfigMapVolumeSource::default()
            })
        });
        let api_access = volume("kube-api-access-x7k2p", |v| {
            v.projected = Some(ProjectedVolumeSource::default())
        });
        let kept = VolumeMount {
            sub_path: Some("nginx.conf".into()),
            read_only: Some(true),
            mount_propagation: Some("HostToContainer".into()),
            ..mount("conf", "/etc/nginx/nginx.conf")
        };
        let pod = pod_with(
            vec![conf, api_access],
            vec![
                kept.clone(),
                mount(
                    "kube-api-access-x7k2p",
                    "/var/run/secrets/kubernetes.io/serviceaccount",
                ),
            ],
        );
        let cci = to_cci_pod(&pod, "c1", LATEST, None).unwrap();
        assert_eq!(cci.spec.volumes.as_ref().unwrap().len(), 1);
        assert_eq!(
            cci.spec.containers[0].volume_mounts.as_ref().unwrap(),
            &vec![VolumeMount {
                mount_propagation: None,
                ..kept
            }]
        );
        assert!(
            !references(&pod, None)
                .keys()
                .any(|k| k.name.contains("token"))
        );
    }

    fn env_from_ref(name: &str, config_map: bool) -> EnvVar {
        let source = if config_map {
            EnvVarSource {
                config_map_key_ref: Some(ConfigMapKeySelector {
                    name: "app-config".into(),
                    key: "mode".into(),
                    optional: Some(true),
                }),
                ..EnvVarSource::default()
            }
        } else {
            EnvVarSource {
                secret_key_ref: Some(SecretKeySelector {
                    name: "db".into(),
                    key: "pw".into(),
                    optional: None,
                }),
                ..EnvVarSource::default()
            }
        };
        EnvVar {
            name: name.into(),
            value: None,
            value_from: Some(source),
        }
    }

    #[test]
    fn env_references_are_renamed_and_field_and_resource_refs_kept() {
        let mut pod = pod_with(vec![], vec![]);
        let c = &mut pod.spec.as_mut().unwrap().containers[0];
        let resource_ref = EnvVar {
            name: "CPU".into(),
            value: None,
            value_from: Some(EnvVarSource {
                resource_field_ref: Some(ResourceFieldSelector {
                    resource: "limits.cpu".into(),
                    ..ResourceFieldSelector::default()
                }),
                ..EnvVarSource::default()
            }),
        };
        c.env = Some(vec![
            env_from_ref("MODE", true),
            env_from_ref("PW", false),
            resource_ref.clone(),
        ]);
        c.env_from = Some(vec![
            EnvFromSource {
                prefix: Some("APP_".into()),
                config_map_ref: Some(ConfigMapEnvSource {
                    name: "app-config".into(),
                    optional: None,
                }),
                secret_ref: None,
            },
            EnvFromSource {
                prefix: None,
                config_map_ref: None,
                secret_ref: Some(SecretEnvSource {
                    name: "db".into(),
                    optional: Some(true),
                }),
            },
        ]);
        let cci = to_cci_pod(&pod, "c1", LATEST, None).unwrap();
        let c = &cci.spec.containers[0];
        let env = c.env.as_ref().unwrap();
        let cm = env[0]
            .value_from
            .as_ref()
            .unwrap()
            .config_map_key_ref
            .as_ref();
        assert_eq!(
            cm.unwrap(),
            &ConfigMapKeySelector {
                name: "shop.app-config".into(),
                key: "mode".into(),
                optional: Some(true)
            }
        );
        let secret = env[1].value_from.as_ref().unwrap().secret_key_ref.as_ref();
        assert_eq!(secret.unwrap().name, "shop.db");
        assert_eq!(env[2], resource_ref);
        let from = c.env_from.as_ref().unwrap();
        assert_eq!(from[0].prefix.as_deref(), Some("APP_"));
        assert_eq!(
            from[0].config_map_ref.as_ref().unwrap().name,
            "shop.app-config"
        );
        assert_eq!(
            from[1].secret_ref.as_ref().unwrap(),
            &SecretEnvSource {
                name: "shop.db".into(),
                optional: Some(true)
            }
        );
    }

    #[test]
    fn a_sidecar_init_container_keeps_its_restart_policy_and_a_plain_one_gets_none() {
        let mut pod = pod_with(vec![], vec![]);
        let init = |name: &str, restart_policy: Option<&str>| Container {
            name: name.into(),
            image: Some("busybox".into()),
            restart_policy: restart_policy.map(Into::into),
            ..Container::default()
        };
        pod.spec.as_mut().unwrap().init_containers =
            Some(vec![init("proxy", Some("Always")), init("setup", None)]);
        let cci = to_cci_pod(&pod, "c1", LATEST, None).unwrap();
        let policies: Vec<_> = cci
            .spec
            .init_containers
            .unwrap()
            .into_iter()
            .map(|c| c.restart_policy)
            .collect();
        assert_eq!(
            policies,
            [Some("Always".to_string()), None],
            "a native sidecar runs for the pod's life"
        );
    }

    #[test]
    fn init_containers_are_translated_like_app_containers() {
        let mut pod = pod_with(vec![], vec![]);
        pod.spec.as_mut().unwrap().init_containers = Some(vec![Container {
            name: "setup".into(),
            image: Some("busybox".into()),
            env: Some(vec![env_from_ref("PW", false)]),
            resources: Some(resources(&[("cpu", "250m", "1"), ("memory", "", "2Gi")])),
            volume_mounts: Some(vec![mount("kube-api-access-abcde", "/var/run")]),
            security_context: Some(Default::default()),
            ..Container::default()
        }]);
        let cci = to_cci_pod(&pod, "c1", LATEST, None).unwrap();
        let init = &cci.spec.init_containers.as_ref().unwrap()[0];
        assert_eq!(init.name, "setup");
        assert_eq!(init.security_context, None);
        assert_eq!(init.volume_mounts, None, "the api access mount is dropped");
        let pw = init.env.as_ref().unwrap()[0].value_from.as_ref().unwrap();
        assert_eq!(pw.secret_key_ref.as_ref().unwrap().name, "shop.db");
        let r = init.resources.as_ref().unwrap();
        assert_eq!(r.requests, r.limits);
        assert_eq!(r.limits.as_ref().unwrap()["cpu"], Quantity("250m".into()));
        // The init container (limit 1 vCPU / 2 GiB) is larger than the app container; CCI gets
        // only its request, so the engine pins the size.
        assert_eq!(size_on_cci(&cci), "1_2");
        let annotations = cci.metadata.annotations.unwrap();
        assert_eq!(annotations[ANNOTATION_POD_SIZE_SPECS], "1_2");
    }

    #[rstest]
    #[case::equal(("500m", "500m"), "500m")]
    #[case::limit_larger(("250m", "1"), "250m")]
    #[case::request_only(("300m", ""), "300m")]
    #[case::limit_only(("", "2"), "2")]
    fn limits_and_requests_both_become_the_request_or_else_the_limit(
        #[case] (request, limit): (&str, &str),
        #[case] both: &str,
    ) {
        let mut pod = pod_with(vec![], vec![]);
        pod.spec.as_mut().unwrap().containers[0].resources = Some(resources(&[
            ("cpu", request, limit),
            ("memory", "1Gi", "2Gi"),
        ]));
        let cci = to_cci_pod(&pod, "c1", LATEST, None).unwrap();
        let r = cci.spec.containers[0].resources.clone().unwrap();
        assert_eq!(r.requests, r.limits);
        let requests = r.requests.unwrap();
        assert_eq!(requests["cpu"], Quantity(both.into()));
        assert_eq!(requests["memory"], Quantity("1Gi".into()));
    }

    /// The size CCI gives a translated pod: its containers' rounded up, or the flavour it pins
    /// (CCI, not the engine, writes `resource.cci.io/size`).
    fn size_on_cci(cci: &cci_api::Pod) -> String {
        let pinned = cci
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(ANNOTATION_POD_SIZE_SPECS));
        burst_rules::flavour::size(&cci.spec, pinned.map(String::as_str))
            .unwrap()
            .flavour
            .spec()
    }

    #[rstest]
    #[case::seed_nginx(&[("cpu", "500m", "500m"), ("memory", "1Gi", "1Gi")], None, "0.5_1", None)]
    #[case::small(&[("cpu", "100m", ""), ("memory", "100Mi", "")], None, "0.25_0.5", None)]
    #[case::memory_heavy(&[("cpu", "1", ""), ("memory", "10Gi", "")], None, "2_10", None)]
    #[case::from_limits(&[("cpu", "500m", "3"), ("memory", "1Gi", "")], None, "4_4", Some("4_4"))]
    #[case::pinned(&[("cpu", "500m", ""), ("memory", "1Gi", "")], Some("2_4"), "2_4", Some("2_4"))]
    fn the_size_annotation_is_the_cluster_pods_size_pinned_when_the_containers_round_lower(
        #[case] container: &[(&str, &str, &str)],
        #[case] pinned: Option<&str>,
        #[case] size: &str,
        #[case] pinned_on_cci: Option<&str>,
    ) {
        let mut pod = pod_with(vec![], vec![]);
        pod.spec.as_mut().unwrap().containers[0].resources = Some(resources(container));
        if let Some(pinned) = pinned {
            pod.metadata.annotations = Some(BTreeMap::from([(
                ANNOTATION_POD_SIZE_SPECS.to_string(),
                pinned.to_string(),
            )]));
        }
        let cci = to_cci_pod(&pod, "c1", LATEST, None).unwrap();
        assert_eq!(size_on_cci(&cci), size);
        let annotations = cci.metadata.annotations.unwrap();
        assert_eq!(
            annotations.get(ANNOTATION_SIZE),
            None,
            "CCI writes the size itself"
        );
        assert_eq!(
            annotations
                .get(ANNOTATION_POD_SIZE_SPECS)
                .map(String::as_str),
            pinned_on_cci
        );
    }

    #[test]
    fn two_containers_with_limits_above_requests_are_sized_by_section_4_not_by_their_limits() {
        let mut pod = pod_with(vec![], vec![]);
        let mut second = pod.spec.as_ref().unwrap().containers[0].clone();
        second.name = "second".into();
        pod.spec.as_mut().unwrap().containers.push(second);
        for c in &mut pod.spec.as_mut().unwrap().containers {
            c.resources = Some(resources(&[("cpu", "500m", "1"), ("memory", "1Gi", "2Gi")]));
        }
        let cci = to_cci_pod(&pod, "c1", LATEST, None).unwrap();
        // max(0.5 + 0.5, 1, 1) vCPU, max(1 + 1, 2, 2) GiB; the requests alone round to 1_2 too.
        assert_eq!(size_on_cci(&cci), "1_2");
        let annotations = cci.metadata.annotations.clone().unwrap();
        assert_eq!(annotations.get(ANNOTATION_POD_SIZE_SPECS), None);
        for c in &cci.spec.containers {
            let r = c.resources.clone().unwrap();
            assert_eq!(r.requests, r.limits);
            assert_eq!(r.limits.unwrap()["cpu"], Quantity("500m".into()));
        }
    }

    #[rstest]
    #[case::too_many_cores(&[("cpu", "65", ""), ("memory", "1Gi", "")], "fits no CCI flavour")]
    #[case::too_much_memory(&[("cpu", "1", ""), ("memory", "600Gi", "")], "600Gi")]
    #[case::nothing_named(&[], "no container has cpu or memory")]
    fn a_pod_that_fits_no_flavour_is_refused_with_the_numbers(
        #[case] container: &[(&str, &str, &str)],
        #[case] hint: &str,
    ) {
        let mut pod = pod_with(vec![], vec![]);
        pod.spec.as_mut().unwrap().containers[0].resources = Some(resources(container));
        let err = to_cci_pod(&pod, "c1", LATEST, None).unwrap_err();
        assert!(err.to_string().contains(hint), "{err}");
        assert!(matches!(
            vk::ProviderError::from(err),
            vk::ProviderError::InvalidInput(_)
        ));
    }

    #[test]
    fn image_pulls_always_use_the_cci_pull_secret() {
        let mut pod = pod_with(vec![], vec![]);
        pod.spec.as_mut().unwrap().image_pull_secrets = Some(vec![LocalObjectReference {
            name: "my-registry".into(),
        }]);
        let cci = to_cci_pod(&pod, "c1", LATEST, None).unwrap();
        assert_eq!(
            cci.spec.image_pull_secrets.unwrap(),
            vec![LocalObjectReference {
                name: "imagepull-secret".into()
            }]
        );
    }

    #[test]
    fn references_name_every_object_once_and_are_optional_only_when_every_use_is() {
        let mut pod = pod_with(
            vec![
                volume("conf", |v| {
                    v.config_map = Some(ConfigMapVolumeSource {
                        name: "app-config".into(),
                        optional: Some(true),
                        ..ConfigMapVolumeSource::default()
                    })
                }),
                volume("data", |v| {
                    v.persistent_volume_claim = Some(PersistentVolumeClaimVolumeSource {
                        claim_name: "shared".into(),
                        read_only: None,
                    })
                }),
                volume("token", |v| {
                    v.projected = Some(ProjectedVolumeSource {
                        default_mode: None,
                        sources: Some(vec![VolumeProjection {
                            service_account_token: Some(ServiceAccountTokenProjection {
                                path: "token".into(),
                                ..ServiceAccountTokenProjection::default()
                            }),
                            ..VolumeProjection::default()
                        }]),
                    })
                }),
            ],
            vec![],
        );
        let spec = pod.spec.as_mut().unwrap();
        spec.service_account_name = Some("builder".into());
        // The ConfigMap is optional in the volume but required by this variable.
        let mut required = env_from_ref("MODE", true);
        required
            .value_from
            .as_mut()
            .unwrap()
            .config_map_key_ref
            .as_mut()
            .unwrap()
            .optional = None;
        spec.containers[0].env = Some(vec![required, env_from_ref("PW", false)]);
        spec.containers[0].env_from = Some(vec![EnvFromSource {
            secret_ref: Some(SecretEnvSource {
                name: "extra".into(),
                optional: Some(true),
            }),
            ..EnvFromSource::default()
        }]);
        let refs: Vec<(String, bool)> = references(&pod, Some("builder-long-lived"))
            .into_iter()
            .map(|(k, optional)| (k.to_string(), optional))
            .collect();
        assert_eq!(
            refs,
            [
                ("configmap shop/app-config", false),
                ("secret shop/builder-long-lived", false),
                ("secret shop/db", false),
                ("secret shop/extra", true),
                ("persistentvolumeclaim shop/shared", false),
            ]
            .map(|(k, o)| (k.to_string(), o))
        );
    }

    #[test]
    fn without_a_token_secret_a_pod_with_a_token_source_waits_naming_what_to_create() {
        let mut pod = pod_with(vec![token_volume()], vec![]);
        pod.spec.as_mut().unwrap().service_account_name = Some("reporter".into());
        assert_eq!(token_account(&pod), Some("reporter"));
        assert!(
            !references(&pod, None)
                .keys()
                .any(|k| k.kind == ObjectKind::Secret)
        );
        let err = to_cci_pod(&pod, "c1", LATEST, None).unwrap_err();
        let message = err.to_string();
        for needle in [
            "shop/reporter",
            "namespace shop",
            "type kubernetes.io/service-account-token",
            "annotation kubernetes.io/service-account.name: reporter",
        ] {
            assert!(message.contains(needle), "{needle:?} not in {message}");
        }
        assert!(matches!(
            vk::ProviderError::from(err),
            vk::ProviderError::Transient { .. }
        ));
    }

    #[test]
    fn a_refusal_comes_before_waiting_for_the_token_secret() {
        let pod = pod_with(
            vec![
                token_volume(),
                volume("nfs", |v| v.nfs = Some(NFSVolumeSource::default())),
            ],
            vec![],
        );
        let err = to_cci_pod(&pod, "c1", LATEST, None).unwrap_err();
        assert!(matches!(err, Error::Translate { .. }), "{err}");
    }

    #[test]
    fn only_a_token_source_outside_the_api_access_volume_needs_a_token_secret() {
        let mut api_access = token_volume();
        api_access.name = "kube-api-access-x7k2p".into();
        assert_eq!(token_account(&pod_with(vec![api_access], vec![])), None);
        assert_eq!(token_account(&cluster_pod("shop", "web-0")), None);
        let mut unnamed = pod_with(vec![token_volume()], vec![]);
        unnamed.spec.as_mut().unwrap().service_account_name = None;
        assert_eq!(token_account(&unnamed), Some("default"));
    }

    fn token_volume() -> Volume {
        volume("token", |v| {
            v.projected = Some(ProjectedVolumeSource {
                default_mode: None,
                sources: Some(vec![VolumeProjection {
                    service_account_token: Some(ServiceAccountTokenProjection {
                        path: "token".into(),
                        ..ServiceAccountTokenProjection::default()
                    }),
                    ..VolumeProjection::default()
                }]),
            })
        })
    }

    // --- choosing the token Secret ---

    const ACCOUNT_UID: &str = "sa-uid-1";

    fn account(listed: &[&str]) -> ServiceAccount {
        ServiceAccount {
            metadata: ObjectMeta {
                namespace: Some("shop".into()),
                name: Some("reporter".into()),
                uid: Some(ACCOUNT_UID.into()),
                ..ObjectMeta::default()
            },
            secrets: (!listed.is_empty()).then(|| {
                listed
                    .iter()
                    .map(|n| k8s_openapi::api::core::v1::ObjectReference {
                        name: Some((*n).into()),
                        ..Default::default()
                    })
                    .collect()
            }),
            ..ServiceAccount::default()
        }
    }

    /// A filled-in token Secret `name` of `reporter`, created at second `created` of the epoch.
    fn token_secret(name: &str, created: i64) -> Secret {
        Secret {
            metadata: ObjectMeta {
                namespace: Some("shop".into()),
                name: Some(name.into()),
                creation_timestamp: Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                    k8s_openapi::jiff::Timestamp::from_second(created).unwrap(),
                )),
                annotations: Some(BTreeMap::from([
                    (ANNOTATION_SERVICE_ACCOUNT_NAME.into(), "reporter".into()),
                    (ANNOTATION_SERVICE_ACCOUNT_UID.into(), ACCOUNT_UID.into()),
                ])),
                ..ObjectMeta::default()
            },
            type_: Some(SERVICE_ACCOUNT_TOKEN_TYPE.into()),
            data: Some(BTreeMap::from([(
                TOKEN_KEY.into(),
                k8s_openapi::ByteString(b"t0k3n".to_vec()),
            )])),
            ..Secret::default()
        }
    }

    fn chosen(account: &ServiceAccount, secrets: &[Secret]) -> Option<String> {
        match choose_token_secret(account, secrets) {
            TokenSecret::Ready(s) => s.metadata.name.clone(),
            TokenSecret::NotFilled(s) => Some(format!(
                "not filled: {}",
                s.metadata.name.as_deref().unwrap()
            )),
            TokenSecret::Missing => None,
        }
    }

    #[test]
    fn an_account_without_token_secrets_has_none() {
        assert_eq!(
            choose_token_secret(&account(&[]), &[]),
            TokenSecret::Missing
        );
    }

    #[test]
    fn the_one_token_secret_of_the_account_is_chosen_whatever_its_name() {
        let secrets = [token_secret("burster-long-lived", 10)];
        assert_eq!(
            chosen(&account(&[]), &secrets).as_deref(),
            Some("burster-long-lived")
        );
    }

    #[rstest]
    #[case::wrong_type(|s: &mut Secret| s.type_ = Some("Opaque".into()))]
    #[case::no_type(|s: &mut Secret| s.type_ = None)]
    #[case::another_account(|s: &mut Secret| {
        s.metadata.annotations.as_mut().unwrap()
            .insert(ANNOTATION_SERVICE_ACCOUNT_NAME.into(), "builder".into());
    })]
    #[case::no_account_annotation(|s: &mut Secret| {
        s.metadata.annotations.as_mut().unwrap().remove(ANNOTATION_SERVICE_ACCOUNT_NAME);
    })]
    #[case::an_earlier_account_of_the_same_name(|s: &mut Secret| {
        s.metadata.annotations.as_mut().unwrap()
            .insert(ANNOTATION_SERVICE_ACCOUNT_UID.into(), "sa-uid-0".into());
    })]
    #[case::another_namespace(|s: &mut Secret| s.metadata.namespace = Some("lab".into()))]
    fn a_secret_that_is_not_the_accounts_token_secret_is_never_chosen(
        #[case] spoil: fn(&mut Secret),
    ) {
        let mut secret = token_secret("reporter-token", 10);
        spoil(&mut secret);
        assert_eq!(
            choose_token_secret(&account(&["reporter-token"]), std::slice::from_ref(&secret)),
            TokenSecret::Missing
        );
    }

    #[test]
    fn a_token_secret_without_the_uid_annotation_counts_for_the_account() {
        let mut secret = token_secret("manual", 10);
        secret
            .metadata
            .annotations
            .as_mut()
            .unwrap()
            .remove(ANNOTATION_SERVICE_ACCOUNT_UID);
        assert_eq!(chosen(&account(&[]), &[secret]).as_deref(), Some("manual"));
    }

    #[test]
    fn of_several_the_one_listed_in_the_accounts_secrets_is_chosen_then_the_oldest_then_by_name() {
        let secrets = [
            token_secret("a-newest", 30),
            token_secret("b-listed", 20),
            token_secret("c-oldest", 10),
            token_secret("d-oldest-too", 10),
        ];
        assert_eq!(
            chosen(&account(&["b-listed"]), &secrets).as_deref(),
            Some("b-listed")
        );
        assert_eq!(chosen(&account(&[]), &secrets).as_deref(), Some("c-oldest"));
        let mut reversed = secrets.clone();
        reversed.reverse();
        assert_eq!(
            chosen(&account(&[]), &reversed).as_deref(),
            Some("c-oldest"),
            "the choice does not depend on the order the cluster lists them in"
        );
        // A listed name that is not a token Secret of the account changes nothing.
        assert_eq!(
            chosen(&account(&["absent"]), &secrets).as_deref(),
            Some("c-oldest")
        );
    }

    #[test]
    fn a_token_secret_with_its_token_is_chosen_before_one_still_being_filled_in() {
        let mut listed_empty = token_secret("listed-empty", 10);
        listed_empty.data = None;
        let filled = token_secret("filled", 20);
        assert_eq!(
            chosen(&account(&["listed-empty"]), &[listed_empty.clone(), filled]).as_deref(),
            Some("filled")
        );
        assert_eq!(
            chosen(&account(&[]), &[listed_empty]).as_deref(),
            Some("not filled: listed-empty")
        );
    }

    fn object_meta(name: &str) -> ObjectMeta {
        ObjectMeta {
            namespace: Some("shop".into()),
            name: Some(name.into()),
            resource_version: Some("42".into()),
            uid: Some("cluster-uid".into()),
            ..ObjectMeta::default()
        }
    }

    #[test]
    fn mirrored_objects_are_named_namespace_dot_name_and_labelled_for_the_cluster() {
        let cm = ConfigMap {
            metadata: object_meta("app-config"),
            data: Some(BTreeMap::from([("mode".into(), "fast".into())])),
            binary_data: Some(BTreeMap::from([(
                "logo.png".into(),
                k8s_openapi::ByteString(vec![0x89, b'P', b'N', b'G']),
            )])),
            immutable: Some(true),
        };
        let copy = cci_config_map(&cm, "c1");
        assert_eq!(copy.binary_data, cm.binary_data);
        assert_eq!(
            copy.immutable,
            Some(true),
            "an immutable ConfigMap stays so"
        );
        assert_eq!(copy.kind, "ConfigMap");
        assert_eq!(copy.metadata.name.as_deref(), Some("shop.app-config"));
        assert_eq!(copy.metadata.namespace.as_deref(), Some("bursting-c1"));
        assert_eq!(copy.metadata.uid, None);
        assert_eq!(copy.metadata.resource_version, None);
        let labels = copy.metadata.labels.unwrap();
        assert_eq!(labels[LABEL_CLUSTER_ID], "c1");
        assert_eq!(labels[LABEL_CLUSTER_OBJECT], "shop.app-config");
        let annotations = copy.metadata.annotations.unwrap();
        assert_eq!(annotations[ANNOTATION_CLUSTER_OBJECT], "shop/app-config");
        assert_eq!(annotations[ANNOTATION_CLUSTER_RESOURCE_VERSION], "42");
        assert_eq!(copy.data, cm.data);
    }

    #[test]
    fn a_name_too_long_for_a_label_value_is_only_in_the_annotation() {
        let cm = ConfigMap {
            metadata: object_meta(&"c".repeat(80)),
            ..ConfigMap::default()
        };
        let copy = cci_config_map(&cm, "c1");
        assert!(
            !copy
                .metadata
                .labels
                .unwrap()
                .contains_key(LABEL_CLUSTER_OBJECT)
        );
        assert!(copy.metadata.annotations.unwrap()[ANNOTATION_CLUSTER_OBJECT].ends_with("ccc"));
    }

    #[test]
    fn a_service_account_token_secret_is_mirrored_as_opaque_with_its_data() {
        let secret = Secret {
            metadata: object_meta("builder-token"),
            type_: Some("kubernetes.io/service-account-token".into()),
            data: Some(BTreeMap::from([(
                "token".into(),
                k8s_openapi::ByteString(b"t0k3n".to_vec()),
            )])),
            immutable: Some(true),
            ..Secret::default()
        };
        let copy = cci_secret(&secret, "c1");
        assert_eq!(copy.immutable, Some(true));
        assert_eq!(copy.type_.as_deref(), Some("Opaque"));
        assert_eq!(copy.data, secret.data);
        assert_eq!(copy.metadata.name.as_deref(), Some("shop.builder-token"));
    }

    #[test]
    fn a_claim_keeps_its_class_size_and_modes_but_not_its_cluster_binding() {
        let claim = PersistentVolumeClaim {
            metadata: object_meta("shared"),
            spec: Some(PersistentVolumeClaimSpec {
                access_modes: Some(vec!["ReadWriteMany".into()]),
                storage_class_name: Some("csi-nas".into()),
                volume_name: Some("pv-123".into()),
                volume_mode: Some("Filesystem".into()),
                resources: Some(VolumeResourceRequirements {
                    requests: Some(BTreeMap::from([(
                        "storage".into(),
                        Quantity("10Gi".into()),
                    )])),
                    limits: None,
                }),
                ..PersistentVolumeClaimSpec::default()
            }),
            status: None,
        };
        let copy = cci_claim(&claim, "c1");
        assert_eq!(copy.metadata.name.as_deref(), Some("shop.shared"));
        assert_eq!(copy.spec.storage_class_name.as_deref(), Some("csi-nas"));
        assert_eq!(copy.spec.volume_name, None);
        assert_eq!(copy.spec.volume_mode.as_deref(), Some("Filesystem"));
        assert_eq!(
            copy.spec.access_modes,
            Some(vec!["ReadWriteMany".to_string()])
        );
        assert_eq!(
            copy.spec.resources.unwrap().requests.unwrap()["storage"],
            Quantity("10Gi".into())
        );
    }

    // --- release ---

    fn annotations_at(release: &str) -> BTreeMap<String, String> {
        let release: Release = release.parse().unwrap();
        to_cci_pod(&cluster_pod("shop", "web-0"), "c1", release, None)
            .unwrap()
            .metadata
            .annotations
            .unwrap()
    }

    #[rstest]
    #[case::long_before("1.3.25", "v1")]
    #[case::just_before("1.5.17", "v1")]
    #[case::at_the_gate("1.5.18", "v2")]
    #[case::after("1.6.0", "v2")]
    fn the_cci_pod_names_the_sidecar_protocol_of_the_engines_release(
        #[case] release: &str,
        #[case] protocol: &str,
    ) {
        assert_eq!(
            annotations_at(release)[ANNOTATION_SIDECAR_PROTOCOL],
            protocol
        );
        assert_eq!(
            sidecar_protocol(release.parse().unwrap()),
            protocol,
            "the annotation and the proxy read the same function"
        );
    }

    #[rstest]
    #[case::older("1.5.17")]
    #[case::newer("1.5.18")]
    fn the_cci_pod_records_the_release_that_burst_it(#[case] release: &str) {
        assert_eq!(annotations_at(release)[ANNOTATION_RELEASE], release);
    }

    fn localtime() -> Volume {
        volume("tz", |v| {
            v.host_path = Some(HostPathVolumeSource {
                path: LOCALTIME_PATH.into(),
                type_: None,
            });
        })
    }

    fn projected_config() -> Volume {
        volume("bundle", |v| {
            v.projected = Some(ProjectedVolumeSource {
                default_mode: None,
                sources: Some(vec![VolumeProjection {
                    config_map: Some(ConfigMapProjection {
                        name: "app-config".into(),
                        items: None,
                        optional: None,
                    }),
                    ..VolumeProjection::default()
                }]),
            });
        })
    }

    #[rstest]
    #[case::localtime_before(
        localtime(),
        "1.5.8",
        Some("requires add-on release >= 1.5.9; this is 1.5.8")
    )]
    #[case::localtime_at(localtime(), "1.5.9", None)]
    #[case::downward_api_before(
        volume("info", |v| v.downward_api = Some(downward())),
        "1.3.24",
        Some("downwardAPI volume \"info\" cannot run on CCI: it requires add-on release >= 1.3.25; this is 1.3.24")
    )]
    #[case::downward_api_at(volume("info", |v| v.downward_api = Some(downward())), "1.3.25", None)]
    #[case::projected_before(projected_config(), "1.3.24", Some("projected volume \"bundle\""))]
    #[case::projected_at(projected_config(), "1.3.25", None)]
    fn release_gated_volumes_follow_the_engines_release_through_the_gate_table(
        #[case] cluster: Volume,
        #[case] release: &str,
        #[case] refusal: Option<&str>,
    ) {
        let pod = pod_with(vec![cluster], vec![]);
        let result = to_cci_pod(&pod, "c1", release.parse().unwrap(), None);
        match refusal {
            None => assert_eq!(result.unwrap().spec.volumes.unwrap().len(), 1),
            Some(hint) => {
                let err = result.unwrap_err();
                assert!(err.to_string().contains(hint), "{err}");
                assert!(matches!(
                    vk::ProviderError::from(err),
                    vk::ProviderError::InvalidInput(_)
                ));
            }
        }
    }

    #[test]
    fn the_injected_api_access_volume_is_dropped_whatever_the_release() {
        let mut pod = cluster_pod("shop", "web-0");
        pod.spec.as_mut().unwrap().volumes = Some(vec![volume("kube-api-access-x1y2z", |v| {
            v.projected = Some(ProjectedVolumeSource::default());
        })]);
        let cci = to_cci_pod(&pod, "c1", Release::new(1, 3, 0), None).unwrap();
        assert_eq!(cci.spec.volumes, None);
    }
}
