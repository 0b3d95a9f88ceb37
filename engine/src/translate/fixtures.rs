//! Pods and parts of pods the translation's unit tests build on, shared by the tests of each
//! concern: a cluster pod, one with given volumes and resources, an env variable from a
//! ConfigMap or Secret key, a token volume, and the size CCI gives a translated pod.

use std::collections::BTreeMap;

use burst_rules::flavour::ANNOTATION_POD_SIZE_SPECS;
use burst_rules::release::Release;
use k8s_openapi::api::core::v1::{
    Affinity, ConfigMapKeySelector, Container, ContainerPort, EnvVar, EnvVarSource,
    ObjectFieldSelector, Pod, PodSpec, ProjectedVolumeSource, ResourceRequirements,
    SecretKeySelector, ServiceAccountTokenProjection, Toleration, Volume, VolumeMount,
    VolumeProjection,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

/// The release the engine runs as by default: every gate of the table but the last is open.
pub(super) const LATEST: Release = crate::DEFAULT_RELEASE;

pub(super) fn cluster_pod(namespace: &str, name: &str) -> Pod {
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

pub(super) fn resources(pairs: &[(&str, &str, &str)]) -> ResourceRequirements {
    let side = |limits: bool| {
        let map: BTreeMap<String, Quantity> = pairs
            .iter()
            .map(|&(r, req, lim)| (r, if limits { lim } else { req }))
            .filter(|(_, v)| !v.is_empty())
            .map(|(r, v)| (r.to_string(), Quantity(v.into())))
            .collect();
        (!map.is_empty()).then_some(map)
    };
    ResourceRequirements {
        requests: side(false),
        limits: side(true),
        claims: None,
    }
}

/// A pod of 0.5 vCPU / 1 GiB in namespace `shop` with one app container and `volumes`.
pub(super) fn pod_with(volumes: Vec<Volume>, mounts: Vec<VolumeMount>) -> Pod {
    let mut pod = cluster_pod("shop", "web-0");
    let spec = pod.spec.as_mut().unwrap();
    spec.volumes = Some(volumes);
    spec.containers[0].volume_mounts = Some(mounts);
    spec.containers[0].resources =
        Some(resources(&[("cpu", "500m", "500m"), ("memory", "1Gi", "")]));
    pod
}

pub(super) fn volume(name: &str, set: impl FnOnce(&mut Volume)) -> Volume {
    let mut v = Volume {
        name: name.into(),
        ..Volume::default()
    };
    set(&mut v);
    v
}

pub(super) fn env_from_ref(name: &str, config_map: bool) -> EnvVar {
    let source = if config_map {
        EnvVarSource {
            config_map_key_ref: Some(ConfigMapKeySelector {
                name: "app-config".into(),
                key: "mode".into(),
                optional: Some(true),
            }),
            ..EnvVarSource::default()
        }
    } else {
        EnvVarSource {
            secret_key_ref: Some(SecretKeySelector {
                name: "db".into(),
                key: "pw".into(),
                optional: None,
            }),
            ..EnvVarSource::default()
        }
    };
    EnvVar {
        name: name.into(),
        value: None,
        value_from: Some(source),
    }
}

/// The size CCI gives a translated pod: its containers' rounded up, or the flavour it pins
/// (CCI, not the engine, writes `resource.cci.io/size`).
pub(super) fn size_on_cci(cci: &cci_api::Pod) -> String {
    let pinned = cci
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(ANNOTATION_POD_SIZE_SPECS));
    burst_rules::flavour::size(&cci.spec, pinned.map(String::as_str))
        .unwrap()
        .flavour
        .spec()
}

pub(super) fn token_volume() -> Volume {
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
    })
}
