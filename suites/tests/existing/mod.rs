//! `certify --cluster existing` end to end, with nothing but what a user of a cluster has: a
//! second `burstcert` is pointed at an environment of this binary (held alone, as a cluster-wide
//! scenario holds one: an extra cluster, beside the confined scenarios on the shared one) with
//! only its kubeconfig, the CCI endpoint (the environment's HTTPS mock, which this process
//! started and the second one only reaches) and the tenant's credential: the AK/SK pair the
//! mock accepts for the tenant (`CCI_ACCESS_KEY` and `CCI_SECRET_KEY`), then the token (in a
//! file). It must run what such a cluster offers, say what the rest needs, judge what is
//! installed, and never show either credential. Before that, the CCE add-on's objects
//! (`fixtures/cce/`) are put into the cluster, each shape in a namespace of its own, and
//! discovery must find them there. It runs in this binary, not one of its own, so its
//! ~2 minutes overlap the other scenarios.

use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;

use burst_rules::release::Release;
use burstcert::addon::lifecycle;
use burstcert::env::Env;
use burstcert::progress::Progress;
use libtest_mimic::Failed;

/// The trial's name (a family of its own: `-- existing::` runs it alone).
pub const NAME: &str = "existing::certify_on_an_existing_cluster_runs_what_a_user_can_check_and_judges_what_is_installed";

/// Command lines of every process that holds one of `secrets` in its arguments.
fn processes_showing(secrets: &[String]) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if secrets
            .iter()
            .any(|secret| cmdline.contains(secret.as_str()))
        {
            found.push(cmdline);
        }
    }
    found
}

/// How the second `burstcert` is given the tenant's credential.
#[derive(Clone, Copy, Debug)]
enum Given {
    /// The AK/SK pair the mock accepts for the tenant, in `CCI_ACCESS_KEY` and `CCI_SECRET_KEY`.
    AkSkInEnvironment,
    /// The token, in a file of the report folder (`--cci-token-file`).
    TokenFile,
}

/// The tenant's token and the pair the mock accepts for it (`AK`, `SK`).
fn tenant(env: &Env) -> Result<(String, String, String), Failed> {
    let token = env
        .cci
        .token()
        .ok_or("the environment speaks to its mock with a token")?
        .to_owned();
    let pair = burstcert::env::aksk_pair(&token);
    let (access_key, secret_key) = pair.split_once(':').ok_or("an AK:SK pair")?;
    Ok((token.clone(), access_key.to_owned(), secret_key.to_owned()))
}

/// Runs `burstcert certify --cluster existing` with `args`, the credential `given` and its
/// waits scaled by `patience` (see `burstcert::wait::patience`), its report into `report` and
/// the files it is given (CA, token) in `inputs`, while watching `ps` for the token and the
/// secret key; returns its output and what `ps` showed.
fn certify_existing(
    cli: &Path,
    env: &Env,
    report: &Path,
    inputs: &Path,
    args: &[&str],
    given: Given,
    patience: f64,
) -> Result<(Output, Vec<String>), Failed> {
    let (token, access_key, secret_key) = tenant(env)?;
    let secrets = vec![token.clone(), secret_key.clone()];
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
        let file = inputs.join("cci-ca.pem");
        std::fs::create_dir_all(inputs)
            .and_then(|()| std::fs::write(&file, ca))
            .map_err(|e| format!("write {}: {e}", file.display()))?;
        command.arg("--cci-ca-file").arg(file);
    }
    // Only the credential given: none this process may have in its own environment.
    for name in ["CCI_TOKEN", "CCI_ACCESS_KEY", "CCI_SECRET_KEY"] {
        command.env_remove(name);
    }
    match given {
        Given::AkSkInEnvironment => {
            command
                .env("CCI_ACCESS_KEY", &access_key)
                .env("CCI_SECRET_KEY", &secret_key);
        }
        Given::TokenFile => {
            let file = inputs.join("cci-token");
            std::fs::create_dir_all(inputs)
                .and_then(|()| std::fs::write(&file, &token))
                .map_err(|e| format!("write {}: {e}", file.display()))?;
            command.arg("--cci-token-file").arg(file);
        }
    }
    let child = command
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
            seen.extend(processes_showing(&secrets));
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

/// Neither secret in certify's output, in any file it wrote in its report folder or its logs
/// folder (`logs_since`: files changed since it started), or in any process's command line.
fn no_secret(
    secrets: &[String],
    out: &Output,
    report: &Path,
    ps: &[String],
    logs_since: std::time::SystemTime,
) -> Result<(), Failed> {
    let mut texts = vec![
        (
            "stdout".to_owned(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        ),
        (
            "stderr".to_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        ),
    ];
    let mut reports = 0;
    for file in files_under(report) {
        let name = file.file_name().unwrap_or_default().to_string_lossy();
        reports += usize::from(["report.md", "junit.xml", "report.json"].contains(&&*name));
        let text = std::fs::read(&file).map_err(|e| format!("read {}: {e}", file.display()))?;
        texts.push((
            file.display().to_string(),
            String::from_utf8_lossy(&text).into_owned(),
        ));
    }
    ensure(reports == 3, || {
        format!("{reports} of the 3 report files in {}", report.display())
    })?;
    for file in files_under(&std::env::temp_dir().join("burstcert").join("existing")) {
        let changed = std::fs::metadata(&file).and_then(|m| m.modified());
        if changed.is_ok_and(|t| t >= logs_since) {
            let text = std::fs::read(&file).unwrap_or_default();
            texts.push((
                file.display().to_string(),
                String::from_utf8_lossy(&text).into_owned(),
            ));
        }
    }
    for (what, text) in &texts {
        for (i, secret) in secrets.iter().enumerate() {
            let name = ["the token", "the secret key"]
                .get(i)
                .unwrap_or(&"a secret");
            ensure(!text.contains(secret.as_str()), || {
                format!("{what} shows {name}")
            })?;
        }
    }
    ensure(ps.is_empty(), || {
        format!("a command line showed a secret: {ps:?}")
    })
}

/// Every file under `dir`, at any depth (none when it does not exist).
fn files_under(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    let mut folders = vec![dir.to_owned()];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(&folder).into_iter().flatten().flatten() {
            match entry.file_type() {
                Ok(t) if t.is_dir() => folders.push(entry.path()),
                Ok(t) if t.is_file() => files.push(entry.path()),
                _ => {}
            }
        }
    }
    files
}

/// The trial: holds an environment alone, checks, and always puts its add-on back.
pub fn trial(run: std::sync::Arc<burstcert::env::Run>) -> Result<(), Failed> {
    suites::block_on(async {
        // Held first: the trial is among the longest (~2 min), and the cluster-wide
        // scenarios queue for the same clusters while the CLI builds.
        let (env, _alone) = burstcert::catalogue::hold_alone(&run)
            .await
            .map_err(|e| format!("an environment for the trial: {e}"))?;
        let cli =
            tokio::task::spawn_blocking(|| burstcert::binaries::resolve_cli(&Progress::stderr()))
                .await
                .map_err(|e| format!("build burstcert: {e}"))?
                .map_err(|e| format!("{e}"))?;
        let checked = match discovery(&env).await {
            Ok(()) => check(&cli, &env).await,
            Err(e) => Err(e),
        };
        // Whatever happened, the scenarios after this one meet the add-on as installed.
        let restored = env.restore_addon().await;
        checked?;
        restored.map_err(|e| format!("put the add-on back: {e}").into())
    })?
}

/// The CCE add-on's shapes (`fixtures/cce/`) put into the held cluster, each in a namespace of
/// its own standing for the add-on's (`--addon-namespace`): its Deployments (scaled to zero:
/// only their names, images and flags are read) and its virtual node, when the cluster has no
/// node of that name (the CCI 2.0 shape's `bursting-node` is the environment's own). A pod's
/// status cannot be created, so the kubelet's pod is left to the unit tests. Discovery must
/// find the add-on in each: its release, its cluster id, its node.
async fn discovery(env: &Env) -> Result<(), Failed> {
    use k8s_openapi::api::apps::v1::Deployment;
    use k8s_openapi::api::core::v1::{Namespace, Node};
    use kube::api::{Api, DeleteParams, PostParams};

    let client = env.client().await.map_err(|e| e.to_string())?;
    let nodes: Api<Node> = Api::all(client.clone());
    let namespaces: Api<Namespace> = Api::all(client.clone());
    for (file, release, cluster_id, node) in [
        (
            "cce/cci1-addon.yaml",
            "1.3.24",
            "0a1f6c2e-9a61-11ec-8f1e-0255ac10002a",
            "virtual-kubelet",
        ),
        (
            "cce/cci2-addon.yaml",
            "1.5.21",
            "5f2b0c7e-cce0-11ee-b5a5-0255ac100b07",
            "bursting-node",
        ),
    ] {
        let list: serde_json::Value = burstcert::fixtures::load(file).map_err(|e| e.to_string())?;
        let items = list["items"].as_array().ok_or("a List")?;
        let namespace = format!(
            "cce-addon-{}",
            &burstcert::cluster::local::random_name()[10..]
        );
        let mut made_nodes = Vec::new();
        let put = async {
            let ns: Namespace =
                serde_json::from_value(serde_json::json!({"metadata": {"name": namespace}}))
                    .map_err(|e| e.to_string())?;
            namespaces
                .create(&PostParams::default(), &ns)
                .await
                .map_err(|e| format!("create namespace {namespace}: {e}"))?;
            let deployments: Api<Deployment> = Api::namespaced(client.clone(), &namespace);
            for item in items {
                match item["kind"].as_str() {
                    Some("Deployment") => {
                        let mut item = item.clone();
                        item["metadata"]["namespace"] = namespace.clone().into();
                        item["spec"]["replicas"] = 0.into();
                        let d: Deployment =
                            serde_json::from_value(item).map_err(|e| e.to_string())?;
                        deployments
                            .create(&PostParams::default(), &d)
                            .await
                            .map_err(|e| format!("create a Deployment of {file}: {e}"))?;
                    }
                    Some("Node") => {
                        let n: Node =
                            serde_json::from_value(item.clone()).map_err(|e| e.to_string())?;
                        let name = n.metadata.name.clone().unwrap_or_default();
                        let has = nodes
                            .get_opt(&name)
                            .await
                            .map_err(|e| format!("get node {name}: {e}"))?
                            .is_some();
                        // Only the virtual node: an ordinary node without a kubelet would
                        // only be tainted unreachable.
                        if !has && name == node {
                            nodes
                                .create(&PostParams::default(), &n)
                                .await
                                .map_err(|e| format!("create node {name}: {e}"))?;
                            made_nodes.push(name);
                        }
                    }
                    _ => {}
                }
            }
            burstcert::discover::read(&client, &namespace, None)
                .await
                .map_err(|e| format!("discover the add-on in {namespace}: {e}"))
        };
        let found = put.await;
        // Whatever was found, what was put there goes.
        let _ = namespaces
            .delete(&namespace, &DeleteParams::default())
            .await;
        for name in &made_nodes {
            let _ = nodes.delete(name, &DeleteParams::default()).await;
        }
        let found = found?.ok_or_else(|| format!("{file}: no add-on found in {namespace}"))?;
        eprintln!("existing: {file} in {namespace}: {found:?}");
        ensure(
            found.release.map(|r| r.to_string()).as_deref() == Some(release),
            || format!("{file}: release {:?}, not {release}", found.release),
        )?;
        ensure(found.cluster_id.as_deref() == Some(cluster_id), || {
            format!("{file}: cluster id {:?}", found.cluster_id)
        })?;
        ensure(found.virtual_node.as_deref() == Some(node), || {
            format!("{file}: virtual node {:?}, not {node}", found.virtual_node)
        })?;
    }
    Ok(())
}

/// [`certify_existing`] off the runtime's threads, into a report folder of its own.
async fn certify(
    cli: &Path,
    env: &Arc<Env>,
    args: &'static [&'static str],
    given: Given,
    patience: f64,
) -> Result<(Output, Vec<String>, tempfile::TempDir), Failed> {
    let (cli, env) = (cli.to_owned(), Arc::clone(env));
    tokio::task::spawn_blocking(move || {
        let report = tempfile::tempdir().map_err(|e| format!("a report folder: {e}"))?;
        let inputs = tempfile::tempdir().map_err(|e| format!("a folder for its inputs: {e}"))?;
        let (out, ps) = certify_existing(
            &cli,
            &env,
            report.path(),
            inputs.path(),
            args,
            given,
            patience,
        )?;
        Ok((out, ps, report))
    })
    .await
    .map_err(|e| format!("certify: {e}"))?
}

async fn check(cli: &Path, env: &Arc<Env>) -> Result<(), Failed> {
    let (token, access_key, secret_key) = tenant(env)?;
    let secrets = [token, secret_key];
    let admin = env.mock_admin().ok_or("the environment has its mock")?;
    let last_seq = || async {
        admin
            .requests(Some(1))
            .await
            .map(|log| log.last().map_or(0, |r| r.seq))
            .map_err(|e| Failed::from(format!("the mock's request log: {e}")))
    };
    // At the installed release, signing with the tenant's AK/SK pair: what the cluster and
    // CCI's public API show runs and passes; the rest is not run, each with its need; never
    // certified.
    let started = std::time::SystemTime::now();
    let before = last_seq().await?;
    let (out, ps, report) = certify(cli, env, &[], Given::AkSkInEnvironment, 1.0).await?;
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
    no_secret(&secrets, &out, report.path(), &ps, started)?;
    // Its requests reached the mock signed with the pair, and none was refused.
    let signed: Vec<_> = admin
        .requests(None)
        .await
        .map_err(|e| format!("the mock's request log: {e}"))?
        .into_iter()
        .filter(|r| {
            r.seq > before && r.credential.as_deref() == Some(&format!("aksk:{access_key}"))
        })
        .collect();
    ensure(!signed.is_empty(), || {
        "no request signed with the pair reached the mock".into()
    })?;
    let refused: Vec<String> = signed
        .iter()
        .filter(|r| r.status == 401 || r.status == 403)
        .map(|r| format!("{} {} {}", r.method, r.path, r.status))
        .collect();
    ensure(refused.is_empty(), || {
        format!("signed requests refused: {refused:?}")
    })?;
    eprintln!(
        "existing: {} passed, {} not run, {} requests signed with {access_key}",
        with("passed"),
        with("not_run"),
        signed.len()
    );

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
    let started = std::time::SystemTime::now();
    let (out, ps, report) = certify(
        cli,
        env,
        &["--release", "1.5.18", "--focus", "HP-05", "VOL-01"],
        Given::TokenFile,
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
    no_secret(&secrets, &out, report.path(), &ps, started)
}
