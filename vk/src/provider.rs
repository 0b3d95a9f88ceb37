//! The [`Provider`] trait: what a backend implements to run a node's pods somewhere else.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;

use k8s_openapi::api::core::v1::{Pod, PodStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::{ProviderError, ProviderResult};

/// The pods a provider runs, keyed by the **cluster** pod's UID (the answer of
/// [`Provider::pod_statuses`]).
pub type PodStatuses = HashMap<String, RemotePod>;

/// A pod as the provider sees it on its side, named by the cluster pod it stands for.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RemotePod {
    /// Namespace of the cluster pod.
    pub namespace: String,
    /// Name of the cluster pod.
    pub name: String,
    /// UID of the cluster pod (the identity that matters: a pod recreated under the same name
    /// has a new UID, and the remote pod of the old one is then an orphan).
    pub uid: String,
    /// The remote status translated to a cluster pod status, if the provider knows one.
    pub status: Option<PodStatus>,
    /// Annotations the provider keeps on the cluster pod, e.g. what the backend made of the
    /// pod's request (the engine's flavour, rounded up). The status round writes them in the
    /// same patch as the pod's status (no write of their own), whenever the cluster pod lacks
    /// one or carries another value; other annotations are left alone. Empty: none.
    pub annotations: BTreeMap<String, String>,
}

impl RemotePod {
    /// A cluster pod carrying only this pod's namespace, name and UID.
    ///
    /// The controller hands such a stub to [`Provider::delete_pod`] when the cluster pod is
    /// gone and its last full state is unknown (the orphan sweep after a restart).
    pub fn to_stub_pod(&self) -> Pod {
        Pod {
            metadata: ObjectMeta {
                namespace: Some(self.namespace.clone()),
                name: Some(self.name.clone()),
                uid: Some(self.uid.clone()),
                ..ObjectMeta::default()
            },
            ..Pod::default()
        }
    }
}

/// Options of a [`Provider::logs`] call: the query of the kubelet's `/containerLogs` (see
/// [`crate::kubelet`]), already validated.
///
/// A provider honours what its backend can do and says so in its docs; the kubelet API applies
/// [`limit_bytes`](Self::limit_bytes) itself and answers [`follow`](Self::follow) with the
/// logs as of now, so providers may ignore those two.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LogOptions {
    /// Only the last this many lines (≥ 0).
    pub tail_lines: Option<i64>,
    /// The previous (terminated) instance of the container.
    pub previous: bool,
    /// Prefix each line with its timestamp.
    pub timestamps: bool,
    /// The caller asked to follow the log (`kubectl logs -f`).
    pub follow: bool,
    /// At most this many bytes (≥ 1); the end may cut a line.
    pub limit_bytes: Option<i64>,
    /// Only lines of the last this many seconds (≥ 1; never set with `since_time`).
    pub since_seconds: Option<i64>,
    /// Only lines from this time on (never set with `since_seconds`).
    pub since_time: Option<k8s_openapi::jiff::Timestamp>,
}

/// A backend that runs the pods bound to the virtual node.
///
/// Contract shared by every method:
///
/// - The pod handed in is the cluster's object as last seen; it is borrowed and **must not be
///   mutated** (clone what you need to change).
/// - Errors are a [`ProviderError`], whose kind says what the controller does:
///   [`ProviderError::NotFound`] (the remote object does not exist),
///   [`ProviderError::InvalidInput`] (this pod can never run here as it is: reported on the
///   pod, not retried until the pod changes), [`ProviderError::PodFailed`] (the remote side
///   refused it for a reason outside the pod, e.g. no capacity: the pod is reported `Failed`),
///   [`ProviderError::Transient`] (retried with backoff).
/// - Calls for different pods may run concurrently; calls for the same pod never overlap.
/// - Pods are identified by their cluster UID: a pod deleted and recreated under the same
///   namespace/name is a different pod.
/// - No call should take long: a worker waits for each one, and there are
///   [`Config::workers`](crate::Config::workers) of them for the whole node. Work that lasts
///   (a pod starting, a grace period running out) happens on the backend or in a task the
///   provider spawns, and shows in later [`pod_statuses`](Provider::pod_statuses) answers.
///
/// Only [`create_pod`](Provider::create_pod), [`delete_pod`](Provider::delete_pod) and
/// [`list_pods`](Provider::list_pods) are required; the rest have defaults.
///
/// # Deleting a pod: the termination protocol
///
/// A cluster pod is deleted in two steps, as a kubelet deletes one:
///
/// 1. Someone deletes it: the API server sets its `deletionTimestamp` (now plus the grace
///    period) and `deletionGracePeriodSeconds`, and the pod shows `Terminating`. The controller
///    calls [`delete_pod`](Provider::delete_pod) once for that UID (again only when someone
///    shortens the grace period, e.g. `kubectl delete --grace-period=1` on a terminating pod).
///    `delete_pod` **starts** the remote deletion and returns without waiting for it: the
///    remote containers are asked to stop (SIGTERM or the backend's equivalent), and whatever
///    still runs when the grace period (`deletionGracePeriodSeconds`) ends is killed (SIGKILL,
///    as a kubelet does) and the remote pod removed. The provider (or its backend) owns that
///    countdown; the controller does not call again at its end.
/// 2. Meanwhile the cluster pod stays `Terminating`, and every status round keeps patching the
///    provider's status onto it (containers running, then terminated with their exit codes), so
///    the cluster shows the real progress. The controller finishes the deletion (deletes the
///    cluster pod with grace period 0 and its UID as a precondition) as soon as either
///    - a [`pod_statuses`](Provider::pod_statuses) answer asked for after `delete_pod`
///      returned no longer has the pod's UID: the remote pod is gone; or
///    - the deletion deadline passes: the `deletionTimestamp` plus
///      [`TERMINATION_SLACK`](crate::TERMINATION_SLACK), so that a backend that lost track of
///      a pod cannot hold it `Terminating` for ever.
///
/// So a provider must keep reporting a pod that is being deleted (in
/// [`list_pods`](Provider::list_pods) and [`pod_statuses`](Provider::pod_statuses)) until it
/// is really gone, and stop reporting it once it is.
///
/// `delete_pod` is also called without a grace period on the pod: for a pod that vanished from
/// the cluster (force-deleted, or deleted while the controller was down), for the old pod of a
/// name a new pod took, and for orphans (with a stub, [`RemotePod::to_stub_pod`]). Then the
/// provider's default grace period applies, and a deletion already under way keeps its own: it
/// must not be cut short.
///
/// # Cancellation
///
/// Any future a provider method returns may be dropped before it completes, at any `.await`:
///
/// - at shutdown: when [`run`](crate::run)'s `shutdown` future completes (a signal), or when
///   the caller stops `run` because it lost leadership ([`crate::leader`]), every loop of the
///   virtual kubelet is dropped with its calls in flight;
/// - a [`logs`](Provider::logs) call, when the client that asked goes away.
///
/// The controller never drops a call otherwise (there is no per-call timeout: a provider whose
/// backend can hang bounds its own calls and answers [`ProviderError::Transient`]). What a
/// provider must tolerate, since a dropped call may have had all, some or none of its remote
/// effect:
///
/// - **being asked again**: the next leader (or the restarted process) calls
///   [`create_pod`](Provider::create_pod) again for every live pod and
///   [`delete_pod`](Provider::delete_pod) again for every terminating one, and the orphan sweep
///   deletes remote pods whose cluster pod is gone; hence the idempotence asked of both;
/// - **no cleanup step**: state kept in memory must not need the rest of the call to be
///   consistent again (a "creating" mark set before an `.await` and cleared after it is never
///   cleared); guards released on drop are fine;
/// - **work that must outlive the call** (the kill at a grace period's end) belongs to the
///   backend or to a task the provider spawns, never to the call's future. vk does not stop
///   such tasks at shutdown: a provider that owns processes stops them itself (the remote
///   pods of a virtual kubelet normally outlive it, which is why shutdown deletes nothing).
pub trait Provider: Send + Sync + 'static {
    /// Start running `pod` on the provider's side.
    ///
    /// Must be idempotent for the same pod UID: after a restart the controller calls it again for
    /// every live pod of the node, and a remote pod that already stands for this UID is success.
    /// It is not called for pods in a terminal phase (`Succeeded`, `Failed`).
    fn create_pod(&self, pod: &Pod) -> impl Future<Output = ProviderResult<()>> + Send;

    /// The cluster pod's spec changed (only images and a few fields are mutable on a pod).
    ///
    /// Called only for pods that were created. The default does nothing.
    fn update_pod(&self, pod: &Pod) -> impl Future<Output = ProviderResult<()>> + Send {
        let _ = pod;
        async { Ok(()) }
    }

    /// Start stopping and removing the remote pod standing for `pod`, and return (see
    /// [Deleting a pod](Provider#deleting-a-pod-the-termination-protocol)).
    ///
    /// The grace period is the pod's `deletionGracePeriodSeconds` when set, else the provider's
    /// default (a kubelet's is the spec's `terminationGracePeriodSeconds`): SIGTERM (or the
    /// backend's equivalent) now, a kill at its end. May be called more than once for the same pod (a shorter grace period then
    /// shortens the one running; a missing or longer one leaves it as it is), and for pods that
    /// were never created: a remote pod that does not exist is success (return `Ok` or
    /// [`ProviderError::NotFound`]). The pod may be a stub carrying only namespace, name and
    /// UID (see [`RemotePod::to_stub_pod`]); a remote pod of that name standing for **another**
    /// UID must be left alone.
    fn delete_pod(&self, pod: &Pod) -> impl Future<Output = ProviderResult<()>> + Send;

    /// Every pod the provider runs for this node, with its status if known, including pods
    /// being deleted until they are gone.
    ///
    /// Used after the first full list of cluster pods to find orphans (remote pods whose cluster
    /// pod is gone), and by the default [`pod_statuses`](Provider::pod_statuses).
    fn list_pods(&self) -> impl Future<Output = ProviderResult<Vec<RemotePod>>> + Send;

    /// The current remote state (status and [annotations](RemotePod::annotations)) of all pods
    /// the provider runs, keyed by cluster pod UID.
    ///
    /// Called every status interval; the controller patches a cluster pod's status only when it
    /// changed. One bulk call, never one per pod. Every pod the provider still has must be in
    /// the answer, pods being deleted included (their status then shows the deletion's progress):
    /// a created pod missing from it is counted lost (marked `Failed` after a few rounds), a pod
    /// being deleted is taken as gone (its cluster pod is then finished). A pod whose status is
    /// not known is answered with `status: None` or an empty [`PodStatus`] (nothing is written
    /// for it). The default keys [`list_pods`](Provider::list_pods)' answer by UID.
    fn pod_statuses(&self) -> impl Future<Output = ProviderResult<PodStatuses>> + Send {
        async {
            Ok(self
                .list_pods()
                .await?
                .into_iter()
                .map(|p| (p.uid.clone(), p))
                .collect())
        }
    }

    /// The logs of one container of a pod of this node (`kubectl logs`, through the kubelet API
    /// of [`crate::kubelet`]). Optional; the default is [`ProviderError::NotImplemented`], which
    /// the kubelet API answers with 501.
    ///
    /// `container` is one of the pod's containers (checked before the call). Errors: a remote
    /// pod or container that does not exist is [`ProviderError::NotFound`] (404); a container
    /// that cannot have logs as asked (still waiting to start, no previous instance) is
    /// [`ProviderError::InvalidInput`] (400, as a kubelet answers).
    fn logs(
        &self,
        pod: &Pod,
        container: &str,
        options: &LogOptions,
    ) -> impl Future<Output = ProviderResult<String>> + Send {
        let _ = (pod, container, options);
        async { Err(ProviderError::NotImplemented("logs")) }
    }

    /// Whether the backend answers: the node's health.
    ///
    /// Called every [`Config::ping_interval`](crate::Config::ping_interval). An error turns the
    /// node's `Ready` condition `False` with reason [`PROVIDER_UNREACHABLE`](crate::PROVIDER_UNREACHABLE)
    /// and the error as its message (so the scheduler stops placing pods here and
    /// `kubectl get nodes` shows why) until a ping succeeds again; pods already on the node are
    /// left as they are. Keep it cheap: one small request, never a full list. The default
    /// always succeeds.
    fn ping(&self) -> impl Future<Output = ProviderResult<()>> + Send {
        async { Ok(()) }
    }
}

/// A shared provider is a provider: the caller keeps a handle to drive its own background
/// work (e.g. watching what the provider mirrors) while [`crate::run`] owns the other.
impl<P: Provider> Provider for std::sync::Arc<P> {
    fn create_pod(&self, pod: &Pod) -> impl Future<Output = ProviderResult<()>> + Send {
        P::create_pod(self, pod)
    }

    fn update_pod(&self, pod: &Pod) -> impl Future<Output = ProviderResult<()>> + Send {
        P::update_pod(self, pod)
    }

    fn delete_pod(&self, pod: &Pod) -> impl Future<Output = ProviderResult<()>> + Send {
        P::delete_pod(self, pod)
    }

    fn list_pods(&self) -> impl Future<Output = ProviderResult<Vec<RemotePod>>> + Send {
        P::list_pods(self)
    }

    fn pod_statuses(&self) -> impl Future<Output = ProviderResult<PodStatuses>> + Send {
        P::pod_statuses(self)
    }

    fn logs(
        &self,
        pod: &Pod,
        container: &str,
        options: &LogOptions,
    ) -> impl Future<Output = ProviderResult<String>> + Send {
        P::logs(self, pod, container, options)
    }

    fn ping(&self) -> impl Future<Output = ProviderResult<()>> + Send {
        P::ping(self)
    }
}
