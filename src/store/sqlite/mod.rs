//! SQLite adapter: the embedded default. WAL for concurrent readers,
//! foreign keys on, `synchronous = FULL` so a commit survives power loss.
//!
//! The audit writer has a connection of its own beside the pool. SQLite
//! keeps a page cache per connection and drops all of it when another
//! connection has written since this one last looked; through the pool the
//! writer got a different connection for nearly every group commit, so each
//! started cold and read its B-tree pages again. On its own connection the
//! cache survives from one commit to the next (ADR 0012).

use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use super::{ConnectError, StoreError, describe_connect_error};
use crate::config::DatabaseBackend;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

#[derive(Debug, Clone)]
pub struct SqliteStore {
    pub(crate) pool: SqlitePool,
    /// One connection, for the audit writer's commits only.
    pub(crate) writer: SqlitePool,
}

impl SqliteStore {
    pub async fn connect(url: &str, max_connections: u32) -> Result<Self, ConnectError> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|_| ConnectError::Url("not a valid sqlite: URL".into()))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(5));
        let pool = SqlitePoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(options.clone())
            .await
            .map_err(|e| ConnectError::Connect(describe_connect_error(&e)))?;
        // Lanes wait here for their turn, as they would for SQLite's one
        // write lock; the timeout is the busy timeout's.
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            // A file database does not drop connections; no ping per commit.
            .test_before_acquire(false)
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(options)
            .await
            .map_err(|e| ConnectError::Connect(describe_connect_error(&e)))?;
        Ok(Self { pool, writer })
    }

    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// Where the audit writer commits.
    pub(crate) fn writer_pool(&self) -> &SqlitePool {
        &self.writer
    }

    /// The delete trigger lets through only records an archive row covers.
    async fn purge_archived(&self, archive: &super::AuditArchive) -> Result<u64, StoreError> {
        let (through, records) = super::audit_sql::archive_values(archive)?;
        let mut tx = self.pool.begin().await?;
        super::audit_sql::insert_archive_row!(tx, archive, through, records);
        let removed = sqlx::query("DELETE FROM audit_events WHERE node_id = $1 AND seq <= $2")
            .bind(archive.node_id.as_str())
            .bind(through)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        tx.commit().await?;
        Ok(removed)
    }
}

super::common::impl_portable_stores!(SqliteStore);
super::data_keys::impl_data_key_store!(SqliteStore);
super::audit_sql::impl_audit_store!(SqliteStore);
super::tokens::impl_token_store!(SqliteStore);
super::tariffs::impl_tariff_store!(SqliteStore);
super::payments::impl_payment_store!(SqliteStore, sqlx::Sqlite, sqlx::sqlite::SqliteRow);
super::billing::impl_billing_store!(SqliteStore);
super::auth_sql::impl_auth_store!(SqliteStore, sqlx::sqlite::SqliteRow);
super::webhooks::impl_webhook_store!(SqliteStore, sqlx::sqlite::SqliteRow);
super::accounts::impl_account_store!(SqliteStore, sqlx::sqlite::SqliteRow);
super::invoices::impl_invoice_store!(SqliteStore, sqlx::sqlite::SqliteRow);
super::mail::impl_mail_store!(SqliteStore, sqlx::sqlite::SqliteRow);
super::wallets::impl_wallet_store!(SqliteStore, sqlx::Sqlite, sqlx::sqlite::SqliteRow);

super::common::impl_store!(SqliteStore, DatabaseBackend::Sqlite, MIGRATOR);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::{AuditEvent, AuditRecord, Outcome, record::GENESIS_HASH};
    use crate::store::{AuditStore, Store};

    /// The writer's connection is its own: with every pooled connection
    /// taken (readers, a slow export), audit events are still committed.
    #[tokio::test]
    async fn the_audit_writer_commits_while_the_pool_is_taken()
    -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let url = format!("sqlite://{}/vv.db", dir.path().display());
        let store = SqliteStore::connect(&url, 2).await?;
        store.migrate().await?;
        let held = [store.pool.acquire().await?, store.pool.acquire().await?];
        let event = AuditEvent::system(
            "audit.start",
            chrono::DateTime::UNIX_EPOCH,
            Outcome::Success,
        );
        let record = AuditRecord::link("node-a", 1, GENESIS_HASH, event);
        tokio::time::timeout(
            Duration::from_secs(2),
            store.append_audit(std::slice::from_ref(&record), None),
        )
        .await??;
        let mut tx = store.begin_joined().await?;
        let next = AuditRecord::link(
            "node-a",
            2,
            record.record_hash,
            AuditEvent::system("audit.stop", chrono::DateTime::UNIX_EPOCH, Outcome::Success),
        );
        tokio::time::timeout(Duration::from_secs(2), tx.append_audit(&[next], None)).await??;
        tx.commit().await?;
        drop(held);
        let head = store.audit_head("node-a").await?;
        assert_eq!(head.last.map(|(seq, _)| seq), Some(2));
        Ok(())
    }
}
