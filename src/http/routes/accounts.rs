//! `/v1/accounts`: drivers and fleets, their payment methods (tokens), RFID
//! cards and charging history. POSTs take an Idempotency-Key.

use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{OriginalUri, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use super::billing::{HistoryParams, billing_error, history_query};
use super::payments::idem_key;
use super::tokens::{caller, once_with_json, service_error};
use crate::accounts::AccountKind;
use crate::accounts::service::{
    AccountError, AccountPage, AccountView, MAX_PAGE, MethodView, NewAccount, RfidView,
};
use crate::auth::Principal;
use crate::billing::service::HistoryPage;
use crate::http::AppState;
use crate::http::auth::RequestOrigin;
use crate::http::error::ApiError;
use crate::idempotency::IdempotencyKey;
use crate::ids::AccountId;
use crate::paging::Cursor;
use crate::store::StoreError;
use crate::tokens::service::Caller;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AccountCreate {
    pub kind: AccountKind,
    pub name: String,
    /// Where receipts and invoices are mailed.
    pub email: Option<String>,
    /// A driver billed through a fleet account of the same tenant.
    pub fleet_id: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PaymentMethodAdd {
    /// A token of this tenant.
    pub token: String,
    /// Make it the one a tap charges (the first method always is).
    #[serde(default)]
    pub default: bool,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RfidRegister {
    /// ISO 14443 UID, 4, 7 or 10 bytes in hex (`:`, `-` or spaces between bytes allowed).
    pub uid: String,
    pub label: Option<String>,
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct PageParams {
    pub cursor: Option<String>,
    /// 1 to 100 (default 50).
    pub limit: Option<String>,
}

pub fn account_error(error: AccountError) -> ApiError {
    use AccountError as E;
    let status = |status: StatusCode, code: &'static str, e: &E| {
        ApiError::new(status, code).with_detail(e.to_string())
    };
    match error {
        E::InvalidField(..) => status(StatusCode::UNPROCESSABLE_ENTITY, "invalid_field", &error),
        E::NotFound => ApiError::new(StatusCode::NOT_FOUND, "account_not_found"),
        E::MethodExists => status(StatusCode::CONFLICT, "payment_method_exists", &error),
        E::MethodNotFound => ApiError::new(StatusCode::NOT_FOUND, "payment_method_not_found"),
        E::RfidExists => status(StatusCode::CONFLICT, "rfid_card_exists", &error),
        E::RfidNotFound => ApiError::new(StatusCode::NOT_FOUND, "rfid_card_not_found"),
        E::RfidUnknown => status(
            StatusCode::UNPROCESSABLE_ENTITY,
            "rfid_card_unknown",
            &error,
        ),
        E::RfidBlocked => status(
            StatusCode::UNPROCESSABLE_ENTITY,
            "rfid_card_blocked",
            &error,
        ),
        E::PayerUnknown => status(StatusCode::UNPROCESSABLE_ENTITY, "account_unknown", &error),
        E::NoPaymentMethod => status(
            StatusCode::UNPROCESSABLE_ENTITY,
            "account_without_payment_method",
            &error,
        ),
        E::Tokens(e) => service_error(e),
        E::Store(StoreError::Unavailable) => ApiError::unavailable("database_unavailable"),
        E::Store(_) => ApiError::internal(),
        E::Audit(_) => ApiError::unavailable("audit_unavailable"),
    }
}

pub(crate) fn account_id(raw: &str) -> Result<AccountId, ApiError> {
    raw.parse()
        .map_err(|_| ApiError::new(StatusCode::NOT_FOUND, "account_not_found"))
}

/// What a POST under `/v1/accounts/{id}` hands to [`account_post`].
pub(crate) struct AccountPost<'a> {
    pub state: &'a AppState,
    pub principal: &'a Principal,
    pub origin: &'a RequestOrigin,
    pub headers: &'a HeaderMap,
    pub path: &'a str,
    /// The `{id}` of the path, as sent.
    pub account: &'a str,
    pub body: &'a [u8],
}

/// The shell of every POST under `/v1/accounts/{id}`: an id that is not one
/// is an unknown account (404); then the Idempotency-Key replay and the JSON
/// body. `work` gets the caller, the account, the key and the body.
pub(crate) async fn account_post<T, F, Fut>(req: AccountPost<'_>, work: F) -> Response
where
    T: serde::de::DeserializeOwned,
    F: FnOnce(Caller, AccountId, IdempotencyKey, T) -> Fut,
    Fut: Future<Output = Response>,
{
    let id = match account_id(req.account) {
        Ok(id) => id,
        Err(e) => return e.into_response(),
    };
    let caller = caller(req.principal, req.origin);
    let headers = req.headers;
    once_with_json(
        req.state,
        req.principal,
        headers,
        req.path,
        req.body,
        |parsed: T| async move {
            // `once_with_json` has checked the key already.
            match idem_key(req.state, headers) {
                Ok(key) => work(caller, id, key, parsed).await,
                Err(e) => e.into_response(),
            }
        },
    )
    .await
}

fn json<T: serde::Serialize>(status: StatusCode, result: Result<T, AccountError>) -> Response {
    match result {
        Ok(value) => (status, axum::Json(value)).into_response(),
        Err(e) => account_error(e).into_response(),
    }
}

/// Opens an account for a driver or a fleet.
#[utoipa::path(post, path = "/v1/accounts", tag = "accounts", request_body = AccountCreate,
    params(("Idempotency-Key" = String, Header, description = "required on every mutating request")),
    responses((status = 201, body = AccountView), (status = 422, body = crate::http::error::Problem)))]
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
    once_with_json(
        st,
        &principal,
        &headers,
        uri.path(),
        &body,
        |body: AccountCreate| async move {
            let fleet = match body.fleet_id.as_deref().map(str::parse).transpose() {
                Ok(fleet) => fleet,
                Err(_) => {
                    return account_error(AccountError::InvalidField(
                        "fleet_id",
                        "no fleet account of this tenant",
                    ))
                    .into_response();
                }
            };
            let new = NewAccount {
                kind: body.kind,
                name: body.name,
                email: body.email,
                fleet,
            };
            json(StatusCode::CREATED, st.accounts.create(&caller, new).await)
        },
    )
    .await
}

/// The tenant's accounts, oldest first, a page at a time.
#[utoipa::path(get, path = "/v1/accounts", tag = "accounts", params(PageParams),
    responses((status = 200, body = AccountPage), (status = 400, body = crate::http::error::Problem)))]
pub async fn list(
    State(state): State<AppState>,
    principal: Principal,
    params: Result<Query<PageParams>, QueryRejection>,
) -> Response {
    let Ok(Query(p)) = params else {
        return ApiError::bad_request("invalid_query", "cursor and limit only").into_response();
    };
    let after = match p.cursor.as_deref().map(Cursor::<AccountId>::decode) {
        None => None,
        Some(Some(c)) => Some((c.created_at, c.id)),
        Some(None) => {
            return ApiError::bad_request("invalid_cursor", "cursor: use next_cursor as given")
                .into_response();
        }
    };
    let limit = match p.limit.as_deref().map(str::parse::<u32>) {
        None => 50,
        Some(Ok(l)) if (1..=MAX_PAGE).contains(&l) => l,
        Some(_) => {
            return ApiError::bad_request("invalid_limit", "limit: 1 to 100").into_response();
        }
    };
    json(
        StatusCode::OK,
        state.accounts.list(principal.tenant, after, limit).await,
    )
}

#[utoipa::path(get, path = "/v1/accounts/{id}", tag = "accounts", params(("id" = String, Path)),
    responses((status = 200, body = AccountView), (status = 404, body = crate::http::error::Problem)))]
pub async fn get(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Response {
    match account_id(&id) {
        Ok(id) => json(
            StatusCode::OK,
            state.accounts.get(principal.tenant, id).await,
        ),
        Err(e) => e.into_response(),
    }
}

/// Attaches a token; the first one becomes the default a tap charges.
#[utoipa::path(post, path = "/v1/accounts/{id}/payment-methods", tag = "accounts",
    request_body = PaymentMethodAdd,
    params(("id" = String, Path), ("Idempotency-Key" = String, Header, description = "required on every mutating request")),
    responses((status = 201, body = MethodView), (status = 404, body = crate::http::error::Problem),
        (status = 409, body = crate::http::error::Problem)))]
pub async fn add_payment_method(
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
    account_post(req, |caller, id, _, body: PaymentMethodAdd| async move {
        json(
            StatusCode::CREATED,
            st.accounts
                .add_payment_method(&caller, id, &body.token, body.default)
                .await,
        )
    })
    .await
}

/// The account's tokens with brand, last four and expiry.
#[utoipa::path(get, path = "/v1/accounts/{id}/payment-methods", tag = "accounts",
    params(("id" = String, Path)),
    responses((status = 200, body = [MethodView]), (status = 404, body = crate::http::error::Problem)))]
pub async fn payment_methods(
    State(state): State<AppState>,
    principal: Principal,
    origin: RequestOrigin,
    Path(id): Path<String>,
) -> Response {
    match account_id(&id) {
        Ok(id) => json(
            StatusCode::OK,
            state
                .accounts
                .payment_methods(&caller(&principal, &origin), id)
                .await,
        ),
        Err(e) => e.into_response(),
    }
}

/// Detaches a token (the token itself stays; delete it at `/v1/tokens`).
#[utoipa::path(delete, path = "/v1/accounts/{id}/payment-methods/{token}", tag = "accounts",
    params(("id" = String, Path), ("token" = String, Path)),
    responses((status = 204), (status = 404, body = crate::http::error::Problem)))]
pub async fn remove_payment_method(
    State(state): State<AppState>,
    principal: Principal,
    origin: RequestOrigin,
    Path((id, token)): Path<(String, String)>,
) -> Response {
    let id = match account_id(&id) {
        Ok(id) => id,
        Err(e) => return e.into_response(),
    };
    match state
        .accounts
        .remove_payment_method(&caller(&principal, &origin), id, &token)
        .await
    {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => account_error(e).into_response(),
    }
}

/// Registers an RFID card: a tap with it charges the account.
#[utoipa::path(post, path = "/v1/accounts/{id}/rfid-cards", tag = "accounts",
    request_body = RfidRegister,
    params(("id" = String, Path), ("Idempotency-Key" = String, Header, description = "required on every mutating request")),
    responses((status = 201, body = RfidView), (status = 409, body = crate::http::error::Problem),
        (status = 422, body = crate::http::error::Problem)))]
pub async fn register_rfid(
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
    account_post(req, |caller, id, _, body: RfidRegister| async move {
        json(
            StatusCode::CREATED,
            st.accounts
                .register_rfid(&caller, id, &body.uid, body.label)
                .await,
        )
    })
    .await
}

#[utoipa::path(get, path = "/v1/accounts/{id}/rfid-cards", tag = "accounts",
    params(("id" = String, Path)),
    responses((status = 200, body = [RfidView]), (status = 404, body = crate::http::error::Problem)))]
pub async fn rfid_cards(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Response {
    match account_id(&id) {
        Ok(id) => json(
            StatusCode::OK,
            state.accounts.rfid_cards(principal.tenant, id).await,
        ),
        Err(e) => e.into_response(),
    }
}

/// Blocks a card (lost or stolen): it starts no more sessions.
#[utoipa::path(delete, path = "/v1/accounts/{id}/rfid-cards/{uid}", tag = "accounts",
    params(("id" = String, Path), ("uid" = String, Path)),
    responses((status = 204), (status = 404, body = crate::http::error::Problem)))]
pub async fn block_rfid(
    State(state): State<AppState>,
    principal: Principal,
    origin: RequestOrigin,
    Path((id, uid)): Path<(String, String)>,
) -> Response {
    let id = match account_id(&id) {
        Ok(id) => id,
        Err(e) => return e.into_response(),
    };
    match state
        .accounts
        .block_rfid(&caller(&principal, &origin), id, &uid)
        .await
    {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => account_error(e).into_response(),
    }
}

/// The account's charging history, oldest first, with the same filters as
/// `GET /v1/payment-sessions`.
#[utoipa::path(get, path = "/v1/accounts/{id}/sessions", tag = "accounts",
    params(("id" = String, Path), HistoryParams),
    responses((status = 200, body = HistoryPage), (status = 404, body = crate::http::error::Problem)))]
pub async fn sessions(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
    params: Result<Query<HistoryParams>, QueryRejection>,
) -> Result<axum::Json<HistoryPage>, ApiError> {
    let id = account_id(&id)?;
    state
        .accounts
        .get(principal.tenant, id)
        .await
        .map_err(account_error)?;
    let mut query = history_query(&principal, params)?;
    query.account = Some(id);
    let page = state.billing.history(query).await.map_err(billing_error)?;
    Ok(axum::Json(page))
}
