//! The proxy's data path (BEHAVIOR.md §10): how a CCI pod's request reaches a cluster Service
//! and its answer comes back.
//!
//! The proxy listens on `--listen` and registers where sidecars reach it as its registration's
//! `endpoint` ([`crate::proxy`]). A sidecar opens one tunnel per connection, in HTTP/1.1:
//!
//! ```text
//! CONNECT web.shop:80 HTTP/1.1
//! Host: web.shop:80
//! Bursting-Sidecar-Protocol: v2
//! ```
//!
//! The proxy checks that it speaks the sidecar's protocol (`v1` when the header is absent),
//! resolves the Service's port to its ready backends ([`Resolve`]), connects to one, answers
//! `200 Connection Established` and copies bytes both ways until either side closes. A refusal
//! is an HTTP answer with a one-line reason, and the connection closes:
//!
//! The sidecar proves it was given the registration's key: `Proxy-Authorization: Bearer {key}`
//! ([`key_for`] derives it from the add-on's credential, so every replica holds the same one,
//! and the key reveals nothing of the credential). At most [`Limits::max_tunnels`] tunnels are
//! open at once, and a tunnel through which nothing passed for [`Limits::idle`] is closed.
//!
//! | refusal | status |
//! |---|---|
//! | no key, or another one | 407 |
//! | as many tunnels open as the proxy allows | 503 |
//! | not a `CONNECT name.namespace:port` | 400 |
//! | a protocol the proxy does not speak | 426 |
//! | no such Service, or no such TCP port on it | 404 |
//! | no ready backend | 503 |
//! | every backend refused the connection | 502 |
//!
//! [`ClusterResolver`] resolves as the endpoint controllers would, from the Service's selector
//! and the ready pods it selects (`podIP` and the `targetPort`, by number or by container port
//! name), rather than from EndpointSlices: it needs only `get` on Services and `list` on pods,
//! and also works where slices cannot carry the pods' addresses (the API server refuses
//! loopback addresses in EndpointSlices, and the harness's host node runs pods on loopback
//! addresses).

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use cci_api::HEADER_SIDECAR_PROTOCOL;
use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{Api, ListParams};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

use crate::breakage::{self, Breakage};

/// The proxy's tunnel port in its pod.
pub const DEFAULT_PORT: u16 = 8900;
/// The protocol of a sidecar that does not name one.
pub const DEFAULT_PROTOCOL: &str = "v1";
/// How long a sidecar may take to send its tunnel request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How long connecting to one backend may take before the next is tried.
const BACKEND_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest tunnel request read.
const MAX_HEAD: usize = 8 * 1024;

/// A sidecar's tunnel request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Connect {
    /// The Service's name.
    pub service: String,
    /// Its namespace.
    pub namespace: String,
    /// The Service port.
    pub port: u16,
    /// The sidecar's protocol.
    pub protocol: String,
}

/// The tunnels' guard: the key sidecars present, how many tunnels may be open at once, and how
/// long one may stay idle.
#[derive(Clone)]
pub struct Limits {
    /// The key a tunnel request must carry ([`key_for`]).
    pub key: String,
    /// The most tunnels open at once; a request beyond them is refused (503).
    pub max_tunnels: usize,
    /// A tunnel through which no byte passed, either way, for this long is closed.
    pub idle: Duration,
}

impl std::fmt::Debug for Limits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limits")
            .field("key", &"(redacted)")
            .field("max_tunnels", &self.max_tunnels)
            .field("idle", &self.idle)
            .finish()
    }
}

/// Tunnels open at once unless told otherwise (`--max-tunnels`).
pub const DEFAULT_MAX_TUNNELS: usize = 1024;
/// How long a tunnel may stay idle unless told otherwise (`--tunnel-idle-secs`).
pub const DEFAULT_IDLE: Duration = Duration::from_secs(600);

/// The tunnel key of a proxy holding `credential`: a one-way digest of it, so the key can be
/// registered on CCI for the sidecars without the credential being readable there.
pub fn key_for(credential: &str) -> String {
    use sha2::Digest as _;
    let digest = sha2::Sha256::new()
        .chain_update(b"bursting proxy tunnel key\n")
        .chain_update(credential.as_bytes())
        .finalize();
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// The tunnel key of a proxy authenticating to CCI with `auth`: [`key_for`] its token, or, with
/// an AK/SK pair, the pair's signature of a fixed text (an HMAC under the secret key: the same
/// for every replica, and nothing of the secret key can be read from it).
pub fn key_of(auth: &crate::CciAuth) -> String {
    match auth {
        crate::CciAuth::Token(token) => key_for(token),
        // NB: the token as read at start: replicas that start across a renewal of the token
        // hold different keys, and the registration's last writer wins; a token that rotates
        // should come with the same file for every replica started together.
        crate::CciAuth::TokenFile(file) => key_for(&file.token()),
        crate::CciAuth::AkSk(credentials) => {
            cci_api::signing::signature(credentials, "bursting proxy tunnel key")
        }
    }
}

/// Whether `head` carries `Proxy-Authorization: Bearer {key}` (compared in constant time).
pub fn presents(head: &str, key: &str) -> bool {
    head.split("\r\n").skip(1).any(|line| {
        let Some((name, value)) = line.split_once(':') else {
            return false;
        };
        if !name.trim().eq_ignore_ascii_case("proxy-authorization") {
            return false;
        }
        let Some(given) = value.trim().strip_prefix("Bearer ") else {
            return false;
        };
        let (given, key) = (given.trim().as_bytes(), key.as_bytes());
        given.len() == key.len() && given.iter().zip(key).fold(0u8, |d, (a, b)| d | (a ^ b)) == 0
    })
}

/// Why a tunnel was not opened: answered to the sidecar, then the connection closes.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The request carries no key, or not the registration's.
    #[error("a tunnel needs the registration's key (Proxy-Authorization: Bearer …)")]
    Unauthenticated,
    /// As many tunnels are open as the proxy allows.
    #[error("{0} tunnels are open, as many as this proxy allows; try again later")]
    TooMany(usize),
    /// The request is not a `CONNECT name.namespace:port`.
    #[error("{0}")]
    BadRequest(String),
    /// The proxy does not speak the sidecar's protocol.
    #[error("the sidecar speaks {protocol}, this proxy speaks [{}]", spoken.join(", "))]
    ProtocolNotSpoken {
        /// The sidecar's.
        protocol: String,
        /// The proxy's.
        spoken: Vec<String>,
    },
    /// No such Service, or no such port on it.
    #[error("{0}")]
    NotFound(String),
    /// The Service has no ready backend.
    #[error("{0}")]
    NoBackend(String),
    /// No backend accepted the connection.
    #[error("{0}")]
    BadGateway(String),
}

impl Refusal {
    /// The HTTP status and reason phrase the sidecar gets.
    pub fn status(&self) -> (u16, &'static str) {
        match self {
            Refusal::Unauthenticated => (407, "Proxy Authentication Required"),
            Refusal::TooMany(_) => (503, "Service Unavailable"),
            Refusal::BadRequest(_) => (400, "Bad Request"),
            Refusal::ProtocolNotSpoken { .. } => (426, "Upgrade Required"),
            Refusal::NotFound(_) => (404, "Not Found"),
            Refusal::NoBackend(_) => (503, "Service Unavailable"),
            Refusal::BadGateway(_) => (502, "Bad Gateway"),
        }
    }
}

/// Parses a tunnel request's head (request line and headers, without the blank line) and
/// checks its protocol against `spoken`.
pub fn parse_connect(head: &str, spoken: &[String]) -> Result<Connect, Refusal> {
    let mut lines = head.split("\r\n");
    let request_line = lines.next().unwrap_or_default();
    let mut parts = request_line.split(' ');
    let (Some(method), Some(authority), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Refusal::BadRequest(format!(
            "not an HTTP request line: {request_line:?}"
        )));
    };
    if method != "CONNECT" || !version.starts_with("HTTP/1.") {
        return Err(Refusal::BadRequest(format!(
            "only CONNECT over HTTP/1.1 opens a tunnel, not {method} {version}"
        )));
    }
    let malformed = || {
        Refusal::BadRequest(format!(
            "{authority:?}: name the Service as name.namespace[.svc[.cluster.local]]:port"
        ))
    };
    let (host, port) = authority.rsplit_once(':').ok_or_else(malformed)?;
    let port: u16 = port.parse().map_err(|_| malformed())?;
    let host = host
        .strip_suffix(".svc.cluster.local")
        .or_else(|| host.strip_suffix(".svc"))
        .unwrap_or(host);
    let (service, namespace) = host.split_once('.').ok_or_else(malformed)?;
    if service.is_empty() || namespace.is_empty() || namespace.contains('.') || port == 0 {
        return Err(malformed());
    }
    let protocol = lines
        .filter_map(|l| l.split_once(':'))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case(HEADER_SIDECAR_PROTOCOL))
        .map_or(DEFAULT_PROTOCOL, |(_, value)| value.trim());
    if !spoken.iter().any(|p| p == protocol) {
        return Err(Refusal::ProtocolNotSpoken {
            protocol: protocol.to_owned(),
            spoken: spoken.to_vec(),
        });
    }
    Ok(Connect {
        service: service.to_owned(),
        namespace: namespace.to_owned(),
        port,
        protocol: protocol.to_owned(),
    })
}

/// Where `port` of `service` sends connections: the address of each ready pod of `pods` (those
/// the Service's selector chose) at the port's `targetPort`.
pub fn backends_of(service: &Service, port: u16, pods: &[Pod]) -> Result<Vec<SocketAddr>, Refusal> {
    let name = format!(
        "{}/{}",
        service.metadata.namespace.as_deref().unwrap_or_default(),
        service.metadata.name.as_deref().unwrap_or_default()
    );
    let spec = service.spec.as_ref();
    let service_port = spec
        .and_then(|s| s.ports.as_ref())
        .into_iter()
        .flatten()
        .find(|p| i32::from(port) == p.port && p.protocol.as_deref().is_none_or(|p| p == "TCP"))
        .ok_or_else(|| Refusal::NotFound(format!("service {name} has no TCP port {port}")))?;
    if spec
        .and_then(|s| s.selector.as_ref())
        .is_none_or(|s| s.is_empty())
    {
        return Err(Refusal::NoBackend(format!(
            "service {name} selects no pods (no selector)"
        )));
    }
    let target = service_port
        .target_port
        .clone()
        .unwrap_or(IntOrString::Int(service_port.port));
    let backends: Vec<SocketAddr> = pods
        .iter()
        .filter(|p| ready(p))
        .filter_map(|p| {
            let ip: IpAddr = p.status.as_ref()?.pod_ip.as_deref()?.parse().ok()?;
            let port = match &target {
                IntOrString::Int(n) => u16::try_from(*n).ok()?,
                IntOrString::String(named) => p
                    .spec
                    .as_ref()?
                    .containers
                    .iter()
                    .flat_map(|c| c.ports.iter().flatten())
                    .find(|cp| cp.name.as_deref() == Some(named.as_str()))
                    .and_then(|cp| u16::try_from(cp.container_port).ok())?,
            };
            Some(SocketAddr::new(ip, port))
        })
        .collect();
    if backends.is_empty() {
        return Err(Refusal::NoBackend(format!(
            "service {name} has no ready pod for port {port}"
        )));
    }
    Ok(backends)
}

/// Whether `pod` may take connections: running, Ready, not being deleted.
fn ready(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_none()
        && pod.status.as_ref().is_some_and(|s| {
            s.phase.as_deref() == Some("Running")
                && s.conditions
                    .iter()
                    .flatten()
                    .any(|c| c.type_ == "Ready" && c.status == "True")
        })
}

/// Finds the backends of a Service port.
pub trait Resolve: Send + Sync + 'static {
    /// The addresses `port` of Service `namespace/service` sends connections to.
    fn backends(
        &self,
        namespace: &str,
        service: &str,
        port: u16,
    ) -> impl Future<Output = Result<Vec<SocketAddr>, Refusal>> + Send;
}

/// Resolves through the cluster's API (see the module docs). RBAC: `get` Services, `list`
/// pods.
#[derive(Clone)]
pub struct ClusterResolver {
    client: kube::Client,
}

impl ClusterResolver {
    /// A resolver reading the cluster through `client`.
    pub fn new(client: kube::Client) -> Self {
        Self { client }
    }
}

impl Resolve for ClusterResolver {
    async fn backends(
        &self,
        namespace: &str,
        service: &str,
        port: u16,
    ) -> Result<Vec<SocketAddr>, Refusal> {
        let unavailable = |e: kube::Error| {
            Refusal::NoBackend(format!(
                "cannot read service {namespace}/{service} from the cluster: {e}"
            ))
        };
        let svc = Api::<Service>::namespaced(self.client.clone(), namespace)
            .get_opt(service)
            .await
            .map_err(unavailable)?
            .ok_or_else(|| {
                Refusal::NotFound(format!("no service {namespace}/{service} in the cluster"))
            })?;
        let selector = svc
            .spec
            .as_ref()
            .and_then(|s| s.selector.as_ref())
            .map(|s| {
                s.iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .unwrap_or_default();
        let pods = if selector.is_empty() {
            Vec::new()
        } else {
            Api::<Pod>::namespaced(self.client.clone(), namespace)
                .list(&ListParams::default().labels(&selector))
                .await
                .map_err(unavailable)?
                .items
        };
        backends_of(&svc, port, &pods)
    }
}

/// Serves tunnels on `listener` for sidecars of the `spoken` protocols, within `limits`, until
/// dropped.
pub async fn serve<R: Resolve>(
    listener: TcpListener,
    spoken: Vec<String>,
    resolver: Arc<R>,
    limits: Limits,
) {
    let spoken = Arc::new(spoken);
    let next = Arc::new(AtomicUsize::new(0));
    let open = Arc::new(tokio::sync::Semaphore::new(limits.max_tunnels));
    let limits = Arc::new(limits);
    loop {
        let (conn, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // NB: e.g. out of file descriptors; accepting again at once would spin.
                tracing::warn!(error = %e, "tunnel: accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let (spoken, resolver, next) = (spoken.clone(), resolver.clone(), next.clone());
        let (open, limits) = (open.clone(), limits.clone());
        tokio::spawn(async move {
            if let Err(refusal) =
                tunnel(conn, &spoken, resolver.as_ref(), &next, &open, &limits).await
            {
                tracing::info!(%peer, %refusal, "tunnel refused");
            }
        });
    }
}

/// Serves one sidecar connection: reads its request, opens the tunnel or answers why not.
async fn tunnel<R: Resolve>(
    mut conn: TcpStream,
    spoken: &[String],
    resolver: &R,
    next: &AtomicUsize,
    open: &Arc<tokio::sync::Semaphore>,
    limits: &Limits,
) -> Result<(), Refusal> {
    let (head, early) = match read_head(&mut conn).await {
        Ok(read) => read,
        Err(why) => return refuse(&mut conn, Refusal::BadRequest(why)).await,
    };
    if !presents(&head, &limits.key) && !breakage::is(Breakage::TunnelOpen) {
        return refuse(&mut conn, Refusal::Unauthenticated).await;
    }
    // Held until the tunnel closes.
    let Ok(_permit) = open.clone().try_acquire_owned() else {
        return refuse(&mut conn, Refusal::TooMany(limits.max_tunnels)).await;
    };
    let request = match parse_connect(&head, spoken) {
        Ok(request) => request,
        Err(refusal) => return refuse(&mut conn, refusal).await,
    };
    if breakage::is(Breakage::ProxyForwardsNothing) {
        // The bug: the tunnel is "opened" and the connection dropped, the Service never dialled.
        let _ = conn
            .write_all(b"HTTP/1.1 200 Connection Established\r\n\r\n")
            .await;
        return Ok(());
    }
    let mut backends = match resolver
        .backends(&request.namespace, &request.service, request.port)
        .await
    {
        Ok(backends) => backends,
        Err(refusal) => return refuse(&mut conn, refusal).await,
    };
    let first = next.fetch_add(1, Ordering::Relaxed) % backends.len();
    backends.rotate_left(first);
    let mut tried = Vec::new();
    let mut upstream = None;
    for backend in &backends {
        match tokio::time::timeout(BACKEND_CONNECT_TIMEOUT, TcpStream::connect(backend)).await {
            Ok(Ok(stream)) => {
                upstream = Some(stream);
                break;
            }
            Ok(Err(e)) => tried.push(format!("{backend}: {e}")),
            Err(_) => tried.push(format!("{backend}: no answer within 5 s")),
        }
    }
    let Some(mut upstream) = upstream else {
        return refuse(
            &mut conn,
            Refusal::BadGateway(format!(
                "no backend of service {}/{} port {} accepted the connection ({})",
                request.namespace,
                request.service,
                request.port,
                tried.join("; ")
            )),
        )
        .await;
    };
    tracing::debug!(
        service = %format!("{}/{}", request.namespace, request.service),
        port = request.port,
        protocol = %request.protocol,
        backend = ?upstream.peer_addr().ok(),
        "tunnel opened"
    );
    if conn
        .write_all(b"HTTP/1.1 200 Connection Established\r\n\r\n")
        .await
        .is_err()
    {
        return Ok(());
    }
    // NB: bytes the sidecar sent right behind its request belong to the Service.
    if !early.is_empty() && upstream.write_all(&early).await.is_err() {
        return Ok(());
    }
    pump(conn, upstream, limits.idle).await;
    Ok(())
}

/// Copies bytes both ways until either side closes or nothing passed either way for `idle`.
async fn pump(conn: TcpStream, upstream: TcpStream, idle: Duration) {
    let started = tokio::time::Instant::now();
    // Milliseconds since `started` of the last byte either way.
    let last = AtomicU64::new(0);
    let copy = |mut from: tokio::net::tcp::OwnedReadHalf,
                mut to: tokio::net::tcp::OwnedWriteHalf| {
        let last = &last;
        async move {
            let mut buf = vec![0u8; 16 * 1024];
            loop {
                match tokio::time::timeout(idle, from.read(&mut buf)).await {
                    Ok(Ok(0) | Err(_)) => break,
                    Ok(Ok(n)) => {
                        if to.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                        let now = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
                        last.store(now, Ordering::Relaxed);
                    }
                    // Quiet this way for `idle`: closed only if quiet the other way too.
                    Err(_) => {
                        let quiet = started
                            .elapsed()
                            .saturating_sub(Duration::from_millis(last.load(Ordering::Relaxed)));
                        if quiet >= idle {
                            tracing::debug!(?idle, "tunnel idle: closed");
                            break;
                        }
                    }
                }
            }
            let _ = to.shutdown().await;
        }
    };
    let (conn_read, conn_write) = conn.into_split();
    let (up_read, up_write) = upstream.into_split();
    // Each direction ends on its side's EOF (passing the half-close on) or when idle.
    futures::join!(copy(conn_read, up_write), copy(up_read, conn_write));
}

/// Answers `refusal` and closes; answers it back for the log.
async fn refuse(conn: &mut TcpStream, refusal: Refusal) -> Result<(), Refusal> {
    let (code, reason) = refusal.status();
    let body = format!("{refusal}\n");
    let answer = format!(
        "HTTP/1.1 {code} {reason}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = conn.write_all(answer.as_bytes()).await;
    let _ = conn.shutdown().await;
    Err(refusal)
}

/// Reads a request head up to its blank line; answers it (without the blank line) and the
/// bytes read past it.
async fn read_head(conn: &mut TcpStream) -> Result<(String, Vec<u8>), String> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    let read = async {
        loop {
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let early = buf.split_off(end + 4);
                buf.truncate(end);
                return Ok((String::from_utf8_lossy(&buf).into_owned(), early));
            }
            if buf.len() > MAX_HEAD {
                return Err(format!("a tunnel request is at most {MAX_HEAD} bytes"));
            }
            match conn.read(&mut chunk).await {
                Ok(0) => return Err("the connection closed before a whole request".to_owned()),
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                Err(e) => return Err(e.to_string()),
            }
        }
    };
    tokio::time::timeout(REQUEST_TIMEOUT, read)
        .await
        .unwrap_or_else(|_| {
            Err(format!(
                "no whole request within {} s",
                REQUEST_TIMEOUT.as_secs()
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case::the_key("Proxy-Authorization: Bearer k-1", true)]
    #[case::any_case_of_the_name("proxy-authorization:   Bearer k-1  ", true)]
    #[case::another_key("Proxy-Authorization: Bearer k-2", false)]
    #[case::a_prefix_of_it("Proxy-Authorization: Bearer k-", false)]
    #[case::another_scheme("Proxy-Authorization: Basic k-1", false)]
    #[case::another_header("Authorization: Bearer k-1", false)]
    #[case::none("Host: web.shop:80", false)]
    fn a_tunnel_request_presents_the_key_only_in_proxy_authorization(
        #[case] header: &str,
        #[case] presented: bool,
    ) {
        let head = format!("CONNECT web.shop:80 HTTP/1.1\r\n{header}");
        assert_eq!(presents(&head, "k-1"), presented);
    }

    #[test]
    fn the_key_is_a_digest_that_reveals_nothing_of_the_credential() {
        let key = key_for("token-c1");
        assert_eq!(key.len(), 64);
        assert!(!key.contains("token-c1"));
        assert_eq!(key, key_for("token-c1"), "every replica derives the same");
        assert_ne!(key, key_for("token-c2"));
    }

    /// A tunnel server to a backend that echoes, within `limits`; answers its address.
    async fn echo_tunnels(limits: Limits) -> std::net::SocketAddr {
        struct To(SocketAddr);
        impl Resolve for To {
            async fn backends(&self, _: &str, _: &str, _: u16) -> Result<Vec<SocketAddr>, Refusal> {
                Ok(vec![self.0])
            }
        }
        let backend = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let backend_addr = backend.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut c, _)) = backend.accept().await {
                tokio::spawn(async move {
                    let (mut r, mut w) = c.split();
                    let _ = tokio::io::copy(&mut r, &mut w).await;
                });
            }
        });
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(serve(
            listener,
            vec!["v1".into()],
            Arc::new(To(backend_addr)),
            limits,
        ));
        addr
    }

    /// Opens a tunnel with `key`; answers the connection and the status line.
    async fn open(addr: SocketAddr, key: &str) -> (TcpStream, String) {
        let mut conn = TcpStream::connect(addr).await.unwrap();
        let request =
            format!("CONNECT web.shop:80 HTTP/1.1\r\nProxy-Authorization: Bearer {key}\r\n\r\n");
        conn.write_all(request.as_bytes()).await.unwrap();
        let (head, _) = read_head(&mut conn).await.unwrap();
        let status = head.lines().next().unwrap_or_default().to_owned();
        (conn, status)
    }

    #[tokio::test]
    async fn no_more_tunnels_than_allowed_are_open_and_a_closed_one_frees_its_place() {
        let addr = echo_tunnels(Limits {
            key: "k".into(),
            max_tunnels: 2,
            idle: Duration::from_secs(30),
        })
        .await;
        let (first, status) = open(addr, "k").await;
        assert!(status.contains(" 200 "), "{status}");
        let (_second, status) = open(addr, "k").await;
        assert!(status.contains(" 200 "), "{status}");
        let (_, status) = open(addr, "k").await;
        assert!(status.contains(" 503 "), "{status}");
        drop(first);
        // The first tunnel's place is freed once the proxy sees it closed.
        let mut freed = false;
        for _ in 0..100 {
            if open(addr, "k").await.1.contains(" 200 ") {
                freed = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(freed, "a closed tunnel's place was never freed");
    }

    #[tokio::test]
    async fn a_tunnel_without_the_key_is_refused_407_and_an_idle_one_is_closed() {
        let addr = echo_tunnels(Limits {
            key: "k".into(),
            max_tunnels: 4,
            idle: Duration::from_millis(300),
        })
        .await;
        let (_, status) = open(addr, "not-k").await;
        assert!(status.contains(" 407 "), "{status}");
        let (mut conn, status) = open(addr, "k").await;
        assert!(status.contains(" 200 "), "{status}");
        conn.write_all(b"ping").await.unwrap();
        let mut buf = [0u8; 4];
        conn.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"ping", "bytes pass while it is used");
        // Then nothing passes: the proxy closes it (EOF) well before the test's deadline.
        let closed = tokio::time::timeout(Duration::from_secs(5), conn.read(&mut buf)).await;
        assert!(matches!(closed, Ok(Ok(0))), "{closed:?}");
    }

    fn spoken() -> Vec<String> {
        vec!["v1".into(), "v2".into()]
    }

    #[rstest]
    #[case::short(
        "CONNECT web.shop:80 HTTP/1.1\r\nHost: web.shop:80",
        "web",
        "shop",
        80,
        "v1"
    )]
    #[case::fqdn(
        "CONNECT web.shop.svc.cluster.local:8080 HTTP/1.1\r\nbursting-sidecar-protocol: v2",
        "web",
        "shop",
        8080,
        "v2"
    )]
    #[case::svc(
        "CONNECT db.prod.svc:5432 HTTP/1.1\r\nBursting-Sidecar-Protocol:  v2 ",
        "db",
        "prod",
        5432,
        "v2"
    )]
    fn a_connect_names_the_service_its_namespace_port_and_protocol(
        #[case] head: &str,
        #[case] service: &str,
        #[case] namespace: &str,
        #[case] port: u16,
        #[case] protocol: &str,
    ) {
        assert_eq!(
            parse_connect(head, &spoken()),
            Ok(Connect {
                service: service.into(),
                namespace: namespace.into(),
                port,
                protocol: protocol.into(),
            })
        );
    }

    #[rstest]
    #[case::get("GET / HTTP/1.1", 400)]
    #[case::no_port("CONNECT web.shop HTTP/1.1", 400)]
    #[case::no_namespace("CONNECT web:80 HTTP/1.1", 400)]
    #[case::port_zero("CONNECT web.shop:0 HTTP/1.1", 400)]
    #[case::other_domain("CONNECT web.shop.example.com:80 HTTP/1.1", 400)]
    #[case::unspoken("CONNECT web.shop:80 HTTP/1.1\r\nBursting-Sidecar-Protocol: v3", 426)]
    fn a_request_that_is_no_tunnel_to_a_service_in_a_spoken_protocol_is_refused(
        #[case] head: &str,
        #[case] status: u16,
    ) {
        let refusal = parse_connect(head, &spoken()).unwrap_err();
        assert_eq!(refusal.status().0, status, "{refusal}");
    }

    #[test]
    fn a_proxy_speaking_v1_only_refuses_a_v2_sidecar_and_says_what_it_speaks() {
        let refusal = parse_connect(
            "CONNECT web.shop:80 HTTP/1.1\r\nBursting-Sidecar-Protocol: v2",
            &["v1".to_owned()],
        )
        .unwrap_err();
        assert_eq!(
            refusal.to_string(),
            "the sidecar speaks v2, this proxy speaks [v1]"
        );
    }

    fn service(target_port: Option<IntOrString>) -> Service {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web", "namespace": "shop"},
            "spec": {"selector": {"app": "web"}, "ports": [
                {"port": 80, "protocol": "TCP", "targetPort": target_port},
                {"port": 53, "protocol": "UDP"}
            ]}
        }))
        .unwrap()
    }

    fn pod(ip: &str, ready: bool, deleting: bool) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {
                "name": format!("web-{ip}"),
                "namespace": "shop",
                "deletionTimestamp": deleting.then_some("2026-01-01T00:00:00Z")
            },
            "spec": {"containers": [{"name": "c", "ports": [{"name": "http", "containerPort": 8080}]}]},
            "status": {"phase": "Running", "podIP": ip, "conditions": [
                {"type": "Ready", "status": if ready { "True" } else { "False" }}
            ]}
        }))
        .unwrap()
    }

    #[rstest]
    #[case::by_number(Some(IntOrString::Int(9000)), 9000)]
    #[case::by_name(Some(IntOrString::String("http".into())), 8080)]
    #[case::the_same_as_the_port(None, 80)]
    fn a_service_port_goes_to_its_ready_pods_at_the_target_port(
        #[case] target_port: Option<IntOrString>,
        #[case] expected: u16,
    ) {
        let pods = [
            pod("10.0.0.1", true, false),
            pod("10.0.0.2", false, false),
            pod("10.0.0.3", true, true),
            pod("10.0.0.4", true, false),
        ];
        let backends = backends_of(&service(target_port), 80, &pods).unwrap();
        assert_eq!(
            backends,
            [
                SocketAddr::from(([10, 0, 0, 1], expected)),
                SocketAddr::from(([10, 0, 0, 4], expected))
            ]
        );
    }

    #[test]
    fn a_port_the_service_lacks_or_a_service_without_ready_pods_is_refused() {
        let svc = service(None);
        let pods = [pod("10.0.0.1", true, false)];
        assert_eq!(backends_of(&svc, 8080, &pods).unwrap_err().status().0, 404);
        assert_eq!(backends_of(&svc, 53, &pods).unwrap_err().status().0, 404);
        let not_ready = [pod("10.0.0.1", false, false)];
        let refusal = backends_of(&svc, 80, &not_ready).unwrap_err();
        assert_eq!(refusal.status().0, 503);
        assert_eq!(
            refusal.to_string(),
            "service shop/web has no ready pod for port 80"
        );
    }
}
