//! [`CciProvider`]: the `vk` provider that runs the virtual node's pods on CCI.

use std::sync::atomic::{AtomicBool, Ordering};

use k8s_openapi::api::core::v1::Pod;
use vk::RemotePod;

use crate::cci::CciClient;
use crate::translate::{self, cci_pod_name, cluster_uid_of, identity};
use crate::{Error, Result};

/// Runs cluster pods as CCI pods in the namespace `bursting-{clusterID}`.
#[derive(Debug)]
pub struct CciProvider {
    client: CciClient,
    cluster_id: String,
    namespace: String,
    /// The CCI namespace is known to exist (created once, again if it vanishes).
    namespace_ready: AtomicBool,
}

impl CciProvider {
    /// A provider for cluster `cluster_id` talking through `client`.
    pub fn new(client: CciClient, cluster_id: impl Into<String>) -> Result<Self> {
        let cluster_id = cluster_id.into();
        translate::check_cluster_id(&cluster_id)?;
        Ok(Self {
            client,
            namespace: cci_api::namespace_for_cluster(&cluster_id),
            cluster_id,
            namespace_ready: AtomicBool::new(false),
        })
    }

    /// The CCI namespace the pods live in.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// Create the CCI namespace unless it is known to exist (it existing already is fine).
    pub async fn ensure_namespace(&self) -> Result<()> {
        if self.namespace_ready.load(Ordering::Acquire) {
            return Ok(());
        }
        match self
            .client
            .create_namespace(&translate::cci_namespace(&self.cluster_id))
            .await
        {
            Ok(_) => tracing::info!(namespace = %self.namespace, "created CCI namespace"),
            Err(e) if e.code() == Some(409) => {}
            Err(e) => return Err(e),
        }
        self.namespace_ready.store(true, Ordering::Release);
        Ok(())
    }

    async fn create(&self, pod: &Pod) -> Result<()> {
        let cci = translate::to_cci_pod(pod, &self.cluster_id)?;
        let (_, _, uid) = identity(pod)?;
        let name = cci.metadata.name.clone().unwrap_or_default();
        self.ensure_namespace().await?;
        match self.client.create_pod(&self.namespace, &cci).await {
            Ok(_) => Ok(()),
            // Created before (a retry after a lost answer, or a restart): fine if it is this pod.
            Err(e) if e.code() == Some(409) => {
                let existing = self.client.get_pod(&self.namespace, &name).await?;
                match cluster_uid_of(&existing) {
                    Some(found) if found == uid => Ok(()),
                    found => Err(Error::NameTaken {
                        namespace: self.namespace.clone(),
                        name,
                        expected: uid.into(),
                        found: found.unwrap_or_default().into(),
                    }),
                }
            }
            Err(e) => {
                if e.code() == Some(404) {
                    // The namespace itself is gone: create it again on the retry.
                    self.namespace_ready.store(false, Ordering::Release);
                }
                Err(e)
            }
        }
    }

    async fn delete(&self, pod: &Pod) -> Result<()> {
        let m = &pod.metadata;
        let (Some(namespace), Some(name)) = (m.namespace.as_deref(), m.name.as_deref()) else {
            return Err(Error::Translate {
                pod: format!("{:?}/{:?}", m.namespace, m.name),
                reason: "has no namespace or no name".into(),
            });
        };
        let cci_name = cci_pod_name(namespace, name);
        let existing = match self.client.get_pod(&self.namespace, &cci_name).await {
            Ok(p) => p,
            Err(e) if e.code() == Some(404) => return Ok(()),
            Err(e) => return Err(e),
        };
        if let (Some(want), Some(found)) = (m.uid.as_deref(), cluster_uid_of(&existing))
            && want != found
        {
            // The name now stands for another cluster pod: ours is gone already.
            tracing::debug!(cci_pod = %cci_name, want, found, "not deleting a CCI pod of another uid");
            return Ok(());
        }
        match self.client.delete_pod(&self.namespace, &cci_name).await {
            Ok(()) => {
                tracing::info!(cci_pod = %cci_name, "deleted CCI pod");
                Ok(())
            }
            Err(e) if e.code() == Some(404) => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn list(&self) -> Result<Vec<RemotePod>> {
        // NB: the namespace is the cluster's own, so every pod with the UID label is ours; the
        // filter is client-side so no label selector support is needed from the API.
        match self.client.list_pods(&self.namespace).await {
            Ok(list) => Ok(list
                .items
                .iter()
                .filter_map(translate::remote_pod)
                .collect()),
            Err(e) if e.code() == Some(404) => Ok(Vec::new()),
            Err(e) => Err(e),
        }
    }
}

impl vk::Provider for CciProvider {
    async fn create_pod(&self, pod: &Pod) -> vk::Result<()> {
        Ok(self.create(pod).await?)
    }

    async fn delete_pod(&self, pod: &Pod) -> vk::Result<()> {
        Ok(self.delete(pod).await?)
    }

    async fn list_pods(&self) -> vk::Result<Vec<RemotePod>> {
        Ok(self.list().await?)
    }
}
