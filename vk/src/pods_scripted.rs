//! The pod controller against a scripted API server (kube-rs's `ApiServerVerifier` pattern with
//! `tower-test`): each test drives one reconcile, status round or orphan sweep and checks the
//! requests it sends, in order, and the provider calls it makes. No cluster: the cluster tier
//! (the suites) stays for end-to-end truth; this one pins the request sequences. The
//! controller's clock follows tokio's, so a test with paused time can run out a grace period.

use std::collections::VecDeque;
use std::future::Future;

use http::{Method, Request, Response};
use k8s_openapi::api::core::v1::{
    ContainerState, ContainerStateTerminated, ContainerStatus, PodSpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::client::Body;
use kube::runtime::watcher;
use scripted_api::{Expect, Handle, expect, failure, scripted};
use serde_json::{Value, json};

use super::*;
use crate::{ProviderResult, RemotePod};

/// A provider that records its calls, answers `create_pod` from a script and lists `remote`.
#[derive(Default)]
struct Fake {
    calls: Mutex<Vec<String>>,
    creates: Mutex<VecDeque<ProviderResult<()>>>,
    remote: Mutex<Vec<RemotePod>>,
    /// Held by a test to keep a status round's provider answer from coming yet.
    hold: tokio::sync::Mutex<()>,
}

impl Fake {
    fn calls(&self) -> Vec<String> {
        lock(&self.calls).clone()
    }
}

impl Provider for Fake {
    async fn create_pod(&self, pod: &Pod) -> ProviderResult<()> {
        lock(&self.calls).push(format!("create {}", PodKey::of(pod)));
        lock(&self.creates).pop_front().unwrap_or(Ok(()))
    }

    async fn update_pod(&self, pod: &Pod) -> ProviderResult<()> {
        lock(&self.calls).push(format!("update {}", PodKey::of(pod)));
        Ok(())
    }

    /// Recorded as `delete ns/name uid`, with ` grace=N` when the pod carries a grace period.
    async fn delete_pod(&self, pod: &Pod) -> ProviderResult<()> {
        let grace = pod
            .metadata
            .deletion_grace_period_seconds
            .map(|g| format!(" grace={g}"))
            .unwrap_or_default();
        lock(&self.calls).push(format!("delete {} {}{grace}", PodKey::of(pod), uid(pod)));
        Ok(())
    }

    async fn list_pods(&self) -> ProviderResult<Vec<RemotePod>> {
        let _answer_now = self.hold.lock().await;
        Ok(lock(&self.remote).clone())
    }
}

/// When the tests' clock starts: 30 s before [`terminating`] pods' grace period ends.
const T0: i64 = 1_700_000_030;

/// The controller on a scripted API server, its cache's writer and the server's handle.
fn controller(
    fake: Fake,
) -> (
    Arc<PodController<Fake>>,
    reflector::store::Writer<CachedPod>,
    Handle,
) {
    let (client, handle) = scripted_api::client();
    let start = tokio::time::Instant::now();
    let controller = Arc::new(
        PodController::new(client, &Config::default(), Arc::new(fake))
            .with_clock(move || Timestamp::from_second(T0).unwrap() + start.elapsed()),
    );
    let writer = lock(&controller.writer).take().expect("the store's writer");
    (controller, writer, handle)
}

fn pod(name: &str, pod_uid: &str) -> Pod {
    Pod {
        metadata: ObjectMeta {
            namespace: Some("ns".into()),
            name: Some(name.into()),
            uid: Some(pod_uid.into()),
            resource_version: Some("7".into()),
            creation_timestamp: Some(Time(Timestamp::from_second(1_700_000_000).unwrap())),
            ..ObjectMeta::default()
        },
        spec: Some(PodSpec {
            node_name: Some("virtual-kubelet".into()),
            ..PodSpec::default()
        }),
        status: Some(PodStatus {
            phase: Some("Pending".into()),
            ..PodStatus::default()
        }),
    }
}

/// `pod` deleted with a 30 s grace period, which ends 30 s after the tests' clock starts.
fn terminating(mut pod: Pod) -> Pod {
    pod.metadata.deletion_timestamp = Some(Time(Timestamp::from_second(T0 + 30).unwrap()));
    pod.metadata.deletion_grace_period_seconds = Some(30);
    pod
}

/// `pod` deleted so long ago that its deletion deadline has passed.
fn overdue(mut pod: Pod) -> Pod {
    pod.metadata.deletion_timestamp = Some(Time(Timestamp::from_second(T0 - 3600).unwrap()));
    pod.metadata.deletion_grace_period_seconds = Some(30);
    pod
}

/// The provider's view of `name` (`pod_uid`) with `status`.
fn remote(name: &str, pod_uid: &str, status: Option<PodStatus>) -> RemotePod {
    RemotePod {
        namespace: "ns".into(),
        name: name.into(),
        uid: pod_uid.into(),
        status,
        ..RemotePod::default()
    }
}

/// The next key the controller queued, if one comes within a minute (of tokio's time).
async fn queued(c: &PodController<Fake>) -> Option<PodKey> {
    let key = tokio::time::timeout(std::time::Duration::from_secs(60), c.queue.next())
        .await
        .ok()
        .flatten()?;
    c.queue.done(&key);
    Some(key)
}

fn cache(writer: &mut reflector::store::Writer<CachedPod>, pod: &Pod) {
    writer.apply_watcher_event(&watcher::Event::Apply(CachedPod::from_pod(pod)));
}

fn key(name: &str) -> PodKey {
    PodKey {
        namespace: "ns".into(),
        name: name.into(),
    }
}

/// The status patch of pod `web` (u1), answered with the pod.
fn web_status_patch() -> Expect {
    expect(
        Method::PATCH,
        "/api/v1/namespaces/ns/pods/web/status",
        200,
        json!(pod("web", "u1")),
    )
}

fn not_found() -> Value {
    failure(404, "NotFound")
}

/// One reconcile of `name` that must succeed without a request to the API server.
async fn reconcile_sending_nothing(c: &PodController<Fake>, api: &mut Handle, name: &str) {
    scripted(api, c.reconcile(&key(name)), vec![])
        .await
        .0
        .unwrap();
}

#[tokio::test]
async fn a_new_pod_is_created_once_and_an_unchanged_one_is_left_alone() {
    let (c, mut writer, mut api) = controller(Fake::default());
    cache(&mut writer, &pod("web", "u1"));
    reconcile_sending_nothing(&c, &mut api, "web").await;
    reconcile_sending_nothing(&c, &mut api, "web").await;
    assert_eq!(c.provider.calls(), ["create ns/web"]);
}

/// The controller after `web` (u1) was created with the provider answering `error`: the
/// reconcile sends a Warning event, then a status patch; returns their bodies too.
async fn refused_with(
    error: ProviderError,
) -> (
    Arc<PodController<Fake>>,
    reflector::store::Writer<CachedPod>,
    Handle,
    Vec<Value>,
) {
    let fake = Fake::default();
    lock(&fake.creates).push_back(Err(error));
    let (c, mut writer, mut api) = controller(fake);
    cache(&mut writer, &pod("web", "u1"));
    let (done, bodies) = scripted(
        &mut api,
        c.reconcile(&key("web")),
        vec![
            expect(
                Method::POST,
                "/apis/events.k8s.io/v1/namespaces/ns/events",
                201,
                Value::Null,
            ),
            web_status_patch(),
        ],
    )
    .await;
    done.unwrap();
    (c, writer, api, bodies)
}

#[tokio::test]
async fn a_refused_pod_gets_a_warning_event_and_its_status_says_why_and_is_not_retried() {
    let (c, _writer, mut api, bodies) =
        refused_with(ProviderError::InvalidInput("no such flavour".into())).await;
    assert_eq!(bodies[0]["reason"], "ProviderCreateFailed");
    assert_eq!(bodies[0]["type"], "Warning");
    assert_eq!(bodies[0]["note"], "no such flavour");
    assert_eq!(bodies[1]["status"]["reason"], "ProviderFailed");
    assert_eq!(bodies[1]["status"]["message"], "no such flavour");
    // Refused and unchanged: neither the provider nor the API server hears of it again.
    reconcile_sending_nothing(&c, &mut api, "web").await;
    assert_eq!(c.provider.calls(), ["create ns/web"]);
}

/// The grace-0 delete of `web` (u1) that finishes it, answered with `status`.
fn web_finished(status: u16) -> Expect {
    let answer = if status == 404 {
        not_found()
    } else {
        json!(terminating(pod("web", "u1")))
    };
    expect(
        Method::DELETE,
        "/api/v1/namespaces/ns/pods/web",
        status,
        answer,
    )
}

/// A running container `app`, or one terminated by SIGTERM with `exit_code`.
fn app_status(exit_code: Option<i32>) -> PodStatus {
    let state = exit_code.map(|exit_code| ContainerState {
        terminated: Some(ContainerStateTerminated {
            exit_code,
            reason: Some("Error".into()),
            ..ContainerStateTerminated::default()
        }),
        ..ContainerState::default()
    });
    PodStatus {
        phase: Some("Running".into()),
        container_statuses: Some(vec![ContainerStatus {
            name: "app".into(),
            ready: exit_code.is_none(),
            state,
            ..ContainerStatus::default()
        }]),
        ..PodStatus::default()
    }
}

/// Pod `web` (u1) created, listed by the provider as running, then deleted with a 30 s grace
/// period: the provider is asked to delete it, the pod is kept (no request). No status round yet.
async fn created_then_deleted() -> (
    Arc<PodController<Fake>>,
    reflector::store::Writer<CachedPod>,
    Handle,
) {
    let fake = Fake::default();
    *lock(&fake.remote) = vec![remote("web", "u1", Some(app_status(None)))];
    let (c, mut writer, mut api) = controller(fake);
    cache(&mut writer, &pod("web", "u1"));
    reconcile_sending_nothing(&c, &mut api, "web").await;
    cache(&mut writer, &terminating(pod("web", "u1")));
    reconcile_sending_nothing(&c, &mut api, "web").await;
    (c, writer, api)
}

#[tokio::test]
async fn a_graceful_delete_asks_the_provider_once_keeps_the_pod_while_the_remote_pod_is_listed_and_finishes_it_at_grace_0_by_uid_once_gone()
 {
    let (c, mut writer, mut api) = created_then_deleted().await;
    assert_eq!(
        c.provider.calls(),
        ["create ns/web", "delete ns/web u1 grace=30"]
    );
    // The remote container got its SIGTERM and stopped: the terminating pod shows it.
    *lock(&c.provider.remote) = vec![remote("web", "u1", Some(app_status(Some(143))))];
    let (_, bodies) = scripted(&mut api, c.sync_statuses(), vec![web_status_patch()]).await;
    let container = &bodies[0]["status"]["containerStatuses"][0];
    assert_eq!(container["state"]["terminated"]["exitCode"], 143);
    // The patch comes back as an update: the provider is not asked again, the pod is kept.
    reconcile_sending_nothing(&c, &mut api, "web").await;
    assert_eq!(c.provider.calls().len(), 2);
    // The remote pod is gone: the status round says so (no request) and queues the pod...
    lock(&c.provider.remote).clear();
    scripted(&mut api, c.sync_statuses(), vec![]).await;
    assert_eq!(queued(&c).await, Some(key("web")));
    // ...whose reconcile finishes it: grace 0, by UID.
    let (done, bodies) =
        scripted(&mut api, c.reconcile(&key("web")), vec![web_finished(200)]).await;
    done.unwrap();
    assert_eq!(bodies[0]["gracePeriodSeconds"], 0);
    assert_eq!(bodies[0]["preconditions"]["uid"], "u1");
    // Our own grace-0 delete comes back as an update (grace 0) while the pod is still cached:
    // the cluster delete is repeated (gone now: 404 is fine), the provider is not asked again
    // (asking with grace 0 would cut the remote pod's grace short).
    let mut echo = terminating(pod("web", "u1"));
    echo.metadata.deletion_grace_period_seconds = Some(0);
    cache(&mut writer, &echo);
    let (done, _) = scripted(&mut api, c.reconcile(&key("web")), vec![web_finished(404)]).await;
    done.unwrap();
    assert_eq!(
        c.provider.calls(),
        ["create ns/web", "delete ns/web u1 grace=30"]
    );
}

#[tokio::test(start_paused = true)]
async fn a_terminating_pod_whose_remote_pod_never_goes_is_finished_once_its_grace_period_and_the_slack_are_over()
 {
    let fake = Fake::default();
    *lock(&fake.remote) = vec![remote("web", "u1", Some(app_status(None)))];
    let (c, mut writer, mut api) = controller(fake);
    cache(&mut writer, &terminating(pod("web", "u1")));
    let asked = tokio::time::Instant::now();
    reconcile_sending_nothing(&c, &mut api, "web").await;
    assert_eq!(c.provider.calls(), ["delete ns/web u1 grace=30"]);
    // Still listed, so every round has it: nothing to finish.
    let (_, bodies) = scripted(&mut api, c.sync_statuses(), vec![web_status_patch()]).await;
    assert_eq!(bodies[0]["status"]["phase"], "Running");
    // The recheck comes at the deadline: 30 s of grace left, plus the slack.
    assert_eq!(queued(&c).await, Some(key("web")));
    let deadline = std::time::Duration::from_secs(30) + TERMINATION_SLACK;
    let waited = asked.elapsed();
    // NB: tokio's timers tick in milliseconds.
    assert!(
        waited >= deadline && waited < deadline + std::time::Duration::from_secs(1),
        "{waited:?}"
    );
    let (done, bodies) =
        scripted(&mut api, c.reconcile(&key("web")), vec![web_finished(200)]).await;
    done.unwrap();
    assert_eq!(bodies[0]["preconditions"]["uid"], "u1");
    assert_eq!(c.provider.calls(), ["delete ns/web u1 grace=30"]);
}

#[tokio::test(start_paused = true)]
async fn a_terminating_pod_queues_one_recheck_however_often_it_is_reconciled() {
    let (c, mut writer, mut api) = controller(Fake::default());
    cache(&mut writer, &terminating(pod("web", "u1")));
    for _ in 0..3 {
        reconcile_sending_nothing(&c, &mut api, "web").await;
    }
    assert_eq!(queued(&c).await, Some(key("web")));
    assert_eq!(queued(&c).await, None);
}

#[tokio::test]
async fn a_shortened_grace_period_asks_the_provider_again_with_it() {
    let (c, mut writer, mut api) = controller(Fake::default());
    *lock(&c.provider.remote) = vec![remote("web", "u1", None)];
    let mut web = terminating(pod("web", "u1"));
    cache(&mut writer, &web);
    reconcile_sending_nothing(&c, &mut api, "web").await;
    // `kubectl delete --grace-period=1` on the terminating pod.
    web.metadata.deletion_grace_period_seconds = Some(1);
    web.metadata.deletion_timestamp = Some(Time(Timestamp::from_second(T0 + 1).unwrap()));
    cache(&mut writer, &web);
    reconcile_sending_nothing(&c, &mut api, "web").await;
    reconcile_sending_nothing(&c, &mut api, "web").await;
    assert_eq!(
        c.provider.calls(),
        ["delete ns/web u1 grace=30", "delete ns/web u1 grace=1"]
    );
}

#[tokio::test]
async fn a_terminating_pod_the_provider_never_had_is_finished_after_the_next_status_round() {
    let (c, mut writer, mut api) = controller(Fake::default());
    cache(&mut writer, &terminating(pod("web", "u1")));
    reconcile_sending_nothing(&c, &mut api, "web").await;
    scripted(&mut api, c.sync_statuses(), vec![]).await;
    assert_eq!(queued(&c).await, Some(key("web")));
    let (done, _) = scripted(&mut api, c.reconcile(&key("web")), vec![web_finished(200)]).await;
    done.unwrap();
}

#[tokio::test]
async fn a_pod_replaced_under_the_same_name_has_the_old_remote_pod_deleted_before_the_new_is_created()
 {
    let (c, mut writer, mut api) = controller(Fake::default());
    cache(&mut writer, &pod("web", "u1"));
    reconcile_sending_nothing(&c, &mut api, "web").await;
    cache(&mut writer, &pod("web", "u2"));
    reconcile_sending_nothing(&c, &mut api, "web").await;
    assert_eq!(
        c.provider.calls(),
        ["create ns/web", "delete ns/web u1", "create ns/web"]
    );
}

#[tokio::test]
async fn the_orphan_sweep_deletes_only_remote_pods_the_api_server_confirms_gone() {
    let remote = |name: &str, pod_uid: &str| remote(name, pod_uid, None);
    let fake = Fake::default();
    *lock(&fake.remote) = vec![
        remote("cached", "u1"),  // the cache has it: no request
        remote("gone", "u2"),    // the API server says 404: deleted
        remote("alive", "u3"),   // the API server has it (a slow cache): kept
        remote("reused", "u4"),  // the name holds another UID now: deleted
        remote("", "u5"),        // cannot be named: never deleted
        remote("anonymous", ""), // no UID to tell it by: never deleted
        RemotePod {
            namespace: String::new(), // nor without a namespace
            ..remote("nowhere", "u6")
        },
    ];
    let (c, mut writer, mut api) = controller(fake);
    cache(&mut writer, &pod("cached", "u1"));
    reconcile_sending_nothing(&c, &mut api, "cached").await;
    let (done, _) = scripted(
        &mut api,
        c.sweep_orphans(),
        vec![
            expect(
                Method::GET,
                "/api/v1/namespaces/ns/pods/gone",
                404,
                not_found(),
            ),
            expect(
                Method::GET,
                "/api/v1/namespaces/ns/pods/alive",
                200,
                json!(pod("alive", "u3")),
            ),
            expect(
                Method::GET,
                "/api/v1/namespaces/ns/pods/reused",
                200,
                json!(pod("reused", "u9")),
            ),
        ],
    )
    .await;
    assert_eq!(done.unwrap(), 2, "the two deleted are counted");
    assert_eq!(
        c.provider.calls(),
        [
            "create ns/cached",
            "delete ns/gone u2",
            "delete ns/reused u4"
        ]
    );
}

#[tokio::test]
async fn the_status_round_patches_a_changed_status_once_with_the_pods_resource_version() {
    let running = PodStatus {
        phase: Some("Running".into()),
        container_statuses: Some(vec![ContainerStatus {
            name: "app".into(),
            ready: true,
            ..ContainerStatus::default()
        }]),
        ..PodStatus::default()
    };
    let fake = Fake::default();
    *lock(&fake.remote) = vec![remote("web", "u1", Some(running))];
    let (c, mut writer, mut api) = controller(fake);
    cache(&mut writer, &pod("web", "u1"));
    reconcile_sending_nothing(&c, &mut api, "web").await;
    let (_, bodies) = scripted(&mut api, c.sync_statuses(), vec![web_status_patch()]).await;
    assert_eq!(bodies[0]["status"]["phase"], "Running");
    assert_eq!(bodies[0]["metadata"]["resourceVersion"], "7");
    // The cache has not caught up yet: the same status is not sent twice.
    scripted(&mut api, c.sync_statuses(), vec![]).await;
}

/// The provider's view of `name` running, with the annotation `size: 2u` for the cluster pod.
fn sized(name: &str) -> RemotePod {
    RemotePod {
        annotations: BTreeMap::from([("size".to_owned(), "2u".to_owned())]),
        ..remote(name, name, Some(running()))
    }
}

fn running() -> PodStatus {
    PodStatus {
        phase: Some("Running".into()),
        ..PodStatus::default()
    }
}

#[tokio::test]
async fn the_providers_annotations_ride_on_the_first_status_patch_and_are_not_sent_again() {
    let fake = Fake::default();
    *lock(&fake.remote) = vec![sized("web")];
    let (c, mut writer, mut api) = controller(fake);
    cache(&mut writer, &pod("web", "web"));
    reconcile_sending_nothing(&c, &mut api, "web").await;
    let (_, bodies) = scripted(&mut api, c.sync_statuses(), vec![web_status_patch()]).await;
    assert_eq!(bodies[0]["status"]["phase"], "Running");
    assert_eq!(
        bodies[0]["metadata"],
        json!({ "annotations": { "size": "2u" }, "resourceVersion": "7" }),
        "one write: the annotations with the status, guarded by the resourceVersion"
    );
    // The cache has not caught up yet: neither is sent twice.
    scripted(&mut api, c.sync_statuses(), vec![]).await;
}

#[tokio::test]
async fn a_pod_whose_status_is_current_gets_only_the_annotations_it_lacks() {
    let fake = Fake::default();
    *lock(&fake.remote) = vec![sized("web"), sized("db")];
    let (c, mut writer, mut api) = controller(fake);
    let current = |name: &str, annotations: &[(&str, &str)]| {
        let mut p = pod(name, name);
        p.status = Some(merge_status(p.status.as_ref(), &running()));
        p.metadata.annotations = Some(
            annotations
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        );
        p
    };
    // `web` has it (beside one of its own), `db` has another value.
    cache(
        &mut writer,
        &current("web", &[("size", "2u"), ("team", "a")]),
    );
    cache(&mut writer, &current("db", &[("size", "1u")]));
    reconcile_sending_nothing(&c, &mut api, "web").await;
    reconcile_sending_nothing(&c, &mut api, "db").await;
    let (_, bodies) = scripted(
        &mut api,
        c.sync_statuses(),
        vec![expect(
            Method::PATCH,
            "/api/v1/namespaces/ns/pods/db/status",
            200,
            json!(pod("db", "db")),
        )],
    )
    .await;
    assert_eq!(
        bodies[0]["metadata"]["annotations"],
        json!({ "size": "2u" })
    );
    assert_eq!(bodies[0]["status"]["phase"], "Running", "{}", bodies[0]);
}

#[tokio::test]
async fn a_created_pod_whose_spec_or_annotations_change_is_updated_and_only_then() {
    let (c, mut writer, mut api) = controller(Fake::default());
    let mut web = pod("web", "u1");
    cache(&mut writer, &web);
    reconcile_sending_nothing(&c, &mut api, "web").await;
    // A status change (the controller's own patch coming back) is not the provider's input.
    web.status.as_mut().unwrap().phase = Some("Running".into());
    cache(&mut writer, &web);
    reconcile_sending_nothing(&c, &mut api, "web").await;
    web.spec.as_mut().unwrap().active_deadline_seconds = Some(60);
    cache(&mut writer, &web);
    reconcile_sending_nothing(&c, &mut api, "web").await;
    web.metadata.annotations = Some([("a".to_owned(), "b".to_owned())].into());
    cache(&mut writer, &web);
    reconcile_sending_nothing(&c, &mut api, "web").await;
    assert_eq!(
        c.provider.calls(),
        ["create ns/web", "update ns/web", "update ns/web"]
    );
}

#[tokio::test]
async fn a_pod_that_vanished_from_the_cache_has_its_remote_pod_deleted_once() {
    let (c, mut writer, mut api) = controller(Fake::default());
    let web = pod("web", "u1");
    cache(&mut writer, &web);
    reconcile_sending_nothing(&c, &mut api, "web").await;
    writer.apply_watcher_event(&watcher::Event::Delete(CachedPod::from_pod(&web)));
    reconcile_sending_nothing(&c, &mut api, "web").await;
    // Forgotten: a second reconcile of the name finds nothing to do.
    reconcile_sending_nothing(&c, &mut api, "web").await;
    assert_eq!(c.provider.calls(), ["create ns/web", "delete ns/web u1"]);
}

#[tokio::test]
async fn a_failing_cluster_delete_fails_the_reconcile_so_it_is_retried() {
    let (c, mut writer, mut api) = controller(Fake::default());
    cache(&mut writer, &overdue(pod("web", "u1")));
    let unavailable = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "ServiceUnavailable", "code": 503, "message": "etcd is gone"});
    let (done, _) = scripted(
        &mut api,
        c.reconcile(&key("web")),
        vec![expect(
            Method::DELETE,
            "/api/v1/namespaces/ns/pods/web",
            503,
            unavailable,
        )],
    )
    .await;
    let error = done.expect_err("a 503 on the cluster delete is an error");
    assert!(error.to_string().contains("delete pod ns/web"), "{error}");
}

#[tokio::test]
async fn a_pod_the_provider_fails_gets_an_event_and_is_marked_failed_with_the_reason() {
    let (_, _, _, bodies) = refused_with(ProviderError::PodFailed {
        reason: "SoldOut".into(),
        message: "no 4_8 left".into(),
    })
    .await;
    assert_eq!(bodies[0]["reason"], "SoldOut");
    assert_eq!(bodies[1]["status"]["phase"], "Failed");
    assert_eq!(bodies[1]["status"]["reason"], "SoldOut");
    assert_eq!(bodies[1]["status"]["message"], "no 4_8 left");
}

#[tokio::test]
async fn a_created_pod_missing_from_the_provider_is_marked_failed_at_the_third_round_only() {
    let (c, mut writer, mut api) = controller(Fake::default());
    cache(&mut writer, &pod("web", "u1"));
    reconcile_sending_nothing(&c, &mut api, "web").await;
    // One or two misses can be a list racing a create.
    scripted(&mut api, c.sync_statuses(), vec![]).await;
    scripted(&mut api, c.sync_statuses(), vec![]).await;
    let (_, bodies) = scripted(&mut api, c.sync_statuses(), vec![web_status_patch()]).await;
    assert_eq!(bodies[0]["status"]["phase"], "Failed");
}

#[tokio::test]
async fn a_refused_pod_missing_from_the_provider_is_never_marked_lost() {
    let (c, _writer, mut api, _) =
        refused_with(ProviderError::InvalidInput("no such flavour".into())).await;
    for _ in 0..4 {
        scripted(&mut api, c.sync_statuses(), vec![]).await;
    }
}

/// A request the scripted API server holds, with the means to answer it.
type Held = (
    Request<Body>,
    tower_test::mock::SendResponse<Response<Body>>,
);

/// What the next request of the round is, or `None` once the round waits for answers and sends
/// nothing more (paused time moves on only when every task waits; no wall-clock wait).
async fn next_sent<T>(
    api: &mut Handle,
    round: &mut std::pin::Pin<&mut impl Future<Output = T>>,
) -> Option<Held> {
    tokio::select! {
        _ = round.as_mut() => panic!("the round ended with status patches unanswered"),
        next = api.next_request() => Some(next.expect("the client is gone")),
        () = tokio::time::sleep(Duration::from_secs(60)) => None,
    }
}

fn answer_with_pod(send: tower_test::mock::SendResponse<Response<Body>>) {
    let body = serde_json::to_vec(&pod("web", "u1")).unwrap();
    send.send_response(
        Response::builder()
            .status(200)
            .body(Body::from(body))
            .unwrap(),
    );
}

#[tokio::test(start_paused = true)]
async fn the_status_round_keeps_its_bound_of_patches_in_flight_and_no_more() {
    let running = PodStatus {
        phase: Some("Running".into()),
        ..PodStatus::default()
    };
    let n = STATUS_PATCHES_IN_FLIGHT + 2;
    let names: Vec<String> = (0..n).map(|i| format!("web-{i}")).collect();
    let fake = Fake::default();
    *lock(&fake.remote) = names
        .iter()
        .map(|name| remote(name, name, Some(running.clone())))
        .collect();
    let (c, mut writer, mut api) = controller(fake);
    for name in &names {
        cache(&mut writer, &pod(name, name));
        reconcile_sending_nothing(&c, &mut api, name).await;
    }
    let round = c.sync_statuses();
    tokio::pin!(round);
    let mut held = Vec::new();
    while let Some(sent) = next_sent(&mut api, &mut round).await {
        held.push(sent);
    }
    // All at once, not one after another; but no more than the bound.
    assert_eq!(held.len(), STATUS_PATCHES_IN_FLIGHT);
    let mut patched = Vec::new();
    for _ in 0..2 {
        let (request, send) = held.remove(0);
        patched.push(request.uri().path().to_owned());
        answer_with_pod(send);
        // An answer frees one place, and only one.
        held.push(
            next_sent(&mut api, &mut round)
                .await
                .expect("the next patch"),
        );
        assert!(next_sent(&mut api, &mut round).await.is_none());
    }
    for (request, send) in held {
        patched.push(request.uri().path().to_owned());
        answer_with_pod(send);
    }
    tokio::time::timeout(Duration::from_secs(10), round)
        .await
        .expect("the round ends once its patches are answered");
    patched.sort();
    let mut expected: Vec<String> = names
        .iter()
        .map(|name| format!("/api/v1/namespaces/ns/pods/{name}/status"))
        .collect();
    expected.sort();
    assert_eq!(patched, expected, "each changed pod patched once");
}

/// The next key queued without waiting for a timer (a recheck at a pod's deletion deadline
/// comes tens of seconds later), on tokio's paused clock.
async fn queued_at_once(c: &PodController<Fake>) -> Option<PodKey> {
    let key = tokio::time::timeout(Duration::from_secs(1), c.queue.next())
        .await
        .ok()
        .flatten()?;
    c.queue.done(&key);
    Some(key)
}

#[tokio::test(start_paused = true)]
async fn the_first_round_after_the_delete_that_lacks_the_remote_pod_queues_the_pod_at_once() {
    // Deleted before any status round: the provider is asked, then its remote pod goes.
    let (c, _writer, mut api) = created_then_deleted().await;
    lock(&c.provider.remote).clear();
    scripted(&mut api, c.sync_statuses(), vec![]).await;
    assert_eq!(queued_at_once(&c).await, Some(key("web")));
}

#[tokio::test(start_paused = true)]
async fn a_provider_answer_asked_for_before_the_delete_does_not_count_as_the_remote_pod_gone() {
    let (c, mut writer, mut api) = controller(Fake::default());
    cache(&mut writer, &pod("web", "u1"));
    reconcile_sending_nothing(&c, &mut api, "web").await;
    // A round asks the provider, whose answer (without the pod: not created there yet, say)
    // is held while the pod is deleted and the provider asked to delete it.
    let held = c.provider.hold.lock().await;
    let round = c.sync_statuses();
    tokio::pin!(round);
    assert!(futures::poll!(round.as_mut()).is_pending());
    cache(&mut writer, &terminating(pod("web", "u1")));
    reconcile_sending_nothing(&c, &mut api, "web").await;
    assert_eq!(
        c.provider.calls(),
        ["create ns/web", "delete ns/web u1 grace=30"]
    );
    drop(held);
    scripted(&mut api, round, vec![]).await;
    assert_eq!(
        queued_at_once(&c).await,
        None,
        "that answer is older than the delete"
    );
    // The next round's answer is not.
    scripted(&mut api, c.sync_statuses(), vec![]).await;
    assert_eq!(queued_at_once(&c).await, Some(key("web")));
}

#[tokio::test]
async fn a_pod_listed_without_a_status_between_misses_starts_its_count_of_misses_again() {
    let (c, mut writer, mut api) = controller(Fake::default());
    cache(&mut writer, &pod("web", "u1"));
    reconcile_sending_nothing(&c, &mut api, "web").await;
    for _ in 0..2 {
        scripted(&mut api, c.sync_statuses(), vec![]).await;
    }
    // Listed, with no status to report yet: present, nothing to patch.
    *lock(&c.provider.remote) = vec![remote("web", "u1", None)];
    scripted(&mut api, c.sync_statuses(), vec![]).await;
    lock(&c.provider.remote).clear();
    // Two misses again are not yet three in a row...
    for _ in 0..2 {
        scripted(&mut api, c.sync_statuses(), vec![]).await;
    }
    // ...the third is.
    let (_, bodies) = scripted(&mut api, c.sync_statuses(), vec![web_status_patch()]).await;
    assert_eq!(bodies[0]["status"]["phase"], "Failed");
}

/// `pod` as a stub the cluster never stored (no creation time): no event is published for it,
/// so a worker's failed sync sends no request.
fn stub(mut pod: Pod) -> Pod {
    pod.metadata.creation_timestamp = None;
    pod
}

#[rstest::rstest]
#[case::transient(ProviderError::transient_msg("CCI answered 503"), 2)]
#[case::not_retryable(ProviderError::NotImplemented("create_pod"), 1)]
#[tokio::test(start_paused = true)]
async fn the_workers_retry_a_failed_sync_only_when_its_error_may_go_away(
    #[case] error: ProviderError,
    #[case] creates: usize,
) {
    let fake = Fake::default();
    lock(&fake.creates).push_back(Err(error));
    let (c, mut writer, _api) = controller(fake);
    cache(&mut writer, &stub(pod("web", "u1")));
    c.queue.add(key("web"));
    let worker = tokio::spawn(Arc::clone(&c).work());
    // On the paused clock: longer than the longest backoff, so a retry, if any, has come.
    tokio::time::sleep(crate::DEFAULT_RETRY_MAX * 2).await;
    worker.abort();
    assert_eq!(c.provider.calls(), vec!["create ns/web"; creates]);
}

#[tokio::test]
async fn the_watch_lists_the_nodes_pods_into_the_cache_queues_each_and_says_ready() {
    let (client, mut api) = scripted_api::client();
    let c = Arc::new(PodController::new(
        client,
        &Config::default(),
        Arc::new(Fake::default()),
    ));
    let watching = tokio::spawn(Arc::clone(&c).watch());
    let (request, send) = tokio::time::timeout(Duration::from_secs(10), api.next_request())
        .await
        .expect("the watch lists the pods")
        .expect("the client is alive");
    let uri = request.uri().to_string();
    assert!(
        uri.starts_with("/api/v1/pods?") && uri.contains("spec.nodeName%3Dvirtual-kubelet"),
        "{uri}"
    );
    let list = json!({"apiVersion": "v1", "kind": "PodList", "metadata": {"resourceVersion": "9"},
        "items": [pod("web", "u1")]});
    send.send_response(
        Response::builder()
            .body(Body::from(serde_json::to_vec(&list).unwrap()))
            .unwrap(),
    );
    let ready = tokio::time::timeout(Duration::from_secs(10), c.ready()).await;
    assert_eq!(ready, Ok(true));
    assert_eq!(queued(&c).await, Some(key("web")));
    assert!(c.store().get(&key("web").object_ref()).is_some());
    watching.abort();
}

#[tokio::test]
async fn the_cache_is_never_ready_when_its_watch_ends_before_the_first_list() {
    let (c, writer, _api) = controller(Fake::default());
    drop(writer);
    assert!(!c.ready().await);
}

/// A provider's wait for cluster object `kind` `ns/name`.
fn waiting_for(kind: &str, name: &str) -> ProviderError {
    ProviderError::Waiting {
        message: format!("waiting for {kind} ns/{name}"),
        object: Box::new(k8s_openapi::api::core::v1::ObjectReference {
            api_version: Some("v1".into()),
            kind: Some(kind.into()),
            namespace: Some("ns".into()),
            name: Some(name.into()),
            ..Default::default()
        }),
    }
}

#[tokio::test]
async fn a_pod_waiting_for_one_object_then_another_gets_a_warning_naming_each() {
    let fake = Fake::default();
    lock(&fake.creates).push_back(Err(waiting_for("ConfigMap", "cfg")));
    lock(&fake.creates).push_back(Err(waiting_for("Secret", "sec")));
    let (c, mut writer, mut api) = controller(fake);
    cache(&mut writer, &pod("web", "u1"));
    // NB: a new event each (POST), not the first one's count raised (a PATCH): the recorder
    // groups events by pod, reason, action and related object, never by message.
    for object in ["cfg", "sec"] {
        let (done, bodies) = scripted(
            &mut api,
            c.reconcile(&key("web")),
            vec![expect(
                Method::POST,
                "/apis/events.k8s.io/v1/namespaces/ns/events",
                201,
                Value::Null,
            )],
        )
        .await;
        assert!(done.is_err(), "a wait is an error the workers retry");
        assert_eq!(bodies[0]["type"], "Warning");
        assert_eq!(bodies[0]["related"]["name"], object);
        assert!(
            bodies[0]["note"].as_str().unwrap().contains(object),
            "{}",
            bodies[0]
        );
    }
}
