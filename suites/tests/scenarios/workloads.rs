//! WL: workload kinds (BEHAVIOR.md §1, §3, §4), against a real local control plane and the mock
//! CCI. Bodies live in the harness's catalogue so `burstcert certify` runs the same code.

use burstcert::catalogue::assert_passes;

/// WL-01: the seed's nginx pod labelled `enforce` runs on the virtual node and on CCI.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wl_01_the_seeds_nginx_pod_labelled_enforce_runs_on_bursting_node_and_on_cci() {
    assert_passes("WL-01").await;
}

/// WL-02: Deployment, 2 replicas, `enforce`: both Running on the virtual node; scale to 5, then
/// to 0: CCI holds 5, then none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wl_02_enforce_deployment_bursts_two_then_five_then_zero_and_leaves_nothing_on_cci() {
    assert_passes("WL-02").await;
}

/// WL-03: StatefulSet ordinals keep their names on CCI, also when a replica is recreated.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wl_03_statefulset_keeps_ordinal_names_on_cci_and_recreates_web_1_under_its_name() {
    assert_passes("WL-03").await;
}

/// WL-06: DaemonSet pods never reach the virtual node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wl_06_daemonset_labelled_enforce_never_reaches_the_virtual_node() {
    assert_passes("WL-06").await;
}

/// WL-08: labelling a running Deployment moves nothing; a rollout restart bursts the new pods.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wl_08_labelling_a_running_deployment_moves_nothing_until_a_rollout_restart() {
    assert_passes("WL-08").await;
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
