//! The card verification code. It may be held only until the first
//! authorization (PCI DSS 3.3.1); see `cvc_vault`.

use zeroize::{Zeroize, ZeroizeOnDrop};

use super::{CardBrand, CardError};

/// A CVC of the length its brand uses. Zeroized on drop, `[REDACTED]`
/// under `Debug`, no `Display`, no `Serialize`.
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct Cvc(String);

impl Cvc {
    pub fn parse(input: &str, brand: CardBrand) -> Result<Self, CardError> {
        let input = input.trim();
        if !input.bytes().all(|b| b.is_ascii_digit()) {
            return Err(CardError::CvcNotDigits);
        }
        if input.len() != brand.cvc_len() {
            return Err(CardError::CvcLength(brand.cvc_len()));
        }
        Ok(Self(input.to_owned()))
    }

    /// Restores a CVC this crate validated and sealed earlier.
    pub(super) fn from_sealed(digits: &str) -> Self {
        Self(digits.to_owned())
    }

    /// The digits, for the authorization request only.
    pub fn expose_digits(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Cvc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Cvc([REDACTED])")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_follow_the_brand() {
        assert_eq!(
            Cvc::parse("123", CardBrand::Visa).unwrap().expose_digits(),
            "123"
        );
        assert_eq!(
            Cvc::parse(" 1234 ", CardBrand::Amex)
                .unwrap()
                .expose_digits(),
            "1234"
        );
        for (input, brand, want) in [
            ("1234", CardBrand::Visa, CardError::CvcLength(3)),
            ("12", CardBrand::Mastercard, CardError::CvcLength(3)),
            ("", CardBrand::Visa, CardError::CvcLength(3)),
            ("123", CardBrand::Amex, CardError::CvcLength(4)),
            ("12a", CardBrand::Visa, CardError::CvcNotDigits),
            ("１２３", CardBrand::Visa, CardError::CvcNotDigits),
        ] {
            let err = Cvc::parse(input, brand).unwrap_err();
            assert_eq!(err, want, "{input:?}");
            assert_eq!(err.field(), "cvc");
            let digits: String = input.chars().filter(char::is_ascii_digit).collect();
            if digits.len() >= 2 {
                assert!(!err.to_string().contains(&digits));
                assert!(!format!("{err:?}").contains(&digits));
            }
        }
    }

    #[test]
    fn debug_is_redacted_and_zeroize_clears() {
        let mut cvc = Cvc::parse("9876", CardBrand::Amex).unwrap();
        let dbg = format!("{cvc:?}");
        assert!(!dbg.contains("9876"));
        assert!(dbg.contains("REDACTED"));
        cvc.zeroize();
        assert_eq!(cvc.expose_digits(), "");
    }
}
