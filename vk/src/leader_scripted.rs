//! The leader election's Lease reads and writes against a scripted API server (the
//! `scripted-api` crate): each test runs one attempt, an election, a hold or a release, and
//! checks the requests it sends, in order, and the bodies that matter (who holds the lease, at
//! which resourceVersion, renewed when). The pure half ([`step`]) is table-tested beside it; the
//! cluster test (`harness/tests/leader_election.rs`) keeps the end-to-end truth with two real
//! candidates. Waits run on tokio's paused clock; expiry is judged against the wall clock, so
//! leases are stamped relative to it.

use http::Method;
use rstest::rstest;
use scripted_api::{Expect, Handle, expect, failure, scripted, scripted_within};
use serde_json::{Value, json};

use super::*;

const LEASE: &str = "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/vk";
const LEASES: &str = "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases";

/// The election on `kube-system/vk` as `me`, with the default timings (15 s, 10 s, 2 s).
fn election() -> LeaderElection {
    LeaderElection::new("kube-system", "vk", "me")
}

fn on_script() -> (Client, Handle) {
    scripted_api::client()
}

/// The lease at resourceVersion `version`, held by `holder` (empty: released), acquired an hour
/// ago, renewed `renewed_ago` ago for 15 s, after `transitions` transitions.
fn lease(version: &str, holder: &str, renewed_ago: Duration, transitions: i32) -> Value {
    let now = Timestamp::now();
    json!(Lease {
        metadata: ObjectMeta {
            name: Some("vk".into()),
            namespace: Some("kube-system".into()),
            resource_version: Some(version.into()),
            ..ObjectMeta::default()
        },
        spec: Some(LeaseSpec {
            holder_identity: Some(holder.into()),
            lease_duration_seconds: Some(15),
            acquire_time: Some(MicroTime(now - Duration::from_secs(3600))),
            renew_time: Some(MicroTime(now - renewed_ago)),
            lease_transitions: Some(transitions),
            ..LeaseSpec::default()
        }),
    })
}

/// A lease another replica (`pod-b`) renewed just now: valid for 15 s yet.
fn theirs(version: &str) -> Value {
    lease(version, "pod-b", Duration::ZERO, 2)
}

/// A lease `pod-b` stopped renewing a minute ago: expired.
fn expired(version: &str) -> Value {
    lease(version, "pod-b", Duration::from_secs(60), 2)
}

/// Our own lease, renewed 5 s ago.
fn ours(version: &str) -> Value {
    lease(version, "me", Duration::from_secs(5), 2)
}

fn get(status: u16, answer: Value) -> Expect {
    expect(Method::GET, LEASE, status, answer)
}

/// The replace of the lease, echoed (200) or refused with a `Status` of `status`.
fn put(status: u16) -> Expect {
    let answer = match status {
        200 => Value::Null,
        409 => failure(409, "Conflict"),
        _ => failure(status, "InternalError"),
    };
    expect(Method::PUT, LEASE, status, answer)
}

/// The written lease's spec, and whether its time `field` lies between `before` and now (to the
/// microsecond a `MicroTime` keeps).
fn stamped_since(body: &Value, field: &str, before: Timestamp) -> bool {
    let spec: LeaseSpec = serde_json::from_value(body["spec"].clone()).unwrap();
    let time = match field {
        "renewTime" => spec.renew_time,
        "acquireTime" => spec.acquire_time,
        _ => unreachable!("{field}"),
    };
    let time = time.expect("the time is set").0;
    time >= before - Duration::from_micros(1) && time <= Timestamp::now()
}

#[tokio::test]
async fn a_free_lease_is_created_naming_the_candidate_with_no_transition() {
    let (client, mut api) = on_script();
    let before = Timestamp::now();
    let (leading, bodies) = scripted(
        &mut api,
        election().try_acquire(&client),
        vec![
            get(404, failure(404, "NotFound")),
            expect(Method::POST, LEASES, 201, Value::Null),
        ],
    )
    .await;
    assert_eq!(leading.unwrap(), None, "the lease is ours");
    let created = &bodies[1];
    assert_eq!(created["metadata"]["name"], "vk");
    assert_eq!(created["spec"]["holderIdentity"], "me");
    assert_eq!(created["spec"]["leaseDurationSeconds"], 15);
    assert_eq!(created["spec"]["leaseTransitions"], 0);
    assert!(stamped_since(created, "renewTime", before), "{created}");
    assert!(stamped_since(created, "acquireTime", before), "{created}");
}

#[rstest]
#[case::released_by_its_holder(lease("41", "", Duration::from_secs(1), 2))]
#[case::expired(expired("41"))]
#[tokio::test]
async fn a_released_or_expired_lease_is_taken_over_at_its_resource_version_counting_a_transition(
    #[case] found: Value,
) {
    let (client, mut api) = on_script();
    let before = Timestamp::now();
    let (leading, bodies) = scripted(
        &mut api,
        election().try_acquire(&client),
        vec![get(200, found), put(200)],
    )
    .await;
    assert_eq!(leading.unwrap(), None, "the lease is ours");
    let taken = &bodies[1];
    assert_eq!(taken["metadata"]["resourceVersion"], "41");
    assert_eq!(taken["spec"]["holderIdentity"], "me");
    assert_eq!(taken["spec"]["leaseTransitions"], 3);
    assert!(stamped_since(taken, "acquireTime", before), "{taken}");
    assert!(stamped_since(taken, "renewTime", before), "{taken}");
}

#[tokio::test]
async fn the_leader_renews_its_lease_at_its_resource_version_keeping_its_acquire_time_and_transitions()
 {
    let (client, mut api) = on_script();
    let found = ours("41");
    let before = Timestamp::now();
    let (leading, bodies) = scripted(
        &mut api,
        election().try_acquire(&client),
        vec![get(200, found.clone()), put(200)],
    )
    .await;
    assert_eq!(leading.unwrap(), None, "the lease is still ours");
    let renewed = &bodies[1];
    assert_eq!(renewed["metadata"]["resourceVersion"], "41");
    assert_eq!(renewed["spec"]["holderIdentity"], "me");
    assert_eq!(renewed["spec"]["leaseDurationSeconds"], 15);
    assert!(stamped_since(renewed, "renewTime", before), "{renewed}");
    assert_eq!(renewed["spec"]["acquireTime"], found["spec"]["acquireTime"]);
    assert_eq!(renewed["spec"]["leaseTransitions"], 2);
}

#[tokio::test]
async fn a_lease_another_replica_holds_and_renews_is_left_alone_and_reported_with_its_time_left() {
    let (client, mut api) = on_script();
    let (found, _) = scripted(
        &mut api,
        election().try_acquire(&client),
        vec![get(200, theirs("41"))],
    )
    .await;
    let (holder, left) = found.unwrap().expect("someone else holds the lease");
    assert_eq!(holder, "pod-b");
    assert!(
        left > Duration::from_secs(14) && left <= Duration::from_secs(15),
        "{left:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_candidate_retries_transient_errors_and_conflicts_and_waits_for_the_holder_until_the_lease_is_free()
 {
    let (client, mut api) = on_script();
    let started = tokio::time::Instant::now();
    let (leadership, bodies) = scripted_within(
        Duration::from_secs(60),
        &mut api,
        election().acquire(&client),
        vec![
            get(503, failure(503, "ServiceUnavailable")),
            get(200, expired("41")),
            put(409), // pod-b renewed it meanwhile
            get(200, theirs("42")),
            get(200, lease("43", "", Duration::from_secs(1), 3)), // pod-b released it
            put(200),
        ],
    )
    .await;
    leadership.expect("leading at last");
    assert_eq!(bodies[2]["metadata"]["resourceVersion"], "41");
    assert_eq!(bodies[5]["metadata"]["resourceVersion"], "43");
    assert_eq!(bodies[5]["spec"]["holderIdentity"], "me");
    // One retry period after each of the three attempts that did not lead.
    assert_eq!(started.elapsed(), 3 * DEFAULT_RETRY_PERIOD);
}

/// An API refusal waiting cannot cure (no RBAC on leases).
fn forbidden() -> Value {
    failure(403, "Forbidden")
}

#[rstest]
#[case::reading_it(vec![get(403, forbidden())], "read lease kube-system/vk")]
#[case::creating_it(
    vec![get(404, failure(404, "NotFound")), expect(Method::POST, LEASES, 403, forbidden())],
    "write lease kube-system/vk"
)]
#[case::replacing_it(
    vec![get(200, expired("41")), expect(Method::PUT, LEASE, 403, forbidden())],
    "write lease kube-system/vk"
)]
#[tokio::test(start_paused = true)]
async fn a_refusal_ends_the_election_at_once_naming_the_lease(
    #[case] script: Vec<Expect>,
    #[case] context: &str,
) {
    let (client, mut api) = on_script();
    let (result, _) = scripted(&mut api, election().acquire(&client), script).await;
    let error = result.expect_err("a 403 is not retried");
    assert!(!error.is_retryable());
    assert_eq!(error.to_string(), format!("kubernetes api: {context}"));
}

fn leadership(client: Client) -> Leadership {
    Leadership {
        client,
        election: election(),
    }
}

#[tokio::test(start_paused = true)]
async fn the_leader_that_finds_another_holder_stops_leading_at_once_naming_it() {
    let (client, mut api) = on_script();
    let started = tokio::time::Instant::now();
    let (lost, bodies) = scripted_within(
        Duration::from_secs(60),
        &mut api,
        leadership(client).hold(),
        vec![
            get(200, ours("41")),
            put(200),
            get(200, ours("42")),
            put(409), // taken meanwhile: not lost yet, the next read tells
            get(200, theirs("43")),
        ],
    )
    .await;
    assert_eq!(bodies[1]["metadata"]["resourceVersion"], "41");
    assert_eq!(bodies[3]["metadata"]["resourceVersion"], "42");
    assert_eq!(
        lost.to_string(),
        "virtual kubelet stopped: lost the leadership of lease kube-system/vk: pod-b holds it now"
    );
    assert_eq!(started.elapsed(), 3 * DEFAULT_RETRY_PERIOD);
}

#[tokio::test(start_paused = true)]
async fn the_leader_keeps_leading_through_failed_renewals_until_the_renew_deadline_since_the_last_success()
 {
    let (client, mut api) = on_script();
    let started = tokio::time::Instant::now();
    let unavailable = || get(503, failure(503, "ServiceUnavailable"));
    let (lost, _) = scripted_within(
        Duration::from_secs(60),
        &mut api,
        leadership(client).hold(),
        // Renewed at 2 s; failing at 4, 6, 8, 10 s (under the 10 s deadline) and at 12 s.
        vec![
            get(200, ours("41")),
            put(200),
            unavailable(),
            unavailable(),
            unavailable(),
            unavailable(),
            unavailable(),
        ],
    )
    .await;
    assert_eq!(
        started.elapsed(),
        DEFAULT_RETRY_PERIOD + DEFAULT_RENEW_DEADLINE
    );
    let lost = lost.to_string();
    assert!(
        lost.starts_with(
            "virtual kubelet stopped: lost the leadership of lease kube-system/vk: not renewed for 10s"
        ),
        "{lost}"
    );
}

#[tokio::test]
async fn release_clears_the_holder_at_the_leases_resource_version_and_keeps_the_rest() {
    let (client, mut api) = on_script();
    let found = ours("41");
    let ((), bodies) = scripted(
        &mut api,
        leadership(client).release(),
        vec![get(200, found.clone()), put(200)],
    )
    .await;
    let released = &bodies[1];
    assert_eq!(released["metadata"]["resourceVersion"], "41");
    assert_eq!(released["spec"]["holderIdentity"], Value::Null);
    let mut rest = released["spec"].clone();
    let mut was = found["spec"].clone();
    rest.as_object_mut().unwrap().remove("holderIdentity");
    was.as_object_mut().unwrap().remove("holderIdentity");
    assert_eq!(rest, was);
}

/// What giving the lease up comes to, as `Ok(released)` or the error's message.
#[rstest]
#[case::ours(vec![get(200, ours("41")), put(200)], Ok(true))]
#[case::gone(vec![get(404, failure(404, "NotFound"))], Ok(false))]
#[case::another_holders(vec![get(200, theirs("41"))], Ok(false))]
#[case::released_already(vec![get(200, lease("41", "", Duration::from_secs(1), 2))], Ok(false))]
#[case::renewed_or_taken_meanwhile(vec![get(200, ours("41")), put(409)], Ok(false))]
#[case::unreadable(
    vec![get(503, failure(503, "ServiceUnavailable"))],
    Err("kubernetes api: read lease kube-system/vk")
)]
#[case::refused(
    vec![get(200, ours("41")), put(500)],
    Err("kubernetes api: release lease kube-system/vk")
)]
#[tokio::test]
async fn release_gives_up_only_our_own_lease_and_a_conflict_is_nothing_to_give_up(
    #[case] script: Vec<Expect>,
    #[case] expected: Result<bool, &str>,
) {
    let (client, mut api) = on_script();
    let (outcome, _) = scripted(&mut api, leadership(client).give_up(), script).await;
    let outcome = outcome.map_err(|e| e.to_string());
    assert_eq!(outcome, expected.map_err(str::to_owned));
}
