//! The network model behind `exec … probe <service>[:port]` (BEHAVIOR.md §9, §10).
//!
//! Who may connect comes from recorded state:
//!
//! - A Service of the pod's own CCI namespace (`name`, `name.{ns}`) is always reachable.
//! - A cluster Service (`name.namespace[.svc[.cluster.local]][:port]`) is reachable only through
//!   a [`ProxyRegistration`] in the pod's namespace that forwards it (`namespace/name` or `*`) and
//!   speaks the pod's sidecar protocol: the annotation [`ANNOTATION_SIDECAR_PROTOCOL`] on the
//!   pod, `v1` when absent. With no registration there is no interconnect; with one that lacks
//!   the pod's protocol (e.g. a pod burst by `>= 1.5.18` after a rollback) the connection is
//!   refused.
//!
//! Whether the pod then **reaches** the cluster Service is not taken on trust: the registration
//! is only the proxy's claim. [`Store::exec`] answers [`Exec::Through`] and the caller runs
//! [`probe_through`] outside the store's lock: as the pod's sidecar would, it connects to the
//! registration's `endpoint` (the add-on's proxy, running in the cluster), opens a tunnel with
//! `CONNECT {service}.{namespace}:{port}` and the sidecar protocol in
//! [`HEADER_SIDECAR_PROTOCOL`], sends `GET /` through it and reports the answer that comes back
//! from the Service's backend. A registration without an endpoint, a proxy that does not answer
//! or refuses the tunnel, and a tunnel that brings no answer back are all "unreachable" (exit 1),
//! each in its own words.
//!
//! Any other command exits 127: the mock runs no processes.

use std::net::SocketAddr;
use std::time::Duration;

use cci_api::{
    ANNOTATION_SIDECAR_PROTOCOL, ExecRequest, ExecResult, HEADER_SIDECAR_PROTOCOL,
    ProxyRegistration,
};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::time::Instant;

use super::{Store, owned};
use crate::error::{Error, Result};

/// The protocol a pod's sidecar speaks when the pod does not say.
pub const DEFAULT_SIDECAR_PROTOCOL: &str = "v1";

/// The port a probe connects to when its target names none.
pub const DEFAULT_PORT: u16 = 80;
/// How long the sidecar waits to connect to the proxy.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// How long the sidecar waits for each answer through the proxy (the tunnel's, the Service's).
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(5);
/// The most of an answer the probe reads (and a little of it is reported).
const MAX_ANSWER: usize = 64 * 1024;

/// A probe target split into the Service name, its namespace if given, and its port if given
/// (`None` when the port is not a number).
fn parse_target(target: &str) -> (&str, Option<&str>, Option<u16>) {
    let (host, port) = match target.rsplit_once(':') {
        Some((host, port)) => (host, port.parse().ok()),
        None => (target, Some(DEFAULT_PORT)),
    };
    let trimmed = host
        .strip_suffix(".svc.cluster.local")
        .or_else(|| host.strip_suffix(".svc"))
        .unwrap_or(host);
    match trimmed.split_once('.') {
        Some((name, namespace)) => (name, Some(namespace), port),
        None => (trimmed, None, port),
    }
}

/// What a probe needs once the registrations allow it: a tunnel through a cluster's proxy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tunnel {
    /// The probe's target as the pod wrote it, for messages.
    pub target: String,
    /// The cluster Service.
    pub service: String,
    /// Its namespace in the cluster.
    pub namespace: String,
    /// Its port.
    pub port: u16,
    /// The registration the tunnel goes through (its name).
    pub proxy: String,
    /// The registration's endpoint, `IP:port`.
    pub endpoint: String,
    /// The pod's sidecar protocol.
    pub protocol: String,
    /// The key the registration gives sidecars for its tunnels, if any.
    pub key: Option<String>,
}

/// What [`Store::exec`] decided.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Exec {
    /// The command's result.
    Done(ExecResult),
    /// Allowed through a proxy: the result is what comes back through it ([`probe_through`]).
    Through(Tunnel),
}

fn forwards(registration: &ProxyRegistration, name: &str, namespace: Option<&str>) -> bool {
    registration.spec.services.iter().any(|entry| {
        entry == "*"
            || entry
                .split_once('/')
                .is_some_and(|(ns, svc)| svc == name && namespace.is_none_or(|wanted| wanted == ns))
    })
}

fn result(exit_code: i32, stdout: String, stderr: String) -> ExecResult {
    ExecResult {
        exit_code,
        stdout,
        stderr,
    }
}

impl Store {
    /// Runs `request` in a running container of pod `name` (see the module docs); a probe the
    /// registrations allow to a cluster Service is answered [`Exec::Through`], for
    /// [`probe_through`] to carry out without the store.
    pub fn exec(
        &mut self,
        tenant: &str,
        ns: &str,
        name: &str,
        request: &ExecRequest,
        now: Instant,
    ) -> Result<Exec> {
        self.settle(now);
        let entry = owned(&self.namespaces, tenant, ns)?;
        let pod = entry.pods.get(name).ok_or_else(|| Error::NotFound {
            kind: "pod",
            namespace: ns.to_owned(),
            name: name.to_owned(),
        })?;
        pod.check_running(request.container.as_deref())?;
        let target = match request.command.as_slice() {
            [probe, target] if probe == "probe" => target.as_str(),
            [] => {
                return Err(Error::BadRequest(
                    "exec needs a command, e.g. [\"probe\", \"web.default\"]".into(),
                ));
            }
            other => {
                return Ok(Exec::Done(result(
                    127,
                    String::new(),
                    format!(
                        "{}: command not found (the mock runs no processes; it understands only `probe <service>`)\n",
                        other[0]
                    ),
                )));
            }
        };
        let (service, namespace, port) = parse_target(target);
        let Some(port) = port else {
            return Ok(Exec::Done(result(
                2,
                String::new(),
                format!("{target}: bad port (write name.namespace[:port], the port a number)\n"),
            )));
        };
        if namespace.is_none_or(|n| n == ns)
            && let Some(local) = entry.objects.services.get(service)
        {
            let ip = local.spec.cluster_ip.clone().unwrap_or_default();
            return Ok(Exec::Done(result(
                0,
                format!("{target}: reachable (CCI Service {service} at {ip} in namespace {ns})\n"),
                String::new(),
            )));
        }
        let protocol = pod
            .pod
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(ANNOTATION_SIDECAR_PROTOCOL))
            .map_or(DEFAULT_SIDECAR_PROTOCOL, String::as_str);
        if entry.objects.proxies.is_empty() {
            return Ok(Exec::Done(result(
                1,
                String::new(),
                format!(
                    "{target}: no route to host: no network proxy is registered for namespace {ns:?} (network interconnect is off)\n"
                ),
            )));
        }
        let candidates: Vec<&ProxyRegistration> = entry
            .objects
            .proxies
            .values()
            .filter(|p| forwards(p, service, namespace))
            .collect();
        if candidates.is_empty() {
            return Ok(Exec::Done(result(
                1,
                String::new(),
                format!("{target}: no route to host: no registered proxy forwards this Service\n"),
            )));
        }
        match candidates
            .iter()
            .find(|p| p.spec.protocols.iter().any(|p| p == protocol))
        {
            Some(proxy) => {
                let proxy_name = proxy.metadata.name.clone().unwrap_or_default();
                let Some(endpoint) = proxy.spec.endpoint.clone() else {
                    return Ok(Exec::Done(result(
                        1,
                        String::new(),
                        format!(
                            "{target}: connection refused: proxy {proxy_name:?} registers no endpoint, so no tunnel can be opened to it\n"
                        ),
                    )));
                };
                let Some(namespace) = namespace else {
                    return Ok(Exec::Done(result(
                        1,
                        String::new(),
                        format!(
                            "{target}: no such host: name the cluster Service with its namespace (name.namespace)\n"
                        ),
                    )));
                };
                Ok(Exec::Through(Tunnel {
                    target: target.to_owned(),
                    service: service.to_owned(),
                    namespace: namespace.to_owned(),
                    port,
                    proxy: proxy_name,
                    endpoint,
                    protocol: protocol.to_owned(),
                    key: proxy.spec.tunnel_key.clone(),
                }))
            }
            None => {
                let spoken: Vec<&str> = candidates
                    .iter()
                    .flat_map(|p| p.spec.protocols.iter().map(String::as_str))
                    .collect();
                Ok(Exec::Done(result(
                    1,
                    String::new(),
                    format!(
                        "{target}: connection refused: the pod's sidecar speaks {protocol}, the registered proxy speaks [{}]: upgrade the add-on or recreate the pod\n",
                        spoken.join(", ")
                    ),
                )))
            }
        }
    }
}

/// Carries out a probe through a proxy (see the module docs): connects to the tunnel's
/// endpoint, opens the tunnel, sends `GET /` to the Service and reports what comes back. Exit 0
/// only when an HTTP answer came back through the tunnel.
pub async fn probe_through(tunnel: &Tunnel) -> ExecResult {
    let Tunnel {
        target,
        proxy,
        endpoint,
        protocol,
        ..
    } = tunnel;
    let unreachable = |why: String| result(1, String::new(), format!("{target}: {why}\n"));
    let Ok(address) = endpoint.parse::<SocketAddr>() else {
        return unreachable(format!(
            "connection refused: proxy {proxy:?} registers the endpoint {endpoint:?}, not an IP:port"
        ));
    };
    let mut conn = match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(address)).await {
        Ok(Ok(conn)) => conn,
        Ok(Err(e)) => {
            return unreachable(format!(
                "connection refused: proxy {proxy:?} at {endpoint} does not answer: {e}"
            ));
        }
        Err(_) => {
            return unreachable(format!(
                "connection timed out: proxy {proxy:?} at {endpoint} did not accept within {} s",
                CONNECT_TIMEOUT.as_secs()
            ));
        }
    };
    let authority = format!("{}.{}:{}", tunnel.service, tunnel.namespace, tunnel.port);
    // The sidecar presents the key its proxy registered, as a real one is given it.
    let key = tunnel
        .key
        .as_deref()
        .map(|k| format!("Proxy-Authorization: Bearer {k}\r\n"))
        .unwrap_or_default();
    let connect = format!(
        "CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n{HEADER_SIDECAR_PROTOCOL}: {protocol}\r\n{key}\r\n"
    );
    if let Err(e) = conn.write_all(connect.as_bytes()).await {
        return unreachable(format!(
            "connection reset: proxy {proxy:?} at {endpoint} closed the tunnel request: {e}"
        ));
    }
    let (head, rest) = match read_head(&mut conn).await {
        Ok(read) => read,
        Err(why) => {
            return unreachable(format!(
                "proxy {proxy:?} at {endpoint} gave no answer to the tunnel request: {why}"
            ));
        }
    };
    let status = head.lines().next().unwrap_or_default().trim().to_owned();
    if status.split_whitespace().nth(1) != Some("200") {
        let mut body = rest;
        let _ = read_to_end(&mut conn, &mut body).await;
        return unreachable(format!(
            "proxy {proxy:?} at {endpoint} refused the tunnel: {status}: {}",
            excerpt(&body)
        ));
    }
    let request = format!(
        "GET / HTTP/1.1\r\nHost: {}.{}\r\nUser-Agent: cci-probe\r\nConnection: close\r\n\r\n",
        tunnel.service, tunnel.namespace
    );
    if let Err(e) = conn.write_all(request.as_bytes()).await {
        return unreachable(format!(
            "connection reset: the tunnel through proxy {proxy:?} at {endpoint} closed before the request was sent: {e}"
        ));
    }
    let mut answer = rest;
    let ended = read_to_end(&mut conn, &mut answer).await;
    if answer.is_empty() {
        let why = match ended {
            Ok(()) => "the tunnel was closed without a byte".to_owned(),
            Err(why) => why,
        };
        return unreachable(format!(
            "no answer came back through proxy {proxy:?} at {endpoint}: {why}"
        ));
    }
    let text = String::from_utf8_lossy(&answer);
    let (answer_head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status_line = answer_head.lines().next().unwrap_or_default().trim();
    if !status_line.starts_with("HTTP/1.") {
        return unreachable(format!(
            "what came back through proxy {proxy:?} at {endpoint} is not an HTTP answer: {}",
            excerpt(&answer)
        ));
    }
    result(
        0,
        format!(
            "{target}: reachable through proxy {proxy:?} at {endpoint} (sidecar protocol {protocol}); the Service answered: {status_line}: {}\n",
            excerpt(body.as_bytes())
        ),
        String::new(),
    )
}

/// Reads an HTTP head (up to the blank line); answers it and the bytes read past it.
async fn read_head(conn: &mut TcpStream) -> std::result::Result<(String, Vec<u8>), String> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let rest = buf.split_off(end + 4);
            return Ok((String::from_utf8_lossy(&buf).into_owned(), rest));
        }
        if buf.len() > MAX_ANSWER {
            return Err(format!("no end of its head in {MAX_ANSWER} bytes"));
        }
        match tokio::time::timeout(ANSWER_TIMEOUT, conn.read(&mut chunk)).await {
            Ok(Ok(0)) if buf.is_empty() => return Err("the connection was closed".into()),
            Ok(Ok(0)) => {
                return Err(format!(
                    "the connection was closed mid-answer: {}",
                    excerpt(&buf)
                ));
            }
            Ok(Ok(n)) => buf.extend_from_slice(&chunk[..n]),
            Ok(Err(e)) => return Err(e.to_string()),
            Err(_) => return Err(format!("nothing within {} s", ANSWER_TIMEOUT.as_secs())),
        }
    }
}

/// Reads until the peer closes (at most [`MAX_ANSWER`] bytes in `buf`), waiting at most
/// [`ANSWER_TIMEOUT`] for each read.
async fn read_to_end(conn: &mut TcpStream, buf: &mut Vec<u8>) -> std::result::Result<(), String> {
    let mut chunk = [0u8; 4096];
    while buf.len() < MAX_ANSWER {
        match tokio::time::timeout(ANSWER_TIMEOUT, conn.read(&mut chunk)).await {
            Ok(Ok(0)) => return Ok(()),
            Ok(Ok(n)) => buf.extend_from_slice(&chunk[..n]),
            Ok(Err(e)) => return Err(e.to_string()),
            Err(_) => return Err(format!("nothing within {} s", ANSWER_TIMEOUT.as_secs())),
        }
    }
    Ok(())
}

/// The first 200 characters of `bytes` on one line, for messages.
fn excerpt(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let line: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    line.chars().take(200).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case("web", ("web", None, Some(80)))]
    #[case("web.default", ("web", Some("default"), Some(80)))]
    #[case("web.default.svc", ("web", Some("default"), Some(80)))]
    #[case("web.default.svc.cluster.local", ("web", Some("default"), Some(80)))]
    #[case("web.default:8080", ("web", Some("default"), Some(8080)))]
    #[case("web.default.svc:http", ("web", Some("default"), None))]
    fn probe_targets_name_a_service_and_maybe_its_namespace_and_port(
        #[case] target: &str,
        #[case] expected: (&str, Option<&str>, Option<u16>),
    ) {
        assert_eq!(parse_target(target), expected);
    }
}
