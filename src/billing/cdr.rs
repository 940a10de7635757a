//! OCPI 2.2.1 Charge Detail Records of completed sessions, for roaming and
//! accounting. A CDR is made from the session's [`Receipt`] (so its totals
//! are the receipt's, to the cent), its meter readings and tariff version
//! (the charging periods), and the site's description from
//! `[[billing.locations]]`.
//!
//! - `country_code` and `party_id` are the operator's, from the site id
//!   (`DE*VVT*E0001` → `DE`, `VVT`); the cards are the operator's own
//!   customers, so `cdr_token` names the same party.
//! - `cdr_token` says how the session was paid: a tap of an account's RFID
//!   card (type `RFID`, uid the card's UID, contract the account,
//!   `WHITELIST`: voltvault knows its cards), the app for an account
//!   (`APP_USER`, uid and contract the account, `COMMAND`), or a bank card
//!   (`AD_HOC_USER`, uid and contract the voltvault token, never card data,
//!   `AUTH_REQUEST`).
//! - A charging period is a stretch over which the car charged or stood
//!   idle throughout and each dimension kept its tariff element
//!   ([`stretches`]).
//! - Numbers are JSON numbers written from exact decimals (no binary float
//!   on the way): amounts in major units, energy in kWh, times in hours
//!   rounded half up to 6 places. Times are UTC to the second, as OCPI's
//!   25-character DateTime allows.

use chrono::{DateTime, Utc};
use rust_decimal::{Decimal, RoundingStrategy};
use serde::{Serialize, Serializer};
use serde_json::value::RawValue;

use super::location::{ConnectorFormat, PowerType, SiteLocation};
use super::ocpi_tariff::{MAX_OCPI_ID_LEN, OcpiTariff, ocpi_tariff};
use super::pricing::{MeterReading, stretches};
use super::receipt::{LineKind, Receipt};
use super::tariff::DatedTariff;
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

/// OCPI DateTime: RFC 3339 in UTC, whole seconds.
pub(super) fn ocpi_time<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&t.format("%Y-%m-%dT%H:%M:%SZ"))
}

#[derive(Debug, Serialize)]
pub struct Cdr {
    pub country_code: String,
    pub party_id: String,
    pub id: String,
    #[serde(serialize_with = "ocpi_time")]
    pub start_date_time: DateTime<Utc>,
    #[serde(serialize_with = "ocpi_time")]
    pub end_date_time: DateTime<Utc>,
    pub session_id: String,
    pub cdr_token: CdrToken,
    pub auth_method: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authorization_reference: Option<String>,
    pub cdr_location: CdrLocation,
    pub currency: String,
    pub tariffs: Vec<OcpiTariff>,
    pub charging_periods: Vec<ChargingPeriod>,
    pub total_cost: Price,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total_fixed_cost: Option<Price>,
    pub total_energy: Box<RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total_energy_cost: Option<Price>,
    pub total_time: Box<RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total_time_cost: Option<Price>,
    pub total_parking_time: Box<RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total_parking_cost: Option<Price>,
    #[serde(serialize_with = "ocpi_time")]
    pub last_updated: DateTime<Utc>,
}

#[derive(Debug, Serialize)]
pub struct CdrToken {
    pub country_code: String,
    pub party_id: String,
    pub uid: String,
    #[serde(rename = "type")]
    pub token_type: &'static str,
    pub contract_id: String,
}

#[derive(Debug, Serialize)]
pub struct GeoLocation {
    pub latitude: String,
    pub longitude: String,
}

#[derive(Debug, Serialize)]
pub struct CdrLocation {
    pub id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub address: String,
    pub city: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub postal_code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    pub country: String,
    pub coordinates: GeoLocation,
    pub evse_uid: String,
    pub evse_id: String,
    pub connector_id: String,
    pub connector_standard: String,
    pub connector_format: ConnectorFormat,
    pub connector_power_type: PowerType,
}

#[derive(Debug, Serialize)]
pub struct Price {
    pub excl_vat: Box<RawValue>,
    pub incl_vat: Box<RawValue>,
}

#[derive(Debug, Serialize)]
pub struct ChargingPeriod {
    #[serde(serialize_with = "ocpi_time")]
    pub start_date_time: DateTime<Utc>,
    pub dimensions: Vec<Dimension>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tariff_id: Option<String>,
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

/// Everything a CDR is made from.
pub struct CdrInput<'a> {
    pub session: &'a PaymentSession,
    pub receipt: &'a Receipt,
    pub readings: &'a [MeterReading],
    /// The version the session was priced with.
    pub tariff: &'a DatedTariff,
    /// The session's site.
    pub location: &'a SiteLocation,
}

/// How the driver was identified: the token, its OCPI type and the
/// authorization method.
fn token_of(session: &PaymentSession, party: (&str, &str)) -> (CdrToken, &'static str) {
    let (token_type, uid, contract_id, auth_method) = match (&session.rfid, session.account) {
        (Some(card), Some(account)) => (
            "RFID",
            card.as_str().to_owned(),
            account.to_string(),
            "WHITELIST",
        ),
        (_, Some(account)) => (
            "APP_USER",
            account.to_string(),
            account.to_string(),
            "COMMAND",
        ),
        _ => (
            "AD_HOC_USER",
            session.token.clone(),
            session.token.clone(),
            "AUTH_REQUEST",
        ),
    };
    let token = CdrToken {
        country_code: party.0.to_owned(),
        party_id: party.1.to_owned(),
        uid,
        token_type,
        contract_id,
    };
    (token, auth_method)
}

/// The receipt's lines of one kind, summed; `None` when there are none.
fn cost_of(receipt: &Receipt, kind: LineKind) -> Result<Option<Price>, CdrError> {
    let mut lines = receipt.lines.iter().filter(|l| l.kind == kind).peekable();
    if lines.peek().is_none() {
        return Ok(None);
    }
    let (excl, incl) = lines
        .try_fold((0i64, 0i64), |(e, i), l| {
            Some((
                e.checked_add(l.amount_excl_vat.value)?,
                i.checked_add(l.amount_incl_vat.value)?,
            ))
        })
        .ok_or(CdrError)?;
    Ok(Some(Price {
        excl_vat: money(Money::new(excl, receipt.currency))?,
        incl_vat: money(Money::new(incl, receipt.currency))?,
    }))
}

/// The CDR of a completed session.
pub fn build_cdr(input: CdrInput<'_>) -> Result<Cdr, CdrError> {
    let CdrInput {
        session,
        receipt,
        readings,
        tariff,
        location,
    } = input;
    let party = location.party().ok_or(CdrError)?;
    // OCPI ids have 36 characters at most, voltvault's tariff ids 64: a
    // longer one is left out (both fields are optional) rather than cut.
    let tariff_id = Some(tariff.tariff.id().to_owned()).filter(|id| id.len() <= MAX_OCPI_ID_LEN);
    let mut periods = Vec::new();
    let (mut charging, mut parking) = (0i64, 0i64);
    for s in stretches(&tariff.tariff, readings).map_err(|_| CdrError)? {
        let mut dimensions = Vec::new();
        if s.charging {
            charging += s.secs;
            dimensions.push(Dimension {
                kind: "ENERGY",
                volume: number(Decimal::new(s.wh, 3))?,
            });
            dimensions.push(Dimension {
                kind: "TIME",
                volume: hours(s.secs)?,
            });
        } else {
            parking += s.secs;
            dimensions.push(Dimension {
                kind: "PARKING_TIME",
                volume: hours(s.secs)?,
            });
        }
        periods.push(ChargingPeriod {
            start_date_time: s.start,
            dimensions,
            tariff_id: tariff_id.clone(),
        });
    }
    let (cdr_token, auth_method) = token_of(session, party);
    let currency = receipt.currency;
    Ok(Cdr {
        country_code: party.0.to_owned(),
        party_id: party.1.to_owned(),
        id: session.id.to_string(),
        start_date_time: receipt.started_at,
        end_date_time: receipt.ended_at,
        session_id: session.id.to_string(),
        cdr_token,
        auth_method,
        authorization_reference: session.authorization_code.clone(),
        cdr_location: CdrLocation {
            id: location.id.clone(),
            name: location.name.clone(),
            address: location.address.clone(),
            city: location.city.clone(),
            postal_code: location.postal_code.clone(),
            state: location.state.clone(),
            country: location.country.clone(),
            coordinates: GeoLocation {
                latitude: location.latitude.clone(),
                longitude: location.longitude.clone(),
            },
            evse_uid: session.evse_id.clone(),
            evse_id: session.evse_id.clone(),
            connector_id: session.connector_id.clone(),
            connector_standard: location.connector_standard.clone(),
            connector_format: location.connector_format,
            connector_power_type: location.power_type,
        },
        currency: currency.code().to_owned(),
        tariffs: match tariff_id {
            Some(_) => vec![ocpi_tariff(
                &tariff.tariff,
                party.0,
                party.1,
                tariff.last_updated,
            )?],
            None => Vec::new(),
        },
        charging_periods: periods,
        total_cost: Price {
            excl_vat: money(receipt.total_excl_vat)?,
            incl_vat: money(receipt.total_incl_vat)?,
        },
        total_fixed_cost: cost_of(receipt, LineKind::Flat)?,
        total_energy: number(Decimal::new(session.energy_wh, 3))?,
        total_energy_cost: cost_of(receipt, LineKind::Energy)?,
        total_time: hours(charging + parking)?,
        total_time_cost: cost_of(receipt, LineKind::Time)?,
        total_parking_time: hours(parking)?,
        total_parking_cost: cost_of(receipt, LineKind::ParkingTime)?,
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

    use crate::billing::location::demo_site;
    use crate::billing::receipt::tests::{ENERGY_AND_PARKING, build, readings, session, tariff};

    fn cdr_of(s: &PaymentSession) -> serde_json::Value {
        let dated = DatedTariff {
            tariff: tariff(ENERGY_AND_PARKING),
            last_updated: "2026-11-01T08:00:00.250Z".parse().unwrap(),
        };
        let receipt = build(s, &dated.tariff).unwrap();
        let cdr = build_cdr(CdrInput {
            session: s,
            receipt: &receipt,
            readings: &readings(),
            tariff: &dated,
            location: &demo_site(),
        })
        .unwrap();
        serde_json::from_str(&serde_json::to_string(&cdr).unwrap()).unwrap()
    }

    #[test]
    fn a_cdr_carries_what_ocpi_requires() {
        let s = session(2320, 5000, 2320);
        let cdr = cdr_of(&s);
        assert_eq!(
            (cdr["country_code"].as_str(), cdr["party_id"].as_str()),
            (Some("DE"), Some("VVT"))
        );
        let place = &cdr["cdr_location"];
        for (field, want) in [
            ("id", "DE*VVT*E0001"),
            ("address", "Musterstrasse 1"),
            ("city", "Berlin"),
            ("country", "DEU"),
            ("evse_id", "DE*VVT*E0001*1"),
            ("connector_id", "1"),
            ("connector_standard", "IEC_62196_T2_COMBO"),
            ("connector_format", "CABLE"),
            ("connector_power_type", "DC"),
        ] {
            assert_eq!(place[field], want, "{field}");
        }
        assert_eq!(place["coordinates"]["latitude"], "52.53190");
        // 40 minutes charging, then 20 idle: two periods, not one per reading.
        let periods = cdr["charging_periods"].as_array().unwrap();
        assert_eq!(periods.len(), 2, "{periods:?}");
        assert_eq!(periods[0]["start_date_time"], "2026-11-25T10:00:00Z");
        assert_eq!(periods[0]["dimensions"][0]["type"], "ENERGY");
        assert_eq!(periods[0]["dimensions"][0]["volume"], 30);
        assert_eq!(periods[1]["start_date_time"], "2026-11-25T10:40:00Z");
        assert_eq!(periods[1]["dimensions"][0]["type"], "PARKING_TIME");
        assert_eq!(
            periods[1]["dimensions"][0]["volume"].to_string(),
            "0.333333"
        );
        assert_eq!(periods[1]["tariff_id"], "t");
        // Totals are the receipt's: 17.70 + 19% energy, 2.00 + 7% parking.
        assert_eq!(cdr["total_cost"]["incl_vat"].to_string(), "23.2");
        assert_eq!(cdr["total_energy_cost"]["excl_vat"].to_string(), "17.7");
        assert_eq!(cdr["total_parking_cost"]["excl_vat"].to_string(), "2");
        assert!(cdr.get("total_time_cost").is_none());
        assert!(cdr.get("total_fixed_cost").is_none());
        assert_eq!(cdr["total_time"], 1);
        // The tariff it was priced with, as an OCPI Tariff object.
        let tariffs = cdr["tariffs"].as_array().unwrap();
        assert_eq!(tariffs.len(), 1);
        assert_eq!(tariffs[0]["id"], "t");
        assert_eq!(tariffs[0]["party_id"], "VVT");
        assert_eq!(tariffs[0]["last_updated"], "2026-11-01T08:00:00Z");
        assert_eq!(
            tariffs[0]["elements"][0]["price_components"][0]["price"].to_string(),
            "0.59"
        );
    }

    #[test]
    fn the_token_says_how_the_driver_paid() {
        let card = session(2320, 5000, 2320);
        let cdr = cdr_of(&card);
        assert_eq!(cdr["cdr_token"]["type"], "AD_HOC_USER");
        assert_eq!(cdr["cdr_token"]["uid"], card.token.as_str());
        assert_eq!(cdr["cdr_token"]["country_code"], "DE");
        assert_eq!(cdr["auth_method"], "AUTH_REQUEST");

        let account = crate::ids::AccountId::generate();
        let app = PaymentSession {
            account: Some(account),
            ..session(2320, 5000, 2320)
        };
        let cdr = cdr_of(&app);
        assert_eq!(cdr["cdr_token"]["type"], "APP_USER");
        assert_eq!(cdr["cdr_token"]["uid"], account.to_string());
        assert_eq!(cdr["auth_method"], "COMMAND");

        let tap = PaymentSession {
            account: Some(account),
            rfid: crate::accounts::RfidUid::parse("04:a2:b3:c4:d5:e6:f7"),
            ..session(2320, 5000, 2320)
        };
        let cdr = cdr_of(&tap);
        assert_eq!(cdr["cdr_token"]["type"], "RFID");
        assert_eq!(cdr["cdr_token"]["uid"], "04A2B3C4D5E6F7");
        assert_eq!(cdr["cdr_token"]["contract_id"], account.to_string());
        assert_eq!(cdr["auth_method"], "WHITELIST");
    }

    #[test]
    fn times_are_whole_seconds_in_utc() {
        let s = PaymentSession {
            updated_at: "2026-11-25T11:00:00.987654321Z".parse().unwrap(),
            ..session(2320, 5000, 2320)
        };
        assert_eq!(cdr_of(&s)["last_updated"], "2026-11-25T11:00:00Z");
    }
}
