//! The CCI client over HTTPS (the real CCI speaks HTTPS only): it trusts the CA it is given
//! (`--cci-ca-file`) and refuses a server another CA signed; and it follows no redirect, so a
//! credential never reaches an address other than the endpoint.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode, Uri, header};
use bursting_engine::{CciAuth, CciClient, Error};
use mock_cci::{MockConfig, Server, TlsIdentity};
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair, SanType};

const TOKEN: &str = "tls-secret";

/// PEM texts of a fresh CA, and a serving certificate it signed for `127.0.0.1`.
struct Pki {
    ca_pem: String,
    identity: TlsIdentity,
}

fn pki() -> Pki {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca, ca_key);
    let key = KeyPair::generate().unwrap();
    let mut serving = CertificateParams::new(Vec::<String>::new()).unwrap();
    serving
        .subject_alt_names
        .push(SanType::IpAddress([127, 0, 0, 1].into()));
    let cert = serving.signed_by(&key, &issuer).unwrap();
    Pki {
        ca_pem: ca_cert.pem(),
        identity: TlsIdentity {
            cert_pem: cert.pem().into_bytes(),
            key_pem: key.serialize_pem().into_bytes(),
        },
    }
}

async fn https_mock(pki: &Pki) -> Server {
    Server::bind_tls(
        MockConfig::default()
            .with_token(TOKEN, "tenant-a")
            .with_running_after(Duration::ZERO),
        pki.identity.clone(),
    )
    .await
    .unwrap()
}

fn token() -> CciAuth {
    CciAuth::Token(TOKEN.into())
}

#[tokio::test]
async fn the_client_trusts_the_ca_given_by_file_and_refuses_an_unknown_one() {
    let mock_pki = pki();
    let server = https_mock(&mock_pki).await;
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.crt");
    std::fs::write(&ca_file, &mock_pki.ca_pem).unwrap();

    let ca = std::fs::read(&ca_file).unwrap();
    let trusting = CciClient::with_auth_and_ca(&server.url(), token(), Some(&ca)).unwrap();
    assert!(trusting.ensure_cluster_namespace("c1").await.unwrap());
    trusting.get_namespace("bursting-c1").await.unwrap();

    let stranger = pki();
    let other_ca =
        CciClient::with_auth_and_ca(&server.url(), token(), Some(stranger.ca_pem.as_bytes()))
            .unwrap();
    let refused = other_ca.get_namespace("bursting-c1").await.unwrap_err();
    assert!(matches!(refused, Error::Http { .. }), "{refused:?}");
    // The system's roots know no test CA either.
    let system = CciClient::with_auth(&server.url(), token()).unwrap();
    system.get_namespace("bursting-c1").await.unwrap_err();
    assert_eq!(
        server.state().requests().len(),
        2,
        "only the trusting client's requests reached the API: {:?}",
        server.state().requests()
    );
}

#[test]
fn a_ca_bundle_without_a_certificate_is_refused_when_the_client_is_made() {
    for bundle in [&b"not PEM at all"[..], b""] {
        let err = CciClient::with_auth_and_ca("https://cci.example:443", token(), Some(bundle))
            .unwrap_err();
        assert!(
            matches!(&err, Error::Endpoint { reason, .. } if reason.contains("CA bundle")),
            "{err:?}"
        );
    }
}

fn gc_command(endpoint: &str, ca_file: Option<&std::path::Path>) -> std::process::Output {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_bursting-engine"));
    command
        .args([
            "gc",
            "--scope",
            "namespace",
            "--cci-endpoint",
            endpoint,
            "--cluster-id",
            "c1",
        ])
        .env("CCI_TOKEN", TOKEN)
        .env_remove("CCI_CA_FILE");
    if let Some(path) = ca_file {
        command.arg("--cci-ca-file").arg(path);
    }
    command.output().unwrap()
}

#[tokio::test]
async fn the_gc_command_speaks_https_with_cci_ca_file_and_refuses_the_server_without_it() {
    let pki = pki();
    let server = https_mock(&pki).await;
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.crt");
    std::fs::write(&ca_file, &pki.ca_pem).unwrap();
    let url = server.url();
    let (with_ca, without, missing) = tokio::task::spawn_blocking(move || {
        (
            gc_command(&url, Some(&ca_file)),
            gc_command(&url, None),
            gc_command(&url, Some(&ca_file.with_file_name("absent.crt"))),
        )
    })
    .await
    .unwrap();
    let text = |o: &std::process::Output| String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(with_ca.status.success(), "{}", text(&with_ca));
    assert!(
        String::from_utf8_lossy(&with_ca.stdout).starts_with("gc namespace bursting-c1"),
        "{}",
        String::from_utf8_lossy(&with_ca.stdout)
    );
    assert_eq!(without.status.code(), Some(1), "{}", text(&without));
    assert_eq!(missing.status.code(), Some(2), "{}", text(&missing));
    assert!(text(&missing).contains("absent.crt"), "{}", text(&missing));
}

/// A server that answers every request with `302 Found` to `location`.
async fn redirecting_to(location: String) -> std::net::SocketAddr {
    let app = axum::Router::new().fallback(move |uri: Uri| {
        let location = location.clone();
        async move {
            (
                StatusCode::FOUND,
                [(header::LOCATION, format!("{location}{uri}"))],
            )
        }
    });
    serve(app).await
}

async fn serve(app: axum::Router) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

#[tokio::test]
async fn a_redirect_is_not_followed_so_the_token_goes_nowhere_else() {
    // Where the redirect points: it counts the requests, and those carrying the token.
    let reached = Arc::new(AtomicUsize::new(0));
    let with_token = Arc::new(AtomicUsize::new(0));
    let elsewhere = {
        let (reached, with_token) = (Arc::clone(&reached), Arc::clone(&with_token));
        serve(axum::Router::new().fallback(move |headers: HeaderMap| {
            let (reached, with_token) = (Arc::clone(&reached), Arc::clone(&with_token));
            async move {
                reached.fetch_add(1, Ordering::SeqCst);
                if headers.contains_key(cci_api::AUTH_HEADER) {
                    with_token.fetch_add(1, Ordering::SeqCst);
                }
                "{}"
            }
        }))
        .await
    };
    let endpoint = redirecting_to(format!("http://{elsewhere}")).await;
    let cci = CciClient::new(&format!("http://{endpoint}"), TOKEN).unwrap();
    cci.get_namespace("bursting-c1").await.unwrap_err();
    cci.create_namespace(&cci_api::Namespace::new(Default::default()))
        .await
        .unwrap_err();
    assert_eq!(
        with_token.load(Ordering::SeqCst),
        0,
        "the token was sent on"
    );
    assert_eq!(
        reached.load(Ordering::SeqCst),
        0,
        "the redirect was followed"
    );
}
