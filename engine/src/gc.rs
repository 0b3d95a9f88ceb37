//! The uninstall gc (BEHAVIOR.md §8): what the add-on's `*-resource-gc-jobs` and
//! `*-namespace-gc-jobs` run, and what `burstcert cci purge` reuses.
//!
//! [`collect`] works on one CCI namespace only, the cluster's own `bursting-{clusterID}`, so no
//! other cluster's resources are ever touched:
//!
//! - [`Scope::Resources`] deletes every pod (at once: `gracePeriodSeconds=0`, nobody waits for
//!   them to stop), Service, ProxyRegistration, ConfigMap, Secret, PersistentVolumeClaim and
//!   network in it, listing each collection and deleting each object, then waits until the
//!   namespace has no pods. Pods go first, so nothing is left using the objects deleted after.
//! - [`Scope::Namespace`] does all that, then deletes the namespace and waits until it is gone.
//!
//! It is idempotent: an object or namespace already gone counts as done (a 404 is success), so
//! running it twice, or for a cluster with nothing on CCI, succeeds. A pod re-created while it
//! waits (a virtual kubelet still running) is deleted too. A step that fails is named in the
//! error ([`Error::Gc`], [`Error::GcTimeout`]).

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::Deserialize;
use tokio::time::Instant;

use crate::cci::CciClient;
use crate::proxy::PROXY_REGISTRATIONS;
use crate::translate::{ObjectKind, check_cluster_id};
use crate::{Error, Result};

/// How long [`collect`] waits for the pods, then the namespace, to be gone.
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(60);
/// The first pause between two polls while waiting; it doubles up to [`MAX_POLL`].
const FIRST_POLL: Duration = Duration::from_millis(100);
/// The longest pause between two polls.
const MAX_POLL: Duration = Duration::from_secs(1);

/// What the gc removes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Scope {
    /// Everything in the cluster's CCI namespace; the namespace stays (the resource gc job).
    Resources,
    /// Everything in it, then the namespace itself (the namespace gc job).
    Namespace,
}

impl Scope {
    /// `resources` or `namespace`, as on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Resources => "resources",
            Self::Namespace => "namespace",
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Scope {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "resources" => Ok(Self::Resources),
            "namespace" => Ok(Self::Namespace),
            other => Err(format!(
                "{other:?} is not a gc scope: use resources or namespace"
            )),
        }
    }
}

/// How many objects of each collection the gc deleted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Removed {
    /// Pods (a pod re-created while the gc waited counts again).
    pub pods: usize,
    /// ConfigMaps.
    pub configmaps: usize,
    /// Secrets.
    pub secrets: usize,
    /// PersistentVolumeClaims.
    pub pvcs: usize,
    /// Services.
    pub services: usize,
    /// Proxy registrations.
    pub proxyregistrations: usize,
    /// Networks (`yangtse/v2`).
    pub networks: usize,
}

impl Removed {
    /// Objects deleted in all.
    pub fn total(&self) -> usize {
        self.pods
            + self.configmaps
            + self.secrets
            + self.pvcs
            + self.services
            + self.proxyregistrations
            + self.networks
    }
}

/// What became of the namespace itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NamespaceOutcome {
    /// It exists and was kept ([`Scope::Resources`]).
    Kept,
    /// It was deleted and is gone ([`Scope::Namespace`]).
    Removed,
    /// It did not exist when the gc started: nothing of the cluster was on CCI.
    Absent,
}

impl fmt::Display for NamespaceOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Kept => "namespace kept",
            Self::Removed => "namespace removed",
            Self::Absent => "namespace absent",
        })
    }
}

/// What one gc run did. Its `Display` is the one summary line the gc job prints:
/// `gc namespace bursting-abc: removed 3 pods, 2 configmaps, 1 secrets, 0 pvcs, 0 services,
/// 1 proxyregistrations, 0 networks; namespace removed`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GcReport {
    /// What was asked for.
    pub scope: Scope,
    /// The CCI namespace, `bursting-{clusterID}`.
    pub namespace: String,
    /// What was deleted in it.
    pub removed: Removed,
    /// What became of the namespace.
    pub namespace_outcome: NamespaceOutcome,
}

impl fmt::Display for GcReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let r = &self.removed;
        write!(
            f,
            "gc {} {}: removed {} pods, {} configmaps, {} secrets, {} pvcs, {} services, {} proxyregistrations, {} networks; {}",
            self.scope,
            self.namespace,
            r.pods,
            r.configmaps,
            r.secrets,
            r.pvcs,
            r.services,
            r.proxyregistrations,
            r.networks,
            self.namespace_outcome
        )
    }
}

/// Remove what `scope` names of cluster `cluster_id` from CCI (see the module docs), waiting
/// up to [`DEFAULT_DEADLINE`] for the pods and the namespace to be gone.
pub async fn collect(cci: &CciClient, cluster_id: &str, scope: Scope) -> Result<GcReport> {
    collect_within(cci, cluster_id, scope, DEFAULT_DEADLINE).await
}

/// [`collect`], waiting up to `deadline` for the pods, then up to `deadline` again for the
/// namespace.
pub async fn collect_within(
    cci: &CciClient,
    cluster_id: &str,
    scope: Scope,
    deadline: Duration,
) -> Result<GcReport> {
    check_cluster_id(cluster_id)?;
    let namespace = cci_api::namespace_for_cluster(cluster_id);
    let mut gc = Gc {
        cci,
        namespace: &namespace,
        removed: Removed::default(),
    };
    let existed = gc.resources(deadline).await?;
    let scope = if crate::breakage::is(crate::breakage::Breakage::GcKeepsNamespace) {
        Scope::Resources
    } else {
        scope
    };
    let namespace_outcome = match (existed, scope) {
        (false, _) => NamespaceOutcome::Absent,
        (true, Scope::Resources) => NamespaceOutcome::Kept,
        (true, Scope::Namespace) => {
            gc.namespace(deadline).await?;
            NamespaceOutcome::Removed
        }
    };
    let removed = gc.removed;
    let report = GcReport {
        scope,
        namespace,
        removed,
        namespace_outcome,
    };
    tracing::info!(%report, "gc done");
    Ok(report)
}

/// Any CCI object, for its name.
#[derive(Deserialize)]
struct Named {
    metadata: ObjectMeta,
}

/// The collections in the order they are emptied after the pods.
#[derive(Clone, Copy, Debug)]
enum Collection {
    Services,
    ProxyRegistrations,
    ConfigMaps,
    Secrets,
    Claims,
    Networks,
}

impl Collection {
    const AFTER_PODS: [Self; 6] = [
        Self::Services,
        Self::ProxyRegistrations,
        Self::ConfigMaps,
        Self::Secrets,
        Self::Claims,
        Self::Networks,
    ];

    fn plural(self) -> &'static str {
        match self {
            Self::Services => "services",
            Self::ProxyRegistrations => PROXY_REGISTRATIONS,
            Self::ConfigMaps => ObjectKind::ConfigMap.plural(),
            Self::Secrets => ObjectKind::Secret.plural(),
            Self::Claims => ObjectKind::PersistentVolumeClaim.plural(),
            Self::Networks => "networks",
        }
    }

    fn counter(self, removed: &mut Removed) -> &mut usize {
        match self {
            Self::Services => &mut removed.services,
            Self::ProxyRegistrations => &mut removed.proxyregistrations,
            Self::ConfigMaps => &mut removed.configmaps,
            Self::Secrets => &mut removed.secrets,
            Self::Claims => &mut removed.pvcs,
            Self::Networks => &mut removed.networks,
        }
    }
}

/// `Ok(None)` for a 404 (gone, which is what the gc wants), else the result.
fn unless_gone<T>(result: Result<T>) -> Result<Option<T>> {
    match result {
        Ok(value) => Ok(Some(value)),
        Err(e) if e.code() == Some(404) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Names the step in an error.
fn step<T>(result: Result<T>, step: impl FnOnce() -> String) -> Result<T> {
    result.map_err(|source| Error::Gc {
        step: step(),
        source: Box::new(source),
    })
}

/// One gc run's state.
struct Gc<'a> {
    cci: &'a CciClient,
    namespace: &'a str,
    removed: Removed,
}

impl Gc<'_> {
    /// Empties the namespace; answers whether it existed.
    async fn resources(&mut self, deadline: Duration) -> Result<bool> {
        let ns = self.namespace;
        let Some(pods) = step(unless_gone(self.cci.list_pods(ns).await), || {
            format!("list pods in {ns}")
        })?
        else {
            tracing::info!(namespace = ns, "no CCI namespace: nothing to remove");
            return Ok(false);
        };
        for pod in &pods.items {
            self.delete_pod(pod).await?;
        }
        for collection in Collection::AFTER_PODS {
            let plural = collection.plural();
            let listed = match collection {
                Collection::Networks => self.cci.list_networks(ns).await.map(|l| {
                    l.items
                        .into_iter()
                        .map(|n| n.metadata.name.unwrap_or_default())
                        .collect::<Vec<_>>()
                }),
                _ => self.cci.list_objects::<Named>(ns, plural).await.map(|l| {
                    l.items
                        .into_iter()
                        .map(|n| n.metadata.name.unwrap_or_default())
                        .collect()
                }),
            };
            // NB: a namespace deleted meanwhile (a concurrent gc) has nothing left to delete.
            let names =
                step(unless_gone(listed), || format!("list {plural} in {ns}"))?.unwrap_or_default();
            for name in names.iter().filter(|n| !n.is_empty()) {
                let deleted = match collection {
                    Collection::Networks => self.cci.delete_network(ns, name).await,
                    _ => self.cci.delete_object(ns, plural, name).await,
                };
                if step(unless_gone(deleted), || {
                    format!("delete {plural} {ns}/{name}")
                })?
                .is_some()
                {
                    *collection.counter(&mut self.removed) += 1;
                }
            }
            tracing::info!(
                namespace = ns,
                collection = plural,
                removed = *collection.counter(&mut self.removed),
                "collection emptied"
            );
        }
        self.await_no_pods(deadline).await?;
        Ok(true)
    }

    async fn delete_pod(&mut self, pod: &cci_api::Pod) -> Result<()> {
        let ns = self.namespace;
        let name = pod.metadata.name.as_deref().unwrap_or_default();
        let deleted = unless_gone(self.cci.delete_pod_now(ns, name).await);
        if step(deleted, || format!("delete pod {ns}/{name}"))?.is_some() {
            self.removed.pods += 1;
            tracing::debug!(namespace = ns, pod = name, "deleted CCI pod");
        }
        Ok(())
    }

    /// Polls the pod list until it is empty, deleting any pod not being deleted yet (one
    /// created meanwhile), for up to `deadline`.
    async fn await_no_pods(&mut self, deadline: Duration) -> Result<()> {
        let ns = self.namespace;
        let until = Instant::now() + deadline;
        let mut pause = FIRST_POLL;
        loop {
            let listed = step(unless_gone(self.cci.list_pods(ns).await), || {
                format!("list pods in {ns}")
            })?;
            let pods = listed.map(|l| l.items).unwrap_or_default();
            if pods.is_empty() {
                return Ok(());
            }
            if Instant::now() >= until {
                let names: Vec<&str> = pods
                    .iter()
                    .filter_map(|p| p.metadata.name.as_deref())
                    .collect();
                return Err(Error::GcTimeout {
                    step: format!("wait for the pods of {ns} to be gone"),
                    waited: deadline,
                    left: format!("{} pods left: {}", names.len(), names.join(", ")),
                });
            }
            for pod in pods
                .iter()
                .filter(|p| p.metadata.deletion_timestamp.is_none())
            {
                self.delete_pod(pod).await?;
            }
            tokio::time::sleep(pause.min(until.saturating_duration_since(Instant::now()))).await;
            pause = (pause * 2).min(MAX_POLL);
        }
    }

    /// Deletes the namespace and polls until it is gone, for up to `deadline`.
    async fn namespace(&mut self, deadline: Duration) -> Result<()> {
        let ns = self.namespace;
        step(unless_gone(self.cci.delete_namespace(ns).await), || {
            format!("delete namespace {ns}")
        })?;
        if crate::breakage::is(crate::breakage::Breakage::GcDoesNotWait) {
            return Ok(());
        }
        let until = Instant::now() + deadline;
        let mut pause = FIRST_POLL;
        loop {
            let found = step(unless_gone(self.cci.get_namespace(ns).await), || {
                format!("read namespace {ns}")
            })?;
            let Some(namespace) = found else {
                tracing::info!(namespace = ns, "CCI namespace removed");
                return Ok(());
            };
            if Instant::now() >= until {
                let phase = namespace
                    .metadata
                    .deletion_timestamp
                    .map_or("not being deleted", |_| "still terminating");
                return Err(Error::GcTimeout {
                    step: format!("wait for namespace {ns} to be gone"),
                    waited: deadline,
                    left: format!("namespace {ns} {phase}"),
                });
            }
            tokio::time::sleep(pause.min(until.saturating_duration_since(Instant::now()))).await;
            pause = (pause * 2).min(MAX_POLL);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[test]
    fn the_report_is_one_line_naming_every_collection_and_the_namespace() {
        let report = GcReport {
            scope: Scope::Namespace,
            namespace: "bursting-abc".into(),
            removed: Removed {
                pods: 3,
                configmaps: 2,
                secrets: 1,
                proxyregistrations: 1,
                ..Removed::default()
            },
            namespace_outcome: NamespaceOutcome::Removed,
        };
        assert_eq!(
            report.to_string(),
            "gc namespace bursting-abc: removed 3 pods, 2 configmaps, 1 secrets, 0 pvcs, 0 services, 1 proxyregistrations, 0 networks; namespace removed"
        );
        assert_eq!(report.removed.total(), 7);
    }

    #[rstest]
    #[case::resources("resources", Ok(Scope::Resources))]
    #[case::namespace("namespace", Ok(Scope::Namespace))]
    #[case::other("all", Err(()))]
    fn a_scope_is_resources_or_namespace(
        #[case] text: &str,
        #[case] expected: std::result::Result<Scope, ()>,
    ) {
        let parsed = text.parse::<Scope>();
        assert_eq!(parsed.clone().map_err(|_| ()), expected);
        if let Ok(scope) = parsed {
            assert_eq!(scope.to_string(), text);
        }
    }

    #[test]
    fn every_collection_counts_into_its_own_field() {
        let mut removed = Removed::default();
        for (i, collection) in Collection::AFTER_PODS.into_iter().enumerate() {
            *collection.counter(&mut removed) += i + 1;
        }
        assert_eq!(removed.total(), 21, "{removed:?}");
        assert_eq!(removed.pods, 0);
    }
}
