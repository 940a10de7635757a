//! E-mail to the account an event concerns, next to its webhooks: the
//! receipt and a failed payment to the driver, the invoice to whom it is
//! addressed, the low wallet balance to the wallet's owner. Accounts without an address get
//! no mail. The dedupe key is derived from the event, so an event told
//! twice is mailed once.

use std::sync::Arc;

use async_trait::async_trait;
use serde::Deserialize;

use super::events::FailedStep;
use super::mail::{ReceiptSummary, Template, render};
use super::mail_queue::MailQueue;
use super::{EventType, Notifier, OutboxEvent};
use crate::ids::{AccountId, PaymentSessionId, TenantId};
use crate::money::Money;
use crate::store::{Store, StoreError};

/// Queues the webhooks through `inner`, then the e-mail.
pub struct MailingNotifier {
    inner: Arc<dyn Notifier>,
    store: Arc<dyn Store>,
    mail: Arc<MailQueue>,
}

#[derive(Deserialize)]
struct Envelope<T> {
    data: T,
}

#[derive(Deserialize)]
struct ReceiptReady {
    session_id: PaymentSessionId,
    receipt_id: String,
}

#[derive(Deserialize)]
struct PaymentFailed {
    session_id: PaymentSessionId,
    step: FailedStep,
}

#[derive(Deserialize)]
struct InvoiceIssued {
    invoice_id: String,
    number: String,
    account_id: AccountId,
    period: String,
    total_incl_vat: Money,
}

#[derive(Deserialize)]
struct LowBalance {
    account_id: AccountId,
    balance: Money,
    #[serde(rename = "low_balance_threshold")]
    threshold: Money,
}

/// Why no mail was queued for an event that should have had one.
#[derive(Debug, thiserror::Error)]
enum MailingError {
    #[error("the event body is not what its type says")]
    Body,
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Queue(#[from] super::mail_queue::MailQueueError),
}

impl MailingNotifier {
    pub fn new(inner: Arc<dyn Notifier>, store: Arc<dyn Store>, mail: Arc<MailQueue>) -> Self {
        Self { inner, store, mail }
    }

    async fn mail_for(&self, event: &OutboxEvent) -> Result<(), MailingError> {
        let tenant = event.tenant;
        match event.event_type {
            EventType::ReceiptReady => {
                let e: ReceiptReady = body(event)?;
                let session = self.store.payment_session(tenant, e.session_id).await?;
                let Some(to) = self.address(tenant, session.account).await? else {
                    return Ok(());
                };
                let last4 = self.last4(tenant, &session.token).await?;
                let summary = ReceiptSummary {
                    receipt_id: &e.receipt_id,
                    evse_id: &session.evse_id,
                    energy_wh: session.energy_wh,
                    total: session
                        .captured
                        .unwrap_or(Money::zero(session.hold.currency)),
                    ended_at: session.ended_at.unwrap_or(event.at),
                    card_last4: last4.as_deref(),
                };
                let message = render(&to, &Template::SessionCompleted(summary));
                self.queue(tenant, &message, &format!("receipt:{}", e.session_id))
                    .await
            }
            EventType::InvoiceIssued => {
                let e: InvoiceIssued = body(event)?;
                let Some(to) = self.address(tenant, Some(e.account_id)).await? else {
                    return Ok(());
                };
                let url = format!("/v1/invoices/{}", e.invoice_id);
                let message = render(
                    &to,
                    &Template::InvoiceIssued {
                        number: &e.number,
                        period: &e.period,
                        total: e.total_incl_vat,
                        url: &url,
                    },
                );
                self.queue(tenant, &message, &format!("invoice:{}", e.invoice_id))
                    .await
            }
            EventType::WalletLowBalance => {
                let e: LowBalance = body(event)?;
                let Some(to) = self.address(tenant, Some(e.account_id)).await? else {
                    return Ok(());
                };
                let message = render(
                    &to,
                    &Template::WalletLowBalance {
                        balance: e.balance,
                        threshold: e.threshold,
                    },
                );
                self.queue(tenant, &message, &event.id).await
            }
            EventType::PaymentFailed => {
                let e: PaymentFailed = body(event)?;
                let session = self.store.payment_session(tenant, e.session_id).await?;
                let Some(to) = self.address(tenant, session.account).await? else {
                    return Ok(());
                };
                let last4 = self.last4(tenant, &session.token).await?;
                let message = render(
                    &to,
                    &Template::PaymentFailed {
                        evse_id: &session.evse_id,
                        at: session.ended_at.unwrap_or(event.at),
                        step: e.step,
                        card_last4: last4.as_deref(),
                    },
                );
                self.queue(
                    tenant,
                    &message,
                    &format!("payment_failed:{}", e.session_id),
                )
                .await
            }
            EventType::SessionCompleted => Ok(()),
        }
    }

    async fn address(
        &self,
        tenant: TenantId,
        account: Option<AccountId>,
    ) -> Result<Option<String>, MailingError> {
        let Some(account) = account else {
            return Ok(None);
        };
        Ok(self.store.account(tenant, account).await?.email)
    }

    /// The last four digits of the card behind `token`; none for a
    /// wallet or a token deleted since.
    async fn last4(&self, tenant: TenantId, token: &str) -> Result<Option<String>, MailingError> {
        match self.store.token(tenant, token).await {
            Ok(t) => Ok(Some(t.last4)),
            Err(StoreError::NotFound) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    async fn queue(
        &self,
        tenant: TenantId,
        message: &super::mail::EmailMessage,
        key: &str,
    ) -> Result<(), MailingError> {
        self.mail.enqueue(tenant, message, key).await?;
        Ok(())
    }
}

fn body<T: for<'de> Deserialize<'de>>(event: &OutboxEvent) -> Result<T, MailingError> {
    serde_json::from_str::<Envelope<T>>(&event.payload)
        .map(|e| e.data)
        .map_err(|_| MailingError::Body)
}

#[async_trait]
impl Notifier for MailingNotifier {
    async fn notify(&self, event: OutboxEvent) {
        self.inner.notify(event.clone()).await;
        if let Err(error) = self.mail_for(&event).await {
            tracing::warn!(
                event.type = event.event_type.as_str(),
                event.id = %event.id,
                %error,
                "no mail queued for this event"
            );
        }
    }
}
