//! Storage of vaulted tokens. A row holds what may be read without
//! detokenizing (brand, last four, BIN by policy, expiry, fingerprint) in
//! clear, and the card data only as a sealed record. Deleting a token
//! crypto-shreds it: the sealed record is erased, a tombstone stays.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::StoreError;
use crate::ids::TenantId;
use crate::keys::SealedRecord;

/// One token as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredToken {
    pub tenant: TenantId,
    pub token: String,
    /// `random` or `ff1`.
    pub format: String,
    pub brand: String,
    pub last4: String,
    pub bin: Option<String>,
    pub exp_month: u8,
    pub exp_year: u16,
    /// Keyed HMAC of the PAN (in the HSM), per tenant.
    pub fingerprint: [u8; 32],
    /// `None` once the token is deleted.
    pub sealed: Option<SealedRecord>,
    pub metadata: Option<serde_json::Value>,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub deleted_at: Option<DateTime<Utc>>,
}

/// How a tenant's tokens are made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TokenPolicy {
    /// Keep the first six digits in tokens and show them in metadata.
    pub keep_bin: bool,
    /// The same card always yields the same token (found by fingerprint).
    pub deterministic: bool,
}

#[async_trait]
pub trait TokenStore: Send + Sync {
    /// Inserts a new token. `Conflict("unique")` when the token value is
    /// taken in this tenant: draw another candidate and retry.
    async fn insert_token(&self, token: &StoredToken) -> Result<(), StoreError>;
    /// A live (not deleted) token of this tenant by fingerprint, for
    /// deterministic tenants.
    async fn token_by_fingerprint(
        &self,
        tenant: TenantId,
        fingerprint: &[u8; 32],
    ) -> Result<Option<StoredToken>, StoreError>;
    /// Any token of this tenant, including tombstones.
    async fn token(&self, tenant: TenantId, token: &str) -> Result<StoredToken, StoreError>;
    /// Several tokens of this tenant in one query (at most
    /// [`crate::store::payments::MAX_BATCH`]), tombstones included; tokens
    /// it does not have are left out.
    async fn tokens_of(
        &self,
        tenant: TenantId,
        tokens: &[String],
    ) -> Result<Vec<StoredToken>, StoreError>;
    /// Erases the sealed card data and marks the token deleted. Returns
    /// false when it was already deleted.
    async fn shred_token(
        &self,
        tenant: TenantId,
        token: &str,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError>;
    /// Shreds up to `limit` tokens whose `expires_at` has passed; returns how many.
    async fn shred_expired_tokens(&self, now: DateTime<Utc>, limit: u32)
    -> Result<u64, StoreError>;
    /// Live sealed tokens not under data key `key`, after `after` in
    /// (tenant, token) order (for re-encryption).
    async fn sealed_tokens_not_under(
        &self,
        key: i64,
        after: Option<(TenantId, String)>,
        limit: u32,
    ) -> Result<Vec<(TenantId, String, SealedRecord)>, StoreError>;
    async fn count_sealed_not_under(&self, key: i64) -> Result<u64, StoreError>;
    /// (data key id, tokens sealed under it).
    async fn count_sealed_by_data_key(&self) -> Result<Vec<(i64, u64)>, StoreError>;
    /// Replaces a token's sealed record if it is still `old`.
    async fn replace_sealed(
        &self,
        tenant: TenantId,
        token: &str,
        old: &SealedRecord,
        new: &SealedRecord,
    ) -> Result<bool, StoreError>;
    async fn token_policy(&self, tenant: TenantId) -> Result<TokenPolicy, StoreError>;
    async fn set_token_policy(
        &self,
        tenant: TenantId,
        policy: TokenPolicy,
    ) -> Result<(), StoreError>;
}

/// Implements [`TokenStore`] for an adapter with a `pool` field; the SQL is
/// the same on both databases.
macro_rules! impl_token_store {
    ($store:ty) => {
        #[async_trait::async_trait]
        impl $crate::store::tokens::TokenStore for $store {
            async fn insert_token(
                &self,
                t: &$crate::store::tokens::StoredToken,
            ) -> Result<(), $crate::store::StoreError> {
                let sealed = t.sealed.as_ref();
                sqlx::query(
                    "INSERT INTO tokens (tenant_id, token, format, brand, last4, bin, \
                     exp_month, exp_year, fingerprint, data_key_id, record_format, nonce, \
                     ciphertext, metadata, created_at, expires_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)",
                )
                .bind(t.tenant)
                .bind(&t.token)
                .bind(&t.format)
                .bind(&t.brand)
                .bind(&t.last4)
                .bind(&t.bin)
                .bind(i32::from(t.exp_month))
                .bind(i32::from(t.exp_year))
                .bind(&t.fingerprint[..])
                .bind(sealed.map(|s| s.data_key_id.0))
                .bind(sealed.map(|s| i32::from(s.format_version)))
                .bind(sealed.map(|s| s.nonce.to_vec()))
                .bind(sealed.map(|s| s.ciphertext.clone()))
                .bind(t.metadata.as_ref().map(|m| m.to_string()))
                .bind(t.created_at)
                .bind(t.expires_at)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn token_by_fingerprint(
                &self,
                tenant: $crate::ids::TenantId,
                fingerprint: &[u8; 32],
            ) -> Result<Option<$crate::store::tokens::StoredToken>, $crate::store::StoreError>
            {
                let row = sqlx::query(concat!(
                    "SELECT ",
                    $crate::store::tokens::TOKEN_COLUMNS!(),
                    " FROM tokens WHERE tenant_id = $1 AND fingerprint = $2 \
                     AND deleted_at IS NULL ORDER BY created_at LIMIT 1"
                ))
                .bind(tenant)
                .bind(&fingerprint[..])
                .fetch_optional(&self.pool)
                .await?;
                row.as_ref()
                    .map($crate::store::tokens::token_from_row)
                    .transpose()
            }

            async fn token(
                &self,
                tenant: $crate::ids::TenantId,
                token: &str,
            ) -> Result<$crate::store::tokens::StoredToken, $crate::store::StoreError> {
                let row = sqlx::query(concat!(
                    "SELECT ",
                    $crate::store::tokens::TOKEN_COLUMNS!(),
                    " FROM tokens WHERE tenant_id = $1 AND token = $2"
                ))
                .bind(tenant)
                .bind(token)
                .fetch_one(&self.pool)
                .await?;
                $crate::store::tokens::token_from_row(&row)
            }

            async fn tokens_of(
                &self,
                tenant: $crate::ids::TenantId,
                tokens: &[String],
            ) -> Result<Vec<$crate::store::tokens::StoredToken>, $crate::store::StoreError> {
                if !$crate::store::payments::batch_wanted(tokens.len())? {
                    return Ok(Vec::new());
                }
                let mut sql = sqlx::QueryBuilder::new(concat!(
                    "SELECT ",
                    $crate::store::tokens::TOKEN_COLUMNS!(),
                    " FROM tokens WHERE tenant_id = "
                ));
                sql.push_bind(tenant).push(" AND token");
                $crate::store::payments::push_in(&mut sql, tokens.iter().map(String::as_str));
                let rows = sql.build().persistent(false).fetch_all(&self.pool).await?;
                rows.iter()
                    .map($crate::store::tokens::token_from_row)
                    .collect()
            }

            async fn shred_token(
                &self,
                tenant: $crate::ids::TenantId,
                token: &str,
                at: chrono::DateTime<chrono::Utc>,
            ) -> Result<bool, $crate::store::StoreError> {
                let updated = sqlx::query(
                    "UPDATE tokens SET data_key_id = NULL, record_format = NULL, nonce = NULL, \
                     ciphertext = NULL, metadata = NULL, deleted_at = $1 \
                     WHERE tenant_id = $2 AND token = $3 AND deleted_at IS NULL",
                )
                .bind(at)
                .bind(tenant)
                .bind(token)
                .execute(&self.pool)
                .await?
                .rows_affected();
                Ok(updated == 1)
            }

            async fn shred_expired_tokens(
                &self,
                now: chrono::DateTime<chrono::Utc>,
                limit: u32,
            ) -> Result<u64, $crate::store::StoreError> {
                Ok(sqlx::query(
                    "UPDATE tokens SET data_key_id = NULL, record_format = NULL, nonce = NULL, \
                     ciphertext = NULL, metadata = NULL, deleted_at = $1 \
                     WHERE (tenant_id, token) IN (SELECT tenant_id, token FROM tokens \
                     WHERE deleted_at IS NULL AND expires_at IS NOT NULL AND expires_at <= $1 \
                     LIMIT $2)",
                )
                .bind(now)
                .bind(i64::from(limit))
                .execute(&self.pool)
                .await?
                .rows_affected())
            }

            async fn sealed_tokens_not_under(
                &self,
                key: i64,
                after: Option<($crate::ids::TenantId, String)>,
                limit: u32,
            ) -> Result<
                Vec<($crate::ids::TenantId, String, $crate::keys::SealedRecord)>,
                $crate::store::StoreError,
            > {
                let rows = match after {
                    Some((tenant, token)) => sqlx::query(concat!(
                        "SELECT ",
                        $crate::store::tokens::TOKEN_COLUMNS!(),
                        " FROM tokens WHERE data_key_id IS NOT NULL AND data_key_id <> $1 \
                         AND (tenant_id, token) > ($2, $3) ORDER BY tenant_id, token LIMIT $4"
                    ))
                    .bind(key)
                    .bind(tenant)
                    .bind(token)
                    .bind(i64::from(limit))
                    .fetch_all(&self.pool)
                    .await?,
                    None => sqlx::query(concat!(
                        "SELECT ",
                        $crate::store::tokens::TOKEN_COLUMNS!(),
                        " FROM tokens WHERE data_key_id IS NOT NULL AND data_key_id <> $1 \
                         ORDER BY tenant_id, token LIMIT $2"
                    ))
                    .bind(key)
                    .bind(i64::from(limit))
                    .fetch_all(&self.pool)
                    .await?,
                };
                rows.iter()
                    .map(|row| {
                        let t = $crate::store::tokens::token_from_row(row)?;
                        let sealed = t.sealed.ok_or($crate::store::StoreError::Internal)?;
                        Ok((t.tenant, t.token, sealed))
                    })
                    .collect()
            }

            async fn count_sealed_not_under(
                &self,
                key: i64,
            ) -> Result<u64, $crate::store::StoreError> {
                use sqlx::Row;
                let row = sqlx::query(
                    "SELECT COUNT(*) AS n FROM tokens \
                     WHERE data_key_id IS NOT NULL AND data_key_id <> $1",
                )
                .bind(key)
                .fetch_one(&self.pool)
                .await?;
                u64::try_from(row.try_get::<i64, _>("n")?)
                    .map_err(|_| $crate::store::StoreError::Internal)
            }

            async fn count_sealed_by_data_key(
                &self,
            ) -> Result<Vec<(i64, u64)>, $crate::store::StoreError> {
                use sqlx::Row;
                let rows = sqlx::query(
                    "SELECT data_key_id, COUNT(*) AS n FROM tokens \
                     WHERE data_key_id IS NOT NULL GROUP BY data_key_id ORDER BY data_key_id",
                )
                .fetch_all(&self.pool)
                .await?;
                rows.iter()
                    .map(|row| {
                        let n: i64 = row.try_get("n")?;
                        Ok((
                            row.try_get::<i64, _>("data_key_id")?,
                            u64::try_from(n).map_err(|_| $crate::store::StoreError::Internal)?,
                        ))
                    })
                    .collect()
            }

            async fn replace_sealed(
                &self,
                tenant: $crate::ids::TenantId,
                token: &str,
                old: &$crate::keys::SealedRecord,
                new: &$crate::keys::SealedRecord,
            ) -> Result<bool, $crate::store::StoreError> {
                let updated = sqlx::query(
                    "UPDATE tokens SET data_key_id = $1, record_format = $2, nonce = $3, \
                     ciphertext = $4 WHERE tenant_id = $5 AND token = $6 \
                     AND data_key_id = $7 AND nonce = $8",
                )
                .bind(new.data_key_id.0)
                .bind(i32::from(new.format_version))
                .bind(new.nonce.to_vec())
                .bind(new.ciphertext.clone())
                .bind(tenant)
                .bind(token)
                .bind(old.data_key_id.0)
                .bind(old.nonce.to_vec())
                .execute(&self.pool)
                .await?
                .rows_affected();
                Ok(updated == 1)
            }

            async fn token_policy(
                &self,
                tenant: $crate::ids::TenantId,
            ) -> Result<$crate::store::tokens::TokenPolicy, $crate::store::StoreError> {
                use sqlx::Row;
                let row = sqlx::query(
                    "SELECT keep_bin, deterministic FROM token_policies WHERE tenant_id = $1",
                )
                .bind(tenant)
                .fetch_optional(&self.pool)
                .await?;
                Ok(match row {
                    Some(row) => $crate::store::tokens::TokenPolicy {
                        keep_bin: row.try_get("keep_bin")?,
                        deterministic: row.try_get("deterministic")?,
                    },
                    None => $crate::store::tokens::TokenPolicy::default(),
                })
            }

            async fn set_token_policy(
                &self,
                tenant: $crate::ids::TenantId,
                policy: $crate::store::tokens::TokenPolicy,
            ) -> Result<(), $crate::store::StoreError> {
                sqlx::query(
                    "INSERT INTO token_policies (tenant_id, keep_bin, deterministic) \
                     VALUES ($1, $2, $3) ON CONFLICT (tenant_id) DO UPDATE \
                     SET keep_bin = excluded.keep_bin, deterministic = excluded.deterministic",
                )
                .bind(tenant)
                .bind(policy.keep_bin)
                .bind(policy.deterministic)
                .execute(&self.pool)
                .await?;
                Ok(())
            }
        }
    };
}

pub(crate) use impl_token_store;

/// The columns [`token_from_row`] reads, in one place for every SELECT.
macro_rules! TOKEN_COLUMNS {
    () => {
        "tenant_id, token, format, brand, last4, bin, exp_month, exp_year, fingerprint, \
         data_key_id, record_format, nonce, ciphertext, metadata, created_at, expires_at, deleted_at"
    };
}

pub(crate) use TOKEN_COLUMNS;

pub(crate) fn token_from_row<R>(row: &R) -> Result<StoredToken, StoreError>
where
    R: sqlx::Row,
    for<'r> &'r str: sqlx::ColumnIndex<R>,
    for<'r> TenantId: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> i32: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Vec<u8>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> DateTime<Utc>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let bad = |_| StoreError::Internal;
    let fingerprint: Vec<u8> = row.try_get("fingerprint")?;
    let data_key_id: Option<i64> = row.try_get("data_key_id")?;
    let record_format: Option<i32> = row.try_get("record_format")?;
    let nonce: Option<Vec<u8>> = row.try_get("nonce")?;
    let ciphertext: Option<Vec<u8>> = row.try_get("ciphertext")?;
    let sealed = match (data_key_id, record_format, nonce, ciphertext) {
        (Some(id), Some(version), Some(nonce), Some(ciphertext)) => Some(SealedRecord {
            data_key_id: crate::keys::DataKeyId(id),
            format_version: u16::try_from(version).map_err(bad)?,
            nonce: nonce.try_into().map_err(|_| StoreError::Internal)?,
            ciphertext,
        }),
        (None, None, None, None) => None,
        _ => return Err(StoreError::Internal),
    };
    let metadata: Option<String> = row.try_get("metadata")?;
    Ok(StoredToken {
        tenant: row.try_get("tenant_id")?,
        token: row.try_get("token")?,
        format: row.try_get("format")?,
        brand: row.try_get("brand")?,
        last4: row.try_get("last4")?,
        bin: row.try_get("bin")?,
        exp_month: u8::try_from(row.try_get::<i32, _>("exp_month")?).map_err(bad)?,
        exp_year: u16::try_from(row.try_get::<i32, _>("exp_year")?).map_err(bad)?,
        fingerprint: fingerprint.try_into().map_err(|_| StoreError::Internal)?,
        sealed,
        metadata: metadata
            .map(|m| serde_json::from_str(&m))
            .transpose()
            .map_err(|_| StoreError::Internal)?,
        created_at: row.try_get("created_at")?,
        expires_at: row.try_get("expires_at")?,
        deleted_at: row.try_get("deleted_at")?,
    })
}
