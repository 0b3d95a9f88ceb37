//! Install, upgrade, rollback, uninstall and status of the add-on on a cluster (`BEHAVIOR.md`
//! §2, §8, §9).
//!
//! The add-on's state is a ConfigMap, `kube-system/bursting-addon`, so `kubectl` shows it too:
//! `data.status` is one of [`Status`], `data.params` the parameters installed (the CCI credential
//! is kept only in its Secret), `data.previous` those of the release before the last upgrade
//! (what rollback returns to), `data.message` the reason of a failure.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Node, Pod, Secret, ServiceAccount};
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use kube::{Client, ResourceExt as _};

use super::params::{InstallParams, NodeFacts, preflight};
use super::render::{
    self, CREDENTIALS, NAMESPACE, Rendered, Target, VIRTUAL_KUBELET, VIRTUAL_NODE, WEBHOOK,
    WEBHOOK_TLS,
};
use crate::error::{Error, Result};
use crate::pki::WebhookPki;
use crate::progress::Progress;
use crate::wait;

/// The ConfigMap holding the add-on's state.
pub const STATE: &str = "bursting-addon";
/// Field manager of every server-side apply.
const MANAGER: &str = "burstcert";
/// How long uninstall waits for the gc jobs by default (the seed's 210 s recovery window).
pub const DEFAULT_GC_TIMEOUT: Duration = Duration::from_secs(210);

/// Where the add-on stands, as `kubectl get configmap -n kube-system bursting-addon` shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// Install is applying objects or waiting for them.
    Installing,
    /// Every component is up.
    Running,
    /// Install failed; its objects were removed again.
    InstallFailed,
    /// An upgrade or rollback is replacing components.
    Upgrading,
    /// An upgrade or rollback failed; the components are as far as it got.
    UpgradeFailed,
    /// Uninstall is running (gc jobs, then removal).
    Deleting,
    /// Uninstall failed; see the message. Uninstall may be started again.
    DeleteFailed,
}

impl Status {
    fn as_str(self) -> &'static str {
        match self {
            Status::Installing => "Installing",
            Status::Running => "Running",
            Status::InstallFailed => "InstallFailed",
            Status::Upgrading => "Upgrading",
            Status::UpgradeFailed => "UpgradeFailed",
            Status::Deleting => "Deleting",
            Status::DeleteFailed => "DeleteFailed",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        [
            Status::Installing,
            Status::Running,
            Status::InstallFailed,
            Status::Upgrading,
            Status::UpgradeFailed,
            Status::Deleting,
            Status::DeleteFailed,
        ]
        .into_iter()
        .find(|s| s.as_str() == text)
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The recorded state of an installed add-on.
#[derive(Clone, Debug)]
pub struct AddonState {
    /// Where it stands.
    pub status: Status,
    /// The parameters installed (with the credential read back from its Secret).
    pub params: InstallParams,
    /// The parameters before the last upgrade, if any.
    pub previous: Option<InstallParams>,
    /// Why the last operation failed, if it did.
    pub message: String,
}

/// Options of [`uninstall`].
#[derive(Clone, Debug)]
pub struct UninstallOptions {
    /// How long to wait for the gc jobs before failing with DeleteFailed.
    pub gc_timeout: Duration,
}

impl Default for UninstallOptions {
    fn default() -> Self {
        Self {
            gc_timeout: DEFAULT_GC_TIMEOUT,
        }
    }
}

fn kube_err(context: impl Into<String>) -> impl FnOnce(kube::Error) -> Error {
    let context = context.into();
    move |source| Error::Kube { context, source }
}

fn is_not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404)
}

/// Reads the add-on's state; `None` when it is not installed.
pub async fn state(client: &Client) -> Result<Option<AddonState>> {
    let maps: Api<ConfigMap> = Api::namespaced(client.clone(), NAMESPACE);
    let Some(map) = maps
        .get_opt(STATE)
        .await
        .map_err(kube_err("read the add-on state"))?
    else {
        return Ok(None);
    };
    let data = map.data.unwrap_or_default();
    let parse = |key: &str| -> Result<Option<InstallParams>> {
        data.get(key)
            .filter(|t| !t.is_empty())
            .map(|t| serde_json::from_str(t))
            .transpose()
            .map_err(|e| Error::Step {
                step: format!("read the add-on state ({STATE}.data.{key})"),
                detail: e.to_string(),
            })
    };
    let Some(mut params) = parse("params")? else {
        return Err(Error::Step {
            step: "read the add-on state".into(),
            detail: format!("{NAMESPACE}/{STATE} has no data.params"),
        });
    };
    let mut previous = parse("previous")?;
    // The credential lives only in its Secret.
    let secrets: Api<Secret> = Api::namespaced(client.clone(), NAMESPACE);
    if let Some(secret) = secrets
        .get_opt(CREDENTIALS)
        .await
        .map_err(kube_err("read the CCI credential"))?
        && let Some(data) = secret.data
    {
        let text = |key: &str| {
            data.get(key)
                .map(|b| String::from_utf8_lossy(&b.0).into_owned())
        };
        let (token, aksk) = (
            text("token").unwrap_or_default(),
            text(render::AKSK_KEY).filter(|pair| !pair.is_empty()),
        );
        params.cci_token.clone_from(&token);
        params.cci_aksk.clone_from(&aksk);
        if let Some(p) = previous.as_mut() {
            p.cci_token = token;
            p.cci_aksk = aksk;
        }
    }
    let status = data
        .get("status")
        .and_then(|s| Status::parse(s))
        .unwrap_or(Status::InstallFailed);
    Ok(Some(AddonState {
        status,
        params,
        previous,
        message: data.get("message").cloned().unwrap_or_default(),
    }))
}

fn without_secret(params: &InstallParams) -> String {
    let mut p = params.clone();
    p.cci_token = String::new();
    p.cci_aksk = None;
    serde_json::to_string(&p).expect("parameters serialize")
}

async fn record(
    client: &Client,
    status: Status,
    params: &InstallParams,
    previous: Option<&InstallParams>,
    message: &str,
) -> Result<()> {
    let mut data = BTreeMap::from([
        ("status".to_owned(), status.to_string()),
        ("release".to_owned(), params.release.to_string()),
        ("params".to_owned(), without_secret(params)),
        ("message".to_owned(), message.to_owned()),
    ]);
    data.insert(
        "previous".into(),
        previous.map(without_secret).unwrap_or_default(),
    );
    let map = ConfigMap {
        metadata: kube::api::ObjectMeta {
            name: Some(STATE.into()),
            namespace: Some(NAMESPACE.into()),
            labels: Some(render::labels(params, "state")),
            ..Default::default()
        },
        data: Some(data),
        ..ConfigMap::default()
    };
    Api::<ConfigMap>::namespaced(client.clone(), NAMESPACE)
        .patch(
            STATE,
            &PatchParams::apply(MANAGER).force(),
            &Patch::Apply(&map),
        )
        .await
        .map_err(kube_err(format!("record the add-on status {status}")))?;
    Ok(())
}

/// Sets the recorded status (and message) without touching anything else.
async fn set_status(
    client: &Client,
    state: &AddonState,
    status: Status,
    message: &str,
) -> Result<()> {
    record(
        client,
        status,
        &state.params,
        state.previous.as_ref(),
        message,
    )
    .await
}

fn dynamic_api(client: &Client, r: &ApiResource, namespaced: bool) -> Api<DynamicObject> {
    if namespaced {
        Api::namespaced_with(client.clone(), NAMESPACE, r)
    } else {
        Api::all_with(client.clone(), r)
    }
}

async fn apply(client: &Client, object: &Rendered) -> Result<()> {
    dynamic_api(client, &object.resource, object.namespaced)
        .patch(
            &object.object.name_any(),
            &PatchParams::apply(MANAGER).force(),
            &Patch::Apply(&object.object),
        )
        .await
        .map_err(kube_err(format!("apply {}", object.describe())))?;
    Ok(())
}

/// What install knows about each node: eligible when the add-on's pods may go there.
///
/// Where the add-on's pods may go is what its rendering asks (on local clusters, the host node)
/// and what the API server adds to every pod of its namespace: the namespace's default
/// tolerations and node selector ([`NamespacePlacement`], the upstream PodTolerationRestriction
/// and PodNodeSelector admission plugins; a kind cluster the harness makes reserves its worker
/// for the add-on so).
pub async fn node_facts(client: &Client, target: &Target) -> Result<Vec<NodeFacts>> {
    let nodes = Api::<Node>::all(client.clone())
        .list(&ListParams::default())
        .await
        .map_err(kube_err("list nodes"))?;
    let pods = Api::<Pod>::all(client.clone())
        .list(&ListParams::default())
        .await
        .map_err(kube_err("list pods"))?;
    let namespace = Api::<k8s_openapi::api::core::v1::Namespace>::all(client.clone())
        .get_opt(NAMESPACE)
        .await
        .map_err(kube_err(format!("read namespace {NAMESPACE}")))?;
    let placement = NamespacePlacement::of(namespace.as_ref());
    let mut facts = Vec::new();
    for node in nodes.items {
        let name = node.name_any();
        if name == VIRTUAL_NODE {
            continue;
        }
        let labels = node.labels();
        let spec = node.spec.clone().unwrap_or_default();
        let tolerated = |taint: &k8s_openapi::api::core::v1::Taint| {
            let rendered = match target {
                Target::Local { host_label, .. } => taint.key == *host_label,
                Target::Production => false,
            };
            rendered || placement.tolerates(taint)
        };
        let blocked = spec
            .taints
            .iter()
            .flatten()
            .find(|t| matches!(t.effect.as_str(), "NoSchedule" | "NoExecute") && !tolerated(t));
        let selected = match target {
            Target::Local { host_label, .. } => {
                labels.get(host_label).map(String::as_str) == Some("true")
            }
            Target::Production => true,
        };
        let ineligible = if spec.unschedulable.unwrap_or(false) {
            Some("cordoned".to_owned())
        } else if let Some(t) = blocked {
            Some(format!("taint {}:{} not tolerated", t.key, t.effect))
        } else if let (false, Target::Local { host_label, .. }) = (selected, target) {
            Some(format!("not a host node (no label {host_label}=true)"))
        } else if let Some((key, value)) = placement.unmatched(labels) {
            Some(format!(
                "not selected by namespace {NAMESPACE}'s node selector (no label {key}={value})"
            ))
        } else {
            None
        };
        let allocatable = node
            .status
            .as_ref()
            .and_then(|s| s.allocatable.as_ref())
            .and_then(|a| a.get("pods"))
            .and_then(|q| q.0.parse().ok())
            .unwrap_or(0);
        let used = pods
            .items
            .iter()
            .filter(|p| p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(&name))
            .filter(|p| {
                !matches!(
                    p.status.as_ref().and_then(|s| s.phase.as_deref()),
                    Some("Succeeded" | "Failed")
                )
            })
            .count();
        facts.push(NodeFacts {
            arch: labels
                .get("kubernetes.io/arch")
                .cloned()
                .unwrap_or_else(|| "amd64".into()),
            name,
            allocatable_pods: allocatable,
            pods: u32::try_from(used).unwrap_or(u32::MAX),
            ineligible,
        });
    }
    Ok(facts)
}

/// Namespace annotation of the PodNodeSelector admission plugin: the node selector every pod
/// created in the namespace gets (`key=value,…`).
pub const NODE_SELECTOR_ANNOTATION: &str = "scheduler.alpha.kubernetes.io/node-selector";
/// Namespace annotation of the PodTolerationRestriction admission plugin: the tolerations every
/// pod created in the namespace gets (a JSON list).
pub const DEFAULT_TOLERATIONS_ANNOTATION: &str = "scheduler.alpha.kubernetes.io/defaultTolerations";

/// What the API server adds to every pod of a namespace, from the namespace's annotations (when
/// its PodNodeSelector and PodTolerationRestriction admission plugins are on).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct NamespacePlacement {
    /// The node selector pods get.
    pub node_selector: BTreeMap<String, String>,
    /// The tolerations pods get.
    pub tolerations: Vec<k8s_openapi::api::core::v1::Toleration>,
}

impl NamespacePlacement {
    /// The placement `namespace`'s annotations ask for (none for no namespace; an annotation
    /// that does not parse is ignored, as the API server would refuse the pods instead).
    pub fn of(namespace: Option<&k8s_openapi::api::core::v1::Namespace>) -> Self {
        let annotations = namespace.and_then(|n| n.metadata.annotations.as_ref());
        let get = |key: &str| annotations.and_then(|a| a.get(key)).map(String::as_str);
        let node_selector = get(NODE_SELECTOR_ANNOTATION)
            .into_iter()
            .flat_map(|s| s.split(','))
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
            .collect();
        let tolerations = get(DEFAULT_TOLERATIONS_ANNOTATION)
            .and_then(|json| serde_json::from_str(json).ok())
            .unwrap_or_default();
        Self {
            node_selector,
            tolerations,
        }
    }

    /// Whether the namespace's default tolerations tolerate `taint` (Kubernetes' matching: the
    /// same key, or an empty key with `Exists`; the same effect, or none; `Equal` compares the
    /// value).
    pub fn tolerates(&self, taint: &k8s_openapi::api::core::v1::Taint) -> bool {
        self.tolerations.iter().any(|t| {
            let exists = t.operator.as_deref() == Some("Exists");
            let key = match t.key.as_deref() {
                None | Some("") => exists,
                Some(key) => key == taint.key,
            };
            let effect = t
                .effect
                .as_deref()
                .is_none_or(|e| e.is_empty() || e == taint.effect);
            let value =
                exists || t.value.as_deref().unwrap_or("") == taint.value.as_deref().unwrap_or("");
            key && effect && value
        })
    }

    /// The first label of the node selector `labels` lack, if any.
    pub fn unmatched<'a>(
        &'a self,
        labels: &BTreeMap<String, String>,
    ) -> Option<(&'a str, &'a str)> {
        self.node_selector
            .iter()
            .find(|(k, v)| labels.get(*k) != Some(*v))
            .map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

/// The webhook's PKI: a fresh one for the Service's DNS names (and the local service proxy's
/// address, on local clusters).
fn new_pki(target: &Target) -> Result<WebhookPki> {
    let dns = vec![
        format!("{WEBHOOK}.{NAMESPACE}.svc"),
        format!("{WEBHOOK}.{NAMESPACE}.svc.cluster.local"),
    ];
    let ips: Vec<IpAddr> = match target {
        Target::Local { webhook_url, .. } => url_host(webhook_url).into_iter().collect(),
        Target::Production => Vec::new(),
    };
    crate::pki::generate(&dns, &ips)
}

fn url_host(url: &str) -> Option<IpAddr> {
    let rest = url.split_once("://")?.1;
    let host = rest.split(['/', ':']).next()?;
    host.parse().ok()
}

/// The PKI of the installed webhook, so an upgrade keeps the CA the configurations trust.
async fn current_pki(client: &Client) -> Result<Option<WebhookPki>> {
    let secret = Api::<Secret>::namespaced(client.clone(), NAMESPACE)
        .get_opt(WEBHOOK_TLS)
        .await
        .map_err(kube_err("read the webhook certificate"))?;
    let Some(data) = secret.and_then(|s| s.data) else {
        return Ok(None);
    };
    let text = |k: &str| {
        data.get(k)
            .map(|b| String::from_utf8_lossy(&b.0).into_owned())
    };
    Ok(match (text("ca.crt"), text("tls.crt"), text("tls.key")) {
        (Some(ca_pem), Some(cert_pem), Some(key_pem)) => Some(WebhookPki {
            ca_pem,
            cert_pem,
            key_pem,
        }),
        _ => None,
    })
}

/// Installs the add-on: preconditions first (refused with the numbers, nothing created), then
/// every object, then waits until the components run and the virtual node is Ready. A failure
/// after objects were created removes them again and records `InstallFailed`.
pub async fn install(
    client: &Client,
    params: &InstallParams,
    target: &Target,
    progress: &Progress,
) -> Result<()> {
    let what = format!("install of the add-on {}", params.release);
    let refusals = preflight(params, &node_facts(client, target).await?);
    if !refusals.is_empty() {
        return Err(Error::Refused {
            what,
            reasons: refusals.iter().map(ToString::to_string).collect(),
        });
    }
    if let Some(existing) = state(client).await?
        && existing.status != Status::InstallFailed
    {
        return Err(Error::Refused {
            what,
            reasons: vec![format!(
                "the add-on is already installed (release {}, status {}); use upgrade, or uninstall first",
                existing.params.release, existing.status
            )],
        });
    }
    let pki = new_pki(target)?;
    let objects = render::render_for_install(params, target, &pki)?;
    record(client, Status::Installing, params, None, "").await?;
    let step = progress.spinner(&format!("install the add-on {}", params.release));
    let applied = async {
        for object in &objects {
            apply(client, object).await?;
        }
        wait_running(client, params).await
    }
    .await;
    match applied {
        Ok(()) => {
            record(client, Status::Running, params, None, "").await?;
            step.finish(&format!("add-on {} Running", params.release));
            Ok(())
        }
        Err(e) => {
            step.fail("install failed; removing what it created");
            remove_objects(client).await?;
            record(client, Status::InstallFailed, params, None, &e.to_string()).await?;
            Err(e)
        }
    }
}

/// Waits until every Deployment of the add-on has all its replicas updated and available, and
/// the virtual node is Ready.
async fn wait_running(client: &Client, params: &InstallParams) -> Result<()> {
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), NAMESPACE);
    let nodes: Api<Node> = Api::all(client.clone());
    wait::until(
        &format!(
            "the add-on {} to run (components available, {VIRTUAL_NODE} Ready)",
            params.release
        ),
        Duration::from_secs(120),
        || async {
            // A component that crash-loops or cannot pull will not run by waiting: say so now,
            // in its own words.
            // (Only this release's components: not an old pod an upgrade is replacing, nor a gc
            // Job's pod.)
            let components = format!(
                "{},bursting.cci.io/release={},app.kubernetes.io/component!=gc",
                render::selector(),
                params.release
            );
            crate::stuck::fail_if_stuck(client, NAMESPACE, &components).await?;
            let list = deployments
                .list(&ListParams::default().labels(&render::selector()))
                .await
                .map_err(kube_err("list the add-on's deployments"))?;
            let release = params.release.to_string();
            for d in &list.items {
                let wanted = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
                let status = d.status.clone().unwrap_or_default();
                let current = d.labels().get("bursting.cci.io/release") == Some(&release)
                    && d.metadata.generation == status.observed_generation
                    && status.updated_replicas.unwrap_or(0) == wanted
                    && status.available_replicas.unwrap_or(0) == wanted
                    && status.replicas.unwrap_or(0) == wanted;
                if !current {
                    return Ok(None);
                }
            }
            let Some(node) = nodes
                .get_opt(VIRTUAL_NODE)
                .await
                .map_err(kube_err("get the virtual node"))?
            else {
                return Ok(None);
            };
            if !crate::cluster::node_ready(&node) {
                return Ok(None);
            }
            // Available pods are not yet a webhook the API server can reach (the path to them,
            // a Service, may lag): a dry-run pod creation goes through the real webhook.
            Ok(webhook_answers(client).await.then_some(()))
        },
        || diagnose(client),
    )
    .await
}

/// Whether the API server can call the add-on's webhook: a server-side dry run of a plain pod in
/// `default` (a namespace the webhook covers) is admitted. Creates nothing.
async fn webhook_answers(client: &Client) -> bool {
    let probe: Pod = match serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "bursting-webhook-probe"},
        "spec": {"containers": [{"name": "c", "image": "probe"}]}
    })) {
        Ok(p) => p,
        Err(_) => return false,
    };
    let params = kube::api::PostParams {
        dry_run: true,
        field_manager: Some(MANAGER.into()),
    };
    match Api::<Pod>::namespaced(client.clone(), "default")
        .create(&params, &probe)
        .await
    {
        Ok(_) => true,
        Err(e) => {
            tracing::debug!(error = %e, "the webhook does not answer yet");
            false
        }
    }
}

/// The add-on's pods and why they are not ready, for a timeout's message.
pub async fn diagnose(client: &Client) -> String {
    let pods: Api<Pod> = Api::namespaced(client.clone(), NAMESPACE);
    let mut out = String::from("add-on pods:\n");
    match pods
        .list(&ListParams::default().labels(&render::selector()))
        .await
    {
        Ok(list) => {
            for p in list.items {
                let status = p.status.unwrap_or_default();
                let waiting: Vec<String> = status
                    .container_statuses
                    .iter()
                    .flatten()
                    .filter_map(|c| {
                        let w = c.state.as_ref()?.waiting.as_ref()?;
                        Some(format!(
                            "{}: {} {}",
                            c.name,
                            w.reason.clone().unwrap_or_default(),
                            w.message.clone().unwrap_or_default()
                        ))
                    })
                    .collect();
                let conditions: Vec<String> = status
                    .conditions
                    .iter()
                    .flatten()
                    .filter(|c| c.status != "True")
                    .map(|c| {
                        format!(
                            "{}={} {}",
                            c.type_,
                            c.status,
                            c.message.clone().unwrap_or_default()
                        )
                    })
                    .collect();
                out.push_str(&format!(
                    "  {} node={} phase={} {} {}\n",
                    p.metadata.name.unwrap_or_default(),
                    p.spec
                        .and_then(|s| s.node_name)
                        .unwrap_or_else(|| "-".into()),
                    status.phase.unwrap_or_default(),
                    waiting.join("; "),
                    conditions.join("; ")
                ));
            }
        }
        Err(e) => out.push_str(&format!("  (cannot list: {e})\n")),
    }
    out
}

/// Upgrades (or rolls back, or reconfigures) the installed add-on to `params`: components are
/// replaced in place (the webhook pod by pod, a new one Ready before an old one goes), burst
/// pods stay, the webhook's certificate is kept. The parameters replaced become the ones
/// rollback returns to.
pub async fn upgrade(
    client: &Client,
    params: &InstallParams,
    target: &Target,
    progress: &Progress,
) -> Result<()> {
    let Some(current) = state(client).await? else {
        return Err(Error::Refused {
            what: format!("upgrade of the add-on to {}", params.release),
            reasons: vec!["the add-on is not installed".into()],
        });
    };
    if !matches!(current.status, Status::Running | Status::UpgradeFailed) {
        return Err(Error::Refused {
            what: format!("upgrade of the add-on to {}", params.release),
            reasons: vec![format!(
                "the add-on is {}; it must be Running",
                current.status
            )],
        });
    }
    // An upgrade (also to the same release) renews the webhook's certificates once two thirds
    // of their validity have passed; the pod template's fingerprint rolls the webhook onto them.
    let pki = match current_pki(client).await? {
        Some(pki) if !crate::pki::renewal_due(&pki.cert_pem, chrono::Utc::now().timestamp()) => pki,
        _ => new_pki(target)?,
    };
    let objects = render::render_for_install(params, target, &pki)?;
    record(client, Status::Upgrading, params, Some(&current.params), "").await?;
    let step = progress.spinner(&format!(
        "upgrade the add-on {} -> {}",
        current.params.release, params.release
    ));
    let done = async {
        for object in &objects {
            apply(client, object).await?;
        }
        // A component the new parameters no longer have (the proxy without interconnect).
        remove_stale(client, &objects).await?;
        wait_running(client, params).await
    }
    .await;
    match done {
        Ok(()) => {
            record(client, Status::Running, params, Some(&current.params), "").await?;
            step.finish(&format!("add-on {} Running", params.release));
            Ok(())
        }
        Err(e) => {
            step.fail("upgrade failed");
            record(
                client,
                Status::UpgradeFailed,
                params,
                Some(&current.params),
                &e.to_string(),
            )
            .await?;
            Err(e)
        }
    }
}

/// Returns to the parameters before the last upgrade.
pub async fn rollback(
    client: &Client,
    target: &Target,
    progress: &Progress,
) -> Result<InstallParams> {
    let current = state(client).await?;
    let Some(previous) = current.and_then(|s| s.previous) else {
        return Err(Error::Refused {
            what: "rollback of the add-on".into(),
            reasons: vec!["no earlier release is recorded (nothing was upgraded)".into()],
        });
    };
    upgrade(client, &previous, target, progress).await?;
    Ok(previous)
}

/// Changes the recorded parameters without redeploying (as editing the add-on's values does):
/// they take effect at the next upgrade, and uninstall's gc jobs use them.
pub async fn configure(client: &Client, params: &InstallParams) -> Result<()> {
    let Some(current) = state(client).await? else {
        return Err(Error::Refused {
            what: "configure the add-on".into(),
            reasons: vec!["the add-on is not installed".into()],
        });
    };
    record(
        client,
        current.status,
        params,
        current.previous.as_ref(),
        &current.message,
    )
    .await
}

/// Kinds the add-on creates, namespaced first; webhook configurations first of all, so no pod
/// creation is sent to a webhook that is going away.
fn addon_kinds() -> Vec<(ApiResource, bool)> {
    use k8s_openapi::api::admissionregistration::v1::{
        MutatingWebhookConfiguration, ValidatingWebhookConfiguration,
    };
    use k8s_openapi::api::core::v1::Service;
    use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
    vec![
        (
            ApiResource::erase::<MutatingWebhookConfiguration>(&()),
            false,
        ),
        (
            ApiResource::erase::<ValidatingWebhookConfiguration>(&()),
            false,
        ),
        (ApiResource::erase::<Deployment>(&()), true),
        (
            ApiResource::erase::<k8s_openapi::api::policy::v1::PodDisruptionBudget>(&()),
            true,
        ),
        (ApiResource::erase::<Job>(&()), true),
        (ApiResource::erase::<Service>(&()), true),
        (ApiResource::erase::<Secret>(&()), true),
        (ApiResource::erase::<ServiceAccount>(&()), true),
        (ApiResource::erase::<ClusterRoleBinding>(&()), false),
        (ApiResource::erase::<ClusterRole>(&()), false),
    ]
}

/// Deletes objects of the add-on that are not in `keep`.
async fn remove_stale(client: &Client, keep: &[Rendered]) -> Result<()> {
    for (resource, namespaced) in addon_kinds() {
        if resource.kind == "Job" {
            continue;
        }
        let api = dynamic_api(client, &resource, namespaced);
        let list = api
            .list(&ListParams::default().labels(&render::selector()))
            .await
            .map_err(kube_err(format!("list {}s of the add-on", resource.kind)))?;
        for object in list.items {
            let name = object.name_any();
            let kept = keep
                .iter()
                .any(|r| r.resource.kind == resource.kind && r.object.name_any() == name);
            if !kept {
                delete_if_present(&api, &name, &DeleteParams::background(), &resource.kind).await?;
            }
        }
    }
    Ok(())
}

/// Deletes `name` through `api`; one already gone is fine (every removal here is idempotent).
async fn delete_if_present<K>(
    api: &Api<K>,
    name: &str,
    params: &DeleteParams,
    what: &str,
) -> Result<()>
where
    K: Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    match api.delete(name, params).await {
        Ok(_) => Ok(()),
        Err(e) if is_not_found(&e) => Ok(()),
        Err(e) => Err(kube_err(format!("delete {what} {name}"))(e)),
    }
}

/// Deletes every object labelled as the add-on's (not the state ConfigMap).
async fn remove_objects(client: &Client) -> Result<()> {
    for (resource, namespaced) in addon_kinds() {
        let api = dynamic_api(client, &resource, namespaced);
        let list = api
            .list(&ListParams::default().labels(&render::selector()))
            .await
            .map_err(kube_err(format!("list {}s of the add-on", resource.kind)))?;
        for object in list.items {
            delete_if_present(
                &api,
                &object.name_any(),
                &DeleteParams::background(),
                &resource.kind,
            )
            .await?;
        }
    }
    Ok(())
}

/// Removes every object of the add-on and its state without running the gc (the CCI side is
/// left as it is): what a test environment does to start over after a failed uninstall.
pub async fn force_remove(client: &Client) -> Result<()> {
    remove_objects(client).await?;
    delete_state(client).await
}

async fn delete_state(client: &Client) -> Result<()> {
    let maps: Api<ConfigMap> = Api::namespaced(client.clone(), NAMESPACE);
    delete_if_present(&maps, STATE, &DeleteParams::default(), "the add-on state").await
}

/// How one gc job ended.
#[derive(Clone, Debug, PartialEq, Eq)]
enum JobEnd {
    Complete,
    Failed(String),
    /// Deleted while uninstall waited (the seed's recovery for a wrong registry).
    Gone,
}

fn job_end(job: Option<&Job>) -> Option<JobEnd> {
    let Some(job) = job else {
        return Some(JobEnd::Gone);
    };
    let conditions = job.status.as_ref()?.conditions.as_ref()?;
    for c in conditions {
        if c.status == "True" && c.type_ == "Complete" {
            return Some(JobEnd::Complete);
        }
        if c.status == "True" && c.type_ == "Failed" {
            return Some(JobEnd::Failed(c.message.clone().unwrap_or_default()));
        }
    }
    None
}

/// Uninstalls the add-on (§8): stops the virtual kubelet, runs the two gc jobs in `kube-system`
/// (image from the recorded `swr_addr`) and waits for them; only when both completed (or were
/// deleted by hand) removes every object of the add-on, the virtual node and the state. A gc job
/// that fails or does not finish within `gc_timeout` leaves the add-on `DeleteFailed` with the
/// CCI side as it was; running uninstall again picks up the same jobs.
pub async fn uninstall(
    client: &Client,
    target: &Target,
    options: &UninstallOptions,
    progress: &Progress,
) -> Result<()> {
    let Some(current) = state(client).await? else {
        return Err(Error::Refused {
            what: "uninstall of the add-on".into(),
            reasons: vec!["the add-on is not installed".into()],
        });
    };
    set_status(client, &current, Status::Deleting, "").await?;
    let step = progress.spinner("uninstall the add-on: stop the virtual kubelet, run the gc jobs");
    match run_gc(client, &current, target, options).await {
        Ok(()) => {}
        Err(e) => {
            step.fail("uninstall failed");
            set_status(client, &current, Status::DeleteFailed, &e.to_string()).await?;
            return Err(e);
        }
    }
    remove_objects(client).await?;
    let nodes: Api<Node> = Api::all(client.clone());
    delete_if_present(&nodes, VIRTUAL_NODE, &DeleteParams::default(), "node").await?;
    let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-node-lease");
    delete_if_present(&leases, VIRTUAL_NODE, &DeleteParams::default(), "lease").await?;
    let leases: Api<Lease> = Api::namespaced(client.clone(), NAMESPACE);
    delete_if_present(
        &leases,
        render::LEADER_LEASE,
        &DeleteParams::default(),
        "leader lease",
    )
    .await?;
    // The add-on's pods end with their Deployments and Jobs; wait so "uninstalled" means gone.
    let pods: Api<Pod> = Api::namespaced(client.clone(), NAMESPACE);
    wait::until(
        "the add-on's pods to be gone",
        Duration::from_secs(60),
        || async {
            let list = pods
                .list(&ListParams::default().labels(&render::selector()))
                .await
                .map_err(kube_err("list the add-on's pods"))?;
            Ok(list.items.is_empty().then_some(()))
        },
        || diagnose(client),
    )
    .await?;
    delete_state(client).await?;
    step.finish("add-on uninstalled");
    Ok(())
}

async fn run_gc(
    client: &Client,
    current: &AddonState,
    target: &Target,
    options: &UninstallOptions,
) -> Result<()> {
    let params = &current.params;
    // The engine must be stopped first, or it would recreate what the gc removes.
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), NAMESPACE);
    delete_if_present(
        &deployments,
        VIRTUAL_KUBELET,
        &DeleteParams::foreground(),
        "deployment",
    )
    .await?;
    let pods: Api<Pod> = Api::namespaced(client.clone(), NAMESPACE);
    let vk_selector = "app.kubernetes.io/component=virtual-kubelet";
    wait::until(
        "the virtual kubelet to stop",
        Duration::from_secs(60),
        || async {
            let list = pods
                .list(&ListParams::default().labels(vk_selector))
                .await
                .map_err(kube_err("list the virtual kubelet's pods"))?;
            Ok(list.items.is_empty().then_some(()))
        },
        || diagnose(client),
    )
    .await?;

    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), NAMESPACE);
    let account = render::gc_account(params);
    accounts
        .patch(
            &account.name_any(),
            &PatchParams::apply(MANAGER).force(),
            &Patch::Apply(&account),
        )
        .await
        .map_err(kube_err("apply the gc service account"))?;
    let jobs: Api<Job> = Api::namespaced(client.clone(), NAMESPACE);
    let wanted = render::gc_jobs_as_created(params, target)?;
    for job in &wanted {
        // A job left by an earlier attempt is waited on, not replaced.
        if jobs
            .get_opt(&job.name_any())
            .await
            .map_err(kube_err("read the gc jobs"))?
            .is_none()
        {
            jobs.create(&Default::default(), job)
                .await
                .map_err(kube_err(format!("create gc job {}", job.name_any())))?;
        }
    }
    let names: Vec<String> = wanted.iter().map(|j| j.name_any()).collect();
    // Said in the state, so an operator (or a test) knows deleting the jobs now is safe.
    set_status(
        client,
        current,
        Status::Deleting,
        &format!("waiting for the gc jobs {}", names.join(", ")),
    )
    .await?;
    // The gc timeout is the add-on's behaviour (UN-02 measures it): never scaled by patience.
    let ends = wait::until_exactly(
        &format!("the gc jobs {} to finish", names.join(", ")),
        options.gc_timeout,
        || async {
            let mut ends = Vec::new();
            for name in &names {
                let job = jobs
                    .get_opt(name)
                    .await
                    .map_err(kube_err("read the gc jobs"))?;
                match job_end(job.as_ref()) {
                    Some(end) => ends.push((name.clone(), end)),
                    None => return Ok(None),
                }
            }
            Ok(Some(ends))
        },
        || diagnose(client),
    )
    .await?;
    let failed: Vec<String> = ends
        .iter()
        .filter_map(|(name, end)| match end {
            JobEnd::Failed(why) => Some(format!("gc job {name} failed: {why}")),
            _ => None,
        })
        .collect();
    if failed.is_empty() {
        Ok(())
    } else {
        Err(Error::Step {
            step: "run the gc jobs".into(),
            detail: format!("{}\n{}", failed.join("\n"), diagnose(client).await),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_namespace_places_its_pods_by_its_admission_annotations() {
        use k8s_openapi::api::core::v1::{Namespace, Taint};
        let namespace: Namespace = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "kube-system", "annotations": {
                NODE_SELECTOR_ANNOTATION: "burstcert.dev/host-node=true",
                DEFAULT_TOLERATIONS_ANNOTATION:
                    r#"[{"key":"burstcert.dev/host-node","operator":"Exists","effect":"NoSchedule"}]"#,
            }},
        }))
        .unwrap();
        let placement = NamespacePlacement::of(Some(&namespace));
        let taint = |key: &str, effect: &str| Taint {
            key: key.into(),
            value: Some("true".into()),
            effect: effect.into(),
            ..Taint::default()
        };
        assert!(placement.tolerates(&taint("burstcert.dev/host-node", "NoSchedule")));
        assert!(!placement.tolerates(&taint("burstcert.dev/host-node", "NoExecute")));
        assert!(!placement.tolerates(&taint(
            "node-role.kubernetes.io/control-plane",
            "NoSchedule"
        )));
        let host = BTreeMap::from([("burstcert.dev/host-node".to_owned(), "true".to_owned())]);
        assert_eq!(placement.unmatched(&host), None);
        assert_eq!(
            placement.unmatched(&BTreeMap::new()),
            Some(("burstcert.dev/host-node", "true"))
        );
        let none = NamespacePlacement::of(None);
        assert!(!none.tolerates(&taint("burstcert.dev/host-node", "NoSchedule")));
        assert_eq!(none.unmatched(&BTreeMap::new()), None);
    }

    #[test]
    fn status_names_round_trip() {
        for s in [
            Status::Installing,
            Status::Running,
            Status::InstallFailed,
            Status::Upgrading,
            Status::UpgradeFailed,
            Status::Deleting,
            Status::DeleteFailed,
        ] {
            assert_eq!(Status::parse(s.as_str()), Some(s));
        }
        assert_eq!(Status::parse("Deleted"), None);
    }

    #[test]
    fn a_deleted_gc_job_counts_as_finished_and_a_failed_one_names_its_reason() {
        assert_eq!(job_end(None), Some(JobEnd::Gone));
        let mut job = Job::default();
        assert_eq!(job_end(Some(&job)), None);
        job.status = Some(k8s_openapi::api::batch::v1::JobStatus {
            conditions: Some(vec![k8s_openapi::api::batch::v1::JobCondition {
                type_: "Failed".into(),
                status: "True".into(),
                message: Some("BackoffLimitExceeded".into()),
                ..Default::default()
            }]),
            ..Default::default()
        });
        assert_eq!(
            job_end(Some(&job)),
            Some(JobEnd::Failed("BackoffLimitExceeded".into()))
        );
    }

    #[test]
    fn the_webhook_certificate_names_the_local_proxy_address() {
        assert_eq!(
            url_host("https://127.254.1.2:443"),
            Some("127.254.1.2".parse().unwrap())
        );
        assert_eq!(
            url_host("https://bursting-webhook.kube-system.svc:443/x"),
            None
        );
    }
}
