//! The cluster's ordinary nodes: kwok nodes with a given capacity, pod room and architecture.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Node, NodeSpec, NodeStatus};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, PostParams};

use crate::cluster::local::KWOK_NODE_ANNOTATION;
use crate::error::{Error, Result};

/// Label that marks the nodes the harness made for kwok.
pub const KWOK_NODE_LABEL: (&str, &str) = ("type", "kwok");

/// One ordinary node as a scenario wants it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeShape {
    /// Node name.
    pub name: String,
    /// CPU capacity, as a Kubernetes quantity (`"4"`, `"3500m"`).
    pub cpu: String,
    /// Memory capacity (`"16Gi"`).
    pub memory: String,
    /// Maximum number of pods.
    pub max_pods: u32,
    /// `amd64` or `arm64`.
    pub arch: String,
    /// Zone label value.
    pub zone: String,
}

impl NodeShape {
    /// A default node (4 CPU, 16Gi, 110 pods, amd64) named `kwok-node-{index}`.
    pub fn standard(index: usize) -> Self {
        Self {
            name: format!("kwok-node-{index}"),
            cpu: "4".into(),
            memory: "16Gi".into(),
            max_pods: 110,
            arch: "amd64".into(),
            zone: "zone-a".into(),
        }
    }

    /// The Node object kwok will manage.
    pub fn to_node(&self) -> Node {
        let labels = BTreeMap::from([
            ("kubernetes.io/arch".to_owned(), self.arch.clone()),
            ("kubernetes.io/os".to_owned(), "linux".to_owned()),
            ("kubernetes.io/hostname".to_owned(), self.name.clone()),
            ("topology.kubernetes.io/zone".to_owned(), self.zone.clone()),
            (KWOK_NODE_LABEL.0.to_owned(), KWOK_NODE_LABEL.1.to_owned()),
        ]);
        let annotations = BTreeMap::from([(
            KWOK_NODE_ANNOTATION.0.to_owned(),
            KWOK_NODE_ANNOTATION.1.to_owned(),
        )]);
        let resources = BTreeMap::from([
            ("cpu".to_owned(), Quantity(self.cpu.clone())),
            ("memory".to_owned(), Quantity(self.memory.clone())),
            ("pods".to_owned(), Quantity(self.max_pods.to_string())),
        ]);
        Node {
            metadata: ObjectMeta {
                name: Some(self.name.clone()),
                labels: Some(labels),
                annotations: Some(annotations),
                ..Default::default()
            },
            spec: Some(NodeSpec::default()),
            status: Some(NodeStatus {
                capacity: Some(resources.clone()),
                allocatable: Some(resources),
                ..Default::default()
            }),
        }
    }
}

/// Creates the nodes (an existing node of the same name is an error: scenarios own their nodes).
pub async fn create_nodes(client: &kube::Client, shapes: &[NodeShape]) -> Result<()> {
    let api: Api<Node> = Api::all(client.clone());
    for shape in shapes {
        api.create(&PostParams::default(), &shape.to_node())
            .await
            .map_err(|source| Error::Kube {
                context: format!("create kwok node {}", shape.name),
                source,
            })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_standard_node_is_handed_to_kwok_and_carries_its_capacity() {
        let node = NodeShape {
            max_pods: 7,
            arch: "arm64".into(),
            ..NodeShape::standard(2)
        }
        .to_node();
        let meta = &node.metadata;
        assert_eq!(meta.name.as_deref(), Some("kwok-node-2"));
        assert_eq!(
            meta.annotations
                .as_ref()
                .unwrap()
                .get("kwok.x-k8s.io/node")
                .map(String::as_str),
            Some("fake")
        );
        assert_eq!(
            meta.labels
                .as_ref()
                .unwrap()
                .get("kubernetes.io/arch")
                .map(String::as_str),
            Some("arm64")
        );
        let alloc = node.status.unwrap().allocatable.unwrap();
        assert_eq!(alloc["pods"].0, "7");
        assert_eq!(alloc["cpu"].0, "4");
    }
}
