//! The events a payment session emits, and their JSON bodies.
//!
//! A body names the session, where it charged, amounts and a decline code.
//! It never carries card data, not even the token: an endpoint that needs
//! more asks `GET /v1/payment-sessions/{id}` with its own credentials.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{EventType, OutboxEvent};
use crate::billing::receipt::{receipt_id, receipt_path};
use crate::ids::TenantId;
use crate::money::{Currency, Money};
use crate::payments::session::{IntentKind, PaymentSession, SessionStatus};

#[derive(Serialize)]
struct Envelope<'a, T: Serialize> {
    id: &'a str,
    #[serde(rename = "type")]
    event_type: &'static str,
    created_at: DateTime<Utc>,
    data: T,
}

#[derive(Serialize)]
struct SessionCompleted<'a> {
    session_id: String,
    status: SessionStatus,
    evse_id: &'a str,
    connector_id: &'a str,
    tariff_id: &'a str,
    energy_wh: i64,
    /// What the driver pays, VAT included.
    captured_amount: Money,
    released_amount: Option<Money>,
    receipt_id: String,
    ended_at: Option<DateTime<Utc>>,
}

/// What `receipt.ready` says: where the receipt is and what it totals.
/// The receipt itself (card brand and last four included) is fetched with
/// the endpoint owner's credentials.
#[derive(Serialize)]
struct ReceiptReady {
    receipt_id: String,
    session_id: String,
    /// The path of `GET /v1/receipts/{id}` (JSON, HTML or PDF).
    url: String,
    /// The receipt's `total_incl_vat`, which is the captured amount.
    total: Money,
    currency: Currency,
}

#[derive(Serialize)]
struct PaymentFailed<'a> {
    session_id: String,
    status: SessionStatus,
    evse_id: &'a str,
    connector_id: &'a str,
    hold: Money,
    decline_code: Option<&'a str>,
}

/// The events a settled acquirer call gives rise to: a capture (or the
/// release that completes a session that cost nothing) completes the
/// session and makes its receipt ready; a hold that was declined or failed
/// fails the payment.
///
/// Called with the session as it was just written; each transition is
/// written once (every write names its revision), and each event id is
/// derived from the session, so the outbox holds each event once.
pub fn after_step(
    session: &PaymentSession,
    step: IntentKind,
    at: DateTime<Utc>,
) -> Vec<OutboxEvent> {
    let id = session.id.to_string();
    match (step, session.status) {
        (IntentKind::Capture | IntentKind::Void, SessionStatus::Completed) => {
            let captured = session
                .captured
                .unwrap_or(Money::zero(session.hold.currency));
            let completed = SessionCompleted {
                session_id: id.clone(),
                status: session.status,
                evse_id: &session.evse_id,
                connector_id: &session.connector_id,
                tariff_id: &session.tariff_id,
                energy_wh: session.energy_wh,
                captured_amount: captured,
                released_amount: session.released(),
                receipt_id: receipt_id(session.id),
                ended_at: session.ended_at,
            };
            // A receipt is derived from the readings of a completed session
            // (ADR 0007), so it exists as soon as the session is written.
            let ready = ReceiptReady {
                receipt_id: receipt_id(session.id),
                session_id: id.clone(),
                url: receipt_path(session.id),
                total: captured,
                currency: captured.currency,
            };
            [
                event(
                    session,
                    format!("evt_{id}_completed"),
                    EventType::SessionCompleted,
                    at,
                    completed,
                ),
                event(
                    session,
                    format!("evt_{id}_receipt_ready"),
                    EventType::ReceiptReady,
                    at,
                    ready,
                ),
            ]
            .into_iter()
            .flatten()
            .collect()
        }
        (IntentKind::Authorize, SessionStatus::Declined | SessionStatus::Failed) => {
            let data = PaymentFailed {
                session_id: id.clone(),
                status: session.status,
                evse_id: &session.evse_id,
                connector_id: &session.connector_id,
                hold: session.hold,
                decline_code: session.decline_code.as_deref(),
            };
            event(
                session,
                format!("evt_{id}_payment_failed"),
                EventType::PaymentFailed,
                at,
                data,
            )
            .into_iter()
            .collect()
        }
        _ => Vec::new(),
    }
}

fn event<T: Serialize>(
    session: &PaymentSession,
    id: String,
    event_type: EventType,
    at: DateTime<Utc>,
    data: T,
) -> Option<OutboxEvent> {
    tenant_event(session.tenant, id, event_type, at, data)
}

/// An event of `tenant` with `data` in the common envelope; `id` must be
/// derived from what happened, so that telling it twice queues it once.
pub fn tenant_event<T: Serialize>(
    tenant: TenantId,
    id: String,
    event_type: EventType,
    at: DateTime<Utc>,
    data: T,
) -> Option<OutboxEvent> {
    let payload = serde_json::to_string(&Envelope {
        id: &id,
        event_type: event_type.as_str(),
        created_at: at,
        data,
    })
    .ok()?;
    Some(OutboxEvent {
        id,
        tenant,
        event_type,
        payload,
        at,
    })
}
