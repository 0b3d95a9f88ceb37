//! What the scenarios that change the add-on share (INST-01…03, UN, UP, NET, CCI-02, CCI-03):
//! running a body and putting the add-on back afterwards ([`serially`]), moving the add-on to
//! another release, and bursting a Deployment beside the add-on's changes.
//!
//! Every body that changes the add-on in `kube-system` needs the installer, which makes it
//! cluster-wide, so `catalogue::run` runs it alone on its environment; each leaves the add-on as
//! the environment installed it ([`crate::env::Env::restore_addon`]), also when it fails.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use anyhow::Context as _;
use burst_rules::release::Release;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{ListParams, PostParams};

use super::{POLICY_LABEL, cluster_uid_of};
use crate::addon::lifecycle;
use crate::addon::params::InstallParams;
use crate::addon::render;
use crate::progress::Progress;
use crate::scenario::Outcome;
use crate::scenario::Scenario;
use crate::{fixtures, wait};

pub(super) const PATIENCE: Duration = Duration::from_secs(120);

/// Runs `body`, then puts the add-on back as the environment installed it, whether the body
/// passed or not.
pub(crate) async fn serially<'a, F>(s: &'a Scenario, body: F) -> anyhow::Result<Outcome>
where
    F: std::future::Future<Output = anyhow::Result<Outcome>> + Send + 'a,
{
    let outcome = body.await;
    let restored = s.env.restore_addon().await;
    match (outcome, restored) {
        (Ok(o), Ok(())) => Ok(o),
        (Err(e), _) => Err(e),
        (Ok(_), Err(e)) => Err(anyhow::anyhow!(e).context("restoring the add-on afterwards")),
    }
}

/// A Deployment of `replicas` seed nginx pods labelled `enforce` and `app={name}`.
pub(super) async fn burst(s: &Scenario, name: &str, replicas: i32) -> anyhow::Result<Vec<Pod>> {
    let mut deployment: Deployment = fixtures::load("workloads/wl-02-deployment.yaml")?;
    deployment.metadata.name = Some(name.into());
    let spec = deployment.spec.as_mut().context("spec")?;
    spec.replicas = Some(replicas);
    let app = BTreeMap::from([("app".to_owned(), name.to_owned())]);
    spec.selector.match_labels = Some(app.clone());
    let template = spec.template.metadata.get_or_insert_default();
    let labels = template.labels.get_or_insert_default();
    labels.extend(app);
    labels.insert(POLICY_LABEL.into(), "enforce".into());
    s.api::<Deployment>()
        .create(&PostParams::default(), &deployment)
        .await
        .with_context(|| format!("create deployment {name}"))?;
    wait_burst(s, name, usize::try_from(replicas)?).await
}

/// Waits until `n` pods with `app={app}` run on the virtual node, each with a Running CCI pod.
/// (Unlike [`converge`](super::converge), other burst pods of the scenario may exist beside them.)
async fn wait_burst(s: &Scenario, app: &str, n: usize) -> anyhow::Result<Vec<Pod>> {
    let step = |e: anyhow::Error| crate::Error::Step {
        step: format!("read the pods of app={app}"),
        detail: e.to_string(),
    };
    Ok(wait::until(
        &format!("{n} pods (app={app}) Running on the virtual node, each with a Running CCI pod"),
        PATIENCE,
        || async {
            let pods = s
                .api::<Pod>()
                .list(&ListParams::default().labels(&format!("app={app}")))
                .await
                .map_err(|e| step(e.into()))?
                .items;
            let cci = cci_by_uid(s, app).await.map_err(step)?;
            let ready = pods.len() == n
                && pods.iter().all(|p| {
                    super::running_on(render::VIRTUAL_NODE, p)
                        && p.metadata
                            .uid
                            .as_ref()
                            .and_then(|u| cci.get(u))
                            .is_some_and(super::cci_running)
                });
            Ok(ready.then_some(pods))
        },
        || s.diagnose(),
    )
    .await?)
}

/// The CCI pods standing for the scenario's pods with label `app={app}`, by cluster UID.
pub(super) async fn cci_by_uid(
    s: &Scenario,
    app: &str,
) -> anyhow::Result<BTreeMap<String, cci_api::Pod>> {
    let pods = s
        .api::<Pod>()
        .list(&ListParams::default().labels(&format!("app={app}")))
        .await?;
    let uids: BTreeSet<String> = pods
        .items
        .iter()
        .filter_map(|p| p.metadata.uid.clone())
        .collect();
    Ok(s.cci_pods()
        .await?
        .into_iter()
        .filter_map(|p| {
            let uid = cluster_uid_of(&p)?.to_owned();
            uids.contains(&uid).then_some((uid, p))
        })
        .collect())
}

pub(super) async fn move_to(s: &Scenario, params: &InstallParams) -> anyhow::Result<()> {
    lifecycle::upgrade(&s.client, params, s.env.addon_target(), &Progress::quiet())
        .await
        .with_context(|| format!("upgrade the add-on to {}", params.release))
}

pub(super) fn at(release: Release, s: &Scenario) -> InstallParams {
    let mut p = s.env.addon_defaults().clone();
    p.release = release;
    p
}
