//! Pods in the store: creation with the service's checks, the simulated lifecycle, deletion.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use cci_api::{List, Pod};
use k8s_openapi::api::core::v1::{
    ContainerState, ContainerStateRunning, ContainerStateTerminated, ContainerStateWaiting,
    ContainerStatus, HostIP, PodCondition, PodIP, PodSpec, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::Deserialize;
use tokio::time::Instant;

use super::ledger::IntervalId;
use super::objects::{self, Objects};
use super::{
    AddressRange, Epoch, EventType, IpPool, NamespaceEntry, Period, PodRecord, Store, owned,
    owned_mut,
};
use crate::behaviour::{self, ANNOTATION_BEHAVIOUR, ANNOTATION_ON_SIGTERM, Behaviour, OnSigterm};
use crate::config::SubnetCidr;
use crate::error::{Error, Result};
use crate::faults::{Resource, Scope, glob_matches};
use crate::flavour::Flavour;
use crate::selector::LabelSelector;
use crate::validate::{self, ANNOTATION_SIZE, PodContext};
use crate::{BILLING_FINALIZER, DEFAULT_GRACE_SECONDS};

/// Phase of a pod that is accepted and waiting to start.
pub const PHASE_PENDING: &str = "Pending";
/// Phase of a pod whose containers run.
pub const PHASE_RUNNING: &str = "Running";
/// Phase of a pod whose containers all exited 0 for good.
pub const PHASE_SUCCEEDED: &str = "Succeeded";
/// Phase of a pod whose containers all exited for good, one at least with a non-zero code.
pub const PHASE_FAILED: &str = "Failed";

/// How many fake hosts pods are spread over (`192.168.16.1` to `192.168.16.16`).
const HOST_COUNT: u64 = 16;
/// The kubelet's longest restart back-off.
const MAX_BACKOFF: Duration = Duration::from_secs(300);
/// The longest grace period honoured (longer ones are cut to this).
const MAX_GRACE_SECONDS: u64 = 365 * 24 * 3600;

/// The options of a pod DELETE (query `?gracePeriodSeconds=N` or a `DeleteOptions` body).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeleteOptions {
    /// Seconds to wait before the pod is removed; `0` removes it at once.
    #[serde(default)]
    pub grace_period_seconds: Option<u64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum RestartPolicy {
    Always,
    OnFailure,
    Never,
}

#[derive(Clone, Copy, Debug)]
struct Term {
    code: i32,
    started: Instant,
    finished: Instant,
}

#[derive(Clone, Copy, Debug)]
enum CState {
    Waiting,
    Running { since: Instant },
    Terminated(Term),
    BackOff { until: Instant },
}

#[derive(Clone, Debug)]
struct ContainerSim {
    name: String,
    image: String,
    behaviour: Behaviour,
    on_sigterm: OnSigterm,
    restarts: i32,
    state: CState,
    last: Option<Term>,
}

impl ContainerSim {
    fn next_due(&self) -> Option<Instant> {
        match (self.state, self.behaviour) {
            (CState::Running { since }, Behaviour::Exit { after, .. }) => Some(later(since, after)),
            (CState::BackOff { until }, _) => Some(until),
            _ => None,
        }
    }
}

#[derive(Clone, Debug)]
enum Stage {
    /// Accepted in a namespace with no Ready Network: no address to give it yet.
    AwaitingNetwork {
        since: Instant,
    },
    Pending {
        start_at: Instant,
    },
    /// Accepted, but a no-capacity fault keeps it unscheduled since `since`; tried again at
    /// `retry_at`.
    AwaitingCapacity {
        since: Instant,
        retry_at: Instant,
    },
    PullFailing {
        since: Instant,
        attempts: u32,
        retry_at: Instant,
        failing: Vec<usize>,
    },
    Started {
        ip: Ipv4Addr,
        at: Instant,
    },
    Finished {
        ip: Ipv4Addr,
        at: Instant,
        succeeded: bool,
    },
}

/// What one step of the lifecycle did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    Unchanged,
    Changed,
    Started,
    Finished,
}

/// A pod and its simulation.
#[derive(Clone, Debug)]
pub(crate) struct PodEntry {
    pub(super) pod: Pod,
    /// Creation order, to break ties between changes due at the same instant.
    pub(super) seq: u64,
    size: Flavour,
    stage: Stage,
    containers: Vec<ContainerSim>,
    policy: RestartPolicy,
    pub(super) deleting_at: Option<Instant>,
    ready_changed: Instant,
    labels: Arc<BTreeMap<String, String>>,
    active: IntervalId,
    running: Option<IntervalId>,
    /// The due instant pushed on the store's timer queue, if any.
    scheduled: Option<Instant>,
}

/// The longest simulated delay: longer configured or requested delays are cut to it, so adding
/// one to an instant never overflows.
const MAX_DELAY: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

/// `at` plus `delay` (at most [`MAX_DELAY`]).
pub(super) fn later(at: Instant, delay: Duration) -> Instant {
    at.checked_add(delay.min(MAX_DELAY)).unwrap_or(at)
}

fn backoff(base: Duration, restarts: u32) -> Duration {
    let base = base.max(Duration::from_millis(1));
    base.saturating_mul(1 << restarts.min(16)).min(MAX_BACKOFF)
}

impl PodEntry {
    /// When its next change falls due.
    pub(super) fn due(&self) -> Option<Instant> {
        let stage = match &self.stage {
            // NB: a pod deleted before it started (kept by a slow delete) never starts.
            Stage::Pending { .. } | Stage::PullFailing { .. } | Stage::AwaitingCapacity { .. }
                if self.deleting_at.is_some() =>
            {
                None
            }
            Stage::AwaitingNetwork { .. } => None,
            Stage::Pending { start_at } => Some(*start_at),
            Stage::AwaitingCapacity { retry_at, .. } => Some(*retry_at),
            Stage::PullFailing { retry_at, .. } => Some(*retry_at),
            Stage::Started { .. } => self
                .containers
                .iter()
                .filter_map(ContainerSim::next_due)
                .min(),
            Stage::Finished { .. } => None,
        };
        match (stage, self.deleting_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn phase(&self) -> &'static str {
        match self.stage {
            Stage::AwaitingNetwork { .. }
            | Stage::Pending { .. }
            | Stage::AwaitingCapacity { .. }
            | Stage::PullFailing { .. } => PHASE_PENDING,
            Stage::Started { .. } => PHASE_RUNNING,
            Stage::Finished {
                succeeded: true, ..
            } => PHASE_SUCCEEDED,
            Stage::Finished { .. } => PHASE_FAILED,
        }
    }

    fn is_live(&self) -> bool {
        !matches!(self.stage, Stage::Finished { .. })
    }

    fn all_ready(&self) -> bool {
        matches!(self.stage, Stage::Started { .. })
            && self
                .containers
                .iter()
                .all(|c| matches!(c.state, CState::Running { .. }))
    }

    pub(super) fn record(&self, tenant: &str) -> PodRecord {
        let meta = &self.pod.metadata;
        PodRecord {
            tenant: tenant.to_owned(),
            namespace: meta.namespace.clone().unwrap_or_default(),
            name: meta.name.clone().unwrap_or_default(),
            uid: meta.uid.clone().unwrap_or_default(),
            phase: self.phase().into(),
            labels: meta.labels.clone().unwrap_or_default(),
            size: self.size.to_string(),
            terminating: self.deleting_at.is_some(),
        }
    }

    /// Starts the pod at `at`, or holds it pulling when an image-pull fault matches.
    fn try_start(
        &mut self,
        at: Instant,
        base: Duration,
        pull_fault: &mut dyn FnMut(&[&str]) -> Option<String>,
        ips: &mut IpPool,
        range: AddressRange,
    ) -> Outcome {
        let images: Vec<&str> = self.containers.iter().map(|c| c.image.as_str()).collect();
        if let Some(pattern) = pull_fault(&images) {
            let failing = images
                .iter()
                .enumerate()
                .filter(|(_, image)| glob_matches(&pattern, image))
                .map(|(i, _)| i)
                .collect();
            let (since, attempts) = match self.stage {
                Stage::PullFailing {
                    since, attempts, ..
                } => (since, attempts),
                _ => (at, 0),
            };
            self.stage = Stage::PullFailing {
                since,
                attempts: attempts + 1,
                retry_at: later(at, backoff(base, attempts)),
                failing,
            };
            return Outcome::Changed;
        }
        let Some(ip) = ips.allocate(range) else {
            // NB: with every address taken the pod stays Pending, as on a full subnet, and retries.
            tracing::warn!(?range, "no pod address left; the pod stays Pending");
            self.stage = Stage::Pending {
                start_at: later(at, backoff(base, 0)),
            };
            return Outcome::Unchanged;
        };
        self.stage = Stage::Started { ip, at };
        for container in &mut self.containers {
            container.state = CState::Running { since: at };
        }
        self.ready_changed = at;
        Outcome::Started
    }

    /// Holds the pod unscheduled for lack of capacity at `at`, tried again a restart back-off
    /// later. Only the first hold changes what the pod shows.
    fn hold_for_capacity(&mut self, at: Instant, base: Duration) -> Outcome {
        let retry_at = later(at, backoff(base, 0));
        if let Stage::AwaitingCapacity { since, .. } = self.stage {
            self.stage = Stage::AwaitingCapacity { since, retry_at };
            return Outcome::Unchanged;
        }
        self.stage = Stage::AwaitingCapacity {
            since: at,
            retry_at,
        };
        Outcome::Changed
    }

    /// Applies the container changes due at `at`.
    fn step_containers(&mut self, at: Instant, base: Duration) -> Outcome {
        let was_ready = self.all_ready();
        let mut changed = false;
        for container in &mut self.containers {
            if container.next_due().is_none_or(|due| due > at) {
                continue;
            }
            changed = true;
            match (container.state, container.behaviour) {
                (CState::Running { since }, Behaviour::Exit { after, code }) => {
                    let term = Term {
                        code,
                        started: since,
                        finished: later(since, after),
                    };
                    let restart = match self.policy {
                        RestartPolicy::Always => true,
                        RestartPolicy::OnFailure => code != 0,
                        RestartPolicy::Never => false,
                    };
                    if restart {
                        let restarts = u32::try_from(container.restarts).unwrap_or(0);
                        container.state = CState::BackOff {
                            until: later(term.finished, backoff(base, restarts)),
                        };
                        container.last = Some(term);
                    } else {
                        container.state = CState::Terminated(term);
                    }
                }
                (CState::BackOff { until }, _) => {
                    container.state = CState::Running { since: until };
                    container.restarts = container.restarts.saturating_add(1);
                }
                _ => {}
            }
        }
        if !changed {
            return Outcome::Unchanged;
        }
        if self.all_ready() != was_ready {
            self.ready_changed = at;
        }
        let finished = self
            .containers
            .iter()
            .all(|c| matches!(c.state, CState::Terminated(_)));
        if let (true, Stage::Started { ip, at: started }) = (finished, &self.stage) {
            let succeeded = self
                .containers
                .iter()
                .all(|c| matches!(c.state, CState::Terminated(Term { code: 0, .. })));
            self.stage = Stage::Finished {
                ip: *ip,
                at: *started,
                succeeded,
            };
            self.ready_changed = at;
            return Outcome::Finished;
        }
        Outcome::Changed
    }

    /// The status the pod shows now.
    fn render(&self, epoch: &Epoch) -> PodStatus {
        let uid = self.pod.metadata.uid.as_deref().unwrap_or_default();
        let condition =
            |type_: &str, ok: bool, reason: Option<&str>, message: Option<String>, at| {
                PodCondition {
                    type_: type_.into(),
                    status: if ok { "True" } else { "False" }.into(),
                    last_transition_time: Some(epoch.wall(at)),
                    reason: reason.map(Into::into),
                    message,
                    ..PodCondition::default()
                }
            };
        match &self.stage {
            Stage::AwaitingNetwork { since } => {
                let ns = self.pod.metadata.namespace.as_deref().unwrap_or_default();
                PodStatus {
                    phase: Some(PHASE_PENDING.into()),
                    conditions: Some(vec![condition(
                        "PodScheduled",
                        false,
                        Some(REASON_NETWORK_NOT_READY),
                        Some(format!(
                            "namespace {ns} has no Ready Network (yangtse/v2): the pod gets no address until a Network on a VPC subnet is Ready"
                        )),
                        *since,
                    )]),
                    ..PodStatus::default()
                }
            }
            Stage::Pending { .. } => PodStatus {
                phase: Some(PHASE_PENDING.into()),
                ..PodStatus::default()
            },
            Stage::AwaitingCapacity { since, .. } => PodStatus {
                phase: Some(PHASE_PENDING.into()),
                conditions: Some(vec![condition(
                    "PodScheduled",
                    false,
                    Some(REASON_UNSCHEDULABLE),
                    Some(format!(
                        "0/1 nodes are available: insufficient capacity for flavour {}",
                        self.size
                    )),
                    *since,
                )]),
                ..PodStatus::default()
            },
            Stage::PullFailing {
                since,
                attempts,
                failing,
                ..
            } => {
                let names = self
                    .containers
                    .iter()
                    .map(|c| c.name.as_str())
                    .collect::<Vec<_>>()
                    .join(" ");
                let unready = Some(format!("containers with unready status: [{names}]"));
                let statuses = self
                    .containers
                    .iter()
                    .enumerate()
                    .map(|(i, c)| {
                        let (reason, message) = if failing.contains(&i) {
                            if *attempts <= 1 {
                                ("ErrImagePull", format!("failed to pull image {:?}: pull access denied or the image does not exist (mock-cci image-pull fault)", c.image))
                            } else {
                                ("ImagePullBackOff", format!("Back-off pulling image {:?}", c.image))
                            }
                        } else {
                            ("ContainerCreating", String::new())
                        };
                        ContainerStatus {
                            name: c.name.clone(),
                            image: c.image.clone(),
                            image_id: String::new(),
                            ready: false,
                            started: Some(false),
                            restart_count: 0,
                            state: Some(ContainerState {
                                waiting: Some(ContainerStateWaiting {
                                    reason: Some(reason.into()),
                                    message: (!message.is_empty()).then_some(message),
                                }),
                                ..ContainerState::default()
                            }),
                            ..ContainerStatus::default()
                        }
                    })
                    .collect();
                PodStatus {
                    phase: Some(PHASE_PENDING.into()),
                    conditions: Some(vec![
                        condition("PodScheduled", true, None, None, *since),
                        condition("Initialized", true, None, None, *since),
                        condition(
                            "ContainersReady",
                            false,
                            Some("ContainersNotReady"),
                            unready.clone(),
                            *since,
                        ),
                        condition("Ready", false, Some("ContainersNotReady"), unready, *since),
                    ]),
                    container_statuses: Some(statuses),
                    ..PodStatus::default()
                }
            }
            Stage::Started { ip, at } | Stage::Finished { ip, at, .. } => {
                let finished = matches!(self.stage, Stage::Finished { .. });
                let ready = self.all_ready();
                let (reason, message) = if finished {
                    (Some("PodCompleted"), None)
                } else if ready {
                    (None, None)
                } else {
                    let names: Vec<&str> = self
                        .containers
                        .iter()
                        .filter(|c| !matches!(c.state, CState::Running { .. }))
                        .map(|c| c.name.as_str())
                        .collect();
                    (
                        Some("ContainersNotReady"),
                        Some(format!(
                            "containers with unready status: [{}]",
                            names.join(" ")
                        )),
                    )
                };
                let conditions = vec![
                    condition("PodScheduled", true, None, None, *at),
                    condition("Initialized", true, None, None, *at),
                    condition(
                        "ContainersReady",
                        ready,
                        reason,
                        message.clone(),
                        self.ready_changed,
                    ),
                    condition("Ready", ready, reason, message, self.ready_changed),
                ];
                let terminated = |term: &Term, id: &str| ContainerStateTerminated {
                    exit_code: term.code,
                    reason: Some(if term.code == 0 { "Completed" } else { "Error" }.into()),
                    started_at: Some(epoch.wall(term.started)),
                    finished_at: Some(epoch.wall(term.finished)),
                    container_id: Some(id.to_owned()),
                    ..ContainerStateTerminated::default()
                };
                let statuses = self
                    .containers
                    .iter()
                    .map(|c| {
                        let id = format!("cci://{uid}/{}", c.name);
                        let state = match &c.state {
                            CState::Running { since } => ContainerState {
                                running: Some(ContainerStateRunning {
                                    started_at: Some(epoch.wall(*since)),
                                }),
                                ..ContainerState::default()
                            },
                            CState::Terminated(term) => ContainerState {
                                terminated: Some(terminated(term, &id)),
                                ..ContainerState::default()
                            },
                            CState::Waiting => ContainerState {
                                waiting: Some(ContainerStateWaiting {
                                    reason: Some("ContainerCreating".into()),
                                    message: None,
                                }),
                                ..ContainerState::default()
                            },
                            CState::BackOff { .. } => ContainerState {
                                waiting: Some(ContainerStateWaiting {
                                    reason: Some("CrashLoopBackOff".into()),
                                    message: Some(format!(
                                        "back-off restarting failed container {} in pod {}",
                                        c.name,
                                        self.pod.metadata.name.as_deref().unwrap_or_default()
                                    )),
                                }),
                                ..ContainerState::default()
                            },
                        };
                        let running = matches!(c.state, CState::Running { .. });
                        ContainerStatus {
                            name: c.name.clone(),
                            image: c.image.clone(),
                            image_id: c.image.clone(),
                            container_id: Some(id.clone()),
                            ready: running,
                            started: Some(running),
                            restart_count: c.restarts,
                            state: Some(state),
                            last_state: c.last.as_ref().map(|term| ContainerState {
                                terminated: Some(terminated(term, &id)),
                                ..ContainerState::default()
                            }),
                            ..ContainerStatus::default()
                        }
                    })
                    .collect();
                let init_statuses = self.pod.spec.init_containers.as_ref().map(|inits| {
                    inits
                        .iter()
                        .map(|c| {
                            let id = format!("cci://{uid}/{}", c.name);
                            let image = c.image.clone().unwrap_or_default();
                            ContainerStatus {
                                name: c.name.clone(),
                                image_id: image.clone(),
                                image,
                                container_id: Some(id.clone()),
                                ready: true,
                                started: Some(false),
                                state: Some(ContainerState {
                                    terminated: Some(terminated(
                                        &Term {
                                            code: 0,
                                            started: *at,
                                            finished: *at,
                                        },
                                        &id,
                                    )),
                                    ..ContainerState::default()
                                }),
                                ..ContainerStatus::default()
                            }
                        })
                        .collect()
                });
                let pod_ip = ip.to_string();
                let host = 1 + self.seq % HOST_COUNT;
                let host_ip =
                    std::net::Ipv4Addr::new(192, 168, 16, u8::try_from(host).unwrap_or(1))
                        .to_string();
                PodStatus {
                    phase: Some(self.phase().into()),
                    pod_ip: Some(pod_ip.clone()),
                    pod_ips: Some(vec![PodIP { ip: pod_ip }]),
                    host_ip: Some(host_ip.clone()),
                    host_ips: Some(vec![HostIP { ip: host_ip }]),
                    start_time: Some(epoch.wall(*at)),
                    conditions: Some(conditions),
                    container_statuses: Some(statuses),
                    init_container_statuses: init_statuses,
                    ..PodStatus::default()
                }
            }
        }
    }
}

/// The behaviour of each app container (its own annotation, else the pod's, else its command)
/// and how it answers SIGTERM (the pod's annotation, else its command).
fn behaviours(pod: &Pod, compute_time: Duration) -> Vec<(Behaviour, OnSigterm)> {
    let annotations = pod.metadata.annotations.clone().unwrap_or_default();
    let from = |key: &str| {
        annotations
            .get(key)
            .and_then(|v| behaviour::parse_annotation(v).ok())
    };
    let pod_wide = from(ANNOTATION_BEHAVIOUR);
    let on_sigterm = annotations
        .get(ANNOTATION_ON_SIGTERM)
        .and_then(|v| behaviour::parse_on_sigterm(v).ok());
    pod.spec
        .containers
        .iter()
        .map(|c| {
            let command = c.command.as_deref().unwrap_or_default();
            let args = c.args.as_deref().unwrap_or_default();
            let behaviour = from(&behaviour::container_annotation(&c.name))
                .or(pod_wide)
                .unwrap_or_else(|| behaviour::from_command(command, args, compute_time));
            let on_sigterm =
                on_sigterm.unwrap_or_else(|| behaviour::on_sigterm_from_command(command, args));
            (behaviour, on_sigterm)
        })
        .collect()
}

fn restart_policy(spec: &PodSpec) -> RestartPolicy {
    match spec.restart_policy.as_deref() {
        Some("Never") => RestartPolicy::Never,
        Some("OnFailure") => RestartPolicy::OnFailure,
        _ => RestartPolicy::Always,
    }
}

fn schedule(
    timers: &mut std::collections::BinaryHeap<std::cmp::Reverse<(Instant, u64, String, String)>>,
    ns: &str,
    name: &str,
    entry: &mut PodEntry,
) {
    let due = entry.due();
    if due != entry.scheduled {
        entry.scheduled = due;
        if let Some(due) = due {
            timers.push(std::cmp::Reverse((
                due,
                entry.seq,
                ns.to_owned(),
                name.to_owned(),
            )));
        }
    }
}

/// The reason on the `PodScheduled` condition of a pod waiting for its namespace's Network.
pub const REASON_NETWORK_NOT_READY: &str = "NetworkNotReady";

/// The reason on the `PodScheduled` condition of a pod CCI has no capacity for.
pub const REASON_UNSCHEDULABLE: &str = "Unschedulable";

/// Whether a namespace holding `objects` has a Ready Network (its pods may get addresses).
fn has_ready_network(objects: &Objects) -> bool {
    objects.networks.values().any(cci_api::Network::is_ready)
}

/// Where the pods of a namespace holding `objects` get addresses: the first subnet of its
/// (first) Ready Network that `subnets` knows, else fake addresses.
fn address_range(objects: &Objects, subnets: &BTreeMap<String, SubnetCidr>) -> AddressRange {
    objects
        .networks
        .values()
        .filter(|n| n.is_ready())
        .flat_map(|n| n.subnet_ids())
        .find_map(|id| subnets.get(id))
        .map_or(AddressRange::Fake, |cidr| AddressRange::Subnet(*cidr))
}

fn pod_not_found(ns: &str, name: &str) -> Error {
    Error::NotFound {
        kind: "pod",
        namespace: ns.to_owned(),
        name: name.to_owned(),
    }
}

impl Store {
    /// Whether the popped timer `(due, seq)` is still the pod's; clears it if so.
    pub(super) fn take_timer(&mut self, ns: &str, name: &str, seq: u64, due: Instant) -> bool {
        match self
            .namespaces
            .get_mut(ns)
            .and_then(|n| n.pods.get_mut(name))
        {
            Some(entry) if entry.seq == seq && entry.scheduled == Some(due) => {
                entry.scheduled = None;
                true
            }
            _ => false,
        }
    }

    /// Applies the changes of one pod that are due at `at`.
    pub(super) fn advance_pod(&mut self, ns: &str, name: &str, at: Instant) {
        let deleting = self
            .namespaces
            .get(ns)
            .and_then(|n| n.pods.get(name))
            .and_then(|p| p.deleting_at)
            .is_some_and(|d| d <= at);
        if deleting {
            self.remove_pod(ns, name, at);
            return;
        }
        let Store {
            config,
            epoch,
            counters,
            namespaces,
            ips,
            timers,
            faults,
            history,
            ledger,
            peaks,
            namespace_removals: _,
            network_readiness: _,
        } = self;
        let Some(NamespaceEntry {
            tenant,
            pods,
            objects,
            ..
        }) = namespaces.get_mut(ns)
        else {
            return;
        };
        let range = address_range(objects, &config.subnets);
        let Some(entry) = pods.get_mut(name) else {
            return;
        };
        let base = config.restart_backoff;
        let outcome = match entry.stage {
            Stage::Pending { start_at: due } | Stage::AwaitingCapacity { retry_at: due, .. }
                if due <= at =>
            {
                if faults.no_capacity(tenant, ns, entry.size).is_some() {
                    entry.hold_for_capacity(at, base)
                } else {
                    let mut pull = |images: &[&str]| faults.image_pull(tenant, ns, images);
                    entry.try_start(at, base, &mut pull, ips, range)
                }
            }
            Stage::PullFailing { retry_at, .. } if retry_at <= at => {
                let mut pull = |images: &[&str]| faults.image_pull(tenant, ns, images);
                entry.try_start(at, base, &mut pull, ips, range)
            }
            Stage::Started { .. } => entry.step_containers(at, base),
            _ => Outcome::Unchanged,
        };
        if outcome != Outcome::Unchanged {
            let rv = counters.next_rv();
            match outcome {
                Outcome::Started => {
                    ledger.start(tenant, ns, entry.size, at);
                    entry.running =
                        Some(peaks.open(ns, Period::Running, entry.labels.clone(), rv, at));
                }
                Outcome::Finished => {
                    ledger.stop(tenant, ns, entry.size, at);
                    if let Some(id) = entry.running {
                        peaks.close(ns, id, rv, at);
                    }
                    peaks.close(ns, entry.active, rv, at);
                }
                Outcome::Changed | Outcome::Unchanged => {}
            }
            entry.pod.metadata.resource_version = Some(rv.to_string());
            entry.pod.status = Some(entry.render(epoch));
            history.push(super::PodEvent {
                rv,
                namespace: ns.into(),
                type_: EventType::Modified,
                pod: Arc::new(entry.pod.clone()),
            });
        }
        schedule(timers, ns, name, entry);
    }

    /// Turns Network `name` of `ns` (still the one with `uid`) Ready at `at`, and lets the pods
    /// that waited for it start (after the usual `running_after`).
    pub(super) fn network_ready(&mut self, ns: &str, name: &str, uid: &str, at: Instant) {
        let wall = self.epoch.wall(at);
        let Some(namespace) = self.namespaces.get_mut(ns) else {
            return;
        };
        let Some(network) = namespace.objects.networks.get_mut(name) else {
            return;
        };
        if network.metadata.uid.as_deref() != Some(uid) || network.is_ready() {
            return;
        }
        network.status = Some(objects::ready_status(network, wall));
        network.metadata.resource_version = Some(self.counters.next_resource_version());
        let waiting: Vec<String> = namespace
            .pods
            .iter()
            .filter(|(_, p)| matches!(p.stage, Stage::AwaitingNetwork { .. }))
            .map(|(name, _)| name.clone())
            .collect();
        for pod in waiting {
            let Some(entry) = namespace.pods.get_mut(&pod) else {
                continue;
            };
            entry.stage = Stage::Pending {
                start_at: later(at, self.config.running_after),
            };
            let rv = self.counters.next_rv();
            entry.pod.metadata.resource_version = Some(rv.to_string());
            entry.pod.status = Some(entry.render(&self.epoch));
            schedule(&mut self.timers, ns, &pod, entry);
            self.history.push(super::PodEvent {
                rv,
                namespace: ns.into(),
                type_: EventType::Modified,
                pod: Arc::new(entry.pod.clone()),
            });
        }
    }

    /// Removes a pod at `at` (with its DELETED event); returns it as it was last.
    pub(super) fn remove_pod(&mut self, ns: &str, name: &str, at: Instant) -> Pod {
        let Some(namespace) = self.namespaces.get_mut(ns) else {
            return Pod::default();
        };
        let Some(entry) = namespace.pods.remove(name) else {
            return Pod::default();
        };
        let tenant = namespace.tenant.clone();
        let rv = self.counters.next_rv();
        match entry.stage {
            Stage::Started { ip, .. } => {
                self.ledger.stop(&tenant, ns, entry.size, at);
                self.ips.release(ip);
            }
            Stage::Finished { ip, .. } => self.ips.release(ip),
            Stage::AwaitingNetwork { .. }
            | Stage::Pending { .. }
            | Stage::AwaitingCapacity { .. }
            | Stage::PullFailing { .. } => {}
        }
        if let Some(id) = entry.running {
            self.peaks.close(ns, id, rv, at);
        }
        self.peaks.close(ns, entry.active, rv, at);
        let mut pod = entry.pod;
        pod.metadata.resource_version = Some(rv.to_string());
        // Gone for good: billing is settled, so its finalizer is off.
        if let Some(finalizers) = pod.metadata.finalizers.as_mut() {
            finalizers.retain(|f| f != BILLING_FINALIZER);
        }
        self.record_event(ns, EventType::Deleted, &pod, rv);
        pod
    }

    /// How many live (not finished) pods a quota scope holds.
    fn live_pods(&self, scope: &Scope) -> usize {
        let count = |entry: &NamespaceEntry| entry.pods.values().filter(|p| p.is_live()).count();
        match scope {
            Scope::Tenant(tenant) => self
                .namespaces
                .values()
                .filter(|n| &n.tenant == tenant)
                .map(count)
                .sum(),
            Scope::Namespace(ns) => self.namespaces.get(ns).map_or(0, count),
        }
    }

    /// Creates a pod in namespace `ns` of `tenant`; it starts `Pending` (held unscheduled while
    /// a no-capacity fault covers its size). The pod is checked as
    /// [`crate::validate`] describes, then against the sold-out and quota faults; the size it
    /// is given is written as `resource.cci.io/size`.
    pub fn create_pod(
        &mut self,
        tenant: &str,
        ns: &str,
        mut pod: Pod,
        now: Instant,
    ) -> Result<Pod> {
        self.settle(now);
        let entry = owned(&self.namespaces, tenant, ns)?;
        let name = pod.metadata.name.clone().unwrap_or_default();
        entry.check_not_terminating("pod", &name)?;
        let context = PodContext {
            namespace: ns,
            references: entry,
            sfs_storage_classes: &self.config.sfs_storage_classes,
        };
        let size = validate::validate_pod(&pod, &context).map_err(|causes| Error::Invalid {
            kind: "Pod",
            name: name.clone(),
            causes,
        })?;
        if entry.pods.contains_key(&name) {
            return Err(Error::AlreadyExists {
                kind: "pod",
                namespace: ns.to_owned(),
                name,
            });
        }
        let network_ready = has_ready_network(&entry.objects);
        if let Some(fault) = self.faults.sold_out(tenant, ns, size) {
            return Err(Error::SoldOut { size, fault });
        }
        for (fault, max_pods, scope) in self.faults.quotas(tenant, ns) {
            let live = self.live_pods(&scope);
            if live >= max_pods as usize {
                self.faults.record_fired(fault);
                return Err(Error::QuotaExceeded {
                    scope,
                    max_pods,
                    live,
                    fault,
                });
            }
        }
        let behaviours = behaviours(&pod, self.config.compute_time);
        let rv = self.counters.next_rv();
        let mut annotations = pod.metadata.annotations.take().unwrap_or_default();
        // CCI writes the size itself, in its own form, over whatever the client sent.
        annotations.insert(ANNOTATION_SIZE.to_owned(), size.cci_form());
        let mut finalizers = pod.metadata.finalizers.take().unwrap_or_default();
        finalizers.push(BILLING_FINALIZER.to_owned());
        // NB: defaulted as the Kubernetes API server does, so a delete that names no grace
        // period finds the pod's own.
        pod.spec
            .termination_grace_period_seconds
            .get_or_insert(DEFAULT_GRACE_SECONDS);
        pod.metadata = ObjectMeta {
            finalizers: Some(finalizers),
            uid: Some(self.counters.next_uid()),
            namespace: Some(ns.to_owned()),
            creation_timestamp: Some(self.wall(now)),
            resource_version: Some(rv.to_string()),
            annotations: Some(annotations),
            ..pod.metadata
        };
        pod.status = Some(PodStatus {
            phase: Some(PHASE_PENDING.into()),
            ..PodStatus::default()
        });
        let labels = Arc::new(pod.metadata.labels.clone().unwrap_or_default());
        let containers = pod
            .spec
            .containers
            .iter()
            .zip(behaviours)
            .map(|(c, (behaviour, on_sigterm))| ContainerSim {
                name: c.name.clone(),
                image: c.image.clone().unwrap_or_default(),
                behaviour,
                on_sigterm,
                restarts: 0,
                state: CState::Waiting,
                last: None,
            })
            .collect();
        // NB: a pod without a Network waits for it first; the capacity is looked at when
        // it would start.
        let stage = if !network_ready {
            Stage::AwaitingNetwork { since: now }
        } else if self.faults.no_capacity(tenant, ns, size).is_some() {
            Stage::AwaitingCapacity {
                since: now,
                retry_at: later(now, backoff(self.config.restart_backoff, 0)),
            }
        } else {
            Stage::Pending {
                start_at: later(now, self.config.running_after),
            }
        };
        let held = !matches!(stage, Stage::Pending { .. });
        let mut entry = PodEntry {
            seq: self.counters.next_seq(),
            size,
            stage,
            containers,
            policy: restart_policy(&pod.spec),
            deleting_at: None,
            ready_changed: now,
            active: self.peaks.open(ns, Period::Active, labels.clone(), rv, now),
            labels,
            running: None,
            scheduled: None,
            pod,
        };
        if held {
            entry.pod.status = Some(entry.render(&self.epoch));
        }
        let pod = entry.pod.clone();
        schedule(&mut self.timers, ns, &name, &mut entry);
        self.record_event(ns, EventType::Added, &pod, rv);
        if let Some(namespace) = self.namespaces.get_mut(ns) {
            namespace.pods.insert(name, entry);
        }
        Ok(pod)
    }

    /// The pods in namespace `ns` of `tenant` that `selector` selects, by name.
    pub fn list_pods(
        &mut self,
        tenant: &str,
        ns: &str,
        selector: &LabelSelector,
        now: Instant,
    ) -> Result<List<Pod>> {
        self.settle(now);
        let items = owned(&self.namespaces, tenant, ns)?
            .pods
            .values()
            .map(|entry| &entry.pod)
            .filter(|pod| selector.matches(pod.metadata.labels.as_ref()))
            .cloned()
            .collect();
        Ok(self.list("PodList", items))
    }

    /// One pod in namespace `ns` of `tenant`.
    pub fn get_pod(&mut self, tenant: &str, ns: &str, name: &str, now: Instant) -> Result<Pod> {
        self.settle(now);
        owned(&self.namespaces, tenant, ns)?
            .pods
            .get(name)
            .map(|entry| entry.pod.clone())
            .ok_or_else(|| pod_not_found(ns, name))
    }

    /// Deletes a pod: at once, or gracefully (see the module docs), then, under a slow-delete
    /// fault, `millis` later. Answers the pod as it is after the request: gone (with the
    /// `resourceVersion` of its deletion), or terminating.
    pub fn delete_pod(
        &mut self,
        tenant: &str,
        ns: &str,
        name: &str,
        options: DeleteOptions,
        now: Instant,
    ) -> Result<Pod> {
        self.settle(now);
        let namespace = owned_mut(&mut self.namespaces, tenant, ns)?;
        let entry = namespace
            .pods
            .get_mut(name)
            .ok_or_else(|| pod_not_found(ns, name))?;
        let grace = options
            .grace_period_seconds
            .or_else(|| {
                entry
                    .pod
                    .spec
                    .termination_grace_period_seconds
                    .map(|s| u64::try_from(s).unwrap_or(0))
            })
            .unwrap_or(DEFAULT_GRACE_SECONDS.unsigned_abs())
            .min(MAX_GRACE_SECONDS);
        let at_once = grace == 0 || !matches!(entry.stage, Stage::Started { .. });
        let linger = match (self.faults.slow_delete(tenant, ns, Resource::Pods), at_once) {
            (Some(linger), _) => linger,
            (None, false) => Duration::ZERO,
            (None, true) => return Ok(self.remove_pod(ns, name, now)),
        };
        let deadline = later(now, Duration::from_secs(grace));
        // SIGTERM goes to every running container; the pod goes when the last one has stopped:
        // soon when they all exit on it, at the deadline (SIGKILL) when one ignores it.
        let all_exit = entry
            .containers
            .iter()
            .all(|c| c.on_sigterm == OnSigterm::Exit || !matches!(c.state, CState::Running { .. }));
        let stopped_at = if at_once {
            now
        } else if all_exit {
            later(now, self.config.stop_time).min(deadline)
        } else {
            deadline
        };
        // NB: under a slow delete the sandbox's teardown takes `linger` more.
        let gone_at = later(stopped_at, linger);
        if entry.deleting_at.is_some_and(|d| d <= gone_at) {
            return Ok(entry.pod.clone());
        }
        entry.deleting_at = Some(gone_at);
        entry.pod.metadata.deletion_timestamp = Some(self.epoch.wall(deadline));
        entry.pod.metadata.deletion_grace_period_seconds =
            Some(i64::try_from(grace).unwrap_or(i64::MAX));
        let rv = self.counters.next_rv();
        entry.pod.metadata.resource_version = Some(rv.to_string());
        let pod = entry.pod.clone();
        schedule(&mut self.timers, ns, name, entry);
        self.record_event(ns, EventType::Modified, &pod, rv);
        Ok(pod)
    }
}

/// The options of `GET …/pods/{name}/log`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LogOptions {
    /// The container; may be omitted when the pod has one.
    #[serde(default)]
    pub container: Option<String>,
    /// The previous (terminated) run of a restarted container instead of the current one.
    #[serde(default)]
    pub previous: Option<bool>,
    /// Only the last N lines.
    #[serde(default)]
    pub tail_lines: Option<usize>,
}

fn describe(behaviour: Behaviour) -> String {
    match behaviour {
        Behaviour::Run => "it runs until the pod is deleted".into(),
        Behaviour::Exit { after, code } => {
            format!("it exits with code {code} after {}s", after.as_secs_f64())
        }
    }
}

impl PodEntry {
    /// The container `name`, or the only one when `name` is `None`.
    fn select_container(&self, name: Option<&str>) -> Result<&ContainerSim> {
        let pod = self.pod.metadata.name.as_deref().unwrap_or_default();
        match (name, self.containers.as_slice()) {
            (Some(name), containers) => {
                containers.iter().find(|c| c.name == name).ok_or_else(|| {
                    Error::BadRequest(format!("container {name:?} is not valid for pod {pod:?}"))
                })
            }
            (None, [only]) => Ok(only),
            (None, containers) => {
                let names: Vec<&str> = containers.iter().map(|c| c.name.as_str()).collect();
                Err(Error::BadRequest(format!(
                    "a container name must be specified for pod {pod}, choose one of: [{}]",
                    names.join(" ")
                )))
            }
        }
    }

    /// Checks that container `name` (or the only one) runs, as exec needs.
    pub(super) fn check_running(&self, name: Option<&str>) -> Result<()> {
        let container = self.select_container(name)?;
        match (&self.stage, container.state) {
            (Stage::Started { .. }, CState::Running { .. }) => Ok(()),
            _ => Err(Error::BadRequest(format!(
                "container {:?} in pod {:?} is not running: commands run only in running containers",
                container.name,
                self.pod.metadata.name.as_deref().unwrap_or_default()
            ))),
        }
    }

    /// The lines the mock writes for a container's life (see [`Store::pod_log`]).
    fn log(&self, options: &LogOptions, epoch: &Epoch) -> Result<String> {
        let pod = self.pod.metadata.name.as_deref().unwrap_or_default();
        let bad = |message: String| Error::BadRequest(message);
        let container = self.select_container(options.container.as_deref())?;
        let name = &container.name;
        let line = |at: Instant, text: String| {
            format!("{} mock-cci: container {name:?} {text}\n", epoch.wall(at).0)
        };
        let started = |at| {
            line(
                at,
                format!(
                    "started from image {:?}; {}",
                    container.image,
                    describe(container.behaviour)
                ),
            )
        };
        let exited = |term: &Term| {
            started(term.started) + &line(term.finished, format!("exited with code {}", term.code))
        };
        let text = if options.previous == Some(true) {
            let term = container.last.as_ref().ok_or_else(|| {
                bad(format!(
                    "previous terminated container {name:?} in pod {pod:?} not found"
                ))
            })?;
            exited(term)
        } else {
            match (&self.stage, &container.state) {
                (Stage::Started { .. } | Stage::Finished { .. }, CState::Running { since }) => {
                    started(*since)
                }
                (_, CState::Terminated(term)) => exited(term),
                (_, CState::BackOff { .. }) => match &container.last {
                    Some(term) => exited(term),
                    None => String::new(),
                },
                _ => {
                    let reason = match self.stage {
                        Stage::PullFailing { .. } => "ErrImagePull",
                        _ => "ContainerCreating",
                    };
                    return Err(bad(format!(
                        "container {name:?} in pod {pod:?} is waiting to start: {reason}"
                    )));
                }
            }
        };
        Ok(match options.tail_lines {
            Some(n) => {
                let lines: Vec<&str> = text.lines().collect();
                let skip = lines.len().saturating_sub(n);
                lines[skip..].iter().map(|l| format!("{l}\n")).collect()
            }
            None => text,
        })
    }
}

impl Store {
    /// What `kubectl logs` shows for a container of pod `name`: the lines the mock writes for
    /// the container's current run (when it started, from which image, what it will do, how it
    /// exited), or its previous run.
    pub fn pod_log(
        &mut self,
        tenant: &str,
        ns: &str,
        name: &str,
        options: &LogOptions,
        now: Instant,
    ) -> Result<String> {
        self.settle(now);
        let entry = owned(&self.namespaces, tenant, ns)?
            .pods
            .get(name)
            .ok_or_else(|| pod_not_found(ns, name))?;
        entry.log(options, &self.epoch)
    }
}
