//! [`PodCache`]: the CCI pods of the cluster's namespace, kept by watching CCI instead of
//! listing it every status round.
//!
//! The virtual kubelet reads every pod's status about once a second. Listing the namespace that
//! often costs CCI (and the tenant's rate limit) every pod's JSON every second: ~4000 pods'
//! worth at 4000 pods. Instead [`PodCache::follow`] lists once, then follows the changes with a
//! watch (`GET …/pods?watch=true&resourceVersion=N`), and the provider answers the status round
//! from memory.
//!
//! # The loop
//!
//! - **List**: the pods replace the cache wholesale (a pod absent from the list is dropped),
//!   and the list's `resourceVersion` is where the watch starts.
//! - **Watch** from the last `resourceVersion` seen, each event applied as it arrives
//!   ([`apply`]). What happens when a watch ends is [`after_watch`]'s decision:
//!   - the server ended it (its `timeoutSeconds`): watch again from the last version seen, at
//!     once; or list, when the resync is due;
//!   - 410 `Expired` (as an answer, or as an `ERROR` event mid-stream): CCI no longer keeps the
//!     changes after our version, so list;
//!   - a dropped connection, a 5xx or 429: back off ([`backoff`]: 1 s doubling to 30 s) and
//!     watch again from the last version seen (CCI replays what was missed);
//!   - any other refusal (404: the namespace is gone; 401/403) or a garbled line: back off and
//!     list, since resuming was refused or an event may have been lost.
//! - **Resync**: a full list every [resync period](DEFAULT_RESYNC) (see there why 5 minutes).
//!
//! # When the cache answers
//!
//! Only while it is **live**: listed, and its watch established (or being re-established after
//! a clean end). After a failure, until a watch is established again, [`PodCache::pods`]
//! answers `None` and the provider lists CCI directly as it did before the cache. A stale
//! answer would be worse than a costly one: the status round marks a created pod lost (Failed)
//! after three rounds without it, so a pod created while the watch is down must still be seen.
//! The direct list costs what every round cost before, and only while CCI is in trouble.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use cci_api::PodSummary;
use tokio::time::Instant;
use vk::RemotePod;

use crate::cci::{CciClient, PodWatchEvent};
use crate::{Error, translate};

/// Default period of the full resync ([`PodCache::follow`]; `--cci-resync-seconds`).
///
/// The resync bounds how long a change the watch missed (a server losing an event, a bug on
/// either side) could hide a pod's state: after it, the cache is the list's. Five minutes keeps
/// that bound within what a person watching a pod would tolerate once in a blue moon, while an
/// idle engine lists CCI at most 12 times an hour instead of 3600 (a list of 4000 pods is
/// megabytes). It is also Kubernetes' informer habit (client-go's reflector re-lists on a
/// minutes scale) and the upper end of a watch's `timeoutSeconds`, so each watch runs until the
/// resync.
pub const DEFAULT_RESYNC: Duration = Duration::from_secs(300);

/// The longest `timeoutSeconds` a watch asks for: a watch is re-established at least this
/// often even with a longer resync period, so a connection an intermediary silently dropped is
/// noticed.
pub const MAX_WATCH: Duration = Duration::from_secs(300);

/// First wait after a failure ([`backoff`]).
pub const BACKOFF_BASE: Duration = Duration::from_secs(1);

/// Longest wait after failures ([`backoff`]).
pub const BACKOFF_MAX: Duration = Duration::from_secs(30);

/// The cached CCI pods, keyed by CCI pod name, as the status round reads them.
#[derive(Debug, Default)]
pub struct PodCache {
    state: RwLock<CacheState>,
}

#[derive(Debug, Default)]
struct CacheState {
    pods: HashMap<String, RemotePod>,
    /// See [When the cache answers](self#when-the-cache-answers).
    live: bool,
}

impl PodCache {
    /// The engine's pods on CCI, when the cache is live; `None` while it is not (not listed
    /// yet, or its watch is down): then ask CCI.
    pub fn pods(&self) -> Option<Vec<RemotePod>> {
        let state = self.state.read().unwrap_or_else(PoisonError::into_inner);
        state.live.then(|| state.pods.values().cloned().collect())
    }

    /// Whether [`pods`](Self::pods) answers from the cache.
    pub fn is_live(&self) -> bool {
        self.state
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .live
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, CacheState> {
        self.state.write().unwrap_or_else(PoisonError::into_inner)
    }

    fn set_live(&self, live: bool) {
        self.write().live = live;
    }

    /// Follows the pods of CCI namespace `namespace` through `client` (see
    /// [the loop](self#the-loop)), with a full list every `resync`. Runs until dropped.
    pub async fn follow(self: Arc<Self>, client: CciClient, namespace: String, resync: Duration) {
        let mut version: Option<String> = None;
        let mut next = Next::now(Then::Relist, 0);
        let mut listed_at = Instant::now();
        loop {
            if !next.wait.is_zero() {
                tokio::time::sleep(next.wait).await;
            }
            next = match next.then {
                Then::Relist => match client.list_pod_summaries(&namespace).await {
                    Ok(list) => {
                        let pods = from_list(&list.items);
                        tracing::info!(
                            namespace,
                            pods = pods.len(),
                            resource_version = list.metadata.resource_version.as_deref(),
                            "listed the CCI pods; following their changes"
                        );
                        let mut state = self.write();
                        state.pods = pods;
                        state.live = true;
                        drop(state);
                        version = list.metadata.resource_version;
                        listed_at = Instant::now();
                        // NB: the streak goes on until a watch is established: a watch refused
                        // right after every list (410 with a history too short) must back off.
                        Next::now(Then::Watch, next.failures)
                    }
                    Err(e) => {
                        self.set_live(false);
                        let next = after_list_error(next.failures);
                        tracing::warn!(namespace, error = %e, retry_in_ms = next.wait.as_millis(), "could not list the CCI pods; answering from CCI directly meanwhile");
                        next
                    }
                },
                Then::Watch => {
                    let since_list = listed_at.elapsed();
                    if since_list >= resync {
                        Next::now(Then::Relist, next.failures)
                    } else {
                        let timeout = watch_timeout(resync - since_list);
                        let (end, progressed) =
                            self.watch(&client, &namespace, &mut version, timeout).await;
                        // A watch that got somewhere is not part of a streak of failures.
                        let failures = if progressed { 0 } else { next.failures };
                        let next = after_watch(end, failures, listed_at.elapsed() >= resync);
                        if end != WatchEnd::Ended {
                            self.set_live(false);
                            tracing::warn!(namespace, ?end, then = ?next.then, retry_in_ms = next.wait.as_millis(), "the CCI pod watch ended abnormally; answering from CCI directly meanwhile");
                        }
                        next
                    }
                }
            };
        }
    }

    /// One watch from `version`, applying its events; answers how it ended and whether it was
    /// established (answered 200), which counts as progress.
    async fn watch(
        &self,
        client: &CciClient,
        namespace: &str,
        version: &mut Option<String>,
        timeout: Duration,
    ) -> (WatchEnd, bool) {
        let mut watch = match client
            .watch_pod_summaries(namespace, version.as_deref(), timeout)
            .await
        {
            Ok(watch) => watch,
            Err(e) => {
                tracing::debug!(error = %e, "cci pod watch refused");
                return (WatchEnd::of_error(&e), false);
            }
        };
        self.set_live(true);
        loop {
            let event = match watch.next().await {
                Ok(Some(event)) => event,
                Ok(None) => return (WatchEnd::Ended, true),
                Err(e) => {
                    tracing::debug!(error = %e, "cci pod watch broke");
                    return (WatchEnd::of_error(&e), true);
                }
            };
            match apply(&mut self.write().pods, event) {
                Applied::Seen(Some(seen)) => *version = Some(seen),
                Applied::Seen(None) => {}
                Applied::Stop(end) => return (end, true),
            }
        }
    }
}

/// The cache a list makes: the engine's pods (those [`translate::remote_pod`] reads) by name.
pub fn from_list(items: &[PodSummary]) -> HashMap<String, RemotePod> {
    items
        .iter()
        .filter_map(|pod| Some((pod.metadata.name.clone()?, translate::remote_pod(pod)?)))
        .collect()
}

/// What applying one watch event did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Applied {
    /// Applied; the `resourceVersion` it carried, to resume from.
    Seen(Option<String>),
    /// The server ended the watch with an `ERROR` event.
    Stop(WatchEnd),
}

/// Applies `event` to `pods` (keyed by CCI pod name). A pod the engine did not create (no UID
/// label) is not kept, and one that stops being readable as ours is dropped.
pub fn apply(pods: &mut HashMap<String, RemotePod>, event: PodWatchEvent) -> Applied {
    let (pod, deleted) = match event {
        PodWatchEvent::Added(pod) | PodWatchEvent::Modified(pod) => (pod, false),
        PodWatchEvent::Deleted(pod) => (pod, true),
        PodWatchEvent::Bookmark(version) => {
            return Applied::Seen(Some(version).filter(|v| !v.is_empty()));
        }
        PodWatchEvent::Error(status) => return Applied::Stop(WatchEnd::of_code(status.code)),
    };
    if let Some(name) = pod.metadata.name.as_deref() {
        match translate::remote_pod(&pod).filter(|_| !deleted) {
            Some(remote) => {
                pods.insert(name.to_owned(), remote);
            }
            None => {
                pods.remove(name);
            }
        }
    }
    Applied::Seen(pod.metadata.resource_version)
}

/// How a watch ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WatchEnd {
    /// The server ended the stream (its `timeoutSeconds`): nothing is wrong.
    Ended,
    /// 410: the changes after our `resourceVersion` are no longer kept.
    Expired,
    /// Refused otherwise (404: the namespace is gone; 401, 403, 400): resuming is not possible.
    Refused,
    /// The connection failed or dropped, or CCI answered 5xx or 429: worth resuming.
    Dropped,
    /// A line was not a watch event: something may have been missed.
    Garbled,
}

impl WatchEnd {
    /// How a watch that failed with `error` ended.
    pub fn of_error(error: &Error) -> Self {
        match error {
            Error::Api { code, .. } => Self::of_code(*code),
            Error::Decode { .. } => Self::Garbled,
            _ => Self::Dropped,
        }
    }

    /// How a watch refused (or ended by an `ERROR` event) with HTTP status `code` ended.
    pub fn of_code(code: u16) -> Self {
        match code {
            410 => Self::Expired,
            429 | 500.. => Self::Dropped,
            _ => Self::Refused,
        }
    }
}

/// What the follower does next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Then {
    /// Watch from the last `resourceVersion` seen.
    Watch,
    /// List afresh.
    Relist,
}

/// The next step, after `wait`; `failures` is the streak of failed steps so far.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Next {
    /// How long to wait first.
    pub wait: Duration,
    /// What to do then.
    pub then: Then,
    /// Consecutive failures, including the one that led here.
    pub failures: u32,
}

impl Next {
    fn now(then: Then, failures: u32) -> Self {
        Self {
            wait: Duration::ZERO,
            then,
            failures,
        }
    }
}

/// The wait before retry number `attempt` of a streak (0: none): [`BACKOFF_BASE`] doubling
/// up to [`BACKOFF_MAX`].
pub fn backoff(attempt: u32) -> Duration {
    match attempt {
        0 => Duration::ZERO,
        n => BACKOFF_BASE
            .saturating_mul(1 << (n - 1).min(16))
            .min(BACKOFF_MAX),
    }
}

/// What to do after a watch ended as `end`, after `failures` failed steps in a row, when the
/// resync is (or is not) due. See [the loop](self#the-loop).
pub fn after_watch(end: WatchEnd, failures: u32, resync_due: bool) -> Next {
    let failed = failures.saturating_add(1);
    match end {
        WatchEnd::Ended if resync_due => Next::now(Then::Relist, 0),
        WatchEnd::Ended => Next::now(Then::Watch, 0),
        // NB: the first 410 relists at once (the cache is behind); 410s in a row back off, or
        // a history shorter than one list's worth of changes would make us list in a loop.
        WatchEnd::Expired => Next {
            wait: backoff(failures),
            then: Then::Relist,
            failures: failed,
        },
        WatchEnd::Dropped => Next {
            wait: backoff(failed),
            then: if resync_due {
                Then::Relist
            } else {
                Then::Watch
            },
            failures: failed,
        },
        WatchEnd::Refused | WatchEnd::Garbled => Next {
            wait: backoff(failed),
            then: Then::Relist,
            failures: failed,
        },
    }
}

/// What to do after a list failed, after `failures` failed steps in a row: back off and list
/// again.
pub fn after_list_error(failures: u32) -> Next {
    let failed = failures.saturating_add(1);
    Next {
        wait: backoff(failed),
        then: Then::Relist,
        failures: failed,
    }
}

/// The `timeoutSeconds` of a watch started `until_resync` before the resync is due: until
/// then, at most [`MAX_WATCH`], in whole seconds (rounded up, at least one).
pub fn watch_timeout(until_resync: Duration) -> Duration {
    let capped = until_resync.min(MAX_WATCH);
    let seconds = capped.as_secs() + u64::from(capped.subsec_nanos() > 0);
    Duration::from_secs(seconds.max(1))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use cci_api::{LABEL_CLUSTER_POD_UID, Status};
    use k8s_openapi::api::core::v1::PodStatus;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    use rstest::rstest;

    use super::*;

    /// A CCI pod `shop.{name}` standing for cluster pod `shop/{name}` (UID `uid-{name}`), at
    /// `version`, in `phase` (no status when empty).
    fn cci_pod(name: &str, version: &str, phase: &str) -> PodSummary {
        PodSummary {
            metadata: ObjectMeta {
                name: Some(format!("shop.{name}")),
                resource_version: Some(version.into()),
                labels: Some(BTreeMap::from([(
                    LABEL_CLUSTER_POD_UID.to_owned(),
                    format!("uid-{name}"),
                )])),
                ..ObjectMeta::default()
            },
            status: (!phase.is_empty()).then(|| PodStatus {
                phase: Some(phase.into()),
                ..PodStatus::default()
            }),
            ..PodSummary::default()
        }
    }

    fn not_ours(name: &str) -> PodSummary {
        PodSummary {
            metadata: ObjectMeta {
                name: Some(name.into()),
                resource_version: Some("5".into()),
                ..ObjectMeta::default()
            },
            ..PodSummary::default()
        }
    }

    fn status(code: u16) -> Status {
        Status {
            code,
            ..Status::default()
        }
    }

    /// The cache as `name=phase` pairs, sorted (`-` for no status).
    fn summary(pods: &HashMap<String, RemotePod>) -> Vec<String> {
        let mut out: Vec<String> = pods
            .iter()
            .map(|(k, r)| {
                let phase = r.status.as_ref().and_then(|s| s.phase.clone());
                format!("{k}={}", phase.as_deref().unwrap_or("-"))
            })
            .collect();
        out.sort();
        out
    }

    fn start() -> HashMap<String, RemotePod> {
        from_list(&[cci_pod("a", "1", "Pending"), cci_pod("b", "2", "Running")])
    }

    #[rstest]
    #[case::added_pod_is_kept(PodWatchEvent::Added(cci_pod("c", "7", "")), &["shop.a=Pending", "shop.b=Running", "shop.c=-"], Applied::Seen(Some("7".into())))]
    #[case::modified_status_replaces_the_old(PodWatchEvent::Modified(cci_pod("a", "7", "Running")), &["shop.a=Running", "shop.b=Running"], Applied::Seen(Some("7".into())))]
    #[case::modified_unknown_pod_is_added(PodWatchEvent::Modified(cci_pod("c", "7", "Running")), &["shop.a=Pending", "shop.b=Running", "shop.c=Running"], Applied::Seen(Some("7".into())))]
    #[case::deleted_pod_is_dropped(PodWatchEvent::Deleted(cci_pod("b", "7", "Running")), &["shop.a=Pending"], Applied::Seen(Some("7".into())))]
    #[case::deleted_twice_is_harmless(PodWatchEvent::Deleted(cci_pod("c", "7", "")), &["shop.a=Pending", "shop.b=Running"], Applied::Seen(Some("7".into())))]
    #[case::pod_not_ours_is_not_kept(PodWatchEvent::Added(not_ours("other")), &["shop.a=Pending", "shop.b=Running"], Applied::Seen(Some("5".into())))]
    #[case::pod_that_lost_its_label_is_dropped(PodWatchEvent::Modified(not_ours("shop.a")), &["shop.b=Running"], Applied::Seen(Some("5".into())))]
    #[case::bookmark_moves_the_version_only(PodWatchEvent::Bookmark("9".into()), &["shop.a=Pending", "shop.b=Running"], Applied::Seen(Some("9".into())))]
    #[case::expired_error_stops_the_watch(PodWatchEvent::Error(status(410)), &["shop.a=Pending", "shop.b=Running"], Applied::Stop(WatchEnd::Expired))]
    #[case::server_error_stops_the_watch(PodWatchEvent::Error(status(500)), &["shop.a=Pending", "shop.b=Running"], Applied::Stop(WatchEnd::Dropped))]
    fn an_event_changes_the_cache_as_it_says(
        #[case] event: PodWatchEvent,
        #[case] after: &[&str],
        #[case] applied: Applied,
    ) {
        let mut pods = start();
        assert_eq!(apply(&mut pods, event), applied);
        assert_eq!(summary(&pods), after);
    }

    #[test]
    fn a_list_keeps_only_the_engines_pods_with_their_cluster_identity() {
        let pods = from_list(&[cci_pod("a", "1", "Running"), not_ours("x")]);
        assert_eq!(summary(&pods), ["shop.a=Running"]);
        let a = &pods["shop.a"];
        assert_eq!(
            (a.namespace.as_str(), a.name.as_str(), a.uid.as_str()),
            ("shop", "a", "uid-a")
        );
    }

    #[test]
    fn a_cache_answers_only_while_live_and_a_relist_replaces_it_wholesale() {
        let cache = PodCache::default();
        assert_eq!(cache.pods(), None, "not listed yet");
        {
            let mut state = cache.write();
            state.pods = start();
            state.live = true;
        }
        assert_eq!(cache.pods().map(|p| p.len()), Some(2));
        cache.write().pods = from_list(&[cci_pod("c", "9", "Running")]);
        let names: Vec<String> = cache.pods().unwrap().into_iter().map(|r| r.name).collect();
        assert_eq!(names, ["c"], "a and b were absent from the list");
        cache.set_live(false);
        assert_eq!(cache.pods(), None);
    }

    const S: Duration = Duration::from_secs(1);

    #[rstest]
    #[case::server_timeout_watches_again_at_once(
        WatchEnd::Ended,
        0,
        false,
        Duration::ZERO,
        Then::Watch,
        0
    )]
    #[case::server_timeout_ends_a_streak(WatchEnd::Ended, 4, false, Duration::ZERO, Then::Watch, 0)]
    #[case::server_timeout_when_resync_due_lists(
        WatchEnd::Ended,
        0,
        true,
        Duration::ZERO,
        Then::Relist,
        0
    )]
    #[case::first_expiry_lists_at_once(
        WatchEnd::Expired,
        0,
        false,
        Duration::ZERO,
        Then::Relist,
        1
    )]
    #[case::expiry_again_backs_off(WatchEnd::Expired, 1, false, S, Then::Relist, 2)]
    #[case::expiry_in_a_long_streak_waits_at_most_30s(WatchEnd::Expired, 12, false, 30 * S, Then::Relist, 13)]
    #[case::dropped_connection_resumes_after_a_second(
        WatchEnd::Dropped,
        0,
        false,
        S,
        Then::Watch,
        1
    )]
    #[case::dropped_again_doubles(WatchEnd::Dropped, 2, false, 4 * S, Then::Watch, 3)]
    #[case::dropped_for_long_waits_at_most_30s(WatchEnd::Dropped, 40, false, 30 * S, Then::Watch, 41)]
    #[case::dropped_when_resync_due_lists(WatchEnd::Dropped, 0, true, S, Then::Relist, 1)]
    #[case::refused_resumption_lists(WatchEnd::Refused, 0, false, S, Then::Relist, 1)]
    #[case::garbled_line_lists(WatchEnd::Garbled, 1, false, 2 * S, Then::Relist, 2)]
    fn after_a_watch_ends(
        #[case] end: WatchEnd,
        #[case] failures: u32,
        #[case] resync_due: bool,
        #[case] wait: Duration,
        #[case] then: Then,
        #[case] failures_after: u32,
    ) {
        assert_eq!(
            after_watch(end, failures, resync_due),
            Next {
                wait,
                then,
                failures: failures_after
            }
        );
    }

    #[rstest]
    #[case::first_failure(0, S)]
    #[case::second(1, 2 * S)]
    #[case::fifth(4, 16 * S)]
    #[case::sixth_is_capped(5, 30 * S)]
    #[case::never_overflows(u32::MAX, 30 * S)]
    fn a_failed_list_is_retried_with_backoff(#[case] failures: u32, #[case] wait: Duration) {
        let next = after_list_error(failures);
        assert_eq!((next.wait, next.then), (wait, Then::Relist));
    }

    #[rstest]
    #[case::gone(410, WatchEnd::Expired)]
    #[case::namespace_missing(404, WatchEnd::Refused)]
    #[case::forbidden(403, WatchEnd::Refused)]
    #[case::throttled(429, WatchEnd::Dropped)]
    #[case::unavailable(503, WatchEnd::Dropped)]
    fn a_refusal_is_told_by_its_code(#[case] code: u16, #[case] end: WatchEnd) {
        assert_eq!(WatchEnd::of_code(code), end);
    }

    #[rstest]
    #[case::well_before_the_resync(Duration::from_secs(200), Duration::from_secs(200))]
    #[case::capped(Duration::from_secs(3600), MAX_WATCH)]
    #[case::rounded_up(Duration::from_millis(2100), Duration::from_secs(3))]
    #[case::at_least_a_second(Duration::from_millis(10), S)]
    fn a_watch_lasts_until_the_resync(#[case] until: Duration, #[case] timeout: Duration) {
        assert_eq!(watch_timeout(until), timeout);
    }
}
