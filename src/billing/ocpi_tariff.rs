//! OCPI 2.2.1 Tariff objects (section 11.3.1) of voltvault tariff versions,
//! for the `tariffs` of a CDR.
//!
//! - Decimals are JSON numbers written from exact decimals, normalized
//!   (`0.25`, never `"0.25"` or `0.250`); no binary float on the way.
//! - Restrictions go back from the units pricing works in to OCPI's: Wh, W
//!   and mA were parsed from kWh, kW and A with at most three places, so a
//!   decimal of scale 3 gives the tariff's figure back exactly; minutes of
//!   the day become "HH:MM" (an end of 00:00 stays 00:00).
//! - `step_size` keeps its units, which are OCPI's (Wh, seconds).
//! - `min_price`/`max_price` go from minor to major units of the currency.
//! - voltvault's `time_zone` and `version` have no OCPI field and are left
//!   out: OCPI's restriction times and dates are local to the Location, which
//!   is what the tariff time zone means, and a version is told apart by its
//!   `last_updated`. `start_date_time` is left out too: a published version
//!   applies from its publication.
//! - A tariff id longer than OCPI's 36 characters is refused, not cut.

use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use serde::Serialize;
use serde_json::value::RawValue;

use super::cdr::{CdrError, Price, money, number, ocpi_time};
use super::restriction::{Range, Restrictions};
use super::tariff::{Dimension, PriceComponent, PriceLimit, Tariff, TariffElement};

/// OCPI's `id` is a CiString(36); voltvault ids may have 64 characters.
pub const MAX_OCPI_ID_LEN: usize = 36;

/// In the bit order of `restriction::Days` (bit 0 = Monday).
pub(super) const DAYS: [&str; 7] = [
    "MONDAY",
    "TUESDAY",
    "WEDNESDAY",
    "THURSDAY",
    "FRIDAY",
    "SATURDAY",
    "SUNDAY",
];

/// The OCPI 2.2.1 Tariff object of one voltvault tariff version.
#[derive(Debug, Serialize)]
pub struct OcpiTariff {
    pub country_code: String,
    pub party_id: String,
    pub id: String,
    pub currency: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_price: Option<Price>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_price: Option<Price>,
    pub elements: Vec<OcpiTariffElement>,
    #[serde(serialize_with = "ocpi_time")]
    pub last_updated: DateTime<Utc>,
}

#[derive(Debug, Serialize)]
pub struct OcpiTariffElement {
    pub price_components: Vec<OcpiPriceComponent>,
    /// Absent when the element always applies.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restrictions: Option<OcpiTariffRestrictions>,
}

#[derive(Debug, Serialize)]
pub struct OcpiPriceComponent {
    #[serde(rename = "type")]
    pub kind: Dimension,
    /// Per kWh, per hour or per session, excluding VAT.
    pub price: Box<RawValue>,
    /// Percent. Absent when no VAT applies, which OCPI tells apart from 0 %.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vat: Option<Box<RawValue>>,
    pub step_size: i64,
}

/// OCPI TariffRestrictions: kWh, A, kW and seconds; local times and dates.
#[derive(Debug, Serialize)]
pub struct OcpiTariffRestrictions {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_time: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end_time: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_date: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end_date: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_kwh: Option<Box<RawValue>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_kwh: Option<Box<RawValue>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_current: Option<Box<RawValue>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_current: Option<Box<RawValue>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_power: Option<Box<RawValue>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_power: Option<Box<RawValue>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_duration: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_duration: Option<i64>,
    /// Empty (and so absent) means every day, as in OCPI.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub day_of_week: Vec<&'static str>,
}

/// The OCPI Tariff of `tariff`.
pub fn ocpi_tariff(
    tariff: &Tariff,
    country_code: &str,
    party_id: &str,
    last_updated: DateTime<Utc>,
) -> Result<OcpiTariff, CdrError> {
    if tariff.id().len() > MAX_OCPI_ID_LEN {
        return Err(CdrError);
    }
    Ok(OcpiTariff {
        country_code: country_code.to_owned(),
        party_id: party_id.to_owned(),
        id: tariff.id().to_owned(),
        currency: tariff.currency().code().to_owned(),
        min_price: tariff.min_price().map(price).transpose()?,
        max_price: tariff.max_price().map(price).transpose()?,
        elements: tariff
            .elements()
            .iter()
            .map(element)
            .collect::<Result<_, _>>()?,
        last_updated,
    })
}

fn price(limit: PriceLimit) -> Result<Price, CdrError> {
    Ok(Price {
        excl_vat: money(limit.excl_vat)?,
        incl_vat: money(limit.incl_vat)?,
    })
}

fn element(e: &TariffElement) -> Result<OcpiTariffElement, CdrError> {
    let r = e.restrictions();
    Ok(OcpiTariffElement {
        // In the tariff's order.
        price_components: e
            .price_components
            .iter()
            .map(component)
            .collect::<Result<_, _>>()?,
        restrictions: if *r == Restrictions::default() {
            None
        } else {
            Some(restrictions(r)?)
        },
    })
}

fn component(c: &PriceComponent) -> Result<OcpiPriceComponent, CdrError> {
    Ok(OcpiPriceComponent {
        kind: c.kind(),
        price: number(c.price())?,
        vat: c.vat_percent().map(number).transpose()?,
        step_size: c.step_size(),
    })
}

fn restrictions(r: &Restrictions) -> Result<OcpiTariffRestrictions, CdrError> {
    let (min_kwh, max_kwh) = thousandths(r.energy_wh)?;
    let (min_current, max_current) = thousandths(r.current_ma)?;
    let (min_power, max_power) = thousandths(r.power_w)?;
    Ok(OcpiTariffRestrictions {
        start_time: r.time_of_day.and_then(|w| w.start).map(hh_mm),
        end_time: r.time_of_day.and_then(|w| w.end).map(hh_mm),
        start_date: r.start_date.map(date),
        end_date: r.end_date.map(date),
        min_kwh,
        max_kwh,
        min_current,
        max_current,
        min_power,
        max_power,
        min_duration: r.duration_s.min,
        max_duration: r.duration_s.max,
        day_of_week: r.days.map_or_else(Vec::new, |d| {
            (0..7)
                .filter(|i| d.0 & (1 << i) != 0)
                .map(|i| DAYS[i])
                .collect()
        }),
    })
}

type Bounds = (Option<Box<RawValue>>, Option<Box<RawValue>>);

/// Wh, mA or W as kWh, A or kW: the tariff gave them with at most three
/// places (see `RestrictionsDoc::validate`), so this is exact.
fn thousandths(r: Range) -> Result<Bounds, CdrError> {
    let f = |v: Option<i64>| v.map(|v| number(Decimal::new(v, 3))).transpose();
    Ok((f(r.min)?, f(r.max)?))
}

fn hh_mm(minute: u16) -> String {
    format!("{:02}:{:02}", minute / 60, minute % 60)
}

fn date(d: NaiveDate) -> String {
    d.format("%Y-%m-%d").to_string()
}

#[cfg(test)]
mod tests {
    use super::super::worked_examples::{
        OCPI_COMPLEX, OCPI_FIRST_KWH_FREE, OCPI_MAX_POWER, OCPI_STEP_SIZE,
    };
    use super::*;
    use serde_json::Value;

    fn tariff(currency: &str, extra: &str, elements: &str) -> Tariff {
        Tariff::from_json(&format!(
            r#"{{"id":"ocpi-14","version":3,"currency":"{currency}","time_zone":"Europe/Amsterdam"{extra},"elements":{elements}}}"#
        ))
        .unwrap()
    }

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().to_utc()
    }

    fn ocpi(t: &Tariff) -> OcpiTariff {
        ocpi_tariff(t, "NL", "TNM", at("2015-06-29T20:39:09Z")).unwrap()
    }

    fn elements_json(elements: &str) -> String {
        serde_json::to_string(&ocpi(&tariff("EUR", "", elements)).elements).unwrap()
    }

    #[test]
    fn ocpi_complex_example_with_current_day_and_time_restrictions() {
        let weekdays = r#"["MONDAY","TUESDAY","WEDNESDAY","THURSDAY","FRIDAY"]"#;
        assert_eq!(
            elements_json(OCPI_COMPLEX),
            [
                r#"[{"price_components":[{"type":"FLAT","price":2.5,"vat":15,"step_size":1}]},"#,
                r#"{"price_components":[{"type":"TIME","price":1,"vat":20,"step_size":900}],"restrictions":{"max_current":32}},"#,
                r#"{"price_components":[{"type":"TIME","price":2,"vat":20,"step_size":600}],"restrictions":{"min_current":32,"day_of_week":"#,
                weekdays,
                r#"}},{"price_components":[{"type":"TIME","price":1.25,"vat":20,"step_size":600}],"restrictions":{"min_current":32,"day_of_week":["SATURDAY","SUNDAY"]}},"#,
                r#"{"price_components":[{"type":"PARKING_TIME","price":5,"vat":10,"step_size":300}],"restrictions":{"start_time":"09:00","end_time":"18:00","day_of_week":"#,
                weekdays,
                r#"}},{"price_components":[{"type":"PARKING_TIME","price":6,"vat":10,"step_size":300}],"restrictions":{"start_time":"10:00","end_time":"17:00","day_of_week":["SATURDAY"]}}]"#,
            ]
            .concat()
        );
    }

    #[test]
    fn ocpi_step_size_example_with_several_components_and_no_vat() {
        assert_eq!(
            elements_json(OCPI_STEP_SIZE),
            [
                r#"[{"price_components":[{"type":"TIME","price":1.2,"step_size":1800},{"type":"PARKING_TIME","price":1,"step_size":900}],"restrictions":{"start_time":"00:00","end_time":"17:00"}},"#,
                r#"{"price_components":[{"type":"TIME","price":2.4,"step_size":900},{"type":"PARKING_TIME","price":1,"step_size":900}],"restrictions":{"start_time":"17:00","end_time":"20:00"}},"#,
                r#"{"price_components":[{"type":"TIME","price":2.4,"step_size":900}],"restrictions":{"start_time":"20:00","end_time":"23:59"}}]"#,
            ]
            .concat()
        );
    }

    #[test]
    fn ocpi_power_and_kwh_examples_in_kw_and_kwh() {
        assert_eq!(
            elements_json(OCPI_MAX_POWER),
            [
                r#"[{"price_components":[{"type":"ENERGY","price":0.2,"vat":20,"step_size":1}],"restrictions":{"max_power":16}},"#,
                r#"{"price_components":[{"type":"ENERGY","price":0.35,"vat":20,"step_size":1}],"restrictions":{"max_power":32}},"#,
                r#"{"price_components":[{"type":"ENERGY","price":0.5,"vat":20,"step_size":1}]}]"#,
            ]
            .concat()
        );
        assert_eq!(
            elements_json(OCPI_FIRST_KWH_FREE),
            [
                r#"[{"price_components":[{"type":"ENERGY","price":0,"step_size":1}],"restrictions":{"max_kwh":1}},"#,
                r#"{"price_components":[{"type":"ENERGY","price":0.2,"step_size":1}],"restrictions":{"min_kwh":1}}]"#,
            ]
            .concat()
        );
    }

    #[test]
    fn every_restriction_goes_back_to_ocpi_units_exactly() {
        let json = elements_json(
            r#"[{"price_components":[{"type":"ENERGY","price":"0.30"}],"restrictions":{
                "start_time":"22:00","end_time":"00:00","start_date":"2025-01-01","end_date":"2026-01-01",
                "min_kwh":"0.001","max_kwh":"150.5","min_current":"0.5","max_current":"63.000",
                "min_power":"7.125","max_power":"350","min_duration":0,"max_duration":7200,
                "day_of_week":["SUNDAY","MONDAY","SUNDAY"]}}]"#,
        );
        assert_eq!(
            json,
            [
                r#"[{"price_components":[{"type":"ENERGY","price":0.3,"step_size":1}],"restrictions":{"#,
                r#""start_time":"22:00","end_time":"00:00","start_date":"2025-01-01","end_date":"2026-01-01","#,
                r#""min_kwh":0.001,"max_kwh":150.5,"min_current":0.5,"max_current":63,"#,
                r#""min_power":7.125,"max_power":350,"min_duration":0,"max_duration":7200,"#,
                r#""day_of_week":["MONDAY","SUNDAY"]}}]"#,
            ]
            .concat()
        );
    }

    #[test]
    fn price_limits_in_major_units_and_vat_only_when_given() {
        let limits = r#","min_price":{"excl_vat":50,"incl_vat":55},"max_price":{"excl_vat":1000,"incl_vat":1100}"#;
        let vat = r#"[{"price_components":[{"type":"FLAT","price":"0.50","vat":"0"},{"type":"ENERGY","price":"0.25","vat":"10"}]}]"#;
        let t = ocpi(&tariff("EUR", limits, vat));
        let to_string = |v: &Option<Price>| serde_json::to_string(v).unwrap();
        assert_eq!(
            to_string(&t.min_price),
            r#"{"excl_vat":0.5,"incl_vat":0.55}"#
        );
        assert_eq!(to_string(&t.max_price), r#"{"excl_vat":10,"incl_vat":11}"#);
        // 0 % VAT is written; it is not the same as no VAT.
        assert_eq!(
            serde_json::to_string(&t.elements).unwrap(),
            r#"[{"price_components":[{"type":"FLAT","price":0.5,"vat":0,"step_size":1},{"type":"ENERGY","price":0.25,"vat":10,"step_size":1}]}]"#
        );

        // The currency's exponent decides the major units: JPY has none.
        let t = ocpi(&tariff(
            "JPY",
            r#","min_price":{"excl_vat":500,"incl_vat":550}"#,
            r#"[{"price_components":[{"type":"ENERGY","price":"30","vat":"10"}]}]"#,
        ));
        assert_eq!(
            serde_json::to_string(&t.min_price).unwrap(),
            r#"{"excl_vat":500,"incl_vat":550}"#
        );

        // No limits and no VAT: the fields are left out, not null.
        let v = serde_json::to_value(ocpi(&tariff(
            "EUR",
            "",
            r#"[{"price_components":[{"type":"ENERGY","price":"0.25"}]}]"#,
        )))
        .unwrap();
        assert!(
            v.get("min_price").is_none() && v.get("max_price").is_none(),
            "{v}"
        );
        assert_eq!(
            v["elements"][0]["price_components"][0],
            serde_json::json!({"type": "ENERGY", "price": 0.25, "step_size": 1})
        );
    }

    #[test]
    fn the_whole_object_in_ocpi_order_with_utc_timestamps() {
        let t = tariff(
            "EUR",
            r#","max_price":{"excl_vat":1000,"incl_vat":1100}"#,
            r#"[{"price_components":[{"type":"TIME","price":"2.00","vat":"10","step_size":60}]}]"#,
        );
        let o = ocpi_tariff(&t, "NL", "TNM", at("2015-06-30T20:39:09.2Z")).unwrap();
        // No `time_zone` or `version`; instants in UTC to the second, as
        // cdr.rs writes them (OCPI's DateTime has 25 characters at most).
        assert_eq!(
            serde_json::to_string(&o).unwrap(),
            [
                r#"{"country_code":"NL","party_id":"TNM","id":"ocpi-14","currency":"EUR","#,
                r#""max_price":{"excl_vat":10,"incl_vat":11},"#,
                r#""elements":[{"price_components":[{"type":"TIME","price":2,"vat":10,"step_size":60}]}],"#,
                r#""last_updated":"2015-06-30T20:39:09Z"}"#,
            ]
            .concat()
        );
        let v =
            serde_json::to_value(ocpi_tariff(&t, "NL", "TNM", at("2015-06-29T20:39:09Z")).unwrap())
                .unwrap();
        assert!(v.get("start_date_time").is_none(), "{v}");
        assert_eq!(v["last_updated"], "2015-06-29T20:39:09Z");
    }

    #[test]
    fn ids_longer_than_ocpi_allows_are_refused() {
        let t = Tariff::from_json(&format!(
            r#"{{"id":"{}","version":1,"currency":"EUR","time_zone":"UTC","elements":[{{"price_components":[{{"type":"FLAT","price":"1"}}]}}]}}"#,
            "x".repeat(37)
        ))
        .unwrap();
        assert!(ocpi_tariff(&t, "NL", "TNM", at("2015-06-29T20:39:09Z")).is_err());
    }

    /// Every (key, leaf value) of a JSON document.
    fn leaves<'a>(key: &'a str, v: &'a Value, out: &mut Vec<(&'a str, &'a Value)>) {
        match v {
            Value::Object(m) => m.iter().for_each(|(k, v)| leaves(k, v, out)),
            Value::Array(a) => a.iter().for_each(|v| leaves(key, v, out)),
            _ => out.push((key, v)),
        }
    }

    #[test]
    fn no_number_is_written_as_a_string() {
        let t = tariff(
            "EUR",
            r#","min_price":{"excl_vat":50,"incl_vat":55},"max_price":{"excl_vat":1000,"incl_vat":1100}"#,
            r#"[{"price_components":[{"type":"ENERGY","price":"0.25","vat":"19"},{"type":"TIME","price":"1.5","vat":"19","step_size":60}],
                 "restrictions":{"start_time":"08:00","end_time":"20:00","start_date":"2025-01-01","end_date":"2026-01-01",
                   "min_kwh":"1","max_kwh":"80","min_current":"6","max_current":"32","min_power":"3.7","max_power":"22",
                   "min_duration":60,"max_duration":36000,"day_of_week":["MONDAY"]}},
                {"price_components":[{"type":"ENERGY","price":"0.35","vat":"19"}]}]"#,
        );
        let v = serde_json::to_value(ocpi(&t)).unwrap();
        let mut all = Vec::new();
        leaves("", &v, &mut all);
        let numeric = [
            "price",
            "vat",
            "step_size",
            "excl_vat",
            "incl_vat",
            "min_kwh",
            "max_kwh",
            "min_current",
            "max_current",
            "min_power",
            "max_power",
            "min_duration",
            "max_duration",
        ];
        for (key, value) in &all {
            if numeric.contains(key) {
                assert!(value.is_number(), "{key}: {value}");
            }
            if let Some(s) = value.as_str() {
                assert!(
                    s.parse::<Decimal>().is_err(),
                    "{key} is a number in a string: {s}"
                );
            }
        }
        // Each numeric field was there to be checked.
        for key in numeric {
            assert!(all.iter().any(|(k, _)| *k == key), "{key} missing");
        }
    }
}
