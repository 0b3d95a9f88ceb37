//! `CciProvider` against the strict CCI mock (`mock_cci`, on a loopback port): the pod's
//! ConfigMaps, Secrets and claims are mirrored before it is created, a missing one makes it
//! wait, changes reach CCI, and copies go when the last pod using them does. The cluster is
//! stood in for by `MemoryObjects`.

use crate::common;

use std::collections::BTreeMap;
use std::time::Duration;

use bursting_engine::translate::{ObjectKey, ObjectKind};
use bursting_engine::{CciClient, CciProvider, ClusterObject, MemoryObjects};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{
    ConfigMap, ConfigMapEnvSource, ConfigMapVolumeSource, EnvFromSource, PersistentVolumeClaim,
    PersistentVolumeClaimSpec, PersistentVolumeClaimVolumeSource, ProjectedVolumeSource, Secret,
    SecretVolumeSource, ServiceAccount, ServiceAccountTokenProjection, Volume, VolumeProjection,
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

    /// Bursts pod `name` (UID `uid`) mounting ConfigMap `app-config` (version 1, mode `fast`),
    /// which it puts in the cluster first.
    async fn burst_with_app_config(
        &self,
        name: &str,
        uid: &str,
    ) -> k8s_openapi::api::core::v1::Pod {
        self.cluster.put(config_map("app-config", "1", "fast"));
        let pod = common::pod(
            name,
            uid,
            vec![config_map_volume("conf", "app-config", None)],
        );
        self.provider.create_pod(&pod).await.unwrap();
        pod
    }

    async fn config_map_copy(&self, name: &str) -> Option<cci_api::ConfigMap> {
        cci_copy(&self.cci, "configmaps", name).await
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
        "0.50_1.0",
        "the size CCI wrote, in its own form"
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
    f.burst_with_app_config("web-0", "uid-1").await;
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

const ACCOUNT_UID: &str = "sa-uid-1";

fn account(name: &str) -> ServiceAccount {
    ServiceAccount {
        metadata: ObjectMeta {
            namespace: Some("shop".into()),
            name: Some(name.into()),
            uid: Some(ACCOUNT_UID.into()),
            ..ObjectMeta::default()
        },
        ..ServiceAccount::default()
    }
}

/// Token Secret `name` of account `account` (version `version`), its token `token` (none yet
/// when empty).
fn token_secret(name: &str, account: &str, version: &str, token: &str) -> ClusterObject {
    ClusterObject::Secret(Secret {
        metadata: ObjectMeta {
            annotations: Some(BTreeMap::from([
                ("kubernetes.io/service-account.name".into(), account.into()),
                (
                    "kubernetes.io/service-account.uid".into(),
                    ACCOUNT_UID.into(),
                ),
            ])),
            ..meta(name, version)
        },
        type_: Some("kubernetes.io/service-account-token".into()),
        data: (!token.is_empty())
            .then(|| BTreeMap::from([("token".into(), ByteString(token.as_bytes().to_vec()))])),
        ..Secret::default()
    })
}

/// Pod `name` running as `reporter` with a projected serviceAccountToken source.
fn token_pod(name: &str, uid: &str) -> k8s_openapi::api::core::v1::Pod {
    let mut pod = common::pod(
        name,
        uid,
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
    pod.spec.as_mut().unwrap().service_account_name = Some("reporter".into());
    pod
}

impl Fixture {
    async fn secret_copy(&self, name: &str) -> Option<cci_api::Secret> {
        cci_copy(&self.cci, "secrets", name).await
    }

    /// The Secret the CCI pod's projected volume `sa` takes its token from.
    async fn token_on_cci_names(&self, pod: &str) -> Option<String> {
        let pod: cci_api::Pod = self.cci.get_pod(NS, pod).await.unwrap();
        pod.spec
            .volumes?
            .into_iter()
            .find(|v| v.name == "sa")?
            .projected?
            .sources?
            .into_iter()
            .find_map(|s| s.secret)
            .map(|s| s.name)
    }
}

#[tokio::test]
async fn a_projected_service_account_token_runs_as_the_accounts_token_secret_whatever_its_name() {
    let f = fixture().await;
    f.cluster.put_service_account(account("reporter"));
    f.cluster.put(token_secret(
        "reporter-long-lived",
        "reporter",
        "1",
        "t0k3n",
    ));
    // Not the account's: another account's, and a plain Secret of the old convention's name.
    f.cluster
        .put(token_secret("builder-token", "builder", "1", "other"));
    f.cluster.put(secret("reporter-token", "token"));
    let web = token_pod("web-0", "uid-1");
    f.provider.create_pod(&web).await.unwrap();
    assert_eq!(f.cci_pods(), ["shop.web-0"]);
    assert_eq!(
        f.token_on_cci_names("shop.web-0").await.as_deref(),
        Some("shop.reporter-long-lived")
    );
    let copy = f.secret_copy("shop.reporter-long-lived").await.unwrap();
    assert_eq!(copy.data.unwrap()["token"].0, b"t0k3n".to_vec());
    assert_eq!(copy.type_.as_deref(), Some("Opaque"));
    assert!(f.secret_copy("shop.reporter-token").await.is_none());
    assert!(f.secret_copy("shop.builder-token").await.is_none());
    let key = ObjectKey::new(ObjectKind::Secret, "shop", "reporter-long-lived");
    assert_eq!(f.provider.mirrored().await, [(key, 1)]);
}

#[tokio::test]
async fn without_a_token_secret_the_pod_waits_naming_what_to_create_then_runs_once_one_has_its_token()
 {
    let f = fixture().await;
    f.cluster.put_service_account(account("reporter"));
    let web = token_pod("web-0", "uid-1");
    let err = f.provider.create_pod(&web).await.unwrap_err();
    assert!(err.is_retryable(), "{err}");
    let message = err.to_string();
    for needle in [
        "service account shop/reporter",
        "namespace shop",
        "type kubernetes.io/service-account-token",
        "annotation kubernetes.io/service-account.name: reporter",
    ] {
        assert!(message.contains(needle), "{needle:?} not in {message}");
    }
    assert!(f.cci_pods().is_empty());

    // Created, not yet filled in by the token controller: still waiting, now for its token.
    f.cluster
        .put(token_secret("reporter-long-lived", "reporter", "1", ""));
    let err = f.provider.create_pod(&web).await.unwrap_err();
    assert!(err.is_retryable(), "{err}");
    assert!(
        err.to_string()
            .contains("secret shop/reporter-long-lived has no token yet"),
        "{err}"
    );
    assert!(f.cci_pods().is_empty());

    f.cluster.put(token_secret(
        "reporter-long-lived",
        "reporter",
        "2",
        "t0k3n",
    ));
    f.provider.create_pod(&web).await.unwrap();
    assert_eq!(f.cci_pods(), ["shop.web-0"]);
    assert_eq!(
        f.token_on_cci_names("shop.web-0").await.as_deref(),
        Some("shop.reporter-long-lived")
    );
}

#[tokio::test]
async fn a_pod_whose_service_account_is_gone_waits_for_it() {
    let f = fixture().await;
    f.cluster.put(token_secret(
        "reporter-long-lived",
        "reporter",
        "1",
        "t0k3n",
    ));
    let err = f
        .provider
        .create_pod(&token_pod("web-0", "uid-1"))
        .await
        .unwrap_err();
    assert!(err.is_retryable(), "{err}");
    assert!(
        err.to_string()
            .contains("service account shop/reporter does not exist"),
        "{err}"
    );
    assert!(f.cci_pods().is_empty());
}

#[tokio::test]
async fn a_rotated_token_reaches_cci_and_the_copy_goes_with_the_last_pod_using_it() {
    let f = fixture().await;
    f.cluster.put_service_account(account("reporter"));
    f.cluster.put(token_secret(
        "reporter-long-lived",
        "reporter",
        "1",
        "first",
    ));
    let (a, b) = (token_pod("web-0", "uid-a"), token_pod("web-1", "uid-b"));
    f.provider.create_pod(&a).await.unwrap();
    f.provider.create_pod(&b).await.unwrap();
    let key = ObjectKey::new(ObjectKind::Secret, "shop", "reporter-long-lived");
    assert_eq!(f.provider.mirrored().await, [(key.clone(), 2)]);

    f.cluster.put(token_secret(
        "reporter-long-lived",
        "reporter",
        "2",
        "second",
    ));
    f.provider.refresh(&key).await.unwrap();
    let copy = f.secret_copy("shop.reporter-long-lived").await.unwrap();
    assert_eq!(copy.data.unwrap()["token"].0, b"second".to_vec());

    f.provider.delete_pod(&a).await.unwrap();
    assert!(f.secret_copy("shop.reporter-long-lived").await.is_some());
    f.provider.delete_pod(&b).await.unwrap();
    assert!(f.secret_copy("shop.reporter-long-lived").await.is_none());
    assert!(f.provider.mirrored().await.is_empty());
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
    fail_sold_out(&f.server);
    let err = f
        .provider
        .create_pod(&common::pod("web-0", "uid-1", vec![]))
        .await
        .unwrap_err();
    match err {
        vk::ProviderError::PodFailed { reason, message } => {
            assert_eq!(reason, bursting_engine::REASON_SOLD_OUT);
            assert!(message.contains("sold out"), "{message}");
        }
        other => panic!("expected PodFailed, got {other}"),
    }
    assert!(f.cci_pods().is_empty());
}

/// The metadata list a watch of `shop`'s objects lists first: `(name, resourceVersion)`.
fn metadata_list(items: &[(&str, &str)]) -> serde_json::Value {
    scripted_api::metadata_list(items.iter().map(|(name, version)| {
        serde_json::json!({"name": name, "namespace": "shop", "resourceVersion": version})
    }))
}

#[tokio::test]
async fn the_cluster_watch_copies_what_changed_of_the_objects_pods_use_and_reads_nothing_else() {
    let Fixture {
        server: _server,
        cci,
        cluster,
        provider,
    } = fixture().await;
    cluster.put(config_map("app-config", "1", "fast"));
    cluster.put(config_map("steady", "1", "same"));
    cluster.put(config_map("unused", "1", "x"));
    cluster.put(secret("creds", "old-key"));
    let web = common::pod(
        "web-0",
        "uid-1",
        vec![
            config_map_volume("conf", "app-config", None),
            config_map_volume("more", "steady", None),
            secret_volume("creds", "creds", None),
        ],
    );
    provider.create_pod(&web).await.unwrap();
    // Changed in the cluster since they were copied: a ConfigMap and a Secret.
    cluster.put(config_map("app-config", "2", "safe"));
    let ClusterObject::Secret(mut creds) = secret("creds", "new-key") else {
        unreachable!()
    };
    creds.metadata.resource_version = Some("2".into());
    cluster.put(ClusterObject::Secret(creds));
    let reads = cluster.reads();

    let (client, mut api) = scripted_api::client();
    let watch = std::sync::Arc::new(provider).watch_cluster_objects(client);
    let copied = async {
        loop {
            let config_map: Option<cci_api::ConfigMap> =
                cci_copy(&cci, "configmaps", "shop.app-config").await;
            let secret: Option<cci_api::Secret> = cci_copy(&cci, "secrets", "shop.creds").await;
            let mode = config_map.and_then(|c| c.data?.remove("mode"));
            let new_key = secret
                .and_then(|s| s.data)
                .is_some_and(|d| d.contains_key("new-key"));
            if mode.as_deref() == Some("safe") && new_key {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    };
    let work = async {
        tokio::select! {
            () = watch => panic!("the cluster watch ended"),
            () = copied => {}
        }
    };
    let ((), seen) = scripted_api::served(&mut api, work, |_, path| {
        if path.contains("watch=true") {
            None
        } else if path.starts_with("/api/v1/configmaps?") {
            // The unchanged and the unused first: by the time the changed one is copied, they
            // have been judged.
            let items = [("unused", "1"), ("steady", "1"), ("app-config", "2")];
            Some((200, metadata_list(&items)))
        } else if path.starts_with("/api/v1/secrets?") {
            Some((200, metadata_list(&[("creds", "2")])))
        } else {
            Some((404, scripted_api::failure(404, "NotFound")))
        }
    })
    .await;
    assert!(
        seen.iter()
            .any(|r| r.starts_with("GET /api/v1/configmaps?"))
            && seen.iter().any(|r| r.starts_with("GET /api/v1/secrets?")),
        "{seen:?}"
    );
    assert_eq!(
        cluster.reads() - reads,
        2,
        "only the two changed objects are read again"
    );
}

/// The CCI copy `name` of kind `plural` in the cluster's namespace, if there is one.
async fn cci_copy<T: serde::de::DeserializeOwned>(
    cci: &CciClient,
    plural: &str,
    name: &str,
) -> Option<T> {
    match cci.get_object(NS, plural, name).await {
        Ok(copy) => Some(copy),
        Err(e) if e.code() == Some(404) => None,
        Err(e) => panic!("{e}"),
    }
}

/// The mock's API requests whose method is `method` and whose path contains `path`.
fn requests(server: &Server, method: &str, path: &str) -> usize {
    server
        .state()
        .requests()
        .iter()
        .filter(|r| r.method == method && r.path.contains(path))
        .count()
}

#[tokio::test]
async fn an_object_copied_already_at_its_version_is_not_written_again_for_the_next_pod() {
    let f = fixture().await;
    f.cluster.put(config_map("app-config", "1", "fast"));
    let volumes = || vec![config_map_volume("conf", "app-config", None)];
    for (name, uid) in [("web-0", "uid-a"), ("web-1", "uid-b")] {
        f.provider
            .create_pod(&common::pod(name, uid, volumes()))
            .await
            .unwrap();
    }
    assert_eq!(requests(&f.server, "POST", "/configmaps"), 1, "one copy");
    assert_eq!(
        requests(&f.server, "PUT", "/configmaps"),
        0,
        "never replaced"
    );
}

#[rstest::rstest]
#[case::a_configmap(
    "configmaps",
    config_map("app-config", "1", "fast"),
    config_map_volume("conf", "app-config", None)
)]
#[case::a_claim("persistentvolumeclaims", claim("data"), volume("data", |v| {
    v.persistent_volume_claim = Some(PersistentVolumeClaimVolumeSource {
        claim_name: "data".into(),
        read_only: None,
    })
}))]
#[tokio::test]
async fn a_copy_cci_fails_to_create_fails_the_pod_and_is_not_replaced_instead(
    #[case] plural: &str,
    #[case] object: ClusterObject,
    #[case] volume: Volume,
) {
    let f = fixture().await;
    f.cluster.put(object);
    fail_every(&f.server, &format!("create {plural}"), 500);
    let err = f
        .provider
        .create_pod(&common::pod("web-0", "uid-1", vec![volume]))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("500"), "{err}");
    assert_eq!(
        requests(&f.server, "PUT", plural),
        0,
        "{plural}: no replace"
    );
    assert!(f.cci_pods().is_empty(), "no pod without its {plural}");
}

#[tokio::test]
async fn a_pod_created_after_its_cci_namespace_vanished_makes_it_again_on_the_retry() {
    let f = fixture().await;
    f.provider
        .create_pod(&common::pod("web-0", "uid-a", vec![]))
        .await
        .unwrap();
    // Vanished: emptied (so no grace period runs), deleted, and gone.
    f.cci.delete_pod_now(NS, "shop.web-0").await.unwrap();
    f.cci.delete_namespace(NS).await.unwrap();
    until_namespace_gone(&f.cci).await;
    let web = common::pod("web-1", "uid-b", vec![]);
    let err = f.provider.create_pod(&web).await.unwrap_err();
    assert!(err.to_string().contains("404"), "{err}");
    f.provider.create_pod(&web).await.unwrap();
    assert_eq!(f.cci_pods(), ["shop.web-1"]);
}

/// Waits until CCI namespace [`NS`] is gone (CCI deletes namespaces asynchronously).
async fn until_namespace_gone(cci: &CciClient) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while cci.get_namespace(NS).await.is_ok() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "namespace {NS} still there after 20 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_pod_waits_while_its_cci_namespace_is_terminating_then_the_namespace_is_made_anew() {
    let f = fixture().await;
    f.provider
        .create_pod(&common::pod("web-0", "uid-a", vec![]))
        .await
        .unwrap();
    f.cci.delete_namespace(NS).await.unwrap();
    let terminating = f.cci.get_namespace(NS).await.unwrap();
    assert!(terminating.is_terminating(), "{terminating:?}");
    // An engine started now (a reinstall right after an uninstall) finds it Terminating.
    let fresh = CciProvider::new(f.cci.clone(), f.cluster.clone(), "c1").unwrap();
    let web = common::pod("web-1", "uid-b", vec![]);
    let err = fresh.create_pod(&web).await.unwrap_err();
    assert!(err.is_retryable(), "{err}");
    assert!(err.to_string().contains("Terminating"), "{err}");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(40);
    while let Err(e) = fresh.create_pod(&web).await {
        assert!(e.is_retryable(), "{e}");
        assert!(tokio::time::Instant::now() < deadline, "still refused: {e}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(f.cci_pods(), ["shop.web-1"]);
}

/// Makes the mock answer every `operation` (`"delete pods"`) in the cluster's namespace with
/// `status`, doing nothing.
fn fail_every(server: &Server, operation: &str, status: u16) {
    common::fail_every(server, NS, operation, status);
}

#[tokio::test]
async fn a_copy_gone_from_cci_already_does_not_stop_its_last_pod_being_deleted() {
    let f = fixture().await;
    let web = f.burst_with_app_config("web-0", "uid-a").await;
    f.cci
        .delete_object(NS, "configmaps", "shop.app-config")
        .await
        .unwrap();
    f.provider.delete_pod(&web).await.unwrap();
    assert!(f.provider.mirrored().await.is_empty());
}

#[tokio::test]
async fn a_copy_cci_fails_to_delete_fails_the_delete_and_goes_on_the_retry() {
    let f = fixture().await;
    let web = f.burst_with_app_config("web-0", "uid-a").await;
    fail_every(&f.server, "delete configmaps", 503);
    let err = f.provider.delete_pod(&web).await.unwrap_err();
    assert!(err.to_string().contains("503"), "{err}");
    let key = ObjectKey::new(ObjectKind::ConfigMap, "shop", "app-config");
    assert_eq!(f.provider.mirrored().await, [(key, 1)], "still counted");
    f.server.state().clear_faults();
    f.provider.delete_pod(&web).await.unwrap();
    assert!(f.config_map_copy("shop.app-config").await.is_none());
    assert!(f.provider.mirrored().await.is_empty());
}

#[rstest::rstest]
#[case::read("get pods")]
#[case::deleted("delete pods")]
#[tokio::test]
async fn a_cci_pod_that_cannot_be_read_or_deleted_fails_the_delete_and_stays(
    #[case] operation: &str,
) {
    let f = fixture().await;
    let web = common::pod("web-0", "uid-a", vec![]);
    f.provider.create_pod(&web).await.unwrap();
    fail_every(&f.server, operation, 503);
    let err = f.provider.delete_pod(&web).await.unwrap_err();
    assert!(err.to_string().contains("503"), "{err}");
    assert_eq!(f.cci_pods(), ["shop.web-0"]);
}

#[tokio::test]
async fn a_cci_pod_delete_answered_not_found_counts_as_done() {
    let f = fixture().await;
    let web = common::pod("web-0", "uid-a", vec![]);
    f.provider.create_pod(&web).await.unwrap();
    // Gone between the read and the delete (here: CCI says so).
    fail_every(&f.server, "delete pods", 404);
    f.provider.delete_pod(&web).await.unwrap();
}

#[tokio::test]
async fn a_cci_list_that_fails_is_an_error_not_an_empty_list() {
    let f = fixture().await;
    f.provider
        .create_pod(&common::pod("web-0", "uid-a", vec![]))
        .await
        .unwrap();
    fail_every(&f.server, "list pods", 503);
    let err = f.provider.list_pods().await.unwrap_err();
    assert!(err.to_string().contains("503"), "{err}");
}

#[tokio::test]
async fn a_pod_cci_refuses_as_sold_out_locks_the_virtual_node_before_it_fails() {
    let f = fixture().await;
    let (client, mut api) = scripted_api::client();
    let lock = bursting_engine::lock::NodeLock::new(
        client,
        "bursting-node",
        std::time::Duration::from_secs(300),
    );
    let provider = f.provider.with_node_lock(std::sync::Arc::new(lock));
    fail_sold_out(&f.server);
    let node = serde_json::json!({"apiVersion": "v1", "kind": "Node",
        "metadata": {"name": "bursting-node"}, "spec": {"unschedulable": true}});
    let (result, bodies) = scripted_api::scripted(
        &mut api,
        provider.create_pod(&common::pod("web-0", "uid-1", vec![])),
        vec![scripted_api::expect(
            http::Method::PATCH,
            "/api/v1/nodes/bursting-node",
            200,
            node,
        )],
    )
    .await;
    assert!(bursting_engine::lock::locks_node(&result.unwrap_err()));
    assert_eq!(bodies[0]["spec"]["unschedulable"], true, "{}", bodies[0]);
}

/// Makes the mock refuse pods of `common::pod`'s size (0.5 vCPU, 1 GiB) as sold out.
fn fail_sold_out(server: &Server) {
    server
        .state()
        .set_fault(mock_cci::FaultSpec {
            scope: mock_cci::Scope::Namespace(NS.into()),
            fault: mock_cci::Fault::SoldOut {
                flavours: vec!["0.5_1".into()],
            },
        })
        .unwrap();
}
