//! An existing cluster with the add-on installed, and the CCI endpoint it bursts to: all a
//! user of that cluster has. The harness made nothing there, so it offers no capability and
//! tears nothing down.

use std::path::{Path, PathBuf};

use crate::cci::CciClient;
use crate::error::Result;
use crate::target::{Launch, Target};

/// An existing cluster with the add-on installed, and the CCI endpoint it bursts to.
#[derive(Clone, Debug)]
pub struct Existing {
    /// Its kubeconfig.
    pub kubeconfig: PathBuf,
    /// The public CCI API and the tenant's credential.
    pub cci: CciClient,
    /// The cluster id the add-on was installed with.
    pub cluster_id: String,
    /// The add-on's virtual node (`bursting-node`, `virtual-kubelet`, or as found).
    pub virtual_node: String,
}

impl Launch for Existing {
    fn kind(&self) -> &'static str {
        "existing"
    }

    fn start(&self, _: &crate::env::Setup) -> Result<Box<dyn Target>> {
        Ok(Box::new(ExistingTarget::attach(self.clone())))
    }
}

/// An [`Existing`] cluster as a target (named after its kubeconfig's file).
#[derive(Debug)]
pub struct ExistingTarget {
    existing: Existing,
    name: String,
    logs: PathBuf,
}

impl ExistingTarget {
    /// Attaches to `existing`: nothing is started.
    pub fn attach(existing: Existing) -> Self {
        let file = existing
            .kubeconfig
            .file_name()
            .map_or_else(|| "existing".into(), |n| n.to_string_lossy().into_owned());
        Self {
            existing,
            name: format!("existing ({file})"),
            logs: std::env::temp_dir().join("burstcert").join("existing"),
        }
    }
}

impl Target for ExistingTarget {
    fn kind(&self) -> &'static str {
        "existing"
    }

    fn name(&self) -> &str {
        &self.name
    }

    fn kubeconfig(&self) -> &Path {
        &self.existing.kubeconfig
    }

    fn cci(&self) -> &CciClient {
        &self.existing.cci
    }

    fn cluster_id(&self) -> &str {
        &self.existing.cluster_id
    }

    fn virtual_node(&self) -> &str {
        &self.existing.virtual_node
    }

    fn logs(&self) -> &Path {
        &self.logs
    }

    fn destroy(&self) -> Result<()> {
        // Not ours: the cluster and the add-on stay as the user had them.
        Ok(())
    }
}
