//! `vk::leader` against a real local API server: one leader at a time, a successor when the
//! leader stops renewing, at once when it gives the lease up or restarts under the same
//! identity, and a leader that finds another holder knows it lost.
//!
//! Timings are shortened (lease 5 s, renew deadline 3 s, retry 250 ms); every wait has a
//! deadline that separates the outcomes (e.g. "taken at once" is well under the 5 s expiry).

use std::time::{Duration, Instant};

use burstcert::cluster::{ClusterProvider as _, client_for};
use burstcert::progress::Progress;
use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use vk::leader::LeaderElection;

const NAMESPACE: &str = "default";
const LEASE: &str = "leader-test";
const DURATION: Duration = Duration::from_secs(5);

fn candidate(identity: &str) -> LeaderElection {
    LeaderElection {
        lease_duration: DURATION,
        renew_deadline: Duration::from_secs(3),
        retry_period: Duration::from_millis(250),
        ..LeaderElection::new(NAMESPACE, LEASE, identity)
    }
}

async fn holder(leases: &Api<Lease>) -> Option<String> {
    leases
        .get(LEASE)
        .await
        .unwrap()
        .spec
        .and_then(|s| s.holder_identity)
}

#[tokio::test(flavor = "multi_thread")]
async fn one_replica_leads_at_a_time_and_another_takes_over_when_it_stops() {
    let cluster = tokio::task::spawn_blocking(|| {
        crate::throwaway_cluster(&Progress::quiet()).expect("local cluster")
    })
    .await
    .unwrap();
    let client = client_for(cluster.kubeconfig()).await.unwrap();
    let leases: Api<Lease> = Api::namespaced(client.clone(), NAMESPACE);

    // A takes the free lease and keeps renewing it.
    let a = tokio::time::timeout(Duration::from_secs(10), candidate("a").acquire(&client))
        .await
        .expect("a free lease is taken at once")
        .unwrap();
    assert_eq!(holder(&leases).await.as_deref(), Some("a"));
    let renewing = tokio::spawn({
        let a = a.clone();
        async move { a.hold().await }
    });

    // B waits as long as A renews: more than a whole lease duration.
    let waited = tokio::time::timeout(DURATION * 2, candidate("b").acquire(&client)).await;
    assert!(waited.is_err(), "b led while a renewed the lease");
    assert_eq!(holder(&leases).await.as_deref(), Some("a"));

    // A stops renewing without giving the lease up (a crash): B takes it once it expires.
    renewing.abort();
    let started = Instant::now();
    let b = tokio::time::timeout(DURATION * 3, candidate("b").acquire(&client))
        .await
        .expect("b takes the lease after it expires")
        .unwrap();
    assert_eq!(holder(&leases).await.as_deref(), Some("b"));
    eprintln!("b took over after {:?}", started.elapsed());

    // A, still thinking it leads, finds B's name on its next renewal and stops.
    let lost = tokio::time::timeout(Duration::from_secs(3), a.hold())
        .await
        .expect("a notices within a renewal or two");
    assert!(
        lost.to_string().contains("b holds it"),
        "unexpected reason: {lost}"
    );
    assert_eq!(
        holder(&leases).await.as_deref(),
        Some("b"),
        "a wrote nothing"
    );

    // B gives the lease up (a signal): C takes it at once, well before it would expire.
    b.release().await;
    let started = Instant::now();
    let _c = tokio::time::timeout(DURATION / 2, candidate("c").acquire(&client))
        .await
        .expect("a released lease is taken at once")
        .unwrap();
    eprintln!("c took the released lease after {:?}", started.elapsed());
    assert_eq!(holder(&leases).await.as_deref(), Some("c"));

    // C's container restarts in the same pod (same identity): it leads again at once.
    let _c_again = tokio::time::timeout(DURATION / 2, candidate("c").acquire(&client))
        .await
        .expect("the same identity renews its own lease at once")
        .unwrap();
    let transitions = leases
        .get(LEASE)
        .await
        .unwrap()
        .spec
        .and_then(|s| s.lease_transitions);
    // a took it (0), b took it over (1), c took the released lease (2); c's restart renewed.
    assert_eq!(transitions, Some(2));
    drop(cluster);
}
