//! The HTTP surface: routes, extractors and handlers. Handlers only translate between HTTP and
//! the [`Store`](crate::state::Store); every rule lives there or in [`validate`](crate::validate).

use axum::extract::{FromRequest, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{Method, StatusCode, Uri, header};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::get;
use axum::{Router, body::Bytes};
use cci_api::{API_PREFIX, AUTH_HEADER, List, Namespace, Pod};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::MockState;
use crate::error::{Error, Result};
use crate::selector::LabelSelector;
use crate::state::{NamespaceRecord, PodRecord};

/// The mock's routes, ready to serve or to drive with `tower::ServiceExt::oneshot`.
///
/// - `GET /healthz`: `ok`, no token needed.
/// - Under [`API_PREFIX`], with an [`AUTH_HEADER`] token: `namespaces` (GET, POST),
///   `namespaces/{ns}` (GET, DELETE), `namespaces/{ns}/pods` (GET with `?labelSelector=`,
///   POST), `namespaces/{ns}/pods/{name}` (GET, DELETE).
/// - `GET /admin/v1/pods` and `GET /admin/v1/namespaces`: every tenant's objects, no token.
///
/// Every error is answered with a [`cci_api::Status`] body.
pub fn app(state: MockState) -> Router {
    let cci = Router::new()
        .route("/namespaces", get(list_namespaces).post(create_namespace))
        .route(
            "/namespaces/{namespace}",
            get(get_namespace).delete(delete_namespace),
        )
        .route(
            "/namespaces/{namespace}/pods",
            get(list_pods).post(create_pod),
        )
        .route(
            "/namespaces/{namespace}/pods/{name}",
            get(get_pod).delete(delete_pod),
        );
    let admin = Router::new()
        .route("/pods", get(admin_pods))
        .route("/namespaces", get(admin_namespaces));
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .nest(API_PREFIX, cci)
        .nest("/admin/v1", admin)
        .fallback(route_not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn(log_request))
        .with_state(state)
}

async fn log_request(request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let uri = request.uri().clone();
    let response = next.run(request).await;
    tracing::debug!(%method, %uri, status = response.status().as_u16(), "request");
    response
}

async fn route_not_found(method: Method, uri: Uri) -> Error {
    Error::RouteNotFound {
        method: method.to_string(),
        path: uri.path().to_owned(),
    }
}

async fn method_not_allowed(method: Method, uri: Uri) -> Error {
    Error::MethodNotAllowed {
        method: method.to_string(),
        path: uri.path().to_owned(),
    }
}

/// The tenant the request's token authenticates as.
struct Tenant(String);

impl FromRequestParts<MockState> for Tenant {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &MockState) -> Result<Self> {
        let header = parts.headers.get(AUTH_HEADER).ok_or(Error::MissingToken)?;
        let token = header.to_str().map_err(|_| Error::UnknownToken)?;
        state
            .tenant_for_token(token)
            .map(|tenant| Tenant(tenant.to_owned()))
            .ok_or(Error::UnknownToken)
    }
}

/// A JSON body whose every failure is answered in the `Status` shape.
struct Json<T>(T);

/// The kind name a body type is reported as in decoding errors.
trait Kind {
    const KIND: &'static str;
}

impl Kind for Pod {
    const KIND: &'static str = "Pod";
}

impl Kind for Namespace {
    const KIND: &'static str = "Namespace";
}

impl<T: DeserializeOwned + Kind, S: Send + Sync> FromRequest<S> for Json<T> {
    type Rejection = Error;

    async fn from_request(request: Request, state: &S) -> Result<Self> {
        let content_type = request
            .headers()
            .get(header::CONTENT_TYPE)
            .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned());
        let is_json = content_type.as_deref().is_some_and(|ct| {
            let essence = ct.split(';').next().unwrap_or_default().trim();
            essence.eq_ignore_ascii_case("application/json") || essence.ends_with("+json")
        });
        if !is_json {
            return Err(Error::UnsupportedMediaType { content_type });
        }
        let bytes = Bytes::from_request(request, state)
            .await
            .map_err(Error::UnreadableBody)?;
        serde_json::from_slice(&bytes)
            .map(Json)
            .map_err(|source| Error::MalformedBody {
                kind: T::KIND,
                source,
            })
    }
}

/// Path parameters whose failures are answered in the `Status` shape.
struct Path<T>(T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for Path<T> {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(value)| Path(value))
            .map_err(Error::BadPath)
    }
}

/// The query parameters of a collection GET.
#[derive(Deserialize)]
struct ListQuery {
    #[serde(rename = "labelSelector", default)]
    label_selector: Option<String>,
}

/// The parsed `?labelSelector=` of a collection GET (empty when absent).
struct Selector(LabelSelector);

impl<S: Send + Sync> FromRequestParts<S> for Selector {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self> {
        let axum::extract::Query(query) =
            axum::extract::Query::<ListQuery>::from_request_parts(parts, state)
                .await
                .map_err(Error::BadQuery)?;
        let selector = query.label_selector.unwrap_or_default();
        selector
            .parse()
            .map(Selector)
            .map_err(|problem| Error::InvalidSelector { selector, problem })
    }
}

type Created<T> = (StatusCode, axum::Json<T>);

async fn create_namespace(
    State(state): State<MockState>,
    Tenant(tenant): Tenant,
    Json(namespace): Json<Namespace>,
) -> Result<Created<Namespace>> {
    let created = state.with_store(|s, now| s.create_namespace(&tenant, namespace, now))?;
    tracing::info!(
        tenant,
        namespace = created.metadata.name.as_deref(),
        "namespace created"
    );
    Ok((StatusCode::CREATED, axum::Json(created)))
}

async fn list_namespaces(
    State(state): State<MockState>,
    Tenant(tenant): Tenant,
    Selector(selector): Selector,
) -> axum::Json<List<Namespace>> {
    axum::Json(state.with_store(|s, now| s.list_namespaces(&tenant, &selector, now)))
}

async fn get_namespace(
    State(state): State<MockState>,
    Tenant(tenant): Tenant,
    Path(namespace): Path<String>,
) -> Result<axum::Json<Namespace>> {
    let found = state.with_store(|s, now| s.get_namespace(&tenant, &namespace, now))?;
    Ok(axum::Json(found))
}

async fn delete_namespace(
    State(state): State<MockState>,
    Tenant(tenant): Tenant,
    Path(namespace): Path<String>,
) -> Result<axum::Json<Namespace>> {
    let deleted = state.with_store(|s, now| s.delete_namespace(&tenant, &namespace, now))?;
    tracing::info!(tenant, namespace, "namespace deleted with its pods");
    Ok(axum::Json(deleted))
}

async fn create_pod(
    State(state): State<MockState>,
    Tenant(tenant): Tenant,
    Path(namespace): Path<String>,
    Json(pod): Json<Pod>,
) -> Result<Created<Pod>> {
    let created = state.with_store(|s, now| s.create_pod(&tenant, &namespace, pod, now))?;
    tracing::info!(
        tenant,
        namespace,
        pod = created.metadata.name.as_deref(),
        "pod created"
    );
    Ok((StatusCode::CREATED, axum::Json(created)))
}

async fn list_pods(
    State(state): State<MockState>,
    Tenant(tenant): Tenant,
    Path(namespace): Path<String>,
    Selector(selector): Selector,
) -> Result<axum::Json<List<Pod>>> {
    let list = state.with_store(|s, now| s.list_pods(&tenant, &namespace, &selector, now))?;
    Ok(axum::Json(list))
}

async fn get_pod(
    State(state): State<MockState>,
    Tenant(tenant): Tenant,
    Path((namespace, name)): Path<(String, String)>,
) -> Result<axum::Json<Pod>> {
    let pod = state.with_store(|s, now| s.get_pod(&tenant, &namespace, &name, now))?;
    Ok(axum::Json(pod))
}

async fn delete_pod(
    State(state): State<MockState>,
    Tenant(tenant): Tenant,
    Path((namespace, name)): Path<(String, String)>,
) -> Result<axum::Json<Pod>> {
    let pod = state.with_store(|s, now| s.delete_pod(&tenant, &namespace, &name, now))?;
    tracing::info!(tenant, namespace, pod = name, "pod deleted");
    Ok(axum::Json(pod))
}

async fn admin_pods(State(state): State<MockState>) -> axum::Json<Vec<PodRecord>> {
    axum::Json(state.pods())
}

async fn admin_namespaces(State(state): State<MockState>) -> axum::Json<Vec<NamespaceRecord>> {
    axum::Json(state.namespaces())
}
