//! The node lock's second signal (BEHAVIOR.md §7) against the strict CCI mock: a pod CCI
//! accepts but leaves Pending for lack of capacity (the mock's `noCapacity` fault) locks the
//! node once it has waited past the threshold, once per pod, not on every status round. The
//! node is a scripted API server, so every request the lock sends is checked.

use crate::common;

use std::sync::Arc;
use std::time::Duration;

use bursting_engine::lock::NodeLock;
use bursting_engine::{CciClient, CciProvider, MemoryObjects};
use http::Method;
use mock_cci::{MockConfig, Server};
use scripted_api::{expect, scripted};
use serde_json::json;
use vk::Provider;

const TOKEN: &str = "secret";
const NS: &str = "bursting-c1";
const NODE: &str = "/api/v1/nodes/bursting-node";
/// How long a pod may wait for capacity here.
const THRESHOLD: Duration = Duration::from_secs(1);

#[tokio::test]
async fn a_pod_left_pending_for_capacity_past_the_threshold_locks_the_node_once() {
    let server = Server::bind(
        MockConfig::default()
            .with_token(TOKEN, "tenant-a")
            .with_running_after(Duration::from_millis(100))
            .with_restart_backoff(Duration::from_millis(100))
            .with_network_ready_after(Duration::ZERO),
    )
    .await
    .unwrap();
    let fault: mock_cci::FaultSpec = serde_json::from_value(json!({
        "scope": {"namespace": NS}, "fault": {"type": "noCapacity"},
    }))
    .unwrap();
    server.state().set_fault(fault).unwrap();
    let cci = CciClient::new(&server.url(), TOKEN).unwrap();
    let (client, mut api) = scripted_api::client();
    let lock = Arc::new(NodeLock::new(
        client,
        "bursting-node",
        Duration::from_secs(60),
    ));
    let provider = CciProvider::new(cci, MemoryObjects::default(), "c1")
        .unwrap()
        .with_network(common::network())
        .with_node_lock(lock)
        .with_pending_lock(THRESHOLD);
    provider
        .create_pod(&common::pod("web", "uid-web", vec![]))
        .await
        .expect("CCI accepts the pod it has no capacity for");

    let (listed, _) = scripted(&mut api, provider.list_pods(), vec![]).await;
    let listed = listed.unwrap();
    let status = listed[0].status.as_ref().unwrap();
    assert_eq!(status.phase.as_deref(), Some("Pending"));
    let scheduled = &status.conditions.as_ref().unwrap()[0];
    assert_eq!(
        (scheduled.status.as_str(), scheduled.reason.as_deref()),
        ("False", Some("Unschedulable")),
        "the translated status keeps why the pod waits"
    );

    tokio::time::sleep(THRESHOLD + Duration::from_millis(200)).await;
    let node = json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "bursting-node"}, "spec": {"unschedulable": true}});
    let (_, bodies) = scripted(
        &mut api,
        provider.list_pods(),
        vec![expect(Method::PATCH, NODE, 200, node)],
    )
    .await;
    assert_eq!(bodies[0]["spec"]["unschedulable"], true, "{}", bodies[0]);
    // The same pod, still Pending, does not lock the node again on every status round.
    scripted(&mut api, provider.list_pods(), vec![])
        .await
        .0
        .unwrap();
}

#[tokio::test]
async fn without_the_pending_lock_a_pod_left_pending_never_locks_the_node() {
    let server = Server::bind(
        MockConfig::default()
            .with_token(TOKEN, "tenant-a")
            .with_network_ready_after(Duration::ZERO),
    )
    .await
    .unwrap();
    let fault: mock_cci::FaultSpec = serde_json::from_value(json!({
        "scope": {"namespace": NS}, "fault": {"type": "noCapacity"},
    }))
    .unwrap();
    server.state().set_fault(fault).unwrap();
    let cci = CciClient::new(&server.url(), TOKEN).unwrap();
    let (client, mut api) = scripted_api::client();
    // The lock for sold-out answers only: what the engine builds when the threshold is unset.
    let provider = CciProvider::new(cci, MemoryObjects::default(), "c1")
        .unwrap()
        .with_network(common::network())
        .with_node_lock(Arc::new(NodeLock::new(
            client,
            "bursting-node",
            Duration::from_secs(60),
        )));
    provider
        .create_pod(&common::pod("web", "uid-web", vec![]))
        .await
        .unwrap();
    tokio::time::sleep(THRESHOLD + Duration::from_millis(200)).await;
    scripted(&mut api, provider.list_pods(), vec![])
        .await
        .0
        .unwrap();
}
