//! Networks (`yangtse/v2`) as published CCI 2.0 has them: validated, Ready shortly after they
//! are created, and needed before a namespace's pods get addresses.

use crate::common;

use std::time::Duration;

use axum::Router;
use axum::http::{Method, StatusCode};
use common::*;
use mock_cci::{MockConfig, MockState};
use serde_json::{Value, json};

const READY_AFTER: Duration = Duration::from_secs(1);
const NETWORKS: &str = "/apis/yangtse/v2/namespaces/ns/networks";

/// A mock whose Networks turn Ready after [`READY_AFTER`], with namespace `ns` and no Network.
async fn mock_without_network(config: MockConfig) -> (Router, MockState) {
    let (app, state) = mock_with(config.with_network_ready_after(READY_AFTER));
    let reply = post(&app, "/apis/cci/v2/namespaces", namespace("ns")).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    (app, state)
}

fn condition<'a>(pod: &'a Value, type_: &str) -> &'a Value {
    pod["status"]["conditions"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == type_))
        .unwrap_or(&Value::Null)
}

#[tokio::test(start_paused = true)]
async fn a_network_turns_ready_after_its_delay_with_the_published_status() {
    let (app, _) = mock_without_network(config()).await;
    let created = post(&app, NETWORKS, network("net", "subnet-1")).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    assert_eq!(created.body["kind"], "Network");
    assert_eq!(created.body["apiVersion"], "yangtse/v2");
    assert!(
        created.body["status"]["status"].is_null(),
        "not Ready at once: {}",
        created.body
    );

    tokio::time::advance(READY_AFTER).await;
    let ready = get(&app, &format!("{NETWORKS}/net")).await;
    let status = &ready.body["status"];
    assert_eq!(status["status"], "Ready", "{}", ready.body);
    assert_eq!(status["subnetAttrs"][0]["subnetV4ID"], "subnet-1");
    let types: Vec<&str> = status["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        ["NetworkSynced", "NetworkExternalDependenciesSynced"]
    );
    assert!(
        rv(&ready.body) > rv(&created.body),
        "turning Ready is a change"
    );

    let list = get(&app, NETWORKS).await;
    assert_eq!(list.body["kind"], "NetworkList");
    assert_eq!(list.body["items"][0]["status"]["status"], "Ready");
    assert_eq!(
        delete(&app, &format!("{NETWORKS}/net")).await.status,
        StatusCode::OK
    );
    assert_eq!(
        get(&app, NETWORKS).await.body["items"],
        json!([]),
        "deleted"
    );
}

#[tokio::test]
async fn a_network_without_what_the_published_guide_requires_is_refused_naming_each_field() {
    let (app, _) = mock_without_network(config()).await;
    let bare = json!({"apiVersion": "yangtse/v2", "kind": "Network", "metadata": {"name": "net"},
                      "spec": {"networkType": "underlay_neutron"}});
    let reply = post(&app, NETWORKS, bare).await;
    assert_status(&reply, 422, "Invalid", "CCI.01.422001");
    for field in [
        "metadata.annotations[yangtse.io/project-id]: Required value",
        "metadata.annotations[yangtse.io/domain-id]: Required value",
        "spec.securityGroups: Required value",
        "spec.subnets: Required value",
    ] {
        assert!(
            reply.message().contains(field),
            "{field}: {}",
            reply.message()
        );
    }

    let mut wrong = network("net", "subnet-1");
    wrong["spec"]["networkType"] = json!("overlay");
    wrong["spec"]["ipFamilies"] = json!(["IPv5"]);
    wrong["spec"]["subnets"] = json!([{"subnetID": " "}]);
    let reply = post(&app, NETWORKS, wrong).await;
    assert_status(&reply, 422, "Invalid", "CCI.01.422001");
    for field in [
        "spec.networkType: Unsupported value",
        "spec.ipFamilies[0]: Unsupported value",
        "spec.subnets[0].subnetID: Required value",
    ] {
        assert!(
            reply.message().contains(field),
            "{field}: {}",
            reply.message()
        );
    }

    let mut kind = network("net", "subnet-1");
    kind["apiVersion"] = json!("cci/v2");
    let reply = call(&app, Method::POST, NETWORKS, Some(TOKEN_A), Some(kind)).await;
    assert_status(&reply, 422, "Invalid", "CCI.01.422001");
    assert!(reply.message().contains("apiVersion: Invalid value"));

    let mut deny_all = network("net", "subnet-1");
    deny_all["spec"]["securityGroups"] = json!([""]);
    let reply = post(&app, NETWORKS, deny_all).await;
    assert_eq!(
        reply.status,
        StatusCode::CREATED,
        "[\"\"] is the documented deny-all: {}",
        reply.body
    );
}

#[tokio::test]
async fn a_networks_subnets_cannot_change() {
    let (app, _) = mock_with_namespace().await;
    let mut moved = get(&app, &format!("{NETWORKS}/net")).await.body;
    moved["spec"]["subnets"] = json!([{"subnetID": "subnet-2"}]);
    let reply = put(&app, &format!("{NETWORKS}/net"), moved).await;
    assert_status(&reply, 422, "Invalid", "CCI.01.422001");
    assert!(
        reply.message().contains("spec.subnets"),
        "{}",
        reply.message()
    );
}

#[tokio::test(start_paused = true)]
async fn a_pod_waits_pending_without_an_address_until_its_namespace_has_a_ready_network() {
    let (app, _) = mock_without_network(config()).await;
    let created = post(&app, PODS, pod("web", json!({}))).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    tokio::time::advance(RUNNING_AFTER * 4).await;
    let waiting = get(&app, &format!("{PODS}/web")).await.body;
    assert_eq!(waiting["status"]["phase"], "Pending");
    assert!(waiting["status"]["podIP"].is_null(), "{waiting}");
    let scheduled = condition(&waiting, "PodScheduled");
    assert_eq!(scheduled["status"], "False");
    assert_eq!(scheduled["reason"], "NetworkNotReady");
    let message = scheduled["message"].as_str().unwrap();
    assert!(
        message.contains("namespace ns has no Ready Network"),
        "{message}"
    );

    post(&app, NETWORKS, network("net", "subnet-1")).await;
    tokio::time::advance(READY_AFTER).await;
    let still = get(&app, &format!("{PODS}/web")).await.body;
    assert_eq!(
        still["status"]["phase"], "Pending",
        "it starts as any pod does, after running_after"
    );
    assert!(
        rv(&still) > rv(&waiting),
        "leaving the wait for the network is a change"
    );
    tokio::time::advance(RUNNING_AFTER).await;
    let running = get(&app, &format!("{PODS}/web")).await.body;
    assert_eq!(running["status"]["phase"], "Running", "{running}");
    assert!(running["status"]["podIP"].is_string());
}

#[tokio::test(start_paused = true)]
async fn a_network_not_yet_ready_holds_pods_as_none_does() {
    let (app, _) = mock_without_network(config()).await;
    post(&app, NETWORKS, network("net", "subnet-1")).await;
    post(&app, PODS, pod("web", json!({}))).await;
    tokio::time::advance(READY_AFTER / 2).await;
    let early = get(&app, &format!("{PODS}/web")).await.body;
    assert_eq!(
        condition(&early, "PodScheduled")["reason"],
        "NetworkNotReady"
    );
    tokio::time::advance(READY_AFTER / 2 + RUNNING_AFTER).await;
    let running = get(&app, &format!("{PODS}/web")).await.body;
    assert_eq!(running["status"]["phase"], "Running", "{running}");
}

#[tokio::test(start_paused = true)]
async fn pods_get_addresses_from_the_cidr_of_a_subnet_the_mock_knows() {
    let cidr = "10.20.30.0/24".parse().unwrap();
    let (app, _) = mock_without_network(config().with_subnet("subnet-known", cidr)).await;
    post(&app, NETWORKS, network("net", "subnet-known")).await;
    tokio::time::advance(READY_AFTER).await;
    for name in ["a", "b"] {
        post(&app, PODS, pod(name, json!({}))).await;
    }
    tokio::time::advance(RUNNING_AFTER).await;
    let mut ips = Vec::new();
    for name in ["a", "b"] {
        let pod = get(&app, &format!("{PODS}/{name}")).await.body;
        let ip: std::net::Ipv4Addr = pod["status"]["podIP"].as_str().unwrap().parse().unwrap();
        assert!(cidr.contains(ip), "{ip} not in {cidr}");
        assert_ne!(ip.octets()[3], 0, "not the network address");
        assert_ne!(ip.octets()[3], 1, "not the gateway");
        ips.push(ip);
    }
    assert_ne!(ips[0], ips[1]);
}

#[tokio::test(start_paused = true)]
async fn a_network_ready_at_once_answers_ready_on_create() {
    let (app, _) = mock_with(config().with_network_ready_after(Duration::ZERO));
    post(&app, "/apis/cci/v2/namespaces", namespace("ns")).await;
    let created = post(&app, NETWORKS, network("net", "subnet-1")).await;
    assert_eq!(
        created.body["status"]["status"], "Ready",
        "{}",
        created.body
    );
}
