//! The CCI pod for a cluster pod ([`to_cci_pod`]): the refusals, the pod's own fields (restart
//! policy, the image pull secret, labels and annotations), §4's size and the sidecar protocol of
//! the release. Volumes and containers are translated in their own modules; this one puts them
//! together and decides what holds for the pod as a whole.

use std::collections::{BTreeMap, BTreeSet};

use burst_rules::flavour::ANNOTATION_POD_SIZE_SPECS;
use burst_rules::release::{Gate, Release};
use cci_api::{
    ANNOTATION_CLUSTER_POD, ANNOTATION_RELEASE, ANNOTATION_SIDECAR_PROTOCOL, LABEL_CLUSTER_POD_UID,
};
use k8s_openapi::api::core::v1::{Container, LocalObjectReference, Pod, PodSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::containers::to_cci_container;
use super::volumes::to_cci_volume;
use super::{
    LOCALTIME_PATH, MAX_CCI_POD_NAME_LEN, cci_pod_name, identity, is_kube_api_access,
    missing_token_secret, token_account,
};
use crate::breakage::{self, Breakage};
use crate::{Error, Result};

/// The image pull secret every CCI pod uses (`BEHAVIOR.md` §4).
pub const IMAGE_PULL_SECRET: &str = "imagepull-secret";

/// The sidecar protocol of pods burst by releases before 1.5.18 (and of pods that do not say).
pub const SIDECAR_PROTOCOL_V1: &str = "v1";
/// The protocol of the new sidecar, injected from release 1.5.18 ([`Gate::SidecarV2`]).
pub const SIDECAR_PROTOCOL_V2: &str = "v2";

/// The sidecar protocol a pod burst by `release` speaks: [`SIDECAR_PROTOCOL_V2`] when the
/// release allows [`Gate::SidecarV2`], else [`SIDECAR_PROTOCOL_V1`].
pub fn sidecar_protocol(release: Release) -> &'static str {
    if breakage::judged_at(release, Gate::SidecarV2).allows(Gate::SidecarV2)
        && !breakage::is(Breakage::SidecarAlwaysV1)
    {
        SIDECAR_PROTOCOL_V2
    } else {
        SIDECAR_PROTOCOL_V1
    }
}

/// `cci_name`, or under the breakage `cci-names-uid-suffixed` that name with the first
/// characters of the pod's `uid` appended (the bug: "a recreated pod must never meet its
/// predecessor's Terminating CCI pod").
pub fn suffixed_name(cci_name: String, uid: &str) -> String {
    if breakage::is(Breakage::CciNamesUidSuffixed) {
        format!("{cci_name}-{}", uid.get(..5).unwrap_or(uid))
    } else {
        cci_name
    }
}

/// The CCI pod standing for cluster pod `pod` of cluster `cluster_id`, burst by an engine
/// running as `release` (see the [module docs](super)). `token_secret` names the service
/// account's token Secret ([`choose_token_secret`](super::choose_token_secret)) a projected
/// `serviceAccountToken` source becomes; `None` when there is none.
///
/// Refuses pods that cannot run on CCI: DaemonSet pods (they never burst), pods without
/// containers, pods whose CCI name would exceed [`MAX_CCI_POD_NAME_LEN`], volumes CCI does not
/// mount (or not at `release`), and pods that fit no flavour. After every refusal is ruled out,
/// a pod with a `serviceAccountToken` source and no `token_secret` is
/// [`Error::WaitingForToken`] ([`missing_token_secret`]).
pub fn to_cci_pod(
    pod: &Pod,
    cluster_id: &str,
    release: Release,
    token_secret: Option<&str>,
) -> Result<cci_api::Pod> {
    let (namespace, name, uid) = identity(pod)?;
    let refuse = |reason: String| Error::Translate {
        pod: format!("{namespace}/{name}"),
        reason,
    };
    let owned_by_daemonset = pod
        .metadata
        .owner_references
        .iter()
        .flatten()
        .any(|o| o.kind == "DaemonSet");
    if owned_by_daemonset {
        return Err(refuse(
            "is a DaemonSet pod; DaemonSet pods never burst to CCI: keep them off the virtual node (do not tolerate virtual-kubelet.io/provider)".into(),
        ));
    }
    let cci_name = suffixed_name(cci_pod_name(namespace, name), uid);
    if cci_name.len() > MAX_CCI_POD_NAME_LEN {
        return Err(refuse(format!(
            "the CCI pod name {namespace}.{name} would be {} characters, over CCI's {MAX_CCI_POD_NAME_LEN}: shorten the pod name",
            cci_name.len()
        )));
    }
    let empty = PodSpec::default();
    let spec = pod.spec.as_ref().unwrap_or(&empty);
    if spec.containers.is_empty() {
        return Err(refuse("has no containers".into()));
    }
    let mut volumes = Vec::new();
    let mut dropped = BTreeSet::new();
    for v in spec.volumes.iter().flatten() {
        if is_kube_api_access(v) {
            dropped.insert(v.name.as_str());
            continue;
        }
        if breakage::is(Breakage::LocaltimeHostPathDropped)
            && v.host_path
                .as_ref()
                .is_some_and(|h| h.path == LOCALTIME_PATH)
        {
            dropped.insert(v.name.as_str());
            continue;
        }
        // NB: without a token Secret the name is never used: the pod waits, below.
        let token = token_secret.unwrap_or_default();
        volumes.push(to_cci_volume(namespace, token, release, v).map_err(refuse)?);
    }
    let container = |c: &Container| to_cci_container(namespace, c, &dropped).map_err(refuse);
    let containers = spec
        .containers
        .iter()
        .map(container)
        .collect::<Result<Vec<_>>>()?;
    let init_containers = spec
        .init_containers
        .iter()
        .flatten()
        .map(container)
        .collect::<Result<Vec<_>>>()?;
    let cci_spec = PodSpec {
        containers,
        init_containers: (!init_containers.is_empty()).then_some(init_containers),
        volumes: (!volumes.is_empty()).then_some(volumes),
        image_pull_secrets: Some(vec![LocalObjectReference {
            name: IMAGE_PULL_SECRET.into(),
        }]),
        restart_policy: spec.restart_policy.clone(),
        ..PodSpec::default()
    };
    let pinned = pod
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(ANNOTATION_POD_SIZE_SPECS))
        .filter(|_| !breakage::is(Breakage::PodSizeSpecsIgnored));
    // §4's size comes from the cluster pod's own resources: max(sum of requests, each limit,
    // largest init container). The translated containers hold only their requests, so when a
    // limit makes the pod larger than they add up to, the size is pinned for CCI (which sizes a
    // pod from its containers unless pod-size-specs names a larger flavour).
    let without_init;
    let sized = if breakage::is(Breakage::InitContainersNotSized) {
        without_init = PodSpec {
            init_containers: None,
            ..spec.clone()
        };
        &without_init
    } else {
        spec
    };
    let sizing = burst_rules::flavour::size(sized, pinned.map(String::as_str))
        .map_err(|e| refuse(e.to_string()))?;
    if token_secret.is_none()
        && let Some(account) = token_account(pod)
    {
        return Err(missing_token_secret(namespace, account));
    }
    let containers_round_to = burst_rules::flavour::size(&cci_spec, None)
        .ok()
        .map(|s| s.flavour);
    let mut annotations = BTreeMap::from([
        (
            ANNOTATION_CLUSTER_POD.to_string(),
            format!("{namespace}/{name}"),
        ),
        (
            ANNOTATION_SIDECAR_PROTOCOL.to_string(),
            sidecar_protocol(release).to_string(),
        ),
        (ANNOTATION_RELEASE.to_string(), release.to_string()),
    ]);
    if let Some(pinned) = pinned {
        annotations.insert(ANNOTATION_POD_SIZE_SPECS.to_string(), pinned.clone());
    } else if containers_round_to != Some(sizing.flavour) {
        annotations.insert(ANNOTATION_POD_SIZE_SPECS.to_string(), sizing.flavour.spec());
    }
    let mut labels = if breakage::is(Breakage::ClusterLabelsDropped) {
        BTreeMap::new()
    } else {
        pod.metadata.labels.clone().unwrap_or_default()
    };
    // NB: inserted last, so a cluster label of the same key never hides the pod's identity.
    labels.insert(LABEL_CLUSTER_POD_UID.to_string(), uid.to_string());
    let metadata = ObjectMeta {
        name: Some(cci_name),
        namespace: Some(cci_api::namespace_for_cluster(cluster_id)),
        labels: Some(labels),
        annotations: Some(annotations),
        ..ObjectMeta::default()
    };
    Ok(cci_api::Pod::new(metadata, cci_spec))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::translate::cluster_uid_of;
    use crate::translate::fixtures::{
        LATEST, cluster_pod, pod_with, resources, size_on_cci, token_volume, volume,
    };
    use burst_rules::flavour::ANNOTATION_SIZE;
    use k8s_openapi::api::core::v1::{NFSVolumeSource, PodStatus};
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
    use rstest::rstest;

    #[test]
    fn a_cluster_pod_becomes_a_cci_pod_named_namespace_dot_name_in_the_cluster_namespace() {
        let cci = to_cci_pod(&cluster_pod("shop", "web-0"), "c1", LATEST, None).unwrap();
        assert_eq!(cci.api_version, "cci/v2");
        assert_eq!(cci.kind, "Pod");
        assert_eq!(cci.metadata.name.as_deref(), Some("shop.web-0"));
        assert_eq!(cci.metadata.namespace.as_deref(), Some("bursting-c1"));
        assert_eq!(
            cci.metadata.labels.unwrap()[LABEL_CLUSTER_POD_UID],
            "6f1c0d7e-0000-4000-8000-000000000001"
        );
        assert_eq!(
            cci.metadata.annotations.unwrap()[ANNOTATION_CLUSTER_POD],
            "shop/web-0"
        );
    }

    #[test]
    fn the_cci_pod_carries_the_cluster_pods_labels_and_the_engines_own_label_wins() {
        let mut pod = cluster_pod("shop", "pi-x7k2p");
        pod.metadata.labels = Some(BTreeMap::from([
            ("job-name".into(), "pi".into()),
            ("batch.kubernetes.io/job-name".into(), "pi".into()),
            ("virtual-kubelet.io/burst-to-cci".into(), "enforce".into()),
            // A label claiming another pod's identity must not hide this pod's.
            (LABEL_CLUSTER_POD_UID.into(), "someone-else".into()),
        ]));
        let labels = to_cci_pod(&pod, "c1", LATEST, None)
            .unwrap()
            .metadata
            .labels
            .unwrap();
        assert_eq!(
            labels,
            BTreeMap::from([
                ("batch.kubernetes.io/job-name".to_string(), "pi".to_string()),
                ("job-name".to_string(), "pi".to_string()),
                (
                    "virtual-kubelet.io/burst-to-cci".to_string(),
                    "enforce".to_string()
                ),
                (
                    LABEL_CLUSTER_POD_UID.to_string(),
                    "6f1c0d7e-0000-4000-8000-000000000001".to_string()
                ),
            ])
        );
        // The identity read back is the pod's own UID.
        let cci = to_cci_pod(&pod, "c1", LATEST, None).unwrap();
        assert_eq!(
            cluster_uid_of(&cci),
            Some("6f1c0d7e-0000-4000-8000-000000000001")
        );
    }

    #[test]
    fn a_cluster_pod_without_labels_gets_only_the_engines_label() {
        let mut pod = cluster_pod("shop", "web-0");
        pod.metadata.labels = None;
        let labels = to_cci_pod(&pod, "c1", LATEST, None)
            .unwrap()
            .metadata
            .labels
            .unwrap();
        assert_eq!(
            labels.keys().collect::<Vec<_>>(),
            [LABEL_CLUSTER_POD_UID],
            "{labels:?}"
        );
    }

    #[test]
    fn a_cci_pod_name_of_253_characters_is_the_longest_that_runs() {
        let mut pod = cluster_pod("shop", "web-0");
        pod.metadata.name = Some("a".repeat(248));
        let cci = to_cci_pod(&pod, "c1", LATEST, None).expect("253 characters fit");
        assert_eq!(cci.metadata.name.map(|n| n.len()), Some(253));
    }

    #[test]
    fn translation_does_not_depend_on_the_cluster_pods_status() {
        let mut a = cluster_pod("shop", "web-0");
        let b = a.clone();
        a.status = Some(PodStatus {
            phase: Some("Pending".into()),
            ..PodStatus::default()
        });
        assert_eq!(
            to_cci_pod(&a, "c1", LATEST, None).unwrap(),
            to_cci_pod(&b, "c1", LATEST, None).unwrap()
        );
    }

    #[rstest]
    #[case::no_uid(|p: &mut Pod| p.metadata.uid = None, "has no uid")]
    #[case::no_namespace(|p: &mut Pod| p.metadata.namespace = None, "no namespace")]
    #[case::no_containers(|p: &mut Pod| p.spec.as_mut().unwrap().containers.clear(), "has no containers")]
    #[case::daemonset(|p: &mut Pod| p.metadata.owner_references = Some(vec![OwnerReference {
        kind: "DaemonSet".into(), name: "agent".into(), ..OwnerReference::default()
    }]), "DaemonSet pods never burst")]
    // `shop.` and 249 characters: 254, one over.
    #[case::name_too_long(|p: &mut Pod| p.metadata.name = Some("a".repeat(249)), "would be 254 characters, over CCI's 253")]
    fn pods_that_cannot_run_on_cci_are_refused_with_the_reason(
        #[case] break_it: fn(&mut Pod),
        #[case] hint: &str,
    ) {
        let mut pod = cluster_pod("shop", "web-0");
        break_it(&mut pod);
        let err = to_cci_pod(&pod, "c1", LATEST, None).unwrap_err();
        assert!(err.to_string().contains(hint), "{err}");
        assert!(matches!(
            vk::ProviderError::from(err),
            vk::ProviderError::InvalidInput(_)
        ));
    }

    #[rstest]
    #[case::seed_nginx(&[("cpu", "500m", "500m"), ("memory", "1Gi", "1Gi")], None, "0.5_1", None)]
    #[case::small(&[("cpu", "100m", ""), ("memory", "100Mi", "")], None, "0.25_0.5", None)]
    #[case::memory_heavy(&[("cpu", "1", ""), ("memory", "10Gi", "")], None, "2_10", None)]
    #[case::from_limits(&[("cpu", "500m", "3"), ("memory", "1Gi", "")], None, "4_4", Some("4_4"))]
    #[case::pinned(&[("cpu", "500m", ""), ("memory", "1Gi", "")], Some("2_4"), "2_4", Some("2_4"))]
    fn the_size_annotation_is_the_cluster_pods_size_pinned_when_the_containers_round_lower(
        #[case] container: &[(&str, &str, &str)],
        #[case] pinned: Option<&str>,
        #[case] size: &str,
        #[case] pinned_on_cci: Option<&str>,
    ) {
        let mut pod = pod_with(vec![], vec![]);
        pod.spec.as_mut().unwrap().containers[0].resources = Some(resources(container));
        if let Some(pinned) = pinned {
            pod.metadata.annotations = Some(BTreeMap::from([(
                ANNOTATION_POD_SIZE_SPECS.to_string(),
                pinned.to_string(),
            )]));
        }
        let cci = to_cci_pod(&pod, "c1", LATEST, None).unwrap();
        assert_eq!(size_on_cci(&cci), size);
        let annotations = cci.metadata.annotations.unwrap();
        assert_eq!(
            annotations.get(ANNOTATION_SIZE),
            None,
            "CCI writes the size itself"
        );
        assert_eq!(
            annotations
                .get(ANNOTATION_POD_SIZE_SPECS)
                .map(String::as_str),
            pinned_on_cci
        );
    }

    #[test]
    fn two_containers_with_limits_above_requests_are_sized_by_section_4_not_by_their_limits() {
        let mut pod = pod_with(vec![], vec![]);
        let mut second = pod.spec.as_ref().unwrap().containers[0].clone();
        second.name = "second".into();
        pod.spec.as_mut().unwrap().containers.push(second);
        for c in &mut pod.spec.as_mut().unwrap().containers {
            c.resources = Some(resources(&[("cpu", "500m", "1"), ("memory", "1Gi", "2Gi")]));
        }
        let cci = to_cci_pod(&pod, "c1", LATEST, None).unwrap();
        // max(0.5 + 0.5, 1, 1) vCPU, max(1 + 1, 2, 2) GiB; the requests alone round to 1_2 too.
        assert_eq!(size_on_cci(&cci), "1_2");
        let annotations = cci.metadata.annotations.clone().unwrap();
        assert_eq!(annotations.get(ANNOTATION_POD_SIZE_SPECS), None);
        for c in &cci.spec.containers {
            let r = c.resources.clone().unwrap();
            assert_eq!(r.requests, r.limits);
            assert_eq!(r.limits.unwrap()["cpu"], Quantity("500m".into()));
        }
    }

    #[rstest]
    #[case::too_many_cores(&[("cpu", "65", ""), ("memory", "1Gi", "")], "fits no CCI flavour")]
    #[case::too_much_memory(&[("cpu", "1", ""), ("memory", "600Gi", "")], "600Gi")]
    #[case::nothing_named(&[], "no container has cpu or memory")]
    fn a_pod_that_fits_no_flavour_is_refused_with_the_numbers(
        #[case] container: &[(&str, &str, &str)],
        #[case] hint: &str,
    ) {
        let mut pod = pod_with(vec![], vec![]);
        pod.spec.as_mut().unwrap().containers[0].resources = Some(resources(container));
        let err = to_cci_pod(&pod, "c1", LATEST, None).unwrap_err();
        assert!(err.to_string().contains(hint), "{err}");
        assert!(matches!(
            vk::ProviderError::from(err),
            vk::ProviderError::InvalidInput(_)
        ));
    }

    #[test]
    fn image_pulls_always_use_the_cci_pull_secret() {
        let mut pod = pod_with(vec![], vec![]);
        pod.spec.as_mut().unwrap().image_pull_secrets = Some(vec![LocalObjectReference {
            name: "my-registry".into(),
        }]);
        let cci = to_cci_pod(&pod, "c1", LATEST, None).unwrap();
        assert_eq!(
            cci.spec.image_pull_secrets.unwrap(),
            vec![LocalObjectReference {
                name: "imagepull-secret".into()
            }]
        );
    }

    #[test]
    fn a_refusal_comes_before_waiting_for_the_token_secret() {
        let pod = pod_with(
            vec![
                token_volume(),
                volume("nfs", |v| v.nfs = Some(NFSVolumeSource::default())),
            ],
            vec![],
        );
        let err = to_cci_pod(&pod, "c1", LATEST, None).unwrap_err();
        assert!(matches!(err, Error::Translate { .. }), "{err}");
    }

    // --- release ---

    fn annotations_at(release: &str) -> BTreeMap<String, String> {
        let release: Release = release.parse().unwrap();
        to_cci_pod(&cluster_pod("shop", "web-0"), "c1", release, None)
            .unwrap()
            .metadata
            .annotations
            .unwrap()
    }

    #[rstest]
    #[case::long_before("1.3.25", "v1")]
    #[case::just_before("1.5.17", "v1")]
    #[case::at_the_gate("1.5.18", "v2")]
    #[case::after("1.6.0", "v2")]
    fn the_cci_pod_names_the_sidecar_protocol_of_the_engines_release(
        #[case] release: &str,
        #[case] protocol: &str,
    ) {
        assert_eq!(
            annotations_at(release)[ANNOTATION_SIDECAR_PROTOCOL],
            protocol
        );
        assert_eq!(
            sidecar_protocol(release.parse().unwrap()),
            protocol,
            "the annotation and the proxy read the same function"
        );
    }

    #[rstest]
    #[case::older("1.5.17")]
    #[case::newer("1.5.18")]
    fn the_cci_pod_records_the_release_that_burst_it(#[case] release: &str) {
        assert_eq!(annotations_at(release)[ANNOTATION_RELEASE], release);
    }
}
