//! SAFE: doing no harm (BEHAVIOR.md §13). A release is only good if everything in the cluster
//! that did not opt in goes on exactly as before it was installed, and it holds no more power
//! than it needs. SAFE-01 and SAFE-02 create what an operator, a node agent and the control
//! plane create, and check it is admitted; SAFE-03 asks the API server itself what the add-on's
//! accounts may do and what Pod Security says of its pods, so it judges any add-on, also one
//! burstcert did not install.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet};
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use k8s_openapi::api::core::v1::{Namespace, Node, Pod, PodSpec};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::ResourceExt as _;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, Patch,
    PatchParams, PostParams,
};
use serde_json::json;

use super::{BodyFuture, POLICY_LABEL, running_on};
use crate::addon::render::{NAMESPACE, PART_OF};
use crate::scenario::{Outcome, Scenario};
use crate::wait;

/// How long a pod of a controller may take to be created (controllers, scheduler, engine).
const PATIENCE: Duration = Duration::from_secs(90);

/// The custom resource SAFE-01's owners are made of: an operator's kind the add-on knows nothing
/// of, and may not read.
const CR_GROUP: &str = "safe.burstcert.io";
const CR_KIND: &str = "Widget";
const CR_PLURAL: &str = "widgets";

/// The label key every object of a burstcert-installed add-on carries.
const PART_OF_LABEL: &str = "app.kubernetes.io/part-of";

fn kube_err(context: impl Into<String>) -> impl FnOnce(kube::Error) -> crate::Error {
    let context = context.into();
    move |source| crate::Error::Kube { context, source }
}

/// The seed's nginx pod spec (0.5 vCPU, 1Gi), which bursts when labelled.
fn nginx_spec() -> anyhow::Result<PodSpec> {
    let pod: Pod = crate::fixtures::load("seed/nginx-pod.yaml")?;
    pod.spec.context("the seed's pod has a spec")
}

/// An owner reference naming `owner` as the controller.
fn controlled_by(owner: &DynamicObject) -> anyhow::Result<serde_json::Value> {
    Ok(json!([{
        "apiVersion": format!("{CR_GROUP}/v1"),
        "kind": CR_KIND,
        "name": owner.name_any(),
        "uid": owner.uid().context("the custom resource has a uid")?,
        "controller": true,
    }]))
}

/// Makes the Widget CRD, if the cluster has none, and waits until it is served. Answers
/// whether this call created it (then the scenario removes it at the end).
async fn ensure_crd(client: &kube::Client) -> anyhow::Result<bool> {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let name = format!("{CR_PLURAL}.{CR_GROUP}");
    let created = if crds.get_opt(&name).await?.is_some() {
        false
    } else {
        let crd: CustomResourceDefinition = serde_json::from_value(json!({
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "CustomResourceDefinition",
            "metadata": {"name": name, "labels": {"burstcert.io/scenario": "SAFE-01"}},
            "spec": {
                "group": CR_GROUP,
                "scope": "Namespaced",
                "names": {"plural": CR_PLURAL, "singular": "widget", "kind": CR_KIND},
                "versions": [{
                    "name": "v1", "served": true, "storage": true,
                    "schema": {"openAPIV3Schema": {
                        "type": "object", "x-kubernetes-preserve-unknown-fields": true,
                    }},
                }],
            },
        }))?;
        match crds.create(&PostParams::default(), &crd).await {
            Ok(_) => true,
            // Made meanwhile by another run: it is theirs to remove.
            Err(kube::Error::Api(e)) if e.code == 409 => false,
            Err(e) => return Err(e).context(format!("create the CRD {name}")),
        }
    };
    wait::until(
        &format!("the CRD {name} Established"),
        Duration::from_secs(30),
        || async {
            let crd = crds.get(&name).await.map_err(kube_err("get the CRD"))?;
            let established = crd
                .status
                .and_then(|s| s.conditions)
                .unwrap_or_default()
                .iter()
                .any(|c| c.type_ == "Established" && c.status == "True");
            Ok(established.then_some(()))
        },
        || async { String::from("the API server did not establish it") },
    )
    .await?;
    Ok(created)
}

/// The pods of `namespace` matching `selector`, once there are `n` of them.
async fn pods_created(
    s: &Scenario,
    what: &str,
    selector: &str,
    n: usize,
) -> anyhow::Result<Vec<Pod>> {
    Ok(wait::until(
        &format!("{n} pod(s) of {what} created ({selector})"),
        PATIENCE,
        || async {
            let pods = s
                .api::<Pod>()
                .list(&ListParams::default().labels(selector))
                .await
                .map_err(kube_err("list the scenario's pods"))?
                .items;
            Ok((pods.len() == n).then_some(pods))
        },
        || s.diagnose(),
    )
    .await?)
}

/// Whether the webhook touched `pod`: the virtual node's toleration, or `virtual_node` as its
/// node.
fn made_to_burst(virtual_node: &str, pod: &Pod) -> bool {
    pod.spec.as_ref().is_some_and(|spec| {
        spec.node_name.as_deref() == Some(virtual_node)
            || spec
                .tolerations
                .iter()
                .flatten()
                .any(|t| t.key.as_deref() == Some(crate::cluster::VIRTUAL_NODE_TAINT))
    })
}

/// SAFE-01: pods whose owner chain reaches a custom resource (CR → Deployment → ReplicaSet →
/// Pod, CR → ReplicaSet → Pod, CR → Pod) are admitted exactly as without the add-on; labelled
/// `enforce` (on the pod, or on a Deployment the add-on can read), they burst.
///
/// The add-on may not read the operator's kind: an engine that reads every owner and turns the
/// refusal into a denial (the breakage `owner-403-denies`) leaves the controllers unable to make
/// a single pod, and this scenario waits for them in vain.
pub fn safe_01(s: &Scenario) -> BodyFuture<'_> {
    Box::pin(async move {
        let created_crd = ensure_crd(&s.client).await?;
        let outcome = owners_of_an_operator(s).await;
        let removed = remove_operator(s).await;
        if created_crd {
            let crds: Api<CustomResourceDefinition> = Api::all(s.client.clone());
            let _ = crds
                .delete(&format!("{CR_PLURAL}.{CR_GROUP}"), &DeleteParams::default())
                .await;
        }
        let outcome = outcome?;
        removed.context("removing the operator's custom resource afterwards")?;
        Ok(outcome)
    })
}

/// Deletes the custom resource, and waits until the garbage collector has deleted the pods it
/// owns and the engine their CCI pods: those deletes are then within the scenario whatever the
/// collector's speed, so its transcript (which `burstcert diff` compares between runs) holds
/// them every time, not only when the collector was quick. The deletes are started, not waited
/// out: a burst pod stays Terminating on both sides for its grace period.
async fn remove_operator(s: &Scenario) -> anyhow::Result<()> {
    let resource = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk(CR_GROUP, "v1", CR_KIND),
        CR_PLURAL,
    );
    let widgets: Api<DynamicObject> =
        Api::namespaced_with(s.client.clone(), &s.namespace, &resource);
    match widgets.delete("operator", &DeleteParams::default()).await {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 404 => {}
        Err(e) => return Err(e).context("delete the custom resource"),
    }
    wait::until(
        "the custom resource's pods deleted, on the cluster and on CCI",
        PATIENCE,
        || async {
            let pods = s
                .api::<Pod>()
                .list(&ListParams::default())
                .await
                .map_err(|source| crate::Error::Kube {
                    context: format!("list the pods of {}", s.namespace),
                    source,
                })?
                .items;
            let cci = s.cci_pods().await?;
            let deleting = |meta: &kube::api::ObjectMeta| meta.deletion_timestamp.is_some();
            Ok((pods.iter().all(|p| deleting(&p.metadata))
                && cci.iter().all(|p| deleting(&p.metadata)))
            .then_some(()))
        },
        || s.diagnose(),
    )
    .await?;
    Ok(())
}

async fn owners_of_an_operator(s: &Scenario) -> anyhow::Result<Outcome> {
    let resource = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk(CR_GROUP, "v1", CR_KIND),
        CR_PLURAL,
    );
    let widgets: Api<DynamicObject> =
        Api::namespaced_with(s.client.clone(), &s.namespace, &resource);
    let widget: DynamicObject = serde_json::from_value(json!({
        "apiVersion": format!("{CR_GROUP}/v1"), "kind": CR_KIND,
        "metadata": {"name": "operator"},
        "spec": {"replicas": 1},
    }))?;
    let widget = widgets
        .create(&PostParams::default(), &widget)
        .await
        .context("create the custom resource")?;
    let owners = controlled_by(&widget)?;
    let spec = serde_json::to_value(nginx_spec()?)?;
    let template = |app: &str, labels: serde_json::Value| {
        let mut all = json!({"app": app});
        all.as_object_mut()
            .expect("an object")
            .extend(labels.as_object().cloned().unwrap_or_default());
        json!({"metadata": {"labels": all}, "spec": spec})
    };
    let enforce = json!({ POLICY_LABEL: "enforce" });

    // Not opted in: each must be created exactly as without the add-on.
    let deployment: Deployment = serde_json::from_value(json!({
        "metadata": {"name": "cr-deployment", "ownerReferences": owners},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "cr-deployment"}},
                 "template": template("cr-deployment", json!({}))},
    }))?;
    let replica_set: ReplicaSet = serde_json::from_value(json!({
        "metadata": {"name": "cr-replicaset", "ownerReferences": owners},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "cr-replicaset"}},
                 "template": template("cr-replicaset", json!({}))},
    }))?;
    let mut pod: Pod = serde_json::from_value(template("cr-pod", json!({})))?;
    pod.metadata.name = Some("cr-pod".into());
    pod.metadata.owner_references = serde_json::from_value(owners.clone())?;
    // Opted in: the Deployment's own label (read through its ReplicaSet), and the pod's.
    let burst_deployment: Deployment = serde_json::from_value(json!({
        "metadata": {"name": "cr-burst", "ownerReferences": owners, "labels": enforce},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "cr-burst"}},
                 "template": template("cr-burst", json!({}))},
    }))?;
    let mut burst_pod: Pod = serde_json::from_value(template("cr-burst-pod", enforce))?;
    burst_pod.metadata.name = Some("cr-burst-pod".into());
    burst_pod.metadata.owner_references = serde_json::from_value(owners)?;

    let post = PostParams::default();
    s.api::<Deployment>()
        .create(&post, &deployment)
        .await
        .context("create the Deployment the custom resource owns")?;
    s.api::<ReplicaSet>()
        .create(&post, &replica_set)
        .await
        .context("create the ReplicaSet the custom resource owns")?;
    s.api::<Pod>()
        .create(&post, &pod)
        .await
        .context("the pod the custom resource owns was refused")?;
    s.api::<Deployment>()
        .create(&post, &burst_deployment)
        .await
        .context("create the labelled Deployment the custom resource owns")?;
    s.api::<Pod>()
        .create(&post, &burst_pod)
        .await
        .context("the labelled pod the custom resource owns was refused")?;

    for (what, app) in [
        ("CR → Deployment → ReplicaSet", "cr-deployment"),
        ("CR → ReplicaSet", "cr-replicaset"),
        ("CR → Pod", "cr-pod"),
    ] {
        let pods = pods_created(s, what, &format!("app={app}"), 1).await?;
        let touched: Vec<String> = pods
            .iter()
            .filter(|p| made_to_burst(s.virtual_node(), p))
            .map(|p| p.name_any())
            .collect();
        anyhow::ensure!(
            touched.is_empty(),
            "{what}: pods not opted in were made to burst: {touched:?}"
        );
    }
    for (what, app) in [
        ("the labelled Deployment under a CR", "cr-burst"),
        ("the labelled pod of a CR", "cr-burst-pod"),
    ] {
        wait::until(
            &format!("the pod of {what} Running on {}", s.virtual_node()),
            PATIENCE,
            || async {
                let pods = s
                    .api::<Pod>()
                    .list(&ListParams::default().labels(&format!("app={app}")))
                    .await
                    .map_err(kube_err("list the scenario's pods"))?
                    .items;
                let on_node = |p: &Pod| running_on(s.virtual_node(), p);
                Ok((pods.len() == 1 && pods.iter().all(on_node)).then_some(()))
            },
            || s.diagnose(),
        )
        .await?;
    }
    let on_cci = s.cci_pods().await?.len();
    anyhow::ensure!(
        on_cci == 2,
        "CCI holds {on_cci} pods of the scenario, expected the two labelled ones"
    );
    Ok(Outcome::Passed)
}

/// The add-on's Deployments in its namespace (labelled as part of it).
async fn addon_deployments(client: &kube::Client) -> anyhow::Result<Vec<Deployment>> {
    let found = Api::<Deployment>::namespaced(client.clone(), NAMESPACE)
        .list(&ListParams::default().labels(&format!("{PART_OF_LABEL}={PART_OF}")))
        .await
        .context("list the add-on's Deployments")?
        .items;
    anyhow::ensure!(
        !found.is_empty(),
        "no Deployment labelled {PART_OF_LABEL}={PART_OF} in {NAMESPACE}: no add-on to judge"
    );
    Ok(found)
}

/// SAFE-02: with the add-on's webhook unreachable (its Deployment scaled to zero), DaemonSet
/// pods, a static pod's mirror and a pod of a system namespace are still created; a pod the
/// webhook does judge is answered (refused, under `failurePolicy: Fail`) within the
/// configuration's `timeoutSeconds`. The webhook is scaled back whatever the checks found.
pub fn safe_02(s: &Scenario) -> BodyFuture<'_> {
    Box::pin(async move {
        let deployments: Api<Deployment> = Api::namespaced(s.client.clone(), NAMESPACE);
        let webhook = addon_deployments(&s.client)
            .await?
            .into_iter()
            .find(|d| {
                d.labels()
                    .get("app.kubernetes.io/component")
                    .map(String::as_str)
                    == Some("webhook")
            })
            .context("no Deployment of the add-on's webhook")?;
        let name = webhook.name_any();
        let replicas = webhook.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
        let outcome = with_webhook_down(s, &deployments, &name).await;
        let restored = scale_and_wait(s, &deployments, &name, replicas).await;
        match (outcome, restored) {
            (Ok(o), Ok(())) => Ok(o),
            (Err(e), _) => Err(e),
            (Ok(_), Err(e)) => Err(e.context("scaling the webhook back")),
        }
    })
}

/// Scales Deployment `name` to `replicas` and waits until exactly that many of its pods are
/// ready and no other is left.
async fn scale_and_wait(
    s: &Scenario,
    deployments: &Api<Deployment>,
    name: &str,
    replicas: i32,
) -> anyhow::Result<()> {
    deployments
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": replicas}})),
        )
        .await
        .with_context(|| format!("scale {name} to {replicas}"))?;
    let pods: Api<Pod> = Api::namespaced(s.client.clone(), NAMESPACE);
    let selector = format!("{PART_OF_LABEL}={PART_OF},app.kubernetes.io/component=webhook");
    wait::until(
        &format!("{name} at {replicas} ready replica(s), no other pod of it left"),
        PATIENCE,
        || async {
            let d = deployments
                .get(name)
                .await
                .map_err(kube_err("get the webhook's Deployment"))?;
            let ready = d.status.and_then(|s| s.ready_replicas).unwrap_or(0);
            let left = pods
                .list(&ListParams::default().labels(&selector))
                .await
                .map_err(kube_err("list the webhook's pods"))?
                .items
                .len();
            Ok((ready == replicas && left == usize::try_from(replicas).unwrap_or(0)).then_some(()))
        },
        || s.diagnose(),
    )
    .await?;
    Ok(())
}

async fn with_webhook_down(
    s: &Scenario,
    deployments: &Api<Deployment>,
    name: &str,
) -> anyhow::Result<Outcome> {
    scale_and_wait(s, deployments, name, 0).await?;
    let timeout = Api::<MutatingWebhookConfiguration>::all(s.client.clone())
        .list(&ListParams::default().labels(&format!("{PART_OF_LABEL}={PART_OF}")))
        .await
        .context("list the add-on's mutating webhook configurations")?
        .items
        .iter()
        .flat_map(|c| c.webhooks.iter().flatten())
        .filter_map(|w| w.timeout_seconds)
        .max()
        .unwrap_or(10);
    let deadline = Duration::from_secs(u64::try_from(timeout)?);
    let spec = serde_json::to_value(nginx_spec()?)?;

    // A pod the webhook judges: refused (the webhook is down), and promptly.
    let mut judged: Pod = serde_json::from_value(json!({"spec": spec}))?;
    judged.metadata.name = Some("judged".into());
    let started = Instant::now();
    let answer = s.api::<Pod>().create(&PostParams::default(), &judged).await;
    let took = started.elapsed();
    anyhow::ensure!(
        answer.is_err(),
        "a pod was admitted past a webhook that is down (failurePolicy Fail): it cannot have been judged"
    );
    anyhow::ensure!(
        took < deadline,
        "a pod's admission waited {took:?} for the webhook, its configuration allows {deadline:?}"
    );

    // A node agent: the DaemonSet controller must be able to create its pods.
    let daemon_set: DaemonSet = serde_json::from_value(json!({
        "metadata": {"name": "agent"},
        "spec": {"selector": {"matchLabels": {"app": "agent"}},
                 "template": {"metadata": {"labels": {"app": "agent", POLICY_LABEL: "enforce"}},
                              "spec": spec}},
    }))?;
    s.api::<DaemonSet>()
        .create(&PostParams::default(), &daemon_set)
        .await
        .context("create the DaemonSet")?;
    let ds_api = s.api::<DaemonSet>();
    let wanted = wait::until(
        "the DaemonSet's pods created on every node it wants",
        PATIENCE,
        || async {
            let ds = ds_api
                .get("agent")
                .await
                .map_err(kube_err("get the DaemonSet"))?;
            let status = ds.status.unwrap_or_default();
            let pods = s
                .api::<Pod>()
                .list(&ListParams::default().labels("app=agent"))
                .await
                .map_err(kube_err("list the DaemonSet's pods"))?
                .items
                .len();
            let wanted = usize::try_from(status.desired_number_scheduled).unwrap_or(0);
            Ok((wanted > 0 && pods == wanted).then_some(wanted))
        },
        || s.diagnose(),
    )
    .await?;

    // A static pod's mirror, as a kubelet posts it: on an ordinary node, annotated.
    let node = Api::<Node>::all(s.client.clone())
        .list(&ListParams::default())
        .await
        .context("list nodes")?
        .items
        .into_iter()
        .map(|n| n.name_any())
        .find(|n| n != s.virtual_node())
        .context("no node but the virtual one")?;
    let mut mirror: Pod = serde_json::from_value(json!({"spec": spec}))?;
    mirror.metadata.name = Some(format!("static-{node}"));
    mirror.metadata.annotations = Some(BTreeMap::from([(
        "kubernetes.io/config.mirror".to_owned(),
        "0123456789abcdef".to_owned(),
    )]));
    let mirror_spec = mirror.spec.as_mut().context("a spec")?;
    mirror_spec.node_name = Some(node.clone());
    mirror_spec.image_pull_secrets = None;
    let started = Instant::now();
    s.api::<Pod>()
        .create(&PostParams::default(), &mirror)
        .await
        .context("a static pod's mirror was refused with the webhook down")?;
    let mirror_took = started.elapsed();

    // The control plane's own namespace.
    let system: Api<Pod> = Api::namespaced(s.client.clone(), "kube-system");
    let mut system_pod: Pod = serde_json::from_value(json!({"spec": spec}))?;
    let system_name = format!("{}-system", s.namespace);
    system_pod.metadata.name = Some(system_name.clone());
    system_pod.metadata.labels = Some(BTreeMap::from([(
        POLICY_LABEL.to_owned(),
        "enforce".to_owned(),
    )]));
    let started = Instant::now();
    let created = system
        .create(&PostParams::default(), &system_pod)
        .await
        .context("a kube-system pod was refused with the webhook down");
    let system_took = started.elapsed();
    let _ = system
        .delete(&system_name, &DeleteParams::default().grace_period(0))
        .await;
    created?;
    for (what, took) in [
        ("the mirror pod", mirror_took),
        ("the kube-system pod", system_took),
    ] {
        anyhow::ensure!(
            took < deadline,
            "{what}'s admission took {took:?}, the webhook's configuration allows {deadline:?}"
        );
    }
    eprintln!(
        "burstcert: SAFE-02: with the webhook down, {wanted} DaemonSet pod(s), a mirror pod and a kube-system pod created; a judged pod refused in {took:?}"
    );
    Ok(Outcome::Passed)
}

/// A user's requests, in a SubjectAccessReview.
struct Ask<'a> {
    verb: &'a str,
    group: &'a str,
    resource: &'a str,
    subresource: Option<&'a str>,
    namespace: Option<&'a str>,
    name: Option<&'a str>,
}

impl Ask<'_> {
    fn describe(&self) -> String {
        let resource = match self.subresource {
            Some(sub) => format!("{}/{sub}", self.resource),
            None => self.resource.to_owned(),
        };
        let group = if self.group.is_empty() {
            String::new()
        } else {
            format!(".{}", self.group)
        };
        let at = match (self.namespace, self.name) {
            (Some(ns), Some(n)) => format!(" {ns}/{n}"),
            (None, Some(n)) => format!(" {n}"),
            (Some(ns), None) => format!(" in {ns}"),
            (None, None) => String::new(),
        };
        format!("{} {resource}{group}{at}", self.verb)
    }
}

/// Whether the API server allows `account` (in the add-on's namespace) `ask`.
async fn may(client: &kube::Client, account: &str, ask: &Ask<'_>) -> anyhow::Result<bool> {
    let review = SubjectAccessReview {
        spec: SubjectAccessReviewSpec {
            user: Some(format!("system:serviceaccount:{NAMESPACE}:{account}")),
            groups: Some(vec![
                "system:serviceaccounts".into(),
                format!("system:serviceaccounts:{NAMESPACE}"),
                "system:authenticated".into(),
            ]),
            resource_attributes: Some(ResourceAttributes {
                verb: Some(ask.verb.into()),
                group: Some(ask.group.into()),
                resource: Some(ask.resource.into()),
                subresource: ask.subresource.map(Into::into),
                namespace: ask.namespace.map(Into::into),
                name: ask.name.map(Into::into),
                ..ResourceAttributes::default()
            }),
            ..SubjectAccessReviewSpec::default()
        },
        ..SubjectAccessReview::default()
    };
    let answer = Api::<SubjectAccessReview>::all(client.clone())
        .create(&PostParams::default(), &review)
        .await
        .with_context(|| format!("ask whether {account} may {}", ask.describe()))?;
    Ok(answer.status.is_some_and(|s| s.allowed))
}

/// What no account of the add-on may do: everything (a wildcard), and write the Leases and
/// Nodes that are not its own (the control plane's leader leases, another node and its
/// heartbeat).
fn forbidden<'a>(other_node: &'a str) -> Vec<Ask<'a>> {
    let ask = |verb, group, resource, subresource, namespace, name| Ask {
        verb,
        group,
        resource,
        subresource,
        namespace,
        name,
    };
    let mut asks = vec![ask("*", "*", "*", None, None, None)];
    for verb in ["update", "patch", "delete"] {
        for lease in ["kube-controller-manager", "kube-scheduler"] {
            asks.push(ask(
                verb,
                "coordination.k8s.io",
                "leases",
                None,
                Some("kube-system"),
                Some(lease),
            ));
        }
        asks.push(ask(
            verb,
            "coordination.k8s.io",
            "leases",
            None,
            Some("kube-node-lease"),
            Some(other_node),
        ));
        asks.push(ask(verb, "", "nodes", None, None, Some(other_node)));
    }
    asks.push(ask(
        "patch",
        "",
        "nodes",
        Some("status"),
        None,
        Some(other_node),
    ));
    asks
}

/// SAFE-03: least privilege, asked of the API server as each of the add-on's service accounts
/// (SubjectAccessReview): no wildcard, no write to Leases or Nodes but its own; and the add-on's
/// pods pass Pod Security `restricted` (each Deployment's pod template created, as a dry run, in
/// a namespace that enforces it).
pub fn safe_03(s: &Scenario) -> BodyFuture<'_> {
    Box::pin(async move {
        let deployments = addon_deployments(&s.client).await?;
        let mut accounts: Vec<String> = deployments
            .iter()
            .filter_map(|d| {
                d.spec
                    .as_ref()?
                    .template
                    .spec
                    .as_ref()?
                    .service_account_name
                    .clone()
            })
            .collect();
        accounts.sort();
        accounts.dedup();
        anyhow::ensure!(
            !accounts.is_empty(),
            "the add-on's Deployments name no service account"
        );
        let other_node = Api::<Node>::all(s.client.clone())
            .list(&ListParams::default())
            .await
            .context("list nodes")?
            .items
            .into_iter()
            .map(|n| n.name_any())
            .find(|n| n != s.virtual_node())
            .unwrap_or_else(|| "another-node".into());

        // The reviews must be able to say yes, or every "no" below proves nothing: some account
        // keeps its own node's heartbeat.
        let own = Ask {
            verb: "update",
            group: "coordination.k8s.io",
            resource: "leases",
            subresource: None,
            namespace: Some("kube-node-lease"),
            name: Some(s.virtual_node()),
        };
        let mut keeps_own = false;
        for account in &accounts {
            keeps_own |= may(&s.client, account, &own).await?;
        }
        anyhow::ensure!(
            keeps_own,
            "none of the add-on's accounts {accounts:?} may {}: the virtual node could not keep its lease (or the accounts are not the add-on's)",
            own.describe()
        );
        let mut too_much = Vec::new();
        for account in &accounts {
            for ask in forbidden(&other_node) {
                if may(&s.client, account, &ask).await? {
                    too_much.push(format!("{account} may {}", ask.describe()));
                }
            }
        }
        anyhow::ensure!(
            too_much.is_empty(),
            "the add-on holds more than it needs: {}",
            too_much.join("; ")
        );

        // Pod Security: this namespace enforces `restricted`; each template is created as a
        // dry run (no service account: the add-on's are in its own namespace).
        Api::<Namespace>::all(s.client.clone())
            .patch(
                &s.namespace,
                &PatchParams::default(),
                &Patch::Merge(json!({"metadata": {"labels": {
                    "pod-security.kubernetes.io/enforce": "restricted",
                    "pod-security.kubernetes.io/enforce-version": "latest",
                }}})),
            )
            .await
            .context("label the scenario's namespace to enforce Pod Security restricted")?;
        let mut refused = Vec::new();
        for d in &deployments {
            let mut spec = d
                .spec
                .as_ref()
                .and_then(|s| s.template.spec.clone())
                .with_context(|| format!("Deployment {} has no pod template", d.name_any()))?;
            spec.service_account_name = None;
            spec.service_account = None;
            spec.automount_service_account_token = Some(false);
            let pod = Pod {
                metadata: kube::api::ObjectMeta {
                    name: Some(d.name_any()),
                    ..Default::default()
                },
                spec: Some(spec),
                ..Pod::default()
            };
            let dry_run = PostParams {
                dry_run: true,
                ..PostParams::default()
            };
            if let Err(e) = s.api::<Pod>().create(&dry_run, &pod).await {
                refused.push(format!("{}: {e}", d.name_any()));
            }
        }
        anyhow::ensure!(
            refused.is_empty(),
            "the add-on's pods do not pass Pod Security restricted: {}",
            refused.join("; ")
        );
        Ok(Outcome::Passed)
    })
}

/// The add-on's CCI secret, from the one place it may be: its credential Secret (the token, or
/// the secret key of its AK/SK pair).
async fn credential(client: &kube::Client) -> anyhow::Result<String> {
    use k8s_openapi::api::core::v1::Secret;
    let secret = Api::<Secret>::namespaced(client.clone(), NAMESPACE)
        .get(crate::addon::render::CREDENTIALS)
        .await
        .context("read the add-on's credential Secret")?;
    let data = secret.data.unwrap_or_default();
    let text = |key: &str| {
        data.get(key)
            .map(|b| String::from_utf8_lossy(&b.0).into_owned())
            .filter(|t| !t.is_empty())
    };
    let token = text(crate::addon::render::TOKEN_KEY)
        .or_else(|| {
            text(crate::addon::render::AKSK_KEY)
                .and_then(|pair| pair.split_once(':').map(|(_, sk)| sk.trim().to_owned()))
        })
        .context("the credential Secret holds no token and no AK/SK pair")?;
    anyhow::ensure!(
        token.len() >= 8,
        "the credential is too short to be looked for without false alarms"
    );
    Ok(token)
}

/// Where the canary `token` turns up: container arguments and literal environment values of the
/// add-on's pods, events and ConfigMaps of every namespace, the add-on's logs, the command lines
/// of its processes. Answers the places and how many were looked at.
async fn canary(s: &Scenario, token: &str) -> anyhow::Result<(Vec<String>, usize)> {
    use k8s_openapi::api::core::v1::{ConfigMap, Event};
    let mut found = Vec::new();
    let mut looked = 0;
    let pods = Api::<Pod>::namespaced(s.client.clone(), NAMESPACE)
        .list(&ListParams::default().labels(&format!("{PART_OF_LABEL}={PART_OF}")))
        .await
        .context("list the add-on's pods")?
        .items;
    anyhow::ensure!(!pods.is_empty(), "the add-on has no pods to look at");
    for pod in &pods {
        let spec = pod.spec.as_ref().context("a pod without a spec")?;
        for c in spec
            .containers
            .iter()
            .chain(spec.init_containers.iter().flatten())
        {
            looked += 1;
            let words = c.command.iter().chain(c.args.iter()).flatten();
            let literals = c.env.iter().flatten().filter_map(|e| e.value.as_ref());
            if words.chain(literals).any(|w| w.contains(token)) {
                found.push(format!(
                    "pod {}/{} container {}",
                    NAMESPACE,
                    pod.name_any(),
                    c.name
                ));
            }
        }
    }
    for event in Api::<Event>::all(s.client.clone())
        .list(&ListParams::default())
        .await
        .context("list events")?
        .items
    {
        looked += 1;
        if event.message.as_deref().is_some_and(|m| m.contains(token)) {
            found.push(format!(
                "event {}/{}",
                event.metadata.namespace.unwrap_or_default(),
                event.metadata.name.unwrap_or_default()
            ));
        }
    }
    for cm in Api::<ConfigMap>::all(s.client.clone())
        .list(&ListParams::default())
        .await
        .context("list ConfigMaps")?
        .items
    {
        looked += 1;
        if serde_json::to_string(&cm.data)?.contains(token) {
            found.push(format!(
                "configmap {}/{}",
                cm.namespace().unwrap_or_default(),
                cm.name_any()
            ));
        }
    }
    for (name, text) in s.env.addon_log_texts().await? {
        looked += 1;
        if text.contains(token) {
            found.push(format!("log {name}"));
        }
    }
    for pid in s.env.engine_pids() {
        if let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) {
            looked += 1;
            if String::from_utf8_lossy(&cmdline).contains(token) {
                found.push(format!("/proc/{pid}/cmdline"));
            }
        }
    }
    Ok((found, looked))
}

/// A TCP connection to `address` in the cluster's network, opened as a client there would
/// (through the target's [`crate::target::ClusterNetwork`]), within 5 s.
async fn connect(
    s: &Scenario,
    what: &str,
    address: &str,
) -> anyhow::Result<Box<dyn crate::target::Stream>> {
    let network = s
        .env
        .target()
        .cluster_network()
        .context("this target has no path into the cluster's network (Need::ClusterNetwork)")?;
    tokio::time::timeout(Duration::from_secs(5), network.connect(address))
        .await
        .with_context(|| format!("{what} at {address} did not accept within 5 s"))?
        .with_context(|| format!("connect to {what} at {address}"))
}

/// Opens a tunnel request for `authority` to the proxy at `endpoint`, presenting `key` if any;
/// answers the status line.
async fn tunnel_request(
    s: &Scenario,
    endpoint: &str,
    authority: &str,
    key: Option<&str>,
) -> anyhow::Result<String> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut conn = connect(s, "the proxy", endpoint).await?;
    let key = key
        .map(|k| format!("Proxy-Authorization: Bearer {k}\r\n"))
        .unwrap_or_default();
    conn.write_all(
        format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n{key}\r\n").as_bytes(),
    )
    .await?;
    let mut answer = Vec::new();
    let mut chunk = [0u8; 512];
    let read = async {
        while !answer.windows(2).any(|w| w == b"\r\n") {
            match conn.read(&mut chunk).await? {
                0 => break,
                n => answer.extend_from_slice(&chunk[..n]),
            }
        }
        anyhow::Ok(())
    };
    tokio::time::timeout(Duration::from_secs(10), read)
        .await
        .context("the proxy gave no answer within 10 s")??;
    let text = String::from_utf8_lossy(&answer);
    Ok(text.lines().next().unwrap_or_default().to_owned())
}

/// A client certificate the cluster CA signs (CertificateSigningRequest, approved) for `user`,
/// who holds no role: (certificate PEM, key PEM).
async fn certificate_for(s: &Scenario, user: &str) -> anyhow::Result<(String, String)> {
    use k8s_openapi::api::certificates::v1::{
        CertificateSigningRequest, CertificateSigningRequestCondition,
        CertificateSigningRequestStatus,
    };
    let key = rcgen::KeyPair::generate()?;
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new())?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, user);
    params
        .distinguished_name
        .push(rcgen::DnType::OrganizationName, "burstcert:nobody");
    let request = params.serialize_request(&key)?.pem()?;
    let csrs: Api<CertificateSigningRequest> = Api::all(s.client.clone());
    let name = format!("{}-nobody", s.namespace);
    let csr: CertificateSigningRequest = serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {
            "request": k8s_openapi::ByteString(request.into_bytes()),
            "signerName": "kubernetes.io/kube-apiserver-client",
            "usages": ["client auth"],
            "expirationSeconds": 600,
        },
    }))?;
    csrs.create(&PostParams::default(), &csr)
        .await
        .context("create a CertificateSigningRequest")?;
    let approval = CertificateSigningRequest {
        status: Some(CertificateSigningRequestStatus {
            conditions: Some(vec![CertificateSigningRequestCondition {
                type_: "Approved".into(),
                status: "True".into(),
                reason: Some("BurstcertSafe04".into()),
                message: Some("a user without roles, to call the kubelet API".into()),
                ..CertificateSigningRequestCondition::default()
            }]),
            ..CertificateSigningRequestStatus::default()
        }),
        ..csr
    };
    csrs.patch_approval(&name, &PatchParams::default(), &Patch::Merge(&approval))
        .await
        .context("approve the CertificateSigningRequest")?;
    let signed = wait::until(
        "the cluster CA to sign the approved request",
        Duration::from_secs(30),
        || async {
            let csr = csrs.get(&name).await.map_err(kube_err("get the CSR"))?;
            Ok(csr.status.and_then(|s| s.certificate).map(|c| c.0))
        },
        || async {
            String::from("kube-controller-manager signed nothing (is its cluster signing set?)")
        },
    )
    .await?;
    let _ = csrs.delete(&name, &DeleteParams::default()).await;
    Ok((String::from_utf8(signed)?, key.serialize_pem()))
}

/// The status line a GET of `path` at the kubelet API `address` answers the client with
/// `certificate`/`key` (the kubelet's own certificate is not checked: it is self-signed, as the
/// API server takes it).
async fn kubelet_get(
    s: &Scenario,
    address: std::net::SocketAddr,
    path: &str,
    certificate: &str,
    key: &str,
) -> anyhow::Result<String> {
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let chain: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(certificate.as_bytes()).collect::<Result<_, _>>()?;
    let key = PrivateKeyDer::from_pem_slice(key.as_bytes())?;
    let config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(vk_hostnode::AcceptAny(provider)))
        .with_client_auth_cert(chain, key)?;
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = connect(s, "the kubelet API", &address.to_string()).await?;
    let mut tls = connector
        .connect(ServerName::IpAddress(address.ip().into()), tcp)
        .await
        .with_context(|| format!("TLS with the kubelet API at {address}"))?;
    tls.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await?;
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), tls.read_to_end(&mut answer))
        .await
        .context("the kubelet API gave no answer within 10 s")?
        .ok();
    let text = String::from_utf8_lossy(&answer);
    Ok(text.lines().next().unwrap_or_default().to_owned())
}

/// The virtual node's kubelet API address, as the API server calls it.
async fn kubelet_address(s: &Scenario) -> anyhow::Result<std::net::SocketAddr> {
    let node = Api::<Node>::all(s.client.clone())
        .get(s.virtual_node())
        .await
        .context("get the virtual node")?;
    let status = node.status.context("the virtual node has no status")?;
    let ip = status
        .addresses
        .iter()
        .flatten()
        .find(|a| a.type_ == "InternalIP")
        .map(|a| a.address.clone())
        .context("the virtual node has no InternalIP")?;
    let port = status
        .daemon_endpoints
        .and_then(|d| d.kubelet_endpoint)
        .map(|e| e.port)
        .context("the virtual node advertises no kubelet port")?;
    Ok(std::net::SocketAddr::new(ip.parse()?, u16::try_from(port)?))
}

/// SAFE-04: the tenant's CCI credential appears in no container argument, literal environment
/// value, log line, event, ConfigMap or command line of the add-on (its Secret is the one place
/// it lives); the proxy's tunnel refuses a connection that presents no key; the virtual node's
/// kubelet API refuses a client the cluster CA signed but RBAC does not let use `nodes/proxy`,
/// while the API server's own `kubectl logs` of a burst pod still works through it.
pub fn safe_04(s: &Scenario) -> BodyFuture<'_> {
    Box::pin(async move {
        // A burst pod, so the proxy and the kubelet API have something to serve.
        let mut pod: Pod = serde_json::from_value(json!({"spec": nginx_spec()?}))?;
        pod.metadata.name = Some("canary".into());
        pod.metadata.labels = Some(BTreeMap::from([(
            POLICY_LABEL.to_owned(),
            "enforce".to_owned(),
        )]));
        s.api::<Pod>()
            .create(&PostParams::default(), &pod)
            .await
            .context("create a burst pod")?;
        wait::until(
            &format!("the burst pod Running on {}", s.virtual_node()),
            PATIENCE,
            || async {
                let pod = s
                    .api::<Pod>()
                    .get("canary")
                    .await
                    .map_err(kube_err("get the pod"))?;
                Ok(running_on(s.virtual_node(), &pod).then_some(()))
            },
            || s.diagnose(),
        )
        .await?;

        let token = credential(&s.client).await?;
        let (found, looked) = canary(s, &token).await?;
        anyhow::ensure!(
            found.is_empty(),
            "the CCI credential was found outside its Secret: {}",
            found.join("; ")
        );
        eprintln!("burstcert: SAFE-04: the credential found in none of {looked} places looked at");

        let registration: cci_api::ProxyRegistration = s
            .cci()
            .object(s.cci_namespace(), "proxyregistrations", "cluster-proxy")
            .await?
            .context("no proxy registration on CCI (is the interconnect on?)")?;
        let endpoint = registration
            .spec
            .endpoint
            .context("the proxy registers no endpoint")?;
        // A Service with a pod that answers, so an open proxy would open the tunnel (a Service
        // without a backend is refused by any proxy, keyed or not).
        let web = super::web::web_service(s).await?;
        let authority = format!("{}:80", web.target);
        let status = tunnel_request(s, &endpoint, &authority, None).await?;
        anyhow::ensure!(
            !status.contains(" 200 "),
            "the proxy at {endpoint} opened a tunnel to {authority} for a connection with no key: {status}"
        );
        // The control: with the key the registration gives sidecars, the same tunnel opens.
        if let Some(key) = registration.spec.tunnel_key.as_deref() {
            let status = tunnel_request(s, &endpoint, &authority, Some(key)).await?;
            anyhow::ensure!(
                status.contains(" 200 "),
                "with the registration's key the proxy still refused a tunnel to {authority}: {status} (the refusal without it proves nothing)"
            );
        }

        // The API server may use the kubelet API: `kubectl logs` of the burst pod answers.
        s.api::<Pod>()
            .logs("canary", &Default::default())
            .await
            .context("kubectl logs of a burst pod through the API server (its kubelet client must be authorised)")?;
        let (certificate, key) = certificate_for(s, "burstcert-nobody").await?;
        let address = kubelet_address(s).await?;
        let path = format!("/containerLogs/{}/canary/container-0", s.namespace);
        let status = kubelet_get(s, address, &path, &certificate, &key).await?;
        anyhow::ensure!(
            status.contains(" 403 "),
            "the kubelet API at {address} answered a user without nodes/proxy with {status:?}, not 403"
        );
        Ok(Outcome::Passed)
    })
}
