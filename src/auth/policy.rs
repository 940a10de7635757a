//! Roles and permissions. `policy/roles.toml` grants permissions to roles;
//! everything it does not grant is denied. The file is parsed and checked
//! at start: an unknown role, principal kind or permission refuses to start.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use chrono::{DateTime, Duration, Utc};
use serde::Deserialize;

use super::principal::{Principal, PrincipalKind};

/// The policy voltvault ships with, used when no `auth.policy_file` is set.
pub const SHIPPED_POLICY: &str = include_str!("../../policy/roles.toml");

/// How recent a second factor must be for permissions that ask for it.
pub const FRESH_SECOND_FACTOR: Duration = Duration::minutes(5);

macro_rules! names {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident => $text:literal,)* }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $($(#[$vdoc])* $variant,)*
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant,)*];

            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)*
                }
            }

            pub fn parse(raw: &str) -> Option<Self> {
                match raw {
                    $($text => Some($name::$variant),)*
                    _ => None,
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let raw = String::deserialize(d)?;
                $name::parse(&raw).ok_or_else(|| {
                    serde::de::Error::custom(format!("unknown {} `{raw}`", stringify!($name).to_lowercase()))
                })
            }
        }
    };
}

names!(
    /// Something a route needs. Routes name exactly one.
    Permission {
        TokensCreate => "tokens:create",
        TokensRead => "tokens:read",
        TokensDelete => "tokens:delete",
        TokensBatch => "tokens:batch",
        /// Turns a token back into a PAN: admin only, with a fresh second factor.
        TokensDetokenize => "tokens:detokenize",
        PaymentsCreate => "payments:create",
        PaymentsRead => "payments:read",
        PaymentsMeter => "payments:meter",
        PaymentsComplete => "payments:complete",
        PaymentsCancel => "payments:cancel",
        PaymentsRefund => "payments:refund",
        BillingRead => "billing:read",
        BillingManage => "billing:manage",
        AccountsManage => "accounts:manage",
        /// A tenant's webhook endpoints and their delivery log.
        WebhooksManage => "webhooks:manage",
        AuditRead => "audit:read",
        TenantsManage => "tenants:manage",
        ClientsManage => "clients:manage",
        ChargerCasManage => "charger_cas:manage",
        UsersManage => "users:manage",
        KeysManage => "keys:manage",
        PrincipalsRead => "principals:read",
        /// Ends one's own staff session.
        SessionEnd => "session:end",
        /// Gives the second factor again within one's session.
        SessionStepUp => "session:step_up",
    }
);

names!(
    /// The roles voltvault knows. The policy file says what each may do.
    Role {
        Charger => "charger",
        App => "app",
        Payments => "payments",
        Operator => "operator",
        Auditor => "auditor",
        Admin => "admin",
    }
);

/// Why a policy file was refused.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("policy {source_name}: {problem}")]
    Invalid {
        source_name: String,
        problem: String,
    },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyFile {
    fresh_second_factor: Vec<String>,
    roles: BTreeMap<String, RoleEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RoleEntry {
    principals: Vec<String>,
    permissions: Vec<String>,
}

#[derive(Debug, Clone)]
struct Grant {
    kinds: BTreeSet<PrincipalKind>,
    permissions: BTreeSet<Permission>,
}

/// What the service decided about a principal and a permission.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allow,
    /// The role does not hold the permission (or may not be held by this kind of principal).
    Deny,
    /// The role holds it, but the second factor is older than five minutes.
    NeedsFreshSecondFactor,
}

/// The loaded policy: deny by default.
#[derive(Debug, Clone)]
pub struct Policy {
    grants: BTreeMap<Role, Grant>,
    fresh: BTreeSet<Permission>,
}

impl Policy {
    /// The policy in `policy/roles.toml` as built into this binary.
    pub fn shipped() -> Result<Self, PolicyError> {
        Self::parse("policy/roles.toml (built in)", SHIPPED_POLICY)
    }

    pub fn load(path: &Path) -> Result<Self, PolicyError> {
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| PolicyError::Invalid {
            source_name: name.clone(),
            problem: format!("cannot read: {}", e.kind()),
        })?;
        Self::parse(&name, &text)
    }

    pub fn parse(source_name: &str, text: &str) -> Result<Self, PolicyError> {
        let invalid = |problem: String| PolicyError::Invalid {
            source_name: source_name.to_owned(),
            problem,
        };
        let file: PolicyFile =
            toml_parse(text).map_err(|e| invalid(e.lines().next().unwrap_or("").to_owned()))?;
        let mut fresh = BTreeSet::new();
        for p in &file.fresh_second_factor {
            fresh.insert(Permission::parse(p).ok_or_else(|| {
                invalid(format!("fresh_second_factor: unknown permission `{p}`"))
            })?);
        }
        if !fresh.contains(&Permission::TokensDetokenize) {
            return Err(invalid(
                "fresh_second_factor must include tokens:detokenize".to_owned(),
            ));
        }
        let mut grants = BTreeMap::new();
        for (name, entry) in file.roles {
            let role =
                Role::parse(&name).ok_or_else(|| invalid(format!("unknown role `{name}`")))?;
            let mut kinds = BTreeSet::new();
            for kind in &entry.principals {
                kinds.insert(PrincipalKind::parse(kind).ok_or_else(|| {
                    invalid(format!("role `{name}`: unknown principal kind `{kind}`"))
                })?);
            }
            if kinds.is_empty() {
                return Err(invalid(format!(
                    "role `{name}`: no principal kind may hold it"
                )));
            }
            let mut permissions = BTreeSet::new();
            for p in &entry.permissions {
                let permission = Permission::parse(p)
                    .ok_or_else(|| invalid(format!("role `{name}`: unknown permission `{p}`")))?;
                permissions.insert(permission);
            }
            if permissions.contains(&Permission::TokensDetokenize)
                && (role != Role::Admin || kinds.iter().any(|k| *k != PrincipalKind::Staff))
            {
                return Err(invalid(format!(
                    "role `{name}`: tokens:detokenize may only be granted to admin staff"
                )));
            }
            grants.insert(role, Grant { kinds, permissions });
        }
        for role in Role::ALL {
            if !grants.contains_key(role) {
                return Err(invalid(format!("role `{role}` is missing")));
            }
        }
        for permission in &fresh {
            let held_by_non_staff = grants.values().any(|g: &Grant| {
                g.permissions.contains(permission)
                    && g.kinds.iter().any(|k| *k != PrincipalKind::Staff)
            });
            if held_by_non_staff {
                return Err(invalid(format!(
                    "{permission} needs a fresh second factor, which only staff can give"
                )));
            }
        }
        Ok(Self { grants, fresh })
    }

    /// Whether `permission` is honoured only shortly after a second factor.
    pub fn needs_fresh_second_factor(&self, permission: Permission) -> bool {
        self.fresh.contains(&permission)
    }

    /// Whether a principal of this kind may hold `role` at all.
    pub fn role_fits(&self, role: Role, kind: PrincipalKind) -> bool {
        self.grants
            .get(&role)
            .is_some_and(|g| g.kinds.contains(&kind))
    }

    /// The permissions `role` holds, for reports and tests.
    pub fn permissions(&self, role: Role) -> Vec<Permission> {
        self.grants
            .get(&role)
            .map(|g| g.permissions.iter().copied().collect())
            .unwrap_or_default()
    }

    /// Decides whether `principal` may use `permission` at `now`.
    pub fn decide(
        &self,
        principal: &Principal,
        permission: Permission,
        now: DateTime<Utc>,
    ) -> Decision {
        let Some(grant) = self.grants.get(&principal.role) else {
            return Decision::Deny;
        };
        if !grant.kinds.contains(&principal.kind) || !grant.permissions.contains(&permission) {
            return Decision::Deny;
        }
        if self.fresh.contains(&permission) {
            let fresh = principal
                .second_factor_at
                .is_some_and(|at| at <= now && now - at <= FRESH_SECOND_FACTOR);
            if !fresh {
                return Decision::NeedsFreshSecondFactor;
            }
        }
        Decision::Allow
    }
}

fn toml_parse(text: &str) -> Result<PolicyFile, String> {
    use figment::Figment;
    use figment::providers::{Format, Toml};
    Figment::new()
        .merge(Toml::string(text))
        .extract()
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::TenantId;

    fn principal(role: Role, kind: PrincipalKind, mfa: Option<DateTime<Utc>>) -> Principal {
        Principal {
            tenant: TenantId::generate(),
            role,
            kind,
            id: "x".into(),
            second_factor_at: mfa,
        }
    }

    #[test]
    fn the_shipped_policy_loads() {
        let policy = Policy::shipped().unwrap();
        assert!(policy.role_fits(Role::Charger, PrincipalKind::Charger));
        assert!(!policy.role_fits(Role::Admin, PrincipalKind::Client));
        for role in Role::ALL {
            let has = policy
                .permissions(*role)
                .contains(&Permission::TokensDetokenize);
            assert_eq!(has, *role == Role::Admin, "{role}");
        }
    }

    /// The shipped grants, spelled out: a change to roles.toml must change this too.
    #[test]
    fn the_shipped_roles_hold_exactly_these_permissions() {
        let expected: &[(Role, &[&str])] = &[
            (
                Role::Charger,
                &[
                    "tokens:create",
                    "tokens:read",
                    "payments:create",
                    "payments:read",
                    "payments:meter",
                    "payments:complete",
                    "payments:cancel",
                ],
            ),
            (
                Role::App,
                &[
                    "tokens:create",
                    "tokens:read",
                    "tokens:delete",
                    "tokens:batch",
                    "payments:create",
                    "payments:read",
                    "payments:cancel",
                    "billing:read",
                    "accounts:manage",
                    "webhooks:manage",
                ],
            ),
            (
                Role::Payments,
                &[
                    "tokens:read",
                    "payments:create",
                    "payments:read",
                    "payments:complete",
                    "payments:cancel",
                ],
            ),
            (
                Role::Operator,
                &[
                    "session:end",
                    "session:step_up",
                    "tokens:read",
                    "tokens:delete",
                    "tokens:batch",
                    "payments:read",
                    "payments:refund",
                    "billing:read",
                    "billing:manage",
                    "accounts:manage",
                    "webhooks:manage",
                ],
            ),
            (
                Role::Auditor,
                &[
                    "session:end",
                    "session:step_up",
                    "audit:read",
                    "principals:read",
                ],
            ),
            (
                Role::Admin,
                &[
                    "session:end",
                    "session:step_up",
                    "tokens:read",
                    "tokens:detokenize",
                    "tenants:manage",
                    "clients:manage",
                    "charger_cas:manage",
                    "users:manage",
                    "keys:manage",
                    "principals:read",
                    "audit:read",
                ],
            ),
        ];
        let policy = Policy::shipped().unwrap();
        assert_eq!(expected.len(), Role::ALL.len());
        for (role, names) in expected {
            let mut want: Vec<Permission> = names
                .iter()
                .map(|n| Permission::parse(n).unwrap())
                .collect();
            want.sort();
            assert_eq!(policy.permissions(*role), want, "{role}");
        }
        for p in Permission::ALL {
            let fresh = policy.needs_fresh_second_factor(*p);
            let expected_fresh = matches!(
                p,
                Permission::TokensDetokenize
                    | Permission::TenantsManage
                    | Permission::ClientsManage
                    | Permission::ChargerCasManage
                    | Permission::UsersManage
                    | Permission::KeysManage
            );
            assert_eq!(fresh, expected_fresh, "{p}");
        }
    }

    #[test]
    fn unknown_names_refuse_to_load() {
        let base = "fresh_second_factor = [\"tokens:detokenize\"]\n[roles.charger]\nprincipals=[\"charger\"]\npermissions=[\"tokens:create\"]\n";
        let err = Policy::parse("t", &base.replace("tokens:create", "tokens:steal")).unwrap_err();
        assert!(err.to_string().contains("tokens:steal"), "{err}");
        let err = Policy::parse("t", &base.replace("roles.charger", "roles.janitor")).unwrap_err();
        assert!(err.to_string().contains("janitor"), "{err}");
        let err = Policy::parse("t", base).unwrap_err();
        assert!(err.to_string().contains("missing"), "{err}");
        let with_detok = SHIPPED_POLICY.replacen(
            "\"tokens:create\",",
            "\"tokens:create\", \"tokens:detokenize\",",
            1,
        );
        let err = Policy::parse("t", &with_detok).unwrap_err();
        assert!(err.to_string().contains("detokenize"), "{err}");
        let without_fresh = SHIPPED_POLICY.replacen("    \"tokens:detokenize\",\n", "", 1);
        let err = Policy::parse("t", &without_fresh).unwrap_err();
        assert!(err.to_string().contains("fresh_second_factor"), "{err}");
    }

    #[test]
    fn detokenize_needs_a_second_factor_from_the_last_five_minutes() {
        let policy = Policy::shipped().unwrap();
        let now = DateTime::from_timestamp(1_764_000_000, 0).unwrap();
        let p = Permission::TokensDetokenize;
        let fresh = principal(
            Role::Admin,
            PrincipalKind::Staff,
            Some(now - Duration::minutes(4)),
        );
        assert_eq!(policy.decide(&fresh, p, now), Decision::Allow);
        let stale = principal(
            Role::Admin,
            PrincipalKind::Staff,
            Some(now - Duration::minutes(6)),
        );
        assert_eq!(
            policy.decide(&stale, p, now),
            Decision::NeedsFreshSecondFactor
        );
        let op = principal(Role::Operator, PrincipalKind::Staff, Some(now));
        assert_eq!(policy.decide(&op, p, now), Decision::Deny);
        // A role held by the wrong kind of principal grants nothing.
        let forged = principal(Role::Admin, PrincipalKind::Client, Some(now));
        assert_eq!(
            policy.decide(&forged, Permission::TenantsManage, now),
            Decision::Deny
        );
    }
}
