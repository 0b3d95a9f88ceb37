//! HP: the hostPath replacement annotation (BEHAVIOR.md §6): HP-01…HP-07.
//!
//! HP-01 runs the seed's Deployment end to end; HP-02…HP-06 each run one pod with hostPaths and
//! replacement policies and check the volumes of its CCI pod (HP-05 asserts the side of the
//! `/etc/localtime` gate the shared environment's release is on); HP-07 checks malformed policies
//! are refused, quoting the offending entry.

use std::time::Duration;

use anyhow::Context as _;
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::PostParams;

use crate::gates::Gate;

use super::admission::{create, enforce_pod, expect_refused, with_volume};
use super::cci_pod::{cci_pod_of, empty_dir_limit, mounted, volume, volumes_view};
use super::{BodyFuture, HOSTPATH_REPLACEMENT, converge, enforce_selector, pod_with};
use crate::scenario::Outcome;
use crate::scenario::Scenario;
use crate::{fixtures, snapshot};

const PATIENCE: Duration = Duration::from_secs(60);

/// HP-01: the seed's Deployment (three hostPaths: two removed, one replaced by a 10Gi emptyDir)
/// bursts and runs; the CCI pod's volumes and mounts are snapshotted for review.
pub fn hp_01(s: &Scenario) -> BodyFuture<'_> {
    Box::pin(async move {
        let mut deployment: Deployment = fixtures::load("seed/hostpath-deployment.yaml")?;
        // The seed writes `namespace: default`; the scenario owns its own namespace.
        deployment.metadata.namespace = None;
        s.api::<Deployment>()
            .create(&PostParams::default(), &deployment)
            .await?;
        converge(s, "app=test", 2, Duration::from_secs(90)).await?;

        let mut cci = s.cci_pods().await?;
        cci.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
        let spec = &cci[0].spec;
        let view = serde_json::json!({
            "volumes": spec.volumes,
            "mounts": spec.containers.iter().map(|c| (c.name.clone(), c.volume_mounts.clone())).collect::<Vec<_>>(),
        });
        snapshot::settings().bind(|| insta::assert_json_snapshot!("hp_01_cci_pod_volumes", view));
        Ok(Outcome::Passed)
    })
}

/// Runs pod `name` with hostPaths (`volumes`) and replacement `policies`; returns its CCI pod once
/// it converged (`running` pods of the scenario in all).
async fn run_replaced(
    s: &Scenario,
    name: &str,
    volumes: serde_json::Value,
    policies: serde_json::Value,
    running: usize,
) -> anyhow::Result<cci_api::Pod> {
    let policies = policies.to_string();
    let pod = pod_with(name, volumes, &[(HOSTPATH_REPLACEMENT, &policies)])?;
    create(s, &pod).await?;
    converge(s, &enforce_selector(), running, PATIENCE).await?;
    cci_pod_of(s, name).await
}

/// HP-02: one hostPath named `replaceByEmptyDir` becomes a mounted emptyDir with that sizeLimit.
pub fn hp_02(s: &Scenario) -> BodyFuture<'_> {
    Box::pin(async move {
        let cci = run_replaced(
            s,
            "replaced",
            serde_json::json!([{"name": "logs", "hostPath": {"path": "/var/log"}}]),
            serde_json::json!([{"name": "logs", "policyType": "replaceByEmptyDir",
                                "emptyDir": {"sizeLimit": "2Gi"}}]),
            1,
        )
        .await?;
        anyhow::ensure!(
            empty_dir_limit(&cci, "logs") == Some(Some("2Gi".into()))
                && volume(&cci, "logs").is_some_and(|v| v.host_path.is_none())
                && mounted(&cci, "logs"),
            "volume logs is not a mounted 2Gi emptyDir on CCI: {}",
            volumes_view(&cci)
        );
        snapshot::settings().bind(|| {
            insta::assert_json_snapshot!("hp_02_cci_pod_volumes", volumes_view(&cci));
        });
        Ok(Outcome::Passed)
    })
}

/// HP-03: one hostPath named `remove` is gone from the CCI pod, with its mount; the others stay.
pub fn hp_03(s: &Scenario) -> BodyFuture<'_> {
    Box::pin(async move {
        let cci = run_replaced(
            s,
            "removed",
            serde_json::json!([
                {"name": "logs", "hostPath": {"path": "/var/log"}},
                {"name": "scratch", "emptyDir": {}}
            ]),
            serde_json::json!([{"name": "logs", "policyType": "remove"}]),
            1,
        )
        .await?;
        anyhow::ensure!(
            volume(&cci, "logs").is_none() && !mounted(&cci, "logs"),
            "volume logs (removed) is still on the CCI pod: {}",
            volumes_view(&cci)
        );
        anyhow::ensure!(
            volume(&cci, "scratch").is_some() && mounted(&cci, "scratch"),
            "volume scratch (not named) is missing on the CCI pod: {}",
            volumes_view(&cci)
        );
        Ok(Outcome::Passed)
    })
}

/// HP-04: `*` with `remove` drops every hostPath (not /etc/localtime) and their mounts.
pub fn hp_04(s: &Scenario) -> BodyFuture<'_> {
    Box::pin(async move {
        let cci = run_replaced(
            s,
            "all-removed",
            serde_json::json!([
                {"name": "logs", "hostPath": {"path": "/var/log"}},
                {"name": "data", "hostPath": {"path": "/data", "type": "DirectoryOrCreate"}},
                {"name": "scratch", "emptyDir": {}}
            ]),
            serde_json::json!([{"name": "*", "policyType": "remove"}]),
            1,
        )
        .await?;
        for gone in ["logs", "data"] {
            anyhow::ensure!(
                volume(&cci, gone).is_none() && !mounted(&cci, gone),
                "hostPath {gone} survived `*` remove on the CCI pod: {}",
                volumes_view(&cci)
            );
        }
        anyhow::ensure!(
            volume(&cci, "scratch").is_some_and(|v| v.empty_dir.is_some()),
            "the emptyDir scratch is missing on the CCI pod: {}",
            volumes_view(&cci)
        );
        Ok(Outcome::Passed)
    })
}

/// HP-05: `*` leaves an /etc/localtime hostPath alone: refused before 1.5.9 (naming the volume and
/// the gate), from 1.5.9 it runs with the localtime hostPath on the CCI pod and the other removed.
pub fn hp_05(s: &Scenario) -> BodyFuture<'_> {
    Box::pin(async move {
        let volumes = serde_json::json!([
            {"name": "logs", "hostPath": {"path": "/var/log"}},
            {"name": "tz", "hostPath": {"path": "/etc/localtime"}}
        ]);
        let policies = serde_json::json!([{"name": "*", "policyType": "remove"}]);
        if !super::has(s, Gate::EtcLocaltimeHostPath) {
            let pod = pod_with(
                "star",
                volumes,
                &[(HOSTPATH_REPLACEMENT, &policies.to_string())],
            )?;
            expect_refused(s, &pod, &["tz", "/etc/localtime", ">= 1.5.9"]).await?;
            return Ok(Outcome::Passed);
        }
        let cci = run_replaced(s, "star", volumes, policies, 1).await?;
        anyhow::ensure!(
            volume(&cci, "logs").is_none() && !mounted(&cci, "logs"),
            "hostPath logs survived `*` remove: {}",
            volumes_view(&cci)
        );
        anyhow::ensure!(
            volume(&cci, "tz")
                .and_then(|v| v.host_path.as_ref())
                .is_some_and(|h| h.path == "/etc/localtime")
                && mounted(&cci, "tz"),
            "`*` touched the /etc/localtime hostPath: {}",
            volumes_view(&cci)
        );
        snapshot::settings().bind(|| {
            insta::assert_json_snapshot!("hp_05_cci_pod_volumes", volumes_view(&cci));
        });
        Ok(Outcome::Passed)
    })
}

/// HP-06: a policy naming the /etc/localtime volume replaces it (on any release).
pub fn hp_06(s: &Scenario) -> BodyFuture<'_> {
    Box::pin(async move {
        let cci = run_replaced(
            s,
            "named-tz",
            serde_json::json!([{"name": "tz", "hostPath": {"path": "/etc/localtime"}}]),
            serde_json::json!([{"name": "tz", "policyType": "replaceByEmptyDir",
                                "emptyDir": {"sizeLimit": "1Gi"}}]),
            1,
        )
        .await?;
        anyhow::ensure!(
            empty_dir_limit(&cci, "tz") == Some(Some("1Gi".into()))
                && volume(&cci, "tz").is_some_and(|v| v.host_path.is_none()),
            "the named /etc/localtime volume was not replaced by a 1Gi emptyDir: {}",
            volumes_view(&cci)
        );
        Ok(Outcome::Passed)
    })
}

/// HP-07: malformed JSON, an unknown policyType and a bad sizeLimit in the hostPath replacement
/// annotation are refused, and the message quotes the offending entry.
pub fn hp_07(s: &Scenario) -> BodyFuture<'_> {
    Box::pin(async move {
        // Each refusal must quote the offending text as written: the whole value when it is
        // no JSON list, else the entry, not just name the annotation every refusal names.
        let cases: [(&str, &str, &[&str]); 3] = [
            (
                "malformed",
                r#"[{"name": "logs", "policyType": "remove""#,
                &[r#"[{"name": "logs", "policyType": "remove""#],
            ),
            (
                "unknown-policy",
                r#"[{"name": "logs", "policyType": "replaceByLocalDir"}]"#,
                &[r#"{"name": "logs", "policyType": "replaceByLocalDir"}"#],
            ),
            (
                "bad-size",
                r#"[{"name": "logs", "policyType": "replaceByEmptyDir", "emptyDir": {"sizeLimit": "1536Mi"}}]"#,
                &[
                    r#"{"name": "logs", "policyType": "replaceByEmptyDir", "emptyDir": {"sizeLimit": "1536Mi"}}"#,
                    "1536Mi",
                ],
            ),
        ];
        for (name, annotation, needles) in cases {
            let mut pod = with_volume(
                enforce_pod(name)?,
                serde_json::json!({"name": "logs", "hostPath": {"path": "/var/log"}}),
            )?;
            pod.metadata.annotations.get_or_insert_default().insert(
                "coordinator.cci.io/hostpath-replacement".into(),
                annotation.into(),
            );
            expect_refused(s, &pod, needles)
                .await
                .with_context(|| format!("case {name}"))?;
        }
        Ok(Outcome::Passed)
    })
}
