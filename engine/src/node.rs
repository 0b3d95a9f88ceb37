//! The virtual node `bursting-node`: labels, taint and capacity.

use vk::{NodeConfig, NodeResources};

use crate::breakage::{self, Breakage};

/// Default node name (CCI 2.0; CCI 1.0 used `virtual-kubelet`).
pub const DEFAULT_NODE_NAME: &str = "bursting-node";
/// The taint that keeps pods without a toleration off the node.
pub const TAINT_KEY: &str = "virtual-kubelet.io/provider";
/// Value of [`TAINT_KEY`].
pub const TAINT_VALUE: &str = "cci";
/// Label naming the instance type of the node.
pub const LABEL_INSTANCE_TYPE: &str = "node.kubernetes.io/instance-type";
/// Default CPU capacity: CCI is, to the scheduler, a very large node.
pub const DEFAULT_CPU: &str = "2000";
/// Default memory capacity.
pub const DEFAULT_MEMORY: &str = "8Ti";
/// Default pod capacity.
pub const DEFAULT_PODS: &str = "5000";

/// The virtual node: label `type=virtual-kubelet`, `node.kubernetes.io/instance-type=cci`, the
/// well-known hostname/os/arch labels (`linux`, `amd64`), taint
/// `virtual-kubelet.io/provider=cci:NoSchedule`, and the given capacity and IP.
pub fn cci_node_config(name: &str, internal_ip: &str, capacity: NodeResources) -> NodeConfig {
    let mut config = NodeConfig::new(name)
        .with_label(vk::LABEL_TYPE, vk::TYPE_VIRTUAL_KUBELET)
        .with_label(LABEL_INSTANCE_TYPE, "cci");
    if !breakage::is(Breakage::NodeUntainted) {
        config = config.with_taint(TAINT_KEY, TAINT_VALUE, "NoSchedule");
    }
    config.internal_ip = internal_ip.into();
    config.capacity = capacity;
    config.os = "linux".into();
    config.arch = "amd64".into();
    config.kubelet_version = format!("v1.36.0-bursting-{}", env!("CARGO_PKG_VERSION"));
    config
}

/// The default capacity: [`DEFAULT_CPU`], [`DEFAULT_MEMORY`], [`DEFAULT_PODS`].
pub fn default_capacity() -> NodeResources {
    NodeResources {
        cpu: DEFAULT_CPU.into(),
        memory: DEFAULT_MEMORY.into(),
        pods: DEFAULT_PODS.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_node_is_labelled_tainted_and_large() {
        let config = cci_node_config(DEFAULT_NODE_NAME, "127.0.0.1", default_capacity());
        let labels = config.node_labels();
        assert_eq!(labels["type"], "virtual-kubelet");
        assert_eq!(labels["kubernetes.io/hostname"], "bursting-node");
        assert_eq!(labels["kubernetes.io/os"], "linux");
        assert_eq!(labels["kubernetes.io/arch"], "amd64");
        assert_eq!(labels[LABEL_INSTANCE_TYPE], "cci");
        let taint = &config.taints[0];
        assert_eq!(
            (
                taint.key.as_str(),
                taint.value.as_deref(),
                taint.effect.as_str()
            ),
            (TAINT_KEY, Some("cci"), "NoSchedule")
        );
        assert_eq!(config.capacity.pods, "5000");
    }
}
