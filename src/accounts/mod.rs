//! Accounts for drivers and fleets: who pays for a session started by an
//! RFID tap or by the app for an account. An account holds tokens only, never
//! card data; a tap charges the account's default token.

pub mod service;

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::ids::{AccountId, TenantId};

/// A driver pays for their own sessions; a fleet is billed for its drivers'.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum AccountKind {
    Driver,
    Fleet,
}

impl AccountKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AccountKind::Driver => "driver",
            AccountKind::Fleet => "fleet",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "driver" => Some(AccountKind::Driver),
            "fleet" => Some(AccountKind::Fleet),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub id: AccountId,
    pub tenant: TenantId,
    pub kind: AccountKind,
    pub name: String,
    pub email: Option<String>,
    /// The fleet that is billed for this driver, if any.
    pub fleet: Option<AccountId>,
    pub default_token: Option<String>,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
}

/// Whether a card may start sessions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum RfidStatus {
    Active,
    Blocked,
}

impl RfidStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RfidStatus::Active => "active",
            RfidStatus::Blocked => "blocked",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "active" => Some(RfidStatus::Active),
            "blocked" => Some(RfidStatus::Blocked),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RfidCard {
    pub tenant: TenantId,
    pub uid: RfidUid,
    pub account: AccountId,
    pub label: Option<String>,
    pub status: RfidStatus,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// An ISO/IEC 14443 card UID: 4, 7 or 10 bytes (single, double or triple
/// size), kept as upper-case hex so that `04a2…` and `04:A2:…` are one card.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct RfidUid(String);

impl RfidUid {
    /// Accepts hex digits with optional `:`, `-` or space between bytes.
    pub fn parse(raw: &str) -> Option<Self> {
        if raw.len() > 40 {
            return None;
        }
        let hex: String = raw
            .chars()
            .filter(|c| !matches!(c, ':' | '-' | ' '))
            .collect();
        let valid = matches!(hex.len(), 8 | 14 | 20) && hex.chars().all(|c| c.is_ascii_hexdigit());
        valid.then(|| Self(hex.to_ascii_uppercase()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// For audit records and logs: the first byte (the manufacturer, for
    /// double and triple size UIDs) and the last two, so a record names the
    /// card without handing out a value that starts sessions.
    pub fn masked(&self) -> String {
        let n = self.0.len();
        format!("{}…{}", &self.0[..2], &self.0[n - 4..])
    }
}

impl fmt::Debug for RfidUid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RfidUid({})", self.masked())
    }
}

/// Names and labels: printable, 1 to 200 characters.
pub fn check_name(value: &str) -> bool {
    let n = value.chars().count();
    (1..=200).contains(&n) && !value.chars().any(char::is_control) && value.trim() == value
}

/// An address the mail queue will take: one mailbox, no display name.
pub fn check_email(value: &str) -> bool {
    crate::notify::mail::check_recipient(value).is_ok()
        && crate::notify::smtp::parse_mailbox(value).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uids_of_the_three_iso_14443_sizes_are_accepted_and_normalized() {
        assert_eq!(RfidUid::parse("04a2b3c4").unwrap().as_str(), "04A2B3C4");
        assert_eq!(
            RfidUid::parse("04:A2:B3:C4:D5:E6:F7").unwrap().as_str(),
            "04A2B3C4D5E6F7"
        );
        assert_eq!(
            RfidUid::parse("04-a2-b3-c4-d5-e6-f7-08-09-10")
                .unwrap()
                .as_str(),
            "04A2B3C4D5E6F7080910"
        );
    }

    #[test]
    fn uids_of_other_lengths_or_with_other_characters_are_refused() {
        for bad in [
            "",
            "04a2b3",
            "04a2b3c4d5",
            "04a2b3c4d5e6f70",
            "04a2b3g4",
            "04a2b3c4\n",
            "04a2b3c4d5e6f7080910aa",
            &"0".repeat(41),
        ] {
            assert!(RfidUid::parse(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn a_masked_uid_shows_three_of_its_bytes_at_most() {
        let uid = RfidUid::parse("04A2B3C4D5E6F7").unwrap();
        assert_eq!(uid.masked(), "04…E6F7");
        assert!(!format!("{uid:?}").contains("A2B3C4D5"));
    }

    #[test]
    fn names_and_addresses_are_checked() {
        assert!(check_name("Fleet Nord GmbH"));
        assert!(!check_name(""));
        assert!(!check_name(" padded"));
        assert!(!check_name("line\nbreak"));
        assert!(!check_name(&"x".repeat(201)));
        assert!(check_email("driver@example.com"));
        assert!(!check_email("a@b@c"));
        assert!(!check_email("one@example.com, two@example.com"));
        assert!(!check_email("@example.com"));
    }
}
