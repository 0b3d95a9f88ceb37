//! The local target: a kwok control plane, the mock CCI as a process, the host node running
//! the add-on's pods as processes, and kwok nodes whose room the harness chooses. The harness
//! made all of it, so it offers every capability.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use crate::addon::lifecycle;
use crate::addon::params::ENGINE_IMAGE;
use crate::addon::render;
use crate::cci::CciClient;
use crate::cluster::local::{ClientRates, LocalCluster, LocalOptions};
use crate::cluster::nodes::{NodeShape, create_nodes};
use crate::cluster::{ClusterProvider, VIRTUAL_NODE, client_for};
use crate::env::{
    DEFAULT_KWOK_NODES, ECHO_BACKEND_IMAGE, HOST_NODE_PODS, REGISTRY, REGISTRY_USER, Setup,
};
use crate::error::{Error, Result};
use crate::mock_admin::MockAdmin;
use crate::progress::Progress;
use crate::target::{
    AddonLogs, ChosenNodes, ClusterNetwork, Connecting, ControlPlane, EngineProcess, Installer,
    Launch, LogFiles, MockFiles, Target, bring_up_runtime,
};
use crate::tools::{Minor, Tools};
use crate::wait;
use vk_hostnode::process::{Guarded, tail_file};
use vk_hostnode::{self as hostnode, HostNode, HostNodeOptions, Registry};

/// Launches [`LocalTarget`]s: the default target, and the one a run brings up several of.
#[derive(Clone, Copy, Debug, Default)]
pub struct Local {
    /// The rates the controller manager and scheduler call the API server at (`None`: their
    /// defaults).
    pub client_rates: Option<ClientRates>,
    /// The Kubernetes minor of the control plane (default: [`Minor::PINNED`]).
    pub kubernetes: &'static Minor,
}

impl Launch for Local {
    fn kind(&self) -> &'static str {
        "local"
    }

    fn start(&self, setup: &Setup) -> Result<Box<dyn Target>> {
        Ok(Box::new(LocalTarget::start_at(
            setup,
            self.kubernetes,
            self.client_rates,
        )?))
    }

    fn kubernetes(&self) -> Option<&'static Minor> {
        Some(self.kubernetes)
    }

    /// An idle control plane costs little, so cluster-wide scenarios get their own.
    fn several(&self) -> bool {
        true
    }
}

/// What the harness brought up and controls on this machine.
#[derive(Debug)]
pub struct LocalTarget {
    cluster: Mutex<LocalCluster>,
    name: String,
    kubeconfig: PathBuf,
    cci: CciClient,
    cluster_id: String,
    logs: PathBuf,
    /// The mock's admin side (faults, peak counts).
    mock_admin: MockAdmin,
    /// The `bursting-engine` binary the host node serves as the add-on's image.
    engine_binary: PathBuf,
    host: Mutex<HostNode>,
    installer: Installer,
    /// The kwok nodes bring-up made and the host node.
    nodes: ChosenNodes,
    /// The API server, once [`ControlPlane::restart_api_server`] restarted it (kwokctl started
    /// the first).
    api_server: Mutex<Option<Guarded>>,
    _mock_process: Guarded,
    /// Held (locked) while the target lives: its host node's address block.
    _address_block: std::fs::File,
}

impl LocalTarget {
    /// Brings everything up (blocking), the add-on installed as `setup` says, on a cluster of the
    /// pinned minor whose controller manager and scheduler call the API server at `client_rates`
    /// (`None`: their defaults).
    pub fn start(setup: &Setup, client_rates: Option<ClientRates>) -> Result<Self> {
        Self::start_at(setup, Minor::PINNED, client_rates)
    }

    /// Brings everything up (blocking), the add-on installed as `setup` says, on a cluster of
    /// Kubernetes `kubernetes` whose controller manager and scheduler call the API server at
    /// `client_rates` (`None`: their defaults).
    pub fn start_at(
        setup: &Setup,
        kubernetes: &Minor,
        client_rates: Option<ClientRates>,
    ) -> Result<Self> {
        let progress = Progress::stderr();
        // The engine and the mock first: built from the current source (or named by the
        // environment), before anything is created that a failed build would leave behind.
        let mock_binary = crate::binaries::resolve(crate::binaries::MOCK)?;
        let engine_binary = crate::binaries::resolve(crate::binaries::ENGINE)?;
        let echo_binary = crate::binaries::resolve(crate::binaries::ECHO_BACKEND)?;
        let tools = Tools::ensure_for(kubernetes, &progress)?;
        let cluster = LocalCluster::create(
            &tools,
            LocalOptions {
                name: None,
                cleanup_at_exit: true,
                client_rates,
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

        let mock = MockFiles::write(&logs, &cluster_id, &["localhost".into()])?;
        let mock_log = logs.join("mock-cci.log");
        let mock_process = Guarded::spawn(
            "mock-cci",
            &mock_binary,
            &mock.args("127.0.0.1:0", |p| p.display().to_string()),
            &[],
            &mock_log,
        )?;
        let runtime = bring_up_runtime()?;
        let mock_url = runtime.block_on(mock_address(&mock_log))?;
        let (cci, mock_admin) = mock.clients(&mock_url)?;
        runtime.block_on(async {
            let client = client_for(&kubeconfig).await?;
            let shapes: Vec<NodeShape> = (0..DEFAULT_KWOK_NODES).map(NodeShape::standard).collect();
            create_nodes(&client, &shapes).await
        })?;

        // Pod addresses and service VIPs of their own, even beside another environment.
        let (address_block, block_claim) = hostnode::ips::claim_block(
            &cluster_name,
            &crate::tools::cache_root()?.join("address-blocks"),
        )
        .map_err(|source| Error::Io {
            context: "claim a loopback address block for the host node".into(),
            source,
        })?;
        let step = progress.spinner("start the host node (it runs the add-on's pods as processes)");
        let host = HostNode::start(HostNodeOptions {
            node_name: hostnode::HOST_NODE.into(),
            registry: Registry {
                address: REGISTRY.into(),
                user: REGISTRY_USER.into(),
            },
            images: vec![
                (ENGINE_IMAGE.into(), engine_binary.clone()),
                (ECHO_BACKEND_IMAGE.into(), echo_binary),
            ],
            kubeconfig: kubeconfig.clone(),
            logs: logs.join("host"),
            pods: HOST_NODE_PODS,
            cpu: "8".into(),
            memory: "16Gi".into(),
            address_block,
            ready_timeout: wait::patience(hostnode::DEFAULT_READY_TIMEOUT),
        })?;
        step.finish("host node Ready");

        let installer = Installer {
            rendering: render::Target::local(address_block),
            defaults: mock.install_params(setup, &cluster_id, &cluster_name, &mock_url)?,
        };
        runtime.block_on(async {
            let client = client_for(&kubeconfig).await?;
            let target = &installer.rendering;
            // The node lifecycle controller lifts the not-ready taint a moment after the node
            // turns Ready; until then nothing may be scheduled there (install would rightly refuse).
            wait::until(
                "the host node to be schedulable (no not-ready taint)",
                Duration::from_secs(60),
                || async {
                    let facts = lifecycle::node_facts(&client, target).await?;
                    Ok(facts
                        .iter()
                        .any(|f| f.name == hostnode::HOST_NODE && f.ineligible.is_none())
                        .then_some(()))
                },
                || async {
                    match lifecycle::node_facts(&client, target).await {
                        Ok(facts) => format!("{facts:#?}"),
                        Err(e) => e.to_string(),
                    }
                },
            )
            .await?;
            lifecycle::install(&client, &installer.defaults, target, &progress).await
        })?;
        Ok(Self {
            cluster: Mutex::new(cluster),
            name: cluster_name,
            kubeconfig,
            cci,
            cluster_id,
            logs,
            mock_admin,
            engine_binary,
            host: Mutex::new(host),
            installer,
            nodes: ChosenNodes {
                count: DEFAULT_KWOK_NODES,
                host: crate::target::HostNode {
                    name: hostnode::HOST_NODE.into(),
                    label: hostnode::HOST_NODE_LABEL.into(),
                },
            },
            api_server: Mutex::new(None),
            _mock_process: mock_process,
            _address_block: block_claim,
        })
    }
}

/// The virtual kubelet's pods' name prefix and its container, as the host node knows them.
fn engine_container() -> (String, &'static str) {
    (format!("{}-", render::VIRTUAL_KUBELET), "virtual-kubelet")
}

impl Target for LocalTarget {
    fn kind(&self) -> &'static str {
        "local"
    }

    fn name(&self) -> &str {
        &self.name
    }

    fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    fn cci(&self) -> &CciClient {
        &self.cci
    }

    fn cluster_id(&self) -> &str {
        &self.cluster_id
    }

    fn virtual_node(&self) -> &str {
        VIRTUAL_NODE
    }

    fn logs(&self) -> &Path {
        &self.logs
    }

    fn mock_log_tail(&self, lines: usize) -> String {
        tail_file(&self.logs.join("mock-cci.log"), lines)
    }

    fn destroy(&self) -> Result<()> {
        if let Ok(mut host) = self.host.lock() {
            host.stop();
        }
        // An API server restarted by R-03 is ours, not kwokctl's: stop it and wait, or it
        // outlived the run by up to ~10 s (its supervisor only noticed the harness had gone).
        if let Some(mut restarted) = self.api_server.lock().ok().and_then(|mut a| a.take()) {
            // Killed, not stopped: its cluster is going, and SIGTERM kept it draining until its
            // supervisor's SIGKILL 10 s later (kwokctl's own API server goes at once).
            let _ = restarted.kill_program();
            restarted.stop();
        }
        match self.cluster.lock() {
            Ok(mut cluster) => cluster.destroy(),
            Err(_) => Ok(()),
        }
    }

    fn mock_admin(&self) -> Option<&MockAdmin> {
        Some(&self.mock_admin)
    }

    fn installer(&self) -> Option<&Installer> {
        Some(&self.installer)
    }

    fn engine_process(&self) -> Option<&dyn EngineProcess> {
        Some(self)
    }

    fn control_plane(&self) -> Option<&dyn ControlPlane> {
        Some(self)
    }

    fn chosen_nodes(&self) -> Option<&ChosenNodes> {
        Some(&self.nodes)
    }

    fn addon_logs(&self) -> Option<AddonLogs<'_>> {
        Some(AddonLogs::Files(self))
    }

    fn cluster_network(&self) -> Option<&dyn ClusterNetwork> {
        // The mock, the host node's pods and its Service addresses share the loopback network.
        Some(self)
    }
}

impl ClusterNetwork for LocalTarget {
    fn connect<'a>(&'a self, address: &'a str) -> Connecting<'a> {
        Box::pin(async move {
            let stream = tokio::net::TcpStream::connect(address)
                .await
                .map_err(|source| Error::Io {
                    context: format!("connect to {address}"),
                    source,
                })?;
            Ok(Box::new(stream) as Box<dyn crate::target::Stream>)
        })
    }
}

impl EngineProcess for LocalTarget {
    fn kill(&self) -> Result<usize> {
        let host = self.host.lock().map_err(|_| Error::Step {
            step: "kill the engine".into(),
            detail: "host node handle poisoned".into(),
        })?;
        let (pods, container) = engine_container();
        Ok(host.kill_containers(render::NAMESPACE, &pods, container))
    }

    fn pids(&self) -> Vec<u32> {
        let (pods, container) = engine_container();
        self.host
            .lock()
            .map(|h| h.container_pids(render::NAMESPACE, &pods, container))
            .unwrap_or_default()
    }

    fn binary(&self) -> Option<&Path> {
        Some(&self.engine_binary)
    }
}

impl LogFiles for LocalTarget {
    fn all(&self) -> Vec<PathBuf> {
        let Ok(host) = self.host.lock() else {
            return Vec::new();
        };
        [
            render::VIRTUAL_KUBELET,
            render::WEBHOOK,
            render::PROXY,
            render::GC,
        ]
        .iter()
        .flat_map(|deployment| host.logs_of(&format!("{}_{deployment}-", render::NAMESPACE)))
        .collect()
    }

    fn newest(&self, deployment: &str, container: &str) -> Option<PathBuf> {
        let prefix = format!("{}_{deployment}-", render::NAMESPACE);
        self.host.lock().ok()?.newest_log(&prefix, container)
    }
}

impl ControlPlane for LocalTarget {
    /// SIGTERM to the running kube-apiserver (its pid from kwokctl's pid file), then the same
    /// command line, working folder and environment again, under a [`Guarded`] supervisor so
    /// it cannot outlive the harness, writing its new pid into the pid file so `kwokctl delete
    /// cluster` still stops it.
    fn restart_api_server(&self) -> Result<()> {
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
}

/// Reads the address the mock printed on start.
async fn mock_address(log: &Path) -> Result<String> {
    wait::until(
        "the mock CCI to print its address",
        Duration::from_secs(30),
        || async {
            let text = std::fs::read_to_string(log).unwrap_or_default();
            Ok(text
                .lines()
                .find_map(|l| l.strip_prefix("mock-cci listening on "))
                .map(|s| s.trim().to_owned()))
        },
        || async { tail_file(log, 20) },
    )
    .await
}
