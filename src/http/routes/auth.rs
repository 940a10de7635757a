//! Staff sign-in: password, then TOTP, then a session token.

use axum::http::HeaderMap;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::Principal;
use crate::http::AppState;
use crate::http::auth::{AuthProblem, RequestOrigin, bearer};
use crate::http::extract::Json;
use crate::secret::SecretString;
use axum::extract::State;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    pub username: String,
    /// Never logged or stored; only its argon2id hash is kept.
    pub password: String,
}

#[derive(Serialize, ToSchema)]
pub struct LoginChallenge {
    /// Send back with the TOTP code to `POST /v1/auth/mfa` within 5 minutes.
    pub challenge: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MfaRequest {
    pub challenge: String,
    /// The 6-digit TOTP code; each code is accepted once.
    pub code: String,
}

#[derive(Serialize, ToSchema)]
pub struct SessionGranted {
    /// `Authorization: Bearer <session_token>`; shown once.
    pub session_token: String,
    /// The absolute end of the session.
    pub expires_at: DateTime<Utc>,
    /// The session also ends after this many seconds without a request.
    pub idle_timeout_secs: i64,
}

/// Step one of staff sign-in: user name and password.
#[utoipa::path(post, path = "/v1/auth/login", tag = "auth", request_body = LoginRequest,
    responses((status = 200, body = LoginChallenge),
              (status = 401, body = crate::http::error::Problem),
              (status = 429, body = crate::http::error::Problem)))]
pub async fn login(
    State(state): State<AppState>,
    RequestOrigin(origin): RequestOrigin,
    Json(body): Json<LoginRequest>,
) -> Result<axum::Json<LoginChallenge>, AuthProblem> {
    let LoginRequest { username, password } = body;
    let password = SecretString::new(password);
    let challenge = state.auth.login(&username, &password, &origin).await?;
    Ok(axum::Json(LoginChallenge {
        challenge: challenge.expose_secret().to_owned(),
    }))
}

/// Step two: the TOTP code for the challenge; answers with a session token.
#[utoipa::path(post, path = "/v1/auth/mfa", tag = "auth", request_body = MfaRequest,
    responses((status = 200, body = SessionGranted),
              (status = 401, body = crate::http::error::Problem),
              (status = 429, body = crate::http::error::Problem)))]
pub async fn mfa(
    State(state): State<AppState>,
    RequestOrigin(origin): RequestOrigin,
    Json(body): Json<MfaRequest>,
) -> Result<axum::Json<SessionGranted>, AuthProblem> {
    let session = state
        .auth
        .verify_second_factor(&body.challenge, &body.code, &origin)
        .await?;
    Ok(axum::Json(SessionGranted {
        session_token: session.token.expose_secret().to_owned(),
        expires_at: session.expires_at,
        idle_timeout_secs: session.idle_timeout_secs,
    }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StepUpRequest {
    /// A TOTP code not used before.
    pub code: String,
}

#[derive(Serialize, ToSchema)]
pub struct SteppedUp {
    /// Permissions that need a fresh second factor are allowed for 5 minutes from here.
    pub second_factor_at: DateTime<Utc>,
}

/// Gives the second factor again within the caller's session.
#[utoipa::path(post, path = "/v1/auth/step-up", tag = "auth", request_body = StepUpRequest,
    responses((status = 200, body = SteppedUp),
              (status = 401, body = crate::http::error::Problem),
              (status = 429, body = crate::http::error::Problem)))]
pub async fn step_up(
    State(state): State<AppState>,
    principal: Principal,
    RequestOrigin(origin): RequestOrigin,
    headers: HeaderMap,
    Json(body): Json<StepUpRequest>,
) -> Result<axum::Json<SteppedUp>, AuthProblem> {
    let token = match (principal.kind, bearer(&headers)) {
        (crate::auth::PrincipalKind::Staff, (Some(token), _)) => token,
        _ => {
            return Err(AuthProblem::from(crate::auth::AuthError::Forbidden(
                "staff_session_required",
            )));
        }
    };
    let at = state.auth.step_up(token, &body.code, &origin).await?;
    Ok(axum::Json(SteppedUp {
        second_factor_at: at,
    }))
}

/// Ends the caller's session.
#[utoipa::path(post, path = "/v1/auth/logout", tag = "auth",
    responses((status = 204), (status = 401, body = crate::http::error::Problem)))]
pub async fn logout(
    State(state): State<AppState>,
    principal: Principal,
    RequestOrigin(origin): RequestOrigin,
    headers: HeaderMap,
) -> Result<axum::http::StatusCode, AuthProblem> {
    if let (Some(token), _) = bearer(&headers) {
        state.auth.logout(token, &principal, &origin).await?;
    }
    Ok(axum::http::StatusCode::NO_CONTENT)
}
