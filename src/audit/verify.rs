//! Verifies one node's chain against its sealed checkpoints and names the
//! first bad record and why. Records arrive in pages ordered by sequence;
//! the walk keeps constant state, so a chain of any length fits.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;
use utoipa::ToSchema;

use super::record::{AuditRecord, GENESIS_HASH};
use super::seal::Checkpoint;

/// How far from its place a moved record is looked for.
const MOVE_SEARCH: u64 = 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ProblemKind {
    /// The record's fields no longer match its hash.
    Modified,
    /// The record with this sequence number is gone.
    Missing,
    /// The record at this position was not written by the chain's writer.
    Inserted,
    /// A record of the chain stands at the wrong position.
    Reordered,
    /// The record does not link to the one before it: one of the two was
    /// replaced by a record with a recomputed hash.
    BrokenLink,
    /// Records that a sealed checkpoint covers are gone from the end.
    Truncated,
    /// The chain up to a checkpoint was recomputed after it was sealed.
    CheckpointMismatch,
    /// A checkpoint's seal is not genuine.
    CheckpointForged,
}

/// The first thing wrong with a chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Problem {
    /// The first bad record's sequence number.
    pub seq: u64,
    pub kind: ProblemKind,
    pub detail: String,
}

/// The outcome for one node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct NodeReport {
    pub node_id: String,
    /// The first sequence number the walk expected (after archived records).
    pub first_seq: u64,
    /// The last record seen, if any.
    pub last_seq: Option<u64>,
    pub records_checked: u64,
    pub checkpoints_checked: u64,
    /// The newest sealed checkpoint; records after it rest on hashes alone.
    pub last_sealed_seq: Option<u64>,
    pub problem: Option<Problem>,
}

/// The walk over one chain.
pub struct ChainVerifier {
    node_id: String,
    first_seq: u64,
    expected_seq: u64,
    expected_prev: [u8; 32],
    /// Sealed checkpoints (seals already checked), by sequence.
    checkpoints: BTreeMap<u64, [u8; 32]>,
    last_pinned: u64,
    records_checked: u64,
    last_seq: Option<u64>,
    problem: Option<Problem>,
    /// The page received but not yet checked.
    lookahead: Vec<AuditRecord>,
}

impl ChainVerifier {
    /// Starts after `anchor` (the checkpoint an archive ends at) or at the
    /// genesis. `checkpoints` must already have genuine seals.
    pub fn new(node_id: &str, anchor: Option<&Checkpoint>, checkpoints: &[Checkpoint]) -> Self {
        let (expected_seq, expected_prev) = match anchor {
            Some(cp) => (cp.seq + 1, cp.record_hash),
            None => (1, GENESIS_HASH),
        };
        Self {
            node_id: node_id.to_owned(),
            first_seq: expected_seq,
            expected_seq,
            expected_prev,
            checkpoints: checkpoints
                .iter()
                .filter(|c| c.seq >= expected_seq)
                .map(|c| (c.seq, c.record_hash))
                .collect(),
            last_pinned: expected_seq - 1,
            records_checked: 0,
            last_seq: None,
            problem: None,
            lookahead: Vec::new(),
        }
    }

    /// Stops the walk with a problem found outside it (a forged seal).
    pub fn fail(&mut self, problem: Problem) {
        if self.problem.is_none() {
            self.problem = Some(problem);
        }
    }

    pub fn failed(&self) -> bool {
        self.problem.is_some()
    }

    /// Takes the next page, in sequence order, and checks the page before
    /// it (each page is checked with the next one in view, so a record moved
    /// across a page boundary is still recognised). Returns false once a
    /// problem is found: later pages need not be read.
    pub fn feed(&mut self, page: Vec<AuditRecord>) -> bool {
        let previous = std::mem::replace(&mut self.lookahead, page);
        self.walk(&previous)
    }

    fn walk(&mut self, page: &[AuditRecord]) -> bool {
        if self.problem.is_some() {
            return false;
        }
        let by_hash: HashMap<[u8; 32], u64> = page
            .iter()
            .chain(&self.lookahead)
            .map(|r| (r.record_hash, r.seq))
            .collect();
        for record in page {
            if record.seq < self.first_seq {
                continue;
            }
            if let Some(problem) = self.check(record, &by_hash) {
                self.problem = Some(problem);
                return false;
            }
            self.records_checked += 1;
            self.last_seq = Some(record.seq);
            self.expected_seq = record.seq + 1;
            self.expected_prev = record.record_hash;
        }
        true
    }

    fn check(&mut self, r: &AuditRecord, by_hash: &HashMap<[u8; 32], u64>) -> Option<Problem> {
        if r.node_id != self.node_id {
            return Some(problem(
                r.seq,
                ProblemKind::Inserted,
                "belongs to another node",
            ));
        }
        if r.compute_hash() != r.record_hash {
            return Some(self.changed(r, by_hash));
        }
        if r.seq > self.expected_seq {
            let detail = if r.seq - self.expected_seq == 1 {
                format!("record {} was deleted", self.expected_seq)
            } else {
                format!("records {}..={} were deleted", self.expected_seq, r.seq - 1)
            };
            return Some(problem(self.expected_seq, ProblemKind::Missing, detail));
        }
        if r.prev_hash != self.expected_prev {
            return Some(problem(
                r.seq,
                ProblemKind::BrokenLink,
                format!(
                    "does not link to record {}: this record was inserted, or the one before it rewritten",
                    r.seq.saturating_sub(1)
                ),
            ));
        }
        if let Some(sealed) = self.checkpoints.get(&r.seq) {
            if *sealed != r.record_hash {
                let first = self.last_pinned + 1;
                return Some(problem(
                    first,
                    ProblemKind::CheckpointMismatch,
                    format!(
                        "records {first}..={} were recomputed after the checkpoint at {} was sealed",
                        r.seq, r.seq
                    ),
                ));
            }
            self.last_pinned = r.seq;
        }
        None
    }

    /// A record whose hash does not match: moved, or edited in place.
    fn changed(&self, r: &AuditRecord, by_hash: &HashMap<[u8; 32], u64>) -> Problem {
        let Some(original) = original_position(r, by_hash) else {
            return problem(
                r.seq,
                ProblemKind::Modified,
                "fields differ from the record's hash",
            );
        };
        if original < r.seq {
            return problem(
                original,
                ProblemKind::Inserted,
                format!(
                    "record {original} was pushed to {} by records inserted before it",
                    r.seq
                ),
            );
        }
        if by_hash.contains_key(&r.prev_hash) {
            problem(
                r.seq,
                ProblemKind::Reordered,
                format!("holds record {original}"),
            )
        } else {
            problem(
                r.seq,
                ProblemKind::Missing,
                format!(
                    "record {} was deleted and later records renumbered",
                    original - 1
                ),
            )
        }
    }

    /// Ends the walk: records a sealed checkpoint covers must all be there.
    pub fn finish(mut self, checkpoints_checked: u64) -> NodeReport {
        let last = std::mem::take(&mut self.lookahead);
        self.walk(&last);
        if self.problem.is_none()
            && let Some((&sealed_seq, _)) = self.checkpoints.last_key_value()
            && sealed_seq >= self.expected_seq
        {
            self.problem = Some(problem(
                self.expected_seq,
                ProblemKind::Truncated,
                format!(
                    "records {}..={sealed_seq} are gone; a checkpoint sealed {sealed_seq}",
                    self.expected_seq
                ),
            ));
        }
        NodeReport {
            node_id: self.node_id,
            first_seq: self.first_seq,
            last_seq: self.last_seq,
            records_checked: self.records_checked,
            checkpoints_checked,
            last_sealed_seq: self.checkpoints.last_key_value().map(|(s, _)| *s),
            problem: self.problem,
        }
    }
}

/// Where a record whose hash fails was first written: the position its
/// predecessor link points to, else a nearby position where it verifies.
fn original_position(r: &AuditRecord, by_hash: &HashMap<[u8; 32], u64>) -> Option<u64> {
    let linked = by_hash.get(&r.prev_hash).map(|s| s + 1);
    let nearby = (1..=MOVE_SEARCH).flat_map(|d| [r.seq.checked_sub(d), r.seq.checked_add(d)]);
    linked
        .into_iter()
        .chain(nearby.flatten())
        .filter(|&s| s != r.seq && s > 0)
        .find(|&s| r.compute_hash_at(s) == r.record_hash)
}

fn problem(seq: u64, kind: ProblemKind, detail: impl Into<String>) -> Problem {
    Problem {
        seq,
        kind,
        detail: detail.into(),
    }
}

#[cfg(test)]
mod tests {
    use chrono::DateTime;

    use super::*;
    use crate::audit::{AuditEvent, Outcome};

    fn chain(n: u64) -> Vec<AuditRecord> {
        let mut prev = GENESIS_HASH;
        (1..=n)
            .map(|seq| {
                let at = DateTime::from_timestamp(1_764_000_000 + seq as i64, 0).unwrap();
                let e = AuditEvent::system("token.tokenize", at, Outcome::Success)
                    .with_resource(format!("tok_{seq}"));
                let r = AuditRecord::link("n1", seq, prev, e);
                prev = r.record_hash;
                r
            })
            .collect()
    }

    fn cp(records: &[AuditRecord], seq: u64) -> Checkpoint {
        Checkpoint {
            node_id: "n1".into(),
            seq,
            record_hash: records[(seq - 1) as usize].record_hash,
            at_us: 0,
            key_id: "k".into(),
            seal: [0; 32],
        }
    }

    fn verify(records: &[AuditRecord], cps: &[Checkpoint]) -> NodeReport {
        let mut v = ChainVerifier::new("n1", None, cps);
        for page in records.chunks(4) {
            v.feed(page.to_vec());
        }
        v.finish(cps.len() as u64)
    }

    fn renumber(records: &mut [AuditRecord], from: usize, by: i64) {
        for r in &mut records[from..] {
            r.seq = (r.seq as i64 + by) as u64;
        }
    }

    #[test]
    fn an_intact_chain_verifies() {
        let records = chain(10);
        let report = verify(&records, &[cp(&records, 5), cp(&records, 10)]);
        assert_eq!(report.problem, None);
        assert_eq!(report.records_checked, 10);
        assert_eq!(report.last_sealed_seq, Some(10));
    }

    #[test]
    fn each_kind_of_tampering_is_named() {
        let base = chain(10);
        let cps = [cp(&base, 10)];
        let kind = |records: &[AuditRecord]| {
            let p = verify(records, &cps).problem.unwrap();
            (p.seq, p.kind)
        };

        let mut edited = base.clone();
        edited[4].actor_id = "mallory".into();
        assert_eq!(kind(&edited), (5, ProblemKind::Modified));

        let mut deleted = base.clone();
        deleted.remove(4);
        assert_eq!(kind(&deleted), (5, ProblemKind::Missing));

        let mut deleted_renumbered = base.clone();
        deleted_renumbered.remove(4);
        renumber(&mut deleted_renumbered, 4, -1);
        assert_eq!(kind(&deleted_renumbered), (5, ProblemKind::Missing));

        let mut inserted = base.clone();
        renumber(&mut inserted, 4, 1);
        let forged = AuditRecord::link(
            "n1",
            5,
            base[3].record_hash,
            AuditEvent::system(
                "x",
                DateTime::from_timestamp(0, 0).unwrap(),
                Outcome::Success,
            ),
        );
        inserted.insert(4, forged);
        assert_eq!(kind(&inserted), (5, ProblemKind::Inserted));

        let mut swapped = base.clone();
        swapped.swap(3, 6);
        swapped[3].seq = 4;
        swapped[6].seq = 7;
        assert_eq!(kind(&swapped), (4, ProblemKind::Reordered));

        let mut cut = base.clone();
        cut.truncate(7);
        assert_eq!(kind(&cut), (8, ProblemKind::Truncated));

        let mut relinked = base.clone();
        relinked[4] = AuditRecord::link(
            "n1",
            5,
            [3; 32],
            AuditEvent::system(
                "x",
                DateTime::from_timestamp(0, 0).unwrap(),
                Outcome::Success,
            ),
        );
        assert_eq!(kind(&relinked), (5, ProblemKind::BrokenLink));
    }

    #[test]
    fn a_recomputed_chain_fails_at_the_sealed_checkpoint() {
        let base = chain(10);
        let cps = [cp(&base, 3), cp(&base, 8)];
        let mut rewritten = base[..3].to_vec();
        let mut prev = base[2].record_hash;
        for r in &base[3..] {
            let mut r = r.clone();
            r.actor_id = "mallory".into();
            r.prev_hash = prev;
            r.record_hash = r.compute_hash();
            prev = r.record_hash;
            rewritten.push(r);
        }
        let p = verify(&rewritten, &cps).problem.unwrap();
        assert_eq!((p.seq, p.kind), (4, ProblemKind::CheckpointMismatch));
    }

    #[test]
    fn a_chain_resumes_after_an_archived_checkpoint() {
        let base = chain(10);
        let anchor = cp(&base, 4);
        let mut v = ChainVerifier::new("n1", Some(&anchor), &[cp(&base, 10)]);
        v.feed(base[4..].to_vec());
        let report = v.finish(2);
        assert_eq!(report.problem, None);
        assert_eq!((report.first_seq, report.records_checked), (5, 6));
    }
}
