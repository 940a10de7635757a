//! Published tariff versions. Portable SQL, expanded for each adapter.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::StoreError;
use crate::ids::TenantId;

/// One published version: the OCPI document as validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredTariff {
    pub tenant: TenantId,
    pub id: String,
    pub version: u32,
    pub document: String,
    pub created_at: DateTime<Utc>,
    pub created_by: String,
}

#[async_trait]
pub trait TariffStore: Send + Sync {
    /// The highest version of a tariff, if any was published.
    async fn latest_tariff_version(
        &self,
        tenant: TenantId,
        id: &str,
    ) -> Result<Option<u32>, StoreError>;
    /// Stores a new version; `Conflict` if that version exists (a race).
    async fn insert_tariff(&self, tariff: &StoredTariff) -> Result<(), StoreError>;
    async fn tariff_version(
        &self,
        tenant: TenantId,
        id: &str,
        version: u32,
    ) -> Result<StoredTariff, StoreError>;
    /// The latest version of every tariff of the tenant, by id.
    async fn latest_tariffs(&self, tenant: TenantId) -> Result<Vec<StoredTariff>, StoreError>;
}

macro_rules! impl_tariff_store {
    ($store:ty) => {
        #[async_trait::async_trait]
        impl $crate::store::tariffs::TariffStore for $store {
            async fn latest_tariff_version(
                &self,
                tenant: $crate::ids::TenantId,
                id: &str,
            ) -> Result<Option<u32>, $crate::store::StoreError> {
                let v: Option<i32> = sqlx::query_scalar(
                    "SELECT max(version) FROM tariffs WHERE tenant_id = $1 AND id = $2",
                )
                .bind(tenant)
                .bind(id)
                .fetch_one(&self.pool)
                .await?;
                v.map(|v| u32::try_from(v).map_err(|_| $crate::store::StoreError::Internal))
                    .transpose()
            }

            async fn insert_tariff(
                &self,
                t: &$crate::store::tariffs::StoredTariff,
            ) -> Result<(), $crate::store::StoreError> {
                sqlx::query(
                    "INSERT INTO tariffs (tenant_id, id, version, document, created_at, created_by) \
                     VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(t.tenant)
                .bind(&t.id)
                .bind(i32::try_from(t.version).map_err(|_| $crate::store::StoreError::Internal)?)
                .bind(&t.document)
                .bind(t.created_at)
                .bind(&t.created_by)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn tariff_version(
                &self,
                tenant: $crate::ids::TenantId,
                id: &str,
                version: u32,
            ) -> Result<$crate::store::tariffs::StoredTariff, $crate::store::StoreError> {
                let row = sqlx::query(
                    "SELECT tenant_id, id, version, document, created_at, created_by \
                     FROM tariffs WHERE tenant_id = $1 AND id = $2 AND version = $3",
                )
                .bind(tenant)
                .bind(id)
                .bind(i32::try_from(version).map_err(|_| $crate::store::StoreError::NotFound)?)
                .fetch_one(&self.pool)
                .await?;
                tariff_row(&row)
            }

            async fn latest_tariffs(
                &self,
                tenant: $crate::ids::TenantId,
            ) -> Result<Vec<$crate::store::tariffs::StoredTariff>, $crate::store::StoreError>
            {
                let rows = sqlx::query(
                    "SELECT t.tenant_id, t.id, t.version, t.document, t.created_at, t.created_by \
                     FROM tariffs t WHERE t.tenant_id = $1 AND t.version = \
                     (SELECT max(version) FROM tariffs u WHERE u.tenant_id = t.tenant_id AND u.id = t.id) \
                     ORDER BY t.id",
                )
                .bind(tenant)
                .fetch_all(&self.pool)
                .await?;
                rows.iter().map(tariff_row).collect()
            }
        }

        fn tariff_row<R>(row: &R) -> Result<$crate::store::tariffs::StoredTariff, $crate::store::StoreError>
        where
            R: sqlx::Row,
            for<'a> &'a str: sqlx::ColumnIndex<R>,
            for<'a> String: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
            for<'a> i32: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
            for<'a> $crate::ids::TenantId: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
            for<'a> chrono::DateTime<chrono::Utc>: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
        {
            let version: i32 = row.try_get("version")?;
            Ok($crate::store::tariffs::StoredTariff {
                tenant: row.try_get("tenant_id")?,
                id: row.try_get("id")?,
                version: u32::try_from(version).map_err(|_| $crate::store::StoreError::Internal)?,
                document: row.try_get("document")?,
                created_at: row.try_get("created_at")?,
                created_by: row.try_get("created_by")?,
            })
        }
    };
}
pub(crate) use impl_tariff_store;
