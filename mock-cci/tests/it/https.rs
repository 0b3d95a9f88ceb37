//! The mock over HTTPS (the real CCI speaks HTTPS only): in-process with a serving certificate,
//! and the binary with `--tls-cert-file` and `--tls-key-file`.

use std::process::Stdio;
use std::time::Duration;

use mock_cci::{MockConfig, Server, TlsIdentity};
use serde_json::json;
use tokio::process::Command;
use tokio::time::timeout;

use crate::common::{TestPki, http_client, test_pki};

const PATIENCE: Duration = Duration::from_secs(20);
const TOKEN: &str = "tls-token";

fn identity(pki: &TestPki) -> TlsIdentity {
    TlsIdentity {
        cert_pem: pki.cert_pem.clone().into_bytes(),
        key_pem: pki.key_pem.clone().into_bytes(),
    }
}

#[tokio::test]
async fn the_api_answers_over_https_to_a_client_trusting_its_ca_only() {
    let pki = test_pki();
    let server = Server::bind_tls(
        MockConfig::default().with_token(TOKEN, "tenant-a"),
        identity(&pki),
    )
    .await
    .unwrap();
    let url = server.url();
    assert_eq!(url, format!("https://{}", server.addr()));

    let trusting = http_client(Some(&pki.ca_pem));
    let created = trusting
        .post(format!("{url}/apis/cci/v2/namespaces"))
        .header("X-Auth-Token", TOKEN)
        .json(&json!({"apiVersion": "cci/v2", "kind": "Namespace", "metadata": {"name": "ns-tls"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status().as_u16(), 201, "{:?}", created.text().await);
    let read = trusting
        .get(format!("{url}/apis/cci/v2/namespaces/ns-tls"))
        .header("X-Auth-Token", TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(read.status().as_u16(), 200);
    let namespace: serde_json::Value = read.json().await.unwrap();
    assert_eq!(namespace["metadata"]["name"], "ns-tls");

    // Plain HTTP on the HTTPS port gets no API answer.
    let plain = http_client(None)
        .get(format!("http://{}/apis/cci/v2/namespaces", server.addr()))
        .header("X-Auth-Token", TOKEN)
        .send()
        .await;
    assert!(
        plain.is_err() || !plain.unwrap().status().is_success(),
        "plain HTTP was served"
    );

    // Another CA's client refuses the handshake, before any request is sent.
    let stranger = http_client(Some(&test_pki().ca_pem));
    let refused = stranger
        .get(format!("{url}/apis/cci/v2/namespaces"))
        .header("X-Auth-Token", TOKEN)
        .send()
        .await
        .unwrap_err();
    assert!(refused.is_connect(), "{refused:?}");
    assert_eq!(
        server
            .state()
            .requests()
            .iter()
            .filter(|r| r.path.ends_with("/namespaces"))
            .count(),
        1,
        "only the trusting client's create reached the API"
    );

    timeout(PATIENCE, server.shutdown())
        .await
        .expect("shutdown within the deadline")
        .unwrap();
}

#[tokio::test]
async fn an_unusable_certificate_is_refused_at_start() {
    let pki = test_pki();
    let err = Server::bind_tls(
        MockConfig::default(),
        TlsIdentity {
            cert_pem: pki.cert_pem.into_bytes(),
            key_pem: b"not a key".to_vec(),
        },
    )
    .await
    .unwrap_err();
    assert!(
        err.to_string().contains("serving certificate or key"),
        "{err}"
    );
}

#[tokio::test]
async fn the_binary_serves_https_with_a_certificate_and_key_from_files() {
    let pki = test_pki();
    let dir = std::env::temp_dir().join(format!("mock-cci-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (cert, key) = (dir.join("tls.crt"), dir.join("tls.key"));
    std::fs::write(&cert, &pki.cert_pem).unwrap();
    std::fs::write(&key, &pki.key_pem).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_mock-cci"))
        .args(["--listen", "127.0.0.1:0", "--token", TOKEN])
        .arg("--tls-cert-file")
        .arg(&cert)
        .arg("--tls-key-file")
        .arg(&key)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let url = crate::common::listening(&mut child, "mock-cci listening on ").await;
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(url.starts_with("https://127.0.0.1:"), "{url}");
    let listed = http_client(Some(&pki.ca_pem))
        .get(format!("{url}/apis/cci/v2/namespaces"))
        .header("X-Auth-Token", TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(listed.status().as_u16(), 200);
    child.kill().await.unwrap();
}

#[tokio::test]
async fn the_binary_wants_the_certificate_and_the_key_together() {
    let output = Command::new(env!("CARGO_BIN_EXE_mock-cci"))
        .args(["--listen", "127.0.0.1:0", "--tls-cert-file", "tls.crt"])
        .output()
        .await
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--tls-key-file"), "{stderr}");
}
