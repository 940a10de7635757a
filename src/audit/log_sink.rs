//! An interim sink that writes audit events as structured log lines (target
//! `audit`), until the durable hash-chained writer replaces it in the
//! composition root. It never fails, so it cannot make a request fail closed.

use async_trait::async_trait;

use super::{AuditError, AuditEvent, AuditSink};

#[derive(Debug, Default, Clone, Copy)]
pub struct LogSink;

#[async_trait]
impl AuditSink for LogSink {
    async fn record(&self, event: AuditEvent) -> Result<(), AuditError> {
        tracing::info!(
            target: "audit",
            event_type = %event.event_type,
            actor_kind = ?event.actor_kind,
            actor_id = %event.actor_id,
            tenant = ?event.tenant,
            outcome = ?event.outcome,
            origin = event.origin.as_deref().unwrap_or("-"),
            resource = event.resource.as_deref().unwrap_or("-"),
            reason = event.reason.as_deref().unwrap_or("-"),
            "audit"
        );
        Ok(())
    }
}
