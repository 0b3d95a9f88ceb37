//! NET: network interconnect (BEHAVIOR.md §10), judged by the mock CCI's network model (a CCI
//! pod reaches a cluster Service only through a registered proxy speaking its sidecar protocol).

use burstcert::catalogue::assert_passes;

/// NET-01: with interconnect, a CCI pod reaches a cluster Service through the proxy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn net_01_with_interconnect_a_cci_pod_reaches_a_cluster_service() {
    assert_passes("NET-01").await;
}

/// NET-02: without interconnect, it cannot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn net_02_without_interconnect_a_cci_pod_cannot_reach_a_cluster_service() {
    assert_passes("NET-02").await;
}
