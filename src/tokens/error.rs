//! Token errors. None carries a digit of a PAN or a token.

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("token: must be 12 to 19 digits")]
    Malformed,
    #[error("token: passes the Luhn check, so it could be taken for a card number")]
    PassesLuhn,
    #[error("token: was not made with this key and tenant")]
    NotOurs,
    #[error("ff1: key must be 16, 24 or 32 bytes")]
    Ff1Key,
    #[error("ff1: radix must be 2 to 65536 and every numeral below it")]
    Ff1Radix,
    #[error("ff1: domain below 1,000,000 values (radix^length)")]
    Ff1DomainTooSmall,
    #[error("ff1: cycle walk did not end within its bound")]
    Ff1CycleWalk,
    #[error("random: source returned unusable output")]
    Random,
}

impl TokenError {
    /// A stable machine-readable code for problem+json responses.
    pub fn code(self) -> &'static str {
        match self {
            TokenError::Malformed => "token_malformed",
            TokenError::PassesLuhn => "token_passes_luhn",
            TokenError::NotOurs => "token_not_ours",
            TokenError::Ff1Key => "ff1_key",
            TokenError::Ff1Radix => "ff1_radix",
            TokenError::Ff1DomainTooSmall => "ff1_domain_too_small",
            TokenError::Ff1CycleWalk => "ff1_cycle_walk",
            TokenError::Random => "random_source",
        }
    }
}
