//! SQLite adapter: the embedded default. WAL for concurrent readers,
//! foreign keys on, `synchronous = FULL` so a commit survives power loss.

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
            .connect_with(options)
            .await
            .map_err(|e| ConnectError::Connect(describe_connect_error(&e)))?;
        Ok(Self { pool })
    }

    pub fn pool(&self) -> &SqlitePool {
        &self.pool
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
