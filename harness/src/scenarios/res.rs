//! RES: sizing burst pods to CCI flavours (BEHAVIOR.md §1, §4): RES-01…RES-03.
//!
//! RES-01: requests and limits to the expected CCI flavour and annotations; RES-02:
//! `resource.cci.io/pod-size-specs` pins the flavour, a pin that is no flavour or too small is
//! refused; RES-03: a pod bigger than every flavour gets a Warning event and nothing on CCI.

use std::time::Duration;

use anyhow::Context as _;
use k8s_openapi::api::core::v1::{Container, Event, Pod, ResourceRequirements};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::api::PostParams;

use super::admission::{create, events_on, expect_refused};
use super::cci_pod::cci_pod_of;
use super::{BodyFuture, POLICY_LABEL, cluster_uid_of, converge, enforce_selector, pod_with};
use crate::scenario::Outcome;
use crate::scenario::Scenario;
use crate::{fixtures, snapshot, wait};

const PATIENCE: Duration = Duration::from_secs(120);
/// How long RES-02's pinned pod may take to run on CCI.
const PINNED_PATIENCE: Duration = Duration::from_secs(60);
/// CCI pod annotation: the flavour the service sized the pod to.
const SIZE: &str = "resource.cci.io/size";
const BURST_CPU: &str = "virtual-kubelet.cci.io/burst-pod-cpu";
const BURST_MEMORY: &str = "virtual-kubelet.cci.io/burst-pod-memory";
/// Pod annotation pinning the CCI flavour.
const POD_SIZE_SPECS: &str = "resource.cci.io/pod-size-specs";

/// A container: (requests cpu, memory), (limits cpu, memory); `""` leaves one out.
type Res = ((&'static str, &'static str), (&'static str, &'static str));

/// One row: name, app containers, init containers, then what §4's table says by hand: the CCI
/// size and the cluster pod's cpu and memory annotations.
struct Row {
    name: &'static str,
    containers: &'static [Res],
    init: &'static [Res],
    size: &'static str,
    cpu: &'static str,
    memory: &'static str,
}

/// Worked by hand from BEHAVIOR.md §4: size = max(sum of requests, each limit, largest init
/// container), rounded up to the first flavour of the table that fits both.
const ROWS: &[Row] = &[
    // Exactly a flavour (the seed's nginx).
    Row {
        name: "exact",
        containers: &[(("500m", "1Gi"), ("500m", "1Gi"))],
        init: &[],
        size: "0.5_1",
        cpu: "0.5u",
        memory: "1Gi",
    },
    // The smallest flavour: 0.25 vCPU, and 256Mi rounds up to 0.5 GiB.
    Row {
        name: "smallest",
        containers: &[(("250m", "256Mi"), ("250m", "256Mi"))],
        init: &[],
        size: "0.25_0.5",
        cpu: "0.25u",
        memory: "0.5Gi",
    },
    // 0.3 vCPU does not fit 0.25: 0.5 vCPU; 600Mi rounds up to 1 GiB.
    Row {
        name: "round-up",
        containers: &[(("300m", "600Mi"), ("300m", "600Mi"))],
        init: &[],
        size: "0.5_1",
        cpu: "0.5u",
        memory: "1Gi",
    },
    // Two containers: requests are summed (2 vCPU, 4 GiB).
    Row {
        name: "summed",
        containers: &[(("1", "2Gi"), ("1", "2Gi")), (("1", "2Gi"), ("1", "2Gi"))],
        init: &[],
        size: "2_4",
        cpu: "2u",
        memory: "4Gi",
    },
    // Limits above requests, two containers: max(0.5 + 0.5, 1, 1) vCPU, max(1 + 1, 2, 2) GiB.
    // Not the 2_4 the limits add up to: each limit counts on its own.
    Row {
        name: "limits-above",
        containers: &[
            (("500m", "1Gi"), ("1", "2Gi")),
            (("500m", "1Gi"), ("1", "2Gi")),
        ],
        init: &[],
        size: "1_2",
        cpu: "1u",
        memory: "2Gi",
    },
    // One container whose limit is above its request: the limit sizes the pod (2 vCPU, 4 GiB),
    // though CCI gets the request as both (the engine pins the size for CCI).
    Row {
        name: "limit-sizes",
        containers: &[(("500m", "1Gi"), ("2", "4Gi"))],
        init: &[],
        size: "2_4",
        cpu: "2u",
        memory: "4Gi",
    },
    // The manual's example: 6 vCPU / 15 GiB becomes 8 vCPU / 16 GiB.
    Row {
        name: "manual",
        containers: &[(("6", "15Gi"), ("6", "15Gi"))],
        init: &[],
        size: "8_16",
        cpu: "8u",
        memory: "16Gi",
    },
    // An init container bigger than the app: it sets both (1 vCPU, 3 GiB).
    Row {
        name: "init-wins",
        containers: &[(("250m", "512Mi"), ("250m", "512Mi"))],
        init: &[(("1", "3Gi"), ("1", "3Gi"))],
        size: "1_3",
        cpu: "1u",
        memory: "3Gi",
    },
    // Per resource: cpu from the app (2), memory from the init container (6 GiB).
    Row {
        name: "init-mixed",
        containers: &[(("2", "1Gi"), ("2", "1Gi"))],
        init: &[(("500m", "6Gi"), ("500m", "6Gi"))],
        size: "2_6",
        cpu: "2u",
        memory: "6Gi",
    },
];

fn container(name: String, image: &str, ((rc, rm), (lc, lm)): Res) -> anyhow::Result<Container> {
    let pick = |cpu: &str, mem: &str| {
        let mut m = serde_json::Map::new();
        if !cpu.is_empty() {
            m.insert("cpu".into(), cpu.into());
        }
        if !mem.is_empty() {
            m.insert("memory".into(), mem.into());
        }
        serde_json::Value::Object(m)
    };
    Ok(serde_json::from_value(serde_json::json!({
        "name": name,
        "image": image,
        "resources": { "requests": pick(rc, rm), "limits": pick(lc, lm) },
    }))?)
}

fn pod(row: &Row) -> anyhow::Result<Pod> {
    let mut pod: Pod = fixtures::load("seed/nginx-pod.yaml")?;
    pod.metadata.name = Some(row.name.to_owned());
    let labels = pod.metadata.labels.get_or_insert_default();
    labels.insert(POLICY_LABEL.into(), "enforce".into());
    labels.insert("app".into(), "res-01".into());
    let spec = pod.spec.as_mut().context("fixture has a spec")?;
    spec.containers = row
        .containers
        .iter()
        .enumerate()
        .map(|(i, r)| container(format!("app-{i}"), "nginx:alpine", *r))
        .collect::<anyhow::Result<_>>()?;
    let init: Vec<Container> = row
        .init
        .iter()
        .enumerate()
        .map(|(i, r)| container(format!("init-{i}"), "busybox", *r))
        .collect::<anyhow::Result<_>>()?;
    spec.init_containers = (!init.is_empty()).then_some(init);
    Ok(pod)
}

/// RES-01: for each row, the CCI pod carries `resource.cci.io/size` = the expected flavour and
/// the cluster pod `virtual-kubelet.cci.io/burst-pod-cpu` / `-memory`.
pub fn res_01(s: &Scenario) -> BodyFuture<'_> {
    Box::pin(async move {
        for row in ROWS {
            s.api::<Pod>()
                .create(&PostParams::default(), &pod(row)?)
                .await
                .with_context(|| format!("create row {}", row.name))?;
        }
        let pods = converge(s, "app=res-01", ROWS.len(), PATIENCE).await?;
        let cci = s.cci_pods().await?;
        for row in ROWS {
            let cluster = pods
                .iter()
                .find(|p| p.metadata.name.as_deref() == Some(row.name))
                .with_context(|| format!("row {}: no cluster pod", row.name))?;
            let uid = cluster.metadata.uid.as_deref().context("uid")?;
            let on_cci = cci
                .iter()
                .find(|p| cluster_uid_of(p) == Some(uid))
                .with_context(|| format!("row {}: no CCI pod", row.name))?;
            let size = on_cci
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(SIZE))
                .map(String::as_str);
            anyhow::ensure!(
                super::same_flavour(size, row.size),
                "row {}: CCI pod {SIZE}={size:?}, expected {}",
                row.name,
                row.size
            );
            // §4: CCI gets limits equal to requests, and "limits made equal to requests" keeps
            // the request (the mock already refuses unequal ones; this checks which value won).
            let cluster_spec = cluster.spec.as_ref().context("cluster pod spec")?;
            for (c, sent) in cluster_spec.containers.iter().zip(&on_cci.spec.containers) {
                let requests = c.resources.as_ref().and_then(|r| r.requests.clone());
                let sent_limits = sent.resources.as_ref().and_then(|r| r.limits.clone());
                anyhow::ensure!(
                    sent_limits == requests,
                    "row {}: container {} went to CCI with limits {sent_limits:?}, expected its requests {requests:?}",
                    row.name,
                    c.name
                );
            }
        }
        // The engine writes the cluster pod's annotations right after the CCI pod exists.
        for row in ROWS {
            let api = s.api::<Pod>();
            let got = wait::until(
                &format!(
                    "row {}: cluster pod annotated {BURST_CPU}={} {BURST_MEMORY}={}",
                    row.name, row.cpu, row.memory
                ),
                PATIENCE,
                || async {
                    let pod = api
                        .get(row.name)
                        .await
                        .map_err(|source| crate::Error::Kube {
                            context: format!("get pod {}", row.name),
                            source,
                        })?;
                    let a = pod.metadata.annotations.unwrap_or_default();
                    let cpu = a.get(BURST_CPU).cloned();
                    let memory = a.get(BURST_MEMORY).cloned();
                    Ok((cpu.is_some() && memory.is_some()).then_some((cpu, memory)))
                },
                || s.diagnose(),
            )
            .await?;
            anyhow::ensure!(
                got == (Some(row.cpu.to_owned()), Some(row.memory.to_owned())),
                "row {}: cluster pod annotations {got:?}, expected ({}, {})",
                row.name,
                row.cpu,
                row.memory
            );
        }
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
        converge(s, &enforce_selector(), 1, PINNED_PATIENCE).await?;
        let cci = cci_pod_of(s, "pinned").await?;
        let size = cci.metadata.annotations.as_ref().and_then(|a| a.get(SIZE));
        anyhow::ensure!(
            super::same_flavour(size.map(String::as_str), "2_4"),
            "the CCI pod's {SIZE} is {size:?}, not the pinned 2_4"
        );
        Ok(Outcome::Passed)
    })
}

/// The Warning events on cluster pod `name` of the scenario, oldest first.
async fn warnings_on(s: &Scenario, name: &str) -> crate::Result<Vec<Event>> {
    let mut events = events_on(s, name).await?;
    events.retain(|e| e.type_.as_deref() == Some("Warning"));
    Ok(events)
}

/// How many CCI pods of cluster pod `name` (by its UID, the engine's label; with `labels`, by
/// those cluster labels too, which CCI pods carry over) the mock ever held at once: 0 means
/// none was ever created, not even briefly.
async fn cci_peak_of(s: &Scenario, name: &str, labels: &str) -> anyhow::Result<u64> {
    let pod = s.api::<Pod>().get(name).await?;
    let uid = pod.metadata.uid.context("uid")?;
    let mut selector = format!("{}={uid}", cci_api::LABEL_CLUSTER_POD_UID);
    if !labels.is_empty() {
        selector = format!("{labels},{selector}");
    }
    let peak = s
        .mock_admin()?
        .inside(&format!(
            "/_mock/peak?namespace={}&labelSelector={}",
            s.cci_namespace(),
            selector.replace('=', "%3D").replace(',', "%2C")
        ))
        .await?;
    peak["active"]["peak"]
        .as_u64()
        .with_context(|| format!("no active peak in {peak}"))
}

/// RES-03: an `enforce` pod asking 80 vCPU / 100Gi (beyond 64 vCPU / 512 GiB, the largest
/// flavours) is admitted and bound to the virtual node; the virtual kubelet refuses it: a
/// Warning event on the pod names the flavour problem with the numbers, its status says
/// `ProviderFailed`, and the mock never holds a CCI pod for it — checked when the event
/// appears, and again after a pod that fits has gone to CCI and come back Running through the
/// engine's status rounds (the engine was not merely slow to get to the big one).
pub fn res_03(s: &Scenario) -> BodyFuture<'_> {
    Box::pin(async move {
        let mut big = pod_with("too-big", serde_json::json!([]), &[])?;
        let size = std::collections::BTreeMap::from([
            ("cpu".to_owned(), Quantity("80".into())),
            ("memory".to_owned(), Quantity("100Gi".into())),
        ]);
        big.spec.as_mut().context("spec")?.containers[0].resources = Some(ResourceRequirements {
            requests: Some(size.clone()),
            limits: Some(size),
            claims: None,
        });
        s.api::<Pod>()
            .create(&PostParams::default(), &big)
            .await
            .context("create the 80 vCPU / 100Gi pod (§4: admitted, refused by the engine)")?;

        let event =
            wait::until(
                &format!(
                    "pod too-big bound to {} with a Warning event naming the flavour problem",
                    s.virtual_node()
                ),
                PATIENCE,
                || async {
                    let pod = s.api::<Pod>().get("too-big").await.map_err(|source| {
                        crate::Error::Kube {
                            context: "get pod too-big".into(),
                            source,
                        }
                    })?;
                    let bound = pod.spec.as_ref().and_then(|sp| sp.node_name.as_deref())
                        == Some(s.virtual_node());
                    let event = warnings_on(s, "too-big").await?.into_iter().find(|e| {
                        e.message
                            .as_deref()
                            .is_some_and(|m| m.contains("fits no CCI flavour"))
                    });
                    Ok(event.filter(|_| bound))
                },
                || s.diagnose(),
            )
            .await?;
        let message = event.message.clone().unwrap_or_default();
        for needle in ["too-big", "cpu 80 and memory 100Gi", "64 vCPU / 512 GiB"] {
            anyhow::ensure!(
                message.contains(needle),
                "the Warning event does not mention {needle:?}: {message}"
            );
        }
        anyhow::ensure!(
            s.cci_pods().await?.is_empty(),
            "CCI holds a pod for the pod that fits no flavour"
        );
        snapshot::settings().bind(|| insta::assert_snapshot!("res_03_no_flavour_event", message));

        // A pod that fits, created after: once it ran on CCI and its Running status came back
        // through the engine's status rounds, the big one must still have nothing there
        // (`converge` allows no CCI pod of the scenario but the one it waits for).
        let fits = pod_with("fits", serde_json::json!([]), &[])?;
        s.api::<Pod>().create(&PostParams::default(), &fits).await?;
        converge(s, "scenario-pod=fits", 1, PATIENCE).await?;
        anyhow::ensure!(
            cci_peak_of(s, "fits", "scenario-pod=fits").await? == 1,
            "the mock's peak does not see the pod that fits by its cluster labels"
        );
        let peak = cci_peak_of(s, "too-big", "").await?;
        anyhow::ensure!(
            peak == 0,
            "the mock held {peak} CCI pod(s) for the pod that fits no flavour at some point"
        );
        let pod = s.api::<Pod>().get("too-big").await?;
        let status = pod.status.unwrap_or_default();
        anyhow::ensure!(
            status.phase.as_deref() != Some("Running")
                && status.reason.as_deref() == Some("ProviderFailed"),
            "pod too-big: phase {:?} reason {:?}, expected not Running and ProviderFailed",
            status.phase,
            status.reason
        );
        Ok(Outcome::Passed)
    })
}
