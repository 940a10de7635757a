//! Idempotency for mutating requests: the first request with a key does the
//! work and stores its response; a replay gets the stored response; the same
//! key with a different body is refused.
//!
//! Responses are stored as they were sent, so a response that carries card
//! data (detokenize) or a credential shown once (a new API key, a session
//! token) must never go through here: those routes take no idempotency key.

use chrono::{DateTime, Utc};
use ring::digest;

use crate::auth::keys::{AuthKeys, HashPurpose};
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
#[derive(Clone, PartialEq, Eq)]
pub struct IdempotencyKey(String);

impl std::fmt::Debug for IdempotencyKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("IdempotencyKey")
            .field(&crate::redact::mask_pans(&self.0))
            .finish()
    }
}

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

    /// The form that is stored and looked up. A key holding something
    /// card-number-shaped (a client that keys by the card) becomes
    /// `vvh1_` and the hex of its keyed hash, so no card number reaches a
    /// database column; any other key is kept as sent. Refusing such keys
    /// instead would refuse one numeric key in ten (a 13-digit timestamp
    /// passes the Luhn check as often as a card number does).
    pub fn at_rest(self, keys: &dyn AuthKeys) -> Self {
        match crate::redact::mask_pans(&self.0) {
            std::borrow::Cow::Borrowed(_) => self,
            std::borrow::Cow::Owned(_) => Self(format!(
                "vvh1_{}",
                hex::encode(keys.keyed_hash(HashPurpose::IdempotencyKey, self.0.as_bytes()))
            )),
        }
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
    fn a_key_holding_a_card_number_is_kept_as_its_keyed_hash() {
        let keys = crate::auth::keys::PepperKeys::from_bytes(&[7; 32]).unwrap();
        let other = crate::auth::keys::PepperKeys::from_bytes(&[8; 32]).unwrap();
        let plain = IdempotencyKey::parse("a6f1c0b4-1").unwrap();
        assert_eq!(plain.clone().at_rest(&keys), plain);
        let carded = || IdempotencyKey::parse("tok-4242424242424242").unwrap();
        let stored = carded().at_rest(&keys);
        assert!(stored.as_str().starts_with("vvh1_"), "{stored:?}");
        assert!(!stored.as_str().contains("4242424242424242"));
        // The same key always finds its record; another key or pepper does not.
        assert_eq!(carded().at_rest(&keys), stored);
        let next = IdempotencyKey::parse("tok-4000056655665556").unwrap();
        assert_ne!(next.at_rest(&keys), stored);
        assert_ne!(carded().at_rest(&other), stored);
        // Still a key the store accepts.
        assert!(IdempotencyKey::parse(stored.as_str()).is_ok());
        assert!(!format!("{:?}", carded()).contains("4242424242424242"));
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
