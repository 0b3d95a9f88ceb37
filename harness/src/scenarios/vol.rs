//! VOL and VK-02: ConfigMaps and Secrets that burst pods use, mirrored to CCI.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Context as _;
use k8s_openapi::api::core::v1::{ConfigMap, Event, Pod, Secret};
use kube::api::{ListParams, Patch, PatchParams, PostParams};

use super::{BodyFuture, converge};
use crate::scenario::Outcome;
use crate::scenario::Scenario;
use crate::wait;

const PATIENCE: Duration = Duration::from_secs(60);

/// The seed's nginx pod labelled `enforce` with `volumes` mounted under `/mnt/N`.
fn pod_with(name: &str, volumes: serde_json::Value) -> anyhow::Result<Pod> {
    super::pod_with(name, volumes, &[])
}

/// The name a cluster object gets on CCI (the engine's naming, as documented).
fn cci_name(s: &Scenario, name: &str) -> String {
    format!("{}.{name}", s.namespace)
}

/// VOL-01: a mounted ConfigMap is mirrored to CCI with equal data; an update reaches CCI. The
/// pod also reads one key into an env variable, which on CCI must name the mirror.
pub fn vol_01(s: &Scenario) -> BodyFuture<'_> {
    Box::pin(async move {
        let cm: ConfigMap = serde_json::from_value(serde_json::json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "settings"},
            "data": {"mode": "fast", "level": "3"}
        }))?;
        s.api::<ConfigMap>()
            .create(&PostParams::default(), &cm)
            .await?;
        let mut pod = pod_with(
            "reader",
            serde_json::json!([{"name": "cfg", "configMap": {"name": "settings"}}]),
        )?;
        pod.spec
            .as_mut()
            .context("the seed pod has a spec")?
            .containers[0]
            .env = Some(serde_json::from_value(serde_json::json!([
            {"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "mode"}}}
        ]))?);
        s.api::<Pod>().create(&PostParams::default(), &pod).await?;
        let pods = converge(s, "scenario-pod=reader", 1, PATIENCE).await?;

        let name = cci_name(s, "settings");
        // The env variable reads the mirror, the ConfigMap CCI has, not the cluster's name.
        let uid = pods[0]
            .metadata
            .uid
            .as_deref()
            .context("the pod has a uid")?;
        let cci = s.cci_pods().await?;
        let on_cci = cci
            .iter()
            .find(|p| super::cluster_uid_of(p) == Some(uid))
            .context("no CCI pod for the reader pod")?;
        let reads = on_cci.spec.containers[0]
            .env
            .iter()
            .flatten()
            .find(|e| e.name == "MODE")
            .and_then(|e| e.value_from.as_ref()?.config_map_key_ref.as_ref())
            .map(|r| (r.name.clone(), r.key.clone()));
        anyhow::ensure!(
            reads == Some((name.clone(), "mode".to_owned())),
            "on CCI the env variable MODE reads {reads:?}, expected ({name:?}, \"mode\")"
        );
        let same_data = |want: BTreeMap<String, String>| {
            let name = name.clone();
            async move {
                let got: Option<cci_api::ConfigMap> = s
                    .cci()
                    .object(s.cci_namespace(), "configmaps", &name)
                    .await?;
                Ok(got.filter(|c| c.data.as_ref() == Some(&want)).map(|_| ()))
            }
        };
        let first = BTreeMap::from([
            ("mode".to_owned(), "fast".to_owned()),
            ("level".to_owned(), "3".to_owned()),
        ]);
        wait::until(
            "the ConfigMap mirrored with equal data",
            PATIENCE,
            || same_data(first.clone()),
            || s.diagnose(),
        )
        .await?;

        s.api::<ConfigMap>()
            .patch(
                "settings",
                &PatchParams::default(),
                &Patch::Merge(serde_json::json!({"data": {"level": "4"}})),
            )
            .await?;
        let second = BTreeMap::from([
            ("mode".to_owned(), "fast".to_owned()),
            ("level".to_owned(), "4".to_owned()),
        ]);
        wait::until(
            "the ConfigMap update on CCI",
            PATIENCE,
            || same_data(second.clone()),
            || s.diagnose(),
        )
        .await?;
        Ok(Outcome::Passed)
    })
}

/// VOL-02: a mounted Secret is mirrored; its data never appears in the engine's log or in events.
pub fn vol_02(s: &Scenario) -> BodyFuture<'_> {
    Box::pin(async move {
        // A value that cannot appear anywhere by chance.
        let value = format!("s3cr3t-{}", &s.namespace);
        let secret: Secret = serde_json::from_value(serde_json::json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "credentials"},
            "stringData": {"password": value}
        }))?;
        s.api::<Secret>()
            .create(&PostParams::default(), &secret)
            .await?;
        let pod = pod_with(
            "holder",
            serde_json::json!([{"name": "creds", "secret": {"secretName": "credentials"}}]),
        )?;
        s.api::<Pod>().create(&PostParams::default(), &pod).await?;
        converge(s, "scenario-pod=holder", 1, PATIENCE).await?;
        let name = cci_name(s, "credentials");
        let mirrored = wait::until(
            "the Secret mirrored with equal data",
            PATIENCE,
            || async {
                let got: Option<cci_api::Secret> =
                    s.cci().object(s.cci_namespace(), "secrets", &name).await?;
                Ok(got.filter(|sec| {
                    sec.data
                        .as_ref()
                        .and_then(|d| d.get("password"))
                        .is_some_and(|b| b.0 == value.as_bytes())
                }))
            },
            || s.diagnose(),
        )
        .await?;
        anyhow::ensure!(mirrored.metadata.name.as_deref() == Some(name.as_str()));

        // NB: a log that cannot be read is not a clean log: no readable log fails.
        let logs = s.env.addon_log_texts().await?;
        for (name, log) in &logs {
            anyhow::ensure!(
                !log.contains(&value),
                "the Secret's value appears in the add-on's log {name}"
            );
        }
        anyhow::ensure!(
            !logs.is_empty(),
            "no log of the add-on (virtual kubelet, webhook, proxy) could be read (host node logs under {})",
            s.env.logs.display()
        );
        let events = s.api::<Event>().list(&ListParams::default()).await?;
        for e in events.items {
            anyhow::ensure!(
                !e.message.unwrap_or_default().contains(&value),
                "the Secret's value appears in an event"
            );
        }
        Ok(Outcome::Passed)
    })
}

/// VK-02: an optional missing ConfigMap/Secret lets the pod run; a mandatory missing one makes
/// it wait with an event naming the object, and it runs once the object exists.
pub fn vk_02(s: &Scenario) -> BodyFuture<'_> {
    Box::pin(async move {
        let optional = pod_with(
            "optional",
            serde_json::json!([
                {"name": "cfg", "configMap": {"name": "absent-config", "optional": true}},
                {"name": "sec", "secret": {"secretName": "absent-secret", "optional": true}}
            ]),
        )?;
        s.api::<Pod>()
            .create(&PostParams::default(), &optional)
            .await?;
        converge(s, "scenario-pod=optional", 1, PATIENCE).await?;

        let mandatory = pod_with(
            "mandatory",
            serde_json::json!([{"name": "cfg", "configMap": {"name": "later-config"}}]),
        )?;
        s.api::<Pod>()
            .create(&PostParams::default(), &mandatory)
            .await?;
        wait::until(
            "a Warning event on pod mandatory naming configmap later-config",
            PATIENCE,
            || async {
                let events = s
                    .api::<Event>()
                    .list(&ListParams::default().fields("involvedObject.name=mandatory"))
                    .await
                    .map_err(|source| crate::Error::Kube {
                        context: "list events".into(),
                        source,
                    })?;
                Ok(events
                    .items
                    .iter()
                    .any(|e| {
                        e.type_.as_deref() == Some("Warning")
                            && e.message.as_deref().unwrap_or("").contains("later-config")
                    })
                    .then_some(()))
            },
            || s.diagnose(),
        )
        .await?;
        let on_cci = s.cci_pods().await?;
        anyhow::ensure!(
            on_cci.len() == 1,
            "the pod with a missing mandatory ConfigMap reached CCI ({} CCI pods)",
            on_cci.len()
        );

        let cm: ConfigMap = serde_json::from_value(serde_json::json!({
            "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "later-config"}, "data": {"k": "v"}
        }))?;
        s.api::<ConfigMap>()
            .create(&PostParams::default(), &cm)
            .await?;
        // Both pods now: converge counts every CCI pod of the scenario.
        converge(
            s,
            &format!("{}=enforce", super::POLICY_LABEL),
            2,
            Duration::from_secs(90),
        )
        .await?;
        Ok(Outcome::Passed)
    })
}
