//! The crate's errors: [`ProviderError`], what a [`Provider`](crate::Provider) answers, and
//! [`Error`], what the framework itself can fail with (and which wraps a provider's error where
//! one ends a framework call).
//!
//! NB: two enums, not one: a provider only ever builds the kinds the controller acts on, and a
//! `match` on a provider's answer then has no framework-only arm to ignore.

/// A boxed error cause, kept as the `#[source]` of [`ProviderError::Transient`].
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What a provider call answers when it fails: the kind says what the controller does next.
///
/// [`NotFound`](Self::NotFound) on a delete is success; [`InvalidInput`](Self::InvalidInput) is
/// reported on the pod and not retried until the pod changes; [`PodFailed`](Self::PodFailed)
/// reports the pod `Failed`; [`Transient`](Self::Transient) is retried with backoff;
/// [`NotImplemented`](Self::NotImplemented) answers an optional capability the provider lacks.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    /// The object does not exist on the provider's side (or no longer does).
    #[error("not found: {0}")]
    NotFound(String),

    /// The pod cannot be run as it is; retrying the same input will fail the same way.
    #[error("invalid input: {0}")]
    InvalidInput(String),

    /// The provider's side refused to run the pod for a reason that is not in the pod itself
    /// (e.g. capacity sold out): the pod is reported `Failed` with `reason` and `message`, so
    /// that its controller replaces it; not retried.
    #[error("pod failed: {reason}: {message}")]
    PodFailed {
        /// A CamelCase reason for the pod status, e.g. `SoldOut`.
        reason: String,
        /// What happened, for the person reading the pod.
        message: String,
    },

    /// A failure that may go away by itself (network, throttling, the remote side busy):
    /// the controller retries with backoff.
    #[error("{message}")]
    Transient {
        /// What was being done, in words a person can act on.
        message: String,
        /// The underlying cause, if any.
        #[source]
        source: Option<BoxError>,
    },

    /// The pod waits for an object of the cluster it refers to (a ConfigMap or Secret not
    /// created yet): retried with backoff like [`ProviderError::Transient`], and the pod's
    /// Warning event names `object` as its related object, so a pod that waits for one object
    /// and then another gets an event for each (events are grouped by their related object,
    /// not their message).
    #[error("{message}")]
    Waiting {
        /// What the pod waits for, in words a person can act on.
        message: String,
        /// The object waited for.
        object: Box<k8s_openapi::api::core::v1::ObjectReference>,
    },

    /// The provider does not implement this optional capability.
    #[error("not implemented by this provider: {0}")]
    NotImplemented(&'static str),
}

impl ProviderError {
    /// A [`ProviderError::Transient`] with a message and a cause.
    pub fn transient(message: impl Into<String>, source: impl Into<BoxError>) -> Self {
        Self::Transient {
            message: message.into(),
            source: Some(source.into()),
        }
    }

    /// A [`ProviderError::Transient`] with only a message.
    pub fn transient_msg(message: impl Into<String>) -> Self {
        Self::Transient {
            message: message.into(),
            source: None,
        }
    }

    /// Whether the same call may succeed later: [`ProviderError::Transient`] and
    /// [`ProviderError::Waiting`].
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Transient { .. } | Self::Waiting { .. })
    }
}

/// `Result` of a [`Provider`](crate::Provider) call.
pub type ProviderResult<T> = std::result::Result<T, ProviderError>;

/// What can go wrong in the virtual kubelet itself.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A provider call failed (see [`ProviderError`] for what each kind means).
    #[error(transparent)]
    Provider(#[from] ProviderError),

    /// A cached pod's spec is not a `PodSpec`, which the API server never sends; the pod is
    /// left alone (not retried until it changes).
    #[error("pod {pod}: the spec cannot be read")]
    PodSpec {
        /// Namespace and name of the pod.
        pod: String,
        /// The parse error.
        #[source]
        source: serde_json::Error,
    },

    /// One of the virtual kubelet's loops stopped, which only a bug can cause.
    #[error("virtual kubelet stopped: {0}")]
    TaskStopped(String),

    /// The kubelet API (see [`crate::kubelet`]) could not be set up or stopped serving.
    #[error("kubelet api on {addr}: {action}")]
    KubeletApi {
        /// The listen address.
        addr: std::net::SocketAddr,
        /// What failed, e.g. `bind` or `load the client CA`.
        action: String,
        /// The cause, if any.
        #[source]
        source: Option<BoxError>,
    },

    /// A call to the Kubernetes API server failed.
    #[error("kubernetes api: {context}")]
    Kube {
        /// What was being done, e.g. `patch status of pod default/web-0`.
        context: String,
        /// The client error.
        #[source]
        source: kube::Error,
    },
}

impl Error {
    /// A [`Error::Kube`] with the action that failed.
    pub fn kube(context: impl Into<String>, source: kube::Error) -> Self {
        Self::Kube {
            context: context.into(),
            source,
        }
    }

    /// Whether the same call may succeed later: transient provider errors and API errors other
    /// than client-side refusals (4xx except 408/409/429).
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Provider(e) => e.is_retryable(),
            Self::Kube { source, .. } => match source {
                kube::Error::Api(status) => {
                    !(400..500).contains(&status.code) || matches!(status.code, 408 | 409 | 429)
                }
                _ => true,
            },
            Self::PodSpec { .. } | Self::KubeletApi { .. } | Self::TaskStopped(_) => false,
        }
    }
}

/// `Result` with this crate's [`Error`] as the default error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The HTTP code of a Kubernetes API error, if the error is one.
pub(crate) fn api_code(err: &kube::Error) -> Option<u16> {
    match err {
        kube::Error::Api(status) => Some(status.code),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    fn api(code: u16) -> Error {
        Error::kube(
            "x",
            kube::Error::Api(
                kube::core::Status::failure("refused", "Refused")
                    .with_code(code)
                    .boxed(),
            ),
        )
    }

    #[rstest]
    #[case::a_transient_provider_error(ProviderError::transient_msg("busy").into(), true)]
    #[case::a_missing_remote_pod(ProviderError::NotFound("x".into()).into(), false)]
    #[case::an_invalid_pod(ProviderError::InvalidInput("x".into()).into(), false)]
    #[case::a_failed_pod(ProviderError::PodFailed { reason: "SoldOut".into(), message: "x".into() }.into(), false)]
    #[case::a_missing_capability(ProviderError::NotImplemented("logs").into(), false)]
    #[case::an_api_server_that_is_down(api(503), true)]
    #[case::a_conflict(api(409), true)]
    #[case::throttled(api(429), true)]
    #[case::a_timeout(api(408), true)]
    #[case::a_refusal(api(403), false)]
    #[case::a_missing_object(api(404), false)]
    #[case::a_stopped_loop(Error::TaskStopped("x".into()), false)]
    fn errors_say_whether_a_retry_may_help(#[case] error: Error, #[case] retryable: bool) {
        assert_eq!(error.is_retryable(), retryable, "{error}");
    }
}
