//! E-mail: a [`Mailer`] port and the text templates it sends.
//!
//! [`super::smtp::SmtpMailer`] sends through a relay; other code queues
//! mail with [`super::mail_queue::MailQueue`] rather than calling a mailer.
//! [`RecordingMailer`] keeps messages in memory for tests and never logs
//! them (a receipt names a driver's address and spend).
//!
//! Templates are plain `format!` strings rather than a template engine:
//! they are few, fixed, compiled in and checked by the compiler, text only
//! (nothing to escape), and a new dependency in the card-data process
//! should earn its place. Operator-editable templates would change that.

use std::sync::Mutex;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::events::FailedStep;
use crate::money::Money;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailMessage {
    pub to: String,
    pub subject: String,
    pub text: String,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MailError {
    #[error("mail: the recipient address is not valid")]
    Recipient,
    #[error("mail: the relay is unavailable")]
    Unavailable,
    /// The relay answered with a permanent error (5xx), e.g. a refused login.
    #[error("mail: the relay refused the message")]
    Rejected,
}

impl MailError {
    /// The fixed code an attempt records.
    pub fn code(&self) -> &'static str {
        match self {
            MailError::Recipient => "recipient",
            MailError::Unavailable => "unavailable",
            MailError::Rejected => "rejected",
        }
    }
}

#[async_trait]
pub trait Mailer: Send + Sync {
    async fn send(&self, message: EmailMessage) -> Result<(), MailError>;
}

/// Keeps what it is given, for tests. Logs nothing.
#[derive(Debug, Default)]
pub struct RecordingMailer {
    sent: Mutex<Vec<EmailMessage>>,
}

impl RecordingMailer {
    pub fn sent(&self) -> Vec<EmailMessage> {
        match self.sent.lock() {
            Ok(sent) => sent.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }
}

#[async_trait]
impl Mailer for RecordingMailer {
    async fn send(&self, message: EmailMessage) -> Result<(), MailError> {
        check_recipient(&message.to)?;
        match self.sent.lock() {
            Ok(mut sent) => sent.push(message),
            Err(poisoned) => poisoned.into_inner().push(message),
        }
        Ok(())
    }
}

/// The few checks worth making before a relay sees an address: one `@`,
/// no whitespace or header-breaking characters.
pub(crate) fn check_recipient(to: &str) -> Result<(), MailError> {
    let ok = to.len() <= 254
        && to.matches('@').count() == 1
        && !to.starts_with('@')
        && !to.ends_with('@')
        && !to
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == ',');
    if ok {
        Ok(())
    } else {
        Err(MailError::Recipient)
    }
}

/// What a completed session's receipt summary says.
#[derive(Debug, Clone)]
pub struct ReceiptSummary<'a> {
    pub receipt_id: &'a str,
    pub evse_id: &'a str,
    pub energy_wh: i64,
    pub total: Money,
    pub ended_at: DateTime<Utc>,
    /// The card, as the driver knows it: last four digits at most.
    pub card_last4: Option<&'a str>,
}

/// The templates voltvault sends.
#[derive(Debug, Clone)]
pub enum Template<'a> {
    SessionCompleted(ReceiptSummary<'a>),
    /// A session ended in `payment.failed`: its hold, capture or release
    /// failed.
    PaymentFailed {
        evse_id: &'a str,
        at: DateTime<Utc>,
        step: FailedStep,
        /// The card, as the driver knows it: last four digits at most.
        card_last4: Option<&'a str>,
    },
    /// A prepaid wallet fell below its threshold.
    WalletLowBalance {
        balance: Money,
        threshold: Money,
    },
    /// An invoice was issued; the text names where to fetch it.
    InvoiceIssued {
        number: &'a str,
        period: &'a str,
        total: Money,
        url: &'a str,
    },
}

pub fn render(to: &str, template: &Template<'_>) -> EmailMessage {
    let (subject, text) = match template {
        Template::SessionCompleted(r) => (
            format!("Your charging receipt {}", r.receipt_id),
            format!(
                "Thank you for charging with us.\n\n\
                 Charge point: {evse}\n\
                 Energy:       {kwh} kWh\n\
                 Total paid:   {total} (VAT included)\n\
                 Ended:        {ended}\n\
                 {card}\
                 Receipt:      {receipt}\n",
                evse = r.evse_id,
                kwh = kwh(r.energy_wh),
                total = r.total,
                ended = r.ended_at.format("%Y-%m-%d %H:%M UTC"),
                card = match r.card_last4 {
                    Some(last4) => format!("Card:         **** {last4}\n"),
                    None => String::new(),
                },
                receipt = r.receipt_id,
            ),
        ),
        Template::PaymentFailed {
            evse_id,
            at,
            step,
            card_last4,
        } => {
            let at = at.format("%Y-%m-%d %H:%M UTC");
            let (subject, what) = match step {
                FailedStep::Authorize => (
                    "Your card was not accepted",
                    format!(
                        "The payment for charging at {evse_id} on {at} could not be authorized.\n\
                         No money was taken. Please try another card or payment method.\n"
                    ),
                ),
                FailedStep::Capture => (
                    "Your charging payment could not be completed",
                    format!(
                        "The payment for charging at {evse_id} on {at} could not be completed.\n\
                         No money was taken for this session.\n"
                    ),
                ),
                FailedStep::Void => (
                    "The amount held for your charging could not be released",
                    format!(
                        "The amount held for charging at {evse_id} on {at} could not be released.\n\
                         If it is still held in a few days, please contact us.\n"
                    ),
                ),
            };
            let card = match card_last4 {
                Some(last4) => format!("Card: **** {last4}\n"),
                None => String::new(),
            };
            (subject.to_owned(), format!("{what}{card}"))
        }
        Template::WalletLowBalance { balance, threshold } => (
            "Your charging wallet is running low".to_owned(),
            format!(
                "Your prepaid charging wallet holds {balance}, below the {threshold} \
                 you asked us to warn you at.\n\
                 Top it up before your next charge so it is not refused.\n"
            ),
        ),
        Template::InvoiceIssued {
            number,
            period,
            total,
            url,
        } => (
            format!("Your charging invoice {number}"),
            format!(
                "Your invoice {number} for {period} is ready.\n\n\
                 Total:   {total} (VAT included)\n\
                 Invoice: {url}\n"
            ),
        ),
    };
    EmailMessage {
        to: to.to_owned(),
        subject,
        text,
    }
}

/// Wh as kWh with three decimals, without floating point.
fn kwh(wh: i64) -> String {
    let sign = if wh < 0 { "-" } else { "" };
    let wh = wh.unsigned_abs();
    format!("{sign}{}.{:03}", wh / 1000, wh % 1000)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::money::Currency;

    #[tokio::test]
    async fn a_receipt_summary_renders_and_is_recorded() {
        let eur = Currency::parse("EUR").unwrap();
        let ended = DateTime::parse_from_rfc3339("2026-11-25T10:40:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let message = render(
            "driver@example.com",
            &Template::SessionCompleted(ReceiptSummary {
                receipt_id: "rcpt_1",
                evse_id: "DE*VVT*E0001*1",
                energy_wh: 30_250,
                total: Money::new(2125, eur),
                ended_at: ended,
                card_last4: Some("4242"),
            }),
        );
        assert_eq!(message.subject, "Your charging receipt rcpt_1");
        assert!(
            message.text.contains("Energy:       30.250 kWh"),
            "{}",
            message.text
        );
        assert!(
            message
                .text
                .contains(&format!("Total paid:   {}", Money::new(2125, eur)))
        );
        assert!(message.text.contains("**** 4242"));
        assert!(message.text.contains("2026-11-25 10:40 UTC"));

        let mailer = RecordingMailer::default();
        mailer.send(message.clone()).await.unwrap();
        assert_eq!(mailer.sent(), vec![message]);
        let bad = EmailMessage {
            to: "a@b.example\r\nBcc: x@y".into(),
            subject: String::new(),
            text: String::new(),
        };
        assert_eq!(mailer.send(bad).await, Err(MailError::Recipient));
        assert_eq!(mailer.sent().len(), 1);
    }

    #[test]
    fn wallet_and_invoice_mails_name_their_amounts() {
        let eur = Currency::parse("EUR").unwrap();
        let low = render(
            "driver@example.com",
            &Template::WalletLowBalance {
                balance: Money::new(450, eur),
                threshold: Money::new(1000, eur),
            },
        );
        assert_eq!(low.subject, "Your charging wallet is running low");
        assert!(low.text.contains(&Money::new(450, eur).to_string()));
        assert!(low.text.contains(&Money::new(1000, eur).to_string()));
        let invoice = render(
            "fleet@example.com",
            &Template::InvoiceIssued {
                number: "INV-2026-000042",
                period: "November 2026",
                total: Money::new(123_456, eur),
                url: "/v1/invoices/inv_42",
            },
        );
        assert_eq!(invoice.subject, "Your charging invoice INV-2026-000042");
        assert!(invoice.text.contains("November 2026"));
        assert!(invoice.text.contains(&Money::new(123_456, eur).to_string()));
        assert!(invoice.text.contains("/v1/invoices/inv_42"));
    }

    #[test]
    fn a_failed_payment_mail_says_what_failed() {
        let at = DateTime::parse_from_rfc3339("2026-11-25T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let m = render(
            "driver@example.com",
            &Template::PaymentFailed {
                evse_id: "DE*VVT*E0001*1",
                at,
                step: FailedStep::Authorize,
                card_last4: Some("4242"),
            },
        );
        assert_eq!(m.subject, "Your card was not accepted");
        assert!(m.text.contains("No money was taken"));
        assert!(m.text.contains("DE*VVT*E0001*1"));
        assert!(m.text.contains("2026-11-25 10:00 UTC"));
        assert!(m.text.contains("Card: **** 4242"));

        let capture = render(
            "driver@example.com",
            &Template::PaymentFailed {
                evse_id: "DE*VVT*E0001*1",
                at,
                step: FailedStep::Capture,
                card_last4: None,
            },
        );
        assert_eq!(
            capture.subject,
            "Your charging payment could not be completed"
        );
        assert!(capture.text.contains("could not be completed"));
        assert!(capture.text.contains("No money was taken"));
        assert!(!capture.text.contains("Card:"));

        let void = render(
            "driver@example.com",
            &Template::PaymentFailed {
                evse_id: "DE*VVT*E0001*1",
                at,
                step: FailedStep::Void,
                card_last4: None,
            },
        );
        assert!(void.text.contains("could not be released"));
    }
}
