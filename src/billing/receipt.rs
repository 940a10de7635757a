//! The receipt of a completed payment session, built from what is stored:
//! the session, its meter readings, the tariff version it was priced with and
//! the card's public summary (brand and last four, never more).
//!
//! The lines come from pricing the stored readings again with the session's
//! tariff version, so the receipt shows the same figures as the charger's
//! display and the capture ([ADR 0002](../../docs/adr/0002-tariff-pricing.md)).
//! Two things can make the amount paid differ from the sum of the lines, and
//! each gets a line of its own rather than silently changed figures:
//! - the tariff's minimum or maximum price (`price_limit`);
//! - the hold: a capture never exceeds what was authorized, so a session that
//!   cost more than its hold is charged the hold (`hold_cap`).
//!
//! The VAT summary is per rate and always adds up to the amount paid. A cap
//! is a price reduction: it lowers the taxable amount of each rate in
//! proportion to its share, and each rate's VAT is worked out again from its
//! reduced gross amount (net = gross × 100 / (100 + rate), halves up).
//!
//! Pure domain logic: no SQL, no HTTP, no clock.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::exact::{div_round_half_up, pow10};
use super::pricing::{Cost, MeterReading, PriceLimitApplied, PricingError, price_session};
use super::tariff::{Dimension, Tariff};
use crate::ids::PaymentSessionId;
use crate::money::{Currency, Money};
use crate::payments::session::{PaymentSession, SessionStatus};

/// The prefix of receipt ids: `rcpt_<session uuid>`.
pub const RECEIPT_PREFIX: &str = "rcpt_";

/// The receipt id of a session.
pub fn receipt_id(session: PaymentSessionId) -> String {
    format!("{RECEIPT_PREFIX}{session}")
}

/// The session a receipt id names, if it is one.
pub fn parse_receipt_id(id: &str) -> Option<PaymentSessionId> {
    id.strip_prefix(RECEIPT_PREFIX)?.parse().ok()
}

/// The receipt's stable address on this service.
pub fn receipt_path(session: PaymentSessionId) -> String {
    format!("/v1/receipts/{}", receipt_id(session))
}

/// Who issued the receipt (`[billing]` in the configuration).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct OperatorDetails {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vat_id: Option<String>,
}

/// What a receipt may say about the card: brand and last four digits only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct CardSummary {
    pub brand: String,
    pub last4: String,
}

impl CardSummary {
    /// Keeps the last four characters only if they are four digits, so a
    /// damaged row can never put more of a card number on a receipt.
    pub fn new(brand: &str, last4: &str) -> Self {
        let last4 = if last4.len() == 4 && last4.bytes().all(|b| b.is_ascii_digit()) {
            last4.to_owned()
        } else {
            "????".to_owned()
        };
        Self {
            brand: brand.to_owned(),
            last4,
        }
    }
}

/// A refund that went through at the acquirer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
pub struct ReceiptRefund {
    pub amount: Money,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum LineKind {
    Energy,
    Time,
    ParkingTime,
    Flat,
    /// The tariff's minimum or maximum price changed the total.
    PriceLimit,
    /// The session cost more than was held: the capture stopped at the hold.
    HoldCap,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ReceiptLine {
    pub kind: LineKind,
    pub description: String,
    /// Billed quantity in `unit` (after step-size rounding).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quantity: Option<i64>,
    /// `Wh`, `s` or `session`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
    /// The quantity for people: `12.345 kWh`, `0:25:00 h`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quantity_display: Option<String>,
    /// Excluding VAT, per kWh, per hour or per session (exact decimal).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unit_price: Option<String>,
    /// Percent; absent when no VAT applies or the line spans several rates.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vat_rate: Option<String>,
    pub amount_excl_vat: Money,
    pub vat: Money,
    pub amount_incl_vat: Money,
}

/// The VAT of one rate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct VatSummary {
    /// Percent; absent for amounts without VAT.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate: Option<String>,
    pub net: Money,
    pub vat: Money,
    pub gross: Money,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct TariffRef {
    pub id: String,
    pub version: u32,
}

/// A receipt. Its `total_incl_vat` is the captured amount, always.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Receipt {
    pub id: String,
    /// Where this receipt can be fetched again (JSON, HTML or PDF).
    pub url: String,
    #[schema(value_type = String, format = Uuid)]
    pub session_id: PaymentSessionId,
    pub operator: OperatorDetails,
    pub evse_id: String,
    pub connector_id: String,
    pub started_at: DateTime<Utc>,
    pub ended_at: DateTime<Utc>,
    pub energy_wh: i64,
    /// `energy_wh` in kWh, exact.
    pub energy_kwh: String,
    pub tariff: TariffRef,
    pub card: CardSummary,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authorization_code: Option<String>,
    #[schema(value_type = String, example = "EUR")]
    pub currency: Currency,
    pub lines: Vec<ReceiptLine>,
    pub vat: Vec<VatSummary>,
    pub total_excl_vat: Money,
    pub total_vat: Money,
    /// Equal to `captured_amount`.
    pub total_incl_vat: Money,
    pub captured_amount: Money,
    pub refunds: Vec<ReceiptRefund>,
    pub refunded_amount: Money,
    /// Captured minus refunded.
    pub net_paid: Money,
}

/// Everything a receipt is made from.
pub struct ReceiptInput<'a> {
    pub session: &'a PaymentSession,
    pub readings: &'a [MeterReading],
    /// The tariff the catalog has under the session's tariff id.
    pub tariff: Option<&'a Tariff>,
    pub card: CardSummary,
    pub refunds: Vec<ReceiptRefund>,
    pub operator: OperatorDetails,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReceiptError {
    #[error("the session is {}: receipts exist for completed sessions", .0.as_str())]
    NotCompleted(SessionStatus),
    #[error(
        "the session was priced with tariff {id} version {session}, which is not available{}",
        .available.map_or(String::new(), |v| format!(" (only version {v} is)"))
    )]
    TariffVersionUnavailable {
        id: String,
        session: u32,
        available: Option<u32>,
    },
    #[error("the stored readings no longer price to the session's cost")]
    TotalMismatch,
    #[error(transparent)]
    Pricing(#[from] PricingError),
    #[error("amount out of range")]
    Overflow,
}

impl ReceiptError {
    pub fn code(&self) -> &'static str {
        match self {
            ReceiptError::NotCompleted(_) => "receipt_not_available",
            ReceiptError::TariffVersionUnavailable { .. } => "tariff_version_unavailable",
            ReceiptError::TotalMismatch => "receipt_total_mismatch",
            ReceiptError::Pricing(_) | ReceiptError::Overflow => "receipt_pricing_failed",
        }
    }
}

/// Builds the receipt of a completed session.
pub fn build_receipt(input: ReceiptInput<'_>) -> Result<Receipt, ReceiptError> {
    let s = input.session;
    let captured = match (s.status, s.captured) {
        (SessionStatus::Completed, Some(c)) => c,
        (status, _) => return Err(ReceiptError::NotCompleted(status)),
    };
    let tariff = match input.tariff {
        Some(t) if t.version() == s.tariff_version => t,
        other => {
            return Err(ReceiptError::TariffVersionUnavailable {
                id: s.tariff_id.clone(),
                session: s.tariff_version,
                available: other.map(Tariff::version),
            });
        }
    };
    let currency = s.hold.currency;
    let cost = if input.readings.is_empty() {
        None
    } else {
        Some(price_session(tariff, input.readings)?)
    };
    let priced = cost.as_ref().map_or(0, |c| c.incl_vat.value);
    // The receipt re-prices; it must come to what the session charged.
    if priced != s.cost.value || captured.value > priced {
        return Err(ReceiptError::TotalMismatch);
    }
    let (lines, vat) = lines_and_vat(cost.as_ref(), captured.value, currency)?;
    let sum = |f: fn(&VatSummary) -> Money| -> Result<Money, ReceiptError> {
        vat.iter().try_fold(Money::zero(currency), |acc, v| {
            acc.checked_add(f(v)).map_err(|_| ReceiptError::Overflow)
        })
    };
    let total_excl_vat = sum(|v| v.net)?;
    let total_vat = sum(|v| v.vat)?;
    let total_incl_vat = sum(|v| v.gross)?;
    if total_incl_vat != captured {
        return Err(ReceiptError::TotalMismatch);
    }
    let refunded = s.refunded;
    let started_at = input.readings.first().map_or(s.created_at, |r| r.at);
    let ended_at = input
        .readings
        .last()
        .map(|r| r.at)
        .or(s.ended_at)
        .unwrap_or(s.updated_at);
    Ok(Receipt {
        id: receipt_id(s.id),
        url: receipt_path(s.id),
        session_id: s.id,
        operator: input.operator,
        evse_id: s.evse_id.clone(),
        connector_id: s.connector_id.clone(),
        started_at,
        ended_at,
        energy_wh: s.energy_wh,
        energy_kwh: kwh(s.energy_wh),
        tariff: TariffRef {
            id: s.tariff_id.clone(),
            version: s.tariff_version,
        },
        card: input.card,
        authorization_code: s.authorization_code.clone(),
        currency,
        lines,
        vat,
        total_excl_vat,
        total_vat,
        total_incl_vat,
        captured_amount: captured,
        refunds: input.refunds,
        refunded_amount: refunded,
        net_paid: captured
            .checked_sub(refunded)
            .map_err(|_| ReceiptError::Overflow)?,
    })
}

/// Wh as exact kWh: `12500` is `12.5`.
pub fn kwh(wh: i64) -> String {
    Decimal::new(wh, 3).normalize().to_string()
}

/// Seconds as `h:mm:ss`.
fn hms(secs: i64) -> String {
    format!("{}:{:02}:{:02}", secs / 3600, (secs % 3600) / 60, secs % 60)
}

/// Amounts of one VAT rate: (net, vat).
type Buckets = BTreeMap<Option<Decimal>, (i64, i64)>;

fn lines_and_vat(
    cost: Option<&Cost>,
    captured: i64,
    currency: Currency,
) -> Result<(Vec<ReceiptLine>, Vec<VatSummary>), ReceiptError> {
    let m = |v: i64| Money::new(v, currency);
    let mut lines = Vec::new();
    let mut buckets = Buckets::new();
    let Some(cost) = cost else {
        // Completed without a single reading: nothing was delivered.
        return Ok((lines, summaries(&Buckets::new(), currency)));
    };
    for l in &cost.lines {
        let (unit, display, per) = match l.kind {
            Dimension::Energy => ("Wh", format!("{} kWh", kwh(l.billed_quantity)), "kWh"),
            Dimension::Time | Dimension::ParkingTime => {
                ("s", format!("{} h", hms(l.billed_quantity)), "h")
            }
            Dimension::Flat => ("session", "1".to_owned(), "session"),
        };
        let (kind, description) = match l.kind {
            Dimension::Energy => (LineKind::Energy, "Energy"),
            Dimension::Time => (LineKind::Time, "Charging time"),
            Dimension::ParkingTime => (LineKind::ParkingTime, "Parking (idle) time"),
            Dimension::Flat => (LineKind::Flat, "Session fee"),
        };
        let incl = add(l.amount_excl_vat.value, l.vat.value)?;
        lines.push(ReceiptLine {
            kind,
            description: description.to_owned(),
            quantity: Some(l.billed_quantity),
            unit: Some(unit.to_owned()),
            quantity_display: Some(display),
            unit_price: Some(format!("{} {}/{per}", l.unit_price.normalize(), currency)),
            vat_rate: l.vat_rate.map(|r| r.normalize().to_string()),
            amount_excl_vat: l.amount_excl_vat,
            vat: l.vat,
            amount_incl_vat: m(incl),
        });
        let b = buckets
            .entry(l.vat_rate.map(|r| r.normalize()))
            .or_insert((0, 0));
        b.0 = add(b.0, l.amount_excl_vat.value)?;
        b.1 = add(b.1, l.vat.value)?;
    }

    // The tariff's minimum or maximum price: the totals are the tariff's
    // figures, spread over the rates in proportion to their lines.
    if cost.limit_applied.is_some() {
        let before = buckets.clone();
        buckets = rescale(&buckets, cost.excl_vat.value, cost.vat.value);
        lines.push(adjustment(
            LineKind::PriceLimit,
            match cost.limit_applied {
                Some(PriceLimitApplied::MinPrice) => "Minimum price of the tariff",
                _ => "Maximum price of the tariff",
            },
            &before,
            &buckets,
            currency,
        )?);
    }

    // The hold capped the capture: reduce each rate's gross in proportion.
    let gross_now = total(&buckets, |(n, v)| add(n, v))?;
    if captured < gross_now {
        let before = buckets.clone();
        buckets = cap(&buckets, captured)?;
        lines.push(adjustment(
            LineKind::HoldCap,
            "Capped at the authorized amount",
            &before,
            &buckets,
            currency,
        )?);
    }
    Ok((lines, summaries(&buckets, currency)))
}

fn add(a: i64, b: i64) -> Result<i64, ReceiptError> {
    a.checked_add(b).ok_or(ReceiptError::Overflow)
}

fn total(
    b: &Buckets,
    f: impl Fn((i64, i64)) -> Result<i64, ReceiptError>,
) -> Result<i64, ReceiptError> {
    b.values().try_fold(0i64, |acc, v| add(acc, f(*v)?))
}

/// The line that says how a step changed the totals.
fn adjustment(
    kind: LineKind,
    description: &str,
    before: &Buckets,
    after: &Buckets,
    currency: Currency,
) -> Result<ReceiptLine, ReceiptError> {
    let net = total(after, |(n, _)| Ok(n))? - total(before, |(n, _)| Ok(n))?;
    let vat = total(after, |(_, v)| Ok(v))? - total(before, |(_, v)| Ok(v))?;
    let single_rate = (after.len() == 1)
        .then(|| after.keys().next().copied().flatten())
        .flatten();
    Ok(ReceiptLine {
        kind,
        description: description.to_owned(),
        quantity: None,
        unit: None,
        quantity_display: None,
        unit_price: None,
        vat_rate: single_rate.map(|r| r.to_string()),
        amount_excl_vat: Money::new(net, currency),
        vat: Money::new(vat, currency),
        amount_incl_vat: Money::new(add(net, vat)?, currency),
    })
}

/// Spreads `net` and `vat` over the buckets in proportion to their own.
fn rescale(b: &Buckets, net: i64, vat: i64) -> Buckets {
    let keys: Vec<Option<Decimal>> = if b.is_empty() {
        vec![None]
    } else {
        b.keys().copied().collect()
    };
    let nets = allocate(
        net,
        &b.values().map(|v| v.0).collect::<Vec<_>>(),
        keys.len(),
    );
    let vats = allocate(
        vat,
        &b.values().map(|v| v.1).collect::<Vec<_>>(),
        keys.len(),
    );
    keys.into_iter().zip(nets.into_iter().zip(vats)).collect()
}

/// Lowers the buckets' gross to `captured` in proportion, and works out
/// each rate's net and VAT from its new gross.
fn cap(b: &Buckets, captured: i64) -> Result<Buckets, ReceiptError> {
    let gross: Vec<i64> = b
        .values()
        .map(|(n, v)| add(*n, *v))
        .collect::<Result<_, _>>()?;
    let keys: Vec<Option<Decimal>> = if b.is_empty() {
        vec![None]
    } else {
        b.keys().copied().collect()
    };
    let shares = allocate(captured, &gross, keys.len());
    keys.into_iter()
        .zip(shares)
        .map(|(rate, g)| {
            let net = match rate {
                Some(r) => net_of_gross(g, r)?,
                None => g,
            };
            Ok((rate, (net, g - net)))
        })
        .collect()
}

/// `gross × 100 / (100 + rate)`, halves up.
fn net_of_gross(gross: i64, rate: Decimal) -> Result<i64, ReceiptError> {
    let scale = pow10(rate.scale()).ok_or(ReceiptError::Overflow)?;
    let num = i128::from(gross)
        .checked_mul(100)
        .and_then(|v| v.checked_mul(scale))
        .ok_or(ReceiptError::Overflow)?;
    let den = scale
        .checked_mul(100)
        .and_then(|v| v.checked_add(rate.mantissa()))
        .ok_or(ReceiptError::Overflow)?;
    div_round_half_up(num, den)
        .and_then(|v| i64::try_from(v).ok())
        .ok_or(ReceiptError::Overflow)
}

/// Splits `total` over `n` parts in proportion to `weights` (largest
/// remainder, so the parts add up exactly). Without weights, the first part
/// takes it all.
pub fn allocate(total: i64, weights: &[i64], n: usize) -> Vec<i64> {
    let mut out = vec![0i64; n.max(1)];
    let sum: i128 = weights.iter().map(|w| i128::from(*w)).sum();
    if sum <= 0 || weights.len() != out.len() || weights.iter().any(|w| *w < 0) {
        out[0] = total;
        return out;
    }
    let t = i128::from(total);
    let mut remainders: Vec<(i128, usize)> = Vec::with_capacity(n);
    let mut given: i128 = 0;
    for (i, w) in weights.iter().enumerate() {
        let exact = t * i128::from(*w);
        let share = exact.div_euclid(sum);
        given += share;
        out[i] = i64::try_from(share).unwrap_or(0);
        remainders.push((exact.rem_euclid(sum), i));
    }
    remainders.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    let mut left = t - given;
    for (_, i) in remainders.iter().cycle().take(n * 2) {
        if left <= 0 {
            break;
        }
        out[*i] += 1;
        left -= 1;
    }
    out
}

fn summaries(b: &Buckets, currency: Currency) -> Vec<VatSummary> {
    let m = |v: i64| Money::new(v, currency);
    if b.is_empty() {
        return vec![VatSummary {
            rate: None,
            net: m(0),
            vat: m(0),
            gross: m(0),
        }];
    }
    b.iter()
        .map(|(rate, (net, vat))| VatSummary {
            rate: rate.map(|r| r.to_string()),
            net: m(*net),
            vat: m(*vat),
            gross: m(net.saturating_add(*vat)),
        })
        .collect()
}

/// Receipt fixtures, shared with the CDR tests.
#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::ids::TenantId;

    fn eur(v: i64) -> Money {
        Money::new(v, Currency::parse("EUR").unwrap())
    }

    fn t(min: i64) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-25T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
            + chrono::Duration::minutes(min)
    }

    pub(crate) fn tariff(json: &str) -> Tariff {
        Tariff::from_json(json).unwrap()
    }

    pub(crate) const ENERGY_AND_PARKING: &str = r#"{"id":"t","version":3,"currency":"EUR","time_zone":"Europe/Berlin",
        "elements":[{"price_components":[
          {"type":"ENERGY","price":"0.59","vat":"19","step_size":1},
          {"type":"PARKING_TIME","price":"6.00","vat":"7","step_size":60}]}]}"#;

    pub(crate) fn session(cost: i64, authorized: i64, captured: i64) -> PaymentSession {
        PaymentSession {
            id: PaymentSessionId::generate(),
            tenant: TenantId::generate(),
            created_by: "charger:c1".into(),
            idem_key: "k".into(),
            evse_id: "DE*VVT*E0001*1".into(),
            connector_id: "1".into(),
            tariff_id: "t".into(),
            tariff_version: 3,
            token: "1289582873644242".into(),
            account: None,
            rfid: None,
            acquirer: "simulator".into(),
            hold: eur(5000),
            authorized: eur(authorized),
            cost: eur(cost),
            energy_wh: 30_000,
            captured: Some(eur(captured)),
            refunded: eur(0),
            status: SessionStatus::Completed,
            stop_requested: false,
            incremental: false,
            auth_ref: None,
            authorization_code: Some("A1B2C3".into()),
            capture_ref: None,
            decline_code: None,
            created_at: t(0),
            updated_at: t(60),
            ended_at: Some(t(60)),
            revision: 5,
        }
    }

    pub(crate) fn readings() -> Vec<MeterReading> {
        // 30 kWh in 40 minutes, then 20 minutes idle.
        vec![
            MeterReading::new(t(0), 1_000),
            MeterReading::new(t(40), 31_000),
            MeterReading::new(t(60), 31_000),
        ]
    }

    pub(crate) fn build(s: &PaymentSession, tariff: &Tariff) -> Result<Receipt, ReceiptError> {
        build_receipt(ReceiptInput {
            session: s,
            readings: &readings(),
            tariff: Some(tariff),
            card: CardSummary::new("visa", "4242"),
            refunds: vec![],
            operator: OperatorDetails::default(),
        })
    }

    #[test]
    fn vat_is_summed_per_rate_and_the_total_is_the_capture() {
        let tariff = tariff(ENERGY_AND_PARKING);
        // 30 kWh × 0.59 = 17.70 + 19%; 20 min parking × 6.00/h = 2.00 + 7%.
        // VAT exact: 3.363 + 0.14 = 3.503 -> 3.50 in total.
        let cost = price_session(&tariff, &readings()).unwrap();
        assert_eq!(cost.incl_vat, eur(2320));
        let s = session(2320, 5000, 2320);
        let r = build(&s, &tariff).unwrap();
        assert_eq!(r.total_incl_vat, eur(2320));
        assert_eq!(r.captured_amount, r.total_incl_vat);
        assert_eq!(r.total_excl_vat, eur(1970));
        assert_eq!(r.total_vat, eur(350));
        assert_eq!(r.vat.len(), 2);
        let by_rate: BTreeMap<_, _> = r
            .vat
            .iter()
            .map(|v| (v.rate.clone().unwrap(), (v.net.value, v.vat.value)))
            .collect();
        assert_eq!(by_rate["19"].0, 1770);
        assert_eq!(by_rate["7"].0, 200);
        assert_eq!(by_rate["19"].1 + by_rate["7"].1, 350);
        assert_eq!(r.lines.len(), 2);
        assert_eq!(r.lines[0].kind, LineKind::Energy);
        assert_eq!(r.lines[0].quantity_display.as_deref(), Some("30 kWh"));
        assert_eq!(r.lines[1].kind, LineKind::ParkingTime);
        assert_eq!(r.lines[1].quantity_display.as_deref(), Some("0:20:00 h"));
        assert_eq!(r.energy_kwh, "30");
        assert_eq!(r.card.last4, "4242");
        assert_eq!(r.id, format!("rcpt_{}", s.id));
        assert_eq!(r.started_at, t(0));
        assert_eq!(r.ended_at, t(60));
    }

    #[test]
    fn every_component_gets_its_line() {
        let tariff = tariff(
            r#"{"id":"t","version":3,"currency":"EUR","time_zone":"Europe/Berlin",
            "elements":[{"price_components":[
              {"type":"ENERGY","price":"0.50","vat":"19","step_size":1},
              {"type":"TIME","price":"3.00","vat":"19","step_size":900},
              {"type":"PARKING_TIME","price":"6.00","vat":"7","step_size":60},
              {"type":"FLAT","price":"1.00","vat":"19"}]}]}"#,
        );
        // 30 kWh × 0.50 = 15.00; 40 min charging in 15-minute steps is
        // 45 min × 3.00/h = 2.25; 20 min parking × 6.00/h = 2.00; flat 1.00.
        // VAT exact: 19% of 18.25 = 3.4675, 7% of 2.00 = 0.14; 3.6075 -> 3.61.
        let cost = price_session(&tariff, &readings()).unwrap();
        assert_eq!((cost.excl_vat, cost.incl_vat), (eur(2025), eur(2386)));
        let s = session(2386, 5000, 2386);
        let r = build(&s, &tariff).unwrap();
        let line = |kind| r.lines.iter().find(|l| l.kind == kind).unwrap();
        let energy = line(LineKind::Energy);
        assert_eq!(energy.amount_excl_vat, eur(1500));
        let time = line(LineKind::Time);
        assert_eq!(
            (time.quantity, time.unit.as_deref()),
            (Some(2700), Some("s"))
        );
        assert_eq!(time.quantity_display.as_deref(), Some("0:45:00 h"));
        assert_eq!(time.amount_excl_vat, eur(225));
        let parking = line(LineKind::ParkingTime);
        assert_eq!(parking.amount_excl_vat, eur(200));
        assert_eq!(parking.vat_rate.as_deref(), Some("7"));
        let flat = line(LineKind::Flat);
        assert_eq!(
            (flat.quantity, flat.unit.as_deref()),
            (Some(1), Some("session"))
        );
        assert_eq!(flat.amount_excl_vat, eur(100));
        assert_eq!(r.lines.len(), 4);
        assert_eq!(r.total_excl_vat, eur(2025));
        assert_eq!(r.total_vat, eur(361));
        assert_eq!(r.total_incl_vat, eur(2386));
        let lines: i64 = r.lines.iter().map(|l| l.amount_incl_vat.value).sum();
        assert_eq!(lines, 2386);
        let vat: i64 = r.lines.iter().map(|l| l.vat.value).sum();
        assert_eq!(vat, 361);
    }

    #[test]
    fn a_capped_capture_gets_a_line_and_vat_on_what_was_paid() {
        let tariff = tariff(ENERGY_AND_PARKING);
        let s = session(2320, 2000, 2000);
        let r = build(&s, &tariff).unwrap();
        let capline = r.lines.last().unwrap();
        assert_eq!(capline.kind, LineKind::HoldCap);
        assert_eq!(capline.amount_incl_vat, eur(-320));
        assert_eq!(r.total_incl_vat, eur(2000));
        let gross: i64 = r.vat.iter().map(|v| v.gross.value).sum();
        assert_eq!(gross, 2000);
        // Each rate's VAT is worked out from its reduced gross.
        for v in &r.vat {
            let rate: Decimal = v.rate.as_deref().unwrap().parse().unwrap();
            assert_eq!(v.net.value, net_of_gross(v.gross.value, rate).unwrap());
        }
        // The lines (with the cap) add up to the total.
        let lines: i64 = r.lines.iter().map(|l| l.amount_incl_vat.value).sum();
        assert_eq!(lines, 2000);
    }

    #[test]
    fn the_tariffs_minimum_price_is_a_line_of_its_own() {
        let tariff = tariff(
            r#"{"id":"t","version":3,"currency":"EUR","time_zone":"Europe/Berlin",
            "min_price":{"excl_vat":3000,"incl_vat":3570},
            "elements":[{"price_components":[{"type":"ENERGY","price":"0.59","vat":"19","step_size":1}]}]}"#,
        );
        let s = session(3570, 5000, 3570);
        let r = build(&s, &tariff).unwrap();
        let limit = r.lines.last().unwrap();
        assert_eq!(limit.kind, LineKind::PriceLimit);
        assert_eq!(r.total_excl_vat, eur(3000));
        assert_eq!(r.total_vat, eur(570));
        assert_eq!(r.total_incl_vat, eur(3570));
        assert_eq!(limit.vat_rate.as_deref(), Some("19"));
    }

    #[test]
    fn refusals_say_why() {
        let tariff = tariff(ENERGY_AND_PARKING);
        let mut s = session(2320, 5000, 2320);
        s.status = SessionStatus::Charging;
        assert_eq!(
            build(&s, &tariff).unwrap_err(),
            ReceiptError::NotCompleted(SessionStatus::Charging)
        );
        let mut s = session(2320, 5000, 2320);
        s.tariff_version = 2;
        let e = build(&s, &tariff).unwrap_err();
        assert_eq!(e.code(), "tariff_version_unavailable");
        assert!(e.to_string().contains("version 3"), "{e}");
        // Figures that do not re-price to the stored cost are not invented.
        let s = session(2321, 5000, 2321);
        assert_eq!(build(&s, &tariff).unwrap_err(), ReceiptError::TotalMismatch);
    }

    #[test]
    fn allocation_adds_up() {
        assert_eq!(allocate(100, &[1, 1, 1], 3), vec![34, 33, 33]);
        assert_eq!(allocate(-10, &[1, 3], 2).iter().sum::<i64>(), -10);
        assert_eq!(allocate(7, &[0, 0], 2), vec![7, 0]);
        assert_eq!(allocate(5, &[], 1), vec![5]);
        assert_eq!(net_of_gross(119, Decimal::from(19)).unwrap(), 100);
        assert_eq!(net_of_gross(2000, Decimal::new(75, 1)).unwrap(), 1860);
    }

    #[test]
    fn receipt_ids_round_trip_and_cards_stay_masked() {
        let id = PaymentSessionId::generate();
        assert_eq!(parse_receipt_id(&receipt_id(id)), Some(id));
        assert_eq!(parse_receipt_id("rcpt_nope"), None);
        assert_eq!(parse_receipt_id(&id.to_string()), None);
        assert_eq!(CardSummary::new("visa", "4242424242424242").last4, "????");
    }
}
