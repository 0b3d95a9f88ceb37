//! `certify --cluster existing` end to end, with nothing but what a user of a cluster has: the
//! local environment is brought up as usual, then a second `burstcert` is pointed at it with
//! only its kubeconfig, the CCI endpoint and the tenant's token (in `CCI_TOKEN`). It must run
//! what such a cluster offers, say what the rest needs, judge what is installed, and never show
//! the credential.

use std::path::Path;
use std::process::{Command, Output};

use burst_rules::release::Release;
use burstcert::addon::lifecycle;
use burstcert::env::Env;
use burstcert::progress::Progress;

/// Command lines of every process that holds `secret` in its arguments.
fn processes_showing(secret: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if cmdline.contains(secret) {
            found.push(cmdline);
        }
    }
    found
}

/// Runs `burstcert certify --cluster existing` with `args`, the token in the environment,
/// while watching `ps` for the token; returns its output and what `ps` showed.
fn certify_existing(env: &Env, report: &Path, args: &[&str]) -> (Output, Vec<String>) {
    let token = env.cci.token().to_owned();
    let child = Command::new(env!("CARGO_BIN_EXE_burstcert"))
        .args(["certify", "--cluster", "existing", "--kubeconfig"])
        .arg(env.kubeconfig())
        .args(["--cci-endpoint", env.cci.url(), "--report"])
        .arg(report)
        .args(args)
        .env("CCI_TOKEN", &token)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Sample `ps` until certify ends: the sampler waits on the "ended" message, looking again
    // each time 200 ms pass without it.
    let (ended, until_ended) = std::sync::mpsc::channel::<()>();
    let watcher = std::thread::spawn(move || {
        let mut seen = Vec::new();
        loop {
            seen.extend(processes_showing(&token));
            match until_ended.recv_timeout(std::time::Duration::from_millis(200)) {
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => continue,
                _ => return seen,
            }
        }
    });
    let pid = child.id();
    let out = child.wait_with_output().unwrap();
    let _ = ended.send(());
    let seen = watcher.join().unwrap();
    eprintln!(
        "certify (pid {pid}) said:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (out, seen)
}

fn report_json(dir: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("report.json")).unwrap()).unwrap()
}

fn assert_no_secret(secret: &str, out: &Output, report: &Path, ps: &[String]) {
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains(secret),
        "stdout shows the token"
    );
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains(secret),
        "stderr shows the token"
    );
    for file in ["report.md", "junit.xml", "report.json"] {
        let text = std::fs::read_to_string(report.join(file)).unwrap();
        assert!(!text.contains(secret), "{file} shows the token");
    }
    assert!(ps.is_empty(), "ps showed the token: {ps:?}");
}

#[test]
fn certify_on_an_existing_cluster_runs_what_a_user_can_check_and_judges_what_is_installed() {
    let env = Env::start().unwrap();
    let token = env.cci.token().to_owned();

    // At the installed release: what the cluster and CCI's public API show runs and passes;
    // the rest is not run, each with its need; never certified.
    let report = tempfile::tempdir().unwrap();
    let (out, ps) = certify_existing(&env, report.path(), &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "INCOMPLETE expected: {stderr}");
    let json = report_json(report.path());
    assert_eq!(json["verdict"], "INCOMPLETE");
    assert_eq!(
        json["release"], "1.5.18",
        "the installed release, read from the cluster"
    );
    let rows = json["rows"].as_array().unwrap();
    let with = |outcome: &str| rows.iter().filter(|r| r["outcome"] == outcome).count();
    let failed: Vec<String> = rows
        .iter()
        .filter(|r| r["outcome"] == "failed" || r["outcome"] == "not_implemented")
        .map(|r| format!("{}: {}", r["id"], r["reason"]))
        .collect();
    assert!(
        failed.is_empty(),
        "failed on the existing cluster: {failed:#?}"
    );
    assert!(with("passed") >= 25, "only {} passed", with("passed"));
    assert_eq!(with("passed") + with("not_run"), rows.len(), "{rows:#?}");
    for row in rows.iter().filter(|r| r["outcome"] == "not_run") {
        assert!(
            row["reason"].as_str().unwrap().starts_with("needs "),
            "a not-run row names its need: {row}"
        );
    }
    assert_no_secret(&token, &out, report.path(), &ps);

    // The add-on at 1.5.8 while certify is told 1.5.18: the /etc/localtime gate (>= 1.5.9)
    // fails, so the mode judges what is installed, not what it is told.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let client = env.client().await.unwrap();
        let mut older = env.addon_defaults().clone();
        older.release = Release::new(1, 5, 8);
        lifecycle::upgrade(&client, &older, env.addon_target(), &Progress::quiet())
            .await
            .unwrap();
    });
    let report = tempfile::tempdir().unwrap();
    let (out, ps) = certify_existing(
        &env,
        report.path(),
        &["--release", "1.5.18", "--focus", "HP-05", "VOL-01"],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "FAILED expected: {stderr}");
    assert!(
        stderr.contains("the cluster runs the add-on 1.5.8, certifying it as 1.5.18"),
        "{stderr}"
    );
    let json = report_json(report.path());
    assert_eq!(json["verdict"], "FAILED");
    let outcome = |id: &str| {
        json["rows"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["id"] == id)
            .map(|r| r["outcome"].as_str().unwrap().to_owned())
            .unwrap()
    };
    assert_eq!(outcome("HP-05"), "failed");
    assert_eq!(
        outcome("VOL-01"),
        "passed",
        "ungated behaviour is the same at 1.5.8"
    );
    assert_no_secret(&token, &out, report.path(), &ps);
    env.destroy().unwrap();
}
