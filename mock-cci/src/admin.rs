//! The inside view under `/_mock/`: what the mock holds, what it was asked, what it costs, and
//! the faults. No token; the harness reads CCI-side truth only from here and the public API.
//!
//! | path | answer |
//! |---|---|
//! | `GET /_mock/state` | every object, as JSON in a stable order: `{"resourceVersion", "tenants": {tenant: {namespace: {"namespace", "pods", "configmaps", "secrets", "persistentvolumeclaims"}}}}`, each map by name |
//! | `GET /_mock/pods`, `GET /_mock/namespaces` | one summary row per pod / namespace ([`PodRecord`], [`NamespaceRecord`]) |
//! | `GET /_mock/requests?tenant=&limit=` | the request log, oldest first (the last `limit`) |
//! | `GET /_mock/faults` | the faults that are set, with their ids and hit counts |
//! | `POST /_mock/faults` | sets a fault: body `{"scope": {"tenant"|"namespace": NAME}, "fault": {"type": …}}` (see [`crate::faults`]); answers `201` with its id |
//! | `DELETE /_mock/faults`, `DELETE /_mock/faults/{id}` | clears every fault, or one |
//! | `POST /_mock/reset` | deletes everything and forgets faults, bills, peaks and the request log |
//! | `GET /_mock/ledger` | the bill of every namespace there ever was ([`Bill`]) |
//! | `GET /_mock/peak?namespace=&labelSelector=` | the most pods at once: `{"running": Peak, "active": Peak}` ([`Peak`]) |

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{delete, get, post, put};
use serde::{Deserialize, Serialize};

use crate::MockState;
use crate::error::{Error, Result};
use crate::extract::{Json, Path, Query};
use crate::faults::{ActiveFault, FaultSpec};
use crate::requests::RequestRecord;
use crate::selector::LabelSelector;
use crate::state::{Bill, NamespaceRecord, Peak, Period, PodRecord};

/// The routes of the inside view (and the `/admin/v1` aliases).
pub(crate) fn routes() -> Router<MockState> {
    Router::new()
        .route("/_mock/state", get(dump))
        .route("/_mock/pods", get(pods))
        .route("/_mock/namespaces", get(namespaces))
        .route("/_mock/requests", get(requests))
        .route(
            "/_mock/faults",
            get(list_faults).post(set_fault).delete(clear_faults),
        )
        .route("/_mock/faults/{id}", delete(clear_fault))
        .route("/_mock/reset", post(reset))
        .route("/_mock/tokens/{token}", put(issue_token))
        .route("/_mock/ledger", get(ledger))
        .route("/_mock/peak", get(peak))
        .route("/admin/v1/pods", get(pods))
        .route("/admin/v1/namespaces", get(namespaces))
}

async fn dump(State(state): State<MockState>) -> axum::Json<serde_json::Value> {
    axum::Json(state.with_store(|s, now| s.dump(now)))
}

async fn pods(State(state): State<MockState>) -> axum::Json<Vec<PodRecord>> {
    axum::Json(state.pods())
}

async fn namespaces(State(state): State<MockState>) -> axum::Json<Vec<NamespaceRecord>> {
    axum::Json(state.namespaces())
}

#[derive(Deserialize)]
struct RequestQuery {
    #[serde(default)]
    tenant: Option<String>,
    #[serde(default)]
    limit: Option<usize>,
}

async fn requests(
    State(state): State<MockState>,
    Query(query): Query<RequestQuery>,
) -> axum::Json<Vec<RequestRecord>> {
    let mut records: Vec<RequestRecord> = state
        .requests()
        .into_iter()
        .filter(|r| query.tenant.is_none() || r.tenant == query.tenant)
        .collect();
    if let Some(limit) = query.limit {
        let skip = records.len().saturating_sub(limit);
        records.drain(..skip);
    }
    axum::Json(records)
}

/// What `PUT /_mock/tokens/{token}` takes.
#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct IssueToken {
    /// The tenant the token authenticates as.
    tenant: String,
    /// Its life from now, in seconds (an IAM token's is 86 400).
    ttl_seconds: u64,
}

/// Issues (or renews) a token that expires, as IAM issues them (`PUT /_mock/tokens/{token}`).
async fn issue_token(
    State(state): State<MockState>,
    Path(token): Path<String>,
    Json(body): Json<IssueToken>,
) -> Result<StatusCode> {
    if token.trim().is_empty() || body.tenant.trim().is_empty() {
        return Err(Error::BadRequest("a token and a tenant are needed".into()));
    }
    state.issue_token(
        &token,
        &body.tenant,
        std::time::Duration::from_secs(body.ttl_seconds),
    );
    // NB: never the token itself in the log.
    tracing::info!(tenant = %body.tenant, ttl_seconds = body.ttl_seconds, "token issued");
    Ok(StatusCode::NO_CONTENT)
}

async fn list_faults(State(state): State<MockState>) -> axum::Json<Vec<ActiveFault>> {
    axum::Json(state.with_store(|s, _| s.faults.list().to_vec()))
}

async fn set_fault(
    State(state): State<MockState>,
    Json(spec): Json<FaultSpec>,
) -> Result<(StatusCode, axum::Json<ActiveFault>)> {
    let fault = state
        .with_store(|s, now| {
            // NB: settle first, so changes due before the fault are not affected by it.
            s.settle(now);
            s.faults.add(spec)
        })
        .map_err(Error::BadRequest)?;
    tracing::info!(id = fault.id, scope = ?fault.scope, fault = ?fault.fault, "fault set");
    Ok((StatusCode::CREATED, axum::Json(fault)))
}

async fn clear_faults(State(state): State<MockState>) -> StatusCode {
    state.with_store(|s, now| {
        s.settle(now);
        s.faults.clear();
    });
    StatusCode::NO_CONTENT
}

async fn clear_fault(State(state): State<MockState>, Path(id): Path<u64>) -> Result<StatusCode> {
    let removed = state.with_store(|s, now| {
        s.settle(now);
        s.faults.remove(id)
    });
    if removed {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(Error::NotFound {
            kind: "fault",
            namespace: "_mock".into(),
            name: id.to_string(),
        })
    }
}

async fn reset(State(state): State<MockState>) -> StatusCode {
    state.with_store(|s, now| s.reset(now));
    state.request_log(|log| log.clear());
    tracing::info!("mock reset");
    StatusCode::NO_CONTENT
}

async fn ledger(State(state): State<MockState>) -> axum::Json<Vec<Bill>> {
    axum::Json(state.bills())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PeakQuery {
    namespace: String,
    #[serde(default)]
    label_selector: Option<String>,
}

/// The answer of `GET /_mock/peak`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PeakReport {
    namespace: String,
    label_selector: String,
    /// Pods in phase `Running` at once.
    running: Peak,
    /// Pods created and not yet finished or deleted, at once.
    active: Peak,
}

async fn peak(
    State(state): State<MockState>,
    Query(query): Query<PeakQuery>,
) -> Result<axum::Json<PeakReport>> {
    let text = query.label_selector.unwrap_or_default();
    let selector: LabelSelector = text.parse().map_err(|problem| Error::InvalidSelector {
        selector: text.clone(),
        problem,
    })?;
    let (running, active) = state.with_store(|s, now| {
        (
            s.peak(&query.namespace, &selector, Period::Running, now),
            s.peak(&query.namespace, &selector, Period::Active, now),
        )
    });
    Ok(axum::Json(PeakReport {
        namespace: query.namespace,
        label_selector: text,
        running,
        active,
    }))
}
