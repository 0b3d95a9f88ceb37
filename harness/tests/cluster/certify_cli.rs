//! `burstcert certify`'s exit codes and verdicts as a user meets them: a typo in `--focus` is a
//! usage error before anything starts, and an existing cluster without the add-on is never
//! certified.

use std::process::Command;

use burstcert::cluster::ClusterProvider as _;
use burstcert::progress::Progress;

fn burstcert() -> Command {
    Command::new(env!("CARGO_BIN_EXE_burstcert"))
}

#[test]
fn a_focus_that_names_no_scenario_is_a_usage_error_and_starts_nothing() {
    let report = tempfile::tempdir().unwrap();
    let out = burstcert()
        .args(["certify", "--focus", "NOPE", "--report"])
        .arg(report.path().join("r"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("--focus NOPE names no scenario"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("cluster"),
        "nothing was brought up: {stderr}"
    );
    assert!(
        !report.path().join("r").exists(),
        "no report for a usage error"
    );
}

#[test]
fn a_release_that_is_not_three_numbers_is_a_usage_error() {
    let out = burstcert()
        .args(["certify", "--release", "1.5"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("not a release like 1.5.18"), "{stderr}");
}

#[test]
fn an_unsupported_kubernetes_minor_is_a_usage_error_that_names_the_supported_ones() {
    let out = burstcert()
        .args(["certify", "--kubernetes", "1.30,1.29"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("Kubernetes 1.29 is not supported"),
        "{stderr}"
    );
    let oldest = burstcert::tools::Minor::oldest();
    assert!(stderr.contains(&oldest.release()), "{stderr}");
}

#[test]
fn kubernetes_is_not_chosen_for_an_existing_cluster() {
    let out = burstcert()
        .args([
            "certify",
            "--cluster",
            "existing",
            "--kubeconfig",
            "/nonexistent/kubeconfig",
            "--kubernetes",
            "1.30",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("an existing cluster runs the version it serves"),
        "{stderr}"
    );
}

#[test]
fn a_matrix_runs_one_child_per_version_and_exits_with_the_worst() {
    // Each child meets the same usage error before it starts anything: the matrix still writes
    // its summary, a row per version, and exits with the children's code.
    let report = tempfile::tempdir().unwrap();
    let dir = report.path().join("r");
    let out = burstcert()
        .args([
            "certify",
            "--kubernetes",
            "oldest,pinned",
            "--focus",
            "NOPE",
        ])
        .arg("--report")
        .arg(&dir)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert_eq!(
        stderr.matches("--focus NOPE names no scenario").count(),
        2,
        "{stderr}"
    );
    let summary = std::fs::read_to_string(dir.join("summary.md")).unwrap();
    for minor in [
        burstcert::tools::Minor::oldest(),
        burstcert::tools::Minor::PINNED,
    ] {
        assert!(
            summary.contains(&format!("| {} | — | ERROR |", minor.release())),
            "{summary}"
        );
    }
    assert!(summary.contains("Exit code 2"), "{summary}");
    assert!(!stderr.contains("start control plane"), "{stderr}");
}

#[test]
fn an_existing_cluster_without_the_addon_is_not_certified_and_says_why() {
    let cluster = crate::throwaway_cluster(&Progress::stderr()).unwrap();
    let report = tempfile::tempdir().unwrap();
    // A relative kubeconfig path, as a user types it: taken from the current directory.
    let kubeconfig = cluster.kubeconfig().to_owned();
    let out = burstcert()
        .current_dir(kubeconfig.parent().unwrap())
        .args(["certify", "--cluster", "existing", "--kubeconfig"])
        .arg(kubeconfig.file_name().unwrap())
        .arg("--report")
        .arg(report.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "INCOMPLETE: {stderr}");
    assert!(stderr.contains("INCOMPLETE release 1.5.18"), "{stderr}");
    assert!(!stderr.contains("CERTIFIED"), "{stderr}");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(report.path().join("report.json")).unwrap())
            .unwrap();
    assert_eq!(json["verdict"], "INCOMPLETE");
    let rows = json["rows"].as_array().unwrap();
    assert!(!rows.is_empty());
    for row in rows {
        assert_eq!(row["outcome"], "not_run", "{row}");
        let reason = row["reason"].as_str().unwrap();
        assert!(reason.contains("no virtual node: bursting-node"), "{row}");
    }
    let junit = std::fs::read_to_string(report.path().join("junit.xml")).unwrap();
    assert!(
        junit.contains(r#"<property name="verdict" value="INCOMPLETE"/>"#),
        "{junit}"
    );
    assert_eq!(
        junit.matches("<skipped message=\"not run: ").count(),
        rows.len(),
        "every not-run scenario is a skipped testcase with its reason"
    );
}
