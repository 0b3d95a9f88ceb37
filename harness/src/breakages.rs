//! `burstcert breakages`: proof that the scenarios catch engine bugs only a cluster shows.
//!
//! The engine has a catalogue of deliberate breakages (`engine/src/breakage.rs`), compiled in
//! only with its cargo feature `breakages`, which nothing ships; the environment variable
//! [`ENV`] switches one on. This module holds the harness's side: for each breakage, the scenario
//! IDs expected to catch it ([`CATALOGUE`]), and [`run`], which
//!
//! 1. builds the engine once with the feature and copies it aside
//!    (`target/<profile>/bursting-engine-breakages`: the next ordinary build overwrites the path
//!    cargo put it at), then builds the engine and the mock as `certify` would, which puts the
//!    shipped engine back there;
//! 2. runs a **baseline**: `certify --focus` on every expected ID with the feature build and no
//!    breakage, so a scenario that fails anyway is never credited with a catch (once per release
//!    the selected breakages run at: a breakage of a gate's lower side, e.g. the gate applied one
//!    release early, runs at the release just below the gate, [`Breakage::release`]);
//! 3. for each breakage, writes a wrapper script (`BURSTCERT_BREAKAGE=<name> exec <binary>`)
//!    and runs `burstcert certify --focus <expected IDs> [--release <its release>]` as a child
//!    process with
//!    `BURSTCERT_ENGINE_BIN` naming the wrapper. The host node starts the add-on's containers
//!    with `env -i`, so the variable cannot come from burstcert's environment; the wrapper is the
//!    "image", and the host node, the gc jobs and `cci purge` all run it.
//!
//! A breakage is **caught** when certify's verdict is FAILED (exit 1) and its `report.json`
//! names the failed scenarios (excluding any that failed the baseline too); **missed** when the
//! focused run passes (exit 0, or 3: a focused run that passes is INCOMPLETE); anything else
//! (a usage error, a bring-up failure, a scenario that could not run, a timeout) is an **error**
//! with its reason, never counted as caught. The run writes `breakages.md` and `breakages.json`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::error::{Error, IoContext as _, Result};
use crate::k8s_features::Feature;
use crate::progress::Progress;
use crate::tools::Minor;

/// The engine's cargo feature that compiles the breakages in.
pub const FEATURE: &str = "breakages";
/// The environment variable naming the active breakage (read by the engine).
pub const ENV: &str = "BURSTCERT_BREAKAGE";
/// Where the feature build is copied, beside the ordinary build.
pub const BINARY_NAME: &str = "bursting-engine-breakages";
/// How long one focused `certify` may take before it is stopped and reported as an error.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(20 * 60);

/// One breakage of the engine and the scenarios expected to catch it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Breakage {
    /// The engine's name for it (the value of [`ENV`]).
    pub name: &'static str,
    /// Scenario IDs of the catalogue that must fail with it.
    pub expected: &'static [&'static str],
    /// What a user of the cluster would see (why those scenarios catch it).
    pub symptom: &'static str,
    /// A breakage of the add-on's manifests (the installer applies them broken, see
    /// [`crate::addon::render::MANIFEST_BREAKAGES`]), not of the engine's code.
    pub manifests: bool,
    /// A Kubernetes feature the broken engine depends on: the breakage shows only on a minor
    /// that lacks it (where it does not, its scenarios pass, and rightly so).
    pub lacking: Option<Feature>,
    /// The release certify runs it at (`None`: certify's default), for a breakage that only a
    /// release on one side of a gate shows, e.g. a gate applied one release early.
    pub release: Option<&'static str>,
}

impl Breakage {
    /// This breakage, run at `release` (see [`Breakage::release`]).
    const fn at(self, release: &'static str) -> Self {
        Breakage {
            release: Some(release),
            ..self
        }
    }

    /// The expected IDs, with the release when it is not certify's default: `VOL-04, VOL-05`,
    /// `INST-04 at 1.5.4`.
    pub fn expected_label(&self) -> String {
        let ids = self.expected.join(", ");
        match self.release {
            Some(release) => format!("{ids} at {release}"),
            None => ids,
        }
    }
}

const fn b(
    name: &'static str,
    expected: &'static [&'static str],
    symptom: &'static str,
) -> Breakage {
    Breakage {
        name,
        expected,
        symptom,
        manifests: false,
        lacking: None,
        release: None,
    }
}

/// A breakage of the engine that shows only on a minor lacking `feature` (see
/// [`Breakage::lacking`]).
const fn on_lacking(
    feature: Feature,
    name: &'static str,
    expected: &'static [&'static str],
    symptom: &'static str,
) -> Breakage {
    Breakage {
        lacking: Some(feature),
        ..b(name, expected, symptom)
    }
}

/// A breakage of the add-on's manifests (see [`Breakage::manifests`]).
const fn m(
    name: &'static str,
    expected: &'static [&'static str],
    symptom: &'static str,
) -> Breakage {
    Breakage {
        name,
        expected,
        symptom,
        manifests: true,
        lacking: None,
        release: None,
    }
}

/// Every breakage of the engine, in the engine's order.
pub const CATALOGUE: &[Breakage] = &[
    b(
        "limits-not-requests",
        &["RES-01"],
        "CCI containers carry their limits, not their requests (or CCI refuses the size)",
    ),
    b(
        "init-containers-not-sized",
        &["RES-01"],
        "a pod with a big init container is sent with too small a size; CCI refuses it",
    ),
    b(
        "localtime-hostpath-dropped",
        &["VOL-07", "HP-05"],
        "the /etc/localtime hostPath is missing on the CCI pod",
    ),
    b(
        "emptydir-size-limit-dropped",
        &["VOL-03", "HP-02"],
        "emptyDir volumes on CCI have no sizeLimit",
    ),
    b(
        "emptydir-cap-flat",
        &["VOL-03"],
        "a 2-vCPU pod with a 15Gi emptyDir is refused (the cap is 10Gi per core)",
    ),
    b(
        "env-configmap-ref-not-renamed",
        &["VOL-01"],
        "an env variable from a ConfigMap key points at a ConfigMap CCI does not have",
    ),
    b(
        "projected-token-passed-through",
        &["VOL-05"],
        "a projected serviceAccountToken reaches CCI as is; CCI refuses the pod",
    ),
    b(
        "cluster-labels-dropped",
        &["RES-03"],
        "CCI pods cannot be found by their workload's labels",
    ),
    b(
        "sidecar-always-v1",
        &["WL-02"],
        "pods burst at 1.5.18 carry the v1 sidecar",
    ),
    b(
        "token-read-once",
        &["CCI-02"],
        "a renewed CCI token is not taken up: burst pods fail once the old one expires",
    ),
    b(
        "configmap-update-not-mirrored",
        &["VOL-01"],
        "a ConfigMap update never reaches CCI",
    ),
    b(
        "secret-update-not-mirrored",
        &["VOL-02"],
        "a Secret update never reaches CCI: burst pods keep the old credential",
    ),
    b(
        "secret-data-logged",
        &["VOL-02"],
        "a Secret's value appears in the add-on's log",
    ),
    b(
        "optional-object-required",
        &["VK-02"],
        "a pod whose optional ConfigMap/Secret is missing never runs",
    ),
    b(
        "mandatory-secret-not-waited",
        &["VK-02"],
        "a pod whose mandatory Secret does not exist yet fails on CCI instead of waiting for it",
    ),
    b(
        "delete-not-sent",
        &["WL-02", "VK-01"],
        "deleted pods stay on CCI (leaked, billed)",
    ),
    b(
        "grace-period-dropped",
        &["VK-01"],
        "a graceful delete reaches CCI without its grace period: CCI's default 30 s applies",
    ),
    b(
        "deletes-ignore-grace",
        &["CCI-03", "VK-01"],
        "a graceful delete removes the CCI pod at once: its containers are killed without their grace period",
    ),
    b(
        "conflict-creates-duplicate",
        &["R-01", "R-02"],
        "a create retried after a lost answer leaves two CCI pods for one pod",
    ),
    b(
        "status-not-synced",
        &["WL-01"],
        "burst pods never show Running",
    ),
    b(
        "sold-out-does-not-lock",
        &["LOCK-01"],
        "with CCI sold out the virtual node stays schedulable",
    ),
    b(
        "lock-only-on-refusal",
        &["LOCK-04"],
        "a burst pod left Pending for lack of capacity past the threshold never locks the node",
    ),
    b(
        "no-network",
        &["CCI-01"],
        "the CCI namespace has no Network: burst pods stay Pending with no address",
    ),
    b(
        "lock-never-expires",
        &["LOCK-03"],
        "the node stays SchedulingDisabled after its lock ended",
    ),
    b(
        "uncordon-relocks",
        &["LOCK-02"],
        "`kubectl uncordon` is undone: the node is cordoned again at the engine's next look",
    ),
    b(
        "lease-not-renewed",
        &["R-03"],
        "the virtual node's lease is never renewed",
    ),
    b(
        "node-pod-capacity-too-small",
        &["WL-02"],
        "the virtual node takes 3 pods; a scale to 5 leaves 2 Pending",
    ),
    b(
        "node-untainted",
        &["WL-06"],
        "DaemonSet pods are placed on the virtual node (and burst)",
    ),
    b(
        "owner-403-denies",
        &["SAFE-01"],
        "pods owned through an operator's custom resource are refused: the operator's workloads never start",
    ),
    b(
        "seed-label-ignored",
        &["WL-01"],
        "a pod labelled with the seed's key stays on the cluster",
    ),
    b(
        "cronjob-label-ignored",
        &["WL-05"],
        "a CronJob labelled enforce (its template not) keeps its pods on the cluster",
    ),
    b(
        "new-label-ignored",
        &["WL-01"],
        "a pod labelled with the newer bursting.cci.io key stays on the cluster",
    ),
    b(
        "local-prefer-as-enforce",
        &["WL-07"],
        "localPrefer pods burst while the cluster has room",
    ),
    b(
        "refusals-fail-open",
        &["VOL-08", "HP-07"],
        "pods the webhook must refuse are admitted",
    ),
    b(
        "bound-claims-trusted",
        &["VOL-08"],
        "a pod with a claim bound to a local PersistentVolume is admitted for CCI",
    ),
    b(
        "kept-local-refused",
        &["VOL-08"],
        "an auto or localPrefer pod with a flexVolume is refused, not kept in the cluster",
    ),
    b(
        "load-balanced-pods-unchecked",
        &["INST-04"],
        "at 1.5.4 a burst pod created after a LoadBalancer Service that selects it is admitted",
    )
    .at("1.5.4"),
    b(
        "volcano-not-checked",
        &["INST-05"],
        "a Volcano <= 1.17.10 pod with cloud storage bursts",
    ),
    b(
        "gc-keeps-namespace",
        &["UN-01", "UN-04"],
        "after uninstall (or purge) the CCI namespace is still there",
    ),
    b(
        "gc-does-not-wait",
        &["CCI-03"],
        "uninstall reports done while the CCI namespace is still Terminating",
    ),
    b(
        "proxy-speaks-v1-only",
        &["NET-01", "UP-02"],
        "with interconnect, a pod burst at 1.5.18 reaches no Service",
    ),
    b(
        "tunnel-open",
        &["SAFE-04"],
        "anyone who reaches the proxy gets a tunnel to any Service of the cluster",
    ),
    b(
        "proxy-forwards-nothing",
        &["NET-01"],
        "with interconnect, the proxy is registered but no Service's answer comes back",
    ),
    on_lacking(
        Feature::WatchList,
        "watch-list-only",
        &["VOL-01", "VOL-02"],
        "on a minor without streaming lists (1.30, 1.31, 1.33) ConfigMap and Secret updates never reach CCI; where they are served (1.32, 1.34 on) nothing shows",
    ),
    b(
        "cci-names-uid-suffixed",
        &["WL-03"],
        "a StatefulSet's pods are not named by their ordinals on CCI",
    ),
    b(
        "container-restarts-dropped",
        &["WL-01"],
        "a crash-looping burst pod shows 0 restarts and no last state in the cluster",
    ),
    b(
        "succeeded-reported-failed",
        &["WL-04"],
        "a Job's pods that complete on CCI show Failed: the Job counts them as failures and retries them",
    ),
    b(
        "owner-cache-misses-updates",
        &["WL-08"],
        "a burst label added to a running Deployment never applies: after a rollout restart its pods stay on the cluster",
    ),
    b(
        "downward-api-one-release-early",
        &["VOL-04", "VOL-05"],
        "at 1.3.24 pods with downwardAPI or projected volumes are admitted",
    )
    .at("1.3.24"),
    b(
        "claim-class-not-mirrored",
        &["VOL-06"],
        "the CCI copy of a claim has no storage class: CCI refuses it and the pod never starts",
    ),
    b(
        "removed-hostpath-mounts-kept",
        &["HP-01", "HP-03", "HP-04"],
        "a pod whose hostPath a policy removes is refused by the API server (a mount of no volume)",
    ),
    b(
        "localtime-policy-ignored",
        &["HP-06"],
        "a policy naming an /etc/localtime hostPath does not replace it",
    ),
    b(
        "pod-size-specs-ignored",
        &["RES-02"],
        "a pod pinned to a flavour with pod-size-specs runs on CCI at its containers' size",
    ),
    b(
        "pods-deleted-on-shutdown",
        &["UN-02", "UN-03"],
        "a failed uninstall (or any stop of the virtual kubelet) takes every burst pod down on CCI",
    ),
    b(
        "recreated-on-upgrade",
        &["UP-01"],
        "an upgrade replaces every burst pod's CCI pod",
    ),
    b(
        "sidecar-v2-one-release-early",
        &["UP-02"],
        "after a rollback to 1.5.17 new burst pods get the v2 sidecar and reach no Service",
    ),
    b(
        "lb-gate-one-release-early",
        &["INST-04"],
        "at 1.5.4 a LoadBalancer Service for burst pods is admitted",
    )
    .at("1.5.4"),
    b(
        "outage-not-reported",
        &["VK-04"],
        "during a CCI outage the virtual node stays Ready",
    ),
    b(
        "node-not-recreated",
        &["VK-03"],
        "a virtual node deleted by hand stays deleted; its pods are orphaned",
    ),
    // The manifests' breakages, after the engine's (in `render::MANIFEST_BREAKAGES`' order).
    m(
        "lease-write-anywhere",
        &["SAFE-03"],
        "the virtual kubelet could overwrite the control plane's leader leases and other nodes' heartbeats",
    ),
    m(
        "runs-as-root",
        &["SAFE-03"],
        "the add-on's pods run as root and are refused by a namespace enforcing Pod Security restricted",
    ),
    m(
        "daemonset-pods-intercepted",
        &["SAFE-02"],
        "with the webhook down, DaemonSet pods (node agents, the CNI) cannot be created",
    ),
    m(
        "credential-in-env",
        &["SAFE-04"],
        "anyone who may read the add-on's Deployments (or `kubectl describe` its pods) reads the CCI token",
    ),
    m(
        "gc-jobs-tolerate-all",
        &["UN-02"],
        "uninstall's gc jobs run on cordoned and draining nodes",
    ),
    m(
        "arm-nodes-not-avoided",
        &["INST-02"],
        "up to 1.5.37 the add-on's pods may be scheduled on Arm nodes, which it does not support",
    ),
    m(
        "webhook-recreated-on-upgrade",
        &["UP-03"],
        "pods created during an upgrade are refused: no webhook answers while it is replaced",
    ),
    m(
        "proxy-installed-without-interconnect",
        &["NET-02"],
        "without interconnect a proxy runs anyway and CCI pods reach cluster Services",
    ),
];

/// The breakage named `name`.
pub fn find(name: &str) -> Option<&'static Breakage> {
    CATALOGUE.iter().find(|b| b.name == name)
}

/// The breakages `only` names (all of them when empty), in catalogue order; an error naming the
/// unknown ones and listing the known.
pub fn select(only: &[String]) -> std::result::Result<Vec<&'static Breakage>, String> {
    let unknown: Vec<&str> = only
        .iter()
        .map(String::as_str)
        .filter(|n| find(n).is_none())
        .collect();
    if !unknown.is_empty() {
        return Err(format!(
            "no breakage named {}; known: {}",
            unknown.join(", "),
            CATALOGUE
                .iter()
                .map(|b| b.name)
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    Ok(CATALOGUE
        .iter()
        .filter(|b| only.is_empty() || only.iter().any(|n| n == b.name))
        .collect())
}

/// Every scenario ID some breakage of `breakages` expects, once, in catalogue order.
pub fn expected_ids(breakages: &[&Breakage]) -> Vec<&'static str> {
    crate::catalogue::entries()
        .iter()
        .map(|e| e.id)
        .filter(|id| breakages.iter().any(|b| b.expected.contains(id)))
        .collect()
}

/// The releases `breakages` run at (`None`: certify's default), once each, the default first.
pub fn releases(breakages: &[&Breakage]) -> Vec<Option<&'static str>> {
    let mut out: Vec<Option<&'static str>> = Vec::new();
    if breakages.iter().any(|b| b.release.is_none()) {
        out.push(None);
    }
    for b in breakages {
        if b.release.is_some() && !out.contains(&b.release) {
            out.push(b.release);
        }
    }
    out
}

/// How a scenario that failed the baseline at `release` is recorded: its ID, with `@release`
/// when that is not certify's default.
fn baseline_key(id: &str, release: Option<&str>) -> String {
    match release {
        Some(release) => format!("{id}@{release}"),
        None => id.to_owned(),
    }
}

/// The IDs among `failures` (as [`baseline_key`] wrote them) that failed the baseline at
/// `release`.
pub fn failures_at(failures: &[String], release: Option<&str>) -> Vec<String> {
    failures
        .iter()
        .filter_map(|key| match (key.split_once('@'), release) {
            (Some((id, at)), Some(release)) if at == release => Some(id.to_owned()),
            (None, None) => Some(key.clone()),
            _ => None,
        })
        .collect()
}

/// `text` quoted for `sh` (single quotes; a single quote inside becomes `'\''`).
fn sh_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// The wrapper the host node runs as the engine's image: the feature build with `name` on.
pub fn wrapper_script(binary: &Path, name: &str) -> String {
    format!(
        "#!/bin/sh\n# burstcert breakages: the engine with one deliberate breakage on.\n{ENV}={} exec {} \"$@\"\n",
        sh_quote(name),
        sh_quote(&binary.display().to_string())
    )
}

/// What one focused `certify` concluded about a breakage.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum Verdict {
    /// certify FAILED: these scenarios failed.
    Caught {
        /// The scenario IDs that failed (and passed the baseline).
        by: Vec<String>,
        /// The start of the first one's failure: what it saw.
        evidence: String,
    },
    /// The focused scenarios passed with the breakage on.
    Missed,
    /// The focused scenarios passed, as they must: the cluster serves the Kubernetes feature
    /// the broken engine depends on ([`Breakage::lacking`]), so the breakage cannot show here.
    NotShown {
        /// Which feature the cluster serves.
        reason: String,
    },
    /// No verdict: certify could not run, or ran out of time, or the report says why not.
    Error {
        /// What happened.
        reason: String,
    },
}

impl Verdict {
    /// `caught`, `missed` or `error`.
    pub fn label(&self) -> &'static str {
        match self {
            Verdict::Caught { .. } => "caught",
            Verdict::Missed => "missed",
            Verdict::NotShown { .. } => "not shown",
            Verdict::Error { .. } => "error",
        }
    }
}

/// The rows of a certify `report.json` with outcome `outcome`, as (ID, reason).
fn rows_with(report: &serde_json::Value, outcomes: &[&str]) -> Vec<(String, String)> {
    report["rows"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| r["outcome"].as_str().is_some_and(|o| outcomes.contains(&o)))
        .map(|r| {
            (
                r["id"].as_str().unwrap_or("?").to_owned(),
                r["reason"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

/// The verdict of one focused `certify` from its exit code (`None`: killed or timed out, with
/// `stopped` saying why), its `report.json` (if it wrote one) and the last lines of its output.
/// `baseline_failures` are IDs that fail without any breakage: they catch nothing.
pub fn classify(
    exit: std::result::Result<i32, String>,
    report: Option<&serde_json::Value>,
    tail: &str,
    baseline_failures: &[String],
) -> Verdict {
    let code = match exit {
        Ok(code) => code,
        Err(stopped) => return Verdict::Error { reason: stopped },
    };
    let last = || {
        tail.lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("no output")
            .trim()
            .to_owned()
    };
    let Some(report) = report.filter(|_| matches!(code, 0 | 1 | 3)) else {
        return Verdict::Error {
            reason: match code {
                2 => format!("certify: usage error: {}", last()),
                4 => format!("certify could not run: {}", last()),
                0 | 1 | 3 => format!("certify exited {code} without a readable report.json"),
                other => format!("certify exited {other}: {}", last()),
            },
        };
    };
    let not_run = rows_with(report, &["not_run"]);
    if let Some((id, why)) = not_run.first() {
        return Verdict::Error {
            reason: format!("{id} could not run here: {why}"),
        };
    }
    let failed = rows_with(report, &["failed", "not_implemented"]);
    let credited: Vec<&(String, String)> = failed
        .iter()
        .filter(|(id, _)| !baseline_failures.contains(id))
        .collect();
    let by: Vec<String> = credited.iter().map(|(id, _)| id.clone()).collect();
    match (code, credited.first()) {
        (1, Some((_, reason))) => Verdict::Caught {
            by,
            evidence: evidence(reason),
        },
        (1, None) => Verdict::Error {
            reason: format!(
                "only scenarios that fail without any breakage failed: {}",
                failed
                    .iter()
                    .map(|(id, _)| id.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        },
        _ => Verdict::Missed,
    }
}

/// A miss of a breakage that depends on a feature `kubernetes` serves is what must happen: it is
/// "not shown" there. Any other verdict stands (a catch there would be the scenarios' own
/// failure, so it is not explained away).
fn not_shown_where_served(verdict: Verdict, breakage: &Breakage, kubernetes: &Minor) -> Verdict {
    match (verdict, breakage.lacking) {
        (Verdict::Missed, Some(feature)) if feature.served_at(kubernetes.number()) => {
            Verdict::NotShown {
                reason: format!(
                    "Kubernetes {} serves {}",
                    kubernetes.release(),
                    feature.describe()
                ),
            }
        }
        (verdict, _) => verdict,
    }
}

/// The first sentence of a failure reason (before the diagnosis dump), at most 200 characters.
fn evidence(reason: &str) -> String {
    let first = reason
        .split(" scenario ")
        .next()
        .unwrap_or(reason)
        .split('\n')
        .next()
        .unwrap_or(reason)
        .trim();
    match first.char_indices().nth(200) {
        Some((at, _)) => format!("{}…", &first[..at]),
        None => first.to_owned(),
    }
}

/// One breakage's result.
#[derive(Clone, Debug, Serialize)]
pub struct Outcome {
    /// The breakage.
    #[serde(flatten)]
    pub breakage: Breakage,
    /// What certify concluded.
    #[serde(flatten)]
    pub verdict: Verdict,
    /// Seconds its certify took.
    pub seconds: f64,
    /// Its certify's folder (report and log).
    pub dir: PathBuf,
}

/// A whole run.
#[derive(Clone, Debug, Serialize)]
pub struct Run {
    /// Scenario IDs that failed the baseline (the feature build, no breakage on); `ID@release`
    /// for a baseline at a release other than certify's default.
    pub baseline_failures: Vec<String>,
    /// One per breakage, in catalogue order.
    pub outcomes: Vec<Outcome>,
    /// Seconds the whole run took, builds included.
    pub wall_seconds: f64,
}

impl Run {
    /// How many breakages were caught.
    pub fn caught(&self) -> usize {
        self.outcomes
            .iter()
            .filter(|o| matches!(o.verdict, Verdict::Caught { .. }))
            .count()
    }

    /// Whether every breakage was caught, but for those that cannot show on this minor
    /// ([`Verdict::NotShown`]).
    pub fn all_caught(&self) -> bool {
        self.outcomes
            .iter()
            .all(|o| matches!(o.verdict, Verdict::Caught { .. } | Verdict::NotShown { .. }))
    }

    /// `caught N of M (K missed, E errors) in …`.
    pub fn summary(&self) -> String {
        let count = |label: &str| {
            self.outcomes
                .iter()
                .filter(|o| o.verdict.label() == label)
                .count()
        };
        let not_shown = match count("not shown") {
            0 => String::new(),
            n => format!(", {n} cannot show on this Kubernetes"),
        };
        format!(
            "caught {} of {} breakages ({} missed, {} errors{not_shown}) in {}",
            self.caught(),
            self.outcomes.len(),
            count("missed"),
            count("error"),
            minutes(self.wall_seconds)
        )
    }

    /// The table: breakage | expected | caught by | verdict, and the totals.
    pub fn markdown(&self) -> String {
        let mut md = String::from(
            "# Engine breakages and the scenarios that catch them\n\n\
             Each breakage is a deliberate bug of the engine (`engine/src/breakage.rs`, cargo \
             feature `breakages`, never shipped), run through `burstcert certify --focus` on \
             the scenarios expected to catch it.\n\n\
             | breakage | what the cluster shows | expected | caught by | verdict | seconds | what the scenario saw |\n\
             |---|---|---|---|---|---|---|\n",
        );
        for o in &self.outcomes {
            let (by, verdict, saw) = match &o.verdict {
                Verdict::Caught { by, evidence } => {
                    (by.join(", "), "caught".to_owned(), evidence.clone())
                }
                Verdict::Missed => ("—".to_owned(), "**missed**".to_owned(), String::new()),
                Verdict::NotShown { reason } => {
                    ("—".to_owned(), "not shown here".to_owned(), reason.clone())
                }
                Verdict::Error { reason } => {
                    ("—".to_owned(), "**error**".to_owned(), evidence(reason))
                }
            };
            md.push_str(&format!(
                "| `{}` | {} | {} | {} | {} | {:.0} | {} |\n",
                o.breakage.name,
                cell(o.breakage.symptom),
                o.breakage.expected_label(),
                by,
                verdict,
                o.seconds,
                cell(&saw)
            ));
        }
        md.push_str(&format!("\n**{}**.", self.summary()));
        if !self.baseline_failures.is_empty() {
            md.push_str(&format!(
                " Failed without any breakage (not credited): {}.",
                self.baseline_failures.join(", ")
            ));
        }
        md.push('\n');
        md
    }
}

fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

fn minutes(seconds: f64) -> String {
    let s = seconds.round() as u64;
    format!("{} min {} s", s / 60, s % 60)
}

/// Where each breakage's `certify` runs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Cluster {
    /// A local cluster: the host node runs the add-on's image as a wrapper script that sets
    /// [`ENV`].
    #[default]
    Local,
    /// A kind cluster (`certify --cluster kind`): the add-on's image is the feature build with
    /// [`ENV`] in the image's environment (the kind target bakes it in when burstcert's own
    /// environment has it, see [`crate::kind::binary_image`]).
    Kind,
}

/// What `burstcert breakages` runs.
#[derive(Clone, Debug)]
pub struct Options {
    /// Only these breakages (all when empty).
    pub only: Vec<String>,
    /// Where `breakages.md`, `breakages.json` and each certify's folder go.
    pub report_dir: PathBuf,
    /// Run the baseline first (the feature build with no breakage on the expected IDs).
    pub baseline: bool,
    /// How long one certify may take.
    pub timeout: Duration,
    /// The Kubernetes minor every certify of the run brings up.
    pub kubernetes: &'static Minor,
    /// Where each certify runs.
    pub cluster: Cluster,
}

/// The add-on one certify installs, broken or not.
#[derive(Clone, Copy)]
struct Addon<'a> {
    /// The engine binary (or the wrapper script the host node runs as its image).
    engine: &'a Path,
    /// The engine's breakage, set in burstcert's environment (kind bakes it into the image).
    breakage: Option<&'a str>,
    /// The manifests' breakage the installer applies.
    manifests: Option<&'a str>,
}

/// The binaries every certify of the run uses.
struct Binaries {
    /// The engine built with the feature `breakages`, copied aside.
    breakages: PathBuf,
    /// The mock CCI.
    mock: PathBuf,
}

/// Builds the feature engine (copied aside) and the ordinary engine and mock.
fn build(progress: &Progress) -> Result<Binaries> {
    let built = crate::binaries::build_engine_with_features(&[FEATURE], progress)?;
    let aside = built.with_file_name(BINARY_NAME);
    // NB: a copy, not a hard link: the next ordinary build rewrites the file cargo built.
    let _ = std::fs::remove_file(&aside);
    std::fs::copy(&built, &aside)
        .io_context(|| format!("copy {} to {}", built.display(), aside.display()))?;
    // The ordinary build puts the shipped engine back where cargo keeps it, and gives the mock.
    let mock = crate::binaries::resolve(crate::binaries::MOCK)?;
    crate::binaries::resolve(crate::binaries::ENGINE)?;
    Ok(Binaries {
        breakages: aside,
        mock,
    })
}

/// The last `n` lines of `text`.
fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Runs `burstcert certify --focus ids --report dir/report` as a child with `engine` as the
/// add-on's image; its output goes to `dir/certify.log`. Answers the exit code (or why there is
/// none), the report, and the log's tail.
#[allow(clippy::too_many_arguments)]
fn certify(
    cluster: Cluster,
    addon: Addon<'_>,
    binaries: &Binaries,
    ids: &[&str],
    release: Option<&str>,
    dir: &Path,
    (kubernetes, timeout): (&Minor, Duration),
) -> Result<(
    std::result::Result<i32, String>,
    Option<serde_json::Value>,
    String,
)> {
    let exe = std::env::current_exe().io_context(|| "find the running burstcert".to_owned())?;
    let report = dir.join("report");
    let log_path = dir.join("certify.log");
    let log =
        std::fs::File::create(&log_path).io_context(|| format!("create {}", log_path.display()))?;
    let err = log
        .try_clone()
        .io_context(|| format!("open {} twice", log_path.display()))?;
    let mut command = Command::new(&exe);
    command.arg("certify");
    if cluster == Cluster::Kind {
        command.args(["--cluster", "kind"]);
    }
    command
        .arg("--focus")
        .args(ids)
        .arg("--report")
        .arg(&report)
        .args(["--kubernetes", &kubernetes.minor()])
        .args(release.map(|r| format!("--release={r}")))
        .env(crate::binaries::ENGINE_BIN_ENV, addon.engine)
        .env(crate::binaries::MOCK_BIN_ENV, &binaries.mock)
        // A failing snapshot must fail the scenario, not leave `.snap.new` files in the tree.
        .env("INSTA_UPDATE", "no")
        .env_remove("INSTA_FORCE_PASS")
        .env_remove(ENV)
        .env_remove(crate::addon::render::MANIFEST_BREAKAGE_ENV)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(err);
    if let Some(name) = addon.manifests {
        command.env(crate::addon::render::MANIFEST_BREAKAGE_ENV, name);
    }
    if let Some(name) = addon.breakage {
        command.env(ENV, name);
    }
    let mut child = command
        .spawn()
        .io_context(|| format!("run {} certify", exe.display()))?;
    let started = Instant::now();
    let exit = loop {
        match child.try_wait() {
            Ok(Some(status)) => {
                break status
                    .code()
                    .ok_or_else(|| format!("certify was stopped by a signal ({status})"));
            }
            Ok(None) if started.elapsed() > timeout => {
                // Our own child: its guards take its clusters down when it dies.
                let _ = child.kill();
                let _ = child.wait();
                break Err(format!(
                    "certify ran out of time ({} s) and was stopped",
                    timeout.as_secs()
                ));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(500)),
            Err(e) => break Err(format!("waiting for certify: {e}")),
        }
    };
    let report = std::fs::read_to_string(report.join("report.json"))
        .ok()
        .and_then(|text| serde_json::from_str(&text).ok());
    let output = std::fs::read_to_string(&log_path).unwrap_or_default();
    Ok((exit, report, tail(&output, 40)))
}

/// Runs the breakages `options` selects (see the module docs), printing progress on stderr, and
/// writes `breakages.md` and `breakages.json` into the report folder.
pub fn run(options: &Options) -> Result<Run> {
    let started = Instant::now();
    let selected = select(&options.only).map_err(|detail| Error::Step {
        step: "select the breakages".into(),
        detail,
    })?;
    std::fs::create_dir_all(&options.report_dir)
        .io_context(|| format!("create {}", options.report_dir.display()))?;
    let binaries = build(&Progress::stderr())?;
    eprintln!(
        "burstcert: breakages: the engine with the feature `{FEATURE}` is {}",
        binaries.breakages.display()
    );

    let mut baseline_failures = Vec::new();
    for release in releases(&selected).into_iter().filter(|_| options.baseline) {
        let at: Vec<&Breakage> = selected
            .iter()
            .copied()
            .filter(|b| b.release == release)
            .collect();
        let ids = expected_ids(&at);
        eprintln!(
            "burstcert: baseline: the feature build with no breakage on {}{}",
            ids.join(" "),
            release.map(|r| format!(" at {r}")).unwrap_or_default()
        );
        let dir = options.report_dir.join(match release {
            Some(r) => format!("baseline-{r}"),
            None => "baseline".to_owned(),
        });
        std::fs::create_dir_all(&dir).io_context(|| format!("create {}", dir.display()))?;
        let t = Instant::now();
        let (exit, report, tail) = certify(
            options.cluster,
            Addon {
                engine: &binaries.breakages,
                breakage: None,
                manifests: None,
            },
            &binaries,
            &ids,
            release,
            &dir,
            (options.kubernetes, options.timeout),
        )?;
        let failed = match (&exit, &report) {
            (Ok(0 | 1 | 3), Some(report)) => {
                let failed: Vec<String> = rows_with(report, &["failed", "not_implemented"])
                    .into_iter()
                    .map(|(id, _)| id)
                    .collect();
                baseline_failures.extend(failed.iter().map(|id| baseline_key(id, release)));
                failed
            }
            _ => {
                return Err(Error::Step {
                    step: "run the baseline (no breakage)".into(),
                    detail: format!(
                        "certify {exit:?} without a usable report (log {}):\n{tail}",
                        dir.join("certify.log").display()
                    ),
                });
            }
        };
        eprintln!(
            "burstcert: baseline done in {:.0} s: {}",
            t.elapsed().as_secs_f64(),
            if failed.is_empty() {
                "every expected scenario passes without a breakage".to_owned()
            } else {
                format!(
                    "{} fail without any breakage (they will catch nothing)",
                    failed.join(", ")
                )
            }
        );
    }

    let mut outcomes = Vec::new();
    for (i, breakage) in selected.iter().enumerate() {
        let dir = options.report_dir.join(breakage.name);
        std::fs::create_dir_all(&dir).io_context(|| format!("create {}", dir.display()))?;
        // Named like the engine: the host node accepts a container command that names the
        // image's binary by its file name.
        let wrapper = dir.join(crate::binaries::ENGINE.binary);
        // A manifest breakage runs the feature build with no breakage of its own on; on kind
        // the feature build is the image, the breakage named in its environment.
        let (engine, engine_breakage, manifests) = match (breakage.manifests, options.cluster) {
            (true, _) => (binaries.breakages.clone(), None, Some(breakage.name)),
            (false, Cluster::Kind) => (binaries.breakages.clone(), Some(breakage.name), None),
            (false, Cluster::Local) => {
                write_executable(
                    &wrapper,
                    &wrapper_script(&binaries.breakages, breakage.name),
                )?;
                (wrapper, None, None)
            }
        };
        eprintln!(
            "burstcert: [{}/{}] {} (expects {}) …",
            i + 1,
            selected.len(),
            breakage.name,
            breakage.expected_label()
        );
        let t = Instant::now();
        let (exit, report, tail) = certify(
            options.cluster,
            Addon {
                engine: &engine,
                breakage: engine_breakage,
                manifests,
            },
            &binaries,
            breakage.expected,
            breakage.release,
            &dir,
            (options.kubernetes, options.timeout),
        )?;
        let failures = failures_at(&baseline_failures, breakage.release);
        let verdict = not_shown_where_served(
            classify(exit, report.as_ref(), &tail, &failures),
            breakage,
            options.kubernetes,
        );
        let seconds = t.elapsed().as_secs_f64();
        eprintln!(
            "burstcert: [{}/{}] {}: {} in {seconds:.0} s",
            i + 1,
            selected.len(),
            breakage.name,
            match &verdict {
                Verdict::Caught { by, evidence } => {
                    format!("caught by {} ({evidence})", by.join(", "))
                }
                Verdict::Missed => "MISSED".to_owned(),
                Verdict::NotShown { reason } => format!("not shown here ({reason})"),
                Verdict::Error { reason } => format!("ERROR: {reason}"),
            }
        );
        outcomes.push(Outcome {
            breakage: **breakage,
            verdict,
            seconds,
            dir,
        });
    }
    let run = Run {
        baseline_failures,
        outcomes,
        wall_seconds: started.elapsed().as_secs_f64(),
    };
    let md = options.report_dir.join("breakages.md");
    std::fs::write(&md, run.markdown()).io_context(|| format!("write {}", md.display()))?;
    let json = options.report_dir.join("breakages.json");
    let text = serde_json::to_string_pretty(&run).expect("the run serializes");
    std::fs::write(&json, text).io_context(|| format!("write {}", json.display()))?;
    Ok(run)
}

fn write_executable(path: &Path, text: &str) -> Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::write(path, text).io_context(|| format!("write {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
        .io_context(|| format!("make {} executable", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_expected_id_is_a_scenario_of_the_catalogue_that_certify_runs() {
        let ids: Vec<&str> = crate::catalogue::entries().iter().map(|e| e.id).collect();
        for b in CATALOGUE {
            assert!(!b.expected.is_empty(), "{} expects no scenario", b.name);
            for id in b.expected {
                assert!(ids.contains(id), "{}: {id} is not in the catalogue", b.name);
            }
        }
        assert!(
            CATALOGUE.len() >= 20,
            "the breakage catalogue lost entries: {} left, at least 20 expected",
            CATALOGUE.len()
        );
    }

    #[test]
    fn names_are_unique_kebab_case_and_parse_back() {
        let mut names: Vec<&str> = CATALOGUE.iter().map(|b| b.name).collect();
        for name in &names {
            assert_eq!(find(name).map(|b| b.name), Some(*name));
            assert!(
                name.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'),
                "{name}"
            );
        }
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), CATALOGUE.len(), "duplicate names");
    }

    /// The harness talks to the engine only as a user would, so it does not link the engine;
    /// this reads the engine's list from its source to keep the two in step.
    #[test]
    fn the_harness_lists_exactly_the_engines_breakages_in_its_order() {
        let source = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../engine/src/breakage.rs"),
        )
        .expect("the engine's source is beside the harness");
        let engine: Vec<&str> = source
            .lines()
            .filter_map(|l| {
                let (variant, rest) = l.trim().split_once(" = \"")?;
                variant
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric())
                    .then_some(())?;
                rest.strip_suffix("\",")
            })
            .collect();
        let ours: Vec<&str> = CATALOGUE
            .iter()
            .filter(|b| !b.manifests)
            .map(|b| b.name)
            .collect();
        assert_eq!(ours, engine);
        let manifests: Vec<&str> = CATALOGUE
            .iter()
            .filter(|b| b.manifests)
            .map(|b| b.name)
            .collect();
        let rendered: Vec<&str> = crate::addon::render::MANIFEST_BREAKAGES
            .iter()
            .map(|(n, _)| *n)
            .collect();
        assert_eq!(manifests, rendered);
    }

    #[test]
    fn only_selects_by_name_in_catalogue_order_and_refuses_unknown_names() {
        assert_eq!(select(&[]).unwrap().len(), CATALOGUE.len());
        let two = select(&["delete-not-sent".into(), "limits-not-requests".into()]).unwrap();
        let names: Vec<&str> = two.iter().map(|b| b.name).collect();
        assert_eq!(names, ["limits-not-requests", "delete-not-sent"]);
        let err = select(&["delete-not-snet".into()]).unwrap_err();
        assert!(
            err.contains("delete-not-snet") && err.contains("delete-not-sent"),
            "{err}"
        );
        assert_eq!(
            expected_ids(&two),
            ["WL-02", "RES-01", "VK-01"],
            "once each, in catalogue order"
        );
    }

    #[test]
    fn a_breakage_at_another_release_runs_where_its_gated_scenarios_lack_the_behaviour() {
        let entries = crate::catalogue::entries();
        let mut at_a_release = 0;
        for b in CATALOGUE {
            let Some(release) = b.release else {
                continue;
            };
            at_a_release += 1;
            let release = crate::certify::parse_release(release).unwrap();
            for id in b.expected {
                let entry = entries.iter().find(|e| e.id == *id).unwrap();
                let gate = entry
                    .gate
                    .unwrap_or_else(|| panic!("{}: {id} has no gate", b.name))
                    .gate;
                assert!(
                    !gate.applies_to(release),
                    "{}: {id} at {release} checks the side with the behaviour",
                    b.name
                );
            }
        }
        assert!(at_a_release >= 1, "no breakage aims at a gate's lower side");
    }

    #[test]
    fn baselines_run_once_per_release_and_their_failures_stay_with_their_release() {
        let all = select(&[]).unwrap();
        let runs = releases(&all);
        assert_eq!(runs[0], None, "the default release first");
        let mut unique = runs.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), runs.len());
        assert!(runs.contains(&Some("1.5.4")));
        let only_early = select(&["lb-gate-one-release-early".into()]).unwrap();
        assert_eq!(releases(&only_early), [Some("1.5.4")]);
        let failures = vec![
            baseline_key("WL-01", None),
            baseline_key("INST-04", Some("1.5.4")),
        ];
        assert_eq!(failures, ["WL-01", "INST-04@1.5.4"]);
        assert_eq!(failures_at(&failures, None), ["WL-01"]);
        assert_eq!(failures_at(&failures, Some("1.5.4")), ["INST-04"]);
        assert!(failures_at(&failures, Some("1.3.24")).is_empty());
        assert_eq!(
            find("lb-gate-one-release-early").unwrap().expected_label(),
            "INST-04 at 1.5.4"
        );
        assert_eq!(
            find("delete-not-sent").unwrap().expected_label(),
            "WL-02, VK-01"
        );
    }

    #[test]
    fn the_wrapper_turns_the_breakage_on_and_passes_every_argument() {
        let script = wrapper_script(
            Path::new("/t/it's/bursting-engine-breakages"),
            "delete-not-sent",
        );
        assert!(script.starts_with("#!/bin/sh\n"), "{script}");
        assert!(
            script.ends_with(
                "BURSTCERT_BREAKAGE='delete-not-sent' exec '/t/it'\\''s/bursting-engine-breakages' \"$@\"\n"
            ),
            "{script}"
        );
    }

    fn report(rows: &[(&str, &str)]) -> serde_json::Value {
        serde_json::json!({"rows": rows.iter().map(|(id, outcome)| serde_json::json!({
            "id": id, "outcome": outcome, "reason": format!("{id} said so")
        })).collect::<Vec<_>>()})
    }

    #[test]
    fn a_failed_certify_catches_by_its_failed_rows_but_not_by_baseline_failures() {
        let r = report(&[
            ("WL-01", "failed"),
            ("WL-02", "passed"),
            ("VK-01", "failed"),
        ]);
        assert_eq!(
            classify(Ok(1), Some(&r), "", &[]),
            Verdict::Caught {
                by: vec!["WL-01".into(), "VK-01".into()],
                evidence: "WL-01 said so".into(),
            }
        );
        assert_eq!(
            classify(Ok(1), Some(&r), "", &["WL-01".into()]),
            Verdict::Caught {
                by: vec!["VK-01".into()],
                evidence: "VK-01 said so".into(),
            }
        );
        let only_baseline = classify(Ok(1), Some(&r), "", &["WL-01".into(), "VK-01".into()]);
        assert!(
            matches!(only_baseline, Verdict::Error { .. }),
            "{only_baseline:?}"
        );
    }

    #[test]
    fn the_evidence_is_the_failures_first_sentence_without_the_diagnosis() {
        assert_eq!(
            evidence("timed out after 60s waiting for x scenario VOL-01 namespace v pods: …"),
            "timed out after 60s waiting for x"
        );
        assert_eq!(evidence(&"é".repeat(300)).chars().count(), 201);
    }

    #[test]
    fn a_breakage_needing_a_feature_is_not_shown_where_it_is_served_and_caught_elsewhere() {
        let watch = find("watch-list-only").unwrap();
        assert_eq!(watch.lacking, Some(Feature::WatchList));
        let pinned = Minor::PINNED;
        assert!(Feature::WatchList.served_at(pinned.number()));
        match not_shown_where_served(Verdict::Missed, watch, pinned) {
            Verdict::NotShown { reason } => {
                assert!(reason.contains(&pinned.release()), "{reason}");
                assert!(reason.contains("streaming lists"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
        // On the oldest minor (no WatchList) a pass is a miss, as for any breakage.
        assert!(!Feature::WatchList.served_at(Minor::oldest().number()));
        assert_eq!(
            not_shown_where_served(Verdict::Missed, watch, Minor::oldest()),
            Verdict::Missed
        );
        let caught = Verdict::Caught {
            by: vec!["VOL-01".into()],
            evidence: "x".into(),
        };
        assert_eq!(
            not_shown_where_served(caught.clone(), watch, pinned),
            caught
        );
        // A breakage that needs nothing is never excused.
        let plain = find("delete-not-sent").unwrap();
        assert_eq!(
            not_shown_where_served(Verdict::Missed, plain, pinned),
            Verdict::Missed
        );
        let run = Run {
            baseline_failures: vec![],
            outcomes: vec![Outcome {
                breakage: *watch,
                verdict: not_shown_where_served(Verdict::Missed, watch, pinned),
                seconds: 1.0,
                dir: PathBuf::from("/r"),
            }],
            wall_seconds: 1.0,
        };
        assert!(run.all_caught());
        assert!(
            run.summary().contains("1 cannot show on this Kubernetes"),
            "{}",
            run.summary()
        );
        assert!(
            run.markdown().contains("not shown here"),
            "{}",
            run.markdown()
        );
    }

    #[test]
    fn a_focused_run_that_passes_is_a_miss() {
        let r = report(&[("WL-01", "passed"), ("WL-02", "skipped")]);
        assert_eq!(classify(Ok(3), Some(&r), "", &[]), Verdict::Missed);
        assert_eq!(classify(Ok(0), Some(&r), "", &[]), Verdict::Missed);
    }

    #[test]
    fn anything_else_is_an_error_with_its_reason_never_a_catch() {
        let tail = "…\nburstcert: error: bring up the local cluster: etcd: EOF\n";
        let r = report(&[("WL-01", "failed")]);
        match classify(Ok(4), Some(&r), tail, &[]) {
            Verdict::Error { reason } => assert!(reason.contains("etcd: EOF"), "{reason}"),
            other => panic!("{other:?}"),
        }
        match classify(Ok(2), None, "burstcert: usage error: --focus X", &[]) {
            Verdict::Error { reason } => assert!(reason.contains("usage error"), "{reason}"),
            other => panic!("{other:?}"),
        }
        let not_run = report(&[("R-01", "not_run"), ("WL-01", "failed")]);
        assert!(matches!(
            classify(Ok(1), Some(&not_run), "", &[]),
            Verdict::Error { .. }
        ));
        assert!(matches!(
            classify(Ok(1), None, "", &[]),
            Verdict::Error { .. }
        ));
        assert_eq!(
            classify(Err("certify ran out of time".into()), Some(&r), "", &[]),
            Verdict::Error {
                reason: "certify ran out of time".into()
            }
        );
    }

    #[test]
    fn the_table_has_a_row_per_breakage_and_the_totals() {
        let outcome = |name: &str, verdict| Outcome {
            breakage: *find(name).unwrap(),
            verdict,
            seconds: 42.4,
            dir: PathBuf::from("/r"),
        };
        let run = Run {
            baseline_failures: vec![],
            outcomes: vec![
                outcome(
                    "delete-not-sent",
                    Verdict::Caught {
                        by: vec!["WL-02".into(), "VK-01".into()],
                        evidence: "timed out after 90s waiting for 0 pods".into(),
                    },
                ),
                outcome("secret-data-logged", Verdict::Missed),
            ],
            wall_seconds: 125.0,
        };
        let md = run.markdown();
        assert!(
            md.contains("| `delete-not-sent` | deleted pods stay on CCI (leaked, billed) | WL-02, VK-01 | WL-02, VK-01 | caught | 42 | timed out after 90s waiting for 0 pods |"),
            "{md}"
        );
        assert!(md.contains("| `secret-data-logged` |"), "{md}");
        assert!(md.contains("**missed**"), "{md}");
        assert!(
            md.contains("caught 1 of 2 breakages (1 missed, 0 errors) in 2 min 5 s"),
            "{md}"
        );
        assert!(!run.all_caught());
    }
}
