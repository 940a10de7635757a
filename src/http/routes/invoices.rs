//! `/v1/invoices`: issue an account's invoice for a month that has ended,
//! read invoices, list them with filters a page at a time.

use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{OriginalUri, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use super::billing::billing_error;
use super::tokens::{caller, once_with_json};
use crate::auth::Principal;
use crate::billing::invoice::BillingPeriod;
use crate::billing::invoices::{InvoicePage, InvoiceServiceError, InvoiceView, MAX_PAGE};
use crate::http::AppState;
use crate::http::auth::RequestOrigin;
use crate::http::error::ApiError;
use crate::ids::{AccountId, InvoiceId};
use crate::paging::Cursor;
use crate::store::StoreError;
use crate::store::invoices::InvoiceQuery;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InvoiceCreate {
    pub account_id: String,
    /// `YYYY-MM`: a calendar month in UTC that has ended.
    pub period: String,
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct InvoiceParams {
    pub account_id: Option<String>,
    /// `YYYY-MM`.
    pub period: Option<String>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// 1 to 100 (default 50).
    pub limit: Option<String>,
}

pub fn invoice_error(error: InvoiceServiceError) -> ApiError {
    use InvoiceServiceError as E;
    let unprocessable = |code: &'static str, e: &E| {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, code).with_detail(e.to_string())
    };
    match error {
        E::UnknownAccount => unprocessable("account_unknown", &error),
        E::PeriodOpen => unprocessable("period_not_ended", &error),
        E::Invoice(crate::billing::invoice::InvoiceError::NothingToInvoice) => {
            unprocessable("nothing_to_invoice", &error)
        }
        E::Invoice(_) => unprocessable("invoice_not_possible", &error),
        E::Exists => {
            ApiError::new(StatusCode::CONFLICT, "invoice_exists").with_detail(error.to_string())
        }
        E::NotFound => ApiError::new(StatusCode::NOT_FOUND, "invoice_not_found"),
        E::Billing(e) => billing_error(e),
        E::Store(StoreError::Unavailable) => ApiError::unavailable("database_unavailable"),
        E::Store(_) => ApiError::internal(),
        E::Audit(_) => ApiError::unavailable("audit_unavailable"),
    }
}

fn period(raw: &str) -> Result<BillingPeriod, ApiError> {
    BillingPeriod::parse(raw).ok_or_else(|| {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_field")
            .with_detail("period: YYYY-MM")
    })
}

/// Issues the account's invoice for a month that has ended: a line per
/// completed session (a fleet's include its drivers'), a VAT summary, and
/// the tenant's next gapless number. Announced as `invoice.issued`.
#[utoipa::path(post, path = "/v1/invoices", tag = "billing", request_body = InvoiceCreate,
    params(("Idempotency-Key" = String, Header, description = "required on every mutating request")),
    responses((status = 201, body = InvoiceView), (status = 409, body = crate::http::error::Problem),
        (status = 422, body = crate::http::error::Problem)))]
pub async fn issue(
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
        |body: InvoiceCreate| async move {
            let period = match period(&body.period) {
                Ok(p) => p,
                Err(e) => return e.into_response(),
            };
            let Ok(account) = body.account_id.parse::<AccountId>() else {
                return invoice_error(InvoiceServiceError::UnknownAccount).into_response();
            };
            match st.invoices.issue(&caller, account, period).await {
                Ok(view) => (StatusCode::CREATED, axum::Json(view)).into_response(),
                Err(e) => invoice_error(e).into_response(),
            }
        },
    )
    .await
}

#[utoipa::path(get, path = "/v1/invoices/{id}", tag = "billing", params(("id" = String, Path)),
    responses((status = 200, body = InvoiceView), (status = 404, body = crate::http::error::Problem)))]
pub async fn get(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<axum::Json<InvoiceView>, ApiError> {
    let id: InvoiceId = id
        .parse()
        .map_err(|_| ApiError::new(StatusCode::NOT_FOUND, "invoice_not_found"))?;
    let view = state
        .invoices
        .get(principal.tenant, id)
        .await
        .map_err(invoice_error)?;
    Ok(axum::Json(view))
}

/// The tenant's invoices in the order they were issued, by account and
/// month, a page at a time.
#[utoipa::path(get, path = "/v1/invoices", tag = "billing", params(InvoiceParams),
    responses((status = 200, body = InvoicePage), (status = 400, body = crate::http::error::Problem)))]
pub async fn list(
    State(state): State<AppState>,
    principal: Principal,
    params: Result<Query<InvoiceParams>, QueryRejection>,
) -> Result<axum::Json<InvoicePage>, ApiError> {
    let Query(p) = params.map_err(|_| {
        ApiError::bad_request("invalid_query", "account_id, period, cursor and limit only")
    })?;
    let account = p
        .account_id
        .as_deref()
        .map(|a| {
            a.parse::<AccountId>().map_err(|_| {
                ApiError::bad_request("invalid_account_id", "account_id: an account id")
            })
        })
        .transpose()?;
    let period = p
        .period
        .as_deref()
        .map(|raw| {
            BillingPeriod::parse(raw)
                .map(|p| p.to_string())
                .ok_or_else(|| ApiError::bad_request("invalid_period", "period: YYYY-MM"))
        })
        .transpose()?;
    let after = p
        .cursor
        .as_deref()
        .map(|c| {
            Cursor::<InvoiceId>::decode(c)
                .map(|c| (c.created_at, c.id))
                .ok_or_else(|| {
                    ApiError::bad_request("invalid_cursor", "cursor: use next_cursor as given")
                })
        })
        .transpose()?;
    let limit = match p.limit.as_deref() {
        None => 50,
        Some(l) => l
            .parse::<u32>()
            .ok()
            .filter(|l| (1..=MAX_PAGE).contains(l))
            .ok_or_else(|| ApiError::bad_request("invalid_limit", "limit: 1 to 100"))?,
    };
    let page = state
        .invoices
        .list(InvoiceQuery {
            tenant: principal.tenant,
            account,
            period,
            after,
            limit,
        })
        .await
        .map_err(invoice_error)?;
    Ok(axum::Json(page))
}
