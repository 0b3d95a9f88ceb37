//! The store without HTTP: lifecycle, deletion, faults, billing, peaks, watch history.

use std::time::Duration;

use cci_api::Pod;
use k8s_openapi::api::core::v1::{Container, PodSpec, ResourceRequirements};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use rstest::rstest;

use super::*;
use crate::faults::{Fault, FaultSpec, Resource, Scope};
use crate::{BILLING_FINALIZER, DEFAULT_GRACE_SECONDS, DEFAULT_NAMESPACE_TERMINATION};

const DELAY: Duration = Duration::from_millis(500);
const BACKOFF: Duration = Duration::from_secs(10);
const STOP: Duration = Duration::from_secs(2);

fn store() -> (Store, Instant) {
    let now = Instant::now();
    let epoch = Epoch {
        instant: now,
        wall: Timestamp::from_second(1_700_000_000).unwrap(),
    };
    let config = MockConfig::default()
        .with_running_after(DELAY)
        .with_restart_backoff(BACKOFF)
        .with_stop_time(STOP)
        .with_watch_history(100)
        .with_network_ready_after(Duration::ZERO);
    (Store::new(config, epoch, 42), now)
}

fn namespace(name: &str) -> Namespace {
    Namespace::new(ObjectMeta {
        name: Some(name.into()),
        ..ObjectMeta::default()
    })
}

fn resources(cpu: &str, memory: &str) -> ResourceRequirements {
    let both = BTreeMap::from([
        ("cpu".to_owned(), Quantity(cpu.into())),
        ("memory".to_owned(), Quantity(memory.into())),
    ]);
    ResourceRequirements {
        requests: Some(both.clone()),
        limits: Some(both),
        claims: None,
    }
}

fn pod(name: &str, labels: &[(&str, &str)]) -> Pod {
    Pod::new(
        ObjectMeta {
            name: Some(name.into()),
            labels: Some(
                labels
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect(),
            ),
            ..ObjectMeta::default()
        },
        PodSpec {
            containers: vec![Container {
                name: "app".into(),
                image: Some("nginx:1.27".into()),
                resources: Some(resources("500m", "1Gi")),
                ..Container::default()
            }],
            ..PodSpec::default()
        },
    )
}

/// A pod whose container runs `command` under `policy`.
fn job_pod(name: &str, command: &[&str], policy: &str) -> Pod {
    let mut p = pod(name, &[("job", "x")]);
    p.spec.containers[0].command = Some(command.iter().map(|c| (*c).to_owned()).collect());
    p.spec.restart_policy = Some(policy.into());
    p
}

fn rv(meta: &ObjectMeta) -> u64 {
    meta.resource_version.as_deref().unwrap().parse().unwrap()
}

fn phase(pod: &Pod) -> &str {
    pod.status.as_ref().unwrap().phase.as_deref().unwrap()
}

fn container(pod: &Pod) -> &k8s_openapi::api::core::v1::ContainerStatus {
    &pod.status
        .as_ref()
        .unwrap()
        .container_statuses
        .as_ref()
        .unwrap()[0]
}

fn with_namespace() -> (Store, Instant) {
    let (mut s, t0) = store();
    s.create_namespace("a", namespace("ns"), t0).unwrap();
    with_network(&mut s, "ns", t0);
    (s, t0)
}

/// Gives namespace `ns` of tenant `a` a Network (Ready at once under [`store`]'s config).
fn with_network(s: &mut Store, ns: &str, at: Instant) {
    let network: cci_api::Network = serde_json::from_value(serde_json::json!({
        "apiVersion": "yangtse/v2", "kind": "Network",
        "metadata": {"name": "net", "annotations": {
            "yangtse.io/project-id": "p", "yangtse.io/domain-id": "d"}},
        "spec": {"securityGroups": ["sg"], "subnets": [{"subnetID": "subnet-1"}]},
    }))
    .unwrap();
    let created = s.create_object("a", ns, network, at).unwrap();
    assert!(created.is_ready(), "{created:?}");
}

#[test]
fn a_created_pod_gets_uid_namespace_timestamp_resource_version_size_and_pending_phase() {
    let (mut s, t0) = with_namespace();
    let created = s.create_pod("a", "ns", pod("web", &[]), t0).unwrap();
    let meta = &created.metadata;
    assert_eq!(meta.namespace.as_deref(), Some("ns"));
    assert_eq!(meta.uid.as_ref().unwrap().len(), 36);
    // NB: 1 the namespace, 2 and 3 its Network created and Ready.
    assert_eq!(meta.resource_version.as_deref(), Some("4"));
    assert_eq!(
        meta.creation_timestamp.as_ref().unwrap().0.as_second(),
        1_700_000_000
    );
    assert_eq!(
        meta.annotations.as_ref().unwrap()["resource.cci.io/size"],
        "0.50_1.0",
        "CCI's own form of the size"
    );
    assert_eq!(
        meta.finalizers.as_deref(),
        Some(&[BILLING_FINALIZER.to_owned()][..])
    );
    assert_eq!(
        created.spec.termination_grace_period_seconds,
        Some(DEFAULT_GRACE_SECONDS),
        "defaulted as Kubernetes does"
    );
    assert_eq!(phase(&created), "Pending");
    assert_eq!(s.get_pod("a", "ns", "web", t0).unwrap(), created);
}

#[test]
fn a_pod_turns_running_after_the_delay_with_a_new_resource_version() {
    let (mut s, t0) = with_namespace();
    let created = s.create_pod("a", "ns", pod("web", &[]), t0).unwrap();

    let early = s.get_pod("a", "ns", "web", t0 + DELAY / 2).unwrap();
    assert_eq!(early, created, "nothing changes before the delay");

    let running = s.get_pod("a", "ns", "web", t0 + DELAY).unwrap();
    assert_eq!(phase(&running), "Running");
    assert_eq!(rv(&running.metadata), rv(&created.metadata) + 1);
    let status = running.status.as_ref().unwrap();
    assert_eq!(status.pod_ip.as_deref(), Some("172.31.0.1"));
    let started = status.start_time.as_ref().unwrap().0;
    assert_eq!(started.as_millisecond(), 1_700_000_000_500);
    let types: Vec<_> = status
        .conditions
        .iter()
        .flatten()
        .map(|c| (c.type_.as_str(), c.status.as_str()))
        .collect();
    assert_eq!(
        types,
        [
            ("PodScheduled", "True"),
            ("Initialized", "True"),
            ("ContainersReady", "True"),
            ("Ready", "True")
        ]
    );
    let container = container(&running);
    let uid = running.metadata.uid.as_deref().unwrap();
    assert_eq!(
        container.container_id.as_deref(),
        Some(format!("cci://{uid}/app").as_str())
    );
    assert!(container.ready);
    assert_eq!(container.started, Some(true));
    assert!(container.last_state.is_none());

    let again = s.get_pod("a", "ns", "web", t0 + DELAY * 10).unwrap();
    assert_eq!(again, running, "a pod that runs for ever changes no more");
}

#[test]
fn transitions_are_numbered_before_a_later_write_and_in_the_order_they_fell_due() {
    let (mut s, t0) = with_namespace();
    s.create_pod("a", "ns", pod("first", &[]), t0).unwrap();
    s.create_pod("a", "ns", pod("second", &[]), t0 + DELAY / 10)
        .unwrap();
    // Falls between the two transitions, and no read happened since the first fell due.
    let other = s
        .create_namespace("a", namespace("other"), t0 + DELAY + DELAY / 20)
        .unwrap();
    let later = t0 + DELAY * 2;
    let first = s.get_pod("a", "ns", "first", later).unwrap();
    let second = s.get_pod("a", "ns", "second", later).unwrap();
    assert_eq!(phase(&first), "Running");
    assert_eq!(phase(&second), "Running");
    assert!(rv(&first.metadata) < rv(&other.metadata));
    assert!(rv(&other.metadata) < rv(&second.metadata));
}

#[test]
fn running_pods_get_distinct_ips_and_released_ips_are_not_reused_at_once() {
    let (mut s, t0) = with_namespace();
    for name in ["p1", "p2", "p3"] {
        s.create_pod("a", "ns", pod(name, &[]), t0).unwrap();
    }
    let later = t0 + DELAY;
    let ips: BTreeSet<_> = s
        .list_pods("a", "ns", &LabelSelector::default(), later)
        .unwrap()
        .items
        .into_iter()
        .map(|p| p.status.unwrap().pod_ip.unwrap())
        .collect();
    assert_eq!(ips.len(), 3);
    s.delete_pod("a", "ns", "p1", DeleteOptions::default(), later)
        .unwrap();
    s.create_pod("a", "ns", pod("p4", &[]), later).unwrap();
    let p4 = s.get_pod("a", "ns", "p4", later + DELAY).unwrap();
    assert!(!ips.contains(p4.status.unwrap().pod_ip.as_ref().unwrap()));
}

#[test]
fn another_tenant_is_forbidden_and_a_missing_namespace_is_not_found() {
    let (mut s, t0) = with_namespace();
    assert!(matches!(
        s.get_namespace("b", "ns", t0),
        Err(Error::Forbidden { .. })
    ));
    assert!(matches!(
        s.create_pod("b", "ns", pod("web", &[]), t0),
        Err(Error::Forbidden { .. })
    ));
    assert!(matches!(
        s.create_pod("a", "nope", pod("web", &[]), t0),
        Err(Error::NamespaceNotFound { .. })
    ));
    assert!(
        s.list_namespaces("b", &LabelSelector::default(), t0)
            .items
            .is_empty()
    );
}

#[test]
fn duplicate_names_conflict() {
    let (mut s, t0) = with_namespace();
    assert!(matches!(
        s.create_namespace("b", namespace("ns"), t0),
        Err(Error::NamespaceExists { .. })
    ));
    s.create_pod("a", "ns", pod("web", &[]), t0).unwrap();
    assert!(matches!(
        s.create_pod("a", "ns", pod("web", &[]), t0),
        Err(Error::AlreadyExists { .. })
    ));
}

#[test]
fn list_selects_by_label_and_carries_the_current_resource_version() {
    let (mut s, t0) = with_namespace();
    s.create_pod("a", "ns", pod("web", &[("app", "web")]), t0)
        .unwrap();
    s.create_pod("a", "ns", pod("db", &[("app", "db")]), t0)
        .unwrap();
    let list = s
        .list_pods("a", "ns", &"app=web".parse().unwrap(), t0)
        .unwrap();
    assert_eq!(list.kind, "PodList");
    assert_eq!(list.metadata.resource_version.as_deref(), Some("5"));
    let names: Vec<_> = list
        .items
        .iter()
        .map(|p| p.metadata.name.as_deref().unwrap())
        .collect();
    assert_eq!(names, ["web"]);
    let list = s
        .list_pods("a", "ns", &LabelSelector::default(), t0 + DELAY)
        .unwrap();
    assert_eq!(list.metadata.resource_version.as_deref(), Some("7"));
}

#[test]
fn deleting_a_pod_without_grace_returns_it_with_a_new_resource_version_and_forgets_it() {
    let (mut s, t0) = with_namespace();
    let created = s.create_pod("a", "ns", pod("web", &[]), t0).unwrap();
    let deleted = s
        .delete_pod("a", "ns", "web", DeleteOptions::default(), t0)
        .unwrap();
    assert_eq!(deleted.metadata.uid, created.metadata.uid);
    assert!(rv(&deleted.metadata) > rv(&created.metadata));
    assert!(matches!(
        s.get_pod("a", "ns", "web", t0),
        Err(Error::NotFound { .. })
    ));
    assert!(matches!(
        s.delete_pod("a", "ns", "web", DeleteOptions::default(), t0),
        Err(Error::NotFound { .. })
    ));
}

/// Creates `web` from `pod`, deletes it with a 30 s grace once Running; returns when, and the
/// pod as the delete answered it (its deletionTimestamp is the grace's end, whenever the
/// containers stop).
fn delete_running_with_30s_grace(s: &mut Store, pod: Pod, t0: Instant) -> (Instant, Pod) {
    s.create_pod("a", "ns", pod, t0).unwrap();
    let running_at = t0 + DELAY;
    let grace = DeleteOptions {
        grace_period_seconds: Some(30),
    };
    let terminating = s.delete_pod("a", "ns", "web", grace, running_at).unwrap();
    let deadline = terminating.metadata.deletion_timestamp.clone().unwrap();
    assert_eq!(deadline.0.as_millisecond(), 1_700_000_030_500);
    (running_at, terminating)
}

#[test]
fn a_graceful_delete_of_a_pod_ignoring_sigterm_removes_it_when_the_grace_period_ends() {
    let (mut s, t0) = with_namespace();
    let mut ignoring = pod("web", &[]);
    ignoring.spec.containers[0].command = Some(vec!["sleep".into(), "3600".into()]);
    let (running_at, terminating) = delete_running_with_30s_grace(&mut s, ignoring, t0);
    assert_eq!(terminating.metadata.deletion_grace_period_seconds, Some(30));
    assert!(s.pod_records(running_at)[0].terminating);

    let still = s
        .get_pod("a", "ns", "web", running_at + Duration::from_secs(29))
        .unwrap();
    assert_eq!(still, terminating);
    // A second delete with a shorter grace period shortens it.
    let shorter = DeleteOptions {
        grace_period_seconds: Some(1),
    };
    s.delete_pod(
        "a",
        "ns",
        "web",
        shorter,
        running_at + Duration::from_secs(29),
    )
    .unwrap();
    assert!(matches!(
        s.get_pod("a", "ns", "web", running_at + Duration::from_secs(30)),
        Err(Error::NotFound { .. })
    ));
}

#[rstest]
#[case::a_server_without_a_command(None, None, Some(STOP))]
#[case::told_by_the_annotation(Some(vec!["sleep", "3600"]), Some("exit"), Some(STOP))]
#[case::sleep_as_pid_1(Some(vec!["sleep", "3600"]), None, None)]
#[case::a_server_told_to_ignore_it(None, Some("ignore"), None)]
fn a_graceful_delete_removes_a_pod_whose_containers_exit_on_sigterm_once_they_stopped(
    #[case] command: Option<Vec<&str>>,
    #[case] annotation: Option<&str>,
    #[case] gone_after: Option<Duration>,
) {
    let (mut s, t0) = with_namespace();
    let mut p = pod("web", &[]);
    p.spec.containers[0].command = command.map(|c| c.into_iter().map(String::from).collect());
    if let Some(value) = annotation {
        p.metadata.annotations = Some(BTreeMap::from([(
            crate::behaviour::ANNOTATION_ON_SIGTERM.to_owned(),
            value.to_owned(),
        )]));
    }
    let (running_at, _) = delete_running_with_30s_grace(&mut s, p, t0);
    let stop = gone_after.unwrap_or(Duration::from_secs(30));
    let before = running_at + stop - Duration::from_millis(1);
    assert!(
        s.get_pod("a", "ns", "web", before).is_ok(),
        "still there just before"
    );
    assert!(matches!(
        s.get_pod("a", "ns", "web", running_at + stop),
        Err(Error::NotFound { .. })
    ));
}

#[test]
fn a_pod_that_has_not_started_is_deleted_at_once_whatever_the_grace_period() {
    let (mut s, t0) = with_namespace();
    s.create_pod("a", "ns", pod("web", &[]), t0).unwrap();
    let grace = DeleteOptions {
        grace_period_seconds: Some(30),
    };
    s.delete_pod("a", "ns", "web", grace, t0).unwrap();
    assert!(s.pod_records(t0).is_empty());
}

#[test]
fn deleting_a_namespace_answers_it_terminating_deletes_its_pods_gracefully_then_it_goes() {
    let (mut s, t0) = with_namespace();
    // A server (no command) exits on SIGTERM; `sleep` as PID 1 ignores it and is killed when
    // its 30 s default grace period ends.
    s.create_pod("a", "ns", pod("web", &[]), t0).unwrap();
    s.create_pod(
        "a",
        "ns",
        job_pod("sleeper", &["sleep", "3600"], "Never"),
        t0,
    )
    .unwrap();
    let deleted_at = t0 + DELAY;
    let answered = s.delete_namespace("a", "ns", deleted_at).unwrap();
    assert_eq!(
        answered.status.and_then(|st| st.phase).as_deref(),
        Some(cci_api::NAMESPACE_TERMINATING)
    );
    assert!(answered.metadata.deletion_timestamp.is_some());
    // Its pods are Terminating with their grace period, the finalizer still on.
    let sleeper = s.get_pod("a", "ns", "sleeper", deleted_at).unwrap();
    assert_eq!(sleeper.metadata.deletion_grace_period_seconds, Some(30));
    assert_eq!(
        sleeper.metadata.finalizers.as_deref(),
        Some(&[BILLING_FINALIZER.to_owned()][..])
    );
    assert!(matches!(
        s.create_pod("a", "ns", pod("late", &[]), deleted_at),
        Err(Error::NamespaceTerminating { .. })
    ));
    let web_gone = deleted_at + STOP;
    assert!(s.get_pod("a", "ns", "web", web_gone).is_err());
    let grace_end = deleted_at + Duration::from_secs(30);
    assert!(
        s.get_pod("a", "ns", "sleeper", grace_end - JUST_UNDER)
            .is_ok()
    );
    assert!(s.get_pod("a", "ns", "sleeper", grace_end).is_err());
    let gone_at = grace_end + DEFAULT_NAMESPACE_TERMINATION;
    assert!(s.namespace_records(gone_at - JUST_UNDER)[0].terminating);
    assert!(s.namespace_records(gone_at).is_empty());
    s.create_namespace("a", namespace("ns"), gone_at).unwrap();
    assert!(matches!(
        s.get_pod("a", "ns", "web", gone_at),
        Err(Error::NotFound { .. })
    ));
}

#[test]
fn an_empty_namespace_with_no_termination_time_goes_at_its_delete() {
    let (mut s, t0) = with_namespace();
    s.config.namespace_termination = Duration::ZERO;
    s.delete_namespace("a", "ns", t0).unwrap();
    assert!(s.namespace_records(t0).is_empty());
}

#[test]
fn a_pod_gone_for_good_loses_its_billing_finalizer() {
    let (mut s, t0) = with_namespace();
    s.create_pod("a", "ns", pod("web", &[]), t0).unwrap();
    let gone = s
        .delete_pod("a", "ns", "web", DeleteOptions::default(), t0)
        .unwrap();
    assert_eq!(gone.metadata.finalizers.as_deref(), Some(&[][..]));
}

#[test]
fn a_size_the_client_sent_is_replaced_by_the_services_own() {
    let (mut s, t0) = with_namespace();
    let mut sent = pod("web", &[]);
    sent.metadata
        .annotations
        .get_or_insert_default()
        .insert("resource.cci.io/size".into(), "64_512".into());
    let created = s.create_pod("a", "ns", sent, t0).unwrap();
    assert_eq!(
        created.metadata.annotations.unwrap()["resource.cci.io/size"],
        "0.50_1.0"
    );
}

#[test]
fn an_invalid_pod_is_refused_before_it_is_stored() {
    let (mut s, t0) = with_namespace();
    let mut bad = pod("web", &[]);
    bad.spec.containers.clear();
    let err = s.create_pod("a", "ns", bad, t0).unwrap_err();
    assert!(
        err.to_string()
            .starts_with(r#"Pod "web" is invalid: spec.containers: Required value: at least one container is required"#),
        "{err}"
    );
    assert!(s.pod_records(t0).is_empty());
    assert_eq!(s.resource_version(t0), 3, "nothing was numbered either");
}

#[test]
fn uids_are_distinct_and_shaped_like_uuid_v4() {
    let mut counters = Counters {
        resource_version: 0,
        seq: 0,
        uid_seed: 7,
    };
    let uids: BTreeSet<_> = (0..1000).map(|_| counters.next_uid()).collect();
    assert_eq!(uids.len(), 1000);
    for uid in &uids {
        assert_eq!(uid.as_bytes()[14], b'4', "{uid}");
        assert!(
            matches!(uid.as_bytes()[19], b'8' | b'9' | b'a' | b'b'),
            "{uid}"
        );
    }
}

#[rstest]
#[case::sleep_never_succeeds(&["sleep", "5"], "Never", "Succeeded", 0, "Completed")]
#[case::exit_never_fails(&["sh", "-c", "sleep 5; exit 3"], "Never", "Failed", 3, "Error")]
#[case::sleep_on_failure_succeeds(&["sleep", "5"], "OnFailure", "Succeeded", 0, "Completed")]
fn a_container_that_exits_for_good_ends_the_pod(
    #[case] command: &[&str],
    #[case] policy: &str,
    #[case] expected_phase: &str,
    #[case] code: i32,
    #[case] reason: &str,
) {
    let (mut s, t0) = with_namespace();
    s.create_pod("a", "ns", job_pod("job", command, policy), t0)
        .unwrap();
    let before = s
        .get_pod("a", "ns", "job", t0 + DELAY + Duration::from_millis(4999))
        .unwrap();
    assert_eq!(phase(&before), "Running");
    let done = s
        .get_pod("a", "ns", "job", t0 + DELAY + Duration::from_secs(5))
        .unwrap();
    assert_eq!(phase(&done), expected_phase);
    let terminated = container(&done)
        .state
        .as_ref()
        .unwrap()
        .terminated
        .as_ref()
        .unwrap();
    assert_eq!(terminated.exit_code, code);
    assert_eq!(terminated.reason.as_deref(), Some(reason));
    assert_eq!(
        terminated.finished_at.as_ref().unwrap().0.as_millisecond(),
        1_700_000_005_500
    );
    let ready = &done.status.as_ref().unwrap().conditions.as_ref().unwrap()[3];
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_deref()),
        ("False", Some("PodCompleted"))
    );
    let later = s
        .get_pod("a", "ns", "job", t0 + Duration::from_secs(3600))
        .unwrap();
    assert_eq!(later, done, "a finished pod changes no more");
}

#[test]
fn a_failing_container_restarts_with_a_doubling_back_off_and_counts_restarts() {
    let (mut s, t0) = with_namespace();
    s.create_pod(
        "a",
        "ns",
        job_pod("job", &["sh", "-c", "exit 1"], "OnFailure"),
        t0,
    )
    .unwrap();
    let started = t0 + DELAY;
    let crashed = s.get_pod("a", "ns", "job", started).unwrap();
    assert_eq!(phase(&crashed), "Running", "the pod runs while it restarts");
    let status = container(&crashed);
    assert_eq!(
        status
            .state
            .as_ref()
            .unwrap()
            .waiting
            .as_ref()
            .unwrap()
            .reason
            .as_deref(),
        Some("CrashLoopBackOff")
    );
    assert_eq!(status.restart_count, 0);
    assert_eq!(
        status
            .last_state
            .as_ref()
            .unwrap()
            .terminated
            .as_ref()
            .unwrap()
            .exit_code,
        1
    );
    // Restarts at +10 s (and crashes at once), then at +10+20 s.
    let once = s.get_pod("a", "ns", "job", started + BACKOFF).unwrap();
    assert_eq!(container(&once).restart_count, 1);
    let still_once = s
        .get_pod(
            "a",
            "ns",
            "job",
            started + BACKOFF * 3 - Duration::from_millis(1),
        )
        .unwrap();
    assert_eq!(container(&still_once).restart_count, 1);
    let twice = s.get_pod("a", "ns", "job", started + BACKOFF * 3).unwrap();
    assert_eq!(container(&twice).restart_count, 2);
}

#[test]
fn restart_policy_always_restarts_even_a_container_that_succeeded() {
    let (mut s, t0) = with_namespace();
    s.create_pod("a", "ns", job_pod("web", &["sleep", "1"], "Always"), t0)
        .unwrap();
    let after = s
        .get_pod(
            "a",
            "ns",
            "web",
            t0 + DELAY + Duration::from_secs(1) + BACKOFF,
        )
        .unwrap();
    assert_eq!(phase(&after), "Running");
    let status = container(&after);
    assert_eq!(status.restart_count, 1);
    assert!(status.ready);
    let last = status
        .last_state
        .as_ref()
        .unwrap()
        .terminated
        .as_ref()
        .unwrap();
    assert_eq!(
        (last.exit_code, last.reason.as_deref()),
        (0, Some("Completed"))
    );
}

#[test]
fn the_behaviour_annotation_overrides_the_command() {
    let (mut s, t0) = with_namespace();
    let mut p = job_pod("job", &["sleep", "1000"], "Never");
    p.metadata.annotations = Some(BTreeMap::from([(
        "mock.cci.io/behaviour".to_owned(),
        "fail-after=2s,exit-code=7".to_owned(),
    )]));
    s.create_pod("a", "ns", p, t0).unwrap();
    let done = s
        .get_pod("a", "ns", "job", t0 + DELAY + Duration::from_secs(2))
        .unwrap();
    assert_eq!(phase(&done), "Failed");
    assert_eq!(
        container(&done)
            .state
            .as_ref()
            .unwrap()
            .terminated
            .as_ref()
            .unwrap()
            .exit_code,
        7
    );
}

fn fault(s: &mut Store, scope: Scope, fault: Fault) -> u64 {
    s.faults.add(FaultSpec { scope, fault }).unwrap().id
}

#[test]
fn a_sold_out_flavour_refuses_the_pod_and_creates_nothing() {
    let (mut s, t0) = with_namespace();
    fault(
        &mut s,
        Scope::Namespace("ns".into()),
        Fault::SoldOut {
            flavours: vec!["0.5_1".into()],
        },
    );
    let err = s.create_pod("a", "ns", pod("web", &[]), t0).unwrap_err();
    assert!(matches!(err, Error::SoldOut { .. }));
    let status = err.to_status();
    assert_eq!(
        (status.code, status.error_code.as_str()),
        (400, "CCI.01.400002")
    );
    assert!(status.message.contains("sold out"), "{}", status.message);
    assert!(
        status.message.contains("insufficient resources"),
        "{}",
        status.message
    );
    assert!(s.pod_records(t0).is_empty());
    let mut big = pod("big", &[]);
    big.spec.containers[0].resources = Some(resources("2", "4Gi"));
    s.create_pod("a", "ns", big, t0).unwrap();
}

#[test]
fn a_quota_refuses_pods_beyond_its_limit_counting_only_live_pods() {
    let (mut s, t0) = with_namespace();
    fault(
        &mut s,
        Scope::Tenant("a".into()),
        Fault::QuotaExceeded { max_pods: 1 },
    );
    s.create_pod("a", "ns", job_pod("one", &["true"], "Never"), t0)
        .unwrap();
    let err = s.create_pod("a", "ns", pod("two", &[]), t0).unwrap_err();
    assert_eq!(err.to_status().code, 403);
    assert!(err.to_string().starts_with("exceeded quota"), "{err}");
    // Once the first pod has finished, it no longer counts.
    s.create_pod("a", "ns", pod("two", &[]), t0 + DELAY)
        .unwrap();
}

#[test]
fn an_image_pull_fault_holds_the_pod_pending_until_it_is_cleared() {
    let (mut s, t0) = with_namespace();
    let id = fault(
        &mut s,
        Scope::Tenant("a".into()),
        Fault::ImagePullFailure {
            image_pattern: "nginx:*".into(),
        },
    );
    s.create_pod("a", "ns", pod("web", &[]), t0).unwrap();
    let first = s.get_pod("a", "ns", "web", t0 + DELAY).unwrap();
    assert_eq!(phase(&first), "Pending");
    let reason = |p: &Pod| {
        container(p)
            .state
            .as_ref()
            .unwrap()
            .waiting
            .as_ref()
            .unwrap()
            .reason
            .clone()
            .unwrap()
    };
    assert_eq!(reason(&first), "ErrImagePull");
    let later = s.get_pod("a", "ns", "web", t0 + DELAY + BACKOFF).unwrap();
    assert_eq!(reason(&later), "ImagePullBackOff");
    assert!(s.faults.remove(id));
    let running = s
        .get_pod("a", "ns", "web", t0 + DELAY + BACKOFF * 3)
        .unwrap();
    assert_eq!(phase(&running), "Running");
}

#[test]
fn running_pods_are_billed_until_they_finish_or_are_deleted_even_after_the_namespace_goes() {
    let (mut s, t0) = with_namespace();
    s.create_pod("a", "ns", pod("web", &[]), t0).unwrap();
    s.create_pod("a", "ns", job_pod("job", &["sleep", "10"], "Never"), t0)
        .unwrap();
    let bill = |s: &mut Store, at| s.bills(at).remove(0);
    assert_eq!(bill(&mut s, t0 + DELAY).pod_seconds, 0.0, "pending is free");
    let at = t0 + DELAY + Duration::from_secs(20);
    let b = bill(&mut s, at);
    assert_eq!(b.pod_seconds, 30.0);
    assert_eq!(b.vcpu_seconds, 15.0);
    assert_eq!(b.running_pods, 1);
    s.delete_namespace("a", "ns", at).unwrap();
    let b = bill(&mut s, at + Duration::from_secs(100));
    // NB: the server stops on SIGTERM `STOP` after the namespace's delete, billed until then.
    assert_eq!(b.pod_seconds, 30.0 + STOP.as_secs_f64());
    assert!(!b.exists);
    assert_eq!(b.running_pods, 0);
}

#[test]
fn the_peak_counts_running_pods_of_a_selector_at_once() {
    let (mut s, t0) = with_namespace();
    for i in 0..3 {
        let start = t0 + Duration::from_secs(i * 5);
        s.create_pod(
            "a",
            "ns",
            job_pod(&format!("job-{i}"), &["sleep", "7"], "Never"),
            start,
        )
        .unwrap();
    }
    s.create_pod("a", "ns", pod("other", &[]), t0).unwrap();
    let selector: LabelSelector = "job=x".parse().unwrap();
    let at = t0 + Duration::from_secs(60);
    let running = s.peak("ns", &selector, Period::Running, at);
    assert_eq!((running.peak, running.current), (2, 0));
    let active = s.peak("ns", &LabelSelector::default(), Period::Active, at);
    assert_eq!((active.peak, active.current), (3, 1));
}

#[test]
fn pod_events_follow_every_change_and_too_old_versions_are_gone() {
    let (mut s, t0) = with_namespace();
    s.create_pod("a", "ns", job_pod("job", &["sleep", "1"], "Never"), t0)
        .unwrap();
    let all = LabelSelector::default();
    let events = s
        .pod_events("a", "ns", &all, 0, t0 + Duration::from_secs(5))
        .unwrap();
    let seen: Vec<_> = events
        .iter()
        .map(|e| (e.type_.as_str(), phase(&e.pod).to_owned()))
        .collect();
    assert_eq!(
        seen,
        [
            ("ADDED", "Pending".to_owned()),
            ("MODIFIED", "Running".to_owned()),
            ("MODIFIED", "Succeeded".to_owned())
        ]
    );
    let last = events.last().unwrap().rv;
    s.delete_pod(
        "a",
        "ns",
        "job",
        DeleteOptions::default(),
        t0 + Duration::from_secs(5),
    )
    .unwrap();
    let deleted = s
        .pod_events("a", "ns", &all, last, t0 + Duration::from_secs(5))
        .unwrap();
    assert_eq!(deleted.len(), 1);
    assert_eq!(deleted[0].type_, EventType::Deleted);
    assert!(matches!(
        s.pod_events("b", "ns", &all, 0, t0),
        Err(Error::Forbidden { .. })
    ));
    // The history keeps 100 changes.
    for i in 0..60 {
        s.create_pod(
            "a",
            "ns",
            pod(&format!("p{i}"), &[]),
            t0 + Duration::from_secs(6),
        )
        .unwrap();
    }
    let err = s
        .pod_events("a", "ns", &all, 1, t0 + Duration::from_secs(7))
        .unwrap_err();
    assert!(matches!(err, Error::Gone { .. }), "{err}");
    assert_eq!(err.to_status().code, 410);
}

#[test]
fn settling_thousands_of_pods_touches_only_the_changes_due() {
    let (mut s, t0) = with_namespace();
    for i in 0..3000 {
        s.create_pod("a", "ns", pod(&format!("p{i}"), &[]), t0)
            .unwrap();
    }
    assert_eq!(s.timers.len(), 3000);
    s.settle(t0 + DELAY);
    assert!(s.timers.is_empty(), "pods that run for ever need no timer");
    assert_eq!(s.resource_version(t0 + DELAY), 3 + 3000 * 2);
}

#[test]
fn reset_deletes_everything_and_forgets_faults_and_bills() {
    let (mut s, t0) = with_namespace();
    s.create_pod("a", "ns", pod("web", &[]), t0).unwrap();
    fault(
        &mut s,
        Scope::Tenant("a".into()),
        Fault::SoldOut { flavours: vec![] },
    );
    s.reset(t0 + DELAY);
    assert!(s.namespace_records(t0 + DELAY).is_empty());
    assert!(s.faults.list().is_empty());
    assert!(s.bills(t0 + DELAY).is_empty());
    assert_eq!(s.dump(t0 + DELAY)["tenants"], serde_json::json!({}),);
}

const LINGER: Duration = Duration::from_millis(1500);
const JUST_UNDER: Duration = Duration::from_millis(1);

/// Sets a slow delete of 1.5 s on namespace `ns` for `resources` (empty = both).
fn slow_delete(s: &mut Store, resources: Vec<Resource>) -> u64 {
    fault(
        s,
        Scope::Namespace("ns".into()),
        Fault::SlowDelete {
            resources,
            millis: 1500,
        },
    )
}

#[rstest]
#[case::running_under_a_slow_delete(Some(vec![]), DELAY, true)]
#[case::not_started_under_a_slow_delete(Some(vec![Resource::Pods]), Duration::ZERO, true)]
#[case::running_under_a_slow_delete_of_namespaces(Some(vec![Resource::Namespaces]), DELAY, false)]
#[case::running_without_the_fault(None, DELAY, false)]
fn a_pod_deleted_at_grace_0_lingers_terminating_only_under_a_slow_delete(
    #[case] fault: Option<Vec<Resource>>,
    #[case] deleted_after: Duration,
    #[case] lingers: bool,
) {
    let (mut s, t0) = with_namespace();
    let id = fault.map(|resources| slow_delete(&mut s, resources));
    s.create_pod("a", "ns", pod("web", &[]), t0).unwrap();
    let at = t0 + deleted_after;
    let before = s.get_pod("a", "ns", "web", at).unwrap();
    let now = DeleteOptions {
        grace_period_seconds: Some(0),
    };
    let answered = s.delete_pod("a", "ns", "web", now, at).unwrap();
    let all = LabelSelector::default();
    let listed = |s: &mut Store, at| s.list_pods("a", "ns", &all, at).unwrap().items;
    if !lingers {
        assert!(listed(&mut s, at).is_empty());
        if id.is_some() {
            assert_eq!(
                s.faults.list()[0].fired,
                0,
                "a slow delete of namespaces only"
            );
        }
        return;
    }
    assert_eq!(
        answered.metadata.deletion_timestamp,
        Some(s.epoch.wall(at)),
        "a grace-0 delete is due now"
    );
    assert_eq!(answered.metadata.deletion_grace_period_seconds, Some(0));
    assert!(rv(&answered.metadata) > rv(&before.metadata));
    let events = s
        .pod_events("a", "ns", &all, rv(&before.metadata), at)
        .unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].type_, EventType::Modified);

    let just_before = at + LINGER - JUST_UNDER;
    assert_eq!(
        listed(&mut s, just_before),
        std::slice::from_ref(&answered),
        "still listed, unchanged (a pod deleted before it started does not start)"
    );
    assert!(s.pod_records(just_before)[0].terminating);
    assert_eq!(s.get_pod("a", "ns", "web", just_before).unwrap(), answered);
    assert!(listed(&mut s, at + LINGER).is_empty());
    assert!(matches!(
        s.get_pod("a", "ns", "web", at + LINGER),
        Err(Error::NotFound { .. })
    ));
    assert_eq!(s.faults.list()[0].fired, 1);
}

#[test]
fn a_graceful_delete_under_a_slow_delete_goes_millis_after_the_pod_stopped() {
    let (mut s, t0) = with_namespace();
    slow_delete(&mut s, vec![]);
    // A server without a command exits on SIGTERM: it stops `STOP` after the delete.
    let (running_at, _) = delete_running_with_30s_grace(&mut s, pod("web", &[]), t0);
    let gone_at = running_at + STOP + LINGER;
    assert!(s.get_pod("a", "ns", "web", gone_at - JUST_UNDER).is_ok());
    assert!(s.get_pod("a", "ns", "web", gone_at).is_err());
}

#[rstest]
#[case::both(vec![])]
#[case::namespaces_only(vec![Resource::Namespaces])]
fn a_namespace_deleted_under_a_slow_delete_stays_terminating_refusing_new_content_then_goes_with_its_pods(
    #[case] resources: Vec<Resource>,
) {
    let (mut s, t0) = with_namespace();
    slow_delete(&mut s, resources);
    s.create_pod("a", "ns", pod("web", &[]), t0).unwrap();
    let before = s.get_namespace("a", "ns", t0 + DELAY).unwrap();
    let deleted_at = t0 + DELAY;
    let answered = s.delete_namespace("a", "ns", deleted_at).unwrap();
    assert_eq!(
        answered.metadata.deletion_timestamp,
        Some(s.epoch.wall(deleted_at))
    );
    assert!(rv(&answered.metadata) > rv(&before.metadata));
    assert_eq!(
        s.next_due(),
        Some(deleted_at + LINGER),
        "a watch wakes when it goes"
    );

    let just_before = deleted_at + LINGER - JUST_UNDER;
    assert_eq!(s.get_namespace("a", "ns", just_before).unwrap(), answered);
    let listed = s
        .list_namespaces("a", &LabelSelector::default(), just_before)
        .items;
    assert_eq!(listed, std::slice::from_ref(&answered));
    assert_eq!(
        s.delete_namespace("a", "ns", just_before).unwrap(),
        answered,
        "deleting it again changes nothing"
    );
    assert!(s.namespace_records(just_before)[0].terminating);
    assert!(s.get_pod("a", "ns", "web", just_before).is_ok());
    let refused = s
        .create_pod("a", "ns", pod("late", &[]), just_before)
        .unwrap_err();
    let status = refused.to_status();
    assert_eq!((status.code, status.reason.as_str()), (403, "Forbidden"));
    assert!(
        status.message.contains("because it is being terminated"),
        "{}",
        status.message
    );
    let config_map = cci_api::ConfigMap::new(
        ObjectMeta {
            name: Some("late".into()),
            ..ObjectMeta::default()
        },
        BTreeMap::new(),
    );
    assert!(matches!(
        s.create_object("a", "ns", config_map, just_before),
        Err(Error::NamespaceTerminating { .. })
    ));
    assert_eq!(
        s.faults.list()[0].fired,
        1,
        "the second delete found it terminating"
    );

    let gone = deleted_at + LINGER;
    assert!(matches!(
        s.get_namespace("a", "ns", gone),
        Err(Error::NamespaceNotFound { .. })
    ));
    assert!(s.pod_records(gone).is_empty());
    let events = s
        .pod_events(
            "a",
            "ns",
            &LabelSelector::default(),
            rv(&answered.metadata),
            gone,
        )
        .unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].type_, EventType::Deleted);
    assert_eq!(s.next_due(), None);
    s.create_namespace("a", namespace("ns"), gone).unwrap();
}
