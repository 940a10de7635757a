//! Building the key layer from configuration, and plugging it into the
//! audit trail: key events become audit events, and audit checkpoints are
//! sealed with the audit key inside the provider.

use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use cryptoki::session::UserType;
use cryptoki::types::AuthPin;

use super::audit::{KeyAuditSink, KeyEvent};
use super::manager::RotationPolicy;
use super::pkcs11::{Pkcs11Config, Pkcs11Provider, load_pin, module};
use super::software::{SoftwareProvider, Unseal};
use super::{KeyError, KeyProvider};
use crate::audit::seal::{CheckpointSealer, SealError};
use crate::audit::{AuditEvent, AuditSink, Outcome};
use crate::clock::{Clock, Environment};
use crate::config::{Config, KEK_PASSPHRASE_ENV, KEK_SHARES_ENV, KeyProviderKind, KeysConfig};
use crate::secret::SecretString;

/// Opens the configured provider. `unseal` overrides the environment for
/// the software provider (`voltvault dev` keeps its passphrase in its data
/// directory).
pub async fn open_provider(
    config: &Config,
    env: &Environment,
    unseal: Option<Unseal>,
) -> Result<Arc<dyn KeyProvider>, KeyError> {
    match config.keys.provider {
        KeyProviderKind::Pkcs11 => {
            let settings = config
                .keys
                .pkcs11
                .as_ref()
                .ok_or_else(|| KeyError::Misconfigured("[keys.pkcs11] is missing".into()))?;
            let pin = load_pin(settings.pin_file.as_deref())?;
            let mut hsm = Pkcs11Config::new(&settings.module, &settings.token_label, pin);
            hsm.pool_size = settings.sessions;
            Ok(Arc::new(Pkcs11Provider::connect(hsm).await?))
        }
        KeyProviderKind::Software => {
            let settings = software_settings(&config.keys)?;
            let unseal = match unseal {
                Some(u) => u,
                None => unseal_from_env()?,
            };
            Ok(Arc::new(SoftwareProvider::open(
                config.mode,
                &settings,
                &unseal,
                env.random.clone(),
            )?))
        }
    }
}

pub(crate) fn software_settings(keys: &KeysConfig) -> Result<std::path::PathBuf, KeyError> {
    keys.software
        .as_ref()
        .map(|s| s.kek_file.clone())
        .ok_or_else(|| KeyError::Misconfigured("[keys.software] is missing".into()))
}

/// The software KEK's passphrase or shares, from the environment.
pub fn unseal_from_env() -> Result<Unseal, KeyError> {
    if let Ok(passphrase) = std::env::var(KEK_PASSPHRASE_ENV) {
        return Ok(Unseal::Passphrase(SecretString::new(passphrase)));
    }
    if let Ok(shares) = std::env::var(KEK_SHARES_ENV) {
        return Ok(Unseal::Shares(
            shares
                .split(',')
                .map(|s| SecretString::new(s.trim().to_owned()))
                .collect(),
        ));
    }
    Err(KeyError::Misconfigured(format!(
        "the software KEK needs {KEK_PASSPHRASE_ENV} or {KEK_SHARES_ENV}"
    )))
}

pub fn rotation_policy(keys: &KeysConfig) -> RotationPolicy {
    RotationPolicy {
        max_age: chrono::Duration::days(i64::from(keys.max_data_key_age_days)),
        max_uses: keys.max_data_key_uses,
        ..RotationPolicy::default()
    }
}

/// Key events as audit events (PCI DSS 10.2.1: key operations).
pub struct KeyEventsToAudit {
    pub audit: Arc<dyn AuditSink>,
    pub clock: Arc<dyn Clock>,
}

#[async_trait]
impl KeyAuditSink for KeyEventsToAudit {
    async fn record(&self, event: KeyEvent) -> Result<(), KeyError> {
        let (resource, outcome) = match &event {
            KeyEvent::KekInitialized { kek, .. }
            | KeyEvent::KekCreated { kek, .. }
            | KeyEvent::KekActivated { kek }
            | KeyEvent::KekDestroyed { kek } => (kek.label(), Outcome::Success),
            KeyEvent::KekVerified { kek, matched } => (
                kek.label(),
                if *matched {
                    Outcome::Success
                } else {
                    Outcome::Failure
                },
            ),
            KeyEvent::DataKeyCreated { id, .. }
            | KeyEvent::DataKeyLoaded { id }
            | KeyEvent::DataKeyRewrapped { id, .. }
            | KeyEvent::DataKeyRetired { id } => (format!("data-key-{}", id.0), Outcome::Success),
            KeyEvent::Ff1KeyCreated { tenant, .. }
            | KeyEvent::Ff1KeyLoaded { tenant }
            | KeyEvent::Ff1KeyRewrapped { tenant, .. } => {
                (format!("ff1-key-{tenant}"), Outcome::Success)
            }
        };
        let mut audit_event =
            AuditEvent::system(event.kind(), self.clock.now(), outcome).with_resource(resource);
        if let KeyEvent::Ff1KeyCreated { tenant, .. }
        | KeyEvent::Ff1KeyLoaded { tenant }
        | KeyEvent::Ff1KeyRewrapped { tenant, .. } = &event
        {
            audit_event = audit_event.with_tenant(*tenant);
        }
        self.audit
            .record(audit_event)
            .await
            .map_err(|_| KeyError::Provider("the audit trail is unavailable".into()))
    }
}

/// Seals audit checkpoints with the provider's audit key (in the HSM).
pub struct ProviderCheckpointSealer {
    provider: Arc<dyn KeyProvider>,
    key_id: String,
}

impl ProviderCheckpointSealer {
    pub fn new(provider: Arc<dyn KeyProvider>) -> Self {
        let key_id = format!("{}/audit", provider.name());
        Self { provider, key_id }
    }
}

#[async_trait]
impl CheckpointSealer for ProviderCheckpointSealer {
    fn key_id(&self) -> &str {
        &self.key_id
    }

    async fn seal(&self, bytes: &[u8]) -> Result<[u8; 32], SealError> {
        self.provider
            .audit_mac(bytes)
            .await
            .map_err(|_| SealError::Unavailable)
    }
}

/// Initializes a token on the module's first free slot with the given
/// label and PINs (development and first-time set-up; a production HSM is
/// initialized by its own ceremony). Does nothing if the label exists.
pub fn init_token(
    module_path: &Path,
    label: &str,
    so_pin: &SecretString,
    user_pin: &SecretString,
) -> Result<(), KeyError> {
    let failed = |what: &str| KeyError::Provider(format!("token initialization: {what}"));
    let ctx = module(module_path)?;
    let has_label = |ctx: &cryptoki::context::Pkcs11| -> Result<bool, KeyError> {
        Ok(ctx
            .get_slots_with_token()
            .map_err(|_| failed("list slots"))?
            .into_iter()
            .any(|s| {
                ctx.get_token_info(s)
                    .map(|i| i.token_initialized() && i.label().trim_end() == label)
                    .unwrap_or(false)
            }))
    };
    if has_label(&ctx)? {
        return Ok(());
    }
    let slot = ctx
        .get_all_slots()
        .map_err(|_| failed("list slots"))?
        .into_iter()
        .find(|s| {
            ctx.get_token_info(*s)
                .map(|i| !i.token_initialized())
                .unwrap_or(false)
        })
        .ok_or_else(|| failed("no free slot"))?;
    let so = AuthPin::new(so_pin.expose_secret().into());
    ctx.init_token(slot, &so, label)
        .map_err(|_| failed("init token"))?;
    // An initialized token may move to a new slot id; find it by label.
    let slot = ctx
        .get_slots_with_token()
        .map_err(|_| failed("list slots"))?
        .into_iter()
        .find(|s| {
            ctx.get_token_info(*s)
                .map(|i| i.label().trim_end() == label)
                .unwrap_or(false)
        })
        .ok_or_else(|| failed("token not found after initialization"))?;
    let session = ctx
        .open_rw_session(slot)
        .map_err(|_| failed("open session"))?;
    session
        .login(UserType::So, Some(&so))
        .map_err(|_| failed("SO login"))?;
    session
        .init_pin(&AuthPin::new(user_pin.expose_secret().into()))
        .map_err(|_| failed("set user PIN"))?;
    let _ = session.logout();
    Ok(())
}
