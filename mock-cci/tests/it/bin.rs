//! The mock on a real socket: the `mock-cci` binary, `Server` in-process, and the stand-in
//! workload `echo-backend`.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::process::Command;
use tokio::time::timeout;

const PATIENCE: Duration = Duration::from_secs(20);

#[tokio::test]
async fn the_echo_backend_answers_every_http_request_with_its_reply_and_exits_on_sigterm() {
    // NB: on a loopback address of its own, so its port is never the one the in-process
    // server's test checks is free again.
    let mut child = Command::new(env!("CARGO_BIN_EXE_echo-backend"))
        .args(["--listen", "127.0.0.2:0", "--reply", "web-1 answers 42"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let addr: std::net::SocketAddr =
        crate::common::listening(&mut child, "echo-backend listening on ")
            .await
            .parse()
            .unwrap();
    for path in ["/", "/anything?x=1"] {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream
            .write_all(format!("GET {path} HTTP/1.1\r\nHost: web\r\n\r\n").as_bytes())
            .await
            .unwrap();
        let mut response = String::new();
        timeout(PATIENCE, stream.read_to_string(&mut response))
            .await
            .expect("a response within the deadline")
            .unwrap();
        assert!(response.starts_with("HTTP/1.1 200 OK"), "{response}");
        assert!(
            response.ends_with("\r\n\r\nweb-1 answers 42\n"),
            "{response}"
        );
    }
    // Not HTTP: closed without an answer.
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(b"hello\r\n\r\n").await.unwrap();
    let mut response = String::new();
    timeout(PATIENCE, stream.read_to_string(&mut response))
        .await
        .expect("closed within the deadline")
        .unwrap();
    assert_eq!(response, "");

    let pid = child.id().unwrap().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let exit = timeout(PATIENCE, child.wait())
        .await
        .expect("it exits within the deadline")
        .unwrap();
    assert!(exit.success(), "exit status {exit}");
}

#[tokio::test]
async fn the_binary_prints_its_address_serves_healthz_and_exits_cleanly_on_sigterm() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_mock-cci"))
        .args(["--listen", "127.0.0.1:0", "--token", "t=tenant"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();

    let url = crate::common::listening(&mut child, "mock-cci listening on http://").await;
    let addr: std::net::SocketAddr = url.parse().unwrap();
    assert_ne!(addr.port(), 0);

    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: mock\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut response = String::new();
    timeout(PATIENCE, stream.read_to_string(&mut response))
        .await
        .expect("a response within the deadline")
        .unwrap();
    assert!(response.starts_with("HTTP/1.1 200 OK"), "{response}");
    assert!(response.ends_with("\r\n\r\nok"), "{response}");

    let pid = child.id().unwrap().to_string();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(killed.success());
    let exit = timeout(PATIENCE, child.wait())
        .await
        .expect("the mock exits within the deadline")
        .unwrap();
    assert!(exit.success(), "exit status {exit}");
}

#[tokio::test]
async fn an_in_process_server_binds_a_free_port_serves_and_shuts_down() {
    let config = mock_cci::MockConfig::default().with_token("t", "tenant");
    let server = mock_cci::Server::bind(config).await.unwrap();
    assert_ne!(server.addr().port(), 0);
    assert_eq!(server.url(), format!("http://{}", server.addr()));

    let mut stream = TcpStream::connect(server.addr()).await.unwrap();
    stream
        .write_all(b"GET /admin/v1/pods HTTP/1.1\r\nHost: mock\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut response = String::new();
    timeout(PATIENCE, stream.read_to_string(&mut response))
        .await
        .expect("a response within the deadline")
        .unwrap();
    assert!(response.starts_with("HTTP/1.1 200 OK"), "{response}");
    assert!(response.ends_with("\r\n\r\n[]"), "{response}");
    assert!(server.state().pods().is_empty());

    let addr = server.addr();
    timeout(PATIENCE, server.shutdown())
        .await
        .expect("shutdown within the deadline")
        .unwrap();
    // Bind, not connect: a connect to a closed local port in the ephemeral range can meet
    // itself (TCP simultaneous open) and succeed, which made this test flaky.
    assert!(
        std::net::TcpListener::bind(addr).is_ok(),
        "the port is free again after shutdown"
    );
}

#[tokio::test]
async fn the_binary_serves_requests_signed_with_a_pair_of_its_aksk_file_and_never_logs_the_secret()
{
    const SECRET_KEY: &str = "binary-test-secret-key";
    let file = std::env::temp_dir().join(format!("mock-cci-aksk-{}.txt", std::process::id()));
    std::fs::write(&file, format!("# pairs\nBINARYAK:{SECRET_KEY}=tenant-s\n")).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_mock-cci"))
        .args(["--listen", "127.0.0.1:0", "--aksk-file"])
        .arg(&file)
        .env("RUST_LOG", "debug")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let url = crate::common::listening(&mut child, "mock-cci listening on ").await;
    std::fs::remove_file(&file).unwrap();
    let host = url.strip_prefix("http://").unwrap().to_owned();

    let path = "/apis/cci/v2/namespaces";
    let body = br#"{"apiVersion":"cci/v2","kind":"Namespace","metadata":{"name":"ns"}}"#;
    let credentials = cci_api::signing::Credentials::new("BINARYAK", SECRET_KEY).unwrap();
    let headers = [
        ("Host", host.as_str()),
        ("Content-Type", "application/json"),
    ];
    let signed = cci_api::signing::sign(
        &credentials,
        &cci_api::signing::Request {
            method: "POST",
            path,
            query: "",
            headers: &headers,
            body,
        },
        cci_api::signing::SdkDate::from_system_time(std::time::SystemTime::now()),
    );
    let mut request = crate::common::http_client(None)
        .post(format!("{url}{path}"))
        .body(body.to_vec());
    for (name, value) in headers.into_iter().chain(signed.headers()) {
        request = request.header(name, value);
    }
    let response = request.send().await.unwrap();
    assert_eq!(
        response.status().as_u16(),
        201,
        "{:?}",
        response.text().await
    );

    let pid = child.id().unwrap().to_string();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(killed.success());
    let mut stderr = String::new();
    timeout(
        PATIENCE,
        child.stderr.take().unwrap().read_to_string(&mut stderr),
    )
    .await
    .expect("stderr closes within the deadline")
    .unwrap();
    let exit = timeout(PATIENCE, child.wait())
        .await
        .expect("the mock exits within the deadline")
        .unwrap();
    assert!(exit.success(), "exit status {exit}");
    assert!(stderr.contains("BINARYAK=tenant-s"), "{stderr}");
    assert!(!stderr.contains(SECRET_KEY), "{stderr}");
}

#[tokio::test]
async fn a_malformed_aksk_file_stops_the_binary_naming_the_line_but_not_the_secret() {
    let file = std::env::temp_dir().join(format!("mock-cci-bad-aksk-{}.txt", std::process::id()));
    std::fs::write(&file, "GOODAK:good-secret\nno-colon-secret-here\n").unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_mock-cci"))
        .args(["--listen", "127.0.0.1:0", "--aksk-file"])
        .arg(&file)
        .output()
        .await
        .unwrap();
    std::fs::remove_file(&file).unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("line 2"), "{stderr}");
    assert!(!stderr.contains("no-colon-secret-here"), "{stderr}");
}
