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
//!
//! # Where it lives
//!
//! One file per concern: `naming` (CCI names and the way back), `tokens` (the service account
//! token Secret), `references` (the objects a pod needs mirrored), `pod` (the CCI pod as a
//! whole), `volumes`, `containers`, `mirror` (the CCI copies of those objects) and `status` (a
//! CCI pod read back). Everything public is re-exported here: callers use `translate::…` only.
//! The injected `kube-api-access-*` volume, which several of them leave out, is named here.
//!
//! [`ANNOTATION_CLUSTER_POD`]: cci_api::ANNOTATION_CLUSTER_POD
//! [`ANNOTATION_RELEASE`]: cci_api::ANNOTATION_RELEASE
//! [`ANNOTATION_SIDECAR_PROTOCOL`]: cci_api::ANNOTATION_SIDECAR_PROTOCOL
//! [`Error::Translate`]: crate::Error::Translate
//! [`Error::WaitingForToken`]: crate::Error::WaitingForToken
//! [`Gate::DownwardApiAndProjected`]: burst_rules::release::Gate::DownwardApiAndProjected
//! [`Gate::EtcLocaltimeHostPath`]: burst_rules::release::Gate::EtcLocaltimeHostPath
//! [`Gate::SidecarV2`]: burst_rules::release::Gate::SidecarV2
//! [`LABEL_CLUSTER_POD_UID`]: cci_api::LABEL_CLUSTER_POD_UID
//! [`Release`]: burst_rules::release::Release

mod containers;
#[cfg(test)]
mod fixtures;
mod mirror;
mod naming;
mod pod;
mod references;
mod status;
mod tokens;
mod volumes;

pub use mirror::{
    ANNOTATION_CLUSTER_OBJECT, ANNOTATION_CLUSTER_RESOURCE_VERSION, LABEL_CLUSTER_OBJECT,
    cci_claim, cci_config_map, cci_secret,
};
pub use naming::{
    MAX_CCI_POD_NAME_LEN, MAX_CLUSTER_ID_LEN, cci_namespace, cci_pod_name, check_cluster_id,
    cluster_pod_of, identity, mirror_name,
};
pub use pod::{
    IMAGE_PULL_SECRET, SIDECAR_PROTOCOL_V1, SIDECAR_PROTOCOL_V2, sidecar_protocol, suffixed_name,
    to_cci_pod,
};
pub use references::{ObjectKey, ObjectKind, References, references};
pub use status::{cluster_status, cluster_uid_of, remote_pod};
pub use tokens::{
    ANNOTATION_SERVICE_ACCOUNT_NAME, ANNOTATION_SERVICE_ACCOUNT_UID, SERVICE_ACCOUNT_TOKEN_TYPE,
    TOKEN_KEY, TokenSecret, choose_token_secret, is_token_secret_of, missing_token_secret,
    token_account,
};
pub use volumes::LOCALTIME_PATH;

use k8s_openapi::api::core::v1::Volume;

/// Name prefix of the projected service account token volume the API server injects.
pub const KUBE_API_ACCESS_PREFIX: &str = "kube-api-access-";

fn is_kube_api_access(v: &Volume) -> bool {
    v.name.starts_with(KUBE_API_ACCESS_PREFIX)
}
