//! Who is calling: the capability a handler receives once the policy has
//! allowed the request.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::policy::Role;
use crate::audit::ActorKind;
use crate::ids::TenantId;

/// The kind of credential a principal proved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PrincipalKind {
    /// An mTLS client certificate from a charger CA registered for a tenant.
    Charger,
    /// An API key.
    Client,
    /// A staff session (password and TOTP).
    Staff,
}

impl PrincipalKind {
    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "charger" => Some(Self::Charger),
            "client" => Some(Self::Client),
            "staff" => Some(Self::Staff),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Charger => "charger",
            Self::Client => "client",
            Self::Staff => "staff",
        }
    }

    pub fn actor_kind(self) -> ActorKind {
        match self {
            Self::Charger => ActorKind::Charger,
            Self::Client => ActorKind::Client,
            Self::Staff => ActorKind::Staff,
        }
    }
}

/// An authenticated caller. Handlers get one only after the policy check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Principal {
    pub tenant: TenantId,
    pub role: Role,
    pub kind: PrincipalKind,
    /// `charger:<identity>`, `client:<key id>` or `staff:<username>`.
    pub id: String,
    /// When a staff session's second factor was given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub second_factor_at: Option<DateTime<Utc>>,
}
