//! The shared test environment: one local cluster, one mock CCI and one engine per test binary.
//!
//! Bringing up a control plane costs seconds to tens of seconds; the full suite has about a
//! hundred scenarios. So each test binary (one per scenario family) brings one environment up on
//! first use and shares it; each scenario gets its own namespace ([`crate::scenario`]). Every
//! process is guarded ([`crate::process`]): when the test binary exits, passes, fails or panics,
//! the engine, the mock and the whole control plane are stopped.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use k8s_openapi::api::core::v1::Node;
use kube::api::Api;

use crate::cluster::local::{LocalCluster, LocalOptions};
use crate::cluster::nodes::{NodeShape, create_nodes};
use crate::cluster::{ClusterProvider, client_for};
use crate::error::{Error, Result};
use crate::mock::MockCci;
use crate::process::{Guarded, tail_file};
use crate::progress::Progress;
use crate::tools::Tools;
use crate::wait;

/// Environment variable naming the `bursting-engine` binary (default: beside this executable).
pub const ENGINE_BIN_ENV: &str = "BURSTCERT_ENGINE_BIN";
/// Environment variable naming the `mock-cci` binary (default: beside this executable).
pub const MOCK_BIN_ENV: &str = "BURSTCERT_MOCK_CCI_BIN";
/// Name of the engine's virtual node.
pub const VIRTUAL_NODE: &str = "bursting-node";
/// Environment variable setting the engine's node lock duration in seconds (§7; default
/// [`DEFAULT_LOCK_SECONDS`], so LOCK-03 runs in test time).
pub const LOCK_SECONDS_ENV: &str = "BURSTCERT_LOCK_SECONDS";
/// Default node lock duration of the engine under test, in seconds.
pub const DEFAULT_LOCK_SECONDS: u64 = 20;

/// The node lock duration the engine is started with ([`LOCK_SECONDS_ENV`]).
pub fn lock_seconds() -> u64 {
    std::env::var(LOCK_SECONDS_ENV)
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .filter(|s| *s > 0)
        .unwrap_or(DEFAULT_LOCK_SECONDS)
}

/// How many ordinary (kwok) nodes the shared cluster gets.
pub const DEFAULT_KWOK_NODES: usize = 2;

/// A running environment: cluster, mock CCI, engine.
#[derive(Debug)]
pub struct Env {
    cluster: Mutex<LocalCluster>,
    kubeconfig: PathBuf,
    cluster_name: String,
    /// The mock CCI, as the tenant the engine uses.
    pub mock: MockCci,
    /// The cluster id the engine was started with.
    pub cluster_id: String,
    /// The CCI namespace of this cluster, `bursting-{cluster_id}`.
    pub cci_namespace: String,
    /// Where the engine's and the mock's logs go.
    pub logs: PathBuf,
    engine: Mutex<Guarded>,
    engine_launch: EngineLaunch,
    /// The API server, once [`Env::restart_api_server`] restarted it (kwokctl started the first).
    api_server: Mutex<Option<Guarded>>,
    _webhook: Guarded,
    _mock_process: Guarded,
}

/// How the engine is started, kept so it can be restarted (R-01).
#[derive(Debug, Clone)]
struct EngineLaunch {
    binary: PathBuf,
    args: Vec<String>,
    envs: Vec<(String, String)>,
    log: PathBuf,
}

impl EngineLaunch {
    fn spawn(&self) -> Result<Guarded> {
        Guarded::spawn(
            "bursting-engine",
            &self.binary,
            &self.args,
            &self.envs,
            &self.log,
        )
    }
}

static SHARED: OnceLock<std::result::Result<Env, String>> = OnceLock::new();
static RELEASE: OnceLock<String> = OnceLock::new();

/// Name of the webhook configuration the environment registers.
pub const WEBHOOK_CONFIGURATION: &str = "bursting-webhook";

/// Name of the validating webhook configuration (Services) the environment registers.
pub const VALIDATING_WEBHOOK_CONFIGURATION: &str = "bursting-webhook-validate";

/// Sets the add-on release the shared environment runs the engine as (before it starts;
/// default [`crate::certify::DEFAULT_RELEASE`]). Returns false if it was already set differently.
pub fn configure_release(release: &str) -> bool {
    RELEASE.get_or_init(|| release.to_owned()) == release
}

/// The release the shared environment runs (or will run) the engine as.
pub fn release() -> &'static str {
    RELEASE.get_or_init(|| crate::certify::DEFAULT_RELEASE.to_owned())
}

/// The environment shared by every scenario of this process, brought up on first use.
pub async fn shared() -> Result<&'static Env> {
    let result = tokio::task::spawn_blocking(|| {
        SHARED.get_or_init(|| Env::start().map_err(|e| e.to_string()))
    })
    .await
    .map_err(|e| Error::Step {
        step: "bring up the test environment".into(),
        detail: e.to_string(),
    })?;
    result.as_ref().map_err(|e| Error::Step {
        step: "bring up the test environment (shared by this test binary)".into(),
        detail: e.clone(),
    })
}

/// The shared environment, if this process brought one up.
pub fn shared_if_started() -> Option<&'static Env> {
    SHARED.get().and_then(|r| r.as_ref().ok())
}

impl Env {
    /// Brings everything up (blocking). Prefer [`shared`].
    pub fn start() -> Result<Self> {
        let progress = Progress::stderr();
        let tools = Tools::ensure(&progress)?;
        let cluster = LocalCluster::create(
            &tools,
            LocalOptions {
                name: None,
                cleanup_at_exit: true,
            },
            &progress,
        )?;
        let cluster_name = cluster.name().to_owned();
        let kubeconfig = cluster.kubeconfig().to_owned();
        eprintln!(
            "burstcert: cluster {cluster_name}, kubeconfig {}",
            kubeconfig.display()
        );
        let logs = std::env::temp_dir().join("burstcert").join(&cluster_name);
        let cluster_id = cluster_name.trim_start_matches("burstcert-").to_owned();
        let token = format!("token-{cluster_id}");

        let mock_log = logs.join("mock-cci.log");
        let mock_process = Guarded::spawn(
            "mock-cci",
            &workspace_binary("mock-cci", "mock-cci", MOCK_BIN_ENV)?,
            &[
                "--listen".into(),
                "127.0.0.1:0".into(),
                "--token".into(),
                token.clone(),
            ],
            &[],
            &mock_log,
        )?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|source| Error::Io {
                context: "start a runtime for bring-up".into(),
                source,
            })?;
        let mock_url = runtime.block_on(mock_address(&mock_log))?;
        let mock = MockCci::new(&mock_url, &token);

        let engine_args = vec![
            "virtual-kubelet".to_owned(),
            "--kubeconfig".into(),
            kubeconfig.display().to_string(),
            "--cci-endpoint".into(),
            mock_url.clone(),
            "--cluster-id".into(),
            cluster_id.clone(),
            "--node-name".into(),
            VIRTUAL_NODE.into(),
            "--lock-duration-secs".into(),
            lock_seconds().to_string(),
        ];
        let engine_log = logs.join("engine.log");
        let engine_launch = EngineLaunch {
            binary: workspace_binary("bursting-engine", "bursting-engine", ENGINE_BIN_ENV)?,
            args: engine_args,
            envs: vec![
                ("CCI_TOKEN".into(), token.clone()),
                ("RUST_LOG".into(), "info".into()),
            ],
            log: engine_log.clone(),
        };
        let engine = runtime.block_on(async {
            let client = client_for(&kubeconfig).await?;
            let shapes: Vec<NodeShape> = (0..DEFAULT_KWOK_NODES).map(NodeShape::standard).collect();
            create_nodes(&client, &shapes).await?;
            let engine = engine_launch.spawn()?;
            let step =
                progress.spinner("wait for nodes to be Ready (kwok nodes and bursting-node)");
            let names: Vec<String> = shapes
                .iter()
                .map(|s| s.name.clone())
                .chain([VIRTUAL_NODE.to_owned()])
                .collect();
            wait_nodes_ready(&client, &names, &engine_log).await?;
            step.finish("nodes Ready");
            let step = progress.spinner("start the admission webhook and register it");
            let webhook = start_webhook(&client, &kubeconfig, &logs).await?;
            step.finish("webhook registered");
            Ok::<_, Error>((engine, webhook))
        })?;
        let (engine, webhook) = engine;
        Ok(Self {
            cluster: Mutex::new(cluster),
            kubeconfig,
            cluster_name,
            mock,
            cci_namespace: cci_api::namespace_for_cluster(&cluster_id),
            cluster_id,
            logs,
            engine: Mutex::new(engine),
            engine_launch,
            api_server: Mutex::new(None),
            _webhook: webhook,
            _mock_process: mock_process,
        })
    }

    /// A new kube client for this environment (clients belong to the runtime that made them,
    /// and every test has its own runtime).
    pub async fn client(&self) -> Result<kube::Client> {
        client_for(&self.kubeconfig).await
    }

    /// The admin kubeconfig.
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// The cluster's name.
    pub fn cluster_name(&self) -> &str {
        &self.cluster_name
    }

    /// The last lines of the webhook's log, for diagnoses.
    pub fn webhook_log_tail(&self, lines: usize) -> String {
        tail_file(&self.logs.join("webhook.log"), lines)
    }

    /// The last lines of the engine's log, for diagnoses.
    pub fn engine_log_tail(&self, lines: usize) -> String {
        match self.engine.lock() {
            Ok(engine) => engine.log_tail(lines),
            Err(_) => tail_file(&self.logs.join("engine.log"), lines),
        }
    }

    /// Kills the engine with SIGKILL, as a crash would (R-01). Restart it with [`Env::start_engine`].
    pub fn kill_engine(&self) -> Result<()> {
        let mut engine = self.engine.lock().map_err(|_| Error::Step {
            step: "kill the engine".into(),
            detail: "engine handle poisoned".into(),
        })?;
        let killed = engine.kill_program()?;
        if killed.is_empty() {
            return Err(Error::Step {
                step: "kill the engine".into(),
                detail: "no engine process was running".into(),
            });
        }
        Ok(())
    }

    /// Starts the engine again with the same arguments (the old handle is stopped first).
    pub fn start_engine(&self) -> Result<()> {
        let mut engine = self.engine.lock().map_err(|_| Error::Step {
            step: "start the engine".into(),
            detail: "engine handle poisoned".into(),
        })?;
        engine.stop();
        *engine = self.engine_launch.spawn()?;
        Ok(())
    }

    /// Restarts the cluster's kube-apiserver (R-03): SIGTERM to the running one (its pid from
    /// kwokctl's pid file), then the same command line, working folder and environment again,
    /// under a [`Guarded`] supervisor so it cannot outlive the harness, writing its new pid into
    /// the pid file so `kwokctl delete cluster` still stops it. Returns once the old process is
    /// gone and the new one started; the caller waits for the API to answer.
    pub fn restart_api_server(&self) -> Result<()> {
        let step = |detail: String| Error::Step {
            step: "restart kube-apiserver".into(),
            detail,
        };
        let workdir = self
            .cluster
            .lock()
            .map_err(|_| step("cluster handle poisoned".into()))?
            .workdir()
            .to_owned();
        let pid_file = workdir.join("pids").join("kube-apiserver.pid");
        let pid: u32 = std::fs::read_to_string(&pid_file)
            .map_err(|e| step(format!("read {}: {e}", pid_file.display())))?
            .trim()
            .parse()
            .map_err(|e| step(format!("pid in {}: {e}", pid_file.display())))?;
        let proc = PathBuf::from(format!("/proc/{pid}"));
        let split = |bytes: Vec<u8>| -> Vec<String> {
            bytes
                .split(|b| *b == 0)
                .filter(|p| !p.is_empty())
                .map(|p| String::from_utf8_lossy(p).into_owned())
                .collect()
        };
        let cmdline = split(
            std::fs::read(proc.join("cmdline"))
                .map_err(|e| step(format!("read the command line of pid {pid}: {e}")))?,
        );
        let environ: Vec<(String, String)> =
            split(std::fs::read(proc.join("environ")).unwrap_or_default())
                .into_iter()
                .filter_map(|kv| {
                    kv.split_once('=')
                        .map(|(k, v)| (k.to_owned(), v.to_owned()))
                })
                .collect();
        let cwd = std::fs::read_link(proc.join("cwd")).unwrap_or_else(|_| workdir.clone());
        if cmdline.is_empty() {
            return Err(step(format!(
                "pid {pid} has no command line (not running?)"
            )));
        }
        let alive = |pid: u32| {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .is_ok_and(|stat| !stat.contains(") Z "))
        };
        let status = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .map_err(|e| step(format!("kill {pid}: {e}")))?;
        if !status.success() {
            return Err(step(format!("kill -TERM {pid} failed")));
        }
        // On SIGTERM the API server stops listening at once but then waits up to 60 s for open
        // watches to drain; like any supervisor (and ours, `Guarded`) escalate to SIGKILL when
        // it lingers, so the outage stays a restart, not a minute-long absence.
        let exited = wait::until_blocking(
            &format!("kube-apiserver (pid {pid}) to exit on SIGTERM"),
            Duration::from_secs(3),
            || (!alive(pid)).then_some(()),
            String::new,
        );
        if exited.is_err() {
            let _ = std::process::Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
            wait::until_blocking(
                &format!("kube-apiserver (pid {pid}) to exit on SIGKILL"),
                Duration::from_secs(30),
                || (!alive(pid)).then_some(()),
                || tail_file(&workdir.join("logs").join("kube-apiserver.log"), 20),
            )?;
        }
        // `$$` is the API server's pid after `exec`.
        let script = r#"echo $$ > "$1" && cd "$2" && shift 2 && exec "$@""#;
        let mut args = vec![
            "-c".to_owned(),
            script.to_owned(),
            "kube-apiserver".to_owned(),
            pid_file.display().to_string(),
            cwd.display().to_string(),
        ];
        args.extend(cmdline);
        let guarded = Guarded::spawn(
            "kube-apiserver",
            Path::new("/bin/sh"),
            &args,
            &environ,
            &workdir.join("logs").join("kube-apiserver.log"),
        )?;
        let old = self
            .api_server
            .lock()
            .map_err(|_| step("api server handle poisoned".into()))?
            .replace(guarded);
        drop(old);
        Ok(())
    }

    /// Tears the cluster down now (tests normally leave that to process exit).
    pub fn destroy(&self) -> Result<()> {
        if let Ok(mut engine) = self.engine.lock() {
            engine.stop();
        }
        match self.cluster.lock() {
            Ok(mut cluster) => cluster.destroy(),
            Err(_) => Ok(()),
        }
    }
}

/// Reads the address the mock printed on start.
async fn mock_address(log: &Path) -> Result<String> {
    printed_address(log, "mock-cci listening on ", "the mock CCI").await
}

/// Waits for a process to print `{prefix}{address}` into its log.
async fn printed_address(log: &Path, prefix: &str, who: &str) -> Result<String> {
    wait::until(
        &format!("{who} to print its address"),
        Duration::from_secs(30),
        || async {
            let text = std::fs::read_to_string(log).unwrap_or_default();
            Ok(text
                .lines()
                .find_map(|l| l.strip_prefix(prefix))
                .map(|s| s.trim().to_owned()))
        },
        || async { tail_file(log, 20) },
    )
    .await
}

/// Starts `bursting-engine webhook` with a fresh CA and serving certificate, and registers it
/// for pod creation. `failurePolicy: Fail`: a pod meant for CCI must never be admitted
/// unmutated because the webhook was down (UP-03); system namespaces are exempt so the cluster
/// itself never depends on it.
async fn start_webhook(client: &kube::Client, kubeconfig: &Path, logs: &Path) -> Result<Guarded> {
    use k8s_openapi::api::admissionregistration::v1::{
        MutatingWebhook, MutatingWebhookConfiguration, RuleWithOperations, ValidatingWebhook,
        ValidatingWebhookConfiguration, WebhookClientConfig,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};
    use kube::api::PostParams;

    let pki = crate::pki::generate(&["localhost".into()], &["127.0.0.1".parse().expect("ip")])?;
    let cert = logs.join("webhook.crt");
    let key = logs.join("webhook.key");
    std::fs::create_dir_all(logs).map_err(|source| Error::Io {
        context: format!("create {}", logs.display()),
        source,
    })?;
    for (path, text) in [(&cert, &pki.cert_pem), (&key, &pki.key_pem)] {
        std::fs::write(path, text).map_err(|source| Error::Io {
            context: format!("write {}", path.display()),
            source,
        })?;
    }
    let log = logs.join("webhook.log");
    let webhook = Guarded::spawn(
        "bursting-webhook",
        &workspace_binary("bursting-engine", "bursting-engine", ENGINE_BIN_ENV)?,
        &[
            "webhook".into(),
            "--kubeconfig".into(),
            kubeconfig.display().to_string(),
            "--listen".into(),
            "127.0.0.1:0".into(),
            "--tls-cert-file".into(),
            cert.display().to_string(),
            "--tls-key-file".into(),
            key.display().to_string(),
            "--release".into(),
            release().to_owned(),
        ],
        &[("RUST_LOG".into(), "info".into())],
        &log,
    )?;
    let url = printed_address(&log, "webhook listening on ", "the webhook").await?;
    let config = MutatingWebhookConfiguration {
        metadata: kube::api::ObjectMeta {
            name: Some(WEBHOOK_CONFIGURATION.into()),
            ..Default::default()
        },
        webhooks: Some(vec![MutatingWebhook {
            name: "pods.bursting.cci.io".into(),
            admission_review_versions: vec!["v1".into()],
            client_config: WebhookClientConfig {
                url: Some(format!("{url}/mutate")),
                ca_bundle: Some(k8s_openapi::ByteString(pki.ca_pem.into_bytes())),
                ..Default::default()
            },
            failure_policy: Some("Fail".into()),
            side_effects: "None".into(),
            timeout_seconds: Some(10),
            namespace_selector: Some(LabelSelector {
                match_expressions: Some(vec![LabelSelectorRequirement {
                    key: "kubernetes.io/metadata.name".into(),
                    operator: "NotIn".into(),
                    values: Some(vec![
                        "kube-system".into(),
                        "kube-node-lease".into(),
                        "kube-public".into(),
                    ]),
                }]),
                ..Default::default()
            }),
            rules: Some(vec![RuleWithOperations {
                operations: Some(vec!["CREATE".into()]),
                api_groups: Some(vec!["".into()]),
                api_versions: Some(vec!["v1".into()]),
                resources: Some(vec!["pods".into()]),
                scope: Some("Namespaced".into()),
            }]),
            ..Default::default()
        }]),
    };
    let hook = config.webhooks.as_ref().expect("one webhook")[0].clone();
    Api::<MutatingWebhookConfiguration>::all(client.clone())
        .create(&PostParams::default(), &config)
        .await
        .map_err(|source| Error::Kube {
            context: format!("register the webhook configuration {WEBHOOK_CONFIGURATION}"),
            source,
        })?;
    let validating = ValidatingWebhookConfiguration {
        metadata: kube::api::ObjectMeta {
            name: Some(VALIDATING_WEBHOOK_CONFIGURATION.into()),
            ..Default::default()
        },
        webhooks: Some(vec![ValidatingWebhook {
            name: "services.bursting.cci.io".into(),
            admission_review_versions: vec!["v1".into()],
            client_config: WebhookClientConfig {
                url: Some(format!("{url}/validate")),
                ..hook.client_config.clone()
            },
            failure_policy: Some("Fail".into()),
            side_effects: "None".into(),
            timeout_seconds: Some(10),
            namespace_selector: hook.namespace_selector.clone(),
            rules: Some(vec![RuleWithOperations {
                operations: Some(vec!["CREATE".into(), "UPDATE".into()]),
                api_groups: Some(vec!["".into()]),
                api_versions: Some(vec!["v1".into()]),
                resources: Some(vec!["services".into()]),
                scope: Some("Namespaced".into()),
            }]),
            ..Default::default()
        }]),
    };
    Api::<ValidatingWebhookConfiguration>::all(client.clone())
        .create(&PostParams::default(), &validating)
        .await
        .map_err(|source| Error::Kube {
            context: format!(
                "register the webhook configuration {VALIDATING_WEBHOOK_CONFIGURATION}"
            ),
            source,
        })?;
    Ok(webhook)
}

async fn wait_nodes_ready(
    client: &kube::Client,
    names: &[String],
    engine_log: &Path,
) -> Result<()> {
    let api: Api<Node> = Api::all(client.clone());
    wait::until(
        &format!("nodes {} to be Ready", names.join(", ")),
        Duration::from_secs(90),
        || async {
            for name in names {
                let Some(node) = api.get_opt(name).await.map_err(|source| Error::Kube {
                    context: format!("get node {name}"),
                    source,
                })?
                else {
                    return Ok(None);
                };
                if !node_ready(&node) {
                    return Ok(None);
                }
            }
            Ok(Some(()))
        },
        || async {
            let nodes = api.list(&Default::default()).await.map(|l| {
                l.items
                    .iter()
                    .map(|n| {
                        format!(
                            "  {} ready={}",
                            n.metadata.name.as_deref().unwrap_or("?"),
                            node_ready(n)
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            });
            format!(
                "nodes:\n{}\nengine log:\n{}",
                nodes.unwrap_or_else(|e| e.to_string()),
                tail_file(engine_log, 30)
            )
        },
    )
    .await
}

/// Whether a node reports Ready=True.
pub fn node_ready(node: &Node) -> bool {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// Finds a binary of this workspace: the environment variable, else beside the running
/// executable (`target/debug/`), else one folder up (test executables live in `target/debug/deps/`).
pub fn workspace_binary(
    binary: &'static str,
    package: &'static str,
    env: &'static str,
) -> Result<PathBuf> {
    if let Some(path) = std::env::var_os(env) {
        return Ok(PathBuf::from(path));
    }
    let exe = std::env::current_exe().map_err(|source| Error::Io {
        context: "find the running executable".into(),
        source,
    })?;
    let mut looked = Vec::new();
    for dir in exe.ancestors().skip(1).take(2) {
        let candidate = dir.join(binary);
        if candidate.is_file() {
            return Ok(candidate);
        }
        looked.push(dir.display().to_string());
    }
    Err(Error::WorkspaceBinaryMissing {
        binary,
        package,
        looked: looked.join(", "),
        env,
    })
}
