//! UN: uninstalling the add-on (BEHAVIOR.md §8): UN-01…UN-04.
//!
//! Every body changes cluster-wide state (the add-on in `kube-system`, nodes) and puts the
//! add-on back afterwards (`serially`).

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Namespace, Node, Pod, Service};
use kube::ResourceExt as _;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};

use super::BodyFuture;
use super::addon_ops::{burst, serially};
use crate::addon::lifecycle::{self, Status, UninstallOptions};
use crate::addon::render::{self, NAMESPACE};
use crate::progress::Progress;
use crate::scenario::Outcome;
use crate::scenario::Scenario;
use crate::wait;

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

/// The number of CCI pods that stand for this scenario's pods, and whether the cluster's CCI
/// namespace exists. Other scenarios' CCI pods may still be ending their grace period when a
/// scenario starts after them on the same cluster: only this scenario's are its to count.
async fn own_cci_side(s: &Scenario) -> anyhow::Result<(usize, bool)> {
    Ok((
        s.cci_pods().await?.len(),
        s.cci().namespace_exists(s.cci_namespace()).await?,
    ))
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
        let before = own_cci_side(s).await?;
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
            let after = own_cci_side(s).await?;
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
        // This cluster's CCI pods that are meant to stay: not already going, and their cluster
        // pod's namespace neither gone nor terminating (the scenario that ran before on this
        // cluster may still be removing its namespace, whose CCI pods the engine then deletes on
        // its own). Purge must leave each of them as it was.
        let namespaces: Api<Namespace> = Api::all(s.client.clone());
        let mut staying = BTreeSet::new();
        for pod in s.cci().pods(s.cci_namespace()).await? {
            let cluster_namespace = pod
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get("bursting.cci.io/cluster-pod"))
                .and_then(|key| key.split_once('/'))
                .map(|(ns, _)| ns.to_owned());
            let Some(cluster_namespace) = cluster_namespace else {
                continue;
            };
            let namespace_stays = namespaces
                .get_opt(&cluster_namespace)
                .await?
                .is_some_and(|n| n.metadata.deletion_timestamp.is_none());
            if pod.metadata.deletion_timestamp.is_none() && namespace_stays {
                staying.extend(pod.metadata.uid);
            }
        }
        let live = |pods: Vec<cci_api::Pod>| -> BTreeSet<String> {
            pods.into_iter()
                .filter(|p| p.metadata.deletion_timestamp.is_none())
                .filter_map(|p| p.metadata.uid)
                .collect()
        };
        let ours_before = staying;
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
        let ours_after = live(s.cci().pods(s.cci_namespace()).await?);
        let touched: Vec<&String> = ours_before.difference(&ours_after).collect();
        anyhow::ensure!(
            touched.is_empty(),
            "purge touched this cluster's namespace {}: pods (by uid) gone or terminating since: {touched:?}",
            s.cci_namespace()
        );
        Ok(Outcome::Passed)
    }))
}
