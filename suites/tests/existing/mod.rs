//! `certify --cluster existing` end to end, with nothing but what a user of a cluster has: a
//! second `burstcert` is pointed at an environment of this binary (held alone, as a cluster-wide
//! scenario holds one: an extra cluster, beside the confined scenarios on the shared one) with
//! only its kubeconfig, the CCI endpoint and the tenant's token (in `CCI_TOKEN`). It must run
//! what such a cluster offers, say what the rest needs, judge what is installed, and never show
//! the credential. It runs in this binary, not one of its own, so its ~1.5 minutes overlap the
//! other scenarios.

use std::path::Path;
use std::process::{Command, Output};

use burst_rules::release::Release;
use burstcert::addon::lifecycle;
use burstcert::env::Env;
use burstcert::progress::Progress;
use libtest_mimic::Failed;

/// The trial's name (a family of its own: `-- existing::` runs it alone).
pub const NAME: &str = "existing::certify_on_an_existing_cluster_runs_what_a_user_can_check_and_judges_what_is_installed";

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

/// Runs `burstcert certify --cluster existing` with `args`, the token in the environment and
/// its waits scaled by `patience` (see `burstcert::wait::patience`), while watching `ps` for
/// the token; returns its output and what `ps` showed.
fn certify_existing(
    cli: &Path,
    env: &Env,
    report: &Path,
    args: &[&str],
    patience: f64,
) -> Result<(Output, Vec<String>), Failed> {
    let token = env.cci.token().to_owned();
    // On top of the patience this run was given.
    let scaled =
        patience * burstcert::wait::patience(std::time::Duration::from_secs(1)).as_secs_f64();
    let mut command = Command::new(cli);
    command
        .args(["certify", "--cluster", "existing", "--kubeconfig"])
        .arg(env.kubeconfig())
        .args(["--cci-endpoint", env.cci.url(), "--report"])
        .arg(report)
        .args(args);
    // The mock serves HTTPS with a CA of its own, as a private endpoint would.
    if let Some(ca) = env.cci.ca_pem() {
        let file = report.join("cci-ca.pem");
        std::fs::create_dir_all(report)
            .and_then(|()| std::fs::write(&file, ca))
            .map_err(|e| format!("write {}: {e}", file.display()))?;
        command.arg("--cci-ca-file").arg(file);
    }
    let child = command
        .env("CCI_TOKEN", &token)
        .env(burstcert::wait::PATIENCE_ENV, scaled.to_string())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| format!("run {}: {e}", cli.display()))?;
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
    let out = child
        .wait_with_output()
        .map_err(|e| format!("wait for certify: {e}"))?;
    let _ = ended.send(());
    let seen = watcher.join().map_err(|_| "the ps sampler panicked")?;
    eprintln!(
        "certify (pid {pid}) said:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok((out, seen))
}

fn report_json(dir: &Path) -> Result<serde_json::Value, Failed> {
    let text = std::fs::read_to_string(dir.join("report.json"))
        .map_err(|e| format!("read {}/report.json: {e}", dir.display()))?;
    Ok(serde_json::from_str(&text).map_err(|e| format!("report.json: {e}"))?)
}

fn ensure(ok: bool, what: impl FnOnce() -> String) -> Result<(), Failed> {
    if ok { Ok(()) } else { Err(what().into()) }
}

fn no_secret(secret: &str, out: &Output, report: &Path, ps: &[String]) -> Result<(), Failed> {
    ensure(
        !String::from_utf8_lossy(&out.stdout).contains(secret),
        || "stdout shows the token".into(),
    )?;
    ensure(
        !String::from_utf8_lossy(&out.stderr).contains(secret),
        || "stderr shows the token".into(),
    )?;
    for file in ["report.md", "junit.xml", "report.json"] {
        let text =
            std::fs::read_to_string(report.join(file)).map_err(|e| format!("read {file}: {e}"))?;
        ensure(!text.contains(secret), || format!("{file} shows the token"))?;
    }
    ensure(ps.is_empty(), || format!("ps showed the token: {ps:?}"))
}

/// The trial: holds an environment alone, checks, and always puts its add-on back.
pub fn trial() -> Result<(), Failed> {
    suites::block_on(async {
        // Held first: the trial is among the longest (~1.5 min), and the cluster-wide
        // scenarios queue for the same clusters while the CLI builds.
        let (env, _alone) = burstcert::catalogue::hold_alone()
            .await
            .map_err(|e| format!("an environment for the trial: {e}"))?;
        let cli =
            tokio::task::spawn_blocking(|| burstcert::binaries::resolve_cli(&Progress::stderr()))
                .await
                .map_err(|e| format!("build burstcert: {e}"))?
                .map_err(|e| format!("{e}"))?;
        let checked = check(&cli, env).await;
        // Whatever happened, the scenarios after this one meet the add-on as installed.
        let restored = env.restore_addon().await;
        checked?;
        restored.map_err(|e| format!("put the add-on back: {e}").into())
    })?
}

/// [`certify_existing`] off the runtime's threads, into a report folder of its own.
async fn certify(
    cli: &Path,
    env: &'static Env,
    args: &'static [&'static str],
    patience: f64,
) -> Result<(Output, Vec<String>, tempfile::TempDir), Failed> {
    let cli = cli.to_owned();
    tokio::task::spawn_blocking(move || {
        let report = tempfile::tempdir().map_err(|e| format!("a report folder: {e}"))?;
        let (out, ps) = certify_existing(&cli, env, report.path(), args, patience)?;
        Ok((out, ps, report))
    })
    .await
    .map_err(|e| format!("certify: {e}"))?
}

async fn check(cli: &Path, env: &'static Env) -> Result<(), Failed> {
    let token = env.cci.token().to_owned();
    // At the installed release: what the cluster and CCI's public API show runs and passes;
    // the rest is not run, each with its need; never certified.
    let (out, ps, report) = certify(cli, env, &[], 1.0).await?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    ensure(out.status.code() == Some(3), || {
        format!("INCOMPLETE expected: {stderr}")
    })?;
    let json = report_json(report.path())?;
    ensure(json["verdict"] == "INCOMPLETE", || {
        format!("{}", json["verdict"])
    })?;
    ensure(json["release"] == "1.5.18", || {
        format!(
            "the installed release, read from the cluster: {}",
            json["release"]
        )
    })?;
    let rows = json["rows"].as_array().ok_or("report.json has no rows")?;
    let with = |outcome: &str| rows.iter().filter(|r| r["outcome"] == outcome).count();
    let failed: Vec<String> = rows
        .iter()
        .filter(|r| r["outcome"] == "failed" || r["outcome"] == "not_implemented")
        .map(|r| format!("{}: {}", r["id"], r["reason"]))
        .collect();
    ensure(failed.is_empty(), || {
        format!("failed on the existing cluster: {failed:#?}")
    })?;
    ensure(with("passed") >= 25, || {
        format!("only {} passed", with("passed"))
    })?;
    ensure(with("passed") + with("not_run") == rows.len(), || {
        format!("{rows:#?}")
    })?;
    for row in rows.iter().filter(|r| r["outcome"] == "not_run") {
        ensure(
            row["reason"]
                .as_str()
                .unwrap_or_default()
                .starts_with("needs "),
            || format!("a not-run row names its need: {row}"),
        )?;
    }
    no_secret(&token, &out, report.path(), &ps)?;

    // The add-on at 1.5.8 while certify is told 1.5.18: the /etc/localtime gate (>= 1.5.9)
    // fails, so the mode judges what is installed, not what it is told.
    let client = env.client().await.map_err(|e| e.to_string())?;
    let mut older = env.addon_defaults().clone();
    older.release = Release::new(1, 5, 8);
    lifecycle::upgrade(&client, &older, env.addon_target(), &Progress::quiet())
        .await
        .map_err(|e| format!("upgrade to 1.5.8: {e}"))?;
    // Half the patience: HP-05 is meant to fail here, and it does so by waiting out its whole
    // patience for a pod the 1.5.8 engine refuses (60 s); VOL-01 passes in ~2 s of its 30.
    let (out, ps, report) = certify(
        cli,
        env,
        &["--release", "1.5.18", "--focus", "HP-05", "VOL-01"],
        0.5,
    )
    .await?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    ensure(out.status.code() == Some(1), || {
        format!("FAILED expected: {stderr}")
    })?;
    ensure(
        stderr.contains("the cluster runs the add-on 1.5.8, certifying it as 1.5.18"),
        || stderr.to_string(),
    )?;
    let json = report_json(report.path())?;
    ensure(json["verdict"] == "FAILED", || {
        format!("{}", json["verdict"])
    })?;
    let outcome = |id: &str| {
        json["rows"]
            .as_array()
            .and_then(|rows| rows.iter().find(|r| r["id"] == id))
            .and_then(|r| r["outcome"].as_str())
            .unwrap_or("(no row)")
            .to_owned()
    };
    ensure(outcome("HP-05") == "failed", || {
        format!("HP-05 {}", outcome("HP-05"))
    })?;
    ensure(outcome("VOL-01") == "passed", || {
        format!(
            "ungated behaviour is the same at 1.5.8: VOL-01 {}",
            outcome("VOL-01")
        )
    })?;
    no_secret(&token, &out, report.path(), &ps)
}
