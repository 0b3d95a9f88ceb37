//! Where scenarios run: a cluster with the add-on installed and the CCI side it bursts to.
//!
//! Every target gives what [`Target`]'s required methods name (its cluster's kubeconfig, CCI's
//! public API as the tenant, the cluster id, the add-on's virtual node). What only some targets
//! give is a capability a target returns or not ([`Target::mock_admin`], [`Target::installer`],
//! [`Target::engine_process`], …): code asks for the capability, never for the target's name,
//! and what a target offers scenarios ([`crate::needs::Need::offered_by`]) follows from those
//! answers alone. A new target is one type implementing [`Target`] and one [`Launch`] that
//! starts it.
//!
//! The smallest target offers nothing beyond what every target gives:
//!
//! ```
//! use std::path::{Path, PathBuf};
//!
//! use burstcert::cci::CciClient;
//! use burstcert::needs::Need;
//! use burstcert::target::Target;
//!
//! #[derive(Debug)]
//! struct Theirs {
//!     kubeconfig: PathBuf,
//!     cci: CciClient,
//! }
//!
//! impl Target for Theirs {
//!     fn kind(&self) -> &'static str { "theirs" }
//!     fn name(&self) -> &str { "theirs" }
//!     fn kubeconfig(&self) -> &Path { &self.kubeconfig }
//!     fn cci(&self) -> &CciClient { &self.cci }
//!     fn cluster_id(&self) -> &str { "c1" }
//!     fn virtual_node(&self) -> &str { "bursting-node" }
//!     fn logs(&self) -> &Path { Path::new("/tmp/theirs") }
//!     // Not the harness's to tear down.
//!     fn destroy(&self) -> burstcert::Result<()> { Ok(()) }
//! }
//!
//! let theirs = Theirs {
//!     kubeconfig: "/tmp/theirs/kubeconfig".into(),
//!     cci: CciClient::new("https://cci.example", "token", None)?,
//! };
//! assert!(Need::offered(&theirs).is_empty());
//! # Ok::<(), burstcert::Error>(())
//! ```
//!
//! A capability is a trait where targets would do it differently (killing the engine: a
//! process on the host node here, a container elsewhere) and a plain value where they differ
//! only in data (the installer: a rendering and default parameters).

pub mod existing;
pub mod kind;
pub mod local;

use std::path::{Path, PathBuf};
use std::time::Duration;

use kube::api::Api;

use crate::addon::lifecycle::{self, Status};
use crate::addon::params::InstallParams;
use crate::addon::render;
use crate::cci::CciClient;
use crate::env::Setup;
use crate::error::{Error, Result};
use crate::mock_admin::MockAdmin;
use crate::progress::Progress;

/// A cluster with the add-on installed and the CCI endpoint it bursts to.
///
/// The required methods are what every target gives; each capability defaults to "not
/// offered". Methods take `&self`: an environment is shared by the scenarios running on it.
pub trait Target: Send + Sync + std::fmt::Debug {
    /// `local`, `kind` or `existing`: for reports and messages, never to decide what to do.
    fn kind(&self) -> &'static str;

    /// The cluster's name (random per run where the harness made it; printed so a failed run
    /// can be inspected).
    fn name(&self) -> &str;

    /// Path of an admin kubeconfig for the cluster.
    fn kubeconfig(&self) -> &Path;

    /// CCI's public API, as the tenant the add-on uses (the mock's, where the harness runs it).
    fn cci(&self) -> &CciClient;

    /// The cluster id the add-on was installed with.
    fn cluster_id(&self) -> &str;

    /// The add-on's virtual node: the node scenarios expect burst pods on.
    fn virtual_node(&self) -> &str;

    /// Where this target's own logs (the mock's, the host node's) are written.
    fn logs(&self) -> &Path;

    /// The last lines of the mock CCI's log, for diagnoses; a sentence where there is no mock.
    fn mock_log_tail(&self, _lines: usize) -> String {
        "(no mock CCI on this target)".into()
    }

    /// Stops what the harness started for this target and removes what it created; nothing
    /// on a target it did not make. May be called more than once.
    fn destroy(&self) -> Result<()>;

    /// The mock CCI's admin side (faults, peak counts, network verdicts).
    fn mock_admin(&self) -> Option<&MockAdmin> {
        None
    }

    /// The harness's own installer for the add-on.
    fn installer(&self) -> Option<&Installer> {
        None
    }

    /// Control of the add-on's engine process.
    fn engine_process(&self) -> Option<&dyn EngineProcess> {
        None
    }

    /// Control of the control plane's processes.
    fn control_plane(&self) -> Option<&dyn ControlPlane> {
        None
    }

    /// Ordinary nodes whose room the harness chose when it brought the target up.
    fn chosen_nodes(&self) -> Option<&ChosenNodes> {
        None
    }

    /// The add-on's container logs, read whole.
    fn addon_logs(&self) -> Option<AddonLogs<'_>> {
        None
    }

    /// A network path from the mock CCI to the add-on's proxy and the cluster's pods (a CCI
    /// pod's probe through the proxy to a Service's pod and back), and from the harness into
    /// that network.
    fn cluster_network(&self) -> Option<&dyn ClusterNetwork> {
        None
    }
}

/// How a target is brought up: one value per kind of target, chosen once per run
/// ([`crate::env::Run::new`]) and asked for each environment the run brings up.
pub trait Launch: Send + Sync + std::fmt::Debug {
    /// `local`, `kind`, `existing`: the report's name for where the scenarios ran.
    fn kind(&self) -> &'static str;

    /// Brings one target up (blocking; seconds to minutes where the harness makes it), the
    /// add-on installed as `setup` says (where the harness installs it).
    fn start(&self, setup: &Setup) -> Result<Box<dyn Target>>;

    /// The Kubernetes minor it brings up, where the harness chooses it (`--kubernetes`); `None`
    /// for a cluster it is handed.
    fn kubernetes(&self) -> Option<&'static crate::tools::Minor> {
        None
    }

    /// Whether a run may bring up several at once, so that cluster-wide scenarios get a
    /// cluster each ([`crate::env::Run::new`]). No by default: a cluster the
    /// harness did not make is one, and another kind cluster costs more than it saves.
    fn several(&self) -> bool {
        false
    }
}

/// The harness's installer on a target: how it renders the add-on there and the parameters it
/// installed it with (what [`Installer::restore`] puts back).
#[derive(Debug)]
pub struct Installer {
    /// Where the add-on runs and how webhooks are addressed.
    pub rendering: render::Target,
    /// The parameters the add-on was installed with.
    pub defaults: InstallParams,
}

impl Installer {
    /// Puts the add-on back as it was installed: upgraded (or rolled) back to the default
    /// parameters when they differ, installed again when it was uninstalled, cleared and
    /// installed when an uninstall left it DeleteFailed; then waits until the replaced
    /// release's pods are gone.
    pub async fn restore(&self, client: &kube::Client) -> Result<()> {
        let quiet = Progress::quiet();
        let (rendering, defaults) = (&self.rendering, &self.defaults);
        match lifecycle::state(client).await? {
            Some(state) if matches!(state.status, Status::Running | Status::UpgradeFailed) => {
                if state.status == Status::Running && state.params == *defaults {
                    return Ok(());
                }
                lifecycle::upgrade(client, defaults, rendering, &quiet).await?;
            }
            Some(_) => {
                lifecycle::force_remove(client).await?;
                lifecycle::install(client, defaults, rendering, &quiet).await?;
            }
            None => lifecycle::install(client, defaults, rendering, &quiet).await?,
        }
        // Back as installed means the replaced release's pods are gone too: while they drain
        // they still hold slots on their node, which the next scenario on this cluster may count
        // (INST-03 failed so in CI, right after UP-02's rollback on the same extra cluster).
        let pods: Api<k8s_openapi::api::core::v1::Pod> =
            Api::namespaced(client.clone(), render::NAMESPACE);
        crate::wait::until(
            "the replaced add-on pods to be gone",
            Duration::from_secs(60),
            || async {
                let draining = addon_pods(&pods)
                    .await?
                    .iter()
                    .any(|p| p.metadata.deletion_timestamp.is_some());
                Ok((!draining).then_some(()))
            },
            || lifecycle::diagnose(client),
        )
        .await
    }
}

/// Control of the add-on's engine (the virtual kubelet's process).
pub trait EngineProcess: Send + Sync {
    /// Kills the running engine as a crash would (SIGKILL); whatever runs its pod restarts it
    /// under the pod's restart policy. Returns how many processes were killed.
    fn kill(&self) -> Result<usize>;

    /// Pids of the running engine processes (for memory readings and waits).
    fn pids(&self) -> Vec<u32>;

    /// The `bursting-engine` binary the target serves as the add-on's image, when it is a file
    /// on this machine.
    fn binary(&self) -> Option<&Path> {
        None
    }
}

/// Control of the control plane's processes.
pub trait ControlPlane: Send + Sync {
    /// Restarts the kube-apiserver: returns once the old process is gone and the new one
    /// started; the caller waits for the API to answer.
    fn restart_api_server(&self) -> Result<()>;
}

/// Ordinary nodes the harness created with room it chose (kwok nodes), and the one real node it
/// reserved for the add-on, so scenarios may add, fill and count nodes knowing what is there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChosenNodes {
    /// How many standard nodes ([`crate::cluster::nodes::NodeShape::standard`]) bring-up made.
    pub count: usize,
    /// The node that runs the add-on's pods for real.
    pub host: HostNode,
}

/// The node that runs the add-on's pods for real (the local host node, a kind cluster's worker):
/// labelled and tainted with one key ([`vk_hostnode::HOST_NODE_LABEL`]), so that only the
/// add-on's pods and pods that ask for it (select the label, tolerate the taint) land there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostNode {
    /// Its node name.
    pub name: String,
    /// The key of its label (value `true`) and of its `NoSchedule` taint.
    pub label: String,
}

/// A connection into the cluster's network.
pub trait Stream: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}

impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Stream for T {}

/// What [`ClusterNetwork::connect`] answers.
pub type Connecting<'a> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<Box<dyn Stream>>> + Send + 'a>>;

/// A network path between the mock CCI (and the harness) and the cluster's pods: the mock
/// reaches the add-on's proxy at the pod address it registers, and the harness opens TCP
/// connections to pod and Service addresses as a client in that network would.
pub trait ClusterNetwork: Send + Sync {
    /// Opens a TCP connection to `address` (`IP:port` of a pod or a Service) from inside the
    /// cluster's network; an error names the address when nothing accepts there.
    fn connect<'a>(&'a self, address: &'a str) -> Connecting<'a>;
}

/// Where a target's add-on container logs are read whole.
#[derive(Clone, Copy)]
pub enum AddonLogs<'a> {
    /// Files on this machine (the host node's container logs).
    Files(&'a dyn LogFiles),
    /// Through the Kubernetes API (`pods/log`, each container's current and previous log).
    Api,
}

/// The add-on's container logs as files on this machine.
pub trait LogFiles: Send + Sync {
    /// Every log file the add-on's containers wrote, of running pods and of pods already gone.
    fn all(&self) -> Vec<PathBuf>;

    /// The newest log of `container` in the newest pod of `deployment`, if there is one.
    fn newest(&self, deployment: &str, container: &str) -> Option<PathBuf>;
}

/// The add-on's pods in `pods` (its namespace), by the add-on's label selector.
pub(crate) async fn addon_pods(
    pods: &Api<k8s_openapi::api::core::v1::Pod>,
) -> Result<Vec<k8s_openapi::api::core::v1::Pod>> {
    let list = pods
        .list(&kube::api::ListParams::default().labels(&render::selector()))
        .await
        .map_err(|source| Error::Kube {
            context: "list the add-on's pods".into(),
            source,
        })?;
    Ok(list.items)
}

/// The mock CCI's settings on every target where the harness runs it.
///
/// - `--timeout-ms 5000`: below the engine's 30 s request timeout, so a `Timeout` fault (R-02)
///   costs the engine seconds per try, not half a minute; the answer is lost either way.
/// - `--compute-time-ms 1000`: the seed's `perl … bpi(2000)` (WL-04's Job, the only container
///   that runs it) takes a second, about what it takes on one vCPU. WL-04 asserts the seed's
///   counts (50 completions, at most 5 at once, the 10 s deadline), not how long a digit of pi
///   takes; 3 s per pod made it the longest scenario of a run (10 waves of 5).
/// - `--subnet`: the add-on's subnet ([`crate::env::SUBNET_ID`], [`crate::env::SUBNET_CIDR`]),
///   so burst pods get addresses from it (CCI-01).
const MOCK_TUNING: [&str; 6] = [
    "--timeout-ms",
    "5000",
    "--compute-time-ms",
    "1000",
    "--subnet",
    // SUBNET_ID=SUBNET_CIDR (a test holds them equal).
    "subnet-local=192.168.0.0/16",
];

/// What the harness prepares for a mock CCI it runs, wherever it runs it: the tenant's token,
/// the files the mock reads (token, AK/SK pair, serving certificate and key) and its CA.
pub(crate) struct MockFiles {
    /// The tenant's token.
    pub token: String,
    /// The mock's CA and serving certificate.
    pub pki: crate::pki::WebhookPki,
    /// The tenant's token, one a line (a file, not a command line `ps` shows).
    pub token_file: PathBuf,
    /// The tenant's AK/SK pair ([`crate::env::aksk_pair`]), 0600.
    pub aksk_file: PathBuf,
    /// The serving certificate.
    pub cert: PathBuf,
    /// The serving key, 0600.
    pub key: PathBuf,
}

impl MockFiles {
    /// Writes the files of the mock for cluster `cluster_id` into `logs`, its certificate for
    /// `dns_names` and 127.0.0.1 (HTTPS, as the real CCI: the add-on and the harness trust the
    /// mock's own CA).
    pub fn write(logs: &Path, cluster_id: &str, dns_names: &[String]) -> Result<Self> {
        let token = format!("token-{cluster_id}");
        let token_file = logs.join("mock-cci.tokens");
        std::fs::create_dir_all(logs)
            .and_then(|()| std::fs::write(&token_file, format!("{token}\n")))
            .map_err(|source| Error::Io {
                context: format!("write {}", token_file.display()),
                source,
            })?;
        let aksk_file = write_aksk_file(logs, &token)?;
        let pki = crate::pki::generate_for(
            "burstcert mock CCI",
            dns_names,
            &[std::net::Ipv4Addr::LOCALHOST.into()],
        )?;
        let (cert, key) = write_serving_files(logs, &pki)?;
        Ok(Self {
            token,
            pki,
            token_file,
            aksk_file,
            cert,
            key,
        })
    }

    /// The mock's command line: listening on `listen`, reading its files where `seen_as` says
    /// the mock sees them (the same paths for a local process, mounts for a container).
    pub fn args(&self, listen: &str, seen_as: impl Fn(&Path) -> String) -> Vec<String> {
        [
            "--listen".to_owned(),
            listen.to_owned(),
            "--token-file".into(),
            seen_as(&self.token_file),
            "--aksk-file".into(),
            seen_as(&self.aksk_file),
            "--tls-cert-file".into(),
            seen_as(&self.cert),
            "--tls-key-file".into(),
            seen_as(&self.key),
        ]
        .into_iter()
        .chain(MOCK_TUNING.map(String::from))
        .collect()
    }

    /// CCI's public API and the mock's admin side at `url`, trusting the mock's CA.
    pub fn clients(&self, url: &str) -> Result<(CciClient, MockAdmin)> {
        Ok((
            CciClient::new(url, &self.token, Some(&self.pki.ca_pem))?,
            MockAdmin::new(url, Some(&self.pki.ca_pem))?,
        ))
    }

    /// The install parameters of an add-on that bursts to this mock at `endpoint` (as the
    /// add-on reaches it) for cluster `cluster_id`/`cluster_name`.
    pub fn install_params(
        &self,
        setup: &Setup,
        cluster_id: &str,
        cluster_name: &str,
        endpoint: &str,
    ) -> Result<InstallParams> {
        Ok(InstallParams {
            cci_ca: Some(self.pki.ca_pem.clone()),
            ..crate::env::default_params(setup, cluster_id, cluster_name, endpoint, &self.token)?
        })
    }
}

/// A runtime for the async steps of a blocking bring-up.
pub(crate) fn bring_up_runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|source| Error::Io {
            context: "start a runtime for bring-up".into(),
            source,
        })
}

/// Writes the mock's AK/SK file (the pair of [`crate::env::aksk_pair`] for the tenant
/// `token`), 0600.
fn write_aksk_file(logs: &Path, token: &str) -> Result<PathBuf> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let path = logs.join("mock-cci.aksk");
    let _ = std::fs::remove_file(&path);
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .and_then(|mut f| writeln!(f, "{}={token}", crate::env::aksk_pair(token)))
        .map_err(|source| Error::Io {
            context: format!("write {}", path.display()),
            source,
        })?;
    Ok(path)
}

/// Writes the mock's serving certificate and key into `dir` (the key readable by its owner
/// only), answering their paths.
fn write_serving_files(dir: &Path, pki: &crate::pki::WebhookPki) -> Result<(PathBuf, PathBuf)> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let (cert, key) = (dir.join("mock-cci.crt"), dir.join("mock-cci.key"));
    let io = |path: &Path| {
        let context = format!("write {}", path.display());
        move |source| Error::Io { context, source }
    };
    std::fs::write(&cert, &pki.cert_pem).map_err(io(&cert))?;
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&key)
        .and_then(|mut file| file.write_all(pki.key_pem.as_bytes()))
        .map_err(io(&key))?;
    Ok((cert, key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mock_knows_the_subnet_the_add_on_is_installed_on() {
        use crate::env::{SUBNET_CIDR, SUBNET_ID};
        assert!(
            MOCK_TUNING
                .windows(2)
                .any(|w| w[0] == "--subnet" && w[1] == format!("{SUBNET_ID}={SUBNET_CIDR}"))
        );
    }

    #[test]
    fn the_mock_reads_its_files_where_it_sees_them() {
        let dir = tempfile::tempdir().unwrap();
        let files = MockFiles::write(dir.path(), "c1", &["localhost".into()]).unwrap();
        assert_eq!(files.token, "token-c1");
        let args = files.args("0.0.0.0:1", |p| {
            format!("/run/{}", p.file_name().unwrap().to_string_lossy())
        });
        for flag in [
            "--token-file",
            "--aksk-file",
            "--tls-cert-file",
            "--tls-key-file",
        ] {
            let at = args.iter().position(|a| a == flag).unwrap();
            assert!(args[at + 1].starts_with("/run/mock-cci."), "{args:?}");
        }
        assert!(args.ends_with(&MOCK_TUNING.map(String::from)));
    }
}
