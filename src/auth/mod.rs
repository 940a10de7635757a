//! Authentication and authorization: who may do what.
//!
//! - [`principal`]: the [`Principal`] a handler receives (tenant, role, id).
//! - [`policy`]: roles and permissions from `policy/roles.toml`; deny by default.
//! - [`service`]: credentials → principal, policy checks, budgets, audit.
//! - [`login`]: staff sign-in (password, then TOTP, then a session).
//! - [`admin`]: tenants, API keys, charger CAs, users, the principals report.
//! - [`charger`]: client certificates against the tenants' registered CAs.
//! - [`keys`], [`tokens`], [`password`], [`totp`], [`ratelimit`]: the parts.

pub mod admin;
pub mod charger;
pub mod keys;
pub mod login;
pub mod password;
pub mod policy;
pub mod principal;
pub mod ratelimit;
pub mod records;
pub mod service;
pub mod tokens;
pub mod totp;

pub use policy::{Permission, Policy, Role};
pub use principal::{Principal, PrincipalKind};
pub use service::{Actor, AuthError, AuthService, AuthSettings, Origin};
