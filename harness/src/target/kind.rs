//! The kind target: a kind cluster from locally made images, the mock CCI in a container on
//! kind's network, and the add-on installed with the production rendering (see
//! [`crate::kind`]). It offers the mock's admin side, the installer and the add-on's logs (read
//! through the API); not the add-on's processes, the control plane's or kwok nodes (those run
//! in kind's containers), nor a network path from the mock to kind's pods.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use burst_rules::release::Release;

use crate::addon::lifecycle;
use crate::addon::params::InstallParams;
use crate::addon::render;
use crate::cci::CciClient;
use crate::cluster::{ClusterProvider, VIRTUAL_NODE, client_for};
use crate::env::Setup;
use crate::error::Result;
use crate::kind::{Container, KindCluster, MOCK_PORT};
use crate::mock_admin::MockAdmin;
use crate::progress::Progress;
use crate::target::{AddonLogs, Installer, Launch, MockFiles, Target, bring_up_runtime};
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
        let step = progress.spinner("build the add-on's and the mock's images");
        crate::kind::binary_image(&engine_binary, &engine_tags)?;
        crate::kind::binary_image(&mock_binary, std::slice::from_ref(&mock_image))?;
        step.finish("add-on and mock images built");

        let cluster =
            KindCluster::create(&kind_tools, &tools, &cluster_name, &node_image, &progress)?;
        let kubeconfig = cluster.kubeconfig().to_owned();
        eprintln!(
            "burstcert: kind cluster {cluster_name}, kubeconfig {}",
            kubeconfig.display()
        );
        let step = progress.spinner("kind load the add-on's image and the workloads' stand-ins");
        let mut images = engine_tags.clone();
        images.extend(crate::kind::stand_in_images()?);
        cluster.load(&images)?;
        step.finish("add-on image and stand-ins on the node");

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
            lifecycle::install(
                &client,
                &installer.defaults,
                &installer.rendering,
                &progress,
            )
            .await
        })?;
        Ok(Self {
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
}
