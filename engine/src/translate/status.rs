//! CCI pod → cluster pod: which cluster pod a CCI pod stands for (its UID label, then its
//! annotation or its name), and its status reported back, limited to the fields a cluster pod's
//! status has.

use cci_api::{ANNOTATION_CLUSTER_POD, LABEL_CLUSTER_POD_UID};
use k8s_openapi::api::core::v1::{ContainerStatus, HostIP, PodCondition, PodIP, PodStatus};

use super::cluster_pod_of;
use crate::breakage::{self, Breakage};

/// The cluster pod a CCI pod stands for, with its status mapped back and its flavour as the
/// cluster pod's annotations (§1); `None` for a CCI pod the engine did not create (no UID
/// label, or no readable cluster name).
pub fn remote_pod(cci: &cci_api::PodSummary) -> Option<vk::RemotePod> {
    let m = &cci.metadata;
    let uid = m.labels.as_ref()?.get(LABEL_CLUSTER_POD_UID)?.clone();
    let (namespace, name) = match m
        .annotations
        .as_ref()
        .and_then(|a| a.get(ANNOTATION_CLUSTER_POD))
    {
        Some(annotation) => annotation.split_once('/')?,
        None => cluster_pod_of(m.name.as_deref()?)?,
    };
    Some(vk::RemotePod {
        namespace: namespace.to_string(),
        name: name.to_string(),
        uid,
        status: cci
            .status
            .as_ref()
            .map(|s| cluster_status(s, &cci.spec.containers)),
        // The flavour the pod was rounded up to, for the cluster pod (§1): written with its
        // status, so a burst pod costs the API server one write, not two.
        annotations: m
            .annotations
            .as_ref()
            .and_then(|a| a.get(burst_rules::flavour::ANNOTATION_SIZE))
            .and_then(|size| burst_rules::flavour::parse_pod_size_specs(size).ok())
            .map(|flavour| flavour.cluster_pod_annotations())
            .unwrap_or_default(),
    })
}

/// The UID label of a CCI pod.
pub fn cluster_uid_of(cci: &cci_api::Pod) -> Option<&str> {
    cci.metadata
        .labels
        .as_ref()?
        .get(LABEL_CLUSTER_POD_UID)
        .map(String::as_str)
}

/// The cluster pod status for a CCI pod status: phase, reason, message, IPs, start time,
/// conditions and container statuses.
///
/// Fields that belong to the cluster (QoS class, observed generation, nominated node, resize,
/// resource claims) are left out. `podIPs`/`hostIPs` are derived from `podIP`/`hostIP` when CCI
/// only gives the latter, since the API server requires them to agree. A container status
/// without an image gets the image of the CCI spec's container of that name.
pub fn cluster_status(cci: &PodStatus, containers: &[cci_api::ContainerSummary]) -> PodStatus {
    let image_of = |name: &str| {
        containers
            .iter()
            .find(|c| c.name == name)
            .and_then(|c| c.image.clone())
            .unwrap_or_default()
    };
    let container = |s: &ContainerStatus| ContainerStatus {
        name: s.name.clone(),
        state: s.state.clone(),
        last_state: s
            .last_state
            .clone()
            .filter(|_| !breakage::is(Breakage::ContainerRestartsDropped)),
        ready: s.ready,
        restart_count: if breakage::is(Breakage::ContainerRestartsDropped) {
            0
        } else {
            s.restart_count
        },
        image: if s.image.is_empty() {
            image_of(&s.name)
        } else {
            s.image.clone()
        },
        image_id: s.image_id.clone(),
        container_id: s.container_id.clone(),
        started: s.started,
        ..ContainerStatus::default()
    };
    let condition = |c: &PodCondition| PodCondition {
        type_: c.type_.clone(),
        status: c.status.clone(),
        reason: c.reason.clone(),
        message: c.message.clone(),
        last_probe_time: c.last_probe_time.clone(),
        last_transition_time: c.last_transition_time.clone(),
        observed_generation: None,
    };
    let pod_ips = cci
        .pod_ips
        .clone()
        .or_else(|| cci.pod_ip.as_ref().map(|ip| vec![PodIP { ip: ip.clone() }]));
    let host_ips = cci.host_ips.clone().or_else(|| {
        cci.host_ip
            .as_ref()
            .map(|ip| vec![HostIP { ip: ip.clone() }])
    });
    let phase = match cci.phase.as_deref() {
        Some("Succeeded") if breakage::is(Breakage::SucceededReportedFailed) => {
            Some("Failed".to_owned())
        }
        _ => cci.phase.clone(),
    };
    PodStatus {
        phase,
        reason: cci.reason.clone(),
        message: cci.message.clone(),
        pod_ip: cci.pod_ip.clone(),
        pod_ips,
        host_ip: cci.host_ip.clone(),
        host_ips,
        start_time: cci.start_time.clone(),
        conditions: cci
            .conditions
            .as_ref()
            .map(|cs| cs.iter().map(condition).collect()),
        container_statuses: cci
            .container_statuses
            .as_ref()
            .map(|cs| cs.iter().map(container).collect()),
        ..PodStatus::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::translate::fixtures::{LATEST, cluster_pod};
    use crate::translate::to_cci_pod;
    use k8s_openapi::api::core::v1::{ContainerState, ContainerStateRunning};

    fn running_cci_pod() -> cci_api::Pod {
        let mut cci = to_cci_pod(&cluster_pod("shop", "web.v2"), "c1", LATEST, None).unwrap();
        cci.metadata.uid = Some("cci-uid".into());
        cci.status = Some(PodStatus {
            phase: Some("Running".into()),
            pod_ip: Some("192.168.0.9".into()),
            host_ip: Some("10.1.0.3".into()),
            qos_class: Some("Guaranteed".into()),
            observed_generation: Some(3),
            conditions: Some(vec![PodCondition {
                type_: "Ready".into(),
                status: "True".into(),
                observed_generation: Some(3),
                ..PodCondition::default()
            }]),
            container_statuses: Some(vec![ContainerStatus {
                name: "app".into(),
                ready: true,
                restart_count: 1,
                state: Some(ContainerState {
                    running: Some(ContainerStateRunning::default()),
                    ..ContainerState::default()
                }),
                ..ContainerStatus::default()
            }]),
            ..PodStatus::default()
        });
        cci
    }

    #[rstest::rstest]
    #[case::succeeded("Succeeded")]
    #[case::failed("Failed")]
    #[case::pending("Pending")]
    fn a_phase_comes_back_as_cci_has_it(#[case] phase: &str) {
        let status = PodStatus {
            phase: Some(phase.into()),
            ..PodStatus::default()
        };
        assert_eq!(cluster_status(&status, &[]).phase.as_deref(), Some(phase));
    }

    #[test]
    fn a_cci_pod_names_its_cluster_pod_and_brings_its_status_back() {
        let remote = remote_pod(&(&running_cci_pod()).into()).unwrap();
        assert_eq!(
            (remote.namespace.as_str(), remote.name.as_str()),
            ("shop", "web.v2")
        );
        assert_eq!(remote.uid, "6f1c0d7e-0000-4000-8000-000000000001");
        let status = remote.status.unwrap();
        assert_eq!(status.phase.as_deref(), Some("Running"));
        assert_eq!(status.pod_ip.as_deref(), Some("192.168.0.9"));
        assert_eq!(status.pod_ips.unwrap()[0].ip, "192.168.0.9");
        assert_eq!(status.host_ips.unwrap()[0].ip, "10.1.0.3");
        assert_eq!(status.qos_class, None);
        assert_eq!(status.observed_generation, None);
        assert_eq!(status.conditions.unwrap()[0].observed_generation, None);
        let cs = &status.container_statuses.unwrap()[0];
        assert_eq!((cs.ready, cs.restart_count), (true, 1));
        assert_eq!(cs.image, "nginx:1.27", "image filled in from the CCI spec");
    }

    #[test]
    fn every_field_of_a_cci_status_the_cluster_pod_has_is_carried_back_and_the_rest_left_out() {
        let time = "2026-12-03T07:00:00Z";
        let terminated = |code: i32, reason: &str| {
            serde_json::json!({"terminated": {"exitCode": code, "reason": reason,
                "startedAt": time, "finishedAt": time}})
        };
        let container = serde_json::json!({
            "name": "app", "image": "nginx:1.27", "imageID": "sha256:abc",
            "containerID": "containerd://c0ffee", "ready": false, "restartCount": 2,
            "started": false, "state": terminated(137, "OOMKilled"),
            "lastState": terminated(1, "Error"),
        });
        let mut on_cci = container.clone();
        on_cci["allocatedResources"] = serde_json::json!({"cpu": "1"});
        let cci: PodStatus = serde_json::from_value(serde_json::json!({
            "phase": "Failed", "reason": "Evicted", "message": "the node ran out of memory",
            "podIP": "192.168.0.9", "hostIP": "10.1.0.3", "startTime": time,
            "qosClass": "Guaranteed", "nominatedNodeName": "cci-node-7",
            "containerStatuses": [on_cci],
        }))
        .unwrap();
        let status = cluster_status(&cci, &[]);
        assert_eq!(
            serde_json::to_value(&status).unwrap(),
            serde_json::json!({
                "phase": "Failed", "reason": "Evicted", "message": "the node ran out of memory",
                "podIP": "192.168.0.9", "podIPs": [{"ip": "192.168.0.9"}],
                "hostIP": "10.1.0.3", "hostIPs": [{"ip": "10.1.0.3"}], "startTime": time,
                "containerStatuses": [container],
            })
        );
    }

    #[test]
    fn a_cci_pod_without_the_uid_label_is_not_ours() {
        let mut cci = running_cci_pod();
        cci.metadata.labels = None;
        assert_eq!(remote_pod(&(&cci).into()), None);
    }

    #[test]
    fn without_the_annotation_the_cluster_pod_is_read_from_the_cci_name() {
        let mut cci = running_cci_pod();
        cci.metadata.annotations = None;
        let remote = remote_pod(&(&cci).into()).unwrap();
        assert_eq!(
            (remote.namespace.as_str(), remote.name.as_str()),
            ("shop", "web.v2")
        );
    }
}
