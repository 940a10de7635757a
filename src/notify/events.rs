//! The events a payment session emits, and their JSON bodies.
//!
//! A body names the session, where it charged, amounts and a decline code.
//! It never carries card data, not even the token: an endpoint that needs
//! more asks `GET /v1/payment-sessions/{id}` with its own credentials.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{EventType, OutboxEvent};
use crate::ids::TenantId;
use crate::money::Money;
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

#[derive(Serialize)]
struct PaymentFailed<'a> {
    session_id: String,
    status: SessionStatus,
    evse_id: &'a str,
    connector_id: &'a str,
    hold: Money,
    decline_code: Option<&'a str>,
}

/// The event a settled acquirer call gives rise to, if any: a capture (or
/// the release that completes a session that cost nothing) completes the
/// session; a hold that was declined or failed fails the payment.
///
/// Called with the session as it was just written; each transition is
/// written once (every write names its revision), and the event id is
/// derived from the session, so the outbox holds each event once.
pub fn after_step(
    session: &PaymentSession,
    step: IntentKind,
    at: DateTime<Utc>,
) -> Option<OutboxEvent> {
    let id = session.id.to_string();
    match (step, session.status) {
        (IntentKind::Capture | IntentKind::Void, SessionStatus::Completed) => {
            let event_id = format!("evt_{id}_completed");
            let data = SessionCompleted {
                session_id: id.clone(),
                status: session.status,
                evse_id: &session.evse_id,
                connector_id: &session.connector_id,
                tariff_id: &session.tariff_id,
                energy_wh: session.energy_wh,
                captured_amount: session
                    .captured
                    .unwrap_or(Money::zero(session.hold.currency)),
                released_amount: session.released(),
                receipt_id: format!("rcpt_{id}"),
                ended_at: session.ended_at,
            };
            event(session, event_id, EventType::SessionCompleted, at, data)
        }
        (IntentKind::Authorize, SessionStatus::Declined | SessionStatus::Failed) => {
            let event_id = format!("evt_{id}_payment_failed");
            let data = PaymentFailed {
                session_id: id.clone(),
                status: session.status,
                evse_id: &session.evse_id,
                connector_id: &session.connector_id,
                hold: session.hold,
                decline_code: session.decline_code.as_deref(),
            };
            event(session, event_id, EventType::PaymentFailed, at, data)
        }
        _ => None,
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
