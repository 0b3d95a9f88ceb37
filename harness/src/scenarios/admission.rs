//! Pods the volume and sizing scenarios (VOL, HP, RES-02) create and expect admitted
//! ([`create`]) or refused at admission ([`expect_refused`]: the person who applied the manifest
//! reads what is wrong and what to do, and the pod is not created), or admitted but
//! kept off the virtual node ([`kept_local_events`]).

use anyhow::Context as _;
use k8s_openapi::api::core::v1::{Event, Pod};
use kube::api::{ListParams, PostParams};

use crate::fixtures;
use crate::scenario::Scenario;

/// Creates `pod` and expects the webhook to refuse it with a message containing every needle;
/// checks the pod was not created. Returns the message.
pub async fn expect_refused(s: &Scenario, pod: &Pod, needles: &[&str]) -> anyhow::Result<String> {
    let name = pod.metadata.name.clone().context("pod has a name")?;
    let message = match s.api::<Pod>().create(&PostParams::default(), pod).await {
        Ok(_) => anyhow::bail!("pod {name} was admitted; expected a refusal naming {needles:?}"),
        Err(kube::Error::Api(status)) => status.message.clone(),
        Err(e) => return Err(e).context(format!("create pod {name}")),
    };
    anyhow::ensure!(
        message.contains("denied the request"),
        "pod {name} failed for another reason than the webhook: {message}"
    );
    for needle in needles {
        anyhow::ensure!(
            message.contains(needle),
            "the refusal of {name} does not mention {needle:?}: {message}"
        );
    }
    // Whether CCI holds a pod is not asked: a refused pod never existed, so no engine could
    // have bound or burst it; that a pod of the cluster is not there is what can fail.
    anyhow::ensure!(
        s.api::<Pod>().get_opt(&name).await?.is_none(),
        "pod {name} exists after its refusal"
    );
    Ok(message)
}

/// Creates `pod` (it must be admitted).
pub(super) async fn create(s: &Scenario, pod: &Pod) -> anyhow::Result<()> {
    let name = pod.metadata.name.as_deref().unwrap_or("?");
    s.api::<Pod>()
        .create(&PostParams::default(), pod)
        .await
        .with_context(|| format!("create pod {name} (expected to be admitted)"))?;
    Ok(())
}

/// The seed's nginx pod, labelled `enforce`, named `name`.
pub(super) fn enforce_pod(name: &str) -> anyhow::Result<Pod> {
    let mut pod: Pod = fixtures::load("seed/nginx-pod.yaml")?;
    pod.metadata.name = Some(name.to_owned());
    pod.metadata
        .labels
        .get_or_insert_default()
        .insert(super::POLICY_LABEL.into(), "enforce".into());
    Ok(pod)
}

/// Adds a volume (as JSON) mounted at `/data` in the first container.
pub(super) fn with_volume(mut pod: Pod, volume: serde_json::Value) -> anyhow::Result<Pod> {
    let spec = pod.spec.as_mut().context("spec")?;
    let volume: k8s_openapi::api::core::v1::Volume = serde_json::from_value(volume)?;
    spec.containers[0]
        .volume_mounts
        .get_or_insert_default()
        .push(k8s_openapi::api::core::v1::VolumeMount {
            name: volume.name.clone(),
            mount_path: "/data".into(),
            ..Default::default()
        });
    spec.volumes.get_or_insert_default().push(volume);
    Ok(pod)
}

/// Whether a pod tolerates the virtual node's taint by name (the webhook's mark).
pub(super) fn tolerates_virtual_node(pod: &Pod) -> bool {
    pod.spec
        .as_ref()
        .and_then(|s| s.tolerations.as_ref())
        .is_some_and(|ts| {
            ts.iter()
                .any(|t| t.key.as_deref() == Some(crate::cluster::VIRTUAL_NODE_TAINT))
        })
}

/// Whether a pod requires a node labelled `type=virtual-kubelet` (the webhook's `enforce` mark).
pub(super) fn requires_virtual_node(pod: &Pod) -> bool {
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

/// The events on the scenario's cluster pod `name`, oldest first.
pub(super) async fn events_on(s: &Scenario, name: &str) -> crate::Result<Vec<Event>> {
    let mut events = s
        .api::<Event>()
        .list(&ListParams::default().fields(&format!("involvedObject.name={name}")))
        .await
        .map_err(|source| crate::Error::Kube {
            context: format!("list events of pod {name}"),
            source,
        })?
        .items;
    events.sort_by_key(|e| e.metadata.creation_timestamp.clone().map(|t| t.0));
    Ok(events)
}

/// The events the webhook posted on pod `name` because it kept the pod local (of any type:
/// the scenarios check it is a Warning).
pub(super) async fn kept_local_events(s: &Scenario, name: &str) -> crate::Result<Vec<Event>> {
    let mut events = events_on(s, name).await?;
    events.retain(|e| e.reason.as_deref() == Some("KeptLocal"));
    Ok(events)
}
