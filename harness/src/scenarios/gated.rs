//! Volume rules and release gates (BEHAVIOR.md §4 pinned sizes, §5 volumes, §6 hostPath
//! replacement): VOL-03, VOL-04, VOL-05, VOL-06, VOL-07, HP-02…HP-06, RES-02.
//!
//! Each body asserts the side of a gate the shared environment's release is on
//! ([`crate::env::release`]): refused with a message naming the volume, the rule and the gate, or
//! admitted and Running on CCI with the volume as the CCI pod holds it. The harness keeps its own
//! tiny release compare; it never borrows the engine's rules.
//!
//! Refusals come first in each body: [`expect_refused`] checks CCI holds no pod of the scenario.

use std::time::Duration;

use anyhow::Context as _;
use k8s_openapi::api::core::v1::{
    Event, PersistentVolume, PersistentVolumeClaim, Pod, Secret, ServiceAccount, Volume,
};
use k8s_openapi::api::storage::v1::StorageClass;
use kube::api::{Api, DeleteParams, ListParams, PostParams};

use crate::gates::Gate;

use super::refusals::expect_refused;
use super::{BodyFuture, POLICY_LABEL, converge, pod_with};
use crate::scenario::Outcome;
use crate::scenario::Scenario;
use crate::{snapshot, wait};

const PATIENCE: Duration = Duration::from_secs(60);
/// Pod annotation of the hostPath replacement policies.
const HOSTPATH_REPLACEMENT: &str = "coordinator.cci.io/hostpath-replacement";
/// Pod annotation pinning the CCI flavour.
const POD_SIZE_SPECS: &str = "resource.cci.io/pod-size-specs";
/// CCI pod annotation: the flavour the service sized the pod to.
const CCI_SIZE: &str = "resource.cci.io/size";
/// Selector of every pod these bodies burst.
fn enforce_selector() -> String {
    format!("{POLICY_LABEL}=enforce")
}

/// Creates `pod` (it must be admitted).
async fn create(s: &Scenario, pod: &Pod) -> anyhow::Result<()> {
    let name = pod.metadata.name.as_deref().unwrap_or("?");
    s.api::<Pod>()
        .create(&PostParams::default(), pod)
        .await
        .with_context(|| format!("create pod {name} (expected to be admitted)"))?;
    Ok(())
}

/// The CCI pod that stands for cluster pod `name` of the scenario.
async fn cci_pod_of(s: &Scenario, name: &str) -> anyhow::Result<cci_api::Pod> {
    let owner = format!("{}/{name}", s.namespace);
    s.cci_pods()
        .await?
        .into_iter()
        .find(|p| {
            p.metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(cci_api::ANNOTATION_CLUSTER_POD))
                == Some(&owner)
        })
        .with_context(|| format!("no CCI pod stands for {owner}"))
}

/// The CCI pod's volume `name`, if it has one.
fn volume<'a>(pod: &'a cci_api::Pod, name: &str) -> Option<&'a Volume> {
    pod.spec.volumes.iter().flatten().find(|v| v.name == name)
}

/// Whether any container of the CCI pod mounts volume `name`.
fn mounted(pod: &cci_api::Pod, name: &str) -> bool {
    pod.spec
        .containers
        .iter()
        .flat_map(|c| c.volume_mounts.iter().flatten())
        .any(|m| m.name == name)
}

/// The CCI pod's volume `name` as an emptyDir's sizeLimit (`Some(None)`: an emptyDir without one).
fn empty_dir_limit(pod: &cci_api::Pod, name: &str) -> Option<Option<String>> {
    volume(pod, name)
        .and_then(|v| v.empty_dir.as_ref())
        .map(|e| e.size_limit.as_ref().map(|q| q.0.clone()))
}

/// The CCI pod's volumes and mounts, for a snapshot.
fn volumes_view(pod: &cci_api::Pod) -> serde_json::Value {
    serde_json::json!({
        "volumes": pod.spec.volumes,
        "mounts": pod.spec.containers.iter()
            .map(|c| (c.name.clone(), c.volume_mounts.clone()))
            .collect::<Vec<_>>(),
    })
}

/// VOL-07: a hostPath is refused; `/etc/localtime` is refused before 1.5.9 (naming the gate) and
/// runs from 1.5.9 with the hostPath on the CCI pod.
pub fn vol_07(s: &Scenario) -> BodyFuture<'_> {
    Box::pin(async move {
        let logs = pod_with(
            "host-logs",
            serde_json::json!([{"name": "host-logs", "hostPath": {"path": "/var/log"}}]),
            &[],
        )?;
        let message = expect_refused(s, &logs, &["host-logs", "hostPath", HOSTPATH_REPLACEMENT])
            .await
            .context("a /var/log hostPath")?;
        snapshot::settings().bind(|| insta::assert_snapshot!("vol_07_hostpath_refusal", message));

        let tz = pod_with(
            "localtime",
            serde_json::json!([{"name": "tz", "hostPath": {"path": "/etc/localtime"}}]),
            &[],
        )?;
        if !super::has(Gate::EtcLocaltimeHostPath)? {
            expect_refused(s, &tz, &["tz", "/etc/localtime", ">= 1.5.9"])
                .await
                .context("an /etc/localtime hostPath before 1.5.9")?;
            return Ok(Outcome::Passed);
        }
        create(s, &tz).await?;
        converge(s, &enforce_selector(), 1, PATIENCE).await?;
        let cci = cci_pod_of(s, "localtime").await?;
        let path = volume(&cci, "tz")
            .and_then(|v| v.host_path.as_ref())
            .map(|h| h.path.as_str());
        anyhow::ensure!(
            path == Some("/etc/localtime") && mounted(&cci, "tz"),
            "the CCI pod lacks the mounted /etc/localtime hostPath: {}",
            volumes_view(&cci)
        );
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
        if !super::has(Gate::EtcLocaltimeHostPath)? {
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

/// VOL-03: emptyDir with subPath, 1536Mi or more than 10 × the pod's (started) cores is refused;
/// plain, 1Gi and 10Gi (a 0.5-vCPU pod: one started core) run.
pub fn vol_03(s: &Scenario) -> BodyFuture<'_> {
    Box::pin(async move {
        let mut sub = pod_with(
            "subpath",
            serde_json::json!([{"name": "cache", "emptyDir": {}}]),
            &[],
        )?;
        sub.spec.as_mut().context("spec")?.containers[0]
            .volume_mounts
            .as_mut()
            .context("mounts")?[0]
            .sub_path = Some("part".into());
        expect_refused(s, &sub, &["cache", "subPath"])
            .await
            .context("subPath")?;
        for (name, limit) in [("half-gi", "1536Mi"), ("too-big", "11Gi")] {
            let pod = pod_with(
                name,
                serde_json::json!([{"name": "cache", "emptyDir": {"sizeLimit": limit}}]),
                &[],
            )?;
            expect_refused(s, &pod, &["cache", "sizeLimit", limit])
                .await
                .with_context(|| format!("sizeLimit {limit}"))?;
        }

        let ok = pod_with(
            "empties",
            serde_json::json!([
                {"name": "plain", "emptyDir": {}},
                {"name": "one", "emptyDir": {"sizeLimit": "1Gi"}},
                {"name": "ten", "emptyDir": {"sizeLimit": "10Gi"}}
            ]),
            &[],
        )?;
        create(s, &ok).await?;
        converge(s, &enforce_selector(), 1, PATIENCE).await?;
        let cci = cci_pod_of(s, "empties").await?;
        for (name, want) in [("plain", None), ("one", Some("1Gi")), ("ten", Some("10Gi"))] {
            anyhow::ensure!(
                empty_dir_limit(&cci, name) == Some(want.map(str::to_owned)),
                "emptyDir {name} is not on the CCI pod with sizeLimit {want:?}: {}",
                volumes_view(&cci)
            );
        }
        Ok(Outcome::Passed)
    })
}

/// VOL-04: a downwardAPI volume is refused before 1.3.25 (naming the volume, the type and the
/// gate) and runs from 1.3.25 with the volume on the CCI pod.
pub fn vol_04(s: &Scenario) -> BodyFuture<'_> {
    Box::pin(async move {
        let pod = pod_with(
            "downward",
            serde_json::json!([{"name": "podinfo", "downwardAPI": {"items": [
                {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}}
            ]}}]),
            &[],
        )?;
        if !super::has(Gate::DownwardApiAndProjected)? {
            expect_refused(s, &pod, &["podinfo", "downwardAPI", ">= 1.3.25"]).await?;
            return Ok(Outcome::Passed);
        }
        create(s, &pod).await?;
        converge(s, &enforce_selector(), 1, PATIENCE).await?;
        let cci = cci_pod_of(s, "downward").await?;
        anyhow::ensure!(
            volume(&cci, "podinfo").is_some_and(|v| v.downward_api.is_some())
                && mounted(&cci, "podinfo"),
            "the downwardAPI volume is not on the CCI pod: {}",
            volumes_view(&cci)
        );
        Ok(Outcome::Passed)
    })
}

/// The service account VOL-05's pod runs as, and the name of its long-lived token Secret: one of
/// the user's choosing, as the Kubernetes documentation creates one (deliberately not
/// `{account}-token`: the engine must find it by type and annotation, not by name).
const TOKEN_ACCOUNT: &str = "burster";
const TOKEN_SECRET: &str = "burster-long-lived";
/// The type and annotation of a service account token Secret (what the Warning event must name).
const TOKEN_TYPE: &str = "kubernetes.io/service-account-token";
const TOKEN_ACCOUNT_ANNOTATION: &str = "kubernetes.io/service-account.name";

/// VOL-05: a projected volume with a `serviceAccountToken` source (expirationSeconds 3600,
/// audience `vault`) and a downwardAPI source. Gated as VOL-04: refused before 1.3.25 (naming
/// the volume, the type and the gate). From 1.3.25, with the account's token Secret not created
/// yet, the pod is admitted but does not reach CCI, and a Warning event on it names what to
/// create (in its namespace, a Secret of type `kubernetes.io/service-account-token` annotated
/// `kubernetes.io/service-account.name: burster`). Once that Secret exists (named
/// `burster-long-lived`) and the token controller has filled it in, the same pod (same UID, not
/// recreated) runs on CCI, where the token source is the `token` key of that Secret, mirrored as
/// `{namespace}.burster-long-lived` and holding the very token the token controller wrote;
/// `serviceAccountToken`, `expirationSeconds` and `audience` appear nowhere in the CCI volume.
pub fn vol_05(s: &Scenario) -> BodyFuture<'_> {
    Box::pin(async move {
        let account: ServiceAccount = serde_json::from_value(serde_json::json!({
            "apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": TOKEN_ACCOUNT}
        }))?;
        s.api::<ServiceAccount>()
            .create(&PostParams::default(), &account)
            .await
            .context("create service account burster")?;

        let mut pod = pod_with(
            "projected",
            serde_json::json!([{"name": "sa-token", "projected": {"sources": [
                {"serviceAccountToken": {"path": "token", "expirationSeconds": 3600,
                                         "audience": "vault"}},
                {"downwardAPI": {"items": [
                    {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}}
                ]}}
            ]}}]),
            &[],
        )?;
        pod.spec.as_mut().context("spec")?.service_account_name = Some(TOKEN_ACCOUNT.into());
        if !super::has(Gate::DownwardApiAndProjected)? {
            expect_refused(s, &pod, &["sa-token", "projected", ">= 1.3.25"]).await?;
            return Ok(Outcome::Passed);
        }

        // No token Secret yet: the pod waits, and says what to create.
        create(s, &pod).await?;
        let uid = s
            .api::<Pod>()
            .get("projected")
            .await?
            .metadata
            .uid
            .context("pod projected has no uid")?;
        let needles = [
            TOKEN_TYPE.to_owned(),
            format!("{TOKEN_ACCOUNT_ANNOTATION}: {TOKEN_ACCOUNT}"),
            format!("namespace {}", s.namespace),
        ];
        let warning = wait::until(
            "a Warning event on pod projected naming the token Secret to create",
            PATIENCE,
            || async {
                let events = s
                    .api::<Event>()
                    .list(&ListParams::default().fields("involvedObject.name=projected"))
                    .await
                    .map_err(|source| crate::Error::Kube {
                        context: "list events of pod projected".into(),
                        source,
                    })?;
                Ok(events.items.into_iter().find_map(|e| {
                    let message = e.message.unwrap_or_default();
                    (e.type_.as_deref() == Some("Warning")
                        && needles.iter().all(|n| message.contains(n.as_str())))
                    .then_some(message)
                }))
            },
            || s.diagnose(),
        )
        .await?;
        anyhow::ensure!(
            s.cci_pods().await?.is_empty(),
            "pod projected reached CCI without a token Secret (the Warning said: {warning})"
        );

        // The account's token Secret, as the Kubernetes documentation creates one, filled in by
        // kube-controller-manager's token controller (the long-lived token §5 speaks of).
        let secret: Secret = serde_json::from_value(serde_json::json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": TOKEN_SECRET,
                         "annotations": {(TOKEN_ACCOUNT_ANNOTATION): TOKEN_ACCOUNT}},
            "type": TOKEN_TYPE
        }))?;
        s.api::<Secret>()
            .create(&PostParams::default(), &secret)
            .await
            .with_context(|| format!("create secret {TOKEN_SECRET}"))?;
        let token = wait::until(
            &format!("the token controller to fill secret {TOKEN_SECRET}'s data.token"),
            PATIENCE,
            || async {
                let secret = s
                    .api::<Secret>()
                    .get(TOKEN_SECRET)
                    .await
                    .map_err(|source| crate::Error::Kube {
                        context: format!("get secret {TOKEN_SECRET}"),
                        source,
                    })?;
                Ok(secret
                    .data
                    .and_then(|d| d.get("token").cloned())
                    .filter(|t| !t.0.is_empty()))
            },
            || s.diagnose(),
        )
        .await?;

        // The waiting pod is retried with backoff (up to 30 s apart): allow for a few rounds.
        let running = converge(s, &enforce_selector(), 1, Duration::from_secs(120)).await?;
        anyhow::ensure!(
            running[0].metadata.uid.as_deref() == Some(uid.as_str()),
            "pod projected was recreated (uid {:?}, was {uid}) instead of starting once its token Secret existed",
            running[0].metadata.uid
        );
        let cci = cci_pod_of(s, "projected").await?;
        let mirrored = format!("{}.{TOKEN_SECRET}", s.namespace);
        let projected = volume(&cci, "sa-token")
            .and_then(|v| v.projected.as_ref())
            .with_context(|| {
                format!(
                    "the CCI pod has no projected volume sa-token: {}",
                    volumes_view(&cci)
                )
            })?;
        let token_source = projected.sources.iter().flatten().find_map(|src| {
            src.secret
                .as_ref()
                .filter(|sec| sec.name == mirrored)
                .map(|sec| sec.items.clone().unwrap_or_default())
        });
        anyhow::ensure!(
            token_source.as_ref().is_some_and(|items| items.len() == 1
                && items[0].key == "token"
                && items[0].path == "token"),
            "the CCI volume does not project key token of secret {mirrored} at path token: {}",
            volumes_view(&cci)
        );
        anyhow::ensure!(
            projected
                .sources
                .iter()
                .flatten()
                .any(|src| src.downward_api.is_some()),
            "the downwardAPI source is missing on CCI: {}",
            volumes_view(&cci)
        );
        anyhow::ensure!(mounted(&cci, "sa-token"), "sa-token is not mounted on CCI");
        let wire = serde_json::to_string(projected)?;
        for dropped in [
            "serviceAccountToken",
            "expirationSeconds",
            "audience",
            "vault",
        ] {
            anyhow::ensure!(
                !wire.contains(dropped),
                "the CCI volume still carries {dropped:?}: {wire}"
            );
        }
        let on_cci: Option<cci_api::Secret> = s
            .cci()
            .object(s.cci_namespace(), "secrets", &mirrored)
            .await?;
        let on_cci = on_cci.with_context(|| format!("secret {mirrored} is not on CCI"))?;
        // NB: compared, never printed: it is a credential.
        anyhow::ensure!(
            on_cci.data.as_ref().and_then(|d| d.get("token")) == Some(&token),
            "secret {mirrored} on CCI does not hold the token of the cluster's {TOKEN_SECRET} \
             (keys on CCI: {:?})",
            on_cci.data.as_ref().map(|d| d.keys().collect::<Vec<_>>())
        );
        snapshot::settings().bind(|| {
            insta::assert_json_snapshot!("vol_05_cci_pod_volumes", volumes_view(&cci));
        });
        Ok(Outcome::Passed)
    })
}

/// Creates StorageClass `name` with `provisioner` unless it exists.
pub(super) async fn ensure_class(
    classes: &Api<StorageClass>,
    name: &str,
    provisioner: &str,
) -> anyhow::Result<()> {
    let sc: StorageClass = serde_json::from_value(serde_json::json!({
        "apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
        "metadata": {"name": name},
        "provisioner": provisioner,
        "volumeBindingMode": "Immediate"
    }))?;
    match classes.create(&PostParams::default(), &sc).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(()),
        Err(e) => Err(e).context(format!("create StorageClass {name}")),
    }
}

/// A claim `name` of `class`.
pub(super) fn claim(name: &str, class: &str) -> anyhow::Result<PersistentVolumeClaim> {
    Ok(serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "PersistentVolumeClaim",
        "metadata": {"name": name},
        "spec": {"storageClassName": class, "accessModes": ["ReadWriteMany"],
                 "resources": {"requests": {"storage": "1Gi"}}}
    }))?)
}

/// VOL-06: claims of SFS (`nas.csi.everest.io`) and SFS Turbo (`sfsturbo.csi.everest.io`) CSI
/// StorageClasses run (the claims mirrored to CCI); EVS, OBS and a non-CSI class are refused.
/// The SFS classes are named `csi-nas` / `csi-sfsturbo`, the classes the mock CCI knows.
pub fn vol_06(s: &Scenario) -> BodyFuture<'_> {
    Box::pin(async move {
        let classes: Api<StorageClass> = Api::all(s.client.clone());
        let volumes_api: Api<PersistentVolume> = Api::all(s.client.clone());
        let ns = s.namespace.clone();
        let refused_classes = [
            (format!("evs-{ns}"), "disk.csi.everest.io"),
            (format!("obs-{ns}"), "obs.csi.everest.io"),
            (format!("nfs-{ns}"), "example.com/nfs"),
        ];
        let mut pvs = Vec::new();
        let result = async {
            ensure_class(&classes, "csi-nas", "nas.csi.everest.io").await?;
            ensure_class(&classes, "csi-sfsturbo", "sfsturbo.csi.everest.io").await?;
            for (class, provisioner) in &refused_classes {
                ensure_class(&classes, class, provisioner).await?;
                let claim_name = format!("claim-{}", &class[..3]);
                s.api::<PersistentVolumeClaim>()
                    .create(&PostParams::default(), &claim(&claim_name, class)?)
                    .await?;
                let pod = pod_with(
                    &format!("on-{}", &class[..3]),
                    serde_json::json!([{"name": "store", "persistentVolumeClaim": {"claimName": claim_name}}]),
                    &[],
                )?;
                expect_refused(s, &pod, &["store", &claim_name, class, provisioner])
                    .await
                    .with_context(|| format!("class {class} ({provisioner})"))?;
            }

            // The SFS claims, each bound to a pre-provisioned PersistentVolume of its driver.
            let mut running = 0;
            for (class, driver) in [
                ("csi-nas", "nas.csi.everest.io"),
                ("csi-sfsturbo", "sfsturbo.csi.everest.io"),
            ] {
                let claim_name = format!("claim-{class}");
                let pv_name = format!("{ns}-{class}");
                let pv: PersistentVolume = serde_json::from_value(serde_json::json!({
                    "apiVersion": "v1", "kind": "PersistentVolume",
                    "metadata": {"name": pv_name},
                    "spec": {
                        "capacity": {"storage": "1Gi"},
                        "accessModes": ["ReadWriteMany"],
                        "storageClassName": class,
                        "persistentVolumeReclaimPolicy": "Retain",
                        "csi": {"driver": driver, "volumeHandle": pv_name},
                        "claimRef": {"namespace": ns, "name": claim_name}
                    }
                }))?;
                volumes_api.create(&PostParams::default(), &pv).await?;
                pvs.push(pv_name);
                s.api::<PersistentVolumeClaim>()
                    .create(&PostParams::default(), &claim(&claim_name, class)?)
                    .await?;
                let pod_name = format!("on-{class}");
                let pod = pod_with(
                    &pod_name,
                    serde_json::json!([{"name": "store", "persistentVolumeClaim": {"claimName": claim_name}}]),
                    &[],
                )?;
                create(s, &pod).await?;
                running += 1;
                converge(s, &enforce_selector(), running, Duration::from_secs(90)).await?;
                let cci = cci_pod_of(s, &pod_name).await?;
                let cci_claim = volume(&cci, "store")
                    .and_then(|v| v.persistent_volume_claim.as_ref())
                    .map(|c| c.claim_name.clone())
                    .with_context(|| {
                        format!("the CCI pod {pod_name} has no claim volume: {}", volumes_view(&cci))
                    })?;
                anyhow::ensure!(mounted(&cci, "store"), "the claim is not mounted on CCI");
                let mirrored: Option<cci_api::PersistentVolumeClaim> = s
                    .cci()
                    .object(s.cci_namespace(), "persistentvolumeclaims", &cci_claim)
                    .await?;
                let mirrored = mirrored
                    .with_context(|| format!("claim {cci_claim} is not on CCI"))?;
                anyhow::ensure!(
                    mirrored.spec.storage_class_name.as_deref() == Some(class),
                    "claim {cci_claim} on CCI has class {:?}, not {class}",
                    mirrored.spec.storage_class_name
                );
            }
            anyhow::Ok(())
        }
        .await;
        for (class, _) in &refused_classes {
            let _ = classes.delete(class, &DeleteParams::default()).await;
        }
        for pv in &pvs {
            let _ = volumes_api.delete(pv, &DeleteParams::default()).await;
        }
        result?;
        Ok(Outcome::Passed)
    })
}

/// RES-02: `resource.cci.io/pod-size-specs` pins the flavour (the CCI pod's `resource.cci.io/size`
/// is the pin); a value that is no flavour, or smaller than the containers, is refused.
pub fn res_02(s: &Scenario) -> BodyFuture<'_> {
    Box::pin(async move {
        // 3 vCPU is no flavour; 0.25_0.5 is smaller than the seed pod's 0.5 vCPU / 1Gi.
        for (name, pin) in [("no-flavour", "3_4"), ("too-small", "0.25_0.5")] {
            let pod = pod_with(name, serde_json::json!([]), &[(POD_SIZE_SPECS, pin)])?;
            let message = expect_refused(s, &pod, &[POD_SIZE_SPECS, pin])
                .await
                .with_context(|| format!("pin {pin}"))?;
            snapshot::settings().bind(|| {
                insta::assert_snapshot!(
                    format!("res_02_refused_{}", name.replace('-', "_")),
                    message
                );
            });
        }
        let pod = pod_with("pinned", serde_json::json!([]), &[(POD_SIZE_SPECS, "2_4")])?;
        create(s, &pod).await?;
        converge(s, &enforce_selector(), 1, PATIENCE).await?;
        let cci = cci_pod_of(s, "pinned").await?;
        let size = cci
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(CCI_SIZE));
        anyhow::ensure!(
            super::same_flavour(size.map(String::as_str), "2_4"),
            "the CCI pod's {CCI_SIZE} is {size:?}, not the pinned 2_4"
        );
        Ok(Outcome::Passed)
    })
}
