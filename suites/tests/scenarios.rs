//! Every scenario of the catalogue (and the proposed ones) at the default release, in one binary
//! sharing its clusters (one link, one bring-up): `cargo test -p suites --test scenarios` runs
//! them all, `… -- vol::` one family, `… -- vol_05` one scenario (trials are generated from
//! `burstcert::catalogue` by `suites`, see its docs).
//!
//! The other sides of the release gates need an engine at another release, so they have their
//! own binary (`gates.rs`, both releases side by side).

use std::process::ExitCode;
use std::sync::Arc;

use burstcert::env::Run;
use burstcert::scenario::{Outcome, Scenario};
use libtest_mimic::Failed;

mod existing;

fn main() -> ExitCode {
    let logs: suites::MoreTrial = (
        "vk::kubectl_logs_of_a_burst_pod".into(),
        Box::new(kubectl_logs),
    );
    let existing: suites::MoreTrial = (existing::NAME.into(), Box::new(existing::trial));
    suites::main(None, suites::every_scenario(), vec![logs, existing], true)
}

/// Not a SCENARIOS.md ID, so not in the catalogue: `kubectl logs` of a burst pod goes from the
/// API server to the engine's kubelet API and answers what CCI holds for its container.
fn kubectl_logs(run: Arc<Run>) -> Result<(), Failed> {
    suites::block_on(async {
        // Beside the confined scenarios, never while a trial holds the cluster alone.
        let (env, _shared) = burstcert::catalogue::hold_shared(&run)
            .await
            .map_err(|e| format!("setting up VK-LOGS: {e}"))?;
        let scenario = Scenario::new("VK-LOGS", env)
            .await
            .map_err(|e| format!("setting up VK-LOGS: {e}"))?;
        let outcome = burstcert::scenarios::vk::vk_logs(&scenario).await;
        if let Err(e) = scenario.finish().await {
            eprintln!("VK-LOGS: clean-up failed: {e}");
        }
        match outcome {
            Ok(Outcome::Passed) => Ok(()),
            Ok(other) => Err(format!("VK-LOGS {}: {}", other.label(), other.reason()).into()),
            Err(e) => Err(format!("VK-LOGS failed: {e:#}").into()),
        }
    })?
}
