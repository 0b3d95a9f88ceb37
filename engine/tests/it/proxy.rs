//! The proxy's registration against the strict CCI mock (`mock_cci`, on a loopback port): its
//! protocols per release, the re-assertion after a deletion or another proxy's write, and what
//! burst pods can reach through it on either side of 1.5.18 (BEHAVIOR.md §9, §10).

use crate::common;

use std::time::Duration;

use burst_rules::release::Release;
use bursting_engine::proxy::{self, PROXY_REGISTRATIONS, REGISTRATION_NAME, Registered};
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
    let outcome = proxy::register(&cci, "c1", release(at)).await.unwrap();
    assert_eq!(outcome, Registered::Created);
    assert_eq!(registered_protocols(&cci).await.unwrap(), protocols);
    let again = proxy::register(&cci, "c1", release(at)).await.unwrap();
    assert_eq!(again, Registered::Unchanged);
}

#[tokio::test]
async fn a_rollback_proxy_replaces_the_newer_protocols_and_an_upgrade_restores_them() {
    let (_server, cci) = mock().await;
    cci.ensure_cluster_namespace("c1").await.unwrap();
    proxy::register(&cci, "c1", release("1.5.18"))
        .await
        .unwrap();
    let rolled_back = proxy::register(&cci, "c1", release("1.5.17"))
        .await
        .unwrap();
    assert_eq!(
        rolled_back,
        Registered::Updated {
            from: vec!["v1".into(), "v2".into()]
        }
    );
    assert_eq!(registered_protocols(&cci).await.unwrap(), ["v1"]);
    proxy::register(&cci, "c1", release("1.5.18"))
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
    proxy::register(&cci, "c1", release("1.5.17"))
        .await
        .unwrap();
    eventually_registered(&cci, &["v1", "v2"]).await;
    runner.abort();
}

/// Whether CCI pod `name` reaches the cluster Service `web.default`.
fn reaches_cluster_service(server: &Server, name: &str) -> bool {
    let request = ExecRequest {
        container: None,
        command: vec!["probe".into(), "web.default".into()],
    };
    let result = server
        .state()
        .with_store(|store, now| store.exec(TENANT, NS, name, &request, now))
        .unwrap();
    result.exit_code == 0
}

#[tokio::test]
async fn after_a_rollback_only_pods_burst_under_the_new_sidecar_lose_services_until_the_upgrade() {
    let (server, cci) = mock().await;
    let engine = |at: &str| {
        CciProvider::new(cci.clone(), MemoryObjects::default(), "c1")
            .unwrap()
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

    proxy::register(&cci, "c1", release("1.5.18"))
        .await
        .unwrap();
    assert!(reaches_cluster_service(&server, "shop.old"));
    assert!(reaches_cluster_service(&server, "shop.new"));

    proxy::register(&cci, "c1", release("1.5.17"))
        .await
        .unwrap();
    assert!(reaches_cluster_service(&server, "shop.old"));
    assert!(!reaches_cluster_service(&server, "shop.new"));

    proxy::register(&cci, "c1", release("1.5.18"))
        .await
        .unwrap();
    assert!(reaches_cluster_service(&server, "shop.new"));
}

#[tokio::test]
async fn the_proxy_command_says_when_it_is_registered_and_leaves_the_registration_on_sigterm() {
    use tokio::io::AsyncBufReadExt as _;
    let (_server, cci) = mock().await;
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
        ])
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
