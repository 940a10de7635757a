//! OCPI 2.2.1 Charge Detail Records of completed sessions, for roaming and
//! accounting. A CDR is made from the session's [`Receipt`] (so its totals
//! are the receipt's, to the cent) and its meter readings (the charging
//! periods).
//!
//! - `cdr_token.uid` is the voltvault token of the card: never card data.
//! - `country_code` and `party_id` are the first two parts of the eMI3 EVSE
//!   id (`DE*VVT*E0001*1` → `DE`, `VVT`); `cdr_location.id` is its site (see
//!   [`site_of`]). voltvault keeps no addresses or coordinates of locations,
//!   so those OCPI fields are left out rather than made up.
//! - Numbers are JSON numbers written from exact decimals (no binary float
//!   on the way): amounts in major units, energy in kWh, times in hours
//!   rounded half up to 6 places.

use chrono::{DateTime, Utc};
use rust_decimal::{Decimal, RoundingStrategy};
use serde::Serialize;
use serde_json::value::RawValue;

use super::pricing::MeterReading;
use super::receipt::Receipt;
use crate::money::Money;
use crate::payments::session::PaymentSession;

/// The site of an EVSE: its eMI3 id without the last `*` part, i.e.
/// country, operator and station (`DE*VVT*E0001*1` → `DE*VVT*E0001`). An id
/// without `*` is its own site.
pub fn site_of(evse_id: &str) -> &str {
    match evse_id.rsplit_once('*') {
        Some((site, _)) if !site.is_empty() => site,
        _ => evse_id,
    }
}

#[derive(Debug, Serialize)]
pub struct Cdr {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub country_code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub party_id: Option<String>,
    pub id: String,
    pub start_date_time: DateTime<Utc>,
    pub end_date_time: DateTime<Utc>,
    pub session_id: String,
    pub cdr_token: CdrToken,
    pub auth_method: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authorization_reference: Option<String>,
    pub cdr_location: CdrLocation,
    pub currency: String,
    pub tariffs: Vec<TariffReference>,
    pub charging_periods: Vec<ChargingPeriod>,
    pub total_cost: Price,
    pub total_energy: Box<RawValue>,
    pub total_energy_cost: Option<Price>,
    pub total_time: Box<RawValue>,
    pub total_parking_time: Box<RawValue>,
    pub last_updated: DateTime<Utc>,
}

#[derive(Debug, Serialize)]
pub struct CdrToken {
    pub uid: String,
    #[serde(rename = "type")]
    pub token_type: &'static str,
    pub contract_id: String,
}

#[derive(Debug, Serialize)]
pub struct CdrLocation {
    pub id: String,
    pub evse_uid: String,
    pub evse_id: String,
    pub connector_id: String,
}

/// The tariff a CDR was priced with, by id and voltvault version.
#[derive(Debug, Serialize)]
pub struct TariffReference {
    pub id: String,
    pub version: u32,
    pub currency: String,
}

#[derive(Debug, Serialize)]
pub struct Price {
    pub excl_vat: Box<RawValue>,
    pub incl_vat: Box<RawValue>,
}

#[derive(Debug, Serialize)]
pub struct ChargingPeriod {
    pub start_date_time: DateTime<Utc>,
    pub dimensions: Vec<Dimension>,
    pub tariff_id: String,
}

#[derive(Debug, Serialize)]
pub struct Dimension {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub volume: Box<RawValue>,
}

#[derive(Debug, thiserror::Error)]
#[error("a CDR figure could not be written")]
pub struct CdrError;

/// An exact decimal as a JSON number.
pub(super) fn number(d: Decimal) -> Result<Box<RawValue>, CdrError> {
    RawValue::from_string(d.normalize().to_string()).map_err(|_| CdrError)
}

pub(super) fn money(m: Money) -> Result<Box<RawValue>, CdrError> {
    number(Decimal::new(m.value, u32::from(m.currency.exponent())))
}

fn hours(secs: i64) -> Result<Box<RawValue>, CdrError> {
    let h = Decimal::from(secs)
        .checked_div(Decimal::from(3600))
        .ok_or(CdrError)?
        .round_dp_with_strategy(6, RoundingStrategy::MidpointAwayFromZero);
    number(h)
}

/// The CDR of a completed session.
pub fn build_cdr(
    session: &PaymentSession,
    receipt: &Receipt,
    readings: &[MeterReading],
) -> Result<Cdr, CdrError> {
    let mut periods = Vec::new();
    let (mut charging, mut parking) = (0i64, 0i64);
    for pair in readings.windows(2) {
        let [a, b] = pair else { continue };
        let secs = (b.at - a.at).num_seconds().max(0);
        let wh = (b.energy_wh - a.energy_wh).max(0);
        let mut dimensions = Vec::new();
        if wh > 0 {
            charging += secs;
            dimensions.push(Dimension {
                kind: "ENERGY",
                volume: number(Decimal::new(wh, 3))?,
            });
            dimensions.push(Dimension {
                kind: "TIME",
                volume: hours(secs)?,
            });
        } else {
            parking += secs;
            dimensions.push(Dimension {
                kind: "PARKING_TIME",
                volume: hours(secs)?,
            });
        }
        periods.push(ChargingPeriod {
            start_date_time: a.at,
            dimensions,
            tariff_id: session.tariff_id.clone(),
        });
    }
    let mut parts = session.evse_id.split('*');
    let (country, party) = match (parts.next(), parts.next(), parts.next()) {
        (Some(c), Some(p), Some(_)) => (Some(c.to_owned()), Some(p.to_owned())),
        _ => (None, None),
    };
    let energy_cost = receipt
        .lines
        .iter()
        .filter(|l| l.kind == super::receipt::LineKind::Energy)
        .try_fold((0i64, 0i64), |(e, i), l| {
            Some((
                e.checked_add(l.amount_excl_vat.value)?,
                i.checked_add(l.amount_incl_vat.value)?,
            ))
        })
        .ok_or(CdrError)?;
    let currency = receipt.currency;
    Ok(Cdr {
        country_code: country,
        party_id: party,
        id: session.id.to_string(),
        start_date_time: receipt.started_at,
        end_date_time: receipt.ended_at,
        session_id: session.id.to_string(),
        cdr_token: CdrToken {
            uid: session.token.clone(),
            token_type: "AD_HOC_USER",
            contract_id: session.token.clone(),
        },
        auth_method: "AUTH_REQUEST",
        authorization_reference: session.authorization_code.clone(),
        cdr_location: CdrLocation {
            id: site_of(&session.evse_id).to_owned(),
            evse_uid: session.evse_id.clone(),
            evse_id: session.evse_id.clone(),
            connector_id: session.connector_id.clone(),
        },
        currency: currency.code().to_owned(),
        tariffs: vec![TariffReference {
            id: session.tariff_id.clone(),
            version: session.tariff_version,
            currency: currency.code().to_owned(),
        }],
        charging_periods: periods,
        total_cost: Price {
            excl_vat: money(receipt.total_excl_vat)?,
            incl_vat: money(receipt.total_incl_vat)?,
        },
        total_energy: number(Decimal::new(session.energy_wh, 3))?,
        total_energy_cost: Some(Price {
            excl_vat: money(Money::new(energy_cost.0, currency))?,
            incl_vat: money(Money::new(energy_cost.1, currency))?,
        }),
        total_time: hours(charging + parking)?,
        total_parking_time: hours(parking)?,
        last_updated: session.updated_at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sites_are_the_evse_id_without_its_last_part() {
        assert_eq!(site_of("DE*VVT*E0001*1"), "DE*VVT*E0001");
        assert_eq!(site_of("EVSE-7"), "EVSE-7");
        assert_eq!(site_of("*1"), "*1");
    }

    #[test]
    fn numbers_are_exact() {
        assert_eq!(
            money(Money::new(
                6318,
                crate::money::Currency::parse("EUR").unwrap()
            ))
            .unwrap()
            .get(),
            "63.18"
        );
        assert_eq!(hours(5400).unwrap().get(), "1.5");
        assert_eq!(hours(100).unwrap().get(), "0.027778");
        assert_eq!(number(Decimal::new(95_000, 3)).unwrap().get(), "95");
    }
}
