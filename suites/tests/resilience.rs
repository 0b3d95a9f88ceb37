//! R: resilience. Its own test binary (so its own cluster and engine): these scenarios kill and
//! restart shared components.

use burstcert::catalogue::assert_passes;

/// the engine killed mid-burst of 100 pods and restarted: all Running, one CCI pod each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r_01_engine_killed_mid_burst_of_100_pods_restarts_to_exactly_one_cci_pod_each() {
    assert_passes("R-01").await;
}
