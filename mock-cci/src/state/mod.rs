//! The store: every tenant's namespaces and pods, and the simulated pod lifecycle.
//!
//! Pure logic: no IO and no clock reads. Every operation is handed `now` (a
//! [`tokio::time::Instant`], so tests may pause time) and the store derives wall-clock
//! timestamps from the epoch it was created with.
//!
//! # Lifecycle and `resourceVersion`
//!
//! One global counter numbers every change (namespaces and pods alike); an object's
//! `resourceVersion` is the counter value of its last change, and a list's is the counter's
//! current value.
//!
//! A pod turns `Running` [`running_after`](crate::MockConfig::running_after) after its creation.
//! No background task drives this: each pod records the instant it falls due, and every
//! operation first *settles* the store at `now`, applying each transition that has fallen due,
//! in the order they fell due, each taking the next `resourceVersion`. Because a write also
//! settles first, a transition that fell due before a write is numbered before it, so the
//! counter orders changes as they happened in (simulated) time, and no reader ever sees an
//! object change without its `resourceVersion` changing. The timestamps of a transition
//! (`startTime`, `startedAt`, conditions) are those of the instant it fell due, not the instant
//! it was observed.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::time::Duration;

use cci_api::{API_VERSION, List, Namespace, Pod};
use k8s_openapi::api::core::v1::{
    ContainerState, ContainerStateRunning, ContainerStatus, HostIP, PodCondition, PodIP, PodSpec,
    PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ListMeta, ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::error::{Error, Result};
use crate::selector::LabelSelector;
use crate::validate;

/// Phase of a pod that is accepted and waiting to start.
pub const PHASE_PENDING: &str = "Pending";
/// Phase of a pod whose containers run.
pub const PHASE_RUNNING: &str = "Running";

/// The pod conditions a running pod reports, all `True`.
const RUNNING_CONDITIONS: [&str; 4] = ["PodScheduled", "Initialized", "ContainersReady", "Ready"];

/// How many fake hosts pods are spread over (`192.168.16.1` to `192.168.16.16`).
const HOST_COUNT: u64 = 16;

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
    /// `Pending` or `Running`.
    pub phase: String,
    /// Its labels (empty when it has none).
    pub labels: BTreeMap<String, String>,
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
}

/// The wall-clock time that corresponds to a monotonic instant; the store counts from it.
#[derive(Clone, Copy, Debug)]
pub struct Epoch {
    /// A monotonic instant.
    pub instant: Instant,
    /// The wall-clock time at that instant.
    pub wall: Timestamp,
}

#[derive(Clone, Debug)]
enum Lifecycle {
    Pending { due: Instant },
    Running { ip: u32 },
}

#[derive(Clone, Debug)]
struct PodEntry {
    pod: Pod,
    /// Creation order, to break ties between transitions due at the same instant.
    seq: u64,
    lifecycle: Lifecycle,
}

#[derive(Clone, Debug)]
struct NamespaceEntry {
    tenant: String,
    namespace: Namespace,
    pods: BTreeMap<String, PodEntry>,
}

/// All namespaces and pods of all tenants. See the module docs for the lifecycle rules.
#[derive(Debug)]
pub struct Store {
    running_after: Duration,
    epoch: Epoch,
    counters: Counters,
    namespaces: BTreeMap<String, NamespaceEntry>,
    ips: IpPool,
}

#[derive(Debug)]
struct Counters {
    resource_version: u64,
    seq: u64,
    uid_seed: u64,
}

impl Counters {
    fn next_resource_version(&mut self) -> String {
        self.resource_version += 1;
        self.resource_version.to_string()
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

/// Fake pod IPs in 172.31.0.1 – 172.31.255.254, unique among live pods.
#[derive(Debug, Default)]
struct IpPool {
    next: u32,
    in_use: BTreeSet<u32>,
}

impl IpPool {
    const SIZE: u32 = 256 * 254;

    fn allocate(&mut self) -> Option<u32> {
        for _ in 0..Self::SIZE {
            let candidate = self.next;
            self.next = (self.next + 1) % Self::SIZE;
            if self.in_use.insert(candidate) {
                return Some(candidate);
            }
        }
        None
    }

    fn release(&mut self, index: u32) {
        self.in_use.remove(&index);
    }

    fn address(index: u32) -> Ipv4Addr {
        let third = u8::try_from(index / 254).unwrap_or(u8::MAX);
        let fourth = u8::try_from(index % 254 + 1).unwrap_or(u8::MAX);
        Ipv4Addr::new(172, 31, third, fourth)
    }
}

impl Store {
    /// An empty store whose pods turn `Running` `running_after` after creation. `uid_seed`
    /// makes uids differ between stores (pass a random one; a fixed one gives fixed uids).
    pub fn new(running_after: Duration, epoch: Epoch, uid_seed: u64) -> Self {
        Self {
            running_after,
            epoch,
            counters: Counters {
                resource_version: 0,
                seq: 0,
                uid_seed,
            },
            namespaces: BTreeMap::new(),
            ips: IpPool::default(),
        }
    }

    /// The current value of the global `resourceVersion` counter (after settling at `now`).
    pub fn resource_version(&mut self, now: Instant) -> u64 {
        self.settle(now);
        self.counters.resource_version
    }

    fn wall(&self, at: Instant) -> Time {
        let since = at.saturating_duration_since(self.epoch.instant);
        Time(
            self.epoch
                .wall
                .checked_add(since)
                .unwrap_or(self.epoch.wall),
        )
    }

    /// Applies every lifecycle transition due at `now`, in the order they fell due.
    fn settle(&mut self, now: Instant) {
        let mut due: Vec<(Instant, u64, String, String)> = self
            .namespaces
            .iter()
            .flat_map(|(ns, entry)| {
                entry
                    .pods
                    .iter()
                    .filter_map(move |(name, pod)| match pod.lifecycle {
                        Lifecycle::Pending { due } if due <= now => {
                            Some((due, pod.seq, ns.clone(), name.clone()))
                        }
                        _ => None,
                    })
            })
            .collect();
        due.sort();
        for (at, _, ns, name) in due {
            self.start_pod(&ns, &name, at);
        }
    }

    fn start_pod(&mut self, ns: &str, name: &str, at: Instant) {
        let started = self.wall(at);
        let Some(ip) = self.ips.allocate() else {
            // NB: with every fake IP taken the pod stays Pending, as on a full subnet.
            tracing::warn!(
                namespace = ns,
                pod = name,
                "no fake pod IP left; the pod stays Pending"
            );
            return;
        };
        let Some(entry) = self
            .namespaces
            .get_mut(ns)
            .and_then(|n| n.pods.get_mut(name))
        else {
            self.ips.release(ip);
            return;
        };
        let host = 1 + entry.seq % HOST_COUNT;
        let host_ip = Ipv4Addr::new(192, 168, 16, u8::try_from(host).unwrap_or(1));
        let uid = entry.pod.metadata.uid.clone().unwrap_or_default();
        entry.pod.status = Some(running_status(
            &entry.pod.spec,
            &uid,
            IpPool::address(ip),
            host_ip,
            started,
        ));
        entry.pod.metadata.resource_version = Some(self.counters.next_resource_version());
        entry.lifecycle = Lifecycle::Running { ip };
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
                kind: "namespace",
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
        self.namespaces.insert(
            name,
            NamespaceEntry {
                tenant: tenant.to_owned(),
                namespace: namespace.clone(),
                pods: BTreeMap::new(),
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

    /// Deletes a namespace of `tenant` and every pod in it; returns the namespace as it was.
    pub fn delete_namespace(
        &mut self,
        tenant: &str,
        name: &str,
        now: Instant,
    ) -> Result<Namespace> {
        self.settle(now);
        owned(&self.namespaces, tenant, name)?;
        let entry = self
            .namespaces
            .remove(name)
            .ok_or_else(|| Error::NamespaceNotFound {
                namespace: name.to_owned(),
            })?;
        for pod in entry.pods.into_values() {
            self.counters.next_resource_version();
            if let Lifecycle::Running { ip } = pod.lifecycle {
                self.ips.release(ip);
            }
        }
        let mut namespace = entry.namespace;
        namespace.metadata.resource_version = Some(self.counters.next_resource_version());
        Ok(namespace)
    }

    /// Creates a pod in namespace `ns` of `tenant`; it starts `Pending`.
    pub fn create_pod(
        &mut self,
        tenant: &str,
        ns: &str,
        mut pod: Pod,
        now: Instant,
    ) -> Result<Pod> {
        self.settle(now);
        owned(&self.namespaces, tenant, ns)?;
        let name = pod.metadata.name.clone().unwrap_or_default();
        let causes = validate::validate_pod(&pod, ns);
        if !causes.is_empty() {
            return Err(Error::Invalid {
                kind: "pod",
                name,
                causes,
            });
        }
        if self.namespaces[ns].pods.contains_key(&name) {
            return Err(Error::PodExists {
                namespace: ns.to_owned(),
                name,
            });
        }
        pod.metadata = ObjectMeta {
            uid: Some(self.counters.next_uid()),
            namespace: Some(ns.to_owned()),
            creation_timestamp: Some(self.wall(now)),
            resource_version: Some(self.counters.next_resource_version()),
            ..pod.metadata
        };
        pod.status = Some(PodStatus {
            phase: Some(PHASE_PENDING.into()),
            ..PodStatus::default()
        });
        let entry = PodEntry {
            pod: pod.clone(),
            seq: self.counters.next_seq(),
            lifecycle: Lifecycle::Pending {
                due: now + self.running_after,
            },
        };
        if let Some(namespace) = self.namespaces.get_mut(ns) {
            namespace.pods.insert(name, entry);
        }
        Ok(pod)
    }

    /// The pods in namespace `ns` of `tenant` that `selector` selects, by name.
    pub fn list_pods(
        &mut self,
        tenant: &str,
        ns: &str,
        selector: &LabelSelector,
        now: Instant,
    ) -> Result<List<Pod>> {
        self.settle(now);
        let items = owned(&self.namespaces, tenant, ns)?
            .pods
            .values()
            .map(|entry| &entry.pod)
            .filter(|pod| selector.matches(pod.metadata.labels.as_ref()))
            .cloned()
            .collect();
        Ok(self.list("PodList", items))
    }

    /// One pod in namespace `ns` of `tenant`.
    pub fn get_pod(&mut self, tenant: &str, ns: &str, name: &str, now: Instant) -> Result<Pod> {
        self.settle(now);
        owned(&self.namespaces, tenant, ns)?
            .pods
            .get(name)
            .map(|entry| entry.pod.clone())
            .ok_or_else(|| Error::PodNotFound {
                namespace: ns.to_owned(),
                name: name.to_owned(),
            })
    }

    /// Deletes a pod at once; returns it as it was, with the `resourceVersion` of its deletion.
    pub fn delete_pod(&mut self, tenant: &str, ns: &str, name: &str, now: Instant) -> Result<Pod> {
        self.settle(now);
        owned(&self.namespaces, tenant, ns)?;
        let entry = self
            .namespaces
            .get_mut(ns)
            .and_then(|namespace| namespace.pods.remove(name))
            .ok_or_else(|| Error::PodNotFound {
                namespace: ns.to_owned(),
                name: name.to_owned(),
            })?;
        if let Lifecycle::Running { ip } = entry.lifecycle {
            self.ips.release(ip);
        }
        let mut pod = entry.pod;
        pod.metadata.resource_version = Some(self.counters.next_resource_version());
        Ok(pod)
    }

    /// Every pod of every tenant, by namespace and name.
    pub fn pod_records(&mut self, now: Instant) -> Vec<PodRecord> {
        self.settle(now);
        self.namespaces
            .values()
            .flat_map(|ns| {
                ns.pods.values().map(|entry| {
                    let meta = &entry.pod.metadata;
                    PodRecord {
                        tenant: ns.tenant.clone(),
                        namespace: meta.namespace.clone().unwrap_or_default(),
                        name: meta.name.clone().unwrap_or_default(),
                        uid: meta.uid.clone().unwrap_or_default(),
                        phase: match entry.lifecycle {
                            Lifecycle::Pending { .. } => PHASE_PENDING,
                            Lifecycle::Running { .. } => PHASE_RUNNING,
                        }
                        .into(),
                        labels: meta.labels.clone().unwrap_or_default(),
                    }
                })
            })
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
            })
            .collect()
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

fn running_status(
    spec: &PodSpec,
    uid: &str,
    pod_ip: Ipv4Addr,
    host_ip: Ipv4Addr,
    started: Time,
) -> PodStatus {
    let conditions = RUNNING_CONDITIONS
        .iter()
        .map(|type_| PodCondition {
            type_: (*type_).into(),
            status: "True".into(),
            last_transition_time: Some(started.clone()),
            ..PodCondition::default()
        })
        .collect();
    let container_statuses = spec
        .containers
        .iter()
        .map(|container| {
            let image = container.image.clone().unwrap_or_default();
            ContainerStatus {
                name: container.name.clone(),
                image_id: image.clone(),
                image,
                container_id: Some(format!("cci://{uid}/{}", container.name)),
                ready: true,
                started: Some(true),
                restart_count: 0,
                state: Some(ContainerState {
                    running: Some(ContainerStateRunning {
                        started_at: Some(started.clone()),
                    }),
                    ..ContainerState::default()
                }),
                ..ContainerStatus::default()
            }
        })
        .collect();
    PodStatus {
        phase: Some(PHASE_RUNNING.into()),
        pod_ip: Some(pod_ip.to_string()),
        pod_ips: Some(vec![PodIP {
            ip: pod_ip.to_string(),
        }]),
        host_ip: Some(host_ip.to_string()),
        host_ips: Some(vec![HostIP {
            ip: host_ip.to_string(),
        }]),
        start_time: Some(started),
        conditions: Some(conditions),
        container_statuses: Some(container_statuses),
        ..PodStatus::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Container;

    const DELAY: Duration = Duration::from_millis(500);

    fn store() -> (Store, Instant) {
        let now = Instant::now();
        let epoch = Epoch {
            instant: now,
            wall: Timestamp::from_second(1_700_000_000).unwrap(),
        };
        (Store::new(DELAY, epoch, 42), now)
    }

    fn namespace(name: &str) -> Namespace {
        Namespace::new(ObjectMeta {
            name: Some(name.into()),
            ..ObjectMeta::default()
        })
    }

    fn pod(name: &str, labels: &[(&str, &str)]) -> Pod {
        Pod::new(
            ObjectMeta {
                name: Some(name.into()),
                labels: Some(
                    labels
                        .iter()
                        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                        .collect(),
                ),
                ..ObjectMeta::default()
            },
            PodSpec {
                containers: vec![Container {
                    name: "app".into(),
                    image: Some("nginx:1.27".into()),
                    ..Container::default()
                }],
                ..PodSpec::default()
            },
        )
    }

    fn rv(meta: &ObjectMeta) -> u64 {
        meta.resource_version.as_deref().unwrap().parse().unwrap()
    }

    fn phase(pod: &Pod) -> &str {
        pod.status.as_ref().unwrap().phase.as_deref().unwrap()
    }

    #[test]
    fn a_created_pod_gets_uid_namespace_timestamp_resource_version_and_pending_phase() {
        let (mut s, t0) = store();
        s.create_namespace("a", namespace("ns"), t0).unwrap();
        let created = s.create_pod("a", "ns", pod("web", &[]), t0).unwrap();
        let meta = &created.metadata;
        assert_eq!(meta.namespace.as_deref(), Some("ns"));
        assert_eq!(meta.uid.as_ref().unwrap().len(), 36);
        assert_eq!(meta.resource_version.as_deref(), Some("2"));
        assert_eq!(
            meta.creation_timestamp.as_ref().unwrap().0.as_second(),
            1_700_000_000
        );
        assert_eq!(phase(&created), "Pending");
        assert_eq!(s.get_pod("a", "ns", "web", t0).unwrap(), created);
    }

    #[test]
    fn a_pod_turns_running_after_the_delay_with_a_new_resource_version() {
        let (mut s, t0) = store();
        s.create_namespace("a", namespace("ns"), t0).unwrap();
        let created = s.create_pod("a", "ns", pod("web", &[]), t0).unwrap();

        let early = s.get_pod("a", "ns", "web", t0 + DELAY / 2).unwrap();
        assert_eq!(early, created, "nothing changes before the delay");

        let running = s.get_pod("a", "ns", "web", t0 + DELAY).unwrap();
        assert_eq!(phase(&running), "Running");
        assert_eq!(rv(&running.metadata), rv(&created.metadata) + 1);
        let status = running.status.as_ref().unwrap();
        assert_eq!(status.pod_ip.as_deref(), Some("172.31.0.1"));
        let started = status.start_time.as_ref().unwrap().0;
        assert_eq!(started.as_millisecond(), 1_700_000_000_500);
        let types: Vec<_> = status
            .conditions
            .iter()
            .flatten()
            .map(|c| (c.type_.as_str(), c.status.as_str()))
            .collect();
        assert_eq!(
            types,
            [
                ("PodScheduled", "True"),
                ("Initialized", "True"),
                ("ContainersReady", "True"),
                ("Ready", "True")
            ]
        );
        let container = &status.container_statuses.as_ref().unwrap()[0];
        let uid = running.metadata.uid.as_deref().unwrap();
        assert_eq!(
            container.container_id.as_deref(),
            Some(format!("cci://{uid}/app").as_str())
        );
        assert!(container.ready);
        assert_eq!(container.started, Some(true));

        let again = s.get_pod("a", "ns", "web", t0 + DELAY * 10).unwrap();
        assert_eq!(again, running, "reading again changes nothing");
    }

    #[test]
    fn transitions_are_numbered_before_a_later_write_and_in_the_order_they_fell_due() {
        let (mut s, t0) = store();
        s.create_namespace("a", namespace("ns"), t0).unwrap();
        s.create_pod("a", "ns", pod("first", &[]), t0).unwrap();
        s.create_pod("a", "ns", pod("second", &[]), t0 + DELAY / 10)
            .unwrap();
        // Falls between the two transitions, and no read happened since the first fell due.
        let other = s
            .create_namespace("a", namespace("other"), t0 + DELAY + DELAY / 20)
            .unwrap();
        let later = t0 + DELAY * 2;
        let first = s.get_pod("a", "ns", "first", later).unwrap();
        let second = s.get_pod("a", "ns", "second", later).unwrap();
        assert_eq!(phase(&first), "Running");
        assert_eq!(phase(&second), "Running");
        assert!(rv(&first.metadata) < rv(&other.metadata));
        assert!(rv(&other.metadata) < rv(&second.metadata));
    }

    #[test]
    fn running_pods_get_distinct_ips_and_released_ips_are_not_reused_at_once() {
        let (mut s, t0) = store();
        s.create_namespace("a", namespace("ns"), t0).unwrap();
        for name in ["p1", "p2", "p3"] {
            s.create_pod("a", "ns", pod(name, &[]), t0).unwrap();
        }
        let later = t0 + DELAY;
        let ips: BTreeSet<_> = s
            .list_pods("a", "ns", &LabelSelector::default(), later)
            .unwrap()
            .items
            .into_iter()
            .map(|p| p.status.unwrap().pod_ip.unwrap())
            .collect();
        assert_eq!(ips.len(), 3);
        s.delete_pod("a", "ns", "p1", later).unwrap();
        s.create_pod("a", "ns", pod("p4", &[]), later).unwrap();
        let p4 = s.get_pod("a", "ns", "p4", later + DELAY).unwrap();
        assert!(!ips.contains(p4.status.unwrap().pod_ip.as_ref().unwrap()));
    }

    #[test]
    fn another_tenant_is_forbidden_and_a_missing_namespace_is_not_found() {
        let (mut s, t0) = store();
        s.create_namespace("a", namespace("ns"), t0).unwrap();
        assert!(matches!(
            s.get_namespace("b", "ns", t0),
            Err(Error::Forbidden { .. })
        ));
        assert!(matches!(
            s.create_pod("b", "ns", pod("web", &[]), t0),
            Err(Error::Forbidden { .. })
        ));
        assert!(matches!(
            s.create_pod("a", "nope", pod("web", &[]), t0),
            Err(Error::NamespaceNotFound { .. })
        ));
        assert!(
            s.list_namespaces("b", &LabelSelector::default(), t0)
                .items
                .is_empty()
        );
    }

    #[test]
    fn duplicate_names_conflict() {
        let (mut s, t0) = store();
        s.create_namespace("a", namespace("ns"), t0).unwrap();
        assert!(matches!(
            s.create_namespace("b", namespace("ns"), t0),
            Err(Error::NamespaceExists { .. })
        ));
        s.create_pod("a", "ns", pod("web", &[]), t0).unwrap();
        assert!(matches!(
            s.create_pod("a", "ns", pod("web", &[]), t0),
            Err(Error::PodExists { .. })
        ));
    }

    #[test]
    fn list_selects_by_label_and_carries_the_current_resource_version() {
        let (mut s, t0) = store();
        s.create_namespace("a", namespace("ns"), t0).unwrap();
        s.create_pod("a", "ns", pod("web", &[("app", "web")]), t0)
            .unwrap();
        s.create_pod("a", "ns", pod("db", &[("app", "db")]), t0)
            .unwrap();
        let list = s
            .list_pods("a", "ns", &"app=web".parse().unwrap(), t0)
            .unwrap();
        assert_eq!(list.kind, "PodList");
        assert_eq!(list.metadata.resource_version.as_deref(), Some("3"));
        let names: Vec<_> = list
            .items
            .iter()
            .map(|p| p.metadata.name.as_deref().unwrap())
            .collect();
        assert_eq!(names, ["web"]);
        let list = s
            .list_pods("a", "ns", &LabelSelector::default(), t0 + DELAY)
            .unwrap();
        assert_eq!(list.metadata.resource_version.as_deref(), Some("5"));
    }

    #[test]
    fn deleting_a_pod_returns_it_with_a_new_resource_version_and_forgets_it() {
        let (mut s, t0) = store();
        s.create_namespace("a", namespace("ns"), t0).unwrap();
        let created = s.create_pod("a", "ns", pod("web", &[]), t0).unwrap();
        let deleted = s.delete_pod("a", "ns", "web", t0).unwrap();
        assert_eq!(deleted.metadata.uid, created.metadata.uid);
        assert!(rv(&deleted.metadata) > rv(&created.metadata));
        assert!(matches!(
            s.get_pod("a", "ns", "web", t0),
            Err(Error::PodNotFound { .. })
        ));
        assert!(matches!(
            s.delete_pod("a", "ns", "web", t0),
            Err(Error::PodNotFound { .. })
        ));
    }

    #[test]
    fn deleting_a_namespace_deletes_its_pods() {
        let (mut s, t0) = store();
        s.create_namespace("a", namespace("ns"), t0).unwrap();
        s.create_pod("a", "ns", pod("web", &[]), t0).unwrap();
        assert_eq!(s.namespace_records(t0)[0].pod_count, 1);
        s.delete_namespace("a", "ns", t0).unwrap();
        assert!(s.pod_records(t0).is_empty());
        assert!(s.namespace_records(t0).is_empty());
        s.create_namespace("a", namespace("ns"), t0).unwrap();
        assert!(matches!(
            s.get_pod("a", "ns", "web", t0),
            Err(Error::PodNotFound { .. })
        ));
    }

    #[test]
    fn an_invalid_pod_is_refused_before_it_is_stored() {
        let (mut s, t0) = store();
        s.create_namespace("a", namespace("ns"), t0).unwrap();
        let mut bad = pod("web", &[]);
        bad.spec.containers.clear();
        let err = s.create_pod("a", "ns", bad, t0).unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"pod "web" is invalid: spec.containers: at least one container is required"#
        );
        assert!(s.pod_records(t0).is_empty());
    }

    #[test]
    fn uids_are_distinct_and_shaped_like_uuid_v4() {
        let mut counters = Counters {
            resource_version: 0,
            seq: 0,
            uid_seed: 7,
        };
        let uids: BTreeSet<_> = (0..1000).map(|_| counters.next_uid()).collect();
        assert_eq!(uids.len(), 1000);
        for uid in &uids {
            assert_eq!(uid.as_bytes()[14], b'4', "{uid}");
            assert!(
                matches!(uid.as_bytes()[19], b'8' | b'9' | b'a' | b'b'),
                "{uid}"
            );
        }
    }
}
