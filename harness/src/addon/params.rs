//! Install parameters of the add-on (`BEHAVIOR.md` §2) and the preconditions install checks
//! before it creates anything. Pure: the facts about the cluster come in as values.

use std::fmt;
use std::net::Ipv4Addr;

use burst_rules::release::Release;

use crate::gates::Gate;
use serde::{Deserialize, Serialize};

/// The release `burstcert` installs and certifies when none is given.
pub const DEFAULT_RELEASE: &str = "1.5.18";

/// The CCI-side Service CIDR a cluster subnet must not overlap (§2, §10).
pub const CCI_SERVICE_CIDR: (Ipv4Addr, u8) = (Ipv4Addr::new(10, 247, 0, 0), 16);

/// Pod slots the add-on needs on a node: 7, or 8 with the network interconnect (§2).
pub const fn pod_slots_needed(interconnect: bool) -> u32 {
    if interconnect { 8 } else { 7 }
}

/// How many replicas of each component run, and with what resources.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "preset")]
pub enum Spec {
    /// One replica per component.
    Single,
    /// Two replicas per component.
    Ha,
    /// Chosen replicas, CPU and memory per component.
    Custom {
        /// Replicas of each component.
        replicas: i32,
        /// CPU request and limit of each component, e.g. `500m`.
        cpu: String,
        /// Memory request and limit of each component, e.g. `512Mi`.
        memory: String,
    },
}

impl Spec {
    /// Replicas of each component.
    pub fn replicas(&self) -> i32 {
        match self {
            Spec::Single => 1,
            Spec::Ha => 2,
            Spec::Custom { replicas, .. } => *replicas,
        }
    }

    /// CPU and memory of each component.
    pub fn resources(&self) -> (&str, &str) {
        match self {
            Spec::Single | Spec::Ha => ("250m", "512Mi"),
            Spec::Custom { cpu, memory, .. } => (cpu, memory),
        }
    }

    /// How many nodes with room the spec needs (§2): one for `single`, two otherwise.
    pub fn nodes_needed(&self) -> usize {
        if self.replicas() > 1 { 2 } else { 1 }
    }
}

impl std::str::FromStr for Spec {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "single" => Ok(Spec::Single),
            "ha" => Ok(Spec::Ha),
            other => Err(format!(
                "spec `{other}` is neither `single` nor `ha` (custom specs are set in a parameters file)"
            )),
        }
    }
}

/// The cluster's network model, as the cloud reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NetworkMode {
    /// VPC network: the only one supported.
    Vpc,
    /// Container tunnel network (overlay): not supported.
    Overlay,
}

/// The cluster's type, as the cloud reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ClusterType {
    /// Standard (CCE) cluster.
    Standard,
    /// Turbo cluster.
    Turbo,
    /// Anything else, e.g. an edge cluster.
    Other,
}

/// Everything install takes (§2), plus what the harness needs to reach the CCI endpoint.
/// `Debug` shows every field but the credential.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InstallParams {
    /// Add-on release, e.g. `1.5.18`.
    pub release: Release,
    /// Replicas and resources.
    pub spec: Spec,
    /// Network interconnect (`isInstallProxy`): installs the proxy.
    pub interconnect: bool,
    /// Registry address the add-on's images (and its gc jobs) are pulled from.
    pub swr_addr: String,
    /// Registry user (the path segment under the address).
    pub swr_user: String,
    /// Cluster id: the CCI namespace is `bursting-{id}`.
    pub cluster_id: String,
    /// Cluster name.
    pub cluster_name: String,
    /// Network model.
    pub network_mode: NetworkMode,
    /// Cluster type.
    pub cluster_type: ClusterType,
    /// VPC id.
    pub vpc_id: String,
    /// Subnet id.
    pub subnet_id: String,
    /// Subnet CIDR, e.g. `192.168.0.0/24`.
    pub subnet_cidr: String,
    /// Project id.
    pub project_id: String,
    /// Security group of the burst pods' interfaces, on the CCI namespace's Network (empty:
    /// none named, CCI's "deny all").
    #[serde(default)]
    pub security_group_id: String,
    /// Account (domain) id, written on the CCI namespace's Network.
    #[serde(default)]
    pub domain_id: String,
    /// Base URL of the CCI API.
    pub cci_endpoint: String,
    /// Credential for the CCI API (stored in the add-on's Secret).
    pub cci_token: String,
    /// The CA certificates (PEM) the add-on checks the CCI endpoint's certificate against, for
    /// a private endpoint (the local mock's); `None`: the system's CA roots. Stored beside the
    /// credential and mounted into the add-on's pods (`--cci-ca-file`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cci_ca: Option<String>,
    /// How long the virtual node stays locked after sold out (not an add-on parameter: a test
    /// knob so lock scenarios do not wait 30 minutes; `None` keeps the engine's default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lock_duration_secs: Option<u64>,
    /// How long a CCI pod may stay Pending for lack of capacity before the node is locked
    /// (a test knob like [`lock_duration_secs`](Self::lock_duration_secs); `None` keeps the
    /// engine's default, 5 minutes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_lock_threshold_secs: Option<u64>,
    /// `CHECK_RESOURCE_PRESSURE` on the virtual kubelet's Deployment (BEHAVIOR.md §7):
    /// `Some(false)` switches the node lock's signals off; `None` leaves the variable out
    /// (the check is on).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check_resource_pressure: Option<bool>,
    /// `podDisruptionBudget`: a PodDisruptionBudget for each of the add-on's components, when
    /// asked (BEHAVIOR.md §2, §13).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_disruption_budget: Option<DisruptionBudget>,
    /// An AK/SK pair (`AK:SK`) the add-on signs every CCI request with instead of sending
    /// `cci_token` (stored in the add-on's Secret, as the token is).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cci_aksk: Option<String>,
}

/// The add-on's `podDisruptionBudget` parameter.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DisruptionBudget {
    /// Whether the budgets are made.
    pub create: bool,
    /// How many pods of a component a voluntary disruption (a node drain) may take at once.
    pub max_unavailable: i32,
}

impl std::fmt::Debug for InstallParams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InstallParams")
            .field("release", &self.release)
            .field("spec", &self.spec)
            .field("interconnect", &self.interconnect)
            .field("swr_addr", &self.swr_addr)
            .field("swr_user", &self.swr_user)
            .field("cluster_id", &self.cluster_id)
            .field("cluster_name", &self.cluster_name)
            .field("network_mode", &self.network_mode)
            .field("cluster_type", &self.cluster_type)
            .field("vpc_id", &self.vpc_id)
            .field("subnet_id", &self.subnet_id)
            .field("subnet_cidr", &self.subnet_cidr)
            .field("project_id", &self.project_id)
            .field("security_group_id", &self.security_group_id)
            .field("domain_id", &self.domain_id)
            .field("cci_endpoint", &self.cci_endpoint)
            .field("cci_token", &"(redacted)")
            .field("cci_ca", &self.cci_ca.as_ref().map(|_| "given"))
            .field("lock_duration_secs", &self.lock_duration_secs)
            .field(
                "pending_lock_threshold_secs",
                &self.pending_lock_threshold_secs,
            )
            .field("check_resource_pressure", &self.check_resource_pressure)
            .field("pod_disruption_budget", &self.pod_disruption_budget)
            .field("cci_aksk", &self.cci_aksk.as_ref().map(|_| "(redacted)"))
            .finish()
    }
}

impl InstallParams {
    /// The image of the add-on's binary for this release: `{swr_addr}/{swr_user}/bursting-engine:{release}`.
    pub fn image(&self) -> String {
        format!(
            "{}/{}/{}:{}",
            self.swr_addr.trim_end_matches('/'),
            self.swr_user,
            ENGINE_IMAGE,
            self.release
        )
    }
}

/// The repository name of the add-on's one image (every component is a subcommand).
pub const ENGINE_IMAGE: &str = "bursting-engine";

/// What install needs to know about one node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeFacts {
    /// Node name.
    pub name: String,
    /// `kubernetes.io/arch`.
    pub arch: String,
    /// Allocatable pods.
    pub allocatable_pods: u32,
    /// Pods bound to it that are not finished.
    pub pods: u32,
    /// Why the add-on's pods may not be scheduled there (cordoned, a taint they do not
    /// tolerate, not matching their node selector); `None` when they may.
    pub ineligible: Option<String>,
}

impl NodeFacts {
    /// Free pod slots.
    pub fn free(&self) -> u32 {
        self.allocatable_pods.saturating_sub(self.pods)
    }
}

/// A failed precondition: the rule and the numbers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// The rule, e.g. `subnet`.
    pub rule: &'static str,
    /// What is wrong, with the numbers.
    pub message: String,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.rule, self.message)
    }
}

/// Parses `a.b.c.d/n`.
pub fn parse_cidr(text: &str) -> Option<(Ipv4Addr, u8)> {
    let (ip, len) = text.split_once('/')?;
    let len: u8 = len.parse().ok().filter(|l| *l <= 32)?;
    Some((ip.parse().ok()?, len))
}

fn mask(len: u8) -> u32 {
    if len == 0 { 0 } else { u32::MAX << (32 - len) }
}

/// Whether two CIDRs share an address.
pub fn overlaps(a: (Ipv4Addr, u8), b: (Ipv4Addr, u8)) -> bool {
    let common = mask(a.1.min(b.1));
    u32::from(a.0) & common == u32::from(b.0) & common
}

/// Whether the add-on's own pods must avoid Arm nodes at this release.
pub fn avoids_arm(release: Release) -> bool {
    Gate::ArmUnsupported.applies_to(release)
}

/// Every precondition of §2 that fails, in the order a user should fix them; empty when install
/// may go on. `nodes` are the cluster's nodes as install sees them.
pub fn preflight(params: &InstallParams, nodes: &[NodeFacts]) -> Vec<Refusal> {
    let mut refusals = Vec::new();
    if params.network_mode != NetworkMode::Vpc
        || !matches!(
            params.cluster_type,
            ClusterType::Standard | ClusterType::Turbo
        )
    {
        refusals.push(Refusal {
            rule: "cluster",
            message: format!(
                "only VPC-network clusters of type Standard or Turbo are supported; this one is {:?}/{:?}",
                params.network_mode, params.cluster_type
            ),
        });
    }
    match parse_cidr(&params.subnet_cidr) {
        None => refusals.push(Refusal {
            rule: "subnet",
            message: format!(
                "subnet CIDR `{}` is not an IPv4 CIDR like 192.168.0.0/24",
                params.subnet_cidr
            ),
        }),
        Some(subnet) if overlaps(subnet, CCI_SERVICE_CIDR) => refusals.push(Refusal {
            rule: "subnet",
            message: format!(
                "the cluster subnet {} overlaps 10.247.0.0/16, the CCI-side Service CIDR; pick a subnet outside it",
                params.subnet_cidr
            ),
        }),
        Some(_) => {}
    }
    let arm_blocked = avoids_arm(params.release);
    let usable: Vec<&NodeFacts> = nodes
        .iter()
        .filter(|n| n.ineligible.is_none() && !(arm_blocked && n.arch != "amd64"))
        .collect();
    if arm_blocked && !nodes.is_empty() && nodes.iter().all(|n| n.arch != "amd64") {
        refusals.push(Refusal {
            rule: "arm",
            message: format!(
                "release {} does not support Arm clusters ({}); every node of this cluster is {}",
                params.release,
                Gate::ArmUnsupported.explain(params.release),
                nodes
                    .iter()
                    .map(|n| n.arch.as_str())
                    .collect::<std::collections::BTreeSet<_>>()
                    .into_iter()
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        });
        return refusals;
    }
    if Gate::FootprintCheck.applies_to(params.release) {
        let need = pod_slots_needed(params.interconnect);
        let want = params.spec.nodes_needed();
        let roomy = usable.iter().filter(|n| n.free() >= need).count();
        if roomy < want {
            let mut seen: Vec<String> = usable
                .iter()
                .map(|n| format!("{} {} free of {}", n.name, n.free(), n.allocatable_pods))
                .collect();
            seen.extend(nodes.iter().filter_map(|n| {
                n.ineligible
                    .as_ref()
                    .map(|why| format!("{} not usable: {why}", n.name))
            }));
            if seen.is_empty() {
                seen.push("no node at all".into());
            }
            let spec = match params.spec {
                Spec::Single => "single",
                Spec::Ha => "ha",
                Spec::Custom { .. } => "custom",
            };
            refusals.push(Refusal {
                rule: "pod room",
                message: format!(
                    "spec `{spec}` needs {want} node(s) with at least {need} free pod slots{}, {} in all; found {roomy} ({})",
                    if params.interconnect {
                        " (network interconnect on)"
                    } else {
                        ""
                    },
                    need * want as u32,
                    seen.join("; ")
                ),
            });
        }
    } else if usable.is_empty() {
        refusals.push(Refusal {
            rule: "nodes",
            message: "no schedulable node the add-on may use".into(),
        });
    }
    refusals
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use rstest::rstest;

    pub(crate) fn params(release: &str) -> InstallParams {
        InstallParams {
            release: Release::parse(release).unwrap(),
            spec: Spec::Single,
            interconnect: false,
            swr_addr: "swr.example".into(),
            swr_user: "team".into(),
            cluster_id: "c1".into(),
            cluster_name: "one".into(),
            network_mode: NetworkMode::Vpc,
            cluster_type: ClusterType::Standard,
            vpc_id: "vpc".into(),
            subnet_id: "subnet".into(),
            subnet_cidr: "192.168.0.0/24".into(),
            project_id: "p".into(),
            security_group_id: "sg".into(),
            domain_id: "d".into(),
            cci_endpoint: "http://127.0.0.1:1".into(),
            cci_token: "t".into(),
            cci_ca: None,
            lock_duration_secs: None,
            pending_lock_threshold_secs: None,
            check_resource_pressure: None,
            pod_disruption_budget: None,
            cci_aksk: None,
        }
    }

    #[test]
    fn debug_shows_the_parameters_but_never_the_credential() {
        let mut p = params("1.5.18");
        p.cci_token = "canary-4f1d9a".into();
        let shown = format!("{p:?}");
        assert!(!shown.contains("canary-4f1d9a"), "{shown}");
        assert!(shown.contains("cluster_id: \"c1\""), "{shown}");
    }

    fn node(name: &str, arch: &str, allocatable: u32, pods: u32) -> NodeFacts {
        NodeFacts {
            name: name.into(),
            arch: arch.into(),
            allocatable_pods: allocatable,
            pods,
            ineligible: None,
        }
    }

    #[rstest]
    #[case("10.247.0.0/16", true)]
    #[case("10.247.12.0/24", true)]
    #[case("10.0.0.0/8", true)]
    #[case("10.246.0.0/16", false)]
    #[case("10.248.0.0/24", false)]
    #[case("192.168.0.0/24", false)]
    fn a_subnet_is_refused_exactly_when_it_overlaps_the_cci_service_cidr(
        #[case] cidr: &str,
        #[case] refused: bool,
    ) {
        let mut p = params("1.5.18");
        p.subnet_cidr = cidr.into();
        let refusals = preflight(&p, &[node("n", "amd64", 110, 0)]);
        assert_eq!(
            refusals.iter().any(|r| r.rule == "subnet"),
            refused,
            "{refusals:?}"
        );
        if refused {
            assert!(refusals[0].message.contains(cidr));
            assert!(refusals[0].message.contains("10.247.0.0/16"));
        }
    }

    #[rstest]
    #[case(Spec::Single, false, &[7], true)]
    #[case(Spec::Single, false, &[6], false)]
    #[case(Spec::Single, true, &[7], false)]
    #[case(Spec::Single, true, &[8], true)]
    #[case(Spec::Ha, false, &[7, 7], true)]
    #[case(Spec::Ha, false, &[7, 6], false)]
    #[case(Spec::Ha, false, &[100], false)]
    #[case(Spec::Ha, true, &[8, 8], true)]
    #[case(Spec::Ha, true, &[8, 7], false)]
    fn pod_room_counts_free_slots_per_node(
        #[case] spec: Spec,
        #[case] interconnect: bool,
        #[case] free: &[u32],
        #[case] ok: bool,
    ) {
        let mut p = params("1.5.18");
        p.spec = spec;
        p.interconnect = interconnect;
        let nodes: Vec<NodeFacts> = free
            .iter()
            .enumerate()
            .map(|(i, f)| node(&format!("n{i}"), "amd64", 110, 110 - f))
            .collect();
        let refusals = preflight(&p, &nodes);
        assert_eq!(refusals.is_empty(), ok, "{refusals:?}");
        if !ok {
            assert_eq!(refusals[0].rule, "pod room");
            let need = pod_slots_needed(interconnect).to_string();
            assert!(
                refusals[0].message.contains(&need),
                "{}",
                refusals[0].message
            );
        }
    }

    #[test]
    fn pod_room_is_not_checked_before_1_5_2() {
        let p = params("1.5.1");
        assert!(preflight(&p, &[node("n", "amd64", 110, 109)]).is_empty());
    }

    #[rstest]
    #[case("1.5.37", &["arm64"], true)]
    #[case("1.5.37", &["arm64", "amd64"], false)]
    #[case("1.5.38", &["arm64"], false)]
    fn a_cluster_of_only_arm_nodes_is_refused_up_to_1_5_37(
        #[case] release: &str,
        #[case] arches: &[&str],
        #[case] refused: bool,
    ) {
        let p = params(release);
        let nodes: Vec<NodeFacts> = arches
            .iter()
            .enumerate()
            .map(|(i, a)| node(&format!("n{i}"), a, 110, 0))
            .collect();
        let refusals = preflight(&p, &nodes);
        assert_eq!(
            refusals.iter().any(|r| r.rule == "arm"),
            refused,
            "{refusals:?}"
        );
    }

    #[test]
    fn arm_nodes_do_not_count_as_room_up_to_1_5_37() {
        let mut p = params("1.5.18");
        p.spec = Spec::Ha;
        let nodes = [node("x86", "amd64", 110, 0), node("arm", "arm64", 110, 0)];
        assert_eq!(preflight(&p, &nodes)[0].rule, "pod room");
    }

    #[rstest]
    #[case(NetworkMode::Overlay, ClusterType::Standard)]
    #[case(NetworkMode::Vpc, ClusterType::Other)]
    fn only_vpc_standard_or_turbo_clusters_are_accepted(
        #[case] mode: NetworkMode,
        #[case] kind: ClusterType,
    ) {
        let mut p = params("1.5.18");
        p.network_mode = mode;
        p.cluster_type = kind;
        assert_eq!(
            preflight(&p, &[node("n", "amd64", 110, 0)])[0].rule,
            "cluster"
        );
    }

    #[test]
    fn the_image_is_the_engine_under_the_registry_and_user_tagged_with_the_release() {
        assert_eq!(
            params("1.5.18").image(),
            "swr.example/team/bursting-engine:1.5.18"
        );
    }
}
