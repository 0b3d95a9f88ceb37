//! The shared test environment: one local cluster, one mock CCI, the host node and the add-on
//! installed from its manifests, per test binary.
//!
//! Bringing up a control plane costs seconds; the full suite has about a hundred scenarios. So
//! each test binary (one per scenario family) brings one environment up on first use and shares
//! it; each scenario gets its own namespace ([`crate::scenario`]). The engine is not started by
//! the harness: the add-on is installed the way the cloud installs it ([`crate::addon`]), and its
//! virtual kubelet, webhook and proxy run as pods on the host node ([`vk_hostnode`]), as local
//! processes. Every process is guarded ([`vk_hostnode::process`]): when the test binary exits, passes,
//! fails or panics, the add-on's processes, the mock and the whole control plane are stopped.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use kube::api::Api;

use burst_rules::release::Release;

use crate::addon::lifecycle::{self, Status};
use crate::addon::params::{ClusterType, ENGINE_IMAGE, InstallParams, NetworkMode, Spec};
use crate::addon::render::{self, Target};
use crate::cci::CciClient;
use crate::cluster::local::{ClientRates, LocalCluster, LocalOptions};
use crate::cluster::nodes::{NodeShape, create_nodes};
use crate::cluster::{ClusterProvider, client_for};
use crate::error::{Error, Result};
use crate::mock_admin::MockAdmin;
use crate::needs::Need;
use crate::progress::Progress;
use crate::tools::Tools;
use crate::wait;
use vk_hostnode::process::{Guarded, tail_file};
use vk_hostnode::{self as hostnode, HostNode, HostNodeOptions, Registry};

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

/// The mock CCI's settings in every environment the harness starts (locally and on kind).
///
/// - `--timeout-ms 5000`: below the engine's 30 s request timeout, so a `Timeout` fault (R-02)
///   costs the engine seconds per try, not half a minute; the answer is lost either way.
/// - `--compute-time-ms 1000`: the seed's `perl … bpi(2000)` (WL-04's Job, the only container
///   that runs it) takes a second, about what it takes on one vCPU. WL-04 asserts the seed's
///   counts (50 completions, at most 5 at once, the 10 s deadline), not how long a digit of pi
///   takes; 3 s per pod made it the longest scenario of a run (10 waves of 5).
/// - `--subnet`: the add-on's subnet ([`SUBNET_ID`], [`SUBNET_CIDR`]), so burst pods get
///   addresses from it (CCI-01).
const MOCK_TUNING: [&str; 6] = [
    "--timeout-ms",
    "5000",
    "--compute-time-ms",
    "1000",
    "--subnet",
    // SUBNET_ID=SUBNET_CIDR (a test holds them equal).
    "subnet-local=192.168.0.0/16",
];

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
/// reached through the tenant's public API. On the local target the harness made all of it
/// (cluster, mock CCI, host node, the add-on) and also holds what only it can do ([`Local`]);
/// on an existing cluster it holds only what a user of that cluster has.
#[derive(Debug)]
pub struct Env {
    kubeconfig: PathBuf,
    cluster_name: String,
    /// CCI's public API, as the tenant the add-on uses.
    pub cci: CciClient,
    /// The cluster id the add-on was installed with.
    pub cluster_id: String,
    /// The CCI namespace of this cluster, `bursting-{cluster_id}`.
    pub cci_namespace: String,
    /// The add-on's virtual node: [`VIRTUAL_NODE`] where the harness installed the add-on, the
    /// one found (or named) on an existing cluster.
    virtual_node: String,
    /// Where the add-on's, the host node's and the mock's logs go (local target).
    pub logs: PathBuf,
    /// What the harness made and controls; `None` on an existing cluster.
    local: Option<Local>,
    /// What the harness made on a kind cluster; `None` elsewhere.
    kind: Option<KindParts>,
}

/// What the harness controls on a kind cluster it made: the cluster, the mock CCI's container,
/// and the installer's target (production rendering) and defaults.
#[derive(Debug)]
struct KindParts {
    cluster: Mutex<crate::kind::KindCluster>,
    mock: crate::kind::Container,
    mock_admin: MockAdmin,
    target: Target,
    defaults: InstallParams,
}

/// What a kind cluster offers beyond the cluster's and CCI's public APIs: the mock's admin side,
/// the installer and the add-on's logs (read through the API). Not the add-on's processes, the
/// control plane's or kwok nodes: those run in kind's containers.
pub const KIND_OFFERS: &[Need] = &[Need::MockAdmin, Need::Installer, Need::AddonLogs];

/// What the harness controls on the environment it brought up itself.
#[derive(Debug)]
struct Local {
    cluster: Mutex<LocalCluster>,
    /// The mock's admin side (faults, peak counts).
    mock_admin: MockAdmin,
    /// The `bursting-engine` binary the host node serves as the add-on's image.
    engine_binary: PathBuf,
    host: Mutex<HostNode>,
    target: Target,
    defaults: InstallParams,
    /// The API server, once [`Env::restart_api_server`] restarted it (kwokctl started the first).
    api_server: Mutex<Option<Guarded>>,
    _mock_process: Guarded,
    /// Held (locked) while the environment lives: its host node's address block.
    _address_block: std::fs::File,
}

/// An existing cluster with the add-on installed, and the CCI endpoint it bursts to: all a
/// user of that cluster has.
#[derive(Clone, Debug)]
pub struct Existing {
    /// Its kubeconfig.
    pub kubeconfig: PathBuf,
    /// The public CCI API and the tenant's credential.
    pub cci: CciClient,
    /// The cluster id the add-on was installed with.
    pub cluster_id: String,
    /// The add-on's virtual node (`bursting-node`, `virtual-kubelet`, or as found).
    pub virtual_node: String,
}

/// The most local environments one process brings up: the shared one and
/// [`MAX_EXTRA_CLUSTERS`] for cluster-wide scenarios.
pub const MAX_CLUSTERS: usize = 1 + MAX_EXTRA_CLUSTERS;
/// The most extra local clusters for cluster-wide scenarios ([`configure_extra_clusters`]).
pub const MAX_EXTRA_CLUSTERS: usize = 3;

/// The environments of this process: `[0]` the shared one, the others the extra local clusters
/// of the cluster-wide scenarios ([`configure_extra_clusters`]); each brought up on first use.
static ENVS: [OnceLock<std::result::Result<Env, String>>; MAX_CLUSTERS] =
    [const { OnceLock::new() }; MAX_CLUSTERS];
/// Set by [`configure_extra_clusters`].
static EXTRA: OnceLock<usize> = OnceLock::new();
/// The extra clusters no cluster-wide scenario holds now, and permits for them.
static FREE_EXTRA: Mutex<Vec<usize>> = Mutex::new(Vec::new());
static EXTRA_PERMITS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(0);
static RELEASE: OnceLock<String> = OnceLock::new();
/// Set by [`configure_existing`]: the shared environment is that cluster, not a local one.
static EXISTING: OnceLock<Existing> = OnceLock::new();
/// Set by [`configure_addon_auth`].
static ADDON_AUTH: OnceLock<AddonAuth> = OnceLock::new();
/// Set by [`configure_kind`]: the shared environment is a kind cluster.
static KIND: OnceLock<()> = OnceLock::new();

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

/// Sets how the add-on of every environment of this process authenticates (before the first
/// starts; default [`AddonAuth::Token`]). Returns false if it was already set differently.
pub fn configure_addon_auth(auth: AddonAuth) -> bool {
    *ADDON_AUTH.get_or_init(|| auth) == auth
}

/// How the add-on of this process's environments authenticates ([`configure_addon_auth`]).
pub fn addon_auth() -> AddonAuth {
    ADDON_AUTH.get().copied().unwrap_or_default()
}

/// Makes the shared environment of this process a kind cluster (before it is first used).
pub fn configure_kind() -> bool {
    KIND.set(()).is_ok()
}

/// Makes the shared environment of this process the existing cluster `existing` (before it is
/// first used). Returns false if it was already configured.
pub fn configure_existing(existing: Existing) -> bool {
    EXISTING.set(existing).is_ok()
}

/// Sets the add-on release the shared environment runs the engine as (before it starts;
/// default [`DEFAULT_RELEASE`](crate::addon::params::DEFAULT_RELEASE)). Returns false if it was already set differently.
pub fn configure_release(release: &str) -> bool {
    RELEASE.get_or_init(|| release.to_owned()) == release
}

/// The release the shared environment runs (or will run) the engine as.
pub fn release() -> &'static str {
    RELEASE.get_or_init(|| crate::addon::params::DEFAULT_RELEASE.to_owned())
}

/// Gives the cluster-wide scenarios ([`crate::catalogue::Entry::cluster_wide`]: install,
/// uninstall, upgrade, lock, restarts…) `n` local clusters of their own (at most
/// [`MAX_EXTRA_CLUSTERS`]; before any environment is used): each runs there alone, and up to `n`
/// of them at once, beside the confined scenarios on the shared environment instead of
/// stopping them. Only a local cluster has extras (kind and an existing cluster are one
/// cluster). Returns false if it was already set differently.
pub fn configure_extra_clusters(n: usize) -> bool {
    let n = n.min(MAX_EXTRA_CLUSTERS);
    let set = *EXTRA.get_or_init(|| {
        if let Ok(mut free) = FREE_EXTRA.lock() {
            // Handed out from the back: the first extra cluster first.
            free.extend((1..=n).rev());
        }
        EXTRA_PERMITS.add_permits(n);
        n
    });
    set == n
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
/// scenarios (for [`configure_extra_clusters`]): none unless something runs beside a
/// cluster-wide one, never more than there are cluster-wide ones.
pub fn extra_clusters_for(wide: usize, confined: usize) -> usize {
    if wide > 1 || (wide == 1 && confined > 0) {
        default_extra_clusters().min(wide)
    } else {
        0
    }
}

/// How many extra local clusters the cluster-wide scenarios have (0: they share the one).
pub fn extra_clusters() -> usize {
    if EXISTING.get().is_some() || KIND.get().is_some() {
        return 0;
    }
    EXTRA.get().copied().unwrap_or(0)
}

/// An extra cluster held by one cluster-wide scenario ([`hold_extra_cluster`]).
#[derive(Debug)]
pub struct ExtraCluster {
    index: usize,
    _permit: tokio::sync::SemaphorePermit<'static>,
}

impl ExtraCluster {
    /// Its index among the environments (1 and up; 0 once the shared one is lent, see
    /// [`lend_shared_environment`]).
    pub fn index(&self) -> usize {
        self.index
    }
}

impl Drop for ExtraCluster {
    fn drop(&mut self) {
        if let Ok(mut free) = FREE_EXTRA.lock() {
            free.push(self.index);
        }
    }
}

/// Lends the shared environment to the cluster-wide scenarios as one more extra cluster, once
/// nothing confined is left to run on it (`certify` calls it when its confined batch ended):
/// the cluster-wide ones then finish on one more cluster than the extra ones. First it waits (up to a
/// minute) for the confined scenarios' leftovers to go: no namespace still terminating and no
/// pod left in the cluster's CCI namespace, so a cluster-wide scenario starts on a quiet
/// cluster as on an extra one (UN-04 counts this cluster's CCI pods around a purge).
/// Returns whether it was lent: not without extra clusters, when the shared environment was
/// never brought up, or when it did not quiesce.
pub async fn lend_shared_environment() -> bool {
    if extra_clusters() == 0 {
        return false;
    }
    let Some(Ok(env)) = ENVS[0].get() else {
        return false;
    };
    if let Err(e) = env.quiesce().await {
        eprintln!("burstcert: the shared cluster is not lent to cluster-wide scenarios: {e}");
        return false;
    }
    let Ok(mut free) = FREE_EXTRA.lock() else {
        return false;
    };
    free.push(0);
    EXTRA_PERMITS.add_permits(1);
    true
}

/// Waits for an extra cluster no other cluster-wide scenario holds; `None` when there are none
/// ([`extra_clusters`] is 0).
pub async fn hold_extra_cluster() -> Option<ExtraCluster> {
    if extra_clusters() == 0 {
        return None;
    }
    let permit = EXTRA_PERMITS.acquire().await.ok()?;
    let index = FREE_EXTRA.lock().ok()?.pop()?;
    Some(ExtraCluster {
        index,
        _permit: permit,
    })
}

/// Environment `index` (0: the shared one; else an extra cluster), brought up on first use.
pub async fn at(index: usize) -> Result<&'static Env> {
    let what = if index == 0 {
        "the test environment (shared by this test binary)".to_owned()
    } else {
        format!("extra cluster {index} (for cluster-wide scenarios)")
    };
    let cell = ENVS.get(index).ok_or_else(|| Error::Step {
        step: format!("bring up {what}"),
        detail: format!("at most {MAX_CLUSTERS} environments"),
    })?;
    bring_up(cell, &what).await
}

/// Brings up the environments a run needs: the shared one when `confined` scenarios will run
/// (or there are no extra clusters), every extra cluster when `wide` ones will. Only the first
/// is waited for and returned: the others come up in the background, one after another
/// (kwokctl's creates take turns anyway, see `LocalCluster`), so scenarios start on the first
/// ~7 s after it is up instead of after all of them (~30 s for four). A cluster-wide
/// scenario that holds an extra cluster still booting waits for it before its time starts
/// ([`crate::catalogue::hold_cluster_for`]); [`destroy_started`] waits for those still booting.
pub async fn bring_up_all(confined: bool, wide: bool) -> Result<&'static Env> {
    let extras = if wide { extra_clusters() } else { 0 };
    let first = if confined || extras == 0 { 0 } else { 1 };
    let env = at(first).await?;
    // The first extra cluster handed out is the first up (`hold_extra_cluster` hands out
    // index 1 first). A failed bring-up is kept in its cell: the scenarios that hold that
    // cluster fail, naming it. The whole queue counts as booting from here, so a teardown
    // between two of its bring-ups still waits for the next one.
    let booting = Booting::begin();
    tokio::spawn(async move {
        for index in first + 1..=extras {
            let _ = at(index).await;
        }
        drop(booting);
    });
    Ok(env)
}

/// The environment shared by every scenario of this process, brought up on first use.
pub async fn shared() -> Result<&'static Env> {
    at(0).await
}

async fn bring_up(
    cell: &'static OnceLock<std::result::Result<Env, String>>,
    what: &str,
) -> Result<&'static Env> {
    let result = tokio::task::spawn_blocking(|| {
        let _booting = Booting::begin();
        cell.get_or_init(|| match (EXISTING.get(), KIND.get()) {
            (Some(existing), _) => Ok(Env::attach(existing.clone())),
            (None, Some(())) => Env::start_kind().map_err(|e| e.to_string()),
            (None, None) => Env::start().map_err(|e| e.to_string()),
        })
    })
    .await
    .map_err(|e| Error::Step {
        step: format!("bring up {what}"),
        detail: e.to_string(),
    })?;
    result.as_ref().map_err(|e| Error::Step {
        step: format!("bring up {what}"),
        detail: e.clone(),
    })
}

/// How many bring-ups are under way in this process ([`Booting`]), and a signal when one ends.
static BOOTING: (Mutex<usize>, std::sync::Condvar) = (Mutex::new(0), std::sync::Condvar::new());
/// The longest [`destroy_started`] waits for bring-ups under way (one takes ~10 s; kwokctl's
/// own `--wait` is 90 s).
const BOOTING_PATIENCE: Duration = Duration::from_secs(120);

/// One bring-up under way, counted in [`BOOTING`] until dropped (also when it panics), so that
/// a teardown does not miss a cluster that was still coming up (not yet among [`started`]).
struct Booting;

impl Booting {
    fn begin() -> Self {
        if let Ok(mut n) = BOOTING.0.lock() {
            *n += 1;
        }
        Booting
    }

    /// Waits until no bring-up is under way, at most `patience`.
    fn wait_none(patience: Duration) {
        let Ok(n) = BOOTING.0.lock() else {
            return;
        };
        let _ = BOOTING.1.wait_timeout_while(n, patience, |n| *n > 0);
    }
}

impl Drop for Booting {
    fn drop(&mut self) {
        if let Ok(mut n) = BOOTING.0.lock() {
            *n = n.saturating_sub(1);
        }
        BOOTING.1.notify_all();
    }
}

/// Tears down every environment this process brought up, all at once (each stops its add-on's
/// processes and deletes its cluster: seconds each, mostly waiting), after waiting for those
/// still coming up (see [`bring_up_all`]); the first error, if any.
pub fn destroy_started() -> Result<()> {
    Booting::wait_none(BOOTING_PATIENCE);
    let envs = started();
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

/// The environments this process brought up (the shared one first).
pub fn started() -> Vec<&'static Env> {
    ENVS.iter()
        .filter_map(|cell| cell.get().and_then(|r| r.as_ref().ok()))
        .collect()
}

/// The AK/SK pair (`AK:SK`) the mock accepts for the tenant of `token` besides the token:
/// derived from it, so a scenario can sign as the tenant (CCI-02) without a secret of its own.
pub fn aksk_pair(token: &str) -> String {
    use sha2::Digest as _;
    let digest = sha2::Sha256::digest(format!("burstcert aksk\n{token}").as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("BURSTCERT{}:{}", hex[..12].to_ascii_uppercase(), &hex[12..])
}

/// Writes the mock's AK/SK file (the pair of [`aksk_pair`] for the tenant `token`), 0600.
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
        .and_then(|mut f| writeln!(f, "{}={token}", aksk_pair(token)))
        .map_err(|source| Error::Io {
            context: format!("write {}", path.display()),
            source,
        })?;
    Ok(path)
}

impl Env {
    /// The environment of an existing cluster: nothing is started, nothing local is offered.
    pub fn attach(existing: Existing) -> Self {
        let cluster_name = existing
            .kubeconfig
            .file_name()
            .map_or_else(|| "existing".into(), |n| n.to_string_lossy().into_owned());
        Self {
            logs: std::env::temp_dir().join("burstcert").join("existing"),
            cci_namespace: cci_api::namespace_for_cluster(&existing.cluster_id),
            kubeconfig: existing.kubeconfig,
            cluster_name: format!("existing ({cluster_name})"),
            cci: existing.cci,
            cluster_id: existing.cluster_id,
            virtual_node: existing.virtual_node,
            local: None,
            kind: None,
        }
    }

    /// The add-on's virtual node: the node scenarios expect burst pods on.
    pub fn virtual_node(&self) -> &str {
        &self.virtual_node
    }

    /// What this environment offers scenarios beyond the cluster's API and CCI's public API.
    pub fn offers(&self) -> &'static [Need] {
        match (&self.local, &self.kind) {
            (Some(_), _) => Need::ALL,
            (None, Some(_)) => KIND_OFFERS,
            (None, None) => &[],
        }
    }

    /// The mock's admin side, when this environment has the mock.
    pub fn mock_admin(&self) -> Option<&MockAdmin> {
        match (&self.local, &self.kind) {
            (Some(l), _) => Some(&l.mock_admin),
            (None, Some(k)) => Some(&k.mock_admin),
            (None, None) => None,
        }
    }

    /// The installer's target and defaults (local or kind); scenarios that call this declare
    /// [`Need::Installer`], so it is there.
    fn installer(&self) -> (&Target, &InstallParams) {
        if let Some(k) = &self.kind {
            return (&k.target, &k.defaults);
        }
        let l = self.local(Need::Installer);
        (&l.target, &l.defaults)
    }

    /// The `bursting-engine` binary the host node serves as the add-on's image (local target).
    pub fn engine_binary(&self) -> Option<&Path> {
        self.local.as_ref().map(|l| l.engine_binary.as_path())
    }

    /// What the harness controls; scenarios that call this declare the need, so it is there.
    fn local(&self, need: Need) -> &Local {
        self.local.as_ref().unwrap_or_else(|| {
            panic!(
                "this scenario needs {need:?} ({}), which an existing cluster does not offer; \
                 its catalogue entry must declare it",
                need.describe()
            )
        })
    }

    /// Brings everything up (blocking). Prefer [`shared`].
    pub fn start() -> Result<Self> {
        Self::start_with(None)
    }

    /// Brings everything up (blocking) on a cluster whose controller manager and scheduler call
    /// the API server at `client_rates` (`None`: their defaults, as [`start`](Self::start)).
    pub fn start_with(client_rates: Option<ClientRates>) -> Result<Self> {
        let progress = Progress::stderr();
        // The engine and the mock first: built from the current source (or named by the
        // environment), before anything is created that a failed build would leave behind.
        let mock_binary = crate::binaries::resolve(crate::binaries::MOCK)?;
        let engine_binary = crate::binaries::resolve(crate::binaries::ENGINE)?;
        let echo_binary = crate::binaries::resolve(crate::binaries::ECHO_BACKEND)?;
        let tools = Tools::ensure(&progress)?;
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
        let token = format!("token-{cluster_id}");

        let mock_log = logs.join("mock-cci.log");
        // The tenant's token goes in a file, not on a command line `ps` shows.
        let token_file = logs.join("mock-cci.tokens");
        std::fs::create_dir_all(&logs)
            .and_then(|()| std::fs::write(&token_file, format!("{token}\n")))
            .map_err(|source| Error::Io {
                context: format!("write {}", token_file.display()),
                source,
            })?;
        // HTTPS, as the real CCI: the add-on and the harness trust the mock's own CA.
        let mock_pki = crate::pki::generate_for(
            "burstcert mock CCI",
            &["localhost".into()],
            &[std::net::Ipv4Addr::LOCALHOST.into()],
        )?;
        let (mock_cert, mock_key) = write_serving_files(&logs, &mock_pki)?;
        let aksk_file = write_aksk_file(&logs, &token)?;
        let mock_process = Guarded::spawn(
            "mock-cci",
            &mock_binary,
            &[
                "--listen".into(),
                "127.0.0.1:0".into(),
                "--token-file".into(),
                token_file.display().to_string(),
                "--aksk-file".into(),
                aksk_file.display().to_string(),
                "--tls-cert-file".into(),
                mock_cert.display().to_string(),
                "--tls-key-file".into(),
                mock_key.display().to_string(),
            ]
            .into_iter()
            .chain(MOCK_TUNING.map(String::from))
            .collect::<Vec<_>>(),
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
        let cci = CciClient::new(&mock_url, &token, Some(&mock_pki.ca_pem))?;
        let mock_admin = MockAdmin::new(&mock_url, Some(&mock_pki.ca_pem))?;
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

        let target = Target::local(address_block);
        let defaults = InstallParams {
            cci_ca: Some(mock_pki.ca_pem.clone()),
            ..default_params(&cluster_id, &cluster_name, &mock_url, &token)?
        };
        runtime.block_on(async {
            let client = client_for(&kubeconfig).await?;
            // The node lifecycle controller lifts the not-ready taint a moment after the node
            // turns Ready; until then nothing may be scheduled there (install would rightly refuse).
            wait::until(
                "the host node to be schedulable (no not-ready taint)",
                Duration::from_secs(60),
                || async {
                    let facts = lifecycle::node_facts(&client, &target).await?;
                    Ok(facts
                        .iter()
                        .any(|f| f.name == hostnode::HOST_NODE && f.ineligible.is_none())
                        .then_some(()))
                },
                || async {
                    match lifecycle::node_facts(&client, &target).await {
                        Ok(facts) => format!("{facts:#?}"),
                        Err(e) => e.to_string(),
                    }
                },
            )
            .await?;
            lifecycle::install(&client, &defaults, &target, &progress).await
        })?;
        Ok(Self {
            kubeconfig,
            cluster_name,
            cci,
            cci_namespace: cci_api::namespace_for_cluster(&cluster_id),
            cluster_id,
            virtual_node: VIRTUAL_NODE.into(),
            logs,
            kind: None,
            local: Some(Local {
                cluster: Mutex::new(cluster),
                mock_admin,
                engine_binary,
                host: Mutex::new(host),
                target,
                defaults,
                api_server: Mutex::new(None),
                _mock_process: mock_process,
                _address_block: block_claim,
            }),
        })
    }

    /// Brings up a kind cluster from locally made images, the mock CCI in a container on kind's
    /// network and the add-on installed with the production rendering (blocking; see
    /// [`crate::kind`]). Prefer [`shared`] after [`configure_kind`].
    pub fn start_kind() -> Result<Self> {
        let progress = Progress::stderr();
        crate::kind::check_docker()?;
        let mock_binary = crate::binaries::resolve(crate::binaries::MOCK)?;
        let engine_binary = crate::binaries::resolve(crate::binaries::ENGINE)?;
        let tools = Tools::ensure(&progress)?;
        let kind_tools = crate::tools::ensure_kind(&progress)?;
        let node_image = crate::kind::ensure_node_image(&tools, &kind_tools, &progress)?;

        let cluster_name = crate::cluster::local::random_name();
        let cluster_id = cluster_name.trim_start_matches("burstcert-").to_owned();
        let logs = std::env::temp_dir().join("burstcert").join(&cluster_name);
        let token = format!("token-{cluster_id}");
        let defaults = default_params(&cluster_id, &cluster_name, "", &token)?;
        // The add-on's image under the tags of the releases scenarios install (the default
        // one, and 1.5.17 for the upgrade and rollback scenarios): one binary, its release
        // comes from the install parameters, as with the real add-on's images.
        let mut engine_tags: Vec<String> = ["1.5.17", "1.5.18", release()]
            .iter()
            .filter_map(|r| Release::parse(r).ok())
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

        let cluster = crate::kind::KindCluster::create(
            &kind_tools,
            &tools,
            &cluster_name,
            &node_image,
            &progress,
        )?;
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

        let token_file = logs.join("mock-cci.tokens");
        std::fs::create_dir_all(&logs)
            .and_then(|()| std::fs::write(&token_file, format!("{token}\n")))
            .map_err(|source| Error::Io {
                context: format!("write {}", token_file.display()),
                source,
            })?;
        let aksk_file = write_aksk_file(&logs, &token)?;
        // HTTPS, as on the local target: the certificate names the container (how the engine
        // in the cluster reaches it) and 127.0.0.1 (its published port, how the harness does).
        let mock_name = format!("{cluster_name}-mock-cci");
        let mock_pki = crate::pki::generate_for(
            "burstcert mock CCI",
            std::slice::from_ref(&mock_name),
            &[std::net::Ipv4Addr::LOCALHOST.into()],
        )?;
        let (mock_cert, mock_key) = write_serving_files(&logs, &mock_pki)?;
        let mock = crate::kind::Container::run(
            &mock_name,
            &cluster_name,
            &mock_image,
            crate::kind::MOCK_PORT,
            &[
                (token_file.as_path(), "/run/burstcert/tokens"),
                (aksk_file.as_path(), "/run/burstcert/aksk"),
                (mock_cert.as_path(), "/run/burstcert/tls.crt"),
                (mock_key.as_path(), "/run/burstcert/tls.key"),
            ],
            &[
                "--listen",
                &format!("0.0.0.0:{}", crate::kind::MOCK_PORT),
                "--token-file",
                "/run/burstcert/tokens",
                "--aksk-file",
                "/run/burstcert/aksk",
                "--tls-cert-file",
                "/run/burstcert/tls.crt",
                "--tls-key-file",
                "/run/burstcert/tls.key",
            ]
            .into_iter()
            .chain(MOCK_TUNING)
            .collect::<Vec<_>>(),
            &logs,
        )?;
        let mock_url = format!("https://{}", mock.published(crate::kind::MOCK_PORT)?);
        let cci = CciClient::new(&mock_url, &token, Some(&mock_pki.ca_pem))?;
        let mock_admin = MockAdmin::new(&mock_url, Some(&mock_pki.ca_pem))?;
        // The engine in the cluster reaches the mock by its container name (Docker's DNS,
        // served to pods through the node: see tools/kind/node's entrypoint).
        let defaults = InstallParams {
            cci_endpoint: format!("https://{}:{}", mock.name(), crate::kind::MOCK_PORT),
            cci_ca: Some(mock_pki.ca_pem.clone()),
            ..defaults
        };
        let target = Target::Production;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|source| Error::Io {
                context: "start a runtime for bring-up".into(),
                source,
            })?;
        runtime.block_on(async {
            wait::until(
                "the mock CCI container to answer",
                Duration::from_secs(30),
                || async { Ok(cci.namespace_exists("default").await.ok().map(|_| ())) },
                || async { mock.logs(20) },
            )
            .await?;
            let client = client_for(&kubeconfig).await?;
            lifecycle::install(&client, &defaults, &target, &progress).await
        })?;
        Ok(Self {
            kubeconfig,
            cluster_name,
            cci,
            cci_namespace: cci_api::namespace_for_cluster(&cluster_id),
            cluster_id,
            virtual_node: VIRTUAL_NODE.into(),
            logs,
            local: None,
            kind: Some(KindParts {
                cluster: Mutex::new(cluster),
                mock,
                mock_admin,
                target,
                defaults,
            }),
        })
    }

    /// Where the add-on runs: the host node, webhooks through its service proxy (local target;
    /// scenarios that call this need [`Need::Installer`]).
    pub fn addon_target(&self) -> &Target {
        self.installer().0
    }

    /// The parameters the environment installs the add-on with (release, interconnect on, the
    /// host node's registry, the mock as CCI, the shortened node lock; local target, scenarios
    /// that call this need [`Need::Installer`]).
    pub fn addon_defaults(&self) -> &InstallParams {
        self.installer().1
    }

    /// Puts the add-on back as the environment installed it: upgraded (or rolled) back to the
    /// default parameters when they differ, installed again when it was uninstalled, cleared and
    /// installed when an uninstall left it DeleteFailed.
    pub async fn restore_addon(&self) -> Result<()> {
        let client = self.client().await?;
        let quiet = Progress::quiet();
        let (target, defaults) = self.installer();
        match lifecycle::state(&client).await? {
            Some(state) if matches!(state.status, Status::Running | Status::UpgradeFailed) => {
                if state.status == Status::Running && state.params == *defaults {
                    return Ok(());
                }
                lifecycle::upgrade(&client, defaults, target, &quiet).await?;
            }
            Some(_) => {
                lifecycle::force_remove(&client).await?;
                lifecycle::install(&client, defaults, target, &quiet).await?;
            }
            None => lifecycle::install(&client, defaults, target, &quiet).await?,
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
            || lifecycle::diagnose(&client),
        )
        .await
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

    /// The last lines of the mock CCI's log (its container's, on a kind cluster), for diagnoses.
    pub fn mock_log_tail(&self, lines: usize) -> String {
        match &self.kind {
            Some(kind) => kind.mock.logs(lines),
            None => tail_file(&self.logs.join("mock-cci.log"), lines),
        }
    }

    /// The last lines of the webhook's log (its newest pod on the host node), for diagnoses.
    pub fn webhook_log_tail(&self, lines: usize) -> String {
        self.component_log_tail(render::WEBHOOK, "webhook", lines)
    }

    /// The last lines of the engine's log (the virtual kubelet's newest pod), for diagnoses.
    pub fn engine_log_tail(&self, lines: usize) -> String {
        self.component_log_tail(render::VIRTUAL_KUBELET, "virtual-kubelet", lines)
    }

    /// Every container log the add-on's pods (virtual kubelet, webhook, proxy, …) wrote on the
    /// host node, of running pods and of pods already gone. Empty on an existing cluster,
    /// where the logs are the cluster's (`Need::AddonLogs` is local only).
    pub fn addon_logs(&self) -> Vec<PathBuf> {
        let Some(local) = &self.local else {
            return Vec::new();
        };
        let Ok(host) = local.host.lock() else {
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

    /// The text of every log of the add-on's containers, named: the files on the host node
    /// (local target, see [`Env::addon_logs`]), or each container's current and previous log
    /// read through the API (kind). Empty where neither is offered.
    pub async fn addon_log_texts(&self) -> Result<Vec<(String, String)>> {
        if self.kind.is_none() {
            return Ok(self
                .addon_logs()
                .into_iter()
                .filter_map(|path| {
                    let text = std::fs::read(&path).ok()?;
                    Some((
                        path.display().to_string(),
                        String::from_utf8_lossy(&text).into_owned(),
                    ))
                })
                .collect());
        }
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
        let Some(local) = &self.local else {
            return format!(
                "(the {deployment} log is on the cluster: kubectl logs -n {} deploy/{deployment})",
                render::NAMESPACE
            );
        };
        let prefix = format!("{}_{deployment}-", render::NAMESPACE);
        match local.host.lock() {
            Ok(host) => match host.newest_log(&prefix, container) {
                Some(path) => tail_file(&path, lines),
                None => format!("(no log of {deployment} on the host node yet)"),
            },
            Err(_) => "(host node handle poisoned)".into(),
        }
    }

    /// Kills the virtual kubelet's process with SIGKILL, as a crash would (R-01); the host node
    /// restarts it under its pod's restart policy, as a kubelet would. Returns the restart count
    /// before the kill, for [`Env::wait_engine_restarted`].
    pub async fn kill_engine(&self) -> Result<i32> {
        let before = self.engine_restarts().await?;
        let killed = {
            let host = self
                .local(Need::EngineProcess)
                .host
                .lock()
                .map_err(|_| Error::Step {
                    step: "kill the engine".into(),
                    detail: "host node handle poisoned".into(),
                })?;
            host.kill_containers(
                render::NAMESPACE,
                &format!("{}-", render::VIRTUAL_KUBELET),
                "virtual-kubelet",
            )
        };
        if killed == 0 {
            return Err(Error::Step {
                step: "kill the engine".into(),
                detail: "no virtual-kubelet process was running on the host node".into(),
            });
        }
        Ok(before)
    }

    /// Pids of the running virtual kubelet processes on the host node.
    pub fn engine_pids(&self) -> Vec<u32> {
        let Some(local) = &self.local else {
            return Vec::new();
        };
        local
            .host
            .lock()
            .map(|h| {
                h.container_pids(
                    render::NAMESPACE,
                    &format!("{}-", render::VIRTUAL_KUBELET),
                    "virtual-kubelet",
                )
            })
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
        let local = self.local(Need::ControlPlane);
        let workdir = local
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
        let old = local
            .api_server
            .lock()
            .map_err(|_| step("api server handle poisoned".into()))?
            .replace(guarded);
        drop(old);
        Ok(())
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

    /// Tears the cluster down now (tests normally leave that to process exit).
    pub fn destroy(&self) -> Result<()> {
        if let Some(kind) = &self.kind {
            kind.mock.remove()?;
            return match kind.cluster.lock() {
                Ok(mut cluster) => cluster.destroy(),
                Err(_) => Ok(()),
            };
        }
        let Some(local) = &self.local else {
            return Ok(());
        };
        if let Ok(mut host) = local.host.lock() {
            host.stop();
        }
        // An API server restarted by R-03 is ours, not kwokctl's: stop it and wait, or it
        // outlived the run by up to ~10 s (its supervisor only noticed the harness had gone).
        if let Some(mut restarted) = local.api_server.lock().ok().and_then(|mut a| a.take()) {
            // Killed, not stopped: its cluster is going, and SIGTERM kept it draining until its
            // supervisor's SIGKILL 10 s later (kwokctl's own API server goes at once).
            let _ = restarted.kill_program();
            restarted.stop();
        }
        match local.cluster.lock() {
            Ok(mut cluster) => cluster.destroy(),
            Err(_) => Ok(()),
        }
    }
}

/// The parameters an environment installs the add-on with: the configured release, interconnect
/// on, the harness's registry, the mock as CCI with the tenant's token or its AK/SK pair
/// ([`addon_auth`]), the shortened node lock.
fn default_params(
    cluster_id: &str,
    cluster_name: &str,
    cci_endpoint: &str,
    token: &str,
) -> Result<InstallParams> {
    Ok(InstallParams {
        release: Release::parse(release()).map_err(|e| Error::Step {
            step: "read the release to install".into(),
            detail: e.to_string(),
        })?,
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
        cci_token: match addon_auth() {
            AddonAuth::Token => token.into(),
            AddonAuth::AkSk => String::new(),
        },
        cci_ca: None,
        lock_duration_secs: Some(lock_seconds()),
        pending_lock_threshold_secs: Some(PENDING_LOCK_SECONDS),
        check_resource_pressure: None,
        pod_disruption_budget: None,
        cci_aksk: match addon_auth() {
            AddonAuth::Token => None,
            AddonAuth::AkSk => Some(aksk_pair(token)),
        },
    })
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

/// The add-on's pods in `pods` (its namespace), by the add-on's label selector.
async fn addon_pods(
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mock_knows_the_subnet_the_add_on_is_installed_on() {
        assert!(
            MOCK_TUNING
                .windows(2)
                .any(|w| w[0] == "--subnet" && w[1] == format!("{SUBNET_ID}={SUBNET_CIDR}"))
        );
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
