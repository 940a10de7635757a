//! Notifications: signed webhooks to the tenant's endpoints, and e-mail
//! queued with [`mail_queue::MailQueue`] and sent through a [`mail::Mailer`]
//! (an SMTP relay, [`smtp::SmtpMailer`]).
//!
//! Events are queued in an outbox table (`webhook_deliveries`) right after
//! the write that causes them, and a worker on every node delivers them with
//! retries. Bodies name sessions, amounts and decline codes: never card
//! data, never a token's card.

pub mod delivery;
pub mod events;
pub mod mail;
pub mod mail_queue;
pub mod mailing;
pub mod signature;
pub mod smtp;
pub mod webhooks;

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ids::TenantId;
use crate::store::Store;

/// The events an endpoint may subscribe to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
pub enum EventType {
    #[serde(rename = "session.completed")]
    SessionCompleted,
    #[serde(rename = "payment.failed")]
    PaymentFailed,
    #[serde(rename = "receipt.ready")]
    ReceiptReady,
    #[serde(rename = "wallet.low_balance")]
    WalletLowBalance,
    #[serde(rename = "invoice.issued")]
    InvoiceIssued,
}

impl EventType {
    pub const ALL: &'static [EventType] = &[
        EventType::SessionCompleted,
        EventType::PaymentFailed,
        EventType::ReceiptReady,
        EventType::WalletLowBalance,
        EventType::InvoiceIssued,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventType::SessionCompleted => "session.completed",
            EventType::PaymentFailed => "payment.failed",
            EventType::ReceiptReady => "receipt.ready",
            EventType::WalletLowBalance => "wallet.low_balance",
            EventType::InvoiceIssued => "invoice.issued",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|e| e.as_str() == raw)
    }

    /// The stored form: names joined by commas.
    pub fn join(events: &[EventType]) -> String {
        events
            .iter()
            .map(|e| e.as_str())
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The stored form back; `None` if any name is unknown.
    pub fn parse_list(raw: &str) -> Option<Vec<EventType>> {
        raw.split(',')
            .filter(|s| !s.is_empty())
            .map(Self::parse)
            .collect()
    }
}

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryState {
    /// Not yet accepted by the endpoint; retried until `max_attempts`.
    Pending,
    /// The endpoint answered 2xx.
    Delivered,
    /// Every attempt failed; kept for the log, never sent again.
    Dead,
}

impl DeliveryState {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryState::Pending => "pending",
            DeliveryState::Delivered => "delivered",
            DeliveryState::Dead => "dead",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "pending" => Some(DeliveryState::Pending),
            "delivered" => Some(DeliveryState::Delivered),
            "dead" => Some(DeliveryState::Dead),
            _ => None,
        }
    }
}

/// An event ready for the outbox: its JSON body is final (it is what gets
/// signed), and its id is derived from its cause, so emitting it twice
/// queues it once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxEvent {
    pub id: String,
    pub tenant: TenantId,
    pub event_type: EventType,
    pub payload: String,
    pub at: DateTime<Utc>,
}

/// The port domain services tell about events. It cannot fail the caller:
/// the fact it reports is already written (see [`OutboxNotifier`]).
#[async_trait]
pub trait Notifier: Send + Sync {
    async fn notify(&self, event: OutboxEvent);
}

/// Tells no one (a deployment or test without notifications).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoNotifier;

#[async_trait]
impl Notifier for NoNotifier {
    async fn notify(&self, _event: OutboxEvent) {}
}

/// Queues events in the store's outbox for the delivery worker.
///
/// Called right after the session write, not inside its transaction: the
/// payment code stays as it is. The failure mode is a lost notification,
/// never a lost or doubled payment: if the node dies between the two
/// writes, or the outbox insert fails, the event is not queued (an error is
/// logged with the event type and id). The money already moved, so the
/// caller's request is not failed for it.
pub struct OutboxNotifier {
    store: Arc<dyn Store>,
}

impl OutboxNotifier {
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self { store }
    }
}

#[async_trait]
impl Notifier for OutboxNotifier {
    async fn notify(&self, event: OutboxEvent) {
        match self.store.enqueue_event(&event).await {
            Ok(queued) => tracing::debug!(
                event.type = event.event_type.as_str(),
                event.id = %event.id,
                queued,
                "event queued for webhooks"
            ),
            Err(_) => tracing::error!(
                event.type = event.event_type.as_str(),
                event.id = %event.id,
                "event could not be queued for webhooks; it will not be delivered"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_types_round_trip_through_their_stored_form() {
        let all = EventType::ALL.to_vec();
        assert_eq!(EventType::parse_list(&EventType::join(&all)), Some(all));
        assert_eq!(EventType::parse_list("session.completed,nope"), None);
        assert_eq!(
            EventType::parse("payment.failed"),
            Some(EventType::PaymentFailed)
        );
        for e in EventType::ALL {
            let json = serde_json::to_string(e).unwrap();
            assert_eq!(json, format!("\"{}\"", e.as_str()));
        }
    }
}
