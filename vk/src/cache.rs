//! The form in which the controller caches the node's pods.
//!
//! A parsed `PodSpec` is large: k8s-openapi keeps every optional volume source, probe and
//! security field inline, so a pod with one container and two volumes takes ~18 KiB of memory
//! against ~2 KiB of JSON. The controller reads the spec only when it hands a pod to the
//! provider, while it reads metadata and status of every pod every status round. So the cache
//! keeps metadata and status parsed and the spec as the API server's JSON, parsed on demand
//! (measured with heaptrack at 4000 pods: the reflector's store went from 72 MiB to a third).

use std::borrow::Cow;

use k8s_openapi::api::core::v1::{Pod, PodSpec, PodStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Resource;
use kube::core::NamespaceResourceScope;
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::{Error, Result};

/// A pod of the node as the controller caches it: metadata and status parsed, the spec kept as
/// JSON until [`to_pod`](Self::to_pod) needs it. Deserializes from a pod's JSON (the watch).
#[derive(Clone, Debug, Deserialize)]
pub struct CachedPod {
    /// The pod's metadata (managed fields dropped by the controller's watch).
    pub metadata: ObjectMeta,
    /// The pod's status.
    #[serde(default)]
    pub status: Option<PodStatus>,
    #[serde(default)]
    spec: Option<Box<RawValue>>,
}

impl CachedPod {
    /// The cached form of `pod`.
    pub fn from_pod(pod: &Pod) -> Self {
        Self {
            metadata: pod.metadata.clone(),
            status: pod.status.clone(),
            // NB: a PodSpec always serializes (its fields are plain data).
            spec: pod
                .spec
                .as_ref()
                .and_then(|s| serde_json::value::to_raw_value(s).ok()),
        }
    }

    /// The whole pod, its spec parsed.
    ///
    /// Fails only if the cached spec is not a `PodSpec`, which the API server never sends
    /// ([`Error::PodSpec`]).
    pub fn to_pod(&self) -> Result<Pod> {
        Ok(Pod {
            metadata: self.metadata.clone(),
            spec: self.spec().map_err(|source| Error::PodSpec {
                pod: format!(
                    "{}/{}",
                    self.metadata.namespace.as_deref().unwrap_or_default(),
                    self.metadata.name.as_deref().unwrap_or_default()
                ),
                source,
            })?,
            status: self.status.clone(),
        })
    }

    /// Whether the two pods have the same spec (compared as the API server wrote them: it writes
    /// a given spec the same way every time).
    pub fn same_spec(&self, other: &Self) -> bool {
        self.spec.as_ref().map(|s| s.get()) == other.spec.as_ref().map(|s| s.get())
    }

    /// The spec, parsed.
    fn spec(&self) -> serde_json::Result<Option<PodSpec>> {
        self.spec
            .as_ref()
            .map(|raw| serde_json::from_str(raw.get()))
            .transpose()
    }
}

impl Resource for CachedPod {
    type DynamicType = ();
    type Scope = NamespaceResourceScope;

    fn kind(_: &()) -> Cow<'_, str> {
        Pod::kind(&())
    }

    fn group(_: &()) -> Cow<'_, str> {
        Pod::group(&())
    }

    fn version(_: &()) -> Cow<'_, str> {
        Pod::version(&())
    }

    fn plural(_: &()) -> Cow<'_, str> {
        Pod::plural(&())
    }

    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }

    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod() -> Pod {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "web-0", "namespace": "shop", "uid": "u-1",
                         "annotations": {"a": "b"}},
            "spec": {"nodeName": "vk", "containers": [{"name": "main", "image": "nginx"}],
                     "volumes": [{"name": "cm", "configMap": {"name": "cm-1"}}]},
            "status": {"phase": "Running"}
        }))
        .unwrap()
    }

    #[test]
    fn a_cached_pod_gives_back_the_pod_it_was_read_from() {
        let text = serde_json::to_string(&pod()).unwrap();
        let cached: CachedPod = serde_json::from_str(&text).unwrap();
        assert_eq!(cached.to_pod().unwrap(), pod());
        assert_eq!(CachedPod::from_pod(&pod()).to_pod().unwrap(), pod());
    }

    #[test]
    fn specs_compare_equal_only_when_they_are() {
        let a = CachedPod::from_pod(&pod());
        let mut changed = pod();
        changed.spec.as_mut().unwrap().containers[0].image = Some("nginx:2".into());
        assert!(a.same_spec(&CachedPod::from_pod(&pod())));
        assert!(!a.same_spec(&CachedPod::from_pod(&changed)));
        let mut no_spec = pod();
        no_spec.spec = None;
        assert!(!a.same_spec(&CachedPod::from_pod(&no_spec)));
    }

    #[test]
    fn a_spec_that_is_not_a_pod_spec_is_an_error_naming_the_pod() {
        let cached: CachedPod = serde_json::from_str(
            r#"{"metadata": {"name": "x"}, "spec": {"containers": "not a list"}}"#,
        )
        .unwrap();
        let error = cached.to_pod().unwrap_err();
        assert!(matches!(error, Error::PodSpec { .. }), "{error}");
        assert!(!error.is_retryable());
        assert_eq!(error.to_string(), "pod /x: the spec cannot be read");
    }
}
