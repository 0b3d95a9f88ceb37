//! The release gates as the harness reads them in `docs/spec/BEHAVIOR.md`: which releases have a
//! gated behaviour, so which side of its gate a scenario checks and which preconditions the
//! installer applies.
//!
//! NB: this table is the harness's own, written from the spec, and never `burst_rules::release`'s
//! (the engine's decision rules). A harness that asked the engine's table which side of a gate a
//! release is on would move with it: a wrong threshold there would make the engine behave wrongly
//! and the scenario expect exactly that, and both would pass on both sides. A test below reads
//! the gate lines of the spec and holds this table to them.
//!
//! [`Release`] (a version's parsing and its numeric order) is still `burst_rules`' type: it is a
//! value, not a rule of the spec, and a test below pins the order this table relies on.
//!
//! ```
//! use burstcert::gates::Gate;
//! use burst_rules::release::Release;
//!
//! assert!(!Gate::EtcLocaltimeHostPath.applies_to(Release::new(1, 5, 8)));
//! assert!(Gate::EtcLocaltimeHostPath.applies_to(Release::new(1, 5, 9)));
//! assert_eq!(Gate::ArmUnsupported.condition(), "<= 1.5.37");
//! ```

use std::fmt;

use burst_rules::release::Release;

/// Which side of a threshold a gate covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bound {
    /// The gate applies to this release and every later one (`>= X`).
    AtLeast(Release),
    /// The gate applies to this release and every earlier one (`<= X`).
    AtMost(Release),
}

/// A behaviour of `docs/spec/BEHAVIOR.md` that depends on the add-on release.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Gate {
    /// §5: DownwardAPI and Projected volumes may go to CCI (`>= 1.3.25`).
    DownwardApiAndProjected,
    /// §2: install checks the add-on's footprint, pod room on one node (`single`) or two (`ha`)
    /// (`>= 1.5.2`).
    FootprintCheck,
    /// §2: Services of type LoadBalancer (dedicated ELB) for burst pods (`>= 1.5.5`).
    LoadBalancerService,
    /// §5: a hostPath whose path is `/etc/localtime` may go to CCI (`>= 1.5.9`).
    EtcLocaltimeHostPath,
    /// §9: burst pods get the new sidecar; rolling back below it cuts them off from Services
    /// (`>= 1.5.18`).
    SidecarV2,
    /// §2: no Arm clusters; the add-on's own pods avoid Arm nodes (`<= 1.5.37`).
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

    /// The table: where each gate starts or ends, as `docs/spec/BEHAVIOR.md` says.
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

    /// Where each gate is written in `docs/spec/BEHAVIOR.md`: words found in exactly one item
    /// (a bullet or a table row) of the spec, which carries the gate's condition. A gate the spec
    /// states in two items names both.
    pub const fn spec_items(self) -> &'static [&'static str] {
        match self {
            Gate::DownwardApiAndProjected => &["| DownwardAPI |", "| Projected |"],
            Gate::FootprintCheck => &["Resource footprint"],
            Gate::LoadBalancerService => &["Services of type LoadBalancer"],
            Gate::EtcLocaltimeHostPath => &["| HostPath |"],
            Gate::SidecarV2 => &["inject a new sidecar", "Recovery: upgrade again to"],
            Gate::ArmUnsupported => &["do not support Arm clusters"],
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

    /// The gate as the spec writes it, e.g. `>= 1.5.9`.
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
            Bound::AtLeast(_) => format!(
                "requires add-on release {}; this is {release}",
                self.condition()
            ),
            Bound::AtMost(_) => format!(
                "applies to add-on releases {}; this is {release}",
                self.condition()
            ),
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

/// Version conditions `docs/spec/BEHAVIOR.md` writes that are not add-on release gates: words of
/// their item, and the condition.
pub const NOT_RELEASE_GATES: &[(&str, &str)] = &[("Volcano scheduler", "<= 1.17.10")];

#[cfg(test)]
mod tests {
    use super::*;

    /// The spec, compiled in: this test cannot skip itself for a missing file.
    const BEHAVIOR_MD: &str = include_str!("../../docs/spec/BEHAVIOR.md");

    /// The spec's items from its first section on (the preamble's `>= 1.5.9` is an example): each
    /// bullet, table row or heading, with its indented continuation lines joined to it.
    fn items(spec: &str) -> Vec<String> {
        let body = &spec[spec.find("\n## ").expect("a numbered section")..];
        let mut items: Vec<String> = Vec::new();
        for line in body.lines() {
            let trimmed = line.trim_start();
            let continues = line.starts_with(' ')
                && !trimmed.starts_with("- ")
                && !trimmed.starts_with('|')
                && !trimmed.is_empty();
            match items.last_mut() {
                Some(item) if continues => {
                    item.push(' ');
                    item.push_str(trimmed);
                }
                _ => items.push(trimmed.to_owned()),
            }
        }
        items
    }

    /// The version conditions an item writes in backticks: `` `>= 1.5.9` ``, `` `<= 1.5.37` ``.
    fn conditions(item: &str) -> Vec<String> {
        item.split('`')
            .skip(1)
            .step_by(2)
            .filter_map(|code| {
                let (op, version) = code
                    .strip_prefix(">= ")
                    .map(|v| (">=", v))
                    .or_else(|| code.strip_prefix("<= ").map(|v| ("<=", v)))?;
                let parts: Vec<&str> = version.split('.').collect();
                (parts.len() == 3
                    && parts
                        .iter()
                        .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit())))
                .then(|| format!("{op} {version}"))
            })
            .collect()
    }

    fn the_item<'a>(items: &'a [String], words: &str) -> &'a String {
        let found: Vec<&String> = items.iter().filter(|i| i.contains(words)).collect();
        assert_eq!(
            found.len(),
            1,
            "{words:?} must name exactly one item of docs/spec/BEHAVIOR.md: {found:#?}"
        );
        found[0]
    }

    #[test]
    fn every_gate_is_where_the_spec_writes_it_with_the_spec_s_condition_and_source() {
        let items = items(BEHAVIOR_MD);
        for gate in Gate::ALL {
            for words in gate.spec_items() {
                let item = the_item(&items, words);
                let mut found = conditions(item);
                found.dedup();
                assert_eq!(
                    found,
                    vec![gate.condition()],
                    "{gate:?}: the spec's item {item:?}"
                );
                assert!(
                    item.contains("[seed]"),
                    "{gate:?}: the spec's item names no source: {item:?}"
                );
            }
        }
    }

    #[test]
    fn every_version_condition_of_the_spec_is_a_gate_of_this_table_or_named_as_not_one() {
        let items = items(BEHAVIOR_MD);
        let gate_items: Vec<&String> = Gate::ALL
            .iter()
            .flat_map(|g| g.spec_items())
            .map(|words| the_item(&items, words))
            .collect();
        let other_items: Vec<&String> = NOT_RELEASE_GATES
            .iter()
            .map(|(words, condition)| {
                let item = the_item(&items, words);
                assert_eq!(conditions(item), vec![condition.to_string()], "{item:?}");
                item
            })
            .collect();
        let unread: Vec<(&String, Vec<String>)> = items
            .iter()
            .filter(|i| !gate_items.contains(i) && !other_items.contains(i))
            .map(|i| (i, conditions(i)))
            .filter(|(_, c)| !c.is_empty())
            .collect();
        assert!(
            unread.is_empty(),
            "conditions of docs/spec/BEHAVIOR.md no gate of the harness reads (a new gate? add it \
             to harness/src/gates.rs): {unread:#?}"
        );
    }

    #[test]
    fn the_spec_s_conditions_are_read_from_backticks_only() {
        assert_eq!(
            conditions("release `>= 1.5.5`, Volcano `<= 1.17.10`, `< 1.5.18`, `>= 1.5`"),
            vec![">= 1.5.5", "<= 1.17.10"]
        );
        assert!(conditions("releases >= 1.5.2 without backticks").is_empty());
    }

    #[test]
    fn a_gate_changes_side_exactly_at_its_threshold_and_releases_order_numerically() {
        for gate in Gate::ALL {
            let t = gate.threshold();
            let before = Release::new(t.major, t.minor, t.patch - 1);
            let after = Release::new(t.major, t.minor, t.patch + 1);
            match gate.bound() {
                Bound::AtLeast(_) => {
                    assert!(
                        !gate.applies_to(before) && gate.applies_to(t) && gate.applies_to(after)
                    )
                }
                Bound::AtMost(_) => {
                    assert!(
                        gate.applies_to(before) && gate.applies_to(t) && !gate.applies_to(after)
                    )
                }
            }
        }
        // The suites check the other side at 1.3.24 and 1.5.38; 1.5.9 < 1.5.18 by number.
        assert!(Release::new(1, 5, 9) < Release::new(1, 5, 18));
        assert!(!Gate::SidecarV2.applies_to(Release::new(1, 5, 9)));
    }

    #[test]
    fn the_table_is_in_threshold_order_and_explains_itself() {
        let thresholds: Vec<Release> = Gate::ALL.iter().map(|g| g.threshold()).collect();
        let mut sorted = thresholds.clone();
        sorted.sort();
        assert_eq!(thresholds, sorted);
        assert_eq!(
            Gate::LoadBalancerService.explain(Release::new(1, 5, 4)),
            "requires add-on release >= 1.5.5; this is 1.5.4"
        );
        assert_eq!(
            Gate::ArmUnsupported.explain(Release::new(1, 5, 38)),
            "applies to add-on releases <= 1.5.37; this is 1.5.38"
        );
        assert_eq!(
            Gate::EtcLocaltimeHostPath.to_string(),
            "hostPath /etc/localtime (>= 1.5.9)"
        );
    }
}
