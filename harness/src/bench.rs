//! `burstcert bench`: the engine's speed and memory, measured on the environment the suites use
//! (real control plane, the add-on on the host node, the mock CCI). Numbers are printed, never
//! asserted: a benchmark informs, it does not pass or fail.
//!
//! 1. **Start-up ratio**: a Deployment of N replicas to all-Running on `bursting-node`, then the
//!    same Deployment on kwok nodes of the same cluster, same run; the ratio of the two times
//!    (issue target ≤ 1.2).
//! 2. **Engine memory**: the virtual kubelet's resident set with P burst pods, each mounting its
//!    own ConfigMap of K KiB (issue target ≤ 256 MiB at 4000 pods and 4000 × 300 KiB).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod};
use kube::api::{Api, DeleteParams, ListParams, ObjectMeta, PostParams};

use crate::cluster::nodes::{NodeShape, create_nodes};
use crate::env::Env;
use crate::error::{Error, Result};
use crate::scenarios::POLICY_LABEL;
use crate::wait;

/// What to measure.
#[derive(Clone, Debug)]
pub struct BenchOptions {
    /// Replicas of the start-up comparison (0 skips it).
    pub replicas: usize,
    /// Burst pods for the memory measurement (0 skips it).
    pub memory_pods: usize,
    /// Size of each pod's ConfigMap, KiB.
    pub configmap_kib: usize,
}

/// What was measured.
#[derive(Clone, Debug, Default)]
pub struct BenchReport {
    /// Seconds until N replicas ran on `bursting-node`.
    pub burst_seconds: Option<f64>,
    /// Seconds until N replicas ran on kwok nodes.
    pub kwok_seconds: Option<f64>,
    /// Virtual kubelet RSS before the memory run, MiB.
    pub rss_idle_mib: Option<f64>,
    /// Virtual kubelet RSS with the pods and ConfigMaps, MiB.
    pub rss_loaded_mib: Option<f64>,
    /// Peak RSS (VmHWM) of the virtual kubelet, MiB.
    pub rss_peak_mib: Option<f64>,
    /// The options it ran with.
    pub replicas: usize,
    /// Pods of the memory run.
    pub memory_pods: usize,
    /// KiB per ConfigMap.
    pub configmap_kib: usize,
    /// The engine binary the host node ran (its RSS is the engine's).
    pub engine_binary: Option<std::path::PathBuf>,
}

impl std::fmt::Display for BenchReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let (Some(b), Some(k)) = (self.burst_seconds, self.kwok_seconds) {
            writeln!(
                f,
                "start-up, {} replicas: bursting-node {b:.1} s, kwok nodes {k:.1} s, ratio {:.2} (target <= 1.20)",
                self.replicas,
                b / k
            )?;
        }
        if let (Some(idle), Some(loaded)) = (self.rss_idle_mib, self.rss_loaded_mib) {
            writeln!(
                f,
                "engine RSS: {idle:.0} MiB idle, {loaded:.0} MiB with {} pods and {} ConfigMaps of {} KiB (peak {:.0} MiB; target <= 256 MiB)",
                self.memory_pods,
                self.memory_pods,
                self.configmap_kib,
                self.rss_peak_mib.unwrap_or(0.0)
            )?;
        }
        if let Some(binary) = &self.engine_binary {
            // NB: a debug build's RSS is not the product's (its code alone adds ~60 MiB idle).
            let debug = binary.components().any(|c| c.as_os_str() == "debug");
            writeln!(
                f,
                "engine binary: {}{}",
                binary.display(),
                if debug {
                    " (a debug build: for the RSS target measure a release build, see the README)"
                } else {
                    ""
                }
            )?;
        }
        Ok(())
    }
}

fn kube(context: &str) -> impl FnOnce(kube::Error) -> Error + '_ {
    move |source| Error::Kube {
        context: context.to_owned(),
        source,
    }
}

/// `VmRSS` and `VmHWM` of a process, MiB.
fn rss_mib(pid: u32) -> Option<(f64, f64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| -> Option<f64> {
        let line = status.lines().find(|l| l.starts_with(name))?;
        let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kib / 1024.0)
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

fn engine_rss(env: &Env) -> Option<(f64, f64)> {
    env.engine_pids().into_iter().find_map(rss_mib)
}

async fn namespace(client: &kube::Client, name: &str) -> Result<Api<Pod>> {
    create_namespace(client, name).await?;
    Ok(Api::namespaced(client.clone(), name))
}

/// Creates namespace `name` and waits for its default service account (pods are refused
/// without it); shared with the soak.
pub(crate) async fn create_namespace(client: &kube::Client, name: &str) -> Result<()> {
    let ns = Namespace {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..ObjectMeta::default()
        },
        ..Namespace::default()
    };
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await
        .map_err(kube(name))?;
    let accounts: Api<k8s_openapi::api::core::v1::ServiceAccount> =
        Api::namespaced(client.clone(), name);
    wait::until(
        &format!("the default service account of {name}"),
        Duration::from_secs(30),
        || async {
            Ok(accounts
                .get_opt("default")
                .await
                .map_err(kube("get service account"))?
                .map(|_| ()))
        },
        || async { String::new() },
    )
    .await
}

/// A Deployment of small pods (0.25 vCPU / 512Mi, the smallest flavour), `labels` on its pods.
fn deployment(
    name: &str,
    replicas: usize,
    labels: BTreeMap<String, String>,
    only_on: &[String],
) -> Result<Deployment> {
    let mut pod_labels = labels;
    pod_labels.insert("app".into(), name.into());
    let affinity = (!only_on.is_empty()).then(|| {
        serde_json::json!({"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [{"matchExpressions": [{
                "key": "kubernetes.io/hostname", "operator": "In", "values": only_on
            }]}]
        }}})
    });
    serde_json::from_value(serde_json::json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": pod_labels},
                "spec": {
                    "affinity": affinity,
                    "containers": [{"name": "c", "image": "nginx:latest",
                        "resources": {"requests": {"cpu": "250m", "memory": "512Mi"},
                                      "limits": {"cpu": "250m", "memory": "512Mi"}}}]
                }
            }
        }
    }))
    .map_err(|e| Error::Step {
        step: format!("build deployment {name}"),
        detail: e.to_string(),
    })
}

/// Creates `deployment` in `ns` and returns the seconds until all its pods are Running.
async fn time_to_running(
    client: &kube::Client,
    ns: &str,
    deployment: &Deployment,
    replicas: usize,
    patience: Duration,
) -> Result<f64> {
    let name = deployment.metadata.name.clone().unwrap_or_default();
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let started = Instant::now();
    Api::<Deployment>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), deployment)
        .await
        .map_err(kube("create the benchmark deployment"))?;
    let last_report = std::sync::Mutex::new(Instant::now());
    wait::until(
        &format!("{replicas} pods of {name} Running"),
        patience,
        || async {
            let list = pods
                .list(&ListParams::default().labels(&format!("app={name}")))
                .await
                .map_err(kube("list benchmark pods"))?;
            let running = list
                .items
                .iter()
                .filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
                .count();
            if let Ok(mut last) = last_report.lock()
                && last.elapsed() > Duration::from_secs(10)
            {
                eprintln!(
                    "burstcert bench: {name}: {running}/{replicas} Running after {:.0} s",
                    started.elapsed().as_secs_f64()
                );
                *last = Instant::now();
            }
            Ok((running >= replicas).then(|| started.elapsed().as_secs_f64()))
        },
        || async { format!("after {:.0} s", started.elapsed().as_secs_f64()) },
    )
    .await
}

/// Waits until the virtual node carries no `node.kubernetes.io/` taint (a node just registered
/// carries the not-ready one until the node lifecycle controller lifts it); shared with the soak.
pub(crate) async fn wait_virtual_node_schedulable(client: &kube::Client) -> Result<()> {
    let nodes: Api<k8s_openapi::api::core::v1::Node> = Api::all(client.clone());
    wait::until(
        "bursting-node to be schedulable (no not-ready taint)",
        Duration::from_secs(90),
        || async {
            let node = nodes
                .get_opt(crate::env::VIRTUAL_NODE)
                .await
                .map_err(kube("get bursting-node"))?;
            Ok(node
                .filter(|n| {
                    !n.spec
                        .iter()
                        .flat_map(|s| s.taints.iter().flatten())
                        .any(|t| t.key.starts_with("node.kubernetes.io/"))
                })
                .map(|_| ()))
        },
        || async { String::new() },
    )
    .await
}

/// Runs the measurements the options ask for on `env`.
pub async fn run(env: &Env, options: &BenchOptions) -> Result<BenchReport> {
    let client = env.client().await?;
    let mut report = BenchReport {
        replicas: options.replicas,
        memory_pods: options.memory_pods,
        configmap_kib: options.configmap_kib,
        engine_binary: env.engine_binary().map(Path::to_path_buf),
        ..BenchReport::default()
    };
    // A node just registered carries the not-ready taint until the node lifecycle controller
    // lifts it; measuring before that would time the controller, not the engine.
    wait_virtual_node_schedulable(&client).await?;
    let suffix = &crate::cluster::local::random_name()[10..];
    if options.replicas > 0 {
        // Room for every replica on kwok nodes labelled for the benchmark (250 pods each).
        let per_node = 250;
        let count = options.replicas.div_ceil(per_node) + 1;
        let shapes: Vec<NodeShape> = (0..count)
            .map(|i| {
                let mut shape = NodeShape::standard(100 + i);
                shape.name = format!("bench-{suffix}-{i}");
                shape.cpu = "128".into();
                shape.memory = "512Gi".into();
                shape.max_pods = per_node as u32;
                shape
            })
            .collect();
        create_nodes(&client, &shapes).await?;
        let ns = format!("bench-{suffix}");
        namespace(&client, &ns).await?;
        let patience = Duration::from_secs(60 + options.replicas as u64);
        let burst = deployment(
            "burst",
            options.replicas,
            BTreeMap::from([(POLICY_LABEL.to_owned(), "enforce".to_owned())]),
            &[],
        )?;
        eprintln!(
            "burstcert bench: {} replicas on bursting-node ...",
            options.replicas
        );
        report.burst_seconds =
            Some(time_to_running(&client, &ns, &burst, options.replicas, patience).await?);
        let names: Vec<String> = shapes.iter().map(|s| s.name.clone()).collect();
        let kwok = deployment("kwok", options.replicas, BTreeMap::new(), &names)?;
        eprintln!(
            "burstcert bench: {} replicas on kwok nodes ...",
            options.replicas
        );
        report.kwok_seconds =
            Some(time_to_running(&client, &ns, &kwok, options.replicas, patience).await?);
        eprint!("{report}");
        let _ = Api::<Namespace>::all(client.clone())
            .delete(&ns, &DeleteParams::default())
            .await;
    }
    if options.memory_pods > 0 {
        report.rss_idle_mib = engine_rss(env).map(|r| r.0);
        let ns = format!("bench-mem-{suffix}");
        namespace(&client, &ns).await?;
        let maps: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
        let payload = "x".repeat(options.configmap_kib * 1024);
        let started = Instant::now();
        for i in 0..options.memory_pods {
            let map = ConfigMap {
                metadata: ObjectMeta {
                    name: Some(format!("cm-{i}")),
                    ..ObjectMeta::default()
                },
                data: Some(BTreeMap::from([("blob".to_owned(), payload.clone())])),
                ..ConfigMap::default()
            };
            maps.create(&PostParams::default(), &map)
                .await
                .map_err(kube("create a benchmark ConfigMap"))?;
            if i % 500 == 499 {
                eprintln!(
                    "burstcert bench: {} ConfigMaps created ({:.0} s)",
                    i + 1,
                    started.elapsed().as_secs_f64()
                );
            }
        }
        let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
        for i in 0..options.memory_pods {
            let pod: Pod = serde_json::from_value(serde_json::json!({
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": format!("p-{i}"), "labels": {POLICY_LABEL: "enforce", "app": "mem"}},
                "spec": {
                    "containers": [{"name": "c", "image": "nginx:latest",
                        "resources": {"requests": {"cpu": "250m", "memory": "512Mi"},
                                      "limits": {"cpu": "250m", "memory": "512Mi"}},
                        "volumeMounts": [{"name": "cm", "mountPath": "/etc/blob"}]}],
                    "volumes": [{"name": "cm", "configMap": {"name": format!("cm-{i}")}}]
                }
            }))
            .map_err(|e| Error::Step { step: "build a benchmark pod".into(), detail: e.to_string() })?;
            pods.create(&PostParams::default(), &pod)
                .await
                .map_err(kube("create a benchmark pod"))?;
            if i % 500 == 499 {
                eprintln!(
                    "burstcert bench: {} pods created ({:.0} s)",
                    i + 1,
                    started.elapsed().as_secs_f64()
                );
            }
        }
        let n = options.memory_pods;
        wait::until(
            &format!("{n} memory-run pods Running on bursting-node"),
            Duration::from_secs(120 + n as u64),
            || async {
                let list = pods
                    .list(&ListParams::default().labels("app=mem"))
                    .await
                    .map_err(kube("list memory-run pods"))?;
                let running = list
                    .items
                    .iter()
                    .filter(|p| {
                        p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
                    })
                    .count();
                Ok((running >= n).then_some(()))
            },
            || async { String::new() },
        )
        .await?;
        if let Some((rss, peak)) = engine_rss(env) {
            report.rss_loaded_mib = Some(rss);
            report.rss_peak_mib = Some(peak);
        }
        let _ = Api::<Namespace>::all(client.clone())
            .delete(&ns, &DeleteParams::default())
            .await;
    }
    Ok(report)
}
