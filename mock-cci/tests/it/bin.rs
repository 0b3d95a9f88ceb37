//! The mock on a real socket: the `mock-cci` binary, `Server` in-process, and the stand-in
//! workload `echo-backend`.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
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
    let mut line = String::new();
    timeout(
        PATIENCE,
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line),
    )
    .await
    .expect("the address line within the deadline")
    .unwrap();
    let addr: std::net::SocketAddr = line
        .trim_end()
        .strip_prefix("echo-backend listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
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

    let stdout = child.stdout.take().unwrap();
    let mut line = String::new();
    timeout(PATIENCE, BufReader::new(stdout).read_line(&mut line))
        .await
        .expect("the address line within the deadline")
        .unwrap();
    let url = line
        .trim_end()
        .strip_prefix("mock-cci listening on http://")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"));
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
