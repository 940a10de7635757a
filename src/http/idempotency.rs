//! `Idempotency-Key` on mutating routes: the first request with a key does
//! the work and its 2xx response is stored; a replay gets that response; the
//! same key with another body is a 422; one still running is a 409. A
//! request that failed changed nothing, so its key is released for a retry.
//!
//! [`once_joined`] keeps those semantics for routes that write their
//! idempotency record in the audit writer's transaction, with their other
//! rows and events (ADR 0008): no claim is written up front; running
//! requests are known on this node only, and two nodes racing on one key
//! are settled by the record's primary key at commit: the loser keeps
//! nothing and answers from the winner's record.

use axum::body::{Body, to_bytes};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use super::AppState;
use super::error::ApiError;
use crate::auth::Principal;
use crate::idempotency::{Begin, IdempotencyKey, IdempotencyScope, request_fingerprint};
use crate::ids::TenantId;

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
    let (scope, hash) = match scope_of(state, principal, headers, method, path, body) {
        Ok(found) => found,
        Err(response) => return *response,
    };
    let now = state.env.clock.now();
    match state.store.begin_idempotent(&scope, &hash, now).await {
        Err(e) => ApiError::from(e).into_response(),
        Ok(Begin::Fresh) => {
            let response = work().await;
            settle(state, &scope, response).await
        }
        Ok(done) => answer(done),
    }
}

/// A request's idempotency key and the hash of what it asks.
pub struct JoinedKey {
    pub scope: IdempotencyScope,
    pub request_hash: [u8; 32],
}

/// The key was stored by another request while this one ran; nothing of
/// this one was kept.
pub struct KeyTaken;

/// Runs `work` at most once per (tenant, principal, key), for work that
/// stores its answer under the key in the same commit as its other rows.
/// `work` answers `Err(KeyTaken)` when that commit found the key taken.
pub async fn once_joined<F, Fut>(
    state: &AppState,
    principal: &Principal,
    headers: &HeaderMap,
    method: &Method,
    path: &str,
    body: &[u8],
    work: F,
) -> Response
where
    F: FnOnce(JoinedKey) -> Fut,
    Fut: Future<Output = Result<Response, KeyTaken>>,
{
    let (scope, hash) = match scope_of(state, principal, headers, method, path, body) {
        Ok(found) => found,
        Err(response) => return *response,
    };
    match state.store.idempotent_state(&scope, &hash).await {
        Err(e) => return ApiError::from(e).into_response(),
        Ok(Some(done)) => return answer(done),
        Ok(None) => {}
    }
    let Some(_running) = state.in_flight.claim(&scope) else {
        return answer(Begin::InProgress);
    };
    let key = JoinedKey {
        scope: scope.clone(),
        request_hash: hash,
    };
    match work(key).await {
        Ok(response) => response,
        Err(KeyTaken) => match state.store.idempotent_state(&scope, &hash).await {
            Err(e) => ApiError::from(e).into_response(),
            Ok(Some(done)) => answer(done),
            Ok(None) => answer(Begin::InProgress),
        },
    }
}

/// Idempotency keys whose requests are running on this node, for
/// [`once_joined`], which writes no claim to the database.
#[derive(Debug, Default)]
pub struct InFlight(Mutex<HashSet<(TenantId, String, String)>>);

/// A running request's hold on its key; let go when dropped.
pub struct Running {
    set: Arc<InFlight>,
    key: (TenantId, String, String),
}

impl InFlight {
    fn keys(&self) -> std::sync::MutexGuard<'_, HashSet<(TenantId, String, String)>> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// `None` while another request with this key runs here.
    pub fn claim(self: &Arc<Self>, scope: &IdempotencyScope) -> Option<Running> {
        let key = (
            scope.tenant,
            scope.principal.clone(),
            scope.key.as_str().to_owned(),
        );
        self.keys().insert(key.clone()).then(|| Running {
            set: self.clone(),
            key,
        })
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.set.keys().remove(&self.key);
    }
}

/// The request's key and hash, or the 400 that says why there is none.
fn scope_of(
    state: &AppState,
    principal: &Principal,
    headers: &HeaderMap,
    method: &Method,
    path: &str,
    body: &[u8],
) -> Result<(IdempotencyScope, [u8; 32]), Box<Response>> {
    let Some(raw) = headers.get(IDEMPOTENCY_KEY) else {
        return Err(Box::new(
            ApiError::bad_request(
                "idempotency_key_required",
                "send an Idempotency-Key header with every mutating request",
            )
            .into_response(),
        ));
    };
    let key = match raw.to_str().ok().map(IdempotencyKey::parse) {
        Some(Ok(key)) => key.at_rest(state.auth.keys()),
        _ => {
            return Err(Box::new(
                ApiError::bad_request(
                    "invalid_idempotency_key",
                    "Idempotency-Key must be 1 to 255 visible ASCII characters",
                )
                .into_response(),
            ));
        }
    };
    let scope = IdempotencyScope {
        tenant: principal.tenant,
        principal: principal.id.clone(),
        key,
    };
    Ok((scope, request_fingerprint(method.as_str(), path, body)))
}

/// The answer to a key that was used before (or is in use).
fn answer(begin: Begin) -> Response {
    match begin {
        Begin::Mismatch => {
            ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "idempotency_key_reused")
                .with_detail("this Idempotency-Key was used with a different request")
                .into_response()
        }
        Begin::InProgress => ApiError::new(StatusCode::CONFLICT, "idempotency_in_progress")
            .with_detail("a request with this Idempotency-Key is still being processed")
            .into_response(),
        Begin::Replay(stored) => {
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
        // Only `once` claims keys; it never gets here with a fresh one.
        Begin::Fresh => ApiError::internal().into_response(),
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
