//! UP: upgrading and rolling back the add-on (BEHAVIOR.md §9): UP-01…UP-03.
//!
//! Every body changes cluster-wide state (the add-on in `kube-system`) and puts the add-on back
//! afterwards (`serially`).

use std::collections::BTreeMap;
use std::time::Duration;

use burst_rules::release::Release;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt as _;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};

use super::addon_ops::{PATIENCE, at, burst, cci_by_uid, move_to, serially};
use super::web::{probe_until, reaches, web_service};
use super::{BodyFuture, POLICY_LABEL, converge};
use crate::addon::params::Spec;
use crate::scenario::Outcome;
use crate::scenario::Scenario;
use crate::{fixtures, wait};

/// The last release with the old sidecar (the one before `Gate::SidecarV2`'s threshold).
const OLD_SIDECAR: Release = Release::new(1, 5, 17);
/// The annotation the engine records the sidecar protocol in.
const SIDECAR_ANNOTATION: &str = "bursting.cci.io/sidecar-protocol";

fn sidecar(pod: &cci_api::Pod) -> &str {
    pod.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(SIDECAR_ANNOTATION))
        .map_or("(none)", String::as_str)
}

/// UP-01: 1.5.17 → this release (≥ 1.5.18) with burst pods running: the same pods on both sides
/// (cluster UIDs and CCI UIDs), their sidecar unchanged (v1); a pod created afterwards gets v2.
pub fn up_01(s: &Scenario) -> BodyFuture<'_> {
    Box::pin(serially(s, async move {
        let release = s.env.release();
        if !crate::gates::Gate::SidecarV2.applies_to(release) {
            return Ok(Outcome::NotApplicable(format!(
                "the sidecar upgrade is 1.5.17 -> 1.5.18 or later; this is {release}"
            )));
        }
        move_to(s, &at(OLD_SIDECAR, s)).await?;
        burst(s, "up-01", 2).await?;
        let before = cci_by_uid(s, "up-01").await?;
        for pod in before.values() {
            anyhow::ensure!(
                sidecar(pod) == "v1",
                "1.5.17 burst a pod with sidecar {}",
                sidecar(pod)
            );
        }
        move_to(s, &at(release, s)).await?;
        // Let the new engine run a few status rounds before comparing.
        let pods = converge(s, "app=up-01", 2, PATIENCE).await?;
        let after = cci_by_uid(s, "up-01").await?;
        let ids = |m: &BTreeMap<String, cci_api::Pod>| -> Vec<(String, Option<String>, String)> {
            m.iter()
                .map(|(k, p)| (k.clone(), p.metadata.uid.clone(), sidecar(p).to_owned()))
                .collect()
        };
        anyhow::ensure!(
            ids(&before) == ids(&after),
            "the upgrade changed burst pods:\nbefore {:?}\nafter  {:?}",
            ids(&before),
            ids(&after)
        );
        anyhow::ensure!(pods.len() == 2, "cluster pods changed");
        s.api::<Deployment>()
            .patch(
                "up-01",
                &PatchParams::default(),
                &Patch::Merge(serde_json::json!({"spec": {"replicas": 3}})),
            )
            .await?;
        converge(s, "app=up-01", 3, PATIENCE).await?;
        let now = cci_by_uid(s, "up-01").await?;
        let new: Vec<&cci_api::Pod> = now
            .iter()
            .filter(|(uid, _)| !before.contains_key(*uid))
            .map(|(_, p)| p)
            .collect();
        anyhow::ensure!(
            new.len() == 1 && sidecar(new[0]) == "v2",
            "the pod created after the upgrade has sidecar {:?}",
            new.iter().map(|p| sidecar(p)).collect::<Vec<_>>()
        );
        // Once more, now that the new engine has shown it works (it burst the third pod): an
        // engine that replaces the old pods' CCI pods at its own pace may not have got to them
        // when they were first compared.
        let kept: BTreeMap<String, cci_api::Pod> = now
            .into_iter()
            .filter(|(uid, _)| before.contains_key(uid))
            .collect();
        anyhow::ensure!(
            ids(&before) == ids(&kept),
            "the new engine replaced burst pods of the old release:\nbefore {:?}\nafter  {:?}",
            ids(&before),
            ids(&kept)
        );
        Ok(Outcome::Passed)
    }))
}

/// UP-02: burst A on this release (≥ 1.5.18), roll back to 1.5.17 and burst B: A can no longer
/// reach a Service, B can; upgrading again restores A; after another rollback, recreating A
/// restores it too.
pub fn up_02(s: &Scenario) -> BodyFuture<'_> {
    Box::pin(serially(s, async move {
        let release = s.env.release();
        if !crate::gates::Gate::SidecarV2.applies_to(release) {
            return Ok(Outcome::NotApplicable(format!(
                "the rollback caveat is from >= 1.5.18 to < 1.5.18; this is {release}"
            )));
        }
        let web = web_service(s).await?;
        let target = web.target.as_str();
        burst(s, "a", 1).await?;
        reaches(s, "a", &web).await?;
        move_to(s, &at(OLD_SIDECAR, s)).await?;
        burst(s, "b", 1).await?;
        let refused = probe_until(s, "a", target, false).await?;
        eprintln!("UP-02: after rollback, A: {refused}");
        reaches(s, "b", &web).await?;
        move_to(s, &at(release, s)).await?;
        reaches(s, "a", &web).await?;
        // Recreating A under the old release restores it as well.
        move_to(s, &at(OLD_SIDECAR, s)).await?;
        probe_until(s, "a", target, false).await?;
        s.api::<Pod>()
            .delete_collection(
                &DeleteParams::default(),
                &ListParams::default().labels("app=a"),
            )
            .await?;
        wait::until(
            "A to be recreated under 1.5.17 (sidecar v1)",
            PATIENCE,
            || async {
                let pods = cci_by_uid(s, "a").await.map_err(|e| crate::Error::Step {
                    step: "find the CCI pod of A".into(),
                    detail: e.to_string(),
                })?;
                Ok(pods
                    .values()
                    .any(|p| sidecar(p) == "v1" && super::cci_running(p))
                    .then_some(()))
            },
            || s.diagnose(),
        )
        .await?;
        reaches(s, "a", &web).await?;
        Ok(Outcome::Passed)
    }))
}

/// UP-03: pods created one after another all through an upgrade: every one admitted, none
/// refused because the webhook was away, every one mutated (it reaches the virtual node).
pub fn up_03(s: &Scenario) -> BodyFuture<'_> {
    Box::pin(serially(s, async move {
        let release = s.env.release();
        // From the release just before, or (at x.y.0) the same release with other resources:
        // either way every component's pods are replaced.
        let mut from = at(release, s);
        if release.patch > 0 {
            from.release = Release::new(release.major, release.minor, release.patch - 1);
        } else {
            from.spec = Spec::Custom {
                replicas: 1,
                cpu: "300m".into(),
                memory: "512Mi".into(),
            };
        }
        move_to(s, &from).await?;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let api = s.api::<Pod>();
        let creator = {
            let stop = stop.clone();
            let api = api.clone();
            tokio::spawn(async move {
                let mut created = Vec::new();
                let mut refused = Vec::new();
                let mut i = 0;
                while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                    let mut pod: Pod = match fixtures::load("seed/nginx-pod.yaml") {
                        Ok(p) => p,
                        Err(e) => {
                            refused.push(e.to_string());
                            break;
                        }
                    };
                    pod.metadata.name = Some(format!("through-{i}"));
                    let labels = pod.metadata.labels.get_or_insert_default();
                    labels.insert(POLICY_LABEL.into(), "enforce".into());
                    labels.insert("app".into(), "through".into());
                    match api.create(&PostParams::default(), &pod).await {
                        Ok(p) => created.push(p),
                        Err(e) => refused.push(format!("through-{i}: {e}")),
                    }
                    i += 1;
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
                (created, refused)
            })
        };
        let upgraded = move_to(s, &at(release, s)).await;
        // A few more after the last old pod went.
        tokio::time::sleep(Duration::from_secs(2)).await;
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        let (created, refused) = creator.await?;
        upgraded?;
        anyhow::ensure!(
            refused.is_empty(),
            "pods refused during the upgrade: {refused:?}"
        );
        anyhow::ensure!(
            created.len() >= 10,
            "only {} pods were created during the upgrade",
            created.len()
        );
        let unmutated: Vec<String> = created
            .iter()
            .filter(|p| {
                !p.spec
                    .as_ref()
                    .and_then(|s| s.tolerations.as_ref())
                    .is_some_and(|ts| {
                        ts.iter()
                            .any(|t| t.key.as_deref() == Some("virtual-kubelet.io/provider"))
                    })
            })
            .map(|p| p.name_any())
            .collect();
        anyhow::ensure!(
            unmutated.is_empty(),
            "admitted without the webhook's mutation: {unmutated:?}"
        );
        eprintln!(
            "UP-03: {} pods created through the upgrade, all mutated",
            created.len()
        );
        converge(s, "app=through", created.len(), PATIENCE).await?;
        Ok(Outcome::Passed)
    }))
}
