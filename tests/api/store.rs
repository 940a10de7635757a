//! The storage conformance suite: every test runs on SQLite and on PostgreSQL.

use chrono::{DateTime, Duration, Utc};
use voltvault::config::DatabaseBackend;
use voltvault::idempotency::{Begin, IdempotencyKey, IdempotencyScope};
use voltvault::ids::TenantId;
use voltvault::keys::{DataKeyId, SealedRecord};
use voltvault::store::StoreError;
use voltvault::store::tokens::{StoredToken, TokenPolicy};
use voltvault::tenants::{Tenant, TenantName};

use crate::helpers::{Backend, TestDb};

fn at(secs: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_764_000_000 + secs, 0).unwrap()
}

fn tenant(name: &str) -> Tenant {
    Tenant {
        id: TenantId::generate(),
        name: TenantName::parse(name).unwrap(),
        created_at: at(0),
    }
}

fn scope(tenant: TenantId, key: &str) -> IdempotencyScope {
    IdempotencyScope {
        tenant,
        principal: "app:driver-app".into(),
        key: IdempotencyKey::parse(key).unwrap(),
    }
}

async fn migrations_apply_once_and_report_the_backend(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    assert_eq!(
        store.migrate().await.unwrap(),
        0,
        "second run applies nothing"
    );
    store.ping().await.unwrap();
    let expected = match backend {
        Backend::Sqlite => DatabaseBackend::Sqlite,
        Backend::Postgres => DatabaseBackend::Postgres,
    };
    assert_eq!(store.backend(), expected);
}

async fn tenants_round_trip(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    let a = tenant("ionity-de");
    let b = tenant("fastned-nl");
    store.insert_tenant(&a).await.unwrap();
    store.insert_tenant(&b).await.unwrap();
    assert_eq!(store.tenant(a.id).await.unwrap(), a);
    assert_eq!(store.tenant_by_name(&b.name).await.unwrap(), b);
    let names: Vec<_> = store
        .tenants()
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.name.as_str().to_owned())
        .collect();
    assert_eq!(names, ["fastned-nl", "ionity-de"]);
}

async fn a_duplicate_tenant_name_conflicts_and_an_unknown_id_is_not_found(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    store.insert_tenant(&tenant("ionity-de")).await.unwrap();
    let err = store.insert_tenant(&tenant("ionity-de")).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    let err = store.tenant(TenantId::generate()).await.unwrap_err();
    assert!(matches!(err, StoreError::NotFound), "{err:?}");
    assert_eq!(store.tenants().await.unwrap().len(), 1);
}

async fn an_idempotency_key_is_claimed_completed_and_replayed(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    let t = tenant("ionity-de");
    store.insert_tenant(&t).await.unwrap();
    let s = scope(t.id, "req-1");
    let hash = [7u8; 32];

    assert_eq!(
        store.begin_idempotent(&s, &hash, at(1)).await.unwrap(),
        Begin::Fresh
    );
    assert_eq!(
        store.begin_idempotent(&s, &hash, at(2)).await.unwrap(),
        Begin::InProgress
    );
    assert_eq!(
        store.begin_idempotent(&s, &[8u8; 32], at(2)).await.unwrap(),
        Begin::Mismatch
    );
    store
        .complete_idempotent(&s, 201, br#"{"token":"4000001234560002"}"#, at(3))
        .await
        .unwrap();
    match store.begin_idempotent(&s, &hash, at(4)).await.unwrap() {
        Begin::Replay(stored) => {
            assert_eq!(stored.status, 201);
            assert_eq!(stored.body, br#"{"token":"4000001234560002"}"#);
            assert_eq!(stored.completed_at, at(3));
        }
        other => panic!("expected a replay, got {other:?}"),
    }
    // Completing twice is refused: the first response is the answer.
    assert!(matches!(
        store.complete_idempotent(&s, 500, b"{}", at(5)).await,
        Err(StoreError::NotFound)
    ));
}

async fn idempotency_keys_are_scoped_per_tenant_and_principal(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    let a = tenant("tenant-a");
    let b = tenant("tenant-b");
    store.insert_tenant(&a).await.unwrap();
    store.insert_tenant(&b).await.unwrap();
    let hash = [1u8; 32];
    assert_eq!(
        store
            .begin_idempotent(&scope(a.id, "k"), &hash, at(0))
            .await
            .unwrap(),
        Begin::Fresh
    );
    assert_eq!(
        store
            .begin_idempotent(&scope(b.id, "k"), &hash, at(0))
            .await
            .unwrap(),
        Begin::Fresh
    );
    let mut other_principal = scope(a.id, "k");
    other_principal.principal = "charger:cp-1".into();
    assert_eq!(
        store
            .begin_idempotent(&other_principal, &hash, at(0))
            .await
            .unwrap(),
        Begin::Fresh
    );
}

async fn an_abandoned_claim_can_be_retried(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    let t = tenant("ionity-de");
    store.insert_tenant(&t).await.unwrap();
    let s = scope(t.id, "retry-me");
    assert_eq!(
        store.begin_idempotent(&s, &[1; 32], at(0)).await.unwrap(),
        Begin::Fresh
    );
    store.abandon_idempotent(&s).await.unwrap();
    assert_eq!(
        store.begin_idempotent(&s, &[2; 32], at(1)).await.unwrap(),
        Begin::Fresh
    );
}

async fn concurrent_claims_of_one_key_have_one_winner(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    let t = tenant("ionity-de");
    store.insert_tenant(&t).await.unwrap();
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let store = store.clone();
        let s = scope(t.id, "race");
        tasks.push(tokio::spawn(async move {
            store.begin_idempotent(&s, &[3; 32], at(0)).await.unwrap()
        }));
    }
    let mut fresh = 0;
    for task in tasks {
        match task.await.unwrap() {
            Begin::Fresh => fresh += 1,
            Begin::InProgress => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(fresh, 1);
}

async fn an_idempotency_key_for_an_unknown_tenant_is_refused(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    let err = store
        .begin_idempotent(&scope(TenantId::generate(), "k"), &[0; 32], at(0))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict("reference")), "{err:?}");
}

async fn old_completed_keys_are_purged(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    let t = tenant("ionity-de");
    store.insert_tenant(&t).await.unwrap();
    for (key, done_at) in [("old", at(0)), ("new", at(0) + Duration::days(2))] {
        let s = scope(t.id, key);
        store.begin_idempotent(&s, &[0; 32], done_at).await.unwrap();
        store
            .complete_idempotent(&s, 200, b"{}", done_at)
            .await
            .unwrap();
    }
    let open = scope(t.id, "open");
    store
        .begin_idempotent(&open, &[0; 32], at(0))
        .await
        .unwrap();
    assert_eq!(
        store
            .purge_idempotent(at(0) + Duration::days(1))
            .await
            .unwrap(),
        1
    );
    assert!(matches!(
        store
            .begin_idempotent(&scope(t.id, "new"), &[0; 32], at(9))
            .await
            .unwrap(),
        Begin::Replay(_)
    ));
    assert_eq!(
        store
            .begin_idempotent(&open, &[0; 32], at(9))
            .await
            .unwrap(),
        Begin::InProgress
    );
}

fn stored_token(tenant: TenantId, token: &str, fingerprint: u8) -> StoredToken {
    StoredToken {
        tenant,
        token: token.into(),
        format: "random".into(),
        brand: "visa".into(),
        last4: "1111".into(),
        bin: None,
        exp_month: 12,
        exp_year: 2031,
        fingerprint: [fingerprint; 32],
        sealed: Some(SealedRecord {
            data_key_id: DataKeyId(1),
            format_version: 1,
            nonce: [9; 12],
            ciphertext: vec![0xAB; 40],
        }),
        metadata: Some(serde_json::json!({"charger": "DE*ABC*E123"})),
        created_at: at(0),
        expires_at: None,
        deleted_at: None,
    }
}

async fn tokens_round_trip_and_are_unique_per_tenant(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    let a = tenant("tenant-a");
    let b = tenant("tenant-b");
    store.insert_tenant(&a).await.unwrap();
    store.insert_tenant(&b).await.unwrap();
    let t = stored_token(a.id, "4000009876541111", 1);
    store.insert_token(&t).await.unwrap();
    assert_eq!(store.token(a.id, &t.token).await.unwrap(), t);
    // The same value in the same tenant clashes; in another tenant it does not.
    assert!(matches!(
        store.insert_token(&stored_token(a.id, &t.token, 2)).await,
        Err(StoreError::Conflict(_))
    ));
    store
        .insert_token(&stored_token(b.id, &t.token, 2))
        .await
        .unwrap();
    // No read crosses tenants.
    assert_eq!(
        store.token(b.id, &t.token).await.unwrap().fingerprint,
        [2; 32]
    );
    assert!(matches!(
        store.token(a.id, "4000000000001111").await,
        Err(StoreError::NotFound)
    ));
}

async fn fingerprint_lookup_stays_in_its_tenant_and_skips_deleted(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    let a = tenant("tenant-a");
    let b = tenant("tenant-b");
    store.insert_tenant(&a).await.unwrap();
    store.insert_tenant(&b).await.unwrap();
    store
        .insert_token(&stored_token(a.id, "4000001111111111", 7))
        .await
        .unwrap();
    let found = store.token_by_fingerprint(a.id, &[7; 32]).await.unwrap();
    assert_eq!(found.unwrap().token, "4000001111111111");
    assert!(
        store
            .token_by_fingerprint(b.id, &[7; 32])
            .await
            .unwrap()
            .is_none()
    );
    store
        .shred_token(a.id, "4000001111111111", at(5))
        .await
        .unwrap();
    assert!(
        store
            .token_by_fingerprint(a.id, &[7; 32])
            .await
            .unwrap()
            .is_none()
    );
}

async fn shredding_erases_the_sealed_record_and_keeps_a_tombstone(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    let a = tenant("tenant-a");
    store.insert_tenant(&a).await.unwrap();
    let t = stored_token(a.id, "4000002222221111", 3);
    store.insert_token(&t).await.unwrap();
    assert!(store.shred_token(a.id, &t.token, at(10)).await.unwrap());
    assert!(!store.shred_token(a.id, &t.token, at(11)).await.unwrap());
    let tomb = store.token(a.id, &t.token).await.unwrap();
    assert_eq!(tomb.sealed, None);
    assert_eq!(tomb.metadata, None);
    assert_eq!(tomb.deleted_at, Some(at(10)));
    assert_eq!(tomb.last4, "1111");
}

async fn expired_tokens_are_shredded_in_batches(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    let a = tenant("tenant-a");
    store.insert_tenant(&a).await.unwrap();
    for (i, expiry) in [
        Some(at(10)),
        Some(at(20)),
        Some(at(30)),
        Some(at(1000)),
        None,
    ]
    .into_iter()
    .enumerate()
    {
        let mut t = stored_token(a.id, &format!("400000333333{i}111"), i as u8);
        t.expires_at = expiry;
        store.insert_token(&t).await.unwrap();
    }
    assert_eq!(store.shred_expired_tokens(at(100), 2).await.unwrap(), 2);
    assert_eq!(store.shred_expired_tokens(at(100), 2).await.unwrap(), 1);
    assert_eq!(store.shred_expired_tokens(at(100), 2).await.unwrap(), 0);
    assert!(
        store
            .token(a.id, "4000003333333111")
            .await
            .unwrap()
            .sealed
            .is_some()
    );
    assert!(
        store
            .token(a.id, "4000003333334111")
            .await
            .unwrap()
            .sealed
            .is_some()
    );
}

async fn token_policies_default_and_update(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    let a = tenant("tenant-a");
    store.insert_tenant(&a).await.unwrap();
    assert_eq!(
        store.token_policy(a.id).await.unwrap(),
        TokenPolicy::default()
    );
    let policy = TokenPolicy {
        keep_bin: true,
        deterministic: true,
    };
    store.set_token_policy(a.id, policy).await.unwrap();
    assert_eq!(store.token_policy(a.id).await.unwrap(), policy);
    store
        .set_token_policy(a.id, TokenPolicy::default())
        .await
        .unwrap();
    assert_eq!(
        store.token_policy(a.id).await.unwrap(),
        TokenPolicy::default()
    );
}

crate::on_both_databases!(
    migrations_apply_once_and_report_the_backend,
    tenants_round_trip,
    a_duplicate_tenant_name_conflicts_and_an_unknown_id_is_not_found,
    an_idempotency_key_is_claimed_completed_and_replayed,
    idempotency_keys_are_scoped_per_tenant_and_principal,
    an_abandoned_claim_can_be_retried,
    concurrent_claims_of_one_key_have_one_winner,
    an_idempotency_key_for_an_unknown_tenant_is_refused,
    old_completed_keys_are_purged,
    tokens_round_trip_and_are_unique_per_tenant,
    fingerprint_lookup_stays_in_its_tenant_and_skips_deleted,
    shredding_erases_the_sealed_record_and_keeps_a_tombstone,
    expired_tokens_are_shredded_in_batches,
    token_policies_default_and_update,
);
