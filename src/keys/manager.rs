//! `KeyManager`: the provider, the key registry and the cache together —
//! what the other modules call to seal, open and fingerprint, and what
//! `voltvault keys …` drives.
//!
//! Active data key and rotation: a node reserves encryptions on the active
//! key in blocks (`UPDATE … use_count = use_count + n WHERE state =
//! 'active'`), so the stored count is an upper bound over all nodes and the
//! GCM random-nonce limit holds cluster-wide. A key rotates when its age or
//! its count passes the policy; a node that finds its key demoted by another
//! node's rotation (the reservation fails) loads the new active key.
//!
//! KEK rotation (`rotate-kek`): create KEK N+1 in the provider and record
//! it `pending` with its check value, activate it (N becomes `retiring`),
//! rewrap every data key under it (compare-and-swap per row), then destroy
//! the retiring KEK in the provider and mark it `destroyed`. Tenants' FF1
//! keys are wrapped like data keys and rewrapped in the same pass. Every step is
//! idempotent, so a run interrupted anywhere is finished by the next one.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use tokio::sync::Mutex;

use super::audit::{KeyAuditSink, KeyEvent};
use super::{
    DataKey, DataKeyCache, DataKeyHandle, DataKeyId, KekVersion, KeyCheckValue, KeyError,
    KeyProvider, RecordCipher, SealedRecord, WrappedDataKey,
};
use crate::clock::{Clock, Environment};
use crate::ids::TenantId;
use crate::secret::SecretBytes;
use crate::store::StoreError;
use crate::store::data_keys::{
    DataKeyRecord, DataKeyState, DataKeyStore, Ff1KeyRecord, KekRecord, KekState,
};

/// When the active data key is replaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RotationPolicy {
    pub max_age: Duration,
    /// Encryptions per data key; far below the 2^32 random-nonce bound.
    pub max_uses: u64,
    /// Encryptions reserved per database round trip.
    pub reservation: u64,
}

impl Default for RotationPolicy {
    fn default() -> Self {
        Self {
            max_age: Duration::days(90),
            max_uses: 1 << 28,
            reservation: 1024,
        }
    }
}

/// `keys status`: versions, states and counts; never key material.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyStatus {
    pub provider: String,
    pub keks: Vec<KekStatus>,
    pub data_keys: Vec<DataKeyStatus>,
    /// Tenants with an FF1 key (a count only).
    pub ff1_keys: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KekStatus {
    pub version: KekVersion,
    pub state: KekState,
    pub check_value: KeyCheckValue,
    pub created_at: DateTime<Utc>,
    pub data_keys: usize,
    /// FF1 keys wrapped under this KEK.
    pub ff1_keys: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataKeyStatus {
    pub id: DataKeyId,
    pub state: DataKeyState,
    pub kek: KekVersion,
    pub created_at: DateTime<Utc>,
    pub use_count: u64,
}

/// What `rotate-kek` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KekRotation {
    pub active: KekVersion,
    pub created: Option<KekVersion>,
    pub rewrapped: usize,
    pub ff1_rewrapped: usize,
    pub destroyed: Vec<KekVersion>,
}

struct ActiveKey {
    id: DataKeyId,
    created_at: DateTime<Utc>,
    handle: Arc<DataKeyHandle>,
    next_use: u64,
    reserved_to: u64,
}

pub struct KeyManager {
    provider: Arc<dyn KeyProvider>,
    store: Arc<dyn DataKeyStore>,
    audit: Arc<dyn KeyAuditSink>,
    cache: DataKeyCache,
    cipher: RecordCipher,
    clock: Arc<dyn Clock>,
    policy: RotationPolicy,
    active: Mutex<Option<ActiveKey>>,
    /// Tenants' FF1 keys in clear (zeroized on drop), unwrapped once.
    ff1: std::sync::RwLock<HashMap<TenantId, Arc<DataKey>>>,
    /// Serializes loading and creating FF1 keys in this process.
    ff1_loading: Mutex<()>,
}

impl fmt::Debug for KeyManager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyManager")
            .field("provider", &self.provider.name())
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

fn storage(e: StoreError) -> KeyError {
    KeyError::Storage(e.to_string())
}

impl KeyManager {
    pub fn new(
        provider: Arc<dyn KeyProvider>,
        store: Arc<dyn DataKeyStore>,
        audit: Arc<dyn KeyAuditSink>,
        env: &Environment,
        policy: RotationPolicy,
    ) -> Self {
        Self {
            cache: DataKeyCache::new(provider.clone()),
            cipher: RecordCipher::new(env.random.clone()),
            clock: env.clock.clone(),
            provider,
            store,
            audit,
            policy,
            active: Mutex::new(None),
            ff1: std::sync::RwLock::new(HashMap::new()),
            ff1_loading: Mutex::new(()),
        }
    }

    pub fn provider(&self) -> &Arc<dyn KeyProvider> {
        &self.provider
    }

    /// The registry half of `keys init`: records KEK v1 (already created in
    /// the provider) with its check value. Refuses an initialized registry.
    pub async fn record_initial_kek(&self) -> Result<KeyCheckValue, KeyError> {
        if !self.store.keks().await.map_err(storage)?.is_empty() {
            return Err(KeyError::Misconfigured(
                "the key registry is already initialized".to_owned(),
            ));
        }
        let kek = KekVersion(1);
        let check_value = self.provider.kek_check_value(kek).await?;
        self.audit
            .record(KeyEvent::KekInitialized { kek, check_value })
            .await?;
        self.store
            .insert_kek(&KekRecord {
                version: kek,
                label: kek.label(),
                check_value,
                state: KekState::Active,
                created_at: self.clock.now(),
            })
            .await
            .map_err(storage)?;
        Ok(check_value)
    }

    /// Start-up check: every KEK still in use must be present in the
    /// provider with the check value recorded for it (PCI DSS 3.7.7).
    pub async fn verify_keks(&self) -> Result<(), KeyError> {
        let keks = self.store.keks().await.map_err(storage)?;
        if !keks.iter().any(|k| k.state == KekState::Active) {
            return Err(KeyError::Misconfigured(
                "no active KEK is recorded; run `voltvault keys init`".to_owned(),
            ));
        }
        for kek in keks.iter().filter(|k| k.state != KekState::Destroyed) {
            let matched = match self.provider.kek_check_value(kek.version).await {
                Ok(found) => found == kek.check_value,
                Err(KeyError::NotFound(_)) => false,
                Err(e) => return Err(e),
            };
            self.audit
                .record(KeyEvent::KekVerified {
                    kek: kek.version,
                    matched,
                })
                .await?;
            if !matched {
                tracing::error!(kek = %kek.version, "KEK does not match its recorded check value");
                return Err(KeyError::KekMismatch);
            }
        }
        Ok(())
    }

    /// Encrypts a record under the active data key, rotating it first when
    /// the policy says so.
    pub async fn seal(
        &self,
        tenant: &str,
        record_id: &str,
        plaintext: &[u8],
    ) -> Result<SealedRecord, KeyError> {
        let key = self.active_key_for_one_use().await?;
        self.cipher.seal(&key, tenant, record_id, plaintext)
    }

    pub async fn open(
        &self,
        tenant: &str,
        record_id: &str,
        sealed: &SealedRecord,
    ) -> Result<SecretBytes, KeyError> {
        let key = self.data_key(sealed.data_key_id).await?;
        self.cipher.open(&key, tenant, record_id, sealed)
    }

    /// Fails with `Unavailable` unless the provider answers now. Opening a
    /// record needs no HSM call once its data key is cached, so a caller
    /// about to hand card data out asks first: a pulled HSM then stops
    /// detokenization at once instead of when the cache empties.
    pub async fn ensure_available(&self) -> Result<(), KeyError> {
        if self.provider.health().await {
            Ok(())
        } else {
            Err(KeyError::Unavailable)
        }
    }

    pub async fn fingerprint(&self, tenant: &str, data: &[u8]) -> Result<[u8; 32], KeyError> {
        self.provider.fingerprint(tenant, data).await
    }

    /// A tenant's FF1 key: from the cache, unwrapped once from the registry,
    /// or on first use generated by the provider and stored wrapped under
    /// the active KEK. Never rotated on its own (the tenant's FF1 tokens are
    /// a function of it); `rotate-kek` rewraps it.
    pub async fn ff1_key(&self, tenant: TenantId) -> Result<Arc<DataKey>, KeyError> {
        if let Some(hit) = self.cached_ff1(tenant) {
            return Ok(hit);
        }
        let _loading = self.ff1_loading.lock().await;
        if let Some(hit) = self.cached_ff1(tenant) {
            return Ok(hit);
        }
        let key = match self.store.ff1_key(tenant).await.map_err(storage)? {
            Some(record) => self.load_ff1(&record).await?,
            None => self.create_ff1(tenant).await?,
        };
        let key = Arc::new(key);
        self.ff1
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(tenant, key.clone());
        Ok(key)
    }

    fn cached_ff1(&self, tenant: TenantId) -> Option<Arc<DataKey>> {
        self.ff1
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&tenant)
            .cloned()
    }

    async fn load_ff1(&self, record: &Ff1KeyRecord) -> Result<DataKey, KeyError> {
        let key = self.provider.unwrap_data_key(&record.wrapped).await?;
        self.audit
            .record(KeyEvent::Ff1KeyLoaded {
                tenant: record.tenant,
            })
            .await?;
        Ok(key)
    }

    async fn create_ff1(&self, tenant: TenantId) -> Result<DataKey, KeyError> {
        let kek = self.active_kek().await?;
        // The same kind of key as a data key: AES-256 from the provider,
        // wrapped with AES-KWP; only the wrapped form is stored.
        let generated = self.provider.generate_data_key(kek).await?;
        let record = Ff1KeyRecord {
            tenant,
            wrapped: generated.wrapped,
            created_at: self.clock.now(),
        };
        match self.store.insert_ff1_key(&record).await {
            Ok(()) => {
                self.audit
                    .record(KeyEvent::Ff1KeyCreated { tenant, kek })
                    .await?;
                tracing::info!(tenant = %tenant, kek = %kek, "FF1 key created");
                Ok(generated.key)
            }
            // Another node created it first: every node must use the same one.
            Err(StoreError::Conflict(_)) => {
                let theirs = self
                    .store
                    .ff1_key(tenant)
                    .await
                    .map_err(storage)?
                    .ok_or_else(|| KeyError::NotFound(format!("FF1 key of tenant {tenant}")))?;
                self.load_ff1(&theirs).await
            }
            Err(e) => Err(storage(e)),
        }
    }

    /// The id new records are sealed under (loading or creating it).
    pub async fn active_data_key_id(&self) -> Result<DataKeyId, KeyError> {
        let mut active = self.active.lock().await;
        self.ensure_active(&mut active).await?;
        active
            .as_ref()
            .map(|a| a.id)
            .ok_or_else(|| KeyError::Provider("no active data key".to_owned()))
    }

    /// A data key by id, from the cache or unwrapped once through the provider.
    async fn data_key(&self, id: DataKeyId) -> Result<Arc<DataKeyHandle>, KeyError> {
        if let Some(hit) = self.cache.get(id) {
            return Ok(hit);
        }
        let record = match self.store.data_key(id).await {
            Ok(r) => r,
            Err(StoreError::NotFound) => {
                return Err(KeyError::NotFound(format!("data key {}", id.0)));
            }
            Err(e) => return Err(storage(e)),
        };
        if record.state == DataKeyState::Retired {
            // A node still holding a demoted key may have written after the
            // retirement scan; reading beats losing the record.
            tracing::warn!(
                data_key = id.0,
                "record under a retired data key; run `voltvault keys reencrypt`"
            );
        }
        let handle = self.cache.get_or_unwrap(id, &record.wrapped).await?;
        self.audit.record(KeyEvent::DataKeyLoaded { id }).await?;
        Ok(handle)
    }

    async fn active_key_for_one_use(&self) -> Result<Arc<DataKeyHandle>, KeyError> {
        let mut active = self.active.lock().await;
        self.ensure_active(&mut active).await?;
        for _ in 0..3 {
            let Some(key) = active.as_mut() else { break };
            if key.next_use < key.reserved_to {
                key.next_use += 1;
                return Ok(key.handle.clone());
            }
            if key.reserved_to >= self.policy.max_uses {
                self.rotate_locked(&mut active).await?;
                continue;
            }
            let block = self
                .policy
                .reservation
                .clamp(1, self.policy.max_uses - key.reserved_to);
            match self.store.reserve_data_key_uses(key.id, block).await {
                Ok(total) if total <= self.policy.max_uses => {
                    key.next_use = total - block;
                    key.reserved_to = total;
                }
                // Other nodes used it up, or rotated it away: move on.
                Ok(_) => self.rotate_locked(&mut active).await?,
                Err(StoreError::NotFound) => {
                    *active = None;
                    self.ensure_active(&mut active).await?;
                }
                Err(e) => return Err(storage(e)),
            }
        }
        Err(KeyError::Provider(
            "could not reserve a use of the active data key".to_owned(),
        ))
    }

    /// Loads the active key if none is held, rotating if there is none or
    /// it is too old.
    async fn ensure_active(&self, active: &mut Option<ActiveKey>) -> Result<(), KeyError> {
        let now = self.clock.now();
        if let Some(key) = active.as_ref() {
            if now - key.created_at < self.policy.max_age {
                return Ok(());
            }
            return self.rotate_locked(active).await;
        }
        match self.store.active_data_key().await.map_err(storage)? {
            Some(record)
                if now - record.created_at < self.policy.max_age
                    && record.use_count < self.policy.max_uses =>
            {
                *active = Some(self.hold(&record).await?);
                Ok(())
            }
            _ => self.rotate_locked(active).await,
        }
    }

    async fn hold(&self, record: &DataKeyRecord) -> Result<ActiveKey, KeyError> {
        let handle = self.data_key(record.id).await?;
        Ok(ActiveKey {
            id: record.id,
            created_at: record.created_at,
            handle,
            // Nothing reserved by this node yet.
            next_use: 0,
            reserved_to: 0,
        })
    }

    /// Rotates the data key now (`voltvault keys rotate-dek`).
    pub async fn rotate_data_key(&self) -> Result<DataKeyId, KeyError> {
        let mut active = self.active.lock().await;
        self.rotate_locked(&mut active).await?;
        active
            .as_ref()
            .map(|a| a.id)
            .ok_or_else(|| KeyError::Provider("no active data key".to_owned()))
    }

    async fn rotate_locked(&self, active: &mut Option<ActiveKey>) -> Result<(), KeyError> {
        let kek = self.active_kek().await?;
        let generated = self.provider.generate_data_key(kek).await?;
        let now = self.clock.now();
        match self
            .store
            .insert_active_data_key(&generated.wrapped, now)
            .await
        {
            Ok(record) => {
                self.audit
                    .record(KeyEvent::DataKeyCreated { id: record.id, kek })
                    .await?;
                let handle = self.cache.insert(record.id, &generated.key);
                *active = Some(ActiveKey {
                    id: record.id,
                    created_at: record.created_at,
                    handle,
                    next_use: 0,
                    reserved_to: 0,
                });
                tracing::info!(data_key = record.id.0, kek = %kek, "data key rotated");
                Ok(())
            }
            // Another node rotated at the same moment: use its key.
            Err(StoreError::Conflict(_)) => {
                let record = self
                    .store
                    .active_data_key()
                    .await
                    .map_err(storage)?
                    .ok_or_else(|| KeyError::Provider("no active data key".to_owned()))?;
                *active = Some(self.hold(&record).await?);
                Ok(())
            }
            Err(e) => Err(storage(e)),
        }
    }

    async fn active_kek(&self) -> Result<KekVersion, KeyError> {
        self.store
            .keks()
            .await
            .map_err(storage)?
            .into_iter()
            .find(|k| k.state == KekState::Active)
            .map(|k| k.version)
            .ok_or_else(|| {
                KeyError::Misconfigured(
                    "no active KEK is recorded; run `voltvault keys init`".to_owned(),
                )
            })
    }

    /// `voltvault keys rotate-kek`: see the module documentation. Finishes
    /// an interrupted rotation instead of starting another.
    pub async fn rotate_kek(&self) -> Result<KekRotation, KeyError> {
        let keks = self.store.keks().await.map_err(storage)?;
        let unfinished = keks
            .iter()
            .any(|k| matches!(k.state, KekState::Pending | KekState::Retiring));
        let mut created = None;
        if !unfinished {
            let version = self.provider.create_kek().await?;
            let check_value = self.provider.kek_check_value(version).await?;
            self.audit
                .record(KeyEvent::KekCreated {
                    kek: version,
                    check_value,
                })
                .await?;
            self.store
                .insert_kek(&KekRecord {
                    version,
                    label: version.label(),
                    check_value,
                    state: KekState::Pending,
                    created_at: self.clock.now(),
                })
                .await
                .map_err(storage)?;
            created = Some(version);
        }
        // Activate the newest pending KEK, if any.
        let keks = self.store.keks().await.map_err(storage)?;
        if let Some(pending) = keks.iter().rev().find(|k| k.state == KekState::Pending) {
            self.store
                .activate_kek(pending.version)
                .await
                .map_err(storage)?;
            self.audit
                .record(KeyEvent::KekActivated {
                    kek: pending.version,
                })
                .await?;
        }
        let target = self.active_kek().await?;

        let mut rewrapped = 0;
        for record in self.store.data_keys().await.map_err(storage)? {
            let from = record.wrapped.kek;
            if from == target {
                continue;
            }
            let new = self
                .provider
                .rewrap_data_key(&record.wrapped, target)
                .await?;
            match self.store.replace_wrapping(record.id, from, &new).await {
                Ok(()) => {
                    rewrapped += 1;
                    self.audit
                        .record(KeyEvent::DataKeyRewrapped {
                            id: record.id,
                            from,
                            to: target,
                        })
                        .await?;
                }
                // Rewrapped concurrently; the next pass sees it done.
                Err(StoreError::Conflict(_)) => {}
                Err(e) => return Err(storage(e)),
            }
        }

        // FF1 keys are wrapped like data keys and move with them.
        let mut ff1_rewrapped = 0;
        for record in self.store.ff1_keys().await.map_err(storage)? {
            let from = record.wrapped.kek;
            if from == target {
                continue;
            }
            let new = self
                .provider
                .rewrap_data_key(&record.wrapped, target)
                .await?;
            match self
                .store
                .replace_ff1_wrapping(record.tenant, from, &new)
                .await
            {
                Ok(()) => {
                    ff1_rewrapped += 1;
                    self.audit
                        .record(KeyEvent::Ff1KeyRewrapped {
                            tenant: record.tenant,
                            from,
                            to: target,
                        })
                        .await?;
                }
                Err(StoreError::Conflict(_)) => {}
                Err(e) => return Err(storage(e)),
            }
        }

        let mut still_used: Vec<KekVersion> = self
            .store
            .data_keys()
            .await
            .map_err(storage)?
            .iter()
            .map(|r| r.wrapped.kek)
            .collect();
        still_used.extend(
            self.store
                .ff1_keys()
                .await
                .map_err(storage)?
                .iter()
                .map(|r| r.wrapped.kek),
        );
        let mut destroyed = Vec::new();
        for kek in self.store.keks().await.map_err(storage)? {
            if kek.state != KekState::Retiring || still_used.contains(&kek.version) {
                continue;
            }
            match self.provider.destroy_kek(kek.version).await {
                Ok(()) | Err(KeyError::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
            self.store
                .set_kek_state(kek.version, KekState::Destroyed)
                .await
                .map_err(storage)?;
            self.audit
                .record(KeyEvent::KekDestroyed { kek: kek.version })
                .await?;
            destroyed.push(kek.version);
        }
        Ok(KekRotation {
            active: target,
            created,
            rewrapped,
            ff1_rewrapped,
            destroyed,
        })
    }

    pub async fn status(&self) -> Result<KeyStatus, KeyError> {
        let keys = self.store.data_keys().await.map_err(storage)?;
        let ff1_keys = self.store.ff1_keys().await.map_err(storage)?;
        let keks = self
            .store
            .keks()
            .await
            .map_err(storage)?
            .into_iter()
            .map(|k| KekStatus {
                data_keys: keys.iter().filter(|d| d.wrapped.kek == k.version).count(),
                ff1_keys: ff1_keys
                    .iter()
                    .filter(|f| f.wrapped.kek == k.version)
                    .count(),
                version: k.version,
                state: k.state,
                check_value: k.check_value,
                created_at: k.created_at,
            })
            .collect();
        Ok(KeyStatus {
            provider: self.provider.name(),
            keks,
            data_keys: keys
                .into_iter()
                .map(|d| DataKeyStatus {
                    id: d.id,
                    state: d.state,
                    kek: d.wrapped.kek,
                    created_at: d.created_at,
                    use_count: d.use_count,
                })
                .collect(),
            ff1_keys: ff1_keys.len(),
        })
    }

    /// Marks a data key retired (no record uses it) and drops it from the cache.
    pub async fn retire_data_key(&self, id: DataKeyId) -> Result<(), KeyError> {
        self.store
            .set_data_key_state(id, DataKeyState::Retired)
            .await
            .map_err(storage)?;
        self.cache.evict(id);
        self.audit.record(KeyEvent::DataKeyRetired { id }).await
    }

    /// The wrapped form of a data key, for tests and diagnostics.
    pub async fn wrapped_data_key(&self, id: DataKeyId) -> Result<WrappedDataKey, KeyError> {
        Ok(self.store.data_key(id).await.map_err(storage)?.wrapped)
    }
}
