//! Cluster container → CCI container, app and init alike: what runs it is kept, references are
//! renamed to their mirrors, mounts of dropped volumes are left out, and limits are made equal
//! to requests as CCI requires (`BEHAVIOR.md` §4).

use std::collections::{BTreeMap, BTreeSet};

use burst_rules::quantity::Quantity as RulesQuantity;
use k8s_openapi::api::core::v1::{
    ConfigMapEnvSource, ConfigMapKeySelector, Container, ContainerPort, EnvFromSource, EnvVar,
    EnvVarSource, ResourceRequirements, SecretEnvSource, SecretKeySelector, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use super::{KUBE_API_ACCESS_PREFIX, mirror_name};
use crate::breakage::{self, Breakage};

pub(super) fn to_cci_container(
    namespace: &str,
    c: &Container,
    dropped_volumes: &BTreeSet<&str>,
) -> std::result::Result<Container, String> {
    let rename = |name: &str| mirror_name(namespace, name);
    let env = c.env.as_ref().map(|env| {
        env.iter()
            .map(|e| EnvVar {
                name: e.name.clone(),
                value: e.value.clone(),
                value_from: e.value_from.as_ref().map(|s| EnvVarSource {
                    config_map_key_ref: s.config_map_key_ref.as_ref().map(|r| {
                        ConfigMapKeySelector {
                            name: if breakage::is(Breakage::EnvConfigMapRefNotRenamed) {
                                r.name.clone()
                            } else {
                                rename(&r.name)
                            },
                            ..r.clone()
                        }
                    }),
                    secret_key_ref: s.secret_key_ref.as_ref().map(|r| SecretKeySelector {
                        name: rename(&r.name),
                        ..r.clone()
                    }),
                    ..s.clone()
                }),
            })
            .collect()
    });
    let env_from = c.env_from.as_ref().map(|from| {
        from.iter()
            .map(|f| EnvFromSource {
                prefix: f.prefix.clone(),
                config_map_ref: f.config_map_ref.as_ref().map(|r| ConfigMapEnvSource {
                    name: rename(&r.name),
                    optional: r.optional,
                }),
                secret_ref: f.secret_ref.as_ref().map(|r| SecretEnvSource {
                    name: rename(&r.name),
                    optional: r.optional,
                }),
            })
            .collect()
    });
    let mounts: Vec<VolumeMount> = c
        .volume_mounts
        .iter()
        .flatten()
        .filter(|m| {
            !dropped_volumes.contains(m.name.as_str())
                && !m.name.starts_with(KUBE_API_ACCESS_PREFIX)
        })
        .map(|m| VolumeMount {
            name: m.name.clone(),
            mount_path: m.mount_path.clone(),
            sub_path: m.sub_path.clone(),
            read_only: m.read_only,
            ..VolumeMount::default()
        })
        .collect();
    Ok(Container {
        name: c.name.clone(),
        image: c.image.clone(),
        command: c.command.clone(),
        args: c.args.clone(),
        env,
        env_from,
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
        resources: c
            .resources
            .as_ref()
            .map(|r| limits_equal_requests(&c.name, r))
            .transpose()?,
        volume_mounts: (!mounts.is_empty()).then_some(mounts),
        restart_policy: c.restart_policy.clone(),
        ..Container::default()
    })
}

/// `requests` and `limits` both set, per resource, to the request (CCI requires them equal,
/// §4; "limits made equal to requests"); a resource with a limit only gets the limit on both, as
/// Kubernetes defaults a missing request to the limit. A limit above the request is not lost: it
/// counts in the pod's size, which CCI gives the pod as a whole (see [`to_cci_pod`]).
///
/// [`to_cci_pod`]: super::to_cci_pod
fn limits_equal_requests(
    container: &str,
    r: &ResourceRequirements,
) -> std::result::Result<ResourceRequirements, String> {
    let empty = BTreeMap::new();
    let requests = r.requests.as_ref().unwrap_or(&empty);
    let limits = r.limits.as_ref().unwrap_or(&empty);
    let millis = |side: &str, resource: &str, q: &Quantity| {
        RulesQuantity::parse(&q.0)
            .ok()
            .and_then(|v| v.millis())
            .ok_or_else(|| {
                format!(
                    "container {container:?}: resources.{side}.{resource} {:?} is not a usable quantity",
                    q.0
                )
            })
    };
    let mut both = BTreeMap::new();
    for resource in requests.keys().chain(limits.keys()) {
        if both.contains_key(resource) {
            continue;
        }
        let value = match (requests.get(resource), limits.get(resource)) {
            (Some(req), Some(lim)) => {
                // Both are read, so an unusable limit is refused even though the request wins.
                millis("limits", resource, lim)?;
                millis("requests", resource, req)?;
                if breakage::is(Breakage::LimitsNotRequests) {
                    lim
                } else {
                    req
                }
            }
            (Some(one), None) | (None, Some(one)) => one,
            (None, None) => continue,
        };
        both.insert(resource.clone(), value.clone());
    }
    if both.is_empty() {
        return Ok(ResourceRequirements::default());
    }
    Ok(ResourceRequirements {
        requests: Some(both.clone()),
        limits: Some(both),
        claims: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::translate::fixtures::{
        LATEST, cluster_pod, env_from_ref, pod_with, resources, size_on_cci, volume,
    };
    use crate::translate::{references, to_cci_pod};
    use burst_rules::flavour::ANNOTATION_POD_SIZE_SPECS;
    use k8s_openapi::api::core::v1::{
        ConfigMapVolumeSource, ProjectedVolumeSource, ResourceFieldSelector,
    };
    use rstest::rstest;

    #[test]
    fn containers_keep_what_runs_them_and_drop_what_binds_them_to_a_node() {
        let cci = to_cci_pod(&cluster_pod("shop", "web-0"), "c1", LATEST, None).unwrap();
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
        assert_eq!(env.len(), 2, "fieldRef variables are kept");
        assert_eq!(env[0].value.as_deref(), Some("burst"));
        let field_ref = env[1].value_from.as_ref().unwrap().field_ref.as_ref();
        assert_eq!(field_ref.unwrap().field_path, "metadata.name");
        let port = &c.ports.as_ref().unwrap()[0];
        assert_eq!((port.container_port, port.host_port), (80, None));
        assert_eq!(
            c.resources.as_ref().unwrap().limits.as_ref().unwrap()["cpu"],
            Quantity("500m".into())
        );
    }

    fn mount(name: &str, path: &str) -> VolumeMount {
        VolumeMount {
            name: name.into(),
            mount_path: path.into(),
            ..VolumeMount::default()
        }
    }

    #[test]
    fn mounts_keep_name_path_sub_path_and_read_only_and_the_api_access_volume_is_dropped() {
        let conf = volume("conf", |v| {
            v.config_map = Some(ConfigMapVolumeSource {
                name: "app-config".into(),
                ..ConfigMapVolumeSource::default()
            })
        });
        let api_access = volume("kube-api-access-x7k2p", |v| {
            v.projected = Some(ProjectedVolumeSource::default())
        });
        let kept = VolumeMount {
            sub_path: Some("nginx.conf".into()),
            read_only: Some(true),
            mount_propagation: Some("HostToContainer".into()),
            ..mount("conf", "/etc/nginx/nginx.conf")
        };
        let pod = pod_with(
            vec![conf, api_access],
            vec![
                kept.clone(),
                mount(
                    "kube-api-access-x7k2p",
                    "/var/run/secrets/kubernetes.io/serviceaccount",
                ),
            ],
        );
        let cci = to_cci_pod(&pod, "c1", LATEST, None).unwrap();
        assert_eq!(cci.spec.volumes.as_ref().unwrap().len(), 1);
        assert_eq!(
            cci.spec.containers[0].volume_mounts.as_ref().unwrap(),
            &vec![VolumeMount {
                mount_propagation: None,
                ..kept
            }]
        );
        assert!(
            !references(&pod, None)
                .keys()
                .any(|k| k.name.contains("token"))
        );
    }

    #[test]
    fn env_references_are_renamed_and_field_and_resource_refs_kept() {
        let mut pod = pod_with(vec![], vec![]);
        let c = &mut pod.spec.as_mut().unwrap().containers[0];
        let resource_ref = EnvVar {
            name: "CPU".into(),
            value: None,
            value_from: Some(EnvVarSource {
                resource_field_ref: Some(ResourceFieldSelector {
                    resource: "limits.cpu".into(),
                    ..ResourceFieldSelector::default()
                }),
                ..EnvVarSource::default()
            }),
        };
        c.env = Some(vec![
            env_from_ref("MODE", true),
            env_from_ref("PW", false),
            resource_ref.clone(),
        ]);
        c.env_from = Some(vec![
            EnvFromSource {
                prefix: Some("APP_".into()),
                config_map_ref: Some(ConfigMapEnvSource {
                    name: "app-config".into(),
                    optional: None,
                }),
                secret_ref: None,
            },
            EnvFromSource {
                prefix: None,
                config_map_ref: None,
                secret_ref: Some(SecretEnvSource {
                    name: "db".into(),
                    optional: Some(true),
                }),
            },
        ]);
        let cci = to_cci_pod(&pod, "c1", LATEST, None).unwrap();
        let c = &cci.spec.containers[0];
        let env = c.env.as_ref().unwrap();
        let cm = env[0]
            .value_from
            .as_ref()
            .unwrap()
            .config_map_key_ref
            .as_ref();
        assert_eq!(
            cm.unwrap(),
            &ConfigMapKeySelector {
                name: "shop.app-config".into(),
                key: "mode".into(),
                optional: Some(true)
            }
        );
        let secret = env[1].value_from.as_ref().unwrap().secret_key_ref.as_ref();
        assert_eq!(secret.unwrap().name, "shop.db");
        assert_eq!(env[2], resource_ref);
        let from = c.env_from.as_ref().unwrap();
        assert_eq!(from[0].prefix.as_deref(), Some("APP_"));
        assert_eq!(
            from[0].config_map_ref.as_ref().unwrap().name,
            "shop.app-config"
        );
        assert_eq!(
            from[1].secret_ref.as_ref().unwrap(),
            &SecretEnvSource {
                name: "shop.db".into(),
                optional: Some(true)
            }
        );
    }

    #[test]
    fn a_sidecar_init_container_keeps_its_restart_policy_and_a_plain_one_gets_none() {
        let mut pod = pod_with(vec![], vec![]);
        let init = |name: &str, restart_policy: Option<&str>| Container {
            name: name.into(),
            image: Some("busybox".into()),
            restart_policy: restart_policy.map(Into::into),
            ..Container::default()
        };
        pod.spec.as_mut().unwrap().init_containers =
            Some(vec![init("proxy", Some("Always")), init("setup", None)]);
        let cci = to_cci_pod(&pod, "c1", LATEST, None).unwrap();
        let policies: Vec<_> = cci
            .spec
            .init_containers
            .unwrap()
            .into_iter()
            .map(|c| c.restart_policy)
            .collect();
        assert_eq!(
            policies,
            [Some("Always".to_string()), None],
            "a native sidecar runs for the pod's life"
        );
    }

    #[test]
    fn init_containers_are_translated_like_app_containers() {
        let mut pod = pod_with(vec![], vec![]);
        pod.spec.as_mut().unwrap().init_containers = Some(vec![Container {
            name: "setup".into(),
            image: Some("busybox".into()),
            env: Some(vec![env_from_ref("PW", false)]),
            resources: Some(resources(&[("cpu", "250m", "1"), ("memory", "", "2Gi")])),
            volume_mounts: Some(vec![mount("kube-api-access-abcde", "/var/run")]),
            security_context: Some(Default::default()),
            ..Container::default()
        }]);
        let cci = to_cci_pod(&pod, "c1", LATEST, None).unwrap();
        let init = &cci.spec.init_containers.as_ref().unwrap()[0];
        assert_eq!(init.name, "setup");
        assert_eq!(init.security_context, None);
        assert_eq!(init.volume_mounts, None, "the api access mount is dropped");
        let pw = init.env.as_ref().unwrap()[0].value_from.as_ref().unwrap();
        assert_eq!(pw.secret_key_ref.as_ref().unwrap().name, "shop.db");
        let r = init.resources.as_ref().unwrap();
        assert_eq!(r.requests, r.limits);
        assert_eq!(r.limits.as_ref().unwrap()["cpu"], Quantity("250m".into()));
        // The init container (limit 1 vCPU / 2 GiB) is larger than the app container; CCI gets
        // only its request, so the engine pins the size.
        assert_eq!(size_on_cci(&cci), "1_2");
        let annotations = cci.metadata.annotations.unwrap();
        assert_eq!(annotations[ANNOTATION_POD_SIZE_SPECS], "1_2");
    }

    #[rstest]
    #[case::equal(("500m", "500m"), "500m")]
    #[case::limit_larger(("250m", "1"), "250m")]
    #[case::request_only(("300m", ""), "300m")]
    #[case::limit_only(("", "2"), "2")]
    fn limits_and_requests_both_become_the_request_or_else_the_limit(
        #[case] (request, limit): (&str, &str),
        #[case] both: &str,
    ) {
        let mut pod = pod_with(vec![], vec![]);
        pod.spec.as_mut().unwrap().containers[0].resources = Some(resources(&[
            ("cpu", request, limit),
            ("memory", "1Gi", "2Gi"),
        ]));
        let cci = to_cci_pod(&pod, "c1", LATEST, None).unwrap();
        let r = cci.spec.containers[0].resources.clone().unwrap();
        assert_eq!(r.requests, r.limits);
        let requests = r.requests.unwrap();
        assert_eq!(requests["cpu"], Quantity(both.into()));
        assert_eq!(requests["memory"], Quantity("1Gi".into()));
    }
}
