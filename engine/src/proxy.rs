//! The network-interconnect proxy's registration on CCI (BEHAVIOR.md §10).
//!
//! A CCI pod reaches a cluster Service only through a [`ProxyRegistration`] in its namespace
//! that forwards the Service and speaks the pod's sidecar protocol. The add-on's `proxy`
//! component keeps one registration, [`REGISTRATION_NAME`] in `bursting-{clusterID}`,
//! forwarding every Service (`*`) and speaking the protocols of its release ([`protocols`]):
//! `v1` before 1.5.18, `v1` and `v2` from 1.5.18 ([`Gate::SidecarV2`]). Its `endpoint` says
//! where sidecars open their tunnels: the proxy's own data path ([`crate::tunnel`]), which
//! refuses the protocols it does not speak as well.
//!
//! Each replica writes the endpoint it was told to advertise. With one address for all of them
//! (a Service in front of the replicas) they agree; with each replica's own pod address they
//! take turns as the last writer, every one of them a working endpoint.
//!
//! [`run`] re-asserts the registration every resync interval, so that
//!
//! - after an upgrade or a rollback the newest running proxy's protocols win within one
//!   interval (while old and new proxies overlap in a rolling update, the last writer wins; the
//!   old one stops soon). A rollback below 1.5.18 thus cuts pods burst under `>= 1.5.18` off
//!   from Services, as the seed documents (§9);
//! - a registration deleted by hand comes back.
//!
//! The proxy never deletes its registration: a rolling upgrade replaces the proxy pod, and
//! removing the registration in between would cut every burst pod off for a moment. The
//! uninstall gc ([`crate::gc`]) removes it.
//!
//! The namespace is ensured (as the virtual kubelet ensures it) only until the first
//! registration succeeds. Afterwards a vanished namespace is not re-created by the proxy: during
//! an uninstall the gc job deletes it, and a proxy still running then must not bring it back.
//! Once the virtual kubelet re-creates it, the next resync registers again.

use std::collections::BTreeMap;
use std::time::Duration;

use burst_rules::release::{Gate, Release};
use cci_api::{
    ANNOTATION_RELEASE, API_VERSION, LABEL_CLUSTER_ID, ProxyRegistration, ProxyRegistrationSpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::Result;
use crate::cci::CciClient;
use crate::translate::{SIDECAR_PROTOCOL_V1, SIDECAR_PROTOCOL_V2};

/// Name of the proxy's registration in the cluster's CCI namespace.
pub const REGISTRATION_NAME: &str = "cluster-proxy";
/// The collection of proxy registrations in CCI API paths.
pub const PROXY_REGISTRATIONS: &str = "proxyregistrations";
/// How often the registration is re-asserted unless told otherwise (`--resync-secs`).
pub const DEFAULT_RESYNC: Duration = Duration::from_secs(10);
/// The Services the proxy forwards: all of them.
pub const ALL_SERVICES: &str = "*";
/// How many times a write that lost a race (409) is retried from a fresh read.
const CONFLICT_RETRIES: usize = 5;

/// The sidecar protocols a proxy of `release` speaks: [`SIDECAR_PROTOCOL_V1`], and
/// [`SIDECAR_PROTOCOL_V2`] too when the release allows [`Gate::SidecarV2`]. The new proxy still
/// speaks v1, so pods burst before an upgrade keep reaching Services.
pub fn protocols(release: Release) -> Vec<String> {
    let mut protocols = vec![SIDECAR_PROTOCOL_V1.to_string()];
    if release.allows(Gate::SidecarV2)
        && !crate::breakage::is(crate::breakage::Breakage::ProxySpeaksV1Only)
    {
        protocols.push(SIDECAR_PROTOCOL_V2.to_string());
    }
    protocols
}

/// The registration a proxy of `release` keeps for cluster `cluster_id`: labelled with the
/// cluster ID, annotated with the release, forwarding every Service, reached at `endpoint`
/// (`IP:port`; `None` registers no data path).
pub fn registration(
    cluster_id: &str,
    release: Release,
    data_path: Option<&DataPath>,
) -> ProxyRegistration {
    ProxyRegistration {
        api_version: API_VERSION.into(),
        kind: "ProxyRegistration".into(),
        metadata: ObjectMeta {
            name: Some(REGISTRATION_NAME.into()),
            namespace: Some(cci_api::namespace_for_cluster(cluster_id)),
            labels: Some(BTreeMap::from([(
                LABEL_CLUSTER_ID.to_string(),
                cluster_id.to_string(),
            )])),
            annotations: Some(BTreeMap::from([(
                ANNOTATION_RELEASE.to_string(),
                release.to_string(),
            )])),
            ..ObjectMeta::default()
        },
        spec: ProxyRegistrationSpec {
            protocols: protocols(release),
            services: vec![ALL_SERVICES.to_string()],
            endpoint: data_path.map(|d| d.endpoint.clone()),
            tunnel_key: data_path.map(|d| d.key.clone()),
        },
    }
}

/// Where sidecars open their tunnels and the key they present (see [`crate::tunnel`]).
#[derive(Clone, PartialEq, Eq)]
pub struct DataPath {
    /// `IP:port` of the tunnels.
    pub endpoint: String,
    /// The key a tunnel request must carry ([`crate::tunnel::key_for`]).
    pub key: String,
}

impl std::fmt::Debug for DataPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataPath")
            .field("endpoint", &self.endpoint)
            .field("key", &"(redacted)")
            .finish()
    }
}

/// What [`register`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Registered {
    /// There was no registration; it was created.
    Created,
    /// A registration with other protocols, Services, labels or release was replaced.
    Updated {
        /// The protocols it had.
        from: Vec<String>,
    },
    /// The registration was as wanted already.
    Unchanged,
}

/// Whether `existing` says everything `wanted` says (extra labels or annotations are kept).
fn matches(existing: &ProxyRegistration, wanted: &ProxyRegistration) -> bool {
    let contains = |have: &Option<BTreeMap<String, String>>,
                    want: &Option<BTreeMap<String, String>>| {
        want.iter()
            .flatten()
            .all(|(k, v)| have.as_ref().and_then(|h| h.get(k)) == Some(v))
    };
    existing.spec == wanted.spec
        && contains(&existing.metadata.labels, &wanted.metadata.labels)
        && contains(&existing.metadata.annotations, &wanted.metadata.annotations)
}

/// Create or update the registration of cluster `cluster_id`'s proxy as a proxy of `release`
/// reached at `endpoint` keeps it ([`registration`]). A replace carries the `resourceVersion`
/// read, so a concurrent writer is never overwritten blindly: on a conflict the registration is
/// read again and the write retried. The namespace must exist (a 404 error otherwise).
pub async fn register(
    cci: &CciClient,
    cluster_id: &str,
    release: Release,
    data_path: Option<&DataPath>,
) -> Result<Registered> {
    let namespace = cci_api::namespace_for_cluster(cluster_id);
    let wanted = registration(cluster_id, release, data_path);
    let mut attempt = 0;
    loop {
        attempt += 1;
        let outcome = match cci
            .get_object::<ProxyRegistration>(&namespace, PROXY_REGISTRATIONS, REGISTRATION_NAME)
            .await
        {
            Ok(existing) if matches(&existing, &wanted) => return Ok(Registered::Unchanged),
            Ok(existing) => {
                let mut replacement = wanted.clone();
                replacement.metadata.resource_version = existing.metadata.resource_version;
                cci.replace_object(
                    &namespace,
                    PROXY_REGISTRATIONS,
                    REGISTRATION_NAME,
                    &replacement,
                )
                .await
                .map(|_| Registered::Updated {
                    from: existing.spec.protocols,
                })
            }
            Err(e) if e.code() == Some(404) => cci
                .create_object(&namespace, PROXY_REGISTRATIONS, &wanted)
                .await
                .map(|_| Registered::Created),
            Err(e) => return Err(e),
        };
        match outcome {
            // A write that raced another proxy's (stale resourceVersion, or created meanwhile).
            Err(e) if e.code() == Some(409) && attempt < CONFLICT_RETRIES => {
                tracing::debug!(attempt, error = %e, "proxy registration changed meanwhile; reading it again");
            }
            other => return other,
        }
    }
}

/// Keep cluster `cluster_id`'s proxy registered as a proxy of `release` reached at `endpoint`
/// (see the module docs): register now, then every `resync`. `on_first_registered` is called
/// once, after the first successful registration. Failures are logged and retried at the next
/// interval. Runs until dropped; never deletes the registration.
pub async fn run(
    cci: &CciClient,
    cluster_id: &str,
    release: Release,
    data_path: Option<&DataPath>,
    resync: Duration,
    on_first_registered: impl FnOnce(),
) {
    let namespace = cci_api::namespace_for_cluster(cluster_id);
    let mut on_first_registered = Some(on_first_registered);
    let mut ticks = tokio::time::interval(resync);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let first = on_first_registered.is_some();
        if first && let Err(e) = cci.ensure_cluster_namespace(cluster_id).await {
            tracing::warn!(%namespace, error = %e, "could not ensure the CCI namespace yet; retrying");
            continue;
        }
        match register(cci, cluster_id, release, data_path).await {
            Ok(Registered::Created) => tracing::info!(
                %namespace,
                name = REGISTRATION_NAME,
                protocols = ?protocols(release),
                %release,
                endpoint = data_path.map_or("none", |d| d.endpoint.as_str()),
                "proxy registration created"
            ),
            Ok(Registered::Updated { from }) => tracing::info!(
                %namespace,
                name = REGISTRATION_NAME,
                ?from,
                to = ?protocols(release),
                %release,
                "proxy registration updated"
            ),
            Ok(Registered::Unchanged) => {
                tracing::debug!(%namespace, name = REGISTRATION_NAME, "proxy registration as wanted");
            }
            Err(e) => {
                let hint = if e.code() == Some(404) && !first {
                    " (the namespace is gone; the proxy does not re-create it)"
                } else {
                    ""
                };
                tracing::warn!(%namespace, error = %e, "could not assert the proxy registration{hint}; retrying");
                continue;
            }
        }
        if let Some(callback) = on_first_registered.take() {
            callback();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    fn at(endpoint: &str) -> DataPath {
        DataPath {
            endpoint: endpoint.into(),
            key: "k".into(),
        }
    }

    #[rstest]
    #[case::before_the_new_sidecar("1.5.17", &["v1"])]
    #[case::with_the_new_sidecar("1.5.18", &["v1", "v2"])]
    #[case::later("1.6.3", &["v1", "v2"])]
    fn a_proxy_speaks_v2_as_well_from_1_5_18(#[case] release: &str, #[case] expected: &[&str]) {
        assert_eq!(protocols(release.parse().unwrap()), expected);
    }

    #[test]
    fn the_registration_forwards_every_service_in_the_clusters_namespace() {
        let r = registration("c1", Release::new(1, 5, 18), Some(&at("10.0.0.5:8900")));
        assert_eq!(r.metadata.name.as_deref(), Some("cluster-proxy"));
        assert_eq!(r.spec.endpoint.as_deref(), Some("10.0.0.5:8900"));
        assert_eq!(r.spec.tunnel_key.as_deref(), Some("k"));
        assert_eq!(r.metadata.namespace.as_deref(), Some("bursting-c1"));
        assert_eq!(r.spec.services, ["*"]);
        assert_eq!(r.metadata.labels.unwrap()[LABEL_CLUSTER_ID], "c1");
        assert_eq!(
            r.metadata.annotations.unwrap()[ANNOTATION_RELEASE],
            "1.5.18"
        );
    }

    #[test]
    fn a_registration_matches_when_it_says_everything_wanted_even_with_more_metadata() {
        let wanted = registration("c1", Release::new(1, 5, 18), Some(&at("10.0.0.5:8900")));
        let mut existing = wanted.clone();
        existing.metadata.resource_version = Some("7".into());
        existing
            .metadata
            .labels
            .as_mut()
            .unwrap()
            .insert("extra".into(), "yes".into());
        assert!(matches(&existing, &wanted));
        let older = registration("c1", Release::new(1, 5, 17), Some(&at("10.0.0.5:8900")));
        assert!(!matches(&older, &wanted));
        let elsewhere = registration("c1", Release::new(1, 5, 18), Some(&at("10.0.0.6:8900")));
        assert!(!matches(&elsewhere, &wanted));
        let mut other_key = wanted.clone();
        other_key.spec.tunnel_key = Some("k2".into());
        assert!(
            !matches(&other_key, &wanted),
            "a new credential's key is registered"
        );
        let mut same_protocols_other_release =
            registration("c1", Release::new(1, 5, 19), Some(&at("10.0.0.5:8900")));
        assert_eq!(same_protocols_other_release.spec, wanted.spec);
        assert!(!matches(&same_protocols_other_release, &wanted));
        same_protocols_other_release.spec.services = vec!["shop/web".into()];
        assert!(!matches(&same_protocols_other_release, &wanted));
    }
}
