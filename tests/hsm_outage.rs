//! The HSM going away mid-run and coming back.
//!
//! Its own test binary because it finalizes the process-wide PKCS#11 module,
//! which would break every other test sharing it. SoftHSM cannot unplug a
//! token (deleting its files only makes objects vanish), so the outage is a
//! `C_Finalize` behind the provider's back — named here as the stand-in it
//! is: afterwards every call returns `CKR_CRYPTOKI_NOT_INITIALIZED`, the
//! same "device gone" path a pulled HSM takes — and the return is
//! `C_Initialize` again.

use std::path::Path;
use std::time::Duration;

use cryptoki::context::{CInitializeArgs, CInitializeFlags};
use voltvault::keys::pkcs11::module;
use voltvault::keys::testing::{SOFTHSM_MODULE, TestToken};
use voltvault::keys::{KeyError, KeyProvider};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_loss_gives_unavailable_then_recovers() {
    let token = TestToken::new();
    let mut cfg = token.config();
    cfg.backoff_initial = Duration::from_millis(50);
    cfg.backoff_max = Duration::from_millis(200);
    let hsm = voltvault::keys::pkcs11::Pkcs11Provider::connect(cfg)
        .await
        .unwrap();
    hsm.init_token_objects().await.unwrap();
    let before = hsm.fingerprint("acme", b"4111111111111111").await.unwrap();
    assert!(hsm.health().await);

    // Outage.
    let ctx = module(Path::new(SOFTHSM_MODULE)).unwrap();
    ctx.clone().finalize().unwrap();

    let err = hsm
        .fingerprint("acme", b"4111111111111111")
        .await
        .unwrap_err();
    assert_eq!(err, KeyError::Unavailable);
    assert_eq!(err.code(), "key_provider_unavailable");
    assert!(!hsm.health().await);
    // While down, nothing is produced for a caller to store.
    assert_eq!(
        hsm.generate_data_key(voltvault::keys::KekVersion(1))
            .await
            .unwrap_err(),
        KeyError::Unavailable
    );
    // Still down after the backoff elapses: the token is really gone.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!hsm.health().await);

    // The HSM returns; the provider reconnects on its own after the backoff.
    ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK))
        .unwrap();
    let mut recovered = false;
    for _ in 0..400 {
        if hsm.health().await {
            recovered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(recovered, "provider did not reconnect");
    assert_eq!(
        hsm.fingerprint("acme", b"4111111111111111").await.unwrap(),
        before
    );
    let dek = hsm
        .generate_data_key(voltvault::keys::KekVersion(1))
        .await
        .unwrap();
    assert_eq!(
        hsm.unwrap_data_key(&dek.wrapped)
            .await
            .unwrap()
            .expose_secret(),
        dek.key.expose_secret()
    );
}
