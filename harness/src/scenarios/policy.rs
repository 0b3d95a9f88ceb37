//! WL-07: the scheduling policy matrix (BEHAVIOR.md §3) against nodes with room and full.
//!
//! Changes cluster-wide state (the kwok nodes' free CPU), so it runs in its own test binary
//! (`suites/tests/policy.rs`).

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Context as _;
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::api::{Api, DeleteParams, ListParams, PostParams};

use super::{BodyFuture, POLICY_LABEL, cluster_uid_of, running_on};
use crate::cluster::VIRTUAL_NODE;
use crate::scenario::Outcome;
use crate::scenario::Scenario;
use crate::{fixtures, wait};

const PATIENCE: Duration = Duration::from_secs(90);
/// The virtual node's taint (BEHAVIOR.md §1); bursting policies tolerate it.
const VIRTUAL_NODE_TAINT: &str = "virtual-kubelet.io/provider";
/// Label naming a pod's case in the matrix.
const CASE_LABEL: &str = "burstcert.io/case";
/// Label on the filler pods that take the kwok nodes' CPU.
const FILLER_LABEL: &str = "burstcert.io/filler";
/// The policies of the matrix; `None` is "no label".
const POLICIES: [Option<&str>; 5] = [
    Some("enforce"),
    Some("auto"),
    Some("localPrefer"),
    Some("off"),
    None,
];

fn case_name(policy: Option<&str>, phase: &str) -> String {
    format!(
        "{phase}-{}",
        policy.map_or("none".to_owned(), str::to_ascii_lowercase)
    )
}

/// The seed's nginx pod, bare (no owner, so the webhook reads the pod's own label).
fn nginx(name: &str, policy: Option<&str>) -> anyhow::Result<Pod> {
    let mut pod: Pod = fixtures::load("seed/nginx-pod.yaml")?;
    pod.metadata.name = Some(name.to_owned());
    let labels = pod.metadata.labels.get_or_insert_default();
    labels.insert(CASE_LABEL.into(), name.to_owned());
    if let Some(p) = policy {
        labels.insert(POLICY_LABEL.into(), p.to_owned());
    }
    Ok(pod)
}

fn node_of(pod: &Pod) -> Option<&str> {
    pod.spec.as_ref().and_then(|s| s.node_name.as_deref())
}

fn phase(pod: &Pod) -> Option<&str> {
    pod.status.as_ref().and_then(|s| s.phase.as_deref())
}

/// Running on a cluster (kwok) node, not the virtual node.
fn running_locally(pod: &Pod) -> bool {
    phase(pod) == Some("Running") && node_of(pod).is_some_and(|n| n != VIRTUAL_NODE)
}

/// The scheduler tried and found no node: `PodScheduled=False`, reason `Unschedulable`.
fn unschedulable(pod: &Pod) -> bool {
    node_of(pod).is_none()
        && phase(pod) == Some("Pending")
        && pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|cs| {
                cs.iter().any(|c| {
                    c.type_ == "PodScheduled"
                        && c.status == "False"
                        && c.reason.as_deref() == Some("Unschedulable")
                })
            })
}

fn tolerates_virtual_node(pod: &Pod) -> bool {
    pod.spec
        .as_ref()
        .and_then(|s| s.tolerations.as_ref())
        .is_some_and(|ts| {
            ts.iter()
                .any(|t| t.key.as_deref() == Some(VIRTUAL_NODE_TAINT))
        })
}

async fn wait_pod(
    s: &Scenario,
    name: &str,
    what: &str,
    ok: fn(&Pod) -> bool,
) -> anyhow::Result<Pod> {
    let api = s.api::<Pod>();
    Ok(wait::until(
        &format!("pod {name}: {what}"),
        PATIENCE,
        || async {
            let pod = api
                .get_opt(name)
                .await
                .map_err(|source| crate::Error::Kube {
                    context: format!("get pod {name}"),
                    source,
                })?;
            Ok(pod.filter(&ok))
        },
        || s.diagnose(),
    )
    .await?)
}

/// Waits for `name` to run on the virtual node with exactly one Running CCI pod for it.
async fn wait_burst(s: &Scenario, name: &str) -> anyhow::Result<()> {
    let pod = wait_pod(s, name, "Running on the virtual node", |p| {
        running_on(VIRTUAL_NODE, p)
    })
    .await?;
    let uid = pod.metadata.uid.clone().context("uid")?;
    wait::until(
        &format!("one Running CCI pod for {name}"),
        PATIENCE,
        || async {
            let cci = s.cci_pods().await?;
            let mine: Vec<_> = cci
                .iter()
                .filter(|p| cluster_uid_of(p) == Some(uid.as_str()))
                .collect();
            Ok((mine.len() == 1 && super::cci_running(mine[0])).then_some(()))
        },
        || s.diagnose(),
    )
    .await?;
    Ok(())
}

/// No CCI pod stands for `name`.
async fn not_on_cci(s: &Scenario, pod: &Pod) -> anyhow::Result<()> {
    let uid = pod.metadata.uid.as_deref().context("uid")?;
    let cci = s.cci_pods().await?;
    anyhow::ensure!(
        !cci.iter().any(|p| cluster_uid_of(p) == Some(uid)),
        "pod {:?} has a CCI pod but must stay off CCI",
        pod.metadata.name
    );
    Ok(())
}

/// Fills every kwok node: one filler pod per node, pinned to it with `nodeName`, requesting the
/// node's whole allocatable CPU (the scheduler and kwok account for it like any pod; nothing
/// about the nodes themselves is changed, so "full" is what the scheduler really sees). The
/// fillers carry no policy label, live in the scenario's own namespace (so they are removed
/// with it even when the scenario fails) and are deleted explicitly at the end of the
/// full-cluster phase, restoring the room.
async fn fill_kwok_nodes(s: &Scenario) -> anyhow::Result<Vec<String>> {
    let nodes = Api::<Node>::all(s.client.clone())
        .list(&ListParams::default())
        .await?
        .items;
    let mut fillers = Vec::new();
    for node in nodes {
        let name = node.metadata.name.clone().unwrap_or_default();
        if name == VIRTUAL_NODE || !name.starts_with("kwok-node-") {
            continue;
        }
        let cpu = node
            .status
            .as_ref()
            .and_then(|s| s.allocatable.as_ref())
            .and_then(|a| a.get("cpu"))
            .cloned()
            .with_context(|| format!("allocatable cpu of {name}"))?;
        let filler_name = format!("filler-{name}");
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {
                "name": filler_name,
                "labels": { FILLER_LABEL: "true" },
            },
            "spec": {
                "nodeName": name,
                "containers": [{
                    "name": "filler",
                    "image": "busybox",
                    "resources": {
                        "requests": { "cpu": cpu, "memory": Quantity("64Mi".into()) },
                        "limits": { "cpu": cpu, "memory": Quantity("64Mi".into()) },
                    },
                }],
            },
        }))?;
        s.api::<Pod>().create(&PostParams::default(), &pod).await?;
        fillers.push(filler_name);
    }
    anyhow::ensure!(!fillers.is_empty(), "no kwok node to fill");
    for f in &fillers {
        wait_pod(s, f, "filler Running", |p| phase(p) == Some("Running")).await?;
    }
    Ok(fillers)
}

/// WL-07: `enforce`, `auto`, `localPrefer`, `off` and no label, on a cluster with room and on a
/// full one.
pub fn wl_07(s: &Scenario) -> BodyFuture<'_> {
    Box::pin(async move {
        let pods = s.api::<Pod>();
        // With room: the kwok nodes (4 CPU each) are empty.
        for policy in POLICIES {
            pods.create(
                &PostParams::default(),
                &nginx(&case_name(policy, "room"), policy)?,
            )
            .await?;
        }
        wait_burst(s, "room-enforce").await?;
        for policy in [Some("localPrefer"), Some("off"), None] {
            let name = case_name(policy, "room");
            let pod = wait_pod(s, &name, "Running on a cluster node", running_locally).await?;
            not_on_cci(s, &pod).await?;
        }
        for policy in [Some("off"), None] {
            let pod = pods.get(&case_name(policy, "room")).await?;
            anyhow::ensure!(
                !tolerates_virtual_node(&pod),
                "{policy:?}: the webhook must add nothing, yet the pod tolerates the virtual node"
            );
        }
        // `auto`: the webhook adds the toleration only and the scheduler's scoring decides;
        // all that is deterministic is that it runs somewhere, tolerating the virtual node.
        let auto = wait_pod(s, "room-auto", "Running on some node", |p| {
            phase(p) == Some("Running")
        })
        .await?;
        anyhow::ensure!(
            tolerates_virtual_node(&auto),
            "auto: the pod lacks the virtual node's toleration"
        );
        if running_on(VIRTUAL_NODE, &auto) {
            wait_burst(s, "room-auto").await?;
        } else {
            not_on_cci(s, &auto).await?;
        }
        for policy in POLICIES {
            pods.delete(
                &case_name(policy, "room"),
                &DeleteParams::default().grace_period(0),
            )
            .await?;
        }

        wait::until(
            "the room-phase pods gone",
            PATIENCE,
            || async {
                let left = pods
                    .list(&ListParams::default().labels(CASE_LABEL))
                    .await
                    .map_err(|source| crate::Error::Kube {
                        context: "list case pods".into(),
                        source,
                    })?
                    .items;
                Ok(left.is_empty().then_some(()))
            },
            || s.diagnose(),
        )
        .await?;

        // Full: no kwok node has CPU left for the nginx pod's 500m.
        let fillers = fill_kwok_nodes(s).await?;
        for policy in POLICIES {
            pods.create(
                &PostParams::default(),
                &nginx(&case_name(policy, "full"), policy)?,
            )
            .await?;
        }
        wait_burst(s, "full-enforce").await?;
        wait_burst(s, "full-localprefer").await?;
        // `auto` tolerates the virtual node and no cluster node has room: only CCI is left.
        wait_burst(s, "full-auto").await?;
        let mut pending = BTreeMap::new();
        for policy in [Some("off"), None] {
            let name = case_name(policy, "full");
            let pod = wait_pod(s, &name, "Pending, Unschedulable", unschedulable).await?;
            not_on_cci(s, &pod).await?;
            pending.insert(name, pod.metadata.uid.clone());
        }

        // Restore the room: the pods that waited now run locally, still off CCI.
        for f in &fillers {
            pods.delete(f, &DeleteParams::default().grace_period(0))
                .await?;
        }
        for (name, uid) in &pending {
            let pod = wait_pod(
                s,
                name,
                "Running on a cluster node once there is room",
                running_locally,
            )
            .await?;
            anyhow::ensure!(&pod.metadata.uid == uid, "{name} was recreated");
            not_on_cci(s, &pod).await?;
        }
        wait::until(
            "the filler pods gone",
            PATIENCE,
            || async {
                let left = pods
                    .list(&ListParams::default().labels(&format!("{FILLER_LABEL}=true")))
                    .await
                    .map_err(|source| crate::Error::Kube {
                        context: "list filler pods".into(),
                        source,
                    })?
                    .items;
                Ok(left.is_empty().then_some(()))
            },
            || s.diagnose(),
        )
        .await?;
        Ok(Outcome::Passed)
    })
}
