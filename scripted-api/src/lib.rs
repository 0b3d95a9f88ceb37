//! A scripted Kubernetes API server for the tests of controllers that talk to Kubernetes
//! (kube-rs's `ApiServerVerifier` pattern with `tower-test`): a test hands a [`Client`] from
//! [`client`] to the code under test, then runs it with [`scripted`], which answers each request
//! from a list of [`Expect`]s and fails on any request out of order; work whose requests are
//! concurrent (watches) runs with [`served`], which answers each request by its path.
//!
//! Tests only (a dev-dependency): the scripted-API tiers of vk's pod controller, node agent and
//! leader election (`vk/src/*_scripted.rs`) and of the engine's node lock, webhook and watches
//! (`engine/src/*_scripted.rs`, `engine/tests/it/`).
//!
//! A test's shape: `let (client, mut api) = client();`, build the controller on `client`, then
//! `let (returned, bodies) = scripted(&mut api, controller.step(), vec![expect(Method::GET,
//! "/api/v1/nodes/n", 200, node), …]).await;` and assert on both.
#![warn(missing_docs)]

use std::future::Future;
use std::time::Duration;

use http::{Method, Request, Response};
use kube::Client;
use kube::client::Body;
use serde_json::{Value, json};

/// The test's end of the scripted API server.
pub type Handle = tower_test::mock::Handle<Request<Body>, Response<Body>>;

/// A client whose requests go to the returned handle (default namespace `default`).
pub fn client() -> (Client, Handle) {
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    (Client::new(service, "default"), handle)
}

/// One request the script expects: its method, the start of its path (and query), and the
/// status and body to answer.
pub struct Expect {
    method: Method,
    path: &'static str,
    status: u16,
    answer: Value,
}

/// A request the script expects; an `answer` of `null` echoes the request's body (as a create
/// or a replace does).
pub fn expect(method: Method, path: &'static str, status: u16, answer: Value) -> Expect {
    Expect {
        method,
        path,
        status,
        answer,
    }
}

/// A Kubernetes `Status` failure with `code` and `reason`, as the API server answers an error.
pub fn failure(code: u16, reason: &str) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": reason, "code": code, "message": reason})
}

/// Runs `work` while answering the requests it sends, which must be `script` in order; returns
/// what `work` returned and the body of each request (JSON, or null). Fails after 10 s rather
/// than hang.
pub async fn scripted<T>(
    handle: &mut Handle,
    work: impl Future<Output = T>,
    script: Vec<Expect>,
) -> (T, Vec<Value>) {
    scripted_within(Duration::from_secs(10), handle, work, script).await
}

/// [`scripted`], failing after `patience` (of tokio's time: with a paused clock, work that
/// sleeps between its requests needs more than 10 s).
pub async fn scripted_within<T>(
    patience: Duration,
    handle: &mut Handle,
    work: impl Future<Output = T>,
    script: Vec<Expect>,
) -> (T, Vec<Value>) {
    tokio::time::timeout(patience, answer(handle, work, script))
        .await
        .unwrap_or_else(|_| {
            panic!("the work neither finished nor sent the next request within {patience:?}")
        })
}

async fn answer<T>(
    handle: &mut Handle,
    work: impl Future<Output = T>,
    script: Vec<Expect>,
) -> (T, Vec<Value>) {
    tokio::pin!(work);
    let mut bodies = Vec::new();
    let mut script = script.into_iter();
    loop {
        tokio::select! {
            done = &mut work => {
                let left: Vec<String> = script.map(|e| format!("{} {}", e.method, e.path)).collect();
                assert!(left.is_empty(), "requests expected but never sent: {left:?}");
                return (done, bodies);
            }
            next = handle.next_request() => {
                let (request, send) = next.expect("the client is gone");
                let seen = format!("{} {}", request.method(), request.uri());
                let Some(want) = script.next() else {
                    panic!("an unexpected request: {seen}");
                };
                assert!(
                    request.method() == want.method
                        && request.uri().to_string().starts_with(want.path),
                    "expected {} {}, got {seen}",
                    want.method,
                    want.path
                );
                let bytes = request.into_body().collect_bytes().await.unwrap();
                bodies.push(serde_json::from_slice(&bytes).unwrap_or(Value::Null));
                let answer = if want.answer.is_null() {
                    bytes.to_vec()
                } else {
                    serde_json::to_vec(&want.answer).unwrap()
                };
                send.send_response(
                    Response::builder()
                        .status(want.status)
                        .body(Body::from(answer))
                        .unwrap(),
                );
            }
        }
    }
}

/// A metadata-only list (`PartialObjectMetadataList`, what a watch of `PartialObjectMeta`
/// lists first) of objects with these `metadata`, at list resourceVersion `7`.
pub fn metadata_list(metadata: impl IntoIterator<Item = Value>) -> Value {
    let items: Vec<Value> = metadata
        .into_iter()
        .map(|m| json!({"apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadata", "metadata": m}))
        .collect();
    json!({"apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadataList",
           "metadata": {"resourceVersion": "7"}, "items": items})
}

/// What [`served`] answers a request with: a status and a JSON body, or nothing yet (the
/// request stays open, as a watch with no events does).
pub type Answer = Option<(u16, Value)>;

/// Runs `work` while answering each request it sends with `answer(method, path and query)`, in
/// whatever order the requests come (for work whose requests are concurrent, such as watches);
/// returns what `work` returned and every request seen, as `METHOD path?query`. Fails after 10 s
/// rather than hang.
pub async fn served<T>(
    handle: &mut Handle,
    work: impl Future<Output = T>,
    mut answer: impl FnMut(&Method, &str) -> Answer,
) -> (T, Vec<String>) {
    let served = async {
        tokio::pin!(work);
        let mut seen = Vec::new();
        // Requests left open: dropping their senders would fail them at once.
        let mut open = Vec::new();
        loop {
            tokio::select! {
                done = &mut work => return (done, seen),
                next = handle.next_request() => {
                    let (request, send) = next.expect("the client is gone");
                    let uri = request.uri().to_string();
                    seen.push(format!("{} {uri}", request.method()));
                    match answer(request.method(), &uri) {
                        Some((status, body)) => send.send_response(
                            Response::builder()
                                .status(status)
                                .body(Body::from(serde_json::to_vec(&body).unwrap()))
                                .unwrap(),
                        ),
                        None => open.push(send),
                    }
                }
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), served)
        .await
        .unwrap_or_else(|_| panic!("the work did not finish within 10 s"))
}
