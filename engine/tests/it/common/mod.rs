//! Builders shared by the engine's integration tests (each test file uses what it needs).
#![allow(dead_code)]

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Container, Pod, PodSpec, ResourceRequirements, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

/// The Network the tests' engines give their CCI namespace (the mock's pods wait for one).
pub fn network() -> bursting_engine::ClusterNetwork {
    bursting_engine::ClusterNetwork {
        subnet_ids: vec!["subnet-1".into()],
        security_group_ids: vec!["sg-1".into()],
        project_id: "project-a".into(),
        domain_id: "domain-a".into(),
        ready_timeout: std::time::Duration::from_secs(30),
    }
}

/// A cluster pod `shop/{name}` with UID `uid`, one `nginx:1.27` container requesting `cpu` and
/// `memory`, mounting each of `volumes` under `/mnt/{volume name}`.
pub fn sized_pod(name: &str, uid: &str, cpu: &str, memory: &str, volumes: Vec<Volume>) -> Pod {
    let mounts: Vec<VolumeMount> = volumes
        .iter()
        .map(|v| VolumeMount {
            name: v.name.clone(),
            mount_path: format!("/mnt/{}", v.name),
            ..VolumeMount::default()
        })
        .collect();
    let quantities = BTreeMap::from([
        ("cpu".into(), Quantity(cpu.into())),
        ("memory".into(), Quantity(memory.into())),
    ]);
    Pod {
        metadata: ObjectMeta {
            namespace: Some("shop".into()),
            name: Some(name.into()),
            uid: Some(uid.into()),
            ..ObjectMeta::default()
        },
        spec: Some(PodSpec {
            containers: vec![Container {
                name: "app".into(),
                image: Some("nginx:1.27".into()),
                volume_mounts: (!mounts.is_empty()).then_some(mounts),
                resources: Some(ResourceRequirements {
                    requests: Some(quantities),
                    ..ResourceRequirements::default()
                }),
                ..Container::default()
            }],
            volumes: (!volumes.is_empty()).then_some(volumes),
            ..PodSpec::default()
        }),
        status: None,
    }
}

/// [`sized_pod`] of 0.5 vCPU / 1 GiB.
pub fn pod(name: &str, uid: &str, volumes: Vec<Volume>) -> Pod {
    sized_pod(name, uid, "500m", "1Gi", volumes)
}

/// Makes `server` answer every `operation` (`"delete pods"`) in CCI namespace `namespace` with
/// `status`, doing nothing.
pub fn fail_every(server: &mock_cci::Server, namespace: &str, operation: &str, status: u16) {
    let fault: mock_cci::FaultSpec = serde_json::from_value(serde_json::json!({
        "scope": {"namespace": namespace},
        "fault": {"type": "errorRate", "operations": [operation], "percent": 100, "status": status},
    }))
    .unwrap();
    server.state().set_fault(fault).unwrap();
}

/// A reqwest client for plain HTTP (its TLS trusts no server: reqwest is built without a
/// default crypto provider, so every client brings its rustls config).
pub fn plain_http() -> reqwest::Client {
    let tls = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(rustls::RootCertStore::empty())
    .with_no_client_auth();
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .build()
        .unwrap()
}
