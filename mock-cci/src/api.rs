//! The HTTP surface of the CCI API: routes and handlers. Handlers only translate between HTTP
//! and the [`Store`]; every rule lives there or in [`validate`](crate::validate). Every handler
//! goes through [`serve`], which applies the request faults first.

use std::time::{Duration, Instant as StdInstant};

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{Method, StatusCode, Uri};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use cci_api::{
    API_PREFIX, AUTH_HEADER, ConfigMap, ExecRequest, ExecResult, List, NETWORK_API_PREFIX,
    Namespace, Network, PersistentVolumeClaim, Pod, ProxyRegistration, Secret, Service,
};
use tokio::time::Instant;

use crate::MockState;
use crate::aksk::{self, SignedTenant};
use crate::error::{Error, Result};
use crate::extract::{DeleteBody, Json, Kind, ListQuery, Path, Query, Tenant};
use crate::faults::{Operation, Resource, Verb};
use crate::state::network::{self, Exec};
use crate::state::{DeleteOptions, LogOptions, Store, StoredObject};
use crate::watch_stream;

/// The largest request body accepted: a 1 MiB ConfigMap, JSON-escaped, fits.
pub const MAX_BODY_BYTES: usize = 3 * 1024 * 1024;

/// The mock's routes, ready to serve or to drive with `tower::ServiceExt::oneshot`.
///
/// - `GET /healthz`: `ok`, no token needed.
/// - Under [`API_PREFIX`] (`/apis/cci/v2`), with an [`AUTH_HEADER`] token or an AK/SK
///   signature (`Authorization: SDK-HMAC-SHA256 …`, [`cci_api::signing`]; a refused one is
///   answered 401 naming why):
///   - `namespaces` (GET, POST), `namespaces/{ns}` (GET, DELETE);
///   - `namespaces/{ns}/pods` (GET with `?labelSelector=`; with `?watch=true[&resourceVersion=N]
///     [&timeoutSeconds=N]` a stream of newline-delimited watch events; POST),
///     `namespaces/{ns}/pods/{name}` (GET; DELETE with `?gracePeriodSeconds=N` or a
///     `DeleteOptions` body), `namespaces/{ns}/pods/{name}/log` (GET, text; `?container=`,
///     `?previous=true`, `?tailLines=N`), `namespaces/{ns}/pods/{name}/exec` (POST an
///     [`ExecRequest`](cci_api::ExecRequest); only `probe <service>` is simulated, see
///     [`crate::state`]'s network model);
///   - `namespaces/{ns}/{configmaps|secrets|persistentvolumeclaims|services|proxyregistrations}`
///     (GET with
///     `?labelSelector=`, POST) and `…/{name}` (GET, PUT, DELETE).
/// - Under [`NETWORK_API_PREFIX`] (`/apis/yangtse/v2`), with a token:
///   `namespaces/{ns}/networks` and `…/{name}`, as the objects above.
/// - The inside view under `/_mock/`, no token (see [`crate::admin`] docs): `state`, `pods`,
///   `namespaces`, `requests`, `faults`, `reset`, `ledger`, `peak`; `/admin/v1/pods` and
///   `/admin/v1/namespaces` are aliases kept for older callers.
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
        )
        .route("/namespaces/{namespace}/pods/{name}/log", get(pod_log))
        .route(
            "/namespaces/{namespace}/pods/{name}/exec",
            axum::routing::post(pod_exec),
        )
        .merge(object_routes::<ConfigMap>("configmaps"))
        .merge(object_routes::<Secret>("secrets"))
        .merge(object_routes::<PersistentVolumeClaim>(
            "persistentvolumeclaims",
        ))
        .merge(object_routes::<Service>("services"))
        .merge(object_routes::<ProxyRegistration>("proxyregistrations"));
    let yangtse = object_routes::<Network>("networks");
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .nest(API_PREFIX, cci)
        .nest(NETWORK_API_PREFIX, yangtse)
        .merge(crate::admin::routes())
        .fallback(route_not_found)
        .method_not_allowed_fallback(method_not_allowed)
        // NB: inside the body limit, so the signature check reads bodies within it too.
        .layer(middleware::from_fn_with_state(
            state.clone(),
            aksk::verify_signature,
        ))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(middleware::from_fn_with_state(state.clone(), log_request))
        .with_state(state)
}

fn object_routes<T: StoredObject + Kind>(plural: &str) -> Router<MockState> {
    Router::new()
        .route(
            &format!("/namespaces/{{namespace}}/{plural}"),
            get(list_objects::<T>).post(create_object::<T>),
        )
        .route(
            &format!("/namespaces/{{namespace}}/{plural}/{{name}}"),
            get(get_object::<T>)
                .put(update_object::<T>)
                .delete(delete_object::<T>),
        )
}

async fn log_request(State(state): State<MockState>, request: Request, next: Next) -> Response {
    let method = request.method().to_string();
    let path = request
        .uri()
        .path_and_query()
        .map_or_else(|| request.uri().path().to_owned(), ToString::to_string);
    let inside = path.starts_with("/_mock") || path.starts_with("/admin/") || path == "/healthz";
    let token = request
        .headers()
        .get(AUTH_HEADER)
        .and_then(|v| v.to_str().ok());
    let tenant = token.and_then(|token| state.tenant_for_token(token));
    let credential = token
        .map(|token| format!("token:{}", cci_api::token_fingerprint(token)))
        .or_else(|| {
            let header = request.headers().get(axum::http::header::AUTHORIZATION)?;
            let parsed = cci_api::signing::Authorization::parse(header.to_str().ok()?).ok()?;
            Some(format!("aksk:{}", parsed.access_key))
        });
    let (request, name) = match named_object(request).await {
        Ok(named) => named,
        Err(e) => return e.into_response(),
    };
    let arrived = Instant::now();
    let started = StdInstant::now();
    let response = next.run(request).await;
    let tenant = tenant.or_else(|| {
        response
            .extensions()
            .get::<SignedTenant>()
            .map(|SignedTenant(tenant)| tenant.clone())
    });
    let status = response.status().as_u16();
    tracing::debug!(%method, %path, status, elapsed = ?started.elapsed(), "request");
    if !inside {
        state.request_log(|log| {
            log.push(
                crate::requests::Asked { method, path, name },
                crate::requests::Caller { tenant, credential },
                status,
                arrived,
                Instant::now(),
            )
        });
    }
    response
}

/// The request, and the object its body names (`metadata.name`) when it is a create or an
/// update with a JSON body of a known length within [`MAX_BODY_BYTES`]: a create's path names
/// only the collection, so the request log says which object it was about. Other bodies are
/// left as they come (a larger one is still refused by the handler's limit).
async fn named_object(request: Request) -> Result<(Request, Option<String>)> {
    #[derive(serde::Deserialize)]
    struct Named {
        metadata: Option<Metadata>,
    }
    #[derive(serde::Deserialize)]
    struct Metadata {
        name: Option<String>,
    }
    use axum::body::HttpBody as _;
    // The length the body declares (its Content-Length, or its size when it is in memory).
    let declared = request.body().size_hint().exact();
    let writes = matches!(*request.method(), Method::POST | Method::PUT);
    if !writes || declared.is_none_or(|n| n > MAX_BODY_BYTES as u64) {
        return Ok((request, None));
    }
    let (parts, body) = request.into_parts();
    let bytes = axum::body::to_bytes(body, MAX_BODY_BYTES)
        .await
        .map_err(|e| Error::BadRequest(format!("cannot read the request body: {e}")))?;
    let name = serde_json::from_slice::<Named>(&bytes)
        .ok()
        .and_then(|n| n.metadata?.name);
    Ok((
        Request::from_parts(parts, axum::body::Body::from(bytes)),
        name,
    ))
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

/// Applies the request faults for `operation`, then runs `f` on the store.
async fn serve<T>(
    state: &MockState,
    tenant: &str,
    namespace: Option<&str>,
    operation: Operation,
    f: impl FnOnce(&mut Store, Instant) -> Result<T>,
) -> Result<T> {
    let effects = state.with_store(|s, _| s.faults.on_request(tenant, namespace, operation));
    if !effects.latency.is_zero() {
        tokio::time::sleep(effects.latency).await;
    }
    if let Some((status, fault)) = effects.error {
        return Err(Error::Injected {
            status,
            operation,
            fault,
        });
    }
    match effects.timeout {
        None => state.with_store(f),
        Some(applied) => {
            if applied {
                let _ = state.with_store(f);
            }
            tokio::time::sleep(state.config().timeout).await;
            Err(Error::Timeout { operation, applied })
        }
    }
}

type Created<T> = (StatusCode, axum::Json<T>);

const fn op(verb: Verb, resource: Resource) -> Operation {
    Operation::new(verb, resource)
}

async fn create_namespace(
    State(state): State<MockState>,
    Tenant(tenant): Tenant,
    Json(namespace): Json<Namespace>,
) -> Result<Created<Namespace>> {
    let name = namespace.metadata.name.clone();
    let created = serve(
        &state,
        &tenant,
        name.as_deref(),
        op(Verb::Create, Resource::Namespaces),
        |s, now| s.create_namespace(&tenant, namespace, now),
    )
    .await?;
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
    Query(query): Query<ListQuery>,
) -> Result<axum::Json<List<Namespace>>> {
    let selector = query.selector()?;
    let list = serve(
        &state,
        &tenant,
        None,
        op(Verb::List, Resource::Namespaces),
        |s, now| Ok(s.list_namespaces(&tenant, &selector, now)),
    )
    .await?;
    Ok(axum::Json(list))
}

async fn get_namespace(
    State(state): State<MockState>,
    Tenant(tenant): Tenant,
    Path(namespace): Path<String>,
) -> Result<axum::Json<Namespace>> {
    let found = serve(
        &state,
        &tenant,
        Some(&namespace),
        op(Verb::Get, Resource::Namespaces),
        |s, now| s.get_namespace(&tenant, &namespace, now),
    )
    .await?;
    Ok(axum::Json(found))
}

async fn delete_namespace(
    State(state): State<MockState>,
    Tenant(tenant): Tenant,
    Path(namespace): Path<String>,
) -> Result<axum::Json<Namespace>> {
    let deleted = serve(
        &state,
        &tenant,
        Some(&namespace),
        op(Verb::Delete, Resource::Namespaces),
        |s, now| s.delete_namespace(&tenant, &namespace, now),
    )
    .await?;
    if deleted.metadata.deletion_timestamp.is_some() {
        tracing::info!(
            tenant,
            namespace,
            "namespace terminating (slow-delete fault)"
        );
    } else {
        tracing::info!(tenant, namespace, "namespace deleted with everything in it");
    }
    Ok(axum::Json(deleted))
}

async fn create_pod(
    State(state): State<MockState>,
    Tenant(tenant): Tenant,
    Path(namespace): Path<String>,
    Json(pod): Json<Pod>,
) -> Result<Created<Pod>> {
    let created = serve(
        &state,
        &tenant,
        Some(&namespace),
        op(Verb::Create, Resource::Pods),
        |s, now| s.create_pod(&tenant, &namespace, pod, now),
    )
    .await?;
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
    Query(query): Query<ListQuery>,
) -> Result<Response> {
    let selector = query.selector()?;
    if query.is_watch()? {
        let since = query.since()?;
        let timeout = query.timeout_seconds.map(Duration::from_secs);
        serve(
            &state,
            &tenant,
            Some(&namespace),
            op(Verb::Watch, Resource::Pods),
            |_, _| Ok(()),
        )
        .await?;
        return watch_stream::watch_pods(state, tenant, namespace, selector, since, timeout);
    }
    let list = serve(
        &state,
        &tenant,
        Some(&namespace),
        op(Verb::List, Resource::Pods),
        |s, now| s.list_pods(&tenant, &namespace, &selector, now),
    )
    .await?;
    Ok(axum::Json(list).into_response())
}

async fn get_pod(
    State(state): State<MockState>,
    Tenant(tenant): Tenant,
    Path((namespace, name)): Path<(String, String)>,
) -> Result<axum::Json<Pod>> {
    let pod = serve(
        &state,
        &tenant,
        Some(&namespace),
        op(Verb::Get, Resource::Pods),
        |s, now| s.get_pod(&tenant, &namespace, &name, now),
    )
    .await?;
    Ok(axum::Json(pod))
}

async fn delete_pod(
    State(state): State<MockState>,
    Tenant(tenant): Tenant,
    Path((namespace, name)): Path<(String, String)>,
    Query(query): Query<DeleteOptions>,
    DeleteBody(body): DeleteBody,
) -> Result<axum::Json<Pod>> {
    let options = DeleteOptions {
        grace_period_seconds: body.grace_period_seconds.or(query.grace_period_seconds),
    };
    let pod = serve(
        &state,
        &tenant,
        Some(&namespace),
        op(Verb::Delete, Resource::Pods),
        |s, now| s.delete_pod(&tenant, &namespace, &name, options, now),
    )
    .await?;
    tracing::info!(tenant, namespace, pod = name, ?options, "pod deleted");
    Ok(axum::Json(pod))
}

async fn pod_log(
    State(state): State<MockState>,
    Tenant(tenant): Tenant,
    Path((namespace, name)): Path<(String, String)>,
    Query(options): Query<LogOptions>,
) -> Result<String> {
    serve(
        &state,
        &tenant,
        Some(&namespace),
        op(Verb::Get, Resource::Log),
        |s, now| s.pod_log(&tenant, &namespace, &name, &options, now),
    )
    .await
}

async fn pod_exec(
    State(state): State<MockState>,
    Tenant(tenant): Tenant,
    Path((namespace, name)): Path<(String, String)>,
    Json(request): Json<ExecRequest>,
) -> Result<axum::Json<ExecResult>> {
    let decided = serve(
        &state,
        &tenant,
        Some(&namespace),
        op(Verb::Create, Resource::Exec),
        |s, now| s.exec(&tenant, &namespace, &name, &request, now),
    )
    .await?;
    // NB: the tunnel runs without the store: it waits on the cluster's proxy and Service.
    let result = match decided {
        Exec::Done(result) => result,
        Exec::Through(tunnel) => network::probe_through(&tunnel).await,
    };
    Ok(axum::Json(result))
}

async fn create_object<T: StoredObject + Kind>(
    State(state): State<MockState>,
    Tenant(tenant): Tenant,
    Path(namespace): Path<String>,
    Json(object): Json<T>,
) -> Result<Created<T>> {
    let created = serve(
        &state,
        &tenant,
        Some(&namespace),
        op(Verb::Create, T::RESOURCE),
        |s, now| s.create_object(&tenant, &namespace, object, now),
    )
    .await?;
    Ok((StatusCode::CREATED, axum::Json(created)))
}

async fn list_objects<T: StoredObject + Kind>(
    State(state): State<MockState>,
    Tenant(tenant): Tenant,
    Path(namespace): Path<String>,
    Query(query): Query<ListQuery>,
) -> Result<axum::Json<List<T>>> {
    let selector = query.selector()?;
    if query.is_watch()? {
        return Err(Error::BadRequest(format!(
            "watch is served for pods only: list {} and compare resourceVersions",
            T::LIST_KIND
        )));
    }
    let list = serve(
        &state,
        &tenant,
        Some(&namespace),
        op(Verb::List, T::RESOURCE),
        |s, now| s.list_objects(&tenant, &namespace, &selector, now),
    )
    .await?;
    Ok(axum::Json(list))
}

async fn get_object<T: StoredObject + Kind>(
    State(state): State<MockState>,
    Tenant(tenant): Tenant,
    Path((namespace, name)): Path<(String, String)>,
) -> Result<axum::Json<T>> {
    let object = serve(
        &state,
        &tenant,
        Some(&namespace),
        op(Verb::Get, T::RESOURCE),
        |s, now| s.get_object(&tenant, &namespace, &name, now),
    )
    .await?;
    Ok(axum::Json(object))
}

async fn update_object<T: StoredObject + Kind>(
    State(state): State<MockState>,
    Tenant(tenant): Tenant,
    Path((namespace, name)): Path<(String, String)>,
    Json(object): Json<T>,
) -> Result<axum::Json<T>> {
    let updated = serve(
        &state,
        &tenant,
        Some(&namespace),
        op(Verb::Update, T::RESOURCE),
        |s, now| s.update_object(&tenant, &namespace, &name, object, now),
    )
    .await?;
    Ok(axum::Json(updated))
}

async fn delete_object<T: StoredObject + Kind>(
    State(state): State<MockState>,
    Tenant(tenant): Tenant,
    Path((namespace, name)): Path<(String, String)>,
) -> Result<axum::Json<T>> {
    let deleted = serve(
        &state,
        &tenant,
        Some(&namespace),
        op(Verb::Delete, T::RESOURCE),
        |s, now| s.delete_object(&tenant, &namespace, &name, now),
    )
    .await?;
    Ok(axum::Json(deleted))
}
