//! VOL: the volume matrix (BEHAVIOR.md §5), against a real local control plane, the webhook and
//! the mock CCI.

use burstcert::catalogue::assert_passes;

/// VOL-08: flexVolume and local volumes are refused, naming the volume.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vol_08_flexvolume_and_local_volumes_are_refused_naming_the_volume() {
    assert_passes("VOL-08").await;
}
