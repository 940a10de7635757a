//! Exact arithmetic for prices: a price is a `rust_decimal::Decimal`
//! (mantissa / 10^scale), and every amount is computed as one integer
//! fraction in `i128` and rounded once. No floating point anywhere.

use rust_decimal::Decimal;

/// Most decimal places a price, VAT rate or restriction may carry. Keeps
/// every product below `i128::MAX` (see `MAX_PRICE_UNITS`).
pub const MAX_SCALE: u32 = 6;

/// Largest price per unit (per kWh, per hour, per session).
pub const MAX_PRICE_UNITS: i64 = 1_000_000;

/// Round `num / den` to the nearest integer, halves away from zero
/// (commercial rounding). `den` must be positive.
pub fn div_round_half_up(num: i128, den: i128) -> Option<i128> {
    if den <= 0 {
        return None;
    }
    let mag = num.checked_abs()?;
    let q = mag.checked_mul(2)?.checked_add(den)? / den.checked_mul(2)?;
    Some(if num < 0 { -q } else { q })
}

/// Ceiling division for non-negative `num` and positive `den`.
pub fn div_ceil(num: i64, den: i64) -> Option<i64> {
    if den <= 0 || num < 0 {
        return None;
    }
    let q = num / den;
    Some(if num % den == 0 { q } else { q.checked_add(1)? })
}

/// `10^exp` as `i128`.
pub fn pow10(exp: u32) -> Option<i128> {
    10i128.checked_pow(exp)
}

/// `quantity × price / unit` in minor units of a currency with `exponent`
/// digits, rounded half-up. `unit` is the quantity per priced unit
/// (1000 Wh per kWh, 3600 s per hour, 1 per session).
pub fn amount_minor(quantity: i64, price: Decimal, unit: i64, exponent: u8) -> Option<i128> {
    let num = i128::from(quantity)
        .checked_mul(price.mantissa())?
        .checked_mul(pow10(u32::from(exponent))?)?;
    let den = i128::from(unit).checked_mul(pow10(price.scale())?)?;
    div_round_half_up(num, den)
}

/// Denominator of an exact VAT amount: `amount × percent / 100` in minor
/// units is `vat_numerator(..) / VAT_DENOMINATOR`, so amounts at different
/// rates add up exactly before the one rounding.
pub const VAT_DENOMINATOR: i128 = 100 * 1_000_000;

pub fn vat_numerator(amount: i128, percent: Decimal) -> Option<i128> {
    amount
        .checked_mul(percent.mantissa())?
        .checked_mul(pow10(MAX_SCALE.checked_sub(percent.scale())?)?)
}

/// A non-negative decimal with at most `max_scale` places as an integer in
/// units of `10^-shift` (e.g. kWh with shift 3 gives Wh). `None` when it has
/// more places than `shift` allows, is negative or does not fit.
pub fn to_scaled_int(d: Decimal, shift: u32) -> Option<i64> {
    if d.is_sign_negative() || d.scale() > shift {
        return None;
    }
    let v = d.mantissa().checked_mul(pow10(shift - d.scale())?)?;
    i64::try_from(v).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn d(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    #[test]
    fn halves_round_away_from_zero() {
        assert_eq!(div_round_half_up(25, 10), Some(3)); // 2.5 -> 3
        assert_eq!(div_round_half_up(35, 10), Some(4)); // 3.5 -> 4
        assert_eq!(div_round_half_up(249, 100), Some(2));
        assert_eq!(div_round_half_up(24, 10), Some(2));
        assert_eq!(div_round_half_up(-25, 10), Some(-3));
        assert_eq!(div_round_half_up(-24, 10), Some(-2));
        assert_eq!(div_round_half_up(0, 7), Some(0));
        assert_eq!(div_round_half_up(1, 0), None);
    }

    #[test]
    fn amounts_are_exact_fractions() {
        // 20 kWh at 0.25 EUR/kWh = 5.00 EUR.
        assert_eq!(amount_minor(20_000, d("0.25"), 1000, 2), Some(500));
        // 115.2 Wh billed as 116 Wh at 0.25 = 0.029 EUR -> 0.03 EUR.
        assert_eq!(amount_minor(116, d("0.25"), 1000, 2), Some(3));
        // 60 s at 1.998 EUR/h (= 0.0333 EUR/min) = 0.0333 EUR -> 0.03 EUR.
        assert_eq!(amount_minor(60, d("1.998"), 3600, 2), Some(3));
        // 0.125 EUR is a tie and goes up: 500 Wh at 0.25 EUR/kWh = 0.13 EUR.
        assert_eq!(amount_minor(500, d("0.25"), 1000, 2), Some(13));
        // 15 % of 2.50 EUR is exactly 0.375 EUR = 37.5 cents, kept exact.
        assert_eq!(vat_numerator(250, d("15")), Some(37_500_000 * 100));
        assert_eq!(vat_numerator(250, d("5.2")), Some(250 * 52 * 100_000));
        // JPY has no minor unit: 12.5 kWh at 30 JPY = 375 JPY.
        assert_eq!(amount_minor(12_500, d("30"), 1000, 0), Some(375));
    }

    #[test]
    fn scaled_ints() {
        assert_eq!(to_scaled_int(d("20"), 3), Some(20_000));
        assert_eq!(to_scaled_int(d("1.5"), 3), Some(1_500));
        assert_eq!(to_scaled_int(d("1.0005"), 3), None);
        assert_eq!(to_scaled_int(d("-1"), 3), None);
        assert_eq!(div_ceil(480, 300), Some(2));
        assert_eq!(div_ceil(600, 300), Some(2));
        assert_eq!(div_ceil(0, 300), Some(0));
    }
}
