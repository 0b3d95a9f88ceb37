//! `decide` on structured, arbitrary pods: any policy and owner chain, release, resources
//! (from a menu of tricky quantities or raw text), volumes of every kind, mounts with and
//! without subPath, existing tolerations and affinity, the hostPath annotation (valid-looking or
//! raw), pod-size-specs, Volcano. Run: `RUSTC_BOOTSTRAP=1 cargo fuzz run decide` in `rules/`.
#![no_main]

use arbitrary::Arbitrary;
use burst_rules::decide::{AdmissionInput, decide};
use burst_rules::policy::OwnerFacts;
use burst_rules::release::Release;
use k8s_openapi::api::core::v1::Pod;
use libfuzzer_sys::fuzz_target;
use serde_json::{Value, json};

#[path = "check.rs"]
mod check;

#[derive(Arbitrary, Debug)]
enum Text {
    Menu(u8),
    Raw(String),
}

impl Text {
    fn get(&self, menu: &[&str]) -> String {
        match self {
            Text::Menu(i) => menu[usize::from(*i) % menu.len()].to_string(),
            Text::Raw(s) => s.clone(),
        }
    }
}

const QUANTITIES: &[&str] = &[
    "250m", "500m", "1", "2", "64", "65", "0.5", "1.5", "1e3", "512Mi", "1Gi", "1536Mi", "10Gi",
    "11Gi", "513Gi", "1K", "1k", "-1", "0", "1E", "1e-3", "", ".5", "100Ei", "1Ti",
];
const POLICIES: &[&str] = &["enforce", "auto", "localPrefer", "off", "Enforce", ""];
const KINDS: &[&str] = &[
    "ReplicaSet",
    "Deployment",
    "Job",
    "CronJob",
    "StatefulSet",
    "DaemonSet",
];
const SIZE_SPECS: &[&str] = &["0.25_0.5", "2.00_4.0", "3_6", "64_512", "1_1", "x", "_"];
const SCHEDULERS: &[&str] = &["volcano", "default-scheduler", "", "other"];

#[derive(Arbitrary, Debug)]
struct Resources {
    request_cpu: Option<Text>,
    request_memory: Option<Text>,
    limit_cpu: Option<Text>,
    limit_memory: Option<Text>,
}

impl Resources {
    fn json(&self) -> Value {
        let map = |cpu: &Option<Text>, memory: &Option<Text>| {
            let mut m = serde_json::Map::new();
            if let Some(c) = cpu {
                m.insert("cpu".into(), c.get(QUANTITIES).into());
            }
            if let Some(mem) = memory {
                m.insert("memory".into(), mem.get(QUANTITIES).into());
            }
            Value::Object(m)
        };
        json!({
            "requests": map(&self.request_cpu, &self.request_memory),
            "limits": map(&self.limit_cpu, &self.limit_memory),
        })
    }
}

#[derive(Arbitrary, Debug)]
struct Volume {
    name: u8,
    kind: u8,
    detail: Text,
    sub_path: bool,
    mounted_by_init: bool,
}

impl Volume {
    fn name(&self) -> String {
        format!("v{}", self.name % 6)
    }

    fn json(&self) -> Value {
        let name = self.name();
        let detail = self.detail.get(&[
            "/var/log",
            "/etc/localtime",
            "/etc/localtime/",
            "sfs-claim",
            "evs-claim",
            "bare",
            "nope",
            "10Gi",
            "1536Mi",
            "0",
        ]);
        match self.kind % 12 {
            0 => json!({"name": name, "hostPath": {"path": detail}}),
            1 => json!({"name": name, "emptyDir": {}}),
            2 => json!({"name": name, "emptyDir": {"sizeLimit": detail}}),
            3 => json!({"name": name, "configMap": {"name": "c"}}),
            4 => json!({"name": name, "secret": {"secretName": "s"}}),
            5 => json!({"name": name, "downwardAPI": {"items": []}}),
            6 => {
                json!({"name": name, "projected": {"sources": [{"serviceAccountToken": {"path": "t"}}]}})
            }
            7 => json!({"name": format!("kube-api-access-{name}"), "projected": {"sources": [
                {"serviceAccountToken": {"path": "token"}}, {"configMap": {"name": "kube-root-ca.crt"}}]}}),
            8 => json!({"name": name, "persistentVolumeClaim": {"claimName": detail}}),
            9 => json!({"name": name, "flexVolume": {"driver": "x"}}),
            10 => json!({"name": name, "nfs": {"server": "s", "path": "/"}}),
            _ => json!({"name": name}),
        }
    }
}

#[derive(Arbitrary, Debug)]
struct Input {
    release: (u8, u8, u8),
    pod_policy: Option<Text>,
    new_label: Option<Text>,
    owners: Vec<(u8, Option<Text>)>,
    containers: Vec<Resources>,
    init: Vec<Resources>,
    sidecar: bool,
    pod_level: Option<Resources>,
    volumes: Vec<Volume>,
    tolerations: u8,
    affinity: u8,
    annotation: Option<Text>,
    size_specs: Option<Text>,
    scheduler: Option<Text>,
    volcano: Option<(u8, u8, u8)>,
    no_spec: bool,
}

fn annotation_menu() -> Vec<&'static str> {
    vec![
        r#"[{"name":"*","policyType":"remove"}]"#,
        r#"[{"name":"v0","policyType":"replaceByEmptyDir","emptyDir":{"sizeLimit":"10Gi"}}]"#,
        r#"[{"name":"v1","policyType":"remove"},{"name":"*","policyType":"replaceByEmptyDir","emptyDir":{"sizeLimit":"1Gi"}}]"#,
        r#"[{"name":"v2","policyType":"replaceByLocalDir"}]"#,
        r#"[{"name":"v3","policyType":"remove"}]"#,
        r#"[{"name":"*","policyType":"replaceByEmptyDir","emptyDir":{"sizeLimit":"20Gi"}}]"#,
        "[",
        "[]",
    ]
}

fn pod(input: &Input) -> Option<Pod> {
    let mut labels = serde_json::Map::new();
    if let Some(p) = &input.pod_policy {
        labels.insert(
            "virtual-kubelet.io/burst-to-cci".into(),
            p.get(POLICIES).into(),
        );
    }
    if let Some(p) = &input.new_label {
        labels.insert(
            "bursting.cci.io/burst-to-cci".into(),
            p.get(POLICIES).into(),
        );
    }
    let mut annotations = serde_json::Map::new();
    if let Some(a) = &input.annotation {
        annotations.insert(
            "coordinator.cci.io/hostpath-replacement".into(),
            a.get(&annotation_menu()).into(),
        );
    }
    if let Some(s) = &input.size_specs {
        annotations.insert(
            "resource.cci.io/pod-size-specs".into(),
            s.get(SIZE_SPECS).into(),
        );
    }
    let volumes: Vec<Value> = input.volumes.iter().take(8).map(Volume::json).collect();
    let mounts = |init: bool| -> Vec<Value> {
        input
            .volumes
            .iter()
            .take(8)
            .filter(|v| v.mounted_by_init == init)
            .map(|v| {
                let mut m = json!({"name": v.name(), "mountPath": format!("/m/{}", v.name)});
                if v.sub_path {
                    m["subPath"] = "s".into();
                }
                m
            })
            .collect()
    };
    let mut containers: Vec<Value> = input
        .containers
        .iter()
        .take(4)
        .enumerate()
        .map(|(i, r)| json!({"name": format!("c{i}"), "resources": r.json()}))
        .collect();
    if containers.is_empty() {
        containers.push(json!({"name": "c"}));
    }
    containers[0]["volumeMounts"] = mounts(false).into();
    let mut init: Vec<Value> = input
        .init
        .iter()
        .take(3)
        .enumerate()
        .map(|(i, r)| json!({"name": format!("i{i}"), "resources": r.json()}))
        .collect();
    if let Some(first) = init.first_mut() {
        first["volumeMounts"] = mounts(true).into();
        if input.sidecar {
            first["restartPolicy"] = "Always".into();
        }
    }
    let ours =
        json!({"key": "virtual-kubelet.io/provider", "operator": "Exists", "effect": "NoSchedule"});
    let other = json!({"key": "x", "operator": "Exists"});
    let tolerations = match input.tolerations % 4 {
        0 => Value::Null,
        1 => json!([]),
        2 => json!([other]),
        _ => json!([other, ours]),
    };
    let expr = |op: &str| json!({"key": "type", "operator": op, "values": ["virtual-kubelet"]});
    let affinity = match input.affinity % 7 {
        0 => Value::Null,
        1 => json!({}),
        2 => json!({"nodeAffinity": {}}),
        3 => {
            json!({"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": []}}})
        }
        4 => {
            json!({"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
            {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n"]}]},
            {"matchExpressions": [expr("In")]}]}}})
        }
        5 => json!({"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
            {"weight": 100, "preference": {"matchExpressions": [expr("NotIn")]}}]}}),
        _ => json!({"podAntiAffinity": {}}),
    };
    let mut spec = json!({"containers": containers, "volumes": volumes});
    if !init.is_empty() {
        spec["initContainers"] = init.into();
    }
    if !tolerations.is_null() {
        spec["tolerations"] = tolerations;
    }
    if !affinity.is_null() {
        spec["affinity"] = affinity;
    }
    if let Some(s) = &input.scheduler {
        spec["schedulerName"] = s.get(SCHEDULERS).into();
    }
    if let Some(r) = &input.pod_level {
        spec["resources"] = r.json();
    }
    let mut pod = json!({"metadata": {"name": "p", "namespace": "ns", "labels": labels, "annotations": annotations}});
    if !input.no_spec {
        pod["spec"] = spec;
    }
    serde_json::from_value(pod).ok()
}

fuzz_target!(|input: Input| {
    let Some(pod) = pod(&input) else {
        return;
    };
    let (a, b, c) = input.release;
    let owners = input
        .owners
        .iter()
        .take(3)
        .map(|(k, policy)| {
            let labels = policy
                .iter()
                .map(|p| {
                    (
                        "virtual-kubelet.io/burst-to-cci".to_string(),
                        p.get(POLICIES),
                    )
                })
                .collect();
            OwnerFacts {
                kind: KINDS[usize::from(*k) % KINDS.len()].into(),
                name: "ns/o".into(),
                labels,
            }
        })
        .collect();
    let mut cluster = check::cluster();
    cluster.volcano_version = input
        .volcano
        .map(|(a, b, c)| Release::new(u32::from(a % 2), u32::from(b % 20), u32::from(c % 12)));
    let input = AdmissionInput::new(
        pod,
        Release::new(u32::from(a % 2), u32::from(b % 6), u32::from(c % 40)),
    )
    .with_owners(owners)
    .with_cluster(cluster);
    check::decision_holds(&input, &decide(&input));
});
