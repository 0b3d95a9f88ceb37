//! BEHAVIOR.md §4 (resource rounding), RES-01…RES-03, through `decide`: the pre-check refuses
//! under `enforce` with the numbers and keeps the pod local otherwise; a size beyond every
//! flavour alone is admitted under `enforce` (the virtual kubelet refuses it with an event).

use crate::common;

use burst_rules::decide::Decision;
use burst_rules::flavour::{ANNOTATION_POD_SIZE_SPECS, size_pod};
use common::*;
use k8s_openapi::api::core::v1::Pod;
use rstest::rstest;

/// A pod with containers and init containers given as YAML flow sequences.
fn sized_pod(policy: &str, containers: &str, init: &str) -> Pod {
    let init = if init.is_empty() {
        String::new()
    } else {
        format!("\n  initContainers: {init}")
    };
    pod(&format!(
        r#"
metadata:
  name: web
  namespace: default
  labels: {{virtual-kubelet.io/burst-to-cci: {policy}}}
spec:
  containers: {containers}{init}
"#
    ))
}

/// RES-01: requests/limits → flavour and annotations, including init containers.
#[rstest]
#[case::seed_nginx(
    "[{name: a, resources: {requests: {cpu: 500m, memory: 1024Mi}, limits: {cpu: 500m, memory: 1024Mi}}}]",
    "",
    "0.5_1",
    "0.5u",
    "1Gi"
)]
#[case::smallest(
    "[{name: a, resources: {requests: {cpu: 100m, memory: 128Mi}}}]",
    "",
    "0.25_0.5",
    "0.25u",
    "0.5Gi"
)]
#[case::two_containers_summed(
    "[{name: a, resources: {requests: {cpu: 1, memory: 2Gi}}}, {name: b, resources: {requests: {cpu: 1, memory: 2Gi}}}]",
    "",
    "2_4",
    "2u",
    "4Gi"
)]
#[case::a_limit_above_the_sum(
    "[{name: a, resources: {requests: {cpu: 1, memory: 1Gi}, limits: {cpu: 4, memory: 1Gi}}}]",
    "",
    "4_4",
    "4u",
    "4Gi"
)]
#[case::limits_only(
    "[{name: a, resources: {limits: {cpu: '2', memory: 3Gi}}}]",
    "",
    "2_3",
    "2u",
    "3Gi"
)]
#[case::init_larger(
    "[{name: a, resources: {requests: {cpu: 250m, memory: 512Mi}}}]",
    "[{name: i, resources: {requests: {cpu: 2, memory: 8Gi}}}]",
    "2_8",
    "2u",
    "8Gi"
)]
#[case::init_smaller(
    "[{name: a, resources: {requests: {cpu: 2, memory: 8Gi}}}]",
    "[{name: i, resources: {requests: {cpu: 250m, memory: 512Mi}}}]",
    "2_8",
    "2u",
    "8Gi"
)]
#[case::manual_example(
    "[{name: a, resources: {requests: {cpu: 6, memory: 15Gi}}}]",
    "",
    "8_16",
    "8u",
    "16Gi"
)]
#[case::decimal_and_exponent_quantities(
    "[{name: a, resources: {requests: {cpu: '1.5', memory: 2e9}}}]",
    "",
    "2_2",
    "2u",
    "2Gi"
)]
fn requests_and_limits_round_to_the_expected_flavour(
    #[case] containers: &str,
    #[case] init: &str,
    #[case] spec: &str,
    #[case] cpu_annotation: &str,
    #[case] memory_annotation: &str,
) {
    let p = sized_pod("enforce", containers, init);
    let sizing = size_pod(&p).unwrap();
    assert_eq!(sizing.flavour.spec(), spec);
    let cluster = sizing.flavour.cluster_pod_annotations();
    assert_eq!(
        cluster["virtual-kubelet.cci.io/burst-pod-cpu"],
        cpu_annotation
    );
    assert_eq!(
        cluster["virtual-kubelet.cci.io/burst-pod-memory"],
        memory_annotation
    );
    assert_eq!(
        sizing.flavour.cci_pod_annotations()["resource.cci.io/size"],
        spec
    );
    let Decision::Mutate { reasons, .. } = decide_pod(&p, latest()) else {
        panic!("not mutated")
    };
    assert!(
        reasons
            .last()
            .unwrap()
            .contains(&sizing.flavour.to_string()),
        "{reasons:?}"
    );
}

const SMALL: &str = "[{name: a, resources: {requests: {cpu: 1, memory: 2Gi}}}]";
const NONE: &str = "[{name: a, image: nginx}]";

/// RES-02: the annotation pins the size; no flavour, or too small, is refused.
#[rstest]
#[case::pins_a_larger_flavour(SMALL, "4_8", None)]
#[case::pins_the_size_of_a_pod_without_resources(NONE, "0.25_0.5", None)]
#[case::manual_spelling(SMALL, "2.00_4.0", None)]
#[case::not_a_flavour(
    SMALL,
    "3_6",
    Some(
        "annotation resource.cci.io/pod-size-specs \"3_6\" names no CCI flavour: CCI offers 0.25, 0.5, 1, 2, 4, 8, 16, 32, 48 and 64 vCPU"
    )
)]
#[case::off_the_memory_step(
    SMALL,
    "8_10",
    Some("names no CCI flavour: with 8 vCPU CCI offers 8 to 64 GiB in steps of 4 GiB")
)]
#[case::malformed(SMALL, "2c_4g", Some("is not \"{vCPU}_{memory GiB}\""))]
#[case::smaller_cpu(
    SMALL,
    "0.5_2",
    Some(
        "annotation resource.cci.io/pod-size-specs \"0.5_2\" (0.5 vCPU / 2 GiB) is smaller than the containers need (cpu 1 and memory 2Gi); pin a flavour at least that large such as \"1_2\""
    )
)]
#[case::smaller_memory(
    SMALL,
    "1_1",
    Some("is smaller than the containers need (cpu 1 and memory 2Gi)")
)]
fn the_pod_size_specs_annotation(
    #[case] containers: &str,
    #[case] value: &str,
    #[case] refusal: Option<&str>,
) {
    for policy in ["enforce", "auto"] {
        let p = with_annotation(
            sized_pod(policy, containers, ""),
            ANNOTATION_POD_SIZE_SPECS,
            value,
        );
        let decision = decide_pod(&p, latest());
        match (refusal, policy) {
            (None, _) => {
                let Decision::Mutate { reasons, .. } = &decision else {
                    panic!("{decision:?}")
                };
                assert!(
                    reasons
                        .last()
                        .unwrap()
                        .contains("on CCI it runs as flavour"),
                    "{reasons:?}"
                );
            }
            (Some(expected), "enforce") => {
                let Decision::Refuse { message } = &decision else {
                    panic!("{decision:?}")
                };
                assert!(
                    message.contains(expected),
                    "{message}\n  wanted: {expected}"
                );
            }
            (Some(expected), _) => {
                let Decision::KeepLocal { reason } = &decision else {
                    panic!("{decision:?}")
                };
                assert!(reason.contains(expected), "{reason}");
            }
        }
    }
}

/// RES-03: bigger than every flavour. Under `enforce` the pod is admitted and sent to the
/// virtual node (the virtual kubelet refuses it there with a Warning event on the pod, §4);
/// under `auto` and `localPrefer` it is kept local with the numbers.
#[rstest]
#[case::cpu(
    "[{name: a, resources: {requests: {cpu: 65, memory: 1Gi}}}]",
    "",
    "cpu 65 and memory 1Gi"
)]
#[case::memory(
    "[{name: a, resources: {requests: {cpu: 1, memory: 600Gi}}}]",
    "",
    "cpu 1 and memory 600Gi"
)]
#[case::both(
    "[{name: a, resources: {requests: {cpu: 80, memory: 100Gi}}}]",
    "",
    "cpu 80 and memory 100Gi"
)]
#[case::init(
    "[{name: a, resources: {requests: {cpu: 1, memory: 1Gi}}}]",
    "[{name: i, resources: {requests: {cpu: 100}}}]",
    "cpu 100 and memory 1Gi"
)]
fn a_pod_larger_than_every_flavour(
    #[case] containers: &str,
    #[case] init: &str,
    #[case] numbers: &str,
) {
    let flavour_problem = format!(
        "the pod needs {numbers} (the larger of the sum of container requests, each container \
         limit and the largest init container), which fits no CCI flavour (the largest are 48 \
         vCPU / 384 GiB and 64 vCPU / 512 GiB)"
    );

    let p = sized_pod("enforce", containers, init);
    let enforce = decide_pod(&p, latest());
    let Decision::Mutate { reasons, .. } = &enforce else {
        panic!("{enforce:?}")
    };
    assert!(
        reasons
            .iter()
            .any(|r| r.contains(&flavour_problem) && r.contains("Warning event")),
        "{reasons:?}"
    );
    let spec = patched(&p, &enforce).spec.unwrap();
    let required = spec
        .affinity
        .and_then(|a| a.node_affinity)
        .and_then(|n| n.required_during_scheduling_ignored_during_execution)
        .expect("required node affinity");
    assert!(
        required.node_selector_terms[0]
            .match_expressions
            .iter()
            .flatten()
            .any(|e| e.key == "type" && e.operator == "In"),
        "{required:?}"
    );

    for policy in ["auto", "localPrefer"] {
        let local = decide_pod(&sized_pod(policy, containers, init), latest());
        let Decision::KeepLocal { reason } = &local else {
            panic!("{policy}: {local:?}")
        };
        assert!(reason.contains(&flavour_problem), "{reason}");
    }
}

/// RES-03's exception is narrow: a size beyond every flavour with another problem, a pin that
/// is too small for it, or no resources at all, are still refused under `enforce`.
#[rstest]
#[case::with_a_host_path(
    "[{name: a, resources: {requests: {cpu: 80, memory: 100Gi}}, volumeMounts: [{name: logs, mountPath: /l}]}]",
    Some("{name: logs, hostPath: {path: /var/log}}"),
    None,
    &["2 problems", "fits no CCI flavour", "logs"]
)]
#[case::pinned_too_small(
    "[{name: a, resources: {requests: {cpu: 80, memory: 100Gi}}}]",
    None,
    Some("64_512"),
    &["\"64_512\"", "is smaller than the containers need (cpu 80 and memory 100Gi)"]
)]
#[case::no_resources(NONE, None, None, &["no container has cpu or memory requests or limits"])]
fn an_enforce_pod_with_more_than_a_size_beyond_every_flavour_is_refused(
    #[case] containers: &str,
    #[case] volume: Option<&str>,
    #[case] pin: Option<&str>,
    #[case] needles: &[&str],
) {
    let mut p = sized_pod("enforce", containers, "");
    if let Some(volume) = volume {
        p.spec.as_mut().unwrap().volumes = Some(vec![common::from_yaml(volume).expect("volume")]);
    }
    if let Some(pin) = pin {
        p = with_annotation(p, ANNOTATION_POD_SIZE_SPECS, pin);
    }
    let decision = decide_pod(&p, latest());
    let Decision::Refuse { message } = &decision else {
        panic!("{decision:?}")
    };
    for needle in needles {
        assert!(message.contains(needle), "{message}\n  wanted: {needle}");
    }
}

#[rstest]
#[case::enforce("enforce", "cannot run on CCI")]
#[case::auto("auto", "stays off CCI")]
fn a_pod_without_resources_or_annotation_cannot_burst(#[case] policy: &str, #[case] outcome: &str) {
    let message = decide_pod(&sized_pod(policy, NONE, ""), latest())
        .message()
        .unwrap()
        .to_string();
    assert!(message.contains(outcome), "{message}");
    assert!(
        message.contains("no container has cpu or memory requests or limits"),
        "{message}"
    );
}

#[test]
fn a_bad_quantity_names_the_container_and_field() {
    let p = sized_pod(
        "enforce",
        "[{name: app, resources: {requests: {memory: 1K}}}]",
        "",
    );
    let message = decide_pod(&p, latest()).message().unwrap().to_string();
    assert!(
        message.contains("container \"app\": resources.requests.memory \"1K\" is not a Kubernetes quantity: there is no suffix \"K\"; write k for 1000 or Ki for 1024"),
        "{message}"
    );
}
