//! AK/SK-signed requests (`Authorization: SDK-HMAC-SHA256 …`, `X-Sdk-Date`), driven through
//! `app()` without a socket: served as the pair's tenant when the signature holds, else
//! refused 401 with a message naming why.

use crate::common;

use std::time::{Duration, SystemTime};

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use cci_api::signing::{self, Credentials, SdkDate};
use common::*;
use serde_json::Value;

const ACCESS_KEY: &str = "MOCKACCESSKEY0000001";
const SECRET_KEY: &str = "mock-secret-key-of-tenant-a";
const HOST: &str = "cci.mock.example";

fn credentials(secret_key: &str) -> Credentials {
    Credentials::new(ACCESS_KEY, secret_key).unwrap()
}

/// The common mock, with the AK/SK pair of tenant A besides its tokens.
fn mock_with_aksk() -> (axum::Router, mock_cci::MockState) {
    mock_with(config().with_access_key(credentials(SECRET_KEY), "tenant-a"))
}

/// A request as a client signs it; changed afterwards to play a tamperer.
struct Signed {
    method: Method,
    uri: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Signed {
    /// `method uri` with `body` (JSON) and the `extra` headers, signed with `secret_key` at
    /// `at`; `Host`, `Content-Type` (with a body) and the extras are signed.
    fn new(
        method: Method,
        uri: &str,
        body: Option<Value>,
        extra: &[(&str, &str)],
        secret_key: &str,
        at: SystemTime,
    ) -> Self {
        let mut headers = vec![("Host".to_owned(), HOST.to_owned())];
        if body.is_some() {
            headers.push(("Content-Type".into(), "application/json".into()));
        }
        headers.extend(
            extra
                .iter()
                .map(|(n, v)| ((*n).to_owned(), (*v).to_owned())),
        );
        let body = body
            .map(|json| json.to_string().into_bytes())
            .unwrap_or_default();
        let (path, query) = uri.split_once('?').unwrap_or((uri, ""));
        let pairs: Vec<(&str, &str)> = headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        let signed = signing::sign(
            &credentials(secret_key),
            &signing::Request {
                method: method.as_str(),
                path,
                query,
                headers: &pairs,
                body: &body,
            },
            SdkDate::from_system_time(at),
        );
        for (name, value) in signed.headers() {
            headers.push((name.to_owned(), value.to_owned()));
        }
        Self {
            method,
            uri: uri.to_owned(),
            headers,
            body,
        }
    }

    /// Signed now with the right secret key.
    fn now(method: Method, uri: &str, body: Option<Value>) -> Self {
        Self::new(method, uri, body, &[], SECRET_KEY, SystemTime::now())
    }

    fn set(mut self, name: &str, value: &str) -> Self {
        for header in &mut self.headers {
            if header.0.eq_ignore_ascii_case(name) {
                header.1 = value.to_owned();
            }
        }
        self
    }

    fn without(mut self, name: &str) -> Self {
        self.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        self
    }

    fn request(self) -> Request<Body> {
        let mut request = Request::builder().method(self.method).uri(self.uri);
        for (name, value) in &self.headers {
            request = request.header(name, value);
        }
        request.body(Body::from(self.body)).unwrap()
    }
}

const NAMESPACES: &str = "/apis/cci/v2/namespaces";

fn assert_refused(reply: &Reply, because: &str) {
    assert_status(reply, 401, "Unauthorized", "CCI.01.401000");
    assert!(
        reply
            .message()
            .starts_with("the AK/SK signature is refused: "),
        "{}",
        reply.body
    );
    assert!(reply.message().contains(because), "{}", reply.body);
}

#[tokio::test]
async fn a_correctly_signed_request_is_served_as_the_pairs_tenant() {
    let (app, state) = mock_with_aksk();
    let created = send(
        &app,
        Signed::now(Method::POST, NAMESPACES, Some(namespace("ns"))).request(),
    )
    .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    // The pair's tenant is tenant A: its token sees the namespace, and so does the signature.
    let by_token = get(&app, NAMESPACES).await;
    assert_eq!(by_token.body["items"][0]["metadata"]["name"], "ns");
    let by_signature = send(&app, Signed::now(Method::GET, NAMESPACES, None).request()).await;
    assert_eq!(by_signature.status, StatusCode::OK, "{}", by_signature.body);
    assert_eq!(by_signature.body["items"][0]["metadata"]["name"], "ns");
    let log = state.requests();
    assert_eq!(log[0].tenant.as_deref(), Some("tenant-a"), "{log:?}");
    // Signed requests are logged by their access key; the token one by its fingerprint.
    let credential = format!("aksk:{ACCESS_KEY}");
    assert_eq!(log[0].credential.as_deref(), Some(credential.as_str()));
    assert_eq!(
        log[1].credential,
        Some(format!("token:{}", cci_api::token_fingerprint(TOKEN_A)))
    );
}

#[tokio::test]
async fn a_signed_query_is_part_of_the_signature() {
    let (app, _) = mock_with_namespace_of(mock_with_aksk()).await;
    let uri = "/apis/cci/v2/namespaces/ns/pods?labelSelector=app%3Dweb";
    let reply = send(&app, Signed::now(Method::GET, uri, None).request()).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let mut tampered = Signed::now(Method::GET, uri, None);
    tampered.uri = "/apis/cci/v2/namespaces/ns/pods?labelSelector=app%3Ddb".into();
    assert_refused(
        &send(&app, tampered.request()).await,
        "the signature does not match",
    );
}

async fn mock_with_namespace_of(
    mock: (axum::Router, mock_cci::MockState),
) -> (axum::Router, mock_cci::MockState) {
    with_namespace(mock).await
}

#[tokio::test]
async fn a_request_signed_with_a_wrong_secret_key_is_refused() {
    let (app, state) = mock_with_aksk();
    let signed = Signed::new(
        Method::POST,
        NAMESPACES,
        Some(namespace("ns")),
        &[],
        "not-the-secret-key",
        SystemTime::now(),
    );
    assert_refused(
        &send(&app, signed.request()).await,
        "the signature does not match",
    );
    assert!(state.namespaces().is_empty());
}

#[tokio::test]
async fn a_date_older_than_fifteen_minutes_is_refused() {
    let (app, _) = mock_with_aksk();
    let sixteen_minutes_ago = SystemTime::now() - Duration::from_secs(16 * 60);
    let signed = Signed::new(
        Method::GET,
        NAMESPACES,
        None,
        &[],
        SECRET_KEY,
        sixteen_minutes_ago,
    );
    let reply = send(&app, signed.request()).await;
    assert_refused(&reply, "more than the 15 minutes allowed");
    assert!(reply.message().contains("X-Sdk-Date"), "{}", reply.body);
}

#[tokio::test]
async fn a_date_within_fifteen_minutes_is_accepted() {
    let (app, _) = mock_with_aksk();
    let ten_minutes_ago = SystemTime::now() - Duration::from_secs(10 * 60);
    let signed = Signed::new(
        Method::GET,
        NAMESPACES,
        None,
        &[],
        SECRET_KEY,
        ten_minutes_ago,
    );
    let reply = send(&app, signed.request()).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
}

#[tokio::test]
async fn a_header_listed_as_signed_but_missing_is_refused_naming_it() {
    let (app, _) = mock_with_aksk();
    let signed = Signed::new(
        Method::GET,
        NAMESPACES,
        None,
        &[("X-Request-Id", "r-1")],
        SECRET_KEY,
        SystemTime::now(),
    )
    .without("X-Request-Id");
    assert_refused(
        &send(&app, signed.request()).await,
        "the header x-request-id is listed in SignedHeaders but the request does not carry it",
    );
}

#[tokio::test]
async fn a_signed_header_changed_after_signing_is_refused() {
    let (app, _) = mock_with_aksk();
    let signed = Signed::now(Method::GET, NAMESPACES, None).set("Host", "elsewhere.example");
    assert_refused(
        &send(&app, signed.request()).await,
        "the signature does not match",
    );
}

#[tokio::test]
async fn a_body_changed_after_signing_is_refused() {
    let (app, state) = mock_with_aksk();
    let mut signed = Signed::now(Method::POST, NAMESPACES, Some(namespace("ns")));
    signed.body = namespace("other").to_string().into_bytes();
    assert_refused(
        &send(&app, signed.request()).await,
        "the signature does not match",
    );
    assert!(state.namespaces().is_empty());
}

#[tokio::test]
async fn a_body_that_is_not_the_declared_one_is_refused_naming_the_body() {
    let (app, state) = mock_with_aksk();
    let body = namespace("ns");
    // The body's hash, declared in a signed header: the service then names a changed body.
    let declared = signing::payload_hash(&signing::Request {
        method: "POST",
        path: NAMESPACES,
        query: "",
        headers: &[],
        body: body.to_string().as_bytes(),
    });
    let mut signed = Signed::new(
        Method::POST,
        NAMESPACES,
        Some(body),
        &[("X-Sdk-Content-Sha256", &declared)],
        SECRET_KEY,
        SystemTime::now(),
    );
    signed.body = namespace("other").to_string().into_bytes();
    assert_refused(
        &send(&app, signed.request()).await,
        "the body was changed after signing",
    );
    assert!(state.namespaces().is_empty());
}

#[tokio::test]
async fn an_unknown_access_key_is_refused_naming_it() {
    let (app, _) = mock();
    let reply = send(&app, Signed::now(Method::GET, NAMESPACES, None).request()).await;
    assert_refused(
        &reply,
        &format!("the access key {ACCESS_KEY:?} is not known"),
    );
}

#[tokio::test]
async fn a_malformed_authorization_header_is_refused_with_the_form() {
    let (app, _) = mock_with_aksk();
    let signed = Signed::now(Method::GET, NAMESPACES, None).set(
        "Authorization",
        &format!("SDK-HMAC-SHA256 Access={ACCESS_KEY}, Signature=00"),
    );
    let reply = send(&app, signed.request()).await;
    assert_refused(&reply, "malformed AK/SK signature");
    assert!(
        reply
            .message()
            .contains("SDK-HMAC-SHA256 Access=AK, SignedHeaders=h1;h2, Signature=HEX"),
        "{}",
        reply.body
    );
}

#[tokio::test]
async fn a_refused_signature_is_not_rescued_by_a_token() {
    let (app, _) = mock_with_aksk();
    let signed = Signed::new(
        Method::GET,
        NAMESPACES,
        None,
        &[],
        "not-the-secret-key",
        SystemTime::now(),
    );
    let mut request = signed.request();
    request
        .headers_mut()
        .insert("X-Auth-Token", TOKEN_A.parse().unwrap());
    assert_refused(&send(&app, request).await, "the signature does not match");
}

#[tokio::test]
async fn the_inside_view_needs_no_signature_even_with_a_bad_one() {
    let (app, _) = mock_with_aksk();
    let request = Request::get("/_mock/state")
        .header("Authorization", "SDK-HMAC-SHA256 garbage")
        .body(Body::empty())
        .unwrap();
    assert_eq!(send(&app, request).await.status, StatusCode::OK);
}
