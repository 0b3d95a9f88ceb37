//! INST: installing the add-on and the cluster-level rules (BEHAVIOR.md §2): INST-01…INST-05.
//!
//! INST-01…INST-03 check the installer's preconditions; each changes cluster-wide state (the
//! add-on in `kube-system`, nodes) and puts the add-on back afterwards (`serially`). INST-04
//! and INST-05 check what the webhook does for burst pods of a cluster with a LoadBalancer
//! Service or an old Volcano.
//!
//! A gated body asserts the side of its gate the shared environment's release is on
//! ([`crate::env::release`]); the harness keeps its own tiny release compare and never borrows
//! the engine's rules.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use anyhow::Context as _;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{
    Namespace, Node, PersistentVolume, PersistentVolumeClaim, Pod, Service,
};
use k8s_openapi::api::storage::v1::StorageClass;
use kube::ResourceExt as _;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};

use super::addon_ops::serially;
use super::admission::{kept_local_events, requires_virtual_node, tolerates_virtual_node};
use super::{BodyFuture, POLICY_LABEL, claim, converge, ensure_class, pod_with};
use crate::addon::lifecycle;
use crate::addon::params::{InstallParams, Spec};
use crate::addon::render::{self, NAMESPACE};
use crate::progress::Progress;
use crate::scenario::Outcome;
use crate::scenario::Scenario;
use crate::{fixtures, snapshot, wait};

const PATIENCE: Duration = Duration::from_secs(60);

/// The resourceVersions (for Deployments: generation, labels, annotations) of everything in
/// `kube-system` and the cluster-scoped kinds the add-on creates: equal before and after means
/// "nothing created or changed".
async fn fingerprint(client: &kube::Client) -> anyhow::Result<BTreeMap<String, String>> {
    use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
    use k8s_openapi::api::core::v1::{ConfigMap, Secret, ServiceAccount};
    use k8s_openapi::api::rbac::v1::ClusterRole;
    let mut out = BTreeMap::new();
    macro_rules! add {
        ($api:expr, $kind:literal) => {
            for o in $api.list(&ListParams::default()).await?.items {
                out.insert(
                    format!("{} {}", $kind, o.name_any()),
                    o.resource_version().unwrap_or_default(),
                );
            }
        };
    }
    // A Deployment's resourceVersion also moves with its status (a rollout of an earlier
    // scenario settling, a replica turning available): its generation, labels and annotations
    // are what an install would change.
    for d in Api::<Deployment>::namespaced(client.clone(), NAMESPACE)
        .list(&ListParams::default())
        .await?
        .items
    {
        out.insert(
            format!("deployment {}", d.name_any()),
            format!(
                "generation {:?} labels {:?} annotations {:?}",
                d.metadata.generation, d.metadata.labels, d.metadata.annotations
            ),
        );
    }
    add!(
        Api::<Secret>::namespaced(client.clone(), NAMESPACE),
        "secret"
    );
    add!(
        Api::<ConfigMap>::namespaced(client.clone(), NAMESPACE),
        "configmap"
    );
    add!(
        Api::<ServiceAccount>::namespaced(client.clone(), NAMESPACE),
        "serviceaccount"
    );
    add!(Api::<ClusterRole>::all(client.clone()), "clusterrole");
    add!(
        Api::<MutatingWebhookConfiguration>::all(client.clone()),
        "mutatingwebhookconfiguration"
    );
    // Leases and endpoint-like objects change on their own; the kinds above do not.
    out.retain(|k, _| !k.contains("kube-root-ca") && !k.contains("extension-apiserver"));
    Ok(out)
}

/// Expects `result` to be the refusal of an install naming `rule` and every `needle`.
fn expect_refusal(
    result: crate::Result<()>,
    rule: &str,
    needles: &[&str],
) -> anyhow::Result<String> {
    let message = match result {
        Ok(()) => anyhow::bail!("install was accepted; expected a refusal by rule `{rule}`"),
        Err(crate::Error::Refused { reasons, .. }) => reasons.join("\n"),
        Err(other) => anyhow::bail!("install failed, but not as a refusal: {other}"),
    };
    anyhow::ensure!(
        message.contains(&format!("{rule}:")),
        "the refusal does not name the rule `{rule}`: {message}"
    );
    for needle in needles {
        anyhow::ensure!(
            message.contains(needle),
            "the refusal does not say {needle:?}: {message}"
        );
    }
    Ok(message)
}

/// An install attempt with `params` on the cluster as it is: must be refused, and nothing in
/// `kube-system` or the add-on's cluster-scoped kinds may change.
async fn refused_install(
    s: &Scenario,
    params: &InstallParams,
    rule: &str,
    needles: &[&str],
) -> anyhow::Result<String> {
    let before = fingerprint(&s.client).await?;
    let result =
        lifecycle::install(&s.client, params, s.env.addon_target(), &Progress::quiet()).await;
    let message = expect_refusal(result, rule, needles)?;
    let after = fingerprint(&s.client).await?;
    let changed: Vec<&String> = after
        .iter()
        .filter(|(k, v)| before.get(*k) != Some(*v))
        .map(|(k, _)| k)
        .chain(before.keys().filter(|k| !after.contains_key(*k)))
        .collect();
    anyhow::ensure!(changed.is_empty(), "a refused install changed {changed:?}");
    Ok(message)
}

/// INST-01: a subnet overlapping 10.247.0.0/16 is refused with both CIDRs named; nothing created.
pub fn inst_01(s: &Scenario) -> BodyFuture<'_> {
    Box::pin(serially(s, async move {
        for cidr in ["10.247.0.0/16", "10.247.128.0/20", "10.0.0.0/8"] {
            let mut p = s.env.addon_defaults().clone();
            p.subnet_cidr = cidr.into();
            refused_install(s, &p, "subnet", &[cidr, "10.247.0.0/16"]).await?;
        }
        // The other side: a subnet beside it passes the subnet rule (install then stops only
        // because the add-on is already there). Only that rule is judged: the others read the
        // nodes as they are this moment, and a scenario before this one on the environment (INST-03
        // fills the host node) may still be giving back pod slots; CI saw "pod room" here once.
        let mut p = s.env.addon_defaults().clone();
        p.subnet_cidr = "10.248.0.0/16".into();
        let facts = lifecycle::node_facts(&s.client, s.env.addon_target()).await?;
        let refusals = crate::addon::params::preflight(&p, &facts);
        anyhow::ensure!(
            refusals.iter().all(|r| r.rule != "subnet"),
            "10.248.0.0/16 was refused: {refusals:?}"
        );
        Ok(Outcome::Passed)
    }))
}

/// INST-02: up to 1.5.37 the add-on's pods carry an amd64 node affinity and run on the amd64
/// host node; a cluster whose nodes are all Arm is refused, nothing created. From 1.5.38 (the
/// gate's other side) no affinity keeps them off Arm, and on a cluster whose nodes are all Arm
/// the add-on's restarted pods are scheduled and run.
pub fn inst_02(s: &Scenario) -> BodyFuture<'_> {
    Box::pin(serially(s, async move {
        let release = s.env.release();
        let pods: Api<Pod> = Api::namespaced(s.client.clone(), NAMESPACE);
        let addon = pods
            .list(&ListParams::default().labels(&render::selector()))
            .await?;
        anyhow::ensure!(!addon.items.is_empty(), "no add-on pod runs");
        let arm_gate = crate::addon::params::avoids_arm(release);
        for pod in &addon.items {
            let affinity = pod
                .spec
                .as_ref()
                .and_then(|s| s.affinity.as_ref())
                .and_then(|a| a.node_affinity.as_ref());
            let (amd64, arm64) = (admits(affinity, "amd64"), admits(affinity, "arm64"));
            anyhow::ensure!(
                amd64 && arm64 != arm_gate,
                "pod {}: its required node affinity admits amd64 nodes: {amd64}, arm64 nodes: \
                 {arm64}; release {release} {} keep off Arm and run on amd64 ({})",
                pod.name_any(),
                if arm_gate { "must" } else { "need not" },
                serde_json::to_string(&affinity).unwrap_or_default()
            );
        }
        // Make every node Arm for a moment. Up to 1.5.37 install must refuse, naming the rule;
        // from 1.5.38 the add-on runs there: its pods, restarted, are scheduled on Arm nodes and
        // run again.
        let nodes: Api<Node> = Api::all(s.client.clone());
        let mut original = Vec::new();
        for node in nodes.list(&ListParams::default()).await?.items {
            if node.name_any() == render::VIRTUAL_NODE {
                continue;
            }
            let arch = node.labels().get("kubernetes.io/arch").cloned();
            original.push((node.name_any(), arch));
        }
        let relabel = |arch: Option<String>| serde_json::json!({"metadata": {"labels": {"kubernetes.io/arch": arch}}});
        for (name, _) in &original {
            nodes
                .patch(
                    name,
                    &PatchParams::default(),
                    &Patch::Merge(relabel(Some("arm64".into()))),
                )
                .await?;
        }
        let attempt = if arm_gate {
            refused_install(
                s,
                s.env.addon_defaults(),
                "arm",
                &["does not support Arm", "arm64"],
            )
            .await
            .map(drop)
        } else {
            runs_again_on_arm(s, &pods).await
        };
        for (name, arch) in &original {
            nodes
                .patch(
                    name,
                    &PatchParams::default(),
                    &Patch::Merge(relabel(arch.clone())),
                )
                .await?;
        }
        attempt?;
        Ok(Outcome::Passed)
    }))
}

/// Deletes the add-on's component pods and waits until as many new ones are Ready, each on a
/// node labelled arm64 (every node is, for the caller's moment).
async fn runs_again_on_arm(s: &Scenario, pods: &Api<Pod>) -> anyhow::Result<()> {
    let components = ListParams::default().labels(&format!(
        "{},app.kubernetes.io/component!=gc",
        render::selector()
    ));
    let old: BTreeSet<String> = pods
        .list(&components)
        .await?
        .items
        .iter()
        .filter_map(|p| p.metadata.uid.clone())
        .collect();
    pods.delete_collection(&DeleteParams::default(), &components)
        .await?;
    let nodes: Api<Node> = Api::all(s.client.clone());
    wait::until(
        &format!(
            "{} new add-on pods Ready on Arm nodes after a restart on an Arm-only cluster",
            old.len()
        ),
        Duration::from_secs(120),
        || async {
            let list = pods
                .list(&components)
                .await
                .map_err(|source| crate::Error::Kube {
                    context: "list the add-on's pods".into(),
                    source,
                })?;
            let fresh: Vec<&Pod> = list
                .items
                .iter()
                .filter(|p| p.metadata.deletion_timestamp.is_none())
                .filter(|p| !p.metadata.uid.as_ref().is_some_and(|u| old.contains(u)))
                .collect();
            if fresh.len() != old.len() {
                return Ok(None);
            }
            for pod in fresh {
                let ready = pod
                    .status
                    .as_ref()
                    .and_then(|s| s.conditions.as_ref())
                    .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
                let Some(node) = pod.spec.as_ref().and_then(|s| s.node_name.clone()) else {
                    return Ok(None);
                };
                let arch = nodes
                    .get(&node)
                    .await
                    .map_err(|source| crate::Error::Kube {
                        context: format!("get node {node}"),
                        source,
                    })?
                    .labels()
                    .get("kubernetes.io/arch")
                    .cloned();
                if !ready || arch.as_deref() != Some("arm64") {
                    return Ok(None);
                }
            }
            Ok(Some(()))
        },
        || s.diagnose(),
    )
    .await?;
    Ok(())
}

/// Whether a node labelled only `kubernetes.io/arch={arch}` passes the pod's required node
/// affinity, as the scheduler reads it: terms are ORed, a term's expressions ANDed. Only the
/// `kubernetes.io/arch` expressions are weighed (others are taken as met); no required
/// affinity admits every node.
fn admits(affinity: Option<&k8s_openapi::api::core::v1::NodeAffinity>, arch: &str) -> bool {
    let Some(required) = affinity.and_then(|a| {
        a.required_during_scheduling_ignored_during_execution
            .as_ref()
    }) else {
        return true;
    };
    // NB: a term with no requirement at all matches no node.
    required.node_selector_terms.iter().any(|term| {
        let requirements = term.match_expressions.as_ref().map_or(0, Vec::len)
            + term.match_fields.as_ref().map_or(0, Vec::len);
        requirements > 0
            && term
                .match_expressions
                .iter()
                .flatten()
                .filter(|e| e.key == "kubernetes.io/arch")
                .all(|e| {
                    let listed = e.values.iter().flatten().any(|v| v == arch);
                    match e.operator.as_str() {
                        "In" => listed,
                        "NotIn" => !listed,
                        "Exists" => true,
                        _ => false,
                    }
                })
    })
}

/// INST-03: `single` needs a node with 7 free pod slots (8 with interconnect), `ha` two such
/// nodes; with fewer, install is refused with the numbers and creates nothing. Slots are taken
/// on the host node by pods whose image cannot be pulled (they hold their slot like any pod).
/// The passing sides (`single` on one node with 7 free, `ha` once a second usable node with 7
/// free is added) are checked with the installer's own pre-flight: the add-on is installed
/// already, and the second node is a kwok node, which runs no add-on replica for real.
pub fn inst_03(s: &Scenario) -> BodyFuture<'_> {
    Box::pin(serially(s, async move {
        let release = s.env.release();
        if !crate::gates::Gate::FootprintCheck.applies_to(release) {
            return Ok(Outcome::NotApplicable(format!(
                "the pod-room check starts at 1.5.2; this is {release}"
            )));
        }
        // Whatever the checks find, the fillers go before the scenario ends.
        let checked = pod_room_checks(s).await;
        let given_back = give_back_slots(s).await;
        checked?;
        given_back?;
        Ok(Outcome::Passed)
    }))
}

/// The label INST-03's filler pods carry, and only they.
const FILLER_LABEL: (&str, &str) = ("inst-03", "filler");

/// INST-03's checks (see [`inst_03`]); the filler pods it makes stay for the caller to give back.
async fn pod_room_checks(s: &Scenario) -> anyhow::Result<()> {
    let target = s.env.addon_target().clone();
    let host_node = s
        .env
        .target()
        .chosen_nodes()
        .map(|n| n.host.clone())
        .context("INST-03 fills the host node the harness chose (Need::ChosenNodes)")?;
    let host = host_node.name.as_str();
    let mut params = s.env.addon_defaults().clone();
    params.interconnect = true;
    // Leave exactly 7 free: enough without interconnect, one short with it.
    let filler = |i: u32| -> anyhow::Result<Pod> {
        Ok(serde_json::from_value(serde_json::json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": format!("slot-{i}"), "labels": {FILLER_LABEL.0: FILLER_LABEL.1}},
            "spec": {
                "nodeName": host,
                "tolerations": [{"operator": "Exists"}],
                "containers": [{"name": "c", "image": "registry.invalid/filler:1"}]
            }
        }))?)
    };
    let check = |p: &InstallParams| {
        let target = target.clone();
        let p = p.clone();
        async move {
            let facts = lifecycle::node_facts(&s.client, &target).await?;
            Ok::<_, anyhow::Error>(crate::addon::params::preflight(&p, &facts))
        }
    };
    // NB: the fillers are topped up until exactly 7 slots are free, not counted once: a pod
    // of the cluster that was still going or coming (a gc Job's, an add-on replica being
    // replaced) moves the count after a single count, and a wait for 7 would never end.
    let made = std::sync::atomic::AtomicU32::new(0);
    let last_free = std::sync::atomic::AtomicU32::new(u32::MAX);
    wait::until(
        "the filler pods to hold their slots on the host node",
        Duration::from_secs(30),
        || async {
            let facts = lifecycle::node_facts(&s.client, &target).await?;
            let free = facts
                .iter()
                .find(|f| f.name == host)
                .map(|f| f.free())
                .ok_or_else(|| crate::Error::Step {
                    step: "count the host node's free pod slots".into(),
                    detail: "the host node is not among the nodes".into(),
                })?;
            last_free.store(free, std::sync::atomic::Ordering::Relaxed);
            if free == 7 {
                return Ok(Some(()));
            }
            // More than 7 free: top up. Fewer: a pod coming while another goes (a replica
            // replaced) takes a slot for a moment; wait for it rather than chase it.
            for _ in 7..free {
                let i = made.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let pod = filler(i).map_err(|e| crate::Error::Step {
                    step: "build a filler pod".into(),
                    detail: e.to_string(),
                })?;
                s.api::<Pod>()
                    .create(&PostParams::default(), &pod)
                    .await
                    .map_err(|source| crate::Error::Kube {
                        context: "create a filler pod".into(),
                        source,
                    })?;
            }
            Ok(None)
        },
        || async {
            let free = last_free.load(std::sync::atomic::Ordering::Relaxed);
            format!(
                "free pod slots on the host node at the last count: {free} (7 wanted; {} fillers made)\n{}",
                made.load(std::sync::atomic::Ordering::Relaxed),
                s.diagnose().await
            )
        },
    )
    .await?;
    refused_install(s, &params, "pod room", &["8 free pod slots", "7 free"]).await?;
    params.interconnect = false;
    let single = check(&params).await?;
    anyhow::ensure!(
        single.is_empty(),
        "single without interconnect and 7 free slots was refused: {single:?}"
    );
    params.spec = Spec::Ha;
    refused_install(
        s,
        &params,
        "pod room",
        &["2 node(s)", "7 free pod slots", "14 in all"],
    )
    .await?;
    // The passing `ha` side: a second node the add-on may use, with exactly 7 free slots.
    let second = second_host_node(s, &host_node.label).await?;
    let passing = async {
        let ha = check(&params).await?;
        anyhow::ensure!(
            ha.is_empty(),
            "ha without interconnect on two nodes with 7 free slots each was refused: {ha:?}"
        );
        params.interconnect = true;
        refused_install(
            s,
            &params,
            "pod room",
            &[
                "2 node(s)",
                "8 free pod slots",
                "16 in all",
                &format!("{second} 7 free"),
            ],
        )
        .await?;
        Ok(())
    }
    .await;
    let removed = Api::<Node>::all(s.client.clone())
        .delete(&second, &DeleteParams::default())
        .await;
    passing?;
    removed.with_context(|| format!("remove node {second}"))?;
    Ok(())
}

/// Deletes INST-03's filler pods at once and waits until they are gone, so that the host node's
/// slots are free again for the scenarios after it (its namespace's deletion alone frees them
/// only some time after the scenario ended).
async fn give_back_slots(s: &Scenario) -> anyhow::Result<()> {
    let fillers = ListParams::default().labels(&format!("{}={}", FILLER_LABEL.0, FILLER_LABEL.1));
    s.api::<Pod>()
        .delete_collection(&DeleteParams::default().grace_period(0), &fillers)
        .await
        .context("delete the filler pods")?;
    wait::until(
        "INST-03's filler pods to be gone from the host node",
        Duration::from_secs(30),
        || async {
            let left =
                s.api::<Pod>()
                    .list(&fillers)
                    .await
                    .map_err(|source| crate::Error::Kube {
                        context: "list the filler pods".into(),
                        source,
                    })?;
            Ok(left.items.is_empty().then_some(()))
        },
        || s.diagnose(),
    )
    .await?;
    Ok(())
}

/// Adds a kwok node the installer counts as a host node (the host node's label and taint,
/// `host_label`) with room for exactly 7 pods, and waits until install sees it with 7 free;
/// answers its name. Only the pre-flight check may use it: kwok runs no processes, so an add-on
/// replica placed there would never run, and the environment has one real host node.
async fn second_host_node(s: &Scenario, host_label: &str) -> anyhow::Result<String> {
    let shape = crate::cluster::nodes::NodeShape {
        name: "inst-03-second-host".into(),
        max_pods: 7,
        ..crate::cluster::nodes::NodeShape::standard(0)
    };
    let mut node = shape.to_node();
    node.metadata
        .labels
        .get_or_insert_default()
        .insert(host_label.to_owned(), "true".into());
    node.spec.get_or_insert_default().taints = Some(vec![k8s_openapi::api::core::v1::Taint {
        key: host_label.to_owned(),
        value: Some("true".into()),
        effect: "NoSchedule".into(),
        ..k8s_openapi::api::core::v1::Taint::default()
    }]);
    Api::<Node>::all(s.client.clone())
        .create(&PostParams::default(), &node)
        .await
        .with_context(|| format!("create node {}", shape.name))?;
    wait::until(
        &format!("install to see node {} with 7 free pod slots", shape.name),
        Duration::from_secs(30),
        || async {
            let facts = lifecycle::node_facts(&s.client, s.env.addon_target()).await?;
            Ok(facts
                .iter()
                .any(|f| f.name == shape.name && f.ineligible.is_none() && f.free() == 7)
                .then_some(()))
        },
        || s.diagnose(),
    )
    .await?;
    Ok(shape.name)
}

/// A Service `name` of `type_` selecting `app=web`, port 80.
fn service(name: &str, type_: &str) -> anyhow::Result<Service> {
    Ok(serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name},
        "spec": {"type": type_, "selector": {"app": "web"},
                 "ports": [{"port": 80, "targetPort": 80, "protocol": "TCP"}]}
    }))?)
}

/// Checks a refusal by the webhook names the Service, the rule and the release it needs.
fn check_refusal(
    s: &Scenario,
    what: &str,
    result: Result<Service, kube::Error>,
    service: &str,
) -> anyhow::Result<()> {
    let message = match result {
        Ok(_) => anyhow::bail!(
            "{what} was admitted on release {}; expected a refusal (LoadBalancer for burst pods \
             needs 1.5.5)",
            s.env.release()
        ),
        Err(kube::Error::Api(status)) => status.message.clone(),
        Err(e) => return Err(e).context(what.to_owned()),
    };
    anyhow::ensure!(
        message.contains("denied the request"),
        "{what} failed for another reason than the webhook: {message}"
    );
    for needle in [service, "LoadBalancer", "1.5.5"] {
        anyhow::ensure!(
            message.contains(needle),
            "the refusal of {what} does not mention {needle:?}: {message}"
        );
    }
    Ok(())
}

/// INST-04: a LoadBalancer Service selecting a burst pod is refused before 1.5.5 (on create and
/// on an update to LoadBalancer) and works from 1.5.5; a ClusterIP Service works on every
/// release; a burst pod a LoadBalancer Service made before it selects is refused before 1.5.5
/// and bursts from 1.5.5 ([`service_first`]).
pub fn inst_04(s: &Scenario) -> BodyFuture<'_> {
    Box::pin(async move {
        let mut pod: Pod = fixtures::load("seed/nginx-pod.yaml")?;
        pod.metadata.name = Some("web".into());
        let labels = pod.metadata.labels.get_or_insert_default();
        labels.insert(POLICY_LABEL.into(), "enforce".into());
        labels.insert("app".into(), "web".into());
        s.api::<Pod>()
            .create(&PostParams::default(), &pod)
            .await
            .context("create the enforce pod web")?;
        converge(s, "app=web", 1, PATIENCE).await?;

        let services = s.api::<Service>();
        services
            .create(
                &PostParams::default(),
                &service("web-internal", "ClusterIP")?,
            )
            .await
            .context("create ClusterIP Service web-internal (expected to be admitted)")?;
        anyhow::ensure!(
            services.get_opt("web-internal").await?.is_some(),
            "Service web-internal does not exist after its creation"
        );

        let lb = services
            .create(&PostParams::default(), &service("web-lb", "LoadBalancer")?)
            .await;
        let to_lb = serde_json::json!({"spec": {"type": "LoadBalancer"}});
        if super::has(s, crate::gates::Gate::LoadBalancerService) {
            lb.context("create LoadBalancer Service web-lb (expected to be admitted)")?;
            let got = services
                .get_opt("web-lb")
                .await?
                .context("Service web-lb does not exist after its creation")?;
            anyhow::ensure!(
                got.spec.as_ref().and_then(|s| s.type_.as_deref()) == Some("LoadBalancer"),
                "Service web-lb is not of type LoadBalancer: {:?}",
                got.spec
            );
            services
                .patch(
                    "web-internal",
                    &PatchParams::default(),
                    &Patch::Merge(&to_lb),
                )
                .await
                .context("update Service web-internal to LoadBalancer (expected admitted)")?;
        } else {
            let name = format!("{}/web-lb", s.namespace);
            check_refusal(s, "LoadBalancer Service web-lb", lb, &name)?;
            anyhow::ensure!(
                services.get_opt("web-lb").await?.is_none(),
                "Service web-lb exists after its refusal"
            );
            let update = services
                .patch(
                    "web-internal",
                    &PatchParams::default(),
                    &Patch::Merge(&to_lb),
                )
                .await;
            let name = format!("{}/web-internal", s.namespace);
            check_refusal(
                s,
                "the update of web-internal to LoadBalancer",
                update,
                &name,
            )?;
            let kept = services
                .get_opt("web-internal")
                .await?
                .context("Service web-internal vanished")?;
            anyhow::ensure!(
                kept.spec.as_ref().and_then(|s| s.type_.as_deref()) == Some("ClusterIP"),
                "Service web-internal changed type despite the refusal: {:?}",
                kept.spec
            );
        }
        service_first(s)
            .await
            .context("a LoadBalancer Service made before its pod")?;
        Ok(Outcome::Passed)
    })
}

/// INST-04 the other way round: a LoadBalancer Service `later-lb` made while no pod it selects
/// exists (admitted: it selects no burst pod yet), then an `enforce` pod it selects. Below 1.5.5
/// the pod is refused naming the Service, the rule and the release; from 1.5.5 it bursts.
async fn service_first(s: &Scenario) -> anyhow::Result<()> {
    let mut lb = service("later-lb", "LoadBalancer")?;
    lb.spec.as_mut().context("spec")?.selector =
        Some([("app".to_owned(), "later".to_owned())].into());
    s.api::<Service>()
        .create(&PostParams::default(), &lb)
        .await
        .context("create LoadBalancer Service later-lb, which selects no pod yet")?;
    let mut pod: Pod = fixtures::load("seed/nginx-pod.yaml")?;
    pod.metadata.name = Some("later".into());
    let labels = pod.metadata.labels.get_or_insert_default();
    labels.insert(POLICY_LABEL.into(), "enforce".into());
    labels.insert("app".into(), "later".into());
    let created = s.api::<Pod>().create(&PostParams::default(), &pod).await;
    if super::has(s, crate::gates::Gate::LoadBalancerService) {
        created.context("create the enforce pod later (expected admitted from 1.5.5)")?;
        converge(s, "app in (web,later)", 2, PATIENCE).await?;
        return Ok(());
    }
    let message = match created {
        Ok(_) => anyhow::bail!(
            "pod later, selected by LoadBalancer Service later-lb, was admitted on release {}; \
             expected a refusal (LoadBalancer for burst pods needs 1.5.5)",
            s.env.release()
        ),
        Err(kube::Error::Api(status)) => status.message,
        Err(e) => return Err(e).context("create the enforce pod later"),
    };
    for needle in ["later-lb", "LoadBalancer", "1.5.5"] {
        anyhow::ensure!(
            message.contains(needle),
            "the refusal of pod later does not mention {needle:?}: {message}"
        );
    }
    anyhow::ensure!(
        s.api::<Pod>().get_opt("later").await?.is_none(),
        "pod later exists after its refusal"
    );
    Ok(())
}

/// Where the webhook looks for Volcano's scheduler (the namespace and name Volcano's charts use).
const VOLCANO_NAMESPACE: &str = "volcano-system";
const VOLCANO_DEPLOYMENT: &str = "volcano-scheduler";

/// Creates or updates the Deployment `volcano-scheduler` running `image`, with 0 replicas:
/// nothing needs to run, it only tells which Volcano is installed.
async fn install_volcano(client: &kube::Client, image: &str) -> anyhow::Result<()> {
    let deployment: Deployment = serde_json::from_value(serde_json::json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": VOLCANO_DEPLOYMENT, "namespace": VOLCANO_NAMESPACE,
                     "labels": {"app": "volcano-scheduler", "burstcert.io/scenario": "INST-05"}},
        "spec": {
            "replicas": 0,
            "selector": {"matchLabels": {"app": "volcano-scheduler"}},
            "template": {
                "metadata": {"labels": {"app": "volcano-scheduler"}},
                "spec": {"containers": [{"name": "volcano-scheduler", "image": image}]}
            }
        }
    }))?;
    Api::<Deployment>::namespaced(client.clone(), VOLCANO_NAMESPACE)
        .patch(
            VOLCANO_DEPLOYMENT,
            &PatchParams::apply("burstcert").force(),
            &Patch::Apply(&deployment),
        )
        .await
        .with_context(|| {
            format!("apply Deployment {VOLCANO_NAMESPACE}/{VOLCANO_DEPLOYMENT} ({image})")
        })?;
    Ok(())
}

/// Waits until the webhook, asked through a server-side dry run of `pod` (nothing is created,
/// and the webhook posts no event for a dry run), mutates it for the virtual node (`bursts`) or
/// not: the webhook keeps what it read of Volcano for up to 10 s.
async fn until_webhook_sees(
    s: &Scenario,
    pod: &Pod,
    bursts: bool,
    volcano: &str,
) -> anyhow::Result<()> {
    let dry_run = PostParams {
        dry_run: true,
        ..PostParams::default()
    };
    wait::until(
        &format!(
            "the webhook to see Volcano {volcano}: a dry run of the pod {} the virtual node's toleration",
            if bursts { "gets" } else { "does not get" }
        ),
        PATIENCE,
        || async {
            let got = s
                .api::<Pod>()
                .create(&dry_run, pod)
                .await
                .map_err(|source| crate::Error::Kube {
                    context: "dry-run create the Volcano pod".into(),
                    source,
                })?;
            Ok((tolerates_virtual_node(&got) == bursts).then_some(()))
        },
        || s.diagnose(),
    )
    .await?;
    Ok(())
}

/// An `enforce` pod `name` Volcano schedules (`schedulerName: volcano`) with an SFS claim.
fn volcano_pod(name: &str, claim_name: &str) -> anyhow::Result<Pod> {
    let mut pod = pod_with(
        name,
        serde_json::json!([{"name": "store", "persistentVolumeClaim": {"claimName": claim_name}}]),
        &[],
    )?;
    pod.spec.as_mut().context("spec")?.scheduler_name = Some("volcano".into());
    Ok(pod)
}

/// INST-05: Volcano `<= 1.17.10` cannot place pods with cloud storage on CCI (§2, the seed:
/// "Volcano调度器1.17.10及以下版本暂不支持使用Volcano调度器将挂载云存储卷的容器实例(Pod)弹性到CCI").
///
/// Volcano is modelled, not run: the Deployment `volcano-system/volcano-scheduler` with 0
/// replicas and the image `volcanosh/vc-scheduler:v1.17.10` says which Volcano is installed,
/// which is what the webhook reads. An `enforce` pod naming the scheduler `volcano` with an SFS
/// claim is then admitted unmutated (no toleration, no affinity to the virtual node), carries
/// a KeptLocal Warning event naming Volcano 1.17.10, the rule and the volume, and has nothing
/// on CCI. With `v1.17.11` the same pod is mutated for the
/// virtual node and gets no such event; bound to the node its affinity requires, as Volcano's
/// scheduler would bind it, it runs on CCI with its claim. The Deployment (and the namespace,
/// if the scenario made it) is removed at the end; the Volcano install is cluster-wide, and so
/// is the scenario (it needs the installer), so it runs alone.
pub fn inst_05(s: &Scenario) -> BodyFuture<'_> {
    Box::pin(async move {
        let namespaces: Api<Namespace> = Api::all(s.client.clone());
        let made_namespace = match namespaces
            .create(
                &PostParams::default(),
                &serde_json::from_value(serde_json::json!({
                    "apiVersion": "v1", "kind": "Namespace",
                    "metadata": {"name": VOLCANO_NAMESPACE}
                }))?,
            )
            .await
        {
            Ok(_) => true,
            Err(kube::Error::Api(e)) if e.code == 409 => false,
            Err(e) => return Err(e).context(format!("create namespace {VOLCANO_NAMESPACE}")),
        };
        let pv_name = format!("{}-sfs", s.namespace);
        let result = inst_05_body(s, &pv_name).await;

        let deployments: Api<Deployment> = Api::namespaced(s.client.clone(), VOLCANO_NAMESPACE);
        let mut cleanup = Vec::new();
        match deployments
            .delete(VOLCANO_DEPLOYMENT, &DeleteParams::default())
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => cleanup.push(format!("delete Deployment {VOLCANO_DEPLOYMENT}: {e}")),
        }
        if made_namespace
            && let Err(e) = namespaces
                .delete(VOLCANO_NAMESPACE, &DeleteParams::default())
                .await
        {
            cleanup.push(format!("delete namespace {VOLCANO_NAMESPACE}: {e}"));
        }
        let _ = Api::<PersistentVolume>::all(s.client.clone())
            .delete(&pv_name, &DeleteParams::default())
            .await;
        result?;
        anyhow::ensure!(
            cleanup.is_empty(),
            "clean-up failed: {}",
            cleanup.join("; ")
        );
        Ok(Outcome::Passed)
    })
}

async fn inst_05_body(s: &Scenario, pv_name: &str) -> anyhow::Result<()> {
    // An SFS claim (the class the engine and the mock accept), bound to a pre-provisioned
    // volume of its CSI driver, as VOL-06 makes them.
    let classes: Api<StorageClass> = Api::all(s.client.clone());
    ensure_class(&classes, "csi-nas", "nas.csi.everest.io").await?;
    let pv: PersistentVolume = serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "PersistentVolume",
        "metadata": {"name": pv_name},
        "spec": {
            "capacity": {"storage": "1Gi"},
            "accessModes": ["ReadWriteMany"],
            "storageClassName": "csi-nas",
            "persistentVolumeReclaimPolicy": "Retain",
            "csi": {"driver": "nas.csi.everest.io", "volumeHandle": pv_name},
            "claimRef": {"namespace": s.namespace, "name": "claim-sfs"}
        }
    }))?;
    Api::<PersistentVolume>::all(s.client.clone())
        .create(&PostParams::default(), &pv)
        .await
        .context("create the SFS PersistentVolume")?;
    s.api::<PersistentVolumeClaim>()
        .create(&PostParams::default(), &claim("claim-sfs", "csi-nas")?)
        .await
        .context("create claim-sfs")?;

    // 1. Volcano 1.17.10: kept off CCI, with an event.
    install_volcano(&s.client, "volcanosh/vc-scheduler:v1.17.10").await?;
    let old = volcano_pod("old-volcano", "claim-sfs")?;
    until_webhook_sees(s, &old, false, "1.17.10").await?;
    let created = s
        .api::<Pod>()
        .create(&PostParams::default(), &old)
        .await
        .context("create pod old-volcano (expected admitted, kept local)")?;
    anyhow::ensure!(
        !tolerates_virtual_node(&created) && !requires_virtual_node(&created),
        "pod old-volcano was mutated for the virtual node under Volcano 1.17.10: {:?}",
        created.spec.as_ref().map(|s| (&s.tolerations, &s.affinity))
    );
    let event = wait::until(
        "a KeptLocal Warning event on pod old-volcano",
        PATIENCE,
        || async {
            Ok(kept_local_events(s, "old-volcano")
                .await?
                .into_iter()
                .next())
        },
        || s.diagnose(),
    )
    .await?;
    let message = event.message.clone().unwrap_or_default();
    anyhow::ensure!(
        event.type_.as_deref() == Some("Warning"),
        "the KeptLocal event is of type {:?}, not Warning",
        event.type_
    );
    for needle in [
        "old-volcano",
        "Volcano 1.17.10",
        "Volcano <= 1.17.10",
        "cloud-storage",
        "store",
    ] {
        anyhow::ensure!(
            message.contains(needle),
            "the KeptLocal event does not mention {needle:?}: {message}"
        );
    }
    snapshot::settings().bind(|| insta::assert_snapshot!("inst_05_kept_local_event", message));
    // Whether the pod is bound to the virtual node is not asked: no Volcano scheduler runs
    // here, so nothing binds it whatever the engine did. What a scheduler acts on, the
    // toleration and the affinity, was checked above.
    anyhow::ensure!(
        s.cci_pods().await?.is_empty(),
        "CCI holds a pod although Volcano 1.17.10 keeps the pod local"
    );

    // 2. Volcano 1.17.11: the rule no longer applies.
    install_volcano(&s.client, "volcanosh/vc-scheduler:v1.17.11").await?;
    let new = volcano_pod("new-volcano", "claim-sfs")?;
    until_webhook_sees(s, &new, true, "1.17.11").await?;
    let created = s
        .api::<Pod>()
        .create(&PostParams::default(), &new)
        .await
        .context("create pod new-volcano (expected admitted for CCI)")?;
    anyhow::ensure!(
        tolerates_virtual_node(&created) && requires_virtual_node(&created),
        "pod new-volcano was not mutated for the virtual node under Volcano 1.17.11: {:?}",
        created.spec.as_ref().map(|s| (&s.tolerations, &s.affinity))
    );
    let events = kept_local_events(s, "new-volcano").await?;
    anyhow::ensure!(
        events.is_empty(),
        "pod new-volcano was kept local under Volcano 1.17.11: {:?}",
        events.iter().map(|e| e.message.clone()).collect::<Vec<_>>()
    );
    // Volcano is not running: bind the pod where its required affinity sends it, as Volcano's
    // scheduler would.
    let binding = serde_json::json!({
        "apiVersion": "v1", "kind": "Binding",
        "metadata": {"name": "new-volcano"},
        "target": {"apiVersion": "v1", "kind": "Node", "name": s.virtual_node()}
    });
    s.api::<Pod>()
        .create_subresource::<serde_json::Value, serde_json::Value>(
            "binding",
            "new-volcano",
            &PostParams::default(),
            &binding,
        )
        .await
        .context("bind pod new-volcano to the virtual node, as Volcano would")?;
    converge(s, "scenario-pod=new-volcano", 1, Duration::from_secs(90)).await?;
    let cci = s.cci_pods().await?;
    let has_claim = cci.iter().any(|p| {
        p.spec.volumes.iter().flatten().any(|v| {
            v.name == "store"
                && v.persistent_volume_claim
                    .as_ref()
                    .is_some_and(|c| c.claim_name == format!("{}.claim-sfs", s.namespace))
        })
    });
    anyhow::ensure!(
        has_claim,
        "the CCI pod of new-volcano lacks its mirrored claim"
    );
    Ok(())
}
