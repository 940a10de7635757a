//! The payment layer's handle on an acquirer: opens the card inside the
//! call, audits that before the card leaves, and checks requests that no
//! acquirer should see.

use std::sync::Arc;

use super::{
    Acquirer, AcquirerError, Authorization, AuthorizeRequest, Capture, CaptureRequest, CardSource,
    HoldLookup, HoldStatus, IncrementRequest, Refund, RefundRequest, Void, VoidRequest,
    check_idempotency_key, check_positive,
};
use crate::audit::{AuditEvent, AuditSink, Outcome};
use crate::clock::Clock;
use crate::money::Money;

#[derive(Clone)]
pub struct Connector {
    acquirer: Arc<dyn Acquirer>,
    audit: Arc<dyn AuditSink>,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for Connector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connector")
            .field("acquirer", &self.acquirer.name())
            .finish()
    }
}

impl Connector {
    pub fn new(
        acquirer: Arc<dyn Acquirer>,
        audit: Arc<dyn AuditSink>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            acquirer,
            audit,
            clock,
        }
    }

    pub fn name(&self) -> &'static str {
        self.acquirer.name()
    }

    pub fn supports_increment(&self) -> bool {
        self.acquirer.supports_increment()
    }

    /// Opens the card, records its use (fail closed), then asks for the hold.
    /// The card is dropped, and zeroized, when this returns.
    pub async fn authorize(
        &self,
        idempotency_key: &str,
        amount: Money,
        reference: &str,
        card: &dyn CardSource,
    ) -> Result<Authorization, AcquirerError> {
        check_idempotency_key(idempotency_key)?;
        check_positive(amount)?;
        let opened = card.open().await;
        let event = AuditEvent::system(
            card.audit_event_type(),
            self.clock.now(),
            if opened.is_ok() {
                Outcome::Success
            } else {
                Outcome::Failure
            },
        )
        .with_resource(card.audit_resource())
        .with_reason(format!("authorize:{}", self.acquirer.name()));
        let event = match card.audit_tenant() {
            Some(tenant) => event.with_tenant(tenant),
            None => event,
        };
        self.audit
            .record(event)
            .await
            .map_err(|_| AcquirerError::AuditUnavailable)?;
        let opened = opened?;
        self.acquirer
            .authorize(AuthorizeRequest {
                idempotency_key: idempotency_key.to_owned(),
                amount,
                card: opened.as_ref(),
                reference: reference.to_owned(),
            })
            .await
    }

    pub async fn increment(&self, request: IncrementRequest) -> Result<Money, AcquirerError> {
        check_idempotency_key(&request.idempotency_key)?;
        check_positive(request.new_total)?;
        if !self.acquirer.supports_increment() {
            return Err(AcquirerError::Unsupported);
        }
        self.acquirer.increment(request).await
    }

    pub async fn capture(&self, request: CaptureRequest) -> Result<Capture, AcquirerError> {
        check_idempotency_key(&request.idempotency_key)?;
        check_positive(request.amount)?;
        self.acquirer.capture(request).await
    }

    pub async fn void(&self, request: VoidRequest) -> Result<Void, AcquirerError> {
        check_idempotency_key(&request.idempotency_key)?;
        self.acquirer.void(request).await
    }

    pub async fn refund(&self, request: RefundRequest) -> Result<Refund, AcquirerError> {
        check_idempotency_key(&request.idempotency_key)?;
        check_positive(request.amount)?;
        self.acquirer.refund(request).await
    }

    pub async fn find_hold(
        &self,
        lookup: HoldLookup<'_>,
    ) -> Result<Option<HoldStatus>, AcquirerError> {
        self.acquirer.find_hold(lookup).await
    }
}
