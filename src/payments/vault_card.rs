//! A vaulted card as the source of an acquirer call: the token is opened
//! inside the connector call, and a CVC held since tokenization goes with
//! the first authorization only.

use std::sync::Arc;

use async_trait::async_trait;

use super::connectors::{AcquirerError, CardSource, OpenedCard};
use crate::ids::TenantId;
use crate::tokens::TokenCvcs;
use crate::tokens::service::TokenService;

pub struct VaultCard {
    pub tokens: Arc<TokenService>,
    pub cvcs: Arc<TokenCvcs>,
    pub tenant: TenantId,
    pub token: String,
}

#[async_trait]
impl CardSource for VaultCard {
    fn audit_resource(&self) -> String {
        // The token names the card; the session is in the event's reason.
        self.token.clone()
    }

    fn audit_tenant(&self) -> Option<TenantId> {
        Some(self.tenant)
    }

    fn audit_event_type(&self) -> &'static str {
        "card.decrypt"
    }

    async fn open(&self) -> Result<OpenedCard, AcquirerError> {
        let (pan, expiry) = self
            .tokens
            .open_for_charge(self.tenant, &self.token)
            .await
            .map_err(|_| AcquirerError::CardUnavailable)?;
        let cvc = self.cvcs.take(&(self.tenant, self.token.clone()));
        Ok(OpenedCard::new(pan, expiry, cvc))
    }
}
