//! Reading payment sessions for billing: a tenant's history a page at a
//! time, in (created_at, id) order, the order cursors and exports rely on;
//! and the money that moved (captures and refunds) in (at, key) order.
//! Portable SQL, expanded for each adapter next to the payment store (it
//! reuses that store's row mapping).

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::StoreError;
use crate::ids::{AccountId, PaymentSessionId, TenantId};
use crate::money::Money;
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

/// Which money movements of a tenant, and where the page starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MovementQuery {
    pub tenant: TenantId,
    /// Moved at or after.
    pub from: DateTime<Utc>,
    /// Moved before.
    pub to: DateTime<Utc>,
    /// The last (at, acquirer key) of the previous page.
    pub after: Option<(DateTime<Utc>, String)>,
    pub limit: u32,
}

/// What moved: a session's capture or refund, or the card charge of a
/// wallet top-up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MovementKind {
    Capture,
    Refund,
    WalletTopUp,
}

impl MovementKind {
    pub fn as_str(self) -> &'static str {
        match self {
            MovementKind::Capture => "capture",
            MovementKind::Refund => "refund",
            MovementKind::WalletTopUp => "wallet_top_up",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        [Self::Capture, Self::Refund, Self::WalletTopUp]
            .into_iter()
            .find(|k| k.as_str() == raw)
    }
}

/// Money that moved at the acquirer: a capture or a refund intent that
/// succeeded, with what accounting needs of its session, or a wallet
/// top-up's card charge.
///
/// `at` is the intent's `updated_at`, which the payment service sets to the
/// clock's time when it writes the call's outcome and never changes once the
/// intent has succeeded (a lost answer settled by recovery gets the time
/// recovery settled it). Wallet-paid sessions capture and refund through the
/// same intents (acquirer `wallet`), so they are here too. A top-up is not a
/// payment intent (ADR 0009): its row is its ledger entry, `at` is when the
/// wallet was credited (right after the capture succeeded), and its
/// reference is the capture's acquirer key (`vv_topup_<id>_capture`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentMovement {
    pub at: DateTime<Utc>,
    pub kind: MovementKind,
    /// The session; `None` for a top-up.
    pub session: Option<PaymentSessionId>,
    pub session_status: Option<SessionStatus>,
    pub evse_id: Option<String>,
    /// The account billed: the session's, or the topped-up wallet's.
    pub account: Option<AccountId>,
    /// A capture's amount is what the acquirer reported captured (the
    /// session's `captured`); a refund's is the amount refunded; a top-up's
    /// is the amount credited, which is the amount captured.
    pub amount: Money,
    /// The operator's reason for a refund; `None` otherwise.
    pub reason: Option<String>,
    /// The session's acquirer; `None` for a top-up, whose connector is not
    /// recorded (the reference names the call).
    pub acquirer: Option<String>,
    /// The acquirer idempotency key: names the call at the acquirer.
    pub acquirer_key: String,
}

#[async_trait]
pub trait BillingStore: Send + Sync {
    /// Up to `query.limit` sessions, oldest first, ties broken by id.
    async fn payment_sessions_page(
        &self,
        query: &SessionQuery,
    ) -> Result<Vec<PaymentSession>, StoreError>;
    /// Up to `query.limit` of the tenant's succeeded captures and refunds
    /// and its wallet top-ups, with `at` in `[from, to)`, oldest first, ties
    /// broken by acquirer key.
    async fn payment_movements_page(
        &self,
        query: &MovementQuery,
    ) -> Result<Vec<PaymentMovement>, StoreError>;
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

            async fn payment_movements_page(
                &self,
                q: &$crate::store::billing::MovementQuery,
            ) -> Result<
                Vec<$crate::store::billing::PaymentMovement>,
                $crate::store::StoreError,
            > {
                use sqlx::Row;
                use $crate::money::{Currency, Money};
                use $crate::payments::session::SessionStatus;
                use $crate::store::billing::MovementKind;
                use $crate::store::StoreError;

                let (after_at, after_key) = match &q.after {
                    Some((at, key)) => (Some(*at), Some(key.as_str())),
                    None => (None, None),
                };
                // A top-up's reference is the key `WalletService::top_up`
                // sent with its capture (`vv_topup_<id>_capture`, ADR 0009).
                // A capture intent holds the amount asked for; the session
                // holds what the acquirer reported captured (one capture
                // per session), which is what moved.
                let rows = sqlx::query(
                    "SELECT * FROM ( \
                      SELECT i.updated_at AS moved_at, i.kind, i.session_id, i.acquirer_key, \
                      i.reason, s.status, s.evse_id, s.account_id, s.currency, s.acquirer, \
                      CASE WHEN i.kind = 'capture' THEN COALESCE(s.captured_value, i.amount) \
                           ELSE i.amount END AS moved \
                      FROM payment_intents i JOIN payment_sessions s ON s.id = i.session_id \
                      WHERE s.tenant_id = $1 AND i.state = 'succeeded' \
                      AND i.kind IN ('capture', 'refund') \
                      UNION ALL \
                      SELECT e.created_at, 'wallet_top_up', NULL, \
                      'vv_topup_' || e.reference || '_capture', NULL, NULL, NULL, \
                      e.account_id, w.currency, NULL, e.amount \
                      FROM wallet_entries e JOIN wallets w ON w.account_id = e.account_id \
                      WHERE w.tenant_id = $1 AND e.kind = 'top_up' \
                      ) m WHERE moved_at >= $2 AND moved_at < $3 \
                      AND ($4 IS NULL OR moved_at > $4 \
                           OR (moved_at = $4 AND acquirer_key > $5)) \
                      ORDER BY moved_at, acquirer_key LIMIT $6",
                )
                .bind(q.tenant)
                .bind(q.from)
                .bind(q.to)
                .bind(after_at)
                .bind(after_key)
                .bind(i64::from(q.limit))
                .fetch_all(&self.pool)
                .await?;
                rows.iter()
                    .map(|row| {
                        let code: String = row.try_get("currency")?;
                        let currency = Currency::parse(&code).map_err(|_| StoreError::Internal)?;
                        let kind: String = row.try_get("kind")?;
                        let kind = MovementKind::parse(&kind).ok_or(StoreError::Internal)?;
                        let status: Option<String> = row.try_get("status")?;
                        let session_status = match status {
                            Some(s) => Some(SessionStatus::parse(&s).ok_or(StoreError::Internal)?),
                            None => None,
                        };
                        let reason: Option<String> = row.try_get("reason")?;
                        Ok($crate::store::billing::PaymentMovement {
                            at: row.try_get("moved_at")?,
                            kind,
                            session: row.try_get("session_id")?,
                            session_status,
                            evse_id: row.try_get("evse_id")?,
                            account: row.try_get("account_id")?,
                            amount: Money::new(row.try_get("moved")?, currency),
                            reason: reason.filter(|_| kind == MovementKind::Refund),
                            acquirer: row.try_get("acquirer")?,
                            acquirer_key: row.try_get("acquirer_key")?,
                        })
                    })
                    .collect()
            }
        }
    };
}
pub(crate) use impl_billing_store;
