//! The `coordinator.cci.io/hostpath-replacement` annotation (`BEHAVIOR.md` §6).
//!
//! CCI is a shared cluster and offers no hostPath volumes. A pod (template) that cannot change
//! its `spec.volumes` says, in this annotation, what to do with each hostPath on CCI:
//!
//! ```text
//! [{"name": "<volume name or *>", "policyType": "remove" | "replaceByEmptyDir",
//!   "emptyDir": {"sizeLimit": "10Gi"}}]
//! ```
//!
//! - `remove` drops the volume and every mount of it (in containers, init containers and
//!   ephemeral containers); `replaceByEmptyDir` turns it into an emptyDir of that sizeLimit,
//!   keeping its mounts.
//! - `"*"` applies to every hostPath volume **except** one whose path is `/etc/localtime`
//!   (trailing slashes ignored), which only a policy naming that volume touches. \[seed\]
//! - A named policy wins over `*` for its volume. \[design\]
//!
//! Parsing ([`Replacement::parse`]) refuses malformed JSON, an entry that is not an object,
//! a missing name, an unknown `policyType` (with a specific message for `replaceByLocalDir`
//! and `replaceByFlexVolume`: CCI offers neither), a `replaceByEmptyDir` without a sizeLimit
//! or with one that is not a whole, positive number of Gi (`10Gi`, `1024Mi`; not `1536Mi`,
//! `1G` or `0`), and two entries for the same name. Like the add-on's Go decoder it ignores
//! fields it does not know, and an `emptyDir` on a `remove` entry. Checking against a pod
//! ([`Replacement::check`]) refuses a name that is no hostPath volume of the pod. Every error
//! quotes the offending entry as written.
//!
//! The sizeLimit is also subject to the emptyDir rules of [`crate::volumes`] (at most 10 × the
//! pod's cores), which are checked on the spec after replacement.
//!
//! ```
//! use burst_rules::hostpath::Replacement;
//!
//! let r = Replacement::parse(r#"[{"name":"*","policyType":"remove"}]"#).unwrap();
//! assert_eq!(r.policies().len(), 1);
//! let err = Replacement::parse(r#"[{"name":"logs","policyType":"replaceByLocalDir"}]"#)
//!     .unwrap_err()
//!     .to_string();
//! assert!(err.contains(r#"entry {"name":"logs","policyType":"replaceByLocalDir"}"#));
//! ```
//!
//! # Where it is applied
//!
//! The webhook applies it to `enforce` pods at admission (so the cluster pod shows what runs);
//! the engine applies it when translating any other pod. [`Replacement::is_pending`] tells the
//! engine whether the spec still holds a hostPath the annotation covers, so that a pod the
//! webhook already rewrote is not rewritten (and refused) twice.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use k8s_openapi::api::core::v1::{EmptyDirVolumeSource, Pod, PodSpec, Volume, VolumeMount};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity as K8sQuantity;
use serde_json::Value;
use serde_json::value::RawValue;

use crate::quantity::Quantity;
use crate::volumes::kind_of;
use crate::{Error, Result};

/// The pod annotation.
pub const ANNOTATION: &str = "coordinator.cci.io/hostpath-replacement";
/// The one hostPath path that `*` leaves alone (and that `>= 1.5.9` may take to CCI).
pub const ETC_LOCALTIME: &str = "/etc/localtime";
/// The name that stands for every hostPath volume.
pub const WILDCARD: &str = "*";

/// Which volumes a policy covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// `"*"`: every hostPath volume except `/etc/localtime`.
    All,
    /// The hostPath volume of this name.
    Volume(String),
}

/// What a policy does with a hostPath volume.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Drop the volume and its mounts.
    Remove,
    /// Make it an emptyDir of `size_gib` GiB.
    ReplaceByEmptyDir {
        /// The sizeLimit, in whole GiB (at least 1).
        size_gib: u64,
    },
}

/// One entry of the annotation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// The volumes it covers.
    pub target: Target,
    /// What it does.
    pub action: Action,
    /// The entry as written, for messages.
    pub entry: String,
}

/// The parsed annotation: its policies, in order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Replacement {
    policies: Vec<Policy>,
}

/// One volume the replacement changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// The volume's name.
    pub volume: String,
    /// Its hostPath path.
    pub path: String,
    /// What was done.
    pub action: Action,
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.action {
            Action::Remove => write!(
                f,
                "hostPath volume {:?} ({}) removed with its mounts",
                self.volume, self.path
            ),
            Action::ReplaceByEmptyDir { size_gib } => write!(
                f,
                "hostPath volume {:?} ({}) replaced by an emptyDir of {size_gib}Gi",
                self.volume, self.path
            ),
        }
    }
}

/// A pod spec after replacement, and what changed.
#[derive(Debug, Clone, PartialEq)]
pub struct Applied {
    /// The spec with the policies applied.
    pub spec: PodSpec,
    /// The volumes changed, in the order of `spec.volumes`.
    pub changes: Vec<Change>,
}

impl Replacement {
    /// Parses the annotation's value.
    pub fn parse(text: &str) -> Result<Self> {
        let entries: Vec<&RawValue> =
            serde_json::from_str(text).map_err(|source| Error::HostPathJson {
                text: text.to_string(),
                source,
            })?;
        let mut policies = Vec::with_capacity(entries.len());
        let mut seen = BTreeSet::new();
        for raw in entries {
            let policy = parse_entry(raw.get())?;
            let name = match &policy.target {
                Target::All => WILDCARD,
                Target::Volume(name) => name.as_str(),
            };
            if !seen.insert(name.to_string()) {
                return Err(Error::HostPathDuplicateName {
                    entry: policy.entry,
                    name: name.to_string(),
                });
            }
            policies.push(policy);
        }
        Ok(Self { policies })
    }

    /// The annotation of `pod`, parsed; `None` when the pod has none.
    pub fn of_pod(pod: &Pod) -> Result<Option<Self>> {
        Self::from_annotations(pod.metadata.annotations.as_ref())
    }

    /// The annotation in `annotations`, parsed; `None` when absent.
    pub fn from_annotations(
        annotations: Option<&BTreeMap<String, String>>,
    ) -> Result<Option<Self>> {
        annotations
            .and_then(|a| a.get(ANNOTATION))
            .map(|text| Self::parse(text))
            .transpose()
    }

    /// The policies, in the annotation's order.
    pub fn policies(&self) -> &[Policy] {
        &self.policies
    }

    /// The policy that applies to `volume`: its named policy, else `*` unless its path is
    /// `/etc/localtime`. `None` for a volume that is no hostPath.
    pub fn policy_for(&self, volume: &Volume) -> Option<&Policy> {
        let host_path = volume.host_path.as_ref()?;
        let named = self
            .policies
            .iter()
            .find(|p| p.target == Target::Volume(volume.name.clone()));
        named.or_else(|| {
            if is_etc_localtime(&host_path.path) {
                None
            } else {
                self.policies.iter().find(|p| p.target == Target::All)
            }
        })
    }

    /// Checks that every named policy names a hostPath volume of `spec`.
    pub fn check(&self, spec: &PodSpec) -> Result<()> {
        let volumes = spec.volumes.as_deref().unwrap_or_default();
        let hostpaths = || {
            volumes
                .iter()
                .filter(|v| v.host_path.is_some())
                .map(|v| v.name.clone())
                .collect::<Vec<_>>()
        };
        for policy in &self.policies {
            let Target::Volume(name) = &policy.target else {
                continue;
            };
            let problem = match volumes.iter().find(|v| &v.name == name) {
                None => format!("no volume of the pod is named {name:?}"),
                Some(v) if v.host_path.is_none() => {
                    format!("volume {name:?} is a {} volume, not a hostPath", kind_of(v))
                }
                Some(_) => continue,
            };
            return Err(Error::HostPathNoSuchVolume {
                entry: policy.entry.clone(),
                problem,
                hostpaths: hostpaths(),
            });
        }
        Ok(())
    }

    /// Whether `spec` still holds a hostPath volume that a policy covers.
    pub fn is_pending(&self, spec: &PodSpec) -> bool {
        spec.volumes
            .iter()
            .flatten()
            .any(|v| self.policy_for(v).is_some())
    }

    /// Checks the policies against `spec` and applies them.
    pub fn apply(&self, spec: &PodSpec) -> Result<Applied> {
        self.check(spec)?;
        let mut out = spec.clone();
        let mut changes = Vec::new();
        let mut removed = BTreeSet::new();
        if let Some(volumes) = out.volumes.take() {
            let mut kept = Vec::with_capacity(volumes.len());
            for volume in volumes {
                let (Some(policy), Some(host_path)) =
                    (self.policy_for(&volume), volume.host_path.as_ref())
                else {
                    kept.push(volume);
                    continue;
                };
                changes.push(Change {
                    volume: volume.name.clone(),
                    path: host_path.path.clone(),
                    action: policy.action,
                });
                match policy.action {
                    Action::Remove => {
                        removed.insert(volume.name);
                    }
                    Action::ReplaceByEmptyDir { size_gib } => kept.push(Volume {
                        name: volume.name,
                        empty_dir: Some(EmptyDirVolumeSource {
                            medium: None,
                            size_limit: Some(K8sQuantity(format!("{size_gib}Gi"))),
                        }),
                        ..Volume::default()
                    }),
                }
            }
            out.volumes = (!kept.is_empty()).then_some(kept);
        }
        if !removed.is_empty() {
            let strip = |mounts: &mut Option<Vec<VolumeMount>>| {
                if let Some(list) = mounts {
                    list.retain(|m| !removed.contains(&m.name));
                    if list.is_empty() {
                        *mounts = None;
                    }
                }
            };
            for c in out
                .containers
                .iter_mut()
                .chain(out.init_containers.iter_mut().flatten())
            {
                strip(&mut c.volume_mounts);
            }
            for c in out.ephemeral_containers.iter_mut().flatten() {
                strip(&mut c.volume_mounts);
            }
        }
        Ok(Applied { spec: out, changes })
    }
}

/// Whether a hostPath path is `/etc/localtime` (trailing slashes ignored).
pub fn is_etc_localtime(path: &str) -> bool {
    path.trim_end_matches('/') == ETC_LOCALTIME
}

fn parse_entry(entry: &str) -> Result<Policy> {
    let shape = |reason: &str| Error::HostPathEntry {
        entry: entry.to_string(),
        reason: reason.to_string(),
    };
    let value: Value = serde_json::from_str(entry).map_err(|_| shape("is not valid JSON"))?;
    let Value::Object(fields) = value else {
        return Err(shape(
            "is not an object such as {\"name\":\"<volume>\",\"policyType\":\"remove\"}",
        ));
    };
    let string = |key: &str| -> Result<Option<&str>> {
        match fields.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.as_str())),
            Some(_) => Err(shape(&format!("{key:?} must be a string"))),
        }
    };
    let name = match string("name")? {
        None | Some("") => {
            return Err(Error::HostPathMissingName {
                entry: entry.to_string(),
            });
        }
        Some(name) => name,
    };
    let target = if name == WILDCARD {
        Target::All
    } else {
        Target::Volume(name.to_string())
    };
    let action = match string("policyType")? {
        Some("remove") => Action::Remove,
        Some("replaceByEmptyDir") => Action::ReplaceByEmptyDir {
            size_gib: size_limit(entry, &fields)?,
        },
        Some(t @ ("replaceByLocalDir" | "replaceByFlexVolume")) => {
            return Err(Error::HostPathUnsupportedPolicyType {
                entry: entry.to_string(),
                policy_type: t.to_string(),
            });
        }
        other => {
            return Err(Error::HostPathUnknownPolicyType {
                entry: entry.to_string(),
                policy_type: other.unwrap_or_default().to_string(),
            });
        }
    };
    Ok(Policy {
        target,
        action,
        entry: entry.to_string(),
    })
}

/// The whole GiB of a `replaceByEmptyDir` entry's `emptyDir.sizeLimit`.
fn size_limit(entry: &str, fields: &serde_json::Map<String, Value>) -> Result<u64> {
    let missing = || Error::HostPathMissingSizeLimit {
        entry: entry.to_string(),
    };
    let limit = match fields.get("emptyDir") {
        None | Some(Value::Null) => return Err(missing()),
        Some(Value::Object(empty_dir)) => empty_dir.get("sizeLimit"),
        Some(_) => {
            return Err(Error::HostPathEntry {
                entry: entry.to_string(),
                reason: "\"emptyDir\" must be an object such as {\"sizeLimit\":\"10Gi\"}".into(),
            });
        }
    };
    let bad = |value: &Value, reason: String| Error::HostPathBadSizeLimit {
        entry: entry.to_string(),
        value: value.to_string(),
        reason,
    };
    // Like Kubernetes' Quantity decoder, take a JSON number as the quantity it spells.
    let text = match limit {
        None | Some(Value::Null) => return Err(missing()),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        Some(other) => return Err(bad(other, "is not a quantity".into())),
    };
    let value = limit.expect("matched above");
    let quantity = Quantity::parse(&text).map_err(|e| match e {
        Error::Quantity { reason, .. } => bad(value, reason),
        other => other,
    })?;
    match quantity.whole_gib() {
        Some(0) => Err(bad(value, "is zero".into())),
        Some(gib) => Ok(gib),
        None => Err(bad(value, "is not a whole number of Gi".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{ConfigMapVolumeSource, Container, HostPathVolumeSource};
    use rstest::rstest;

    fn host_path(name: &str, path: &str) -> Volume {
        Volume {
            name: name.into(),
            host_path: Some(HostPathVolumeSource {
                path: path.into(),
                type_: Some(String::new()),
            }),
            ..Volume::default()
        }
    }

    fn mount(name: &str, path: &str) -> VolumeMount {
        VolumeMount {
            name: name.into(),
            mount_path: path.into(),
            ..VolumeMount::default()
        }
    }

    /// A pod spec with hostPath volumes `logs` (/var/log), `data` (/data) and `tz`
    /// (/etc/localtime), a configMap `conf`, and one container mounting them all.
    fn spec() -> PodSpec {
        PodSpec {
            containers: vec![Container {
                name: "app".into(),
                volume_mounts: Some(vec![
                    mount("logs", "/logs"),
                    mount("data", "/data"),
                    mount("tz", "/etc/localtime"),
                    mount("conf", "/conf"),
                ]),
                ..Container::default()
            }],
            init_containers: Some(vec![Container {
                name: "init".into(),
                volume_mounts: Some(vec![mount("logs", "/logs")]),
                ..Container::default()
            }]),
            volumes: Some(vec![
                host_path("logs", "/var/log"),
                host_path("data", "/data"),
                host_path("tz", "/etc/localtime"),
                Volume {
                    name: "conf".into(),
                    config_map: Some(ConfigMapVolumeSource {
                        name: "conf".into(),
                        ..Default::default()
                    }),
                    ..Volume::default()
                },
            ]),
            ..PodSpec::default()
        }
    }

    fn volumes(spec: &PodSpec) -> Vec<(String, &'static str)> {
        spec.volumes
            .iter()
            .flatten()
            .map(|v| (v.name.clone(), kind_of(v)))
            .collect()
    }

    fn mounts(c: &Container) -> Vec<&str> {
        c.volume_mounts
            .iter()
            .flatten()
            .map(|m| m.name.as_str())
            .collect()
    }

    #[rstest]
    #[case::single_replace(
        r#"[{"name":"source-hostpath-volume-3","policyType":"replaceByEmptyDir","emptyDir":{"sizeLimit":"10Gi"}}]"#,
        vec![(Target::Volume("source-hostpath-volume-3".into()), Action::ReplaceByEmptyDir { size_gib: 10 })])]
    #[case::single_remove(
        r#"[{"name":"source-hostpath-volume-1","policyType":"remove"}]"#,
        vec![(Target::Volume("source-hostpath-volume-1".into()), Action::Remove)])]
    #[case::all_removed(r#"[{"name":"*","policyType":"remove"}]"#, vec![(Target::All, Action::Remove)])]
    #[case::mixed(
        r#"[{"name":"source-hostpath-volume-1","policyType":"remove"},{"name":"source-hostpath-volume-3","policyType":"replaceByEmptyDir","emptyDir":{"sizeLimit":"10Gi"}}]"#,
        vec![
            (Target::Volume("source-hostpath-volume-1".into()), Action::Remove),
            (Target::Volume("source-hostpath-volume-3".into()), Action::ReplaceByEmptyDir { size_gib: 10 }),
        ])]
    #[case::empty_list("[]", vec![])]
    #[case::mebibytes_of_whole_gib(
        r#"[{"name":"x","policyType":"replaceByEmptyDir","emptyDir":{"sizeLimit":"2048Mi"}}]"#,
        vec![(Target::Volume("x".into()), Action::ReplaceByEmptyDir { size_gib: 2 })])]
    #[case::number_of_bytes(
        r#"[{"name":"x","policyType":"replaceByEmptyDir","emptyDir":{"sizeLimit":1073741824}}]"#,
        vec![(Target::Volume("x".into()), Action::ReplaceByEmptyDir { size_gib: 1 })])]
    #[case::unknown_fields_ignored(
        r#"[{"name":"x","policyType":"remove","comment":"logs","emptyDir":{"sizeLimit":"1Gi"}}]"#,
        vec![(Target::Volume("x".into()), Action::Remove)])]
    fn the_seeds_annotation_forms_parse(
        #[case] text: &str,
        #[case] expected: Vec<(Target, Action)>,
    ) {
        let r = Replacement::parse(text).unwrap();
        let got: Vec<(Target, Action)> = r
            .policies()
            .iter()
            .map(|p| (p.target.clone(), p.action))
            .collect();
        assert_eq!(got, expected);
    }

    #[rstest]
    #[case::not_json("[{name: x}]", "value [{name: x}]: not a JSON list")]
    #[case::not_a_list(
        r#"{"name":"x","policyType":"remove"}"#,
        r#"value {"name":"x","policyType":"remove"}: not a JSON list"#
    )]
    #[case::truncated(
        r#"[{"name":"x","policyType":"remove"}"#,
        r#"value [{"name":"x","policyType":"remove"}: not a JSON list"#
    )]
    #[case::empty_text("", "value : not a JSON list")]
    #[case::entry_not_object(r#"["x"]"#, "entry \"x\": is not an object")]
    #[case::missing_name(
        r#"[{"policyType":"remove"}]"#,
        r#"entry {"policyType":"remove"}: "name" is missing"#
    )]
    #[case::empty_name(
        r#"[{"name":"","policyType":"remove"}]"#,
        "\"name\" is missing or empty"
    )]
    #[case::name_not_string(r#"[{"name":3,"policyType":"remove"}]"#, "\"name\" must be a string")]
    #[case::missing_policy_type(
        r#"[{"name":"x"}]"#,
        r#"entry {"name":"x"}: unknown policyType """#
    )]
    #[case::unknown_policy_type(
        r#"[{"name":"x","policyType":"delete"}]"#,
        r#"entry {"name":"x","policyType":"delete"}: unknown policyType "delete"; use "remove" or "replaceByEmptyDir""#)]
    #[case::wrong_case(
        r#"[{"name":"x","policyType":"Remove"}]"#,
        "unknown policyType \"Remove\""
    )]
    #[case::local_dir(
        r#"[{"name":"x","policyType":"replaceByLocalDir"}]"#,
        r#"policyType "replaceByLocalDir" is not supported, because CCI offers no LocalDir or flexVolume volumes"#)]
    #[case::flex_volume(
        r#"[{"name":"x","policyType":"replaceByFlexVolume"}]"#,
        "policyType \"replaceByFlexVolume\" is not supported"
    )]
    #[case::missing_empty_dir(
        r#"[{"name":"x","policyType":"replaceByEmptyDir"}]"#,
        "replaceByEmptyDir needs \"emptyDir\""
    )]
    #[case::missing_size_limit(
        r#"[{"name":"x","policyType":"replaceByEmptyDir","emptyDir":{}}]"#,
        "replaceByEmptyDir needs"
    )]
    #[case::empty_dir_not_object(
        r#"[{"name":"x","policyType":"replaceByEmptyDir","emptyDir":"10Gi"}]"#,
        "\"emptyDir\" must be an object"
    )]
    #[case::fractional_gib(
        r#"[{"name":"x","policyType":"replaceByEmptyDir","emptyDir":{"sizeLimit":"1536Mi"}}]"#,
        r#"sizeLimit "1536Mi" is not a whole number of Gi"#
    )]
    #[case::decimal_giga(
        r#"[{"name":"x","policyType":"replaceByEmptyDir","emptyDir":{"sizeLimit":"10G"}}]"#,
        "\"10G\" is not a whole number of Gi"
    )]
    #[case::zero(
        r#"[{"name":"x","policyType":"replaceByEmptyDir","emptyDir":{"sizeLimit":"0Gi"}}]"#,
        "\"0Gi\" is zero"
    )]
    #[case::not_a_quantity(
        r#"[{"name":"x","policyType":"replaceByEmptyDir","emptyDir":{"sizeLimit":"ten"}}]"#,
        "\"ten\" is not a Kubernetes quantity"
    )]
    #[case::bool_limit(
        r#"[{"name":"x","policyType":"replaceByEmptyDir","emptyDir":{"sizeLimit":true}}]"#,
        "sizeLimit true is not a quantity"
    )]
    #[case::duplicate_name(
        r#"[{"name":"x","policyType":"remove"},{"name":"x","policyType":"replaceByEmptyDir","emptyDir":{"sizeLimit":"1Gi"}}]"#,
        r#"entry {"name":"x","policyType":"replaceByEmptyDir","emptyDir":{"sizeLimit":"1Gi"}}: volume "x" already has a policy"#)]
    #[case::duplicate_wildcard(
        r#"[{"name":"*","policyType":"remove"}, {"name":"*","policyType":"remove"}]"#,
        "volume \"*\" already has a policy"
    )]
    fn malformed_annotations_are_refused_quoting_the_entry(
        #[case] text: &str,
        #[case] expected: &str,
    ) {
        let err = Replacement::parse(text).unwrap_err().to_string();
        assert!(
            err.starts_with("annotation coordinator.cci.io/hostpath-replacement"),
            "{err}"
        );
        assert!(err.contains(expected), "{err}");
    }

    #[test]
    fn an_entry_is_quoted_exactly_as_written() {
        let text = r#"[ {"name": "logs",  "policyType": "bogus"} ]"#;
        let err = Replacement::parse(text).unwrap_err().to_string();
        assert!(
            err.contains(r#"entry {"name": "logs",  "policyType": "bogus"}:"#),
            "{err}"
        );
    }

    #[test]
    fn a_named_replace_keeps_the_mounts_and_becomes_an_empty_dir() {
        let r = Replacement::parse(
            r#"[{"name":"logs","policyType":"replaceByEmptyDir","emptyDir":{"sizeLimit":"10Gi"}}]"#,
        )
        .unwrap();
        let applied = r.apply(&spec()).unwrap();
        let logs = &applied.spec.volumes.as_ref().unwrap()[0];
        assert_eq!(logs.name, "logs");
        assert_eq!(logs.host_path, None);
        let size = logs
            .empty_dir
            .as_ref()
            .unwrap()
            .size_limit
            .as_ref()
            .unwrap();
        assert_eq!(size.0, "10Gi");
        assert_eq!(
            mounts(&applied.spec.containers[0]),
            ["logs", "data", "tz", "conf"]
        );
        assert_eq!(applied.changes.len(), 1);
        assert_eq!(
            applied.changes[0].to_string(),
            "hostPath volume \"logs\" (/var/log) replaced by an emptyDir of 10Gi"
        );
    }

    #[test]
    fn a_named_remove_drops_the_volume_and_every_mount_of_it() {
        let r = Replacement::parse(r#"[{"name":"logs","policyType":"remove"}]"#).unwrap();
        let applied = r.apply(&spec()).unwrap();
        assert_eq!(
            volumes(&applied.spec),
            [
                ("data".into(), "hostPath"),
                ("tz".into(), "hostPath"),
                ("conf".into(), "configMap")
            ]
        );
        assert_eq!(mounts(&applied.spec.containers[0]), ["data", "tz", "conf"]);
        // The init container mounted only `logs`: its list is gone, not left empty.
        assert_eq!(
            applied.spec.init_containers.as_ref().unwrap()[0].volume_mounts,
            None
        );
    }

    #[test]
    fn the_wildcard_covers_every_hostpath_but_etc_localtime() {
        let r = Replacement::parse(r#"[{"name":"*","policyType":"remove"}]"#).unwrap();
        let applied = r.apply(&spec()).unwrap();
        assert_eq!(
            volumes(&applied.spec),
            [("tz".into(), "hostPath"), ("conf".into(), "configMap")]
        );
        assert_eq!(mounts(&applied.spec.containers[0]), ["tz", "conf"]);
    }

    #[test]
    fn a_policy_naming_etc_localtime_replaces_it() {
        let r = Replacement::parse(
            r#"[{"name":"*","policyType":"remove"},{"name":"tz","policyType":"replaceByEmptyDir","emptyDir":{"sizeLimit":"1Gi"}}]"#,
        )
        .unwrap();
        let applied = r.apply(&spec()).unwrap();
        assert_eq!(
            volumes(&applied.spec),
            [("tz".into(), "emptyDir"), ("conf".into(), "configMap")]
        );
    }

    #[test]
    fn a_named_policy_wins_over_the_wildcard_whatever_the_order() {
        for text in [
            r#"[{"name":"*","policyType":"remove"},{"name":"data","policyType":"replaceByEmptyDir","emptyDir":{"sizeLimit":"5Gi"}}]"#,
            r#"[{"name":"data","policyType":"replaceByEmptyDir","emptyDir":{"sizeLimit":"5Gi"}},{"name":"*","policyType":"remove"}]"#,
        ] {
            let applied = Replacement::parse(text).unwrap().apply(&spec()).unwrap();
            assert_eq!(
                volumes(&applied.spec),
                [
                    ("data".into(), "emptyDir"),
                    ("tz".into(), "hostPath"),
                    ("conf".into(), "configMap")
                ],
                "{text}"
            );
        }
    }

    #[test]
    fn etc_localtime_with_a_trailing_slash_is_still_left_alone() {
        assert!(is_etc_localtime("/etc/localtime/"));
        assert!(!is_etc_localtime("/etc/localtime2"));
        assert!(!is_etc_localtime("/etc"));
    }

    #[rstest]
    #[case::no_such_volume(
        r#"[{"name":"nope","policyType":"remove"}]"#,
        "no volume of the pod is named \"nope\""
    )]
    #[case::not_a_hostpath(
        r#"[{"name":"conf","policyType":"remove"}]"#,
        "volume \"conf\" is a configMap volume, not a hostPath"
    )]
    fn a_name_that_is_no_hostpath_of_the_pod_is_refused_listing_the_hostpaths(
        #[case] text: &str,
        #[case] problem: &str,
    ) {
        let err = Replacement::parse(text)
            .unwrap()
            .apply(&spec())
            .unwrap_err()
            .to_string();
        assert!(err.contains(problem), "{err}");
        assert!(
            err.contains(text.trim_start_matches('[').trim_end_matches(']')),
            "{err}"
        );
        assert!(
            err.contains(r#"the pod's hostPath volumes are ["logs", "data", "tz"]"#),
            "{err}"
        );
    }

    #[test]
    fn a_wildcard_on_a_pod_without_hostpaths_changes_nothing() {
        let spec = PodSpec::default();
        let r = Replacement::parse(r#"[{"name":"*","policyType":"remove"}]"#).unwrap();
        let applied = r.apply(&spec).unwrap();
        assert_eq!(applied.spec, spec);
        assert!(applied.changes.is_empty());
        assert!(!r.is_pending(&spec));
    }

    #[test]
    fn an_applied_spec_is_no_longer_pending() {
        let r = Replacement::parse(
            r#"[{"name":"*","policyType":"remove"},{"name":"tz","policyType":"remove"}]"#,
        )
        .unwrap();
        let before = spec();
        assert!(r.is_pending(&before));
        let after = r.apply(&before).unwrap().spec;
        assert!(!r.is_pending(&after));
        assert_eq!(volumes(&after), [("conf".into(), "configMap")]);
    }

    #[test]
    fn the_annotation_is_read_from_the_pod() {
        let mut pod = Pod::default();
        assert_eq!(Replacement::of_pod(&pod).unwrap(), None);
        pod.metadata.annotations = Some(BTreeMap::from([(
            ANNOTATION.to_string(),
            r#"[{"name":"*","policyType":"remove"}]"#.to_string(),
        )]));
        assert_eq!(
            Replacement::of_pod(&pod).unwrap().unwrap().policies().len(),
            1
        );
    }
}
