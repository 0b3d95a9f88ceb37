//! Folding a provider's pod status into the cluster pod's status (pure functions).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    ContainerState, ContainerStateTerminated, ContainerStatus, PodCondition, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use serde_json::{Value, json};

/// The status fields the kubelet owns and patches.
const OWNED_FIELDS: &[&str] = &[
    "phase",
    "podIP",
    "podIPs",
    "hostIP",
    "hostIPs",
    "startTime",
    "conditions",
    "containerStatuses",
    "initContainerStatuses",
    "reason",
    "message",
];

/// The cluster pod's status with the provider's status laid over it.
///
/// Fields the provider leaves empty keep their cluster value (a provider that does not know the
/// phase does not erase it), except `reason` and `message`, which always follow the provider so
/// that an earlier failure note is cleared. Conditions are merged by type: the provider's win,
/// the others (`PodScheduled`, readiness gates) are kept in place.
pub fn merge_status(current: Option<&PodStatus>, remote: &PodStatus) -> PodStatus {
    let mut merged = current.cloned().unwrap_or_default();
    let remote = remote.clone();
    macro_rules! overlay {
        ($($field:ident),*) => {$(
            if remote.$field.is_some() {
                merged.$field = remote.$field;
            }
        )*};
    }
    overlay!(
        phase,
        pod_ip,
        pod_ips,
        host_ip,
        host_ips,
        start_time,
        container_statuses,
        init_container_statuses
    );
    merged.reason = remote.reason;
    merged.message = remote.message;
    if let Some(remote_conditions) = remote.conditions {
        let mut conditions = merged.conditions.take().unwrap_or_default();
        for rc in remote_conditions {
            match conditions.iter_mut().find(|c| c.type_ == rc.type_) {
                Some(c) => *c = rc,
                None => conditions.push(rc),
            }
        }
        merged.conditions = Some(conditions);
    }
    merged
}

/// The kubelet-owned fields of a status, as a JSON object (absent fields as `null`).
fn owned(status: Option<&PodStatus>) -> serde_json::Map<String, Value> {
    let value = status
        .map(|s| serde_json::to_value(s).unwrap_or(Value::Null))
        .unwrap_or(Value::Null);
    OWNED_FIELDS
        .iter()
        .map(|f| (f.to_string(), value.get(f).cloned().unwrap_or(Value::Null)))
        .collect()
}

/// `value` without `null`s and empty objects, which the API server adds or drops at will
/// (a container's `lastState: {}`), so they never count as a change.
fn pruned(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), pruned(v)))
                .filter(|(_, v)| !v.is_null() && v.as_object().is_none_or(|o| !o.is_empty()))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(pruned).collect()),
        other => other.clone(),
    }
}

/// Whether `desired` differs from `current` in a field the kubelet owns.
pub fn status_changed(current: Option<&PodStatus>, desired: &PodStatus) -> bool {
    pruned(&Value::Object(owned(current))) != pruned(&Value::Object(owned(Some(desired))))
}

/// A JSON merge patch setting the kubelet-owned fields to `desired` (`null` removes a field)
/// and the given annotations (others are left alone); sent to the `status` subresource, which
/// takes a pod's annotations with its status.
pub fn status_patch(desired: &PodStatus, annotations: &BTreeMap<String, String>) -> Value {
    let mut patch = json!({ "status": owned(Some(desired)) });
    if !annotations.is_empty() {
        patch["metadata"] = json!({ "annotations": annotations });
    }
    patch
}

/// The annotations of `wanted` that the pod lacks or carries with another value.
pub fn missing_annotations(
    current: Option<&BTreeMap<String, String>>,
    wanted: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    wanted
        .iter()
        .filter(|(k, v)| current.and_then(|c| c.get(*k)) != Some(*v))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// The status of a pod whose remote counterpart disappeared: `Failed`, with every container
/// not already terminated marked terminated as `ContainerStatusUnknown` (what the kubelet does
/// for containers it lost).
pub fn lost_status(current: Option<&PodStatus>, message: &str, now: &Timestamp) -> PodStatus {
    let mut status = current.cloned().unwrap_or_default();
    status.phase = Some("Failed".into());
    status.reason = Some("ProviderFailed".into());
    status.message = Some(message.into());
    let terminate = |cs: &mut ContainerStatus| {
        let terminated = cs
            .state
            .as_ref()
            .and_then(|s| s.terminated.as_ref())
            .is_some();
        if !terminated {
            cs.ready = false;
            cs.started = Some(false);
            cs.state = Some(ContainerState {
                terminated: Some(ContainerStateTerminated {
                    exit_code: 137,
                    reason: Some("ContainerStatusUnknown".into()),
                    message: Some(message.into()),
                    finished_at: Some(Time(*now)),
                    ..ContainerStateTerminated::default()
                }),
                ..ContainerState::default()
            });
        }
    };
    status
        .container_statuses
        .iter_mut()
        .flatten()
        .for_each(terminate);
    status
        .init_container_statuses
        .iter_mut()
        .flatten()
        .for_each(terminate);
    for c in status.conditions.iter_mut().flatten() {
        if matches!(c.type_.as_str(), "Ready" | "ContainersReady") && c.status != "False" {
            *c = PodCondition {
                type_: c.type_.clone(),
                status: "False".into(),
                reason: Some("PodFailed".into()),
                last_transition_time: Some(Time(*now)),
                ..PodCondition::default()
            };
        }
    }
    status
}

/// Whether a pod phase is terminal (`Succeeded` or `Failed`): such a pod is never started again.
pub fn is_terminal(status: Option<&PodStatus>) -> bool {
    matches!(
        status.and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cond(type_: &str, status: &str) -> PodCondition {
        PodCondition {
            type_: type_.into(),
            status: status.into(),
            ..PodCondition::default()
        }
    }

    #[test]
    fn merge_keeps_cluster_conditions_and_overlays_the_providers() {
        let current = PodStatus {
            phase: Some("Pending".into()),
            conditions: Some(vec![cond("PodScheduled", "True"), cond("Ready", "False")]),
            reason: Some("ProviderFailed".into()),
            ..PodStatus::default()
        };
        let remote = PodStatus {
            phase: Some("Running".into()),
            pod_ip: Some("10.0.0.7".into()),
            conditions: Some(vec![cond("Ready", "True"), cond("Initialized", "True")]),
            ..PodStatus::default()
        };
        let merged = merge_status(Some(&current), &remote);
        assert_eq!(merged.phase.as_deref(), Some("Running"));
        assert_eq!(merged.pod_ip.as_deref(), Some("10.0.0.7"));
        assert_eq!(merged.reason, None);
        assert_eq!(
            merged.conditions.unwrap(),
            vec![
                cond("PodScheduled", "True"),
                cond("Ready", "True"),
                cond("Initialized", "True")
            ]
        );
    }

    #[test]
    fn merge_does_not_erase_a_phase_the_provider_does_not_report() {
        let current = PodStatus {
            phase: Some("Running".into()),
            ..PodStatus::default()
        };
        let merged = merge_status(Some(&current), &PodStatus::default());
        assert_eq!(merged.phase.as_deref(), Some("Running"));
    }

    #[test]
    fn an_identical_status_is_not_a_change_but_a_new_ip_is() {
        let current = PodStatus {
            phase: Some("Running".into()),
            qos_class: Some("Guaranteed".into()),
            ..PodStatus::default()
        };
        let same = merge_status(Some(&current), &PodStatus::default());
        assert!(!status_changed(Some(&current), &same));
        let remote = PodStatus {
            pod_ip: Some("10.0.0.7".into()),
            ..PodStatus::default()
        };
        assert!(status_changed(
            Some(&current),
            &merge_status(Some(&current), &remote)
        ));
    }

    #[test]
    fn an_empty_last_state_added_by_the_api_server_is_not_a_change() {
        let cs = |last_state| ContainerStatus {
            name: "app".into(),
            last_state,
            ..ContainerStatus::default()
        };
        let current = PodStatus {
            container_statuses: Some(vec![cs(Some(ContainerState::default()))]),
            ..PodStatus::default()
        };
        let desired = PodStatus {
            container_statuses: Some(vec![cs(None)]),
            ..PodStatus::default()
        };
        assert!(!status_changed(Some(&current), &desired));
    }

    #[test]
    fn the_patch_names_only_owned_fields_and_nulls_the_absent_ones() {
        let patch = status_patch(
            &PodStatus {
                phase: Some("Running".into()),
                qos_class: Some("Guaranteed".into()),
                ..PodStatus::default()
            },
            &BTreeMap::new(),
        );
        assert!(patch.get("metadata").is_none(), "{patch}");
        let status = patch["status"].as_object().unwrap();
        assert_eq!(status["phase"], "Running");
        assert_eq!(status["reason"], Value::Null);
        assert!(!status.contains_key("qosClass"));
    }

    #[test]
    fn annotations_ride_on_the_status_patch_under_metadata() {
        let annotations = BTreeMap::from([("size".to_owned(), "2u".to_owned())]);
        let patch = status_patch(&PodStatus::default(), &annotations);
        assert_eq!(
            patch["metadata"],
            json!({ "annotations": { "size": "2u" } })
        );
        assert!(patch["status"].is_object(), "{patch}");
    }

    #[test]
    fn only_annotations_the_pod_lacks_or_holds_otherwise_are_missing() {
        let wanted = BTreeMap::from([
            ("cpu".to_owned(), "2u".to_owned()),
            ("memory".to_owned(), "4Gi".to_owned()),
            ("zone".to_owned(), "a".to_owned()),
        ]);
        let current = BTreeMap::from([
            ("cpu".to_owned(), "2u".to_owned()),
            ("memory".to_owned(), "2Gi".to_owned()),
            ("other".to_owned(), "kept".to_owned()),
        ]);
        let missing = missing_annotations(Some(&current), &wanted);
        assert_eq!(
            missing,
            BTreeMap::from([
                ("memory".to_owned(), "4Gi".to_owned()),
                ("zone".to_owned(), "a".to_owned()),
            ])
        );
        assert_eq!(missing_annotations(None, &wanted), wanted);
        assert!(missing_annotations(Some(&wanted), &wanted).is_empty());
    }

    #[test]
    fn a_lost_pod_fails_with_its_running_containers_terminated() {
        let current = PodStatus {
            phase: Some("Running".into()),
            container_statuses: Some(vec![ContainerStatus {
                name: "app".into(),
                ready: true,
                state: Some(ContainerState::default()),
                ..ContainerStatus::default()
            }]),
            conditions: Some(vec![
                cond("Ready", "True"),
                cond("ContainersReady", "True"),
                cond("PodScheduled", "True"),
            ]),
            ..PodStatus::default()
        };
        let now = Timestamp::now();
        let lost = lost_status(Some(&current), "gone", &now);
        assert!(is_terminal(Some(&lost)));
        assert_eq!(
            (lost.reason.as_deref(), lost.message.as_deref()),
            (Some("ProviderFailed"), Some("gone"))
        );
        let cs = &lost.container_statuses.unwrap()[0];
        assert!(!cs.ready);
        assert_eq!(cs.started, Some(false));
        let terminated = cs.state.as_ref().unwrap().terminated.as_ref().unwrap();
        assert_eq!(
            terminated,
            &ContainerStateTerminated {
                exit_code: 137,
                reason: Some("ContainerStatusUnknown".into()),
                message: Some("gone".into()),
                finished_at: Some(Time(now)),
                ..ContainerStateTerminated::default()
            },
            "what the kubelet says of a container it lost"
        );
        let not_ready = |type_: &str| PodCondition {
            type_: type_.into(),
            status: "False".into(),
            reason: Some("PodFailed".into()),
            last_transition_time: Some(Time(now)),
            ..PodCondition::default()
        };
        assert_eq!(
            lost.conditions.unwrap(),
            [
                not_ready("Ready"),
                not_ready("ContainersReady"),
                cond("PodScheduled", "True")
            ],
            "no longer ready since now; scheduled as it was"
        );
    }
}
