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

pub use log_sink::Tee;

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
