//! The uninstall gc against the strict CCI mock (`mock_cci`, on a loopback port): it empties
//! (and removes) its own cluster's namespace only, is idempotent, does not wait out grace
//! periods, waits (polling with a doubling pause) for pods and a namespace that linger after
//! their delete, and names the step that failed or ran out of time (BEHAVIOR.md §8). Also run
//! as the `gc` command.

use std::collections::BTreeMap;
use std::time::Duration;

use bursting_engine::gc::{self, GcReport, NamespaceOutcome, Removed, Scope};
use bursting_engine::{CciClient, DEFAULT_RELEASE, Error, proxy, translate};
use cci_api::{ConfigMap, PersistentVolumeClaim, Secret, Service};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{
    Container, PersistentVolumeClaimSpec, Pod, PodSpec, ResourceRequirements, ServicePort,
    ServiceSpec, VolumeResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use mock_cci::{FaultSpec, MockConfig, Server};
use rstest::rstest;

const TOKEN: &str = "secret";

async fn mock() -> (Server, CciClient) {
    let server = Server::bind(
        MockConfig::default()
            .with_token(TOKEN, "tenant-a")
            .with_running_after(Duration::ZERO)
            // NB: so nothing of the other cluster changes by itself while the gc waits for a
            // Terminating namespace to go.
            .with_network_ready_after(Duration::ZERO),
    )
    .await
    .unwrap();
    let cci = CciClient::new(&server.url(), TOKEN).unwrap();
    (server, cci)
}

fn named(name: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.into()),
        ..ObjectMeta::default()
    }
}

/// The CCI pod of cluster pod `shop/{name}` of cluster `cluster_id`, running, asking for a
/// grace period of an hour when deleted.
fn cci_pod(cluster_id: &str, name: &str) -> cci_api::Pod {
    let quantities = BTreeMap::from([
        ("cpu".into(), Quantity("250m".into())),
        ("memory".into(), Quantity("512Mi".into())),
    ]);
    let pod = Pod {
        metadata: ObjectMeta {
            namespace: Some("shop".into()),
            name: Some(name.into()),
            uid: Some(format!("uid-{name}")),
            ..ObjectMeta::default()
        },
        spec: Some(PodSpec {
            containers: vec![Container {
                name: "app".into(),
                image: Some("nginx:1.27".into()),
                resources: Some(ResourceRequirements {
                    requests: Some(quantities),
                    ..ResourceRequirements::default()
                }),
                ..Container::default()
            }],
            ..PodSpec::default()
        }),
        status: None,
    };
    let mut cci = translate::to_cci_pod(&pod, cluster_id, DEFAULT_RELEASE, None).unwrap();
    cci.spec.termination_grace_period_seconds = Some(3600);
    cci
}

/// Everything the engine and the proxy put on CCI for a cluster: 2 pods and one of each other
/// collection.
async fn populate(cci: &CciClient, cluster_id: &str) {
    let ns = cci_api::namespace_for_cluster(cluster_id);
    cci.ensure_cluster_namespace(cluster_id).await.unwrap();
    for name in ["web-0", "web-1"] {
        cci.create_pod(&ns, &cci_pod(cluster_id, name))
            .await
            .unwrap();
    }
    let config_map = ConfigMap::new(
        named("shop.app-config"),
        BTreeMap::from([("mode".into(), "fast".into())]),
    );
    cci.create_object(&ns, "configmaps", &config_map)
        .await
        .unwrap();
    let secret = Secret::new(
        named("shop.db"),
        BTreeMap::from([("password".into(), ByteString(b"hunter2".to_vec()))]),
    );
    cci.create_object(&ns, "secrets", &secret).await.unwrap();
    let claim = PersistentVolumeClaim::new(
        named("shop.shared"),
        PersistentVolumeClaimSpec {
            access_modes: Some(vec!["ReadWriteMany".into()]),
            storage_class_name: Some("csi-nas".into()),
            resources: Some(VolumeResourceRequirements {
                requests: Some(BTreeMap::from([(
                    "storage".into(),
                    Quantity("10Gi".into()),
                )])),
                limits: None,
            }),
            ..PersistentVolumeClaimSpec::default()
        },
    );
    cci.create_object(&ns, "persistentvolumeclaims", &claim)
        .await
        .unwrap();
    let service = Service {
        api_version: cci_api::API_VERSION.into(),
        kind: "Service".into(),
        metadata: named("web"),
        spec: ServiceSpec {
            ports: Some(vec![ServicePort {
                port: 80,
                ..ServicePort::default()
            }]),
            ..ServiceSpec::default()
        },
        status: None,
    };
    cci.create_object(&ns, "services", &service).await.unwrap();
    let data_path = proxy::DataPath {
        endpoint: "10.0.0.5:8900".into(),
        key: "k".into(),
    };
    proxy::register(cci, cluster_id, DEFAULT_RELEASE, Some(&data_path))
        .await
        .unwrap();
    let network = crate::common::network().object();
    cci.create_network(&ns, &network).await.unwrap();
}

/// Name and resourceVersion of everything in `ns`, per collection; `None` without the
/// namespace.
async fn inventory(cci: &CciClient, ns: &str) -> Option<BTreeMap<String, Vec<(String, String)>>> {
    let entry = |m: ObjectMeta| {
        (
            m.name.unwrap_or_default(),
            m.resource_version.unwrap_or_default(),
        )
    };
    let pods = match cci.list_pods(ns).await {
        Ok(list) => list.items,
        Err(e) if e.code() == Some(404) => return None,
        Err(e) => panic!("{e}"),
    };
    let mut out = BTreeMap::from([(
        "pods".to_string(),
        pods.into_iter().map(|p| entry(p.metadata)).collect(),
    )]);
    for plural in [
        "configmaps",
        "secrets",
        "persistentvolumeclaims",
        "services",
        "proxyregistrations",
    ] {
        let list = cci
            .list_objects::<serde_json::Value>(ns, plural)
            .await
            .unwrap();
        let items = list
            .items
            .into_iter()
            .map(|v| entry(serde_json::from_value(v["metadata"].clone()).unwrap()))
            .collect();
        out.insert(plural.to_string(), items);
    }
    let networks = cci.list_networks(ns).await.unwrap().items;
    out.insert(
        "networks".into(),
        networks.into_iter().map(|n| entry(n.metadata)).collect(),
    );
    Some(out)
}

const EVERYTHING: Removed = Removed {
    pods: 2,
    configmaps: 1,
    secrets: 1,
    pvcs: 1,
    services: 1,
    proxyregistrations: 1,
    networks: 1,
};

#[tokio::test]
async fn gc_namespace_removes_everything_of_its_cluster_and_nothing_of_another() {
    let (_server, cci) = mock().await;
    populate(&cci, "c1").await;
    populate(&cci, "c2").await;
    let other_before = inventory(&cci, "bursting-c2").await.unwrap();

    let report = gc::collect(&cci, "c1", Scope::Namespace).await.unwrap();
    assert_eq!(
        report,
        GcReport {
            scope: Scope::Namespace,
            namespace: "bursting-c1".into(),
            removed: EVERYTHING,
            namespace_outcome: NamespaceOutcome::Removed,
        }
    );
    assert_eq!(
        report.to_string(),
        "gc namespace bursting-c1: removed 2 pods, 1 configmaps, 1 secrets, 1 pvcs, 1 services, 1 proxyregistrations, 1 networks; namespace removed"
    );
    assert_eq!(inventory(&cci, "bursting-c1").await, None);
    assert_eq!(
        cci.get_namespace("bursting-c1").await.unwrap_err().code(),
        Some(404)
    );
    assert_eq!(
        inventory(&cci, "bursting-c2").await.unwrap(),
        other_before,
        "another cluster's namespace is untouched, down to resourceVersions"
    );
}

#[tokio::test]
async fn gc_resources_empties_the_namespace_and_keeps_it_without_waiting_out_grace_periods() {
    let (_server, cci) = mock().await;
    populate(&cci, "c1").await;
    // NB: the pods ask for an hour; a deadline of 5 s passes only if they go at once.
    let report = gc::collect_within(&cci, "c1", Scope::Resources, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(report.removed, EVERYTHING);
    assert_eq!(report.namespace_outcome, NamespaceOutcome::Kept);
    let left = inventory(&cci, "bursting-c1").await.unwrap();
    assert!(left.values().all(Vec::is_empty), "{left:?}");
}

#[tokio::test]
async fn gc_twice_and_gc_of_a_cluster_with_nothing_on_cci_succeed_and_remove_nothing_more() {
    let (_server, cci) = mock().await;
    populate(&cci, "c1").await;
    gc::collect(&cci, "c1", Scope::Resources).await.unwrap();
    let again = gc::collect(&cci, "c1", Scope::Resources).await.unwrap();
    assert_eq!(again.removed, Removed::default());
    assert_eq!(again.namespace_outcome, NamespaceOutcome::Kept);

    gc::collect(&cci, "c1", Scope::Namespace).await.unwrap();
    let after_removal = gc::collect(&cci, "c1", Scope::Namespace).await.unwrap();
    assert_eq!(
        after_removal.to_string(),
        "gc namespace bursting-c1: removed 0 pods, 0 configmaps, 0 secrets, 0 pvcs, 0 services, 0 proxyregistrations, 0 networks; namespace absent"
    );
    let never_there = gc::collect(&cci, "nothing-here", Scope::Resources)
        .await
        .unwrap();
    assert_eq!(never_there.namespace_outcome, NamespaceOutcome::Absent);
}

#[tokio::test]
async fn a_failing_step_is_named_in_the_error() {
    let (server, cci) = mock().await;
    populate(&cci, "c1").await;
    crate::common::fail_every(&server, "bursting-c1", "delete secrets", 503);
    let err = gc::collect(&cci, "c1", Scope::Namespace).await.unwrap_err();
    assert_eq!(err.to_string(), "gc: delete secrets bursting-c1/shop.db");
    let cause = std::error::Error::source(&err).unwrap().to_string();
    assert!(cause.contains("503"), "{cause}");
    assert!(
        cci.get_namespace("bursting-c1").await.is_ok(),
        "a failed gc stops before the namespace"
    );
}

#[test]
fn a_bad_cluster_id_is_refused_before_cci_is_called() {
    let cci = CciClient::new("http://127.0.0.1:1", TOKEN).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let err = runtime
        .block_on(gc::collect(&cci, "Not_A_Label", Scope::Namespace))
        .unwrap_err();
    assert!(err.to_string().contains("Not_A_Label"), "{err}");
}

fn gc_command(cci: &CciClient, token: &str, scope: &str) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_bursting-engine"))
        .args([
            "gc",
            "--scope",
            scope,
            "--cci-endpoint",
            cci.endpoint(),
            "--cluster-id",
            "c1",
        ])
        .env("CCI_TOKEN", token)
        .output()
        .unwrap()
}

#[tokio::test]
async fn the_gc_command_prints_one_summary_line_and_exits_zero_even_the_second_time() {
    let (_server, cci) = mock().await;
    populate(&cci, "c1").await;
    let cci_for_thread = cci.clone();
    let (first, second) = tokio::task::spawn_blocking(move || {
        (
            gc_command(&cci_for_thread, TOKEN, "namespace"),
            gc_command(&cci_for_thread, TOKEN, "namespace"),
        )
    })
    .await
    .unwrap();
    assert!(first.status.success(), "{first:?}");
    assert_eq!(
        String::from_utf8_lossy(&first.stdout),
        "gc namespace bursting-c1: removed 2 pods, 1 configmaps, 1 secrets, 1 pvcs, 1 services, 1 proxyregistrations, 1 networks; namespace removed\n"
    );
    assert!(second.status.success(), "{second:?}");
    assert!(
        String::from_utf8_lossy(&second.stdout).ends_with("; namespace absent\n"),
        "{second:?}"
    );
}

#[tokio::test]
async fn the_gc_command_exits_non_zero_naming_the_step_that_failed() {
    let (_server, cci) = mock().await;
    let cci_for_thread = cci.clone();
    let out =
        tokio::task::spawn_blocking(move || gc_command(&cci_for_thread, "wrong", "resources"))
            .await
            .unwrap();
    assert!(!out.status.success());
    assert!(out.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("gc: list pods in bursting-c1"), "{stderr}");
    assert!(stderr.contains("401"), "{stderr}");

    let bad_scope = tokio::task::spawn_blocking(move || gc_command(&cci, TOKEN, "everything"))
        .await
        .unwrap();
    assert_eq!(bad_scope.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad_scope.stderr).contains("--scope"));
}

/// How long a deleted pod or namespace lingers under [`slow_delete`] in the waiting tests.
const LINGER_MS: u64 = 1500;

/// Makes deletes of `resources` (`pods`, `namespaces`; empty = both) in `bursting-c1` take
/// `millis` before the object is gone.
fn slow_delete(server: &Server, resources: &[&str], millis: u64) {
    let fault: FaultSpec = serde_json::from_value(serde_json::json!({
        "scope": {"namespace": "bursting-c1"},
        "fault": {"type": "slowDelete", "resources": resources, "millis": millis},
    }))
    .unwrap();
    server.state().set_fault(fault).unwrap();
}

/// What the mock still holds of cluster c1: its pods' names, and whether its namespace exists.
fn left_of_c1(server: &Server) -> (Vec<String>, bool) {
    let pods = server
        .state()
        .pods()
        .into_iter()
        .filter(|p| p.namespace == "bursting-c1")
        .map(|p| p.name)
        .collect();
    let namespace = server
        .state()
        .namespaces()
        .iter()
        .any(|n| n.name == "bursting-c1");
    (pods, namespace)
}

/// `gc::collect_within`, failing the test if it has not returned after 30 s (a gc that never
/// gives up).
async fn collect_c1(
    cci: &CciClient,
    scope: Scope,
    deadline: Duration,
) -> bursting_engine::Result<GcReport> {
    tokio::time::timeout(
        Duration::from_secs(30),
        gc::collect_within(cci, "c1", scope, deadline),
    )
    .await
    .expect("gc returns within 30 s")
}

#[rstest]
#[case::resources(Scope::Resources, true)]
#[case::namespace(Scope::Namespace, false)]
#[tokio::test]
async fn gc_waits_until_pods_and_the_namespace_that_linger_after_their_delete_are_gone(
    #[case] scope: Scope,
    #[case] namespace_kept: bool,
) {
    let (server, cci) = mock().await;
    populate(&cci, "c1").await;
    slow_delete(&server, &[], LINGER_MS);

    let report = collect_c1(&cci, scope, gc::DEFAULT_DEADLINE).await.unwrap();
    assert_eq!(report.removed, EVERYTHING);
    assert_eq!(
        left_of_c1(&server),
        (vec![], namespace_kept),
        "nothing of c1 is left when gc returns"
    );
}

#[rstest]
#[case::pods_linger(
    Scope::Resources,
    &[],
    "wait for the pods of bursting-c1 to be gone",
    "2 pods left: ",
    true
)]
#[case::the_namespace_lingers(
    Scope::Namespace,
    &["namespaces"],
    "wait for namespace bursting-c1 to be gone",
    "namespace bursting-c1 still terminating",
    false
)]
#[tokio::test]
async fn gc_that_runs_out_of_time_names_the_step_and_what_is_left(
    #[case] scope: Scope,
    #[case] slow: &[&str],
    #[case] step: &str,
    #[case] left: &str,
    #[case] pods_left: bool,
) {
    let (server, cci) = mock().await;
    populate(&cci, "c1").await;
    let pods: Vec<String> = server.state().pods().into_iter().map(|p| p.name).collect();
    // NB: the deletes take a minute; gc gives up after one second.
    slow_delete(&server, slow, 60_000);

    let err = collect_c1(&cci, scope, Duration::from_secs(1))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::GcTimeout { .. }), "{err:?}");
    let left = if pods_left {
        format!("{left}{}", pods.join(", "))
    } else {
        left.to_owned()
    };
    assert_eq!(
        err.to_string(),
        format!("gc: {step}: not done after 1s; {left}")
    );
    let expected_pods = if pods_left { pods } else { vec![] };
    assert_eq!(left_of_c1(&server), (expected_pods, true));
}

#[tokio::test]
async fn gc_polls_lingering_pods_and_a_lingering_namespace_with_a_doubling_pause_not_a_busy_loop() {
    let (server, cci) = mock().await;
    populate(&cci, "c1").await;
    slow_delete(&server, &[], LINGER_MS);
    let before = server.state().requests().last().map_or(0, |r| r.seq);

    collect_c1(&cci, Scope::Namespace, gc::DEFAULT_DEADLINE)
        .await
        .unwrap();
    let during: Vec<_> = server
        .state()
        .requests()
        .into_iter()
        .filter(|r| r.seq > before && r.method == "GET")
        .collect();
    let count = |path: &str| during.iter().filter(|r| r.path == path).count();
    let pod_lists = count("/apis/cci/v2/namespaces/bursting-c1/pods");
    let namespace_reads = count("/apis/cci/v2/namespaces/bursting-c1");
    // NB: polls 100 ms, 200 ms, 400 ms, 800 ms, 1 s apart: 5 or 6 in a 1.5 s linger (plus the
    // first list of the pods); a pause that shrinks instead makes hundreds. At least: the pods'
    // first list, a poll that finds them terminating and one that finds them gone; a read of
    // the namespace terminating and one of it gone.
    assert!(
        (3..=10).contains(&pod_lists),
        "{pod_lists} pod lists while the pods lingered {LINGER_MS} ms"
    );
    assert!(
        (2..=10).contains(&namespace_reads),
        "{namespace_reads} reads of the namespace while it lingered {LINGER_MS} ms"
    );
}
