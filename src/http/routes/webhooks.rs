//! `/v1/webhooks`: a tenant's endpoints and their delivery log.
//!
//! Creating an endpoint is not replayed through the Idempotency-Key store
//! (like API key creation): its answer holds the signing secret, and a
//! stored answer would keep it in clear. A retry makes a second endpoint,
//! which the caller can delete.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::tokens::caller;
use crate::auth::Principal;
use crate::http::AppState;
use crate::http::auth::RequestOrigin;
use crate::http::error::ApiError;
use crate::http::extract::Json;
use crate::ids::WebhookId;
use crate::notify::EventType;
use crate::notify::webhooks::{DeliveryView, WebhookError, WebhookView};
use crate::store::StoreError;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookCreate {
    /// `https://` (plain `http://` only to loopback in development mode).
    pub url: String,
    /// At least one of `session.completed`, `payment.failed`,
    /// `receipt.ready`, `wallet.low_balance`, `invoice.issued`.
    pub events: Vec<String>,
}

/// The new endpoint and its signing secret: shown this once, never again.
#[derive(Serialize, ToSchema)]
pub struct WebhookCreated {
    #[schema(value_type = String, format = Uuid)]
    pub id: WebhookId,
    pub url: String,
    pub events: Vec<EventType>,
    pub created_at: DateTime<Utc>,
    /// Keys `Voltvault-Signature`: HMAC-SHA256 over `"<t>.<body>"`.
    pub secret: String,
}

pub fn webhook_error(error: WebhookError) -> ApiError {
    use WebhookError as E;
    let unprocessable = |code: &'static str, e: &E| {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, code).with_detail(e.to_string())
    };
    match error {
        E::Url(_) => unprocessable("invalid_webhook_url", &error),
        E::InsecureUrl(_) => unprocessable("insecure_webhook_url", &error),
        E::UnknownEvent => unprocessable("unknown_event_type", &error),
        E::NoEvents => unprocessable("invalid_event_types", &error),
        E::TooMany => ApiError::new(StatusCode::CONFLICT, "webhook_limit_reached")
            .with_detail(error.to_string()),
        E::NotFound => ApiError::new(StatusCode::NOT_FOUND, "webhook_not_found"),
        E::Seal => {
            tracing::error!("webhook secret could not be sealed or opened");
            ApiError::internal()
        }
        E::Store(StoreError::Unavailable) => ApiError::unavailable("database_unavailable"),
        E::Store(_) => ApiError::internal(),
        E::Audit(_) => ApiError::unavailable("audit_unavailable"),
    }
}

fn parse_id(raw: &str) -> Result<WebhookId, ApiError> {
    raw.parse()
        .map_err(|_| ApiError::new(StatusCode::NOT_FOUND, "webhook_not_found"))
}

/// Registers an endpoint; the answer carries its signing secret, once.
#[utoipa::path(post, path = "/v1/webhooks", tag = "webhooks", request_body = WebhookCreate,
    responses((status = 201, body = WebhookCreated), (status = 422, body = crate::http::error::Problem)))]
pub async fn create(
    State(state): State<AppState>,
    principal: Principal,
    origin: RequestOrigin,
    Json(body): Json<WebhookCreate>,
) -> Response {
    let caller = caller(&principal, &origin);
    match state
        .webhooks
        .create(&caller, &body.url, &body.events)
        .await
    {
        Ok(created) => (
            StatusCode::CREATED,
            axum::Json(WebhookCreated {
                id: created.webhook.id,
                url: created.webhook.url,
                events: created.webhook.events,
                created_at: created.webhook.created_at,
                secret: created.secret.expose_secret().to_owned(),
            }),
        )
            .into_response(),
        Err(e) => webhook_error(e).into_response(),
    }
}

/// The tenant's endpoints (never their secrets).
#[utoipa::path(get, path = "/v1/webhooks", tag = "webhooks",
    responses((status = 200, body = [WebhookView])))]
pub async fn list(
    State(state): State<AppState>,
    principal: Principal,
    origin: RequestOrigin,
) -> Response {
    match state.webhooks.list(&caller(&principal, &origin)).await {
        Ok(all) => (StatusCode::OK, axum::Json(all)).into_response(),
        Err(e) => webhook_error(e).into_response(),
    }
}

/// Removes an endpoint, its secret and its queued deliveries.
#[utoipa::path(delete, path = "/v1/webhooks/{id}", tag = "webhooks",
    params(("id" = String, Path)),
    responses((status = 204), (status = 404, body = crate::http::error::Problem)))]
pub async fn delete(
    State(state): State<AppState>,
    principal: Principal,
    origin: RequestOrigin,
    Path(id): Path<String>,
) -> Response {
    let id = match parse_id(&id) {
        Ok(id) => id,
        Err(e) => return e.into_response(),
    };
    match state
        .webhooks
        .delete(&caller(&principal, &origin), id)
        .await
    {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => webhook_error(e).into_response(),
    }
}

/// The newest 100 deliveries to an endpoint: attempts, last status, next attempt, state.
#[utoipa::path(get, path = "/v1/webhooks/{id}/deliveries", tag = "webhooks",
    params(("id" = String, Path)),
    responses((status = 200, body = [DeliveryView]), (status = 404, body = crate::http::error::Problem)))]
pub async fn deliveries(
    State(state): State<AppState>,
    principal: Principal,
    origin: RequestOrigin,
    Path(id): Path<String>,
) -> Response {
    let id = match parse_id(&id) {
        Ok(id) => id,
        Err(e) => return e.into_response(),
    };
    match state
        .webhooks
        .deliveries(&caller(&principal, &origin), id)
        .await
    {
        Ok(log) => (StatusCode::OK, axum::Json(log)).into_response(),
        Err(e) => webhook_error(e).into_response(),
    }
}
