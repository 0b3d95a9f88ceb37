//! The kind target: a kind cluster from locally made images, the mock CCI in a container on
//! kind's network, and the add-on installed with the production rendering (see
//! [`crate::kind`]). It offers what the local target offers, each the way a person with the
//! cluster and `docker` would do it:
//!
//! - the mock's admin side, the installer and the add-on's logs (read through the API);
//! - nodes with chosen room: kwok's controller in the cluster manages kwok nodes the harness
//!   makes, and the worker is the host node the add-on's pods run on (its taint and label, and
//!   kube-system's namespace placement: [`crate::kind`]);
//! - the engine's process: its container killed through the worker's container runtime
//!   (`ctr task kill -s SIGKILL`), the kubelet restarting it; its processes found on this
//!   machine by their container's cgroup;
//! - the control plane's: the API server's static pod container stopped through the control
//!   plane node's runtime (SIGTERM, then SIGKILL), the kubelet starting a new one;
//! - a network path to the pods: the mock's container routes each node's pod CIDR through that
//!   node, and the harness connects into the cluster's network through the worker.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use burst_rules::release::Release;

use k8s_openapi::api::core::v1::Node;
use kube::api::Api;

use crate::addon::lifecycle;
use crate::addon::params::InstallParams;
use crate::addon::render;
use crate::cci::CciClient;
use crate::cluster::nodes::{NodeShape, create_nodes};
use crate::cluster::{ClusterProvider, VIRTUAL_NODE, client_for, node_ready};
use crate::env::{DEFAULT_KWOK_NODES, ECHO_BACKEND_IMAGE, REGISTRY, REGISTRY_USER, Setup};
use crate::error::{Error, Result};
use crate::kind::{Container, KindCluster, MOCK_PORT, nodes};
use crate::mock_admin::MockAdmin;
use crate::progress::Progress;
use crate::target::{
    AddonLogs, ChosenNodes, ClusterNetwork, Connecting, ControlPlane, EngineProcess, HostNode,
    Installer, Launch, MockFiles, Target, bring_up_runtime,
};
use crate::tools::{Minor, Tools};
use crate::wait;

/// Launches [`KindTarget`]s (one a run: see [`Launch::several`]).
#[derive(Clone, Copy, Debug, Default)]
pub struct Kind {
    /// The Kubernetes minor of the cluster (default: [`Minor::PINNED`]).
    pub kubernetes: &'static Minor,
}

impl Launch for Kind {
    fn kind(&self) -> &'static str {
        "kind"
    }

    fn start(&self, setup: &Setup) -> Result<Box<dyn Target>> {
        Ok(Box::new(KindTarget::start_at(setup, self.kubernetes)?))
    }

    fn kubernetes(&self) -> Option<&'static Minor> {
        Some(self.kubernetes)
    }
}

/// What the harness made and controls on a kind cluster.
#[derive(Debug)]
pub struct KindTarget {
    cluster: Mutex<KindCluster>,
    name: String,
    kubeconfig: PathBuf,
    cci: CciClient,
    cluster_id: String,
    logs: PathBuf,
    mock: Container,
    mock_admin: MockAdmin,
    installer: Installer,
    /// The kwok nodes bring-up made and the worker, the host node.
    nodes: ChosenNodes,
    /// The control plane's node (its container).
    control_plane: String,
    /// `kubectl`, for what the harness reads while it controls processes (blocking).
    kubectl: PathBuf,
}

impl KindTarget {
    /// Brings the kind cluster of the pinned minor, the mock's container and the add-on (as
    /// `setup` says) up (blocking).
    pub fn start(setup: &Setup) -> Result<Self> {
        Self::start_at(setup, Minor::PINNED)
    }

    /// Brings a kind cluster of Kubernetes `kubernetes`, the mock's container and the add-on (as
    /// `setup` says) up (blocking).
    pub fn start_at(setup: &Setup, kubernetes: &Minor) -> Result<Self> {
        let progress = Progress::stderr();
        crate::kind::check_docker()?;
        let mock_binary = crate::binaries::resolve(crate::binaries::MOCK)?;
        let engine_binary = crate::binaries::resolve(crate::binaries::ENGINE)?;
        let echo_binary = crate::binaries::resolve(crate::binaries::ECHO_BACKEND)?;
        let tools = Tools::ensure_for(kubernetes, &progress)?;
        let kind_tools = crate::tools::ensure_kind_for(kubernetes, &progress)?;
        let node_image = crate::kind::ensure_node_image(&tools, &kind_tools, &progress)?;

        let cluster_name = crate::cluster::local::random_name();
        let cluster_id = cluster_name.trim_start_matches("burstcert-").to_owned();
        let logs = std::env::temp_dir().join("burstcert").join(&cluster_name);
        // HTTPS, as on the local target: the certificate names the container (how the engine
        // in the cluster reaches it) and 127.0.0.1 (its published port, how the harness does).
        let mock_name = format!("{cluster_name}-mock-cci");
        let files = MockFiles::write(&logs, &cluster_id, std::slice::from_ref(&mock_name))?;
        // The engine in the cluster reaches the mock by its container name (Docker's DNS,
        // served to pods through the node: see tools/kind/node's entrypoint).
        let defaults = files.install_params(
            setup,
            &cluster_id,
            &cluster_name,
            &format!("https://{mock_name}:{MOCK_PORT}"),
        )?;
        // The add-on's image under the tags of the releases scenarios install (the default
        // one, and 1.5.17 for the upgrade and rollback scenarios): one binary, its release
        // comes from the install parameters, as with the real add-on's images.
        let mut engine_tags: Vec<String> = [
            Release::new(1, 5, 17),
            Release::new(1, 5, 18),
            setup.release,
        ]
        .into_iter()
        .map(|release| {
            InstallParams {
                release,
                ..defaults.clone()
            }
            .image()
        })
        .collect();
        engine_tags.sort();
        engine_tags.dedup();
        let mock_image = "burstcert/mock-cci:current".to_owned();
        // The network scenarios' Service backend, under the name the host node resolves
        // locally: on kind a container on the worker.
        let echo_image = format!("{REGISTRY}/{REGISTRY_USER}/{ECHO_BACKEND_IMAGE}:1");
        let kwok_image = crate::kind::kwok::image(&tools);
        let step =
            progress.spinner("build the add-on's, the mock's, echo-backend's and kwok's images");
        // `burstcert breakages --cluster kind`: the engine's deliberate breakage goes into the
        // add-on's image, as the local host node's wrapper script sets it.
        let breakage = std::env::var(crate::breakages::ENV).unwrap_or_default();
        let engine_env: Vec<(&str, &str)> = Some((crate::breakages::ENV, breakage.as_str()))
            .filter(|(_, b)| !b.is_empty())
            .into_iter()
            .collect();
        crate::kind::binary_image(&engine_binary, &engine_tags, &engine_env)?;
        crate::kind::binary_image(&mock_binary, std::slice::from_ref(&mock_image), &[])?;
        crate::kind::binary_image(&echo_binary, std::slice::from_ref(&echo_image), &[])?;
        crate::kind::binary_image(&tools.bin("kwok"), std::slice::from_ref(&kwok_image), &[])?;
        step.finish("add-on, mock, echo-backend and kwok images built");

        let cluster =
            KindCluster::create(&kind_tools, &tools, &cluster_name, &node_image, &progress)?;
        let kubeconfig = cluster.kubeconfig().to_owned();
        eprintln!(
            "burstcert: kind cluster {cluster_name}, kubeconfig {}",
            kubeconfig.display()
        );
        let step = progress.spinner("kind load the add-on's image, kwok's and the workloads'");
        let mut images = engine_tags.clone();
        images.extend([echo_image, kwok_image]);
        images.extend(crate::kind::stand_in_images()?);
        cluster.load(&images)?;
        step.finish("add-on, kwok and workload images on the nodes");
        let step = progress.spinner("start kwok's controller in the cluster");
        cluster.start_kwok(&tools)?;
        step.finish("kwok's controller available");

        // The mock's files, mounted read-only where its command line names them.
        let mounts = [
            (files.token_file.as_path(), "/run/burstcert/tokens"),
            (files.aksk_file.as_path(), "/run/burstcert/aksk"),
            (files.cert.as_path(), "/run/burstcert/tls.crt"),
            (files.key.as_path(), "/run/burstcert/tls.key"),
        ];
        let args = files.args(&format!("0.0.0.0:{MOCK_PORT}"), |path| {
            mounts
                .iter()
                .find(|(host, _)| *host == path)
                .map_or_else(|| path.display().to_string(), |(_, seen)| (*seen).into())
        });
        let mock = Container::run(
            &mock_name,
            &cluster_name,
            &mock_image,
            MOCK_PORT,
            &mounts,
            &args.iter().map(String::as_str).collect::<Vec<_>>(),
            &logs,
        )?;
        mock.route_to_pods(&node_image, cluster.nodes())?;
        let mock_url = format!("https://{}", mock.published(MOCK_PORT)?);
        let (cci, mock_admin) = files.clients(&mock_url)?;
        let installer = Installer {
            rendering: render::Target::Production,
            defaults,
        };
        bring_up_runtime()?.block_on(async {
            wait::until(
                "the mock CCI container to answer",
                Duration::from_secs(30),
                || async { Ok(cci.namespace_exists("default").await.ok().map(|_| ())) },
                || async { mock.logs(20) },
            )
            .await?;
            let client = client_for(&kubeconfig).await?;
            kwok_nodes(&client).await?;
            lifecycle::install(
                &client,
                &installer.defaults,
                &installer.rendering,
                &progress,
            )
            .await
        })?;
        let nodes = ChosenNodes {
            count: DEFAULT_KWOK_NODES,
            host: HostNode {
                name: cluster.worker().to_owned(),
                label: crate::kind::HOST_NODE_LABEL.into(),
            },
        };
        let control_plane = cluster.control_plane().to_owned();
        Ok(Self {
            nodes,
            control_plane,
            kubectl: tools.bin("kubectl"),
            cluster: Mutex::new(cluster),
            name: cluster_name,
            kubeconfig,
            cci,
            cluster_id,
            logs,
            mock,
            mock_admin,
            installer,
        })
    }
}

impl Target for KindTarget {
    fn kind(&self) -> &'static str {
        "kind"
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
        self.mock.logs(lines)
    }

    fn destroy(&self) -> Result<()> {
        self.mock.remove()?;
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

    fn addon_logs(&self) -> Option<AddonLogs<'_>> {
        Some(AddonLogs::Api)
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

    fn cluster_network(&self) -> Option<&dyn ClusterNetwork> {
        Some(self)
    }
}

/// Makes the standard kwok nodes, as on the local cluster, and waits until kwok's controller
/// has them Ready.
async fn kwok_nodes(client: &kube::Client) -> Result<()> {
    let shapes: Vec<NodeShape> = (0..DEFAULT_KWOK_NODES).map(NodeShape::standard).collect();
    create_nodes(client, &shapes).await?;
    let api: Api<Node> = Api::all(client.clone());
    wait::until(
        "kwok's controller to have the kwok nodes Ready",
        Duration::from_secs(60),
        || async {
            let mut ready = 0;
            for shape in &shapes {
                let node = api.get(&shape.name).await.map_err(|source| Error::Kube {
                    context: format!("get node {}", shape.name),
                    source,
                })?;
                ready += usize::from(node_ready(&node));
            }
            Ok((ready == shapes.len()).then_some(()))
        },
        || async {
            format!(
                "{:?}",
                api.list(&Default::default()).await.map(|l| l
                    .items
                    .iter()
                    .map(|n| (n.metadata.name.clone(), node_ready(n)))
                    .collect::<Vec<_>>())
            )
        },
    )
    .await
}

impl KindTarget {
    /// The running virtual kubelet containers: (node, containerd id), read from their pods'
    /// statuses.
    fn engine_containers(&self) -> Result<Vec<(String, String)>> {
        let step = "find the running virtual kubelet containers";
        let out = std::process::Command::new(&self.kubectl)
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args([
                "get",
                "pods",
                "-n",
                render::NAMESPACE,
                "-l",
                "app.kubernetes.io/component=virtual-kubelet",
                "-o",
                "json",
            ])
            .output()
            .map_err(|e| Error::Step {
                step: step.into(),
                detail: format!("cannot run kubectl: {e}"),
            })?;
        if !out.status.success() {
            return Err(Error::Step {
                step: step.into(),
                detail: String::from_utf8_lossy(&out.stderr).into_owned(),
            });
        }
        let list: serde_json::Value =
            serde_json::from_slice(&out.stdout).map_err(|e| Error::Step {
                step: step.into(),
                detail: format!("kubectl printed no JSON: {e}"),
            })?;
        Ok(running_containers(&list, "virtual-kubelet"))
    }
}

/// The running containers named `container` of the pods in `list` (a `kubectl get pods -o
/// json`): (node, containerd id).
fn running_containers(list: &serde_json::Value, container: &str) -> Vec<(String, String)> {
    let mut found = Vec::new();
    for pod in list["items"].as_array().into_iter().flatten() {
        let Some(node) = pod["spec"]["nodeName"].as_str() else {
            continue;
        };
        for status in pod["status"]["containerStatuses"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let running = status["state"]["running"].is_object();
            let id = status["containerID"]
                .as_str()
                .and_then(|id| id.strip_prefix("containerd://"));
            if let (true, true, Some(id)) = (status["name"] == container, running, id) {
                found.push((node.to_owned(), id.to_owned()));
            }
        }
    }
    found
}

impl EngineProcess for KindTarget {
    /// SIGKILL to each running virtual kubelet container's process through its node's
    /// containerd, as a crash (or the OOM killer) would end it; the kubelet restarts it.
    fn kill(&self) -> Result<usize> {
        let containers = self.engine_containers()?;
        for (node, id) in &containers {
            nodes::signal(node, id, "SIGKILL")?;
        }
        Ok(containers.len())
    }

    fn pids(&self) -> Vec<u32> {
        self.engine_containers()
            .unwrap_or_default()
            .iter()
            .flat_map(|(_, id)| nodes::host_pids(id))
            .collect()
    }
}

impl ControlPlane for KindTarget {
    /// SIGTERM to the kube-apiserver static pod's container on the control plane node (then
    /// SIGKILL, as the local target escalates, when it still drains after 3 s); the node's
    /// kubelet starts a new container. Returns once a new one runs.
    fn restart_api_server(&self) -> Result<()> {
        let node = self.control_plane.as_str();
        let step = |what: &str, detail: String| Error::Step {
            step: format!("restart kube-apiserver on the kind node {node}: {what}"),
            detail,
        };
        let running = |tasks: Vec<nodes::Task>| -> Vec<String> {
            tasks
                .into_iter()
                .filter(|t| t.status == "RUNNING")
                .map(|t| t.id)
                .collect()
        };
        let old = running(nodes::tasks(node, "kube-apiserver")?);
        if old.is_empty() {
            return Err(step(
                "find its container",
                "containerd runs no kube-apiserver container".into(),
            ));
        }
        for id in &old {
            nodes::signal(node, id, "SIGTERM")?;
        }
        let gone = || {
            nodes::tasks(node, "kube-apiserver")
                .ok()
                .map(running)
                .filter(|now| !now.iter().any(|id| old.contains(id)))
        };
        // On SIGTERM the API server drains open watches for up to a minute (measured); a
        // supervisor's SIGKILL ends that, so the outage stays a restart.
        if wait::until_blocking(
            "the kube-apiserver container to stop on SIGTERM",
            Duration::from_secs(3),
            gone,
            String::new,
        )
        .is_err()
        {
            for id in &old {
                // It may have stopped in the meantime: the wait below judges.
                let _ = nodes::signal(node, id, "SIGKILL");
            }
            wait::until_blocking(
                "the kube-apiserver container to stop on SIGKILL",
                Duration::from_secs(30),
                gone,
                || format!("{:?}", nodes::tasks(node, "kube-apiserver")),
            )
            .map_err(|e| step("stop its container", e.to_string()))?;
        }
        wait::until_blocking(
            "the kubelet to start a new kube-apiserver container",
            Duration::from_secs(120),
            || {
                nodes::tasks(node, "kube-apiserver")
                    .ok()
                    .map(running)
                    .filter(|now| now.iter().any(|id| !old.contains(id)))
            },
            || format!("{:?}", nodes::tasks(node, "kube-apiserver")),
        )
        .map_err(|e| step("wait for the kubelet to start it again", e.to_string()))?;
        Ok(())
    }
}

impl ClusterNetwork for KindTarget {
    /// From the worker's network namespace, which routes to every pod and Service.
    fn connect<'a>(&'a self, address: &'a str) -> Connecting<'a> {
        Box::pin(nodes::connect(&self.nodes.host.name, address))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_running_containers_of_the_name_are_found_with_their_node() {
        let list = serde_json::json!({"items": [
            {"spec": {"nodeName": "w"}, "status": {"containerStatuses": [
                {"name": "virtual-kubelet", "containerID": "containerd://a1", "state": {"running": {}}},
                {"name": "other", "containerID": "containerd://b2", "state": {"running": {}}},
            ]}},
            {"spec": {"nodeName": "w"}, "status": {"containerStatuses": [
                {"name": "virtual-kubelet", "containerID": "containerd://c3",
                 "state": {"terminated": {"exitCode": 137}}},
            ]}},
            {"spec": {}, "status": {}},
        ]});
        assert_eq!(
            running_containers(&list, "virtual-kubelet"),
            vec![("w".to_owned(), "a1".to_owned())]
        );
        assert!(running_containers(&serde_json::json!({}), "virtual-kubelet").is_empty());
    }
}
