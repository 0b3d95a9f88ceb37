//! R: resilience. Its own test binary (so its own cluster and engine): these scenarios kill and
//! restart shared components.

use burstcert::catalogue::assert_passes;

/// The scenarios of this binary kill or disturb shared components (the engine, CCI, the API
/// server), so they take turns: one's disturbance must not fail another.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// the engine killed mid-burst of 100 pods and restarted: all Running, one CCI pod each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r_01_engine_killed_mid_burst_of_100_pods_restarts_to_exactly_one_cci_pod_each() {
    let _turn = SERIAL.lock().await;
    assert_passes("R-01").await;
}

/// CCI failing half the pod creations and answering slowly: a 5-replica Deployment
/// converges once the faults are cleared; scaled to 8 while CCI applies creations but loses the
/// answers, it still ends with one CCI pod per cluster pod.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r_02_cci_5xx_and_slow_for_a_while_then_five_pods_converge_without_duplicates() {
    let _turn = SERIAL.lock().await;
    assert_passes("R-02").await;
}

/// the API server restarted: the engine reconnects, the lease is renewed, pods untouched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r_03_api_server_restart_keeps_the_lease_renewed_and_the_burst_pods_untouched() {
    let _turn = SERIAL.lock().await;
    assert_passes("R-03").await;
}
