//! The suites' runner: every suite binary (`tests/scenarios.rs`, `tests/gates.rs`) is a
//! `harness = false` test whose trials are generated from the harness's catalogue, so each
//! scenario is described once (`burstcert::catalogue`) and no ID can be forgotten by a suite.
//!
//! A trial is named `{family}::{id}` in lower case (`vol::vol_05`, `r::r_01`), so
//! `cargo test -p suites --test scenarios vol::` runs a family and `… vol_05` one scenario;
//! `--list`, `--exact`, `--skip`, `--test-threads` and `--ignored` work as with libtest.
//!
//! Scenarios mostly wait on the cluster, so every trial gets a thread of its own (unless
//! `--test-threads` says otherwise) and the harness paces them as `burstcert certify` does: the
//! cluster-wide ones each alone on an extra local cluster of their own
//! (`burstcert::env::Run::new`), beside the scenarios confined to their own
//! namespace, of which [`burstcert::certify::default_jobs`] run at once on the shared one. A scenario
//! that is not applicable at the suite's release shows as ignored with the reason: never as
//! passed.

use std::process::ExitCode;
use std::sync::Arc;

use burst_rules::release::Release;
use burstcert::catalogue::{self, Entry};
use burstcert::env::{Run, Setup};
use burstcert::gates::{Bound, Gate};
use burstcert::scenario::Outcome;
use libtest_mimic::{Arguments, Completion, Failed, Trial};

/// How many trials of the gates binary run at once by default: its trials are grouped by
/// release, each release a cluster of its own torn down when its trials end, so this bounds the
/// clusters up at once too (about two or three on a 2-core machine).
const GATE_EDGE_THREADS: usize = 4;

/// The trial name of scenario `id`: `VOL-05` → `vol::vol_05`.
pub fn trial_name(id: &str) -> String {
    let lower = id.to_ascii_lowercase();
    let family = lower.split('-').next().unwrap_or_default();
    format!("{family}::{}", lower.replace('-', "_"))
}

/// The catalogue's scenarios and the proposed ones: what `tests/scenarios.rs` runs at the
/// default release.
pub fn every_scenario() -> Vec<Entry> {
    catalogue::entries()
        .into_iter()
        .chain(catalogue::proposed())
        .collect()
}

/// The releases on the two sides of `gate`'s edge, the one without the behaviour first: for a
/// gate from X (`>= X`) the patch before X and X; for a gate up to X (`<= X`) the patch after X
/// and X. An engine that moved a threshold by one release fails on one side.
pub fn edge(gate: Gate) -> [Release; 2] {
    match gate.bound() {
        Bound::AtLeast(x) => {
            assert!(x.patch > 0, "a gate from {x}: no patch before it to check");
            [Release::new(x.major, x.minor, x.patch - 1), x]
        }
        Bound::AtMost(x) => [Release::new(x.major, x.minor, x.patch + 1), x],
    }
}

/// What the gates binary runs: for every gate of the harness's gate table (`burstcert::gates`,
/// read from the spec, never the engine's `burst_rules::release`), its gated scenarios at each
/// release of its [`edge`], in the table's order.
pub fn gate_edges() -> Vec<(Release, Vec<Entry>)> {
    Gate::ALL
        .into_iter()
        .flat_map(|gate| {
            let gated: Vec<Entry> = catalogue::entries()
                .into_iter()
                .filter(|e| e.gate.is_some_and(|g| g.gate == gate))
                .collect();
            edge(gate).map(|release| (release, gated.clone()))
        })
        .collect()
}

/// One trial per entry, in run order ([`in_run_order`]), on `run`'s environments.
pub fn trials(run: &Arc<Run>, entries: Vec<Entry>) -> Vec<Trial> {
    let permits = confined_permits();
    in_run_order(entries)
        .into_iter()
        .map(|entry| named_scenario_trial(run, &permits, trial_name(entry.id), entry, None))
        .collect()
}

/// Confined scenarios first, cluster-wide ones after (each group in catalogue order).
fn in_run_order(mut entries: Vec<Entry>) -> Vec<Entry> {
    entries.sort_by_key(Entry::cluster_wide);
    entries
}

/// Paces one run's confined scenarios: [`burstcert::certify::default_jobs`] at once.
fn confined_permits() -> Arc<tokio::sync::Semaphore> {
    Arc::new(tokio::sync::Semaphore::new(
        burstcert::certify::default_jobs(),
    ))
}

/// The trial `name` that runs `entry` through `burstcert::catalogue::run` on `run`'s
/// environments, a confined one when one of `permits` is free.
fn named_scenario_trial(
    run: &Arc<Run>,
    permits: &Arc<tokio::sync::Semaphore>,
    name: String,
    entry: Entry,
    last: Option<LastOut>,
) -> Trial {
    let (id, wide) = (entry.id, entry.cluster_wide());
    let (run, permits) = (Arc::clone(run), Arc::clone(permits));
    Trial::ignorable_test(name, move || {
        let outcome = block_on(async {
            // A cluster-wide scenario is paced by the harness (alone on its environment).
            let _permit = if wide {
                None
            } else {
                permits.acquire().await.ok()
            };
            catalogue::run(&run, id).await
        });
        if let Some(last) = &last {
            last.done();
        }
        let outcome = outcome?;
        match outcome {
            Outcome::Passed => Ok(Completion::Completed),
            Outcome::NotApplicable(why) => {
                Ok(Completion::ignored_with(format!("not applicable: {why}")))
            }
            other => Err(Failed::from(format!(
                "{id} {}: {}",
                other.label(),
                other.reason()
            ))),
        }
    })
}

/// Runs `future` on a runtime of its own, as `#[tokio::test(flavor = "multi_thread")]` would.
pub fn block_on<T>(future: impl Future<Output = T>) -> Result<T, Failed> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Failed::from(format!("cannot start a tokio runtime: {e}")))?;
    Ok(runtime.block_on(future))
}

/// A hand-written trial (not in the catalogue) of a suite binary: its name, and its body, given
/// the suite's run.
pub type MoreTrial = (
    String,
    Box<dyn FnOnce(Arc<Run>) -> Result<(), Failed> + Send>,
);

/// A suite binary's `main`: runs a trial per entry ([`trials`]) after the hand-written `more`
/// (confined to their namespace), with the engine at `release` (`None`: the default), parsing
/// libtest's arguments. `--test-threads` defaults to one per trial (the harness paces them, see
/// the crate docs); with `extra_clusters` the cluster-wide scenarios get extra local clusters
/// when something runs beside them (`--test-threads 1`: one cluster, one scenario at a time, in
/// that order).
pub fn main(
    release: Option<&str>,
    entries: Vec<Entry>,
    more: Vec<MoreTrial>,
    extra_clusters: bool,
) -> ExitCode {
    let mut args = Arguments::from_args();
    let release = release.map_or_else(Setup::default, |r| {
        Setup::at(Release::parse(r).expect("a suite's release parses"))
    });
    let suite = Suite::new(
        &args,
        release,
        entries,
        more,
        extra_clusters,
        false,
        trial_name,
    );
    args.test_threads.get_or_insert(suite.trials.len().max(1));
    let passed = !libtest_mimic::run(&args, suite.trials).has_failed();
    exit_code(passed && suite.run.destroy_started().is_ok())
}

/// A suite binary's exit code for whether every trial passed.
fn exit_code(passed: bool) -> ExitCode {
    if passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// One release's trials and the run whose environments they use.
struct Suite {
    run: Arc<Run>,
    trials: Vec<Trial>,
}

/// Tears a run down once the last of its selected trials ended (the gates binary's releases
/// each have a cluster: one whose trials are done should not hold memory while the others run).
/// A suite also tears every run down at its end (a teardown is idempotent).
#[derive(Clone)]
struct LastOut {
    run: Arc<Run>,
    left: Arc<std::sync::atomic::AtomicUsize>,
}

impl LastOut {
    fn done(&self) {
        if self.left.fetch_sub(1, std::sync::atomic::Ordering::AcqRel) == 1
            && let Err(e) = self.run.destroy_started()
        {
            eprintln!("tearing down a suite's environments: {e}");
        }
    }
}

impl Suite {
    /// The trials of `entries` (named by `name`, from the scenario ID) after the hand-written
    /// `more`, on a run installing `setup`: with `extra_clusters` (and more than one test
    /// thread) the cluster-wide scenarios get extra local clusters when something that `args`
    /// selects runs beside them.
    fn new(
        args: &Arguments,
        setup: Setup,
        entries: Vec<Entry>,
        more: Vec<MoreTrial>,
        extra_clusters: bool,
        tear_down_early: bool,
        name: impl Fn(&str) -> String,
    ) -> Self {
        let entries: Vec<(String, Entry)> = in_run_order(entries)
            .into_iter()
            .map(|entry| (name(entry.id), entry))
            .collect();
        // libtest's filter sees names only: a probe trial of each name tells what will run.
        let selected = |name: &str| !args.is_filtered_out(&Trial::test(name, || Ok(())));
        let selected_more = more.iter().filter(|(name, _)| selected(name)).count();
        let mut confined = selected_more;
        let mut wide = 0;
        for (name, entry) in &entries {
            if selected(name) {
                if entry.cluster_wide() {
                    wide += 1;
                } else {
                    confined += 1;
                }
            }
        }
        let threads = args
            .test_threads
            .unwrap_or(more.len() + entries.len())
            .max(1);
        let extras = if extra_clusters && threads > 1 {
            burstcert::env::extra_clusters_for(wide, confined)
        } else {
            0
        };
        let run = Run::new(
            setup,
            Arc::new(burstcert::target::local::Local::default()),
            extras,
        );
        let mut trials: Vec<Trial> = more
            .into_iter()
            .map(|(name, body)| {
                let run = Arc::clone(&run);
                Trial::test(name, move || body(run))
            })
            .collect();
        let permits = confined_permits();
        // Counts the selected scenario trials only: a trial filtered out never ends.
        let last = tear_down_early.then(|| LastOut {
            run: Arc::clone(&run),
            left: Arc::new((wide + confined - selected_more).into()),
        });
        trials.extend(entries.into_iter().map(|(name, entry)| {
            let last = last.clone().filter(|_| selected(&name));
            named_scenario_trial(&run, &permits, name, entry, last)
        }));
        Self { run, trials }
    }
}

/// The trial name of scenario `id` checked at `release` by the gates binary:
/// `at_1_3_24::vol::vol_04` (a filter `vol::` still selects it; `at_1_3_24::` one release).
pub fn gates_trial_name(release: &str, id: &str) -> String {
    format!("at_{}::{}", release.replace('.', "_"), trial_name(id))
}

/// The gates binary's `main`: every gate's edge ([`gate_edges`]), its gated scenarios at the
/// release on each side, each release on a run (a cluster) of its own, torn down once its
/// trials ended; all in this one process, [`GATE_EDGE_THREADS`] trials at once by default.
pub fn gates_main() -> ExitCode {
    let mut args = Arguments::from_args();
    let mut trials = Vec::new();
    let mut runs = Vec::new();
    for (release, entries) in gate_edges() {
        let at = release.to_string();
        let suite = Suite::new(
            &args,
            Setup::at(release),
            entries,
            Vec::new(),
            false,
            true,
            |id| gates_trial_name(&at, id),
        );
        trials.extend(suite.trials);
        runs.push(suite.run);
    }
    args.test_threads.get_or_insert(GATE_EDGE_THREADS);
    let passed = !libtest_mimic::run(&args, trials).has_failed();
    let destroyed = runs.iter().all(|run| run.destroy_started().is_ok());
    exit_code(passed && destroyed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    // The suites cover the catalogue: every catalogue ID (and every proposed one) is a trial of
    // `tests/scenarios.rs` under its own name, and every gated ID is also run on the other side
    // of its gate by a gates binary. (No cluster: this asks the generator what it would run.
    // Here, not in a test binary of its own: one link less on 2 cores.)

    #[test]
    fn every_catalogue_id_is_a_trial_of_the_scenarios_suite_under_a_name_of_its_own() {
        let ids: Vec<&str> = catalogue::entries()
            .iter()
            .chain(catalogue::proposed().iter())
            .map(|e| e.id)
            .collect();
        assert!(ids.len() >= 49, "the catalogue lost IDs: {ids:?}");
        let names: Vec<String> = trials(&Run::local(Setup::default()), every_scenario())
            .iter()
            .map(|t| t.name().to_owned())
            .collect();
        let unique: BTreeSet<&String> = names.iter().collect();
        assert_eq!(
            unique.len(),
            names.len(),
            "two trials share a name: {names:?}"
        );
        let missing: Vec<&&str> = ids
            .iter()
            .filter(|id| !names.contains(&trial_name(id)))
            .collect();
        assert!(
            missing.is_empty(),
            "catalogue IDs no trial runs: {missing:?}"
        );
        assert_eq!(
            names.len(),
            ids.len(),
            "trials beyond the catalogue: {names:?}"
        );
    }

    #[test]
    fn every_gated_scenario_runs_on_both_sides_of_its_gates_edge() {
        let gated: Vec<Entry> = catalogue::entries()
            .into_iter()
            .filter(|e| e.gate.is_some())
            .collect();
        assert!(!gated.is_empty(), "the catalogue has no gated scenario");
        let edges = gate_edges();
        for entry in gated {
            let gate = entry.gate.unwrap().gate;
            let sides: Vec<bool> = edges
                .iter()
                .filter(|(_, entries)| entries.iter().any(|e| e.id == entry.id))
                .map(|(release, _)| gate.applies_to(*release))
                .collect();
            assert_eq!(
                sides,
                [false, true],
                "{} should run once without its gate's behaviour, then once with it",
                entry.id
            );
        }
        let names: BTreeSet<String> = edges
            .iter()
            .flat_map(|(release, entries)| {
                entries
                    .iter()
                    .map(|e| gates_trial_name(&release.to_string(), e.id))
            })
            .collect();
        assert_eq!(
            names.len(),
            edges.iter().map(|(_, e)| e.len()).sum::<usize>(),
            "two trials share a name"
        );
    }

    #[test]
    fn an_edge_is_the_release_next_to_the_threshold_and_the_threshold() {
        assert_eq!(
            edge(Gate::EtcLocaltimeHostPath),
            [Release::new(1, 5, 8), Release::new(1, 5, 9)]
        );
        assert_eq!(
            edge(Gate::ArmUnsupported),
            [Release::new(1, 5, 38), Release::new(1, 5, 37)]
        );
        for gate in Gate::ALL {
            let [without, with] = edge(gate);
            assert!(
                !gate.applies_to(without) && gate.applies_to(with),
                "{gate:?}"
            );
        }
    }

    #[test]
    fn trial_names_put_the_family_first_so_a_filter_selects_a_family_or_one_id() {
        assert_eq!(trial_name("VOL-05"), "vol::vol_05");
        assert_eq!(trial_name("R-01"), "r::r_01");
        assert_eq!(trial_name("INST-02"), "inst::inst_02");
    }

    #[test]
    fn gates_trial_names_say_the_release_and_keep_the_family_filter() {
        assert_eq!(
            gates_trial_name("1.3.24", "VOL-04"),
            "at_1_3_24::vol::vol_04"
        );
        assert!(gates_trial_name("1.5.38", "INST-02").contains("inst::"));
    }

    #[test]
    fn confined_scenarios_come_before_cluster_wide_ones() {
        let entries = every_scenario();
        let names: Vec<String> = trials(&Run::local(Setup::default()), entries.clone())
            .iter()
            .map(|t| t.name().to_owned())
            .collect();
        let first_wide = entries
            .iter()
            .filter(|e| e.cluster_wide())
            .map(|e| names.iter().position(|n| *n == trial_name(e.id)).unwrap())
            .min()
            .unwrap();
        let last_confined = entries
            .iter()
            .filter(|e| !e.cluster_wide())
            .map(|e| names.iter().position(|n| *n == trial_name(e.id)).unwrap())
            .max()
            .unwrap();
        assert!(last_confined < first_wide, "{names:?}");
        assert_eq!(names.len(), entries.len());
    }
}
