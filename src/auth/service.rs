//! The authentication service: turns credentials into a [`Principal`],
//! asks the [`Policy`], counts request budgets and writes an audit event for
//! every success, failure, denial and credential change. If the audit write
//! fails, the request fails.

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};

use super::charger::{CertificateRefusal, ChargerTrust};
use super::keys::{AuthKeys, HashPurpose, digests_equal};
use super::policy::{Decision, Permission, Policy};
use super::principal::{Principal, PrincipalKind};
use super::ratelimit::{RateLimitSettings, RateLimits};
use super::tokens::Bearer;
use crate::audit::{ActorKind, AuditEvent, AuditSink, Outcome};
use crate::clock::Environment;
use crate::ids::TenantId;
use crate::store::{Store, StoreError};

/// How stale a session's `last_seen_at` may get before a request renews it;
/// small beside the idle limit (15 minutes).
const SESSION_TOUCH_EVERY: Duration = Duration::seconds(5);

/// How stale an API key's `last_used_at` may get. Decided on the record just
/// read, so a busy key is not written (on SQLite: not locked for writing)
/// on every request.
const API_KEY_TOUCH_EVERY: Duration = Duration::minutes(1);

/// Lifetimes and thresholds of staff sign-in.
#[derive(Debug, Clone, Copy)]
pub struct AuthSettings {
    pub session_idle: Duration,
    pub session_absolute: Duration,
    pub challenge_lifetime: Duration,
    pub lockout_after_failures: i64,
    pub lockout: Duration,
    pub account_idle_limit: Duration,
    pub rate_limits: RateLimitSettings,
}

impl Default for AuthSettings {
    fn default() -> Self {
        Self {
            session_idle: Duration::minutes(15),
            session_absolute: Duration::hours(8),
            challenge_lifetime: Duration::minutes(5),
            lockout_after_failures: 10,
            lockout: Duration::minutes(30),
            account_idle_limit: Duration::days(90),
            rate_limits: RateLimitSettings {
                per_principal_per_minute: NonZeroU32::new(600).unwrap_or(NonZeroU32::MIN),
                per_address_per_minute: NonZeroU32::new(1200).unwrap_or(NonZeroU32::MIN),
            },
        }
    }
}

/// Why an auth call failed. `code` is the stable problem code and the audit reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("not authenticated ({0})")]
    Unauthenticated(&'static str),
    #[error("not allowed ({0})")]
    Forbidden(&'static str),
    #[error("account locked")]
    Locked { retry_after_secs: u64 },
    #[error("too many requests")]
    RateLimited { retry_after_secs: u64 },
    #[error("invalid input ({0})")]
    Invalid(&'static str, String),
    #[error("not found")]
    NotFound,
    #[error("conflict ({0})")]
    Conflict(&'static str),
    #[error("the audit trail is unavailable")]
    AuditUnavailable,
    #[error("the database is unavailable")]
    Unavailable,
    #[error("internal failure")]
    Internal,
}

impl From<StoreError> for AuthError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => AuthError::NotFound,
            StoreError::Conflict(_) => AuthError::Conflict("conflict"),
            StoreError::Unavailable => AuthError::Unavailable,
            StoreError::Internal => AuthError::Internal,
        }
    }
}

/// Where a request came from, for audit events and address budgets.
#[derive(Debug, Clone, Default)]
pub struct Origin {
    pub address: Option<SocketAddr>,
    pub request_id: Option<String>,
}

impl Origin {
    pub fn cli() -> Self {
        Self {
            address: None,
            request_id: None,
        }
    }
}

/// Who did something, as the audit trail names them.
#[derive(Debug, Clone)]
pub struct Actor {
    pub kind: ActorKind,
    pub id: String,
    pub tenant: Option<TenantId>,
}

impl Actor {
    /// An operator at the command line of a voltvault host.
    pub fn cli() -> Self {
        Self {
            kind: ActorKind::System,
            id: "cli".into(),
            tenant: None,
        }
    }

    pub fn anonymous() -> Self {
        Self {
            kind: ActorKind::Anonymous,
            id: "anonymous".into(),
            tenant: None,
        }
    }
}

impl From<&Principal> for Actor {
    fn from(p: &Principal) -> Self {
        Self {
            kind: p.kind.actor_kind(),
            id: p.id.clone(),
            tenant: Some(p.tenant),
        }
    }
}

/// What a request presented.
#[derive(Debug, Default)]
pub struct Presented<'a> {
    /// The value after `Bearer ` in `Authorization`, if any.
    pub bearer: Option<&'a str>,
    /// Whether an `Authorization` header was present but not a bearer token.
    pub malformed_authorization: bool,
    /// The client certificate chain, leaf first.
    pub certificate: Option<&'a [Vec<u8>]>,
}

pub struct AuthService {
    pub(super) store: Arc<dyn Store>,
    pub(super) env: Environment,
    pub(super) keys: Arc<dyn AuthKeys>,
    pub(super) policy: Policy,
    pub(super) audit: Arc<dyn AuditSink>,
    pub(super) chargers: Arc<ChargerTrust>,
    pub(super) settings: AuthSettings,
    limits: RateLimits,
}

impl std::fmt::Debug for AuthService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuthService")
    }
}

impl AuthService {
    /// The server-side keyed hashes (API keys, sessions, idempotency keys).
    pub fn keys(&self) -> &dyn AuthKeys {
        self.keys.as_ref()
    }

    pub fn new(
        store: Arc<dyn Store>,
        env: Environment,
        keys: Arc<dyn AuthKeys>,
        policy: Policy,
        audit: Arc<dyn AuditSink>,
        chargers: Arc<ChargerTrust>,
        settings: AuthSettings,
    ) -> Self {
        Self {
            store,
            env,
            keys,
            policy,
            audit,
            chargers,
            limits: RateLimits::new(settings.rate_limits),
            settings,
        }
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    pub fn chargers(&self) -> &Arc<ChargerTrust> {
        &self.chargers
    }

    /// The server-side sealing key, for other small secrets kept like TOTP
    /// seeds (webhook signing secrets).
    pub(crate) fn sealing_keys(&self) -> Arc<dyn AuthKeys> {
        self.keys.clone()
    }

    pub(super) fn now(&self) -> DateTime<Utc> {
        self.env.clock.now()
    }

    /// Writes one audit event; a failure fails the caller.
    pub(super) async fn record(
        &self,
        event_type: &str,
        actor: &Actor,
        outcome: Outcome,
        origin: &Origin,
        resource: Option<String>,
        reason: Option<&str>,
    ) -> Result<(), AuthError> {
        let event = self.event(event_type, actor, outcome, origin, resource, reason);
        self.audit.record(event).await.map_err(|_| {
            tracing::error!(event_type, "audit write failed; refusing the request");
            AuthError::AuditUnavailable
        })
    }

    fn event(
        &self,
        event_type: &str,
        actor: &Actor,
        outcome: Outcome,
        origin: &Origin,
        resource: Option<String>,
        reason: Option<&str>,
    ) -> AuditEvent {
        AuditEvent {
            event_type: event_type.to_owned(),
            at: self.now(),
            actor_kind: actor.kind,
            actor_id: actor.id.clone(),
            tenant: actor.tenant,
            outcome,
            origin: origin.address.map(|a| a.ip().to_string()),
            resource,
            request_id: origin.request_id.clone(),
            reason: reason.map(str::to_owned),
        }
    }

    /// Records a failed authentication and returns the error to answer with.
    async fn refuse(&self, actor: &Actor, origin: &Origin, error: AuthError) -> AuthError {
        let reason = match &error {
            AuthError::Unauthenticated(code) | AuthError::Forbidden(code) => *code,
            AuthError::Locked { .. } => "account_locked",
            _ => "error",
        };
        match self
            .record(
                "auth.authenticate",
                actor,
                Outcome::Failure,
                origin,
                None,
                Some(reason),
            )
            .await
        {
            Ok(()) => error,
            Err(audit) => audit,
        }
    }

    /// The per-address budget; checked for every request, public or not.
    pub async fn check_address(&self, origin: &Origin) -> Result<(), AuthError> {
        let Some(address) = origin.address else {
            return Ok(());
        };
        if let Err(wait) = self.limits.check_address(address.ip()) {
            let retry_after_secs = super::ratelimit::retry_after_secs(wait);
            self.record(
                "auth.rate_limit",
                &Actor::anonymous(),
                Outcome::Denied,
                origin,
                None,
                Some("address_rate_limited"),
            )
            .await?;
            return Err(AuthError::RateLimited { retry_after_secs });
        }
        Ok(())
    }

    /// Drops idle rate-limit state; called periodically.
    pub fn forget_idle_budgets(&self) {
        self.limits.forget_idle();
    }

    /// Who presented these credentials. Every outcome is audited.
    pub async fn authenticate(
        &self,
        presented: &Presented<'_>,
        origin: &Origin,
    ) -> Result<Principal, AuthError> {
        let (principal, event) = self.authenticate_pending(presented, origin).await?;
        self.audit.record(event).await.map_err(|_| {
            tracing::error!("audit write failed; refusing the request");
            AuthError::AuditUnavailable
        })?;
        Ok(principal)
    }

    /// As [`AuthService::authenticate`], but a success's audit event is
    /// handed back instead of recorded: the caller must make it durable
    /// before its request answers (with the request's own events, ADR
    /// 0008). Failures are recorded here, as always.
    pub async fn authenticate_pending(
        &self,
        presented: &Presented<'_>,
        origin: &Origin,
    ) -> Result<(Principal, AuditEvent), AuthError> {
        let anonymous = Actor::anonymous();
        if presented.malformed_authorization {
            return Err(self
                .refuse(
                    &anonymous,
                    origin,
                    AuthError::Unauthenticated("invalid_credentials"),
                )
                .await);
        }
        let principal = match (presented.bearer, presented.certificate) {
            (Some(bearer), _) => match Bearer::parse(bearer) {
                Some(Bearer::ApiKey { id, full }) => {
                    self.api_key_principal(&id, &full, origin).await?
                }
                Some(Bearer::Session(token)) => {
                    self.session_principal(token.expose_secret(), origin)
                        .await?
                }
                None => {
                    return Err(self
                        .refuse(
                            &anonymous,
                            origin,
                            AuthError::Unauthenticated("invalid_credentials"),
                        )
                        .await);
                }
            },
            (None, Some(chain)) => self.charger_principal(chain, origin).await?,
            (None, None) => {
                return Err(self
                    .refuse(
                        &anonymous,
                        origin,
                        AuthError::Unauthenticated("unauthenticated"),
                    )
                    .await);
            }
        };
        let event = self.event(
            "auth.authenticate",
            &Actor::from(&principal),
            Outcome::Success,
            origin,
            None,
            None,
        );
        Ok((principal, event))
    }

    async fn api_key_principal(
        &self,
        id: &super::tokens::ApiKeyId,
        full: &crate::secret::SecretString,
        origin: &Origin,
    ) -> Result<Principal, AuthError> {
        let actor = Actor {
            kind: ActorKind::Client,
            id: format!("client:{id}"),
            tenant: None,
        };
        let presented = self
            .keys
            .keyed_hash(HashPurpose::ApiKey, full.expose_secret().as_bytes());
        let record = match self.store.api_key(id).await {
            Ok(r) => r,
            Err(StoreError::NotFound) => {
                return Err(self
                    .refuse(
                        &actor,
                        origin,
                        AuthError::Unauthenticated("invalid_credentials"),
                    )
                    .await);
            }
            Err(e) => return Err(e.into()),
        };
        let actor = Actor {
            tenant: Some(record.tenant),
            ..actor
        };
        if !digests_equal(&presented, &record.secret_hash) {
            return Err(self
                .refuse(
                    &actor,
                    origin,
                    AuthError::Unauthenticated("invalid_credentials"),
                )
                .await);
        }
        let now = self.now();
        if record.revoked_at.is_some() {
            return Err(self
                .refuse(
                    &actor,
                    origin,
                    AuthError::Unauthenticated("api_key_revoked"),
                )
                .await);
        }
        if record.expires_at.is_some_and(|at| at <= now) {
            return Err(self
                .refuse(
                    &actor,
                    origin,
                    AuthError::Unauthenticated("api_key_expired"),
                )
                .await);
        }
        if !self.policy.role_fits(record.role, PrincipalKind::Client) {
            return Err(self
                .refuse(
                    &actor,
                    origin,
                    AuthError::Forbidden("role_not_for_api_keys"),
                )
                .await);
        }
        if record
            .last_used_at
            .is_none_or(|used| now - used >= API_KEY_TOUCH_EVERY)
        {
            self.store
                .touch_api_key(id, now, API_KEY_TOUCH_EVERY)
                .await?;
        }
        Ok(Principal {
            tenant: record.tenant,
            role: record.role,
            kind: PrincipalKind::Client,
            id: actor.id,
            second_factor_at: None,
        })
    }

    async fn session_principal(
        &self,
        token: &str,
        origin: &Origin,
    ) -> Result<Principal, AuthError> {
        let anonymous = Actor {
            kind: ActorKind::Staff,
            id: "staff:unknown".into(),
            tenant: None,
        };
        let hash = self.keys.keyed_hash(HashPurpose::Session, token.as_bytes());
        let (session, user) = match self.store.session_with_user(&hash).await {
            Ok(found) => found,
            Err(StoreError::NotFound) => {
                return Err(self
                    .refuse(
                        &anonymous,
                        origin,
                        AuthError::Unauthenticated("session_invalid"),
                    )
                    .await);
            }
            Err(e) => return Err(e.into()),
        };
        let actor = Actor {
            kind: ActorKind::Staff,
            id: format!("staff:{}", user.username),
            tenant: Some(user.tenant),
        };
        let now = self.now();
        if now >= session.expires_at || now - session.last_seen_at >= self.settings.session_idle {
            self.store.delete_session(&hash).await?;
            return Err(self
                .refuse(
                    &actor,
                    origin,
                    AuthError::Unauthenticated("session_expired"),
                )
                .await);
        }
        if user.disabled_at.is_some() {
            self.store.delete_session(&hash).await?;
            return Err(self
                .refuse(
                    &actor,
                    origin,
                    AuthError::Unauthenticated("account_disabled"),
                )
                .await);
        }
        // Every request reads the session; writing `last_seen_at` on every
        // request too would queue a busy session's requests behind one row
        // lock and a commit each. It lags by at most SESSION_TOUCH_EVERY.
        if now - session.last_seen_at >= SESSION_TOUCH_EVERY {
            self.store.touch_session(&hash, now).await?;
        }
        Ok(Principal {
            tenant: user.tenant,
            role: user.role,
            kind: PrincipalKind::Staff,
            id: actor.id,
            second_factor_at: Some(session.second_factor_at),
        })
    }

    async fn charger_principal(
        &self,
        chain: &[Vec<u8>],
        origin: &Origin,
    ) -> Result<Principal, AuthError> {
        let fingerprint = chain
            .first()
            .map(|leaf| hex::encode(ring::digest::digest(&ring::digest::SHA256, leaf)))
            .unwrap_or_default();
        let now = self.now();
        match self.chargers.authenticate(chain, now) {
            Ok(charger) => {
                self.store
                    .touch_charger(charger.tenant, charger.ca, &charger.identity, now)
                    .await?;
                Ok(Principal {
                    tenant: charger.tenant,
                    role: super::policy::Role::Charger,
                    kind: PrincipalKind::Charger,
                    id: format!("charger:{}", charger.identity),
                    second_factor_at: None,
                })
            }
            Err(refusal) => {
                let actor = Actor {
                    kind: ActorKind::Charger,
                    id: format!("certificate:{fingerprint}"),
                    tenant: None,
                };
                let code = match refusal {
                    CertificateRefusal::UnknownCa => "certificate_unknown_ca",
                    CertificateRefusal::Expired => "certificate_expired",
                    CertificateRefusal::Revoked => "certificate_revoked",
                    CertificateRefusal::NoIdentity => "certificate_no_identity",
                };
                Err(self
                    .refuse(&actor, origin, AuthError::Unauthenticated(code))
                    .await)
            }
        }
    }

    /// Spends one request of the principal's budget.
    pub async fn check_principal_budget(
        &self,
        principal: &Principal,
        origin: &Origin,
    ) -> Result<(), AuthError> {
        // Keyed by tenant too: two tenants' chargers may share a name.
        let key = format!("{}/{}", principal.tenant, principal.id);
        if let Err(wait) = self.limits.check_principal(&key) {
            self.record(
                "auth.rate_limit",
                &Actor::from(principal),
                Outcome::Denied,
                origin,
                None,
                Some("principal_rate_limited"),
            )
            .await?;
            return Err(AuthError::RateLimited {
                retry_after_secs: super::ratelimit::retry_after_secs(wait),
            });
        }
        Ok(())
    }

    /// Asks the policy; a denial is audited.
    pub async fn authorize(
        &self,
        principal: &Principal,
        permission: Permission,
        origin: &Origin,
    ) -> Result<(), AuthError> {
        let reason = match self.policy.decide(principal, permission, self.now()) {
            Decision::Allow => return Ok(()),
            Decision::Deny => "permission_denied",
            Decision::NeedsFreshSecondFactor => "fresh_second_factor_required",
        };
        self.record(
            "auth.authorize",
            &Actor::from(principal),
            Outcome::Denied,
            origin,
            Some(permission.as_str().to_owned()),
            Some(reason),
        )
        .await?;
        Err(AuthError::Forbidden(reason))
    }

    /// Records that `principal` was refused access to another tenant's resource.
    pub async fn deny_cross_tenant(
        &self,
        principal: &Principal,
        resource: String,
        origin: &Origin,
    ) -> Result<(), AuthError> {
        self.record(
            "auth.authorize",
            &Actor::from(principal),
            Outcome::Denied,
            origin,
            Some(resource),
            Some("other_tenant"),
        )
        .await
    }

    /// Reloads the charger CAs from the database.
    pub async fn reload_chargers(&self) -> Result<(), AuthError> {
        self.chargers.reload(self.store.as_ref()).await?;
        Ok(())
    }
}

/// `Retry-After` for lockouts.
pub(super) fn secs_until(now: DateTime<Utc>, until: DateTime<Utc>) -> u64 {
    let secs = (until - now).num_seconds().max(1);
    u64::try_from(secs).unwrap_or(1)
}
