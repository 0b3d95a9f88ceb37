//! One scenario: its ID, a namespace of its own in the shared cluster, and the mock's view of
//! the cluster's CCI namespace. The namespace is removed when the scenario ends.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Event, Namespace, Pod, ServiceAccount};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, DeleteParams, ListParams, PostParams};

use crate::env::{self, Env};
use crate::error::{Error, Result};
use crate::mock::MockCci;

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
    /// The shared environment.
    pub env: &'static Env,
    finished: bool,
}

impl Scenario {
    /// Starts scenario `id` (e.g. `"WL-02"`): brings the shared environment up if needed and
    /// creates the namespace `{id}-{random}` (lower case).
    pub async fn new(id: &str) -> Result<Self> {
        let env = env::shared().await?;
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

    /// The mock CCI, as this cluster's tenant.
    pub fn mock(&self) -> &MockCci {
        &self.env.mock
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

    /// CCI pods that stand for pods of this scenario's namespace.
    pub async fn cci_pods(&self) -> Result<Vec<cci_api::Pod>> {
        let prefix = format!("{}/", self.namespace);
        Ok(self
            .mock()
            .pods(self.cci_namespace())
            .await?
            .into_iter()
            .filter(|p| {
                p.metadata
                    .annotations
                    .as_ref()
                    .and_then(|a| a.get(cci_api::ANNOTATION_CLUSTER_POD))
                    .is_some_and(|owner| owner.starts_with(&prefix))
            })
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
            self.mock().describe(self.cci_namespace()).await,
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
        let env = self.env;
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
