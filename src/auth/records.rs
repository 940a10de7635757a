//! What the store keeps about principals. Secrets appear only as keyed
//! hashes (API keys, sessions, challenges), argon2id hashes (passwords) or
//! sealed (TOTP seeds).

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::policy::Role;
use super::tokens::ApiKeyId;
use crate::ids::{ChargerCaId, TenantId, UserId};

#[derive(Clone, PartialEq, Eq)]
pub struct ApiKeyRecord {
    pub id: ApiKeyId,
    pub tenant: TenantId,
    pub name: String,
    pub role: Role,
    pub secret_hash: Vec<u8>,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
}

impl std::fmt::Debug for ApiKeyRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiKeyRecord")
            .field("id", &self.id)
            .field("tenant", &self.tenant)
            .field("role", &self.role)
            .finish_non_exhaustive()
    }
}

#[derive(Clone, PartialEq, Eq)]
pub struct UserRecord {
    pub id: UserId,
    pub tenant: TenantId,
    pub username: String,
    pub role: Role,
    pub password_hash: String,
    pub totp_sealed: Vec<u8>,
    /// The last TOTP time step accepted; a code for it or an older one is a replay.
    pub totp_last_step: i64,
    pub failed_attempts: i64,
    pub locked_until: Option<DateTime<Utc>>,
    pub disabled_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub last_login_at: Option<DateTime<Utc>>,
}

impl std::fmt::Debug for UserRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserRecord")
            .field("id", &self.id)
            .field("tenant", &self.tenant)
            .field("username", &self.username)
            .field("role", &self.role)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChallengeRecord {
    pub challenge_hash: Vec<u8>,
    pub user: UserId,
    pub expires_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRecord {
    pub token_hash: Vec<u8>,
    pub user: UserId,
    pub created_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
    /// The absolute end of the session.
    pub expires_at: DateTime<Utc>,
    pub second_factor_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChargerCaRecord {
    pub id: ChargerCaId,
    pub tenant: TenantId,
    pub name: String,
    pub cert_der: Vec<u8>,
    pub sha256_hex: String,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// One line of the principals report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct PrincipalUse {
    /// `charger`, `client` or `staff`.
    pub kind: String,
    pub id: String,
    pub role: Option<String>,
    pub state: String,
    pub last_used_at: Option<DateTime<Utc>>,
}
