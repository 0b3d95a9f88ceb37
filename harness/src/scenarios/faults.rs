//! Faults of the CCI service: the engine must ride them out without duplicates.

use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::Context as _;
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Patch, PatchParams, PostParams};

use super::{BodyFuture, cluster_uid_of, converge};
use crate::mock_admin::FaultGuard;
use crate::scenario::Outcome;
use crate::scenario::Scenario;
use crate::{fixtures, wait};
use mock_cci::faults::Operation;
use mock_cci::{Fault, Scope};

/// with CCI failing half the pod creations with 503 and answering them 1.5 s late, a
/// 5-replica Deployment (`enforce`) is created; once the engine has met several failures the
/// faults are cleared and the Deployment converges with exactly one CCI pod per cluster pod.
/// Then, with CCI storing each pod creation but answering it only with a late `504` (the answer
/// lost), the Deployment is scaled to 8: the engine's retries must find the pods it already
/// made. The faults are scoped to this cluster's CCI namespace and cleared also when a step fails.
pub fn r_02(s: &Scenario) -> BodyFuture<'_> {
    Box::pin(async move {
        let admin = s.mock_admin()?;
        let scope = Scope::Namespace(s.cci_namespace().to_owned());
        let create_pods: Operation = "create pods"
            .parse()
            .map_err(|e: String| anyhow::anyhow!(e))?;
        // Both guards clear their fault when the body ends, however it ends.
        let errors = admin
            .set_fault(
                scope.clone(),
                Fault::ErrorRate {
                    operations: vec![create_pods],
                    percent: 50,
                    status: 503,
                },
            )
            .await?;
        let slow = admin
            .set_fault(
                scope,
                Fault::Latency {
                    operations: vec![create_pods],
                    millis: 1500,
                },
            )
            .await?;
        let during = faulty_phase(s, &errors).await;
        let cleared = (errors.clear().await, slow.clear().await);
        during?;
        cleared.0?;
        cleared.1?;

        converge(s, "app=nginx", 5, Duration::from_secs(180)).await?;

        // "Applied, then timed out": the mock stores each pod creation, then leaves the engine
        // waiting and answers 504. Every pod the engine now creates is on CCI although the
        // engine saw its create fail; its retries must find that pod, not make a second one.
        let lost = admin
            .set_fault(
                Scope::Namespace(s.cci_namespace().to_owned()),
                Fault::Timeout {
                    operations: vec![create_pods],
                    applied: true,
                },
            )
            .await?;
        let during = lost_answers_phase(s, &lost).await;
        let cleared = lost.clear().await;
        during?;
        cleared?;

        let pods = converge(s, "app=nginx", SCALED, Duration::from_secs(180)).await?;
        let cci = s.cci_pods().await?;
        let uids: BTreeSet<&str> = cci.iter().filter_map(cluster_uid_of).collect();
        anyhow::ensure!(
            uids.len() == cci.len() && cci.len() == pods.len(),
            "duplicates on CCI: {} CCI pods for {} cluster pods",
            cci.len(),
            pods.len()
        );
        Ok(Outcome::Passed)
    })
}

/// Replicas of the Deployment once scaled up under the "applied, then timed out" fault.
const SCALED: usize = 8;

/// Scales the Deployment to [`SCALED`] and waits until every new pod's creation was applied on
/// CCI without the engine getting an answer, and the engine has retried at least one of them.
async fn lost_answers_phase(s: &Scenario, lost: &FaultGuard) -> anyhow::Result<()> {
    s.api::<Deployment>()
        .patch(
            "flaky",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"spec": {"replicas": SCALED}})),
        )
        .await?;
    let added = SCALED - 5;
    wait::until(
        &format!(
            "the mock to have applied {added} pod creations left unanswered, and a retry of one"
        ),
        Duration::from_secs(120),
        || async {
            let fired = usize::try_from(lost.fired().await?).unwrap_or(usize::MAX);
            let on_cci = s.cci_pods().await?.len();
            Ok((on_cci >= SCALED && fired > added).then_some(()))
        },
        || s.diagnose(),
    )
    .await?;
    Ok(())
}

/// Creates the Deployment and waits until the error fault has failed at least 3 creations.
async fn faulty_phase(s: &Scenario, errors: &FaultGuard) -> anyhow::Result<()> {
    let mut deployment: Deployment = fixtures::load("workloads/wl-02-deployment.yaml")?;
    deployment.metadata.name = Some("flaky".into());
    deployment.spec.as_mut().context("spec")?.replicas = Some(5);
    s.api::<Deployment>()
        .create(&PostParams::default(), &deployment)
        .await?;
    wait::until(
        "the mock to have failed 3 pod creations with 503",
        Duration::from_secs(90),
        || async {
            let fired = errors.fired().await?;
            Ok((fired >= 3).then_some(fired))
        },
        || s.diagnose(),
    )
    .await?;
    Ok(())
}
