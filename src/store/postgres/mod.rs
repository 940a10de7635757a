//! PostgreSQL adapter: production. Several stateless nodes share one
//! database; everything they coordinate on is a row lock or a constraint.

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};

use super::{ConnectError, StoreError, describe_connect_error};
use crate::config::DatabaseBackend;
use crate::secret::SecretString;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

#[derive(Debug, Clone)]
pub struct PostgresStore {
    pub(crate) pool: PgPool,
}

impl PostgresStore {
    pub async fn connect(
        url: &str,
        password: Option<&SecretString>,
        max_connections: u32,
    ) -> Result<Self, ConnectError> {
        let mut options = PgConnectOptions::from_str(url)
            .map_err(|_| ConnectError::Url("not a valid postgres:// URL".into()))?
            .application_name("voltvault");
        if let Some(password) = password {
            options = options.password(password.expose_secret());
        }
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(options)
            .await
            .map_err(|e| ConnectError::Connect(describe_connect_error(&e)))?;
        Ok(Self { pool })
    }

    /// Where the audit writer commits: the shared pool (PostgreSQL caches
    /// pages for all its connections, so a connection of its own buys
    /// nothing).
    pub(crate) fn writer_pool(&self) -> &PgPool {
        &self.pool
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Through `audit_purge`, the one delete path the service role has: it
    /// runs as the owner and checks archive, checkpoint and age itself.
    async fn purge_archived(&self, archive: &super::AuditArchive) -> Result<u64, StoreError> {
        let (through, records) = super::audit_sql::archive_values(archive)?;
        let mut tx = self.pool.begin().await?;
        super::audit_sql::insert_archive_row!(tx, archive, through, records);
        let removed: i64 = sqlx::query_scalar("SELECT audit_purge($1, $2)")
            .bind(archive.node_id.as_str())
            .bind(through)
            .fetch_one(&mut *tx)
            .await?;
        tx.commit().await?;
        u64::try_from(removed).map_err(|_| StoreError::Internal)
    }
}

super::common::impl_portable_stores!(PostgresStore);
super::data_keys::impl_data_key_store!(PostgresStore);
super::audit_sql::impl_audit_store!(PostgresStore);
super::tokens::impl_token_store!(PostgresStore);
super::tariffs::impl_tariff_store!(PostgresStore);
super::payments::impl_payment_store!(PostgresStore, sqlx::Postgres, sqlx::postgres::PgRow);
super::billing::impl_billing_store!(PostgresStore);
super::auth_sql::impl_auth_store!(PostgresStore, sqlx::postgres::PgRow);
super::webhooks::impl_webhook_store!(PostgresStore, sqlx::postgres::PgRow);
super::accounts::impl_account_store!(PostgresStore, sqlx::postgres::PgRow);
super::invoices::impl_invoice_store!(PostgresStore, sqlx::postgres::PgRow);
super::mail::impl_mail_store!(PostgresStore, sqlx::postgres::PgRow);
super::wallets::impl_wallet_store!(PostgresStore, sqlx::Postgres, sqlx::postgres::PgRow);

super::common::impl_store!(PostgresStore, DatabaseBackend::Postgres, MIGRATOR);
