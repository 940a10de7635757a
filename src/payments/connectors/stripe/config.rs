//! Where and how the Stripe connector may connect. HTTPS to an allow-listed
//! host in production; plain HTTP only to a loopback address, and only when
//! asked for by name (development and tests, against localstripe).

use std::time::Duration;

use url::{Host, Url};

use crate::payments::connectors::breaker::BreakerConfig;
use crate::secret::SecretString;

pub const STRIPE_API: &str = "https://api.stripe.com";

/// The Debian/Ubuntu CA bundle, used when no roots are configured.
pub const SYSTEM_CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

#[derive(Debug, Clone)]
pub struct StripeConfig {
    pub base_url: String,
    /// A secret (`sk_`) or restricted (`rk_`) key.
    pub api_key: SecretString,
    /// Hosts an HTTPS base URL may name.
    pub allowed_hosts: Vec<String>,
    /// Permits `http://` to 127.0.0.1, ::1 or localhost. Never in production.
    pub allow_loopback_http: bool,
    /// PEM trust roots for HTTPS; `None` reads [`SYSTEM_CA_BUNDLE`].
    pub trust_roots_pem: Option<Vec<u8>>,
    /// The whole of one HTTP attempt, connection included.
    pub request_timeout: Duration,
    pub connect_timeout: Duration,
    /// Attempts per call, the first included. Only idempotent calls retry.
    pub max_attempts: u32,
    /// The wait before the first retry; it doubles for each further one.
    pub backoff: Duration,
    pub breaker: BreakerConfig,
    /// Ask for incremental authorization where the card network offers it.
    pub incremental_authorization: bool,
    /// Completed outcomes kept for replays by idempotency key.
    pub replay_capacity: usize,
}

impl StripeConfig {
    /// Stripe's production API.
    pub fn production(api_key: SecretString) -> Self {
        Self {
            base_url: STRIPE_API.to_owned(),
            api_key,
            allowed_hosts: vec!["api.stripe.com".to_owned()],
            allow_loopback_http: false,
            trust_roots_pem: None,
            request_timeout: Duration::from_secs(20),
            connect_timeout: Duration::from_secs(5),
            max_attempts: 3,
            backoff: Duration::from_millis(250),
            breaker: BreakerConfig::default(),
            incremental_authorization: true,
            replay_capacity: 100_000,
        }
    }

    /// A Stripe-compatible server on this machine (localstripe).
    pub fn loopback(base_url: impl Into<String>, api_key: SecretString) -> Self {
        Self {
            base_url: base_url.into(),
            allow_loopback_http: true,
            ..Self::production(api_key)
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StripeConfigError {
    #[error("stripe.base_url: not a URL")]
    BaseUrl,
    #[error("stripe.base_url: must be https (http only to a loopback address in development)")]
    NotHttps,
    #[error("stripe.base_url: host is not in stripe.allowed_hosts")]
    HostNotAllowed,
    #[error("stripe.base_url: must not carry credentials, a query or a fragment")]
    UrlExtras,
    #[error("stripe.api_key: must be a secret (sk_) or restricted (rk_) key")]
    ApiKey,
    #[error("stripe.trust_roots: no usable PEM certificates")]
    TrustRoots,
    #[error("stripe.max_attempts: must be at least 1")]
    MaxAttempts,
    #[error("stripe: HTTP client could not be built")]
    Client,
}

/// Checks the base URL against the allow-list and returns it without a
/// trailing slash, plus whether it is plain HTTP to loopback.
pub(super) fn checked_base_url(config: &StripeConfig) -> Result<(String, bool), StripeConfigError> {
    let url = Url::parse(&config.base_url).map_err(|_| StripeConfigError::BaseUrl)?;
    if !url.username().is_empty()
        || url.password().is_some()
        || url.query().is_some()
        || url.fragment().is_some()
    {
        return Err(StripeConfigError::UrlExtras);
    }
    let loopback = match url.host() {
        Some(Host::Ipv4(ip)) => ip.is_loopback(),
        Some(Host::Ipv6(ip)) => ip.is_loopback(),
        Some(Host::Domain(d)) => d == "localhost",
        None => return Err(StripeConfigError::BaseUrl),
    };
    match url.scheme() {
        "https" => {
            let host = url.host_str().unwrap_or_default();
            if !config.allowed_hosts.iter().any(|h| h == host) {
                return Err(StripeConfigError::HostNotAllowed);
            }
        }
        "http" if loopback && config.allow_loopback_http => {}
        _ => return Err(StripeConfigError::NotHttps),
    }
    let key = config.api_key.expose_secret();
    if !(key.starts_with("sk_") || key.starts_with("rk_")) || key.len() < 8 {
        return Err(StripeConfigError::ApiKey);
    }
    if config.max_attempts == 0 {
        return Err(StripeConfigError::MaxAttempts);
    }
    let plain_http = url.scheme() == "http";
    Ok((url.as_str().trim_end_matches('/').to_owned(), plain_http))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> SecretString {
        SecretString::new("sk_test_abcdefgh".into())
    }

    #[test]
    fn production_needs_https_to_an_allowed_host() {
        let c = StripeConfig::production(key());
        assert_eq!(
            checked_base_url(&c).unwrap(),
            ("https://api.stripe.com".to_owned(), false)
        );
        for (url, err) in [
            ("http://api.stripe.com", StripeConfigError::NotHttps),
            ("http://127.0.0.1:8420", StripeConfigError::NotHttps),
            (
                "https://stripe.example.com",
                StripeConfigError::HostNotAllowed,
            ),
            ("https://u:p@api.stripe.com", StripeConfigError::UrlExtras),
            ("https://api.stripe.com/?x=1", StripeConfigError::UrlExtras),
            ("not a url", StripeConfigError::BaseUrl),
        ] {
            let c = StripeConfig {
                base_url: url.into(),
                ..StripeConfig::production(key())
            };
            assert_eq!(checked_base_url(&c), Err(err), "{url}");
        }
    }

    #[test]
    fn plain_http_only_to_loopback_when_allowed() {
        for url in [
            "http://127.0.0.1:8420/",
            "http://localhost:8420",
            "http://[::1]:1",
        ] {
            let c = StripeConfig::loopback(url, key());
            assert!(checked_base_url(&c).unwrap().1, "{url}");
        }
        let c = StripeConfig::loopback("http://10.0.0.1:8420", key());
        assert_eq!(checked_base_url(&c), Err(StripeConfigError::NotHttps));
        let c = StripeConfig::loopback("http://127.0.0.1:1", SecretString::new("pk_x".into()));
        assert_eq!(checked_base_url(&c), Err(StripeConfigError::ApiKey));
    }

    #[test]
    fn debug_hides_the_key() {
        let c = StripeConfig::production(key());
        assert!(!format!("{c:?}").contains("sk_test_abcdefgh"));
    }
}
