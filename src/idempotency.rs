//! Idempotency for mutating requests: the first request with a key does the
//! work and stores its response; a replay gets the stored response; the same
//! key with a different body is refused.
//!
//! Responses are stored as they were sent, so a response that carries card
//! data (detokenize) or a credential shown once (a new API key, a session
//! token) must never go through here: those routes take no idempotency key.

use chrono::{DateTime, Utc};
use ring::digest;

use crate::ids::TenantId;

/// Who sent the request, as far as idempotency is concerned: keys are scoped
/// per tenant and principal, so two callers never see each other's responses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyScope {
    pub tenant: TenantId,
    pub principal: String,
    pub key: IdempotencyKey,
}

/// A client-chosen key: 1 to 255 visible ASCII characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey(String);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("Idempotency-Key must be 1 to 255 visible ASCII characters")]
pub struct InvalidIdempotencyKey;

impl IdempotencyKey {
    pub fn parse(raw: &str) -> Result<Self, InvalidIdempotencyKey> {
        if (1..=255).contains(&raw.len()) && raw.bytes().all(|b| b.is_ascii_graphic()) {
            Ok(Self(raw.to_owned()))
        } else {
            Err(InvalidIdempotencyKey)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// SHA-256 over the method, path and body, so a replay with a changed body is caught.
pub fn request_fingerprint(method: &str, path: &str, body: &[u8]) -> [u8; 32] {
    let mut ctx = digest::Context::new(&digest::SHA256);
    for part in [method.as_bytes(), path.as_bytes(), body] {
        ctx.update(&(part.len() as u64).to_be_bytes());
        ctx.update(part);
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredResponse {
    pub status: u16,
    pub body: Vec<u8>,
    pub completed_at: DateTime<Utc>,
}

/// What the store says when a request with an idempotency key begins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Begin {
    /// First time: do the work, then `complete` (or `abandon` if nothing changed).
    Fresh,
    /// Done before: answer with this.
    Replay(StoredResponse),
    /// The key was used with a different request.
    Mismatch,
    /// Another request with this key is still running.
    InProgress,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_bounded_and_visible() {
        assert!(IdempotencyKey::parse("a6f1c0b4-1").is_ok());
        assert!(IdempotencyKey::parse("").is_err());
        assert!(IdempotencyKey::parse("has space").is_err());
        assert!(IdempotencyKey::parse(&"x".repeat(256)).is_err());
    }

    #[test]
    fn the_fingerprint_covers_every_part() {
        let a = request_fingerprint("POST", "/v1/tokens", b"{}");
        assert_ne!(a, request_fingerprint("POST", "/v1/tokens", b"{ }"));
        assert_ne!(a, request_fingerprint("PUT", "/v1/tokens", b"{}"));
        assert_ne!(
            request_fingerprint("POST", "/v1/a", b"b"),
            request_fingerprint("POST", "/v1/ab", b"")
        );
    }
}
