//! Add-on releases and the one table of release gates.
//!
//! The engine takes its release as configuration (`--release 1.5.18`), so one build behaves as
//! any documented release. Every rule that changed between releases is a [`Gate`] here, and only
//! here; code asks `release.allows(Gate::X)` and words its messages with [`Gate::explain`].
//!
//! ```
//! use burst_rules::release::{Gate, Release};
//!
//! let r: Release = "1.5.8".parse().unwrap();
//! assert!(!r.allows(Gate::EtcLocaltimeHostPath));
//! assert_eq!(
//!     Gate::EtcLocaltimeHostPath.explain(r),
//!     "requires add-on release >= 1.5.9; this is 1.5.8"
//! );
//! ```

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::{Error, Result};

/// A version `X.Y.Z`: an add-on release, or another component's version (Volcano).
///
/// Parsing accepts an optional leading `v` (`v1.17.10`, as Volcano tags itself) and nothing else
/// besides the three numbers: no pre-release or build suffix. Ordering is numeric, part by part.
/// Serialized as its string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Release {
    /// X.
    pub major: u32,
    /// Y.
    pub minor: u32,
    /// Z.
    pub patch: u32,
}

impl Release {
    /// `major.minor.patch`.
    pub const fn new(major: u32, minor: u32, patch: u32) -> Self {
        Self {
            major,
            minor,
            patch,
        }
    }

    /// Parses `X.Y.Z` (or `vX.Y.Z`).
    pub fn parse(value: &str) -> Result<Self> {
        let bad = |reason| Error::Version {
            value: value.to_string(),
            reason,
        };
        let digits = value.strip_prefix('v').unwrap_or(value);
        let mut parts = digits.split('.');
        let mut next = || -> Result<u32> {
            let part = parts
                .next()
                .ok_or_else(|| bad("it has fewer than three parts"))?;
            if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad("each part must be a number"));
            }
            part.parse().map_err(|_| bad("a part is too large"))
        };
        let release = Self::new(next()?, next()?, next()?);
        if parts.next().is_some() {
            return Err(bad("it has more than three parts"));
        }
        Ok(release)
    }

    /// Whether this release has the behaviour `gate` describes.
    pub fn allows(self, gate: Gate) -> bool {
        gate.applies_to(self)
    }
}

impl fmt::Display for Release {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

impl FromStr for Release {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Self::parse(s)
    }
}

impl Serialize for Release {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Release {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// Which side of a threshold a gate covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bound {
    /// The gate applies to this release and every later one.
    AtLeast(Release),
    /// The gate applies to this release and every earlier one.
    AtMost(Release),
}

/// A behaviour that depends on the add-on release. The thresholds are in [`Gate::bound`], the
/// one table in code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Gate {
    /// DownwardAPI and Projected volumes may go to CCI (`>= 1.3.25`). \[seed\]
    DownwardApiAndProjected,
    /// The add-on's own pods need room: 7 pod slots per node for `single`, 8 with the network
    /// interconnect; two such nodes for `ha` (`>= 1.5.2`). \[seed\]
    FootprintCheck,
    /// Services of type LoadBalancer (a dedicated ELB) may select burst pods (`>= 1.5.5`). \[seed\]
    LoadBalancerService,
    /// A hostPath volume whose path is `/etc/localtime` may go to CCI, carrying the node's time
    /// zone (`>= 1.5.9`). \[seed\]
    EtcLocaltimeHostPath,
    /// Burst pods get the new sidecar (network protocol v2); rolling back below this release
    /// cuts them off from Services (`>= 1.5.18`). \[seed\]
    SidecarV2,
    /// The add-on does not support Arm clusters; its own pods avoid Arm nodes (`<= 1.5.37`).
    /// \[seed\]
    ArmUnsupported,
}

impl Gate {
    /// Every gate, in threshold order.
    pub const ALL: [Gate; 6] = [
        Gate::DownwardApiAndProjected,
        Gate::FootprintCheck,
        Gate::LoadBalancerService,
        Gate::EtcLocaltimeHostPath,
        Gate::SidecarV2,
        Gate::ArmUnsupported,
    ];

    /// The table: where each gate starts or ends.
    pub const fn bound(self) -> Bound {
        match self {
            Gate::DownwardApiAndProjected => Bound::AtLeast(Release::new(1, 3, 25)),
            Gate::FootprintCheck => Bound::AtLeast(Release::new(1, 5, 2)),
            Gate::LoadBalancerService => Bound::AtLeast(Release::new(1, 5, 5)),
            Gate::EtcLocaltimeHostPath => Bound::AtLeast(Release::new(1, 5, 9)),
            Gate::SidecarV2 => Bound::AtLeast(Release::new(1, 5, 18)),
            Gate::ArmUnsupported => Bound::AtMost(Release::new(1, 5, 37)),
        }
    }

    /// The release at the threshold (the first one with the behaviour for `AtLeast`, the last
    /// one for `AtMost`).
    pub const fn threshold(self) -> Release {
        match self.bound() {
            Bound::AtLeast(r) | Bound::AtMost(r) => r,
        }
    }

    /// Whether `release` has this behaviour.
    pub fn applies_to(self, release: Release) -> bool {
        match self.bound() {
            Bound::AtLeast(r) => release >= r,
            Bound::AtMost(r) => release <= r,
        }
    }

    /// The gate as a condition, e.g. `>= 1.5.9`.
    pub fn condition(self) -> String {
        match self.bound() {
            Bound::AtLeast(r) => format!(">= {r}"),
            Bound::AtMost(r) => format!("<= {r}"),
        }
    }

    /// The gate for a message: `requires add-on release >= 1.5.9; this is 1.5.8` (or, for an
    /// `AtMost` gate, `applies to add-on releases <= 1.5.37; this is 1.5.38`).
    pub fn explain(self, release: Release) -> String {
        match self.bound() {
            Bound::AtLeast(_) => {
                format!(
                    "requires add-on release {}; this is {release}",
                    self.condition()
                )
            }
            Bound::AtMost(_) => {
                format!(
                    "applies to add-on releases {}; this is {release}",
                    self.condition()
                )
            }
        }
    }
}

impl fmt::Display for Gate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self {
            Gate::DownwardApiAndProjected => "downwardAPI and projected volumes",
            Gate::FootprintCheck => "add-on footprint check",
            Gate::LoadBalancerService => "LoadBalancer Services",
            Gate::EtcLocaltimeHostPath => "hostPath /etc/localtime",
            Gate::SidecarV2 => "sidecar v2",
            Gate::ArmUnsupported => "no Arm clusters",
        };
        write!(f, "{what} ({})", self.condition())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case::plain("1.5.18", Release::new(1, 5, 18))]
    #[case::volcano_tag("v1.17.10", Release::new(1, 17, 10))]
    #[case::zeros("0.0.0", Release::new(0, 0, 0))]
    fn well_formed_versions_parse(#[case] text: &str, #[case] expected: Release) {
        assert_eq!(text.parse::<Release>().unwrap(), expected);
    }

    #[rstest]
    #[case::two_parts("1.5", "fewer than three")]
    #[case::four_parts("1.5.18.1", "more than three")]
    #[case::suffix("1.5.18-rc1", "number")]
    #[case::empty("", "number")]
    #[case::empty_part("1..5", "number")]
    #[case::sign("+1.5.5", "number")]
    #[case::huge("1.5.99999999999", "too large")]
    fn malformed_versions_say_what_is_wrong(#[case] text: &str, #[case] reason: &str) {
        let err = text.parse::<Release>().unwrap_err().to_string();
        assert!(err.contains(reason), "{err}");
        assert!(err.contains(&format!("{text:?}")), "{err}");
    }

    #[test]
    fn releases_order_numerically_not_lexically() {
        assert!(Release::new(1, 5, 9) < Release::new(1, 5, 18));
        assert!(Release::new(1, 3, 25) < Release::new(1, 5, 2));
        assert_eq!(Release::new(1, 5, 18).to_string(), "1.5.18");
    }

    #[test]
    fn a_release_round_trips_through_serde_as_a_string() {
        let json = serde_json::to_string(&Release::new(1, 5, 9)).unwrap();
        assert_eq!(json, "\"1.5.9\"");
        assert_eq!(
            serde_json::from_str::<Release>(&json).unwrap(),
            Release::new(1, 5, 9)
        );
        assert!(serde_json::from_str::<Release>("\"1.5\"").is_err());
    }

    #[rstest]
    #[case::downward_api(Gate::DownwardApiAndProjected, "1.3.24", "1.3.25")]
    #[case::footprint(Gate::FootprintCheck, "1.5.1", "1.5.2")]
    #[case::load_balancer(Gate::LoadBalancerService, "1.5.4", "1.5.5")]
    #[case::etc_localtime(Gate::EtcLocaltimeHostPath, "1.5.8", "1.5.9")]
    #[case::sidecar_v2(Gate::SidecarV2, "1.5.17", "1.5.18")]
    fn an_at_least_gate_opens_exactly_at_its_threshold(
        #[case] gate: Gate,
        #[case] before: &str,
        #[case] at: &str,
    ) {
        let before: Release = before.parse().unwrap();
        let at: Release = at.parse().unwrap();
        assert!(!before.allows(gate));
        assert!(at.allows(gate));
        assert_eq!(gate.threshold(), at);
        assert!(Release::new(99, 0, 0).allows(gate));
    }

    #[test]
    fn arm_is_unsupported_up_to_and_including_1_5_37() {
        assert!(Release::new(1, 5, 37).allows(Gate::ArmUnsupported));
        assert!(!Release::new(1, 5, 38).allows(Gate::ArmUnsupported));
        assert_eq!(
            Gate::ArmUnsupported.explain(Release::new(1, 5, 38)),
            "applies to add-on releases <= 1.5.37; this is 1.5.38"
        );
    }

    #[test]
    fn the_gate_table_is_in_threshold_order() {
        let thresholds: Vec<Release> = Gate::ALL.iter().map(|g| g.threshold()).collect();
        let mut sorted = thresholds.clone();
        sorted.sort();
        assert_eq!(thresholds, sorted);
    }

    #[test]
    fn a_gate_explains_itself_with_both_releases() {
        assert_eq!(
            Gate::LoadBalancerService.explain(Release::new(1, 5, 4)),
            "requires add-on release >= 1.5.5; this is 1.5.4"
        );
        assert_eq!(
            Gate::EtcLocaltimeHostPath.to_string(),
            "hostPath /etc/localtime (>= 1.5.9)"
        );
    }
}
