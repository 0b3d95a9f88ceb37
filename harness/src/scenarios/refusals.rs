//! Scenarios whose point is a refusal at admission (VOL-08, HP-07): the person who applied the
//! manifest reads what is wrong and what to do, and nothing is created on either side.

use anyhow::Context as _;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use k8s_openapi::api::storage::v1::StorageClass;
use kube::api::{Api, DeleteParams, PostParams};

use super::BodyFuture;
use crate::fixtures;
use crate::scenario::Outcome;
use crate::scenario::Scenario;

/// Creates `pod` and expects the webhook to refuse it with a message containing every needle;
/// checks nothing was created in the cluster or on CCI. Returns the message.
pub async fn expect_refused(s: &Scenario, pod: &Pod, needles: &[&str]) -> anyhow::Result<String> {
    let name = pod.metadata.name.clone().context("pod has a name")?;
    let message = match s.api::<Pod>().create(&PostParams::default(), pod).await {
        Ok(_) => anyhow::bail!("pod {name} was admitted; expected a refusal naming {needles:?}"),
        Err(kube::Error::Api(status)) => status.message.clone(),
        Err(e) => return Err(e).context(format!("create pod {name}")),
    };
    anyhow::ensure!(
        message.contains("denied the request"),
        "pod {name} failed for another reason than the webhook: {message}"
    );
    for needle in needles {
        anyhow::ensure!(
            message.contains(needle),
            "the refusal of {name} does not mention {needle:?}: {message}"
        );
    }
    anyhow::ensure!(
        s.api::<Pod>().get_opt(&name).await?.is_none(),
        "pod {name} exists after its refusal"
    );
    anyhow::ensure!(
        s.cci_pods().await?.is_empty(),
        "CCI holds pods after a refusal"
    );
    Ok(message)
}

/// The seed's nginx pod, labelled `enforce`, named `name`.
fn enforce_pod(name: &str) -> anyhow::Result<Pod> {
    let mut pod: Pod = fixtures::load("seed/nginx-pod.yaml")?;
    pod.metadata.name = Some(name.to_owned());
    pod.metadata
        .labels
        .get_or_insert_default()
        .insert(super::POLICY_LABEL.into(), "enforce".into());
    Ok(pod)
}

/// Adds a volume (as JSON) mounted at `/data` in the first container.
fn with_volume(mut pod: Pod, volume: serde_json::Value) -> anyhow::Result<Pod> {
    let spec = pod.spec.as_mut().context("spec")?;
    let volume: k8s_openapi::api::core::v1::Volume = serde_json::from_value(volume)?;
    spec.containers[0]
        .volume_mounts
        .get_or_insert_default()
        .push(k8s_openapi::api::core::v1::VolumeMount {
            name: volume.name.clone(),
            mount_path: "/data".into(),
            ..Default::default()
        });
    spec.volumes.get_or_insert_default().push(volume);
    Ok(pod)
}

/// VOL-08: flexVolume and local volumes are refused for a pod that must burst.
pub fn vol_08(s: &Scenario) -> BodyFuture<'_> {
    Box::pin(async move {
        let flex = with_volume(
            enforce_pod("flex")?,
            serde_json::json!({"name": "flex-vol", "flexVolume": {"driver": "example.com/lvm"}}),
        )?;
        expect_refused(s, &flex, &["flex-vol", "flexVolume"]).await?;

        // A local PersistentVolume through a claim of a no-provisioner class.
        let class = format!("local-{}", s.namespace);
        let sc: StorageClass = serde_json::from_value(serde_json::json!({
            "apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
            "metadata": {"name": class},
            "provisioner": "kubernetes.io/no-provisioner",
            "volumeBindingMode": "WaitForFirstConsumer"
        }))?;
        let classes: Api<StorageClass> = Api::all(s.client.clone());
        classes.create(&PostParams::default(), &sc).await?;
        let pvc: PersistentVolumeClaim = serde_json::from_value(serde_json::json!({
            "apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": {"name": "local-claim"},
            "spec": {"storageClassName": class, "accessModes": ["ReadWriteOnce"],
                     "resources": {"requests": {"storage": "1Gi"}}}
        }))?;
        s.api::<PersistentVolumeClaim>()
            .create(&PostParams::default(), &pvc)
            .await?;
        let local = with_volume(
            enforce_pod("local")?,
            serde_json::json!({"name": "local-vol", "persistentVolumeClaim": {"claimName": "local-claim"}}),
        )?;
        let result = expect_refused(s, &local, &["local-vol"]).await;
        let _ = classes.delete(&class, &DeleteParams::default()).await;
        result?;
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
