//! An IAM token read from a file: a renewed file is used from the next request on, and a 401
//! (CCI's answer to an expired token) makes the client read the file again and send the
//! request once more, only when the file holds another token.

use std::time::{Duration, SystemTime};

use bursting_engine::cci::TokenFile;
use bursting_engine::{CciAuth, CciClient, Error};
use cci_api::{API_PREFIX, AUTH_HEADER};
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const OLD: &str = "token-old-0001";
const NEW: &str = "token-new-0002";

/// A server that answers the namespace `ns` to `NEW` and 401 to `OLD`.
async fn server_knowing_only_the_new_token() -> MockServer {
    let server = MockServer::start().await;
    let at = format!("{API_PREFIX}/namespaces/ns");
    Mock::given(method("GET"))
        .and(path(at.as_str()))
        .and(header(AUTH_HEADER, NEW))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
            "apiVersion": "cci/v2", "kind": "Namespace", "metadata": {"name": "ns"}
        })))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(at.as_str()))
        .and(header(AUTH_HEADER, OLD))
        .respond_with(ResponseTemplate::new(401).set_body_json(serde_json::json!({
            "kind": "Status", "apiVersion": "v1", "status": "Failure",
            "message": "the token expired", "reason": "Unauthorized", "code": 401
        })))
        .mount(&server)
        .await;
    server
}

/// The tokens the server received, in order.
async fn sent(server: &MockServer) -> Vec<String> {
    server
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .filter_map(|r| r.headers.get(AUTH_HEADER))
        .map(|v| v.to_str().unwrap_or_default().to_owned())
        .collect()
}

/// Writes `token` into `file`, and sets its modification time to `modified`.
fn write(file: &std::path::Path, token: &str, modified: SystemTime) {
    std::fs::write(file, format!("{token}\n")).unwrap();
    std::fs::File::options()
        .write(true)
        .open(file)
        .unwrap()
        .set_modified(modified)
        .unwrap();
}

#[tokio::test]
async fn a_401_reads_the_file_again_and_sends_once_more_with_the_renewed_token() {
    let server = server_knowing_only_the_new_token().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("token");
    let then = SystemTime::now() - Duration::from_secs(3600);
    write(&file, OLD, then);
    let cci = CciClient::with_auth(
        &server.uri(),
        CciAuth::TokenFile(TokenFile::open(&file).unwrap()),
    )
    .unwrap();
    // Renewed, but with the same modification time: only the 401 can tell the client.
    write(&file, NEW, then);
    cci.get_namespace("ns").await.unwrap();
    assert_eq!(sent(&server).await, [OLD, NEW]);
}

#[tokio::test]
async fn a_changed_file_is_read_before_the_next_request_and_a_401_with_no_renewal_is_an_error() {
    let server = server_knowing_only_the_new_token().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("token");
    write(&file, OLD, SystemTime::now() - Duration::from_secs(3600));
    let cci = CciClient::with_auth(
        &server.uri(),
        CciAuth::TokenFile(TokenFile::open(&file).unwrap()),
    )
    .unwrap();
    // Not renewed: refused once, not sent again.
    let err = cci.get_namespace("ns").await.unwrap_err();
    assert!(matches!(err, Error::Api { code: 401, .. }), "{err}");
    assert_eq!(sent(&server).await, [OLD]);
    write(&file, NEW, SystemTime::now());
    cci.get_namespace("ns").await.unwrap();
    assert_eq!(
        sent(&server).await,
        [OLD, NEW],
        "the new token at once, no 401 first"
    );
}

#[test]
fn an_empty_or_missing_token_file_is_refused_naming_the_file_not_its_content() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("token");
    let err = TokenFile::open(&file).unwrap_err();
    assert!(err.contains("cannot read the token file"), "{err}");
    std::fs::write(&file, " \n").unwrap();
    let err = TokenFile::open(&file).unwrap_err();
    assert!(err.contains("is empty"), "{err}");
    write(&file, OLD, SystemTime::now());
    let shown = format!("{:?}", CciAuth::TokenFile(TokenFile::open(&file).unwrap()));
    assert!(!shown.contains(OLD), "{shown}");
}
