//! `/v1/tokens`: tokenize, read, detokenize, delete, batch.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{OriginalUri, Path, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::audit::PendingAudit;
use crate::auth::Principal;
use crate::card::{Card, Cvc, CvcVault};
use crate::http::AppState;
use crate::http::auth::{Pending, RequestOrigin};
use crate::http::error::ApiError;
use crate::http::extract::json_from_bytes;
use crate::http::idempotency::{self, JoinedKey, KeyTaken};
use crate::keys::KeyError;
use crate::secret::SecretString;
use crate::store::StoreError;
use crate::tokens::service::{
    Alongside, Caller, IdempotentReply, TokenServiceError, TokenView, TokenizeRequest,
};
use crate::tokens::{TokenError, TokenFormat};

/// The most cards one batch may carry.
pub const MAX_BATCH: usize = 1000;

pub use crate::tokens::TokenCvcs;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CardInput {
    /// The card number; spaces and dashes are ignored.
    #[schema(value_type = String, example = "4242 4242 4242 4242")]
    pub number: SecretString,
    pub exp_month: u32,
    pub exp_year: u32,
    /// Held in memory for the first authorization only (at most 10 minutes); never stored.
    #[schema(value_type = Option<String>)]
    pub cvc: Option<SecretString>,
    pub holder_name: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenizeBody {
    pub card: CardInput,
    /// `random` (default) or `ff1`.
    #[schema(value_type = Option<String>)]
    pub format: Option<TokenFormat>,
    pub expires_at: Option<DateTime<Utc>>,
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<serde_json::Value>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TokenizeResponse {
    #[serde(flatten)]
    pub token: TokenView,
    /// Until when a CVC sent with the card is held for the first authorization.
    pub cvc_held_until: Option<DateTime<Utc>>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchBody {
    pub items: Vec<TokenizeBody>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BatchItemResult {
    pub index: usize,
    pub token: Option<TokenView>,
    pub error: Option<ItemError>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ItemError {
    pub code: String,
    pub detail: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BatchResponse {
    pub results: Vec<BatchItemResult>,
}

#[derive(Serialize, ToSchema)]
pub struct DetokenizedCard {
    pub number: String,
    pub exp_month: u8,
    pub exp_year: u16,
    pub holder_name: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct DetokenizeResponse {
    pub card: DetokenizedCard,
}

pub(crate) fn caller(principal: &Principal, origin: &RequestOrigin) -> Caller {
    Caller {
        tenant: principal.tenant,
        actor_kind: principal.kind.actor_kind(),
        actor_id: principal.id.clone(),
        origin: origin.0.address.map(|a| a.to_string()),
        request_id: origin.0.request_id.clone(),
    }
}

pub fn service_error(error: TokenServiceError) -> ApiError {
    use TokenServiceError as E;
    match error {
        E::Card(e) => {
            ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, e.code()).with_detail(e.to_string())
        }
        // A key, format or random source failing is ours, not the caller's.
        E::Token(
            e @ (TokenError::Ff1Key
            | TokenError::Ff1Radix
            | TokenError::Ff1CycleWalk
            | TokenError::Random),
        ) => {
            tracing::error!(code = e.code(), "token format failed");
            ApiError::internal()
        }
        E::Token(e) => {
            ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, e.code()).with_detail(e.to_string())
        }
        E::NotFound => ApiError::new(StatusCode::NOT_FOUND, "token_not_found"),
        E::Deleted => ApiError::new(StatusCode::GONE, "token_deleted"),
        E::Ff1Taken => {
            ApiError::new(StatusCode::CONFLICT, "ff1_token_taken").with_detail(error.to_string())
        }
        E::Metadata(_) => ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_metadata")
            .with_detail(error.to_string()),
        E::Keys(KeyError::Unavailable) => ApiError::unavailable("key_provider_unavailable"),
        E::Keys(e) => {
            tracing::error!(code = e.code(), "key layer failed");
            ApiError::internal()
        }
        E::Store(StoreError::Unavailable) => ApiError::unavailable("database_unavailable"),
        E::Store(_) | E::Exhausted => ApiError::internal(),
        E::Audit(_) => ApiError::unavailable("audit_unavailable"),
        E::IdempotencyKeyTaken => ApiError::new(StatusCode::CONFLICT, "idempotency_in_progress")
            .with_detail("a request with this Idempotency-Key is still being processed"),
    }
}

/// Parses and checks a card, keeping the CVC apart.
pub(crate) fn parse_card(
    state: &AppState,
    input: &CardInput,
) -> Result<(Card, Option<Cvc>), TokenServiceError> {
    let card = Card::parse(
        input.number.expose_secret(),
        input.exp_month,
        input.exp_year,
        state.env.clock.as_ref(),
    )?;
    let cvc = match &input.cvc {
        Some(c) => Some(Cvc::parse(c.expose_secret(), card.pan.brand())?),
        None => None,
    };
    Ok((card, cvc))
}

fn card_request(
    state: &AppState,
    body: TokenizeBody,
) -> Result<(TokenizeRequest, Option<Cvc>), TokenServiceError> {
    let (card, cvc) = parse_card(state, &body.card)?;
    Ok((
        TokenizeRequest {
            card,
            holder_name: body.card.holder_name,
            format: body.format.unwrap_or_default(),
            expires_at: body.expires_at,
            metadata: body.metadata,
        },
        cvc,
    ))
}

async fn tokenize_one(
    state: &AppState,
    caller: &Caller,
    body: TokenizeBody,
) -> Result<TokenizeResponse, TokenServiceError> {
    let (request, cvc) = card_request(state, body)?;
    let (view, _) = state.tokens.tokenize(caller, request).await?;
    let cvc_held_until = match cvc {
        Some(cvc) => {
            state
                .cvcs
                .put((caller.tenant, view.token.clone()), cvc)
                .map_err(|_| TokenServiceError::Keys(KeyError::IntegrityFailure))?;
            Some(state.env.clock.now() + crate::card::CVC_TTL)
        }
        None => None,
    };
    Ok(TokenizeResponse {
        token: view,
        cvc_held_until,
    })
}

/// One tokenize whose token row, idempotency record (holding this very
/// answer) and audit events, the request's authentication included, are
/// committed together in the audit writer's group commit (ADR 0008).
async fn tokenize_joined(
    state: &AppState,
    caller: &Caller,
    body: TokenizeBody,
    key: JoinedKey,
    pending: Option<&PendingAudit>,
) -> Result<(Vec<u8>, Option<Cvc>, String), TokenServiceError> {
    let (request, cvc) = card_request(state, body)?;
    let cvc_held_until = cvc
        .as_ref()
        .map(|_| state.env.clock.now() + crate::card::CVC_TTL);
    let render = move |view: &TokenView| {
        let answer = TokenizeResponse {
            token: view.clone(),
            cvc_held_until,
        };
        serde_json::to_vec(&answer)
            .ok()
            .map(|body| (StatusCode::CREATED.as_u16(), body))
    };
    let along = Alongside {
        pending,
        idempotent: Some(IdempotentReply {
            scope: key.scope,
            request_hash: key.request_hash,
            render: &render,
        }),
    };
    let (view, _) = state.tokens.tokenize_with(caller, request, &along).await?;
    let (_, body) = render(&view).ok_or(TokenServiceError::Store(StoreError::Internal))?;
    Ok((body, cvc, view.token))
}

/// The shell of a mutating JSON route: at most once per Idempotency-Key,
/// then the body parsed and handed to `work`.
pub(crate) async fn once_with_json<T, F, Fut>(
    state: &AppState,
    principal: &Principal,
    headers: &HeaderMap,
    path: &str,
    body: &[u8],
    work: F,
) -> Response
where
    T: serde::de::DeserializeOwned,
    F: FnOnce(T) -> Fut,
    Fut: Future<Output = Response>,
{
    idempotency::once(
        state,
        principal,
        headers,
        &Method::POST,
        path,
        body,
        || async {
            match json_from_bytes::<T>(headers, body) {
                Ok(parsed) => work(parsed).await,
                Err(e) => e.into_response(),
            }
        },
    )
    .await
}

/// Tokenize a card. An `ff1` card tokenized before answers with its token;
/// `409 ff1_token_taken` when that value is held by a deleted or a random token.
#[utoipa::path(post, path = "/v1/tokens", tag = "tokens", request_body = TokenizeBody,
    params(("Idempotency-Key" = String, Header, description = "required on every mutating request")),
    responses((status = 201, body = TokenizeResponse), (status = 409, body = crate::http::error::Problem),
        (status = 422, body = crate::http::error::Problem), (status = 503, body = crate::http::error::Problem)))]
pub async fn tokenize(
    State(state): State<AppState>,
    principal: Principal,
    origin: RequestOrigin,
    Pending(pending): Pending,
    headers: HeaderMap,
    OriginalUri(uri): OriginalUri,
    body: Bytes,
) -> Response {
    let caller = caller(&principal, &origin);
    if state.audit.joins_rows() {
        return idempotency::once_joined(
            &state,
            &principal,
            &headers,
            &Method::POST,
            uri.path(),
            &body,
            |key| async {
                let parsed = match json_from_bytes::<TokenizeBody>(&headers, &body) {
                    Ok(parsed) => parsed,
                    Err(e) => return Ok(e.into_response()),
                };
                match tokenize_joined(&state, &caller, parsed, key, pending.as_ref()).await {
                    Ok((answer, cvc, token)) => {
                        if let Some(cvc) = cvc
                            && state.cvcs.put((caller.tenant, token), cvc).is_err()
                        {
                            // The token is stored; the CVC could not be held.
                            return Ok(service_error(TokenServiceError::Keys(
                                KeyError::IntegrityFailure,
                            ))
                            .into_response());
                        }
                        let mut response = (StatusCode::CREATED, answer).into_response();
                        response.headers_mut().insert(
                            header::CONTENT_TYPE,
                            HeaderValue::from_static("application/json"),
                        );
                        Ok(response)
                    }
                    Err(TokenServiceError::IdempotencyKeyTaken) => Err(KeyTaken),
                    Err(e) => Ok(service_error(e).into_response()),
                }
            },
        )
        .await;
    }
    once_with_json(
        &state,
        &principal,
        &headers,
        uri.path(),
        &body,
        |parsed: TokenizeBody| async {
            match tokenize_one(&state, &caller, parsed).await {
                Ok(response) => (StatusCode::CREATED, axum::Json(response)).into_response(),
                Err(e) => service_error(e).into_response(),
            }
        },
    )
    .await
}

/// Tokenize up to 1,000 cards; one result per item, in order.
#[utoipa::path(post, path = "/v1/tokens/batch", tag = "tokens", request_body = BatchBody,
    params(("Idempotency-Key" = String, Header, description = "required on every mutating request")),
    responses((status = 200, body = BatchResponse), (status = 422, body = crate::http::error::Problem)))]
pub async fn batch(
    State(state): State<AppState>,
    principal: Principal,
    origin: RequestOrigin,
    headers: HeaderMap,
    OriginalUri(uri): OriginalUri,
    body: Bytes,
) -> Response {
    let caller = caller(&principal, &origin);
    once_with_json(
        &state,
        &principal,
        &headers,
        uri.path(),
        &body,
        |parsed: BatchBody| async {
            if parsed.items.is_empty() || parsed.items.len() > MAX_BATCH {
                return ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "batch_size")
                    .with_detail(format!("items: 1 to {MAX_BATCH} cards"))
                    .into_response();
            }
            let mut results = Vec::with_capacity(parsed.items.len());
            for (index, item) in parsed.items.into_iter().enumerate() {
                let result = tokenize_one(&state, &caller, item).await;
                results.push(match result {
                    Ok(r) => BatchItemResult {
                        index,
                        token: Some(r.token),
                        error: None,
                    },
                    Err(e) => {
                        // The whole batch fails closed when a dependency is down.
                        let problem = service_error(e);
                        if problem.status.is_server_error() {
                            return problem.into_response();
                        }
                        BatchItemResult {
                            index,
                            token: None,
                            error: Some(ItemError {
                                code: problem.code.to_owned(),
                                detail: problem.detail.unwrap_or_default(),
                            }),
                        }
                    }
                });
            }
            axum::Json(BatchResponse { results }).into_response()
        },
    )
    .await
}

/// A token's metadata: brand, last four, expiry, fingerprint. Never the card number.
#[utoipa::path(get, path = "/v1/tokens/{token}", tag = "tokens",
    params(("token" = String, Path)),
    responses((status = 200, body = TokenView), (status = 404, body = crate::http::error::Problem)))]
pub async fn get_token(
    State(state): State<AppState>,
    principal: Principal,
    origin: RequestOrigin,
    Path(token): Path<String>,
) -> Response {
    match state.tokens.get(&caller(&principal, &origin), &token).await {
        Ok(view) => axum::Json(view).into_response(),
        Err(e) => service_error(e).into_response(),
    }
}

/// The card in clear. Admin staff with a fresh second factor only; audited.
#[utoipa::path(post, path = "/v1/tokens/{token}/detokenize", tag = "tokens",
    params(("token" = String, Path)),
    responses((status = 200, body = DetokenizeResponse), (status = 403, body = crate::http::error::Problem)))]
pub async fn detokenize(
    State(state): State<AppState>,
    principal: Principal,
    origin: RequestOrigin,
    Pending(pending): Pending,
    Path(token): Path<String>,
) -> Response {
    match state
        .tokens
        .detokenize_with(&caller(&principal, &origin), &token, pending.as_ref())
        .await
    {
        Ok(card) => {
            let body = DetokenizeResponse {
                card: DetokenizedCard {
                    number: card.number.expose_secret().to_owned(),
                    exp_month: card.expiry.month(),
                    exp_year: card.expiry.year(),
                    holder_name: card.holder_name.map(|h| h.expose_secret().to_owned()),
                },
            };
            let mut response = axum::Json(body).into_response();
            response
                .headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            response
        }
        Err(e) => service_error(e).into_response(),
    }
}

/// Crypto-shreds a token: the encrypted card is erased, a tombstone stays.
#[utoipa::path(delete, path = "/v1/tokens/{token}", tag = "tokens",
    params(("token" = String, Path)),
    responses((status = 204), (status = 404, body = crate::http::error::Problem)))]
pub async fn delete_token(
    State(state): State<AppState>,
    principal: Principal,
    origin: RequestOrigin,
    Path(token): Path<String>,
) -> Response {
    let caller = caller(&principal, &origin);
    match state.tokens.delete(&caller, &token).await {
        Ok(()) => {
            // A CVC held for this token goes with it.
            let _ = state.cvcs.take(&(caller.tenant, token));
            StatusCode::NO_CONTENT.into_response()
        }
        Err(e) => service_error(e).into_response(),
    }
}

/// Shreds expired tokens and drops stale CVCs, every `every`, until shutdown.
pub async fn sweep(
    state: AppState,
    every: std::time::Duration,
    shutdown: tokio_util::sync::CancellationToken,
) {
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(every) => {}
        }
        state.cvcs.sweep();
        match state.tokens.purge_expired().await {
            Ok(0) => {}
            Ok(n) => tracing::info!(shredded = n, "expired tokens shredded"),
            Err(e) => tracing::warn!(error = %e, "expired tokens could not be shredded now"),
        }
    }
}

pub fn new_cvc_vault(state_env: &crate::clock::Environment) -> Arc<TokenCvcs> {
    Arc::new(CvcVault::new(
        state_env.clock.clone(),
        state_env.random.clone(),
    ))
}
