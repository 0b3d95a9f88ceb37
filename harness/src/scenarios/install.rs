//! Installation and cluster-level rules (BEHAVIOR.md §2): INST-04.
//!
//! Each body asserts the side of a gate the shared environment's release is on
//! ([`crate::env::release`]); the harness keeps its own tiny release compare and never borrows
//! the engine's rules.

use std::time::Duration;

use anyhow::Context as _;
use k8s_openapi::api::core::v1::{Pod, Service};
use kube::api::{Patch, PatchParams, PostParams};

use super::{BodyFuture, POLICY_LABEL, converge};
use crate::catalogue::Outcome;
use crate::fixtures;
use crate::scenario::Scenario;

const PATIENCE: Duration = Duration::from_secs(60);
/// The first release that lets a LoadBalancer Service select burst pods.
const LOAD_BALANCER_FROM: (u32, u32, u32) = (1, 5, 5);

/// Whether the environment's release is at least `min` (`X.Y.Z`, numeric part by part).
fn release_at_least(min: (u32, u32, u32)) -> anyhow::Result<bool> {
    let release = crate::env::release();
    let parts: Vec<u32> = release
        .trim_start_matches('v')
        .split('.')
        .map(str::parse)
        .collect::<Result<_, _>>()
        .with_context(|| format!("release {release:?} is not X.Y.Z"))?;
    let [x, y, z] = parts[..] else {
        anyhow::bail!("release {release:?} is not X.Y.Z");
    };
    Ok((x, y, z) >= min)
}

/// A Service `name` of `type_` selecting `app=web`, port 80.
fn service(name: &str, type_: &str) -> anyhow::Result<Service> {
    Ok(serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name},
        "spec": {"type": type_, "selector": {"app": "web"},
                 "ports": [{"port": 80, "targetPort": 80, "protocol": "TCP"}]}
    }))?)
}

/// Checks a refusal by the webhook names the Service, the rule and the release it needs.
fn check_refusal(
    what: &str,
    result: Result<Service, kube::Error>,
    service: &str,
) -> anyhow::Result<()> {
    let message = match result {
        Ok(_) => anyhow::bail!(
            "{what} was admitted on release {}; expected a refusal (LoadBalancer for burst pods \
             needs 1.5.5)",
            crate::env::release()
        ),
        Err(kube::Error::Api(status)) => status.message.clone(),
        Err(e) => return Err(e).context(what.to_owned()),
    };
    anyhow::ensure!(
        message.contains("denied the request"),
        "{what} failed for another reason than the webhook: {message}"
    );
    for needle in [service, "LoadBalancer", "1.5.5"] {
        anyhow::ensure!(
            message.contains(needle),
            "the refusal of {what} does not mention {needle:?}: {message}"
        );
    }
    Ok(())
}

/// INST-04: a LoadBalancer Service selecting a burst pod is refused before 1.5.5 (on create and
/// on an update to LoadBalancer) and works from 1.5.5; a ClusterIP Service works on every
/// release.
pub fn inst_04(s: &Scenario) -> BodyFuture<'_> {
    Box::pin(async move {
        let mut pod: Pod = fixtures::load("seed/nginx-pod.yaml")?;
        pod.metadata.name = Some("web".into());
        let labels = pod.metadata.labels.get_or_insert_default();
        labels.insert(POLICY_LABEL.into(), "enforce".into());
        labels.insert("app".into(), "web".into());
        s.api::<Pod>()
            .create(&PostParams::default(), &pod)
            .await
            .context("create the enforce pod web")?;
        converge(s, "app=web", 1, PATIENCE).await?;

        let services = s.api::<Service>();
        services
            .create(
                &PostParams::default(),
                &service("web-internal", "ClusterIP")?,
            )
            .await
            .context("create ClusterIP Service web-internal (expected to be admitted)")?;
        anyhow::ensure!(
            services.get_opt("web-internal").await?.is_some(),
            "Service web-internal does not exist after its creation"
        );

        let lb = services
            .create(&PostParams::default(), &service("web-lb", "LoadBalancer")?)
            .await;
        let to_lb = serde_json::json!({"spec": {"type": "LoadBalancer"}});
        if release_at_least(LOAD_BALANCER_FROM)? {
            lb.context("create LoadBalancer Service web-lb (expected to be admitted)")?;
            let got = services
                .get_opt("web-lb")
                .await?
                .context("Service web-lb does not exist after its creation")?;
            anyhow::ensure!(
                got.spec.as_ref().and_then(|s| s.type_.as_deref()) == Some("LoadBalancer"),
                "Service web-lb is not of type LoadBalancer: {:?}",
                got.spec
            );
            services
                .patch(
                    "web-internal",
                    &PatchParams::default(),
                    &Patch::Merge(&to_lb),
                )
                .await
                .context("update Service web-internal to LoadBalancer (expected admitted)")?;
        } else {
            let name = format!("{}/web-lb", s.namespace);
            check_refusal("LoadBalancer Service web-lb", lb, &name)?;
            anyhow::ensure!(
                services.get_opt("web-lb").await?.is_none(),
                "Service web-lb exists after its refusal"
            );
            let update = services
                .patch(
                    "web-internal",
                    &PatchParams::default(),
                    &Patch::Merge(&to_lb),
                )
                .await;
            let name = format!("{}/web-internal", s.namespace);
            check_refusal("the update of web-internal to LoadBalancer", update, &name)?;
            let kept = services
                .get_opt("web-internal")
                .await?
                .context("Service web-internal vanished")?;
            anyhow::ensure!(
                kept.spec.as_ref().and_then(|s| s.type_.as_deref()) == Some("ClusterIP"),
                "Service web-internal changed type despite the refusal: {:?}",
                kept.spec
            );
        }
        Ok(Outcome::Passed)
    })
}
