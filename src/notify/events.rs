//! The events a payment session emits, and their JSON bodies.
//!
//! A body names the session, where it charged, amounts and a decline code.
//! It never carries card data, not even the token: an endpoint that needs
//! more asks `GET /v1/payment-sessions/{id}` with its own credentials.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

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

/// The acquirer call whose failure ended a session in `payment.failed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FailedStep {
    /// The hold was declined or failed: nothing was held.
    Authorize,
    /// The capture of the cost failed: nothing was taken.
    Capture,
    /// Releasing the hold (a cancel, an expiry, or completing a session
    /// that cost nothing) failed.
    Void,
}

impl FailedStep {
    /// The step of `kind`, if its failure ends the session.
    pub fn of(kind: IntentKind) -> Option<Self> {
        match kind {
            IntentKind::Authorize => Some(FailedStep::Authorize),
            IntentKind::Capture => Some(FailedStep::Capture),
            IntentKind::Void => Some(FailedStep::Void),
            IntentKind::Increment | IntentKind::Refund => None,
        }
    }
}

#[derive(Serialize)]
struct PaymentFailed<'a> {
    session_id: String,
    status: SessionStatus,
    evse_id: &'a str,
    connector_id: &'a str,
    hold: Money,
    /// The issuer's decline code, for a declined authorization.
    decline_code: Option<&'a str>,
    /// Which call failed.
    step: FailedStep,
    /// The acquirer error's stable code (`payment_declined`,
    /// `acquirer_unavailable`, `wrong_state`, ...).
    error_code: Option<&'a str>,
}

/// The events a settled acquirer call gives rise to: a capture (or the
/// release that completes a session that cost nothing) completes the
/// session and makes its receipt ready; an authorization, capture or
/// release that failed for certain fails the payment (`error_code` is the
/// acquirer error's stable code).
///
/// Called with the session as it was just written; each transition is
/// written once (every write names its revision), and each event id is
/// derived from the session, so the outbox holds each event once. A
/// session fails at most once (`declined` and `failed` are final), so
/// `payment.failed` is one event per session whichever step failed.
pub fn after_step(
    session: &PaymentSession,
    step: IntentKind,
    error_code: Option<&str>,
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
        // Only an authorization can be declined; a failed capture or
        // release leaves the session `failed`.
        (_, SessionStatus::Declined | SessionStatus::Failed) => FailedStep::of(step)
            .and_then(|failed| {
                let data = PaymentFailed {
                    session_id: id.clone(),
                    status: session.status,
                    evse_id: &session.evse_id,
                    connector_id: &session.connector_id,
                    hold: session.hold,
                    decline_code: session.decline_code.as_deref(),
                    step: failed,
                    error_code,
                };
                event(
                    session,
                    format!("evt_{id}_payment_failed"),
                    EventType::PaymentFailed,
                    at,
                    data,
                )
            })
            .into_iter()
            .collect(),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::PaymentSessionId;
    use crate::money::Currency;

    fn session(status: SessionStatus) -> PaymentSession {
        let eur = Currency::parse("EUR").unwrap();
        let now = DateTime::<Utc>::UNIX_EPOCH;
        PaymentSession {
            id: PaymentSessionId::generate(),
            tenant: TenantId::generate(),
            created_by: "p".into(),
            idem_key: "k".into(),
            evse_id: "DE*VVT*E0001*1".into(),
            connector_id: "1".into(),
            tariff_id: "standard".into(),
            tariff_version: 1,
            token: "1289582873644242".into(),
            account: None,
            rfid: None,
            acquirer: "simulator".into(),
            hold: Money::new(5000, eur),
            authorized: Money::new(5000, eur),
            cost: Money::new(878, eur),
            energy_wh: 12_500,
            captured: None,
            refunded: Money::zero(eur),
            status,
            stop_requested: false,
            incremental: true,
            auth_ref: Some("sim_auth_000001".into()),
            authorization_code: None,
            capture_ref: None,
            decline_code: None,
            created_at: now,
            updated_at: now,
            ended_at: Some(now),
            revision: 3,
        }
    }

    fn data(event: &OutboxEvent) -> serde_json::Value {
        let body: serde_json::Value = serde_json::from_str(&event.payload).unwrap();
        assert_eq!(body["id"], event.id.as_str());
        assert_eq!(body["type"], event.event_type.as_str());
        body["data"].clone()
    }

    #[test]
    fn every_failed_step_that_ends_a_session_fails_the_payment_once() {
        let at = DateTime::<Utc>::UNIX_EPOCH;
        let mut declined = session(SessionStatus::Declined);
        declined.decline_code = Some("insufficient_funds".into());
        let cases = [
            (
                declined,
                IntentKind::Authorize,
                "payment_declined",
                "authorize",
            ),
            (
                session(SessionStatus::Failed),
                IntentKind::Authorize,
                "acquirer_unavailable",
                "authorize",
            ),
            (
                session(SessionStatus::Failed),
                IntentKind::Capture,
                "wrong_state",
                "capture",
            ),
            (
                session(SessionStatus::Failed),
                IntentKind::Void,
                "unknown_reference",
                "void",
            ),
        ];
        for (s, kind, code, step) in cases {
            let events = after_step(&s, kind, Some(code), at);
            assert_eq!(events.len(), 1, "{step}");
            let e = &events[0];
            assert_eq!(e.event_type, EventType::PaymentFailed);
            assert_eq!(e.id, format!("evt_{}_payment_failed", s.id));
            let d = data(e);
            assert_eq!(d["session_id"], s.id.to_string());
            assert_eq!(d["status"], s.status.as_str());
            assert_eq!(d["step"], step);
            assert_eq!(d["error_code"], code);
            assert_eq!(d["decline_code"], serde_json::json!(s.decline_code));
            assert_eq!(d["hold"]["value"], 5000);
            // Never the token or any part of a card number.
            assert!(!e.payload.contains(&s.token) && !e.payload.contains("4242"));
        }
    }

    #[test]
    fn failures_that_do_not_end_a_session_emit_nothing() {
        let at = DateTime::<Utc>::UNIX_EPOCH;
        // A refused raise stops the charger; a refused refund leaves the
        // session completed.
        let mut charging = session(SessionStatus::Charging);
        charging.stop_requested = true;
        assert!(
            after_step(
                &charging,
                IntentKind::Increment,
                Some("payment_declined"),
                at
            )
            .is_empty()
        );
        let mut completed = session(SessionStatus::Completed);
        completed.captured = Some(completed.cost);
        assert!(
            after_step(
                &completed,
                IntentKind::Refund,
                Some("refund_exceeds_capture"),
                at
            )
            .is_empty()
        );
        // A capture that worked completes the session, and fails nothing.
        let types: Vec<EventType> = after_step(&completed, IntentKind::Capture, None, at)
            .iter()
            .map(|e| e.event_type)
            .collect();
        assert_eq!(
            types,
            vec![EventType::SessionCompleted, EventType::ReceiptReady]
        );
        // A release that worked cancels the session: no event.
        assert!(
            after_step(
                &session(SessionStatus::Cancelled),
                IntentKind::Void,
                None,
                at
            )
            .is_empty()
        );
    }
}
