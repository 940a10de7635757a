//! Administration: tenants, API keys, charger CAs, staff users and the
//! principals report. Everything acts within the caller's tenant, except
//! creating a tenant.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::records::{ApiKeyRecord, ChargerCaRecord, PrincipalUse, UserRecord};
use crate::auth::tokens::ApiKeyId;
use crate::auth::{Actor, AuthError, Principal, Role};
use crate::http::AppState;
use crate::http::auth::{AuthProblem, RequestOrigin};
use crate::http::extract::Json;
use crate::ids::{ChargerCaId, TenantId, UserId};
use crate::secret::SecretString;

type Answer<T> = Result<(StatusCode, axum::Json<T>), AuthProblem>;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TenantCreate {
    /// 2 to 64 lowercase letters, digits or '-'.
    pub name: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TenantView {
    #[schema(value_type = String)]
    pub id: TenantId,
    pub name: String,
    pub created_at: DateTime<Utc>,
}

/// The caller's own tenant.
#[utoipa::path(get, path = "/v1/tenants", tag = "admin",
    responses((status = 200, body = [TenantView])))]
pub async fn list_tenants(
    State(state): State<AppState>,
    principal: Principal,
) -> Answer<Vec<TenantView>> {
    let tenant = state
        .store
        .tenant(principal.tenant)
        .await
        .map_err(|e| AuthProblem::from(AuthError::from(e)))?;
    Ok((
        StatusCode::OK,
        axum::Json(vec![TenantView {
            id: tenant.id,
            name: tenant.name.as_str().to_owned(),
            created_at: tenant.created_at,
        }]),
    ))
}

/// Creates a tenant.
#[utoipa::path(post, path = "/v1/tenants", tag = "admin", request_body = TenantCreate,
    responses((status = 201, body = TenantView), (status = 409, body = crate::http::error::Problem)))]
pub async fn create_tenant(
    State(state): State<AppState>,
    principal: Principal,
    RequestOrigin(origin): RequestOrigin,
    Json(body): Json<TenantCreate>,
) -> Answer<TenantView> {
    let tenant = state
        .auth
        .create_tenant(&body.name, &Actor::from(&principal), &origin)
        .await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(TenantView {
            id: tenant.id,
            name: tenant.name.as_str().to_owned(),
            created_at: tenant.created_at,
        }),
    ))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClientCreate {
    pub name: String,
    /// `app` or `payments`.
    #[schema(value_type = String)]
    pub role: Role,
    pub expires_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ClientView {
    #[schema(value_type = String)]
    pub id: ApiKeyId,
    pub name: String,
    #[schema(value_type = String)]
    pub role: Role,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
}

impl From<&ApiKeyRecord> for ClientView {
    fn from(k: &ApiKeyRecord) -> Self {
        Self {
            id: k.id.clone(),
            name: k.name.clone(),
            role: k.role,
            created_at: k.created_at,
            expires_at: k.expires_at,
            revoked_at: k.revoked_at,
            last_used_at: k.last_used_at,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct ClientSecret {
    #[schema(value_type = String)]
    pub id: ApiKeyId,
    /// `vv_<id>_<secret>`: shown once, never again.
    pub api_key: String,
}

fn not_found() -> AuthProblem {
    AuthProblem::from(AuthError::NotFound)
}

fn key_id(raw: &str) -> Result<ApiKeyId, AuthProblem> {
    ApiKeyId::parse(raw).ok_or_else(not_found)
}

/// API keys of the caller's tenant.
#[utoipa::path(get, path = "/v1/clients", tag = "admin",
    responses((status = 200, body = [ClientView])))]
pub async fn list_clients(
    State(state): State<AppState>,
    principal: Principal,
) -> Answer<Vec<ClientView>> {
    let keys = state.auth.api_keys(principal.tenant).await?;
    Ok((
        StatusCode::OK,
        axum::Json(keys.iter().map(ClientView::from).collect()),
    ))
}

/// Creates an API key; the key is in this response only.
#[utoipa::path(post, path = "/v1/clients", tag = "admin", request_body = ClientCreate,
    responses((status = 201, body = ClientSecret), (status = 422, body = crate::http::error::Problem)))]
pub async fn create_client(
    State(state): State<AppState>,
    principal: Principal,
    RequestOrigin(origin): RequestOrigin,
    Json(body): Json<ClientCreate>,
) -> Answer<ClientSecret> {
    let (record, secret) = state
        .auth
        .create_api_key(
            principal.tenant,
            &body.name,
            body.role,
            body.expires_at,
            &Actor::from(&principal),
            &origin,
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(ClientSecret {
            id: record.id,
            api_key: secret.expose_secret().to_owned(),
        }),
    ))
}

/// Revokes an API key at once.
#[utoipa::path(post, path = "/v1/clients/{id}/revoke", tag = "admin",
    params(("id" = String, Path)),
    responses((status = 204), (status = 404, body = crate::http::error::Problem)))]
pub async fn revoke_client(
    State(state): State<AppState>,
    principal: Principal,
    RequestOrigin(origin): RequestOrigin,
    Path(id): Path<String>,
) -> Result<StatusCode, AuthProblem> {
    let id = key_id(&id)?;
    state
        .auth
        .revoke_api_key(principal.tenant, &id, &Actor::from(&principal), &origin)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Gives an API key a new secret; the old one stops working at once.
#[utoipa::path(post, path = "/v1/clients/{id}/rotate", tag = "admin",
    params(("id" = String, Path)),
    responses((status = 200, body = ClientSecret), (status = 404, body = crate::http::error::Problem)))]
pub async fn rotate_client(
    State(state): State<AppState>,
    principal: Principal,
    RequestOrigin(origin): RequestOrigin,
    Path(id): Path<String>,
) -> Answer<ClientSecret> {
    let id = key_id(&id)?;
    let secret = state
        .auth
        .rotate_api_key(principal.tenant, &id, &Actor::from(&principal), &origin)
        .await?;
    Ok((
        StatusCode::OK,
        axum::Json(ClientSecret {
            id,
            api_key: secret.expose_secret().to_owned(),
        }),
    ))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChargerCaCreate {
    pub name: String,
    /// The CA certificate, PEM.
    pub certificate_pem: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ChargerCaView {
    #[schema(value_type = String)]
    pub id: ChargerCaId,
    pub name: String,
    /// SHA-256 of the CA certificate, hex.
    pub sha256: String,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

impl From<&ChargerCaRecord> for ChargerCaView {
    fn from(c: &ChargerCaRecord) -> Self {
        Self {
            id: c.id,
            name: c.name.clone(),
            sha256: c.sha256_hex.clone(),
            created_at: c.created_at,
            revoked_at: c.revoked_at,
        }
    }
}

/// Charger CAs of the caller's tenant.
#[utoipa::path(get, path = "/v1/charger-cas", tag = "admin",
    responses((status = 200, body = [ChargerCaView])))]
pub async fn list_charger_cas(
    State(state): State<AppState>,
    principal: Principal,
) -> Answer<Vec<ChargerCaView>> {
    let cas = state.auth.charger_cas(principal.tenant).await?;
    Ok((
        StatusCode::OK,
        axum::Json(cas.iter().map(ChargerCaView::from).collect()),
    ))
}

/// Registers a CA: certificates it issued are chargers of the caller's tenant.
#[utoipa::path(post, path = "/v1/charger-cas", tag = "admin", request_body = ChargerCaCreate,
    responses((status = 201, body = ChargerCaView), (status = 422, body = crate::http::error::Problem)))]
pub async fn register_charger_ca(
    State(state): State<AppState>,
    principal: Principal,
    RequestOrigin(origin): RequestOrigin,
    Json(body): Json<ChargerCaCreate>,
) -> Answer<ChargerCaView> {
    let ca = state
        .auth
        .register_charger_ca(
            principal.tenant,
            &body.name,
            &body.certificate_pem,
            &Actor::from(&principal),
            &origin,
        )
        .await?;
    Ok((StatusCode::CREATED, axum::Json(ChargerCaView::from(&ca))))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CertificateRevocation {
    /// The serial in hex, or the certificate as PEM.
    pub certificate: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RevokedCertificate {
    /// The serial put on the CA's revocation list, lowercase hex.
    pub serial: String,
}

/// Puts a charger certificate on its CA's revocation list.
#[utoipa::path(post, path = "/v1/charger-cas/{id}/revocations", tag = "admin",
    params(("id" = String, Path)), request_body = CertificateRevocation,
    responses((status = 201, body = RevokedCertificate), (status = 404, body = crate::http::error::Problem)))]
pub async fn revoke_charger_certificate(
    State(state): State<AppState>,
    principal: Principal,
    RequestOrigin(origin): RequestOrigin,
    Path(id): Path<String>,
    Json(body): Json<CertificateRevocation>,
) -> Answer<RevokedCertificate> {
    let ca: ChargerCaId = id.parse().map_err(|_| not_found())?;
    let serial = state
        .auth
        .revoke_charger_certificate(
            principal.tenant,
            ca,
            &body.certificate,
            &Actor::from(&principal),
            &origin,
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(RevokedCertificate { serial }),
    ))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CrlImport {
    /// The CA's certificate revocation list, PEM (`X509 CRL`), signed by the CA.
    pub crl_pem: String,
}

/// Imports the CA's CRL: certificates on it are refused from then on.
#[utoipa::path(post, path = "/v1/charger-cas/{id}/crl", tag = "admin",
    params(("id" = String, Path)), request_body = CrlImport,
    responses((status = 204), (status = 404, body = crate::http::error::Problem),
              (status = 422, body = crate::http::error::Problem)))]
pub async fn import_charger_crl(
    State(state): State<AppState>,
    principal: Principal,
    RequestOrigin(origin): RequestOrigin,
    Path(id): Path<String>,
    Json(body): Json<CrlImport>,
) -> Result<StatusCode, AuthProblem> {
    let ca: ChargerCaId = id.parse().map_err(|_| not_found())?;
    state
        .auth
        .import_charger_crl(
            principal.tenant,
            ca,
            body.crl_pem.as_bytes(),
            &Actor::from(&principal),
            &origin,
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserCreate {
    pub username: String,
    /// `operator`, `auditor` or `admin`.
    #[schema(value_type = String)]
    pub role: Role,
    /// At least 12 characters with letters and digits.
    pub password: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UserView {
    #[schema(value_type = String)]
    pub id: UserId,
    pub username: String,
    #[schema(value_type = String)]
    pub role: Role,
    pub created_at: DateTime<Utc>,
    pub last_login_at: Option<DateTime<Utc>>,
    pub locked_until: Option<DateTime<Utc>>,
    pub disabled_at: Option<DateTime<Utc>>,
}

impl From<&UserRecord> for UserView {
    fn from(u: &UserRecord) -> Self {
        Self {
            id: u.id,
            username: u.username.clone(),
            role: u.role,
            created_at: u.created_at,
            last_login_at: u.last_login_at,
            locked_until: u.locked_until,
            disabled_at: u.disabled_at,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct UserProvisioned {
    pub user: UserView,
    /// `otpauth://` URI for the user's authenticator; shown once.
    pub totp_uri: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserReset {
    /// The new password: not one of the last four.
    pub password: String,
}

/// Staff users of the caller's tenant.
#[utoipa::path(get, path = "/v1/users", tag = "admin",
    responses((status = 200, body = [UserView])))]
pub async fn list_users(
    State(state): State<AppState>,
    principal: Principal,
) -> Answer<Vec<UserView>> {
    let users = state.auth.users(principal.tenant).await?;
    Ok((
        StatusCode::OK,
        axum::Json(users.iter().map(UserView::from).collect()),
    ))
}

/// Creates a staff user; the TOTP provisioning URI is in this response only.
#[utoipa::path(post, path = "/v1/users", tag = "admin", request_body = UserCreate,
    responses((status = 201, body = UserProvisioned), (status = 422, body = crate::http::error::Problem)))]
pub async fn create_user(
    State(state): State<AppState>,
    principal: Principal,
    RequestOrigin(origin): RequestOrigin,
    Json(body): Json<UserCreate>,
) -> Answer<UserProvisioned> {
    let UserCreate {
        username,
        role,
        password,
    } = body;
    let password = SecretString::new(password);
    let (user, totp) = state
        .auth
        .create_user(
            principal.tenant,
            &username,
            role,
            &password,
            &Actor::from(&principal),
            &origin,
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(UserProvisioned {
            user: UserView::from(&user),
            totp_uri: totp.uri.as_str().to_owned(),
        }),
    ))
}

fn user_id(raw: &str) -> Result<UserId, AuthProblem> {
    raw.parse().map_err(|_| not_found())
}

/// Disables a user and ends their sessions.
#[utoipa::path(post, path = "/v1/users/{id}/disable", tag = "admin",
    params(("id" = String, Path)),
    responses((status = 204), (status = 404, body = crate::http::error::Problem)))]
pub async fn disable_user(
    State(state): State<AppState>,
    principal: Principal,
    RequestOrigin(origin): RequestOrigin,
    Path(id): Path<String>,
) -> Result<StatusCode, AuthProblem> {
    let id = user_id(&id)?;
    state
        .auth
        .disable_user(principal.tenant, id, &Actor::from(&principal), &origin)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Serialize, ToSchema)]
pub struct UserResetDone {
    /// The new TOTP provisioning URI; shown once.
    pub totp_uri: String,
}

/// Sets a new password and a new TOTP seed; lifts lock and disable.
#[utoipa::path(post, path = "/v1/users/{id}/reset", tag = "admin",
    params(("id" = String, Path)), request_body = UserReset,
    responses((status = 200, body = UserResetDone), (status = 422, body = crate::http::error::Problem)))]
pub async fn reset_user(
    State(state): State<AppState>,
    principal: Principal,
    RequestOrigin(origin): RequestOrigin,
    Path(id): Path<String>,
    Json(body): Json<UserReset>,
) -> Answer<UserResetDone> {
    let id = user_id(&id)?;
    let password = SecretString::new(body.password);
    let totp = state
        .auth
        .reset_user(
            principal.tenant,
            id,
            &password,
            &Actor::from(&principal),
            &origin,
        )
        .await?;
    Ok((
        StatusCode::OK,
        axum::Json(UserResetDone {
            totp_uri: totp.uri.as_str().to_owned(),
        }),
    ))
}

/// Every principal of the caller's tenant with its state and last use.
#[utoipa::path(get, path = "/v1/principals", tag = "admin",
    responses((status = 200, body = [PrincipalUse])))]
pub async fn principals(
    State(state): State<AppState>,
    principal: Principal,
) -> Answer<Vec<PrincipalUse>> {
    Ok((
        StatusCode::OK,
        axum::Json(state.auth.principals_report(principal.tenant).await?),
    ))
}
