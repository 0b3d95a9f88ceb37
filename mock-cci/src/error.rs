//! The one error type of the mock, and the one JSON shape every error is answered in.

use std::net::SocketAddr;

use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use cci_api::{AUTH_HEADER, Status};

use crate::faults::{Operation, Scope};
use crate::flavour::Flavour;
use crate::validate::FieldError;

fn scope_name(scope: &Scope) -> String {
    match scope {
        Scope::Tenant(tenant) => format!("tenant {tenant:?}"),
        Scope::Namespace(namespace) => format!("namespace {namespace:?}"),
    }
}

/// `Result` with the mock's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in the mock. API errors become a [`cci_api::Status`] body
/// through the one [`IntoResponse`] impl below.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request carried no token (and no AK/SK signature).
    #[error(
        "the request has no {AUTH_HEADER} header: send the token of a tenant the mock was started with (--token), or sign the request with one of its AK/SK pairs (--aksk-file)"
    )]
    MissingToken,

    /// The token is not one the mock was started with (or is not a valid header value).
    #[error(
        "the {AUTH_HEADER} token is not known to this service: use a token the mock was started with (--token TOKEN[=TENANT])"
    )]
    UnknownToken,

    /// The token was issued with a lifetime that is over (IAM tokens are valid 24 hours; the
    /// admin API issues shorter ones for tests).
    #[error("the {AUTH_HEADER} token has expired: get a new one (IAM tokens are valid 24 hours)")]
    ExpiredToken,

    /// The request's AK/SK signature (`Authorization: SDK-HMAC-SHA256 …`) is refused; the
    /// reason says why (wrong signature, date outside the window, unsigned or missing header,
    /// unknown access key, malformed header, body not the signed one).
    #[error("the AK/SK signature is refused: {0}")]
    SignatureRefused(#[from] cci_api::signing::SigningError),

    /// The namespace exists but belongs to another tenant.
    #[error(
        "namespace {namespace:?} belongs to another tenant: tenant {tenant:?} may only use the namespaces it created"
    )]
    Forbidden {
        /// The caller's tenant.
        tenant: String,
        /// The namespace it touched.
        namespace: String,
    },

    /// The namespace is being deleted (a slow-delete fault keeps it terminating): nothing new
    /// may be created in it.
    #[error(
        "{kind} {name:?} is forbidden: unable to create new content in namespace {namespace} because it is being terminated: wait until the namespace is gone and create it again first"
    )]
    NamespaceTerminating {
        /// `pod`, `ConfigMap`, ...
        kind: &'static str,
        /// The name asked for.
        name: String,
        /// The terminating namespace.
        namespace: String,
    },

    /// No namespace of that name.
    #[error("namespace {namespace:?} not found: create it first with POST /apis/cci/v2/namespaces")]
    NamespaceNotFound {
        /// The namespace asked for.
        namespace: String,
    },

    /// No object of that kind and name in the namespace.
    #[error("{kind} {name:?} not found in namespace {namespace:?}")]
    NotFound {
        /// `pod`, `ConfigMap`, ...
        kind: &'static str,
        /// The namespace looked in.
        namespace: String,
        /// The name asked for.
        name: String,
    },

    /// The request path is not part of the API.
    #[error(
        "the server could not find the requested resource: {method} {path} is not part of this API"
    )]
    RouteNotFound {
        /// The request method.
        method: String,
        /// The request path.
        path: String,
    },

    /// The path exists, the method does not.
    #[error("method {method} is not allowed on {path}")]
    MethodNotAllowed {
        /// The request method.
        method: String,
        /// The request path.
        path: String,
    },

    /// A namespace of that name exists already (namespace names are global).
    #[error("namespace {namespace:?} already exists: choose another name")]
    NamespaceExists {
        /// The name asked for.
        namespace: String,
    },

    /// An object of that kind and name exists already in the namespace.
    #[error(
        "{kind} {name:?} already exists in namespace {namespace:?}: delete it first or choose another name"
    )]
    AlreadyExists {
        /// `pod`, `ConfigMap`, ...
        kind: &'static str,
        /// The namespace.
        namespace: String,
        /// The name asked for.
        name: String,
    },

    /// An update carried a `resourceVersion` that is no longer the stored one.
    #[error(
        "Operation cannot be fulfilled on {kind} {name:?}: the object has been modified (resourceVersion {sent} sent, {current} stored); please apply your changes to the latest version and try again"
    )]
    Conflict {
        /// `ConfigMap`, ...
        kind: &'static str,
        /// The object's name.
        name: String,
        /// The `resourceVersion` sent.
        sent: String,
        /// The stored one.
        current: String,
    },

    /// A watch asked to resume from a `resourceVersion` whose changes are no longer kept.
    #[error(
        "too old resource version: {requested} (the oldest kept is {oldest}): list again and watch from the list's resourceVersion"
    )]
    Gone {
        /// The `resourceVersion` asked for.
        requested: u64,
        /// The oldest one a watch may start from.
        oldest: u64,
    },

    /// A sold-out fault: CCI has no capacity for the pod's size.
    #[error(
        "insufficient resources: flavour {size} is sold out in this region, the pod was not created (fault {fault}): retry later or choose another size"
    )]
    SoldOut {
        /// The pod's size.
        size: Flavour,
        /// The id of the fault.
        fault: u64,
    },

    /// A quota fault: the scope holds as many pods as it may.
    #[error(
        "exceeded quota: {} may hold at most {max_pods} pods and holds {live} (fault {fault}): delete pods or raise the quota",
        scope_name(scope)
    )]
    QuotaExceeded {
        /// Where the quota applies.
        scope: Scope,
        /// How many pods it allows.
        max_pods: u32,
        /// How many it holds.
        live: usize,
        /// The id of the fault.
        fault: u64,
    },

    /// An error-rate fault failed the request.
    #[error("injected failure for {operation} (fault {fault}): the service answered {status}")]
    Injected {
        /// The status answered.
        status: u16,
        /// What the request did.
        operation: Operation,
        /// The id of the fault.
        fault: u64,
    },

    /// A timeout fault left the request without an answer.
    #[error(
        "the server was unable to return a response in the time allotted for {operation} (timeout fault); the operation {} applied",
        if *applied { "may have been" } else { "was not" }
    )]
    Timeout {
        /// What the request did.
        operation: Operation,
        /// Whether the operation took effect.
        applied: bool,
    },

    /// The request cannot be acted on as sent (a bad query value, a bad fault).
    #[error("{0}")]
    BadRequest(String),

    /// The object breaks one or more validation rules; every broken rule is listed.
    #[error("{} is invalid: {}", subject(kind, name), join(causes))]
    Invalid {
        /// `Pod`, `Namespace`, `ConfigMap`, ...
        kind: &'static str,
        /// The object's name as sent (may be empty).
        name: String,
        /// The broken rules, at least one.
        causes: Vec<FieldError>,
    },

    /// The body is not JSON of the expected shape.
    #[error("the request body is not a valid {kind} in JSON: {source}")]
    MalformedBody {
        /// What the body should have been: `Pod`, `Namespace`, ...
        kind: &'static str,
        /// What the decoder said, with line and column.
        #[source]
        source: serde_json::Error,
    },

    /// The body is not declared as JSON.
    #[error(
        "the request body must be JSON: send Content-Type: application/json (got {})",
        content_type.as_deref().map_or("no Content-Type".to_owned(), |c| format!("{c:?}"))
    )]
    UnsupportedMediaType {
        /// The Content-Type sent, if any.
        content_type: Option<String>,
    },

    /// The body could not be read at all (too large, connection broken).
    #[error("the request body could not be read: {0}")]
    UnreadableBody(#[source] BytesRejection),

    /// The `labelSelector` query parameter does not parse.
    #[error("unable to parse labelSelector {selector:?}: {problem}")]
    InvalidSelector {
        /// The selector as sent.
        selector: String,
        /// What is wrong with it.
        problem: String,
    },

    /// The query string does not parse.
    #[error("the query string is invalid: {0}")]
    BadQuery(#[source] QueryRejection),

    /// A path segment does not parse.
    #[error("the request path is invalid: {0}")]
    BadPath(#[source] PathRejection),

    /// The server could not listen on the configured address.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// Why the OS refused.
        #[source]
        source: std::io::Error,
    },

    /// The server failed while serving or shutting down.
    #[error("the mock server failed: {0}")]
    Serve(#[source] std::io::Error),

    /// The serving certificate or its key (PEM) cannot be used to serve HTTPS.
    #[error("the serving certificate or key is unusable: {0}")]
    Tls(#[source] std::io::Error),
}

fn subject(kind: &str, name: &str) -> String {
    // NB: Kubernetes: `Pod "x" is invalid: …`.
    if name.is_empty() {
        kind.to_owned()
    } else {
        format!("{kind} {name:?}")
    }
}

fn join(causes: &[FieldError]) -> String {
    causes
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

impl Error {
    /// The HTTP status the error is answered with.
    pub fn status_code(&self) -> StatusCode {
        match self {
            Error::MissingToken
            | Error::UnknownToken
            | Error::ExpiredToken
            | Error::SignatureRefused(_) => StatusCode::UNAUTHORIZED,
            Error::Forbidden { .. }
            | Error::NamespaceTerminating { .. }
            | Error::QuotaExceeded { .. } => StatusCode::FORBIDDEN,
            Error::NamespaceNotFound { .. }
            | Error::NotFound { .. }
            | Error::RouteNotFound { .. } => StatusCode::NOT_FOUND,
            Error::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            Error::NamespaceExists { .. }
            | Error::AlreadyExists { .. }
            | Error::Conflict { .. } => StatusCode::CONFLICT,
            Error::Gone { .. } => StatusCode::GONE,
            // As Kubernetes and the CCI 2.0 API answer an object that fails validation.
            Error::Invalid { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            Error::SoldOut { .. }
            | Error::MalformedBody { .. }
            | Error::InvalidSelector { .. }
            | Error::BadRequest(_)
            | Error::BadQuery(_) => StatusCode::BAD_REQUEST,
            Error::Injected { status, .. } => {
                StatusCode::from_u16(*status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
            }
            Error::Timeout { .. } => StatusCode::GATEWAY_TIMEOUT,
            Error::UnsupportedMediaType { .. } => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Error::UnreadableBody(rejection) => rejection.status(),
            Error::BadPath(rejection) => rejection.status(),
            Error::Bind { .. } | Error::Serve(_) | Error::Tls(_) => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
        }
    }

    /// The machine-readable reason, as Kubernetes spells it.
    pub fn reason(&self) -> &'static str {
        match self {
            Error::Invalid { .. } => "Invalid",
            Error::NamespaceExists { .. } | Error::AlreadyExists { .. } => "AlreadyExists",
            Error::Gone { .. } => "Expired",
            _ => match self.status_code() {
                StatusCode::BAD_REQUEST => "BadRequest",
                StatusCode::UNAUTHORIZED => "Unauthorized",
                StatusCode::FORBIDDEN => "Forbidden",
                StatusCode::NOT_FOUND => "NotFound",
                StatusCode::METHOD_NOT_ALLOWED => "MethodNotAllowed",
                StatusCode::CONFLICT => "Conflict",
                StatusCode::GONE => "Gone",
                StatusCode::PAYLOAD_TOO_LARGE => "RequestEntityTooLarge",
                StatusCode::UNSUPPORTED_MEDIA_TYPE => "UnsupportedMediaType",
                StatusCode::TOO_MANY_REQUESTS => "TooManyRequests",
                StatusCode::SERVICE_UNAVAILABLE => "ServiceUnavailable",
                StatusCode::GATEWAY_TIMEOUT => "Timeout",
                _ => "InternalError",
            },
        }
    }

    /// The CCI error code: the published `CCI.01.403104` ("current user has no right") for
    /// another tenant's namespace; else ours (`mock-cci/README.md`): `CCI.01.`, the HTTP status
    /// and a three-digit detail (`001` for validation failures, `002` for sold out (400) and
    /// quota exceeded (403), `000` otherwise).
    pub fn error_code(&self) -> String {
        if matches!(self, Error::Forbidden { .. }) {
            return "CCI.01.403104".into();
        }
        let detail = match self {
            Error::Invalid { .. } => 1,
            Error::SoldOut { .. } | Error::QuotaExceeded { .. } => 2,
            _ => 0,
        };
        format!("CCI.01.{}{detail:03}", self.status_code().as_u16())
    }

    /// The error as the API's `Status` body.
    pub fn to_status(&self) -> Status {
        let code = self.status_code().as_u16();
        Status {
            kind: "Status".into(),
            api_version: "v1".into(),
            status: "Failure".into(),
            message: self.to_string(),
            reason: self.reason().into(),
            code,
            error_code: self.error_code(),
        }
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let status = self.to_status();
        if self.status_code().is_server_error() {
            tracing::error!(error = %self, "request failed");
        } else {
            tracing::info!(code = status.code, reason = %status.reason, detail = %status.message, "request refused");
        }
        (self.status_code(), axum::Json(status)).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_pod_lists_every_broken_rule_in_one_sentence() {
        let err = Error::Invalid {
            kind: "Pod",
            name: "x".into(),
            causes: vec![
                FieldError::required("spec.containers", "at least one container is required"),
                FieldError::invalid("metadata.labels", "key \"-\" is invalid"),
            ],
        };
        assert_eq!(
            err.to_string(),
            r#"Pod "x" is invalid: spec.containers: Required value: at least one container is required; metadata.labels: Invalid value: key "-" is invalid"#
        );
        let status = err.to_status();
        assert_eq!(status.code, 422);
        assert_eq!(status.reason, "Invalid");
        assert_eq!(status.error_code, "CCI.01.422001");
    }

    #[test]
    fn status_codes_and_cci_codes_follow_the_http_status() {
        let cases = [
            (Error::MissingToken, 401, "Unauthorized", "CCI.01.401000"),
            (
                Error::Forbidden {
                    tenant: "a".into(),
                    namespace: "n".into(),
                },
                403,
                "Forbidden",
                "CCI.01.403104",
            ),
            (
                Error::NotFound {
                    kind: "pod",
                    namespace: "n".into(),
                    name: "p".into(),
                },
                404,
                "NotFound",
                "CCI.01.404000",
            ),
            (
                Error::AlreadyExists {
                    kind: "pod",
                    namespace: "n".into(),
                    name: "p".into(),
                },
                409,
                "AlreadyExists",
                "CCI.01.409000",
            ),
        ];
        for (err, code, reason, cci) in cases {
            let status = err.to_status();
            assert_eq!(
                (
                    status.code,
                    status.reason.as_str(),
                    status.error_code.as_str()
                ),
                (code, reason, cci)
            );
            assert_eq!(status.kind, "Status");
            assert_eq!(status.status, "Failure");
        }
    }
}
