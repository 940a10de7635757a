//! Administration of principals, shared by the admin API and the CLI:
//! tenants, API keys, charger CAs and their revocations, staff users, and a
//! report of who was last seen when. Every change is an audit event.

use chrono::{DateTime, Utc};
use zeroize::Zeroizing;

use super::charger::{certificate_serial, normalize_serial};
use super::keys::HashPurpose;
use super::password::{self, PASSWORD_HISTORY, PasswordRuleError};
use super::policy::Role;
use super::principal::PrincipalKind;
use super::records::{ApiKeyRecord, ChargerCaRecord, PrincipalUse, UserRecord};
use super::service::{Actor, AuthError, AuthService, Origin};
use super::tokens::{ApiKeyId, new_api_key, new_api_key_secret};
use super::totp;
use crate::audit::Outcome;
use crate::ids::{ChargerCaId, TenantId, UserId};
use crate::secret::SecretString;
use crate::store::StoreError;
use crate::tenants::{Tenant, TenantName};

/// A user's second factor, to hand over once.
pub struct TotpProvisioning {
    pub uri: Zeroizing<String>,
}

impl std::fmt::Debug for TotpProvisioning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TotpProvisioning([REDACTED])")
    }
}

/// A staff user name: 3 to 64 lowercase letters, digits, '.', '-', '_' or '@'.
pub fn check_username(raw: &str) -> Result<(), AuthError> {
    let ok = (3..=64).contains(&raw.len())
        && raw.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'_' | b'@')
        });
    if ok {
        Ok(())
    } else {
        Err(AuthError::Invalid(
            "invalid_username",
            "3 to 64 lowercase letters, digits, '.', '-', '_' or '@'".into(),
        ))
    }
}

fn password_error(e: PasswordRuleError) -> AuthError {
    AuthError::Invalid("password_rejected", e.to_string())
}

impl AuthService {
    async fn changed(
        &self,
        event: &str,
        by: &Actor,
        origin: &Origin,
        tenant: TenantId,
        resource: String,
    ) -> Result<(), AuthError> {
        let mut actor = by.clone();
        if actor.tenant.is_none() {
            actor.tenant = Some(tenant);
        }
        self.record(
            event,
            &actor,
            Outcome::Success,
            origin,
            Some(resource),
            None,
        )
        .await
    }

    pub async fn create_tenant(
        &self,
        name: &str,
        by: &Actor,
        origin: &Origin,
    ) -> Result<Tenant, AuthError> {
        let name = TenantName::parse(name)
            .map_err(|e| AuthError::Invalid("invalid_tenant_name", e.to_string()))?;
        let tenant = Tenant {
            id: TenantId::generate(),
            name,
            created_at: self.now(),
        };
        self.store
            .insert_tenant(&tenant)
            .await
            .map_err(|e| match e {
                StoreError::Conflict(_) => AuthError::Conflict("tenant_exists"),
                e => e.into(),
            })?;
        self.changed(
            "tenant.create",
            by,
            origin,
            tenant.id,
            tenant.id.to_string(),
        )
        .await?;
        Ok(tenant)
    }

    async fn tenant_exists(&self, tenant: TenantId) -> Result<(), AuthError> {
        self.store
            .tenant(tenant)
            .await
            .map(|_| ())
            .map_err(|e| match e {
                StoreError::NotFound => {
                    AuthError::Invalid("unknown_tenant", "no such tenant".into())
                }
                e => e.into(),
            })
    }

    /// A new API key; the secret is returned once and stored as a keyed hash.
    pub async fn create_api_key(
        &self,
        tenant: TenantId,
        name: &str,
        role: Role,
        expires_at: Option<DateTime<Utc>>,
        by: &Actor,
        origin: &Origin,
    ) -> Result<(ApiKeyRecord, SecretString), AuthError> {
        if name.is_empty() || name.len() > 128 || name.chars().any(char::is_control) {
            return Err(AuthError::Invalid(
                "invalid_name",
                "1 to 128 characters".into(),
            ));
        }
        if !self.policy.role_fits(role, PrincipalKind::Client) {
            return Err(AuthError::Invalid(
                "invalid_role",
                format!("role {role} cannot be held by an API key"),
            ));
        }
        let now = self.now();
        if expires_at.is_some_and(|at| at <= now) {
            return Err(AuthError::Invalid(
                "invalid_expiry",
                "expires_at is in the past".into(),
            ));
        }
        self.tenant_exists(tenant).await?;
        let (id, secret) = new_api_key(self.env.random.as_ref());
        let record = ApiKeyRecord {
            id,
            tenant,
            name: name.to_owned(),
            role,
            secret_hash: self
                .keys
                .keyed_hash(HashPurpose::ApiKey, secret.expose_secret().as_bytes())
                .to_vec(),
            created_at: now,
            expires_at,
            revoked_at: None,
            last_used_at: None,
        };
        self.store.insert_api_key(&record).await?;
        self.changed(
            "client.create",
            by,
            origin,
            tenant,
            format!("client:{}", record.id),
        )
        .await?;
        Ok((record, secret))
    }

    pub async fn api_keys(&self, tenant: TenantId) -> Result<Vec<ApiKeyRecord>, AuthError> {
        Ok(self.store.api_keys(tenant).await?)
    }

    /// Looks for `found` outside the caller's tenant: audited as a cross-tenant denial.
    async fn not_found_in_tenant(
        &self,
        by: &Actor,
        origin: &Origin,
        elsewhere: bool,
        resource: String,
    ) -> AuthError {
        if elsewhere {
            let result = self
                .record(
                    "auth.authorize",
                    by,
                    Outcome::Denied,
                    origin,
                    Some(resource),
                    Some("other_tenant"),
                )
                .await;
            if let Err(e) = result {
                return e;
            }
        }
        AuthError::NotFound
    }

    pub async fn revoke_api_key(
        &self,
        tenant: TenantId,
        id: &ApiKeyId,
        by: &Actor,
        origin: &Origin,
    ) -> Result<(), AuthError> {
        match self.store.revoke_api_key(tenant, id, self.now()).await {
            Ok(()) => {
                self.changed("client.revoke", by, origin, tenant, format!("client:{id}"))
                    .await
            }
            Err(StoreError::NotFound) => {
                let elsewhere = self.store.api_key(id).await.is_ok();
                Err(self
                    .not_found_in_tenant(by, origin, elsewhere, format!("client:{id}"))
                    .await)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// A new secret for an existing key; the old one stops working at once.
    pub async fn rotate_api_key(
        &self,
        tenant: TenantId,
        id: &ApiKeyId,
        by: &Actor,
        origin: &Origin,
    ) -> Result<SecretString, AuthError> {
        let secret = new_api_key_secret(self.env.random.as_ref(), id);
        let hash = self
            .keys
            .keyed_hash(HashPurpose::ApiKey, secret.expose_secret().as_bytes());
        match self.store.replace_api_key_secret(tenant, id, &hash).await {
            Ok(()) => {
                self.changed("client.rotate", by, origin, tenant, format!("client:{id}"))
                    .await?;
                Ok(secret)
            }
            Err(StoreError::NotFound) => {
                let elsewhere = self
                    .store
                    .api_key(id)
                    .await
                    .is_ok_and(|k| k.tenant != tenant);
                Err(self
                    .not_found_in_tenant(by, origin, elsewhere, format!("client:{id}"))
                    .await)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Registers a CA whose client certificates are chargers of `tenant`.
    pub async fn register_charger_ca(
        &self,
        tenant: TenantId,
        name: &str,
        certificate_pem: &str,
        by: &Actor,
        origin: &Origin,
    ) -> Result<ChargerCaRecord, AuthError> {
        use rustls_pki_types::CertificateDer;
        use rustls_pki_types::pem::PemObject;
        if name.is_empty() || name.len() > 128 || name.chars().any(char::is_control) {
            return Err(AuthError::Invalid(
                "invalid_name",
                "1 to 128 characters".into(),
            ));
        }
        let der = CertificateDer::from_pem_slice(certificate_pem.as_bytes()).map_err(|_| {
            AuthError::Invalid("invalid_certificate", "expected one PEM certificate".into())
        })?;
        let is_ca = x509_parser::parse_x509_certificate(der.as_ref())
            .ok()
            .and_then(|(_, c)| c.basic_constraints().ok().flatten().map(|b| b.value.ca))
            .unwrap_or(false);
        if !is_ca {
            return Err(AuthError::Invalid(
                "invalid_certificate",
                "the certificate is not a CA certificate".into(),
            ));
        }
        self.tenant_exists(tenant).await?;
        let record = ChargerCaRecord {
            id: ChargerCaId::generate(),
            tenant,
            name: name.to_owned(),
            sha256_hex: hex::encode(ring::digest::digest(&ring::digest::SHA256, der.as_ref())),
            cert_der: der.as_ref().to_vec(),
            created_at: self.now(),
            revoked_at: None,
        };
        self.store
            .insert_charger_ca(&record)
            .await
            .map_err(|e| match e {
                StoreError::Conflict(_) => AuthError::Conflict("charger_ca_exists"),
                e => e.into(),
            })?;
        self.changed(
            "charger_ca.register",
            by,
            origin,
            tenant,
            format!("charger_ca:{}", record.id),
        )
        .await?;
        self.reload_chargers().await?;
        Ok(record)
    }

    pub async fn charger_cas(&self, tenant: TenantId) -> Result<Vec<ChargerCaRecord>, AuthError> {
        Ok(self.store.charger_cas(tenant).await?)
    }

    /// Puts a certificate serial (hex) on the CA's revocation list.
    pub async fn revoke_charger_certificate(
        &self,
        tenant: TenantId,
        ca: ChargerCaId,
        serial_or_pem: &str,
        by: &Actor,
        origin: &Origin,
    ) -> Result<String, AuthError> {
        let serial = if serial_or_pem.contains("BEGIN CERTIFICATE") {
            use rustls_pki_types::CertificateDer;
            use rustls_pki_types::pem::PemObject;
            CertificateDer::from_pem_slice(serial_or_pem.as_bytes())
                .ok()
                .and_then(|der| certificate_serial(der.as_ref()))
        } else {
            normalize_serial(serial_or_pem)
        }
        .ok_or_else(|| {
            AuthError::Invalid("invalid_serial", "a hex serial or a PEM certificate".into())
        })?;
        match self
            .store
            .revoke_charger_certificate(tenant, ca, &serial, self.now())
            .await
        {
            Ok(()) => {}
            Err(StoreError::NotFound) => {
                let elsewhere = self
                    .store
                    .active_charger_cas()
                    .await?
                    .iter()
                    .any(|c| c.id == ca && c.tenant != tenant);
                return Err(self
                    .not_found_in_tenant(by, origin, elsewhere, format!("charger_ca:{ca}"))
                    .await);
            }
            Err(e) => return Err(e.into()),
        }
        self.changed(
            "charger_ca.revoke_certificate",
            by,
            origin,
            tenant,
            format!("charger_ca:{ca}/serial:{serial}"),
        )
        .await?;
        self.reload_chargers().await?;
        Ok(serial)
    }

    /// Imports the CA's certificate revocation list (PEM or DER), after
    /// checking that the CA signed it. It replaces the previous one.
    pub async fn import_charger_crl(
        &self,
        tenant: TenantId,
        ca: ChargerCaId,
        crl: &[u8],
        by: &Actor,
        origin: &Origin,
    ) -> Result<(), AuthError> {
        use rustls_pki_types::CertificateRevocationListDer;
        use rustls_pki_types::pem::PemObject;
        let der = if crl.starts_with(b"-----BEGIN") {
            CertificateRevocationListDer::from_pem_slice(crl)
                .map(|d| d.as_ref().to_vec())
                .map_err(|_| {
                    AuthError::Invalid("invalid_crl", "expected one PEM X509 CRL".into())
                })?
        } else {
            crl.to_vec()
        };
        let record = match self
            .store
            .charger_cas(tenant)
            .await?
            .into_iter()
            .find(|c| c.id == ca)
        {
            Some(record) => record,
            None => {
                let elsewhere = self
                    .store
                    .active_charger_cas()
                    .await?
                    .iter()
                    .any(|c| c.id == ca);
                return Err(self
                    .not_found_in_tenant(by, origin, elsewhere, format!("charger_ca:{ca}"))
                    .await);
            }
        };
        super::charger::check_crl(&record.cert_der, &der).map_err(|refusal| {
            let why = match refusal {
                super::charger::CrlRefusal::Malformed => "not an X.509 CRL",
                super::charger::CrlRefusal::OtherIssuer => "the CRL names another issuer",
                super::charger::CrlRefusal::BadSignature => "the CA did not sign this CRL",
            };
            AuthError::Invalid("invalid_crl", why.into())
        })?;
        self.store
            .set_charger_crl(tenant, ca, &der, self.now())
            .await?;
        self.changed(
            "charger_ca.import_crl",
            by,
            origin,
            tenant,
            format!("charger_ca:{ca}"),
        )
        .await?;
        self.reload_chargers().await
    }

    fn seal_seed(&self, user: UserId, seed: &[u8]) -> Result<Vec<u8>, AuthError> {
        self.keys
            .seal(self.env.random.as_ref(), user.as_uuid().as_bytes(), seed)
            .map_err(|_| AuthError::Internal)
    }

    async fn hash_password(&self, password: &SecretString) -> Result<String, AuthError> {
        let pw = password.clone();
        let random = self.env.random.clone();
        tokio::task::spawn_blocking(move || password::hash(&pw, random.as_ref()))
            .await
            .ok()
            .flatten()
            .ok_or(AuthError::Internal)
    }

    /// A new staff user with a password and a fresh TOTP seed.
    pub async fn create_user(
        &self,
        tenant: TenantId,
        username: &str,
        role: Role,
        password: &SecretString,
        by: &Actor,
        origin: &Origin,
    ) -> Result<(UserRecord, TotpProvisioning), AuthError> {
        check_username(username)?;
        if !self.policy.role_fits(role, PrincipalKind::Staff) {
            return Err(AuthError::Invalid(
                "invalid_role",
                format!("role {role} cannot be held by staff"),
            ));
        }
        password::check_rules(password).map_err(password_error)?;
        self.tenant_exists(tenant).await?;
        let id = UserId::generate();
        let seed = totp::new_seed(self.env.random.as_ref());
        let uri = totp::provisioning_uri(&seed, username).ok_or(AuthError::Internal)?;
        let user = UserRecord {
            id,
            tenant,
            username: username.to_owned(),
            role,
            password_hash: self.hash_password(password).await?,
            totp_sealed: self.seal_seed(id, &seed)?,
            totp_last_step: 0,
            failed_attempts: 0,
            locked_until: None,
            disabled_at: None,
            created_at: self.now(),
            last_login_at: None,
        };
        self.store.insert_user(&user).await.map_err(|e| match e {
            StoreError::Conflict(_) => AuthError::Conflict("username_taken"),
            e => e.into(),
        })?;
        self.changed(
            "user.create",
            by,
            origin,
            tenant,
            format!("staff:{username}"),
        )
        .await?;
        Ok((user, TotpProvisioning { uri }))
    }

    pub async fn users(&self, tenant: TenantId) -> Result<Vec<UserRecord>, AuthError> {
        Ok(self.store.users(tenant).await?)
    }

    async fn user_in_tenant(
        &self,
        tenant: TenantId,
        id: UserId,
        by: &Actor,
        origin: &Origin,
    ) -> Result<UserRecord, AuthError> {
        match self.store.user(id).await {
            Ok(user) if user.tenant == tenant => Ok(user),
            Ok(_) => Err(self
                .not_found_in_tenant(by, origin, true, format!("user:{id}"))
                .await),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn disable_user(
        &self,
        tenant: TenantId,
        id: UserId,
        by: &Actor,
        origin: &Origin,
    ) -> Result<(), AuthError> {
        let user = self.user_in_tenant(tenant, id, by, origin).await?;
        self.store
            .disable_user(Some(tenant), id, self.now())
            .await?;
        self.changed(
            "user.disable",
            by,
            origin,
            tenant,
            format!("staff:{}", user.username),
        )
        .await
    }

    /// A new password (not one of the last four) and a new TOTP seed; lifts
    /// lock and disable and ends the user's sessions.
    pub async fn reset_user(
        &self,
        tenant: TenantId,
        id: UserId,
        new_password: &SecretString,
        by: &Actor,
        origin: &Origin,
    ) -> Result<TotpProvisioning, AuthError> {
        password::check_rules(new_password).map_err(password_error)?;
        let user = self.user_in_tenant(tenant, id, by, origin).await?;
        let history = self
            .store
            .password_history(id, i64::try_from(PASSWORD_HISTORY).unwrap_or(4))
            .await?;
        let pw = new_password.clone();
        let reused = tokio::task::spawn_blocking(move || {
            history.iter().any(|old| password::verify(&pw, old))
        })
        .await
        .unwrap_or(true);
        if reused {
            return Err(password_error(PasswordRuleError::Reused));
        }
        let seed = totp::new_seed(self.env.random.as_ref());
        let uri = totp::provisioning_uri(&seed, &user.username).ok_or(AuthError::Internal)?;
        let hash = self.hash_password(new_password).await?;
        self.store
            .reset_user_credentials(tenant, id, &hash, &self.seal_seed(id, &seed)?, self.now())
            .await?;
        self.changed(
            "user.reset",
            by,
            origin,
            tenant,
            format!("staff:{}", user.username),
        )
        .await?;
        Ok(TotpProvisioning { uri })
    }

    /// Every principal of a tenant with its state and last use.
    pub async fn principals_report(
        &self,
        tenant: TenantId,
    ) -> Result<Vec<PrincipalUse>, AuthError> {
        let now = self.now();
        let mut out = Vec::new();
        for key in self.store.api_keys(tenant).await? {
            let state = if key.revoked_at.is_some() {
                "revoked"
            } else if key.expires_at.is_some_and(|at| at <= now) {
                "expired"
            } else {
                "active"
            };
            out.push(PrincipalUse {
                kind: "client".into(),
                id: format!("client:{}", key.id),
                role: Some(key.role.to_string()),
                state: state.into(),
                last_used_at: key.last_used_at,
            });
        }
        for user in self.store.users(tenant).await? {
            let state = if user.disabled_at.is_some() {
                "disabled"
            } else if user.locked_until.is_some_and(|at| at > now) {
                "locked"
            } else {
                "active"
            };
            out.push(PrincipalUse {
                kind: "staff".into(),
                id: format!("staff:{}", user.username),
                role: Some(user.role.to_string()),
                state: state.into(),
                last_used_at: user.last_login_at,
            });
        }
        for (identity, last) in self.store.chargers_seen(tenant).await? {
            out.push(PrincipalUse {
                kind: "charger".into(),
                id: format!("charger:{identity}"),
                role: Some(Role::Charger.to_string()),
                state: "seen".into(),
                last_used_at: Some(last),
            });
        }
        Ok(out)
    }
}
