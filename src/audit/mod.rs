//! The audit trail (PCI DSS requirement 10). Every part of voltvault that
//! touches card data, keys, money or access records an [`AuditEvent`]
//! through an [`AuditSink`] before it answers; a sink that fails makes the
//! request fail (fail closed).

mod event;
mod log_sink;

pub use event::{ActorKind, AuditEvent, Outcome};
pub use log_sink::LogSink;

use async_trait::async_trait;

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// The event could not be made durable; the caller must fail its request.
    #[error("the audit trail is unavailable")]
    Unavailable,
}

/// Where audit events go. `record` returns once the event is durable.
#[async_trait]
pub trait AuditSink: Send + Sync {
    async fn record(&self, event: AuditEvent) -> Result<(), AuditError>;
}
