//! The server-side secret behind credentials: keyed hashes of API keys,
//! session tokens and login challenges, and sealing of TOTP secrets. It sits
//! behind [`AuthKeys`] so that it can move into the HSM later.

use std::path::Path;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use ring::hmac;
use zeroize::Zeroizing;

use crate::clock::Random;
use crate::secret::{SecretFileError, SecretString};

/// Environment variable holding the pepper as hex (at least 32 bytes).
pub const PEPPER_ENV: &str = "VOLTVAULT_AUTH_PEPPER";

/// What a keyed hash is for; each purpose gets its own derived key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashPurpose {
    ApiKey,
    Session,
    Challenge,
    /// An `Idempotency-Key` that holds something card-number-shaped.
    IdempotencyKey,
}

impl HashPurpose {
    fn label(self) -> &'static [u8] {
        match self {
            Self::ApiKey => b"voltvault auth v1 api-key",
            Self::Session => b"voltvault auth v1 session",
            Self::Challenge => b"voltvault auth v1 login-challenge",
            Self::IdempotencyKey => b"voltvault auth v1 idempotency-key",
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuthKeyError {
    #[error("auth pepper: {0}")]
    Invalid(&'static str),
    #[error("auth pepper: {0}")]
    File(#[from] SecretFileError),
    #[error("sealed secret does not open")]
    Open,
    #[error("secret cannot be sealed")]
    Seal,
}

/// Keyed hashing and sealing with a server-side key.
pub trait AuthKeys: Send + Sync {
    /// HMAC-SHA256 of `data` under the key for `purpose`.
    fn keyed_hash(&self, purpose: HashPurpose, data: &[u8]) -> [u8; 32];
    /// Encrypts a small secret (a TOTP seed) bound to `context`.
    fn seal(
        &self,
        random: &dyn Random,
        context: &[u8],
        plaintext: &[u8],
    ) -> Result<Vec<u8>, AuthKeyError>;
    fn open(&self, context: &[u8], sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, AuthKeyError>;
}

/// [`AuthKeys`] from a pepper held in memory (read from a 0600 file or the
/// environment). Subkeys are derived per purpose with HMAC.
pub struct PepperKeys {
    hash_keys: [hmac::Key; 4],
    seal_key: Zeroizing<[u8; 32]>,
}

impl std::fmt::Debug for PepperKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PepperKeys([REDACTED])")
    }
}

impl PepperKeys {
    pub fn from_bytes(pepper: &[u8]) -> Result<Self, AuthKeyError> {
        if pepper.len() < 32 {
            return Err(AuthKeyError::Invalid("must be at least 32 bytes"));
        }
        let root = hmac::Key::new(hmac::HMAC_SHA256, pepper);
        let derive = |label: &[u8]| {
            let tag = hmac::sign(&root, label);
            let mut out = Zeroizing::new([0u8; 32]);
            out.copy_from_slice(tag.as_ref());
            out
        };
        let key_for =
            |p: HashPurpose| hmac::Key::new(hmac::HMAC_SHA256, derive(p.label()).as_ref());
        Ok(Self {
            hash_keys: [
                key_for(HashPurpose::ApiKey),
                key_for(HashPurpose::Session),
                key_for(HashPurpose::Challenge),
                key_for(HashPurpose::IdempotencyKey),
            ],
            seal_key: derive(b"voltvault auth v1 totp-seal"),
        })
    }

    /// Parses a pepper written as hex.
    pub fn from_hex(text: &SecretString) -> Result<Self, AuthKeyError> {
        let bytes = Zeroizing::new(
            hex::decode(text.expose_secret().trim())
                .map_err(|_| AuthKeyError::Invalid("must be hex"))?,
        );
        Self::from_bytes(&bytes)
    }

    /// Reads the pepper from `VOLTVAULT_AUTH_PEPPER`, else from `file`.
    pub fn load(file: Option<&Path>) -> Result<Self, AuthKeyError> {
        if let Ok(value) = std::env::var(PEPPER_ENV) {
            return Self::from_hex(&SecretString::new(value));
        }
        match file {
            Some(path) => Self::from_hex(&SecretString::from_file(path)?),
            None => Err(AuthKeyError::Invalid(
                "not configured: set auth.pepper_file or VOLTVAULT_AUTH_PEPPER",
            )),
        }
    }

    /// A new pepper as hex, for `voltvault dev` and first installs.
    pub fn generate_hex(random: &dyn Random) -> SecretString {
        let mut bytes = Zeroizing::new([0u8; 32]);
        random.fill(bytes.as_mut());
        SecretString::new(hex::encode(bytes.as_ref()))
    }

    fn cipher(&self) -> Aes256Gcm {
        Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(self.seal_key.as_ref()))
    }
}

impl AuthKeys for PepperKeys {
    fn keyed_hash(&self, purpose: HashPurpose, data: &[u8]) -> [u8; 32] {
        let key = match purpose {
            HashPurpose::ApiKey => &self.hash_keys[0],
            HashPurpose::Session => &self.hash_keys[1],
            HashPurpose::Challenge => &self.hash_keys[2],
            HashPurpose::IdempotencyKey => &self.hash_keys[3],
        };
        let tag = hmac::sign(key, data);
        let mut out = [0u8; 32];
        out.copy_from_slice(tag.as_ref());
        out
    }

    fn seal(
        &self,
        random: &dyn Random,
        context: &[u8],
        plaintext: &[u8],
    ) -> Result<Vec<u8>, AuthKeyError> {
        let mut nonce = [0u8; 12];
        random.fill(&mut nonce);
        let sealed = self
            .cipher()
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad: context,
                },
            )
            .map_err(|_| AuthKeyError::Seal)?;
        let mut out = Vec::with_capacity(12 + sealed.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    fn open(&self, context: &[u8], sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, AuthKeyError> {
        if sealed.len() < 12 + 16 {
            return Err(AuthKeyError::Open);
        }
        let (nonce, body) = sealed.split_at(12);
        self.cipher()
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: body,
                    aad: context,
                },
            )
            .map(Zeroizing::new)
            .map_err(|_| AuthKeyError::Open)
    }
}

/// Constant-time equality of two digests.
pub fn digests_equal(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::OsRandom;

    #[test]
    fn purposes_get_different_hashes_and_seals_bind_their_context() {
        let keys = PepperKeys::from_bytes(&[7u8; 32]).unwrap();
        let a = keys.keyed_hash(HashPurpose::ApiKey, b"x");
        assert_ne!(a, keys.keyed_hash(HashPurpose::Session, b"x"));
        assert!(digests_equal(
            &a,
            &keys.keyed_hash(HashPurpose::ApiKey, b"x")
        ));
        let sealed = keys.seal(&OsRandom, b"user-1", b"seed").unwrap();
        assert_eq!(keys.open(b"user-1", &sealed).unwrap().as_slice(), b"seed");
        assert_eq!(keys.open(b"user-2", &sealed), Err(AuthKeyError::Open));
        assert!(PepperKeys::from_bytes(&[1u8; 16]).is_err());
        assert!(!format!("{keys:?}").contains('7'));
    }
}
