//! [`CciProvider`]: the `vk` provider that runs the virtual node's pods on CCI.
//!
//! # Mirroring
//!
//! Before a pod is created on CCI, every ConfigMap, Secret and PersistentVolumeClaim it refers
//! to ([`translate::references`]) is read from the cluster and created or replaced on CCI under
//! its mirrored name (`{namespace}.{name}`), labelled with the cluster ID and
//! `bursting.cci.io/cluster-object`.
//!
//! - A missing object that some reference needs (not `optional`) makes the create fail with
//!   [`Error::Waiting`], a transient error: the controller retries with backoff and emits a
//!   Warning event naming the object, so the pod waits for it (VK-02).
//! - A missing object that every reference marks `optional` is skipped, and the references
//!   stay in the CCI pod, still `optional`: CCI then runs the pod as Kubernetes would (an empty
//!   volume, no variables). Should the object appear later, [`CciProvider::refresh`] (driven by
//!   [`CciProvider::watch_cluster_objects`]) mirrors it, since it stays tracked.
//! - Claims are created once; a claim's spec is immutable, so an existing copy is left as it is.
//!
//! Every object a pod refers to is counted against the pod's UID from the moment its creation
//! starts. When the last pod using an object is deleted, its CCI copy is deleted too. The
//! count lives in memory and is rebuilt as the controller re-creates (idempotently) every live
//! pod after a restart; copies of pods deleted while the engine was down are left to the
//! cluster's gc job.
//!
//! Secret data is never logged nor put in an error or event.
//!
//! # Service account tokens
//!
//! A projected `serviceAccountToken` source becomes the token of the service account's token
//! Secret (BEHAVIOR.md §5), found as Kubernetes defines it, whatever its name: the account is
//! read (its UID and `secrets` list) and so are the Secrets of type
//! `kubernetes.io/service-account-token` of the pod's namespace, and
//! [`translate::choose_token_secret`] picks one. That Secret is then mirrored and counted like
//! any other, under its own name (`{namespace}.{secretName}` on CCI), so a rotated token (its
//! data changing) reaches CCI through [`CciProvider::watch_cluster_objects`].
//!
//! The add-on never creates a token Secret. Without one whose token is filled in (or without the
//! account) the create fails with [`Error::WaitingForToken`], transient: the pod waits, with a
//! Warning event naming what to create, and the controller's retries (backoff up to its
//! `retry_max`, 30 s by default) look again, so the pod starts on CCI, unchanged, once such a
//! Secret exists and has its token.
//!
//! # Deleting
//!
//! [`vk::Provider::delete_pod`] sends CCI's delete with the cluster pod's
//! `deletionGracePeriodSeconds` (the translation drops `terminationGracePeriodSeconds`, so CCI
//! would otherwise kill at once) and returns without waiting: CCI sends SIGTERM, kills what
//! still runs at the grace period's end and removes the pod. Until then the CCI pod stays in the
//! pod cache, Terminating with CCI's status, so `list_pods` and `pod_statuses` keep reporting it
//! and the controller keeps the cluster pod `Terminating` with that status (vk's termination
//! protocol); CCI's watch reporting the pod deleted is what lets the cluster pod go. A delete
//! without a grace period (a vanished pod, an orphan) leaves one already under way as it is; a
//! shorter one shortens it, as CCI applies it.
//!
//! # Releases
//!
//! The provider translates as its release ([`CciProvider::with_release`], default
//! [`DEFAULT_RELEASE`](crate::DEFAULT_RELEASE)): new CCI pods get that release's sidecar and
//! volume gates (see [`translate`]). Pods are never recreated or rewritten for a release: after
//! a restart at another release, the controller's idempotent create finds each live pod's CCI
//! pod by the cluster pod's UID and leaves it as it is, even one this release would refuse
//! (e.g. `/etc/localtime` after a rollback below 1.5.9), so upgrades and rollbacks keep running
//! pods (BEHAVIOR.md §9).
//!
//! # Logs
//!
//! [`vk::Provider::logs`] (`kubectl logs`, through the virtual kubelet's API) reads CCI's
//! `GET …/pods/{name}/log` of the CCI pod standing for the cluster pod (checked by UID: a CCI
//! pod of the name that stands for an earlier pod is not this pod's). `tailLines` and
//! `previous` are passed on; CCI's log API has no `timestamps` nor `since*`, so those are not
//! (the text is CCI's, as it is). A container CCI has no such log for (still waiting to start,
//! no previous instance) is [`vk::ProviderError::InvalidInput`] with CCI's message.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret};
use kube::core::PartialObjectMeta;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::Mutex;
use vk::RemotePod;

use burst_rules::release::Release;

use crate::breakage::{self, Breakage};
use crate::cci::{CciClient, ClusterNetwork};
use crate::cci_watch::PodCache;
use crate::cluster::{ClusterObject, ClusterObjects};
use crate::lock::NodeLock;
use crate::translate::{
    self, ObjectKey, ObjectKind, TokenSecret, cci_pod_name, cluster_uid_of, identity,
};
use crate::{Error, Result};

/// The token Secret a pod needs, as [`CciProvider::token_secret`] found it.
enum Token {
    /// The pod has no projected `serviceAccountToken` source.
    NotNeeded,
    /// The name of the account's token Secret.
    Found(String),
    /// There is none with a token yet: the pod waits with this error.
    Waiting(Error),
}

/// Which pods use which mirrored objects.
#[derive(Debug, Default)]
struct Mirrors {
    /// Cluster pod UIDs using each object.
    users: HashMap<ObjectKey, HashSet<String>>,
    /// Objects each cluster pod UID uses.
    uses: HashMap<String, Vec<ObjectKey>>,
    /// The cluster `resourceVersion` last copied to CCI, per object.
    copied: HashMap<ObjectKey, String>,
}

impl Mirrors {
    /// Count `keys` as used by `uid` (replacing what it used before).
    fn register(&mut self, uid: &str, keys: Vec<ObjectKey>) {
        self.release(uid);
        for key in &keys {
            self.users
                .entry(key.clone())
                .or_default()
                .insert(uid.to_string());
        }
        self.uses.insert(uid.to_string(), keys);
    }

    /// Stop counting `uid`; answers the objects no pod uses any more.
    fn release(&mut self, uid: &str) -> Vec<ObjectKey> {
        let mut unused = Vec::new();
        for key in self.uses.remove(uid).unwrap_or_default() {
            if let Some(users) = self.users.get_mut(&key) {
                users.remove(uid);
                if users.is_empty() {
                    self.users.remove(&key);
                    self.copied.remove(&key);
                    unused.push(key);
                }
            }
        }
        unused
    }
}

/// Runs cluster pods as CCI pods in the namespace `bursting-{clusterID}`.
pub struct CciProvider {
    client: CciClient,
    cluster: Arc<dyn ClusterObjects>,
    cluster_id: String,
    namespace: String,
    /// The add-on release new CCI pods are translated as.
    release: Release,
    /// The CCI namespace is known to exist, with its Network Ready when one is configured
    /// (ensured once, again if the namespace vanishes).
    namespace_ready: AtomicBool,
    /// The Network the namespace needs before its pods get addresses; `None`: the engine
    /// creates none (one made by someone else, or a CCI that needs none).
    network: Option<ClusterNetwork>,
    /// NB: an async lock, held across the CCI calls that delete or refresh a copy, so that a
    /// copy is never deleted under a pod that has just started to use it.
    mirrors: Arc<Mutex<Mirrors>>,
    /// Locks the virtual node when CCI answers sold out (BEHAVIOR.md §7); none in tests.
    node_lock: Option<Arc<NodeLock>>,
    /// How long a CCI pod may stay Pending unschedulable before [`node_lock`](Self::node_lock)
    /// is engaged; `None`: never for that.
    pending_lock_threshold: Option<Duration>,
    /// The cluster pod UIDs whose Pending CCI pod already locked the node: each locks it once,
    /// not on every status round.
    pending_locked: std::sync::Mutex<HashSet<String>>,
    /// The CCI pods as [`watch_cci_pods`](Self::watch_cci_pods) follows them; never live when
    /// that does not run, and then every status round lists CCI.
    cci_pods: Arc<PodCache>,
}

impl std::fmt::Debug for CciProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CciProvider")
            .field("client", &self.client)
            .field("cluster_id", &self.cluster_id)
            .field("release", &self.release)
            .finish_non_exhaustive()
    }
}

impl CciProvider {
    /// A provider for cluster `cluster_id` talking to CCI through `client` and reading the
    /// objects pods use from `cluster` (a [`kube::Client`], or
    /// [`MemoryObjects`](crate::MemoryObjects) in tests).
    pub fn new(
        client: CciClient,
        cluster: impl ClusterObjects,
        cluster_id: impl Into<String>,
    ) -> Result<Self> {
        let cluster_id = cluster_id.into();
        translate::check_cluster_id(&cluster_id)?;
        Ok(Self {
            client,
            cluster: Arc::new(cluster),
            namespace: cci_api::namespace_for_cluster(&cluster_id),
            cluster_id,
            release: crate::DEFAULT_RELEASE,
            namespace_ready: AtomicBool::new(false),
            network: None,
            mirrors: Arc::default(),
            node_lock: None,
            pending_lock_threshold: None,
            pending_locked: std::sync::Mutex::default(),
            cci_pods: Arc::default(),
        })
    }

    /// Translates new pods as add-on release `release` (default
    /// [`DEFAULT_RELEASE`](crate::DEFAULT_RELEASE)): its sidecar, its volume gates.
    #[must_use]
    pub fn with_release(mut self, release: Release) -> Self {
        self.release = release;
        self
    }

    /// The add-on release new pods are translated as.
    pub fn add_on_release(&self) -> Release {
        self.release
    }

    /// Gives the CCI namespace `network` (on the add-on's subnet) before its first pod, and
    /// waits for it to be Ready (BEHAVIOR.md §12).
    #[must_use]
    pub fn with_network(mut self, network: ClusterNetwork) -> Self {
        self.network = Some(network);
        self
    }

    /// Locks the virtual node through `lock` whenever CCI refuses a pod as sold out.
    #[must_use]
    pub fn with_node_lock(mut self, lock: Arc<NodeLock>) -> Self {
        self.node_lock = Some(lock);
        self
    }

    /// Also locks the node (through the lock given to [`with_node_lock`](Self::with_node_lock))
    /// when a CCI pod has stayed Pending for lack of capacity for `threshold` (BEHAVIOR.md §7).
    #[must_use]
    pub fn with_pending_lock(mut self, threshold: Duration) -> Self {
        self.pending_lock_threshold = Some(threshold);
        self
    }

    /// Locks the node once for each pod in `pods` that has waited for capacity longer than
    /// the threshold; forgets the pods no longer listed.
    async fn lock_on_long_pending(&self, pods: &[RemotePod]) {
        let (Some(lock), Some(threshold)) = (&self.node_lock, self.pending_lock_threshold) else {
            return;
        };
        if breakage::is(Breakage::LockOnlyOnRefusal) {
            return;
        }
        let now = k8s_openapi::jiff::Timestamp::now();
        let fresh = {
            let mut locked = self
                .pending_locked
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            locked.retain(|uid| pods.iter().any(|p| &p.uid == uid));
            let mut fresh = Vec::new();
            for pod in pods {
                let stuck = pod
                    .status
                    .as_ref()
                    .is_some_and(|s| crate::lock::pending_too_long(s, now, threshold));
                if stuck && locked.insert(pod.uid.clone()) {
                    fresh.push(format!("{}/{}", pod.namespace, pod.name));
                }
            }
            fresh
        };
        if !fresh.is_empty() {
            tracing::warn!(pods = ?fresh, ?threshold, "CCI pods stay Pending for lack of capacity");
            lock.engage().await;
        }
    }

    /// The CCI namespace the pods live in.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// Create the CCI namespace unless it is known to exist (it existing already is fine),
    /// then its Network, if one is configured, and wait for that to be Ready: namespace, then
    /// Network, then pods, as published CCI 2.0 has it.
    pub async fn ensure_namespace(&self) -> Result<()> {
        if self.namespace_ready.load(Ordering::Acquire) {
            return Ok(());
        }
        self.client
            .ensure_cluster_namespace(&self.cluster_id)
            .await?;
        if let Some(network) = &self.network
            && !breakage::is(Breakage::NoNetwork)
        {
            self.client
                .ensure_cluster_network(&self.namespace, network)
                .await?;
        }
        self.namespace_ready.store(true, Ordering::Release);
        Ok(())
    }

    /// The mirrored objects some pod uses, each with the number of pods using it.
    pub async fn mirrored(&self) -> Vec<(ObjectKey, usize)> {
        let mirrors = self.mirrors.lock().await;
        let mut out: Vec<_> = mirrors
            .users
            .iter()
            .map(|(k, users)| (k.clone(), users.len()))
            .collect();
        out.sort();
        out
    }

    /// The token Secret a projected `serviceAccountToken` source of `pod` becomes (see
    /// [Service account tokens](self#service-account-tokens)).
    async fn token_secret(&self, pod: &Pod) -> Result<Token> {
        let Some(account) = translate::token_account(pod) else {
            return Ok(Token::NotNeeded);
        };
        let namespace = pod.metadata.namespace.as_deref().unwrap_or_default();
        let waiting = |reason: String| {
            Ok(Token::Waiting(Error::WaitingForToken {
                namespace: namespace.into(),
                account: account.into(),
                reason,
            }))
        };
        let Some(sa) = self.cluster.service_account(namespace, account).await? else {
            return waiting(format!(
                "service account {namespace}/{account} does not exist; the pod starts on CCI once it and its token Secret do"
            ));
        };
        let secrets = self.cluster.token_secrets(namespace).await?;
        match translate::choose_token_secret(&sa, &secrets) {
            TokenSecret::Ready(s) => Ok(Token::Found(s.metadata.name.clone().unwrap_or_default())),
            TokenSecret::NotFilled(s) => waiting(format!(
                "secret {namespace}/{} has no token yet (the token controller fills it in); the pod starts on CCI once it has",
                s.metadata.name.as_deref().unwrap_or_default()
            )),
            TokenSecret::Missing => Ok(Token::Waiting(translate::missing_token_secret(
                namespace, account,
            ))),
        }
    }

    async fn create(&self, pod: &Pod) -> Result<()> {
        let token = self.token_secret(pod).await?;
        let token_secret = match &token {
            Token::Found(name) => Some(name.as_str()),
            Token::NotNeeded | Token::Waiting(_) => None,
        };
        let cci = match translate::to_cci_pod(pod, &self.cluster_id, self.release, token_secret) {
            Ok(cci) => cci,
            Err(refusal @ Error::Translate { .. }) => {
                return self.adopt(pod, refusal, token_secret).await;
            }
            // The lookup knows best why there is no token Secret.
            Err(e @ Error::WaitingForToken { .. }) => {
                return Err(match token {
                    Token::Waiting(why) => why,
                    _ => e,
                });
            }
            Err(e) => return Err(e),
        };
        let (_, _, uid) = identity(pod)?;
        let name = cci.metadata.name.clone().unwrap_or_default();
        let refs = translate::references(pod, token_secret);
        // Counted before anything is copied: a concurrent delete of another pod must not
        // remove a copy this one is about to use.
        self.mirrors
            .lock()
            .await
            .register(uid, refs.keys().cloned().collect());
        self.ensure_namespace().await?;
        for (key, optional) in &refs {
            match self.cluster.get(key).await? {
                Some(object) => self.copy(key, &object).await?,
                None if *optional && !breakage::is(Breakage::OptionalObjectRequired) => {
                    tracing::debug!(object = %key, "optional object missing; not mirrored");
                }
                None if key.kind == translate::ObjectKind::Secret
                    && breakage::is(Breakage::MandatorySecretNotWaited) => {}
                None => {
                    return Err(Error::Waiting {
                        object: key.to_string(),
                        kind: key.kind.api_kind(),
                        namespace: key.namespace.clone(),
                        name: key.name.clone(),
                    });
                }
            }
        }
        match self.client.create_pod(&self.namespace, &cci).await {
            Ok(_) => Ok(()),
            // Created before (a retry after a lost answer, or a restart): fine if it is this pod.
            Err(e) if e.code() == Some(409) => {
                let existing = self.client.get_pod(&self.namespace, &name).await?;
                match cluster_uid_of(&existing) {
                    Some(found)
                        if found == uid && breakage::is(Breakage::ConflictCreatesDuplicate) =>
                    {
                        // The bug: "the name is taken, so try another one".
                        let mut again = cci.clone();
                        again.metadata.name = Some(format!("{name}-retry"));
                        self.client
                            .create_pod(&self.namespace, &again)
                            .await
                            .map(|_| ())
                    }
                    Some(found)
                        if found == uid
                            && breakage::is(Breakage::RecreatedOnUpgrade)
                            && existing
                                .metadata
                                .annotations
                                .as_ref()
                                .and_then(|a| a.get(cci_api::ANNOTATION_RELEASE))
                                != Some(&self.release.to_string()) =>
                    {
                        // The bug: "a pod burst by another release is out of date: replace it".
                        self.client
                            .delete_pod_with_grace(&self.namespace, &name, Some(0))
                            .await?;
                        self.client
                            .create_pod(&self.namespace, &cci)
                            .await
                            .map(|_| ())
                    }
                    Some(found) if found == uid => Ok(()),
                    found => Err(Error::NameTaken {
                        namespace: self.namespace.clone(),
                        name,
                        expected: uid.into(),
                        found: found.unwrap_or_default().into(),
                    }),
                }
            }
            Err(e) => {
                if e.code() == Some(404) {
                    // The namespace itself is gone: create it again on the retry.
                    self.namespace_ready.store(false, Ordering::Release);
                }
                Err(e)
            }
        }
    }

    /// A pod this release refuses may still have a CCI pod, burst under another release before a
    /// restart (e.g. `/etc/localtime` after a rollback below 1.5.9): that one is adopted as it
    /// is, never failed after the fact (§9). Without one, `refusal` stands.
    async fn adopt(&self, pod: &Pod, refusal: Error, token_secret: Option<&str>) -> Result<()> {
        let Ok((namespace, name, uid)) = identity(pod) else {
            return Err(refusal);
        };
        let cci_name = cci_pod_name(namespace, name);
        let existing = match self.client.get_pod(&self.namespace, &cci_name).await {
            Ok(existing) => existing,
            Err(e) if e.code() == Some(404) => return Err(refusal),
            Err(e) => return Err(e),
        };
        if cluster_uid_of(&existing) != Some(uid) {
            return Err(refusal);
        }
        tracing::info!(
            cci_pod = %cci_name,
            release = %self.release,
            burst_under = existing.metadata.annotations.as_ref().and_then(|a| a.get(cci_api::ANNOTATION_RELEASE)).map_or("unknown", String::as_str),
            reason = %refusal,
            "this release would refuse the pod, but it runs on CCI already: left as it is"
        );
        // Counted like any pod's objects, so their copies go when it does.
        self.mirrors.lock().await.register(
            uid,
            translate::references(pod, token_secret)
                .into_keys()
                .collect(),
        );
        Ok(())
    }

    /// Create or replace the CCI copy of `object`, unless this version is copied already.
    async fn copy(&self, key: &ObjectKey, object: &ClusterObject) -> Result<()> {
        let version = object.resource_version().unwrap_or_default().to_string();
        if !version.is_empty() && self.mirrors.lock().await.copied.get(key) == Some(&version) {
            return Ok(());
        }
        self.write_copy(key, object).await?;
        if !version.is_empty() {
            self.mirrors
                .lock()
                .await
                .copied
                .insert(key.clone(), version);
        }
        Ok(())
    }

    /// Create or replace the CCI copy of `object` (no bookkeeping).
    async fn write_copy(&self, key: &ObjectKey, object: &ClusterObject) -> Result<()> {
        let id = &self.cluster_id;
        match object {
            ClusterObject::ConfigMap(o) => {
                self.upsert(key, &translate::cci_config_map(o, id), true)
                    .await
            }
            ClusterObject::Secret(o) => {
                if breakage::is(Breakage::SecretDataLogged) {
                    let data: Vec<String> = o
                        .data
                        .iter()
                        .flatten()
                        .map(|(k, v)| format!("{k}={}", String::from_utf8_lossy(&v.0)))
                        .collect();
                    tracing::info!(object = %key, ?data, "mirroring secret");
                }
                self.upsert(key, &translate::cci_secret(o, id), true).await
            }
            ClusterObject::PersistentVolumeClaim(o) => {
                self.upsert(key, &translate::cci_claim(o, id), false).await
            }
        }
    }

    async fn upsert<T>(&self, key: &ObjectKey, object: &T, replace: bool) -> Result<()>
    where
        T: Serialize + DeserializeOwned + Sync,
    {
        let plural = key.kind.plural();
        let name = key.mirror_name();
        match self
            .client
            .create_object(&self.namespace, plural, object)
            .await
        {
            Ok(_) => {
                tracing::info!(object = %key, cci_name = %name, "mirrored to CCI");
                Ok(())
            }
            Err(e) if e.code() == Some(409) && replace => {
                self.client
                    .replace_object(&self.namespace, plural, &name, object)
                    .await?;
                tracing::debug!(object = %key, cci_name = %name, "mirror replaced");
                Ok(())
            }
            Err(e) if e.code() == Some(409) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Copy cluster object `key` to CCI again if some pod uses it (after it changed in the
    /// cluster). An object gone from the cluster leaves its copy alone: the pods using it keep
    /// the last content, as Kubernetes keeps a deleted ConfigMap's files in a running pod.
    pub async fn refresh(&self, key: &ObjectKey) -> Result<()> {
        // NB: held across the copy, so a copy is never re-created after its last user left.
        let mut mirrors = self.mirrors.lock().await;
        if !mirrors.users.contains_key(key)
            || (key.kind == ObjectKind::ConfigMap
                && breakage::is(Breakage::ConfigMapUpdateNotMirrored))
            || (key.kind == ObjectKind::Secret && breakage::is(Breakage::SecretUpdateNotMirrored))
        {
            return Ok(());
        }
        let Some(object) = self.cluster.get(key).await? else {
            return Ok(());
        };
        let version = object.resource_version().map(str::to_string);
        if version.is_some() && mirrors.copied.get(key) == version.as_ref() {
            return Ok(());
        }
        self.write_copy(key, &object).await?;
        tracing::info!(object = %key, "CCI copy updated");
        if let Some(version) = version {
            mirrors.copied.insert(key.clone(), version);
        }
        Ok(())
    }

    /// Whether some pod uses cluster object `key` and its copy is older than `version`.
    async fn stale(&self, key: &ObjectKey, version: Option<&str>) -> bool {
        let mirrors = self.mirrors.lock().await;
        mirrors.users.contains_key(key) && mirrors.copied.get(key).map(String::as_str) != version
    }

    /// Follow the CCI pods of the namespace with a watch and a full list every `resync` (see
    /// [`cci_watch`](crate::cci_watch)), so that the status round reads them from memory
    /// instead of listing CCI each time. Runs until dropped.
    pub async fn watch_cci_pods(self: Arc<Self>, resync: std::time::Duration) {
        Arc::clone(&self.cci_pods)
            .follow(self.client.clone(), self.namespace.clone(), resync)
            .await;
    }

    /// The CCI pod cache [`watch_cci_pods`](Self::watch_cci_pods) keeps.
    pub fn cci_pods(&self) -> &PodCache {
        &self.cci_pods
    }

    /// Watch the cluster's ConfigMaps and Secrets (all namespaces, metadata only) and
    /// [`refresh`](Self::refresh) the copies of those that pods use when they change. Runs until
    /// dropped; watch errors are retried with backoff.
    pub async fn watch_cluster_objects(self: Arc<Self>, client: kube::Client) {
        // A list, then a watch: every API server serves it (a streaming list needs WatchList).
        let config = if breakage::is(Breakage::WatchListOnly) {
            watcher::Config::default().streaming_lists()
        } else {
            watcher::Config::default()
        };
        let config_maps = watcher::watcher(
            kube::Api::<PartialObjectMeta<ConfigMap>>::all(client.clone()),
            config.clone(),
        )
        .default_backoff()
        .map(|e| changed(ObjectKind::ConfigMap, e));
        let secrets = watcher::watcher(kube::Api::<PartialObjectMeta<Secret>>::all(client), config)
            .default_backoff()
            .map(|e| changed(ObjectKind::Secret, e));
        let events = futures::stream::select(config_maps, secrets);
        futures::pin_mut!(events);
        while let Some(event) = events.next().await {
            let (key, version) = match event {
                Ok(Some(changed)) => changed,
                Ok(None) => continue,
                Err(e) => {
                    tracing::warn!(error = %e, "configmap/secret watch failed; retrying");
                    continue;
                }
            };
            if !self.stale(&key, version.as_deref()).await {
                continue;
            }
            if let Err(e) = self.refresh(&key).await {
                tracing::warn!(object = %key, error = %e, "could not update the CCI copy");
            }
        }
    }

    /// Stop counting `pod` as a user of its objects and delete the copies nobody uses any more.
    async fn release(&self, uid: &str) -> Result<()> {
        let mut mirrors = self.mirrors.lock().await;
        let unused = mirrors.release(uid);
        let mut failed = Vec::new();
        let mut error = None;
        for key in unused {
            match self
                .client
                .delete_object(&self.namespace, key.kind.plural(), &key.mirror_name())
                .await
            {
                Ok(()) => tracing::info!(object = %key, "deleted CCI copy: no burst pod uses it"),
                Err(e) if e.code() == Some(404) => {}
                Err(e) => {
                    failed.push(key);
                    error = Some(e);
                }
            }
        }
        match error {
            None => Ok(()),
            Some(e) => {
                // Kept counted against the pod, so the retried delete tries again.
                mirrors.register(uid, failed);
                Err(e)
            }
        }
    }

    /// The log of `container` of the CCI pod standing for `pod` (see [Logs](self#logs)).
    async fn log(
        &self,
        pod: &Pod,
        container: &str,
        options: &vk::LogOptions,
    ) -> vk::ProviderResult<String> {
        let (namespace, name, uid) = identity(pod)?;
        let cci_name = cci_pod_name(namespace, name);
        let existing = self.client.get_pod(&self.namespace, &cci_name).await?;
        if cluster_uid_of(&existing) != Some(uid) {
            return Err(vk::ProviderError::NotFound(format!(
                "pod {namespace}/{name} has no CCI pod yet: {}/{cci_name} stands for an earlier pod of that name",
                self.namespace
            )));
        }
        match self
            .client
            .pod_log(
                &self.namespace,
                &cci_name,
                container,
                options.tail_lines,
                options.previous,
            )
            .await
        {
            Ok(text) => Ok(text),
            // CCI's own words, as a kubelet's: `container "main" in pod … is waiting to start`.
            Err(Error::Api {
                code: 400, message, ..
            }) => Err(vk::ProviderError::InvalidInput(message)),
            Err(e) => Err(e.into()),
        }
    }

    async fn delete(&self, pod: &Pod) -> Result<()> {
        let m = &pod.metadata;
        let (Some(namespace), Some(name)) = (m.namespace.as_deref(), m.name.as_deref()) else {
            return Err(Error::Translate {
                pod: format!("{:?}/{:?}", m.namespace, m.name),
                reason: "has no namespace or no name".into(),
            });
        };
        // NB: the grace period of the cluster delete, which the CCI pod does not carry (the
        // translation drops terminationGracePeriodSeconds).
        if breakage::is(Breakage::DeleteNotSent) {
            tracing::info!(pod = %format!("{namespace}/{name}"), "deleted CCI pod");
            return Ok(());
        }
        let grace = if breakage::is(Breakage::GracePeriodDropped) {
            None
        } else if breakage::is(Breakage::DeletesIgnoreGrace) {
            Some(0)
        } else {
            m.deletion_grace_period_seconds
        };
        self.delete_pod_only(m.uid.as_deref(), namespace, name, grace)
            .await?;
        if let Some(uid) = m.uid.as_deref() {
            self.release(uid).await?;
        }
        Ok(())
    }

    async fn delete_pod_only(
        &self,
        uid: Option<&str>,
        namespace: &str,
        name: &str,
        grace: Option<i64>,
    ) -> Result<()> {
        let cci_name = match uid {
            Some(uid) => translate::suffixed_name(cci_pod_name(namespace, name), uid),
            None => cci_pod_name(namespace, name),
        };
        let existing = match self.client.get_pod(&self.namespace, &cci_name).await {
            Ok(p) => p,
            Err(e) if e.code() == Some(404) => return Ok(()),
            Err(e) => return Err(e),
        };
        if let (Some(want), Some(found)) = (uid, cluster_uid_of(&existing))
            && want != found
        {
            // The name now stands for another cluster pod: ours is gone already.
            tracing::debug!(cci_pod = %cci_name, want, found, "not deleting a CCI pod of another uid");
            return Ok(());
        }
        if grace.is_none() && existing.metadata.deletion_timestamp.is_some() {
            // A delete that names no grace period (the orphan sweep's) must not cut short the
            // one already running: CCI would apply its default (none, as the translation drops
            // terminationGracePeriodSeconds) and kill the containers at once.
            tracing::debug!(cci_pod = %cci_name, "CCI pod already terminating; leaving its grace period");
            return Ok(());
        }
        match self
            .client
            .delete_pod_with_grace(&self.namespace, &cci_name, grace)
            .await
        {
            Ok(()) => {
                tracing::info!(cci_pod = %cci_name, "deleted CCI pod");
                Ok(())
            }
            Err(e) if e.code() == Some(404) => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn list(&self) -> Result<Vec<RemotePod>> {
        // NB: the namespace is the cluster's own, so every pod with the UID label is ours; the
        // filter is client-side so no label selector support is needed from the API.
        let pods = match self.cci_pods.pods() {
            Some(pods) => pods,
            // Not followed (yet, or its watch is down): as CCI says now.
            None => match self.client.list_pod_summaries(&self.namespace).await {
                Ok(list) => list
                    .items
                    .iter()
                    .filter_map(translate::remote_pod)
                    .collect(),
                Err(e) if e.code() == Some(404) => Vec::new(),
                Err(e) => return Err(e),
            },
        };
        self.lock_on_long_pending(&pods).await;
        Ok(pods
            .into_iter()
            .map(|mut remote| {
                if breakage::is(Breakage::StatusNotSynced) {
                    remote.status = None;
                }
                remote
            })
            .collect())
    }
}

/// The object an applied watch event names, with its `resourceVersion`.
fn changed<K>(
    kind: ObjectKind,
    event: watcher::Result<Event<PartialObjectMeta<K>>>,
) -> watcher::Result<Option<(ObjectKey, Option<String>)>> {
    Ok(match event? {
        Event::Apply(m) | Event::InitApply(m) => Some((
            ObjectKey::new(
                kind,
                m.metadata.namespace.unwrap_or_default(),
                m.metadata.name.unwrap_or_default(),
            ),
            m.metadata.resource_version,
        )),
        _ => None,
    })
}

impl vk::Provider for CciProvider {
    async fn create_pod(&self, pod: &Pod) -> vk::ProviderResult<()> {
        let result = self.create(pod).await.map_err(vk::ProviderError::from);
        if let (Err(e), Some(lock)) = (&result, &self.node_lock)
            && crate::lock::locks_node(e)
            && !breakage::is(Breakage::SoldOutDoesNotLock)
        {
            // Before the pod is reported Failed: whoever sees the failure sees the lock.
            lock.engage().await;
        }
        result
    }

    async fn delete_pod(&self, pod: &Pod) -> vk::ProviderResult<()> {
        Ok(self.delete(pod).await?)
    }

    /// One GET of the cluster's CCI namespace: CCI answers, and this tenant may use it. A
    /// namespace not made yet (404) is not an outage.
    async fn ping(&self) -> vk::ProviderResult<()> {
        match self.client.get_namespace(&self.namespace).await {
            Ok(_) => Ok(()),
            Err(e) if e.code() == Some(404) => Ok(()),
            // The bug: "CCI answered, so it is up".
            Err(e) if e.code().is_some() && breakage::is(Breakage::OutageNotReported) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    async fn list_pods(&self) -> vk::ProviderResult<Vec<RemotePod>> {
        Ok(self.list().await?)
    }

    async fn logs(
        &self,
        pod: &Pod,
        container: &str,
        options: &vk::LogOptions,
    ) -> vk::ProviderResult<String> {
        self.log(pod, container, options).await
    }
}
