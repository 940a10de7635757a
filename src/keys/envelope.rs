//! Record encryption: AES-256-GCM under a cached data key, a random 96-bit
//! nonce per record, and an AAD that binds the ciphertext to its row.
//!
//! AAD layout (format version 1), every variable field length-prefixed so
//! no two different tuples encode alike:
//!
//! ```text
//! "voltvault/record\0" | u32 len | tenant | u32 len | record id
//!                      | i64 data key id (BE) | u16 format version (BE)
//! ```

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, RwLock};

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};

use super::{DataKey, DataKeyId, KeyError, KeyProvider, WrappedDataKey, put_len_prefixed};
use crate::clock::Random;
use crate::secret::SecretBytes;

/// The only record format so far; stored beside each record and bound into its AAD.
pub const RECORD_FORMAT_V1: u16 = 1;

const AAD_DOMAIN: &[u8] = b"voltvault/record\0";

/// What a caller stores for one encrypted record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedRecord {
    pub data_key_id: DataKeyId,
    pub format_version: u16,
    pub nonce: [u8; 12],
    /// Ciphertext followed by the 16-byte GCM tag.
    pub ciphertext: Vec<u8>,
}

/// An unwrapped data key ready for AES-GCM. The cipher's key schedule is
/// zeroized on drop (aes-gcm `zeroize` feature).
pub struct DataKeyHandle {
    id: DataKeyId,
    cipher: Aes256Gcm,
}

impl DataKeyHandle {
    pub fn new(id: DataKeyId, key: &DataKey) -> Self {
        let cipher = Aes256Gcm::new(key.expose_secret().into());
        Self { id, cipher }
    }

    pub fn id(&self) -> DataKeyId {
        self.id
    }
}

impl fmt::Debug for DataKeyHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DataKeyHandle")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// Seals and opens records. Holds only the random source; keys come per call.
#[derive(Clone)]
pub struct RecordCipher {
    random: Arc<dyn Random>,
}

impl fmt::Debug for RecordCipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RecordCipher")
    }
}

impl RecordCipher {
    pub fn new(random: Arc<dyn Random>) -> Self {
        Self { random }
    }

    pub fn seal(
        &self,
        key: &DataKeyHandle,
        tenant: &str,
        record_id: &str,
        plaintext: &[u8],
    ) -> Result<SealedRecord, KeyError> {
        let mut nonce = [0u8; 12];
        self.random.fill(&mut nonce);
        let aad = record_aad(tenant, record_id, key.id, RECORD_FORMAT_V1);
        let ciphertext = key
            .cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad: &aad,
                },
            )
            .map_err(|_| KeyError::Provider("record encryption failed".to_owned()))?;
        Ok(SealedRecord {
            data_key_id: key.id,
            format_version: RECORD_FORMAT_V1,
            nonce,
            ciphertext,
        })
    }

    /// Opens a record read from the row of `tenant` / `record_id`. Any field
    /// that does not belong to this row fails with `IntegrityFailure`.
    pub fn open(
        &self,
        key: &DataKeyHandle,
        tenant: &str,
        record_id: &str,
        sealed: &SealedRecord,
    ) -> Result<SecretBytes, KeyError> {
        if sealed.format_version != RECORD_FORMAT_V1 {
            return Err(KeyError::IntegrityFailure);
        }
        // The key id is checked through the AAD, with the id the caller
        // believes the record uses: a row pointing at another key fails.
        let aad = record_aad(tenant, record_id, sealed.data_key_id, sealed.format_version);
        if sealed.data_key_id != key.id {
            return Err(KeyError::IntegrityFailure);
        }
        key.cipher
            .decrypt(
                Nonce::from_slice(&sealed.nonce),
                Payload {
                    msg: &sealed.ciphertext,
                    aad: &aad,
                },
            )
            .map(SecretBytes::new)
            .map_err(|_| KeyError::IntegrityFailure)
    }
}

fn record_aad(tenant: &str, record_id: &str, key: DataKeyId, version: u16) -> Vec<u8> {
    let mut aad = Vec::with_capacity(AAD_DOMAIN.len() + 8 + tenant.len() + record_id.len() + 10);
    aad.extend_from_slice(AAD_DOMAIN);
    put_len_prefixed(&mut aad, tenant.as_bytes());
    put_len_prefixed(&mut aad, record_id.as_bytes());
    aad.extend_from_slice(&key.0.to_be_bytes());
    aad.extend_from_slice(&version.to_be_bytes());
    aad
}

/// Unwrapped data keys by id, so each is unwrapped once per process and the
/// hot path makes no HSM call. Keys leave memory zeroized when evicted or
/// when the last user drops its `Arc`.
pub struct DataKeyCache {
    provider: Arc<dyn KeyProvider>,
    keys: RwLock<HashMap<DataKeyId, Arc<DataKeyHandle>>>,
}

impl fmt::Debug for DataKeyCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DataKeyCache")
            .field("provider", &self.provider.name())
            .field("cached", &self.len())
            .finish()
    }
}

impl DataKeyCache {
    pub fn new(provider: Arc<dyn KeyProvider>) -> Self {
        Self {
            provider,
            keys: RwLock::new(HashMap::new()),
        }
    }

    pub fn provider(&self) -> &Arc<dyn KeyProvider> {
        &self.provider
    }

    pub fn get(&self, id: DataKeyId) -> Option<Arc<DataKeyHandle>> {
        match self.keys.read() {
            Ok(map) => map.get(&id).cloned(),
            Err(poisoned) => poisoned.into_inner().get(&id).cloned(),
        }
    }

    /// The cached key, or unwraps `wrapped` through the provider and caches it.
    pub async fn get_or_unwrap(
        &self,
        id: DataKeyId,
        wrapped: &WrappedDataKey,
    ) -> Result<Arc<DataKeyHandle>, KeyError> {
        if let Some(hit) = self.get(id) {
            return Ok(hit);
        }
        let key = self.provider.unwrap_data_key(wrapped).await?;
        Ok(self.insert(id, &key))
    }

    /// Caches a key already in clear (e.g. just generated).
    pub fn insert(&self, id: DataKeyId, key: &DataKey) -> Arc<DataKeyHandle> {
        let handle = Arc::new(DataKeyHandle::new(id, key));
        let mut map = match self.keys.write() {
            Ok(map) => map,
            Err(poisoned) => poisoned.into_inner(),
        };
        map.entry(id).or_insert(handle).clone()
    }

    pub fn evict(&self, id: DataKeyId) {
        match self.keys.write() {
            Ok(mut map) => map.remove(&id),
            Err(poisoned) => poisoned.into_inner().remove(&id),
        };
    }

    pub fn clear(&self) {
        match self.keys.write() {
            Ok(mut map) => map.clear(),
            Err(poisoned) => poisoned.into_inner().clear(),
        }
    }

    pub fn len(&self) -> usize {
        match self.keys.read() {
            Ok(map) => map.len(),
            Err(poisoned) => poisoned.into_inner().len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::OsRandom;

    fn key(id: i64, byte: u8) -> DataKeyHandle {
        DataKeyHandle::new(DataKeyId(id), &DataKey::from_slice(&[byte; 32]).unwrap())
    }

    fn integrity_failure(r: Result<SecretBytes, KeyError>) -> bool {
        matches!(r, Err(KeyError::IntegrityFailure))
    }

    fn cipher() -> RecordCipher {
        RecordCipher::new(Arc::new(OsRandom))
    }

    #[test]
    fn seal_open_round_trip() {
        let k = key(1, 7);
        let sealed = cipher()
            .seal(&k, "acme", "tok_1", b"4111111111111111")
            .unwrap();
        assert_eq!(sealed.data_key_id, DataKeyId(1));
        assert_eq!(sealed.ciphertext.len(), 16 + 16);
        assert!(!sealed.ciphertext.windows(4).any(|w| w == b"4111"));
        let opened = cipher().open(&k, "acme", "tok_1", &sealed).unwrap();
        assert_eq!(opened.expose_secret(), b"4111111111111111");
    }

    #[test]
    fn nonces_are_fresh_per_record() {
        let k = key(1, 7);
        let a = cipher().seal(&k, "acme", "tok_1", b"same").unwrap();
        let b = cipher().seal(&k, "acme", "tok_1", b"same").unwrap();
        assert_ne!(a.nonce, b.nonce);
        assert_ne!(a.ciphertext, b.ciphertext);
    }

    #[test]
    fn every_swapped_field_fails_to_open() {
        let k1 = key(1, 7);
        let sealed = cipher()
            .seal(&k1, "acme", "tok_1", b"4111111111111111")
            .unwrap();
        let c = cipher();

        // Moved to another tenant or another record.
        assert!(integrity_failure(c.open(&k1, "other", "tok_1", &sealed)));
        assert!(integrity_failure(c.open(&k1, "acme", "tok_2", &sealed)));
        // Tenant/record boundary shifted: "acme"+"tok_1" vs "acmet"+"ok_1".
        assert!(integrity_failure(c.open(&k1, "acmet", "ok_1", &sealed)));
        // The row claims another data key id, even when that id maps to the same key bytes.
        let same_bytes_other_id = key(2, 7);
        let mut relabelled = sealed.clone();
        relabelled.data_key_id = DataKeyId(2);
        assert!(integrity_failure(c.open(
            &same_bytes_other_id,
            "acme",
            "tok_1",
            &relabelled
        )));
        // Another format version.
        let mut bumped = sealed.clone();
        bumped.format_version = 2;
        assert!(integrity_failure(c.open(&k1, "acme", "tok_1", &bumped)));
        // A flipped ciphertext bit and a foreign nonce.
        let mut flipped = sealed.clone();
        flipped.ciphertext[0] ^= 1;
        assert!(integrity_failure(c.open(&k1, "acme", "tok_1", &flipped)));
        let mut renonced = sealed.clone();
        renonced.nonce[11] ^= 1;
        assert!(integrity_failure(c.open(&k1, "acme", "tok_1", &renonced)));
        // And the untouched record still opens.
        assert!(c.open(&k1, "acme", "tok_1", &sealed).is_ok());
    }

    #[test]
    fn aad_encoding_is_unambiguous() {
        let a = record_aad("ab", "c", DataKeyId(1), 1);
        let b = record_aad("a", "bc", DataKeyId(1), 1);
        assert_ne!(a, b);
        assert_ne!(
            record_aad("a", "b", DataKeyId(1), 1),
            record_aad("a", "b", DataKeyId(1), 2)
        );
    }
}
