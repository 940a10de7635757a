//! voltvault: a payment tokenization and card-data vault for EV charging networks.

pub mod clock;
pub mod config;
pub mod keys;
pub mod secret;
