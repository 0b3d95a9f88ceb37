//! UP: upgrade and rollback of the add-on (BEHAVIOR.md §9) with burst pods running. The bodies
//! serialize themselves and return the add-on to its installed release afterwards.

use burstcert::catalogue::assert_passes;

/// UP-01: 1.5.17 → 1.5.18 keeps every burst pod (same UIDs on both sides); only new pods get the
/// new sidecar.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_01_an_upgrade_keeps_burst_pods_and_gives_only_new_pods_the_new_sidecar() {
    assert_passes("UP-01").await;
}

/// UP-02: after a rollback below 1.5.18, pods burst under 1.5.18 cannot reach Services until the
/// add-on is upgraded again or they are recreated.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_02_a_rollback_cuts_new_sidecar_pods_off_services_until_upgrade_or_recreation() {
    assert_passes("UP-02").await;
}

/// UP-03: pods created all through an upgrade are all admitted and all mutated.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_03_the_webhook_never_lapses_during_an_upgrade() {
    assert_passes("UP-03").await;
}
