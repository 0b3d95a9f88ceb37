//! The CCI copies of the ConfigMaps, Secrets and PersistentVolumeClaims a pod uses: what each copy
//! keeps of its cluster object, and the labels and annotations naming that object and the
//! `resourceVersion` copied.

use std::collections::BTreeMap;

use cci_api::LABEL_CLUSTER_ID;
use k8s_openapi::api::core::v1::{
    ConfigMap, PersistentVolumeClaim, PersistentVolumeClaimSpec, Secret,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::{SERVICE_ACCOUNT_TOKEN_TYPE, mirror_name};
use crate::breakage::{self, Breakage};

/// Label on every mirrored CCI object: `{namespace}.{name}` of the cluster object (left out
/// when longer than a label value may be; the annotation of the same key always has it).
pub const LABEL_CLUSTER_OBJECT: &str = "bursting.cci.io/cluster-object";
/// Annotation on every mirrored CCI object: `{namespace}/{name}` of the cluster object.
pub const ANNOTATION_CLUSTER_OBJECT: &str = "bursting.cci.io/cluster-object";
/// Annotation on every mirrored CCI object: the cluster object's `resourceVersion` it copies.
pub const ANNOTATION_CLUSTER_RESOURCE_VERSION: &str = "bursting.cci.io/cluster-resource-version";

/// Labels and annotations of the CCI mirror of cluster object `namespace/name`.
fn mirror_meta(
    cluster_id: &str,
    namespace: &str,
    name: &str,
    resource_version: Option<&str>,
) -> ObjectMeta {
    let mut labels = BTreeMap::from([(LABEL_CLUSTER_ID.to_string(), cluster_id.to_string())]);
    let dotted = mirror_name(namespace, name);
    // NB: a label value holds at most 63 characters; the annotation always names the object.
    if dotted.len() <= 63 {
        labels.insert(LABEL_CLUSTER_OBJECT.to_string(), dotted.clone());
    }
    let mut annotations = BTreeMap::from([(
        ANNOTATION_CLUSTER_OBJECT.to_string(),
        format!("{namespace}/{name}"),
    )]);
    if let Some(rv) = resource_version {
        annotations.insert(
            ANNOTATION_CLUSTER_RESOURCE_VERSION.to_string(),
            rv.to_string(),
        );
    }
    ObjectMeta {
        name: Some(dotted),
        namespace: Some(cci_api::namespace_for_cluster(cluster_id)),
        labels: Some(labels),
        annotations: Some(annotations),
        ..ObjectMeta::default()
    }
}

fn namespace_and_name(meta: &ObjectMeta) -> (&str, &str) {
    (
        meta.namespace.as_deref().unwrap_or_default(),
        meta.name.as_deref().unwrap_or_default(),
    )
}

/// The CCI mirror of a cluster ConfigMap: data, binary data and immutability.
pub fn cci_config_map(cm: &ConfigMap, cluster_id: &str) -> cci_api::ConfigMap {
    let (namespace, name) = namespace_and_name(&cm.metadata);
    cci_api::ConfigMap {
        binary_data: cm.binary_data.clone(),
        immutable: cm.immutable,
        ..cci_api::ConfigMap::new(
            mirror_meta(
                cluster_id,
                namespace,
                name,
                cm.metadata.resource_version.as_deref(),
            ),
            cm.data.clone().unwrap_or_default(),
        )
    }
}

/// The CCI mirror of a cluster Secret: data and type. A service account token Secret becomes
/// `Opaque` (on CCI it is only the token's carrier); `stringData` is write-only and never read
/// back from the cluster.
pub fn cci_secret(secret: &Secret, cluster_id: &str) -> cci_api::Secret {
    let (namespace, name) = namespace_and_name(&secret.metadata);
    let type_ = match secret.type_.as_deref() {
        Some(SERVICE_ACCOUNT_TOKEN_TYPE) => Some("Opaque".to_string()),
        other => other.map(str::to_string),
    };
    cci_api::Secret {
        type_,
        immutable: secret.immutable,
        ..cci_api::Secret::new(
            mirror_meta(
                cluster_id,
                namespace,
                name,
                secret.metadata.resource_version.as_deref(),
            ),
            secret.data.clone().unwrap_or_default(),
        )
    }
}

/// The CCI mirror of a cluster claim: access modes, size, storage class and volume mode. The
/// binding to a cluster volume (`volumeName`, `selector`, `dataSource`) means nothing on CCI.
pub fn cci_claim(
    claim: &PersistentVolumeClaim,
    cluster_id: &str,
) -> cci_api::PersistentVolumeClaim {
    let (namespace, name) = namespace_and_name(&claim.metadata);
    let spec = claim.spec.clone().unwrap_or_default();
    cci_api::PersistentVolumeClaim::new(
        mirror_meta(
            cluster_id,
            namespace,
            name,
            claim.metadata.resource_version.as_deref(),
        ),
        PersistentVolumeClaimSpec {
            access_modes: spec.access_modes,
            resources: spec.resources,
            storage_class_name: if breakage::is(Breakage::ClaimClassNotMirrored) {
                None
            } else {
                spec.storage_class_name
            },
            volume_mode: spec.volume_mode,
            ..PersistentVolumeClaimSpec::default()
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::VolumeResourceRequirements;
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

    fn object_meta(name: &str) -> ObjectMeta {
        ObjectMeta {
            namespace: Some("shop".into()),
            name: Some(name.into()),
            resource_version: Some("42".into()),
            uid: Some("cluster-uid".into()),
            ..ObjectMeta::default()
        }
    }

    #[test]
    fn mirrored_objects_are_named_namespace_dot_name_and_labelled_for_the_cluster() {
        let cm = ConfigMap {
            metadata: object_meta("app-config"),
            data: Some(BTreeMap::from([("mode".into(), "fast".into())])),
            binary_data: Some(BTreeMap::from([(
                "logo.png".into(),
                k8s_openapi::ByteString(vec![0x89, b'P', b'N', b'G']),
            )])),
            immutable: Some(true),
        };
        let copy = cci_config_map(&cm, "c1");
        assert_eq!(copy.binary_data, cm.binary_data);
        assert_eq!(
            copy.immutable,
            Some(true),
            "an immutable ConfigMap stays so"
        );
        assert_eq!(copy.kind, "ConfigMap");
        assert_eq!(copy.metadata.name.as_deref(), Some("shop.app-config"));
        assert_eq!(copy.metadata.namespace.as_deref(), Some("bursting-c1"));
        assert_eq!(copy.metadata.uid, None);
        assert_eq!(copy.metadata.resource_version, None);
        let labels = copy.metadata.labels.unwrap();
        assert_eq!(labels[LABEL_CLUSTER_ID], "c1");
        assert_eq!(labels[LABEL_CLUSTER_OBJECT], "shop.app-config");
        let annotations = copy.metadata.annotations.unwrap();
        assert_eq!(annotations[ANNOTATION_CLUSTER_OBJECT], "shop/app-config");
        assert_eq!(annotations[ANNOTATION_CLUSTER_RESOURCE_VERSION], "42");
        assert_eq!(copy.data, cm.data);
    }

    #[test]
    fn a_name_too_long_for_a_label_value_is_only_in_the_annotation() {
        let cm = ConfigMap {
            metadata: object_meta(&"c".repeat(80)),
            ..ConfigMap::default()
        };
        let copy = cci_config_map(&cm, "c1");
        assert!(
            !copy
                .metadata
                .labels
                .unwrap()
                .contains_key(LABEL_CLUSTER_OBJECT)
        );
        assert!(copy.metadata.annotations.unwrap()[ANNOTATION_CLUSTER_OBJECT].ends_with("ccc"));
    }

    #[test]
    fn a_service_account_token_secret_is_mirrored_as_opaque_with_its_data() {
        let secret = Secret {
            metadata: object_meta("builder-token"),
            type_: Some("kubernetes.io/service-account-token".into()),
            data: Some(BTreeMap::from([(
                "token".into(),
                k8s_openapi::ByteString(b"t0k3n".to_vec()),
            )])),
            immutable: Some(true),
            ..Secret::default()
        };
        let copy = cci_secret(&secret, "c1");
        assert_eq!(copy.immutable, Some(true));
        assert_eq!(copy.type_.as_deref(), Some("Opaque"));
        assert_eq!(copy.data, secret.data);
        assert_eq!(copy.metadata.name.as_deref(), Some("shop.builder-token"));
    }

    #[test]
    fn a_claim_keeps_its_class_size_and_modes_but_not_its_cluster_binding() {
        let claim = PersistentVolumeClaim {
            metadata: object_meta("shared"),
            spec: Some(PersistentVolumeClaimSpec {
                access_modes: Some(vec!["ReadWriteMany".into()]),
                storage_class_name: Some("csi-nas".into()),
                volume_name: Some("pv-123".into()),
                volume_mode: Some("Filesystem".into()),
                resources: Some(VolumeResourceRequirements {
                    requests: Some(BTreeMap::from([(
                        "storage".into(),
                        Quantity("10Gi".into()),
                    )])),
                    limits: None,
                }),
                ..PersistentVolumeClaimSpec::default()
            }),
            status: None,
        };
        let copy = cci_claim(&claim, "c1");
        assert_eq!(copy.metadata.name.as_deref(), Some("shop.shared"));
        assert_eq!(copy.spec.storage_class_name.as_deref(), Some("csi-nas"));
        assert_eq!(copy.spec.volume_name, None);
        assert_eq!(copy.spec.volume_mode.as_deref(), Some("Filesystem"));
        assert_eq!(
            copy.spec.access_modes,
            Some(vec!["ReadWriteMany".to_string()])
        );
        assert_eq!(
            copy.spec.resources.unwrap().requests.unwrap()["storage"],
            Quantity("10Gi".into())
        );
    }
}
