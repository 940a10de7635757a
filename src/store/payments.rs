//! Payment sessions, their meter readings and their acquirer intents.
//! Portable SQL, expanded for each adapter.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::StoreError;
use crate::ids::{PaymentSessionId, TenantId};
use crate::payments::session::{Intent, IntentState, PaymentSession};

/// Most ids one batched read takes: well under SQLite's and PostgreSQL's
/// limits on bound parameters.
pub const MAX_BATCH: usize = 500;

/// Whether a batched read of `n` values has anything to ask; more than
/// [`MAX_BATCH`] is refused rather than cut.
pub(crate) fn batch_wanted(n: usize) -> Result<bool, StoreError> {
    if n > MAX_BATCH {
        return Err(StoreError::Internal);
    }
    Ok(n > 0)
}

/// Appends ` IN ($1, $2, …)` binding `values`.
pub(crate) fn push_in<'a, DB, T>(
    sql: &mut sqlx::QueryBuilder<'a, DB>,
    values: impl IntoIterator<Item = T>,
) where
    DB: sqlx::Database,
    T: 'a + sqlx::Encode<'a, DB> + sqlx::Type<DB>,
{
    sql.push(" IN (");
    let mut list = sql.separated(", ");
    for v in values {
        list.push_bind(v);
    }
    sql.push(")");
}

/// One meter reading as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoredReading {
    pub seq: i32,
    pub at: DateTime<Utc>,
    pub energy_wh: i64,
}

/// The outcome of an intent.
#[derive(Debug, Clone, Copy)]
pub struct Settle<'a> {
    pub acquirer_key: &'a str,
    pub state: IntentState,
    pub error_code: Option<&'a str>,
    pub at: DateTime<Utc>,
}

/// Everything one step of a session changes, written in one transaction.
/// `session.revision` is the revision that was read: if another writer got
/// there first the write is refused with `Conflict("revision")`.
#[derive(Debug, Clone, Copy)]
pub struct SessionWrite<'a> {
    pub session: &'a PaymentSession,
    pub settle: Option<Settle<'a>>,
    /// A new acquirer call; refused with `Conflict("unique")` while
    /// another call of the session is pending.
    pub open_intent: Option<&'a Intent>,
    pub reading: Option<StoredReading>,
}

#[async_trait]
pub trait PaymentStore: Send + Sync {
    /// The session and its authorize intent, in one transaction.
    /// `Conflict("unique")` if its Idempotency-Key opened a session before.
    async fn create_payment_session(
        &self,
        session: &PaymentSession,
        intent: &Intent,
    ) -> Result<(), StoreError>;
    /// A session of `tenant`; another tenant's is `NotFound`.
    async fn payment_session(
        &self,
        tenant: TenantId,
        id: PaymentSessionId,
    ) -> Result<PaymentSession, StoreError>;
    /// The session a principal opened with an Idempotency-Key.
    async fn payment_session_by_key(
        &self,
        tenant: TenantId,
        created_by: &str,
        idem_key: &str,
    ) -> Result<PaymentSession, StoreError>;
    /// Any tenant's session: for the recovery and expiry workers only.
    async fn payment_session_for_worker(
        &self,
        id: PaymentSessionId,
    ) -> Result<PaymentSession, StoreError>;
    async fn meter_readings(&self, id: PaymentSessionId) -> Result<Vec<StoredReading>, StoreError>;
    async fn payment_intent(&self, acquirer_key: &str) -> Result<Intent, StoreError>;
    async fn payment_intents(&self, id: PaymentSessionId) -> Result<Vec<Intent>, StoreError>;
    /// The meter readings of several sessions in one query (at most
    /// [`MAX_BATCH`] ids), each session's in order.
    async fn meter_readings_of(
        &self,
        ids: &[PaymentSessionId],
    ) -> Result<Vec<(PaymentSessionId, StoredReading)>, StoreError>;
    /// The intents of several sessions in one query (at most [`MAX_BATCH`]).
    async fn payment_intents_of(&self, ids: &[PaymentSessionId])
    -> Result<Vec<Intent>, StoreError>;
    async fn write_payment_session(&self, write: SessionWrite<'_>) -> Result<(), StoreError>;
    /// Takes over up to `limit` pending intents whose lease ran out before
    /// `now`, leasing each until `lease_until`. Two nodes never claim the same one.
    async fn claim_stale_intents(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<Intent>, StoreError>;
    /// Sessions still holding money that were opened before `before`.
    async fn open_payment_sessions_before(
        &self,
        before: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<PaymentSession>, StoreError>;
}

macro_rules! PAYMENT_SESSION_COLUMNS {
    () => {
        "id, tenant_id, created_by, idem_key, evse_id, connector_id, tariff_id, tariff_version, \
         token, acquirer, currency, hold_value, authorized_value, cost_value, energy_wh, \
         captured_value, refunded_value, status, stop_requested, incremental, auth_ref, \
         capture_ref, decline_code, created_at, updated_at, ended_at, revision, authorization_code, \
         account_id, rfid_uid"
    };
}
pub(crate) use PAYMENT_SESSION_COLUMNS;

macro_rules! PAYMENT_INTENT_COLUMNS {
    () => {
        "acquirer_key, session_id, kind, amount, state, error_code, reason, idem_principal, \
         idem_key, attempts, created_at, updated_at, lease_until"
    };
}
pub(crate) use PAYMENT_INTENT_COLUMNS;

macro_rules! impl_payment_store {
    ($store:ty, $db:ty, $row:ty) => {
mod payment_rows {
    use sqlx::Row;

    use $crate::store::payments::StoredReading;

    pub(super) type R = $row;
    use $crate::money::{Currency, Money};
    use $crate::payments::session::{Intent, IntentKind, IntentState, PaymentSession, SessionStatus};
    use $crate::store::StoreError;

    pub(super) fn session(row: &R) -> Result<PaymentSession, StoreError> {
        let currency_code: String = row.try_get("currency")?;
        let currency = Currency::parse(&currency_code).map_err(|_| StoreError::Internal)?;
        let money = |v: i64| Money::new(v, currency);
        let status: String = row.try_get("status")?;
        let tariff_version: i32 = row.try_get("tariff_version")?;
        Ok(PaymentSession {
            id: row.try_get("id")?,
            tenant: row.try_get("tenant_id")?,
            created_by: row.try_get("created_by")?,
            idem_key: row.try_get("idem_key")?,
            evse_id: row.try_get("evse_id")?,
            connector_id: row.try_get("connector_id")?,
            tariff_id: row.try_get("tariff_id")?,
            tariff_version: u32::try_from(tariff_version).map_err(|_| StoreError::Internal)?,
            token: row.try_get("token")?,
            account: row.try_get("account_id")?,
            rfid: row
                .try_get::<Option<String>, _>("rfid_uid")?
                .map(|u| $crate::accounts::RfidUid::parse(&u).ok_or(StoreError::Internal))
                .transpose()?,
            acquirer: row.try_get("acquirer")?,
            hold: money(row.try_get("hold_value")?),
            authorized: money(row.try_get("authorized_value")?),
            cost: money(row.try_get("cost_value")?),
            energy_wh: row.try_get("energy_wh")?,
            captured: row.try_get::<Option<i64>, _>("captured_value")?.map(money),
            refunded: money(row.try_get("refunded_value")?),
            status: SessionStatus::parse(&status).ok_or(StoreError::Internal)?,
            stop_requested: row.try_get("stop_requested")?,
            incremental: row.try_get("incremental")?,
            auth_ref: row.try_get("auth_ref")?,
            authorization_code: row.try_get("authorization_code")?,
            capture_ref: row.try_get("capture_ref")?,
            decline_code: row.try_get("decline_code")?,
            created_at: row.try_get("created_at")?,
            updated_at: row.try_get("updated_at")?,
            ended_at: row.try_get("ended_at")?,
            revision: row.try_get("revision")?,
        })
    }

    pub(super) fn intent(row: &R) -> Result<Intent, StoreError> {
        let kind: String = row.try_get("kind")?;
        let state: String = row.try_get("state")?;
        Ok(Intent {
            acquirer_key: row.try_get("acquirer_key")?,
            session: row.try_get("session_id")?,
            kind: IntentKind::parse(&kind).ok_or(StoreError::Internal)?,
            amount: row.try_get("amount")?,
            state: IntentState::parse(&state).ok_or(StoreError::Internal)?,
            error_code: row.try_get("error_code")?,
            reason: row.try_get("reason")?,
            idem_principal: row.try_get("idem_principal")?,
            idem_key: row.try_get("idem_key")?,
            attempts: row.try_get("attempts")?,
            created_at: row.try_get("created_at")?,
            updated_at: row.try_get("updated_at")?,
            lease_until: row.try_get("lease_until")?,
        })
    }

    pub(super) fn reading(row: &R) -> Result<StoredReading, StoreError> {
        Ok(StoredReading {
            seq: row.try_get("seq")?,
            at: row.try_get("at")?,
            energy_wh: row.try_get("energy_wh")?,
        })
    }
}

        #[async_trait::async_trait]
        impl $crate::store::payments::PaymentStore for $store {
            async fn create_payment_session(
                &self,
                s: &$crate::payments::session::PaymentSession,
                intent: &$crate::payments::session::Intent,
            ) -> Result<(), $crate::store::StoreError> {
                let mut tx = self.pool.begin().await?;
                sqlx::query(concat!(
                    "INSERT INTO payment_sessions (",
                    $crate::store::payments::PAYMENT_SESSION_COLUMNS!(),
                    ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, \
                     $15, $16, $17, $18, $19, $20, $21, $22, $23, $24, $25, $26, $27, $28, $29, $30)"
                ))
                .bind(s.id)
                .bind(s.tenant)
                .bind(&s.created_by)
                .bind(&s.idem_key)
                .bind(&s.evse_id)
                .bind(&s.connector_id)
                .bind(&s.tariff_id)
                .bind(i32::try_from(s.tariff_version).unwrap_or(i32::MAX))
                .bind(&s.token)
                .bind(&s.acquirer)
                .bind(s.hold.currency.code())
                .bind(s.hold.value)
                .bind(s.authorized.value)
                .bind(s.cost.value)
                .bind(s.energy_wh)
                .bind(s.captured.map(|m| m.value))
                .bind(s.refunded.value)
                .bind(s.status.as_str())
                .bind(s.stop_requested)
                .bind(s.incremental)
                .bind(&s.auth_ref)
                .bind(&s.capture_ref)
                .bind(&s.decline_code)
                .bind(s.created_at)
                .bind(s.updated_at)
                .bind(s.ended_at)
                .bind(s.revision)
                .bind(&s.authorization_code)
                .bind(s.account)
                .bind(s.rfid.as_ref().map(|u| u.as_str()))
                .execute(&mut *tx)
                .await?;
                insert_intent(&mut tx, intent).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn payment_session(
                &self,
                tenant: $crate::ids::TenantId,
                id: $crate::ids::PaymentSessionId,
            ) -> Result<$crate::payments::session::PaymentSession, $crate::store::StoreError>
            {
                let row = sqlx::query(concat!(
                    "SELECT ",
                    $crate::store::payments::PAYMENT_SESSION_COLUMNS!(),
                    " FROM payment_sessions WHERE tenant_id = $1 AND id = $2"
                ))
                .bind(tenant)
                .bind(id)
                .fetch_one(&self.pool)
                .await?;
                payment_rows::session(&row)
            }

            async fn payment_session_by_key(
                &self,
                tenant: $crate::ids::TenantId,
                created_by: &str,
                idem_key: &str,
            ) -> Result<$crate::payments::session::PaymentSession, $crate::store::StoreError>
            {
                let row = sqlx::query(concat!(
                    "SELECT ",
                    $crate::store::payments::PAYMENT_SESSION_COLUMNS!(),
                    " FROM payment_sessions \
                      WHERE tenant_id = $1 AND created_by = $2 AND idem_key = $3"
                ))
                .bind(tenant)
                .bind(created_by)
                .bind(idem_key)
                .fetch_one(&self.pool)
                .await?;
                payment_rows::session(&row)
            }

            async fn payment_session_for_worker(
                &self,
                id: $crate::ids::PaymentSessionId,
            ) -> Result<$crate::payments::session::PaymentSession, $crate::store::StoreError>
            {
                let row = sqlx::query(concat!(
                    "SELECT ",
                    $crate::store::payments::PAYMENT_SESSION_COLUMNS!(),
                    " FROM payment_sessions WHERE id = $1"
                ))
                .bind(id)
                .fetch_one(&self.pool)
                .await?;
                payment_rows::session(&row)
            }

            async fn meter_readings(
                &self,
                id: $crate::ids::PaymentSessionId,
            ) -> Result<Vec<$crate::store::payments::StoredReading>, $crate::store::StoreError>
            {
                let rows = sqlx::query(
                    "SELECT seq, at, energy_wh FROM payment_meter_readings \
                     WHERE session_id = $1 ORDER BY seq",
                )
                .bind(id)
                .fetch_all(&self.pool)
                .await?;
                rows.iter()
                    .map(payment_rows::reading)
                    .collect()
            }

            async fn payment_intent(
                &self,
                acquirer_key: &str,
            ) -> Result<$crate::payments::session::Intent, $crate::store::StoreError> {
                let row = sqlx::query(concat!(
                    "SELECT ",
                    $crate::store::payments::PAYMENT_INTENT_COLUMNS!(),
                    " FROM payment_intents WHERE acquirer_key = $1"
                ))
                .bind(acquirer_key)
                .fetch_one(&self.pool)
                .await?;
                payment_rows::intent(&row)
            }

            async fn payment_intents(
                &self,
                id: $crate::ids::PaymentSessionId,
            ) -> Result<Vec<$crate::payments::session::Intent>, $crate::store::StoreError> {
                let rows = sqlx::query(concat!(
                    "SELECT ",
                    $crate::store::payments::PAYMENT_INTENT_COLUMNS!(),
                    " FROM payment_intents WHERE session_id = $1 ORDER BY created_at, acquirer_key"
                ))
                .bind(id)
                .fetch_all(&self.pool)
                .await?;
                rows.iter()
                    .map(payment_rows::intent)
                    .collect()
            }

            async fn meter_readings_of(
                &self,
                ids: &[$crate::ids::PaymentSessionId],
            ) -> Result<
                Vec<($crate::ids::PaymentSessionId, $crate::store::payments::StoredReading)>,
                $crate::store::StoreError,
            > {
                if !$crate::store::payments::batch_wanted(ids.len())? {
                    return Ok(Vec::new());
                }
                let mut sql = sqlx::QueryBuilder::new(
                    "SELECT session_id, seq, at, energy_wh FROM payment_meter_readings \
                     WHERE session_id",
                );
                $crate::store::payments::push_in(&mut sql, ids.iter().copied());
                sql.push(" ORDER BY session_id, seq");
                let rows = sql.build().persistent(false).fetch_all(&self.pool).await?;
                rows.iter()
                    .map(|row| {
                        let id = sqlx::Row::try_get(row, "session_id")?;
                        Ok((id, payment_rows::reading(row)?))
                    })
                    .collect()
            }

            async fn payment_intents_of(
                &self,
                ids: &[$crate::ids::PaymentSessionId],
            ) -> Result<Vec<$crate::payments::session::Intent>, $crate::store::StoreError> {
                if !$crate::store::payments::batch_wanted(ids.len())? {
                    return Ok(Vec::new());
                }
                let mut sql = sqlx::QueryBuilder::new(concat!(
                    "SELECT ",
                    $crate::store::payments::PAYMENT_INTENT_COLUMNS!(),
                    " FROM payment_intents WHERE session_id"
                ));
                $crate::store::payments::push_in(&mut sql, ids.iter().copied());
                sql.push(" ORDER BY session_id, created_at, acquirer_key");
                let rows = sql.build().persistent(false).fetch_all(&self.pool).await?;
                rows.iter()
                    .map(payment_rows::intent)
                    .collect()
            }

            async fn write_payment_session(
                &self,
                w: $crate::store::payments::SessionWrite<'_>,
            ) -> Result<(), $crate::store::StoreError> {
                let s = w.session;
                let mut tx = self.pool.begin().await?;
                if let Some(settle) = w.settle {
                    let settled = sqlx::query(
                        "UPDATE payment_intents SET state = $1, error_code = $2, \
                         updated_at = $3, attempts = attempts + 1 \
                         WHERE acquirer_key = $4 AND state = 'pending'",
                    )
                    .bind(settle.state.as_str())
                    .bind(settle.error_code)
                    .bind(settle.at)
                    .bind(settle.acquirer_key)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                    if settled != 1 {
                        return Err($crate::store::StoreError::Conflict("intent"));
                    }
                }
                let updated = sqlx::query(
                    "UPDATE payment_sessions SET authorized_value = $1, cost_value = $2, \
                     energy_wh = $3, captured_value = $4, refunded_value = $5, status = $6, \
                     stop_requested = $7, incremental = $8, auth_ref = $9, capture_ref = $10, \
                     decline_code = $11, updated_at = $12, ended_at = $13, revision = $14 + 1, \
                     authorization_code = $16 \
                     WHERE id = $15 AND revision = $14",
                )
                .bind(s.authorized.value)
                .bind(s.cost.value)
                .bind(s.energy_wh)
                .bind(s.captured.map(|m| m.value))
                .bind(s.refunded.value)
                .bind(s.status.as_str())
                .bind(s.stop_requested)
                .bind(s.incremental)
                .bind(&s.auth_ref)
                .bind(&s.capture_ref)
                .bind(&s.decline_code)
                .bind(s.updated_at)
                .bind(s.ended_at)
                .bind(s.revision)
                .bind(s.id)
                .bind(&s.authorization_code)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if updated != 1 {
                    return Err($crate::store::StoreError::Conflict("revision"));
                }
                if let Some(r) = w.reading {
                    sqlx::query(
                        "INSERT INTO payment_meter_readings (session_id, seq, at, energy_wh) \
                         VALUES ($1, $2, $3, $4)",
                    )
                    .bind(s.id)
                    .bind(r.seq)
                    .bind(r.at)
                    .bind(r.energy_wh)
                    .execute(&mut *tx)
                    .await?;
                }
                if let Some(intent) = w.open_intent {
                    insert_intent(&mut tx, intent).await?;
                }
                tx.commit().await?;
                Ok(())
            }

            async fn claim_stale_intents(
                &self,
                now: chrono::DateTime<chrono::Utc>,
                lease_until: chrono::DateTime<chrono::Utc>,
                limit: i64,
            ) -> Result<Vec<$crate::payments::session::Intent>, $crate::store::StoreError> {
                let rows = sqlx::query(concat!(
                    "SELECT ",
                    $crate::store::payments::PAYMENT_INTENT_COLUMNS!(),
                    " FROM payment_intents WHERE state = 'pending' AND lease_until < $1 \
                      ORDER BY created_at LIMIT $2"
                ))
                .bind(now)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?;
                let mut claimed = Vec::new();
                for row in &rows {
                    let mut intent = payment_rows::intent(row)?;
                    // Compare-and-set on the old lease: of two nodes, one wins.
                    let won = sqlx::query(
                        "UPDATE payment_intents SET lease_until = $1 \
                         WHERE acquirer_key = $2 AND state = 'pending' AND lease_until = $3",
                    )
                    .bind(lease_until)
                    .bind(&intent.acquirer_key)
                    .bind(intent.lease_until)
                    .execute(&self.pool)
                    .await?
                    .rows_affected();
                    if won == 1 {
                        intent.lease_until = lease_until;
                        claimed.push(intent);
                    }
                }
                Ok(claimed)
            }

            async fn open_payment_sessions_before(
                &self,
                before: chrono::DateTime<chrono::Utc>,
                limit: i64,
            ) -> Result<Vec<$crate::payments::session::PaymentSession>, $crate::store::StoreError>
            {
                let rows = sqlx::query(concat!(
                    "SELECT ",
                    $crate::store::payments::PAYMENT_SESSION_COLUMNS!(),
                    " FROM payment_sessions WHERE status IN ('authorized', 'charging') \
                      AND created_at < $1 ORDER BY created_at LIMIT $2"
                ))
                .bind(before)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?;
                rows.iter()
                    .map(payment_rows::session)
                    .collect()
            }
        }

        async fn insert_intent(
            tx: &mut sqlx::Transaction<'_, $db>,
            i: &$crate::payments::session::Intent,
        ) -> Result<(), $crate::store::StoreError> {
            sqlx::query(concat!(
                "INSERT INTO payment_intents (",
                $crate::store::payments::PAYMENT_INTENT_COLUMNS!(),
                ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"
            ))
            .bind(i.acquirer_key.clone())
            .bind(i.session)
            .bind(i.kind.as_str())
            .bind(i.amount)
            .bind(i.state.as_str())
            .bind(i.error_code.clone())
            .bind(i.reason.clone())
            .bind(i.idem_principal.clone())
            .bind(i.idem_key.clone())
            .bind(i.attempts)
            .bind(i.created_at)
            .bind(i.updated_at)
            .bind(i.lease_until)
            .execute(&mut **tx)
            .await?;
            Ok(())
        }
    };
}
pub(crate) use impl_payment_store;
