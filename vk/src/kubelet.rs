//! The kubelet API a virtual kubelet serves, as far as it needs one: `kubectl logs`.
//!
//! The API server answers `GET /api/v1/namespaces/{ns}/pods/{pod}/log` by calling the kubelet of
//! the pod's node at `https://{InternalIP}:{status.daemonEndpoints.kubeletEndpoint.Port}` (with
//! `--kubelet-preferred-address-types` putting `InternalIP` first; the virtual node's `Hostname`
//! is its name, which resolves nowhere). [`KubeletServer`] serves, when
//! [`Config::kubelet_listen`](crate::Config::kubelet_listen) is set:
//!
//! - `GET /containerLogs/{namespace}/{pod}/{container}`: the container's logs from
//!   [`Provider::logs`], as `text/plain`. The pod is read from the pod controller's cache (the
//!   node's own pods): a pod that is not on this node, or a container that is not in the pod, is
//!   404. The query is the kubelet's ([`parse_log_query`]): `tailLines` (and the legacy `tail`,
//!   `all` meaning every line), `previous`, `timestamps`, `follow`, `limitBytes`,
//!   `sinceSeconds`, `sinceTime`, `stream=All`; a value that does not decode or is out of range
//!   is 400. `limitBytes` is applied here. **`follow=true` answers the logs as of now and ends**:
//!   `kubectl logs -f` prints them and returns instead of streaming. Provider errors map to
//!   404 (`NotFound`), 400 (`InvalidInput`: e.g. a container still waiting to start, as a
//!   kubelet answers), 501 (`NotImplemented`: a provider without logs), 500 (anything else).
//!   Error bodies are plain text, as a kubelet's; the API server passes them on to the client.
//! - `GET /healthz`: `ok`.
//!
//! # TLS and who may call
//!
//! - **Serving certificate**: self-signed, made at start ([`KubeletServer::bind`]) for the
//!   node's InternalIP, the listen address and the node name, like a kubelet without
//!   `--tls-cert-file`. The API server checks kubelet serving certificates only when it runs with
//!   `--kubelet-certificate-authority`; a cluster that sets it must trust this certificate some
//!   other way (not done here).
//! - **Client certificates are required and verified** against
//!   [`Config::kubelet_client_ca`](crate::Config::kubelet_client_ca) during the TLS handshake,
//!   as virtual-kubelet's node CLI does by default and as a kubelet with `--client-ca-file` does
//!   for certificates: the API server authenticates with its `--kubelet-client-certificate`,
//!   which a cluster CA signs. A connection without a certificate from those CAs is refused;
//!   there is no anonymous access. Every route is read-only.
//! - **Callers are authorized** as a kubelet with `--authorization-mode=Webhook` does, when the
//!   state has an authorizer ([`KubeletState::with_authorizer`]; [`crate::run`] always sets
//!   one): the certificate's subject is the user (common name) and its groups (organizations),
//!   and the API server is asked (SubjectAccessReview) whether they may `get` `nodes/proxy` of
//!   this node. A certificate the CA signed for anyone else is answered 403, as a kubelet
//!   answers. The add-on's account needs `create` on `subjectaccessreviews`.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum_server::tls_rustls::RustlsConfig;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use kube::runtime::reflector::{ObjectRef, Store};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::{CachedPod, Error, LogOptions, NodeConfig, Provider, ProviderError, Result};

/// A `/containerLogs` query that cannot be served: the 400's body.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BadQuery(String);

/// The kubelet's reading of query values: `0` and `false` (any case) are false, anything else,
/// the empty value included (`?follow`), is true.
fn flag(value: &str) -> bool {
    !(value == "0" || value.eq_ignore_ascii_case("false"))
}

fn integer(key: &str, value: &str) -> Result<i64, BadQuery> {
    value
        .parse()
        .map_err(|_| BadQuery(format!("{key}={value:?}: not a whole number")))
}

/// The options of a `/containerLogs` query string (without the `?`), read and validated as a
/// kubelet does: the first value of a repeated key counts, unknown keys (e.g. the API server's
/// `insecureSkipTLSVerifyBackend`) are ignored, numbers must be in range (`tailLines` ≥ 0,
/// `limitBytes` ≥ 1, `sinceSeconds` ≥ 1), `sinceTime` is RFC 3339 and excludes `sinceSeconds`.
/// `stream` other than `All` is refused: this kubelet does not keep stdout and stderr apart.
pub fn parse_log_query(query: Option<&str>) -> Result<LogOptions, BadQuery> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query.unwrap_or_default())
        .map_err(|e| BadQuery(format!("the query does not decode: {e}")))?;
    let first = |key: &str| {
        pairs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    };
    let mut options = LogOptions {
        previous: first("previous").is_some_and(flag),
        timestamps: first("timestamps").is_some_and(flag),
        follow: first("follow").is_some_and(flag),
        ..LogOptions::default()
    };
    // NB: the legacy `tail` wins over `tailLines`, as in the kubelet; `tail=all` is every line.
    options.tail_lines = match (first("tail"), first("tailLines")) {
        (Some("all"), _) => None,
        (Some(tail), _) if !tail.is_empty() => Some(integer("tail", tail)?),
        (_, Some(lines)) => Some(integer("tailLines", lines)?),
        _ => None,
    };
    if let Some(bytes) = first("limitBytes") {
        options.limit_bytes = Some(integer("limitBytes", bytes)?);
    }
    if let Some(seconds) = first("sinceSeconds") {
        options.since_seconds = Some(integer("sinceSeconds", seconds)?);
    }
    if let Some(time) = first("sinceTime") {
        options.since_time = Some(
            time.parse::<Timestamp>()
                .map_err(|e| BadQuery(format!("sinceTime={time:?}: not an RFC 3339 time: {e}")))?,
        );
    }
    match first("stream") {
        None | Some("All") => {}
        Some(other) => {
            return Err(BadQuery(format!(
                "stream={other:?}: only All is served; this kubelet does not keep stdout and stderr apart"
            )));
        }
    }
    if options.tail_lines.is_some_and(|n| n < 0) {
        return Err(BadQuery("tailLines must be 0 or more".into()));
    }
    if options.limit_bytes.is_some_and(|n| n < 1) {
        return Err(BadQuery("limitBytes must be 1 or more".into()));
    }
    if options.since_seconds.is_some_and(|n| n < 1) {
        return Err(BadQuery("sinceSeconds must be 1 or more".into()));
    }
    if options.since_seconds.is_some() && options.since_time.is_some() {
        return Err(BadQuery(
            "at most one of sinceTime and sinceSeconds may be given".into(),
        ));
    }
    Ok(options)
}

/// What the kubelet API's routes read: the provider, the node's pods, and who authorizes.
pub struct KubeletState<P> {
    provider: Arc<P>,
    pods: Store<CachedPod>,
    node_name: String,
    authorizer: Option<kube::Client>,
}

impl<P> Clone for KubeletState<P> {
    fn clone(&self) -> Self {
        Self {
            provider: Arc::clone(&self.provider),
            pods: self.pods.clone(),
            node_name: self.node_name.clone(),
            authorizer: self.authorizer.clone(),
        }
    }
}

impl<P: Provider> KubeletState<P> {
    /// Logs come from `provider`, for the pods in `pods` (the node `node_name`'s pods; the pod
    /// controller's cache in [`crate::run`]).
    pub fn new(provider: Arc<P>, pods: Store<CachedPod>, node_name: impl Into<String>) -> Self {
        Self {
            provider,
            pods,
            node_name: node_name.into(),
            authorizer: None,
        }
    }

    /// Each caller is authorized by asking `client`'s API server (see the module docs).
    #[must_use]
    pub fn with_authorizer(mut self, client: kube::Client) -> Self {
        self.authorizer = Some(client);
        self
    }
}

/// The user and groups a client certificate names: its subject's common name and
/// organizations, as the API server reads them.
pub fn identity_of(der: &[u8]) -> Option<(String, Vec<String>)> {
    let (_, certificate) = x509_parser::parse_x509_certificate(der).ok()?;
    let subject = certificate.subject();
    let user = subject.iter_common_name().next()?.as_str().ok()?.to_owned();
    let groups = subject
        .iter_organization()
        .filter_map(|o| o.as_str().ok().map(str::to_owned))
        .collect();
    Some((user, groups))
}

/// Whether the caller of `tls` may use the kubelet API of `node` (`get nodes/proxy`), asked of
/// `client`'s API server; `Err` with a kubelet's answer when not.
async fn authorize(
    client: &kube::Client,
    tls: Option<&axum_server::tls::TlsInfo>,
    node: &str,
) -> std::result::Result<(), Response> {
    use k8s_openapi::api::authorization::v1::{
        ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
    };
    let Some((user, groups)) = tls
        .and_then(|t| t.peer_certificates.first())
        .and_then(|der| identity_of(der))
    else {
        return Err(text(
            StatusCode::UNAUTHORIZED,
            "Unauthorized: no client certificate naming a user".into(),
        ));
    };
    let review = SubjectAccessReview {
        spec: SubjectAccessReviewSpec {
            user: Some(user.clone()),
            groups: Some(groups),
            resource_attributes: Some(ResourceAttributes {
                verb: Some("get".into()),
                resource: Some("nodes".into()),
                subresource: Some("proxy".into()),
                name: Some(node.to_owned()),
                ..ResourceAttributes::default()
            }),
            ..SubjectAccessReviewSpec::default()
        },
        ..SubjectAccessReview::default()
    };
    let answer = kube::Api::<SubjectAccessReview>::all(client.clone())
        .create(&kube::api::PostParams::default(), &review)
        .await;
    match answer {
        Ok(r) if r.status.as_ref().is_some_and(|s| s.allowed) => Ok(()),
        Ok(_) => Err(text(
            StatusCode::FORBIDDEN,
            format!("Forbidden (user={user}, verb=get, resource=nodes, subresource=proxy)"),
        )),
        Err(e) => {
            tracing::warn!(%user, error = %e, "kubelet API: the authorization could not be asked");
            Err(text(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Authorization error (user could not be authorized)".into(),
            ))
        }
    }
}

/// The kubelet API's routes (see the [module docs](self)), to serve or to drive without a socket.
pub fn app<P: Provider>(state: KubeletState<P>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/containerLogs/{namespace}/{pod}/{container}",
            get(container_logs::<P>),
        )
        .with_state(state)
}

fn text(code: StatusCode, body: String) -> Response {
    (code, body).into_response()
}

fn has_container(pod: &Pod, name: &str) -> bool {
    let Some(spec) = &pod.spec else {
        return false;
    };
    spec.containers.iter().any(|c| c.name == name)
        || spec
            .init_containers
            .iter()
            .flatten()
            .any(|c| c.name == name)
        || spec
            .ephemeral_containers
            .iter()
            .flatten()
            .any(|c| c.name == name)
}

async fn container_logs<P: Provider>(
    State(state): State<KubeletState<P>>,
    tls: Option<axum::Extension<Arc<axum_server::tls::TlsInfo>>>,
    Path((namespace, name, container)): Path<(String, String, String)>,
    RawQuery(query): RawQuery,
) -> Response {
    if let Some(client) = &state.authorizer
        && let Err(refused) =
            authorize(client, tls.as_ref().map(|t| t.0.as_ref()), &state.node_name).await
    {
        return refused;
    }
    let options = match parse_log_query(query.as_deref()) {
        Ok(options) => options,
        Err(e) => return text(StatusCode::BAD_REQUEST, e.to_string()),
    };
    let key = ObjectRef::new(&name).within(&namespace);
    let node = &state.node_name;
    let pod = match state
        .pods
        .get(&key)
        .map(|cached| cached.to_pod())
        .transpose()
    {
        Ok(pod) => pod,
        Err(e) => return text(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    let Some(pod) = pod.filter(|pod| {
        pod.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(node.as_str())
    }) else {
        return text(
            StatusCode::NOT_FOUND,
            format!("pod {namespace}/{name} is not on node {node}"),
        );
    };
    if !has_container(&pod, &container) {
        return text(
            StatusCode::NOT_FOUND,
            format!("container {container:?} not found in pod {namespace}/{name}"),
        );
    }
    match state.provider.logs(&pod, &container, &options).await {
        Ok(logs) => {
            let mut bytes = logs.into_bytes();
            if let Some(limit) = options.limit_bytes {
                bytes.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
            }
            let mut response = bytes.into_response();
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; charset=utf-8"),
            );
            response
        }
        // The provider's own words for what the caller can act on, as a kubelet's
        // (`container "main" in pod … is waiting to start`).
        Err(ProviderError::NotFound(message)) => text(StatusCode::NOT_FOUND, message),
        Err(ProviderError::InvalidInput(message)) => text(StatusCode::BAD_REQUEST, message),
        Err(e @ ProviderError::NotImplemented(_)) => {
            text(StatusCode::NOT_IMPLEMENTED, e.to_string())
        }
        Err(e) => {
            tracing::warn!(pod = %format!("{namespace}/{name}"), %container, error = %e, "logs failed");
            text(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
        }
    }
}

/// A bound kubelet API socket and its TLS configuration, ready to [`serve`](Self::serve).
pub struct KubeletServer {
    listener: std::net::TcpListener,
    addr: SocketAddr,
    tls: RustlsConfig,
    certificate: CertificateDer<'static>,
}

impl std::fmt::Debug for KubeletServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeletServer")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl KubeletServer {
    /// Binds `listen` and makes the TLS configuration: a fresh self-signed serving certificate
    /// for `node`'s InternalIP, the listen address and the node name, and client certificates
    /// required and verified against `client_ca` (DER certificates; at least one).
    pub fn bind(listen: SocketAddr, node: &NodeConfig, client_ca: &[Vec<u8>]) -> Result<Self> {
        let fail = |action: &str| {
            let action = action.to_owned();
            move |source: Box<dyn std::error::Error + Send + Sync>| Error::KubeletApi {
                addr: listen,
                action,
                source: Some(source),
            }
        };
        if client_ca.is_empty() {
            return Err(Error::KubeletApi {
                addr: listen,
                action: "no client CA: the API server's client certificate could not be checked, and anonymous callers are not served".into(),
                source: None,
            });
        }
        let crypto = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        for der in client_ca {
            roots
                .add(CertificateDer::from(der.clone()))
                .map_err(|e| fail("read the client CA certificates")(e.into()))?;
        }
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            Arc::new(roots),
            crypto.clone(),
        )
        .build()
        .map_err(|e| fail("set up client certificate verification")(e.into()))?;
        let (certificate, key) = serving_certificate(listen, node)
            .map_err(|e| fail("make the serving certificate")(e.into()))?;
        let mut config = rustls::ServerConfig::builder_with_provider(crypto)
            .with_safe_default_protocol_versions()
            .and_then(|b| {
                b.with_client_cert_verifier(verifier)
                    .with_single_cert(vec![certificate.clone()], key)
            })
            .map_err(|e| fail("set up TLS")(e.into()))?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let listener = std::net::TcpListener::bind(listen).map_err(|e| fail("bind")(e.into()))?;
        listener
            .set_nonblocking(true)
            .map_err(|e| fail("bind")(e.into()))?;
        let addr = listener.local_addr().map_err(|e| fail("bind")(e.into()))?;
        Ok(Self {
            listener,
            addr,
            tls: RustlsConfig::from_config(Arc::new(config)),
            certificate,
        })
    }

    /// The bound address (port 0 picks a free one).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The serving certificate (DER), e.g. for a client that pins it.
    pub fn certificate(&self) -> &[u8] {
        &self.certificate
    }

    /// Serves `app` until the future is dropped; returns only when serving fails.
    pub async fn serve(self, app: Router) -> Result<()> {
        let addr = self.addr;
        let fail = |source: std::io::Error| Error::KubeletApi {
            addr,
            action: "serve".into(),
            source: Some(source.into()),
        };
        axum_server::from_tcp_rustls(self.listener, self.tls)
            .map_err(fail)?
            .serve(app.into_make_service())
            .await
            .map_err(fail)
    }
}

/// A self-signed serving certificate for the node (InternalIP, listen IP unless unspecified,
/// node name), and its key.
fn serving_certificate(
    listen: SocketAddr,
    node: &NodeConfig,
) -> Result<(CertificateDer<'static>, PrivateKeyDer<'static>), rcgen::Error> {
    let mut ips: Vec<IpAddr> = node.internal_ip.parse().into_iter().collect();
    if !listen.ip().is_unspecified() && !ips.contains(&listen.ip()) {
        ips.push(listen.ip());
    }
    let mut params = rcgen::CertificateParams::new(vec![node.name.clone()])?;
    params
        .subject_alt_names
        .extend(ips.into_iter().map(rcgen::SanType::IpAddress));
    // The kubelet's self-signed certificates are named `{host}@{unix seconds}` too.
    params.distinguished_name.push(
        rcgen::DnType::CommonName,
        format!("{}@{}", node.name, Timestamp::now().as_second()),
    );
    let key = rcgen::KeyPair::generate()?;
    let certificate = params.self_signed(&key)?;
    Ok((
        certificate.der().clone(),
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
    ))
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use axum::body::Body;
    use axum::http::Request;
    use k8s_openapi::api::core::v1::{Container, PodSpec};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    use kube::runtime::{reflector, watcher};
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    use tower::ServiceExt as _;

    use super::*;
    use crate::{ProviderResult, RemotePod};

    #[test]
    fn a_client_certificate_names_its_user_and_groups_as_the_api_server_reads_them() {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "kube-apiserver-kubelet-client");
        params
            .distinguished_name
            .push(rcgen::DnType::OrganizationName, "kubeadm:cluster-admins");
        let key = rcgen::KeyPair::generate().unwrap();
        let der = params.self_signed(&key).unwrap().der().to_vec();
        assert_eq!(
            identity_of(&der),
            Some((
                "kube-apiserver-kubelet-client".to_owned(),
                vec!["kubeadm:cluster-admins".to_owned()]
            ))
        );
        assert_eq!(identity_of(b"not a certificate"), None);
    }

    fn parse(query: &str) -> Result<LogOptions, BadQuery> {
        parse_log_query(Some(query))
    }

    #[test]
    fn an_empty_query_asks_for_every_line_of_the_current_container() {
        assert_eq!(parse_log_query(None), Ok(LogOptions::default()));
        assert_eq!(parse(""), Ok(LogOptions::default()));
    }

    #[test]
    fn every_option_the_api_server_forwards_is_read() {
        let options = parse(
            "tailLines=10&previous=true&timestamps=true&follow=true&limitBytes=500&sinceTime=2026-11-26T10%3A00%3A00Z",
        )
        .unwrap();
        assert_eq!(
            options,
            LogOptions {
                tail_lines: Some(10),
                previous: true,
                timestamps: true,
                follow: true,
                limit_bytes: Some(500),
                since_seconds: None,
                since_time: Some("2026-11-26T10:00:00Z".parse().unwrap()),
            }
        );
        assert_eq!(parse("sinceSeconds=60").unwrap().since_seconds, Some(60));
    }

    #[test]
    fn flags_are_false_only_when_0_or_false_as_the_kubelet_reads_them() {
        for (value, expected) in [
            ("true", true),
            ("1", true),
            ("", true),
            ("yes", true),
            ("false", false),
            ("FALSE", false),
            ("0", false),
        ] {
            assert_eq!(
                parse(&format!("previous={value}")).unwrap().previous,
                expected,
                "previous={value}"
            );
        }
    }

    #[test]
    fn the_first_value_of_a_repeated_key_counts_and_unknown_keys_are_ignored() {
        let options =
            parse("tailLines=3&tailLines=7&insecureSkipTLSVerifyBackend=true&x=y").unwrap();
        assert_eq!(options.tail_lines, Some(3));
    }

    #[test]
    fn the_legacy_tail_wins_over_tail_lines_and_all_means_every_line() {
        assert_eq!(parse("tail=5&tailLines=9").unwrap().tail_lines, Some(5));
        assert_eq!(parse("tail=all&tailLines=9").unwrap().tail_lines, None);
    }

    #[test]
    fn numbers_that_do_not_decode_or_are_out_of_range_are_refused_naming_the_key() {
        for (query, named) in [
            ("tailLines=ten", "tailLines"),
            ("tailLines=-1", "tailLines"),
            ("limitBytes=0", "limitBytes"),
            ("limitBytes=1.5", "limitBytes"),
            ("sinceSeconds=0", "sinceSeconds"),
            ("sinceTime=yesterday", "sinceTime"),
            (
                "sinceSeconds=5&sinceTime=2026-11-26T10%3A00%3A00Z",
                "sinceSeconds",
            ),
            ("stream=Stderr", "stream"),
        ] {
            let err = parse(query).expect_err(query);
            assert!(err.to_string().contains(named), "{query}: {err}");
        }
        assert!(parse("stream=All").is_ok());
    }

    /// Answers `logs` with a fixed result and records each call.
    struct Fake {
        answer: fn() -> ProviderResult<String>,
        calls: Mutex<Vec<(String, String, LogOptions)>>,
    }

    impl Fake {
        fn answering(answer: fn() -> ProviderResult<String>) -> Arc<Self> {
            Arc::new(Self {
                answer,
                calls: Mutex::default(),
            })
        }
    }

    impl Provider for Fake {
        async fn create_pod(&self, _: &Pod) -> ProviderResult<()> {
            Ok(())
        }
        async fn delete_pod(&self, _: &Pod) -> ProviderResult<()> {
            Ok(())
        }
        async fn list_pods(&self) -> ProviderResult<Vec<RemotePod>> {
            Ok(Vec::new())
        }
        async fn logs(
            &self,
            pod: &Pod,
            container: &str,
            options: &LogOptions,
        ) -> ProviderResult<String> {
            self.calls.lock().unwrap().push((
                pod.metadata.name.clone().unwrap_or_default(),
                container.to_owned(),
                options.clone(),
            ));
            (self.answer)()
        }
    }

    /// A provider without logs.
    struct Mute;

    impl Provider for Mute {
        async fn create_pod(&self, _: &Pod) -> ProviderResult<()> {
            Ok(())
        }
        async fn delete_pod(&self, _: &Pod) -> ProviderResult<()> {
            Ok(())
        }
        async fn list_pods(&self) -> ProviderResult<Vec<RemotePod>> {
            Ok(Vec::new())
        }
    }

    const NODE: &str = "vnode";

    fn pod(name: &str, node: &str) -> Pod {
        Pod {
            metadata: ObjectMeta {
                namespace: Some("shop".into()),
                name: Some(name.into()),
                uid: Some(format!("uid-{name}")),
                ..ObjectMeta::default()
            },
            spec: Some(PodSpec {
                node_name: Some(node.into()),
                containers: vec![Container {
                    name: "main".into(),
                    ..Container::default()
                }],
                init_containers: Some(vec![Container {
                    name: "setup".into(),
                    ..Container::default()
                }]),
                ..PodSpec::default()
            }),
            ..Pod::default()
        }
    }

    /// The node's cache holding `web` (on this node) and `elsewhere` (on another one).
    fn pods() -> Store<CachedPod> {
        let (store, mut writer) = reflector::store();
        for p in [pod("web", NODE), pod("elsewhere", "other-node")] {
            writer.apply_watcher_event(&watcher::Event::Apply(CachedPod::from_pod(&p)));
        }
        store
    }

    async fn get<P: Provider>(provider: Arc<P>, uri: &str) -> (StatusCode, String) {
        let app = app(KubeletState::new(provider, pods(), NODE));
        let response = app
            .oneshot(Request::get(uri).body(Body::empty()).unwrap())
            .await
            .unwrap();
        let code = response.status();
        let body = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        (code, String::from_utf8_lossy(&body).into_owned())
    }

    #[tokio::test]
    async fn logs_of_a_pod_on_the_node_come_from_the_provider_with_the_query_options() {
        let fake = Fake::answering(|| Ok("one\ntwo\n".into()));
        let (code, body) = get(
            Arc::clone(&fake),
            "/containerLogs/shop/web/main?tailLines=2&previous=true",
        )
        .await;
        assert_eq!((code, body.as_str()), (StatusCode::OK, "one\ntwo\n"));
        let calls = fake.calls.lock().unwrap().clone();
        assert_eq!(
            calls,
            vec![(
                "web".to_owned(),
                "main".to_owned(),
                LogOptions {
                    tail_lines: Some(2),
                    previous: true,
                    ..LogOptions::default()
                }
            )]
        );
        let (code, _) = get(Arc::clone(&fake), "/containerLogs/shop/web/setup").await;
        assert_eq!(code, StatusCode::OK, "init containers have logs too");
    }

    #[tokio::test]
    async fn limit_bytes_cuts_the_answer_and_follow_answers_the_logs_as_of_now() {
        let fake = Fake::answering(|| Ok("0123456789\n".into()));
        let (code, body) = get(
            Arc::clone(&fake),
            "/containerLogs/shop/web/main?limitBytes=4&follow=true",
        )
        .await;
        assert_eq!((code, body.as_str()), (StatusCode::OK, "0123"));
    }

    #[tokio::test]
    async fn pods_not_on_this_node_and_unknown_containers_are_not_found_without_asking_the_provider()
     {
        let fake = Fake::answering(|| Ok("x".into()));
        for uri in [
            "/containerLogs/shop/missing/main",
            "/containerLogs/shop/elsewhere/main",
            "/containerLogs/other/web/main",
            "/containerLogs/shop/web/sidecar",
        ] {
            let (code, body) = get(Arc::clone(&fake), uri).await;
            assert_eq!(code, StatusCode::NOT_FOUND, "{uri}: {body}");
        }
        assert!(fake.calls.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_bad_query_is_a_400_without_asking_the_provider() {
        let fake = Fake::answering(|| Ok("x".into()));
        let (code, body) = get(
            Arc::clone(&fake),
            "/containerLogs/shop/web/main?tailLines=-3",
        )
        .await;
        assert_eq!(code, StatusCode::BAD_REQUEST);
        assert!(body.contains("tailLines"), "{body}");
        assert!(fake.calls.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn provider_errors_answer_as_a_kubelet_does_and_a_provider_without_logs_is_501() {
        let (code, body) = get(Arc::new(Mute), "/containerLogs/shop/web/main").await;
        assert_eq!(code, StatusCode::NOT_IMPLEMENTED, "{body}");
        for (answer, expected) in [
            (
                (|| {
                    Err(ProviderError::InvalidInput(
                        "container main is waiting to start".into(),
                    ))
                }) as fn() -> ProviderResult<String>,
                StatusCode::BAD_REQUEST,
            ),
            (
                || Err(ProviderError::NotFound("no such remote pod".into())),
                StatusCode::NOT_FOUND,
            ),
            (
                || Err(ProviderError::transient_msg("backend unreachable")),
                StatusCode::INTERNAL_SERVER_ERROR,
            ),
        ] {
            let (code, body) = get(Fake::answering(answer), "/containerLogs/shop/web/main").await;
            assert_eq!(code, expected, "{body}");
            assert!(!body.is_empty());
            if code == StatusCode::BAD_REQUEST {
                assert_eq!(
                    body, "container main is waiting to start",
                    "the provider's words"
                );
            }
        }
    }

    #[tokio::test]
    async fn healthz_is_ok() {
        assert_eq!(
            get(Arc::new(Mute), "/healthz").await,
            (StatusCode::OK, "ok".to_owned())
        );
    }

    /// A CA and a client certificate it signed (DER), as the API server's kubelet client has.
    struct ClientPki {
        ca: Vec<u8>,
        cert: Vec<u8>,
        key: Vec<u8>,
    }

    fn client_pki() -> ClientPki {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(rcgen::DnType::CommonName, "cluster CA");
        ca.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::DigitalSignature,
        ];
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        let issuer = rcgen::Issuer::new(ca, ca_key);
        let key = rcgen::KeyPair::generate().unwrap();
        let mut client = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        client
            .distinguished_name
            .push(rcgen::DnType::CommonName, "kube-apiserver-kubelet-client");
        client.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        let cert = client.signed_by(&key, &issuer).unwrap();
        ClientPki {
            ca: ca_cert.der().to_vec(),
            cert: cert.der().to_vec(),
            key: key.serialize_der(),
        }
    }

    /// `GET path` over TLS, pinning the server's certificate, with `client` as the client
    /// certificate if any; the raw HTTP/1.1 answer.
    async fn https_get(
        (addr, certificate): &(SocketAddr, Vec<u8>),
        client: Option<&ClientPki>,
        path: &str,
    ) -> std::io::Result<String> {
        let crypto = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from(certificate.clone()))
            .unwrap();
        let builder = rustls::ClientConfig::builder_with_provider(crypto)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots);
        let config = match client {
            Some(c) => builder
                .with_client_auth_cert(
                    vec![CertificateDer::from(c.cert.clone())],
                    PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(c.key.clone())),
                )
                .unwrap(),
            None => builder.with_no_client_auth(),
        };
        let tcp = tokio::net::TcpStream::connect(addr).await?;
        let name = rustls::pki_types::ServerName::IpAddress(addr.ip().into());
        let mut tls = tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(name, tcp)
            .await?;
        tls.write_all(
            format!("GET {path} HTTP/1.1\r\nHost: node\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await?;
        let mut answer = String::new();
        tls.read_to_string(&mut answer).await?;
        Ok(answer)
    }

    #[tokio::test]
    async fn the_api_server_with_a_client_certificate_of_the_cluster_ca_is_served_and_others_are_refused()
     {
        let pki = client_pki();
        let node = NodeConfig::new(NODE);
        let server = KubeletServer::bind(
            "127.0.0.1:0".parse().unwrap(),
            &node,
            std::slice::from_ref(&pki.ca),
        )
        .unwrap();
        let fake = Fake::answering(|| Ok("hello from the provider\n".into()));
        let app = app(KubeletState::new(fake, pods(), NODE));
        let server_id = (server.addr(), server.certificate().to_vec());
        let serving = tokio::spawn(server.serve(app));
        let server = &server_id;

        let answer = https_get(
            server,
            Some(&pki),
            "/containerLogs/shop/web/main?tailLines=1",
        )
        .await
        .unwrap();
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(answer.ends_with("hello from the provider\n"), "{answer}");
        let answer = https_get(server, Some(&pki), "/healthz").await.unwrap();
        assert!(answer.ends_with("ok"), "{answer}");

        let anonymous = https_get(server, None, "/healthz").await;
        assert!(
            anonymous.is_err(),
            "served without a client certificate: {anonymous:?}"
        );
        let stranger = client_pki();
        let other_ca = https_get(server, Some(&stranger), "/healthz").await;
        assert!(
            other_ca.is_err(),
            "served a certificate of another CA: {other_ca:?}"
        );
        serving.abort();
    }

    #[test]
    fn a_kubelet_api_without_a_client_ca_is_refused_at_bind() {
        let err = KubeletServer::bind("127.0.0.1:0".parse().unwrap(), &NodeConfig::new(NODE), &[])
            .unwrap_err();
        assert!(err.to_string().contains("client CA"), "{err}");
    }
}
