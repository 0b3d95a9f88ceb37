//! VOL: the volume matrix (BEHAVIOR.md §5), against a real local control plane, the webhook and
//! the mock CCI.

use burstcert::catalogue::assert_passes;

/// VOL-08: flexVolume and local volumes are refused, naming the volume.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vol_08_flexvolume_and_local_volumes_are_refused_naming_the_volume() {
    assert_passes("VOL-08").await;
}

/// VOL-01: a mounted ConfigMap is mirrored with equal data and its update reaches CCI.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vol_01_a_mounted_configmap_is_mirrored_and_its_update_reaches_cci() {
    assert_passes("VOL-01").await;
}

/// VOL-02: a mounted Secret is mirrored and its data appears in no engine log or event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vol_02_a_mounted_secret_is_mirrored_and_never_logged() {
    assert_passes("VOL-02").await;
}
