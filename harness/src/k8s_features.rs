//! Kubernetes features that only some minors serve, and which minors serve each by default: a
//! scenario that depends on one the cluster lacks is "not applicable" there, with the reason
//! ([`not_applicable`]), never "passed"; a breakage that depends on one is caught only where it is
//! lacking ([`crate::breakages::Breakage::lacking`]).
//!
//! "Serves" means what a cluster brought up with the minor's defaults does (feature gates at
//! their default, the API's version enabled), as CCE's clusters and the harness's are. What the
//! engine and the scenarios use, and why none of it needs a feature the oldest supported minor
//! lacks, is in `docs/versions.md`.

use k8s_openapi::apimachinery::pkg::version::Info;

use crate::catalogue::Outcome;
use crate::error::{Error, Result};

/// A Kubernetes feature served by default from some minor on (or, for WatchList, at some).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
pub enum Feature {
    /// Restartable init containers ("sidecar containers", `restartPolicy: Always` on an init
    /// container): beta and on by default from 1.29, alpha and off at 1.28.
    SidecarContainers,
    /// `admissionregistration.k8s.io/v1` ValidatingAdmissionPolicy: v1 from 1.30; 1.28–1.29
    /// have only v1beta1, off by default.
    ValidatingAdmissionPolicy,
    /// Field selectors on custom resources (`selectableFields`): beta and on by default from
    /// 1.31.
    CustomResourceFieldSelectors,
    /// Streaming lists: a watch with `sendInitialEvents=true` (the WatchList gate, KEP-3157).
    /// Beta from 1.32, where it is on by default; 1.33 turned it off again (its streaming
    /// encoders were preferred) and 1.34 on. Elsewhere the API server refuses such a watch.
    WatchList,
}

impl Feature {
    /// Every feature.
    pub const ALL: &'static [Feature] = &[
        Feature::SidecarContainers,
        Feature::ValidatingAdmissionPolicy,
        Feature::CustomResourceFieldSelectors,
        Feature::WatchList,
    ];

    /// Whether Kubernetes 1.`minor` serves it by default.
    pub fn served_at(self, minor: u32) -> bool {
        match self {
            Feature::SidecarContainers => minor >= 29,
            Feature::ValidatingAdmissionPolicy => minor >= 30,
            Feature::CustomResourceFieldSelectors => minor >= 31,
            Feature::WatchList => minor == 32 || minor >= 34,
        }
    }

    /// The feature in words.
    pub fn describe(self) -> &'static str {
        match self {
            Feature::SidecarContainers => {
                "restartable init containers (sidecar containers, restartPolicy: Always)"
            }
            Feature::ValidatingAdmissionPolicy => {
                "ValidatingAdmissionPolicy (admissionregistration.k8s.io/v1)"
            }
            Feature::CustomResourceFieldSelectors => {
                "field selectors on custom resources (selectableFields)"
            }
            Feature::WatchList => "streaming lists (a watch with sendInitialEvents, WatchList)",
        }
    }

    /// Which minors serve it by default, in words.
    pub fn served_by(self) -> &'static str {
        match self {
            Feature::SidecarContainers => "Kubernetes serves by default from 1.29",
            Feature::ValidatingAdmissionPolicy => "Kubernetes serves from 1.30",
            Feature::CustomResourceFieldSelectors => "Kubernetes serves by default from 1.31",
            Feature::WatchList => "Kubernetes serves by default at 1.32 and from 1.34",
        }
    }
}

/// The minor of a served version (`minor` is e.g. `30`, or `30+` on some distributions).
pub fn minor_of(version: &Info) -> Option<u32> {
    if version.major.trim_end_matches('+') != "1" {
        return None;
    }
    version.minor.trim_end_matches('+').parse().ok()
}

/// Why something that depends on `features` cannot run on a cluster serving `version`, if it
/// cannot (a version whose minor cannot be read is taken to serve them: the check must never
/// turn a real run into a "not applicable" by guessing).
pub fn unmet(features: &[Feature], version: &Info) -> Option<String> {
    let minor = minor_of(version)?;
    let missing: Vec<String> = features
        .iter()
        .filter(|f| !f.served_at(minor))
        .map(|f| format!("{}, which {}", f.describe(), f.served_by()))
        .collect();
    (!missing.is_empty()).then(|| {
        format!(
            "needs {}; this cluster serves {}",
            missing.join("; and "),
            version.git_version
        )
    })
}

/// A scenario's outcome when the cluster of `client` lacks one of `features`: "not applicable"
/// with the reason; `None` when it serves them all (the scenario runs).
pub async fn not_applicable(
    client: &kube::Client,
    features: &[Feature],
) -> Result<Option<Outcome>> {
    let version = client
        .apiserver_version()
        .await
        .map_err(|source| Error::Kube {
            context: "read the API server's version".into(),
            source,
        })?;
    Ok(unmet(features, &version).map(Outcome::NotApplicable))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tools::Minor;

    fn info(major: &str, minor: &str, git: &str) -> Info {
        Info {
            major: major.into(),
            minor: minor.into(),
            git_version: git.into(),
            ..Info::default()
        }
    }

    #[test]
    fn the_minor_is_read_from_the_version_with_or_without_a_plus() {
        assert_eq!(minor_of(&info("1", "30", "v1.30.14")), Some(30));
        assert_eq!(minor_of(&info("1", "33+", "v1.33.1-eks")), Some(33));
        assert_eq!(minor_of(&info("1", "", "v0.0.0-master")), None);
        assert_eq!(minor_of(&info("2", "0", "v2.0.0")), None);
    }

    #[test]
    fn a_lacking_feature_is_named_with_the_minors_that_serve_it_and_the_served_version() {
        let old = info("1", "28", "v1.28.15");
        let why = unmet(&[Feature::SidecarContainers, Feature::WatchList], &old).unwrap();
        assert!(
            why.starts_with("needs restartable init containers"),
            "{why}"
        );
        assert!(why.contains("from 1.29"), "{why}");
        assert!(why.contains("at 1.32 and from 1.34"), "{why}");
        assert!(why.ends_with("this cluster serves v1.28.15"), "{why}");
        assert_eq!(
            unmet(&[Feature::SidecarContainers], &info("1", "30", "v1.30.14")),
            None
        );
        assert_eq!(unmet(&[], &old), None);
        // An unreadable version never makes a run "not applicable".
        assert_eq!(unmet(&[Feature::WatchList], &info("1", "x", "v1.x")), None);
    }

    #[test]
    fn watch_list_is_served_at_1_32_and_from_1_34_only() {
        let served: Vec<u32> = (28..=37)
            .filter(|m| Feature::WatchList.served_at(*m))
            .collect();
        assert_eq!(served, [32, 34, 35, 36, 37]);
    }

    #[test]
    fn every_feature_is_served_by_the_pinned_minor() {
        // The pinned minor is the one the suites run on: a feature it lacks could not be tested.
        for feature in Feature::ALL {
            assert!(
                feature.served_at(Minor::PINNED.number()),
                "{feature:?} at {}",
                Minor::PINNED
            );
        }
    }
}
