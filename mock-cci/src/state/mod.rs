//! The store: every tenant's namespaces and objects, the simulated pod lifecycle, faults,
//! billing and the watch history.
//!
//! Pure logic: no IO and no clock reads. Every operation is handed `now` (a
//! [`tokio::time::Instant`], so tests may pause time) and the store derives wall-clock
//! timestamps from the epoch it was created with.
//!
//! # Lifecycle and `resourceVersion`
//!
//! One global counter numbers every change (namespaces, pods, ConfigMaps, … alike); an object's
//! `resourceVersion` is the counter value of its last change, and a list's is the counter's
//! current value.
//!
//! Pods change by themselves (they start, their containers exit and restart, a graceful delete
//! ends). Each pod records the instant its next change falls due, in a priority queue; every
//! operation first *settles* the store at `now`, applying each change that has fallen due, in
//! the order they fell due (ties by creation order), each taking the next `resourceVersion`.
//! Settling costs O(log n) per change, whatever the number of pods. Because a write also
//! settles first, a change that fell due before a write is numbered before it, so the counter
//! orders changes as they happened in (simulated) time, and no reader ever sees an object change
//! without its `resourceVersion` changing. The timestamps of a change (`startTime`, `startedAt`,
//! `finishedAt`, conditions) are those of the instant it fell due, not the instant it was
//! observed. Nothing runs in the background: a watch sleeps until [`Store::next_due`] and then
//! settles (the watch stream of `GET …/pods?watch=true`), so its events arrive on time.
//!
//! # Pods
//!
//! A pod needs an address from its namespace's Network: created in a namespace with no `Ready`
//! Network, it stays `Pending` with no IP (`PodScheduled` False, `NetworkNotReady`) until one
//! turns `Ready` ([`network_ready_after`](crate::MockConfig::network_ready_after) after its
//! creation, through the same settling as pod changes); its address then comes from the
//! Network's subnet when the configuration knows that subnet's CIDR.
//! A pod turns `Running` [`running_after`](crate::MockConfig::running_after) after its creation
//! (or after its Network turned `Ready`; unless an image-pull fault holds it `Pending`). Each app container then behaves as
//! [`crate::behaviour`] describes; when one exits, the pod's `restartPolicy` decides: `Never`
//! leaves it terminated, `OnFailure` restarts it after a non-zero code, `Always` after any code,
//! each restart after the kubelet's back-off (`CrashLoopBackOff`: the configured first back-off,
//! doubling, at most five minutes), counting `restartCount`. When every app container has
//! terminated for good the pod is `Succeeded` (all exit codes 0) or `Failed`. Init containers
//! are shown as completed when the pod starts.
//!
//! A DELETE with a grace period (`gracePeriodSeconds`, else the pod's
//! `terminationGracePeriodSeconds`, else 0) on a running pod sets `deletionTimestamp` to the
//! period's end and sends its containers SIGTERM: when every running container exits on it
//! ([`crate::behaviour::OnSigterm`]) the pod goes after [`stop_time`](crate::MockConfig::stop_time)
//! (or the period's end if sooner), otherwise when the period ends; a grace period of 0, or a pod
//! that has not started or has finished, goes at once.
//!
//! # Slow deletes
//!
//! Under a [`SlowDelete`](crate::faults::Fault::SlowDelete) fault a deleted pod lingers,
//! terminating, for the fault's `millis` after it would have gone (a pod that had not started
//! stays unstarted), through the same timer queue. A deleted namespace is marked terminating
//! (`deletionTimestamp`, a new `resourceVersion`), keeps its pods and objects, refuses new ones,
//! and is removed with everything in it once `millis` have passed; settling applies these
//! removals in time order with the pod changes, from a set ordered by due instant.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};
use std::net::Ipv4Addr;
use std::sync::Arc;

use cci_api::{API_VERSION, List, Namespace};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ListMeta, ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::MockConfig;
use crate::error::{Error, Result};
use crate::faults::{Faults, Resource};
use crate::selector::LabelSelector;
use crate::validate;

mod events;
mod ledger;
pub mod network;
mod objects;
mod pods;

pub use events::{EventType, Gone, History, PodEvent};
pub use ledger::{Bill, Ledger, Peak, Peaks, Period};
pub use objects::StoredObject;
pub use pods::{
    DeleteOptions, LogOptions, PHASE_FAILED, PHASE_PENDING, PHASE_RUNNING, PHASE_SUCCEEDED,
};

use objects::Objects;
use pods::{PodEntry, later};

/// A pod as the admin view shows it, for test assertions.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodRecord {
    /// The tenant owning the pod's namespace.
    pub tenant: String,
    /// The pod's namespace.
    pub namespace: String,
    /// The pod's name.
    pub name: String,
    /// The uid the service gave it.
    pub uid: String,
    /// `Pending`, `Running`, `Succeeded` or `Failed`.
    pub phase: String,
    /// Its labels (empty when it has none).
    pub labels: BTreeMap<String, String>,
    /// The size the service gave it (`resource.cci.io/size`).
    #[serde(default)]
    pub size: String,
    /// Whether a graceful delete is under way.
    #[serde(default)]
    pub terminating: bool,
}

/// A namespace as the admin view shows it, for test assertions.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NamespaceRecord {
    /// The tenant that created it.
    pub tenant: String,
    /// Its name.
    pub name: String,
    /// The uid the service gave it.
    pub uid: String,
    /// How many pods it holds.
    pub pod_count: usize,
    /// Whether it is being deleted (a slow-delete fault keeps it for a while).
    #[serde(default)]
    pub terminating: bool,
}

/// The wall-clock time that corresponds to a monotonic instant; the store counts from it.
#[derive(Clone, Copy, Debug)]
pub struct Epoch {
    /// A monotonic instant.
    pub instant: Instant,
    /// The wall-clock time at that instant.
    pub wall: Timestamp,
}

impl Epoch {
    /// The wall-clock time of `at`.
    pub fn wall(&self, at: Instant) -> Time {
        let since = at.saturating_duration_since(self.instant);
        Time(self.wall.checked_add(since).unwrap_or(self.wall))
    }
}

#[derive(Clone, Debug)]
pub(crate) struct NamespaceEntry {
    tenant: String,
    namespace: Namespace,
    pods: BTreeMap<String, PodEntry>,
    objects: Objects,
    /// When a terminating namespace goes (set by a slow delete).
    deleting_at: Option<Instant>,
}

impl NamespaceEntry {
    /// Refuses to create `kind` `name` in it while it is terminating.
    fn check_not_terminating(&self, kind: &'static str, name: &str) -> Result<()> {
        match self.deleting_at {
            None => Ok(()),
            Some(_) => Err(Error::NamespaceTerminating {
                kind,
                name: name.to_owned(),
                namespace: self.namespace.metadata.name.clone().unwrap_or_default(),
            }),
        }
    }
}

impl validate::References for NamespaceEntry {
    fn has_config_map(&self, name: &str) -> bool {
        self.objects.config_maps.contains_key(name)
    }

    fn has_secret(&self, name: &str) -> bool {
        self.objects.secrets.contains_key(name)
    }

    fn claim_class(&self, name: &str) -> Option<Option<String>> {
        self.objects
            .claims
            .get(name)
            .map(|claim| claim.spec.storage_class_name.clone())
    }
}

/// All objects of all tenants. See the module docs for the lifecycle rules.
#[derive(Debug)]
pub struct Store {
    config: MockConfig,
    epoch: Epoch,
    counters: Counters,
    namespaces: BTreeMap<String, NamespaceEntry>,
    ips: IpPool,
    /// When each pod's next change falls due: (due, pod seq, namespace, name). Entries whose pod
    /// is gone or whose due has moved are skipped when popped.
    timers: BinaryHeap<Reverse<(Instant, u64, String, String)>>,
    /// When each terminating namespace goes: (due, name).
    namespace_removals: BTreeSet<(Instant, String)>,
    /// When each new Network turns Ready: (due, namespace, name, uid).
    network_readiness: BTreeSet<(Instant, String, String, String)>,
    /// The faults that are set.
    pub faults: Faults,
    history: History,
    ledger: Ledger,
    peaks: Peaks,
}

#[derive(Debug)]
struct Counters {
    resource_version: u64,
    seq: u64,
    uid_seed: u64,
}

impl Counters {
    fn next_rv(&mut self) -> u64 {
        self.resource_version += 1;
        self.resource_version
    }

    fn next_resource_version(&mut self) -> String {
        self.next_rv().to_string()
    }

    fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    /// A UUID-v4-shaped uid, derived from the seed and a fresh sequence number.
    fn next_uid(&mut self) -> String {
        let seq = self.next_seq();
        // NB: splitmix64 is a bijection, so `hi` differs for every sequence number; only the
        // four version bits overwritten below could make two uids collide.
        let hi = splitmix64(self.uid_seed.wrapping_add(seq));
        let lo = splitmix64(hi ^ self.uid_seed.rotate_left(29));
        let mut b = ((u128::from(hi) << 64) | u128::from(lo)).to_be_bytes();
        b[6] = (b[6] & 0x0f) | 0x40;
        b[8] = (b[8] & 0x3f) | 0x80;
        let hex: String = b.iter().map(|byte| format!("{byte:02x}")).collect();
        format!(
            "{}-{}-{}-{}-{}",
            &hex[0..8],
            &hex[8..12],
            &hex[12..16],
            &hex[16..20],
            &hex[20..32]
        )
    }
}

fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Where a pod's address comes from: the VPC subnet of its namespace's Ready Network when the
/// mock knows that subnet's CIDR, else fake addresses in 172.31.0.1 – 172.31.255.254.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum AddressRange {
    Fake,
    Subnet(crate::config::SubnetCidr),
}

impl AddressRange {
    const FAKE_SIZE: u32 = 256 * 254;

    fn size(&self) -> u32 {
        match self {
            Self::Fake => Self::FAKE_SIZE,
            Self::Subnet(cidr) => cidr.pod_addresses(),
        }
    }

    fn address(&self, index: u32) -> Ipv4Addr {
        match self {
            Self::Fake => {
                let third = u8::try_from(index / 254).unwrap_or(u8::MAX);
                let fourth = u8::try_from(index % 254 + 1).unwrap_or(u8::MAX);
                Ipv4Addr::new(172, 31, third, fourth)
            }
            Self::Subnet(cidr) => cidr.pod_address(index),
        }
    }

    /// The key of its allocation cursor.
    fn key(&self) -> Option<(Ipv4Addr, u8)> {
        match self {
            Self::Fake => None,
            Self::Subnet(cidr) => Some((cidr.network, cidr.prefix)),
        }
    }
}

/// Pod addresses, unique among live pods.
#[derive(Debug, Default)]
struct IpPool {
    /// Where the next allocation in each range starts looking.
    next: BTreeMap<Option<(Ipv4Addr, u8)>, u32>,
    in_use: BTreeSet<Ipv4Addr>,
}

impl IpPool {
    fn allocate(&mut self, range: AddressRange) -> Option<Ipv4Addr> {
        let size = range.size();
        let next = self.next.entry(range.key()).or_default();
        for _ in 0..size {
            let candidate = range.address(*next % size);
            *next = (*next + 1) % size;
            if self.in_use.insert(candidate) {
                return Some(candidate);
            }
        }
        None
    }

    fn release(&mut self, ip: Ipv4Addr) {
        self.in_use.remove(&ip);
    }
}

impl Store {
    /// An empty store with this configuration. `uid_seed` makes uids differ between stores
    /// (pass a random one; a fixed one gives fixed uids).
    pub fn new(config: MockConfig, epoch: Epoch, uid_seed: u64) -> Self {
        let history = History::new(config.watch_history);
        Self {
            config,
            epoch,
            counters: Counters {
                resource_version: 0,
                seq: 0,
                uid_seed,
            },
            namespaces: BTreeMap::new(),
            ips: IpPool::default(),
            timers: BinaryHeap::new(),
            namespace_removals: BTreeSet::new(),
            network_readiness: BTreeSet::new(),
            faults: Faults::default(),
            history,
            ledger: Ledger::default(),
            peaks: Peaks::default(),
        }
    }

    /// The current value of the global `resourceVersion` counter (after settling at `now`).
    pub fn resource_version(&mut self, now: Instant) -> u64 {
        self.settle(now);
        self.counters.resource_version
    }

    /// The current value of the global `resourceVersion` counter, without settling.
    pub fn current_resource_version(&self) -> u64 {
        self.counters.resource_version
    }

    /// When the next change (of a pod, or a terminating namespace going) falls due, if any is
    /// scheduled.
    pub fn next_due(&self) -> Option<Instant> {
        let pod = self.timers.peek().map(|Reverse((due, ..))| *due);
        let namespace = self.namespace_removals.first().map(|(due, _)| *due);
        pod.into_iter().chain(namespace).min()
    }

    fn wall(&self, at: Instant) -> Time {
        self.epoch.wall(at)
    }

    /// Applies every change due at `now`, in the order they fell due.
    pub fn settle(&mut self, now: Instant) {
        loop {
            let pod = self
                .timers
                .peek()
                .map(|Reverse((due, ..))| *due)
                .filter(|due| *due <= now);
            let network = self
                .network_readiness
                .first()
                .map(|(due, ..)| *due)
                .filter(|due| *due <= now);
            let namespace = self
                .namespace_removals
                .first()
                .map(|(due, _)| *due)
                .filter(|due| *due <= now);
            // NB: at the same instant a Network turns Ready before the pods waiting for it
            // move, and a pod change comes before its namespace's removal.
            let first = [network, pod, namespace]
                .into_iter()
                .enumerate()
                .filter_map(|(i, due)| due.map(|d| (d, i)))
                .min();
            match first {
                None => break,
                Some((_, 0)) => {
                    if let Some((due, ns, name, uid)) = self.network_readiness.pop_first() {
                        self.network_ready(&ns, &name, &uid, due);
                    }
                }
                Some((_, 1)) => self.settle_pod(),
                Some(_) => {
                    if let Some((due, name)) = self.namespace_removals.pop_first() {
                        self.remove_namespace(&name, due);
                    }
                }
            }
        }
    }

    /// Applies the pod change first on the timer queue.
    fn settle_pod(&mut self) {
        if let Some(Reverse((due, seq, ns, name))) = self.timers.pop()
            && self.take_timer(&ns, &name, seq, due)
        {
            self.advance_pod(&ns, &name, due);
        }
    }

    /// The pod changes after `since` in `ns` of `tenant` that `selector` selects.
    pub fn pod_events(
        &mut self,
        tenant: &str,
        ns: &str,
        selector: &LabelSelector,
        since: u64,
        now: Instant,
    ) -> Result<Vec<PodEvent>> {
        self.settle(now);
        // NB: a watched namespace may be deleted meanwhile; its DELETED events still flow.
        if let Some(entry) = self.namespaces.get(ns)
            && entry.tenant != tenant
        {
            return Err(Error::Forbidden {
                tenant: tenant.to_owned(),
                namespace: ns.to_owned(),
            });
        }
        self.history
            .since(ns, since, |e| {
                selector.matches(e.pod.metadata.labels.as_ref())
            })
            .map_err(|gone| Error::Gone {
                requested: since,
                oldest: gone.oldest,
            })
    }

    /// Checks that a watch may start from `since` in `ns` of `tenant`.
    pub fn check_watch(&mut self, tenant: &str, ns: &str, since: u64, now: Instant) -> Result<()> {
        self.settle(now);
        owned(&self.namespaces, tenant, ns)?;
        self.history
            .since(ns, since, |_| false)
            .map(drop)
            .map_err(|gone| Error::Gone {
                requested: since,
                oldest: gone.oldest,
            })
    }

    /// Creates a namespace owned by `tenant`.
    pub fn create_namespace(
        &mut self,
        tenant: &str,
        mut namespace: Namespace,
        now: Instant,
    ) -> Result<Namespace> {
        self.settle(now);
        let name = namespace.metadata.name.clone().unwrap_or_default();
        let causes = validate::validate_namespace(&namespace);
        if !causes.is_empty() {
            return Err(Error::Invalid {
                kind: "Namespace",
                name,
                causes,
            });
        }
        if self.namespaces.contains_key(&name) {
            return Err(Error::NamespaceExists { namespace: name });
        }
        namespace.metadata = ObjectMeta {
            uid: Some(self.counters.next_uid()),
            creation_timestamp: Some(self.wall(now)),
            resource_version: Some(self.counters.next_resource_version()),
            namespace: None,
            ..namespace.metadata
        };
        namespace.status = Some(cci_api::NamespaceStatus {
            phase: Some(cci_api::NAMESPACE_ACTIVE.to_owned()),
        });
        self.ledger.open(tenant, &name, now);
        self.namespaces.insert(
            name,
            NamespaceEntry {
                tenant: tenant.to_owned(),
                namespace: namespace.clone(),
                pods: BTreeMap::new(),
                objects: Objects::default(),
                deleting_at: None,
            },
        );
        Ok(namespace)
    }

    /// The namespaces of `tenant` that `selector` selects, by name.
    pub fn list_namespaces(
        &mut self,
        tenant: &str,
        selector: &LabelSelector,
        now: Instant,
    ) -> List<Namespace> {
        self.settle(now);
        let items = self
            .namespaces
            .values()
            .filter(|entry| entry.tenant == tenant)
            .map(|entry| &entry.namespace)
            .filter(|ns| selector.matches(ns.metadata.labels.as_ref()))
            .cloned()
            .collect();
        self.list("NamespaceList", items)
    }

    /// One namespace of `tenant`.
    pub fn get_namespace(&mut self, tenant: &str, name: &str, now: Instant) -> Result<Namespace> {
        self.settle(now);
        Ok(owned(&self.namespaces, tenant, name)?.namespace.clone())
    }

    /// Deletes a namespace of `tenant` and everything in it, as CCI does: asynchronously. The
    /// answer is the namespace `Terminating` (`deletionTimestamp`, `status.phase`); its pods are
    /// deleted gracefully, each with its own grace period, new objects are refused, and it goes
    /// [`MockConfig::namespace_termination`] after its last pod went. Under a slow-delete fault
    /// it keeps its pods and objects instead, and goes the fault's `millis` later. An empty
    /// namespace with no termination time goes at once. Deleting it again answers it as it is.
    pub fn delete_namespace(
        &mut self,
        tenant: &str,
        name: &str,
        now: Instant,
    ) -> Result<Namespace> {
        self.settle(now);
        let entry = owned(&self.namespaces, tenant, name)?;
        if entry.deleting_at.is_some() {
            return Ok(entry.namespace.clone());
        }
        let gone_at = match self.faults.slow_delete(tenant, name, Resource::Namespaces) {
            Some(linger) => later(now, linger),
            None => {
                let pods: Vec<String> = entry.pods.keys().cloned().collect();
                let termination = self.config.namespace_termination;
                if pods.is_empty() && termination.is_zero() {
                    return Ok(self.remove_namespace(name, now));
                }
                let mut last = now;
                for pod in pods {
                    self.delete_pod(tenant, name, &pod, pods::DeleteOptions::default(), now)?;
                    let going = self.namespaces.get(name).and_then(|e| e.pods.get(&pod));
                    if let Some(at) = going.and_then(|p| p.deleting_at) {
                        last = last.max(at);
                    }
                }
                later(last, termination)
            }
        };
        let deleted = self.wall(now);
        let rv = self.counters.next_resource_version();
        let entry = owned_mut(&mut self.namespaces, tenant, name)?;
        entry.deleting_at = Some(gone_at);
        entry.namespace.metadata.deletion_timestamp = Some(deleted);
        entry.namespace.metadata.resource_version = Some(rv);
        entry.namespace.status = Some(cci_api::NamespaceStatus {
            phase: Some(cci_api::NAMESPACE_TERMINATING.to_owned()),
        });
        let namespace = entry.namespace.clone();
        self.namespace_removals.insert((gone_at, name.to_owned()));
        Ok(namespace)
    }

    /// Removes a namespace with its pods (each with its DELETED event) and objects.
    fn remove_namespace(&mut self, name: &str, now: Instant) -> Namespace {
        let pod_names: Vec<String> = self
            .namespaces
            .get(name)
            .map(|entry| entry.pods.keys().cloned().collect())
            .unwrap_or_default();
        for pod in pod_names {
            self.remove_pod(name, &pod, now);
        }
        let Some(entry) = self.namespaces.remove(name) else {
            return Namespace::default();
        };
        if let Some(due) = entry.deleting_at {
            self.namespace_removals.remove(&(due, name.to_owned()));
        }
        self.ledger.close(&entry.tenant, name, now);
        let mut namespace = entry.namespace;
        namespace.metadata.resource_version = Some(self.counters.next_resource_version());
        namespace
    }

    /// Every pod of every tenant, by namespace and name.
    pub fn pod_records(&mut self, now: Instant) -> Vec<PodRecord> {
        self.settle(now);
        self.namespaces
            .values()
            .flat_map(|ns| ns.pods.values().map(|entry| entry.record(&ns.tenant)))
            .collect()
    }

    /// Every namespace of every tenant, by name.
    pub fn namespace_records(&mut self, now: Instant) -> Vec<NamespaceRecord> {
        self.settle(now);
        self.namespaces
            .iter()
            .map(|(name, entry)| NamespaceRecord {
                tenant: entry.tenant.clone(),
                name: name.clone(),
                uid: entry.namespace.metadata.uid.clone().unwrap_or_default(),
                pod_count: entry.pods.len(),
                terminating: entry.deleting_at.is_some(),
            })
            .collect()
    }

    /// Every namespace's bill up to `now`.
    pub fn bills(&mut self, now: Instant) -> Vec<Bill> {
        self.settle(now);
        self.ledger.bills(now)
    }

    /// The peak number of pods of `ns` that `selector` selects, in `period`.
    pub fn peak(
        &mut self,
        ns: &str,
        selector: &LabelSelector,
        period: Period,
        now: Instant,
    ) -> Peak {
        self.settle(now);
        self.peaks.peak(ns, selector, period)
    }

    /// Everything the store holds, as JSON with a stable order: tenants → namespaces → the
    /// namespace object, pods, configmaps, secrets, persistentvolumeclaims, services,
    /// proxyregistrations, networks (each by name).
    pub fn dump(&mut self, now: Instant) -> serde_json::Value {
        self.settle(now);
        let mut tenants: BTreeMap<&str, BTreeMap<&str, serde_json::Value>> = BTreeMap::new();
        for (name, entry) in &self.namespaces {
            let pods: BTreeMap<&String, &cci_api::Pod> =
                entry.pods.iter().map(|(n, p)| (n, &p.pod)).collect();
            let value = serde_json::json!({
                "namespace": entry.namespace,
                "pods": pods,
                "configmaps": entry.objects.config_maps,
                "secrets": entry.objects.secrets,
                "persistentvolumeclaims": entry.objects.claims,
                "services": entry.objects.services,
                "proxyregistrations": entry.objects.proxies,
                "networks": entry.objects.networks,
            });
            tenants
                .entry(entry.tenant.as_str())
                .or_default()
                .insert(name.as_str(), value);
        }
        serde_json::json!({
            "resourceVersion": self.counters.resource_version.to_string(),
            "tenants": tenants,
        })
    }

    /// Deletes every namespace (with DELETED events for their pods) and forgets faults, bills,
    /// peaks and the watch history. The `resourceVersion` counter goes on counting.
    pub fn reset(&mut self, now: Instant) {
        self.settle(now);
        let names: Vec<String> = self.namespaces.keys().cloned().collect();
        for name in names {
            self.remove_namespace(&name, now);
        }
        self.faults.clear();
        self.ledger = Ledger::default();
        self.peaks = Peaks::default();
        self.timers.clear();
        self.namespace_removals.clear();
        self.history.compact_through(self.counters.resource_version);
    }

    fn list<T>(&self, kind: &str, items: Vec<T>) -> List<T> {
        List {
            api_version: API_VERSION.into(),
            kind: kind.into(),
            metadata: ListMeta {
                resource_version: Some(self.counters.resource_version.to_string()),
                ..ListMeta::default()
            },
            items,
        }
    }

    fn record_event(&mut self, ns: &str, type_: EventType, pod: &cci_api::Pod, rv: u64) {
        self.history.push(PodEvent {
            rv,
            namespace: ns.into(),
            type_,
            pod: Arc::new(pod.clone()),
        });
    }
}

/// The namespace `name`, if it exists and belongs to `tenant`.
fn owned<'a>(
    namespaces: &'a BTreeMap<String, NamespaceEntry>,
    tenant: &str,
    name: &str,
) -> Result<&'a NamespaceEntry> {
    match namespaces.get(name) {
        None => Err(Error::NamespaceNotFound {
            namespace: name.to_owned(),
        }),
        Some(entry) if entry.tenant != tenant => Err(Error::Forbidden {
            tenant: tenant.to_owned(),
            namespace: name.to_owned(),
        }),
        Some(entry) => Ok(entry),
    }
}

/// The namespace `name`, mutably, if it exists and belongs to `tenant`.
fn owned_mut<'a>(
    namespaces: &'a mut BTreeMap<String, NamespaceEntry>,
    tenant: &str,
    name: &str,
) -> Result<&'a mut NamespaceEntry> {
    owned(namespaces, tenant, name)?;
    namespaces
        .get_mut(name)
        .ok_or_else(|| Error::NamespaceNotFound {
            namespace: name.to_owned(),
        })
}

#[cfg(test)]
mod tests;
