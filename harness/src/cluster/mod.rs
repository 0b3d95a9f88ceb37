//! Clusters the suites run against. Suites never know which provider runs.

pub mod local;
pub mod nodes;

use std::path::Path;

use crate::error::Result;

/// A Kubernetes cluster the harness can use: made by it (local, kind) or handed to it (existing).
pub trait ClusterProvider: Send + Sync + std::fmt::Debug {
    /// `local`, `kind` or `existing`.
    fn kind(&self) -> &'static str;

    /// The cluster's name (random per run unless the user chose one; printed so a failed run can
    /// be inspected).
    fn name(&self) -> &str;

    /// Path of an admin kubeconfig for the cluster.
    fn kubeconfig(&self) -> &Path;

    /// Copies the control plane's logs into `dir` (best effort).
    fn export_logs(&self, dir: &Path) -> Result<()>;

    /// Stops the cluster and removes what the harness created for it. Idempotent.
    fn destroy(&mut self) -> Result<()>;
}

/// A kube client for a kubeconfig file (the cluster's admin credentials).
pub async fn client_for(kubeconfig: &Path) -> Result<kube::Client> {
    let context = || format!("load kubeconfig {}", kubeconfig.display());
    let raw = kube::config::Kubeconfig::read_from(kubeconfig).map_err(|e| crate::Error::Step {
        step: context(),
        detail: e.to_string(),
    })?;
    let config = kube::Config::from_custom_kubeconfig(raw, &Default::default())
        .await
        .map_err(|e| crate::Error::Step {
            step: context(),
            detail: e.to_string(),
        })?;
    kube::Client::try_from(config).map_err(|source| crate::Error::Kube {
        context: context(),
        source,
    })
}

/// Name of the engine's virtual node.
pub const VIRTUAL_NODE: &str = "bursting-node";

/// Whether a node reports Ready=True.
pub fn node_ready(node: &k8s_openapi::api::core::v1::Node) -> bool {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}
