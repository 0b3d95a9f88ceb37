//! The uninstall gc against the strict CCI mock (`mock_cci`, on a loopback port): it empties
//! (and removes) its own cluster's namespace only, is idempotent, does not wait out grace
//! periods, and names the step that failed (BEHAVIOR.md §8). Also run as the `gc` command.

use std::collections::BTreeMap;
use std::time::Duration;

use bursting_engine::gc::{self, GcReport, NamespaceOutcome, Removed, Scope};
use bursting_engine::{CciClient, DEFAULT_RELEASE, proxy, translate};
use cci_api::{
    ConfigMap, NETWORK_API_VERSION, Network, NetworkSpec, NetworkSubnet, PersistentVolumeClaim,
    Secret, Service,
};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{
    Container, PersistentVolumeClaimSpec, Pod, PodSpec, ResourceRequirements, ServicePort,
    ServiceSpec, VolumeResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use mock_cci::{FaultSpec, MockConfig, Server};

const TOKEN: &str = "secret";

async fn mock() -> (Server, CciClient) {
    let server = Server::bind(
        MockConfig::default()
            .with_token(TOKEN, "tenant-a")
            .with_running_after(Duration::ZERO),
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
    proxy::register(cci, cluster_id, DEFAULT_RELEASE, Some("10.0.0.5:8900"))
        .await
        .unwrap();
    let network = Network {
        api_version: NETWORK_API_VERSION.into(),
        kind: "Network".into(),
        metadata: named("bursting-net"),
        spec: NetworkSpec {
            subnets: Some(vec![NetworkSubnet {
                subnet_id: "subnet-1".into(),
            }]),
            ..NetworkSpec::default()
        },
        status: None,
    };
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
    let fault: FaultSpec = serde_json::from_value(serde_json::json!({
        "scope": {"namespace": "bursting-c1"},
        "fault": {"type": "errorRate", "operations": ["delete secrets"], "percent": 100, "status": 503},
    }))
    .unwrap();
    server.state().set_fault(fault).unwrap();
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
