//! The inside view under `/_mock/`: faults, state dump, request log, ledger, peaks, reset.

use crate::common;

use std::time::Duration;

use axum::Router;
use axum::http::{Method, StatusCode};
use common::*;
use serde_json::{Value, json};
use tokio::time::Instant;

async fn set_fault(app: &Router, spec: Value) -> u64 {
    let reply = call(app, Method::POST, "/_mock/faults", None, Some(spec)).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    reply.body["id"].as_u64().unwrap()
}

async fn admin(app: &Router, uri: &str) -> Value {
    let reply = call(app, Method::GET, uri, None, None).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    reply.body
}

#[tokio::test]
async fn a_sold_out_namespace_refuses_pods_until_the_fault_is_cleared() {
    let (app, _) = mock_with_namespace().await;
    post(&app, "/apis/cci/v2/namespaces", namespace("other")).await;
    let id = set_fault(
        &app,
        json!({"scope": {"namespace": "ns"}, "fault": {"type": "soldOut"}}),
    )
    .await;
    let refused = post(&app, PODS, pod("web", json!({}))).await;
    assert_status(&refused, 400, "BadRequest", "CCI.01.400002");
    assert!(
        refused.message().contains("sold out"),
        "{}",
        refused.message()
    );
    assert!(
        refused.message().contains("insufficient resources"),
        "{}",
        refused.message()
    );
    let elsewhere = post(
        &app,
        "/apis/cci/v2/namespaces/other/pods",
        pod("web", json!({})),
    )
    .await;
    assert_eq!(
        elsewhere.status,
        StatusCode::CREATED,
        "the fault is scoped to ns"
    );

    let faults = admin(&app, "/_mock/faults").await;
    assert_eq!(faults[0]["id"], id);
    assert_eq!(faults[0]["fired"], 1);
    assert_eq!(
        faults[0]["fault"],
        json!({"type": "soldOut", "flavours": []})
    );

    let cleared = call(
        &app,
        Method::DELETE,
        &format!("/_mock/faults/{id}"),
        None,
        None,
    )
    .await;
    assert_eq!(cleared.status, StatusCode::NO_CONTENT);
    assert_eq!(
        post(&app, PODS, pod("web", json!({}))).await.status,
        StatusCode::CREATED
    );
    let again = call(
        &app,
        Method::DELETE,
        &format!("/_mock/faults/{id}"),
        None,
        None,
    )
    .await;
    assert_status(&again, 404, "NotFound", "CCI.01.404000");
}

#[tokio::test]
async fn an_error_rate_fails_the_same_requests_every_run_and_only_its_operations() {
    let (app, _) = mock_with_namespace().await;
    set_fault(
        &app,
        json!({"scope": {"tenant": "tenant-a"}, "fault": {"type": "errorRate", "operations": ["create pods"], "percent": 50, "status": 503}}),
    )
    .await;
    let mut outcomes = Vec::new();
    for i in 0..6 {
        let reply = post(&app, PODS, pod(&format!("p{i}"), json!({}))).await;
        outcomes.push(reply.status.as_u16());
        if reply.status == StatusCode::SERVICE_UNAVAILABLE {
            assert_status(&reply, 503, "ServiceUnavailable", "CCI.01.503000");
        }
    }
    assert_eq!(outcomes, [201, 503, 201, 503, 201, 503]);
    assert_eq!(
        get(&app, PODS).await.status,
        StatusCode::OK,
        "listing is not affected"
    );
    let names: Vec<String> = admin(&app, "/_mock/pods")
        .await
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["p0", "p2", "p4"], "failed requests created nothing");
}

#[tokio::test(start_paused = true)]
async fn latency_delays_the_answer_and_a_timeout_answers_504_much_later() {
    let (app, state) = mock_with_namespace().await;
    set_fault(
        &app,
        json!({"scope": {"namespace": "ns"}, "fault": {"type": "latency", "operations": ["get pods"], "millis": 1500}}),
    )
    .await;
    let t0 = Instant::now();
    let reply = get(&app, &format!("{PODS}/missing")).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert_eq!(t0.elapsed(), Duration::from_millis(1500));

    set_fault(
        &app,
        json!({"scope": {"namespace": "ns"}, "fault": {"type": "timeout", "operations": ["create pods"], "applied": true}}),
    )
    .await;
    let t0 = Instant::now();
    let reply = post(&app, PODS, pod("web", json!({}))).await;
    assert_status(&reply, 504, "Timeout", "CCI.01.504000");
    assert_eq!(t0.elapsed(), state.config().timeout);
    assert_eq!(
        state.pods().len(),
        1,
        "an applied timeout still created the pod"
    );
}

#[tokio::test]
async fn a_quota_refuses_pods_beyond_it_with_403() {
    let (app, _) = mock_with_namespace().await;
    set_fault(
        &app,
        json!({"scope": {"tenant": "tenant-a"}, "fault": {"type": "quotaExceeded", "maxPods": 1}}),
    )
    .await;
    assert_eq!(
        post(&app, PODS, pod("one", json!({}))).await.status,
        StatusCode::CREATED
    );
    let reply = post(&app, PODS, pod("two", json!({}))).await;
    assert_status(&reply, 403, "Forbidden", "CCI.01.403002");
    assert!(
        reply.message().starts_with("exceeded quota"),
        "{}",
        reply.message()
    );
}

#[tokio::test(start_paused = true)]
async fn an_image_pull_failure_keeps_matching_pods_pending() {
    let (app, _) = mock_with_namespace().await;
    set_fault(
        &app,
        json!({"scope": {"tenant": "tenant-a"}, "fault": {"type": "imagePullFailure", "imagePattern": "nginx:*"}}),
    )
    .await;
    post(&app, PODS, pod("web", json!({}))).await;
    tokio::time::advance(RUNNING_AFTER).await;
    let reply = get(&app, &format!("{PODS}/web")).await;
    assert_eq!(reply.body["status"]["phase"], "Pending");
    assert_eq!(
        reply.body["status"]["containerStatuses"][0]["state"]["waiting"]["reason"],
        "ErrImagePull"
    );
}

#[tokio::test(start_paused = true)]
async fn no_capacity_accepts_pods_but_leaves_them_unschedulable_until_the_fault_is_cleared() {
    let (app, _) = mock_with_namespace().await;
    let id = set_fault(
        &app,
        json!({"scope": {"namespace": "ns"}, "fault": {"type": "noCapacity", "flavours": ["0.5_1"]}}),
    )
    .await;
    let created = post(&app, PODS, pod("web", json!({}))).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let shown = |body: &Value| {
        let status = &body["status"];
        assert_eq!(status["phase"], "Pending", "{body}");
        assert!(status["podIP"].is_null(), "{body}");
        let scheduled = &status["conditions"][0];
        assert_eq!(scheduled["type"], "PodScheduled");
        assert_eq!(scheduled["status"], "False");
        assert_eq!(scheduled["reason"], "Unschedulable");
        assert!(scheduled["lastTransitionTime"].is_string());
        let message = scheduled["message"].as_str().unwrap();
        assert!(message.contains("insufficient capacity"), "{message}");
        scheduled["lastTransitionTime"].clone()
    };
    let since = shown(&created.body);
    tokio::time::advance(Duration::from_secs(60)).await;
    let later = get(&app, &format!("{PODS}/web")).await;
    assert_eq!(
        shown(&later.body),
        since,
        "still unschedulable, since the create"
    );
    assert_eq!(admin(&app, "/_mock/pods").await[0]["phase"], "Pending");

    let cleared = call(
        &app,
        Method::DELETE,
        &format!("/_mock/faults/{id}"),
        None,
        None,
    )
    .await;
    assert_eq!(cleared.status, StatusCode::NO_CONTENT);
    tokio::time::advance(Duration::from_secs(30)).await;
    let running = get(&app, &format!("{PODS}/web")).await;
    assert_eq!(
        running.body["status"]["phase"], "Running",
        "{}",
        running.body
    );
    assert!(running.body["status"]["podIP"].is_string());
}

#[tokio::test(start_paused = true)]
async fn no_capacity_for_one_size_leaves_other_sizes_alone() {
    let (app, _) = mock_with_namespace().await;
    set_fault(
        &app,
        json!({"scope": {"tenant": "tenant-a"}, "fault": {"type": "noCapacity", "flavours": ["2_4"]}}),
    )
    .await;
    post(&app, PODS, pod("web", json!({}))).await;
    tokio::time::advance(RUNNING_AFTER).await;
    let reply = get(&app, &format!("{PODS}/web")).await;
    assert_eq!(reply.body["status"]["phase"], "Running", "{}", reply.body);
}

#[tokio::test(start_paused = true)]
async fn a_slow_delete_keeps_a_deleted_namespace_terminating_for_its_millis_then_it_is_gone() {
    let (app, _) = mock_with_namespace().await;
    set_fault(
        &app,
        json!({"scope": {"namespace": "ns"}, "fault": {"type": "slowDelete", "millis": 1500}}),
    )
    .await;
    post(&app, PODS, pod("web", json!({}))).await;
    let deleted = delete(&app, "/apis/cci/v2/namespaces/ns").await;
    assert_eq!(deleted.status, StatusCode::OK, "{}", deleted.body);
    assert!(deleted.body["metadata"]["deletionTimestamp"].is_string());
    tokio::time::advance(Duration::from_millis(1499)).await;
    assert_eq!(
        get(&app, "/apis/cci/v2/namespaces/ns").await.body,
        deleted.body
    );
    assert_eq!(
        get(&app, PODS).await.body["items"][0]["metadata"]["name"],
        "web"
    );
    let refused = post(&app, PODS, pod("late", json!({}))).await;
    assert_status(&refused, 403, "Forbidden", "CCI.01.403000");
    assert_eq!(
        admin(&app, "/_mock/namespaces").await[0]["terminating"],
        true
    );
    tokio::time::advance(Duration::from_millis(1)).await;
    assert_eq!(
        get(&app, "/apis/cci/v2/namespaces/ns").await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(admin(&app, "/_mock/pods").await, json!([]));
    assert_eq!(admin(&app, "/_mock/faults").await[0]["fired"], 1);
}

#[tokio::test]
async fn malformed_or_out_of_range_faults_are_refused_with_a_status_body() {
    let (app, _) = mock();
    let cases = [
        json!({"scope": {"tenant": "t"}, "fault": {"type": "meteor"}}),
        json!({"scope": {}, "fault": {"type": "soldOut"}}),
        json!({"scope": {"tenant": "t"}, "fault": {"type": "errorRate", "percent": 500}}),
        json!({"scope": {"tenant": "t"}, "fault": {"type": "errorRate", "percent": 5, "status": 200}}),
        json!({"scope": {"tenant": "t"}, "fault": {"type": "soldOut", "flavours": ["3_3"]}}),
        json!({"scope": {"tenant": "t"}, "fault": {"type": "slowDelete", "millis": 600_001}}),
    ];
    for body in cases {
        let reply = call(
            &app,
            Method::POST,
            "/_mock/faults",
            None,
            Some(body.clone()),
        )
        .await;
        assert_status(&reply, 400, "BadRequest", "CCI.01.400000");
        assert!(!reply.message().is_empty(), "{body}");
    }
    assert_eq!(admin(&app, "/_mock/faults").await, json!([]));
}

#[tokio::test]
async fn the_state_dump_orders_tenants_namespaces_and_objects_by_name() {
    let (app, _) = mock_with_namespace().await;
    call(
        &app,
        Method::POST,
        "/apis/cci/v2/namespaces",
        Some(TOKEN_B),
        Some(namespace("b-ns")),
    )
    .await;
    post(&app, "/apis/cci/v2/namespaces", namespace("a-ns")).await;
    post(&app, PODS, pod("zeta", json!({}))).await;
    post(&app, PODS, pod("alpha", json!({}))).await;
    let dump = admin(&app, "/_mock/state").await;
    let tenants: Vec<&String> = dump["tenants"].as_object().unwrap().keys().collect();
    assert_eq!(tenants, ["tenant-a", "tenant-b"]);
    let namespaces: Vec<&String> = dump["tenants"]["tenant-a"]
        .as_object()
        .unwrap()
        .keys()
        .collect();
    assert_eq!(namespaces, ["a-ns", "ns"]);
    let pods: Vec<&String> = dump["tenants"]["tenant-a"]["ns"]["pods"]
        .as_object()
        .unwrap()
        .keys()
        .collect();
    assert_eq!(pods, ["alpha", "zeta"]);
    assert_eq!(dump["tenants"]["tenant-a"]["ns"]["configmaps"], json!({}));
}

#[tokio::test]
async fn the_request_log_records_api_requests_but_not_the_inside_view() {
    let (app, _) = mock_with_namespace().await;
    post(&app, PODS, pod("web", json!({}))).await;
    call(&app, Method::GET, "/apis/cci/v2/namespaces", None, None).await;
    admin(&app, "/_mock/state").await;
    let log = admin(&app, "/_mock/requests").await;
    let rows: Vec<(String, String, Value, u64)> = log
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["method"].as_str().unwrap().to_owned(),
                r["path"].as_str().unwrap().to_owned(),
                r.get("tenant").cloned().unwrap_or(Value::Null),
                r["status"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        rows,
        [
            (
                "POST".into(),
                "/apis/cci/v2/namespaces".into(),
                json!("tenant-a"),
                201
            ),
            ("POST".into(), networks("ns"), json!("tenant-a"), 201),
            ("POST".into(), PODS.into(), json!("tenant-a"), 201),
            (
                "GET".into(),
                "/apis/cci/v2/namespaces".into(),
                Value::Null,
                401
            ),
        ]
    );
    assert!(log[0]["time"].is_string());
    // A create's path names the collection; the log names the object its body created.
    assert_eq!(log[2]["name"], "web");
    assert!(
        log[3].get("name").is_none(),
        "a GET names nothing: {}",
        log[3]
    );
    // The token each carried, by fingerprint only: never the token.
    assert_eq!(
        log[0]["credential"],
        format!("token:{}", cci_api::token_fingerprint(TOKEN_A))
    );
    assert!(!log.to_string().contains(TOKEN_A), "{log}");
    assert!(
        log[3].get("credential").is_none(),
        "no credential: {}",
        log[3]
    );
    let last = admin(&app, "/_mock/requests?limit=1&tenant=tenant-a").await;
    assert_eq!(last.as_array().unwrap().len(), 1);
    assert_eq!(last[0]["path"], PODS);
}

#[tokio::test(start_paused = true)]
async fn the_ledger_bills_running_pods_per_namespace() {
    let (app, _) = mock_with_namespace().await;
    let mut big = pod("big", json!({}));
    big["spec"]["containers"][0]["resources"] = resources("2", "4Gi");
    post(&app, PODS, big).await;
    tokio::time::advance(RUNNING_AFTER + Duration::from_secs(10)).await;
    let ledger = admin(&app, "/_mock/ledger").await;
    assert_eq!(
        ledger,
        json!([{
            "tenant": "tenant-a", "namespace": "ns", "exists": true, "runningPods": 1,
            "podSeconds": 10.0, "vcpuSeconds": 20.0, "memoryGibSeconds": 40.0,
        }])
    );
}

#[tokio::test(start_paused = true)]
async fn the_peak_tells_the_most_running_pods_of_a_selector_at_once() {
    let (app, _) = mock_with_namespace().await;
    for i in 0..4 {
        let mut job = pod(&format!("job-{i}"), json!({"job-name": "pi"}));
        job["spec"]["containers"][0]["command"] = json!(["sleep", "3"]);
        job["spec"]["restartPolicy"] = json!("Never");
        post(&app, PODS, job).await;
        // Each runs 3 s; a new one starts every 2 s, so at most two overlap.
        tokio::time::advance(Duration::from_secs(2)).await;
    }
    post(&app, PODS, pod("web", json!({}))).await;
    tokio::time::advance(Duration::from_secs(10)).await;
    let peak = admin(&app, "/_mock/peak?namespace=ns&labelSelector=job-name%3Dpi").await;
    assert_eq!(peak["running"]["peak"], 2, "{peak}");
    assert_eq!(peak["running"]["current"], 0);
    assert_eq!(peak["active"]["peak"], 2);
    let all = admin(&app, "/_mock/peak?namespace=ns").await;
    assert_eq!(all["running"]["current"], 1);
    let bad = call(
        &app,
        Method::GET,
        "/_mock/peak?namespace=ns&labelSelector=a%20in%20(b)",
        None,
        None,
    )
    .await;
    assert_status(&bad, 400, "BadRequest", "CCI.01.400000");
}

#[tokio::test]
async fn reset_forgets_everything() {
    let (app, state) = mock_with_namespace().await;
    post(&app, PODS, pod("web", json!({}))).await;
    set_fault(
        &app,
        json!({"scope": {"tenant": "tenant-a"}, "fault": {"type": "soldOut"}}),
    )
    .await;
    let reply = call(&app, Method::POST, "/_mock/reset", None, None).await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    assert!(state.namespaces().is_empty());
    assert_eq!(admin(&app, "/_mock/faults").await, json!([]));
    assert_eq!(admin(&app, "/_mock/requests").await, json!([]));
    assert_eq!(admin(&app, "/_mock/ledger").await, json!([]));
}
