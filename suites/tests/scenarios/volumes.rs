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

/// VOL-03: emptyDir runs plain, at 1Gi and at 10 × the started cores; subPath, 1536Mi and more
/// than 10 × the cores are refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vol_03_emptydir_runs_within_its_limits_and_is_refused_beyond_them() {
    assert_passes("VOL-03").await;
}

/// VOL-04: a downwardAPI volume is refused before 1.3.25 and runs on CCI from 1.3.25.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vol_04_downward_api_volumes_follow_the_1_3_25_gate() {
    assert_passes("VOL-04").await;
}

/// VOL-05: a projected serviceAccountToken source follows the 1.3.25 gate; on CCI it is the
/// service account's long-lived token Secret, without expirationSeconds or audience.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vol_05_a_projected_service_account_token_becomes_the_long_lived_token_secret_on_cci() {
    assert_passes("VOL-05").await;
}

/// VOL-06: claims of SFS and SFS Turbo CSI classes run; EVS, OBS and non-CSI classes are refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vol_06_only_sfs_and_sfs_turbo_claims_through_csi_reach_cci() {
    assert_passes("VOL-06").await;
}

/// VOL-07: a hostPath is refused; /etc/localtime follows the 1.5.9 gate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vol_07_hostpaths_are_refused_except_etc_localtime_from_1_5_9() {
    assert_passes("VOL-07").await;
}
