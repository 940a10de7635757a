//! Reading payment sessions for billing: a tenant's history a page at a
//! time, in (created_at, id) order, the order cursors and exports rely on.
//! Portable SQL, expanded for each adapter next to the payment store (it
//! reuses that store's row mapping).

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::StoreError;
use crate::ids::{PaymentSessionId, TenantId};
use crate::payments::session::{PaymentSession, SessionStatus};

/// Which sessions of a tenant, and where the page starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionQuery {
    pub tenant: TenantId,
    /// Started at or after.
    pub from: Option<DateTime<Utc>>,
    /// Started before.
    pub to: Option<DateTime<Utc>>,
    pub status: Option<SessionStatus>,
    pub evse_id: Option<String>,
    /// Only sessions this principal opened (a charger sees its own).
    pub created_by: Option<String>,
    /// Only sessions billed to this account.
    pub account: Option<crate::ids::AccountId>,
    /// The last (created_at, id) of the previous page.
    pub after: Option<(DateTime<Utc>, PaymentSessionId)>,
    pub limit: u32,
}

#[async_trait]
pub trait BillingStore: Send + Sync {
    /// Up to `query.limit` sessions, oldest first, ties broken by id.
    async fn payment_sessions_page(
        &self,
        query: &SessionQuery,
    ) -> Result<Vec<PaymentSession>, StoreError>;
}

macro_rules! impl_billing_store {
    ($store:ty) => {
        #[async_trait::async_trait]
        impl $crate::store::billing::BillingStore for $store {
            async fn payment_sessions_page(
                &self,
                q: &$crate::store::billing::SessionQuery,
            ) -> Result<Vec<$crate::payments::session::PaymentSession>, $crate::store::StoreError>
            {
                let (after_at, after_id) = match q.after {
                    Some((at, id)) => (Some(at), Some(id)),
                    None => (None, None),
                };
                let rows = sqlx::query(concat!(
                    "SELECT ",
                    $crate::store::payments::PAYMENT_SESSION_COLUMNS!(),
                    " FROM payment_sessions WHERE tenant_id = $1 \
                      AND ($2 IS NULL OR created_at >= $2) \
                      AND ($3 IS NULL OR created_at < $3) \
                      AND ($4 IS NULL OR status = $4) \
                      AND ($5 IS NULL OR evse_id = $5) \
                      AND ($6 IS NULL OR created_by = $6) \
                      AND ($7 IS NULL OR created_at > $7 OR (created_at = $7 AND id > $8)) \
                      AND ($10 IS NULL OR account_id = $10) \
                      ORDER BY created_at, id LIMIT $9"
                ))
                .bind(q.tenant)
                .bind(q.from)
                .bind(q.to)
                .bind(q.status.map(|s| s.as_str()))
                .bind(q.evse_id.as_deref())
                .bind(q.created_by.as_deref())
                .bind(after_at)
                .bind(after_id)
                .bind(i64::from(q.limit))
                .bind(q.account)
                .fetch_all(&self.pool)
                .await?;
                rows.iter().map(payment_rows::session).collect()
            }
        }
    };
}
pub(crate) use impl_billing_store;
