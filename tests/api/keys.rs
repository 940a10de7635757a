//! The key registry (conformance on both databases) and `KeyManager` on a
//! real SoftHSM token with each database.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use voltvault::clock::{Environment, FixedClock, OsRandom};
use voltvault::keys::pkcs11::Pkcs11Provider;
use voltvault::keys::reencrypt::RecordCursor;
use voltvault::keys::testing::TestToken;
use voltvault::keys::{
    DataKeyId, KekVersion, KeyCheckValue, KeyError, KeyEvent, KeyManager, KeyProvider,
    MemoryAuditSink, RotationPolicy, SealedRecord, SealedRecords, StoredRecord, WrappedDataKey,
};
use voltvault::store::StoreError;
use voltvault::store::data_keys::{DataKeyState, DataKeyStore, KekRecord, KekState};

use crate::helpers::{Backend, TestDb, contains_bytes};

fn at(secs: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_764_000_000 + secs, 0).unwrap()
}

fn kek(version: u32, state: KekState) -> KekRecord {
    KekRecord {
        version: KekVersion(version),
        label: KekVersion(version).label(),
        check_value: KeyCheckValue([version as u8, 0xab, 0xcd]),
        state,
        created_at: at(i64::from(version)),
    }
}

fn wrapped(kek: u32, byte: u8) -> WrappedDataKey {
    WrappedDataKey {
        kek: KekVersion(kek),
        bytes: vec![byte; 40],
    }
}

async fn registry(db: &TestDb) -> Arc<dyn DataKeyStore> {
    db.store().await.data_key_store()
}

async fn the_kek_registry_keeps_one_active_kek(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = registry(&db).await;
    store.insert_kek(&kek(1, KekState::Active)).await.unwrap();
    let err = store
        .insert_kek(&kek(2, KekState::Active))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    store.insert_kek(&kek(2, KekState::Pending)).await.unwrap();
    store.activate_kek(KekVersion(2)).await.unwrap();
    let states: Vec<_> = store
        .keks()
        .await
        .unwrap()
        .iter()
        .map(|k| (k.version.0, k.state))
        .collect();
    assert_eq!(states, [(1, KekState::Retiring), (2, KekState::Active)]);
    assert_eq!(store.keks().await.unwrap()[1], {
        let mut k = kek(2, KekState::Active);
        k.state = KekState::Active;
        k
    });
    store
        .set_kek_state(KekVersion(1), KekState::Destroyed)
        .await
        .unwrap();
    assert!(matches!(
        store.activate_kek(KekVersion(1)).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        store.activate_kek(KekVersion(9)).await,
        Err(StoreError::NotFound)
    ));
}

async fn data_keys_rotate_reserve_and_rewrap(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = registry(&db).await;
    store.insert_kek(&kek(1, KekState::Active)).await.unwrap();
    store.insert_kek(&kek(2, KekState::Pending)).await.unwrap();

    let first = store
        .insert_active_data_key(&wrapped(1, 0x11), at(10))
        .await
        .unwrap();
    let second = store
        .insert_active_data_key(&wrapped(1, 0x22), at(20))
        .await
        .unwrap();
    assert!(second.id > first.id);
    assert_eq!(
        store.data_key(first.id).await.unwrap().state,
        DataKeyState::DecryptOnly
    );
    let active = store.active_data_key().await.unwrap().unwrap();
    assert_eq!(active.id, second.id);
    assert_eq!(active.wrapped, wrapped(1, 0x22));
    assert_eq!(active.created_at, at(20));

    assert_eq!(
        store.reserve_data_key_uses(second.id, 10).await.unwrap(),
        10
    );
    assert_eq!(store.reserve_data_key_uses(second.id, 5).await.unwrap(), 15);
    assert!(matches!(
        store.reserve_data_key_uses(first.id, 1).await,
        Err(StoreError::NotFound)
    ));

    // Compare-and-swap on the KEK version.
    assert!(matches!(
        store
            .replace_wrapping(first.id, KekVersion(2), &wrapped(2, 0x33))
            .await,
        Err(StoreError::Conflict(_))
    ));
    store
        .replace_wrapping(first.id, KekVersion(1), &wrapped(2, 0x33))
        .await
        .unwrap();
    assert_eq!(
        store.data_key(first.id).await.unwrap().wrapped,
        wrapped(2, 0x33)
    );

    store
        .set_data_key_state(first.id, DataKeyState::Retired)
        .await
        .unwrap();
    let all = store.data_keys().await.unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(all[0].state, DataKeyState::Retired);
    assert_eq!(all[1].use_count, 15);
    assert!(matches!(
        store.data_key(DataKeyId(9999)).await,
        Err(StoreError::NotFound)
    ));
}

async fn a_data_key_under_an_unrecorded_kek_is_refused(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = registry(&db).await;
    let err = store
        .insert_active_data_key(&wrapped(7, 1), at(0))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict("reference")), "{err:?}");
    assert!(store.active_data_key().await.unwrap().is_none());
}

struct Harness {
    db: TestDb,
    _token: TestToken,
    hsm: Arc<Pkcs11Provider>,
    audit: Arc<MemoryAuditSink>,
    clock: FixedClock,
}

impl Harness {
    async fn new(backend: Backend) -> Self {
        let db = TestDb::new(backend).await;
        let token = TestToken::new();
        let (hsm, _) = token.initialized().await.unwrap();
        Self {
            db,
            _token: token,
            hsm: Arc::new(hsm),
            audit: Arc::new(MemoryAuditSink::default()),
            clock: FixedClock::new(at(0)),
        }
    }

    /// A manager as a fresh process would build it (empty cache).
    async fn manager(&self, policy: RotationPolicy) -> KeyManager {
        let env = Environment {
            clock: Arc::new(self.clock.clone()),
            random: Arc::new(OsRandom),
        };
        KeyManager::new(
            self.hsm.clone(),
            registry(&self.db).await,
            self.audit.clone(),
            &env,
            policy,
        )
    }
}

const PANS: [&str; 5] = [
    "4111111111111111",
    "5555555555554444",
    "378282246310005",
    "6011111111111117",
    "4000056655665556",
];

async fn records_seal_and_open_and_no_data_key_is_stored_in_clear(backend: Backend) {
    let h = Harness::new(backend).await;
    let keys = h.manager(RotationPolicy::default()).await;
    let kcv = keys.record_initial_kek().await.unwrap();
    assert_eq!(kcv, h.hsm.kek_check_value(KekVersion(1)).await.unwrap());
    keys.verify_keks().await.unwrap();
    assert!(matches!(
        keys.record_initial_kek().await,
        Err(KeyError::Misconfigured(_))
    ));

    let mut sealed = Vec::new();
    for (i, pan) in PANS.iter().enumerate() {
        let id = format!("tok_{i}");
        sealed.push((
            id.clone(),
            keys.seal("acme", &id, pan.as_bytes()).await.unwrap(),
        ));
    }
    let reader = h.manager(RotationPolicy::default()).await;
    for ((id, s), pan) in sealed.iter().zip(PANS) {
        assert_eq!(
            reader.open("acme", id, s).await.unwrap().expose_secret(),
            pan.as_bytes()
        );
    }
    // A ciphertext moved to another row does not open.
    assert_eq!(
        reader
            .open("acme", &sealed[1].0, &sealed[0].1)
            .await
            .unwrap_err(),
        KeyError::IntegrityFailure
    );

    // Scan the database for every data key in clear.
    let store = registry(&h.db).await;
    let mut clear_keys = Vec::new();
    for record in store.data_keys().await.unwrap() {
        let key = h.hsm.unwrap_data_key(&record.wrapped).await.unwrap();
        clear_keys.push(key.expose_secret().to_vec());
    }
    assert!(!clear_keys.is_empty());
    let dump = database_dump(&h.db).await;
    for key in &clear_keys {
        assert!(
            !contains_bytes(&dump, &key[..16]),
            "data key stored in clear"
        );
        assert!(
            !contains_bytes(&dump, hex::encode(&key[..16]).as_bytes()),
            "data key stored in clear (hex)"
        );
    }
    for pan in PANS {
        assert!(!contains_bytes(&dump, pan.as_bytes()));
    }
    let events = h.audit.events();
    assert!(matches!(events[0], KeyEvent::KekInitialized { .. }));
    assert!(
        events
            .iter()
            .any(|e| matches!(e, KeyEvent::DataKeyCreated { .. }))
    );
}

/// Everything the database holds for the key registry, as bytes.
async fn database_dump(db: &TestDb) -> Vec<u8> {
    match db.backend {
        Backend::Sqlite => {
            let path = db.sqlite_path().unwrap();
            let mut all = std::fs::read(&path).unwrap();
            let wal = path.with_extension("db-wal");
            if let Ok(w) = std::fs::read(wal) {
                all.extend(w);
            }
            all
        }
        Backend::Postgres => {
            use sqlx::Connection;
            let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap();
            let mut all = Vec::new();
            for table in ["data_keys", "key_encryption_keys", "ff1_keys"] {
                let rows: Vec<(String,)> =
                    sqlx::query_as(&format!("SELECT row_to_json(t)::text FROM {table} t"))
                        .fetch_all(&mut conn)
                        .await
                        .unwrap();
                for (row,) in rows {
                    all.extend(row.into_bytes());
                }
                let raw: Vec<(Vec<u8>,)> = if table != "key_encryption_keys" {
                    sqlx::query_as(&format!("SELECT wrapped FROM {table}"))
                        .fetch_all(&mut conn)
                        .await
                        .unwrap()
                } else {
                    Vec::new()
                };
                for (bytes,) in raw {
                    all.extend(bytes);
                }
            }
            all
        }
    }
}

async fn data_keys_rotate_by_count_and_by_age(backend: Backend) {
    let h = Harness::new(backend).await;
    let policy = RotationPolicy {
        max_age: Duration::days(30),
        max_uses: 4,
        reservation: 2,
    };
    let keys = h.manager(policy).await;
    keys.record_initial_kek().await.unwrap();

    let mut sealed = Vec::new();
    for i in 0..10 {
        let id = format!("tok_{i}");
        sealed.push((
            id.clone(),
            keys.seal("acme", &id, b"4111111111111111").await.unwrap(),
        ));
    }
    let status = keys.status().await.unwrap();
    // 10 encryptions at 4 per key: three keys, the last one active.
    assert_eq!(status.data_keys.len(), 3, "{status:?}");
    assert!(status.data_keys.iter().all(|d| d.use_count <= 4));
    let states: Vec<_> = status.data_keys.iter().map(|d| d.state).collect();
    assert_eq!(
        states,
        [
            DataKeyState::DecryptOnly,
            DataKeyState::DecryptOnly,
            DataKeyState::Active
        ]
    );
    let ids: std::collections::BTreeSet<_> = sealed.iter().map(|(_, s)| s.data_key_id).collect();
    assert_eq!(ids.len(), 3);

    // Age: a month later the next record goes under a new key.
    let before = keys.active_data_key_id().await.unwrap();
    h.clock.advance(Duration::days(31));
    let late = keys
        .seal("acme", "tok_late", b"4111111111111111")
        .await
        .unwrap();
    assert_ne!(late.data_key_id, before);

    // Every record still opens, from a fresh process too.
    let reader = h.manager(policy).await;
    for (id, s) in &sealed {
        assert!(reader.open("acme", id, s).await.is_ok());
    }
}

async fn rotate_kek_rewraps_every_data_key_and_keeps_records_readable(backend: Backend) {
    let h = Harness::new(backend).await;
    let policy = RotationPolicy {
        max_uses: 3,
        reservation: 1,
        ..RotationPolicy::default()
    };
    let keys = h.manager(policy).await;
    keys.record_initial_kek().await.unwrap();
    let mut sealed = Vec::new();
    for i in 0..7 {
        let id = format!("tok_{i}");
        sealed.push((
            id.clone(),
            keys.seal("acme", &id, b"5555555555554444").await.unwrap(),
        ));
    }

    let report = keys.rotate_kek().await.unwrap();
    assert_eq!(report.created, Some(KekVersion(2)));
    assert_eq!(report.active, KekVersion(2));
    assert_eq!(report.rewrapped, 3);
    assert_eq!(report.destroyed, vec![KekVersion(1)]);
    assert_eq!(h.hsm.kek_versions().await.unwrap(), vec![KekVersion(2)]);

    let status = keys.status().await.unwrap();
    assert!(status.data_keys.iter().all(|d| d.kek == KekVersion(2)));
    assert_eq!(status.keks[0].state, KekState::Destroyed);
    assert_eq!(status.keks[0].data_keys, 0);
    assert_eq!(status.keks[1].state, KekState::Active);
    keys.verify_keks().await.unwrap();

    // A restarted process unwraps under the new KEK only.
    let reader = h.manager(policy).await;
    reader.verify_keks().await.unwrap();
    for (id, s) in &sealed {
        assert_eq!(
            reader.open("acme", id, s).await.unwrap().expose_secret(),
            b"5555555555554444"
        );
    }
    // New data keys are wrapped under the new KEK.
    let new_id = reader.rotate_data_key().await.unwrap();
    assert_eq!(
        reader.wrapped_data_key(new_id).await.unwrap().kek,
        KekVersion(2)
    );
}

async fn an_interrupted_kek_rotation_is_finished_by_the_next_run(backend: Backend) {
    let h = Harness::new(backend).await;
    let keys = h.manager(RotationPolicy::default()).await;
    keys.record_initial_kek().await.unwrap();
    let sealed = keys
        .seal("acme", "tok_1", b"4111111111111111")
        .await
        .unwrap();

    // The first run stopped right after recording and activating KEK v2.
    let store = registry(&h.db).await;
    let v2 = h.hsm.create_kek().await.unwrap();
    store
        .insert_kek(&KekRecord {
            version: v2,
            label: v2.label(),
            check_value: h.hsm.kek_check_value(v2).await.unwrap(),
            state: KekState::Pending,
            created_at: at(5),
        })
        .await
        .unwrap();
    store.activate_kek(v2).await.unwrap();

    let report = keys.rotate_kek().await.unwrap();
    assert_eq!(report.created, None, "resumed, not a third KEK");
    assert_eq!(report.rewrapped, 1);
    assert_eq!(report.destroyed, vec![KekVersion(1)]);
    let reader = h.manager(RotationPolicy::default()).await;
    assert!(reader.open("acme", "tok_1", &sealed).await.is_ok());
}

async fn a_substituted_kek_is_refused_at_start_up(backend: Backend) {
    let h = Harness::new(backend).await;
    let keys = h.manager(RotationPolicy::default()).await;
    keys.record_initial_kek().await.unwrap();

    // Same database, another HSM token whose KEK v1 is a different key.
    let other = TestToken::new();
    let (impostor, _) = other.initialized().await.unwrap();
    let env = Environment::system();
    let swapped = KeyManager::new(
        Arc::new(impostor),
        registry(&h.db).await,
        h.audit.clone(),
        &env,
        RotationPolicy::default(),
    );
    assert_eq!(
        swapped.verify_keks().await.unwrap_err(),
        KeyError::KekMismatch
    );
    assert!(
        h.audit
            .events()
            .iter()
            .any(|e| matches!(e, KeyEvent::KekVerified { matched: false, .. }))
    );
}

/// The records table of the cards module, held in memory: a stand-in for a
/// port this layer does not own.
#[derive(Default)]
struct MemoryRecords {
    rows: std::sync::Mutex<std::collections::BTreeMap<(String, String), SealedRecord>>,
    /// Fault injection: `replace` fails after this many successes.
    crash_after: std::sync::Mutex<Option<usize>>,
}

#[async_trait::async_trait]
impl SealedRecords for MemoryRecords {
    async fn not_under(
        &self,
        key: DataKeyId,
        after: Option<&RecordCursor>,
        limit: usize,
    ) -> Result<Vec<StoredRecord>, KeyError> {
        let rows = self.rows.lock().unwrap();
        Ok(rows
            .iter()
            .filter(|((t, r), s)| {
                s.data_key_id != key
                    && after.is_none_or(|c| (t.as_str(), r.as_str()) > (&c.tenant, &c.record_id))
            })
            .take(limit)
            .map(|((t, r), s)| StoredRecord {
                tenant: t.clone(),
                record_id: r.clone(),
                sealed: s.clone(),
            })
            .collect())
    }

    async fn count_not_under(&self, key: DataKeyId) -> Result<u64, KeyError> {
        let rows = self.rows.lock().unwrap();
        Ok(rows.values().filter(|s| s.data_key_id != key).count() as u64)
    }

    async fn count_by_data_key(&self) -> Result<Vec<(DataKeyId, u64)>, KeyError> {
        let mut counts = std::collections::BTreeMap::new();
        for s in self.rows.lock().unwrap().values() {
            *counts.entry(s.data_key_id).or_insert(0u64) += 1;
        }
        Ok(counts.into_iter().collect())
    }

    async fn replace(&self, record: &StoredRecord, new: &SealedRecord) -> Result<bool, KeyError> {
        if let Some(left) = self.crash_after.lock().unwrap().as_mut() {
            if *left == 0 {
                return Err(KeyError::Storage("injected crash".into()));
            }
            *left -= 1;
        }
        let mut rows = self.rows.lock().unwrap();
        let slot = rows
            .get_mut(&(record.tenant.clone(), record.record_id.clone()))
            .unwrap();
        if *slot != record.sealed {
            return Ok(false);
        }
        *slot = new.clone();
        Ok(true)
    }
}

impl MemoryRecords {
    fn insert(&self, tenant: &str, id: &str, sealed: SealedRecord) {
        self.rows
            .lock()
            .unwrap()
            .insert((tenant.into(), id.into()), sealed);
    }
}

async fn rotate_kek_then_reencrypt_leaves_nothing_on_old_keys_and_resumes_after_a_crash(
    backend: Backend,
) {
    let h = Harness::new(backend).await;
    let keys = h.manager(RotationPolicy::default()).await;
    keys.record_initial_kek().await.unwrap();
    let records = MemoryRecords::default();
    for i in 0..25 {
        let tenant = if i % 2 == 0 { "acme" } else { "beta" };
        let id = format!("tok_{i:02}");
        let pan = format!("41111111111{i:05}");
        records.insert(
            tenant,
            &id,
            keys.seal(tenant, &id, pan.as_bytes()).await.unwrap(),
        );
    }
    let old_key = keys.active_data_key_id().await.unwrap();

    keys.rotate_kek().await.unwrap();
    let new_key = keys.rotate_data_key().await.unwrap();
    assert_ne!(old_key, new_key);

    // First run dies after 10 records.
    *records.crash_after.lock().unwrap() = Some(10);
    let mut seen = Vec::new();
    let err = keys
        .reencrypt(&records, 4, &mut |done, total| seen.push((done, total)))
        .await
        .unwrap_err();
    assert_eq!(err, KeyError::Storage("injected crash".into()));
    assert_eq!(records.count_not_under(new_key).await.unwrap(), 15);
    assert_eq!(seen.first(), Some(&(4, 25)));

    // The service keeps writing meanwhile.
    records.insert(
        "acme",
        "tok_new",
        keys.seal("acme", "tok_new", b"5555555555554444")
            .await
            .unwrap(),
    );

    *records.crash_after.lock().unwrap() = None;
    let mut last = (0, 0);
    let report = keys
        .reencrypt(&records, 4, &mut |done, total| last = (done, total))
        .await
        .unwrap();
    assert_eq!(report.moved, 15);
    assert_eq!(report.retired_keys, 1);
    assert_eq!(last, (15, 15));
    assert_eq!(records.count_not_under(new_key).await.unwrap(), 0);

    let status = keys.status().await.unwrap();
    let old = status.data_keys.iter().find(|d| d.id == old_key).unwrap();
    assert_eq!(old.state, DataKeyState::Retired);

    // Every record opens in a fresh process, all under the new key.
    let reader = h.manager(RotationPolicy::default()).await;
    let rows = records.rows.lock().unwrap().clone();
    for ((tenant, id), sealed) in rows {
        assert_eq!(sealed.data_key_id, new_key);
        let plain = reader.open(&tenant, &id, &sealed).await.unwrap();
        if let Some(i) = id.strip_prefix("tok_").and_then(|n| n.parse::<u32>().ok()) {
            assert_eq!(
                plain.expose_secret(),
                format!("41111111111{i:05}").as_bytes()
            );
        }
    }
}

/// FF1 keys: one per tenant, made in the HSM and stored only wrapped,
/// unwrapped once per process, rewrapped by `rotate-kek`.
async fn ff1_keys_are_per_tenant_never_stored_in_clear_and_survive_rotate_kek(backend: Backend) {
    use voltvault::ids::TenantId;
    use voltvault::tenants::{Tenant, TenantName};
    let h = Harness::new(backend).await;
    let store = h.db.store().await;
    let mut tenants = Vec::new();
    for name in ["acme", "beta"] {
        let tenant = Tenant {
            id: TenantId::generate(),
            name: TenantName::parse(name).unwrap(),
            created_at: at(0),
        };
        store.insert_tenant(&tenant).await.unwrap();
        tenants.push(tenant.id);
    }
    let keys = h.manager(RotationPolicy::default()).await;
    keys.record_initial_kek().await.unwrap();
    let a = keys.ff1_key(tenants[0]).await.unwrap();
    let b = keys.ff1_key(tenants[1]).await.unwrap();
    assert_ne!(a.expose_secret(), b.expose_secret());
    assert!(Arc::ptr_eq(&a, &keys.ff1_key(tenants[0]).await.unwrap()));
    // A tenant that does not exist gets no key.
    assert!(keys.ff1_key(TenantId::generate()).await.is_err());

    // Another process finds the stored key rather than making its own.
    let other = h.manager(RotationPolicy::default()).await;
    assert_eq!(
        other.ff1_key(tenants[0]).await.unwrap().expose_secret(),
        a.expose_secret()
    );
    let events = h.audit.events();
    let created = events
        .iter()
        .filter(|e| matches!(e, KeyEvent::Ff1KeyCreated { .. }))
        .count();
    assert_eq!(created, 2);
    assert!(events.contains(&KeyEvent::Ff1KeyLoaded { tenant: tenants[0] }));

    let dump = database_dump(&h.db).await;
    let registry = registry(&h.db).await;
    assert_eq!(registry.ff1_keys().await.unwrap().len(), 2);
    for key in [&a, &b] {
        let key = key.expose_secret();
        assert!(
            !contains_bytes(&dump, &key[..16]),
            "FF1 key stored in clear"
        );
        assert!(
            !contains_bytes(&dump, hex::encode(&key[..16]).as_bytes()),
            "FF1 key stored in clear (hex)"
        );
    }

    let report = keys.rotate_kek().await.unwrap();
    assert_eq!(report.ff1_rewrapped, 2);
    assert_eq!(report.destroyed, vec![KekVersion(1)]);
    assert!(
        registry
            .ff1_keys()
            .await
            .unwrap()
            .iter()
            .all(|k| k.wrapped.kek == KekVersion(2))
    );
    assert_eq!(keys.status().await.unwrap().ff1_keys, 2);
    let after = h.manager(RotationPolicy::default()).await;
    assert_eq!(
        after.ff1_key(tenants[1]).await.unwrap().expose_secret(),
        b.expose_secret()
    );
    assert!(h.audit.events().iter().any(|e| matches!(
        e,
        KeyEvent::Ff1KeyRewrapped {
            to: KekVersion(2),
            ..
        }
    )));
}

crate::on_both_databases!(
    ff1_keys_are_per_tenant_never_stored_in_clear_and_survive_rotate_kek,
    rotate_kek_then_reencrypt_leaves_nothing_on_old_keys_and_resumes_after_a_crash,
    the_kek_registry_keeps_one_active_kek,
    data_keys_rotate_reserve_and_rewrap,
    a_data_key_under_an_unrecorded_kek_is_refused,
    records_seal_and_open_and_no_data_key_is_stored_in_clear,
    data_keys_rotate_by_count_and_by_age,
    rotate_kek_rewraps_every_data_key_and_keeps_records_readable,
    an_interrupted_kek_rotation_is_finished_by_the_next_run,
    a_substituted_kek_is_refused_at_start_up,
);
