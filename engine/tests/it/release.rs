//! The engine's release against the strict CCI mock (`mock_cci`, on a loopback port): new CCI
//! pods carry the sidecar protocol and the release they were burst under, and an engine
//! restarted at another release (a new `CciProvider` on the same CCI) never rewrites or fails
//! the pods that run already (BEHAVIOR.md §9).

use crate::common;

use burst_rules::release::Release;
use bursting_engine::{CciClient, CciProvider, MemoryObjects};
use cci_api::{ANNOTATION_RELEASE, ANNOTATION_SIDECAR_PROTOCOL};
use k8s_openapi::api::core::v1::{HostPathVolumeSource, Volume};
use mock_cci::{MockConfig, Server};
use vk::Provider;

const TOKEN: &str = "secret";
const NS: &str = "bursting-c1";

async fn mock() -> (Server, CciClient) {
    let server = Server::bind(MockConfig::default().with_token(TOKEN, "tenant-a"))
        .await
        .unwrap();
    let cci = CciClient::new(&server.url(), TOKEN).unwrap();
    (server, cci)
}

/// The engine as started with `--release {release}`: a fresh provider, nothing remembered.
fn engine_at(cci: &CciClient, release: &str) -> CciProvider {
    CciProvider::new(cci.clone(), MemoryObjects::default(), "c1")
        .unwrap()
        .with_release(release.parse::<Release>().unwrap())
}

fn localtime() -> Volume {
    Volume {
        name: "tz".into(),
        host_path: Some(HostPathVolumeSource {
            path: "/etc/localtime".into(),
            type_: Some("File".into()),
        }),
        ..Volume::default()
    }
}

/// `(sidecar protocol, release, resourceVersion)` of CCI pod `name`.
async fn burst_as(cci: &CciClient, name: &str) -> (String, String, String) {
    let pod = cci.get_pod(NS, name).await.unwrap();
    let annotations = pod.metadata.annotations.unwrap_or_default();
    (
        annotations[ANNOTATION_SIDECAR_PROTOCOL].clone(),
        annotations[ANNOTATION_RELEASE].clone(),
        pod.metadata.resource_version.unwrap_or_default(),
    )
}

#[tokio::test]
async fn only_pods_created_after_an_upgrade_get_the_new_sidecar_and_a_rollback_rewrites_nothing() {
    let (_server, cci) = mock().await;
    let old = common::pod("old", "uid-old", vec![]);
    engine_at(&cci, "1.5.17").create_pod(&old).await.unwrap();
    let before = burst_as(&cci, "shop.old").await;
    assert_eq!((before.0.as_str(), before.1.as_str()), ("v1", "1.5.17"));

    // Upgrade: the restarted engine re-creates every live pod (idempotently) and a new one.
    let upgraded = engine_at(&cci, "1.5.18");
    upgraded.create_pod(&old).await.unwrap();
    let new = common::pod("new", "uid-new", vec![]);
    upgraded.create_pod(&new).await.unwrap();
    assert_eq!(
        burst_as(&cci, "shop.old").await,
        before,
        "not modified in any way"
    );
    let after = burst_as(&cci, "shop.new").await;
    assert_eq!((after.0.as_str(), after.1.as_str()), ("v2", "1.5.18"));

    // Rollback: both pods stay as they were burst.
    let rolled_back = engine_at(&cci, "1.5.17");
    rolled_back.create_pod(&old).await.unwrap();
    rolled_back.create_pod(&new).await.unwrap();
    assert_eq!(burst_as(&cci, "shop.old").await, before);
    assert_eq!(burst_as(&cci, "shop.new").await, after);
}

#[tokio::test]
async fn a_running_pod_this_release_would_refuse_is_adopted_as_it_is_not_failed() {
    let (_server, cci) = mock().await;
    let clock = common::pod("clock", "uid-clock", vec![localtime()]);
    engine_at(&cci, "1.5.9").create_pod(&clock).await.unwrap();
    let before = burst_as(&cci, "shop.clock").await;

    let rolled_back = engine_at(&cci, "1.5.8");
    rolled_back.create_pod(&clock).await.unwrap();
    assert_eq!(burst_as(&cci, "shop.clock").await, before);
    // And it can still be deleted through the engine that adopted it.
    rolled_back.delete_pod(&clock).await.unwrap();
    let gone = cci.get_pod(NS, "shop.clock").await.unwrap_err();
    assert_eq!(gone.code(), Some(404));
}

#[tokio::test]
async fn a_new_pod_this_release_refuses_is_refused_naming_the_gate() {
    let (_server, cci) = mock().await;
    let clock = common::pod("clock", "uid-clock", vec![localtime()]);
    let err = engine_at(&cci, "1.5.8")
        .create_pod(&clock)
        .await
        .unwrap_err();
    let vk::ProviderError::InvalidInput(message) = err else {
        panic!("not a refusal: {err:?}");
    };
    assert!(message.contains(">= 1.5.9; this is 1.5.8"), "{message}");
}

#[tokio::test]
async fn a_refused_pod_does_not_adopt_a_cci_pod_of_another_uid_under_its_name() {
    let (_server, cci) = mock().await;
    engine_at(&cci, "1.5.9")
        .create_pod(&common::pod("clock", "uid-first", vec![localtime()]))
        .await
        .unwrap();
    let err = engine_at(&cci, "1.5.8")
        .create_pod(&common::pod("clock", "uid-second", vec![localtime()]))
        .await
        .unwrap_err();
    assert!(matches!(err, vk::ProviderError::InvalidInput(_)), "{err:?}");
}

#[tokio::test]
async fn a_refused_pod_whose_cci_pod_cannot_be_read_fails_transiently_not_as_refused() {
    let (server, cci) = mock().await;
    // The restarted engine cannot tell whether the pod runs on CCI already: CCI answers 503.
    common::fail_every(&server, NS, "get pods", 503);
    let err = engine_at(&cci, "1.5.8")
        .create_pod(&common::pod("clock", "uid-clock", vec![localtime()]))
        .await
        .unwrap_err();
    assert!(
        matches!(err, vk::ProviderError::Transient { .. }),
        "a CCI outage is retried, not a refusal: {err:?}"
    );
}
