//! WL: workload kinds (BEHAVIOR.md §1, §3, §4): WL-01…WL-08.
//!
//! Jobs and CronJobs (WL-04, WL-05): the seed's manifests name no requests or limits; under
//! `enforce` the webhook refuses a pod without them (CCI sizes pods from them, §4), so these
//! scenarios add 250m / 512Mi to every container they burst.
//!
//! The scheduling policy matrix (WL-07, BEHAVIOR.md §3) against nodes with room and full changes
//! cluster-wide state (the kwok nodes' free CPU); it needs chosen nodes, so it runs alone
//! ([`crate::catalogue::Entry::cluster_wide`]).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{Node, Pod, PodTemplateSpec, ResourceRequirements};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::ResourceExt as _;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, Patch,
    PatchParams, PostParams,
};

use super::admission::tolerates_virtual_node;
use super::{BodyFuture, POLICY_LABEL, cci_running, cluster_uid_of, converge, running_on};
use crate::cluster::VIRTUAL_NODE;
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
        let release = s.env.release().to_string();
        let sidecar = if super::has(s, crate::gates::Gate::SidecarV2) {
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
        // The DaemonSet controller's own count first, once it has seen the DaemonSet: it counts
        // every node whose taints the pods tolerate, so a virtual node they may reach is in it
        // at once (the pods alone, Running on the kwok nodes within a second, would pass before
        // the controller placed one on the virtual node).
        let desired = wait::until(
            "the DaemonSet controller to count the nodes the DaemonSet runs on",
            SCALE_PATIENCE,
            || async {
                let ds = s.api::<DaemonSet>().get("agent").await.map_err(|source| {
                    crate::Error::Kube {
                        context: "get DaemonSet agent".into(),
                        source,
                    }
                })?;
                let observed = ds.status.as_ref().and_then(|st| st.observed_generation);
                let desired = ds
                    .status
                    .as_ref()
                    .map_or(0, |st| st.desired_number_scheduled);
                Ok((observed >= ds.metadata.generation && desired > 0).then_some(desired))
            },
            || s.diagnose(),
        )
        .await?;
        anyhow::ensure!(
            desired as usize == kwok_nodes,
            "the DaemonSet wants {desired} pods, not one per kwok node ({kwok_nodes}): the virtual node must not count"
        );
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

/// The policy label's key in the newer manuals (the seed's is [`super::POLICY_LABEL`]).
const NEWER_POLICY_LABEL: &str = "bursting.cci.io/burst-to-cci";

/// WL-01: a bare Pod labelled `enforce` (the seed's nginx: 500m / 1024Mi, `imagepull-secret`)
/// runs on `bursting-node`; the CCI pod exists in `bursting-{clusterID}`, runs the pod's image
/// and is Running; a pod labelled with the newer manuals' key bursts as well; a burst pod that
/// crash-loops on CCI shows its restarts and last exit code in the cluster.
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
        // The CCI pod is the seed's nginx, running there (not a placeholder the engine made).
        let image = |p: &Pod| p.spec.as_ref().and_then(|s| s.containers[0].image.clone());
        let cci_image = on_cci.spec.containers.first().and_then(|c| c.image.clone());
        anyhow::ensure!(
            cci_image == image(&pod),
            "the CCI pod runs {cci_image:?}, not the pod's {:?}",
            image(&pod)
        );
        let phase = on_cci.status.as_ref().and_then(|st| st.phase.as_deref());
        anyhow::ensure!(
            phase == Some("Running"),
            "the CCI pod of nginx is {phase:?}, not Running"
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
        // The newer manuals' label key opts a pod in just as the seed's does (the seed's pod gone
        // first: `converge` counts every CCI pod of the scenario).
        let mut newer: Pod = fixtures::load("seed/nginx-pod.yaml")?;
        newer.metadata.name = Some("nginx-newer-key".into());
        newer
            .metadata
            .labels
            .get_or_insert_default()
            .insert(NEWER_POLICY_LABEL.into(), "enforce".into());
        s.api::<Pod>()
            .create(&PostParams::default(), &newer)
            .await?;
        let burst = converge(
            s,
            &format!("{NEWER_POLICY_LABEL}=enforce"),
            1,
            SCALE_PATIENCE,
        )
        .await?;
        let newer_uid = burst[0].metadata.uid.clone().context("uid")?;
        anyhow::ensure!(
            s.cci_pods()
                .await?
                .iter()
                .any(|p| cluster_uid_of(p) == Some(newer_uid.as_str())),
            "no CCI pod for the pod labelled {NEWER_POLICY_LABEL}=enforce"
        );
        crash_loop_carried_back(s).await?;
        Ok(Outcome::Passed)
    })
}

/// A burst pod whose container exits 3 a second after each start: CCI restarts it (the pod's
/// restartPolicy is Always), and the cluster pod must show what CCI shows, a restart count and
/// the last state with its exit code, not only a phase.
async fn crash_loop_carried_back(s: &Scenario) -> anyhow::Result<()> {
    let mut crasher: Pod = fixtures::load("seed/nginx-pod.yaml")?;
    crasher.metadata.name = Some("crasher".into());
    crasher
        .metadata
        .labels
        .get_or_insert_default()
        .insert(NEWER_POLICY_LABEL.into(), "enforce".into());
    crasher.spec.as_mut().context("spec")?.containers[0].command =
        Some(vec!["sh".into(), "-c".into(), "sleep 1; exit 3".into()]);
    s.api::<Pod>()
        .create(&PostParams::default(), &crasher)
        .await
        .context("create pod crasher")?;
    let pods = s.api::<Pod>();
    let last = wait::LastSeen::default();
    wait::until(
        "pod crasher to show a restart and its last exit code 3",
        SCALE_PATIENCE,
        || async {
            let pod = pods
                .get("crasher")
                .await
                .map_err(|source| crate::Error::Kube {
                    context: "read pod crasher".into(),
                    source,
                })?;
            let status = pod
                .status
                .and_then(|st| st.container_statuses)
                .and_then(|cs| cs.into_iter().next());
            let seen = status.as_ref().map(|c| {
                let exit = c
                    .last_state
                    .as_ref()
                    .and_then(|l| l.terminated.as_ref())
                    .map(|t| t.exit_code);
                (c.restart_count, exit)
            });
            last.note(format!("restarts and last exit code: {seen:?}"));
            Ok(seen
                .is_some_and(|(restarts, exit)| restarts >= 1 && exit == Some(3))
                .then_some(()))
        },
        || last.before(s.diagnose()),
    )
    .await?;
    Ok(())
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

// WL-04, WL-05: Jobs and CronJobs.

/// Labels the template `enforce` and gives every container 250m / 512Mi (the seed's have none,
/// which `enforce` refuses).
fn burstable(template: &mut PodTemplateSpec) -> anyhow::Result<()> {
    template
        .metadata
        .get_or_insert_default()
        .labels
        .get_or_insert_default()
        .insert(super::POLICY_LABEL.into(), "enforce".into());
    let size = std::collections::BTreeMap::from([
        ("cpu".to_owned(), Quantity("250m".into())),
        ("memory".to_owned(), Quantity("512Mi".into())),
    ]);
    for c in &mut template.spec.as_mut().context("template spec")?.containers {
        c.resources = Some(ResourceRequirements {
            requests: Some(size.clone()),
            limits: Some(size.clone()),
            claims: None,
        });
    }
    Ok(())
}

/// The seed's Job, in the scenario's namespace, named `name`, labelled `enforce`.
fn seed_job(name: &str) -> anyhow::Result<Job> {
    let mut job: Job = fixtures::load("seed/job.yaml")?;
    job.metadata.name = Some(name.into());
    job.metadata.namespace = None;
    job.metadata
        .labels
        .get_or_insert_default()
        .insert(super::POLICY_LABEL.into(), "enforce".into());
    burstable(&mut job.spec.as_mut().context("spec")?.template)?;
    Ok(job)
}

/// The label the Job controller puts on its pods: the Job's UID.
const JOB_UID_LABEL: &str = "batch.kubernetes.io/controller-uid";

fn condition(job: &Job, type_: &str) -> Option<String> {
    job.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_ && c.status == "True")
        .map(|c| c.reason.clone().unwrap_or_default())
}

async fn job_pods(s: &Scenario, job: &str) -> crate::Result<Vec<Pod>> {
    Ok(s.api::<Pod>()
        .list(&ListParams::default().labels(&format!("job-name={job}")))
        .await
        .map_err(|source| crate::Error::Kube {
            context: format!("list pods of job {job}"),
            source,
        })?
        .items)
}

/// CCI pods standing for pods of Job `job` (by the annotation `namespace/name`).
async fn cci_pods_of_job(s: &Scenario, job: &str) -> crate::Result<Vec<cci_api::Pod>> {
    let prefix = format!("{}/{job}-", s.namespace);
    Ok(s.cci_pods()
        .await?
        .into_iter()
        .filter(|p| {
            p.metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(cci_api::ANNOTATION_CLUSTER_POD))
                .is_some_and(|o| o.starts_with(&prefix))
        })
        .collect())
}

async fn get_job(s: &Scenario, name: &str) -> crate::Result<Job> {
    s.api::<Job>()
        .get(name)
        .await
        .map_err(|source| crate::Error::Kube {
            context: format!("get job {name}"),
            source,
        })
}

/// WL-04: the seed's Job. With `activeDeadlineSeconds: 10` and containers that run until
/// stopped it fails with `DeadlineExceeded` and its CCI pods are gone; without the deadline
/// (the seed's perl, which the harness's mock completes after `--compute-time-ms`, 1 s) it
/// completes 50 without a failed pod, every pod on the virtual node, and the mock never held
/// more than 5 of its pods active at once.
///
/// The peak is read per Job: CCI pods carry their cluster pod's labels
/// (engine/src/translate/pod.rs), and the Job controller labels its pods `job-name` and
/// [`JOB_UID_LABEL`], so pods of the deadline-failed Job still terminating, or of a Job of the
/// same name in another scenario, never count against this one.
pub fn wl_04(s: &Scenario) -> BodyFuture<'_> {
    Box::pin(async move {
        // 1. The deadline.
        let mut job = seed_job("pi-deadline")?;
        let spec = job.spec.as_mut().context("spec")?;
        anyhow::ensure!(
            spec.active_deadline_seconds == Some(10),
            "the seed's deadline is 10 s"
        );
        // Runs until stopped, and stops on SIGTERM (a shell as PID 1 ignores it unless it traps
        // it): the deadline's kill then takes a moment, not the 30 s grace period, which is the
        // kubelet's behaviour, not the Job's.
        spec.template.spec.as_mut().context("pod spec")?.containers[0].command = Some(vec![
            "sh".into(),
            "-c".into(),
            "trap 'exit 143' TERM; while true; do sleep 1; done".into(),
        ]);
        s.api::<Job>().create(&PostParams::default(), &job).await?;
        wait::until(
            "a pod of pi-deadline Running on CCI before the deadline",
            Duration::from_secs(30),
            || async {
                let cci = cci_pods_of_job(s, "pi-deadline").await?;
                Ok(cci.iter().any(cci_running).then_some(()))
            },
            || s.diagnose(),
        )
        .await?;
        let reason = wait::until(
            "pi-deadline to fail",
            Duration::from_secs(60),
            || async { Ok(condition(&get_job(s, "pi-deadline").await?, "Failed")) },
            || s.diagnose(),
        )
        .await?;
        anyhow::ensure!(
            reason == "DeadlineExceeded",
            "pi-deadline failed with reason {reason:?}, expected DeadlineExceeded"
        );
        wait::until(
            "pi-deadline's CCI pods to be gone",
            Duration::from_secs(60),
            || async {
                Ok(cci_pods_of_job(s, "pi-deadline")
                    .await?
                    .is_empty()
                    .then_some(()))
            },
            || s.diagnose(),
        )
        .await?;

        // 2. Without the deadline: 50 completions, 5 at a time.
        let mut job = seed_job("pi")?;
        job.spec.as_mut().context("spec")?.active_deadline_seconds = None;
        let created = s.api::<Job>().create(&PostParams::default(), &job).await?;
        let pi_uid = created.metadata.uid.context("the Job pi has no uid")?;
        // A failed Job, or a failed pod, ends the wait at once: neither comes right by waiting
        // (an error of the check would only be retried until the deadline).
        let done = wait::until(
            "pi to complete 50",
            Duration::from_secs(300),
            || async {
                let job = get_job(s, "pi").await?;
                if let Some(reason) = condition(&job, "Failed") {
                    return Ok(Some(Err(format!("the Job failed: {reason}"))));
                }
                // The mock ends every pod of pi with exit 0: a failed one is a wrong status, not
                // the Job's business (its backoffLimit would hide a few, and its backoff delays
                // would make the Job's own failure take minutes).
                let failed = job.status.as_ref().and_then(|st| st.failed).unwrap_or(0);
                if failed > 0 {
                    return Ok(Some(Err(format!(
                        "{failed} pod(s) of pi failed; the mock completes each with exit 0"
                    ))));
                }
                Ok(condition(&job, "Complete").map(|_| Ok(job)))
            },
            || s.diagnose(),
        )
        .await?
        .map_err(|why| anyhow::anyhow!("pi did not complete: {why}"))?;
        let succeeded = done.status.as_ref().and_then(|st| st.succeeded);
        anyhow::ensure!(succeeded == Some(50), "pi succeeded {succeeded:?}, not 50");
        let pods = job_pods(s, "pi").await?;
        let off: Vec<_> = pods
            .iter()
            .filter(|p| {
                p.spec.as_ref().and_then(|sp| sp.node_name.as_deref()) != Some(s.virtual_node())
            })
            .filter_map(|p| p.metadata.name.clone())
            .collect();
        anyhow::ensure!(
            off.is_empty(),
            "pods of pi not on {}: {off:?}",
            s.virtual_node()
        );

        let peak = s
            .mock_admin()?
            .inside(&format!(
                "/_mock/peak?namespace={}&labelSelector=job-name%3Dpi%2C{JOB_UID_LABEL}%3D{pi_uid}",
                s.cci_namespace()
            ))
            .await?;
        let active = peak["active"]["peak"].as_u64().context("active peak")?;
        eprintln!("WL-04: peak of pi's active CCI pods {active}");
        // At least one: the selector matched pi's pods (their labels reached CCI).
        anyhow::ensure!(
            active >= 1,
            "no CCI pod labelled job-name=pi ever ran: {peak}"
        );
        anyhow::ensure!(
            active <= 5,
            "the mock held {active} active pods of pi at once (parallelism 5): {peak}"
        );
        Ok(Outcome::Passed)
    })
}

/// Creates an object from a manifest the way `kubectl apply` would, first asking the cluster
/// (discovery) whether it serves the manifest's API version and kind: an unserved one is an
/// error naming them, not the API server's bare 404.
pub async fn create_manifest(
    s: &Scenario,
    manifest: &serde_json::Value,
) -> anyhow::Result<DynamicObject> {
    let api_version = manifest["apiVersion"].as_str().context("apiVersion")?;
    let kind = manifest["kind"].as_str().context("kind")?;
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let gvk = GroupVersionKind::gvk(group, version, kind);
    let discovery = kube::Discovery::new(s.client.clone())
        .filter(&[group])
        .run()
        .await?;
    let Some((resource, _)) = discovery.resolve_gvk(&gvk) else {
        let served: Vec<String> = discovery
            .groups()
            .flat_map(|g| {
                g.versions()
                    .map(|v| format!("{}/{v}", g.name()))
                    .collect::<Vec<_>>()
            })
            .collect();
        anyhow::bail!(
            "the cluster does not serve {kind} in {api_version} (it serves {served:?}): update the manifest's apiVersion"
        );
    };
    let mut object: DynamicObject = serde_json::from_value(manifest.clone())?;
    object.metadata.namespace = None;
    Ok(
        Api::<DynamicObject>::namespaced_with(s.client.clone(), &s.namespace, &resource)
            .create(&PostParams::default(), &object)
            .await?,
    )
}

/// WL-05: the seed's CronJob (`batch/v1beta1`) is refused with an error naming the API
/// version; the same CronJob as `batch/v1` (every minute, 250m / 512Mi), labelled `enforce` on
/// the CronJob itself (not its pod template), creates a Job whose pod runs on the virtual node
/// and on CCI.
pub fn wl_05(s: &Scenario) -> BodyFuture<'_> {
    Box::pin(async move {
        let mut manifest: serde_json::Value = fixtures::load("seed/cronjob.yaml")?;
        anyhow::ensure!(
            manifest["apiVersion"] == "batch/v1beta1",
            "the seed's version"
        );
        manifest["metadata"]
            .as_object_mut()
            .context("metadata")?
            .remove("namespace");

        // The API server itself answers 404 for batch/v1beta1 cronjobs …
        let v1beta1 = ApiResource::from_gvk(&GroupVersionKind::gvk("batch", "v1beta1", "CronJob"));
        let object: DynamicObject = serde_json::from_value(manifest.clone())?;
        match Api::<DynamicObject>::namespaced_with(s.client.clone(), &s.namespace, &v1beta1)
            .create(&PostParams::default(), &object)
            .await
        {
            Err(kube::Error::Api(status)) if status.code == 404 => {}
            other => anyhow::bail!("batch/v1beta1 CronJob: expected a 404, got {other:?}"),
        }
        // … and loading the manifest says why.
        let err = match create_manifest(s, &manifest).await {
            Ok(_) => anyhow::bail!("the batch/v1beta1 CronJob was created"),
            Err(e) => format!("{e:#}"),
        };
        anyhow::ensure!(
            err.contains("batch/v1beta1") && err.contains("CronJob"),
            "the error does not name batch/v1beta1 CronJob: {err}"
        );

        // The same CronJob as batch/v1.
        manifest["apiVersion"] = "batch/v1".into();
        let mut cron: CronJob = serde_json::from_value(manifest)?;
        let spec = &mut cron.spec;
        spec.schedule = "*/1 * * * *".into();
        spec.concurrency_policy = Some("Forbid".into());
        // A schedule missed less than this long ago still starts (see below).
        spec.starting_deadline_seconds = Some(300);
        let template = &mut spec
            .job_template
            .spec
            .as_mut()
            .context("jobTemplate.spec")?
            .template;
        burstable(template)?;
        // The label on the CronJob itself, not on its template: the webhook must walk
        // Pod → Job → CronJob to find it.
        if let Some(labels) = template.metadata.as_mut().and_then(|m| m.labels.as_mut()) {
            labels.remove(super::POLICY_LABEL);
        }
        cron.metadata
            .labels
            .get_or_insert_default()
            .insert(super::POLICY_LABEL.into(), "enforce".into());
        let cron = s
            .api::<CronJob>()
            .create(&PostParams::default(), &cron)
            .await?;
        let cron_uid = cron.metadata.uid.clone().context("uid")?;
        // Meet the cron minute without waiting for it: a last schedule recorded 90 s ago means
        // the CronJob controller finds a missed minute (within the starting deadline) and starts
        // its Job now, as it would after a controller restart. The Job is still the controller's,
        // made from the CronJob's template. If it did not take, the next minute fires as before.
        let ninety_seconds_ago =
            k8s_openapi::jiff::Timestamp::now() - k8s_openapi::jiff::SignedDuration::from_secs(90);
        let missed = serde_json::json!({"status": {"lastScheduleTime": ninety_seconds_ago
            .strftime("%Y-%m-%dT%H:%M:%SZ").to_string()}});
        let cron_name = cron.metadata.name.clone().context("name")?;
        s.api::<CronJob>()
            .patch_status(&cron_name, &PatchParams::default(), &Patch::Merge(&missed))
            .await
            .context("record a missed schedule on the CronJob's status")?;
        let (job, pod) = wait::until(
            "a Job of the CronJob with its pod Running on the virtual node and on CCI",
            Duration::from_secs(150),
            || async {
                let jobs = s
                    .api::<Job>()
                    .list(&ListParams::default())
                    .await
                    .map_err(|source| crate::Error::Kube {
                        context: "list jobs".into(),
                        source,
                    })?
                    .items;
                let cci = s.cci_pods().await?;
                for job in jobs.iter().filter(|j| {
                    j.metadata
                        .owner_references
                        .iter()
                        .flatten()
                        .any(|o| o.uid == cron_uid)
                }) {
                    let name = job.metadata.name.clone().unwrap_or_default();
                    for pod in job_pods(s, &name).await? {
                        let uid = pod.metadata.uid.clone().unwrap_or_default();
                        if running_on(s.virtual_node(), &pod)
                            && cci
                                .iter()
                                .any(|c| cluster_uid_of(c) == Some(uid.as_str()) && cci_running(c))
                        {
                            return Ok(Some((name, pod)));
                        }
                    }
                }
                Ok(None)
            },
            || s.diagnose(),
        )
        .await?;
        eprintln!(
            "WL-05: Job {job} of the CronJob runs {} on CCI",
            pod.metadata.name.unwrap_or_default()
        );
        Ok(Outcome::Passed)
    })
}

// WL-07: the scheduling policy matrix.

const PATIENCE: Duration = Duration::from_secs(90);
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

/// What the admission webhook decides about a pod, as the API server stored it: its labels and
/// annotations, and the scheduling fields it may write (tolerations, affinity, node selector,
/// scheduler); the rest is the API server's defaulting, which is not the add-on's. Of the
/// tolerations the API server's own admission adds, the view keeps those every API server adds
/// (DefaultTolerationSeconds: not-ready, unreachable) and leaves out the one its
/// PodTolerationRestriction plugin adds where a cluster turns it on (memory-pressure, to every pod
/// that is not BestEffort; the kind cluster does, for `kube-system`'s placement on the host
/// node): the same webhook then shows the same view on every cluster.
fn admitted_view(pod: &Pod) -> anyhow::Result<serde_json::Value> {
    let pod = serde_json::to_value(pod)?;
    let spec = &pod["spec"];
    let tolerations = match spec["tolerations"].as_array() {
        Some(all) => serde_json::Value::Array(
            all.iter()
                .filter(|t| t["key"] != "node.kubernetes.io/memory-pressure")
                .cloned()
                .collect(),
        ),
        None => spec["tolerations"].clone(),
    };
    Ok(serde_json::json!({
        "labels": pod["metadata"]["labels"],
        "annotations": pod["metadata"]["annotations"],
        "tolerations": tolerations,
        "affinity": spec["affinity"],
        "nodeSelector": spec["nodeSelector"],
        "schedulerName": spec["schedulerName"],
    }))
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
            let name = case_name(policy, "room");
            let created = pods
                .create(&PostParams::default(), &nginx(&name, policy)?)
                .await?;
            // What a reviewer should see: the pod as the create answered it, after admission and
            // before anything else wrote to it (the engine annotates a pod it burst), so exactly
            // what the webhook wrote for this policy.
            let admitted = admitted_view(&created)?;
            snapshot::settings()
                .bind(|| insta::assert_json_snapshot!(format!("wl_07_admitted_{name}"), admitted));
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
