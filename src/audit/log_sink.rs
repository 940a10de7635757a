//! Copies of audit events for an observer, after they are durable: a SIEM
//! forwarder, or a test that asserts which events a request caused.

use std::sync::Arc;

use async_trait::async_trait;

use super::{AuditError, AuditEvent, AuditSink};
use crate::store::joined::{JoinedOutcome, JoinedRows};

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

    async fn record_all(&self, events: Vec<AuditEvent>) -> Result<(), AuditError> {
        self.durable.record_all(events.clone()).await?;
        self.observer.record_all(events).await
    }

    fn joins_rows(&self) -> bool {
        self.durable.joins_rows()
    }

    /// The observer sees the events only if the rows went in with them.
    async fn commit_joined(
        &self,
        rows: JoinedRows,
        events: Vec<AuditEvent>,
    ) -> Result<JoinedOutcome, AuditError> {
        let outcome = self.durable.commit_joined(rows, events.clone()).await?;
        if outcome == JoinedOutcome::Written {
            self.observer.record_all(events).await?;
        }
        Ok(outcome)
    }
}
