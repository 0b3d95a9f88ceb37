//! Finding the add-on on an existing cluster as it was installed, by burstcert (its state,
//! `kube-system/bursting-addon`) or by CCE (the add-on's Deployments and its virtual node), and
//! reading the release, the cluster id and the virtual node's name from what is there.
//!
//! The reading is pure ([`discover`]: nodes, pods and Deployments in, what was found out), so it
//! is tested on the CCE shapes of `fixtures/cce/`; [`read`] lists them from a cluster.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Container, Node, Pod};

use burst_rules::release::Release;

use crate::error::Result;

/// The virtual node's name as the add-on makes it: `bursting-node` (CCI 2.0), `virtual-kubelet`
/// (CCI 1.0, BEHAVIOR.md §1); looked for in this order.
pub const VIRTUAL_NODES: &[&str] = &[crate::cluster::VIRTUAL_NODE, "virtual-kubelet"];

/// The label every virtual-kubelet node carries (`type=virtual-kubelet`, as `vk` labels ours).
pub const VIRTUAL_NODE_LABEL: (&str, &str) = (vk::LABEL_TYPE, vk::TYPE_VIRTUAL_KUBELET);

/// The Deployments of the add-on's virtual kubelet, in the order they are looked for:
/// burstcert's own rendering, then the CCE add-on as CCE installs it (a Helm release
/// `cceaddon-virtual-kubelet`, whatever CCI it speaks).
pub const VIRTUAL_KUBELET_DEPLOYMENTS: &[&str] = &[
    crate::addon::render::VIRTUAL_KUBELET,
    "cceaddon-virtual-kubelet-virtual-kubelet",
];

/// The virtual kubelet's flags that name its node: ours, and upstream virtual-kubelet's.
const NODE_NAME_FLAGS: &[&str] = &["--node-name=", "--nodename="];

/// What the harness read about the add-on installed on an existing cluster.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Installed {
    /// The installed release: from burstcert's add-on state, else the virtual kubelet's image tag.
    pub release: Option<Release>,
    /// The cluster id it was installed with.
    pub cluster_id: Option<String>,
    /// The CCI endpoint it was installed with (burstcert's add-on state only).
    pub cci_endpoint: Option<String>,
    /// The virtual node, when one is there.
    pub virtual_node: Option<String>,
    /// Where the release and cluster id were read, for the line `certify` prints.
    pub read_from: String,
}

/// What [`discover`] reads in the add-on's namespace and among the nodes.
#[derive(Clone, Copy, Debug)]
pub struct Seen<'a> {
    /// Every node of the cluster.
    pub nodes: &'a [Node],
    /// The pods of the add-on's namespace.
    pub pods: &'a [Pod],
    /// The Deployments of the add-on's namespace.
    pub deployments: &'a [Deployment],
}

/// Finds the add-on in what was `seen`: its virtual kubelet's Deployment (the first of
/// [`VIRTUAL_KUBELET_DEPLOYMENTS`]) and its virtual node: `virtual_node` when given, else the
/// node its kubelet names (`--node-name=` / `--nodename=`), else the first of [`VIRTUAL_NODES`]
/// there, else the one node labelled [`VIRTUAL_NODE_LABEL`]. The release (image tag) and cluster
/// id (`--cluster-id=`, else `CLUSTER_ID`) are read from the Deployment, or, without one of
/// those names, from the kubelet's pod: the pod of the add-on's namespace whose IP is the
/// node's `InternalIP` (a virtual kubelet gives its node its own pod's address). `None` when
/// neither a Deployment nor a virtual node is there: no add-on, as far as the harness can tell.
pub fn discover(seen: Seen<'_>, virtual_node: Option<&str>) -> Option<Installed> {
    let deployment = VIRTUAL_KUBELET_DEPLOYMENTS.iter().find_map(|name| {
        seen.deployments
            .iter()
            .find(|d| d.metadata.name.as_deref() == Some(*name))
    });
    let from_deployment = deployment.and_then(|d| {
        d.spec
            .as_ref()
            .and_then(|s| s.template.spec.as_ref())
            .and_then(|s| s.containers.first())
    });
    let exists = |name: &str| {
        seen.nodes
            .iter()
            .any(|n| n.metadata.name.as_deref() == Some(name))
    };
    let labelled: Vec<&str> = seen
        .nodes
        .iter()
        .filter(|n| {
            n.metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(VIRTUAL_NODE_LABEL.0))
                .is_some_and(|v| v == VIRTUAL_NODE_LABEL.1)
        })
        .filter_map(|n| n.metadata.name.as_deref())
        .collect();
    let node = match virtual_node {
        Some(name) => exists(name).then(|| name.to_owned()),
        None => from_deployment
            .and_then(node_named_by)
            .filter(|name| exists(name))
            .or_else(|| {
                VIRTUAL_NODES
                    .iter()
                    .find(|name| exists(name))
                    .map(|name| (*name).to_owned())
            })
            .or_else(|| match labelled.as_slice() {
                [only] => Some((*only).to_owned()),
                _ => None,
            }),
    };
    let kubelet_pod = node
        .as_deref()
        .and_then(|node| kubelet_pod(seen, node))
        .and_then(|pod| {
            let container = pod.spec.as_ref().and_then(|s| s.containers.first())?;
            Some((pod.metadata.name.as_deref().unwrap_or("?"), container))
        });
    let (container, read_from) = match (deployment, from_deployment, kubelet_pod) {
        (Some(d), Some(c), _) => (
            Some(c),
            format!("Deployment {}", d.metadata.name.as_deref().unwrap_or("?")),
        ),
        (_, _, Some((pod, c))) => (Some(c), format!("pod {pod} (the virtual node's kubelet)")),
        _ if node.is_some() => (None, "nothing: no kubelet Deployment or pod found".into()),
        _ => return None,
    };
    let (release, cluster_id) = container.map_or((None, None), release_and_cluster_id);
    Some(Installed {
        release,
        cluster_id,
        cci_endpoint: None,
        virtual_node: node,
        read_from,
    })
}

/// The pod of the add-on's namespace whose IP is `node`'s `InternalIP`.
fn kubelet_pod<'a>(seen: Seen<'a>, node: &str) -> Option<&'a Pod> {
    let address = seen
        .nodes
        .iter()
        .find(|n| n.metadata.name.as_deref() == Some(node))?
        .status
        .as_ref()?
        .addresses
        .as_ref()?
        .iter()
        .find(|a| a.type_ == "InternalIP")?
        .address
        .clone();
    seen.pods.iter().find(|p| {
        p.status.as_ref().and_then(|s| s.pod_ip.as_deref()) == Some(address.as_str())
            && p.spec.as_ref().and_then(|s| s.host_network) != Some(true)
    })
}

/// The value of the first of a container's arguments (or command words) that starts with one
/// of `prefixes`, e.g. `--cluster-id=`.
fn flag<'a>(container: &'a Container, prefixes: &[&str]) -> Option<&'a str> {
    container
        .args
        .iter()
        .flatten()
        .chain(container.command.iter().flatten())
        .find_map(|a| prefixes.iter().find_map(|p| a.strip_prefix(p)))
}

/// The node a virtual kubelet's container names, if it names one.
fn node_named_by(container: &Container) -> Option<String> {
    flag(container, NODE_NAME_FLAGS).map(str::to_owned)
}

/// The release (image tag) and cluster id (`--cluster-id=`, else `CLUSTER_ID`) of the virtual
/// kubelet's container.
fn release_and_cluster_id(container: &Container) -> (Option<Release>, Option<String>) {
    let release = container
        .image
        .as_deref()
        .and_then(|image| image.rsplit_once(':'))
        .and_then(|(_, tag)| crate::certify::parse_release(tag.trim_start_matches('v')).ok());
    let cluster_id = flag(container, &["--cluster-id="])
        .map(str::to_owned)
        .or_else(|| {
            container
                .env
                .iter()
                .flatten()
                .find(|e| e.name == "CLUSTER_ID")
                .and_then(|e| e.value.clone())
        });
    (release, cluster_id)
}

/// Reads the installed add-on from the cluster: burstcert's state when the add-on's namespace
/// is the one burstcert installs into and there is one (the release, cluster id and endpoint it
/// was installed with), and in any case [`discover`] over the nodes and the namespace's pods and
/// Deployments (the virtual node; the release and cluster id without a state).
pub async fn read(
    client: &kube::Client,
    namespace: &str,
    virtual_node: Option<&str>,
) -> Result<Option<Installed>> {
    let state = if namespace == crate::addon::render::NAMESPACE {
        crate::addon::lifecycle::state(client).await?
    } else {
        None
    };
    let kube_err = |what: String| {
        move |source| crate::Error::Kube {
            context: what,
            source,
        }
    };
    let list = Default::default();
    let nodes = kube::Api::<Node>::all(client.clone())
        .list(&list)
        .await
        .map_err(kube_err("list the nodes".into()))?;
    let pods = kube::Api::<Pod>::namespaced(client.clone(), namespace)
        .list(&list)
        .await
        .map_err(kube_err(format!("list the pods of {namespace}")))?;
    let deployments = kube::Api::<Deployment>::namespaced(client.clone(), namespace)
        .list(&list)
        .await
        .map_err(kube_err(format!("list the Deployments of {namespace}")))?;
    let found = discover(
        Seen {
            nodes: &nodes.items,
            pods: &pods.items,
            deployments: &deployments.items,
        },
        virtual_node,
    );
    Ok(match state {
        Some(state) => Some(Installed {
            release: Some(state.params.release),
            cluster_id: Some(state.params.cluster_id.clone()),
            cci_endpoint: Some(state.params.cci_endpoint.clone()),
            virtual_node: found.and_then(|f| f.virtual_node),
            read_from: format!(
                "burstcert's add-on state ({namespace}/{})",
                crate::addon::lifecycle::STATE
            ),
        }),
        None => found,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    /// The objects of a fixture `List`, by kind.
    fn fixture(file: &str) -> (Vec<Node>, Vec<Pod>, Vec<Deployment>) {
        let list: serde_json::Value = crate::fixtures::load(&format!("cce/{file}")).unwrap();
        let of = |kind: &str| {
            serde_json::Value::Array(
                list["items"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter(|o| o["kind"] == kind)
                    .cloned()
                    .collect(),
            )
        };
        (
            serde_json::from_value(of("Node")).unwrap(),
            serde_json::from_value(of("Pod")).unwrap(),
            serde_json::from_value(of("Deployment")).unwrap(),
        )
    }

    fn seen<'a>(objects: &'a (Vec<Node>, Vec<Pod>, Vec<Deployment>)) -> Seen<'a> {
        Seen {
            nodes: &objects.0,
            pods: &objects.1,
            deployments: &objects.2,
        }
    }

    #[rstest]
    #[case::cci_2(
        "cci2-addon.yaml",
        "bursting-node",
        Release::new(1, 5, 21),
        "5f2b0c7e-cce0-11ee-b5a5-0255ac100b07"
    )]
    #[case::cci_1(
        "cci1-addon.yaml",
        "virtual-kubelet",
        Release::new(1, 3, 24),
        "0a1f6c2e-9a61-11ec-8f1e-0255ac10002a"
    )]
    fn the_cce_add_on_is_found_with_its_release_cluster_id_and_node(
        #[case] file: &str,
        #[case] node: &str,
        #[case] release: Release,
        #[case] cluster_id: &str,
    ) {
        let objects = fixture(file);
        let found = discover(seen(&objects), None).unwrap();
        assert_eq!(found.virtual_node.as_deref(), Some(node));
        assert_eq!(found.release, Some(release));
        assert_eq!(found.cluster_id.as_deref(), Some(cluster_id));
        assert!(
            found.read_from.starts_with("Deployment cceaddon-"),
            "{}",
            found.read_from
        );
    }

    #[rstest]
    #[case::cci_2("cci2-addon.yaml", Release::new(1, 5, 21))]
    #[case::cci_1("cci1-addon.yaml", Release::new(1, 3, 24))]
    fn without_its_deployment_the_add_on_is_read_from_the_pod_behind_its_node(
        #[case] file: &str,
        #[case] release: Release,
    ) {
        let (nodes, pods, _) = fixture(file);
        let objects = (nodes, pods, Vec::new());
        let found = discover(seen(&objects), None).unwrap();
        assert_eq!(found.release, Some(release));
        assert!(found.cluster_id.is_some());
        assert!(found.read_from.starts_with("pod "), "{}", found.read_from);
    }

    #[rstest]
    #[case::cci_2("cci2-addon.yaml", "bursting-node")]
    #[case::cci_1("cci1-addon.yaml", "virtual-kubelet")]
    fn a_renamed_node_is_found_by_its_label_and_an_unknown_one_is_not_invented(
        #[case] file: &str,
        #[case] node: &str,
    ) {
        let (mut nodes, pods, _) = fixture(file);
        for n in &mut nodes {
            if n.metadata.name.as_deref() == Some(node) {
                n.metadata.name = Some("vk-renamed".into());
            }
        }
        let objects = (nodes, pods, Vec::new());
        let found = discover(seen(&objects), None).unwrap();
        assert_eq!(found.virtual_node.as_deref(), Some("vk-renamed"));
        // The pod behind it is still found by the node's address.
        assert!(found.release.is_some());
        // A name given that is not there is not taken on trust.
        let found = discover(seen(&fixture(file)), Some("no-such-node")).unwrap();
        assert_eq!(found.virtual_node, None);
        assert!(found.release.is_some(), "the Deployment is still read");
    }

    #[rstest]
    #[case::cci_2("cci2-addon.yaml")]
    #[case::cci_1("cci1-addon.yaml")]
    fn a_namespace_and_cluster_without_the_add_on_find_nothing(#[case] file: &str) {
        let (nodes, pods, deployments) = fixture(file);
        let ordinary: Vec<Node> = nodes
            .into_iter()
            .filter(|n| {
                n.metadata
                    .labels
                    .as_ref()
                    .and_then(|l| l.get("type"))
                    .is_none()
            })
            .collect();
        assert!(!ordinary.is_empty(), "the fixture has an ordinary node");
        // Only the add-on's other Deployments: not its kubelet.
        let others: Vec<Deployment> = deployments
            .into_iter()
            .filter(|d| {
                !d.metadata
                    .name
                    .as_deref()
                    .unwrap()
                    .ends_with("-virtual-kubelet")
            })
            .collect();
        assert!(!others.is_empty());
        let objects = (ordinary, pods, others);
        assert_eq!(discover(seen(&objects), None), None);
    }
}
