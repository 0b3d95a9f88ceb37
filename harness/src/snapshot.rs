//! Shared insta settings: the redactions every snapshot uses, so snapshots stay stable.

/// Settings with the shared redactions (uids, resourceVersions, timestamps, IPs, generated
/// name suffixes, ports). Bind them around an assertion:
/// `burstcert::snapshot::settings().bind(|| insta::assert_json_snapshot!(pod))`.
pub fn settings() -> insta::Settings {
    let mut s = insta::Settings::clone_current();
    s.set_sort_maps(true);
    s.set_prepend_module_to_snapshot(false);
    for (selector, replacement) in [
        (".**.uid", "[uid]"),
        (".**.resourceVersion", "[resourceVersion]"),
        (".**.creationTimestamp", "[time]"),
        (".**.startTime", "[time]"),
        (".**.startedAt", "[time]"),
        (".**.lastTransitionTime", "[time]"),
        (".**.lastProbeTime", "[time]"),
        (".**.podIP", "[ip]"),
        (".**.podIPs", "[ips]"),
        (".**.hostIP", "[ip]"),
        (".**.hostIPs", "[ips]"),
        (".**.containerID", "[containerID]"),
        (
            r#".metadata.labels["bursting.cci.io/cluster-pod-uid"]"#,
            "[uid]",
        ),
        // Cluster labels CCI pods carry over, generated per workload revision or Job.
        // Release-dependent: each scenario that cares asserts them against its release.
        (
            r#".metadata.annotations["bursting.cci.io/release"]"#,
            "[release]",
        ),
        (
            r#".metadata.annotations["bursting.cci.io/sidecar-protocol"]"#,
            "[sidecar-protocol]",
        ),
        (r#".metadata.labels["pod-template-hash"]"#, "[hash]"),
        (r#".metadata.labels["controller-revision-hash"]"#, "[hash]"),
        (r#".metadata.labels["controller-uid"]"#, "[uid]"),
        (
            r#".metadata.labels["batch.kubernetes.io/controller-uid"]"#,
            "[uid]",
        ),
    ] {
        s.add_redaction(selector, replacement);
    }
    // Names that carry a generated suffix: `deploy-7d9f8c6b5-x2x4z` → `deploy-[hash]-[suffix]`.
    s.add_filter(r"-[a-z0-9]{8,10}-[a-z0-9]{5}\b", "-[hash]-[suffix]");
    // Scenario namespaces and cluster ids are random per run.
    s.add_filter(r"\b[a-z]+-\d+-[a-z0-9]{6}\b", "[scenario-ns]");
    s.add_filter(r"\bbursting-[a-z0-9-]+\b", "bursting-[cluster-id]");
    s
}
