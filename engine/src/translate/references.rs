//! The cluster objects (ConfigMaps, Secrets, PersistentVolumeClaims) a pod's CCI copy refers to,
//! each with whether every use of it is optional: the provider mirrors each one before it
//! creates the pod, and makes the pod wait for a missing one unless it is optional everywhere.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Pod;

use super::{is_kube_api_access, mirror_name};

/// The kind of a cluster object a pod needs mirrored to CCI.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ObjectKind {
    /// A ConfigMap.
    ConfigMap,
    /// A Secret.
    Secret,
    /// A PersistentVolumeClaim.
    PersistentVolumeClaim,
}

impl ObjectKind {
    /// The kind's name in messages: `configmap`, `secret`, `persistentvolumeclaim`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ConfigMap => "configmap",
            Self::Secret => "secret",
            Self::PersistentVolumeClaim => "persistentvolumeclaim",
        }
    }

    /// The resource's plural in CCI API paths: `configmaps`, `secrets`,
    /// `persistentvolumeclaims`.
    pub fn plural(self) -> &'static str {
        match self {
            Self::ConfigMap => "configmaps",
            Self::Secret => "secrets",
            Self::PersistentVolumeClaim => "persistentvolumeclaims",
        }
    }
}

impl std::fmt::Display for ObjectKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One cluster object: kind, namespace and name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectKey {
    /// What it is.
    pub kind: ObjectKind,
    /// Its cluster namespace (the pod's).
    pub namespace: String,
    /// Its cluster name.
    pub name: String,
}

impl ObjectKey {
    /// The key of `kind` `namespace/name`.
    pub fn new(kind: ObjectKind, namespace: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            kind,
            namespace: namespace.into(),
            name: name.into(),
        }
    }

    /// The CCI name of its mirror.
    pub fn mirror_name(&self) -> String {
        mirror_name(&self.namespace, &self.name)
    }
}

impl ObjectKind {
    /// The kind as the Kubernetes API names it (`ConfigMap`, `Secret`,
    /// `PersistentVolumeClaim`).
    pub fn api_kind(self) -> &'static str {
        match self {
            ObjectKind::ConfigMap => "ConfigMap",
            ObjectKind::Secret => "Secret",
            ObjectKind::PersistentVolumeClaim => "PersistentVolumeClaim",
        }
    }
}

impl std::fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}/{}", self.kind, self.namespace, self.name)
    }
}

/// The cluster objects a pod's CCI copy refers to, each with whether every reference to it is
/// `optional` (a pod waits for a missing object unless it is optional everywhere).
pub type References = BTreeMap<ObjectKey, bool>;

/// Every ConfigMap, Secret and PersistentVolumeClaim the CCI copy of `pod` refers to: volumes,
/// projected sources, `env` and `envFrom` of every app and init container, and `token_secret`
/// (the service account's token Secret, [`choose_token_secret`]) when a projected
/// `serviceAccountToken` source stands for it. The `kube-api-access-*` volume is not counted
/// (it is dropped).
///
/// [`choose_token_secret`]: super::choose_token_secret
pub fn references(pod: &Pod, token_secret: Option<&str>) -> References {
    let namespace = pod.metadata.namespace.as_deref().unwrap_or_default();
    let mut refs = References::new();
    let Some(spec) = pod.spec.as_ref() else {
        return refs;
    };
    let mut add = |kind: ObjectKind, name: &str, optional: Option<bool>| {
        if name.is_empty() {
            return;
        }
        let optional = optional == Some(true);
        refs.entry(ObjectKey::new(kind, namespace, name))
            .and_modify(|o| *o &= optional)
            .or_insert(optional);
    };
    for v in spec.volumes.iter().flatten() {
        if is_kube_api_access(v) {
            continue;
        }
        if let Some(s) = &v.config_map {
            add(ObjectKind::ConfigMap, &s.name, s.optional);
        }
        if let Some(s) = &v.secret {
            add(
                ObjectKind::Secret,
                s.secret_name.as_deref().unwrap_or_default(),
                s.optional,
            );
        }
        if let Some(s) = &v.persistent_volume_claim {
            add(ObjectKind::PersistentVolumeClaim, &s.claim_name, None);
        }
        for p in v.projected.iter().flat_map(|p| p.sources.iter().flatten()) {
            if let Some(s) = &p.config_map {
                add(ObjectKind::ConfigMap, &s.name, s.optional);
            }
            if let Some(s) = &p.secret {
                add(ObjectKind::Secret, &s.name, s.optional);
            }
            if p.service_account_token.is_some()
                && let Some(token_secret) = token_secret
            {
                add(ObjectKind::Secret, token_secret, None);
            }
        }
    }
    let containers = spec
        .init_containers
        .iter()
        .flatten()
        .chain(&spec.containers);
    for c in containers {
        for source in c.env.iter().flatten().filter_map(|e| e.value_from.as_ref()) {
            if let Some(r) = &source.config_map_key_ref {
                add(ObjectKind::ConfigMap, &r.name, r.optional);
            }
            if let Some(r) = &source.secret_key_ref {
                add(ObjectKind::Secret, &r.name, r.optional);
            }
        }
        for from in c.env_from.iter().flatten() {
            if let Some(r) = &from.config_map_ref {
                add(ObjectKind::ConfigMap, &r.name, r.optional);
            }
            if let Some(r) = &from.secret_ref {
                add(ObjectKind::Secret, &r.name, r.optional);
            }
        }
    }
    refs
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::translate::fixtures::{env_from_ref, pod_with, volume};
    use k8s_openapi::api::core::v1::{
        ConfigMapVolumeSource, EnvFromSource, PersistentVolumeClaimVolumeSource,
        ProjectedVolumeSource, SecretEnvSource, ServiceAccountTokenProjection, VolumeProjection,
    };

    #[test]
    fn references_name_every_object_once_and_are_optional_only_when_every_use_is() {
        let mut pod = pod_with(
            vec![
                volume("conf", |v| {
                    v.config_map = Some(ConfigMapVolumeSource {
                        name: "app-config".into(),
                        optional: Some(true),
                        ..ConfigMapVolumeSource::default()
                    })
                }),
                volume("data", |v| {
                    v.persistent_volume_claim = Some(PersistentVolumeClaimVolumeSource {
                        claim_name: "shared".into(),
                        read_only: None,
                    })
                }),
                volume("token", |v| {
                    v.projected = Some(ProjectedVolumeSource {
                        default_mode: None,
                        sources: Some(vec![VolumeProjection {
                            service_account_token: Some(ServiceAccountTokenProjection {
                                path: "token".into(),
                                ..ServiceAccountTokenProjection::default()
                            }),
                            ..VolumeProjection::default()
                        }]),
                    })
                }),
            ],
            vec![],
        );
        let spec = pod.spec.as_mut().unwrap();
        spec.service_account_name = Some("builder".into());
        // The ConfigMap is optional in the volume but required by this variable.
        let mut required = env_from_ref("MODE", true);
        required
            .value_from
            .as_mut()
            .unwrap()
            .config_map_key_ref
            .as_mut()
            .unwrap()
            .optional = None;
        spec.containers[0].env = Some(vec![required, env_from_ref("PW", false)]);
        spec.containers[0].env_from = Some(vec![EnvFromSource {
            secret_ref: Some(SecretEnvSource {
                name: "extra".into(),
                optional: Some(true),
            }),
            ..EnvFromSource::default()
        }]);
        let refs: Vec<(String, bool)> = references(&pod, Some("builder-long-lived"))
            .into_iter()
            .map(|(k, optional)| (k.to_string(), optional))
            .collect();
        assert_eq!(
            refs,
            [
                ("configmap shop/app-config", false),
                ("secret shop/builder-long-lived", false),
                ("secret shop/db", false),
                ("secret shop/extra", true),
                ("persistentvolumeclaim shop/shared", false),
            ]
            .map(|(k, o)| (k.to_string(), o))
        );
    }
}
