//! INST: installation and cluster-level rules (BEHAVIOR.md §2), against a real local control
//! plane, the webhook and the mock CCI.

use burstcert::catalogue::assert_passes;

/// INST-04: a LoadBalancer Service selecting a burst pod is refused before 1.5.5 and works from
/// 1.5.5; a ClusterIP Service works on every release.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inst_04_a_load_balancer_service_for_burst_pods_is_refused_before_1_5_5_and_works_from_it()
{
    assert_passes("INST-04").await;
}
