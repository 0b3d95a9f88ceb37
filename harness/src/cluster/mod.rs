//! Clusters the harness makes for its targets ([`crate::target`]). Suites never know which runs.

pub mod local;
pub mod nodes;

use std::path::Path;

use crate::error::Result;

/// A Kubernetes cluster the harness made (a kwok control plane, a kind cluster): the bottom
/// layer of a target ([`crate::target::Target`]), which adds the CCI side, the add-on and its
/// capabilities. A cluster handed to the harness is a target without one: it did not make it
/// and never tears it down.
pub trait ClusterProvider: Send + Sync + std::fmt::Debug {
    /// `local` or `kind`.
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
    Ok(vk_hostnode::client_for(kubeconfig).await?)
}

/// Name of the engine's virtual node where the harness installs the add-on. On an existing
/// cluster it may be another (a CCI 1.0 add-on's `virtual-kubelet`): scenarios that run there
/// ask [`crate::scenario::Scenario::virtual_node`]; those that keep this constant need what only
/// an environment of the harness offers (the mock's admin side, the engine's process, chosen
/// nodes).
pub const VIRTUAL_NODE: &str = "bursting-node";

/// The virtual node's taint (BEHAVIOR.md §1), which the webhook's toleration names. The
/// harness's own spelling, not `burst_rules::decide::TAINT_KEY`: a wrong key there must fail a
/// scenario, not move it along.
pub const VIRTUAL_NODE_TAINT: &str = "virtual-kubelet.io/provider";

/// The annotation the add-on writes on a burst pod's cluster side with its rounded vCPU
/// (BEHAVIOR.md §1); the harness's own spelling, as [`VIRTUAL_NODE_TAINT`].
pub const ANNOTATION_BURST_POD_CPU: &str = "virtual-kubelet.cci.io/burst-pod-cpu";

pub use vk_hostnode::node_ready;
