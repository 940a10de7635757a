//! The card for one acquirer call. It is opened inside [`super::Connector`]
//! and lives no longer than the call: `Pan` and `Cvc` zeroize on drop.

use async_trait::async_trait;
use tokio::sync::Mutex;

use super::AcquirerError;
use crate::card::{Cvc, Expiry, Pan};
use crate::ids::TenantId;

/// Borrowed card data for a single authorization. `Debug` shows the masked
/// number and hides the CVC (both types see to that).
#[derive(Debug, Clone, Copy)]
pub struct CardRef<'a> {
    pub pan: &'a Pan,
    pub expiry: Expiry,
    pub cvc: Option<&'a Cvc>,
}

/// A card opened for a charge: owned, zeroized when dropped.
#[derive(Debug)]
pub struct OpenedCard {
    pan: Pan,
    expiry: Expiry,
    cvc: Option<Cvc>,
}

impl OpenedCard {
    pub fn new(pan: Pan, expiry: Expiry, cvc: Option<Cvc>) -> Self {
        Self { pan, expiry, cvc }
    }

    pub fn as_ref(&self) -> CardRef<'_> {
        CardRef {
            pan: &self.pan,
            expiry: self.expiry,
            cvc: self.cvc.as_ref(),
        }
    }
}

/// Where the card for a charge comes from: the vault (decrypting a token)
/// or card data presented with the request. Opening happens inside the
/// connector call so that the clear PAN exists nowhere else.
#[async_trait]
pub trait CardSource: Send + Sync {
    /// How the audit trail names the card: a token or session id, never card data.
    fn audit_resource(&self) -> String;

    /// The tenant whose card this is, for the audit trail.
    fn audit_tenant(&self) -> Option<TenantId>;

    /// What kind of opening this is, for the audit event type
    /// (`card.decrypt` for the vault, `card.use` for presented data).
    fn audit_event_type(&self) -> &'static str;

    async fn open(&self) -> Result<OpenedCard, AcquirerError>;
}

/// Card data sent with the request (a card read at the charger). It can be
/// opened once: the CVC is good for the first authorization only.
#[derive(Debug)]
pub struct PresentedCard {
    resource: String,
    tenant: Option<TenantId>,
    card: Mutex<Option<OpenedCard>>,
}

impl PresentedCard {
    /// `resource` names the card in the audit trail (the session id).
    pub fn new(resource: impl Into<String>, card: OpenedCard) -> Self {
        Self {
            resource: resource.into(),
            tenant: None,
            card: Mutex::new(Some(card)),
        }
    }

    pub fn with_tenant(mut self, tenant: TenantId) -> Self {
        self.tenant = Some(tenant);
        self
    }
}

#[async_trait]
impl CardSource for PresentedCard {
    fn audit_resource(&self) -> String {
        self.resource.clone()
    }

    fn audit_tenant(&self) -> Option<TenantId> {
        self.tenant
    }

    fn audit_event_type(&self) -> &'static str {
        "card.use"
    }

    async fn open(&self) -> Result<OpenedCard, AcquirerError> {
        self.card
            .lock()
            .await
            .take()
            .ok_or(AcquirerError::CardUnavailable)
    }
}
