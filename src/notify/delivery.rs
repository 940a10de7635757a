//! The delivery worker every node runs. It claims due deliveries with a
//! lease (compare-and-set on the due time, so two nodes never send one
//! delivery at the same time), signs and POSTs each, and records the
//! outcome: 2xx is delivered; anything else is retried with exponential
//! backoff until `max_attempts`, then the delivery is dead.
//!
//! At least once: a node that dies after the endpoint accepted a delivery
//! but before recording it sends it again once the lease runs out.
//! Receivers deduplicate on `Voltvault-Delivery` (or the event id).

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use tokio_util::sync::CancellationToken;
use zeroize::Zeroizing;

use super::DeliveryState;
use super::signature::{DELIVERY_HEADER, EVENT_HEADER, SIGNATURE_HEADER, sign};
use super::webhooks::seal_context;
use crate::auth::keys::AuthKeys;
use crate::clock::Environment;
use crate::store::webhooks::{AttemptOutcome, ClaimedDelivery};
use crate::store::{Store, StoreError};

/// The Debian/Ubuntu CA bundle HTTPS endpoints are checked against.
pub const SYSTEM_CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";
/// Deliveries one node sends at once.
const CONCURRENCY: usize = 8;
/// Deliveries one node claims per round.
const BATCH: i64 = 32;

#[derive(Debug, Clone, Copy)]
pub struct DeliverySettings {
    pub interval: Duration,
    pub max_attempts: u32,
    /// The wait after the first failed attempt; it doubles after each.
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    /// One attempt, connection included.
    pub request_timeout: Duration,
    /// Plain HTTP to loopback endpoints (development mode only).
    pub allow_http: bool,
}

impl DeliverySettings {
    /// A claimed delivery is this node's for one attempt and some slack;
    /// afterwards another node may take it.
    fn lease(&self) -> chrono::Duration {
        to_chrono(self.request_timeout) + chrono::Duration::seconds(30)
    }

    /// When to try again after `attempts` failed ones.
    fn backoff(&self, attempts: u32) -> chrono::Duration {
        backoff(self.backoff_base, self.backoff_max, attempts)
    }
}

/// The wait after `attempts` failed attempts: `base`, doubled after each
/// further one, at most `max`. (The mail worker waits the same way.)
pub(crate) fn backoff(base: Duration, max: Duration, attempts: u32) -> chrono::Duration {
    let factor = 2u32.saturating_pow(attempts.saturating_sub(1));
    let wait = base.checked_mul(factor).unwrap_or(max).min(max);
    to_chrono(wait)
}

#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    #[error("the HTTP client could not be built")]
    Client,
}

pub struct Deliverer {
    store: Arc<dyn Store>,
    keys: Arc<dyn AuthKeys>,
    env: Environment,
    client: reqwest::Client,
    settings: DeliverySettings,
}

impl Deliverer {
    pub fn new(
        store: Arc<dyn Store>,
        keys: Arc<dyn AuthKeys>,
        env: Environment,
        settings: DeliverySettings,
    ) -> Result<Self, DeliveryError> {
        let mut builder = reqwest::Client::builder()
            .use_rustls_tls()
            .tls_built_in_root_certs(false)
            .https_only(!settings.allow_http)
            // A redirect would send the signed body somewhere not registered.
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .timeout(settings.request_timeout)
            .connect_timeout(settings.request_timeout)
            .user_agent(concat!("voltvault-webhooks/", env!("CARGO_PKG_VERSION")));
        match std::fs::read(SYSTEM_CA_BUNDLE)
            .ok()
            .and_then(|pem| reqwest::Certificate::from_pem_bundle(&pem).ok())
        {
            Some(roots) if !roots.is_empty() => {
                for root in roots {
                    builder = builder.add_root_certificate(root);
                }
            }
            // Fail closed: no roots, no HTTPS delivery (attempts fail and are logged).
            _ => tracing::warn!(
                bundle = SYSTEM_CA_BUNDLE,
                "no CA bundle: HTTPS webhook deliveries will fail"
            ),
        }
        let client = builder.build().map_err(|_| DeliveryError::Client)?;
        Ok(Self {
            store,
            keys,
            env,
            client,
            settings,
        })
    }

    /// One round: claims what is due and sends it. Returns how many were claimed.
    pub async fn run_once(&self) -> Result<usize, StoreError> {
        let now = whole_ms(self.env.clock.now());
        let lease_until = whole_ms(now + self.settings.lease());
        let claimed = self
            .store
            .claim_due_deliveries(now, lease_until, BATCH)
            .await?;
        let n = claimed.len();
        futures_util::stream::iter(claimed)
            .for_each_concurrent(CONCURRENCY, |c| async move {
                self.attempt(c, lease_until).await;
            })
            .await;
        Ok(n)
    }

    async fn attempt(&self, claimed: ClaimedDelivery, lease_until: DateTime<Utc>) {
        let d = &claimed.delivery;
        let (status, error) = match self.send(&claimed).await {
            Ok(status) if (200..300).contains(&status) => (Some(status), None),
            Ok(status) => (Some(status), Some("status")),
            Err(code) => (None, Some(code)),
        };
        let now = whole_ms(self.env.clock.now());
        let attempts = u32::try_from(d.attempts).unwrap_or(u32::MAX);
        let (state, next) = match error {
            None => (DeliveryState::Delivered, now),
            Some(_) if attempts >= self.settings.max_attempts => (DeliveryState::Dead, now),
            Some(_) => (
                DeliveryState::Pending,
                whole_ms(now + self.settings.backoff(attempts)),
            ),
        };
        let outcome = AttemptOutcome {
            state,
            last_status: status.map(i32::from),
            last_error: error,
            next_attempt_at: next,
            at: now,
        };
        match self
            .store
            .finish_delivery_attempt(d.id, lease_until, &outcome)
            .await
        {
            Ok(true) => {}
            Ok(false) => tracing::warn!(
                delivery = %d.id,
                "webhook delivery lease ran out before its outcome was recorded"
            ),
            Err(_) => tracing::warn!(
                delivery = %d.id,
                "webhook delivery outcome could not be recorded; it will be retried"
            ),
        }
        match state {
            DeliveryState::Delivered => {}
            DeliveryState::Pending => tracing::info!(
                delivery = %d.id,
                event.type = %d.event_type,
                attempts,
                status = status.unwrap_or(0),
                error = error.unwrap_or("-"),
                "webhook delivery failed; will retry"
            ),
            DeliveryState::Dead => tracing::warn!(
                delivery = %d.id,
                event.type = %d.event_type,
                attempts,
                "webhook delivery dead after its last attempt"
            ),
        }
    }

    /// POSTs the signed body; the HTTP status, or a fixed error code. The
    /// response body is never read: it is the receiver's, not ours to log.
    async fn send(&self, claimed: &ClaimedDelivery) -> Result<u16, &'static str> {
        let d = &claimed.delivery;
        let secret: Zeroizing<Vec<u8>> = self
            .keys
            .open(&seal_context(d.tenant, d.webhook), &claimed.secret_sealed)
            .map_err(|_| "secret")?;
        let timestamp = self.env.clock.now().timestamp();
        let signature = sign(&secret, timestamp, d.payload.as_bytes());
        let response = self
            .client
            .post(&claimed.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(SIGNATURE_HEADER, signature)
            .header(EVENT_HEADER, &d.event_type)
            .header(DELIVERY_HEADER, d.id.to_string())
            .body(d.payload.clone())
            .send()
            .await
            .map_err(|e| {
                if e.is_timeout() {
                    "timeout"
                } else if e.is_connect() {
                    "connect"
                } else {
                    "request"
                }
            })?;
        Ok(response.status().as_u16())
    }
}

/// Runs delivery rounds every `settings.interval` until shutdown.
pub async fn run(deliverer: Arc<Deliverer>, shutdown: CancellationToken) {
    let every = deliverer.settings.interval;
    loop {
        if deliverer.run_once().await.is_err() {
            tracing::warn!("webhook deliveries could not be claimed this round");
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(every) => {}
        }
    }
}

pub(crate) fn to_chrono(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::hours(24))
}

/// Timestamps compared for equality (the lease) keep whole milliseconds:
/// PostgreSQL stores microseconds, the clock gives nanoseconds.
pub(crate) fn whole_ms(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(t.timestamp_millis()).unwrap_or(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_the_base_up_to_the_cap() {
        let s = DeliverySettings {
            interval: Duration::from_secs(1),
            max_attempts: 8,
            backoff_base: Duration::from_secs(30),
            backoff_max: Duration::from_secs(3600),
            request_timeout: Duration::from_secs(10),
            allow_http: false,
        };
        assert_eq!(s.backoff(1), chrono::Duration::seconds(30));
        assert_eq!(s.backoff(2), chrono::Duration::seconds(60));
        assert_eq!(s.backoff(4), chrono::Duration::seconds(240));
        assert_eq!(s.backoff(10), chrono::Duration::seconds(3600));
        assert_eq!(s.backoff(200), chrono::Duration::seconds(3600));
    }
}
