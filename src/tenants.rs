//! Tenants: the operators whose data voltvault keeps apart.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::ids::TenantId;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Tenant {
    pub id: TenantId,
    pub name: TenantName,
    pub created_at: DateTime<Utc>,
}

/// A tenant's short name: 2 to 64 lowercase letters, digits or '-'.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct TenantName(String);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("tenant name must be 2 to 64 lowercase letters, digits or '-'")]
pub struct InvalidTenantName;

impl TenantName {
    pub fn parse(raw: &str) -> Result<Self, InvalidTenantName> {
        let ok = (2..=64).contains(&raw.len())
            && raw
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !raw.starts_with('-');
        if ok {
            Ok(Self(raw.to_owned()))
        } else {
            Err(InvalidTenantName)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_names() {
        assert!(TenantName::parse("ionity-de").is_ok());
        assert!(TenantName::parse("a").is_err());
        assert!(TenantName::parse("Upper").is_err());
        assert!(TenantName::parse("-lead").is_err());
        assert!(TenantName::parse("drop table;").is_err());
    }
}
