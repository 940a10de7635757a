//! Portable SQL for [`crate::store::AuthStore`], expanded for each adapter.

macro_rules! impl_auth_store {
    ($store:ty, $row:ty) => {
        mod auth_rows {
            use chrono::{DateTime, Utc};
            use sqlx::Row;

            use $crate::auth::policy::Role;
            use $crate::auth::records::{
                ApiKeyRecord, ChallengeRecord, ChargerCaRecord, SessionRecord, UserRecord,
            };
            use $crate::auth::tokens::ApiKeyId;
            use $crate::store::StoreError;

            pub(super) type R = $row;

            fn role(row: &R) -> Result<Role, StoreError> {
                let raw: String = row.try_get("role")?;
                Role::parse(&raw).ok_or(StoreError::Internal)
            }

            pub(super) fn api_key(row: &R) -> Result<ApiKeyRecord, StoreError> {
                let id: String = row.try_get("key_id")?;
                Ok(ApiKeyRecord {
                    id: ApiKeyId::parse(&id).ok_or(StoreError::Internal)?,
                    tenant: row.try_get("tenant_id")?,
                    name: row.try_get("name")?,
                    role: role(row)?,
                    secret_hash: row.try_get("secret_hash")?,
                    created_at: row.try_get("created_at")?,
                    expires_at: row.try_get("expires_at")?,
                    revoked_at: row.try_get("revoked_at")?,
                    last_used_at: row.try_get("last_used_at")?,
                })
            }

            pub(super) fn user(row: &R) -> Result<UserRecord, StoreError> {
                Ok(UserRecord {
                    id: row.try_get("id")?,
                    tenant: row.try_get("tenant_id")?,
                    username: row.try_get("username")?,
                    role: role(row)?,
                    password_hash: row.try_get("password_hash")?,
                    totp_sealed: row.try_get("totp_sealed")?,
                    totp_last_step: row.try_get("totp_last_step")?,
                    failed_attempts: row.try_get("failed_attempts")?,
                    locked_until: row.try_get("locked_until")?,
                    disabled_at: row.try_get("disabled_at")?,
                    created_at: row.try_get("created_at")?,
                    last_login_at: row.try_get("last_login_at")?,
                })
            }

            pub(super) fn challenge(row: &R) -> Result<ChallengeRecord, StoreError> {
                Ok(ChallengeRecord {
                    challenge_hash: row.try_get("challenge_hash")?,
                    user: row.try_get("user_id")?,
                    expires_at: row.try_get("expires_at")?,
                })
            }

            pub(super) fn session(row: &R) -> Result<SessionRecord, StoreError> {
                session_created_as(row, "created_at")
            }

            /// A session from a row whose `created_at` is named `created`
            /// (joined with its user, whose own column has that name).
            pub(super) fn session_created_as(
                row: &R,
                created: &str,
            ) -> Result<SessionRecord, StoreError> {
                Ok(SessionRecord {
                    token_hash: row.try_get("token_hash")?,
                    user: row.try_get("user_id")?,
                    created_at: row.try_get(created)?,
                    last_seen_at: row.try_get("last_seen_at")?,
                    expires_at: row.try_get("expires_at")?,
                    second_factor_at: row.try_get("second_factor_at")?,
                })
            }

            pub(super) fn charger_ca(row: &R) -> Result<ChargerCaRecord, StoreError> {
                Ok(ChargerCaRecord {
                    id: row.try_get("id")?,
                    tenant: row.try_get("tenant_id")?,
                    name: row.try_get("name")?,
                    cert_der: row.try_get("cert_der")?,
                    sha256_hex: row.try_get("sha256_hex")?,
                    created_at: row.try_get("created_at")?,
                    revoked_at: row.try_get("revoked_at")?,
                })
            }

            pub(super) fn seen(row: &R) -> Result<(String, DateTime<Utc>), StoreError> {
                Ok((row.try_get("identity")?, row.try_get("last_used_at")?))
            }
        }

        const API_KEY_COLUMNS: &str = "key_id, tenant_id, name, role, secret_hash, created_at, \
             expires_at, revoked_at, last_used_at";
        const USER_COLUMNS: &str = "id, tenant_id, username, role, password_hash, totp_sealed, \
             totp_last_step, failed_attempts, locked_until, disabled_at, created_at, last_login_at";
        const CA_COLUMNS: &str = "id, tenant_id, name, cert_der, sha256_hex, created_at, revoked_at";

        fn one_row(affected: u64) -> Result<(), $crate::store::StoreError> {
            if affected == 1 {
                Ok(())
            } else {
                Err($crate::store::StoreError::NotFound)
            }
        }

        #[async_trait::async_trait]
        impl $crate::store::AuthStore for $store {
            async fn insert_api_key(
                &self,
                key: &$crate::auth::records::ApiKeyRecord,
            ) -> Result<(), $crate::store::StoreError> {
                sqlx::query(&format!(
                    "INSERT INTO api_keys ({API_KEY_COLUMNS}) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
                ))
                .bind(key.id.as_str())
                .bind(key.tenant)
                .bind(&key.name)
                .bind(key.role.as_str())
                .bind(&key.secret_hash)
                .bind(key.created_at)
                .bind(key.expires_at)
                .bind(key.revoked_at)
                .bind(key.last_used_at)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn api_key(
                &self,
                id: &$crate::auth::tokens::ApiKeyId,
            ) -> Result<$crate::auth::records::ApiKeyRecord, $crate::store::StoreError> {
                let row = sqlx::query(&format!(
                    "SELECT {API_KEY_COLUMNS} FROM api_keys WHERE key_id = $1"
                ))
                .bind(id.as_str())
                .fetch_one(&self.pool)
                .await?;
                auth_rows::api_key(&row)
            }

            async fn api_keys(
                &self,
                tenant: $crate::ids::TenantId,
            ) -> Result<Vec<$crate::auth::records::ApiKeyRecord>, $crate::store::StoreError>
            {
                let rows = sqlx::query(&format!(
                    "SELECT {API_KEY_COLUMNS} FROM api_keys WHERE tenant_id = $1 \
                     ORDER BY created_at, key_id"
                ))
                .bind(tenant)
                .fetch_all(&self.pool)
                .await?;
                rows.iter().map(auth_rows::api_key).collect()
            }

            async fn revoke_api_key(
                &self,
                tenant: $crate::ids::TenantId,
                id: &$crate::auth::tokens::ApiKeyId,
                at: chrono::DateTime<chrono::Utc>,
            ) -> Result<(), $crate::store::StoreError> {
                let affected = sqlx::query(
                    "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, $1) \
                     WHERE tenant_id = $2 AND key_id = $3",
                )
                .bind(at)
                .bind(tenant)
                .bind(id.as_str())
                .execute(&self.pool)
                .await?
                .rows_affected();
                one_row(affected)
            }

            async fn replace_api_key_secret(
                &self,
                tenant: $crate::ids::TenantId,
                id: &$crate::auth::tokens::ApiKeyId,
                secret_hash: &[u8],
            ) -> Result<(), $crate::store::StoreError> {
                let affected = sqlx::query(
                    "UPDATE api_keys SET secret_hash = $1 \
                     WHERE tenant_id = $2 AND key_id = $3 AND revoked_at IS NULL",
                )
                .bind(secret_hash)
                .bind(tenant)
                .bind(id.as_str())
                .execute(&self.pool)
                .await?
                .rows_affected();
                one_row(affected)
            }

            async fn touch_api_key(
                &self,
                id: &$crate::auth::tokens::ApiKeyId,
                at: chrono::DateTime<chrono::Utc>,
                coarseness: chrono::Duration,
            ) -> Result<(), $crate::store::StoreError> {
                sqlx::query(
                    "UPDATE api_keys SET last_used_at = $1 \
                     WHERE key_id = $2 AND (last_used_at IS NULL OR last_used_at < $3)",
                )
                .bind(at)
                .bind(id.as_str())
                .bind(at - coarseness)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn insert_user(
                &self,
                user: &$crate::auth::records::UserRecord,
            ) -> Result<(), $crate::store::StoreError> {
                let mut tx = self.pool.begin().await?;
                sqlx::query(&format!(
                    "INSERT INTO staff_users ({USER_COLUMNS}) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
                ))
                .bind(user.id)
                .bind(user.tenant)
                .bind(&user.username)
                .bind(user.role.as_str())
                .bind(&user.password_hash)
                .bind(&user.totp_sealed)
                .bind(user.totp_last_step)
                .bind(user.failed_attempts)
                .bind(user.locked_until)
                .bind(user.disabled_at)
                .bind(user.created_at)
                .bind(user.last_login_at)
                .execute(&mut *tx)
                .await?;
                sqlx::query(
                    "INSERT INTO staff_password_history (user_id, password_hash, set_at) \
                     VALUES ($1, $2, $3)",
                )
                .bind(user.id)
                .bind(&user.password_hash)
                .bind(user.created_at)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(())
            }

            async fn user(
                &self,
                id: $crate::ids::UserId,
            ) -> Result<$crate::auth::records::UserRecord, $crate::store::StoreError> {
                let row = sqlx::query(&format!(
                    "SELECT {USER_COLUMNS} FROM staff_users WHERE id = $1"
                ))
                .bind(id)
                .fetch_one(&self.pool)
                .await?;
                auth_rows::user(&row)
            }

            async fn user_by_username(
                &self,
                username: &str,
            ) -> Result<$crate::auth::records::UserRecord, $crate::store::StoreError> {
                let row = sqlx::query(&format!(
                    "SELECT {USER_COLUMNS} FROM staff_users WHERE username = $1"
                ))
                .bind(username)
                .fetch_one(&self.pool)
                .await?;
                auth_rows::user(&row)
            }

            async fn users(
                &self,
                tenant: $crate::ids::TenantId,
            ) -> Result<Vec<$crate::auth::records::UserRecord>, $crate::store::StoreError> {
                let rows = sqlx::query(&format!(
                    "SELECT {USER_COLUMNS} FROM staff_users WHERE tenant_id = $1 ORDER BY username"
                ))
                .bind(tenant)
                .fetch_all(&self.pool)
                .await?;
                rows.iter().map(auth_rows::user).collect()
            }

            async fn add_login_failure(
                &self,
                id: $crate::ids::UserId,
            ) -> Result<i64, $crate::store::StoreError> {
                use sqlx::Row;
                let row = sqlx::query(
                    "UPDATE staff_users SET failed_attempts = failed_attempts + 1 \
                     WHERE id = $1 RETURNING failed_attempts",
                )
                .bind(id)
                .fetch_one(&self.pool)
                .await?;
                Ok(row.try_get("failed_attempts")?)
            }

            async fn lock_user(
                &self,
                id: $crate::ids::UserId,
                until: chrono::DateTime<chrono::Utc>,
            ) -> Result<(), $crate::store::StoreError> {
                let affected = sqlx::query(
                    "UPDATE staff_users SET locked_until = $1, failed_attempts = 0 WHERE id = $2",
                )
                .bind(until)
                .bind(id)
                .execute(&self.pool)
                .await?
                .rows_affected();
                one_row(affected)
            }

            async fn record_login(
                &self,
                id: $crate::ids::UserId,
                at: chrono::DateTime<chrono::Utc>,
            ) -> Result<(), $crate::store::StoreError> {
                let affected = sqlx::query(
                    "UPDATE staff_users SET failed_attempts = 0, locked_until = NULL, \
                     last_login_at = $1 WHERE id = $2",
                )
                .bind(at)
                .bind(id)
                .execute(&self.pool)
                .await?
                .rows_affected();
                one_row(affected)
            }

            async fn claim_totp_step(
                &self,
                id: $crate::ids::UserId,
                step: i64,
            ) -> Result<bool, $crate::store::StoreError> {
                let affected = sqlx::query(
                    "UPDATE staff_users SET totp_last_step = $1 \
                     WHERE id = $2 AND totp_last_step < $1",
                )
                .bind(step)
                .bind(id)
                .execute(&self.pool)
                .await?
                .rows_affected();
                Ok(affected == 1)
            }

            async fn disable_user(
                &self,
                tenant: Option<$crate::ids::TenantId>,
                id: $crate::ids::UserId,
                at: chrono::DateTime<chrono::Utc>,
            ) -> Result<(), $crate::store::StoreError> {
                let mut tx = self.pool.begin().await?;
                let affected = sqlx::query(
                    "UPDATE staff_users SET disabled_at = COALESCE(disabled_at, $1) \
                     WHERE id = $2 AND ($3 IS NULL OR tenant_id = $3)",
                )
                .bind(at)
                .bind(id)
                .bind(tenant)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                one_row(affected)?;
                sqlx::query("DELETE FROM staff_sessions WHERE user_id = $1")
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(())
            }

            async fn disable_idle_users(
                &self,
                idle_since: chrono::DateTime<chrono::Utc>,
                at: chrono::DateTime<chrono::Utc>,
            ) -> Result<Vec<($crate::ids::TenantId, String)>, $crate::store::StoreError> {
                use sqlx::Row;
                let rows = sqlx::query(
                    "UPDATE staff_users SET disabled_at = $1 \
                     WHERE disabled_at IS NULL AND COALESCE(last_login_at, created_at) < $2 \
                     RETURNING tenant_id, username",
                )
                .bind(at)
                .bind(idle_since)
                .fetch_all(&self.pool)
                .await?;
                let mut out = Vec::with_capacity(rows.len());
                for row in &rows {
                    out.push((row.try_get("tenant_id")?, row.try_get("username")?));
                }
                Ok(out)
            }

            async fn reset_user_credentials(
                &self,
                tenant: $crate::ids::TenantId,
                id: $crate::ids::UserId,
                password_hash: &str,
                totp_sealed: &[u8],
                at: chrono::DateTime<chrono::Utc>,
            ) -> Result<(), $crate::store::StoreError> {
                let mut tx = self.pool.begin().await?;
                let affected = sqlx::query(
                    "UPDATE staff_users SET password_hash = $1, totp_sealed = $2, \
                     totp_last_step = 0, failed_attempts = 0, locked_until = NULL, \
                     disabled_at = NULL, last_login_at = NULL, created_at = $3 \
                     WHERE id = $4 AND tenant_id = $5",
                )
                .bind(password_hash)
                .bind(totp_sealed)
                .bind(at)
                .bind(id)
                .bind(tenant)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                one_row(affected)?;
                sqlx::query(
                    "INSERT INTO staff_password_history (user_id, password_hash, set_at) \
                     VALUES ($1, $2, $3)",
                )
                .bind(id)
                .bind(password_hash)
                .bind(at)
                .execute(&mut *tx)
                .await?;
                sqlx::query("DELETE FROM staff_sessions WHERE user_id = $1")
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(())
            }

            async fn password_history(
                &self,
                id: $crate::ids::UserId,
                limit: i64,
            ) -> Result<Vec<String>, $crate::store::StoreError> {
                use sqlx::Row;
                let rows = sqlx::query(
                    "SELECT password_hash FROM staff_password_history WHERE user_id = $1 \
                     ORDER BY set_at DESC LIMIT $2",
                )
                .bind(id)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?;
                rows.iter()
                    .map(|r| r.try_get("password_hash").map_err(Into::into))
                    .collect()
            }

            async fn insert_challenge(
                &self,
                c: &$crate::auth::records::ChallengeRecord,
            ) -> Result<(), $crate::store::StoreError> {
                sqlx::query(
                    "INSERT INTO staff_challenges (challenge_hash, user_id, expires_at) \
                     VALUES ($1, $2, $3)",
                )
                .bind(&c.challenge_hash)
                .bind(c.user)
                .bind(c.expires_at)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn challenge(
                &self,
                hash: &[u8],
            ) -> Result<$crate::auth::records::ChallengeRecord, $crate::store::StoreError> {
                let row = sqlx::query(
                    "SELECT challenge_hash, user_id, expires_at FROM staff_challenges \
                     WHERE challenge_hash = $1",
                )
                .bind(hash)
                .fetch_one(&self.pool)
                .await?;
                auth_rows::challenge(&row)
            }

            async fn delete_challenge(&self, hash: &[u8]) -> Result<(), $crate::store::StoreError> {
                sqlx::query("DELETE FROM staff_challenges WHERE challenge_hash = $1")
                    .bind(hash)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn insert_session(
                &self,
                s: &$crate::auth::records::SessionRecord,
            ) -> Result<(), $crate::store::StoreError> {
                sqlx::query(
                    "INSERT INTO staff_sessions (token_hash, user_id, created_at, last_seen_at, \
                     expires_at, second_factor_at) VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(&s.token_hash)
                .bind(s.user)
                .bind(s.created_at)
                .bind(s.last_seen_at)
                .bind(s.expires_at)
                .bind(s.second_factor_at)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn session(
                &self,
                hash: &[u8],
            ) -> Result<$crate::auth::records::SessionRecord, $crate::store::StoreError> {
                let row = sqlx::query(
                    "SELECT token_hash, user_id, created_at, last_seen_at, expires_at, \
                     second_factor_at FROM staff_sessions WHERE token_hash = $1",
                )
                .bind(hash)
                .fetch_one(&self.pool)
                .await?;
                auth_rows::session(&row)
            }

            async fn session_with_user(
                &self,
                hash: &[u8],
            ) -> Result<
                (
                    $crate::auth::records::SessionRecord,
                    $crate::auth::records::UserRecord,
                ),
                $crate::store::StoreError,
            > {
                let row = sqlx::query(
                    "SELECT u.id, u.tenant_id, u.username, u.role, u.password_hash, \
                     u.totp_sealed, u.totp_last_step, u.failed_attempts, u.locked_until, \
                     u.disabled_at, u.created_at, u.last_login_at, \
                     s.token_hash, s.user_id, s.created_at AS session_created_at, \
                     s.last_seen_at, s.expires_at, s.second_factor_at \
                     FROM staff_sessions s JOIN staff_users u ON u.id = s.user_id \
                     WHERE s.token_hash = $1",
                )
                .bind(hash)
                .fetch_one(&self.pool)
                .await?;
                Ok((
                    auth_rows::session_created_as(&row, "session_created_at")?,
                    auth_rows::user(&row)?,
                ))
            }

            async fn touch_session(
                &self,
                hash: &[u8],
                at: chrono::DateTime<chrono::Utc>,
            ) -> Result<(), $crate::store::StoreError> {
                sqlx::query("UPDATE staff_sessions SET last_seen_at = $1 WHERE token_hash = $2")
                    .bind(at)
                    .bind(hash)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn renew_second_factor(
                &self,
                hash: &[u8],
                at: chrono::DateTime<chrono::Utc>,
            ) -> Result<(), $crate::store::StoreError> {
                let affected = sqlx::query(
                    "UPDATE staff_sessions SET second_factor_at = $1 WHERE token_hash = $2",
                )
                .bind(at)
                .bind(hash)
                .execute(&self.pool)
                .await?
                .rows_affected();
                one_row(affected)
            }

            async fn delete_session(&self, hash: &[u8]) -> Result<(), $crate::store::StoreError> {
                sqlx::query("DELETE FROM staff_sessions WHERE token_hash = $1")
                    .bind(hash)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn insert_charger_ca(
                &self,
                ca: &$crate::auth::records::ChargerCaRecord,
            ) -> Result<(), $crate::store::StoreError> {
                sqlx::query(&format!(
                    "INSERT INTO charger_cas ({CA_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7)"
                ))
                .bind(ca.id)
                .bind(ca.tenant)
                .bind(&ca.name)
                .bind(&ca.cert_der)
                .bind(&ca.sha256_hex)
                .bind(ca.created_at)
                .bind(ca.revoked_at)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn active_charger_cas(
                &self,
            ) -> Result<Vec<$crate::auth::records::ChargerCaRecord>, $crate::store::StoreError>
            {
                let rows = sqlx::query(&format!(
                    "SELECT {CA_COLUMNS} FROM charger_cas WHERE revoked_at IS NULL \
                     ORDER BY created_at, id"
                ))
                .fetch_all(&self.pool)
                .await?;
                rows.iter().map(auth_rows::charger_ca).collect()
            }

            async fn charger_cas(
                &self,
                tenant: $crate::ids::TenantId,
            ) -> Result<Vec<$crate::auth::records::ChargerCaRecord>, $crate::store::StoreError>
            {
                let rows = sqlx::query(&format!(
                    "SELECT {CA_COLUMNS} FROM charger_cas WHERE tenant_id = $1 \
                     ORDER BY created_at, id"
                ))
                .bind(tenant)
                .fetch_all(&self.pool)
                .await?;
                rows.iter().map(auth_rows::charger_ca).collect()
            }

            async fn revoke_charger_certificate(
                &self,
                tenant: $crate::ids::TenantId,
                ca: $crate::ids::ChargerCaId,
                serial_hex: &str,
                at: chrono::DateTime<chrono::Utc>,
            ) -> Result<(), $crate::store::StoreError> {
                let affected = sqlx::query(
                    "INSERT INTO charger_cert_revocations (ca_id, serial_hex, revoked_at) \
                     SELECT id, $1, $2 FROM charger_cas WHERE id = $3 AND tenant_id = $4 \
                     ON CONFLICT DO NOTHING",
                )
                .bind(serial_hex)
                .bind(at)
                .bind(ca)
                .bind(tenant)
                .execute(&self.pool)
                .await?
                .rows_affected();
                if affected == 1 {
                    return Ok(());
                }
                // Already revoked is fine; a CA of another tenant is not found.
                self.charger_cas(tenant)
                    .await?
                    .iter()
                    .any(|c| c.id == ca)
                    .then_some(())
                    .ok_or($crate::store::StoreError::NotFound)
            }

            async fn set_charger_crl(
                &self,
                tenant: $crate::ids::TenantId,
                ca: $crate::ids::ChargerCaId,
                crl_der: &[u8],
                at: chrono::DateTime<chrono::Utc>,
            ) -> Result<(), $crate::store::StoreError> {
                let affected = sqlx::query(
                    "INSERT INTO charger_ca_crls (ca_id, crl_der, updated_at) \
                     SELECT id, $1, $2 FROM charger_cas WHERE id = $3 AND tenant_id = $4 \
                     ON CONFLICT (ca_id) DO UPDATE SET crl_der = excluded.crl_der, \
                     updated_at = excluded.updated_at",
                )
                .bind(crl_der)
                .bind(at)
                .bind(ca)
                .bind(tenant)
                .execute(&self.pool)
                .await?
                .rows_affected();
                one_row(affected)
            }

            async fn charger_crls(
                &self,
            ) -> Result<Vec<($crate::ids::ChargerCaId, Vec<u8>)>, $crate::store::StoreError> {
                use sqlx::Row;
                let rows = sqlx::query("SELECT ca_id, crl_der FROM charger_ca_crls")
                    .fetch_all(&self.pool)
                    .await?;
                rows.iter()
                    .map(|r| Ok((r.try_get("ca_id")?, r.try_get("crl_der")?)))
                    .collect()
            }

            async fn revoked_charger_certificates(
                &self,
            ) -> Result<Vec<($crate::ids::ChargerCaId, String)>, $crate::store::StoreError> {
                use sqlx::Row;
                let rows = sqlx::query("SELECT ca_id, serial_hex FROM charger_cert_revocations")
                    .fetch_all(&self.pool)
                    .await?;
                rows.iter()
                    .map(|r| Ok((r.try_get("ca_id")?, r.try_get("serial_hex")?)))
                    .collect()
            }

            async fn touch_charger(
                &self,
                tenant: $crate::ids::TenantId,
                ca: $crate::ids::ChargerCaId,
                identity: &str,
                at: chrono::DateTime<chrono::Utc>,
            ) -> Result<(), $crate::store::StoreError> {
                sqlx::query(
                    "INSERT INTO chargers_seen (ca_id, tenant_id, identity, last_used_at) \
                     VALUES ($1, $2, $3, $4) ON CONFLICT (ca_id, identity) \
                     DO UPDATE SET last_used_at = excluded.last_used_at \
                     WHERE chargers_seen.last_used_at < $5",
                )
                .bind(ca)
                .bind(tenant)
                .bind(identity)
                .bind(at)
                .bind(at - chrono::Duration::minutes(1))
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn chargers_seen(
                &self,
                tenant: $crate::ids::TenantId,
            ) -> Result<Vec<(String, chrono::DateTime<chrono::Utc>)>, $crate::store::StoreError>
            {
                let rows = sqlx::query(
                    "SELECT identity, last_used_at FROM chargers_seen WHERE tenant_id = $1 \
                     ORDER BY identity",
                )
                .bind(tenant)
                .fetch_all(&self.pool)
                .await?;
                rows.iter().map(auth_rows::seen).collect()
            }
        }
    };
}

pub(crate) use impl_auth_store;
