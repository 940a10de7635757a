//! Billing on top of the store: receipts, the charging history and the
//! accounting exports. This is the one module of `billing` that reads
//! through the store's ports (never SQL); the figures themselves come from
//! the pure modules beside it.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use super::cdr::{Cdr, CdrInput, build_cdr, site_of};
use super::exports::{Grouping, Revenue, payments_csv, revenue, sessions_csv};
use super::location::Locations;
use super::pricing::MeterReading;
use super::receipt::{
    CardSummary, OperatorDetails, Receipt, ReceiptError, ReceiptInput, ReceiptRefund,
    build_receipt, parse_receipt_id,
};
use super::tariff::DatedTariff;
use crate::audit::{AuditError, AuditEvent, AuditSink, Outcome};
use crate::clock::Environment;
use crate::ids::{PaymentSessionId, TenantId};
use crate::money::Money;
use crate::payments::service::SessionView;
use crate::payments::session::{IntentKind, IntentState, PaymentSession, SessionStatus};
use crate::payments::tariffs::{TariffBook, TariffBookError};
use crate::store::billing::{MovementQuery, PaymentMovement, SessionQuery};
use crate::store::payments::MAX_BATCH;
use crate::store::{Store, StoreError};
use crate::tokens::service::Caller;

/// Where the tariff version a session was priced with is found. The
/// deployment's catalog today; a per-tenant book of published versions
/// plugs in here without touching the receipt.
#[async_trait::async_trait]
pub trait TariffSource: Send + Sync {
    /// Exactly this version, or `None` when it is not available here.
    async fn tariff_version(
        &self,
        tenant: TenantId,
        id: &str,
        version: u32,
    ) -> Result<Option<DatedTariff>, StoreError>;
}

#[async_trait::async_trait]
impl TariffSource for TariffBook {
    async fn tariff_version(
        &self,
        tenant: TenantId,
        id: &str,
        version: u32,
    ) -> Result<Option<DatedTariff>, StoreError> {
        match self.dated_version(tenant, id, version).await {
            Ok(tariff) => Ok(Some(tariff)),
            Err(TariffBookError::NotFound) => Ok(None),
            Err(TariffBookError::Store(e)) => Err(e),
            // A stored version that no longer parses is a fault of ours.
            Err(_) => Err(StoreError::Internal),
        }
    }
}

/// Largest history page.
pub const MAX_PAGE: u32 = 100;
pub const DEFAULT_PAGE: u32 = 50;
/// Most rows (sessions, or money movements) one export may hold; a longer
/// period must be split.
pub const MAX_EXPORT_ROWS: usize = 10_000;
/// Longest period one export may cover.
pub const MAX_EXPORT_DAYS: i64 = 366;
const EXPORT_PAGE: u32 = 500;

#[derive(Debug, thiserror::Error)]
pub enum BillingError {
    #[error("not found")]
    NotFound,
    #[error(transparent)]
    Receipt(#[from] ReceiptError),
    #[error("more than {MAX_EXPORT_ROWS} rows: export a shorter period")]
    TooLarge,
    #[error("the export could not be written")]
    Encode,
    #[error(
        "site {0:?} is not described in billing.locations; an OCPI CDR needs its address and coordinates"
    )]
    LocationUnknown(String),
    #[error("internal error")]
    Internal,
    #[error(transparent)]
    Store(StoreError),
    #[error(transparent)]
    Audit(#[from] AuditError),
}

impl From<StoreError> for BillingError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => BillingError::NotFound,
            other => BillingError::Store(other),
        }
    }
}

/// A completed session's receipt and what it was made from.
pub(crate) struct Completed {
    pub receipt: Receipt,
    pub readings: Vec<MeterReading>,
    pub tariff: DatedTariff,
}

/// Where the next history page starts.
pub type HistoryCursor = crate::paging::Cursor<PaymentSessionId>;

/// One page of a tenant's charging history, oldest first.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct HistoryPage {
    pub data: Vec<SessionView>,
    /// Pass as `cursor` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// What an export covers: sessions started in `[from, to)` (for the
/// payments export, captures, refunds and top-ups that succeeded in it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Period {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
}

pub struct BillingService {
    store: Arc<dyn Store>,
    tariffs: Arc<dyn TariffSource>,
    operator: OperatorDetails,
    locations: Locations,
    audit: Arc<dyn AuditSink>,
    env: Environment,
}

impl BillingService {
    pub fn new(
        store: Arc<dyn Store>,
        tariffs: Arc<dyn TariffSource>,
        operator: OperatorDetails,
        locations: Locations,
        audit: Arc<dyn AuditSink>,
        env: Environment,
    ) -> Self {
        Self {
            store,
            tariffs,
            operator,
            locations,
            audit,
            env,
        }
    }

    /// The receipt `rcpt_<session>` of a completed session of `tenant`.
    pub async fn receipt(&self, tenant: TenantId, id: &str) -> Result<Receipt, BillingError> {
        let session_id = parse_receipt_id(id).ok_or(BillingError::NotFound)?;
        let session = self.store.payment_session(tenant, session_id).await?;
        Ok(self.receipt_of(&session).await?.receipt)
    }

    /// A completed session's receipt, with what it was made from.
    pub(crate) async fn receipt_of(
        &self,
        session: &PaymentSession,
    ) -> Result<Completed, BillingError> {
        let mut one = self.receipts_of(std::slice::from_ref(session)).await?;
        one.pop().ok_or(BillingError::Internal)
    }

    /// Completed sessions' receipts, in the sessions' order. Read in batches
    /// of [`MAX_BATCH`]: one query each for the readings, the refunds and
    /// the cards of a batch, so an export does not cost three queries a
    /// session.
    pub(crate) async fn receipts_of(
        &self,
        sessions: &[PaymentSession],
    ) -> Result<Vec<Completed>, BillingError> {
        let mut out = Vec::with_capacity(sessions.len());
        let mut tariffs: HashMap<(TenantId, String, u32), Option<DatedTariff>> = HashMap::new();
        for batch in sessions.chunks(MAX_BATCH) {
            if let Some(open) = batch.iter().find(|s| s.status != SessionStatus::Completed) {
                return Err(ReceiptError::NotCompleted(open.status).into());
            }
            let ids: Vec<PaymentSessionId> = batch.iter().map(|s| s.id).collect();
            let mut readings: HashMap<PaymentSessionId, Vec<MeterReading>> = HashMap::new();
            for (id, r) in self.store.meter_readings_of(&ids).await? {
                readings
                    .entry(id)
                    .or_default()
                    .push(MeterReading::new(r.at, r.energy_wh));
            }
            let mut refunds: HashMap<PaymentSessionId, Vec<(i64, DateTime<Utc>)>> = HashMap::new();
            for i in self.store.payment_intents_of(&ids).await? {
                if i.kind == IntentKind::Refund && i.state == IntentState::Succeeded {
                    refunds
                        .entry(i.session)
                        .or_default()
                        .push((i.amount, i.updated_at));
                }
            }
            let cards = self.cards_of(batch).await?;
            for session in batch {
                let key = (
                    session.tenant,
                    session.tariff_id.clone(),
                    session.tariff_version,
                );
                let tariff = match tariffs.get(&key) {
                    Some(t) => t.clone(),
                    None => {
                        let t = self
                            .tariffs
                            .tariff_version(
                                session.tenant,
                                &session.tariff_id,
                                session.tariff_version,
                            )
                            .await?;
                        tariffs.insert(key, t.clone());
                        t
                    }
                };
                let readings = readings.remove(&session.id).unwrap_or_default();
                // Brand and last four only; a token deleted since shows neither.
                let card = cards
                    .get(&(session.tenant, session.token.clone()))
                    .cloned()
                    .unwrap_or_else(|| CardSummary::new("card", ""));
                let refunds = refunds
                    .remove(&session.id)
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(amount, at)| ReceiptRefund {
                        amount: Money::new(amount, session.hold.currency),
                        at,
                    })
                    .collect();
                let receipt = build_receipt(ReceiptInput {
                    session,
                    readings: &readings,
                    tariff: tariff.as_ref().map(|t| &t.tariff),
                    card,
                    refunds,
                    operator: self.operator.clone(),
                })?;
                // A receipt exists only for the session's own tariff version.
                let tariff = tariff.ok_or(BillingError::Internal)?;
                out.push(Completed {
                    receipt,
                    readings,
                    tariff,
                });
            }
        }
        Ok(out)
    }

    /// The card summaries of a batch's tokens, by tenant and token.
    async fn cards_of(
        &self,
        batch: &[PaymentSession],
    ) -> Result<HashMap<(TenantId, String), CardSummary>, BillingError> {
        let mut wanted: HashMap<TenantId, Vec<String>> = HashMap::new();
        for s in batch {
            let tokens = wanted.entry(s.tenant).or_default();
            if !tokens.contains(&s.token) {
                tokens.push(s.token.clone());
            }
        }
        let mut cards = HashMap::new();
        for (tenant, tokens) in wanted {
            for t in self.store.tokens_of(tenant, &tokens).await? {
                cards.insert(
                    (tenant, t.token.clone()),
                    CardSummary::new(&t.brand, &t.last4),
                );
            }
        }
        Ok(cards)
    }

    /// One page of history.
    pub async fn history(&self, query: SessionQuery) -> Result<HistoryPage, BillingError> {
        let limit = query.limit.clamp(1, MAX_PAGE);
        // One more than asked says whether another page follows.
        let mut rows = self
            .store
            .payment_sessions_page(&SessionQuery {
                limit: limit + 1,
                ..query
            })
            .await?;
        let more = rows.len() > limit as usize;
        rows.truncate(limit as usize);
        let next_cursor = rows.last().filter(|_| more).map(|s| {
            HistoryCursor {
                created_at: s.created_at,
                id: s.id,
            }
            .encode()
        });
        Ok(HistoryPage {
            data: rows.iter().map(|s| SessionView::of(s, None)).collect(),
            next_cursor,
        })
    }

    /// Every session of the tenant started in the period, oldest first.
    async fn sessions_in(
        &self,
        tenant: TenantId,
        period: Period,
        status: Option<SessionStatus>,
    ) -> Result<Vec<PaymentSession>, BillingError> {
        let mut out = Vec::new();
        let mut after = None;
        loop {
            let page = self
                .store
                .payment_sessions_page(&SessionQuery {
                    tenant,
                    from: Some(period.from),
                    to: Some(period.to),
                    status,
                    evse_id: None,
                    created_by: None,
                    account: None,
                    after,
                    limit: EXPORT_PAGE,
                })
                .await?;
            let full = page.len() == EXPORT_PAGE as usize;
            after = page.last().map(|s| (s.created_at, s.id));
            out.extend(page);
            if out.len() > MAX_EXPORT_ROWS {
                return Err(BillingError::TooLarge);
            }
            if !full {
                return Ok(out);
            }
        }
    }

    /// The accounting CSV: one row per session started in the period.
    pub async fn sessions_csv(
        &self,
        caller: &Caller,
        period: Period,
    ) -> Result<Vec<u8>, BillingError> {
        let sessions = self.sessions_in(caller.tenant, period, None).await?;
        let csv = sessions_csv(&sessions).map_err(|_| BillingError::Encode)?;
        self.audit_export(caller, "sessions.csv", sessions.len())
            .await?;
        Ok(csv)
    }

    /// Every capture, refund and wallet top-up of the tenant that succeeded
    /// in the period, oldest first; bounded like the sessions.
    async fn movements_in(
        &self,
        tenant: TenantId,
        period: Period,
    ) -> Result<Vec<PaymentMovement>, BillingError> {
        let mut out: Vec<PaymentMovement> = Vec::new();
        loop {
            let page = self
                .store
                .payment_movements_page(&MovementQuery {
                    tenant,
                    from: period.from,
                    to: period.to,
                    after: out.last().map(|m| (m.at, m.acquirer_key.clone())),
                    limit: EXPORT_PAGE,
                })
                .await?;
            let full = page.len() == EXPORT_PAGE as usize;
            out.extend(page);
            if out.len() > MAX_EXPORT_ROWS {
                return Err(BillingError::TooLarge);
            }
            if !full {
                return Ok(out);
            }
        }
    }

    /// The payments CSV: one row per capture, refund or wallet top-up that
    /// succeeded in the period, whenever its session started.
    pub async fn payments_csv(
        &self,
        caller: &Caller,
        period: Period,
    ) -> Result<Vec<u8>, BillingError> {
        let movements = self.movements_in(caller.tenant, period).await?;
        let csv = payments_csv(&movements).map_err(|_| BillingError::Encode)?;
        self.audit_export(caller, "payments.csv", movements.len())
            .await?;
        Ok(csv)
    }

    /// OCPI CDRs of the sessions completed among those started in the period.
    pub async fn cdrs(&self, caller: &Caller, period: Period) -> Result<Vec<Cdr>, BillingError> {
        let sessions = self
            .sessions_in(caller.tenant, period, Some(SessionStatus::Completed))
            .await?;
        let mut located = Vec::with_capacity(sessions.len());
        for s in &sessions {
            let location = self
                .locations
                .of_evse(&s.evse_id)
                .ok_or_else(|| BillingError::LocationUnknown(site_of(&s.evse_id).to_owned()))?;
            located.push(location);
        }
        let completed = self.receipts_of(&sessions).await?;
        let mut cdrs = Vec::with_capacity(sessions.len());
        for ((s, location), done) in sessions.iter().zip(located).zip(completed) {
            let cdr = build_cdr(CdrInput {
                session: s,
                receipt: &done.receipt,
                readings: &done.readings,
                tariff: &done.tariff,
                location,
            })
            .map_err(|_| BillingError::Encode)?;
            cdrs.push(cdr);
        }
        self.audit_export(caller, "cdrs", cdrs.len()).await?;
        Ok(cdrs)
    }

    /// Money taken in the period, by site, EVSE or day.
    pub async fn revenue(
        &self,
        caller: &Caller,
        period: Period,
        group: Grouping,
    ) -> Result<Revenue, BillingError> {
        let sessions = self
            .sessions_in(caller.tenant, period, Some(SessionStatus::Completed))
            .await?;
        let out = revenue(&sessions, group);
        self.audit_export(caller, "revenue", sessions.len()).await?;
        Ok(out)
    }

    /// Exports take a tenant's money figures out in bulk: recorded before
    /// they are answered, and refused if that fails.
    async fn audit_export(
        &self,
        caller: &Caller,
        what: &str,
        rows: usize,
    ) -> Result<(), AuditError> {
        self.audit
            .record(
                AuditEvent {
                    event_type: "billing.export".into(),
                    at: self.env.clock.now(),
                    actor_kind: caller.actor_kind,
                    actor_id: caller.actor_id.clone(),
                    tenant: Some(caller.tenant),
                    outcome: Outcome::Success,
                    origin: caller.origin.clone(),
                    resource: None,
                    request_id: caller.request_id.clone(),
                    reason: None,
                }
                .with_resource(format!("export:{what}"))
                .with_reason(format!("rows={rows}")),
            )
            .await
    }
}
