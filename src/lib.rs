//! voltvault: a payment tokenization and card-data vault for EV charging networks.

pub mod app;
pub mod audit;
pub mod audit_cmd;
pub mod card;
pub mod cli;
pub mod clock;
pub mod config;
pub mod dev;
pub mod devpki;
pub mod hardening;
pub mod http;
pub mod idempotency;
pub mod ids;
pub mod redact;
pub mod secret;
pub mod store;
pub mod telemetry;
pub mod tenants;
pub mod tokens;
