//! How cluster names become CCI names and back: the CCI pod `{namespace}.{name}`, the mirror of
//! an object a pod uses (the same scheme), the namespace `bursting-{clusterID}`, and the cluster
//! pod a CCI pod name stands for. Every other part of the translation, the provider and the gc
//! name things through these functions, so the scheme lives in one place.

use std::collections::BTreeMap;

use cci_api::LABEL_CLUSTER_ID;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::{Error, Result};

/// Longest CCI pod name (a DNS-1123 subdomain).
pub const MAX_CCI_POD_NAME_LEN: usize = 253;
/// Longest cluster ID: the CCI namespace `bursting-{id}` must stay a 63-character DNS label.
pub const MAX_CLUSTER_ID_LEN: usize = 63 - "bursting-".len();

/// The CCI pod name of cluster pod `namespace/name`: `{namespace}.{name}`.
pub fn cci_pod_name(namespace: &str, name: &str) -> String {
    format!("{namespace}.{name}")
}

/// The CCI name of the mirror of cluster object `namespace/name` (a ConfigMap, Secret or
/// PersistentVolumeClaim): `{namespace}.{name}`, the scheme of pods.
pub fn mirror_name(namespace: &str, name: &str) -> String {
    format!("{namespace}.{name}")
}

/// The cluster `(namespace, name)` a CCI pod name stands for (split at the first dot).
pub fn cluster_pod_of(cci_name: &str) -> Option<(&str, &str)> {
    cci_name
        .split_once('.')
        .filter(|(ns, name)| !ns.is_empty() && !name.is_empty())
}

/// Check that `cluster_id` can name the CCI namespace `bursting-{cluster_id}` (a DNS label).
pub fn check_cluster_id(cluster_id: &str) -> Result<()> {
    let b = cluster_id.as_bytes();
    let alnum = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    let ok = !b.is_empty()
        && b.len() <= MAX_CLUSTER_ID_LEN
        && b.first().is_some_and(alnum)
        && b.last().is_some_and(alnum)
        && b.iter().all(|c| alnum(c) || *c == b'-');
    if ok {
        Ok(())
    } else {
        Err(Error::ClusterId(cluster_id.into()))
    }
}

/// The CCI namespace object of a cluster: `bursting-{clusterID}`, labelled with the cluster ID.
pub fn cci_namespace(cluster_id: &str) -> cci_api::Namespace {
    cci_api::Namespace::new(ObjectMeta {
        name: Some(cci_api::namespace_for_cluster(cluster_id)),
        labels: Some(BTreeMap::from([(
            LABEL_CLUSTER_ID.to_string(),
            cluster_id.to_string(),
        )])),
        ..ObjectMeta::default()
    })
}

/// Namespace, name and UID of a cluster pod, or why the pod cannot be named on CCI.
pub fn identity(pod: &Pod) -> Result<(&str, &str, &str)> {
    let m = &pod.metadata;
    let namespace = m.namespace.as_deref().unwrap_or_default();
    let name = m.name.as_deref().unwrap_or_default();
    let uid = m.uid.as_deref().unwrap_or_default();
    let refuse = |reason: &str| Error::Translate {
        pod: format!("{namespace}/{name}"),
        reason: reason.into(),
    };
    if namespace.is_empty() || name.is_empty() {
        return Err(refuse("has no namespace or no name"));
    }
    if namespace.contains('.') {
        return Err(refuse(
            "its namespace contains a dot, which CCI pod names reserve",
        ));
    }
    if uid.is_empty() {
        return Err(refuse("has no uid"));
    }
    Ok((namespace, name, uid))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case::plain("shop.web-0", Some(("shop", "web-0")))]
    #[case::dotted_pod_name("shop.web.v2", Some(("shop", "web.v2")))]
    #[case::no_dot("web-0", None)]
    #[case::empty_namespace(".web", None)]
    fn cci_names_split_back_at_the_first_dot(
        #[case] cci_name: &str,
        #[case] expected: Option<(&str, &str)>,
    ) {
        assert_eq!(cluster_pod_of(cci_name), expected);
    }

    #[rstest]
    #[case::plain("c1", true)]
    #[case::dashes("cluster-42", true)]
    // `bursting-` and 54 characters make a namespace name of 63, a DNS label's most.
    #[case::longest(&"a".repeat(54), true)]
    #[case::too_long(&"a".repeat(55), false)]
    #[case::upper("C1", false)]
    #[case::dot("c.1", false)]
    #[case::leading_dash("-c1", false)]
    #[case::empty("", false)]
    fn cluster_ids_must_make_a_namespace_name(#[case] id: &str, #[case] ok: bool) {
        assert_eq!(check_cluster_id(id).is_ok(), ok, "{id}");
        if ok {
            assert!(cci_api::namespace_for_cluster(id).len() <= 63, "{id}");
        }
    }

    #[test]
    fn the_cci_namespace_is_named_and_labelled_for_the_cluster() {
        let ns = cci_namespace("c1");
        assert_eq!(ns.metadata.name.as_deref(), Some("bursting-c1"));
        assert_eq!(ns.metadata.labels.unwrap()[LABEL_CLUSTER_ID], "c1");
        assert_eq!(ns.kind, "Namespace");
    }
}
