//! The crate's one error type.

/// A boxed error cause, kept as the `#[source]` of [`Error::Transient`].
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Everything that can go wrong in a provider call or in the kubelet's own API calls.
///
/// Providers answer with the first four kinds; the controller decides from the kind what to do:
/// [`Error::NotFound`] on a delete is success, [`Error::InvalidInput`] is reported on the pod and
/// not retried until the pod changes, [`Error::Transient`] is retried with backoff.
#[derive(Debug, thiserror::Error)]
pub enum Error {
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

    /// The provider does not implement this optional capability.
    #[error("not implemented by this provider: {0}")]
    NotImplemented(&'static str),

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
    /// A [`Error::Transient`] with a message and a cause.
    pub fn transient(message: impl Into<String>, source: impl Into<BoxError>) -> Self {
        Self::Transient {
            message: message.into(),
            source: Some(source.into()),
        }
    }

    /// A [`Error::Transient`] with only a message.
    pub fn transient_msg(message: impl Into<String>) -> Self {
        Self::Transient {
            message: message.into(),
            source: None,
        }
    }

    /// A [`Error::Kube`] with the action that failed.
    pub fn kube(context: impl Into<String>, source: kube::Error) -> Self {
        Self::Kube {
            context: context.into(),
            source,
        }
    }

    /// Whether the same call may succeed later: transient provider errors and API errors other
    /// than client-side refusals (4xx except 408/429).
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Transient { .. } => true,
            Self::Kube { source, .. } => match source {
                kube::Error::Api(status) => {
                    !(400..500).contains(&status.code) || matches!(status.code, 408 | 409 | 429)
                }
                _ => true,
            },
            Self::NotFound(_)
            | Self::InvalidInput(_)
            | Self::PodFailed { .. }
            | Self::NotImplemented(_)
            | Self::KubeletApi { .. }
            | Self::TaskStopped(_) => false,
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
