//! One audit event, with the fields PCI DSS 10.2.2 asks for. It never holds
//! a PAN: resources are named by token, id or label.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ids::TenantId;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ActorKind {
    /// A charger authenticated by its client certificate.
    Charger,
    /// An app or service client authenticated by an API key.
    Client,
    /// Operator staff, auditors and administrators.
    Staff,
    /// voltvault itself: workers, start-up, key jobs.
    System,
    /// A caller that did not authenticate.
    Anonymous,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Success,
    Failure,
    Denied,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEvent {
    /// A dotted name such as `token.detokenize`, `auth.login`, `key.rotate_dek`.
    pub event_type: String,
    pub at: DateTime<Utc>,
    pub actor_kind: ActorKind,
    /// Principal id (user name, API key id, certificate fingerprint, `voltvault`).
    pub actor_id: String,
    pub tenant: Option<TenantId>,
    pub outcome: Outcome,
    /// Where the request came from: address, certificate fingerprint or key id.
    pub origin: Option<String>,
    /// The affected resource: a token, session or key id — never a PAN.
    pub resource: Option<String>,
    pub request_id: Option<String>,
    /// A short machine-readable reason for failures and denials.
    pub reason: Option<String>,
}

impl AuditEvent {
    /// An event by voltvault itself (key jobs, start and stop of logging).
    pub fn system(event_type: &str, at: DateTime<Utc>, outcome: Outcome) -> Self {
        Self {
            event_type: event_type.to_owned(),
            at,
            actor_kind: ActorKind::System,
            actor_id: "voltvault".to_owned(),
            tenant: None,
            outcome,
            origin: None,
            resource: None,
            request_id: None,
            reason: None,
        }
    }

    pub fn with_resource(mut self, resource: impl Into<String>) -> Self {
        self.resource = Some(resource.into());
        self
    }

    pub fn with_reason(mut self, reason: impl Into<String>) -> Self {
        self.reason = Some(reason.into());
        self
    }

    pub fn with_tenant(mut self, tenant: TenantId) -> Self {
        self.tenant = Some(tenant);
        self
    }
}

impl ActorKind {
    /// The stored and hashed name; stable across versions.
    pub fn as_str(self) -> &'static str {
        match self {
            ActorKind::Charger => "charger",
            ActorKind::Client => "client",
            ActorKind::Staff => "staff",
            ActorKind::System => "system",
            ActorKind::Anonymous => "anonymous",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "charger" => ActorKind::Charger,
            "client" => ActorKind::Client,
            "staff" => ActorKind::Staff,
            "system" => ActorKind::System,
            "anonymous" => ActorKind::Anonymous,
            _ => return None,
        })
    }
}

impl Outcome {
    /// The stored and hashed name; stable across versions.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Failure => "failure",
            Outcome::Denied => "denied",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "success" => Outcome::Success,
            "failure" => Outcome::Failure,
            "denied" => Outcome::Denied,
            _ => return None,
        })
    }
}
