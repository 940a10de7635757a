//! The record as auditors see it (search results and exports), and the
//! JSON Lines and CSV encodings. JSON Lines is the faithful format; CSV is
//! for spreadsheets, so cells that a spreadsheet would run as a formula get
//! a leading apostrophe.

use serde::Serialize;
use utoipa::ToSchema;

use super::event::{ActorKind, Outcome};
use super::record::AuditRecord;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ExportFormat {
    Jsonl,
    Csv,
}

impl ExportFormat {
    pub fn content_type(self) -> &'static str {
        match self {
            ExportFormat::Jsonl => "application/jsonl",
            ExportFormat::Csv => "text/csv; charset=utf-8",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "jsonl" => Some(ExportFormat::Jsonl),
            "csv" => Some(ExportFormat::Csv),
            _ => None,
        }
    }
}

/// One audit record, with its chain fields in hex so an export can be
/// checked against the chain later.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ExportedRecord {
    pub node_id: String,
    pub seq: u64,
    pub version: i32,
    /// UTC, RFC 3339 with microseconds.
    pub at: String,
    pub event_type: String,
    pub actor_kind: ActorKind,
    pub actor_id: String,
    pub tenant: Option<String>,
    pub outcome: Outcome,
    pub origin: Option<String>,
    pub resource: Option<String>,
    pub request_id: Option<String>,
    pub reason: Option<String>,
    pub prev_hash: String,
    pub record_hash: String,
}

impl From<&AuditRecord> for ExportedRecord {
    fn from(r: &AuditRecord) -> Self {
        Self {
            node_id: r.node_id.clone(),
            seq: r.seq,
            version: r.version,
            at: r
                .at()
                .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true))
                .unwrap_or_default(),
            event_type: r.event_type.clone(),
            actor_kind: r.actor_kind,
            actor_id: r.actor_id.clone(),
            tenant: r.tenant.map(|t| t.to_string()),
            outcome: r.outcome,
            origin: r.origin.clone(),
            resource: r.resource.clone(),
            request_id: r.request_id.clone(),
            reason: r.reason.clone(),
            prev_hash: hex::encode(r.prev_hash),
            record_hash: hex::encode(r.record_hash),
        }
    }
}

const CSV_HEADER: [&str; 15] = [
    "node_id",
    "seq",
    "version",
    "at",
    "event_type",
    "actor_kind",
    "actor_id",
    "tenant",
    "outcome",
    "origin",
    "resource",
    "request_id",
    "reason",
    "prev_hash",
    "record_hash",
];

#[derive(Debug, thiserror::Error)]
#[error("the export could not be encoded")]
pub struct EncodeError;

/// The bytes that start an export (the CSV header line).
pub fn preamble(format: ExportFormat) -> Result<Vec<u8>, EncodeError> {
    match format {
        ExportFormat::Jsonl => Ok(Vec::new()),
        ExportFormat::Csv => csv_rows(std::iter::once(CSV_HEADER.map(String::from).to_vec())),
    }
}

/// Encodes one page of records.
pub fn encode(format: ExportFormat, records: &[AuditRecord]) -> Result<Vec<u8>, EncodeError> {
    match format {
        ExportFormat::Jsonl => {
            let mut out = Vec::new();
            for r in records {
                serde_json::to_writer(&mut out, &ExportedRecord::from(r))
                    .map_err(|_| EncodeError)?;
                out.push(b'\n');
            }
            Ok(out)
        }
        ExportFormat::Csv => csv_rows(records.iter().map(|r| {
            let e = ExportedRecord::from(r);
            [
                e.node_id,
                e.seq.to_string(),
                e.version.to_string(),
                e.at,
                e.event_type,
                e.actor_kind.as_str().to_owned(),
                e.actor_id,
                e.tenant.unwrap_or_default(),
                e.outcome.as_str().to_owned(),
                e.origin.unwrap_or_default(),
                e.resource.unwrap_or_default(),
                e.request_id.unwrap_or_default(),
                e.reason.unwrap_or_default(),
                e.prev_hash,
                e.record_hash,
            ]
            .into_iter()
            .map(defuse_formula)
            .collect()
        })),
    }
}

fn csv_rows(rows: impl Iterator<Item = Vec<String>>) -> Result<Vec<u8>, EncodeError> {
    let mut writer = csv::WriterBuilder::new()
        .terminator(csv::Terminator::CRLF)
        .from_writer(Vec::new());
    for row in rows {
        writer.write_record(&row).map_err(|_| EncodeError)?;
    }
    writer.into_inner().map_err(|_| EncodeError)
}

/// A cell a spreadsheet would evaluate gets a leading apostrophe.
fn defuse_formula(cell: String) -> String {
    match cell.as_bytes().first() {
        Some(b'=' | b'+' | b'-' | b'@' | b'\t' | b'\r') => format!("'{cell}"),
        _ => cell,
    }
}

#[cfg(test)]
mod tests {
    use chrono::DateTime;

    use super::*;
    use crate::audit::AuditEvent;
    use crate::audit::record::GENESIS_HASH;

    fn record() -> AuditRecord {
        let at = DateTime::from_timestamp(1_764_000_000, 5_000).unwrap();
        let event = AuditEvent::system("token.delete", at, Outcome::Denied)
            .with_resource("tok_1")
            .with_reason("=HYPERLINK(\"x\"), \"quoted\"\nline");
        AuditRecord::link("n1", 1, GENESIS_HASH, event)
    }

    #[test]
    fn jsonl_is_one_object_per_line() {
        let out = encode(ExportFormat::Jsonl, &[record(), record()]).unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<_> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        let v: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
        assert_eq!(v["at"], "2025-11-24T16:00:00.000005Z");
        assert_eq!(v["outcome"], "denied");
        assert_eq!(v["record_hash"].as_str().unwrap().len(), 64);
    }

    #[test]
    fn csv_quotes_and_defuses_formulas() {
        let mut out = preamble(ExportFormat::Csv).unwrap();
        out.extend(encode(ExportFormat::Csv, &[record()]).unwrap());
        let mut reader = csv::Reader::from_reader(out.as_slice());
        assert_eq!(reader.headers().unwrap().len(), 15);
        let row = reader.records().next().unwrap().unwrap();
        assert_eq!(&row[12], "'=HYPERLINK(\"x\"), \"quoted\"\nline");
        assert_eq!(&row[4], "token.delete");
    }
}
