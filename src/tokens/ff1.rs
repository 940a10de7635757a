//! FF1 (NIST SP 800-38G) tokens: vaultless, reversible with the key.
//!
//! FF1 permutes all strings of the hidden digits, but a token must fail
//! Luhn while the PAN passes it. With the clear digits fixed, call P the
//! hidden-digit strings that make the whole number pass Luhn (exactly one
//! in ten). Tokenizing does two steps, each a bijection:
//!
//! 1. Cycle-walk FF1 on P: encrypt, and re-encrypt while the result is
//!    outside P. This permutes P (the walk from x stops at the next member
//!    of P on x's FF1 cycle, and walking back with decryption from there
//!    stops at x), whereas walking until the result *fails* Luhn would not
//!    be injective: two PANs on one cycle could reach the same output.
//! 2. Add 1 (mod 10) to the last hidden digit. One changed digit always
//!    moves the Luhn sum, so the token fails Luhn; subtracting 1 undoes it.
//!
//! Detokenizing inverts both, and refuses a token whose step-2 inverse is
//! not in P (it did not come from this scheme). About ten FF1 calls are
//! made per token on average.
//!
//! The tweak binds the tenant and the clear digits, so equal hidden digits
//! under another BIN or last four encrypt differently.

use aes::{Aes128, Aes192, Aes256};
use fpe::ff1::{FF1, FlexibleNumeralString};
use zeroize::{Zeroize, Zeroizing};

use super::{KeptDigits, TokenError, TokenValue};
use crate::card::{Pan, luhn};
use crate::secret::SecretBytes;

/// NIST SP 800-38G Rev. 1's minimum: radix^length of at least a million.
const MIN_DOMAIN: u64 = 1_000_000;

/// Bound on re-encryptions. Each step leaves P with probability 9/10, so a
/// genuine walk reaches this with probability about 0.9^1000 < 2^-150.
const MAX_WALK: usize = 1000;

enum Cipher {
    Aes128(FF1<Aes128>),
    Aes192(FF1<Aes192>),
    Aes256(FF1<Aes256>),
}

/// FF1 over numerals of one radix, with an AES key of any standard size.
/// The AES key schedule is zeroized on drop.
pub struct Ff1 {
    cipher: Cipher,
    radix: u32,
}

impl Ff1 {
    pub fn new(key: &[u8], radix: u32) -> Result<Self, TokenError> {
        if !(2..=65536).contains(&radix) {
            return Err(TokenError::Ff1Radix);
        }
        let bad_radix = |_| TokenError::Ff1Radix;
        let cipher = match key.len() {
            16 => Cipher::Aes128(FF1::new(key, radix).map_err(bad_radix)?),
            24 => Cipher::Aes192(FF1::new(key, radix).map_err(bad_radix)?),
            32 => Cipher::Aes256(FF1::new(key, radix).map_err(bad_radix)?),
            _ => return Err(TokenError::Ff1Key),
        };
        Ok(Self { cipher, radix })
    }

    pub fn encrypt(&self, tweak: &[u8], numerals: &[u16]) -> Result<Vec<u16>, TokenError> {
        self.run(tweak, numerals, true)
    }

    pub fn decrypt(&self, tweak: &[u8], numerals: &[u16]) -> Result<Vec<u16>, TokenError> {
        self.run(tweak, numerals, false)
    }

    fn run(&self, tweak: &[u8], numerals: &[u16], encrypt: bool) -> Result<Vec<u16>, TokenError> {
        self.check_domain(numerals)?;
        let input = FlexibleNumeralString::from(numerals.to_vec());
        let output = match (&self.cipher, encrypt) {
            (Cipher::Aes128(c), true) => c.encrypt(tweak, &input),
            (Cipher::Aes128(c), false) => c.decrypt(tweak, &input),
            (Cipher::Aes192(c), true) => c.encrypt(tweak, &input),
            (Cipher::Aes192(c), false) => c.decrypt(tweak, &input),
            (Cipher::Aes256(c), true) => c.encrypt(tweak, &input),
            (Cipher::Aes256(c), false) => c.decrypt(tweak, &input),
        };
        // The input holds hidden PAN digits; clear our copy of them. (The
        // crate's big-integer temporaries are beyond reach.)
        Vec::from(input).zeroize();
        output.map(Vec::from).map_err(|_| TokenError::Ff1Radix)
    }

    /// Refuses small domains here too, rather than trusting the crate's
    /// version to enforce the revised minimum.
    fn check_domain(&self, numerals: &[u16]) -> Result<(), TokenError> {
        if numerals.iter().any(|&n| u32::from(n) >= self.radix) {
            return Err(TokenError::Ff1Radix);
        }
        let mut domain: u64 = 1;
        for _ in numerals {
            domain = domain.saturating_mul(u64::from(self.radix));
            if domain >= MIN_DOMAIN {
                return Ok(());
            }
        }
        Err(TokenError::Ff1DomainTooSmall)
    }
}

/// The per-tenant part of the FF1 tweak, e.g. the tenant id's bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ff1Tweak(Vec<u8>);

impl Ff1Tweak {
    pub fn for_tenant(tenant: &[u8]) -> Self {
        Self(tenant.to_vec())
    }
}

/// Makes and reverses FF1 tokens of PANs under one key.
pub struct Ff1Tokenizer {
    ff1: Ff1,
}

impl Ff1Tokenizer {
    /// `key` is a 128-, 192- or 256-bit AES key from the key layer.
    pub fn new(key: &SecretBytes) -> Result<Self, TokenError> {
        Self::with_key(key.expose_secret())
    }

    /// As [`Self::new`], borrowing the key bytes (e.g. a cached key's).
    pub fn with_key(key: &[u8]) -> Result<Self, TokenError> {
        Ok(Self {
            ff1: Ff1::new(key, 10)?,
        })
    }

    pub fn tokenize(
        &self,
        pan: &Pan,
        keep: KeptDigits,
        tweak: &Ff1Tweak,
    ) -> Result<TokenValue, TokenError> {
        let mut digits = Zeroizing::new(pan.expose_digits().as_bytes().to_vec());
        let hidden = keep.hidden(digits.len());
        let t = full_tweak(tweak, &digits, hidden.clone());
        let mut x = Zeroizing::new(to_numerals(&digits, hidden.clone()));
        for _ in 0..MAX_WALK {
            *x = self.ff1.encrypt(&t, &x)?;
            write_numerals(&mut digits, hidden.clone(), &x)?;
            if luhn::passes(&digits) {
                shift_last_hidden(&mut digits, hidden.end, 1)?;
                return TokenValue::from_digits(&digits);
            }
        }
        Err(TokenError::Ff1CycleWalk)
    }

    /// The PAN behind `token`; `keep` and `tweak` must be those it was
    /// made with.
    pub fn detokenize(
        &self,
        token: &TokenValue,
        keep: KeptDigits,
        tweak: &Ff1Tweak,
    ) -> Result<Pan, TokenError> {
        let mut digits = Zeroizing::new(token.as_str().as_bytes().to_vec());
        let hidden = keep.hidden(digits.len());
        let t = full_tweak(tweak, &digits, hidden.clone());
        shift_last_hidden(&mut digits, hidden.end, 9)?;
        if !luhn::passes(&digits) {
            return Err(TokenError::NotOurs);
        }
        let mut x = Zeroizing::new(to_numerals(&digits, hidden.clone()));
        for _ in 0..MAX_WALK {
            *x = self.ff1.decrypt(&t, &x)?;
            write_numerals(&mut digits, hidden.clone(), &x)?;
            if luhn::passes(&digits) {
                let s = std::str::from_utf8(&digits).map_err(|_| TokenError::NotOurs)?;
                return Pan::parse(s).map_err(|_| TokenError::NotOurs);
            }
        }
        Err(TokenError::Ff1CycleWalk)
    }
}

/// version || length || hidden range || clear digits || tenant part. The
/// fixed-size fields come first so the encoding is unambiguous.
fn full_tweak(tweak: &Ff1Tweak, digits: &[u8], hidden: std::ops::Range<usize>) -> Vec<u8> {
    // Lengths are at most 19, so the casts cannot truncate.
    let mut t = vec![1, digits.len() as u8, hidden.start as u8, hidden.end as u8];
    t.extend_from_slice(digits.get(..hidden.start).unwrap_or_default());
    t.extend_from_slice(digits.get(hidden.end..).unwrap_or_default());
    t.extend_from_slice(&tweak.0);
    t
}

fn to_numerals(digits: &[u8], hidden: std::ops::Range<usize>) -> Vec<u16> {
    digits
        .get(hidden)
        .unwrap_or_default()
        .iter()
        .map(|d| u16::from(d - b'0'))
        .collect()
}

fn write_numerals(
    digits: &mut [u8],
    hidden: std::ops::Range<usize>,
    numerals: &[u16],
) -> Result<(), TokenError> {
    let slot = digits.get_mut(hidden).ok_or(TokenError::Ff1Radix)?;
    for (d, &n) in slot.iter_mut().zip(numerals) {
        *d = b'0' + u8::try_from(n).map_err(|_| TokenError::Ff1Radix)?;
    }
    Ok(())
}

/// Adds `by` (mod 10) to the digit just before `end`.
fn shift_last_hidden(digits: &mut [u8], end: usize, by: u8) -> Result<(), TokenError> {
    let i = end.checked_sub(1).ok_or(TokenError::Malformed)?;
    let d = digits.get_mut(i).ok_or(TokenError::Malformed)?;
    *d = b'0' + (*d - b'0' + by) % 10;
    Ok(())
}
