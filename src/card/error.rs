//! Card parsing errors. Each names the field and the reason; none carries
//! any part of the value it rejected.

/// Why card data was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CardError {
    #[error("number: may contain only digits, spaces and dashes")]
    NumberNotDigits,
    #[error("number: must have 12 to 19 digits")]
    NumberLength,
    #[error("number: fails the Luhn check")]
    NumberLuhn,
    #[error("number: issuer network not recognized")]
    NumberUnknownBrand,
    #[error("number: length does not match the {0} card network")]
    NumberBrandLength(super::CardBrand),
    #[error("exp_month: must be 1 to 12")]
    ExpiryMonth,
    #[error("exp_year: must be a two- or four-digit year within 20 years")]
    ExpiryYear,
    #[error("exp_month: card has expired")]
    Expired,
    #[error("cvc: may contain only digits")]
    CvcNotDigits,
    #[error("cvc: must have {0} digits for this card network")]
    CvcLength(usize),
}

impl CardError {
    /// The request field the error is about.
    pub fn field(self) -> &'static str {
        match self {
            CardError::NumberNotDigits
            | CardError::NumberLength
            | CardError::NumberLuhn
            | CardError::NumberUnknownBrand
            | CardError::NumberBrandLength(_) => "number",
            CardError::ExpiryMonth | CardError::Expired => "exp_month",
            CardError::ExpiryYear => "exp_year",
            CardError::CvcNotDigits | CardError::CvcLength(_) => "cvc",
        }
    }

    /// A stable machine-readable code for problem+json responses.
    pub fn code(self) -> &'static str {
        match self {
            CardError::NumberNotDigits => "card_number_not_digits",
            CardError::NumberLength => "card_number_length",
            CardError::NumberLuhn => "card_number_luhn",
            CardError::NumberUnknownBrand => "card_number_unknown_brand",
            CardError::NumberBrandLength(_) => "card_number_brand_length",
            CardError::ExpiryMonth => "card_expiry_month",
            CardError::ExpiryYear => "card_expiry_year",
            CardError::Expired => "card_expired",
            CardError::CvcNotDigits => "card_cvc_not_digits",
            CardError::CvcLength(_) => "card_cvc_length",
        }
    }
}
