//! What a scenario needs beyond the cluster's API and CCI's public API, and what a target
//! offers: the one place that decides whether a scenario can run somewhere.

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
    /// CCI pod's probe really goes through the proxy to a Service's pod and back (the local
    /// target: the mock, the host node's pods and its Service addresses share the loopback
    /// network; the mock on kind's Docker network has no route to kind's pods).
    ClusterNetwork,
}

impl Need {
    /// Every need (what the local target offers).
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
}
