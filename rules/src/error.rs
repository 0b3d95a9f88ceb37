//! The crate's one error type.

use crate::flavour::{Flavour, PodResources};

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why a rule refused its input. Messages are written for the person who applied the manifest:
/// they name the object or field, the rule, and what to do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A release or version string that is not `X.Y.Z`.
    #[error("version {value:?} is not of the form X.Y.Z such as 1.5.18: {reason}")]
    Version {
        /// The text as given.
        value: String,
        /// What is wrong with it.
        reason: &'static str,
    },

    /// A quantity that Kubernetes would not parse, or that is out of range here.
    #[error("quantity {value:?} {reason}")]
    Quantity {
        /// The text as given.
        value: String,
        /// What is wrong with it, e.g. `has an unknown suffix "K" (use k for 1000 or Ki for 1024)`.
        reason: String,
    },

    /// A container's (or the pod's) resource value that is not a usable quantity.
    #[error("{owner}: {field} {value:?} {reason}")]
    ResourceQuantity {
        /// Whose resources: `container "app"`, `init container "setup"` or `pod`.
        owner: String,
        /// The field, e.g. `resources.requests.cpu`.
        field: String,
        /// The text as given.
        value: String,
        /// What is wrong with it.
        reason: String,
    },

    /// No container has cpu or memory requests or limits and the pod pins no size.
    #[error(
        "no container has cpu or memory requests or limits and the pod has no \
         resource.cci.io/pod-size-specs annotation, so CCI cannot size it; set requests \
         (CCI makes limits equal to them) or the annotation, e.g. \"0.5_1\""
    )]
    NoResources,

    /// The pod needs more than any CCI flavour offers.
    #[error(
        "the pod needs {need} (the larger of the sum of container requests, each container \
         limit and the largest init container), which fits no CCI flavour (the largest are \
         48 vCPU / 384 GiB and 64 vCPU / 512 GiB); lower its requests and limits, or keep it off CCI"
    )]
    NoFlavour {
        /// What the pod needs.
        need: PodResources,
    },

    /// `resource.cci.io/pod-size-specs` is not `{cpu}_{memory}`.
    #[error(
        "annotation resource.cci.io/pod-size-specs {value:?} is not \"{{vCPU}}_{{memory GiB}}\" \
         such as \"2_4\" or \"0.25_0.5\": {reason}"
    )]
    PodSizeSpecsSyntax {
        /// The annotation's value.
        value: String,
        /// What is wrong with it.
        reason: String,
    },

    /// `resource.cci.io/pod-size-specs` is well formed but names no CCI flavour.
    #[error(
        "annotation resource.cci.io/pod-size-specs {value:?} names no CCI flavour: {hint}; pin \
         one of those, or remove the annotation to size the pod from its containers"
    )]
    PodSizeSpecsNotAFlavour {
        /// The annotation's value.
        value: String,
        /// Which flavours are near, e.g. `with 2 vCPU CCI offers 2 to 16 GiB in steps of 1 GiB`.
        hint: String,
    },

    /// `resource.cci.io/pod-size-specs` pins a flavour smaller than the containers need.
    #[error(
        "annotation resource.cci.io/pod-size-specs {value:?} ({flavour}) is smaller than the \
         containers need ({need}); pin a flavour at least that large{}",
        match suggestion {
            Some(f) => format!(" such as \"{}\"", f.spec()),
            None => String::new(),
        }
    )]
    PodSizeSpecsTooSmall {
        /// The annotation's value.
        value: String,
        /// The flavour it names.
        flavour: Flavour,
        /// What the containers need.
        need: PodResources,
        /// The flavour that automatic rounding would choose, if any.
        suggestion: Option<Flavour>,
    },

    /// The hostPath replacement annotation is not a JSON list.
    #[error(
        "annotation coordinator.cci.io/hostpath-replacement, value {text}: not a JSON list of \
         policies ({source}); write it as [{{\"name\":\"<volume or *>\",\"policyType\":\"remove\"}}]"
    )]
    HostPathJson {
        /// The annotation's value, quoted as written.
        text: String,
        /// The JSON parser's complaint.
        #[source]
        source: serde_json::Error,
    },

    /// An entry of the hostPath replacement annotation has the wrong shape.
    #[error("annotation coordinator.cci.io/hostpath-replacement, entry {entry}: {reason}")]
    HostPathEntry {
        /// The entry, quoted as written.
        entry: String,
        /// What is wrong with it.
        reason: String,
    },

    /// An entry names no volume.
    #[error(
        "annotation coordinator.cci.io/hostpath-replacement, entry {entry}: \"name\" is missing \
         or empty; name a hostPath volume of the pod, or \"*\" for all of them"
    )]
    HostPathMissingName {
        /// The entry, quoted as written.
        entry: String,
    },

    /// An entry's `policyType` is not one the add-on knows.
    #[error(
        "annotation coordinator.cci.io/hostpath-replacement, entry {entry}: unknown policyType \
         {policy_type:?}; use \"remove\" or \"replaceByEmptyDir\""
    )]
    HostPathUnknownPolicyType {
        /// The entry, quoted as written.
        entry: String,
        /// The policy type as written.
        policy_type: String,
    },

    /// An entry asks for a replacement CCI does not offer (LocalDir, flexVolume).
    #[error(
        "annotation coordinator.cci.io/hostpath-replacement, entry {entry}: policyType \
         {policy_type:?} is not supported, because CCI offers no LocalDir or flexVolume volumes; \
         use \"remove\" or \"replaceByEmptyDir\""
    )]
    HostPathUnsupportedPolicyType {
        /// The entry, quoted as written.
        entry: String,
        /// The policy type as written.
        policy_type: String,
    },

    /// A `replaceByEmptyDir` entry without `emptyDir.sizeLimit`.
    #[error(
        "annotation coordinator.cci.io/hostpath-replacement, entry {entry}: replaceByEmptyDir \
         needs \"emptyDir\": {{\"sizeLimit\": \"<n>Gi\"}} with a whole number of Gi, e.g. \"10Gi\""
    )]
    HostPathMissingSizeLimit {
        /// The entry, quoted as written.
        entry: String,
    },

    /// A `replaceByEmptyDir` entry whose sizeLimit is not a whole, positive number of Gi.
    #[error(
        "annotation coordinator.cci.io/hostpath-replacement, entry {entry}: sizeLimit {value} \
         {reason}; CCI needs an emptyDir sizeLimit that is a whole number of Gi, e.g. \"10Gi\""
    )]
    HostPathBadSizeLimit {
        /// The entry, quoted as written.
        entry: String,
        /// The sizeLimit as written (JSON).
        value: String,
        /// What is wrong with it.
        reason: String,
    },

    /// Two entries name the same volume (or both are `*`).
    #[error(
        "annotation coordinator.cci.io/hostpath-replacement, entry {entry}: volume {name:?} \
         already has a policy in an earlier entry; keep one entry per name"
    )]
    HostPathDuplicateName {
        /// The later entry, quoted as written.
        entry: String,
        /// The name both entries use.
        name: String,
    },

    /// An entry names a volume the pod does not have, or one that is no hostPath.
    #[error(
        "annotation coordinator.cci.io/hostpath-replacement, entry {entry}: {problem}; the pod's \
         hostPath volumes are {}",
        if hostpaths.is_empty() { "none".to_string() } else { format!("{hostpaths:?}") }
    )]
    HostPathNoSuchVolume {
        /// The entry, quoted as written.
        entry: String,
        /// `no volume is named "x"` or `volume "x" is a configMap volume, not a hostPath`.
        problem: String,
        /// The names of the pod's hostPath volumes.
        hostpaths: Vec<String>,
    },

    /// A burst policy label with a value the add-on does not know.
    #[error(
        "{object}: label {label}={value:?} is not a burst policy; use enforce, auto, \
         localPrefer or off (the values are case-sensitive)"
    )]
    UnknownPolicy {
        /// The object carrying the label, e.g. `Deployment default/web`.
        object: String,
        /// The label key.
        label: String,
        /// The value as written.
        value: String,
    },
}
