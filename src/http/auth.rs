//! The one place access is enforced: [`guard`] runs before every handler
//! with the access its route declared. It spends the address budget,
//! authenticates, spends the principal's budget, asks the policy, and only
//! then hands the request on with the [`Principal`] in its extensions.

use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::AppState;
use super::error::ApiError;
use super::routes::{Access, AuthEvent};
use super::server::ConnectionInfo;
use crate::audit::PendingAudit;
use crate::auth::service::Presented;
use crate::auth::{AuthError, Origin, Principal};

pub async fn guard(
    State((state, access, auth_event)): State<(AppState, Access, AuthEvent)>,
    mut req: Request,
    next: Next,
) -> Response {
    let connection = req.extensions().get::<ConnectionInfo>().cloned();
    let origin = origin_of(connection.as_ref());
    if let Err(e) = state.auth.check_address(&origin).await {
        return auth_error(e).into_response();
    }
    let Access::Permission(permission) = access else {
        return next.run(req).await;
    };
    let principal = {
        let (bearer, malformed) = bearer(req.headers());
        let presented = Presented {
            bearer,
            malformed_authorization: malformed,
            certificate: connection
                .as_ref()
                .and_then(|c| c.client_certificate.as_deref())
                .map(|c| c.chain.as_slice()),
        };
        match auth_event {
            AuthEvent::Recorded => state.auth.authenticate(&presented, &origin).await,
            AuthEvent::WithRequest => {
                match state.auth.authenticate_pending(&presented, &origin).await {
                    Ok((principal, event)) => {
                        let pending = PendingAudit::default();
                        pending.push(event);
                        req.extensions_mut().insert(pending);
                        Ok(principal)
                    }
                    Err(e) => Err(e),
                }
            }
        }
    };
    let principal = match principal {
        Ok(p) => p,
        Err(e) => return auth_error(e).into_response(),
    };
    let pending = req.extensions().get::<PendingAudit>().cloned();
    let response = match state.auth.check_principal_budget(&principal, &origin).await {
        Err(e) => auth_error(e).into_response(),
        Ok(()) => match state.auth.authorize(&principal, permission, &origin).await {
            Err(e) => auth_error(e).into_response(),
            Ok(()) => {
                req.extensions_mut().insert(principal);
                next.run(req).await
            }
        },
    };
    match pending {
        Some(pending) => settle_pending(&state, &pending, response).await,
        None => response,
    }
}

/// Records what the handler left pending before its answer leaves; if that
/// fails, the answer is withheld (fail closed).
async fn settle_pending(state: &AppState, pending: &PendingAudit, response: Response) -> Response {
    let left = pending.take();
    if left.is_empty() {
        return response;
    }
    match state.audit.record_all(left).await {
        Ok(()) => response,
        Err(_) => {
            tracing::error!("audit write failed; withholding the answer");
            auth_error(AuthError::AuditUnavailable).into_response()
        }
    }
}

/// The request's events not yet durable, on routes whose handler commits
/// them with its own (`AuthEvent::WithRequest`); `None` elsewhere.
#[derive(Clone)]
pub struct Pending(pub Option<PendingAudit>);

impl<S: Send + Sync> FromRequestParts<S> for Pending {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(Self(parts.extensions.get::<PendingAudit>().cloned()))
    }
}

/// The request's origin for audit events and budgets.
pub fn origin_of(connection: Option<&ConnectionInfo>) -> Origin {
    Origin {
        address: connection.map(|c| c.remote_addr),
        request_id: super::middleware::current_request_id().map(|id| id.to_string()),
    }
}

/// The bearer token, and whether some other `Authorization` was sent.
pub fn bearer(headers: &HeaderMap) -> (Option<&str>, bool) {
    match headers.get(header::AUTHORIZATION) {
        None => (None, false),
        Some(value) => match value.to_str().ok().and_then(|v| v.strip_prefix("Bearer ")) {
            Some(token) => (Some(token.trim()), false),
            None => (None, true),
        },
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        // Only the guard puts a principal here; a handler asking for one on a
        // public route is a wiring mistake, and it fails closed.
        parts.extensions.get::<Principal>().cloned().ok_or_else(|| {
            tracing::error!("a handler asked for a principal its route does not require");
            ApiError::internal()
        })
    }
}

/// The request's origin, for handlers.
#[derive(Debug, Clone)]
pub struct RequestOrigin(pub Origin);

impl<S: Send + Sync> FromRequestParts<S> for RequestOrigin {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(Self(origin_of(parts.extensions.get::<ConnectionInfo>())))
    }
}

/// An auth failure as a problem document (with `Retry-After` where it helps).
pub struct AuthProblem(pub ApiError, pub Option<u64>);

impl IntoResponse for AuthProblem {
    fn into_response(self) -> Response {
        let mut response = self.0.into_response();
        if let Some(secs) = self.1
            && let Ok(value) = HeaderValue::from_str(&secs.to_string())
        {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        response
    }
}

pub fn auth_error(error: AuthError) -> AuthProblem {
    match error {
        AuthError::Unauthenticated(code) => {
            let mut e = ApiError::new(StatusCode::UNAUTHORIZED, code);
            if code == "unauthenticated" {
                e = e.with_detail("send a bearer token or a client certificate");
            }
            AuthProblem(e, None)
        }
        AuthError::Forbidden(code) => {
            let mut e = ApiError::new(StatusCode::FORBIDDEN, code);
            if code == "fresh_second_factor_required" {
                e = e.with_detail(
                    "give a TOTP code again (POST /v1/auth/step-up), then retry within 5 minutes",
                );
            }
            AuthProblem(e, None)
        }
        AuthError::Locked { retry_after_secs } => AuthProblem(
            ApiError::new(StatusCode::TOO_MANY_REQUESTS, "account_locked")
                .with_detail("too many failed sign-ins; try again after Retry-After seconds"),
            Some(retry_after_secs),
        ),
        AuthError::RateLimited { retry_after_secs } => AuthProblem(
            ApiError::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
            Some(retry_after_secs),
        ),
        AuthError::Invalid(code, detail) => AuthProblem(
            ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, code).with_detail(detail),
            None,
        ),
        AuthError::NotFound => AuthProblem(ApiError::not_found(), None),
        AuthError::Conflict(code) => AuthProblem(ApiError::new(StatusCode::CONFLICT, code), None),
        AuthError::AuditUnavailable => {
            AuthProblem(ApiError::unavailable("audit_unavailable"), None)
        }
        AuthError::Unavailable => AuthProblem(ApiError::unavailable("database_unavailable"), None),
        AuthError::Internal => AuthProblem(ApiError::internal(), None),
    }
}

impl From<AuthError> for AuthProblem {
    fn from(e: AuthError) -> Self {
        auth_error(e)
    }
}
