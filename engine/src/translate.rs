//! Cluster pod ⇄ CCI pod: pure functions, no IO.
//!
//! # Naming
//!
//! A cluster pod `{namespace}/{name}` becomes the CCI pod `{namespace}.{name}` in the CCI
//! namespace `bursting-{clusterID}`. Cluster namespaces are DNS labels (no dots), so the first
//! dot splits the name back unambiguously and two cluster namespaces can never collide. The CCI
//! pod carries the cluster pod's UID as the label [`LABEL_CLUSTER_POD_UID`] (its identity: a pod
//! recreated under the same name is another pod) and `namespace/name` as the annotation
//! [`ANNOTATION_CLUSTER_POD`].
//!
//! # What is carried over
//!
//! The pod's `restartPolicy` and, for each app container: name, image, command, args, the env
//! variables with a literal `value`, ports (container port, name, protocol) and resources
//! (requests and limits).
//!
//! # What is dropped
//!
//! Everything that only means something on a cluster node, or that needs an object mirrored to
//! CCI first: `nodeName`, `nodeSelector`, `affinity`, `tolerations`, `schedulerName`,
//! `priority`/`priorityClassName`, the service account and its token volume, all volumes and
//! volume mounts, init and ephemeral containers, `imagePullSecrets`, security contexts, probes,
//! lifecycle hooks, env `valueFrom` and `envFrom`, host ports, host networking/PID/IPC, DNS
//! settings, hostname/subdomain and the termination grace period. The cluster pod's own labels
//! and annotations are not copied either.

use std::collections::BTreeMap;

use cci_api::{ANNOTATION_CLUSTER_POD, LABEL_CLUSTER_ID, LABEL_CLUSTER_POD_UID};
use k8s_openapi::api::core::v1::{
    Container, ContainerPort, ContainerStatus, EnvVar, HostIP, Pod, PodCondition, PodIP, PodSpec,
    PodStatus, ResourceRequirements,
};
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

/// The CCI pod standing for cluster pod `pod` of cluster `cluster_id`.
///
/// Refuses pods that cannot run on CCI: DaemonSet pods (they never burst), pods without
/// containers, and pods whose CCI name would exceed [`MAX_CCI_POD_NAME_LEN`].
pub fn to_cci_pod(pod: &Pod, cluster_id: &str) -> Result<cci_api::Pod> {
    let (namespace, name, uid) = identity(pod)?;
    let refuse = |reason: String| Error::Translate {
        pod: format!("{namespace}/{name}"),
        reason,
    };
    let owned_by_daemonset = pod
        .metadata
        .owner_references
        .iter()
        .flatten()
        .any(|o| o.kind == "DaemonSet");
    if owned_by_daemonset {
        return Err(refuse(
            "is a DaemonSet pod; DaemonSet pods never burst to CCI: keep them off the virtual node (do not tolerate virtual-kubelet.io/provider)".into(),
        ));
    }
    let cci_name = cci_pod_name(namespace, name);
    if cci_name.len() > MAX_CCI_POD_NAME_LEN {
        return Err(refuse(format!(
            "the CCI pod name {namespace}.{name} would be {} characters, over CCI's {MAX_CCI_POD_NAME_LEN}: shorten the pod name",
            cci_name.len()
        )));
    }
    let spec = pod.spec.as_ref();
    let containers: Vec<Container> = spec
        .map(|s| s.containers.iter().map(to_cci_container).collect())
        .unwrap_or_default();
    if containers.is_empty() {
        return Err(refuse("has no containers".into()));
    }
    let metadata = ObjectMeta {
        name: Some(cci_name),
        namespace: Some(cci_api::namespace_for_cluster(cluster_id)),
        labels: Some(BTreeMap::from([(
            LABEL_CLUSTER_POD_UID.to_string(),
            uid.to_string(),
        )])),
        annotations: Some(BTreeMap::from([(
            ANNOTATION_CLUSTER_POD.to_string(),
            format!("{namespace}/{name}"),
        )])),
        ..ObjectMeta::default()
    };
    let spec = PodSpec {
        containers,
        restart_policy: spec.and_then(|s| s.restart_policy.clone()),
        ..PodSpec::default()
    };
    Ok(cci_api::Pod::new(metadata, spec))
}

fn to_cci_container(c: &Container) -> Container {
    Container {
        name: c.name.clone(),
        image: c.image.clone(),
        command: c.command.clone(),
        args: c.args.clone(),
        env: c.env.as_ref().map(|env| {
            env.iter()
                .filter(|e| e.value_from.is_none())
                .map(|e| EnvVar {
                    name: e.name.clone(),
                    value: e.value.clone(),
                    value_from: None,
                })
                .collect()
        }),
        ports: c.ports.as_ref().map(|ports| {
            ports
                .iter()
                .map(|p| ContainerPort {
                    container_port: p.container_port,
                    name: p.name.clone(),
                    protocol: p.protocol.clone(),
                    host_ip: None,
                    host_port: None,
                })
                .collect()
        }),
        resources: c.resources.as_ref().map(|r| ResourceRequirements {
            requests: r.requests.clone(),
            limits: r.limits.clone(),
            claims: None,
        }),
        ..Container::default()
    }
}

/// The cluster pod a CCI pod stands for, with its status mapped back; `None` for a CCI pod the
/// engine did not create (no UID label, or no readable cluster name).
pub fn remote_pod(cci: &cci_api::Pod) -> Option<vk::RemotePod> {
    let m = &cci.metadata;
    let uid = m.labels.as_ref()?.get(LABEL_CLUSTER_POD_UID)?.clone();
    let (namespace, name) = match m
        .annotations
        .as_ref()
        .and_then(|a| a.get(ANNOTATION_CLUSTER_POD))
    {
        Some(annotation) => annotation.split_once('/')?,
        None => cluster_pod_of(m.name.as_deref()?)?,
    };
    Some(vk::RemotePod {
        namespace: namespace.to_string(),
        name: name.to_string(),
        uid,
        status: cci.status.as_ref().map(|s| cluster_status(s, &cci.spec)),
    })
}

/// The UID label of a CCI pod.
pub fn cluster_uid_of(cci: &cci_api::Pod) -> Option<&str> {
    cci.metadata
        .labels
        .as_ref()?
        .get(LABEL_CLUSTER_POD_UID)
        .map(String::as_str)
}

/// The cluster pod status for a CCI pod status: phase, reason, message, IPs, start time,
/// conditions and container statuses.
///
/// Fields that belong to the cluster (QoS class, observed generation, nominated node, resize,
/// resource claims) are left out. `podIPs`/`hostIPs` are derived from `podIP`/`hostIP` when CCI
/// only gives the latter, since the API server requires them to agree. A container status
/// without an image gets the image of the CCI spec's container.
pub fn cluster_status(cci: &PodStatus, cci_spec: &PodSpec) -> PodStatus {
    let image_of = |name: &str| {
        cci_spec
            .containers
            .iter()
            .find(|c| c.name == name)
            .and_then(|c| c.image.clone())
            .unwrap_or_default()
    };
    let container = |s: &ContainerStatus| ContainerStatus {
        name: s.name.clone(),
        state: s.state.clone(),
        last_state: s.last_state.clone(),
        ready: s.ready,
        restart_count: s.restart_count,
        image: if s.image.is_empty() {
            image_of(&s.name)
        } else {
            s.image.clone()
        },
        image_id: s.image_id.clone(),
        container_id: s.container_id.clone(),
        started: s.started,
        ..ContainerStatus::default()
    };
    let condition = |c: &PodCondition| PodCondition {
        type_: c.type_.clone(),
        status: c.status.clone(),
        reason: c.reason.clone(),
        message: c.message.clone(),
        last_probe_time: c.last_probe_time.clone(),
        last_transition_time: c.last_transition_time.clone(),
        observed_generation: None,
    };
    let pod_ips = cci
        .pod_ips
        .clone()
        .or_else(|| cci.pod_ip.as_ref().map(|ip| vec![PodIP { ip: ip.clone() }]));
    let host_ips = cci.host_ips.clone().or_else(|| {
        cci.host_ip
            .as_ref()
            .map(|ip| vec![HostIP { ip: ip.clone() }])
    });
    PodStatus {
        phase: cci.phase.clone(),
        reason: cci.reason.clone(),
        message: cci.message.clone(),
        pod_ip: cci.pod_ip.clone(),
        pod_ips,
        host_ip: cci.host_ip.clone(),
        host_ips,
        start_time: cci.start_time.clone(),
        conditions: cci
            .conditions
            .as_ref()
            .map(|cs| cs.iter().map(condition).collect()),
        container_statuses: cci
            .container_statuses
            .as_ref()
            .map(|cs| cs.iter().map(container).collect()),
        ..PodStatus::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        Affinity, ContainerState, ContainerStateRunning, EnvVarSource, ObjectFieldSelector,
        Toleration, Volume,
    };
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
    use rstest::rstest;

    fn cluster_pod(namespace: &str, name: &str) -> Pod {
        Pod {
            metadata: ObjectMeta {
                namespace: Some(namespace.into()),
                name: Some(name.into()),
                uid: Some("6f1c0d7e-0000-4000-8000-000000000001".into()),
                labels: Some(BTreeMap::from([("app".into(), "web".into())])),
                ..ObjectMeta::default()
            },
            spec: Some(PodSpec {
                node_name: Some("bursting-node".into()),
                node_selector: Some(BTreeMap::from([("type".into(), "virtual-kubelet".into())])),
                affinity: Some(Affinity::default()),
                tolerations: Some(vec![Toleration {
                    key: Some("virtual-kubelet.io/provider".into()),
                    operator: Some("Exists".into()),
                    ..Toleration::default()
                }]),
                service_account_name: Some("default".into()),
                volumes: Some(vec![Volume {
                    name: "kube-api-access-abcde".into(),
                    ..Volume::default()
                }]),
                restart_policy: Some("Never".into()),
                containers: vec![Container {
                    name: "app".into(),
                    image: Some("nginx:1.27".into()),
                    command: Some(vec!["nginx".into()]),
                    args: Some(vec!["-g".into(), "daemon off;".into()]),
                    env: Some(vec![
                        EnvVar {
                            name: "MODE".into(),
                            value: Some("burst".into()),
                            value_from: None,
                        },
                        EnvVar {
                            name: "POD_NAME".into(),
                            value: None,
                            value_from: Some(EnvVarSource {
                                field_ref: Some(ObjectFieldSelector {
                                    field_path: "metadata.name".into(),
                                    api_version: None,
                                }),
                                ..EnvVarSource::default()
                            }),
                        },
                    ]),
                    ports: Some(vec![ContainerPort {
                        container_port: 80,
                        host_port: Some(8080),
                        name: Some("http".into()),
                        protocol: Some("TCP".into()),
                        host_ip: None,
                    }]),
                    resources: Some(ResourceRequirements {
                        requests: Some(BTreeMap::from([("cpu".into(), Quantity("500m".into()))])),
                        limits: Some(BTreeMap::from([("cpu".into(), Quantity("500m".into()))])),
                        claims: None,
                    }),
                    ..Container::default()
                }],
                ..PodSpec::default()
            }),
            status: None,
        }
    }

    #[test]
    fn a_cluster_pod_becomes_a_cci_pod_named_namespace_dot_name_in_the_cluster_namespace() {
        let cci = to_cci_pod(&cluster_pod("shop", "web-0"), "c1").unwrap();
        assert_eq!(cci.api_version, "cci/v2");
        assert_eq!(cci.kind, "Pod");
        assert_eq!(cci.metadata.name.as_deref(), Some("shop.web-0"));
        assert_eq!(cci.metadata.namespace.as_deref(), Some("bursting-c1"));
        assert_eq!(
            cci.metadata.labels.unwrap(),
            BTreeMap::from([(
                LABEL_CLUSTER_POD_UID.to_string(),
                "6f1c0d7e-0000-4000-8000-000000000001".to_string()
            )])
        );
        assert_eq!(
            cci.metadata.annotations.unwrap()[ANNOTATION_CLUSTER_POD],
            "shop/web-0"
        );
    }

    #[test]
    fn containers_keep_what_runs_them_and_drop_what_binds_them_to_a_node() {
        let cci = to_cci_pod(&cluster_pod("shop", "web-0"), "c1").unwrap();
        let spec = &cci.spec;
        assert_eq!(spec.restart_policy.as_deref(), Some("Never"));
        assert_eq!(spec.node_name, None);
        assert_eq!(spec.node_selector, None);
        assert_eq!(spec.affinity, None);
        assert_eq!(spec.tolerations, None);
        assert_eq!(spec.service_account_name, None);
        assert_eq!(spec.volumes, None);
        let c = &spec.containers[0];
        assert_eq!(c.image.as_deref(), Some("nginx:1.27"));
        assert_eq!(c.command.as_ref().unwrap(), &["nginx"]);
        assert_eq!(c.args.as_ref().unwrap().len(), 2);
        let env = c.env.as_ref().unwrap();
        assert_eq!(env.len(), 1, "valueFrom variables are dropped");
        assert_eq!(env[0].value.as_deref(), Some("burst"));
        let port = &c.ports.as_ref().unwrap()[0];
        assert_eq!((port.container_port, port.host_port), (80, None));
        assert_eq!(
            c.resources.as_ref().unwrap().limits.as_ref().unwrap()["cpu"],
            Quantity("500m".into())
        );
    }

    #[test]
    fn translation_does_not_depend_on_the_cluster_pods_status_or_labels() {
        let mut a = cluster_pod("shop", "web-0");
        let b = a.clone();
        a.status = Some(PodStatus {
            phase: Some("Pending".into()),
            ..PodStatus::default()
        });
        a.metadata.labels = None;
        assert_eq!(to_cci_pod(&a, "c1").unwrap(), to_cci_pod(&b, "c1").unwrap());
    }

    #[rstest]
    #[case::no_uid(|p: &mut Pod| p.metadata.uid = None, "has no uid")]
    #[case::no_namespace(|p: &mut Pod| p.metadata.namespace = None, "no namespace")]
    #[case::no_containers(|p: &mut Pod| p.spec.as_mut().unwrap().containers.clear(), "has no containers")]
    #[case::daemonset(|p: &mut Pod| p.metadata.owner_references = Some(vec![OwnerReference {
        kind: "DaemonSet".into(), name: "agent".into(), ..OwnerReference::default()
    }]), "DaemonSet pods never burst")]
    #[case::name_too_long(|p: &mut Pod| p.metadata.name = Some("a".repeat(250)), "over CCI's 253")]
    fn pods_that_cannot_run_on_cci_are_refused_with_the_reason(
        #[case] break_it: fn(&mut Pod),
        #[case] hint: &str,
    ) {
        let mut pod = cluster_pod("shop", "web-0");
        break_it(&mut pod);
        let err = to_cci_pod(&pod, "c1").unwrap_err();
        assert!(err.to_string().contains(hint), "{err}");
        assert!(matches!(vk::Error::from(err), vk::Error::InvalidInput(_)));
    }

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
    #[case::longest(&"a".repeat(MAX_CLUSTER_ID_LEN), true)]
    #[case::too_long(&"a".repeat(MAX_CLUSTER_ID_LEN + 1), false)]
    #[case::upper("C1", false)]
    #[case::dot("c.1", false)]
    #[case::leading_dash("-c1", false)]
    #[case::empty("", false)]
    fn cluster_ids_must_make_a_namespace_name(#[case] id: &str, #[case] ok: bool) {
        assert_eq!(check_cluster_id(id).is_ok(), ok, "{id}");
    }

    #[test]
    fn the_cci_namespace_is_named_and_labelled_for_the_cluster() {
        let ns = cci_namespace("c1");
        assert_eq!(ns.metadata.name.as_deref(), Some("bursting-c1"));
        assert_eq!(ns.metadata.labels.unwrap()[LABEL_CLUSTER_ID], "c1");
        assert_eq!(ns.kind, "Namespace");
    }

    fn running_cci_pod() -> cci_api::Pod {
        let mut cci = to_cci_pod(&cluster_pod("shop", "web.v2"), "c1").unwrap();
        cci.metadata.uid = Some("cci-uid".into());
        cci.status = Some(PodStatus {
            phase: Some("Running".into()),
            pod_ip: Some("192.168.0.9".into()),
            host_ip: Some("10.1.0.3".into()),
            qos_class: Some("Guaranteed".into()),
            observed_generation: Some(3),
            conditions: Some(vec![PodCondition {
                type_: "Ready".into(),
                status: "True".into(),
                observed_generation: Some(3),
                ..PodCondition::default()
            }]),
            container_statuses: Some(vec![ContainerStatus {
                name: "app".into(),
                ready: true,
                restart_count: 1,
                state: Some(ContainerState {
                    running: Some(ContainerStateRunning::default()),
                    ..ContainerState::default()
                }),
                ..ContainerStatus::default()
            }]),
            ..PodStatus::default()
        });
        cci
    }

    #[test]
    fn a_cci_pod_names_its_cluster_pod_and_brings_its_status_back() {
        let remote = remote_pod(&running_cci_pod()).unwrap();
        assert_eq!(
            (remote.namespace.as_str(), remote.name.as_str()),
            ("shop", "web.v2")
        );
        assert_eq!(remote.uid, "6f1c0d7e-0000-4000-8000-000000000001");
        let status = remote.status.unwrap();
        assert_eq!(status.phase.as_deref(), Some("Running"));
        assert_eq!(status.pod_ip.as_deref(), Some("192.168.0.9"));
        assert_eq!(status.pod_ips.unwrap()[0].ip, "192.168.0.9");
        assert_eq!(status.host_ips.unwrap()[0].ip, "10.1.0.3");
        assert_eq!(status.qos_class, None);
        assert_eq!(status.observed_generation, None);
        assert_eq!(status.conditions.unwrap()[0].observed_generation, None);
        let cs = &status.container_statuses.unwrap()[0];
        assert_eq!((cs.ready, cs.restart_count), (true, 1));
        assert_eq!(cs.image, "nginx:1.27", "image filled in from the CCI spec");
    }

    #[test]
    fn a_cci_pod_without_the_uid_label_is_not_ours() {
        let mut cci = running_cci_pod();
        cci.metadata.labels = None;
        assert_eq!(remote_pod(&cci), None);
    }

    #[test]
    fn without_the_annotation_the_cluster_pod_is_read_from_the_cci_name() {
        let mut cci = running_cci_pod();
        cci.metadata.annotations = None;
        let remote = remote_pod(&cci).unwrap();
        assert_eq!(
            (remote.namespace.as_str(), remote.name.as_str()),
            ("shop", "web.v2")
        );
    }
}
