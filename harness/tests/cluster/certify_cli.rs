//! `burstcert certify`'s exit codes and verdicts as a user meets them: a typo in `--focus` is a
//! usage error before anything starts, an existing cluster without the add-on is never
//! certified, and a flaky scenario is named flaky, fails the run and is what `--rerun-failed`
//! runs again.

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

/// `report.json` of the report folder `dir`.
fn report_json(dir: &std::path::Path) -> serde_json::Value {
    let path = dir.join("report.json");
    serde_json::from_str(
        &std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())),
    )
    .unwrap()
}

/// The row of scenario `id` in a `report.json`.
fn row<'a>(json: &'a serde_json::Value, id: &str) -> &'a serde_json::Value {
    json["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == id)
        .unwrap_or_else(|| panic!("no row {id} in {json}"))
}

/// The IDs a `report.json` says ran (any outcome but skipped, left out by --focus).
fn ran(json: &serde_json::Value) -> Vec<String> {
    json["rows"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["outcome"] != "skipped")
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect()
}

/// The runner end to end on a scenario that fails on its first run and passes on its second
/// (a test fixture, `burstcert::report::fixture`): `--retries 2` runs it twice, names it flaky
/// in its row, keeps the first run's evidence, and fails the run (never CERTIFIED); then
/// `--rerun-failed` on that report runs exactly the failed ID, not the one that passed.
#[test]
fn a_flaky_scenario_is_named_flaky_never_certified_and_rerun_failed_runs_exactly_it() {
    use burstcert::report::fixture::{ENV, FLAKY, PASSING};
    let dir = tempfile::tempdir().unwrap();
    let first = dir.path().join("first");
    let out = burstcert()
        .env(ENV, "1")
        .args([
            "certify",
            "--jobs",
            "1",
            "--retries",
            "2",
            "--focus",
            FLAKY,
            PASSING,
        ])
        .arg("--report")
        .arg(&first)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "FAILED: {stderr}");
    assert!(
        stderr.contains(&format!("{FLAKY} failed")) && stderr.contains("(running it again)"),
        "{stderr}"
    );
    let quoted = burstcert::report::fixture::QUOTES_THE_CREDENTIAL;
    assert!(
        stderr.contains(&format!("{quoted}(redacted) (running it again)")),
        "the line a CI log keeps is redacted too: {stderr}"
    );
    let json = report_json(&first);
    assert_eq!(json["verdict"], "FAILED");
    assert_eq!(ran(&json), [FLAKY, PASSING]);
    let flaky = row(&json, FLAKY);
    assert_eq!(flaky["outcome"], "failed", "{flaky}");
    assert_eq!(flaky["tries"], serde_json::json!({"failed": 1, "runs": 2}));
    assert!(
        flaky["reason"]
            .as_str()
            .unwrap()
            .starts_with("flaky (failed 1 of 2); the first failure: "),
        "{flaky}"
    );
    assert_eq!(flaky["evidence"], format!("evidence/{FLAKY}"));
    assert_eq!(row(&json, PASSING)["outcome"], "passed");
    assert!(row(&json, PASSING).get("tries").is_none());
    assert!(
        json["summary"]
            .as_str()
            .unwrap()
            .contains(&format!("failed: {FLAKY} (flaky (failed 1 of 2))")),
        "{json}"
    );
    let md = std::fs::read_to_string(first.join("report.md")).unwrap();
    assert!(
        md.contains(&format!("| {FLAKY} |")) && md.contains("| flaky (failed 1 of 2) |"),
        "{md}"
    );
    // The reproduction names what chose the scenarios: without the variable there is no
    // FIXTURE-01 to run. (Variables of this test's own environment that change a run, as a
    // prebuilt engine, come before it.)
    let reproduce =
        std::fs::read_to_string(first.join(format!("evidence/{FLAKY}/reproduce.txt"))).unwrap();
    assert!(
        reproduce.ends_with(&format!(
            "{ENV}=1 burstcert certify --focus {FLAKY} --release 1.5.18\n"
        )),
        "{reproduce}"
    );
    // Its failure quoted the run's CCI credential: every file of the folder has it redacted.
    let failure =
        std::fs::read_to_string(first.join(format!("evidence/{FLAKY}/failure.txt"))).unwrap();
    assert!(
        failure.contains(&format!("{quoted}(redacted)")),
        "{failure}"
    );
    let mut files = vec![first.clone()];
    let mut looked = 0;
    while let Some(path) = files.pop() {
        if path.is_dir() {
            files.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
            continue;
        }
        let text = String::from_utf8_lossy(&std::fs::read(&path).unwrap()).into_owned();
        for (at, _) in text.match_indices(quoted) {
            looked += 1;
            assert!(
                text[at + quoted.len()..].starts_with("(redacted)"),
                "{} holds the credential: {}",
                path.display(),
                text[at..]
                    .chars()
                    .take(quoted.len() + 40)
                    .collect::<String>()
            );
        }
    }
    assert!(
        looked >= 5,
        "the quote is in the report's four formats and the evidence: {looked}"
    );
    let verified = burstcert().arg("verify").arg(&first).output().unwrap();
    assert!(
        verified.status.success(),
        "{}",
        String::from_utf8_lossy(&verified.stdout)
    );

    let second = dir.path().join("second");
    let out = burstcert()
        .env(ENV, "1")
        .args(["certify", "--jobs", "1", "--rerun-failed"])
        .arg(&first)
        .arg("--report")
        .arg(&second)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "running again what failed in {}: {FLAKY}\n",
            first.join("report.json").display()
        )),
        "{stderr}"
    );
    // A new process: the fixture's first run there fails, and no retry was asked for.
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let json = report_json(&second);
    assert_eq!(ran(&json), [FLAKY], "exactly what failed ran again");
    assert_eq!(json["release"], "1.5.18");
    assert_eq!(
        row(&json, PASSING)["reason"],
        "not selected by --focus",
        "what passed is left out"
    );
    assert!(
        stderr.contains(&format!("[1/1] {FLAKY} ")),
        "one scenario ran: {stderr}"
    );
}
