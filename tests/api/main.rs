//! One integration binary: the service on port 0 with a fresh database per
//! test, on SQLite and on PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod audit_double;
mod helpers;
mod localstripe;
mod smtp_sink;

mod accounts;
mod audit;
mod auth;
mod auth_store;
mod billing;
mod binary;
mod connectors;
mod edge;
mod invoices;
mod keys;
mod mail;
mod payments;
mod payments_crash;
mod store;
mod tariffs;
mod tokens;
mod wallets;
mod webhooks;
