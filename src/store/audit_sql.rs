//! The audit trail's SQL, the same on SQLite and PostgreSQL. Times are
//! integer microseconds and hashes raw bytes on both, so what is read back
//! is exactly what was hashed.

use crate::audit::{ActorKind, AuditRecord, Checkpoint, Outcome};
use crate::ids::TenantId;
use crate::store::StoreError;

/// Records per INSERT: 15 parameters each stays under SQLite's 32766.
pub(crate) const INSERT_CHUNK: usize = 1000;

pub(crate) const RECORD_COLUMNS: &str = "node_id, seq, version, at_us, event_type, actor_kind, \
     actor_id, tenant_id, outcome, origin, resource, request_id, reason, prev_hash, record_hash";

/// Implements [`crate::store::AuditStore`] for an adapter with a `pool`
/// field and a `writer_pool()`, where the writer's appends and joined
/// transactions go.
macro_rules! impl_audit_store {
    ($store:ty) => {
        #[async_trait::async_trait]
        impl $crate::store::AuditStore for $store {
            async fn audit_head(
                &self,
                node_id: &str,
            ) -> Result<$crate::store::AuditHead, $crate::store::StoreError> {
                let last = sqlx::query(
                    "SELECT seq, record_hash FROM audit_events WHERE node_id = $1 \
                     ORDER BY seq DESC LIMIT 1",
                )
                .bind(node_id)
                .fetch_optional(&self.pool)
                .await?;
                let checkpoint = sqlx::query(
                    "SELECT seq, record_hash FROM audit_checkpoints WHERE node_id = $1 \
                     ORDER BY seq DESC LIMIT 1",
                )
                .bind(node_id)
                .fetch_optional(&self.pool)
                .await?;
                let decode =
                    |row: Option<_>| -> Result<Option<(u64, [u8; 32])>, $crate::store::StoreError> {
                        match row {
                            None => Ok(None),
                            Some(row) => {
                                let row = &row;
                                let seq: i64 = sqlx::Row::try_get(row, "seq")?;
                                let hash: Vec<u8> = sqlx::Row::try_get(row, "record_hash")?;
                                Ok(Some((
                                    $crate::store::audit_sql::to_seq(seq)?,
                                    $crate::store::audit_sql::to_hash(&hash)?,
                                )))
                            }
                        }
                    };
                let last = decode(last)?;
                let checkpoint = decode(checkpoint)?;
                Ok($crate::store::AuditHead {
                    last: match (last, checkpoint) {
                        (Some(l), Some(c)) if c.0 > l.0 => Some(c),
                        (Some(l), _) => Some(l),
                        (None, c) => c,
                    },
                    last_checkpoint_seq: checkpoint.map(|c| c.0),
                })
            }

            async fn append_audit(
                &self,
                records: &[$crate::audit::AuditRecord],
                checkpoint: Option<&$crate::audit::Checkpoint>,
            ) -> Result<(), $crate::store::StoreError> {
                $crate::store::audit_sql::check_fits(records, checkpoint)?;
                // One statement is its own transaction: the common batch
                // (no checkpoint) costs one round trip.
                let chunk_size = $crate::store::audit_sql::INSERT_CHUNK;
                if checkpoint.is_none() && records.len() <= chunk_size {
                    if !records.is_empty() {
                        $crate::store::audit_sql::audit_insert!(_, records)
                            .build()
                            .persistent(false)
                            .execute(self.writer_pool())
                            .await?;
                    }
                    return Ok(());
                }
                let mut tx = self.writer_pool().begin().await?;
                for chunk in records.chunks(chunk_size) {
                    $crate::store::audit_sql::audit_insert!(_, chunk)
                        .build()
                        .persistent(false)
                        .execute(&mut *tx)
                        .await?;
                }
                if let Some(cp) = checkpoint {
                    $crate::store::audit_sql::insert_checkpoint!(cp)
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                Ok(())
            }

            async fn begin_joined(
                &self,
            ) -> Result<Box<dyn $crate::store::joined::JoinedTx>, $crate::store::StoreError> {
                Ok(Box::new($crate::store::joined::SqlJoinedTx {
                    tx: self.writer_pool().begin().await?,
                }))
            }

            async fn audit_nodes(&self) -> Result<Vec<String>, $crate::store::StoreError> {
                Ok(sqlx::query_scalar(
                    "SELECT node_id FROM audit_events UNION \
                     SELECT node_id FROM audit_checkpoints ORDER BY node_id",
                )
                .fetch_all(&self.pool)
                .await?)
            }

            async fn audit_chain_page(
                &self,
                node_id: &str,
                after_seq: u64,
                limit: u32,
            ) -> Result<Vec<$crate::audit::AuditRecord>, $crate::store::StoreError> {
                let after =
                    i64::try_from(after_seq).map_err(|_| $crate::store::StoreError::Internal)?;
                let rows = sqlx::query(&format!(
                    "SELECT {} FROM audit_events WHERE node_id = $1 AND seq > $2 \
                     ORDER BY seq LIMIT $3",
                    $crate::store::audit_sql::RECORD_COLUMNS
                ))
                .bind(node_id)
                .bind(after)
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?;
                rows.iter()
                    .map($crate::store::audit_sql::record_from_row)
                    .collect()
            }

            async fn audit_checkpoints(
                &self,
                node_id: &str,
            ) -> Result<Vec<$crate::audit::Checkpoint>, $crate::store::StoreError> {
                let rows = sqlx::query(
                    "SELECT node_id, seq, record_hash, at_us, key_id, seal \
                     FROM audit_checkpoints WHERE node_id = $1 ORDER BY seq",
                )
                .bind(node_id)
                .fetch_all(&self.pool)
                .await?;
                rows.iter()
                    .map($crate::store::audit_sql::checkpoint_from_row)
                    .collect()
            }

            async fn audit_archived_through(
                &self,
                node_id: &str,
            ) -> Result<Option<u64>, $crate::store::StoreError> {
                let through: Option<i64> = sqlx::query_scalar(
                    "SELECT MAX(through_seq) FROM audit_archives WHERE node_id = $1",
                )
                .bind(node_id)
                .fetch_one(&self.pool)
                .await?;
                through.map($crate::store::audit_sql::to_seq).transpose()
            }

            async fn search_audit(
                &self,
                query: &$crate::audit::AuditQuery,
            ) -> Result<Vec<$crate::audit::AuditRecord>, $crate::store::StoreError> {
                let mut sql = sqlx::QueryBuilder::new(format!(
                    "SELECT {} FROM audit_events WHERE 1 = 1",
                    $crate::store::audit_sql::RECORD_COLUMNS
                ));
                if let Some(from) = query.from {
                    sql.push(" AND at_us >= ")
                        .push_bind(from.timestamp_micros());
                }
                if let Some(to) = query.to {
                    sql.push(" AND at_us < ").push_bind(to.timestamp_micros());
                }
                if let Some(actor) = &query.actor_id {
                    sql.push(" AND actor_id = ").push_bind(actor.as_str());
                }
                if let Some(event_type) = &query.event_type {
                    sql.push(" AND event_type = ")
                        .push_bind(event_type.as_str());
                }
                if let Some(resource) = &query.resource {
                    sql.push(" AND resource = ").push_bind(resource.as_str());
                }
                if let Some(outcome) = query.outcome {
                    sql.push(" AND outcome = ").push_bind(outcome.as_str());
                }
                if let Some(after) = &query.after {
                    let seq = i64::try_from(after.seq)
                        .map_err(|_| $crate::store::StoreError::Internal)?;
                    sql.push(" AND (at_us > ")
                        .push_bind(after.at_us)
                        .push(" OR (at_us = ")
                        .push_bind(after.at_us)
                        .push(" AND (node_id > ")
                        .push_bind(after.node_id.as_str())
                        .push(" OR (node_id = ")
                        .push_bind(after.node_id.as_str())
                        .push(" AND seq > ")
                        .push_bind(seq)
                        .push("))))");
                }
                sql.push(" ORDER BY at_us, node_id, seq LIMIT ")
                    .push_bind(i64::from(query.page_size()));
                let rows = sql.build().fetch_all(&self.pool).await?;
                rows.iter()
                    .map($crate::store::audit_sql::record_from_row)
                    .collect()
            }

            async fn archive_audit(
                &self,
                archive: &$crate::store::AuditArchive,
            ) -> Result<u64, $crate::store::StoreError> {
                self.purge_archived(archive).await
            }
        }
    };
}

pub(crate) use impl_audit_store;

/// A multi-row INSERT of audit records (at most [`INSERT_CHUNK`]) for
/// database `$db` (`_` to infer it). Run it with `persistent(false)`: its
/// text differs with every batch size.
macro_rules! audit_insert {
    ($db:ty, $records:expr) => {{
        let mut insert = sqlx::QueryBuilder::<$db>::new(format!(
            "INSERT INTO audit_events ({}) ",
            $crate::store::audit_sql::RECORD_COLUMNS
        ));
        insert.push_values($records, |mut row, r| {
            row.push_bind(r.node_id.clone())
                .push_bind(r.seq as i64)
                .push_bind(r.version)
                .push_bind(r.at_us)
                .push_bind(r.event_type.clone())
                .push_bind(r.actor_kind.as_str())
                .push_bind(r.actor_id.clone())
                .push_bind(r.tenant)
                .push_bind(r.outcome.as_str())
                .push_bind(r.origin.clone())
                .push_bind(r.resource.clone())
                .push_bind(r.request_id.clone())
                .push_bind(r.reason.clone())
                .push_bind(r.prev_hash.to_vec())
                .push_bind(r.record_hash.to_vec());
        });
        insert
    }};
}

pub(crate) use audit_insert;

/// The INSERT of a sealed checkpoint.
macro_rules! insert_checkpoint {
    ($cp:expr) => {
        sqlx::query(
            "INSERT INTO audit_checkpoints \
             (node_id, seq, record_hash, at_us, key_id, seal) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind($cp.node_id.as_str())
        .bind($cp.seq as i64)
        .bind(&$cp.record_hash[..])
        .bind($cp.at_us)
        .bind($cp.key_id.as_str())
        .bind(&$cp.seal[..])
    };
}

pub(crate) use insert_checkpoint;

/// The archive row's values, checked to fit the columns.
pub(crate) fn archive_values(
    archive: &crate::store::AuditArchive,
) -> Result<(i64, i64), StoreError> {
    let through = i64::try_from(archive.through_seq).map_err(|_| StoreError::Internal)?;
    let records = i64::try_from(archive.records).map_err(|_| StoreError::Internal)?;
    Ok((through, records))
}

/// Inserts the archive row inside the caller's transaction.
macro_rules! insert_archive_row {
    ($tx:expr, $archive:expr, $through:expr, $records:expr) => {
        sqlx::query(
            "INSERT INTO audit_archives \
             (node_id, through_seq, archived_us, file_name, file_sha256, records) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind($archive.node_id.as_str())
        .bind($through)
        .bind($archive.archived_us)
        .bind($archive.file_name.as_str())
        .bind(&$archive.file_sha256[..])
        .bind($records)
        .execute(&mut *$tx)
        .await?
    };
}

pub(crate) use insert_archive_row;

/// Sequence numbers are stored as BIGINT; refuses what would not fit.
pub(crate) fn check_fits(
    records: &[AuditRecord],
    checkpoint: Option<&Checkpoint>,
) -> Result<(), StoreError> {
    let too_big = records
        .iter()
        .map(|r| r.seq)
        .chain(checkpoint.map(|c| c.seq))
        .any(|seq| i64::try_from(seq).is_err());
    if too_big {
        Err(StoreError::Internal)
    } else {
        Ok(())
    }
}

pub(crate) fn to_seq(seq: i64) -> Result<u64, StoreError> {
    u64::try_from(seq).map_err(|_| StoreError::Internal)
}

pub(crate) fn to_hash(bytes: &[u8]) -> Result<[u8; 32], StoreError> {
    <[u8; 32]>::try_from(bytes).map_err(|_| StoreError::Internal)
}

pub(crate) fn record_from_row<R>(row: &R) -> Result<AuditRecord, StoreError>
where
    R: sqlx::Row,
    for<'r> &'r str: sqlx::ColumnIndex<R>,
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> i32: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Vec<u8>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> TenantId: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let actor_kind: String = row.try_get("actor_kind")?;
    let outcome: String = row.try_get("outcome")?;
    let prev_hash: Vec<u8> = row.try_get("prev_hash")?;
    let record_hash: Vec<u8> = row.try_get("record_hash")?;
    Ok(AuditRecord {
        node_id: row.try_get("node_id")?,
        seq: to_seq(row.try_get("seq")?)?,
        version: row.try_get("version")?,
        at_us: row.try_get("at_us")?,
        event_type: row.try_get("event_type")?,
        // An unknown name is stored data someone changed: keep the record
        // readable and let its hash say so.
        actor_kind: ActorKind::parse(&actor_kind).unwrap_or(ActorKind::Anonymous),
        actor_id: row.try_get("actor_id")?,
        tenant: row.try_get("tenant_id")?,
        outcome: Outcome::parse(&outcome).unwrap_or(Outcome::Failure),
        origin: row.try_get("origin")?,
        resource: row.try_get("resource")?,
        request_id: row.try_get("request_id")?,
        reason: row.try_get("reason")?,
        prev_hash: to_hash(&prev_hash).unwrap_or([0; 32]),
        record_hash: to_hash(&record_hash).unwrap_or([0; 32]),
    })
}

pub(crate) fn checkpoint_from_row<R>(row: &R) -> Result<Checkpoint, StoreError>
where
    R: sqlx::Row,
    for<'r> &'r str: sqlx::ColumnIndex<R>,
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Vec<u8>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let record_hash: Vec<u8> = row.try_get("record_hash")?;
    let seal: Vec<u8> = row.try_get("seal")?;
    Ok(Checkpoint {
        node_id: row.try_get("node_id")?,
        seq: to_seq(row.try_get("seq")?)?,
        record_hash: to_hash(&record_hash)?,
        at_us: row.try_get("at_us")?,
        key_id: row.try_get("key_id")?,
        seal: to_hash(&seal)?,
    })
}
