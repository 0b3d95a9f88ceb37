//! The CCI pod that stands for a scenario's cluster pod, and its volumes and mounts as CCI holds
//! them (VOL, HP, RES-02).

use anyhow::Context as _;
use k8s_openapi::api::core::v1::Volume;

use crate::scenario::Scenario;

/// The CCI pod that stands for cluster pod `name` of the scenario.
pub(super) async fn cci_pod_of(s: &Scenario, name: &str) -> anyhow::Result<cci_api::Pod> {
    let owner = format!("{}/{name}", s.namespace);
    s.cci_pods()
        .await?
        .into_iter()
        .find(|p| {
            p.metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(cci_api::ANNOTATION_CLUSTER_POD))
                == Some(&owner)
        })
        .with_context(|| format!("no CCI pod stands for {owner}"))
}

/// The CCI pod's volume `name`, if it has one.
pub(super) fn volume<'a>(pod: &'a cci_api::Pod, name: &str) -> Option<&'a Volume> {
    pod.spec.volumes.iter().flatten().find(|v| v.name == name)
}

/// Whether any container of the CCI pod mounts volume `name`.
pub(super) fn mounted(pod: &cci_api::Pod, name: &str) -> bool {
    pod.spec
        .containers
        .iter()
        .flat_map(|c| c.volume_mounts.iter().flatten())
        .any(|m| m.name == name)
}

/// The CCI pod's volume `name` as an emptyDir's sizeLimit (`Some(None)`: an emptyDir without one).
pub(super) fn empty_dir_limit(pod: &cci_api::Pod, name: &str) -> Option<Option<String>> {
    volume(pod, name)
        .and_then(|v| v.empty_dir.as_ref())
        .map(|e| e.size_limit.as_ref().map(|q| q.0.clone()))
}

/// The CCI pod's volumes and mounts, for a snapshot.
pub(super) fn volumes_view(pod: &cci_api::Pod) -> serde_json::Value {
    serde_json::json!({
        "volumes": pod.spec.volumes,
        "mounts": pod.spec.containers.iter()
            .map(|c| (c.name.clone(), c.volume_mounts.clone()))
            .collect::<Vec<_>>(),
    })
}
