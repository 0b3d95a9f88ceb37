//! The CCI flavour table (BEHAVIOR.md §4) and pod size rounding.
//!
//! Pure functions. This is the mock's own copy of the table, on purpose: the mock checks the
//! engine's rounding, so it must not share the engine's code.

use std::fmt;
use std::str::FromStr;
use std::sync::LazyLock;

/// Bytes in a MiB.
pub const MIB: u64 = 1 << 20;

/// One pod size CCI sells: vCPUs and memory. Written `{cpu}_{mem}` with cores and GiB as
/// decimals, e.g. `0.25_0.5`, `2_4` (the form of `resource.cci.io/size`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Flavour {
    /// Thousandths of a vCPU.
    pub cpu_milli: u32,
    /// Memory in MiB.
    pub mem_mib: u32,
}

/// What a pod needs: CPU in millicores and memory in bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Demand {
    /// Millicores.
    pub cpu_milli: u64,
    /// Bytes.
    pub mem_bytes: u64,
}

impl Demand {
    /// The larger of each dimension.
    pub fn max(self, other: Demand) -> Demand {
        Demand {
            cpu_milli: self.cpu_milli.max(other.cpu_milli),
            mem_bytes: self.mem_bytes.max(other.mem_bytes),
        }
    }

    /// The sum of each dimension (saturating).
    pub fn plus(self, other: Demand) -> Demand {
        Demand {
            cpu_milli: self.cpu_milli.saturating_add(other.cpu_milli),
            mem_bytes: self.mem_bytes.saturating_add(other.mem_bytes),
        }
    }
}

impl Flavour {
    /// A flavour of `cpu_milli` thousandths of a vCPU and `mem_mib` MiB (not necessarily one the
    /// table lists).
    pub const fn new(cpu_milli: u32, mem_mib: u32) -> Self {
        Self { cpu_milli, mem_mib }
    }

    /// Whether the table lists it.
    pub fn is_sold(self) -> bool {
        FLAVOURS.binary_search(&self).is_ok()
    }

    /// Whether a pod needing `demand` fits in it.
    pub fn fits(self, demand: Demand) -> bool {
        u64::from(self.cpu_milli) >= demand.cpu_milli
            && u64::from(self.mem_mib) * MIB >= demand.mem_bytes
    }

    /// Whole vCPUs, rounded down (0 for the quarter and half sizes).
    pub fn cpu_cores_floor(self) -> u32 {
        self.cpu_milli / 1000
    }
}

/// Every flavour CCI sells, ordered by vCPU then memory.
pub static FLAVOURS: LazyLock<Vec<Flavour>> = LazyLock::new(|| {
    const GIB: u32 = 1024;
    let mut table = Vec::new();
    let mut add = |cpu_milli: u32, mems: &mut dyn Iterator<Item = u32>| {
        table.extend(mems.map(|gib_or_mib| Flavour::new(cpu_milli, gib_or_mib)));
    };
    add(250, &mut [512, GIB, 2 * GIB].into_iter());
    add(500, &mut [512, GIB, 2 * GIB, 3 * GIB, 4 * GIB].into_iter());
    add(1000, &mut (1..=8).map(|g| g * GIB));
    add(2000, &mut (2..=16).map(|g| g * GIB));
    add(4000, &mut (4..=32).map(|g| g * GIB));
    add(8000, &mut (8..=64).step_by(4).map(|g| g * GIB));
    add(16000, &mut (16..=128).step_by(8).map(|g| g * GIB));
    add(32000, &mut [32, 64, 128, 256].into_iter().map(|g| g * GIB));
    add(48000, &mut [96, 192, 384].into_iter().map(|g| g * GIB));
    add(64000, &mut [128, 256, 512].into_iter().map(|g| g * GIB));
    table.sort();
    table
});

/// The smallest flavour (fewest vCPUs, then least memory) a pod needing `demand` fits in, or
/// `None` when it is bigger than every flavour.
pub fn round_up(demand: Demand) -> Option<Flavour> {
    FLAVOURS.iter().copied().find(|f| f.fits(demand))
}

/// `value` thousandths written as a decimal without trailing zeros (`250` → `0.25`).
fn decimal(value: u64, unit: u64) -> String {
    let whole = value / unit;
    let rest = value % unit;
    if rest == 0 {
        return whole.to_string();
    }
    let width = unit.ilog10() as usize;
    let fraction = format!("{rest:0width$}");
    format!("{whole}.{}", fraction.trim_end_matches('0'))
}

/// Parses a non-negative decimal (`0.25`, `2`, `.5`) into an integer count of `1/unit`; `None`
/// when it is not one or is not a whole count of `1/unit`.
fn parse_decimal(text: &str, unit: u64) -> Option<u64> {
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    let digits_ok = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if (whole.is_empty() && fraction.is_empty()) || !digits_ok(whole) || !digits_ok(fraction) {
        return None;
    }
    if whole.len() > 12 || fraction.len() > 12 {
        return None;
    }
    let whole: u64 = if whole.is_empty() {
        0
    } else {
        whole.parse().ok()?
    };
    let mut value = whole.checked_mul(unit)?;
    let mut place = unit;
    for digit in fraction.bytes() {
        let d = u64::from(digit - b'0');
        if !place.is_multiple_of(10) {
            // A digit finer than the unit: only zeros are allowed there.
            if d != 0 {
                return None;
            }
            continue;
        }
        place /= 10;
        value = value.checked_add(d * place)?;
    }
    Some(value)
}

impl Flavour {
    /// The form CCI writes in `resource.cci.io/size` on the pods it created: vCPUs with two
    /// decimals, GiB with one (`2.00_4.0`, `0.25_0.5`), as the published create-pod answer
    /// shows it.
    pub fn cci_form(&self) -> String {
        format!(
            "{}.{:02}_{}.{}",
            self.cpu_milli / 1000,
            (self.cpu_milli % 1000) / 10,
            self.mem_mib / 1024,
            (self.mem_mib % 1024) * 10 / 1024
        )
    }
}

impl fmt::Display for Flavour {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}_{}",
            decimal(u64::from(self.cpu_milli), 1000),
            // NB: MiB → GiB is a power of two, so write the fraction of 1024 through 1/1000s
            // only when it is exact (every sold size is a whole or half GiB).
            if self.mem_mib.is_multiple_of(1024) {
                (self.mem_mib / 1024).to_string()
            } else if self.mem_mib.is_multiple_of(512) {
                format!("{}.5", self.mem_mib / 1024)
            } else {
                format!("{}Mi", self.mem_mib)
            }
        )
    }
}

impl FromStr for Flavour {
    type Err = String;

    /// Parses `{cpu}_{mem}` (vCPUs and GiB as decimals). It need not be a sold flavour; see
    /// [`Flavour::is_sold`].
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let refuse = || {
            format!(
                "{text:?} is not of the form {{cpu}}_{{memory}} with vCPUs and GiB as numbers, e.g. \"0.5_1\" or \"2_4\""
            )
        };
        let (cpu, mem) = text.split_once('_').ok_or_else(refuse)?;
        let cpu_milli = parse_decimal(cpu, 1000).ok_or_else(refuse)?;
        // GiB → MiB: parse in 1/1024 steps through 1/1000 (exact for halves, quarters, eighths).
        let mem_thousandths = parse_decimal(mem, 1000).ok_or_else(refuse)?;
        let mem_mib_x1000 = mem_thousandths.checked_mul(1024).ok_or_else(refuse)?;
        if mem_mib_x1000 % 1000 != 0 {
            return Err(refuse());
        }
        let cpu_milli = u32::try_from(cpu_milli).map_err(|_| refuse())?;
        let mem_mib = u32::try_from(mem_mib_x1000 / 1000).map_err(|_| refuse())?;
        Ok(Flavour::new(cpu_milli, mem_mib))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rstest::rstest;

    const GIB: u64 = 1 << 30;

    fn demand(cpu_milli: u64, mem_bytes: u64) -> Demand {
        Demand {
            cpu_milli,
            mem_bytes,
        }
    }

    #[test]
    fn the_table_has_every_row_of_the_spec() {
        let count = |cpu| FLAVOURS.iter().filter(|f| f.cpu_milli == cpu).count();
        assert_eq!(
            [250, 500, 1000, 2000, 4000, 8000, 16000, 32000, 48000, 64000].map(count),
            [3, 5, 8, 15, 29, 15, 15, 4, 3, 3]
        );
    }

    #[rstest]
    #[case::seed_nginx(demand(500, GIB), "0.5_1")]
    #[case::quarter(demand(100, 100 * MIB), "0.25_0.5")]
    #[case::quarter_too_much_memory(demand(250, 3 * GIB), "0.5_3")]
    #[case::one_core_ten_gib(demand(1000, 10 * GIB), "2_10")]
    #[case::memory_rounds_to_the_step(demand(8000, 9 * GIB), "8_12")]
    #[case::sixteen_step_eight(demand(16000, 17 * GIB), "16_24")]
    #[case::just_over_a_core(demand(1001, GIB), "2_2")]
    #[case::forty_cores(demand(40000, 64 * GIB), "48_96")]
    #[case::biggest(demand(64000, 512 * GIB), "64_512")]
    fn demands_round_up_to_the_nearest_flavour(#[case] need: Demand, #[case] size: &str) {
        assert_eq!(round_up(need).unwrap().to_string(), size);
    }

    #[rstest]
    #[case::too_many_cores(demand(64001, GIB))]
    #[case::too_much_memory(demand(1000, 513 * GIB))]
    fn a_pod_bigger_than_every_flavour_fits_none(#[case] need: Demand) {
        assert_eq!(round_up(need), None);
    }

    #[rstest]
    #[case("0.25_0.5", 250, 512)]
    #[case("0.5_1", 500, 1024)]
    #[case("2_4", 2000, 4096)]
    #[case("2.0_4.00", 2000, 4096)]
    #[case("64_512", 64000, 524_288)]
    fn sizes_parse(#[case] text: &str, #[case] cpu_milli: u32, #[case] mem_mib: u32) {
        assert_eq!(
            text.parse::<Flavour>().unwrap(),
            Flavour::new(cpu_milli, mem_mib)
        );
    }

    #[rstest]
    #[case::empty("")]
    #[case::no_underscore("2")]
    #[case::units("2c_4Gi")]
    #[case::negative("-1_2")]
    #[case::too_fine("0.0001_1")]
    #[case::three_parts("1_2_3")]
    #[case::huge("99999999999999999999_1")]
    fn sizes_that_are_not_numbers_are_refused(#[case] text: &str) {
        assert!(text.parse::<Flavour>().is_err(), "{text}");
    }

    proptest! {
        #[test]
        fn rounding_gives_the_smallest_sold_flavour_that_fits(
            cpu_milli in 1u64..70_000,
            mem_bytes in 1u64..(600 * GIB),
        ) {
            let need = demand(cpu_milli, mem_bytes);
            match round_up(need) {
                Some(size) => {
                    prop_assert!(size.is_sold());
                    prop_assert!(size.fits(need));
                    let smaller_fits = FLAVOURS.iter().take_while(|f| **f < size).any(|f| f.fits(need));
                    prop_assert!(!smaller_fits);
                }
                None => prop_assert!(FLAVOURS.iter().all(|f| !f.fits(need))),
            }
        }

        #[test]
        fn a_sold_flavour_rounds_to_itself_and_its_name_round_trips(index in 0usize..100) {
            let size = FLAVOURS[index % FLAVOURS.len()];
            let need = demand(u64::from(size.cpu_milli), u64::from(size.mem_mib) * MIB);
            prop_assert_eq!(round_up(need), Some(size));
            prop_assert_eq!(size.to_string().parse::<Flavour>(), Ok(size));
        }
    }
}
