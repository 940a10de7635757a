//! The key layer against a real SoftHSM2 token (one fresh token per test).

use std::sync::Arc;

use cryptoki::object::{Attribute, AttributeType};

use super::pkcs11::{AUDIT_KEY_LABEL, FINGERPRINT_KEY_LABEL, Pkcs11Config, Pkcs11Provider};
use super::testing::TestToken;
use super::*;
use crate::clock::OsRandom;
use crate::secret::SecretString;

fn bool_attr(attrs: &[Attribute], want: AttributeType) -> bool {
    attrs
        .iter()
        .find_map(|a| match (a, want) {
            (Attribute::Sensitive(b), AttributeType::Sensitive)
            | (Attribute::Extractable(b), AttributeType::Extractable)
            | (Attribute::NeverExtractable(b), AttributeType::NeverExtractable)
            | (Attribute::AlwaysSensitive(b), AttributeType::AlwaysSensitive)
            | (Attribute::Token(b), AttributeType::Token)
            | (Attribute::Wrap(b), AttributeType::Wrap)
            | (Attribute::Unwrap(b), AttributeType::Unwrap)
            | (Attribute::Encrypt(b), AttributeType::Encrypt)
            | (Attribute::Decrypt(b), AttributeType::Decrypt)
            | (Attribute::Sign(b), AttributeType::Sign)
            | (Attribute::Verify(b), AttributeType::Verify)
            | (Attribute::Derive(b), AttributeType::Derive) => Some(*b),
            _ => None,
        })
        .unwrap_or_else(|| panic!("attribute {want:?} not returned"))
}

const FLAGS: &[AttributeType] = &[
    AttributeType::Token,
    AttributeType::Sensitive,
    AttributeType::AlwaysSensitive,
    AttributeType::Extractable,
    AttributeType::NeverExtractable,
    AttributeType::Wrap,
    AttributeType::Unwrap,
    AttributeType::Encrypt,
    AttributeType::Decrypt,
    AttributeType::Sign,
    AttributeType::Verify,
    AttributeType::Derive,
];

#[tokio::test]
async fn kek_and_hmac_key_attributes_read_back_from_the_token() {
    let token = TestToken::new();
    let (hsm, _) = token.initialized().await.unwrap();

    let kek = hsm
        .key_attributes(&KekVersion(1).label(), FLAGS)
        .await
        .unwrap();
    use AttributeType as T;
    for (t, want) in [
        (T::Token, true),
        (T::Sensitive, true),
        (T::AlwaysSensitive, true),
        (T::Extractable, false),
        (T::NeverExtractable, true),
        (T::Wrap, true),
        (T::Unwrap, true),
        (T::Encrypt, false),
        (T::Decrypt, false),
        (T::Sign, false),
        (T::Derive, false),
    ] {
        assert_eq!(bool_attr(&kek, t), want, "KEK {t:?}");
    }

    for label in [FINGERPRINT_KEY_LABEL, AUDIT_KEY_LABEL] {
        let mac = hsm.key_attributes(label, FLAGS).await.unwrap();
        for (t, want) in [
            (T::Token, true),
            (T::Sensitive, true),
            (T::Extractable, false),
            (T::NeverExtractable, true),
            (T::Sign, true),
            (T::Verify, false),
            (T::Encrypt, false),
            (T::Wrap, false),
            (T::Unwrap, false),
        ] {
            assert_eq!(bool_attr(&mac, t), want, "{label} {t:?}");
        }
    }

    // The value itself is never asked for.
    assert!(matches!(
        hsm.key_attributes(&KekVersion(1).label(), &[AttributeType::Value])
            .await,
        Err(KeyError::Misconfigured(_))
    ));
}

#[tokio::test]
async fn init_records_a_check_value_and_refuses_a_second_run() {
    let token = TestToken::new();
    let (hsm, kcv) = token.initialized().await.unwrap();
    assert_eq!(hsm.kek_check_value(KekVersion(1)).await.unwrap(), kcv);
    assert_ne!(kcv.0, [0, 0, 0]);
    verify_kek(&hsm, KekVersion(1), kcv).await.unwrap();
    let substituted = KeyCheckValue([kcv.0[0] ^ 1, kcv.0[1], kcv.0[2]]);
    assert_eq!(
        verify_kek(&hsm, KekVersion(1), substituted).await,
        Err(KeyError::KekMismatch)
    );
    assert!(matches!(
        hsm.init_token_objects().await,
        Err(KeyError::Misconfigured(m)) if m.contains("already")
    ));
}

#[tokio::test]
async fn data_keys_wrap_and_unwrap() {
    let token = TestToken::new();
    let (hsm, _) = token.initialized().await.unwrap();
    let v1 = KekVersion(1);

    let a = hsm.generate_data_key(v1).await.unwrap();
    let b = hsm.generate_data_key(v1).await.unwrap();
    assert_ne!(a.key.expose_secret(), b.key.expose_secret());
    assert_eq!(a.wrapped.kek, v1);
    // RFC 5649 output for a 32-byte key: 40 bytes, never the key itself.
    assert_eq!(a.wrapped.bytes.len(), 40);
    assert!(
        !a.wrapped
            .bytes
            .windows(8)
            .any(|w| w == &a.key.expose_secret()[..8])
    );

    let back = hsm.unwrap_data_key(&a.wrapped).await.unwrap();
    assert_eq!(back.expose_secret(), a.key.expose_secret());

    let mut tampered = a.wrapped.clone();
    tampered.bytes[5] ^= 0x01;
    assert_eq!(
        hsm.unwrap_data_key(&tampered).await.unwrap_err(),
        KeyError::IntegrityFailure
    );
    // Unknown KEK version.
    let orphan = WrappedDataKey {
        kek: KekVersion(9),
        bytes: a.wrapped.bytes.clone(),
    };
    assert_eq!(
        hsm.unwrap_data_key(&orphan).await.unwrap_err(),
        KeyError::NotFound("voltvault-kek-v9".to_owned())
    );
    // Unwrapping leaves no session objects behind that outlive the call:
    // the pool still works and the key count on the token is unchanged.
    assert_eq!(hsm.kek_versions().await.unwrap(), vec![v1]);
}

#[tokio::test]
async fn rotate_kek_rewraps_inside_the_hsm() {
    let token = TestToken::new();
    let (hsm, kcv1) = token.initialized().await.unwrap();
    let v1 = KekVersion(1);
    let dek = hsm.generate_data_key(v1).await.unwrap();

    let v2 = hsm.create_kek().await.unwrap();
    assert_eq!(v2, KekVersion(2));
    assert_eq!(hsm.kek_versions().await.unwrap(), vec![v1, v2]);
    let kcv2 = hsm.kek_check_value(v2).await.unwrap();
    assert_ne!(kcv1, kcv2);

    let rewrapped = hsm.rewrap_data_key(&dek.wrapped, v2).await.unwrap();
    assert_eq!(rewrapped.kek, v2);
    assert_ne!(rewrapped.bytes, dek.wrapped.bytes);
    let back = hsm.unwrap_data_key(&rewrapped).await.unwrap();
    assert_eq!(back.expose_secret(), dek.key.expose_secret());

    // Once rewrap is done the old KEK goes; the old wrapping is then dead.
    hsm.destroy_kek(v1).await.unwrap();
    assert_eq!(hsm.kek_versions().await.unwrap(), vec![v2]);
    assert!(matches!(
        hsm.unwrap_data_key(&dek.wrapped).await,
        Err(KeyError::NotFound(_))
    ));
    assert!(matches!(
        hsm.destroy_kek(v2).await,
        Err(KeyError::Misconfigured(_))
    ));
    let again = hsm.unwrap_data_key(&rewrapped).await.unwrap();
    assert_eq!(again.expose_secret(), dek.key.expose_secret());
}

#[tokio::test]
async fn fingerprints_are_deterministic_per_tenant_and_differ_across_tenants() {
    let token = TestToken::new();
    let (hsm, _) = token.initialized().await.unwrap();
    let pan = b"4111111111111111";
    let a1 = hsm.fingerprint("acme", pan).await.unwrap();
    let a2 = hsm.fingerprint("acme", pan).await.unwrap();
    let b = hsm.fingerprint("beta", pan).await.unwrap();
    assert_eq!(a1, a2);
    assert_ne!(a1, b);
    assert_ne!(
        a1,
        hsm.fingerprint("acme", b"4111111111111112").await.unwrap()
    );
    assert_ne!(hsm.audit_mac(pan).await.unwrap(), a1);

    // Another deployment (token) has another key.
    let other = TestToken::new();
    let (hsm2, _) = other.initialized().await.unwrap();
    assert_ne!(hsm2.fingerprint("acme", pan).await.unwrap(), a1);

    // Concurrent calls share the session pool and agree.
    let hsm = Arc::new(hsm);
    let mut tasks = Vec::new();
    for _ in 0..24 {
        let hsm = Arc::clone(&hsm);
        tasks.push(tokio::spawn(async move {
            hsm.fingerprint("acme", b"4111111111111111").await
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap().unwrap(), a1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_seal_and_open_through_the_cache_with_no_hsm_call_on_the_hot_path() {
    let token = TestToken::new();
    let (hsm, _) = token.initialized().await.unwrap();
    let hsm = Arc::new(hsm);
    let provider: Arc<dyn KeyProvider> = hsm.clone();
    let generated = provider.generate_data_key(KekVersion(1)).await.unwrap();
    let id = DataKeyId(41);

    let cipher = RecordCipher::new(Arc::new(OsRandom));
    let writer = DataKeyCache::new(provider.clone());
    let key = writer.insert(id, &generated.key);
    let sealed = cipher
        .seal(&key, "acme", "tok_abc", b"4111111111111111")
        .unwrap();

    // A second process-equivalent: empty cache, unwraps through the HSM once.
    let reader = DataKeyCache::new(provider.clone());
    let before = hsm.hsm_operations();
    let k = reader.get_or_unwrap(id, &generated.wrapped).await.unwrap();
    assert!(hsm.hsm_operations() > before);
    let warm = hsm.hsm_operations();
    for _ in 0..100 {
        let k = reader.get_or_unwrap(id, &generated.wrapped).await.unwrap();
        let opened = cipher.open(&k, "acme", "tok_abc", &sealed).unwrap();
        assert_eq!(opened.expose_secret(), b"4111111111111111");
        cipher
            .seal(&k, "acme", "tok_x", b"4000056655665556")
            .unwrap();
    }
    assert_eq!(hsm.hsm_operations(), warm, "AES-GCM made HSM calls");
    // A tokenize after warm-up: exactly one HSM operation, the HMAC.
    provider
        .fingerprint("acme", b"4111111111111111")
        .await
        .unwrap();
    provider
        .fingerprint("acme", b"4111111111111111")
        .await
        .unwrap();
    let warm = hsm.hsm_operations();
    provider
        .fingerprint("acme", b"5555555555554444")
        .await
        .unwrap();
    assert_eq!(hsm.hsm_operations(), warm + 1);

    // The same ciphertext moved to another row fails.
    assert!(matches!(
        cipher.open(&k, "acme", "tok_other", &sealed),
        Err(KeyError::IntegrityFailure)
    ));
    assert!(matches!(
        cipher.open(&k, "beta", "tok_abc", &sealed),
        Err(KeyError::IntegrityFailure)
    ));
}

#[tokio::test]
async fn wrong_pin_and_unknown_token_are_clear_errors() {
    let token = TestToken::new();
    let mut cfg = token.config();
    cfg.pin = SecretString::new("not-the-pin".to_owned());
    let err = Pkcs11Provider::connect(cfg).await.unwrap_err();
    assert!(
        matches!(&err, KeyError::Misconfigured(m) if m.contains("PinIncorrect")),
        "{err:?}"
    );
    assert!(!err.to_string().contains("not-the-pin"));

    let cfg = Pkcs11Config::new(
        super::testing::SOFTHSM_MODULE,
        "no-such-token",
        token.pin.clone(),
    );
    assert!(matches!(
        Pkcs11Provider::connect(cfg).await,
        Err(KeyError::NotFound(_))
    ));
}
