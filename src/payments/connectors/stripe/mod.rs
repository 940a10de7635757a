//! Stripe: a hold is a PaymentIntent with `capture_method=manual`,
//! confirmed at once with a PaymentMethod made from the card data.
//! Increments use `increment_authorization` where the card allows it;
//! capture sends `amount_to_capture`, void cancels the intent, refunds name
//! the intent. Every POST carries an `Idempotency-Key` derived from the
//! caller's key, so a replay at Stripe returns the first answer.
//!
//! `find_hold` reads the intent; by our reference it lists intents (newest
//! first at Stripe) looking for `metadata[reference]`, which authorize sets.
//! A declined authorization leaves a failed intent: it is found as `Failed`.
//!
//! Sending raw card numbers to Stripe needs PCI DSS level 1 and Stripe's
//! permission for the account; this vault is built for exactly that.

mod config;
mod transport;
mod wire;

pub use config::{STRIPE_API, SYSTEM_CA_BUNDLE, StripeConfig, StripeConfigError};

use std::sync::Arc;

use async_trait::async_trait;
use reqwest::StatusCode;
use serde::de::DeserializeOwned;
use url::form_urlencoded;
use zeroize::Zeroizing;

use self::transport::{Answer, Call, Transport};
use self::wire::{ErrorEnvelope, IntentPage, PaymentIntent, RefundObject};
use super::breaker::{BreakerState, CircuitBreaker};
use super::replay::{ReplayCache, fingerprint};
use super::{
    Acquirer, AcquirerError, Authorization, AuthorizeRequest, Capture, CaptureRequest, DeclineCode,
    HoldLookup, HoldState, HoldStatus, IncrementRequest, InvalidReason, Refund, RefundRequest,
    Void, VoidRequest, check_idempotency_key, check_positive,
};
use crate::clock::Clock;
use crate::money::{Currency, Money};

pub struct StripeConnector {
    transport: Transport,
    incremental_authorization: bool,
    authorizations: ReplayCache<Authorization>,
    increments: ReplayCache<Money>,
    captures: ReplayCache<Capture>,
    voids: ReplayCache<Void>,
    refunds: ReplayCache<Refund>,
}

impl std::fmt::Debug for StripeConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StripeConnector")
            .field("base_url", &self.transport.base_url)
            .finish()
    }
}

impl StripeConnector {
    pub fn new(config: StripeConfig, clock: Arc<dyn Clock>) -> Result<Self, StripeConfigError> {
        let (base_url, plain_http) = config::checked_base_url(&config)?;
        let mut builder = reqwest::Client::builder()
            .use_rustls_tls()
            .tls_built_in_root_certs(false)
            .https_only(!plain_http)
            // A redirect could lead off the allow-list.
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .timeout(config.request_timeout)
            .connect_timeout(config.connect_timeout)
            .user_agent(concat!("voltvault/", env!("CARGO_PKG_VERSION")));
        if !plain_http {
            let pem = match &config.trust_roots_pem {
                Some(pem) => pem.clone(),
                None => {
                    std::fs::read(SYSTEM_CA_BUNDLE).map_err(|_| StripeConfigError::TrustRoots)?
                }
            };
            let roots = reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|_| StripeConfigError::TrustRoots)?;
            if roots.is_empty() {
                return Err(StripeConfigError::TrustRoots);
            }
            for root in roots {
                builder = builder.add_root_certificate(root);
            }
        }
        let client = builder.build().map_err(|_| StripeConfigError::Client)?;
        let ttl = chrono::Duration::hours(24);
        let cap = config.replay_capacity.max(1);
        Ok(Self {
            transport: Transport {
                client,
                base_url,
                api_key: config.api_key,
                max_attempts: config.max_attempts,
                backoff: config.backoff,
                breaker: CircuitBreaker::new(config.breaker, clock.clone()),
            },
            incremental_authorization: config.incremental_authorization,
            authorizations: ReplayCache::new(cap, ttl, clock.clone()),
            increments: ReplayCache::new(cap, ttl, clock.clone()),
            captures: ReplayCache::new(cap, ttl, clock.clone()),
            voids: ReplayCache::new(cap, ttl, clock.clone()),
            refunds: ReplayCache::new(cap, ttl, clock),
        })
    }

    /// For health reporting and tests.
    pub fn breaker_state(&self) -> BreakerState {
        self.transport.breaker.state()
    }

    async fn post<T: DeserializeOwned>(
        &self,
        op: &'static str,
        path: String,
        body: Zeroizing<String>,
        key: String,
    ) -> Result<T, Failed> {
        let answer = self
            .transport
            .send(&Call::post(op, path, body, key))
            .await
            .map_err(Failed::Error)?;
        parse(answer)
    }

    async fn get<T: DeserializeOwned>(&self, op: &'static str, path: String) -> Result<T, Failed> {
        let answer = self
            .transport
            .send(&Call::get(op, path))
            .await
            .map_err(Failed::Error)?;
        parse(answer)
    }

    async fn hold_by_id(&self, id: &str) -> Result<Option<HoldStatus>, AcquirerError> {
        let path = format!(
            "/v1/payment_intents/{}?expand%5B%5D=latest_charge",
            path_segment(id)?
        );
        match self.get("retrieve_payment_intent", path).await {
            Ok(intent) => hold_status(&intent).map(Some),
            // Stripe's own "no such intent"; a bare 404 is a missing route.
            Err(Failed::Answer(StatusCode::NOT_FOUND, _, true)) => Ok(None),
            Err(f) => Err(f.into_error(Op::Other)),
        }
    }

    /// Stripe cannot filter a list by metadata, and its search lags writes,
    /// so recent intents are listed page by page.
    async fn hold_by_reference(
        &self,
        reference: &str,
    ) -> Result<Option<HoldStatus>, AcquirerError> {
        // (a hold was placed, created, id) of the best match so far.
        let mut best: Option<(bool, i64, String)> = None;
        let mut starting_after: Option<String> = None;
        for _ in 0..MAX_LIST_PAGES {
            let mut path = format!("/v1/payment_intents?limit={LIST_PAGE_SIZE}");
            if let Some(after) = &starting_after {
                path.push_str("&starting_after=");
                path.push_str(path_segment(after)?);
            }
            let page: IntentPage = self
                .get("list_payment_intents", path)
                .await
                .map_err(|f| f.into_error(Op::Other))?;
            for intent in page
                .data
                .iter()
                .filter(|i| i.reference() == Some(reference))
            {
                // A status we cannot read counts as placed: it must not pass for a decline.
                let placed = wire::hold_state(&intent.status) != Some(HoldState::Failed);
                if best
                    .as_ref()
                    .is_none_or(|(p, created, _)| (placed, intent.created) > (*p, *created))
                {
                    best = Some((placed, intent.created, intent.id.clone()));
                }
            }
            // Only declined attempts so far: a placed hold may be further back.
            if best.as_ref().is_some_and(|(placed, _, _)| *placed) || !page.has_more {
                break;
            }
            match page.data.last() {
                Some(last) => starting_after = Some(last.id.clone()),
                None => break,
            }
        }
        match best {
            Some((_, _, id)) => self.hold_by_id(&id).await,
            None => Ok(None),
        }
    }

    async fn create_payment_method(
        &self,
        request: &AuthorizeRequest<'_>,
    ) -> Result<String, AcquirerError> {
        let card = request.card;
        let mut form = Form::new();
        form.pair("type", "card");
        form.pair("card[number]", card.pan.expose_digits());
        form.pair("card[exp_month]", &card.expiry.month().to_string());
        form.pair("card[exp_year]", &card.expiry.year().to_string());
        if let Some(cvc) = card.cvc {
            form.pair("card[cvc]", cvc.expose_digits());
        }
        let created: wire::Created = self
            .post(
                "create_payment_method",
                "/v1/payment_methods".into(),
                form.finish(),
                format!("{}:payment_method", request.idempotency_key),
            )
            .await
            .map_err(|f| f.into_error(Op::Authorize))?;
        Ok(created.id)
    }

    async fn authorize_uncached(
        &self,
        request: &AuthorizeRequest<'_>,
    ) -> Result<Authorization, AcquirerError> {
        let currency = request.amount.currency;
        let amount = wire::to_stripe(request.amount)?;
        let payment_method = self.create_payment_method(request).await?;
        let mut form = Form::new();
        form.pair("amount", &amount.to_string());
        form.pair("currency", &wire::currency_param(currency));
        form.pair("payment_method", &payment_method);
        form.pair("payment_method_types[]", "card");
        form.pair("capture_method", "manual");
        form.pair("confirm", "true");
        form.pair("metadata[reference]", &request.reference);
        form.pair("expand[]", "latest_charge");
        if self.incremental_authorization {
            form.pair(
                "payment_method_options[card][request_incremental_authorization]",
                "if_available",
            );
        }
        let intent: PaymentIntent = self
            .post(
                "create_payment_intent",
                "/v1/payment_intents".into(),
                form.finish(),
                format!("{}:payment_intent", request.idempotency_key),
            )
            .await
            .map_err(|f| f.into_error(Op::Authorize))?;
        match intent.status.as_str() {
            "requires_capture" => Ok(Authorization {
                authorized: wire::from_stripe(intent.amount, &intent.currency, currency)?,
                authorization_code: intent.authorization_code(),
                incremental: self.incremental_authorization && intent.incremental_available(),
                reference: intent.id,
            }),
            "requires_action" => {
                // 3-D Secure cannot happen at a charger; let the hold go.
                let _ = self
                    .void_uncached(&VoidRequest {
                        idempotency_key: format!("{}:abandon", request.idempotency_key),
                        auth_ref: intent.id,
                    })
                    .await;
                Err(AcquirerError::Declined(DeclineCode::AuthenticationRequired))
            }
            "requires_payment_method" => Err(AcquirerError::Declined(
                intent
                    .last_payment_error
                    .as_ref()
                    .map_or(DeclineCode::CardDeclined, wire::decline_code),
            )),
            _ => Err(AcquirerError::Invalid(InvalidReason::BadResponse)),
        }
    }

    async fn void_uncached(&self, request: &VoidRequest) -> Result<Void, AcquirerError> {
        let intent: PaymentIntent = self
            .post(
                "cancel_payment_intent",
                format!(
                    "/v1/payment_intents/{}/cancel",
                    path_segment(&request.auth_ref)?
                ),
                Form::new().finish(),
                request.idempotency_key.clone(),
            )
            .await
            .map_err(|f| f.into_error(Op::Other))?;
        if intent.status != "canceled" {
            return Err(AcquirerError::Invalid(InvalidReason::WrongState));
        }
        let currency = intent_currency(&intent)?;
        Ok(Void {
            released: wire::from_stripe(intent.amount, &intent.currency, currency)?,
            reference: intent.id,
        })
    }
}

/// Intents listed per page, and pages read, when finding one by our
/// reference: recovery asks soon after the lost answer, and Stripe lists
/// newest first, so an older intent is taken as not there.
const LIST_PAGE_SIZE: usize = 100;
const MAX_LIST_PAGES: usize = 20;

fn intent_currency(intent: &PaymentIntent) -> Result<Currency, AcquirerError> {
    Currency::parse(&intent.currency.to_ascii_uppercase())
        .map_err(|_| AcquirerError::Invalid(InvalidReason::BadResponse))
}

/// What an intent says of its hold. `authorized` stays what was held once
/// captured or voided, and is zero when nothing was; `capture_ref` is the
/// intent, as [`Acquirer::capture`] returns it.
fn hold_status(intent: &PaymentIntent) -> Result<HoldStatus, AcquirerError> {
    let bad = AcquirerError::Invalid(InvalidReason::BadResponse);
    let currency = intent_currency(intent)?;
    let money = |value: i64| wire::from_stripe(value, &intent.currency, currency);
    let mut status = HoldStatus {
        auth_ref: intent.id.clone(),
        state: HoldState::Failed,
        authorized: Money::zero(currency),
        captured: Money::zero(currency),
        capture_ref: None,
        refunded: Money::zero(currency),
    };
    match wire::hold_state(&intent.status).ok_or(bad)? {
        HoldState::Authorized => {
            status.state = HoldState::Authorized;
            let capturable = intent.amount_capturable.filter(|v| *v > 0);
            status.authorized = money(capturable.unwrap_or(intent.amount))?;
        }
        // Canceled before any charge (3-D Secure asked for, then abandoned):
        // nothing was ever held.
        HoldState::Voided if intent.latest_charge.is_none() => {}
        HoldState::Voided => {
            status.state = HoldState::Voided;
            status.authorized = money(intent.amount)?;
        }
        HoldState::Captured => {
            let (captured, refunded) = intent
                .charge()
                .and_then(|charge| charge.captured_and_refunded(intent))
                .ok_or(bad)?;
            status.state = HoldState::Captured;
            status.authorized = money(intent.amount)?;
            status.captured = money(captured)?;
            status.refunded = money(refunded)?;
            status.capture_ref = Some(intent.id.clone());
        }
        HoldState::Failed => {}
    }
    Ok(status)
}

/// Which call an error came from, where that changes its meaning.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Op {
    Authorize,
    Increment,
    Capture,
    Refund,
    Other,
}

/// A call that got no object back: a transport error, or Stripe's error answer.
enum Failed {
    Error(AcquirerError),
    Answer(StatusCode, Box<ErrorEnvelope>, bool),
}

impl Failed {
    fn into_error(self, op: Op) -> AcquirerError {
        let (status, envelope, json) = match self {
            Failed::Error(e) => return e,
            Failed::Answer(status, envelope, json) => (status, envelope, json),
        };
        let error = &envelope.error;
        tracing::info!(
            acquirer = "stripe",
            status = status.as_u16(),
            code = error.code.as_deref().unwrap_or(""),
            decline_code = error.decline_code.as_deref().unwrap_or(""),
            "acquirer refused the request"
        );
        match status.as_u16() {
            402 => AcquirerError::Declined(wire::decline_code(error)),
            // An unknown route: this Stripe-compatible server has no increments.
            404 if op == Op::Increment
                && (!json || error.code.as_deref() != Some("resource_missing")) =>
            {
                AcquirerError::Unsupported
            }
            s => {
                let reason = match (wire::invalid_reason(s, error), op) {
                    (InvalidReason::CaptureExceedsAuthorization, Op::Refund) => {
                        InvalidReason::RefundExceedsCapture
                    }
                    (reason, _) => reason,
                };
                AcquirerError::Invalid(reason)
            }
        }
    }
}

fn parse<T: DeserializeOwned>(answer: Answer) -> Result<T, Failed> {
    if answer.status.is_success() {
        return serde_json::from_slice(&answer.body)
            .map_err(|_| Failed::Error(AcquirerError::Invalid(InvalidReason::BadResponse)));
    }
    let (envelope, json) = match serde_json::from_slice::<ErrorEnvelope>(&answer.body) {
        Ok(e) => (e, true),
        Err(_) => (ErrorEnvelope::default(), false),
    };
    Err(Failed::Answer(answer.status, Box::new(envelope), json))
}

/// Acquirer references go into URL paths: Stripe ids are `[A-Za-z0-9_]`.
fn path_segment(reference: &str) -> Result<&str, AcquirerError> {
    if !reference.is_empty()
        && reference.len() <= 255
        && reference
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_')
    {
        Ok(reference)
    } else {
        Err(AcquirerError::Invalid(InvalidReason::UnknownReference))
    }
}

/// A form body that may hold card data, zeroized when dropped. Sized up
/// front so that growing it leaves no copies behind.
struct Form(Zeroizing<String>);

impl Form {
    fn new() -> Self {
        Self(Zeroizing::new(String::with_capacity(2048)))
    }

    fn pair(&mut self, name: &str, value: &str) {
        if !self.0.is_empty() {
            self.0.push('&');
        }
        self.0
            .extend(form_urlencoded::byte_serialize(name.as_bytes()));
        self.0.push('=');
        self.0
            .extend(form_urlencoded::byte_serialize(value.as_bytes()));
    }

    fn finish(self) -> Zeroizing<String> {
        self.0
    }
}

fn money_bytes(m: Money) -> Vec<u8> {
    format!("{}:{}", m.value, m.currency).into_bytes()
}

#[async_trait]
impl Acquirer for StripeConnector {
    fn name(&self) -> &'static str {
        "stripe"
    }

    fn supports_increment(&self) -> bool {
        self.incremental_authorization
    }

    async fn authorize(
        &self,
        request: AuthorizeRequest<'_>,
    ) -> Result<Authorization, AcquirerError> {
        check_idempotency_key(&request.idempotency_key)?;
        check_positive(request.amount)?;
        let last4 = request.card.pan.last4();
        let fp = fingerprint(&[
            b"authorize",
            &money_bytes(request.amount),
            request.reference.as_bytes(),
            last4.as_str().as_bytes(),
        ]);
        self.authorizations
            .run(
                &request.idempotency_key,
                fp,
                self.authorize_uncached(&request),
            )
            .await
    }

    async fn increment(&self, request: IncrementRequest) -> Result<Money, AcquirerError> {
        check_positive(request.new_total)?;
        if !self.incremental_authorization {
            return Err(AcquirerError::Unsupported);
        }
        let fp = fingerprint(&[
            b"increment",
            request.auth_ref.as_bytes(),
            &money_bytes(request.new_total),
        ]);
        self.increments
            .run(&request.idempotency_key, fp, async {
                let mut form = Form::new();
                form.pair("amount", &wire::to_stripe(request.new_total)?.to_string());
                let intent: PaymentIntent = self
                    .post(
                        "increment_authorization",
                        format!(
                            "/v1/payment_intents/{}/increment_authorization",
                            path_segment(&request.auth_ref)?
                        ),
                        form.finish(),
                        request.idempotency_key.clone(),
                    )
                    .await
                    .map_err(|f| f.into_error(Op::Increment))?;
                wire::from_stripe(intent.amount, &intent.currency, request.new_total.currency)
            })
            .await
    }

    async fn capture(&self, request: CaptureRequest) -> Result<Capture, AcquirerError> {
        check_positive(request.amount)?;
        let fp = fingerprint(&[
            b"capture",
            request.auth_ref.as_bytes(),
            &money_bytes(request.amount),
        ]);
        self.captures
            .run(&request.idempotency_key, fp, async {
                let currency = request.amount.currency;
                let mut form = Form::new();
                form.pair(
                    "amount_to_capture",
                    &wire::to_stripe(request.amount)?.to_string(),
                );
                let intent: PaymentIntent = self
                    .post(
                        "capture_payment_intent",
                        format!(
                            "/v1/payment_intents/{}/capture",
                            path_segment(&request.auth_ref)?
                        ),
                        form.finish(),
                        request.idempotency_key.clone(),
                    )
                    .await
                    .map_err(|f| f.into_error(Op::Capture))?;
                if !matches!(intent.status.as_str(), "succeeded" | "processing") {
                    return Err(AcquirerError::Invalid(InvalidReason::BadResponse));
                }
                let authorized = wire::from_stripe(intent.amount, &intent.currency, currency)?;
                // Stripe reports `amount_received`; servers that do not are
                // taken at the amount we asked for, which they accepted.
                let captured = match intent.amount_received {
                    Some(received) if received > 0 => {
                        wire::from_stripe(received, &intent.currency, currency)?
                    }
                    _ => request.amount,
                };
                let released = authorized
                    .checked_sub(captured)
                    .map_err(|_| AcquirerError::Invalid(InvalidReason::BadResponse))?;
                Ok(Capture {
                    reference: intent.id,
                    captured,
                    released,
                })
            })
            .await
    }

    async fn void(&self, request: VoidRequest) -> Result<Void, AcquirerError> {
        let fp = fingerprint(&[b"void", request.auth_ref.as_bytes()]);
        self.voids
            .run(&request.idempotency_key, fp, self.void_uncached(&request))
            .await
    }

    async fn refund(&self, request: RefundRequest) -> Result<Refund, AcquirerError> {
        check_positive(request.amount)?;
        let fp = fingerprint(&[
            b"refund",
            request.capture_ref.as_bytes(),
            &money_bytes(request.amount),
        ]);
        self.refunds
            .run(&request.idempotency_key, fp, async {
                let mut form = Form::new();
                form.pair("payment_intent", path_segment(&request.capture_ref)?);
                form.pair("amount", &wire::to_stripe(request.amount)?.to_string());
                let refund: RefundObject = self
                    .post(
                        "create_refund",
                        "/v1/refunds".into(),
                        form.finish(),
                        request.idempotency_key.clone(),
                    )
                    .await
                    .map_err(|f| f.into_error(Op::Refund))?;
                if matches!(refund.status.as_str(), "failed" | "canceled") {
                    return Err(AcquirerError::Declined(DeclineCode::ProcessingError));
                }
                Ok(Refund {
                    refunded: wire::from_stripe(
                        refund.amount,
                        &refund.currency,
                        request.amount.currency,
                    )?,
                    reference: refund.id,
                })
            })
            .await
    }

    async fn find_hold(&self, lookup: HoldLookup<'_>) -> Result<Option<HoldStatus>, AcquirerError> {
        match lookup {
            HoldLookup::AuthRef(id) => self.hold_by_id(id).await,
            HoldLookup::Reference(reference) => self.hold_by_reference(reference).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_are_safe_path_segments() {
        assert_eq!(path_segment("pi_3Abc123"), Ok("pi_3Abc123"));
        for bad in ["", "pi_1/../../v1/refunds", "pi_1?x=1", "pi 1"] {
            assert!(path_segment(bad).is_err(), "{bad}");
        }
    }

    fn answer(status: u16, body: &str) -> Failed {
        match parse::<wire::Created>(Answer {
            status: StatusCode::from_u16(status).unwrap(),
            body: body.as_bytes().to_vec(),
        }) {
            Err(failed) => failed,
            Ok(_) => panic!("an error status parsed as success"),
        }
    }

    #[test]
    fn a_missing_increment_route_means_unsupported() {
        // aiohttp's plain-text 404 for a route it does not have.
        let err = answer(404, "404: Not Found").into_error(Op::Increment);
        assert_eq!(err, AcquirerError::Unsupported);
        let missing = r#"{"error":{"type":"invalid_request_error","code":"resource_missing"}}"#;
        assert_eq!(
            answer(404, missing).into_error(Op::Increment),
            AcquirerError::Invalid(InvalidReason::UnknownReference)
        );
        assert_eq!(
            answer(404, "404: Not Found").into_error(Op::Capture),
            AcquirerError::Invalid(InvalidReason::Rejected)
        );
    }

    #[test]
    fn declines_and_refusals_keep_no_free_text() {
        let body = r#"{"error":{"type":"card_error","code":"card_declined",
            "decline_code":"insufficient_funds","message":"4000000000009995 declined"}}"#;
        let err = answer(402, body).into_error(Op::Authorize);
        assert_eq!(err, AcquirerError::Declined(DeclineCode::InsufficientFunds));
        assert!(!format!("{err:?} {err}").contains("4000"));
        let too_much = r#"{"error":{"type":"invalid_request_error","code":"amount_too_large"}}"#;
        assert_eq!(
            answer(400, too_much).into_error(Op::Refund),
            AcquirerError::Invalid(InvalidReason::RefundExceedsCapture)
        );
        assert_eq!(
            answer(401, "{}").into_error(Op::Other),
            AcquirerError::Invalid(InvalidReason::Credentials)
        );
    }

    fn status_of(json: &str) -> Result<HoldStatus, AcquirerError> {
        hold_status(&serde_json::from_str(json).unwrap())
    }

    #[test]
    fn intents_map_to_hold_status() {
        let eur = |v| Money::new(v, Currency::parse("EUR").unwrap());
        let held = status_of(
            r#"{"id":"pi_1","status":"requires_capture","amount":5000,
                "amount_capturable":7000,"currency":"eur"}"#,
        )
        .unwrap();
        assert_eq!(held.state, HoldState::Authorized);
        assert_eq!(held.authorized, eur(7000));
        assert_eq!(held.capture_ref, None);

        let declined = status_of(
            r#"{"id":"pi_2","status":"requires_payment_method","amount":5000,"currency":"eur",
                "latest_charge":{"id":"ch_2","amount":5000}}"#,
        )
        .unwrap();
        assert_eq!(declined.state, HoldState::Failed);
        assert_eq!(declined.authorized, eur(0));

        // Canceled before any charge was made: nothing was ever held.
        let abandoned = status_of(
            r#"{"id":"pi_3","status":"canceled","amount":5000,"currency":"eur","latest_charge":null}"#,
        )
        .unwrap();
        assert_eq!(abandoned.state, HoldState::Failed);
        let voided = status_of(
            r#"{"id":"pi_4","status":"canceled","amount":5000,"currency":"eur","latest_charge":"ch_4"}"#,
        )
        .unwrap();
        assert_eq!(voided.state, HoldState::Voided);
        assert_eq!(voided.authorized, eur(5000));

        // Captured without an expanded charge: refunds unknown, so no answer.
        assert_eq!(
            status_of(
                r#"{"id":"pi_5","status":"succeeded","amount":5000,"currency":"eur","latest_charge":"ch_5"}"#,
            ),
            Err(AcquirerError::Invalid(InvalidReason::BadResponse))
        );
        assert_eq!(
            status_of(r#"{"id":"pi_6","status":"something_new","amount":5000,"currency":"eur"}"#),
            Err(AcquirerError::Invalid(InvalidReason::BadResponse))
        );
    }

    #[test]
    fn forms_encode_nested_names() {
        let mut f = Form::new();
        f.pair("card[exp_month]", "7");
        f.pair("metadata[reference]", "a b&c");
        assert_eq!(
            f.finish().as_str(),
            "card%5Bexp_month%5D=7&metadata%5Breference%5D=a+b%26c"
        );
    }
}
