//! Property tests for flavour rounding: over arbitrary container CPU (millicores) and
//! memory (bytes) requests, within and beyond the flavour table, both straight through
//! [`flavour::round_up`] and through [`validate_pod`] on pods built from those requests.
//!
//! The pod's size is max(sum of app containers, largest init container), rounded up to the
//! smallest flavour (fewest vCPUs, then least memory of that vCPU) it fits in, or pinned by
//! `resource.cci.io/pod-size-specs`.

use cci_api::Pod;
use mock_cci::flavour::{self, Demand, FLAVOURS, Flavour, MIB};
use mock_cci::validate::{
    ANNOTATION_POD_SIZE_SPECS, FieldError, PodContext, References, validate_pod,
};
use proptest::prelude::*;
use serde_json::{Value, json};

const GIB: u64 = 1 << 30;
/// The largest flavour's CPU (64 vCPU) and memory (512 GiB).
const MAX_CPU_MILLI: u64 = 64_000;
const MAX_MEM_BYTES: u64 = 512 * GIB;

/// Cases for properties that only call `round_up`.
const PURE_CASES: u32 = 4096;
/// Cases for properties that build and validate a pod.
const POD_CASES: u32 = 1024;

/// A namespace with no ConfigMaps, Secrets or claims (the pods here reference none).
struct Empty;

impl References for Empty {
    fn has_config_map(&self, _: &str) -> bool {
        false
    }

    fn has_secret(&self, _: &str) -> bool {
        false
    }

    fn claim_class(&self, _: &str) -> Option<Option<String>> {
        None
    }
}

fn check(pod: &Pod) -> Result<Flavour, Vec<FieldError>> {
    let classes = ["csi-nas".to_owned()];
    validate_pod(
        pod,
        &PodContext {
            namespace: "ns",
            references: &Empty,
            sfs_storage_classes: &classes,
        },
    )
}

fn container(name: &str, (cpu_milli, mem_bytes): (u64, u64)) -> Value {
    let both = json!({"cpu": format!("{cpu_milli}m"), "memory": mem_bytes.to_string()});
    json!({"name": name, "image": "nginx:1.27", "resources": {"requests": both, "limits": both}})
}

/// A pod of these app and init containers (each `(millicores, bytes)`), optionally pinned.
fn pod(apps: &[(u64, u64)], inits: &[(u64, u64)], pinned: Option<&str>) -> Pod {
    let mut annotations = serde_json::Map::new();
    if let Some(size) = pinned {
        annotations.insert(ANNOTATION_POD_SIZE_SPECS.into(), size.into());
    }
    let apps: Vec<Value> = apps
        .iter()
        .enumerate()
        .map(|(i, r)| container(&format!("app-{i}"), *r))
        .collect();
    let mut spec = json!({"containers": apps});
    if !inits.is_empty() {
        let inits: Vec<Value> = inits
            .iter()
            .enumerate()
            .map(|(i, r)| container(&format!("init-{i}"), *r))
            .collect();
        spec["initContainers"] = Value::Array(inits);
    }
    serde_json::from_value(json!({
        "apiVersion": "cci/v2",
        "kind": "Pod",
        "metadata": {"name": "web-0", "annotations": annotations},
        "spec": spec,
    }))
    .expect("a well-formed pod")
}

/// The pod's demand as the module documents it: max(sum of app containers, largest init).
fn demand_of(apps: &[(u64, u64)], inits: &[(u64, u64)]) -> Demand {
    let as_demand = |&(cpu_milli, mem_bytes): &(u64, u64)| Demand {
        cpu_milli,
        mem_bytes,
    };
    let sum = apps
        .iter()
        .map(as_demand)
        .fold(Demand::default(), Demand::plus);
    inits.iter().map(as_demand).fold(sum, Demand::max)
}

/// CPU in millicores: anywhere up to beyond the largest flavour, or right at a table boundary.
fn cpu_milli() -> impl Strategy<Value = u64> {
    let boundaries: Vec<u64> = FLAVOURS.iter().map(|f| u64::from(f.cpu_milli)).collect();
    prop_oneof![
        1u64..=MAX_CPU_MILLI + 16_000,
        (proptest::sample::select(boundaries), -1i64..=1)
            .prop_map(|(b, d)| b.saturating_add_signed(d).max(1)),
    ]
}

/// Memory in bytes: anywhere up to beyond the largest flavour, or right at a table boundary.
fn mem_bytes() -> impl Strategy<Value = u64> {
    let boundaries: Vec<u64> = FLAVOURS
        .iter()
        .map(|f| u64::from(f.mem_mib) * MIB)
        .collect();
    prop_oneof![
        1u64..=MAX_MEM_BYTES + 128 * GIB,
        (proptest::sample::select(boundaries), -1i64..=1)
            .prop_map(|(b, d)| b.saturating_add_signed(d).max(1)),
    ]
}

fn demand() -> impl Strategy<Value = Demand> {
    (cpu_milli(), mem_bytes()).prop_map(|(cpu_milli, mem_bytes)| Demand {
        cpu_milli,
        mem_bytes,
    })
}

/// One container's requests: kept small enough that a few of them span the table and beyond.
fn requests() -> impl Strategy<Value = (u64, u64)> {
    (1u64..=30_000, 1u64..=260 * GIB)
}

/// Containers' requests, each `(millicores, bytes)`.
type Requests = Vec<(u64, u64)>;

/// App containers (1–3) and init containers (0–2).
fn containers() -> impl Strategy<Value = (Requests, Requests)> {
    (
        prop::collection::vec(requests(), 1..=3),
        prop::collection::vec(requests(), 0..=2),
    )
}

/// Whether some flavour the table orders before `size` fits `need`.
fn a_smaller_flavour_fits(size: Flavour, need: Demand) -> bool {
    FLAVOURS
        .iter()
        .take_while(|f| **f != size)
        .any(|f| f.fits(need))
}

#[test]
fn the_table_is_ordered_by_vcpu_then_memory_without_duplicates() {
    // `Flavour`'s derived order is (vCPU, memory), the order `round_up` searches in.
    assert!(
        FLAVOURS
            .windows(2)
            .all(|w| (w[0].cpu_milli, w[0].mem_mib) < (w[1].cpu_milli, w[1].mem_mib))
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(PURE_CASES))]

    #[test]
    fn the_chosen_flavour_is_sold_and_fits_the_demand(need in demand()) {
        if let Some(size) = flavour::round_up(need) {
            prop_assert!(size.is_sold(), "{size} is not in the table");
            prop_assert!(size.fits(need), "{size} does not fit {need:?}");
            prop_assert!(u64::from(size.cpu_milli) >= need.cpu_milli);
            prop_assert!(u64::from(size.mem_mib) * MIB >= need.mem_bytes);
        }
    }

    #[test]
    fn no_smaller_flavour_fits_the_demand(need in demand()) {
        if let Some(size) = flavour::round_up(need) {
            prop_assert!(!a_smaller_flavour_fits(size, need), "{need:?} → {size}");
            // Spelled out as the module documents it: the fewest vCPUs any fitting flavour has,
            // then the least memory among flavours of that vCPU.
            let fitting = || FLAVOURS.iter().filter(|f| f.fits(need));
            let fewest_vcpus = fitting().map(|f| f.cpu_milli).min().unwrap();
            let least_memory = fitting()
                .filter(|f| f.cpu_milli == fewest_vcpus)
                .map(|f| f.mem_mib)
                .min()
                .unwrap();
            prop_assert_eq!(size, Flavour::new(fewest_vcpus, least_memory));
        }
    }

    #[test]
    fn a_demand_bigger_than_every_flavour_gets_none_and_every_other_gets_one(need in demand()) {
        let beyond = need.cpu_milli > MAX_CPU_MILLI || need.mem_bytes > MAX_MEM_BYTES;
        prop_assert_eq!(flavour::round_up(need).is_none(), beyond, "{:?}", need);
        if beyond {
            prop_assert!(FLAVOURS.iter().all(|f| !f.fits(need)));
        }
    }

    #[test]
    fn a_bigger_demand_never_gets_a_smaller_flavour(
        small in demand(),
        extra_cpu in 0u64..=20_000,
        extra_mem in 0u64..=64 * GIB,
    ) {
        let big = Demand {
            cpu_milli: small.cpu_milli + extra_cpu,
            mem_bytes: small.mem_bytes + extra_mem,
        };
        match (flavour::round_up(small), flavour::round_up(big)) {
            (Some(a), Some(b)) => prop_assert!(a <= b, "{small:?} → {a} but {big:?} → {b}"),
            (None, b) => prop_assert_eq!(b, None, "{:?} fits none but {:?} fits", small, big),
            (Some(_), None) => {}
        }
    }

    #[test]
    fn a_sold_flavour_pinned_over_a_demand_it_fits_is_accepted_as_is(
        index in 0..FLAVOURS.len(),
        cpu_share in 0.0f64..=1.0,
        mem_share in 0.0f64..=1.0,
        declared in any::<bool>(),
    ) {
        let size = FLAVOURS[index];
        // A demand no larger than the pinned flavour (up to exactly its size).
        let cpu = ((f64::from(size.cpu_milli) * cpu_share) as u64).max(1);
        let mem = (((u64::from(size.mem_mib) * MIB) as f64 * mem_share) as u64).max(1);
        let apps: &[(u64, u64)] = &[(cpu, mem)];
        let pod = if declared {
            pod(apps, &[], Some(&size.to_string()))
        } else {
            let mut pod = pod(apps, &[], Some(&size.to_string()));
            pod.spec.containers[0].resources = None;
            pod
        };
        prop_assert_eq!(check(&pod), Ok(size));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(POD_CASES))]

    #[test]
    fn a_pod_gets_the_smallest_flavour_that_fits_its_containers_or_is_refused(
        (apps, inits) in containers(),
    ) {
        let need = demand_of(&apps, &inits);
        let result = check(&pod(&apps, &inits, None));
        match flavour::round_up(need) {
            Some(expected) => {
                let size = result.map_err(|e| TestCaseError::fail(format!("{need:?}: {e:?}")))?;
                prop_assert_eq!(size, expected);
                prop_assert!(size.fits(need), "{size} does not fit {need:?}");
                prop_assert!(!a_smaller_flavour_fits(size, need), "{need:?} → {size}");
            }
            None => {
                prop_assert!(need.cpu_milli > MAX_CPU_MILLI || need.mem_bytes > MAX_MEM_BYTES);
                let errors = result.expect_err("a pod bigger than every flavour is refused");
                prop_assert!(
                    errors.iter().any(|e| e.field == "spec.containers"
                        && e.message.contains("more than the largest CCI flavour")),
                    "{errors:?}"
                );
            }
        }
    }

    #[test]
    fn adding_a_container_never_gets_a_pod_a_smaller_flavour(
        (apps, inits) in containers(),
        added in requests(),
    ) {
        let before = check(&pod(&apps, &inits, None));
        let mut more = apps.clone();
        more.push(added);
        let after = check(&pod(&more, &inits, None));
        match (before, after) {
            (Ok(a), Ok(b)) => prop_assert!(a <= b, "{a} then {b} after adding {added:?}"),
            (Err(_), after) => prop_assert!(after.is_err(), "refused, then {after:?}"),
            (Ok(_), Err(_)) => {}
        }
    }

    #[test]
    fn a_sold_flavour_pinned_at_least_the_containers_size_is_accepted_as_is(
        (apps, inits) in containers(),
        index in 0..FLAVOURS.len(),
    ) {
        let need = demand_of(&apps, &inits);
        // The pin: the chosen table entry if it fits, else the first entry from it on that does.
        let fitting = FLAVOURS[index..]
            .iter()
            .chain(FLAVOURS.iter())
            .copied()
            .find(|f| f.fits(need));
        let result = check(&pod(&apps, &inits, fitting.map(|f| f.to_string()).as_deref()));
        match fitting {
            Some(pinned) => prop_assert_eq!(result, Ok(pinned)),
            None => prop_assert!(result.is_err()),
        }
    }
}
