//! Storage ports. The domain talks to these traits; `sqlite` and `postgres`
//! implement them over sqlx. Every adapter passes the same conformance suite
//! (tests/api/store.rs).

pub mod accounts;
mod audit_sql;
mod auth_sql;
pub mod billing;
mod common;
pub mod data_keys;
pub mod invoices;
pub mod joined;
pub mod mail;
pub mod payments;
pub mod postgres;
pub mod sqlite;
pub mod tariffs;
pub mod tokens;
pub mod wallets;
pub mod webhooks;

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::audit::{AuditQuery, AuditRecord, Checkpoint};
use crate::auth::records::{
    ApiKeyRecord, ChallengeRecord, ChargerCaRecord, SessionRecord, UserRecord,
};
use crate::auth::tokens::ApiKeyId;
use crate::config::{Config, ConfigError, DatabaseBackend};
use crate::idempotency::{Begin, IdempotencyScope};
use crate::ids::{ChargerCaId, TenantId, UserId};
use crate::tenants::{Tenant, TenantName};

pub use data_keys::{DataKeyRecord, DataKeyState, DataKeyStore, KekRecord, KekState};

/// Why a storage call failed. Messages are fixed texts: they never carry
/// values from the rows involved.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    #[error("conflicts with an existing record ({0})")]
    Conflict(&'static str),
    #[error("the database is unavailable")]
    Unavailable,
    #[error("the database failed")]
    Internal,
}

impl From<sqlx::Error> for StoreError {
    fn from(error: sqlx::Error) -> Self {
        match &error {
            sqlx::Error::RowNotFound => StoreError::NotFound,
            sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict("unique"),
            sqlx::Error::Database(db) if db.is_foreign_key_violation() => {
                StoreError::Conflict("reference")
            }
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_) => {
                tracing::warn!(error.kind = "unavailable", "database unreachable");
                StoreError::Unavailable
            }
            _ => {
                // The code (e.g. a SQLSTATE) says what went wrong without row values.
                let code = match &error {
                    sqlx::Error::Database(db) => db.code().map(|c| c.into_owned()),
                    _ => None,
                };
                tracing::error!(db.code = code.as_deref().unwrap_or("-"), "database error");
                StoreError::Internal
            }
        }
    }
}

#[async_trait]
pub trait TenantStore: Send + Sync {
    async fn insert_tenant(&self, tenant: &Tenant) -> Result<(), StoreError>;
    async fn tenant(&self, id: TenantId) -> Result<Tenant, StoreError>;
    async fn tenant_by_name(&self, name: &TenantName) -> Result<Tenant, StoreError>;
    async fn tenants(&self) -> Result<Vec<Tenant>, StoreError>;
}

#[async_trait]
pub trait IdempotencyStore: Send + Sync {
    /// Claims the key for this request, or says why it cannot be claimed.
    async fn begin_idempotent(
        &self,
        scope: &IdempotencyScope,
        request_hash: &[u8; 32],
        now: DateTime<Utc>,
    ) -> Result<Begin, StoreError>;
    /// What a key holds, without claiming it: `None` if it was never used
    /// (or its claim was released). For requests whose record is written
    /// with their other rows in the audit writer's transaction (ADR 0008).
    async fn idempotent_state(
        &self,
        scope: &IdempotencyScope,
        request_hash: &[u8; 32],
    ) -> Result<Option<Begin>, StoreError>;
    /// Stores the response of a claimed key.
    async fn complete_idempotent(
        &self,
        scope: &IdempotencyScope,
        status: u16,
        body: &[u8],
        now: DateTime<Utc>,
    ) -> Result<(), StoreError>;
    /// Releases a claim whose request changed nothing, so it may be retried.
    async fn abandon_idempotent(&self, scope: &IdempotencyScope) -> Result<(), StoreError>;
    /// Removes completed keys older than `before`; returns how many.
    async fn purge_idempotent(&self, before: DateTime<Utc>) -> Result<u64, StoreError>;
}

/// Where a node's chain ends, for a writer that resumes it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AuditHead {
    /// The last record (or, once all were archived, the last checkpoint).
    pub last: Option<(u64, [u8; 32])>,
    pub last_checkpoint_seq: Option<u64>,
}

/// The audit trail: append-only. There is no update or delete here; the
/// database refuses both (see migrations/*/0003_audit.sql).
#[async_trait]
pub trait AuditStore: Send + Sync {
    async fn audit_head(&self, node_id: &str) -> Result<AuditHead, StoreError>;
    /// Writes the records (and a checkpoint) in one transaction.
    async fn append_audit(
        &self,
        records: &[AuditRecord],
        checkpoint: Option<&Checkpoint>,
    ) -> Result<(), StoreError>;
    /// Opens the transaction in which the audit writer commits a batch of
    /// records together with the rows of the requests it audits.
    async fn begin_joined(&self) -> Result<Box<dyn joined::JoinedTx>, StoreError>;
    /// Every node that has written a record or a checkpoint.
    async fn audit_nodes(&self) -> Result<Vec<String>, StoreError>;
    /// A node's records after `after_seq`, in sequence order.
    async fn audit_chain_page(
        &self,
        node_id: &str,
        after_seq: u64,
        limit: u32,
    ) -> Result<Vec<AuditRecord>, StoreError>;
    async fn audit_checkpoints(&self, node_id: &str) -> Result<Vec<Checkpoint>, StoreError>;
    /// The last sequence number a retention archive took out of the table.
    async fn audit_archived_through(&self, node_id: &str) -> Result<Option<u64>, StoreError>;
    /// One page of records matching the query, by (time, node, sequence).
    async fn search_audit(&self, query: &AuditQuery) -> Result<Vec<AuditRecord>, StoreError>;
    /// Notes that an archive file holds a node's records up to a sealed
    /// checkpoint and removes them, in one transaction. The database
    /// itself refuses anything else (PostgreSQL: `audit_purge`; SQLite: a
    /// trigger). Returns how many records were removed.
    async fn archive_audit(&self, archive: &AuditArchive) -> Result<u64, StoreError>;
}

/// An archive file that took a node's records out of the database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditArchive {
    pub node_id: String,
    /// The last record in the file; a sealed checkpoint stands at it.
    pub through_seq: u64,
    pub archived_us: i64,
    pub file_name: String,
    pub file_sha256: [u8; 32],
    pub records: u64,
}

/// Principals and their credentials (src/auth). Calls that name a tenant
/// touch only that tenant's rows: another tenant's record is `NotFound`.
#[async_trait]
pub trait AuthStore: Send + Sync {
    async fn insert_api_key(&self, key: &ApiKeyRecord) -> Result<(), StoreError>;
    async fn api_key(&self, id: &ApiKeyId) -> Result<ApiKeyRecord, StoreError>;
    async fn api_keys(&self, tenant: TenantId) -> Result<Vec<ApiKeyRecord>, StoreError>;
    async fn revoke_api_key(
        &self,
        tenant: TenantId,
        id: &ApiKeyId,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError>;
    /// Replaces the secret of a key that is not revoked.
    async fn replace_api_key_secret(
        &self,
        tenant: TenantId,
        id: &ApiKeyId,
        secret_hash: &[u8],
    ) -> Result<(), StoreError>;
    /// Records use, at most once per `coarseness` to keep writes rare.
    async fn touch_api_key(
        &self,
        id: &ApiKeyId,
        at: DateTime<Utc>,
        coarseness: chrono::Duration,
    ) -> Result<(), StoreError>;

    /// Inserts a user and its first password into the history.
    async fn insert_user(&self, user: &UserRecord) -> Result<(), StoreError>;
    async fn user(&self, id: UserId) -> Result<UserRecord, StoreError>;
    async fn user_by_username(&self, username: &str) -> Result<UserRecord, StoreError>;
    async fn users(&self, tenant: TenantId) -> Result<Vec<UserRecord>, StoreError>;
    /// Counts a failed attempt; returns the new count.
    async fn add_login_failure(&self, id: UserId) -> Result<i64, StoreError>;
    /// Locks the account until `until` and starts counting afresh.
    async fn lock_user(&self, id: UserId, until: DateTime<Utc>) -> Result<(), StoreError>;
    /// A successful login: failures forgotten, lock lifted, time recorded.
    async fn record_login(&self, id: UserId, at: DateTime<Utc>) -> Result<(), StoreError>;
    /// Accepts TOTP time step `step` once: false if it or a later one was used.
    async fn claim_totp_step(&self, id: UserId, step: i64) -> Result<bool, StoreError>;
    async fn disable_user(
        &self,
        tenant: Option<TenantId>,
        id: UserId,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError>;
    /// Disables every account not used since `idle_since`; returns (tenant, user name) of each.
    async fn disable_idle_users(
        &self,
        idle_since: DateTime<Utc>,
        at: DateTime<Utc>,
    ) -> Result<Vec<(TenantId, String)>, StoreError>;
    /// Sets a new password (kept in the history), a new sealed TOTP seed,
    /// clears lock and disable, and ends the user's sessions.
    async fn reset_user_credentials(
        &self,
        tenant: TenantId,
        id: UserId,
        password_hash: &str,
        totp_sealed: &[u8],
        at: DateTime<Utc>,
    ) -> Result<(), StoreError>;
    /// The most recent password hashes, newest first.
    async fn password_history(&self, id: UserId, limit: i64) -> Result<Vec<String>, StoreError>;

    async fn insert_challenge(&self, challenge: &ChallengeRecord) -> Result<(), StoreError>;
    async fn challenge(&self, hash: &[u8]) -> Result<ChallengeRecord, StoreError>;
    async fn delete_challenge(&self, hash: &[u8]) -> Result<(), StoreError>;
    async fn insert_session(&self, session: &SessionRecord) -> Result<(), StoreError>;
    async fn session(&self, hash: &[u8]) -> Result<SessionRecord, StoreError>;
    /// A session and its user in one round trip (every staff request reads both).
    async fn session_with_user(
        &self,
        hash: &[u8],
    ) -> Result<(SessionRecord, UserRecord), StoreError>;
    async fn touch_session(&self, hash: &[u8], at: DateTime<Utc>) -> Result<(), StoreError>;
    /// Records a second factor given again within the session.
    async fn renew_second_factor(&self, hash: &[u8], at: DateTime<Utc>) -> Result<(), StoreError>;
    async fn delete_session(&self, hash: &[u8]) -> Result<(), StoreError>;

    async fn insert_charger_ca(&self, ca: &ChargerCaRecord) -> Result<(), StoreError>;
    /// Every CA not revoked, across tenants (the TLS layer trusts them all).
    async fn active_charger_cas(&self) -> Result<Vec<ChargerCaRecord>, StoreError>;
    async fn charger_cas(&self, tenant: TenantId) -> Result<Vec<ChargerCaRecord>, StoreError>;
    async fn revoke_charger_certificate(
        &self,
        tenant: TenantId,
        ca: ChargerCaId,
        serial_hex: &str,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError>;
    /// Stores the CRL of a CA of `tenant`, replacing an older one.
    async fn set_charger_crl(
        &self,
        tenant: TenantId,
        ca: ChargerCaId,
        crl_der: &[u8],
        at: DateTime<Utc>,
    ) -> Result<(), StoreError>;
    /// Every imported CRL as (CA, DER).
    async fn charger_crls(&self) -> Result<Vec<(ChargerCaId, Vec<u8>)>, StoreError>;
    /// Every revoked certificate serial as (CA, serial).
    async fn revoked_charger_certificates(&self) -> Result<Vec<(ChargerCaId, String)>, StoreError>;
    /// Records that a charger was seen (at most once a minute per charger).
    async fn touch_charger(
        &self,
        tenant: TenantId,
        ca: ChargerCaId,
        identity: &str,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError>;
    /// Chargers seen for a tenant: (identity, last use).
    async fn chargers_seen(
        &self,
        tenant: TenantId,
    ) -> Result<Vec<(String, DateTime<Utc>)>, StoreError>;
}

/// Everything the service keeps, behind one handle.
#[async_trait]
pub trait Store:
    TenantStore
    + IdempotencyStore
    + DataKeyStore
    + AuditStore
    + AuthStore
    + tokens::TokenStore
    + payments::PaymentStore
    + tariffs::TariffStore
    + webhooks::WebhookStore
    + mail::MailStore
    + billing::BillingStore
    + accounts::AccountStore
    + invoices::InvoiceStore
    + wallets::WalletStore
    + Send
    + Sync
{
    fn backend(&self) -> DatabaseBackend;
    /// The same store seen through its key-registry port (for `KeyManager`).
    fn data_key_store(self: Arc<Self>) -> Arc<dyn DataKeyStore>;
    /// A round trip to the database, for readiness.
    async fn ping(&self) -> Result<(), StoreError>;
    /// Applies pending migrations; returns how many ran.
    async fn migrate(&self) -> Result<usize, MigrateError>;
    async fn close(&self);
}

#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error("migration failed: {0}")]
    Failed(String),
}

impl From<sqlx::migrate::MigrateError> for MigrateError {
    fn from(e: sqlx::migrate::MigrateError) -> Self {
        MigrateError::Failed(e.to_string())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("database.url: {0}")]
    Url(String),
    #[error("database: cannot connect ({0})")]
    Connect(String),
}

/// Opens the configured database.
pub async fn connect(config: &Config) -> Result<Arc<dyn Store>, ConnectError> {
    match config.database_backend()? {
        DatabaseBackend::Sqlite => Ok(Arc::new(
            sqlite::SqliteStore::connect(&config.database.url, config.database.max_connections)
                .await?,
        )),
        DatabaseBackend::Postgres => {
            let password = config.database_password()?;
            Ok(Arc::new(
                postgres::PostgresStore::connect(
                    &config.database.url,
                    password.as_ref(),
                    config.database.max_connections,
                )
                .await?,
            ))
        }
    }
}

/// Describes a connection failure without echoing the URL or a password.
pub(crate) fn describe_connect_error(error: &sqlx::Error) -> String {
    match error {
        sqlx::Error::Io(io) => io.kind().to_string(),
        sqlx::Error::Database(db) => db
            .code()
            .map(|c| format!("database error {c}"))
            .unwrap_or_else(|| "database error".into()),
        sqlx::Error::PoolTimedOut => "timed out".into(),
        sqlx::Error::Tls(_) => "TLS failure".into(),
        sqlx::Error::Configuration(_) => "invalid connection options".into(),
        _ => "failed".into(),
    }
}

/// Runs the migrator and counts the migrations that were new.
pub(crate) async fn apply_migrations<'a, A>(
    migrator: &sqlx::migrate::Migrator,
    pool: A,
) -> Result<usize, MigrateError>
where
    A: sqlx::Acquire<'a> + Copy,
    <A::Connection as std::ops::Deref>::Target: sqlx::migrate::Migrate,
{
    let before = applied(pool).await;
    migrator.run(pool).await?;
    Ok(applied(pool).await.saturating_sub(before))
}

async fn applied<'a, A>(pool: A) -> usize
where
    A: sqlx::Acquire<'a>,
    <A::Connection as std::ops::Deref>::Target: sqlx::migrate::Migrate,
{
    use sqlx::migrate::Migrate;
    match pool.acquire().await {
        Ok(mut conn) => {
            if conn.ensure_migrations_table().await.is_err() {
                return 0;
            }
            conn.list_applied_migrations()
                .await
                .map(|m| m.len())
                .unwrap_or(0)
        }
        Err(_) => 0,
    }
}
