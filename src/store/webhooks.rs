//! Webhook endpoints and their delivery outbox. Portable SQL, expanded for
//! each adapter.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::StoreError;
use crate::ids::{DeliveryId, TenantId, WebhookId};
use crate::notify::{DeliveryState, EventType, OutboxEvent};

/// An endpoint as stored: its secret only in sealed form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookRecord {
    pub id: WebhookId,
    pub tenant: TenantId,
    pub url: String,
    pub events: Vec<EventType>,
    pub secret_sealed: Vec<u8>,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
}

/// One event on its way to one endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryRecord {
    pub id: DeliveryId,
    pub webhook: WebhookId,
    pub tenant: TenantId,
    pub event_id: String,
    pub event_type: String,
    /// The JSON body, exactly as it is signed and sent.
    pub payload: String,
    pub state: DeliveryState,
    /// Attempts started so far (a claim counts as one).
    pub attempts: i32,
    pub last_status: Option<i32>,
    /// A fixed code (`timeout`, `connect`, `status`, ...), never response text.
    pub last_error: Option<String>,
    /// When it is due; while claimed, when the claim runs out.
    pub next_attempt_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A claimed delivery with where it goes.
#[derive(Debug, Clone)]
pub struct ClaimedDelivery {
    pub delivery: DeliveryRecord,
    pub url: String,
    pub secret_sealed: Vec<u8>,
}

/// What one attempt came to.
#[derive(Debug, Clone)]
pub struct AttemptOutcome<'a> {
    pub state: DeliveryState,
    pub last_status: Option<i32>,
    pub last_error: Option<&'a str>,
    pub next_attempt_at: DateTime<Utc>,
    pub at: DateTime<Utc>,
}

#[async_trait]
pub trait WebhookStore: Send + Sync {
    async fn insert_webhook(&self, webhook: &WebhookRecord) -> Result<(), StoreError>;
    async fn webhooks(&self, tenant: TenantId) -> Result<Vec<WebhookRecord>, StoreError>;
    /// A webhook of `tenant`; another tenant's is `NotFound`.
    async fn webhook(&self, tenant: TenantId, id: WebhookId) -> Result<WebhookRecord, StoreError>;
    /// Removes the endpoint, its sealed secret and its deliveries.
    async fn delete_webhook(&self, tenant: TenantId, id: WebhookId) -> Result<(), StoreError>;
    /// Queues the event for every endpoint of its tenant subscribed to its
    /// type, once per endpoint however often it is emitted. Returns how
    /// many deliveries were new.
    async fn enqueue_event(&self, event: &OutboxEvent) -> Result<u64, StoreError>;
    /// The newest deliveries to one endpoint of `tenant`.
    async fn webhook_deliveries(
        &self,
        tenant: TenantId,
        webhook: WebhookId,
        limit: i64,
    ) -> Result<Vec<DeliveryRecord>, StoreError>;
    /// Takes up to `limit` pending deliveries due at `now`, counting an
    /// attempt and leasing each until `lease_until` (compare-and-set on the
    /// due time: of two nodes, one wins).
    async fn claim_due_deliveries(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<ClaimedDelivery>, StoreError>;
    /// Records an attempt's outcome if the claim (`claimed_until`) still
    /// holds; false if it ran out and another node took the delivery.
    async fn finish_delivery_attempt(
        &self,
        id: DeliveryId,
        claimed_until: DateTime<Utc>,
        outcome: &AttemptOutcome<'_>,
    ) -> Result<bool, StoreError>;
}

macro_rules! DELIVERY_COLUMNS {
    () => {
        "d.id, d.webhook_id, d.tenant_id, d.event_id, d.event_type, d.payload, d.state, \
         d.attempts, d.last_status, d.last_error, d.next_attempt_at, d.created_at, d.updated_at"
    };
}
pub(crate) use DELIVERY_COLUMNS;

macro_rules! impl_webhook_store {
    ($store:ty, $row:ty) => {
        mod webhook_rows {
            use sqlx::Row;

            use $crate::notify::{DeliveryState, EventType};
            use $crate::store::StoreError;
            use $crate::store::webhooks::{DeliveryRecord, WebhookRecord};

            pub(super) fn webhook(row: &$row) -> Result<WebhookRecord, StoreError> {
                let events: String = row.try_get("events")?;
                Ok(WebhookRecord {
                    id: row.try_get("id")?,
                    tenant: row.try_get("tenant_id")?,
                    url: row.try_get("url")?,
                    events: EventType::parse_list(&events).ok_or(StoreError::Internal)?,
                    secret_sealed: row.try_get("secret_sealed")?,
                    created_by: row.try_get("created_by")?,
                    created_at: row.try_get("created_at")?,
                })
            }

            pub(super) fn delivery(row: &$row) -> Result<DeliveryRecord, StoreError> {
                let state: String = row.try_get("state")?;
                Ok(DeliveryRecord {
                    id: row.try_get("id")?,
                    webhook: row.try_get("webhook_id")?,
                    tenant: row.try_get("tenant_id")?,
                    event_id: row.try_get("event_id")?,
                    event_type: row.try_get("event_type")?,
                    payload: row.try_get("payload")?,
                    state: DeliveryState::parse(&state).ok_or(StoreError::Internal)?,
                    attempts: row.try_get("attempts")?,
                    last_status: row.try_get("last_status")?,
                    last_error: row.try_get("last_error")?,
                    next_attempt_at: row.try_get("next_attempt_at")?,
                    created_at: row.try_get("created_at")?,
                    updated_at: row.try_get("updated_at")?,
                })
            }
        }

        #[async_trait::async_trait]
        impl $crate::store::webhooks::WebhookStore for $store {
            async fn insert_webhook(
                &self,
                w: &$crate::store::webhooks::WebhookRecord,
            ) -> Result<(), $crate::store::StoreError> {
                sqlx::query(
                    "INSERT INTO webhooks (id, tenant_id, url, events, secret_sealed, \
                     created_by, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                )
                .bind(w.id)
                .bind(w.tenant)
                .bind(&w.url)
                .bind($crate::notify::EventType::join(&w.events))
                .bind(&w.secret_sealed)
                .bind(&w.created_by)
                .bind(w.created_at)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn webhooks(
                &self,
                tenant: $crate::ids::TenantId,
            ) -> Result<Vec<$crate::store::webhooks::WebhookRecord>, $crate::store::StoreError>
            {
                let rows = sqlx::query(
                    "SELECT id, tenant_id, url, events, secret_sealed, created_by, created_at \
                     FROM webhooks WHERE tenant_id = $1 ORDER BY created_at, id",
                )
                .bind(tenant)
                .fetch_all(&self.pool)
                .await?;
                rows.iter().map(webhook_rows::webhook).collect()
            }

            async fn webhook(
                &self,
                tenant: $crate::ids::TenantId,
                id: $crate::ids::WebhookId,
            ) -> Result<$crate::store::webhooks::WebhookRecord, $crate::store::StoreError> {
                let row = sqlx::query(
                    "SELECT id, tenant_id, url, events, secret_sealed, created_by, created_at \
                     FROM webhooks WHERE tenant_id = $1 AND id = $2",
                )
                .bind(tenant)
                .bind(id)
                .fetch_one(&self.pool)
                .await?;
                webhook_rows::webhook(&row)
            }

            async fn delete_webhook(
                &self,
                tenant: $crate::ids::TenantId,
                id: $crate::ids::WebhookId,
            ) -> Result<(), $crate::store::StoreError> {
                let mut tx = self.pool.begin().await?;
                sqlx::query(
                    "DELETE FROM webhook_deliveries WHERE tenant_id = $1 AND webhook_id = $2",
                )
                .bind(tenant)
                .bind(id)
                .execute(&mut *tx)
                .await?;
                let gone = sqlx::query("DELETE FROM webhooks WHERE tenant_id = $1 AND id = $2")
                    .bind(tenant)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                if gone != 1 {
                    return Err($crate::store::StoreError::NotFound);
                }
                tx.commit().await?;
                Ok(())
            }

            async fn enqueue_event(
                &self,
                event: &$crate::notify::OutboxEvent,
            ) -> Result<u64, $crate::store::StoreError> {
                let mut tx = self.pool.begin().await?;
                let rows = sqlx::query("SELECT id, events FROM webhooks WHERE tenant_id = $1")
                    .bind(event.tenant)
                    .fetch_all(&mut *tx)
                    .await?;
                let mut queued = 0;
                for row in &rows {
                    use sqlx::Row;
                    let events: String = row.try_get("events")?;
                    let subscribed = $crate::notify::EventType::parse_list(&events)
                        .ok_or($crate::store::StoreError::Internal)?
                        .contains(&event.event_type);
                    if !subscribed {
                        continue;
                    }
                    let webhook: $crate::ids::WebhookId = row.try_get("id")?;
                    queued += sqlx::query(
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
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                }
                tx.commit().await?;
                Ok(queued)
            }

            async fn webhook_deliveries(
                &self,
                tenant: $crate::ids::TenantId,
                webhook: $crate::ids::WebhookId,
                limit: i64,
            ) -> Result<Vec<$crate::store::webhooks::DeliveryRecord>, $crate::store::StoreError>
            {
                let rows = sqlx::query(concat!(
                    "SELECT ",
                    $crate::store::webhooks::DELIVERY_COLUMNS!(),
                    " FROM webhook_deliveries d WHERE d.tenant_id = $1 AND d.webhook_id = $2 \
                      ORDER BY d.created_at DESC, d.id DESC LIMIT $3"
                ))
                .bind(tenant)
                .bind(webhook)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?;
                rows.iter().map(webhook_rows::delivery).collect()
            }

            async fn claim_due_deliveries(
                &self,
                now: chrono::DateTime<chrono::Utc>,
                lease_until: chrono::DateTime<chrono::Utc>,
                limit: i64,
            ) -> Result<Vec<$crate::store::webhooks::ClaimedDelivery>, $crate::store::StoreError>
            {
                use sqlx::Row;
                let rows = sqlx::query(concat!(
                    "SELECT ",
                    $crate::store::webhooks::DELIVERY_COLUMNS!(),
                    ", w.url, w.secret_sealed FROM webhook_deliveries d \
                      JOIN webhooks w ON w.id = d.webhook_id \
                      WHERE d.state = 'pending' AND d.next_attempt_at <= $1 \
                      ORDER BY d.next_attempt_at LIMIT $2"
                ))
                .bind(now)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?;
                let mut claimed = Vec::new();
                for row in &rows {
                    let mut delivery = webhook_rows::delivery(row)?;
                    // Compare-and-set on the due time: of two nodes, one wins.
                    let won = sqlx::query(
                        "UPDATE webhook_deliveries SET next_attempt_at = $1, \
                         attempts = attempts + 1, updated_at = $2 \
                         WHERE id = $3 AND state = 'pending' AND next_attempt_at = $4",
                    )
                    .bind(lease_until)
                    .bind(now)
                    .bind(delivery.id)
                    .bind(delivery.next_attempt_at)
                    .execute(&self.pool)
                    .await?
                    .rows_affected();
                    if won == 1 {
                        delivery.next_attempt_at = lease_until;
                        delivery.attempts += 1;
                        delivery.updated_at = now;
                        claimed.push($crate::store::webhooks::ClaimedDelivery {
                            delivery,
                            url: row.try_get("url")?,
                            secret_sealed: row.try_get("secret_sealed")?,
                        });
                    }
                }
                Ok(claimed)
            }

            async fn finish_delivery_attempt(
                &self,
                id: $crate::ids::DeliveryId,
                claimed_until: chrono::DateTime<chrono::Utc>,
                o: &$crate::store::webhooks::AttemptOutcome<'_>,
            ) -> Result<bool, $crate::store::StoreError> {
                let updated = sqlx::query(
                    "UPDATE webhook_deliveries SET state = $1, last_status = $2, \
                     last_error = $3, next_attempt_at = $4, updated_at = $5 \
                     WHERE id = $6 AND state = 'pending' AND next_attempt_at = $7",
                )
                .bind(o.state.as_str())
                .bind(o.last_status)
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
pub(crate) use impl_webhook_store;
