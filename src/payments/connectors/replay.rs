//! Final outcomes by idempotency key, so that a replay of a call returns
//! what the first call got without reaching the acquirer again, and the
//! same key for a different request is refused; calls sharing a key take
//! turns, so a concurrent replay waits for the first outcome instead of
//! racing it to the acquirer. Bounded in size and age;
//! the payment layer's stored intents cover restarts, and acquirers that
//! honour idempotency keys cover the rest.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};

use chrono::{DateTime, Duration, Utc};
use ring::digest;

use super::{AcquirerError, InvalidReason};
use crate::clock::Clock;

/// SHA-256 over the operation and the request fields that define it (never
/// card data), length-prefixed so fields cannot run into each other.
pub(crate) fn fingerprint(parts: &[&[u8]]) -> [u8; 32] {
    let mut ctx = digest::Context::new(&digest::SHA256);
    for part in parts {
        ctx.update(&(part.len() as u64).to_be_bytes());
        ctx.update(part);
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

struct Entry<T> {
    fingerprint: [u8; 32],
    at: DateTime<Utc>,
    outcome: Result<T, AcquirerError>,
}

struct Inner<T> {
    entries: HashMap<String, Entry<T>>,
    order: VecDeque<String>,
}

pub(crate) struct ReplayCache<T> {
    inner: Mutex<Inner<T>>,
    turns: KeyTurns,
    capacity: usize,
    ttl: Duration,
    clock: Arc<dyn Clock>,
}

impl<T: Clone> ReplayCache<T> {
    pub(crate) fn new(capacity: usize, ttl: Duration, clock: Arc<dyn Clock>) -> Self {
        Self {
            inner: Mutex::new(Inner {
                entries: HashMap::new(),
                order: VecDeque::new(),
            }),
            turns: KeyTurns::default(),
            capacity,
            ttl,
            clock,
        }
    }

    /// Runs `call` unless this key already has a final outcome, one call
    /// per key at a time.
    pub(crate) async fn run(
        &self,
        key: &str,
        fingerprint: [u8; 32],
        call: impl Future<Output = Result<T, AcquirerError>>,
    ) -> Result<T, AcquirerError> {
        super::check_idempotency_key(key)?;
        let _turn = self.turns.take(key).await;
        if let Some(stored) = self.lookup(key, &fingerprint)? {
            return stored;
        }
        let outcome = call.await;
        self.store(key, fingerprint, &outcome);
        outcome
    }

    /// The stored outcome for this key, `None` if there is none, or an
    /// error if the key was used for a different request.
    pub(crate) fn lookup(
        &self,
        key: &str,
        fingerprint: &[u8; 32],
    ) -> Result<Option<Result<T, AcquirerError>>, AcquirerError> {
        let now = self.clock.now();
        let mut inner = self.lock();
        self.expire(&mut inner, now);
        match inner.entries.get(key) {
            None => Ok(None),
            Some(e) if &e.fingerprint == fingerprint => Ok(Some(e.outcome.clone())),
            Some(_) => Err(AcquirerError::Invalid(InvalidReason::IdempotencyKeyReused)),
        }
    }

    /// Stores an outcome if it is final. Timeouts and unavailability are
    /// not: the caller replays with the same key to learn what happened.
    pub(crate) fn store(
        &self,
        key: &str,
        fingerprint: [u8; 32],
        outcome: &Result<T, AcquirerError>,
    ) {
        if matches!(
            outcome,
            Err(AcquirerError::Timeout | AcquirerError::Unavailable)
        ) {
            return;
        }
        let now = self.clock.now();
        let mut inner = self.lock();
        self.expire(&mut inner, now);
        if inner.entries.contains_key(key) {
            return;
        }
        while inner.order.len() >= self.capacity {
            match inner.order.pop_front() {
                Some(old) => {
                    inner.entries.remove(&old);
                }
                None => break,
            }
        }
        inner.order.push_back(key.to_owned());
        inner.entries.insert(
            key.to_owned(),
            Entry {
                fingerprint,
                at: now,
                outcome: outcome.clone(),
            },
        );
    }

    fn expire(&self, inner: &mut Inner<T>, now: DateTime<Utc>) {
        while let Some(oldest) = inner.order.front() {
            let stale = inner
                .entries
                .get(oldest)
                .is_none_or(|e| now - e.at >= self.ttl);
            if !stale {
                break;
            }
            if let Some(old) = inner.order.pop_front() {
                inner.entries.remove(&old);
            }
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner<T>> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// One async lock per key in use, dropped from the map when nobody holds
/// or waits for it.
#[derive(Default)]
struct KeyTurns(Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>);

struct Turn<'a> {
    turns: &'a KeyTurns,
    key: String,
    _held: tokio::sync::OwnedMutexGuard<()>,
}

impl KeyTurns {
    async fn take(&self, key: &str) -> Turn<'_> {
        // Cloned under the map lock, so the count in `Turn::drop` is exact.
        let slot = self.map().entry(key.to_owned()).or_default().clone();
        Turn {
            turns: self,
            key: key.to_owned(),
            _held: slot.lock_owned().await,
        }
    }

    fn map(&self) -> MutexGuard<'_, HashMap<String, Arc<tokio::sync::Mutex<()>>>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        let mut map = self.turns.map();
        // The map's reference and ours: nobody else is waiting.
        if map
            .get(&self.key)
            .is_some_and(|s| Arc::strong_count(s) <= 2)
        {
            map.remove(&self.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::FixedClock;
    use crate::payments::connectors::DeclineCode;

    fn cache(capacity: usize) -> (ReplayCache<u32>, FixedClock) {
        let clock = FixedClock::new(DateTime::from_timestamp(1_700_000_000, 0).unwrap());
        (
            ReplayCache::new(capacity, Duration::hours(24), Arc::new(clock.clone())),
            clock,
        )
    }

    #[test]
    fn replays_final_outcomes_and_refuses_a_changed_request() {
        let (c, _) = cache(10);
        let fp = fingerprint(&[b"authorize", b"5000"]);
        assert_eq!(c.lookup("k1", &fp).unwrap(), None);
        c.store("k1", fp, &Ok(7));
        assert_eq!(c.lookup("k1", &fp).unwrap(), Some(Ok(7)));
        let other = fingerprint(&[b"authorize", b"5001"]);
        assert_eq!(
            c.lookup("k1", &other),
            Err(AcquirerError::Invalid(InvalidReason::IdempotencyKeyReused))
        );
        let declined = Err(AcquirerError::Declined(DeclineCode::DoNotHonour));
        c.store("k2", fp, &declined);
        assert_eq!(c.lookup("k2", &fp).unwrap(), Some(declined));
    }

    #[test]
    fn unknown_outcomes_are_not_stored() {
        let (c, _) = cache(10);
        let fp = fingerprint(&[b"x"]);
        c.store("k", fp, &Err(AcquirerError::Timeout));
        c.store("k", fp, &Err(AcquirerError::Unavailable));
        assert_eq!(c.lookup("k", &fp).unwrap(), None);
    }

    #[test]
    fn bounded_by_size_and_age() {
        let (c, clock) = cache(2);
        let fp = fingerprint(&[b"x"]);
        c.store("a", fp, &Ok(1));
        clock.advance(Duration::hours(1));
        c.store("b", fp, &Ok(2));
        clock.advance(Duration::hours(1));
        c.store("c", fp, &Ok(3));
        assert_eq!(c.lookup("a", &fp).unwrap(), None);
        assert_eq!(c.lookup("b", &fp).unwrap(), Some(Ok(2)));
        clock.advance(Duration::hours(23));
        assert_eq!(c.lookup("b", &fp).unwrap(), None);
        assert_eq!(c.lookup("c", &fp).unwrap(), Some(Ok(3)));
    }

    #[tokio::test]
    async fn concurrent_calls_with_one_key_run_once() {
        let (c, _) = cache(10);
        let fp = fingerprint(&[b"x"]);
        let calls = std::sync::atomic::AtomicU32::new(0);
        let call = || async {
            let n = calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            tokio::task::yield_now().await;
            Ok(n)
        };
        let (a, b) = tokio::join!(c.run("k", fp, call()), c.run("k", fp, call()));
        assert_eq!((a, b), (Ok(0), Ok(0)));
        assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 1);
        assert!(c.turns.map().is_empty());
    }

    #[test]
    fn fields_cannot_run_together() {
        assert_ne!(fingerprint(&[b"ab", b"c"]), fingerprint(&[b"a", b"bc"]));
    }
}
