//! BEHAVIOR.md §3 (scheduling policy) through `decide`: every policy × pods with and without
//! tolerations and affinity, owner chains, DaemonSets (WL-06), the policy matrix of WL-07.

use crate::common;

use std::collections::BTreeMap;

use burst_rules::decide::{
    AdmissionInput, Decision, NODE_LABEL_KEY, NODE_LABEL_VALUE, TAINT_KEY, decide,
};
use burst_rules::policy::{LABEL, LABEL_NEW, OwnerFacts};
use common::*;
use k8s_openapi::api::core::v1::{NodeSelectorRequirement, Pod, Toleration};
use rstest::rstest;
use serde_json::json;

fn ours(t: &Toleration) -> bool {
    t.key.as_deref() == Some(TAINT_KEY)
        && t.operator.as_deref() == Some("Exists")
        && t.effect.as_deref() == Some("NoSchedule")
}

fn is_in(e: &NodeSelectorRequirement) -> bool {
    e.key == NODE_LABEL_KEY && e.operator == "In" && e.values == Some(vec![NODE_LABEL_VALUE.into()])
}

fn is_not_in(e: &NodeSelectorRequirement) -> bool {
    e.key == NODE_LABEL_KEY
        && e.operator == "NotIn"
        && e.values == Some(vec![NODE_LABEL_VALUE.into()])
}

/// Pod shapes a patch must work on: the part of `spec:` after the containers.
const BARE: &str = "";
const OTHER_TOLERATION: &str = r#"
  tolerations:
    - {key: dedicated, operator: Equal, value: gpu, effect: NoSchedule}"#;
const EMPTY_TOLERATIONS: &str = "\n  tolerations: []";
/// Tolerates every NoSchedule taint of another key: not the virtual node's toleration.
const OTHER_KEY_EXISTS: &str = r#"
  tolerations:
    - {key: node.example/maintenance, operator: Exists, effect: NoSchedule}"#;
const POD_ANTI_AFFINITY_ONLY: &str = r#"
  affinity:
    podAntiAffinity:
      preferredDuringSchedulingIgnoredDuringExecution:
        - weight: 10
          podAffinityTerm:
            topologyKey: kubernetes.io/hostname
            labelSelector: {matchLabels: {app: web}}"#;
const EMPTY_AFFINITY: &str = "\n  affinity: {}";
const REQUIRED_TERMS: &str = r#"
  affinity:
    nodeAffinity:
      requiredDuringSchedulingIgnoredDuringExecution:
        nodeSelectorTerms:
          - matchExpressions:
              - {key: topology.kubernetes.io/zone, operator: In, values: [zone-a]}
          - matchFields:
              - {key: metadata.name, operator: In, values: [node-1]}"#;
/// Required terms with expressions that look like the virtual node's requirement but are not:
/// the right key with another operator, the right values under another key or operator.
const REQUIRED_NEAR_MISSES: &str = r#"
  affinity:
    nodeAffinity:
      requiredDuringSchedulingIgnoredDuringExecution:
        nodeSelectorTerms:
          - matchExpressions:
              - {key: type, operator: In, values: [physical]}
              - {key: pool, operator: In, values: [virtual-kubelet]}
          - matchExpressions:
              - {key: pool, operator: NotIn, values: [virtual-kubelet]}"#;
const PREFERRED_ONLY: &str = r#"
  affinity:
    nodeAffinity:
      preferredDuringSchedulingIgnoredDuringExecution:
        - weight: 5
          preference:
            matchExpressions:
              - {key: disktype, operator: In, values: [ssd]}"#;
const ALREADY_MUTATED: &str = r#"
  tolerations:
    - {key: virtual-kubelet.io/provider, operator: Exists, effect: NoSchedule}
  affinity:
    nodeAffinity:
      requiredDuringSchedulingIgnoredDuringExecution:
        nodeSelectorTerms:
          - matchExpressions:
              - {key: type, operator: In, values: [virtual-kubelet]}
      preferredDuringSchedulingIgnoredDuringExecution:
        - weight: 100
          preference:
            matchExpressions:
              - {key: type, operator: NotIn, values: [virtual-kubelet]}"#;

fn shaped_pod(policy: &str, shape: &str) -> Pod {
    pod(&format!(
        r#"
metadata:
  name: web
  namespace: default
  labels: {{{LABEL}: {policy}}}
spec:
  containers:
    - name: app
      image: nginx
      resources:
        requests: {{cpu: 500m, memory: 1Gi}}{shape}
"#
    ))
}

#[rstest]
fn every_bursting_policy_patches_every_pod_shape_correctly_and_idempotently(
    #[values("enforce", "auto", "localPrefer")] policy: &str,
    #[values(
        BARE,
        OTHER_TOLERATION,
        EMPTY_TOLERATIONS,
        OTHER_KEY_EXISTS,
        POD_ANTI_AFFINITY_ONLY,
        EMPTY_AFFINITY,
        REQUIRED_TERMS,
        REQUIRED_NEAR_MISSES,
        PREFERRED_ONLY,
        ALREADY_MUTATED
    )]
    shape: &str,
) {
    let before = shaped_pod(policy, shape);
    let decision = decide_pod(&before, latest());
    assert!(
        matches!(decision, Decision::Mutate { .. } | Decision::Allow),
        "{decision:?}"
    );
    let after = patched(&before, &decision);
    let spec = after.spec.as_ref().unwrap();
    let before_spec = before.spec.as_ref().unwrap();

    // Exactly one toleration of ours; the others kept.
    let tolerations = spec.tolerations.as_deref().unwrap();
    assert_eq!(
        tolerations.iter().filter(|t| ours(t)).count(),
        1,
        "{tolerations:?}"
    );
    let others = |ts: &[Toleration]| ts.iter().filter(|t| !ours(t)).cloned().collect::<Vec<_>>();
    assert_eq!(
        others(tolerations),
        others(before_spec.tolerations.as_deref().unwrap_or_default())
    );

    let node = |p: &Pod| {
        p.spec
            .as_ref()
            .unwrap()
            .affinity
            .as_ref()
            .and_then(|a| a.node_affinity.clone())
    };
    let required =
        |p: &Pod| node(p).and_then(|n| n.required_during_scheduling_ignored_during_execution);
    let preferred =
        |p: &Pod| node(p).and_then(|n| n.preferred_during_scheduling_ignored_during_execution);
    match policy {
        "enforce" => {
            let terms = required(&after).unwrap().node_selector_terms;
            let before_terms = required(&before)
                .map(|r| r.node_selector_terms)
                .unwrap_or_default();
            assert_eq!(terms.len(), before_terms.len().max(1));
            for (i, term) in terms.iter().enumerate() {
                let exprs = term.match_expressions.as_deref().unwrap();
                assert_eq!(
                    exprs.iter().filter(|e| is_in(e)).count(),
                    1,
                    "term {i}: {exprs:?}"
                );
                if let Some(old) = before_terms.get(i) {
                    // Existing requirements are kept: ours is ANDed in.
                    for e in old.match_expressions.iter().flatten() {
                        assert!(exprs.contains(e));
                    }
                    assert_eq!(term.match_fields, old.match_fields);
                }
            }
            assert_eq!(preferred(&after), preferred(&before));
        }
        "localPrefer" => {
            let terms = preferred(&after).unwrap();
            let ours: Vec<_> = terms
                .iter()
                .filter(|t| {
                    t.preference
                        .match_expressions
                        .iter()
                        .flatten()
                        .any(is_not_in)
                })
                .collect();
            assert_eq!(ours.len(), 1, "{terms:?}");
            assert_eq!(ours[0].weight, 100);
            assert_eq!(required(&after), required(&before));
        }
        _ => assert_eq!(spec.affinity, before_spec.affinity),
    }
    // Pod anti-affinity and everything else survive.
    if let Some(a) = &before_spec.affinity {
        assert_eq!(
            spec.affinity.as_ref().unwrap().pod_anti_affinity,
            a.pod_anti_affinity
        );
    }
    assert_eq!(spec.containers, before_spec.containers);

    // Deciding again on the patched pod adds nothing.
    assert_eq!(decide_pod(&after, latest()), Decision::Allow);
}

#[test]
fn a_pod_without_tolerations_or_affinity_gets_whole_arrays_not_appends() {
    let decision = decide_pod(&shaped_pod("enforce", BARE), latest());
    let Decision::Mutate { patch, reasons } = &decision else {
        panic!("{decision:?}")
    };
    assert_eq!(
        patch,
        &json!([
            {"op": "add", "path": "/spec/tolerations", "value": [
                {"key": "virtual-kubelet.io/provider", "operator": "Exists", "effect": "NoSchedule"}
            ]},
            {"op": "add", "path": "/spec/affinity", "value": {"nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                    {"matchExpressions": [{"key": "type", "operator": "In", "values": ["virtual-kubelet"]}]}
                ]}
            }}},
        ])
    );
    assert!(
        reasons[0].contains("virtual-kubelet.io/burst-to-cci=enforce on Pod default/web"),
        "{reasons:?}"
    );
    assert!(
        reasons.iter().any(|r| r.contains("0.5 vCPU / 1 GiB")),
        "{reasons:?}"
    );
}

#[test]
fn a_pod_with_tolerations_gets_an_append() {
    let decision = decide_pod(&shaped_pod("auto", OTHER_TOLERATION), latest());
    assert_eq!(
        decision.patch().unwrap(),
        &json!([{"op": "add", "path": "/spec/tolerations/-", "value":
            {"key": "virtual-kubelet.io/provider", "operator": "Exists", "effect": "NoSchedule"}}])
    );
}

#[test]
fn local_prefer_adds_a_weight_100_preference_away_from_the_virtual_node() {
    let decision = decide_pod(&shaped_pod("localPrefer", BARE), latest());
    let patch = decision.patch().unwrap().as_array().unwrap();
    assert_eq!(
        patch[1],
        json!({"op": "add", "path": "/spec/affinity", "value": {"nodeAffinity": {
            "preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 100, "preference": {
                "matchExpressions": [{"key": "type", "operator": "NotIn", "values": ["virtual-kubelet"]}]
            }}]
        }}})
    );
}

#[rstest]
#[case::off("off")]
#[case::no_label("")]
fn off_and_no_label_leave_the_pod_alone(#[case] policy: &str) {
    assert_eq!(decide_pod(&small_pod(policy), latest()), Decision::Allow);
}

#[test]
fn off_leaves_even_an_unburstable_pod_alone() {
    // No resources and a hostPath: nothing is checked for a pod that will not burst.
    let p = pod(r#"
metadata: {name: p, labels: {virtual-kubelet.io/burst-to-cci: "off"}}
spec:
  containers: [{name: app, image: nginx}]
  volumes: [{name: h, hostPath: {path: /var/log}}]
"#);
    assert_eq!(decide_pod(&p, latest()), Decision::Allow);
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn owner(kind: &str, name: &str, pairs: &[(&str, &str)]) -> OwnerFacts {
    OwnerFacts {
        kind: kind.into(),
        name: format!("default/{name}"),
        labels: labels(pairs),
    }
}

#[rstest]
#[case::deployment(vec![owner("ReplicaSet", "web-5d8f", &[]), owner("Deployment", "web", &[(LABEL, "enforce")])], "Deployment default/web")]
#[case::cron_job(vec![owner("Job", "nightly-28", &[]), owner("CronJob", "nightly", &[(LABEL, "enforce")])], "CronJob default/nightly")]
#[case::stateful_set(vec![owner("StatefulSet", "db", &[(LABEL, "enforce")])], "StatefulSet default/db")]
#[case::job(vec![owner("Job", "pi", &[(LABEL_NEW, "enforce")])], "Job default/pi")]
fn a_workloads_label_reaches_its_pods_through_the_owner_chain(
    #[case] owners: Vec<OwnerFacts>,
    #[case] decided_by: &str,
) {
    let input = AdmissionInput::new(small_pod(""), latest()).with_owners(owners);
    let Decision::Mutate { reasons, .. } = decide(&input) else {
        panic!("not mutated")
    };
    assert!(reasons[0].contains(decided_by), "{reasons:?}");
    assert!(
        reasons
            .iter()
            .any(|r| r.contains("requires a node labelled type=virtual-kubelet"))
    );
}

#[test]
fn a_pods_own_off_label_wins_over_its_deployments_enforce() {
    let input = AdmissionInput::new(small_pod("off"), latest()).with_owners(vec![
        owner("ReplicaSet", "web-5d8f", &[]),
        owner("Deployment", "web", &[(LABEL, "enforce")]),
    ]);
    assert_eq!(decide(&input), Decision::Allow);
}

#[test]
fn the_seed_key_wins_over_the_newer_key_on_one_object() {
    let p = with_policy(small_pod(""), "off");
    let mut p2 = p.clone();
    p2.metadata
        .labels
        .as_mut()
        .unwrap()
        .insert(LABEL_NEW.into(), "enforce".into());
    assert_eq!(decide_pod(&p2, latest()), Decision::Allow);
}

#[rstest]
#[case::via_owner_chain(vec![owner("DaemonSet", "agent", &[(LABEL, "enforce")])], None)]
#[case::via_owner_reference(vec![], Some("enforce"))]
fn daemonset_pods_never_get_the_toleration(
    #[case] owners: Vec<OwnerFacts>,
    #[case] pod_label: Option<&str>,
) {
    let mut p = small_pod(pod_label.unwrap_or(""));
    p.metadata.owner_references = Some(vec![
        k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference {
            api_version: "apps/v1".into(),
            kind: "DaemonSet".into(),
            name: "agent".into(),
            uid: "u".into(),
            controller: Some(true),
            ..Default::default()
        },
    ]);
    let decision = decide(&AdmissionInput::new(p, latest()).with_owners(owners));
    let Decision::KeepLocal { reason } = &decision else {
        panic!("{decision:?}")
    };
    assert!(
        reason.contains("DaemonSet pods never burst to CCI"),
        "{reason}"
    );
    assert!(reason.contains("no toleration"), "{reason}");
}

#[test]
fn an_unknown_policy_value_is_refused_naming_the_object_and_label() {
    let input = AdmissionInput::new(small_pod(""), latest()).with_owners(vec![
        owner("ReplicaSet", "web-5d8f", &[]),
        owner("Deployment", "web", &[(LABEL, "Enforce")]),
    ]);
    let Decision::Refuse { message } = decide(&input) else {
        panic!("not refused")
    };
    assert_eq!(
        message,
        "pod default/web (of Deployment default/web): Deployment default/web: label \
         virtual-kubelet.io/burst-to-cci=\"Enforce\" is not a burst policy; use enforce, auto, \
         localPrefer or off (the values are case-sensitive)"
    );
}

#[test]
fn a_pod_still_to_be_named_is_described_by_its_generate_name() {
    let mut p = small_pod("");
    p.metadata.name = None;
    p.metadata.generate_name = Some("web-5d8f-".into());
    p.metadata
        .labels
        .get_or_insert_with(BTreeMap::new)
        .insert(LABEL.into(), "nope".into());
    let message = decide_pod(&p, latest()).message().unwrap().to_string();
    assert!(message.starts_with("pod default/web-5d8f-*:"), "{message}");
}

/// Empty names count as absent: an empty name falls back to generateName, an empty
/// generateName to "(unnamed)".
#[rstest]
#[case::empty_name_with_generate_name(Some(""), Some("web-"), "pod default/web-*:")]
#[case::no_name_and_empty_generate_name(None, Some(""), "pod default/(unnamed):")]
fn empty_names_are_described_as_absent(
    #[case] name: Option<&str>,
    #[case] generate_name: Option<&str>,
    #[case] start: &str,
) {
    let mut p = small_pod("web");
    p.metadata.name = name.map(str::to_owned);
    p.metadata.generate_name = generate_name.map(str::to_owned);
    p.metadata
        .labels
        .get_or_insert_with(BTreeMap::new)
        .insert(LABEL.into(), "nope".into());
    let message = decide_pod(&p, latest()).message().unwrap().to_string();
    assert!(message.starts_with(start), "{message}");
}

#[test]
fn a_pod_whose_namespace_is_not_yet_set_is_described_without_one() {
    // An admission request may carry the pod before its namespace is defaulted into it.
    let mut p = small_pod("web");
    p.metadata.namespace = Some(String::new());
    p.metadata
        .labels
        .get_or_insert_with(BTreeMap::new)
        .insert(LABEL.into(), "nope".into());
    let message = decide_pod(&p, latest()).message().unwrap().to_string();
    assert!(message.starts_with("pod web:"), "{message}");
}

/// The decision says it added the toleration exactly when its patch adds one.
#[rstest]
#[case::no_tolerations(BARE, true)]
#[case::another_toleration(OTHER_TOLERATION, true)]
#[case::another_key_tolerated_with_exists(OTHER_KEY_EXISTS, true)]
#[case::ours_already(ALREADY_MUTATED, false)]
fn the_decision_names_the_toleration_only_when_it_adds_it(
    #[case] shape: &str,
    #[case] added: bool,
) {
    let decision = decide_pod(&shaped_pod("enforce", shape), latest());
    let said = format!("{decision:?}").contains("tolerates the virtual node's taint");
    assert_eq!(said, added, "{decision:?}");
    let patch = decision
        .patch()
        .map(ToString::to_string)
        .unwrap_or_default();
    assert_eq!(
        patch.contains("virtual-kubelet.io/provider"),
        added,
        "{patch}"
    );
}

/// A localPrefer decision says it added the preference exactly when its patch adds one.
#[rstest]
#[case::no_affinity(BARE, true)]
#[case::another_preference(PREFERRED_ONLY, true)]
#[case::ours_already(ALREADY_MUTATED, false)]
fn the_decision_names_the_preference_only_when_it_adds_it(
    #[case] shape: &str,
    #[case] added: bool,
) {
    let decision = decide_pod(&shaped_pod("localPrefer", shape), latest());
    let said = format!("{decision:?}").contains("prefers nodes not labelled");
    assert_eq!(said, added, "{decision:?}");
}

/// WL-07's rows as far as admission decides them: the policy × whether the pod can burst.
#[rstest]
#[case::enforce_burstable("enforce", true, "mutate")]
#[case::enforce_unburstable("enforce", false, "refuse")]
#[case::auto_burstable("auto", true, "mutate")]
#[case::auto_unburstable("auto", false, "keep local")]
#[case::local_prefer_burstable("localPrefer", true, "mutate")]
#[case::local_prefer_unburstable("localPrefer", false, "keep local")]
#[case::off_burstable("off", true, "allow")]
#[case::off_unburstable("off", false, "allow")]
#[case::none_burstable("", true, "allow")]
#[case::none_unburstable("", false, "allow")]
fn the_policy_matrix(#[case] policy: &str, #[case] burstable: bool, #[case] expected: &str) {
    let mut p = small_pod(policy);
    if !burstable {
        p.spec.as_mut().unwrap().volumes = Some(vec![
            serde_json::from_value(json!({"name": "h", "hostPath": {"path": "/var/log"}})).unwrap(),
        ]);
    }
    let got = match decide_pod(&p, latest()) {
        Decision::Allow => "allow",
        Decision::Mutate { .. } => "mutate",
        Decision::KeepLocal { .. } => "keep local",
        Decision::Refuse { .. } => "refuse",
    };
    assert_eq!(got, expected);
}

#[test]
fn the_rfc_6902_applier_used_here_is_strict() {
    let doc = json!({"spec": {"list": [1, 2]}});
    let ok = apply_patch(
        &doc,
        &json!([
            {"op": "add", "path": "/spec/list/-", "value": 3},
            {"op": "add", "path": "/spec/list/0", "value": 0},
            {"op": "replace", "path": "/spec/list/1", "value": 9},
            {"op": "add", "path": "/spec/a~1b", "value": true},
            {"op": "test", "path": "/spec/a~1b", "value": true},
            {"op": "remove", "path": "/spec/list/3"},
        ]),
    )
    .unwrap();
    assert_eq!(ok, json!({"spec": {"list": [0, 9, 2], "a/b": true}}));
    // Appending to an array that does not exist fails: a patch must add the whole array.
    assert!(
        apply_patch(
            &doc,
            &json!([{"op": "add", "path": "/spec/missing/-", "value": 1}])
        )
        .is_err()
    );
    assert!(
        apply_patch(
            &doc,
            &json!([{"op": "replace", "path": "/spec/missing", "value": 1}])
        )
        .is_err()
    );
    assert!(apply_patch(&doc, &json!([{"op": "remove", "path": "/spec/list/5"}])).is_err());
}
