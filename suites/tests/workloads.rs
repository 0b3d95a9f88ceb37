//! WL: workload kinds (BEHAVIOR.md §1, §3, §4), against a real local control plane and the mock CCI.

use std::time::Duration;

use anyhow::Context as _;
use burstcert::env::VIRTUAL_NODE;
use burstcert::scenario::Scenario;
use burstcert::{fixtures, snapshot, wait};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{ListParams, Patch, PatchParams, PostParams};

/// How long a scale step may take: the scheduler, the engine and the mock each add a little.
const SCALE_PATIENCE: Duration = Duration::from_secs(90);

/// The cluster pods of the Deployment, and which of them run on the virtual node.
async fn running_on_virtual_node(s: &Scenario, selector: &str) -> anyhow::Result<(usize, usize)> {
    let pods = s
        .api::<Pod>()
        .list(&ListParams::default().labels(selector))
        .await?;
    let live: Vec<&Pod> = pods
        .items
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .collect();
    let running = live
        .iter()
        .filter(|p| p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(VIRTUAL_NODE))
        .filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
        .filter(|p| {
            p.status
                .as_ref()
                .and_then(|s| s.pod_ip.as_deref())
                .is_some()
        })
        .count();
    Ok((pods.items.len(), running))
}

/// Waits until the Deployment has exactly `n` pods, all Running on the virtual node, and the mock
/// holds exactly `n` Running CCI pods for them.
async fn converge(s: &Scenario, selector: &str, n: usize) -> anyhow::Result<()> {
    wait::until(
        &format!("{n} pods Running on {VIRTUAL_NODE} and {n} Running CCI pods"),
        SCALE_PATIENCE,
        || async {
            let (total, running) =
                running_on_virtual_node(s, selector)
                    .await
                    .map_err(|e| burstcert::Error::Step {
                        step: "list pods".into(),
                        detail: e.to_string(),
                    })?;
            let cci = s.cci_pods().await?;
            let cci_running = cci
                .iter()
                .filter(|p| p.status.as_ref().and_then(|st| st.phase.as_deref()) == Some("Running"))
                .count();
            Ok((total == n && running == n && cci.len() == n && cci_running == n).then_some(()))
        },
        || s.diagnose(),
    )
    .await?;
    Ok(())
}

async fn scale(s: &Scenario, name: &str, replicas: i32) -> anyhow::Result<()> {
    s.api::<Deployment>()
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({ "spec": { "replicas": replicas } })),
        )
        .await
        .with_context(|| format!("scale deployment {name} to {replicas}"))?;
    Ok(())
}

/// WL-02: Deployment, 2 replicas, `enforce`: both Running on the virtual node; scale to 5, then
/// to 0: CCI holds 5, then none (no leaked instances).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wl_02_enforce_deployment_bursts_two_then_five_then_zero_and_leaves_nothing_on_cci()
-> anyhow::Result<()> {
    let s = Scenario::new("WL-02").await?;
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

    converge(&s, selector, 2).await?;

    // What a reviewer should see: one CCI pod as the engine created it.
    let mut cci = s.cci_pods().await?;
    cci.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    let pod = serde_json::to_value(&cci[0])?;
    snapshot::settings().bind(|| insta::assert_json_snapshot!("wl_02_cci_pod", pod));

    scale(&s, &name, 5).await?;
    converge(&s, selector, 5).await?;

    scale(&s, &name, 0).await?;
    converge(&s, selector, 0).await?;
    s.finish().await?;
    Ok(())
}

/// The shared cluster runs the pinned upstream release (real kube-apiserver, not a stand-in).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cluster_serves_the_pinned_kubernetes_release() -> anyhow::Result<()> {
    let env = burstcert::env::shared().await?;
    let version = env.client().await?.apiserver_version().await?;
    let pins = burstcert::tools::Pins::current();
    assert_eq!(version.git_version, pins.kubernetes);
    Ok(())
}
