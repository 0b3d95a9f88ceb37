//! Readiness probes: `tcpSocket` and `httpGet` (HTTP, or HTTPS without checking the certificate,
//! as the kubelet does).

use std::net::Ipv4Addr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, Probe};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use tokio::io::{AsyncBufReadExt as _, AsyncRead, AsyncWrite, AsyncWriteExt as _, BufReader};
use tokio::net::TcpStream;

/// Longest pause between two probes of a container. Probes run every
/// `min(periodSeconds, PROBE_PERIOD_CAP)`: faster than a kubelet's default 10 s, so readiness
/// follows a process within a second.
pub const PROBE_PERIOD_CAP: Duration = Duration::from_secs(1);

/// The probe's period as the host node runs it.
pub fn period(probe: &Probe) -> Duration {
    Duration::from_secs(probe.period_seconds.unwrap_or(10).max(1) as u64).min(PROBE_PERIOD_CAP)
}

/// The number of a container port: a number, or the name of one of the container's ports.
pub fn container_port(port: &IntOrString, container: &Container) -> Option<u16> {
    match port {
        IntOrString::Int(n) => u16::try_from(*n).ok(),
        IntOrString::String(name) => match name.parse::<u16>() {
            Ok(n) => Some(n),
            Err(_) => container
                .ports
                .iter()
                .flatten()
                .find(|p| p.name.as_deref() == Some(name.as_str()))
                .and_then(|p| u16::try_from(p.container_port).ok()),
        },
    }
}

/// Whether the probe passes now. `exec` and `grpc` probes are not run by the host node: they
/// pass.
pub async fn check(probe: &Probe, ip: Ipv4Addr, container: &Container) -> bool {
    let limit = Duration::from_secs(probe.timeout_seconds.unwrap_or(1).max(1) as u64);
    let attempt = async {
        if let Some(tcp) = &probe.tcp_socket {
            let Some(port) = container_port(&tcp.port, container) else {
                return false;
            };
            let host = tcp.host.clone().unwrap_or_else(|| ip.to_string());
            TcpStream::connect((host.as_str(), port)).await.is_ok()
        } else if let Some(http) = &probe.http_get {
            let Some(port) = container_port(&http.port, container) else {
                return false;
            };
            let host = http.host.clone().unwrap_or_else(|| ip.to_string());
            let path = http.path.clone().unwrap_or_else(|| "/".into());
            let headers: Vec<(String, String)> = http
                .http_headers
                .iter()
                .flatten()
                .map(|h| (h.name.clone(), h.value.clone()))
                .collect();
            let https = http.scheme.as_deref() == Some("HTTPS");
            http_ok(&host, port, &path, &headers, https)
                .await
                .unwrap_or(false)
        } else {
            true
        }
    };
    tokio::time::timeout(limit, attempt).await.unwrap_or(false)
}

/// `GET path` over HTTP(S); whether the status is 2xx or 3xx.
pub async fn http_ok(
    host: &str,
    port: u16,
    path: &str,
    headers: &[(String, String)],
    https: bool,
) -> std::io::Result<bool> {
    let tcp = TcpStream::connect((host, port)).await?;
    let mut request = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUser-Agent: kube-probe/1.36\r\nAccept: */*\r\nConnection: close\r\n"
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    if https {
        let name = rustls::pki_types::ServerName::try_from(host.to_owned())
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
        let tls = tokio_rustls::TlsConnector::from(tls_config())
            .connect(name, tcp)
            .await?;
        status_ok(tls, &request).await
    } else {
        status_ok(tcp, &request).await
    }
}

async fn status_ok(
    mut stream: impl AsyncRead + AsyncWrite + Unpin,
    request: &str,
) -> std::io::Result<bool> {
    stream.write_all(request.as_bytes()).await?;
    let mut line = String::new();
    BufReader::new(stream).read_line(&mut line).await?;
    // `HTTP/1.1 200 OK`
    let code: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    Ok((200..400).contains(&code))
}

/// A TLS client that accepts any server certificate (a kubelet's HTTPS probe does not check it).
fn tls_config() -> Arc<rustls::ClientConfig> {
    static CONFIG: OnceLock<Arc<rustls::ClientConfig>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let config = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
                .with_safe_default_protocol_versions()
                .expect("ring supports the default TLS versions")
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AcceptAny(provider)))
                .with_no_client_auth();
            Arc::new(config)
        })
        .clone()
}

/// Accepts every server certificate, as a kubelet's HTTPS probe (and the API server calling a
/// kubelet without `--kubelet-certificate-authority`) does; signatures are still checked, so
/// the handshake is sound.
#[derive(Debug)]
pub struct AcceptAny(pub Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{ContainerPort, HTTPGetAction, TCPSocketAction};
    use tokio::io::AsyncReadExt as _;
    use tokio::net::TcpListener;

    fn container() -> Container {
        Container {
            name: "c".into(),
            ports: Some(vec![ContainerPort {
                name: Some("https".into()),
                container_port: 8443,
                ..ContainerPort::default()
            }]),
            ..Container::default()
        }
    }

    #[test]
    fn ports_resolve_by_number_or_by_container_port_name() {
        let c = container();
        assert_eq!(container_port(&IntOrString::Int(80), &c), Some(80));
        assert_eq!(
            container_port(&IntOrString::String("https".into()), &c),
            Some(8443)
        );
        assert_eq!(
            container_port(&IntOrString::String("nope".into()), &c),
            None
        );
    }

    #[test]
    fn probes_run_at_most_a_second_apart() {
        let p = |s| Probe {
            period_seconds: s,
            ..Probe::default()
        };
        assert_eq!(period(&p(None)), Duration::from_secs(1));
        assert_eq!(period(&p(Some(30))), Duration::from_secs(1));
    }

    /// A one-shot HTTP server answering `status`; returns its port.
    async fn http_server(status: &'static str) -> u16 {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                let mut buf = [0u8; 1024];
                let _ = conn.read(&mut buf).await;
                let _ = conn
                    .write_all(format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\n\r\n").as_bytes())
                    .await;
            }
        });
        port
    }

    #[tokio::test]
    async fn an_http_probe_passes_on_2xx_and_3xx_and_fails_otherwise() {
        let ip = Ipv4Addr::LOCALHOST;
        let probe = |port: u16| Probe {
            http_get: Some(HTTPGetAction {
                port: IntOrString::Int(i32::from(port)),
                path: Some("/healthz".into()),
                ..HTTPGetAction::default()
            }),
            ..Probe::default()
        };
        let ok = http_server("200 OK").await;
        let redirect = http_server("302 Found").await;
        let broken = http_server("500 Internal Server Error").await;
        assert!(check(&probe(ok), ip, &container()).await);
        assert!(check(&probe(redirect), ip, &container()).await);
        assert!(!check(&probe(broken), ip, &container()).await);
    }

    #[tokio::test]
    async fn a_tcp_probe_passes_only_while_something_listens() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let probe = Probe {
            tcp_socket: Some(TCPSocketAction {
                port: IntOrString::Int(i32::from(port)),
                host: None,
            }),
            ..Probe::default()
        };
        assert!(check(&probe, Ipv4Addr::LOCALHOST, &container()).await);
        drop(listener);
        assert!(!check(&probe, Ipv4Addr::LOCALHOST, &container()).await);
    }

    #[tokio::test]
    async fn an_https_probe_accepts_a_self_signed_certificate() {
        let signed =
            rcgen::generate_simple_self_signed(["localhost".into(), "127.0.0.1".into()]).unwrap();
        let certs = vec![signed.cert.der().clone()];
        let key =
            rustls::pki_types::PrivateKeyDer::try_from(signed.signing_key.serialize_der()).unwrap();
        let server = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((conn, _)) = listener.accept().await {
                let Ok(mut tls) = acceptor.accept(conn).await else {
                    continue;
                };
                let mut buf = [0u8; 1024];
                let _ = tls.read(&mut buf).await;
                let _ = tls
                    .write_all(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n")
                    .await;
                let _ = tls.shutdown().await;
            }
        });
        assert!(
            http_ok("127.0.0.1", port, "/", &[], true).await.unwrap(),
            "the probe should pass over TLS with an unknown CA"
        );
    }
}
