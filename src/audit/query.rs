//! Search filters and the opaque cursor for keyset pagination. Results are
//! ordered by (time, node, sequence); the cursor is the last row's key.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};

use super::event::Outcome;

/// Most rows one search page returns.
pub const MAX_PAGE: u32 = 1000;
pub const DEFAULT_PAGE: u32 = 100;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditQuery {
    /// Inclusive lower bound.
    pub from: Option<DateTime<Utc>>,
    /// Exclusive upper bound.
    pub to: Option<DateTime<Utc>>,
    pub actor_id: Option<String>,
    pub event_type: Option<String>,
    pub resource: Option<String>,
    pub outcome: Option<Outcome>,
    pub after: Option<Cursor>,
    pub limit: u32,
}

impl AuditQuery {
    pub fn new() -> Self {
        Self {
            limit: DEFAULT_PAGE,
            ..Self::default()
        }
    }

    /// The page size, kept within 1..=[`MAX_PAGE`].
    pub fn page_size(&self) -> u32 {
        self.limit.clamp(1, MAX_PAGE)
    }
}

/// The key of the last row of a page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    pub at_us: i64,
    pub node_id: String,
    pub seq: u64,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("not a cursor this server issued")]
pub struct BadCursor;

impl Cursor {
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(format!("{}:{}:{}", self.at_us, self.seq, self.node_id))
    }

    pub fn decode(text: &str) -> Result<Self, BadCursor> {
        let bytes = URL_SAFE_NO_PAD.decode(text).map_err(|_| BadCursor)?;
        let text = String::from_utf8(bytes).map_err(|_| BadCursor)?;
        let mut parts = text.splitn(3, ':');
        let at_us = parts.next().and_then(|p| p.parse().ok()).ok_or(BadCursor)?;
        let seq = parts.next().and_then(|p| p.parse().ok()).ok_or(BadCursor)?;
        let node_id = parts.next().filter(|n| !n.is_empty()).ok_or(BadCursor)?;
        Ok(Self {
            at_us,
            node_id: node_id.to_owned(),
            seq,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_round_trips_and_garbage_is_refused() {
        let c = Cursor {
            at_us: -5,
            node_id: "node:a.1".into(),
            seq: 42,
        };
        assert_eq!(Cursor::decode(&c.encode()), Ok(c));
        for bad in ["", "!!", "MTox", &URL_SAFE_NO_PAD.encode("1:x:n")] {
            assert_eq!(Cursor::decode(bad), Err(BadCursor), "{bad}");
        }
    }
}
