//! Cursor pagination: a page ends at the last (created_at, id) it holds,
//! and the next starts after it. The cursor is opaque to callers.

use std::fmt::Display;
use std::str::FromStr;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor<Id> {
    pub created_at: DateTime<Utc>,
    pub id: Id,
}

impl<Id: Display + FromStr> Cursor<Id> {
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(format!(
            "{}|{}",
            self.created_at
                .to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
            self.id
        ))
    }

    pub fn decode(text: &str) -> Option<Self> {
        let raw = URL_SAFE_NO_PAD.decode(text).ok()?;
        let raw = String::from_utf8(raw).ok()?;
        let (at, id) = raw.split_once('|')?;
        Some(Self {
            created_at: DateTime::parse_from_rfc3339(at).ok()?.with_timezone(&Utc),
            id: id.parse().ok()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::PaymentSessionId;

    #[test]
    fn cursors_round_trip_and_refuse_garbage() {
        let c = Cursor {
            created_at: DateTime::parse_from_rfc3339("2026-11-25T10:00:00.123456789Z")
                .unwrap()
                .with_timezone(&Utc),
            id: PaymentSessionId::generate(),
        };
        assert_eq!(Cursor::decode(&c.encode()), Some(c));
        assert_eq!(Cursor::<PaymentSessionId>::decode("not a cursor"), None);
        assert_eq!(
            Cursor::<PaymentSessionId>::decode(&URL_SAFE_NO_PAD.encode("x|y")),
            None
        );
    }
}
