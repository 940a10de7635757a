//! `/v1/payment-sessions`: the EV charge — hold, meter, complete, cancel,
//! refund. Every POST takes an Idempotency-Key; answers are small: status,
//! amounts and a line for the charger's screen.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, OriginalUri, Path, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use utoipa::ToSchema;

use super::tokens::{CardInput, caller, once_with_json, parse_card, service_error};
use crate::accounts::RfidUid;
use crate::accounts::service::AccountError;
use crate::auth::Principal;
use crate::http::AppState;
use crate::http::auth::RequestOrigin;
use crate::http::error::ApiError;
use crate::http::idempotency::IDEMPOTENCY_KEY;
use crate::idempotency::IdempotencyKey;
use crate::ids::PaymentSessionId;
use crate::money::Money;
use crate::payments::service::{
    CreateSession, PaymentError, PaymentMethod, PaymentService, Reading, SessionView,
};
use crate::store::StoreError;
use crate::tokens::service::{Caller, TokenizeRequest};

/// Exactly one of these.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PaymentMethodBody {
    pub token: Option<String>,
    /// A card read at the charger: tokenized on the way in.
    pub card: Option<CardInput>,
    pub rfid_uid: Option<String>,
    pub account_id: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateSessionBody {
    /// e.g. `DE*ABC*E000123*1`
    pub evse_id: String,
    pub connector_id: String,
    pub tariff_id: String,
    pub payment_method: PaymentMethodBody,
    /// The pre-authorization hold.
    pub hold: Money,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MeterBody {
    /// The meter register (cumulative), in Wh.
    pub energy_wh: i64,
    pub at: DateTime<Utc>,
}

/// The final reading; both fields or neither.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CompleteBody {
    pub energy_wh: Option<i64>,
    pub at: Option<DateTime<Utc>>,
}

/// Nothing to say: `{}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CancelBody {}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefundBody {
    /// Defaults to everything captured and not yet refunded.
    pub amount: Option<Money>,
    pub reason: String,
}

pub fn payment_error(error: PaymentError) -> ApiError {
    use PaymentError as E;
    let unprocessable = |code: &'static str, e: &E| {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, code).with_detail(e.to_string())
    };
    match error {
        E::Tokens(e) => service_error(e),
        E::Account(e) => super::accounts::account_error(e),
        E::UnknownTariff => unprocessable("unknown_tariff", &error),
        E::CurrencyMismatch(_) => unprocessable("currency_mismatch", &error),
        E::HoldOutOfRange(_) => unprocessable("hold_out_of_range", &error),
        E::InvalidField(..) => unprocessable("invalid_field", &error),
        E::MethodUnavailable(_) => unprocessable("payment_method_unavailable", &error),
        E::Pricing(ref e) => unprocessable(e.code(), &error),
        E::Refund(_) => unprocessable("invalid_refund_amount", &error),
        E::Acquirer(e) => ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, e.code())
            .with_detail("the acquirer refused the refund"),
        E::NotFound => ApiError::new(StatusCode::NOT_FOUND, "payment_session_not_found"),
        E::WrongState(_) => {
            ApiError::new(StatusCode::CONFLICT, "session_state").with_detail(error.to_string())
        }
        E::Busy => {
            ApiError::new(StatusCode::CONFLICT, "session_busy").with_detail(error.to_string())
        }
        E::Store(StoreError::Unavailable) => ApiError::unavailable("database_unavailable"),
        E::Store(_) => ApiError::internal(),
        E::Audit(_) => ApiError::unavailable("audit_unavailable"),
    }
}

fn service(state: &AppState) -> Result<&Arc<PaymentService>, ApiError> {
    state.payments.as_ref().ok_or_else(|| {
        ApiError::unavailable("payments_not_configured")
            .with_detail("this deployment has no acquirer configured")
    })
}

/// The key `once_with_json` has already checked, in its stored form.
pub(crate) fn idem_key(state: &AppState, headers: &HeaderMap) -> Result<IdempotencyKey, ApiError> {
    headers
        .get(IDEMPOTENCY_KEY)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| IdempotencyKey::parse(v).ok())
        .map(|key| key.at_rest(state.auth.keys()))
        .ok_or_else(|| ApiError::bad_request("invalid_idempotency_key", "Idempotency-Key"))
}

fn parse_id(raw: &str) -> Result<PaymentSessionId, ApiError> {
    raw.parse()
        .map_err(|_| ApiError::new(StatusCode::NOT_FOUND, "payment_session_not_found"))
}

fn payment_method(state: &AppState, body: PaymentMethodBody) -> Result<PaymentMethod, ApiError> {
    let given = [
        body.token.is_some(),
        body.card.is_some(),
        body.rfid_uid.is_some(),
        body.account_id.is_some(),
    ]
    .iter()
    .filter(|g| **g)
    .count();
    if given != 1 {
        return Err(
            ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_payment_method")
                .with_detail("payment_method: exactly one of token, card, rfid_uid, account_id"),
        );
    }
    if let Some(token) = body.token {
        return Ok(PaymentMethod::Token(token));
    }
    if let Some(input) = body.card {
        let (card, cvc) = parse_card(state, &input).map_err(service_error)?;
        return Ok(PaymentMethod::Card {
            request: TokenizeRequest {
                card,
                holder_name: input.holder_name,
                format: Default::default(),
                expires_at: None,
                metadata: None,
            },
            cvc,
        });
    }
    if let Some(raw) = body.rfid_uid {
        let uid = RfidUid::parse(&raw).ok_or_else(|| {
            ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_field")
                .with_detail("rfid_uid: an ISO 14443 UID: 4, 7 or 10 bytes in hex")
        })?;
        return Ok(PaymentMethod::Rfid(uid));
    }
    let raw = body.account_id.unwrap_or_default();
    // An id that is not one is an account nobody has.
    let id = raw
        .parse()
        .map_err(|_| payment_error(PaymentError::Account(AccountError::PayerUnknown)))?;
    Ok(PaymentMethod::Account(id))
}

fn answer(status: StatusCode, result: Result<SessionView, PaymentError>) -> Response {
    match result {
        Ok(view) => (status, axum::Json(view)).into_response(),
        Err(e) => payment_error(e).into_response(),
    }
}

/// What every POST hands to the shell.
struct Incoming<'a> {
    state: &'a AppState,
    principal: &'a Principal,
    headers: &'a HeaderMap,
    path: &'a str,
    body: &'a [u8],
}

/// The shell every POST shares: the service, the key, the parsed body.
async fn post<T, F, Fut>(req: Incoming<'_>, work: F) -> Response
where
    T: serde::de::DeserializeOwned,
    F: FnOnce(Arc<PaymentService>, IdempotencyKey, T) -> Fut,
    Fut: Future<Output = Response>,
{
    let payments = match service(req.state) {
        Ok(p) => p.clone(),
        Err(e) => return e.into_response(),
    };
    let headers = req.headers;
    once_with_json(
        req.state,
        req.principal,
        headers,
        req.path,
        req.body,
        |parsed: T| async {
            match idem_key(req.state, headers) {
                Ok(key) => work(payments, key, parsed).await,
                Err(e) => e.into_response(),
            }
        },
    )
    .await
}

/// Open a payment session: the pre-authorization hold.
#[utoipa::path(post, path = "/v1/payment-sessions", tag = "payments", request_body = CreateSessionBody,
    params(("Idempotency-Key" = String, Header, description = "required on every mutating request")),
    responses((status = 201, body = SessionView), (status = 422, body = crate::http::error::Problem)))]
pub async fn create(
    State(state): State<AppState>,
    principal: Principal,
    origin: RequestOrigin,
    headers: HeaderMap,
    OriginalUri(uri): OriginalUri,
    body: Bytes,
) -> Response {
    let caller = caller(&principal, &origin);
    let st = &state;
    let req = Incoming {
        state: st,
        principal: &principal,
        headers: &headers,
        path: uri.path(),
        body: &body,
    };
    post(req, |payments, key, b: CreateSessionBody| async move {
        let method = match payment_method(st, b.payment_method) {
            Ok(m) => m,
            Err(e) => return e.into_response(),
        };
        let request = CreateSession {
            evse_id: b.evse_id,
            connector_id: b.connector_id,
            tariff_id: b.tariff_id,
            method,
            hold: b.hold,
        };
        answer(
            StatusCode::CREATED,
            payments.create(&caller, &key, request).await,
        )
    })
    .await
}

/// A session's state and live cost.
#[utoipa::path(get, path = "/v1/payment-sessions/{id}", tag = "payments",
    params(("id" = String, Path)),
    responses((status = 200, body = SessionView), (status = 404, body = crate::http::error::Problem)))]
pub async fn get(
    State(state): State<AppState>,
    principal: Principal,
    origin: RequestOrigin,
    Path(id): Path<String>,
) -> Response {
    let payments = match service(&state) {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    match parse_id(&id) {
        Ok(id) => answer(
            StatusCode::OK,
            payments.get(&caller(&principal, &origin), id).await,
        ),
        Err(e) => e.into_response(),
    }
}

/// Everything a POST on one session brings: who asks and from where,
/// the session id from the path, the headers and the raw body.
pub struct SessionPost {
    state: AppState,
    principal: Principal,
    origin: RequestOrigin,
    headers: HeaderMap,
    path: String,
    id: String,
    body: Bytes,
}

impl FromRequest<AppState> for SessionPost {
    type Rejection = Response;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let (mut parts, body) = req.into_parts();
        let principal = Principal::from_request_parts(&mut parts, state)
            .await
            .map_err(IntoResponse::into_response)?;
        let origin = RequestOrigin::from_request_parts(&mut parts, state)
            .await
            .map_err(|never| match never {})?;
        let Path(id) = Path::<String>::from_request_parts(&mut parts, state)
            .await
            .map_err(IntoResponse::into_response)?;
        let OriginalUri(uri) = OriginalUri::from_request_parts(&mut parts, state)
            .await
            .map_err(|never| match never {})?;
        let headers = parts.headers.clone();
        let body = Bytes::from_request(Request::from_parts(parts, body), state)
            .await
            .map_err(IntoResponse::into_response)?;
        Ok(Self {
            state: state.clone(),
            principal,
            origin,
            headers,
            path: uri.path().to_owned(),
            id,
            body,
        })
    }
}

impl SessionPost {
    /// Runs `work` at most once per Idempotency-Key with the parsed body.
    async fn run<T, F, Fut>(self, work: F) -> Response
    where
        T: serde::de::DeserializeOwned,
        F: FnOnce(Arc<PaymentService>, Caller, PaymentSessionId, IdempotencyKey, T) -> Fut,
        Fut: Future<Output = Response>,
    {
        let id = match parse_id(&self.id) {
            Ok(id) => id,
            Err(e) => return e.into_response(),
        };
        let caller = caller(&self.principal, &self.origin);
        let req = Incoming {
            state: &self.state,
            principal: &self.principal,
            headers: &self.headers,
            path: &self.path,
            body: &self.body,
        };
        post(req, |payments, key, parsed: T| {
            work(payments, caller, id, key, parsed)
        })
        .await
    }
}

/// A cumulative meter reading: the live cost, and whether to keep charging.
#[utoipa::path(post, path = "/v1/payment-sessions/{id}/meter", tag = "payments", request_body = MeterBody,
    params(("id" = String, Path), ("Idempotency-Key" = String, Header, description = "required on every mutating request")),
    responses((status = 200, body = SessionView), (status = 409, body = crate::http::error::Problem)))]
pub async fn meter(post: SessionPost) -> Response {
    post.run(|payments, caller, id, _key, b: MeterBody| async move {
        let reading = Reading {
            energy_wh: b.energy_wh,
            at: b.at,
        };
        answer(StatusCode::OK, payments.meter(&caller, id, reading).await)
    })
    .await
}

/// The end of charging: capture the cost (never more than held), release the rest.
#[utoipa::path(post, path = "/v1/payment-sessions/{id}/complete", tag = "payments", request_body = CompleteBody,
    params(("id" = String, Path), ("Idempotency-Key" = String, Header, description = "required on every mutating request")),
    responses((status = 200, body = SessionView), (status = 409, body = crate::http::error::Problem)))]
pub async fn complete(post: SessionPost) -> Response {
    post.run(|payments, caller, id, key, b: CompleteBody| async move {
        let reading = match (b.energy_wh, b.at) {
            (Some(energy_wh), Some(at)) => Some(Reading { energy_wh, at }),
            (None, None) => None,
            _ => {
                return ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_field")
                    .with_detail("energy_wh and at: both or neither")
                    .into_response();
            }
        };
        answer(
            StatusCode::OK,
            payments.complete(&caller, id, &key, reading).await,
        )
    })
    .await
}

/// Release the hold of a session that has not completed.
#[utoipa::path(post, path = "/v1/payment-sessions/{id}/cancel", tag = "payments", request_body = CancelBody,
    params(("id" = String, Path), ("Idempotency-Key" = String, Header, description = "required on every mutating request")),
    responses((status = 200, body = SessionView), (status = 409, body = crate::http::error::Problem)))]
pub async fn cancel(post: SessionPost) -> Response {
    post.run(|payments, caller, id, key, _: CancelBody| async move {
        answer(StatusCode::OK, payments.cancel(&caller, id, &key).await)
    })
    .await
}

/// Give back part or all of a completed session's capture.
#[utoipa::path(post, path = "/v1/payment-sessions/{id}/refunds", tag = "payments", request_body = RefundBody,
    params(("id" = String, Path), ("Idempotency-Key" = String, Header, description = "required on every mutating request")),
    responses((status = 200, body = SessionView), (status = 422, body = crate::http::error::Problem)))]
pub async fn refund(post: SessionPost) -> Response {
    post.run(|payments, caller, id, key, b: RefundBody| async move {
        answer(
            StatusCode::OK,
            payments.refund(&caller, id, &key, b.amount, b.reason).await,
        )
    })
    .await
}

/// The longest an event stream stays open (a session is released by then).
const EVENTS_MAX: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// Server-sent events: a `session` event with the live cost whenever the
/// session changes, then `final` once it has ended; a completed session
/// then sends its `receipt`, and the stream closes. A write on this node
/// wakes the stream at once (a reading is pushed as it is stored); the
/// stream also reads the session every `payments.events_poll_secs`, for
/// writes on other nodes.
#[utoipa::path(get, path = "/v1/payment-sessions/{id}/events", tag = "payments",
    params(("id" = String, Path)),
    responses((status = 200, description = "text/event-stream: `session` and `final` events carry SessionView \
documents; a completed session ends with a `receipt` event (the Receipt for callers with billing:read, \
otherwise its id, URL and total)"),
        (status = 404, body = crate::http::error::Problem)))]
pub async fn events(
    State(state): State<AppState>,
    principal: Principal,
    origin: RequestOrigin,
    Path(id): Path<String>,
) -> Response {
    use axum::response::sse::{Event, KeepAlive, Sse};
    let payments = match service(&state) {
        Ok(p) => p.clone(),
        Err(e) => return e.into_response(),
    };
    let id = match parse_id(&id) {
        Ok(id) => id,
        Err(e) => return e.into_response(),
    };
    let caller = caller(&principal, &origin);
    // The first read answers 404 for a session the caller cannot see.
    if let Err(e) = payments.get(&caller, id).await {
        return payment_error(e).into_response();
    }
    // The whole receipt only for those who may read receipts (a charger may not).
    let full_receipt = state.auth.policy().decide(
        &principal,
        crate::auth::Permission::BillingRead,
        state.env.clock.now(),
    ) == crate::auth::policy::Decision::Allow;
    let started = std::time::Instant::now();
    // Taken before the first read, so no write after it goes unseen.
    let watch = payments.watch(id);
    let poll = payments.events_poll();
    let stream = futures_util::stream::unfold(
        (None::<String>, Stage::Live, watch),
        move |(last, stage, mut watch)| {
            let (payments, caller, billing) =
                (payments.clone(), caller.clone(), state.billing.clone());
            async move {
                match stage {
                    Stage::Closed => return None,
                    Stage::Receipt => {
                        let data = receipt_event(&billing, caller.tenant, id, full_receipt).await?;
                        let event = Event::default().event("receipt").data(data);
                        return Some((Ok(event), (last, Stage::Closed, watch)));
                    }
                    Stage::Live if started.elapsed() > EVENTS_MAX => return None,
                    Stage::Live => {}
                }
                loop {
                    if last.is_some() {
                        watch.next(poll).await;
                    }
                    let view = payments.get(&caller, id).await.ok()?;
                    let json = serde_json::to_string(&view).ok()?;
                    let done = view.ended_at.is_some();
                    if last.as_deref() != Some(json.as_str()) || done {
                        let event = Event::default()
                            .event(if done { "final" } else { "session" })
                            .data(json.clone());
                        let next = match (done, view.status) {
                            (false, _) => Stage::Live,
                            (true, crate::payments::session::SessionStatus::Completed) => {
                                Stage::Receipt
                            }
                            (true, _) => Stage::Closed,
                        };
                        return Some((
                            Ok::<_, std::convert::Infallible>(event),
                            (Some(json), next, watch),
                        ));
                    }
                }
            }
        },
    );
    Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response()
}

/// Where an event stream stands.
#[derive(Clone, Copy)]
enum Stage {
    Live,
    /// The session completed: its receipt is next.
    Receipt,
    Closed,
}

/// The closing `receipt` event: the whole receipt, or what `receipt.ready`
/// says of it. `None` (the stream just ends) if it cannot be built, e.g.
/// its tariff version is not loaded on this node.
async fn receipt_event(
    billing: &crate::billing::service::BillingService,
    tenant: crate::ids::TenantId,
    session: PaymentSessionId,
    full: bool,
) -> Option<String> {
    let id = crate::billing::receipt::receipt_id(session);
    let receipt = billing.receipt(tenant, &id).await.ok()?;
    if full {
        return serde_json::to_string(&receipt).ok();
    }
    serde_json::to_string(&serde_json::json!({
        "receipt_id": receipt.id,
        "session_id": receipt.session_id,
        "url": receipt.url,
        "total": receipt.total_incl_vat,
        "currency": receipt.currency,
    }))
    .ok()
}
