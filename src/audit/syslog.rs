//! A copy of the trail for a SIEM: every committed record as an RFC 5424
//! message over TLS (RFC 5425, octet-counting frames). The database stays
//! the record of truth; forwarding never holds up or fails a request. If
//! the SIEM is away or slow, messages are dropped and counted in the log.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use super::event::Outcome;
use super::record::AuditRecord;

/// Private enterprise number placeholder for the structured-data id.
const SD_ID: &str = "voltvault@32473";
/// Facility 13 (log audit).
const FACILITY: u8 = 13;

/// One record as an RFC 5424 message.
pub fn format_rfc5424(record: &AuditRecord, hostname: &str) -> String {
    let severity = match record.outcome {
        Outcome::Success => 5,                   // notice
        Outcome::Failure | Outcome::Denied => 4, // warning
    };
    let timestamp = record
        .at()
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true))
        .unwrap_or_else(|| "-".into());
    let mut sd = format!(
        "[{SD_ID} node=\"{}\" seq=\"{}\" actor_kind=\"{}\" actor=\"{}\" outcome=\"{}\"",
        param(&record.node_id),
        record.seq,
        record.actor_kind.as_str(),
        param(&record.actor_id),
        record.outcome.as_str()
    );
    for (name, value) in [
        ("origin", &record.origin),
        ("resource", &record.resource),
        ("request_id", &record.request_id),
        ("reason", &record.reason),
    ] {
        if let Some(value) = value {
            sd.push_str(&format!(" {name}=\"{}\"", param(value)));
        }
    }
    if let Some(tenant) = record.tenant {
        sd.push_str(&format!(" tenant=\"{tenant}\""));
    }
    sd.push_str(&format!(" hash=\"{}\"]", hex::encode(record.record_hash)));
    format!(
        "<{}>1 {timestamp} {} voltvault - {} {sd}",
        FACILITY * 8 + severity,
        header_field(hostname, 255),
        header_field(&record.event_type, 32),
    )
}

/// RFC 5424 PARAM-VALUE: `"`, `\` and `]` escaped.
fn param(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        if matches!(c, '"' | '\\' | ']') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// A header field: printable US-ASCII, no spaces, bounded; `-` if empty.
fn header_field(value: &str, max: usize) -> String {
    let cleaned: String = value
        .chars()
        .filter(|c| c.is_ascii_graphic())
        .take(max)
        .collect();
    if cleaned.is_empty() {
        "-".into()
    } else {
        cleaned
    }
}

/// Where to send, and whom to trust.
#[derive(Clone)]
pub struct SyslogTarget {
    /// `host:port` of the collector.
    pub address: String,
    /// The name its certificate must carry.
    pub server_name: rustls_pki_types::ServerName<'static>,
    pub tls: Arc<rustls::ClientConfig>,
    /// This node's name in the HOSTNAME field.
    pub hostname: String,
}

/// The sending side the writer holds.
#[derive(Clone)]
pub struct SyslogForwarder {
    queue: mpsc::Sender<Vec<AuditRecord>>,
}

impl SyslogForwarder {
    /// Starts the forwarding task.
    pub fn start(target: SyslogTarget) -> Self {
        let (queue, receiver) = mpsc::channel(1024);
        tokio::spawn(forward(target, receiver));
        Self { queue }
    }

    /// Hands over committed records; never waits.
    pub fn offer(&self, records: &[AuditRecord]) {
        if records.is_empty() {
            return;
        }
        if self.queue.try_send(records.to_vec()).is_err() {
            tracing::warn!(
                dropped = records.len(),
                "syslog forwarding is behind; records not forwarded"
            );
        }
    }
}

async fn forward(target: SyslogTarget, mut receiver: mpsc::Receiver<Vec<AuditRecord>>) {
    let mut stream: Option<TlsStream<TcpStream>> = None;
    while let Some(records) = receiver.recv().await {
        let mut frames = Vec::new();
        for record in &records {
            let message = format_rfc5424(record, &target.hostname);
            frames.extend_from_slice(format!("{} {message}", message.len()).as_bytes());
        }
        for attempt in 0..2 {
            if stream.is_none() {
                stream = connect(&target).await;
            }
            let Some(s) = stream.as_mut() else { break };
            match s.write_all(&frames).await.and(s.flush().await) {
                Ok(()) => break,
                Err(_) => {
                    stream = None;
                    if attempt == 1 {
                        break;
                    }
                }
            }
        }
        if stream.is_none() {
            tracing::warn!(
                dropped = records.len(),
                "syslog collector unreachable; records not forwarded"
            );
        }
    }
    if let Some(mut s) = stream {
        let _ = s.shutdown().await;
    }
}

async fn connect(target: &SyslogTarget) -> Option<TlsStream<TcpStream>> {
    let tcp = tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(&target.address))
        .await
        .ok()?
        .ok()?;
    let connector = TlsConnector::from(target.tls.clone());
    match tokio::time::timeout(
        Duration::from_secs(5),
        connector.connect(target.server_name.clone(), tcp),
    )
    .await
    {
        Ok(Ok(stream)) => Some(stream),
        _ => {
            tracing::warn!("syslog collector: TLS connection failed");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::DateTime;

    use super::*;
    use crate::audit::AuditEvent;
    use crate::audit::record::GENESIS_HASH;

    #[test]
    fn a_record_becomes_an_rfc5424_message() {
        let at = DateTime::from_timestamp(1_764_000_000, 0).unwrap();
        let event = AuditEvent::system("token.detokenize", at, Outcome::Denied)
            .with_resource("tok_1")
            .with_reason("quote \" slash \\ bracket ]");
        let record = AuditRecord::link("node-a", 3, GENESIS_HASH, event);
        let message = format_rfc5424(&record, "vault host");
        assert!(
            message.starts_with(
                "<108>1 2025-11-24T16:00:00.000000Z vaulthost voltvault - token.detokenize \
                 [voltvault@32473 node=\"node-a\" seq=\"3\" actor_kind=\"system\" \
                 actor=\"voltvault\" outcome=\"denied\" resource=\"tok_1\" \
                 reason=\"quote \\\" slash \\\\ bracket \\]\" hash=\""
            ),
            "{message}"
        );
        assert!(message.ends_with("\"]"));
    }
}
