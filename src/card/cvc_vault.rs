//! Holds a CVC in process memory until the first authorization takes it,
//! for ten minutes at most (PCI DSS 3.3.1). Values are sealed under an
//! AES-256-GCM key made at start-up and never stored, so a heap dump or
//! swapped page shows ciphertext; nothing here writes to disk, a
//! database, a log or a trace.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex, MutexGuard};

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use chrono::{DateTime, Duration, Utc};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use super::Cvc;
use crate::clock::{Clock, Random};

/// How long a CVC may wait for its authorization.
pub const CVC_TTL: Duration = Duration::minutes(10);

#[derive(Zeroize, ZeroizeOnDrop)]
struct Sealed {
    nonce: [u8; 12],
    ciphertext: Vec<u8>,
    #[zeroize(skip)]
    stored_at: DateTime<Utc>,
}

/// Why a CVC could not be held.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CvcVaultError {
    #[error("cvc: could not be sealed for the authorization")]
    Seal,
}

/// Short-lived CVCs keyed by `K` (a token or payment session id).
pub struct CvcVault<K> {
    cipher: Aes256Gcm,
    entries: Mutex<HashMap<K, Sealed>>,
    clock: Arc<dyn Clock>,
    random: Arc<dyn Random>,
}

impl<K: Eq + Hash> CvcVault<K> {
    /// A vault with a fresh key from `random`.
    pub fn new(clock: Arc<dyn Clock>, random: Arc<dyn Random>) -> Self {
        let mut key = Zeroizing::new([0u8; 32]);
        random.fill(key.as_mut());
        let cipher = Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(key.as_ref()));
        Self {
            cipher,
            entries: Mutex::new(HashMap::new()),
            clock,
            random,
        }
    }

    /// Holds `cvc` for `key`, replacing (and zeroizing) any earlier one.
    pub fn put(&self, key: K, cvc: Cvc) -> Result<(), CvcVaultError> {
        let mut nonce = [0u8; 12];
        self.random.fill(&mut nonce);
        let ciphertext = self
            .cipher
            .encrypt(Nonce::from_slice(&nonce), cvc.expose_digits().as_bytes())
            .map_err(|_| CvcVaultError::Seal)?;
        let sealed = Sealed {
            nonce,
            ciphertext,
            stored_at: self.clock.now(),
        };
        self.lock().insert(key, sealed);
        Ok(())
    }

    /// Removes and returns the CVC for `key` if it has not expired. A
    /// second call finds nothing: a CVC serves one authorization.
    pub fn take(&self, key: &K) -> Option<Cvc> {
        let sealed = self.lock().remove(key)?;
        if self.is_expired(&sealed, self.clock.now()) {
            return None;
        }
        let plain = Zeroizing::new(
            self.cipher
                .decrypt(
                    Nonce::from_slice(&sealed.nonce),
                    sealed.ciphertext.as_slice(),
                )
                .ok()?,
        );
        let text = std::str::from_utf8(&plain).ok()?;
        Some(Cvc::from_sealed(text))
    }

    /// Drops every expired entry; returns how many went. Run it on a timer.
    pub fn sweep(&self) -> usize {
        let now = self.clock.now();
        let mut entries = self.lock();
        let before = entries.len();
        entries.retain(|_, sealed| !self.is_expired(sealed, now));
        before - entries.len()
    }

    /// How many CVCs are held, expired or not.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn is_expired(&self, sealed: &Sealed, now: DateTime<Utc>) -> bool {
        now - sealed.stored_at >= CVC_TTL
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<K, Sealed>> {
        // A panic elsewhere while holding the lock leaves the map intact.
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl<K> std::fmt::Debug for CvcVault<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CvcVault([REDACTED])")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::card::CardBrand;
    use crate::clock::{FixedClock, OsRandom};

    fn vault() -> (CvcVault<&'static str>, FixedClock) {
        let clock = FixedClock::new(DateTime::from_timestamp(1_800_000_000, 0).unwrap());
        (
            CvcVault::new(Arc::new(clock.clone()), Arc::new(OsRandom)),
            clock,
        )
    }

    fn cvc(s: &str) -> Cvc {
        Cvc::parse(s, CardBrand::Visa).unwrap()
    }

    #[test]
    fn taken_once() {
        let (v, _) = vault();
        v.put("tok", cvc("123")).unwrap();
        assert_eq!(v.len(), 1);
        assert_eq!(v.take(&"tok").unwrap().expose_digits(), "123");
        assert!(v.take(&"tok").is_none());
        assert!(v.is_empty());
        assert!(v.take(&"other").is_none());
    }

    #[test]
    fn a_later_put_replaces() {
        let (v, _) = vault();
        v.put("tok", cvc("123")).unwrap();
        v.put("tok", cvc("456")).unwrap();
        assert_eq!(v.len(), 1);
        assert_eq!(v.take(&"tok").unwrap().expose_digits(), "456");
    }

    #[test]
    fn expires_after_ten_minutes() {
        let (v, clock) = vault();
        v.put("a", cvc("111")).unwrap();
        v.put("b", cvc("222")).unwrap();
        clock.advance(Duration::minutes(9) + Duration::seconds(59));
        assert_eq!(v.take(&"a").unwrap().expose_digits(), "111");
        v.put("c", cvc("333")).unwrap();
        clock.advance(Duration::seconds(1));
        // "b" is now exactly ten minutes old: gone, even without a sweep.
        assert!(v.take(&"b").is_none());
        v.put("b", cvc("222")).unwrap();
        clock.advance(Duration::minutes(10) - Duration::seconds(1));
        assert_eq!(v.sweep(), 1, "only c has reached ten minutes");
        assert_eq!(v.len(), 1);
        clock.advance(Duration::seconds(1));
        assert_eq!(v.sweep(), 1);
        assert!(v.is_empty());
        assert!(v.take(&"b").is_none());
    }

    #[test]
    fn held_sealed_not_in_clear() {
        let (v, _) = vault();
        v.put("tok", cvc("987")).unwrap();
        {
            let entries = v.lock();
            let sealed = &entries[&"tok"];
            // 3 bytes of ciphertext + a 16-byte tag, and not the digits.
            assert_eq!(sealed.ciphertext.len(), 3 + 16);
            assert!(!sealed.ciphertext.windows(3).any(|w| w == b"987"));
        }
        assert!(!format!("{v:?}").contains("987"));
    }

    #[test]
    fn sealed_entries_zeroize() {
        let mut sealed = Sealed {
            nonce: [7; 12],
            ciphertext: vec![1, 2, 3],
            stored_at: DateTime::from_timestamp(0, 0).unwrap(),
        };
        sealed.zeroize();
        assert_eq!(sealed.nonce, [0; 12]);
        assert!(sealed.ciphertext.is_empty());
        // And the same runs on drop: the derive guarantees it.
        fn zeroized_on_drop<T: ZeroizeOnDrop>() {}
        zeroized_on_drop::<Sealed>();
        zeroized_on_drop::<Cvc>();
    }

    #[test]
    fn vaults_do_not_share_keys() {
        let (a, _) = vault();
        let (b, _) = vault();
        a.put("tok", cvc("123")).unwrap();
        let moved = a.lock().remove(&"tok").unwrap();
        b.lock().insert("tok", moved);
        assert!(b.take(&"tok").is_none());
    }
}
