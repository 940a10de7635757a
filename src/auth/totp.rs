//! TOTP second factor (RFC 6238: SHA-1, 6 digits, 30-second steps, one step
//! of skew either way) through `totp-rs`. A code is accepted once: the
//! caller records the step it matched and refuses that step and older ones.

use totp_rs::{Algorithm, TOTP};
use zeroize::Zeroizing;

use crate::clock::Random;

pub const STEP_SECS: u64 = 30;
const DIGITS: usize = 6;
const ISSUER: &str = "voltvault";

/// A new 160-bit TOTP seed.
pub fn new_seed(random: &dyn Random) -> Zeroizing<Vec<u8>> {
    let mut seed = Zeroizing::new(vec![0u8; 20]);
    random.fill(seed.as_mut_slice());
    seed
}

fn totp(seed: &[u8], account: &str) -> Option<TOTP> {
    TOTP::new(
        Algorithm::SHA1,
        DIGITS,
        1,
        STEP_SECS,
        seed.to_vec(),
        Some(ISSUER.to_owned()),
        account.replace(':', "_"),
    )
    .ok()
}

/// The `otpauth://` URI an authenticator app scans.
pub fn provisioning_uri(seed: &[u8], account: &str) -> Option<Zeroizing<String>> {
    totp(seed, account).map(|t| Zeroizing::new(t.get_url()))
}

/// The code for the step containing `unix_secs` (tests and `voltvault dev`).
pub fn code_at(seed: &[u8], unix_secs: u64) -> Option<String> {
    totp(seed, "x").map(|t| t.generate(unix_secs))
}

/// The time step `code` belongs to, if it matches the previous, current or
/// next step. Every candidate is compared in constant time.
pub fn matching_step(seed: &[u8], code: &str, unix_secs: u64) -> Option<u64> {
    use subtle::ConstantTimeEq;
    let t = totp(seed, "x")?;
    let current = unix_secs / STEP_SECS;
    let mut found = None;
    for step in [current.saturating_sub(1), current, current + 1] {
        let candidate = Zeroizing::new(t.generate(step * STEP_SECS));
        let same = candidate.len() == code.len()
            && bool::from(candidate.as_bytes().ct_eq(code.as_bytes()));
        if same && found.is_none() {
            found = Some(step);
        }
    }
    found
}

/// The provisioning URI drawn as a QR code for a terminal.
pub fn terminal_qr(uri: &str) -> Option<String> {
    use qrcode::render::unicode::Dense1x2;
    let code = qrcode::QrCode::new(uri.as_bytes()).ok()?;
    Some(
        code.render::<Dense1x2>()
            .dark_color(Dense1x2::Light)
            .light_color(Dense1x2::Dark)
            .build(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_6238_sha1_vector() {
        // RFC 6238 appendix B, T = 59, SHA-1 seed "12345678901234567890": 94287082 (8 digits) → 287082.
        let seed = b"12345678901234567890";
        assert_eq!(code_at(seed, 59).unwrap(), "287082");
        assert_eq!(matching_step(seed, "287082", 59), Some(1));
        assert_eq!(
            matching_step(seed, "287082", 89),
            Some(1),
            "one step of skew"
        );
        assert_eq!(matching_step(seed, "287082", 200), None);
        assert_eq!(matching_step(seed, "28708", 59), None);
        let uri = provisioning_uri(seed, "alice").unwrap();
        assert!(
            uri.starts_with("otpauth://totp/voltvault:alice?"),
            "{}",
            uri.as_str()
        );
        assert!(terminal_qr(&uri).unwrap().contains('█'));
    }
}
