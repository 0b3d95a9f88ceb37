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
