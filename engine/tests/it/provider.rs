//! `CciProvider` against a minimal in-process CCI stub: paths, auth header, error codes and the
//! provider contract (idempotent create and delete, UID ownership). The real mock's behaviour is
//! judged by the suites; this stub only answers the way the API document says.

use crate::common;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use bursting_engine::{CciClient, CciProvider, MemoryObjects};
use cci_api::{LABEL_CLUSTER_ID, LABEL_CLUSTER_POD_UID, List, Namespace, Pod as CciPod, Status};
use k8s_openapi::api::core::v1::{Pod, PodStatus};
use vk::Provider;

const TOKEN: &str = "secret";

#[derive(Default)]
struct Stub {
    namespaces: BTreeMap<String, Namespace>,
    pods: BTreeMap<(String, String), CciPod>,
    deletes: usize,
}

type Shared = Arc<Mutex<Stub>>;

fn status(code: StatusCode, reason: &str, message: &str) -> Response {
    let body = Status {
        kind: "Status".into(),
        api_version: "v1".into(),
        status: "Failure".into(),
        message: message.into(),
        reason: reason.into(),
        code: code.as_u16(),
        error_code: "CCI.01.000000".into(),
    };
    (code, Json(body)).into_response()
}

/// The 401 answer, unless the request carries the token.
fn unauthorized(headers: &HeaderMap) -> Option<Response> {
    match headers.get("x-auth-token") {
        Some(t) if t == TOKEN => None,
        _ => Some(status(
            StatusCode::UNAUTHORIZED,
            "Unauthorized",
            "bad token",
        )),
    }
}

async fn create_namespace(
    State(s): State<Shared>,
    headers: HeaderMap,
    Json(ns): Json<Namespace>,
) -> Response {
    if let Some(r) = unauthorized(&headers) {
        return r;
    }
    let name = ns.metadata.name.clone().unwrap_or_default();
    let mut s = s.lock().unwrap();
    if s.namespaces.contains_key(&name) {
        return status(StatusCode::CONFLICT, "AlreadyExists", "namespace exists");
    }
    s.namespaces.insert(name, ns.clone());
    (StatusCode::CREATED, Json(ns)).into_response()
}

async fn create_pod(
    State(s): State<Shared>,
    Path(ns): Path<String>,
    headers: HeaderMap,
    Json(mut pod): Json<CciPod>,
) -> Response {
    if let Some(r) = unauthorized(&headers) {
        return r;
    }
    let mut s = s.lock().unwrap();
    if !s.namespaces.contains_key(&ns) {
        return status(StatusCode::NOT_FOUND, "NotFound", "no such namespace");
    }
    if pod
        .spec
        .containers
        .iter()
        .any(|c| c.image.as_deref() == Some("refused"))
    {
        return status(StatusCode::UNPROCESSABLE_ENTITY, "Invalid", "image refused");
    }
    let key = (ns, pod.metadata.name.clone().unwrap_or_default());
    if s.pods.contains_key(&key) {
        return status(StatusCode::CONFLICT, "AlreadyExists", "pod exists");
    }
    pod.metadata.uid = Some(format!("cci-{}", s.pods.len()));
    // NB: CCI writes the size, in its own form; this fake serves only 0.5 vCPU / 1 GiB pods.
    pod.metadata
        .annotations
        .get_or_insert_default()
        .insert("resource.cci.io/size".into(), "0.50_1.0".into());
    pod.status = Some(PodStatus {
        phase: Some("Running".into()),
        pod_ip: Some("192.168.7.7".into()),
        ..PodStatus::default()
    });
    s.pods.insert(key, pod.clone());
    (StatusCode::CREATED, Json(pod)).into_response()
}

async fn list_pods(
    State(s): State<Shared>,
    Path(ns): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Some(r) = unauthorized(&headers) {
        return r;
    }
    let s = s.lock().unwrap();
    if !s.namespaces.contains_key(&ns) {
        return status(StatusCode::NOT_FOUND, "NotFound", "no such namespace");
    }
    let items = s
        .pods
        .iter()
        .filter(|((n, _), _)| *n == ns)
        .map(|(_, p)| p.clone())
        .collect();
    Json(List {
        api_version: "cci/v2".into(),
        kind: "PodList".into(),
        items,
        ..List::default()
    })
    .into_response()
}

async fn get_pod(
    State(s): State<Shared>,
    Path((ns, name)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    if let Some(r) = unauthorized(&headers) {
        return r;
    }
    match s.lock().unwrap().pods.get(&(ns, name)) {
        Some(p) => Json(p.clone()).into_response(),
        None => status(StatusCode::NOT_FOUND, "NotFound", "no such pod"),
    }
}

async fn delete_pod(
    State(s): State<Shared>,
    Path((ns, name)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    if let Some(r) = unauthorized(&headers) {
        return r;
    }
    let mut s = s.lock().unwrap();
    match s.pods.remove(&(ns, name)) {
        Some(p) => {
            s.deletes += 1;
            Json(p).into_response()
        }
        None => status(StatusCode::NOT_FOUND, "NotFound", "no such pod"),
    }
}

async fn serve() -> (SocketAddr, Shared) {
    let state = Shared::default();
    let app = Router::new()
        .route(
            "/apis/cci/v2/namespaces",
            axum::routing::post(create_namespace),
        )
        .route(
            "/apis/cci/v2/namespaces/{ns}/pods",
            get(list_pods).post(create_pod),
        )
        .route(
            "/apis/cci/v2/namespaces/{ns}/pods/{name}",
            get(get_pod).delete(delete_pod),
        )
        .with_state(state.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr, state)
}

fn provider(addr: SocketAddr, token: &str) -> CciProvider {
    let client = CciClient::new(&format!("http://{addr}/"), token).unwrap();
    CciProvider::new(client, MemoryObjects::default(), "c1").unwrap()
}

/// [`common::pod`] with the image `image` (the fake CCI below answers by image).
fn pod(name: &str, uid: &str, image: &str) -> Pod {
    let mut pod = common::pod(name, uid, vec![]);
    if let Some(spec) = pod.spec.as_mut() {
        spec.containers[0].image = Some(image.into());
    }
    pod
}

fn pod_names(state: &Shared) -> BTreeSet<String> {
    state
        .lock()
        .unwrap()
        .pods
        .keys()
        .map(|(_, n)| n.clone())
        .collect()
}

#[tokio::test]
async fn create_makes_the_namespace_and_is_idempotent_for_the_same_uid() {
    let (addr, state) = serve().await;
    let p = provider(addr, TOKEN);
    let web = pod("web-0", "uid-1", "nginx");
    p.create_pod(&web).await.unwrap();
    p.create_pod(&web).await.unwrap();
    assert_eq!(
        pod_names(&state),
        BTreeSet::from(["shop.web-0".to_string()])
    );
    assert_eq!(
        p.namespace(),
        "bursting-c1",
        "the namespace the provider names"
    );
    let s = state.lock().unwrap();
    let ns = &s.namespaces[p.namespace()];
    assert_eq!(ns.metadata.labels.as_ref().unwrap()[LABEL_CLUSTER_ID], "c1");
    let stored = &s.pods[&("bursting-c1".to_string(), "shop.web-0".to_string())];
    assert_eq!(
        stored.metadata.labels.as_ref().unwrap()[LABEL_CLUSTER_POD_UID],
        "uid-1"
    );
}

#[tokio::test]
async fn create_over_a_pod_of_another_uid_is_transient() {
    let (addr, _state) = serve().await;
    let p = provider(addr, TOKEN);
    p.create_pod(&pod("web-0", "uid-1", "nginx")).await.unwrap();
    let err = p
        .create_pod(&pod("web-0", "uid-2", "nginx"))
        .await
        .unwrap_err();
    assert!(err.is_retryable(), "{err}");
    assert!(err.to_string().contains("uid-1"), "{err}");
}

#[tokio::test]
async fn a_refused_pod_is_invalid_input() {
    let (addr, _state) = serve().await;
    let err = provider(addr, TOKEN)
        .create_pod(&pod("web-0", "uid-1", "refused"))
        .await
        .unwrap_err();
    assert!(matches!(err, vk::ProviderError::InvalidInput(_)), "{err}");
}

#[tokio::test]
async fn a_bad_token_is_transient_and_names_the_reason() {
    let (addr, _state) = serve().await;
    let err = provider(addr, "wrong")
        .create_pod(&pod("web-0", "uid-1", "nginx"))
        .await
        .unwrap_err();
    assert!(err.is_retryable());
    assert!(err.to_string().contains("Unauthorized"), "{err}");
}

#[tokio::test]
async fn delete_is_idempotent_and_spares_a_pod_of_another_uid() {
    let (addr, state) = serve().await;
    let p = provider(addr, TOKEN);
    // Nothing to delete, not even a namespace: success.
    p.delete_pod(&pod("web-0", "uid-1", "nginx")).await.unwrap();

    p.create_pod(&pod("web-0", "uid-2", "nginx")).await.unwrap();
    p.delete_pod(&pod("web-0", "uid-1", "nginx")).await.unwrap();
    assert_eq!(
        pod_names(&state).len(),
        1,
        "uid-2's pod is not uid-1's to delete"
    );

    let stub = vk::RemotePod {
        namespace: "shop".into(),
        name: "web-0".into(),
        uid: "uid-2".into(),
        ..vk::RemotePod::default()
    }
    .to_stub_pod();
    p.delete_pod(&stub).await.unwrap();
    p.delete_pod(&stub).await.unwrap();
    assert!(pod_names(&state).is_empty());
    assert_eq!(state.lock().unwrap().deletes, 1);
}

#[tokio::test]
async fn list_and_statuses_name_the_cluster_pods_by_uid() {
    let (addr, _state) = serve().await;
    let p = provider(addr, TOKEN);
    assert!(
        p.list_pods().await.unwrap().is_empty(),
        "no namespace yet: no pods"
    );
    p.create_pod(&pod("web-0", "uid-1", "nginx")).await.unwrap();
    p.create_pod(&pod("web.v2", "uid-2", "nginx"))
        .await
        .unwrap();
    let mut listed = p.list_pods().await.unwrap();
    listed.sort_by(|a, b| a.uid.cmp(&b.uid));
    let names: Vec<_> = listed
        .iter()
        .map(|r| (r.namespace.as_str(), r.name.as_str()))
        .collect();
    assert_eq!(names, [("shop", "web-0"), ("shop", "web.v2")]);
    let statuses = p.pod_statuses().await.unwrap();
    let status = |uid: &str| statuses[uid].status.clone().unwrap();
    assert_eq!(status("uid-1").phase.as_deref(), Some("Running"));
    assert_eq!(
        status("uid-2").pod_ips.as_ref().unwrap()[0].ip,
        "192.168.7.7"
    );
}

#[tokio::test]
async fn a_created_pod_reports_its_flavour_for_the_cluster_side_with_its_status() {
    let (addr, _state) = serve().await;
    let p = provider(addr, TOKEN);
    // 500m / 1Gi is itself a flavour: 0.5 vCPU, 1 GiB.
    p.create_pod(&pod("web-0", "uid-1", "nginx")).await.unwrap();
    let statuses = p.pod_statuses().await.unwrap();
    let got = &statuses["uid-1"].annotations;
    assert_eq!(
        got,
        &BTreeMap::from([
            (
                "virtual-kubelet.cci.io/burst-pod-cpu".to_owned(),
                "0.5u".to_owned()
            ),
            (
                "virtual-kubelet.cci.io/burst-pod-memory".to_owned(),
                "1Gi".to_owned()
            ),
        ])
    );
}
