//! The primary account number. `Pan::parse` is the only way to make one.

use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use super::{Bin, CardBrand, CardError, Last4, MaskedPan, luhn};

pub const MIN_PAN_LEN: usize = 12;
pub const MAX_PAN_LEN: usize = 19;

/// A validated card number. Zeroized on drop; `Debug` shows brand and masked
/// form only; no `Display`, no `Serialize`: the digits come out through
/// `expose_digits` alone.
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct Pan {
    digits: String,
    #[zeroize(skip)]
    brand: CardBrand,
}

impl Pan {
    /// Parses a card number as typed or read: spaces and dashes are
    /// dropped, then it must be 12–19 digits, pass Luhn, and fall in a known
    /// brand's BIN range with a length that brand issues.
    pub fn parse(input: &str) -> Result<Self, CardError> {
        // Room for one digit too many, so the buffer never reallocates and
        // leaves a copy behind.
        let mut digits = Zeroizing::new(String::with_capacity(MAX_PAN_LEN + 1));
        for c in input.chars() {
            match c {
                '0'..='9' if digits.len() <= MAX_PAN_LEN => digits.push(c),
                // Keep counting past the limit without growing the buffer.
                '0'..='9' => return Err(CardError::NumberLength),
                ' ' | '-' => {}
                _ => return Err(CardError::NumberNotDigits),
            }
        }
        let len = digits.len();
        if !(MIN_PAN_LEN..=MAX_PAN_LEN).contains(&len) {
            return Err(CardError::NumberLength);
        }
        if !luhn::passes(digits.as_bytes()) {
            return Err(CardError::NumberLuhn);
        }
        let brand = CardBrand::detect(digits.as_bytes()).ok_or(CardError::NumberUnknownBrand)?;
        if !brand.allows_length(len) {
            return Err(CardError::NumberBrandLength(brand));
        }
        Ok(Self {
            digits: std::mem::take(&mut *digits),
            brand,
        })
    }

    pub fn brand(&self) -> CardBrand {
        self.brand
    }

    /// The number of digits.
    pub fn digit_count(&self) -> usize {
        self.digits.len()
    }

    pub fn last4(&self) -> Last4 {
        Last4::tail_of(&self.digits)
    }

    /// The BIN, when the number is long enough to show it (see `mask`).
    pub fn bin(&self) -> Option<Bin> {
        Bin::from_digits(&self.digits)
    }

    pub fn masked(&self) -> MaskedPan {
        MaskedPan::from_digits(&self.digits)
    }

    /// The digits, for encryption, fingerprinting and the acquirer call.
    pub fn expose_digits(&self) -> &str {
        &self.digits
    }
}

impl std::fmt::Debug for Pan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pan")
            .field("brand", &self.brand)
            .field("masked", &self.masked().as_str())
            .finish()
    }
}
