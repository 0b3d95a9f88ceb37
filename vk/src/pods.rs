//! The pod controller: watch the node's pods, drive the provider, sync statuses back.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Pod, PodStatus};
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, Patch, PatchParams, Preconditions};
use kube::runtime::WatchStreamExt;
use kube::runtime::events::{Event as KubeEvent, EventType, Recorder, Reporter};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client, Resource, ResourceExt};
use serde_json::json;

use crate::cache::CachedPod;
use crate::decide::{self, Action, Orphan, Reconcile, StatusStep, Then};
use crate::error::api_code;
use crate::queue::WorkQueue;
use crate::status::{
    is_terminal, lost_status, merge_status, missing_annotations, status_changed, status_patch,
};
use crate::{Config, Error, Provider, ProviderError, Result, TERMINATION_SLACK};

/// Consecutive status rounds a created pod may be missing from the provider's answer before its
/// cluster pod is marked `Failed` (one miss can be a list racing a create).
const LOST_AFTER_MISSES: u32 = 3;

/// Status patches a status round keeps in flight at once.
///
/// NB: a patch is one API server round trip of a few tens of milliseconds, so a round that sent
/// them one after another took tens of seconds when a burst of pods turned `Running` together
/// (~1000 patches at start-up), and kept every later change waiting behind it. 16 hides that
/// latency (the round takes about a sixteenth as long) while leaving the API server, and the
/// client's connection pool (one connection per request in flight), far from flooded: kube-rs
/// does not rate-limit, so this is the only bound on the round's burst.
pub(crate) const STATUS_PATCHES_IN_FLIGHT: usize = 16;

/// Namespace and name of a cluster pod: the work queue's key.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct PodKey {
    namespace: String,
    name: String,
}

impl PodKey {
    fn of(pod: &impl Resource) -> Self {
        Self {
            namespace: pod.meta().namespace.clone().unwrap_or_default(),
            name: pod.meta().name.clone().unwrap_or_default(),
        }
    }

    fn object_ref(&self) -> ObjectRef<CachedPod> {
        ObjectRef::new(&self.name).within(&self.namespace)
    }
}

impl fmt::Display for PodKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// What the controller remembers of a pod it has handled.
#[derive(Clone)]
struct Seen {
    /// The pod as last reconciled: what to delete if it vanishes.
    pod: Arc<CachedPod>,
    /// `create_pod` succeeded for this UID.
    created: bool,
    /// `create_pod` refused this input as invalid; not retried until the input changes.
    refused: bool,
}

/// Where a terminating pod's remote deletion stands (see the termination protocol on
/// [`Provider`]).
#[derive(Clone, Copy, Debug, Default)]
struct Deleting {
    /// The grace period the provider accepted the delete with (`None`: none given).
    grace: Option<i64>,
    /// The number of the last status round started when the provider accepted the delete:
    /// only the answers of later rounds can tell that the remote pod is gone.
    asked_in_round: u64,
    /// A later round's answer lacked the pod: the remote pod is gone.
    gone: bool,
    /// The controller sent (or is sending) the grace-0 delete that finishes the pod.
    finishing: bool,
    /// The deadline a recheck is queued for, so each deadline is queued once.
    recheck_at: Option<Timestamp>,
}

/// A status patch: the status and the provider's annotations the pod lacked.
#[derive(Clone, Debug, PartialEq)]
struct Sent {
    status: PodStatus,
    annotations: BTreeMap<String, String>,
}

impl Sent {
    /// Whether this patch, once sent, already says all that `next` would.
    fn covers(&self, next: &Sent) -> bool {
        !status_changed(Some(&self.status), &next.status)
            && missing_annotations(Some(&self.annotations), &next.annotations).is_empty()
    }
}

/// What tells the time: [`Timestamp::now`], or a test's clock.
type Clock = Box<dyn Fn() -> Timestamp + Send + Sync>;

fn uid(pod: &impl Resource) -> &str {
    pod.meta().uid.as_deref().unwrap_or_default()
}

/// What the provider reads from a pod and what can change on it without a new UID.
fn same_input(a: &CachedPod, b: &CachedPod) -> bool {
    a.same_spec(b) && a.metadata.annotations == b.metadata.annotations
}

pub(crate) struct PodController<P> {
    client: Client,
    provider: Arc<P>,
    node_name: String,
    store: Store<CachedPod>,
    writer: Mutex<Option<reflector::store::Writer<CachedPod>>>,
    pub(crate) queue: Arc<WorkQueue<PodKey>>,
    seen: Mutex<HashMap<PodKey, Seen>>,
    /// Last status patched per pod UID, so a stale cache does not cause the same patch twice.
    patched: Mutex<HashMap<String, Sent>>,
    /// Consecutive status rounds each created pod UID was missing from the provider's answer.
    misses: Mutex<HashMap<String, u32>>,
    /// Terminating pods whose remote deletion the provider accepted, by UID; kept until the
    /// pod leaves the cache (the controller's own grace-0 delete is seen as one more update,
    /// which must not ask the provider again).
    deleting: Mutex<HashMap<String, Deleting>>,
    /// Status rounds started so far.
    rounds: AtomicU64,
    recorder: Recorder,
    clock: Clock,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // NB: nothing panics while these locks are held; a poisoned map is still consistent.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl<P: Provider> PodController<P> {
    pub(crate) fn new(client: Client, config: &Config, provider: Arc<P>) -> Self {
        let (store, writer) = reflector::store();
        let recorder = Recorder::new(
            client.clone(),
            Reporter {
                controller: "virtual-kubelet".into(),
                instance: Some(config.node.name.clone()),
            },
        );
        Self {
            client,
            provider,
            node_name: config.node.name.clone(),
            store,
            writer: Mutex::new(Some(writer)),
            queue: WorkQueue::new(config.retry_base, config.retry_max),
            seen: Mutex::new(HashMap::new()),
            patched: Mutex::new(HashMap::new()),
            misses: Mutex::new(HashMap::new()),
            deleting: Mutex::new(HashMap::new()),
            rounds: AtomicU64::new(0),
            recorder,
            clock: Box::new(Timestamp::now),
        }
    }

    /// The controller telling the time by `clock` (tests move it with tokio's paused time).
    #[cfg(test)]
    fn with_clock(mut self, clock: impl Fn() -> Timestamp + Send + Sync + 'static) -> Self {
        self.clock = Box::new(clock);
        self
    }

    fn pods_in(&self, namespace: &str) -> Api<Pod> {
        Api::namespaced(self.client.clone(), namespace)
    }

    /// Watch the pods bound to the node (`spec.nodeName=<node>`) into the store, queueing every
    /// pod that changes. Runs until the task is dropped.
    pub(crate) async fn watch(self: Arc<Self>) {
        let Some(writer) = lock(&self.writer).take() else {
            tracing::error!("pod watch started twice");
            return;
        };
        let api: Api<CachedPod> = Api::all(self.client.clone());
        let config =
            watcher::Config::default().fields(&format!("spec.nodeName={}", self.node_name));
        let stream = reflector::reflector(
            writer,
            watcher::watcher(api, config)
                .default_backoff()
                .modify(|pod| pod.managed_fields_mut().clear()),
        );
        futures::pin_mut!(stream);
        while let Some(event) = stream.next().await {
            match event {
                Ok(Event::Apply(pod) | Event::Delete(pod)) => self.queue.add(PodKey::of(&pod)),
                // The store swaps in the full list at InitDone; queue everything then, including
                // the pods we knew that are no longer listed (they vanished while unwatched).
                Ok(Event::InitDone) => {
                    let mut keys: HashSet<PodKey> = self
                        .store
                        .state()
                        .iter()
                        .map(|p| PodKey::of(&**p))
                        .collect();
                    keys.extend(lock(&self.seen).keys().cloned());
                    tracing::info!(pods = keys.len(), "pod list complete");
                    keys.into_iter().for_each(|k| self.queue.add(k));
                }
                Ok(Event::Init | Event::InitApply(_)) => {}
                Err(e) => tracing::warn!(error = %e, "pod watch failed; retrying"),
            }
        }
    }

    /// Wait for the first full list of the node's pods; `false` if the watch ended first.
    ///
    /// NB: await this from one task only (kube-runtime wakes only the last concurrent waiter).
    pub(crate) async fn ready(&self) -> bool {
        self.store.wait_until_ready().await.is_ok()
    }

    /// The cache of the node's pods (filled by [`watch`](Self::watch)).
    pub(crate) fn store(&self) -> Store<CachedPod> {
        self.store.clone()
    }

    /// Take keys off the queue and reconcile them, retrying failures with backoff.
    pub(crate) async fn work(self: Arc<Self>) {
        while let Some(key) = self.queue.next().await {
            match self.reconcile(&key).await {
                Ok(()) => self.queue.forget(&key),
                Err(e) if e.is_retryable() => {
                    let delay = self.queue.retry(key.clone());
                    tracing::warn!(pod = %key, error = %e, retry_in = ?delay, "pod sync failed");
                }
                Err(e) => {
                    self.queue.forget(&key);
                    tracing::warn!(pod = %key, error = %e, "pod sync failed; not retrying");
                }
            }
            self.queue.done(&key);
        }
    }

    async fn reconcile(&self, key: &PodKey) -> Result<()> {
        let current = self.store.get(&key.object_ref());
        let prev = lock(&self.seen).get(key).cloned();
        let cached = current.as_deref().map(|pod| decide::Cached {
            uid: uid(pod),
            terminating: pod.metadata.deletion_timestamp.is_some(),
            terminal: is_terminal(pod.status.as_ref()),
        });
        let remembered = prev.as_ref().map(|p| decide::Remembered {
            uid: uid(&*p.pod),
            created: p.created,
            refused: p.refused,
            same_input: current.as_deref().is_some_and(|c| same_input(&p.pod, c)),
        });
        match (decide::reconcile(cached, remembered), current, prev) {
            (Reconcile::Terminate { replaced }, Some(pod), prev) => {
                if let Some(old) = prev.filter(|_| replaced) {
                    self.delete_replaced(key, &old).await?;
                }
                self.terminate(key, &pod).await
            }
            (Reconcile::DeleteVanished, _, Some(prev)) => {
                tracing::info!(pod = %key, "pod vanished; deleting its remote pod");
                self.delete_remote(&prev.pod.to_pod()?).await?;
                self.forget(key, &*prev.pod);
                Ok(())
            }
            (Reconcile::Sync { replaced, action }, Some(pod), prev) => {
                if let Some(old) = prev.filter(|_| replaced) {
                    self.delete_replaced(key, &old).await?;
                }
                self.sync(key, pod, action).await
            }
            _ => Ok(()),
        }
    }

    /// The name now holds a new pod: the old one's remote pod goes first.
    async fn delete_replaced(&self, key: &PodKey, old: &Seen) -> Result<()> {
        tracing::info!(pod = %key, old_uid = uid(&*old.pod), "pod replaced under the same name");
        self.delete_remote(&old.pod.to_pod()?).await?;
        self.forget(key, &*old.pod);
        Ok(())
    }

    fn forget(&self, key: &PodKey, pod: &impl Resource) {
        let mut seen = lock(&self.seen);
        if seen.get(key).is_some_and(|s| uid(&*s.pod) == uid(pod)) {
            seen.remove(key);
        }
        drop(seen);
        lock(&self.patched).remove(uid(pod));
        lock(&self.misses).remove(uid(pod));
    }

    /// Carries out `action` (see [`decide::Action`]) for the live pod `cached`.
    async fn sync(&self, key: &PodKey, cached: Arc<CachedPod>, action: Action) -> Result<()> {
        // NB: the spec is parsed only for a provider call; most reconciles (a status patch's
        // echo) make none.
        let remember = |created: bool, refused: bool| {
            lock(&self.seen).insert(
                key.clone(),
                Seen {
                    pod: cached.clone(),
                    created,
                    refused,
                },
            );
        };
        match action {
            Action::Keep => {
                remember(true, false);
                Ok(())
            }
            Action::Update => {
                let pod = cached.to_pod()?;
                match self.provider.update_pod(&pod).await {
                    Ok(()) | Err(ProviderError::NotImplemented(_)) => {}
                    Err(ProviderError::InvalidInput(msg)) => {
                        self.warn(&pod, "ProviderUpdateFailed", "UpdatePod", &msg)
                            .await;
                    }
                    Err(e) => return Err(e.into()),
                }
                remember(true, false);
                Ok(())
            }
            Action::StayRefused => {
                remember(false, true);
                Ok(())
            }
            Action::LeaveFinished => {
                // A finished pod is never started again (e.g. after a restart).
                remember(false, false);
                Ok(())
            }
            Action::Create => {
                let pod = cached.to_pod()?;
                // Remembered before the call: if the pod vanishes now, whatever the call may have
                // created remotely is deleted.
                remember(false, false);
                match self.provider.create_pod(&pod).await {
                    Ok(()) => {
                        tracing::info!(pod = %key, uid = uid(&pod), "created remote pod");
                        remember(true, false);
                        Ok(())
                    }
                    Err(ProviderError::InvalidInput(msg)) => {
                        tracing::warn!(pod = %key, reason = %msg, "provider refused the pod");
                        remember(false, true);
                        self.warn(&pod, "ProviderCreateFailed", "CreatePod", &msg)
                            .await;
                        self.mark_refused(&pod, &msg).await;
                        Ok(())
                    }
                    Err(ProviderError::PodFailed { reason, message }) => {
                        tracing::warn!(pod = %key, %reason, %message, "provider failed the pod");
                        remember(false, true);
                        self.warn(&pod, &reason, "CreatePod", &message).await;
                        self.mark_failed(&pod, &reason, &message).await;
                        Ok(())
                    }
                    Err(e) => {
                        let related = match &e {
                            ProviderError::Waiting { object, .. } => Some((**object).clone()),
                            _ => None,
                        };
                        self.warn_related(
                            &pod,
                            "ProviderCreateFailed",
                            "CreatePod",
                            &e.to_string(),
                            related,
                        )
                        .await;
                        Err(e.into())
                    }
                }
            }
        }
    }

    /// Takes a terminating pod's deletion one step further (see the termination protocol on
    /// [`Provider`] and [`decide::terminate`]): ask the provider to delete the remote pod, then
    /// finish the pod in the cluster once the remote pod is gone or the deadline has passed,
    /// else queue a recheck at the deadline.
    async fn terminate(&self, key: &PodKey, pod: &CachedPod) -> Result<()> {
        let pod_uid = uid(pod);
        let known = lock(&self.deleting).get(pod_uid).copied();
        let deadline = pod
            .metadata
            .deletion_timestamp
            .as_ref()
            .map(|t| t.0 + TERMINATION_SLACK);
        let left = deadline
            .and_then(|d| Duration::try_from(d.duration_since((self.clock)())).ok())
            .unwrap_or(Duration::ZERO);
        let grace = pod.metadata.deletion_grace_period_seconds;
        let step = decide::terminate(decide::Termination {
            asked: known.map(|d| d.grace),
            grace,
            finishing: known.is_some_and(|d| d.finishing),
            remote_gone: known.is_some_and(|d| d.gone),
            left,
        });
        if step.ask_provider {
            self.delete_remote(&pod.to_pod()?).await?;
            let round = self.rounds.load(Ordering::SeqCst);
            let mut deleting = lock(&self.deleting);
            let entry = deleting.entry(pod_uid.to_owned()).or_insert(Deleting {
                asked_in_round: round,
                ..Deleting::default()
            });
            entry.grace = grace;
            tracing::info!(pod = %key, ?grace, "asked the provider to delete the remote pod");
        }
        match step.then {
            Then::Finish => self.finish(key, pod).await,
            Then::Recheck(after) => {
                let mut deleting = lock(&self.deleting);
                if let Some(entry) = deleting.get_mut(pod_uid)
                    && entry.recheck_at != deadline
                {
                    entry.recheck_at = deadline;
                    self.queue.add_after(key.clone(), after);
                }
                Ok(())
            }
        }
    }

    /// Finishes a terminating pod's deletion in the cluster (grace period 0, its UID as the
    /// precondition), which is the kubelet's part of deleting a pod.
    async fn finish(&self, key: &PodKey, pod: &CachedPod) -> Result<()> {
        lock(&self.deleting)
            .entry(uid(pod).to_owned())
            .or_default()
            .finishing = true;
        let params = DeleteParams {
            grace_period_seconds: Some(0),
            preconditions: Some(Preconditions {
                uid: pod.metadata.uid.clone(),
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        match self
            .pods_in(&key.namespace)
            .delete(&key.name, &params)
            .await
        {
            Ok(_) => tracing::info!(pod = %key, "pod deleted"),
            // Gone already, or the name now holds another pod (UID precondition failed).
            Err(e) if matches!(api_code(&e), Some(404 | 409)) => {}
            Err(e) => return Err(Error::kube(format!("delete pod {key}"), e)),
        }
        self.forget(key, pod);
        Ok(())
    }

    async fn delete_remote(&self, pod: &Pod) -> Result<()> {
        match self.provider.delete_pod(pod).await {
            Ok(()) | Err(ProviderError::NotFound(_)) => Ok(()),
            Err(ProviderError::InvalidInput(msg)) => {
                // Such a pod could never have been created remotely.
                tracing::debug!(pod = %PodKey::of(pod), reason = %msg, "provider: nothing to delete");
                Ok(())
            }
            Err(e) => {
                if e.is_retryable() {
                    self.warn(pod, "ProviderDeleteFailed", "DeletePod", &e.to_string())
                        .await;
                }
                Err(e.into())
            }
        }
    }

    async fn warn(&self, pod: &Pod, reason: &str, action: &str, note: &str) {
        self.warn_related(pod, reason, action, note, None).await;
    }

    /// [`Self::warn`] naming a related object (the recorder keeps one event per pod, reason,
    /// action and related object, counting repeats).
    async fn warn_related(
        &self,
        pod: &Pod,
        reason: &str,
        action: &str,
        note: &str,
        related: Option<k8s_openapi::api::core::v1::ObjectReference>,
    ) {
        if pod.metadata.creation_timestamp.is_none() {
            return; // a stub, not an object of the cluster
        }
        let event = KubeEvent {
            type_: EventType::Warning,
            reason: reason.into(),
            note: Some(note.chars().take(1000).collect()),
            action: action.into(),
            secondary: related,
        };
        if let Err(e) = self.recorder.publish(&event, &pod.object_ref(&())).await {
            tracing::debug!(pod = %PodKey::of(pod), error = %e, "could not publish event");
        }
    }

    /// Note on the pod's status why the provider refused it (the pod stays `Pending`).
    async fn mark_refused(&self, pod: &Pod, message: &str) {
        let key = PodKey::of(pod);
        let patch = json!({ "status": { "reason": "ProviderFailed", "message": message } });
        if let Err(e) = self
            .pods_in(&key.namespace)
            .patch_status(&key.name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            tracing::warn!(pod = %key, error = %e, "could not note the refusal on the pod status");
        }
    }

    /// Report the pod `Failed` with the provider's reason (its controller then replaces it).
    async fn mark_failed(&self, pod: &Pod, reason: &str, message: &str) {
        let key = PodKey::of(pod);
        let patch =
            json!({ "status": { "phase": "Failed", "reason": reason, "message": message } });
        if let Err(e) = self
            .pods_in(&key.namespace)
            .patch_status(&key.name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            tracing::warn!(pod = %key, error = %e, "could not mark the pod Failed");
        }
    }

    /// One round of status sync: one bulk call to the provider, a patch per changed pod (up to
    /// [`STATUS_PATCHES_IN_FLIGHT`] at once).
    pub(crate) async fn sync_statuses(&self) {
        // NB: numbered before the provider is asked: a delete accepted before this number was
        // taken is older than the answer, so the answer lacking its pod means the pod is gone.
        let round = self.rounds.fetch_add(1, Ordering::SeqCst) + 1;
        let statuses = match self.provider.pod_statuses().await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "could not read pod statuses from the provider");
                return;
            }
        };
        let pods = self.store.state();
        let mut patches = Vec::new();
        for pod in &pods {
            let key = PodKey::of(&**pod);
            let pod_uid = uid(&**pod);
            let remote = statuses.get(pod_uid);
            let remote_status = remote.and_then(|r| r.status.as_ref());
            let deleting = lock(&self.deleting).get(pod_uid).copied();
            let facts = decide::StatusFacts {
                terminating: pod.metadata.deletion_timestamp.is_some(),
                on_provider: remote.is_some(),
                status_known: remote_status.is_some_and(|s| *s != PodStatus::default()),
                created: lock(&self.seen)
                    .get(&key)
                    .is_some_and(|s| s.created && uid(&*s.pod) == pod_uid),
                terminal: is_terminal(pod.status.as_ref()),
                misses_before: lock(&self.misses).get(pod_uid).copied().unwrap_or(0),
                awaiting_removal: deleting
                    .is_some_and(|d| d.asked_in_round < round && !d.gone && !d.finishing),
            };
            let mut annotations = BTreeMap::new();
            let desired = match (decide::status_step(facts, LOST_AFTER_MISSES), remote) {
                (StatusStep::FromProvider, Some(remote)) => {
                    lock(&self.misses).remove(pod_uid);
                    annotations =
                        missing_annotations(pod.metadata.annotations.as_ref(), &remote.annotations);
                    merge_status(
                        pod.status.as_ref(),
                        remote_status.unwrap_or(&PodStatus::default()),
                    )
                }
                (StatusStep::Present, _) => {
                    lock(&self.misses).remove(pod_uid);
                    continue;
                }
                (StatusStep::RemoteGone, _) => {
                    tracing::info!(pod = %key, "remote pod gone; finishing the pod's deletion");
                    if let Some(d) = lock(&self.deleting).get_mut(pod_uid) {
                        d.gone = true;
                    }
                    self.queue.add(key);
                    continue;
                }
                (StatusStep::Missed { lost }, _) => {
                    *lock(&self.misses).entry(pod_uid.to_string()).or_insert(0) += 1;
                    if !lost {
                        continue;
                    }
                    tracing::warn!(pod = %key, "remote pod disappeared; marking the pod Failed");
                    lost_status(
                        pod.status.as_ref(),
                        "the pod was not found on the provider and may have been deleted there",
                        &(self.clock)(),
                    )
                }
                _ => continue,
            };
            if !status_changed(pod.status.as_ref(), &desired) && annotations.is_empty() {
                continue;
            }
            let sent = Sent {
                status: desired,
                annotations,
            };
            if lock(&self.patched)
                .get(pod_uid)
                .is_some_and(|last| last.covers(&sent))
            {
                continue; // already sent; the cache has not caught up yet
            }
            patches.push((pod, sent));
        }
        futures::stream::iter(patches)
            .for_each_concurrent(STATUS_PATCHES_IN_FLIGHT, |(pod, sent)| {
                self.patch_status(pod, sent)
            })
            .await;
        // Drop bookkeeping of pods that left the node.
        let live: HashSet<&str> = pods.iter().map(|p| uid(&**p)).collect();
        lock(&self.patched).retain(|u, _| live.contains(u.as_str()));
        lock(&self.misses).retain(|u, _| live.contains(u.as_str()));
        lock(&self.deleting).retain(|u, _| live.contains(u.as_str()));
    }

    async fn patch_status(&self, pod: &CachedPod, sent: Sent) {
        let key = PodKey::of(pod);
        let mut patch = status_patch(&sent.status, &sent.annotations);
        // Optimistic concurrency: a patch computed from a stale pod is refused, and the next
        // round recomputes it from the fresh one.
        patch["metadata"]["resourceVersion"] = json!(pod.resource_version());
        match self
            .pods_in(&key.namespace)
            .patch_status(&key.name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => {
                tracing::debug!(pod = %key, phase = ?sent.status.phase, "patched pod status");
                lock(&self.patched).insert(uid(pod).to_string(), sent);
            }
            Err(e) if matches!(api_code(&e), Some(404 | 409)) => {
                tracing::debug!(pod = %key, error = %e, "status patch skipped");
            }
            Err(e) => tracing::warn!(pod = %key, error = %e, "could not patch pod status"),
        }
    }

    /// Delete remote pods whose cluster pod is really gone; returns how many were deleted.
    ///
    /// Runs only after the first full list (the caller waits for [`PodController::ready`]), and
    /// asks the API server itself before deleting anything the cache does not know: a slow or
    /// partial cache must never cost a running pod.
    pub(crate) async fn sweep_orphans(&self) -> Result<usize> {
        let remote = self.provider.list_pods().await?;
        let mut deleted = 0usize;
        for r in remote {
            let key = PodKey {
                namespace: r.namespace.clone(),
                name: r.name.clone(),
            };
            // Not one of ours, or unreadable: never delete what we cannot name.
            let named = !(r.uid.is_empty() || r.name.is_empty() || r.namespace.is_empty());
            let cached = named.then(|| self.store.get(&key.object_ref())).flatten();
            if decide::orphan_by_cache(named, cached.as_deref().map(uid), &r.uid) == Orphan::Keep {
                continue;
            }
            let answer = self.pods_in(&r.namespace).get_opt(&r.name).await;
            if let Err(e) = &answer {
                tracing::warn!(pod = %key, error = %e, "orphan check failed; keeping the remote pod");
            }
            let holder = answer.as_ref().map(|p| p.as_ref().map(uid)).map_err(|_| ());
            if decide::orphan_by_api_server(holder, &r.uid) != Orphan::Delete {
                continue;
            }
            tracing::info!(pod = %key, uid = %r.uid, "deleting orphaned remote pod: its cluster pod is gone");
            match self.provider.delete_pod(&r.to_stub_pod()).await {
                Ok(()) | Err(ProviderError::NotFound(_)) => deleted += 1,
                Err(e) => {
                    tracing::warn!(pod = %key, error = %e, "could not delete orphaned remote pod")
                }
            }
        }
        if deleted > 0 {
            tracing::info!(deleted, "orphan sweep done");
        }
        Ok(deleted)
    }
}

#[cfg(test)]
#[path = "pods_scripted.rs"]
mod scripted;

#[cfg(test)]
mod tests {
    use super::*;

    fn sent(phase: &str, annotations: &[(&str, &str)]) -> Sent {
        Sent {
            status: PodStatus {
                phase: Some(phase.into()),
                ..PodStatus::default()
            },
            annotations: annotations
                .iter()
                .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
                .collect(),
        }
    }

    #[test]
    fn a_sent_patch_covers_the_next_only_when_it_said_its_status_and_every_annotation() {
        let flavour = [("size", "1_2")];
        let sent_running = sent("Running", &flavour);
        assert!(sent_running.covers(&sent("Running", &flavour)));
        assert!(
            sent_running.covers(&sent("Running", &[])),
            "fewer annotations: said already"
        );
        assert!(
            !sent_running.covers(&sent("Succeeded", &flavour)),
            "a new status"
        );
        assert!(
            !sent("Running", &[]).covers(&sent("Running", &flavour)),
            "an annotation not sent yet"
        );
        assert!(
            !sent_running.covers(&sent("Running", &[("size", "2_4")])),
            "an annotation's new value"
        );
    }
}
