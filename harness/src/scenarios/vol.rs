//! VOL: the volumes of burst pods (BEHAVIOR.md §5): VOL-01…VOL-08.
//!
//! ConfigMaps and Secrets that burst pods use are mirrored to CCI (VOL-01, VOL-02). The volume
//! rules and release gates (VOL-03…VOL-07): each body asserts the side of a gate the shared
//! environment's release is on ([`crate::env::release`]): refused with a message naming the
//! volume, the rule and the gate, or admitted and Running on CCI with the volume as the CCI pod
//! holds it. The harness keeps its own tiny release compare; it never borrows the engine's rules.
//! Refusals come first in each body: `expect_refused` checks CCI holds no pod of the scenario.
//! flexVolume and local volumes are refused (VOL-08).

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Context as _;
use k8s_openapi::api::core::v1::{
    ConfigMap, Event, PersistentVolume, PersistentVolumeClaim, Pod, Secret, ServiceAccount,
};
use k8s_openapi::api::storage::v1::StorageClass;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};

use crate::gates::Gate;

use super::admission::{
    create, enforce_pod, expect_refused, kept_local_events, requires_virtual_node,
    tolerates_virtual_node, with_volume,
};
use super::cci_pod::{cci_pod_of, empty_dir_limit, mounted, volume, volumes_view};
use super::{
    BodyFuture, HOSTPATH_REPLACEMENT, claim, converge, enforce_selector, ensure_class, pod_with,
};
use crate::scenario::Outcome;
use crate::scenario::Scenario;
use crate::{snapshot, wait};

const PATIENCE: Duration = Duration::from_secs(60);

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
            &[],
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
            &[],
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

        // An update of the Secret reaches CCI as a ConfigMap's does.
        let rotated = format!("{value}-rotated");
        s.api::<Secret>()
            .patch(
                "credentials",
                &PatchParams::default(),
                &Patch::Merge(serde_json::json!({"stringData": {"password": rotated}})),
            )
            .await?;
        wait::until(
            "the Secret's update mirrored to CCI",
            PATIENCE,
            || async {
                let got: Option<cci_api::Secret> =
                    s.cci().object(s.cci_namespace(), "secrets", &name).await?;
                Ok(got
                    .and_then(|sec| sec.data)
                    .and_then(|d| d.get("password").cloned())
                    .filter(|b| b.0 == rotated.as_bytes())
                    .map(|_| ()))
            },
            || s.diagnose(),
        )
        .await?;

        // Each value as written, and as a JSON body or a Kubernetes object carries it (base64).
        let mut forms = Vec::new();
        for secret in [&value, &rotated] {
            forms.push(secret.clone());
            let encoded =
                serde_json::to_value(k8s_openapi::ByteString(secret.as_bytes().to_vec()))?;
            forms.push(encoded.as_str().unwrap_or_default().to_owned());
        }
        // NB: a log that cannot be read is not a clean log: no readable log fails.
        let logs = s.env.addon_log_texts().await?;
        for (name, log) in &logs {
            if let Some(form) = forms.iter().find(|f| log.contains(f.as_str())) {
                anyhow::bail!(
                    "the Secret's value appears in the add-on's log {name} (as {form:?})"
                );
            }
        }
        anyhow::ensure!(
            !logs.is_empty(),
            "no log of the add-on (virtual kubelet, webhook, proxy) could be read (host node logs under {})",
            s.env.logs.display()
        );
        // Every namespace's events: the add-on's own are in kube-system or the pod's.
        let events = Api::<Event>::all(s.client.clone())
            .list(&ListParams::default())
            .await?;
        for e in events.items {
            let message = e.message.unwrap_or_default();
            anyhow::ensure!(
                !forms.iter().any(|f| message.contains(f.as_str())),
                "the Secret's value appears in an event of {:?}",
                e.metadata.namespace
            );
        }
        Ok(Outcome::Passed)
    })
}

/// VOL-03: emptyDir with subPath, 1536Mi or more than 10 × the pod's (started) cores is refused;
/// plain, 1Gi and 10Gi (a 0.5-vCPU pod: one started core) run; on a 2-vCPU pod 15Gi runs and
/// 21Gi is refused (the cap grows with the cores: a flat 10Gi cap fails here).
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
        // Two cores: 20Gi is the cap.
        let too_big_for_two = two_cores(pod_with(
            "two-cores-too-big",
            serde_json::json!([{"name": "cache", "emptyDir": {"sizeLimit": "21Gi"}}]),
            &[],
        )?)?;
        expect_refused(s, &too_big_for_two, &["cache", "sizeLimit", "21Gi"])
            .await
            .context("sizeLimit 21Gi on 2 vCPU")?;
        let two = two_cores(pod_with(
            "two-cores",
            serde_json::json!([{"name": "big", "emptyDir": {"sizeLimit": "15Gi"}}]),
            &[],
        )?)?;
        create(s, &ok).await?;
        create(s, &two)
            .await
            .context("a 2-vCPU pod with a 15Gi emptyDir (within 10 × 2 cores)")?;
        converge(s, &enforce_selector(), 2, PATIENCE).await?;
        let cci = cci_pod_of(s, "empties").await?;
        for (name, want) in [("plain", None), ("one", Some("1Gi")), ("ten", Some("10Gi"))] {
            anyhow::ensure!(
                empty_dir_limit(&cci, name) == Some(want.map(str::to_owned)),
                "emptyDir {name} is not on the CCI pod with sizeLimit {want:?}: {}",
                volumes_view(&cci)
            );
        }
        let cci = cci_pod_of(s, "two-cores").await?;
        anyhow::ensure!(
            empty_dir_limit(&cci, "big") == Some(Some("15Gi".to_owned())),
            "emptyDir big is not on the 2-vCPU CCI pod with sizeLimit 15Gi: {}",
            volumes_view(&cci)
        );
        Ok(Outcome::Passed)
    })
}

/// Creates a pod of `policy` with `volume`, which CCI cannot take: it must be admitted without
/// the virtual node's toleration or affinity, get a KeptLocal Warning event naming the volume,
/// and run on a cluster node, with nothing on CCI.
async fn kept_local_with(
    s: &Scenario,
    policy: &str,
    volume: serde_json::Value,
) -> anyhow::Result<()> {
    let name = format!("kept-{}", policy.to_lowercase());
    let volume_name = volume["name"].as_str().unwrap_or_default().to_owned();
    let mut pod = with_volume(enforce_pod(&name)?, volume)?;
    pod.metadata
        .labels
        .get_or_insert_default()
        .insert(super::POLICY_LABEL.into(), policy.into());
    let created = s
        .api::<Pod>()
        .create(&PostParams::default(), &pod)
        .await
        .with_context(|| format!("create pod {name} (expected admitted, kept local)"))?;
    anyhow::ensure!(
        !tolerates_virtual_node(&created) && !requires_virtual_node(&created),
        "pod {name} was marked for the virtual node: {:?}",
        created.spec.as_ref().map(|s| (&s.tolerations, &s.affinity))
    );
    let event = wait::until(
        &format!("a KeptLocal Warning event on pod {name}"),
        PATIENCE,
        || async { Ok(kept_local_events(s, &name).await?.into_iter().next()) },
        || s.diagnose(),
    )
    .await?;
    let message = event.message.clone().unwrap_or_default();
    anyhow::ensure!(
        event.type_.as_deref() == Some("Warning") && message.contains(&volume_name),
        "the KeptLocal event of {name} is not a Warning naming {volume_name:?}: {:?} {message}",
        event.type_
    );
    let pods = s.api::<Pod>();
    wait::until(
        &format!("pod {name} Running on a cluster node"),
        PATIENCE,
        || async {
            let p = pods.get(&name).await.map_err(|source| crate::Error::Kube {
                context: format!("read pod {name}"),
                source,
            })?;
            let node = p.spec.as_ref().and_then(|sp| sp.node_name.clone());
            let running = p.status.and_then(|st| st.phase).as_deref() == Some("Running");
            Ok((running && node.is_some_and(|n| n != s.virtual_node())).then_some(()))
        },
        || s.diagnose(),
    )
    .await?;
    anyhow::ensure!(
        s.cci_pods().await?.is_empty(),
        "CCI holds a pod although {name} was kept local"
    );
    Ok(())
}

/// `pod` with 2 vCPU and 4Gi (requests and limits) in its one container.
fn two_cores(mut pod: Pod) -> anyhow::Result<Pod> {
    let size: BTreeMap<String, Quantity> = [
        ("cpu".to_owned(), Quantity("2".into())),
        ("memory".to_owned(), Quantity("4Gi".into())),
    ]
    .into();
    let container = &mut pod.spec.as_mut().context("spec")?.containers[0];
    container.resources = Some(k8s_openapi::api::core::v1::ResourceRequirements {
        requests: Some(size.clone()),
        limits: Some(size),
        ..Default::default()
    });
    Ok(pod)
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
        if !super::has(s, Gate::DownwardApiAndProjected) {
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
        if !super::has(s, Gate::DownwardApiAndProjected) {
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
        if !super::has(s, Gate::EtcLocaltimeHostPath) {
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

/// VOL-08: flexVolume and local volumes are refused for a pod that must burst; an `auto` or
/// `localPrefer` pod with the same flexVolume, which can still run in the cluster, is admitted
/// unmarked for the virtual node, with a KeptLocal Warning event naming the volume, and runs on
/// a cluster node (§5's [design] choice).
pub fn vol_08(s: &Scenario) -> BodyFuture<'_> {
    Box::pin(async move {
        let flex_volume =
            serde_json::json!({"name": "flex-vol", "flexVolume": {"driver": "example.com/lvm"}});
        let flex = with_volume(enforce_pod("flex")?, flex_volume.clone())?;
        expect_refused(s, &flex, &["flex-vol", "flexVolume"]).await?;
        for policy in ["auto", "localPrefer"] {
            kept_local_with(s, policy, flex_volume.clone())
                .await
                .with_context(|| format!("a {policy} pod with a flexVolume"))?;
        }

        // A local PersistentVolume bound to a claim of a no-provisioner class (bound ahead by
        // the claim's volumeName, as an operator binds a local disk): the pod must be refused
        // for what the claim really holds, a disk of one node.
        let class = format!("local-{}", s.namespace);
        let sc: StorageClass = serde_json::from_value(serde_json::json!({
            "apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
            "metadata": {"name": class},
            "provisioner": "kubernetes.io/no-provisioner",
            "volumeBindingMode": "WaitForFirstConsumer"
        }))?;
        let classes: Api<StorageClass> = Api::all(s.client.clone());
        classes.create(&PostParams::default(), &sc).await?;
        let pv_name = format!("local-{}", s.namespace);
        let pv: PersistentVolume = serde_json::from_value(serde_json::json!({
            "apiVersion": "v1", "kind": "PersistentVolume",
            "metadata": {"name": pv_name},
            "spec": {
                "capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"],
                "persistentVolumeReclaimPolicy": "Retain", "storageClassName": class,
                "local": {"path": "/mnt/disks/ssd1"},
                "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                    {"key": "kubernetes.io/hostname", "operator": "In", "values": ["kwok-node-0"]}
                ]}]}}
            }
        }))?;
        let volumes: Api<PersistentVolume> = Api::all(s.client.clone());
        volumes.create(&PostParams::default(), &pv).await?;
        let pvc: PersistentVolumeClaim = serde_json::from_value(serde_json::json!({
            "apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": {"name": "local-claim"},
            "spec": {"storageClassName": class, "accessModes": ["ReadWriteOnce"],
                     "volumeName": pv_name,
                     "resources": {"requests": {"storage": "1Gi"}}}
        }))?;
        let claims = s.api::<PersistentVolumeClaim>();
        claims.create(&PostParams::default(), &pvc).await?;
        let bound = wait::until(
            "claim local-claim Bound to the local PersistentVolume",
            PATIENCE,
            || async {
                let c = claims
                    .get("local-claim")
                    .await
                    .map_err(|source| crate::Error::Kube {
                        context: "read claim local-claim".into(),
                        source,
                    })?;
                Ok((c.status.and_then(|st| st.phase).as_deref() == Some("Bound")).then_some(()))
            },
            || async { s.diagnose().await },
        )
        .await;
        let local = with_volume(
            enforce_pod("local")?,
            serde_json::json!({"name": "local-vol", "persistentVolumeClaim": {"claimName": "local-claim"}}),
        )?;
        let result = match bound {
            Ok(()) => expect_refused(s, &local, &["local-vol", "no-provisioner"]).await,
            Err(e) => Err(e.into()),
        };
        let _ = claims.delete("local-claim", &DeleteParams::default()).await;
        let _ = volumes.delete(&pv_name, &DeleteParams::default()).await;
        let _ = classes.delete(&class, &DeleteParams::default()).await;
        result?;
        Ok(Outcome::Passed)
    })
}
