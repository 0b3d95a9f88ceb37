//! `burstcert bench` and `burstcert soak`: numbers measured on a fresh environment of their own.

use std::process::ExitCode;

use anyhow::Context as _;
use clap::Args;

/// The arguments of `bench`.
#[derive(Args)]
pub struct BenchArgs {
    /// Replicas of the start-up comparison (0 skips it).
    #[arg(long, default_value_t = 1000)]
    pub replicas: usize,
    /// Rounds of the start-up comparison, each timing both sides one after the other (the
    /// side that goes first alternates); the medians are reported, since one round's times
    /// vary by a third from one to the next on a 2-core machine.
    #[arg(long, default_value_t = 3,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=20))]
    pub rounds: usize,
    /// Burst pods (each with its own ConfigMap) for the memory measurement (0 skips it).
    #[arg(long, default_value_t = 4000)]
    pub memory_pods: usize,
    /// KiB per ConfigMap.
    #[arg(long, default_value_t = 300)]
    pub configmap_kib: usize,
    /// Seconds over which the CCI requests of the idle engine (the memory run's pods
    /// Running) are counted; 0 skips it. The default is the engine's resync period (300 s)
    /// plus 30 s, so the window holds one full list.
    #[arg(long, default_value_t = 330)]
    pub idle_seconds: u64,
}

/// Measures the engine and prints the numbers.
pub fn bench(args: BenchArgs) -> anyhow::Result<ExitCode> {
    let BenchArgs {
        replicas,
        rounds,
        memory_pods,
        configmap_kib,
        idle_seconds,
    } = args;
    // The bench's cluster only: the suites keep the components' default rates.
    let rates = burstcert::cluster::local::ClientRates::UNTHROTTLED;
    let env = burstcert::env::Env::start_with(&burstcert::env::Setup::default(), Some(rates))?;
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
    Ok(ExitCode::SUCCESS)
}

/// The arguments of `soak`.
#[derive(Args)]
pub struct SoakArgs {
    /// How many events.
    #[arg(long, default_value_t = burstcert::soak::DEFAULT_EVENTS)]
    pub events: usize,
    /// Seed of the events (printed; the same seed gives the same events) [default: from the clock].
    #[arg(long)]
    pub seed: Option<u64>,
    /// Highest replica count of each of the two Deployments.
    #[arg(long, default_value_t = burstcert::soak::DEFAULT_MAX_REPLICAS,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=500))]
    pub max_replicas: usize,
    /// Bound on the soak (bring-up excluded); past it the soak stops and says so.
    #[arg(long, default_value_t = burstcert::soak::DEFAULT_DEADLINE.as_secs())]
    pub deadline_secs: u64,
}

/// Runs the chaos soak; exit 1 if an invariant failed or the deadline passed.
pub fn soak(args: SoakArgs) -> anyhow::Result<ExitCode> {
    let SoakArgs {
        events,
        seed,
        max_replicas,
        deadline_secs,
    } = args;
    let seed = seed.unwrap_or_else(burstcert::soak::clock_seed);
    eprintln!("burstcert soak: seed {seed} (replay with --seed {seed})");
    let env = burstcert::env::Env::start(&burstcert::env::Setup::default())?;
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
    Ok(if summary.failed() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
