//! The mock's HTTP API, driven through `app()` without a socket.

use crate::common;

use std::time::Duration;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use common::*;
use serde_json::{Value, json};

#[tokio::test]
async fn healthz_answers_ok_without_a_token() {
    let (app, _) = mock();
    let reply = call(&app, Method::GET, "/healthz", None, None).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body, "ok");
}

#[tokio::test]
async fn api_requests_without_a_token_are_refused_with_401() {
    let (app, _) = mock();
    let reply = call(&app, Method::GET, "/apis/cci/v2/namespaces", None, None).await;
    assert_status(&reply, 401, "Unauthorized", "CCI.01.401000");
    assert!(
        reply.body["message"]
            .as_str()
            .unwrap()
            .contains("X-Auth-Token")
    );
}

#[tokio::test(start_paused = true)]
async fn an_issued_token_serves_its_tenant_until_it_expires_and_a_renewal_serves_again() {
    let (app, _) = mock();
    let issue = |ttl: u64| {
        request(
            Method::PUT,
            "/_mock/tokens/iam-token-1",
            None,
            Some(json!({"tenant": "tenant-a", "ttlSeconds": ttl})),
        )
    };
    assert_eq!(send(&app, issue(60)).await.status, StatusCode::NO_CONTENT);
    let list = || {
        call(
            &app,
            Method::GET,
            "/apis/cci/v2/namespaces",
            Some("iam-token-1"),
            None,
        )
    };
    assert_eq!(list().await.status, StatusCode::OK);
    tokio::time::advance(std::time::Duration::from_secs(59)).await;
    assert_eq!(
        list().await.status,
        StatusCode::OK,
        "one second of life left"
    );
    tokio::time::advance(std::time::Duration::from_secs(1)).await;
    let expired = list().await;
    assert_status(&expired, 401, "Unauthorized", "CCI.01.401000");
    assert!(expired.message().contains("expired"), "{}", expired.body);
    // The tokens the mock was started with never expire.
    let started_with = call(
        &app,
        Method::GET,
        "/apis/cci/v2/namespaces",
        Some(TOKEN_A),
        None,
    );
    assert_eq!(started_with.await.status, StatusCode::OK);
    assert_eq!(send(&app, issue(60)).await.status, StatusCode::NO_CONTENT);
    assert_eq!(list().await.status, StatusCode::OK, "renewed");
}

#[tokio::test]
async fn a_token_is_issued_only_with_a_tenant_and_its_life() {
    let (app, _) = mock();
    let reply = send(
        &app,
        request(
            Method::PUT,
            "/_mock/tokens/t",
            None,
            Some(json!({"tenant": "tenant-a"})),
        ),
    )
    .await;
    assert_eq!(reply.status.as_u16() / 100, 4, "{}", reply.body);
}

#[tokio::test]
async fn api_requests_with_an_unknown_token_are_refused_with_401_even_with_a_bad_body() {
    let (app, _) = mock();
    let request = Request::post("/apis/cci/v2/namespaces")
        .header("X-Auth-Token", "nope")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from("{"))
        .unwrap();
    assert_status(
        &send(&app, request).await,
        401,
        "Unauthorized",
        "CCI.01.401000",
    );
}

#[tokio::test]
async fn another_tenants_namespace_is_forbidden_with_403() {
    let (app, _) = mock_with_namespace().await;
    let attempts = [
        (Method::GET, "/apis/cci/v2/namespaces/ns", None),
        (Method::DELETE, "/apis/cci/v2/namespaces/ns", None),
        (Method::GET, "/apis/cci/v2/namespaces/ns/pods", None),
        (
            Method::POST,
            "/apis/cci/v2/namespaces/ns/pods",
            Some(pod("web", json!({}))),
        ),
        (Method::GET, "/apis/cci/v2/namespaces/ns/pods/web", None),
        (Method::DELETE, "/apis/cci/v2/namespaces/ns/pods/web", None),
    ];
    for (method, uri, body) in attempts {
        let reply = call(&app, method.clone(), uri, Some(TOKEN_B), body).await;
        assert_status(&reply, 403, "Forbidden", "CCI.01.403104");
    }
    let list = call(
        &app,
        Method::GET,
        "/apis/cci/v2/namespaces",
        Some(TOKEN_B),
        None,
    )
    .await;
    assert_eq!(list.body["kind"], "NamespaceList");
    assert_eq!(
        list.body["items"],
        json!([]),
        "tenant B sees none of tenant A's namespaces"
    );
}

#[tokio::test]
async fn a_namespace_can_be_created_listed_read_and_deleted_with_its_pods() {
    let (app, state) = mock_with_namespace().await;
    let created = call(
        &app,
        Method::POST,
        "/apis/cci/v2/namespaces/ns/pods",
        Some(TOKEN_A),
        Some(pod("web", json!({}))),
    )
    .await;
    assert_eq!(created.status, StatusCode::CREATED);

    let list = call(
        &app,
        Method::GET,
        "/apis/cci/v2/namespaces",
        Some(TOKEN_A),
        None,
    )
    .await;
    assert_eq!(list.body["kind"], "NamespaceList");
    assert_eq!(list.body["items"][0]["metadata"]["name"], "ns");
    let got = call(
        &app,
        Method::GET,
        "/apis/cci/v2/namespaces/ns",
        Some(TOKEN_A),
        None,
    )
    .await;
    assert_eq!(got.status, StatusCode::OK);
    assert!(got.body["metadata"]["uid"].is_string());

    let deleted = call(
        &app,
        Method::DELETE,
        "/apis/cci/v2/namespaces/ns",
        Some(TOKEN_A),
        None,
    )
    .await;
    assert_eq!(deleted.status, StatusCode::OK);
    assert_eq!(deleted.body["metadata"]["name"], "ns");
    assert!(state.pods().is_empty(), "the namespace's pods went with it");
    let gone = call(
        &app,
        Method::GET,
        "/apis/cci/v2/namespaces/ns/pods/web",
        Some(TOKEN_A),
        None,
    )
    .await;
    assert_status(&gone, 404, "NotFound", "CCI.01.404000");
}

#[tokio::test]
async fn a_namespace_name_that_is_not_a_dns_label_is_invalid() {
    let (app, _) = mock();
    let reply = call(
        &app,
        Method::POST,
        "/apis/cci/v2/namespaces",
        Some(TOKEN_A),
        Some(namespace("Not_OK")),
    )
    .await;
    assert_status(&reply, 422, "Invalid", "CCI.01.422001");
    assert!(
        reply.body["message"]
            .as_str()
            .unwrap()
            .starts_with(r#"Namespace "Not_OK" is invalid: metadata.name: Invalid value: "#)
    );
}

#[tokio::test(start_paused = true)]
async fn a_created_pod_is_pending_and_turns_running_after_the_delay() {
    let (app, state) = mock_with_namespace().await;
    let created = call(
        &app,
        Method::POST,
        "/apis/cci/v2/namespaces/ns/pods",
        Some(TOKEN_A),
        Some(pod("web", json!({"app": "web"}))),
    )
    .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let meta = &created.body["metadata"];
    assert_eq!(meta["namespace"], "ns");
    assert!(meta["uid"].is_string());
    assert!(meta["creationTimestamp"].is_string());
    let created_rv: u64 = meta["resourceVersion"].as_str().unwrap().parse().unwrap();
    assert_eq!(created.body["status"], json!({"phase": "Pending"}));

    tokio::time::advance(RUNNING_AFTER - Duration::from_millis(1)).await;
    let pending = call(
        &app,
        Method::GET,
        "/apis/cci/v2/namespaces/ns/pods/web",
        Some(TOKEN_A),
        None,
    )
    .await;
    assert_eq!(
        pending.body, created.body,
        "nothing changes before the delay"
    );

    tokio::time::advance(Duration::from_millis(1)).await;
    let running = call(
        &app,
        Method::GET,
        "/apis/cci/v2/namespaces/ns/pods/web",
        Some(TOKEN_A),
        None,
    )
    .await;
    let status = &running.body["status"];
    assert_eq!(status["phase"], "Running", "{}", running.body);
    assert!(status["podIP"].as_str().unwrap().starts_with("172.31."));
    assert!(status["hostIP"].is_string());
    assert!(status["startTime"].is_string());
    let ready = status["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Ready")
        .unwrap();
    assert_eq!(ready["status"], "True");
    let container = &status["containerStatuses"][0];
    assert_eq!(container["ready"], true);
    assert_eq!(container["restartCount"], 0);
    assert_eq!(container["image"], "nginx:1.27");
    assert!(container["state"]["running"]["startedAt"].is_string());
    assert_eq!(
        container["containerID"],
        format!("cci://{}/app", meta["uid"].as_str().unwrap())
    );
    let running_rv: u64 = running.body["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        running_rv > created_rv,
        "the transition bumps the resourceVersion"
    );

    assert_eq!(state.pods()[0].phase, "Running");
}

#[tokio::test]
async fn pods_are_listed_by_label_selector_with_the_current_resource_version() {
    let (app, _) = mock_with_namespace().await;
    for (name, labels) in [
        ("web-0", json!({"app": "web", "tier": "front"})),
        ("web-1", json!({"app": "web"})),
        ("db-0", json!({"app": "db"})),
    ] {
        let reply = call(
            &app,
            Method::POST,
            "/apis/cci/v2/namespaces/ns/pods",
            Some(TOKEN_A),
            Some(pod(name, labels)),
        )
        .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    }
    let names = |reply: &Reply| -> Vec<String> {
        reply.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["metadata"]["name"].as_str().unwrap().to_owned())
            .collect()
    };
    let cases = [
        ("", vec!["db-0", "web-0", "web-1"]),
        ("app%3Dweb", vec!["web-0", "web-1"]),
        ("app%3Dweb%2C!tier", vec!["web-1"]),
        ("app!%3Dweb", vec!["db-0"]),
        ("tier", vec!["web-0"]),
    ];
    for (selector, expected) in cases {
        let uri = format!("/apis/cci/v2/namespaces/ns/pods?labelSelector={selector}");
        let reply = call(&app, Method::GET, &uri, Some(TOKEN_A), None).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        assert_eq!(reply.body["kind"], "PodList");
        assert_eq!(reply.body["apiVersion"], "cci/v2");
        assert_eq!(names(&reply), expected, "selector {selector}");
        assert!(
            reply.body["metadata"]["resourceVersion"]
                .as_str()
                .unwrap()
                .parse::<u64>()
                .unwrap()
                >= 4
        );
    }
    let bad = call(
        &app,
        Method::GET,
        "/apis/cci/v2/namespaces/ns/pods?labelSelector=app%20in%20(web)",
        Some(TOKEN_A),
        None,
    )
    .await;
    assert_status(&bad, 400, "BadRequest", "CCI.01.400000");
}

#[tokio::test]
async fn deleting_a_pod_returns_it_and_then_it_is_not_found() {
    let (app, state) = mock_with_namespace().await;
    call(
        &app,
        Method::POST,
        "/apis/cci/v2/namespaces/ns/pods",
        Some(TOKEN_A),
        Some(pod("web", json!({}))),
    )
    .await;
    let deleted = call(
        &app,
        Method::DELETE,
        "/apis/cci/v2/namespaces/ns/pods/web",
        Some(TOKEN_A),
        None,
    )
    .await;
    assert_eq!(deleted.status, StatusCode::OK);
    assert_eq!(deleted.body["metadata"]["name"], "web");
    assert!(state.pods().is_empty());
    let again = call(
        &app,
        Method::DELETE,
        "/apis/cci/v2/namespaces/ns/pods/web",
        Some(TOKEN_A),
        None,
    )
    .await;
    assert_status(&again, 404, "NotFound", "CCI.01.404000");
    assert_eq!(
        again.body["message"],
        r#"pod "web" not found in namespace "ns""#
    );
}

#[tokio::test]
async fn creating_a_pod_or_namespace_twice_conflicts_with_409() {
    let (app, _) = mock_with_namespace().await;
    let first = call(
        &app,
        Method::POST,
        "/apis/cci/v2/namespaces/ns/pods",
        Some(TOKEN_A),
        Some(pod("web", json!({}))),
    )
    .await;
    assert_eq!(first.status, StatusCode::CREATED);
    let second = call(
        &app,
        Method::POST,
        "/apis/cci/v2/namespaces/ns/pods",
        Some(TOKEN_A),
        Some(pod("web", json!({}))),
    )
    .await;
    assert_status(&second, 409, "AlreadyExists", "CCI.01.409000");
    let ns = call(
        &app,
        Method::POST,
        "/apis/cci/v2/namespaces",
        Some(TOKEN_B),
        Some(namespace("ns")),
    )
    .await;
    assert_status(&ns, 409, "AlreadyExists", "CCI.01.409000");
}

#[tokio::test]
async fn a_pod_in_a_missing_namespace_is_not_found() {
    let (app, _) = mock();
    let reply = call(
        &app,
        Method::POST,
        "/apis/cci/v2/namespaces/nope/pods",
        Some(TOKEN_A),
        Some(pod("web", json!({}))),
    )
    .await;
    assert_status(&reply, 404, "NotFound", "CCI.01.404000");
}

#[tokio::test]
async fn an_invalid_pod_is_refused_with_a_sentence_naming_the_field() {
    let (app, _) = mock_with_namespace().await;
    let mut body = pod("x", json!({}));
    body["spec"]["containers"] = json!([]);
    let reply = call(
        &app,
        Method::POST,
        "/apis/cci/v2/namespaces/ns/pods",
        Some(TOKEN_A),
        Some(body),
    )
    .await;
    assert_status(&reply, 422, "Invalid", "CCI.01.422001");
    assert_eq!(
        reply.body["message"],
        r#"Pod "x" is invalid: spec.containers: Required value: at least one container is required"#
    );

    let reply = call(
        &app,
        Method::POST,
        "/apis/cci/v2/namespaces/ns/pods",
        Some(TOKEN_A),
        Some(pod("x", json!({"bad key": "v"}))),
    )
    .await;
    assert_status(&reply, 422, "Invalid", "CCI.01.422001");
    assert!(
        reply.body["message"]
            .as_str()
            .unwrap()
            .contains("metadata.labels: Invalid value: label key"),
        "{}",
        reply.body
    );
}

#[tokio::test]
async fn malformed_json_is_answered_with_a_status_body() {
    let (app, _) = mock_with_namespace().await;
    let bodies = [
        "{\"apiVersion\": ",
        "[]",
        r#"{"apiVersion": "cci/v2", "kind": "Pod", "metadata": {"name": "x"}, "spec": {"containers": 5}}"#,
    ];
    for body in bodies {
        let request = Request::post("/apis/cci/v2/namespaces/ns/pods")
            .header("X-Auth-Token", TOKEN_A)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body))
            .unwrap();
        let reply = send(&app, request).await;
        assert_status(&reply, 400, "BadRequest", "CCI.01.400000");
        assert!(
            reply.body["message"]
                .as_str()
                .unwrap()
                .starts_with("the request body is not a valid Pod in JSON: "),
            "{}",
            reply.body
        );
    }
}

#[tokio::test]
async fn a_body_not_declared_as_json_is_refused_with_415() {
    let (app, _) = mock();
    let request = Request::post("/apis/cci/v2/namespaces")
        .header("X-Auth-Token", TOKEN_A)
        .body(Body::from(namespace("ns").to_string()))
        .unwrap();
    assert_status(
        &send(&app, request).await,
        415,
        "UnsupportedMediaType",
        "CCI.01.415000",
    );
}

#[tokio::test]
async fn unknown_paths_and_methods_are_answered_with_a_status_body() {
    let (app, _) = mock();
    let reply = call(&app, Method::GET, "/apis/cci/v2/nodes", Some(TOKEN_A), None).await;
    assert_status(&reply, 404, "NotFound", "CCI.01.404000");
    let reply = call(
        &app,
        Method::PUT,
        "/apis/cci/v2/namespaces",
        Some(TOKEN_A),
        None,
    )
    .await;
    assert_status(&reply, 405, "MethodNotAllowed", "CCI.01.405000");
}

#[tokio::test]
async fn the_admin_view_shows_every_tenants_objects_without_a_token() {
    let (app, _) = mock_with_namespace().await;
    call(
        &app,
        Method::POST,
        "/apis/cci/v2/namespaces",
        Some(TOKEN_B),
        Some(namespace("other")),
    )
    .await;
    call(
        &app,
        Method::POST,
        "/apis/cci/v2/namespaces/ns/pods",
        Some(TOKEN_A),
        Some(pod("web", json!({"app": "web"}))),
    )
    .await;
    call(
        &app,
        Method::POST,
        "/apis/cci/v2/namespaces/other/pods",
        Some(TOKEN_B),
        Some(pod("db", json!({}))),
    )
    .await;

    let pods = call(&app, Method::GET, "/admin/v1/pods", None, None).await;
    assert_eq!(pods.status, StatusCode::OK);
    let pods = pods.body.as_array().unwrap().clone();
    assert_eq!(pods.len(), 2);
    assert_eq!(pods[0]["tenant"], "tenant-a");
    assert_eq!(pods[0]["namespace"], "ns");
    assert_eq!(pods[0]["name"], "web");
    assert_eq!(pods[0]["phase"], "Pending");
    assert_eq!(pods[0]["labels"], json!({"app": "web"}));
    assert!(pods[0]["uid"].is_string());
    assert_eq!(pods[1]["tenant"], "tenant-b");

    let namespaces = call(&app, Method::GET, "/admin/v1/namespaces", None, None).await;
    let expected = json!([
        {"tenant": "tenant-a", "name": "ns", "podCount": 1, "terminating": false},
        {"tenant": "tenant-b", "name": "other", "podCount": 1, "terminating": false},
    ]);
    let without_uids: Vec<Value> = namespaces
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|ns| {
            let mut ns = ns.clone();
            ns.as_object_mut().unwrap().remove("uid");
            ns
        })
        .collect();
    assert_eq!(Value::from(without_uids), expected);
}
