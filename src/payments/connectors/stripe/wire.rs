//! Stripe's wire format: the fields we read from its objects and errors,
//! amounts in Stripe's units, and its decline codes mapped to ours.

use serde::Deserialize;

use crate::money::{Currency, Money};
use crate::payments::connectors::{AcquirerError, DeclineCode, HoldState, InvalidReason};

#[derive(Debug, Deserialize)]
pub(super) struct Created {
    pub id: String,
}

#[derive(Debug, Deserialize)]
pub(super) struct PaymentIntent {
    pub id: String,
    pub status: String,
    pub amount: i64,
    pub currency: String,
    #[serde(default)]
    pub amount_received: Option<i64>,
    #[serde(default)]
    pub amount_capturable: Option<i64>,
    #[serde(default)]
    pub latest_charge: Option<ChargeField>,
    #[serde(default)]
    pub last_payment_error: Option<ErrorBody>,
}

/// Our part of an intent's metadata.
#[derive(Debug, Default, Deserialize)]
pub(super) struct Metadata {
    /// [`crate::payments::connectors::AuthorizeRequest::reference`].
    #[serde(default)]
    pub reference: Option<String>,
}

/// A page of `GET /v1/payment_intents`: only what finding one by our
/// reference needs.
#[derive(Debug, Deserialize)]
pub(super) struct IntentPage {
    pub data: Vec<ListedIntent>,
    #[serde(default)]
    pub has_more: bool,
}

#[derive(Debug, Deserialize)]
pub(super) struct ListedIntent {
    pub id: String,
    pub status: String,
    #[serde(default)]
    pub created: i64,
    #[serde(default)]
    pub metadata: Option<Metadata>,
}

impl ListedIntent {
    pub fn reference(&self) -> Option<&str> {
        self.metadata.as_ref().and_then(|m| m.reference.as_deref())
    }
}

/// Where a PaymentIntent status leaves the hold; `None` for a status this
/// code does not know, which must not be read as "nothing held".
pub(super) fn hold_state(status: &str) -> Option<HoldState> {
    match status {
        "requires_capture" => Some(HoldState::Authorized),
        // `capture` takes `processing` as captured too.
        "succeeded" | "processing" => Some(HoldState::Captured),
        "canceled" => Some(HoldState::Voided),
        "requires_payment_method" | "requires_confirmation" | "requires_action" => {
            Some(HoldState::Failed)
        }
        _ => None,
    }
}

/// `latest_charge` is an id unless expanded.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum ChargeField {
    Expanded(Box<Charge>),
    NotExpanded(serde::de::IgnoredAny),
}

#[derive(Debug, Deserialize)]
pub(super) struct Charge {
    #[serde(default)]
    pub payment_method_details: Option<PaymentMethodDetails>,
    #[serde(default)]
    pub amount: Option<i64>,
    #[serde(default)]
    pub amount_captured: Option<i64>,
    #[serde(default)]
    pub amount_refunded: Option<i64>,
    /// Not sent by Stripe at our API version unless expanded; localstripe
    /// always sends it.
    #[serde(default)]
    pub refunds: Option<RefundList>,
}

#[derive(Debug, Deserialize)]
pub(super) struct RefundList {
    pub data: Vec<ListedRefund>,
}

#[derive(Debug, Deserialize)]
pub(super) struct ListedRefund {
    pub amount: i64,
    #[serde(default)]
    pub payment_intent: Option<serde::de::IgnoredAny>,
}

impl Charge {
    /// The captured amount and the sum of refunds of a captured intent, in
    /// Stripe's units; `None` if the charge does not say.
    ///
    /// At our pinned API version Stripe records the uncaptured rest of a
    /// partial capture as a refund, so `amount_refunded` counts it and it
    /// is taken off. localstripe reports neither `amount_received` nor
    /// `amount_captured`; it too records the rest as a refund, made on the
    /// charge alone where ours name the intent, which tells them apart.
    pub fn captured_and_refunded(&self, intent: &PaymentIntent) -> Option<(i64, i64)> {
        let charged = self.amount.unwrap_or(intent.amount);
        let captured = match (intent.amount_received, self.amount_captured) {
            (Some(received), _) if received > 0 => received,
            (_, Some(captured)) if captured > 0 => captured,
            _ => {
                let released: i64 = self
                    .refunds
                    .as_ref()?
                    .data
                    .iter()
                    .filter(|r| r.payment_intent.is_none())
                    .map(|r| r.amount)
                    .sum();
                charged.checked_sub(released)?
            }
        };
        let released = charged.checked_sub(captured)?;
        if captured <= 0 || released < 0 {
            return None;
        }
        let refunded = self
            .amount_refunded
            .unwrap_or(0)
            .checked_sub(released)?
            .max(0);
        Some((captured, refunded))
    }
}

#[derive(Debug, Deserialize)]
pub(super) struct PaymentMethodDetails {
    #[serde(default)]
    pub card: Option<CardDetails>,
}

#[derive(Debug, Deserialize)]
pub(super) struct CardDetails {
    #[serde(default)]
    pub incremental_authorization: Option<IncrementalAuthorization>,
    #[serde(default)]
    pub authorization_code: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(super) struct IncrementalAuthorization {
    pub status: String,
}

impl PaymentIntent {
    pub fn charge(&self) -> Option<&Charge> {
        match &self.latest_charge {
            Some(ChargeField::Expanded(charge)) => Some(charge),
            _ => None,
        }
    }

    fn card_details(&self) -> Option<&CardDetails> {
        self.charge()?
            .payment_method_details
            .as_ref()?
            .card
            .as_ref()
    }

    pub fn incremental_available(&self) -> bool {
        self.card_details()
            .and_then(|c| c.incremental_authorization.as_ref())
            .is_some_and(|i| i.status == "available")
    }

    pub fn authorization_code(&self) -> Option<String> {
        self.card_details()
            .and_then(|c| c.authorization_code.clone())
    }
}

#[derive(Debug, Deserialize)]
pub(super) struct RefundObject {
    pub id: String,
    pub amount: i64,
    pub currency: String,
    pub status: String,
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct ErrorEnvelope {
    #[serde(default)]
    pub error: ErrorBody,
}

/// Only the machine-readable parts; Stripe's `message` is never read, so it
/// can never reach a log or an error of ours.
#[derive(Debug, Default, Deserialize)]
pub(super) struct ErrorBody {
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    #[serde(default)]
    pub code: Option<String>,
    #[serde(default)]
    pub decline_code: Option<String>,
}

/// Stripe's decline and card-error codes, most specific first.
pub(super) fn decline_code(error: &ErrorBody) -> DeclineCode {
    let specific = error.decline_code.as_deref().map(map_decline);
    match specific {
        Some(code) if code != DeclineCode::CardDeclined => code,
        _ => error
            .code
            .as_deref()
            .map_or(DeclineCode::CardDeclined, map_decline),
    }
}

fn map_decline(code: &str) -> DeclineCode {
    match code {
        "insufficient_funds" => DeclineCode::InsufficientFunds,
        "do_not_honor" | "do_not_honour" => DeclineCode::DoNotHonour,
        "expired_card" | "invalid_expiry_month" | "invalid_expiry_year" => DeclineCode::ExpiredCard,
        "incorrect_cvc" | "invalid_cvc" => DeclineCode::IncorrectCvc,
        "incorrect_number" | "invalid_number" | "invalid_account" => DeclineCode::IncorrectNumber,
        "processing_error" | "issuer_not_available" | "reenter_transaction" => {
            DeclineCode::ProcessingError
        }
        "lost_card" | "stolen_card" | "pickup_card" => DeclineCode::LostOrStolen,
        "fraudulent" | "merchant_blacklist" | "security_violation" => DeclineCode::Fraudulent,
        "card_velocity_exceeded" | "withdrawal_count_limit_exceeded" => DeclineCode::LimitExceeded,
        "card_not_supported"
        | "transaction_not_allowed"
        | "service_not_allowed"
        | "restricted_card"
        | "not_permitted" => DeclineCode::CardNotSupported,
        "currency_not_supported" => DeclineCode::CurrencyNotSupported,
        "authentication_required" | "payment_intent_authentication_failure" => {
            DeclineCode::AuthenticationRequired
        }
        "try_again_later" | "approve_with_id" => DeclineCode::TryAgainLater,
        _ => DeclineCode::CardDeclined,
    }
}

/// A 4xx other than a decline.
pub(super) fn invalid_reason(status: u16, error: &ErrorBody) -> InvalidReason {
    if status == 401 || status == 403 {
        return InvalidReason::Credentials;
    }
    if error.kind.as_deref() == Some("idempotency_error") {
        return InvalidReason::IdempotencyKeyReused;
    }
    match error.code.as_deref() {
        Some("resource_missing") => InvalidReason::UnknownReference,
        Some("payment_intent_unexpected_state" | "charge_already_captured")
        | Some("charge_already_refunded") => InvalidReason::WrongState,
        Some("amount_too_large") => InvalidReason::CaptureExceedsAuthorization,
        Some("amount_too_small") => InvalidReason::AmountNotPositive,
        _ => InvalidReason::Rejected,
    }
}

/// Zero-decimal currencies that Stripe nonetheless counts in hundredths.
const HUNDREDTHS: &[&str] = &["ISK"];
/// Three-decimal currencies whose last digit Stripe requires to be 0.
const ROUND_TO_TENS: &[&str] = &["BHD", "JOD", "KWD", "OMR", "TND"];

/// ISO 4217 minor units to Stripe's `amount`.
pub(super) fn to_stripe(amount: Money) -> Result<i64, AcquirerError> {
    let code = amount.currency.code();
    let not_representable = AcquirerError::Invalid(InvalidReason::AmountNotRepresentable);
    if HUNDREDTHS.contains(&code) {
        return amount.value.checked_mul(100).ok_or(not_representable);
    }
    if ROUND_TO_TENS.contains(&code) && amount.value % 10 != 0 {
        return Err(not_representable);
    }
    Ok(amount.value)
}

/// Stripe's `amount` and `currency` back to ISO 4217 minor units, checked
/// against the currency we asked for.
pub(super) fn from_stripe(
    value: i64,
    currency: &str,
    want: Currency,
) -> Result<Money, AcquirerError> {
    let bad = AcquirerError::Invalid(InvalidReason::BadResponse);
    if !currency.eq_ignore_ascii_case(want.code()) {
        return Err(bad);
    }
    if HUNDREDTHS.contains(&want.code()) {
        if value % 100 != 0 {
            return Err(bad);
        }
        return Ok(Money::new(value / 100, want));
    }
    Ok(Money::new(value, want))
}

/// Stripe's currency parameter.
pub(super) fn currency_param(currency: Currency) -> String {
    currency.code().to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(code: Option<&str>, decline: Option<&str>) -> ErrorBody {
        ErrorBody {
            kind: Some("card_error".into()),
            code: code.map(Into::into),
            decline_code: decline.map(Into::into),
        }
    }

    #[test]
    fn declines_map_to_stable_codes() {
        for (code, decline, want) in [
            (
                Some("card_declined"),
                Some("insufficient_funds"),
                DeclineCode::InsufficientFunds,
            ),
            (
                Some("card_declined"),
                Some("do_not_honor"),
                DeclineCode::DoNotHonour,
            ),
            (
                Some("card_declined"),
                Some("generic_decline"),
                DeclineCode::CardDeclined,
            ),
            (Some("card_declined"), None, DeclineCode::CardDeclined),
            (Some("expired_card"), None, DeclineCode::ExpiredCard),
            (Some("incorrect_cvc"), None, DeclineCode::IncorrectCvc),
            (Some("processing_error"), None, DeclineCode::ProcessingError),
            (
                Some("card_declined"),
                Some("lost_card"),
                DeclineCode::LostOrStolen,
            ),
            (
                Some("card_declined"),
                Some("stolen_card"),
                DeclineCode::LostOrStolen,
            ),
            (
                Some("card_declined"),
                Some("fraudulent"),
                DeclineCode::Fraudulent,
            ),
            (
                Some("card_declined"),
                Some("card_velocity_exceeded"),
                DeclineCode::LimitExceeded,
            ),
            (
                Some("authentication_required"),
                None,
                DeclineCode::AuthenticationRequired,
            ),
            (None, None, DeclineCode::CardDeclined),
            (Some("something_new"), None, DeclineCode::CardDeclined),
        ] {
            assert_eq!(
                decline_code(&err(code, decline)),
                want,
                "{code:?} {decline:?}"
            );
        }
    }

    #[test]
    fn other_errors_map_to_reasons() {
        let e = |code: &str| ErrorBody {
            kind: Some("invalid_request_error".into()),
            code: Some(code.into()),
            decline_code: None,
        };
        assert_eq!(
            invalid_reason(400, &e("amount_too_large")),
            InvalidReason::CaptureExceedsAuthorization
        );
        assert_eq!(
            invalid_reason(400, &e("payment_intent_unexpected_state")),
            InvalidReason::WrongState
        );
        assert_eq!(
            invalid_reason(404, &e("resource_missing")),
            InvalidReason::UnknownReference
        );
        assert_eq!(
            invalid_reason(401, &ErrorBody::default()),
            InvalidReason::Credentials
        );
        assert_eq!(
            invalid_reason(400, &ErrorBody::default()),
            InvalidReason::Rejected
        );
        let idem = ErrorBody {
            kind: Some("idempotency_error".into()),
            ..ErrorBody::default()
        };
        assert_eq!(
            invalid_reason(400, &idem),
            InvalidReason::IdempotencyKeyReused
        );
    }

    #[test]
    fn amounts_follow_stripe_units() {
        let eur = Currency::parse("EUR").unwrap();
        let isk = Currency::parse("ISK").unwrap();
        let kwd = Currency::parse("KWD").unwrap();
        let jpy = Currency::parse("JPY").unwrap();
        assert_eq!(to_stripe(Money::new(5000, eur)), Ok(5000));
        assert_eq!(to_stripe(Money::new(500, jpy)), Ok(500));
        assert_eq!(to_stripe(Money::new(7, isk)), Ok(700));
        assert_eq!(to_stripe(Money::new(1230, kwd)), Ok(1230));
        assert_eq!(
            to_stripe(Money::new(1234, kwd)),
            Err(AcquirerError::Invalid(
                InvalidReason::AmountNotRepresentable
            ))
        );
        assert_eq!(from_stripe(700, "isk", isk), Ok(Money::new(7, isk)));
        assert_eq!(from_stripe(5000, "eur", eur), Ok(Money::new(5000, eur)));
        assert!(from_stripe(5000, "usd", eur).is_err());
        assert_eq!(currency_param(eur), "eur");
    }

    fn intent(json: &str) -> PaymentIntent {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn captured_and_refunded_leave_out_the_released_rest() {
        // Stripe: a 5000 hold, 3210 captured, then 1000 refunded.
        let pi = intent(
            r#"{"id":"pi_1","status":"succeeded","amount":5000,"currency":"eur",
                "amount_received":3210,"latest_charge":{"id":"ch_1","amount":5000,
                "amount_captured":3210,"amount_refunded":2790}}"#,
        );
        assert_eq!(
            pi.charge().unwrap().captured_and_refunded(&pi),
            Some((3210, 1000))
        );
        // localstripe: no captured figure; the rest is a refund on the charge alone.
        let pi = intent(
            r#"{"id":"pi_1","status":"succeeded","amount":5000,"currency":"eur",
                "latest_charge":{"id":"ch_1","amount":5000,"amount_refunded":2790,
                "refunds":{"object":"list","data":[
                  {"id":"re_1","amount":1790,"payment_intent":null},
                  {"id":"re_2","amount":1000,"payment_intent":"pi_1"}]}}}"#,
        );
        assert_eq!(
            pi.charge().unwrap().captured_and_refunded(&pi),
            Some((3210, 1000))
        );
        // A full capture, nothing refunded.
        let pi = intent(
            r#"{"id":"pi_1","status":"succeeded","amount":5000,"currency":"eur",
                "amount_received":5000,"latest_charge":{"id":"ch_1","amount":5000,
                "amount_refunded":0}}"#,
        );
        assert_eq!(
            pi.charge().unwrap().captured_and_refunded(&pi),
            Some((5000, 0))
        );
        // No figure and no refunds to read: unknown, not guessed.
        let pi = intent(
            r#"{"id":"pi_1","status":"succeeded","amount":5000,"currency":"eur",
                "latest_charge":{"id":"ch_1","amount":5000,"amount_refunded":2790}}"#,
        );
        assert_eq!(pi.charge().unwrap().captured_and_refunded(&pi), None);
    }

    #[test]
    fn statuses_map_to_hold_states() {
        assert_eq!(hold_state("requires_capture"), Some(HoldState::Authorized));
        assert_eq!(hold_state("succeeded"), Some(HoldState::Captured));
        assert_eq!(hold_state("canceled"), Some(HoldState::Voided));
        for failed in [
            "requires_payment_method",
            "requires_confirmation",
            "requires_action",
        ] {
            assert_eq!(hold_state(failed), Some(HoldState::Failed), "{failed}");
        }
        assert_eq!(hold_state("something_new"), None);
    }

    #[test]
    fn reads_our_reference_from_a_listed_intent() {
        let page: IntentPage = serde_json::from_str(
            r#"{"object":"list","has_more":true,"data":[
                {"id":"pi_1","status":"requires_capture","created":1,"metadata":{"reference":"s1"}},
                {"id":"pi_2","status":"canceled","created":2,"metadata":{}},
                {"id":"pi_3","status":"succeeded","created":3,"metadata":null}]}"#,
        )
        .unwrap();
        assert!(page.has_more);
        let refs: Vec<_> = page.data.iter().map(ListedIntent::reference).collect();
        assert_eq!(refs, [Some("s1"), None, None]);
    }

    #[test]
    fn reads_an_expanded_charge() {
        let pi: PaymentIntent = serde_json::from_str(
            r#"{"id":"pi_1","status":"requires_capture","amount":5000,"currency":"eur",
                "latest_charge":{"id":"ch_1","payment_method_details":{"card":{
                  "incremental_authorization":{"status":"available"},"authorization_code":"123456"}}}}"#,
        )
        .unwrap();
        assert!(pi.incremental_available());
        assert_eq!(pi.authorization_code().as_deref(), Some("123456"));
        let pi: PaymentIntent = serde_json::from_str(
            r#"{"id":"pi_1","status":"requires_capture","amount":5000,"currency":"eur","latest_charge":"ch_1"}"#,
        )
        .unwrap();
        assert!(!pi.incremental_available());
    }
}
