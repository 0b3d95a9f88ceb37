//! The local cluster: a real control plane (etcd, kube-apiserver, kube-controller-manager,
//! kube-scheduler) and the kwok controller as plain processes, run by
//! `kwokctl create cluster --runtime binary` from binaries built by [`crate::tools`].

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::cluster::ClusterProvider;
use crate::error::{Error, IoContext, Result};
use crate::progress::Progress;
use crate::tools::{Tools, cache_root};
use vk_hostnode::process::{OnExit, tail_file};

/// Annotation that hands a node to kwok; kwok leaves every other node alone (the virtual node and
/// the host node are real virtual kubelets).
pub const KWOK_NODE_ANNOTATION: (&str, &str) = ("kwok.x-k8s.io/node", "fake");

/// How to bring up a local cluster.
#[derive(Clone, Debug, Default)]
pub struct LocalOptions {
    /// Cluster name; random (`burstcert-xxxxxx`) when `None`.
    pub name: Option<String>,
    /// Tear the cluster down when this process ends, however it ends (tests). The CLI's
    /// `cluster up` leaves it running instead.
    pub cleanup_at_exit: bool,
    /// The control plane's client rates; `None` keeps the components' defaults (the suites'
    /// clusters). The bench raises them ([`ClientRates::UNTHROTTLED`]).
    pub client_rates: Option<ClientRates>,
}

/// The rate at which kube-controller-manager and kube-scheduler may call the API server
/// (`--kube-api-qps`, `--kube-api-burst`).
///
/// Their defaults (controller manager 20/30; scheduler 50/100) bound how fast a ReplicaSet's
/// pods are created and bound: 1000 replicas took ~51 s on any node, the engine's as kwok's, so
/// a start-up comparison at those rates measures the throttle, not the node. kwok-controller has
/// no client rate to raise (its client never waits: client-go's always-admitting rate limiter),
/// and neither has the engine (kube-rs does not rate-limit).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientRates {
    /// `--kube-api-qps`.
    pub qps: u32,
    /// `--kube-api-burst`.
    pub burst: u32,
}

impl ClientRates {
    /// What kwokctl's own `disableQPSLimits` passes them (kwok v0.8.0's
    /// `DefaultUnlimitedQPS` / `DefaultUnlimitedBurst`): far above what this machine serves, so
    /// the API server and the CPU are the bound, as on a real control plane sized for its load.
    pub const UNTHROTTLED: ClientRates = ClientRates {
        qps: 5000,
        burst: 10000,
    };

    /// The components the rates are passed to.
    pub const COMPONENTS: [&str; 2] = ["kube-controller-manager", "kube-scheduler"];

    /// The `extraArgs` entries of a `componentsPatches` item.
    fn extra_args(self) -> String {
        format!(
            "  - key: kube-api-qps\n    value: \"{}\"\n  - key: kube-api-burst\n    value: \"{}\"\n",
            self.qps, self.burst
        )
    }
}

impl std::fmt::Display for ClientRates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} --kube-api-qps={} --kube-api-burst={}; kwok-controller and the engine: no client rate limit",
            Self::COMPONENTS.join(" and "),
            self.qps,
            self.burst
        )
    }
}

/// A running local cluster.
#[derive(Debug)]
pub struct LocalCluster {
    name: String,
    workdir: PathBuf,
    kubeconfig: PathBuf,
    kwokctl: PathBuf,
    cleanup: Option<OnExit>,
    destroyed: bool,
}

/// kwokctl's working folder root for clusters made by burstcert (`KWOK_WORKDIR`).
pub fn kwok_workdir() -> Result<PathBuf> {
    Ok(cache_root()?.join("kwok"))
}

fn cluster_dir(name: &str) -> Result<PathBuf> {
    Ok(kwok_workdir()?.join("clusters").join(name))
}

/// Names of the local clusters that exist (running or not).
pub fn list() -> Result<Vec<String>> {
    let dir = kwok_workdir()?.join("clusters");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Ok(Vec::new());
    };
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join("kubeconfig.yaml").exists() || e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    Ok(names)
}

/// Path of the admin kubeconfig of a local cluster.
pub fn kubeconfig_path(name: &str) -> Result<PathBuf> {
    Ok(cluster_dir(name)?.join("kubeconfig.yaml"))
}

/// Stops and removes a local cluster by name.
pub fn delete(tools: &Tools, name: &str) -> Result<()> {
    if !cluster_dir(name)?.exists() {
        return Err(Error::NoSuchCluster(name.to_owned()));
    }
    let out = Command::new(tools.bin("kwokctl"))
        .args(["delete", "cluster", "--name", name])
        .env("KWOK_WORKDIR", kwok_workdir()?)
        .output()
        .io_context(|| "run kwokctl delete cluster".into())?;
    if !out.status.success() {
        return Err(Error::Step {
            step: format!("delete cluster {name}"),
            detail: String::from_utf8_lossy(&out.stderr).into_owned(),
        });
    }
    Ok(())
}

/// A fresh random cluster name.
pub fn random_name() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos(),
    );
    h.write_u32(std::process::id());
    format!("burstcert-{:06x}", h.finish() & 0xff_ffff)
}

/// The `KwokctlConfiguration` for a cluster whose kwokctl folder is `workdir`: local binaries
/// (nothing is downloaded), loopback only, endpoint routing in the API server, the API server's
/// calls to kubelets as kubeadm sets them up, kwok restricted to annotated nodes, and the
/// controller manager's and scheduler's client rates when `rates` says.
pub fn kwokctl_config(tools: &Tools, workdir: &Path, rates: Option<ClientRates>) -> String {
    let bin = |n: &str| tools.bin(n).display().to_string();
    let pki = workdir.join("pki");
    let (key, value) = KWOK_NODE_ANNOTATION;
    let rates = rates.map(ClientRates::extra_args).unwrap_or_default();
    format!(
        r#"apiVersion: config.kwok.x-k8s.io/v1alpha1
kind: KwokctlConfiguration
options:
  runtime: binary
  bindAddress: 127.0.0.1
  kubeVersion: "{kube}"
  kubeApiserverBinary: "{apiserver}"
  kubeControllerManagerBinary: "{kcm}"
  kubeSchedulerBinary: "{scheduler}"
  kubectlBinary: "{kubectl}"
  etcdBinary: "{etcd}"
  kwokControllerBinary: "{kwok}"
componentsPatches:
- name: kube-apiserver
  extraArgs:
  # Webhooks and Services resolve to endpoint (pod) addresses, not ClusterIPs: nothing on this
  # machine implements ClusterIPs, but the host node's pods listen on loopback addresses.
  - key: enable-aggregator-routing
    value: "true"
  # `kubectl logs` of burst pods, as kubeadm sets it up: kubelets are called at their InternalIP
  # (the virtual node's Hostname is its name, which resolves nowhere), with a client certificate
  # the cluster CA signed (kwokctl's admin.crt, made before the API server starts), which the
  # virtual kubelet checks against that CA. Kubelet serving certificates stay unchecked (no
  # --kubelet-certificate-authority), as in kwokctl's default set-up.
  - key: kubelet-preferred-address-types
    value: "InternalIP,ExternalIP,Hostname"
  - key: kubelet-client-certificate
    value: "{client_cert}"
  - key: kubelet-client-key
    value: "{client_key}"
# One instance each and no kubelet to restart them: without leader election they ride out an
# API server restart (R-03) instead of exiting when they cannot renew their lease.
- name: kube-scheduler
  extraArgs:
  - key: leader-elect
    value: "false"
{rates}- name: kube-controller-manager
  extraArgs:
  - key: leader-elect
    value: "false"
  # Client certificates for CertificateSigningRequests, signed by the cluster CA, as kubeadm
  # sets it up (SAFE-04 asks one for a user the cluster does not authorise).
  - key: cluster-signing-cert-file
    value: "{ca_cert}"
  - key: cluster-signing-key-file
    value: "{ca_key}"
{rates}- name: kwok-controller
  extraArgs:
  - key: manage-all-nodes
    value: "false"
  - key: manage-nodes-with-annotation-selector
    value: "{key}={value}"
"#,
        kube = tools.pins.kubernetes,
        apiserver = bin("kube-apiserver"),
        kcm = bin("kube-controller-manager"),
        scheduler = bin("kube-scheduler"),
        kubectl = bin("kubectl"),
        etcd = bin("etcd"),
        kwok = bin("kwok"),
        client_cert = pki.join("admin.crt").display(),
        client_key = pki.join("admin.key").display(),
        ca_cert = pki.join("ca.crt").display(),
        ca_key = pki.join("ca.key").display(),
    )
}

impl LocalCluster {
    /// Brings up a cluster (etcd, kube-apiserver, kube-controller-manager, kube-scheduler,
    /// kwok-controller) and waits until it serves. On failure nothing is left running.
    pub fn create(tools: &Tools, options: LocalOptions, progress: &Progress) -> Result<Self> {
        let name = options.name.unwrap_or_else(random_name);
        let workdir = cluster_dir(&name)?;
        if workdir.exists() {
            return Err(Error::Step {
                step: format!("create cluster {name}"),
                detail: format!(
                    "a cluster of that name already exists ({}); pick another name or `burstcert cluster down --name {name}`",
                    workdir.display()
                ),
            });
        }
        let kwok_root = kwok_workdir()?;
        let config_dir = kwok_root.join("configs");
        std::fs::create_dir_all(&config_dir)
            .io_context(|| format!("create {}", config_dir.display()))?;
        let config = config_dir.join(format!("{name}.yaml"));
        std::fs::write(
            &config,
            kwokctl_config(tools, &workdir, options.client_rates),
        )
        .io_context(|| format!("write {}", config.display()))?;
        let envs = vec![("KWOK_WORKDIR".to_owned(), kwok_root.display().to_string())];
        let kwokctl = tools.bin("kwokctl");

        // Armed before anything starts, so even a crash during bring-up tears it down.
        let cleanup = if options.cleanup_at_exit {
            Some(OnExit::arm(
                &kwokctl,
                &[
                    "delete".into(),
                    "cluster".into(),
                    "--name".into(),
                    name.clone(),
                ],
                &envs,
                &kwok_root.join("logs").join(format!("{name}-cleanup.log")),
            )?)
        } else {
            None
        };
        let mut cluster = Self {
            name: name.clone(),
            kubeconfig: workdir.join("kubeconfig.yaml"),
            workdir,
            kwokctl: kwokctl.clone(),
            cleanup,
            destroyed: false,
        };

        let step = format!(
            "start control plane {name} (Kubernetes {})",
            tools.pins.kubernetes
        );
        // NB: two `kwokctl create cluster` started in the same instant (parallel tests) were seen
        // to give both API servers the same port; kwokctl then waits out --wait and still exits 0.
        // A bring-up takes ~3 s, so they take turns, and readiness is checked by us, not trusted.
        let lock_path = kwok_root.join("create.lock");
        let lock = std::fs::File::create(&lock_path)
            .io_context(|| format!("open {}", lock_path.display()))?;
        lock.lock()
            .io_context(|| format!("lock {}", lock_path.display()))?;
        let bar = progress.spinner(&step);
        let out = Command::new(&kwokctl)
            .args([
                "create",
                "cluster",
                "--name",
                &name,
                "--runtime",
                "binary",
                "--wait",
                "90s",
            ])
            .arg("--config")
            .arg(&config)
            // An empty --kubeconfig keeps kwokctl away from the user's ~/.kube/config.
            .args(["--kubeconfig", ""])
            .envs(envs.iter().map(|(k, v)| (k, v)))
            .output()
            .io_context(|| format!("run {}", kwokctl.display()))?;
        let ready = out.status.success() && cluster.kubeconfig.exists() && cluster.readyz(tools);
        drop(lock);
        if !ready {
            bar.fail(&format!("{step}: failed"));
            let detail = format!(
                "kwokctl exited with {} (API server ready: no)\n{}\n{}\ncomponent logs:\n{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr),
                cluster.component_log_tails(20)
            );
            let _ = cluster.destroy();
            return Err(Error::Step { step, detail });
        }
        bar.finish(&format!("{step}: ready"));
        Ok(cluster)
    }

    /// Whether the API server answers `/readyz` with `ok`.
    fn readyz(&self, tools: &Tools) -> bool {
        Command::new(tools.bin("kubectl"))
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(["get", "--raw", "/readyz", "--request-timeout=10s"])
            .output()
            .is_ok_and(|o| o.status.success() && o.stdout.starts_with(b"ok"))
    }

    /// The folder kwokctl keeps the cluster's pki, pids and logs in.
    pub fn workdir(&self) -> &Path {
        &self.workdir
    }

    fn component_log_tails(&self, lines: usize) -> String {
        let logs = self.workdir.join("logs");
        let Ok(entries) = std::fs::read_dir(&logs) else {
            return "(no logs)".into();
        };
        entries
            .filter_map(|e| e.ok())
            .map(|e| {
                format!(
                    "== {} ==\n{}",
                    e.file_name().to_string_lossy(),
                    tail_file(&e.path(), lines)
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl ClusterProvider for LocalCluster {
    fn kind(&self) -> &'static str {
        "local"
    }

    fn name(&self) -> &str {
        &self.name
    }

    fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    fn export_logs(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).io_context(|| format!("create {}", dir.display()))?;
        let logs = self.workdir.join("logs");
        for entry in std::fs::read_dir(&logs).io_context(|| format!("read {}", logs.display()))? {
            let entry = entry.io_context(|| format!("read {}", logs.display()))?;
            std::fs::copy(entry.path(), dir.join(entry.file_name()))
                .io_context(|| format!("copy {}", entry.path().display()))?;
        }
        Ok(())
    }

    fn destroy(&mut self) -> Result<()> {
        if self.destroyed {
            return Ok(());
        }
        self.destroyed = true;
        if let Some(cleanup) = self.cleanup.take() {
            let status = cleanup.run_now()?;
            if status.success() || !self.workdir.exists() {
                return Ok(());
            }
        }
        let out = Command::new(&self.kwokctl)
            .args(["delete", "cluster", "--name", &self.name])
            .env("KWOK_WORKDIR", kwok_workdir()?)
            .output()
            .io_context(|| "run kwokctl delete cluster".into())?;
        if out.status.success() {
            Ok(())
        } else {
            Err(Error::Step {
                step: format!("delete cluster {}", self.name),
                detail: String::from_utf8_lossy(&out.stderr).into_owned(),
            })
        }
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        // Only clusters meant to die with us are destroyed on drop; `cluster up` disarms this.
        if self.cleanup.is_some() {
            let _ = self.destroy();
        }
    }
}

impl LocalCluster {
    /// Keeps the cluster running after this handle and this process are gone (`cluster up`).
    pub fn keep_running(mut self) -> (String, PathBuf) {
        if let Some(cleanup) = self.cleanup.take() {
            cleanup.disarm();
        }
        self.destroyed = true;
        (self.name.clone(), self.kubeconfig.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tools::Pins;

    #[test]
    fn kwokctl_config_uses_local_binaries_loopback_and_annotated_nodes_only() {
        let tools = Tools::at("/opt/k8s", Pins::current());
        let yaml = kwokctl_config(&tools, Path::new("/k/clusters/c1"), None);
        assert!(yaml.contains("bindAddress: 127.0.0.1"));
        assert!(yaml.contains(r#"value: "/k/clusters/c1/pki/admin.crt""#));
        assert!(yaml.contains(r#"value: "InternalIP,ExternalIP,Hostname""#));
        assert!(yaml.contains(r#"kubeApiserverBinary: "/opt/k8s/kube-apiserver""#));
        assert!(yaml.contains(r#"value: "kwok.x-k8s.io/node=fake""#));
        assert!(yaml.contains("enable-aggregator-routing"));
        assert!(!yaml.contains("http"), "nothing may be downloaded: {yaml}");
        assert!(
            !yaml.contains("kube-api-qps"),
            "the suites' clusters keep the default rates: {yaml}"
        );
    }

    #[test]
    fn client_rates_reach_the_controller_manager_and_the_scheduler_only() {
        let tools = Tools::at("/opt/k8s", Pins::current());
        let yaml = kwokctl_config(
            &tools,
            Path::new("/k/clusters/c1"),
            Some(ClientRates::UNTHROTTLED),
        );
        let config: serde_json::Value = serde_saphyr::from_str(&yaml).unwrap();
        let args = |component: &str| -> Vec<(String, String)> {
            config["componentsPatches"]
                .as_array()
                .unwrap()
                .iter()
                .find(|p| p["name"] == component)
                .unwrap()["extraArgs"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| {
                    (
                        a["key"].as_str().unwrap().to_owned(),
                        a["value"].as_str().unwrap().to_owned(),
                    )
                })
                .collect()
        };
        for component in ClientRates::COMPONENTS {
            let args = args(component);
            assert!(
                args.contains(&("kube-api-qps".into(), "5000".into())),
                "{component}: {args:?}"
            );
            assert!(
                args.contains(&("kube-api-burst".into(), "10000".into())),
                "{component}: {args:?}"
            );
            assert!(
                args.contains(&("leader-elect".into(), "false".into())),
                "{component}: {args:?}"
            );
        }
        for component in ["kube-apiserver", "kwok-controller"] {
            assert!(
                !args(component)
                    .iter()
                    .any(|(k, _)| k.starts_with("kube-api-")),
                "{component}"
            );
        }
        assert!(
            ClientRates::UNTHROTTLED
                .to_string()
                .contains("--kube-api-qps=5000")
        );
    }

    #[test]
    fn random_names_are_valid_dns_labels_and_differ() {
        let a = random_name();
        let b = random_name();
        assert_ne!(a, b);
        assert!(
            a.len() <= 63
                && a.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        );
    }
}
