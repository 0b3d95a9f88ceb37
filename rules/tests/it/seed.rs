//! Every example manifest of the seed (`fixtures/seed/*.yaml`) through `decide`: the hostPath
//! Deployment (HP-01), the nginx pod (WL-01), the Job (WL-04) and the CronJob (WL-05).

use crate::common;

use std::collections::BTreeMap;

use burst_rules::decide::{AdmissionInput, Decision, decide};
use burst_rules::flavour::{ANNOTATION_POD_SIZE_SPECS, size_pod};
use burst_rules::hostpath::ANNOTATION;
use burst_rules::policy::{LABEL, OwnerFacts};
use burst_rules::release::Release;
use common::*;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec};
use rstest::rstest;
use serde_json::{Value, json};

/// The pod a controller would create from `template` in `namespace`.
fn pod_from(template: &PodTemplateSpec, namespace: &str, generate_name: &str) -> Pod {
    let mut metadata = template.metadata.clone().unwrap_or_default();
    metadata.namespace = Some(namespace.into());
    metadata.generate_name = Some(generate_name.into());
    Pod {
        metadata,
        spec: template.spec.clone(),
        ..Pod::default()
    }
}

fn seed_deployment() -> (Pod, Vec<OwnerFacts>) {
    let d: Deployment = fixture("seed/hostpath-deployment.yaml");
    let template = &d.spec.as_ref().unwrap().template;
    let owners = deployment_owners(
        "default",
        "test",
        d.metadata.labels.as_ref().unwrap(),
        template.metadata.as_ref().unwrap().labels.as_ref().unwrap(),
    );
    (pod_from(template, "default", "test-5d8f7c9b6-"), owners)
}

#[rstest]
#[case::before_projected("1.3.24")]
#[case::before_localtime("1.5.8")]
#[case::sidecar_v1("1.5.17")]
#[case::sidecar_v2("1.5.18")]
fn the_seeds_hostpath_deployment_bursts_with_two_removed_and_one_replaced(#[case] r: &str) {
    // HP-01. The label is on the Deployment, not on its template: it reaches the pod through the
    // owner chain. The 10Gi emptyDir on a 250m pod needs "cores" counted as whole cores.
    let (pod, owners) = seed_deployment();
    assert!(!pod.metadata.labels.as_ref().unwrap().contains_key(LABEL));
    let decision = decide(&AdmissionInput::new(pod.clone(), release(r)).with_owners(owners));
    let Decision::Mutate { patch, reasons } = &decision else {
        panic!("{decision:?}")
    };
    assert_eq!(
        patch,
        &json!([
            {"op": "add", "path": "/spec/tolerations", "value": [
                {"key": "virtual-kubelet.io/provider", "operator": "Exists", "effect": "NoSchedule"}]},
            {"op": "add", "path": "/spec/affinity", "value": {"nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                    {"matchExpressions": [{"key": "type", "operator": "In", "values": ["virtual-kubelet"]}]}]}}}},
            {"op": "replace", "path": "/spec/volumes", "value": [
                {"name": "test-log", "emptyDir": {"sizeLimit": "10Gi"}}]},
            {"op": "replace", "path": "/spec/containers/0/volumeMounts", "value": [
                {"name": "test-log", "mountPath": "/tmp/log"}]},
        ])
    );
    assert_eq!(
        reasons,
        &[
            "virtual-kubelet.io/burst-to-cci=enforce on Deployment default/test: tolerates the virtual node's taint virtual-kubelet.io/provider",
            "virtual-kubelet.io/burst-to-cci=enforce on Deployment default/test: requires a node labelled type=virtual-kubelet",
            "coordinator.cci.io/hostpath-replacement: hostPath volume \"test-log\" (/var/paas/sys/log/virtual-kubelet) replaced by an emptyDir of 10Gi",
            "coordinator.cci.io/hostpath-replacement: hostPath volume \"test-log1\" (/var/paas/sys/log) removed with its mounts",
            "coordinator.cci.io/hostpath-replacement: hostPath volume \"test-log2\" (/var/paas/sys/log2) removed with its mounts",
            "on CCI it runs as flavour 0.25 vCPU / 0.5 GiB",
        ]
    );
    let after = patched(&pod, &decision);
    let spec = after.spec.as_ref().unwrap();
    assert_eq!(spec.containers[0].image.as_deref(), Some("nginx"));
    assert_eq!(size_pod(&after).unwrap().flavour.spec(), "0.25_0.5");
}

#[test]
fn the_seeds_deployment_without_its_annotation_is_refused_naming_all_three_hostpaths() {
    let (mut pod, owners) = seed_deployment();
    pod.metadata
        .annotations
        .as_mut()
        .unwrap()
        .remove(ANNOTATION);
    let decision = decide(&AdmissionInput::new(pod, latest()).with_owners(owners));
    let Decision::Refuse { message } = decision else {
        panic!("not refused")
    };
    assert!(message.starts_with("pod default/test-5d8f7c9b6-* (of Deployment default/test) cannot run on CCI, as virtual-kubelet.io/burst-to-cci=enforce on Deployment default/test requires: 3 problems:"), "{message}");
    for name in ["test-log", "test-log1", "test-log2"] {
        assert!(message.contains(&format!("volume \"{name}\": hostPath is not supported on CCI; add it to coordinator.cci.io/hostpath-replacement (remove or replaceByEmptyDir)")), "{message}");
    }
}

#[test]
fn the_seeds_deployment_with_twenty_gib_instead_of_ten_is_refused() {
    let (mut pod, owners) = seed_deployment();
    let annotations = pod.metadata.annotations.as_mut().unwrap();
    let text = annotations[ANNOTATION].replace("10Gi", "20Gi");
    annotations.insert(ANNOTATION.into(), text);
    let message = decide(&AdmissionInput::new(pod, latest()).with_owners(owners))
        .message()
        .unwrap()
        .to_string();
    assert!(
        message.contains("volume \"test-log\": emptyDir sizeLimit 20Gi is more than 10Gi"),
        "{message}"
    );
}

#[rstest]
#[case::enforce("enforce", true)]
#[case::no_label("", false)]
fn the_seeds_nginx_pod(#[case] policy: &str, #[case] mutated: bool) {
    // WL-01: 500m / 1024Mi → 0.5 vCPU / 1 GiB; the pull secret stays.
    let mut pod: Pod = fixture("seed/nginx-pod.yaml");
    pod.metadata.namespace = Some("default".into());
    if !policy.is_empty() {
        pod = with_policy(pod, policy);
    }
    let decision = decide_pod(&pod, latest());
    if !mutated {
        assert_eq!(decision, Decision::Allow);
        return;
    }
    let Decision::Mutate { reasons, .. } = &decision else {
        panic!("{decision:?}")
    };
    assert_eq!(
        reasons.last().unwrap(),
        "on CCI it runs as flavour 0.5 vCPU / 1 GiB"
    );
    let after = patched(&pod, &decision);
    let secrets = after
        .spec
        .as_ref()
        .unwrap()
        .image_pull_secrets
        .as_ref()
        .unwrap();
    assert_eq!(secrets[0].name, "imagepull-secret");
    let f = size_pod(&after).unwrap().flavour;
    assert_eq!(
        f.cluster_pod_annotations()["virtual-kubelet.cci.io/burst-pod-cpu"],
        "0.5u"
    );
    assert_eq!(
        f.cluster_pod_annotations()["virtual-kubelet.cci.io/burst-pod-memory"],
        "1Gi"
    );
    assert_eq!(f.cci_pod_annotations()["resource.cci.io/size"], "0.5_1");
}

fn seed_job() -> (Job, Pod) {
    let job: Job = fixture("seed/job.yaml");
    let spec = job.spec.as_ref().unwrap();
    assert_eq!(
        (
            spec.completions,
            spec.parallelism,
            spec.backoff_limit,
            spec.active_deadline_seconds
        ),
        (Some(50), Some(5), Some(5), Some(10))
    );
    let pod = pod_from(&spec.template, "cci-namespace-test1", "pi-with-timeout-");
    (job, pod)
}

fn enforce(labels: Option<&BTreeMap<String, String>>) -> BTreeMap<String, String> {
    let mut labels = labels.cloned().unwrap_or_default();
    labels.insert(LABEL.into(), "enforce".into());
    labels
}

#[rstest]
#[case::as_written(None, "cannot run on CCI")]
#[case::with_requests(Some("requests"), "")]
#[case::with_pod_size_specs(Some("annotation"), "")]
fn the_seeds_job_labelled_enforce(#[case] fix: Option<&str>, #[case] refusal: &str) {
    // WL-04. As written the Job's container has no requests or limits, which CCI needs: a
    // scenario must add them (or the pod-size-specs annotation).
    let (job, mut pod) = seed_job();
    match fix {
        Some("requests") => {
            pod.spec.as_mut().unwrap().containers[0].resources =
                serde_json::from_value(json!({"requests": {"cpu": "250m", "memory": "512Mi"}}))
                    .unwrap();
        }
        Some(_) => pod = with_annotation(pod, ANNOTATION_POD_SIZE_SPECS, "0.25_0.5"),
        None => {}
    }
    let owners = vec![OwnerFacts {
        kind: "Job".into(),
        name: "cci-namespace-test1/pi-with-timeout".into(),
        labels: enforce(job.metadata.labels.as_ref()),
    }];
    let decision = decide(&AdmissionInput::new(pod, latest()).with_owners(owners));
    if refusal.is_empty() {
        assert!(matches!(decision, Decision::Mutate { .. }), "{decision:?}");
    } else {
        let message = decision.message().unwrap();
        assert!(message.contains(refusal), "{message}");
        assert!(
            message.contains("no container has cpu or memory requests or limits"),
            "{message}"
        );
    }
}

#[test]
fn the_seeds_job_without_a_label_is_left_alone() {
    let (_, pod) = seed_job();
    assert_eq!(decide_pod(&pod, latest()), Decision::Allow);
}

#[test]
fn the_seeds_cronjob_keeps_batch_v1beta1_which_the_v1_type_refuses_by_name() {
    // WL-05: loading the manifest as today's CronJob fails, naming the API version.
    let text = std::fs::read_to_string(fixtures_dir().join("seed/cronjob.yaml")).unwrap();
    let err = from_yaml::<CronJob>(&text).unwrap_err();
    assert!(err.contains("batch/v1beta1"), "{err}");
    let raw: Value = fixture("seed/cronjob.yaml");
    assert_eq!(raw["apiVersion"], "batch/v1beta1");
    assert_eq!(raw["spec"]["schedule"], "0,15,30,45 * * * *");
}

#[rstest]
#[case::as_written(false)]
#[case::with_pod_size_specs(true)]
fn the_seeds_cronjob_labelled_enforce(#[case] sized: bool) {
    // Pod → Job → CronJob: the label on the CronJob reaches the pod.
    let raw: Value = fixture("seed/cronjob.yaml");
    let template: PodTemplateSpec =
        serde_json::from_value(raw["spec"]["jobTemplate"]["spec"]["template"].clone()).unwrap();
    let mut pod = pod_from(
        &template,
        "cci-namespace-test1",
        "cronjob-example-29000000-",
    );
    if sized {
        pod = with_annotation(pod, ANNOTATION_POD_SIZE_SPECS, "0.25_0.5");
    }
    let owners = vec![
        OwnerFacts::new(
            "Job",
            "cci-namespace-test1/cronjob-example-29000000",
            BTreeMap::<String, String>::new(),
        ),
        OwnerFacts::new(
            "CronJob",
            "cci-namespace-test1/cronjob-example",
            enforce(None),
        ),
    ];
    let decision = decide(&AdmissionInput::new(pod, Release::new(1, 5, 18)).with_owners(owners));
    if sized {
        let Decision::Mutate { reasons, .. } = &decision else {
            panic!("{decision:?}")
        };
        assert!(
            reasons[0].contains("on CronJob cci-namespace-test1/cronjob-example"),
            "{reasons:?}"
        );
    } else {
        let message = decision.message().unwrap();
        assert!(message.starts_with("pod cci-namespace-test1/cronjob-example-29000000-* (of CronJob cci-namespace-test1/cronjob-example) cannot run on CCI"), "{message}");
    }
}

#[test]
fn every_seed_fixture_is_tested_here() {
    let mut names: Vec<String> = std::fs::read_dir(fixtures_dir().join("seed"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "cronjob.yaml",
            "hostpath-deployment.yaml",
            "job.yaml",
            "nginx-pod.yaml"
        ]
    );
}
