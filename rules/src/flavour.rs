//! CCI flavours: the table, how big a pod is, and rounding it up to a flavour.
//!
//! # The table (`BEHAVIOR.md` §4)
//!
//! | vCPU | memory GiB |
//! |---|---|
//! | 0.25 | 0.5, 1, 2 |
//! | 0.5 | 0.5, 1, 2, 3, 4 |
//! | 1 | 1–8, step 1 |
//! | 2 | 2–16, step 1 |
//! | 4 | 4–32, step 1 |
//! | 8 | 8–64, step 4 |
//! | 16 | 16–128, step 8 |
//! | 32 | 32, 64, 128, 256 |
//! | 48 | 96, 192, 384 |
//! | 64 | 128, 256, 512 |
//!
//! # How big a pod is ([`pod_resources`])
//!
//! §4 and the CCI manual say: pod size = max(sum of container requests, each container limit,
//! largest init container), for cpu and for memory separately. Read literally, and completed
//! where the manual is silent:
//!
//! - A container's **request** for a resource is its `requests` entry, or its `limits` entry
//!   when it has no request (Kubernetes defaults a missing request to the limit). Requests of
//!   the app containers are **summed**.
//! - Each container's **limit** is compared on its own (not summed): a pod with two containers
//!   of request 0.5 / limit 1 vCPU needs max(0.5 + 0.5, 1, 1) = 1 vCPU. CCI then makes every
//!   container's limit equal to its request within that size.
//! - An **init container** counts with the larger of its request and limit; the largest one
//!   wins, per resource (the cpu of one and the memory of another may combine).
//! - A **sidecar** (an init container with `restartPolicy: Always`) runs beside the app
//!   containers, so, as Kubernetes does, its request joins the app containers' sum, its limit
//!   joins "each container limit", and an init container started after it needs its own
//!   resources plus the sidecars already running. Without sidecars this is exactly the
//!   manual's formula.
//! - Pod-level `spec.resources` (Kubernetes >= 1.34), when set, is one more term of the max
//!   (the larger of its request and limit): a valid pod's pod-level values already cover its
//!   containers, so this only ever makes the pod the size it asked for.
//! - A pod where no container (nor the pod) names cpu or memory at all has no size
//!   ([`Error::NoResources`] unless `resource.cci.io/pod-size-specs` pins one). One of the two
//!   resources is enough; the other then counts as zero and the smallest flavour that fits
//!   the named one is chosen.
//!
//! # Rounding up ([`Flavour::round_up`])
//!
//! "Nearest" flavour: the **smallest vCPU** that has a flavour fitting both needs, then **the
//! smallest memory** of that vCPU that fits. That is the first fitting flavour in the table's
//! order, which is also the cheapest in vCPU (CCI bills vCPU at a higher rate than memory).
//! The manual's own example holds: 6 vCPU / 15 GiB becomes 8 vCPU / 16 GiB.
//!
//! # Annotations
//!
//! - `resource.cci.io/pod-size-specs: "{vCPU}_{GiB}"` pins a flavour (the manual's example is
//!   `"2.00_4.0"`): plain decimals, no units. It must be a flavour and at least what the
//!   containers need.
//! - Written on the cluster pod, in the provider manual's example format:
//!   `virtual-kubelet.cci.io/burst-pod-cpu: "0.5u"` (vCPU with the suffix `u` for "unit";
//!   not the Kubernetes micro suffix) and `virtual-kubelet.cci.io/burst-pod-memory: "1Gi"`
//!   (GiB, with a decimal for the half-GiB flavours: `"0.5Gi"`).
//! - Written on the CCI pod: `resource.cci.io/size: "{vCPU}_{GiB}"` in the shortest decimals
//!   (`"0.25_0.5"`, `"2_4"`), which [`parse_pod_size_specs`] reads back.

use std::collections::BTreeMap;
use std::fmt;

use k8s_openapi::api::core::v1::{Container, Pod, PodSpec, ResourceRequirements};

use crate::quantity::{MIB, Quantity, format_cores, format_cpu, format_gib, format_memory};
use crate::{Error, Result};

/// Pod annotation that pins the pod's flavour: `"{vCPU}_{GiB}"`.
pub const ANNOTATION_POD_SIZE_SPECS: &str = "resource.cci.io/pod-size-specs";
/// Cluster pod annotation: the flavour's vCPU (`"0.5u"`).
pub const ANNOTATION_BURST_POD_CPU: &str = "virtual-kubelet.cci.io/burst-pod-cpu";
/// Cluster pod annotation: the flavour's memory (`"1Gi"`).
pub const ANNOTATION_BURST_POD_MEMORY: &str = "virtual-kubelet.cci.io/burst-pod-memory";
/// CCI pod annotation: the flavour (`"0.5_1"`).
pub const ANNOTATION_SIZE: &str = "resource.cci.io/size";

const G: u32 = 1024;

/// The memories of one vCPU row, in MiB.
enum Memories {
    /// These values.
    List(&'static [u32]),
    /// `from..=to` in steps of `step`.
    Range { from: u32, to: u32, step: u32 },
}

impl Memories {
    fn iter(&self) -> impl Iterator<Item = u32> + '_ {
        let (list, range): (&[u32], _) = match *self {
            Memories::List(list) => (list, None),
            Memories::Range { from, to, step } => (&[], Some((from..=to).step_by(step as usize))),
        };
        list.iter().copied().chain(range.into_iter().flatten())
    }

    fn describe(&self) -> String {
        match *self {
            Memories::List(list) => {
                let gib: Vec<String> = list
                    .iter()
                    .map(|m| format_gib(u64::from(*m) * MIB))
                    .collect();
                format!("{} GiB", gib.join(", "))
            }
            Memories::Range { from, to, step } => format!(
                "{} to {} GiB in steps of {} GiB",
                from / G,
                to / G,
                step / G
            ),
        }
    }
}

/// The flavour table: vCPU in millicores, memories in MiB, both ascending.
const TABLE: [(u32, Memories); 10] = [
    (250, Memories::List(&[G / 2, G, 2 * G])),
    (500, Memories::List(&[G / 2, G, 2 * G, 3 * G, 4 * G])),
    (
        1000,
        Memories::Range {
            from: G,
            to: 8 * G,
            step: G,
        },
    ),
    (
        2000,
        Memories::Range {
            from: 2 * G,
            to: 16 * G,
            step: G,
        },
    ),
    (
        4000,
        Memories::Range {
            from: 4 * G,
            to: 32 * G,
            step: G,
        },
    ),
    (
        8000,
        Memories::Range {
            from: 8 * G,
            to: 64 * G,
            step: 4 * G,
        },
    ),
    (
        16000,
        Memories::Range {
            from: 16 * G,
            to: 128 * G,
            step: 8 * G,
        },
    ),
    (32000, Memories::List(&[32 * G, 64 * G, 128 * G, 256 * G])),
    (48000, Memories::List(&[96 * G, 192 * G, 384 * G])),
    (64000, Memories::List(&[128 * G, 256 * G, 512 * G])),
];

/// What a pod needs: cpu in millicores, memory in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PodResources {
    /// CPU, millicores.
    pub millicores: u64,
    /// Memory, bytes.
    pub memory_bytes: u64,
}

impl fmt::Display for PodResources {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "cpu {} and memory {}",
            format_cpu(self.millicores),
            format_memory(self.memory_bytes)
        )
    }
}

/// One CCI flavour: a vCPU and memory pair from the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Flavour {
    millicores: u32,
    memory_mib: u32,
}

impl Flavour {
    /// The flavour of `millicores` and `memory_mib`, if the table has it.
    pub fn new(millicores: u64, memory_mib: u64) -> Option<Self> {
        Self::all().find(|f| {
            u64::from(f.millicores) == millicores && u64::from(f.memory_mib) == memory_mib
        })
    }

    /// Every flavour, by vCPU then memory, ascending.
    pub fn all() -> impl Iterator<Item = Flavour> {
        TABLE.iter().flat_map(|(millicores, memories)| {
            memories.iter().map(move |memory_mib| Flavour {
                millicores: *millicores,
                memory_mib,
            })
        })
    }

    /// The largest flavour (64 vCPU / 512 GiB).
    pub fn largest() -> Self {
        Self::all().last().expect("the table is not empty")
    }

    /// vCPU in millicores.
    pub fn millicores(self) -> u64 {
        u64::from(self.millicores)
    }

    /// Memory in MiB.
    pub fn memory_mib(self) -> u64 {
        u64::from(self.memory_mib)
    }

    /// Memory in bytes.
    pub fn memory_bytes(self) -> u64 {
        self.memory_mib() * MIB
    }

    /// vCPU counted as whole cores, rounding up: 0.25 and 0.5 vCPU count as 1 core. This is
    /// what "10 × the pod's CPU cores" means for an emptyDir sizeLimit (see [`crate::volumes`]).
    pub fn whole_cores(self) -> u64 {
        self.millicores().div_ceil(1000)
    }

    /// Whether the flavour holds `need`.
    pub fn fits(self, need: PodResources) -> bool {
        self.millicores() >= need.millicores && self.memory_bytes() >= need.memory_bytes
    }

    /// The nearest flavour that holds `need`: the smallest vCPU that has a fitting memory, then
    /// the smallest such memory. `None` when nothing is large enough.
    pub fn round_up(need: PodResources) -> Option<Self> {
        Self::all().find(|f| f.fits(need))
    }

    /// `"{vCPU}_{GiB}"` in the shortest decimals: `"0.25_0.5"`, `"2_4"`. The value of
    /// `resource.cci.io/size` and of `resource.cci.io/pod-size-specs`.
    pub fn spec(self) -> String {
        format!(
            "{}_{}",
            format_cores(self.millicores()),
            format_gib(self.memory_bytes())
        )
    }

    /// The value of `virtual-kubelet.cci.io/burst-pod-cpu`: `"0.25u"`, `"2u"`.
    pub fn burst_pod_cpu(self) -> String {
        format!("{}u", format_cores(self.millicores()))
    }

    /// The value of `virtual-kubelet.cci.io/burst-pod-memory`: `"0.5Gi"`, `"16Gi"`.
    pub fn burst_pod_memory(self) -> String {
        format!("{}Gi", format_gib(self.memory_bytes()))
    }

    /// The annotations the engine writes on the cluster pod for this flavour.
    pub fn cluster_pod_annotations(self) -> BTreeMap<String, String> {
        BTreeMap::from([
            (ANNOTATION_BURST_POD_CPU.to_string(), self.burst_pod_cpu()),
            (
                ANNOTATION_BURST_POD_MEMORY.to_string(),
                self.burst_pod_memory(),
            ),
        ])
    }

    /// The annotations the engine writes on the CCI pod for this flavour.
    pub fn cci_pod_annotations(self) -> BTreeMap<String, String> {
        BTreeMap::from([(ANNOTATION_SIZE.to_string(), self.spec())])
    }
}

impl fmt::Display for Flavour {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} vCPU / {} GiB",
            format_cores(self.millicores()),
            format_gib(self.memory_bytes())
        )
    }
}

/// Parses `resource.cci.io/pod-size-specs` (or `resource.cci.io/size`): `"{vCPU}_{GiB}"` in
/// plain decimals, which must name a flavour of the table.
pub fn parse_pod_size_specs(value: &str) -> Result<Flavour> {
    let syntax = |reason: String| Error::PodSizeSpecsSyntax {
        value: value.to_string(),
        reason,
    };
    let (cpu, memory) = value
        .split_once('_')
        .ok_or_else(|| syntax("there is no \"_\" between vCPU and memory".into()))?;
    let number = |what: &str, text: &str| -> Result<Quantity> {
        let plain = !text.is_empty()
            && text.bytes().all(|b| b.is_ascii_digit() || b == b'.')
            && text.bytes().any(|b| b.is_ascii_digit());
        if !plain {
            return Err(syntax(format!(
                "{what} {text:?} is not a plain decimal number"
            )));
        }
        Quantity::parse(text).map_err(|e| syntax(format!("{what} {text:?}: {e}")))
    };
    let cpu = number("vCPU", cpu)?;
    let memory = number("memory", memory)?;
    let millicores = cpu.exact_millis().and_then(|m| u64::try_from(m).ok());
    let memory_mib = memory
        .times(u128::from(G))
        .and_then(|m| m.exact_units())
        .and_then(|m| u64::try_from(m).ok());
    if let (Some(millicores), Some(memory_mib)) = (millicores, memory_mib)
        && let Some(flavour) = Flavour::new(millicores, memory_mib)
    {
        return Ok(flavour);
    }
    let hint = match millicores.and_then(|m| TABLE.iter().find(|(c, _)| u64::from(*c) == m)) {
        Some((c, memories)) => format!(
            "with {} vCPU CCI offers {}",
            format_cores(u64::from(*c)),
            memories.describe()
        ),
        None => "CCI offers 0.25, 0.5, 1, 2, 4, 8, 16, 32, 48 and 64 vCPU".to_string(),
    };
    Err(Error::PodSizeSpecsNotAFlavour {
        value: value.to_string(),
        hint,
    })
}

/// A pod's size: what it needs, and the flavour it gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sizing {
    /// What the containers need; `None` when none names cpu or memory.
    pub need: Option<PodResources>,
    /// The flavour the pod runs as.
    pub flavour: Flavour,
    /// Whether `resource.cci.io/pod-size-specs` chose it (else rounding did).
    pub pinned: bool,
}

/// Sizes a pod: its spec and its `resource.cci.io/pod-size-specs` annotation.
pub fn size_pod(pod: &Pod) -> Result<Sizing> {
    let specs = pod
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(ANNOTATION_POD_SIZE_SPECS))
        .map(String::as_str);
    let empty = PodSpec::default();
    size(pod.spec.as_ref().unwrap_or(&empty), specs)
}

/// Sizes a pod spec, with the value of `resource.cci.io/pod-size-specs` if the pod has one.
pub fn size(spec: &PodSpec, pod_size_specs: Option<&str>) -> Result<Sizing> {
    let need = pod_resources(spec)?;
    match (pod_size_specs, need) {
        (Some(value), need) => {
            let flavour = parse_pod_size_specs(value)?;
            if let Some(need) = need
                && !flavour.fits(need)
            {
                return Err(Error::PodSizeSpecsTooSmall {
                    value: value.to_string(),
                    flavour,
                    need,
                    suggestion: Flavour::round_up(need),
                });
            }
            Ok(Sizing {
                need,
                flavour,
                pinned: true,
            })
        }
        (None, None) => Err(Error::NoResources),
        (None, Some(need)) => Ok(Sizing {
            need: Some(need),
            flavour: Flavour::round_up(need).ok_or(Error::NoFlavour { need })?,
            pinned: false,
        }),
    }
}

/// One resource's terms of the pod size formula.
#[derive(Default)]
struct Terms {
    any: bool,
    requests: u64,
    limits: u64,
    init: u64,
    sidecar_requests: u64,
}

impl Terms {
    fn total(&self) -> u64 {
        self.requests.max(self.limits).max(self.init)
    }
}

/// A container's (request, limit) for one resource; the request defaults to the limit.
type Pair = (Option<u64>, Option<u64>);

/// What a pod needs by the §4 formula (see the module docs), or `None` when neither a container
/// nor the pod names cpu or memory.
pub fn pod_resources(spec: &PodSpec) -> Result<Option<PodResources>> {
    let mut cpu = Terms::default();
    let mut memory = Terms::default();
    let mut add = |owner: &str, resources: Option<&ResourceRequirements>, role: Role| {
        let (c, m) = pairs(owner, resources)?;
        for (terms, (request, limit)) in [(&mut cpu, c), (&mut memory, m)] {
            terms.any |= request.is_some() || limit.is_some();
            let request = request.or(limit).unwrap_or(0);
            let limit = limit.unwrap_or(0);
            match role {
                Role::App | Role::Sidecar => {
                    terms.requests = terms.requests.saturating_add(request);
                    terms.limits = terms.limits.max(limit);
                    if matches!(role, Role::Sidecar) {
                        terms.sidecar_requests = terms.sidecar_requests.saturating_add(request);
                    }
                }
                Role::Init => {
                    let own = request.max(limit).saturating_add(terms.sidecar_requests);
                    terms.init = terms.init.max(own);
                }
                Role::Pod => terms.init = terms.init.max(request.max(limit)),
            }
        }
        Ok::<(), Error>(())
    };
    for c in spec.init_containers.iter().flatten() {
        let sidecar = c.restart_policy.as_deref() == Some("Always");
        let role = if sidecar { Role::Sidecar } else { Role::Init };
        add(&owner("init container", c), c.resources.as_ref(), role)?;
    }
    for c in &spec.containers {
        add(&owner("container", c), c.resources.as_ref(), Role::App)?;
    }
    add("pod", spec.resources.as_ref(), Role::Pod)?;
    Ok((cpu.any || memory.any).then(|| PodResources {
        millicores: cpu.total(),
        memory_bytes: memory.total(),
    }))
}

#[derive(Clone, Copy)]
enum Role {
    App,
    Init,
    Sidecar,
    Pod,
}

fn owner(kind: &str, c: &Container) -> String {
    format!("{kind} {:?}", c.name)
}

/// The (request, limit) pairs of cpu (millicores) and memory (bytes).
fn pairs(owner: &str, resources: Option<&ResourceRequirements>) -> Result<(Pair, Pair)> {
    let Some(r) = resources else {
        return Ok(((None, None), (None, None)));
    };
    let field = |kind: &str, name: &str| -> Result<Option<u64>> {
        let map = if kind == "requests" {
            &r.requests
        } else {
            &r.limits
        };
        let Some(q) = map.as_ref().and_then(|m| m.get(name)) else {
            return Ok(None);
        };
        let err = |reason: String| Error::ResourceQuantity {
            owner: owner.to_string(),
            field: format!("resources.{kind}.{name}"),
            value: q.0.clone(),
            reason,
        };
        let parsed = Quantity::parse(&q.0).map_err(|e| match e {
            Error::Quantity { reason, .. } => err(reason),
            other => other,
        })?;
        let value = if name == "cpu" {
            parsed.millis()
        } else {
            parsed.units()
        };
        value
            .map(Some)
            .ok_or_else(|| err("is too large for any CCI flavour".into()))
    };
    Ok((
        (field("requests", "cpu")?, field("limits", "cpu")?),
        (field("requests", "memory")?, field("limits", "memory")?),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity as Q;
    use proptest::prelude::*;
    use rstest::rstest;

    fn flavour(spec: &str) -> Flavour {
        parse_pod_size_specs(spec).unwrap()
    }

    #[test]
    fn the_table_has_every_documented_row() {
        let by_cpu = |cores: u64| -> Vec<String> {
            Flavour::all()
                .filter(|f| f.millicores() == cores)
                .map(|f| format_gib(f.memory_bytes()))
                .collect()
        };
        assert_eq!(by_cpu(250), ["0.5", "1", "2"]);
        assert_eq!(by_cpu(500), ["0.5", "1", "2", "3", "4"]);
        assert_eq!(
            by_cpu(1000),
            (1..=8).map(|g| g.to_string()).collect::<Vec<_>>()
        );
        assert_eq!(
            by_cpu(2000),
            (2..=16).map(|g| g.to_string()).collect::<Vec<_>>()
        );
        assert_eq!(
            by_cpu(4000),
            (4..=32).map(|g| g.to_string()).collect::<Vec<_>>()
        );
        assert_eq!(
            by_cpu(8000),
            (8..=64)
                .step_by(4)
                .map(|g| g.to_string())
                .collect::<Vec<_>>()
        );
        assert_eq!(
            by_cpu(16000),
            (16..=128)
                .step_by(8)
                .map(|g| g.to_string())
                .collect::<Vec<_>>()
        );
        assert_eq!(by_cpu(32000), ["32", "64", "128", "256"]);
        assert_eq!(by_cpu(48000), ["96", "192", "384"]);
        assert_eq!(by_cpu(64000), ["128", "256", "512"]);
        assert_eq!(
            Flavour::all().count(),
            3 + 5 + 8 + 15 + 29 + 15 + 15 + 4 + 3 + 3
        );
        assert_eq!(Flavour::largest().spec(), "64_512");
    }

    #[test]
    fn the_table_is_sorted_so_the_first_fit_is_the_nearest() {
        let all: Vec<Flavour> = Flavour::all().collect();
        assert!(all.windows(2).all(|w| w[0] < w[1]));
    }

    fn need(cpu: &str, memory: &str) -> PodResources {
        PodResources {
            millicores: Quantity::parse(cpu).unwrap().millis().unwrap(),
            memory_bytes: Quantity::parse(memory).unwrap().units().unwrap(),
        }
    }

    #[rstest]
    #[case::exact_smallest("250m", "512Mi", "0.25_0.5")]
    #[case::seed_nginx("500m", "1024Mi", "0.5_1")]
    #[case::manual_example("6", "15Gi", "8_16")]
    #[case::memory_pushes_to_more_vcpu("250m", "3Gi", "0.5_3")]
    #[case::memory_pushes_past_half("500m", "5Gi", "1_5")]
    #[case::cpu_pushes_memory_to_row_minimum("1", "512Mi", "1_1")]
    #[case::step_of_four("8", "9Gi", "8_12")]
    #[case::step_of_eight("16", "17Gi", "16_24")]
    #[case::sparse_row("32", "65Gi", "32_128")]
    #[case::forty_eight("33", "1Gi", "48_96")]
    #[case::memory_only("0", "200Gi", "32_256")]
    #[case::largest("64", "512Gi", "64_512")]
    #[case::a_byte_more_than_half_a_gib("250m", "536870913", "0.25_1")]
    #[case::a_millicore_more("1001m", "1Gi", "2_2")]
    fn needs_round_up_to_the_nearest_flavour(
        #[case] cpu: &str,
        #[case] memory: &str,
        #[case] expected: &str,
    ) {
        assert_eq!(
            Flavour::round_up(need(cpu, memory)).unwrap().spec(),
            expected
        );
    }

    #[rstest]
    #[case::too_much_cpu("65", "1Gi")]
    #[case::too_much_memory("1", "513Gi")]
    #[case::both("100", "1Ti")]
    fn needs_beyond_the_table_fit_no_flavour(#[case] cpu: &str, #[case] memory: &str) {
        assert_eq!(Flavour::round_up(need(cpu, memory)), None);
    }

    #[rstest]
    #[case::quarter("0.25_0.5", 250, 512)]
    #[case::manual_example("2.00_4.0", 2000, 4096)]
    #[case::whole("64_512", 64000, 512 * 1024)]
    #[case::half_memory("0.5_0.5", 500, 512)]
    fn pod_size_specs_name_flavours(#[case] value: &str, #[case] millis: u64, #[case] mib: u64) {
        let f = parse_pod_size_specs(value).unwrap();
        assert_eq!((f.millicores(), f.memory_mib()), (millis, mib));
    }

    #[rstest]
    #[case::no_separator("2-4", "no \"_\"")]
    #[case::units("2_4Gi", "not a plain decimal")]
    #[case::empty_cpu("_4", "not a plain decimal")]
    #[case::negative("-2_4", "not a plain decimal")]
    #[case::two_dots("2.0.0_4", "two decimal points")]
    #[case::only_dot("._4", "not a plain decimal")]
    fn malformed_pod_size_specs_say_what_is_wrong(#[case] value: &str, #[case] reason: &str) {
        let err = parse_pod_size_specs(value).unwrap_err();
        assert!(matches!(err, Error::PodSizeSpecsSyntax { .. }), "{err:?}");
        let err = err.to_string();
        assert!(err.contains(reason), "{err}");
        assert!(err.contains("resource.cci.io/pod-size-specs"), "{err}");
    }

    #[rstest]
    #[case::memory_off_the_step("2_17", "with 2 vCPU CCI offers 2 to 16 GiB in steps of 1 GiB")]
    #[case::memory_below_the_row("1_0.5", "with 1 vCPU CCI offers 1 to 8 GiB")]
    #[case::sparse_row("32_96", "with 32 vCPU CCI offers 32, 64, 128, 256 GiB")]
    #[case::no_such_vcpu("3_6", "CCI offers 0.25, 0.5, 1, 2, 4, 8, 16, 32, 48 and 64 vCPU")]
    #[case::fractional_millicores("0.2501_1", "CCI offers 0.25, 0.5")]
    #[case::odd_memory("1_1.3", "with 1 vCPU")]
    fn pod_size_specs_that_name_no_flavour_list_the_nearby_ones(
        #[case] value: &str,
        #[case] hint: &str,
    ) {
        let err = parse_pod_size_specs(value).unwrap_err().to_string();
        assert!(err.contains("names no CCI flavour"), "{err}");
        assert!(err.contains(hint), "{err}");
    }

    #[rstest]
    #[case::quarter("0.25_0.5", "0.25u", "0.5Gi", "0.25_0.5")]
    #[case::seed_nginx("0.5_1", "0.5u", "1Gi", "0.5_1")]
    #[case::big("16_24", "16u", "24Gi", "16_24")]
    fn annotations_follow_the_documented_formats(
        #[case] spec: &str,
        #[case] cpu: &str,
        #[case] memory: &str,
        #[case] size: &str,
    ) {
        let f = flavour(spec);
        let cluster = f.cluster_pod_annotations();
        assert_eq!(cluster[ANNOTATION_BURST_POD_CPU], cpu);
        assert_eq!(cluster[ANNOTATION_BURST_POD_MEMORY], memory);
        assert_eq!(f.cci_pod_annotations()[ANNOTATION_SIZE], size);
        assert_eq!(parse_pod_size_specs(size).unwrap(), f);
    }

    #[rstest]
    #[case::quarter("0.25_2", 1)]
    #[case::half("0.5_1", 1)]
    #[case::one("1_1", 1)]
    #[case::two("2_4", 2)]
    fn whole_cores_round_fractions_up(#[case] spec: &str, #[case] cores: u64) {
        assert_eq!(flavour(spec).whole_cores(), cores);
    }

    /// A container with `requests` and `limits` given as `(cpu, memory)`; `""` leaves one out.
    fn container(name: &str, requests: (&str, &str), limits: (&str, &str)) -> Container {
        let map = |(cpu, memory): (&str, &str)| {
            let mut m = BTreeMap::new();
            if !cpu.is_empty() {
                m.insert("cpu".to_string(), Q(cpu.into()));
            }
            if !memory.is_empty() {
                m.insert("memory".to_string(), Q(memory.into()));
            }
            (!m.is_empty()).then_some(m)
        };
        Container {
            name: name.into(),
            resources: Some(ResourceRequirements {
                requests: map(requests),
                limits: map(limits),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn sidecar(name: &str, requests: (&str, &str)) -> Container {
        Container {
            restart_policy: Some("Always".into()),
            ..container(name, requests, ("", ""))
        }
    }

    const NONE: (&str, &str) = ("", "");

    #[rstest]
    #[case::seed_nginx(vec![container("c", ("500m", "1024Mi"), ("500m", "1024Mi"))], vec![], ("500m", "1Gi"), "0.5_1")]
    #[case::requests_are_summed(
        vec![container("a", ("250m", "512Mi"), NONE), container("b", ("250m", "512Mi"), NONE)],
        vec![], ("500m", "1Gi"), "0.5_1")]
    #[case::limits_are_not_summed(
        vec![container("a", ("500m", "512Mi"), ("1", "1Gi")), container("b", ("500m", "512Mi"), ("1", "1Gi"))],
        vec![], ("1", "1Gi"), "1_1")]
    #[case::one_big_limit_wins_over_the_sum(
        vec![container("a", ("250m", "256Mi"), ("2", "4Gi")), container("b", ("250m", "256Mi"), NONE)],
        vec![], ("2", "4Gi"), "2_4")]
    #[case::a_missing_request_defaults_to_the_limit(
        vec![container("a", NONE, ("1", "2Gi")), container("b", ("1", "1Gi"), NONE)],
        vec![], ("2", "3Gi"), "2_3")]
    #[case::a_larger_init_container_wins(
        vec![container("a", ("250m", "512Mi"), NONE)],
        vec![container("init", ("2", "1Gi"), NONE)], ("2", "1Gi"), "2_2")]
    #[case::init_cpu_and_memory_combine_across_init_containers(
        vec![container("a", ("250m", "512Mi"), NONE)],
        vec![container("i1", ("4", "1Gi"), NONE), container("i2", ("1", "6Gi"), NONE)], ("4", "6Gi"), "4_6")]
    #[case::an_init_limit_counts(
        vec![container("a", ("250m", "512Mi"), NONE)],
        vec![container("init", ("250m", "512Mi"), ("1", "1Gi"))], ("1", "1Gi"), "1_1")]
    #[case::a_smaller_init_container_does_not_count(
        vec![container("a", ("2", "4Gi"), NONE)],
        vec![container("init", ("1", "1Gi"), NONE)], ("2", "4Gi"), "2_4")]
    #[case::a_sidecar_joins_the_sum(
        vec![container("a", ("1", "1Gi"), NONE)],
        vec![sidecar("proxy", ("1", "1Gi"))], ("2", "2Gi"), "2_2")]
    #[case::an_init_after_a_sidecar_runs_beside_it(
        vec![container("a", ("250m", "256Mi"), NONE)],
        vec![sidecar("proxy", ("1", "1Gi")), container("init", ("2", "2Gi"), NONE)], ("3", "3Gi"), "4_4")]
    #[case::cpu_only(vec![container("a", ("1", ""), NONE)], vec![], ("1", "0"), "1_1")]
    #[case::memory_only(vec![container("a", ("", "3Gi"), NONE)], vec![], ("0", "3Gi"), "0.5_3")]
    #[case::one_container_without_resources(
        vec![container("a", ("1", "2Gi"), NONE), Container { name: "b".into(), ..Default::default() }],
        vec![], ("1", "2Gi"), "1_2")]
    fn pods_are_sized_by_the_documented_formula(
        #[case] containers: Vec<Container>,
        #[case] init: Vec<Container>,
        #[case] expected: (&str, &str),
        #[case] flavour_spec: &str,
    ) {
        let spec = PodSpec {
            containers,
            init_containers: (!init.is_empty()).then_some(init),
            ..Default::default()
        };
        let sizing = size(&spec, None).unwrap();
        assert_eq!(sizing.need, Some(need(expected.0, expected.1)));
        assert_eq!(sizing.flavour.spec(), flavour_spec);
        assert!(!sizing.pinned);
    }

    #[test]
    fn pod_level_resources_are_one_more_term() {
        let spec = PodSpec {
            containers: vec![container("a", ("250m", "512Mi"), NONE)],
            resources: Some(ResourceRequirements {
                limits: Some(BTreeMap::from([("cpu".into(), Q("2".into()))])),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(size(&spec, None).unwrap().flavour.spec(), "2_2");
    }

    #[test]
    fn a_pod_without_any_resources_or_annotation_is_refused() {
        let spec = PodSpec {
            containers: vec![Container::default()],
            ..Default::default()
        };
        let err = size(&spec, None).unwrap_err();
        assert!(matches!(err, Error::NoResources));
        assert!(err.to_string().contains("resource.cci.io/pod-size-specs"));
    }

    #[test]
    fn the_annotation_sizes_a_pod_without_resources() {
        let spec = PodSpec {
            containers: vec![Container::default()],
            ..Default::default()
        };
        let sizing = size(&spec, Some("0.25_0.5")).unwrap();
        assert_eq!(sizing.flavour.spec(), "0.25_0.5");
        assert!(sizing.pinned);
        assert_eq!(sizing.need, None);
    }

    #[test]
    fn the_annotation_may_pin_a_larger_flavour_than_rounding_would() {
        let spec = PodSpec {
            containers: vec![container("a", ("250m", "512Mi"), NONE)],
            ..Default::default()
        };
        assert_eq!(size(&spec, Some("4_8")).unwrap().flavour.spec(), "4_8");
    }

    #[rstest]
    #[case::less_cpu("0.5_4", ("1", "1Gi"))]
    #[case::less_memory("1_1", ("1", "2Gi"))]
    fn an_annotation_smaller_than_the_containers_is_refused_with_the_numbers(
        #[case] value: &str,
        #[case] requests: (&str, &str),
    ) {
        let spec = PodSpec {
            containers: vec![container("a", requests, NONE)],
            ..Default::default()
        };
        let err = size(&spec, Some(value)).unwrap_err();
        assert!(matches!(err, Error::PodSizeSpecsTooSmall { .. }), "{err:?}");
        let err = err.to_string();
        assert!(err.contains(value), "{err}");
        assert!(
            err.contains(&format!("cpu {} and memory {}", requests.0, requests.1)),
            "{err}"
        );
        assert!(
            err.contains("such as \"1_2\"") || err.contains("such as \"1_1\""),
            "{err}"
        );
    }

    #[test]
    fn a_pod_larger_than_every_flavour_is_refused_with_the_numbers() {
        let spec = PodSpec {
            containers: vec![container("a", ("80", "100Gi"), NONE)],
            ..Default::default()
        };
        let err = size(&spec, None).unwrap_err();
        assert!(matches!(err, Error::NoFlavour { .. }));
        let err = err.to_string();
        assert!(err.contains("cpu 80 and memory 100Gi"), "{err}");
        assert!(err.contains("64 vCPU / 512 GiB"), "{err}");
    }

    #[rstest]
    #[case::upper_k(container("app", ("1", "1K"), NONE), "container \"app\": resources.requests.memory \"1K\"")]
    #[case::garbage(container("app", NONE, ("one", "")), "container \"app\": resources.limits.cpu \"one\"")]
    #[case::negative(container("app", ("-1", ""), NONE), "is negative")]
    #[case::too_large(container("app", ("", "100E"), NONE), "too large for any CCI flavour")]
    fn bad_quantities_name_the_container_and_field(#[case] c: Container, #[case] expected: &str) {
        let spec = PodSpec {
            containers: vec![c],
            ..Default::default()
        };
        let err = size(&spec, None).unwrap_err();
        assert!(matches!(err, Error::ResourceQuantity { .. }), "{err:?}");
        let err = err.to_string();
        assert!(err.contains(expected), "{err}");
    }

    #[test]
    fn a_bad_init_quantity_names_the_init_container() {
        let spec = PodSpec {
            containers: vec![container("app", ("1", "1Gi"), NONE)],
            init_containers: Some(vec![container("setup", ("x", ""), NONE)]),
            ..Default::default()
        };
        let err = size(&spec, None).unwrap_err().to_string();
        assert!(
            err.starts_with("init container \"setup\": resources.requests.cpu"),
            "{err}"
        );
    }

    proptest! {
        #[test]
        fn the_chosen_flavour_fits_and_no_smaller_one_does(
            millicores in 0u64..70_000,
            memory_mib in 0u64..(530 * 1024),
            extra_bytes in 0u64..MIB,
        ) {
            let need = PodResources { millicores, memory_bytes: memory_mib * MIB + extra_bytes };
            match Flavour::round_up(need) {
                Some(chosen) => {
                    prop_assert!(chosen.fits(need));
                    for other in Flavour::all().filter(|f| f.fits(need)) {
                        // Nothing fitting has less vCPU, nor less memory at the same vCPU.
                        prop_assert!(other.millicores() >= chosen.millicores());
                        if other.millicores() == chosen.millicores() {
                            prop_assert!(other.memory_mib() >= chosen.memory_mib());
                        }
                        // And nothing fitting is smaller in both.
                        prop_assert!(
                            !(other.millicores() <= chosen.millicores()
                                && other.memory_mib() <= chosen.memory_mib()
                                && other != chosen)
                        );
                    }
                }
                None => prop_assert!(Flavour::all().all(|f| !f.fits(need))),
            }
        }

        #[test]
        fn every_flavour_round_trips_through_its_spec_string(index in 0usize..100) {
            let all: Vec<Flavour> = Flavour::all().collect();
            let f = all[index % all.len()];
            prop_assert_eq!(parse_pod_size_specs(&f.spec()).unwrap(), f);
            prop_assert_eq!(Flavour::round_up(PodResources {
                millicores: f.millicores(),
                memory_bytes: f.memory_bytes(),
            }), Some(f));
        }
    }
}
