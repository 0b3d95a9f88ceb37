//! HP: the hostPath replacement annotation (BEHAVIOR.md §6), end to end.

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use kube::api::PostParams;

use super::{BodyFuture, converge};
use crate::scenario::Outcome;
use crate::scenario::Scenario;
use crate::{fixtures, snapshot};

/// HP-01: the seed's Deployment (three hostPaths: two removed, one replaced by a 10Gi emptyDir)
/// bursts and runs; the CCI pod's volumes and mounts are snapshotted for review.
pub fn hp_01(s: &Scenario) -> BodyFuture<'_> {
    Box::pin(async move {
        let mut deployment: Deployment = fixtures::load("seed/hostpath-deployment.yaml")?;
        // The seed writes `namespace: default`; the scenario owns its own namespace.
        deployment.metadata.namespace = None;
        s.api::<Deployment>()
            .create(&PostParams::default(), &deployment)
            .await?;
        converge(s, "app=test", 2, Duration::from_secs(90)).await?;

        let mut cci = s.cci_pods().await?;
        cci.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
        let spec = &cci[0].spec;
        let view = serde_json::json!({
            "volumes": spec.volumes,
            "mounts": spec.containers.iter().map(|c| (c.name.clone(), c.volume_mounts.clone())).collect::<Vec<_>>(),
        });
        snapshot::settings().bind(|| insta::assert_json_snapshot!("hp_01_cci_pod_volumes", view));
        Ok(Outcome::Passed)
    })
}
