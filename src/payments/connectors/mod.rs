//! Acquirer connectors: one [`Acquirer`] interface, one module per acquirer.
//!
//! A connector is the only code that hands a PAN to the outside world, and
//! [`Connector`] is the only way the payment layer reaches one: it opens the
//! card (decrypting it when it comes from the vault), records the use in the
//! audit trail before anything leaves, and drops the card when the call ends.
//!
//! Every call carries an idempotency key chosen by the caller (session id +
//! operation + attempt), so a retried call never places a second hold or
//! charges twice. Money is integer minor units throughout.

pub mod breaker;
mod card;
mod connector;
mod decline;
mod replay;
pub mod simulator;
pub mod stripe;

pub use card::{CardRef, CardSource, OpenedCard, PresentedCard};
pub use connector::Connector;
pub use decline::DeclineCode;

use async_trait::async_trait;

use crate::money::Money;

/// A pre-authorization hold on the card.
#[derive(Debug)]
pub struct AuthorizeRequest<'a> {
    pub idempotency_key: String,
    pub amount: Money,
    pub card: CardRef<'a>,
    /// Our name for the hold (a payment session id), stored at the acquirer.
    pub reference: String,
}

/// Raises a hold to `new_total` (the whole new authorized amount).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncrementRequest {
    pub idempotency_key: String,
    pub auth_ref: String,
    pub new_total: Money,
}

/// Takes `amount` (at most the authorized amount) and releases the rest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaptureRequest {
    pub idempotency_key: String,
    pub auth_ref: String,
    pub amount: Money,
}

/// Releases a hold without taking anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VoidRequest {
    pub idempotency_key: String,
    pub auth_ref: String,
}

/// Returns `amount` of a capture to the card.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundRequest {
    pub idempotency_key: String,
    pub capture_ref: String,
    pub amount: Money,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authorization {
    /// The acquirer's reference for the hold; captures and voids name it.
    pub reference: String,
    pub authorized: Money,
    /// The issuer's approval code, where the acquirer passes it on.
    pub authorization_code: Option<String>,
    /// Whether this hold can be raised with [`Acquirer::increment`].
    pub incremental: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Capture {
    /// What refunds name.
    pub reference: String,
    pub captured: Money,
    /// The part of the hold given back to the cardholder.
    pub released: Money,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Void {
    pub reference: String,
    pub released: Money,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refund {
    pub reference: String,
    pub refunded: Money,
}

/// Where a hold stands at the acquirer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HoldState {
    /// Held and not yet captured or released.
    Authorized,
    /// Captured (refunds may have followed).
    Captured,
    /// Released without capture.
    Voided,
    /// Never held: the authorization was declined or failed.
    Failed,
}

/// What the acquirer knows of a hold: how recovery learns the outcome of a
/// call whose answer was lost, before deciding whether to send it again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HoldStatus {
    /// The acquirer's reference for the hold ([`Authorization::reference`]).
    pub auth_ref: String,
    pub state: HoldState,
    /// The amount held now (after increments).
    pub authorized: Money,
    /// Zero unless captured.
    pub captured: Money,
    /// What refunds name ([`Capture::reference`]), once captured.
    pub capture_ref: Option<String>,
    /// The sum of every refund of the capture.
    pub refunded: Money,
}

/// How to find a hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HoldLookup<'a> {
    /// By the acquirer's reference, once an authorization answered.
    AuthRef(&'a str),
    /// By our reference ([`AuthorizeRequest::reference`], the payment
    /// session id), when the authorization's answer never arrived.
    Reference(&'a str),
}

/// Why a request was refused before or by the acquirer, other than a decline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvalidReason {
    /// Missing or malformed idempotency key.
    IdempotencyKey,
    /// The same key was used before for a different request.
    IdempotencyKeyReused,
    AmountNotPositive,
    /// The amount cannot be expressed in this acquirer's units for the currency.
    AmountNotRepresentable,
    CurrencyMismatch,
    CaptureExceedsAuthorization,
    RefundExceedsCapture,
    /// An increment must raise the hold.
    IncrementNotHigher,
    UnknownReference,
    /// The hold or capture is not in a state that allows this operation.
    WrongState,
    /// The acquirer refused our credentials: a configuration fault.
    Credentials,
    /// The acquirer refused the request for a reason we do not classify.
    Rejected,
    /// The acquirer answered with something we cannot read.
    BadResponse,
}

impl InvalidReason {
    pub fn code(self) -> &'static str {
        match self {
            InvalidReason::IdempotencyKey => "invalid_idempotency_key",
            InvalidReason::IdempotencyKeyReused => "idempotency_key_reused",
            InvalidReason::AmountNotPositive => "amount_not_positive",
            InvalidReason::AmountNotRepresentable => "amount_not_representable",
            InvalidReason::CurrencyMismatch => "currency_mismatch",
            InvalidReason::CaptureExceedsAuthorization => "capture_exceeds_authorization",
            InvalidReason::RefundExceedsCapture => "refund_exceeds_capture",
            InvalidReason::IncrementNotHigher => "increment_not_higher",
            InvalidReason::UnknownReference => "unknown_reference",
            InvalidReason::WrongState => "wrong_state",
            InvalidReason::Credentials => "acquirer_credentials",
            InvalidReason::Rejected => "acquirer_rejected_request",
            InvalidReason::BadResponse => "acquirer_bad_response",
        }
    }
}

impl std::fmt::Display for InvalidReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.code())
    }
}

/// What can go wrong in an acquirer call. Carries codes only: never card
/// data, never the acquirer's free text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AcquirerError {
    #[error("the card was declined: {0}")]
    Declined(DeclineCode),
    /// No answer in time; the outcome is unknown until a replay with the same key.
    #[error("the acquirer did not answer in time")]
    Timeout,
    /// Server errors, refused connections, or the circuit breaker is open.
    #[error("the acquirer is unavailable")]
    Unavailable,
    #[error("the acquirer does not support this operation")]
    Unsupported,
    /// Our bug or the acquirer's 4xx.
    #[error("the acquirer request is invalid: {0}")]
    Invalid(InvalidReason),
    /// The audit trail could not record the card's use, so it was not used.
    #[error("the audit trail is unavailable")]
    AuditUnavailable,
    /// The card could not be opened for the charge (vault or key failure).
    #[error("the card is not available for this charge")]
    CardUnavailable,
}

impl AcquirerError {
    /// A stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            AcquirerError::Declined(_) => "payment_declined",
            AcquirerError::Timeout => "acquirer_timeout",
            AcquirerError::Unavailable => "acquirer_unavailable",
            AcquirerError::Unsupported => "acquirer_unsupported",
            AcquirerError::Invalid(reason) => reason.code(),
            AcquirerError::AuditUnavailable => "audit_unavailable",
            AcquirerError::CardUnavailable => "card_unavailable",
        }
    }

    pub fn decline_code(&self) -> Option<DeclineCode> {
        match self {
            AcquirerError::Declined(code) => Some(*code),
            _ => None,
        }
    }

    /// A line for the charger's screen.
    pub fn display_message(&self) -> &'static str {
        match self {
            AcquirerError::Declined(code) => code.display_message(),
            AcquirerError::Timeout | AcquirerError::Unavailable => "Please try again",
            _ => "Payment not possible",
        }
    }
}

/// One acquirer. Implementations keep no card data beyond the call.
#[async_trait]
pub trait Acquirer: Send + Sync {
    /// A short stable name, for configuration and metrics.
    fn name(&self) -> &'static str;

    /// Whether [`Acquirer::increment`] can ever succeed here.
    fn supports_increment(&self) -> bool;

    async fn authorize(
        &self,
        request: AuthorizeRequest<'_>,
    ) -> Result<Authorization, AcquirerError>;

    /// Returns the new authorized amount, or `Unsupported`: the session then
    /// tells the charger to stop. Worth calling only for a hold whose
    /// [`Authorization::incremental`] is true; elsewhere the acquirer refuses.
    async fn increment(&self, request: IncrementRequest) -> Result<Money, AcquirerError>;

    async fn capture(&self, request: CaptureRequest) -> Result<Capture, AcquirerError>;

    async fn void(&self, request: VoidRequest) -> Result<Void, AcquirerError>;

    async fn refund(&self, request: RefundRequest) -> Result<Refund, AcquirerError>;

    /// The hold as the acquirer sees it now; `None` if it has no such hold.
    /// Read-only, so it is safe to retry.
    async fn find_hold(&self, lookup: HoldLookup<'_>) -> Result<Option<HoldStatus>, AcquirerError>;
}

/// Keys go into HTTP headers and logs: 1 to 200 visible ASCII characters,
/// leaving room for the suffixes a connector adds per sub-call.
pub(crate) fn check_idempotency_key(key: &str) -> Result<(), AcquirerError> {
    if (1..=200).contains(&key.len()) && key.bytes().all(|b| b.is_ascii_graphic()) {
        Ok(())
    } else {
        Err(AcquirerError::Invalid(InvalidReason::IdempotencyKey))
    }
}

pub(crate) fn check_positive(amount: Money) -> Result<(), AcquirerError> {
    if amount.value > 0 {
        Ok(())
    } else {
        Err(AcquirerError::Invalid(InvalidReason::AmountNotPositive))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_are_stable() {
        assert_eq!(
            AcquirerError::Declined(DeclineCode::InsufficientFunds).code(),
            "payment_declined"
        );
        assert_eq!(
            AcquirerError::Declined(DeclineCode::InsufficientFunds).decline_code(),
            Some(DeclineCode::InsufficientFunds)
        );
        assert_eq!(AcquirerError::Timeout.code(), "acquirer_timeout");
        assert_eq!(AcquirerError::Unavailable.code(), "acquirer_unavailable");
        assert_eq!(AcquirerError::Unsupported.code(), "acquirer_unsupported");
        assert_eq!(
            AcquirerError::Invalid(InvalidReason::CaptureExceedsAuthorization).code(),
            "capture_exceeds_authorization"
        );
    }

    #[test]
    fn idempotency_keys_are_checked() {
        assert!(check_idempotency_key("sess_1:authorize:0").is_ok());
        assert!(check_idempotency_key("").is_err());
        assert!(check_idempotency_key("with space").is_err());
        assert!(check_idempotency_key(&"k".repeat(201)).is_err());
    }
}
