//! The smallest provider that runs: pods bound to the node "run" in memory and are reported
//! `Running` and ready until they are deleted.
//!
//! Against the cluster of your current kubeconfig context (it registers node `in-memory`,
//! tainted so that only pods tolerating `example.com/in-memory` land there):
//!
//! ```sh
//! cargo run -p vk --example smallest
//! kubectl get node in-memory
//! ```

use std::collections::HashMap;
use std::sync::Mutex;

use k8s_openapi::api::core::v1::{
    ContainerState, ContainerStateRunning, ContainerStatus, Pod, PodCondition, PodStatus,
};
use vk::{Config, NodeConfig, Provider, ProviderResult, RemotePod};

/// The pods it "runs", keyed by the cluster pod's UID.
#[derive(Default)]
struct InMemory {
    pods: Mutex<HashMap<String, RemotePod>>,
}

impl Provider for InMemory {
    async fn create_pod(&self, pod: &Pod) -> ProviderResult<()> {
        let meta = &pod.metadata;
        let uid = meta.uid.clone().unwrap_or_default();
        // Idempotent: after a restart vk creates every live pod again.
        let mut pods = self.pods.lock().unwrap();
        pods.entry(uid.clone()).or_insert_with(|| RemotePod {
            namespace: meta.namespace.clone().unwrap_or_default(),
            name: meta.name.clone().unwrap_or_default(),
            uid,
            status: Some(running(pod)),
            ..RemotePod::default()
        });
        Ok(())
    }

    async fn delete_pod(&self, pod: &Pod) -> ProviderResult<()> {
        // Nothing to stop, so the deletion is over at once: the pod leaves the next
        // `list_pods` answer and vk removes the cluster pod. A pod never created is success too.
        let uid = pod.metadata.uid.as_deref().unwrap_or_default();
        self.pods.lock().unwrap().remove(uid);
        Ok(())
    }

    async fn list_pods(&self) -> ProviderResult<Vec<RemotePod>> {
        Ok(self.pods.lock().unwrap().values().cloned().collect())
    }
}

/// `Running`, every container running and ready.
fn running(pod: &Pod) -> PodStatus {
    let containers = pod
        .spec
        .as_ref()
        .map(|s| s.containers.as_slice())
        .unwrap_or_default();
    PodStatus {
        phase: Some("Running".into()),
        conditions: Some(vec![PodCondition {
            type_: "Ready".into(),
            status: "True".into(),
            ..PodCondition::default()
        }]),
        container_statuses: Some(
            containers
                .iter()
                .map(|c| ContainerStatus {
                    name: c.name.clone(),
                    image: c.image.clone().unwrap_or_default(),
                    ready: true,
                    started: Some(true),
                    state: Some(ContainerState {
                        running: Some(ContainerStateRunning::default()),
                        ..ContainerState::default()
                    }),
                    ..ContainerStatus::default()
                })
                .collect(),
        ),
        ..PodStatus::default()
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let client = kube::Client::try_default().await?;
    let node =
        NodeConfig::new("in-memory").with_taint("example.com/in-memory", "true", "NoSchedule");
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    vk::run(client, Config::new(node), InMemory::default(), shutdown).await?;
    Ok(())
}
