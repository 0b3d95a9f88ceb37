//! The admission decision for a pod, and the check for Services.
//!
//! [`decide`] is the whole of the mutating webhook's judgement, as one pure function of the pod,
//! its owner chain, the add-on release and a few cluster facts:
//!
//! 1. **Policy** ([`crate::policy`]): none or `off` → [`Decision::Allow`]. An unknown value →
//!    [`Decision::Refuse`]. A DaemonSet pod → [`Decision::KeepLocal`] (it never burst).
//! 2. **HostPath replacement** ([`crate::hostpath`]): a malformed annotation (bad JSON, an
//!    unknown or unsupported policyType, a bad sizeLimit, a duplicate name) → `Refuse` whatever
//!    the (bursting) policy, as §6 says: the user asked for something the add-on cannot do.
//!    While the spec still holds a hostPath the annotation covers, the annotation is applied,
//!    and a policy naming no hostPath volume of the pod → `Refuse` as well. Once none is left
//!    (the replacement was applied already: the webhook reinvoked, or a mutated pod created
//!    again) it is not applied twice, and a stale name is reported only alongside a hostPath
//!    that still cannot go to CCI. The rest is judged on the spec after replacement, since
//!    that is what would run on CCI.
//! 3. **Size** ([`crate::flavour`]) and **volumes** ([`crate::volumes`]): every problem is
//!    collected. Under `enforce` they → `Refuse` (the pod must run on CCI and cannot); under
//!    `auto`/`localPrefer` → `KeepLocal` (it can still run on the cluster). One exception: a
//!    pod whose size fits no flavour ([`crate::Error::NoFlavour`]), and has no other problem,
//!    is admitted under `enforce` and mutated as usual, because §4 has such a pod "not created
//!    on CCI and get a Warning event on its CCE side": a refused pod would not exist to carry
//!    the event. The virtual kubelet refuses to create it on CCI and posts that event (RES-03).
//!    A bad or too small `resource.cci.io/pod-size-specs` pin, or no resources at all, is
//!    still refused (§4 says so). Below 1.5.5 a Service of type LoadBalancer that selects the
//!    pod ([`ClusterFacts::load_balancers`]) is one more problem (§2: a dedicated ELB for
//!    burst pods needs `>= 1.5.5`): [`check_service`] refuses such a Service once a burst pod
//!    exists, and a Service made before its pods is caught here. \[design\]
//! 4. **Volcano** `<= 1.17.10` scheduling a pod with cloud storage → `KeepLocal`, for every
//!    policy (INST-05: the pod stays off CCI with an explaining event).
//! 5. Otherwise → [`Decision::Mutate`] with an RFC 6902 patch:
//!    - every bursting policy: the toleration `virtual-kubelet.io/provider` (operator
//!      `Exists`, effect `NoSchedule`);
//!    - `enforce`: a required node affinity `type In [virtual-kubelet]`, ANDed into every
//!      existing node selector term; and the hostPath replacement applied to the spec;
//!    - `localPrefer`: a preferred node affinity, weight 100, `type NotIn [virtual-kubelet]`;
//!    - `auto`: the toleration only.
//!
//!    Parts the pod already has are not added twice; when nothing is left to add the decision
//!    is `Allow`. A patch adds a whole array (or object) where the pod has none, and appends
//!    with `/-` where it has one, so it applies to pods with and without existing tolerations
//!    and affinity.
//!
//! Which scheduler places the pod: its `spec.schedulerName`, or, when that is empty or
//! `default-scheduler`, [`ClusterFacts::default_scheduler`] (a CCE cluster can make Volcano
//! its default). A Volcano version of `None` means unknown or not installed: no restriction.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Affinity, Container, Pod, PodSpec, Service};
use serde_json::{Value, json};

use crate::flavour::{self, ANNOTATION_POD_SIZE_SPECS};
use crate::hostpath::{Change, Replacement};
use crate::policy::{self, OwnerFacts, Policy};
use crate::release::{Gate, Release};
use crate::volumes;

/// The virtual node's taint key (effect `NoSchedule`).
pub const TAINT_KEY: &str = "virtual-kubelet.io/provider";
/// The virtual node's label key …
pub const NODE_LABEL_KEY: &str = "type";
/// … and value.
pub const NODE_LABEL_VALUE: &str = "virtual-kubelet";
/// The weight of `localPrefer`'s preference for cluster nodes.
pub const PREFERRED_WEIGHT: i32 = 100;
/// Volcano's scheduler name.
pub const VOLCANO: &str = "volcano";
/// The last Volcano release that cannot place pods with cloud storage on CCI. \[seed\]
pub const VOLCANO_LAST_WITHOUT_CLOUD_STORAGE: Release = Release::new(1, 17, 10);

/// What the webhook knows about the cluster, as plain data.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ClusterFacts {
    /// StorageClass name → provisioner.
    pub storage_classes: BTreeMap<String, String>,
    /// PersistentVolumeClaim name (in the pod's namespace) → its `storageClassName`.
    pub pvc_classes: BTreeMap<String, Option<String>>,
    /// The installed Volcano's version; `None` when unknown or not installed.
    pub volcano_version: Option<Release>,
    /// The scheduler of pods that name none (or `default-scheduler`); `None` means
    /// kube-scheduler.
    pub default_scheduler: Option<String>,
    /// The Services of type LoadBalancer in the pod's namespace: name → selector. Needed only
    /// where the release does not allow them for burst pods ([`Gate::LoadBalancerService`]).
    pub load_balancers: BTreeMap<String, BTreeMap<String, String>>,
}

/// Everything [`decide`] looks at.
#[derive(Debug, Clone, PartialEq)]
pub struct AdmissionInput {
    /// The pod being created.
    pub pod: Pod,
    /// Its owners, nearest first (ReplicaSet, Deployment), without the pod itself.
    pub owners: Vec<OwnerFacts>,
    /// The add-on release the engine runs as.
    pub release: Release,
    /// Facts about the cluster.
    pub cluster: ClusterFacts,
}

impl AdmissionInput {
    /// A pod with no owners, in a cluster with no storage facts.
    pub fn new(pod: Pod, release: Release) -> Self {
        Self {
            pod,
            owners: Vec::new(),
            release,
            cluster: ClusterFacts::default(),
        }
    }

    /// The same input with these owners (nearest first).
    pub fn with_owners(mut self, owners: Vec<OwnerFacts>) -> Self {
        self.owners = owners;
        self
    }

    /// The same input with these cluster facts.
    pub fn with_cluster(mut self, cluster: ClusterFacts) -> Self {
        self.cluster = cluster;
        self
    }
}

/// What to do with a pod.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Admit it unchanged.
    Allow,
    /// Admit it with this patch.
    Mutate {
        /// RFC 6902 operations, a JSON array.
        patch: Value,
        /// What the patch does and why, one line each.
        reasons: Vec<String>,
    },
    /// Admit it unchanged, off the virtual node; tell the user why in an event.
    KeepLocal {
        /// The event's message.
        reason: String,
    },
    /// Refuse it.
    Refuse {
        /// The message `kubectl apply` shows.
        message: String,
    },
}

impl Decision {
    /// Whether the pod is admitted (anything but [`Decision::Refuse`]).
    pub fn admits(&self) -> bool {
        !matches!(self, Decision::Refuse { .. })
    }

    /// The patch of a [`Decision::Mutate`].
    pub fn patch(&self) -> Option<&Value> {
        match self {
            Decision::Mutate { patch, .. } => Some(patch),
            _ => None,
        }
    }

    /// The reason of a [`Decision::KeepLocal`] or the message of a [`Decision::Refuse`].
    pub fn message(&self) -> Option<&str> {
        match self {
            Decision::KeepLocal { reason } => Some(reason),
            Decision::Refuse { message } => Some(message),
            _ => None,
        }
    }
}

/// The pod followed by its owners: the chain [`policy::resolve`] reads.
pub fn chain_of(pod: &Pod, owners: &[OwnerFacts]) -> Vec<OwnerFacts> {
    let mut chain = Vec::with_capacity(owners.len() + 1);
    chain.push(OwnerFacts {
        kind: "Pod".into(),
        name: pod_name(pod),
        labels: pod.metadata.labels.clone().unwrap_or_default(),
    });
    chain.extend(owners.iter().cloned());
    chain
}

/// Decides what to do with a pod being created. See the module docs for the order of rules.
pub fn decide(input: &AdmissionInput) -> Decision {
    let pod = &input.pod;
    let who = describe_pod(pod, &input.owners);
    let chain = chain_of(pod, &input.owners);
    let resolved = match policy::resolve(&chain) {
        Ok(Some(r)) if r.policy.may_burst() => r,
        Ok(_) => return Decision::Allow,
        Err(e) => {
            return Decision::Refuse {
                message: format!("{who}: {e}"),
            };
        }
    };
    let owned_by_daemonset = policy::is_daemonset_pod(&chain)
        || pod
            .metadata
            .owner_references
            .iter()
            .flatten()
            .any(|o| o.kind == "DaemonSet");
    if owned_by_daemonset {
        return Decision::KeepLocal {
            reason: format!(
                "{who} belongs to a DaemonSet, and DaemonSet pods never burst to CCI; {resolved} \
                 is ignored and the pod gets no toleration for the virtual node"
            ),
        };
    }

    let empty = PodSpec::default();
    let spec = pod.spec.as_ref().unwrap_or(&empty);
    let refuse = |e: crate::Error| Decision::Refuse {
        message: format!("{who}: {e}"),
    };
    // NB: a pod whose spec no longer holds a hostPath the annotation covers has had it applied
    // already (by this webhook, reinvoked or fed its own output); its policies then name volumes
    // that are gone, which is only worth a word if a hostPath still stands in the way.
    let (effective, changes, stale) = match Replacement::of_pod(pod) {
        Err(e) => return refuse(e),
        Ok(None) => (spec.clone(), Vec::new(), None),
        Ok(Some(r)) if r.is_pending(spec) => match r.apply(spec) {
            Err(e) => return refuse(e),
            Ok(applied) => (applied.spec, applied.changes, None),
        },
        Ok(Some(r)) => (spec.clone(), Vec::new(), r.check(spec).err()),
    };

    let mut problems = Vec::new();
    let size_specs = pod
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(ANNOTATION_POD_SIZE_SPECS))
        .map(String::as_str);
    let sizing = flavour::size(&effective, size_specs);
    // NB: a size beyond every flavour is the engine's to refuse under `enforce` (see the module
    // docs); it is only a problem here for the policies that can keep the pod local.
    let mut no_flavour = None;
    let flavour = match &sizing {
        Ok(s) => Some(s.flavour),
        Err(e @ crate::Error::NoFlavour { .. }) => {
            no_flavour = Some(e.to_string());
            None
        }
        Err(e) => {
            problems.push(e.to_string());
            None
        }
    };
    if let Err(violations) = volumes::check(&effective, input.release, &input.cluster, flavour) {
        let host_path = |v: &volumes::Violation| {
            matches!(
                v.rule,
                volumes::Rule::HostPath | volumes::Rule::EtcLocaltime
            )
        };
        if let Some(e) = stale.filter(|_| violations.iter().any(host_path)) {
            problems.push(e.to_string());
        }
        problems.extend(violations.into_iter().map(|v| v.message));
    }
    problems.extend(load_balancers_selecting(pod, &input.cluster, input.release));
    let enforce = resolved.policy == Policy::Enforce;
    if let Some(e) = &no_flavour
        && (!enforce || !problems.is_empty())
    {
        // Refused or kept local anyway: the size is one more thing the user has to fix.
        problems.insert(0, e.clone());
    }
    if !problems.is_empty() {
        let problems = list(&problems);
        return if enforce {
            Decision::Refuse {
                message: format!("{who} cannot run on CCI, as {resolved} requires: {problems}"),
            }
        } else {
            Decision::KeepLocal {
                reason: format!("{who} stays off CCI ({resolved}): {problems}"),
            }
        };
    }

    if let Some(reason) = volcano_blocks(&effective, &input.cluster) {
        return Decision::KeepLocal {
            reason: format!("{who} stays off CCI ({resolved}): {reason}"),
        };
    }

    let mut patch = Vec::new();
    let mut reasons = Vec::new();
    if pod.spec.is_none() {
        patch.push(json!({"op": "add", "path": "/spec", "value": {}}));
    }
    if add_toleration(spec, &mut patch) {
        reasons.push(format!(
            "{resolved}: tolerates the virtual node's taint {TAINT_KEY}"
        ));
    }
    match resolved.policy {
        Policy::Enforce => {
            if require_virtual_node(spec.affinity.as_ref(), &mut patch) {
                reasons.push(format!(
                    "{resolved}: requires a node labelled {NODE_LABEL_KEY}={NODE_LABEL_VALUE}"
                ));
            }
            replace_volumes(spec, &effective, &mut patch);
            reasons.extend(
                changes
                    .iter()
                    .map(|c: &Change| format!("{}: {c}", crate::hostpath::ANNOTATION)),
            );
        }
        Policy::LocalPrefer => {
            if prefer_cluster_nodes(spec.affinity.as_ref(), &mut patch) {
                reasons.push(format!(
                    "{resolved}: prefers nodes not labelled {NODE_LABEL_KEY}={NODE_LABEL_VALUE} \
                     (weight {PREFERRED_WEIGHT})"
                ));
            }
        }
        Policy::Auto | Policy::Off => {}
    }
    if patch.is_empty() {
        return Decision::Allow;
    }
    match (sizing, no_flavour) {
        (Ok(s), _) => reasons.push(format!("on CCI it runs as flavour {}", s.flavour)),
        (Err(_), Some(e)) => reasons.push(format!(
            "{e}: the virtual kubelet will not create it on CCI and will post a Warning event \
             on the pod"
        )),
        (Err(_), None) => {}
    }
    Decision::Mutate {
        patch: Value::Array(patch),
        reasons,
    }
}

/// What stands in the way of `pod` bursting where the release does not allow LoadBalancer
/// Services for burst pods (§2: `>= 1.5.5`): each such Service that selects it. A Service made
/// before any pod it selects bursts is admitted ([`check_service`] sees no burst pod yet), so
/// the pod is where the gate holds.
fn load_balancers_selecting(pod: &Pod, cluster: &ClusterFacts, release: Release) -> Vec<String> {
    let gate = Gate::LoadBalancerService;
    if release.allows(gate) {
        return Vec::new();
    }
    let labels = pod.metadata.labels.clone().unwrap_or_default();
    cluster
        .load_balancers
        .iter()
        .filter(|(_, selector)| {
            !selector.is_empty() && selector.iter().all(|(k, v)| labels.get(k) == Some(v))
        })
        .map(|(name, _)| {
            format!(
                "Service {name} of type LoadBalancer (a dedicated ELB) selects it, and a \
                 LoadBalancer for pods that burst to CCI {}; use type ClusterIP or NodePort, or \
                 upgrade the add-on",
                gate.explain(release)
            )
        })
        .collect()
}

/// Checks a Service: one of type LoadBalancer (a dedicated ELB) that selects burst pods needs
/// release `>= 1.5.5` (INST-04). `selects_burst_pods` is the caller's finding (its selector
/// matches pods of a bursting workload).
pub fn check_service(service: &Service, release: Release, selects_burst_pods: bool) -> Decision {
    let load_balancer = service
        .spec
        .as_ref()
        .and_then(|s| s.type_.as_deref())
        .is_some_and(|t| t == "LoadBalancer");
    let gate = Gate::LoadBalancerService;
    if !load_balancer || !selects_burst_pods || release.allows(gate) {
        return Decision::Allow;
    }
    let m = &service.metadata;
    let name = match (m.namespace.as_deref(), m.name.as_deref()) {
        (Some(ns), Some(n)) => format!("{ns}/{n}"),
        (None, Some(n)) => n.to_string(),
        _ => "(unnamed)".to_string(),
    };
    Decision::Refuse {
        message: format!(
            "service {name}: spec.type LoadBalancer (a dedicated ELB) for pods that burst to CCI \
             {}; upgrade the add-on, or use type ClusterIP or NodePort for these pods",
            gate.explain(release)
        ),
    }
}

/// `namespace/name`, or `namespace/generateName*` for a pod whose name is not yet chosen.
fn pod_name(pod: &Pod) -> String {
    let m = &pod.metadata;
    let name = match (m.name.as_deref(), m.generate_name.as_deref()) {
        (Some(n), _) if !n.is_empty() => n.to_string(),
        (_, Some(g)) if !g.is_empty() => format!("{g}*"),
        _ => "(unnamed)".to_string(),
    };
    match m.namespace.as_deref() {
        Some(ns) if !ns.is_empty() => format!("{ns}/{name}"),
        _ => name,
    }
}

/// `pod default/web-5d8f-* (of Deployment default/web)`.
fn describe_pod(pod: &Pod, owners: &[OwnerFacts]) -> String {
    match owners.last() {
        Some(top) => format!("pod {} (of {})", pod_name(pod), top.describe()),
        None => format!("pod {}", pod_name(pod)),
    }
}

/// One problem as is; several numbered.
fn list(problems: &[String]) -> String {
    match problems {
        [one] => one.clone(),
        many => format!(
            "{} problems: {}",
            many.len(),
            many.iter()
                .enumerate()
                .map(|(i, p)| format!("({}) {p}", i + 1))
                .collect::<Vec<_>>()
                .join("; ")
        ),
    }
}

/// Why Volcano keeps this pod off CCI, if it does.
fn volcano_blocks(spec: &PodSpec, cluster: &ClusterFacts) -> Option<String> {
    let named = spec
        .scheduler_name
        .as_deref()
        .filter(|s| !s.is_empty() && *s != "default-scheduler");
    let scheduler = named.or(cluster.default_scheduler.as_deref())?;
    let version = cluster.volcano_version?;
    if scheduler != VOLCANO || version > VOLCANO_LAST_WITHOUT_CLOUD_STORAGE {
        return None;
    }
    let storage = volumes::cloud_storage_volumes(spec);
    if storage.is_empty() {
        return None;
    }
    Some(format!(
        "it is scheduled by Volcano {version}, and Volcano <= {VOLCANO_LAST_WITHOUT_CLOUD_STORAGE} \
         cannot place pods with cloud-storage volumes on CCI (volumes {storage:?}); upgrade \
         Volcano, or schedule the pod with the default scheduler"
    ))
}

fn toleration() -> Value {
    json!({"key": TAINT_KEY, "operator": "Exists", "effect": "NoSchedule"})
}

/// Adds the toleration unless the pod has it; whether it added.
fn add_toleration(spec: &PodSpec, patch: &mut Vec<Value>) -> bool {
    let Some(tolerations) = &spec.tolerations else {
        patch.push(json!({"op": "add", "path": "/spec/tolerations", "value": [toleration()]}));
        return true;
    };
    let has = tolerations.iter().any(|t| {
        t.key.as_deref() == Some(TAINT_KEY)
            && t.operator.as_deref() == Some("Exists")
            && matches!(t.effect.as_deref(), None | Some("") | Some("NoSchedule"))
    });
    if !has {
        patch.push(json!({"op": "add", "path": "/spec/tolerations/-", "value": toleration()}));
    }
    !has
}

fn requirement(operator: &str) -> Value {
    json!({"key": NODE_LABEL_KEY, "operator": operator, "values": [NODE_LABEL_VALUE]})
}

/// Adds `type In [virtual-kubelet]` to every required node selector term (or creates the
/// requirement); whether it added anything.
fn require_virtual_node(affinity: Option<&Affinity>, patch: &mut Vec<Value>) -> bool {
    let required = || json!({"nodeSelectorTerms": [{"matchExpressions": [requirement("In")]}]});
    let base = "/spec/affinity/nodeAffinity/requiredDuringSchedulingIgnoredDuringExecution";
    let Some(affinity) = affinity else {
        let value =
            json!({"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": required()}});
        patch.push(json!({"op": "add", "path": "/spec/affinity", "value": value}));
        return true;
    };
    let Some(node) = &affinity.node_affinity else {
        let value = json!({"requiredDuringSchedulingIgnoredDuringExecution": required()});
        patch.push(json!({"op": "add", "path": "/spec/affinity/nodeAffinity", "value": value}));
        return true;
    };
    let Some(selector) = &node.required_during_scheduling_ignored_during_execution else {
        patch.push(json!({"op": "add", "path": base, "value": required()}));
        return true;
    };
    if selector.node_selector_terms.is_empty() {
        let term = json!({"matchExpressions": [requirement("In")]});
        patch.push(
            json!({"op": "add", "path": format!("{base}/nodeSelectorTerms/-"), "value": term}),
        );
        return true;
    }
    let mut added = false;
    for (i, term) in selector.node_selector_terms.iter().enumerate() {
        let path = format!("{base}/nodeSelectorTerms/{i}/matchExpressions");
        match &term.match_expressions {
            None => patch.push(json!({"op": "add", "path": path, "value": [requirement("In")]})),
            Some(exprs) => {
                let has = exprs.iter().any(|e| {
                    e.key == NODE_LABEL_KEY
                        && e.operator == "In"
                        && e.values.as_deref() == Some(&[NODE_LABEL_VALUE.to_string()][..])
                });
                if has {
                    continue;
                }
                patch.push(
                    json!({"op": "add", "path": format!("{path}/-"), "value": requirement("In")}),
                );
            }
        }
        added = true;
    }
    added
}

/// Adds the weight-100 preference away from the virtual node unless present; whether it added.
fn prefer_cluster_nodes(affinity: Option<&Affinity>, patch: &mut Vec<Value>) -> bool {
    let term = || json!({"weight": PREFERRED_WEIGHT, "preference": {"matchExpressions": [requirement("NotIn")]}});
    let Some(affinity) = affinity else {
        let value =
            json!({"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [term()]}});
        patch.push(json!({"op": "add", "path": "/spec/affinity", "value": value}));
        return true;
    };
    let Some(node) = &affinity.node_affinity else {
        let value = json!({"preferredDuringSchedulingIgnoredDuringExecution": [term()]});
        patch.push(json!({"op": "add", "path": "/spec/affinity/nodeAffinity", "value": value}));
        return true;
    };
    let path = "/spec/affinity/nodeAffinity/preferredDuringSchedulingIgnoredDuringExecution";
    let Some(preferred) = &node.preferred_during_scheduling_ignored_during_execution else {
        patch.push(json!({"op": "add", "path": path, "value": [term()]}));
        return true;
    };
    let has = preferred
        .iter()
        .any(|p| serde_json::to_value(p).ok().as_ref() == Some(&term()));
    if !has {
        patch.push(json!({"op": "add", "path": format!("{path}/-"), "value": term()}));
    }
    !has
}

/// Replaces `spec.volumes` and the changed `volumeMounts` lists with those of `after`.
fn replace_volumes(before: &PodSpec, after: &PodSpec, patch: &mut Vec<Value>) {
    fn set<T: serde::Serialize + PartialEq>(
        path: &str,
        before: &Option<T>,
        after: &Option<T>,
        patch: &mut Vec<Value>,
    ) {
        if before == after {
            return;
        }
        match after {
            None => patch.push(json!({"op": "remove", "path": path})),
            Some(value) => {
                let op = if before.is_some() { "replace" } else { "add" };
                let value = serde_json::to_value(value).expect("k8s types serialize");
                patch.push(json!({"op": op, "path": path, "value": value}));
            }
        }
    }
    set("/spec/volumes", &before.volumes, &after.volumes, patch);
    let lists: [(&str, &[Container], &[Container]); 2] = [
        ("containers", &before.containers, &after.containers),
        (
            "initContainers",
            before.init_containers.as_deref().unwrap_or_default(),
            after.init_containers.as_deref().unwrap_or_default(),
        ),
    ];
    for (field, b, a) in lists {
        for (i, (b, a)) in b.iter().zip(a).enumerate() {
            let path = format!("/spec/{field}/{i}/volumeMounts");
            set(&path, &b.volume_mounts, &a.volume_mounts, patch);
        }
    }
    let (b, a) = (
        before.ephemeral_containers.as_deref().unwrap_or_default(),
        after.ephemeral_containers.as_deref().unwrap_or_default(),
    );
    for (i, (b, a)) in b.iter().zip(a).enumerate() {
        let path = format!("/spec/ephemeralContainers/{i}/volumeMounts");
        set(&path, &b.volume_mounts, &a.volume_mounts, patch);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ServiceSpec;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    #[rstest::rstest]
    #[case::allow(Decision::Allow, true)]
    #[case::mutate(Decision::Mutate { patch: json!([]), reasons: vec![] }, true)]
    #[case::keep_local(Decision::KeepLocal { reason: "no".into() }, true)]
    #[case::refuse(Decision::Refuse { message: "no".into() }, false)]
    fn every_decision_but_a_refusal_admits_the_pod(
        #[case] decision: Decision,
        #[case] admits: bool,
    ) {
        assert_eq!(decision.admits(), admits);
    }

    #[rstest::rstest]
    #[case::namespaced(Some("default"), Some("web"), "service default/web:")]
    #[case::no_namespace(None, Some("web"), "service web:")]
    #[case::no_name(Some("default"), None, "service (unnamed):")]
    fn a_refused_service_is_named_as_far_as_its_metadata_goes(
        #[case] namespace: Option<&str>,
        #[case] name: Option<&str>,
        #[case] start: &str,
    ) {
        let service = Service {
            metadata: ObjectMeta {
                namespace: namespace.map(str::to_owned),
                name: name.map(str::to_owned),
                ..ObjectMeta::default()
            },
            spec: Some(ServiceSpec {
                type_: Some("LoadBalancer".into()),
                ..ServiceSpec::default()
            }),
            ..Service::default()
        };
        let Decision::Refuse { message } = check_service(&service, Release::new(1, 5, 4), true)
        else {
            panic!("a LoadBalancer for burst pods before 1.5.5 is refused");
        };
        assert!(message.starts_with(start), "{message}");
    }

    /// A pod of `policy` labelled `app`, sized for a flavour.
    fn pod_labelled(policy: &str, app: &str) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "p", "namespace": "default", "labels": {
                "virtual-kubelet.io/burst-to-cci": policy, "app": app}},
            "spec": {"containers": [{"name": "c", "image": "nginx", "resources": {
                "requests": {"cpu": "500m", "memory": "1Gi"}}}]}
        }))
        .unwrap()
    }

    #[rstest::rstest]
    #[case::enforce_is_refused_below_the_gate("enforce", "web", 4, "refuse")]
    #[case::auto_is_kept_local_below_the_gate("auto", "web", 4, "keep local")]
    #[case::enforce_bursts_from_the_gate("enforce", "web", 5, "mutate")]
    #[case::a_pod_no_balancer_selects_bursts("enforce", "other", 4, "mutate")]
    fn a_pod_a_load_balancer_selects_bursts_only_from_1_5_5(
        #[case] policy: &str,
        #[case] app: &str,
        #[case] patch: u32,
        #[case] want: &str,
    ) {
        let cluster = ClusterFacts {
            load_balancers: BTreeMap::from([
                (
                    "web-lb".to_owned(),
                    BTreeMap::from([("app".to_owned(), "web".to_owned())]),
                ),
                // An empty selector selects no pod (its endpoints are the user's to manage).
                ("manual".to_owned(), BTreeMap::new()),
            ]),
            ..ClusterFacts::default()
        };
        let input = AdmissionInput {
            pod: pod_labelled(policy, app),
            owners: Vec::new(),
            release: Release::new(1, 5, patch),
            cluster,
        };
        let decision = decide(&input);
        let got = match &decision {
            Decision::Refuse { .. } => "refuse",
            Decision::KeepLocal { .. } => "keep local",
            Decision::Mutate { .. } => "mutate",
            Decision::Allow => "allow",
        };
        assert_eq!(got, want, "{decision:?}");
        if let Some(message) = decision.message() {
            assert!(
                message.contains("web-lb") && message.contains(">= 1.5.5"),
                "{message}"
            );
            assert!(!message.contains("manual"), "{message}");
        }
    }
}
