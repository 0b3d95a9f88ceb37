//! WL-04, WL-05: Jobs and CronJobs, against a real local control plane and the mock CCI.

use burstcert::catalogue::assert_passes;

/// WL-04: the seed's Job fails on its deadline leaving nothing on CCI, and without it
/// completes 50 with never more than 5 pods active on CCI.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wl_04_the_seeds_job_fails_on_its_deadline_and_otherwise_completes_50_five_at_a_time() {
    assert_passes("WL-04").await;
}

/// WL-05: a batch/v1beta1 CronJob is refused naming the version; as batch/v1 its Jobs burst.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wl_05_a_batch_v1beta1_cronjob_is_refused_by_version_and_as_batch_v1_its_jobs_burst() {
    assert_passes("WL-05").await;
}
