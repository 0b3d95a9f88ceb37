//! Containers that waiting longer will not start: crash-looping, image pulls backing off,
//! configurations that cannot be made. A wait for pods (the add-on's install, a scenario's
//! workload) stops early on them and shows the container's own words: its exit code and last
//! log lines, instead of waiting out its whole deadline.

use std::fmt;

use k8s_openapi::api::core::v1::{ContainerStatus, Pod};
use kube::api::{Api, ListParams, LogParams};

use crate::error::{Error, Result};

/// Waiting reasons after which a container does not start by itself.
const STUCK_REASONS: [&str; 6] = [
    "CrashLoopBackOff",
    "ImagePullBackOff",
    "InvalidImageName",
    "CreateContainerConfigError",
    "CreateContainerError",
    "RunContainerError",
];

/// A container that will not start by waiting.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stuck {
    /// `namespace/name` of its pod.
    pub pod: String,
    /// The container.
    pub container: String,
    /// Why it waits, e.g. `CrashLoopBackOff`.
    pub reason: String,
    /// The waiting message.
    pub message: String,
    /// How often it was restarted.
    pub restarts: i32,
    /// Exit code of its last run, if it ran.
    pub last_exit: Option<i32>,
    /// The last run's termination message (with `FallbackToLogsOnError`, its log's end).
    pub last_words: String,
}

impl fmt::Display for Stuck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "container {} of pod {} cannot start: {}",
            self.container, self.pod, self.reason
        )?;
        if let Some(code) = self.last_exit {
            write!(f, ", last exit code {code}")?;
        }
        if self.restarts > 0 {
            let times = if self.restarts == 1 { "time" } else { "times" };
            write!(f, ", restarted {} {times}", self.restarts)?;
        }
        if !self.message.is_empty() {
            write!(f, " ({})", self.message)?;
        }
        if !self.last_words.trim().is_empty() {
            write!(f, "\nits last log lines:\n")?;
            for line in self.last_words.trim_end().lines() {
                writeln!(f, "  | {line}")?;
            }
        }
        Ok(())
    }
}

/// The containers of `pod` (init containers included) that will not start by waiting.
pub fn stuck_containers(pod: &Pod) -> Vec<Stuck> {
    let key = format!(
        "{}/{}",
        pod.metadata.namespace.as_deref().unwrap_or_default(),
        pod.metadata.name.as_deref().unwrap_or_default()
    );
    let Some(status) = &pod.status else {
        return Vec::new();
    };
    let all = status
        .init_container_statuses
        .iter()
        .flatten()
        .chain(status.container_statuses.iter().flatten());
    all.filter_map(|c| stuck(&key, c)).collect()
}

fn stuck(pod: &str, c: &ContainerStatus) -> Option<Stuck> {
    let waiting = c.state.as_ref()?.waiting.as_ref()?;
    let reason = waiting.reason.as_deref()?;
    if !STUCK_REASONS.contains(&reason) {
        return None;
    }
    let last = c.last_state.as_ref().and_then(|s| s.terminated.as_ref());
    Some(Stuck {
        pod: pod.to_owned(),
        container: c.name.clone(),
        reason: reason.to_owned(),
        message: waiting.message.clone().unwrap_or_default(),
        restarts: c.restart_count,
        last_exit: last.map(|t| t.exit_code),
        last_words: last.and_then(|t| t.message.clone()).unwrap_or_default(),
    })
}

/// Fails with [`Error::Stuck`] when a pod of `namespace` matching `selector` has a container
/// that will not start; its last log lines come from its termination message, else from the
/// pod's log (the previous run's), when the node serves it.
pub async fn fail_if_stuck(client: &kube::Client, namespace: &str, selector: &str) -> Result<()> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let list = pods
        .list(&ListParams::default().labels(selector))
        .await
        .map_err(|source| Error::Kube {
            context: format!("list pods {selector} in {namespace}"),
            source,
        })?;
    let Some(mut first) = list.items.iter().flat_map(stuck_containers).next() else {
        return Ok(());
    };
    if first.last_words.trim().is_empty() && first.last_exit.is_some() {
        let name = first.pod.split_once('/').map_or("", |(_, n)| n);
        let params = LogParams {
            container: Some(first.container.clone()),
            previous: true,
            tail_lines: Some(20),
            ..LogParams::default()
        };
        if let Ok(text) = pods.logs(name, &params).await {
            first.last_words = text;
        }
    }
    Err(Error::Stuck {
        what: String::new(),
        detail: first.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    fn pod(container_status: serde_json::Value) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "bursting-virtual-kubelet-1", "namespace": "kube-system"},
            "status": {"containerStatuses": [container_status]}
        }))
        .unwrap()
    }

    #[rstest]
    #[case::crash_loop("CrashLoopBackOff", true)]
    #[case::pull_backing_off("ImagePullBackOff", true)]
    #[case::config_missing("CreateContainerConfigError", true)]
    #[case::first_pull_may_still_succeed("ErrImagePull", false)]
    #[case::still_creating("ContainerCreating", false)]
    fn only_reasons_that_waiting_cannot_fix_are_stuck(#[case] reason: &str, #[case] stuck: bool) {
        let p = pod(serde_json::json!({
            "name": "virtual-kubelet", "image": "x", "imageID": "", "ready": false,
            "restartCount": 0, "state": {"waiting": {"reason": reason}}
        }));
        assert_eq!(!stuck_containers(&p).is_empty(), stuck);
    }

    #[test]
    fn a_running_container_is_not_stuck_even_after_restarts() {
        let p = pod(serde_json::json!({
            "name": "virtual-kubelet", "image": "x", "imageID": "", "ready": true,
            "restartCount": 3, "state": {"running": {}}
        }));
        assert!(stuck_containers(&p).is_empty());
    }

    #[test]
    fn a_crash_loop_shows_the_exit_code_and_the_containers_last_words() {
        let p = pod(serde_json::json!({
            "name": "virtual-kubelet", "image": "x", "imageID": "", "ready": false,
            "restartCount": 2,
            "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 4s"}},
            "lastState": {"terminated": {"exitCode": 127,
                "message": "env: 'target/release/bursting-engine': No such file or directory\n"}}
        }));
        let stuck = stuck_containers(&p);
        assert_eq!(stuck.len(), 1);
        let text = stuck[0].to_string();
        assert_eq!(
            text,
            "container virtual-kubelet of pod kube-system/bursting-virtual-kubelet-1 cannot start: \
             CrashLoopBackOff, last exit code 127, restarted 2 times (back-off 4s)\n\
             its last log lines:\n  | env: 'target/release/bursting-engine': No such file or directory\n"
        );
    }
}
