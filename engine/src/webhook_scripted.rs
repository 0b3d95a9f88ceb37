//! The webhook's handlers against a scripted API server (the `scripted-api` crate): an
//! AdmissionReview goes in through the router, as the API server sends it, and each test checks
//! the cluster reads and writes the handler made, in order, and the review it answered. The pure
//! decision (`burst_rules::decide`) is table-tested in its crate; the cluster tier (WL-*, VOL-*,
//! INST-04) keeps the end-to-end truth. What is tested here is the glue: which owners are read
//! and how far, which storage and Volcano facts, when an event is posted, and how a failed read
//! turns into an answer.

use axum::body::Body;
use http::Method;
use kube::core::admission::AdmissionResponse;
use rstest::rstest;
use scripted_api::{Expect, Handle, expect, failure, scripted};
use serde_json::{Value, json};
use tower::ServiceExt as _;

use super::*;

/// The namespace of the pods and Services under review.
const NS: &str = "shop";
/// The release the webhook serves unless a test says otherwise (every gate but `<=` ones open).
const RELEASE: Release = Release::new(1, 5, 18);
const SEED_LABEL: &str = burst_rules::policy::LABEL;

/// A webhook for `release` on a scripted API server, and the server's handle.
fn webhook(release: Release) -> (WebhookState, Handle) {
    let (client, api) = scripted_api::client();
    (WebhookState::new(client, release), api)
}

/// An AdmissionReview of `kind` (`Pod`, `Service`) as the API server sends it.
fn review(kind: &str, operation: &str, namespace: Option<&str>, object: Value) -> Value {
    let resource = format!("{}s", kind.to_lowercase());
    let mut request = json!({
        "uid": "3f1e0c52-0d2b-4a8e-9b1e-5b7f5f2d9a01",
        "kind": {"group": "", "version": "v1", "kind": kind},
        "resource": {"group": "", "version": "v1", "resource": resource},
        "name": object["metadata"]["name"].as_str().unwrap_or(""),
        "operation": operation,
        "userInfo": {"username": "system:serviceaccount:kube-system:replicaset-controller"},
        "object": object,
        "oldObject": null,
        "dryRun": false,
    });
    if let Some(namespace) = namespace {
        request["namespace"] = namespace.into();
    }
    json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request})
}

/// A pod CREATE in [`NS`].
fn create(pod: Value) -> Value {
    review("Pod", "CREATE", Some(NS), pod)
}

/// Posts `review` to the router's `path` and reads the answer.
async fn post(state: WebhookState, path: &str, review: Value) -> AdmissionResponse {
    let request = axum::http::Request::post(path)
        .header("content-type", "application/json")
        .body(Body::from(review.to_string()))
        .unwrap();
    let answer = router(state).oneshot(request).await.unwrap();
    assert_eq!(answer.status(), 200, "a review is always answered 200");
    let bytes = axum::body::to_bytes(answer.into_body(), usize::MAX)
        .await
        .unwrap();
    let review: AdmissionReview<DynamicObject> =
        serde_json::from_slice(&bytes).expect("an AdmissionReview");
    review.response.expect("the review's response")
}

/// Posts `review` to `path` while the scripted server answers `script`: the answer and the
/// bodies of the requests the webhook sent.
async fn admit_with(
    state: WebhookState,
    api: &mut Handle,
    path: &str,
    review: Value,
    script: Vec<Expect>,
) -> (AdmissionResponse, Vec<Value>) {
    scripted(api, post(state, path, review), script).await
}

/// Posts `review` to `path` of a fresh webhook for `release` while the scripted server answers
/// `script` (see [`admit_with`]).
async fn judged(
    release: Release,
    path: &str,
    review: Value,
    script: Vec<Expect>,
) -> (AdmissionResponse, Vec<Value>) {
    let (state, mut api) = webhook(release);
    admit_with(state, &mut api, path, review, script).await
}

/// The pod's patch as JSON (an array of operations); `Null` when there is none.
fn patch_of(response: &AdmissionResponse) -> Value {
    response
        .patch
        .as_ref()
        .map_or(Value::Null, |p| serde_json::from_slice(p).expect("JSON"))
}

/// Whether the patch makes the pod tolerate the virtual node's taint (what every burst gets).
fn tolerates_the_virtual_node(patch: &Value) -> bool {
    patch.as_array().is_some_and(|ops| {
        ops.iter().any(|op| {
            op["path"] == "/spec/tolerations"
                && op["value"][0]["key"] == burst_rules::decide::TAINT_KEY
        })
    })
}

/// A pod of 1 vCPU / 2 GiB named by `generateName` `web-1-`, with `metadata` merged in and
/// `volumes`.
fn pod(metadata: Value, volumes: Value) -> Value {
    let mut pod = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"generateName": "web-1-"},
        "spec": {
            "containers": [{
                "name": "app", "image": "nginx",
                "resources": {"requests": {"cpu": "1", "memory": "2Gi"}},
                "volumeMounts": [],
            }],
            "volumes": volumes,
        },
    });
    for (key, value) in metadata.as_object().cloned().unwrap_or_default() {
        pod["metadata"][key] = value;
    }
    pod
}

/// An owner reference; only `controller: true` ones are followed.
fn owner_ref(api_version: &str, kind: &str, name: &str, controller: bool) -> Value {
    json!({"apiVersion": api_version, "kind": kind, "name": name,
           "uid": format!("uid-{name}"), "controller": controller})
}

/// An object as a GET of it answers: `kind` `name` in [`NS`], with `labels` and `owners`.
fn object(api_version: &str, kind: &str, name: &str, labels: Value, owners: Value) -> Value {
    json!({
        "apiVersion": api_version, "kind": kind,
        "metadata": {"name": name, "namespace": NS, "labels": labels, "ownerReferences": owners},
    })
}

fn enforce() -> Value {
    json!({ SEED_LABEL: "enforce" })
}

/// The GET of ReplicaSet `web-1` owned by Deployment `web`, and of `web` labelled `labels`.
fn replica_set_then_deployment(labels: Value) -> Vec<Expect> {
    vec![
        expect(
            Method::GET,
            "/apis/apps/v1/namespaces/shop/replicasets/web-1",
            200,
            object(
                "apps/v1",
                "ReplicaSet",
                "web-1",
                json!({}),
                json!([owner_ref("apps/v1", "Deployment", "web", true)]),
            ),
        ),
        expect(
            Method::GET,
            "/apis/apps/v1/namespaces/shop/deployments/web",
            200,
            object("apps/v1", "Deployment", "web", labels, json!([])),
        ),
    ]
}

/// A pod of ReplicaSet `web-1` (its controller), with another owner that is not its controller.
fn pod_of_replica_set() -> Value {
    pod(
        json!({"ownerReferences": [
            owner_ref("v1", "ConfigMap", "not-the-controller", false),
            owner_ref("apps/v1", "ReplicaSet", "web-1", true),
        ]}),
        json!([]),
    )
}

#[tokio::test]
async fn a_deployments_label_reached_through_its_replica_set_makes_the_pod_burst() {
    let (answer, _) = judged(
        RELEASE,
        "/mutate",
        create(pod_of_replica_set()),
        replica_set_then_deployment(enforce()),
    )
    .await;
    assert!(answer.allowed, "{answer:?}");
    assert_eq!(answer.uid, "3f1e0c52-0d2b-4a8e-9b1e-5b7f5f2d9a01");
    let patch = patch_of(&answer);
    assert!(tolerates_the_virtual_node(&patch), "{patch}");
    assert!(
        patch
            .to_string()
            .contains(burst_rules::decide::NODE_LABEL_VALUE),
        "enforce requires the virtual node: {patch}"
    );
}

#[tokio::test]
async fn a_deployment_without_the_label_leaves_the_pod_as_it_is() {
    let (answer, _) = judged(
        RELEASE,
        "/mutate",
        create(pod_of_replica_set()),
        replica_set_then_deployment(json!({"app": "web"})),
    )
    .await;
    assert!(answer.allowed);
    assert_eq!(patch_of(&answer), Value::Null);
}

#[tokio::test]
async fn owners_in_the_owner_cache_are_not_read_again() {
    use kube::api::PartialObjectMetaExt as _;
    let (replica_sets, mut rs) = reflector::store::<PartialObjectMeta<ReplicaSet>>();
    let (deployments, mut d) = reflector::store::<PartialObjectMeta<Deployment>>();
    let meta = |value: Value| serde_json::from_value::<ObjectMeta>(value["metadata"].clone());
    let replica_set = object(
        "apps/v1",
        "ReplicaSet",
        "web-1",
        json!({}),
        json!([owner_ref("apps/v1", "Deployment", "web", true)]),
    );
    let deployment = object("apps/v1", "Deployment", "web", enforce(), json!([]));
    rs.apply_watcher_event(&watcher::Event::Apply(
        meta(replica_set).unwrap().into_response_partial(),
    ));
    d.apply_watcher_event(&watcher::Event::Apply(
        meta(deployment).unwrap().into_response_partial(),
    ));
    let (state, mut api) = webhook(RELEASE);
    let state = state.with_owner_cache(OwnerCache {
        replica_sets,
        deployments,
    });
    let review = create(pod_of_replica_set());
    let (answer, _) = admit_with(state, &mut api, "/mutate", review, vec![]).await;
    assert!(tolerates_the_virtual_node(&patch_of(&answer)));
}

#[tokio::test]
async fn an_owner_of_the_core_group_is_read_from_the_core_api_and_one_that_is_gone_ends_the_chain()
{
    let pod = pod(
        json!({"ownerReferences": [owner_ref("v1", "ReplicationController", "legacy", true)]}),
        json!([]),
    );
    let (answer, _) = judged(
        RELEASE,
        "/mutate",
        create(pod),
        vec![
            expect(
                Method::GET,
                "/api/v1/namespaces/shop/replicationcontrollers/legacy",
                200,
                object(
                    "v1",
                    "ReplicationController",
                    "legacy",
                    enforce(),
                    json!([owner_ref("apps/v1", "Deployment", "gone", true)]),
                ),
            ),
            expect(
                Method::GET,
                "/apis/apps/v1/namespaces/shop/deployments/gone",
                404,
                failure(404, "NotFound"),
            ),
        ],
    )
    .await;
    assert!(answer.allowed);
    assert!(tolerates_the_virtual_node(&patch_of(&answer)));
}

#[tokio::test]
async fn the_owner_chain_is_followed_four_owners_deep_and_no_further() {
    let pod = pod(
        json!({"labels": enforce(), "ownerReferences": [owner_ref("apps/v1", "ReplicaSet", "rs-1", true)]}),
        json!([]),
    );
    // Each ReplicaSet names the next as its controller: only the bound ends the chain.
    let paths = [
        "/apis/apps/v1/namespaces/shop/replicasets/rs-1",
        "/apis/apps/v1/namespaces/shop/replicasets/rs-2",
        "/apis/apps/v1/namespaces/shop/replicasets/rs-3",
        "/apis/apps/v1/namespaces/shop/replicasets/rs-4",
    ];
    let script = paths
        .iter()
        .enumerate()
        .map(|(i, path)| {
            let next = owner_ref("apps/v1", "ReplicaSet", &format!("rs-{}", i + 2), true);
            let this = format!("rs-{}", i + 1);
            expect(
                Method::GET,
                path,
                200,
                object("apps/v1", "ReplicaSet", &this, json!({}), json!([next])),
            )
        })
        .collect();
    let (answer, _) = judged(RELEASE, "/mutate", create(pod), script).await;
    assert!(tolerates_the_virtual_node(&patch_of(&answer)));
}

#[tokio::test]
async fn an_unknown_policy_on_an_owner_is_refused_naming_the_owner_in_its_namespace() {
    let (answer, _) = judged(
        RELEASE,
        "/mutate",
        create(pod_of_replica_set()),
        replica_set_then_deployment(json!({ SEED_LABEL: "Enforce" })),
    )
    .await;
    assert!(!answer.allowed);
    assert!(
        answer.result.message.contains("Deployment shop/web"),
        "{}",
        answer.result.message
    );
}

#[tokio::test]
async fn a_pod_in_no_namespace_has_its_owners_read_in_default() {
    let pod = pod(
        json!({"ownerReferences": [owner_ref("apps/v1", "ReplicaSet", "web-1", true)]}),
        json!([]),
    );
    let (answer, _) = judged(
        RELEASE,
        "/mutate",
        review("Pod", "CREATE", None, pod),
        vec![expect(
            Method::GET,
            "/apis/apps/v1/namespaces/default/replicasets/web-1",
            404,
            failure(404, "NotFound"),
        )],
    )
    .await;
    assert!(answer.allowed);
    assert_eq!(patch_of(&answer), Value::Null, "no label anywhere");
}

#[rstest]
#[case::an_owner(500, "InternalError")]
#[case::an_owner_too_busy(429, "TooManyRequests")]
#[tokio::test]
async fn a_cluster_that_cannot_be_read_refuses_the_pod_for_its_controller_to_retry(
    #[case] status: u16,
    #[case] reason: &str,
) {
    let read = expect(
        Method::GET,
        "/apis/apps/v1/namespaces/shop/replicasets/web-1",
        status,
        failure(status, reason),
    );
    let (answer, _) = judged(RELEASE, "/mutate", create(pod_of_replica_set()), vec![read]).await;
    assert!(!answer.allowed);
    assert!(
        answer
            .result
            .message
            .starts_with("bursting webhook cannot read the cluster to decide: "),
        "{}",
        answer.result.message
    );
}

#[tokio::test]
async fn an_owner_the_webhook_may_not_read_ends_the_chain_and_the_pod_is_admitted_as_it_is() {
    let read = expect(
        Method::GET,
        "/apis/apps/v1/namespaces/shop/replicasets/web-1",
        403,
        failure(403, "Forbidden"),
    );
    let (answer, _) = judged(RELEASE, "/mutate", create(pod_of_replica_set()), vec![read]).await;
    assert!(answer.allowed, "{}", answer.result.message);
    assert_eq!(patch_of(&answer), Value::Null, "no label was read anywhere");
}

#[rstest]
#[case::a_custom_resource_owning_the_pod("argoproj.io/v1alpha1", "Rollout")]
#[case::a_core_kind_the_webhook_does_not_read("v1", "Node")]
#[case::a_workload_kind_of_another_version("apps/v1beta1", "Deployment")]
#[tokio::test]
async fn an_owner_of_a_kind_the_webhook_does_not_know_is_never_read_and_ends_the_chain(
    #[case] api_version: &str,
    #[case] kind: &str,
) {
    let owned = |labels: Value| {
        pod(
            json!({"labels": labels, "ownerReferences": [owner_ref(api_version, kind, "op-1", true)]}),
            json!([]),
        )
    };
    // No read is scripted: any request the webhook sent would fail the test.
    let (answer, _) = judged(RELEASE, "/mutate", create(owned(json!({}))), vec![]).await;
    assert!(answer.allowed, "{}", answer.result.message);
    assert_eq!(patch_of(&answer), Value::Null);
    // Labelled on the pod itself, it bursts as any pod would.
    let (answer, _) = judged(RELEASE, "/mutate", create(owned(enforce())), vec![]).await;
    assert!(tolerates_the_virtual_node(&patch_of(&answer)));
}

#[tokio::test]
async fn a_custom_resource_above_a_deployment_ends_the_chain_and_the_deployments_label_counts() {
    let mut script = replica_set_then_deployment(enforce());
    // The Deployment is owned by an operator's resource, which is not read.
    script[1] = expect(
        Method::GET,
        "/apis/apps/v1/namespaces/shop/deployments/web",
        200,
        object(
            "apps/v1",
            "Deployment",
            "web",
            enforce(),
            json!([owner_ref("argoproj.io/v1alpha1", "Rollout", "web", true)]),
        ),
    );
    let (answer, _) = judged(RELEASE, "/mutate", create(pod_of_replica_set()), script).await;
    assert!(tolerates_the_virtual_node(&patch_of(&answer)));
}

#[rstest]
#[case::update("UPDATE")]
#[case::delete("DELETE")]
#[case::connect("CONNECT")]
#[tokio::test]
async fn only_a_pods_create_is_judged(#[case] operation: &str) {
    let pod = pod(json!({"labels": enforce()}), json!([]));
    let (answer, _) = judged(
        RELEASE,
        "/mutate",
        review("Pod", operation, Some(NS), pod),
        vec![],
    )
    .await;
    assert!(answer.allowed);
    assert_eq!(patch_of(&answer), Value::Null);
}

#[tokio::test]
async fn a_review_without_a_request_is_answered_invalid() {
    let (state, mut api) = webhook(RELEASE);
    let review = json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"});
    for path in ["/mutate", "/validate"] {
        let (answer, _) = admit_with(state.clone(), &mut api, path, review.clone(), vec![]).await;
        assert!(!answer.allowed, "{path}");
        assert_eq!(answer.result.reason, "InvalidRequest", "{path}");
    }
}

#[tokio::test]
async fn a_pod_refused_by_the_rules_is_denied_with_their_message() {
    let pod = pod(
        json!({"labels": enforce()}),
        json!([{"name": "data", "hostPath": {"path": "/data"}}]),
    );
    let (answer, bodies) = judged(RELEASE, "/mutate", create(pod), vec![]).await;
    assert!(!answer.allowed);
    assert!(
        answer.result.message.contains("hostPath"),
        "{}",
        answer.result.message
    );
    assert!(bodies.is_empty(), "a refusal posts no event");
}

/// A pod of DaemonSet `agent` labelled `enforce`, and the read of `agent`.
fn daemonset_pod() -> (Value, Expect) {
    let pod = pod(
        json!({"generateName": "agent-", "labels": enforce(),
               "ownerReferences": [owner_ref("apps/v1", "DaemonSet", "agent", true)]}),
        json!([]),
    );
    let read = expect(
        Method::GET,
        "/apis/apps/v1/namespaces/shop/daemonsets/agent",
        200,
        object("apps/v1", "DaemonSet", "agent", json!({}), json!([])),
    );
    (pod, read)
}

/// The POST of an event in [`NS`], answered `status` and `answer` (`Null`: echoed).
fn event_posted(status: u16, answer: Value) -> Expect {
    expect(
        Method::POST,
        "/api/v1/namespaces/shop/events",
        status,
        answer,
    )
}

/// The review of [`daemonset_pod`], its Warning event answered `status` and `answer`: the
/// review's answer and the bodies sent (the event second).
async fn keep_local_posting_an_event(
    status: u16,
    answer: Value,
) -> (AdmissionResponse, Vec<Value>) {
    let (pod, read) = daemonset_pod();
    let event = event_posted(status, answer);
    judged(RELEASE, "/mutate", create(pod), vec![read, event]).await
}

#[tokio::test]
async fn a_pod_kept_local_is_admitted_unchanged_with_a_warning_event_naming_it() {
    let (answer, bodies) = keep_local_posting_an_event(201, Value::Null).await;
    assert!(answer.allowed);
    assert_eq!(patch_of(&answer), Value::Null);
    let event = &bodies[1];
    assert_eq!(event["metadata"]["generateName"], "agent-.");
    assert_eq!(event["metadata"]["namespace"], NS);
    assert_eq!(
        event["involvedObject"],
        json!({"apiVersion": "v1", "kind": "Pod", "name": "agent-", "namespace": NS})
    );
    assert_eq!(event["type"], "Warning");
    assert_eq!(event["reason"], "KeptLocal");
    assert_eq!(event["count"], 1);
    // Stamped now, first and last alike: `kubectl get events` sorts and ages by them.
    let stamp = |field: &str| -> k8s_openapi::jiff::Timestamp {
        event[field]
            .as_str()
            .unwrap_or_else(|| panic!("{field} is set"))
            .parse()
            .expect("an RFC 3339 time")
    };
    let age = k8s_openapi::jiff::Timestamp::now().duration_since(stamp("firstTimestamp"));
    assert!(
        age.as_secs() < 60 && !age.is_negative(),
        "firstTimestamp is now, not {age}"
    );
    assert_eq!(stamp("lastTimestamp"), stamp("firstTimestamp"));
    assert_eq!(event["source"]["component"], "bursting-webhook");
    let message = event["message"].as_str().expect("a message");
    assert!(message.contains("DaemonSet"), "{message}");
}

#[tokio::test]
async fn a_pod_kept_local_is_admitted_even_when_its_event_is_refused() {
    let (answer, _) = keep_local_posting_an_event(403, failure(403, "Forbidden")).await;
    assert!(answer.allowed);
}

#[tokio::test]
async fn a_dry_run_kept_local_posts_no_event() {
    let (pod, read) = daemonset_pod();
    let mut review = create(pod);
    review["request"]["dryRun"] = true.into();
    let (answer, _) = judged(RELEASE, "/mutate", review, vec![read]).await;
    assert!(answer.allowed);
    assert_eq!(patch_of(&answer), Value::Null);
}

/// A claim volume `data` of claim `claim`.
fn claim_volume(claim: &str) -> Value {
    json!([{"name": "data", "persistentVolumeClaim": {"claimName": claim}}])
}

/// The LIST of StorageClasses (`sfs` on SFS, `local` without a provisioner) and of the
/// namespace's claims (`shared` of class `sfs`, `scratch` of class `local`).
fn storage_lists() -> Vec<Expect> {
    let class = |name: &str, provisioner: &str| json!({"metadata": {"name": name}, "provisioner": provisioner});
    let claim = |name: &str, class: &str| {
        json!({"metadata": {"name": name, "namespace": NS},
               "spec": {"storageClassName": class, "accessModes": ["ReadWriteMany"]}})
    };
    vec![
        expect(
            Method::GET,
            "/apis/storage.k8s.io/v1/storageclasses?",
            200,
            json!({"apiVersion": "storage.k8s.io/v1", "kind": "StorageClassList", "metadata": {},
                   "items": [class("sfs", burst_rules::volumes::PROVISIONER_SFS),
                             class("local", "kubernetes.io/no-provisioner")]}),
        ),
        expect(
            Method::GET,
            "/api/v1/namespaces/shop/persistentvolumeclaims?",
            200,
            json!({"apiVersion": "v1", "kind": "PersistentVolumeClaimList", "metadata": {},
                   "items": [claim("shared", "sfs"), claim("scratch", "local")]}),
        ),
    ]
}

#[rstest]
#[case::on_sfs("shared", true)]
#[case::on_a_local_volume("scratch", false)]
#[case::that_does_not_exist("missing", false)]
#[tokio::test]
async fn a_claims_storage_class_is_read_from_the_cluster_to_judge_it(
    #[case] claim: &str,
    #[case] bursts: bool,
) {
    let pod = pod(json!({"labels": enforce()}), claim_volume(claim));
    let (answer, _) = judged(RELEASE, "/mutate", create(pod), storage_lists()).await;
    assert_eq!(answer.allowed, bursts, "{}", answer.result.message);
    if bursts {
        assert!(tolerates_the_virtual_node(&patch_of(&answer)));
    } else {
        assert!(
            answer.result.message.contains("\"data\""),
            "{}",
            answer.result.message
        );
    }
}

/// A pod Volcano schedules, labelled `enforce`, with a claim on SFS.
fn volcano_pod() -> Value {
    let mut pod = pod(json!({"labels": enforce()}), claim_volume("shared"));
    pod["spec"]["schedulerName"] = "volcano".into();
    pod
}

/// The read of Deployment `volcano-scheduler` in `namespace`: absent, or running `image`.
fn volcano_scheduler(namespace: &'static str, image: Option<&str>) -> Expect {
    let path = match namespace {
        "volcano-system" => "/apis/apps/v1/namespaces/volcano-system/deployments/volcano-scheduler",
        _ => "/apis/apps/v1/namespaces/kube-system/deployments/volcano-scheduler",
    };
    match image {
        None => expect(Method::GET, path, 404, failure(404, "NotFound")),
        Some(image) => expect(
            Method::GET,
            path,
            200,
            json!({
                "apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": "volcano-scheduler", "namespace": namespace},
                "spec": {
                    "selector": {"matchLabels": {"app": "volcano-scheduler"}},
                    "template": {"spec": {"containers": [{"name": "s", "image": image}]}},
                },
            }),
        ),
    }
}

#[tokio::test]
async fn volcano_1_17_10_in_kube_system_keeps_a_pod_with_cloud_storage_local_and_is_remembered() {
    let (state, mut api) = webhook(RELEASE);
    let mut script = vec![
        volcano_scheduler("volcano-system", None),
        volcano_scheduler("kube-system", Some("volcanosh/vc-scheduler:v1.17.10")),
    ];
    script.extend(storage_lists());
    script.push(event_posted(201, Value::Null));
    let (answer, bodies) = admit_with(
        state.clone(),
        &mut api,
        "/mutate",
        create(volcano_pod()),
        script,
    )
    .await;
    assert!(answer.allowed);
    assert_eq!(patch_of(&answer), Value::Null, "kept local");
    let message = bodies[4]["message"].as_str().expect("the event's message");
    assert!(message.contains("Volcano 1.17.10"), "{message}");

    // Within the cache's time the version is not read again.
    let mut script = storage_lists();
    script.push(event_posted(201, Value::Null));
    let (again, _) = admit_with(state, &mut api, "/mutate", create(volcano_pod()), script).await;
    assert_eq!(patch_of(&again), Value::Null, "still kept local");
}

#[tokio::test]
async fn volcano_found_in_volcano_system_is_not_looked_for_further_and_a_later_one_lets_the_pod_burst()
 {
    let mut script = vec![volcano_scheduler(
        "volcano-system",
        Some("volcanosh/vc-scheduler:v1.17.11"),
    )];
    script.extend(storage_lists());
    let (answer, _) = judged(RELEASE, "/mutate", create(volcano_pod()), script).await;
    assert!(tolerates_the_virtual_node(&patch_of(&answer)));
}

#[tokio::test]
async fn a_pod_without_volcano_or_claims_reads_no_volcano_and_no_storage() {
    let mut pod = pod(json!({"labels": enforce()}), json!([]));
    pod["spec"]["schedulerName"] = "volcano".into();
    let (answer, _) = judged(RELEASE, "/mutate", create(pod), vec![]).await;
    assert!(tolerates_the_virtual_node(&patch_of(&answer)));
}

/// A Service `web` of `type_` selecting `app=web`, in namespace `namespace` if any.
fn service(type_: &str, namespace: Option<&str>) -> Value {
    let mut service = json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "web"},
        "spec": {"type": type_, "selector": {"app": "web"}, "ports": [{"port": 80}]},
    });
    if let Some(namespace) = namespace {
        service["metadata"]["namespace"] = namespace.into();
    }
    service
}

/// The LIST of the pods `app=web` in `namespace`, answered with one pod bound to `node`.
fn pods_selected(path: &'static str, node: &str) -> Expect {
    expect(
        Method::GET,
        path,
        200,
        json!({"apiVersion": "v1", "kind": "PodList", "metadata": {}, "items": [
            {"metadata": {"name": "web-1-abcde", "namespace": NS, "labels": {"app": "web"}},
             "spec": {"nodeName": node, "containers": [{"name": "app", "image": "nginx"}]}},
        ]}),
    )
}

const SELECTED_IN_SHOP: &str = "/api/v1/namespaces/shop/pods?&labelSelector=app%3Dweb";

#[rstest]
#[case::create_below_the_gate(
    "CREATE",
    Release::new(1, 5, 4),
    crate::node::DEFAULT_NODE_NAME,
    false
)]
#[case::update_below_the_gate(
    "UPDATE",
    Release::new(1, 5, 4),
    crate::node::DEFAULT_NODE_NAME,
    false
)]
#[case::create_at_the_gate("CREATE", Release::new(1, 5, 5), crate::node::DEFAULT_NODE_NAME, true)]
#[case::selecting_only_local_pods("CREATE", Release::new(1, 5, 4), "node-1", true)]
#[tokio::test]
async fn a_load_balancer_service_is_judged_by_the_pods_its_selector_finds(
    #[case] operation: &str,
    #[case] release: Release,
    #[case] node: &str,
    #[case] allowed: bool,
) {
    let (answer, _) = judged(
        release,
        "/validate",
        review(
            "Service",
            operation,
            Some(NS),
            service("LoadBalancer", None),
        ),
        vec![pods_selected(SELECTED_IN_SHOP, node)],
    )
    .await;
    assert_eq!(answer.allowed, allowed, "{}", answer.result.message);
    if !allowed {
        assert!(
            answer.result.message.starts_with("service shop/web: "),
            "{}",
            answer.result.message
        );
    }
}

#[rstest]
#[case::a_cluster_ip("ClusterIP", "CREATE")]
#[case::a_deleted_load_balancer("LoadBalancer", "DELETE")]
#[tokio::test]
async fn other_services_and_other_operations_are_admitted_without_a_pod_list(
    #[case] type_: &str,
    #[case] operation: &str,
) {
    let (answer, _) = judged(
        Release::new(1, 5, 4),
        "/validate",
        review("Service", operation, Some(NS), service(type_, None)),
        vec![],
    )
    .await;
    assert!(answer.allowed);
}

#[tokio::test]
async fn a_load_balancer_without_a_selector_selects_nothing_and_lists_no_pods() {
    let mut service = service("LoadBalancer", None);
    service["spec"].as_object_mut().unwrap().remove("selector");
    let (answer, _) = judged(
        Release::new(1, 5, 4),
        "/validate",
        review("Service", "CREATE", Some(NS), service),
        vec![],
    )
    .await;
    assert!(answer.allowed);
}

#[rstest]
#[case::from_its_metadata(
    Some("other"),
    "/api/v1/namespaces/other/pods?&labelSelector=app%3Dweb",
    "service other/web: "
)]
#[case::default(
    None,
    "/api/v1/namespaces/default/pods?&labelSelector=app%3Dweb",
    "service default/web: "
)]
#[tokio::test]
async fn a_service_reviewed_without_a_namespace_is_judged_in_its_own_or_default(
    #[case] namespace: Option<&str>,
    #[case] path: &'static str,
    #[case] named: &str,
) {
    let mut review = review(
        "Service",
        "CREATE",
        None,
        service("LoadBalancer", namespace),
    );
    // A Service named by the request only (as an API server sends a generated name's review).
    review["request"]["object"]["metadata"]
        .as_object_mut()
        .unwrap()
        .remove("name");
    review["request"]["name"] = "web".into();
    let (answer, _) = judged(
        Release::new(1, 5, 4),
        "/validate",
        review,
        vec![pods_selected(path, crate::node::DEFAULT_NODE_NAME)],
    )
    .await;
    assert!(!answer.allowed);
    assert!(
        answer.result.message.starts_with(named),
        "{}",
        answer.result.message
    );
}

#[tokio::test]
async fn a_service_whose_pods_cannot_be_listed_is_refused_naming_it() {
    let (answer, _) = judged(
        Release::new(1, 5, 4),
        "/validate",
        review("Service", "CREATE", Some(NS), service("LoadBalancer", None)),
        vec![expect(
            Method::GET,
            SELECTED_IN_SHOP,
            500,
            failure(500, "InternalError"),
        )],
    )
    .await;
    assert!(!answer.allowed);
    assert!(
        answer
            .result
            .message
            .starts_with("bursting webhook cannot list the pods Service shop/web selects: "),
        "{}",
        answer.result.message
    );
}

#[tokio::test]
async fn healthz_answers_ok() {
    let (state, _api) = webhook(RELEASE);
    let request = axum::http::Request::get("/healthz")
        .body(Body::empty())
        .unwrap();
    let answer = router(state).oneshot(request).await.unwrap();
    assert_eq!(answer.status(), 200);
    let body = axum::body::to_bytes(answer.into_body(), 64).await.unwrap();
    assert_eq!(&body[..], b"ok");
}

#[tokio::test]
async fn the_owner_cache_is_filled_by_watches_of_every_namespaces_replica_sets_and_deployments() {
    let (client, mut api) = scripted_api::client();
    let (cache, run) = OwnerCache::start(&client);
    let filled = async {
        tokio::pin!(run);
        tokio::select! {
            () = &mut run => panic!("the owner cache's watches ended"),
            _ = cache.replica_sets.wait_until_ready() => {}
        }
        tokio::select! {
            () = &mut run => panic!("the owner cache's watches ended"),
            _ = cache.deployments.wait_until_ready() => {}
        }
    };
    let ((), seen) = scripted_api::served(&mut api, filled, |_, path| {
        if path.contains("watch=true") {
            return None;
        }
        let named = |name: &str| {
            json!({"name": name, "namespace": NS, "resourceVersion": "5",
                                          "labels": { SEED_LABEL: name }})
        };
        if path.starts_with("/apis/apps/v1/replicasets?") {
            Some((200, scripted_api::metadata_list([named("web-1")])))
        } else if path.starts_with("/apis/apps/v1/deployments?") {
            Some((200, scripted_api::metadata_list([named("web")])))
        } else {
            Some((404, failure(404, "NotFound")))
        }
    })
    .await;
    assert!(
        seen.iter().all(|r| r.starts_with("GET /apis/apps/v1/")),
        "{seen:?}"
    );
    let label = |meta: Option<ObjectMeta>| meta.and_then(|m| m.labels?.get(SEED_LABEL).cloned());
    assert_eq!(
        label(cache.get("apps/v1", "ReplicaSet", NS, "web-1")).as_deref(),
        Some("web-1")
    );
    assert_eq!(
        label(cache.get("apps/v1", "Deployment", NS, "web")).as_deref(),
        Some("web")
    );
}
