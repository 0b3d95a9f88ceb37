//! ConfigMaps, Secrets and PersistentVolumeClaims: plain stored objects with create, get,
//! list, update (optimistic concurrency on `resourceVersion`) and delete.

use std::collections::BTreeMap;

use cci_api::{
    ConfigMap, List, NETWORK_STATUS_READY, Network, NetworkStatus, NetworkSubnetAttr,
    PersistentVolumeClaim, ProxyRegistration, Secret, Service,
};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::PersistentVolumeClaimStatus;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::time::Instant;

use super::{Store, owned, owned_mut};
use crate::MockConfig;
use crate::error::{Error, Result};
use crate::faults::Resource;
use crate::quantity::Quantity;
use crate::selector::LabelSelector;
use crate::validate::{self, FieldError, Write};

/// The plain objects of one namespace.
#[derive(Clone, Debug, Default)]
pub struct Objects {
    pub(crate) config_maps: BTreeMap<String, ConfigMap>,
    pub(crate) secrets: BTreeMap<String, Secret>,
    pub(crate) claims: BTreeMap<String, PersistentVolumeClaim>,
    pub(crate) networks: BTreeMap<String, Network>,
    pub(crate) services: BTreeMap<String, Service>,
    pub(crate) proxies: BTreeMap<String, ProxyRegistration>,
}

/// A kind of plain object the store keeps per namespace.
pub trait StoredObject: Clone + Serialize + DeserializeOwned + Send + 'static {
    /// The kind, as in `kind:` (`ConfigMap`).
    const KIND: &'static str;
    /// The kind of its list (`ConfigMapList`).
    const LIST_KIND: &'static str;
    /// The resource, for fault matching.
    const RESOURCE: Resource;

    /// Its metadata.
    fn metadata(&self) -> &ObjectMeta;
    /// Its metadata, mutably.
    fn metadata_mut(&mut self) -> &mut ObjectMeta;
    #[doc(hidden)]
    fn map(objects: &Objects) -> &BTreeMap<String, Self>;
    #[doc(hidden)]
    fn map_mut(objects: &mut Objects) -> &mut BTreeMap<String, Self>;
    /// Normalises the object as the service does on write (e.g. merges a Secret's
    /// `stringData`) and answers every rule it breaks.
    fn admit(&mut self, namespace: &str, write: Write, config: &MockConfig) -> Vec<FieldError>;
    /// The rules replacing `old` with `self` breaks (immutable fields).
    fn check_update(&self, old: &Self) -> Vec<FieldError>;
    /// Fills what the service sets on a stored object (status, addresses), given the one it
    /// replaces; `seq` is a number unique to this write.
    fn complete(&mut self, _old: Option<&Self>, _seq: u64) {}
    /// Whether a new object turns Ready later, by itself ([`Store::network_ready`]).
    const BECOMES_READY: bool = false;
}

fn immutable_data(immutable: Option<bool>, same_data: bool, was: Option<bool>) -> Vec<FieldError> {
    let mut errors = Vec::new();
    if was == Some(true) {
        if !same_data {
            errors.push(FieldError::forbidden(
                "data",
                "field is immutable when `immutable` is set: create a new object with another name",
            ));
        }
        if immutable != Some(true) {
            errors.push(FieldError::forbidden(
                "immutable",
                "field is immutable when `immutable` is set",
            ));
        }
    }
    errors
}

impl StoredObject for ConfigMap {
    const KIND: &'static str = "ConfigMap";
    const LIST_KIND: &'static str = "ConfigMapList";
    const RESOURCE: Resource = Resource::ConfigMaps;

    fn metadata(&self) -> &ObjectMeta {
        &self.metadata
    }

    fn metadata_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }

    fn map(objects: &Objects) -> &BTreeMap<String, Self> {
        &objects.config_maps
    }

    fn map_mut(objects: &mut Objects) -> &mut BTreeMap<String, Self> {
        &mut objects.config_maps
    }

    fn admit(&mut self, namespace: &str, write: Write, _config: &MockConfig) -> Vec<FieldError> {
        validate::validate_config_map(self, namespace, write)
    }

    fn check_update(&self, old: &Self) -> Vec<FieldError> {
        let same = self.data == old.data && self.binary_data == old.binary_data;
        immutable_data(self.immutable, same, old.immutable)
    }
}

impl StoredObject for Secret {
    const KIND: &'static str = "Secret";
    const LIST_KIND: &'static str = "SecretList";
    const RESOURCE: Resource = Resource::Secrets;

    fn metadata(&self) -> &ObjectMeta {
        &self.metadata
    }

    fn metadata_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }

    fn map(objects: &Objects) -> &BTreeMap<String, Self> {
        &objects.secrets
    }

    fn map_mut(objects: &mut Objects) -> &mut BTreeMap<String, Self> {
        &mut objects.secrets
    }

    fn admit(&mut self, namespace: &str, write: Write, _config: &MockConfig) -> Vec<FieldError> {
        // NB: as Kubernetes, stringData is write-only: merged into data (winning), then dropped.
        if let Some(strings) = self.string_data.take() {
            let data = self.data.get_or_insert_with(BTreeMap::new);
            for (key, value) in strings {
                data.insert(key, ByteString(value.into_bytes()));
            }
        }
        if self.type_.as_deref().is_none_or(str::is_empty) {
            self.type_ = Some("Opaque".into());
        }
        validate::validate_secret(self, namespace, write)
    }

    fn check_update(&self, old: &Self) -> Vec<FieldError> {
        let mut errors = immutable_data(self.immutable, self.data == old.data, old.immutable);
        if self.type_ != old.type_ {
            errors.push(FieldError::forbidden("type", "field is immutable"));
        }
        errors
    }
}

impl StoredObject for PersistentVolumeClaim {
    const KIND: &'static str = "PersistentVolumeClaim";
    const LIST_KIND: &'static str = "PersistentVolumeClaimList";
    const RESOURCE: Resource = Resource::PersistentVolumeClaims;

    fn metadata(&self) -> &ObjectMeta {
        &self.metadata
    }

    fn metadata_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }

    fn map(objects: &Objects) -> &BTreeMap<String, Self> {
        &objects.claims
    }

    fn map_mut(objects: &mut Objects) -> &mut BTreeMap<String, Self> {
        &mut objects.claims
    }

    fn admit(&mut self, namespace: &str, write: Write, config: &MockConfig) -> Vec<FieldError> {
        validate::validate_claim(self, namespace, write, &config.sfs_storage_classes)
    }

    fn check_update(&self, old: &Self) -> Vec<FieldError> {
        let storage = |claim: &Self| {
            claim
                .spec
                .resources
                .as_ref()
                .and_then(|r| r.requests.as_ref())
                .and_then(|r| r.get("storage"))
                .and_then(|q| q.0.parse::<Quantity>().ok())
        };
        let mut errors = Vec::new();
        let (mut new_spec, mut old_spec) = (self.spec.clone(), old.spec.clone());
        new_spec.resources = None;
        old_spec.resources = None;
        if new_spec != old_spec {
            errors.push(FieldError::forbidden(
                "spec",
                "spec is immutable after creation except resources.requests.storage (to grow the claim)",
            ));
        }
        if let (Some(new), Some(old)) = (storage(self), storage(old))
            && new < old
        {
            errors.push(FieldError::forbidden(
                "spec.resources.requests.storage",
                "field can not be less than its previous value: claims only grow",
            ));
        }
        errors
    }

    fn complete(&mut self, _old: Option<&Self>, _seq: u64) {
        // NB: SFS volumes are provisioned at once in the mock: the claim is Bound.
        let capacity = self
            .spec
            .resources
            .as_ref()
            .and_then(|r| r.requests.clone());
        self.status = Some(PersistentVolumeClaimStatus {
            phase: Some("Bound".into()),
            access_modes: self.spec.access_modes.clone(),
            capacity,
            ..PersistentVolumeClaimStatus::default()
        });
    }
}

impl StoredObject for Network {
    const KIND: &'static str = "Network";
    const LIST_KIND: &'static str = "NetworkList";
    const RESOURCE: Resource = Resource::Networks;

    fn metadata(&self) -> &ObjectMeta {
        &self.metadata
    }

    fn metadata_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }

    fn map(objects: &Objects) -> &BTreeMap<String, Self> {
        &objects.networks
    }

    fn map_mut(objects: &mut Objects) -> &mut BTreeMap<String, Self> {
        &mut objects.networks
    }

    fn admit(&mut self, namespace: &str, write: Write, _config: &MockConfig) -> Vec<FieldError> {
        validate::validate_network(self, namespace, write)
    }

    fn check_update(&self, old: &Self) -> Vec<FieldError> {
        if self.spec.subnets != old.spec.subnets {
            vec![FieldError::forbidden(
                "spec.subnets",
                "field is immutable: create another network",
            )]
        } else {
            Vec::new()
        }
    }

    const BECOMES_READY: bool = true;

    fn complete(&mut self, old: Option<&Self>, _seq: u64) {
        // NB: the service owns the status: a new network has none until it turns Ready
        // (`Store::network_ready`, after `network_ready_after`); an update keeps the old one.
        self.status = old.and_then(|o| o.status.clone());
    }
}

impl StoredObject for Service {
    const KIND: &'static str = "Service";
    const LIST_KIND: &'static str = "ServiceList";
    const RESOURCE: Resource = Resource::Services;

    fn metadata(&self) -> &ObjectMeta {
        &self.metadata
    }

    fn metadata_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }

    fn map(objects: &Objects) -> &BTreeMap<String, Self> {
        &objects.services
    }

    fn map_mut(objects: &mut Objects) -> &mut BTreeMap<String, Self> {
        &mut objects.services
    }

    fn admit(&mut self, namespace: &str, write: Write, _config: &MockConfig) -> Vec<FieldError> {
        validate::validate_service(self, namespace, write)
    }

    fn check_update(&self, old: &Self) -> Vec<FieldError> {
        let sent = self.spec.cluster_ip.as_deref().unwrap_or_default();
        if !sent.is_empty() && self.spec.cluster_ip != old.spec.cluster_ip {
            vec![FieldError::invalid("spec.clusterIP", "field is immutable")]
        } else {
            Vec::new()
        }
    }

    fn complete(&mut self, old: Option<&Self>, seq: u64) {
        // NB: a cluster IP from 10.247.0.0/16, kept across updates; "None" stays headless.
        let ip = match (
            old.and_then(|o| o.spec.cluster_ip.clone()),
            self.spec.cluster_ip.as_deref(),
        ) {
            (Some(kept), _) => kept,
            (None, Some(sent)) if !sent.is_empty() => sent.to_owned(),
            (None, _) => {
                let index = seq % (256 * 254);
                format!("10.247.{}.{}", index / 254, index % 254 + 1)
            }
        };
        self.spec.cluster_ips = Some(vec![ip.clone()]);
        self.spec.cluster_ip = Some(ip);
        self.spec.type_.get_or_insert_with(|| "ClusterIP".into());
    }
}

impl StoredObject for ProxyRegistration {
    const KIND: &'static str = "ProxyRegistration";
    const LIST_KIND: &'static str = "ProxyRegistrationList";
    const RESOURCE: Resource = Resource::ProxyRegistrations;

    fn metadata(&self) -> &ObjectMeta {
        &self.metadata
    }

    fn metadata_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }

    fn map(objects: &Objects) -> &BTreeMap<String, Self> {
        &objects.proxies
    }

    fn map_mut(objects: &mut Objects) -> &mut BTreeMap<String, Self> {
        &mut objects.proxies
    }

    fn admit(&mut self, namespace: &str, write: Write, _config: &MockConfig) -> Vec<FieldError> {
        validate::validate_proxy_registration(self, namespace, write)
    }

    fn check_update(&self, _old: &Self) -> Vec<FieldError> {
        Vec::new()
    }
}

/// The status of a Network that has turned Ready at `at`: the published example's conditions
/// and one subnet attribute per subnet it names.
pub(super) fn ready_status(network: &Network, at: Time) -> NetworkStatus {
    let condition = |type_: &str| Condition {
        type_: type_.into(),
        status: "True".into(),
        last_transition_time: at.clone(),
        message: String::new(),
        reason: String::new(),
        observed_generation: None,
    };
    NetworkStatus {
        status: Some(NETWORK_STATUS_READY.into()),
        conditions: Some(vec![
            condition("NetworkSynced"),
            condition("NetworkExternalDependenciesSynced"),
        ]),
        subnet_attrs: Some(
            network
                .subnet_ids()
                .into_iter()
                .map(|id| NetworkSubnetAttr {
                    network_id: Some(format!("net-{id}")),
                    subnet_v4_id: Some(id.to_owned()),
                    subnet_v6_id: None,
                })
                .collect(),
        ),
    }
}

fn object_not_found<T: StoredObject>(ns: &str, name: &str) -> Error {
    Error::NotFound {
        kind: T::KIND,
        namespace: ns.to_owned(),
        name: name.to_owned(),
    }
}

impl Store {
    /// Creates an object in namespace `ns` of `tenant`.
    pub fn create_object<T: StoredObject>(
        &mut self,
        tenant: &str,
        ns: &str,
        mut object: T,
        now: Instant,
    ) -> Result<T> {
        self.settle(now);
        let entry = owned(&self.namespaces, tenant, ns)?;
        let name = object.metadata().name.clone().unwrap_or_default();
        entry.check_not_terminating(T::KIND, &name)?;
        let causes = object.admit(ns, Write::Create, &self.config);
        if !causes.is_empty() {
            return Err(Error::Invalid {
                kind: T::KIND,
                name,
                causes,
            });
        }
        if T::map(&entry.objects).contains_key(&name) {
            return Err(Error::AlreadyExists {
                kind: T::KIND,
                namespace: ns.to_owned(),
                name,
            });
        }
        let uid = self.counters.next_uid();
        let rv = self.counters.next_resource_version();
        let created = self.wall(now);
        let meta = object.metadata_mut();
        meta.uid = Some(uid);
        meta.namespace = Some(ns.to_owned());
        meta.creation_timestamp = Some(created);
        meta.resource_version = Some(rv);
        let seq = self.counters.next_seq();
        object.complete(None, seq);
        let entry = owned_mut(&mut self.namespaces, tenant, ns)?;
        T::map_mut(&mut entry.objects).insert(name.clone(), object.clone());
        if T::BECOMES_READY {
            let uid = object.metadata().uid.clone().unwrap_or_default();
            let due = super::pods::later(now, self.config.network_ready_after);
            self.network_readiness
                .insert((due, ns.to_owned(), name.clone(), uid));
            if due <= now {
                // Ready at once: answer it as it is stored.
                self.settle(now);
                if let Some(ready) =
                    T::map(&owned(&self.namespaces, tenant, ns)?.objects).get(&name)
                {
                    return Ok(ready.clone());
                }
            }
        }
        Ok(object)
    }

    /// One object of namespace `ns` of `tenant`.
    pub fn get_object<T: StoredObject>(
        &mut self,
        tenant: &str,
        ns: &str,
        name: &str,
        now: Instant,
    ) -> Result<T> {
        self.settle(now);
        T::map(&owned(&self.namespaces, tenant, ns)?.objects)
            .get(name)
            .cloned()
            .ok_or_else(|| object_not_found::<T>(ns, name))
    }

    /// The objects of namespace `ns` of `tenant` that `selector` selects, by name.
    pub fn list_objects<T: StoredObject>(
        &mut self,
        tenant: &str,
        ns: &str,
        selector: &LabelSelector,
        now: Instant,
    ) -> Result<List<T>> {
        self.settle(now);
        let items = T::map(&owned(&self.namespaces, tenant, ns)?.objects)
            .values()
            .filter(|o| selector.matches(o.metadata().labels.as_ref()))
            .cloned()
            .collect();
        Ok(self.list(T::LIST_KIND, items))
    }

    /// Replaces object `name` of namespace `ns` of `tenant`. When the object sent carries a
    /// `resourceVersion`, it must be the stored one, or the update is refused with a conflict.
    pub fn update_object<T: StoredObject>(
        &mut self,
        tenant: &str,
        ns: &str,
        name: &str,
        mut object: T,
        now: Instant,
    ) -> Result<T> {
        self.settle(now);
        let entry = owned(&self.namespaces, tenant, ns)?;
        let mut causes = object.admit(ns, Write::Update, &self.config);
        if let Some(sent) = object.metadata().name.as_deref()
            && !sent.is_empty()
            && sent != name
        {
            causes.push(FieldError::invalid(
                "metadata.name",
                format!("{sent:?} does not match the name {name:?} of the request path"),
            ));
        }
        let old = T::map(&entry.objects)
            .get(name)
            .ok_or_else(|| object_not_found::<T>(ns, name))?;
        let current = old.metadata().resource_version.clone().unwrap_or_default();
        if let Some(sent) = object.metadata().resource_version.as_deref()
            && !sent.is_empty()
            && sent != current
        {
            return Err(Error::Conflict {
                kind: T::KIND,
                name: name.to_owned(),
                sent: sent.to_owned(),
                current,
            });
        }
        causes.extend(object.check_update(old));
        if !causes.is_empty() {
            return Err(Error::Invalid {
                kind: T::KIND,
                name: name.to_owned(),
                causes,
            });
        }
        let old_meta = old.metadata().clone();
        let seq = self.counters.next_seq();
        object.complete(Some(old), seq);
        let rv = self.counters.next_resource_version();
        let meta = object.metadata_mut();
        meta.name = Some(name.to_owned());
        meta.uid = old_meta.uid;
        meta.namespace = Some(ns.to_owned());
        meta.creation_timestamp = old_meta.creation_timestamp;
        meta.resource_version = Some(rv);
        let entry = owned_mut(&mut self.namespaces, tenant, ns)?;
        T::map_mut(&mut entry.objects).insert(name.to_owned(), object.clone());
        Ok(object)
    }

    /// Deletes object `name` of namespace `ns` of `tenant`; answers it with the
    /// `resourceVersion` of its deletion.
    pub fn delete_object<T: StoredObject>(
        &mut self,
        tenant: &str,
        ns: &str,
        name: &str,
        now: Instant,
    ) -> Result<T> {
        self.settle(now);
        let entry = owned_mut(&mut self.namespaces, tenant, ns)?;
        let mut object = T::map_mut(&mut entry.objects)
            .remove(name)
            .ok_or_else(|| object_not_found::<T>(ns, name))?;
        object.metadata_mut().resource_version = Some(self.counters.next_resource_version());
        Ok(object)
    }
}
