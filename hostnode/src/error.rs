//! The crate's one error type.

use std::path::PathBuf;

/// What can go wrong while starting a host node or a guarded process.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A kubeconfig could not be read, or does not name what is needed (a context, its
    /// cluster, the cluster's CA).
    #[error("kubeconfig {}: {detail}", path.display())]
    Kubeconfig {
        /// The kubeconfig file.
        path: PathBuf,
        /// What is wrong with it.
        detail: String,
    },
    /// A filesystem or process operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A Kubernetes API call failed.
    #[error("{context}: {source}")]
    Kube {
        /// What was being done.
        context: String,
        /// The cause.
        #[source]
        source: kube::Error,
    },
    /// The node did not come up: its virtual kubelet stopped, or the node was not `Ready` in
    /// time.
    #[error("host node {node} did not start: {detail}")]
    NotStarted {
        /// The node's name.
        node: String,
        /// Why.
        detail: String,
    },
}

impl Error {
    /// An [`Error::Io`] with what was being done, for `map_err`.
    pub fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> Self {
        let context = context.into();
        move |source| Self::Io { context, source }
    }
}

/// `Result` with this crate's [`Error`] as the default error.
pub type Result<T, E = Error> = std::result::Result<T, E>;
