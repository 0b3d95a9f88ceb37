//! Helpers shared by the integration tests: fixtures, an RFC 6902 applier, pod builders.
#![allow(dead_code)] // each test binary uses a different part

use std::collections::BTreeMap;
use std::path::PathBuf;

use burst_rules::decide::{AdmissionInput, ClusterFacts, Decision, decide};
use burst_rules::policy::{LABEL, OwnerFacts};
use burst_rules::release::Release;
use k8s_openapi::api::core::v1::Pod;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// The repository's `fixtures/` folder.
pub fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("fixtures")
}

/// Parses YAML as `T`, through a JSON value.
///
/// NB: not `serde_saphyr::from_str::<T>`: that instantiates the YAML deserializer for every
/// Kubernetes type a test reads (Pod, Deployment, CronJob, ...) and made this test binary the
/// slowest unit of a cold `cargo test` (34 s -> 23 s for this binary alone, 2 cores); the JSON
/// path is instantiated anyway. The cost: a type error names the field, not the line.
pub fn from_yaml<T: DeserializeOwned>(text: &str) -> Result<T, String> {
    let value: Value = serde_saphyr::from_str(text).map_err(|e| e.to_string())?;
    serde_json::from_value(value).map_err(|e| e.to_string())
}

/// Parses one fixture (YAML) as `T`.
pub fn fixture<T: DeserializeOwned>(relative: &str) -> T {
    let path = fixtures_dir().join(relative);
    let text =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    from_yaml(&text).unwrap_or_else(|e| panic!("parse {relative}: {e}"))
}

/// A pod from YAML.
pub fn pod(yaml: &str) -> Pod {
    from_yaml(yaml).unwrap_or_else(|e| panic!("parse pod: {e}\n{yaml}"))
}

/// `X.Y.Z`.
pub fn release(text: &str) -> Release {
    text.parse().unwrap()
}

/// The release after every gate.
pub fn latest() -> Release {
    Release::new(1, 5, 40)
}

/// A small pod (250m / 512Mi) labelled with `policy` (none when empty).
pub fn small_pod(policy: &str) -> Pod {
    let label = if policy.is_empty() {
        String::new()
    } else {
        format!("\n  labels:\n    {LABEL}: {policy:?}")
    };
    pod(&format!(
        r#"
metadata:
  name: web
  namespace: default{label}
spec:
  containers:
    - name: app
      image: nginx
      resources:
        requests: {{cpu: 250m, memory: 512Mi}}
        limits: {{cpu: 250m, memory: 512Mi}}
"#
    ))
}

/// Sets the policy label on a pod.
pub fn with_policy(mut pod: Pod, policy: &str) -> Pod {
    pod.metadata
        .labels
        .get_or_insert_with(BTreeMap::new)
        .insert(LABEL.to_string(), policy.to_string());
    pod
}

/// Sets an annotation on a pod.
pub fn with_annotation(mut pod: Pod, key: &str, value: &str) -> Pod {
    pod.metadata
        .annotations
        .get_or_insert_with(BTreeMap::new)
        .insert(key.to_string(), value.to_string());
    pod
}

/// Storage facts with one class per documented provisioner, and a claim of each.
pub fn cluster() -> ClusterFacts {
    let classes = [
        ("csi-nas", "nas.csi.everest.io"),
        ("csi-sfsturbo", "sfsturbo.csi.everest.io"),
        ("csi-disk", "disk.csi.everest.io"),
        ("csi-obs", "obs.csi.everest.io"),
        ("local-storage", "kubernetes.io/no-provisioner"),
        ("flex-nas", "flexvolume-huawei.com/fuxinfs"),
    ];
    let claims = [
        ("sfs-claim", Some("csi-nas")),
        ("turbo-claim", Some("csi-sfsturbo")),
        ("disk-claim", Some("csi-disk")),
        ("obs-claim", Some("csi-obs")),
        ("local-claim", Some("local-storage")),
        ("flex-claim", Some("flex-nas")),
        ("classless-claim", None),
        ("ghost-class-claim", Some("gone")),
    ];
    ClusterFacts {
        storage_classes: classes
            .iter()
            .map(|(c, p)| (c.to_string(), p.to_string()))
            .collect(),
        pvc_classes: claims
            .iter()
            .map(|(c, s)| (c.to_string(), s.map(str::to_string)))
            .collect(),
        ..ClusterFacts::default()
    }
}

/// Decides on a bare pod (no owners) with [`cluster`]'s facts.
pub fn decide_pod(pod: &Pod, release: Release) -> Decision {
    decide(&AdmissionInput::new(pod.clone(), release).with_cluster(cluster()))
}

/// A Deployment's owner chain for its pod: ReplicaSet (the template's labels), Deployment.
pub fn deployment_owners(
    namespace: &str,
    name: &str,
    deployment_labels: &BTreeMap<String, String>,
    template_labels: &BTreeMap<String, String>,
) -> Vec<OwnerFacts> {
    let mut rs_labels = template_labels.clone();
    rs_labels.insert("pod-template-hash".into(), "5d8f7c9b6".into());
    vec![
        OwnerFacts {
            kind: "ReplicaSet".into(),
            name: format!("{namespace}/{name}-5d8f7c9b6"),
            labels: rs_labels,
        },
        OwnerFacts {
            kind: "Deployment".into(),
            name: format!("{namespace}/{name}"),
            labels: deployment_labels.clone(),
        },
    ]
}

/// The pod with the decision's patch applied (unchanged unless it is a `Mutate`).
pub fn patched(pod: &Pod, decision: &Decision) -> Pod {
    let Some(patch) = decision.patch() else {
        return pod.clone();
    };
    let doc = serde_json::to_value(pod).unwrap();
    let out = apply_patch(&doc, patch).unwrap_or_else(|e| panic!("{e}\npatch: {patch:#}"));
    serde_json::from_value(out).unwrap()
}

/// Applies an RFC 6902 patch (add, remove, replace, test), strictly: `add` needs the parent to
/// exist, `remove` and `replace` need the target to exist.
pub fn apply_patch(doc: &Value, patch: &Value) -> Result<Value, String> {
    let mut doc = doc.clone();
    let ops = patch.as_array().ok_or("the patch is not an array")?;
    for op in ops {
        let kind = op["op"].as_str().ok_or(format!("no op in {op}"))?;
        let path = op["path"].as_str().ok_or(format!("no path in {op}"))?;
        let tokens = pointer(path)?;
        match kind {
            "add" => add(&mut doc, &tokens, op["value"].clone())?,
            "remove" => {
                remove(&mut doc, &tokens)?;
            }
            "replace" => {
                remove(&mut doc, &tokens)?;
                add(&mut doc, &tokens, op["value"].clone())?;
            }
            "test" => {
                let at = get(&doc, &tokens).ok_or(format!("test: {path} is missing"))?;
                if at != &op["value"] {
                    return Err(format!("test failed at {path}"));
                }
            }
            other => return Err(format!("unsupported op {other}")),
        }
    }
    Ok(doc)
}

fn pointer(path: &str) -> Result<Vec<String>, String> {
    if path.is_empty() {
        return Ok(vec![]);
    }
    let rest = path
        .strip_prefix('/')
        .ok_or(format!("pointer {path:?} does not start with /"))?;
    Ok(rest
        .split('/')
        .map(|t| t.replace("~1", "/").replace("~0", "~"))
        .collect())
}

fn get<'a>(doc: &'a Value, tokens: &[String]) -> Option<&'a Value> {
    tokens.iter().try_fold(doc, |v, t| match v {
        Value::Object(m) => m.get(t),
        Value::Array(a) => t.parse::<usize>().ok().and_then(|i| a.get(i)),
        _ => None,
    })
}

fn get_mut<'a>(doc: &'a mut Value, tokens: &[String]) -> Option<&'a mut Value> {
    tokens.iter().try_fold(doc, |v, t| match v {
        Value::Object(m) => m.get_mut(t),
        Value::Array(a) => t.parse::<usize>().ok().and_then(move |i| a.get_mut(i)),
        _ => None,
    })
}

fn add(doc: &mut Value, tokens: &[String], value: Value) -> Result<(), String> {
    let Some((last, parent)) = tokens.split_last() else {
        *doc = value;
        return Ok(());
    };
    let path = format!("/{}", tokens.join("/"));
    match get_mut(doc, parent).ok_or(format!("add {path}: the parent does not exist"))? {
        Value::Object(m) => {
            m.insert(last.clone(), value);
        }
        Value::Array(a) => {
            let i = if last == "-" {
                a.len()
            } else {
                last.parse().map_err(|_| format!("add {path}: bad index"))?
            };
            if i > a.len() {
                return Err(format!("add {path}: index out of bounds"));
            }
            a.insert(i, value);
        }
        _ => return Err(format!("add {path}: the parent is not a container")),
    }
    Ok(())
}

fn remove(doc: &mut Value, tokens: &[String]) -> Result<Value, String> {
    let (last, parent) = tokens.split_last().ok_or("cannot remove the root")?;
    let path = format!("/{}", tokens.join("/"));
    match get_mut(doc, parent).ok_or(format!("{path}: the parent does not exist"))? {
        Value::Object(m) => m.remove(last).ok_or(format!("{path} does not exist")),
        Value::Array(a) => {
            let i: usize = last.parse().map_err(|_| format!("{path}: bad index"))?;
            if i >= a.len() {
                return Err(format!("{path} does not exist"));
            }
            Ok(a.remove(i))
        }
        _ => Err(format!("{path}: the parent is not a container")),
    }
}
