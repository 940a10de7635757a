//! Staff sign-in: password first (a short-lived challenge), then TOTP (a
//! session). Ten failures lock the account for thirty minutes; a TOTP step is
//! accepted once; an account unused for ninety days is disabled.

use chrono::{DateTime, Utc};

use super::keys::HashPurpose;
use super::password;
use super::records::{ChallengeRecord, SessionRecord, UserRecord};
use super::service::{Actor, AuthError, AuthService, Origin, secs_until};
use super::tokens::{new_bearer, parse_challenge};
use super::totp;
use crate::audit::{ActorKind, Outcome};
use crate::secret::SecretString;
use crate::store::StoreError;

/// A new staff session, shown once.
#[derive(Debug)]
pub struct NewSession {
    pub token: SecretString,
    /// The absolute end; the session also ends after 15 idle minutes.
    pub expires_at: DateTime<Utc>,
    pub idle_timeout_secs: i64,
}

fn staff_actor(user: &UserRecord) -> Actor {
    Actor {
        kind: ActorKind::Staff,
        id: format!("staff:{}", user.username),
        tenant: Some(user.tenant),
    }
}

impl AuthService {
    /// Refuses a locked, disabled or long-idle account before any secret is checked.
    async fn usable(
        &self,
        user: &UserRecord,
        origin: &Origin,
        event: &str,
    ) -> Result<(), AuthError> {
        let actor = staff_actor(user);
        let now = self.now();
        if user.disabled_at.is_some() {
            self.record(
                event,
                &actor,
                Outcome::Failure,
                origin,
                None,
                Some("account_disabled"),
            )
            .await?;
            return Err(AuthError::Unauthenticated("account_disabled"));
        }
        let last_use = user.last_login_at.unwrap_or(user.created_at);
        if now - last_use >= self.settings.account_idle_limit {
            self.store.disable_user(None, user.id, now).await?;
            self.record(
                "auth.user.disable",
                &Actor::system(),
                Outcome::Success,
                origin,
                Some(actor.id.clone()),
                Some("idle_90_days"),
            )
            .await?;
            self.record(
                event,
                &actor,
                Outcome::Failure,
                origin,
                None,
                Some("account_disabled"),
            )
            .await?;
            return Err(AuthError::Unauthenticated("account_disabled"));
        }
        if let Some(until) = user.locked_until.filter(|until| *until > now) {
            self.record(
                event,
                &actor,
                Outcome::Failure,
                origin,
                None,
                Some("account_locked"),
            )
            .await?;
            return Err(AuthError::Locked {
                retry_after_secs: secs_until(now, until),
            });
        }
        Ok(())
    }

    /// Counts a failure; the tenth locks the account.
    async fn failed(
        &self,
        user: &UserRecord,
        origin: &Origin,
        event: &str,
        reason: &'static str,
    ) -> AuthError {
        let outcome = async {
            let count = self.store.add_login_failure(user.id).await?;
            self.record(
                event,
                &staff_actor(user),
                Outcome::Failure,
                origin,
                None,
                Some(reason),
            )
            .await?;
            if count >= self.settings.lockout_after_failures {
                let until = self.now() + self.settings.lockout;
                self.store.lock_user(user.id, until).await?;
                self.record(
                    "auth.user.lock",
                    &staff_actor(user),
                    Outcome::Success,
                    origin,
                    None,
                    Some("too_many_failures"),
                )
                .await?;
            }
            Ok::<_, AuthError>(())
        }
        .await;
        match outcome {
            Ok(()) => AuthError::Unauthenticated(reason),
            Err(e) => e,
        }
    }

    /// Disables every account unused for 90 days (PCI DSS 8.2.6); each is audited.
    pub async fn disable_idle_accounts(&self) -> Result<usize, AuthError> {
        let now = self.now();
        let disabled = self
            .store
            .disable_idle_users(now - self.settings.account_idle_limit, now)
            .await?;
        for (tenant, username) in &disabled {
            let mut actor = Actor::system();
            actor.tenant = Some(*tenant);
            self.record(
                "auth.user.disable",
                &actor,
                Outcome::Success,
                &Origin::cli(),
                Some(format!("staff:{username}")),
                Some("idle_90_days"),
            )
            .await?;
        }
        Ok(disabled.len())
    }

    /// Checks a user name and password; returns a challenge for the second factor.
    pub async fn login(
        &self,
        username: &str,
        password: &SecretString,
        origin: &Origin,
    ) -> Result<SecretString, AuthError> {
        const EVENT: &str = "auth.login";
        let user = match self.store.user_by_username(username).await {
            Ok(user) => user,
            Err(StoreError::NotFound) => {
                password::verify_dummy(password);
                let actor = Actor {
                    kind: ActorKind::Staff,
                    id: "staff:unknown".into(),
                    tenant: None,
                };
                self.record(
                    EVENT,
                    &actor,
                    Outcome::Failure,
                    origin,
                    None,
                    Some("invalid_credentials"),
                )
                .await?;
                return Err(AuthError::Unauthenticated("invalid_credentials"));
            }
            Err(e) => return Err(e.into()),
        };
        self.usable(&user, origin, EVENT).await?;
        let pw = password.clone();
        let hash = user.password_hash.clone();
        let ok = tokio::task::spawn_blocking(move || password::verify(&pw, &hash))
            .await
            .unwrap_or(false);
        if !ok {
            return Err(self
                .failed(&user, origin, EVENT, "invalid_credentials")
                .await);
        }
        let challenge = new_bearer(self.env.random.as_ref(), "vvc_");
        self.store
            .insert_challenge(&ChallengeRecord {
                challenge_hash: self
                    .keys
                    .keyed_hash(HashPurpose::Challenge, challenge.expose_secret().as_bytes())
                    .to_vec(),
                user: user.id,
                expires_at: self.now() + self.settings.challenge_lifetime,
            })
            .await?;
        self.record(
            EVENT,
            &staff_actor(&user),
            Outcome::Success,
            origin,
            None,
            Some("password_ok"),
        )
        .await?;
        Ok(challenge)
    }

    /// Checks the TOTP code for a challenge; returns a session.
    pub async fn verify_second_factor(
        &self,
        challenge: &str,
        code: &str,
        origin: &Origin,
    ) -> Result<NewSession, AuthError> {
        const EVENT: &str = "auth.mfa";
        let unknown = Actor {
            kind: ActorKind::Staff,
            id: "staff:unknown".into(),
            tenant: None,
        };
        let Some(challenge) = parse_challenge(challenge) else {
            self.record(
                EVENT,
                &unknown,
                Outcome::Failure,
                origin,
                None,
                Some("challenge_invalid"),
            )
            .await?;
            return Err(AuthError::Unauthenticated("challenge_invalid"));
        };
        let hash = self
            .keys
            .keyed_hash(HashPurpose::Challenge, challenge.expose_secret().as_bytes());
        let now = self.now();
        let record = match self.store.challenge(&hash).await {
            Ok(r) if r.expires_at > now => r,
            Ok(_) | Err(StoreError::NotFound) => {
                let _ = self.store.delete_challenge(&hash).await;
                self.record(
                    EVENT,
                    &unknown,
                    Outcome::Failure,
                    origin,
                    None,
                    Some("challenge_invalid"),
                )
                .await?;
                return Err(AuthError::Unauthenticated("challenge_invalid"));
            }
            Err(e) => return Err(e.into()),
        };
        let user = self.store.user(record.user).await?;
        self.usable(&user, origin, EVENT).await?;
        let seed = self
            .keys
            .open(user.id.as_uuid().as_bytes(), &user.totp_sealed)
            .map_err(|_| AuthError::Internal)?;
        let unix = u64::try_from(now.timestamp()).unwrap_or(0);
        let Some(step) = totp::matching_step(&seed, code.trim(), unix) else {
            return Err(self.failed(&user, origin, EVENT, "totp_invalid").await);
        };
        let step = i64::try_from(step).map_err(|_| AuthError::Internal)?;
        if !self.store.claim_totp_step(user.id, step).await? {
            return Err(self.failed(&user, origin, EVENT, "totp_replayed").await);
        }
        self.store.delete_challenge(&hash).await?;
        self.store.record_login(user.id, now).await?;
        let token = new_bearer(self.env.random.as_ref(), "vvs_");
        let expires_at = now + self.settings.session_absolute;
        self.store
            .insert_session(&SessionRecord {
                token_hash: self
                    .keys
                    .keyed_hash(HashPurpose::Session, token.expose_secret().as_bytes())
                    .to_vec(),
                user: user.id,
                created_at: now,
                last_seen_at: now,
                expires_at,
                second_factor_at: now,
            })
            .await?;
        self.record(
            EVENT,
            &staff_actor(&user),
            Outcome::Success,
            origin,
            None,
            None,
        )
        .await?;
        Ok(NewSession {
            token,
            expires_at,
            idle_timeout_secs: self.settings.session_idle.num_seconds(),
        })
    }

    /// Checks a TOTP code within a live session and records it as the
    /// session's latest second factor (for permissions that need a fresh one).
    pub async fn step_up(
        &self,
        token: &str,
        code: &str,
        origin: &Origin,
    ) -> Result<DateTime<Utc>, AuthError> {
        const EVENT: &str = "auth.step_up";
        let hash = self.keys.keyed_hash(HashPurpose::Session, token.as_bytes());
        let session = self.store.session(&hash).await?;
        let user = self.store.user(session.user).await?;
        self.usable(&user, origin, EVENT).await?;
        let seed = self
            .keys
            .open(user.id.as_uuid().as_bytes(), &user.totp_sealed)
            .map_err(|_| AuthError::Internal)?;
        let now = self.now();
        let unix = u64::try_from(now.timestamp()).unwrap_or(0);
        let Some(step) = totp::matching_step(&seed, code.trim(), unix) else {
            return Err(self.failed(&user, origin, EVENT, "totp_invalid").await);
        };
        let step = i64::try_from(step).map_err(|_| AuthError::Internal)?;
        if !self.store.claim_totp_step(user.id, step).await? {
            return Err(self.failed(&user, origin, EVENT, "totp_replayed").await);
        }
        self.store.renew_second_factor(&hash, now).await?;
        self.record(
            EVENT,
            &staff_actor(&user),
            Outcome::Success,
            origin,
            None,
            None,
        )
        .await?;
        Ok(now)
    }

    /// Ends the session whose token is given.
    pub async fn logout(
        &self,
        token: &str,
        by: &super::Principal,
        origin: &Origin,
    ) -> Result<(), AuthError> {
        let hash = self.keys.keyed_hash(HashPurpose::Session, token.as_bytes());
        self.store.delete_session(&hash).await?;
        self.record(
            "auth.logout",
            &Actor::from(by),
            Outcome::Success,
            origin,
            None,
            None,
        )
        .await
    }
}

impl Actor {
    /// voltvault itself acting on an account (idle disable).
    pub fn system() -> Self {
        Self {
            kind: ActorKind::System,
            id: "voltvault".into(),
            tenant: None,
        }
    }
}
