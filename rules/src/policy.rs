//! The burst policy label and its resolution through the owner chain (`BEHAVIOR.md` §3).
//!
//! A workload opts in with the label `virtual-kubelet.io/burst-to-cci` (the seed's spelling) or
//! `bursting.cci.io/burst-to-cci` (newer manuals). Values, case-sensitive: `enforce`, `auto`,
//! `localPrefer`, `off`.
//!
//! Resolution, documented choices:
//!
//! - The chain is the pod followed by its owners, nearest first: Pod → ReplicaSet →
//!   Deployment, Pod → Job → CronJob, Pod → StatefulSet. **The nearest object that carries a
//!   policy label decides**: the pod's own label first (so one pod of a workload can opt out
//!   with `off`), then its controller, and so on up. Labels usually sit on the top owner (the
//!   seed's Deployment has it on the Deployment, not on the template).
//! - On one object, **the seed's key wins** when both keys are set, even if they disagree.
//! - An unknown value on the deciding object is an error ([`Error::UnknownPolicy`]) naming the
//!   object and the label, rather than silently `off`: a typo such as `Enforce` would otherwise
//!   leave a workload that must burst on the cluster without a word.
//! - Pods with a DaemonSet anywhere in the chain never burst ([`is_daemonset_pod`]).

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use crate::{Error, Result};

/// The seed's label key.
pub const LABEL: &str = "virtual-kubelet.io/burst-to-cci";
/// The newer manuals' label key.
pub const LABEL_NEW: &str = "bursting.cci.io/burst-to-cci";
/// Both keys, in order of precedence.
pub const LABELS: [&str; 2] = [LABEL, LABEL_NEW];

/// Where a workload's pods may run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Policy {
    /// Pods must run on CCI. \[seed\]
    Enforce,
    /// The scheduler's scoring decides between cluster nodes and CCI. \[docs\]
    Auto,
    /// Cluster nodes first; CCI only when the cluster lacks room. \[docs\]
    LocalPrefer,
    /// Never on CCI. \[docs\]
    Off,
}

impl Policy {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Policy::Enforce => "enforce",
            Policy::Auto => "auto",
            Policy::LocalPrefer => "localPrefer",
            Policy::Off => "off",
        }
    }

    /// Whether pods under this policy may run on CCI.
    pub fn may_burst(self) -> bool {
        self != Policy::Off
    }
}

impl fmt::Display for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Policy {
    type Err = ();
    fn from_str(s: &str) -> std::result::Result<Self, ()> {
        match s {
            "enforce" => Ok(Policy::Enforce),
            "auto" => Ok(Policy::Auto),
            "localPrefer" => Ok(Policy::LocalPrefer),
            "off" => Ok(Policy::Off),
            _ => Err(()),
        }
    }
}

/// One object of the owner chain, as plain data.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OwnerFacts {
    /// Its kind: `Pod`, `ReplicaSet`, `Deployment`, `Job`, `CronJob`, `StatefulSet`,
    /// `DaemonSet`, …
    pub kind: String,
    /// `namespace/name` (or just the name), for messages.
    pub name: String,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
}

impl OwnerFacts {
    /// An object of `kind` and `name` with `labels`.
    pub fn new<K, V>(
        kind: impl Into<String>,
        name: impl Into<String>,
        labels: impl IntoIterator<Item = (K, V)>,
    ) -> Self
    where
        K: Into<String>,
        V: Into<String>,
    {
        Self {
            kind: kind.into(),
            name: name.into(),
            labels: labels
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        }
    }

    /// `Kind name`, e.g. `Deployment default/web`.
    pub fn describe(&self) -> String {
        format!("{} {}", self.kind, self.name)
    }
}

/// The policy that applies, and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// The policy.
    pub policy: Policy,
    /// `Kind name` of the object whose label decided.
    pub object: String,
    /// The label key that decided.
    pub label: &'static str,
}

impl fmt::Display for Resolved {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={} on {}", self.label, self.policy, self.object)
    }
}

/// The policy of a pod whose chain is `chain` (the pod first, then its owners, nearest first);
/// `None` when no object carries a policy label.
pub fn resolve(chain: &[OwnerFacts]) -> Result<Option<Resolved>> {
    for object in chain {
        for label in LABELS {
            let Some(value) = object.labels.get(label) else {
                continue;
            };
            let policy = value.parse().map_err(|()| Error::UnknownPolicy {
                object: object.describe(),
                label: label.to_string(),
                value: value.clone(),
            })?;
            return Ok(Some(Resolved {
                policy,
                object: object.describe(),
                label,
            }));
        }
    }
    Ok(None)
}

/// Whether a DaemonSet is anywhere in `chain`: such pods never burst.
pub fn is_daemonset_pod(chain: &[OwnerFacts]) -> bool {
    chain.iter().any(|o| o.kind == "DaemonSet")
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    fn object(kind: &str, labels: &[(&str, &str)]) -> OwnerFacts {
        OwnerFacts::new(
            kind,
            format!("default/{}", kind.to_lowercase()),
            labels.iter().copied(),
        )
    }

    #[rstest]
    #[case::enforce("enforce", Policy::Enforce)]
    #[case::auto("auto", Policy::Auto)]
    #[case::local_prefer("localPrefer", Policy::LocalPrefer)]
    #[case::off("off", Policy::Off)]
    fn each_documented_value_is_a_policy(#[case] value: &str, #[case] policy: Policy) {
        assert_eq!(value.parse::<Policy>(), Ok(policy));
        assert_eq!(policy.to_string(), value);
    }

    #[rstest]
    #[case::seed_key(LABEL)]
    #[case::newer_key(LABEL_NEW)]
    fn either_key_opts_in(#[case] key: &str) {
        let chain = [object("Pod", &[(key, "enforce")])];
        let r = resolve(&chain).unwrap().unwrap();
        assert_eq!(r.policy, Policy::Enforce);
        assert_eq!(r.label, key);
    }

    #[test]
    fn the_seed_key_wins_when_both_are_set() {
        let chain = [object("Pod", &[(LABEL, "off"), (LABEL_NEW, "enforce")])];
        let r = resolve(&chain).unwrap().unwrap();
        assert_eq!((r.policy, r.label), (Policy::Off, LABEL));
    }

    #[rstest]
    #[case::deployment(&["Pod", "ReplicaSet", "Deployment"])]
    #[case::cron_job(&["Pod", "Job", "CronJob"])]
    #[case::stateful_set(&["Pod", "StatefulSet"])]
    #[case::job(&["Pod", "Job"])]
    fn the_top_owners_label_reaches_the_pod(#[case] kinds: &[&str]) {
        let mut chain: Vec<OwnerFacts> = kinds.iter().map(|k| object(k, &[])).collect();
        let top = chain.last_mut().unwrap();
        top.labels.insert(LABEL.into(), "localPrefer".into());
        let top = top.describe();
        let r = resolve(&chain).unwrap().unwrap();
        assert_eq!(r.policy, Policy::LocalPrefer);
        assert_eq!(r.object, top);
    }

    #[test]
    fn the_nearest_label_wins_so_a_pod_can_opt_out() {
        let chain = [
            object("Pod", &[(LABEL_NEW, "off")]),
            object("ReplicaSet", &[]),
            object("Deployment", &[(LABEL, "enforce")]),
        ];
        let r = resolve(&chain).unwrap().unwrap();
        assert_eq!(r.policy, Policy::Off);
        assert_eq!(r.object, "Pod default/pod");
    }

    #[test]
    fn no_label_anywhere_is_no_policy() {
        let chain = [object("Pod", &[("app", "web")]), object("ReplicaSet", &[])];
        assert_eq!(resolve(&chain).unwrap(), None);
        assert_eq!(resolve(&[]).unwrap(), None);
    }

    #[rstest]
    #[case::capitalised("Enforce")]
    #[case::lower_prefer("localprefer")]
    #[case::empty("")]
    #[case::boolean("true")]
    fn an_unknown_value_names_the_object_and_label(#[case] value: &str) {
        let chain = [object("Pod", &[]), object("Deployment", &[(LABEL, value)])];
        let err = resolve(&chain).unwrap_err().to_string();
        assert!(err.contains("Deployment default/deployment"), "{err}");
        assert!(err.contains(&format!("{LABEL}={value:?}")), "{err}");
        assert!(err.contains("enforce, auto, localPrefer or off"), "{err}");
    }

    #[test]
    fn daemonset_pods_are_recognised_anywhere_in_the_chain() {
        assert!(is_daemonset_pod(&[
            object("Pod", &[]),
            object("DaemonSet", &[])
        ]));
        assert!(!is_daemonset_pod(&[
            object("Pod", &[]),
            object("ReplicaSet", &[])
        ]));
    }
}
