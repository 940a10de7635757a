//! The key registry: KEK versions with the check value recorded at
//! `keys init` / `rotate-kek`, data keys and the tenants' FF1 keys — only
//! ever in wrapped form.
//!
//! Invariants held by the schema, not just the code: at most one active KEK
//! and one active data key (partial unique indexes), states limited to the
//! known values (CHECK), every data key points at a recorded KEK (foreign
//! key), ids never reused (AUTOINCREMENT / identity), so a record's AAD
//! names one key forever.

use std::fmt;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::StoreError;
use crate::ids::TenantId;
use crate::keys::{DataKeyId, KekVersion, KeyCheckValue, WrappedDataKey};

/// Lifecycle of a data key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DataKeyState {
    /// Encrypts new records; exactly one at a time.
    Active,
    /// Opens existing records; re-encryption moves them away.
    DecryptOnly,
    /// No record uses it any more; kept wrapped for the audit trail.
    Retired,
}

impl DataKeyState {
    pub fn as_str(self) -> &'static str {
        match self {
            DataKeyState::Active => "active",
            DataKeyState::DecryptOnly => "decrypt_only",
            DataKeyState::Retired => "retired",
        }
    }

    pub fn parse(s: &str) -> Result<Self, StoreError> {
        match s {
            "active" => Ok(DataKeyState::Active),
            "decrypt_only" => Ok(DataKeyState::DecryptOnly),
            "retired" => Ok(DataKeyState::Retired),
            _ => Err(StoreError::Internal),
        }
    }
}

impl fmt::Display for DataKeyState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Lifecycle of a KEK.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KekState {
    /// Created in the HSM and recorded, not yet in use (a rotation in progress).
    Pending,
    /// Wraps new data keys; exactly one at a time.
    Active,
    /// Superseded; data keys are being rewrapped away from it.
    Retiring,
    /// Nothing is wrapped under it and it is gone from the HSM.
    Destroyed,
}

impl KekState {
    pub fn as_str(self) -> &'static str {
        match self {
            KekState::Pending => "pending",
            KekState::Active => "active",
            KekState::Retiring => "retiring",
            KekState::Destroyed => "destroyed",
        }
    }

    pub fn parse(s: &str) -> Result<Self, StoreError> {
        match s {
            "pending" => Ok(KekState::Pending),
            "active" => Ok(KekState::Active),
            "retiring" => Ok(KekState::Retiring),
            "destroyed" => Ok(KekState::Destroyed),
            _ => Err(StoreError::Internal),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KekRecord {
    pub version: KekVersion,
    /// Object label in the HSM (`voltvault-kek-v<N>`).
    pub label: String,
    pub check_value: KeyCheckValue,
    pub state: KekState,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataKeyRecord {
    pub id: DataKeyId,
    pub state: DataKeyState,
    pub wrapped: WrappedDataKey,
    pub created_at: DateTime<Utc>,
    /// Encryptions reserved so far (an upper bound on those made).
    pub use_count: u64,
}

/// A tenant's FF1 key, wrapped under a KEK. One per tenant, never replaced:
/// its tokens are a function of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ff1KeyRecord {
    pub tenant: TenantId,
    pub wrapped: WrappedDataKey,
    pub created_at: DateTime<Utc>,
}

#[async_trait]
pub trait DataKeyStore: Send + Sync {
    async fn insert_kek(&self, kek: &KekRecord) -> Result<(), StoreError>;
    /// All KEKs, by version.
    async fn keks(&self) -> Result<Vec<KekRecord>, StoreError>;
    /// Makes `version` the active KEK and the previous active one retiring,
    /// in one transaction.
    async fn activate_kek(&self, version: KekVersion) -> Result<(), StoreError>;
    async fn set_kek_state(&self, version: KekVersion, state: KekState) -> Result<(), StoreError>;

    /// Stores a new data key as the active one and demotes the previous
    /// active key to decrypt-only, in one transaction. A concurrent rotation
    /// elsewhere makes this fail with `Conflict`.
    async fn insert_active_data_key(
        &self,
        wrapped: &WrappedDataKey,
        created_at: DateTime<Utc>,
    ) -> Result<DataKeyRecord, StoreError>;
    async fn data_key(&self, id: DataKeyId) -> Result<DataKeyRecord, StoreError>;
    async fn active_data_key(&self) -> Result<Option<DataKeyRecord>, StoreError>;
    /// All data keys, by id.
    async fn data_keys(&self) -> Result<Vec<DataKeyRecord>, StoreError>;
    /// Reserves `n` more encryptions on an *active* key; returns the new
    /// total. `NotFound` if the key is no longer active.
    async fn reserve_data_key_uses(&self, id: DataKeyId, n: u64) -> Result<u64, StoreError>;
    async fn set_data_key_state(
        &self,
        id: DataKeyId,
        state: DataKeyState,
    ) -> Result<(), StoreError>;
    /// Replaces the wrapping of a data key if it is still wrapped under
    /// `from` (compare-and-swap, so concurrent rewraps cannot regress it).
    async fn replace_wrapping(
        &self,
        id: DataKeyId,
        from: KekVersion,
        to: &WrappedDataKey,
    ) -> Result<(), StoreError>;

    /// Stores a tenant's FF1 key; `Conflict` if the tenant has one already
    /// (another node made it first: use that one).
    async fn insert_ff1_key(&self, key: &Ff1KeyRecord) -> Result<(), StoreError>;
    async fn ff1_key(&self, tenant: TenantId) -> Result<Option<Ff1KeyRecord>, StoreError>;
    /// All FF1 keys, by tenant.
    async fn ff1_keys(&self) -> Result<Vec<Ff1KeyRecord>, StoreError>;
    /// Compare-and-swap of an FF1 key's wrapping, as [`Self::replace_wrapping`].
    async fn replace_ff1_wrapping(
        &self,
        tenant: TenantId,
        from: KekVersion,
        to: &WrappedDataKey,
    ) -> Result<(), StoreError>;
}

pub(crate) fn to_i64(n: u64) -> Result<i64, StoreError> {
    i64::try_from(n).map_err(|_| StoreError::Internal)
}

pub(crate) fn to_u64(n: i64) -> Result<u64, StoreError> {
    u64::try_from(n).map_err(|_| StoreError::Internal)
}

pub(crate) fn to_kek(n: i64) -> Result<KekVersion, StoreError> {
    u32::try_from(n)
        .map(KekVersion)
        .map_err(|_| StoreError::Internal)
}

pub(crate) fn data_key_from_row<R>(row: &R) -> Result<DataKeyRecord, super::StoreError>
where
    R: sqlx::Row,
    for<'r> &'r str: sqlx::ColumnIndex<R>,
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Vec<u8>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> chrono::DateTime<chrono::Utc>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let state: String = row.try_get("state")?;
    Ok(DataKeyRecord {
        id: crate::keys::DataKeyId(row.try_get("id")?),
        state: DataKeyState::parse(&state)?,
        wrapped: crate::keys::WrappedDataKey {
            kek: to_kek(row.try_get("kek_version")?)?,
            bytes: row.try_get("wrapped")?,
        },
        created_at: row.try_get("created_at")?,
        use_count: to_u64(row.try_get("use_count")?)?,
    })
}

pub(crate) fn ff1_key_from_row<R>(row: &R) -> Result<Ff1KeyRecord, super::StoreError>
where
    R: sqlx::Row,
    for<'r> &'r str: sqlx::ColumnIndex<R>,
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> TenantId: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Vec<u8>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> chrono::DateTime<chrono::Utc>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    Ok(Ff1KeyRecord {
        tenant: row.try_get("tenant_id")?,
        wrapped: WrappedDataKey {
            kek: to_kek(row.try_get("kek_version")?)?,
            bytes: row.try_get("wrapped")?,
        },
        created_at: row.try_get("created_at")?,
    })
}

/// Implements [`DataKeyStore`] for an adapter with a `pool` field; the SQL
/// reads the same on SQLite and PostgreSQL.
macro_rules! impl_data_key_store {
    ($store:ty) => {
        #[async_trait::async_trait]
        impl $crate::store::data_keys::DataKeyStore for $store {
            async fn insert_kek(
                &self,
                kek: &$crate::store::data_keys::KekRecord,
            ) -> Result<(), $crate::store::StoreError> {
                sqlx::query(
                    "INSERT INTO key_encryption_keys \
                     (version, label, check_value, state, created_at) \
                     VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(i64::from(kek.version.0))
                .bind(&kek.label)
                .bind(&kek.check_value.0[..])
                .bind(kek.state.as_str())
                .bind(kek.created_at)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn keks(
                &self,
            ) -> Result<Vec<$crate::store::data_keys::KekRecord>, $crate::store::StoreError> {
                use sqlx::Row;
                let rows = sqlx::query(
                    "SELECT version, label, check_value, state, created_at \
                     FROM key_encryption_keys ORDER BY version",
                )
                .fetch_all(&self.pool)
                .await?;
                rows.iter()
                    .map(|row| {
                        let state: String = row.try_get("state")?;
                        let kcv: Vec<u8> = row.try_get("check_value")?;
                        Ok($crate::store::data_keys::KekRecord {
                            version: $crate::store::data_keys::to_kek(row.try_get("version")?)?,
                            label: row.try_get("label")?,
                            check_value: $crate::keys::KeyCheckValue::from_slice(&kcv)
                                .map_err(|_| $crate::store::StoreError::Internal)?,
                            state: $crate::store::data_keys::KekState::parse(&state)?,
                            created_at: row.try_get("created_at")?,
                        })
                    })
                    .collect()
            }

            async fn activate_kek(
                &self,
                version: $crate::keys::KekVersion,
            ) -> Result<(), $crate::store::StoreError> {
                let mut tx = self.pool.begin().await?;
                sqlx::query(
                    "UPDATE key_encryption_keys SET state = 'retiring' \
                     WHERE state = 'active' AND version <> $1",
                )
                .bind(i64::from(version.0))
                .execute(&mut *tx)
                .await?;
                let n = sqlx::query(
                    "UPDATE key_encryption_keys SET state = 'active' \
                     WHERE version = $1 AND state <> 'destroyed'",
                )
                .bind(i64::from(version.0))
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if n != 1 {
                    return Err($crate::store::StoreError::NotFound);
                }
                tx.commit().await?;
                Ok(())
            }

            async fn set_kek_state(
                &self,
                version: $crate::keys::KekVersion,
                state: $crate::store::data_keys::KekState,
            ) -> Result<(), $crate::store::StoreError> {
                let n = sqlx::query("UPDATE key_encryption_keys SET state = $1 WHERE version = $2")
                    .bind(state.as_str())
                    .bind(i64::from(version.0))
                    .execute(&self.pool)
                    .await?
                    .rows_affected();
                if n == 1 {
                    Ok(())
                } else {
                    Err($crate::store::StoreError::NotFound)
                }
            }

            async fn insert_active_data_key(
                &self,
                wrapped: &$crate::keys::WrappedDataKey,
                created_at: chrono::DateTime<chrono::Utc>,
            ) -> Result<$crate::store::data_keys::DataKeyRecord, $crate::store::StoreError> {
                use sqlx::Row;
                let mut tx = self.pool.begin().await?;
                sqlx::query("UPDATE data_keys SET state = 'decrypt_only' WHERE state = 'active'")
                    .execute(&mut *tx)
                    .await?;
                let row = sqlx::query(
                    "INSERT INTO data_keys (state, wrapped, kek_version, created_at, use_count) \
                     VALUES ('active', $1, $2, $3, 0) RETURNING id",
                )
                .bind(&wrapped.bytes)
                .bind(i64::from(wrapped.kek.0))
                .bind(created_at)
                .fetch_one(&mut *tx)
                .await?;
                let id: i64 = row.try_get("id")?;
                tx.commit().await?;
                Ok($crate::store::data_keys::DataKeyRecord {
                    id: $crate::keys::DataKeyId(id),
                    state: $crate::store::data_keys::DataKeyState::Active,
                    wrapped: wrapped.clone(),
                    created_at,
                    use_count: 0,
                })
            }

            async fn data_key(
                &self,
                id: $crate::keys::DataKeyId,
            ) -> Result<$crate::store::data_keys::DataKeyRecord, $crate::store::StoreError> {
                let row = sqlx::query(
                    "SELECT id, state, wrapped, kek_version, created_at, use_count \
                     FROM data_keys WHERE id = $1",
                )
                .bind(id.0)
                .fetch_one(&self.pool)
                .await?;
                $crate::store::data_keys::data_key_from_row(&row)
            }

            async fn active_data_key(
                &self,
            ) -> Result<Option<$crate::store::data_keys::DataKeyRecord>, $crate::store::StoreError>
            {
                let row = sqlx::query(
                    "SELECT id, state, wrapped, kek_version, created_at, use_count \
                     FROM data_keys WHERE state = 'active'",
                )
                .fetch_optional(&self.pool)
                .await?;
                row.as_ref()
                    .map($crate::store::data_keys::data_key_from_row)
                    .transpose()
            }

            async fn data_keys(
                &self,
            ) -> Result<Vec<$crate::store::data_keys::DataKeyRecord>, $crate::store::StoreError>
            {
                let rows = sqlx::query(
                    "SELECT id, state, wrapped, kek_version, created_at, use_count \
                     FROM data_keys ORDER BY id",
                )
                .fetch_all(&self.pool)
                .await?;
                rows.iter()
                    .map($crate::store::data_keys::data_key_from_row)
                    .collect()
            }

            async fn reserve_data_key_uses(
                &self,
                id: $crate::keys::DataKeyId,
                n: u64,
            ) -> Result<u64, $crate::store::StoreError> {
                use sqlx::Row;
                let row = sqlx::query(
                    "UPDATE data_keys SET use_count = use_count + $1 \
                     WHERE id = $2 AND state = 'active' RETURNING use_count",
                )
                .bind($crate::store::data_keys::to_i64(n)?)
                .bind(id.0)
                .fetch_optional(&self.pool)
                .await?
                .ok_or($crate::store::StoreError::NotFound)?;
                $crate::store::data_keys::to_u64(row.try_get("use_count")?)
            }

            async fn set_data_key_state(
                &self,
                id: $crate::keys::DataKeyId,
                state: $crate::store::data_keys::DataKeyState,
            ) -> Result<(), $crate::store::StoreError> {
                let n = sqlx::query("UPDATE data_keys SET state = $1 WHERE id = $2")
                    .bind(state.as_str())
                    .bind(id.0)
                    .execute(&self.pool)
                    .await?
                    .rows_affected();
                if n == 1 {
                    Ok(())
                } else {
                    Err($crate::store::StoreError::NotFound)
                }
            }

            async fn replace_wrapping(
                &self,
                id: $crate::keys::DataKeyId,
                from: $crate::keys::KekVersion,
                to: &$crate::keys::WrappedDataKey,
            ) -> Result<(), $crate::store::StoreError> {
                let n = sqlx::query(
                    "UPDATE data_keys SET wrapped = $1, kek_version = $2 \
                     WHERE id = $3 AND kek_version = $4",
                )
                .bind(&to.bytes)
                .bind(i64::from(to.kek.0))
                .bind(id.0)
                .bind(i64::from(from.0))
                .execute(&self.pool)
                .await?
                .rows_affected();
                if n == 1 {
                    Ok(())
                } else {
                    Err($crate::store::StoreError::Conflict("wrapping changed"))
                }
            }

            async fn insert_ff1_key(
                &self,
                key: &$crate::store::data_keys::Ff1KeyRecord,
            ) -> Result<(), $crate::store::StoreError> {
                sqlx::query(
                    "INSERT INTO ff1_keys (tenant_id, wrapped, kek_version, created_at) \
                     VALUES ($1, $2, $3, $4)",
                )
                .bind(key.tenant)
                .bind(&key.wrapped.bytes)
                .bind(i64::from(key.wrapped.kek.0))
                .bind(key.created_at)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn ff1_key(
                &self,
                tenant: $crate::ids::TenantId,
            ) -> Result<Option<$crate::store::data_keys::Ff1KeyRecord>, $crate::store::StoreError>
            {
                let row = sqlx::query(
                    "SELECT tenant_id, wrapped, kek_version, created_at \
                     FROM ff1_keys WHERE tenant_id = $1",
                )
                .bind(tenant)
                .fetch_optional(&self.pool)
                .await?;
                row.as_ref()
                    .map($crate::store::data_keys::ff1_key_from_row)
                    .transpose()
            }

            async fn ff1_keys(
                &self,
            ) -> Result<Vec<$crate::store::data_keys::Ff1KeyRecord>, $crate::store::StoreError>
            {
                let rows = sqlx::query(
                    "SELECT tenant_id, wrapped, kek_version, created_at \
                     FROM ff1_keys ORDER BY tenant_id",
                )
                .fetch_all(&self.pool)
                .await?;
                rows.iter()
                    .map($crate::store::data_keys::ff1_key_from_row)
                    .collect()
            }

            async fn replace_ff1_wrapping(
                &self,
                tenant: $crate::ids::TenantId,
                from: $crate::keys::KekVersion,
                to: &$crate::keys::WrappedDataKey,
            ) -> Result<(), $crate::store::StoreError> {
                let n = sqlx::query(
                    "UPDATE ff1_keys SET wrapped = $1, kek_version = $2 \
                     WHERE tenant_id = $3 AND kek_version = $4",
                )
                .bind(&to.bytes)
                .bind(i64::from(to.kek.0))
                .bind(tenant)
                .bind(i64::from(from.0))
                .execute(&self.pool)
                .await?
                .rows_affected();
                if n == 1 {
                    Ok(())
                } else {
                    Err($crate::store::StoreError::Conflict("wrapping changed"))
                }
            }
        }
    };
}

pub(crate) use impl_data_key_store;
