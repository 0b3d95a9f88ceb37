//! BEHAVIOR.md §6 (the hostPath replacement annotation), HP-02…HP-07, through `decide`.
//! HP-01 (the seed's Deployment) is in `seed.rs`.

use crate::common;

use burst_rules::decide::Decision;
use burst_rules::hostpath::ANNOTATION;
use common::*;
use k8s_openapi::api::core::v1::Pod;
use rstest::rstest;

/// A 250m pod with hostPath volumes `logs` (/var/log) and `tz` (/etc/localtime), both mounted.
fn pod_with_hostpaths(policy: &str, annotation: &str) -> Pod {
    let p = pod(&format!(
        r#"
metadata:
  name: web
  namespace: default
  labels: {{virtual-kubelet.io/burst-to-cci: {policy:?}}}
spec:
  containers:
    - name: app
      image: nginx
      resources: {{requests: {{cpu: 250m, memory: 512Mi}}, limits: {{cpu: 250m, memory: 512Mi}}}}
      volumeMounts:
        - {{name: logs, mountPath: /logs}}
        - {{name: tz, mountPath: /etc/localtime, readOnly: true}}
  volumes:
    - {{name: logs, hostPath: {{path: /var/log, type: ''}}}}
    - {{name: tz, hostPath: {{path: /etc/localtime}}}}
"#
    ));
    if annotation.is_empty() {
        p
    } else {
        with_annotation(p, ANNOTATION, annotation)
    }
}

/// The volumes of a pod as (name, type).
fn volumes(p: &Pod) -> Vec<(String, String)> {
    p.spec
        .as_ref()
        .unwrap()
        .volumes
        .iter()
        .flatten()
        .map(|v| (v.name.clone(), burst_rules::volumes::kind_of(v).to_string()))
        .collect()
}

fn mounts(p: &Pod) -> Vec<String> {
    p.spec.as_ref().unwrap().containers[0]
        .volume_mounts
        .iter()
        .flatten()
        .map(|m| m.name.clone())
        .collect()
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

const REPLACE_LOGS: &str =
    r#"[{"name":"logs","policyType":"replaceByEmptyDir","emptyDir":{"sizeLimit":"10Gi"}}]"#;
const REMOVE_LOGS: &str = r#"[{"name":"logs","policyType":"remove"}]"#;
const REMOVE_ALL: &str = r#"[{"name":"*","policyType":"remove"}]"#;
const REMOVE_ALL_AND_TZ: &str =
    r#"[{"name":"*","policyType":"remove"},{"name":"tz","policyType":"remove"}]"#;

#[rstest]
// HP-02: one named replaceByEmptyDir (tz stays, allowed from 1.5.9).
#[case::named_replace(REPLACE_LOGS, "1.5.9", &[("logs", "emptyDir"), ("tz", "hostPath")], &["logs", "tz"])]
// HP-03: one named remove.
#[case::named_remove(REMOVE_LOGS, "1.5.9", &[("tz", "hostPath")], &["tz"])]
// HP-04 and HP-05: `*` removes every hostPath but leaves /etc/localtime alone.
#[case::wildcard_remove(REMOVE_ALL, "1.5.9", &[("tz", "hostPath")], &["tz"])]
// HP-06: a policy naming the /etc/localtime volume does touch it, so even 1.5.8 is fine.
#[case::naming_localtime(REMOVE_ALL_AND_TZ, "1.5.8", &[], &[])]
fn enforce_applies_the_replacement_in_the_patch(
    #[case] annotation: &str,
    #[case] release_text: &str,
    #[case] expected_volumes: &[(&str, &str)],
    #[case] expected_mounts: &[&str],
) {
    let before = pod_with_hostpaths("enforce", annotation);
    let decision = decide_pod(&before, release(release_text));
    let Decision::Mutate { reasons, .. } = &decision else {
        panic!("{decision:?}")
    };
    let after = patched(&before, &decision);
    assert_eq!(volumes(&after), pairs(expected_volumes));
    let expected_mounts: Vec<String> = expected_mounts.iter().map(|s| s.to_string()).collect();
    assert_eq!(mounts(&after), expected_mounts);
    assert!(
        reasons.iter().any(|r| r.starts_with(
            "coordinator.cci.io/hostpath-replacement: hostPath volume \"logs\" (/var/log)"
        )),
        "{reasons:?}"
    );
    // The annotation stays (the user's intent); the patched pod needs nothing more.
    assert_eq!(decide_pod(&after, release(release_text)), Decision::Allow);
}

#[test]
fn the_replaced_volume_is_an_empty_dir_of_the_given_size() {
    let before = pod_with_hostpaths("enforce", REPLACE_LOGS);
    let after = patched(&before, &decide_pod(&before, latest()));
    let logs = &after.spec.as_ref().unwrap().volumes.as_ref().unwrap()[0];
    assert_eq!(
        serde_json::to_value(logs).unwrap(),
        serde_json::json!({"name": "logs", "emptyDir": {"sizeLimit": "10Gi"}})
    );
}

#[rstest]
#[case::before_the_gate("1.5.8", false)]
#[case::at_the_gate("1.5.9", true)]
fn the_wildcard_leaves_etc_localtime_so_it_needs_1_5_9(#[case] r: &str, #[case] bursts: bool) {
    // HP-05.
    let decision = decide_pod(&pod_with_hostpaths("enforce", REMOVE_ALL), release(r));
    if bursts {
        assert!(matches!(decision, Decision::Mutate { .. }), "{decision:?}");
    } else {
        let message = decision.message().unwrap();
        assert!(matches!(decision, Decision::Refuse { .. }));
        assert!(message.contains("volume \"tz\": hostPath /etc/localtime on CCI requires add-on release >= 1.5.9; this is 1.5.8"), "{message}");
    }
}

#[rstest]
#[case::malformed_json(
    "[{\"name\": \"logs\", ",
    "value [{\"name\": \"logs\", : not a JSON list of policies"
)]
#[case::local_dir(r#"[{"name":"logs","policyType":"replaceByLocalDir"}]"#, r#"entry {"name":"logs","policyType":"replaceByLocalDir"}: policyType "replaceByLocalDir" is not supported"#)]
#[case::flex_volume(r#"[{"name":"logs","policyType":"replaceByFlexVolume"}]"#, r#"entry {"name":"logs","policyType":"replaceByFlexVolume"}: policyType "replaceByFlexVolume" is not supported"#)]
#[case::unknown_type(
    r#"[{"name":"logs","policyType":"keep"}]"#,
    r#"entry {"name":"logs","policyType":"keep"}: unknown policyType "keep""#
)]
#[case::fractional_size(
    r#"[{"name":"logs","policyType":"replaceByEmptyDir","emptyDir":{"sizeLimit":"1536Mi"}}]"#,
    r#"sizeLimit "1536Mi" is not a whole number of Gi"#
)]
#[case::missing_size(
    r#"[{"name":"logs","policyType":"replaceByEmptyDir"}]"#,
    r#"entry {"name":"logs","policyType":"replaceByEmptyDir"}: replaceByEmptyDir needs"#
)]
#[case::duplicate(
    r#"[{"name":"logs","policyType":"remove"},{"name":"logs","policyType":"remove"}]"#,
    r#"volume "logs" already has a policy"#
)]
#[case::no_such_volume_beside_a_good_one(r#"[{"name":"logs","policyType":"remove"},{"name":"log","policyType":"remove"}]"#, r#"entry {"name":"log","policyType":"remove"}: no volume of the pod is named "log"; the pod's hostPath volumes are ["logs", "tz"]"#)]
#[case::missing_volume_beside_the_wildcard(
    r#"[{"name":"*","policyType":"remove"},{"name":"conf","policyType":"remove"}]"#,
    r#"entry {"name":"conf","policyType":"remove"}: no volume of the pod is named "conf""#
)]
fn a_bad_annotation_is_refused_quoting_the_entry_under_every_bursting_policy(
    #[case] annotation: &str,
    #[case] expected: &str,
    #[values("enforce", "auto", "localPrefer")] policy: &str,
) {
    // HP-07.
    let decision = decide_pod(&pod_with_hostpaths(policy, annotation), latest());
    let Decision::Refuse { message } = &decision else {
        panic!("{decision:?}")
    };
    assert!(
        message.starts_with("pod default/web: annotation coordinator.cci.io/hostpath-replacement"),
        "{message}"
    );
    assert!(
        message.contains(expected),
        "{message}\n  wanted: {expected}"
    );
}

#[test]
fn a_bad_annotation_on_a_pod_that_does_not_burst_is_not_judged() {
    let decision = decide_pod(&pod_with_hostpaths("off", "not json"), latest());
    assert_eq!(decision, Decision::Allow);
}

#[test]
fn a_replacement_larger_than_ten_gib_per_core_is_refused_by_the_empty_dir_rule() {
    let annotation =
        r#"[{"name":"*","policyType":"replaceByEmptyDir","emptyDir":{"sizeLimit":"20Gi"}}]"#;
    let message = decide_pod(&pod_with_hostpaths("enforce", annotation), latest())
        .message()
        .unwrap()
        .to_string();
    assert!(
        message.contains("volume \"logs\": emptyDir sizeLimit 20Gi is more than 10Gi"),
        "{message}"
    );
}

#[test]
fn a_replaced_volume_mounted_with_sub_path_is_refused_by_the_empty_dir_rule() {
    let mut p = pod_with_hostpaths("enforce", REPLACE_LOGS);
    p.spec.as_mut().unwrap().containers[0]
        .volume_mounts
        .as_mut()
        .unwrap()[0]
        .sub_path = Some("app".into());
    let message = decide_pod(&p, latest()).message().unwrap().to_string();
    assert!(
        message.contains("volume \"logs\": emptyDir mounts cannot use subPath"),
        "{message}"
    );
}

#[rstest]
#[case::auto("auto")]
#[case::local_prefer("localPrefer")]
fn other_policies_judge_the_replaced_spec_but_leave_the_volumes_to_the_engine(
    #[case] policy: &str,
) {
    let before = pod_with_hostpaths(policy, REMOVE_ALL);
    let decision = decide_pod(&before, latest());
    let after = patched(&before, &decision);
    assert!(matches!(decision, Decision::Mutate { .. }), "{decision:?}");
    assert_eq!(volumes(&after), volumes(&before));
    // Without the annotation the same pod stays local, naming the hostPath.
    let plain = decide_pod(&pod_with_hostpaths(policy, ""), latest());
    let Decision::KeepLocal { reason } = plain else {
        panic!("{plain:?}")
    };
    assert!(
        reason.contains("volume \"logs\": hostPath is not supported on CCI"),
        "{reason}"
    );
}

#[rstest]
#[case::enforce("enforce", "cannot run on CCI")]
#[case::auto("auto", "stays off CCI")]
fn a_policy_naming_only_a_missing_volume_is_reported_beside_the_hostpath_it_left(
    #[case] policy: &str,
    #[case] outcome: &str,
) {
    let annotation = r#"[{"name":"log","policyType":"remove"}]"#;
    let message = decide_pod(&pod_with_hostpaths(policy, annotation), latest())
        .message()
        .unwrap()
        .to_string();
    assert!(message.contains(outcome), "{message}");
    assert!(message.contains(r#"(1) annotation coordinator.cci.io/hostpath-replacement, entry {"name":"log","policyType":"remove"}: no volume of the pod is named "log"; the pod's hostPath volumes are ["logs", "tz"]"#), "{message}");
    assert!(
        message.contains(r#"(2) volume "logs": hostPath is not supported on CCI"#),
        "{message}"
    );
}

#[test]
fn a_stale_policy_on_a_pod_with_nothing_left_to_replace_is_harmless() {
    let p = pod(r#"
metadata:
  name: web
  namespace: default
  labels: {virtual-kubelet.io/burst-to-cci: enforce}
  annotations:
    coordinator.cci.io/hostpath-replacement: '[{"name":"logs","policyType":"remove"}]'
spec:
  containers:
    - {name: app, image: nginx, resources: {requests: {cpu: 250m, memory: 512Mi}}}
"#);
    assert!(matches!(decide_pod(&p, latest()), Decision::Mutate { .. }));
}
