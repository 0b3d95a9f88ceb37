//! `burstcert breakages`: which scenario catches each deliberate breakage of the engine.

use std::process::ExitCode;

use burstcert::binaries::user_path;
use clap::Args;

/// The arguments of `breakages`.
#[derive(Args)]
pub struct BreakagesArgs {
    /// Only these breakages (by name; see --list); repeatable.
    #[arg(long, num_args = 1..)]
    pub only: Vec<String>,
    /// List the breakages and the scenarios expected to catch them, and exit.
    #[arg(long)]
    pub list: bool,
    /// Folder for breakages.md, breakages.json and each breakage's certify report and log.
    #[arg(long, default_value = "burstcert-breakages")]
    pub report: std::path::PathBuf,
    /// Skip the baseline (the feature build with no breakage on the expected scenarios,
    /// which keeps a scenario that fails anyway from being credited with a catch).
    #[arg(long)]
    pub no_baseline: bool,
    /// Seconds one breakage's certify may take.
    #[arg(long, default_value_t = burstcert::breakages::DEFAULT_TIMEOUT.as_secs())]
    pub timeout_secs: u64,
    /// The Kubernetes minor every certify brings up, e.g. `1.30` [default: the pinned one].
    /// A breakage that depends on a feature that minor serves is "not shown" there.
    #[arg(long, value_name = "MINOR", value_parser = burstcert::tools::Minor::parse)]
    pub kubernetes: Option<&'static burstcert::tools::Minor>,
    /// Where each breakage's certify runs: `local`, or `kind` (a kind cluster each).
    #[arg(long, value_enum, default_value_t = super::up::UpClusterArg::Local)]
    pub cluster: super::up::UpClusterArg,
}

/// Lists the breakages, or runs them and prints the table; exit 0 only if every one was caught.
pub fn run(args: BreakagesArgs) -> anyhow::Result<ExitCode> {
    let BreakagesArgs {
        only,
        list,
        report,
        no_baseline,
        timeout_secs,
        kubernetes,
        cluster,
    } = args;
    if list {
        let selected = burstcert::breakages::select(&only).map_err(|e| anyhow::anyhow!(e))?;
        for b in selected {
            println!("{}\t{}\t{}", b.name, b.expected_label(), b.symptom);
        }
        return Ok(ExitCode::SUCCESS);
    }
    let run = burstcert::breakages::run(&burstcert::breakages::Options {
        only,
        report_dir: user_path(report),
        baseline: !no_baseline,
        timeout: std::time::Duration::from_secs(timeout_secs),
        kubernetes: kubernetes.unwrap_or(burstcert::tools::Minor::PINNED),
        cluster: match cluster {
            super::up::UpClusterArg::Local => burstcert::breakages::Cluster::Local,
            super::up::UpClusterArg::Kind => burstcert::breakages::Cluster::Kind,
        },
    })?;
    print!("{}", run.markdown());
    eprintln!("burstcert: breakages: {}", run.summary());
    Ok(if run.all_caught() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
