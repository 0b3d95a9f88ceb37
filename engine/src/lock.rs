//! The node lock (BEHAVIOR.md §7): when CCI answers "sold out", the virtual node is cordoned
//! (`spec.unschedulable=true`, shown as `SchedulingDisabled`) for a while, so nothing new is
//! scheduled to CCI, and uncordoned again when that time is over.
//!
//! The lock lives on the node itself, so it survives an engine restart: the cordon, and the
//! annotation [`ANNOTATION_LOCKED_UNTIL`] with the lock's end as an RFC 3339 time. One task
//! ([`NodeLock::run`]) reads the node and does what [`decide`] says:
//!
//! - no annotation: nothing (a cordon without it is an operator's, and left alone);
//! - annotation, node cordoned, end not reached: wait until the end;
//! - annotation, node cordoned, end reached (or the annotation unreadable): uncordon and drop
//!   the annotation, in one patch guarded by the node's `resourceVersion`;
//! - annotation, node no longer cordoned: an operator ran `kubectl uncordon`; the lock is over,
//!   the annotation is dropped and the node is never cordoned again from that stale lock.
//!
//! A new sold-out while locked extends the lock from that moment.
//!
//! The other signal the provider's manuals describe is a CCI pod that stays `Pending` for lack of
//! capacity: accepted, but `PodScheduled` `False` with reason `Unschedulable` for longer than a
//! threshold ([`pending_too_long`]); it locks the node the same way. `CHECK_RESOURCE_PRESSURE=false`
//! on the add-on's Deployments switches both signals off ([`resource_pressure_checked`]).

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, PodStatus};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams};
use tokio::sync::Notify;

use crate::REASON_SOLD_OUT;
use crate::breakage::Breakage;

/// Annotation on the virtual node: when the current lock ends (RFC 3339).
pub const ANNOTATION_LOCKED_UNTIL: &str = "bursting.cci.io/locked-until";
/// Default lock duration: 30 minutes.
pub const DEFAULT_LOCK_DURATION: Duration = Duration::from_secs(1800);
/// Default time a CCI pod may stay Pending unschedulable before the node is locked.
pub const DEFAULT_PENDING_LOCK_THRESHOLD: Duration = Duration::from_secs(300);
/// Environment variable that switches the node lock's signals off when `false` (the add-on's
/// `CHECK_RESOURCE_PRESSURE`, BEHAVIOR.md §7).
pub const ENV_CHECK_RESOURCE_PRESSURE: &str = "CHECK_RESOURCE_PRESSURE";
/// The `PodScheduled` reason of a pod no capacity could be found for.
const REASON_UNSCHEDULABLE: &str = "Unschedulable";

/// How often the node is read again when there is nothing to wait for (an operator's uncordon
/// and a recreated node are noticed within this).
const RECHECK: Duration = Duration::from_secs(10);
/// Delay before retrying after a failed read or patch.
const RETRY: Duration = Duration::from_secs(1);

/// Whether a provider error locks the node: CCI refused the pod as sold out.
pub fn locks_node(error: &vk::ProviderError) -> bool {
    matches!(error, vk::ProviderError::PodFailed { reason, .. } if reason == REASON_SOLD_OUT)
}

/// Whether the resource-pressure check is on, given the value of
/// [`ENV_CHECK_RESOURCE_PRESSURE`]: only `false` (any case, spaces around) turns it off, as the
/// manuals document only that value; unset or anything else leaves it on.
pub fn resource_pressure_checked(value: Option<&str>) -> bool {
    !value.is_some_and(|v| v.trim().eq_ignore_ascii_case("false"))
}

/// Whether a CCI pod showing `status` has waited too long for capacity at `now`: still
/// `Pending`, `PodScheduled` `False` with reason `Unschedulable` since at least `threshold`
/// ago. A pod unschedulable for another reason (no Network yet) or with no transition time
/// does not count: neither says CCI is short of capacity.
pub fn pending_too_long(status: &PodStatus, now: Timestamp, threshold: Duration) -> bool {
    if status.phase.as_deref() != Some("Pending") {
        return false;
    }
    let Some(since) = status
        .conditions
        .iter()
        .flatten()
        .find(|c| {
            c.type_ == "PodScheduled"
                && c.status == "False"
                && c.reason.as_deref() == Some(REASON_UNSCHEDULABLE)
        })
        .and_then(|c| c.last_transition_time.as_ref())
    else {
        return false;
    };
    now.duration_since(since.0)
        .try_into()
        .is_ok_and(|waited: Duration| waited >= threshold)
}

/// The lock end recorded on `node`: `None` without the annotation, `Some(Err(text))` when it
/// does not parse.
pub fn locked_until(node: &Node) -> Option<Result<Timestamp, String>> {
    let value = node
        .metadata
        .annotations
        .as_ref()?
        .get(ANNOTATION_LOCKED_UNTIL)?;
    Some(value.parse::<Timestamp>().map_err(|_| value.clone()))
}

/// The lock end for a lock taken at `now` for `duration` (whole seconds).
pub fn lock_end(now: Timestamp, duration: Duration) -> Timestamp {
    let secs = i64::try_from(duration.as_secs()).unwrap_or(i64::MAX / 2);
    Timestamp::from_second(now.as_second().saturating_add(secs)).unwrap_or(Timestamp::MAX)
}

/// What the lock task does with the node as it is now (at start-up and after every change).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LockAction {
    /// No lock recorded.
    Nothing,
    /// Locked: wait until this time.
    WaitUntil(Timestamp),
    /// The lock is over and the node still cordoned: uncordon it and drop the annotation.
    Release,
    /// The node was uncordoned by hand: just drop the annotation.
    DropAnnotation,
}

/// Decides what to do with `node` at `now` (see the module docs).
pub fn decide(node: &Node, now: Timestamp) -> LockAction {
    let Some(until) = locked_until(node) else {
        return LockAction::Nothing;
    };
    let cordoned = node
        .spec
        .as_ref()
        .and_then(|s| s.unschedulable)
        .unwrap_or(false);
    if !cordoned {
        return LockAction::DropAnnotation;
    }
    match until {
        Ok(until) if until > now => LockAction::WaitUntil(until),
        // An unreadable end cannot be waited for: the lock is treated as over.
        _ => LockAction::Release,
    }
}

/// The patch that locks the node until `until`.
pub fn lock_patch(until: Timestamp) -> serde_json::Value {
    serde_json::json!({
        "metadata": { "annotations": { ANNOTATION_LOCKED_UNTIL: until.to_string() } },
        "spec": { "unschedulable": true },
    })
}

/// The patch for `action` (`Release` or `DropAnnotation`), guarded by `resource_version`.
pub fn unlock_patch(action: LockAction, resource_version: Option<&str>) -> serde_json::Value {
    let mut patch = serde_json::json!({
        "metadata": { "annotations": { ANNOTATION_LOCKED_UNTIL: null } },
    });
    if let Some(rv) = resource_version {
        patch["metadata"]["resourceVersion"] = rv.into();
    }
    if action == LockAction::Release {
        patch["spec"] = serde_json::json!({ "unschedulable": null });
    }
    patch
}

/// The lock of one virtual node.
#[derive(Debug)]
pub struct NodeLock {
    nodes: Api<Node>,
    name: String,
    duration: Duration,
    wake: Notify,
}

impl NodeLock {
    /// The lock of node `name`, taken for `duration` on each sold-out.
    pub fn new(client: kube::Client, name: impl Into<String>, duration: Duration) -> Self {
        Self {
            nodes: Api::all(client),
            name: name.into(),
            duration,
            wake: Notify::new(),
        }
    }

    /// Locks (or extends the lock of) the node now. Failures are logged: the pod's failure is
    /// reported either way.
    pub async fn engage(&self) {
        let until = lock_end(Timestamp::now(), self.duration);
        match self
            .nodes
            .patch(
                &self.name,
                &PatchParams::default(),
                &Patch::Merge(&lock_patch(until)),
            )
            .await
        {
            Ok(_) => {
                tracing::warn!(node = %self.name, %until, "CCI has no capacity: node locked (cordoned)");
                self.wake.notify_one();
            }
            Err(e) => tracing::error!(node = %self.name, error = %e, "could not lock the node"),
        }
    }

    /// Keeps the lock: releases it when it ends, drops it when an operator uncordoned the node.
    /// Runs forever.
    pub async fn run(self: Arc<Self>) {
        loop {
            let wait = self.step().await;
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = self.wake.notified() => {}
            }
        }
    }

    /// One look at the node; answers how long to wait before the next.
    async fn step(&self) -> Duration {
        let node = match self.nodes.get_opt(&self.name).await {
            Ok(Some(node)) => node,
            Ok(None) => return RECHECK,
            Err(e) => {
                tracing::warn!(node = %self.name, error = %e, "could not read the node lock");
                return RETRY;
            }
        };
        let now = Timestamp::now();
        let action = decide(&node, now);
        if action == LockAction::Release && crate::breakage::is(Breakage::LockNeverExpires) {
            return RECHECK;
        }
        if action == LockAction::DropAnnotation && crate::breakage::is(Breakage::UncordonRelocks) {
            // The bug: a lock found lifted is taken again, whoever lifted it.
            let until = lock_end(now, self.duration);
            let _ = self
                .nodes
                .patch(
                    &self.name,
                    &PatchParams::default(),
                    &Patch::Merge(&lock_patch(until)),
                )
                .await;
            return RECHECK;
        }
        match action {
            LockAction::Nothing => RECHECK,
            LockAction::WaitUntil(until) => {
                let ms = until.as_millisecond().saturating_sub(now.as_millisecond());
                Duration::from_millis(u64::try_from(ms).unwrap_or(0)).min(RECHECK)
            }
            LockAction::Release | LockAction::DropAnnotation => {
                let patch = unlock_patch(action, node.metadata.resource_version.as_deref());
                match self
                    .nodes
                    .patch(&self.name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await
                {
                    Ok(_) if action == LockAction::Release => {
                        tracing::info!(node = %self.name, "node lock ended: node uncordoned");
                        Duration::ZERO
                    }
                    Ok(_) => {
                        tracing::info!(node = %self.name, "node uncordoned by hand: lock dropped");
                        Duration::ZERO
                    }
                    // 409: the node changed since it was read (a heartbeat, a new lock): again.
                    Err(e) => {
                        tracing::debug!(node = %self.name, error = %e, "node lock patch failed; again");
                        RETRY
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use k8s_openapi::api::core::v1::NodeSpec;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    use super::*;

    fn node(annotation: Option<&str>, cordoned: Option<bool>) -> Node {
        Node {
            metadata: ObjectMeta {
                annotations: annotation
                    .map(|a| BTreeMap::from([(ANNOTATION_LOCKED_UNTIL.to_owned(), a.to_owned())])),
                ..ObjectMeta::default()
            },
            spec: Some(NodeSpec {
                unschedulable: cordoned,
                ..NodeSpec::default()
            }),
            status: None,
        }
    }

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn only_a_sold_out_failure_locks_the_node() {
        let sold_out = vk::ProviderError::PodFailed {
            reason: REASON_SOLD_OUT.into(),
            message: "sold out".into(),
        };
        assert!(locks_node(&sold_out));
        let other = vk::ProviderError::PodFailed {
            reason: "Other".into(),
            message: "x".into(),
        };
        assert!(!locks_node(&other));
        assert!(!locks_node(&vk::ProviderError::InvalidInput(
            "sold out".into()
        )));
    }

    fn pending(phase: &str, scheduled: Option<(&str, &str)>, since: Option<&str>) -> PodStatus {
        use k8s_openapi::api::core::v1::PodCondition;
        use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
        PodStatus {
            phase: Some(phase.into()),
            conditions: scheduled.map(|(status, reason)| {
                vec![PodCondition {
                    type_: "PodScheduled".into(),
                    status: status.into(),
                    reason: Some(reason.into()),
                    last_transition_time: since.map(|s| Time(at(s))),
                    ..PodCondition::default()
                }]
            }),
            ..PodStatus::default()
        }
    }

    #[rstest::rstest]
    #[case::past_the_threshold("Pending", Some(("False", "Unschedulable")), Some("2026-01-01T00:00:00Z"), "2026-01-01T00:05:00Z", true)]
    #[case::not_yet("Pending", Some(("False", "Unschedulable")), Some("2026-01-01T00:00:00Z"), "2026-01-01T00:04:59Z", false)]
    #[case::long_past("Pending", Some(("False", "Unschedulable")), Some("2026-01-01T00:00:00Z"), "2026-01-02T00:00:00Z", true)]
    #[case::clock_behind("Pending", Some(("False", "Unschedulable")), Some("2026-01-01T00:10:00Z"), "2026-01-01T00:00:00Z", false)]
    #[case::waiting_for_its_network("Pending", Some(("False", "NetworkNotReady")), Some("2026-01-01T00:00:00Z"), "2026-01-02T00:00:00Z", false)]
    #[case::scheduled("Pending", Some(("True", "Unschedulable")), Some("2026-01-01T00:00:00Z"), "2026-01-02T00:00:00Z", false)]
    #[case::no_condition("Pending", None, None, "2026-01-02T00:00:00Z", false)]
    #[case::no_transition_time("Pending", Some(("False", "Unschedulable")), None, "2026-01-02T00:00:00Z", false)]
    #[case::running("Running", Some(("False", "Unschedulable")), Some("2026-01-01T00:00:00Z"), "2026-01-02T00:00:00Z", false)]
    fn only_a_pod_unschedulable_past_the_threshold_is_pending_too_long(
        #[case] phase: &str,
        #[case] scheduled: Option<(&str, &str)>,
        #[case] since: Option<&str>,
        #[case] now: &str,
        #[case] expected: bool,
    ) {
        let status = pending(phase, scheduled, since);
        assert_eq!(
            pending_too_long(&status, at(now), Duration::from_secs(300)),
            expected
        );
    }

    #[rstest::rstest]
    #[case(None, true)]
    #[case(Some("true"), true)]
    #[case(Some(""), true)]
    #[case(Some("no"), true)]
    #[case(Some("false"), false)]
    #[case(Some(" FALSE "), false)]
    fn only_false_switches_the_resource_pressure_check_off(
        #[case] value: Option<&str>,
        #[case] checked: bool,
    ) {
        assert_eq!(resource_pressure_checked(value), checked);
    }

    #[test]
    fn the_annotation_parses_as_rfc3339_and_round_trips() {
        let until = lock_end(at("2026-11-26T19:00:00.700Z"), DEFAULT_LOCK_DURATION);
        assert_eq!(until.to_string(), "2026-11-26T19:30:00Z");
        let patch = lock_patch(until);
        assert_eq!(patch["spec"]["unschedulable"], true);
        let text = patch["metadata"]["annotations"][ANNOTATION_LOCKED_UNTIL]
            .as_str()
            .unwrap();
        assert_eq!(locked_until(&node(Some(text), Some(true))), Some(Ok(until)));
        assert_eq!(locked_until(&node(None, Some(true))), None);
        assert_eq!(
            locked_until(&node(Some("soon"), Some(true))),
            Some(Err("soon".into()))
        );
    }

    #[test]
    fn a_lock_ends_whole_seconds_later_and_one_too_long_to_say_at_the_end_of_time() {
        let now = at("2026-11-26T19:10:00.750Z");
        assert_eq!(
            lock_end(now, Duration::from_secs(300)),
            at("2026-11-26T19:15:00Z")
        );
        assert_eq!(lock_end(now, Duration::MAX), Timestamp::MAX);
    }

    #[test]
    fn at_start_up_an_unexpired_lock_is_waited_for_and_an_expired_one_released() {
        let now = at("2026-11-26T19:10:00Z");
        let locked = node(Some("2026-11-26T19:30:00Z"), Some(true));
        assert_eq!(
            decide(&locked, now),
            LockAction::WaitUntil(at("2026-11-26T19:30:00Z"))
        );
        assert_eq!(
            decide(&locked, at("2026-11-26T19:30:00Z")),
            LockAction::Release
        );
        assert_eq!(
            decide(&node(Some("garbage"), Some(true)), now),
            LockAction::Release
        );
    }

    #[test]
    fn an_operator_uncordon_is_respected_and_a_foreign_cordon_left_alone() {
        let now = at("2026-11-26T19:10:00Z");
        assert_eq!(
            decide(&node(Some("2026-11-26T19:30:00Z"), Some(false)), now),
            LockAction::DropAnnotation
        );
        assert_eq!(
            decide(&node(Some("2026-11-26T19:30:00Z"), None), now),
            LockAction::DropAnnotation
        );
        assert_eq!(decide(&node(None, Some(true)), now), LockAction::Nothing);
        assert_eq!(decide(&node(None, None), now), LockAction::Nothing);
    }

    #[test]
    fn unlock_patches_drop_the_annotation_and_uncordon_only_on_release() {
        let release = unlock_patch(LockAction::Release, Some("42"));
        assert_eq!(release["metadata"]["resourceVersion"], "42");
        assert!(release["metadata"]["annotations"][ANNOTATION_LOCKED_UNTIL].is_null());
        assert!(release["spec"]["unschedulable"].is_null());
        assert!(release["spec"].is_object());
        let drop = unlock_patch(LockAction::DropAnnotation, None);
        assert!(drop.get("spec").is_none());
        assert!(drop["metadata"].get("resourceVersion").is_none());
    }
}

#[cfg(test)]
#[path = "lock_scripted.rs"]
mod scripted;
