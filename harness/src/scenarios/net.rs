//! NET: the network interconnect (BEHAVIOR.md §10): NET-01, NET-02.
//!
//! Both bodies change the add-on in `kube-system` and put it back afterwards (`serially`).

use k8s_openapi::api::apps::v1::Deployment;
use kube::api::Api;

use super::BodyFuture;
use super::addon_ops::{burst, move_to, serially};
use super::web::{probe_until, reaches, web_service};
use crate::addon::lifecycle::{self, UninstallOptions};
use crate::addon::render::{self, NAMESPACE};
use crate::progress::Progress;
use crate::scenario::Outcome;
use crate::scenario::Scenario;

/// NET-01: with the network interconnect, a CCI pod reaches a cluster Service and back: its
/// probe goes from the mock (standing in for the pod's sidecar) through the endpoint the
/// add-on's proxy registered, to the Service's pod on the host node, and that pod's own answer
/// (a text made for this scenario) must come back. A proxy that registers and forwards nothing
/// fails here, and so does one that lets the registration claim a protocol its tunnel refuses.
pub fn net_01(s: &Scenario) -> BodyFuture<'_> {
    Box::pin(serially(s, async move {
        let mut on = s.env.addon_defaults().clone();
        on.interconnect = true;
        if !s.env.addon_defaults().interconnect {
            move_to(s, &on).await?;
        }
        let web = web_service(s).await?;
        burst(s, "net-01", 1).await?;
        let answer = reaches(s, "net-01", &web).await?;
        eprintln!("NET-01: {}", answer.trim());
        Ok(Outcome::Passed)
    }))
}

/// NET-02: without the network interconnect (no proxy), a CCI pod cannot reach a cluster
/// Service. The add-on is installed afresh without it, so no registration of an earlier proxy
/// is left on CCI.
pub fn net_02(s: &Scenario) -> BodyFuture<'_> {
    Box::pin(serially(s, async move {
        let mut off = s.env.addon_defaults().clone();
        off.interconnect = false;
        lifecycle::uninstall(
            &s.client,
            s.env.addon_target(),
            &UninstallOptions::default(),
            &Progress::quiet(),
        )
        .await?;
        lifecycle::install(&s.client, &off, s.env.addon_target(), &Progress::quiet()).await?;
        let web = web_service(s).await?;
        burst(s, "net-02", 1).await?;
        let answer = probe_until(s, "net-02", &web.target, false).await?;
        anyhow::ensure!(
            answer.contains("interconnect is off"),
            "unreachable, but for another reason: {answer}"
        );
        let proxies = Api::<Deployment>::namespaced(s.client.clone(), NAMESPACE)
            .get_opt(render::PROXY)
            .await?;
        anyhow::ensure!(
            proxies.is_none(),
            "a proxy Deployment exists without interconnect"
        );
        Ok(Outcome::Passed)
    }))
}
