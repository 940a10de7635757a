//! Monthly invoices: a line per completed session, built from the session's
//! receipt so that an invoice line and its receipt agree to the cent, and a
//! VAT summary per rate. Sessions were paid by card or wallet when they
//! ended, so an invoice states what was paid; nothing is due.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Datelike, NaiveDate, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::receipt::{OperatorDetails, Receipt, VatSummary};
use crate::ids::{AccountId, PaymentSessionId};
use crate::money::{Currency, Money};

/// A calendar month in UTC, written `YYYY-MM`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct BillingPeriod {
    year: i32,
    month: u32,
}

impl BillingPeriod {
    pub fn parse(raw: &str) -> Option<Self> {
        let (y, m) = raw.split_once('-')?;
        if y.len() != 4 || m.len() != 2 {
            return None;
        }
        let (year, month) = (y.parse().ok()?, m.parse().ok()?);
        NaiveDate::from_ymd_opt(year, month, 1)?;
        Some(Self { year, month })
    }

    /// The month `at` falls in.
    pub fn containing(at: DateTime<Utc>) -> Self {
        Self {
            year: at.year(),
            month: at.month(),
        }
    }

    /// The month before.
    pub fn previous(&self) -> Self {
        if self.month == 1 {
            Self {
                year: self.year - 1,
                month: 12,
            }
        } else {
            Self {
                year: self.year,
                month: self.month - 1,
            }
        }
    }

    pub fn start(&self) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(self.year, self.month, 1, 0, 0, 0)
            .single()
            .unwrap_or(DateTime::<Utc>::MAX_UTC)
    }

    /// The first instant of the next month.
    pub fn end(&self) -> DateTime<Utc> {
        let (year, month) = if self.month == 12 {
            (self.year + 1, 1)
        } else {
            (self.year, self.month + 1)
        };
        Utc.with_ymd_and_hms(year, month, 1, 0, 0, 0)
            .single()
            .unwrap_or(DateTime::<Utc>::MAX_UTC)
    }
}

impl fmt::Display for BillingPeriod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}", self.year, self.month)
    }
}

/// Who the invoice is addressed to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct BillTo {
    #[schema(value_type = String)]
    pub account_id: AccountId,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
}

/// One charging session on an invoice: its receipt's totals.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct InvoiceLine {
    #[schema(value_type = String)]
    pub session_id: PaymentSessionId,
    pub receipt_id: String,
    pub evse_id: String,
    pub started_at: DateTime<Utc>,
    pub ended_at: DateTime<Utc>,
    pub energy_wh: i64,
    pub net: Money,
    pub vat: Money,
    pub gross: Money,
    /// Refunded on this session before the invoice was issued.
    pub refunded: Money,
}

/// Everything an invoice says besides its identity (id, number, issue time),
/// stored as issued.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct InvoiceDocument {
    /// `YYYY-MM`, a calendar month in UTC.
    pub period: String,
    pub bill_to: BillTo,
    pub operator: OperatorDetails,
    #[schema(value_type = String, example = "EUR")]
    pub currency: Currency,
    pub lines: Vec<InvoiceLine>,
    pub vat: Vec<VatSummary>,
    pub total_excl_vat: Money,
    pub total_vat: Money,
    pub total_incl_vat: Money,
    pub refunded_amount: Money,
    /// Paid when each session ended (captured minus refunded).
    pub amount_paid: Money,
    pub amount_due: Money,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum InvoiceError {
    #[error("period: no completed sessions to invoice for this account")]
    NothingToInvoice,
    #[error("period: the sessions were paid in more than one currency")]
    MixedCurrencies,
    #[error("amount: out of range")]
    Overflow,
}

/// The invoice of `receipts` (one per session, oldest first).
pub fn build_invoice(
    period: BillingPeriod,
    bill_to: BillTo,
    operator: OperatorDetails,
    receipts: &[Receipt],
) -> Result<InvoiceDocument, InvoiceError> {
    let first = receipts.first().ok_or(InvoiceError::NothingToInvoice)?;
    let currency = first.currency;
    if receipts.iter().any(|r| r.currency != currency) {
        return Err(InvoiceError::MixedCurrencies);
    }
    let add = |a: Money, b: Money| a.checked_add(b).map_err(|_| InvoiceError::Overflow);
    let zero = Money::zero(currency);
    let mut by_rate: BTreeMap<Option<String>, VatSummary> = BTreeMap::new();
    let (mut net, mut vat, mut gross, mut refunded, mut paid) = (zero, zero, zero, zero, zero);
    let mut lines = Vec::with_capacity(receipts.len());
    for r in receipts {
        for v in &r.vat {
            let entry = by_rate.entry(v.rate.clone()).or_insert(VatSummary {
                rate: v.rate.clone(),
                net: zero,
                vat: zero,
                gross: zero,
            });
            entry.net = add(entry.net, v.net)?;
            entry.vat = add(entry.vat, v.vat)?;
            entry.gross = add(entry.gross, v.gross)?;
        }
        net = add(net, r.total_excl_vat)?;
        vat = add(vat, r.total_vat)?;
        gross = add(gross, r.total_incl_vat)?;
        refunded = add(refunded, r.refunded_amount)?;
        paid = add(paid, r.net_paid)?;
        lines.push(InvoiceLine {
            session_id: r.session_id,
            receipt_id: r.id.clone(),
            evse_id: r.evse_id.clone(),
            started_at: r.started_at,
            ended_at: r.ended_at,
            energy_wh: r.energy_wh,
            net: r.total_excl_vat,
            vat: r.total_vat,
            gross: r.total_incl_vat,
            refunded: r.refunded_amount,
        });
    }
    Ok(InvoiceDocument {
        period: period.to_string(),
        bill_to,
        operator,
        currency,
        lines,
        vat: by_rate.into_values().collect(),
        total_excl_vat: net,
        total_vat: vat,
        total_incl_vat: gross,
        refunded_amount: refunded,
        amount_paid: paid,
        amount_due: zero,
    })
}

/// The printed number of the `seq`-th invoice of a tenant: `INV-000042`.
pub fn invoice_number(prefix: &str, seq: i64) -> String {
    format!("{prefix}{seq:06}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_are_calendar_months_in_utc() {
        let p = BillingPeriod::parse("2026-12").unwrap();
        assert_eq!(p.to_string(), "2026-12");
        assert_eq!(p.start().to_rfc3339(), "2026-12-01T00:00:00+00:00");
        assert_eq!(p.end().to_rfc3339(), "2027-01-01T00:00:00+00:00");
        let feb = BillingPeriod::parse("2028-02").unwrap();
        assert_eq!(feb.end().to_rfc3339(), "2028-03-01T00:00:00+00:00");
        for bad in [
            "2026-13",
            "2026-00",
            "26-11",
            "2026-1",
            "2026/11",
            "",
            "2026-11-01",
        ] {
            assert!(BillingPeriod::parse(bad).is_none(), "{bad}");
        }
        let at = DateTime::parse_from_rfc3339("2026-11-30T23:59:59Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(BillingPeriod::containing(at).to_string(), "2026-11");
        let jan = BillingPeriod::parse("2027-01").unwrap();
        assert_eq!(jan.previous().to_string(), "2026-12");
        assert_eq!(jan.previous().previous().to_string(), "2026-11");
    }

    #[test]
    fn numbers_are_zero_padded_sequence_numbers() {
        assert_eq!(invoice_number("INV-", 42), "INV-000042");
        assert_eq!(invoice_number("", 1_234_567), "1234567");
    }

    #[test]
    fn an_empty_month_is_not_invoiced() {
        let bill_to = BillTo {
            account_id: AccountId::generate(),
            name: "A".into(),
            email: None,
        };
        let operator = OperatorDetails {
            name: Some("Op".into()),
            address: None,
            vat_id: None,
        };
        assert_eq!(
            build_invoice(
                BillingPeriod::parse("2026-11").unwrap(),
                bill_to,
                operator,
                &[]
            ),
            Err(InvoiceError::NothingToInvoice)
        );
    }
}
