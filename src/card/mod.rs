//! Card data: the PAN, its brand, expiry and CVC, and what of them may be
//! shown. Pure logic: no I/O, no clock or randomness except as passed in.

mod brand;
mod cvc;
mod cvc_vault;
mod error;
mod expiry;
pub mod luhn;
pub mod mask;
mod pan;

pub use brand::CardBrand;
pub use cvc::Cvc;
pub use cvc_vault::{CVC_TTL, CvcVault, CvcVaultError};
pub use error::CardError;
pub use expiry::Expiry;
pub use mask::{Bin, Last4, MaskedPan};
pub use pan::{MAX_PAN_LEN, MIN_PAN_LEN, Pan};

use crate::clock::Clock;

/// A card as presented for tokenization: number and expiry, both checked.
/// The CVC travels separately, into the `CvcVault` only.
#[derive(Debug)]
pub struct Card {
    pub pan: Pan,
    pub expiry: Expiry,
}

impl Card {
    /// Parses the number, then the expiry against the clock's "now".
    pub fn parse(
        number: &str,
        exp_month: u32,
        exp_year: u32,
        clock: &dyn Clock,
    ) -> Result<Self, CardError> {
        let pan = Pan::parse(number)?;
        let expiry = Expiry::parse(exp_month, exp_year, clock)?;
        Ok(Self { pan, expiry })
    }
}

#[cfg(test)]
pub(crate) mod test_cards;

#[cfg(test)]
mod tests;
