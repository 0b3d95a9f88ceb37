//! The add-on's own lifecycle (`BEHAVIOR.md` §2, §8, §9, §10): install preconditions (INST-01..03),
//! uninstall (UN-01..04), upgrade and rollback (UP-01..03), network interconnect (NET-01, NET-02).
//!
//! Every body here changes cluster-wide state (the add-on in `kube-system`, nodes): each needs
//! the installer, which makes it cluster-wide, so `catalogue::run` runs it alone on its
//! environment; each leaves the add-on as the environment installed it
//! ([`crate::env::Env::restore_addon`]), also when it fails.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use burst_rules::release::Release;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Node, Pod, Service};
use kube::ResourceExt as _;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};

use super::{BodyFuture, POLICY_LABEL, cluster_uid_of, converge};
use crate::addon::lifecycle::{self, Status, UninstallOptions};
use crate::addon::params::{InstallParams, Spec};
use crate::addon::render::{self, NAMESPACE};
use crate::progress::Progress;
use crate::scenario::Outcome;
use crate::scenario::Scenario;
use crate::{fixtures, wait};

const PATIENCE: Duration = Duration::from_secs(120);
/// The last release with the old sidecar (the one before `Gate::SidecarV2`'s threshold).
const OLD_SIDECAR: Release = Release::new(1, 5, 17);
/// The annotation the engine records the sidecar protocol in.
const SIDECAR_ANNOTATION: &str = "bursting.cci.io/sidecar-protocol";

fn release() -> anyhow::Result<Release> {
    Release::parse(crate::env::release()).map_err(|e| anyhow::anyhow!("{e}"))
}

/// Runs `body`, then puts the add-on back as the environment installed it, whether the body
/// passed or not.
pub(crate) async fn serially<'a, F>(s: &'a Scenario, body: F) -> anyhow::Result<Outcome>
where
    F: std::future::Future<Output = anyhow::Result<Outcome>> + Send + 'a,
{
    let outcome = body.await;
    let restored = s.env.restore_addon().await;
    match (outcome, restored) {
        (Ok(o), Ok(())) => Ok(o),
        (Err(e), _) => Err(e),
        (Ok(_), Err(e)) => Err(anyhow::anyhow!(e).context("restoring the add-on afterwards")),
    }
}

/// A Deployment of `replicas` seed nginx pods labelled `enforce` and `app={name}`.
async fn burst(s: &Scenario, name: &str, replicas: i32) -> anyhow::Result<Vec<Pod>> {
    let mut deployment: Deployment = fixtures::load("workloads/wl-02-deployment.yaml")?;
    deployment.metadata.name = Some(name.into());
    let spec = deployment.spec.as_mut().context("spec")?;
    spec.replicas = Some(replicas);
    let app = BTreeMap::from([("app".to_owned(), name.to_owned())]);
    spec.selector.match_labels = Some(app.clone());
    let template = spec.template.metadata.get_or_insert_default();
    let labels = template.labels.get_or_insert_default();
    labels.extend(app);
    labels.insert(POLICY_LABEL.into(), "enforce".into());
    s.api::<Deployment>()
        .create(&PostParams::default(), &deployment)
        .await
        .with_context(|| format!("create deployment {name}"))?;
    wait_burst(s, name, usize::try_from(replicas)?).await
}

/// Waits until `n` pods with `app={app}` run on the virtual node, each with a Running CCI pod.
/// (Unlike [`converge`], other burst pods of the scenario may exist beside them.)
async fn wait_burst(s: &Scenario, app: &str, n: usize) -> anyhow::Result<Vec<Pod>> {
    let step = |e: anyhow::Error| crate::Error::Step {
        step: format!("read the pods of app={app}"),
        detail: e.to_string(),
    };
    Ok(wait::until(
        &format!("{n} pods (app={app}) Running on the virtual node, each with a Running CCI pod"),
        PATIENCE,
        || async {
            let pods = s
                .api::<Pod>()
                .list(&ListParams::default().labels(&format!("app={app}")))
                .await
                .map_err(|e| step(e.into()))?
                .items;
            let cci = cci_by_uid(s, app).await.map_err(step)?;
            let ready = pods.len() == n
                && pods.iter().all(|p| {
                    super::running_on(render::VIRTUAL_NODE, p)
                        && p.metadata
                            .uid
                            .as_ref()
                            .and_then(|u| cci.get(u))
                            .is_some_and(super::cci_running)
                });
            Ok(ready.then_some(pods))
        },
        || s.diagnose(),
    )
    .await?)
}

/// The CCI pods standing for the scenario's pods with label `app={app}`, by cluster UID.
async fn cci_by_uid(s: &Scenario, app: &str) -> anyhow::Result<BTreeMap<String, cci_api::Pod>> {
    let pods = s
        .api::<Pod>()
        .list(&ListParams::default().labels(&format!("app={app}")))
        .await?;
    let uids: BTreeSet<String> = pods
        .items
        .iter()
        .filter_map(|p| p.metadata.uid.clone())
        .collect();
    Ok(s.cci_pods()
        .await?
        .into_iter()
        .filter_map(|p| {
            let uid = cluster_uid_of(&p)?.to_owned();
            uids.contains(&uid).then_some((uid, p))
        })
        .collect())
}

fn sidecar(pod: &cci_api::Pod) -> &str {
    pod.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(SIDECAR_ANNOTATION))
        .map_or("(none)", String::as_str)
}

async fn move_to(s: &Scenario, params: &InstallParams) -> anyhow::Result<()> {
    lifecycle::upgrade(&s.client, params, s.env.addon_target(), &Progress::quiet())
        .await
        .with_context(|| format!("upgrade the add-on to {}", params.release))
}

fn at(release: Release, s: &Scenario) -> InstallParams {
    let mut p = s.env.addon_defaults().clone();
    p.release = release;
    p
}

/// Every object of the add-on left anywhere in the cluster: the kinds `kubectl get
/// all,sa,clusterrole,clusterrolebinding,mutatingwebhookconfiguration,validatingwebhookconfiguration -A`
/// lists, found by label or by a `bursting` name, plus the virtual node, the leases (node and leader) and the state ConfigMap.
async fn leftovers(client: &kube::Client) -> anyhow::Result<Vec<String>> {
    use k8s_openapi::api::admissionregistration::v1::{
        MutatingWebhookConfiguration, ValidatingWebhookConfiguration,
    };
    use k8s_openapi::api::core::v1::{ConfigMap, Secret, ServiceAccount};
    use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};

    async fn names<K>(api: Api<K>, kind: &str) -> anyhow::Result<Vec<String>>
    where
        K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
    {
        let list = api.list(&ListParams::default()).await?;
        Ok(list
            .items
            .iter()
            .filter(|o| {
                o.labels()
                    .get("app.kubernetes.io/part-of")
                    .map(String::as_str)
                    == Some(render::PART_OF)
                    || o.name_any().contains("bursting")
                    || o.name_any().contains("-gc-jobs")
            })
            .map(|o| {
                format!(
                    "{kind} {}/{}",
                    o.namespace().unwrap_or_default(),
                    o.name_any()
                )
            })
            .collect())
    }
    let c = client.clone();
    let mut found = Vec::new();
    found.extend(names(Api::<Deployment>::all(c.clone()), "deployment").await?);
    found.extend(names(Api::<Job>::all(c.clone()), "job").await?);
    found.extend(names(Api::<Pod>::namespaced(c.clone(), NAMESPACE), "pod").await?);
    found.extend(names(Api::<Service>::all(c.clone()), "service").await?);
    found.extend(names(Api::<ServiceAccount>::all(c.clone()), "serviceaccount").await?);
    found.extend(names(Api::<ClusterRole>::all(c.clone()), "clusterrole").await?);
    found.extend(
        names(
            Api::<ClusterRoleBinding>::all(c.clone()),
            "clusterrolebinding",
        )
        .await?,
    );
    found.extend(
        names(
            Api::<MutatingWebhookConfiguration>::all(c.clone()),
            "mutatingwebhookconfiguration",
        )
        .await?,
    );
    found.extend(
        names(
            Api::<ValidatingWebhookConfiguration>::all(c.clone()),
            "validatingwebhookconfiguration",
        )
        .await?,
    );
    found.extend(
        names(
            Api::<ConfigMap>::namespaced(c.clone(), NAMESPACE),
            "configmap",
        )
        .await?,
    );
    // The CCI credential and the webhook's certificate; by the add-on's label or name, so a
    // user's or a service account's Secret elsewhere is no leftover.
    found.extend(names(Api::<Secret>::all(c.clone()), "secret").await?);
    found.extend(
        names(
            Api::<k8s_openapi::api::coordination::v1::Lease>::all(c.clone()),
            "lease",
        )
        .await?,
    );
    found.extend(names(Api::<Node>::all(c), "node").await?);
    Ok(found)
}

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
        let release = release()?;
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
        let release = release()?;
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
    let host = vk_hostnode::HOST_NODE;
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
    // replaced) moved the count after a single count, and the wait for 7 never ended (29
    // fillers made; a flake seen on a quiet machine, 2026-12-02).
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
    let second = second_host_node(s, &target).await?;
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

/// Adds a kwok node the local installer counts as a host node (its label and taint) with room
/// for exactly 7 pods, and waits until install sees it with 7 free; answers its name. Only the
/// pre-flight check may use it: kwok runs no processes, so an add-on replica placed there would
/// never run, and the local environment has one real host node.
async fn second_host_node(s: &Scenario, target: &render::Target) -> anyhow::Result<String> {
    let render::Target::Local { host_label, .. } = target else {
        anyhow::bail!("INST-03 chooses nodes on the local target only (Need::ChosenNodes)");
    };
    let shape = crate::cluster::nodes::NodeShape {
        name: "inst-03-second-host".into(),
        max_pods: 7,
        ..crate::cluster::nodes::NodeShape::standard(0)
    };
    let mut node = shape.to_node();
    node.metadata
        .labels
        .get_or_insert_default()
        .insert(host_label.clone(), "true".into());
    node.spec.get_or_insert_default().taints = Some(vec![k8s_openapi::api::core::v1::Taint {
        key: host_label.clone(),
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
            let facts = lifecycle::node_facts(&s.client, target).await?;
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

/// UN-01: uninstall runs both gc jobs to completion; afterwards nothing of the add-on is left in
/// the cluster, its CCI namespace is gone, and another cluster's CCI namespace is untouched.
pub fn un_01(s: &Scenario) -> BodyFuture<'_> {
    Box::pin(serially(s, async move {
        burst(s, "un-01", 2).await?;
        let other = other_cluster(s).await?;
        let started = Instant::now();
        lifecycle::uninstall(
            &s.client,
            s.env.addon_target(),
            &UninstallOptions {
                gc_timeout: Duration::from_secs(120),
            },
            &Progress::quiet(),
        )
        .await?;
        eprintln!(
            "UN-01: uninstall took {:.1}s",
            started.elapsed().as_secs_f64()
        );
        let left = leftovers(&s.client).await?;
        anyhow::ensure!(left.is_empty(), "left after uninstall: {left:?}");
        anyhow::ensure!(
            !s.cci().namespace_exists(s.cci_namespace()).await?,
            "the CCI namespace {} is still there",
            s.cci_namespace()
        );
        let other_pods = s.cci().pods(&other).await?;
        anyhow::ensure!(
            other_pods.len() == 1 && s.cci().namespace_exists(&other).await?,
            "the other cluster's namespace {other} was touched: {} pods",
            other_pods.len()
        );
        s.cci().delete(&format!("/namespaces/{other}")).await?;
        Ok(Outcome::Passed)
    }))
}

/// Another cluster's CCI namespace with one pod, made through the CCI API as its engine would.
async fn other_cluster(s: &Scenario) -> anyhow::Result<String> {
    let ns = format!("bursting-other-{}", &s.namespace[s.namespace.len() - 5..]);
    s.cci()
        .create(
            "/namespaces",
            &serde_json::json!({"apiVersion": cci_api::API_VERSION, "kind": "Namespace", "metadata": {"name": ns}}),
        )
        .await?;
    engine_network(s, &ns).await?;
    let size = BTreeMap::from([("cpu", "500m"), ("memory", "1Gi")]);
    s.cci()
        .create(
            &format!("/namespaces/{ns}/pods"),
            &serde_json::json!({
                "apiVersion": cci_api::API_VERSION, "kind": "Pod",
                "metadata": {"name": "theirs"},
                "spec": {"containers": [{"name": "c", "image": "nginx:latest",
                    "resources": {"requests": size, "limits": size}}]}
            }),
        )
        .await?;
    Ok(ns)
}

/// Gives CCI namespace `ns` of another cluster the Network its engine would have made before
/// its pods (namespace, then Network, then pods, as published CCI 2.0 has it).
async fn engine_network(s: &Scenario, ns: &str) -> anyhow::Result<()> {
    s.cci()
        .create_network(
            ns,
            &serde_json::json!({
                "apiVersion": cci_api::NETWORK_API_VERSION, "kind": "Network",
                "metadata": {"name": cci_api::CLUSTER_NETWORK_NAME, "annotations": {
                    cci_api::ANNOTATION_NETWORK_PROJECT_ID: "project-other",
                    cci_api::ANNOTATION_NETWORK_DOMAIN_ID: "domain-other"}},
                "spec": {"networkType": cci_api::NETWORK_TYPE_UNDERLAY,
                    "securityGroups": ["sg-other"], "subnets": [{"subnetID": "subnet-other"}]}
            }),
        )
        .await?;
    Ok(())
}

/// The number of CCI pods of this cluster, and whether its namespace exists.
async fn cci_side(s: &Scenario) -> anyhow::Result<(usize, bool)> {
    Ok((
        s.cci().pods(s.cci_namespace()).await?.len(),
        s.cci().namespace_exists(s.cci_namespace()).await?,
    ))
}

async fn cordon(s: &Scenario, names: &[String], on: bool) -> anyhow::Result<()> {
    let nodes: Api<Node> = Api::all(s.client.clone());
    for name in names {
        nodes
            .patch(
                name,
                &PatchParams::default(),
                &Patch::Merge(serde_json::json!({"spec": {"unschedulable": on}})),
            )
            .await
            .with_context(|| format!("cordon={on} node {name}"))?;
    }
    Ok(())
}

/// Expects a failed uninstall leaving the add-on DeleteFailed, with `needle` in the reason.
async fn expect_delete_failed(
    s: &Scenario,
    result: crate::Result<()>,
    needle: &str,
) -> anyhow::Result<()> {
    let err = match result {
        Ok(()) => anyhow::bail!("uninstall succeeded; expected it to fail"),
        Err(e) => e.to_string(),
    };
    anyhow::ensure!(
        err.contains(needle),
        "the failure does not mention {needle:?}: {err}"
    );
    let state = lifecycle::state(&s.client)
        .await?
        .context("the add-on state is gone")?;
    anyhow::ensure!(
        state.status == Status::DeleteFailed,
        "the add-on shows {} after a failed uninstall",
        state.status
    );
    Ok(())
}

/// The gc timeout UN-02's first uninstall is given.
const UN_02_GC_TIMEOUT: Duration = Duration::from_secs(20);
/// How late past its gc timeout an uninstall may fail (the state write, the last poll of the
/// jobs); a fifth of it is allowed early, for how late this scenario sees the wait begin.
const GC_TIMEOUT_SLACK: Duration = Duration::from_secs(5);

/// Uninstalls with `gc_timeout`, watching the add-on state: returns the outcome and how long
/// after the state said "waiting for the gc jobs" the uninstall returned (`None` if never seen).
async fn uninstall_timing_the_gc_wait(
    s: &Scenario,
    gc_timeout: Duration,
) -> (crate::Result<()>, Option<Duration>) {
    let options = UninstallOptions { gc_timeout };
    let progress = Progress::quiet();
    let uninstall = lifecycle::uninstall(&s.client, s.env.addon_target(), &options, &progress);
    tokio::pin!(uninstall);
    let mut waiting_since: Option<Instant> = None;
    let mut poll = tokio::time::interval(Duration::from_millis(200));
    loop {
        tokio::select! {
            result = &mut uninstall => return (result, waiting_since.map(|t| t.elapsed())),
            _ = poll.tick(), if waiting_since.is_none() => {
                if let Ok(Some(state)) = lifecycle::state(&s.client).await
                    && state.message.starts_with("waiting for the gc jobs")
                {
                    waiting_since = Some(Instant::now());
                }
            }
        }
    }
}

/// UN-02: with no schedulable node the gc jobs cannot run: uninstall fails when its gc timeout
/// (20 s here) runs out, not before and not much after; the add-on shows DeleteFailed and the
/// CCI side is intact; once a node is schedulable again, uninstall succeeds.
pub fn un_02(s: &Scenario) -> BodyFuture<'_> {
    Box::pin(serially(s, async move {
        burst(s, "un-02", 2).await?;
        let before = cci_side(s).await?;
        let nodes: Vec<String> = Api::<Node>::all(s.client.clone())
            .list(&ListParams::default())
            .await?
            .items
            .iter()
            .map(|n| n.name_any())
            .filter(|n| n != render::VIRTUAL_NODE)
            .collect();
        cordon(s, &nodes, true).await?;
        let (first, gc_waited) = uninstall_timing_the_gc_wait(s, UN_02_GC_TIMEOUT).await;
        let checked = async {
            expect_delete_failed(s, first, "gc jobs").await?;
            let waited =
                gc_waited.context("the state never said it was waiting for the gc jobs")?;
            anyhow::ensure!(
                waited + GC_TIMEOUT_SLACK / 5 >= UN_02_GC_TIMEOUT
                    && waited <= UN_02_GC_TIMEOUT + GC_TIMEOUT_SLACK,
                "uninstall failed {waited:?} after it began waiting for the gc jobs; the gc \
                 timeout is {UN_02_GC_TIMEOUT:?} (slack {GC_TIMEOUT_SLACK:?})"
            );
            let after = cci_side(s).await?;
            anyhow::ensure!(
                after == before,
                "the CCI side changed: {before:?} -> {after:?}"
            );
            Ok(())
        }
        .await;
        cordon(s, &nodes, false).await?;
        checked?;
        lifecycle::uninstall(
            &s.client,
            s.env.addon_target(),
            &UninstallOptions {
                gc_timeout: Duration::from_secs(120),
            },
            &Progress::quiet(),
        )
        .await
        .context("the second uninstall, with nodes schedulable again")?;
        let left = leftovers(&s.client).await?;
        anyhow::ensure!(left.is_empty(), "left after uninstall: {left:?}");
        anyhow::ensure!(
            cci_side(s).await? == (0, false),
            "the CCI side is still there"
        );
        Ok(Outcome::Passed)
    }))
}

/// UN-03: with a wrong `swr_addr` the gc jobs cannot pull: uninstall fails; started again, with
/// both gc jobs deleted by hand within 210 s, it completes (the CCI namespace, never cleaned, is
/// then removed with `burstcert cci purge`).
pub fn un_03(s: &Scenario) -> BodyFuture<'_> {
    Box::pin(serially(s, async move {
        burst(s, "un-03", 1).await?;
        let mut wrong = s.env.addon_defaults().clone();
        wrong.swr_addr = "swr.wrong.example".into();
        lifecycle::configure(&s.client, &wrong).await?;
        let first = lifecycle::uninstall(
            &s.client,
            s.env.addon_target(),
            &UninstallOptions {
                gc_timeout: Duration::from_secs(20),
            },
            &Progress::quiet(),
        )
        .await;
        expect_delete_failed(s, first, "gc jobs").await?;
        // The gc pods say why: the image cannot be pulled.
        let pods: Api<Pod> = Api::namespaced(s.client.clone(), NAMESPACE);
        let gc_pods = pods
            .list(&ListParams::default().labels("app.kubernetes.io/component=gc"))
            .await?;
        let reasons: Vec<String> = gc_pods
            .items
            .iter()
            .flat_map(|p| {
                p.status
                    .iter()
                    .flat_map(|st| st.container_statuses.iter().flatten())
            })
            .filter_map(|c| c.state.as_ref()?.waiting.as_ref()?.reason.clone())
            .collect();
        anyhow::ensure!(
            !reasons.is_empty()
                && reasons
                    .iter()
                    .all(|r| r == "ErrImagePull" || r == "ImagePullBackOff"),
            "gc pods are not failing to pull: {reasons:?}"
        );
        anyhow::ensure!(cci_side(s).await?.1, "the CCI namespace vanished");

        // Recovery: uninstall again, and delete both jobs while it waits.
        let started = Instant::now();
        let client = s.client.clone();
        let target = s.env.addon_target().clone();
        let second = tokio::spawn(async move {
            lifecycle::uninstall(
                &client,
                &target,
                &UninstallOptions::default(),
                &Progress::quiet(),
            )
            .await
        });
        let jobs: Api<Job> = Api::namespaced(s.client.clone(), NAMESPACE);
        wait::until(
            "uninstall to be waiting on the gc jobs again",
            Duration::from_secs(30),
            || async {
                let state = lifecycle::state(&s.client).await?;
                Ok(state
                    .is_some_and(|st| {
                        st.status == Status::Deleting
                            && st.message.starts_with("waiting for the gc jobs")
                    })
                    .then_some(()))
            },
            || s.diagnose(),
        )
        .await?;
        for job in render::gc_jobs(&wrong, s.env.addon_target()) {
            jobs.delete(&job.name_any(), &DeleteParams::background())
                .await?;
        }
        let deleted_after = started.elapsed();
        anyhow::ensure!(
            deleted_after < Duration::from_secs(210),
            "jobs deleted too late"
        );
        second
            .await?
            .context("the second uninstall, gc jobs deleted by hand")?;
        eprintln!(
            "UN-03: jobs deleted {:.1}s into the second uninstall, which then completed in {:.1}s",
            deleted_after.as_secs_f64(),
            started.elapsed().as_secs_f64()
        );
        let left = leftovers(&s.client).await?;
        anyhow::ensure!(left.is_empty(), "left after uninstall: {left:?}");
        // Nothing cleaned the CCI side: that is the seed's caveat, and purge's job.
        let (pods, exists) = cci_side(s).await?;
        anyhow::ensure!(
            exists && pods >= 1,
            "expected the CCI side left behind, saw {pods} pods"
        );
        let report = crate::addon::purge::purge(s.cci(), &s.env.cluster_id).await?;
        anyhow::ensure!(report.pods >= 1, "purge removed no pod: {report}");
        anyhow::ensure!(cci_side(s).await? == (0, false), "purge left the CCI side");
        Ok(Outcome::Passed)
    }))
}

/// UN-04: a cluster deleted without uninstall leaves its `bursting-{id}` namespace and billable
/// pods on CCI; `burstcert cci purge --cluster-id` removes them and says what it stopped.
pub fn un_04(s: &Scenario) -> BodyFuture<'_> {
    Box::pin(serially(s, async move {
        // The deleted cluster: one whose engine burst two pods, then vanished (no uninstall,
        // no gc). Its pods were made through the CCI API as its engine made them.
        let gone = format!("gone{}", &s.namespace[s.namespace.len() - 5..]);
        let ns = cci_api::namespace_for_cluster(&gone);
        s.cci()
            .create(
                "/namespaces",
                &serde_json::json!({"apiVersion": cci_api::API_VERSION, "kind": "Namespace", "metadata": {"name": ns}}),
            )
            .await?;
        engine_network(s, &ns).await?;
        let size = BTreeMap::from([("cpu", "1"), ("memory", "2Gi")]);
        for name in ["web-0", "web-1"] {
            s.cci()
                .create(
                    &format!("/namespaces/{ns}/pods"),
                    &serde_json::json!({
                        "apiVersion": cci_api::API_VERSION, "kind": "Pod",
                        "metadata": {"name": name},
                        "spec": {"containers": [{"name": "c", "image": "nginx:latest",
                            "resources": {"requests": size, "limits": size}}]}
                    }),
                )
                .await?;
        }
        wait::until(
            "the left-behind pods to be Running (billable)",
            Duration::from_secs(30),
            || async {
                let pods = s.cci().pods(&ns).await?;
                Ok((pods.len() == 2 && pods.iter().all(super::cci_running)).then_some(()))
            },
            || async { s.cci().describe(&ns).await },
        )
        .await?;
        let ours_before = s.cci().pods(s.cci_namespace()).await?.len();
        let report = crate::addon::purge::purge(s.cci(), &gone).await?;
        eprintln!("UN-04: {report}");
        anyhow::ensure!(
            report.pods == 2,
            "purge removed {} pods, expected 2: {report}",
            report.pods
        );
        anyhow::ensure!(
            report.vcpu_seconds > 0.0,
            "purge reported no billable time: {report}"
        );
        anyhow::ensure!(!s.cci().namespace_exists(&ns).await?, "{ns} is still there");
        anyhow::ensure!(
            s.cci().pods(s.cci_namespace()).await?.len() == ours_before,
            "purge touched this cluster's namespace"
        );
        Ok(Outcome::Passed)
    }))
}

/// UP-01: 1.5.17 → this release (≥ 1.5.18) with burst pods running: the same pods on both sides
/// (cluster UIDs and CCI UIDs), their sidecar unchanged (v1); a pod created afterwards gets v2.
pub fn up_01(s: &Scenario) -> BodyFuture<'_> {
    Box::pin(serially(s, async move {
        let release = release()?;
        if !crate::gates::Gate::SidecarV2.applies_to(release) {
            return Ok(Outcome::NotApplicable(format!(
                "the sidecar upgrade is 1.5.17 -> 1.5.18 or later; this is {release}"
            )));
        }
        move_to(s, &at(OLD_SIDECAR, s)).await?;
        burst(s, "up-01", 2).await?;
        let before = cci_by_uid(s, "up-01").await?;
        for pod in before.values() {
            anyhow::ensure!(
                sidecar(pod) == "v1",
                "1.5.17 burst a pod with sidecar {}",
                sidecar(pod)
            );
        }
        move_to(s, &at(release, s)).await?;
        // Let the new engine run a few status rounds before comparing.
        let pods = converge(s, "app=up-01", 2, PATIENCE).await?;
        let after = cci_by_uid(s, "up-01").await?;
        let ids = |m: &BTreeMap<String, cci_api::Pod>| -> Vec<(String, Option<String>, String)> {
            m.iter()
                .map(|(k, p)| (k.clone(), p.metadata.uid.clone(), sidecar(p).to_owned()))
                .collect()
        };
        anyhow::ensure!(
            ids(&before) == ids(&after),
            "the upgrade changed burst pods:\nbefore {:?}\nafter  {:?}",
            ids(&before),
            ids(&after)
        );
        anyhow::ensure!(pods.len() == 2, "cluster pods changed");
        s.api::<Deployment>()
            .patch(
                "up-01",
                &PatchParams::default(),
                &Patch::Merge(serde_json::json!({"spec": {"replicas": 3}})),
            )
            .await?;
        converge(s, "app=up-01", 3, PATIENCE).await?;
        let now = cci_by_uid(s, "up-01").await?;
        let new: Vec<&cci_api::Pod> = now
            .iter()
            .filter(|(uid, _)| !before.contains_key(*uid))
            .map(|(_, p)| p)
            .collect();
        anyhow::ensure!(
            new.len() == 1 && sidecar(new[0]) == "v2",
            "the pod created after the upgrade has sidecar {:?}",
            new.iter().map(|p| sidecar(p)).collect::<Vec<_>>()
        );
        Ok(Outcome::Passed)
    }))
}

/// The cluster Service the network scenarios probe, and what its pod answers.
pub(crate) struct Web {
    /// The probe's target, `web.{namespace}`.
    pub(crate) target: String,
    /// The text only its pod answers (made for this scenario); `None` where the harness cannot
    /// run the pod (no host node: the Service then has no backend).
    pub(crate) reply: Option<String>,
}

/// A ClusterIP Service `web` in the scenario's namespace and the one pod behind it: the
/// stand-in workload `echo-backend` on the host node (a cluster pod, not burst), answering a
/// text made for this scenario. A probe that shows that text got the pod's own answer back
/// through the proxy; no registration or proxy can make it up. Waits until the pod is Ready.
/// Without a host node (kind) only the Service is made.
pub(crate) async fn web_service(s: &Scenario) -> anyhow::Result<Web> {
    let target = format!("web.{}", s.namespace);
    let render::Target::Local { host_label, .. } = s.env.addon_target() else {
        create_web_service(s).await?;
        return Ok(Web {
            target,
            reply: None,
        });
    };
    let reply = format!("web answers {} {}", s.namespace, std::process::id());
    let image = format!(
        "{}/{}/{}:1",
        crate::env::REGISTRY,
        crate::env::REGISTRY_USER,
        crate::env::ECHO_BACKEND_IMAGE
    );
    let pod: Pod = serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "web", "labels": {"app": "web"}},
        "spec": {
            "nodeSelector": {host_label.as_str(): "true"},
            "tolerations": [{"key": host_label, "operator": "Exists", "effect": "NoSchedule"}],
            "containers": [{
                "name": "web",
                "image": image,
                "args": ["--listen=$(POD_IP):8080", format!("--reply={reply}")],
                "env": [{"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}],
                "ports": [{"name": "http", "containerPort": 8080}],
                "readinessProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 1}
            }]
        }
    }))?;
    s.api::<Pod>().create(&PostParams::default(), &pod).await?;
    create_web_service(s).await?;
    wait::until(
        "the Service's pod (echo-backend on the host node) to be Ready",
        Duration::from_secs(60),
        || async {
            let pod = s
                .api::<Pod>()
                .get("web")
                .await
                .map_err(|source| crate::Error::Kube {
                    context: "read pod web".into(),
                    source,
                })?;
            let ready = pod
                .status
                .and_then(|st| st.conditions)
                .into_iter()
                .flatten()
                .any(|c| c.type_ == "Ready" && c.status == "True");
            Ok(ready.then_some(()))
        },
        || s.diagnose(),
    )
    .await?;
    Ok(Web {
        target,
        reply: Some(reply),
    })
}

/// The Service `web` (port 80 to the pods' port named `http`: the proxy must resolve a named
/// target port as Kubernetes does).
async fn create_web_service(s: &Scenario) -> anyhow::Result<()> {
    let service: Service = serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "web"},
        "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": "http", "protocol": "TCP"}]}
    }))?;
    s.api::<Service>()
        .create(&PostParams::default(), &service)
        .await?;
    Ok(())
}

/// Probes `target` from the CCI pod of the scenario pod with label `app={app}` until it
/// answers `reachable` (exit 0 or not), or fails with the last answer.
async fn probe_until(
    s: &Scenario,
    app: &str,
    target: &str,
    reachable: bool,
) -> anyhow::Result<String> {
    let what = format!(
        "the CCI pod of app={app} to {} {target}",
        if reachable {
            "reach"
        } else {
            "no longer reach"
        }
    );
    let last = std::sync::Mutex::new(String::new());
    let result = wait::until(
        &what,
        Duration::from_secs(45),
        || async {
            let pods = cci_by_uid(s, app).await.map_err(|e| crate::Error::Step {
                step: format!("find the CCI pod of app={app}"),
                detail: e.to_string(),
            })?;
            let Some(pod) = pods.values().next() else {
                return Ok(None);
            };
            let name = pod.metadata.name.clone().unwrap_or_default();
            let answer = s
                .cci()
                .exec(s.cci_namespace(), &name, &["probe", target])
                .await?;
            let text = format!(
                "exit {}: {}{}",
                answer.exit_code, answer.stdout, answer.stderr
            );
            *last.lock().expect("probe answer") = text.clone();
            Ok(((answer.exit_code == 0) == reachable).then_some(text))
        },
        || async {
            format!(
                "last probe: {}",
                last.lock().map(|l| l.clone()).unwrap_or_default()
            )
        },
    )
    .await?;
    Ok(result)
}

/// UP-02: burst A on this release (≥ 1.5.18), roll back to 1.5.17 and burst B: A can no longer
/// reach a Service, B can; upgrading again restores A; after another rollback, recreating A
/// restores it too.
pub fn up_02(s: &Scenario) -> BodyFuture<'_> {
    Box::pin(serially(s, async move {
        let release = release()?;
        if !crate::gates::Gate::SidecarV2.applies_to(release) {
            return Ok(Outcome::NotApplicable(format!(
                "the rollback caveat is from >= 1.5.18 to < 1.5.18; this is {release}"
            )));
        }
        let web = web_service(s).await?;
        let target = web.target.as_str();
        burst(s, "a", 1).await?;
        reaches(s, "a", &web).await?;
        move_to(s, &at(OLD_SIDECAR, s)).await?;
        burst(s, "b", 1).await?;
        let refused = probe_until(s, "a", target, false).await?;
        eprintln!("UP-02: after rollback, A: {refused}");
        reaches(s, "b", &web).await?;
        move_to(s, &at(release, s)).await?;
        reaches(s, "a", &web).await?;
        // Recreating A under the old release restores it as well.
        move_to(s, &at(OLD_SIDECAR, s)).await?;
        probe_until(s, "a", target, false).await?;
        s.api::<Pod>()
            .delete_collection(
                &DeleteParams::default(),
                &ListParams::default().labels("app=a"),
            )
            .await?;
        wait::until(
            "A to be recreated under 1.5.17 (sidecar v1)",
            PATIENCE,
            || async {
                let pods = cci_by_uid(s, "a").await.map_err(|e| crate::Error::Step {
                    step: "find the CCI pod of A".into(),
                    detail: e.to_string(),
                })?;
                Ok(pods
                    .values()
                    .any(|p| sidecar(p) == "v1" && super::cci_running(p))
                    .then_some(()))
            },
            || s.diagnose(),
        )
        .await?;
        reaches(s, "a", &web).await?;
        Ok(Outcome::Passed)
    }))
}

/// Probes `web` from the CCI pod of app={app} until its pod's answer comes back (through the
/// proxy, the only way to a cluster Service); answers the probe's output.
async fn reaches(s: &Scenario, app: &str, web: &Web) -> anyhow::Result<String> {
    let reply = web
        .reply
        .as_deref()
        .context("the Service has no pod to answer (Need::ClusterNetwork)")?;
    let answer = probe_until(s, app, &web.target, true).await?;
    anyhow::ensure!(
        answer.contains("through proxy") && answer.contains(reply),
        "the probe of {} passed, but the Service's pod's answer {:?} did not come back through the proxy: {answer}",
        web.target,
        reply
    );
    Ok(answer)
}

/// UP-03: pods created one after another all through an upgrade: every one admitted, none
/// refused because the webhook was away, every one mutated (it reaches the virtual node).
pub fn up_03(s: &Scenario) -> BodyFuture<'_> {
    Box::pin(serially(s, async move {
        let release = release()?;
        // From the release just before, or (at x.y.0) the same release with other resources:
        // either way every component's pods are replaced.
        let mut from = at(release, s);
        if release.patch > 0 {
            from.release = Release::new(release.major, release.minor, release.patch - 1);
        } else {
            from.spec = Spec::Custom {
                replicas: 1,
                cpu: "300m".into(),
                memory: "512Mi".into(),
            };
        }
        move_to(s, &from).await?;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let api = s.api::<Pod>();
        let creator = {
            let stop = stop.clone();
            let api = api.clone();
            tokio::spawn(async move {
                let mut created = Vec::new();
                let mut refused = Vec::new();
                let mut i = 0;
                while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                    let mut pod: Pod = match fixtures::load("seed/nginx-pod.yaml") {
                        Ok(p) => p,
                        Err(e) => {
                            refused.push(e.to_string());
                            break;
                        }
                    };
                    pod.metadata.name = Some(format!("through-{i}"));
                    let labels = pod.metadata.labels.get_or_insert_default();
                    labels.insert(POLICY_LABEL.into(), "enforce".into());
                    labels.insert("app".into(), "through".into());
                    match api.create(&PostParams::default(), &pod).await {
                        Ok(p) => created.push(p),
                        Err(e) => refused.push(format!("through-{i}: {e}")),
                    }
                    i += 1;
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
                (created, refused)
            })
        };
        let upgraded = move_to(s, &at(release, s)).await;
        // A few more after the last old pod went.
        tokio::time::sleep(Duration::from_secs(2)).await;
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        let (created, refused) = creator.await?;
        upgraded?;
        anyhow::ensure!(
            refused.is_empty(),
            "pods refused during the upgrade: {refused:?}"
        );
        anyhow::ensure!(
            created.len() >= 10,
            "only {} pods were created during the upgrade",
            created.len()
        );
        let unmutated: Vec<String> = created
            .iter()
            .filter(|p| {
                !p.spec
                    .as_ref()
                    .and_then(|s| s.tolerations.as_ref())
                    .is_some_and(|ts| {
                        ts.iter()
                            .any(|t| t.key.as_deref() == Some("virtual-kubelet.io/provider"))
                    })
            })
            .map(|p| p.name_any())
            .collect();
        anyhow::ensure!(
            unmutated.is_empty(),
            "admitted without the webhook's mutation: {unmutated:?}"
        );
        eprintln!(
            "UP-03: {} pods created through the upgrade, all mutated",
            created.len()
        );
        converge(s, "app=through", created.len(), PATIENCE).await?;
        Ok(Outcome::Passed)
    }))
}

/// NET-01: with the network interconnect, a CCI pod reaches a cluster Service and back: its
/// probe goes from the mock (standing in for the pod's sidecar) through the endpoint the
/// add-on's proxy registered, to the Service's pod on the host node, and that pod's own answer
/// (a text made for this scenario) must come back. A proxy that registers and forwards nothing
/// fails here, and so does one that lets the registration claim a protocol its tunnel refuses.
pub fn net_01(s: &Scenario) -> BodyFuture<'_> {
    Box::pin(serially(s, async move {
        let mut on = s.env.addon_defaults().clone();
        on.interconnect = true;
        if !s.env.addon_defaults().interconnect {
            move_to(s, &on).await?;
        }
        let web = web_service(s).await?;
        burst(s, "net-01", 1).await?;
        let answer = reaches(s, "net-01", &web).await?;
        eprintln!("NET-01: {}", answer.trim());
        Ok(Outcome::Passed)
    }))
}

/// NET-02: without the network interconnect (no proxy), a CCI pod cannot reach a cluster
/// Service. The add-on is installed afresh without it, so no registration of an earlier proxy
/// is left on CCI.
pub fn net_02(s: &Scenario) -> BodyFuture<'_> {
    Box::pin(serially(s, async move {
        let mut off = s.env.addon_defaults().clone();
        off.interconnect = false;
        lifecycle::uninstall(
            &s.client,
            s.env.addon_target(),
            &UninstallOptions::default(),
            &Progress::quiet(),
        )
        .await?;
        lifecycle::install(&s.client, &off, s.env.addon_target(), &Progress::quiet()).await?;
        let web = web_service(s).await?;
        burst(s, "net-02", 1).await?;
        let answer = probe_until(s, "net-02", &web.target, false).await?;
        anyhow::ensure!(
            answer.contains("interconnect is off"),
            "unreachable, but for another reason: {answer}"
        );
        let proxies = Api::<Deployment>::namespaced(s.client.clone(), NAMESPACE)
            .get_opt(render::PROXY)
            .await?;
        anyhow::ensure!(
            proxies.is_none(),
            "a proxy Deployment exists without interconnect"
        );
        Ok(Outcome::Passed)
    }))
}
