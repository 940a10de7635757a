//! Prepaid wallets, their holds and their append-only ledger. Portable SQL,
//! expanded for each adapter.
//!
//! Every transaction starts with a write to the row it is about (a wallet,
//! or a hold touched without change), so PostgreSQL locks that row and
//! SQLite takes its write lock before anything is read: two operations on
//! one wallet run one after the other, and nothing reads a stale balance.
//! Rules that depend on the balance are in the `WHERE` of that write.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::StoreError;
use crate::ids::AccountId;
use crate::wallets::{LedgerRefusal, Wallet, WalletEntry, WalletHold, WalletSettings};

/// A ledger operation's answer: the refusal leaves nothing written.
pub type Ledger<T> = Result<Result<T, LedgerRefusal>, StoreError>;

#[async_trait]
pub trait WalletStore: Send + Sync {
    /// Opens the wallet, or changes its threshold and whether it pays
    /// sessions. `Conflict("currency")` for another currency once it holds
    /// money. Clears the low-balance mark if the balance meets the new threshold.
    async fn configure_wallet(&self, settings: &WalletSettings) -> Result<Wallet, StoreError>;
    async fn wallet(&self, account: AccountId) -> Result<Wallet, StoreError>;
    /// The newest entries first.
    async fn wallet_entries(
        &self,
        account: AccountId,
        limit: i64,
    ) -> Result<Vec<WalletEntry>, StoreError>;
    /// Credits a top-up once per `entry_key` (a retry changes nothing);
    /// clears the low-balance mark when the balance reaches the threshold.
    async fn credit_wallet(
        &self,
        account: AccountId,
        entry_key: &str,
        amount: i64,
        reference: &str,
        at: DateTime<Utc>,
    ) -> Ledger<Wallet>;
    /// Reserves `amount` of the available balance for a session's hold
    /// (`hold.id`, `hold.reference`); the same hold again is answered as it stands.
    async fn reserve_wallet(
        &self,
        account: AccountId,
        hold_id: &str,
        reference: &str,
        entry_key: &str,
        amount: i64,
        at: DateTime<Utc>,
    ) -> Ledger<WalletHold>;
    /// Raises a hold to `new_total`; a hold already there is answered as it is.
    async fn raise_wallet_hold(
        &self,
        hold_id: &str,
        entry_key: &str,
        new_total: i64,
        at: DateTime<Utc>,
    ) -> Ledger<WalletHold>;
    /// Debits `amount` and releases the rest of the hold. If the balance is
    /// now below the threshold and no event is outstanding, queues one
    /// `wallet.low_balance` event in the same transaction.
    async fn capture_wallet_hold(
        &self,
        hold_id: &str,
        entry_key: &str,
        amount: i64,
        at: DateTime<Utc>,
    ) -> Ledger<WalletHold>;
    /// Releases the whole hold.
    async fn release_wallet_hold(
        &self,
        hold_id: &str,
        entry_key: &str,
        at: DateTime<Utc>,
    ) -> Ledger<WalletHold>;
    /// Credits back part of a capture, once per `entry_key`.
    async fn refund_wallet_hold(
        &self,
        hold_id: &str,
        entry_key: &str,
        amount: i64,
        at: DateTime<Utc>,
    ) -> Ledger<WalletHold>;
    /// By hold id or by the session it is for.
    async fn wallet_hold(
        &self,
        hold_id: Option<&str>,
        reference: Option<&str>,
    ) -> Result<WalletHold, StoreError>;
}

macro_rules! impl_wallet_store {
    ($store:ty, $db:ty, $row:ty) => {
        mod wallet_rows {
            use sqlx::Row;

            use $crate::money::Currency;
            use $crate::store::StoreError;
            use $crate::wallets::{
                EntryKind, Wallet, WalletEntry, WalletHold, WalletHoldState,
            };

            pub(super) type R = $row;
            pub(super) type Tx<'a> = sqlx::Transaction<'a, $db>;

            pub(super) const WALLET_COLUMNS: &str = "account_id, tenant_id, currency, balance, \
                reserved, low_balance_threshold, pays_sessions, low_balance_notified, \
                low_balance_notices, created_at, updated_at";
            pub(super) const HOLD_SELECT: &str = "SELECT h.id, h.account_id, h.reference, \
                h.state, h.amount, h.captured, h.refunded, w.currency FROM wallet_holds h \
                JOIN wallets w ON w.account_id = h.account_id";

            pub(super) fn wallet(row: &R) -> Result<Wallet, StoreError> {
                let currency: String = row.try_get("currency")?;
                Ok(Wallet {
                    account: row.try_get("account_id")?,
                    tenant: row.try_get("tenant_id")?,
                    currency: Currency::parse(&currency).map_err(|_| StoreError::Internal)?,
                    balance: row.try_get("balance")?,
                    reserved: row.try_get("reserved")?,
                    low_balance_threshold: row.try_get("low_balance_threshold")?,
                    pays_sessions: row.try_get("pays_sessions")?,
                    low_balance_notified: row.try_get("low_balance_notified")?,
                    low_balance_notices: row.try_get("low_balance_notices")?,
                    created_at: row.try_get("created_at")?,
                    updated_at: row.try_get("updated_at")?,
                })
            }

            pub(super) fn hold(row: &R) -> Result<WalletHold, StoreError> {
                let currency: String = row.try_get("currency")?;
                let state: String = row.try_get("state")?;
                Ok(WalletHold {
                    id: row.try_get("id")?,
                    account: row.try_get("account_id")?,
                    currency: Currency::parse(&currency).map_err(|_| StoreError::Internal)?,
                    reference: row.try_get("reference")?,
                    state: WalletHoldState::parse(&state).ok_or(StoreError::Internal)?,
                    amount: row.try_get("amount")?,
                    captured: row.try_get("captured")?,
                    refunded: row.try_get("refunded")?,
                })
            }

            pub(super) fn entry(row: &R) -> Result<WalletEntry, StoreError> {
                let kind: String = row.try_get("kind")?;
                Ok(WalletEntry {
                    kind: EntryKind::parse(&kind).ok_or(StoreError::Internal)?,
                    amount: row.try_get("amount")?,
                    balance_after: row.try_get("balance_after")?,
                    reserved_after: row.try_get("reserved_after")?,
                    reference: row.try_get("reference")?,
                    created_at: row.try_get("created_at")?,
                })
            }

            /// Changes a wallet's amounts; `None` when the condition (or the
            /// CHECKs' arithmetic) leaves no row to change.
            pub(super) async fn shift(
                tx: &mut Tx<'_>,
                account: $crate::ids::AccountId,
                balance_delta: i64,
                reserved_delta: i64,
                needs_available: i64,
                at: chrono::DateTime<chrono::Utc>,
            ) -> Result<Option<Wallet>, StoreError> {
                let row = sqlx::query(&format!(
                    "UPDATE wallets SET balance = balance + $2, reserved = reserved + $3, \
                     low_balance_notified = CASE WHEN $2 > 0 \
                        AND balance + $2 >= low_balance_threshold THEN FALSE \
                        ELSE low_balance_notified END, \
                     updated_at = $5 \
                     WHERE account_id = $1 AND balance - reserved >= $4 RETURNING {WALLET_COLUMNS}"
                ))
                .bind(account)
                .bind(balance_delta)
                .bind(reserved_delta)
                .bind(needs_available)
                .bind(at)
                .fetch_optional(&mut **tx)
                .await?;
                row.as_ref().map(wallet).transpose()
            }

            pub(super) async fn append(
                tx: &mut Tx<'_>,
                w: &Wallet,
                key: &str,
                kind: EntryKind,
                amount: i64,
                reference: &str,
                at: chrono::DateTime<chrono::Utc>,
            ) -> Result<(), StoreError> {
                sqlx::query(
                    "INSERT INTO wallet_entries (id, account_id, entry_key, kind, amount, \
                     balance_after, reserved_after, reference, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                )
                .bind(uuid::Uuid::now_v7())
                .bind(w.account)
                .bind(key)
                .bind(kind.as_str())
                .bind(amount)
                .bind(w.balance)
                .bind(w.reserved)
                .bind(reference)
                .bind(at)
                .execute(&mut **tx)
                .await?;
                Ok(())
            }

            /// Touches the hold (taking its lock) and reads it with its currency.
            pub(super) async fn lock_hold(
                tx: &mut Tx<'_>,
                id: &str,
            ) -> Result<Option<WalletHold>, StoreError> {
                let n = sqlx::query("UPDATE wallet_holds SET updated_at = updated_at WHERE id = $1")
                    .bind(id)
                    .execute(&mut **tx)
                    .await?
                    .rows_affected();
                if n == 0 {
                    return Ok(None);
                }
                let row = sqlx::query(&format!("{HOLD_SELECT} WHERE h.id = $1"))
                    .bind(id)
                    .fetch_one(&mut **tx)
                    .await?;
                hold(&row).map(Some)
            }

            pub(super) async fn set_hold(
                tx: &mut Tx<'_>,
                h: &WalletHold,
                at: chrono::DateTime<chrono::Utc>,
            ) -> Result<(), StoreError> {
                sqlx::query(
                    "UPDATE wallet_holds SET state = $2, amount = $3, captured = $4, \
                     refunded = $5, updated_at = $6 WHERE id = $1",
                )
                .bind(&h.id)
                .bind(h.state.as_str())
                .bind(h.amount)
                .bind(h.captured)
                .bind(h.refunded)
                .bind(at)
                .execute(&mut **tx)
                .await?;
                Ok(())
            }

            pub(super) async fn entry_exists(tx: &mut Tx<'_>, key: &str) -> Result<bool, StoreError> {
                let row = sqlx::query("SELECT 1 AS one FROM wallet_entries WHERE entry_key = $1")
                    .bind(key)
                    .fetch_optional(&mut **tx)
                    .await?;
                Ok(row.is_some())
            }

            /// Marks the wallet notified if this debit took it below its
            /// threshold and no event is outstanding, and queues the event
            /// for every subscribed endpoint, all in the debit's transaction.
            pub(super) async fn low_balance(
                tx: &mut Tx<'_>,
                account: $crate::ids::AccountId,
                at: chrono::DateTime<chrono::Utc>,
            ) -> Result<(), StoreError> {
                let row = sqlx::query(&format!(
                    "UPDATE wallets SET low_balance_notified = TRUE, \
                     low_balance_notices = low_balance_notices + 1 \
                     WHERE account_id = $1 AND NOT low_balance_notified \
                     AND balance < low_balance_threshold RETURNING {WALLET_COLUMNS}"
                ))
                .bind(account)
                .fetch_optional(&mut **tx)
                .await?;
                let Some(row) = row else { return Ok(()) };
                let w = wallet(&row)?;
                let event =
                    $crate::wallets::low_balance_event(&w, at).ok_or(StoreError::Internal)?;
                enqueue(tx, &event).await
            }

            /// The outbox insert of `WebhookStore::enqueue_event`, inside a
            /// caller's transaction.
            pub(super) async fn enqueue(
                tx: &mut Tx<'_>,
                event: &$crate::notify::OutboxEvent,
            ) -> Result<(), StoreError> {
                let rows = sqlx::query("SELECT id, events FROM webhooks WHERE tenant_id = $1")
                    .bind(event.tenant)
                    .fetch_all(&mut **tx)
                    .await?;
                for row in &rows {
                    let events: String = row.try_get("events")?;
                    let subscribed = $crate::notify::EventType::parse_list(&events)
                        .ok_or(StoreError::Internal)?
                        .contains(&event.event_type);
                    if !subscribed {
                        continue;
                    }
                    let webhook: $crate::ids::WebhookId = row.try_get("id")?;
                    sqlx::query(
                        "INSERT INTO webhook_deliveries (id, webhook_id, tenant_id, event_id, \
                         event_type, payload, state, attempts, next_attempt_at, created_at, \
                         updated_at) VALUES ($1, $2, $3, $4, $5, $6, 'pending', 0, $7, $7, $7) \
                         ON CONFLICT (webhook_id, event_id) DO NOTHING",
                    )
                    .bind($crate::ids::DeliveryId::generate())
                    .bind(webhook)
                    .bind(event.tenant)
                    .bind(&event.id)
                    .bind(event.event_type.as_str())
                    .bind(&event.payload)
                    .bind(event.at)
                    .execute(&mut **tx)
                    .await?;
                }
                Ok(())
            }
        }

        #[async_trait::async_trait]
        impl $crate::store::wallets::WalletStore for $store {
            async fn configure_wallet(
                &self,
                s: &$crate::wallets::WalletSettings,
            ) -> Result<$crate::wallets::Wallet, $crate::store::StoreError> {
                use $crate::store::StoreError;
                let mut tx = self.pool.begin().await?;
                // Insert-or-nothing first: a write, so the row is ours from here.
                sqlx::query(
                    "INSERT INTO wallets (account_id, tenant_id, currency, balance, reserved, \
                     low_balance_threshold, pays_sessions, low_balance_notified, \
                     low_balance_notices, created_at, updated_at) \
                     VALUES ($1, $2, $3, 0, 0, $4, $5, FALSE, 0, $6, $6) \
                     ON CONFLICT (account_id) DO UPDATE SET updated_at = $6",
                )
                .bind(s.account)
                .bind(s.tenant)
                .bind(s.currency.code())
                .bind(s.low_balance_threshold)
                .bind(s.pays_sessions)
                .bind(s.at)
                .execute(&mut *tx)
                .await?;
                let row = sqlx::query(&format!(
                    "SELECT {} FROM wallets WHERE account_id = $1",
                    wallet_rows::WALLET_COLUMNS
                ))
                .bind(s.account)
                .fetch_one(&mut *tx)
                .await?;
                let current = wallet_rows::wallet(&row)?;
                if current.currency != s.currency {
                    let empty = current.balance == 0 && current.reserved == 0;
                    let used = sqlx::query("SELECT 1 AS one FROM wallet_entries WHERE account_id = $1 LIMIT 1")
                        .bind(s.account)
                        .fetch_optional(&mut *tx)
                        .await?
                        .is_some();
                    if !empty || used {
                        return Err(StoreError::Conflict("currency"));
                    }
                }
                let row = sqlx::query(&format!(
                    "UPDATE wallets SET currency = $2, low_balance_threshold = $3, \
                     pays_sessions = $4, \
                     low_balance_notified = CASE WHEN balance >= $3 THEN FALSE \
                        ELSE low_balance_notified END \
                     WHERE account_id = $1 RETURNING {}",
                    wallet_rows::WALLET_COLUMNS
                ))
                .bind(s.account)
                .bind(s.currency.code())
                .bind(s.low_balance_threshold)
                .bind(s.pays_sessions)
                .fetch_one(&mut *tx)
                .await?;
                let w = wallet_rows::wallet(&row)?;
                tx.commit().await?;
                Ok(w)
            }

            async fn wallet(
                &self,
                account: $crate::ids::AccountId,
            ) -> Result<$crate::wallets::Wallet, $crate::store::StoreError> {
                let row = sqlx::query(&format!(
                    "SELECT {} FROM wallets WHERE account_id = $1",
                    wallet_rows::WALLET_COLUMNS
                ))
                .bind(account)
                .fetch_one(&self.pool)
                .await?;
                wallet_rows::wallet(&row)
            }

            async fn wallet_entries(
                &self,
                account: $crate::ids::AccountId,
                limit: i64,
            ) -> Result<Vec<$crate::wallets::WalletEntry>, $crate::store::StoreError> {
                let rows = sqlx::query(
                    "SELECT kind, amount, balance_after, reserved_after, reference, created_at \
                     FROM wallet_entries WHERE account_id = $1 \
                     ORDER BY created_at DESC, id DESC LIMIT $2",
                )
                .bind(account)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?;
                rows.iter().map(wallet_rows::entry).collect()
            }

            async fn credit_wallet(
                &self,
                account: $crate::ids::AccountId,
                entry_key: &str,
                amount: i64,
                reference: &str,
                at: chrono::DateTime<chrono::Utc>,
            ) -> $crate::store::wallets::Ledger<$crate::wallets::Wallet> {
                use $crate::store::StoreError;
                use $crate::wallets::{EntryKind, LedgerRefusal};
                let mut tx = self.pool.begin().await?;
                let Some(w) = wallet_rows::shift(&mut tx, account, amount, 0, i64::MIN, at).await?
                else {
                    return Ok(Err(LedgerRefusal::NoWallet));
                };
                if wallet_rows::entry_exists(&mut tx, entry_key).await? {
                    // Credited before: undo this transaction, answer as it stands.
                    tx.rollback().await?;
                    return Ok(Ok(self.wallet(account).await?));
                }
                match wallet_rows::append(&mut tx, &w, entry_key, EntryKind::TopUp, amount, reference, at).await {
                    Ok(()) => {}
                    Err(StoreError::Conflict(_)) => {
                        tx.rollback().await?;
                        return Ok(Ok(self.wallet(account).await?));
                    }
                    Err(e) => return Err(e),
                }
                tx.commit().await?;
                Ok(Ok(w))
            }

            async fn reserve_wallet(
                &self,
                account: $crate::ids::AccountId,
                hold_id: &str,
                reference: &str,
                entry_key: &str,
                amount: i64,
                at: chrono::DateTime<chrono::Utc>,
            ) -> $crate::store::wallets::Ledger<$crate::wallets::WalletHold> {
                use $crate::store::StoreError;
                use $crate::wallets::{EntryKind, LedgerRefusal, WalletHold, WalletHoldState};
                match self.wallet_hold(Some(hold_id), None).await {
                    Ok(h) => return Ok(Ok(h)),
                    Err(StoreError::NotFound) => {}
                    Err(e) => return Err(e),
                }
                let mut tx = self.pool.begin().await?;
                let Some(w) = wallet_rows::shift(&mut tx, account, 0, amount, amount, at).await? else {
                    tx.rollback().await?;
                    return match self.wallet(account).await {
                        Ok(_) => Ok(Err(LedgerRefusal::InsufficientFunds)),
                        Err(StoreError::NotFound) => Ok(Err(LedgerRefusal::NoWallet)),
                        Err(e) => Err(e),
                    };
                };
                let hold = WalletHold {
                    id: hold_id.to_owned(),
                    account,
                    currency: w.currency,
                    reference: reference.to_owned(),
                    state: WalletHoldState::Authorized,
                    amount,
                    captured: 0,
                    refunded: 0,
                };
                let inserted = sqlx::query(
                    "INSERT INTO wallet_holds (id, account_id, reference, state, amount, \
                     captured, refunded, created_at, updated_at) \
                     VALUES ($1, $2, $3, 'authorized', $4, 0, 0, $5, $5)",
                )
                .bind(hold_id)
                .bind(account)
                .bind(reference)
                .bind(amount)
                .bind(at)
                .execute(&mut *tx)
                .await
                .map_err(StoreError::from);
                match inserted {
                    Ok(_) => {}
                    // The same hold raced us: answer with it.
                    Err(StoreError::Conflict(_)) => {
                        tx.rollback().await?;
                        return self.wallet_hold(Some(hold_id), None).await.map(Ok);
                    }
                    Err(e) => return Err(e),
                }
                wallet_rows::append(&mut tx, &w, entry_key, EntryKind::Hold, amount, reference, at).await?;
                tx.commit().await?;
                Ok(Ok(hold))
            }

            async fn raise_wallet_hold(
                &self,
                hold_id: &str,
                entry_key: &str,
                new_total: i64,
                at: chrono::DateTime<chrono::Utc>,
            ) -> $crate::store::wallets::Ledger<$crate::wallets::WalletHold> {
                use $crate::wallets::{EntryKind, LedgerRefusal, WalletHoldState};
                let mut tx = self.pool.begin().await?;
                let Some(mut h) = wallet_rows::lock_hold(&mut tx, hold_id).await? else {
                    return Ok(Err(LedgerRefusal::UnknownHold));
                };
                if h.state != WalletHoldState::Authorized {
                    return Ok(Err(LedgerRefusal::WrongState));
                }
                if h.amount >= new_total {
                    return Ok(Ok(h));
                }
                let delta = new_total - h.amount;
                let Some(w) = wallet_rows::shift(&mut tx, h.account, 0, delta, delta, at).await? else {
                    return Ok(Err(LedgerRefusal::InsufficientFunds));
                };
                h.amount = new_total;
                wallet_rows::set_hold(&mut tx, &h, at).await?;
                wallet_rows::append(&mut tx, &w, entry_key, EntryKind::Increment, delta, &h.reference, at).await?;
                tx.commit().await?;
                Ok(Ok(h))
            }

            async fn capture_wallet_hold(
                &self,
                hold_id: &str,
                entry_key: &str,
                amount: i64,
                at: chrono::DateTime<chrono::Utc>,
            ) -> $crate::store::wallets::Ledger<$crate::wallets::WalletHold> {
                use $crate::wallets::{EntryKind, LedgerRefusal, WalletHoldState};
                let mut tx = self.pool.begin().await?;
                let Some(mut h) = wallet_rows::lock_hold(&mut tx, hold_id).await? else {
                    return Ok(Err(LedgerRefusal::UnknownHold));
                };
                match h.state {
                    WalletHoldState::Captured => return Ok(Ok(h)),
                    WalletHoldState::Voided => return Ok(Err(LedgerRefusal::WrongState)),
                    WalletHoldState::Authorized => {}
                }
                if amount > h.amount || amount < 0 {
                    return Ok(Err(LedgerRefusal::ExceedsHold));
                }
                let Some(w) =
                    wallet_rows::shift(&mut tx, h.account, -amount, -h.amount, i64::MIN, at).await?
                else {
                    return Err($crate::store::StoreError::Internal);
                };
                let released = h.amount - amount;
                h.state = WalletHoldState::Captured;
                h.captured = amount;
                wallet_rows::set_hold(&mut tx, &h, at).await?;
                wallet_rows::append(&mut tx, &w, entry_key, EntryKind::Capture, amount, &h.reference, at).await?;
                if released > 0 {
                    wallet_rows::append(
                        &mut tx,
                        &w,
                        &format!("{entry_key}:release"),
                        EntryKind::Release,
                        released,
                        &h.reference,
                        at,
                    )
                    .await?;
                }
                wallet_rows::low_balance(&mut tx, h.account, at).await?;
                tx.commit().await?;
                Ok(Ok(h))
            }

            async fn release_wallet_hold(
                &self,
                hold_id: &str,
                entry_key: &str,
                at: chrono::DateTime<chrono::Utc>,
            ) -> $crate::store::wallets::Ledger<$crate::wallets::WalletHold> {
                use $crate::wallets::{EntryKind, LedgerRefusal, WalletHoldState};
                let mut tx = self.pool.begin().await?;
                let Some(mut h) = wallet_rows::lock_hold(&mut tx, hold_id).await? else {
                    return Ok(Err(LedgerRefusal::UnknownHold));
                };
                match h.state {
                    WalletHoldState::Voided => return Ok(Ok(h)),
                    WalletHoldState::Captured => return Ok(Err(LedgerRefusal::WrongState)),
                    WalletHoldState::Authorized => {}
                }
                let Some(w) =
                    wallet_rows::shift(&mut tx, h.account, 0, -h.amount, i64::MIN, at).await?
                else {
                    return Err($crate::store::StoreError::Internal);
                };
                h.state = WalletHoldState::Voided;
                wallet_rows::set_hold(&mut tx, &h, at).await?;
                wallet_rows::append(&mut tx, &w, entry_key, EntryKind::Release, h.amount, &h.reference, at).await?;
                tx.commit().await?;
                Ok(Ok(h))
            }

            async fn refund_wallet_hold(
                &self,
                hold_id: &str,
                entry_key: &str,
                amount: i64,
                at: chrono::DateTime<chrono::Utc>,
            ) -> $crate::store::wallets::Ledger<$crate::wallets::WalletHold> {
                use $crate::wallets::{EntryKind, LedgerRefusal, WalletHoldState};
                let mut tx = self.pool.begin().await?;
                let Some(mut h) = wallet_rows::lock_hold(&mut tx, hold_id).await? else {
                    return Ok(Err(LedgerRefusal::UnknownHold));
                };
                if wallet_rows::entry_exists(&mut tx, entry_key).await? {
                    return Ok(Ok(h));
                }
                if h.state != WalletHoldState::Captured {
                    return Ok(Err(LedgerRefusal::WrongState));
                }
                if amount <= 0 || h.refunded + amount > h.captured {
                    return Ok(Err(LedgerRefusal::ExceedsCapture));
                }
                let Some(w) =
                    wallet_rows::shift(&mut tx, h.account, amount, 0, i64::MIN, at).await?
                else {
                    return Err($crate::store::StoreError::Internal);
                };
                h.refunded += amount;
                wallet_rows::set_hold(&mut tx, &h, at).await?;
                wallet_rows::append(&mut tx, &w, entry_key, EntryKind::Refund, amount, &h.reference, at).await?;
                tx.commit().await?;
                Ok(Ok(h))
            }

            async fn wallet_hold(
                &self,
                hold_id: Option<&str>,
                reference: Option<&str>,
            ) -> Result<$crate::wallets::WalletHold, $crate::store::StoreError> {
                let row = match (hold_id, reference) {
                    (Some(id), _) => {
                        sqlx::query(&format!("{} WHERE h.id = $1", wallet_rows::HOLD_SELECT))
                            .bind(id)
                            .fetch_one(&self.pool)
                            .await?
                    }
                    (None, Some(r)) => {
                        sqlx::query(&format!("{} WHERE h.reference = $1", wallet_rows::HOLD_SELECT))
                            .bind(r)
                            .fetch_one(&self.pool)
                            .await?
                    }
                    (None, None) => return Err($crate::store::StoreError::NotFound),
                };
                wallet_rows::hold(&row)
            }
        }
    };
}
pub(crate) use impl_wallet_store;
