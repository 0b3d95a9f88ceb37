//! Watching pods: newline-delimited watch events that arrive when the change falls due.

use crate::common;

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Method, StatusCode};
use common::*;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tokio::time::{Instant, timeout};
use tower::ServiceExt;

const PATIENCE: Duration = Duration::from_secs(600);

/// The lines of a watch response.
struct Watch {
    body: Body,
    buffer: Vec<u8>,
}

impl Watch {
    async fn open(app: &Router, query: &str, token: &str) -> Result<Watch, Reply> {
        let uri = format!("{PODS}?watch=true{query}");
        let response = app
            .clone()
            .oneshot(request(Method::GET, &uri, Some(token), None))
            .await
            .unwrap();
        if response.status() != StatusCode::OK {
            let status = response.status();
            let bytes = response.into_body().collect().await.unwrap().to_bytes();
            return Err(Reply {
                status,
                body: serde_json::from_slice(&bytes).unwrap(),
            });
        }
        Ok(Watch {
            body: response.into_body(),
            buffer: Vec::new(),
        })
    }

    /// The next event, or `None` when the stream ended.
    async fn next(&mut self) -> Option<Value> {
        loop {
            if let Some(end) = self.buffer.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.buffer.drain(..=end).collect();
                return Some(serde_json::from_slice(&line).unwrap());
            }
            let frame = timeout(PATIENCE, self.body.frame())
                .await
                .expect("an event within the deadline")?
                .unwrap();
            if let Ok(data) = frame.into_data() {
                self.buffer.extend_from_slice(&data);
            }
        }
    }

    /// The next event's type and phase.
    async fn next_phase(&mut self) -> (String, String) {
        let event = self.next().await.expect("an event");
        (
            event["type"].as_str().unwrap().to_owned(),
            event["object"]["status"]["phase"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        )
    }
}

fn pair(type_: &str, phase: &str) -> (String, String) {
    (type_.to_owned(), phase.to_owned())
}

fn job(name: &str, command: &[&str]) -> Value {
    let mut body = pod(name, json!({"app": name}));
    body["spec"]["containers"][0]["command"] = json!(command);
    body["spec"]["restartPolicy"] = json!("Never");
    body
}

#[tokio::test(start_paused = true)]
async fn a_watch_from_a_resource_version_gets_every_change_when_it_falls_due() {
    let (app, _) = mock_with_namespace().await;
    let t0 = Instant::now();
    let created = post(&app, PODS, job("job", &["sleep", "2"])).await;
    let mut watch = Watch::open(
        &app,
        &format!("&resourceVersion={}", rv(&created.body)),
        TOKEN_A,
    )
    .await
    .unwrap();

    assert_eq!(watch.next_phase().await, pair("MODIFIED", "Running"));
    assert_eq!(
        t0.elapsed(),
        RUNNING_AFTER,
        "the event came when the pod started"
    );
    assert_eq!(watch.next_phase().await, pair("MODIFIED", "Succeeded"));
    assert_eq!(t0.elapsed(), RUNNING_AFTER + Duration::from_secs(2));

    delete(&app, &format!("{PODS}/job")).await;
    assert_eq!(watch.next_phase().await, pair("DELETED", "Succeeded"));
}

#[tokio::test(start_paused = true)]
async fn a_watch_without_a_resource_version_starts_with_the_current_pods_and_filters_by_label() {
    let (app, _) = mock_with_namespace().await;
    post(&app, PODS, job("a", &["sleep", "1"])).await;
    post(&app, PODS, job("b", &["sleep", "1"])).await;
    let mut watch = Watch::open(&app, "&labelSelector=app%3Da", TOKEN_A)
        .await
        .unwrap();
    let first = watch.next().await.unwrap();
    assert_eq!(first["type"], "ADDED");
    assert_eq!(first["object"]["metadata"]["name"], "a");
    assert_eq!(watch.next_phase().await, pair("MODIFIED", "Running"));
    let succeeded = watch.next().await.unwrap();
    assert_eq!(
        succeeded["object"]["metadata"]["name"], "a",
        "pod b is not selected"
    );
    assert_eq!(succeeded["object"]["status"]["phase"], "Succeeded");
}

/// SIGTERM decides when the pod goes: a server (no command) stops at once, `sleep` as PID 1
/// runs until the grace period ends.
#[rstest::rstest]
#[case::a_server(None, mock_cci::DEFAULT_STOP_TIME)]
#[case::sleep_as_pid_1(Some(json!(["sleep", "3600"])), Duration::from_secs(5))]
#[tokio::test(start_paused = true)]
async fn a_graceful_delete_is_seen_as_a_deletion_timestamp_then_a_deletion(
    #[case] command: Option<Value>,
    #[case] gone_after: Duration,
) {
    let (app, _) = mock_with_namespace().await;
    let mut web = pod("web", json!({}));
    if let Some(command) = command {
        web["spec"]["containers"][0]["command"] = command;
    }
    let created = post(&app, PODS, web).await;
    let mut watch = Watch::open(
        &app,
        &format!("&resourceVersion={}", rv(&created.body)),
        TOKEN_A,
    )
    .await
    .unwrap();
    assert_eq!(watch.next_phase().await, pair("MODIFIED", "Running"));
    let t0 = Instant::now();
    let reply = delete(&app, &format!("{PODS}/web?gracePeriodSeconds=5")).await;
    assert!(
        reply.body["metadata"]["deletionTimestamp"].is_string(),
        "{}",
        reply.body
    );
    let marked = watch.next().await.unwrap();
    assert_eq!(marked["type"], "MODIFIED");
    assert_eq!(
        marked["object"]["metadata"]["deletionGracePeriodSeconds"],
        5
    );
    assert_eq!(watch.next().await.unwrap()["type"], "DELETED");
    assert_eq!(t0.elapsed(), gone_after);
}

#[tokio::test(start_paused = true)]
async fn a_delete_options_body_sets_the_grace_period() {
    let (app, state) = mock_with_namespace().await;
    post(&app, PODS, pod("web", json!({}))).await;
    tokio::time::advance(RUNNING_AFTER).await;
    let reply = call(
        &app,
        Method::DELETE,
        &format!("{PODS}/web"),
        Some(TOKEN_A),
        Some(json!({"kind": "DeleteOptions", "apiVersion": "v1", "gracePeriodSeconds": 3})),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert!(state.pods()[0].terminating);
    tokio::time::advance(Duration::from_secs(3)).await;
    assert!(state.pods().is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_watch_from_a_compacted_resource_version_is_gone() {
    let (app, _) = with_namespace(mock_with(config().with_watch_history(5))).await;
    for i in 0..10 {
        post(&app, PODS, pod(&format!("p{i}"), json!({}))).await;
    }
    let Err(reply) = Watch::open(&app, "&resourceVersion=2", TOKEN_A).await else {
        panic!("the watch started")
    };
    assert_status(&reply, 410, "Expired", "CCI.01.410000");
    assert!(
        reply.message().contains("too old resource version"),
        "{}",
        reply.message()
    );
}

#[tokio::test(start_paused = true)]
async fn a_watch_ends_after_its_timeout() {
    let (app, _) = mock_with_namespace().await;
    let t0 = Instant::now();
    let mut watch = Watch::open(&app, "&timeoutSeconds=30", TOKEN_A)
        .await
        .unwrap();
    assert!(watch.next().await.is_none());
    assert_eq!(t0.elapsed(), Duration::from_secs(30));
}

#[tokio::test]
async fn a_watch_of_another_tenants_namespace_is_forbidden() {
    let (app, _) = mock_with_namespace().await;
    let Err(reply) = Watch::open(&app, "", TOKEN_B).await else {
        panic!("the watch started")
    };
    assert_status(&reply, 403, "Forbidden", "CCI.01.403104");
}

#[tokio::test(start_paused = true)]
async fn many_pods_started_at_different_times_are_each_seen_running_once() {
    let (app, _) = mock_with_namespace().await;
    let mut watch = Watch::open(&app, "", TOKEN_A).await.unwrap();
    for i in 0..50 {
        post(&app, PODS, pod(&format!("p{i}"), json!({}))).await;
        tokio::time::advance(Duration::from_millis(7)).await;
    }
    let mut running = std::collections::BTreeSet::new();
    while running.len() < 50 {
        let event = watch.next().await.unwrap();
        if event["object"]["status"]["phase"] == "Running" {
            assert!(
                running.insert(
                    event["object"]["metadata"]["name"]
                        .as_str()
                        .unwrap()
                        .to_owned()
                )
            );
        }
    }
}
