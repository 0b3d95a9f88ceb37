//! UN: uninstalling the add-on (BEHAVIOR.md §8): gc jobs on a real control plane, the add-on's
//! pods on the host node, the mock CCI as the cloud side. The bodies serialize themselves and
//! reinstall the add-on afterwards.

use burstcert::catalogue::assert_passes;

/// UN-01: a normal uninstall removes everything of the add-on and its CCI namespace, and leaves
/// another cluster's CCI namespace alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn un_01_a_normal_uninstall_leaves_nothing_of_the_addon_and_touches_no_other_cluster() {
    assert_passes("UN-01").await;
}

/// UN-02: with no schedulable node, uninstall fails as DeleteFailed with CCI intact, and succeeds
/// once a node is schedulable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn un_02_without_a_schedulable_node_uninstall_fails_and_later_succeeds() {
    assert_passes("UN-02").await;
}

/// UN-03: a wrong registry fails the gc jobs; uninstall again and delete both jobs within 210 s
/// completes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn un_03_a_wrong_registry_fails_uninstall_until_the_gc_jobs_are_deleted_by_hand() {
    assert_passes("UN-03").await;
}

/// UN-04: a cluster deleted without uninstall leaves billable pods on CCI; `cci purge` removes them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn un_04_what_a_deleted_cluster_left_on_cci_is_removed_by_the_purge_command() {
    assert_passes("UN-04").await;
}
