//! `burstcert soak`: a chaos soak of the engine on the environment the suites use (real control
//! plane, the add-on on the host node, the mock CCI).
//!
//! Two Deployments labelled to burst (`enforce`) are driven through N events chosen by a seeded
//! random generator (the seed is printed, `--seed` replays the same events): scale-ups and
//! scale-downs, deletions of random cluster pods, the engine killed (SIGKILL) while a scale is
//! in flight, the API server restarted, CCI faults held for a few seconds (503s, latency,
//! "applied, then timed out", whose retries meet 409s), and a fault with a kill inside it.
//!
//! Every [`CHECK_EVERY`] events and at the end, the faults are cleared and the soak waits (with a
//! deadline) until the invariants hold for [`STABLE`] running, checked from what the cluster and
//! CCI show ([`check`]): every live pod of the workloads Running on the virtual node with exactly
//! one CCI pod in the same phase (no duplicates, no mismatches), no CCI pod without a live
//! cluster pod (no leaks), as many pods as replicas asked for (nothing lost). Between checks each event also
//! looks for duplicates on CCI. The numbers are printed ([`Summary`]); any violation fails the
//! run. The whole soak is bounded by `--deadline-secs`.

use std::collections::BTreeMap;
use std::fmt;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use mock_cci::faults::Operation;
use mock_cci::{Fault, Scope};

use crate::cluster::VIRTUAL_NODE;
use crate::env::Env;
use crate::error::{Error, Result};
use crate::scenarios::POLICY_LABEL;
use crate::wait;

/// Default number of events.
pub const DEFAULT_EVENTS: usize = 50;
/// Default highest replica count of each Deployment.
pub const DEFAULT_MAX_REPLICAS: usize = 12;
/// Default bound on the whole soak.
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(900);
/// A convergence check after every this many events (and after the last).
pub const CHECK_EVERY: usize = 10;
/// How long a check waits for convergence. It covers the engine's slowest bounded paths: a
/// create retried at the 30 s back-off ceiling, and the orphan sweep that runs every 60 s.
pub const CONVERGE_PATIENCE: Duration = Duration::from_secs(180);
/// How long the invariants must hold, observation after observation, for a check to pass: a
/// retry or a sweep landing just after one good look must not go unseen.
pub const STABLE: Duration = Duration::from_secs(5);
/// The Deployments the soak drives.
pub const WORKLOADS: [&str; 2] = ["soak-a", "soak-b"];
/// Label on the soak's pods naming their Deployment.
const WORKLOAD_LABEL: &str = "burstcert.io/soak";

/// How to soak.
#[derive(Clone, Debug)]
pub struct SoakOptions {
    /// How many events.
    pub events: usize,
    /// The random generator's seed (the same seed gives the same events).
    pub seed: u64,
    /// Highest replica count of each Deployment (at least 1).
    pub max_replicas: usize,
    /// Bound on the whole soak; past it the soak stops and says so.
    pub deadline: Duration,
}

/// A seed from the clock, for a run without `--seed`.
pub fn clock_seed() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    // Fold the high bits in; only the variety matters.
    (nanos as u64) ^ ((nanos >> 64) as u64) ^ u64::from(std::process::id())
}

/// SplitMix64: small, seeded, and the same sequence on every platform (no dependency needed).
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `lo..=hi` (`lo` when `hi < lo`).
    pub fn between(&mut self, lo: u64, hi: u64) -> u64 {
        if hi <= lo {
            return lo;
        }
        lo + self.next_u64() % (hi - lo + 1)
    }

    /// An index below `n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            return 0;
        }
        (self.next_u64() % n as u64) as usize
    }
}

/// A CCI fault the soak holds for a few seconds, on pod creations and deletions of the
/// cluster's CCI namespace (the harness's own reads stay unfaulted).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum FaultKind {
    /// Half the pod creations and deletions answered 503 before anything happens.
    Unavailable,
    /// Pod creations and deletions answered 2 s late.
    Latency,
    /// Pod creations and deletions take effect, then the answer is a late 504: the engine's
    /// retries meet the pod it made (409 on create, 404 on delete).
    AppliedThenTimedOut,
}

impl FaultKind {
    const ALL: [FaultKind; 3] = [
        FaultKind::Unavailable,
        FaultKind::Latency,
        FaultKind::AppliedThenTimedOut,
    ];

    /// How the summary names it.
    pub fn name(self) -> &'static str {
        match self {
            FaultKind::Unavailable => "503 on half",
            FaultKind::Latency => "latency 2 s",
            FaultKind::AppliedThenTimedOut => "applied, then timed out",
        }
    }

    /// The mock's fault.
    pub fn fault(self) -> Fault {
        let operations = vec![
            Operation::new(
                mock_cci::faults::Verb::Create,
                mock_cci::faults::Resource::Pods,
            ),
            Operation::new(
                mock_cci::faults::Verb::Delete,
                mock_cci::faults::Resource::Pods,
            ),
        ];
        match self {
            FaultKind::Unavailable => Fault::ErrorRate {
                operations,
                percent: 50,
                status: 503,
            },
            FaultKind::Latency => Fault::Latency {
                operations,
                millis: 2000,
            },
            FaultKind::AppliedThenTimedOut => Fault::Timeout {
                operations,
                applied: true,
            },
        }
    }
}

/// One chaos event. Workloads are indices into [`WORKLOADS`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// Scale a Deployment up to `to`.
    ScaleUp {
        /// Which Deployment.
        workload: usize,
        /// The new replica count.
        to: usize,
    },
    /// Scale a Deployment down to `to`.
    ScaleDown {
        /// Which Deployment.
        workload: usize,
        /// The new replica count.
        to: usize,
    },
    /// Delete `count` random live pods of a Deployment (its ReplicaSet replaces them).
    DeletePods {
        /// Which Deployment.
        workload: usize,
        /// How many pods.
        count: usize,
        /// Seeds the choice of pods (their names are random per run).
        pick: u64,
    },
    /// Scale a Deployment to `to`, then kill the engine `after_ms` later, mid-scale.
    KillEngine {
        /// Which Deployment.
        workload: usize,
        /// The new replica count.
        to: usize,
        /// Milliseconds between the scale and the kill.
        after_ms: u64,
    },
    /// Restart the kube-apiserver.
    RestartApiServer,
    /// Hold a CCI fault for `hold_ms` while a Deployment scales to `to`.
    Fault {
        /// The fault.
        fault: FaultKind,
        /// Which Deployment.
        workload: usize,
        /// The new replica count.
        to: usize,
        /// How long the fault is held, ms.
        hold_ms: u64,
    },
    /// A CCI fault held while a Deployment scales and the engine is killed in the middle.
    FaultAndKill {
        /// The fault.
        fault: FaultKind,
        /// Which Deployment.
        workload: usize,
        /// The new replica count.
        to: usize,
        /// How long the fault is held, ms (the kill half-way through).
        hold_ms: u64,
    },
}

impl Event {
    /// The event's kind, as the summary counts them.
    pub fn kind(&self) -> &'static str {
        match self {
            Event::ScaleUp { .. } => "scale up",
            Event::ScaleDown { .. } => "scale down",
            Event::DeletePods { .. } => "delete pods",
            Event::KillEngine { .. } => "engine kill mid-scale",
            Event::RestartApiServer => "API server restart",
            Event::Fault { .. } => "CCI fault mid-scale",
            Event::FaultAndKill { .. } => "CCI fault + engine kill",
        }
    }

    /// The replica count the event asks of a Deployment, if any.
    pub fn target(&self) -> Option<(usize, usize)> {
        match *self {
            Event::ScaleUp { workload, to }
            | Event::ScaleDown { workload, to }
            | Event::KillEngine { workload, to, .. }
            | Event::Fault { workload, to, .. }
            | Event::FaultAndKill { workload, to, .. } => Some((workload, to)),
            Event::DeletePods { .. } | Event::RestartApiServer => None,
        }
    }
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let w = |i: usize| WORKLOADS.get(i).copied().unwrap_or("?");
        match self {
            Event::ScaleUp { workload, to } | Event::ScaleDown { workload, to } => {
                write!(f, "{} {} to {to}", self.kind(), w(*workload))
            }
            Event::DeletePods {
                workload, count, ..
            } => write!(f, "delete {count} pods of {}", w(*workload)),
            Event::KillEngine {
                workload,
                to,
                after_ms,
            } => write!(
                f,
                "engine kill {after_ms} ms into scaling {} to {to}",
                w(*workload)
            ),
            Event::RestartApiServer => write!(f, "API server restart"),
            Event::Fault {
                fault,
                workload,
                to,
                hold_ms,
            } => write!(
                f,
                "CCI fault '{}' for {hold_ms} ms while scaling {} to {to}",
                fault.name(),
                w(*workload)
            ),
            Event::FaultAndKill {
                fault,
                workload,
                to,
                hold_ms,
            } => write!(
                f,
                "CCI fault '{}' for {hold_ms} ms + engine kill while scaling {} to {to}",
                fault.name(),
                w(*workload)
            ),
        }
    }
}

/// A replica count in `0..=max` other than `current` (so a scale is always in flight).
fn retarget(rng: &mut Rng, current: usize, max: usize) -> usize {
    let max = max.max(1);
    let pick = rng.between(0, max as u64 - 1) as usize;
    // Skip `current`: 0..max maps onto 0..=max without it.
    if pick >= current { pick + 1 } else { pick }
}

/// The next event, from `rng`, given each Deployment's asked-for replicas (`replicas`, indexed
/// like [`WORKLOADS`]) and the ceiling `max`. Weights: scale up 3, scale down 2, delete pods 2,
/// engine kill 2, API server restart 1, fault 2, fault + kill 1 (out of 13). An event that
/// cannot apply (scale up at the ceiling, down or delete at 0) becomes its opposite scale.
pub fn choose(rng: &mut Rng, replicas: &[usize], max: usize) -> Event {
    let max = max.max(1);
    let workload = rng.below(replicas.len());
    let current = replicas.get(workload).copied().unwrap_or(0).min(max);
    let roll = rng.below(13);
    let up = |rng: &mut Rng| Event::ScaleUp {
        workload,
        to: rng.between(current as u64 + 1, max as u64) as usize,
    };
    let down = |rng: &mut Rng| Event::ScaleDown {
        workload,
        to: rng.between(0, current.saturating_sub(1) as u64) as usize,
    };
    match roll {
        0..=2 if current < max => up(rng),
        0..=2 => down(rng),
        3..=4 if current > 0 => down(rng),
        3..=4 => up(rng),
        5..=6 if current > 0 => Event::DeletePods {
            workload,
            count: rng.between(1, current.min(3) as u64) as usize,
            pick: rng.next_u64(),
        },
        5..=6 => up(rng),
        7..=8 => Event::KillEngine {
            workload,
            to: retarget(rng, current, max),
            after_ms: rng.between(0, 1500),
        },
        9 => Event::RestartApiServer,
        10..=11 => Event::Fault {
            fault: FaultKind::ALL[rng.below(FaultKind::ALL.len())],
            workload,
            to: retarget(rng, current, max),
            hold_ms: rng.between(3000, 8000),
        },
        _ => Event::FaultAndKill {
            fault: FaultKind::ALL[rng.below(FaultKind::ALL.len())],
            workload,
            to: retarget(rng, current, max),
            hold_ms: rng.between(4000, 8000),
        },
    }
}

/// What a check knows of a cluster pod.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClusterPodState {
    /// Its Deployment (the soak's label).
    pub workload: String,
    /// Its name.
    pub name: String,
    /// Its UID.
    pub uid: String,
    /// The node it is bound to.
    pub node: Option<String>,
    /// Its phase.
    pub phase: Option<String>,
    /// Whether it has a deletion timestamp.
    pub terminating: bool,
}

/// What a check knows of a CCI pod.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CciPodState {
    /// Its name on CCI.
    pub name: String,
    /// The UID of the cluster pod it stands for (the engine's label).
    pub cluster_uid: Option<String>,
    /// Its phase.
    pub phase: Option<String>,
    /// Whether it has a deletion timestamp.
    pub terminating: bool,
}

/// What a check found wrong; empty means converged. Each entry names the pod(s) concerned.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Violations {
    /// CCI pods with no live cluster pod (billed, never cleaned up).
    pub leaked: Vec<String>,
    /// Live cluster pods with more than one CCI pod.
    pub duplicates: Vec<String>,
    /// Live cluster pods with no CCI pod, and Deployments with fewer live pods than replicas.
    pub lost: Vec<String>,
    /// Cluster pods not Running on the virtual node, or whose phase differs from their CCI pod's;
    /// Deployments with more live pods than replicas; cluster pods stuck terminating.
    pub mismatched: Vec<String>,
}

impl Violations {
    /// Whether nothing is wrong.
    pub fn is_empty(&self) -> bool {
        self.leaked.is_empty()
            && self.duplicates.is_empty()
            && self.lost.is_empty()
            && self.mismatched.is_empty()
    }
}

impl fmt::Display for Violations {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for (what, list) in [
            ("leaked", &self.leaked),
            ("duplicates", &self.duplicates),
            ("lost", &self.lost),
            ("mismatched", &self.mismatched),
        ] {
            if list.is_empty() {
                continue;
            }
            if !first {
                write!(f, "; ")?;
            }
            first = false;
            let shown: Vec<&str> = list.iter().take(5).map(String::as_str).collect();
            let more = list.len().saturating_sub(shown.len());
            write!(f, "{} {what}: {}", list.len(), shown.join(", "))?;
            if more > 0 {
                write!(f, " (+{more} more)")?;
            }
        }
        if first {
            write!(f, "none")?;
        }
        Ok(())
    }
}

/// Checks the invariants on one observation: `desired` replicas per Deployment, the cluster
/// pods of those Deployments and every pod of the cluster's CCI namespace.
pub fn check(
    desired: &BTreeMap<String, usize>,
    cluster: &[ClusterPodState],
    cci: &[CciPodState],
) -> Violations {
    let mut v = Violations::default();
    let live: BTreeMap<&str, &ClusterPodState> = cluster
        .iter()
        .filter(|p| !p.terminating)
        .map(|p| (p.uid.as_str(), p))
        .collect();
    let mut by_uid: BTreeMap<&str, Vec<&CciPodState>> = BTreeMap::new();
    for pod in cci {
        match pod.cluster_uid.as_deref().filter(|u| live.contains_key(u)) {
            Some(uid) => by_uid.entry(uid).or_default().push(pod),
            None => v.leaked.push(format!(
                "CCI pod {}{}",
                pod.name,
                if pod.terminating {
                    " (terminating)"
                } else {
                    ""
                }
            )),
        }
    }
    for (uid, pod) in &live {
        let on_cci = by_uid.get(uid).map(Vec::as_slice).unwrap_or_default();
        let phase = pod.phase.as_deref().unwrap_or("-");
        match on_cci {
            [] => v
                .lost
                .push(format!("{} (phase {phase}, no CCI pod)", pod.name)),
            [one] => {
                let cci_phase = one.phase.as_deref().unwrap_or("-");
                if pod.node.as_deref() != Some(VIRTUAL_NODE) || phase != "Running" {
                    v.mismatched.push(format!(
                        "{}: {phase} on {}, not Running on {VIRTUAL_NODE}",
                        pod.name,
                        pod.node.as_deref().unwrap_or("no node")
                    ));
                } else if one.terminating || cci_phase != phase {
                    v.mismatched.push(format!(
                        "{}: {phase} in the cluster, {cci_phase}{} on CCI ({})",
                        pod.name,
                        if one.terminating { " terminating" } else { "" },
                        one.name
                    ));
                }
            }
            many => v.duplicates.push(format!(
                "{}: {} CCI pods ({})",
                pod.name,
                many.len(),
                many.iter()
                    .map(|p| p.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        }
    }
    for pod in cluster.iter().filter(|p| p.terminating) {
        v.mismatched
            .push(format!("{}: still terminating in the cluster", pod.name));
    }
    for (workload, want) in desired {
        let have = live.values().filter(|p| &p.workload == workload).count();
        if have < *want {
            v.lost.push(format!(
                "{workload}: {have} live pods, {want} replicas asked"
            ));
        } else if have > *want {
            v.mismatched.push(format!(
                "{workload}: {have} live pods, {want} replicas asked"
            ));
        }
    }
    v
}

/// Cluster pods with more than one CCI pod not being deleted: a duplicate whatever the moment
/// (the engine names a CCI pod after its cluster pod, so a second one is never in passing).
pub fn duplicates_now(cci: &[CciPodState]) -> Vec<String> {
    let mut by_uid: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for pod in cci.iter().filter(|p| !p.terminating) {
        if let Some(uid) = pod.cluster_uid.as_deref() {
            by_uid.entry(uid).or_default().push(&pod.name);
        }
    }
    by_uid
        .into_iter()
        .filter(|(_, names)| names.len() > 1)
        .map(|(uid, names)| format!("uid {uid}: {}", names.join(", ")))
        .collect()
}

/// Whether the invariants have held long enough: fed each observation in turn, it answers the
/// moment they began to hold once they held for [`STABLE`] without a break.
#[derive(Clone, Copy, Debug, Default)]
pub struct Settle {
    since: Option<Instant>,
}

impl Settle {
    /// Records one observation at `now` (`held`: the invariants held); `Some(since)` once they
    /// held from `since` to at least `since + STABLE`.
    pub fn observe(&mut self, held: bool, now: Instant) -> Option<Instant> {
        if !held {
            self.since = None;
            return None;
        }
        let since = *self.since.get_or_insert(now);
        (now.saturating_duration_since(since) >= STABLE).then_some(since)
    }
}

/// The `p`-th percentile (0–100, nearest rank) of `values`; `None` when empty.
pub fn percentile(values: &[f64], p: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// One convergence check.
#[derive(Clone, Debug, PartialEq)]
pub struct CheckResult {
    /// After how many events it ran.
    pub after_event: usize,
    /// Seconds until the invariants began to hold (they then held for [`STABLE`]); `None` if
    /// they did not within [`CONVERGE_PATIENCE`].
    pub converged_secs: Option<f64>,
    /// What was still wrong at the deadline (empty when converged).
    pub violations: Violations,
}

/// The soak's numbers.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Summary {
    /// The seed (replays the same events).
    pub seed: u64,
    /// Events asked for.
    pub events_planned: usize,
    /// Events run, by kind.
    pub events: BTreeMap<&'static str, usize>,
    /// Engine processes killed.
    pub engine_kills: usize,
    /// API server restarts.
    pub api_restarts: usize,
    /// CCI faults set, by kind.
    pub faults: BTreeMap<&'static str, usize>,
    /// Requests the faults acted on (failed, delayed, left unanswered).
    pub faults_fired: u64,
    /// Pod creations CCI answered 409 (a retry meeting the pod an unanswered create made).
    pub conflicts: u64,
    /// Pod deletions CCI answered 404 (a retry of an unanswered delete, or a pod already gone).
    pub deletes_not_found: u64,
    /// Whether the mock's request log wrapped between two reads (409/404 counts then low).
    pub request_log_gap: bool,
    /// The convergence checks.
    pub checks: Vec<CheckResult>,
    /// Duplicates seen on CCI between checks.
    pub duplicates_between_checks: Vec<String>,
    /// Wall time of the soak (bring-up excluded).
    pub wall: Duration,
    /// Why the soak stopped early, if it did (deadline, or an error driving it).
    pub aborted: Option<String>,
}

impl Summary {
    /// Events run.
    pub fn events_run(&self) -> usize {
        self.events.values().sum()
    }

    /// Convergence times of the checks that converged, seconds.
    pub fn convergence_secs(&self) -> Vec<f64> {
        self.checks
            .iter()
            .filter_map(|c| c.converged_secs)
            .collect()
    }

    fn worst(&self, pick: impl Fn(&Violations) -> usize) -> usize {
        self.checks
            .iter()
            .map(|c| pick(&c.violations))
            .max()
            .unwrap_or(0)
    }

    /// Whether the soak failed: a check did not converge, a duplicate showed between checks,
    /// it stopped early, or it ran no check at all.
    pub fn failed(&self) -> bool {
        self.aborted.is_some()
            || self.checks.is_empty()
            || !self.duplicates_between_checks.is_empty()
            || self.checks.iter().any(|c| !c.violations.is_empty())
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list = |m: &BTreeMap<&str, usize>| {
            m.iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        writeln!(
            f,
            "seed {} (replay: burstcert soak --seed {} --events {})",
            self.seed, self.seed, self.events_planned
        )?;
        writeln!(
            f,
            "events: {} of {} ({})",
            self.events_run(),
            self.events_planned,
            list(&self.events)
        )?;
        writeln!(
            f,
            "engine kills: {}; API server restarts: {}",
            self.engine_kills, self.api_restarts
        )?;
        writeln!(
            f,
            "CCI faults: {} ({}), fired on {} requests; pod creates answered 409: {}; pod deletes answered 404: {}{}",
            self.faults.values().sum::<usize>(),
            list(&self.faults),
            self.faults_fired,
            self.conflicts,
            self.deletes_not_found,
            if self.request_log_gap {
                " (the mock's request log wrapped: at least these)"
            } else {
                ""
            }
        )?;
        let times = self.convergence_secs();
        let converged = times.len();
        writeln!(
            f,
            "checks: {} run, {converged} converged; convergence p50 {}, max {}",
            self.checks.len(),
            percentile(&times, 50.0).map_or("-".into(), |s| format!("{s:.1} s")),
            percentile(&times, 100.0).map_or("-".into(), |s| format!("{s:.1} s")),
        )?;
        writeln!(
            f,
            "leaked: {}; duplicates: {} (between checks: {}); mismatches: {}; lost: {}",
            self.worst(|v| v.leaked.len()),
            self.worst(|v| v.duplicates.len()),
            self.duplicates_between_checks.len(),
            self.worst(|v| v.mismatched.len()),
            self.worst(|v| v.lost.len()),
        )?;
        for c in self.checks.iter().filter(|c| !c.violations.is_empty()) {
            writeln!(
                f,
                "FAILED check after event {}: not converged in {} s: {}",
                c.after_event,
                CONVERGE_PATIENCE.as_secs(),
                c.violations
            )?;
        }
        for d in &self.duplicates_between_checks {
            writeln!(f, "FAILED duplicate on CCI between checks: {d}")?;
        }
        if let Some(why) = &self.aborted {
            writeln!(f, "ABORTED: {why}")?;
        }
        writeln!(
            f,
            "wall time: {:.0} s; verdict: {}",
            self.wall.as_secs_f64(),
            if self.failed() { "FAILED" } else { "passed" }
        )
    }
}

fn kube(context: &str) -> impl FnOnce(kube::Error) -> Error + '_ {
    move |source| Error::Kube {
        context: context.to_owned(),
        source,
    }
}

/// A Deployment of small pods (0.25 vCPU / 512Mi) that opts in with `enforce`.
fn deployment(name: &str, replicas: usize) -> Result<Deployment> {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "labels": {POLICY_LABEL: "enforce"}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {WORKLOAD_LABEL: name}},
            "template": {
                "metadata": {"labels": {WORKLOAD_LABEL: name, POLICY_LABEL: "enforce"}},
                "spec": {
                    "containers": [{"name": "c", "image": "nginx:alpine",
                        "resources": {"requests": {"cpu": "250m", "memory": "512Mi"},
                                      "limits": {"cpu": "250m", "memory": "512Mi"}}}]
                }
            }
        }
    }))
    .map_err(|e| Error::Step {
        step: format!("build deployment {name}"),
        detail: e.to_string(),
    })
}

/// The soak in progress.
struct Soak<'a> {
    env: &'a Env,
    client: kube::Client,
    namespace: String,
    rng: Rng,
    replicas: Vec<usize>,
    max_replicas: usize,
    /// The last request of the mock's log already counted.
    last_request: u64,
    summary: Summary,
}

/// Runs the soak on `env`. Returns the numbers also when it stops early (the deadline, or an
/// error driving it: [`Summary::aborted`]); `Err` only when it could not start.
pub async fn run(env: &Env, options: &SoakOptions) -> Result<Summary> {
    let started = Instant::now();
    let client = env.client().await?;
    crate::bench::wait_virtual_node_schedulable(&client).await?;
    let namespace = format!("soak-{}", &crate::cluster::local::random_name()[10..]);
    crate::bench::create_namespace(&client, &namespace).await?;
    eprintln!(
        "burstcert soak: seed {} ({} events, replicas 0..={} per Deployment, deadline {} s), namespace {namespace}, CCI namespace {}",
        options.seed,
        options.events,
        options.max_replicas,
        options.deadline.as_secs(),
        env.cci_namespace
    );
    let mut rng = Rng::new(options.seed);
    let max = options.max_replicas.max(1);
    let replicas: Vec<usize> = WORKLOADS
        .iter()
        .map(|_| rng.between(1, (max as u64).div_ceil(2)) as usize)
        .collect();
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &namespace);
    for (name, n) in WORKLOADS.iter().zip(&replicas) {
        deployments
            .create(&PostParams::default(), &deployment(name, *n)?)
            .await
            .map_err(kube("create a soak deployment"))?;
    }
    let mut soak = Soak {
        env,
        client,
        namespace,
        rng,
        replicas,
        max_replicas: max,
        last_request: 0,
        summary: Summary {
            seed: options.seed,
            events_planned: options.events,
            ..Summary::default()
        },
    };
    let remaining = options.deadline.saturating_sub(started.elapsed());
    match tokio::time::timeout(remaining, soak.events(options.events)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => soak.summary.aborted = Some(format!("{e}")),
        Err(_) => {
            soak.summary.aborted = Some(format!(
                "the deadline of {} s passed after {} of {} events (raise --deadline-secs)",
                options.deadline.as_secs(),
                soak.summary.events_run(),
                options.events
            ));
        }
    }
    // Whatever happened, leave no fault set on the mock (guards clear theirs when dropped, but a
    // clear that failed mid-outage would linger).
    let _ = clear_faults(env).await;
    soak.summary.wall = started.elapsed();
    let _ = Api::<Namespace>::all(soak.client.clone())
        .delete(&soak.namespace, &DeleteParams::default())
        .await;
    Ok(soak.summary)
}

/// Clears every fault set on the mock.
async fn clear_faults(env: &Env) -> Result<()> {
    let Some(admin) = env.mock_admin() else {
        return Ok(());
    };
    for fault in admin.faults().await? {
        admin.clear_fault(fault.id).await?;
    }
    Ok(())
}

/// The time of day (UTC, `HH:MM:SS`), to line the soak's lines up with the add-on's logs.
fn clock() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
        % 86_400;
    format!("{:02}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60)
}

/// Chaos pacing: a random pause between (or inside) events. NB: this is the chaos itself (when
/// the next blow lands), never a wait for state; every wait for state is a condition with a
/// deadline ([`wait::until`]).
async fn chaos_pause(millis: u64) {
    tokio::time::sleep(Duration::from_millis(millis)).await;
}

impl Soak<'_> {
    async fn events(&mut self, n: usize) -> Result<()> {
        let started = Instant::now();
        for i in 1..=n {
            let event = choose(&mut self.rng, &self.replicas, self.max_replicas);
            let pause = self.rng.between(200, 2500);
            eprintln!(
                "burstcert soak: [{i}/{n} {} {:.0} s] {event}",
                clock(),
                started.elapsed().as_secs_f64()
            );
            self.apply(&event).await?;
            *self.summary.events.entry(event.kind()).or_default() += 1;
            self.between_events().await;
            if i % CHECK_EVERY == 0 || i == n {
                self.converge(i).await?;
            } else {
                chaos_pause(pause).await;
            }
        }
        Ok(())
    }

    async fn apply(&mut self, event: &Event) -> Result<()> {
        match *event {
            Event::ScaleUp { workload, to } | Event::ScaleDown { workload, to } => {
                self.scale(workload, to).await
            }
            Event::DeletePods {
                workload,
                count,
                pick,
            } => self.delete_pods(workload, count, pick).await,
            Event::KillEngine {
                workload,
                to,
                after_ms,
            } => {
                self.engine_running().await?;
                self.scale(workload, to).await?;
                chaos_pause(after_ms).await;
                self.kill_engine().await
            }
            Event::RestartApiServer => self.restart_api_server().await,
            Event::Fault {
                fault,
                workload,
                to,
                hold_ms,
            } => {
                let guard = self.set_fault(fault).await?;
                let during = async {
                    self.scale(workload, to).await?;
                    chaos_pause(hold_ms).await;
                    Ok::<_, Error>(())
                }
                .await;
                self.summary.faults_fired += guard.fired().await.unwrap_or(0);
                let cleared = guard.clear().await;
                during.and(cleared)
            }
            Event::FaultAndKill {
                fault,
                workload,
                to,
                hold_ms,
            } => {
                self.engine_running().await?;
                let guard = self.set_fault(fault).await?;
                let during = async {
                    self.scale(workload, to).await?;
                    chaos_pause(hold_ms / 2).await;
                    self.kill_engine().await?;
                    chaos_pause(hold_ms / 2).await;
                    Ok::<_, Error>(())
                }
                .await;
                self.summary.faults_fired += guard.fired().await.unwrap_or(0);
                let cleared = guard.clear().await;
                during.and(cleared)
            }
        }
    }

    async fn set_fault(&mut self, fault: FaultKind) -> Result<crate::mock_admin::FaultGuard> {
        let admin = self.env.mock_admin().ok_or_else(|| Error::Step {
            step: "set a CCI fault".into(),
            detail: "this environment has no mock CCI".into(),
        })?;
        let guard = admin
            .set_fault(
                Scope::Namespace(self.env.cci_namespace.clone()),
                fault.fault(),
            )
            .await?;
        *self.summary.faults.entry(fault.name()).or_default() += 1;
        Ok(guard)
    }

    /// Asks `to` replicas of a Deployment, retrying while the API server is away.
    async fn scale(&mut self, workload: usize, to: usize) -> Result<()> {
        let name = WORKLOADS[workload];
        let deployments: Api<Deployment> = Api::namespaced(self.client.clone(), &self.namespace);
        let patch = serde_json::json!({"spec": {"replicas": to}});
        wait::until(
            &format!("the API server to take the scale of {name} to {to}"),
            Duration::from_secs(60),
            || async {
                deployments
                    .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await
                    .map_err(kube("scale a soak deployment"))?;
                Ok(Some(()))
            },
            || async { String::new() },
        )
        .await?;
        self.replicas[workload] = to;
        Ok(())
    }

    async fn delete_pods(&mut self, workload: usize, count: usize, pick: u64) -> Result<()> {
        let name = WORKLOADS[workload];
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), &self.namespace);
        let mut live: Vec<String> = pods
            .list(&ListParams::default().labels(&format!("{WORKLOAD_LABEL}={name}")))
            .await
            .map_err(kube("list soak pods"))?
            .items
            .into_iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .filter_map(|p| p.metadata.name)
            .collect();
        live.sort();
        let mut rng = Rng::new(pick);
        for _ in 0..count.min(live.len()) {
            let victim = live.swap_remove(rng.below(live.len()));
            match pods.delete(&victim, &DeleteParams::default()).await {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                Err(e) => return Err(kube("delete a soak pod")(e)),
            }
        }
        Ok(())
    }

    /// Waits until a virtual kubelet process runs (a kill needs one; after a kill the host
    /// node restarts it after its back-off).
    async fn engine_running(&self) -> Result<()> {
        wait::until(
            "a virtual kubelet process to run on the host node",
            Duration::from_secs(60),
            || async { Ok((!self.env.engine_pids().is_empty()).then_some(())) },
            || async { self.env.engine_log_tail(20) },
        )
        .await
    }

    async fn kill_engine(&mut self) -> Result<()> {
        self.engine_running().await?;
        let before = self.env.kill_engine().await?;
        self.summary.engine_kills += 1;
        self.env.wait_engine_restarted(before).await?;
        self.engine_running().await
    }

    async fn restart_api_server(&mut self) -> Result<()> {
        // Blocking (it waits for the old process to exit); `block_in_place` because the env is
        // borrowed, not `'static` as `spawn_blocking` would need.
        tokio::task::block_in_place(|| self.env.restart_api_server())?;
        self.summary.api_restarts += 1;
        // A fresh client: the old one's connections died with the server.
        self.client = self.env.client().await?;
        let namespaces: Api<Namespace> = Api::all(self.client.clone());
        let ns = self.namespace.clone();
        wait::until(
            "the restarted API server to answer",
            Duration::from_secs(120),
            || async {
                namespaces
                    .get(&ns)
                    .await
                    .map_err(kube("get the soak namespace"))?;
                Ok(Some(()))
            },
            || async { String::new() },
        )
        .await
    }

    /// After each event: duplicates on CCI right now, and the 409s and 404s the engine met.
    async fn between_events(&mut self) {
        if let Ok(cci) = self.cci_pods().await {
            for d in duplicates_now(&cci) {
                eprintln!("burstcert soak: DUPLICATE on CCI: {d}");
                if !self.summary.duplicates_between_checks.contains(&d) {
                    self.summary.duplicates_between_checks.push(d);
                }
            }
        }
        let Some(admin) = self.env.mock_admin() else {
            return;
        };
        let Ok(records) = admin.requests(Some(5000)).await else {
            return;
        };
        let pods_path = format!("/namespaces/{}/pods", self.env.cci_namespace);
        if let Some(first) = records.first()
            && self.last_request > 0
            && first.seq > self.last_request + 1
        {
            self.summary.request_log_gap = true;
        }
        for r in records.iter().filter(|r| r.seq > self.last_request) {
            let path = r.path.split('?').next().unwrap_or_default();
            if r.method == "POST" && path.ends_with(&pods_path) && r.status == 409 {
                self.summary.conflicts += 1;
            }
            if r.method == "DELETE" && path.contains(&format!("{pods_path}/")) && r.status == 404 {
                self.summary.deletes_not_found += 1;
            }
        }
        if let Some(last) = records.last() {
            self.last_request = self.last_request.max(last.seq);
        }
    }

    async fn cci_pods(&self) -> Result<Vec<CciPodState>> {
        Ok(self
            .env
            .cci
            .pods(&self.env.cci_namespace)
            .await?
            .into_iter()
            .map(|p| CciPodState {
                cluster_uid: cluster_uid(&p),
                terminating: p.metadata.deletion_timestamp.is_some(),
                phase: p.status.as_ref().and_then(|s| s.phase.clone()),
                name: p.metadata.name.unwrap_or_default(),
            })
            .collect())
    }

    async fn observe(&self) -> Result<Violations> {
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), &self.namespace);
        let cluster: Vec<ClusterPodState> = pods
            .list(&ListParams::default().labels(WORKLOAD_LABEL))
            .await
            .map_err(kube("list soak pods"))?
            .items
            .into_iter()
            .map(|p| ClusterPodState {
                workload: p
                    .metadata
                    .labels
                    .as_ref()
                    .and_then(|l| l.get(WORKLOAD_LABEL).cloned())
                    .unwrap_or_default(),
                uid: p.metadata.uid.clone().unwrap_or_default(),
                terminating: p.metadata.deletion_timestamp.is_some(),
                node: p.spec.as_ref().and_then(|s| s.node_name.clone()),
                phase: p.status.as_ref().and_then(|s| s.phase.clone()),
                name: p.metadata.name.unwrap_or_default(),
            })
            .collect();
        let cci = self.cci_pods().await?;
        let desired: BTreeMap<String, usize> = WORKLOADS
            .iter()
            .map(|w| (*w).to_owned())
            .zip(self.replicas.iter().copied())
            .collect();
        Ok(check(&desired, &cluster, &cci))
    }

    /// Clears the faults, waits for the invariants to hold, records how long that took or what
    /// was still wrong at the deadline.
    async fn converge(&mut self, after_event: usize) -> Result<()> {
        clear_faults(self.env).await?;
        let started = Instant::now();
        let last = std::sync::Mutex::new(Violations::default());
        let settle = std::sync::Mutex::new(Settle::default());
        let shown = std::sync::Mutex::new(String::new());
        let this = &*self;
        let result = wait::until(
            &format!(
                "the soak to converge after event {after_event} (the invariants holding for {} s)",
                STABLE.as_secs()
            ),
            CONVERGE_PATIENCE,
            || {
                let (last, settle, shown) = (&last, &settle, &shown);
                async move {
                    let v = this.observe().await?;
                    let held = v.is_empty();
                    // What is still wrong, each time it changes: what a slow convergence waited on.
                    let text = v.to_string();
                    if let Ok(mut shown) = shown.lock()
                        && *shown != text
                    {
                        eprintln!(
                            "burstcert soak:   {} {:.1} s: {text}",
                            clock(),
                            started.elapsed().as_secs_f64()
                        );
                        *shown = text;
                    }
                    if let Ok(mut l) = last.lock() {
                        *l = v;
                    }
                    Ok(settle
                        .lock()
                        .ok()
                        .and_then(|mut s| s.observe(held, Instant::now())))
                }
            },
            || async {
                format!(
                    "{}\nengine log (last 40 lines):\n{}",
                    this.env.cci.describe(&this.env.cci_namespace).await,
                    this.env.engine_log_tail(40)
                )
            },
        )
        .await;
        let violations = last.into_inner().unwrap_or_default();
        let check = match result {
            Ok(since) => {
                let secs = since.saturating_duration_since(started).as_secs_f64();
                eprintln!(
                    "burstcert soak: check after event {after_event}: converged in {secs:.1} s (replicas {:?})",
                    self.replicas
                );
                CheckResult {
                    after_event,
                    converged_secs: Some(secs),
                    violations: Violations::default(),
                }
            }
            Err(e) => {
                eprintln!(
                    "burstcert soak: check after event {after_event}: NOT converged: {violations}\n{e}"
                );
                CheckResult {
                    after_event,
                    converged_secs: None,
                    violations,
                }
            }
        };
        self.summary.checks.push(check);
        Ok(())
    }
}

fn cluster_uid(pod: &cci_api::Pod) -> Option<String> {
    crate::scenarios::cluster_uid_of(pod).map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;
    use std::collections::BTreeSet;

    #[test]
    fn the_same_seed_replays_the_same_events() {
        let run = |seed| {
            let mut rng = Rng::new(seed);
            let mut replicas = vec![3, 5];
            (0..200)
                .map(|_| {
                    let e = choose(&mut rng, &replicas, 12);
                    if let Some((w, to)) = e.target() {
                        replicas[w] = to;
                    }
                    e
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(run(42), run(42));
        assert_ne!(run(42), run(43));
    }

    #[test]
    fn every_kind_of_event_comes_up_in_a_soak_of_fifty() {
        let mut rng = Rng::new(7);
        let mut replicas = vec![3, 3];
        let mut kinds = BTreeSet::new();
        let mut faults = BTreeSet::new();
        for _ in 0..200 {
            let e = choose(&mut rng, &replicas, 12);
            if let Event::Fault { fault, .. } | Event::FaultAndKill { fault, .. } = e {
                faults.insert(fault);
            }
            if let Some((w, to)) = e.target() {
                replicas[w] = to;
            }
            kinds.insert(e.kind());
        }
        assert_eq!(kinds.len(), 7, "{kinds:?}");
        assert_eq!(faults.len(), 3, "{faults:?}");
    }

    #[rstest]
    #[case::from_nothing(vec![0, 0], 1)]
    #[case::at_the_ceiling(vec![12, 12], 12)]
    #[case::in_between(vec![4, 9], 12)]
    #[case::a_ceiling_of_one(vec![1, 0], 1)]
    fn events_keep_replicas_within_the_ceiling_and_always_change_them(
        #[case] start: Vec<usize>,
        #[case] max: usize,
    ) {
        let mut rng = Rng::new(1);
        let mut replicas: Vec<usize> = start.iter().map(|r| (*r).min(max)).collect();
        for _ in 0..500 {
            let e = choose(&mut rng, &replicas, max);
            match e {
                Event::ScaleUp { workload, to } => assert!(to > replicas[workload], "{e:?}"),
                Event::ScaleDown { workload, to } => assert!(to < replicas[workload], "{e:?}"),
                Event::DeletePods {
                    workload, count, ..
                } => assert!((1..=replicas[workload].min(3)).contains(&count), "{e:?}"),
                _ => {}
            }
            if let Some((w, to)) = e.target() {
                assert!(to <= max, "{e:?}");
                assert_ne!(to, replicas[w], "a scale that changes nothing: {e:?}");
                replicas[w] = to;
            }
        }
    }

    #[test]
    fn numbers_between_stay_in_their_bounds() {
        let mut rng = Rng::new(0);
        for _ in 0..1000 {
            assert!((3..=5).contains(&rng.between(3, 5)));
            assert!(rng.below(4) < 4);
        }
        assert_eq!(rng.between(5, 5), 5);
        assert_eq!(rng.between(6, 2), 6);
        assert_eq!(rng.below(0), 0);
    }

    fn cluster(workload: &str, name: &str, phase: &str) -> ClusterPodState {
        ClusterPodState {
            workload: workload.into(),
            name: name.into(),
            uid: format!("uid-{name}"),
            node: Some(VIRTUAL_NODE.into()),
            phase: Some(phase.into()),
            terminating: false,
        }
    }

    fn cci(name: &str, for_pod: &str, phase: &str) -> CciPodState {
        CciPodState {
            name: format!("ns.{name}"),
            cluster_uid: Some(format!("uid-{for_pod}")),
            phase: Some(phase.into()),
            terminating: false,
        }
    }

    fn desired(a: usize) -> BTreeMap<String, usize> {
        BTreeMap::from([("a".to_owned(), a)])
    }

    #[rstest]
    #[case::converged(
        desired(2),
        vec![cluster("a", "p1", "Running"), cluster("a", "p2", "Running")],
        vec![cci("p1", "p1", "Running"), cci("p2", "p2", "Running")],
        [0, 0, 0, 0],
    )]
    #[case::a_cci_pod_whose_cluster_pod_is_gone_is_leaked(
        desired(1),
        vec![cluster("a", "p1", "Running")],
        vec![cci("p1", "p1", "Running"), cci("old", "old", "Running")],
        [1, 0, 0, 0],
    )]
    #[case::a_cci_pod_of_a_terminating_cluster_pod_is_leaked_and_the_pod_stuck(
        desired(0),
        vec![ClusterPodState { terminating: true, ..cluster("a", "p1", "Running") }],
        vec![cci("p1", "p1", "Running")],
        [1, 0, 0, 1],
    )]
    #[case::two_cci_pods_for_one_cluster_pod_are_a_duplicate(
        desired(1),
        vec![cluster("a", "p1", "Running")],
        vec![cci("p1", "p1", "Running"), cci("p1-again", "p1", "Running")],
        [0, 1, 0, 0],
    )]
    #[case::a_cluster_pod_without_cci_pod_is_lost(
        desired(2),
        vec![cluster("a", "p1", "Running"), cluster("a", "p2", "Pending")],
        vec![cci("p1", "p1", "Running")],
        [0, 0, 1, 0],
    )]
    #[case::fewer_pods_than_replicas_is_lost(
        desired(3),
        vec![cluster("a", "p1", "Running")],
        vec![cci("p1", "p1", "Running")],
        [0, 0, 1, 0],
    )]
    #[case::more_pods_than_replicas_is_a_mismatch(
        desired(0),
        vec![cluster("a", "p1", "Running")],
        vec![cci("p1", "p1", "Running")],
        [0, 0, 0, 1],
    )]
    #[case::phases_that_differ_are_a_mismatch(
        desired(1),
        vec![cluster("a", "p1", "Running")],
        vec![cci("p1", "p1", "Pending")],
        [0, 0, 0, 1],
    )]
    #[case::a_failed_pod_is_a_mismatch(
        desired(1),
        vec![cluster("a", "p1", "Failed")],
        vec![cci("p1", "p1", "Failed")],
        [0, 0, 0, 1],
    )]
    #[case::a_pod_off_the_virtual_node_is_a_mismatch(
        desired(1),
        vec![ClusterPodState { node: Some("kwok-0".into()), ..cluster("a", "p1", "Running") }],
        vec![cci("p1", "p1", "Running")],
        [0, 0, 0, 1],
    )]
    #[case::a_cci_pod_being_deleted_under_a_live_pod_is_a_mismatch(
        desired(1),
        vec![cluster("a", "p1", "Running")],
        vec![CciPodState { terminating: true, ..cci("p1", "p1", "Running") }],
        [0, 0, 0, 1],
    )]
    #[case::a_cci_pod_without_the_uid_label_is_leaked(
        desired(0),
        vec![],
        vec![CciPodState { cluster_uid: None, ..cci("x", "x", "Running") }],
        [1, 0, 0, 0],
    )]
    fn invariants_are_checked_from_what_the_cluster_and_cci_show(
        #[case] desired: BTreeMap<String, usize>,
        #[case] cluster: Vec<ClusterPodState>,
        #[case] cci: Vec<CciPodState>,
        #[case] expected: [usize; 4],
    ) {
        let v = check(&desired, &cluster, &cci);
        assert_eq!(
            [
                v.leaked.len(),
                v.duplicates.len(),
                v.lost.len(),
                v.mismatched.len()
            ],
            expected,
            "{v}"
        );
        assert_eq!(v.is_empty(), expected == [0; 4]);
    }

    #[test]
    fn a_duplicate_shows_between_checks_only_when_neither_copy_is_being_deleted() {
        let both = [cci("p1", "p1", "Running"), cci("p1b", "p1", "Pending")];
        assert_eq!(duplicates_now(&both), ["uid uid-p1: ns.p1, ns.p1b"]);
        let going = [
            cci("p1", "p1", "Running"),
            CciPodState {
                terminating: true,
                ..cci("p1b", "p1", "Running")
            },
        ];
        assert!(duplicates_now(&going).is_empty());
    }

    #[test]
    fn a_check_passes_only_once_the_invariants_held_without_a_break() {
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let mut settle = Settle::default();
        assert_eq!(settle.observe(true, at(0)), None);
        assert_eq!(settle.observe(true, at(3)), None);
        assert_eq!(settle.observe(false, at(4)), None, "a break starts over");
        assert_eq!(settle.observe(true, at(6)), None);
        assert_eq!(settle.observe(true, at(10)), None);
        assert_eq!(
            settle.observe(true, at(11)),
            Some(at(6)),
            "converged when it began to hold"
        );
    }

    #[rstest]
    #[case::median_of_odd(&[3.0, 1.0, 2.0], 50.0, Some(2.0))]
    #[case::median_of_even(&[4.0, 1.0, 3.0, 2.0], 50.0, Some(2.0))]
    #[case::max(&[4.0, 1.0, 3.0], 100.0, Some(4.0))]
    #[case::one(&[7.5], 50.0, Some(7.5))]
    #[case::none(&[], 50.0, None)]
    fn percentiles_are_nearest_rank(
        #[case] values: &[f64],
        #[case] p: f64,
        #[case] expected: Option<f64>,
    ) {
        assert_eq!(percentile(values, p), expected);
    }

    #[test]
    fn the_summary_prints_the_numbers_and_names_what_failed() {
        let mut s = Summary {
            seed: 9,
            events_planned: 2,
            events: BTreeMap::from([("scale up", 1), ("engine kill mid-scale", 1)]),
            engine_kills: 1,
            faults: BTreeMap::from([("applied, then timed out", 1)]),
            faults_fired: 4,
            conflicts: 3,
            checks: vec![CheckResult {
                after_event: 2,
                converged_secs: Some(12.0),
                violations: Violations::default(),
            }],
            wall: Duration::from_secs(60),
            ..Summary::default()
        };
        let text = s.to_string();
        assert!(!s.failed(), "{text}");
        for needle in [
            "seed 9 (replay: burstcert soak --seed 9 --events 2)",
            "events: 2 of 2 (engine kill mid-scale 1, scale up 1)",
            "engine kills: 1; API server restarts: 0",
            "fired on 4 requests; pod creates answered 409: 3",
            "checks: 1 run, 1 converged; convergence p50 12.0 s, max 12.0 s",
            "leaked: 0; duplicates: 0 (between checks: 0); mismatches: 0; lost: 0",
            "verdict: passed",
        ] {
            assert!(text.contains(needle), "{needle:?} not in:\n{text}");
        }

        s.checks.push(CheckResult {
            after_event: 2,
            converged_secs: None,
            violations: Violations {
                leaked: vec!["CCI pod ns.old".into()],
                ..Violations::default()
            },
        });
        let text = s.to_string();
        assert!(s.failed());
        assert!(text.contains("leaked: 1;"), "{text}");
        assert!(
            text.contains(
                "FAILED check after event 2: not converged in 180 s: 1 leaked: CCI pod ns.old"
            ),
            "{text}"
        );
        assert!(text.contains("verdict: FAILED"), "{text}");
    }

    #[test]
    fn a_soak_that_stopped_early_or_checked_nothing_fails() {
        let aborted = Summary {
            aborted: Some("the deadline of 10 s passed".into()),
            checks: vec![CheckResult {
                after_event: 1,
                converged_secs: Some(1.0),
                violations: Violations::default(),
            }],
            ..Summary::default()
        };
        assert!(aborted.failed());
        assert!(aborted.to_string().contains("ABORTED: the deadline"));
        assert!(Summary::default().failed());
    }
}
