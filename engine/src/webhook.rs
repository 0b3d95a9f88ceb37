//! The admission webhook: a thin HTTP layer over the pure decision of `burst-rules`.
//!
//! The handler gathers the facts the decision needs (the pod's owner chain and its labels, the
//! cluster's StorageClasses and PVCs, the installed Volcano's version), calls
//! `burst_rules::decide::decide`, and turns the decision into an admission response: a JSON
//! patch, a refusal, or an allow with a Warning event saying why the pod was kept local (the
//! user asked for CCI and does not get it; none for a dry run, which must have no side effects).
//!
//! **Volcano** (BEHAVIOR.md §2, INST-05): Volcano `<= 1.17.10` cannot place pods with
//! cloud-storage volumes on CCI. The version is read only for a pod that names the scheduler
//! `volcano` and has such a volume: from the image tag of the Deployment `volcano-scheduler`
//! in `volcano-system`, else in `kube-system` (where Volcano's charts and CCE's add-on put it;
//! `…/vc-scheduler:v1.17.10` is 1.17.10). No such Deployment, or a tag that is no version, is
//! "no Volcano restriction". The answer is kept for [`VOLCANO_CACHE_TTL`] so admission stays
//! one API call short; a Volcano upgrade is seen within that time. (A cluster that makes
//! Volcano its *default* scheduler is not discovered: pods must name it.)
//!
//! `POST /validate` checks Services (CREATE and UPDATE) with `burst_rules::decide::check_service`.
//! A Service "selects burst pods" when its selector matches, in its namespace, a live pod bound
//! to the virtual node or tolerating the virtual node's taint by name (the mark the mutating
//! webhook leaves on every pod it lets burst). A Service without a selector selects nothing.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use burst_rules::release::{Gate, Release};

use crate::breakage::{self, Breakage};
use futures::StreamExt as _;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{Event, ObjectReference, PersistentVolumeClaim, Pod, Service};
use k8s_openapi::api::storage::v1::StorageClass;
use kube::api::{Api, DynamicObject, ObjectMeta, PartialObjectMeta, PostParams};
use kube::core::admission::{AdmissionRequest, AdmissionResponse, AdmissionReview, Operation};
use kube::runtime::reflector::{self, ObjectRef, Store, reflector};
use kube::runtime::{WatchStreamExt as _, watcher};

/// Where Volcano's scheduler is looked for, in order: (namespace, Deployment name).
pub const VOLCANO_SCHEDULER_DEPLOYMENTS: &[(&str, &str)] = &[
    ("volcano-system", "volcano-scheduler"),
    ("kube-system", "volcano-scheduler"),
];
/// How long a discovered Volcano version (or its absence) is trusted before it is read again.
pub const VOLCANO_CACHE_TTL: Duration = Duration::from_secs(10);

/// How long the webhook may take to read what it decides on (owners, storage, Volcano) before it
/// answers with a refusal: well below the `timeoutSeconds` (10) of the add-on's webhook
/// configurations, so no admission waits on it longer than this (BEHAVIOR.md §13).
pub const DECIDE_DEADLINE: Duration = Duration::from_secs(5);

/// What every request shares.
#[derive(Clone)]
pub struct WebhookState {
    client: kube::Client,
    release: Release,
    volcano: Arc<Mutex<VolcanoCache>>,
    owners: Option<OwnerCache>,
}

impl WebhookState {
    /// State for a webhook serving `release`; every owner is read with a GET.
    pub fn new(client: kube::Client, release: Release) -> Self {
        Self {
            client,
            release,
            volcano: Arc::default(),
            owners: None,
        }
    }

    /// Owners found in `cache` are not read again (see [`OwnerCache`]).
    #[must_use]
    pub fn with_owner_cache(mut self, cache: OwnerCache) -> Self {
        self.owners = Some(cache);
        self
    }
}

/// The owners the webhook reads for nearly every pod: ReplicaSets and Deployments, metadata
/// only, kept current by watches.
///
/// NB: without it, a Deployment of 1000 replicas made the API server answer the same
/// ReplicaSet and Deployment 1000 times each, two GETs in every admission. On 2 cores, where
/// the API server is what bounds a burst, an admission took 263 ms on average during a burst of
/// 300 pods (26 ms alone). A miss (an owner created a moment ago, whose watch event has not
/// arrived yet, or before the first list) falls back to the GET, so no pod is judged without its
/// owner. A label changed on a Deployment reaches the cache with its watch event, as it reaches
/// the controllers that would create pods from it.
#[derive(Clone)]
pub struct OwnerCache {
    replica_sets: Store<PartialObjectMeta<ReplicaSet>>,
    deployments: Store<PartialObjectMeta<Deployment>>,
}

impl OwnerCache {
    /// The cache and the watches that fill it (spawn the future: it runs for ever, retrying
    /// with backoff).
    pub fn start(client: &kube::Client) -> (Self, impl Future<Output = ()> + Send + 'static) {
        let (replica_sets, rs) = watched::<ReplicaSet>(client.clone());
        let (deployments, d) = watched::<Deployment>(client.clone());
        let run = async move {
            futures::join!(
                keep_watching(rs, "ReplicaSets"),
                keep_watching(d, "Deployments")
            );
        };
        (
            Self {
                replica_sets,
                deployments,
            },
            run,
        )
    }

    /// The cached metadata of the owner `kind` `namespace/name` (apps/v1 ReplicaSets and
    /// Deployments; `None` for other kinds and for what is not cached).
    fn get(
        &self,
        api_version: &str,
        kind: &str,
        namespace: &str,
        name: &str,
    ) -> Option<ObjectMeta> {
        match (api_version, kind) {
            ("apps/v1", "ReplicaSet") => cached(&self.replica_sets, namespace, name),
            ("apps/v1", "Deployment") => cached(&self.deployments, namespace, name),
            _ => None,
        }
    }
}

/// The installed Volcano's version as last read, and when.
#[derive(Debug, Default)]
struct VolcanoCache {
    read: Option<(Instant, Option<Release>)>,
}

impl VolcanoCache {
    /// The version read less than [`VOLCANO_CACHE_TTL`] before `now`, if any (`Some(None)`: no
    /// Volcano then).
    fn fresh(&self, now: Instant) -> Option<Option<Release>> {
        self.read
            .filter(|(at, _)| now.saturating_duration_since(*at) < VOLCANO_CACHE_TTL)
            .map(|(_, version)| version)
    }

    fn store(&mut self, now: Instant, version: Option<Release>) {
        self.read = Some((now, version));
    }
}

/// The Volcano release a `volcano-scheduler` Deployment runs: the tag of its scheduler
/// container's image (the container whose image names `vc-scheduler` or `volcano`, else the
/// first), e.g. `volcanosh/vc-scheduler:v1.17.10` → 1.17.10. A suffix after the version
/// (`v1.12.1-hw.2`) and a digest are ignored; no tag, or one that is no version (`latest`),
/// is `None`.
pub fn volcano_version_of(deployment: &Deployment) -> Option<Release> {
    let containers = &deployment.spec.as_ref()?.template.spec.as_ref()?.containers;
    let image = |c: &k8s_openapi::api::core::v1::Container| c.image.clone().unwrap_or_default();
    let repository = |image: &str| {
        let last = image.rsplit('/').next().unwrap_or(image);
        last.split([':', '@']).next().unwrap_or(last).to_owned()
    };
    let scheduler = containers
        .iter()
        .find(|c| {
            let name = repository(&image(c));
            name.contains("vc-scheduler") || name.contains("volcano")
        })
        .or_else(|| containers.first())?;
    let image = image(scheduler);
    let last = image.rsplit('/').next().unwrap_or(&image);
    let without_digest = last.split('@').next().unwrap_or(last);
    let (_, tag) = without_digest.rsplit_once(':')?;
    let version = tag.split(['-', '+']).next().unwrap_or(tag);
    version.parse().ok()
}

/// The webhook's routes: `POST /mutate` (pods), `POST /validate` (Services), `GET /healthz`.
pub fn router(state: WebhookState) -> Router {
    Router::new()
        .route("/mutate", post(mutate))
        .route("/validate", post(validate))
        .route("/healthz", get(|| async { "ok" }))
        .with_state(Arc::new(state))
}

/// `router`, whose answers ask their client to close the connection once `draining` is set.
///
/// What the webhook does between SIGTERM and its stop: it keeps answering while its Service stops
/// routing to it, but leaves no kept-alive connection idle for the final close to race (the API
/// server would see its webhook call reset, and refuse the pod being admitted).
pub fn drain_on(router: Router, draining: Arc<AtomicBool>) -> Router {
    router.layer(axum::middleware::map_response(
        move |mut response: axum::response::Response| {
            let close = draining.load(Ordering::Relaxed);
            async move {
                if close {
                    response.headers_mut().insert(
                        axum::http::header::CONNECTION,
                        axum::http::HeaderValue::from_static("close"),
                    );
                }
                response
            }
        },
    ))
}

async fn mutate(
    State(state): State<Arc<WebhookState>>,
    Json(review): Json<AdmissionReview<Pod>>,
) -> Json<AdmissionReview<DynamicObject>> {
    let request: AdmissionRequest<Pod> = match review.try_into() {
        Ok(r) => r,
        Err(e) => return Json(AdmissionResponse::invalid(e.to_string()).into_review()),
    };
    let response = AdmissionResponse::from(&request);
    let (Operation::Create, Some(pod)) = (&request.operation, request.object.as_ref()) else {
        return Json(response.into_review());
    };
    let namespace = request
        .namespace
        .clone()
        .unwrap_or_else(|| "default".into());
    Json(
        admit(&state, &namespace, pod, request.dry_run, response)
            .await
            .into_review(),
    )
}

async fn admit(
    state: &WebhookState,
    namespace: &str,
    pod: &Pod,
    dry_run: bool,
    response: AdmissionResponse,
) -> AdmissionResponse {
    let facts = match tokio::time::timeout(DECIDE_DEADLINE, gather(state, namespace, pod)).await {
        Ok(Ok(f)) => f,
        // A webhook that cannot read the cluster must not let a pod meant for CCI through
        // unmutated, nor silently keep it local: refuse, and the controller retries.
        Ok(Err(e)) => {
            return response.deny(format!(
                "bursting webhook cannot read the cluster to decide: {e}"
            ));
        }
        // Its own answer, before the API server's `timeoutSeconds` gives up on it: the pod's
        // creator learns why at once instead of waiting out the configuration's timeout.
        Err(_) => {
            return response.deny(format!(
                "bursting webhook cannot read the cluster to decide: no answer within {} s",
                DECIDE_DEADLINE.as_secs()
            ));
        }
    };
    let mut input = burst_rules::decide::AdmissionInput {
        pod: pod.clone(),
        owners: facts.owners,
        release: breakage::judged_at(state.release, Gate::DownwardApiAndProjected),
        cluster: facts.cluster,
    };
    misread(&mut input);
    if let Some(message) = misjudged(&input.pod) {
        return response.deny(message);
    }
    let name = pod
        .metadata
        .name
        .clone()
        .or_else(|| pod.metadata.generate_name.clone())
        .unwrap_or_default();
    match burst_rules::decide::decide(&input) {
        burst_rules::decide::Decision::Allow => response,
        burst_rules::decide::Decision::Mutate { patch, .. } => {
            match serde_json::from_value::<json_patch::Patch>(misapply(patch)) {
                Ok(patch) => response
                    .with_patch(patch)
                    .unwrap_or_else(|e| AdmissionResponse::invalid(e.to_string())),
                Err(e) => response.deny(format!("bursting webhook built an invalid patch: {e}")),
            }
        }
        burst_rules::decide::Decision::KeepLocal { reason }
            if breakage::is(Breakage::KeptLocalRefused) =>
        {
            response.deny(reason)
        }
        burst_rules::decide::Decision::KeepLocal { reason } => {
            tracing::info!(%namespace, pod = %name, %reason, dry_run, "kept local");
            // The pod has no UID yet; the event names it and explains (best effort). A dry run
            // creates no pod, so it gets no event: the webhook declares no side effects.
            if !dry_run {
                let _ = kept_local_event(&state.client, namespace, &name, &reason).await;
            }
            response
        }
        burst_rules::decide::Decision::Refuse { .. }
            if breakage::is(Breakage::RefusalsFailOpen) =>
        {
            response
        }
        burst_rules::decide::Decision::Refuse { message } => response.deny(message),
    }
}

/// A refusal the webhook's breakages (see `crate::breakage`) make up: none, in a build without
/// them.
fn misjudged(pod: &Pod) -> Option<String> {
    if !breakage::is(Breakage::EmptyDirCapFlat) {
        return None;
    }
    // The bug: the cap is read as 10Gi for every pod, not 10Gi per started core.
    pod.spec
        .as_ref()?
        .volumes
        .iter()
        .flatten()
        .filter_map(|v| Some((&v.name, v.empty_dir.as_ref()?.size_limit.as_ref()?)))
        .find(|(_, limit)| {
            burst_rules::quantity::Quantity::parse(&limit.0)
                .ok()
                .and_then(|q| q.whole_gib())
                .is_some_and(|gib| gib > 10)
        })
        .map(|(name, limit)| format!("emptyDir {name}: sizeLimit {} is more than 10Gi", limit.0))
}

/// What the webhook's breakages (see `crate::breakage`) get wrong in the decision's patch:
/// nothing, in a build without them.
fn misapply(patch: serde_json::Value) -> serde_json::Value {
    if !breakage::is(Breakage::RemovedHostPathMountsKept) {
        return patch;
    }
    // The bug: only the volumes are patched, so a removed hostPath's mounts stay.
    match patch {
        serde_json::Value::Array(ops) => serde_json::Value::Array(
            ops.into_iter()
                .filter(|op| {
                    !op["path"]
                        .as_str()
                        .is_some_and(|p| p.ends_with("/volumeMounts"))
                })
                .collect(),
        ),
        other => other,
    }
}

/// What the webhook's breakages (see `crate::breakage`) get wrong about a pod and its owners
/// before the decision: nothing, in a build without them.
fn misread(input: &mut burst_rules::decide::AdmissionInput) {
    if breakage::is(Breakage::LocaltimePolicyIgnored) {
        forget_localtime_policies(&mut input.pod);
    }
    if breakage::is(Breakage::CronJobLabelIgnored) {
        input.owners.retain(|o| o.kind != "CronJob");
    }
    let pod_labels = input.pod.metadata.labels.get_or_insert_default();
    let labels = std::iter::once(pod_labels).chain(input.owners.iter_mut().map(|o| &mut o.labels));
    for labels in labels {
        if breakage::is(Breakage::SeedLabelIgnored) {
            labels.remove(burst_rules::policy::LABEL);
        }
        if breakage::is(Breakage::NewLabelIgnored) {
            labels.remove(burst_rules::policy::LABEL_NEW);
        }
        if breakage::is(Breakage::LocalPreferAsEnforce) {
            for key in burst_rules::policy::LABELS {
                if let Some(value) = labels.get_mut(key)
                    && value == "localPrefer"
                {
                    *value = "enforce".into();
                }
            }
        }
    }
}

/// The bug of `localtime-policy-ignored`: the hostPath replacement policies naming an
/// `/etc/localtime` hostPath of `pod` are dropped from its annotation, as if only `*` existed.
fn forget_localtime_policies(pod: &mut Pod) {
    let localtime: Vec<String> = pod
        .spec
        .iter()
        .flat_map(|s| s.volumes.iter().flatten())
        .filter(|v| {
            v.host_path
                .as_ref()
                .is_some_and(|h| burst_rules::hostpath::is_etc_localtime(&h.path))
        })
        .map(|v| v.name.clone())
        .collect();
    let Some(annotations) = pod.metadata.annotations.as_mut() else {
        return;
    };
    let Some(text) = annotations.get_mut(burst_rules::hostpath::ANNOTATION) else {
        return;
    };
    if let Ok(serde_json::Value::Array(entries)) = serde_json::from_str(text) {
        let kept: Vec<serde_json::Value> = entries
            .into_iter()
            .filter(|e| {
                !e["name"]
                    .as_str()
                    .is_some_and(|n| localtime.iter().any(|l| l == n))
            })
            .collect();
        *text = serde_json::Value::Array(kept).to_string();
    }
}

/// Validates a Service (CREATE and UPDATE) with `burst_rules::decide::check_service`.
async fn validate(
    State(state): State<Arc<WebhookState>>,
    Json(review): Json<AdmissionReview<Service>>,
) -> Json<AdmissionReview<DynamicObject>> {
    let request: AdmissionRequest<Service> = match review.try_into() {
        Ok(r) => r,
        Err(e) => return Json(AdmissionResponse::invalid(e.to_string()).into_review()),
    };
    let response = AdmissionResponse::from(&request);
    let (Operation::Create | Operation::Update, Some(service)) =
        (&request.operation, request.object.as_ref())
    else {
        return Json(response.into_review());
    };
    let namespace = request
        .namespace
        .clone()
        .or_else(|| service.metadata.namespace.clone())
        .unwrap_or_else(|| "default".into());
    let mut service = service.clone();
    service
        .metadata
        .namespace
        .get_or_insert_with(|| namespace.clone());
    if service.metadata.name.is_none() {
        service.metadata.name = Some(request.name.clone());
    }
    Json(
        check_service(&state, &namespace, &service, response)
            .await
            .into_review(),
    )
}

async fn check_service(
    state: &WebhookState,
    namespace: &str,
    service: &Service,
    response: AdmissionResponse,
) -> AdmissionResponse {
    // Only a LoadBalancer Service below the gate can be refused; spare the pod list otherwise.
    if !is_load_balancer(service) {
        return response;
    }
    let Some(selector) = selector_query(service) else {
        return response;
    };
    let pods = match Api::<Pod>::namespaced(state.client.clone(), namespace)
        .list(&kube::api::ListParams::default().labels(&selector))
        .await
    {
        Ok(list) => list.items,
        Err(e) => {
            return response.deny(format!(
                "bursting webhook cannot list the pods Service {namespace}/{} selects: {e}",
                service.metadata.name.as_deref().unwrap_or("?")
            ));
        }
    };
    let selects_burst_pods = pods.iter().any(is_burst_pod);
    let release = breakage::judged_at(state.release, Gate::LoadBalancerService);
    match burst_rules::decide::check_service(service, release, selects_burst_pods) {
        burst_rules::decide::Decision::Refuse { message } => response.deny(message),
        _ => response,
    }
}

fn is_load_balancer(service: &Service) -> bool {
    service
        .spec
        .as_ref()
        .and_then(|s| s.type_.as_deref())
        .is_some_and(|t| t == "LoadBalancer")
}

/// The Service's selector as a label query (`a=b,c=d`), or `None` when it has none (a Service
/// without a selector selects no pods).
fn selector_query(service: &Service) -> Option<String> {
    let selector = service.spec.as_ref()?.selector.as_ref()?;
    if selector.is_empty() {
        return None;
    }
    Some(
        selector
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(","),
    )
}

/// Whether a pod runs on CCI or may go there: bound to the virtual node, or tolerating its taint
/// by name (the toleration the mutating webhook adds to every pod it lets burst, `enforce`,
/// `auto` and `localPrefer` alike). A catch-all toleration (no key) does not count: it marks
/// pods that tolerate every node, not pods meant for CCI. Terminating pods do not count.
fn is_burst_pod(pod: &Pod) -> bool {
    if pod.metadata.deletion_timestamp.is_some() {
        return false;
    }
    let Some(spec) = pod.spec.as_ref() else {
        return false;
    };
    spec.node_name.as_deref() == Some(crate::node::DEFAULT_NODE_NAME)
        || spec
            .tolerations
            .iter()
            .flatten()
            .any(|t| t.key.as_deref() == Some(burst_rules::decide::TAINT_KEY))
}

struct Facts {
    owners: Vec<burst_rules::policy::OwnerFacts>,
    cluster: burst_rules::decide::ClusterFacts,
}

/// The owner chain (pod's owners up to the top, nearest first) and the storage facts.
async fn gather(state: &WebhookState, namespace: &str, pod: &Pod) -> Result<Facts, kube::Error> {
    let mut owners = Vec::new();
    let mut next = controller_of(&pod.metadata);
    // A chain is short (Pod → ReplicaSet → Deployment, Pod → Job → CronJob); bound it anyway.
    while let Some((api_version, kind, name)) = next.take() {
        if owners.len() >= 4 {
            break;
        }
        let cached = state
            .owners
            .as_ref()
            .and_then(|c| c.get(&api_version, &kind, namespace, &name));
        let known = group_version_kind(&api_version, &kind);
        let meta = match (cached, known) {
            (Some(meta), _) => Some(meta),
            (None, Some(gvk)) => {
                let resource = kube::api::ApiResource::from_gvk(&gvk);
                let api: Api<DynamicObject> =
                    Api::namespaced_with(state.client.clone(), namespace, &resource);
                match api.get_opt(&name).await {
                    Ok(found) => found.map(|obj| obj.metadata),
                    // Forbidden: the add-on may not read this owner; what it cannot read must
                    // not fail the pod (BEHAVIOR.md §13). Anything else (the API server down or
                    // failing) is still a refusal the controller retries.
                    Err(kube::Error::Api(status))
                        if status.code == 403 && !breakage::is(Breakage::Owner403Denies) =>
                    {
                        tracing::debug!(%namespace, %kind, %name, "owner not readable: the chain ends");
                        None
                    }
                    Err(e) => return Err(e),
                }
            }
            (None, None) => None,
        };
        // An owner that cannot be read (a kind not known here, or gone) ends the chain, named
        // without labels.
        next = meta.as_ref().and_then(controller_of);
        owners.push(burst_rules::policy::OwnerFacts {
            kind,
            name: format!("{namespace}/{name}"),
            labels: meta.and_then(|m| m.labels).unwrap_or_default(),
        });
    }

    let uses_pvc = pod
        .spec
        .as_ref()
        .and_then(|s| s.volumes.as_ref())
        .is_some_and(|vs| vs.iter().any(|v| v.persistent_volume_claim.is_some()));
    let mut cluster = burst_rules::decide::ClusterFacts::default();
    if volcano_may_matter(pod) && !breakage::is(Breakage::VolcanoNotChecked) {
        cluster.volcano_version = volcano_version(state).await?;
    }
    // Below 1.5.5 a LoadBalancer Service made before the pods it selects must still keep them
    // off CCI: the pod's admission is where that shows.
    let gate = Gate::LoadBalancerService;
    if !breakage::judged_at(state.release, gate).allows(gate)
        && !breakage::is(Breakage::LoadBalancedPodsUnchecked)
    {
        for service in Api::<Service>::namespaced(state.client.clone(), namespace)
            .list(&Default::default())
            .await?
        {
            let spec = service.spec.unwrap_or_default();
            if spec.type_.as_deref() == Some("LoadBalancer")
                && let Some(name) = service.metadata.name
            {
                cluster
                    .load_balancers
                    .insert(name, spec.selector.unwrap_or_default());
            }
        }
    }
    if uses_pvc {
        for sc in Api::<StorageClass>::all(state.client.clone())
            .list(&Default::default())
            .await?
        {
            if let Some(name) = sc.metadata.name {
                cluster.storage_classes.insert(name, sc.provisioner);
            }
        }
        for pvc in Api::<PersistentVolumeClaim>::namespaced(state.client.clone(), namespace)
            .list(&Default::default())
            .await?
        {
            let bound = pvc.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Bound");
            if let Some(name) = pvc.metadata.name {
                let class = if bound && breakage::is(Breakage::BoundClaimsTrusted) {
                    // The bug: a bound claim is assumed to be SFS.
                    cluster.storage_classes.insert(
                        TRUSTED_CLASS.into(),
                        burst_rules::volumes::PROVISIONER_SFS.into(),
                    );
                    Some(TRUSTED_CLASS.to_owned())
                } else {
                    pvc.spec.and_then(|s| s.storage_class_name)
                };
                cluster.pvc_classes.insert(name, class);
            }
        }
    }
    Ok(Facts { owners, cluster })
}

/// The class breakage `bound-claims-trusted` gives every bound claim.
const TRUSTED_CLASS: &str = "breakage-trusted-sfs";

/// What a metadata watch of `K` yields.
type MetaEvent<K> = Result<watcher::Event<PartialObjectMeta<K>>, watcher::Error>;

/// A store of every `K`'s metadata and the watch (with backoff) that fills it.
fn watched<K>(
    client: kube::Client,
) -> (
    Store<PartialObjectMeta<K>>,
    impl futures::Stream<Item = MetaEvent<K>>,
)
where
    K: kube::Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope>
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned
        + Send
        + Sync
        + 'static,
{
    let (store, writer) = reflector::store();
    let api = Api::<PartialObjectMeta<K>>::all(client);
    // Only labels and owner references are ever read from the cache; the rest of the metadata
    // (managedFields above all, often larger than the labels) of every ReplicaSet in the
    // cluster is dropped before it is stored.
    let known = store.clone();
    let stream = watcher(api, watcher::Config::default())
        .modify(keep_what_the_chain_reads)
        .filter(move |event| std::future::ready(!missed_update(&known, event)));
    let stream = reflector(writer, stream).default_backoff();
    (store, stream)
}

/// Whether the breakage `owner-cache-misses-updates` drops `event`: a change to an object the
/// cache holds already (the bug: "an owner's labels do not change once seen").
fn missed_update<K>(store: &Store<PartialObjectMeta<K>>, event: &MetaEvent<K>) -> bool
where
    K: kube::Resource<DynamicType = ()> + Clone,
{
    breakage::is(Breakage::OwnerCacheMissesUpdates)
        && matches!(event, Ok(watcher::Event::Apply(o)) if store.get(&ObjectRef::from_obj(o)).is_some())
}

/// Strips an owner's metadata to what [`gather`] reads of it (and what a store needs to key it).
fn keep_what_the_chain_reads<K>(object: &mut PartialObjectMeta<K>) {
    let meta = &mut object.metadata;
    *meta = ObjectMeta {
        name: meta.name.take(),
        namespace: meta.namespace.take(),
        uid: meta.uid.take(),
        resource_version: meta.resource_version.take(),
        labels: meta.labels.take(),
        owner_references: meta.owner_references.take(),
        ..ObjectMeta::default()
    };
}

/// The metadata of `namespace/name` in `store`, if it is there.
fn cached<K>(store: &Store<PartialObjectMeta<K>>, namespace: &str, name: &str) -> Option<ObjectMeta>
where
    K: kube::Resource<DynamicType = ()> + Clone,
{
    store
        .get(&ObjectRef::new(name).within(namespace))
        .map(|o| o.metadata.clone())
}

/// Runs a watch stream for ever, logging its errors (the backoff retries after them).
async fn keep_watching<T>(
    stream: impl futures::Stream<Item = Result<T, watcher::Error>>,
    what: &'static str,
) {
    stream
        .for_each(|event| {
            if let Err(e) = event {
                tracing::warn!(error = %e, "watching {what} for the owner cache");
            }
            std::future::ready(())
        })
        .await;
}

/// Whether the Volcano rule could apply to `pod`: it names the scheduler `volcano` and has a
/// cloud-storage volume. Only then is the version worth reading.
fn volcano_may_matter(pod: &Pod) -> bool {
    pod.spec.as_ref().is_some_and(|spec| {
        spec.scheduler_name.as_deref() == Some(burst_rules::decide::VOLCANO)
            && !burst_rules::volumes::cloud_storage_volumes(spec).is_empty()
    })
}

/// The installed Volcano's version (see the module docs), from the cache when it is fresh.
async fn volcano_version(state: &WebhookState) -> Result<Option<Release>, kube::Error> {
    let cached = state
        .volcano
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .fresh(Instant::now());
    if let Some(version) = cached {
        return Ok(version);
    }
    let mut version = None;
    for (namespace, name) in VOLCANO_SCHEDULER_DEPLOYMENTS {
        let api: Api<Deployment> = Api::namespaced(state.client.clone(), namespace);
        if let Some(deployment) = api.get_opt(name).await? {
            version = volcano_version_of(&deployment);
            tracing::debug!(%namespace, %name, ?version, "found Volcano's scheduler");
            break;
        }
    }
    state
        .volcano
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .store(Instant::now(), version);
    Ok(version)
}

fn controller_of(meta: &kube::api::ObjectMeta) -> Option<(String, String, String)> {
    meta.owner_references
        .as_ref()?
        .iter()
        .find(|o| o.controller == Some(true))
        .map(|o| (o.api_version.clone(), o.kind.clone(), o.name.clone()))
}

/// The owner kinds the webhook reads (its role grants `get` on exactly these): the workload
/// controllers of Kubernetes itself. Any other owner (a custom resource of an operator: Argo
/// Rollouts, Tekton, KubeVirt, …) ends the chain without a read, so installing the add-on never
/// stops an operator's pods from being created (BEHAVIOR.md §13, SAFE-01).
pub const OWNER_KINDS: &[(&str, &str)] = &[
    ("apps/v1", "ReplicaSet"),
    ("apps/v1", "Deployment"),
    ("apps/v1", "StatefulSet"),
    ("apps/v1", "DaemonSet"),
    ("batch/v1", "Job"),
    ("batch/v1", "CronJob"),
    ("v1", "ReplicationController"),
];

/// The group, version and kind to read an owner as, when it is of [`OWNER_KINDS`]; `None` for
/// any other (never read).
fn group_version_kind(api_version: &str, kind: &str) -> Option<kube::api::GroupVersionKind> {
    let known = OWNER_KINDS
        .iter()
        .any(|(v, k)| *v == api_version && *k == kind);
    if !known && !breakage::is(Breakage::Owner403Denies) {
        return None;
    }
    let (group, version) = match api_version.split_once('/') {
        Some((g, v)) => (g, v),
        None => ("", api_version),
    };
    Some(kube::api::GroupVersionKind::gvk(group, version, kind))
}

async fn kept_local_event(
    client: &kube::Client,
    namespace: &str,
    pod: &str,
    reason: &str,
) -> Result<(), kube::Error> {
    let now =
        k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(k8s_openapi::jiff::Timestamp::now());
    let event = Event {
        metadata: kube::api::ObjectMeta {
            generate_name: Some(format!("{pod}.")),
            namespace: Some(namespace.to_owned()),
            ..Default::default()
        },
        involved_object: ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Pod".into()),
            name: Some(pod.to_owned()),
            namespace: Some(namespace.to_owned()),
            ..Default::default()
        },
        reason: Some("KeptLocal".into()),
        message: Some(reason.to_owned()),
        // NB: a Warning, as §4 asks for a pod that fits no flavour: every pod kept local here
        // carries a policy label asking for CCI, and will not get it.
        type_: Some("Warning".into()),
        first_timestamp: Some(now.clone()),
        last_timestamp: Some(now),
        count: Some(1),
        source: Some(k8s_openapi::api::core::v1::EventSource {
            component: Some("bursting-webhook".into()),
            ..Default::default()
        }),
        ..Default::default()
    };
    Api::<Event>::namespaced(client.clone(), namespace)
        .create(&PostParams::default(), &event)
        .await
        .map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owner<K: kube::Resource<DynamicType = ()>>(
        namespace: &str,
        name: &str,
        label: &str,
    ) -> PartialObjectMeta<K> {
        use kube::api::PartialObjectMetaExt as _;
        ObjectMeta {
            name: Some(name.into()),
            namespace: Some(namespace.into()),
            labels: Some([("policy".to_owned(), label.to_owned())].into()),
            ..ObjectMeta::default()
        }
        .into_response_partial::<K>()
    }

    #[test]
    fn the_owner_cache_answers_apps_v1_replica_sets_and_deployments_by_namespace_and_name() {
        let (replica_sets, mut rs) = reflector::store::<PartialObjectMeta<ReplicaSet>>();
        let (deployments, mut d) = reflector::store::<PartialObjectMeta<Deployment>>();
        rs.apply_watcher_event(&watcher::Event::Apply(owner("ns", "web-1", "from-rs")));
        d.apply_watcher_event(&watcher::Event::Apply(owner("ns", "web", "from-d")));
        let cache = OwnerCache {
            replica_sets,
            deployments,
        };
        let label = |meta: Option<ObjectMeta>| meta.and_then(|m| m.labels?.get("policy").cloned());
        assert_eq!(
            label(cache.get("apps/v1", "ReplicaSet", "ns", "web-1")).as_deref(),
            Some("from-rs")
        );
        assert_eq!(
            label(cache.get("apps/v1", "Deployment", "ns", "web")).as_deref(),
            Some("from-d")
        );
        // A miss is a GET: another namespace, another name, another kind or group.
        assert!(
            cache
                .get("apps/v1", "ReplicaSet", "other", "web-1")
                .is_none()
        );
        assert!(cache.get("apps/v1", "ReplicaSet", "ns", "web").is_none());
        assert!(cache.get("apps/v1", "Deployment", "ns", "web-1").is_none());
        assert!(cache.get("batch/v1", "Job", "ns", "web-1").is_none());
        assert!(
            cache
                .get("extensions/v1beta1", "ReplicaSet", "ns", "web-1")
                .is_none()
        );
    }

    #[test]
    fn the_owner_cache_keeps_only_names_labels_and_owner_references() {
        let mut object: PartialObjectMeta<ReplicaSet> = PartialObjectMeta {
            types: None,
            metadata: serde_json::from_value(serde_json::json!({
                "name": "web-1", "namespace": "shop", "uid": "u-1", "resourceVersion": "7",
                "labels": {"app": "web"},
                "annotations": {"deployment.kubernetes.io/revision": "3"},
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment",
                                     "name": "web", "uid": "u-0", "controller": true}],
                "managedFields": [{"manager": "kube-controller-manager", "operation": "Update"}],
                "generation": 2,
            }))
            .unwrap(),
            _phantom: Default::default(),
        };
        keep_what_the_chain_reads(&mut object);
        let kept = serde_json::to_value(&object.metadata).unwrap();
        assert_eq!(
            kept,
            serde_json::json!({
                "name": "web-1", "namespace": "shop", "uid": "u-1", "resourceVersion": "7",
                "labels": {"app": "web"},
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment",
                                     "name": "web", "uid": "u-0", "controller": true}],
            })
        );
    }

    #[cfg(not(feature = "breakages"))]
    #[test]
    fn a_change_to_a_cached_owner_is_taken_and_the_patch_applied_as_decided() {
        let (store, mut writer) = reflector::store::<PartialObjectMeta<Deployment>>();
        let before = owner::<Deployment>("ns", "web", "off");
        assert!(!missed_update(
            &store,
            &Ok(watcher::Event::Apply(before.clone()))
        ));
        writer.apply_watcher_event(&watcher::Event::Apply(before));
        let labelled = owner::<Deployment>("ns", "web", "enforce");
        assert!(!missed_update(&store, &Ok(watcher::Event::Apply(labelled))));
        let patch = serde_json::json!([
            {"op": "replace", "path": "/spec/volumes", "value": []},
            {"op": "remove", "path": "/spec/containers/0/volumeMounts"}
        ]);
        assert_eq!(misapply(patch.clone()), patch);
    }

    #[test]
    fn a_deleted_owner_leaves_the_cache() {
        let (replica_sets, mut rs) = reflector::store::<PartialObjectMeta<ReplicaSet>>();
        let (deployments, _d) = reflector::store::<PartialObjectMeta<Deployment>>();
        rs.apply_watcher_event(&watcher::Event::Apply(owner("ns", "web-1", "x")));
        rs.apply_watcher_event(&watcher::Event::Delete(owner("ns", "web-1", "x")));
        let cache = OwnerCache {
            replica_sets,
            deployments,
        };
        assert!(cache.get("apps/v1", "ReplicaSet", "ns", "web-1").is_none());
    }

    #[tokio::test]
    async fn answers_ask_to_close_the_connection_only_once_draining() {
        use tower::ServiceExt as _;
        let draining = Arc::new(AtomicBool::new(false));
        let app = drain_on(
            Router::new().route("/healthz", get(|| async { "ok" })),
            Arc::clone(&draining),
        );
        let get_healthz = || {
            axum::http::Request::get("/healthz")
                .body(axum::body::Body::empty())
                .unwrap()
        };
        let before = app.clone().oneshot(get_healthz()).await.unwrap();
        assert_eq!(before.status(), 200);
        assert_eq!(before.headers().get("connection"), None);
        draining.store(true, Ordering::Relaxed);
        let after = app.oneshot(get_healthz()).await.unwrap();
        assert_eq!(after.status(), 200, "still answering while draining");
        assert_eq!(after.headers()["connection"], "close");
    }

    fn pod(json: serde_json::Value) -> Pod {
        serde_json::from_value(json).expect("pod")
    }

    #[test]
    fn a_pod_on_the_virtual_node_or_tolerating_its_taint_is_a_burst_pod() {
        let on_node =
            pod(serde_json::json!({"spec": {"nodeName": "bursting-node", "containers": []}}));
        assert!(is_burst_pod(&on_node));
        let tolerating = pod(
            serde_json::json!({"spec": {"containers": [], "tolerations": [
            {"key": "virtual-kubelet.io/provider", "operator": "Exists", "effect": "NoSchedule"}]}}),
        );
        assert!(is_burst_pod(&tolerating));
        let local = pod(
            serde_json::json!({"spec": {"nodeName": "node-1", "containers": [],
            "tolerations": [{"key": "node.kubernetes.io/not-ready", "operator": "Exists"}]}}),
        );
        assert!(!is_burst_pod(&local));
        let mut gone = on_node.clone();
        gone.metadata.deletion_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                k8s_openapi::jiff::Timestamp::now(),
            ));
        assert!(!is_burst_pod(&gone));
    }

    fn scheduler_deployment(images: &[&str]) -> Deployment {
        let containers: Vec<serde_json::Value> = images
            .iter()
            .enumerate()
            .map(|(i, image)| serde_json::json!({"name": format!("c{i}"), "image": image}))
            .collect();
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "volcano-scheduler", "namespace": "volcano-system"},
            "spec": {
                "selector": {"matchLabels": {"app": "volcano-scheduler"}},
                "template": {"spec": {"containers": containers}}
            }
        }))
        .expect("deployment")
    }

    #[test]
    fn volcanos_version_is_the_tag_of_its_scheduler_image() {
        let version = |images: &[&str]| {
            volcano_version_of(&scheduler_deployment(images)).map(|r| r.to_string())
        };
        let v = |s: &str| Some(s.to_owned());
        assert_eq!(version(&["volcanosh/vc-scheduler:v1.17.10"]), v("1.17.10"));
        assert_eq!(version(&["volcanosh/vc-scheduler:v1.17.11"]), v("1.17.11"));
        assert_eq!(
            version(&["registry.local:5000/volcano/vc-scheduler:1.9.0"]),
            v("1.9.0"),
            "a registry port is not the tag"
        );
        assert_eq!(
            version(&["swr.example.com/hwofficial/volcano-scheduler:v1.12.1-hw.2"]),
            v("1.12.1")
        );
        assert_eq!(
            version(&["volcanosh/vc-scheduler:v1.17.10@sha256:0123abcd"]),
            v("1.17.10")
        );
        assert_eq!(
            version(&["istio/proxyv2:1.20.0", "volcanosh/vc-scheduler:v1.8.2"]),
            v("1.8.2"),
            "the scheduler's container, not a sidecar"
        );
        assert_eq!(version(&["volcanosh/vc-scheduler"]), None);
        assert_eq!(version(&["volcanosh/vc-scheduler:latest"]), None);
        assert_eq!(version(&["registry.local:5000/vc-scheduler"]), None);
        assert_eq!(version(&[]), None);
    }

    #[test]
    fn a_volcano_version_is_trusted_for_the_cache_ttl_only() {
        let t0 = Instant::now();
        let mut cache = VolcanoCache::default();
        assert_eq!(cache.fresh(t0), None);
        let v = Some("1.17.10".parse().unwrap());
        cache.store(t0, v);
        assert_eq!(cache.fresh(t0 + VOLCANO_CACHE_TTL / 2), Some(v));
        assert_eq!(cache.fresh(t0 + VOLCANO_CACHE_TTL), None);
        cache.store(t0, None);
        assert_eq!(cache.fresh(t0), Some(None), "no Volcano is remembered too");
    }

    #[test]
    fn only_a_pod_volcano_schedules_with_cloud_storage_needs_the_volcano_version() {
        let with = |scheduler: Option<&str>, volume: serde_json::Value| {
            let mut spec = serde_json::json!({"containers": [], "volumes": [volume]});
            if let Some(s) = scheduler {
                spec["schedulerName"] = s.into();
            }
            volcano_may_matter(&pod(serde_json::json!({"spec": spec})))
        };
        let claim = serde_json::json!({"name": "d", "persistentVolumeClaim": {"claimName": "c"}});
        let config = serde_json::json!({"name": "d", "configMap": {"name": "c"}});
        assert!(with(Some("volcano"), claim.clone()));
        assert!(!with(Some("volcano"), config));
        assert!(!with(None, claim.clone()));
        assert!(!with(Some("default-scheduler"), claim));
    }

    #[test]
    fn the_selector_becomes_a_label_query_and_no_selector_selects_nothing() {
        let svc: Service = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web"},
            "spec": {"type": "LoadBalancer", "selector": {"app": "web", "tier": "front"}}
        }))
        .expect("service");
        assert!(is_load_balancer(&svc));
        assert_eq!(selector_query(&svc).as_deref(), Some("app=web,tier=front"));
        let bare: Service = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "ext"}, "spec": {"type": "ClusterIP"}
        }))
        .expect("service");
        assert!(!is_load_balancer(&bare));
        assert_eq!(selector_query(&bare), None);
    }
}

#[cfg(test)]
#[path = "webhook_scripted.rs"]
mod scripted;
