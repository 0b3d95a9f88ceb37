//! Cluster volume → CCI volume: the types CCI mounts, carried over with mirrored names; the
//! release gates of downwardAPI, projected and the `/etc/localtime` hostPath; the projected
//! `serviceAccountToken` source made the token Secret's `token` key; and a refusal, worded like
//! the webhook's, for everything else.

use burst_rules::release::{Gate, Release};
use k8s_openapi::api::core::v1::{
    ConfigMapProjection, ConfigMapVolumeSource, HostPathVolumeSource, KeyToPath,
    PersistentVolumeClaimVolumeSource, ProjectedVolumeSource, SecretProjection, SecretVolumeSource,
    Volume, VolumeProjection,
};

use super::{TOKEN_KEY, mirror_name};
use crate::breakage::{self, Breakage};

/// The only hostPath a CCI pod may mount (`BEHAVIOR.md` §5, from release 1.5.9).
pub const LOCALTIME_PATH: &str = "/etc/localtime";

/// The CCI volume for cluster volume `v` of a pod in `namespace` whose service account's token
/// Secret is `token_secret`, or why CCI cannot mount it (at `release`).
pub(super) fn to_cci_volume(
    namespace: &str,
    token_secret: &str,
    release: Release,
    v: &Volume,
) -> std::result::Result<Volume, String> {
    let rename = |name: &str| mirror_name(namespace, name);
    // Worded like the webhook's refusals: the volume, the gate, what to do.
    let gated = |gate: Gate, what: &str| {
        (!breakage::judged_at(release, gate).allows(gate)).then(|| {
            format!(
                "{what} volume {:?} cannot run on CCI: it {}; upgrade the add-on, or remove the volume",
                v.name,
                gate.explain(release)
            )
        })
    };
    let out = Volume {
        name: v.name.clone(),
        ..Volume::default()
    };
    if let Some(s) = &v.empty_dir {
        let mut s = s.clone();
        if breakage::is(Breakage::EmptyDirSizeLimitDropped) {
            s.size_limit = None;
        }
        return Ok(Volume {
            empty_dir: Some(s),
            ..out
        });
    }
    if let Some(s) = &v.host_path {
        if s.path != LOCALTIME_PATH {
            return Err(format!(
                "hostPath volume {:?} (path {:?}) cannot run on CCI, a shared cluster; only {LOCALTIME_PATH:?} is passed through: remove it or replace it with coordinator.cci.io/hostpath-replacement",
                v.name, s.path
            ));
        }
        if let Some(refusal) = gated(Gate::EtcLocaltimeHostPath, "hostPath") {
            return Err(refusal);
        }
        return Ok(Volume {
            host_path: Some(HostPathVolumeSource {
                path: s.path.clone(),
                type_: s.type_.clone(),
            }),
            ..out
        });
    }
    if let Some(s) = &v.config_map {
        return Ok(Volume {
            config_map: Some(ConfigMapVolumeSource {
                name: rename(&s.name),
                ..s.clone()
            }),
            ..out
        });
    }
    if let Some(s) = &v.secret {
        return Ok(Volume {
            secret: Some(SecretVolumeSource {
                secret_name: s.secret_name.as_deref().map(rename),
                ..s.clone()
            }),
            ..out
        });
    }
    if let Some(s) = &v.persistent_volume_claim {
        return Ok(Volume {
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: rename(&s.claim_name),
                read_only: s.read_only,
            }),
            ..out
        });
    }
    if let Some(s) = &v.downward_api {
        if let Some(refusal) = gated(Gate::DownwardApiAndProjected, "downwardAPI") {
            return Err(refusal);
        }
        return Ok(Volume {
            downward_api: Some(s.clone()),
            ..out
        });
    }
    if let Some(p) = &v.projected {
        if let Some(refusal) = gated(Gate::DownwardApiAndProjected, "projected") {
            return Err(refusal);
        }
        let sources = p
            .sources
            .iter()
            .flatten()
            .map(|s| to_cci_projection(&v.name, &rename, token_secret, s))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        return Ok(Volume {
            projected: Some(ProjectedVolumeSource {
                default_mode: p.default_mode,
                sources: Some(sources),
            }),
            ..out
        });
    }
    // NB: name the type from the wire form, so every present and future type reads right.
    let kind = serde_json::to_value(v)
        .ok()
        .and_then(|j| {
            j.as_object()
                .and_then(|o| o.keys().find(|k| *k != "name").cloned())
        })
        .unwrap_or_else(|| "untyped".into());
    Err(format!(
        "{kind} volume {:?} cannot run on CCI: CCI mounts emptyDir, configMap, secret, downwardAPI, projected, persistentVolumeClaim (SFS, SFS Turbo) and the hostPath {LOCALTIME_PATH}",
        v.name
    ))
}

fn to_cci_projection(
    volume: &str,
    rename: &impl Fn(&str) -> String,
    token_secret: &str,
    s: &VolumeProjection,
) -> std::result::Result<VolumeProjection, String> {
    if let Some(c) = &s.config_map {
        return Ok(VolumeProjection {
            config_map: Some(ConfigMapProjection {
                name: rename(&c.name),
                ..c.clone()
            }),
            ..VolumeProjection::default()
        });
    }
    if let Some(c) = &s.secret {
        return Ok(VolumeProjection {
            secret: Some(SecretProjection {
                name: rename(&c.name),
                ..c.clone()
            }),
            ..VolumeProjection::default()
        });
    }
    if let Some(d) = &s.downward_api {
        return Ok(VolumeProjection {
            downward_api: Some(d.clone()),
            ..VolumeProjection::default()
        });
    }
    if let Some(t) = &s.service_account_token
        && breakage::is(Breakage::ProjectedTokenPassedThrough)
    {
        return Ok(VolumeProjection {
            service_account_token: Some(t.clone()),
            ..VolumeProjection::default()
        });
    }
    if let Some(t) = &s.service_account_token {
        // §5: the long-lived token of the service account's token Secret; expirationSeconds and
        // audience have no effect.
        return Ok(VolumeProjection {
            secret: Some(SecretProjection {
                name: rename(token_secret),
                items: Some(vec![KeyToPath {
                    key: TOKEN_KEY.into(),
                    path: t.path.clone(),
                    mode: None,
                }]),
                optional: None,
            }),
            ..VolumeProjection::default()
        });
    }
    Err(format!(
        "projected volume {volume:?}: clusterTrustBundle and podCertificate sources cannot run on CCI"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::translate::fixtures::{LATEST, cluster_pod, pod_with, volume};
    use crate::translate::to_cci_pod;
    use k8s_openapi::api::core::v1::{
        ClusterTrustBundleProjection, DownwardAPIProjection, DownwardAPIVolumeFile,
        DownwardAPIVolumeSource, EmptyDirVolumeSource, NFSVolumeSource, ObjectFieldSelector, Pod,
        ServiceAccountTokenProjection,
    };
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
    use rstest::rstest;

    fn only_volume(pod: &Pod) -> Volume {
        let cci = to_cci_pod(pod, "c1", LATEST, Some("default-long-lived")).unwrap();
        let volumes = cci.spec.volumes.unwrap();
        assert_eq!(volumes.len(), 1, "{volumes:?}");
        volumes.into_iter().next().unwrap()
    }

    fn key_to_path(key: &str, path: &str) -> KeyToPath {
        KeyToPath {
            key: key.into(),
            path: path.into(),
            mode: None,
        }
    }

    #[rstest]
    #[case::empty_dir(
        volume("scratch", |v| v.empty_dir = Some(EmptyDirVolumeSource {
            medium: Some("Memory".into()), size_limit: Some(Quantity("1Gi".into())),
        })),
        volume("scratch", |v| v.empty_dir = Some(EmptyDirVolumeSource {
            medium: Some("Memory".into()), size_limit: Some(Quantity("1Gi".into())),
        })),
    )]
    #[case::localtime(
        volume("tz", |v| v.host_path = Some(HostPathVolumeSource {
            path: "/etc/localtime".into(), type_: Some("File".into()),
        })),
        volume("tz", |v| v.host_path = Some(HostPathVolumeSource {
            path: "/etc/localtime".into(), type_: Some("File".into()),
        })),
    )]
    #[case::config_map(
        volume("conf", |v| v.config_map = Some(ConfigMapVolumeSource {
            name: "app-config".into(), items: Some(vec![key_to_path("a", "b")]),
            default_mode: Some(0o440), optional: Some(true),
        })),
        volume("conf", |v| v.config_map = Some(ConfigMapVolumeSource {
            name: "shop.app-config".into(), items: Some(vec![key_to_path("a", "b")]),
            default_mode: Some(0o440), optional: Some(true),
        })),
    )]
    #[case::secret(
        volume("creds", |v| v.secret = Some(SecretVolumeSource {
            secret_name: Some("db".into()), items: Some(vec![key_to_path("pw", "password")]),
            default_mode: Some(0o400), optional: None,
        })),
        volume("creds", |v| v.secret = Some(SecretVolumeSource {
            secret_name: Some("shop.db".into()), items: Some(vec![key_to_path("pw", "password")]),
            default_mode: Some(0o400), optional: None,
        })),
    )]
    #[case::claim(
        volume("data", |v| v.persistent_volume_claim = Some(PersistentVolumeClaimVolumeSource {
            claim_name: "shared".into(), read_only: Some(true),
        })),
        volume("data", |v| v.persistent_volume_claim = Some(PersistentVolumeClaimVolumeSource {
            claim_name: "shop.shared".into(), read_only: Some(true),
        })),
    )]
    #[case::downward_api(
        volume("info", |v| v.downward_api = Some(downward())),
        volume("info", |v| v.downward_api = Some(downward())),
    )]
    #[case::projected(
        volume("bundle", |v| v.projected = Some(ProjectedVolumeSource {
            default_mode: Some(0o444),
            sources: Some(vec![
                VolumeProjection { config_map: Some(ConfigMapProjection {
                    name: "app-config".into(), items: None, optional: Some(true) }),
                    ..VolumeProjection::default() },
                VolumeProjection { secret: Some(SecretProjection {
                    name: "db".into(), items: Some(vec![key_to_path("pw", "pw")]), optional: None }),
                    ..VolumeProjection::default() },
                VolumeProjection { downward_api: Some(DownwardAPIProjection {
                    items: downward().items }), ..VolumeProjection::default() },
                VolumeProjection { service_account_token: Some(ServiceAccountTokenProjection {
                    path: "sa/token".into(), expiration_seconds: Some(600),
                    audience: Some("vault".into()) }),
                    ..VolumeProjection::default() },
            ]),
        })),
        volume("bundle", |v| v.projected = Some(ProjectedVolumeSource {
            default_mode: Some(0o444),
            sources: Some(vec![
                VolumeProjection { config_map: Some(ConfigMapProjection {
                    name: "shop.app-config".into(), items: None, optional: Some(true) }),
                    ..VolumeProjection::default() },
                VolumeProjection { secret: Some(SecretProjection {
                    name: "shop.db".into(), items: Some(vec![key_to_path("pw", "pw")]), optional: None }),
                    ..VolumeProjection::default() },
                VolumeProjection { downward_api: Some(DownwardAPIProjection {
                    items: downward().items }), ..VolumeProjection::default() },
                VolumeProjection { secret: Some(SecretProjection {
                    name: "shop.default-long-lived".into(),
                    items: Some(vec![key_to_path("token", "sa/token")]), optional: None }),
                    ..VolumeProjection::default() },
            ]),
        })),
    )]
    fn each_volume_type_cci_mounts_is_carried_over_with_mirrored_names(
        #[case] cluster: Volume,
        #[case] expected: Volume,
    ) {
        assert_eq!(only_volume(&pod_with(vec![cluster], vec![])), expected);
    }

    fn downward() -> DownwardAPIVolumeSource {
        DownwardAPIVolumeSource {
            default_mode: None,
            items: Some(vec![DownwardAPIVolumeFile {
                path: "labels".into(),
                field_ref: Some(ObjectFieldSelector {
                    field_path: "metadata.labels".into(),
                    api_version: None,
                }),
                ..DownwardAPIVolumeFile::default()
            }]),
        }
    }

    #[rstest]
    #[case::other_host_path(
        volume("logs", |v| v.host_path = Some(HostPathVolumeSource { path: "/var/log".into(), type_: None })),
        "hostPath volume \"logs\" (path \"/var/log\") cannot run on CCI"
    )]
    #[case::nfs(
        volume("share", |v| v.nfs = Some(NFSVolumeSource { path: "/x".into(), server: "nas".into(), read_only: None })),
        "nfs volume \"share\" cannot run on CCI"
    )]
    #[case::untyped(volume("nothing", |_| {}), "untyped volume \"nothing\"")]
    #[case::trust_bundle(
        volume("ca", |v| v.projected = Some(ProjectedVolumeSource { default_mode: None, sources: Some(vec![
            VolumeProjection { cluster_trust_bundle: Some(ClusterTrustBundleProjection {
                path: "ca.pem".into(), ..ClusterTrustBundleProjection::default() }),
                ..VolumeProjection::default() }]) })),
        "clusterTrustBundle and podCertificate sources cannot run on CCI"
    )]
    fn volumes_cci_cannot_mount_are_refused_naming_the_volume(
        #[case] cluster: Volume,
        #[case] hint: &str,
    ) {
        let err = to_cci_pod(&pod_with(vec![cluster], vec![]), "c1", LATEST, None).unwrap_err();
        assert!(err.to_string().contains(hint), "{err}");
        assert!(matches!(
            vk::ProviderError::from(err),
            vk::ProviderError::InvalidInput(_)
        ));
    }

    fn localtime() -> Volume {
        volume("tz", |v| {
            v.host_path = Some(HostPathVolumeSource {
                path: LOCALTIME_PATH.into(),
                type_: None,
            });
        })
    }

    fn projected_config() -> Volume {
        volume("bundle", |v| {
            v.projected = Some(ProjectedVolumeSource {
                default_mode: None,
                sources: Some(vec![VolumeProjection {
                    config_map: Some(ConfigMapProjection {
                        name: "app-config".into(),
                        items: None,
                        optional: None,
                    }),
                    ..VolumeProjection::default()
                }]),
            });
        })
    }

    #[rstest]
    #[case::localtime_before(
        localtime(),
        "1.5.8",
        Some("requires add-on release >= 1.5.9; this is 1.5.8")
    )]
    #[case::localtime_at(localtime(), "1.5.9", None)]
    #[case::downward_api_before(
        volume("info", |v| v.downward_api = Some(downward())),
        "1.3.24",
        Some("downwardAPI volume \"info\" cannot run on CCI: it requires add-on release >= 1.3.25; this is 1.3.24")
    )]
    #[case::downward_api_at(volume("info", |v| v.downward_api = Some(downward())), "1.3.25", None)]
    #[case::projected_before(projected_config(), "1.3.24", Some("projected volume \"bundle\""))]
    #[case::projected_at(projected_config(), "1.3.25", None)]
    fn release_gated_volumes_follow_the_engines_release_through_the_gate_table(
        #[case] cluster: Volume,
        #[case] release: &str,
        #[case] refusal: Option<&str>,
    ) {
        let pod = pod_with(vec![cluster], vec![]);
        let result = to_cci_pod(&pod, "c1", release.parse().unwrap(), None);
        match refusal {
            None => assert_eq!(result.unwrap().spec.volumes.unwrap().len(), 1),
            Some(hint) => {
                let err = result.unwrap_err();
                assert!(err.to_string().contains(hint), "{err}");
                assert!(matches!(
                    vk::ProviderError::from(err),
                    vk::ProviderError::InvalidInput(_)
                ));
            }
        }
    }

    #[test]
    fn the_injected_api_access_volume_is_dropped_whatever_the_release() {
        let mut pod = cluster_pod("shop", "web-0");
        pod.spec.as_mut().unwrap().volumes = Some(vec![volume("kube-api-access-x1y2z", |v| {
            v.projected = Some(ProjectedVolumeSource::default());
        })]);
        let cci = to_cci_pod(&pod, "c1", Release::new(1, 3, 0), None).unwrap();
        assert_eq!(cci.spec.volumes, None);
    }
}
