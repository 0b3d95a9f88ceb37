//! ConfigMaps, Secrets and PersistentVolumeClaims through the API.

use crate::common;

use axum::http::{Method, StatusCode};
use common::*;
use rstest::rstest;
use serde_json::{Value, json};

const CONFIGMAPS: &str = "/apis/cci/v2/namespaces/ns/configmaps";
const SECRETS: &str = "/apis/cci/v2/namespaces/ns/secrets";
const CLAIMS: &str = "/apis/cci/v2/namespaces/ns/persistentvolumeclaims";

fn config_map(name: &str, labels: Value, data: Value) -> Value {
    json!({"apiVersion": "cci/v2", "kind": "ConfigMap", "metadata": {"name": name, "labels": labels}, "data": data})
}

fn claim(name: &str, class: &str) -> Value {
    json!({"apiVersion": "cci/v2", "kind": "PersistentVolumeClaim", "metadata": {"name": name},
           "spec": {"accessModes": ["ReadWriteMany"], "storageClassName": class,
                    "resources": {"requests": {"storage": "10Gi"}}}})
}

#[tokio::test]
async fn a_config_map_is_created_read_listed_by_label_updated_and_deleted() {
    let (app, state) = mock_with_namespace().await;
    let created = post(
        &app,
        CONFIGMAPS,
        config_map("app", json!({"tier": "web"}), json!({"a": "1"})),
    )
    .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    assert_eq!(created.body["metadata"]["namespace"], "ns");
    assert!(created.body["metadata"]["uid"].is_string());
    post(&app, CONFIGMAPS, config_map("other", json!({}), json!({}))).await;

    let got = get(&app, &format!("{CONFIGMAPS}/app")).await;
    assert_eq!(got.body, created.body);
    let list = get(&app, &format!("{CONFIGMAPS}?labelSelector=tier%3Dweb")).await;
    assert_eq!(list.body["kind"], "ConfigMapList");
    assert_eq!(list.body["items"].as_array().unwrap().len(), 1);

    let mut changed = created.body.clone();
    changed["data"] = json!({"a": "2"});
    let updated = put(&app, &format!("{CONFIGMAPS}/app"), changed).await;
    assert_eq!(updated.status, StatusCode::OK, "{}", updated.body);
    assert_eq!(updated.body["data"], json!({"a": "2"}));
    assert_eq!(
        updated.body["metadata"]["uid"],
        created.body["metadata"]["uid"]
    );
    assert!(rv(&updated.body) > rv(&created.body));

    let dump = state.with_store(|s, now| s.dump(now));
    assert_eq!(
        dump["tenants"]["tenant-a"]["ns"]["configmaps"]["app"]["data"],
        json!({"a": "2"})
    );

    let deleted = delete(&app, &format!("{CONFIGMAPS}/app")).await;
    assert_eq!(deleted.status, StatusCode::OK);
    let gone = get(&app, &format!("{CONFIGMAPS}/app")).await;
    assert_status(&gone, 404, "NotFound", "CCI.01.404000");
    assert_eq!(
        gone.message(),
        r#"ConfigMap "app" not found in namespace "ns""#
    );
}

#[tokio::test]
async fn an_update_with_a_stale_resource_version_conflicts_and_changes_nothing() {
    let (app, _) = mock_with_namespace().await;
    let created = post(
        &app,
        CONFIGMAPS,
        config_map("app", json!({}), json!({"a": "1"})),
    )
    .await;
    let mut first = created.body.clone();
    first["data"] = json!({"a": "2"});
    assert_eq!(
        put(&app, &format!("{CONFIGMAPS}/app"), first).await.status,
        StatusCode::OK
    );
    let mut stale = created.body.clone();
    stale["data"] = json!({"a": "3"});
    let reply = put(&app, &format!("{CONFIGMAPS}/app"), stale).await;
    assert_status(&reply, 409, "Conflict", "CCI.01.409000");
    assert!(
        reply.message().contains("the object has been modified"),
        "{}",
        reply.message()
    );
    assert_eq!(
        get(&app, &format!("{CONFIGMAPS}/app")).await.body["data"],
        json!({"a": "2"})
    );
    // Without a resourceVersion the update is unconditional.
    let mut blind = config_map("app", json!({}), json!({"a": "4"}));
    blind["metadata"]
        .as_object_mut()
        .unwrap()
        .remove("resourceVersion");
    assert_eq!(
        put(&app, &format!("{CONFIGMAPS}/app"), blind).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn an_update_of_a_missing_object_or_under_another_name_is_refused() {
    let (app, _) = mock_with_namespace().await;
    let reply = put(
        &app,
        &format!("{CONFIGMAPS}/nope"),
        config_map("nope", json!({}), json!({})),
    )
    .await;
    assert_status(&reply, 404, "NotFound", "CCI.01.404000");
    post(&app, CONFIGMAPS, config_map("app", json!({}), json!({}))).await;
    let reply = put(
        &app,
        &format!("{CONFIGMAPS}/app"),
        config_map("other", json!({}), json!({})),
    )
    .await;
    assert_status(&reply, 422, "Invalid", "CCI.01.422001");
}

#[tokio::test]
async fn a_config_map_over_one_mebibyte_is_too_long_and_one_just_under_is_fine() {
    let (app, _) = mock_with_namespace().await;
    let big = "x".repeat(1024 * 1024);
    let reply = post(
        &app,
        CONFIGMAPS,
        config_map("big", json!({}), json!({"k": big})),
    )
    .await;
    assert_status(&reply, 422, "Invalid", "CCI.01.422001");
    assert!(
        reply
            .message()
            .contains("data: Too long: must have at most 1048576 bytes"),
        "{}",
        reply.message()
    );
    let fits = "x".repeat(1024 * 1024 - 1);
    let reply = post(
        &app,
        CONFIGMAPS,
        config_map("fits", json!({}), json!({"k": fits})),
    )
    .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.message());
}

#[rstest]
#[case::bad_key(json!({"a b": "1"}), "data[a b]: Invalid value")]
#[case::dot_dot(json!({"..": "1"}), "data[..]: Invalid value")]
#[tokio::test]
async fn config_map_keys_follow_the_kubernetes_rules(#[case] data: Value, #[case] expected: &str) {
    let (app, _) = mock_with_namespace().await;
    let reply = post(&app, CONFIGMAPS, config_map("cm", json!({}), data)).await;
    assert_status(&reply, 422, "Invalid", "CCI.01.422001");
    assert!(reply.message().contains(expected), "{}", reply.message());
}

#[tokio::test]
async fn an_immutable_config_map_keeps_its_data() {
    let (app, _) = mock_with_namespace().await;
    let mut body = config_map("frozen", json!({}), json!({"a": "1"}));
    body["immutable"] = json!(true);
    let created = post(&app, CONFIGMAPS, body).await;
    let mut changed = created.body.clone();
    changed["data"] = json!({"a": "2"});
    let reply = put(&app, &format!("{CONFIGMAPS}/frozen"), changed).await;
    assert_status(&reply, 422, "Invalid", "CCI.01.422001");
    assert!(
        reply
            .message()
            .contains("data: Forbidden: field is immutable"),
        "{}",
        reply.message()
    );
}

#[tokio::test]
async fn a_secret_merges_string_data_into_base64_data_and_checks_its_type() {
    let (app, _) = mock_with_namespace().await;
    let body = json!({"apiVersion": "cci/v2", "kind": "Secret", "metadata": {"name": "s"},
                      "data": {"a": "YQ=="}, "stringData": {"b": "b"}});
    let created = post(&app, SECRETS, body).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    assert_eq!(created.body["data"], json!({"a": "YQ==", "b": "Yg=="}));
    assert_eq!(created.body["type"], "Opaque");
    assert!(created.body.get("stringData").is_none());

    let pull = json!({"apiVersion": "cci/v2", "kind": "Secret", "metadata": {"name": "imagepull-secret"},
                      "type": "kubernetes.io/dockerconfigjson", "stringData": {"other": "x"}});
    let reply = post(&app, SECRETS, pull).await;
    assert_status(&reply, 422, "Invalid", "CCI.01.422001");
    assert!(
        reply
            .message()
            .contains("data[.dockerconfigjson]: Required value"),
        "{}",
        reply.message()
    );
    let pull = json!({"apiVersion": "cci/v2", "kind": "Secret", "metadata": {"name": "imagepull-secret"},
                      "type": "kubernetes.io/dockerconfigjson", "stringData": {".dockerconfigjson": "{\"auths\": {}}"}});
    assert_eq!(post(&app, SECRETS, pull).await.status, StatusCode::CREATED);
}

#[tokio::test]
async fn a_claim_of_an_sfs_class_is_bound_and_others_are_refused() {
    let (app, _) = mock_with_namespace().await;
    for class in ["csi-nas", "csi-sfsturbo"] {
        let reply = post(&app, CLAIMS, claim(class, class)).await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
        assert_eq!(reply.body["status"]["phase"], "Bound");
        assert_eq!(reply.body["status"]["capacity"]["storage"], "10Gi");
    }
    let reply = post(&app, CLAIMS, claim("disk", "csi-disk")).await;
    assert_status(&reply, 422, "Invalid", "CCI.01.422001");
    assert!(
        reply.message().contains(
            "spec.storageClassName: Forbidden: \"csi-disk\" is not an SFS or SFS Turbo class"
        ),
        "{}",
        reply.message()
    );
}

#[tokio::test]
async fn the_sfs_classes_can_be_configured() {
    let (app, _) = with_namespace(mock_with(config().with_sfs_storage_classes(&["my-nas"]))).await;
    assert_eq!(
        post(&app, CLAIMS, claim("a", "my-nas")).await.status,
        StatusCode::CREATED
    );
    assert_eq!(
        post(&app, CLAIMS, claim("b", "csi-nas")).await.status,
        StatusCode::UNPROCESSABLE_ENTITY
    );
}

#[tokio::test]
async fn a_claim_may_grow_but_not_shrink_or_change_class() {
    let (app, _) = mock_with_namespace().await;
    let created = post(&app, CLAIMS, claim("data", "csi-nas")).await.body;
    let mut grown = created.clone();
    grown["spec"]["resources"]["requests"]["storage"] = json!("20Gi");
    let reply = put(&app, &format!("{CLAIMS}/data"), grown).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let mut shrunk = reply.body.clone();
    shrunk["spec"]["resources"]["requests"]["storage"] = json!("5Gi");
    let reply = put(&app, &format!("{CLAIMS}/data"), shrunk).await;
    assert!(
        reply.message().contains("claims only grow"),
        "{}",
        reply.message()
    );
}

#[tokio::test]
async fn objects_of_another_tenant_are_forbidden_and_go_with_their_namespace() {
    // NB: no termination time, so the emptied namespace goes at its DELETE and can be made again.
    let (app, state) = with_namespace(mock_with(
        config().with_namespace_termination(std::time::Duration::ZERO),
    ))
    .await;
    post(&app, CONFIGMAPS, config_map("app", json!({}), json!({}))).await;
    let reply = call(
        &app,
        Method::GET,
        &format!("{CONFIGMAPS}/app"),
        Some(TOKEN_B),
        None,
    )
    .await;
    assert_status(&reply, 403, "Forbidden", "CCI.01.403104");
    delete(&app, "/apis/cci/v2/namespaces/ns").await;
    post(&app, "/apis/cci/v2/namespaces", namespace("ns")).await;
    assert_eq!(
        get(&app, &format!("{CONFIGMAPS}/app")).await.status,
        StatusCode::NOT_FOUND
    );
    assert!(state.pods().is_empty());
}

const SERVICES: &str = "/apis/cci/v2/namespaces/ns/services";

#[tokio::test]
async fn a_service_gets_a_cluster_ip_from_the_cci_service_cidr_and_keeps_it() {
    let (app, _) = mock_with_namespace().await;
    let body = json!({"apiVersion": "cci/v2", "kind": "Service", "metadata": {"name": "web"},
                      "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]}});
    let created = post(&app, SERVICES, body).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let ip = created.body["spec"]["clusterIP"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(ip.starts_with("10.247."), "{ip}");
    assert_eq!(created.body["spec"]["type"], "ClusterIP");
    let mut changed = created.body.clone();
    changed["spec"]["ports"][0]["port"] = json!(81);
    let updated = put(&app, &format!("{SERVICES}/web"), changed).await;
    assert_eq!(updated.status, StatusCode::OK, "{}", updated.body);
    assert_eq!(updated.body["spec"]["clusterIP"], ip);

    let bad = json!({"apiVersion": "cci/v2", "kind": "Service", "metadata": {"name": "1web"},
                     "spec": {"type": "NodePort", "clusterIP": "10.0.0.1", "ports": [{"port": 70000, "protocol": "ICMP"}]}});
    let reply = post(&app, SERVICES, bad).await;
    assert_status(&reply, 422, "Invalid", "CCI.01.422001");
    for field in [
        "metadata.name",
        "spec.type",
        "spec.ports[0].port",
        "spec.ports[0].protocol",
        "spec.clusterIP",
    ] {
        assert!(
            reply.message().contains(field),
            "{field}: {}",
            reply.message()
        );
    }
}
