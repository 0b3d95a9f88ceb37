//! The engine's real CCI client ([`CciClient`], and [`CciProvider`] on top of it) against
//! protocol-level faults: bodies cut off, HTML where JSON was promised, wrong content types,
//! throttling, a create applied but answered with an error, connections closed mid-answer.
//! Each test says what the engine does: the error it returns, whether it retries, that it never
//! panics and never creates a pod twice. `wiremock` answers at the HTTP level; what it cannot do
//! (close a connection mid-answer) a raw `TcpListener` does.

use crate::common;

use std::time::{Duration, Instant};

use bursting_engine::cci::MAX_RETRY_AFTER;
use bursting_engine::{CciClient, CciProvider, DEFAULT_RELEASE, Error, MemoryObjects, translate};
use cci_api::{API_PREFIX, Status};
use rstest::rstest;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use vk::Provider;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// The CCI namespace of cluster `c1`.
const NS: &str = "bursting-c1";

const HTML: &str = "<html><head><title>502 Bad Gateway</title></head>\
                    <body><center><h1>502 Bad Gateway</h1></center></body></html>";

fn pods_path() -> String {
    format!("{API_PREFIX}/namespaces/{NS}/pods")
}

fn pod_path() -> String {
    format!("{API_PREFIX}/namespaces/{NS}/pods/shop.web-0")
}

fn client(endpoint: &str) -> CciClient {
    CciClient::new(endpoint, "secret").unwrap()
}

/// The CCI pod the engine makes of cluster pod `shop/web-0` with UID `uid`.
fn cci_pod(uid: &str) -> cci_api::Pod {
    translate::to_cci_pod(
        &common::pod("web-0", uid, vec![]),
        "c1",
        DEFAULT_RELEASE,
        None,
    )
    .unwrap()
}

fn pod_json(uid: &str) -> Vec<u8> {
    serde_json::to_vec(&cci_pod(uid)).unwrap()
}

/// `bytes` cut in the middle.
fn truncated(bytes: &[u8]) -> Vec<u8> {
    bytes[..bytes.len() / 2].to_vec()
}

fn status_json(code: u16, reason: &str) -> serde_json::Value {
    serde_json::to_value(Status {
        kind: "Status".into(),
        api_version: "v1".into(),
        status: "Failure".into(),
        message: format!("{reason} (from the test)"),
        reason: reason.into(),
        code,
        error_code: "CCI.01.000000".into(),
    })
    .unwrap()
}

/// The requests `server` received with `verb` on `at`.
async fn received(server: &MockServer, verb: &str, at: &str) -> Vec<wiremock::Request> {
    server
        .received_requests()
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.method.as_str() == verb && r.url.path() == at)
        .collect()
}

/// A server that answers the first request on `pods_path()` with `template`, every further one
/// with a 500 (so a silent retry by the client shows in the answer).
async fn answering_once(verb: &str, template: ResponseTemplate) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method(verb))
        .and(path(pods_path()))
        .respond_with(template.clone())
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method(verb))
        .and(path(pod_path()))
        .respond_with(template)
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(wiremock::matchers::any())
        .respond_with(ResponseTemplate::new(500).set_body_json(status_json(500, "Retried")))
        .mount(&server)
        .await;
    server
}

/// What the virtual kubelet's controller makes of `e`: retried with backoff or not.
fn retryable(e: Error) -> bool {
    vk::ProviderError::from(e).is_retryable()
}

#[tokio::test]
async fn a_truncated_body_is_a_transient_decode_error_not_a_panic() {
    let cut = truncated(&pod_json("uid-1"));
    let server = answering_once(
        "POST",
        ResponseTemplate::new(201).set_body_raw(cut.clone(), "application/json"),
    )
    .await;
    let err = client(&server.uri())
        .create_pod(NS, &cci_pod("uid-1"))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Decode { .. }), "{err:?}");
    assert_eq!(
        received(&server, "POST", &pods_path()).await.len(),
        1,
        "not re-sent"
    );
    assert!(retryable(err));

    let server = answering_once(
        "GET",
        ResponseTemplate::new(200).set_body_raw(cut, "application/json"),
    )
    .await;
    let c = client(&server.uri());
    let err = c.get_pod(NS, "shop.web-0").await.unwrap_err();
    assert!(matches!(err, Error::Decode { .. }), "{err:?}");
    let err = c.list_pod_summaries(NS).await.unwrap_err();
    assert!(matches!(err, Error::Decode { .. }), "{err:?}");
}

#[tokio::test]
async fn a_body_cut_off_by_a_closed_connection_is_a_transient_http_error() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let body = pod_json("uid-1");
    let server = tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut request = [0; 4096];
        let _ = socket.read(&mut request).await.unwrap();
        // Promises the whole pod, sends half, hangs up.
        let head = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
            body.len()
        );
        socket.write_all(head.as_bytes()).await.unwrap();
        socket.write_all(&truncated(&body)).await.unwrap();
    });
    let err = client(&format!("http://{addr}"))
        .get_pod(NS, "shop.web-0")
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Http { .. }), "{err:?}");
    assert!(retryable(err));
    server.await.unwrap();
}

#[rstest]
#[case::an_html_page(ResponseTemplate::new(200).set_body_raw(HTML, "text/html"))]
#[case::garbage_labelled_json(
    ResponseTemplate::new(200).set_body_raw(&b"\x00\xffnot json at all"[..], "application/json")
)]
#[tokio::test]
async fn a_200_whose_body_is_not_json_is_a_transient_decode_error(
    #[case] answer: ResponseTemplate,
) {
    let server = answering_once("GET", answer).await;
    let err = client(&server.uri())
        .get_pod(NS, "shop.web-0")
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Decode { .. }), "{err:?}");
    assert!(retryable(err));
}

#[tokio::test]
async fn an_html_page_with_status_502_is_a_transient_api_error_named_bad_gateway() {
    let server = answering_once(
        "POST",
        ResponseTemplate::new(502).set_body_raw(HTML, "text/html"),
    )
    .await;
    let err = client(&server.uri())
        .create_pod(NS, &cci_pod("uid-1"))
        .await
        .unwrap_err();
    let Error::Api {
        code,
        reason,
        message,
        ..
    } = &err
    else {
        panic!("{err:?}");
    };
    assert_eq!((*code, reason.as_str()), (502, "BadGateway"));
    assert!(message.contains("502 Bad Gateway"), "{message}");
    assert_eq!(
        received(&server, "POST", &pods_path()).await.len(),
        1,
        "not re-sent"
    );
    assert!(retryable(err));
}

#[tokio::test]
async fn a_json_body_labelled_text_plain_is_read_as_json() {
    // NB: the client never reads Content-Type; it goes by the body.
    let server = answering_once(
        "GET",
        ResponseTemplate::new(200).set_body_raw(pod_json("uid-1"), "text/plain"),
    )
    .await;
    let pod = client(&server.uri())
        .get_pod(NS, "shop.web-0")
        .await
        .unwrap();
    assert_eq!(pod.metadata.name.as_deref(), Some("shop.web-0"));
}

#[tokio::test]
async fn a_delete_answered_200_reads_no_body_so_any_body_is_success() {
    let server = answering_once(
        "DELETE",
        ResponseTemplate::new(200).set_body_raw(HTML, "text/html"),
    )
    .await;
    client(&server.uri())
        .delete_pod(NS, "shop.web-0")
        .await
        .unwrap();
    assert_eq!(received(&server, "DELETE", &pod_path()).await.len(), 1);
}

fn throttled(retry_after: &str) -> ResponseTemplate {
    ResponseTemplate::new(429)
        .insert_header("retry-after", retry_after)
        .set_body_json(status_json(429, "TooManyRequests"))
}

#[tokio::test]
async fn a_429_with_a_short_retry_after_is_sent_again_once_after_waiting() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(pods_path()))
        .respond_with(throttled("1"))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(pods_path()))
        .respond_with(
            ResponseTemplate::new(201).set_body_raw(pod_json("uid-1"), "application/json"),
        )
        .mount(&server)
        .await;
    let start = Instant::now();
    let pod = client(&server.uri())
        .create_pod(NS, &cci_pod("uid-1"))
        .await
        .unwrap();
    assert!(
        start.elapsed() >= Duration::from_secs(1),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(pod.metadata.name.as_deref(), Some("shop.web-0"));
    let posts = received(&server, "POST", &pods_path()).await;
    assert_eq!(posts.len(), 2);
    assert_eq!(posts[0].body, posts[1].body, "the same pod, sent again");
}

#[tokio::test]
async fn a_429_that_persists_is_retried_once_then_surfaced_as_transient() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(pod_path()))
        .respond_with(throttled("1"))
        .mount(&server)
        .await;
    let err = client(&server.uri())
        .get_pod(NS, "shop.web-0")
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(429), "{err:?}");
    assert_eq!(received(&server, "GET", &pod_path()).await.len(), 2);
    assert!(retryable(err));
}

#[rstest]
#[case::longer_than_the_bound(&(MAX_RETRY_AFTER.as_secs() + 1).to_string())]
#[case::an_http_date("Wed, 21 Oct 2037 07:28:00 GMT")]
#[case::garbage("soon")]
#[tokio::test]
async fn a_429_with_a_long_or_unreadable_retry_after_is_surfaced_at_once(
    #[case] retry_after: &str,
) {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(pod_path()))
        .respond_with(throttled(retry_after))
        .mount(&server)
        .await;
    let start = Instant::now();
    let err = client(&server.uri())
        .get_pod(NS, "shop.web-0")
        .await
        .unwrap_err();
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(err.code(), Some(429), "{err:?}");
    assert_eq!(received(&server, "GET", &pod_path()).await.len(), 1);
    assert!(retryable(err));
}

/// A create CCI applied but answered with `lost` (the answer lost in a gateway): the
/// controller's retry gets 409 AlreadyExists, reads the pod, finds it is this pod's, and
/// succeeds. The engine sends the same pod name both times, so CCI cannot hold two.
#[rstest]
#[case::gateway_timeout(ResponseTemplate::new(504).set_body_raw(HTML, "text/html"))]
#[case::truncated_201(ResponseTemplate::new(201).set_body_raw(truncated(&pod_json("uid-1")), "application/json"))]
#[tokio::test]
async fn a_create_applied_but_answered_with_an_error_is_adopted_on_the_retry_never_created_twice(
    #[case] lost: ResponseTemplate,
) {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(format!("{API_PREFIX}/namespaces")))
        .respond_with(ResponseTemplate::new(409).set_body_json(status_json(409, "AlreadyExists")))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(pods_path()))
        .respond_with(lost)
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(pods_path()))
        .respond_with(ResponseTemplate::new(409).set_body_json(status_json(409, "AlreadyExists")))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(pod_path()))
        .respond_with(
            ResponseTemplate::new(200).set_body_raw(pod_json("uid-1"), "application/json"),
        )
        .mount(&server)
        .await;
    let provider = CciProvider::new(client(&server.uri()), MemoryObjects::default(), "c1").unwrap();
    let web = common::pod("web-0", "uid-1", vec![]);

    let err = provider.create_pod(&web).await.unwrap_err();
    assert!(err.is_retryable(), "{err}");
    provider.create_pod(&web).await.unwrap();

    let posts = received(&server, "POST", &pods_path()).await;
    assert_eq!(
        posts.len(),
        2,
        "one create per attempt, none re-sent by the client"
    );
    let names: Vec<_> = posts
        .iter()
        .map(|r| {
            serde_json::from_slice::<cci_api::Pod>(&r.body)
                .unwrap()
                .metadata
                .name
        })
        .collect();
    assert_eq!(names, vec![Some("shop.web-0".to_string()); 2]);
    let requests = server.received_requests().await.unwrap();
    assert!(
        requests.iter().all(|r| r.method.as_str() != "DELETE"),
        "nothing deleted"
    );
}

#[tokio::test]
async fn a_409_over_a_pod_of_another_uid_is_a_transient_name_taken() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(format!("{API_PREFIX}/namespaces")))
        .respond_with(ResponseTemplate::new(409).set_body_json(status_json(409, "AlreadyExists")))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(pods_path()))
        .respond_with(ResponseTemplate::new(409).set_body_json(status_json(409, "AlreadyExists")))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(pod_path()))
        .respond_with(
            ResponseTemplate::new(200).set_body_raw(pod_json("uid-0"), "application/json"),
        )
        .mount(&server)
        .await;
    let provider = CciProvider::new(client(&server.uri()), MemoryObjects::default(), "c1").unwrap();
    let err = provider
        .create_pod(&common::pod("web-0", "uid-1", vec![]))
        .await
        .unwrap_err();
    assert!(err.is_retryable(), "{err}");
    assert!(err.to_string().contains("uid-0"), "{err}");
}

#[rstest]
#[case::before_reading_the_request(false)]
#[case::after_reading_the_request(true)]
#[tokio::test]
async fn a_connection_closed_without_an_answer_is_a_transient_http_error_and_not_resent(
    #[case] read_first: bool,
) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepts = tokio::spawn(async move {
        let mut accepts = 0;
        // Until the client is done: then no connection comes within the deadline.
        while let Ok(Ok((mut socket, _))) =
            tokio::time::timeout(Duration::from_secs(1), listener.accept()).await
        {
            accepts += 1;
            if read_first {
                let mut request = [0; 4096];
                let _ = socket.read(&mut request).await;
            }
            drop(socket);
        }
        accepts
    });
    let err = client(&format!("http://{addr}"))
        .create_pod(NS, &cci_pod("uid-1"))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Http { .. }), "{err:?}");
    assert!(retryable(err));
    assert_eq!(accepts.await.unwrap(), 1, "the create was not sent again");
}

/// The CCI pod of `shop/web-0` as CCI shows it during a graceful delete.
fn terminating_pod_json(uid: &str) -> Vec<u8> {
    let mut pod = cci_pod(uid);
    pod.metadata.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
        k8s_openapi::jiff::Timestamp::now(),
    ));
    pod.metadata.deletion_grace_period_seconds = Some(5);
    serde_json::to_vec(&pod).unwrap()
}

#[rstest]
#[case::no_grace_named(None, 0)]
#[case::forced(Some(0), 1)]
#[case::shorter_grace(Some(2), 1)]
#[tokio::test]
async fn a_delete_of_a_pod_already_terminating_on_cci_cuts_its_grace_short_only_when_asked(
    #[case] grace: Option<i64>,
    #[case] deletes: usize,
) {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(pod_path()))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_raw(terminating_pod_json("uid-1"), "application/json"),
        )
        .mount(&server)
        .await;
    Mock::given(method("DELETE"))
        .and(path(pod_path()))
        .respond_with(
            ResponseTemplate::new(200).set_body_raw(pod_json("uid-1"), "application/json"),
        )
        .mount(&server)
        .await;
    let provider = CciProvider::new(client(&server.uri()), MemoryObjects::default(), "c1").unwrap();
    // What the orphan sweep hands over (no grace period: the cluster pod is gone) or a
    // cluster delete with its own grace period.
    let mut web = common::pod("web-0", "uid-1", vec![]);
    web.metadata.deletion_grace_period_seconds = grace;

    provider.delete_pod(&web).await.unwrap();

    assert_eq!(
        received(&server, "DELETE", &pod_path()).await.len(),
        deletes
    );
}

#[rstest]
#[case::answers(ResponseTemplate::new(200).set_body_json(serde_json::json!({"apiVersion": "cci/v2", "kind": "Namespace", "metadata": {"name": NS}})), true)]
#[case::namespace_not_made_yet(ResponseTemplate::new(404).set_body_json(status_json(404, "NotFound")), true)]
#[case::unavailable(ResponseTemplate::new(503).set_body_json(status_json(503, "ServiceUnavailable")), false)]
#[case::gateway_page(ResponseTemplate::new(502).set_body_raw(HTML, "text/html"), false)]
#[tokio::test]
async fn the_node_is_healthy_while_the_cluster_namespace_can_be_read(
    #[case] answer: ResponseTemplate,
    #[case] healthy: bool,
) {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(format!("{API_PREFIX}/namespaces/{NS}")))
        .respond_with(answer)
        .mount(&server)
        .await;
    let provider = CciProvider::new(client(&server.uri()), MemoryObjects::default(), "c1").unwrap();

    assert_eq!(provider.ping().await.is_ok(), healthy);
    // One small request: a ping never lists pods.
    let requests = server.received_requests().await.unwrap();
    assert_eq!(requests.len(), 1);
}

/// A namespace as CCI answers a create or a read of it.
fn namespace_json() -> serde_json::Value {
    serde_json::json!({"apiVersion": "cci/v2", "kind": "Namespace", "metadata": {"name": NS}})
}

#[rstest]
#[case::created(ResponseTemplate::new(201).set_body_json(namespace_json()), Ok(true))]
#[case::there_already(ResponseTemplate::new(409).set_body_json(status_json(409, "AlreadyExists")), Ok(false))]
#[case::forbidden(ResponseTemplate::new(403).set_body_json(status_json(403, "Forbidden")), Err(403))]
#[case::unavailable(ResponseTemplate::new(503).set_body_json(status_json(503, "ServiceUnavailable")), Err(503))]
#[tokio::test]
async fn the_cluster_namespace_is_created_or_found_and_any_other_answer_is_an_error(
    #[case] answer: ResponseTemplate,
    #[case] expected: std::result::Result<bool, u16>,
) {
    let server = MockServer::start().await;
    let namespaces = format!("{API_PREFIX}/namespaces");
    Mock::given(method("POST"))
        .and(path(&namespaces))
        .respond_with(answer)
        .mount(&server)
        .await;
    let got = client(&server.uri()).ensure_cluster_namespace("c1").await;
    assert_eq!(got.map_err(|e| e.code().unwrap_or(0)), expected);
    let sent = received(&server, "POST", &namespaces).await;
    assert_eq!(sent.len(), 1, "one create, no retry");
    let body: serde_json::Value = serde_json::from_slice(&sent[0].body).unwrap();
    assert_eq!(body["metadata"]["name"], NS);
}

#[rstest]
#[case::deleted(ResponseTemplate::new(200).set_body_json(namespace_json()), None)]
#[case::not_there(ResponseTemplate::new(404).set_body_json(status_json(404, "NotFound")), Some(404))]
#[tokio::test]
async fn a_namespace_delete_is_one_delete_of_its_path_and_a_missing_one_is_a_404(
    #[case] answer: ResponseTemplate,
    #[case] error: Option<u16>,
) {
    let server = MockServer::start().await;
    let at = format!("{API_PREFIX}/namespaces/{NS}");
    Mock::given(method("DELETE"))
        .and(path(&at))
        .respond_with(answer)
        .mount(&server)
        .await;
    let got = client(&server.uri()).delete_namespace(NS).await;
    assert_eq!(got.err().and_then(|e| e.code()), error);
    assert_eq!(received(&server, "DELETE", &at).await.len(), 1);
}

#[rstest]
#[case::deleted(ResponseTemplate::new(200).set_body_raw(pod_json("uid-1"), "application/json"), None)]
#[case::not_there(ResponseTemplate::new(404).set_body_json(status_json(404, "NotFound")), Some(404))]
#[tokio::test]
async fn a_pod_deleted_now_is_one_delete_at_grace_0_and_a_missing_one_is_a_404(
    #[case] answer: ResponseTemplate,
    #[case] error: Option<u16>,
) {
    let server = MockServer::start().await;
    Mock::given(method("DELETE"))
        .and(path(pod_path()))
        .and(wiremock::matchers::query_param("gracePeriodSeconds", "0"))
        .respond_with(answer)
        .mount(&server)
        .await;
    let got = client(&server.uri()).delete_pod_now(NS, "shop.web-0").await;
    assert_eq!(got.err().and_then(|e| e.code()), error);
    assert_eq!(received(&server, "DELETE", &pod_path()).await.len(), 1);
}

/// A `BOOKMARK` watch event at `rv`, without its newline.
fn bookmark(rv: &str) -> String {
    serde_json::json!({"type": "BOOKMARK", "object": {"kind": "Pod", "apiVersion": "cci/v2", "metadata": {"resourceVersion": rv}}})
        .to_string()
}

#[rstest]
#[case::last_line_whole(format!("{}\n{}", bookmark("5"), bookmark("6")), Some("6"))]
#[case::last_line_cut_off(format!("{}\n{{\"type\":\"ADD", bookmark("5")), None)]
#[tokio::test]
async fn a_watch_stream_ending_without_a_newline_gives_its_last_event_or_a_decode_error(
    #[case] body: String,
    #[case] last: Option<&str>,
) {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(pods_path()))
        .and(wiremock::matchers::query_param("watch", "true"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(body, "application/json"))
        .mount(&server)
        .await;
    let mut watch = client(&server.uri())
        .watch_pod_summaries(NS, Some("4"), Duration::from_secs(5))
        .await
        .unwrap();
    let rv = |event| match event {
        Some(bursting_engine::cci::PodWatchEvent::Bookmark(rv)) => rv,
        other => panic!("not a bookmark: {other:?}"),
    };
    assert_eq!(rv(watch.next().await.unwrap()), "5");
    match last {
        Some(expected) => {
            assert_eq!(rv(watch.next().await.unwrap()), expected);
            assert!(watch.next().await.unwrap().is_none(), "then the end");
        }
        None => assert!(
            matches!(watch.next().await, Err(Error::Decode { .. })),
            "a line cut off is a decode error, not the end"
        ),
    }
}
