//! SQL that reads the same on SQLite and PostgreSQL, written once and
//! expanded for each adapter's pool. Anything dialect-specific lives in the
//! adapter's own module.

/// Implements the portable store traits for an adapter with a `pool` field.
macro_rules! impl_portable_stores {
    ($store:ty) => {
        #[async_trait::async_trait]
        impl $crate::store::TenantStore for $store {
            async fn insert_tenant(
                &self,
                tenant: &$crate::tenants::Tenant,
            ) -> Result<(), $crate::store::StoreError> {
                sqlx::query("INSERT INTO tenants (id, name, created_at) VALUES ($1, $2, $3)")
                    .bind(tenant.id)
                    .bind(tenant.name.as_str())
                    .bind(tenant.created_at)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn tenant(
                &self,
                id: $crate::ids::TenantId,
            ) -> Result<$crate::tenants::Tenant, $crate::store::StoreError> {
                let row = sqlx::query("SELECT id, name, created_at FROM tenants WHERE id = $1")
                    .bind(id)
                    .fetch_one(&self.pool)
                    .await?;
                $crate::store::common::tenant_from_row(&row)
            }

            async fn tenant_by_name(
                &self,
                name: &$crate::tenants::TenantName,
            ) -> Result<$crate::tenants::Tenant, $crate::store::StoreError> {
                let row = sqlx::query("SELECT id, name, created_at FROM tenants WHERE name = $1")
                    .bind(name.as_str())
                    .fetch_one(&self.pool)
                    .await?;
                $crate::store::common::tenant_from_row(&row)
            }

            async fn tenants(
                &self,
            ) -> Result<Vec<$crate::tenants::Tenant>, $crate::store::StoreError> {
                let rows = sqlx::query("SELECT id, name, created_at FROM tenants ORDER BY name")
                    .fetch_all(&self.pool)
                    .await?;
                rows.iter()
                    .map($crate::store::common::tenant_from_row)
                    .collect()
            }
        }

        #[async_trait::async_trait]
        impl $crate::store::IdempotencyStore for $store {
            async fn begin_idempotent(
                &self,
                scope: &$crate::idempotency::IdempotencyScope,
                request_hash: &[u8; 32],
                now: chrono::DateTime<chrono::Utc>,
            ) -> Result<$crate::idempotency::Begin, $crate::store::StoreError> {
                let claimed = sqlx::query(
                    "INSERT INTO idempotency_keys \
                     (tenant_id, principal, idem_key, request_hash, created_at) \
                     VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
                )
                .bind(scope.tenant)
                .bind(&scope.principal)
                .bind(scope.key.as_str())
                .bind(&request_hash[..])
                .bind(now)
                .execute(&self.pool)
                .await?
                .rows_affected();
                if claimed == 1 {
                    return Ok($crate::idempotency::Begin::Fresh);
                }
                // Removed in between (abandoned): the caller may try again.
                Ok(self
                    .idempotent_state(scope, request_hash)
                    .await?
                    .unwrap_or($crate::idempotency::Begin::InProgress))
            }

            async fn idempotent_state(
                &self,
                scope: &$crate::idempotency::IdempotencyScope,
                request_hash: &[u8; 32],
            ) -> Result<Option<$crate::idempotency::Begin>, $crate::store::StoreError> {
                use sqlx::Row;
                let row = sqlx::query(
                    "SELECT request_hash, status_code, response_body, completed_at \
                     FROM idempotency_keys \
                     WHERE tenant_id = $1 AND principal = $2 AND idem_key = $3",
                )
                .bind(scope.tenant)
                .bind(&scope.principal)
                .bind(scope.key.as_str())
                .fetch_optional(&self.pool)
                .await?;
                let Some(row) = row else { return Ok(None) };
                let stored_hash: Vec<u8> = row.try_get("request_hash")?;
                // Not a secret: the hash of the caller's own request.
                if stored_hash.as_slice() != &request_hash[..] {
                    return Ok(Some($crate::idempotency::Begin::Mismatch));
                }
                let status: Option<i32> = row.try_get("status_code")?;
                let body: Option<Vec<u8>> = row.try_get("response_body")?;
                let completed_at: Option<chrono::DateTime<chrono::Utc>> =
                    row.try_get("completed_at")?;
                Ok(Some(match (status, body, completed_at) {
                    (Some(status), Some(body), Some(completed_at)) => {
                        $crate::idempotency::Begin::Replay($crate::idempotency::StoredResponse {
                            status: u16::try_from(status)
                                .map_err(|_| $crate::store::StoreError::Internal)?,
                            body,
                            completed_at,
                        })
                    }
                    _ => $crate::idempotency::Begin::InProgress,
                }))
            }

            async fn complete_idempotent(
                &self,
                scope: &$crate::idempotency::IdempotencyScope,
                status: u16,
                body: &[u8],
                now: chrono::DateTime<chrono::Utc>,
            ) -> Result<(), $crate::store::StoreError> {
                let updated = sqlx::query(
                    "UPDATE idempotency_keys \
                     SET status_code = $1, response_body = $2, completed_at = $3 \
                     WHERE tenant_id = $4 AND principal = $5 AND idem_key = $6 \
                     AND completed_at IS NULL",
                )
                .bind(i32::from(status))
                .bind(body)
                .bind(now)
                .bind(scope.tenant)
                .bind(&scope.principal)
                .bind(scope.key.as_str())
                .execute(&self.pool)
                .await?
                .rows_affected();
                if updated == 1 {
                    Ok(())
                } else {
                    Err($crate::store::StoreError::NotFound)
                }
            }

            async fn abandon_idempotent(
                &self,
                scope: &$crate::idempotency::IdempotencyScope,
            ) -> Result<(), $crate::store::StoreError> {
                sqlx::query(
                    "DELETE FROM idempotency_keys \
                     WHERE tenant_id = $1 AND principal = $2 AND idem_key = $3 \
                     AND completed_at IS NULL",
                )
                .bind(scope.tenant)
                .bind(&scope.principal)
                .bind(scope.key.as_str())
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn purge_idempotent(
                &self,
                before: chrono::DateTime<chrono::Utc>,
            ) -> Result<u64, $crate::store::StoreError> {
                Ok(sqlx::query(
                    "DELETE FROM idempotency_keys \
                     WHERE completed_at IS NOT NULL AND completed_at < $1",
                )
                .bind(before)
                .execute(&self.pool)
                .await?
                .rows_affected())
            }
        }
    };
}

pub(crate) use impl_portable_stores;

/// Implements [`crate::store::Store`] for an adapter with a `pool` field;
/// `$migrator` is the adapter's embedded migrations.
macro_rules! impl_store {
    ($store:ty, $backend:expr, $migrator:ident) => {
        #[async_trait::async_trait]
        impl $crate::store::Store for $store {
            fn backend(&self) -> $crate::config::DatabaseBackend {
                $backend
            }

            fn data_key_store(
                self: std::sync::Arc<Self>,
            ) -> std::sync::Arc<dyn $crate::store::DataKeyStore> {
                self
            }

            async fn ping(&self) -> Result<(), $crate::store::StoreError> {
                sqlx::query("SELECT 1").execute(&self.pool).await?;
                Ok(())
            }

            async fn migrate(&self) -> Result<usize, $crate::store::MigrateError> {
                $crate::store::apply_migrations(&$migrator, &self.pool).await
            }

            async fn close(&self) {
                self.pool.close().await;
                self.writer_pool().close().await;
            }
        }
    };
}

pub(crate) use impl_store;

pub(crate) fn tenant_from_row<R>(row: &R) -> Result<crate::tenants::Tenant, super::StoreError>
where
    R: sqlx::Row,
    for<'r> &'r str: sqlx::ColumnIndex<R>,
    for<'r> crate::ids::TenantId: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> chrono::DateTime<chrono::Utc>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let name: String = row.try_get("name")?;
    Ok(crate::tenants::Tenant {
        id: row.try_get("id")?,
        name: crate::tenants::TenantName::parse(&name).map_err(|_| super::StoreError::Internal)?,
        created_at: row.try_get("created_at")?,
    })
}
