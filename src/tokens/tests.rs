use std::sync::Mutex;

use proptest::prelude::*;
use rand::{RngCore, SeedableRng, rngs::StdRng};

use super::ff1::{Ff1, Ff1Tokenizer, Ff1Tweak};
use super::random::{candidates, random_token};
use super::*;
use crate::card::test_cards::{KNOWN, valid_pan};
use crate::card::{Pan, luhn};
use crate::clock::{OsRandom, Random};
use crate::secret::SecretBytes;

/// A seeded generator, so failures replay.
struct Seeded(Mutex<StdRng>);

impl Seeded {
    fn new(seed: u64) -> Self {
        Self(Mutex::new(StdRng::seed_from_u64(seed)))
    }
}

impl Random for Seeded {
    fn fill(&self, dest: &mut [u8]) {
        self.0.lock().unwrap().fill_bytes(dest);
    }
}

/// A broken source that only ever returns one byte value.
struct Constant(u8);

impl Random for Constant {
    fn fill(&self, dest: &mut [u8]) {
        dest.fill(self.0);
    }
}

fn key(hex_key: &str) -> SecretBytes {
    SecretBytes::new(hex::decode(hex_key).unwrap())
}

const K128: &str = "2B7E151628AED2A6ABF7158809CF4F3C";
const K192: &str = "2B7E151628AED2A6ABF7158809CF4F3CEF4359D8D580AA4F";
const K256: &str = "2B7E151628AED2A6ABF7158809CF4F3CEF4359D8D580AA4F7F036D6F04FC6A94";

fn numerals(s: &str, radix: u32) -> Vec<u16> {
    s.chars()
        .map(|c| u16::try_from(c.to_digit(radix).unwrap()).unwrap())
        .collect()
}

#[test]
fn nist_ff1_samples() {
    // NIST's FF1samples.pdf (SP 800-38G examples), samples 1 to 9.
    let t10 = "39383736353433323130";
    let t36 = "3737373770717273373737";
    let pt10 = "0123456789";
    let pt36 = "0123456789abcdefghi";
    let samples = [
        (1, K128, 10, "", pt10, "2433477484"),
        (2, K128, 10, t10, pt10, "6124200773"),
        (3, K128, 36, t36, pt36, "a9tv40mll9kdu509eum"),
        (4, K192, 10, "", pt10, "2830668132"),
        (5, K192, 10, t10, pt10, "2496655549"),
        (6, K192, 36, t36, pt36, "xbj3kv35jrawxv32ysr"),
        (7, K256, 10, "", pt10, "6657667009"),
        (8, K256, 10, t10, pt10, "1001623463"),
        (9, K256, 36, t36, pt36, "xs8a0azh2avyalyzuwd"),
    ];
    for (n, k, radix, tweak, pt, ct) in samples {
        let ff1 = Ff1::new(key(k).expose_secret(), radix).unwrap();
        let tweak = hex::decode(tweak).unwrap();
        let got = ff1.encrypt(&tweak, &numerals(pt, radix)).unwrap();
        assert_eq!(got, numerals(ct, radix), "sample {n} encrypt");
        let back = ff1.decrypt(&tweak, &got).unwrap();
        assert_eq!(back, numerals(pt, radix), "sample {n} decrypt");
    }
}

#[test]
fn ff1_refuses_small_domains_bad_keys_and_radixes() {
    let ff1 = Ff1::new(key(K128).expose_secret(), 10).unwrap();
    assert_eq!(
        ff1.encrypt(&[], &[1; 5]),
        Err(TokenError::Ff1DomainTooSmall)
    );
    assert_eq!(
        ff1.decrypt(&[], &[1; 5]),
        Err(TokenError::Ff1DomainTooSmall)
    );
    assert!(ff1.encrypt(&[], &[1; 6]).is_ok());
    assert_eq!(
        ff1.encrypt(&[], &[1, 2, 3, 4, 5, 10]),
        Err(TokenError::Ff1Radix)
    );
    // radix 2 needs 20 numerals: 2^20 >= 10^6 > 2^19.
    let bits = Ff1::new(key(K128).expose_secret(), 2).unwrap();
    assert_eq!(
        bits.encrypt(&[], &[1; 19]),
        Err(TokenError::Ff1DomainTooSmall)
    );
    assert!(bits.encrypt(&[], &[1; 20]).is_ok());
    assert!(matches!(Ff1::new(&[0; 15], 10), Err(TokenError::Ff1Key)));
    assert!(matches!(Ff1::new(&[0; 33], 10), Err(TokenError::Ff1Key)));
    assert!(matches!(Ff1::new(&[0; 16], 1), Err(TokenError::Ff1Radix)));
    assert!(matches!(
        Ff1::new(&[0; 16], 65537),
        Err(TokenError::Ff1Radix)
    ));
}

#[test]
fn token_value_refuses_card_numbers() {
    for (number, _) in KNOWN {
        assert_eq!(TokenValue::parse(number), Err(TokenError::PassesLuhn));
        let json = format!("\"{number}\"");
        assert!(serde_json::from_str::<TokenValue>(&json).is_err());
    }
    for bad in [
        "",
        "12345678901",
        "41111111111111112222",
        "4111 1111 1111 1112",
        "411111111111111a",
    ] {
        assert_eq!(TokenValue::parse(bad), Err(TokenError::Malformed), "{bad}");
    }
    let t = TokenValue::parse("4111111111111112").unwrap();
    assert_eq!(t.last4().as_str(), "1112");
    assert_eq!(serde_json::to_string(&t).unwrap(), "\"4111111111111112\"");
    let back: TokenValue = serde_json::from_str("\"4111111111111112\"").unwrap();
    assert_eq!(back, t);
    // Errors never echo the value.
    let e = TokenValue::parse("4111111111111111").unwrap_err();
    assert!(!e.to_string().contains("1111"));
}

#[test]
fn formats_and_policies_serialize_as_documented() {
    assert_eq!(serde_json::to_string(&TokenFormat::Ff1).unwrap(), "\"ff1\"");
    assert_eq!(
        serde_json::to_string(&TokenFormat::default()).unwrap(),
        "\"random\""
    );
    assert_eq!(
        serde_json::to_string(&KeptDigits::BinAndLastFour).unwrap(),
        "\"bin_and_last_four\""
    );
}

#[test]
fn random_tokens_keep_bin_only_where_six_digits_stay_hidden() {
    let rng = Seeded::new(1);
    let visa = Pan::parse("4111111111111111").unwrap();
    for _ in 0..200 {
        let t = random_token(&visa, KeptDigits::BinAndLastFour, &rng).unwrap();
        assert!(t.as_str().starts_with("411111") && t.as_str().ends_with("1111"));
        assert!(!luhn::passes(t.as_str().as_bytes()));
    }
    let amex = Pan::parse("378282246310005").unwrap();
    let differing_heads = (0..50)
        .map(|_| random_token(&amex, KeptDigits::BinAndLastFour, &rng).unwrap())
        .filter(|t| !t.as_str().starts_with("378282"))
        .count();
    assert!(
        differing_heads > 40,
        "a 15-digit token keeps only the last four"
    );
}

#[test]
fn random_tokens_use_the_whole_digit_range() {
    let rng = Seeded::new(2);
    let pan = Pan::parse("5555555555554444").unwrap();
    let mut seen = [[false; 10]; 12];
    for t in candidates(&pan, KeptDigits::LastFour, &rng).take(500) {
        let t = t.unwrap();
        assert!(!luhn::passes(t.as_str().as_bytes()));
        for (i, d) in t.as_str().bytes().take(12).enumerate() {
            seen[i][usize::from(d - b'0')] = true;
        }
    }
    assert!(seen.iter().all(|pos| pos.iter().all(|&s| s)));
}

#[test]
fn random_tokens_differ_per_call() {
    let pan = Pan::parse("4111111111111111").unwrap();
    let tokens: std::collections::HashSet<String> =
        candidates(&pan, KeptDigits::LastFour, &OsRandom)
            .take(100)
            .map(|t| t.unwrap().to_string())
            .collect();
    assert_eq!(tokens.len(), 100);
}

#[test]
fn a_broken_random_source_is_an_error_not_a_hang() {
    let pan = Pan::parse("4111111111111111").unwrap();
    assert_eq!(
        random_token(&pan, KeptDigits::LastFour, &Constant(0xFF)),
        Err(TokenError::Random)
    );
    // All-zero output still yields a token that fails Luhn.
    let t = random_token(&pan, KeptDigits::LastFour, &Constant(0)).unwrap();
    assert!(!luhn::passes(t.as_str().as_bytes()));
}

#[test]
fn ff1_tokens_round_trip_and_depend_on_key_and_tenant() {
    let tok = Ff1Tokenizer::new(&key(K256)).unwrap();
    let other_key = Ff1Tokenizer::new(&key(K128)).unwrap();
    let tenant_a = Ff1Tweak::for_tenant(b"tenant-a");
    let tenant_b = Ff1Tweak::for_tenant(b"tenant-b");
    for (number, _) in KNOWN {
        let pan = Pan::parse(number).unwrap();
        for keep in [KeptDigits::LastFour, KeptDigits::BinAndLastFour] {
            let t = tok.tokenize(&pan, keep, &tenant_a).unwrap();
            // Deterministic for one key and tenant.
            assert_eq!(tok.tokenize(&pan, keep, &tenant_a).unwrap(), t);
            assert_ne!(tok.tokenize(&pan, keep, &tenant_b).unwrap(), t);
            assert_ne!(other_key.tokenize(&pan, keep, &tenant_a).unwrap(), t);
            let back = tok.detokenize(&t, keep, &tenant_a).unwrap();
            assert_eq!(back.expose_digits(), *number);
            assert_eq!(back.brand(), pan.brand());
        }
    }
}

#[test]
fn ff1_tokens_are_distinct_where_only_hidden_digits_differ() {
    // With BIN and last four fixed only six digits vary: the case where a
    // walk that stops at the first Luhn-failing value would collide.
    let tok = Ff1Tokenizer::new(&key(K128)).unwrap();
    let tweak = Ff1Tweak::for_tenant(b"t");
    let mut tokens = std::collections::HashSet::new();
    for k in 0..1000u32 {
        let number = (0..10)
            .map(|d| format!("411111{k:05}{d}1111"))
            .find(|n| luhn::passes(n.as_bytes()))
            .unwrap();
        let pan = Pan::parse(&number).unwrap();
        let t = tok
            .tokenize(&pan, KeptDigits::BinAndLastFour, &tweak)
            .unwrap();
        assert!(t.as_str().starts_with("411111") && t.as_str().ends_with("1111"));
        let back = tok
            .detokenize(&t, KeptDigits::BinAndLastFour, &tweak)
            .unwrap();
        assert_eq!(back.expose_digits(), number);
        assert!(tokens.insert(t.to_string()), "collision");
    }
}

#[test]
fn ff1_refuses_tokens_it_did_not_make() {
    let tok = Ff1Tokenizer::new(&key(K128)).unwrap();
    let tweak = Ff1Tweak::for_tenant(b"t");
    let pan = Pan::parse("4111111111111111").unwrap();
    let rng = Seeded::new(3);
    // FF1 tokens are one in nine of the Luhn-failing strings; the rest are
    // refused before any decryption. Those that are images decode to some
    // card, as with any vaultless scheme: the tweak binds the tenant.
    let refused = (0..900)
        .map(|_| random_token(&pan, KeptDigits::BinAndLastFour, &rng).unwrap())
        .filter(|t| {
            matches!(
                tok.detokenize(t, KeptDigits::BinAndLastFour, &tweak),
                Err(TokenError::NotOurs)
            )
        })
        .count();
    assert!((700..850).contains(&refused), "{refused}");
    assert!(matches!(
        Ff1Tokenizer::new(&SecretBytes::new(vec![0; 20])),
        Err(TokenError::Ff1Key)
    ));
}

proptest! {
    #[test]
    fn random_tokens_are_never_card_numbers(number in valid_pan(), seed in any::<u64>(), bin in any::<bool>()) {
        let pan = Pan::parse(&number).unwrap();
        let keep = if bin { KeptDigits::BinAndLastFour } else { KeptDigits::LastFour };
        let t = random_token(&pan, keep, &Seeded::new(seed)).unwrap();
        let s = t.as_str();
        prop_assert!(!luhn::passes(s.as_bytes()));
        prop_assert_eq!(s.len(), number.len());
        prop_assert_eq!(&s[s.len() - 4..], &number[number.len() - 4..]);
        prop_assert_ne!(s, number.as_str());
        if bin && number.len() >= 16 {
            prop_assert_eq!(&s[..6], &number[..6]);
        }
    }

    #[test]
    fn ff1_tokens_round_trip_and_are_never_card_numbers(number in valid_pan(), bin in any::<bool>(), tenant in any::<[u8; 4]>()) {
        let tok = Ff1Tokenizer::new(&key(K192)).unwrap();
        let tweak = Ff1Tweak::for_tenant(&tenant);
        let pan = Pan::parse(&number).unwrap();
        let keep = if bin { KeptDigits::BinAndLastFour } else { KeptDigits::LastFour };
        let t = tok.tokenize(&pan, keep, &tweak).unwrap();
        let s = t.as_str();
        prop_assert!(!luhn::passes(s.as_bytes()));
        prop_assert_eq!(s.len(), number.len());
        prop_assert_eq!(&s[s.len() - 4..], &number[number.len() - 4..]);
        prop_assert_ne!(s, number.as_str());
        if bin && number.len() >= 16 {
            prop_assert_eq!(&s[..6], &number[..6]);
        }
        let back = tok.detokenize(&t, keep, &tweak).unwrap();
        prop_assert_eq!(back.expose_digits(), number.as_str());
    }
}
