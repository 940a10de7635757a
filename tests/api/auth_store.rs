//! The auth storage conformance suite, on SQLite and on PostgreSQL.

use chrono::{DateTime, Duration, Utc};
use voltvault::auth::Role;
use voltvault::auth::records::{
    ApiKeyRecord, ChallengeRecord, ChargerCaRecord, SessionRecord, UserRecord,
};
use voltvault::auth::tokens::ApiKeyId;
use voltvault::clock::OsRandom;
use voltvault::ids::{ChargerCaId, TenantId, UserId};
use voltvault::store::{Store, StoreError};
use voltvault::tenants::{Tenant, TenantName};

use crate::helpers::{Backend, TestDb};

fn at(secs: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_764_000_000 + secs, 0).unwrap()
}

async fn tenant(store: &dyn Store, name: &str) -> TenantId {
    let t = Tenant {
        id: TenantId::generate(),
        name: TenantName::parse(name).unwrap(),
        created_at: at(0),
    };
    store.insert_tenant(&t).await.unwrap();
    t.id
}

fn key(tenant: TenantId) -> ApiKeyRecord {
    ApiKeyRecord {
        id: ApiKeyId::generate(&OsRandom),
        tenant,
        name: "driver app".into(),
        role: Role::App,
        secret_hash: vec![7; 32],
        created_at: at(0),
        expires_at: Some(at(3600)),
        revoked_at: None,
        last_used_at: None,
    }
}

fn user(tenant: TenantId, name: &str) -> UserRecord {
    UserRecord {
        id: UserId::generate(),
        tenant,
        username: name.into(),
        role: Role::Operator,
        password_hash: format!("$argon2id$v=19$m=19456,t=2,p=1$salt${name}"),
        totp_sealed: vec![1, 2, 3],
        totp_last_step: 0,
        failed_attempts: 0,
        locked_until: None,
        disabled_at: None,
        created_at: at(0),
        last_login_at: None,
    }
}

async fn api_keys_round_trip_and_stay_in_their_tenant(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    let a = tenant(store.as_ref(), "tenant-a").await;
    let b = tenant(store.as_ref(), "tenant-b").await;
    let k = key(a);
    store.insert_api_key(&k).await.unwrap();
    assert_eq!(store.api_key(&k.id).await.unwrap(), k);
    assert_eq!(store.api_keys(a).await.unwrap(), vec![k.clone()]);
    assert!(store.api_keys(b).await.unwrap().is_empty());
    assert!(matches!(
        store.revoke_api_key(b, &k.id, at(5)).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        store.replace_api_key_secret(b, &k.id, &[9; 32]).await,
        Err(StoreError::NotFound)
    ));
    store
        .replace_api_key_secret(a, &k.id, &[9; 32])
        .await
        .unwrap();
    store
        .touch_api_key(&k.id, at(10), Duration::minutes(1))
        .await
        .unwrap();
    store
        .touch_api_key(&k.id, at(20), Duration::minutes(1))
        .await
        .unwrap();
    let got = store.api_key(&k.id).await.unwrap();
    assert_eq!(got.secret_hash, vec![9; 32]);
    assert_eq!(got.last_used_at, Some(at(10)), "touches are coarse");
    store.revoke_api_key(a, &k.id, at(30)).await.unwrap();
    store.revoke_api_key(a, &k.id, at(40)).await.unwrap();
    assert_eq!(store.api_key(&k.id).await.unwrap().revoked_at, Some(at(30)));
    assert!(matches!(
        store.replace_api_key_secret(a, &k.id, &[1; 32]).await,
        Err(StoreError::NotFound)
    ));
}

async fn users_count_failures_lock_and_accept_each_totp_step_once(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    let a = tenant(store.as_ref(), "tenant-a").await;
    let u = user(a, "alice");
    store.insert_user(&u).await.unwrap();
    assert!(matches!(
        store.insert_user(&user(a, "alice")).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(store.user_by_username("alice").await.unwrap(), u);
    assert_eq!(store.add_login_failure(u.id).await.unwrap(), 1);
    assert_eq!(store.add_login_failure(u.id).await.unwrap(), 2);
    store.lock_user(u.id, at(1800)).await.unwrap();
    let locked = store.user(u.id).await.unwrap();
    assert_eq!(
        (locked.failed_attempts, locked.locked_until),
        (0, Some(at(1800)))
    );
    store.record_login(u.id, at(2000)).await.unwrap();
    let back = store.user(u.id).await.unwrap();
    assert_eq!(
        (back.locked_until, back.last_login_at),
        (None, Some(at(2000)))
    );

    assert!(store.claim_totp_step(u.id, 100).await.unwrap());
    assert!(
        !store.claim_totp_step(u.id, 100).await.unwrap(),
        "a step is accepted once"
    );
    assert!(
        !store.claim_totp_step(u.id, 99).await.unwrap(),
        "older steps too"
    );
    assert!(store.claim_totp_step(u.id, 101).await.unwrap());

    // Password history, newest first; a reset ends sessions and lifts disable.
    store.insert_session(&session(u.id, 1)).await.unwrap();
    store.disable_user(Some(a), u.id, at(3000)).await.unwrap();
    assert!(matches!(
        store.session(&[1; 32]).await,
        Err(StoreError::NotFound)
    ));
    let b = tenant(store.as_ref(), "tenant-b").await;
    assert!(matches!(
        store.disable_user(Some(b), u.id, at(1)).await,
        Err(StoreError::NotFound)
    ));
    store
        .reset_user_credentials(a, u.id, "second", &[4], at(4000))
        .await
        .unwrap();
    store
        .reset_user_credentials(a, u.id, "third", &[5], at(5000))
        .await
        .unwrap();
    assert_eq!(
        store.password_history(u.id, 4).await.unwrap(),
        [
            "third".to_owned(),
            "second".to_owned(),
            u.password_hash.clone()
        ]
    );
    let reset = store.user(u.id).await.unwrap();
    assert_eq!(
        (
            reset.disabled_at,
            reset.totp_last_step,
            reset.totp_sealed.clone()
        ),
        (None, 0, vec![5])
    );
}

async fn idle_users_are_disabled_once(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    let a = tenant(store.as_ref(), "tenant-a").await;
    let (old, used) = (user(a, "old"), user(a, "used"));
    store.insert_user(&old).await.unwrap();
    store.insert_user(&used).await.unwrap();
    store.record_login(used.id, at(100)).await.unwrap();
    let disabled = store.disable_idle_users(at(50), at(200)).await.unwrap();
    assert_eq!(disabled, vec![(a, "old".to_owned())]);
    assert!(
        store
            .disable_idle_users(at(50), at(300))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(store.user(old.id).await.unwrap().disabled_at, Some(at(200)));
    assert_eq!(store.user(used.id).await.unwrap().disabled_at, None);
}

fn session(user: UserId, tag: u8) -> SessionRecord {
    SessionRecord {
        token_hash: vec![tag; 32],
        user,
        created_at: at(0),
        last_seen_at: at(0),
        expires_at: at(8 * 3600),
        second_factor_at: at(0),
    }
}

async fn challenges_and_sessions_round_trip(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    let a = tenant(store.as_ref(), "tenant-a").await;
    let u = user(a, "bob");
    store.insert_user(&u).await.unwrap();
    let c = ChallengeRecord {
        challenge_hash: vec![3; 32],
        user: u.id,
        expires_at: at(300),
    };
    store.insert_challenge(&c).await.unwrap();
    assert_eq!(store.challenge(&c.challenge_hash).await.unwrap(), c);
    store.delete_challenge(&c.challenge_hash).await.unwrap();
    assert!(matches!(
        store.challenge(&c.challenge_hash).await,
        Err(StoreError::NotFound)
    ));
    // Created later than its user, so the two `created_at` cannot be confused.
    let s = SessionRecord {
        created_at: at(30),
        ..session(u.id, 2)
    };
    store.insert_session(&s).await.unwrap();
    store.touch_session(&s.token_hash, at(60)).await.unwrap();
    assert_eq!(
        store.session(&s.token_hash).await.unwrap().last_seen_at,
        at(60)
    );
    let (joined, owner) = store.session_with_user(&s.token_hash).await.unwrap();
    assert_eq!(
        joined,
        SessionRecord {
            last_seen_at: at(60),
            ..s.clone()
        }
    );
    assert!(owner == store.user(u.id).await.unwrap());
    assert_eq!(owner.created_at, at(0));
    store.delete_session(&s.token_hash).await.unwrap();
    assert!(matches!(
        store.session(&s.token_hash).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        store.session_with_user(&s.token_hash).await,
        Err(StoreError::NotFound)
    ));
}

async fn charger_cas_revocations_and_sightings(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    let a = tenant(store.as_ref(), "tenant-a").await;
    let b = tenant(store.as_ref(), "tenant-b").await;
    let ca = ChargerCaRecord {
        id: ChargerCaId::generate(),
        tenant: a,
        name: "a chargers".into(),
        cert_der: vec![0x30, 0x82],
        sha256_hex: "ab".repeat(32),
        created_at: at(0),
        revoked_at: None,
    };
    store.insert_charger_ca(&ca).await.unwrap();
    let mut same = ca.clone();
    same.id = ChargerCaId::generate();
    assert!(matches!(
        store.insert_charger_ca(&same).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(store.active_charger_cas().await.unwrap(), vec![ca.clone()]);
    assert_eq!(store.charger_cas(a).await.unwrap(), vec![ca.clone()]);
    assert!(store.charger_cas(b).await.unwrap().is_empty());
    store
        .revoke_charger_certificate(a, ca.id, "1f", at(1))
        .await
        .unwrap();
    store
        .revoke_charger_certificate(a, ca.id, "1f", at(2))
        .await
        .unwrap();
    assert!(matches!(
        store
            .revoke_charger_certificate(b, ca.id, "20", at(1))
            .await,
        Err(StoreError::NotFound)
    ));
    assert_eq!(
        store.revoked_charger_certificates().await.unwrap(),
        vec![(ca.id, "1f".to_owned())]
    );
    store.touch_charger(a, ca.id, "cp-1", at(5)).await.unwrap();
    store.touch_charger(a, ca.id, "cp-1", at(9)).await.unwrap();
    let seen = store.chargers_seen(a).await.unwrap();
    assert_eq!(
        seen,
        vec![("cp-1".to_owned(), at(5))],
        "at most once a minute"
    );
    store.touch_charger(a, ca.id, "cp-1", at(90)).await.unwrap();
    let seen = store.chargers_seen(a).await.unwrap();
    assert_eq!(seen, vec![("cp-1".to_owned(), at(90))]);
    assert!(store.chargers_seen(b).await.unwrap().is_empty());

    store
        .set_charger_crl(a, ca.id, b"first", at(1))
        .await
        .unwrap();
    store
        .set_charger_crl(a, ca.id, b"second", at(2))
        .await
        .unwrap();
    assert!(matches!(
        store.set_charger_crl(b, ca.id, b"theirs", at(3)).await,
        Err(StoreError::NotFound)
    ));
    assert_eq!(
        store.charger_crls().await.unwrap(),
        vec![(ca.id, b"second".to_vec())]
    );
}

crate::on_both_databases!(
    api_keys_round_trip_and_stay_in_their_tenant,
    users_count_failures_lock_and_accept_each_totp_step_once,
    challenges_and_sessions_round_trip,
    charger_cas_revocations_and_sightings,
    idle_users_are_disabled_once,
);
