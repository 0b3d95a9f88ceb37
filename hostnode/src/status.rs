//! A host-node pod's runtime state and the pod status a kubelet would report for it (pure).

use std::collections::HashMap;
use std::net::Ipv4Addr;

use k8s_openapi::api::core::v1::{
    ContainerState, ContainerStateRunning, ContainerStateTerminated, ContainerStateWaiting,
    ContainerStatus, HostIP, PodCondition, PodIP, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

/// The pod's `restartPolicy`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RestartPolicy {
    /// Restart on every exit.
    Always,
    /// Restart on a non-zero exit.
    OnFailure,
    /// Never restart.
    Never,
}

impl RestartPolicy {
    /// From the pod spec's value (default `Always`).
    pub fn parse(value: Option<&str>) -> Self {
        match value {
            Some("OnFailure") => Self::OnFailure,
            Some("Never") => Self::Never,
            _ => Self::Always,
        }
    }

    /// Whether a container that exited with `code` is started again.
    pub fn restarts(self, code: i32) -> bool {
        match self {
            Self::Always => true,
            Self::OnFailure => code != 0,
            Self::Never => false,
        }
    }

    /// The policy of init containers: they run to success, so `Always` acts as `OnFailure`.
    pub fn for_init(self) -> Self {
        match self {
            Self::Never => Self::Never,
            _ => Self::OnFailure,
        }
    }
}

/// How one run of a container ended.
#[derive(Clone, Debug, PartialEq)]
pub struct Term {
    /// Exit code (128 + signal when killed).
    pub exit_code: i32,
    /// `Completed`, `Error` or `StartError`.
    pub reason: String,
    /// Why, when there is more to say.
    pub message: Option<String>,
    /// When the run started.
    pub started_at: Option<Timestamp>,
    /// When it ended.
    pub finished_at: Timestamp,
    /// The run's id.
    pub container_id: Option<String>,
}

impl Term {
    /// A run that exited with `code` (reason `Completed` for 0, `Error` otherwise).
    pub fn exited(
        code: i32,
        started_at: Option<Timestamp>,
        container_id: Option<String>,
        now: Timestamp,
    ) -> Self {
        Self {
            exit_code: code,
            reason: if code == 0 { "Completed" } else { "Error" }.into(),
            message: None,
            started_at,
            finished_at: now,
            container_id,
        }
    }
}

/// A container's current state.
#[derive(Clone, Debug, PartialEq)]
pub enum Run {
    /// Not running: being created, pulling, backing off.
    Waiting {
        /// CamelCase reason, e.g. `ErrImagePull`.
        reason: String,
        /// Details.
        message: Option<String>,
    },
    /// Its process runs.
    Running {
        /// Since when.
        started_at: Timestamp,
    },
    /// Its process ended.
    Terminated(Term),
}

/// One container as the host node tracks it.
#[derive(Clone, Debug, PartialEq)]
pub struct ContainerRecord {
    /// Container name.
    pub name: String,
    /// The image as the spec names it.
    pub image: String,
    /// `host://{binary}` once the image resolved.
    pub image_id: String,
    /// Id of the current (or last) run.
    pub container_id: Option<String>,
    /// Current state.
    pub run: Run,
    /// How the previous run ended.
    pub last: Option<Term>,
    /// Restarts so far.
    pub restarts: i32,
    /// Running and passing its readiness probe (if any).
    pub ready: bool,
    /// Terminated and not to be started again.
    pub done: bool,
}

impl ContainerRecord {
    /// A container waiting for `reason` (e.g. `ContainerCreating`).
    pub fn waiting(name: &str, image: &str, reason: &str) -> Self {
        Self {
            name: name.into(),
            image: image.into(),
            image_id: String::new(),
            container_id: None,
            run: Run::Waiting {
                reason: reason.into(),
                message: None,
            },
            last: None,
            restarts: 0,
            ready: false,
            done: false,
        }
    }

    /// Whether a process of this container was ever started.
    pub fn ever_started(&self) -> bool {
        self.restarts > 0 || self.last.is_some() || !matches!(self.run, Run::Waiting { .. })
    }

    /// Finished for good with exit code 0.
    pub fn succeeded(&self) -> bool {
        self.done && matches!(&self.run, Run::Terminated(t) if t.exit_code == 0)
    }

    /// Finished for good with a non-zero exit code.
    pub fn failed(&self) -> bool {
        self.done && matches!(&self.run, Run::Terminated(t) if t.exit_code != 0)
    }

    /// Sets a waiting state (keeps the rest).
    pub fn set_waiting(&mut self, reason: &str, message: Option<String>) {
        self.ready = false;
        self.run = Run::Waiting {
            reason: reason.into(),
            message,
        };
    }

    fn status(&self) -> ContainerStatus {
        ContainerStatus {
            name: self.name.clone(),
            image: self.image.clone(),
            image_id: self.image_id.clone(),
            container_id: self.container_id.clone(),
            ready: self.ready,
            restart_count: self.restarts,
            started: Some(matches!(self.run, Run::Running { .. })),
            state: Some(state(&self.run)),
            last_state: self.last.as_ref().map(terminated),
            ..ContainerStatus::default()
        }
    }
}

fn terminated(t: &Term) -> ContainerState {
    ContainerState {
        terminated: Some(ContainerStateTerminated {
            exit_code: t.exit_code,
            reason: Some(t.reason.clone()),
            message: t.message.clone(),
            started_at: t.started_at.map(Time),
            finished_at: Some(Time(t.finished_at)),
            container_id: t.container_id.clone(),
            signal: None,
        }),
        ..ContainerState::default()
    }
}

fn state(run: &Run) -> ContainerState {
    match run {
        Run::Waiting { reason, message } => ContainerState {
            waiting: Some(ContainerStateWaiting {
                reason: Some(reason.clone()),
                message: message.clone(),
            }),
            ..ContainerState::default()
        },
        Run::Running { started_at } => ContainerState {
            running: Some(ContainerStateRunning {
                started_at: Some(Time(*started_at)),
            }),
            ..ContainerState::default()
        },
        Run::Terminated(t) => terminated(t),
    }
}

/// A pod's runtime state.
#[derive(Clone, Debug)]
pub struct PodState {
    /// The pod's loopback address.
    pub ip: Ipv4Addr,
    /// When the host node took the pod.
    pub start_time: Timestamp,
    /// Folder, volumes and token are in place.
    pub sandbox_ready: bool,
    /// Init containers, in order.
    pub init: Vec<ContainerRecord>,
    /// App containers, in order.
    pub containers: Vec<ContainerRecord>,
    /// Each condition's last status and when it took it (so transition times stay put).
    transitions: HashMap<&'static str, (bool, Timestamp)>,
}

impl PodState {
    /// A pod just taken: every container waiting `ContainerCreating` (app containers
    /// `PodInitializing` behind init containers).
    pub fn new(
        ip: Ipv4Addr,
        start_time: Timestamp,
        init: &[(String, String)],
        containers: &[(String, String)],
    ) -> Self {
        let app_reason = if init.is_empty() {
            "ContainerCreating"
        } else {
            "PodInitializing"
        };
        Self {
            ip,
            start_time,
            sandbox_ready: false,
            init: init
                .iter()
                .map(|(n, i)| ContainerRecord::waiting(n, i, "PodInitializing"))
                .collect(),
            containers: containers
                .iter()
                .map(|(n, i)| ContainerRecord::waiting(n, i, app_reason))
                .collect(),
            transitions: HashMap::new(),
        }
    }

    /// The container record named `name` (`init` picks the init containers).
    pub fn container_mut(&mut self, init: bool, index: usize) -> Option<&mut ContainerRecord> {
        if init {
            self.init.get_mut(index)
        } else {
            self.containers.get_mut(index)
        }
    }

    /// Every init container ran to success.
    pub fn initialized(&self) -> bool {
        self.init.iter().all(ContainerRecord::succeeded)
    }

    /// Every app container is ready (and there is at least one).
    pub fn ready(&self) -> bool {
        !self.containers.is_empty() && self.containers.iter().all(|c| c.ready)
    }

    /// The pod phase, by the kubelet's rules: `Pending` until every init container succeeded
    /// and every app container started once; `Succeeded` / `Failed` once every container
    /// finished for good (failed if any exited non-zero); `Running` otherwise (including
    /// containers that wait to be restarted). An init container that failed for good fails the
    /// pod.
    pub fn phase(&self) -> &'static str {
        if self.init.iter().any(ContainerRecord::failed) {
            return "Failed";
        }
        if !self.initialized() {
            return "Pending";
        }
        if self.containers.iter().any(|c| !c.ever_started()) {
            return "Pending";
        }
        if self.containers.iter().all(|c| c.done) {
            return if self.containers.iter().any(ContainerRecord::failed) {
                "Failed"
            } else {
                "Succeeded"
            };
        }
        "Running"
    }

    /// Whether the pod reached a terminal phase.
    pub fn terminal(&self) -> bool {
        matches!(self.phase(), "Succeeded" | "Failed")
    }

    fn condition(
        &mut self,
        type_: &'static str,
        status: bool,
        reason: Option<&str>,
        message: Option<String>,
        now: Timestamp,
    ) -> PodCondition {
        let since = match self.transitions.get(type_) {
            Some((s, t)) if *s == status => *t,
            _ => {
                self.transitions.insert(type_, (status, now));
                now
            }
        };
        PodCondition {
            type_: type_.into(),
            status: if status { "True" } else { "False" }.into(),
            reason: reason.map(Into::into),
            message,
            last_transition_time: Some(Time(since)),
            ..PodCondition::default()
        }
    }

    /// The status to report. Condition transition times are remembered here, so the same state
    /// gives the same status.
    pub fn pod_status(&mut self, now: Timestamp) -> PodStatus {
        let phase = self.phase();
        let terminal = matches!(phase, "Succeeded" | "Failed");
        let names = |cs: &[ContainerRecord], f: fn(&ContainerRecord) -> bool| {
            let list: Vec<&str> = cs
                .iter()
                .filter(|c| f(c))
                .map(|c| c.name.as_str())
                .collect();
            format!("[{}]", list.join(" "))
        };
        let initialized = self.initialized();
        let ready = self.ready();
        let incomplete = names(&self.init, |c| !c.succeeded());
        let unready = names(&self.containers, |c| !c.ready);
        let sandbox = self.sandbox_ready;
        let conditions = vec![
            self.condition("PodReadyToStartContainers", sandbox, None, None, now),
            if initialized {
                self.condition("Initialized", true, None, None, now)
            } else {
                self.condition(
                    "Initialized",
                    false,
                    Some("ContainersNotInitialized"),
                    Some(format!("containers with incomplete status: {incomplete}")),
                    now,
                )
            },
            if ready {
                self.condition("ContainersReady", true, None, None, now)
            } else if terminal {
                self.condition("ContainersReady", false, Some("PodCompleted"), None, now)
            } else {
                self.condition(
                    "ContainersReady",
                    false,
                    Some("ContainersNotReady"),
                    Some(format!("containers with unready status: {unready}")),
                    now,
                )
            },
            if ready {
                self.condition("Ready", true, None, None, now)
            } else if terminal {
                self.condition("Ready", false, Some("PodCompleted"), None, now)
            } else {
                self.condition(
                    "Ready",
                    false,
                    Some("ContainersNotReady"),
                    Some(format!("containers with unready status: {unready}")),
                    now,
                )
            },
        ];
        let ip = self.ip.to_string();
        PodStatus {
            phase: Some(phase.into()),
            pod_ip: Some(ip.clone()),
            pod_ips: Some(vec![PodIP { ip }]),
            host_ip: Some("127.0.0.1".into()),
            host_ips: Some(vec![HostIP {
                ip: "127.0.0.1".into(),
            }]),
            start_time: Some(Time(self.start_time)),
            conditions: Some(conditions),
            container_statuses: Some(self.containers.iter().map(|c| c.status()).collect()),
            init_container_statuses: (!self.init.is_empty())
                .then(|| self.init.iter().map(|c| c.status()).collect()),
            ..PodStatus::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(init: usize, containers: usize) -> PodState {
        let named = |prefix: &str, n: usize| -> Vec<(String, String)> {
            (0..n)
                .map(|i| (format!("{prefix}{i}"), "r/u/sh:1".to_owned()))
                .collect()
        };
        PodState::new(
            Ipv4Addr::new(127, 100, 0, 1),
            Timestamp::UNIX_EPOCH,
            &named("init", init),
            &named("app", containers),
        )
    }

    fn exit(c: &mut ContainerRecord, code: i32, done: bool) {
        c.run = Run::Terminated(Term::exited(code, None, None, Timestamp::UNIX_EPOCH));
        c.done = done;
        c.ready = false;
    }

    fn running(c: &mut ContainerRecord) {
        c.run = Run::Running {
            started_at: Timestamp::UNIX_EPOCH,
        };
    }

    #[test]
    fn a_pod_is_pending_until_every_container_started_once() {
        let mut p = pod(0, 2);
        assert_eq!(p.phase(), "Pending");
        running(&mut p.containers[0]);
        assert_eq!(p.phase(), "Pending");
        running(&mut p.containers[1]);
        assert_eq!(p.phase(), "Running");
    }

    #[test]
    fn init_containers_keep_the_pod_pending_and_a_final_init_failure_fails_it() {
        let mut p = pod(1, 1);
        running(&mut p.init[0]);
        assert_eq!(p.phase(), "Pending");
        exit(&mut p.init[0], 1, false);
        assert_eq!(p.phase(), "Pending", "an init container to be retried");
        exit(&mut p.init[0], 1, true);
        assert_eq!(p.phase(), "Failed");
        exit(&mut p.init[0], 0, true);
        assert!(p.initialized());
        assert_eq!(p.phase(), "Pending");
    }

    #[test]
    fn all_containers_done_gives_succeeded_or_failed() {
        let mut p = pod(0, 2);
        exit(&mut p.containers[0], 0, true);
        running(&mut p.containers[1]);
        assert_eq!(p.phase(), "Running");
        exit(&mut p.containers[1], 0, true);
        assert_eq!(p.phase(), "Succeeded");
        exit(&mut p.containers[1], 2, true);
        assert_eq!(p.phase(), "Failed");
    }

    #[test]
    fn a_container_waiting_to_restart_keeps_the_pod_running() {
        let mut p = pod(0, 1);
        exit(&mut p.containers[0], 1, false);
        p.containers[0].last = match &p.containers[0].run {
            Run::Terminated(t) => Some(t.clone()),
            _ => None,
        };
        p.containers[0].restarts = 1;
        p.containers[0].set_waiting("CrashLoopBackOff", None);
        assert_eq!(p.phase(), "Running");
    }

    #[test]
    fn restart_policies_decide_by_exit_code() {
        assert!(RestartPolicy::Always.restarts(0));
        assert!(!RestartPolicy::OnFailure.restarts(0));
        assert!(RestartPolicy::OnFailure.restarts(1));
        assert!(!RestartPolicy::Never.restarts(1));
        assert_eq!(RestartPolicy::Always.for_init(), RestartPolicy::OnFailure);
        assert_eq!(RestartPolicy::parse(None), RestartPolicy::Always);
    }

    #[test]
    fn the_same_state_gives_the_same_status_and_ready_follows_the_containers() {
        let mut p = pod(0, 1);
        p.sandbox_ready = true;
        running(&mut p.containers[0]);
        let t0 = Timestamp::UNIX_EPOCH;
        let t1 = Timestamp::from_second(100).unwrap();
        let a = p.pod_status(t0);
        let b = p.pod_status(t1);
        assert_eq!(a, b, "nothing changed, so no transition time moved");
        let ready = |s: &PodStatus| {
            s.conditions
                .as_ref()
                .unwrap()
                .iter()
                .find(|c| c.type_ == "Ready")
                .cloned()
                .unwrap()
        };
        assert_eq!(ready(&a).status, "False");
        p.containers[0].ready = true;
        let c = p.pod_status(t1);
        assert_eq!(ready(&c).status, "True");
        assert_eq!(ready(&c).last_transition_time, Some(Time(t1)));
        assert_eq!(c.pod_ip.as_deref(), Some("127.100.0.1"));
        assert_eq!(c.phase.as_deref(), Some("Running"));
        let cs = &c.container_statuses.unwrap()[0];
        assert!(cs.ready);
        assert!(cs.state.as_ref().unwrap().running.is_some());
    }
}
