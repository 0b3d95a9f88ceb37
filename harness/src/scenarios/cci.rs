//! CCI: the published CCI 2.0 API (BEHAVIOR.md §12), checked on what CCI holds, through its
//! public API only.

use std::time::Duration;

use anyhow::Context as _;
use k8s_openapi::api::core::v1::Pod;
use kube::api::PostParams;

use super::{BodyFuture, cluster_uid_of, converge, pod_with};
use crate::addon::lifecycle;
use crate::addon::params::{overlaps, parse_cidr};
use crate::scenario::{Outcome, Scenario};

/// How long a burst pod may take to run: the Network is made before it, so a first pod waits
/// for that too.
const PATIENCE: Duration = Duration::from_secs(90);

/// CCI-01: before its first pod the cluster's CCI namespace has a Ready Network on the add-on's
/// subnet, and burst pods get their addresses from that subnet.
pub fn cci_01(s: &Scenario) -> BodyFuture<'_> {
    Box::pin(async move {
        // The subnet the add-on was installed with, as its installed state records it.
        let params = lifecycle::state(&s.client)
            .await?
            .context("the add-on is not installed (no state)")?
            .params;
        let pod = pod_with("addressed", serde_json::json!([]), &[])?;
        s.api::<Pod>().create(&PostParams::default(), &pod).await?;
        let pods = converge(s, &format!("{}=enforce", super::POLICY_LABEL), 1, PATIENCE).await?;

        let ns = s.cci_namespace();
        let networks = s.cci().networks(ns).await?;
        let network = networks
            .iter()
            .find(|n| n.subnet_ids().contains(&params.subnet_id.as_str()))
            .with_context(|| {
                format!(
                    "CCI namespace {ns} has no Network on the add-on's subnet {:?}; its networks: {:?}",
                    params.subnet_id,
                    networks
                        .iter()
                        .map(|n| (n.metadata.name.clone(), n.subnet_ids().join(",")))
                        .collect::<Vec<_>>()
                )
            })?;
        let name = network.metadata.name.clone().unwrap_or_default();
        anyhow::ensure!(
            network.is_ready(),
            "network {ns}/{name} is not Ready: {:?}",
            network.status
        );
        let network_created = network
            .metadata
            .creation_timestamp
            .clone()
            .context("the Network has no creationTimestamp")?
            .0;
        let cci_pods = s.cci().pods(ns).await?;
        let first = cci_pods
            .iter()
            .filter_map(|p| p.metadata.creation_timestamp.as_ref().map(|t| (t.0, p)))
            .min_by_key(|(t, _)| *t)
            .context("no CCI pod at all")?;
        anyhow::ensure!(
            network_created <= first.0,
            "network {ns}/{name} was created at {network_created}, after the namespace's first pod {:?} ({})",
            first.1.metadata.name,
            first.0
        );

        let (subnet, prefix) = parse_cidr(&params.subnet_cidr)
            .with_context(|| format!("subnet CIDR {:?}", params.subnet_cidr))?;
        let uid = pods[0].metadata.uid.clone().context("uid")?;
        let on_cci = s
            .cci_pods()
            .await?
            .into_iter()
            .find(|p| cluster_uid_of(p) == Some(uid.as_str()))
            .context("no CCI pod for the burst pod")?;
        for (who, ip) in [
            (
                "the CCI pod",
                on_cci.status.as_ref().and_then(|st| st.pod_ip.clone()),
            ),
            (
                "the cluster pod",
                pods[0].status.as_ref().and_then(|st| st.pod_ip.clone()),
            ),
        ] {
            let ip = ip.with_context(|| format!("{who} has no IP"))?;
            let addr: std::net::Ipv4Addr =
                ip.parse().with_context(|| format!("{who}'s IP {ip:?}"))?;
            anyhow::ensure!(
                overlaps((addr, 32), (subnet, prefix)),
                "{who}'s IP {addr} is not in the add-on's subnet {} ({})",
                params.subnet_id,
                params.subnet_cidr
            );
        }
        Ok(Outcome::Passed)
    })
}
