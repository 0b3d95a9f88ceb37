//! Request extractors whose every failure is answered in the `Status` shape.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header;
use axum::http::request::Parts;
use cci_api::{
    AUTH_HEADER, ConfigMap, ExecRequest, Namespace, Network, PersistentVolumeClaim, Pod,
    ProxyRegistration, Secret, Service,
};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::MockState;
use crate::aksk::SignedTenant;
use crate::error::{Error, Result};
use crate::faults::FaultSpec;
use crate::selector::LabelSelector;
use crate::state::DeleteOptions;

/// The tenant the request's AK/SK signature (verified by [`crate::aksk`]) or token
/// authenticates as.
pub(crate) struct Tenant(pub String);

impl FromRequestParts<MockState> for Tenant {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &MockState) -> Result<Self> {
        if let Some(SignedTenant(tenant)) = parts.extensions.get::<SignedTenant>() {
            return Ok(Tenant(tenant.clone()));
        }
        let header = parts.headers.get(AUTH_HEADER).ok_or(Error::MissingToken)?;
        let token = header.to_str().map_err(|_| Error::UnknownToken)?;
        match state.check_token(token) {
            crate::TokenCheck::Tenant(tenant) => Ok(Tenant(tenant)),
            crate::TokenCheck::Expired => Err(Error::ExpiredToken),
            crate::TokenCheck::Unknown => Err(Error::UnknownToken),
        }
    }
}

/// A JSON body whose every failure is answered in the `Status` shape.
pub(crate) struct Json<T>(pub T);

/// The kind name a body type is reported as in decoding errors.
pub(crate) trait Kind {
    const KIND: &'static str;
}

macro_rules! kinds {
    ($($type:ty => $name:literal),+ $(,)?) => {
        $(impl Kind for $type { const KIND: &'static str = $name; })+
    };
}

kinds!(
    Pod => "Pod",
    Namespace => "Namespace",
    ConfigMap => "ConfigMap",
    Secret => "Secret",
    PersistentVolumeClaim => "PersistentVolumeClaim",
    Network => "Network",
    Service => "Service",
    ProxyRegistration => "ProxyRegistration",
    ExecRequest => "ExecRequest",
    FaultSpec => "fault",
    crate::admin::IssueToken => "token",
);

async fn body_bytes<S: Send + Sync>(
    request: Request,
    state: &S,
    json_required: bool,
) -> Result<Bytes> {
    let content_type = request
        .headers()
        .get(header::CONTENT_TYPE)
        .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned());
    let is_json = content_type.as_deref().is_some_and(|ct| {
        let essence = ct.split(';').next().unwrap_or_default().trim();
        essence.eq_ignore_ascii_case("application/json") || essence.ends_with("+json")
    });
    if json_required && !is_json {
        return Err(Error::UnsupportedMediaType { content_type });
    }
    Bytes::from_request(request, state)
        .await
        .map_err(Error::UnreadableBody)
}

impl<T: DeserializeOwned + Kind, S: Send + Sync> FromRequest<S> for Json<T> {
    type Rejection = Error;

    async fn from_request(request: Request, state: &S) -> Result<Self> {
        let bytes = body_bytes(request, state, true).await?;
        serde_json::from_slice(&bytes)
            .map(Json)
            .map_err(|source| Error::MalformedBody {
                kind: T::KIND,
                source,
            })
    }
}

/// An optional `DeleteOptions` body (an empty body is no options).
pub(crate) struct DeleteBody(pub DeleteOptions);

impl<S: Send + Sync> FromRequest<S> for DeleteBody {
    type Rejection = Error;

    async fn from_request(request: Request, state: &S) -> Result<Self> {
        let bytes = body_bytes(request, state, false).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(DeleteBody(DeleteOptions::default()));
        }
        serde_json::from_slice(&bytes)
            .map(DeleteBody)
            .map_err(|source| Error::MalformedBody {
                kind: "DeleteOptions",
                source,
            })
    }
}

/// Path parameters whose failures are answered in the `Status` shape.
pub(crate) struct Path<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for Path<T> {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(value)| Path(value))
            .map_err(Error::BadPath)
    }
}

/// Query parameters whose failures are answered in the `Status` shape.
pub(crate) struct Query<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(value)| Query(value))
            .map_err(Error::BadQuery)
    }
}

/// The query parameters of a collection GET.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ListQuery {
    #[serde(default)]
    pub label_selector: Option<String>,
    /// `true` / `1` turn the GET into a watch.
    #[serde(default)]
    pub watch: Option<String>,
    #[serde(default)]
    pub resource_version: Option<String>,
    #[serde(default)]
    pub timeout_seconds: Option<u64>,
    /// Refused when set: this service selects by label only.
    #[serde(default)]
    pub field_selector: Option<String>,
}

impl ListQuery {
    /// The parsed `labelSelector` (empty when absent); a `fieldSelector` is refused.
    pub fn selector(&self) -> Result<LabelSelector> {
        if let Some(fields) = self.field_selector.as_deref().filter(|f| !f.is_empty()) {
            return Err(Error::BadRequest(format!(
                "fieldSelector {fields:?} is not supported by this service: select by labelSelector, or get the object by name"
            )));
        }
        let selector = self.label_selector.clone().unwrap_or_default();
        selector
            .parse()
            .map_err(|problem| Error::InvalidSelector { selector, problem })
    }

    /// Whether the GET is a watch.
    pub fn is_watch(&self) -> Result<bool> {
        match self.watch.as_deref() {
            None | Some("" | "false" | "0") => Ok(false),
            Some("true" | "1") => Ok(true),
            Some(other) => Err(Error::BadRequest(format!(
                "watch={other:?} is not a boolean: use watch=true"
            ))),
        }
    }

    /// The `resourceVersion` to watch from (`None` for "now, with the current objects").
    pub fn since(&self) -> Result<Option<u64>> {
        match self.resource_version.as_deref() {
            None | Some("" | "0") => Ok(None),
            Some(rv) => rv.parse().map(Some).map_err(|_| {
                Error::BadRequest(format!(
                    "resourceVersion={rv:?} is not a resourceVersion this service gave out"
                ))
            }),
        }
    }
}
