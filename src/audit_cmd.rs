//! `voltvault audit verify|search|export`: the auditors' command line. It
//! connects to the database like the service, writes its own reads into
//! the trail under node `<node_id>.cli`, and never migrates.

use std::io::Write;

use chrono::{DateTime, Utc};

use crate::app::{KeyCore, open_keys};
use crate::audit::{AuditLog, AuditQuery, Cursor, ExportFormat, Outcome, Reader, VerifyReport};
use crate::cli::{AuditCommand, AuditFilters, AuditFormat};
use crate::clock::Environment;
use crate::config::Config;
use crate::store;

/// Runs one audit command. `Ok(false)` means the command worked and found
/// a broken chain (the process exits 1).
pub async fn run(command: AuditCommand) -> Result<bool, String> {
    let config_path = match &command {
        AuditCommand::Verify { config, .. }
        | AuditCommand::Search { config, .. }
        | AuditCommand::Archive { config, .. }
        | AuditCommand::Export { config, .. } => config.clone(),
    };
    let config = Config::load(&config_path).map_err(|e| e.to_string())?;
    let store = store::connect(&config).await.map_err(|e| e.to_string())?;
    let env = Environment::system();
    let node = format!("{}.cli", config.node_id());
    // Reads are audited and checkpoints sealed with the HSM's audit key, as in the service.
    let KeyCore {
        audit: writer,
        audit_log: log,
        ..
    } = open_keys(&config, &env, store.clone(), None, &node, 1)
        .await
        .map_err(|e| e.to_string())?;
    let reader = Reader::command_line(&os_user());
    let result = execute(&log, &reader, command).await;
    drop(log);
    writer.stop().await;
    store.close().await;
    result
}

async fn execute(log: &AuditLog, reader: &Reader, command: AuditCommand) -> Result<bool, String> {
    match command {
        AuditCommand::Verify { json, .. } => {
            let report = log.verify(reader).await.map_err(|e| e.to_string())?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?
                );
            } else {
                print!("{}", describe(&report));
            }
            Ok(report.ok)
        }
        AuditCommand::Search {
            filters,
            cursor,
            limit,
            ..
        } => {
            let mut query = query(&filters)?;
            query.limit = limit;
            query.after = cursor
                .as_deref()
                .map(Cursor::decode)
                .transpose()
                .map_err(|e| format!("--cursor: {e}"))?;
            let page = log
                .search(reader, &query)
                .await
                .map_err(|e| e.to_string())?;
            println!(
                "{}",
                serde_json::to_string_pretty(&page).map_err(|e| e.to_string())?
            );
            Ok(true)
        }
        AuditCommand::Archive { dir, .. } => {
            let archived = log.archive(reader, &dir).await.map_err(|e| e.to_string())?;
            for a in &archived {
                println!(
                    "node {}: records {}..={} ({}) archived to {}",
                    a.node_id,
                    a.first_seq,
                    a.through_seq,
                    a.records,
                    a.file.display()
                );
            }
            if archived.is_empty() {
                println!("nothing older than the queryable window");
            }
            Ok(true)
        }
        AuditCommand::Export {
            filters,
            format,
            output,
            ..
        } => {
            let format = match format {
                AuditFormat::Jsonl => ExportFormat::Jsonl,
                AuditFormat::Csv => ExportFormat::Csv,
            };
            let mut out: Box<dyn Write> = match &output {
                Some(path) => Box::new(owner_only_file(path)?),
                None => Box::new(std::io::stdout().lock()),
            };
            let mut export = log
                .export(reader, query(&filters)?, format)
                .await
                .map_err(|e| e.to_string())?;
            while let Some(chunk) = export.next_chunk().await.map_err(|e| e.to_string())? {
                out.write_all(&chunk)
                    .map_err(|e| format!("output: {}", e.kind()))?;
            }
            out.flush().map_err(|e| format!("output: {}", e.kind()))?;
            Ok(true)
        }
    }
}

/// One line per node.
pub fn describe(report: &VerifyReport) -> String {
    let mut text = String::new();
    for node in &report.nodes {
        let sealed = node
            .last_sealed_seq
            .map_or("none".to_owned(), |s| s.to_string());
        let line = match &node.problem {
            None => format!(
                "node {}: ok, {} records checked from {}, sealed through {}\n",
                node.node_id, node.records_checked, node.first_seq, sealed
            ),
            Some(p) => format!(
                "node {}: BROKEN at record {}: {:?}: {}\n",
                node.node_id, p.seq, p.kind, p.detail
            ),
        };
        text.push_str(&line);
    }
    if report.nodes.is_empty() {
        text.push_str("no audit records\n");
    }
    text
}

fn query(filters: &AuditFilters) -> Result<AuditQuery, String> {
    let time = |name: &str, text: &Option<String>| -> Result<Option<DateTime<Utc>>, String> {
        text.as_deref()
            .map(|t| {
                DateTime::parse_from_rfc3339(t)
                    .map(|t| t.with_timezone(&Utc))
                    .map_err(|_| format!("--{name}: an RFC 3339 time"))
            })
            .transpose()
    };
    let mut query = AuditQuery::new();
    query.from = time("from", &filters.from)?;
    query.to = time("to", &filters.to)?;
    query.actor_id = filters.actor.clone();
    query.event_type = filters.event_type.clone();
    query.resource = filters.resource.clone();
    query.outcome = filters
        .outcome
        .as_deref()
        .map(|o| Outcome::parse(o).ok_or("--outcome: success, failure or denied"))
        .transpose()?;
    Ok(query)
}

fn owner_only_file(path: &std::path::Path) -> Result<std::fs::File, String> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| format!("{}: {}", path.display(), e.kind()))
}

fn os_user() -> String {
    let uid = nix::unistd::getuid();
    match nix::unistd::User::from_uid(uid) {
        Ok(Some(user)) => format!("os:{}", user.name),
        _ => format!("os-uid:{uid}"),
    }
}
