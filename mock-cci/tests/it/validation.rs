//! Pod validation, row by row, through the API: what the service accepts (and the size it
//! writes), and what it refuses (and the field it names).

use crate::common;

use axum::http::StatusCode;
use common::*;
use rstest::rstest;
use serde_json::{Value, json};

/// A mock with namespace `ns` holding ConfigMap `cm`, Secret `sec` and the SFS claim `nas`.
async fn mock_with_objects() -> axum::Router {
    let (app, _) = mock_with_namespace().await;
    let objects = [
        (
            "configmaps",
            json!({"apiVersion": "cci/v2", "kind": "ConfigMap", "metadata": {"name": "cm"}, "data": {"k": "v"}}),
        ),
        (
            "secrets",
            json!({"apiVersion": "cci/v2", "kind": "Secret", "metadata": {"name": "sec"}, "stringData": {"k": "v"}}),
        ),
        (
            "persistentvolumeclaims",
            json!({"apiVersion": "cci/v2", "kind": "PersistentVolumeClaim", "metadata": {"name": "nas"},
                   "spec": {"accessModes": ["ReadWriteMany"], "storageClassName": "csi-nas",
                            "resources": {"requests": {"storage": "10Gi"}}}}),
        ),
    ];
    for (plural, body) in objects {
        let reply = post(&app, &format!("/apis/cci/v2/namespaces/ns/{plural}"), body).await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    }
    app
}

fn base() -> Value {
    pod("web", json!({}))
}

fn container(p: &mut Value) -> &mut Value {
    &mut p["spec"]["containers"][0]
}

fn side(p: &mut Value, container: Value) {
    p["spec"]["containers"]
        .as_array_mut()
        .unwrap()
        .push(container);
}

fn annotate(p: &mut Value, key: &str, value: &str) {
    p["metadata"]["annotations"] = json!({ key: value });
}

fn volume(p: &mut Value, volume: Value) {
    p["spec"]["volumes"] = json!([volume]);
}

fn mount(p: &mut Value, mount: Value) {
    container(p)["volumeMounts"] = json!([mount]);
}

#[rstest]
#[case::seed_nginx(|_: &mut Value| {}, "0.50_1.0")]
#[case::containers_add_up(|p: &mut Value| {
    container(p)["resources"] = resources("1", "2Gi");
    side(p, json!({"name": "side", "image": "busybox", "resources": resources("1500m", "3Gi")}));
}, "4.00_5.0")]
#[case::largest_init_container_counts(|p: &mut Value| {
    p["spec"]["initContainers"] = json!([{"name": "init", "image": "busybox", "resources": resources("2", "4Gi")}]);
}, "2.00_4.0")]
#[case::quantities_compare_by_value(|p: &mut Value| {
    container(p)["resources"] = json!({"requests": {"cpu": "0.5", "memory": "1024Mi"}, "limits": {"cpu": "500m", "memory": "1Gi"}});
}, "0.50_1.0")]
#[case::a_container_without_resources_beside_one_with(|p: &mut Value| {
    side(p, json!({"name": "side", "image": "busybox"}));
}, "0.50_1.0")]
#[case::pinned_size(|p: &mut Value| annotate(p, "resource.cci.io/pod-size-specs", "2_4"), "2.00_4.0")]
#[case::pinned_size_without_resources(|p: &mut Value| {
    container(p).as_object_mut().unwrap().remove("resources");
    annotate(p, "resource.cci.io/pod-size-specs", "1_2");
}, "1.00_2.0")]
#[case::a_size_the_client_sent_is_replaced(|p: &mut Value| annotate(p, "resource.cci.io/size", "64_512"), "0.50_1.0")]
#[case::localtime_host_path(|p: &mut Value| {
    volume(p, json!({"name": "tz", "hostPath": {"path": "/etc/localtime"}}));
    mount(p, json!({"name": "tz", "mountPath": "/etc/localtime", "readOnly": true}));
}, "0.50_1.0")]
#[case::empty_dir_of_whole_gi(|p: &mut Value| {
    volume(p, json!({"name": "scratch", "emptyDir": {"sizeLimit": "5Gi"}}));
    mount(p, json!({"name": "scratch", "mountPath": "/scratch"}));
}, "0.50_1.0")]
#[case::config_map_and_secret_volumes(|p: &mut Value| {
    p["spec"]["volumes"] = json!([
        {"name": "c", "configMap": {"name": "cm"}},
        {"name": "s", "secret": {"secretName": "sec"}},
        {"name": "missing-but-optional", "configMap": {"name": "nope", "optional": true}},
    ]);
}, "0.50_1.0")]
#[case::sfs_claim(|p: &mut Value| volume(p, json!({"name": "data", "persistentVolumeClaim": {"claimName": "nas"}})), "0.50_1.0")]
#[case::projected_and_downward_api(|p: &mut Value| {
    p["spec"]["volumes"] = json!([
        {"name": "proj", "projected": {"sources": [{"configMap": {"name": "cm"}}, {"secret": {"name": "sec"}}]}},
        {"name": "info", "downwardAPI": {"items": [{"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}}]}},
    ]);
}, "0.50_1.0")]
#[case::env_references(|p: &mut Value| {
    container(p)["env"] = json!([{"name": "K", "valueFrom": {"secretKeyRef": {"name": "sec", "key": "k"}}}]);
    container(p)["envFrom"] = json!([{"configMapRef": {"name": "cm"}}]);
}, "0.50_1.0")]
#[case::behaviour_annotation(|p: &mut Value| annotate(p, "mock.cci.io/behaviour.app", "succeed-after=1s"), "0.50_1.0")]
#[tokio::test]
async fn the_service_accepts_the_pod_and_writes_its_size(
    #[case] edit: fn(&mut Value),
    #[case] size: &str,
) {
    let app = mock_with_objects().await;
    let mut body = base();
    edit(&mut body);
    let reply = post(&app, PODS, body).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    assert_eq!(
        reply.body["metadata"]["annotations"]["resource.cci.io/size"],
        size
    );
}

#[rstest]
#[case::limit_differs_from_request(|p: &mut Value| {
    container(p)["resources"] = json!({"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"cpu": "1", "memory": "1Gi"}});
}, "spec.containers[0].resources.limits.cpu: Invalid value")]
#[case::memory_limit_missing(|p: &mut Value| {
    container(p)["resources"] = json!({"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"cpu": "500m"}});
}, "spec.containers[0].resources.limits.memory: Required value")]
#[case::no_resources_anywhere(|p: &mut Value| {
    container(p).as_object_mut().unwrap().remove("resources");
}, "spec.containers[0].resources: Required value")]
#[case::bigger_than_every_flavour(|p: &mut Value| container(p)["resources"] = resources("65", "64Gi"), "spec.containers: Forbidden")]
#[case::unparsable_quantity(|p: &mut Value| container(p)["resources"] = resources("lots", "1Gi"), "resources.requests.cpu: Invalid value")]
#[case::huge_quantity(|p: &mut Value| container(p)["resources"] = resources("1e30", "1Gi"), "resources.requests.cpu: Invalid value")]
#[case::negative_quantity(|p: &mut Value| container(p)["resources"] = resources("1", "-1Gi"), "resources.requests.memory: Invalid value")]
#[case::pinned_size_not_a_flavour(|p: &mut Value| annotate(p, "resource.cci.io/pod-size-specs", "3_3"), "metadata.annotations[resource.cci.io/pod-size-specs]: Invalid value: \"3_3\" is not a CCI flavour")]
#[case::pinned_size_too_small(|p: &mut Value| {
    container(p)["resources"] = resources("1", "2Gi");
    annotate(p, "resource.cci.io/pod-size-specs", "0.5_1");
}, "is smaller than the containers need")]
#[case::pinned_size_malformed(|p: &mut Value| annotate(p, "resource.cci.io/pod-size-specs", "big"), "metadata.annotations[resource.cci.io/pod-size-specs]: Invalid value")]
#[case::host_path(|p: &mut Value| volume(p, json!({"name": "logs", "hostPath": {"path": "/var/log"}})), "spec.volumes[0].hostPath: Forbidden: hostPath volume \"logs\" (path \"/var/log\")")]
#[case::flex_volume(|p: &mut Value| volume(p, json!({"name": "flex", "flexVolume": {"driver": "x/y"}})), "spec.volumes[0].flexVolume: Forbidden")]
#[case::nfs(|p: &mut Value| volume(p, json!({"name": "share", "nfs": {"server": "s", "path": "/"}})), "spec.volumes[0].nfs: Forbidden")]
#[case::local_volume_has_no_type(|p: &mut Value| volume(p, json!({"name": "disk", "local": {"path": "/mnt"}})), "spec.volumes[0]: Required value")]
#[case::two_types(|p: &mut Value| volume(p, json!({"name": "x", "emptyDir": {}, "configMap": {"name": "cm"}})), "spec.volumes[0]: Forbidden")]
#[case::empty_dir_sub_path(|p: &mut Value| {
    volume(p, json!({"name": "scratch", "emptyDir": {}}));
    mount(p, json!({"name": "scratch", "mountPath": "/s", "subPath": "a"}));
}, "spec.containers[0].volumeMounts[0].subPath: Forbidden")]
#[case::empty_dir_not_whole_gi(|p: &mut Value| volume(p, json!({"name": "s", "emptyDir": {"sizeLimit": "1536Mi"}})), "spec.volumes[0].emptyDir.sizeLimit: Invalid value: emptyDir volume \"s\": sizeLimit \"1536Mi\" is not a whole number of Gi")]
#[case::empty_dir_over_ten_per_started_core(|p: &mut Value| volume(p, json!({"name": "s", "emptyDir": {"sizeLimit": "11Gi"}})), "is more than 10 × the pod's 1 CPU core(s) (a 0.5 vCPU size")]
#[case::missing_config_map(|p: &mut Value| volume(p, json!({"name": "c", "configMap": {"name": "nope"}})), "spec.volumes[0].configMap.name: Not found: ConfigMap \"nope\" does not exist")]
#[case::missing_secret(|p: &mut Value| volume(p, json!({"name": "s", "secret": {"secretName": "nope"}})), "spec.volumes[0].secret.secretName: Not found")]
#[case::missing_claim(|p: &mut Value| volume(p, json!({"name": "d", "persistentVolumeClaim": {"claimName": "nope"}})), "spec.volumes[0].persistentVolumeClaim.claimName: Not found")]
#[case::missing_env_config_map(|p: &mut Value| {
    container(p)["env"] = json!([{"name": "K", "valueFrom": {"configMapKeyRef": {"name": "nope", "key": "k"}}}]);
}, "spec.containers[0].env[0].valueFrom.configMapKeyRef.name: Not found")]
#[case::missing_env_from_secret(|p: &mut Value| container(p)["envFrom"] = json!([{"secretRef": {"name": "nope"}}]), "spec.containers[0].envFrom[0].secretRef.name: Not found")]
#[case::service_account_token(|p: &mut Value| {
    volume(p, json!({"name": "token", "projected": {"sources": [{"serviceAccountToken": {"path": "token"}}]}}));
}, "spec.volumes[0].projected.sources[0].serviceAccountToken: Forbidden")]
#[case::mount_of_no_volume(|p: &mut Value| mount(p, json!({"name": "ghost", "mountPath": "/g"})), "spec.containers[0].volumeMounts[0].name: Not found")]
#[case::duplicate_volumes(|p: &mut Value| {
    p["spec"]["volumes"] = json!([{"name": "v", "emptyDir": {}}, {"name": "v", "emptyDir": {}}]);
}, "spec.volumes[1].name: Duplicate value")]
#[case::bad_behaviour(|p: &mut Value| annotate(p, "mock.cci.io/behaviour", "explode"), "metadata.annotations[mock.cci.io/behaviour]: Invalid value")]
#[case::behaviour_of_no_container(|p: &mut Value| annotate(p, "mock.cci.io/behaviour.ghost", "run"), "metadata.annotations[mock.cci.io/behaviour.ghost]: Not found")]
#[case::bad_sigterm_answer(|p: &mut Value| annotate(p, "mock.cci.io/on-sigterm", "term"), "metadata.annotations[mock.cci.io/on-sigterm]: Invalid value")]
#[case::restart_policy(|p: &mut Value| p["spec"]["restartPolicy"] = json!("Sometimes"), "spec.restartPolicy: Unsupported value")]
#[case::unicode_name(|p: &mut Value| p["metadata"]["name"] = json!("wéb"), "metadata.name: Invalid value")]
#[tokio::test]
async fn the_service_refuses_the_pod_naming_the_field(
    #[case] edit: fn(&mut Value),
    #[case] expected: &str,
) {
    let app = mock_with_objects().await;
    let mut body = base();
    edit(&mut body);
    let reply = post(&app, PODS, body).await;
    assert_status(&reply, 422, "Invalid", "CCI.01.422001");
    assert!(reply.message().contains(expected), "{}", reply.message());
    let pods = get(&app, PODS).await;
    assert_eq!(pods.body["items"], json!([]), "nothing was created");
}

#[tokio::test]
async fn a_refusal_lists_every_broken_rule_in_one_message() {
    let app = mock_with_objects().await;
    let mut body = base();
    volume(
        &mut body,
        json!({"name": "logs", "hostPath": {"path": "/var/log"}}),
    );
    container(&mut body)["resources"]["limits"]["cpu"] = json!("2");
    let reply = post(&app, PODS, body).await;
    let message = reply.message();
    assert!(message.starts_with("Pod \"web\" is invalid: "), "{message}");
    assert!(message.contains("resources.limits.cpu"), "{message}");
    assert!(message.contains("spec.volumes[0].hostPath"), "{message}");
}
