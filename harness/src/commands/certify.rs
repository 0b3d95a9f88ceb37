//! `burstcert certify`: its arguments and how they become [`burstcert::certify::Options`].

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use burstcert::binaries::user_path;
use burstcert::target::Launch;
use burstcert::tools::Minor;
use clap::{Args, ValueEnum};

use super::{read_auth, read_ca_file};

/// Where `certify` runs (see `--cluster`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ClusterArg {
    /// A fresh local cluster, the mock CCI and the add-on.
    Local,
    /// The cluster of --kubeconfig, with the add-on installed.
    Existing,
    /// A kind cluster from locally made images.
    Kind,
}

impl ClusterArg {
    /// The target this value has the harness bring up at `kubernetes`; `None` for a cluster it
    /// is handed.
    fn launch(self, kubernetes: &'static Minor) -> Option<Arc<dyn Launch>> {
        match self {
            ClusterArg::Local => Some(Arc::new(burstcert::target::local::Local {
                kubernetes,
                ..Default::default()
            })),
            ClusterArg::Kind => Some(Arc::new(burstcert::target::kind::Kind { kubernetes })),
            ClusterArg::Existing => None,
        }
    }
}

/// How the add-on burstcert installs authenticates to the mock CCI.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum CciAuthArg {
    /// The tenant's IAM token in the add-on's Secret.
    Token,
    /// An AK/SK pair that signs every request; no token.
    Aksk,
}

/// The arguments of `certify`.
#[derive(Args)]
pub struct CertifyArgs {
    /// The add-on release to certify [default: 1.5.18 on a local cluster; on an existing
    /// one, the installed release (a different --release is certified with a warning:
    /// gated scenarios then check that release's side, which shows whether the cluster
    /// behaves as that release)].
    #[arg(long, value_parser = burstcert::certify::parse_release)]
    pub release: Option<burst_rules::release::Release>,
    /// Cluster to run on: `local` (a fresh local cluster, the mock CCI and the add-on),
    /// `existing` (the cluster of --kubeconfig with the add-on installed, and the CCI
    /// endpoint it bursts to: the scenarios that need only the cluster's API and CCI's
    /// public API run, the rest are "not run", so the verdict is at best INCOMPLETE) or
    /// `kind` (a kind cluster from locally made images, the mock in a container: needs a
    /// running Docker engine, see docs/kind.md; every scenario runs there).
    #[arg(long, value_enum, default_value_t = ClusterArg::Local)]
    pub cluster: ClusterArg,
    /// The Kubernetes minor(s) of the cluster burstcert brings up (local, kind), each at its
    /// pinned patch release: `1.30` (or `oldest`, `pinned`), or a list `1.30,1.36` certified
    /// one after another, each report in --report's folder under the version's name, a
    /// summary beside them, the exit code the worst version's [default: the pinned minor;
    /// `burstcert tools versions` lists them].
    #[arg(long, value_name = "MINOR[,MINOR…]", value_parser = burstcert::matrix::parse_kubernetes)]
    pub kubernetes: Option<burstcert::matrix::Kubernetes>,
    /// Kubeconfig of the existing cluster (with --cluster existing).
    #[arg(long, value_name = "PATH", required_if_eq("cluster", "existing"))]
    pub kubeconfig: Option<std::path::PathBuf>,
    /// CCI's API endpoint (with --cluster existing; default: the one the add-on was
    /// installed with, when burstcert installed it). The tenant's credential is a token
    /// (CCI_TOKEN or --cci-token-file) or an AK/SK pair (CCI_ACCESS_KEY and CCI_SECRET_KEY,
    /// or --cci-aksk-file), never a flag.
    #[arg(long, value_name = "URL")]
    pub cci_endpoint: Option<String>,
    /// File holding the tenant's CCI token (instead of CCI_TOKEN).
    #[arg(long, value_name = "PATH")]
    pub cci_token_file: Option<std::path::PathBuf>,
    /// File holding the tenant's AK/SK pair, one line AK:SK (instead of CCI_ACCESS_KEY and
    /// CCI_SECRET_KEY): burstcert signs its requests to CCI with it.
    #[arg(long, value_name = "PATH")]
    pub cci_aksk_file: Option<std::path::PathBuf>,
    /// PEM file of the CA certificates CCI's certificate is checked against (with
    /// --cluster existing, for a private endpoint); default: the system's CA roots.
    #[arg(long, value_name = "PATH")]
    pub cci_ca_file: Option<std::path::PathBuf>,
    /// The cluster id the add-on was installed with (default: read from the add-on).
    #[arg(long)]
    pub cluster_id: Option<String>,
    /// The namespace the add-on is installed in (with --cluster existing).
    #[arg(long, value_name = "NAMESPACE", default_value = burstcert::certify::DEFAULT_ADDON_NAMESPACE)]
    pub addon_namespace: String,
    /// How the add-on burstcert installs (local, kind) authenticates to the mock CCI:
    /// `token` (the tenant's token in its Secret) or `aksk` (an AK/SK pair that signs every
    /// request, no token), to certify as a tenant that authenticates so. On an existing
    /// cluster the add-on holds what it was installed with.
    #[arg(long, value_enum, default_value_t = CciAuthArg::Token)]
    pub cci_auth: CciAuthArg,
    /// The add-on's virtual node (with --cluster existing; default: found: bursting-node,
    /// a CCI 1.0 add-on's virtual-kubelet, the node the add-on's kubelet names, or the one
    /// node labelled type=virtual-kubelet).
    #[arg(long, value_name = "NAME")]
    pub virtual_node: Option<String>,
    /// Run only these scenario IDs or families (e.g. `WL-02`, `VK`); repeatable.
    #[arg(long, num_args = 1..)]
    pub focus: Vec<String>,
    /// Run exactly the scenarios that failed in DIR/report.json (flaky ones too), at its
    /// release unless --release says otherwise.
    #[arg(long, value_name = "DIR", conflicts_with = "focus")]
    pub rerun_failed: Option<std::path::PathBuf>,
    /// Run a failed scenario again up to N times: its row then says `failed N+1 of N+1`
    /// or `flaky (failed k of n)`; a flaky scenario fails the run.
    #[arg(long, value_name = "N", default_value_t = 0,
          value_parser = clap::value_parser!(u32).range(0..=10))]
    pub retries: u32,
    /// Skip these scenario IDs or families; repeatable.
    #[arg(long, num_args = 1..)]
    pub skip: Vec<String>,
    /// Folder for the report.
    #[arg(long, default_value = "burstcert-report")]
    pub report: std::path::PathBuf,
    /// How many scenarios confined to their own namespace run at once. Cluster-wide ones
    /// (install, uninstall, upgrade, lock, restarts…) always run alone on a cluster: on a
    /// local cluster with more than 1 job, on extra local clusters of their own (one per
    /// core, at most 2) beside the others; on kind or an existing cluster, after them. 1 runs
    /// every scenario one after another in catalogue order on one cluster. Default: twice the
    /// cores, between 2 and 6.
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=32))]
    pub jobs: Option<u16>,
}

/// Certifies as `args` say; the exit code is the verdict's.
pub fn run(args: CertifyArgs) -> anyhow::Result<ExitCode> {
    let CertifyArgs {
        release,
        cluster,
        kubernetes,
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
    } = args;
    let report = user_path(report);
    if kubernetes.is_some() && cluster == ClusterArg::Existing {
        eprintln!(
            "burstcert: usage error: --kubernetes chooses the cluster burstcert brings up; an existing cluster runs the version it serves"
        );
        return Ok(ExitCode::from(burstcert::certify::USAGE_EXIT_CODE));
    }
    let minors = kubernetes.map_or_else(|| vec![Minor::PINNED], |k| k.0);
    if minors.len() > 1 {
        if rerun_failed.is_some() {
            eprintln!(
                "burstcert: usage error: --rerun-failed reads one report: give one --kubernetes (each version's report is in a folder of its own)"
            );
            return Ok(ExitCode::from(burstcert::certify::USAGE_EXIT_CODE));
        }
        // Each version by a child burstcert with the same arguments (see matrix).
        let args: Vec<_> = std::env::args_os().skip(1).collect();
        let program = std::env::current_exe().context("find the running burstcert")?;
        let release = release.map_or_else(
            || burstcert::certify::DEFAULT_RELEASE.to_owned(),
            |r| r.to_string(),
        );
        let matrix =
            burstcert::matrix::run(program.as_os_str(), &args, &minors, &release, &report)?;
        for line in matrix.lines() {
            eprintln!("burstcert: {line}");
        }
        eprintln!(
            "burstcert: summary in {}",
            report.join("summary.md").display()
        );
        return Ok(ExitCode::from(matrix.exit_code()));
    }
    let mut release = release;
    if let Some(dir) = rerun_failed.map(user_path) {
        let path = dir.join("report.json");
        let text =
            std::fs::read_to_string(&path).with_context(|| format!("read {}", path.display()))?;
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
                .and_then(|json| burstcert::certify::parse_release(json["release"].as_str()?).ok());
        }
    }
    let jobs = jobs.map_or_else(burstcert::certify::default_jobs, usize::from);
    let cluster = match (cluster, kubeconfig) {
        (ClusterArg::Existing, Some(path)) => {
            burstcert::certify::ClusterChoice::Existing(burstcert::certify::ExistingChoice {
                kubeconfig: user_path(path),
                cci_endpoint,
                cci_auth: read_auth(cci_token_file, cci_aksk_file)?,
                cci_ca: read_ca_file(cci_ca_file)?,
                cluster_id,
                addon_namespace,
                virtual_node,
            })
        }
        // NB: clap requires --kubeconfig with `existing`.
        (other, _) => other.launch(minors[0]).map_or_else(
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
    // certify tears down the environments it brought up, whatever its outcome.
    let result = runtime.block_on(burstcert::certify::certify(&options))?;
    let slowest = result.slowest(5);
    if !slowest.is_empty() {
        eprintln!("burstcert: slowest scenarios: {}", slowest.join(", "));
    }
    eprintln!(
        "burstcert: {} (report in {})",
        result.summary(),
        report.display()
    );
    Ok(ExitCode::from(result.verdict().exit_code()))
}
