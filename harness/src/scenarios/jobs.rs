//! WL-04, WL-05: Jobs and CronJobs (BEHAVIOR.md §4).
//!
//! The seed's manifests name no requests or limits; under `enforce` the webhook refuses a pod
//! without them (CCI sizes pods from them, §4), so these scenarios add 250m / 512Mi to every
//! container they burst.

use std::time::Duration;

use anyhow::Context as _;
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec, ResourceRequirements};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::api::{
    Api, ApiResource, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams, PostParams,
};

use super::{BodyFuture, cci_running, cluster_uid_of, running_on};
use crate::scenario::Outcome;
use crate::scenario::Scenario;
use crate::{fixtures, wait};

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
/// completes 50, every pod on the virtual node, and the mock never held more than 5 of its pods
/// active at once.
///
/// The peak is read per Job: CCI pods carry their cluster pod's labels (engine/src/translate.rs),
/// and the Job controller labels its pods `job-name` and [`JOB_UID_LABEL`], so pods of the
/// deadline-failed Job still terminating, or of a Job of the same name in another scenario,
/// never count against this one.
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
        let done = wait::until(
            "pi to complete 50",
            Duration::from_secs(300),
            || async {
                let job = get_job(s, "pi").await?;
                if let Some(reason) = condition(&job, "Failed") {
                    return Err(crate::Error::Step {
                        step: "pi to complete".into(),
                        detail: format!("the Job failed: {reason}"),
                    });
                }
                Ok(condition(&job, "Complete").map(|_| job))
            },
            || s.diagnose(),
        )
        .await?;
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
/// version; the same CronJob as `batch/v1` (every minute, labelled `enforce`, 250m / 512Mi)
/// creates a Job whose pod runs on the virtual node and on CCI.
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
