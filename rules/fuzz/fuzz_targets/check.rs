//! The properties every decision must have, shared by the `decide` targets.

use burst_rules::decide::{AdmissionInput, ClusterFacts, Decision, decide};
use k8s_openapi::api::core::v1::Pod;

/// Storage facts with an SFS and an EVS class and a claim of each.
pub fn cluster() -> ClusterFacts {
    ClusterFacts {
        storage_classes: [
            ("sfs", "nas.csi.everest.io"),
            ("evs", "disk.csi.everest.io"),
        ]
        .into_iter()
        .map(|(a, b)| (a.into(), b.into()))
        .collect(),
        pvc_classes: [
            ("sfs-claim", Some("sfs")),
            ("evs-claim", Some("evs")),
            ("bare", None),
        ]
        .into_iter()
        .map(|(a, b)| (a.into(), b.map(Into::into)))
        .collect(),
        ..ClusterFacts::default()
    }
}

/// A patch applies (by an independent RFC 6902 implementation) to the pod as serialized, the
/// result is still a pod, and deciding again on it changes nothing more. Messages are never
/// empty.
pub fn decision_holds(input: &AdmissionInput, decision: &Decision) {
    match decision {
        Decision::Allow => {}
        Decision::KeepLocal { reason: m } | Decision::Refuse { message: m } => {
            assert!(!m.is_empty());
        }
        Decision::Mutate { patch, reasons } => {
            assert!(!reasons.is_empty());
            let ops = patch.as_array().expect("a patch is an array");
            assert!(!ops.is_empty());
            let patch: json_patch::Patch =
                serde_json::from_value(patch.clone()).expect("a valid RFC 6902 patch");
            let mut doc = serde_json::to_value(&input.pod).unwrap();
            json_patch::patch(&mut doc, &patch)
                .unwrap_or_else(|e| panic!("patch does not apply: {e}\n{patch:?}\n{doc:#}"));
            let after: Pod = serde_json::from_value(doc).expect("still a pod");
            let again = AdmissionInput {
                pod: after,
                ..input.clone()
            };
            assert_eq!(decide(&again), Decision::Allow, "not idempotent");
        }
    }
}
