//! R: resilience.

use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::Context as _;
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Patch, PatchParams, PostParams};

use super::{BodyFuture, cluster_uid_of, converge};
use crate::scenario::Outcome;
use crate::scenario::Scenario;
use crate::{fixtures, wait};

/// the engine killed in the middle of bursting 100 pods and restarted: every pod Running,
/// exactly one CCI pod each, none leaked.
pub fn r_01(s: &Scenario) -> BodyFuture<'_> {
    Box::pin(async move {
        let mut deployment: Deployment = fixtures::load("workloads/wl-02-deployment.yaml")?;
        deployment.metadata.name = Some("hundred".into());
        let spec = deployment.spec.as_mut().context("spec")?;
        spec.replicas = Some(100);
        s.api::<Deployment>()
            .create(&PostParams::default(), &deployment)
            .await?;

        // Kill it mid-burst: once some, but not all, CCI pods exist.
        let partial = wait::until(
            "the engine to have burst some of the 100 pods",
            Duration::from_secs(120),
            || async {
                let n = s.cci_pods().await?.len();
                Ok((n >= 10).then_some(n))
            },
            || s.diagnose(),
        )
        .await?;
        let restarts = s.env.kill_engine().await?;
        let at_kill = s.cci_pods().await?.len();
        eprintln!("R-01: engine killed with {at_kill} CCI pods (saw {partial})");
        anyhow::ensure!(
            at_kill < 100,
            "the engine finished before it could be killed; nothing was tested"
        );
        s.env.wait_engine_restarted(restarts).await?;

        let pods = converge(s, "app=nginx", 100, Duration::from_secs(300)).await?;
        // converge already matched UIDs one to one; check no duplicate names either.
        let cci = s.cci_pods().await?;
        let uids: BTreeSet<&str> = cci.iter().filter_map(cluster_uid_of).collect();
        anyhow::ensure!(
            uids.len() == cci.len() && cci.len() == pods.len(),
            "duplicates on CCI"
        );

        s.api::<Deployment>()
            .patch(
                "hundred",
                &PatchParams::default(),
                &Patch::Merge(serde_json::json!({"spec": {"replicas": 0}})),
            )
            .await?;
        converge(s, "app=nginx", 0, Duration::from_secs(300)).await?;
        Ok(Outcome::Passed)
    })
}
