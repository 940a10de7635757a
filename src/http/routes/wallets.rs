//! `/v1/accounts/{id}/wallet`: an account's prepaid wallet, its settings,
//! balance and latest entries, and top-ups charged to a token.

use axum::body::Bytes;
use axum::extract::{OriginalUri, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use utoipa::ToSchema;

use super::accounts::{AccountPost, account_id, account_post};
use super::tokens::caller;
use crate::auth::Principal;
use crate::http::AppState;
use crate::http::auth::RequestOrigin;
use crate::http::error::ApiError;
use crate::http::extract::Json;
use crate::money::{Currency, Money};
use crate::payments::connectors::AcquirerError;
use crate::store::StoreError;
use crate::wallets::service::{TopUpView, WalletConfig, WalletError, WalletView};

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WalletPut {
    /// ISO 4217; fixed once the wallet has held money.
    pub currency: String,
    /// Minor units: a debit that takes the balance below it sends one
    /// `wallet.low_balance` event.
    pub low_balance_threshold: i64,
    /// Tap and account sessions pay from the wallet instead of the default token.
    #[serde(default)]
    pub pays_sessions: bool,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AmountIn {
    pub value: i64,
    pub currency: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TopUpCreate {
    pub amount: AmountIn,
    /// A payment method of the account; its default when absent.
    pub token: Option<String>,
}

pub fn wallet_error(error: WalletError) -> ApiError {
    use WalletError as E;
    let with = |status: StatusCode, code: &'static str, e: &E| {
        ApiError::new(status, code).with_detail(e.to_string())
    };
    match error {
        E::InvalidField(..) => with(StatusCode::UNPROCESSABLE_ENTITY, "invalid_field", &error),
        E::AccountNotFound => ApiError::new(StatusCode::NOT_FOUND, "account_not_found"),
        E::NoWallet => with(StatusCode::NOT_FOUND, "wallet_not_found", &error),
        E::CurrencyFixed => with(StatusCode::CONFLICT, "wallet_currency_fixed", &error),
        E::CurrencyMismatch(_) => with(
            StatusCode::UNPROCESSABLE_ENTITY,
            "currency_mismatch",
            &error,
        ),
        E::NotAMethod => with(
            StatusCode::UNPROCESSABLE_ENTITY,
            "token_not_a_payment_method",
            &error,
        ),
        E::NoPaymentMethod => with(
            StatusCode::UNPROCESSABLE_ENTITY,
            "account_without_payment_method",
            &error,
        ),
        E::NoAcquirer => ApiError::unavailable("payments_unavailable"),
        E::Refused(e @ AcquirerError::Declined(code)) => {
            ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, e.code())
                .with_detail(format!("the card was declined: {}", code.code()))
        }
        // The token was deleted since, or its key is gone: the caller's to fix.
        E::Refused(e @ AcquirerError::CardUnavailable) => {
            ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, e.code())
                .with_detail("the payment method cannot be charged")
        }
        E::Refused(e) => ApiError::new(StatusCode::BAD_GATEWAY, e.code())
            .with_detail("the acquirer refused the top-up"),
        E::Unknown => with(
            StatusCode::SERVICE_UNAVAILABLE,
            "acquirer_outcome_unknown",
            &error,
        ),
        E::Store(StoreError::Unavailable) => ApiError::unavailable("database_unavailable"),
        E::Store(_) => ApiError::internal(),
        E::Audit(_) => ApiError::unavailable("audit_unavailable"),
    }
}

fn currency(raw: &str) -> Result<Currency, ApiError> {
    Currency::parse(raw).map_err(|e| {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, e.code()).with_detail(e.to_string())
    })
}

fn json<T: serde::Serialize>(status: StatusCode, result: Result<T, WalletError>) -> Response {
    match result {
        Ok(value) => (status, axum::Json(value)).into_response(),
        Err(e) => wallet_error(e).into_response(),
    }
}

/// Opens the account's wallet, or changes its threshold and whether
/// sessions pay from it. The same body again changes nothing.
#[utoipa::path(put, path = "/v1/accounts/{id}/wallet", tag = "accounts", request_body = WalletPut,
    params(("id" = String, Path)),
    responses((status = 200, body = WalletView), (status = 404, body = crate::http::error::Problem),
        (status = 409, body = crate::http::error::Problem), (status = 422, body = crate::http::error::Problem)))]
pub async fn put(
    State(state): State<AppState>,
    principal: Principal,
    origin: RequestOrigin,
    Path(id): Path<String>,
    Json(body): Json<WalletPut>,
) -> Response {
    let id = match account_id(&id) {
        Ok(id) => id,
        Err(e) => return e.into_response(),
    };
    let currency = match currency(&body.currency) {
        Ok(c) => c,
        Err(e) => return e.into_response(),
    };
    let config = WalletConfig {
        currency,
        low_balance_threshold: body.low_balance_threshold,
        pays_sessions: body.pays_sessions,
    };
    json(
        StatusCode::OK,
        state
            .wallets
            .configure(&caller(&principal, &origin), id, config)
            .await,
    )
}

/// Balance, reserved and available amounts, the threshold and the latest entries.
#[utoipa::path(get, path = "/v1/accounts/{id}/wallet", tag = "accounts",
    params(("id" = String, Path)),
    responses((status = 200, body = WalletView), (status = 404, body = crate::http::error::Problem)))]
pub async fn get(
    State(state): State<AppState>,
    principal: Principal,
    origin: RequestOrigin,
    Path(id): Path<String>,
) -> Response {
    match account_id(&id) {
        Ok(id) => json(
            StatusCode::OK,
            state.wallets.get(&caller(&principal, &origin), id).await,
        ),
        Err(e) => e.into_response(),
    }
}

/// Charges a token (hold, then capture) and credits the wallet once the
/// capture succeeded. A decline answers 422 and credits nothing.
#[utoipa::path(post, path = "/v1/accounts/{id}/wallet/top-ups", tag = "accounts",
    request_body = TopUpCreate,
    params(("id" = String, Path), ("Idempotency-Key" = String, Header, description = "required on every mutating request")),
    responses((status = 201, body = TopUpView), (status = 404, body = crate::http::error::Problem),
        (status = 422, body = crate::http::error::Problem), (status = 503, body = crate::http::error::Problem)))]
pub async fn top_up(
    State(state): State<AppState>,
    principal: Principal,
    origin: RequestOrigin,
    headers: HeaderMap,
    OriginalUri(uri): OriginalUri,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let st = &state;
    let req = AccountPost {
        state: st,
        principal: &principal,
        origin: &origin,
        headers: &headers,
        path: uri.path(),
        account: &id,
        body: &body,
    };
    account_post(req, |caller, id, key, body: TopUpCreate| async move {
        let currency = match currency(&body.amount.currency) {
            Ok(c) => c,
            Err(e) => return e.into_response(),
        };
        let amount = Money::new(body.amount.value, currency);
        json(
            StatusCode::CREATED,
            st.wallets
                .top_up(&caller, id, &key, amount, body.token)
                .await,
        )
    })
    .await
}
