//! Scenario bodies, one file per family, named after its ID prefix (`wl.rs` holds WL-01…WL-08,
//! `vol.rs` VOL-01…VOL-08, …). Each body runs in its own namespace ([`Scenario`]) and asserts
//! only on what the cluster and the mock CCI hold.
//!
//! What several families share is here, or in a module named for it: `admission.rs` (pods
//! expected admitted or refused), `cci_pod.rs` (the CCI pod standing for a cluster pod, its
//! volumes), `addon_ops.rs` (changing the add-on and putting it back), `web.rs` (the cluster
//! Service the network scenarios reach for).

pub mod cci;
pub mod hp;
pub mod inst;
pub mod lock;
pub mod net;
pub mod r;
pub mod res;
pub mod safe;
pub mod un;
pub mod up;
pub mod vk;
pub mod vol;
pub mod wl;

mod addon_ops;
mod admission;
mod cci_pod;
mod web;

use std::time::Duration;

use anyhow::Context as _;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use k8s_openapi::api::storage::v1::StorageClass;
use kube::api::{Api, ListParams, PostParams};

use crate::scenario::Scenario;
use crate::wait;

/// Whether the release `s` runs has the behaviour behind `gate`: the harness's gate table
/// ([`crate::gates`], read from the spec, not the engine's), so no scenario writes a threshold
/// of its own.
pub fn has(s: &Scenario, gate: crate::gates::Gate) -> bool {
    gate.applies_to(s.env.release())
}

/// The (vCPU, GiB) of a CCI flavour string, in thousandths: `2_4` and `2.00_4.0` (the
/// published example's spelling, what a real CCI writes) are the same flavour.
pub fn flavour(text: &str) -> Option<(u64, u64)> {
    let (cpu, memory) = text.split_once('_')?;
    let thousandths = |n: &str| -> Option<u64> {
        let value: f64 = n.parse().ok()?;
        (value.is_finite() && value >= 0.0).then(|| (value * 1000.0).round() as u64)
    };
    Some((thousandths(cpu)?, thousandths(memory)?))
}

/// Whether a CCI size annotation names the `expected` flavour, however it is spelled.
pub fn same_flavour(found: Option<&str>, expected: &str) -> bool {
    found
        .and_then(flavour)
        .is_some_and(|f| Some(f) == flavour(expected))
}

/// The seed's policy label.
pub const POLICY_LABEL: &str = "virtual-kubelet.io/burst-to-cci";

/// Selector of every pod labelled `enforce`.
fn enforce_selector() -> String {
    format!("{POLICY_LABEL}=enforce")
}

/// Pod annotation of the hostPath replacement policies.
const HOSTPATH_REPLACEMENT: &str = "coordinator.cci.io/hostpath-replacement";

/// The seed's nginx pod (0.5 vCPU, 1Gi) labelled `enforce`, named `name`, with `volumes` (JSON)
/// mounted in order under `/mnt/0`, `/mnt/1`, … and `annotations`.
pub fn pod_with(
    name: &str,
    volumes: serde_json::Value,
    annotations: &[(&str, &str)],
) -> anyhow::Result<Pod> {
    let mut pod: Pod = crate::fixtures::load("seed/nginx-pod.yaml")?;
    pod.metadata.name = Some(name.to_owned());
    let labels = pod.metadata.labels.get_or_insert_default();
    labels.insert(POLICY_LABEL.into(), "enforce".into());
    labels.insert("scenario-pod".into(), name.to_owned());
    for (k, v) in annotations {
        pod.metadata
            .annotations
            .get_or_insert_default()
            .insert((*k).into(), (*v).into());
    }
    let volumes: Vec<k8s_openapi::api::core::v1::Volume> = serde_json::from_value(volumes)?;
    let spec = pod
        .spec
        .as_mut()
        .ok_or_else(|| anyhow::anyhow!("the fixture has no spec"))?;
    if !volumes.is_empty() {
        spec.containers[0].volume_mounts = Some(
            volumes
                .iter()
                .enumerate()
                .map(|(i, v)| k8s_openapi::api::core::v1::VolumeMount {
                    name: v.name.clone(),
                    mount_path: format!("/mnt/{i}"),
                    ..Default::default()
                })
                .collect(),
        );
        spec.volumes = Some(volumes);
    }
    Ok(pod)
}

/// Creates StorageClass `name` with `provisioner` unless it exists.
async fn ensure_class(
    classes: &Api<StorageClass>,
    name: &str,
    provisioner: &str,
) -> anyhow::Result<()> {
    let sc: StorageClass = serde_json::from_value(serde_json::json!({
        "apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
        "metadata": {"name": name},
        "provisioner": provisioner,
        "volumeBindingMode": "Immediate"
    }))?;
    match classes.create(&PostParams::default(), &sc).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(()),
        Err(e) => Err(e).context(format!("create StorageClass {name}")),
    }
}

/// A claim `name` of `class`.
fn claim(name: &str, class: &str) -> anyhow::Result<PersistentVolumeClaim> {
    Ok(serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "PersistentVolumeClaim",
        "metadata": {"name": name},
        "spec": {"storageClassName": class, "accessModes": ["ReadWriteMany"],
                 "resources": {"requests": {"storage": "1Gi"}}}
    }))?)
}

/// A scenario body's future.
pub type BodyFuture<'a> = std::pin::Pin<
    Box<dyn std::future::Future<Output = anyhow::Result<crate::scenario::Outcome>> + Send + 'a>,
>;

/// Whether a cluster pod is Running with an IP on `node` (the virtual node,
/// [`Scenario::virtual_node`]).
pub fn running_on(node: &str, pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_none()
        && pod.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(node)
        && pod.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
        && pod
            .status
            .as_ref()
            .and_then(|s| s.pod_ip.as_deref())
            .is_some()
}

/// Whether a CCI pod is Running.
pub fn cci_running(pod: &cci_api::Pod) -> bool {
    pod.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
}

/// The UID of the cluster pod a CCI pod stands for.
pub fn cluster_uid_of(pod: &cci_api::Pod) -> Option<&str> {
    pod.metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(cci_api::LABEL_CLUSTER_POD_UID))
        .map(String::as_str)
}

/// Waits until the pods matching `selector` are exactly `n`, all Running on the virtual node,
/// and the mock holds exactly one Running CCI pod for each of them (matched by UID), and no
/// other CCI pod for this scenario: `selector` must cover every pod the scenario bursts.
pub async fn converge(
    s: &Scenario,
    selector: &str,
    n: usize,
    patience: Duration,
) -> anyhow::Result<Vec<Pod>> {
    let pods = wait::until(
        &format!(
            "{n} pods ({selector}) Running on {}, one Running CCI pod each",
            s.virtual_node()
        ),
        patience,
        || async {
            let pods = s
                .api::<Pod>()
                .list(&ListParams::default().labels(selector))
                .await
                .map_err(|source| crate::Error::Kube {
                    context: "list scenario pods".into(),
                    source,
                })?
                .items;
            let running = pods
                .iter()
                .filter(|p| running_on(s.virtual_node(), p))
                .count();
            let cci = s.cci_pods().await?;
            let mut cci_uids: Vec<&str> = cci
                .iter()
                .filter(|p| cci_running(p))
                .filter_map(cluster_uid_of)
                .collect();
            cci_uids.sort_unstable();
            let mut uids: Vec<&str> = pods
                .iter()
                .filter_map(|p| p.metadata.uid.as_deref())
                .collect();
            uids.sort_unstable();
            let done = pods.len() == n && running == n && cci.len() == n && cci_uids == uids;
            Ok(done.then(|| pods.clone()))
        },
        || s.diagnose(),
    )
    .await?;
    Ok(pods)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flavour_is_the_same_however_cci_spells_it() {
        assert!(same_flavour(Some("2_4"), "2_4"));
        assert!(same_flavour(Some("2.00_4.0"), "2_4"));
        assert!(same_flavour(Some("0.5_1"), "0.50_1.0"));
        assert!(!same_flavour(Some("2_8"), "2_4"));
        assert!(!same_flavour(Some("4_4"), "2_4"));
        assert!(!same_flavour(None, "2_4"));
        assert!(!same_flavour(Some("2x4"), "2_4"));
    }
}
