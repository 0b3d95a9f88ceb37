//! The add-on as Kubernetes objects, rendered from [`InstallParams`]. Pure: the PKI and the
//! target come in as values, so `burstcert render` and the installer print and apply the same
//! objects, and tests can read them without a cluster.

use std::collections::BTreeMap;

use k8s_openapi::api::admissionregistration::v1::{
    MatchCondition, MutatingWebhook, MutatingWebhookConfiguration, RuleWithOperations,
    ServiceReference, ValidatingWebhook, ValidatingWebhookConfiguration, WebhookClientConfig,
};
use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentSpec, DeploymentStrategy, RollingUpdateDeployment,
};
use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::{
    Affinity, Capabilities, Container, ContainerPort, EnvVar, EnvVarSource, KeyToPath,
    NodeAffinity, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm, ObjectFieldSelector,
    PodSecurityContext, PodSpec, PodTemplateSpec, Probe, ResourceRequirements, SeccompProfile,
    Secret, SecretVolumeSource, SecurityContext, Service, ServiceAccount, ServicePort, ServiceSpec,
    TCPSocketAction, Toleration, Volume, VolumeMount,
};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    LabelSelector, LabelSelectorRequirement, ObjectMeta,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{ApiResource, DynamicObject};
use kube::{Resource, ResourceExt as _};
use serde::Serialize;

use super::params::{InstallParams, avoids_arm};
use crate::pki::WebhookPki;

/// Where the add-on's objects live.
pub const NAMESPACE: &str = "kube-system";
/// Label on every object of the add-on (`app.kubernetes.io/part-of`).
pub const PART_OF: &str = "bursting-addon";
/// The virtual node the engine registers.
pub const VIRTUAL_NODE: &str = "bursting-node";
/// The webhook's Service, Deployment and configurations.
pub const WEBHOOK: &str = "bursting-webhook";
/// The virtual kubelet's Deployment.
pub const VIRTUAL_KUBELET: &str = "bursting-virtual-kubelet";
/// The Lease (in [`NAMESPACE`]) the virtual kubelet's replicas elect their leader on.
pub const LEADER_LEASE: &str = "bursting-node-virtual-kubelet";
/// The proxy's Deployment and Service (network interconnect).
pub const PROXY: &str = "bursting-proxy";
/// The port of the proxy's tunnels, in its pod and on its Service.
pub const PROXY_PORT: i32 = 8900;
/// The Secret with the CCI credential.
pub const CREDENTIALS: &str = "bursting-cci-credentials";
/// The key of [`CREDENTIALS`] holding the CA bundle CCI's certificate is checked against, when
/// the endpoint is a private one ([`InstallParams::cci_ca`]).
pub const CCI_CA_KEY: &str = "ca.crt";
/// Where the credentials Secret (the token, and the CCI CA bundle when there is one) is mounted
/// in the pods that speak CCI (read-only: the root file system is): `--cci-token-file` and
/// `--cci-ca-file` name files in it.
pub const CCI_CA_DIR: &str = "/etc/bursting/cci";
/// The key of the CCI token in the credentials Secret; `--cci-token-file` names
/// `{CCI_CA_DIR}/{TOKEN_KEY}`.
pub const TOKEN_KEY: &str = "token";
/// The key of the AK/SK pair (`AK:SK`) in the credentials Secret, when the add-on signs its
/// requests; `--cci-aksk-file` names `{CCI_CA_DIR}/{AKSK_KEY}`.
pub const AKSK_KEY: &str = "aksk";
/// The volume of the credentials Secret in the pods that speak CCI.
const CREDENTIALS_VOLUME: &str = "cci-credentials";
/// The Secret with the webhook's serving certificate.
pub const WEBHOOK_TLS: &str = "bursting-webhook-tls";
/// Annotation on the webhook's pod template: the fingerprint of the serving certificate it runs
/// with.
pub const TLS_FINGERPRINT_ANNOTATION: &str = "bursting.cci.io/tls-fingerprint";
/// The webhook's port in its pod.
pub const WEBHOOK_PORT: i32 = 8443;
/// The webhook Service's port.
pub const WEBHOOK_SERVICE_PORT: i32 = 443;
/// The gc jobs' service account.
pub const GC: &str = "bursting-gc";

/// Where the rendered add-on runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// A real cluster: webhooks addressed by Service, no host-node overlay.
    Production,
    /// A local cluster: the add-on's pods run on the harness's host node (they tolerate its
    /// taint and select it), and webhook configurations address the host node's service proxy
    /// by URL, because the API server cannot route to loopback pod addresses (see
    /// [`vk_hostnode`]).
    Local {
        /// Base URL the webhook Service is reachable at, e.g. `https://127.254.3.4:443`.
        webhook_url: String,
        /// Where the proxy Service is reachable, `IP:port` (e.g. `127.254.5.6:8900`): what the
        /// proxy registers for CCI pods' sidecars, so every replica registers the same endpoint
        /// and the host node's service proxy sends each tunnel to a ready one.
        proxy_endpoint: String,
        /// Label (and taint key) of the host node.
        host_label: String,
    },
}

impl Target {
    /// The local target of a host node with address block `block`: the webhook and the proxy
    /// addressed by their Services' addresses on it ([`vk_hostnode::service_vip`]).
    pub fn local(block: u8) -> Self {
        Target::Local {
            webhook_url: vk_hostnode::service_url(
                block,
                NAMESPACE,
                WEBHOOK,
                WEBHOOK_SERVICE_PORT as u16,
            ),
            proxy_endpoint: format!(
                "{}:{PROXY_PORT}",
                vk_hostnode::service_vip(block, NAMESPACE, PROXY)
            ),
            host_label: vk_hostnode::HOST_NODE_LABEL.into(),
        }
    }
}

/// One rendered object, ready to print or apply.
#[derive(Clone, Debug)]
pub struct Rendered {
    /// Its API resource (group, version, kind, plural).
    pub resource: ApiResource,
    /// Whether it lives in a namespace.
    pub namespaced: bool,
    /// The object.
    pub object: DynamicObject,
}

impl Rendered {
    fn of<K>(object: &K) -> Self
    where
        K: Resource<DynamicType = ()> + Serialize,
    {
        let resource = ApiResource::erase::<K>(&());
        let mut value = serde_json::to_value(object).expect("Kubernetes objects serialize");
        value["apiVersion"] = resource.api_version.clone().into();
        value["kind"] = resource.kind.clone().into();
        let object: DynamicObject =
            serde_json::from_value(value).expect("a serialized object is a dynamic object");
        Self {
            namespaced: object.metadata.namespace.is_some(),
            resource,
            object,
        }
    }

    /// `Kind/name` (with the namespace when there is one), for messages.
    pub fn describe(&self) -> String {
        match &self.object.metadata.namespace {
            Some(ns) => format!("{} {ns}/{}", self.resource.kind, self.object.name_any()),
            None => format!("{} {}", self.resource.kind, self.object.name_any()),
        }
    }
}

/// The labels every object of the add-on carries.
pub fn labels(params: &InstallParams, component: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app.kubernetes.io/part-of".into(), PART_OF.into()),
        ("app.kubernetes.io/component".into(), component.into()),
        ("app.kubernetes.io/managed-by".into(), "burstcert".into()),
        ("bursting.cci.io/release".into(), params.release.to_string()),
    ])
}

/// The label selector that finds every object of the add-on.
pub fn selector() -> String {
    format!("app.kubernetes.io/part-of={PART_OF}")
}

fn meta(params: &InstallParams, name: &str, component: &str, namespaced: bool) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.into()),
        namespace: namespaced.then(|| NAMESPACE.into()),
        labels: Some(labels(params, component)),
        ..ObjectMeta::default()
    }
}

fn rule(groups: &[&str], resources: &[&str], verbs: &[&str]) -> PolicyRule {
    let strings = |v: &[&str]| Some(v.iter().map(|s| (*s).to_owned()).collect());
    PolicyRule {
        api_groups: strings(groups),
        resources: strings(resources),
        verbs: verbs.iter().map(|s| (*s).to_owned()).collect(),
        ..PolicyRule::default()
    }
}

/// [`rule`] for the objects named `names` only.
fn named_rule(groups: &[&str], resources: &[&str], verbs: &[&str], names: &[&str]) -> PolicyRule {
    PolicyRule {
        resource_names: Some(names.iter().map(|s| (*s).to_owned()).collect()),
        ..rule(groups, resources, verbs)
    }
}

/// Least-privilege rules of each component (no wildcard verbs or resources).
fn rules_of(component: &str) -> Vec<PolicyRule> {
    const READ: &[&str] = &["get", "list", "watch"];
    match component {
        // Nodes and Leases are written by name only: its own node, its node's heartbeat and its
        // leader lease, never the control plane's leader leases or another node (BEHAVIOR.md
        // §13). `create` cannot be limited by name (Kubernetes does not know the name before
        // the object exists); creating an object that exists fails, so it touches no other.
        "virtual-kubelet" => vec![
            rule(&[""], &["nodes"], &["get", "list", "watch", "create"]),
            named_rule(
                &[""],
                &["nodes"],
                &["update", "patch", "delete"],
                &[VIRTUAL_NODE],
            ),
            named_rule(
                &[""],
                &["nodes/status"],
                &["get", "update", "patch"],
                &[VIRTUAL_NODE],
            ),
            rule(&["coordination.k8s.io"], &["leases"], &["create"]),
            named_rule(
                &["coordination.k8s.io"],
                &["leases"],
                &["get", "update", "patch"],
                &[VIRTUAL_NODE, LEADER_LEASE],
            ),
            rule(
                &[""],
                &["pods"],
                &["get", "list", "watch", "update", "patch", "delete"],
            ),
            rule(&[""], &["pods/status"], &["get", "update", "patch"]),
            // Mirrored to CCI: ConfigMaps and Secrets read and watched; claims read. A pod's
            // service account is read to find its token Secret (BEHAVIOR.md §5).
            rule(&[""], &["configmaps", "secrets"], READ),
            rule(
                &[""],
                &["persistentvolumeclaims", "serviceaccounts"],
                &["get"],
            ),
            rule(
                &["", "events.k8s.io"],
                &["events"],
                &["create", "update", "patch"],
            ),
            // Its kubelet API asks whether each caller may use it (`nodes/proxy`).
            rule(
                &["authorization.k8s.io"],
                &["subjectaccessreviews"],
                &["create"],
            ),
        ],
        "webhook" => vec![
            rule(
                &[""],
                &["pods", "persistentvolumeclaims", "namespaces", "nodes"],
                READ,
            ),
            // Deployments and ReplicaSets watched (metadata) for its owner cache.
            rule(&["apps"], &["deployments", "replicasets"], READ),
            rule(&["apps"], &["statefulsets", "daemonsets"], &["get"]),
            rule(&["batch"], &["jobs", "cronjobs"], &["get"]),
            rule(&["storage.k8s.io"], &["storageclasses"], READ),
            // Below 1.5.5 a pod's admission looks for LoadBalancer Services that select it.
            rule(&[""], &["services"], &["list"]),
            rule(
                &["", "events.k8s.io"],
                &["events"],
                &["create", "update", "patch"],
            ),
        ],
        // A tunnel goes to a ready pod of its Service (engine/src/tunnel.rs).
        "proxy" => vec![
            rule(&[""], &["services"], &["get"]),
            rule(&[""], &["pods"], &["list"]),
        ],
        _ => Vec::new(),
    }
}

fn rbac(params: &InstallParams, name: &str, component: &str) -> Vec<Rendered> {
    let account = ServiceAccount {
        metadata: meta(params, name, component, true),
        ..ServiceAccount::default()
    };
    let mut out = vec![Rendered::of(&account)];
    let rules = rules_of(component);
    if rules.is_empty() {
        return out;
    }
    let role = ClusterRole {
        metadata: meta(params, name, component, false),
        rules: Some(rules),
        ..ClusterRole::default()
    };
    let binding = ClusterRoleBinding {
        metadata: meta(params, name, component, false),
        role_ref: RoleRef {
            api_group: Some("rbac.authorization.k8s.io".into()),
            kind: "ClusterRole".into(),
            name: name.into(),
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".into(),
            name: name.into(),
            namespace: Some(NAMESPACE.into()),
            ..Subject::default()
        }]),
    };
    out.push(Rendered::of(&role));
    out.push(Rendered::of(&binding));
    out
}

/// glibc malloc settings of the virtual kubelet: one arena, and a fixed mmap threshold (128 KiB,
/// glibc's initial one) so that large buffers are always mapped and unmapped.
///
/// The engine's live heap at 4000 burst pods is ~70 MiB (heaptrack; 87 MiB at peak), but its
/// resident set was 133–144 MiB: per-thread arenas, and the holes that transient buffers (300
/// KiB ConfigMaps read and copied to CCI, lists of thousands of pods) leave once glibc raises its
/// mmap threshold to their size and serves the next ones from the heap. With these two settings
/// the same binary stayed at 114 MiB, peak 119 MiB (`burstcert bench`, docs/benchmarks.md). One arena
/// costs little: the engine runs on a handful of threads.
pub const MALLOC_TUNING: [(&str, &str); 2] = [
    ("MALLOC_ARENA_MAX", "1"),
    ("MALLOC_MMAP_THRESHOLD_", "131072"),
];

fn env(name: &str, value: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value: Some(value.into()),
        ..EnvVar::default()
    }
}

fn field_env(name: &str, field_path: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                field_path: field_path.into(),
                ..ObjectFieldSelector::default()
            }),
            ..EnvVarSource::default()
        }),
        ..EnvVar::default()
    }
}

fn pod_ip_env() -> EnvVar {
    field_env("POD_IP", "status.podIP")
}

/// The arguments naming the credential files: the token (read again when the Secret is
/// renewed, and on a 401), and the CCI CA bundle when the endpoint has one.
fn cci_credential_args(params: &InstallParams) -> Vec<String> {
    let credential = match params.cci_aksk {
        Some(_) => format!("--cci-aksk-file={CCI_CA_DIR}/{AKSK_KEY}"),
        None => format!("--cci-token-file={CCI_CA_DIR}/{TOKEN_KEY}"),
    };
    std::iter::once(credential)
        .chain(
            params
                .cci_ca
                .iter()
                .map(|_| format!("--cci-ca-file={CCI_CA_DIR}/{CCI_CA_KEY}")),
        )
        .collect()
}

/// `spec`'s first container (the one that speaks CCI) with the credentials Secret mounted
/// read-only: the token, and the CCI CA bundle when the endpoint has one. A file, not an
/// environment variable, so a renewed token reaches the running container (the kubelet updates
/// a Secret's files, never a container's environment) and no `describe` of the pod shows where
/// it could be copied from.
fn mount_cci_credentials(params: &InstallParams, spec: &mut PodSpec) {
    let key = |key: &str| KeyToPath {
        key: key.into(),
        path: key.into(),
        ..KeyToPath::default()
    };
    let mut items = vec![key(match params.cci_aksk {
        Some(_) => AKSK_KEY,
        None => TOKEN_KEY,
    })];
    if params.cci_ca.is_some() {
        items.push(key(CCI_CA_KEY));
    }
    spec.volumes.get_or_insert_default().push(Volume {
        name: CREDENTIALS_VOLUME.into(),
        secret: Some(SecretVolumeSource {
            secret_name: Some(CREDENTIALS.into()),
            items: Some(items),
            ..SecretVolumeSource::default()
        }),
        ..Volume::default()
    });
    if let Some(container) = spec.containers.first_mut() {
        container
            .volume_mounts
            .get_or_insert_default()
            .push(VolumeMount {
                name: CREDENTIALS_VOLUME.into(),
                mount_path: CCI_CA_DIR.into(),
                read_only: Some(true),
                ..VolumeMount::default()
            });
    }
}

/// The user and group every container of the add-on runs as: not root, and a number, so the
/// kubelet can check `runAsNonRoot` without reading the image (the distroless "nonroot" user).
pub const RUN_AS: i64 = 65532;

/// What each container of the add-on may do: Pod Security's `restricted` profile (non-root, a
/// read-only root file system, every capability dropped, no privilege escalation, the runtime's
/// seccomp profile). The components write no file; they read their mounts only.
fn restricted() -> SecurityContext {
    SecurityContext {
        run_as_non_root: Some(true),
        run_as_user: Some(RUN_AS),
        run_as_group: Some(RUN_AS),
        read_only_root_filesystem: Some(true),
        allow_privilege_escalation: Some(false),
        capabilities: Some(Capabilities {
            drop: Some(vec!["ALL".into()]),
            ..Capabilities::default()
        }),
        seccomp_profile: Some(SeccompProfile {
            type_: "RuntimeDefault".into(),
            ..SeccompProfile::default()
        }),
        ..SecurityContext::default()
    }
}

/// The pod-level half of [`restricted`].
fn restricted_pod() -> PodSecurityContext {
    PodSecurityContext {
        run_as_non_root: Some(true),
        run_as_user: Some(RUN_AS),
        run_as_group: Some(RUN_AS),
        seccomp_profile: Some(SeccompProfile {
            type_: "RuntimeDefault".into(),
            ..SeccompProfile::default()
        }),
        ..PodSecurityContext::default()
    }
}

fn container(params: &InstallParams, name: &str, args: Vec<String>, env: Vec<EnvVar>) -> Container {
    let (cpu, memory) = params.spec.resources();
    let amounts = BTreeMap::from([
        ("cpu".to_owned(), Quantity(cpu.to_owned())),
        ("memory".to_owned(), Quantity(memory.to_owned())),
    ]);
    Container {
        name: name.into(),
        image: Some(params.image()),
        image_pull_policy: Some("IfNotPresent".into()),
        // A crashing component's last log lines become its termination message, so a failed
        // install (and `kubectl describe`) shows the component's own words.
        termination_message_policy: Some("FallbackToLogsOnError".into()),
        args: Some(args),
        env: Some(env),
        resources: Some(ResourceRequirements {
            requests: Some(amounts.clone()),
            limits: Some(amounts),
            ..ResourceRequirements::default()
        }),
        security_context: Some(restricted()),
        ..Container::default()
    }
}

/// Scheduling constraints of the add-on's pods: off Arm nodes up to 1.5.37 (§2); on local
/// clusters, onto the host node.
fn place(params: &InstallParams, target: &Target, spec: &mut PodSpec) {
    if avoids_arm(params.release) {
        spec.affinity = Some(Affinity {
            node_affinity: Some(NodeAffinity {
                required_during_scheduling_ignored_during_execution: Some(NodeSelector {
                    node_selector_terms: vec![NodeSelectorTerm {
                        match_expressions: Some(vec![NodeSelectorRequirement {
                            key: "kubernetes.io/arch".into(),
                            operator: "In".into(),
                            values: Some(vec!["amd64".into()]),
                        }]),
                        ..NodeSelectorTerm::default()
                    }],
                }),
                ..NodeAffinity::default()
            }),
            ..Affinity::default()
        });
    }
    if let Target::Local { host_label, .. } = target {
        spec.node_selector = Some(BTreeMap::from([(host_label.clone(), "true".into())]));
        spec.tolerations = Some(vec![Toleration {
            key: Some(host_label.clone()),
            operator: Some("Exists".into()),
            effect: Some("NoSchedule".into()),
            ..Toleration::default()
        }]);
    }
}

fn deployment(
    params: &InstallParams,
    target: &Target,
    name: &str,
    component: &str,
    replicas: i32,
    strategy: DeploymentStrategy,
    mut pod: PodSpec,
) -> Deployment {
    let select = BTreeMap::from([
        ("app.kubernetes.io/part-of".to_owned(), PART_OF.to_owned()),
        (
            "app.kubernetes.io/component".to_owned(),
            component.to_owned(),
        ),
    ]);
    pod.service_account_name = Some(name.into());
    pod.security_context = Some(restricted_pod());
    place(params, target, &mut pod);
    Deployment {
        metadata: meta(params, name, component, true),
        spec: Some(DeploymentSpec {
            replicas: Some(replicas),
            selector: LabelSelector {
                match_labels: Some(select),
                ..LabelSelector::default()
            },
            strategy: Some(strategy),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels(params, component)),
                    ..ObjectMeta::default()
                }),
                spec: Some(pod),
            },
            ..DeploymentSpec::default()
        }),
        ..Deployment::default()
    }
}

/// Replaced pod by pod, a new one Ready before an old one goes: the webhook never lapses (§9).
fn rolling() -> DeploymentStrategy {
    DeploymentStrategy {
        type_: Some("RollingUpdate".into()),
        rolling_update: Some(RollingUpdateDeployment {
            max_surge: Some(IntOrString::Int(1)),
            max_unavailable: Some(IntOrString::Int(0)),
        }),
    }
}

fn webhook_client(target: &Target, path: &str, ca: &str) -> WebhookClientConfig {
    let ca_bundle = Some(k8s_openapi::ByteString(ca.as_bytes().to_vec()));
    match target {
        Target::Production => WebhookClientConfig {
            service: Some(ServiceReference {
                namespace: NAMESPACE.into(),
                name: WEBHOOK.into(),
                path: Some(path.into()),
                port: Some(WEBHOOK_SERVICE_PORT),
            }),
            ca_bundle,
            ..WebhookClientConfig::default()
        },
        Target::Local { webhook_url, .. } => WebhookClientConfig {
            url: Some(format!("{}{path}", webhook_url.trim_end_matches('/'))),
            ca_bundle,
            ..WebhookClientConfig::default()
        },
    }
}

/// Namespaces whose pods never go through the webhook, so the cluster itself never depends on it.
fn namespace_selector() -> LabelSelector {
    LabelSelector {
        match_expressions: Some(vec![LabelSelectorRequirement {
            key: "kubernetes.io/metadata.name".into(),
            operator: "NotIn".into(),
            values: Some(vec![
                "kube-system".into(),
                "kube-node-lease".into(),
                "kube-public".into(),
            ]),
        }]),
        ..LabelSelector::default()
    }
}

/// Pods the API server never sends to the webhook, so a down add-on cannot block node agents or
/// static pods (BEHAVIOR.md §13, SAFE-02): those a DaemonSet controls (they never burst, WL-06)
/// and mirror pods of static pods (the kubelet's, annotated `kubernetes.io/config.mirror`).
fn pods_never_intercepted() -> Vec<MatchCondition> {
    vec![
        MatchCondition {
            name: "not-a-daemonset-pod".into(),
            expression: "!has(object.metadata.ownerReferences) || \
                         !object.metadata.ownerReferences.exists(o, \
                         has(o.controller) && o.controller && o.kind == 'DaemonSet' && \
                         o.apiVersion.startsWith('apps/'))"
                .into(),
        },
        MatchCondition {
            name: "not-a-mirror-pod".into(),
            expression: "!has(object.metadata.annotations) || \
                         !('kubernetes.io/config.mirror' in object.metadata.annotations)"
                .into(),
        },
    ]
}

fn webhook_configurations(
    params: &InstallParams,
    target: &Target,
    pki: &WebhookPki,
) -> Vec<Rendered> {
    let rule = |operations: &[&str], resource: &str| RuleWithOperations {
        operations: Some(operations.iter().map(|s| (*s).to_owned()).collect()),
        api_groups: Some(vec![String::new()]),
        api_versions: Some(vec!["v1".into()]),
        resources: Some(vec![resource.into()]),
        scope: Some("Namespaced".into()),
    };
    let mutating = MutatingWebhookConfiguration {
        metadata: meta(params, WEBHOOK, "webhook", false),
        webhooks: Some(vec![MutatingWebhook {
            name: "pods.bursting.cci.io".into(),
            admission_review_versions: vec!["v1".into()],
            client_config: webhook_client(target, "/mutate", &pki.ca_pem),
            // A pod meant for CCI must never be admitted unmutated because the webhook was down.
            failure_policy: Some("Fail".into()),
            side_effects: "None".into(),
            timeout_seconds: Some(10),
            namespace_selector: Some(namespace_selector()),
            match_conditions: Some(pods_never_intercepted()),
            rules: Some(vec![rule(&["CREATE"], "pods")]),
            ..MutatingWebhook::default()
        }]),
    };
    let validating = ValidatingWebhookConfiguration {
        metadata: meta(params, &format!("{WEBHOOK}-validate"), "webhook", false),
        webhooks: Some(vec![ValidatingWebhook {
            name: "services.bursting.cci.io".into(),
            admission_review_versions: vec!["v1".into()],
            client_config: webhook_client(target, "/validate", &pki.ca_pem),
            failure_policy: Some("Fail".into()),
            side_effects: "None".into(),
            timeout_seconds: Some(10),
            namespace_selector: Some(namespace_selector()),
            rules: Some(vec![rule(&["CREATE", "UPDATE"], "services")]),
            ..ValidatingWebhook::default()
        }]),
    };
    vec![Rendered::of(&mutating), Rendered::of(&validating)]
}

/// Every object of the add-on, in the order they are applied (identities and secrets first,
/// workloads next, webhook configurations last so nothing is sent to a webhook not yet serving).
pub fn render(params: &InstallParams, target: &Target, pki: &WebhookPki) -> Vec<Rendered> {
    let mut out = Vec::new();
    out.extend(rbac(params, VIRTUAL_KUBELET, "virtual-kubelet"));
    out.extend(rbac(params, WEBHOOK, "webhook"));
    if params.interconnect {
        out.extend(rbac(params, PROXY, "proxy"));
    }
    // NB: both keys always, one of them empty: a key left out would linger in the Secret from
    // the install before (a Secret's stringData is merged into its data).
    let mut credentials = BTreeMap::from([
        (TOKEN_KEY.into(), params.cci_token.clone()),
        (AKSK_KEY.into(), params.cci_aksk.clone().unwrap_or_default()),
        ("endpoint".into(), params.cci_endpoint.clone()),
    ]);
    if let Some(ca) = &params.cci_ca {
        credentials.insert(CCI_CA_KEY.into(), ca.clone());
    }
    out.push(Rendered::of(&Secret {
        metadata: meta(params, CREDENTIALS, "credentials", true),
        string_data: Some(credentials),
        type_: Some("Opaque".into()),
        ..Secret::default()
    }));
    out.push(Rendered::of(&Secret {
        metadata: meta(params, WEBHOOK_TLS, "webhook", true),
        string_data: Some(BTreeMap::from([
            ("tls.crt".into(), pki.cert_pem.clone()),
            ("tls.key".into(), pki.key_pem.clone()),
            ("ca.crt".into(), pki.ca_pem.clone()),
        ])),
        type_: Some("kubernetes.io/tls".into()),
        ..Secret::default()
    }));

    let mut vk_args = vec![
        "virtual-kubelet".to_owned(),
        format!("--cci-endpoint={}", params.cci_endpoint),
        format!("--cluster-id={}", params.cluster_id),
        format!("--node-name={VIRTUAL_NODE}"),
        format!("--release={}", params.release),
        "--node-ip=$(POD_IP)".to_owned(),
        "--leader-elect".to_owned(),
        format!("--leader-elect-namespace={NAMESPACE}"),
        format!("--leader-elect-lease={LEADER_LEASE}"),
    ];
    if let Some(secs) = params.lock_duration_secs {
        vk_args.push(format!("--lock-duration-secs={secs}"));
    }
    if let Some(secs) = params.pending_lock_threshold_secs {
        vk_args.push(format!("--pending-lock-threshold-secs={secs}"));
    }
    // The CCI namespace's Network (§12): the add-on's subnet, its security group, the tenant's
    // IDs; an engine given no subnet creates none.
    for (flag, value) in [
        ("subnet-id", &params.subnet_id),
        ("security-group-id", &params.security_group_id),
        ("project-id", &params.project_id),
        ("domain-id", &params.domain_id),
    ] {
        if !value.is_empty() {
            vk_args.push(format!("--{flag}={value}"));
        }
    }
    vk_args.extend(cci_credential_args(params));
    let mut vk_pod = PodSpec {
        containers: vec![container(
            params,
            "virtual-kubelet",
            vk_args,
            vec![
                pod_ip_env(),
                field_env("POD_NAME", "metadata.name"),
                env("RUST_LOG", "info"),
            ]
            .into_iter()
            .chain(MALLOC_TUNING.map(|(name, value)| env(name, value)))
            // Rendered only when asked: the add-on leaves it out, and the check is then on.
            .chain(
                params
                    .check_resource_pressure
                    .map(|on| env("CHECK_RESOURCE_PRESSURE", if on { "true" } else { "false" })),
            )
            .collect(),
        )],
        ..PodSpec::default()
    };
    mount_cci_credentials(params, &mut vk_pod);
    // The spec's replicas, of which the elected leader drives the node (the others wait on
    // LEADER_LEASE). Recreate, so an old release and a new one never run side by side.
    out.push(Rendered::of(&deployment(
        params,
        target,
        VIRTUAL_KUBELET,
        "virtual-kubelet",
        params.spec.replicas(),
        DeploymentStrategy {
            type_: Some("Recreate".into()),
            rolling_update: None,
        },
        vk_pod,
    )));

    let webhook_pod = PodSpec {
        containers: vec![Container {
            ports: Some(vec![ContainerPort {
                name: Some("https".into()),
                container_port: WEBHOOK_PORT,
                protocol: Some("TCP".into()),
                ..ContainerPort::default()
            }]),
            readiness_probe: Some(Probe {
                tcp_socket: Some(TCPSocketAction {
                    port: IntOrString::Int(WEBHOOK_PORT),
                    ..TCPSocketAction::default()
                }),
                period_seconds: Some(2),
                ..Probe::default()
            }),
            volume_mounts: Some(vec![VolumeMount {
                name: "tls".into(),
                mount_path: "/etc/bursting/tls".into(),
                read_only: Some(true),
                ..VolumeMount::default()
            }]),
            ..container(
                params,
                "webhook",
                vec![
                    "webhook".into(),
                    format!("--listen=$(POD_IP):{WEBHOOK_PORT}"),
                    "--tls-cert-file=/etc/bursting/tls/tls.crt".into(),
                    "--tls-key-file=/etc/bursting/tls/tls.key".into(),
                    format!("--release={}", params.release),
                ],
                vec![pod_ip_env(), env("RUST_LOG", "info")],
            )
        }],
        volumes: Some(vec![Volume {
            name: "tls".into(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(WEBHOOK_TLS.into()),
                ..SecretVolumeSource::default()
            }),
            ..Volume::default()
        }]),
        ..PodSpec::default()
    };
    let mut webhook = deployment(
        params,
        target,
        WEBHOOK,
        "webhook",
        params.spec.replicas(),
        rolling(),
        webhook_pod,
    );
    // A renewed certificate changes the template, so the webhook's pods are replaced (one by
    // one: it never lapses) with ones serving it.
    if let Some(spec) = webhook.spec.as_mut() {
        spec.template
            .metadata
            .get_or_insert_default()
            .annotations
            .get_or_insert_default()
            .insert(
                TLS_FINGERPRINT_ANNOTATION.into(),
                crate::pki::fingerprint(&pki.cert_pem),
            );
    }
    out.push(Rendered::of(&webhook));
    out.push(Rendered::of(&Service {
        metadata: meta(params, WEBHOOK, "webhook", true),
        spec: Some(ServiceSpec {
            selector: Some(BTreeMap::from([
                ("app.kubernetes.io/part-of".to_owned(), PART_OF.to_owned()),
                (
                    "app.kubernetes.io/component".to_owned(),
                    "webhook".to_owned(),
                ),
            ])),
            ports: Some(vec![ServicePort {
                name: Some("https".into()),
                port: WEBHOOK_SERVICE_PORT,
                target_port: Some(IntOrString::String("https".into())),
                protocol: Some("TCP".into()),
                ..ServicePort::default()
            }]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }));

    if params.interconnect {
        let mut proxy_args = vec![
            "proxy".into(),
            format!("--cci-endpoint={}", params.cci_endpoint),
            format!("--cluster-id={}", params.cluster_id),
            format!("--release={}", params.release),
            format!("--listen=$(POD_IP):{PROXY_PORT}"),
        ];
        // In production sidecars reach each proxy pod at its own address (the VPC routes pod
        // addresses); locally through the proxy Service's address on the host node.
        if let Target::Local { proxy_endpoint, .. } = target {
            proxy_args.push(format!("--advertise={proxy_endpoint}"));
        }
        proxy_args.extend(cci_credential_args(params));
        let mut proxy_pod = PodSpec {
            containers: vec![Container {
                ports: Some(vec![ContainerPort {
                    name: Some("tunnel".into()),
                    container_port: PROXY_PORT,
                    protocol: Some("TCP".into()),
                    ..ContainerPort::default()
                }]),
                readiness_probe: Some(Probe {
                    tcp_socket: Some(TCPSocketAction {
                        port: IntOrString::Int(PROXY_PORT),
                        ..TCPSocketAction::default()
                    }),
                    period_seconds: Some(2),
                    ..Probe::default()
                }),
                ..container(
                    params,
                    "proxy",
                    proxy_args,
                    vec![pod_ip_env(), env("RUST_LOG", "info")],
                )
            }],
            ..PodSpec::default()
        };
        mount_cci_credentials(params, &mut proxy_pod);
        out.push(Rendered::of(&deployment(
            params,
            target,
            PROXY,
            "proxy",
            params.spec.replicas(),
            rolling(),
            proxy_pod,
        )));
        out.push(Rendered::of(&Service {
            metadata: meta(params, PROXY, "proxy", true),
            spec: Some(ServiceSpec {
                selector: Some(BTreeMap::from([
                    ("app.kubernetes.io/part-of".to_owned(), PART_OF.to_owned()),
                    ("app.kubernetes.io/component".to_owned(), "proxy".to_owned()),
                ])),
                ports: Some(vec![ServicePort {
                    name: Some("tunnel".into()),
                    port: PROXY_PORT,
                    target_port: Some(IntOrString::String("tunnel".into())),
                    protocol: Some("TCP".into()),
                    ..ServicePort::default()
                }]),
                ..ServiceSpec::default()
            }),
            ..Service::default()
        }));
    }
    out.extend(disruption_budgets(params));
    out.extend(webhook_configurations(params, target, pki));
    out
}

/// A PodDisruptionBudget for each component's Deployment, when the parameter asks for them.
fn disruption_budgets(params: &InstallParams) -> Vec<Rendered> {
    let Some(budget) = params.pod_disruption_budget.filter(|b| b.create) else {
        return Vec::new();
    };
    let mut components = vec![(VIRTUAL_KUBELET, "virtual-kubelet"), (WEBHOOK, "webhook")];
    if params.interconnect {
        components.push((PROXY, "proxy"));
    }
    components
        .into_iter()
        .map(|(name, component)| {
            Rendered::of(&k8s_openapi::api::policy::v1::PodDisruptionBudget {
                metadata: meta(params, name, component, true),
                spec: Some(k8s_openapi::api::policy::v1::PodDisruptionBudgetSpec {
                    max_unavailable: Some(IntOrString::Int(budget.max_unavailable)),
                    selector: Some(LabelSelector {
                        match_labels: Some(BTreeMap::from([
                            ("app.kubernetes.io/part-of".to_owned(), PART_OF.to_owned()),
                            (
                                "app.kubernetes.io/component".to_owned(),
                                component.to_owned(),
                            ),
                        ])),
                        ..LabelSelector::default()
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            })
        })
        .collect()
}

/// The environment variable naming a deliberate breakage of the add-on's manifests, for
/// `burstcert breakages` (as the engine's `BURSTCERT_BREAKAGE` names one of its code): the
/// installer applies the rendered objects with it. Unset, the manifests are as rendered.
pub const MANIFEST_BREAKAGE_ENV: &str = "BURSTCERT_MANIFEST_BREAKAGE";

/// The deliberate breakages of the manifests: (name, what it breaks).
pub const MANIFEST_BREAKAGES: &[(&str, &str)] = &[
    (
        "lease-write-anywhere",
        "the virtual kubelet may update, patch and delete every Lease of the cluster (§13)",
    ),
    (
        "runs-as-root",
        "the add-on's pods run as root, with a writable root file system and default capabilities (§13)",
    ),
    (
        "daemonset-pods-intercepted",
        "the pod webhook is also called for DaemonSet and mirror pods, so a down webhook blocks node agents (§13)",
    ),
    (
        "credential-in-env",
        "the CCI token is written into the add-on's Deployments as a literal environment value, not read from its Secret (§13)",
    ),
    (
        "gc-jobs-tolerate-all",
        "the gc jobs' pods tolerate every taint, the cordon's too, so they run on nodes taken out of service (§8)",
    ),
    (
        "arm-nodes-not-avoided",
        "the add-on's Deployments carry no amd64 node affinity: up to 1.5.37 their pods may land on Arm nodes (§2)",
    ),
    (
        "webhook-recreated-on-upgrade",
        "the webhook's Deployment is replaced with the strategy Recreate: during an upgrade no webhook answers, and pods are refused (§9)",
    ),
    (
        PROXY_WITHOUT_INTERCONNECT,
        "the proxy is rendered whatever the network interconnect says: without it, CCI pods still reach cluster Services (§10)",
    ),
];

/// The manifest breakage that renders the proxy without the interconnect (see
/// [`render_for_install`]).
const PROXY_WITHOUT_INTERCONNECT: &str = "proxy-installed-without-interconnect";

/// What install and upgrade apply: [`render`] with the breakage [`MANIFEST_BREAKAGE_ENV`]
/// names, if any ([`render_broken`]).
pub fn render_for_install(
    params: &InstallParams,
    target: &Target,
    pki: &WebhookPki,
) -> crate::Result<Vec<Rendered>> {
    match manifest_breakage() {
        None => Ok(render(params, target, pki)),
        Some(name) => render_broken(params, target, pki, &name),
    }
}

/// The manifest breakage [`MANIFEST_BREAKAGE_ENV`] names, if any.
fn manifest_breakage() -> Option<String> {
    std::env::var(MANIFEST_BREAKAGE_ENV)
        .ok()
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty())
}

/// `objects` with the breakage [`MANIFEST_BREAKAGE_ENV`] names, if any; an error when it names
/// none of [`MANIFEST_BREAKAGES`] (a typo must never install intact manifests as broken ones).
pub fn with_manifest_breakage(objects: Vec<Rendered>) -> crate::Result<Vec<Rendered>> {
    match manifest_breakage() {
        None => Ok(objects),
        Some(name) => broken(objects, &name),
    }
}

/// [`render`] with the manifest breakage `name` ([`broken`]); `proxy-installed-without-interconnect`
/// renders as if the interconnect were on.
pub fn render_broken(
    params: &InstallParams,
    target: &Target,
    pki: &WebhookPki,
    name: &str,
) -> crate::Result<Vec<Rendered>> {
    if name == PROXY_WITHOUT_INTERCONNECT {
        let on = InstallParams {
            interconnect: true,
            ..params.clone()
        };
        return broken(render(&on, target, pki), name);
    }
    broken(render(params, target, pki), name)
}

/// `objects` with the manifest breakage `name` applied; an error when it names none of
/// [`MANIFEST_BREAKAGES`] (a typo must never install intact manifests as broken ones).
pub fn broken(mut objects: Vec<Rendered>, name: &str) -> crate::Result<Vec<Rendered>> {
    if !MANIFEST_BREAKAGES.iter().any(|(n, _)| *n == name) {
        return Err(crate::Error::Step {
            step: format!("read {MANIFEST_BREAKAGE_ENV}"),
            detail: format!(
                "{name:?} names no manifest breakage; known: {}",
                MANIFEST_BREAKAGES
                    .iter()
                    .map(|(n, _)| *n)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        });
    }
    let token = objects
        .iter()
        .find(|r| {
            r.resource.kind == "Secret" && r.object.metadata.name.as_deref() == Some(CREDENTIALS)
        })
        .and_then(|r| {
            r.object.data["stringData"]["token"]
                .as_str()
                .map(str::to_owned)
        })
        .unwrap_or_default();
    for r in &mut objects {
        let kind = r.resource.kind.as_str();
        let data = &mut r.object.data;
        match (name, kind) {
            ("lease-write-anywhere", "ClusterRole") => {
                for rule in data["rules"].as_array_mut().into_iter().flatten() {
                    let leases = rule["resources"]
                        .as_array()
                        .is_some_and(|rs| rs.iter().any(|x| x == "leases"));
                    if leases && let Some(rule) = rule.as_object_mut() {
                        rule.remove("resourceNames");
                    }
                }
            }
            ("runs-as-root", "Deployment") => {
                let spec = &mut data["spec"]["template"]["spec"];
                if let Some(spec) = spec.as_object_mut() {
                    spec.remove("securityContext");
                }
                for c in spec["containers"].as_array_mut().into_iter().flatten() {
                    if let Some(c) = c.as_object_mut() {
                        c.remove("securityContext");
                    }
                }
            }
            ("credential-in-env", "Deployment") => {
                let spec = &mut data["spec"]["template"]["spec"];
                for c in spec["containers"].as_array_mut().into_iter().flatten() {
                    let Some(args) = c["args"].as_array_mut() else {
                        continue;
                    };
                    let before = args.len();
                    args.retain(|a| {
                        !a.as_str()
                            .is_some_and(|a| a.starts_with("--cci-token-file="))
                    });
                    if args.len() < before {
                        let env = c["env"].as_array_mut();
                        let literal = serde_json::json!({"name": "CCI_TOKEN", "value": token});
                        match env {
                            Some(env) => env.push(literal),
                            None => c["env"] = serde_json::json!([literal]),
                        }
                    }
                }
            }
            ("gc-jobs-tolerate-all", "Job") => {
                data["spec"]["template"]["spec"]["tolerations"] =
                    serde_json::json!([{"operator": "Exists"}]);
            }
            ("arm-nodes-not-avoided", "Deployment") => {
                if let Some(affinity) = data["spec"]["template"]["spec"]["affinity"].as_object_mut()
                {
                    affinity.remove("nodeAffinity");
                }
            }
            ("webhook-recreated-on-upgrade", "Deployment")
                if r.object.metadata.name.as_deref() == Some(WEBHOOK) =>
            {
                data["spec"]["strategy"] = serde_json::json!({"type": "Recreate"});
            }
            ("daemonset-pods-intercepted", "MutatingWebhookConfiguration") => {
                for hook in data["webhooks"].as_array_mut().into_iter().flatten() {
                    if let Some(hook) = hook.as_object_mut() {
                        hook.remove("matchConditions");
                    }
                }
            }
            _ => {}
        }
    }
    Ok(objects)
}

/// [`gc_jobs`] as uninstall creates them: with the manifest breakage [`MANIFEST_BREAKAGE_ENV`]
/// names, if any.
pub fn gc_jobs_as_created(params: &InstallParams, target: &Target) -> crate::Result<Vec<Job>> {
    let rendered = gc_jobs(params, target).iter().map(Rendered::of).collect();
    with_manifest_breakage(rendered)?
        .into_iter()
        .map(|r| {
            serde_json::to_value(&r.object)
                .and_then(serde_json::from_value)
                .map_err(|e| crate::Error::Step {
                    step: "render the gc jobs".into(),
                    detail: e.to_string(),
                })
        })
        .collect()
}

/// The two gc Jobs uninstall starts (§8): `virtual-kubelet-{id}-resource-gc-jobs` and
/// `virtual-kubelet-{id}-namespace-gc-jobs`, image from `swr_addr`. They run on ordinary nodes
/// (no toleration of the virtual node), so they need a schedulable one.
pub fn gc_jobs(params: &InstallParams, target: &Target) -> Vec<Job> {
    ["resource", "namespace"]
        .into_iter()
        .map(|scope| {
            let scope_arg = if scope == "resource" {
                "resources"
            } else {
                "namespace"
            };
            let mut pod = PodSpec {
                restart_policy: Some("Never".into()),
                service_account_name: Some(GC.into()),
                automount_service_account_token: Some(false),
                security_context: Some(restricted_pod()),
                containers: vec![container(
                    params,
                    "gc",
                    [
                        "gc".into(),
                        format!("--scope={scope_arg}"),
                        format!("--cci-endpoint={}", params.cci_endpoint),
                        format!("--cluster-id={}", params.cluster_id),
                    ]
                    .into_iter()
                    .chain(cci_credential_args(params))
                    .collect(),
                    vec![env("RUST_LOG", "info")],
                )],
                ..PodSpec::default()
            };
            mount_cci_credentials(params, &mut pod);
            place(params, target, &mut pod);
            Job {
                metadata: meta(params, &gc_job_name(params, scope), "gc", true),
                spec: Some(JobSpec {
                    backoff_limit: Some(2),
                    template: PodTemplateSpec {
                        metadata: Some(ObjectMeta {
                            labels: Some(labels(params, "gc")),
                            ..ObjectMeta::default()
                        }),
                        spec: Some(pod),
                    },
                    ..JobSpec::default()
                }),
                ..Job::default()
            }
        })
        .collect()
}

/// `virtual-kubelet-{id}-{scope}-gc-jobs`.
pub fn gc_job_name(params: &InstallParams, scope: &str) -> String {
    format!("virtual-kubelet-{}-{scope}-gc-jobs", params.cluster_id)
}

/// The gc jobs' service account (they need no API access: `automountServiceAccountToken: false`).
pub fn gc_account(params: &InstallParams) -> ServiceAccount {
    ServiceAccount {
        metadata: meta(params, GC, "gc", true),
        automount_service_account_token: Some(false),
        ..ServiceAccount::default()
    }
}

/// Every rendered object as one YAML stream (`---` between documents).
pub fn to_yaml(objects: &[Rendered]) -> String {
    objects
        .iter()
        .map(|r| serde_saphyr::to_string(&r.object).expect("objects serialize to YAML"))
        .collect::<Vec<_>>()
        .join("---\n")
}

#[cfg(test)]
mod tests {
    use super::super::params::tests::params;
    use super::*;

    fn pki() -> WebhookPki {
        WebhookPki {
            ca_pem: "CA".into(),
            cert_pem: "CERT".into(),
            key_pem: "KEY".into(),
        }
    }

    fn kinds(objects: &[Rendered]) -> Vec<String> {
        objects.iter().map(Rendered::describe).collect()
    }

    #[test]
    fn every_object_is_labelled_as_part_of_the_addon() {
        for r in render(&params("1.5.18"), &Target::Production, &pki()) {
            assert_eq!(
                r.object
                    .labels()
                    .get("app.kubernetes.io/part-of")
                    .map(String::as_str),
                Some(PART_OF),
                "{}",
                r.describe()
            );
        }
    }

    #[test]
    fn a_cci_ca_is_kept_with_the_credential_and_mounted_read_only_where_cci_is_spoken() {
        let mut p = params("1.5.18");
        p.interconnect = true;
        let none = render(&p, &Target::Production, &pki());
        assert!(!to_yaml(&none).contains("--cci-ca-file"), "no CA, no flag");
        p.cci_ca = Some("CCI CA PEM".into());
        let rendered = render(&p, &Target::Production, &pki());
        let object = |name: &str| {
            let r = rendered.iter().find(|r| r.describe() == name).unwrap();
            serde_json::to_value(&r.object).unwrap()
        };
        let secret = object(&format!("Secret {NAMESPACE}/{CREDENTIALS}"));
        assert_eq!(secret["stringData"][CCI_CA_KEY], "CCI CA PEM");
        let flag = format!("--cci-ca-file={CCI_CA_DIR}/{CCI_CA_KEY}");
        let jobs: Vec<serde_json::Value> = gc_jobs(&p, &Target::Production)
            .iter()
            .map(|job| serde_json::to_value(job).unwrap())
            .collect();
        let pods = [VIRTUAL_KUBELET, PROXY]
            .iter()
            .map(|name| object(&format!("Deployment {NAMESPACE}/{name}")))
            .chain(jobs)
            .map(|o| o["spec"]["template"]["spec"].clone());
        for pod in pods {
            let container = &pod["containers"][0];
            assert!(
                container["args"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|a| *a == flag),
                "{container}"
            );
            let mount = container["volumeMounts"]
                .as_array()
                .unwrap()
                .iter()
                .find(|m| m["name"] == CREDENTIALS_VOLUME)
                .unwrap();
            assert_eq!(mount["mountPath"], CCI_CA_DIR);
            assert_eq!(mount["readOnly"], true);
            let volume = pod["volumes"]
                .as_array()
                .unwrap()
                .iter()
                .find(|v| v["name"] == CREDENTIALS_VOLUME)
                .unwrap();
            assert_eq!(volume["secret"]["secretName"], CREDENTIALS);
            // The token and the CA are files; no environment variable holds either.
            assert_eq!(
                volume["secret"]["items"],
                serde_json::json!([
                    {"key": TOKEN_KEY, "path": TOKEN_KEY},
                    {"key": CCI_CA_KEY, "path": CCI_CA_KEY}
                ])
            );
            assert!(
                container["args"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|a| *a == format!("--cci-token-file={CCI_CA_DIR}/{TOKEN_KEY}")),
                "{container}"
            );
            assert!(!container.to_string().contains("CCI_TOKEN"), "{container}");
        }
        let webhook = object(&format!("Deployment {NAMESPACE}/{WEBHOOK}"));
        assert!(!webhook.to_string().contains(CREDENTIALS), "{webhook}");
    }

    #[test]
    fn the_proxy_is_rendered_only_with_the_interconnect() {
        let mut p = params("1.5.18");
        assert!(
            !kinds(&render(&p, &Target::Production, &pki()))
                .iter()
                .any(|k| k.contains(PROXY))
        );
        p.interconnect = true;
        assert!(
            kinds(&render(&p, &Target::Production, &pki()))
                .contains(&format!("Deployment {NAMESPACE}/{PROXY}"))
        );
    }

    #[test]
    fn the_virtual_kubelet_reads_service_accounts_one_by_one_and_lists_only_what_it_mirrors() {
        let verbs = |resource: &str| -> Vec<String> {
            rules_of("virtual-kubelet")
                .into_iter()
                .filter(|r| r.resources.iter().flatten().any(|x| x == resource))
                .flat_map(|r| r.verbs)
                .collect()
        };
        assert_eq!(verbs("serviceaccounts"), ["get"]);
        assert_eq!(verbs("persistentvolumeclaims"), ["get"]);
        assert_eq!(verbs("secrets"), ["get", "list", "watch"]);
        assert_eq!(verbs("configmaps"), ["get", "list", "watch"]);
    }

    #[test]
    fn the_virtual_kubelet_runs_with_one_malloc_arena_and_a_fixed_mmap_threshold() {
        let local = Target::Local {
            webhook_url: "https://127.254.0.9:443".into(),
            proxy_endpoint: "127.254.0.10:8900".into(),
            host_label: "burstcert.dev/host-node".into(),
        };
        for target in [Target::Production, local] {
            let rendered = render(&params("1.5.18"), &target, &pki());
            let vk = rendered
                .iter()
                .find(|r| r.describe() == format!("Deployment {NAMESPACE}/{VIRTUAL_KUBELET}"))
                .unwrap();
            let json = serde_json::to_value(&vk.object).unwrap();
            let env = &json["spec"]["template"]["spec"]["containers"][0]["env"];
            for (name, value) in MALLOC_TUNING {
                assert!(
                    env.as_array()
                        .unwrap()
                        .iter()
                        .any(|e| e["name"] == name && e["value"] == value),
                    "{name}={value} missing: {env}"
                );
            }
        }
    }

    #[test]
    fn leases_and_nodes_are_written_only_by_name_and_created_unnamed() {
        for r in rules_of("virtual-kubelet") {
            let resources = r.resources.clone().unwrap_or_default();
            let writes = r
                .verbs
                .iter()
                .any(|v| ["update", "patch", "delete"].contains(&v.as_str()));
            if writes
                && resources
                    .iter()
                    .any(|x| x.starts_with("nodes") || x == "leases")
            {
                let names = r.resource_names.clone().unwrap_or_default();
                assert!(!names.is_empty(), "{r:?}");
                assert!(
                    names.iter().all(|n| n == VIRTUAL_NODE || n == LEADER_LEASE),
                    "{r:?}"
                );
            }
        }
    }

    #[test]
    fn every_pod_of_the_addon_runs_restricted() {
        let mut p = params("1.5.18");
        p.interconnect = true;
        let templates = render(&p, &Target::Production, &pki())
            .into_iter()
            .filter(|r| r.describe().starts_with("Deployment "))
            .map(|r| serde_json::to_value(&r.object).unwrap()["spec"]["template"]["spec"].clone())
            .chain(
                gc_jobs(&p, &Target::Production)
                    .into_iter()
                    .map(|j| serde_json::to_value(&j).unwrap()["spec"]["template"]["spec"].clone()),
            );
        let mut seen = 0;
        for spec in templates {
            seen += 1;
            assert_eq!(spec["securityContext"]["runAsNonRoot"], true, "{spec}");
            assert_eq!(
                spec["securityContext"]["seccompProfile"]["type"],
                "RuntimeDefault"
            );
            for c in spec["containers"].as_array().unwrap() {
                let sc = &c["securityContext"];
                assert_eq!(sc["allowPrivilegeEscalation"], false, "{c}");
                assert_eq!(sc["readOnlyRootFilesystem"], true, "{c}");
                assert_eq!(
                    sc["capabilities"]["drop"],
                    serde_json::json!(["ALL"]),
                    "{c}"
                );
                assert!(sc["runAsUser"].as_i64().is_some_and(|u| u > 0), "{c}");
            }
        }
        assert_eq!(seen, 5, "three Deployments and two gc Jobs");
    }

    #[test]
    fn the_pod_webhook_never_sees_daemonset_or_mirror_pods() {
        let rendered = render(&params("1.5.18"), &Target::Production, &pki());
        let mutating = rendered
            .iter()
            .find(|r| r.describe().starts_with("MutatingWebhookConfiguration"))
            .unwrap();
        let json = serde_json::to_value(&mutating.object).unwrap();
        let conditions = json["webhooks"][0]["matchConditions"].to_string();
        assert!(conditions.contains("'DaemonSet'"), "{conditions}");
        assert!(
            conditions.contains("kubernetes.io/config.mirror"),
            "{conditions}"
        );
    }

    #[test]
    fn each_manifest_breakage_undoes_its_rule_and_an_unknown_one_is_refused() {
        let json = |objects: &[Rendered]| -> String {
            objects
                .iter()
                .map(|r| serde_json::to_string(&r.object).unwrap())
                .collect()
        };
        let rendered = render(&params("1.5.18"), &Target::Production, &pki());
        let intact = json(&rendered);
        let lease_names = format!(r#""resourceNames":["{VIRTUAL_NODE}","{LEADER_LEASE}"]"#);
        for (name, gone) in [
            ("lease-write-anywhere", lease_names.as_str()),
            ("runs-as-root", "readOnlyRootFilesystem"),
            ("daemonset-pods-intercepted", "matchConditions"),
            ("credential-in-env", "--cci-token-file"),
            ("arm-nodes-not-avoided", "kubernetes.io/arch"),
        ] {
            assert!(intact.contains(gone), "{gone}");
            let broken = json(&broken(rendered.clone(), name).unwrap());
            assert!(!broken.contains(gone), "{name} left {gone}");
        }
        let err = broken(rendered, "runs-as-rot").unwrap_err().to_string();
        assert!(err.contains("runs-as-root"), "{err}");
    }

    #[test]
    fn the_gc_jobs_tolerate_every_taint_only_when_broken_so() {
        let p = params("1.5.18");
        let tolerations = |objects: Vec<Rendered>| -> Vec<serde_json::Value> {
            objects
                .iter()
                .map(|r| r.object.data["spec"]["template"]["spec"]["tolerations"].clone())
                .collect()
        };
        let jobs: Vec<Rendered> = gc_jobs(&p, &Target::Production)
            .iter()
            .map(Rendered::of)
            .collect();
        assert_eq!(jobs.len(), 2);
        assert!(
            tolerations(jobs.clone())
                .iter()
                .all(serde_json::Value::is_null)
        );
        let exists = serde_json::json!([{"operator": "Exists"}]);
        assert!(
            tolerations(broken(jobs, "gc-jobs-tolerate-all").unwrap())
                .iter()
                .all(|t| *t == exists)
        );
        // Created unbroken when no breakage is named (the variable is unset in tests).
        let created = gc_jobs_as_created(&p, &Target::Production).unwrap();
        assert_eq!(created, gc_jobs(&p, &Target::Production));
    }

    #[test]
    fn the_upgrade_and_interconnect_breakages_change_the_webhooks_strategy_and_add_the_proxy() {
        let p = params("1.5.18");
        assert!(!p.interconnect);
        let strategies = |objects: &[Rendered]| -> Vec<(String, String)> {
            objects
                .iter()
                .filter(|r| r.resource.kind == "Deployment")
                .map(|r| {
                    (
                        r.object.metadata.name.clone().unwrap_or_default(),
                        r.object.data["spec"]["strategy"]["type"]
                            .as_str()
                            .unwrap_or_default()
                            .to_owned(),
                    )
                })
                .collect()
        };
        let intact = render(&p, &Target::Production, &pki());
        let recreated = render_broken(
            &p,
            &Target::Production,
            &pki(),
            "webhook-recreated-on-upgrade",
        )
        .unwrap();
        for ((name, before), (_, after)) in
            strategies(&intact).into_iter().zip(strategies(&recreated))
        {
            if name == WEBHOOK {
                assert_eq!(
                    (before.as_str(), after.as_str()),
                    ("RollingUpdate", "Recreate")
                );
            } else {
                assert_eq!(before, after, "{name}");
            }
        }
        let deployments = |objects: &[Rendered]| -> Vec<String> {
            strategies(objects).into_iter().map(|(n, _)| n).collect()
        };
        assert!(!deployments(&intact).contains(&PROXY.to_owned()));
        let with_proxy =
            render_broken(&p, &Target::Production, &pki(), PROXY_WITHOUT_INTERCONNECT).unwrap();
        assert!(deployments(&with_proxy).contains(&PROXY.to_owned()));
    }

    #[test]
    fn a_disruption_budget_per_component_only_when_asked() {
        let mut p = params("1.5.18");
        p.interconnect = true;
        let budgets = |p: &InstallParams| -> Vec<String> {
            render(p, &Target::Production, &pki())
                .iter()
                .map(Rendered::describe)
                .filter(|d| d.starts_with("PodDisruptionBudget"))
                .collect()
        };
        assert!(budgets(&p).is_empty());
        p.pod_disruption_budget = Some(super::super::params::DisruptionBudget {
            create: true,
            max_unavailable: 1,
        });
        assert_eq!(
            budgets(&p),
            [
                format!("PodDisruptionBudget {NAMESPACE}/{VIRTUAL_KUBELET}"),
                format!("PodDisruptionBudget {NAMESPACE}/{WEBHOOK}"),
                format!("PodDisruptionBudget {NAMESPACE}/{PROXY}"),
            ]
        );
        p.pod_disruption_budget = Some(super::super::params::DisruptionBudget {
            create: false,
            max_unavailable: 1,
        });
        assert!(budgets(&p).is_empty());
    }

    #[test]
    fn no_role_grants_a_wildcard() {
        for component in ["virtual-kubelet", "webhook", "proxy"] {
            for r in rules_of(component) {
                assert!(!r.verbs.iter().any(|v| v == "*"), "{component}: {r:?}");
                assert!(
                    !r.resources.unwrap_or_default().iter().any(|v| v == "*"),
                    "{component}"
                );
            }
        }
    }

    #[test]
    fn webhooks_are_addressed_by_service_in_production_and_by_url_locally() {
        let p = params("1.5.18");
        let production = render(&p, &Target::Production, &pki());
        let hook = production
            .iter()
            .find(|r| r.resource.kind == "MutatingWebhookConfiguration")
            .unwrap();
        assert_eq!(
            hook.object.data["webhooks"][0]["clientConfig"]["service"]["name"],
            WEBHOOK
        );
        let local = Target::Local {
            webhook_url: "https://127.254.0.9:443".into(),
            proxy_endpoint: "127.254.0.10:8900".into(),
            host_label: "burstcert.dev/host-node".into(),
        };
        let local = render(&p, &local, &pki());
        let hook = local
            .iter()
            .find(|r| r.resource.kind == "MutatingWebhookConfiguration")
            .unwrap();
        assert_eq!(
            hook.object.data["webhooks"][0]["clientConfig"]["url"],
            "https://127.254.0.9:443/mutate"
        );
    }

    #[rstest::rstest]
    #[case("1.5.37", true)]
    #[case("1.5.38", false)]
    fn the_addon_pods_avoid_arm_nodes_up_to_1_5_37(#[case] release: &str, #[case] avoids: bool) {
        for r in render(&params(release), &Target::Production, &pki()) {
            if r.resource.kind != "Deployment" {
                continue;
            }
            let affinity = &r.object.data["spec"]["template"]["spec"]["affinity"];
            assert_eq!(!affinity.is_null(), avoids, "{}", r.describe());
        }
    }

    #[test]
    fn gc_jobs_match_the_documented_names_and_use_the_registry() {
        let p = params("1.5.18");
        let jobs = gc_jobs(&p, &Target::Production);
        let names: Vec<String> = jobs.iter().map(|j| j.name_any()).collect();
        assert_eq!(
            names,
            [
                "virtual-kubelet-c1-resource-gc-jobs",
                "virtual-kubelet-c1-namespace-gc-jobs"
            ]
        );
        for job in &jobs {
            let image = job
                .spec
                .as_ref()
                .unwrap()
                .template
                .spec
                .as_ref()
                .unwrap()
                .containers[0]
                .image
                .clone();
            assert_eq!(
                image.as_deref(),
                Some("swr.example/team/bursting-engine:1.5.18")
            );
        }
    }

    #[test]
    fn webhook_configurations_come_last_so_nothing_calls_a_webhook_not_yet_deployed() {
        let objects = render(&params("1.5.18"), &Target::Production, &pki());
        let first_hook = objects
            .iter()
            .position(|r| r.resource.kind.ends_with("WebhookConfiguration"))
            .unwrap();
        assert!(
            objects[first_hook..]
                .iter()
                .all(|r| r.resource.kind.ends_with("WebhookConfiguration"))
        );
    }
}
