//! The CCI namespace's Network against the strict CCI mock (`mock_cci`, on a loopback port):
//! namespace, then a Ready Network on the add-on's subnet, then pods (BEHAVIOR.md §12).

use crate::common;

use std::time::Duration;

use bursting_engine::{CciClient, CciProvider, Error, MemoryObjects};
use cci_api::{CLUSTER_NETWORK_NAME, Network};
use mock_cci::{MockConfig, Server};
use vk::Provider;

const TOKEN: &str = "secret";
const NS: &str = "bursting-c1";

async fn mock(ready_after: Duration) -> (Server, CciClient) {
    let server = Server::bind(
        MockConfig::default()
            .with_token(TOKEN, "tenant-a")
            .with_running_after(Duration::from_millis(100))
            .with_network_ready_after(ready_after),
    )
    .await
    .unwrap();
    let cci = CciClient::new(&server.url(), TOKEN).unwrap();
    (server, cci)
}

/// The method and path (without query) of every request the mock served, in order.
fn requests(server: &Server) -> Vec<(String, String)> {
    server
        .state()
        .requests()
        .into_iter()
        .map(|r| {
            let path = r.path.split('?').next().unwrap_or_default().to_owned();
            (r.method, path)
        })
        .collect()
}

#[tokio::test]
async fn the_first_pod_waits_for_a_ready_network_on_the_subnet_created_after_the_namespace() {
    let (server, cci) = mock(Duration::from_millis(500)).await;
    let provider = CciProvider::new(cci.clone(), MemoryObjects::default(), "c1")
        .unwrap()
        .with_network(common::network());
    provider
        .create_pod(&common::pod("web", "uid-web", vec![]))
        .await
        .unwrap();

    let networks: Vec<Network> = cci.list_networks(NS).await.unwrap().items;
    assert_eq!(networks.len(), 1, "{networks:?}");
    let network = &networks[0];
    assert_eq!(network.metadata.name.as_deref(), Some(CLUSTER_NETWORK_NAME));
    assert_eq!(network.subnet_ids(), ["subnet-1"]);
    assert_eq!(
        network.spec.security_groups.as_deref(),
        Some(&["sg-1".to_owned()][..])
    );
    assert!(network.is_ready(), "{network:?}");

    let order: Vec<(String, String)> = requests(&server)
        .into_iter()
        .filter(|(method, _)| method == "POST")
        .collect();
    assert_eq!(
        order,
        [
            ("POST".into(), "/apis/cci/v2/namespaces".into()),
            (
                "POST".into(),
                format!("/apis/yangtse/v2/namespaces/{NS}/networks")
            ),
            ("POST".into(), format!("/apis/cci/v2/namespaces/{NS}/pods")),
        ],
        "namespace, then Network, then the pod"
    );
    let pod = cci.list_pods(NS).await.unwrap().items.remove(0);
    let ready_at = network
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.first())
        .map(|c| c.last_transition_time.0)
        .unwrap();
    let pod_created = pod.metadata.creation_timestamp.unwrap().0;
    assert!(
        ready_at <= pod_created,
        "the pod ({pod_created}) is created once the Network is Ready ({ready_at})"
    );

    // A second pod finds everything in place: no second Network, no new wait.
    provider
        .create_pod(&common::pod("db", "uid-db", vec![]))
        .await
        .unwrap();
    assert_eq!(cci.list_networks(NS).await.unwrap().items.len(), 1);
}

#[tokio::test]
async fn an_existing_network_is_reused_and_a_network_never_ready_fails_the_pod_naming_it() {
    let (_server, cci) = mock(Duration::from_secs(3600)).await;
    let mut network = common::network();
    network.ready_timeout = Duration::from_millis(600);
    let provider = CciProvider::new(cci.clone(), MemoryObjects::default(), "c1")
        .unwrap()
        .with_network(network.clone());
    let err = provider.ensure_namespace().await.unwrap_err();
    assert!(
        matches!(err, Error::NetworkNotReady { .. }),
        "{err}: {err:?}"
    );
    let text = err.to_string();
    assert!(
        text.contains(&format!("network {NS}/{CLUSTER_NETWORK_NAME}")) && text.contains("subnet-1"),
        "{text}"
    );
    let failed = provider
        .create_pod(&common::pod("web", "uid-web", vec![]))
        .await
        .unwrap_err();
    assert!(failed.to_string().contains("not Ready"), "{failed}");
    assert!(
        cci.list_pods(NS).await.unwrap().items.is_empty(),
        "no pod before the Network is Ready"
    );
    assert_eq!(
        cci.list_networks(NS).await.unwrap().items.len(),
        1,
        "the retry waits for the same Network"
    );
}

#[tokio::test]
async fn without_a_subnet_the_engine_creates_no_network() {
    let (_server, cci) = mock(Duration::ZERO).await;
    let provider = CciProvider::new(cci.clone(), MemoryObjects::default(), "c1").unwrap();
    provider.ensure_namespace().await.unwrap();
    assert!(cci.list_networks(NS).await.unwrap().items.is_empty());
}
