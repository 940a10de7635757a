//! The ad hoc price shown on the charger before a session starts (EU AFIR
//! Art. 5: price per kWh, per minute, per session and any other component),
//! e.g. `0.59 EUR/kWh + 0.10 EUR/min after 60 min, 1.00 EUR per session,
//! incl. 19% VAT`. Prices are shown including VAT, with the currency's
//! decimals and up to two more when the price needs them.
//!
//! It shows what applies to a session starting at the given instant: the
//! first matching element per dimension with no energy, duration, power or
//! current yet; a TIME or PARKING_TIME price that starts after a minimum
//! duration is shown with "after N min".

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;

use super::exact::{div_round_half_up, pow10};
use super::restriction::State;
use super::tariff::{Dimension, PriceComponent, Tariff};

/// Longest display string: two lines of a typical charger screen.
pub const MAX_DISPLAY_CHARS: usize = 120;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DisplayError {
    #[error("the price display would be {0} characters, more than {MAX_DISPLAY_CHARS}")]
    TooLong(usize),
    #[error("a price is out of range for display")]
    OutOfRange,
}

impl DisplayError {
    pub fn code(&self) -> &'static str {
        match self {
            DisplayError::TooLong(_) => "price_display_too_long",
            DisplayError::OutOfRange => "amount_out_of_range",
        }
    }
}

/// `price × (1 + vat/100) / per` with the currency's decimals, plus up to
/// two more if needed, rounded half-up.
fn format_price(price: Decimal, vat: Option<Decimal>, per: i64, exponent: u8) -> Option<String> {
    let vat = vat.unwrap_or(Decimal::ZERO);
    let places = u32::from(exponent) + 2;
    let vat_one = 100i128.checked_mul(pow10(vat.scale())?)?;
    let num = price
        .mantissa()
        .checked_mul(vat_one.checked_add(vat.mantissa())?)?
        .checked_mul(pow10(places)?)?;
    let den = pow10(price.scale())?
        .checked_mul(vat_one)?
        .checked_mul(i128::from(per))?;
    let n = div_round_half_up(num, den)?;
    let unit = pow10(places)?;
    let mut frac = format!("{:0width$}", n % unit, width = places as usize);
    while frac.len() > usize::from(exponent) && frac.ends_with('0') {
        frac.pop();
    }
    Some(if frac.is_empty() {
        format!("{}", n / unit)
    } else {
        format!("{}.{frac}", n / unit)
    })
}

fn minutes(secs: i64) -> String {
    if secs % 60 == 0 {
        format!("{} min", secs / 60)
    } else {
        format!("{secs} s")
    }
}

/// The component of `dim` that a new session pays first, and the session
/// duration from which it applies (0 = from the start). Free components are
/// skipped in favour of a later paid one.
fn first_paid<'a>(
    tariff: &'a Tariff,
    dim: Dimension,
    start: &State,
) -> Option<(&'a PriceComponent, i64)> {
    let mut thresholds: Vec<i64> = tariff
        .elements
        .iter()
        .filter_map(|e| e.restrictions.duration_s.min)
        .collect();
    thresholds.push(0);
    thresholds.sort_unstable();
    thresholds.dedup();
    thresholds.into_iter().find_map(|d| {
        let state = State {
            duration_s: d,
            ..*start
        };
        tariff
            .active(dim, &state)
            .filter(|(_, c)| !c.price.is_zero())
            .map(|(_, c)| (c, d))
    })
}

/// The price display for a session starting at `at`.
pub fn price_display(tariff: &Tariff, at: DateTime<Utc>) -> Result<String, DisplayError> {
    let cur = tariff.currency;
    let exp = cur.exponent();
    let start = State {
        local: tariff.time_zone.local(at),
        duration_s: 0,
        energy_wh: 0,
        power: None,
        current_ma: None,
    };
    let mut shown: Vec<&PriceComponent> = Vec::new();
    let mut metered: Vec<String> = Vec::new();
    for (dim, per, suffix) in [
        (Dimension::Energy, 1, "/kWh"),
        (Dimension::Time, 60, "/min"),
        (Dimension::ParkingTime, 60, "/min idle"),
    ] {
        if let Some((c, after)) = first_paid(tariff, dim, &start) {
            let p =
                format_price(c.price, c.vat_percent, per, exp).ok_or(DisplayError::OutOfRange)?;
            let mut text = format!("{p} {cur}{suffix}");
            if after > 0 {
                text.push_str(&format!(" after {}", minutes(after)));
            }
            metered.push(text);
            shown.push(c);
        }
    }
    let mut sections: Vec<String> = Vec::new();
    if !metered.is_empty() {
        sections.push(metered.join(" + "));
    }
    if let Some((_, c)) = tariff
        .active(Dimension::Flat, &start)
        .filter(|(_, c)| !c.price.is_zero())
    {
        let p = format_price(c.price, c.vat_percent, 1, exp).ok_or(DisplayError::OutOfRange)?;
        sections.push(format!("{p} {cur} per session"));
        shown.push(c);
    }
    if sections.is_empty() {
        sections.push("free of charge".to_string());
    }
    let vat = {
        let rates: Vec<Option<Decimal>> = shown.iter().map(|c| c.vat_percent).collect();
        match rates.first() {
            Some(Some(r)) if rates.iter().all(|x| *x == Some(*r)) => {
                Some(format!("incl. {}% VAT", r.normalize()))
            }
            _ if rates.iter().any(Option::is_some) => Some("incl. VAT".to_string()),
            _ => None,
        }
    };
    let mut limits: Vec<String> = Vec::new();
    if let Some(min) = tariff.min_price {
        limits.push(format!("min. {}", min.incl_vat));
    }
    if let Some(max) = tariff.max_price {
        limits.push(format!("max. {}", max.incl_vat));
    }
    let full: Vec<String> = sections
        .iter()
        .chain(limits.iter())
        .chain(vat.iter())
        .cloned()
        .collect();
    let text = full.join(", ");
    if text.chars().count() <= MAX_DISPLAY_CHARS {
        return Ok(text);
    }
    // The limits are the least needed part; drop them before giving up.
    let short = sections
        .iter()
        .chain(vat.iter())
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    let len = short.chars().count();
    if len <= MAX_DISPLAY_CHARS {
        Ok(short)
    } else {
        Err(DisplayError::TooLong(len))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tariff(elements: &str, extra: &str) -> Tariff {
        Tariff::from_json(&format!(
            r#"{{"id":"t","version":1,"currency":"EUR","time_zone":"Europe/Berlin"{extra},"elements":{elements}}}"#
        ))
        .unwrap()
    }

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().to_utc()
    }

    #[test]
    fn energy_time_after_an_hour_and_flat() {
        // 0.4958 × 1.19 = 0.590002 -> 0.59; 5.0420 / 60 × 1.19 = 0.10000 -> 0.10;
        // 0.8403 × 1.19 = 0.999957 -> 1.00.
        let t = tariff(
            r#"[{"price_components":[{"type":"ENERGY","price":"0.4958","vat":"19"},{"type":"FLAT","price":"0.8403","vat":"19"}]},
                {"price_components":[{"type":"TIME","price":"5.042","vat":"19"}],"restrictions":{"min_duration":3600}}]"#,
            "",
        );
        assert_eq!(
            price_display(&t, at("2025-06-02T10:00:00Z")).unwrap(),
            "0.59 EUR/kWh + 0.10 EUR/min after 60 min, 1.00 EUR per session, incl. 19% VAT"
        );
    }

    #[test]
    fn extra_decimals_only_when_needed_and_time_of_day() {
        // Day 0.35 × 1.19 = 0.4165 (four places shown); from 18:00 0.50 × 1.19 = 0.595.
        let t = tariff(
            r#"[{"price_components":[{"type":"ENERGY","price":"0.50","vat":"19"}],"restrictions":{"start_time":"18:00","end_time":"06:00"}},
                {"price_components":[{"type":"ENERGY","price":"0.35","vat":"19"}]}]"#,
            r#","min_price":{"excl_vat":100,"incl_vat":119}"#,
        );
        // 12:00 UTC = 14:00 in Berlin (summer).
        assert_eq!(
            price_display(&t, at("2025-06-02T12:00:00Z")).unwrap(),
            "0.4165 EUR/kWh, min. 1.19 EUR, incl. 19% VAT"
        );
        // 17:00 UTC = 19:00 in Berlin.
        assert_eq!(
            price_display(&t, at("2025-06-02T17:00:00Z")).unwrap(),
            "0.595 EUR/kWh, min. 1.19 EUR, incl. 19% VAT"
        );
    }

    #[test]
    fn jpy_no_vat_and_free() {
        let t = Tariff::from_json(
            r#"{"id":"j","version":1,"currency":"JPY","time_zone":"Asia/Tokyo","elements":[{"price_components":[{"type":"ENERGY","price":"55"},{"type":"PARKING_TIME","price":"600"}]}]}"#,
        )
        .unwrap();
        assert_eq!(
            price_display(&t, at("2025-06-02T12:00:00Z")).unwrap(),
            "55 JPY/kWh + 10 JPY/min idle"
        );
        let free = tariff(
            r#"[{"price_components":[{"type":"FLAT","price":"0.00"}]}]"#,
            "",
        );
        assert_eq!(
            price_display(&free, at("2025-06-02T12:00:00Z")).unwrap(),
            "free of charge"
        );
    }

    #[test]
    fn mixed_vat_and_length_limit() {
        let t = tariff(
            r#"[{"price_components":[{"type":"ENERGY","price":"0.25","vat":"10"},{"type":"FLAT","price":"0.50","vat":"20"}]}]"#,
            "",
        );
        assert_eq!(
            price_display(&t, at("2025-06-02T12:00:00Z")).unwrap(),
            "0.275 EUR/kWh, 0.60 EUR per session, incl. VAT"
        );
        let huge = tariff(
            r#"[{"price_components":[{"type":"ENERGY","price":"999999.999999","vat":"7.25"},{"type":"TIME","price":"999999.999999","vat":"7.25"},{"type":"PARKING_TIME","price":"999999.999999","vat":"7.25"},{"type":"FLAT","price":"999999.999999","vat":"7.25"}]}]"#,
            r#","min_price":{"excl_vat":100,"incl_vat":200},"max_price":{"excl_vat":900000000,"incl_vat":900000000}"#,
        );
        let text = price_display(&huge, at("2025-06-02T12:00:00Z")).unwrap();
        assert!(text.chars().count() <= MAX_DISPLAY_CHARS, "{text}");
        assert!(!text.contains("max."), "limits are dropped first: {text}");
    }
}
