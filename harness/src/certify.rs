//! `burstcert certify`: run the catalogue's scenarios as a program and write the report
//! (`report.md`, `junit.xml`, `report.json`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use burst_rules::release::Release;
use futures::StreamExt as _;

use chrono::{DateTime, Utc};

use crate::catalogue::{self, Entry, Outcome};
use crate::error::Result;
use crate::report::evidence::{self, Gatherer};
use crate::report::provenance::{self, Provenance};
use crate::scenario::Scenario;

pub use crate::addon::params::DEFAULT_RELEASE;
// The report lives in its own module; these names stay reachable from the runner's.
pub use crate::report::{Report, Row, Verdict};

/// What to certify and where to write the report.
#[derive(Clone, Debug)]
pub struct Options {
    /// The add-on release to certify, e.g. `1.5.18`; `None`: [`DEFAULT_RELEASE`] on a local
    /// cluster, the installed release on an existing one.
    pub release: Option<Release>,
    /// Only these IDs (empty: all).
    pub focus: Vec<String>,
    /// Not these IDs.
    pub skip: Vec<String>,
    /// Where `report.md`, `junit.xml` and `report.json` go.
    pub report_dir: PathBuf,
    /// Which cluster the scenarios run on.
    pub cluster: ClusterChoice,
    /// How many namespace-confined scenarios run at once (1: one after another, in catalogue
    /// order).
    pub jobs: usize,
    /// How the add-on the harness installs (local, kind) authenticates to the mock CCI.
    pub addon_auth: crate::env::AddonAuth,
    /// How many times a failed scenario runs again (0: never); see [`crate::report::classify`].
    pub retries: u32,
}

/// Which cluster `certify` runs on.
#[derive(Clone, Debug)]
pub enum ClusterChoice {
    /// A target the harness brings up itself: a fresh local cluster with the mock CCI and the
    /// add-on on the host node (the default, [`crate::target::local::Local`]), or a kind
    /// cluster from locally made images ([`crate::target::kind::Kind`]), …
    Made(std::sync::Arc<dyn crate::target::Launch>),
    /// A cluster where the add-on is installed, by kubeconfig, with the CCI endpoint it bursts
    /// to: the scenarios that need only what such a cluster offers run; the rest are "not run".
    Existing(ExistingChoice),
}

impl Default for ClusterChoice {
    fn default() -> Self {
        ClusterChoice::Made(std::sync::Arc::new(crate::target::local::Local::default()))
    }
}

/// How to reach an existing cluster and its CCI side.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExistingChoice {
    /// The cluster's kubeconfig.
    pub kubeconfig: PathBuf,
    /// CCI's API endpoint; default: the one the add-on was installed with (its state).
    pub cci_endpoint: Option<String>,
    /// The tenant's credential, a token or an AK/SK pair (from the environment or a file,
    /// never a flag).
    pub cci_auth: Option<crate::cci::CciAuth>,
    /// The CA certificates (PEM) CCI's certificate is checked against, for a private endpoint;
    /// `None`: the system's CA roots.
    pub cci_ca: Option<String>,
    /// The cluster id; default: read from the add-on (its state, or the virtual kubelet's
    /// `--cluster-id` or `CLUSTER_ID`).
    pub cluster_id: Option<String>,
    /// The namespace the add-on is installed in ([`DEFAULT_ADDON_NAMESPACE`] by default).
    pub addon_namespace: String,
    /// The virtual node; default: found ([`crate::discover::discover`]).
    pub virtual_node: Option<String>,
}

/// The namespace CCE (and burstcert) install the add-on in.
pub const DEFAULT_ADDON_NAMESPACE: &str = crate::addon::render::NAMESPACE;

/// An existing cluster where no add-on can be found: every selected scenario is "not run",
/// saying so (nothing can be checked, and nothing is certified).
async fn report_no_addon(
    options: &Options,
    existing: &ExistingChoice,
    client: &kube::Client,
    started: DateTime<Utc>,
) -> Result<Report> {
    let version = client
        .apiserver_version()
        .await
        .map_err(|source| crate::Error::Kube {
            context: format!("reach the cluster of {}", existing.kubeconfig.display()),
            source,
        })?;
    let release = options.release.unwrap_or(default_release());
    let rows = catalogue::entries()
        .iter()
        .map(|entry| {
            let outcome = match excluded(entry, options) {
                Some(why) => Outcome::Skipped(why),
                None => Outcome::NotRun(format!(
                    "the add-on is not installed on this cluster (no {}/{} Deployment, no add-on state, no virtual node: {} or a node labelled {}={}); see --addon-namespace and --virtual-node",
                    existing.addon_namespace,
                    crate::discover::VIRTUAL_KUBELET_DEPLOYMENTS.join(" or "),
                    crate::discover::VIRTUAL_NODES.join(", "),
                    crate::discover::VIRTUAL_NODE_LABEL.0,
                    crate::discover::VIRTUAL_NODE_LABEL.1,
                )),
            };
            Row::new(entry.id, entry.title_for(release), outcome, 0.0)
        })
        .collect();
    let report = Report {
        release: release.to_string(),
        cluster: format!("existing ({})", existing.kubeconfig.display()),
        kubernetes: version.git_version,
        rows,
        provenance: Some(provenance(options, started, Vec::new())),
    };
    // No environment was started: no credential of the run's to redact.
    report.write_redacting(&options.report_dir, &[])?;
    Ok(report)
}

/// [`DEFAULT_RELEASE`] as a release.
fn default_release() -> Release {
    parse_release(DEFAULT_RELEASE).expect("the default release is X.Y.Z")
}

/// Prepares the shared environment of this process as the existing cluster: reads the
/// installed add-on, checks the release and the credential. `Ok(None)` when no add-on is there.
async fn attach_existing(
    options: &Options,
    existing: &ExistingChoice,
    client: &kube::Client,
) -> Result<Option<(Release, std::sync::Arc<dyn crate::target::Launch>)>> {
    let Some(installed) = crate::discover::read(
        client,
        &existing.addon_namespace,
        existing.virtual_node.as_deref(),
    )
    .await?
    else {
        return Ok(None);
    };
    let step = |detail: String| crate::Error::Step {
        step: "certify an existing cluster".into(),
        detail,
    };
    let release = match (options.release, installed.release) {
        (Some(told), Some(found)) if told != found => {
            eprintln!(
                "burstcert: warning: the cluster runs the add-on {found}, certifying it as {told} (--release): gated scenarios check {told}'s side"
            );
            told
        }
        (Some(told), _) => told,
        (None, Some(found)) => found,
        (None, None) => {
            return Err(step(
                "cannot read the installed release (no add-on state, no release tag on the virtual kubelet's image); give --release".into(),
            ));
        }
    };
    let cluster_id = existing
        .cluster_id
        .clone()
        .or(installed.cluster_id)
        .ok_or_else(|| {
            step("cannot read the cluster id from the add-on; give --cluster-id".into())
        })?;
    let endpoint = existing
        .cci_endpoint
        .clone()
        .or(installed.cci_endpoint)
        .ok_or_else(|| {
            step("the add-on does not say its CCI endpoint; give --cci-endpoint URL".into())
        })?;
    let virtual_node = installed.virtual_node.ok_or_else(|| {
        step(match &existing.virtual_node {
            Some(name) => format!("there is no node {name} (--virtual-node)"),
            None => format!(
                "cannot find the add-on's virtual node ({}, or one node labelled {}={}); give --virtual-node NAME",
                crate::discover::VIRTUAL_NODES.join(", "),
                crate::discover::VIRTUAL_NODE_LABEL.0,
                crate::discover::VIRTUAL_NODE_LABEL.1,
            ),
        })
    })?;
    let auth = existing.cci_auth.clone().ok_or_else(|| {
        step(format!(
            "the tenant's CCI credential is needed to read the CCI side: set {TOKEN_ENV} or give --cci-token-file PATH, or an AK/SK pair in {} and {} or --cci-aksk-file PATH",
            cci_api::aksk::ACCESS_KEY_ENV,
            cci_api::aksk::SECRET_KEY_ENV,
        ))
    })?;
    eprintln!(
        "burstcert: existing cluster {}: add-on {release} (read from {}), cluster id {cluster_id}, virtual node {virtual_node}, CCI at {endpoint} ({})",
        existing.kubeconfig.display(),
        installed.read_from,
        match &auth {
            crate::cci::CciAuth::Token(_) => "with a token".to_owned(),
            crate::cci::CciAuth::AkSk(pair) => format!("signing as {}", pair.access_key()),
        },
    );
    let launch: std::sync::Arc<dyn crate::target::Launch> =
        std::sync::Arc::new(crate::env::Existing {
            kubeconfig: existing.kubeconfig.clone(),
            cci: crate::cci::CciClient::with_auth(&endpoint, auth, existing.cci_ca.as_deref())?,
            cluster_id,
            virtual_node,
        });
    Ok(Some((release, launch)))
}

/// Environment variable holding the tenant's CCI token (`certify --cluster existing`,
/// `cci purge`, `addon`); an AK/SK pair is in `CCI_ACCESS_KEY` and `CCI_SECRET_KEY`.
pub const TOKEN_ENV: &str = "CCI_TOKEN";

/// Exit code of `burstcert` for a usage error (e.g. `--focus` naming no scenario), as clap's.
pub const USAGE_EXIT_CODE: u8 = 2;
/// Exit code of `burstcert` when it could not run at all (a step failed, e.g. bring-up).
pub const ERROR_EXIT_CODE: u8 = 4;

/// Whether `pattern` (a `--focus` / `--skip` value) names `entry`: its ID, or its family
/// (`WL` names `WL-01`…), case-insensitively.
fn names(pattern: &str, entry: &Entry) -> bool {
    let family = entry.id.split_once('-').map_or(entry.id, |(f, _)| f);
    entry.id.eq_ignore_ascii_case(pattern) || family.eq_ignore_ascii_case(pattern)
}

/// Why an entry is not selected by `--focus` / `--skip`, if it is not.
fn excluded(entry: &Entry, options: &Options) -> Option<String> {
    if !options.focus.is_empty() && !options.focus.iter().any(|p| names(p, entry)) {
        return Some("not selected by --focus".into());
    }
    options
        .skip
        .iter()
        .any(|p| names(p, entry))
        .then(|| "excluded by --skip".into())
}

/// Checks that every `--focus` / `--skip` value names a scenario ID or family of the
/// catalogue: a typo must not turn into a run of nothing. The error lists what exists.
pub fn check_selection(options: &Options) -> std::result::Result<(), String> {
    let entries = catalogue::entries();
    let unknown: Vec<String> = [("--focus", &options.focus), ("--skip", &options.skip)]
        .into_iter()
        .flat_map(|(flag, patterns)| {
            patterns
                .iter()
                .filter(|p| !entries.iter().any(|e| names(p, e)))
                .map(move |p| format!("{flag} {p}"))
        })
        .collect();
    if unknown.is_empty() {
        return Ok(());
    }
    let mut families: Vec<&str> = entries
        .iter()
        .map(|e| e.id.split_once('-').map_or(e.id, |(f, _)| f))
        .collect();
    families.dedup();
    Err(format!(
        "{} names no scenario ID or family of the catalogue (families: {}; IDs like WL-02)",
        unknown.join(", "),
        families.join(", ")
    ))
}

/// Parses an add-on release for `--release`: three numbers, `X.Y.Z`.
pub fn parse_release(text: &str) -> std::result::Result<Release, String> {
    let well_formed = text.split('.').count() == 3
        && text
            .split('.')
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()));
    if !well_formed {
        return Err(format!("{text:?} is not a release like 1.5.18 (X.Y.Z)"));
    }
    Release::parse(text).map_err(|e| format!("{text:?}: {e}"))
}

/// One step of a run: `entries` run with at most `width` at a time.
#[derive(Debug)]
struct Batch {
    entries: Vec<Entry>,
    width: usize,
}

/// The plan of a run: two lanes that run side by side, each its batches one after another.
/// `--jobs 1`: every scenario alone, in catalogue order, in the first lane. More: the scenarios
/// confined to their own namespace and CCI objects run together, `jobs` at a time; the
/// cluster-wide ones ([`Entry::cluster_wide`]) each alone on a cluster: with `extras` extra
/// clusters, `extras` at once in the second lane (beside the confined batch, and one more on
/// the shared cluster once that batch ended), else one after another after the confined batch. So no scenario's outcome depends on what runs beside it.
///
/// Within a batch run side by side, the scenarios that took longest in the last report
/// (`past`, see [`past_seconds`]) start first (those it does not know before them, then the
/// catalogue's order): a long one started last would end the batch alone.
fn schedule(
    runnable: &[Entry],
    jobs: usize,
    extras: usize,
    past: &HashMap<String, f64>,
) -> [Vec<Batch>; 2] {
    if jobs <= 1 {
        let each = runnable
            .iter()
            .map(|e| Batch {
                entries: vec![*e],
                width: 1,
            })
            .collect();
        return [each, Vec::new()];
    }
    let mut longest_first = runnable.to_vec();
    longest_first.sort_by(|a, b| {
        let took = |e: &Entry| past.get(e.id).copied().unwrap_or(f64::INFINITY);
        took(b).total_cmp(&took(a))
    });
    let (wide, confined): (Vec<Entry>, Vec<Entry>) =
        longest_first.into_iter().partition(|e| e.cluster_wide());
    let mut plan = Vec::new();
    if !confined.is_empty() {
        plan.push(Batch {
            entries: confined,
            width: jobs,
        });
    }
    if extras > 0 && !wide.is_empty() {
        // Each on an extra cluster of its own (env::hold_extra_cluster), `extras` at once, and
        // one more once the confined batch ended and the shared cluster is lent to them
        // (env::lend_shared_environment).
        let beside = Batch {
            width: extras + usize::from(!plan.is_empty()),
            entries: wide,
        };
        return [plan, vec![beside]];
    }
    plan.extend(wide.into_iter().map(|e| Batch {
        entries: vec![e],
        width: 1,
    }));
    [plan, Vec::new()]
}

/// Each scenario's seconds in the report last written to `dir` (none if there is none or it
/// cannot be read: the order is then the catalogue's).
fn past_seconds(dir: &Path) -> HashMap<String, f64> {
    std::fs::read_to_string(dir.join("report.json"))
        .map(|text| seconds_of(&text))
        .unwrap_or_default()
}

/// The `seconds` of every row of a `report.json` that ran (a row that did not run says 0).
fn seconds_of(report_json: &str) -> HashMap<String, f64> {
    #[derive(serde::Deserialize)]
    struct Past {
        rows: Vec<PastRow>,
    }
    #[derive(serde::Deserialize)]
    struct PastRow {
        id: String,
        seconds: f64,
    }
    serde_json::from_str::<Past>(report_json)
        .map(|past| {
            past.rows
                .into_iter()
                .filter(|r| r.seconds > 0.0)
                .map(|r| (r.id, r.seconds))
                .collect()
        })
        .unwrap_or_default()
}

/// The default `--jobs`: scenarios mostly wait on the cluster, so a few at a time even on two
/// cores (the control plane, the engine and the mock share them).
pub fn default_jobs() -> usize {
    std::thread::available_parallelism()
        .map(|n| (n.get() * 2).clamp(2, 6))
        .unwrap_or(2)
}

/// Runs the selected scenarios on the environment (with `--jobs` above 1 on a local cluster,
/// the cluster-wide ones on extra local clusters beside the others), printing a line per
/// scenario and the critical path, and returns the report (also written to `options.report_dir`).
pub async fn certify(options: &Options) -> Result<Report> {
    let started = Utc::now();
    check_selection(options).map_err(|detail| crate::Error::Step {
        step: "read --focus / --skip".into(),
        detail,
    })?;
    let (release, cluster, launch) = match &options.cluster {
        ClusterChoice::Made(launch) => (
            options.release.unwrap_or(default_release()),
            launch.kind().to_owned(),
            std::sync::Arc::clone(launch),
        ),
        ClusterChoice::Existing(existing) => {
            let client = crate::cluster::client_for(&existing.kubeconfig).await?;
            match attach_existing(options, existing, &client).await? {
                Some((release, launch)) => (
                    release,
                    format!("existing ({})", existing.kubeconfig.display()),
                    launch,
                ),
                None => return report_no_addon(options, existing, &client, started).await,
            }
        }
    };
    let setup = crate::env::Setup {
        release,
        addon_auth: options.addon_auth,
    };
    let entries = catalogue::entries();
    let runnable: Vec<Entry> = entries
        .iter()
        .filter(|e| e.body.is_some() && excluded(e, options).is_none())
        .copied()
        .collect();
    let selected = runnable.len();
    let wide = runnable.iter().filter(|e| e.cluster_wide()).count();
    // On a target a run may bring up several of (local) with --jobs above 1 the cluster-wide
    // scenarios get extra clusters of their own, when something can run beside them; --jobs 1
    // keeps one cluster and the catalogue's order.
    let extras = if options.jobs > 1 {
        crate::env::extra_clusters_for(wide, selected - wide)
    } else {
        0
    };
    let run = crate::env::Run::new(setup, launch, extras);
    // Whatever happens next, this run's environments are torn down before certify returns.
    let certified = certify_on(&run, options, started, release, cluster, &runnable).await;
    let run_ = std::sync::Arc::clone(&run);
    let destroyed = tokio::task::spawn_blocking(move || run_.destroy_started()).await;
    let report = certified?;
    if let Ok(Err(e)) = destroyed {
        eprintln!("burstcert: warning: tearing down the run's environments: {e}");
    }
    Ok(report)
}

/// [`certify`] on `run`'s environments: runs `runnable`, the selected scenarios.
async fn certify_on(
    run: &std::sync::Arc<crate::env::Run>,
    options: &Options,
    started: DateTime<Utc>,
    release: Release,
    cluster: String,
    runnable: &[Entry],
) -> Result<Report> {
    let entries = catalogue::entries();
    let selected = runnable.len();
    let wide = runnable.iter().filter(|e| e.cluster_wide()).count();
    let extras = run.extra_clusters();
    let (kubernetes, addon_images) = if selected > 0 {
        let env = run.bring_up_all(selected > wide, wide > 0).await?;
        let client = env.client().await?;
        let version = client
            .apiserver_version()
            .await
            .map(|v| v.git_version)
            .unwrap_or_else(|e| format!("unknown ({e})"));
        let images = provenance::addon_images(&client, addon_namespace(options))
            .await
            .unwrap_or_else(|e| {
                eprintln!("burstcert: warning: cannot read the add-on's images: {e}");
                Vec::new()
            });
        (version, images)
    } else {
        ("not started".into(), Vec::new())
    };
    let gatherer = std::sync::Arc::new(Gatherer {
        dir: options.report_dir.clone(),
        release: release.to_string(),
        cluster_args: evidence::target_args(&cluster_args(&options.cluster), options.addon_auth),
        secrets: crate::report::run_secrets(run),
    });
    gatherer.clear()?;
    let started_all = Instant::now();
    let ran = std::sync::atomic::AtomicUsize::new(0);
    // One scenario, timed, with a line before and after (lines of concurrent scenarios interleave;
    // each names its ID).
    let run_one = |entry: Entry| {
        let ran = &ran;
        let gatherer = &gatherer;
        async move {
            // A cluster-wide scenario's cluster first: its time is its own, not its wait.
            let held = catalogue::hold_cluster_for(run, entry.id).await;
            let n = ran.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
            eprintln!(
                "burstcert: [{n}/{selected}] {} {} ...",
                entry.id,
                entry.title_for(release)
            );
            let mut held = Some(held);
            let mut runs = Vec::new();
            let seconds = loop {
                let held = match held.take() {
                    Some(held) => held,
                    None => catalogue::hold_cluster_for(run, entry.id).await,
                };
                let from = Utc::now();
                let gatherer = std::sync::Arc::clone(gatherer);
                let after = after_body(move |scenario, outcome| {
                    let gatherer = std::sync::Arc::clone(&gatherer);
                    Box::pin(async move { gatherer.after(scenario, outcome, from).await })
                });
                let started = Instant::now();
                let outcome = catalogue::run_held_then(run, entry.id, held, &after).await;
                let seconds = started.elapsed().as_secs_f64();
                let again = matches!(outcome, Outcome::Failed(_))
                    && runs.len() < usize::try_from(options.retries).unwrap_or(usize::MAX);
                eprintln!(
                    "burstcert:   {} {} ({seconds:.1}s) {}{}",
                    entry.id,
                    outcome.label(),
                    // A CI log keeps this line as long as the report: redacted as the report.
                    crate::report::redact(
                        first_line(outcome.reason()).into(),
                        &crate::report::run_secrets(run)
                    ),
                    if again { " (running it again)" } else { "" }
                );
                runs.push(outcome);
                if !again {
                    break seconds;
                }
            };
            let (outcome, tries) = crate::report::classify(runs);
            (entry.id, (outcome, tries), seconds, Instant::now())
        }
    };
    // The batches of one lane, one after another; each scenario's outcome and each batch as it ran.
    let run_lane = |batches: Vec<Batch>| {
        let run_one = &run_one;
        async move {
            let mut outcomes = Vec::new();
            let mut ran = Vec::new();
            for batch in batches {
                let batch_started = Instant::now();
                let width = batch.width;
                let done: Vec<_> = futures::stream::iter(batch.entries.into_iter().map(run_one))
                    .buffer_unordered(width)
                    .collect()
                    .await;
                let mut this = BatchRun {
                    width,
                    wall: batch_started.elapsed().as_secs_f64(),
                    runs: Vec::new(),
                };
                for (id, outcome, seconds, ended) in done {
                    this.runs.push(ScenarioRun {
                        id,
                        seconds,
                        ended: ended.duration_since(batch_started).as_secs_f64(),
                    });
                    outcomes.push((id, outcome, seconds));
                }
                ran.push(this);
            }
            (outcomes, ran)
        }
    };
    let past = past_seconds(&options.report_dir);
    if options.jobs > 1 && !past.is_empty() {
        eprintln!(
            "burstcert: the scenarios that took longest in {} start first",
            options.report_dir.join("report.json").display()
        );
    }
    let [shared_lane, extra_lane] = schedule(runnable, options.jobs, extras, &past);
    let lend = extras > 0 && !shared_lane.is_empty() && !extra_lane.is_empty();
    let shared_then_lend = async {
        let ran = run_lane(shared_lane).await;
        if lend && run.lend_shared_environment().await {
            eprintln!(
                "burstcert: the confined scenarios are done; the shared cluster takes cluster-wide ones too"
            );
        }
        ran
    };
    let ((mut outcomes, first), (more, second)) =
        futures::join!(shared_then_lend, run_lane(extra_lane));
    outcomes.extend(more);
    let mut results: HashMap<&str, ((Outcome, Option<crate::report::Tries>), f64)> = outcomes
        .into_iter()
        .map(|(id, outcome, seconds)| (id, (outcome, seconds)))
        .collect();
    if selected > 0 {
        eprintln!(
            "burstcert: {selected} scenarios in {:.0}s with --jobs {}{}",
            started_all.elapsed().as_secs_f64(),
            options.jobs,
            match extras {
                0 => String::new(),
                n => format!(" (cluster-wide ones on {n} extra clusters)"),
            }
        );
        // Two lanes ran side by side when there were extra clusters: the longer bounded the run.
        let (longest, beside) = if lane_wall(&second) > lane_wall(&first) {
            (second, first)
        } else {
            (first, second)
        };
        let beside = match beside.iter().map(|b| b.runs.len()).sum::<usize>() {
            0 => String::new(),
            n => format!(
                " (beside it, {n} more scenarios took {:.0}s)",
                lane_wall(&beside)
            ),
        };
        eprintln!("burstcert: {}{beside}", critical_path(&longest));
    }
    let rows = entries
        .iter()
        .map(|entry| {
            let ((outcome, tries), seconds) = match (entry.body, excluded(entry, options)) {
                (_, Some(why)) => ((Outcome::Skipped(why), None), 0.0),
                (None, None) => ((Outcome::NotImplemented, None), 0.0),
                (Some(_), None) => results.remove(entry.id).unwrap_or_else(|| {
                    ((Outcome::Failed("the scheduler lost it".into()), None), 0.0)
                }),
            };
            let mut row = Row::new(entry.id, entry.title_for(release), outcome, seconds);
            row.tries = tries;
            row.evidence = evidence::has_evidence(&options.report_dir, entry.id)
                .then(|| evidence::evidence_dir(entry.id));
            row
        })
        .collect();
    let report = Report {
        release: release.to_string(),
        cluster,
        kubernetes,
        rows,
        provenance: Some(provenance(options, started, addon_images)),
    };
    report.write(&options.report_dir, run)?;
    Ok(report)
}

/// Pins down the type of a closure run after each scenario's body ([`catalogue::AfterBody`]):
/// a closure's signature alone does not say its future borrows only the scenario.
fn after_body<F>(f: F) -> F
where
    F: for<'a> Fn(
            &'a Scenario,
            &'a Outcome,
        ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + 'a>>
        + Sync,
{
    f
}

/// The namespace of the add-on certified.
fn addon_namespace(options: &Options) -> &str {
    match &options.cluster {
        ClusterChoice::Existing(existing) => &existing.addon_namespace,
        ClusterChoice::Made(_) => DEFAULT_ADDON_NAMESPACE,
    }
}

/// The flags of `burstcert certify` that choose the target, as `reproduce.txt` repeats them.
fn cluster_args(cluster: &ClusterChoice) -> String {
    match cluster {
        // The default target needs no flag; another made one is named by its kind, a minor
        // other than the pinned one by --kubernetes.
        ClusterChoice::Made(launch) => {
            let cluster = match launch.kind() {
                "local" => String::new(),
                other => format!("--cluster {other}"),
            };
            match launch.kubernetes() {
                Some(minor) if minor != crate::tools::Minor::PINNED => {
                    format!("{cluster} --kubernetes {}", minor.minor())
                        .trim_start()
                        .to_owned()
                }
                _ => cluster,
            }
        }
        ClusterChoice::Existing(existing) => {
            let mut args = format!(
                "--cluster existing --kubeconfig {}",
                existing.kubeconfig.display()
            );
            if existing.addon_namespace != DEFAULT_ADDON_NAMESPACE {
                args.push_str(&format!(" --addon-namespace {}", existing.addon_namespace));
            }
            args
        }
    }
}

/// The provenance of a run that started at `started` and ends now (its manifest is filled
/// when the report is written).
fn provenance(
    options: &Options,
    started: DateTime<Utc>,
    addon_images: Vec<provenance::Image>,
) -> Provenance {
    let stamp = |t: DateTime<Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let entries = catalogue::entries();
    Provenance {
        harness: provenance::Harness::current(),
        catalogue_sha256: provenance::catalogue_sha256(entries.iter().map(|e| (e.id, e.title))),
        mock: provenance::Mock {
            version: match options.cluster {
                ClusterChoice::Existing(_) => "none".into(),
                ClusterChoice::Made(_) => mock_cci::VERSION.into(),
            },
            mode: match &options.cluster {
                ClusterChoice::Made(launch) if launch.kind() == "kind" => "kind container".into(),
                ClusterChoice::Made(launch) => format!("{} process", launch.kind()),
                ClusterChoice::Existing(_) => {
                    "none (the add-on's CCI endpoint, not started by burstcert)".into()
                }
            },
        },
        addon_images,
        started: stamp(started),
        ended: stamp(Utc::now()),
        manifest: Default::default(),
    }
}

/// The IDs of the rows that failed in a `report.json` (`certify --rerun-failed`).
pub fn failed_ids(report_json: &str) -> std::result::Result<Vec<String>, String> {
    let json: serde_json::Value =
        serde_json::from_str(report_json).map_err(|e| format!("not a report.json: {e}"))?;
    let rows = json["rows"]
        .as_array()
        .ok_or("not a report.json: it has no rows")?;
    Ok(rows
        .iter()
        .filter(|r| r["outcome"] == "failed")
        .filter_map(|r| r["id"].as_str().map(str::to_owned))
        .collect())
}

/// One scenario as it ran in a batch.
#[derive(Clone, Debug)]
struct ScenarioRun {
    id: &'static str,
    /// Its own time.
    seconds: f64,
    /// When it ended, in seconds from its batch's start.
    ended: f64,
}

/// One batch of a run's plan as it ran.
#[derive(Clone, Debug)]
struct BatchRun {
    width: usize,
    /// Its wall time.
    wall: f64,
    runs: Vec<ScenarioRun>,
}

/// How long a lane's batches took, one after another (folded from +0.0: an empty f64 sum is
/// -0.0, printed "-0").
fn lane_wall(lane: &[BatchRun]) -> f64 {
    lane.iter().map(|b| b.wall).fold(0.0, |a, b| a + b)
}

/// The scenarios that bounded a run's wall time, in one line: a batch lasts until its last
/// scenario ends, so the path is each batch's last scenario (for a batch run side by side, with
/// its own time and the batch's) and every scenario that ran alone; longest first among those.
fn critical_path(batches: &[BatchRun]) -> String {
    let total = lane_wall(batches);
    let mut together = Vec::new();
    let mut alone = Vec::new();
    for batch in batches {
        let Some(last) = batch.runs.iter().max_by(|a, b| a.ended.total_cmp(&b.ended)) else {
            continue;
        };
        if batch.runs.len() > 1 {
            let mut longest: Vec<&ScenarioRun> = batch.runs.iter().collect();
            longest.sort_by(|a, b| b.seconds.total_cmp(&a.seconds));
            let longest: Vec<String> = longest
                .iter()
                .take(3)
                .map(|r| format!("{} {:.1}s", r.id, r.seconds))
                .collect();
            together.push(format!(
                "{} {:.1}s ended the batch of {} run {} at a time ({:.0}s; longest {})",
                last.id,
                last.seconds,
                batch.runs.len(),
                batch.width,
                batch.wall,
                longest.join(", ")
            ));
        } else {
            alone.push((last.id, batch.wall));
        }
    }
    alone.sort_by(|a, b| b.1.total_cmp(&a.1));
    let mut parts = together;
    if !alone.is_empty() {
        let sum: f64 = alone.iter().map(|(_, s)| s).sum();
        // The longest eight name where the time went; the rest are a count.
        let mut each: Vec<String> = alone
            .iter()
            .take(8)
            .map(|(id, s)| format!("{id} {s:.1}s"))
            .collect();
        if alone.len() > 8 {
            each.push(format!("and {} more", alone.len() - 8));
        }
        parts.push(format!(
            "{} run alone ({sum:.0}s): {}",
            alone.len(),
            each.join(", ")
        ));
    }
    format!(
        "critical path ({total:.0}s): {}",
        if parts.is_empty() {
            "nothing ran".to_owned()
        } else {
            parts.join("; then ")
        }
    )
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    fn run(id: &'static str, seconds: f64, ended: f64) -> ScenarioRun {
        ScenarioRun { id, seconds, ended }
    }

    #[test]
    fn the_critical_path_names_the_scenario_that_ended_each_batch_and_every_lone_one() {
        let batches = vec![
            BatchRun {
                width: 4,
                wall: 40.0,
                // The longest is not the last: WL-05 started late and ended the batch.
                runs: vec![
                    run("WL-04", 34.0, 34.5),
                    run("WL-05", 20.0, 39.9),
                    run("VOL-01", 2.0, 2.0),
                ],
            },
            BatchRun {
                width: 1,
                wall: 12.0,
                runs: vec![run("UN-01", 11.9, 12.0)],
            },
            BatchRun {
                width: 1,
                wall: 30.0,
                runs: vec![run("R-01", 29.9, 30.0)],
            },
        ];
        assert_eq!(
            critical_path(&batches),
            "critical path (82s): WL-05 20.0s ended the batch of 3 run 4 at a time (40s; longest \
             WL-04 34.0s, WL-05 20.0s, VOL-01 2.0s); then 2 run alone (42s): R-01 30.0s, UN-01 12.0s"
        );
        assert_eq!(critical_path(&[]), "critical path (0s): nothing ran");
    }

    #[test]
    fn each_verdict_has_its_own_exit_code_and_none_is_the_usage_or_error_code() {
        let codes = [
            Verdict::Certified.exit_code(),
            Verdict::Failed.exit_code(),
            Verdict::Incomplete.exit_code(),
            USAGE_EXIT_CODE,
            ERROR_EXIT_CODE,
        ];
        assert_eq!(codes, [0, 1, 3, 2, 4]);
    }

    fn opts(focus: &[&str], skip: &[&str]) -> Options {
        Options {
            release: Some(Release::new(1, 5, 18)),
            focus: focus.iter().map(|s| s.to_string()).collect(),
            skip: skip.iter().map(|s| s.to_string()).collect(),
            report_dir: PathBuf::new(),
            cluster: ClusterChoice::default(),
            jobs: 1,
            addon_auth: crate::env::AddonAuth::Token,
            retries: 0,
        }
    }

    #[test]
    fn focus_and_skip_select_by_id_or_family() {
        let wl02 = catalogue::find("WL-02").unwrap();
        assert_eq!(excluded(&wl02, &opts(&[], &[])), None);
        assert_eq!(excluded(&wl02, &opts(&["WL"], &[])), None);
        assert_eq!(excluded(&wl02, &opts(&["wl"], &[])), None);
        assert_eq!(excluded(&wl02, &opts(&["wl-02"], &[])), None);
        assert!(excluded(&wl02, &opts(&["VK"], &[])).is_some());
        assert!(excluded(&wl02, &opts(&[], &["WL-02"])).is_some());
        assert!(
            excluded(&wl02, &opts(&[], &["WL-0"])).is_none(),
            "prefixes match whole families only"
        );
    }

    #[rstest]
    #[case::an_id(&["WL-02"], &[], true)]
    #[case::a_family(&["vk"], &["R-01"], true)]
    #[case::a_typo(&["NOPE"], &[], false)]
    #[case::a_prefix(&["WL-0"], &[], false)]
    #[case::a_bad_skip(&["WL"], &["WL-99"], false)]
    fn focus_and_skip_must_name_something_in_the_catalogue(
        #[case] focus: &[&str],
        #[case] skip: &[&str],
        #[case] ok: bool,
    ) {
        let checked = check_selection(&opts(focus, skip));
        assert_eq!(checked.is_ok(), ok, "{checked:?}");
        if let Err(e) = checked {
            assert!(e.contains("names no scenario"), "{e}");
            assert!(
                e.contains("WL, VOL, HP"),
                "the error lists the families: {e}"
            );
        }
    }

    #[test]
    fn one_job_keeps_the_catalogue_order_and_more_run_confined_scenarios_together_then_each_cluster_wide_one_alone()
     {
        let all = catalogue::entries();
        let ids = |plan: &[Batch]| -> Vec<Vec<&str>> {
            plan.iter()
                .map(|b| b.entries.iter().map(|e| e.id).collect())
                .collect()
        };
        let none_past = HashMap::new();
        let [sequential, none] = schedule(&all, 1, 0, &none_past);
        assert!(none.is_empty());
        assert_eq!(sequential.len(), all.len());
        assert!(sequential.iter().all(|b| b.width == 1));
        assert_eq!(
            ids(&sequential).concat(),
            all.iter().map(|e| e.id).collect::<Vec<_>>()
        );
        let [parallel, none] = schedule(&all, 4, 0, &none_past);
        assert!(none.is_empty());
        let first = &parallel[0];
        assert_eq!(first.width, 4);
        assert!(first.entries.iter().all(|e| !e.cluster_wide()));
        for id in ["WL-02", "VOL-01", "HP-01", "WL-04"] {
            assert!(
                first.entries.iter().any(|e| e.id == id),
                "{id} runs with others"
            );
        }
        for batch in &parallel[1..] {
            assert_eq!((batch.entries.len(), batch.width), (1, 1));
            assert!(batch.entries[0].cluster_wide(), "{}", batch.entries[0].id);
        }
        for id in [
            "UN-01", "LOCK-01", "R-01", "R-02", "R-03", "VK-03", "WL-07", "NET-01",
        ] {
            assert!(
                parallel[1..].iter().any(|b| b.entries[0].id == id),
                "{id} runs alone"
            );
        }
        assert_eq!(
            parallel.iter().map(|b| b.entries.len()).sum::<usize>(),
            all.len(),
            "every scenario once"
        );
        // With two extra clusters: the confined batch in the first lane, beside one batch of
        // every cluster-wide scenario, two at a time (each on a cluster of its own) and a third
        // on the shared cluster once the confined batch ended.
        let [shared, extra] = schedule(&all, 4, 2, &none_past);
        assert_eq!(shared.len(), 1);
        assert_eq!(shared[0].entries.len(), first.entries.len());
        assert_eq!(extra.len(), 1);
        assert_eq!(extra[0].width, 3);
        assert!(extra[0].entries.iter().all(Entry::cluster_wide));
        assert_eq!(extra[0].entries.len(), parallel.len() - 1);
        // Only cluster-wide ones: nothing confined ends, nothing is lent.
        let wide: Vec<Entry> = all.iter().filter(|e| e.cluster_wide()).copied().collect();
        let [shared, extra] = schedule(&wide, 4, 2, &none_past);
        assert!(shared.is_empty());
        assert_eq!(extra[0].width, 2);
    }

    #[test]
    fn side_by_side_the_longest_last_time_start_first_and_one_job_keeps_the_catalogue_order() {
        let all = catalogue::entries();
        let past = seconds_of(
            r#"{"rows": [
                {"id": "R-01", "seconds": 39.5, "outcome": "passed"},
                {"id": "UN-02", "seconds": 33.4, "outcome": "passed"},
                {"id": "UP-01", "seconds": 13.0, "outcome": "passed"},
                {"id": "WL-04", "seconds": 50.8, "outcome": "passed"},
                {"id": "WL-02", "seconds": 10.0, "outcome": "passed"},
                {"id": "VOL-04", "seconds": 0, "outcome": "not-applicable"}
            ], "verdict": "CERTIFIED"}"#,
        );
        assert_eq!(past.len(), 5, "a row that did not run has no time");
        let [shared, extra] = schedule(&all, 4, 2, &past);
        let order = |b: &Batch| b.entries.iter().map(|e| e.id).collect::<Vec<_>>();
        let wide = order(&extra[0]);
        let known: Vec<&str> = wide
            .iter()
            .copied()
            .filter(|id| past.contains_key(*id))
            .collect();
        assert_eq!(known, ["R-01", "UN-02", "UP-01"]);
        // Unknown ones first (they may be long), in catalogue order among themselves.
        assert!(wide.ends_with(&["R-01", "UN-02", "UP-01"]));
        let confined = order(&shared[0]);
        let pos = |id| confined.iter().position(|c| *c == id).unwrap();
        assert!(pos("WL-04") > pos("VOL-04"), "unknown before known");
        assert!(pos("WL-04") < pos("WL-02"));
        assert_eq!(confined[confined.len() - 2..], ["WL-04", "WL-02"]);
        let [sequential, _] = schedule(&all, 1, 0, &past);
        assert_eq!(
            sequential.iter().flat_map(order).collect::<Vec<_>>(),
            all.iter().map(|e| e.id).collect::<Vec<_>>()
        );
        assert!(seconds_of("not json").is_empty());
    }

    #[test]
    fn rerun_failed_takes_exactly_the_failed_rows_flaky_ones_included() {
        let ids = failed_ids(
            r#"{"rows": [
                {"id": "WL-01", "outcome": "failed", "reason": "x"},
                {"id": "WL-02", "outcome": "passed"},
                {"id": "WL-03", "outcome": "failed", "reason": "flaky", "tries": {"failed": 1, "runs": 2}},
                {"id": "VOL-04", "outcome": "not_applicable", "reason": "gate"},
                {"id": "VOL-05", "outcome": "not_implemented"}
            ]}"#,
        )
        .unwrap();
        assert_eq!(ids, ["WL-01", "WL-03"]);
        assert!(failed_ids("{}").is_err());
        assert!(failed_ids("nope").is_err());
    }

    #[test]
    fn reproduce_flags_name_the_target() {
        assert_eq!(cluster_args(&ClusterChoice::default()), "");
        let kind = ClusterChoice::Made(std::sync::Arc::new(crate::target::kind::Kind::default()));
        assert_eq!(cluster_args(&kind), "--cluster kind");
        let oldest = crate::tools::Minor::oldest();
        let old = ClusterChoice::Made(std::sync::Arc::new(crate::target::local::Local {
            kubernetes: oldest,
            ..Default::default()
        }));
        assert_eq!(
            cluster_args(&old),
            format!("--kubernetes {}", oldest.minor())
        );
        let old_kind = ClusterChoice::Made(std::sync::Arc::new(crate::target::kind::Kind {
            kubernetes: oldest,
        }));
        assert_eq!(
            cluster_args(&old_kind),
            format!("--cluster kind --kubernetes {}", oldest.minor())
        );
    }

    #[test]
    fn releases_must_be_three_numbers() {
        assert_eq!(parse_release("1.5.18"), Ok(Release::new(1, 5, 18)));
        for bad in ["1.5", "1.5.x", "v1.5.18", "1..5", "", "1.5.18.1"] {
            assert!(parse_release(bad).is_err(), "{bad}");
        }
    }
}
