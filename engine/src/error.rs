//! The crate's one error type, and how it maps onto the provider contract's kinds.

/// What can go wrong talking to CCI or translating a pod for it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// CCI answered with an error status.
    #[error("cci {method} {path}: {code} {reason}: {message}")]
    Api {
        /// HTTP method of the request.
        method: reqwest::Method,
        /// Path of the request.
        path: String,
        /// HTTP status code.
        code: u16,
        /// Machine-readable reason (`NotFound`, `AlreadyExists`, `Invalid`, ...).
        reason: String,
        /// CCI's message.
        message: String,
    },

    /// The request could not be sent, or the answer not read.
    #[error("cci {method} {path}: request failed")]
    Http {
        /// HTTP method of the request.
        method: reqwest::Method,
        /// Path of the request.
        path: String,
        /// The transport error.
        #[source]
        source: reqwest::Error,
    },

    /// CCI answered with a body that is not what the API promises.
    #[error("cci {method} {path}: unexpected answer body")]
    Decode {
        /// HTTP method of the request.
        method: reqwest::Method,
        /// Path of the request.
        path: String,
        /// The decoding error.
        #[source]
        source: serde_json::Error,
    },

    /// The CCI endpoint given in the configuration is not a usable URL.
    #[error("cci endpoint {endpoint:?} is not an http(s) URL: {reason}")]
    Endpoint {
        /// The endpoint as given.
        endpoint: String,
        /// What is wrong with it.
        reason: String,
    },

    /// The cluster pod cannot be run on CCI as it is.
    #[error("pod {pod}: {reason}")]
    Translate {
        /// `namespace/name` of the cluster pod.
        pod: String,
        /// What is wrong, for the person who applied the manifest.
        reason: String,
    },

    /// A CCI pod of the wanted name already exists and stands for another cluster pod (an
    /// earlier pod of the same name whose deletion has not finished).
    #[error(
        "cci pod {namespace}/{name} stands for cluster pod uid {found:?}, not {expected:?}; waiting for it to be deleted"
    )]
    NameTaken {
        /// CCI namespace.
        namespace: String,
        /// CCI pod name.
        name: String,
        /// UID of the cluster pod being created.
        expected: String,
        /// UID label found on the existing CCI pod.
        found: String,
    },

    /// An object the pod needs (not marked optional) does not exist in the cluster yet: the
    /// pod waits for it (VK-02).
    #[error(
        "waiting for {object}: the pod refers to it and it does not exist in the cluster; the pod starts on CCI once it is created"
    )]
    Waiting {
        /// The object, e.g. `configmap shop/app-config`.
        object: String,
        /// Its kind as the API names it: `ConfigMap`, `Secret` or `PersistentVolumeClaim`.
        kind: &'static str,
        /// Its namespace (the pod's).
        namespace: String,
        /// Its name.
        name: String,
    },

    /// The pod has a projected `serviceAccountToken` source and its service account has no
    /// token Secret with a token yet (BEHAVIOR.md §5): the pod waits; `reason` says what is
    /// missing and what to create.
    #[error("waiting for a token Secret of service account {namespace}/{account}: {reason}")]
    WaitingForToken {
        /// The pod's namespace.
        namespace: String,
        /// The service account.
        account: String,
        /// What is missing, and what to do.
        reason: String,
    },

    /// A call to the cluster's API server failed.
    #[error("cluster: {action}")]
    Cluster {
        /// What was being done, e.g. `read configmap shop/app-config`.
        action: String,
        /// The client error.
        #[source]
        source: kube::Error,
    },

    /// The cluster ID cannot name a CCI namespace.
    #[error(
        "cluster id {0:?} must be lower-case alphanumerics and '-', start and end with an alphanumeric, and be at most 53 characters (the CCI namespace is bursting-{{cluster id}})"
    )]
    ClusterId(String),

    /// A step of the uninstall gc failed (the cause is the CCI error).
    #[error("gc: {step}")]
    Gc {
        /// What was being done, e.g. `delete pod bursting-c1/shop.web-0`.
        step: String,
        /// Why it failed.
        #[source]
        source: Box<Error>,
    },

    /// The cluster's CCI namespace exists but is being deleted (`Terminating`: CCI deletes
    /// namespaces asynchronously and refuses new objects in them meanwhile, e.g. right after
    /// an uninstall's gc). Pods wait; the namespace is made anew once it is gone.
    #[error(
        "cci namespace {namespace} is Terminating (being deleted); it is created anew once it is gone, and pods wait for it"
    )]
    NamespaceTerminating {
        /// The CCI namespace.
        namespace: String,
    },

    /// The Network of the CCI namespace did not turn Ready in time: no pod is created before
    /// it is (a pod in a namespace without a Ready Network gets no address).
    #[error(
        "network {namespace}/{name} on subnet(s) {subnets} not Ready after {}s (status {status:?}); pods wait for it",
        waited.as_secs()
    )]
    NetworkNotReady {
        /// The CCI namespace.
        namespace: String,
        /// The Network's name.
        name: String,
        /// The subnet IDs it names, comma-separated.
        subnets: String,
        /// Its last status (`status.status`), empty when it had none.
        status: String,
        /// How long the engine waited.
        waited: std::time::Duration,
    },

    /// A step of the uninstall gc did not finish before its deadline.
    #[error("gc: {step}: not done after {}s; {left}", waited.as_secs())]
    GcTimeout {
        /// What was awaited, e.g. `wait for the pods of bursting-c1 to be gone`.
        step: String,
        /// How long it waited.
        waited: std::time::Duration,
        /// What is still there.
        left: String,
    },
}

impl Error {
    /// The HTTP status code, when CCI answered with an error.
    pub fn code(&self) -> Option<u16> {
        match self {
            Self::Api { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// CCI answered 410 `Gone`: a watch asked for changes from a `resourceVersion` CCI no longer
    /// keeps, so whoever follows them must list afresh.
    pub fn is_expired(&self) -> bool {
        self.code() == Some(410)
    }
}

/// The pod status reason of a pod CCI refused because its flavour is sold out.
pub const REASON_SOLD_OUT: &str = "SoldOut";

/// `Result` with this crate's [`Error`] as the default error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<Error> for vk::ProviderError {
    fn from(e: Error) -> Self {
        match &e {
            Error::Api { code: 404, .. } => vk::ProviderError::NotFound(e.to_string()),
            // NB: CCI answers a sold-out flavour with 400 and "sold out" in the message (the
            // mock: CCI.01.400002); the pod is failed so its controller replaces it (§7).
            Error::Api {
                code: 400, message, ..
            } if message.contains("sold out") => vk::ProviderError::PodFailed {
                reason: REASON_SOLD_OUT.into(),
                message: message.clone(),
            },
            // A refusal of the request itself: the same pod will be refused again.
            Error::Api {
                code: 400 | 422, ..
            }
            | Error::Translate { .. }
            | Error::Endpoint { .. }
            | Error::ClusterId(_) => vk::ProviderError::InvalidInput(e.to_string()),
            Error::Waiting {
                kind,
                namespace,
                name,
                ..
            } => vk::ProviderError::Waiting {
                message: e.to_string(),
                object: Box::new(k8s_openapi::api::core::v1::ObjectReference {
                    api_version: Some("v1".into()),
                    kind: Some((*kind).into()),
                    namespace: Some(namespace.clone()),
                    name: Some(name.clone()),
                    ..Default::default()
                }),
            },
            // 401/403 included: a token can be rotated and a quota raised without a restart.
            Error::Api { .. }
            | Error::Http { .. }
            | Error::Decode { .. }
            | Error::WaitingForToken { .. }
            | Error::Cluster { .. }
            | Error::NameTaken { .. }
            | Error::Gc { .. }
            | Error::GcTimeout { .. }
            | Error::NamespaceTerminating { .. }
            | Error::NetworkNotReady { .. } => vk::ProviderError::Transient {
                message: e.to_string(),
                source: Some(Box::new(e)),
            },
        }
    }
}
