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

/// INST-01: a cluster subnet overlapping 10.247.0.0/16 is refused with both CIDRs named, and
/// nothing is created or changed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inst_01_a_subnet_overlapping_the_cci_service_cidr_is_refused_and_nothing_is_created() {
    assert_passes("INST-01").await;
}

/// INST-02: up to 1.5.37 the add-on's pods keep off Arm nodes, and an all-Arm cluster is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inst_02_the_addon_avoids_arm_nodes_and_refuses_a_cluster_of_only_arm_nodes() {
    assert_passes("INST-02").await;
}

/// INST-03: `single` needs 7 free pod slots on a node (8 with interconnect), `ha` two such nodes;
/// otherwise install is refused with the numbers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inst_03_install_is_refused_with_the_numbers_when_nodes_lack_pod_room() {
    assert_passes("INST-03").await;
}

/// INST-05: with Volcano 1.17.10 installed, a pod Volcano schedules with an SFS claim stays off
/// CCI with an event explaining why; with 1.17.11 it bursts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inst_05_volcano_up_to_1_17_10_keeps_pods_with_cloud_storage_off_cci_with_an_event() {
    assert_passes("INST-05").await;
}
