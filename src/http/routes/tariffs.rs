//! `/v1/tariffs`: operators publish OCPI 2.2.1 tariffs as new versions;
//! chargers read the price display before a session starts (EU AFIR).

use axum::body::Bytes;
use axum::extract::{OriginalUri, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::tokens::{caller, once_with_json};
use crate::auth::Principal;
use crate::http::AppState;
use crate::http::auth::RequestOrigin;
use crate::http::error::ApiError;
use crate::payments::tariffs::{TariffBookError, TariffView};
use crate::store::StoreError;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VersionQuery {
    pub version: Option<u32>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TariffList {
    pub tariffs: Vec<TariffView>,
}

/// What a charger shows before the session starts.
#[derive(Debug, Serialize, ToSchema)]
pub struct PriceDisplay {
    pub id: String,
    pub version: u32,
    pub display: String,
}

fn tariff_error(error: TariffBookError) -> ApiError {
    use TariffBookError as E;
    match error {
        E::NotFound => ApiError::new(StatusCode::NOT_FOUND, "tariff_not_found"),
        E::Invalid(ref e) => {
            ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, e.code()).with_detail(e.to_string())
        }
        E::NotAnObject => ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_tariff_json")
            .with_detail(error.to_string()),
        E::Display(ref e) => {
            ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, e.code()).with_detail(e.to_string())
        }
        E::Busy => {
            ApiError::new(StatusCode::CONFLICT, "tariff_busy").with_detail(error.to_string())
        }
        E::Store(StoreError::Unavailable) => ApiError::unavailable("database_unavailable"),
        E::Store(_) => ApiError::internal(),
        E::Audit(_) => ApiError::unavailable("audit_unavailable"),
    }
}

/// Publish a new version of a tariff (OCPI 2.2.1 document; `id` and
/// `version` are set by the service). Versions never change once stored.
#[utoipa::path(put, path = "/v1/tariffs/{id}", tag = "tariffs",
    params(("id" = String, Path), ("Idempotency-Key" = String, Header, description = "required on every mutating request")),
    request_body(content = Object, description = "an OCPI 2.2.1 tariff"),
    responses((status = 201, body = TariffView), (status = 422, body = crate::http::error::Problem)))]
pub async fn publish(
    State(state): State<AppState>,
    principal: Principal,
    origin: RequestOrigin,
    headers: HeaderMap,
    OriginalUri(uri): OriginalUri,
    Path(id): Path<String>,
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
        |doc: serde_json::Value| async move {
            match st.tariffs.publish(&caller, &id, doc).await {
                Ok(view) => (StatusCode::CREATED, axum::Json(view)).into_response(),
                Err(e) => tariff_error(e).into_response(),
            }
        },
    )
    .await
}

/// The current version of every tariff sessions may name.
#[utoipa::path(get, path = "/v1/tariffs", tag = "tariffs",
    responses((status = 200, body = TariffList)))]
pub async fn list(State(state): State<AppState>, principal: Principal) -> Response {
    match state.tariffs.list(principal.tenant).await {
        Ok(tariffs) => axum::Json(TariffList { tariffs }).into_response(),
        Err(e) => tariff_error(e).into_response(),
    }
}

/// One tariff, the current version or `?version=n`.
#[utoipa::path(get, path = "/v1/tariffs/{id}", tag = "tariffs",
    params(("id" = String, Path), ("version" = Option<u32>, Query)),
    responses((status = 200, body = TariffView), (status = 404, body = crate::http::error::Problem)))]
pub async fn get(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
    Query(q): Query<VersionQuery>,
) -> Response {
    match state.tariffs.view(principal.tenant, &id, q.version).await {
        Ok(view) => axum::Json(view).into_response(),
        Err(e) => tariff_error(e).into_response(),
    }
}

/// The price display of the current version, for the charger's screen.
#[utoipa::path(get, path = "/v1/tariffs/{id}/display", tag = "tariffs",
    params(("id" = String, Path)),
    responses((status = 200, body = PriceDisplay), (status = 404, body = crate::http::error::Problem)))]
pub async fn display(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Response {
    match state.tariffs.view(principal.tenant, &id, None).await {
        Ok(view) => axum::Json(PriceDisplay {
            id: view.id,
            version: view.version,
            display: view.display,
        })
        .into_response(),
        Err(e) => tariff_error(e).into_response(),
    }
}
