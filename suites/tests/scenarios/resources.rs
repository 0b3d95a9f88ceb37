//! RES: pod sizes and flavours (BEHAVIOR.md §4), against a real local control plane, the webhook
//! and the mock CCI.

use burstcert::catalogue::assert_passes;

/// RES-02: pod-size-specs pins the CCI size; a value that is no flavour or too small is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn res_02_pod_size_specs_pins_the_flavour_and_bad_pins_are_refused() {
    assert_passes("RES-02").await;
}

/// RES-01: requests/limits (init containers included) round up to the expected flavour, on the
/// CCI pod and on the cluster pod's annotations.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn res_01_requests_and_limits_round_up_to_the_expected_flavour_and_annotations() {
    assert_passes("RES-01").await;
}

/// RES-03: a pod bigger than every flavour is bound to the virtual node, gets a Warning event
/// naming the numbers, and never reaches CCI.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn res_03_a_pod_bigger_than_every_flavour_gets_a_warning_event_and_nothing_on_cci() {
    assert_passes("RES-03").await;
}
