//! Helpers shared by the API tests: a mock driven through `app()` and JSON requests.
#![allow(dead_code)]

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use http_body_util::BodyExt;
use mock_cci::{MockConfig, MockState, app};
use serde_json::{Value, json};
use tower::ServiceExt;

pub const TOKEN_A: &str = "token-a";
pub const TOKEN_B: &str = "token-b";
pub const RUNNING_AFTER: Duration = Duration::from_millis(500);

pub fn config() -> MockConfig {
    MockConfig::default()
        .with_token(TOKEN_A, "tenant-a")
        .with_token(TOKEN_B, "tenant-b")
        .with_running_after(RUNNING_AFTER)
        .with_network_ready_after(Duration::ZERO)
}

pub fn mock_with(config: MockConfig) -> (Router, MockState) {
    let state = MockState::new(config);
    (app(state.clone()), state)
}

pub fn mock() -> (Router, MockState) {
    mock_with(config())
}

#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub body: Value,
}

impl Reply {
    pub fn message(&self) -> &str {
        self.body["message"].as_str().unwrap_or_default()
    }
}

pub async fn send(app: &Router, request: Request<Body>) -> Reply {
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let body = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    Reply { status, body }
}

pub fn request(
    method: Method,
    uri: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> Request<Body> {
    let mut request = Request::builder().method(method).uri(uri);
    if let Some(token) = token {
        request = request.header("X-Auth-Token", token);
    }
    let body = match body {
        Some(json) => {
            request = request.header(header::CONTENT_TYPE, "application/json");
            Body::from(json.to_string())
        }
        None => Body::empty(),
    };
    request.body(body).unwrap()
}

pub async fn call(
    app: &Router,
    method: Method,
    uri: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> Reply {
    send(app, request(method, uri, token, body)).await
}

/// As tenant A.
pub async fn get(app: &Router, uri: &str) -> Reply {
    call(app, Method::GET, uri, Some(TOKEN_A), None).await
}

/// As tenant A.
pub async fn post(app: &Router, uri: &str, body: Value) -> Reply {
    call(app, Method::POST, uri, Some(TOKEN_A), Some(body)).await
}

/// As tenant A.
pub async fn put(app: &Router, uri: &str, body: Value) -> Reply {
    call(app, Method::PUT, uri, Some(TOKEN_A), Some(body)).await
}

/// As tenant A.
pub async fn delete(app: &Router, uri: &str) -> Reply {
    call(app, Method::DELETE, uri, Some(TOKEN_A), None).await
}

pub fn namespace(name: &str) -> Value {
    json!({"apiVersion": "cci/v2", "kind": "Namespace", "metadata": {"name": name}})
}

pub fn resources(cpu: &str, memory: &str) -> Value {
    json!({
        "requests": {"cpu": cpu, "memory": memory},
        "limits": {"cpu": cpu, "memory": memory},
    })
}

pub fn pod(name: &str, labels: Value) -> Value {
    json!({
        "apiVersion": "cci/v2",
        "kind": "Pod",
        "metadata": {"name": name, "labels": labels},
        "spec": {"containers": [{
            "name": "app",
            "image": "nginx:1.27",
            "resources": resources("500m", "1Gi"),
        }]},
    })
}

/// A Network as the published getting-started creates one: on VPC subnet `subnet`.
pub fn network(name: &str, subnet: &str) -> Value {
    json!({
        "apiVersion": "yangtse/v2",
        "kind": "Network",
        "metadata": {"name": name, "annotations": {
            "yangtse.io/project-id": "project-a",
            "yangtse.io/domain-id": "domain-a",
        }},
        "spec": {
            "networkType": "underlay_neutron",
            "securityGroups": ["sg-1"],
            "subnets": [{"subnetID": subnet}],
        },
    })
}

/// The networks of namespace `ns`.
pub fn networks(ns: &str) -> String {
    format!("/apis/yangtse/v2/namespaces/{ns}/networks")
}

/// Creates a Network in namespace `ns` of tenant A (Ready at once under [`config`]).
pub async fn with_network(app: &Router, ns: &str) {
    let reply = post(app, &networks(ns), network("net", "subnet-1")).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
}

/// A mock with namespace `ns` of tenant A, with a Ready Network.
pub async fn mock_with_namespace() -> (Router, MockState) {
    with_namespace(mock()).await
}

/// Creates namespace `ns` of tenant A in this mock, and its Network (pods wait for one).
pub async fn with_namespace((app, state): (Router, MockState)) -> (Router, MockState) {
    let reply = post(&app, "/apis/cci/v2/namespaces", namespace("ns")).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    with_network(&app, "ns").await;
    (app, state)
}

pub const PODS: &str = "/apis/cci/v2/namespaces/ns/pods";

pub fn assert_status(reply: &Reply, code: u16, reason: &str, error_code: &str) {
    assert_eq!(reply.status.as_u16(), code, "{}", reply.body);
    assert_eq!(reply.body["kind"], "Status", "{}", reply.body);
    assert_eq!(reply.body["apiVersion"], "v1");
    assert_eq!(reply.body["status"], "Failure");
    assert_eq!(reply.body["code"], code);
    assert_eq!(reply.body["reason"], reason, "{}", reply.body);
    assert_eq!(reply.body["errorCode"], error_code, "{}", reply.body);
    assert!(!reply.message().is_empty());
}

pub fn rv(object: &Value) -> u64 {
    object["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap()
}

/// A reqwest client whose TLS trusts only the CA certificates of `ca_pem` (rustls with ring);
/// without one it trusts no server, for plain HTTP.
pub fn http_client(ca_pem: Option<&str>) -> reqwest::Client {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject as _;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.unwrap_or_default().as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let tls = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .build()
        .unwrap()
}

/// PEM texts of a fresh CA and a serving certificate it signed for `127.0.0.1` and `localhost`.
pub struct TestPki {
    pub ca_pem: String,
    pub cert_pem: String,
    pub key_pem: String,
}

/// A fresh [`TestPki`].
pub fn test_pki() -> TestPki {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair, SanType};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca, ca_key);
    let key = KeyPair::generate().unwrap();
    let mut serving = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    serving
        .subject_alt_names
        .push(SanType::IpAddress([127, 0, 0, 1].into()));
    let cert = serving.signed_by(&key, &issuer).unwrap();
    TestPki {
        ca_pem: ca_cert.pem(),
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    }
}

/// The rest of `child`'s first line on stdout after `prefix` (what the project's binaries print
/// once they listen, e.g. `mock-cci listening on `), within 20 s; panics on another line.
pub async fn listening(child: &mut tokio::process::Child, prefix: &str) -> String {
    use tokio::io::AsyncBufReadExt as _;
    let stdout = child.stdout.take().expect("the child's stdout is piped");
    let mut line = String::new();
    tokio::time::timeout(
        Duration::from_secs(20),
        tokio::io::BufReader::new(stdout).read_line(&mut line),
    )
    .await
    .expect("the address line within the deadline")
    .expect("the child's stdout reads");
    line.trim_end()
        .strip_prefix(prefix)
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_owned()
}
