//! Accounts, their payment methods and RFID cards. Portable SQL, expanded
//! for each adapter.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::StoreError;
use crate::accounts::{Account, RfidCard, RfidStatus, RfidUid};
use crate::ids::{AccountId, TenantId};

/// A token on an account, oldest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMethod {
    pub token: String,
    pub added_at: DateTime<Utc>,
}

#[async_trait]
pub trait AccountStore: Send + Sync {
    async fn insert_account(&self, account: &Account) -> Result<(), StoreError>;
    /// `NotFound` for an account of another tenant.
    async fn account(&self, tenant: TenantId, id: AccountId) -> Result<Account, StoreError>;
    /// Oldest first, after the cursor.
    async fn accounts_page(
        &self,
        tenant: TenantId,
        after: Option<(DateTime<Utc>, AccountId)>,
        limit: u32,
    ) -> Result<Vec<Account>, StoreError>;
    /// Adds the token (`Conflict` if it is there already) and makes it the
    /// default when asked or when the account has none.
    async fn add_payment_method(
        &self,
        account: AccountId,
        token: &str,
        make_default: bool,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError>;
    /// Removes the token; if it was the default, the oldest remaining method
    /// becomes the default (or none is left). `NotFound` if absent.
    async fn remove_payment_method(
        &self,
        account: AccountId,
        token: &str,
    ) -> Result<(), StoreError>;
    async fn payment_methods(&self, account: AccountId) -> Result<Vec<StoredMethod>, StoreError>;
    /// `Conflict` if the tenant has a card with this UID.
    async fn insert_rfid_card(&self, card: &RfidCard) -> Result<(), StoreError>;
    async fn rfid_card(&self, tenant: TenantId, uid: &RfidUid) -> Result<RfidCard, StoreError>;
    async fn rfid_cards(&self, account: AccountId) -> Result<Vec<RfidCard>, StoreError>;
    /// `NotFound` unless the card belongs to this account.
    async fn set_rfid_status(
        &self,
        account: AccountId,
        uid: &RfidUid,
        status: RfidStatus,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError>;
}

macro_rules! impl_account_store {
    ($store:ty, $row:ty) => {
        mod account_rows {
            use sqlx::Row;

            use $crate::accounts::{Account, AccountKind, RfidCard, RfidStatus, RfidUid};
            use $crate::store::StoreError;

            pub(super) type R = $row;

            pub(super) const ACCOUNT_COLUMNS: &str =
                "id, tenant_id, kind, name, email, fleet_id, default_token, created_by, created_at";
            pub(super) const RFID_COLUMNS: &str =
                "tenant_id, uid, account_id, label, status, created_at, updated_at";

            pub(super) fn account(row: &R) -> Result<Account, StoreError> {
                let kind: String = row.try_get("kind")?;
                Ok(Account {
                    id: row.try_get("id")?,
                    tenant: row.try_get("tenant_id")?,
                    kind: AccountKind::parse(&kind).ok_or(StoreError::Internal)?,
                    name: row.try_get("name")?,
                    email: row.try_get("email")?,
                    fleet: row.try_get("fleet_id")?,
                    default_token: row.try_get("default_token")?,
                    created_by: row.try_get("created_by")?,
                    created_at: row.try_get("created_at")?,
                })
            }

            pub(super) fn rfid(row: &R) -> Result<RfidCard, StoreError> {
                let uid: String = row.try_get("uid")?;
                let status: String = row.try_get("status")?;
                Ok(RfidCard {
                    tenant: row.try_get("tenant_id")?,
                    uid: RfidUid::parse(&uid).ok_or(StoreError::Internal)?,
                    account: row.try_get("account_id")?,
                    label: row.try_get("label")?,
                    status: RfidStatus::parse(&status).ok_or(StoreError::Internal)?,
                    created_at: row.try_get("created_at")?,
                    updated_at: row.try_get("updated_at")?,
                })
            }
        }

        #[async_trait::async_trait]
        impl $crate::store::accounts::AccountStore for $store {
            async fn insert_account(
                &self,
                a: &$crate::accounts::Account,
            ) -> Result<(), $crate::store::StoreError> {
                sqlx::query(&format!(
                    "INSERT INTO accounts ({}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                    account_rows::ACCOUNT_COLUMNS
                ))
                .bind(a.id)
                .bind(a.tenant)
                .bind(a.kind.as_str())
                .bind(&a.name)
                .bind(&a.email)
                .bind(a.fleet)
                .bind(&a.default_token)
                .bind(&a.created_by)
                .bind(a.created_at)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn account(
                &self,
                tenant: $crate::ids::TenantId,
                id: $crate::ids::AccountId,
            ) -> Result<$crate::accounts::Account, $crate::store::StoreError> {
                let row = sqlx::query(&format!(
                    "SELECT {} FROM accounts WHERE id = $1 AND tenant_id = $2",
                    account_rows::ACCOUNT_COLUMNS
                ))
                .bind(id)
                .bind(tenant)
                .fetch_one(&self.pool)
                .await?;
                account_rows::account(&row)
            }

            async fn accounts_page(
                &self,
                tenant: $crate::ids::TenantId,
                after: Option<(chrono::DateTime<chrono::Utc>, $crate::ids::AccountId)>,
                limit: u32,
            ) -> Result<Vec<$crate::accounts::Account>, $crate::store::StoreError> {
                let rows = match after {
                    Some((at, id)) => {
                        sqlx::query(&format!(
                            "SELECT {} FROM accounts WHERE tenant_id = $1 \
                             AND (created_at > $2 OR (created_at = $2 AND id > $3)) \
                             ORDER BY created_at, id LIMIT $4",
                            account_rows::ACCOUNT_COLUMNS
                        ))
                        .bind(tenant)
                        .bind(at)
                        .bind(id)
                        .bind(i64::from(limit))
                        .fetch_all(&self.pool)
                        .await?
                    }
                    None => {
                        sqlx::query(&format!(
                            "SELECT {} FROM accounts WHERE tenant_id = $1 \
                             ORDER BY created_at, id LIMIT $2",
                            account_rows::ACCOUNT_COLUMNS
                        ))
                        .bind(tenant)
                        .bind(i64::from(limit))
                        .fetch_all(&self.pool)
                        .await?
                    }
                };
                rows.iter().map(account_rows::account).collect()
            }

            async fn add_payment_method(
                &self,
                account: $crate::ids::AccountId,
                token: &str,
                make_default: bool,
                at: chrono::DateTime<chrono::Utc>,
            ) -> Result<(), $crate::store::StoreError> {
                let mut tx = self.pool.begin().await?;
                sqlx::query(
                    "INSERT INTO account_payment_methods (account_id, token, added_at) \
                     VALUES ($1, $2, $3)",
                )
                .bind(account)
                .bind(token)
                .bind(at)
                .execute(&mut *tx)
                .await?;
                sqlx::query(
                    "UPDATE accounts SET default_token = $2 \
                     WHERE id = $1 AND ($3 OR default_token IS NULL)",
                )
                .bind(account)
                .bind(token)
                .bind(make_default)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(())
            }

            async fn remove_payment_method(
                &self,
                account: $crate::ids::AccountId,
                token: &str,
            ) -> Result<(), $crate::store::StoreError> {
                let mut tx = self.pool.begin().await?;
                let gone = sqlx::query(
                    "DELETE FROM account_payment_methods WHERE account_id = $1 AND token = $2",
                )
                .bind(account)
                .bind(token)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if gone == 0 {
                    return Err($crate::store::StoreError::NotFound);
                }
                sqlx::query(
                    "UPDATE accounts SET default_token = \
                     (SELECT token FROM account_payment_methods WHERE account_id = $1 \
                      ORDER BY added_at, token LIMIT 1) \
                     WHERE id = $1 AND default_token = $2",
                )
                .bind(account)
                .bind(token)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(())
            }

            async fn payment_methods(
                &self,
                account: $crate::ids::AccountId,
            ) -> Result<Vec<$crate::store::accounts::StoredMethod>, $crate::store::StoreError> {
                let rows = sqlx::query(
                    "SELECT token, added_at FROM account_payment_methods \
                     WHERE account_id = $1 ORDER BY added_at, token",
                )
                .bind(account)
                .fetch_all(&self.pool)
                .await?;
                rows.iter()
                    .map(|row| {
                        use sqlx::Row;
                        Ok($crate::store::accounts::StoredMethod {
                            token: row.try_get("token")?,
                            added_at: row.try_get("added_at")?,
                        })
                    })
                    .collect()
            }

            async fn insert_rfid_card(
                &self,
                c: &$crate::accounts::RfidCard,
            ) -> Result<(), $crate::store::StoreError> {
                sqlx::query(&format!(
                    "INSERT INTO rfid_cards ({}) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                    account_rows::RFID_COLUMNS
                ))
                .bind(c.tenant)
                .bind(c.uid.as_str())
                .bind(c.account)
                .bind(&c.label)
                .bind(c.status.as_str())
                .bind(c.created_at)
                .bind(c.updated_at)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn rfid_card(
                &self,
                tenant: $crate::ids::TenantId,
                uid: &$crate::accounts::RfidUid,
            ) -> Result<$crate::accounts::RfidCard, $crate::store::StoreError> {
                let row = sqlx::query(&format!(
                    "SELECT {} FROM rfid_cards WHERE tenant_id = $1 AND uid = $2",
                    account_rows::RFID_COLUMNS
                ))
                .bind(tenant)
                .bind(uid.as_str())
                .fetch_one(&self.pool)
                .await?;
                account_rows::rfid(&row)
            }

            async fn rfid_cards(
                &self,
                account: $crate::ids::AccountId,
            ) -> Result<Vec<$crate::accounts::RfidCard>, $crate::store::StoreError> {
                let rows = sqlx::query(&format!(
                    "SELECT {} FROM rfid_cards WHERE account_id = $1 ORDER BY created_at, uid",
                    account_rows::RFID_COLUMNS
                ))
                .bind(account)
                .fetch_all(&self.pool)
                .await?;
                rows.iter().map(account_rows::rfid).collect()
            }

            async fn set_rfid_status(
                &self,
                account: $crate::ids::AccountId,
                uid: &$crate::accounts::RfidUid,
                status: $crate::accounts::RfidStatus,
                at: chrono::DateTime<chrono::Utc>,
            ) -> Result<(), $crate::store::StoreError> {
                let n = sqlx::query(
                    "UPDATE rfid_cards SET status = $3, updated_at = $4 \
                     WHERE account_id = $1 AND uid = $2",
                )
                .bind(account)
                .bind(uid.as_str())
                .bind(status.as_str())
                .bind(at)
                .execute(&self.pool)
                .await?
                .rows_affected();
                if n == 0 {
                    return Err($crate::store::StoreError::NotFound);
                }
                Ok(())
            }
        }
    };
}
pub(crate) use impl_account_store;
