//! The shared test environment: one target ([`crate::target`]; by default a local cluster,
//! the mock CCI, the host node and the add-on installed from its manifests) per test binary,
//! and the methods scenarios use on it whatever the target.
//!
//! Bringing up a control plane costs seconds; the full suite has about a hundred scenarios. So
//! each test binary (one per scenario family) brings one environment up on first use and shares
//! it; each scenario gets its own namespace ([`crate::scenario`]). The engine is not started by
//! the harness: the add-on is installed the way the cloud installs it ([`crate::addon`]), and its
//! virtual kubelet, webhook and proxy run as pods on the host node ([`vk_hostnode`]), as local
//! processes. Every process is guarded ([`vk_hostnode::process`]): when the test binary exits, passes,
//! fails or panics, the add-on's processes, the mock and the whole control plane are stopped.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use kube::api::Api;

use burst_rules::release::Release;

use crate::addon::params::{ClusterType, InstallParams, NetworkMode, Spec};
use crate::addon::render;
use crate::cci::CciClient;
use crate::cluster::client_for;
use crate::cluster::local::ClientRates;
use crate::error::{Error, Result};
use crate::mock_admin::MockAdmin;
use crate::needs::Need;
use crate::target::existing::ExistingTarget;
use crate::target::local::Local;
use crate::target::{AddonLogs, Installer, Launch, Target, addon_pods};
use crate::wait;
use vk_hostnode::process::tail_file;

pub use crate::binaries::{ENGINE_BIN_ENV, MOCK_BIN_ENV};
pub use crate::cluster::{VIRTUAL_NODE, node_ready};
/// Environment variable setting the engine's node lock duration in seconds (§7; default
/// [`DEFAULT_LOCK_SECONDS`], so LOCK-03 runs in test time).
pub const LOCK_SECONDS_ENV: &str = "BURSTCERT_LOCK_SECONDS";
/// Default node lock duration of the engine under test, in seconds.
pub const DEFAULT_LOCK_SECONDS: u64 = 20;

/// How long a CCI pod may stay Pending for lack of capacity before the engine under test locks
/// the node, in seconds (the add-on's 5 minutes shortened, so LOCK-04 runs in test time).
pub const PENDING_LOCK_SECONDS: u64 = 5;

/// The node lock duration the engine is started with ([`LOCK_SECONDS_ENV`]).
pub fn lock_seconds() -> u64 {
    std::env::var(LOCK_SECONDS_ENV)
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .filter(|s| *s > 0)
        .unwrap_or(DEFAULT_LOCK_SECONDS)
}

/// The add-on's subnet in the environments' install parameters.
pub const SUBNET_ID: &str = "subnet-local";
/// That subnet's CIDR: the mock knows it (`--subnet`), so burst pods get addresses from it.
pub const SUBNET_CIDR: &str = "192.168.0.0/16";

/// How many ordinary (kwok) nodes the shared cluster gets.
pub const DEFAULT_KWOK_NODES: usize = 2;

/// The registry address the host node serves the add-on's image under.
pub const REGISTRY: &str = "swr.burstcert.local";
/// The registry user of the add-on's image.
pub const REGISTRY_USER: &str = "burstcert";
/// The image of the network scenarios' stand-in workload (`echo-backend`), served by the host
/// node under [`REGISTRY`]/[`REGISTRY_USER`].
pub const ECHO_BACKEND_IMAGE: &str = "echo-backend";
/// Pod capacity of the host node.
pub const HOST_NODE_PODS: u32 = 40;

/// A running environment: a cluster with the add-on installed, and the CCI side it bursts to,
/// reached through the tenant's public API; what else it offers is its [`Target`]'s
/// capabilities. Its methods are what scenarios use, whatever the target: each that needs a
/// capability answers an error naming the need where the target does not offer it.
#[derive(Debug)]
pub struct Env {
    /// CCI's public API, as the tenant the add-on uses.
    pub cci: CciClient,
    /// The cluster id the add-on was installed with.
    pub cluster_id: String,
    /// The CCI namespace of this cluster, `bursting-{cluster_id}`.
    pub cci_namespace: String,
    /// Where the target's own logs (the add-on's on the host node, the mock's) go.
    pub logs: PathBuf,
    release: Release,
    target: Box<dyn Target>,
}

pub use crate::target::existing::Existing;

/// The most local environments one run brings up: the shared one and
/// [`MAX_EXTRA_CLUSTERS`] for cluster-wide scenarios.
pub const MAX_CLUSTERS: usize = 1 + MAX_EXTRA_CLUSTERS;
/// The most extra local clusters for cluster-wide scenarios ([`Run::new`]).
pub const MAX_EXTRA_CLUSTERS: usize = 3;

/// How the add-on an environment installs authenticates to the mock CCI.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AddonAuth {
    /// The tenant's token, in the add-on's Secret.
    #[default]
    Token,
    /// The AK/SK pair the mock accepts for the tenant ([`aksk_pair`]): the add-on signs every
    /// request and its Secret holds no token, as a tenant that authenticates so installs it.
    AkSk,
}

/// What every environment of a run installs, and how: the release the engine runs as and the
/// credential the add-on authenticates with. Handed to [`Launch::start`]; an environment keeps
/// its release ([`Env::release`]), so scenarios ask their environment, never the process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Setup {
    /// The add-on release installed (on an existing cluster: the one found installed).
    pub release: Release,
    /// How the add-on authenticates to CCI.
    pub addon_auth: AddonAuth,
}

impl Setup {
    /// Release `release` with the tenant's token.
    pub fn at(release: Release) -> Self {
        Self {
            release,
            addon_auth: AddonAuth::Token,
        }
    }
}

impl Default for Setup {
    /// [`DEFAULT_RELEASE`](crate::addon::params::DEFAULT_RELEASE) with the tenant's token.
    fn default() -> Self {
        Self::at(
            Release::parse(crate::addon::params::DEFAULT_RELEASE)
                .expect("the default release is X.Y.Z"),
        )
    }
}

/// One run's environments: what they install ([`Setup`]), how they are brought up
/// ([`Launch`]), and the pool itself: `[0]` the shared environment, the others the extra
/// clusters of the cluster-wide scenarios, each brought up on first use. A value owned by whoever
/// runs scenarios (`certify`, a suite binary) and shared as `Arc<Run>`; two runs in one process
/// (the gates suite's two releases) share nothing.
pub struct Run {
    setup: Setup,
    launch: Arc<dyn Launch>,
    extra: usize,
    envs: [OnceLock<std::result::Result<Arc<Env>, String>>; MAX_CLUSTERS],
    /// The extra clusters no cluster-wide scenario holds now, and permits for them.
    free_extra: Mutex<Vec<usize>>,
    extra_permits: Arc<tokio::sync::Semaphore>,
    /// Bring-ups under way, so a teardown waits for clusters still coming up.
    booting: Arc<BootCount>,
    /// Held by every running scenario, one per environment: shared by those confined to their
    /// namespace, exclusively by a cluster-wide one. Fair (tokio's lock is), so a waiting
    /// cluster-wide scenario is not starved by a stream of confined ones.
    footprints: [Arc<tokio::sync::RwLock<()>>; MAX_CLUSTERS],
}

impl std::fmt::Debug for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Run")
            .field("setup", &self.setup)
            .field("launch", &self.launch)
            .field("extra", &self.extra)
            .finish_non_exhaustive()
    }
}

impl Run {
    /// A run installing `setup` on targets of `launch`, whose cluster-wide scenarios get `extra`
    /// local clusters of their own (at most [`MAX_EXTRA_CLUSTERS`]; none where the target may
    /// not be brought up several times, [`Launch::several`]): each runs there alone, up to
    /// `extra` of them at once, beside the confined scenarios on the shared environment instead
    /// of stopping them ([`extra_clusters_for`]). Nothing starts before an environment is asked.
    pub fn new(setup: Setup, launch: Arc<dyn Launch>, extra: usize) -> Arc<Self> {
        let extra = if launch.several() {
            extra.min(MAX_EXTRA_CLUSTERS)
        } else {
            0
        };
        Arc::new(Self {
            setup,
            launch,
            extra,
            envs: [const { OnceLock::new() }; MAX_CLUSTERS],
            // Handed out from the back: the first extra cluster first.
            free_extra: Mutex::new((1..=extra).rev().collect()),
            extra_permits: Arc::new(tokio::sync::Semaphore::new(extra)),
            booting: Arc::default(),
            footprints: std::array::from_fn(|_| Arc::default()),
        })
    }

    /// A run on the local target with `setup` and no extra clusters.
    pub fn local(setup: Setup) -> Arc<Self> {
        Self::new(setup, Arc::new(Local::default()), 0)
    }

    /// What this run's environments install.
    pub fn setup(&self) -> Setup {
        self.setup
    }

    /// The release this run's environments run the engine as.
    pub fn release(&self) -> Release {
        self.setup.release
    }

    /// How this run brings its environments up.
    pub fn launch(&self) -> &dyn Launch {
        self.launch.as_ref()
    }

    /// How many extra local clusters the cluster-wide scenarios have (0: they share the one).
    pub fn extra_clusters(&self) -> usize {
        self.extra
    }

    /// Environment `index` (0: the shared one; else an extra cluster), brought up on first use.
    pub async fn at(self: &Arc<Self>, index: usize) -> Result<Arc<Env>> {
        let what = if index == 0 {
            "the test environment (shared by this run)".to_owned()
        } else {
            format!("extra cluster {index} (for cluster-wide scenarios)")
        };
        if index >= MAX_CLUSTERS {
            return Err(Error::Step {
                step: format!("bring up {what}"),
                detail: format!("at most {MAX_CLUSTERS} environments"),
            });
        }
        let run = Arc::clone(self);
        let result = tokio::task::spawn_blocking(move || {
            let _booting = Booting::begin(&run.booting);
            run.envs[index]
                .get_or_init(|| {
                    run.launch
                        .start(&run.setup)
                        .map(|target| Arc::new(Env::new(target, run.setup.release)))
                        .map_err(|e| e.to_string())
                })
                .clone()
        })
        .await
        .map_err(|e| Error::Step {
            step: format!("bring up {what}"),
            detail: e.to_string(),
        })?;
        result.map_err(|detail| Error::Step {
            step: format!("bring up {what}"),
            detail,
        })
    }

    /// The environment shared by the run's scenarios, brought up on first use.
    pub async fn shared(self: &Arc<Self>) -> Result<Arc<Env>> {
        self.at(0).await
    }

    /// Brings up the environments a run needs: the shared one when `confined` scenarios will
    /// run (or there are no extra clusters), every extra cluster when `wide` ones will. Only the
    /// first is waited for and returned: the others come up in the background, one after
    /// another (kwokctl's creates take turns anyway, see `LocalCluster`), so scenarios start on
    /// the first ~7 s after it is up instead of after all of them (~30 s for four). A
    /// cluster-wide scenario that holds an extra cluster still booting waits for it before its
    /// time starts ([`crate::catalogue::hold_cluster_for`]); [`Run::destroy_started`] waits for
    /// those still booting.
    pub async fn bring_up_all(self: &Arc<Self>, confined: bool, wide: bool) -> Result<Arc<Env>> {
        let extras = if wide { self.extra } else { 0 };
        let first = if confined || extras == 0 { 0 } else { 1 };
        let env = self.at(first).await?;
        // The first extra cluster handed out is the first up (`hold_extra_cluster` hands out
        // index 1 first). A failed bring-up is kept in its cell: the scenarios that hold that
        // cluster fail, naming it. The whole queue counts as booting from here, so a teardown
        // between two of its bring-ups still waits for the next one.
        let booting = Booting::begin(&self.booting);
        let run = Arc::clone(self);
        tokio::spawn(async move {
            for index in first + 1..=extras {
                let _ = run.at(index).await;
            }
            drop(booting);
        });
        Ok(env)
    }

    /// Waits for an extra cluster no other cluster-wide scenario holds; `None` when there are
    /// none ([`Run::extra_clusters`] is 0).
    pub async fn hold_extra_cluster(self: &Arc<Self>) -> Option<ExtraCluster> {
        if self.extra == 0 {
            return None;
        }
        let permit = Arc::clone(&self.extra_permits).acquire_owned().await.ok()?;
        let index = self.free_extra.lock().ok()?.pop()?;
        Some(ExtraCluster {
            index,
            run: Arc::clone(self),
            _permit: permit,
        })
    }

    /// Lends the shared environment to the cluster-wide scenarios as one more extra cluster,
    /// once nothing confined is left to run on it (`certify` calls it when its confined batch
    /// ended): the cluster-wide ones then finish on one more cluster than the extra ones. First
    /// it waits (up to a minute) for the confined scenarios' leftovers to go: no namespace still
    /// terminating and no pod left in the cluster's CCI namespace, so a cluster-wide scenario
    /// starts on a quiet cluster as on an extra one (UN-04 counts this cluster's CCI pods around
    /// a purge). Returns whether it was lent: not without extra clusters, when the shared
    /// environment was never brought up, or when it did not quiesce.
    pub async fn lend_shared_environment(&self) -> bool {
        if self.extra == 0 {
            return false;
        }
        let Some(Ok(env)) = self.envs[0].get() else {
            return false;
        };
        if let Err(e) = env.quiesce().await {
            eprintln!("burstcert: the shared cluster is not lent to cluster-wide scenarios: {e}");
            return false;
        }
        let Ok(mut free) = self.free_extra.lock() else {
            return false;
        };
        free.push(0);
        self.extra_permits.add_permits(1);
        true
    }

    /// The lock scenarios hold on environment `index` (see [`crate::catalogue`]'s footprints).
    pub(crate) fn footprint(&self, index: usize) -> Arc<tokio::sync::RwLock<()>> {
        Arc::clone(&self.footprints[index.min(MAX_CLUSTERS - 1)])
    }

    /// The environments this run brought up (the shared one first).
    pub fn started(&self) -> Vec<Arc<Env>> {
        self.envs
            .iter()
            .filter_map(|cell| cell.get().and_then(|r| r.as_ref().ok()).cloned())
            .collect()
    }

    /// Tears down every environment this run brought up, all at once (each stops its add-on's
    /// processes and deletes its cluster: seconds each, mostly waiting), after waiting for those
    /// still coming up (see [`Run::bring_up_all`]); the first error, if any.
    pub fn destroy_started(&self) -> Result<()> {
        self.booting.wait_none(BOOTING_PATIENCE);
        let envs = self.started();
        std::thread::scope(|scope| {
            let running: Vec<_> = envs
                .iter()
                .map(|env| scope.spawn(move || env.destroy()))
                .collect();
            running
                .into_iter()
                .map(|t| {
                    t.join().unwrap_or_else(|_| {
                        Err(Error::Step {
                            step: "tear down an environment".into(),
                            detail: "its teardown panicked".into(),
                        })
                    })
                })
                .fold(Ok(()), Result::and)
        })
    }
}

/// The extra clusters `certify --jobs N` (N > 1) and the suites give the cluster-wide
/// scenarios: one per core and one more, at most [`MAX_EXTRA_CLUSTERS`]. The cluster-wide
/// scenarios add up to about 5 minutes on one cluster and mostly wait (gc timeouts, restarts,
/// locks); an idle control plane costs little, so on 2 cores three extra clusters finish them
/// sooner than two.
pub fn default_extra_clusters() -> usize {
    std::thread::available_parallelism()
        .map_or(1, |n| n.get() + 1)
        .clamp(1, MAX_EXTRA_CLUSTERS)
}

/// How many extra clusters to give a run of `wide` cluster-wide and `confined` confined
/// scenarios (for [`Run::new`]): none unless something runs beside a cluster-wide one, never
/// more than there are cluster-wide ones.
pub fn extra_clusters_for(wide: usize, confined: usize) -> usize {
    if wide > 1 || (wide == 1 && confined > 0) {
        default_extra_clusters().min(wide)
    } else {
        0
    }
}

/// An extra cluster held by one cluster-wide scenario ([`Run::hold_extra_cluster`]); handed
/// back to its run when dropped.
#[derive(Debug)]
pub struct ExtraCluster {
    index: usize,
    run: Arc<Run>,
    _permit: tokio::sync::OwnedSemaphorePermit,
}

impl ExtraCluster {
    /// Its index among the run's environments (1 and up; 0 once the shared one is lent, see
    /// [`Run::lend_shared_environment`]).
    pub fn index(&self) -> usize {
        self.index
    }
}

impl Drop for ExtraCluster {
    fn drop(&mut self) {
        if let Ok(mut free) = self.run.free_extra.lock() {
            free.push(self.index);
        }
    }
}

/// The longest [`Run::destroy_started`] waits for bring-ups under way (one takes ~10 s;
/// kwokctl's own `--wait` is 90 s).
const BOOTING_PATIENCE: Duration = Duration::from_secs(120);

/// How many bring-ups of a run are under way ([`Booting`]), and a signal when one ends.
#[derive(Default)]
struct BootCount(Mutex<usize>, std::sync::Condvar);

impl BootCount {
    /// Waits until no bring-up is under way, at most `patience`.
    fn wait_none(&self, patience: Duration) {
        let Ok(n) = self.0.lock() else {
            return;
        };
        let _ = self.1.wait_timeout_while(n, patience, |n| *n > 0);
    }
}

/// One bring-up under way, counted in its run's [`BootCount`] until dropped (also when it
/// panics), so that a teardown does not miss a cluster that was still coming up (not yet among
/// [`Run::started`]).
struct Booting(Arc<BootCount>);

impl Booting {
    fn begin(count: &Arc<BootCount>) -> Self {
        if let Ok(mut n) = count.0.lock() {
            *n += 1;
        }
        Booting(Arc::clone(count))
    }
}

impl Drop for Booting {
    fn drop(&mut self) {
        if let Ok(mut n) = self.0.0.lock() {
            *n = n.saturating_sub(1);
        }
        self.0.1.notify_all();
    }
}

/// The AK/SK pair (`AK:SK`) the mock accepts for the tenant of `token` besides the token:
/// derived from it, so a scenario can sign as the tenant (CCI-02) without a secret of its own.
pub fn aksk_pair(token: &str) -> String {
    use sha2::Digest as _;
    let digest = sha2::Sha256::digest(format!("burstcert aksk\n{token}").as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("BURSTCERT{}:{}", hex[..12].to_ascii_uppercase(), &hex[12..])
}

impl Env {
    /// The environment of `target`, whose add-on runs `release`.
    pub fn new(target: Box<dyn Target>, release: Release) -> Self {
        Self {
            release,
            cci: target.cci().clone(),
            cluster_id: target.cluster_id().to_owned(),
            cci_namespace: cci_api::namespace_for_cluster(target.cluster_id()),
            logs: target.logs().to_owned(),
            target,
        }
    }

    /// The environment of an existing cluster whose add-on runs `release`: nothing is started,
    /// nothing local is offered.
    pub fn attach(existing: Existing, release: Release) -> Self {
        Self::new(Box::new(ExistingTarget::attach(existing)), release)
    }

    /// Brings everything up (blocking) on the local target, installing `setup`.
    pub fn start(setup: &Setup) -> Result<Self> {
        Self::start_with(setup, None)
    }

    /// Brings everything up (blocking) on a local cluster whose controller manager and scheduler
    /// call the API server at `client_rates` (`None`: their defaults, as [`start`](Self::start)).
    pub fn start_with(setup: &Setup, client_rates: Option<ClientRates>) -> Result<Self> {
        Self::launch(
            &Local {
                client_rates,
                ..Local::default()
            },
            setup,
        )
    }

    /// Brings a target of `launch` up (blocking), installing `setup`. Scenarios get theirs from
    /// a [`Run`].
    pub fn launch(launch: &dyn Launch, setup: &Setup) -> Result<Self> {
        Ok(Self::new(launch.start(setup)?, setup.release))
    }

    /// The add-on release this environment's engine runs as (on an existing cluster: the one
    /// found installed).
    pub fn release(&self) -> Release {
        self.release
    }

    /// The target this environment runs on, to ask for its capabilities.
    pub fn target(&self) -> &dyn Target {
        self.target.as_ref()
    }

    /// The add-on's virtual node: the node scenarios expect burst pods on.
    pub fn virtual_node(&self) -> &str {
        self.target.virtual_node()
    }

    /// What this environment offers scenarios beyond the cluster's API and CCI's public API
    /// (what its target's capabilities answer, see [`Need::offered_by`]).
    pub fn offers(&self) -> Vec<Need> {
        Need::offered(self.target.as_ref())
    }

    /// The mock's admin side, when this environment has the mock.
    pub fn mock_admin(&self) -> Option<&MockAdmin> {
        self.target.mock_admin()
    }

    /// The error for a capability this environment's target does not offer.
    fn not_offered(&self, need: Need) -> Error {
        Error::NotOffered {
            need,
            target: self.target.kind(),
        }
    }

    /// The installer, or an error naming [`Need::Installer`].
    fn installer(&self) -> Result<&Installer> {
        self.target
            .installer()
            .ok_or_else(|| self.not_offered(Need::Installer))
    }

    /// The installer for an accessor that answers no `Result`: scenarios that call it declare
    /// [`Need::Installer`], so a target that lacks it never runs them.
    fn declared_installer(&self) -> &Installer {
        self.installer().unwrap_or_else(|e| {
            panic!("{e}; the scenario's catalogue entry must declare Need::Installer")
        })
    }

    /// The `bursting-engine` binary the target serves as the add-on's image, if it is a file
    /// here (the local target).
    pub fn engine_binary(&self) -> Option<&Path> {
        self.target.engine_process().and_then(|p| p.binary())
    }

    /// Where the add-on runs and how its webhooks are addressed (scenarios that call this need
    /// [`Need::Installer`]).
    pub fn addon_target(&self) -> &render::Target {
        &self.declared_installer().rendering
    }

    /// The parameters the environment installs the add-on with (release, interconnect on, the
    /// harness's registry, the mock as CCI, the shortened node lock; scenarios that call this
    /// need [`Need::Installer`]).
    pub fn addon_defaults(&self) -> &InstallParams {
        &self.declared_installer().defaults
    }

    /// Puts the add-on back as the environment installed it ([`Installer::restore`]).
    pub async fn restore_addon(&self) -> Result<()> {
        let installer = self.installer()?;
        installer.restore(&self.client().await?).await
    }

    /// A new kube client for this environment (clients belong to the runtime that made them,
    /// and every test has its own runtime).
    pub async fn client(&self) -> Result<kube::Client> {
        client_for(self.target.kubeconfig()).await
    }

    /// The admin kubeconfig.
    pub fn kubeconfig(&self) -> &Path {
        self.target.kubeconfig()
    }

    /// The cluster's name.
    pub fn cluster_name(&self) -> &str {
        self.target.name()
    }

    /// The last lines of the mock CCI's log (its container's, on a kind cluster), for diagnoses.
    pub fn mock_log_tail(&self, lines: usize) -> String {
        self.target.mock_log_tail(lines)
    }

    /// The last lines of the webhook's log (its newest pod on the host node), for diagnoses.
    pub fn webhook_log_tail(&self, lines: usize) -> String {
        self.component_log_tail(render::WEBHOOK, "webhook", lines)
    }

    /// The last lines of the engine's log (the virtual kubelet's newest pod), for diagnoses.
    pub fn engine_log_tail(&self, lines: usize) -> String {
        self.component_log_tail(render::VIRTUAL_KUBELET, "virtual-kubelet", lines)
    }

    /// Every container log file the add-on's pods (virtual kubelet, webhook, proxy, …) wrote
    /// on this machine, of running pods and of pods already gone. Empty where the target's
    /// logs are not files here (read them with [`Env::addon_log_texts`]).
    pub fn addon_logs(&self) -> Vec<PathBuf> {
        match self.target.addon_logs() {
            Some(AddonLogs::Files(files)) => files.all(),
            Some(AddonLogs::Api) | None => Vec::new(),
        }
    }

    /// The text of every log of the add-on's containers, named: the files on this machine
    /// (see [`Env::addon_logs`]), or each container's current and previous log read through
    /// the API. An error naming [`Need::AddonLogs`] where the target offers neither.
    pub async fn addon_log_texts(&self) -> Result<Vec<(String, String)>> {
        match self.target.addon_logs() {
            None => Err(self.not_offered(Need::AddonLogs)),
            Some(AddonLogs::Files(files)) => Ok(files
                .all()
                .into_iter()
                .filter_map(|path| {
                    let text = std::fs::read(&path).ok()?;
                    Some((
                        path.display().to_string(),
                        String::from_utf8_lossy(&text).into_owned(),
                    ))
                })
                .collect()),
            Some(AddonLogs::Api) => self.addon_log_texts_through_the_api().await,
        }
    }

    async fn addon_log_texts_through_the_api(&self) -> Result<Vec<(String, String)>> {
        let pods: Api<k8s_openapi::api::core::v1::Pod> =
            Api::namespaced(self.client().await?, render::NAMESPACE);
        let mut texts = Vec::new();
        for pod in &addon_pods(&pods).await? {
            let name = pod.metadata.name.clone().unwrap_or_default();
            let statuses = pod
                .status
                .as_ref()
                .and_then(|s| s.container_statuses.clone())
                .unwrap_or_default();
            for status in statuses {
                let mut previous = vec![false];
                if status.restart_count > 0 {
                    previous.push(true);
                }
                for previous in previous {
                    let params = kube::api::LogParams {
                        container: Some(status.name.clone()),
                        previous,
                        ..kube::api::LogParams::default()
                    };
                    // A container that has not started has no log yet: nothing to read.
                    if let Ok(text) = pods.logs(&name, &params).await {
                        let which = if previous { " (previous)" } else { "" };
                        texts.push((format!("{name}/{}{which}", status.name), text));
                    }
                }
            }
        }
        Ok(texts)
    }

    fn component_log_tail(&self, deployment: &str, container: &str, lines: usize) -> String {
        let Some(AddonLogs::Files(files)) = self.target.addon_logs() else {
            return format!(
                "(the {deployment} log is on the cluster: kubectl logs -n {} deploy/{deployment})",
                render::NAMESPACE
            );
        };
        match files.newest(deployment, container) {
            Some(path) => tail_file(&path, lines),
            None => format!("(no log of {deployment} on the host node yet)"),
        }
    }

    /// Kills the engine's process with SIGKILL, as a crash would; whatever runs its pod
    /// restarts it under the pod's restart policy, as a kubelet would. Returns the restart
    /// count before the kill, for [`Env::wait_engine_restarted`]. An error naming
    /// [`Need::EngineProcess`] where the target does not offer it.
    pub async fn kill_engine(&self) -> Result<i32> {
        let engine = self
            .target
            .engine_process()
            .ok_or_else(|| self.not_offered(Need::EngineProcess))?;
        let before = self.engine_restarts().await?;
        if engine.kill()? == 0 {
            return Err(Error::Step {
                step: "kill the engine".into(),
                detail: "no virtual-kubelet process was running".into(),
            });
        }
        Ok(before)
    }

    /// Pids of the running engine processes; empty where the target does not control them.
    pub fn engine_pids(&self) -> Vec<u32> {
        self.target
            .engine_process()
            .map(|p| p.pids())
            .unwrap_or_default()
    }

    /// The virtual kubelet container's restart count (the highest of its pods).
    async fn engine_restarts(&self) -> Result<i32> {
        let client = self.client().await?;
        let pods: Api<k8s_openapi::api::core::v1::Pod> = Api::namespaced(client, render::NAMESPACE);
        let list = pods
            .list(
                &kube::api::ListParams::default()
                    .labels("app.kubernetes.io/component=virtual-kubelet"),
            )
            .await
            .map_err(|source| Error::Kube {
                context: "list the virtual kubelet's pods".into(),
                source,
            })?;
        Ok(list
            .items
            .iter()
            .flat_map(|p| {
                p.status
                    .iter()
                    .flat_map(|s| s.container_statuses.iter().flatten())
            })
            .map(|c| c.restart_count)
            .max()
            .unwrap_or(0))
    }

    /// Waits until the virtual kubelet was restarted after [`Env::kill_engine`] and runs.
    pub async fn wait_engine_restarted(&self, before: i32) -> Result<()> {
        wait::until(
            "the host node to restart the killed virtual kubelet",
            Duration::from_secs(60),
            || async { Ok((self.engine_restarts().await? > before).then_some(())) },
            || async { self.engine_log_tail(20) },
        )
        .await
    }

    /// Restarts the cluster's kube-apiserver (R-03; see
    /// [`crate::target::ControlPlane::restart_api_server`]).
    /// Returns once the old process is gone and the new one started; the caller waits for the
    /// API to answer. An error naming [`Need::ControlPlane`] where the target does not offer it.
    pub fn restart_api_server(&self) -> Result<()> {
        self.target
            .control_plane()
            .ok_or_else(|| self.not_offered(Need::ControlPlane))?
            .restart_api_server()
    }

    /// Waits until what scenarios left behind has gone: no namespace terminating, no pod in
    /// the cluster's CCI namespace.
    async fn quiesce(&self) -> Result<()> {
        let client = self.client().await?;
        let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client);
        wait::until(
            "the scenarios' namespaces and CCI pods to be gone",
            Duration::from_secs(60),
            || async {
                let terminating = namespaces
                    .list(&Default::default())
                    .await
                    .map_err(|source| Error::Kube {
                        context: "list namespaces".into(),
                        source,
                    })?
                    .items
                    .iter()
                    .filter(|n| n.metadata.deletion_timestamp.is_some())
                    .count();
                let cci_pods = self.cci.pods(&self.cci_namespace).await?.len();
                Ok((terminating == 0 && cci_pods == 0).then_some(()))
            },
            || async { format!("CCI namespace {}", self.cci_namespace) },
        )
        .await
    }

    /// Tears the target down now (tests normally leave that to process exit); nothing on a
    /// cluster the harness did not make.
    pub fn destroy(&self) -> Result<()> {
        self.target.destroy()
    }
}

/// The parameters an environment installs the add-on with: `setup`'s release, interconnect
/// on, the harness's registry, the mock as CCI with the tenant's token or its AK/SK pair
/// (`setup`'s [`AddonAuth`]), the shortened node lock.
pub(crate) fn default_params(
    setup: &Setup,
    cluster_id: &str,
    cluster_name: &str,
    cci_endpoint: &str,
    token: &str,
) -> Result<InstallParams> {
    Ok(InstallParams {
        release: setup.release,
        spec: Spec::Single,
        interconnect: true,
        swr_addr: REGISTRY.into(),
        swr_user: REGISTRY_USER.into(),
        cluster_id: cluster_id.into(),
        cluster_name: cluster_name.into(),
        network_mode: NetworkMode::Vpc,
        cluster_type: ClusterType::Standard,
        vpc_id: "vpc-local".into(),
        subnet_id: SUBNET_ID.into(),
        subnet_cidr: SUBNET_CIDR.into(),
        project_id: "project-local".into(),
        security_group_id: "sg-local".into(),
        domain_id: "domain-local".into(),
        cci_endpoint: cci_endpoint.into(),
        cci_token: match setup.addon_auth {
            AddonAuth::Token => token.into(),
            AddonAuth::AkSk => String::new(),
        },
        cci_ca: None,
        lock_duration_secs: Some(lock_seconds()),
        pending_lock_threshold_secs: Some(PENDING_LOCK_SECONDS),
        check_resource_pressure: None,
        pod_disruption_budget: None,
        cci_aksk: match setup.addon_auth {
            AddonAuth::Token => None,
            AddonAuth::AkSk => Some(aksk_pair(token)),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn existing() -> Env {
        Env::attach(
            Existing {
                kubeconfig: "/nonexistent/kubeconfig".into(),
                cci: CciClient::new("https://127.0.0.1:1", "token", None).unwrap(),
                cluster_id: "c1".into(),
                virtual_node: "virtual-kubelet".into(),
            },
            Release::new(1, 5, 18),
        )
    }

    fn not_offered(result: Result<impl std::fmt::Debug>) -> Need {
        match result {
            Err(Error::NotOffered { need, target }) => {
                assert_eq!(target, "existing");
                need
            }
            other => panic!("expected NotOffered, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn asked_for_what_its_target_lacks_an_environment_answers_an_error_naming_the_need() {
        let env = existing();
        assert!(env.offers().is_empty());
        assert_eq!(env.cci_namespace, cci_api::namespace_for_cluster("c1"));
        assert_eq!(env.virtual_node(), "virtual-kubelet");
        assert_eq!(not_offered(env.restart_api_server()), Need::ControlPlane);
        assert_eq!(not_offered(env.kill_engine().await), Need::EngineProcess);
        assert_eq!(not_offered(env.restore_addon().await), Need::Installer);
        assert_eq!(not_offered(env.addon_log_texts().await), Need::AddonLogs);
        let message = env.restart_api_server().unwrap_err().to_string();
        assert!(message.contains("restarts the API server"), "{message}");
        assert!(env.engine_pids().is_empty() && env.addon_logs().is_empty());
        assert!(env.mock_admin().is_none() && env.engine_binary().is_none());
        assert!(env.destroy().is_ok(), "nothing of the user's is torn down");
    }

    #[test]
    #[should_panic(expected = "Need::Installer")]
    fn the_installers_parameters_are_only_asked_by_scenarios_that_declare_it() {
        let _ = existing().addon_defaults();
    }

    #[tokio::test]
    async fn two_runs_in_one_process_share_nothing_and_extra_clusters_go_back_to_their_run() {
        let old = Run::new(
            Setup::at(Release::new(1, 3, 24)),
            Arc::new(Local::default()),
            2,
        );
        let new = Run::local(Setup::default());
        assert_eq!(old.release(), Release::new(1, 3, 24));
        assert_eq!(
            new.release().to_string(),
            crate::addon::params::DEFAULT_RELEASE
        );
        assert_eq!((old.extra_clusters(), new.extra_clusters()), (2, 0));
        assert!(new.hold_extra_cluster().await.is_none(), "none to hold");
        let first = old.hold_extra_cluster().await.expect("two to hold");
        let second = old.hold_extra_cluster().await.expect("two to hold");
        assert_eq!(
            (first.index(), second.index()),
            (1, 2),
            "the first one first"
        );
        drop(first);
        let again = old.hold_extra_cluster().await.expect("one was given back");
        assert_eq!(again.index(), 1);
        assert!(
            old.started().is_empty() && new.started().is_empty(),
            "nothing asked, nothing up"
        );
        // A cluster the harness is handed is one: no extras, whatever is asked.
        let handed = existing();
        let existing = Run::new(
            Setup::default(),
            Arc::new(Existing {
                kubeconfig: handed.kubeconfig().to_owned(),
                cci: handed.cci.clone(),
                cluster_id: handed.cluster_id.clone(),
                virtual_node: handed.virtual_node().to_owned(),
            }),
            3,
        );
        assert_eq!(existing.extra_clusters(), 0);
        assert!(existing.hold_extra_cluster().await.is_none());
    }

    #[test]
    fn extra_clusters_only_when_something_runs_beside_a_cluster_wide_scenario() {
        let most = default_extra_clusters();
        assert!((1..=MAX_EXTRA_CLUSTERS).contains(&most));
        assert_eq!(extra_clusters_for(0, 30), 0, "nothing cluster-wide");
        assert_eq!(
            extra_clusters_for(1, 0),
            0,
            "one alone: the shared cluster will do"
        );
        assert_eq!(
            extra_clusters_for(1, 5),
            1,
            "never more than the cluster-wide ones"
        );
        assert_eq!(extra_clusters_for(4, 0), most.min(4));
        assert_eq!(extra_clusters_for(22, 27), most);
    }
}
