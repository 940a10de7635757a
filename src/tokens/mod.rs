//! Token formats. A token stands in for a PAN everywhere outside the vault:
//! the PAN's length, its last four (and, by tenant policy, its BIN), and
//! never a number that passes Luhn, so it cannot be mistaken for a card.
//!
//! - `random`: vaulted; the PAN is stored encrypted and found by token.
//!   Uniqueness per tenant is the store's constraint: on a clash, draw the
//!   next candidate from `random::candidates`.
//! - `ff1`: NIST SP 800-38G FF1 over the hidden digits under the tenant's
//!   FF1 key (from the key layer), tweaked by the tenant id. One token value
//!   per card and tenant; the card is still sealed and stored, so
//!   detokenize works as for random tokens.
//! - Deterministic tokens (same card, same token) are a store lookup by
//!   fingerprint before either format is called; nothing here changes.

mod error;
pub mod ff1;
mod layout;
pub mod random;
pub mod records;
pub mod service;
mod value;

use serde::{Deserialize, Serialize};

pub use error::TokenError;
pub use layout::KeptDigits;
pub use value::TokenValue;

/// CVCs held between tokenization and the first authorization, by tenant and token.
pub type TokenCvcs = crate::card::CvcVault<(crate::ids::TenantId, String)>;

/// How a tenant's tokens are made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenFormat {
    #[default]
    Random,
    Ff1,
}

impl TokenFormat {
    /// The name stored with each token and shown in its view.
    pub fn as_str(self) -> &'static str {
        match self {
            TokenFormat::Random => "random",
            TokenFormat::Ff1 => "ff1",
        }
    }
}

#[cfg(test)]
mod tests;
