//! HP: the hostPath replacement annotation (BEHAVIOR.md §6), against a real local control plane,
//! the webhook and the mock CCI.

use burstcert::catalogue::assert_passes;

/// HP-07: a malformed annotation, an unknown policyType or a bad sizeLimit is refused, quoting it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hp_07_bad_hostpath_replacement_annotations_are_refused_quoting_the_entry() {
    assert_passes("HP-07").await;
}

/// HP-01: the seed's hostPath Deployment bursts and runs; snapshot of the CCI pod's volumes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hp_01_the_seeds_hostpath_deployment_bursts_with_its_replacements() {
    assert_passes("HP-01").await;
}

/// HP-02: one hostPath named replaceByEmptyDir becomes an emptyDir of that size on CCI.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hp_02_a_named_replace_by_emptydir_policy_turns_the_hostpath_into_an_emptydir() {
    assert_passes("HP-02").await;
}

/// HP-03: one hostPath named remove is gone from the CCI pod with its mount.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hp_03_a_named_remove_policy_drops_the_hostpath_and_its_mount() {
    assert_passes("HP-03").await;
}

/// HP-04: `*` with remove drops every hostPath.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hp_04_a_star_remove_policy_drops_every_hostpath() {
    assert_passes("HP-04").await;
}

/// HP-05: `*` leaves an /etc/localtime hostPath alone (refused before 1.5.9, runs from 1.5.9).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hp_05_a_star_policy_leaves_etc_localtime_alone() {
    assert_passes("HP-05").await;
}

/// HP-06: a policy naming the /etc/localtime volume replaces it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hp_06_a_policy_naming_etc_localtime_replaces_it() {
    assert_passes("HP-06").await;
}
