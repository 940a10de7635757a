//! Key-layer throughput and HSM calls per tokenize.
//!
//! `cargo bench --bench keys` measures; `cargo test --benches` runs it
//! briefly as a smoke test. Results are ratios on this machine, not
//! assertions.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::Instant;

use voltvault::clock::{Environment, OsRandom};
use voltvault::keys::testing::TestToken;
use voltvault::keys::{
    DataKey, DataKeyHandle, DataKeyId, KeyManager, KeyProvider, MemoryAuditSink, RecordCipher,
    RotationPolicy,
};
use voltvault::store::Store;
use voltvault::store::sqlite::SqliteStore;

fn per_second(n: u64, started: Instant) -> f64 {
    n as f64 / started.elapsed().as_secs_f64()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let measuring = std::env::args().any(|a| a == "--bench");
    let n: u64 = if measuring { 200_000 } else { 200 };
    let hsm_n: u64 = if measuring { 20_000 } else { 50 };

    // Software AES-256-GCM with a cached data key.
    let cipher = RecordCipher::new(Arc::new(OsRandom));
    let key = DataKeyHandle::new(DataKeyId(1), &DataKey::from_slice(&[7; 32]).unwrap());
    let pan = b"4111111111111111";
    let started = Instant::now();
    let mut last = None;
    for i in 0..n {
        last = Some(cipher.seal(&key, "acme", &format!("tok_{i}"), pan).unwrap());
    }
    println!(
        "seal (cached key)        {:>12.0} /s",
        per_second(n, started)
    );
    let sealed = last.unwrap();
    let id = format!("tok_{}", n - 1);
    let started = Instant::now();
    for _ in 0..n {
        cipher.open(&key, "acme", &id, &sealed).unwrap();
    }
    println!(
        "open (cached key)        {:>12.0} /s",
        per_second(n, started)
    );

    // The tokenize hot path on SoftHSM: fingerprint + seal through KeyManager.
    if !voltvault::keys::testing::softhsm_available() {
        println!("SoftHSM not installed; HSM measurements skipped");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::connect(
        &format!("sqlite://{}", dir.path().join("bench.db").display()),
        4,
    )
    .await
    .unwrap();
    store.migrate().await.unwrap();
    let token = TestToken::new();
    let (hsm, _) = token.initialized().await.unwrap();
    let hsm = Arc::new(hsm);
    let keys = KeyManager::new(
        hsm.clone(),
        Arc::new(store),
        Arc::new(MemoryAuditSink::default()),
        &Environment::system(),
        RotationPolicy::default(),
    );
    keys.record_initial_kek().await.unwrap();
    // Warm-up: sessions open, handles cached, data key unwrapped.
    for i in 0..10 {
        keys.fingerprint("acme", pan).await.unwrap();
        keys.seal("acme", &format!("warm_{i}"), pan).await.unwrap();
    }

    let before = hsm.hsm_operations();
    let started = Instant::now();
    for i in 0..hsm_n {
        keys.fingerprint("acme", pan).await.unwrap();
        keys.seal("acme", &format!("tok_{i}"), pan).await.unwrap();
    }
    let rate = per_second(hsm_n, started);
    let calls = hsm.hsm_operations() - before;
    println!("tokenize crypto (HMAC in HSM + seal) {rate:>8.0} /s");
    println!(
        "HSM operations per tokenize          {:>8.3}  (target: 1, the HMAC)",
        calls as f64 / hsm_n as f64
    );

    let started = Instant::now();
    for _ in 0..hsm_n {
        hsm.fingerprint("acme", pan).await.unwrap();
    }
    println!(
        "HSM HMAC alone                 {:>12.0} /s",
        per_second(hsm_n, started)
    );
    let dek = hsm
        .generate_data_key(voltvault::keys::KekVersion(1))
        .await
        .unwrap();
    let started = Instant::now();
    let unwraps = hsm_n / 10;
    for _ in 0..unwraps {
        hsm.unwrap_data_key(&dek.wrapped).await.unwrap();
    }
    println!(
        "HSM unwrap                     {:>12.0} /s",
        per_second(unwraps, started)
    );
}
