//! The e-mail outbox. Portable SQL, expanded for each adapter.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::StoreError;
use crate::ids::{MailId, TenantId};
use crate::notify::DeliveryState;

/// One queued mail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailRecord {
    pub id: MailId,
    pub tenant: TenantId,
    /// The caller's name for the notification; unique per tenant.
    pub dedupe_key: String,
    pub recipient: String,
    pub subject: String,
    /// The text; empty once delivered.
    pub body: String,
    pub state: DeliveryState,
    /// Attempts started so far (a claim counts as one).
    pub attempts: i32,
    /// A fixed code, never the relay's answer.
    pub last_error: Option<String>,
    /// When it is due; while claimed, when the claim runs out.
    pub next_attempt_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// What one attempt came to.
#[derive(Debug, Clone)]
pub struct MailAttempt<'a> {
    pub state: DeliveryState,
    pub last_error: Option<&'a str>,
    pub next_attempt_at: DateTime<Utc>,
    pub at: DateTime<Utc>,
}

#[async_trait]
pub trait MailStore: Send + Sync {
    /// Queues the mail unless its tenant already has one with its dedupe
    /// key; true if it was new.
    async fn enqueue_mail(&self, mail: &MailRecord) -> Result<bool, StoreError>;
    /// The mail of `tenant` queued under `dedupe_key`.
    async fn mail_by_key(
        &self,
        tenant: TenantId,
        dedupe_key: &str,
    ) -> Result<MailRecord, StoreError>;
    /// Takes up to `limit` pending mails due at `now`, counting an attempt
    /// and leasing each until `lease_until` (compare-and-set on the due
    /// time: of two nodes, one wins).
    async fn claim_due_mail(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<MailRecord>, StoreError>;
    /// Records an attempt's outcome if the claim (`claimed_until`) still
    /// holds; false if it ran out and another node took the mail. A
    /// delivered mail's text is cleared.
    async fn finish_mail_attempt(
        &self,
        id: MailId,
        claimed_until: DateTime<Utc>,
        outcome: &MailAttempt<'_>,
    ) -> Result<bool, StoreError>;
}

macro_rules! MAIL_COLUMNS {
    () => {
        "id, tenant_id, dedupe_key, recipient, subject, body, state, attempts, last_error, \
         next_attempt_at, created_at, updated_at"
    };
}
pub(crate) use MAIL_COLUMNS;

macro_rules! impl_mail_store {
    ($store:ty, $row:ty) => {
        mod mail_rows {
            use sqlx::Row;

            use $crate::notify::DeliveryState;
            use $crate::store::StoreError;
            use $crate::store::mail::MailRecord;

            pub(super) fn mail(row: &$row) -> Result<MailRecord, StoreError> {
                let state: String = row.try_get("state")?;
                Ok(MailRecord {
                    id: row.try_get("id")?,
                    tenant: row.try_get("tenant_id")?,
                    dedupe_key: row.try_get("dedupe_key")?,
                    recipient: row.try_get("recipient")?,
                    subject: row.try_get("subject")?,
                    body: row.try_get("body")?,
                    state: DeliveryState::parse(&state).ok_or(StoreError::Internal)?,
                    attempts: row.try_get("attempts")?,
                    last_error: row.try_get("last_error")?,
                    next_attempt_at: row.try_get("next_attempt_at")?,
                    created_at: row.try_get("created_at")?,
                    updated_at: row.try_get("updated_at")?,
                })
            }
        }

        #[async_trait::async_trait]
        impl $crate::store::mail::MailStore for $store {
            async fn enqueue_mail(
                &self,
                m: &$crate::store::mail::MailRecord,
            ) -> Result<bool, $crate::store::StoreError> {
                let new = sqlx::query(
                    "INSERT INTO mail_outbox (id, tenant_id, dedupe_key, recipient, subject, \
                     body, state, attempts, last_error, next_attempt_at, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
                     ON CONFLICT (tenant_id, dedupe_key) DO NOTHING",
                )
                .bind(m.id)
                .bind(m.tenant)
                .bind(&m.dedupe_key)
                .bind(&m.recipient)
                .bind(&m.subject)
                .bind(&m.body)
                .bind(m.state.as_str())
                .bind(m.attempts)
                .bind(m.last_error.as_deref())
                .bind(m.next_attempt_at)
                .bind(m.created_at)
                .bind(m.updated_at)
                .execute(&self.pool)
                .await?
                .rows_affected();
                Ok(new == 1)
            }

            async fn mail_by_key(
                &self,
                tenant: $crate::ids::TenantId,
                dedupe_key: &str,
            ) -> Result<$crate::store::mail::MailRecord, $crate::store::StoreError> {
                let row = sqlx::query(concat!(
                    "SELECT ",
                    $crate::store::mail::MAIL_COLUMNS!(),
                    " FROM mail_outbox WHERE tenant_id = $1 AND dedupe_key = $2"
                ))
                .bind(tenant)
                .bind(dedupe_key)
                .fetch_one(&self.pool)
                .await?;
                mail_rows::mail(&row)
            }

            async fn claim_due_mail(
                &self,
                now: chrono::DateTime<chrono::Utc>,
                lease_until: chrono::DateTime<chrono::Utc>,
                limit: i64,
            ) -> Result<Vec<$crate::store::mail::MailRecord>, $crate::store::StoreError> {
                let rows = sqlx::query(concat!(
                    "SELECT ",
                    $crate::store::mail::MAIL_COLUMNS!(),
                    " FROM mail_outbox WHERE state = 'pending' AND next_attempt_at <= $1 \
                      ORDER BY next_attempt_at LIMIT $2"
                ))
                .bind(now)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?;
                let mut claimed = Vec::new();
                for row in &rows {
                    let mut mail = mail_rows::mail(row)?;
                    // Compare-and-set on the due time: of two nodes, one wins.
                    let won = sqlx::query(
                        "UPDATE mail_outbox SET next_attempt_at = $1, \
                         attempts = attempts + 1, updated_at = $2 \
                         WHERE id = $3 AND state = 'pending' AND next_attempt_at = $4",
                    )
                    .bind(lease_until)
                    .bind(now)
                    .bind(mail.id)
                    .bind(mail.next_attempt_at)
                    .execute(&self.pool)
                    .await?
                    .rows_affected();
                    if won == 1 {
                        mail.next_attempt_at = lease_until;
                        mail.attempts += 1;
                        mail.updated_at = now;
                        claimed.push(mail);
                    }
                }
                Ok(claimed)
            }

            async fn finish_mail_attempt(
                &self,
                id: $crate::ids::MailId,
                claimed_until: chrono::DateTime<chrono::Utc>,
                o: &$crate::store::mail::MailAttempt<'_>,
            ) -> Result<bool, $crate::store::StoreError> {
                let updated = sqlx::query(
                    "UPDATE mail_outbox SET state = $1, last_error = $2, next_attempt_at = $3, \
                     updated_at = $4, body = CASE WHEN $1 = 'delivered' THEN '' ELSE body END \
                     WHERE id = $5 AND state = 'pending' AND next_attempt_at = $6",
                )
                .bind(o.state.as_str())
                .bind(o.last_error)
                .bind(o.next_attempt_at)
                .bind(o.at)
                .bind(id)
                .bind(claimed_until)
                .execute(&self.pool)
                .await?
                .rows_affected();
                Ok(updated == 1)
            }
        }
    };
}
pub(crate) use impl_mail_store;
