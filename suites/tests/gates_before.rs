//! The other side of the release gates: the gated scenarios at 1.3.24, a release before every
//! gate of `burst_rules::release` (VOL-04/VOL-05 refused before 1.3.25, VOL-07/HP-05's
//! /etc/localtime refused before 1.5.9, INST-04's LoadBalancer Service refused before 1.5.5).
//! The other suites run 1.5.18, after them. This binary brings up its own environment at 1.3.24.

use burstcert::catalogue::assert_passes;

/// The release this binary certifies, before every gate.
const BEFORE_EVERY_GATE: &str = "1.3.24";

async fn at_1_3_24(id: &str) {
    assert!(
        burstcert::env::configure_release(BEFORE_EVERY_GATE),
        "this binary runs the engine as {BEFORE_EVERY_GATE} only"
    );
    assert_passes(id).await;
}

/// VOL-04 at 1.3.24: a downwardAPI volume is refused, naming the gate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vol_04_a_downward_api_volume_is_refused_before_1_3_25() {
    at_1_3_24("VOL-04").await;
}

/// VOL-05 at 1.3.24: a projected serviceAccountToken volume is refused, naming the gate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vol_05_a_projected_token_volume_is_refused_before_1_3_25() {
    at_1_3_24("VOL-05").await;
}

/// VOL-07 at 1.3.24: hostPath /etc/localtime is refused like any hostPath.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vol_07_etc_localtime_is_refused_before_1_5_9() {
    at_1_3_24("VOL-07").await;
}

/// HP-05 at 1.3.24: `*` with remove does not save an /etc/localtime hostPath.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hp_05_star_does_not_save_etc_localtime_before_1_5_9() {
    at_1_3_24("HP-05").await;
}

/// INST-04 at 1.3.24: a LoadBalancer Service selecting burst pods is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inst_04_a_load_balancer_service_for_burst_pods_is_refused_before_1_5_5() {
    at_1_3_24("INST-04").await;
}
