//! `burstcert bench`: the engine's speed, memory and CCI traffic, measured on the environment
//! the suites use (real control plane, the add-on on the host node, the mock CCI), except that
//! the control plane's clients are not throttled ([`ClientRates::UNTHROTTLED`]). Numbers are
//! printed, never asserted: a benchmark informs, it does not pass or fail.
//!
//! 1. **Start-up ratio**: a Deployment of N replicas to all-Running on `bursting-node`, and the
//!    same Deployment on kwok nodes of the same cluster, one after the other, in R rounds (the
//!    side that goes first alternates); the median of each side's times, pods per second, and
//!    the median of the rounds' ratios (target ≤ 1.2). Timed from a watch, so the times
//!    are exact to the event, not to a poll.
//! 2. **Engine memory**: the virtual kubelet's resident set before anything ran, and with P burst
//!    pods Running, each mounting its own ConfigMap of K KiB (target ≤ 128 MiB at 4000
//!    pods and 4000 × 300 KiB, release build).
//! 3. **Idle CCI traffic**: with those P pods Running and the add-on's writes to CCI settled,
//!    every request that reached the mock CCI during a window (default: the engine's resync
//!    period plus 30 s), by kind, per minute; and when the full lists of the CCI pods came
//!    (target: none more often than the resync period).

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use futures::{StreamExt as _, TryStreamExt as _};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, ListParams, ObjectMeta, PostParams};
use kube::runtime::{WatchStreamExt as _, watcher};

use crate::cluster::local::ClientRates;
use crate::cluster::nodes::{NodeShape, create_nodes};
use crate::env::Env;
use crate::error::{Error, Result};
use crate::mock_admin::{LoggedRequest, MockAdmin, RequestKind as _};
use crate::scenarios::POLICY_LABEL;
use crate::wait;

/// The kind of request ([`LoggedRequest::kind`]) that is a full list of the CCI pods.
pub const FULL_POD_LIST: &str = "GET list pods";

/// How long the add-on must have sent CCI no write to pods, ConfigMaps or Secrets before the
/// idle window opens: the memory run's creates are over, not paused between two batches.
const SETTLE_QUIET: Duration = Duration::from_secs(10);

/// How many ConfigMaps and pods of the memory run are created at once: the run measures the
/// engine once they exist, not how fast one client creates them one by one.
const CREATE_CONCURRENCY: usize = 8;

/// What to measure.
#[derive(Clone, Debug)]
pub struct BenchOptions {
    /// Replicas of the start-up comparison (0 skips it).
    pub replicas: usize,
    /// Rounds of the start-up comparison (at least 1).
    pub rounds: usize,
    /// Burst pods for the memory measurement (0 skips it and the idle window).
    pub memory_pods: usize,
    /// Size of each pod's ConfigMap, KiB.
    pub configmap_kib: usize,
    /// Length of the idle window over which CCI requests are counted ([`Duration::ZERO`]
    /// skips it).
    pub idle: Duration,
}

/// What was measured.
#[derive(Clone, Debug, Default)]
pub struct BenchReport {
    /// The control plane's client rates the cluster ran with.
    pub client_rates: Option<ClientRates>,
    /// The start-up rounds, in order.
    pub startup: Vec<StartupRound>,
    /// Virtual kubelet RSS before the runs, MiB.
    pub rss_idle_mib: Option<f64>,
    /// Virtual kubelet RSS with the pods and ConfigMaps, MiB.
    pub rss_loaded_mib: Option<f64>,
    /// Peak RSS (VmHWM) of the virtual kubelet, MiB.
    pub rss_peak_mib: Option<f64>,
    /// The options it ran with.
    pub replicas: usize,
    /// Pods of the memory run.
    pub memory_pods: usize,
    /// KiB per ConfigMap.
    pub configmap_kib: usize,
    /// The engine binary the host node ran (its RSS is the engine's).
    pub engine_binary: Option<PathBuf>,
    /// The CCI requests of the idle window.
    pub idle_requests: Option<IdleRequests>,
}

/// One round of the start-up comparison.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct StartupRound {
    /// Seconds until N replicas ran on `bursting-node`.
    pub burst_seconds: f64,
    /// Seconds until N replicas ran on kwok nodes.
    pub kwok_seconds: f64,
}

impl StartupRound {
    /// `bursting-node`'s time over the kwok nodes' (0 when kwok took no time).
    pub fn ratio(&self) -> f64 {
        if self.kwok_seconds > 0.0 {
            self.burst_seconds / self.kwok_seconds
        } else {
            0.0
        }
    }
}

/// The median of `values` (the mean of the middle two for an even count; 0 for none).
pub fn median(values: impl IntoIterator<Item = f64>) -> f64 {
    let mut sorted: Vec<f64> = values.into_iter().collect();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    match n {
        0 => 0.0,
        _ if n % 2 == 1 => sorted[n / 2],
        _ => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

/// Pods per second: `pods` in `seconds`.
pub fn pods_per_second(pods: usize, seconds: f64) -> f64 {
    if seconds > 0.0 {
        pods as f64 / seconds
    } else {
        0.0
    }
}

impl std::fmt::Display for BenchReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(rates) = &self.client_rates {
            writeln!(f, "control plane client rates: {rates}")?;
        }
        if !self.startup.is_empty() {
            let n = self.replicas;
            let rounds = &self.startup;
            let b = median(rounds.iter().map(|r| r.burst_seconds));
            let k = median(rounds.iter().map(|r| r.kwok_seconds));
            writeln!(
                f,
                "start-up, {n} replicas, median of {} round(s): bursting-node {b:.1} s ({:.1} pods/s), kwok nodes {k:.1} s ({:.1} pods/s), ratio {:.2} (the rounds' median; target <= 1.20)",
                rounds.len(),
                pods_per_second(n, b),
                pods_per_second(n, k),
                median(rounds.iter().map(StartupRound::ratio))
            )?;
            let each: Vec<String> = rounds
                .iter()
                .map(|r| {
                    format!(
                        "{:.1} / {:.1} ({:.2})",
                        r.burst_seconds,
                        r.kwok_seconds,
                        r.ratio()
                    )
                })
                .collect();
            writeln!(
                f,
                "  rounds, bursting-node / kwok nodes in s (ratio): {}",
                each.join(", ")
            )?;
        }
        if let (Some(idle), Some(loaded)) = (self.rss_idle_mib, self.rss_loaded_mib) {
            writeln!(
                f,
                "engine RSS: {idle:.0} MiB idle, {loaded:.0} MiB with {} pods and {} ConfigMaps of {} KiB (peak {:.0} MiB; target <= 128 MiB)",
                self.memory_pods,
                self.memory_pods,
                self.configmap_kib,
                self.rss_peak_mib.unwrap_or(0.0)
            )?;
        }
        if let Some(idle) = &self.idle_requests {
            write!(f, "{idle}")?;
        }
        if let Some(binary) = &self.engine_binary {
            // NB: a debug build's RSS is not the product's (its code alone adds ~60 MiB idle).
            let debug = binary.components().any(|c| c.as_os_str() == "debug");
            writeln!(
                f,
                "engine binary: {}{}",
                binary.display(),
                if debug {
                    " (a debug build: for the RSS target measure a release build, see docs/benchmarks.md)"
                } else {
                    ""
                }
            )?;
        }
        Ok(())
    }
}

/// The requests that reached the mock CCI during the idle window, as its request log shows
/// them: everything the add-on sent (the virtual kubelet's and the proxy's), not what one
/// component says it sent.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct IdleRequests {
    /// How long the window lasted.
    pub window: Duration,
    /// Burst pods Running during the window.
    pub pods: usize,
    /// Requests by kind ([`LoggedRequest::kind`]).
    pub by_kind: BTreeMap<String, u64>,
    /// Seconds into the window of each full list of the CCI pods ([`FULL_POD_LIST`]).
    pub full_lists_at: Vec<f64>,
    /// The engine's resync period (`--cci-resync-seconds`), when it could be read.
    pub resync: Option<Duration>,
    /// The mock's log dropped requests of the window before they were read: the counts are a
    /// lower bound.
    pub incomplete: bool,
}

impl IdleRequests {
    /// Counts `records` (read during the window, oldest first, possibly overlapping) after
    /// sequence number `after_seq`, for a window that opened at `opened` and lasted `window`.
    pub fn count(
        records: &[LoggedRequest],
        after_seq: u64,
        opened: Timestamp,
        window: Duration,
    ) -> Self {
        let mut idle = Self {
            window,
            ..Self::default()
        };
        let mut next = after_seq + 1;
        let end = opened.as_millisecond() + i64::try_from(window.as_millis()).unwrap_or(i64::MAX);
        for r in records.iter().filter(|r| r.seq > after_seq) {
            if r.seq < next {
                continue; // read twice
            }
            if r.seq > next {
                idle.incomplete = true;
            }
            next = r.seq + 1;
            let at = r.time.0.as_millisecond();
            if at > end {
                continue; // after the window closed, before it was read
            }
            let kind = r.kind();
            if kind == FULL_POD_LIST {
                idle.full_lists_at
                    .push((at - opened.as_millisecond()) as f64 / 1000.0);
            }
            *idle.by_kind.entry(kind).or_default() += 1;
        }
        idle
    }

    /// `n` requests over the window, per minute.
    pub fn per_minute(&self, n: u64) -> f64 {
        let minutes = self.window.as_secs_f64() / 60.0;
        if minutes > 0.0 {
            n as f64 / minutes
        } else {
            0.0
        }
    }

    /// Every request of the window.
    pub fn total(&self) -> u64 {
        self.by_kind.values().sum()
    }
}

impl std::fmt::Display for IdleRequests {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let seconds = self.window.as_secs_f64();
        writeln!(
            f,
            "idle CCI requests, {seconds:.0} s with {} pods Running (the mock CCI's request log: all the add-on sent){}: {} = {:.1}/min",
            self.pods,
            if self.incomplete {
                " (INCOMPLETE: the log overflowed; counts are a lower bound)"
            } else {
                ""
            },
            self.total(),
            self.per_minute(self.total())
        )?;
        let mut kinds: Vec<(&String, &u64)> = self.by_kind.iter().collect();
        kinds.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        for (kind, n) in kinds {
            writeln!(f, "  {kind}: {n} ({:.2}/min)", self.per_minute(*n))?;
        }
        let at: Vec<String> = self
            .full_lists_at
            .iter()
            .map(|s| format!("+{s:.0} s"))
            .collect();
        let lists = self.full_lists_at.len() as u64;
        write!(
            f,
            "full lists of the CCI pods: {lists} in {seconds:.0} s ({:.2}/min{}{})",
            self.per_minute(lists),
            if at.is_empty() { "" } else { "; at " },
            at.join(", ")
        )?;
        match self.resync {
            Some(resync) => writeln!(
                f,
                "; the engine's resync period {} s (target: no full list more often than that, <= 1 per 5 min)",
                resync.as_secs()
            ),
            None => writeln!(f, "; the engine's resync period unknown"),
        }
    }
}

/// The value of `--cci-resync-seconds` in a virtual kubelet's command line, if it is there.
pub fn resync_from_args(args: &[String]) -> Option<u64> {
    const FLAG: &str = "--cci-resync-seconds";
    args.iter()
        .enumerate()
        .find_map(|(i, arg)| match arg.strip_prefix(FLAG)? {
            "" => args.get(i + 1)?.parse().ok(),
            rest => rest.strip_prefix('=')?.parse().ok(),
        })
}

/// The default of `--cci-resync-seconds` as `bursting-engine virtual-kubelet --help` states it
/// (clap's `[default: N]`, on the flag's line or the lines of its description).
pub fn resync_default_from_help(help: &str) -> Option<u64> {
    let mut lines = help
        .lines()
        .skip_while(|l| !l.trim_start().starts_with("--cci-resync-seconds"));
    let first = lines.next()?;
    let description = lines.take_while(|l| !l.trim_start().starts_with('-'));
    std::iter::once(first)
        .chain(description)
        .find_map(|l| l.split_once("[default: "))
        .and_then(|(_, rest)| rest.split(']').next()?.trim().parse().ok())
}

/// Whether a request of `kind` changes the add-on's pods or their ConfigMaps and Secrets on
/// CCI: while those go on, the engine is not idle.
pub fn is_workload_write(kind: &str) -> bool {
    let mut words = kind.split(' ');
    let (Some(method), Some(_), Some(collection)) = (words.next(), words.next(), words.next())
    else {
        return false;
    };
    matches!(method, "POST" | "PUT" | "DELETE")
        && matches!(collection, "pods" | "configmaps" | "secrets")
}

/// Counts the pods Running in a watch's view of a set of pods: [`apply`](Self::apply) each
/// event, including the re-lists a watcher makes after an expired watch.
#[derive(Debug, Default)]
pub struct RunningPods {
    running: HashSet<String>,
    /// Filled between a re-list's `Init` and `InitDone`, then replaces `running`.
    relisting: Option<HashSet<String>>,
}

impl RunningPods {
    /// Applies one watch event.
    pub fn apply(&mut self, event: watcher::Event<Pod>) {
        let running = |pod: &Pod| {
            pod.metadata.deletion_timestamp.is_none()
                && pod.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
        };
        match event {
            watcher::Event::Init => self.relisting = Some(HashSet::new()),
            watcher::Event::InitApply(pod) => {
                if running(&pod)
                    && let (Some(set), Some(name)) = (&mut self.relisting, pod.metadata.name)
                {
                    set.insert(name);
                }
            }
            watcher::Event::InitDone => {
                if let Some(set) = self.relisting.take() {
                    self.running = set;
                }
            }
            watcher::Event::Apply(pod) => {
                let is_running = running(&pod);
                if let Some(name) = pod.metadata.name {
                    if is_running {
                        self.running.insert(name);
                    } else {
                        self.running.remove(&name);
                    }
                }
            }
            watcher::Event::Delete(pod) => {
                if let Some(name) = &pod.metadata.name {
                    self.running.remove(name);
                }
            }
        }
    }

    /// How many are Running.
    pub fn count(&self) -> usize {
        self.running.len()
    }
}

fn kube(context: &str) -> impl FnOnce(kube::Error) -> Error + '_ {
    move |source| Error::Kube {
        context: context.to_owned(),
        source,
    }
}

/// `VmRSS` and `VmHWM` of a process, MiB.
fn rss_mib(pid: u32) -> Option<(f64, f64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| -> Option<f64> {
        let line = status.lines().find(|l| l.starts_with(name))?;
        let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kib / 1024.0)
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

fn engine_rss(env: &Env) -> Option<(f64, f64)> {
    env.engine_pids().into_iter().find_map(rss_mib)
}

async fn namespace(client: &kube::Client, name: &str) -> Result<Api<Pod>> {
    create_namespace(client, name).await?;
    Ok(Api::namespaced(client.clone(), name))
}

/// Creates namespace `name` and waits for its default service account (pods are refused
/// without it); shared with the soak.
pub(crate) async fn create_namespace(client: &kube::Client, name: &str) -> Result<()> {
    let ns = Namespace {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..ObjectMeta::default()
        },
        ..Namespace::default()
    };
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await
        .map_err(kube(name))?;
    let accounts: Api<k8s_openapi::api::core::v1::ServiceAccount> =
        Api::namespaced(client.clone(), name);
    wait::until(
        &format!("the default service account of {name}"),
        Duration::from_secs(30),
        || async {
            Ok(accounts
                .get_opt("default")
                .await
                .map_err(kube("get service account"))?
                .map(|_| ()))
        },
        || async { String::new() },
    )
    .await
}

/// Deletes namespace `name` and waits until it is gone (its pods deleted, on CCI too), so the
/// next measurement starts from an engine with nothing left to do.
async fn delete_namespace(client: &kube::Client, name: &str, patience: Duration) -> Result<()> {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let _ = namespaces.delete(name, &DeleteParams::default()).await;
    wait::until(
        &format!("namespace {name} to be gone"),
        patience,
        || async {
            Ok(namespaces
                .get_opt(name)
                .await
                .map_err(kube("get namespace"))?
                .is_none()
                .then_some(()))
        },
        || async { String::new() },
    )
    .await
}

/// A Deployment of small pods (0.25 vCPU / 512Mi, the smallest flavour), `labels` on its pods.
fn deployment(
    name: &str,
    replicas: usize,
    labels: BTreeMap<String, String>,
    only_on: &[String],
) -> Result<Deployment> {
    let mut pod_labels = labels;
    pod_labels.insert("app".into(), name.into());
    let affinity = (!only_on.is_empty()).then(|| {
        serde_json::json!({"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [{"matchExpressions": [{
                "key": "kubernetes.io/hostname", "operator": "In", "values": only_on
            }]}]
        }}})
    });
    serde_json::from_value(serde_json::json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": pod_labels},
                "spec": {
                    "affinity": affinity,
                    "containers": [{"name": "c", "image": "nginx:latest",
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

/// Waits until `n` pods of `selector` in `ns` are Running, counting from a watch opened before
/// `start` runs; answers the seconds from `start` to the `n`-th Running pod.
async fn time_to_running<F>(
    client: &kube::Client,
    ns: &str,
    selector: &str,
    n: usize,
    patience: Duration,
    start: F,
) -> Result<f64>
where
    F: Future<Output = Result<()>>,
{
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let mut events = watcher(pods, watcher::Config::default().labels(selector))
        .default_backoff()
        .boxed();
    let mut running = RunningPods::default();
    let what = format!("{n} pods of {selector} in {ns} Running");
    let patience = wait::patience(patience);
    // The watch is open (listed) before the clock starts: no Running pod is missed.
    let opened = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(event) = events.try_next().await.map_err(|e| Error::Step {
            step: format!("watch {selector} in {ns}"),
            detail: e.to_string(),
        })? {
            let done = matches!(event, watcher::Event::InitDone);
            running.apply(event);
            if done {
                return Ok(());
            }
        }
        Err(Error::Step {
            step: format!("watch {selector} in {ns}"),
            detail: "the watch ended".into(),
        })
    })
    .await;
    opened.map_err(|_| Error::Step {
        step: format!("watch {selector} in {ns}"),
        detail: "not listed within 30 s".into(),
    })??;
    let started = Instant::now();
    start.await?;
    let deadline = tokio::time::Instant::now() + patience;
    let mut reported = Instant::now();
    while running.count() < n {
        match tokio::time::timeout_at(deadline, events.next()).await {
            Ok(Some(Ok(event))) => running.apply(event),
            // The watcher re-lists by itself after a failed watch (backoff).
            Ok(Some(Err(e))) => tracing::debug!(error = %e, "bench watch failed; retrying"),
            Ok(None) => {
                return Err(Error::Step {
                    step: what,
                    detail: "the watch ended".into(),
                });
            }
            Err(_) => {
                return Err(Error::Timeout {
                    what,
                    seconds: patience.as_secs(),
                    diagnosis: format!("{} Running", running.count()),
                });
            }
        }
        if reported.elapsed() > Duration::from_secs(10) {
            eprintln!(
                "burstcert bench: {selector}: {}/{n} Running after {:.0} s",
                running.count(),
                started.elapsed().as_secs_f64()
            );
            reported = Instant::now();
        }
    }
    Ok(started.elapsed().as_secs_f64())
}

/// Waits until the virtual node carries no `node.kubernetes.io/` taint (a node just registered
/// carries the not-ready one until the node lifecycle controller lifts it); shared with the soak.
pub(crate) async fn wait_virtual_node_schedulable(client: &kube::Client) -> Result<()> {
    let nodes: Api<k8s_openapi::api::core::v1::Node> = Api::all(client.clone());
    wait::until(
        "bursting-node to be schedulable (no not-ready taint)",
        Duration::from_secs(90),
        || async {
            let node = nodes
                .get_opt(crate::env::VIRTUAL_NODE)
                .await
                .map_err(kube("get bursting-node"))?;
            Ok(node
                .filter(|n| {
                    !n.spec
                        .iter()
                        .flat_map(|s| s.taints.iter().flatten())
                        .any(|t| t.key.starts_with("node.kubernetes.io/"))
                })
                .map(|_| ()))
        },
        || async { String::new() },
    )
    .await
}

/// The engine's resync period: `--cci-resync-seconds` on the running virtual kubelet's command
/// line, else the default its `--help` states.
async fn engine_resync(client: &kube::Client, engine: Option<&Path>) -> Option<Duration> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), crate::addon::render::NAMESPACE);
    let listed = pods
        .list(&ListParams::default().labels("app.kubernetes.io/component=virtual-kubelet"))
        .await
        .ok()?;
    let args: Vec<String> = listed
        .items
        .iter()
        .flat_map(|p| p.spec.iter().flat_map(|s| s.containers.iter()))
        .flat_map(|c| {
            c.command
                .iter()
                .flatten()
                .chain(c.args.iter().flatten())
                .cloned()
        })
        .collect();
    let seconds = match resync_from_args(&args) {
        Some(s) => s,
        None => {
            // A few milliseconds of blocking, once.
            let out = std::process::Command::new(engine?)
                .args(["virtual-kubelet", "--help"])
                .output()
                .ok()?;
            resync_default_from_help(&String::from_utf8_lossy(&out.stdout))?
        }
    };
    Some(Duration::from_secs(seconds))
}

/// Waits until the add-on has sent CCI no write to pods, ConfigMaps or Secrets for
/// [`SETTLE_QUIET`]; answers the last sequence number of the mock's log then.
async fn settle(admin: &MockAdmin) -> Result<u64> {
    let first = admin.requests(Some(1)).await?.last().map_or(0, |r| r.seq);
    let seen = std::cell::Cell::new(first);
    let quiet_since = std::cell::Cell::new(Instant::now());
    wait::until(
        "the add-on's writes to CCI to stop",
        Duration::from_secs(300),
        || async {
            let records = admin.requests(None).await?;
            let after = seen.get();
            let mut new = records.iter().filter(|r| r.seq > after).peekable();
            // A gap means requests went unread: they may have been writes.
            let overflowed = new.peek().is_some_and(|r| r.seq > after + 1);
            if overflowed || new.any(|r| is_workload_write(&r.kind())) {
                quiet_since.set(Instant::now());
            }
            seen.set(records.last().map_or(after, |r| r.seq.max(after)));
            Ok((quiet_since.get().elapsed() >= SETTLE_QUIET).then_some(seen.get()))
        },
        || async { String::new() },
    )
    .await
}

/// Counts what reaches the mock CCI over `window`, after [`settle`]. Reads the log every
/// 30 s, so a window longer than the log's capacity loses nothing at idle rates.
async fn idle_window(admin: &MockAdmin, window: Duration, pods: usize) -> Result<IdleRequests> {
    let after_seq = settle(admin).await?;
    let opened = Timestamp::now();
    let started = tokio::time::Instant::now();
    let end = started + window;
    eprintln!(
        "burstcert bench: counting CCI requests for {} s ...",
        window.as_secs()
    );
    let mut records: Vec<LoggedRequest> = Vec::new();
    let mut seen = after_seq;
    loop {
        // NB: the window is the measurement (requests per minute need minutes of them), not a
        // wait for a condition.
        let next = (tokio::time::Instant::now() + Duration::from_secs(30)).min(end);
        tokio::time::sleep_until(next).await;
        let read = admin.requests(None).await?;
        records.extend(read.into_iter().filter(|r| r.seq > seen));
        seen = records.last().map_or(seen, |r| r.seq);
        if next >= end {
            break;
        }
        eprintln!(
            "burstcert bench: idle {:.0}/{} s, {} CCI requests so far",
            started.elapsed().as_secs_f64(),
            window.as_secs(),
            records.len()
        );
    }
    let mut idle = IdleRequests::count(&records, after_seq, opened, window);
    idle.pods = pods;
    Ok(idle)
}

/// The memory run: `n` burst pods, each mounting its own ConfigMap of `kib` KiB, all Running;
/// answers the pods' namespace.
async fn memory_run(client: &kube::Client, suffix: &str, n: usize, kib: usize) -> Result<String> {
    let ns = format!("bench-mem-{suffix}");
    namespace(client, &ns).await?;
    let maps: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let payload = "x".repeat(kib * 1024);
    let started = Instant::now();
    let progress = |what: &str, done: usize| {
        if done.is_multiple_of(500) {
            eprintln!(
                "burstcert bench: {done} {what} created ({:.0} s)",
                started.elapsed().as_secs_f64()
            );
        }
    };
    let created = std::sync::atomic::AtomicUsize::new(0);
    futures::stream::iter(0..n)
        .map(|i| {
            let map = ConfigMap {
                metadata: ObjectMeta {
                    name: Some(format!("cm-{i}")),
                    ..ObjectMeta::default()
                },
                data: Some(BTreeMap::from([("blob".to_owned(), payload.clone())])),
                ..ConfigMap::default()
            };
            let maps = &maps;
            let created = &created;
            async move {
                maps.create(&PostParams::default(), &map)
                    .await
                    .map_err(kube("create a benchmark ConfigMap"))?;
                progress(
                    "ConfigMaps",
                    created.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1,
                );
                Ok::<_, Error>(())
            }
        })
        .buffer_unordered(CREATE_CONCURRENCY)
        .try_collect::<()>()
        .await?;
    let create_pods = async {
        let created = std::sync::atomic::AtomicUsize::new(0);
        futures::stream::iter(0..n)
            .map(|i| {
                let pods = &pods;
                let created = &created;
                async move {
                    let pod: Pod = serde_json::from_value(serde_json::json!({
                        "apiVersion": "v1", "kind": "Pod",
                        "metadata": {"name": format!("p-{i}"), "labels": {POLICY_LABEL: "enforce", "app": "mem"}},
                        "spec": {
                            "containers": [{"name": "c", "image": "nginx:latest",
                                "resources": {"requests": {"cpu": "250m", "memory": "512Mi"},
                                              "limits": {"cpu": "250m", "memory": "512Mi"}},
                                "volumeMounts": [{"name": "cm", "mountPath": "/etc/blob"}]}],
                            "volumes": [{"name": "cm", "configMap": {"name": format!("cm-{i}")}}]
                        }
                    }))
                    .map_err(|e| Error::Step { step: "build a benchmark pod".into(), detail: e.to_string() })?;
                    pods.create(&PostParams::default(), &pod)
                        .await
                        .map_err(kube("create a benchmark pod"))?;
                    progress(
                        "pods",
                        created.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1,
                    );
                    Ok::<_, Error>(())
                }
            })
            .buffer_unordered(CREATE_CONCURRENCY)
            .try_collect::<()>()
            .await
    };
    let seconds = time_to_running(
        client,
        &ns,
        "app=mem",
        n,
        Duration::from_secs(120 + n as u64),
        create_pods,
    )
    .await?;
    eprintln!(
        "burstcert bench: {n} memory-run pods Running {seconds:.0} s after their first create"
    );
    Ok(ns)
}

/// Runs the measurements the options ask for on `env` (brought up with
/// [`ClientRates::UNTHROTTLED`] by `burstcert bench`; the report says so when `client_rates`
/// is given).
pub async fn run(
    env: &Env,
    options: &BenchOptions,
    client_rates: Option<ClientRates>,
) -> Result<BenchReport> {
    let client = env.client().await?;
    let mut report = BenchReport {
        client_rates,
        replicas: options.replicas,
        memory_pods: options.memory_pods,
        configmap_kib: options.configmap_kib,
        engine_binary: env.engine_binary().map(Path::to_path_buf),
        ..BenchReport::default()
    };
    if let Some(rates) = client_rates {
        eprintln!("burstcert bench: control plane client rates: {rates}");
    }
    // A node just registered carries the not-ready taint until the node lifecycle controller
    // lifts it; measuring before that would time the controller, not the engine.
    wait_virtual_node_schedulable(&client).await?;
    report.rss_idle_mib = engine_rss(env).map(|r| r.0);
    let suffix = &crate::cluster::local::random_name()[10..];
    if options.replicas > 0 {
        // Room for every replica on kwok nodes labelled for the benchmark (250 pods each).
        let per_node = 250;
        let count = options.replicas.div_ceil(per_node) + 1;
        let shapes: Vec<NodeShape> = (0..count)
            .map(|i| {
                let mut shape = NodeShape::standard(100 + i);
                shape.name = format!("bench-{suffix}-{i}");
                shape.cpu = "128".into();
                shape.memory = "512Gi".into();
                shape.max_pods = per_node as u32;
                shape
            })
            .collect();
        create_nodes(&client, &shapes).await?;
        let names: Vec<String> = shapes.iter().map(|s| s.name.clone()).collect();
        let patience = Duration::from_secs(60 + options.replicas as u64);
        for round in 0..options.rounds.max(1) {
            // NB: the side that goes first alternates, so neither always meets a cluster still
            // busy with the previous round's deletions.
            let burst_first = round % 2 == 0;
            let ns = format!("bench-{suffix}-{round}");
            namespace(&client, &ns).await?;
            let mut times = [0.0; 2];
            for burst in [burst_first, !burst_first] {
                let (app, labels, nodes, place) = if burst {
                    let labels = BTreeMap::from([(POLICY_LABEL.to_owned(), "enforce".to_owned())]);
                    ("burst", labels, &[][..], "bursting-node")
                } else {
                    ("kwok", BTreeMap::new(), &names[..], "kwok nodes")
                };
                eprintln!(
                    "burstcert bench: round {}/{}: {} replicas on {place} ...",
                    round + 1,
                    options.rounds.max(1),
                    options.replicas
                );
                let d = deployment(app, options.replicas, labels, nodes)?;
                let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
                let create = async move {
                    deployments
                        .create(&PostParams::default(), &d)
                        .await
                        .map_err(kube("create the benchmark deployment"))?;
                    Ok(())
                };
                times[usize::from(!burst)] = time_to_running(
                    &client,
                    &ns,
                    &format!("app={app}"),
                    options.replicas,
                    patience,
                    create,
                )
                .await?;
            }
            report.startup.push(StartupRound {
                burst_seconds: times[0],
                kwok_seconds: times[1],
            });
            delete_namespace(&client, &ns, patience).await?;
        }
        eprint!("{report}");
    }
    if options.memory_pods > 0 {
        let n = options.memory_pods;
        let ns = memory_run(&client, suffix, n, options.configmap_kib).await?;
        if let Some((rss, peak)) = engine_rss(env) {
            report.rss_loaded_mib = Some(rss);
            report.rss_peak_mib = Some(peak);
        }
        eprint!("{report}");
        if !options.idle.is_zero()
            && let Some(admin) = env.mock_admin()
        {
            let mut idle = idle_window(admin, options.idle, n).await?;
            idle.resync = engine_resync(&client, env.engine_binary()).await;
            report.idle_requests = Some(idle);
        }
        let _ = Api::<Namespace>::all(client.clone())
            .delete(&ns, &DeleteParams::default())
            .await;
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn at(ms: i64) -> Timestamp {
        Timestamp::from_millisecond(1_800_000_000_000 + ms).unwrap()
    }

    fn request(seq: u64, ms: i64, method: &str, path: &str) -> LoggedRequest {
        LoggedRequest {
            seq,
            time: Time(at(ms)),
            method: method.into(),
            path: path.into(),
            name: None,
            tenant: None,
            credential: None,
            status: 200,
            duration_ms: 0,
        }
    }

    const PODS: &str = "/apis/cci/v2/namespaces/bursting-a/pods";
    const NS: &str = "/apis/cci/v2/namespaces/bursting-a";

    #[test]
    fn idle_requests_are_counted_by_kind_once_each_within_the_window() {
        let records = vec![
            request(10, -500, "POST", PODS), // before the window: not counted
            request(11, 1_000, "GET", NS),
            request(12, 6_000, "GET", NS),
            request(13, 90_000, "GET", PODS),
            request(
                14,
                90_010,
                "GET",
                &format!("{PODS}?watch=true&resourceVersion=9"),
            ),
            request(12, 6_000, "GET", NS),   // read twice
            request(15, 121_000, "GET", NS), // after the window closed
        ];
        let idle = IdleRequests::count(&records, 10, at(0), Duration::from_secs(120));
        assert_eq!(
            idle.by_kind,
            BTreeMap::from([
                ("GET get namespaces".to_owned(), 2),
                ("GET list pods".to_owned(), 1),
                ("GET watch pods".to_owned(), 1),
            ])
        );
        assert_eq!(idle.full_lists_at, vec![90.0]);
        assert!(!idle.incomplete);
        assert_eq!(idle.total(), 4);
        assert_eq!(idle.per_minute(2), 1.0);
    }

    #[test]
    fn a_gap_in_the_log_marks_the_counts_incomplete() {
        let records = vec![request(11, 1_000, "GET", NS), request(13, 2_000, "GET", NS)];
        assert!(IdleRequests::count(&records, 10, at(0), Duration::from_secs(60)).incomplete);
        let late_start = vec![request(12, 1_000, "GET", NS)];
        assert!(IdleRequests::count(&late_start, 10, at(0), Duration::from_secs(60)).incomplete);
    }

    #[test]
    fn the_idle_report_gives_rates_per_minute_and_when_the_full_lists_came() {
        let idle = IdleRequests {
            window: Duration::from_secs(330),
            pods: 4000,
            by_kind: BTreeMap::from([
                ("GET get namespaces".to_owned(), 66),
                ("GET list pods".to_owned(), 1),
            ]),
            full_lists_at: vec![212.4],
            resync: Some(Duration::from_secs(300)),
            incomplete: false,
        };
        let text = idle.to_string();
        assert!(text.contains("330 s with 4000 pods Running"), "{text}");
        assert!(text.contains("67 = 12.2/min"), "{text}");
        assert!(
            text.contains("  GET get namespaces: 66 (12.00/min)"),
            "{text}"
        );
        assert!(text.contains("1 in 330 s (0.18/min; at +212 s)"), "{text}");
        assert!(text.contains("resync period 300 s"), "{text}");
        assert!(!text.contains("INCOMPLETE"), "{text}");
    }

    #[test]
    fn the_start_up_line_gives_both_medians_pods_per_second_the_median_ratio_and_each_round() {
        let round = |burst_seconds, kwok_seconds| StartupRound {
            burst_seconds,
            kwok_seconds,
        };
        let report = BenchReport {
            replicas: 1000,
            startup: vec![round(20.0, 16.0), round(30.0, 10.0), round(12.0, 12.5)],
            client_rates: Some(ClientRates::UNTHROTTLED),
            ..BenchReport::default()
        };
        let text = report.to_string();
        assert!(
            text.contains(
                "median of 3 round(s): bursting-node 20.0 s (50.0 pods/s), kwok nodes 12.5 s (80.0 pods/s), ratio 1.25"
            ),
            "{text}"
        );
        assert!(
            text.contains("20.0 / 16.0 (1.25), 30.0 / 10.0 (3.00), 12.0 / 12.5 (0.96)"),
            "{text}"
        );
        assert!(text.contains("--kube-api-qps=5000"), "{text}");
        assert_eq!(pods_per_second(10, 0.0), 0.0);
    }

    #[rstest::rstest]
    #[case::none(&[], 0.0)]
    #[case::one(&[3.0], 3.0)]
    #[case::odd_unsorted(&[9.0, 1.0, 4.0], 4.0)]
    #[case::even_takes_the_middle_two(&[4.0, 1.0, 3.0, 10.0], 3.5)]
    fn the_median_is_the_middle_value(#[case] values: &[f64], #[case] expected: f64) {
        assert_eq!(median(values.iter().copied()), expected);
    }

    #[test]
    fn a_round_without_a_kwok_time_has_no_ratio_rather_than_an_infinite_one() {
        let round = StartupRound {
            burst_seconds: 5.0,
            kwok_seconds: 0.0,
        };
        assert_eq!(round.ratio(), 0.0);
    }

    #[rstest::rstest]
    #[case::equals(&["virtual-kubelet", "--cci-resync-seconds=60"], Some(60))]
    #[case::separate(&["--cci-resync-seconds", "120", "--x"], Some(120))]
    #[case::absent(&["virtual-kubelet", "--cci-request-log-seconds=5"], None)]
    #[case::other_flag_with_the_prefix(&["--cci-resync-secondsx=5"], None)]
    fn the_resync_period_is_read_from_the_command_line(
        #[case] args: &[&str],
        #[case] expected: Option<u64>,
    ) {
        let args: Vec<String> = args.iter().map(|s| (*s).to_owned()).collect();
        assert_eq!(resync_from_args(&args), expected);
    }

    #[test]
    fn the_resync_default_is_read_from_the_engine_help() {
        let long = "      --lease-interval-secs <X>\n          How often\n          \n          [default: 10]\n\n      --cci-resync-seconds <CCI_RESYNC_SECONDS>\n          How often the CCI pods are listed in full\n\n          [default: 300]\n\n      --cci-request-log-seconds <SECONDS>\n          [default: 60]\n";
        assert_eq!(resync_default_from_help(long), Some(300));
        let short = "      --cci-resync-seconds <S>  How often [default: 45]\n      --next <N>  [default: 60]\n";
        assert_eq!(resync_default_from_help(short), Some(45));
        let none = "      --cci-resync-seconds <S>  How often\n      --next <N>  [default: 60]\n";
        assert_eq!(resync_default_from_help(none), None);
        assert_eq!(resync_default_from_help("--other [default: 1]"), None);
    }

    #[test]
    fn only_writes_to_pods_configmaps_and_secrets_keep_the_engine_busy() {
        assert!(is_workload_write("POST create pods"));
        assert!(is_workload_write("PUT replace configmaps"));
        assert!(is_workload_write("DELETE delete secrets"));
        assert!(!is_workload_write("PUT replace proxyregistrations"));
        assert!(!is_workload_write("GET list pods"));
        assert!(!is_workload_write("other pods"));
    }

    fn pod(name: &str, phase: &str) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": name},
            "status": {"phase": phase}
        }))
        .unwrap()
    }

    #[test]
    fn running_pods_are_counted_through_changes_deletes_and_relists() {
        let mut running = RunningPods::default();
        running.apply(watcher::Event::Init);
        running.apply(watcher::Event::InitApply(pod("a", "Running")));
        running.apply(watcher::Event::InitApply(pod("b", "Pending")));
        assert_eq!(running.count(), 0, "counted at InitDone");
        running.apply(watcher::Event::InitDone);
        assert_eq!(running.count(), 1);
        running.apply(watcher::Event::Apply(pod("b", "Running")));
        running.apply(watcher::Event::Apply(pod("b", "Running")));
        assert_eq!(running.count(), 2, "the same pod counts once");
        running.apply(watcher::Event::Apply(pod("a", "Failed")));
        assert_eq!(running.count(), 1);
        running.apply(watcher::Event::Delete(pod("b", "Running")));
        assert_eq!(running.count(), 0);
        let mut terminating = pod("c", "Running");
        terminating.metadata.deletion_timestamp = Some(Time(at(0)));
        running.apply(watcher::Event::Apply(terminating));
        assert_eq!(running.count(), 0, "a terminating pod is on its way out");
        // A re-list replaces what was counted.
        running.apply(watcher::Event::Apply(pod("d", "Running")));
        running.apply(watcher::Event::Init);
        running.apply(watcher::Event::InitApply(pod("e", "Running")));
        running.apply(watcher::Event::InitDone);
        assert_eq!(running.count(), 1);
    }
}
