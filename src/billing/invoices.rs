//! Issuing and reading invoices: the account's completed sessions of a
//! month, each priced by its receipt, written with the tenant's next number
//! in one transaction, audited, then announced as `invoice.issued`.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use super::invoice::{BillTo, BillingPeriod, InvoiceDocument, InvoiceError, build_invoice};
use super::receipt::{OperatorDetails, Receipt};
use super::service::{BillingError, BillingService};
use crate::audit::{ActorKind, AuditError, AuditEvent, AuditSink, Outcome};
use crate::clock::Environment;
use crate::ids::{AccountId, InvoiceId, TenantId};
use crate::money::Money;
use crate::notify::{EventType, Notifier};
use crate::paging::Cursor;
use crate::store::invoices::{InvoiceQuery, NewInvoice, StoredInvoice};
use crate::store::{Store, StoreError};
use crate::tokens::service::Caller;

pub const MAX_PAGE: u32 = 100;

#[derive(Debug, thiserror::Error)]
pub enum InvoiceServiceError {
    #[error("account_id: no such account")]
    UnknownAccount,
    #[error("period: the month has not ended yet")]
    PeriodOpen,
    #[error("period: this account has an invoice for this month")]
    Exists,
    #[error(transparent)]
    Invoice(#[from] InvoiceError),
    #[error("invoice: not found")]
    NotFound,
    #[error(transparent)]
    Billing(#[from] BillingError),
    #[error(transparent)]
    Store(StoreError),
    #[error(transparent)]
    Audit(#[from] AuditError),
}

impl From<StoreError> for InvoiceServiceError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => InvoiceServiceError::NotFound,
            e => InvoiceServiceError::Store(e),
        }
    }
}

/// An invoice as issued.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct InvoiceView {
    #[schema(value_type = String)]
    pub id: InvoiceId,
    /// Gapless per tenant.
    pub number: String,
    pub issued_at: DateTime<Utc>,
    #[serde(flatten)]
    pub document: InvoiceDocument,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct InvoicePage {
    pub data: Vec<InvoiceView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

#[derive(Serialize)]
struct InvoiceIssued<'a> {
    invoice_id: String,
    number: &'a str,
    account_id: String,
    period: &'a str,
    lines: usize,
    total_incl_vat: Money,
    issued_at: DateTime<Utc>,
}

pub struct InvoiceService {
    store: Arc<dyn Store>,
    billing: Arc<BillingService>,
    operator: OperatorDetails,
    number_prefix: String,
    audit: Arc<dyn AuditSink>,
    notifier: Arc<dyn Notifier>,
    env: Environment,
}

impl InvoiceService {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        store: Arc<dyn Store>,
        billing: Arc<BillingService>,
        operator: OperatorDetails,
        number_prefix: String,
        audit: Arc<dyn AuditSink>,
        notifier: Arc<dyn Notifier>,
        env: Environment,
    ) -> Self {
        Self {
            store,
            billing,
            operator,
            number_prefix,
            audit,
            notifier,
            env,
        }
    }

    /// The invoice of `account` for a month that has ended: its sessions
    /// and, for a fleet, its drivers' sessions not yet on an invoice,
    /// including any that ended earlier but were settled after that
    /// month's invoice was issued.
    pub async fn issue(
        &self,
        caller: &Caller,
        account: AccountId,
        period: BillingPeriod,
    ) -> Result<InvoiceView, InvoiceServiceError> {
        let now = self.env.clock.now();
        let account = match self.store.account(caller.tenant, account).await {
            Ok(a) => a,
            Err(StoreError::NotFound) => return Err(InvoiceServiceError::UnknownAccount),
            Err(e) => return Err(e.into()),
        };
        if period.end() > now {
            return Err(InvoiceServiceError::PeriodOpen);
        }
        if self.exists(caller.tenant, account.id, period).await? {
            return Err(InvoiceServiceError::Exists);
        }
        let sessions = self
            .store
            .uninvoiced_sessions(caller.tenant, account.id, period.end())
            .await?;
        let receipts: Vec<Receipt> = self
            .billing
            .receipts_of(&sessions)
            .await?
            .into_iter()
            .map(|done| done.receipt)
            .collect();
        let bill_to = BillTo {
            account_id: account.id,
            name: account.name.clone(),
            email: account.email.clone(),
        };
        let document = match build_invoice(period, bill_to, self.operator.clone(), &receipts) {
            Ok(document) => document,
            // Issued by a request that committed since we looked.
            Err(InvoiceError::NothingToInvoice)
                if self.exists(caller.tenant, account.id, period).await? =>
            {
                return Err(InvoiceServiceError::Exists);
            }
            Err(e) => return Err(e.into()),
        };
        let text = serde_json::to_string(&document).map_err(|_| StoreError::Internal)?;
        let ids: Vec<_> = sessions.iter().map(|s| s.id).collect();
        let stored = match self
            .store
            .issue_invoice(&NewInvoice {
                id: InvoiceId::generate(),
                tenant: caller.tenant,
                account: account.id,
                period: &document.period,
                currency: document.currency.code(),
                total_incl_vat: document.total_incl_vat.value,
                document: &text,
                issued_at: now,
                issued_by: &caller.actor_id,
                number_prefix: &self.number_prefix,
                sessions: &ids,
            })
            .await
        {
            Ok(stored) => stored,
            // Another node issued it (or took one of its sessions) first.
            Err(StoreError::Conflict(_)) => return Err(InvoiceServiceError::Exists),
            Err(e) => return Err(e.into()),
        };
        self.audit
            .record(AuditEvent {
                event_type: "invoice.issue".into(),
                at: now,
                actor_kind: caller.actor_kind,
                actor_id: caller.actor_id.clone(),
                tenant: Some(caller.tenant),
                outcome: Outcome::Success,
                origin: caller.origin.clone(),
                resource: Some(format!("invoice:{}:{}", stored.id, stored.number)),
                request_id: caller.request_id.clone(),
                reason: None,
            })
            .await?;
        let data = InvoiceIssued {
            invoice_id: stored.id.to_string(),
            number: &stored.number,
            account_id: account.id.to_string(),
            period: &document.period,
            lines: document.lines.len(),
            total_incl_vat: document.total_incl_vat,
            issued_at: stored.issued_at,
        };
        if let Some(event) = crate::notify::events::tenant_event(
            caller.tenant,
            format!("evt_{}_issued", stored.id),
            EventType::InvoiceIssued,
            now,
            data,
        ) {
            self.notifier.notify(event).await;
        }
        Ok(InvoiceView {
            id: stored.id,
            number: stored.number,
            issued_at: stored.issued_at,
            document,
        })
    }

    /// Issues every invoice of `period` not issued yet, for every tenant:
    /// the monthly run. Safe on every node at once: an invoice another node
    /// issued first is skipped. Returns how many this call issued.
    pub async fn run_month(&self, period: BillingPeriod) -> Result<usize, InvoiceServiceError> {
        let payers = self.store.billable_accounts(period.end()).await?;
        let mut issued = 0;
        for (tenant, account) in payers {
            let system = Caller {
                tenant,
                actor_kind: ActorKind::System,
                actor_id: "invoice-run".into(),
                origin: None,
                request_id: None,
            };
            match self.issue(&system, account, period).await {
                Ok(_) => issued += 1,
                Err(InvoiceServiceError::Exists)
                | Err(InvoiceServiceError::Invoice(InvoiceError::NothingToInvoice)) => {}
                // One account's failure (say, a tariff version gone) must not
                // hold up the others; the next run tries again.
                Err(e) => tracing::warn!(error = %e, %account, "invoice not issued"),
            }
        }
        Ok(issued)
    }

    async fn exists(
        &self,
        tenant: TenantId,
        account: AccountId,
        period: BillingPeriod,
    ) -> Result<bool, InvoiceServiceError> {
        let found = self
            .store
            .invoices_page(&InvoiceQuery {
                tenant,
                account: Some(account),
                period: Some(period.to_string()),
                after: None,
                limit: 1,
            })
            .await?;
        Ok(!found.is_empty())
    }

    pub async fn get(
        &self,
        tenant: TenantId,
        id: InvoiceId,
    ) -> Result<InvoiceView, InvoiceServiceError> {
        view(self.store.invoice(tenant, id).await?)
    }

    /// A page of the tenant's invoices, oldest first.
    pub async fn list(&self, query: InvoiceQuery) -> Result<InvoicePage, InvoiceServiceError> {
        let limit = query.limit.clamp(1, MAX_PAGE);
        let mut rows = self
            .store
            .invoices_page(&InvoiceQuery {
                limit: limit + 1,
                ..query
            })
            .await?;
        let more = rows.len() > limit as usize;
        rows.truncate(limit as usize);
        let next_cursor = rows.last().filter(|_| more).map(|i| {
            Cursor {
                created_at: i.issued_at,
                id: i.id,
            }
            .encode()
        });
        Ok(InvoicePage {
            data: rows.into_iter().map(view).collect::<Result<_, _>>()?,
            next_cursor,
        })
    }
}

fn view(stored: StoredInvoice) -> Result<InvoiceView, InvoiceServiceError> {
    let document: InvoiceDocument =
        serde_json::from_str(&stored.document).map_err(|_| StoreError::Internal)?;
    Ok(InvoiceView {
        id: stored.id,
        number: stored.number,
        issued_at: stored.issued_at,
        document,
    })
}

/// The monthly run on every node: after a month ends, its invoices are
/// issued within `every`.
pub async fn run(
    service: Arc<InvoiceService>,
    every: std::time::Duration,
    shutdown: tokio_util::sync::CancellationToken,
) {
    loop {
        let last_month = BillingPeriod::containing(service.env.clock.now()).previous();
        match service.run_month(last_month).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(issued = n, period = %last_month, "invoices issued"),
            Err(e) => tracing::warn!(error = %e, "the invoice run could not run now"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
    }
}
