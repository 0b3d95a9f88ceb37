//! kwok's controller inside a kind cluster: the nodes whose room the harness chooses.
//!
//! The controller is the `kwok` binary the local cluster runs (built from the same pinned Go
//! module), as an image `kind load`ed onto the nodes and run as a Deployment in `kube-system`
//! (the host node's namespace placement puts it on the worker). It manages only nodes annotated
//! `kwok.x-k8s.io/node=fake` ([`crate::cluster::local::KWOK_NODE_ANNOTATION`]), with kwok's own
//! default stages (a node turns Ready and keeps its lease; a pod bound to one runs, completes
//! and is deleted), read from that module's source as kwokctl gives them to the local cluster's
//! controller.

use std::path::Path;

use crate::cluster::local::KWOK_NODE_ANNOTATION;
use crate::error::{Error, Result};
use crate::tools::Tools;

/// The controller's Deployment (and service account) in `kube-system`.
pub const NAME: &str = "kwok-controller";

/// The controller's image for the pinned kwok.
pub fn image(k8s: &Tools) -> String {
    format!("burstcert/kwok:{}", k8s.pins.kwok)
}

/// kwok's default stages, from the pinned module's source: the node and pod stages kwokctl
/// hands the local cluster's controller (`node-initialize`, `node-heartbeat-with-lease`,
/// `pod-ready`, `pod-complete`, `pod-delete`).
fn default_stages(k8s: &Tools) -> Result<String> {
    let step = "read kwok's default stages from its module (go mod download)";
    let module = format!("sigs.k8s.io/kwok@{}", k8s.pins.kwok);
    let json = super::run(step, "go", &["mod", "download", "-json", &module])?;
    let dir: serde_json::Value = serde_json::from_str(&json).map_err(|e| Error::Step {
        step: step.into(),
        detail: format!("`go mod download -json {module}` printed no JSON: {e}"),
    })?;
    let root = Path::new(dir["Dir"].as_str().unwrap_or_default()).join("kustomize/stage");
    let mut stages = String::new();
    for file in [
        "node/fast/node-initialize.yaml",
        "node/heartbeat-with-lease/node-heartbeat-with-lease.yaml",
        "pod/fast/pod-ready.yaml",
        "pod/fast/pod-complete.yaml",
        "pod/fast/pod-delete.yaml",
    ] {
        let path = root.join(file);
        let text = std::fs::read_to_string(&path).map_err(|e| Error::Step {
            step: step.into(),
            detail: format!("read {}: {e}", path.display()),
        })?;
        stages.push_str("---\n");
        stages.push_str(&text);
        if !text.ends_with('\n') {
            stages.push('\n');
        }
    }
    Ok(stages)
}

/// The controller's objects: its service account and what it may do (kwok's own RBAC, without
/// its custom resources), its configuration (the stages, nodes chosen by annotation, leases as
/// kwokctl sets them) and its Deployment.
pub fn manifests(k8s: &Tools) -> Result<String> {
    Ok(render(&image(k8s), &default_stages(k8s)?))
}

/// [`manifests`] with the controller's `image` and its `stages` (YAML documents).
fn render(image: &str, stages: &str) -> String {
    let (key, value) = KWOK_NODE_ANNOTATION;
    let config = format!(
        "apiVersion: config.kwok.x-k8s.io/v1alpha1\n\
         kind: KwokConfiguration\n\
         options:\n  \
           manageAllNodes: false\n  \
           manageNodesWithAnnotationSelector: '{key}={value}'\n  \
           nodeLeaseDurationSeconds: 40\n  \
           nodeLeaseParallelism: 4\n  \
           nodePlayStageParallelism: 4\n  \
           podPlayStageParallelism: 4\n  \
           podsOnNodeSyncParallelism: 4\n  \
           enablePodsOnNodeSyncStreamWatch: true\n  \
           cidr: 10.0.0.0/24\n\
         {stages}"
    );
    let indented: String = config.lines().map(|l| format!("    {l}\n")).collect();
    format!(
        r#"apiVersion: v1
kind: ServiceAccount
metadata:
  name: {NAME}
  namespace: kube-system
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: burstcert:{NAME}
rules:
- apiGroups: [""]
  resources: [events]
  verbs: [create, delete, get, list, patch, update, watch]
- apiGroups: [""]
  resources: [nodes]
  verbs: [get, list, watch]
- apiGroups: [""]
  resources: [nodes/status, pods/status]
  verbs: [patch, update]
- apiGroups: [""]
  resources: [pods]
  verbs: [delete, get, list, patch, update, watch]
- apiGroups: [coordination.k8s.io]
  resources: [leases]
  verbs: [create, get, list, patch, update, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: burstcert:{NAME}
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: burstcert:{NAME}
subjects:
- kind: ServiceAccount
  name: {NAME}
  namespace: kube-system
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: {NAME}
  namespace: kube-system
data:
  kwok.yaml: |
{indented}---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {NAME}
  namespace: kube-system
  labels: {{app: {NAME}}}
spec:
  replicas: 1
  selector:
    matchLabels: {{app: {NAME}}}
  template:
    metadata:
      labels: {{app: {NAME}}}
    spec:
      serviceAccountName: {NAME}
      containers:
      - name: {NAME}
        image: {image}
        imagePullPolicy: IfNotPresent
        args: ["--config=/etc/kwok/kwok.yaml", "--node-ip=$(POD_IP)"]
        env:
        - name: POD_IP
          valueFrom: {{fieldRef: {{fieldPath: status.podIP}}}}
        volumeMounts:
        - name: config
          mountPath: /etc/kwok
          readOnly: true
      volumes:
      - name: config
        configMap: {{name: {NAME}}}
"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_controller_manages_only_annotated_nodes_with_the_stages_and_runs_the_loaded_image() {
        let (key, value) = KWOK_NODE_ANNOTATION;
        let stages = "---\nkind: Stage\nmetadata:\n  name: node-initialize\n";
        let text = render("burstcert/kwok:v0", stages);
        assert!(text.contains(&format!(
            "manageNodesWithAnnotationSelector: '{key}={value}'"
        )));
        assert!(text.contains("manageAllNodes: false"));
        assert!(text.contains("        image: burstcert/kwok:v0\n"));
        // The stages are inside the ConfigMap's kwok.yaml, not documents of their own.
        assert!(text.contains("\n    kind: Stage\n    metadata:\n      name: node-initialize\n"));
        let documents: Vec<&str> = text.split("\n---\n").collect();
        assert_eq!(documents.len(), 5, "{text}");
    }
}
