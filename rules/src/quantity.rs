//! Kubernetes resource quantities, parsed exactly.
//!
//! The grammar is Kubernetes' own (`k8s.io/apimachinery/pkg/api/resource`):
//!
//! ```text
//! quantity ::= sign? number suffix
//! number   ::= digits | digits "." digits? | "." digits
//! suffix   ::= "" | "n" | "u" | "m" | "k" | "M" | "G" | "T" | "P" | "E"   (decimal SI)
//!            | "Ki" | "Mi" | "Gi" | "Ti" | "Pi" | "Ei"                     (binary SI)
//!            | ("e" | "E") sign? digits                                    (decimal exponent)
//! ```
//!
//! `E` alone is exa (10^18), `E3` an exponent. Kubernetes has no upper-case `K`: `1K` is
//! refused with a hint to write `1k` or `1Ki`. Values are kept as an exact decimal (no floating
//! point) and converted the way Kubernetes converts them: a cpu value to whole millicores
//! rounding up (`0.0001` is `1m`, as `MilliValue()`), memory to whole bytes rounding up (as
//! `Value()`). Negative quantities are refused (Kubernetes refuses them for resources).
//!
//! ```
//! use burst_rules::quantity::Quantity;
//!
//! assert_eq!(Quantity::parse("0.5").unwrap().millis().unwrap(), 500);
//! assert_eq!(Quantity::parse("1.5Gi").unwrap().units().unwrap(), 1_610_612_736);
//! assert_eq!(Quantity::parse("1536Mi").unwrap().whole_gib(), None);
//! assert!(Quantity::parse("1K").is_err());
//! ```

use std::fmt;

use crate::{Error, Result};

/// One GiB in bytes.
pub const GIB: u64 = 1 << 30;
/// One MiB in bytes.
pub const MIB: u64 = 1 << 20;

/// A non-negative quantity, exactly: `mantissa × 10^exp10`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quantity {
    mantissa: u128,
    exp10: i32,
}

/// Digits of a mantissa that still fit a `u128` whatever they are.
const MAX_DIGITS: usize = 38;

impl Quantity {
    /// Parses a quantity as Kubernetes writes them.
    pub fn parse(text: &str) -> Result<Self> {
        let bad = |reason: String| Error::Quantity {
            value: text.to_string(),
            reason,
        };
        let (negative, rest) = match text.as_bytes().first() {
            Some(b'-') => (true, &text[1..]),
            Some(b'+') => (false, &text[1..]),
            _ => (false, text),
        };
        let number_len = rest
            .bytes()
            .position(|b| !(b.is_ascii_digit() || b == b'.'))
            .unwrap_or(rest.len());
        let (number, suffix) = rest.split_at(number_len);
        let (int, frac) = number.split_once('.').unwrap_or((number, ""));
        if int.is_empty() && frac.is_empty() {
            return Err(bad("is not a Kubernetes quantity: it has no digits".into()));
        }
        if frac.contains('.') {
            return Err(bad(
                "is not a Kubernetes quantity: it has two decimal points".into(),
            ));
        }
        let (mut exp10, binary) = suffix_of(suffix).map_err(bad)?;
        // Leading zeros and trailing fractional zeros carry no value; dropping them keeps long
        // spellings of small numbers ("0.000…1", "1.000…0") within the mantissa's range.
        let frac = frac.trim_end_matches('0');
        let digits = format!("{int}{frac}");
        let digits = digits.trim_start_matches('0');
        if digits.len() > MAX_DIGITS {
            return Err(bad(format!(
                "has more than {MAX_DIGITS} significant digits"
            )));
        }
        let frac_len = i32::try_from(frac.len()).map_err(|_| bad("is too long".into()))?;
        exp10 = exp10
            .checked_sub(frac_len)
            .ok_or_else(|| bad("is out of range".into()))?;
        let mut mantissa: u128 = if digits.is_empty() {
            0
        } else {
            digits.parse().map_err(|_| bad("is out of range".into()))?
        };
        if negative && mantissa != 0 {
            return Err(bad("is negative; resources must not be".into()));
        }
        mantissa = mantissa
            .checked_mul(1024u128.pow(binary))
            .ok_or_else(|| bad("is too large".into()))?;
        Ok(Self { mantissa, exp10 })
    }

    /// Whether the quantity is zero.
    pub fn is_zero(&self) -> bool {
        self.mantissa == 0
    }

    /// The value in thousandths (millicores for cpu), rounded up; `None` past `u64::MAX`.
    pub fn millis(&self) -> Option<u64> {
        self.scaled_ceil(3)
    }

    /// The value in units (bytes for memory), rounded up; `None` past `u64::MAX`.
    pub fn units(&self) -> Option<u64> {
        self.scaled_ceil(0)
    }

    /// The value in whole units, or `None` when it is fractional or past `u128::MAX`.
    pub fn exact_units(&self) -> Option<u128> {
        self.exact_scaled(0)
    }

    /// The value in whole thousandths, or `None` when it has a finer fraction or is past
    /// `u128::MAX`.
    pub fn exact_millis(&self) -> Option<u128> {
        self.exact_scaled(3)
    }

    /// The value times `factor`, or `None` past the mantissa's range.
    pub fn times(&self, factor: u128) -> Option<Self> {
        Some(Self {
            mantissa: self.mantissa.checked_mul(factor)?,
            exp10: self.exp10,
        })
    }

    /// `value × 10^scale` when it is whole and fits a `u128`.
    fn exact_scaled(&self, scale: i32) -> Option<u128> {
        let exp = self.exp10.checked_add(scale)?;
        if exp >= 0 {
            return self.mantissa.checked_mul(pow10(exp)?);
        }
        let Some(den) = pow10(-exp) else {
            // Below 10^-38 only zero is whole.
            return (self.mantissa == 0).then_some(0);
        };
        self.mantissa
            .is_multiple_of(den)
            .then(|| self.mantissa / den)
    }

    /// The number of GiB when the value is a whole multiple of 1 GiB (`10Gi`, `1024Mi`,
    /// `0`), else `None` (`1536Mi`, `1G`).
    pub fn whole_gib(&self) -> Option<u64> {
        let bytes = self.exact_units()?;
        let gib = u128::from(GIB);
        if bytes.is_multiple_of(gib) {
            u64::try_from(bytes / gib).ok()
        } else {
            None
        }
    }

    /// `ceil(value × 10^scale)` when it fits a `u64`.
    fn scaled_ceil(&self, scale: i32) -> Option<u64> {
        let exp = self.exp10.checked_add(scale)?;
        let value = if exp >= 0 {
            self.mantissa.checked_mul(pow10(exp)?)?
        } else {
            match pow10(-exp) {
                Some(den) => self.mantissa.div_ceil(den),
                // NB: a u128 mantissa is below 10^39, so past 10^-38 any non-zero value is
                // a positive fraction below one, which rounds up to one.
                None => u128::from(self.mantissa != 0),
            }
        };
        u64::try_from(value).ok()
    }
}

impl std::str::FromStr for Quantity {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Self::parse(s)
    }
}

/// `10^exp` when it fits a `u128`.
fn pow10(exp: i32) -> Option<u128> {
    10u128.checked_pow(u32::try_from(exp).ok()?)
}

/// The decimal exponent and the power of 1024 a suffix stands for.
fn suffix_of(suffix: &str) -> std::result::Result<(i32, u32), String> {
    let decimal = |e| Ok((e, 0));
    let binary = |b| Ok((0, b));
    match suffix {
        "" => decimal(0),
        "n" => decimal(-9),
        "u" => decimal(-6),
        "m" => decimal(-3),
        "k" => decimal(3),
        "M" => decimal(6),
        "G" => decimal(9),
        "T" => decimal(12),
        "P" => decimal(15),
        "E" => decimal(18),
        "Ki" => binary(1),
        "Mi" => binary(2),
        "Gi" => binary(3),
        "Ti" => binary(4),
        "Pi" => binary(5),
        "Ei" => binary(6),
        "K" => Err("is not a Kubernetes quantity: there is no suffix \"K\"; \
                    write k for 1000 or Ki for 1024"
            .into()),
        _ => {
            let exponent = suffix
                .strip_prefix('e')
                .or_else(|| suffix.strip_prefix('E'))
                .filter(|e| {
                    let digits = e.strip_prefix(['+', '-']).unwrap_or(e);
                    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
                });
            match exponent {
                Some(e) => e
                    .parse::<i32>()
                    .ok()
                    .filter(|e| e.abs() <= 1000)
                    .map(|e| (e, 0))
                    .ok_or_else(|| "has an exponent out of range".to_string()),
                None => Err(format!(
                    "is not a Kubernetes quantity: unknown suffix {suffix:?} (use m, k, M, G, T, \
                     P, E, Ki, Mi, Gi, Ti, Pi, Ei or an exponent such as e3)"
                )),
            }
        }
    }
}

/// Millicores as Kubernetes writes a cpu quantity: `250m`, `2`.
pub fn format_cpu(millicores: u64) -> String {
    if millicores.is_multiple_of(1000) {
        format!("{}", millicores / 1000)
    } else {
        format!("{millicores}m")
    }
}

/// Millicores as decimal cores: `0.25`, `2`, `1.5`.
pub fn format_cores(millicores: u64) -> String {
    decimal(u128::from(millicores), 1000)
}

/// Bytes as Kubernetes would write them: the largest binary suffix that divides them exactly
/// (`512Mi`, `10Gi`), else plain bytes.
pub fn format_memory(bytes: u64) -> String {
    const SUFFIXES: [(&str, u64); 4] = [("Ti", 1 << 40), ("Gi", GIB), ("Mi", MIB), ("Ki", 1 << 10)];
    SUFFIXES
        .iter()
        .find(|(_, unit)| bytes != 0 && bytes.is_multiple_of(*unit))
        .map(|(suffix, unit)| format!("{}{suffix}", bytes / unit))
        .unwrap_or_else(|| bytes.to_string())
}

/// Bytes as decimal GiB: `0.5`, `16`, `1.5`; rounded up to thousandths when longer.
pub fn format_gib(bytes: u64) -> String {
    decimal(u128::from(bytes), u128::from(GIB))
}

/// `value / unit` as a short decimal, rounded up to thousandths.
fn decimal(value: u128, unit: u128) -> String {
    Thousandths((value * 1000).div_ceil(unit)).to_string()
}

struct Thousandths(u128);

impl fmt::Display for Thousandths {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (whole, frac) = (self.0 / 1000, self.0 % 1000);
        if frac == 0 {
            write!(f, "{whole}")
        } else {
            let frac = format!("{frac:03}");
            write!(f, "{whole}.{}", frac.trim_end_matches('0'))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rstest::rstest;

    #[rstest]
    #[case::millicores("250m", 250)]
    #[case::whole("2", 2000)]
    #[case::decimal("0.5", 500)]
    #[case::leading_dot(".25", 250)]
    #[case::trailing_dot("1.", 1000)]
    #[case::sub_milli_rounds_up("0.0001", 1)]
    #[case::micro_rounds_up("100u", 1)]
    #[case::nano("1000000n", 1)]
    #[case::exponent("1e3", 1_000_000)]
    #[case::negative_exponent("25e-2", 250)]
    #[case::plus_sign("+1", 1000)]
    #[case::kilo("1k", 1_000_000)]
    #[case::zero("0", 0)]
    #[case::negative_zero("-0", 0)]
    #[case::long_fraction("0.50000000000000000000000000000000000000000000", 500)]
    #[case::tiny_rounds_up("0.000000000000000000000000000000000000000000001", 1)]
    fn cpu_quantities_become_millicores_rounding_up(#[case] text: &str, #[case] millis: u64) {
        assert_eq!(Quantity::parse(text).unwrap().millis(), Some(millis));
    }

    #[rstest]
    #[case::mebibytes("512Mi", 512 * MIB)]
    #[case::gibibytes("10Gi", 10 * GIB)]
    #[case::kibibytes("1Ki", 1024)]
    #[case::tebibytes("1Ti", 1 << 40)]
    #[case::pebibytes("1Pi", 1 << 50)]
    #[case::decimal_kilo("1k", 1000)]
    #[case::decimal_mega("128M", 128_000_000)]
    #[case::decimal_giga("1G", 1_000_000_000)]
    #[case::decimal_tera("1T", 1_000_000_000_000)]
    #[case::decimal_peta("2P", 2_000_000_000_000_000)]
    #[case::exa("1E", 1_000_000_000_000_000_000)]
    #[case::exponent_upper("1E3", 1000)]
    #[case::exponent_lower("129e6", 129_000_000)]
    #[case::fractional_gibibytes("1.5Gi", 1_610_612_736)]
    #[case::plain_bytes("1073741824", GIB)]
    #[case::fraction_of_a_byte_rounds_up("0.5", 1)]
    #[case::milli_bytes_round_up("1500m", 2)]
    fn memory_quantities_become_bytes_rounding_up(#[case] text: &str, #[case] bytes: u64) {
        assert_eq!(Quantity::parse(text).unwrap().units(), Some(bytes));
    }

    #[rstest]
    #[case::upper_k("1K", "k for 1000 or Ki for 1024")]
    #[case::unknown_suffix("1Gb", "unknown suffix \"Gb\"")]
    #[case::lower_binary("1gi", "unknown suffix")]
    #[case::spaces(" 1", "no digits")]
    #[case::inner_space("1 Gi", "unknown suffix \" Gi\"")]
    #[case::empty("", "no digits")]
    #[case::only_dot(".", "no digits")]
    #[case::two_dots("1.2.3", "two decimal points")]
    #[case::negative("-1", "negative")]
    #[case::bare_e("1e", "unknown suffix")]
    #[case::exponent_then_suffix("1e3Gi", "unknown suffix")]
    #[case::huge_exponent("1e99999", "out of range")]
    #[case::too_many_digits("123456789012345678901234567890123456789", "significant digits")]
    #[case::overflowing_binary("999999999999999999999999999999999999Ei", "too large")]
    fn malformed_quantities_say_what_is_wrong(#[case] text: &str, #[case] reason: &str) {
        let err = Quantity::parse(text).unwrap_err().to_string();
        assert!(err.contains(reason), "{err}");
    }

    #[test]
    fn a_mantissa_of_exactly_the_most_significant_digits_still_parses() {
        let most = "9".repeat(MAX_DIGITS);
        let q = Quantity::parse(&most).unwrap();
        assert_eq!(q.exact_units(), Some(most.parse::<u128>().unwrap()));
    }

    #[rstest]
    #[case::zero("0e-50", Some(0))]
    #[case::a_tiny_fraction("1e-50", None)]
    fn below_ten_to_the_minus_38_only_zero_is_whole(
        #[case] text: &str,
        #[case] units: Option<u128>,
    ) {
        assert_eq!(Quantity::parse(text).unwrap().exact_units(), units);
    }

    #[rstest]
    #[case::zero("0", true)]
    #[case::negative_zero("-0", true)]
    #[case::zero_with_a_suffix("0Gi", true)]
    #[case::zero_with_a_fraction("0.000", true)]
    #[case::a_millicore("1m", false)]
    #[case::less_than_a_millicore("0.0001", false)]
    fn only_a_spelling_of_nothing_is_zero(#[case] text: &str, #[case] zero: bool) {
        assert_eq!(Quantity::parse(text).unwrap().is_zero(), zero);
    }

    #[test]
    fn values_past_u64_are_none_not_wrapped() {
        let q = Quantity::parse("100E").unwrap();
        assert_eq!(q.units(), None);
        assert_eq!(Quantity::parse("1e30").unwrap().millis(), None);
    }

    #[rstest]
    #[case::gibibytes("10Gi", Some(10))]
    #[case::mebibytes_of_a_whole_gib("1024Mi", Some(1))]
    #[case::zero("0", Some(0))]
    #[case::one_and_a_half("1536Mi", None)]
    #[case::decimal_giga("1G", None)]
    #[case::fractional("1.5Gi", None)]
    #[case::exact_decimal("1.0Gi", Some(1))]
    #[case::milli("1m", None)]
    #[case::bytes("1073741824", Some(1))]
    #[case::tebibyte("1Ti", Some(1024))]
    fn whole_gib_only_for_exact_multiples(#[case] text: &str, #[case] gib: Option<u64>) {
        assert_eq!(Quantity::parse(text).unwrap().whole_gib(), gib);
    }

    #[rstest]
    #[case(250, "250m", "0.25")]
    #[case(2000, "2", "2")]
    #[case(1500, "1500m", "1.5")]
    #[case(1, "1m", "0.001")]
    fn cpu_formats(#[case] millis: u64, #[case] quantity: &str, #[case] cores: &str) {
        assert_eq!(format_cpu(millis), quantity);
        assert_eq!(format_cores(millis), cores);
    }

    #[rstest]
    #[case(512 * MIB, "512Mi", "0.5")]
    #[case(10 * GIB, "10Gi", "10")]
    #[case(1536 * MIB, "1536Mi", "1.5")]
    #[case(1000, "1000", "0.001")]
    #[case(0, "0", "0")]
    // The ends of the suffix table (mutants of its shifts survived without them).
    #[case(2048, "2Ki", "0.001")]
    #[case(2 << 40, "2Ti", "2048")]
    fn memory_formats(#[case] bytes: u64, #[case] quantity: &str, #[case] gib: &str) {
        assert_eq!(format_memory(bytes), quantity);
        assert_eq!(format_gib(bytes), gib);
    }

    proptest! {
        #[test]
        fn formatted_memory_parses_back_to_the_same_bytes(bytes in 0u64..(1 << 50)) {
            let q = Quantity::parse(&format_memory(bytes)).unwrap();
            prop_assert_eq!(q.units(), Some(bytes));
        }

        #[test]
        fn formatted_cpu_parses_back_to_the_same_millicores(millis in 0u64..10_000_000) {
            let q = Quantity::parse(&format_cpu(millis)).unwrap();
            prop_assert_eq!(q.millis(), Some(millis));
        }

        #[test]
        fn parsing_never_panics(text in "[-+]?[0-9.]{0,50}([numkMGTPEe]|[KMGTPE]i|[eE][-+]?[0-9]{0,5})?") {
            let _ = Quantity::parse(&text).map(|q| (q.millis(), q.units(), q.whole_gib()));
        }
    }
}
