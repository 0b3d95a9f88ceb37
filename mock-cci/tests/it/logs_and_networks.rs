//! Pod logs (the lines the mock writes for a container's life) and the network model (probes).

use crate::common;

use std::time::Duration;

use axum::http::StatusCode;
use common::*;
use serde_json::json;

#[tokio::test(start_paused = true)]
async fn a_container_log_tells_when_it_started_and_how_it_exited() {
    let (app, _) = mock_with_namespace().await;
    let mut job = pod("job", json!({}));
    job["spec"]["containers"][0]["command"] = json!(["sh", "-c", "sleep 2; exit 3"]);
    job["spec"]["restartPolicy"] = json!("Never");
    post(&app, PODS, job).await;
    let waiting = get(&app, &format!("{PODS}/job/log")).await;
    assert_status(&waiting, 400, "BadRequest", "CCI.01.400000");
    assert!(
        waiting
            .message()
            .contains("is waiting to start: ContainerCreating"),
        "{}",
        waiting.message()
    );

    tokio::time::advance(RUNNING_AFTER + Duration::from_secs(2)).await;
    let log = get(&app, &format!("{PODS}/job/log")).await;
    assert_eq!(log.status, StatusCode::OK);
    let text = log.body.as_str().unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(lines[0].ends_with(r#"mock-cci: container "app" started from image "nginx:1.27"; it exits with code 3 after 2s"#), "{text}");
    assert!(
        lines[1].ends_with(r#"mock-cci: container "app" exited with code 3"#),
        "{text}"
    );
    let tail = get(&app, &format!("{PODS}/job/log?tailLines=1&container=app")).await;
    assert_eq!(tail.body.as_str().unwrap().lines().count(), 1);
    let wrong = get(&app, &format!("{PODS}/job/log?container=nope")).await;
    assert_status(&wrong, 400, "BadRequest", "CCI.01.400000");
    let previous = get(&app, &format!("{PODS}/job/log?previous=true")).await;
    assert!(
        previous.message().contains("previous terminated container"),
        "{}",
        previous.message()
    );
}

const PROXIES: &str = "/apis/cci/v2/namespaces/ns/proxyregistrations";

async fn probe(app: &axum::Router, pod: &str, target: &str) -> (i64, String) {
    let reply = post(
        app,
        &format!("{PODS}/{pod}/exec"),
        json!({"command": ["probe", target]}),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let text = format!(
        "{}{}",
        reply.body["stdout"].as_str().unwrap(),
        reply.body["stderr"].as_str().unwrap()
    );
    (reply.body["exitCode"].as_i64().unwrap(), text)
}

fn proxy(protocols: &[&str]) -> serde_json::Value {
    json!({"apiVersion": "cci/v2", "kind": "ProxyRegistration", "metadata": {"name": "cluster-proxy"},
           "spec": {"protocols": protocols, "services": ["default/web"]}})
}

#[tokio::test(start_paused = true)]
async fn a_probe_goes_to_a_cluster_service_only_through_a_proxy_that_speaks_the_pods_protocol() {
    let (app, _) = mock_with_namespace().await;
    post(&app, PODS, pod("old", json!({}))).await;
    let mut new = pod("new", json!({}));
    new["metadata"]["annotations"] = json!({"bursting.cci.io/sidecar-protocol": "v2"});
    post(&app, PODS, new).await;
    let pending = post(
        &app,
        &format!("{PODS}/old/exec"),
        json!({"command": ["probe", "web.default"]}),
    )
    .await;
    assert_status(&pending, 400, "BadRequest", "CCI.01.400000");
    tokio::time::advance(RUNNING_AFTER).await;

    let (code, text) = probe(&app, "old", "web.default").await;
    assert_eq!(code, 1);
    assert!(text.contains("no network proxy is registered"), "{text}");

    // An add-on release before 1.5.18 registers a proxy that speaks v1 only. This one gives no
    // endpoint: its claim alone reaches nothing.
    let created = post(&app, PROXIES, proxy(&["v1"])).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let (code, text) = probe(&app, "old", "web.default.svc.cluster.local").await;
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("registers no endpoint"), "{text}");
    let (code, text) = probe(&app, "new", "web.default").await;
    assert_eq!(code, 1);
    assert!(
        text.contains("connection refused: the pod's sidecar speaks v2"),
        "{text}"
    );
    let (code, text) = probe(&app, "old", "db.default").await;
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("no registered proxy forwards"), "{text}");

    // Upgrading again registers v2 as well: the new pod passes the protocol check too.
    let mut upgraded = proxy(&["v1", "v2"]);
    upgraded["metadata"]["resourceVersion"] = created.body["metadata"]["resourceVersion"].clone();
    assert_eq!(
        put(&app, &format!("{PROXIES}/cluster-proxy"), upgraded)
            .await
            .status,
        StatusCode::OK
    );
    let (code, text) = probe(&app, "new", "web.default").await;
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("registers no endpoint"), "{text}");
}

/// Where the stand-ins listen: a loopback address of their own, so their ports never collide
/// with a test that checks a port of 127.0.0.1 is free again (`bin.rs`).
const STUBS: &str = "127.0.0.2:0";

/// A stand-in for the add-on's proxy on a loopback port: answers each tunnel request as `kind`
/// says, and records the request heads it got.
async fn stub_proxy(
    kind: &'static str,
    backend: std::net::SocketAddr,
) -> (
    std::net::SocketAddr,
    std::sync::Arc<std::sync::Mutex<Vec<String>>>,
) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let listener = tokio::net::TcpListener::bind(STUBS).await.unwrap();
    let address = listener.local_addr().unwrap();
    let heads = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = heads.clone();
    tokio::spawn(async move {
        loop {
            let (mut conn, _) = listener.accept().await.unwrap();
            let seen = seen.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    if conn.read(&mut byte).await.unwrap_or(0) == 0 {
                        return;
                    }
                    head.push(byte[0]);
                }
                seen.lock()
                    .unwrap()
                    .push(String::from_utf8_lossy(&head).into_owned());
                match kind {
                    "forwards" => {
                        let mut upstream = tokio::net::TcpStream::connect(backend).await.unwrap();
                        conn.write_all(b"HTTP/1.1 200 Connection Established\r\n\r\n")
                            .await
                            .unwrap();
                        let _ = tokio::io::copy_bidirectional(&mut conn, &mut upstream).await;
                    }
                    "forwards-nothing" => {
                        conn.write_all(b"HTTP/1.1 200 Connection Established\r\n\r\n")
                            .await
                            .unwrap();
                    }
                    _ => {
                        conn.write_all(b"HTTP/1.1 426 Upgrade Required\r\nContent-Length: 25\r\nConnection: close\r\n\r\nthis proxy speaks [\"v1\"]")
                            .await
                            .unwrap();
                    }
                }
            });
        }
    });
    (address, heads)
}

/// A stand-in for a cluster Service's pod: answers every request with `body`.
async fn stub_backend(body: &'static str) -> std::net::SocketAddr {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let listener = tokio::net::TcpListener::bind(STUBS).await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (mut conn, _) = listener.accept().await.unwrap();
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                let _ = conn.read(&mut buf).await;
                let answer = format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = conn.write_all(answer.as_bytes()).await;
            });
        }
    });
    address
}

/// Registers a v1 proxy forwarding `default/web` at `endpoint` in namespace `ns`.
async fn register_at(app: &axum::Router, endpoint: &str) {
    let mut registration = proxy(&["v1"]);
    registration["spec"]["endpoint"] = json!(endpoint);
    let created = post(app, PROXIES, registration).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
}

/// Waits (at most 10 s) until pod `name` runs, so it can exec.
async fn running(app: &axum::Router, name: &str) {
    tokio::time::timeout(Duration::from_secs(10), async {
        while get(app, &format!("{PODS}/{name}")).await.body["status"]["phase"] != "Running" {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the pod runs in time");
}

#[tokio::test]
async fn a_probe_reaches_a_cluster_service_only_when_its_answer_comes_back_through_the_proxy() {
    let backend = stub_backend("hello from web-7f9c").await;
    let (app, _) = mock_with_namespace().await;
    post(&app, PODS, pod("old", json!({}))).await;
    let (endpoint, heads) = stub_proxy("forwards", backend).await;
    register_at(&app, &endpoint.to_string()).await;
    running(&app, "old").await;

    let (code, text) = probe(&app, "old", "web.default:8080").await;
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("hello from web-7f9c"), "{text}");
    assert!(text.contains("HTTP/1.1 200 OK"), "{text}");
    assert!(text.contains(&format!("at {endpoint}")), "{text}");
    let head = heads.lock().unwrap()[0].clone();
    assert!(
        head.starts_with("CONNECT web.default:8080 HTTP/1.1\r\n"),
        "{head}"
    );
    assert!(
        head.to_ascii_lowercase()
            .contains("bursting-sidecar-protocol: v1\r\n"),
        "{head}"
    );
}

#[rstest::rstest]
#[case::a_proxy_that_forwards_nothing("forwards-nothing", "no answer came back through proxy")]
#[case::a_proxy_that_refuses_the_tunnel(
    "refuses",
    "refused the tunnel: HTTP/1.1 426 Upgrade Required: this proxy speaks"
)]
#[tokio::test]
async fn a_probe_through_a_proxy_that_brings_nothing_back_is_unreachable(
    #[case] kind: &'static str,
    #[case] expected: &str,
) {
    let backend = stub_backend("hello").await;
    let (app, _) = mock_with_namespace().await;
    post(&app, PODS, pod("old", json!({}))).await;
    let (endpoint, _) = stub_proxy(kind, backend).await;
    register_at(&app, &endpoint.to_string()).await;
    running(&app, "old").await;
    let (code, text) = probe(&app, "old", "web.default").await;
    assert_eq!(code, 1, "{text}");
    assert!(text.contains(expected), "{text}");
    assert!(!text.contains("hello"), "{text}");
}

#[tokio::test]
async fn a_probe_through_a_proxy_that_is_gone_is_unreachable_and_an_endpoint_must_be_an_address() {
    let (app, _) = mock_with_namespace().await;
    post(&app, PODS, pod("old", json!({}))).await;
    // A port that was just free: nothing listens there.
    let gone = tokio::net::TcpListener::bind(STUBS)
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let mut bad = proxy(&["v1"]);
    bad["spec"]["endpoint"] = json!("proxy.kube-system:8900");
    let reply = post(&app, PROXIES, bad).await;
    assert_status(&reply, 422, "Invalid", "CCI.01.422001");
    assert!(
        reply.message().contains("spec.endpoint: Invalid value"),
        "{}",
        reply.message()
    );
    register_at(&app, &gone.to_string()).await;
    running(&app, "old").await;
    let (code, text) = probe(&app, "old", "web.default").await;
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("does not answer"), "{text}");
}

#[tokio::test(start_paused = true)]
async fn a_probe_reaches_a_cci_service_directly_and_other_commands_are_not_found() {
    let (app, _) = mock_with_namespace().await;
    post(&app, PODS, pod("web", json!({}))).await;
    let service = json!({"apiVersion": "cci/v2", "kind": "Service", "metadata": {"name": "api"},
                         "spec": {"ports": [{"port": 80}]}});
    post(&app, "/apis/cci/v2/namespaces/ns/services", service).await;
    tokio::time::advance(RUNNING_AFTER).await;
    let (code, text) = probe(&app, "web", "api").await;
    assert_eq!(code, 0, "{text}");
    let reply = post(
        &app,
        &format!("{PODS}/web/exec"),
        json!({"command": ["ls", "/"]}),
    )
    .await;
    assert_eq!(reply.body["exitCode"], 127);
}

#[tokio::test]
async fn a_proxy_registration_names_services_as_namespace_and_name() {
    let (app, _) = mock_with_namespace().await;
    let mut bad = proxy(&[]);
    bad["spec"]["services"] = json!(["web"]);
    let reply = post(&app, PROXIES, bad).await;
    assert_status(&reply, 422, "Invalid", "CCI.01.422001");
    assert!(
        reply.message().contains("spec.protocols: Required value"),
        "{}",
        reply.message()
    );
    assert!(
        reply.message().contains("spec.services[0]: Invalid value"),
        "{}",
        reply.message()
    );
}
