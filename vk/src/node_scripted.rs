//! The node agent's reads and writes against a scripted API server (the
//! `scripted-api` crate): registration (create, adopt an existing node, a create that lost a
//! race), the status heartbeat and its re-registration of a deleted node, the lease renewal and
//! its re-creation, the provider's health turning the node NotReady, and the keep-alive loop.
//! Each test checks the requests sent, in order, and the bodies that matter. The pure half
//! (`node_status`, `node_lease`, `meta_patch`, `on_node_event`) is table-tested in `node.rs`; the
//! cluster tier keeps the end-to-end truth.

use std::time::Duration;

use http::Method;
use scripted_api::{Expect, expect, failure, scripted};
use serde_json::{Value, json};

use super::*;

const NODES: &str = "/api/v1/nodes";
const NODE: &str = "/api/v1/nodes/vk";
const NODE_STATUS: &str = "/api/v1/nodes/vk/status";
const LEASES: &str = "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases";
const LEASE: &str = "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/vk";

/// An agent for node `vk` with a taint of its own and a 40 s lease, talking to `client`.
fn agent(client: Client) -> NodeAgent {
    let config =
        NodeConfig::new("vk").with_taint("virtual-kubelet.io/provider", "cci", "NoSchedule");
    NodeAgent::new(client, config, 40)
}

/// The node `vk` as the API server has it: UID `uid`, tainted by someone else (a cordon).
fn node(uid: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": "vk", "uid": uid, "resourceVersion": "7"},
        "spec": {"taints": [{"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}]},
    })
}

/// The lease `vk` as the API server answers a write of it.
fn lease() -> Value {
    json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": "vk", "namespace": "kube-node-lease"}})
}

fn not_found() -> Value {
    failure(404, "NotFound")
}

/// The requests of a registration of a node the API server does not have: a read (404), the
/// create (answered with `uid`), the status.
fn registers_anew(uid: &str) -> Vec<Expect> {
    vec![
        expect(Method::GET, NODE, 404, not_found()),
        expect(Method::POST, NODES, 201, node(uid)),
        expect(Method::PATCH, NODE_STATUS, 200, node(uid)),
    ]
}

/// The `Ready` condition of a status patch's body: (status, reason).
fn ready(body: &Value) -> (String, String) {
    let conditions = body["status"]["conditions"].as_array().expect("conditions");
    let ready = conditions
        .iter()
        .find(|c| c["type"] == "Ready")
        .expect("a Ready condition");
    (
        ready["status"].as_str().unwrap().to_owned(),
        ready["reason"].as_str().unwrap().to_owned(),
    )
}

/// The lease's owner UID in a create's body, if any.
fn owner_uid(lease: &Value) -> Option<&str> {
    lease["metadata"]["ownerReferences"][0]["uid"].as_str()
}

/// A fresh agent for node `vk` registering against `script`: what it returned, the request
/// bodies, and the agent.
async fn registered(script: Vec<Expect>) -> (Result<()>, Vec<Value>, NodeAgent) {
    let (client, mut api) = scripted_api::client();
    let mut agent = agent(client);
    let (done, bodies) = scripted(&mut api, agent.register(), script).await;
    (done, bodies, agent)
}

#[tokio::test]
async fn a_new_node_is_created_with_its_taint_then_its_status_posted_ready() {
    let (done, bodies, agent) = registered(registers_anew("u-1")).await;
    done.unwrap();
    let created = &bodies[1];
    assert_eq!(created["metadata"]["name"], "vk");
    assert_eq!(
        created["spec"]["taints"][0]["key"],
        "virtual-kubelet.io/provider"
    );
    assert_eq!(ready(&bodies[2]), ("True".into(), "KubeletReady".into()));
    assert_eq!(
        agent.uid.as_deref(),
        Some("u-1"),
        "the lease's owner is known"
    );
}

#[tokio::test]
async fn an_existing_node_is_adopted_keeping_foreign_taints_and_its_uid() {
    let (done, bodies, agent) = registered(vec![
        expect(Method::GET, NODE, 200, node("u-old")),
        expect(Method::PATCH, NODE, 200, node("u-old")),
        expect(Method::PATCH, NODE_STATUS, 200, node("u-old")),
    ])
    .await;
    done.unwrap();
    let taints: Vec<&str> = bodies[1]["spec"]["taints"]
        .as_array()
        .expect("the meta patch sets the taints")
        .iter()
        .map(|t| t["key"].as_str().unwrap())
        .collect();
    assert!(
        taints.contains(&"node.kubernetes.io/unschedulable"),
        "{taints:?}"
    );
    assert!(
        taints.contains(&"virtual-kubelet.io/provider"),
        "{taints:?}"
    );
    assert!(
        bodies[1].get("status").is_none(),
        "the meta patch leaves the status alone"
    );
    assert_eq!(ready(&bodies[2]).0, "True");
    assert_eq!(agent.uid.as_deref(), Some("u-old"));
}

#[tokio::test]
async fn a_create_that_lost_a_race_adopts_the_node_another_writer_made() {
    let (done, _, agent) = registered(vec![
        expect(Method::GET, NODE, 404, not_found()),
        expect(Method::POST, NODES, 409, failure(409, "AlreadyExists")),
        expect(Method::GET, NODE, 200, node("u-race")),
        expect(Method::PATCH, NODE, 200, node("u-race")),
        expect(Method::PATCH, NODE_STATUS, 200, node("u-race")),
    ])
    .await;
    done.unwrap();
    assert_eq!(agent.uid.as_deref(), Some("u-race"));
}

#[tokio::test]
async fn a_refused_create_fails_the_registration_naming_it() {
    let (done, _, agent) = registered(vec![
        expect(Method::GET, NODE, 404, not_found()),
        expect(Method::POST, NODES, 403, failure(403, "Forbidden")),
    ])
    .await;
    let error = done.expect_err("a 403 is not a lost race").to_string();
    assert!(error.contains("create node vk"), "{error}");
    assert_eq!(agent.uid, None);
}

#[tokio::test]
async fn the_heartbeat_posts_the_status_and_registers_a_deleted_node_again() {
    let (client, mut api) = scripted_api::client();
    let mut agent = agent(client);
    let (done, bodies) = scripted(
        &mut api,
        agent.heartbeat(),
        vec![expect(Method::PATCH, NODE_STATUS, 200, node("u-1"))],
    )
    .await;
    done.unwrap();
    assert_eq!(ready(&bodies[0]).0, "True");

    let mut script = vec![expect(Method::PATCH, NODE_STATUS, 404, not_found())];
    script.extend(registers_anew("u-2"));
    let (done, _) = scripted(&mut api, agent.heartbeat(), script).await;
    done.unwrap();
    assert_eq!(agent.uid.as_deref(), Some("u-2"), "registered again");
}

#[tokio::test]
async fn an_agent_told_not_to_reregister_leaves_a_deleted_node_and_its_lease_deleted() {
    let (client, mut api) = scripted_api::client();
    let mut agent = agent(client).reregistering(false);
    agent.uid = Some("u-old".into());
    let (done, _) = scripted(
        &mut api,
        agent.heartbeat(),
        vec![expect(Method::PATCH, NODE_STATUS, 404, not_found())],
    )
    .await;
    let error = done.expect_err("the 404 is reported").to_string();
    assert!(error.contains("patch status of node vk"), "{error}");
    let (done, _) = scripted(
        &mut api,
        agent.renew_lease(),
        vec![
            expect(Method::PATCH, LEASE, 404, not_found()),
            expect(Method::GET, NODE, 404, not_found()),
        ],
    )
    .await;
    done.unwrap();
    assert_eq!(agent.uid.as_deref(), Some("u-old"), "nothing registered");
}

#[tokio::test]
async fn a_heartbeat_refused_otherwise_is_an_error_and_registers_nothing() {
    let (client, mut api) = scripted_api::client();
    let mut agent = agent(client);
    let (done, _) = scripted(
        &mut api,
        agent.heartbeat(),
        vec![expect(
            Method::PATCH,
            NODE_STATUS,
            500,
            failure(500, "InternalError"),
        )],
    )
    .await;
    let error = done.expect_err("a 500 is reported").to_string();
    assert!(error.contains("patch status of node vk"), "{error}");
}

#[tokio::test]
async fn the_lease_is_renewed_as_held_by_the_node_for_its_duration_now() {
    let (client, mut api) = scripted_api::client();
    let mut agent = agent(client);
    let before = Timestamp::now();
    let (done, bodies) = scripted(
        &mut api,
        agent.renew_lease(),
        vec![expect(Method::PATCH, LEASE, 200, lease())],
    )
    .await;
    done.unwrap();
    let spec = &bodies[0]["spec"];
    assert_eq!(spec["holderIdentity"], "vk");
    assert_eq!(spec["leaseDurationSeconds"], 40);
    let renewed: Timestamp = spec["renewTime"].as_str().unwrap().parse().unwrap();
    assert!(renewed >= before - Duration::from_micros(1) && renewed <= Timestamp::now());
}

#[tokio::test]
async fn a_missing_lease_is_created_owned_by_the_node_that_still_exists() {
    let (client, mut api) = scripted_api::client();
    let mut agent = agent(client);
    agent.uid = Some("u-1".into());
    let (done, bodies) = scripted(
        &mut api,
        agent.renew_lease(),
        vec![
            expect(Method::PATCH, LEASE, 404, not_found()),
            expect(Method::GET, NODE, 200, node("u-1")),
            expect(Method::POST, LEASES, 201, Value::Null),
        ],
    )
    .await;
    done.unwrap();
    assert_eq!(owner_uid(&bodies[2]), Some("u-1"));
    assert_eq!(bodies[2]["spec"]["holderIdentity"], "vk");
}

#[tokio::test]
async fn a_lease_gone_with_its_node_registers_the_node_then_creates_the_lease_owned_by_it() {
    let (client, mut api) = scripted_api::client();
    let mut agent = agent(client);
    agent.uid = Some("u-old".into());
    let mut script = vec![
        expect(Method::PATCH, LEASE, 404, not_found()),
        expect(Method::GET, NODE, 404, not_found()),
    ];
    script.extend(registers_anew("u-new"));
    script.push(expect(Method::POST, LEASES, 201, Value::Null));
    let (done, bodies) = scripted(&mut api, agent.renew_lease(), script).await;
    done.unwrap();
    assert_eq!(
        owner_uid(&bodies[5]),
        Some("u-new"),
        "owned by the new node"
    );
}

#[rstest::rstest]
#[case::created_meanwhile_by_another(409, true)]
#[case::refused(403, false)]
#[tokio::test]
async fn a_lease_create_that_lost_a_race_is_fine_and_a_refused_one_is_an_error(
    #[case] code: u16,
    #[case] fine: bool,
) {
    let (client, mut api) = scripted_api::client();
    let mut agent = agent(client);
    let (done, _) = scripted(
        &mut api,
        agent.renew_lease(),
        vec![
            expect(Method::PATCH, LEASE, 404, not_found()),
            expect(Method::GET, NODE, 200, node("u-1")),
            expect(Method::POST, LEASES, code, failure(code, "Refused")),
        ],
    )
    .await;
    assert_eq!(done.is_ok(), fine, "{done:?}");
    if let Err(e) = done {
        assert!(e.to_string().contains("create lease vk"), "{e}");
    }
}

#[tokio::test]
async fn a_failed_renewal_is_an_error_and_creates_nothing() {
    let (client, mut api) = scripted_api::client();
    let mut agent = agent(client);
    let (done, _) = scripted(
        &mut api,
        agent.renew_lease(),
        vec![expect(
            Method::PATCH,
            LEASE,
            503,
            failure(503, "ServiceUnavailable"),
        )],
    )
    .await;
    assert!(
        done.expect_err("a 503")
            .to_string()
            .contains("renew lease vk")
    );
}

#[tokio::test]
async fn a_change_of_health_is_posted_at_once_and_the_same_health_again_is_not() {
    let (client, mut api) = scripted_api::client();
    let mut agent = agent(client);
    let (_, bodies) = scripted(
        &mut api,
        agent.set_health(Health::Unreachable("connection refused".into())),
        vec![expect(Method::PATCH, NODE_STATUS, 200, node("u-1"))],
    )
    .await;
    assert_eq!(
        ready(&bodies[0]),
        ("False".into(), PROVIDER_UNREACHABLE.into())
    );
    // The same health again: nothing to post.
    let (_, bodies) = scripted(
        &mut api,
        agent.set_health(Health::Unreachable("connection refused".into())),
        vec![],
    )
    .await;
    assert!(bodies.is_empty());
    let (_, bodies) = scripted(
        &mut api,
        agent.set_health(Health::Healthy),
        vec![expect(Method::PATCH, NODE_STATUS, 200, node("u-1"))],
    )
    .await;
    assert_eq!(ready(&bodies[0]).0, "True", "back to Ready");
}

#[tokio::test]
async fn registering_again_registers_the_node_then_renews_its_lease() {
    let (client, mut api) = scripted_api::client();
    let mut agent = agent(client);
    let mut script = registers_anew("u-2");
    script.push(expect(Method::PATCH, LEASE, 200, lease()));
    let ((), _) = scripted(&mut api, agent.reregister(), script).await;
    assert_eq!(agent.uid.as_deref(), Some("u-2"));
    // A failed registration renews nothing (and is retried with the next event or tick).
    let ((), _) = scripted(
        &mut api,
        agent.reregister(),
        vec![expect(
            Method::GET,
            NODE,
            500,
            failure(500, "InternalError"),
        )],
    )
    .await;
}

/// Answers the keep-alive loop by request, whatever their order (its branches race): the node
/// list holds the node, the watch is left open, writes are echoed. Returns when `stop` says so,
/// with the requests seen ("METHOD path", body).
async fn answer_keep_alive(
    api: &mut scripted_api::Handle,
    mut stop: impl FnMut(&[(String, Value)]) -> bool,
) -> Vec<(String, Value)> {
    let mut seen = Vec::new();
    let mut open_watches = Vec::new();
    while !stop(&seen) {
        let (request, send) = api.next_request().await.expect("the agent is gone");
        let uri = request.uri().to_string();
        let line = format!("{} {}", request.method(), request.uri().path());
        let body = request.into_body().collect_bytes().await.unwrap();
        let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        if uri.contains("watch=true") {
            open_watches.push(send);
        } else {
            let answer = if line == format!("GET {NODES}") {
                json!({"apiVersion": "v1", "kind": "NodeList", "metadata": {"resourceVersion": "7"}, "items": [node("u-1")]})
            } else if line.contains("/leases/") {
                lease()
            } else {
                node("u-1")
            };
            send.send_response(
                http::Response::builder()
                    .body(kube::client::Body::from(
                        serde_json::to_vec(&answer).unwrap(),
                    ))
                    .unwrap(),
            );
        }
        seen.push((line, body));
    }
    seen
}

#[tokio::test]
async fn keeping_alive_renews_the_lease_and_posts_a_change_of_health_at_once() {
    let (client, mut api) = scripted_api::client();
    let (health, watch) = tokio::sync::watch::channel(Health::Healthy);
    // Long intervals: besides the lease's first tick (at once), only the health change posts.
    let alive = tokio::spawn(agent(client).keep_alive(
        Duration::from_secs(3600),
        Duration::from_secs(3600),
        watch,
    ));
    let renewed =
        |seen: &[(String, Value)]| seen.iter().any(|(l, _)| l == &format!("PATCH {LEASE}"));
    let first = tokio::time::timeout(
        Duration::from_secs(10),
        answer_keep_alive(&mut api, renewed),
    )
    .await
    .expect("the lease is renewed at once");
    assert!(
        !first
            .iter()
            .any(|(l, _)| l == &format!("PATCH {NODE_STATUS}")),
        "registration posted the status; the loop does not post it again at once: {first:?}"
    );
    health
        .send(Health::Unreachable("503".into()))
        .expect("the loop listens");
    let posted = |seen: &[(String, Value)]| {
        seen.iter()
            .any(|(l, _)| l == &format!("PATCH {NODE_STATUS}"))
    };
    let then = tokio::time::timeout(Duration::from_secs(10), answer_keep_alive(&mut api, posted))
        .await
        .expect("the change of health is posted at once");
    let (_, status) = then
        .iter()
        .find(|(l, _)| l == &format!("PATCH {NODE_STATUS}"))
        .unwrap();
    assert_eq!(ready(status), ("False".into(), PROVIDER_UNREACHABLE.into()));
    alive.abort();
}
