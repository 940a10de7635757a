//! Random format-preserving tokens: hidden digits drawn from the CSPRNG.

use zeroize::Zeroizing;

use super::{KeptDigits, TokenError, TokenValue};
use crate::card::{Pan, luhn};
use crate::clock::Random;

/// Draws of fresh random bytes before the source is deemed broken. A sound
/// CSPRNG exhausts this with probability far below 2^-1000.
const MAX_REFILLS: usize = 64;

/// Unbiased small integers from a `Random`, by rejection sampling.
struct Draws<'a> {
    random: &'a dyn Random,
    buf: Zeroizing<[u8; 32]>,
    pos: usize,
    refills: usize,
}

impl<'a> Draws<'a> {
    fn new(random: &'a dyn Random) -> Self {
        Self {
            random,
            buf: Zeroizing::new([0; 32]),
            pos: 32,
            refills: 0,
        }
    }

    /// A uniform value in `0..n`, for `1 <= n <= 256`.
    fn below(&mut self, n: u16) -> Result<u8, TokenError> {
        let n = n.clamp(1, 256);
        // Largest multiple of n that fits in a byte's range.
        let limit = 256 - (256 % n);
        loop {
            if self.pos == self.buf.len() {
                if self.refills == MAX_REFILLS {
                    return Err(TokenError::Random);
                }
                self.random.fill(self.buf.as_mut());
                self.refills += 1;
                self.pos = 0;
            }
            let b = u16::from(self.buf[self.pos]);
            self.pos += 1;
            if b < limit {
                return u8::try_from(b % n).map_err(|_| TokenError::Random);
            }
        }
    }
}

/// A fresh candidate token for `pan`. Each call draws anew: when the store
/// reports the token taken, call again.
pub fn random_token(
    pan: &Pan,
    keep: KeptDigits,
    random: &dyn Random,
) -> Result<TokenValue, TokenError> {
    let mut digits = Zeroizing::new(pan.expose_digits().as_bytes().to_vec());
    let hidden = keep.hidden(digits.len());
    let mut draws = Draws::new(random);
    for d in digits.get_mut(hidden.clone()).unwrap_or_default() {
        *d = b'0' + draws.below(10)?;
    }
    // Changing any one digit moves the Luhn sum, so one change suffices.
    // The token then fails Luhn and so differs from the PAN, which passes.
    if luhn::passes(&digits) {
        let span = u16::try_from(hidden.len()).map_err(|_| TokenError::Random)?;
        let at = hidden.start + usize::from(draws.below(span)?);
        let delta = 1 + draws.below(9)?;
        let d = digits.get_mut(at).ok_or(TokenError::Random)?;
        *d = b'0' + (*d - b'0' + delta) % 10;
    }
    TokenValue::from_digits(&digits)
}

/// An endless supply of fresh candidates for `pan`.
pub fn candidates<'a>(
    pan: &'a Pan,
    keep: KeptDigits,
    random: &'a dyn Random,
) -> impl Iterator<Item = Result<TokenValue, TokenError>> + 'a {
    std::iter::repeat_with(move || random_token(pan, keep, random))
}
