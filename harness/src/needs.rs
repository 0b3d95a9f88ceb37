//! What a scenario needs beyond the cluster's API and CCI's public API, and what a target
//! offers: the one place that decides whether a scenario can run somewhere. A target offers a
//! need when it answers the capability the need names ([`Need::offered_by`]); nothing here
//! knows a target by name.

use crate::target::Target;

/// What a scenario needs beyond what every cluster with the add-on offers (the Kubernetes API
/// and CCI's public API for the tenant). A target that does not offer a need does not run the
/// scenarios that declare it, and reports them "not run" with the need in words.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Need {
    /// The mock CCI's admin side: faults, peak counts, its network verdict.
    MockAdmin,
    /// The harness's own installer: install, upgrade, uninstall and reconfigure the add-on,
    /// change cluster-wide state (node labels, kube-system objects) and put it back.
    Installer,
    /// Control of the add-on's processes (kill the engine as a crash would).
    EngineProcess,
    /// Control of the control plane's processes (restart the API server).
    ControlPlane,
    /// Nodes whose room the harness chooses (kwok nodes it creates, fills and counts).
    ChosenNodes,
    /// The add-on's container logs, read whole (files on the host node, or through the API on a
    /// cluster the harness made).
    AddonLogs,
    /// A network path from the mock CCI to the add-on's proxy and the cluster's pods, so that a
    /// CCI pod's probe really goes through the proxy to a Service's pod and back, and from the
    /// harness into the cluster's network (the local target: the mock, the host node's pods and
    /// its Service addresses share the loopback network; on kind the mock's container has
    /// routes to the nodes' pod networks and the harness connects through a node).
    ClusterNetwork,
}

impl Need {
    /// Every need.
    pub const ALL: &'static [Need] = &[
        Need::MockAdmin,
        Need::Installer,
        Need::EngineProcess,
        Need::ControlPlane,
        Need::ChosenNodes,
        Need::AddonLogs,
        Need::ClusterNetwork,
    ];

    /// The need in words, for a report row.
    pub fn describe(self) -> &'static str {
        match self {
            Need::MockAdmin => {
                "the mock CCI's admin side (faults, peak counts, network verdicts), which a real CCI does not offer"
            }
            Need::Installer => {
                "the harness's own installer (it installs, upgrades or uninstalls the add-on, or changes cluster-wide state)"
            }
            Need::EngineProcess => "control of the add-on's processes (it kills the engine)",
            Need::ControlPlane => {
                "control of the control plane's processes (it restarts the API server)"
            }
            Need::ChosenNodes => "nodes whose room the harness chooses (kwok nodes)",
            Need::AddonLogs => "the add-on's container logs, read whole",
            Need::ClusterNetwork => {
                "a network path from the mock CCI to the add-on's proxy and the cluster's pods (a probe through the proxy to a Service and back)"
            }
        }
    }
}

impl Need {
    /// Whether `target` offers this need: whether it answers the capability the need names.
    pub fn offered_by(self, target: &dyn Target) -> bool {
        match self {
            Need::MockAdmin => target.mock_admin().is_some(),
            Need::Installer => target.installer().is_some(),
            Need::EngineProcess => target.engine_process().is_some(),
            Need::ControlPlane => target.control_plane().is_some(),
            Need::ChosenNodes => target.chosen_nodes().is_some(),
            Need::AddonLogs => target.addon_logs().is_some(),
            Need::ClusterNetwork => target.cluster_network().is_some(),
        }
    }

    /// Every need `target` offers, in [`Need::ALL`]'s order.
    pub fn offered(target: &dyn Target) -> Vec<Need> {
        Need::ALL
            .iter()
            .copied()
            .filter(|need| need.offered_by(target))
            .collect()
    }
}

/// Why a scenario with `needs` cannot run on a target that offers `offers`, if it cannot.
pub fn unmet(needs: &[Need], offers: &[Need]) -> Option<String> {
    let missing: Vec<&str> = needs
        .iter()
        .filter(|n| !offers.contains(n))
        .map(|n| n.describe())
        .collect();
    (!missing.is_empty()).then(|| format!("needs {}", missing.join("; and ")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_need_is_unmet_only_when_the_target_lacks_it_and_says_which() {
        assert_eq!(unmet(&[], &[]), None);
        assert_eq!(unmet(&[Need::MockAdmin], Need::ALL), None);
        let why = unmet(&[Need::MockAdmin, Need::Installer], &[Need::Installer]).unwrap();
        assert!(why.starts_with("needs the mock CCI's admin side"), "{why}");
        assert!(!why.contains("installer"), "{why}");
    }

    /// A target that answers exactly the capabilities of `offers`.
    #[derive(Debug)]
    struct Fake {
        offers: Vec<Need>,
        cci: crate::cci::CciClient,
        mock_admin: crate::mock_admin::MockAdmin,
        installer: crate::target::Installer,
        nodes: crate::target::ChosenNodes,
    }

    impl Fake {
        fn offering(offers: &[Need]) -> Self {
            let url = "https://127.0.0.1:1";
            Self {
                offers: offers.to_vec(),
                cci: crate::cci::CciClient::new(url, "token", None).unwrap(),
                mock_admin: crate::mock_admin::MockAdmin::new(url, None).unwrap(),
                installer: crate::target::Installer {
                    rendering: crate::addon::render::Target::Production,
                    defaults: crate::env::default_params(
                        &Default::default(),
                        "c1",
                        "fake",
                        url,
                        "token",
                    )
                    .unwrap(),
                },
                nodes: crate::target::ChosenNodes {
                    count: 2,
                    host: crate::target::HostNode {
                        name: "host".into(),
                        label: "host-node".into(),
                    },
                },
            }
        }

        fn has(&self, need: Need) -> bool {
            self.offers.contains(&need)
        }
    }

    impl crate::target::EngineProcess for Fake {
        fn kill(&self) -> crate::Result<usize> {
            Ok(0)
        }
        fn pids(&self) -> Vec<u32> {
            Vec::new()
        }
    }

    impl crate::target::ClusterNetwork for Fake {
        fn connect<'a>(&'a self, address: &'a str) -> crate::target::Connecting<'a> {
            Box::pin(async move {
                Err(crate::Error::Step {
                    step: format!("connect to {address}"),
                    detail: "a fake network".into(),
                })
            })
        }
    }

    impl crate::target::ControlPlane for Fake {
        fn restart_api_server(&self) -> crate::Result<()> {
            Ok(())
        }
    }

    impl Target for Fake {
        fn kind(&self) -> &'static str {
            "fake"
        }
        fn name(&self) -> &str {
            "fake"
        }
        fn kubeconfig(&self) -> &std::path::Path {
            std::path::Path::new("/nonexistent")
        }
        fn cci(&self) -> &crate::cci::CciClient {
            &self.cci
        }
        fn cluster_id(&self) -> &str {
            "c1"
        }
        fn virtual_node(&self) -> &str {
            "bursting-node"
        }
        fn logs(&self) -> &std::path::Path {
            std::path::Path::new("/nonexistent")
        }
        fn destroy(&self) -> crate::Result<()> {
            Ok(())
        }
        fn mock_admin(&self) -> Option<&crate::mock_admin::MockAdmin> {
            self.has(Need::MockAdmin).then_some(&self.mock_admin)
        }
        fn installer(&self) -> Option<&crate::target::Installer> {
            self.has(Need::Installer).then_some(&self.installer)
        }
        fn engine_process(&self) -> Option<&dyn crate::target::EngineProcess> {
            self.has(Need::EngineProcess).then_some(self as _)
        }
        fn control_plane(&self) -> Option<&dyn crate::target::ControlPlane> {
            self.has(Need::ControlPlane).then_some(self as _)
        }
        fn chosen_nodes(&self) -> Option<&crate::target::ChosenNodes> {
            self.has(Need::ChosenNodes).then_some(&self.nodes)
        }
        fn addon_logs(&self) -> Option<crate::target::AddonLogs<'_>> {
            self.has(Need::AddonLogs)
                .then_some(crate::target::AddonLogs::Api)
        }
        fn cluster_network(&self) -> Option<&dyn crate::target::ClusterNetwork> {
            self.has(Need::ClusterNetwork).then_some(self as _)
        }
    }

    #[test]
    fn a_target_offers_a_need_exactly_when_it_answers_that_capability() {
        for need in Need::ALL {
            assert_eq!(
                Need::offered(&Fake::offering(&[*need])),
                vec![*need],
                "{need:?} alone"
            );
        }
        assert_eq!(Need::offered(&Fake::offering(&[])), Vec::<Need>::new());
        assert_eq!(Need::offered(&Fake::offering(Need::ALL)), Need::ALL);
        let kind_like = [Need::MockAdmin, Need::Installer, Need::AddonLogs];
        assert_eq!(Need::offered(&Fake::offering(&kind_like)), kind_like);
    }

    #[test]
    fn an_existing_cluster_offers_nothing_beyond_the_public_apis() {
        let existing =
            crate::target::existing::ExistingTarget::attach(crate::target::existing::Existing {
                kubeconfig: "/home/user/.kube/config".into(),
                cci: crate::cci::CciClient::new("https://127.0.0.1:1", "token", None).unwrap(),
                cluster_id: "c1".into(),
                virtual_node: "virtual-kubelet".into(),
            });
        assert_eq!(Need::offered(&existing), Vec::<Need>::new());
        assert_eq!(existing.name(), "existing (config)");
        assert!(
            existing.destroy().is_ok(),
            "nothing of the user's is torn down"
        );
    }
}
