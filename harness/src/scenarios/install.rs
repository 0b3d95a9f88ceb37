//! Installation and cluster-level rules (BEHAVIOR.md §2): INST-04, INST-05.
//!
//! Each body asserts the side of a gate the shared environment's release is on
//! ([`crate::env::release`]); the harness keeps its own tiny release compare and never borrows
//! the engine's rules.

use std::time::Duration;

use anyhow::Context as _;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{
    Event, Namespace, PersistentVolume, PersistentVolumeClaim, Pod, Service,
};
use k8s_openapi::api::storage::v1::StorageClass;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};

use super::gated::{claim, ensure_class};
use super::{BodyFuture, POLICY_LABEL, converge, pod_with};
use crate::scenario::Outcome;
use crate::scenario::Scenario;
use crate::{fixtures, snapshot, wait};

const PATIENCE: Duration = Duration::from_secs(60);
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
    what: &str,
    result: Result<Service, kube::Error>,
    service: &str,
) -> anyhow::Result<()> {
    let message = match result {
        Ok(_) => anyhow::bail!(
            "{what} was admitted on release {}; expected a refusal (LoadBalancer for burst pods \
             needs 1.5.5)",
            crate::env::release()
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
/// release.
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
        if super::has(crate::gates::Gate::LoadBalancerService)? {
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
            check_refusal("LoadBalancer Service web-lb", lb, &name)?;
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
            check_refusal("the update of web-internal to LoadBalancer", update, &name)?;
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
        Ok(Outcome::Passed)
    })
}

/// Where the webhook looks for Volcano's scheduler (the namespace and name Volcano's charts use).
const VOLCANO_NAMESPACE: &str = "volcano-system";
const VOLCANO_DEPLOYMENT: &str = "volcano-scheduler";
/// The virtual node's taint, which the webhook's toleration names.
const VIRTUAL_NODE_TAINT: &str = "virtual-kubelet.io/provider";

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

/// Whether a pod tolerates the virtual node's taint by name (the webhook's mark).
fn tolerates_virtual_node(pod: &Pod) -> bool {
    pod.spec
        .as_ref()
        .and_then(|s| s.tolerations.as_ref())
        .is_some_and(|ts| {
            ts.iter()
                .any(|t| t.key.as_deref() == Some(VIRTUAL_NODE_TAINT))
        })
}

/// Whether a pod requires a node labelled `type=virtual-kubelet` (the webhook's `enforce` mark).
fn requires_virtual_node(pod: &Pod) -> bool {
    pod.spec
        .as_ref()
        .and_then(|s| s.affinity.as_ref())
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|n| {
            n.required_during_scheduling_ignored_during_execution
                .as_ref()
        })
        .is_some_and(|r| {
            r.node_selector_terms.iter().all(|t| {
                t.match_expressions.iter().flatten().any(|e| {
                    e.key == "type"
                        && e.operator == "In"
                        && e.values.as_deref() == Some(&["virtual-kubelet".to_owned()][..])
                })
            })
        })
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

/// The Warning events the webhook posted on pod `name` because it kept the pod local.
async fn kept_local_events(s: &Scenario, name: &str) -> crate::Result<Vec<Event>> {
    Ok(s.api::<Event>()
        .list(&ListParams::default().fields(&format!("involvedObject.name={name}")))
        .await
        .map_err(|source| crate::Error::Kube {
            context: format!("list events of pod {name}"),
            source,
        })?
        .items
        .into_iter()
        .filter(|e| e.reason.as_deref() == Some("KeptLocal"))
        .collect())
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
/// a KeptLocal Warning event naming Volcano 1.17.10, the rule and the volume, is not bound to
/// the virtual node and has nothing on CCI. With `v1.17.11` the same pod is mutated for the
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
    let pod = s.api::<Pod>().get("old-volcano").await?;
    anyhow::ensure!(
        pod.spec.as_ref().and_then(|sp| sp.node_name.as_deref()) != Some(s.virtual_node()),
        "pod old-volcano is bound to {}",
        s.virtual_node()
    );
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
