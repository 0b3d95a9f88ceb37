//! Reading the cluster objects a burst pod uses: the [`ClusterObjects`] seam, implemented for
//! [`kube::Client`] and, for tests and dry runs, in memory ([`MemoryObjects`]).
//!
//! Besides the objects a pod names, a pod with a projected `serviceAccountToken` source needs
//! its service account and the namespace's token Secrets, to find the account's token Secret
//! ([`translate::choose_token_secret`](crate::translate::choose_token_secret)).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim, Secret, ServiceAccount};
use kube::Api;
use kube::api::ListParams;

use crate::translate::{ObjectKey, ObjectKind, SERVICE_ACCOUNT_TOKEN_TYPE};
use crate::{Error, Result};

/// One cluster object a pod refers to.
#[derive(Clone, Debug, PartialEq)]
pub enum ClusterObject {
    /// A ConfigMap.
    ConfigMap(ConfigMap),
    /// A Secret. NB: its `Debug` shows the data; never log it.
    Secret(Secret),
    /// A PersistentVolumeClaim (boxed: it is several times larger than the others).
    PersistentVolumeClaim(Box<PersistentVolumeClaim>),
}

impl ClusterObject {
    /// The object's `resourceVersion`, if it has one.
    pub fn resource_version(&self) -> Option<&str> {
        match self {
            Self::ConfigMap(o) => o.metadata.resource_version.as_deref(),
            Self::Secret(o) => o.metadata.resource_version.as_deref(),
            Self::PersistentVolumeClaim(o) => o.metadata.resource_version.as_deref(),
        }
    }
}

/// Reads ConfigMaps, Secrets and PersistentVolumeClaims from the cluster.
///
/// Contract: `Ok(None)` when the object does not exist; an error only when the cluster could
/// not answer (it is retried).
pub trait ClusterObjects: Send + Sync + 'static {
    /// The object `key` names, or `None` when it does not exist.
    fn get<'a>(&'a self, key: &'a ObjectKey) -> BoxFuture<'a, Result<Option<ClusterObject>>>;

    /// Service account `namespace/name`, or `None` when it does not exist.
    fn service_account<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<ServiceAccount>>>;

    /// The Secrets of type `kubernetes.io/service-account-token` in `namespace` (whatever their
    /// names and accounts). NB: they carry tokens; never log them.
    fn token_secrets<'a>(&'a self, namespace: &'a str) -> BoxFuture<'a, Result<Vec<Secret>>>;
}

impl ClusterObjects for kube::Client {
    fn get<'a>(&'a self, key: &'a ObjectKey) -> BoxFuture<'a, Result<Option<ClusterObject>>> {
        Box::pin(async move {
            let failed = |source| Error::Cluster {
                action: format!("read {key}"),
                source,
            };
            let client = self.clone();
            let ns = key.namespace.as_str();
            Ok(match key.kind {
                ObjectKind::ConfigMap => Api::<ConfigMap>::namespaced(client, ns)
                    .get_opt(&key.name)
                    .await
                    .map_err(failed)?
                    .map(ClusterObject::ConfigMap),
                ObjectKind::Secret => Api::<Secret>::namespaced(client, ns)
                    .get_opt(&key.name)
                    .await
                    .map_err(failed)?
                    .map(ClusterObject::Secret),
                ObjectKind::PersistentVolumeClaim => {
                    Api::<PersistentVolumeClaim>::namespaced(client, ns)
                        .get_opt(&key.name)
                        .await
                        .map_err(failed)?
                        .map(|c| ClusterObject::PersistentVolumeClaim(Box::new(c)))
                }
            })
        })
    }

    fn service_account<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<ServiceAccount>>> {
        Box::pin(async move {
            Api::<ServiceAccount>::namespaced(self.clone(), namespace)
                .get_opt(name)
                .await
                .map_err(|source| Error::Cluster {
                    action: format!("read serviceaccount {namespace}/{name}"),
                    source,
                })
        })
    }

    fn token_secrets<'a>(&'a self, namespace: &'a str) -> BoxFuture<'a, Result<Vec<Secret>>> {
        Box::pin(async move {
            let params =
                ListParams::default().fields(&format!("type={SERVICE_ACCOUNT_TOKEN_TYPE}"));
            Ok(Api::<Secret>::namespaced(self.clone(), namespace)
                .list(&params)
                .await
                .map_err(|source| Error::Cluster {
                    action: format!("list the token secrets of namespace {namespace}"),
                    source,
                })?
                .items)
        })
    }
}

/// Cluster objects held in memory: a stand-in for the cluster in tests and dry runs. Clones
/// share the objects.
#[derive(Clone, Debug, Default)]
pub struct MemoryObjects {
    objects: Arc<Mutex<BTreeMap<ObjectKey, ClusterObject>>>,
    accounts: Arc<Mutex<BTreeMap<(String, String), ServiceAccount>>>,
    reads: Arc<AtomicUsize>,
}

impl MemoryObjects {
    /// Add or replace an object (keyed by its kind, namespace and name).
    pub fn put(&self, object: ClusterObject) {
        let (kind, meta) = match &object {
            ClusterObject::ConfigMap(o) => (ObjectKind::ConfigMap, &o.metadata),
            ClusterObject::Secret(o) => (ObjectKind::Secret, &o.metadata),
            ClusterObject::PersistentVolumeClaim(o) => {
                (ObjectKind::PersistentVolumeClaim, &o.metadata)
            }
        };
        let key = ObjectKey::new(
            kind,
            meta.namespace.clone().unwrap_or_default(),
            meta.name.clone().unwrap_or_default(),
        );
        self.lock().insert(key, object);
    }

    /// How many times an object was read ([`ClusterObjects::get`]): what a cluster would have
    /// answered a GET for.
    pub fn reads(&self) -> usize {
        self.reads.load(Ordering::Relaxed)
    }

    /// Remove an object; whether it was there.
    pub fn remove(&self, key: &ObjectKey) -> bool {
        self.lock().remove(key).is_some()
    }

    /// Add or replace a service account (keyed by its namespace and name).
    pub fn put_service_account(&self, account: ServiceAccount) {
        let key = (
            account.metadata.namespace.clone().unwrap_or_default(),
            account.metadata.name.clone().unwrap_or_default(),
        );
        self.accounts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(key, account);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<ObjectKey, ClusterObject>> {
        self.objects
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl ClusterObjects for MemoryObjects {
    fn get<'a>(&'a self, key: &'a ObjectKey) -> BoxFuture<'a, Result<Option<ClusterObject>>> {
        self.reads.fetch_add(1, Ordering::Relaxed);
        let found = self.lock().get(key).cloned();
        Box::pin(async move { Ok(found) })
    }

    fn service_account<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<ServiceAccount>>> {
        let found = self
            .accounts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&(namespace.to_string(), name.to_string()))
            .cloned();
        Box::pin(async move { Ok(found) })
    }

    fn token_secrets<'a>(&'a self, namespace: &'a str) -> BoxFuture<'a, Result<Vec<Secret>>> {
        let found = self
            .lock()
            .iter()
            .filter(|(key, _)| key.kind == ObjectKind::Secret && key.namespace == namespace)
            .filter_map(|(_, object)| match object {
                ClusterObject::Secret(s)
                    if s.type_.as_deref() == Some(SERVICE_ACCOUNT_TOKEN_TYPE) =>
                {
                    Some(s.clone())
                }
                _ => None,
            })
            .collect();
        Box::pin(async move { Ok(found) })
    }
}
