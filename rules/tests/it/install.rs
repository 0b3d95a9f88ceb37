//! BEHAVIOR.md §2's Volcano and ELB lines: INST-04 (LoadBalancer Services) and INST-05
//! (Volcano <= 1.17.10 with cloud storage).

use crate::common;

use burst_rules::decide::{AdmissionInput, ClusterFacts, Decision, check_service, decide};
use burst_rules::release::Release;
use common::*;
use k8s_openapi::api::core::v1::Service;
use rstest::rstest;

fn service(type_: &str) -> Service {
    serde_json::from_value(serde_json::json!({
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"type": type_, "selector": {"app": "web"}, "ports": [{"port": 80}]}
    }))
    .unwrap()
}

#[rstest]
#[case::lb_before_the_gate("LoadBalancer", "1.5.4", true, false)]
#[case::lb_at_the_gate("LoadBalancer", "1.5.5", true, true)]
#[case::lb_later("LoadBalancer", "1.5.18", true, true)]
#[case::lb_for_cluster_pods_only("LoadBalancer", "1.5.4", false, true)]
#[case::cluster_ip_before("ClusterIP", "1.5.4", true, true)]
#[case::node_port_before("NodePort", "1.5.4", true, true)]
fn load_balancer_services_for_burst_pods_need_1_5_5(
    #[case] type_: &str,
    #[case] r: &str,
    #[case] selects_burst_pods: bool,
    #[case] allowed: bool,
) {
    let decision = check_service(&service(type_), release(r), selects_burst_pods);
    if allowed {
        assert_eq!(decision, Decision::Allow);
    } else {
        assert_eq!(
            decision,
            Decision::Refuse {
                message: "service default/web: spec.type LoadBalancer (a dedicated ELB) for pods \
                          that burst to CCI requires add-on release >= 1.5.5; this is 1.5.4; \
                          upgrade the add-on, or use type ClusterIP or NodePort for these pods"
                    .into()
            }
        );
    }
}

#[test]
fn a_service_without_a_spec_is_allowed() {
    let s = Service::default();
    assert_eq!(
        check_service(&s, Release::new(1, 0, 0), true),
        Decision::Allow
    );
}

fn pod_with_claim(policy: &str, scheduler: &str, volume: &str) -> k8s_openapi::api::core::v1::Pod {
    let scheduler = if scheduler.is_empty() {
        String::new()
    } else {
        format!("\n  schedulerName: {scheduler}")
    };
    pod(&format!(
        r#"
metadata:
  name: web
  namespace: default
  labels: {{virtual-kubelet.io/burst-to-cci: {policy}}}
spec:{scheduler}
  containers:
    - {{name: app, image: nginx, resources: {{requests: {{cpu: 250m, memory: 512Mi}}}}}}
  volumes:
    - {volume}
"#
    ))
}

const SFS: &str = "{name: data, persistentVolumeClaim: {claimName: sfs-claim}}";
const CONFIG: &str = "{name: data, configMap: {name: conf}}";

#[rstest]
#[case::old_volcano_with_sfs("volcano", None, Some("1.17.10"), SFS, false)]
#[case::older_volcano_with_sfs("volcano", None, Some("v1.9.0"), SFS, false)]
#[case::new_volcano_with_sfs("volcano", None, Some("1.17.11"), SFS, true)]
#[case::old_volcano_without_cloud_storage("volcano", None, Some("1.17.10"), CONFIG, true)]
#[case::default_scheduler_with_sfs("", None, Some("1.17.10"), SFS, true)]
#[case::volcano_as_the_clusters_default("", Some("volcano"), Some("1.17.10"), SFS, false)]
#[case::explicit_default_scheduler_on_a_volcano_cluster(
    "default-scheduler",
    Some("volcano"),
    Some("1.17.10"),
    SFS,
    false
)]
#[case::volcano_of_unknown_version("volcano", None, None, SFS, true)]
fn old_volcano_keeps_pods_with_cloud_storage_off_cci(
    #[case] scheduler: &str,
    #[case] default_scheduler: Option<&str>,
    #[case] volcano: Option<&str>,
    #[case] volume: &str,
    #[case] bursts: bool,
    #[values("enforce", "auto")] policy: &str,
) {
    let facts = ClusterFacts {
        volcano_version: volcano.map(release),
        default_scheduler: default_scheduler.map(str::to_string),
        ..cluster()
    };
    let input = AdmissionInput::new(pod_with_claim(policy, scheduler, volume), latest())
        .with_cluster(facts);
    let decision = decide(&input);
    if bursts {
        assert!(matches!(decision, Decision::Mutate { .. }), "{decision:?}");
    } else {
        let Decision::KeepLocal { reason } = &decision else {
            panic!("{decision:?}")
        };
        assert!(
            reason.contains(&format!(
                "stays off CCI (virtual-kubelet.io/burst-to-cci={policy} on Pod default/web): it \
                 is scheduled by Volcano {}, and Volcano <= 1.17.10 cannot place pods with \
                 cloud-storage volumes on CCI (volumes [\"data\"])",
                release(volcano.unwrap())
            )),
            "{reason}"
        );
    }
}

#[test]
fn an_unsupported_claim_is_refused_before_volcano_is_considered() {
    let facts = ClusterFacts {
        volcano_version: Some(release("1.17.10")),
        ..cluster()
    };
    let p = pod_with_claim(
        "enforce",
        "volcano",
        "{name: data, persistentVolumeClaim: {claimName: disk-claim}}",
    );
    let decision = decide(&AdmissionInput::new(p, latest()).with_cluster(facts));
    assert!(matches!(decision, Decision::Refuse { .. }), "{decision:?}");
}
