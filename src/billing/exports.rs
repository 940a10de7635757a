//! Accounting exports: one CSV row per session, one CSV row per money
//! movement (capture, refund or wallet top-up), and revenue grouped by site, EVSE or day.
//! Amounts in CSV are decimals in major units of the row's currency
//! (`63.18`), computed from integer minor units.
//!
//! Sessions are selected by when they started (`created_at`), the same
//! instant the history pages by; a day is a UTC calendar day. Money
//! movements are selected by when they succeeded (see
//! [`PaymentMovement`]), so a refund shows in the period it was made in,
//! whenever its session started.

use std::collections::BTreeMap;

use serde::Serialize;
use utoipa::ToSchema;

use super::cdr::site_of;
use super::receipt::receipt_id;
use crate::money::{Currency, Money};
use crate::payments::session::{PaymentSession, SessionStatus};
use crate::store::billing::PaymentMovement;

pub const CSV_HEADER: [&str; 19] = [
    "session_id",
    "receipt_id",
    "status",
    "created_at",
    "ended_at",
    "site",
    "evse_id",
    "connector_id",
    "tariff_id",
    "tariff_version",
    "token",
    "authorization_code",
    "currency",
    "energy_wh",
    "authorized",
    "captured",
    "refunded",
    "net",
    "acquirer",
];

/// An amount as a decimal in major units: `6318 EUR` is `63.18`.
pub fn decimal(m: Money) -> String {
    let exp = u32::from(m.currency.exponent());
    let sign = if m.value < 0 { "-" } else { "" };
    let abs = m.value.unsigned_abs();
    if exp == 0 {
        return format!("{sign}{abs}");
    }
    let unit = 10u64.pow(exp);
    format!(
        "{sign}{}.{:0width$}",
        abs / unit,
        abs % unit,
        width = exp as usize
    )
}

/// A text cell a spreadsheet would run as a formula gets a leading `'`.
fn cell(text: &str) -> String {
    if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{text}")
    } else {
        text.to_owned()
    }
}

#[derive(Debug, thiserror::Error)]
#[error("the CSV export could not be written")]
pub struct ExportError;

/// A CSV writer: RFC 4180, quoted where needed, CRLF.
fn csv_writer() -> csv::Writer<Vec<u8>> {
    csv::WriterBuilder::new()
        .terminator(csv::Terminator::CRLF)
        .from_writer(Vec::new())
}

/// The CSV of these sessions (RFC 4180: quoted where needed, CRLF).
pub fn sessions_csv(sessions: &[PaymentSession]) -> Result<Vec<u8>, ExportError> {
    let mut w = csv_writer();
    w.write_record(CSV_HEADER).map_err(|_| ExportError)?;
    for s in sessions {
        let zero = Money::zero(s.hold.currency);
        let captured = s.captured.unwrap_or(zero);
        let net = captured.checked_sub(s.refunded).unwrap_or(zero);
        let record = [
            s.id.to_string(),
            if s.status == SessionStatus::Completed {
                receipt_id(s.id)
            } else {
                String::new()
            },
            s.status.as_str().to_owned(),
            s.created_at.to_rfc3339(),
            s.ended_at.map(|t| t.to_rfc3339()).unwrap_or_default(),
            cell(site_of(&s.evse_id)),
            cell(&s.evse_id),
            cell(&s.connector_id),
            cell(&s.tariff_id),
            s.tariff_version.to_string(),
            cell(&s.token),
            cell(s.authorization_code.as_deref().unwrap_or("")),
            s.hold.currency.code().to_owned(),
            s.energy_wh.to_string(),
            decimal(s.authorized),
            decimal(captured),
            decimal(s.refunded),
            decimal(net),
            cell(&s.acquirer),
        ];
        w.write_record(&record).map_err(|_| ExportError)?;
    }
    w.into_inner().map_err(|_| ExportError)
}

pub const PAYMENTS_CSV_HEADER: [&str; 12] = [
    "at",
    "kind",
    "session_id",
    "receipt_id",
    "site",
    "evse_id",
    "currency",
    "amount",
    "reason",
    "acquirer",
    "reference",
    "account_id",
];

/// The CSV of these money movements, one row each (RFC 4180, CRLF):
/// `at` is when the capture, refund or top-up succeeded, `amount` is always
/// positive (`kind` says which way it went), `reason` is a refund's and
/// `reference` the acquirer idempotency key that names the call. A wallet
/// top-up has no session, site or EVSE; its `account_id` says whose wallet.
pub fn payments_csv(movements: &[PaymentMovement]) -> Result<Vec<u8>, ExportError> {
    let mut w = csv_writer();
    w.write_record(PAYMENTS_CSV_HEADER)
        .map_err(|_| ExportError)?;
    for m in movements {
        let evse = m.evse_id.as_deref().unwrap_or("");
        let record = [
            m.at.to_rfc3339(),
            m.kind.as_str().to_owned(),
            m.session.map(|s| s.to_string()).unwrap_or_default(),
            match (m.session, m.session_status) {
                (Some(s), Some(SessionStatus::Completed)) => receipt_id(s),
                _ => String::new(),
            },
            cell(site_of(evse)),
            cell(evse),
            m.amount.currency.code().to_owned(),
            decimal(m.amount),
            cell(m.reason.as_deref().unwrap_or("")),
            cell(m.acquirer.as_deref().unwrap_or("")),
            cell(&m.acquirer_key),
            m.account.map(|a| a.to_string()).unwrap_or_default(),
        ];
        w.write_record(&record).map_err(|_| ExportError)?;
    }
    w.into_inner().map_err(|_| ExportError)
}

/// How revenue is grouped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grouping {
    /// [`site_of`] the EVSE id.
    Site,
    Evse,
    /// UTC day the session started.
    Day,
}

impl Grouping {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "site" => Some(Grouping::Site),
            "evse" => Some(Grouping::Evse),
            "day" => Some(Grouping::Day),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Grouping::Site => "site",
            Grouping::Evse => "evse",
            Grouping::Day => "day",
        }
    }
}

/// Money taken in one group and currency.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct RevenueRow {
    /// The site, EVSE id or day (`YYYY-MM-DD`).
    pub key: String,
    #[schema(value_type = String, example = "EUR")]
    pub currency: Currency,
    /// Sessions with a capture.
    pub sessions: u64,
    pub energy_wh: i64,
    pub captured: Money,
    pub refunded: Money,
    /// Captured minus refunded.
    pub net: Money,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Revenue {
    /// `site`, `evse` or `day`.
    pub group: String,
    pub rows: Vec<RevenueRow>,
}

/// Revenue of the completed sessions among these, by group and currency.
pub fn revenue(sessions: &[PaymentSession], group: Grouping) -> Revenue {
    let mut rows: BTreeMap<(String, String), RevenueRow> = BTreeMap::new();
    for s in sessions {
        let Some(captured) = s.captured else { continue };
        if s.status != SessionStatus::Completed {
            continue;
        }
        let key = match group {
            Grouping::Site => site_of(&s.evse_id).to_owned(),
            Grouping::Evse => s.evse_id.clone(),
            Grouping::Day => s.created_at.format("%Y-%m-%d").to_string(),
        };
        let currency = captured.currency;
        let zero = Money::zero(currency);
        let row = rows
            .entry((key.clone(), currency.code().to_owned()))
            .or_insert(RevenueRow {
                key,
                currency,
                sessions: 0,
                energy_wh: 0,
                captured: zero,
                refunded: zero,
                net: zero,
            });
        row.sessions += 1;
        row.energy_wh = row.energy_wh.saturating_add(s.energy_wh);
        row.captured = Money::new(row.captured.value.saturating_add(captured.value), currency);
        row.refunded = Money::new(
            row.refunded.value.saturating_add(s.refunded.value),
            currency,
        );
        row.net = Money::new(
            row.captured.value.saturating_sub(row.refunded.value),
            currency,
        );
    }
    Revenue {
        group: group.as_str().to_owned(),
        rows: rows.into_values().collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_are_decimals_of_minor_units() {
        let eur = Currency::parse("EUR").unwrap();
        assert_eq!(decimal(Money::new(6318, eur)), "63.18");
        assert_eq!(decimal(Money::new(-5, eur)), "-0.05");
        assert_eq!(
            decimal(Money::new(500, Currency::parse("JPY").unwrap())),
            "500"
        );
    }

    #[test]
    fn formulas_are_defused() {
        assert_eq!(cell("=HYPERLINK(1)"), "'=HYPERLINK(1)");
        assert_eq!(cell("DE*VVT*E1*1"), "DE*VVT*E1*1");
    }

    #[test]
    fn payments_csv_has_a_header_a_row_per_movement_and_defused_cells() {
        use crate::ids::PaymentSessionId;
        use crate::store::billing::MovementKind;

        let eur = Currency::parse("EUR").unwrap();
        let session = PaymentSessionId::from_uuid(uuid::Uuid::nil());
        let at = chrono::DateTime::parse_from_rfc3339("2026-11-03T09:30:00Z")
            .unwrap()
            .with_timezone(&chrono::Utc);
        let refund = PaymentMovement {
            at,
            kind: MovementKind::Refund,
            session: Some(session),
            session_status: Some(SessionStatus::Completed),
            evse_id: Some("DE*VVT*E0001*1".into()),
            account: None,
            amount: Money::new(259, eur),
            reason: Some("=HYPERLINK(\"x\"), waived".into()),
            acquirer: Some("simulator".into()),
            acquirer_key: "vv_refund_1".into(),
        };
        let capture = PaymentMovement {
            kind: MovementKind::Capture,
            amount: Money::new(1759, eur),
            reason: None,
            acquirer_key: "vv_capture_1".into(),
            ..refund.clone()
        };
        let account = crate::ids::AccountId::from_uuid(uuid::Uuid::nil());
        let top_up = PaymentMovement {
            at,
            kind: MovementKind::WalletTopUp,
            session: None,
            session_status: None,
            evse_id: None,
            account: Some(account),
            amount: Money::new(2500, eur),
            reason: None,
            acquirer: None,
            acquirer_key: "vv_topup_tu_1_capture".into(),
        };
        let csv = String::from_utf8(payments_csv(&[capture, refund, top_up]).unwrap()).unwrap();
        let lines: Vec<&str> = csv.split("\r\n").collect();
        assert_eq!(
            lines[0],
            "at,kind,session_id,receipt_id,site,evse_id,currency,amount,reason,acquirer,reference,account_id"
        );
        let id = session.to_string();
        assert_eq!(
            lines[1],
            format!(
                "2026-11-03T09:30:00+00:00,capture,{id},rcpt_{id},DE*VVT*E0001,DE*VVT*E0001*1,\
                 EUR,17.59,,simulator,vv_capture_1,"
            )
        );
        // The reason starts with `=`: defused, and quoted for its comma and quotes.
        assert_eq!(
            lines[2],
            format!(
                "2026-11-03T09:30:00+00:00,refund,{id},rcpt_{id},DE*VVT*E0001,DE*VVT*E0001*1,\
                 EUR,2.59,\"'=HYPERLINK(\"\"x\"\"), waived\",simulator,vv_refund_1,"
            )
        );
        assert_eq!(
            lines[3],
            format!(
                "2026-11-03T09:30:00+00:00,wallet_top_up,,,,,EUR,25.00,,,vv_topup_tu_1_capture,{account}"
            )
        );
        assert_eq!(lines[4], "");
        assert_eq!(lines.len(), 5);
    }
}
