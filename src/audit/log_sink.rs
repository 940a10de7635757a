//! Copies of audit events for an observer, after they are durable: a SIEM
//! forwarder, or a test that asserts which events a request caused.

use std::sync::Arc;

use async_trait::async_trait;

use super::{AuditError, AuditEvent, AuditSink};

/// Records into `durable` first; only then hands a copy to `observer`.
/// Either failing fails the call, so the caller fails closed.
pub struct Tee {
    pub durable: Arc<dyn AuditSink>,
    pub observer: Arc<dyn AuditSink>,
}

#[async_trait]
impl AuditSink for Tee {
    async fn record(&self, event: AuditEvent) -> Result<(), AuditError> {
        self.durable.record(event.clone()).await?;
        self.observer.record(event).await
    }
}
