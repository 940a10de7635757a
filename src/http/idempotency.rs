//! `Idempotency-Key` on mutating routes: the first request with a key does
//! the work and its 2xx response is stored; a replay gets that response; the
//! same key with another body is a 422; one still running is a 409. A
//! request that failed changed nothing, so its key is released for a retry.

use axum::body::{Body, to_bytes};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::AppState;
use super::error::ApiError;
use crate::auth::Principal;
use crate::idempotency::{Begin, IdempotencyKey, IdempotencyScope, request_fingerprint};

pub const IDEMPOTENCY_KEY: &str = "idempotency-key";
/// Responses kept for replay are small JSON documents; anything larger is a bug.
const MAX_STORED_RESPONSE: usize = 4 * 1024 * 1024;

/// Runs `work` at most once per (tenant, principal, key).
pub async fn once<F, Fut>(
    state: &AppState,
    principal: &Principal,
    headers: &HeaderMap,
    method: &Method,
    path: &str,
    body: &[u8],
    work: F,
) -> Response
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Response>,
{
    let Some(raw) = headers.get(IDEMPOTENCY_KEY) else {
        return ApiError::bad_request(
            "idempotency_key_required",
            "send an Idempotency-Key header with every mutating request",
        )
        .into_response();
    };
    let key = match raw.to_str().ok().map(IdempotencyKey::parse) {
        Some(Ok(key)) => key,
        _ => {
            return ApiError::bad_request(
                "invalid_idempotency_key",
                "Idempotency-Key must be 1 to 255 visible ASCII characters",
            )
            .into_response();
        }
    };
    let scope = IdempotencyScope {
        tenant: principal.tenant,
        principal: principal.id.clone(),
        key,
    };
    let hash = request_fingerprint(method.as_str(), path, body);
    let now = state.env.clock.now();
    match state.store.begin_idempotent(&scope, &hash, now).await {
        Err(e) => ApiError::from(e).into_response(),
        Ok(Begin::Mismatch) => {
            ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "idempotency_key_reused")
                .with_detail("this Idempotency-Key was used with a different request")
                .into_response()
        }
        Ok(Begin::InProgress) => ApiError::new(StatusCode::CONFLICT, "idempotency_in_progress")
            .with_detail("a request with this Idempotency-Key is still being processed")
            .into_response(),
        Ok(Begin::Replay(stored)) => {
            let status = StatusCode::from_u16(stored.status).unwrap_or(StatusCode::OK);
            let mut response = (status, stored.body).into_response();
            let headers = response.headers_mut();
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            headers.insert("idempotent-replayed", HeaderValue::from_static("true"));
            response
        }
        Ok(Begin::Fresh) => {
            let response = work().await;
            settle(state, &scope, response).await
        }
    }
}

async fn settle(state: &AppState, scope: &IdempotencyScope, response: Response) -> Response {
    if !response.status().is_success() {
        if state.store.abandon_idempotent(scope).await.is_err() {
            tracing::warn!("an idempotency claim could not be released");
        }
        return response;
    }
    let (parts, body) = response.into_parts();
    let Ok(bytes) = to_bytes(body, MAX_STORED_RESPONSE).await else {
        return ApiError::internal().into_response();
    };
    let now = state.env.clock.now();
    if let Err(e) = state
        .store
        .complete_idempotent(scope, parts.status.as_u16(), &bytes, now)
        .await
    {
        // The work is done; the caller still gets its answer, a replay will say in-progress.
        tracing::error!(error = %e, "an idempotent response could not be stored");
    }
    Response::from_parts(parts, Body::from(bytes))
}
