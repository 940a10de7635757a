//! Retention (PCI DSS 10.5.1): twelve months kept, the last three
//! queryable in the database. Older records are written to an archive file
//! (JSON Lines, owner-only, fsynced, its SHA-256 noted in the database),
//! then removed up to a sealed checkpoint. The checkpoint stays, so the
//! chain still verifies from it; the file can be checked against it.
//! Keeping archive files for the rest of the twelve months is the
//! operator's storage policy.

use std::io::Write;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use ring::digest;

use super::export::{self, ExportFormat};
use super::log::AuditLogError;
use super::seal::CheckpointSealer;
use super::verify::ChainVerifier;
use crate::store::{AuditArchive, AuditStore};

/// Records younger than this stay in the database.
pub const QUERYABLE_DAYS: i64 = 90;

const PAGE: u32 = 2000;

/// One node's records taken out into a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Archived {
    pub node_id: String,
    pub file: PathBuf,
    pub first_seq: u64,
    pub through_seq: u64,
    pub records: u64,
}

/// Archives and removes `node`'s records up to its last sealed checkpoint
/// older than the queryable window. Refuses a chain that does not verify:
/// broken evidence is kept where it is for investigation.
pub async fn archive_node(
    store: &dyn AuditStore,
    sealer: &dyn CheckpointSealer,
    node: &str,
    now: DateTime<Utc>,
    dir: &Path,
) -> Result<Option<Archived>, AuditLogError> {
    let cutoff = (now - chrono::Duration::days(QUERYABLE_DAYS)).timestamp_micros();
    let checkpoints = store.audit_checkpoints(node).await?;
    let archived = store.audit_archived_through(node).await?;
    let after = archived.unwrap_or(0);
    let Some(target) = checkpoints
        .iter()
        .rfind(|c| c.seq > after && c.at_us < cutoff)
        .cloned()
    else {
        return Ok(None);
    };
    for cp in checkpoints.iter().filter(|c| c.seq <= target.seq) {
        if !cp.verify(sealer).await.map_err(|_| AuditLogError::Sealer)? {
            return Err(AuditLogError::Broken(format!(
                "node {node}: the checkpoint at {} is not genuine",
                cp.seq
            )));
        }
    }
    let anchor = archived.and_then(|seq| checkpoints.iter().find(|c| c.seq == seq));
    let covered: Vec<_> = checkpoints
        .iter()
        .filter(|c| c.seq <= target.seq)
        .cloned()
        .collect();
    let mut verifier = ChainVerifier::new(node, anchor, &covered);

    let first_seq = after + 1;
    let name = format!("audit-{node}-{first_seq:012}-{:012}.jsonl", target.seq);
    let path = dir.join(&name);
    let partial = dir.join(format!("{name}.partial"));
    let mut file = create_owner_only(&partial)?;
    let mut sha = digest::Context::new(&digest::SHA256);
    let mut records = 0u64;
    let mut cursor = after;
    while cursor < target.seq {
        let mut page = store.audit_chain_page(node, cursor, PAGE).await?;
        page.retain(|r| r.seq <= target.seq);
        let Some(last) = page.last() else { break };
        cursor = last.seq;
        let bytes =
            export::encode(ExportFormat::Jsonl, &page).map_err(|_| AuditLogError::Encode)?;
        sha.update(&bytes);
        file.write_all(&bytes).map_err(io)?;
        records += page.len() as u64;
        verifier.feed(page);
    }
    let report = verifier.finish(covered.len() as u64);
    if let Some(problem) = report.problem {
        let _ = std::fs::remove_file(&partial);
        return Err(AuditLogError::Broken(format!(
            "node {node}: record {}: {:?}: {}",
            problem.seq, problem.kind, problem.detail
        )));
    }
    if report.last_seq != Some(target.seq) {
        let _ = std::fs::remove_file(&partial);
        return Err(AuditLogError::Broken(format!(
            "node {node}: records up to {} are not all there",
            target.seq
        )));
    }
    file.sync_all().map_err(io)?;
    drop(file);
    std::fs::rename(&partial, &path).map_err(io)?;
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io)?;

    let mut file_sha256 = [0u8; 32];
    file_sha256.copy_from_slice(sha.finish().as_ref());
    store
        .archive_audit(&AuditArchive {
            node_id: node.to_owned(),
            through_seq: target.seq,
            archived_us: now.timestamp_micros(),
            file_name: name,
            file_sha256,
            records,
        })
        .await?;
    Ok(Some(Archived {
        node_id: node.to_owned(),
        file: path,
        first_seq,
        through_seq: target.seq,
        records,
    }))
}

fn create_owner_only(path: &Path) -> Result<std::fs::File, AuditLogError> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(io)
}

fn io(error: std::io::Error) -> AuditLogError {
    AuditLogError::Io(error.kind().to_string())
}
