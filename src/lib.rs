//! voltvault: a payment tokenization and card-data vault for EV charging networks.

pub mod admin_cli;
pub mod app;
pub mod audit;
pub mod audit_cmd;
pub mod auth;
pub mod billing;
pub mod card;
pub mod cli;
pub mod clock;
pub mod commands;
pub mod config;
pub mod dev;
pub mod devpki;
pub mod hardening;
pub mod http;
pub mod idempotency;
pub mod ids;
pub mod keys;
pub mod money;
pub mod payments;
pub mod redact;
pub mod secret;
pub mod store;
pub mod telemetry;
pub mod tenants;
pub mod tokens;
