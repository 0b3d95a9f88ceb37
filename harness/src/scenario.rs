//! One scenario: its ID, a namespace of its own in the shared cluster, and the mock's view of
//! the cluster's CCI namespace. The namespace is removed when the scenario ends.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Event, Namespace, Pod, ServiceAccount};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, DeleteParams, ListParams, PostParams};

use crate::cci::CciClient;
use crate::env::Env;
use crate::error::{Error, Result};
use crate::mock_admin::MockAdmin;
pub use crate::needs::Need;

/// What a scenario body concluded when it did not fail.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "outcome", content = "reason", rename_all = "snake_case")]
pub enum Outcome {
    /// Every assertion held.
    Passed,
    /// An assertion failed, a wait ran out, or the body panicked; the text says which.
    Failed(String),
    /// The release does not have the behaviour (a release gate); the text names the gate.
    /// Never counted as passed, but a certified release may have such rows.
    NotApplicable(String),
    /// The scenario could not run on this target (e.g. it needs the mock CCI's inside view and
    /// the cluster has none); the text says what it needs. Never counted as passed, and a run
    /// with such rows is never certified.
    NotRun(String),
    /// The scenario has no body yet. Never counted as passed.
    NotImplemented,
    /// Left out of this run by `--focus` / `--skip`. Never counted as passed.
    Skipped(String),
}

impl Outcome {
    /// Short label for reports.
    pub fn label(&self) -> &'static str {
        match self {
            Outcome::Passed => "passed",
            Outcome::Failed(_) => "failed",
            Outcome::NotApplicable(_) => "not applicable",
            Outcome::NotRun(_) => "not run",
            Outcome::NotImplemented => "not implemented",
            Outcome::Skipped(_) => "skipped",
        }
    }

    /// The reason, where there is one.
    pub fn reason(&self) -> &str {
        match self {
            Outcome::Failed(r)
            | Outcome::NotApplicable(r)
            | Outcome::NotRun(r)
            | Outcome::Skipped(r) => r,
            Outcome::Passed => "",
            Outcome::NotImplemented => "no scenario body yet",
        }
    }
}

/// Label put on every scenario namespace (what `burstcert` made, for clean-up and inspection).
pub const SCENARIO_LABEL: &str = "burstcert.io/scenario";

/// A running scenario.
pub struct Scenario {
    /// The scenario ID, e.g. `WL-02`.
    pub id: String,
    /// The scenario's own namespace in the cluster.
    pub namespace: String,
    /// An admin client of the cluster.
    pub client: kube::Client,
    /// The environment it runs on (the shared one, or an extra cluster).
    pub env: Arc<Env>,
    finished: bool,
}

impl Scenario {
    /// Starts scenario `id` (e.g. `"WL-02"`) on environment `env` (a run's shared one, or an
    /// extra cluster a cluster-wide scenario holds, see [`crate::env::Run::hold_extra_cluster`]):
    /// creates the namespace `{id}-{random}` (lower case).
    pub async fn new(id: &str, env: Arc<Env>) -> Result<Self> {
        let client = env.client().await?;
        let namespace = format!(
            "{}-{}",
            id.to_ascii_lowercase(),
            &crate::cluster::local::random_name()[10..]
        );
        let ns = Namespace {
            metadata: ObjectMeta {
                name: Some(namespace.clone()),
                labels: Some(BTreeMap::from([(SCENARIO_LABEL.to_owned(), id.to_owned())])),
                ..Default::default()
            },
            ..Default::default()
        };
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &ns)
            .await
            .map_err(|source| Error::Kube {
                context: format!("create namespace {namespace} for {id}"),
                source,
            })?;
        // Pods cannot be created before the controller-manager gives the namespace its
        // `default` service account; a scenario must not race it.
        let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), &namespace);
        crate::wait::until(
            &format!("the default service account of {namespace}"),
            Duration::from_secs(30),
            || async {
                Ok(accounts
                    .get_opt("default")
                    .await
                    .map_err(|source| Error::Kube {
                        context: "get service account default".into(),
                        source,
                    })?
                    .map(|_| ()))
            },
            || async { String::from("the controller-manager did not create it") },
        )
        .await?;
        eprintln!(
            "burstcert: scenario {id} in namespace {namespace} (cluster {})",
            env.cluster_name()
        );
        Ok(Self {
            id: id.to_owned(),
            namespace,
            client,
            env,
            finished: false,
        })
    }

    /// CCI's public API, as this cluster's tenant.
    pub fn cci(&self) -> &CciClient {
        &self.env.cci
    }

    /// The mock's admin side (scenarios that call this declare [`Need::MockAdmin`]).
    pub fn mock_admin(&self) -> anyhow::Result<&MockAdmin> {
        self.env.mock_admin().ok_or_else(|| {
            anyhow::anyhow!(
                "{} needs {}; its catalogue entry must declare Need::MockAdmin",
                self.id,
                Need::MockAdmin.describe()
            )
        })
    }

    /// The add-on's virtual node on this cluster (`bursting-node` where the harness installed
    /// the add-on; on an existing cluster, the one found or named).
    pub fn virtual_node(&self) -> &str {
        self.env.virtual_node()
    }

    /// The CCI namespace of this cluster.
    pub fn cci_namespace(&self) -> &str {
        &self.env.cci_namespace
    }

    /// A namespaced API in the scenario's namespace.
    pub fn api<K>(&self) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        <K as kube::Resource>::DynamicType: Default,
    {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    /// CCI pods that stand for pods of this scenario's namespace, found as a user would: the
    /// CCI namespace's pods matched to the namespace's cluster pods ([`stands_for`]), not only
    /// through an annotation the reference engine writes.
    pub async fn cci_pods(&self) -> Result<Vec<cci_api::Pod>> {
        let cluster: Vec<ClusterPod> = self
            .api::<Pod>()
            .list(&ListParams::default())
            .await
            .map_err(|source| Error::Kube {
                context: format!("list the pods of {}", self.namespace),
                source,
            })?
            .items
            .into_iter()
            .map(|p| ClusterPod {
                name: p.metadata.name.unwrap_or_default(),
                uid: p.metadata.uid.unwrap_or_default(),
                labels: p.metadata.labels.unwrap_or_default(),
            })
            .collect();
        Ok(self
            .cci()
            .pods(self.cci_namespace())
            .await?
            .into_iter()
            .filter(|p| stands_for(p, &self.namespace, &cluster))
            .collect())
    }

    /// A diagnosis for timeouts: the namespace's pods and events, the mock's view, the engine's log.
    pub async fn diagnose(&self) -> String {
        let pods = self
            .api::<Pod>()
            .list(&ListParams::default())
            .await
            .map(|l| {
                l.items
                    .iter()
                    .map(|p| {
                        let status = p.status.as_ref();
                        format!(
                            "  {} node={} phase={}",
                            p.metadata.name.as_deref().unwrap_or("?"),
                            p.spec
                                .as_ref()
                                .and_then(|s| s.node_name.as_deref())
                                .unwrap_or("-"),
                            status.and_then(|s| s.phase.as_deref()).unwrap_or("-"),
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            })
            .unwrap_or_else(|e| format!("  (cannot list pods: {e})"));
        let events = self
            .api::<Event>()
            .list(&ListParams::default())
            .await
            .map(|l| {
                let mut items = l.items;
                items.sort_by_key(|e| e.last_timestamp.clone().map(|t| t.0));
                items
                    .iter()
                    .rev()
                    .take(15)
                    .map(|e| {
                        format!(
                            "  {} {} {}: {}",
                            e.type_.as_deref().unwrap_or("?"),
                            e.involved_object.name.as_deref().unwrap_or("?"),
                            e.reason.as_deref().unwrap_or("?"),
                            e.message.as_deref().unwrap_or("")
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            })
            .unwrap_or_else(|e| format!("  (cannot list events: {e})"));
        format!(
            "scenario {} namespace {}\npods:\n{pods}\nrecent events:\n{events}\n{}\nengine log (last 30 lines):\n{}\nwebhook log (last 15 lines):\n{}",
            self.id,
            self.namespace,
            self.cci().describe(self.cci_namespace()).await,
            self.env.engine_log_tail(30),
            self.env.webhook_log_tail(15)
        )
    }

    /// Ends the scenario: deletes its namespace. (Dropping without `finish` does the same in
    /// the background, best effort.)
    pub async fn finish(mut self) -> Result<()> {
        self.finished = true;
        delete_namespace(&self.client, &self.namespace).await
    }
}

impl Drop for Scenario {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        // A failed (panicking) scenario still gives back its namespace. The client belongs to the
        // test's runtime, which may be unwinding, so use a fresh runtime on a fresh thread.
        let namespace = self.namespace.clone();
        let env = std::sync::Arc::clone(&self.env);
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async {
                if let Ok(client) = env.client().await {
                    let _ = tokio::time::timeout(
                        Duration::from_secs(10),
                        delete_namespace(&client, &namespace),
                    )
                    .await;
                }
            });
        })
        .join();
    }
}

/// What [`stands_for`] knows of a cluster pod.
#[derive(Clone, Debug, Default)]
pub struct ClusterPod {
    /// Its name.
    pub name: String,
    /// Its UID.
    pub uid: String,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
}

/// Whether CCI pod `cci` stands for a pod of cluster namespace `namespace`, whose current pods
/// are `cluster`. Any one of these is enough:
/// - it carries the cluster pod's UID (label `bursting.cci.io/cluster-pod-uid`) or its
///   `namespace/name` (annotation `bursting.cci.io/cluster-pod`): the reference engine's marks;
/// - its name is `{namespace}.{name}` (the reference engine's naming; CCI keeps one namespace
///   per cluster, so a pod's name alone could collide across cluster namespaces), or it starts
///   with `{namespace}.` (a pod already gone from the cluster);
/// - it carries every label of a cluster pod (non-empty) and its name contains that pod's name:
///   how a user matches pods an engine carried over under its own naming.
///
/// The documentation names neither scheme; these are ours. A pod whose cluster pod is gone and
/// that carries none of the marks and not the namespace in its name is not seen.
pub fn stands_for(cci: &cci_api::Pod, namespace: &str, cluster: &[ClusterPod]) -> bool {
    let meta = &cci.metadata;
    let name = meta.name.as_deref().unwrap_or_default();
    let labels = meta.labels.clone().unwrap_or_default();
    let owner = meta
        .annotations
        .as_ref()
        .and_then(|a| a.get(cci_api::ANNOTATION_CLUSTER_POD));
    if owner.is_some_and(|o| o.starts_with(&format!("{namespace}/"))) {
        return true;
    }
    if name.starts_with(&format!("{namespace}.")) {
        return true;
    }
    let uid = labels.get(cci_api::LABEL_CLUSTER_POD_UID);
    cluster.iter().any(|p| {
        uid.is_some_and(|u| !p.uid.is_empty() && *u == p.uid)
            || (!p.labels.is_empty()
                && !p.name.is_empty()
                && name.contains(&p.name)
                && p.labels.iter().all(|(k, v)| labels.get(k) == Some(v)))
    })
}

async fn delete_namespace(client: &kube::Client, namespace: &str) -> Result<()> {
    match Api::<Namespace>::all(client.clone())
        .delete(namespace, &DeleteParams::default())
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(source) => Err(Error::Kube {
            context: format!("delete namespace {namespace}"),
            source,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    fn cci_pod(name: &str, labels: &[(&str, &str)], owner: Option<&str>) -> cci_api::Pod {
        let mut meta = ObjectMeta {
            name: Some(name.into()),
            labels: Some(
                labels
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect(),
            ),
            ..Default::default()
        };
        if let Some(o) = owner {
            meta.annotations = Some(BTreeMap::from([(
                cci_api::ANNOTATION_CLUSTER_POD.to_owned(),
                o.to_owned(),
            )]));
        }
        cci_api::Pod::new(meta, Default::default())
    }

    fn web() -> Vec<ClusterPod> {
        vec![ClusterPod {
            name: "web-5d8f-abcde".into(),
            uid: "u-1".into(),
            labels: BTreeMap::from([("app".to_owned(), "web".to_owned())]),
        }]
    }

    #[rstest]
    #[case::the_owner_annotation(cci_pod("x", &[], Some("wl-02-a/web-5d8f-abcde")), true)]
    #[case::the_uid_label(cci_pod("x", &[(cci_api::LABEL_CLUSTER_POD_UID, "u-1")], None), true)]
    #[case::the_reference_naming(cci_pod("wl-02-a.web-5d8f-abcde", &[], None), true)]
    #[case::gone_from_the_cluster(cci_pod("wl-02-a.web-old", &[], None), true)]
    #[case::labels_and_name_without_any_mark(cci_pod("web-5d8f-abcde-cci", &[("app", "web"), ("tier", "x")], None), true)]
    #[case::another_namespace(cci_pod("wl-02-b.web-5d8f-abcde", &[], Some("wl-02-b/web-5d8f-abcde")), false)]
    #[case::same_labels_other_name(cci_pod("db-0", &[("app", "web")], None), false)]
    #[case::same_name_other_labels(cci_pod("web-5d8f-abcde", &[("app", "db")], None), false)]
    #[case::another_uid(cci_pod("x", &[(cci_api::LABEL_CLUSTER_POD_UID, "u-2")], None), false)]
    fn a_cci_pod_is_matched_to_the_namespace_as_a_user_would(
        #[case] pod: cci_api::Pod,
        #[case] expected: bool,
    ) {
        assert_eq!(stands_for(&pod, "wl-02-a", &web()), expected);
    }
}
