//! The admission webhook: a thin HTTP layer over the pure decision of `burst-rules`.
//!
//! The handler gathers the facts the decision needs (the pod's owner chain and its labels, the
//! cluster's StorageClasses and PVCs), calls `burst_rules::decide::decide`, and turns the
//! decision into an admission response: a JSON patch, a refusal, or an allow with an event
//! saying why the pod was kept local.
//!
//! `POST /validate` checks Services (CREATE and UPDATE) with `burst_rules::decide::check_service`.
//! A Service "selects burst pods" when its selector matches, in its namespace, a live pod bound
//! to the virtual node or tolerating the virtual node's taint by name (the mark the mutating
//! webhook leaves on every pod it lets burst). A Service without a selector selects nothing.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use k8s_openapi::api::core::v1::{Event, ObjectReference, PersistentVolumeClaim, Pod, Service};
use k8s_openapi::api::storage::v1::StorageClass;
use kube::api::{Api, DynamicObject, PostParams};
use kube::core::admission::{AdmissionRequest, AdmissionResponse, AdmissionReview, Operation};

/// What every request shares.
#[derive(Clone)]
pub struct WebhookState {
    client: kube::Client,
    release: burst_rules::release::Release,
}

impl WebhookState {
    /// State for a webhook serving `release`.
    pub fn new(client: kube::Client, release: burst_rules::release::Release) -> Self {
        Self { client, release }
    }
}

/// The webhook's routes: `POST /mutate` (pods), `POST /validate` (Services), `GET /healthz`.
pub fn router(state: WebhookState) -> Router {
    Router::new()
        .route("/mutate", post(mutate))
        .route("/validate", post(validate))
        .route("/healthz", get(|| async { "ok" }))
        .with_state(Arc::new(state))
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
    Json(admit(&state, &namespace, pod, response).await.into_review())
}

async fn admit(
    state: &WebhookState,
    namespace: &str,
    pod: &Pod,
    response: AdmissionResponse,
) -> AdmissionResponse {
    let facts = match gather(state, namespace, pod).await {
        Ok(f) => f,
        // A webhook that cannot read the cluster must not let a pod meant for CCI through
        // unmutated, nor silently keep it local: refuse, and the controller retries.
        Err(e) => {
            return response.deny(format!(
                "bursting webhook cannot read the cluster to decide: {e}"
            ));
        }
    };
    let input = burst_rules::decide::AdmissionInput {
        pod: pod.clone(),
        owners: facts.owners,
        release: state.release,
        cluster: facts.cluster,
    };
    let name = pod
        .metadata
        .name
        .clone()
        .or_else(|| pod.metadata.generate_name.clone())
        .unwrap_or_default();
    match burst_rules::decide::decide(&input) {
        burst_rules::decide::Decision::Allow => response,
        burst_rules::decide::Decision::Mutate { patch, .. } => {
            match serde_json::from_value::<json_patch::Patch>(patch) {
                Ok(patch) => response
                    .with_patch(patch)
                    .unwrap_or_else(|e| AdmissionResponse::invalid(e.to_string())),
                Err(e) => response.deny(format!("bursting webhook built an invalid patch: {e}")),
            }
        }
        burst_rules::decide::Decision::KeepLocal { reason } => {
            tracing::info!(%namespace, pod = %name, %reason, "kept local");
            // The pod has no UID yet; the event names it and explains (best effort).
            let _ = kept_local_event(&state.client, namespace, &name, &reason).await;
            response
        }
        burst_rules::decide::Decision::Refuse { message } => response.deny(message),
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
    match burst_rules::decide::check_service(service, state.release, selects_burst_pods) {
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
        let Some(gvk) = group_version_kind(&api_version, &kind) else {
            owners.push(burst_rules::policy::OwnerFacts {
                kind,
                name: format!("{namespace}/{name}"),
                labels: BTreeMap::new(),
            });
            break;
        };
        let resource = kube::api::ApiResource::from_gvk(&gvk);
        let api: Api<DynamicObject> =
            Api::namespaced_with(state.client.clone(), namespace, &resource);
        let Some(obj) = api.get_opt(&name).await? else {
            owners.push(burst_rules::policy::OwnerFacts {
                kind,
                name: format!("{namespace}/{name}"),
                labels: BTreeMap::new(),
            });
            break;
        };
        next = controller_of(&obj.metadata);
        owners.push(burst_rules::policy::OwnerFacts {
            kind,
            name: format!("{namespace}/{name}"),
            labels: obj.metadata.labels.clone().unwrap_or_default(),
        });
    }

    let uses_pvc = pod
        .spec
        .as_ref()
        .and_then(|s| s.volumes.as_ref())
        .is_some_and(|vs| vs.iter().any(|v| v.persistent_volume_claim.is_some()));
    let mut cluster = burst_rules::decide::ClusterFacts::default();
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
            if let Some(name) = pvc.metadata.name {
                cluster
                    .pvc_classes
                    .insert(name, pvc.spec.and_then(|s| s.storage_class_name));
            }
        }
    }
    Ok(Facts { owners, cluster })
}

fn controller_of(meta: &kube::api::ObjectMeta) -> Option<(String, String, String)> {
    meta.owner_references
        .as_ref()?
        .iter()
        .find(|o| o.controller == Some(true))
        .map(|o| (o.api_version.clone(), o.kind.clone(), o.name.clone()))
}

fn group_version_kind(api_version: &str, kind: &str) -> Option<kube::api::GroupVersionKind> {
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
        type_: Some("Normal".into()),
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
