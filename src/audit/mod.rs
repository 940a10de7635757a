//! The audit trail (PCI DSS requirement 10). Every part of voltvault that
//! touches card data, keys, money or access records an [`AuditEvent`]
//! through an [`AuditSink`] before it answers; a sink that fails makes the
//! request fail (fail closed).
//!
//! Each node writes one hash chain ([`writer`]) of canonically encoded
//! records ([`record`]), pinned by checkpoints sealed with the audit key
//! ([`seal`]); [`verify`] walks a chain and names the first bad record;
//! [`AuditLog`] is what auditors search, export and verify through.

mod event;
pub mod export;
mod log;
pub mod query;
pub mod record;
pub mod retention;
pub mod seal;
pub mod syslog;
pub mod verify;
pub mod writer;

pub use event::{ActorKind, AuditEvent, Outcome};
pub use export::{ExportFormat, ExportedRecord};
pub use log::{AuditLog, AuditLogError, Export, Reader, SearchPage, VerifyReport, verify_all};
pub use query::{AuditQuery, Cursor};
pub use record::AuditRecord;
pub use seal::{Checkpoint, CheckpointSealer, SealError, SoftwareSealer};
pub use verify::{NodeReport, Problem, ProblemKind};
pub use writer::{AuditWriter, WriterConfig, WriterTask};
mod log_sink;
mod pending;

pub use log_sink::Tee;
pub use pending::PendingAudit;

use async_trait::async_trait;

use crate::store::joined::{JoinedOutcome, JoinedRows};

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

    /// Several events of one request, in order; returns once all are durable.
    async fn record_all(&self, events: Vec<AuditEvent>) -> Result<(), AuditError> {
        for event in events {
            self.record(event).await?;
        }
        Ok(())
    }

    /// Whether [`AuditSink::commit_joined`] is available: the node's writer
    /// commits rows in the same transaction as the events that audit them.
    fn joins_rows(&self) -> bool {
        false
    }

    /// Commits `rows` and `events` in one transaction (ADR 0008): both or
    /// neither. A refused row (`JoinedOutcome::*Taken`) keeps nothing of
    /// the call, events included. A sink that cannot join rows says so with
    /// `joins_rows` and refuses this.
    async fn commit_joined(
        &self,
        rows: JoinedRows,
        events: Vec<AuditEvent>,
    ) -> Result<JoinedOutcome, AuditError> {
        let _ = (rows, events);
        Err(AuditError::Unavailable)
    }
}
