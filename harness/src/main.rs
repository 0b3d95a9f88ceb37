//! `burstcert`: bring up a real local Kubernetes cluster and (later) certify a release of the
//! bursting add-on against the documented scenarios.
//!
//! ```text
//! burstcert certify [--release X.Y.Z] [--focus ID…] [--skip ID…] [--report DIR]
//! burstcert cluster up [--name N] [--nodes K]   # leaves a cluster running, prints its kubeconfig
//! burstcert cluster list
//! burstcert cluster down [--name N]
//! burstcert tools build                          # builds the pinned Kubernetes binaries now
//! burstcert up [--release X.Y.Z]                 # cluster + mock CCI + host node + add-on, until Ctrl-C
//! burstcert addon install|upgrade|rollback|uninstall|configure|status [--kubeconfig P] [params]
//! burstcert render [params] [--local]           # the add-on's objects as YAML
//! burstcert cci purge --cluster-id X --cci-endpoint URL   # what a deleted cluster left on CCI
//! burstcert certify --rerun-failed DIR [--retries N]   # only what failed in DIR/report.json
//! burstcert verify DIR                           # the report folder is what its report.json says
//! burstcert diff OLD NEW                         # outcomes and CCI transcripts that changed
//! burstcert breakages [--only NAME…] [--list] [--report DIR]  # which scenario catches each engine breakage
//! burstcert soak [--events N] [--seed S] [--max-replicas M] [--deadline-secs D]  # chaos soak, numbers
//! ```

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context as _, bail};
use burstcert::binaries::user_path;
use burstcert::cluster::local::{self, LocalCluster, LocalOptions};
use burstcert::cluster::nodes::{NodeShape, create_nodes};
use burstcert::cluster::{ClusterProvider as _, client_for};
use burstcert::progress::Progress;
use burstcert::target::Launch;
use burstcert::tools::{PREBUILT_ENV, Tools};
use clap::{Parser, Subcommand, ValueEnum};

/// Where `certify` runs (see `--cluster`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum ClusterArg {
    /// A fresh local cluster, the mock CCI and the add-on.
    Local,
    /// The cluster of --kubeconfig, with the add-on installed.
    Existing,
    /// A kind cluster from locally made images.
    Kind,
}

impl ClusterArg {
    /// The target this value has the harness bring up; `None` for a cluster it is handed.
    fn launch(self) -> Option<Arc<dyn Launch>> {
        match self {
            ClusterArg::Local => Some(Arc::new(burstcert::target::local::Local::default())),
            ClusterArg::Kind => Some(Arc::new(burstcert::target::kind::Kind)),
            ClusterArg::Existing => None,
        }
    }
}

/// Where `up` brings the environment up.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum UpClusterArg {
    /// The host node runs the add-on's pods as processes.
    Local,
    /// A kind cluster from locally made images.
    Kind,
}

impl UpClusterArg {
    /// The target this value has the harness bring up.
    fn launch(self) -> Arc<dyn Launch> {
        match self {
            UpClusterArg::Local => Arc::new(burstcert::target::local::Local::default()),
            UpClusterArg::Kind => Arc::new(burstcert::target::kind::Kind),
        }
    }
}

/// How the add-on burstcert installs authenticates to the mock CCI.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum CciAuthArg {
    /// The tenant's IAM token in the add-on's Secret.
    Token,
    /// An AK/SK pair that signs every request; no token.
    Aksk,
}

#[derive(Parser)]
#[command(
    name = "burstcert",
    version,
    about = "Conformance harness for the CCE bursting add-on: real local Kubernetes clusters, a mock CCI, scenarios.",
    after_help = format!(
        "The local cluster's binaries (Kubernetes, etcd, kwok) are built from the Go module proxy on first \
         use and cached; set {PREBUILT_ENV} to a folder of prebuilt binaries to skip that."
    )
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Certify the bundled engine: bring up a local cluster, the mock CCI and the engine (built
    /// from the current source when run from the workspace), run every scenario of the
    /// catalogue, write report.md, junit.xml and report.json.
    #[command(after_help = "Exit codes (the report carries the same verdict):\n  \
        0  CERTIFIED   every scenario ran and passed, or is not applicable at this release (a gate)\n  \
        1  FAILED      a scenario failed or has no body\n  \
        2  usage error e.g. --focus naming no scenario ID or family\n  \
        3  INCOMPLETE  nothing failed, but scenarios did not run (this cluster cannot run them, or --focus/--skip left them out)\n  \
        4  error       the harness could not run (the failed step is named)")]
    Certify {
        /// The add-on release to certify [default: 1.5.18 on a local cluster; on an existing
        /// one, the installed release (a different --release is certified with a warning:
        /// gated scenarios then check that release's side, which shows whether the cluster
        /// behaves as that release)].
        #[arg(long, value_parser = burstcert::certify::parse_release)]
        release: Option<burst_rules::release::Release>,
        /// Cluster to run on: `local` (a fresh local cluster, the mock CCI and the add-on),
        /// `existing` (the cluster of --kubeconfig with the add-on installed, and the CCI
        /// endpoint it bursts to: the scenarios that need only the cluster's API and CCI's
        /// public API run, the rest are "not run", so the verdict is at best INCOMPLETE) or
        /// `kind` (a kind cluster from locally made images, the mock in a container: needs a
        /// running Docker engine, see docs/kind.md; every scenario runs there).
        #[arg(long, value_enum, default_value_t = ClusterArg::Local)]
        cluster: ClusterArg,
        /// Kubeconfig of the existing cluster (with --cluster existing).
        #[arg(long, value_name = "PATH", required_if_eq("cluster", "existing"))]
        kubeconfig: Option<std::path::PathBuf>,
        /// CCI's API endpoint (with --cluster existing; default: the one the add-on was
        /// installed with, when burstcert installed it). The tenant's credential is a token
        /// (CCI_TOKEN or --cci-token-file) or an AK/SK pair (CCI_ACCESS_KEY and CCI_SECRET_KEY,
        /// or --cci-aksk-file), never a flag.
        #[arg(long, value_name = "URL")]
        cci_endpoint: Option<String>,
        /// File holding the tenant's CCI token (instead of CCI_TOKEN).
        #[arg(long, value_name = "PATH")]
        cci_token_file: Option<std::path::PathBuf>,
        /// File holding the tenant's AK/SK pair, one line AK:SK (instead of CCI_ACCESS_KEY and
        /// CCI_SECRET_KEY): burstcert signs its requests to CCI with it.
        #[arg(long, value_name = "PATH")]
        cci_aksk_file: Option<std::path::PathBuf>,
        /// PEM file of the CA certificates CCI's certificate is checked against (with
        /// --cluster existing, for a private endpoint); default: the system's CA roots.
        #[arg(long, value_name = "PATH")]
        cci_ca_file: Option<std::path::PathBuf>,
        /// The cluster id the add-on was installed with (default: read from the add-on).
        #[arg(long)]
        cluster_id: Option<String>,
        /// The namespace the add-on is installed in (with --cluster existing).
        #[arg(long, value_name = "NAMESPACE", default_value = burstcert::certify::DEFAULT_ADDON_NAMESPACE)]
        addon_namespace: String,
        /// How the add-on burstcert installs (local, kind) authenticates to the mock CCI:
        /// `token` (the tenant's token in its Secret) or `aksk` (an AK/SK pair that signs every
        /// request, no token), to certify as a tenant that authenticates so. On an existing
        /// cluster the add-on holds what it was installed with.
        #[arg(long, value_enum, default_value_t = CciAuthArg::Token)]
        cci_auth: CciAuthArg,
        /// The add-on's virtual node (with --cluster existing; default: found: bursting-node,
        /// a CCI 1.0 add-on's virtual-kubelet, the node the add-on's kubelet names, or the one
        /// node labelled type=virtual-kubelet).
        #[arg(long, value_name = "NAME")]
        virtual_node: Option<String>,
        /// Run only these scenario IDs or families (e.g. `WL-02`, `VK`); repeatable.
        #[arg(long, num_args = 1..)]
        focus: Vec<String>,
        /// Run exactly the scenarios that failed in DIR/report.json (flaky ones too), at its
        /// release unless --release says otherwise.
        #[arg(long, value_name = "DIR", conflicts_with = "focus")]
        rerun_failed: Option<std::path::PathBuf>,
        /// Run a failed scenario again up to N times: its row then says `failed N+1 of N+1`
        /// or `flaky (failed k of n)`; a flaky scenario fails the run.
        #[arg(long, value_name = "N", default_value_t = 0,
              value_parser = clap::value_parser!(u32).range(0..=10))]
        retries: u32,
        /// Skip these scenario IDs or families; repeatable.
        #[arg(long, num_args = 1..)]
        skip: Vec<String>,
        /// Folder for the report.
        #[arg(long, default_value = "burstcert-report")]
        report: std::path::PathBuf,
        /// How many scenarios confined to their own namespace run at once. Cluster-wide ones
        /// (install, uninstall, upgrade, lock, restarts…) always run alone on a cluster: on a
        /// local cluster with more than 1 job, on extra local clusters of their own (one per
        /// core, at most 2) beside the others; on kind or an existing cluster, after them. 1 runs
        /// every scenario one after another in catalogue order on one cluster. Default: twice the
        /// cores, between 2 and 6.
        #[arg(long, value_parser = clap::value_parser!(u16).range(1..=32))]
        jobs: Option<u16>,
    },
    /// Check a report folder against its report.json: the manifest of every other file and
    /// the seal of report.json itself. Prints each difference (file added, removed or changed,
    /// manifest missing); exits 0 when there is none, 1 otherwise.
    Verify {
        /// The report folder (what `certify --report` wrote).
        dir: std::path::PathBuf,
    },
    /// Compare two report folders: the scenarios whose outcome changed, and per scenario how
    /// its CCI-side transcript changed (requests added or removed, CCI objects added, removed
    /// or with a different body). Exits 0 when nothing changed, 1 otherwise.
    Diff {
        /// The earlier report folder.
        old: std::path::PathBuf,
        /// The later report folder.
        new: std::path::PathBuf,
    },
    /// Bring up the whole environment and keep it until Ctrl-C: a local cluster, the mock CCI,
    /// the host node and the add-on installed from its manifests. Prints the kubeconfig, so
    /// `kubectl` and `burstcert addon …` can be used on it from another terminal.
    Up {
        /// The add-on release to install.
        #[arg(long, default_value = burstcert::certify::DEFAULT_RELEASE, value_parser = burstcert::certify::parse_release)]
        release: burst_rules::release::Release,
        /// `local` (the host node runs the add-on's pods as processes) or `kind` (a kind
        /// cluster from locally made images, the mock CCI in a container; needs Docker).
        #[arg(long, value_enum, default_value_t = UpClusterArg::Local)]
        cluster: UpClusterArg,
    },
    /// The add-on's lifecycle on a cluster (state in kube-system/bursting-addon).
    Addon {
        #[command(subcommand)]
        command: burstcert::addon::cli::AddonCommand,
    },
    /// Print the add-on's objects as YAML, rendered from install parameters.
    Render {
        #[command(flatten)]
        params: burstcert::addon::cli::ParamsArgs,
        /// Render for a local burstcert cluster (pods on the host node, webhooks by URL).
        #[arg(long)]
        local: bool,
    },
    /// Measure the engine on a fresh environment whose controller manager and scheduler are not
    /// throttled: N replicas to Running on bursting-node vs kwok nodes (times, pods/s, ratio),
    /// the virtual kubelet's RSS with P pods and P ConfigMaps of K KiB, and the CCI requests
    /// of the idle engine with those pods Running.
    Bench {
        /// Replicas of the start-up comparison (0 skips it).
        #[arg(long, default_value_t = 1000)]
        replicas: usize,
        /// Rounds of the start-up comparison, each timing both sides one after the other (the
        /// side that goes first alternates); the medians are reported, since one round's times
        /// vary by a third from one to the next on a 2-core machine.
        #[arg(long, default_value_t = 3,
              value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=20))]
        rounds: usize,
        /// Burst pods (each with its own ConfigMap) for the memory measurement (0 skips it).
        #[arg(long, default_value_t = 4000)]
        memory_pods: usize,
        /// KiB per ConfigMap.
        #[arg(long, default_value_t = 300)]
        configmap_kib: usize,
        /// Seconds over which the CCI requests of the idle engine (the memory run's pods
        /// Running) are counted; 0 skips it. The default is the engine's resync period (300 s)
        /// plus 30 s, so the window holds one full list.
        #[arg(long, default_value_t = 330)]
        idle_seconds: u64,
    },
    /// Chaos soak on a fresh environment: N random events (scale-ups and -downs, pod deletions,
    /// the engine killed mid-scale, the API server restarted, CCI faults: 503s, latency,
    /// "applied, then timed out"), with convergence checks every 10 events and at the end: no
    /// leaked or duplicate CCI pod, every pod's phase the same on both sides, nothing lost.
    /// Prints the numbers; exits 1 if an invariant failed or the deadline passed.
    Soak {
        /// How many events.
        #[arg(long, default_value_t = burstcert::soak::DEFAULT_EVENTS)]
        events: usize,
        /// Seed of the events (printed; the same seed gives the same events) [default: from the clock].
        #[arg(long)]
        seed: Option<u64>,
        /// Highest replica count of each of the two Deployments.
        #[arg(long, default_value_t = burstcert::soak::DEFAULT_MAX_REPLICAS,
              value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=500))]
        max_replicas: usize,
        /// Bound on the soak (bring-up excluded); past it the soak stops and says so.
        #[arg(long, default_value_t = burstcert::soak::DEFAULT_DEADLINE.as_secs())]
        deadline_secs: u64,
    },
    /// Run each deliberate breakage of the engine (its cargo feature `breakages`, never
    /// shipped) through `certify --focus` on the scenarios expected to catch it, and report which
    /// scenario caught it. Writes breakages.md and breakages.json; exits 1 unless every
    /// breakage was caught.
    Breakages {
        /// Only these breakages (by name; see --list); repeatable.
        #[arg(long, num_args = 1..)]
        only: Vec<String>,
        /// List the breakages and the scenarios expected to catch them, and exit.
        #[arg(long)]
        list: bool,
        /// Folder for breakages.md, breakages.json and each breakage's certify report and log.
        #[arg(long, default_value = "burstcert-breakages")]
        report: std::path::PathBuf,
        /// Skip the baseline (the feature build with no breakage on the expected scenarios,
        /// which keeps a scenario that fails anyway from being credited with a catch).
        #[arg(long)]
        no_baseline: bool,
        /// Seconds one breakage's certify may take.
        #[arg(long, default_value_t = burstcert::breakages::DEFAULT_TIMEOUT.as_secs())]
        timeout_secs: u64,
        /// Where each breakage's certify runs: `local`, or `kind` (a kind cluster each).
        #[arg(long, value_enum, default_value_t = UpClusterArg::Local)]
        cluster: UpClusterArg,
    },
    /// Operations on the CCI side.
    Cci {
        #[command(subcommand)]
        command: CciCommand,
    },
    /// Local clusters: a real control plane and kwok nodes, as processes on loopback.
    Cluster {
        #[command(subcommand)]
        command: ClusterCommand,
    },
    /// The pinned upstream binaries.
    Tools {
        #[command(subcommand)]
        command: ToolsCommand,
    },
}

#[derive(Subcommand)]
enum ClusterCommand {
    /// Bring up a cluster and leave it running; prints the kubeconfig path on stdout.
    Up {
        /// Cluster name (default: a random `burstcert-xxxxxx`).
        #[arg(long)]
        name: Option<String>,
        /// Number of ordinary (kwok) nodes: 4 CPU, 16Gi, 110 pods, amd64 each.
        #[arg(long, default_value_t = 2)]
        nodes: usize,
    },
    /// Stop a cluster and remove its files (default: the only cluster there is).
    Down {
        /// Cluster name.
        #[arg(long, conflicts_with = "all")]
        name: Option<String>,
        /// Remove every kind cluster and container burstcert made (`burstcert-*`, what a killed
        /// `--cluster kind` run left behind; not those a running burstcert owns) and every local
        /// cluster.
        #[arg(long)]
        all: bool,
    },
    /// List local clusters.
    List,
}

#[derive(Subcommand)]
enum CciCommand {
    /// Remove what a cluster deleted without uninstall left on CCI (its bursting-{id}
    /// namespace and billable pods), and report it.
    Purge {
        /// The deleted cluster's id.
        #[arg(long)]
        cluster_id: String,
        /// Base URL of the CCI API.
        #[arg(long, value_name = "URL")]
        cci_endpoint: String,
        /// A file holding the CCI token; or the token in the environment variable CCI_TOKEN
        /// (no flag takes the token itself).
        #[arg(long, value_name = "PATH")]
        cci_token_file: Option<std::path::PathBuf>,
        /// A file holding an AK/SK pair (one line AK:SK) to sign with instead of a token; or
        /// the pair in CCI_ACCESS_KEY and CCI_SECRET_KEY.
        #[arg(long, value_name = "PATH")]
        cci_aksk_file: Option<std::path::PathBuf>,
        /// PEM file of the CA certificates CCI's certificate is checked against (a private
        /// endpoint); default: the system's CA roots.
        #[arg(long, value_name = "PATH")]
        cci_ca_file: Option<std::path::PathBuf>,
    },
}

#[derive(Subcommand)]
enum ToolsCommand {
    /// Build (or find) the pinned binaries and print their folder.
    Build,
    /// Print the pinned versions.
    Versions,
}

/// The text of `--cci-ca-file`, when given.
fn read_ca_file(path: Option<std::path::PathBuf>) -> anyhow::Result<Option<String>> {
    path.map(|path| {
        let path = user_path(path);
        std::fs::read_to_string(&path)
            .with_context(|| format!("read the CCI CA bundle {}", path.display()))
    })
    .transpose()
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // `certify` says its verdict with 0, 1 and 3; its own errors need a code of their own.
    let error_code = match cli.command {
        Command::Certify { .. } => burstcert::certify::ERROR_EXIT_CODE,
        _ => 1,
    };
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("burstcert: error: {e:#}");
            ExitCode::from(error_code)
        }
    }
}

/// The one CCI credential given (see `CciAuth::from_files_or_env`), the files relative to
/// where burstcert was started.
fn read_auth(
    token_file: Option<std::path::PathBuf>,
    aksk_file: Option<std::path::PathBuf>,
) -> anyhow::Result<Option<burstcert::cci::CciAuth>> {
    let (token_file, aksk_file) = (token_file.map(user_path), aksk_file.map(user_path));
    burstcert::cci::CciAuth::from_files_or_env(token_file.as_deref(), aksk_file.as_deref())
        .map_err(|problem| anyhow::anyhow!(problem))
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let progress = Progress::stderr();
    match cli.command {
        Command::Certify {
            release,
            cluster,
            kubeconfig,
            cci_endpoint,
            cci_token_file,
            cci_aksk_file,
            cci_ca_file,
            cluster_id,
            addon_namespace,
            virtual_node,
            cci_auth,
            mut focus,
            rerun_failed,
            retries,
            skip,
            report,
            jobs,
        } => {
            let report = user_path(report);
            let mut release = release;
            if let Some(dir) = rerun_failed.map(user_path) {
                let path = dir.join("report.json");
                let text = std::fs::read_to_string(&path)
                    .with_context(|| format!("read {}", path.display()))?;
                let ids = burstcert::certify::failed_ids(&text)
                    .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
                if ids.is_empty() {
                    eprintln!(
                        "burstcert: usage error: nothing failed in {}; nothing to run again",
                        path.display()
                    );
                    return Ok(ExitCode::from(burstcert::certify::USAGE_EXIT_CODE));
                }
                eprintln!(
                    "burstcert: running again what failed in {}: {}",
                    path.display(),
                    ids.join(" ")
                );
                focus = ids;
                if release.is_none() {
                    release = serde_json::from_str::<serde_json::Value>(&text)
                        .ok()
                        .and_then(|json| {
                            burstcert::certify::parse_release(json["release"].as_str()?).ok()
                        });
                }
            }
            let jobs = jobs.map_or_else(burstcert::certify::default_jobs, usize::from);
            let cluster = match (cluster, kubeconfig) {
                (ClusterArg::Existing, Some(path)) => burstcert::certify::ClusterChoice::Existing(
                    burstcert::certify::ExistingChoice {
                        kubeconfig: user_path(path),
                        cci_endpoint,
                        cci_auth: read_auth(cci_token_file, cci_aksk_file)?,
                        cci_ca: read_ca_file(cci_ca_file)?,
                        cluster_id,
                        addon_namespace,
                        virtual_node,
                    },
                ),
                // NB: clap requires --kubeconfig with `existing`.
                (other, _) => other.launch().map_or_else(
                    burstcert::certify::ClusterChoice::default,
                    burstcert::certify::ClusterChoice::Made,
                ),
            };
            let addon_auth = match cci_auth {
                CciAuthArg::Aksk => burstcert::env::AddonAuth::AkSk,
                CciAuthArg::Token => burstcert::env::AddonAuth::Token,
            };
            if addon_auth != burstcert::env::AddonAuth::Token
                && matches!(cluster, burstcert::certify::ClusterChoice::Existing(_))
            {
                eprintln!(
                    "burstcert: usage error: --cci-auth chooses how the add-on burstcert installs authenticates; on an existing cluster the add-on holds what it was installed with (burstcert's own credential: CCI_ACCESS_KEY/CCI_SECRET_KEY or --cci-aksk-file)"
                );
                return Ok(ExitCode::from(burstcert::certify::USAGE_EXIT_CODE));
            }
            let options = burstcert::certify::Options {
                release,
                focus,
                skip,
                report_dir: report.clone(),
                cluster,
                jobs,
                addon_auth,
                retries,
            };
            if let Err(e) = burstcert::certify::check_selection(&options) {
                eprintln!("burstcert: usage error: {e}");
                return Ok(ExitCode::from(burstcert::certify::USAGE_EXIT_CODE));
            }
            let runtime = tokio::runtime::Runtime::new().context("start tokio")?;
            let result = runtime.block_on(burstcert::certify::certify(&options));
            let _ = burstcert::env::destroy_started();
            let result = result?;
            let slowest = result.slowest(5);
            if !slowest.is_empty() {
                eprintln!("burstcert: slowest scenarios: {}", slowest.join(", "));
            }
            eprintln!(
                "burstcert: {} (report in {})",
                result.summary(),
                report.display()
            );
            return Ok(ExitCode::from(result.verdict().exit_code()));
        }
        Command::Verify { dir } => {
            let dir = user_path(dir);
            let differences = burstcert::report::verify::verify(&dir);
            for difference in &differences {
                println!("{difference}");
            }
            if differences.is_empty() {
                eprintln!(
                    "burstcert: {} holds exactly what its report.json says",
                    dir.display()
                );
                return Ok(ExitCode::SUCCESS);
            }
            eprintln!(
                "burstcert: {} differs from its report.json ({} differences)",
                dir.display(),
                differences.len()
            );
            return Ok(ExitCode::FAILURE);
        }
        Command::Diff { old, new } => {
            use burstcert::report::diff::{Side, diff};
            let read =
                |dir: std::path::PathBuf| Side::read(&user_path(dir)).map_err(anyhow::Error::msg);
            let lines = diff(&read(old)?, &read(new)?);
            for line in &lines {
                println!("{line}");
            }
            eprintln!(
                "burstcert: diff: {}",
                if lines.is_empty() {
                    "no difference".to_owned()
                } else {
                    format!("{} differences", lines.len())
                }
            );
            return Ok(if lines.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            });
        }
        Command::Up { release, cluster } => {
            let release = release.to_string();
            anyhow::ensure!(
                burstcert::env::configure_release(&release),
                "release already set"
            );
            let env = burstcert::env::Env::launch(cluster.launch().as_ref())?;
            eprintln!(
                "burstcert: up: add-on {release} Running; cluster id {}; mock CCI at {}; Ctrl-C stops everything",
                env.cluster_id,
                env.cci.url()
            );
            println!("{}", env.kubeconfig().display());
            let runtime = tokio::runtime::Runtime::new().context("start tokio")?;
            runtime.block_on(tokio::signal::ctrl_c())?;
            env.destroy()?;
        }
        Command::Bench {
            replicas,
            rounds,
            memory_pods,
            configmap_kib,
            idle_seconds,
        } => {
            // The bench's cluster only: the suites keep the components' default rates.
            let rates = burstcert::cluster::local::ClientRates::UNTHROTTLED;
            let env = burstcert::env::Env::start_with(Some(rates))?;
            let runtime = tokio::runtime::Runtime::new().context("start tokio")?;
            let report = runtime.block_on(burstcert::bench::run(
                &env,
                &burstcert::bench::BenchOptions {
                    replicas,
                    rounds,
                    memory_pods,
                    configmap_kib,
                    idle: std::time::Duration::from_secs(idle_seconds),
                },
                Some(rates),
            ));
            env.destroy()?;
            print!("{}", report?);
        }
        Command::Soak {
            events,
            seed,
            max_replicas,
            deadline_secs,
        } => {
            let seed = seed.unwrap_or_else(burstcert::soak::clock_seed);
            eprintln!("burstcert soak: seed {seed} (replay with --seed {seed})");
            let env = burstcert::env::Env::start()?;
            let runtime = tokio::runtime::Runtime::new().context("start tokio")?;
            let summary = runtime.block_on(burstcert::soak::run(
                &env,
                &burstcert::soak::SoakOptions {
                    events,
                    seed,
                    max_replicas,
                    deadline: std::time::Duration::from_secs(deadline_secs),
                },
            ));
            // Stop the runtime (and anything still running on it) before the processes go.
            drop(runtime);
            let destroyed = env.destroy();
            let summary = summary?;
            print!("{summary}");
            destroyed?;
            return Ok(if summary.failed() {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            });
        }
        Command::Addon { command } => {
            let runtime = tokio::runtime::Runtime::new().context("start tokio")?;
            runtime.block_on(burstcert::addon::cli::run(command, &progress))?;
        }
        Command::Render { params, local } => {
            print!("{}", burstcert::addon::cli::render_yaml(&params, local)?);
        }
        Command::Breakages {
            only,
            list,
            report,
            no_baseline,
            timeout_secs,
            cluster,
        } => {
            if list {
                let selected =
                    burstcert::breakages::select(&only).map_err(|e| anyhow::anyhow!(e))?;
                for b in selected {
                    println!("{}\t{}\t{}", b.name, b.expected.join(","), b.symptom);
                }
                return Ok(ExitCode::SUCCESS);
            }
            let run = burstcert::breakages::run(&burstcert::breakages::Options {
                only,
                report_dir: user_path(report),
                baseline: !no_baseline,
                timeout: std::time::Duration::from_secs(timeout_secs),
                cluster: match cluster {
                    UpClusterArg::Local => burstcert::breakages::Cluster::Local,
                    UpClusterArg::Kind => burstcert::breakages::Cluster::Kind,
                },
            })?;
            print!("{}", run.markdown());
            eprintln!("burstcert: breakages: {}", run.summary());
            return Ok(if run.all_caught() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            });
        }
        Command::Cci {
            command:
                CciCommand::Purge {
                    cluster_id,
                    cci_endpoint,
                    cci_token_file,
                    cci_aksk_file,
                    cci_ca_file,
                },
        } => {
            let auth = read_auth(cci_token_file, cci_aksk_file)?.context(
                "no CCI credential: set CCI_TOKEN or give --cci-token-file PATH, or an AK/SK pair in CCI_ACCESS_KEY and CCI_SECRET_KEY or --cci-aksk-file PATH",
            )?;
            let ca = read_ca_file(cci_ca_file)?;
            let cci = burstcert::cci::CciClient::with_auth(&cci_endpoint, auth, ca.as_deref())?;
            let runtime = tokio::runtime::Runtime::new().context("start tokio")?;
            let report = runtime.block_on(burstcert::addon::purge::purge(&cci, &cluster_id))?;
            println!("{report}");
        }
        Command::Tools {
            command: ToolsCommand::Build,
        } => {
            let tools = Tools::ensure(&progress)?;
            println!("{}", tools.dir().display());
        }
        Command::Tools {
            command: ToolsCommand::Versions,
        } => {
            let pins = burstcert::tools::Pins::current();
            println!(
                "kubernetes {}\netcd {}\nkwok {}",
                pins.kubernetes, pins.etcd, pins.kwok
            );
        }
        Command::Cluster {
            command: ClusterCommand::List,
        } => {
            for name in local::list()? {
                println!("{name}\t{}", local::kubeconfig_path(&name)?.display());
            }
        }
        Command::Cluster {
            command: ClusterCommand::Down { name: _, all: true },
        } => {
            let tools = Tools::ensure(&progress)?;
            for name in local::list()? {
                local::delete(&tools, &name)?;
                eprintln!("burstcert: cluster {name} is down");
            }
            if burstcert::kind::check_docker().is_ok() {
                let kind_tools = burstcert::tools::ensure_kind(&progress)?;
                burstcert::kind::delete_all(&kind_tools, &mut std::io::stderr())?;
            }
        }
        Command::Cluster {
            command: ClusterCommand::Down { name, all: false },
        } => {
            let name = match name {
                Some(n) => n,
                None => match local::list()?.as_slice() {
                    [only] => only.clone(),
                    [] => bail!("there is no local cluster"),
                    many => bail!(
                        "there are {} clusters ({}); name one with --name",
                        many.len(),
                        many.join(", ")
                    ),
                },
            };
            let tools = Tools::ensure(&progress)?;
            local::delete(&tools, &name)?;
            eprintln!("burstcert: cluster {name} is down");
        }
        Command::Cluster {
            command: ClusterCommand::Up { name, nodes },
        } => {
            let tools = Tools::ensure(&progress)?;
            // Torn down if anything below fails; kept only once it is complete.
            let cluster = LocalCluster::create(
                &tools,
                LocalOptions {
                    name,
                    cleanup_at_exit: true,
                    ..LocalOptions::default()
                },
                &progress,
            )?;
            let runtime = tokio::runtime::Runtime::new().context("start tokio")?;
            runtime.block_on(async {
                let client = client_for(cluster.kubeconfig()).await?;
                let shapes: Vec<NodeShape> = (0..nodes).map(NodeShape::standard).collect();
                create_nodes(&client, &shapes).await?;
                anyhow::Ok(())
            })?;
            let (name, kubeconfig) = cluster.keep_running();
            eprintln!(
                "burstcert: cluster {name} is up with {nodes} kwok nodes; `burstcert cluster down --name {name}` stops it"
            );
            println!("{}", kubeconfig.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}
