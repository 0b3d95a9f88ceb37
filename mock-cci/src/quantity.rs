//! Kubernetes resource quantities (`500m`, `1Gi`, `1.5`, `2e3`), parsed exactly.
//!
//! Pure functions. A quantity is kept in nano-units (10⁻⁹) as a `u128`, which holds every
//! value a pod could sensibly ask for; anything larger is refused as too large rather than
//! rounded, so a huge number never panics and never wraps.

/// A non-negative quantity in nano-units (`1` is 10⁻⁹ of the base unit).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Quantity(u128);

const NANO: u128 = 1_000_000_000;
/// Longest accepted quantity string; Kubernetes' own limit on digits is of the same order.
const MAX_LEN: usize = 64;
/// The largest decimal exponent accepted in `1e{N}` notation.
const MAX_EXPONENT: i32 = 24;

impl Quantity {
    /// The quantity in nano-units.
    pub fn nanos(self) -> u128 {
        self.0
    }

    /// In thousandths of the unit, rounded up (CPU millicores).
    pub fn millis_ceil(self) -> u64 {
        u64::try_from(self.0.div_ceil(1_000_000)).unwrap_or(u64::MAX)
    }

    /// In whole units, rounded up (memory bytes).
    pub fn units_ceil(self) -> u64 {
        u64::try_from(self.0.div_ceil(NANO)).unwrap_or(u64::MAX)
    }

    /// Whether it is zero.
    pub fn is_zero(self) -> bool {
        self.0 == 0
    }
}

impl std::str::FromStr for Quantity {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse(s).map(Quantity)
    }
}

/// Parses a quantity; the error is a phrase naming what is wrong.
fn parse(s: &str) -> Result<u128, String> {
    let refuse = || {
        format!(
            "{s:?} is not a quantity: write a number with an optional suffix, e.g. \"500m\", \"2\", \"1Gi\", \"512Mi\""
        )
    };
    if s.is_empty() || s.len() > MAX_LEN {
        return Err(refuse());
    }
    let body = match s.as_bytes()[0] {
        b'-' => {
            return Err(format!(
                "{s:?} is negative: quantities must not be negative"
            ));
        }
        b'+' => &s[1..],
        _ => s,
    };
    let number_len = body
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(body.len());
    let (number, suffix) = body.split_at(number_len);
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if (whole.is_empty() && fraction.is_empty()) || fraction.contains('.') {
        return Err(refuse());
    }
    // Multiplier as (power of ten, power of two) applied to the number, in nano-units.
    let (ten, two): (i32, u32) = match suffix {
        "" => (0, 0),
        "n" => (-9, 0),
        "u" => (-6, 0),
        "m" => (-3, 0),
        "k" => (3, 0),
        "M" => (6, 0),
        "G" => (9, 0),
        "T" => (12, 0),
        "P" => (15, 0),
        "E" => (18, 0),
        "Ki" => (0, 10),
        "Mi" => (0, 20),
        "Gi" => (0, 30),
        "Ti" => (0, 40),
        "Pi" => (0, 50),
        "Ei" => (0, 60),
        exp if exp.starts_with(['e', 'E']) => {
            let digits = &exp[1..];
            let unsigned = digits.strip_prefix(['+', '-']).unwrap_or(digits);
            if unsigned.is_empty() || !unsigned.bytes().all(|b| b.is_ascii_digit()) {
                return Err(refuse());
            }
            let value: i32 = digits
                .parse()
                .ok()
                .filter(|v: &i32| v.abs() <= MAX_EXPONENT)
                .ok_or_else(|| format!("{s:?}: the exponent is out of range"))?;
            (value, 0)
        }
        _ => return Err(refuse()),
    };
    let too_large = || format!("{s:?} is too large");
    let digits = format!("{whole}{fraction}");
    let digits = digits.trim_start_matches('0');
    if digits.len() > 36 {
        return Err(too_large());
    }
    let mantissa: u128 = if digits.is_empty() {
        0
    } else {
        digits.parse().map_err(|_| refuse())?
    };
    // value = mantissa × 10^(ten − fraction_len + 9) × 2^two
    let scale = ten + 9 - i32::try_from(fraction.len()).map_err(|_| refuse())?;
    let mut value = mantissa
        .checked_mul(1u128.checked_shl(two).ok_or_else(too_large)?)
        .ok_or_else(too_large)?;
    if scale >= 0 {
        let factor = 10u128
            .checked_pow(scale.unsigned_abs())
            .ok_or_else(too_large)?;
        value = value.checked_mul(factor).ok_or_else(too_large)?;
    } else {
        // NB: below a nano-unit Kubernetes rounds up too.
        match 10u128.checked_pow(scale.unsigned_abs()) {
            Some(divisor) => value = value.div_ceil(divisor),
            None => value = u128::from(value != 0),
        }
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case::millicores("500m", 500_000_000)]
    #[case::whole("2", 2_000_000_000)]
    #[case::decimal("0.25", 250_000_000)]
    #[case::leading_dot(".5", 500_000_000)]
    #[case::trailing_dot("1.", 1_000_000_000)]
    #[case::plus("+1", 1_000_000_000)]
    #[case::kilo("1k", 1_000_000_000_000)]
    #[case::exponent("2e3", 2_000_000_000_000)]
    #[case::negative_exponent("5e-1", 500_000_000)]
    #[case::nano("1n", 1)]
    #[case::below_a_nano_rounds_up("0.1n", 1)]
    #[case::zero("0", 0)]
    fn decimal_quantities_parse_exactly(#[case] text: &str, #[case] nanos: u128) {
        assert_eq!(text.parse::<Quantity>().unwrap().nanos(), nanos);
    }

    #[rstest]
    #[case::gibibyte("1Gi", 1 << 30)]
    #[case::mebibytes("1024Mi", 1 << 30)]
    #[case::half_gibibyte("0.5Gi", 1 << 29)]
    #[case::kibibytes("3Ki", 3 * 1024)]
    #[case::plain_bytes("1000", 1000)]
    #[case::megabytes("1M", 1_000_000)]
    fn memory_quantities_give_bytes(#[case] text: &str, #[case] bytes: u64) {
        assert_eq!(text.parse::<Quantity>().unwrap().units_ceil(), bytes);
    }

    #[test]
    fn cpu_rounds_up_to_a_millicore() {
        assert_eq!("0.0001".parse::<Quantity>().unwrap().millis_ceil(), 1);
        assert_eq!("1500m".parse::<Quantity>().unwrap().millis_ceil(), 1500);
    }

    #[rstest]
    #[case::empty("")]
    #[case::negative("-1")]
    #[case::letters("abc")]
    #[case::unknown_suffix("1Xi")]
    #[case::two_dots("1.2.3")]
    #[case::only_dot(".")]
    #[case::space("1 Gi")]
    #[case::bare_exponent("1e")]
    #[case::huge_exponent("1e99999999999")]
    #[case::too_many_digits("123456789012345678901234567890123456789")]
    #[case::too_large_binary("999999999999999999Ei")]
    #[case::unicode("１Gi")]
    fn nonsense_is_refused_without_panicking(#[case] text: &str) {
        assert!(text.parse::<Quantity>().is_err(), "{text}");
    }
}
