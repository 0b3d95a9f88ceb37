//! VK: virtual-kubelet parity: VK-01…VK-04.

use std::time::Duration;

use anyhow::Context as _;
use k8s_openapi::api::core::v1::{ConfigMap, Event, Node, Pod, Secret};
use kube::api::{Api, DeleteParams, ListParams, LogParams, PostParams};

use super::{BodyFuture, cluster_uid_of, converge};
use crate::scenario::Outcome;
use crate::scenario::Scenario;
use crate::{fixtures, wait};

const PATIENCE: Duration = Duration::from_secs(60);

/// Creates the fixture pod under `name` and waits until it runs on CCI; returns its UID.
pub(super) async fn burst_pod(s: &Scenario, name: &str) -> anyhow::Result<String> {
    burst_pod_with(s, name, |_| {}).await
}

/// [`burst_pod`] with the fixture changed by `edit` first.
pub(super) async fn burst_pod_with(
    s: &Scenario,
    name: &str,
    edit: impl FnOnce(&mut Pod),
) -> anyhow::Result<String> {
    let mut pod: Pod = fixtures::load("workloads/vk-pod.yaml")?;
    edit(&mut pod);
    pod.metadata.name = Some(name.to_owned());
    pod.metadata
        .labels
        .get_or_insert_default()
        .insert("vk".into(), name.to_owned());
    s.api::<Pod>().create(&PostParams::default(), &pod).await?;
    let pods = converge(s, &format!("vk={name}"), 1, PATIENCE).await?;
    pods[0].metadata.uid.clone().context("pod has a uid")
}

/// The CCI pod standing for the cluster pod `uid`: its own UID and creation time.
async fn cci_identity(s: &Scenario, uid: &str) -> anyhow::Result<(String, String)> {
    let cci = s.cci_pods().await?;
    let mut ours = cci.iter().filter(|p| cluster_uid_of(p) == Some(uid));
    let pod = ours.next().context("no CCI pod for the cluster pod")?;
    anyhow::ensure!(ours.next().is_none(), "two CCI pods for one cluster pod");
    let own = pod.metadata.uid.clone().context("CCI pod has a uid")?;
    let created = pod
        .metadata
        .creation_timestamp
        .as_ref()
        .map(|t| t.0.to_string())
        .context("CCI pod has a creation timestamp")?;
    Ok((own, created))
}

/// Waits until neither the cluster pod nor a CCI pod for `uid` exists. With `cluster_last`,
/// the cluster pod must outlive its CCI pod, as a kubelet removes a pod from the API only once
/// its containers are gone: an error if it left while the CCI pod was still there.
pub(super) async fn gone_on_both_sides(
    s: &Scenario,
    name: &str,
    uid: &str,
    cluster_last: bool,
) -> anyhow::Result<()> {
    let cluster_left_first = wait::until(
        &format!("pod {name} gone from the cluster and from CCI"),
        PATIENCE,
        || async {
            // NB: the cluster first: a CCI pod seen after the cluster pod was seen gone was
            // still there when the cluster pod went.
            let cluster =
                s.api::<Pod>()
                    .get_opt(name)
                    .await
                    .map_err(|source| crate::Error::Kube {
                        context: format!("get pod {name}"),
                        source,
                    })?;
            let on_cci = s
                .cci_pods()
                .await?
                .iter()
                .any(|p| cluster_uid_of(p) == Some(uid));
            Ok(match (cluster.is_none(), on_cci) {
                (true, false) => Some(false),
                (true, true) if cluster_last => Some(true),
                _ => None,
            })
        },
        || s.diagnose(),
    )
    .await?;
    anyhow::ensure!(
        !cluster_left_first,
        "pod {name} left the cluster while its CCI pod was still there (Terminating): the \
         cluster pod must stay Terminating until the CCI pod is gone"
    );
    Ok(())
}

/// The grace period of VK-01's graceful delete (the fixture's `terminationGracePeriodSeconds`).
const GRACE: u32 = 5;

/// VK-01: graceful delete and force delete both remove the CCI pod; the graceful one leaves it
/// Terminating for its grace period first, and the cluster pod Terminating until it is gone.
pub fn vk_01(s: &Scenario) -> BodyFuture<'_> {
    Box::pin(async move {
        // `sleep` as PID 1 has no SIGTERM handler, so the kernel drops the signal and the
        // container runs until the grace period ends (a server would stop at once and the
        // pod go early, hiding a cut-short grace).
        let graceful = burst_pod_with(s, "graceful", |pod| {
            if let Some(spec) = pod.spec.as_mut() {
                spec.containers[0].command = Some(vec!["sleep".into(), "3600".into()]);
            }
        })
        .await?;
        let asked = tokio::time::Instant::now();
        s.api::<Pod>()
            .delete("graceful", &DeleteParams::default().grace_period(GRACE))
            .await?;
        // The CCI pod is Terminating with the grace period, not removed at once: an engine that
        // force-deletes on CCI never shows it.
        wait::until(
            &format!("the CCI pod of graceful Terminating with a {GRACE} s grace period"),
            Duration::from_secs(20),
            || async {
                let cci = s.cci_pods().await?;
                let pod = cci.iter().find(|p| cluster_uid_of(p) == Some(&*graceful));
                Ok(pod
                    .filter(|p| {
                        p.metadata.deletion_timestamp.is_some()
                            && p.metadata.deletion_grace_period_seconds == Some(i64::from(GRACE))
                    })
                    .map(|_| ()))
            },
            || s.diagnose(),
        )
        .await?;
        // The cluster pod shows it too, and stays until the CCI pod is gone.
        let cluster = s.api::<Pod>().get_opt("graceful").await?;
        anyhow::ensure!(
            cluster.is_some_and(|p| p.metadata.deletion_timestamp.is_some()),
            "pod graceful is not Terminating in the cluster while its CCI pod is"
        );
        gone_on_both_sides(s, "graceful", &graceful, true).await?;
        let took = asked.elapsed();
        // NB: one second of slack for the mock's clock against ours; far below the grace.
        anyhow::ensure!(
            took >= Duration::from_secs(u64::from(GRACE - 1)),
            "the CCI pod of graceful was gone {took:?} after a delete with a {GRACE} s grace period"
        );

        let forced = burst_pod(s, "forced").await?;
        // `kubectl delete --force --grace-period=0`: the API object goes at once, the kubelet
        // (here the engine) must still clean up behind it.
        s.api::<Pod>()
            .delete("forced", &DeleteParams::default().grace_period(0))
            .await?;
        gone_on_both_sides(s, "forced", &forced, false).await?;
        Ok(Outcome::Passed)
    })
}

/// Waits for a Warning event on pod `mandatory` naming `object` (`configmap later-config`), then
/// checks the pod has not reached CCI (the `optional` pod is the one CCI pod).
async fn waiting_for(s: &Scenario, object: &str) -> anyhow::Result<()> {
    let name = object.rsplit(' ').next().unwrap_or(object);
    wait::until(
        &format!("a Warning event on pod mandatory naming {object}"),
        PATIENCE,
        || async {
            let events = s
                .api::<Event>()
                .list(&ListParams::default().fields("involvedObject.name=mandatory"))
                .await
                .map_err(|source| crate::Error::Kube {
                    context: "list events".into(),
                    source,
                })?;
            Ok(events
                .items
                .iter()
                .any(|e| {
                    e.type_.as_deref() == Some("Warning")
                        && e.message.as_deref().unwrap_or("").contains(name)
                })
                .then_some(()))
        },
        || s.diagnose(),
    )
    .await?;
    let on_cci = s.cci_pods().await?;
    anyhow::ensure!(
        on_cci.len() == 1,
        "the pod with a missing mandatory {object} reached CCI ({} CCI pods)",
        on_cci.len()
    );
    Ok(())
}

/// VK-02: an optional missing ConfigMap/Secret lets the pod run; a mandatory missing one (a
/// ConfigMap, then a Secret) makes it wait with an event naming the object, and it runs once
/// the objects exist.
pub fn vk_02(s: &Scenario) -> BodyFuture<'_> {
    Box::pin(async move {
        let optional = super::pod_with(
            "optional",
            serde_json::json!([
                {"name": "cfg", "configMap": {"name": "absent-config", "optional": true}},
                {"name": "sec", "secret": {"secretName": "absent-secret", "optional": true}}
            ]),
            &[],
        )?;
        s.api::<Pod>()
            .create(&PostParams::default(), &optional)
            .await?;
        converge(s, "scenario-pod=optional", 1, PATIENCE).await?;

        let mandatory = super::pod_with(
            "mandatory",
            serde_json::json!([
                {"name": "cfg", "configMap": {"name": "later-config"}},
                {"name": "sec", "secret": {"secretName": "later-secret"}}
            ]),
            &[],
        )?;
        s.api::<Pod>()
            .create(&PostParams::default(), &mandatory)
            .await?;
        waiting_for(s, "configmap later-config").await?;

        let cm: ConfigMap = serde_json::from_value(serde_json::json!({
            "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "later-config"}, "data": {"k": "v"}
        }))?;
        s.api::<ConfigMap>()
            .create(&PostParams::default(), &cm)
            .await?;
        // A mandatory Secret is waited for as a ConfigMap is.
        waiting_for(s, "secret later-secret").await?;
        let secret: Secret = serde_json::from_value(serde_json::json!({
            "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "later-secret"},
            "stringData": {"k": "v"}
        }))?;
        s.api::<Secret>()
            .create(&PostParams::default(), &secret)
            .await?;
        // Both pods now: converge counts every CCI pod of the scenario.
        converge(
            s,
            &format!("{}=enforce", super::POLICY_LABEL),
            2,
            Duration::from_secs(90),
        )
        .await?;
        Ok(Outcome::Passed)
    })
}

/// VK-03: the virtual node deleted by hand is recreated with a new UID within a minute; its
/// pods keep running, on the same CCI pods (same CCI UID and creation time).
pub fn vk_03(s: &Scenario) -> BodyFuture<'_> {
    Box::pin(async move {
        let uid = burst_pod(s, "survivor").await?;
        let before = cci_identity(s, &uid).await?;
        let nodes: Api<Node> = Api::all(s.client.clone());
        let node = s.virtual_node();
        let old = nodes.get(node).await?.metadata.uid.context("node uid")?;
        nodes.delete(node, &DeleteParams::default()).await?;
        wait::until(
            &format!("{node} recreated with a new UID and Ready"),
            PATIENCE,
            || async {
                let node = nodes
                    .get_opt(node)
                    .await
                    .map_err(|source| crate::Error::Kube {
                        context: "get node".into(),
                        source,
                    })?;
                Ok(node
                    .filter(|n| {
                        n.metadata.uid.as_deref() != Some(old.as_str())
                            && crate::cluster::node_ready(n)
                    })
                    .map(|_| ()))
            },
            || s.diagnose(),
        )
        .await?;
        let pods = converge(s, "vk=survivor", 1, PATIENCE).await?;
        anyhow::ensure!(
            pods[0].metadata.uid.as_deref() == Some(uid.as_str()),
            "the pod was replaced (uid {:?}, was {uid})",
            pods[0].metadata.uid
        );
        let after = cci_identity(s, &uid).await?;
        anyhow::ensure!(
            after == before,
            "the CCI pod was recreated: (uid, created) {after:?}, was {before:?}"
        );
        Ok(Outcome::Passed)
    })
}

/// How long VK-04's CCI outage lasts.
const OUTAGE: Duration = Duration::from_secs(30);

/// The virtual node as the API server holds it now.
async fn virtual_node(s: &Scenario) -> crate::Result<Node> {
    Api::<Node>::all(s.client.clone())
        .get(s.virtual_node())
        .await
        .map_err(|source| crate::Error::Kube {
            context: format!("get node {}", s.virtual_node()),
            source,
        })
}

/// Whether the node's `Ready` condition is `False` for `reason`.
fn not_ready_for(node: &Node, reason: &str) -> bool {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| {
            cs.iter().any(|c| {
                c.type_ == "Ready" && c.status == "False" && c.reason.as_deref() == Some(reason)
            })
        })
}

/// VK-04 (proposed, not yet a SCENARIOS.md ID): a CCI outage of 30 s (every request for the
/// cluster's CCI namespace answered 503) shows as the virtual node NotReady with the reason
/// `ProviderUnreachable`; meanwhile the burst pods stay Running on the node; once CCI answers
/// the node is Ready again and each pod still has its one CCI pod, the same one (CCI UID and
/// creation time): nothing lost, nothing duplicated.
pub fn vk_04(s: &Scenario) -> BodyFuture<'_> {
    Box::pin(async move {
        const STEADY: &str = "outage=steady";
        for name in ["steady-a", "steady-b"] {
            let mut pod: Pod = fixtures::load("workloads/vk-pod.yaml")?;
            pod.metadata.name = Some(name.to_owned());
            let labels = pod.metadata.labels.get_or_insert_default();
            labels.insert("outage".into(), "steady".into());
            s.api::<Pod>().create(&PostParams::default(), &pod).await?;
        }
        let mut before = Vec::new();
        for pod in converge(s, STEADY, 2, PATIENCE).await? {
            let name = pod.metadata.name.clone().context("pod has a name")?;
            let uid = pod.metadata.uid.clone().context("pod has a uid")?;
            let identity = cci_identity(s, &uid).await?;
            before.push((name, uid, identity));
        }
        let outage = s
            .mock_admin()?
            .set_fault(
                mock_cci::Scope::Namespace(s.cci_namespace().to_owned()),
                mock_cci::Fault::ErrorRate {
                    operations: Vec::new(),
                    percent: 100,
                    status: 503,
                },
            )
            .await?;
        let started = tokio::time::Instant::now();
        let during = async {
            wait::until(
                &format!("{} NotReady ({}) while CCI is down", s.virtual_node(), vk::PROVIDER_UNREACHABLE),
                Duration::from_secs(60),
                || async {
                    let node = virtual_node(s).await?;
                    Ok(not_ready_for(&node, vk::PROVIDER_UNREACHABLE).then_some(()))
                },
                || s.diagnose(),
            )
            .await?;
            let noticed = started.elapsed();
            // For the rest of the outage (CCI cannot be read now, so the cluster side is
            // checked): the pods stay, Running, on the node.
            let moved = wait::until(
                &format!("the rest of the {}s outage with the pods unchanged", OUTAGE.as_secs()),
                OUTAGE + Duration::from_secs(30),
                || async {
                    for (name, uid, _) in &before {
                        let pod = s.api::<Pod>().get_opt(name).await.map_err(|source| {
                            crate::Error::Kube {
                                context: format!("get pod {name}"),
                                source,
                            }
                        })?;
                        let phase = pod.as_ref().and_then(|p| p.status.as_ref()?.phase.clone());
                        let same = pod.as_ref().and_then(|p| p.metadata.uid.as_deref()) == Some(uid);
                        let deleting = pod.as_ref().is_some_and(|p| p.metadata.deletion_timestamp.is_some());
                        if !same || deleting || phase.as_deref() != Some("Running") {
                            return Ok(Some(Some(format!(
                                "pod {name} during the outage: present with its uid {same},                                  deleting {deleting}, phase {phase:?}"
                            ))));
                        }
                    }
                    Ok((started.elapsed() >= OUTAGE).then_some(None))
                },
                || s.diagnose(),
            )
            .await?;
            if let Some(change) = moved {
                anyhow::bail!("{change}");
            }
            anyhow::Ok(noticed)
        }
        .await;
        let cleared = outage.clear().await;
        let noticed = during?;
        cleared?;
        eprintln!("VK-04: node NotReady {noticed:.1?} into the outage");
        wait::until(
            &format!("{} Ready again once CCI answers", s.virtual_node()),
            Duration::from_secs(60),
            || async {
                let node = virtual_node(s).await?;
                Ok(crate::cluster::node_ready(&node).then_some(()))
            },
            || s.diagnose(),
        )
        .await?;
        // The node lifecycle controller tainted the node not-ready; the cluster is back only
        // when it lifts that (within its monitor period), or later scenarios would wait on it.
        wait::until(
            &format!(
                "the node lifecycle controller to lift {}'s not-ready taints",
                s.virtual_node()
            ),
            Duration::from_secs(90),
            || async {
                let tainted = virtual_node(s)
                    .await?
                    .spec
                    .and_then(|s| s.taints)
                    .into_iter()
                    .flatten()
                    .any(|t| t.key.starts_with("node.kubernetes.io/"));
                Ok((!tainted).then_some(()))
            },
            || s.diagnose(),
        )
        .await?;
        let pods = converge(s, STEADY, 2, PATIENCE).await?;
        for (name, uid, identity) in &before {
            anyhow::ensure!(
                pods.iter()
                    .any(|p| p.metadata.uid.as_deref() == Some(uid.as_str())),
                "pod {name} was replaced after the outage"
            );
            // One CCI pod for it (cci_identity refuses two), the one it had.
            let after = cci_identity(s, uid).await?;
            anyhow::ensure!(
                &after == identity,
                "pod {name}'s CCI pod changed across the outage: {after:?}, was {identity:?}"
            );
        }
        Ok(Outcome::Passed)
    })
}

/// `kubectl logs` of a burst pod (not a SCENARIOS.md ID; `suites/tests/vk.rs` runs it as
/// VK-LOGS): the API server calls the engine's kubelet API at the virtual node's InternalIP and
/// kubelet port, and the answer, with and without `--tail`, is what the mock holds for the
/// container of the pod's CCI pod.
pub fn vk_logs(s: &Scenario) -> BodyFuture<'_> {
    Box::pin(async move {
        const NAME: &str = "logs";
        let pod = super::pod_with(NAME, serde_json::json!([]), &[])?;
        let container = pod
            .spec
            .as_ref()
            .and_then(|spec| spec.containers.first())
            .map(|c| c.name.clone())
            .context("the seed pod has a container")?;
        s.api::<Pod>().create(&PostParams::default(), &pod).await?;
        let pods = converge(s, &format!("scenario-pod={NAME}"), 1, PATIENCE).await?;
        let uid = pods[0].metadata.uid.clone().context("pod has a uid")?;
        let cci_pod = s
            .cci_pods()
            .await?
            .into_iter()
            .find(|p| cluster_uid_of(p) == Some(uid.as_str()))
            .and_then(|p| p.metadata.name)
            .context("the CCI pod of the burst pod")?;
        for tail_lines in [None, Some(1)] {
            // `kubectl logs logs -c container-0 [--tail=1]`
            let params = LogParams {
                container: Some(container.clone()),
                tail_lines,
                ..LogParams::default()
            };
            let through_api_server =
                s.api::<Pod>().logs(NAME, &params).await.with_context(|| {
                    format!("kubectl logs {NAME} -c {container} (tail {tail_lines:?})")
                })?;
            let on_cci = s
                .cci()
                .logs(s.cci_namespace(), &cci_pod, &container, tail_lines)
                .await?;
            anyhow::ensure!(
                !on_cci.is_empty(),
                "the mock holds no log for {cci_pod}/{container}"
            );
            anyhow::ensure!(
                through_api_server == on_cci,
                "kubectl logs (tail {tail_lines:?}) answered {through_api_server:?}; CCI holds {on_cci:?}"
            );
        }
        Ok(Outcome::Passed)
    })
}
