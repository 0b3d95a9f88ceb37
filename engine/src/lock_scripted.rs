//! The node lock's reads and writes against a scripted API server (the `scripted-api` crate):
//! `engage` patches the lock onto the node, `step` reads the node and waits for, releases or
//! drops its lock as [`decide`] says, and `run` looks again at once when `engage` wakes it. Each
//! test checks the requests sent, in order, their bodies, and the wait returned. The pure half
//! (`decide`, the patches, `lock_end`) is table-tested in `lock.rs`; the cluster tier
//! (LOCK-01..03) keeps the end-to-end truth. Lock ends are judged against the wall clock
//! (`Timestamp::now()`), so the nodes' are stamped relative to it, with seconds of margin.

use std::sync::Arc;

use futures::FutureExt;
use http::Method;
use k8s_openapi::jiff::SignedDuration;
use rstest::rstest;
use scripted_api::{Expect, Handle, expect, failure, scripted};
use serde_json::{Value, json};

use super::*;

const NAME: &str = "bursting-node";
const NODE: &str = "/api/v1/nodes/bursting-node";
/// The lock's duration in these tests.
const DURATION: Duration = Duration::from_secs(300);
/// The node's resourceVersion on the scripted server.
const RV: &str = "42";

/// The lock of node `bursting-node` on a scripted API server, and the server's handle.
fn node_lock() -> (NodeLock, Handle) {
    let (client, api) = scripted_api::client();
    (NodeLock::new(client, NAME, DURATION), api)
}

/// The node as the API server has it, at [`RV`]: locked until `until` if any, its
/// `spec.unschedulable` `cordoned` if any.
fn node(until: Option<Timestamp>, cordoned: Option<bool>) -> Value {
    let mut node = json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": NAME, "resourceVersion": RV},
        "spec": {},
    });
    if let Some(until) = until {
        node["metadata"]["annotations"] = json!({ ANNOTATION_LOCKED_UNTIL: until.to_string() });
    }
    if let Some(cordoned) = cordoned {
        node["spec"]["unschedulable"] = cordoned.into();
    }
    node
}

/// `secs` seconds from now on the wall clock (negative: ago).
fn from_now(secs: i64) -> Timestamp {
    Timestamp::now() + SignedDuration::from_secs(secs)
}

/// The read of the node, answered with [`node`]`(until, cordoned)`.
fn read(until: Option<Timestamp>, cordoned: Option<bool>) -> Expect {
    expect(Method::GET, NODE, 200, node(until, cordoned))
}

/// One `engage` whose patch is answered by `answer`: the lock and the patch's body.
async fn engage(answer: Expect) -> (NodeLock, Value) {
    let (lock, mut api) = node_lock();
    let ((), mut bodies) = scripted(&mut api, lock.engage(), vec![answer]).await;
    (lock, bodies.remove(0))
}

/// One `step` answered by `script`: the wait it returned and the request bodies.
async fn step(script: Vec<Expect>) -> (Duration, Vec<Value>) {
    let (lock, mut api) = node_lock();
    scripted(&mut api, lock.step(), script).await
}

#[tokio::test]
async fn engaging_patches_the_lock_end_and_the_cordon_onto_the_node_and_wakes_the_lock_task() {
    let earliest = lock_end(Timestamp::now(), DURATION);
    let (lock, patch) = engage(expect(
        Method::PATCH,
        NODE,
        200,
        node(Some(earliest), Some(true)),
    ))
    .await;
    let latest = lock_end(Timestamp::now(), DURATION);
    let text = patch["metadata"]["annotations"][ANNOTATION_LOCKED_UNTIL]
        .as_str()
        .expect("the lock end");
    let until: Timestamp = text.parse().expect("an RFC 3339 time");
    assert!(
        earliest <= until && until <= latest,
        "{until} is not {DURATION:?} from now ({earliest}..={latest})"
    );
    assert_eq!(
        patch,
        json!({
            "metadata": {"annotations": {ANNOTATION_LOCKED_UNTIL: text}},
            "spec": {"unschedulable": true},
        })
    );
    assert!(
        lock.wake.notified().now_or_never().is_some(),
        "the lock task is woken to wait for the new end"
    );
}

#[tokio::test]
async fn a_lock_the_api_server_refuses_is_only_logged_and_wakes_nothing() {
    let (lock, patch) = engage(expect(
        Method::PATCH,
        NODE,
        500,
        failure(500, "InternalError"),
    ))
    .await;
    assert_eq!(patch["spec"]["unschedulable"], true);
    assert!(
        lock.wake.notified().now_or_never().is_none(),
        "no lock was taken: the lock task sleeps on"
    );
}

#[rstest]
#[case::a_missing_node_is_looked_for_again_later(404, failure(404, "NotFound"), RECHECK)]
#[case::a_failed_read_is_tried_again_soon(500, failure(500, "InternalError"), RETRY)]
#[case::a_cordon_without_a_lock_is_an_operators_and_left_alone(
    200,
    node(None, Some(true)),
    RECHECK
)]
#[case::a_lock_ending_after_the_next_look_is_looked_at_again_then(
    200,
    node(Some(from_now(3600)), Some(true)),
    RECHECK
)]
#[tokio::test]
async fn a_look_with_nothing_to_write_writes_nothing_and_says_when_to_look_again(
    #[case] status: u16,
    #[case] answer: Value,
    #[case] next_look: Duration,
) {
    let (wait, _) = step(vec![expect(Method::GET, NODE, status, answer)]).await;
    assert_eq!(wait, next_look);
}

#[tokio::test]
async fn a_running_lock_is_waited_for_until_its_end() {
    let (wait, _) = step(vec![read(Some(from_now(5)), Some(true))]).await;
    assert!(
        Duration::from_secs(3) < wait && wait <= Duration::from_secs(5),
        "5 s left, waits {wait:?}"
    );
}

#[tokio::test]
async fn an_ended_lock_is_released_in_one_patch_at_the_nodes_resource_version() {
    let (wait, bodies) = step(vec![
        read(Some(from_now(-60)), Some(true)),
        expect(Method::PATCH, NODE, 200, node(None, None)),
    ])
    .await;
    assert_eq!(
        bodies[1],
        json!({
            "metadata": {"annotations": {ANNOTATION_LOCKED_UNTIL: null}, "resourceVersion": RV},
            "spec": {"unschedulable": null},
        })
    );
    assert_eq!(wait, Duration::ZERO);
}

#[tokio::test]
async fn a_lock_uncordoned_by_hand_is_dropped_and_the_node_not_cordoned_again() {
    let (wait, bodies) = step(vec![
        read(Some(from_now(600)), Some(false)),
        expect(Method::PATCH, NODE, 200, node(None, Some(false))),
    ])
    .await;
    assert_eq!(
        bodies[1],
        json!({"metadata": {"annotations": {ANNOTATION_LOCKED_UNTIL: null}, "resourceVersion": RV}}),
        "the annotation dropped, the spec untouched"
    );
    assert_eq!(wait, Duration::ZERO);
}

#[tokio::test]
async fn a_release_that_lost_a_race_with_another_write_is_tried_again_soon() {
    let (wait, _) = step(vec![
        read(Some(from_now(-60)), Some(true)),
        expect(Method::PATCH, NODE, 409, failure(409, "Conflict")),
    ])
    .await;
    assert_eq!(wait, RETRY);
}

/// Real clock (a paused one would never advance past a task that does not sleep): the task's
/// next look after an unlocked node is [`RECHECK`] away, and the test waits half of that.
#[tokio::test]
async fn engaging_wakes_the_lock_task_to_look_at_the_node_at_once() {
    let (lock, mut api) = node_lock();
    let lock = Arc::new(lock);
    let run = lock.clone().run();
    tokio::pin!(run);
    // The task's first look finds no lock; then CCI is sold out. NB: `biased` polls the task
    // first, so its read reaches the server (through the client's queue) before the lock's patch.
    let ((), bodies) = scripted(
        &mut api,
        async {
            tokio::select! {
                biased;
                () = &mut run => panic!("the lock task returned; it runs forever"),
                () = lock.engage() => {}
            }
        },
        vec![
            read(None, None),
            expect(
                Method::PATCH,
                NODE,
                200,
                node(Some(from_now(300)), Some(true)),
            ),
        ],
    )
    .await;
    assert_eq!(bodies[1]["spec"]["unschedulable"], true);
    // Woken, it reads the node again at once, not RECHECK after its first look.
    let (second, _unanswered) = tokio::time::timeout(RECHECK / 2, async {
        tokio::select! {
            biased;
            () = &mut run => panic!("the lock task returned; it runs forever"),
            next = api.next_request() => next.expect("the client is gone"),
        }
    })
    .await
    .expect("the lock task looks again within RECHECK / 2 of the lock");
    assert_eq!((second.method(), second.uri().path()), (&Method::GET, NODE));
}
