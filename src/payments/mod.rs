//! Payments: EV payment sessions (pre-authorization hold, metering,
//! capture, refunds) on top of the acquirer connectors.

pub mod changes;
pub mod connectors;
pub mod recovery;
pub mod service;
pub mod session;
pub mod tariffs;
pub(crate) mod vault_card;
