//! `Voltvault-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256>` over
//! `"<t>.<body>"`, keyed with the endpoint's secret (its text, as shown on
//! creation). The timestamp inside the MAC lets a receiver refuse replays
//! older than a few minutes.

use ring::hmac;

pub const SIGNATURE_HEADER: &str = "voltvault-signature";
pub const EVENT_HEADER: &str = "voltvault-event";
pub const DELIVERY_HEADER: &str = "voltvault-delivery";

/// The header value for `body` sent at `timestamp`.
pub fn sign(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
    let mut ctx = hmac::Context::with_key(&key);
    ctx.update(timestamp.to_string().as_bytes());
    ctx.update(b".");
    ctx.update(body);
    format!("t={timestamp},v1={}", hex::encode(ctx.sign().as_ref()))
}

/// Checks a header value (what a receiver does), in constant time.
/// Returns the signed timestamp.
pub fn verify(secret: &[u8], header: &str, body: &[u8]) -> Option<i64> {
    let mut timestamp = None;
    let mut mac = None;
    for part in header.split(',') {
        match part.split_once('=') {
            Some(("t", t)) => timestamp = t.parse::<i64>().ok(),
            Some(("v1", v)) => mac = hex::decode(v).ok(),
            _ => {}
        }
    }
    let (timestamp, mac) = (timestamp?, mac?);
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
    let mut signed = timestamp.to_string().into_bytes();
    signed.push(b'.');
    signed.extend_from_slice(body);
    hmac::verify(&key, &signed, &mac).ok()?;
    Some(timestamp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_verifies_and_a_changed_body_or_secret_does_not() {
        let header = sign(b"whsec_test", 1_764_000_000, b"{\"a\":1}");
        assert!(header.starts_with("t=1764000000,v1="));
        assert_eq!(
            verify(b"whsec_test", &header, b"{\"a\":1}"),
            Some(1_764_000_000)
        );
        assert_eq!(verify(b"whsec_test", &header, b"{\"a\":2}"), None);
        assert_eq!(verify(b"whsec_other", &header, b"{\"a\":1}"), None);
        assert_eq!(verify(b"whsec_test", "v1=00", b"{}"), None);
    }

    /// The same MAC from a second implementation (RustCrypto), over "t.body".
    #[test]
    fn the_mac_is_hmac_sha256_over_timestamp_dot_body() {
        use ::hmac::Mac;
        let mut mac = ::hmac::Hmac::<sha2::Sha256>::new_from_slice(b"whsec_test").unwrap();
        mac.update(b"1764000000.{\"a\":1}");
        let expected = hex::encode(mac.finalize().into_bytes());
        let header = sign(b"whsec_test", 1_764_000_000, b"{\"a\":1}");
        assert_eq!(header, format!("t=1764000000,v1={expected}"));
    }
}
