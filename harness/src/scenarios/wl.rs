//! WL: workload kinds (BEHAVIOR.md §1, §3, §4).

use std::time::{Duration, Instant};

use anyhow::Context as _;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt as _;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};

use super::{BodyFuture, cluster_uid_of, converge};
use crate::scenario::Outcome;
use crate::scenario::Scenario;
use crate::{fixtures, snapshot, wait};

/// How long a scale step may take: the scheduler, the engine and the mock each add a little.
const SCALE_PATIENCE: Duration = Duration::from_secs(90);

/// How long nothing may move after a change that must move nothing (the engine and the
/// controllers react to a watch event well within it).
const STEADY: Duration = Duration::from_secs(10);

/// Scales workload `name` (a `K` with `spec.replicas`) of the scenario's namespace.
pub(crate) async fn scale<K>(s: &Scenario, name: &str, replicas: i32) -> anyhow::Result<()>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
    <K as kube::Resource>::DynamicType: Default,
{
    s.api::<K>()
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({ "spec": { "replicas": replicas } })),
        )
        .await
        .with_context(|| format!("scale {name} to {replicas}"))?;
    Ok(())
}

/// WL-02: Deployment, 2 replicas, `enforce`: both Running on the virtual node; scale to 5, then
/// to 0: CCI holds 5, then none (no leaked instances).
pub fn wl_02(s: &Scenario) -> BodyFuture<'_> {
    Box::pin(async move {
        let deployment: Deployment = fixtures::load("workloads/wl-02-deployment.yaml")?;
        let name = deployment
            .metadata
            .name
            .clone()
            .context("fixture has a name")?;
        s.api::<Deployment>()
            .create(&PostParams::default(), &deployment)
            .await?;
        let selector = "app=nginx";

        converge(s, selector, 2, SCALE_PATIENCE).await?;
        // What a reviewer should see: one CCI pod as the engine created it.
        let mut cci = s.cci_pods().await?;
        cci.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
        let pod = serde_json::to_value(&cci[0])?;
        // Redacted in the snapshot (they follow the release), so checked here.
        let release = crate::env::release();
        let sidecar = if burst_rules::release::Release::parse(release)
            .is_ok_and(|r| crate::gates::Gate::SidecarV2.applies_to(r))
        {
            "v2"
        } else {
            "v1"
        };
        let annotations = &pod["metadata"]["annotations"];
        anyhow::ensure!(
            annotations["bursting.cci.io/release"] == release
                && annotations["bursting.cci.io/sidecar-protocol"] == sidecar,
            "the CCI pod should record release {release} and sidecar {sidecar}: {annotations}"
        );
        snapshot::settings().bind(|| insta::assert_json_snapshot!("wl_02_cci_pod", pod));

        scale::<Deployment>(s, &name, 5).await?;
        converge(s, selector, 5, SCALE_PATIENCE).await?;
        scale::<Deployment>(s, &name, 0).await?;
        converge(s, selector, 0, SCALE_PATIENCE).await?;
        Ok(Outcome::Passed)
    })
}

/// WL-03: StatefulSet, 3 replicas: ordinal names kept on CCI; deleting `-1` recreates it under
/// the same name.
pub fn wl_03(s: &Scenario) -> BodyFuture<'_> {
    Box::pin(async move {
        let sts: StatefulSet = fixtures::load("workloads/wl-03-statefulset.yaml")?;
        s.api::<StatefulSet>()
            .create(&PostParams::default(), &sts)
            .await?;
        let selector = "app=web";
        let pods = converge(s, selector, 3, SCALE_PATIENCE).await?;
        let expected: Vec<String> = (0..3).map(|i| format!("{}.web-{i}", s.namespace)).collect();
        let mut names: Vec<String> = s
            .cci_pods()
            .await?
            .into_iter()
            .filter_map(|p| p.metadata.name)
            .collect();
        names.sort();
        anyhow::ensure!(
            names == expected,
            "CCI pod names {names:?}, expected the ordinals {expected:?}"
        );

        let old_uid = pods
            .iter()
            .find(|p| p.metadata.name.as_deref() == Some("web-1"))
            .and_then(|p| p.metadata.uid.clone())
            .context("web-1 has a uid")?;
        s.api::<Pod>()
            .delete("web-1", &DeleteParams::default())
            .await?;
        let name = format!("{}.web-1", s.namespace);
        wait::until(
            "web-1 recreated on CCI under the same name for the new pod",
            SCALE_PATIENCE,
            || async {
                let cci = s.cci_pods().await?;
                let Some(pod) = cci
                    .iter()
                    .find(|p| p.metadata.name.as_deref() == Some(&name))
                else {
                    return Ok(None);
                };
                let uid = cluster_uid_of(pod).unwrap_or_default();
                Ok((uid != old_uid && super::cci_running(pod)).then_some(()))
            },
            || s.diagnose(),
        )
        .await?;
        converge(s, selector, 3, SCALE_PATIENCE).await?;
        scale::<StatefulSet>(s, "web", 0).await?;
        converge(s, selector, 0, SCALE_PATIENCE).await?;
        Ok(Outcome::Passed)
    })
}

/// WL-06: a DaemonSet labelled `enforce`: its pods never reach the virtual node (they run on
/// every ordinary node instead): none of them carries the virtual node's toleration, the
/// DaemonSet does not count the virtual node among its nodes, and CCI holds none of them. An
/// add-on may keep them local itself or, as BEHAVIOR.md §13 asks, never be called for them at
/// all (SAFE-02 checks that a down webhook does not stop them).
pub fn wl_06(s: &Scenario) -> BodyFuture<'_> {
    Box::pin(async move {
        let ds: DaemonSet = fixtures::load("workloads/wl-06-daemonset.yaml")?;
        s.api::<DaemonSet>()
            .create(&PostParams::default(), &ds)
            .await?;
        let kwok_nodes = crate::env::DEFAULT_KWOK_NODES;
        let pods = wait::until(
            &format!("the DaemonSet's {kwok_nodes} pods Running on the kwok nodes"),
            SCALE_PATIENCE,
            || async {
                let pods = s
                    .api::<Pod>()
                    .list(&ListParams::default().labels("app=agent"))
                    .await
                    .map_err(|source| crate::Error::Kube {
                        context: "list pods".into(),
                        source,
                    })?
                    .items;
                let running = pods
                    .iter()
                    .filter(|p| {
                        p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
                    })
                    .count();
                Ok((running == kwok_nodes).then_some(pods))
            },
            || s.diagnose(),
        )
        .await?;
        let on_virtual: Vec<_> = pods
            .iter()
            .filter(|p| {
                p.spec.as_ref().and_then(|sp| sp.node_name.as_deref()) == Some(s.virtual_node())
            })
            .filter_map(|p| p.metadata.name.clone())
            .collect();
        anyhow::ensure!(
            on_virtual.is_empty(),
            "DaemonSet pods on {}: {on_virtual:?}",
            s.virtual_node()
        );
        let tolerating: Vec<String> = pods
            .iter()
            .filter(|p| {
                p.spec
                    .as_ref()
                    .and_then(|s| s.tolerations.as_ref())
                    .into_iter()
                    .flatten()
                    .any(|t| t.key.as_deref() == Some(crate::cluster::VIRTUAL_NODE_TAINT))
            })
            .filter_map(|p| p.metadata.name.clone())
            .collect();
        anyhow::ensure!(
            tolerating.is_empty(),
            "the webhook gave DaemonSet pods the virtual node's toleration: {tolerating:?}"
        );
        let ds_status = s
            .api::<DaemonSet>()
            .get("agent")
            .await?
            .status
            .context("DaemonSet status")?;
        anyhow::ensure!(
            ds_status.desired_number_scheduled as usize == kwok_nodes,
            "the DaemonSet wants {} pods; the virtual node must not count",
            ds_status.desired_number_scheduled
        );
        let cci = s.cci_pods().await?;
        anyhow::ensure!(
            cci.is_empty(),
            "CCI holds {} pods of this scenario",
            cci.len()
        );
        Ok(Outcome::Passed)
    })
}

/// WL-01: a bare Pod labelled `enforce` (the seed's nginx: 500m / 1024Mi, `imagepull-secret`)
/// runs on `bursting-node`; the CCI pod exists in `bursting-{clusterID}`.
pub fn wl_01(s: &Scenario) -> BodyFuture<'_> {
    Box::pin(async move {
        let mut pod: Pod = fixtures::load("seed/nginx-pod.yaml")?;
        pod.metadata
            .labels
            .get_or_insert_default()
            .insert(super::POLICY_LABEL.into(), "enforce".into());
        s.api::<Pod>().create(&PostParams::default(), &pod).await?;
        let pods = converge(
            s,
            &format!("{}=enforce", super::POLICY_LABEL),
            1,
            SCALE_PATIENCE,
        )
        .await?;
        let uid = pods[0].metadata.uid.clone().context("uid")?;
        let cci = s.cci_pods().await?;
        let on_cci = cci
            .iter()
            .find(|p| cluster_uid_of(p) == Some(uid.as_str()))
            .context("no CCI pod for the nginx pod")?;
        anyhow::ensure!(
            on_cci.metadata.namespace.as_deref() == Some(s.cci_namespace()),
            "the CCI pod is in {:?}, not {}",
            on_cci.metadata.namespace,
            s.cci_namespace()
        );
        s.api::<Pod>()
            .delete("nginx", &DeleteParams::default())
            .await?;
        converge(
            s,
            &format!("{}=enforce", super::POLICY_LABEL),
            0,
            SCALE_PATIENCE,
        )
        .await?;
        Ok(Outcome::Passed)
    })
}

/// The uids of the `app=nginx` ReplicaSets, sorted.
async fn replica_set_uids(s: &Scenario) -> crate::Result<Vec<String>> {
    let sets = s
        .api::<ReplicaSet>()
        .list(&ListParams::default().labels("app=nginx"))
        .await
        .map_err(|source| crate::Error::Kube {
            context: "list ReplicaSets".into(),
            source,
        })?;
    let mut uids: Vec<String> = sets
        .items
        .into_iter()
        .filter_map(|r| r.metadata.uid)
        .collect();
    uids.sort();
    Ok(uids)
}

/// WL-08: the label added to a running Deployment moves nothing; after a rollout restart the
/// new pods burst.
pub fn wl_08(s: &Scenario) -> BodyFuture<'_> {
    Box::pin(async move {
        let mut deployment: Deployment = fixtures::load("workloads/wl-02-deployment.yaml")?;
        deployment.metadata.labels = None;
        s.api::<Deployment>()
            .create(&PostParams::default(), &deployment)
            .await?;
        let local = wait::until(
            "2 pods Running on cluster (kwok) nodes",
            SCALE_PATIENCE,
            || async {
                let pods = s
                    .api::<Pod>()
                    .list(&ListParams::default().labels("app=nginx"))
                    .await
                    .map_err(|source| crate::Error::Kube {
                        context: "list pods".into(),
                        source,
                    })?
                    .items;
                let ok = pods.len() == 2
                    && pods.iter().all(|p| {
                        p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
                            && p.spec.as_ref().and_then(|sp| sp.node_name.as_deref())
                                != Some(s.virtual_node())
                    });
                Ok(ok.then_some(pods))
            },
            || s.diagnose(),
        )
        .await?;
        let mut before: Vec<String> = local
            .iter()
            .filter_map(|p| p.metadata.uid.clone())
            .collect();
        before.sort();

        s.api::<Deployment>()
            .patch(
                "nginx",
                &PatchParams::default(),
                &Patch::Merge(
                    serde_json::json!({"metadata": {"labels": {super::POLICY_LABEL: "enforce"}}}),
                ),
            )
            .await?;
        // Nothing may move. A labels-only patch bumps no generation, so there is no "observed"
        // to wait for: the same pods (no new ReplicaSet, none being deleted, none on CCI) must
        // hold for a window far longer than the engine and the controllers take to react.
        let replica_sets = replica_set_uids(s).await?;
        let steady_since = Instant::now();
        let change = wait::until(
            &format!(
                "{}s with the pods unchanged after the label",
                STEADY.as_secs()
            ),
            STEADY + SCALE_PATIENCE,
            || async {
                let pods = s
                    .api::<Pod>()
                    .list(&ListParams::default().labels("app=nginx"))
                    .await
                    .map_err(|source| crate::Error::Kube {
                        context: "list pods".into(),
                        source,
                    })?
                    .items;
                let mut after: Vec<String> =
                    pods.iter().filter_map(|p| p.metadata.uid.clone()).collect();
                after.sort();
                let deleting: Vec<String> = pods
                    .iter()
                    .filter(|p| p.metadata.deletion_timestamp.is_some())
                    .map(|p| p.name_any())
                    .collect();
                let cci = s.cci_pods().await?;
                let sets = replica_set_uids(s).await?;
                Ok(if after != before {
                    Some(Some(format!("pods {before:?} -> {after:?}")))
                } else if !deleting.is_empty() {
                    Some(Some(format!("pods being deleted: {deleting:?}")))
                } else if !cci.is_empty() {
                    Some(Some(format!("{} pod(s) burst to CCI", cci.len())))
                } else if sets != replica_sets {
                    Some(Some(format!("ReplicaSets {replica_sets:?} -> {sets:?}")))
                } else if steady_since.elapsed() >= STEADY {
                    Some(None)
                } else {
                    None
                })
            },
            || s.diagnose(),
        )
        .await?;
        if let Some(change) = change {
            anyhow::bail!("something moved when only the label was added: {change}");
        }

        // `kubectl rollout restart`.
        s.api::<Deployment>()
            .patch(
                "nginx",
                &PatchParams::default(),
                &Patch::Merge(
                    serde_json::json!({"spec": {"template": {"metadata": {"annotations": {
                        "kubectl.kubernetes.io/restartedAt": "burstcert-wl-08"
                    }}}}}),
                ),
            )
            .await?;
        converge(s, "app=nginx", 2, SCALE_PATIENCE).await?;
        scale::<Deployment>(s, "nginx", 0).await?;
        converge(s, "app=nginx", 0, SCALE_PATIENCE).await?;
        Ok(Outcome::Passed)
    })
}
