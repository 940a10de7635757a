//! Rows that are committed in the audit writer's transaction, together with
//! the audit events of the request that wrote them (ADR 0008). A request
//! then waits for one durable commit, shared with every other request in the
//! same batch, instead of one per row plus one per event.
//!
//! A batch holds many requests' rows. A row whose key is already taken (an
//! idempotency key used before, a token value held by another token) must
//! not fail the whole batch: every INSERT here is `ON CONFLICT DO NOTHING
//! RETURNING` the keys that went in, and a request whose row was refused
//! keeps nothing of its own (its other rows are taken out again in the same
//! transaction, its events are not linked). Any other database error fails
//! the whole batch, and every request in it fails closed.

use std::collections::HashSet;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::StoreError;
use super::tokens::StoredToken;
use crate::audit::{AuditRecord, Checkpoint};
use crate::idempotency::IdempotencyScope;
use crate::ids::TenantId;

/// A completed idempotent request: its key, the hash of what was asked and
/// the answer a replay gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotentResponse {
    pub scope: IdempotencyScope,
    pub request_hash: [u8; 32],
    pub status: u16,
    pub body: Vec<u8>,
    pub at: DateTime<Utc>,
}

/// What one request writes beside its audit events.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JoinedRows {
    pub idempotent: Option<IdempotentResponse>,
    pub token: Option<StoredToken>,
}

impl JoinedRows {
    pub fn is_empty(&self) -> bool {
        self.idempotent.is_none() && self.token.is_none()
    }
}

/// What became of one request's rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JoinedOutcome {
    /// Everything went in (once the transaction commits).
    Written,
    /// The idempotency key was already stored (by another request or node):
    /// nothing of this request was kept; read the stored record.
    IdempotencyKeyTaken,
    /// The token value is held by another token of the tenant: nothing of
    /// this request was kept; draw another value (or, for FF1, read it).
    TokenTaken,
}

/// One open transaction of the audit writer.
#[async_trait]
pub trait JoinedTx: Send {
    /// Inserts each request's rows; a request with a refused row keeps none.
    async fn insert_rows(
        &mut self,
        units: &[&JoinedRows],
    ) -> Result<Vec<JoinedOutcome>, StoreError>;
    /// Appends audit records (and a checkpoint) in this transaction.
    async fn append_audit(
        &mut self,
        records: &[AuditRecord],
        checkpoint: Option<&Checkpoint>,
    ) -> Result<(), StoreError>;
    async fn commit(self: Box<Self>) -> Result<(), StoreError>;
}

/// A sqlx transaction as a [`JoinedTx`]; implemented per backend below.
pub struct SqlJoinedTx<DB: sqlx::Database> {
    pub(crate) tx: sqlx::Transaction<'static, DB>,
}

/// Rows per multi-row INSERT: 16 parameters a token row stays under
/// SQLite's 32766. These statements are not kept prepared
/// (`persistent(false)`): one per batch size and connection would pile up
/// in every connection's statement cache.
pub(crate) const ROW_CHUNK: usize = 1000;

type IdemKey = (TenantId, String, String);
type TokenKey = (TenantId, String);

fn idem_key(r: &IdempotentResponse) -> IdemKey {
    (
        r.scope.tenant,
        r.scope.principal.clone(),
        r.scope.key.as_str().to_owned(),
    )
}

fn token_key(t: &StoredToken) -> TokenKey {
    (t.tenant, t.token.clone())
}

/// Marks as taken every unit (still `Written`) whose key an earlier unit of
/// the batch already uses: one statement inserts a key at most once, and
/// the keys it returns could not tell the two apart.
fn refuse_duplicates<K: std::hash::Hash + Eq>(
    units: &[&JoinedRows],
    outcomes: &mut [JoinedOutcome],
    key: impl Fn(&JoinedRows) -> Option<K>,
    taken: JoinedOutcome,
) {
    let mut seen = HashSet::new();
    for (unit, outcome) in units.iter().zip(outcomes.iter_mut()) {
        if *outcome != JoinedOutcome::Written {
            continue;
        }
        if let Some(k) = key(unit)
            && !seen.insert(k)
        {
            *outcome = taken;
        }
    }
}

/// Implements [`JoinedTx`] for `SqlJoinedTx<$db>`; the SQL is the same on
/// both databases.
macro_rules! impl_joined_tx {
    ($db:ty) => {
        #[async_trait::async_trait]
        impl $crate::store::joined::JoinedTx for $crate::store::joined::SqlJoinedTx<$db> {
            async fn insert_rows(
                &mut self,
                units: &[&$crate::store::joined::JoinedRows],
            ) -> Result<Vec<$crate::store::joined::JoinedOutcome>, $crate::store::StoreError>
            {
                use $crate::store::joined::{JoinedOutcome, ROW_CHUNK, idem_key, token_key};
                use sqlx::Row;
                let mut outcomes = vec![JoinedOutcome::Written; units.len()];
                // Idempotency records first: a request whose key is taken
                // must not write its token.
                $crate::store::joined::refuse_duplicates(
                    units,
                    &mut outcomes,
                    |u| u.idempotent.as_ref().map(idem_key),
                    JoinedOutcome::IdempotencyKeyTaken,
                );
                let mut wanted: Vec<(usize, &$crate::store::joined::IdempotentResponse)> =
                    units
                        .iter()
                        .enumerate()
                        .filter(|(i, _)| outcomes[*i] == JoinedOutcome::Written)
                        .filter_map(|(i, u)| u.idempotent.as_ref().map(|r| (i, r)))
                        .collect();
                // In key order, so two nodes inserting the same keys take
                // their row locks in the same order and cannot deadlock.
                wanted.sort_by_key(|(_, r)| idem_key(r));
                let mut stored = std::collections::HashSet::new();
                for chunk in wanted.chunks(ROW_CHUNK) {
                    let mut insert = sqlx::QueryBuilder::<$db>::new(
                        "INSERT INTO idempotency_keys (tenant_id, principal, idem_key, \
                         request_hash, status_code, response_body, created_at, completed_at) ",
                    );
                    insert.push_values(chunk, |mut row, (_, r)| {
                        row.push_bind(r.scope.tenant)
                            .push_bind(r.scope.principal.clone())
                            .push_bind(r.scope.key.as_str().to_owned())
                            .push_bind(r.request_hash.to_vec())
                            .push_bind(i32::from(r.status))
                            .push_bind(r.body.clone())
                            .push_bind(r.at)
                            .push_bind(r.at);
                    });
                    insert.push(" ON CONFLICT DO NOTHING RETURNING tenant_id, principal, idem_key");
                    for row in insert.build().persistent(false).fetch_all(&mut *self.tx).await? {
                        stored.insert((
                            row.try_get::<$crate::ids::TenantId, _>("tenant_id")?,
                            row.try_get::<String, _>("principal")?,
                            row.try_get::<String, _>("idem_key")?,
                        ));
                    }
                }
                for (i, r) in &wanted {
                    if !stored.contains(&idem_key(r)) {
                        outcomes[*i] = JoinedOutcome::IdempotencyKeyTaken;
                    }
                }
                // Then the tokens of the requests still standing.
                $crate::store::joined::refuse_duplicates(
                    units,
                    &mut outcomes,
                    |u| u.token.as_ref().map(token_key),
                    JoinedOutcome::TokenTaken,
                );
                let mut wanted: Vec<(usize, &$crate::store::tokens::StoredToken)> = units
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| outcomes[*i] == JoinedOutcome::Written)
                    .filter_map(|(i, u)| u.token.as_ref().map(|t| (i, t)))
                    .collect();
                wanted.sort_by_key(|(_, t)| token_key(t));
                let mut inserted = std::collections::HashSet::new();
                for chunk in wanted.chunks(ROW_CHUNK) {
                    let mut insert = sqlx::QueryBuilder::<$db>::new(
                        "INSERT INTO tokens (tenant_id, token, format, brand, last4, bin, \
                         exp_month, exp_year, fingerprint, data_key_id, record_format, nonce, \
                         ciphertext, metadata, created_at, expires_at) ",
                    );
                    insert.push_values(chunk, |mut row, (_, t)| {
                        let sealed = t.sealed.as_ref();
                        row.push_bind(t.tenant)
                            .push_bind(t.token.clone())
                            .push_bind(t.format.clone())
                            .push_bind(t.brand.clone())
                            .push_bind(t.last4.clone())
                            .push_bind(t.bin.clone())
                            .push_bind(i32::from(t.exp_month))
                            .push_bind(i32::from(t.exp_year))
                            .push_bind(t.fingerprint.to_vec())
                            .push_bind(sealed.map(|s| s.data_key_id.0))
                            .push_bind(sealed.map(|s| i32::from(s.format_version)))
                            .push_bind(sealed.map(|s| s.nonce.to_vec()))
                            .push_bind(sealed.map(|s| s.ciphertext.clone()))
                            .push_bind(t.metadata.as_ref().map(|m| m.to_string()))
                            .push_bind(t.created_at)
                            .push_bind(t.expires_at);
                    });
                    insert.push(" ON CONFLICT DO NOTHING RETURNING tenant_id, token");
                    for row in insert.build().persistent(false).fetch_all(&mut *self.tx).await? {
                        inserted.insert((
                            row.try_get::<$crate::ids::TenantId, _>("tenant_id")?,
                            row.try_get::<String, _>("token")?,
                        ));
                    }
                }
                for (i, t) in &wanted {
                    if !inserted.contains(&token_key(t)) {
                        outcomes[*i] = JoinedOutcome::TokenTaken;
                    }
                }
                // A request whose token was refused keeps no idempotency
                // record either: its retry with a new value writes one.
                for (unit, outcome) in units.iter().zip(&outcomes) {
                    if *outcome != JoinedOutcome::TokenTaken {
                        continue;
                    }
                    let Some(r) = &unit.idempotent else { continue };
                    if !stored.contains(&idem_key(r)) {
                        continue;
                    }
                    sqlx::query(
                        "DELETE FROM idempotency_keys \
                         WHERE tenant_id = $1 AND principal = $2 AND idem_key = $3",
                    )
                    .bind(r.scope.tenant)
                    .bind(&r.scope.principal)
                    .bind(r.scope.key.as_str())
                    .execute(&mut *self.tx)
                    .await?;
                }
                Ok(outcomes)
            }

            async fn append_audit(
                &mut self,
                records: &[$crate::audit::AuditRecord],
                checkpoint: Option<&$crate::audit::Checkpoint>,
            ) -> Result<(), $crate::store::StoreError> {
                $crate::store::audit_sql::check_fits(records, checkpoint)?;
                for chunk in records.chunks($crate::store::audit_sql::INSERT_CHUNK) {
                    $crate::store::audit_sql::audit_insert!($db, chunk)
                        .build()
                        .persistent(false)
                        .execute(&mut *self.tx)
                        .await?;
                }
                if let Some(cp) = checkpoint {
                    $crate::store::audit_sql::insert_checkpoint!(cp)
                        .execute(&mut *self.tx)
                        .await?;
                }
                Ok(())
            }

            async fn commit(self: Box<Self>) -> Result<(), $crate::store::StoreError> {
                self.tx.commit().await?;
                Ok(())
            }
        }
    };
}

impl_joined_tx!(sqlx::Sqlite);
impl_joined_tx!(sqlx::Postgres);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::idempotency::IdempotencyKey;

    fn unit(key: &str, token: &str, tenant: TenantId) -> JoinedRows {
        let at = chrono::DateTime::<Utc>::from_timestamp(1_800_000_000, 0).unwrap();
        JoinedRows {
            idempotent: Some(IdempotentResponse {
                scope: IdempotencyScope {
                    tenant,
                    principal: "client:a".into(),
                    key: IdempotencyKey::parse(key).unwrap(),
                },
                request_hash: [0; 32],
                status: 201,
                body: Vec::new(),
                at,
            }),
            token: Some(StoredToken {
                tenant,
                token: token.into(),
                format: "random".into(),
                brand: "visa".into(),
                last4: "4242".into(),
                bin: None,
                exp_month: 1,
                exp_year: 2030,
                fingerprint: [0; 32],
                sealed: None,
                metadata: None,
                created_at: at,
                expires_at: None,
                deleted_at: None,
            }),
        }
    }

    #[test]
    fn a_key_used_twice_in_one_batch_is_refused_the_second_time() {
        let tenant = TenantId::generate();
        let (a, b, c) = (
            unit("k1", "t1", tenant),
            unit("k1", "t2", tenant),
            unit("k2", "t1", tenant),
        );
        let units = [&a, &b, &c];
        let mut outcomes = vec![JoinedOutcome::Written; 3];
        refuse_duplicates(
            &units,
            &mut outcomes,
            |u| u.idempotent.as_ref().map(idem_key),
            JoinedOutcome::IdempotencyKeyTaken,
        );
        assert_eq!(
            outcomes,
            [
                JoinedOutcome::Written,
                JoinedOutcome::IdempotencyKeyTaken,
                JoinedOutcome::Written
            ]
        );
        refuse_duplicates(
            &units,
            &mut outcomes,
            |u| u.token.as_ref().map(token_key),
            JoinedOutcome::TokenTaken,
        );
        // b is out already, so c's token clashes with a's only.
        assert_eq!(
            outcomes,
            [
                JoinedOutcome::Written,
                JoinedOutcome::IdempotencyKeyTaken,
                JoinedOutcome::TokenTaken
            ]
        );
    }
}
