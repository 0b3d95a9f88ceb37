//! Scenarios that exist only for the tests of the report's machinery: a deliberately flaky one,
//! which fails on its first run in a process and passes on the next, and one that always
//! passes. `certify --retries` must name the first flaky and never certify it, and
//! `certify --rerun-failed` must run exactly the failed one again; only a real run of the
//! runner shows both, and no scenario of the spec fails on purpose.
//!
//! They join the catalogue only when the environment variable [`ENV`] is `1`, which only tests
//! set: the catalogue users certify never holds them, and a run that holds them is judged
//! against another catalogue (its `catalogue_sha256` differs) and can never be CERTIFIED (the
//! flaky one fails at least once in every process).

use std::sync::atomic::{AtomicU32, Ordering};

use crate::catalogue::{Body, Entry};
use crate::scenario::{Outcome, Scenario};

/// The environment variable that adds the fixtures to the catalogue when it is `1`.
pub const ENV: &str = "BURSTCERT_REPORT_FIXTURES";

/// The flaky fixture's ID.
pub const FLAKY: &str = "FIXTURE-01";
/// The fixture that always passes.
pub const PASSING: &str = "FIXTURE-02";

/// How often the flaky fixture ran in this process.
static FLAKY_RUNS: AtomicU32 = AtomicU32::new(0);

/// What the flaky fixture's failure says just before it quotes the CCI credential.
pub const QUOTES_THE_CREDENTIAL: &str = "quoting the CCI credential as a careless error could: ";

/// Fails on its first run in this process, its failure quoting the run's CCI credential (the
/// report must redact it in every file, evidence included); passes after.
fn flaky(s: &Scenario) -> crate::scenarios::BodyFuture<'_> {
    Box::pin(async move {
        let run = FLAKY_RUNS.fetch_add(1, Ordering::SeqCst) + 1;
        anyhow::ensure!(
            run > 1,
            "{FLAKY} fails on its first run in a process, by design, {QUOTES_THE_CREDENTIAL}{}",
            s.cci().auth().secret()
        );
        Ok(Outcome::Passed)
    })
}

fn passing(_: &Scenario) -> crate::scenarios::BodyFuture<'_> {
    Box::pin(async { Ok(Outcome::Passed) })
}

/// Whether [`ENV`] asks for the fixtures.
pub fn enabled() -> bool {
    std::env::var(ENV).is_ok_and(|v| v == "1")
}

/// The fixtures, after the spec's scenarios, when [`enabled`]; else none.
pub fn entries() -> Vec<Entry> {
    if !enabled() {
        return Vec::new();
    }
    let entry = |id, title, body: Body| Entry {
        id,
        title,
        body: Some(body),
        gate: None,
        needs: &[],
    };
    vec![
        entry(
            FLAKY,
            "Test fixture: fails on its first run in a process, passes on the next",
            flaky,
        ),
        entry(PASSING, "Test fixture: always passes", passing),
    ]
}
