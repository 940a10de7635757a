//! Issued invoices and their gapless numbers. Portable SQL, expanded for
//! each adapter.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::StoreError;
use crate::ids::{AccountId, InvoiceId, PaymentSessionId, TenantId};
use crate::payments::session::PaymentSession;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredInvoice {
    pub id: InvoiceId,
    pub tenant: TenantId,
    pub seq: i64,
    pub number: String,
    pub account: AccountId,
    pub period: String,
    pub currency: String,
    pub total_incl_vat: i64,
    pub document: String,
    pub issued_at: DateTime<Utc>,
    pub issued_by: String,
}

/// An invoice to write; its number is given in the same transaction.
pub struct NewInvoice<'a> {
    pub id: InvoiceId,
    pub tenant: TenantId,
    pub account: AccountId,
    pub period: &'a str,
    pub currency: &'a str,
    pub total_incl_vat: i64,
    pub document: &'a str,
    pub issued_at: DateTime<Utc>,
    pub issued_by: &'a str,
    /// The printed number is this followed by the sequence, six digits at least.
    pub number_prefix: &'a str,
    pub sessions: &'a [PaymentSessionId],
}

#[derive(Debug, Clone)]
pub struct InvoiceQuery {
    pub tenant: TenantId,
    pub account: Option<AccountId>,
    pub period: Option<String>,
    /// The last (issued_at, id) of the previous page.
    pub after: Option<(DateTime<Utc>, InvoiceId)>,
    pub limit: u32,
}

#[async_trait]
pub trait InvoiceStore: Send + Sync {
    /// Completed sessions with a capture, billed to the account or to a
    /// driver of it (a fleet), that ended before `before` and are on no
    /// invoice yet (a session settled late joins the next one); oldest first.
    async fn uninvoiced_sessions(
        &self,
        tenant: TenantId,
        account: AccountId,
        before: DateTime<Utc>,
    ) -> Result<Vec<PaymentSession>, StoreError>;
    /// Who is billed for sessions that ended before `before` and are on no
    /// invoice: the fleet of a driver who belongs to one, else the driver.
    async fn billable_accounts(
        &self,
        before: DateTime<Utc>,
    ) -> Result<Vec<(TenantId, AccountId)>, StoreError>;
    /// Takes the tenant's next number and writes the invoice and its lines,
    /// all or nothing. `Conflict` if the account has an invoice for the
    /// period or a session is on another invoice (a race): nothing is
    /// written and no number is used.
    async fn issue_invoice(&self, invoice: &NewInvoice<'_>) -> Result<StoredInvoice, StoreError>;
    async fn invoice(&self, tenant: TenantId, id: InvoiceId) -> Result<StoredInvoice, StoreError>;
    /// Oldest first.
    async fn invoices_page(&self, query: &InvoiceQuery) -> Result<Vec<StoredInvoice>, StoreError>;
}

macro_rules! impl_invoice_store {
    ($store:ty, $row:ty) => {
        mod invoice_rows {
            use sqlx::Row;

            use $crate::store::StoreError;
            use $crate::store::invoices::StoredInvoice;

            pub(super) const COLUMNS: &str = "id, tenant_id, seq, number, account_id, period, \
                currency, total_incl_vat, document, issued_at, issued_by";

            pub(super) fn invoice(row: &$row) -> Result<StoredInvoice, StoreError> {
                Ok(StoredInvoice {
                    id: row.try_get("id")?,
                    tenant: row.try_get("tenant_id")?,
                    seq: row.try_get("seq")?,
                    number: row.try_get("number")?,
                    account: row.try_get("account_id")?,
                    period: row.try_get("period")?,
                    currency: row.try_get("currency")?,
                    total_incl_vat: row.try_get("total_incl_vat")?,
                    document: row.try_get("document")?,
                    issued_at: row.try_get("issued_at")?,
                    issued_by: row.try_get("issued_by")?,
                })
            }
        }

        #[async_trait::async_trait]
        impl $crate::store::invoices::InvoiceStore for $store {
            async fn uninvoiced_sessions(
                &self,
                tenant: $crate::ids::TenantId,
                account: $crate::ids::AccountId,
                before: chrono::DateTime<chrono::Utc>,
            ) -> Result<Vec<$crate::payments::session::PaymentSession>, $crate::store::StoreError>
            {
                let rows = sqlx::query(concat!(
                    "SELECT ",
                    $crate::store::payments::PAYMENT_SESSION_COLUMNS!(),
                    " FROM payment_sessions s WHERE s.tenant_id = $1 \
                      AND s.status = 'completed' AND s.captured_value > 0 \
                      AND s.ended_at < $2 \
                      AND (s.account_id = $3 OR s.account_id IN \
                           (SELECT a.id FROM accounts a WHERE a.fleet_id = $3 AND a.tenant_id = $1)) \
                      AND NOT EXISTS (SELECT 1 FROM invoice_lines l WHERE l.session_id = s.id) \
                      ORDER BY s.ended_at, s.id"
                ))
                .bind(tenant)
                .bind(before)
                .bind(account)
                .fetch_all(&self.pool)
                .await?;
                rows.iter().map(payment_rows::session).collect()
            }

            async fn billable_accounts(
                &self,
                before: chrono::DateTime<chrono::Utc>,
            ) -> Result<Vec<($crate::ids::TenantId, $crate::ids::AccountId)>, $crate::store::StoreError>
            {
                use sqlx::Row;
                let rows = sqlx::query(
                    "SELECT DISTINCT a.tenant_id, COALESCE(a.fleet_id, a.id) AS payer \
                     FROM payment_sessions s JOIN accounts a ON a.id = s.account_id \
                     WHERE s.status = 'completed' AND s.captured_value > 0 \
                       AND s.ended_at < $1 \
                       AND NOT EXISTS (SELECT 1 FROM invoice_lines l WHERE l.session_id = s.id) \
                     ORDER BY a.tenant_id, payer",
                )
                .bind(before)
                .fetch_all(&self.pool)
                .await?;
                rows.iter()
                    .map(|r| Ok((r.try_get("tenant_id")?, r.try_get("payer")?)))
                    .collect()
            }

            async fn issue_invoice(
                &self,
                n: &$crate::store::invoices::NewInvoice<'_>,
            ) -> Result<$crate::store::invoices::StoredInvoice, $crate::store::StoreError> {
                let mut tx = self.pool.begin().await?;
                // The row lock on the counter orders concurrent issuers of a
                // tenant; a rollback gives the number back.
                let seq: i64 = sqlx::query_scalar(
                    "INSERT INTO invoice_counters (tenant_id, last_seq) VALUES ($1, 1) \
                     ON CONFLICT (tenant_id) DO UPDATE SET last_seq = invoice_counters.last_seq + 1 \
                     RETURNING last_seq",
                )
                .bind(n.tenant)
                .fetch_one(&mut *tx)
                .await?;
                let stored = $crate::store::invoices::StoredInvoice {
                    id: n.id,
                    tenant: n.tenant,
                    seq,
                    number: $crate::billing::invoice::invoice_number(n.number_prefix, seq),
                    account: n.account,
                    period: n.period.to_owned(),
                    currency: n.currency.to_owned(),
                    total_incl_vat: n.total_incl_vat,
                    document: n.document.to_owned(),
                    issued_at: n.issued_at,
                    issued_by: n.issued_by.to_owned(),
                };
                sqlx::query(&format!(
                    "INSERT INTO invoices ({}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
                    invoice_rows::COLUMNS
                ))
                .bind(stored.id)
                .bind(stored.tenant)
                .bind(stored.seq)
                .bind(&stored.number)
                .bind(stored.account)
                .bind(&stored.period)
                .bind(&stored.currency)
                .bind(stored.total_incl_vat)
                .bind(&stored.document)
                .bind(stored.issued_at)
                .bind(&stored.issued_by)
                .execute(&mut *tx)
                .await?;
                for session in n.sessions {
                    sqlx::query("INSERT INTO invoice_lines (session_id, invoice_id) VALUES ($1, $2)")
                        .bind(*session)
                        .bind(stored.id)
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                Ok(stored)
            }

            async fn invoice(
                &self,
                tenant: $crate::ids::TenantId,
                id: $crate::ids::InvoiceId,
            ) -> Result<$crate::store::invoices::StoredInvoice, $crate::store::StoreError> {
                let row = sqlx::query(&format!(
                    "SELECT {} FROM invoices WHERE id = $1 AND tenant_id = $2",
                    invoice_rows::COLUMNS
                ))
                .bind(id)
                .bind(tenant)
                .fetch_one(&self.pool)
                .await?;
                invoice_rows::invoice(&row)
            }

            async fn invoices_page(
                &self,
                q: &$crate::store::invoices::InvoiceQuery,
            ) -> Result<Vec<$crate::store::invoices::StoredInvoice>, $crate::store::StoreError>
            {
                let (after_at, after_id) = match q.after {
                    Some((at, id)) => (Some(at), Some(id)),
                    None => (None, None),
                };
                let rows = sqlx::query(&format!(
                    "SELECT {} FROM invoices WHERE tenant_id = $1 \
                     AND ($2 IS NULL OR account_id = $2) \
                     AND ($3 IS NULL OR period = $3) \
                     AND ($4 IS NULL OR issued_at > $4 OR (issued_at = $4 AND id > $5)) \
                     ORDER BY issued_at, id LIMIT $6",
                    invoice_rows::COLUMNS
                ))
                .bind(q.tenant)
                .bind(q.account)
                .bind(q.period.as_deref())
                .bind(after_at)
                .bind(after_id)
                .bind(i64::from(q.limit))
                .fetch_all(&self.pool)
                .await?;
                rows.iter().map(invoice_rows::invoice).collect()
            }
        }
    };
}
pub(crate) use impl_invoice_store;
