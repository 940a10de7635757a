//! Billing routes: receipts (JSON, HTML or PDF by `Accept`), the charging
//! history and the accounting exports. The work is in
//! [`crate::billing::service`]; these turn query strings into its types and
//! its answers into HTTP.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use utoipa::IntoParams;

use super::tokens::caller;
use crate::auth::Principal;
use crate::auth::principal::PrincipalKind;
use crate::billing::exports::{Grouping, Revenue};
use crate::billing::receipt::{Receipt, ReceiptError};
use crate::billing::receipt_render;
use crate::billing::service::{
    BillingError, DEFAULT_PAGE, HistoryCursor, HistoryPage, MAX_EXPORT_DAYS, MAX_PAGE, Period,
};
use crate::http::AppState;
use crate::http::auth::RequestOrigin;
use crate::http::error::ApiError;
use crate::payments::session::SessionStatus;
use crate::store::StoreError;
use crate::store::billing::SessionQuery;

pub(crate) fn billing_error(error: BillingError) -> ApiError {
    use BillingError as E;
    match error {
        E::NotFound => ApiError::new(StatusCode::NOT_FOUND, "receipt_not_found"),
        E::Receipt(ref e @ ReceiptError::NotCompleted(_)) => {
            ApiError::new(StatusCode::CONFLICT, e.code()).with_detail(e.to_string())
        }
        E::Receipt(ref e @ ReceiptError::TariffVersionUnavailable { .. }) => {
            // The catalog moved on: the figures cannot be re-derived here,
            // and guessing them is worse than saying so.
            ApiError::new(StatusCode::CONFLICT, e.code()).with_detail(e.to_string())
        }
        E::Receipt(e) => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.code()),
        E::TooLarge => ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "export_too_large")
            .with_detail(error.to_string()),
        E::LocationUnknown(_) => {
            ApiError::new(StatusCode::CONFLICT, "location_unknown").with_detail(error.to_string())
        }
        E::Encode | E::Internal => ApiError::internal(),
        E::Store(StoreError::Unavailable) => ApiError::unavailable("database_unavailable"),
        E::Store(_) => ApiError::internal(),
        E::Audit(_) => ApiError::unavailable("audit_unavailable"),
    }
}

fn invalid_query(_: QueryRejection) -> ApiError {
    ApiError::bad_request("invalid_query", "unknown or malformed query parameter")
}

fn time(name: &str, text: &str) -> Result<DateTime<Utc>, ApiError> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| ApiError::bad_request("invalid_time", format!("{name}: an RFC 3339 time")))
}

fn check_order(from: Option<DateTime<Utc>>, to: Option<DateTime<Utc>>) -> Result<(), ApiError> {
    match (from, to) {
        (Some(f), Some(t)) if t <= f => Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_range",
        )
        .with_detail("to: must be after from")),
        _ => Ok(()),
    }
}

/// The formats a receipt comes in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Json,
    Html,
    Pdf,
}

/// The first supported type the `Accept` header names; JSON when it names
/// none in particular. `q` weights are not ranked: clients ask for one.
fn negotiate(headers: &HeaderMap) -> Option<Format> {
    let Some(accept) = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()) else {
        return Some(Format::Json);
    };
    let mut any = false;
    for range in accept.split(',') {
        let media = range.split(';').next().unwrap_or("").trim();
        match media.to_ascii_lowercase().as_str() {
            "application/json" | "application/*" => return Some(Format::Json),
            "text/html" | "text/*" => return Some(Format::Html),
            "application/pdf" => return Some(Format::Pdf),
            "*/*" | "" => any = true,
            _ => {}
        }
    }
    any.then_some(Format::Json)
}

/// The receipt of a completed session: JSON (default), HTML or PDF by `Accept`.
#[utoipa::path(get, path = "/v1/receipts/{id}", tag = "billing",
    params(("id" = String, Path, description = "`rcpt_<session id>`")),
    responses((status = 200, body = Receipt,
               content((Receipt = "application/json"), (String = "text/html"), (Vec<u8> = "application/pdf"))),
              (status = 404, body = crate::http::error::Problem),
              (status = 406, body = crate::http::error::Problem),
              (status = 409, description = "not completed, or its tariff version is not loaded", body = crate::http::error::Problem)))]
pub async fn receipt(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let format = negotiate(&headers).ok_or_else(|| {
        ApiError::new(StatusCode::NOT_ACCEPTABLE, "not_acceptable")
            .with_detail("Accept: application/json, text/html or application/pdf")
    })?;
    let receipt = state
        .billing
        .receipt(principal.tenant, &id)
        .await
        .map_err(billing_error)?;
    let mut response = match format {
        Format::Json => axum::Json(&receipt).into_response(),
        Format::Html => (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            )],
            receipt_render::html(&receipt),
        )
            .into_response(),
        Format::Pdf => {
            let mut r = (
                [(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/pdf"),
                )],
                receipt_render::pdf(&receipt),
            )
                .into_response();
            // The id is `rcpt_` and a UUID: nothing to escape.
            if let Ok(v) =
                HeaderValue::from_str(&format!("inline; filename=\"{}.pdf\"", receipt.id))
            {
                r.headers_mut().insert(header::CONTENT_DISPOSITION, v);
            }
            r
        }
    };
    response
        .headers_mut()
        .insert(header::VARY, HeaderValue::from_static("accept"));
    Ok(response)
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct HistoryParams {
    /// Sessions started at or after, RFC 3339.
    pub from: Option<String>,
    /// Sessions started before, RFC 3339.
    pub to: Option<String>,
    /// A session status, e.g. `completed`.
    pub status: Option<String>,
    pub evse_id: Option<String>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Page size, 1 to 100 (default 50).
    pub limit: Option<String>,
}

/// The charging history of the tenant, oldest first (by start, then id), a
/// page at a time. A charger sees the sessions it opened.
#[utoipa::path(get, path = "/v1/payment-sessions", tag = "payments", params(HistoryParams),
    responses((status = 200, body = HistoryPage),
              (status = 400, body = crate::http::error::Problem),
              (status = 422, body = crate::http::error::Problem)))]
pub async fn history(
    State(state): State<AppState>,
    principal: Principal,
    params: Result<Query<HistoryParams>, QueryRejection>,
) -> Result<axum::Json<HistoryPage>, ApiError> {
    let query = history_query(&principal, params)?;
    let page = state.billing.history(query).await.map_err(billing_error)?;
    Ok(axum::Json(page))
}

/// The history filters of a request; a charger sees the sessions it opened.
pub(crate) fn history_query(
    principal: &Principal,
    params: Result<Query<HistoryParams>, QueryRejection>,
) -> Result<SessionQuery, ApiError> {
    let Query(p) = params.map_err(invalid_query)?;
    let from = p.from.as_deref().map(|t| time("from", t)).transpose()?;
    let to = p.to.as_deref().map(|t| time("to", t)).transpose()?;
    check_order(from, to)?;
    let status = p
        .status
        .as_deref()
        .map(|s| {
            SessionStatus::parse(s)
                .ok_or_else(|| ApiError::bad_request("invalid_status", "status: a session status"))
        })
        .transpose()?;
    let after = p
        .cursor
        .as_deref()
        .map(|c| {
            HistoryCursor::decode(c)
                .map(|c| (c.created_at, c.id))
                .ok_or_else(|| {
                    ApiError::bad_request("invalid_cursor", "cursor: use next_cursor as given")
                })
        })
        .transpose()?;
    let limit = match p.limit.as_deref() {
        None => DEFAULT_PAGE,
        Some(l) => l
            .parse::<u32>()
            .ok()
            .filter(|l| (1..=MAX_PAGE).contains(l))
            .ok_or_else(|| ApiError::bad_request("invalid_limit", "limit: 1 to 100"))?,
    };
    Ok(SessionQuery {
        tenant: principal.tenant,
        from,
        to,
        status,
        evse_id: p.evse_id,
        // Chargers work on their own connectors: they list their own sessions.
        created_by: (principal.kind == PrincipalKind::Charger).then(|| principal.id.clone()),
        account: None,
        after,
        limit,
    })
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ExportParams {
    /// Sessions started (payments.csv: money moved) at or after, RFC 3339. Required.
    pub from: Option<String>,
    /// Sessions started (payments.csv: money moved) before, RFC 3339.
    /// Required; at most 366 days after `from`.
    pub to: Option<String>,
    /// Revenue only: `site` (the EVSE id without its last `*` part), `evse` or `day` (UTC).
    pub group: Option<String>,
}

impl ExportParams {
    fn period(&self) -> Result<Period, ApiError> {
        let (Some(from), Some(to)) = (self.from.as_deref(), self.to.as_deref()) else {
            return Err(ApiError::bad_request(
                "invalid_period",
                "from and to: both are required",
            ));
        };
        let (from, to) = (time("from", from)?, time("to", to)?);
        check_order(Some(from), Some(to))?;
        if to - from > chrono::Duration::days(MAX_EXPORT_DAYS) {
            return Err(
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_range")
                    .with_detail("to: at most 366 days after from"),
            );
        }
        Ok(Period { from, to })
    }
}

fn attachment(content_type: &'static str, file: &'static str, body: Vec<u8>) -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (header::CONTENT_DISPOSITION, HeaderValue::from_static(file)),
        ],
        body,
    )
        .into_response()
}

/// A CSV export as a download (`disposition` names the file).
fn csv_attachment(disposition: &'static str, csv: Vec<u8>) -> Response {
    attachment("text/csv; charset=utf-8; header=present", disposition, csv)
}

/// One CSV row per session started in the period: amounts held, captured,
/// refunded and net (RFC 4180).
#[utoipa::path(get, path = "/v1/exports/sessions.csv", tag = "billing", params(ExportParams),
    responses((status = 200, description = "RFC 4180 CSV with a header row", content_type = "text/csv", body = String),
              (status = 400, body = crate::http::error::Problem),
              (status = 422, body = crate::http::error::Problem)))]
pub async fn sessions_csv(
    State(state): State<AppState>,
    principal: Principal,
    origin: RequestOrigin,
    params: Result<Query<ExportParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(p) = params.map_err(invalid_query)?;
    let period = p.period()?;
    let csv = state
        .billing
        .sessions_csv(&caller(&principal, &origin), period)
        .await
        .map_err(billing_error)?;
    Ok(csv_attachment("attachment; filename=\"sessions.csv\"", csv))
}

/// One CSV row per capture, refund or wallet top-up that succeeded in the
/// period, whatever period its session started in: `at` (when it succeeded,
/// RFC 3339 UTC), `kind` (`capture`, `refund` or `wallet_top_up`),
/// `session_id`, `receipt_id`, `site`, `evse_id` (empty for a top-up),
/// `currency`, `amount` (positive), `reason` (refunds), `acquirer`,
/// `reference` (the acquirer idempotency key of the call), `account_id`.
#[utoipa::path(get, path = "/v1/exports/payments.csv", tag = "billing", params(ExportParams),
    responses((status = 200, description = "RFC 4180 CSV with a header row", content_type = "text/csv", body = String),
              (status = 400, body = crate::http::error::Problem),
              (status = 422, body = crate::http::error::Problem)))]
pub async fn payments_csv(
    State(state): State<AppState>,
    principal: Principal,
    origin: RequestOrigin,
    params: Result<Query<ExportParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(p) = params.map_err(invalid_query)?;
    let period = p.period()?;
    let csv = state
        .billing
        .payments_csv(&caller(&principal, &origin), period)
        .await
        .map_err(billing_error)?;
    Ok(csv_attachment("attachment; filename=\"payments.csv\"", csv))
}

/// OCPI 2.2.1 CDR objects of the sessions completed among those started in
/// the period. `cdr_token` is the RFID card, the account or the voltvault
/// token, never card data; `cdr_location` is the site's entry in
/// `[[billing.locations]]`.
#[utoipa::path(get, path = "/v1/exports/cdrs", tag = "billing", params(ExportParams),
    responses((status = 200, description = "a JSON array of OCPI 2.2.1 CDR objects", body = Vec<Object>),
              (status = 400, body = crate::http::error::Problem),
              (status = 409, description = "location_unknown: a session's site is not described in billing.locations; tariff_version_unavailable", body = crate::http::error::Problem),
              (status = 422, body = crate::http::error::Problem)))]
pub async fn cdrs(
    State(state): State<AppState>,
    principal: Principal,
    origin: RequestOrigin,
    params: Result<Query<ExportParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(p) = params.map_err(invalid_query)?;
    let period = p.period()?;
    let cdrs = state
        .billing
        .cdrs(&caller(&principal, &origin), period)
        .await
        .map_err(billing_error)?;
    Ok(axum::Json(cdrs).into_response())
}

/// Money taken from sessions started in the period, grouped by `site`,
/// `evse` or `day`, per currency.
#[utoipa::path(get, path = "/v1/exports/revenue", tag = "billing", params(ExportParams),
    responses((status = 200, body = Revenue),
              (status = 400, body = crate::http::error::Problem),
              (status = 422, body = crate::http::error::Problem)))]
pub async fn revenue(
    State(state): State<AppState>,
    principal: Principal,
    origin: RequestOrigin,
    params: Result<Query<ExportParams>, QueryRejection>,
) -> Result<axum::Json<Revenue>, ApiError> {
    let Query(p) = params.map_err(invalid_query)?;
    let period = p.period()?;
    let group = match p.group.as_deref() {
        None => Grouping::Site,
        Some(g) => Grouping::parse(g)
            .ok_or_else(|| ApiError::bad_request("invalid_group", "group: site, evse or day"))?,
    };
    let revenue = state
        .billing
        .revenue(&caller(&principal, &origin), period, group)
        .await
        .map_err(billing_error)?;
    Ok(axum::Json(revenue))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accept(v: &str) -> Option<Format> {
        let mut h = HeaderMap::new();
        h.insert(header::ACCEPT, HeaderValue::from_str(v).unwrap());
        negotiate(&h)
    }

    #[test]
    fn accept_picks_the_format() {
        assert_eq!(negotiate(&HeaderMap::new()), Some(Format::Json));
        assert_eq!(accept("application/pdf"), Some(Format::Pdf));
        assert_eq!(
            accept("text/html,application/xhtml+xml;q=0.9,*/*;q=0.8"),
            Some(Format::Html)
        );
        assert_eq!(accept("*/*"), Some(Format::Json));
        assert_eq!(accept("image/png"), None);
    }
}
