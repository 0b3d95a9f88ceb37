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

#[cfg(test)]
mod ci_examples;
mod commands;

use std::process::ExitCode;

use anyhow::Context as _;
use burstcert::progress::Progress;
use burstcert::tools::PREBUILT_ENV;
use clap::{Parser, Subcommand};

use commands::breakages::BreakagesArgs;
use commands::cci::CciCommand;
use commands::certify::CertifyArgs;
use commands::cluster::ClusterCommand;
use commands::measure::{BenchArgs, SoakArgs};
use commands::report::{DiffArgs, VerifyArgs};
use commands::tools::ToolsCommand;
use commands::up::UpArgs;

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
    Certify(CertifyArgs),
    /// Check a report folder against its report.json: the manifest of every other file and
    /// the seal of report.json itself. Prints each difference (file added, removed or changed,
    /// manifest missing); exits 0 when there is none, 1 otherwise.
    Verify(VerifyArgs),
    /// Compare two report folders: the scenarios whose outcome changed, and per scenario how
    /// its CCI-side transcript changed (requests added or removed, CCI objects added, removed
    /// or with a different body). Exits 0 when nothing changed, 1 otherwise.
    Diff(DiffArgs),
    /// Bring up the whole environment and keep it until Ctrl-C: a local cluster, the mock CCI,
    /// the host node and the add-on installed from its manifests. Prints the kubeconfig, so
    /// `kubectl` and `burstcert addon …` can be used on it from another terminal.
    Up(UpArgs),
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
    Bench(BenchArgs),
    /// Chaos soak on a fresh environment: N random events (scale-ups and -downs, pod deletions,
    /// the engine killed mid-scale, the API server restarted, CCI faults: 503s, latency,
    /// "applied, then timed out"), with convergence checks every 10 events and at the end: no
    /// leaked or duplicate CCI pod, every pod's phase the same on both sides, nothing lost.
    /// Prints the numbers; exits 1 if an invariant failed or the deadline passed.
    Soak(SoakArgs),
    /// Run each deliberate breakage of the engine (its cargo feature `breakages`, never
    /// shipped) through `certify --focus` on the scenarios expected to catch it, and report which
    /// scenario caught it. Writes breakages.md and breakages.json; exits 1 unless every
    /// breakage was caught.
    Breakages(BreakagesArgs),
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

fn main() -> ExitCode {
    let cli = Cli::parse();
    // `certify` says its verdict with 0, 1 and 3; its own errors need a code of their own.
    let error_code = match cli.command {
        Command::Certify(_) => burstcert::certify::ERROR_EXIT_CODE,
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

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let progress = Progress::stderr();
    match cli.command {
        Command::Certify(args) => return commands::certify::run(args),
        Command::Verify(args) => return commands::report::verify(args),
        Command::Diff(args) => return commands::report::diff(args),
        Command::Up(args) => return commands::up::run(args),
        Command::Bench(args) => return commands::measure::bench(args),
        Command::Soak(args) => return commands::measure::soak(args),
        Command::Breakages(args) => return commands::breakages::run(args),
        Command::Addon { command } => {
            let runtime = tokio::runtime::Runtime::new().context("start tokio")?;
            runtime.block_on(burstcert::addon::cli::run(command, &progress))?;
        }
        Command::Render { params, local } => {
            print!("{}", burstcert::addon::cli::render_yaml(&params, local)?);
        }
        Command::Cci { command } => commands::cci::run(command)?,
        Command::Tools { command } => commands::tools::run(command, &progress)?,
        Command::Cluster { command } => commands::cluster::run(command, &progress)?,
    }
    Ok(ExitCode::SUCCESS)
}
