//! The wallet as an acquirer: a session paid from a wallet holds, raises,
//! captures, releases and refunds on the ledger through the same
//! [`Acquirer`] calls, with the same idempotency keys, as one paid by card.
//! So intents, recovery and their exactly-once rules apply unchanged.
//!
//! A wallet hold names an account, not a card: it is placed with
//! [`WalletAcquirer::reserve`], and no card is ever opened for it.

use std::sync::Arc;

use async_trait::async_trait;

use super::{LedgerRefusal, WALLET_ACQUIRER, WalletHold, WalletHoldState, hold_id};
use crate::clock::Clock;
use crate::ids::AccountId;
use crate::money::Money;
use crate::payments::connectors::{
    Acquirer, AcquirerError, Authorization, AuthorizeRequest, Capture, CaptureRequest, DeclineCode,
    HoldLookup, HoldState, HoldStatus, IncrementRequest, InvalidReason, Refund, RefundRequest,
    Void, VoidRequest,
};
use crate::store::{Store, StoreError};

pub struct WalletAcquirer {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
}

impl WalletAcquirer {
    pub fn new(store: Arc<dyn Store>, clock: Arc<dyn Clock>) -> Self {
        Self { store, clock }
    }

    /// Reserves `amount` of the account's available balance for the session
    /// `reference`. Short of it: declined `insufficient_funds`.
    pub async fn reserve(
        &self,
        idempotency_key: &str,
        amount: Money,
        reference: &str,
        account: AccountId,
    ) -> Result<Authorization, AcquirerError> {
        match self.store.wallet(account).await {
            Ok(w) if w.currency == amount.currency => {}
            Ok(_) => return Err(AcquirerError::Invalid(InvalidReason::CurrencyMismatch)),
            Err(StoreError::NotFound) => {
                return Err(AcquirerError::Invalid(InvalidReason::UnknownReference));
            }
            Err(_) => return Err(AcquirerError::Unavailable),
        }
        let hold = self
            .store
            .reserve_wallet(
                account,
                &hold_id(reference),
                reference,
                idempotency_key,
                amount.value,
                self.clock.now(),
            )
            .await;
        let hold = ledger(hold)?;
        Ok(Authorization {
            reference: hold.id.clone(),
            authorized: Money::new(hold.amount, hold.currency),
            authorization_code: None,
            incremental: true,
        })
    }
}

/// A store failure leaves the outcome unknown (the commit may have landed):
/// recovery asks [`Acquirer::find_hold`] later.
fn ledger(
    result: Result<Result<WalletHold, LedgerRefusal>, StoreError>,
) -> Result<WalletHold, AcquirerError> {
    match result {
        Ok(Ok(hold)) => Ok(hold),
        Ok(Err(refusal)) => Err(refused(refusal)),
        Err(_) => Err(AcquirerError::Unavailable),
    }
}

fn refused(refusal: LedgerRefusal) -> AcquirerError {
    match refusal {
        LedgerRefusal::InsufficientFunds => AcquirerError::Declined(DeclineCode::InsufficientFunds),
        LedgerRefusal::NoWallet | LedgerRefusal::UnknownHold => {
            AcquirerError::Invalid(InvalidReason::UnknownReference)
        }
        LedgerRefusal::WrongState => AcquirerError::Invalid(InvalidReason::WrongState),
        LedgerRefusal::ExceedsHold => {
            AcquirerError::Invalid(InvalidReason::CaptureExceedsAuthorization)
        }
        LedgerRefusal::ExceedsCapture => {
            AcquirerError::Invalid(InvalidReason::RefundExceedsCapture)
        }
    }
}

fn check_currency(hold: &WalletHold, amount: Money) -> Result<(), AcquirerError> {
    if hold.currency == amount.currency {
        Ok(())
    } else {
        Err(AcquirerError::Invalid(InvalidReason::CurrencyMismatch))
    }
}

#[async_trait]
impl Acquirer for WalletAcquirer {
    fn name(&self) -> &'static str {
        WALLET_ACQUIRER
    }

    fn supports_increment(&self) -> bool {
        true
    }

    /// A wallet pays for an account, never for a card: see [`WalletAcquirer::reserve`].
    async fn authorize(
        &self,
        _request: AuthorizeRequest<'_>,
    ) -> Result<Authorization, AcquirerError> {
        Err(AcquirerError::Unsupported)
    }

    async fn increment(&self, request: IncrementRequest) -> Result<Money, AcquirerError> {
        let hold = self
            .store
            .wallet_hold(Some(&request.auth_ref), None)
            .await
            .map_err(|e| match e {
                StoreError::NotFound => AcquirerError::Invalid(InvalidReason::UnknownReference),
                _ => AcquirerError::Unavailable,
            })?;
        check_currency(&hold, request.new_total)?;
        let hold = ledger(
            self.store
                .raise_wallet_hold(
                    &request.auth_ref,
                    &request.idempotency_key,
                    request.new_total.value,
                    self.clock.now(),
                )
                .await,
        )?;
        Ok(Money::new(hold.amount, hold.currency))
    }

    async fn capture(&self, request: CaptureRequest) -> Result<Capture, AcquirerError> {
        let hold = ledger(
            self.store
                .capture_wallet_hold(
                    &request.auth_ref,
                    &request.idempotency_key,
                    request.amount.value,
                    self.clock.now(),
                )
                .await,
        )?;
        Ok(Capture {
            reference: hold.id.clone(),
            captured: Money::new(hold.captured, hold.currency),
            released: Money::new(hold.amount - hold.captured, hold.currency),
        })
    }

    async fn void(&self, request: VoidRequest) -> Result<Void, AcquirerError> {
        let hold = ledger(
            self.store
                .release_wallet_hold(
                    &request.auth_ref,
                    &request.idempotency_key,
                    self.clock.now(),
                )
                .await,
        )?;
        Ok(Void {
            reference: hold.id.clone(),
            released: Money::new(hold.amount, hold.currency),
        })
    }

    async fn refund(&self, request: RefundRequest) -> Result<Refund, AcquirerError> {
        let hold = ledger(
            self.store
                .refund_wallet_hold(
                    &request.capture_ref,
                    &request.idempotency_key,
                    request.amount.value,
                    self.clock.now(),
                )
                .await,
        )?;
        Ok(Refund {
            reference: hold.id.clone(),
            refunded: request.amount,
        })
    }

    async fn find_hold(&self, lookup: HoldLookup<'_>) -> Result<Option<HoldStatus>, AcquirerError> {
        let found = match lookup {
            HoldLookup::AuthRef(id) => self.store.wallet_hold(Some(id), None).await,
            HoldLookup::Reference(r) => self.store.wallet_hold(None, Some(r)).await,
        };
        let hold = match found {
            Ok(h) => h,
            Err(StoreError::NotFound) => return Ok(None),
            Err(_) => return Err(AcquirerError::Unavailable),
        };
        let money = |v| Money::new(v, hold.currency);
        Ok(Some(HoldStatus {
            auth_ref: hold.id.clone(),
            state: match hold.state {
                WalletHoldState::Authorized => HoldState::Authorized,
                WalletHoldState::Captured => HoldState::Captured,
                WalletHoldState::Voided => HoldState::Voided,
            },
            authorized: money(hold.amount),
            captured: money(hold.captured),
            capture_ref: (hold.state == WalletHoldState::Captured).then(|| hold.id.clone()),
            refunded: money(hold.refunded),
        }))
    }
}
