//! PKCS#11 key provider over `cryptoki`, tested against SoftHSM2.
//!
//! - One module handle per process ([`module`]), initialized with
//!   `CKF_OS_LOCKING_OK`: SoftHSM corrupts its heap under concurrent calls
//!   otherwise, and refuses a second `C_Initialize`.
//! - Sessions are `Send` but not `Sync`, and every call blocks, so each
//!   operation borrows one session from a small pool inside
//!   `spawn_blocking`; a semaphore bounds the blocking threads to the pool.
//! - Login state is per application and lost when its last session closes,
//!   so every newly opened session logs in (`CKR_USER_ALREADY_LOGGED_IN` is
//!   success).
//! - A token-loss return code marks the connection down: idle sessions are
//!   dropped, [`KeyProvider::health`] answers false, key operations fail with
//!   [`KeyError::Unavailable`] (a 503), and the next operation after an
//!   exponential backoff tries to find the token again. An operation
//!   returns a complete result or an error, never part of one, so a lost
//!   token leaves nothing half-written for the caller to store.
//! - While down, reconnect attempts run under the connection lock: callers
//!   queue behind one attempt instead of each probing the HSM.
//!
//! Objects (all by label):
//! - `voltvault-kek-v<N>`: AES-256 token object, sensitive, never
//!   extractable, wrap/unwrap only (no encrypt/decrypt, no sign, no derive).
//! - `voltvault-fingerprint`, `voltvault-audit`: 32-byte generic secrets,
//!   sensitive, never extractable, sign only (`CKM_SHA256_HMAC`).
//!
//! Data keys: generated inside the HSM as extractable, non-sensitive
//! *session* objects, wrapped under the KEK with `CKM_AES_KEY_WRAP_PAD`,
//! their `CKA_VALUE` read once for the in-memory cache, then destroyed.
//! Unwrapping creates the same kind of session object, reads it and destroys
//! it. This is sound because the only copy in clear that outlives the call is
//! the zeroize-on-drop cache entry the design asks for (records are
//! encrypted in software), and a session object never reaches the token's
//! storage. Rewrapping for `rotate-kek` unwraps as a *sensitive* session
//! object and wraps it under the new KEK, so it never leaves the HSM.
//! `CKM_AES_GCM` cannot wrap in SoftHSM, hence AES-KWP.
//!
//! The key check value is `CKA_CHECK_VALUE`, computed by the token (first
//! three bytes of AES-ECB of a zero block), because the KEK itself is not
//! allowed to encrypt.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::AuthPin;
use tokio::sync::Semaphore;
use zeroize::Zeroizing;

use super::{
    DataKey, GeneratedDataKey, KekVersion, KeyCheckValue, KeyError, KeyProvider, WrappedDataKey,
    audit_message, fingerprint_message, to_array32,
};
use crate::secret::SecretString;

pub const FINGERPRINT_KEY_LABEL: &str = "voltvault-fingerprint";
pub const AUDIT_KEY_LABEL: &str = "voltvault-audit";

/// Where to find the token and how to use it.
#[derive(Debug, Clone)]
pub struct Pkcs11Config {
    /// Path of the PKCS#11 module, e.g. `/usr/lib/softhsm/libsofthsm2.so`.
    pub module: PathBuf,
    /// Label of the token holding voltvault's objects.
    pub token_label: String,
    pub pin: SecretString,
    /// Sessions kept open; also the bound on concurrent HSM calls.
    pub pool_size: usize,
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
}

impl Pkcs11Config {
    pub fn new(
        module: impl Into<PathBuf>,
        token_label: impl Into<String>,
        pin: SecretString,
    ) -> Self {
        Self {
            module: module.into(),
            token_label: token_label.into(),
            pin,
            pool_size: 4,
            backoff_initial: Duration::from_millis(200),
            backoff_max: Duration::from_secs(30),
        }
    }
}

/// The user PIN from `VOLTVAULT_HSM_PIN`, or else from a file only the
/// service may read.
pub fn load_pin(file: Option<&Path>) -> Result<SecretString, KeyError> {
    if let Ok(pin) = std::env::var(crate::config::HSM_PIN_ENV) {
        return Ok(SecretString::new(pin));
    }
    let file = file.ok_or_else(|| {
        KeyError::Misconfigured(format!(
            "no HSM PIN: set {} or configure a PIN file",
            crate::config::HSM_PIN_ENV
        ))
    })?;
    SecretString::from_file(file).map_err(|e| KeyError::Misconfigured(e.to_string()))
}

/// The process-wide handle of a PKCS#11 module, initialized once with OS
/// locking. Later calls with the same path share it.
pub fn module(path: &Path) -> Result<Pkcs11, KeyError> {
    static MODULES: OnceLock<Mutex<HashMap<PathBuf, Pkcs11>>> = OnceLock::new();
    let mut modules = lock(MODULES.get_or_init(Default::default));
    if let Some(m) = modules.get(path) {
        return Ok(m.clone());
    }
    let ctx = Pkcs11::new(path).map_err(|e| {
        KeyError::Misconfigured(format!(
            "PKCS#11 module {} cannot be loaded: {e}",
            path.display()
        ))
    })?;
    match ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
        Ok(()) | Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
        Err(e) => {
            return Err(KeyError::Misconfigured(format!(
                "PKCS#11 module {} failed to initialize: {}",
                path.display(),
                describe(&e)
            )));
        }
    }
    modules.insert(path.to_owned(), ctx.clone());
    Ok(ctx)
}

/// The PKCS#11 key provider. Cheap to clone.
#[derive(Clone)]
pub struct Pkcs11Provider {
    inner: Arc<Inner>,
}

impl fmt::Debug for Pkcs11Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pkcs11Provider")
            .field("token", &self.inner.token_label)
            .finish_non_exhaustive()
    }
}

struct Inner {
    ctx: Pkcs11,
    token_label: String,
    pin: AuthPin,
    pool_size: usize,
    backoff_initial: Duration,
    backoff_max: Duration,
    permits: Semaphore,
    conn: Mutex<Conn>,
    calls: AtomicU64,
}

enum Conn {
    Up {
        slot: Slot,
        generation: u64,
        idle: Vec<Session>,
        handles: HashMap<String, ObjectHandle>,
    },
    Down {
        generation: u64,
        retry_at: Option<Instant>,
        delay: Duration,
    },
}

struct Lease {
    session: Session,
    generation: u64,
}

/// Failures inside a blocking operation, classified afterwards.
enum OpError {
    Ck(CkError),
    Key(KeyError),
}

impl From<CkError> for OpError {
    fn from(e: CkError) -> Self {
        OpError::Ck(e)
    }
}

impl From<KeyError> for OpError {
    fn from(e: KeyError) -> Self {
        OpError::Key(e)
    }
}

/// What an operation sees: its session, and object lookups that go
/// through the handle cache of the current connection.
struct Ctx<'a> {
    inner: &'a Inner,
    session: &'a Session,
    generation: u64,
}

impl Ctx<'_> {
    fn count(&self) {
        self.inner.calls.fetch_add(1, Ordering::Relaxed);
    }

    fn key(&self, label: &str) -> Result<ObjectHandle, OpError> {
        if let Conn::Up {
            generation,
            handles,
            ..
        } = &*lock(&self.inner.conn)
        {
            if *generation == self.generation {
                if let Some(h) = handles.get(label) {
                    return Ok(*h);
                }
            }
        }
        let found = self.find(label)?;
        let handle = match found.as_slice() {
            [one] => *one,
            [] => return Err(KeyError::NotFound(label.to_owned()).into()),
            _ => {
                return Err(KeyError::Misconfigured(format!(
                    "more than one object labelled {label:?} on the token"
                ))
                .into());
            }
        };
        if let Conn::Up {
            generation,
            handles,
            ..
        } = &mut *lock(&self.inner.conn)
        {
            if *generation == self.generation {
                handles.insert(label.to_owned(), handle);
            }
        }
        Ok(handle)
    }

    fn find(&self, label: &str) -> Result<Vec<ObjectHandle>, OpError> {
        self.count();
        Ok(self.session.find_objects(&[
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::Token(true),
            Attribute::Label(label.as_bytes().to_vec()),
        ])?)
    }

    fn forget(&self, label: &str) {
        if let Conn::Up { handles, .. } = &mut *lock(&self.inner.conn) {
            handles.remove(label);
        }
    }

    fn kek_versions(&self) -> Result<Vec<KekVersion>, OpError> {
        self.count();
        let objects = self.session.find_objects(&[
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::Token(true),
            Attribute::KeyType(KeyType::AES),
        ])?;
        let mut versions = Vec::new();
        for obj in objects {
            self.count();
            for attr in self.session.get_attributes(obj, &[AttributeType::Label])? {
                if let Attribute::Label(l) = attr {
                    if let Some(v) = std::str::from_utf8(&l)
                        .ok()
                        .and_then(KekVersion::from_label)
                    {
                        versions.push(v);
                    }
                }
            }
        }
        versions.sort();
        versions.dedup();
        Ok(versions)
    }

    fn create_kek(&self, version: KekVersion) -> Result<(), OpError> {
        let label = version.label();
        if !self.find(&label)?.is_empty() {
            return Err(KeyError::Misconfigured(format!("{label} already exists")).into());
        }
        self.count();
        self.session
            .generate_key(&Mechanism::AesKeyGen, &kek_template(&label))?;
        Ok(())
    }

    fn create_hmac_key(&self, label: &str) -> Result<(), OpError> {
        if !self.find(label)?.is_empty() {
            return Err(KeyError::Misconfigured(format!("{label} already exists")).into());
        }
        self.count();
        self.session
            .generate_key(&Mechanism::GenericSecretKeyGen, &hmac_template(label))?;
        Ok(())
    }

    fn check_value(&self, kek: KekVersion) -> Result<KeyCheckValue, OpError> {
        let handle = self.key(&kek.label())?;
        self.count();
        let attrs = self
            .session
            .get_attributes(handle, &[AttributeType::CheckValue])?;
        for attr in attrs {
            if let Attribute::CheckValue(v) = attr {
                return Ok(KeyCheckValue::from_slice(&v)?);
            }
        }
        Err(KeyError::Misconfigured(
            "the token does not report CKA_CHECK_VALUE for the KEK".to_owned(),
        )
        .into())
    }

    fn sign(&self, label: &str, msg: &[u8]) -> Result<[u8; 32], OpError> {
        let key = self.key(label)?;
        self.count();
        let mac = self.session.sign(&Mechanism::Sha256Hmac, key, msg)?;
        Ok(to_array32(&mac)?)
    }

    /// Reads `CKA_VALUE` of a non-sensitive session key, then destroys it
    /// whatever the read gave.
    fn take_value(&self, obj: ObjectHandle) -> Result<DataKey, OpError> {
        self.count();
        let read = self.session.get_attributes(obj, &[AttributeType::Value]);
        self.count();
        let destroyed = self.session.destroy_object(obj);
        let mut key = None;
        for attr in read? {
            if let Attribute::Value(v) = attr {
                let v = Zeroizing::new(v);
                key = Some(DataKey::from_slice(&v)?);
            }
        }
        destroyed?;
        key.ok_or_else(|| KeyError::Provider("token returned no key value".to_owned()).into())
    }
}

fn kek_template(label: &str) -> Vec<Attribute> {
    vec![
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::KeyType(KeyType::AES),
        Attribute::ValueLen(32.into()),
        Attribute::Label(label.as_bytes().to_vec()),
        Attribute::Id(label.as_bytes().to_vec()),
        Attribute::Token(true),
        Attribute::Private(true),
        Attribute::Sensitive(true),
        Attribute::Extractable(false),
        Attribute::Modifiable(false),
        Attribute::Wrap(true),
        Attribute::Unwrap(true),
        Attribute::Encrypt(false),
        Attribute::Decrypt(false),
        Attribute::Sign(false),
        Attribute::Verify(false),
        Attribute::Derive(false),
    ]
}

fn hmac_template(label: &str) -> Vec<Attribute> {
    vec![
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::KeyType(KeyType::GENERIC_SECRET),
        Attribute::ValueLen(32.into()),
        Attribute::Label(label.as_bytes().to_vec()),
        Attribute::Id(label.as_bytes().to_vec()),
        Attribute::Token(true),
        Attribute::Private(true),
        Attribute::Sensitive(true),
        Attribute::Extractable(false),
        Attribute::Modifiable(false),
        Attribute::Sign(true),
        Attribute::Verify(false),
        Attribute::Encrypt(false),
        Attribute::Decrypt(false),
        Attribute::Wrap(false),
        Attribute::Unwrap(false),
        Attribute::Derive(false),
    ]
}

/// A data key as a session object. `sensitive = false` lets its value be
/// read once; rewrap uses `true` so the key stays inside the HSM.
fn data_key_template(sensitive: bool) -> Vec<Attribute> {
    vec![
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::KeyType(KeyType::AES),
        Attribute::Token(false),
        Attribute::Private(true),
        Attribute::Sensitive(sensitive),
        Attribute::Extractable(true),
        Attribute::Encrypt(false),
        Attribute::Decrypt(false),
        Attribute::Wrap(false),
        Attribute::Unwrap(false),
        Attribute::Sign(false),
        Attribute::Verify(false),
        Attribute::Derive(false),
    ]
}

/// Return codes meaning the token, slot or session is gone rather than the
/// request being wrong.
fn is_token_loss(e: &CkError) -> bool {
    matches!(
        e,
        CkError::Pkcs11(
            RvError::DeviceRemoved
                | RvError::DeviceError
                | RvError::TokenNotPresent
                | RvError::TokenNotRecognized
                | RvError::SessionHandleInvalid
                | RvError::SessionClosed
                | RvError::SlotIdInvalid
                | RvError::CryptokiNotInitialized
                | RvError::UserNotLoggedIn,
            _
        )
    )
}

fn is_stale_handle(e: &OpError) -> bool {
    matches!(
        e,
        OpError::Ck(CkError::Pkcs11(
            RvError::KeyHandleInvalid
                | RvError::ObjectHandleInvalid
                | RvError::WrappingKeyHandleInvalid
                | RvError::UnwrappingKeyHandleInvalid,
            _
        ))
    )
}

/// A short, secret-free description of a cryptoki error for messages.
fn describe(e: &CkError) -> String {
    match e {
        CkError::Pkcs11(rv, func) => format!("{rv:?} in {func:?}"),
        other => format!("{other:?}"),
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    }
}

impl Pkcs11Provider {
    /// Loads the module (once per process), finds the token by label and
    /// logs in. Fails with a precise reason when the configuration is wrong.
    pub async fn connect(config: Pkcs11Config) -> Result<Self, KeyError> {
        let ctx = module(&config.module)?;
        let inner = Arc::new(Inner {
            ctx,
            token_label: config.token_label,
            pin: AuthPin::new(config.pin.expose_secret().into()),
            pool_size: config.pool_size.max(1),
            backoff_initial: config.backoff_initial,
            backoff_max: config.backoff_max,
            permits: Semaphore::new(config.pool_size.max(1)),
            conn: Mutex::new(Conn::Down {
                generation: 0,
                retry_at: None,
                delay: config.backoff_initial,
            }),
            calls: AtomicU64::new(0),
        });
        let probe = Arc::clone(&inner);
        tokio::task::spawn_blocking(move || {
            let (slot, session) = probe.open_first()?;
            *lock(&probe.conn) = Conn::Up {
                slot,
                generation: 1,
                idle: vec![session],
                handles: HashMap::new(),
            };
            Ok::<_, KeyError>(())
        })
        .await
        .map_err(|_| KeyError::Provider("HSM connect task failed".to_owned()))??;
        Ok(Self { inner })
    }

    /// Creates the KEK (version 1), the fingerprint key and the audit key
    /// for a new deployment; refuses if any of them already exists. Returns
    /// the KEK's check value, to be recorded.
    pub async fn init_token_objects(&self) -> Result<KeyCheckValue, KeyError> {
        self.run(|ctx| {
            let existing = ctx.kek_versions()?;
            if !existing.is_empty()
                || !ctx.find(FINGERPRINT_KEY_LABEL)?.is_empty()
                || !ctx.find(AUDIT_KEY_LABEL)?.is_empty()
            {
                return Err(KeyError::Misconfigured(
                    "the token already holds voltvault keys; refusing to initialize it again"
                        .to_owned(),
                )
                .into());
            }
            ctx.create_kek(KekVersion(1))?;
            ctx.create_hmac_key(FINGERPRINT_KEY_LABEL)?;
            ctx.create_hmac_key(AUDIT_KEY_LABEL)?;
            ctx.check_value(KekVersion(1))
        })
        .await
    }

    /// Reads attributes of a labelled key, for `keys status` and tests. Only
    /// non-secret attributes are allowed through.
    pub async fn key_attributes(
        &self,
        label: &str,
        types: &[AttributeType],
    ) -> Result<Vec<Attribute>, KeyError> {
        if types
            .iter()
            .any(|t| matches!(t, AttributeType::Value | AttributeType::ValueLen))
        {
            return Err(KeyError::Misconfigured(
                "key values are never read from the token".to_owned(),
            ));
        }
        let label = label.to_owned();
        let types = types.to_vec();
        self.run(move |ctx| {
            let handle = ctx.key(&label)?;
            ctx.count();
            Ok(ctx.session.get_attributes(handle, &types)?)
        })
        .await
    }

    /// PKCS#11 operations made so far (sessions, logins, finds, MACs,
    /// wraps…), for the hot-path benchmark.
    pub fn hsm_operations(&self) -> u64 {
        self.inner.calls.load(Ordering::Relaxed)
    }

    pub fn token_label(&self) -> &str {
        &self.inner.token_label
    }

    /// Runs `op` on a pooled session in a blocking thread and classifies
    /// its failure. A stale object handle is retried once with a fresh lookup.
    async fn run<T, F>(&self, op: F) -> Result<T, KeyError>
    where
        T: Send + 'static,
        F: Fn(&Ctx<'_>) -> Result<T, OpError> + Send + 'static,
    {
        let _permit = self
            .inner
            .permits
            .acquire()
            .await
            .map_err(|_| KeyError::Unavailable)?;
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || {
            let lease = inner.checkout()?;
            let mut result = op(&inner.ctx_for(&lease));
            if result.as_ref().err().is_some_and(is_stale_handle) {
                inner.forget_handles(lease.generation);
                result = op(&inner.ctx_for(&lease));
            }
            match result {
                Ok(v) => {
                    inner.checkin(lease);
                    Ok(v)
                }
                Err(OpError::Key(e)) => {
                    inner.checkin(lease);
                    Err(e)
                }
                Err(OpError::Ck(e)) if is_token_loss(&e) => {
                    tracing::warn!(
                        token = %inner.token_label,
                        error = %describe(&e),
                        "HSM token lost; key operations unavailable until it returns"
                    );
                    inner.mark_down(lease.generation);
                    drop(lease);
                    Err(KeyError::Unavailable)
                }
                Err(OpError::Ck(e)) => {
                    inner.checkin(lease);
                    Err(classify(&e))
                }
            }
        })
        .await
        .map_err(|_| KeyError::Provider("HSM task failed".to_owned()))?
    }
}

/// Errors that are not token loss: a failed unwrap is an integrity failure
/// (a wrong or tampered wrapped key); anything else is reported by name.
fn classify(e: &CkError) -> KeyError {
    match e {
        CkError::Pkcs11(
            RvError::WrappedKeyInvalid
            | RvError::WrappedKeyLenRange
            | RvError::EncryptedDataInvalid
            | RvError::EncryptedDataLenRange,
            _,
        )
        | CkError::Pkcs11(RvError::GeneralError, cryptoki::context::Function::UnwrapKey) => {
            KeyError::IntegrityFailure
        }
        CkError::Pkcs11(RvError::PinIncorrect | RvError::PinLocked | RvError::PinExpired, _) => {
            KeyError::Misconfigured(format!("HSM login refused: {}", describe(e)))
        }
        other => KeyError::Provider(describe(other)),
    }
}

impl Inner {
    fn ctx_for<'a>(&'a self, lease: &'a Lease) -> Ctx<'a> {
        Ctx {
            inner: self,
            session: &lease.session,
            generation: lease.generation,
        }
    }

    /// Finds the token by label and opens a logged-in session on it.
    fn open_first(&self) -> Result<(Slot, Session), KeyError> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        let slots = self
            .ctx
            .get_slots_with_token()
            .map_err(|e| unavailable_or(&e))?;
        let mut found = None;
        for slot in slots {
            self.calls.fetch_add(1, Ordering::Relaxed);
            let Ok(info) = self.ctx.get_token_info(slot) else {
                continue;
            };
            if info.label().trim_end() == self.token_label {
                if found.is_some() {
                    return Err(KeyError::Misconfigured(format!(
                        "more than one token labelled {:?}",
                        self.token_label
                    )));
                }
                found = Some(slot);
            }
        }
        let slot = found
            .ok_or_else(|| KeyError::NotFound(format!("token labelled {:?}", self.token_label)))?;
        let session = self.open_session(slot)?;
        Ok((slot, session))
    }

    fn open_session(&self, slot: Slot) -> Result<Session, KeyError> {
        self.calls.fetch_add(2, Ordering::Relaxed);
        let session = self
            .ctx
            .open_rw_session(slot)
            .map_err(|e| unavailable_or(&e))?;
        match session.login(UserType::User, Some(&self.pin)) {
            Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => Ok(session),
            Err(e) => Err(unavailable_or(&e)),
        }
    }

    /// A session from the pool, opening one (and reconnecting when down and
    /// the backoff has passed) if needed.
    fn checkout(&self) -> Result<Lease, KeyError> {
        let mut conn = lock(&self.conn);
        match &mut *conn {
            Conn::Up {
                slot,
                generation,
                idle,
                ..
            } => {
                let generation = *generation;
                if let Some(session) = idle.pop() {
                    return Ok(Lease {
                        session,
                        generation,
                    });
                }
                let slot = *slot;
                match self.open_session(slot) {
                    Ok(session) => Ok(Lease {
                        session,
                        generation,
                    }),
                    Err(KeyError::Unavailable) => {
                        *conn = self.down_after(generation);
                        Err(KeyError::Unavailable)
                    }
                    Err(e) => Err(e),
                }
            }
            Conn::Down {
                generation,
                retry_at,
                delay,
            } => {
                let now = Instant::now();
                if retry_at.is_some_and(|at| now < at) {
                    return Err(KeyError::Unavailable);
                }
                match self.open_first() {
                    Ok((slot, session)) => {
                        let generation = *generation + 1;
                        tracing::info!(token = %self.token_label, "HSM token reconnected");
                        *conn = Conn::Up {
                            slot,
                            generation,
                            idle: Vec::new(),
                            handles: HashMap::new(),
                        };
                        Ok(Lease {
                            session,
                            generation,
                        })
                    }
                    Err(_) => {
                        *retry_at = Some(now + *delay);
                        *delay = (*delay * 2).min(self.backoff_max);
                        Err(KeyError::Unavailable)
                    }
                }
            }
        }
    }

    fn checkin(&self, lease: Lease) {
        let mut conn = lock(&self.conn);
        if let Conn::Up {
            generation, idle, ..
        } = &mut *conn
        {
            if *generation == lease.generation && idle.len() < self.pool_size {
                idle.push(lease.session);
            }
        }
    }

    fn mark_down(&self, lease_generation: u64) {
        let mut conn = lock(&self.conn);
        if let Conn::Up { generation, .. } = &*conn {
            if *generation == lease_generation {
                // Dropping the idle sessions closes them; errors are moot.
                *conn = self.down_after(lease_generation);
            }
        }
    }

    fn down_after(&self, generation: u64) -> Conn {
        Conn::Down {
            generation,
            retry_at: Some(Instant::now() + self.backoff_initial),
            delay: (self.backoff_initial * 2).min(self.backoff_max),
        }
    }

    fn forget_handles(&self, lease_generation: u64) {
        if let Conn::Up {
            generation,
            handles,
            ..
        } = &mut *lock(&self.conn)
        {
            if *generation == lease_generation {
                handles.clear();
            }
        }
    }
}

fn unavailable_or(e: &CkError) -> KeyError {
    if is_token_loss(e) {
        KeyError::Unavailable
    } else {
        classify(e)
    }
}

#[async_trait]
impl KeyProvider for Pkcs11Provider {
    fn name(&self) -> String {
        format!("pkcs11 token {:?}", self.inner.token_label)
    }

    async fn kek_versions(&self) -> Result<Vec<KekVersion>, KeyError> {
        self.run(|ctx| ctx.kek_versions()).await
    }

    async fn create_kek(&self) -> Result<KekVersion, KeyError> {
        self.run(|ctx| {
            let next = ctx
                .kek_versions()?
                .last()
                .map_or(KekVersion(1), |v| v.next());
            ctx.create_kek(next)?;
            Ok(next)
        })
        .await
    }

    async fn destroy_kek(&self, kek: KekVersion) -> Result<(), KeyError> {
        self.run(move |ctx| {
            let versions = ctx.kek_versions()?;
            if !versions.contains(&kek) {
                return Err(KeyError::NotFound(kek.label()).into());
            }
            if versions.len() == 1 {
                return Err(
                    KeyError::Misconfigured("refusing to destroy the last KEK".to_owned()).into(),
                );
            }
            let handle = ctx.key(&kek.label())?;
            ctx.count();
            ctx.session.destroy_object(handle)?;
            ctx.forget(&kek.label());
            Ok(())
        })
        .await
    }

    async fn kek_check_value(&self, kek: KekVersion) -> Result<KeyCheckValue, KeyError> {
        self.run(move |ctx| ctx.check_value(kek)).await
    }

    async fn generate_data_key(&self, kek: KekVersion) -> Result<GeneratedDataKey, KeyError> {
        self.run(move |ctx| {
            let wrapping = ctx.key(&kek.label())?;
            let mut template = data_key_template(false);
            template.push(Attribute::ValueLen(32.into()));
            ctx.count();
            let obj = ctx.session.generate_key(&Mechanism::AesKeyGen, &template)?;
            ctx.count();
            let wrapped = match ctx
                .session
                .wrap_key(&Mechanism::AesKeyWrapPad, wrapping, obj)
            {
                Ok(w) => w,
                Err(e) => {
                    // Session objects vanish with the session anyway; this is tidiness.
                    let _ = ctx.session.destroy_object(obj);
                    return Err(e.into());
                }
            };
            let key = ctx.take_value(obj)?;
            Ok(GeneratedDataKey {
                wrapped: WrappedDataKey {
                    kek,
                    bytes: wrapped,
                },
                key,
            })
        })
        .await
    }

    async fn unwrap_data_key(&self, wrapped: &WrappedDataKey) -> Result<DataKey, KeyError> {
        let wrapped = wrapped.clone();
        self.run(move |ctx| {
            let unwrapping = ctx.key(&wrapped.kek.label())?;
            ctx.count();
            let obj = ctx.session.unwrap_key(
                &Mechanism::AesKeyWrapPad,
                unwrapping,
                &wrapped.bytes,
                &data_key_template(false),
            )?;
            ctx.take_value(obj)
        })
        .await
    }

    async fn rewrap_data_key(
        &self,
        wrapped: &WrappedDataKey,
        to: KekVersion,
    ) -> Result<WrappedDataKey, KeyError> {
        let wrapped = wrapped.clone();
        self.run(move |ctx| {
            let from = ctx.key(&wrapped.kek.label())?;
            let target = ctx.key(&to.label())?;
            ctx.count();
            let obj = ctx.session.unwrap_key(
                &Mechanism::AesKeyWrapPad,
                from,
                &wrapped.bytes,
                &data_key_template(true),
            )?;
            ctx.count();
            let rewrapped = ctx.session.wrap_key(&Mechanism::AesKeyWrapPad, target, obj);
            ctx.count();
            let destroyed = ctx.session.destroy_object(obj);
            let bytes = rewrapped?;
            destroyed?;
            Ok(WrappedDataKey { kek: to, bytes })
        })
        .await
    }

    async fn fingerprint(&self, tenant: &str, data: &[u8]) -> Result<[u8; 32], KeyError> {
        let msg = fingerprint_message(tenant, data);
        self.run(move |ctx| ctx.sign(FINGERPRINT_KEY_LABEL, &msg))
            .await
    }

    async fn audit_mac(&self, data: &[u8]) -> Result<[u8; 32], KeyError> {
        let msg = audit_message(data);
        self.run(move |ctx| ctx.sign(AUDIT_KEY_LABEL, &msg)).await
    }

    /// Ready when a pooled session answers `C_GetSessionInfo`; when down,
    /// tries to reconnect (respecting the backoff).
    async fn health(&self) -> bool {
        self.run(|ctx| {
            ctx.count();
            ctx.session.get_session_info()?;
            Ok(())
        })
        .await
        .is_ok()
    }
}
