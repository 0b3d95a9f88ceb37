//! The engine's CCI client signing with an AK/SK pair instead of sending a token: what the
//! server receives (a scripted server), that the strict mock serves it as the pair's tenant,
//! and the binary taking the pair from the environment or a file, never from a flag.

use crate::common;

use std::time::{Duration, SystemTime};

use bursting_engine::cci::PodWatchEvent;
use bursting_engine::{CciClient, CciProvider, Error, MemoryObjects};
use cci_api::signing::{self, Credentials};
use cci_api::{API_PREFIX, Namespace};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use mock_cci::{MockConfig, Server};
use vk::Provider;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const ACCESS_KEY: &str = "ENGINEACCESSKEY00001";
const SECRET_KEY: &str = "engine-test-secret-key";

fn credentials(secret_key: &str) -> Credentials {
    Credentials::new(ACCESS_KEY, secret_key).unwrap()
}

fn namespace(name: &str) -> Namespace {
    Namespace::new(ObjectMeta {
        name: Some(name.into()),
        ..ObjectMeta::default()
    })
}

/// The mock with the pair, for tenant A, and a client signing with `secret_key`.
async fn mock_signed_with(secret_key: &str) -> (Server, CciClient) {
    let server = Server::bind(
        MockConfig::default()
            .with_access_key(credentials(SECRET_KEY), "tenant-a")
            .with_running_after(Duration::ZERO),
    )
    .await
    .unwrap();
    let cci = CciClient::with_aksk(&server.url(), credentials(secret_key)).unwrap();
    (server, cci)
}

#[tokio::test]
async fn a_signed_request_reaches_the_server_with_an_sdk_hmac_sha256_authorization_and_no_token() {
    let server = MockServer::start().await;
    let namespaces = format!("{API_PREFIX}/namespaces");
    Mock::given(method("POST"))
        .and(path(namespaces.as_str()))
        .respond_with(
            ResponseTemplate::new(201)
                .set_body_json(serde_json::to_value(namespace("ns")).unwrap()),
        )
        .mount(&server)
        .await;
    let cci = CciClient::with_aksk(&server.uri(), credentials(SECRET_KEY)).unwrap();
    cci.create_namespace(&namespace("ns")).await.unwrap();

    let received = server.received_requests().await.unwrap();
    assert_eq!(received.len(), 1);
    let request = &received[0];
    assert!(
        !request.headers.contains_key("x-auth-token"),
        "{:?}",
        request.headers
    );
    let authorization = request.headers["authorization"].to_str().unwrap();
    assert!(
        authorization.starts_with(&format!(
            "SDK-HMAC-SHA256 Access={ACCESS_KEY}, SignedHeaders=accept;content-type;host;x-sdk-date, Signature="
        )),
        "{authorization}"
    );
    let date = request.headers["x-sdk-date"].to_str().unwrap();
    signing::SdkDate::parse(date).unwrap();
    // The request as received verifies: the host, path, headers and body are the signed ones.
    let headers: Vec<(&str, &str)> = request
        .headers
        .iter()
        .map(|(name, value)| (name.as_str(), value.to_str().unwrap()))
        .collect();
    let pair = credentials(SECRET_KEY);
    let verified = signing::verify(
        &signing::Request {
            method: request.method.as_str(),
            path: request.url.path(),
            query: request.url.query().unwrap_or_default(),
            headers: &headers,
            body: &request.body,
        },
        SystemTime::now(),
        |_| Some(&pair),
    );
    assert_eq!(verified.as_deref(), Ok(ACCESS_KEY));
}

#[tokio::test]
async fn the_strict_mock_serves_a_signing_engine_as_the_pairs_tenant() {
    let (server, cci) = mock_signed_with(SECRET_KEY).await;
    let provider = CciProvider::new(cci.clone(), MemoryObjects::default(), "c1").unwrap();
    provider
        .create_pod(&common::pod("web-0", "uid-1", vec![]))
        .await
        .unwrap();
    // A watch carries its query (`watch=true&timeoutSeconds=1`), which is signed too.
    let mut watch = cci
        .watch_pod_summaries("bursting-c1", None, Duration::from_secs(1))
        .await
        .unwrap();
    let Some(PodWatchEvent::Added(added)) = watch.next().await.unwrap() else {
        panic!("no ADDED event first")
    };
    assert_eq!(added.metadata.name.as_deref(), Some("shop.web-0"));
    provider
        .delete_pod(&common::pod("web-0", "uid-1", vec![]))
        .await
        .unwrap();
    let requests = server.state().requests();
    assert!(requests.len() >= 4, "{requests:?}");
    assert!(
        requests
            .iter()
            .all(|r| r.tenant.as_deref() == Some("tenant-a") && r.status < 300),
        "{requests:?}"
    );
}

#[tokio::test]
async fn a_wrong_secret_key_is_a_401_naming_the_signature() {
    let (_server, cci) = mock_signed_with("not-the-secret-key").await;
    let err = cci.create_namespace(&namespace("ns")).await.unwrap_err();
    let Error::Api { code, message, .. } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(*code, 401);
    assert!(
        message.contains("the signature does not match"),
        "{message}"
    );
}

fn gc_command(endpoint: &str, env: &[(&str, &str)], args: &[&str]) -> std::process::Output {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_bursting-engine"));
    command
        .args([
            "gc",
            "--scope",
            "namespace",
            "--cci-endpoint",
            endpoint,
            "--cluster-id",
            "c1",
        ])
        .args(args)
        .env_remove("CCI_TOKEN")
        .env_remove("CCI_ACCESS_KEY")
        .env_remove("CCI_SECRET_KEY");
    for (name, value) in env {
        command.env(name, value);
    }
    command.output().unwrap()
}

#[tokio::test]
async fn the_binary_signs_with_a_pair_from_the_environment_or_a_file() {
    let (server, _) = mock_signed_with(SECRET_KEY).await;
    let url = server.url();
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        file.path(),
        format!("# the pair\n{ACCESS_KEY}:{SECRET_KEY}\n"),
    )
    .unwrap();
    let path = file.path().to_str().unwrap().to_owned();
    let (from_env, from_file) = tokio::task::spawn_blocking(move || {
        (
            gc_command(
                &url,
                &[
                    ("CCI_ACCESS_KEY", ACCESS_KEY),
                    ("CCI_SECRET_KEY", SECRET_KEY),
                ],
                &[],
            ),
            gc_command(&url, &[], &["--cci-aksk-file", &path]),
        )
    })
    .await
    .unwrap();
    for out in [from_env, from_file] {
        assert!(out.status.success(), "{out:?}");
        assert!(
            String::from_utf8_lossy(&out.stdout).ends_with("; namespace absent\n"),
            "{out:?}"
        );
        assert!(!String::from_utf8_lossy(&out.stderr).contains(SECRET_KEY));
    }
    let requests = server.state().requests();
    assert!(!requests.is_empty());
    assert!(
        requests
            .iter()
            .all(|r| r.tenant.as_deref() == Some("tenant-a")),
        "{requests:?}"
    );
}

#[test]
fn the_binary_refuses_half_a_pair_or_a_token_beside_a_pair_as_a_usage_error() {
    let endpoint = "http://127.0.0.1:1";
    let half = gc_command(endpoint, &[("CCI_ACCESS_KEY", ACCESS_KEY)], &[]);
    assert_eq!(half.status.code(), Some(2), "{half:?}");
    let stderr = String::from_utf8_lossy(&half.stderr);
    assert!(stderr.contains("CCI_SECRET_KEY is not"), "{stderr}");

    let both = gc_command(
        endpoint,
        &[
            ("CCI_TOKEN", "t"),
            ("CCI_ACCESS_KEY", ACCESS_KEY),
            ("CCI_SECRET_KEY", SECRET_KEY),
        ],
        &[],
    );
    assert_eq!(both.status.code(), Some(2), "{both:?}");
    let stderr = String::from_utf8_lossy(&both.stderr);
    assert!(stderr.contains("give one"), "{stderr}");
    assert!(!stderr.contains(SECRET_KEY), "{stderr}");
}
