//! A tenant's webhook endpoints: create (the signing secret is shown once),
//! list, delete, and the delivery log.
//!
//! The secret is 32 bytes from the injected CSPRNG, written as
//! `whsec_<64 hex>`. It is stored only sealed with the auth layer's sealing
//! key (AES-256-GCM, the same as TOTP seeds), bound to tenant and endpoint
//! id, so a sealed secret copied to another row does not open. Why not the
//! data keys: re-encryption and retirement of data keys walk card records
//! only, and a secret sealed under a retired key would be lost.

use std::net::IpAddr;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::Serialize;
use url::{Host, Url};

use super::{DeliveryState, EventType};
use crate::audit::{AuditError, AuditEvent, AuditSink, Outcome};
use crate::auth::keys::AuthKeys;
use crate::clock::Environment;
use crate::config::Mode;
use crate::ids::{DeliveryId, TenantId, WebhookId};
use crate::secret::SecretString;
use crate::store::webhooks::{DeliveryRecord, WebhookRecord};
use crate::store::{Store, StoreError};
use crate::tokens::service::Caller;

/// Endpoints a tenant may have at once.
pub const MAX_WEBHOOKS_PER_TENANT: usize = 20;
const MAX_URL_LEN: usize = 2048;
/// Deliveries the log shows, newest first.
pub const DELIVERY_LOG_LIMIT: i64 = 100;

#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error("url: {0}")]
    Url(&'static str),
    /// Plain HTTP (or a private address) where only HTTPS to the internet is allowed.
    #[error("url: {0}")]
    InsecureUrl(&'static str),
    #[error("events: unknown event type")]
    UnknownEvent,
    #[error("events: name at least one event type, each once")]
    NoEvents,
    #[error("a tenant may have at most {MAX_WEBHOOKS_PER_TENANT} webhook endpoints")]
    TooMany,
    #[error("webhook: not found")]
    NotFound,
    #[error("the secret could not be sealed or opened")]
    Seal,
    #[error(transparent)]
    Store(StoreError),
    #[error(transparent)]
    Audit(#[from] AuditError),
}

impl From<StoreError> for WebhookError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => WebhookError::NotFound,
            other => WebhookError::Store(other),
        }
    }
}

/// An endpoint as callers see it: never its secret.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct WebhookView {
    #[schema(value_type = String, format = Uuid)]
    pub id: WebhookId,
    pub url: String,
    pub events: Vec<EventType>,
    pub created_at: DateTime<Utc>,
}

impl From<&WebhookRecord> for WebhookView {
    fn from(w: &WebhookRecord) -> Self {
        Self {
            id: w.id,
            url: w.url.clone(),
            events: w.events.clone(),
            created_at: w.created_at,
        }
    }
}

/// The answer to a creation: the only time the secret is shown.
pub struct CreatedWebhook {
    pub webhook: WebhookView,
    pub secret: SecretString,
}

/// One line of the delivery log.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DeliveryView {
    #[schema(value_type = String, format = Uuid)]
    pub id: DeliveryId,
    pub event_id: String,
    pub event_type: String,
    pub state: DeliveryState,
    pub attempts: i32,
    /// The HTTP status of the last answer, if the endpoint answered at all.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_status_code: Option<i32>,
    /// Why the last attempt failed: `status`, `timeout`, `connect`, `request`, `secret`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// When a pending delivery is tried next (or its current attempt runs out).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<&DeliveryRecord> for DeliveryView {
    fn from(d: &DeliveryRecord) -> Self {
        Self {
            id: d.id,
            event_id: d.event_id.clone(),
            event_type: d.event_type.clone(),
            state: d.state,
            attempts: d.attempts,
            last_status_code: d.last_status,
            last_error: d.last_error.clone(),
            next_attempt_at: (d.state == DeliveryState::Pending).then_some(d.next_attempt_at),
            created_at: d.created_at,
            updated_at: d.updated_at,
        }
    }
}

pub struct WebhookService {
    store: Arc<dyn Store>,
    keys: Arc<dyn AuthKeys>,
    audit: Arc<dyn AuditSink>,
    env: Environment,
    mode: Mode,
}

impl WebhookService {
    pub fn new(
        store: Arc<dyn Store>,
        keys: Arc<dyn AuthKeys>,
        audit: Arc<dyn AuditSink>,
        env: Environment,
        mode: Mode,
    ) -> Self {
        Self {
            store,
            keys,
            audit,
            env,
            mode,
        }
    }

    pub async fn create(
        &self,
        caller: &Caller,
        url: &str,
        events: &[String],
    ) -> Result<CreatedWebhook, WebhookError> {
        let url = check_url(url, self.mode)?;
        let events = check_events(events)?;
        if self.store.webhooks(caller.tenant).await?.len() >= MAX_WEBHOOKS_PER_TENANT {
            return Err(WebhookError::TooMany);
        }
        let id = WebhookId::generate();
        let mut raw = zeroize::Zeroizing::new([0u8; 32]);
        self.env.random.fill(raw.as_mut());
        let secret = SecretString::new(format!("whsec_{}", hex::encode(raw.as_ref())));
        let secret_sealed = self
            .keys
            .seal(
                self.env.random.as_ref(),
                &seal_context(caller.tenant, id),
                secret.expose_secret().as_bytes(),
            )
            .map_err(|_| WebhookError::Seal)?;
        let record = WebhookRecord {
            id,
            tenant: caller.tenant,
            url,
            events,
            secret_sealed,
            created_by: caller.actor_id.clone(),
            created_at: self.env.clock.now(),
        };
        self.store.insert_webhook(&record).await?;
        self.audit_change("webhook.create", caller, id).await?;
        Ok(CreatedWebhook {
            webhook: WebhookView::from(&record),
            secret,
        })
    }

    pub async fn list(&self, caller: &Caller) -> Result<Vec<WebhookView>, WebhookError> {
        let all = self.store.webhooks(caller.tenant).await?;
        Ok(all.iter().map(WebhookView::from).collect())
    }

    /// Removes the endpoint with its secret and its queued deliveries.
    pub async fn delete(&self, caller: &Caller, id: WebhookId) -> Result<(), WebhookError> {
        self.store.delete_webhook(caller.tenant, id).await?;
        self.audit_change("webhook.delete", caller, id).await?;
        Ok(())
    }

    pub async fn deliveries(
        &self,
        caller: &Caller,
        id: WebhookId,
    ) -> Result<Vec<DeliveryView>, WebhookError> {
        // Answers 404 for another tenant's endpoint before looking further.
        self.store.webhook(caller.tenant, id).await?;
        let log = self
            .store
            .webhook_deliveries(caller.tenant, id, DELIVERY_LOG_LIMIT)
            .await?;
        Ok(log.iter().map(DeliveryView::from).collect())
    }

    async fn audit_change(
        &self,
        event_type: &str,
        caller: &Caller,
        id: WebhookId,
    ) -> Result<(), AuditError> {
        self.audit
            .record(AuditEvent {
                event_type: event_type.to_owned(),
                at: self.env.clock.now(),
                actor_kind: caller.actor_kind,
                actor_id: caller.actor_id.clone(),
                tenant: Some(caller.tenant),
                outcome: Outcome::Success,
                origin: caller.origin.clone(),
                resource: Some(format!("webhook:{id}")),
                request_id: caller.request_id.clone(),
                reason: None,
            })
            .await
    }
}

/// What a sealed secret is bound to.
pub(crate) fn seal_context(tenant: TenantId, id: WebhookId) -> Vec<u8> {
    format!("voltvault webhook secret v1|{tenant}|{id}").into_bytes()
}

/// HTTPS to a public host. Plain HTTP only to loopback, and only in
/// development. In production, loopback, private and link-local address
/// literals and `localhost` are refused too: a tenant must not make the
/// service call into its own network. (A public name that resolves to a
/// private address is not caught here; egress rules are the guard for that.)
pub fn check_url(raw: &str, mode: Mode) -> Result<String, WebhookError> {
    if raw.len() > MAX_URL_LEN {
        return Err(WebhookError::Url("at most 2048 characters"));
    }
    let url = Url::parse(raw).map_err(|_| WebhookError::Url("not an absolute URL"))?;
    if !url.username().is_empty() || url.password().is_some() {
        // It would be stored and shown in clear.
        return Err(WebhookError::Url("must not carry credentials"));
    }
    if url.fragment().is_some() {
        return Err(WebhookError::Url("must not have a fragment"));
    }
    let host = url.host().ok_or(WebhookError::Url("needs a host"))?;
    let local = match &host {
        Host::Domain(d) => d.eq_ignore_ascii_case("localhost"),
        Host::Ipv4(ip) => is_internal(IpAddr::V4(*ip)),
        Host::Ipv6(ip) => is_internal(IpAddr::V6(*ip)),
    };
    let loopback = match &host {
        Host::Domain(d) => d.eq_ignore_ascii_case("localhost"),
        Host::Ipv4(ip) => ip.is_loopback(),
        Host::Ipv6(ip) => ip.is_loopback(),
    };
    match (url.scheme(), mode) {
        ("https", Mode::Production) if local => Err(WebhookError::InsecureUrl(
            "must not point at a loopback or private address",
        )),
        ("https", _) => Ok(url.to_string()),
        ("http", Mode::Development) if loopback => Ok(url.to_string()),
        ("http", _) => Err(WebhookError::InsecureUrl(
            "must use https (plain http only to loopback in development mode)",
        )),
        _ => Err(WebhookError::Url("must be an https URL")),
    }
}

fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
        }
        IpAddr::V6(v6) => {
            v6.is_loopback()
                || v6.is_unspecified()
                // fc00::/7 unique local, fe80::/10 link local
                || (v6.segments()[0] & 0xfe00) == 0xfc00
                || (v6.segments()[0] & 0xffc0) == 0xfe80
                || v6.to_ipv4_mapped().is_some_and(|v4| is_internal(IpAddr::V4(v4)))
        }
    }
}

fn check_events(raw: &[String]) -> Result<Vec<EventType>, WebhookError> {
    let mut events = Vec::new();
    for name in raw {
        let event = EventType::parse(name).ok_or(WebhookError::UnknownEvent)?;
        if events.contains(&event) {
            return Err(WebhookError::NoEvents);
        }
        events.push(event);
    }
    if events.is_empty() {
        return Err(WebhookError::NoEvents);
    }
    Ok(events)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_https_to_public_hosts_and_http_only_to_loopback_in_development() {
        let p = Mode::Production;
        let d = Mode::Development;
        assert!(check_url("https://hooks.example.com/voltvault", p).is_ok());
        assert!(check_url("https://hooks.example.com/voltvault", d).is_ok());
        for bad in [
            "http://hooks.example.com/x",
            "http://127.0.0.1:8080/x",
            "https://127.0.0.1/x",
            "https://localhost/x",
            "https://10.1.2.3/x",
            "https://192.168.0.1/x",
            "https://169.254.169.254/latest",
            "https://[::1]/x",
            "https://[fd00::1]/x",
        ] {
            assert!(
                matches!(check_url(bad, p), Err(WebhookError::InsecureUrl(_))),
                "{bad}"
            );
        }
        assert!(check_url("http://127.0.0.1:8080/x", d).is_ok());
        assert!(check_url("http://localhost:8080/x", d).is_ok());
        assert!(matches!(
            check_url("http://hooks.example.com/x", d),
            Err(WebhookError::InsecureUrl(_))
        ));
        for bad in [
            "ftp://hooks.example.com/x",
            "not a url",
            "https://user:pw@hooks.example.com/x",
            "https://hooks.example.com/x#frag",
        ] {
            assert!(
                matches!(check_url(bad, p), Err(WebhookError::Url(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn events_are_known_names_each_once() {
        let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            check_events(&names(&["session.completed", "payment.failed"])).unwrap(),
            vec![EventType::SessionCompleted, EventType::PaymentFailed]
        );
        assert!(matches!(
            check_events(&names(&["session.started"])),
            Err(WebhookError::UnknownEvent)
        ));
        assert!(matches!(check_events(&[]), Err(WebhookError::NoEvents)));
        assert!(matches!(
            check_events(&names(&["invoice.issued", "invoice.issued"])),
            Err(WebhookError::NoEvents)
        ));
    }
}
