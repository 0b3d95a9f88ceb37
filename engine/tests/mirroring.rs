//! `CciProvider` against the strict CCI mock (`mock_cci`, on a loopback port): the pod's
//! ConfigMaps, Secrets and claims are mirrored before it is created, a missing one makes it
//! wait, changes reach CCI, and copies go when the last pod using them does. The cluster is
//! stood in for by `MemoryObjects`.

mod common;

use std::collections::BTreeMap;

use bursting_engine::translate::{ObjectKey, ObjectKind};
use bursting_engine::{CciClient, CciProvider, ClusterObject, MemoryObjects};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{
    ConfigMap, ConfigMapEnvSource, ConfigMapVolumeSource, EnvFromSource, PersistentVolumeClaim,
    PersistentVolumeClaimSpec, PersistentVolumeClaimVolumeSource, ProjectedVolumeSource, Secret,
    SecretVolumeSource, ServiceAccountTokenProjection, Volume, VolumeProjection,
    VolumeResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use mock_cci::{MockConfig, Server};
use vk::Provider;

const TOKEN: &str = "secret";
const NS: &str = "bursting-c1";

struct Fixture {
    server: Server,
    cci: CciClient,
    cluster: MemoryObjects,
    provider: CciProvider,
}

async fn fixture() -> Fixture {
    let server = Server::bind(MockConfig::default().with_token(TOKEN, "tenant-a"))
        .await
        .unwrap();
    let cci = CciClient::new(&server.url(), TOKEN).unwrap();
    let cluster = MemoryObjects::default();
    let provider = CciProvider::new(cci.clone(), cluster.clone(), "c1").unwrap();
    Fixture {
        server,
        cci,
        cluster,
        provider,
    }
}

fn meta(name: &str, version: &str) -> ObjectMeta {
    ObjectMeta {
        namespace: Some("shop".into()),
        name: Some(name.into()),
        resource_version: Some(version.into()),
        ..ObjectMeta::default()
    }
}

fn config_map(name: &str, version: &str, mode: &str) -> ClusterObject {
    ClusterObject::ConfigMap(ConfigMap {
        metadata: meta(name, version),
        data: Some(BTreeMap::from([("mode".into(), mode.into())])),
        ..ConfigMap::default()
    })
}

fn secret(name: &str, key: &str) -> ClusterObject {
    ClusterObject::Secret(Secret {
        metadata: meta(name, "1"),
        data: Some(BTreeMap::from([(
            key.into(),
            ByteString(b"hunter2-do-not-log".to_vec()),
        )])),
        ..Secret::default()
    })
}

fn claim(name: &str) -> ClusterObject {
    ClusterObject::PersistentVolumeClaim(Box::new(PersistentVolumeClaim {
        metadata: meta(name, "1"),
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec!["ReadWriteMany".into()]),
            storage_class_name: Some("csi-nas".into()),
            volume_name: Some("pv-0001".into()),
            resources: Some(VolumeResourceRequirements {
                requests: Some(BTreeMap::from([(
                    "storage".into(),
                    Quantity("10Gi".into()),
                )])),
                limits: None,
            }),
            ..PersistentVolumeClaimSpec::default()
        }),
        status: None,
    }))
}

fn volume(name: &str, set: impl FnOnce(&mut Volume)) -> Volume {
    let mut v = Volume {
        name: name.into(),
        ..Volume::default()
    };
    set(&mut v);
    v
}

fn config_map_volume(name: &str, config_map: &str, optional: Option<bool>) -> Volume {
    volume(name, |v| {
        v.config_map = Some(ConfigMapVolumeSource {
            name: config_map.into(),
            optional,
            ..ConfigMapVolumeSource::default()
        })
    })
}

fn secret_volume(name: &str, secret: &str, optional: Option<bool>) -> Volume {
    volume(name, |v| {
        v.secret = Some(SecretVolumeSource {
            secret_name: Some(secret.into()),
            optional,
            ..SecretVolumeSource::default()
        })
    })
}

impl Fixture {
    fn cci_pods(&self) -> Vec<String> {
        self.server
            .state()
            .pods()
            .into_iter()
            .map(|p| p.name)
            .collect()
    }

    async fn config_map_copy(&self, name: &str) -> Option<cci_api::ConfigMap> {
        match self.cci.get_object(NS, "configmaps", name).await {
            Ok(cm) => Some(cm),
            Err(e) if e.code() == Some(404) => None,
            Err(e) => panic!("{e}"),
        }
    }
}

#[tokio::test]
async fn a_pod_with_configmap_secret_and_claim_volumes_runs_on_the_strict_mock() {
    let f = fixture().await;
    f.cluster.put(config_map("app-config", "1", "fast"));
    f.cluster.put(secret("db", "password"));
    f.cluster.put(claim("shared"));
    let web = common::pod(
        "web-0",
        "uid-1",
        vec![
            config_map_volume("conf", "app-config", None),
            secret_volume("creds", "db", None),
            volume("data", |v| {
                v.persistent_volume_claim = Some(PersistentVolumeClaimVolumeSource {
                    claim_name: "shared".into(),
                    read_only: None,
                })
            }),
        ],
    );
    f.provider.create_pod(&web).await.unwrap();
    f.provider.create_pod(&web).await.unwrap();
    assert_eq!(f.cci_pods(), ["shop.web-0"]);
    let copy = f.config_map_copy("shop.app-config").await.unwrap();
    assert_eq!(copy.data.unwrap()["mode"], "fast");
    let labels = copy.metadata.labels.unwrap();
    assert_eq!(labels["bursting.cci.io/cluster-id"], "c1");
    assert_eq!(labels["bursting.cci.io/cluster-object"], "shop.app-config");
    let secret: cci_api::Secret = f.cci.get_object(NS, "secrets", "shop.db").await.unwrap();
    assert_eq!(
        secret.data.unwrap()["password"].0,
        b"hunter2-do-not-log".to_vec()
    );
    let claim: cci_api::PersistentVolumeClaim = f
        .cci
        .get_object(NS, "persistentvolumeclaims", "shop.shared")
        .await
        .unwrap();
    assert_eq!(claim.spec.storage_class_name.as_deref(), Some("csi-nas"));
    let pod: cci_api::Pod = f.cci.get_pod(NS, "shop.web-0").await.unwrap();
    assert_eq!(
        pod.metadata.annotations.unwrap()["resource.cci.io/size"],
        "0.5_1"
    );
}

#[tokio::test]
async fn a_missing_configmap_makes_the_pod_wait_naming_it_and_creates_nothing() {
    let f = fixture().await;
    let web = common::pod(
        "web-0",
        "uid-1",
        vec![config_map_volume("conf", "app-config", None)],
    );
    let err = f.provider.create_pod(&web).await.unwrap_err();
    assert!(err.is_retryable(), "{err}");
    assert!(
        err.to_string()
            .contains("waiting for configmap shop/app-config"),
        "{err}"
    );
    assert!(f.cci_pods().is_empty());
    f.cluster.put(config_map("app-config", "1", "fast"));
    f.provider.create_pod(&web).await.unwrap();
    assert_eq!(f.cci_pods(), ["shop.web-0"]);
}

#[tokio::test]
async fn an_optional_missing_secret_is_skipped_and_the_pod_still_runs() {
    let f = fixture().await;
    let mut web = common::pod(
        "web-0",
        "uid-1",
        vec![secret_volume("creds", "maybe", Some(true))],
    );
    web.spec.as_mut().unwrap().containers[0].env_from = Some(vec![EnvFromSource {
        config_map_ref: Some(ConfigMapEnvSource {
            name: "also-maybe".into(),
            optional: Some(true),
        }),
        ..EnvFromSource::default()
    }]);
    f.provider.create_pod(&web).await.unwrap();
    assert_eq!(f.cci_pods(), ["shop.web-0"]);
    // Still tracked: once the Secret exists, a refresh mirrors it.
    f.cluster.put(secret("maybe", "k"));
    let key = ObjectKey::new(ObjectKind::Secret, "shop", "maybe");
    f.provider.refresh(&key).await.unwrap();
    let copy: cci_api::Secret = f.cci.get_object(NS, "secrets", "shop.maybe").await.unwrap();
    assert!(copy.data.unwrap().contains_key("k"));
}

#[tokio::test]
async fn a_changed_configmap_reaches_cci_on_refresh() {
    let f = fixture().await;
    f.cluster.put(config_map("app-config", "1", "fast"));
    let web = common::pod(
        "web-0",
        "uid-1",
        vec![config_map_volume("conf", "app-config", None)],
    );
    f.provider.create_pod(&web).await.unwrap();
    f.cluster.put(config_map("app-config", "2", "safe"));
    let key = ObjectKey::new(ObjectKind::ConfigMap, "shop", "app-config");
    f.provider.refresh(&key).await.unwrap();
    let copy = f.config_map_copy("shop.app-config").await.unwrap();
    assert_eq!(copy.data.unwrap()["mode"], "safe");
    // An object no pod uses is not mirrored by a refresh.
    f.cluster.put(config_map("unused", "1", "x"));
    let unused = ObjectKey::new(ObjectKind::ConfigMap, "shop", "unused");
    f.provider.refresh(&unused).await.unwrap();
    assert!(f.config_map_copy("shop.unused").await.is_none());
}

#[tokio::test]
async fn a_copy_is_deleted_with_the_last_pod_using_it_and_deletes_are_idempotent() {
    let f = fixture().await;
    f.cluster.put(config_map("app-config", "1", "fast"));
    let volumes = || vec![config_map_volume("conf", "app-config", None)];
    let (a, b) = (
        common::pod("web-0", "uid-a", volumes()),
        common::pod("web-1", "uid-b", volumes()),
    );
    f.provider.create_pod(&a).await.unwrap();
    f.provider.create_pod(&b).await.unwrap();
    let key = ObjectKey::new(ObjectKind::ConfigMap, "shop", "app-config");
    assert_eq!(f.provider.mirrored().await, [(key.clone(), 2)]);

    f.provider.delete_pod(&a).await.unwrap();
    assert!(f.config_map_copy("shop.app-config").await.is_some());
    f.provider.delete_pod(&b).await.unwrap();
    f.provider.delete_pod(&b).await.unwrap();
    assert!(f.config_map_copy("shop.app-config").await.is_none());
    assert!(f.provider.mirrored().await.is_empty());
    assert!(f.cci_pods().is_empty());
}

#[tokio::test]
async fn a_projected_service_account_token_runs_as_the_accounts_token_secret() {
    let f = fixture().await;
    f.cluster.put(secret("default-token", "token"));
    let web = common::pod(
        "web-0",
        "uid-1",
        vec![volume("sa", |v| {
            v.projected = Some(ProjectedVolumeSource {
                default_mode: None,
                sources: Some(vec![VolumeProjection {
                    service_account_token: Some(ServiceAccountTokenProjection {
                        path: "token".into(),
                        expiration_seconds: Some(3600),
                        audience: None,
                    }),
                    ..VolumeProjection::default()
                }]),
            })
        })],
    );
    f.provider.create_pod(&web).await.unwrap();
    assert_eq!(f.cci_pods(), ["shop.web-0"]);
    let copy: cci_api::Secret = f
        .cci
        .get_object(NS, "secrets", "shop.default-token")
        .await
        .unwrap();
    assert!(copy.data.unwrap().contains_key("token"));
}

#[tokio::test]
async fn errors_about_a_secret_never_carry_its_data() {
    let f = fixture().await;
    // A Secret key CCI refuses: the create of the copy fails, the pod is not created.
    f.cluster.put(secret("db", "bad key!"));
    let web = common::pod("web-0", "uid-1", vec![secret_volume("creds", "db", None)]);
    let err = f.provider.create_pod(&web).await.unwrap_err();
    assert!(!err.to_string().contains("hunter2"), "{err}");
    assert!(!format!("{err:?}").contains("hunter2"), "{err:?}");
    assert!(f.cci_pods().is_empty());
}

#[tokio::test]
async fn a_pod_refused_for_a_sold_out_flavour_fails_with_the_reason() {
    let f = fixture().await;
    f.server
        .state()
        .set_fault(mock_cci::FaultSpec {
            scope: mock_cci::Scope::Namespace(NS.into()),
            fault: mock_cci::Fault::SoldOut {
                flavours: vec!["0.5_1".into()],
            },
        })
        .unwrap();
    let err = f
        .provider
        .create_pod(&common::pod("web-0", "uid-1", vec![]))
        .await
        .unwrap_err();
    match err {
        vk::Error::PodFailed { reason, message } => {
            assert_eq!(reason, bursting_engine::REASON_SOLD_OUT);
            assert!(message.contains("sold out"), "{message}");
        }
        other => panic!("expected PodFailed, got {other}"),
    }
    assert!(f.cci_pods().is_empty());
}
