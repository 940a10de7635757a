//! One Stripe API call: timeouts, the circuit breaker, and retries with
//! exponential backoff for calls that are safe to repeat (GETs, and POSTs
//! carrying an `Idempotency-Key`, which Stripe answers from its record) and
//! only after timeouts, refused connections, 409 (the same key in flight),
//! 429 and 5xx. Request bodies may hold card data: they are zeroized here
//! and never logged; the HTTP stack's own copy cannot be reached.

use std::time::Duration;

use reqwest::{Client, Method, StatusCode};
use zeroize::Zeroizing;

use crate::payments::connectors::AcquirerError;
use crate::payments::connectors::breaker::CircuitBreaker;
use crate::secret::SecretString;

/// Pinned so that Stripe's object shapes do not change under us.
pub(super) const STRIPE_VERSION: &str = "2024-06-20";

pub(super) struct Call {
    pub op: &'static str,
    pub method: Method,
    pub path: String,
    pub body: Zeroizing<String>,
    pub idempotency_key: Option<String>,
}

impl Call {
    pub fn post(op: &'static str, path: String, body: Zeroizing<String>, key: String) -> Self {
        Self {
            op,
            method: Method::POST,
            path,
            body,
            idempotency_key: Some(key),
        }
    }

    /// A read: no body, no key, and safe to repeat.
    pub fn get(op: &'static str, path: String) -> Self {
        Self {
            op,
            method: Method::GET,
            path,
            body: Zeroizing::new(String::new()),
            idempotency_key: None,
        }
    }

    /// Repeating the call cannot do anything twice.
    pub fn idempotent(&self) -> bool {
        self.method == Method::GET || self.idempotency_key.is_some()
    }
}

/// An answer from Stripe that is not a transport failure.
pub(super) struct Answer {
    pub status: StatusCode,
    pub body: Vec<u8>,
}

pub(super) struct Transport {
    pub client: Client,
    pub base_url: String,
    pub api_key: SecretString,
    pub max_attempts: u32,
    pub backoff: Duration,
    pub breaker: CircuitBreaker,
}

/// A failed attempt: what it means, whether to try again, and whether the
/// breaker counts it (Stripe answering "busy" shows it is up).
struct Failure {
    error: AcquirerError,
    retry: bool,
    breaker_failure: bool,
}

impl Transport {
    pub(super) async fn send(&self, call: &Call) -> Result<Answer, AcquirerError> {
        let attempts = if call.idempotent() {
            self.max_attempts.max(1)
        } else {
            1
        };
        let mut last = AcquirerError::Unavailable;
        for attempt in 1..=attempts {
            if attempt > 1 {
                let factor = 1u32 << (attempt - 2).min(10);
                tokio::time::sleep(self.backoff.saturating_mul(factor)).await;
            }
            let permit = self
                .breaker
                .acquire()
                .map_err(|_| AcquirerError::Unavailable)?;
            let failure = match self.attempt(call).await {
                Ok(answer) => {
                    permit.success();
                    return Ok(answer);
                }
                Err(failure) => failure,
            };
            if failure.breaker_failure {
                permit.failure();
            } else {
                permit.success();
            }
            let Failure { error, retry, .. } = failure;
            tracing::warn!(
                acquirer = "stripe",
                op = call.op,
                attempt,
                error = error.code(),
                "acquirer call failed"
            );
            last = error;
            if !retry {
                break;
            }
        }
        Err(last)
    }

    async fn attempt(&self, call: &Call) -> Result<Answer, Failure> {
        let mut request = self
            .client
            .request(
                call.method.clone(),
                format!("{}{}", self.base_url, call.path),
            )
            .bearer_auth(self.api_key.expose_secret())
            .header("Stripe-Version", STRIPE_VERSION);
        if let Some(key) = &call.idempotency_key {
            request = request.header("Idempotency-Key", key);
        }
        if call.method == Method::POST {
            request = request
                .header(
                    reqwest::header::CONTENT_TYPE,
                    "application/x-www-form-urlencoded",
                )
                .body(call.body.as_str().to_owned());
        }
        let response = request.send().await.map_err(transport_error)?;
        let status = response.status();
        let should_retry = response
            .headers()
            .get("Stripe-Should-Retry")
            .and_then(|v| v.to_str().ok())
            .map(|v| v == "true");
        let body = response.bytes().await.map_err(transport_error)?.to_vec();
        tracing::debug!(
            acquirer = "stripe",
            op = call.op,
            status = status.as_u16(),
            "acquirer answered"
        );
        let busy = status == StatusCode::CONFLICT || status == StatusCode::TOO_MANY_REQUESTS;
        if status.is_server_error() || busy {
            return Err(Failure {
                error: AcquirerError::Unavailable,
                retry: should_retry != Some(false),
                breaker_failure: !busy,
            });
        }
        Ok(Answer { status, body })
    }
}

/// reqwest's errors name the URL, which is harmless, but only their kind is kept.
fn transport_error(e: reqwest::Error) -> Failure {
    Failure {
        error: if e.is_timeout() {
            AcquirerError::Timeout
        } else {
            AcquirerError::Unavailable
        },
        retry: true,
        breaker_failure: true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_keyed_posts_and_gets_are_idempotent() {
        let keyed = Call::post(
            "x",
            "/v1/x".into(),
            Zeroizing::new(String::new()),
            "k".into(),
        );
        assert!(keyed.idempotent());
        let unkeyed = Call {
            idempotency_key: None,
            ..Call::post(
                "x",
                "/v1/x".into(),
                Zeroizing::new(String::new()),
                "k".into(),
            )
        };
        assert!(!unkeyed.idempotent());
        let get = Call {
            method: Method::GET,
            ..unkeyed
        };
        assert!(get.idempotent());
        assert!(Call::get("x", "/v1/x".into()).idempotent());
    }
}
