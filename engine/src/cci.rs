//! A small client of the CCI 2.0 API (plain JSON over HTTP or HTTPS), authenticating with a
//! token in `X-Auth-Token` or by signing every request with an AK/SK pair ([`CciAuth`]).
//!
//! HTTPS is checked against the system's CA roots, or only against a CA bundle given for a
//! private endpoint ([`tls_config`]). No redirect is followed: the credential goes to the
//! endpoint given and nowhere else.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use cci_api::requests::{COLLECTIONS, RequestKind};
use cci_api::signing::Credentials;
use cci_api::{
    ANNOTATION_NETWORK_DOMAIN_ID, ANNOTATION_NETWORK_PROJECT_ID, API_PREFIX, AUTH_HEADER,
    CLUSTER_NETWORK_NAME, List, NETWORK_API_PREFIX, NETWORK_API_VERSION, NETWORK_TYPE_UNDERLAY,
    Namespace, Network, NetworkSpec, NetworkSubnet, Pod, PodSummary, Status,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use reqwest::{Method, RequestBuilder, Url};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::{Error, Result};

/// Timeout of one CCI request.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Timeout of connecting to CCI.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How much longer than its `timeoutSeconds` a watch request may take before the client gives
/// up on it: the server ends the stream at `timeoutSeconds`, so only a stalled connection meets
/// this.
pub const WATCH_TIMEOUT_SLACK: Duration = Duration::from_secs(15);

/// How a [`CciClient`] authenticates. `Debug` shows neither the token nor the secret key.
#[derive(Clone)]
pub enum CciAuth {
    /// An IAM token, sent in `X-Auth-Token` with every request.
    Token(String),
    /// An IAM token read from a file (e.g. the add-on's Secret, mounted): read again when the
    /// file changes and when CCI answers 401, so a renewed token is used without a restart.
    TokenFile(TokenFile),
    /// An AK/SK pair: every request is signed (`Authorization: SDK-HMAC-SHA256 …` and
    /// `X-Sdk-Date`, [`cci_api::signing`]) and carries no token.
    AkSk(Credentials),
}

pub use cci_api::aksk::{ACCESS_KEY_ENV, SECRET_KEY_ENV};

impl CciAuth {
    /// The one credential given: a `token`, or an AK/SK pair from `aksk_file` (the file's text,
    /// see [`cci_api::aksk::parse_file`]) or from the environment ([`ACCESS_KEY_ENV`] and
    /// [`SECRET_KEY_ENV`], both or neither). The error says what is missing or too much, and
    /// never repeats a secret.
    pub fn choose(
        token: Option<String>,
        aksk_file: Option<&str>,
        access_key: Option<String>,
        secret_key: Option<String>,
    ) -> std::result::Result<Self, String> {
        match cci_api::aksk::one_credential(token, aksk_file, access_key, secret_key)? {
            Some(cci_api::aksk::Given::Token(token)) => Ok(CciAuth::Token(token)),
            Some(cci_api::aksk::Given::Pair(pair)) => Ok(CciAuth::AkSk(pair)),
            None => Err(format!(
                "no CCI credential: give a token (CCI_TOKEN or --cci-token-file), or an AK/SK pair ({ACCESS_KEY_ENV} and {SECRET_KEY_ENV}, or --cci-aksk-file)"
            )),
        }
    }
}

/// The token a built request carries, if any.
fn sent_token(request: &reqwest::Request) -> Option<String> {
    request
        .headers()
        .get(AUTH_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// An IAM token kept in a file, and the token last read from it.
#[derive(Clone)]
pub struct TokenFile {
    path: std::path::PathBuf,
    /// The token, and the file's modification time when it was read.
    read: Arc<std::sync::Mutex<(String, Option<SystemTime>)>>,
}

impl std::fmt::Debug for TokenFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // NB: never the token.
        f.debug_struct("TokenFile")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl TokenFile {
    /// Reads the token in `path` (surrounding whitespace dropped); an error names the file and
    /// why, never its content.
    pub fn open(path: impl Into<std::path::PathBuf>) -> std::result::Result<Self, String> {
        let path = path.into();
        let (token, modified) = Self::read_file(&path)?;
        Ok(Self {
            path,
            read: Arc::new(std::sync::Mutex::new((token, modified))),
        })
    }

    fn read_file(
        path: &std::path::Path,
    ) -> std::result::Result<(String, Option<SystemTime>), String> {
        let modified = std::fs::metadata(path).and_then(|m| m.modified()).ok();
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read the token file {}: {e}", path.display()))?;
        let token = text.trim().to_owned();
        if token.is_empty() {
            return Err(format!("the token file {} is empty", path.display()));
        }
        Ok((token, modified))
    }

    /// The token to send: read again first when the file changed since (its modification time).
    pub fn token(&self) -> String {
        let modified = std::fs::metadata(&self.path)
            .and_then(|m| m.modified())
            .ok();
        let mut read = self.read.lock().unwrap_or_else(|e| e.into_inner());
        if modified != read.1 && !crate::breakage::is(crate::breakage::Breakage::TokenReadOnce) {
            self.refresh(&mut read);
        }
        read.0.clone()
    }

    /// Reads the file again (after a 401): whether it now holds another token than `sent`.
    pub fn renewed(&self, sent: &str) -> bool {
        if crate::breakage::is(crate::breakage::Breakage::TokenReadOnce) {
            return false;
        }
        let mut read = self.read.lock().unwrap_or_else(|e| e.into_inner());
        self.refresh(&mut read);
        read.0 != sent
    }

    fn refresh(&self, read: &mut (String, Option<SystemTime>)) {
        match Self::read_file(&self.path) {
            Ok(fresh) => {
                if fresh.0 != read.0 {
                    tracing::info!(file = %self.path.display(), "CCI token renewed: using the new one");
                }
                *read = fresh;
            }
            // Keep the token in use: a file being rewritten may be empty for a moment.
            Err(e) => tracing::warn!(error = %e, "keeping the CCI token in use"),
        }
    }
}

impl std::fmt::Debug for CciAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            // NB: never the token.
            CciAuth::Token(_) => f.write_str("Token(<redacted>)"),
            CciAuth::TokenFile(file) => file.fmt(f),
            CciAuth::AkSk(credentials) => f.debug_tuple("AkSk").field(credentials).finish(),
        }
    }
}

/// The TLS settings of a CCI client (rustls with the ring provider): server certificates are
/// checked against the CA certificates of the PEM bundle `ca_pem` only, e.g. a private
/// endpoint's CA, or, without one, against the system's CA roots (on Linux the system's store,
/// e.g. `/etc/ssl/certs`). The error says why the bundle or the system's store is unusable.
pub fn tls_config(ca_pem: Option<&[u8]>) -> std::result::Result<rustls::ClientConfig, String> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject as _;
    use rustls_platform_verifier::BuilderVerifierExt as _;

    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| e.to_string())?;
    let builder = match ca_pem {
        Some(pem) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in CertificateDer::pem_slice_iter(pem) {
                let cert = cert.map_err(|e| format!("the CA bundle is not PEM: {e}"))?;
                roots
                    .add(cert)
                    .map_err(|e| format!("the CA bundle holds an unusable certificate: {e}"))?;
            }
            if roots.is_empty() {
                return Err("the CA bundle holds no certificate".into());
            }
            builder.with_root_certificates(roots)
        }
        None => builder
            .with_platform_verifier()
            .map_err(|e| format!("the system's CA roots: {e}"))?,
    };
    Ok(builder.with_no_client_auth())
}

/// TLS settings that trust no server: for a client that speaks plain HTTP only.
fn tls_trusting_nothing() -> rustls::ClientConfig {
    rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions")
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth()
}

/// How often [`CciClient::ensure_cluster_network`] reads a Network that is not Ready yet.
const NETWORK_POLL: Duration = Duration::from_millis(250);

/// The Network the engine gives its CCI namespace (BEHAVIOR.md §12): the add-on's subnet and
/// security groups, with the tenant's project and account IDs the published guide requires.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterNetwork {
    /// The VPC subnet IDs pods get addresses from (the add-on's `subnet_id` first).
    pub subnet_ids: Vec<String>,
    /// Security group IDs for the pods' interfaces (`[""]` is CCI's "deny all").
    pub security_group_ids: Vec<String>,
    /// The tenant's project ID (`yangtse.io/project-id`).
    pub project_id: String,
    /// The tenant's account ID (`yangtse.io/domain-id`).
    pub domain_id: String,
    /// How long to wait for the Network to turn Ready.
    pub ready_timeout: Duration,
}

impl ClusterNetwork {
    /// The Network object to create.
    pub fn object(&self) -> Network {
        let annotations = [
            (ANNOTATION_NETWORK_PROJECT_ID, &self.project_id),
            (ANNOTATION_NETWORK_DOMAIN_ID, &self.domain_id),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.clone()))
        .collect();
        Network {
            api_version: NETWORK_API_VERSION.into(),
            kind: "Network".into(),
            metadata: ObjectMeta {
                name: Some(CLUSTER_NETWORK_NAME.into()),
                annotations: Some(annotations),
                ..ObjectMeta::default()
            },
            spec: NetworkSpec {
                ip_families: Some(vec!["IPv4".into()]),
                network_type: Some(NETWORK_TYPE_UNDERLAY.into()),
                security_groups: Some(self.security_group_ids.clone()),
                subnets: Some(
                    self.subnet_ids
                        .iter()
                        .map(|id| NetworkSubnet {
                            subnet_id: id.clone(),
                        })
                        .collect(),
                ),
            },
            status: None,
        }
    }
}

/// A CCI API client. Cheap to clone (the connection pool is shared). It sends each request
/// once, except a 429 with a short `Retry-After` ([`MAX_RETRY_AFTER`]), sent again once after
/// the wait; every other failure is the caller's to retry.
#[derive(Clone)]
pub struct CciClient {
    http: reqwest::Client,
    /// The endpoint without a trailing `/`.
    endpoint: String,
    auth: CciAuth,
    /// Shared by the clones: the process's requests, whichever clone sent them.
    counters: Arc<RequestCounters>,
}

impl std::fmt::Debug for CciClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // NB: never the token.
        f.debug_struct("CciClient")
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

impl CciClient {
    /// A client of the CCI API at `endpoint` (e.g. `http://127.0.0.1:8443`), authenticating with
    /// `token`.
    pub fn new(endpoint: &str, token: impl Into<String>) -> Result<Self> {
        Self::with_auth(endpoint, CciAuth::Token(token.into()))
    }

    /// A client of the CCI API at `endpoint` that signs every request with `credentials`.
    pub fn with_aksk(endpoint: &str, credentials: Credentials) -> Result<Self> {
        Self::with_auth(endpoint, CciAuth::AkSk(credentials))
    }

    /// A client of the CCI API at `endpoint`, authenticating as `auth` says; HTTPS is checked
    /// against the system's CA roots.
    pub fn with_auth(endpoint: &str, auth: CciAuth) -> Result<Self> {
        Self::with_auth_and_ca(endpoint, auth, None)
    }

    /// A client of the CCI API at `endpoint`, authenticating as `auth` says; HTTPS is checked
    /// against the CA certificates of the PEM bundle `ca_pem` only, or, without one, against
    /// the system's CA roots (see [`tls_config`]).
    pub fn with_auth_and_ca(endpoint: &str, auth: CciAuth, ca_pem: Option<&[u8]>) -> Result<Self> {
        let bad = |reason: &str| Error::Endpoint {
            endpoint: endpoint.into(),
            reason: reason.into(),
        };
        let url = Url::parse(endpoint).map_err(|e| bad(&e.to_string()))?;
        let https = match url.scheme() {
            "https" => true,
            "http" => false,
            _ => return Err(bad("the scheme must be http or https")),
        };
        // NB: a plain-HTTP endpoint needs no roots (no redirect can lead to HTTPS), so a host
        // without a CA store still reaches one.
        let tls = if https || ca_pem.is_some() {
            tls_config(ca_pem)
        } else {
            Ok(tls_trusting_nothing())
        }
        .map_err(|reason| bad(&reason))?;
        let http = reqwest::Client::builder()
            .timeout(DEFAULT_REQUEST_TIMEOUT)
            .connect_timeout(DEFAULT_CONNECT_TIMEOUT)
            // A redirect would carry the token (or a signature) to another address: CCI does
            // not redirect, so an answer 3xx is an error, never followed.
            .redirect(reqwest::redirect::Policy::none())
            .tls_backend_preconfigured(tls)
            .build()
            .map_err(|e| bad(&e.to_string()))?;
        Ok(Self {
            http,
            endpoint: endpoint.trim_end_matches('/').to_string(),
            auth,
            counters: Arc::default(),
        })
    }

    /// The requests this client (and its clones) sent so far, by kind; a request sent again
    /// after a 429 counts twice, as CCI saw it twice.
    pub fn request_counts(&self) -> RequestCounts {
        self.counters.snapshot()
    }

    /// The endpoint this client talks to.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: String,
        body: Option<&(impl Serialize + Sync)>,
    ) -> Result<T> {
        let bytes = self.send(method.clone(), &path, body).await?;
        serde_json::from_slice(&bytes).map_err(|source| Error::Decode {
            method,
            path,
            source,
        })
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&(impl Serialize + Sync)>,
    ) -> Result<bytes::Bytes> {
        let http_err = |source| Error::Http {
            method: method.clone(),
            path: path.to_string(),
            source,
        };
        // NB: built afresh for each send, so a request sent again is signed at its own time.
        let request = || {
            let request = self
                .http
                .request(method.clone(), format!("{}{path}", self.endpoint))
                .header(reqwest::header::ACCEPT, "application/json");
            self.authorize(match body {
                Some(body) => request.json(body),
                None => request,
            })
        };
        let kind = RequestKind::of(method.as_str(), path);
        self.counters.count(kind);
        let first = request().map_err(http_err)?;
        let mut sent = sent_token(&first);
        let mut response = self.http.execute(first).await.map_err(http_err)?;
        // NB: a 429 was not applied, so even a create may be sent again; once, and only after a
        // short wait, or the caller (the controller's backoff) would be kept waiting here.
        if let Some(wait) = retry_after(&response) {
            tracing::debug!(%method, path, wait_ms = wait.as_millis(), "cci throttled; retrying once");
            tokio::time::sleep(wait).await;
            self.counters.count(kind);
            let again = request().map_err(http_err)?;
            sent = sent_token(&again);
            response = self.http.execute(again).await.map_err(http_err)?;
        }
        // An expired token (CCI: valid 24 hours, then 401): once, with the token the file holds
        // now, if it holds another; the 401 was not applied, so even a create may be sent again.
        if response.status() == reqwest::StatusCode::UNAUTHORIZED
            && let CciAuth::TokenFile(file) = &self.auth
            && let Some(sent) = sent
            && file.renewed(&sent)
        {
            self.counters.count(kind);
            response = self
                .http
                .execute(request().map_err(http_err)?)
                .await
                .map_err(http_err)?;
        }
        let code = response.status();
        let bytes = response.bytes().await.map_err(http_err)?;
        if code.is_success() {
            // NB: handed on as received, not copied: a pod list can be megabytes.
            return Ok(bytes);
        }
        let (reason, message) = error_body(&bytes, code);
        tracing::debug!(%method, path, code = code.as_u16(), %reason, %message, "cci error");
        Err(Error::Api {
            method,
            path: path.to_string(),
            code: code.as_u16(),
            reason,
            message,
        })
    }

    /// The request `builder` makes, with this client's credentials: the token, or the
    /// signature of the request as it will be sent.
    fn authorize(&self, builder: RequestBuilder) -> reqwest::Result<reqwest::Request> {
        match &self.auth {
            CciAuth::Token(token) => builder.header(AUTH_HEADER, token).build(),
            CciAuth::TokenFile(file) => builder.header(AUTH_HEADER, file.token()).build(),
            CciAuth::AkSk(credentials) => {
                let mut request = builder.build()?;
                cci_api::aksk::sign_request(&mut request, credentials, SystemTime::now());
                Ok(request)
            }
        }
    }

    /// Create a namespace.
    pub async fn create_namespace(&self, namespace: &Namespace) -> Result<Namespace> {
        self.call(
            Method::POST,
            format!("{API_PREFIX}/namespaces"),
            Some(namespace),
        )
        .await
    }

    /// Read a namespace.
    pub async fn get_namespace(&self, name: &str) -> Result<Namespace> {
        self.call(
            Method::GET,
            format!("{API_PREFIX}/namespaces/{name}"),
            NO_BODY,
        )
        .await
    }

    /// Delete a namespace (with everything in it). One that does not exist is an
    /// [`Error::Api`] with code 404.
    pub async fn delete_namespace(&self, name: &str) -> Result<()> {
        self.send(
            Method::DELETE,
            &format!("{API_PREFIX}/namespaces/{name}"),
            NO_BODY,
        )
        .await?;
        Ok(())
    }

    /// Create the CCI namespace of cluster `cluster_id` (`bursting-{clusterID}`, labelled with
    /// the ID) unless it exists; answers whether it was created. One that exists but is
    /// `Terminating` is [`Error::NamespaceTerminating`]: nothing may be created in it, so the
    /// caller tries again later and makes it anew once it is gone. Every component that needs
    /// the namespace (the virtual kubelet, the proxy) goes through here, so they agree on it.
    pub async fn ensure_cluster_namespace(&self, cluster_id: &str) -> Result<bool> {
        let namespace = crate::translate::cci_namespace(cluster_id);
        match self.create_namespace(&namespace).await {
            Ok(_) => {
                tracing::info!(
                    namespace = namespace.metadata.name.as_deref().unwrap_or_default(),
                    "created CCI namespace"
                );
                Ok(true)
            }
            Err(e) if e.code() == Some(409) => {
                let name = namespace.metadata.name.unwrap_or_default();
                match self.get_namespace(&name).await {
                    Ok(found) if found.is_terminating() => {
                        Err(Error::NamespaceTerminating { namespace: name })
                    }
                    // NB: gone since the 409 is as good as there: a create in it answers 404,
                    // on which the provider makes the namespace again.
                    Ok(_) => Ok(false),
                    Err(e) if e.code() == Some(404) => Ok(false),
                    Err(e) => Err(e),
                }
            }
            Err(e) => Err(e),
        }
    }

    /// Make sure CCI namespace `namespace` has the Network `network` describes
    /// ([`CLUSTER_NETWORK_NAME`]), creating it unless it exists, and wait until it is `Ready`
    /// (at most `network.ready_timeout`): published CCI 2.0 gives a namespace's pods addresses
    /// only from a Ready Network, so none is created before. Answers whether it was created.
    pub async fn ensure_cluster_network(
        &self,
        namespace: &str,
        network: &ClusterNetwork,
    ) -> Result<bool> {
        let existing = self
            .list_networks(namespace)
            .await?
            .items
            .into_iter()
            .find(|n| n.metadata.name.as_deref() == Some(CLUSTER_NETWORK_NAME));
        let (mut current, created) = match existing {
            Some(found) => (found, false),
            None => match self.create_network(namespace, &network.object()).await {
                Ok(made) => {
                    tracing::info!(
                        namespace,
                        subnets = %network.subnet_ids.join(","),
                        "created the CCI namespace's network"
                    );
                    (made, true)
                }
                // Created meanwhile (another replica, the proxy): wait for that one.
                Err(e) if e.code() == Some(409) => (
                    self.get_network(namespace, CLUSTER_NETWORK_NAME).await?,
                    false,
                ),
                Err(e) => return Err(e),
            },
        };
        let started = tokio::time::Instant::now();
        while !current.is_ready() {
            let waited = started.elapsed();
            if waited >= network.ready_timeout {
                return Err(Error::NetworkNotReady {
                    namespace: namespace.to_owned(),
                    name: CLUSTER_NETWORK_NAME.to_owned(),
                    subnets: current.subnet_ids().join(","),
                    status: current
                        .status
                        .as_ref()
                        .and_then(|s| s.status.clone())
                        .unwrap_or_default(),
                    waited,
                });
            }
            tokio::time::sleep(NETWORK_POLL.min(network.ready_timeout - waited)).await;
            current = self.get_network(namespace, CLUSTER_NETWORK_NAME).await?;
        }
        Ok(created)
    }

    /// Read one network of `namespace`.
    pub async fn get_network(&self, namespace: &str, name: &str) -> Result<Network> {
        self.call(
            Method::GET,
            format!("{NETWORK_API_PREFIX}/namespaces/{namespace}/networks/{name}"),
            NO_BODY,
        )
        .await
    }

    /// Create a pod in `namespace`; answers the stored pod.
    pub async fn create_pod(&self, namespace: &str, pod: &Pod) -> Result<Pod> {
        self.call(
            Method::POST,
            format!("{API_PREFIX}/namespaces/{namespace}/pods"),
            Some(pod),
        )
        .await
    }

    /// Read a pod.
    pub async fn get_pod(&self, namespace: &str, name: &str) -> Result<Pod> {
        self.call(
            Method::GET,
            format!("{API_PREFIX}/namespaces/{namespace}/pods/{name}"),
            NO_BODY,
        )
        .await
    }

    /// List the pods of `namespace`.
    pub async fn list_pods(&self, namespace: &str) -> Result<List<Pod>> {
        self.call(
            Method::GET,
            format!("{API_PREFIX}/namespaces/{namespace}/pods"),
            NO_BODY,
        )
        .await
    }

    /// The pods of `namespace` as [`PodSummary`]s: metadata, container names and images,
    /// status. What a status round needs, at a tenth of the memory of [`list_pods`](Self::list_pods).
    pub async fn list_pod_summaries(&self, namespace: &str) -> Result<List<PodSummary>> {
        self.call(
            Method::GET,
            format!("{API_PREFIX}/namespaces/{namespace}/pods"),
            NO_BODY,
        )
        .await
    }

    /// Watch the pods of `namespace` as [`PodSummary`]s: every change after `resource_version`
    /// (with `None`, an `ADDED` event for every pod first), for `timeout` (the server's
    /// `timeoutSeconds`, whole seconds, at least one), after which the server ends the stream.
    ///
    /// A `resource_version` whose changes CCI no longer keeps is answered 410: an
    /// [`Error::Api`] for which [`Error::is_expired`] holds (and so is an `ERROR` event carrying
    /// that status mid-stream).
    pub async fn watch_pod_summaries(
        &self,
        namespace: &str,
        resource_version: Option<&str>,
        timeout: Duration,
    ) -> Result<PodWatch> {
        let seconds = timeout.as_secs().max(1);
        let mut query = vec![("watch", "true".to_owned())];
        if let Some(rv) = resource_version {
            query.push(("resourceVersion", rv.to_owned()));
        }
        query.push(("timeoutSeconds", seconds.to_string()));
        let query = serde_urlencoded::to_string(&query).unwrap_or_default();
        let path = format!("{API_PREFIX}/namespaces/{namespace}/pods?{query}");
        let method = Method::GET;
        let http_err = |source| Error::Http {
            method: Method::GET,
            path: path.clone(),
            source,
        };
        self.counters.count(RequestKind::of(method.as_str(), &path));
        let request = self
            .authorize(
                self.http
                    .get(format!("{}{path}", self.endpoint))
                    .header(reqwest::header::ACCEPT, "application/json")
                    // NB: replaces the client's 30 s timeout, which bounds the whole answer: a
                    // watch is answered for as long as it asked, so only a stalled stream meets
                    // this one.
                    .timeout(Duration::from_secs(seconds) + WATCH_TIMEOUT_SLACK),
            )
            .map_err(http_err)?;
        let response = self.http.execute(request).await.map_err(http_err)?;
        let code = response.status();
        if !code.is_success() {
            let bytes = response.bytes().await.map_err(http_err)?;
            let (reason, message) = error_body(&bytes, code);
            tracing::debug!(%method, path, code = code.as_u16(), %reason, %message, "cci watch refused");
            return Err(Error::Api {
                method,
                path,
                code: code.as_u16(),
                reason,
                message,
            });
        }
        Ok(PodWatch {
            response,
            path,
            buffer: Vec::new(),
            consumed: 0,
        })
    }

    /// The log of one container of a pod, as text (`GET …/pods/{name}/log`): the last
    /// `tail_lines` lines when given, the previous (terminated) instance when `previous`. A pod
    /// that does not exist is an [`Error::Api`] with code 404; a container that has no such log
    /// (still waiting, no previous instance) one with code 400.
    pub async fn pod_log(
        &self,
        namespace: &str,
        name: &str,
        container: &str,
        tail_lines: Option<i64>,
        previous: bool,
    ) -> Result<String> {
        let mut query = vec![("container", container.to_owned())];
        if let Some(n) = tail_lines {
            query.push(("tailLines", n.to_string()));
        }
        if previous {
            query.push(("previous", "true".to_owned()));
        }
        let query = serde_urlencoded::to_string(&query).unwrap_or_default();
        let bytes = self
            .send(
                Method::GET,
                &format!("{API_PREFIX}/namespaces/{namespace}/pods/{name}/log?{query}"),
                NO_BODY,
            )
            .await?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    /// Delete a pod. A pod that does not exist is an [`Error::Api`] with code 404.
    pub async fn delete_pod(&self, namespace: &str, name: &str) -> Result<()> {
        self.send(
            Method::DELETE,
            &format!("{API_PREFIX}/namespaces/{namespace}/pods/{name}"),
            NO_BODY,
        )
        .await?;
        Ok(())
    }

    /// Delete a pod with `grace` seconds for its containers to stop (CCI's default when `None`):
    /// the grace period of the cluster pod's graceful delete. A pod that does not exist is an
    /// [`Error::Api`] with code 404.
    pub async fn delete_pod_with_grace(
        &self,
        namespace: &str,
        name: &str,
        grace: Option<i64>,
    ) -> Result<()> {
        let query = grace.map_or_else(String::new, |g| format!("?gracePeriodSeconds={g}"));
        self.send(
            Method::DELETE,
            &format!("{API_PREFIX}/namespaces/{namespace}/pods/{name}{query}"),
            NO_BODY,
        )
        .await?;
        Ok(())
    }

    /// Delete a pod at once (`gracePeriodSeconds=0`): for clean-up, where nobody waits for the
    /// containers to stop. A pod that does not exist is an [`Error::Api`] with code 404.
    pub async fn delete_pod_now(&self, namespace: &str, name: &str) -> Result<()> {
        self.send(
            Method::DELETE,
            &format!("{API_PREFIX}/namespaces/{namespace}/pods/{name}?gracePeriodSeconds=0"),
            NO_BODY,
        )
        .await?;
        Ok(())
    }

    /// Create an object of the collection `plural` (`configmaps`, `secrets`,
    /// `persistentvolumeclaims`, `services`, `proxyregistrations`) in `namespace`; answers the
    /// stored object.
    pub async fn create_object<T>(&self, namespace: &str, plural: &str, object: &T) -> Result<T>
    where
        T: Serialize + DeserializeOwned + Sync,
    {
        self.call(
            Method::POST,
            format!("{API_PREFIX}/namespaces/{namespace}/{plural}"),
            Some(object),
        )
        .await
    }

    /// List the objects of the collection `plural` in `namespace`.
    pub async fn list_objects<T: DeserializeOwned>(
        &self,
        namespace: &str,
        plural: &str,
    ) -> Result<List<T>> {
        self.call(
            Method::GET,
            format!("{API_PREFIX}/namespaces/{namespace}/{plural}"),
            NO_BODY,
        )
        .await
    }

    /// Read object `name` of the collection `plural` in `namespace`.
    pub async fn get_object<T: DeserializeOwned>(
        &self,
        namespace: &str,
        plural: &str,
        name: &str,
    ) -> Result<T> {
        self.call(
            Method::GET,
            format!("{API_PREFIX}/namespaces/{namespace}/{plural}/{name}"),
            NO_BODY,
        )
        .await
    }

    /// Replace object `name` of the collection `plural` in `namespace` (unconditionally when
    /// the object carries no `resourceVersion`); answers the stored object.
    pub async fn replace_object<T>(
        &self,
        namespace: &str,
        plural: &str,
        name: &str,
        object: &T,
    ) -> Result<T>
    where
        T: Serialize + DeserializeOwned + Sync,
    {
        self.call(
            Method::PUT,
            format!("{API_PREFIX}/namespaces/{namespace}/{plural}/{name}"),
            Some(object),
        )
        .await
    }

    /// Delete object `name` of the collection `plural` in `namespace`. One that does not exist
    /// is an [`Error::Api`] with code 404.
    pub async fn delete_object(&self, namespace: &str, plural: &str, name: &str) -> Result<()> {
        self.send(
            Method::DELETE,
            &format!("{API_PREFIX}/namespaces/{namespace}/{plural}/{name}"),
            NO_BODY,
        )
        .await?;
        Ok(())
    }
}

/// The network objects live in their own API group (`yangtse/v2`), hence their own methods.
impl CciClient {
    /// Create a network in `namespace`; answers the stored network.
    pub async fn create_network(&self, namespace: &str, network: &Network) -> Result<Network> {
        self.call(
            Method::POST,
            format!("{NETWORK_API_PREFIX}/namespaces/{namespace}/networks"),
            Some(network),
        )
        .await
    }

    /// List the networks of `namespace`.
    pub async fn list_networks(&self, namespace: &str) -> Result<List<Network>> {
        self.call(
            Method::GET,
            format!("{NETWORK_API_PREFIX}/namespaces/{namespace}/networks"),
            NO_BODY,
        )
        .await
    }

    /// Delete network `name` of `namespace`. One that does not exist is an [`Error::Api`] with
    /// code 404.
    pub async fn delete_network(&self, namespace: &str, name: &str) -> Result<()> {
        self.send(
            Method::DELETE,
            &format!("{NETWORK_API_PREFIX}/namespaces/{namespace}/networks/{name}"),
            NO_BODY,
        )
        .await?;
        Ok(())
    }
}

const NO_BODY: Option<&()> = None;

/// One event of a pod watch ([`PodWatch::next`]).
#[derive(Clone, Debug, PartialEq)]
pub enum PodWatchEvent {
    /// A pod was created (or existed when a watch without `resourceVersion` started).
    Added(PodSummary),
    /// A pod changed (its status, mostly).
    Modified(PodSummary),
    /// A pod is gone; the summary is its last state, carrying the deletion's `resourceVersion`.
    Deleted(PodSummary),
    /// Nothing changed up to this `resourceVersion` (Kubernetes' `BOOKMARK`).
    Bookmark(String),
    /// The server ended the watch with this status (e.g. 410 `Expired`: it fell too far
    /// behind); no more events follow.
    Error(Status),
}

/// A pod watch being answered ([`CciClient::watch_pod_summaries`]): newline-delimited JSON
/// events, read chunk by chunk as they arrive.
#[derive(Debug)]
pub struct PodWatch {
    response: reqwest::Response,
    path: String,
    /// Bytes received and not yet handed out as events; `buffer[..consumed]` is spent.
    buffer: Vec<u8>,
    consumed: usize,
}

impl PodWatch {
    /// The next event as soon as its line is complete; `Ok(None)` when the server ended the
    /// stream (its `timeoutSeconds`). A dropped connection is [`Error::Http`]; a line that is no
    /// watch event of a pod, or a stream cut off mid-line, is [`Error::Decode`].
    pub async fn next(&mut self) -> Result<Option<PodWatchEvent>> {
        loop {
            let pending = &self.buffer[self.consumed..];
            if let Some(end) = pending.iter().position(|b| *b == b'\n') {
                let line = pending[..end].trim_ascii();
                self.consumed += end + 1;
                if line.is_empty() {
                    continue;
                }
                return decode_event(line)
                    .map(Some)
                    .map_err(|source| self.decode_error(source));
            }
            // NB: the spent prefix is dropped only before reading more, so a chunk holding many
            // events is not shifted once per event.
            self.buffer.drain(..self.consumed);
            self.consumed = 0;
            let chunk = self.response.chunk().await.map_err(|source| Error::Http {
                method: Method::GET,
                path: self.path.clone(),
                source,
            })?;
            match chunk {
                Some(chunk) => self.buffer.extend_from_slice(&chunk),
                None if self.buffer.trim_ascii().is_empty() => return Ok(None),
                // The last line without its newline: whole, or the stream was cut off.
                None => {
                    let line = std::mem::take(&mut self.buffer);
                    return decode_event(line.trim_ascii())
                        .map(Some)
                        .map_err(|source| self.decode_error(source));
                }
            }
        }
    }

    fn decode_error(&self, source: serde_json::Error) -> Error {
        Error::Decode {
            method: Method::GET,
            path: self.path.clone(),
            source,
        }
    }
}

/// One line of a pod watch.
fn decode_event(line: &[u8]) -> serde_json::Result<PodWatchEvent> {
    let event: cci_api::WatchEvent<serde_json::Value> = serde_json::from_slice(line)?;
    let object = event.object;
    Ok(match event.type_.as_str() {
        "ADDED" => PodWatchEvent::Added(serde_json::from_value(object)?),
        "MODIFIED" => PodWatchEvent::Modified(serde_json::from_value(object)?),
        "DELETED" => PodWatchEvent::Deleted(serde_json::from_value(object)?),
        "ERROR" => PodWatchEvent::Error(serde_json::from_value(object)?),
        "BOOKMARK" => PodWatchEvent::Bookmark(
            object
                .pointer("/metadata/resourceVersion")
                .and_then(serde_json::Value::as_str)
                .unwrap_or_default()
                .to_owned(),
        ),
        other => {
            return Err(serde::de::Error::custom(format!(
                "unknown watch event type {other:?}"
            )));
        }
    })
}

/// What a CCI request does, as [`CciClient::request_counts`] counts it.
pub use cci_api::requests::Verb;

/// Atomic counters, one per [`Verb`] × collection: counting costs one relaxed increment.
#[derive(Debug, Default)]
struct RequestCounters([[AtomicU64; COLLECTIONS.len()]; Verb::ALL.len()]);

impl RequestCounters {
    fn count(&self, kind: RequestKind) {
        self.0[kind.verb as usize][kind.collection].fetch_add(1, Ordering::Relaxed);
    }

    fn snapshot(&self) -> RequestCounts {
        let mut counts = BTreeMap::new();
        for verb in Verb::ALL {
            for (i, resource) in COLLECTIONS.iter().enumerate() {
                let n = self.0[verb as usize][i].load(Ordering::Relaxed);
                if n > 0 {
                    counts.insert(format!("{} {resource}", verb.as_str()), n);
                }
            }
        }
        RequestCounts(counts)
    }
}

/// How many requests of each kind a [`CciClient`] sent, keyed `"{METHOD} {verb} {collection}"`
/// (e.g. `"GET list pods"`, `"GET watch pods"`, `"POST create pods"`); kinds never sent are
/// absent. Serializes as that JSON object.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct RequestCounts(pub BTreeMap<String, u64>);

impl RequestCounts {
    /// How many `verb` requests on `collection` (e.g. `"pods"`) were sent.
    pub fn get(&self, verb: Verb, collection: &str) -> u64 {
        self.0
            .get(&format!("{} {collection}", verb.as_str()))
            .copied()
            .unwrap_or(0)
    }

    /// How many requests were sent in all.
    pub fn total(&self) -> u64 {
        self.0.values().sum()
    }
}

/// The longest `Retry-After` of a 429 the client waits for before retrying; a longer one (or an
/// HTTP date) is surfaced as the 429 it is, and the caller backs off.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(5);

/// How long to wait before sending a throttled (429) request again: its `Retry-After` in whole
/// seconds, when at most [`MAX_RETRY_AFTER`].
fn retry_after(response: &reqwest::Response) -> Option<Duration> {
    if response.status() != reqwest::StatusCode::TOO_MANY_REQUESTS {
        return None;
    }
    let seconds: u64 = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Some(Duration::from_secs(seconds)).filter(|wait| *wait <= MAX_RETRY_AFTER)
}

/// Reason and message of an error answer: the API's `Status` shape when it is one, else the
/// body's text.
fn error_body(bytes: &[u8], code: reqwest::StatusCode) -> (String, String) {
    if let Ok(status) = serde_json::from_slice::<Status>(bytes) {
        return (status.reason, status.message);
    }
    // Lenient: a Status-like body missing some fields still names its reason.
    if let Ok(value) = serde_json::from_slice::<serde_json::Value>(bytes) {
        let field = |f: &str| value.get(f).and_then(|v| v.as_str()).map(str::to_string);
        if let (Some(reason), message) = (field("reason"), field("message")) {
            return (reason, message.unwrap_or_default());
        }
    }
    let text = String::from_utf8_lossy(bytes).chars().take(500).collect();
    (
        code.canonical_reason()
            .unwrap_or("Unknown")
            .replace(' ', ""),
        text,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A client for building requests (never sent over TLS).
    #[rstest::rstest]
    #[case::a_token(Some("t"), None, None, None, "Token(<redacted>)")]
    #[case::a_pair_from_the_environment(None, None, Some("AK"), Some("SK"), "AkSk(")]
    #[case::a_pair_from_a_file(None, Some("# pair\nAK:SK\n"), None, None, "AkSk(")]
    #[case::the_file_wins_over_the_environment(None, Some("FILEAK:SK"), Some("AK"), None, "FILEAK")]
    fn one_credential_is_chosen(
        #[case] token: Option<&str>,
        #[case] file: Option<&str>,
        #[case] access_key: Option<&str>,
        #[case] secret_key: Option<&str>,
        #[case] shown: &str,
    ) {
        let auth = CciAuth::choose(
            token.map(String::from),
            file,
            access_key.map(String::from),
            secret_key.map(String::from),
        )
        .unwrap();
        let debug = format!("{auth:?}");
        assert!(debug.contains(shown), "{debug}");
        assert!(
            !debug.contains(":SK") && !debug.contains("\"SK\""),
            "{debug}"
        );
    }

    #[rstest::rstest]
    // NB: the engine refuses to run without a credential; which credentials are refused
    // otherwise is `cci_api::aksk::one_credential`'s (tested there), passed through here.
    #[case::nothing(None, None, None, None, "no CCI credential")]
    #[case::an_empty_token(Some(""), None, None, None, "no CCI credential")]
    #[case::a_token_and_a_pair(Some("t"), None, Some("AK"), Some("two-secret"), "give one")]
    #[case::no_colon(None, Some("AK two-secret"), None, None, "line 1")]
    fn a_missing_or_doubled_credential_is_refused_without_its_secret(
        #[case] token: Option<&str>,
        #[case] file: Option<&str>,
        #[case] access_key: Option<&str>,
        #[case] secret_key: Option<&str>,
        #[case] because: &str,
    ) {
        let err = CciAuth::choose(
            token.map(String::from),
            file,
            access_key.map(String::from),
            secret_key.map(String::from),
        )
        .unwrap_err();
        assert!(err.contains(because), "{err}");
        assert!(!err.contains("two-secret"), "{err}");
    }

    #[test]
    fn an_endpoint_must_be_an_http_url() {
        assert!(CciClient::new("http://127.0.0.1:1/", "t").is_ok());
        let err = CciClient::new("127.0.0.1:1", "t").unwrap_err();
        assert!(err.to_string().contains("127.0.0.1:1"), "{err}");
        assert!(CciClient::new("ftp://x", "t").is_err());
    }

    // How a request is classified is tested in `cci_api::requests`; here, that it is counted.
    #[rstest::rstest]
    #[case::list_pods("GET", "/apis/cci/v2/namespaces/ns/pods", Verb::List, "pods")]
    #[case::watch_pods(
        "GET",
        "/apis/cci/v2/namespaces/ns/pods?watch=true&resourceVersion=7",
        Verb::Watch,
        "pods"
    )]
    #[case::delete_network(
        "DELETE",
        "/apis/yangtse/v2/namespaces/ns/networks/n",
        Verb::Delete,
        "networks"
    )]
    #[case::unknown_collection("GET", "/apis/cci/v2/namespaces/ns/widgets", Verb::List, "other")]
    #[case::post_to_an_item("POST", "/apis/cci/v2/namespaces/ns/pods/p", Verb::Other, "pods")]
    fn requests_are_counted_by_verb_and_collection(
        #[case] method: &str,
        #[case] path: &str,
        #[case] verb: Verb,
        #[case] resource: &str,
    ) {
        let kind = RequestKind::of(method, path);
        assert_eq!((kind.verb, kind.collection()), (verb, resource));
        let counters = RequestCounters::default();
        counters.count(kind);
        counters.count(kind);
        let counts = counters.snapshot();
        assert_eq!(counts.get(verb, resource), 2);
        assert_eq!(counts.total(), 2);
        // Kinds never sent are absent, so the logged line names only what was sent.
        let logged = serde_json::to_value(&counts).unwrap();
        assert_eq!(
            logged.as_object().map(serde_json::Map::len),
            Some(1),
            "{logged}"
        );
    }

    #[rstest::rstest]
    #[case::added(
        r#"{"type":"ADDED","object":{"metadata":{"name":"p","resourceVersion":"3"}}}"#,
        "added p"
    )]
    #[case::modified(
        r#"{"type":"MODIFIED","object":{"metadata":{"name":"p"},"status":{"phase":"Running"}}}"#,
        "modified p"
    )]
    #[case::deleted(
        r#"{"type":"DELETED","object":{"metadata":{"name":"p"}}}"#,
        "deleted p"
    )]
    #[case::bookmark(
        r#"{"type":"BOOKMARK","object":{"metadata":{"resourceVersion":"9"}}}"#,
        "bookmark 9"
    )]
    #[case::expired(
        r#"{"type":"ERROR","object":{"kind":"Status","status":"Failure","reason":"Expired","code":410,"message":"too old"}}"#,
        "error 410 Expired"
    )]
    fn watch_lines_decode_into_events(#[case] line: &str, #[case] expected: &str) {
        let name = |p: &PodSummary| p.metadata.name.clone().unwrap_or_default();
        let got = match decode_event(line.as_bytes()).unwrap() {
            PodWatchEvent::Added(p) => format!("added {}", name(&p)),
            PodWatchEvent::Modified(p) => format!("modified {}", name(&p)),
            PodWatchEvent::Deleted(p) => format!("deleted {}", name(&p)),
            PodWatchEvent::Bookmark(rv) => format!("bookmark {rv}"),
            PodWatchEvent::Error(s) => format!("error {} {}", s.code, s.reason),
        };
        assert_eq!(got, expected);
    }

    #[rstest::rstest]
    #[case::not_json("{\"type\":\"ADDED\",\"obj")]
    #[case::unknown_type(r#"{"type":"RENAMED","object":{}}"#)]
    #[case::pod_without_metadata(r#"{"type":"ADDED","object":{"spec":{}}}"#)]
    fn a_line_that_is_no_pod_event_is_a_decode_error(#[case] line: &str) {
        assert!(decode_event(line.as_bytes()).is_err());
    }

    #[test]
    fn error_bodies_are_read_strictly_then_leniently_then_as_text() {
        let code = reqwest::StatusCode::NOT_FOUND;
        let full = br#"{"kind":"Status","apiVersion":"v1","status":"Failure","message":"pod x not found","reason":"NotFound","code":404,"errorCode":"CCI.01.404001"}"#;
        assert_eq!(
            error_body(full, code),
            ("NotFound".into(), "pod x not found".into())
        );
        let partial = br#"{"reason":"NotFound","code":404}"#;
        assert_eq!(
            error_body(partial, code),
            ("NotFound".into(), String::new())
        );
        assert_eq!(
            error_body(b"no such thing", code),
            ("NotFound".into(), "no such thing".into())
        );
    }
}
