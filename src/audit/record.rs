//! A stored audit record and its canonical encoding. The record hash is
//! SHA-256 over a versioned, length-prefixed encoding of every field, the
//! node, the sequence number and the previous record's hash, so it does not
//! depend on JSON field order, column order or a database's text format.

use chrono::{DateTime, Utc};
use ring::digest;

use super::event::{ActorKind, AuditEvent, Outcome};
use crate::ids::TenantId;

/// The encoding this build writes. Older versions stay verifiable: the
/// verifier dispatches on each record's own version.
pub const RECORD_VERSION: i32 = 1;

/// `prev_hash` of the first record of a chain.
pub const GENESIS_HASH: [u8; 32] = [0; 32];

/// Longest text kept in one field; longer values are cut (at a char boundary).
pub const MAX_FIELD_BYTES: usize = 512;

const RECORD_DOMAIN: &str = "voltvault/audit-record";

/// One link of a node's chain, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    pub node_id: String,
    pub seq: u64,
    pub version: i32,
    /// Microseconds since the Unix epoch (both databases keep exactly this).
    pub at_us: i64,
    pub event_type: String,
    pub actor_kind: ActorKind,
    pub actor_id: String,
    pub tenant: Option<TenantId>,
    pub outcome: Outcome,
    pub origin: Option<String>,
    pub resource: Option<String>,
    pub request_id: Option<String>,
    pub reason: Option<String>,
    pub prev_hash: [u8; 32],
    pub record_hash: [u8; 32],
}

impl AuditRecord {
    /// Links `event` after `prev_hash` as record `seq` of `node_id`. Text
    /// fields pass through [`sanitize`] first, so what is hashed is what is
    /// stored.
    pub fn link(node_id: &str, seq: u64, prev_hash: [u8; 32], event: AuditEvent) -> Self {
        let mut record = Self {
            node_id: node_id.to_owned(),
            seq,
            version: RECORD_VERSION,
            at_us: event.at.timestamp_micros(),
            event_type: sanitize(&event.event_type),
            actor_kind: event.actor_kind,
            actor_id: sanitize(&event.actor_id),
            tenant: event.tenant,
            outcome: event.outcome,
            origin: event.origin.as_deref().map(sanitize),
            resource: event.resource.as_deref().map(sanitize),
            request_id: event.request_id.as_deref().map(sanitize),
            reason: event.reason.as_deref().map(sanitize),
            prev_hash,
            record_hash: [0; 32],
        };
        record.record_hash = record.compute_hash();
        record
    }

    pub fn at(&self) -> Option<DateTime<Utc>> {
        DateTime::from_timestamp_micros(self.at_us)
    }

    /// The hash this record's fields call for (not the stored one).
    pub fn compute_hash(&self) -> [u8; 32] {
        self.compute_hash_at(self.seq)
    }

    /// The hash these fields would have as record `seq`; the verifier uses
    /// it to tell a moved record from a changed one.
    pub fn compute_hash_at(&self, seq: u64) -> [u8; 32] {
        let bytes = self.canonical_bytes(seq);
        let mut out = [0u8; 32];
        out.copy_from_slice(digest::digest(&digest::SHA256, &bytes).as_ref());
        out
    }

    /// Version 1: domain, version, then every field in a fixed order; text
    /// as u32 length + UTF-8, absent values as a 0 byte, present as 1 + value.
    fn canonical_bytes(&self, seq: u64) -> Vec<u8> {
        let mut out = Vec::with_capacity(256);
        put_text(&mut out, RECORD_DOMAIN);
        out.extend_from_slice(&self.version.to_be_bytes());
        put_text(&mut out, &self.node_id);
        out.extend_from_slice(&seq.to_be_bytes());
        out.extend_from_slice(&self.prev_hash);
        out.extend_from_slice(&self.at_us.to_be_bytes());
        put_text(&mut out, &self.event_type);
        put_text(&mut out, self.actor_kind.as_str());
        put_text(&mut out, &self.actor_id);
        match self.tenant {
            Some(t) => {
                out.push(1);
                out.extend_from_slice(t.as_uuid().as_bytes());
            }
            None => out.push(0),
        }
        put_text(&mut out, self.outcome.as_str());
        for field in [&self.origin, &self.resource, &self.request_id, &self.reason] {
            match field {
                Some(text) => {
                    out.push(1);
                    put_text(&mut out, text);
                }
                None => out.push(0),
            }
        }
        out
    }
}

fn put_text(out: &mut Vec<u8>, text: &str) {
    let len = u32::try_from(text.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(text.as_bytes());
}

/// What every text field goes through before it is hashed and stored:
/// anything shaped like a card number (Luhn-valid run of 12-19 digits) is
/// masked, and the value is cut to [`MAX_FIELD_BYTES`]. Callers must never
/// put a PAN in an event; this keeps a mistake out of the permanent record.
pub fn sanitize(text: &str) -> String {
    let masked = crate::redact::mask_pans(text);
    let mut end = masked.len().min(MAX_FIELD_BYTES);
    while !masked.is_char_boundary(end) {
        end -= 1;
    }
    masked[..end].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event() -> AuditEvent {
        let at = DateTime::from_timestamp(1_764_000_000, 123_456_789).unwrap();
        AuditEvent::system("token.detokenize", at, Outcome::Success).with_resource("tok_1")
    }

    #[test]
    fn the_hash_binds_every_field_and_the_position() {
        let base = AuditRecord::link("node-a", 7, [9; 32], event());
        assert_eq!(base.compute_hash(), base.record_hash);
        assert_eq!(base.at_us % 1_000_000, 123_456, "kept to the microsecond");
        let variants: [fn(&mut AuditRecord); 14] = [
            |r| r.node_id = "node-b".into(),
            |r| r.seq = 8,
            |r| r.prev_hash = [8; 32],
            |r| r.at_us += 1,
            |r| r.event_type = "token.delete".into(),
            |r| r.actor_kind = ActorKind::Staff,
            |r| r.actor_id = "voltvaulT".into(),
            |r| r.tenant = Some(TenantId::generate()),
            |r| r.outcome = Outcome::Denied,
            |r| r.origin = Some(String::new()),
            |r| r.resource = None,
            |r| r.request_id = Some("r".into()),
            |r| r.reason = Some("x".into()),
            |r| r.version = 2,
        ];
        for change in variants {
            let mut r = base.clone();
            change(&mut r);
            assert_ne!(r.compute_hash(), base.record_hash, "{r:?}");
        }
    }

    #[test]
    fn length_prefixes_keep_field_boundaries() {
        let mut a = AuditRecord::link("n", 1, GENESIS_HASH, event());
        let mut b = a.clone();
        a.origin = Some("ab".into());
        a.resource = Some("c".into());
        b.origin = Some("a".into());
        b.resource = Some("bc".into());
        assert_ne!(a.compute_hash(), b.compute_hash());
    }

    #[test]
    fn card_numbers_are_masked_and_long_values_cut() {
        let e = event()
            .with_reason("card 4111 1111 1111 1111 declined")
            .with_resource("x".repeat(2000));
        let r = AuditRecord::link("n", 1, GENESIS_HASH, e);
        let reason = r.reason.unwrap();
        assert!(!reason.contains("1111 1111"), "{reason}");
        assert!(reason.contains("[REDACTED PAN]"));
        assert_eq!(r.resource.unwrap().len(), MAX_FIELD_BYTES);
        assert_eq!(sanitize(&"é".repeat(400)).len(), MAX_FIELD_BYTES);
    }
}
