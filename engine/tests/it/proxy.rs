//! The proxy's registration against the strict CCI mock (`mock_cci`, on a loopback port): its
//! protocols per release, the re-assertion after a deletion or another proxy's write, and what
//! burst pods can reach through it on either side of 1.5.18 (BEHAVIOR.md §9, §10).

use crate::common;

use std::time::Duration;

use burst_rules::release::Release;
use bursting_engine::proxy::{self, PROXY_REGISTRATIONS, REGISTRATION_NAME, Registered};
use bursting_engine::tunnel;
use bursting_engine::{CciClient, CciProvider, MemoryObjects};
use cci_api::{ExecRequest, ProxyRegistration};
use k8s_openapi::api::core::v1::Pod;
use mock_cci::{MockConfig, Server};
use rstest::rstest;
use vk::Provider;

const TOKEN: &str = "secret";
const TENANT: &str = "tenant-a";
const NS: &str = "bursting-c1";
/// How long a test waits for a condition before it fails.
const PATIENCE: Duration = Duration::from_secs(10);

async fn mock() -> (Server, CciClient) {
    let server = Server::bind(
        MockConfig::default()
            .with_token(TOKEN, TENANT)
            .with_running_after(Duration::ZERO),
    )
    .await
    .unwrap();
    let cci = CciClient::new(&server.url(), TOKEN).unwrap();
    (server, cci)
}

fn release(text: &str) -> Release {
    text.parse().unwrap()
}

/// The protocols of the registration, or `None` when there is none.
async fn registered_protocols(cci: &CciClient) -> Option<Vec<String>> {
    match cci
        .get_object::<ProxyRegistration>(NS, PROXY_REGISTRATIONS, REGISTRATION_NAME)
        .await
    {
        Ok(r) => Some(r.spec.protocols),
        Err(e) if e.code() == Some(404) => None,
        Err(e) => panic!("{e}"),
    }
}

/// Waits, up to [`PATIENCE`], until the registration has `protocols`.
async fn eventually_registered(cci: &CciClient, protocols: &[&str]) {
    let wanted: Vec<String> = protocols.iter().map(|p| p.to_string()).collect();
    tokio::time::timeout(PATIENCE, async {
        while registered_protocols(cci).await.as_ref() != Some(&wanted) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("the registration never had protocols {wanted:?}"));
}

#[rstest]
#[case::before_the_new_sidecar("1.5.17", &["v1"])]
#[case::with_the_new_sidecar("1.5.18", &["v1", "v2"])]
#[tokio::test]
async fn a_proxy_registers_the_protocols_of_its_release(
    #[case] at: &str,
    #[case] protocols: &[&str],
) {
    let (_server, cci) = mock().await;
    cci.ensure_cluster_namespace("c1").await.unwrap();
    let outcome = proxy::register(&cci, "c1", release(at), None)
        .await
        .unwrap();
    assert_eq!(outcome, Registered::Created);
    assert_eq!(registered_protocols(&cci).await.unwrap(), protocols);
    let again = proxy::register(&cci, "c1", release(at), None)
        .await
        .unwrap();
    assert_eq!(again, Registered::Unchanged);
}

#[tokio::test]
async fn a_rollback_proxy_replaces_the_newer_protocols_and_an_upgrade_restores_them() {
    let (_server, cci) = mock().await;
    cci.ensure_cluster_namespace("c1").await.unwrap();
    proxy::register(&cci, "c1", release("1.5.18"), None)
        .await
        .unwrap();
    let rolled_back = proxy::register(&cci, "c1", release("1.5.17"), None)
        .await
        .unwrap();
    assert_eq!(
        rolled_back,
        Registered::Updated {
            from: vec!["v1".into(), "v2".into()]
        }
    );
    assert_eq!(registered_protocols(&cci).await.unwrap(), ["v1"]);
    proxy::register(&cci, "c1", release("1.5.18"), None)
        .await
        .unwrap();
    assert_eq!(registered_protocols(&cci).await.unwrap(), ["v1", "v2"]);
}

#[tokio::test]
async fn a_running_proxy_creates_its_namespace_and_reasserts_a_deleted_or_overwritten_registration()
{
    let (server, cci) = mock().await;
    let (first_tx, first_rx) = tokio::sync::oneshot::channel();
    let runner = {
        let cci = cci.clone();
        tokio::spawn(async move {
            proxy::run(
                &cci,
                "c1",
                release("1.5.18"),
                Some(&proxy::DataPath {
                    endpoint: "127.0.0.1:8900".into(),
                    key: tunnel::key_for(CREDENTIAL),
                }),
                Duration::from_millis(50),
                move || {
                    let _ = first_tx.send(());
                },
            )
            .await;
        })
    };
    tokio::time::timeout(PATIENCE, first_rx)
        .await
        .expect("registered in time")
        .unwrap();
    assert!(
        server.state().namespaces().iter().any(|n| n.name == NS),
        "the namespace was created"
    );
    assert_eq!(registered_protocols(&cci).await.unwrap(), ["v1", "v2"]);

    cci.delete_object(NS, PROXY_REGISTRATIONS, REGISTRATION_NAME)
        .await
        .unwrap();
    eventually_registered(&cci, &["v1", "v2"]).await;

    // An older proxy still running during a rolling update writes its set; this one wins back.
    proxy::register(&cci, "c1", release("1.5.17"), None)
        .await
        .unwrap();
    eventually_registered(&cci, &["v1", "v2"]).await;
    runner.abort();
}

/// A resolver that sends every Service port to `backend`.
struct Fixed(std::net::SocketAddr);

impl tunnel::Resolve for Fixed {
    async fn backends(
        &self,
        _namespace: &str,
        _service: &str,
        _port: u16,
    ) -> Result<Vec<std::net::SocketAddr>, tunnel::Refusal> {
        Ok(vec![self.0])
    }
}

/// A stand-in for a Service's pod: answers every request with `body`.
async fn backend(body: &'static str) -> std::net::SocketAddr {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (mut conn, _) = listener.accept().await.unwrap();
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                let _ = conn.read(&mut buf).await;
                let answer = format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = conn.write_all(answer.as_bytes()).await;
            });
        }
    });
    address
}

/// The credential the tests' proxies derive their tunnel key from.
const CREDENTIAL: &str = "proxy-credential";

/// The tunnels of a proxy of release `at` on a loopback port, to `backend`; answers its data
/// path (endpoint and key).
async fn tunnels(at: &str, backend: std::net::SocketAddr) -> proxy::DataPath {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = listener.local_addr().unwrap().to_string();
    let key = tunnel::key_for(CREDENTIAL);
    tokio::spawn(tunnel::serve(
        listener,
        proxy::protocols(release(at)),
        std::sync::Arc::new(Fixed(backend)),
        tunnel::Limits {
            key: key.clone(),
            max_tunnels: 8,
            idle: Duration::from_secs(30),
        },
    ));
    proxy::DataPath { endpoint, key }
}

/// What CCI pod `name` gets from `probe web.default` (exit code, output), through the mock's API.
async fn probe(server: &Server, name: &str) -> (i32, String) {
    let request = ExecRequest {
        container: None,
        command: vec!["probe".into(), "web.default".into()],
    };
    let result: cci_api::ExecResult = crate::common::plain_http()
        .post(format!(
            "{}/apis/cci/v2/namespaces/{NS}/pods/{name}/exec",
            server.url()
        ))
        .header(cci_api::AUTH_HEADER, TOKEN)
        .json(&request)
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap()
        .json()
        .await
        .unwrap();
    (
        result.exit_code,
        format!("{}{}", result.stdout, result.stderr),
    )
}

#[tokio::test]
async fn after_a_rollback_only_pods_burst_under_the_new_sidecar_lose_services_until_the_upgrade() {
    let (server, cci) = mock().await;
    let engine = |at: &str| {
        CciProvider::new(cci.clone(), MemoryObjects::default(), "c1")
            .unwrap()
            .with_network(crate::common::network())
            .with_release(release(at))
    };
    engine("1.5.17")
        .create_pod(&pod("old", "uid-old"))
        .await
        .unwrap();
    engine("1.5.18")
        .create_pod(&pod("new", "uid-new"))
        .await
        .unwrap();
    let web = backend("hello from web").await;
    let (new_proxy, old_proxy) = (tunnels("1.5.18", web).await, tunnels("1.5.17", web).await);
    let reaches = |(code, text): (i32, String)| {
        assert_eq!(code == 0, text.contains("hello from web"), "{text}");
        code == 0
    };

    proxy::register(&cci, "c1", release("1.5.18"), Some(&new_proxy))
        .await
        .unwrap();
    assert!(reaches(probe(&server, "shop.old").await));
    assert!(reaches(probe(&server, "shop.new").await));

    proxy::register(&cci, "c1", release("1.5.17"), Some(&old_proxy))
        .await
        .unwrap();
    assert!(reaches(probe(&server, "shop.old").await));
    let (code, text) = probe(&server, "shop.new").await;
    assert!(!reaches((code, text.clone())));
    assert!(text.contains("speaks v2"), "{text}");

    proxy::register(&cci, "c1", release("1.5.18"), Some(&new_proxy))
        .await
        .unwrap();
    assert!(reaches(probe(&server, "shop.new").await));
}

#[tokio::test]
async fn an_old_proxys_tunnel_refuses_a_v2_sidecar_even_where_the_registration_would_let_it_through()
 {
    let (server, cci) = mock().await;
    CciProvider::new(cci.clone(), MemoryObjects::default(), "c1")
        .unwrap()
        .with_network(crate::common::network())
        .with_release(release("1.5.18"))
        .create_pod(&pod("new", "uid-new"))
        .await
        .unwrap();
    let web = backend("hello from web").await;
    let old_proxy = tunnels("1.5.17", web).await;
    // A registration claiming v2 in front of a proxy that speaks v1 only: the tunnel decides.
    proxy::register(&cci, "c1", release("1.5.18"), Some(&old_proxy))
        .await
        .unwrap();
    let (code, text) = probe(&server, "shop.new").await;
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains(
            "HTTP/1.1 426 Upgrade Required: the sidecar speaks v2, this proxy speaks [v1]"
        ),
        "{text}"
    );
}

#[tokio::test]
async fn a_sidecar_without_the_registrations_key_gets_no_tunnel() {
    let (server, cci) = mock().await;
    CciProvider::new(cci.clone(), MemoryObjects::default(), "c1")
        .unwrap()
        .with_network(crate::common::network())
        .with_release(release("1.5.18"))
        .create_pod(&pod("new", "uid-new"))
        .await
        .unwrap();
    let web = backend("hello from web").await;
    let mut proxy = tunnels("1.5.18", web).await;
    // The registration hands sidecars another key than the proxy's.
    proxy.key = tunnel::key_for("another credential");
    proxy::register(&cci, "c1", release("1.5.18"), Some(&proxy))
        .await
        .unwrap();
    let (code, text) = probe(&server, "shop.new").await;
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("407 Proxy Authentication Required"), "{text}");
    assert!(!text.contains("hello from web"), "{text}");
}

#[tokio::test]
async fn the_proxy_command_says_when_it_is_registered_and_leaves_the_registration_on_sigterm() {
    use tokio::io::AsyncBufReadExt as _;
    let (server, cci) = mock().await;
    // The proxy reads Services from a cluster; this one has none to ask (nothing dials it here).
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        "apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: 'http://127.0.0.1:9'}}]\n\
         users: [{name: u, user: {}}]\ncontexts: [{name: c, context: {cluster: c, user: u}}]\ncurrent-context: c\n",
    )
    .unwrap();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_bursting-engine"))
        .args([
            "proxy",
            "--cci-endpoint",
            cci.endpoint(),
            "--cluster-id",
            "c1",
            "--release",
            "1.5.17",
            "--resync-secs",
            "1",
            "--listen",
            "127.0.0.1:0",
            "--kubeconfig",
        ])
        .arg(&kubeconfig)
        .env("CCI_TOKEN", TOKEN)
        .env_remove("KUBECONFIG")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let first = tokio::time::timeout(PATIENCE, lines.next_line())
        .await
        .expect("a line in time")
        .unwrap();
    assert_eq!(first.as_deref(), Some("proxy registered"));
    assert_eq!(registered_protocols(&cci).await.unwrap(), ["v1"]);
    let endpoint = cci
        .get_object::<ProxyRegistration>(NS, PROXY_REGISTRATIONS, REGISTRATION_NAME)
        .await
        .unwrap()
        .spec
        .endpoint
        .expect("an endpoint registered");
    let address: std::net::SocketAddr = endpoint.parse().unwrap();
    assert!(
        address.ip().is_loopback() && address.port() != 0,
        "{endpoint}"
    );
    // Its tunnels answer at that endpoint: with no cluster to read the Service from, it says so.
    CciProvider::new(cci.clone(), MemoryObjects::default(), "c1")
        .unwrap()
        .with_network(crate::common::network())
        .with_release(release("1.5.17"))
        .create_pod(&pod("old", "uid-old"))
        .await
        .unwrap();
    let (code, text) = probe(&server, "shop.old").await;
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains("HTTP/1.1 503 Service Unavailable: cannot read service default/web"),
        "{text}"
    );

    let pid = child.id().unwrap().to_string();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = tokio::time::timeout(PATIENCE, child.wait())
        .await
        .expect("stopped in time")
        .unwrap();
    assert!(status.success(), "{status:?}");
    assert_eq!(
        registered_protocols(&cci).await.unwrap(),
        ["v1"],
        "still registered: a rolling upgrade replaces the proxy, the gc removes it"
    );
}

/// A pod of 0.25 vCPU / 0.5 GiB in `shop`.
fn pod(name: &str, uid: &str) -> Pod {
    common::sized_pod(name, uid, "250m", "512Mi", Vec::new())
}
