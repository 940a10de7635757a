//! What auditors do with the trail: search, export, verify. Every read is
//! itself an audit event, recorded before any record is handed out (fail
//! closed), so reading the log leaves a trace in it.

use std::sync::Arc;

use serde::Serialize;
use utoipa::ToSchema;

use super::export::{self, ExportFormat, ExportedRecord};
use super::query::{AuditQuery, Cursor};
use super::seal::CheckpointSealer;
use super::verify::{ChainVerifier, NodeReport, Problem, ProblemKind};
use super::{ActorKind, AuditError, AuditEvent, AuditSink, Outcome};
use crate::clock::Clock;
use crate::store::{AuditStore, StoreError};

/// Records a verification walk reads at once.
const VERIFY_PAGE: u32 = 2000;

#[derive(Debug, thiserror::Error)]
pub enum AuditLogError {
    #[error(transparent)]
    Audit(#[from] AuditError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the audit key is unavailable")]
    Sealer,
    #[error("the export could not be encoded")]
    Encode,
    #[error("the audit chain does not verify: {0}")]
    Broken(String),
    #[error("archive file: {0}")]
    Io(String),
}

/// Who is reading the trail, as the caller's authentication saw them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reader {
    pub actor_kind: ActorKind,
    pub actor_id: String,
    /// The reader's own tenant (none for an operator on the host).
    pub tenant: Option<crate::ids::TenantId>,
    pub origin: Option<String>,
    pub request_id: Option<String>,
}

impl Reader {
    /// The command line: an operator on the host itself.
    pub fn command_line(user: &str) -> Self {
        Self {
            actor_kind: ActorKind::Staff,
            actor_id: user.to_owned(),
            tenant: None,
            origin: Some("cli".into()),
            request_id: None,
        }
    }
}

/// One page of search results.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SearchPage {
    pub events: Vec<ExportedRecord>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// The verification of every node's chain.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct VerifyReport {
    /// True when every chain is intact.
    pub ok: bool,
    pub nodes: Vec<NodeReport>,
}

/// The trail's read side and its sink.
#[derive(Clone)]
pub struct AuditLog {
    store: Arc<dyn AuditStore>,
    sealer: Arc<dyn CheckpointSealer>,
    sink: Arc<dyn AuditSink>,
    clock: Arc<dyn Clock>,
}

impl AuditLog {
    pub fn new(
        store: Arc<dyn AuditStore>,
        sealer: Arc<dyn CheckpointSealer>,
        sink: Arc<dyn AuditSink>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            store,
            sealer,
            sink,
            clock,
        }
    }

    pub fn sink(&self) -> Arc<dyn AuditSink> {
        self.sink.clone()
    }

    /// The same trail, recording its own reads through `sink` (e.g. a `Tee`).
    pub fn with_sink(mut self, sink: Arc<dyn AuditSink>) -> Self {
        self.sink = sink;
        self
    }

    /// One page of matching records.
    pub async fn search(
        &self,
        reader: &Reader,
        query: &AuditQuery,
    ) -> Result<SearchPage, AuditLogError> {
        self.record_read(reader, "audit.search", query).await?;
        let records = self.store.search_audit(query).await?;
        let next_cursor = (records.len() as u32 >= query.page_size())
            .then(|| records.last())
            .flatten()
            .map(|r| {
                Cursor {
                    at_us: r.at_us,
                    node_id: r.node_id.clone(),
                    seq: r.seq,
                }
                .encode()
            });
        Ok(SearchPage {
            events: records.iter().map(ExportedRecord::from).collect(),
            next_cursor,
        })
    }

    /// Starts an export of every matching record; read it with
    /// [`Export::next_chunk`].
    pub async fn export(
        &self,
        reader: &Reader,
        mut query: AuditQuery,
        format: ExportFormat,
    ) -> Result<Export, AuditLogError> {
        self.record_read(reader, "audit.export", &query).await?;
        query.limit = super::query::MAX_PAGE;
        Ok(Export {
            store: self.store.clone(),
            query,
            format,
            started: false,
            done: false,
        })
    }

    /// Verifies every node's chain and names the first bad record of each.
    pub async fn verify(&self, reader: &Reader) -> Result<VerifyReport, AuditLogError> {
        self.record_read(reader, "audit.verify", &AuditQuery::new())
            .await?;
        verify_all(self.store.as_ref(), self.sealer.as_ref()).await
    }

    /// Moves every node's records older than the queryable window into
    /// archive files in `dir` (see [`super::retention`]), recording each.
    pub async fn archive(
        &self,
        reader: &Reader,
        dir: &std::path::Path,
    ) -> Result<Vec<super::retention::Archived>, AuditLogError> {
        let mut done = Vec::new();
        for node in self.store.audit_nodes().await? {
            let now = self.clock.now();
            let archived = super::retention::archive_node(
                self.store.as_ref(),
                self.sealer.as_ref(),
                &node,
                now,
                dir,
            )
            .await?;
            let Some(archived) = archived else { continue };
            let file = archived
                .file
                .file_name()
                .map(|f| f.to_string_lossy().into_owned());
            self.sink
                .record(AuditEvent {
                    event_type: "audit.archive".into(),
                    at: now,
                    actor_kind: reader.actor_kind,
                    actor_id: reader.actor_id.clone(),
                    tenant: reader.tenant,
                    outcome: Outcome::Success,
                    origin: reader.origin.clone(),
                    resource: file,
                    request_id: reader.request_id.clone(),
                    reason: Some(format!(
                        "node={} seq={}..={} records={}",
                        archived.node_id,
                        archived.first_seq,
                        archived.through_seq,
                        archived.records
                    )),
                })
                .await?;
            done.push(archived);
        }
        Ok(done)
    }

    async fn record_read(
        &self,
        reader: &Reader,
        event_type: &str,
        query: &AuditQuery,
    ) -> Result<(), AuditError> {
        self.sink
            .record(AuditEvent {
                event_type: event_type.to_owned(),
                at: self.clock.now(),
                actor_kind: reader.actor_kind,
                actor_id: reader.actor_id.clone(),
                tenant: reader.tenant,
                outcome: Outcome::Success,
                origin: reader.origin.clone(),
                resource: Some("audit_log".into()),
                request_id: reader.request_id.clone(),
                reason: describe(query),
            })
            .await
    }
}

/// The filters of a read, for its own audit event.
fn describe(query: &AuditQuery) -> Option<String> {
    let mut parts = Vec::new();
    if let Some(from) = query.from {
        parts.push(format!("from={}", from.to_rfc3339()));
    }
    if let Some(to) = query.to {
        parts.push(format!("to={}", to.to_rfc3339()));
    }
    for (name, value) in [
        ("actor", &query.actor_id),
        ("type", &query.event_type),
        ("resource", &query.resource),
    ] {
        if let Some(value) = value {
            parts.push(format!("{name}={value}"));
        }
    }
    if let Some(outcome) = query.outcome {
        parts.push(format!("outcome={}", outcome.as_str()));
    }
    (!parts.is_empty()).then(|| parts.join(" "))
}

/// An export being read page by page.
pub struct Export {
    store: Arc<dyn AuditStore>,
    query: AuditQuery,
    format: ExportFormat,
    started: bool,
    done: bool,
}

impl Export {
    pub fn format(&self) -> ExportFormat {
        self.format
    }

    /// The next encoded chunk, or `None` at the end.
    pub async fn next_chunk(&mut self) -> Result<Option<Vec<u8>>, AuditLogError> {
        if self.done {
            return Ok(None);
        }
        let mut out = if self.started {
            Vec::new()
        } else {
            self.started = true;
            export::preamble(self.format).map_err(|_| AuditLogError::Encode)?
        };
        let records = self.store.search_audit(&self.query).await?;
        match records.last() {
            Some(last) if records.len() as u32 >= self.query.page_size() => {
                self.query.after = Some(Cursor {
                    at_us: last.at_us,
                    node_id: last.node_id.clone(),
                    seq: last.seq,
                });
            }
            _ => self.done = true,
        }
        out.extend(export::encode(self.format, &records).map_err(|_| AuditLogError::Encode)?);
        Ok(Some(out))
    }
}

/// Verifies every node's chain. Needs no audit event of its own (the
/// command line and the API record theirs), so start-up checks can use it.
pub async fn verify_all(
    store: &dyn AuditStore,
    sealer: &dyn CheckpointSealer,
) -> Result<VerifyReport, AuditLogError> {
    let mut nodes = Vec::new();
    for node in store.audit_nodes().await? {
        nodes.push(verify_node(store, sealer, &node).await?);
    }
    Ok(VerifyReport {
        ok: nodes.iter().all(|n| n.problem.is_none()),
        nodes,
    })
}

/// Verifies one node's chain from its archive anchor (or the genesis).
pub async fn verify_node(
    store: &dyn AuditStore,
    sealer: &dyn CheckpointSealer,
    node: &str,
) -> Result<NodeReport, AuditLogError> {
    let checkpoints = store.audit_checkpoints(node).await?;
    let mut forged = None;
    for cp in &checkpoints {
        if !cp.verify(sealer).await.map_err(|_| AuditLogError::Sealer)? {
            forged = Some(cp.seq);
            break;
        }
    }
    let archived = store.audit_archived_through(node).await?;
    let anchor = archived.and_then(|seq| checkpoints.iter().find(|c| c.seq == seq));
    let mut verifier = ChainVerifier::new(node, anchor, &checkpoints);
    if let Some(seq) = forged {
        verifier.fail(Problem {
            seq,
            kind: ProblemKind::CheckpointForged,
            detail: format!("the checkpoint at {seq} does not carry a genuine seal"),
        });
    }
    let mut after = anchor.map_or(0, |a| a.seq);
    while !verifier.failed() {
        let page = store.audit_chain_page(node, after, VERIFY_PAGE).await?;
        let Some(last) = page.last() else { break };
        after = last.seq;
        let full = page.len() as u32 >= VERIFY_PAGE;
        if !verifier.feed(page) || !full {
            break;
        }
    }
    Ok(verifier.finish(checkpoints.len() as u64))
}
