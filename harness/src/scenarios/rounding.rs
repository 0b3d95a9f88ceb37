//! RES-01: requests and limits to the expected CCI flavour and annotations (BEHAVIOR.md §1, §4).

use std::time::Duration;

use anyhow::Context as _;
use k8s_openapi::api::core::v1::{Container, Pod};
use kube::api::PostParams;

use super::{BodyFuture, POLICY_LABEL, cluster_uid_of, converge};
use crate::catalogue::Outcome;
use crate::scenario::Scenario;
use crate::{fixtures, wait};

const PATIENCE: Duration = Duration::from_secs(120);
const SIZE: &str = "resource.cci.io/size";
const BURST_CPU: &str = "virtual-kubelet.cci.io/burst-pod-cpu";
const BURST_MEMORY: &str = "virtual-kubelet.cci.io/burst-pod-memory";

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
    // NB: no row with limits above requests yet. §4 (and burst_rules::flavour's docs) size two
    // containers of request 0.5 / limit 1 vCPU, 1 / 2 GiB as 1_2 (max of the sum of requests
    // and each limit), but the engine first raises every request to its limit (CCI wants them
    // equal) and sizes the result: 2_4. Which is right is an open question for the lead; the
    // row belongs here once it is decided.
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
                size == Some(row.size),
                "row {}: CCI pod {SIZE}={size:?}, expected {}",
                row.name,
                row.size
            );
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
