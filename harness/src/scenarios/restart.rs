//! the API server restarted under a running engine.

use std::collections::BTreeSet;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, PostParams};

use super::{BodyFuture, POLICY_LABEL, cluster_uid_of, converge};
use crate::cluster::{VIRTUAL_NODE, node_ready};
use crate::scenario::Outcome;
use crate::scenario::Scenario;
use crate::{fixtures, wait};

const PATIENCE: Duration = Duration::from_secs(120);
const SELECTOR: &str = "app=r-03";

fn nginx(name: &str) -> anyhow::Result<Pod> {
    let mut pod: Pod = fixtures::load("seed/nginx-pod.yaml")?;
    pod.metadata.name = Some(name.to_owned());
    let labels = pod.metadata.labels.get_or_insert_default();
    labels.insert(POLICY_LABEL.into(), "enforce".into());
    labels.insert("app".into(), "r-03".into());
    Ok(pod)
}

/// The virtual node's lease renewal time, as the API server holds it (`None`: not readable).
async fn renew_time(leases: &Api<Lease>) -> crate::Result<Option<String>> {
    let lease = leases
        .get(VIRTUAL_NODE)
        .await
        .map_err(|source| crate::Error::Kube {
            context: format!("get lease {VIRTUAL_NODE}"),
            source,
        })?;
    Ok(lease
        .spec
        .and_then(|s| s.renew_time)
        .and_then(|t| serde_json::to_string(&t).ok()))
}

/// the kube-apiserver killed (SIGTERM) and started again with the same command line: the
/// engine reconnects (a pod created afterwards bursts), the node lease keeps being renewed, the
/// node stays Ready, and the burst pods are untouched (same UIDs, Running on both sides).
pub fn r_03(s: &Scenario) -> BodyFuture<'_> {
    Box::pin(async move {
        let pods = s.api::<Pod>();
        for name in ["before-0", "before-1"] {
            pods.create(&PostParams::default(), &nginx(name)?).await?;
        }
        let before = converge(s, SELECTOR, 2, PATIENCE).await?;
        let uids: BTreeSet<String> = before
            .iter()
            .filter_map(|p| p.metadata.uid.clone())
            .collect();
        let cci_names_before: BTreeSet<String> = s
            .cci_pods()
            .await?
            .into_iter()
            .filter_map(|p| p.metadata.name)
            .collect();

        let env = s.env;
        tokio::task::spawn_blocking(move || env.restart_api_server()).await??;
        eprintln!("R-03: kube-apiserver restarted");

        // A fresh client: the old one's connections died with the server.
        let client = env.client().await?;
        let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-node-lease");
        let after_restart = wait::until(
            "the restarted API server to answer",
            PATIENCE,
            || async { Ok(Some(renew_time(&leases).await?)) },
            || s.diagnose(),
        )
        .await?;
        wait::until(
            "the engine to renew the node lease after the restart",
            PATIENCE,
            || async {
                let now = renew_time(&leases).await?;
                Ok((now.is_some() && now != after_restart).then_some(()))
            },
            || s.diagnose(),
        )
        .await?;
        let nodes: Api<Node> = Api::all(client.clone());
        wait::until(
            &format!("{VIRTUAL_NODE} Ready after the restart"),
            PATIENCE,
            || async {
                let node = nodes
                    .get(VIRTUAL_NODE)
                    .await
                    .map_err(|source| crate::Error::Kube {
                        context: format!("get node {VIRTUAL_NODE}"),
                        source,
                    })?;
                Ok(node_ready(&node).then_some(()))
            },
            || s.diagnose(),
        )
        .await?;

        // The engine reconnected its watches: a pod created now bursts.
        let pods = Api::<Pod>::namespaced(client, &s.namespace);
        pods.create(&PostParams::default(), &nginx("after-0")?)
            .await?;
        let after = converge(s, SELECTOR, 3, PATIENCE).await?;
        let still: BTreeSet<String> = after
            .iter()
            .filter(|p| p.metadata.name.as_deref() != Some("after-0"))
            .filter_map(|p| p.metadata.uid.clone())
            .collect();
        anyhow::ensure!(
            still == uids,
            "the burst pods changed across the restart: {uids:?} before, {still:?} after"
        );
        let cci = s.cci_pods().await?;
        for name in &cci_names_before {
            let pod = cci
                .iter()
                .find(|p| p.metadata.name.as_ref() == Some(name))
                .ok_or_else(|| anyhow::anyhow!("CCI pod {name} is gone after the restart"))?;
            anyhow::ensure!(
                cluster_uid_of(pod).is_some_and(|u| uids.contains(u)) && super::cci_running(pod),
                "CCI pod {name} no longer stands for the same Running pod"
            );
        }
        Ok(Outcome::Passed)
    })
}
