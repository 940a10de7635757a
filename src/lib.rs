//! voltvault: a payment tokenization and card-data vault for EV charging networks.

pub mod card;
pub mod clock;
pub mod config;
pub mod secret;
pub mod tokens;
