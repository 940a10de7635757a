//! The audit trail on both databases: group-committed chains per node,
//! tampering of every kind named by the verifier, append-only tables,
//! fail-closed writes, search, export, and no card number anywhere.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::Connection;
use voltvault::audit::{
    ActorKind, AuditEvent, AuditLog, AuditQuery, AuditRecord, AuditSink, AuditWriter,
    CheckpointSealer, ExportFormat, Outcome, ProblemKind, Reader, SoftwareSealer, WriterConfig,
    WriterTask, verify_all,
};
use voltvault::clock::{Clock, FixedClock};
use voltvault::store::Store;

use crate::helpers::{Backend, TestDb, contains_bytes};

const PAN: &str = "4111111111111111";

fn at(secs: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_764_000_000 + secs, 0).unwrap()
}

fn sealer() -> Arc<dyn CheckpointSealer> {
    Arc::new(SoftwareSealer::new("test-audit-1", &[42; 32]))
}

fn clock() -> Arc<dyn Clock> {
    Arc::new(FixedClock::new(at(0)))
}

/// Checkpoints only when asked, so each test decides what is sealed.
fn manual_checkpoints() -> WriterConfig {
    WriterConfig {
        checkpoint_every: u64::MAX,
        checkpoint_interval: Duration::from_secs(3600),
        ..WriterConfig::default()
    }
}

async fn writer(store: &Arc<dyn Store>, node: &str) -> WriterTask {
    let store: Arc<dyn voltvault::store::AuditStore> = store.clone();
    AuditWriter::start(store, sealer(), clock(), node, manual_checkpoints())
        .await
        .unwrap()
}

fn event(i: i64) -> AuditEvent {
    AuditEvent {
        event_type: if i % 2 == 0 {
            "token.tokenize".into()
        } else {
            "token.detokenize".into()
        },
        at: at(i),
        actor_kind: ActorKind::Client,
        actor_id: format!("app-{}", i % 3),
        tenant: None,
        outcome: if i % 5 == 0 {
            Outcome::Denied
        } else {
            Outcome::Success
        },
        origin: Some("192.0.2.10".into()),
        resource: Some(format!("tok_{i}")),
        request_id: Some(format!("req-{i}")),
        reason: None,
    }
}

async fn verify(store: &Arc<dyn Store>) -> voltvault::audit::VerifyReport {
    verify_all(store.as_ref(), sealer().as_ref()).await.unwrap()
}

/// A chain of 21 records on node `n1` (audit.start + 20 events), sealed at 21.
async fn sealed_chain(db: &TestDb) -> Arc<dyn Store> {
    let store = db.store().await;
    let task = writer(&store, "n1").await;
    let sink = task.handle();
    for i in 1..=20 {
        sink.record(event(i)).await.unwrap();
    }
    sink.checkpoint().await.unwrap();
    drop(sink);
    store
}

/// Runs SQL as someone who got around the service: on PostgreSQL a
/// superuser with triggers off, on SQLite someone who can write the file.
pub(crate) async fn tamper(db: &TestDb, statements: &[&str]) {
    match db.backend {
        Backend::Postgres => {
            let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap();
            sqlx::query("SET session_replication_role = replica")
                .execute(&mut conn)
                .await
                .unwrap();
            for sql in statements {
                sqlx::query(sql).execute(&mut conn).await.unwrap();
            }
            conn.close().await.unwrap();
        }
        Backend::Sqlite => {
            let mut conn = sqlx::SqliteConnection::connect(&db.url).await.unwrap();
            for trigger in [
                "audit_events_no_update",
                "audit_events_delete_archived_only",
            ] {
                sqlx::query(&format!("DROP TRIGGER IF EXISTS {trigger}"))
                    .execute(&mut conn)
                    .await
                    .unwrap();
            }
            for sql in statements {
                sqlx::query(sql).execute(&mut conn).await.unwrap();
            }
            conn.close().await.unwrap();
        }
    }
}

async fn first_problem(store: &Arc<dyn Store>) -> (u64, ProblemKind) {
    let report = verify(store).await;
    assert!(!report.ok);
    let problem = report.nodes[0].problem.clone().unwrap();
    (problem.seq, problem.kind)
}

async fn an_intact_chain_verifies(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = sealed_chain(&db).await;
    let report = verify(&store).await;
    assert!(report.ok, "{report:?}");
    let node = &report.nodes[0];
    assert_eq!(node.node_id, "n1");
    assert_eq!((node.records_checked, node.last_sealed_seq), (21, Some(21)));
}

async fn an_edited_field_is_named(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = sealed_chain(&db).await;
    tamper(
        &db,
        &["UPDATE audit_events SET actor_id = 'someone-else' WHERE node_id = 'n1' AND seq = 7"],
    )
    .await;
    assert_eq!(first_problem(&store).await, (7, ProblemKind::Modified));
}

async fn a_deleted_record_is_named(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = sealed_chain(&db).await;
    tamper(
        &db,
        &["DELETE FROM audit_events WHERE node_id = 'n1' AND seq = 7"],
    )
    .await;
    assert_eq!(first_problem(&store).await, (7, ProblemKind::Missing));
}

async fn an_inserted_record_is_named(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = sealed_chain(&db).await;
    // Make room at 7, then forge a record that links correctly to 6.
    tamper(
        &db,
        &[
            "UPDATE audit_events SET seq = seq + 1000 WHERE node_id = 'n1' AND seq >= 7",
            "UPDATE audit_events SET seq = seq - 999 WHERE node_id = 'n1' AND seq >= 1007",
        ],
    )
    .await;
    let six = store.audit_chain_page("n1", 5, 1).await.unwrap().remove(0);
    let forged = AuditRecord::link("n1", 7, six.record_hash, event(99));
    store.append_audit(&[forged], None).await.unwrap();
    assert_eq!(first_problem(&store).await, (7, ProblemKind::Inserted));
}

async fn swapped_records_are_named(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = sealed_chain(&db).await;
    tamper(
        &db,
        &[
            "UPDATE audit_events SET seq = 100007 WHERE node_id = 'n1' AND seq = 7",
            "UPDATE audit_events SET seq = 7 WHERE node_id = 'n1' AND seq = 12",
            "UPDATE audit_events SET seq = 12 WHERE node_id = 'n1' AND seq = 100007",
        ],
    )
    .await;
    assert_eq!(first_problem(&store).await, (7, ProblemKind::Reordered));
}

async fn a_cut_tail_is_named(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = sealed_chain(&db).await;
    tamper(
        &db,
        &["DELETE FROM audit_events WHERE node_id = 'n1' AND seq >= 18"],
    )
    .await;
    assert_eq!(first_problem(&store).await, (18, ProblemKind::Truncated));
}

async fn a_recomputed_chain_fails_at_its_checkpoint(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = sealed_chain(&db).await;
    // Rewrite record 7 and recompute every hash after it: only the seal can tell.
    let mut records = store.audit_chain_page("n1", 6, 100).await.unwrap();
    let mut prev = store.audit_chain_page("n1", 5, 1).await.unwrap()[0].record_hash;
    tamper(
        &db,
        &["DELETE FROM audit_events WHERE node_id = 'n1' AND seq >= 7"],
    )
    .await;
    records[0].actor_id = "someone-else".into();
    for r in &mut records {
        r.prev_hash = prev;
        r.record_hash = r.compute_hash();
        prev = r.record_hash;
    }
    store.append_audit(&records, None).await.unwrap();
    assert_eq!(
        first_problem(&store).await,
        (1, ProblemKind::CheckpointMismatch)
    );
}

async fn a_forged_checkpoint_is_named(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = sealed_chain(&db).await;
    let other_key = SoftwareSealer::new("test-audit-1", &[1; 32]);
    let head = store.audit_chain_page("n1", 20, 1).await.unwrap().remove(0);
    let forged = voltvault::audit::Checkpoint::seal(&other_key, "n1", 21, head.record_hash, 0)
        .await
        .unwrap();
    let mut forged_later = forged.clone();
    forged_later.seq = 25;
    store.append_audit(&[], Some(&forged_later)).await.unwrap();
    assert_eq!(
        first_problem(&store).await,
        (25, ProblemKind::CheckpointForged)
    );
}

async fn the_service_cannot_change_or_remove_audit_rows(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = sealed_chain(&db).await;
    let refused = |sql: &'static str, why: &'static str| {
        let url = db.url.clone();
        async move {
            let result = match backend {
                Backend::Postgres => {
                    let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
                    sqlx::query(sql).execute(&mut conn).await.map(|_| ())
                }
                Backend::Sqlite => {
                    let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
                    sqlx::query(sql).execute(&mut conn).await.map(|_| ())
                }
            };
            let error = result.expect_err(sql).to_string();
            assert!(error.contains(why), "{sql}: {error}");
        }
    };
    refused(
        "UPDATE audit_events SET actor_id = 'x' WHERE seq = 3",
        "append-only",
    )
    .await;
    refused("DELETE FROM audit_events WHERE seq = 3", "append-only").await;
    refused("DELETE FROM audit_events", "append-only").await;
    refused("UPDATE audit_checkpoints SET seq = 2", "append-only").await;
    refused("DELETE FROM audit_checkpoints", "append-only").await;
    if backend == Backend::Postgres {
        refused("TRUNCATE audit_events", "append-only").await;
        refused("TRUNCATE audit_checkpoints CASCADE", "append-only").await;
        refused("SELECT audit_purge('n1', 21)", "no archive holds").await;
    }
    assert!(verify(&store).await.ok);
}

async fn two_nodes_writing_at_once_keep_valid_chains(backend: Backend) {
    let db = TestDb::new(backend).await;
    // Two stores with their own pools, as two service processes would have.
    let store_a = db.store().await;
    let store_b = db.store().await;
    let a = writer(&store_a, "node-a").await;
    let b = writer(&store_b, "node-b").await;
    let mut tasks = Vec::new();
    for i in 0..200 {
        let sink = if i % 2 == 0 { a.handle() } else { b.handle() };
        tasks.push(tokio::spawn(async move { sink.record(event(i)).await }));
    }
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    a.stop().await;
    b.stop().await;
    let report = verify(&store_a).await;
    assert!(report.ok, "{report:?}");
    let counts: Vec<_> = report
        .nodes
        .iter()
        .map(|n| (n.node_id.as_str(), n.records_checked, n.last_sealed_seq))
        .collect();
    // audit.start + 100 events + audit.stop each, sealed at the end.
    assert_eq!(
        counts,
        [("node-a", 102, Some(102)), ("node-b", 102, Some(102))]
    );
}

async fn a_restarted_writer_continues_its_chain(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    for round in 0..2 {
        let task = writer(&store, "n1").await;
        let handle = task.handle();
        handle.record(event(round)).await.unwrap();
        task.stop().await;
        // A stopped writer refuses, rather than losing events.
        assert!(handle.record(event(9)).await.is_err());
    }
    let report = verify(&store).await;
    assert!(report.ok, "{report:?}");
    assert_eq!(report.nodes[0].records_checked, 6);
    let types: Vec<_> = store
        .audit_chain_page("n1", 0, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.event_type)
        .collect();
    assert_eq!(
        types,
        [
            "audit.start",
            "token.tokenize",
            "audit.stop",
            "audit.start",
            "token.detokenize",
            "audit.stop"
        ]
    );
}

async fn a_write_fails_closed_when_the_database_is_gone(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    let task = writer(&store, "n1").await;
    let sink = task.handle();
    sink.record(event(1)).await.unwrap();
    store.close().await;
    let result = sink.record(event(2)).await;
    assert!(
        matches!(result, Err(voltvault::audit::AuditError::Unavailable)),
        "{result:?}"
    );
}

async fn search_filters_and_pages_with_a_cursor(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    let task = writer(&store, "n1").await;
    let sink: Arc<dyn AuditSink> = Arc::new(task.handle());
    for i in 1..=30 {
        sink.record(event(i)).await.unwrap();
    }
    let log = AuditLog::new(store.clone(), sealer(), sink, clock());
    let reader = Reader::command_line("auditor-1");

    let mut query = AuditQuery::new();
    query.actor_id = Some("app-1".into());
    query.from = Some(at(5));
    query.to = Some(at(26));
    query.limit = 3;
    let mut seen = Vec::new();
    loop {
        let page = log.search(&reader, &query).await.unwrap();
        assert!(page.events.len() <= 3);
        seen.extend(page.events.iter().map(|e| e.resource.clone().unwrap()));
        match page.next_cursor {
            Some(cursor) => query.after = Some(voltvault::audit::Cursor::decode(&cursor).unwrap()),
            None => break,
        }
    }
    // app-1 is i % 3 == 1; from 5 (inclusive) to 26 (exclusive).
    let expected: Vec<_> = (5..26)
        .filter(|i| i % 3 == 1)
        .map(|i| format!("tok_{i}"))
        .collect();
    assert_eq!(seen, expected);

    let mut denied = AuditQuery::new();
    denied.outcome = Some(Outcome::Denied);
    denied.event_type = Some("token.detokenize".into());
    let page = log.search(&reader, &denied).await.unwrap();
    let resources: Vec<_> = page
        .events
        .iter()
        .map(|e| e.resource.clone().unwrap())
        .collect();
    assert_eq!(resources, ["tok_5", "tok_15", "tok_25"]);

    let mut by_resource = AuditQuery::new();
    by_resource.resource = Some("tok_9".into());
    assert_eq!(
        log.search(&reader, &by_resource)
            .await
            .unwrap()
            .events
            .len(),
        1
    );

    // Every read was itself recorded, with who and what.
    let mut reads = AuditQuery::new();
    reads.event_type = Some("audit.search".into());
    reads.limit = 1000;
    let reads = log.search(&reader, &reads).await.unwrap().events;
    assert!(reads.len() >= 6, "{}", reads.len());
    assert!(reads.iter().all(|r| r.actor_id == "auditor-1"));
    assert!(
        reads
            .iter()
            .any(|r| r.reason.as_deref() == Some("resource=tok_9"))
    );
}

async fn exports_hold_every_record_and_no_card_number(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    let task = writer(&store, "n1").await;
    let sink: Arc<dyn AuditSink> = Arc::new(task.handle());
    // Callers must never do this; the trail masks it if one does.
    let spaced = "4111 1111 1111 1111";
    let careless = AuditEvent {
        actor_id: format!("card-{PAN}"),
        origin: Some(spaced.into()),
        resource: Some(format!("pan:{PAN}")),
        request_id: Some(PAN.into()),
        reason: Some(format!("declined {spaced} / {PAN}")),
        ..event(1)
    };
    sink.record(careless).await.unwrap();
    for i in 2..=1205 {
        sink.record(event(i)).await.unwrap();
    }
    let log = AuditLog::new(store.clone(), sealer(), sink, clock());
    let reader = Reader::command_line("auditor-1");
    for format in [ExportFormat::Jsonl, ExportFormat::Csv] {
        let mut export = log
            .export(&reader, AuditQuery::new(), format)
            .await
            .unwrap();
        let mut out = Vec::new();
        while let Some(chunk) = export.next_chunk().await.unwrap() {
            out.extend(chunk);
        }
        assert!(!contains_bytes(&out, PAN.as_bytes()), "{format:?}");
        assert!(!contains_bytes(&out, spaced.as_bytes()), "{format:?}");
        let text = String::from_utf8(out).unwrap();
        let rows = match format {
            ExportFormat::Jsonl => text.lines().count(),
            ExportFormat::Csv => csv::Reader::from_reader(text.as_bytes()).records().count(),
        };
        // audit.start, 1205 events and the first export's own event.
        let expected = if format == ExportFormat::Jsonl {
            1207
        } else {
            1208
        };
        assert_eq!(rows, expected, "{format:?}");
    }
    if let Some(path) = db.sqlite_path() {
        let mut bytes = std::fs::read(&path).unwrap();
        if let Ok(wal) = std::fs::read(path.with_extension("db-wal")) {
            bytes.extend(wal);
        }
        assert!(!contains_bytes(&bytes, PAN.as_bytes()));
    }
    assert!(verify(&store).await.ok);
}

/// `voltvault audit verify` exits 0 on an intact trail and 1 naming the
/// first bad record once it is tampered with; `export` writes an owner-only file.
#[tokio::test]
async fn the_audit_command_verifies_and_exports() {
    use std::os::unix::fs::PermissionsExt;
    let db = TestDb::new(Backend::Sqlite).await;
    db.store().await.close().await;
    let pki = crate::helpers::TestPki::new();
    let config = pki.path("voltvault.toml");
    std::fs::write(
        &config,
        format!(
            "version = 1\nnode_id = \"cli-test\"\n[server]\nlisten = \"127.0.0.1:0\"\n\
             [tls]\nclient_auth = \"none\"\ncert_file = \"{}\"\nkey_file = \"{}\"\n[database]\nurl = \"{}\"\n\
             [auth]\npepper_file = \"{}\"\n\
             [keys]\nprovider = \"pkcs11\"\n[keys.pkcs11]\nmodule = \"{}\"\ntoken_label = \"{}\"\npin_file = \"{}\"\n",
            pki.path("server.pem").display(),
            pki.path("server.key").display(),
            db.url,
            pki.path("pepper").display(),
            voltvault::keys::testing::SOFTHSM_MODULE,
            pki.token.label,
            pki.path("hsm.pin").display(),
        ),
    )
    .unwrap();
    // Checkpoints are sealed with the HSM's audit key: initialize the keys first.
    let init = std::process::Command::new(env!("CARGO_BIN_EXE_voltvault"))
        .args(["keys", "init", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(
        init.status.success(),
        "{}",
        String::from_utf8_lossy(&init.stderr)
    );
    let run = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_voltvault"))
            .arg("audit")
            .args(args)
            .arg("--config")
            .arg(&config)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8(out.stdout).unwrap(),
            String::from_utf8(out.stderr).unwrap(),
        )
    };
    let (ok, stdout, stderr) = run(&["verify"]);
    assert!(ok, "{stdout}{stderr}");
    let (ok, stdout, _) = run(&["verify"]);
    assert!(ok);
    assert!(
        stdout.contains("node cli-test.cli: ok, ")
            && stdout.contains(" records checked from 1, sealed through "),
        "{stdout}"
    );

    let file = pki.path("export.csv");
    let (ok, _, stderr) = run(&[
        "export",
        "--format",
        "csv",
        "--output",
        file.to_str().unwrap(),
    ]);
    assert!(ok, "{stderr}");
    assert_eq!(
        std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let exported = std::fs::read_to_string(&file).unwrap();
    assert!(exported.contains("audit.verify") && exported.contains("audit.export"));

    let (ok, stdout, _) = run(&["search", "--type", "audit.verify", "--limit", "1"]);
    assert!(ok);
    let page: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert!(
        page["events"][0]["actor_id"]
            .as_str()
            .unwrap()
            .starts_with("os")
    );
    assert!(page["next_cursor"].is_string());

    tamper(
        &db,
        &["UPDATE audit_events SET outcome = 'failure' WHERE node_id = 'cli-test.cli' AND seq = 2"],
    )
    .await;
    let (ok, stdout, stderr) = run(&["verify"]);
    assert!(!ok);
    assert!(stdout.contains("BROKEN at record 2: Modified"), "{stdout}");
    assert!(stderr.contains("failed verification"), "{stderr}");
}

/// Two service instances (own pools, own writers, node ids node-1 and
/// node-2) on one PostgreSQL database under concurrent requests: each node
/// keeps a verifiable chain.
#[tokio::test]
async fn two_services_on_one_postgres_keep_verifiable_chains() {
    let one = crate::helpers::spawn_app_with(
        Backend::Postgres,
        move |c| {
            c.node_id = Some("node-1".into());
        },
        None,
    )
    .await;
    // Both nodes share the database and the HSM token, as in production.
    let url = one.db.url.clone();
    let keys = crate::helpers::test_config(&one.pki, &one.db).keys;
    let pepper = one.pki.path("pepper");
    let two = crate::helpers::spawn_app_with(
        Backend::Postgres,
        move |c| {
            c.node_id = Some("node-2".into());
            c.database.url = url;
            c.keys = keys;
            c.auth.pepper_file = Some(pepper);
        },
        None,
    )
    .await;
    let session = one.staff_session(voltvault::auth::Role::Auditor).await;
    let (client_one, client_two) = (one.bearer_client(&session), two.bearer_client(&session));
    let mut requests = Vec::new();
    for i in 0..120 {
        let (client, url) = if i % 2 == 0 {
            (
                client_one.clone(),
                one.url(&format!("/v1/audit/events?resource=tok_{i}")),
            )
        } else {
            (
                client_two.clone(),
                two.url(&format!("/v1/audit/events?resource=tok_{i}")),
            )
        };
        requests.push(tokio::spawn(async move {
            client.get(url).send().await.unwrap().status()
        }));
    }
    for request in requests {
        assert_eq!(request.await.unwrap(), 200);
    }
    two.stop().await;
    let report: serde_json::Value = client_one
        .get(one.url("/v1/audit/verify"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(report["ok"], true, "{report}");
    let nodes: Vec<_> = report["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            (
                n["node_id"].as_str().unwrap().to_owned(),
                n["records_checked"].as_u64().unwrap(),
            )
        })
        .collect();
    // A chain per audit writer lane (`node-1`, `node-1#1`, ...); per node at
    // least audit.start and 60 searches (plus start-up key and sign-in events).
    let mut per_node = std::collections::BTreeMap::<String, u64>::new();
    for (chain, records) in &nodes {
        let node = chain.split('#').next().unwrap().to_owned();
        *per_node.entry(node).or_default() += records;
    }
    assert_eq!(
        per_node.keys().map(String::as_str).collect::<Vec<_>>(),
        ["node-1", "node-2"],
        "{nodes:?}"
    );
    assert!(per_node.values().all(|n| *n >= 62), "{nodes:?}");
    one.stop().await;
}

/// With `[audit.syslog]`, every committed record also reaches the SIEM as
/// an RFC 5424 message in an octet-counted frame over TLS.
#[tokio::test]
async fn records_are_forwarded_to_syslog_over_tls() {
    use tokio::io::AsyncReadExt;
    let collector_pki = crate::helpers::TestPki::new();
    let tls = voltvault::http::tls::server_config(
        &voltvault::config::TlsConfig {
            cert_file: collector_pki.path("server.pem"),
            key_file: collector_pki.path("server.key"),
            client_auth: voltvault::config::ClientAuth::None,
            client_ca_files: Vec::new(),
        },
        std::sync::Arc::new(voltvault::auth::charger::ChargerTrust::new(
            voltvault::http::tls::provider(),
            Vec::new(),
        )),
    )
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let (messages, mut received) = tokio::sync::mpsc::unbounded_channel::<String>();
    tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let mut stream = tokio_rustls::TlsAcceptor::from(tls)
            .accept(tcp)
            .await
            .unwrap();
        let mut buffer = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            let n = stream.read(&mut chunk).await.unwrap_or(0);
            if n == 0 {
                break;
            }
            buffer.extend_from_slice(&chunk[..n]);
            // Octet counting: "LEN SP MSG".
            while let Some(space) = buffer.iter().position(|b| *b == b' ') {
                let len: usize = std::str::from_utf8(&buffer[..space])
                    .unwrap()
                    .parse()
                    .unwrap();
                if buffer.len() < space + 1 + len {
                    break;
                }
                let message =
                    String::from_utf8(buffer[space + 1..space + 1 + len].to_vec()).unwrap();
                buffer.drain(..space + 1 + len);
                let _ = messages.send(message);
            }
        }
    });
    let ca = collector_pki.path("ca.pem");
    let app = crate::helpers::spawn_app_with(
        Backend::Sqlite,
        move |c| {
            c.audit.syslog = Some(voltvault::config::SyslogConfig {
                address: address.to_string(),
                server_name: "localhost".into(),
                ca_file: ca,
            });
        },
        None,
    )
    .await;
    let careless = AuditEvent {
        reason: Some(format!("declined {PAN}")),
        ..event(5)
    };
    app.audit.sink().record(careless).await.unwrap();
    let first = received.recv().await.unwrap();
    assert!(first.starts_with("<109>1 "), "{first}");
    assert!(
        first.contains(" test voltvault - audit.start [voltvault@32473 node=\"test\" seq=\"1\""),
        "{first}"
    );
    // Key events from start-up come next; the careless event is the last one sent.
    let mut second = received.recv().await.unwrap();
    while !second.contains("token.detokenize") {
        second = received.recv().await.unwrap();
    }
    assert!(
        second.starts_with("<108>1 2025-11-24T16:00:05.000000Z test voltvault - token.detokenize "),
        "{second}"
    );
    assert!(second.contains("resource=\"tok_5\""), "{second}");
    assert!(
        second.contains("[REDACTED PAN\\]") && !second.contains(PAN),
        "{second}"
    );
    app.stop().await;
}

/// deploy/postgres-roles.sql and postgres-grants.sql: the service role may append and read the
/// audit tables and nothing more, even where a trigger would be off.
#[tokio::test]
async fn postgres_service_role_may_only_insert_and_select_audit_rows() {
    let db = TestDb::new(Backend::Postgres).await;
    let store = sealed_chain(&db).await;
    let mut admin = sqlx::PgConnection::connect(&db.url).await.unwrap();
    // Roles are cluster-wide; the scripts are idempotent, but not against themselves running twice at once.
    for script in ["postgres-roles.sql", "postgres-grants.sql"] {
        let sql = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("deploy")
                .join(script),
        )
        .unwrap();
        sqlx::raw_sql(&sql).execute(&mut admin).await.unwrap();
    }
    admin.close().await.unwrap();

    let service_url = db.url.replacen("postgres@", "voltvault@", 1);
    let mut service = sqlx::PgConnection::connect(&service_url).await.unwrap();
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_events")
        .fetch_one(&mut service)
        .await
        .unwrap();
    assert_eq!(count, 21);
    sqlx::query("SET session_replication_role = replica")
        .execute(&mut service)
        .await
        .expect_err("only a superuser may turn triggers off");
    for sql in [
        "UPDATE audit_events SET actor_id = 'x'",
        "DELETE FROM audit_events",
        "TRUNCATE audit_events",
        "DELETE FROM audit_checkpoints",
        "ALTER TABLE audit_events DISABLE TRIGGER ALL",
    ] {
        let error = sqlx::query(sql).execute(&mut service).await.expect_err(sql);
        assert!(
            error.to_string().contains("permission denied")
                || error.to_string().contains("must be owner"),
            "{sql}: {error}"
        );
    }
    // Every other table the service uses is reachable; tariff versions
    // can be added but never changed.
    for table in [
        "tokens",
        "data_keys",
        "ff1_keys",
        "api_keys",
        "staff_sessions",
        "payment_sessions",
        "payment_intents",
        "payment_meter_readings",
        "tariffs",
        "webhook_deliveries",
        "mail_outbox",
        "wallets",
        "wallet_holds",
        "wallet_entries",
        "accounts",
        "account_payment_methods",
        "rfid_cards",
        "invoices",
        "invoice_lines",
        "invoice_counters",
    ] {
        sqlx::query(&format!("SELECT count(*) FROM {table}"))
            .execute(&mut service)
            .await
            .unwrap_or_else(|e| panic!("{table}: {e}"));
    }
    let error = sqlx::query("UPDATE tariffs SET document = ''")
        .execute(&mut service)
        .await
        .expect_err("tariffs are insert-only");
    assert!(error.to_string().contains("permission denied"), "{error}");
    for sql in [
        "DELETE FROM wallet_entries",
        "UPDATE invoices SET number = 'x'",
        "DELETE FROM invoices",
        "DELETE FROM invoice_lines",
    ] {
        let error = sqlx::query(sql)
            .execute(&mut service)
            .await
            .expect_err("append-only for the service role");
        assert!(
            error.to_string().contains("permission denied"),
            "{sql}: {error}"
        );
    }
    service.close().await.unwrap();
    // The writer works as the service role.
    let as_service: Arc<dyn Store> = Arc::new(
        voltvault::store::postgres::PostgresStore::connect(&service_url, None, 2)
            .await
            .unwrap(),
    );
    // Retention works for the service role, through audit_purge only.
    let dir = tempfile::tempdir().unwrap();
    let archived = voltvault::audit::retention::archive_node(
        as_service.as_ref(),
        sealer().as_ref(),
        "n1",
        at(0) + chrono::Duration::days(100),
        dir.path(),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!((archived.through_seq, archived.records), (21, 21));
    let task = writer(&as_service, "n2").await;
    task.handle().record(event(1)).await.unwrap();
    task.stop().await;
    let report = verify(&as_service).await;
    assert!(report.ok, "{report:?}");
    assert_eq!(report.nodes.len(), 2);
    drop(store);
}

async fn auditors_search_export_and_verify_over_http(backend: Backend) {
    let app = crate::helpers::spawn_app(backend).await;
    let sink = app.audit.sink();
    for i in 1..=5 {
        sink.record(event(i)).await.unwrap();
    }
    let session = app.staff_session(voltvault::auth::Role::Auditor).await;
    // Anyone else is turned away.
    let anonymous = app
        .client()
        .get(app.url("/v1/audit/verify"))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    let client = app.bearer_client(&session);
    let get = |path: String| {
        let client = client.clone();
        async move { client.get(path).send().await.unwrap() }
    };

    let page: serde_json::Value = get(app.url("/v1/audit/events?type=token.detokenize&limit=2"))
        .await
        .json()
        .await
        .unwrap();
    let resources: Vec<_> = page["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["resource"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(resources, ["tok_1", "tok_3"]);
    // Written by one of the node's audit writer lanes (`test`, `test#1`, ...).
    let chain = page["events"][0]["node_id"].as_str().unwrap();
    assert!(chain == "test" || chain.starts_with("test#"), "{chain}");
    let cursor = page["next_cursor"].as_str().unwrap();
    let next: serde_json::Value = get(app.url(&format!(
        "/v1/audit/events?type=token.detokenize&limit=2&cursor={cursor}"
    )))
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(next["events"][0]["resource"], "tok_5");
    assert!(next["next_cursor"].is_null());

    for (query, code) in [
        ("limit=0", "invalid_limit"),
        ("from=yesterday", "invalid_time"),
        ("outcome=maybe", "invalid_outcome"),
        ("cursor=xyz", "invalid_cursor"),
    ] {
        let response = get(app.url(&format!("/v1/audit/events?{query}"))).await;
        assert_eq!(response.status(), 400, "{query}");
        let problem: serde_json::Value = response.json().await.unwrap();
        assert_eq!(problem["code"], code);
    }

    // A card number sent as a search term is masked in the read's own event.
    let response = get(app.url(&format!("/v1/audit/events?resource={PAN}"))).await;
    assert_eq!(response.status(), 200);

    let response = get(app.url("/v1/audit/export?format=csv")).await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "text/csv; charset=utf-8"
    );
    let csv_body = response.bytes().await.unwrap();
    assert!(csv_body.starts_with(b"node_id,seq,version,at,"));
    let response = get(app.url("/v1/audit/export")).await;
    assert_eq!(response.headers()["content-type"], "application/jsonl");
    let jsonl = response.bytes().await.unwrap();
    for body in [&csv_body[..], &jsonl[..]] {
        assert!(!contains_bytes(body, PAN.as_bytes()));
        assert!(contains_bytes(body, b"[REDACTED PAN]"));
    }
    let lines: Vec<serde_json::Value> = jsonl
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).unwrap())
        .collect();
    let types: Vec<_> = lines
        .iter()
        .map(|l| l["event_type"].as_str().unwrap())
        .collect();
    assert!(types.contains(&"audit.start"));
    // Two pages and the card-number search; refused queries read nothing.
    assert_eq!(types.iter().filter(|t| **t == "audit.search").count(), 3);
    assert_eq!(types.iter().filter(|t| **t == "audit.export").count(), 2);
    let search = lines
        .iter()
        .find(|l| l["event_type"] == "audit.search")
        .unwrap();
    // The signed-in auditor, not the connection alone.
    assert_eq!(search["actor_kind"], "staff");
    assert!(
        search["actor_id"].as_str().unwrap().starts_with("staff:"),
        "{search}"
    );
    assert!(search["tenant"].is_string(), "{search}");
    assert!(search["origin"].as_str().unwrap().starts_with("127.0.0.1:"));
    assert!(search["request_id"].is_string());

    let report: serde_json::Value = get(app.url("/v1/audit/verify")).await.json().await.unwrap();
    assert_eq!(report["ok"], true, "{report}");
    assert_eq!(report["nodes"][0]["node_id"], "test");
    let verified: serde_json::Value = get(app.url("/v1/audit/events?type=audit.verify"))
        .await
        .json()
        .await
        .unwrap();
    let verified = verified["events"].as_array().unwrap();
    assert_eq!(verified.len(), 1, "{verified:?}");
    assert_eq!(verified[0]["actor_id"], search["actor_id"]);

    // Someone who got around the service edits a record: the auditor's
    // verify over HTTP names it.
    let node = report["nodes"][0]["node_id"].as_str().unwrap();
    let edit = format!(
        "UPDATE audit_events SET reason = 'nothing to see' WHERE node_id = '{node}' AND seq = 3"
    );
    crate::audit::tamper(&app.db, &[edit.as_str()]).await;
    let report: serde_json::Value = get(app.url("/v1/audit/verify")).await.json().await.unwrap();
    assert_eq!(report["ok"], false, "{report}");
    let tampered = report["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["node_id"] == node)
        .unwrap();
    assert_eq!(tampered["problem"]["seq"], 3, "{report}");
    assert_eq!(tampered["problem"]["kind"], "modified", "{report}");
    app.stop().await;
}

async fn old_records_are_archived_to_a_file_and_the_chain_still_verifies(backend: Backend) {
    use std::os::unix::fs::PermissionsExt;
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    let fixed = FixedClock::new(at(0));
    let clock: Arc<dyn Clock> = Arc::new(fixed.clone());
    let audit_store: Arc<dyn voltvault::store::AuditStore> = store.clone();
    let task = AuditWriter::start(
        audit_store,
        sealer(),
        clock.clone(),
        "n1",
        manual_checkpoints(),
    )
    .await
    .unwrap();
    let sink = task.handle();
    for i in 1..=20 {
        sink.record(event(i)).await.unwrap();
    }
    sink.checkpoint().await.unwrap();
    fixed.advance(chrono::Duration::days(95));
    for i in 21..=25 {
        sink.record(event(i)).await.unwrap();
    }
    sink.checkpoint().await.unwrap();
    let log = AuditLog::new(store.clone(), sealer(), Arc::new(sink.clone()), clock);
    let reader = Reader::command_line("auditor-1");
    let dir = tempfile::tempdir().unwrap();

    // A broken chain is kept where it is.
    tamper(
        &db,
        &["UPDATE audit_events SET reason = 'x' WHERE node_id = 'n1' AND seq = 5"],
    )
    .await;
    let refused = log.archive(&reader, dir.path()).await.unwrap_err();
    assert!(
        refused.to_string().contains("record 5: Modified"),
        "{refused}"
    );
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    tamper(
        &db,
        &["UPDATE audit_events SET reason = NULL WHERE node_id = 'n1' AND seq = 5"],
    )
    .await;

    let archived = log.archive(&reader, dir.path()).await.unwrap();
    assert_eq!(archived.len(), 1);
    let a = &archived[0];
    assert_eq!((a.first_seq, a.through_seq, a.records), (1, 21, 21));
    assert_eq!(
        std::fs::metadata(&a.file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let seqs: Vec<u64> = std::fs::read_to_string(&a.file)
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["seq"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(seqs, (1..=21).collect::<Vec<_>>());

    // Only the records after the archived checkpoint remain, and they verify from it.
    let report = verify(&store).await;
    assert!(report.ok, "{report:?}");
    let node = &report.nodes[0];
    assert_eq!((node.first_seq, node.records_checked), (22, 6));
    assert!(log.archive(&reader, dir.path()).await.unwrap().is_empty());

    // The chain goes on after the archived part.
    sink.record(event(26)).await.unwrap();
    task.stop().await;
    assert!(verify(&store).await.ok);
}

async fn two_writers_misconfigured_with_one_node_id_never_fork_the_chain(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    let a = writer(&store, "same").await;
    let b = writer(&store, "same").await;
    // b read the head after a's start; a still believes its own head is current.
    b.handle().record(event(1)).await.unwrap();
    let refused = a.handle().record(event(2)).await;
    assert!(refused.is_err(), "a stale head must not fork the chain");
    // The failed writer re-reads the head and goes on from there.
    a.handle().record(event(3)).await.unwrap();
    b.handle().record(event(4)).await.unwrap_err();
    b.handle().record(event(5)).await.unwrap();
    let report = verify(&store).await;
    assert!(report.ok, "{report:?}");
    assert_eq!(report.nodes[0].records_checked, 5);
}

/// A token row with no card data (a tombstone shape), for joined commits.
fn token_row(
    tenant: voltvault::ids::TenantId,
    token: &str,
) -> voltvault::store::tokens::StoredToken {
    voltvault::store::tokens::StoredToken {
        tenant,
        token: token.into(),
        format: "random".into(),
        brand: "visa".into(),
        last4: token[token.len() - 4..].into(),
        bin: None,
        exp_month: 12,
        exp_year: 2034,
        fingerprint: [9; 32],
        sealed: None,
        metadata: None,
        created_at: at(1),
        expires_at: None,
        deleted_at: None,
    }
}

async fn new_tenant(store: &Arc<dyn Store>, name: &str) -> voltvault::tenants::Tenant {
    let tenant = voltvault::tenants::Tenant {
        id: voltvault::ids::TenantId::generate(),
        name: voltvault::tenants::TenantName::parse(name).unwrap(),
        created_at: at(0),
    };
    store.insert_tenant(&tenant).await.unwrap();
    tenant
}

/// Rows handed to the writer (ADR 0008) are committed with the events of
/// the same call or not at all: a taken idempotency key or token value
/// keeps nothing of that call, not even its events, and the chain verifies.
async fn rows_ride_in_the_writers_commit_and_a_refused_one_keeps_nothing(backend: Backend) {
    use voltvault::idempotency::{Begin, IdempotencyKey, IdempotencyScope};
    use voltvault::store::joined::{IdempotentResponse, JoinedOutcome, JoinedRows};
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    let tenant = new_tenant(&store, "joined").await;
    let scope = |key: &str| IdempotencyScope {
        tenant: tenant.id,
        principal: "client:a".into(),
        key: IdempotencyKey::parse(key).unwrap(),
    };
    let rows = |key: &str, token: &str| JoinedRows {
        idempotent: Some(IdempotentResponse {
            scope: scope(key),
            request_hash: [7; 32],
            status: 201,
            body: format!("{{\"token\":\"{token}\"}}").into_bytes(),
            at: at(1),
        }),
        token: Some(token_row(tenant.id, token)),
    };
    let task = writer(&store, "n1").await;
    let sink = task.handle();
    assert!(sink.joins_rows());
    let first = sink.commit_joined(rows("k1", "9000000000001234"), vec![event(1)]);
    assert_eq!(first.await.unwrap(), JoinedOutcome::Written);
    // The same key again, with another token: refused, its token not written.
    let again = sink.commit_joined(rows("k1", "9000000000005678"), vec![event(2)]);
    assert_eq!(again.await.unwrap(), JoinedOutcome::IdempotencyKeyTaken);
    // Another key with a token value already held: refused, its key not kept.
    let clash = sink.commit_joined(rows("k2", "9000000000001234"), vec![event(3)]);
    assert_eq!(clash.await.unwrap(), JoinedOutcome::TokenTaken);
    // Eight at once with one key, likely in one batch: exactly one wins.
    let racing = futures_util::future::join_all((0..8).map(|i| {
        sink.commit_joined(
            rows("k3", &format!("90000000001000{i:02}")),
            vec![event(10 + i)],
        )
    }))
    .await;
    let won: Vec<usize> = racing
        .iter()
        .enumerate()
        .filter(|(_, r)| *r.as_ref().unwrap() == JoinedOutcome::Written)
        .map(|(i, _)| i)
        .collect();
    assert_eq!(won.len(), 1, "{racing:?}");
    assert!(racing.iter().all(|r| matches!(
        r,
        Ok(JoinedOutcome::Written | JoinedOutcome::IdempotencyKeyTaken)
    )));

    store.token(tenant.id, "9000000000001234").await.unwrap();
    assert!(store.token(tenant.id, "9000000000005678").await.is_err());
    let winner = format!("90000000001000{:02}", won[0]);
    store.token(tenant.id, &winner).await.unwrap();
    for i in (0..8).filter(|i| *i != won[0]) {
        let loser = format!("90000000001000{i:02}");
        assert!(store.token(tenant.id, &loser).await.is_err());
    }
    match store
        .idempotent_state(&scope("k1"), &[7; 32])
        .await
        .unwrap()
    {
        Some(Begin::Replay(stored)) => {
            assert_eq!(stored.status, 201);
            assert_eq!(stored.body, b"{\"token\":\"9000000000001234\"}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        store
            .idempotent_state(&scope("k1"), &[8; 32])
            .await
            .unwrap(),
        Some(Begin::Mismatch)
    );
    assert_eq!(
        store
            .idempotent_state(&scope("k2"), &[7; 32])
            .await
            .unwrap(),
        None
    );
    // audit.start, the first call's event and the race winner's: no more.
    let report = verify(&store).await;
    assert!(report.ok, "{report:?}");
    assert_eq!(report.nodes[0].records_checked, 3);
    let chain = store.audit_chain_page("n1", 0, 10).await.unwrap();
    let resources: Vec<_> = chain.iter().map(|r| r.resource.clone()).collect();
    assert_eq!(
        resources,
        [
            None,
            Some("tok_1".into()),
            Some(format!("tok_{}", 10 + won[0]))
        ]
    );
    // A database that is gone fails the call; nothing is answered as written.
    store.close().await;
    let gone = sink.commit_joined(rows("k4", "9000000000009999"), vec![event(4)]);
    assert!(matches!(
        gone.await,
        Err(voltvault::audit::AuditError::Unavailable)
    ));
}

/// A node with several writers (lanes) keeps a chain per lane: each starts
/// and stops logging and verifies; requests are spread over the lanes, and
/// one idempotency key raced over all of them is still written once.
async fn writer_lanes_keep_a_chain_each(backend: Backend) {
    use voltvault::idempotency::{IdempotencyKey, IdempotencyScope};
    use voltvault::store::joined::{IdempotentResponse, JoinedOutcome, JoinedRows};
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    let tenant = new_tenant(&store, "lanes").await;
    let audit_store: Arc<dyn voltvault::store::AuditStore> = store.clone();
    let task = AuditWriter::start(
        audit_store,
        sealer(),
        clock(),
        "n1",
        WriterConfig {
            lanes: 3,
            ..manual_checkpoints()
        },
    )
    .await
    .unwrap();
    let sink = task.handle();
    let plain = futures_util::future::join_all((0..60).map(|i| sink.record(event(i)))).await;
    assert!(plain.iter().all(Result::is_ok), "{plain:?}");
    let racing = futures_util::future::join_all((0..9).map(|i| {
        let rows = JoinedRows {
            idempotent: Some(IdempotentResponse {
                scope: IdempotencyScope {
                    tenant: tenant.id,
                    principal: "client:a".into(),
                    key: IdempotencyKey::parse("raced").unwrap(),
                },
                request_hash: [7; 32],
                status: 201,
                body: b"{}".to_vec(),
                at: at(1),
            }),
            token: Some(token_row(tenant.id, &format!("90000000002000{i:02}"))),
        };
        sink.commit_joined(rows, vec![event(100 + i)])
    }))
    .await;
    let won = racing
        .iter()
        .filter(|r| matches!(r, Ok(JoinedOutcome::Written)))
        .count();
    assert_eq!(won, 1, "{racing:?}");
    assert!(racing.iter().all(|r| matches!(
        r,
        Ok(JoinedOutcome::Written | JoinedOutcome::IdempotencyKeyTaken)
    )));
    task.stop().await;

    let report = verify(&store).await;
    assert!(report.ok, "{report:?}");
    let mut chains: Vec<_> = report.nodes.iter().map(|n| n.node_id.clone()).collect();
    chains.sort();
    assert_eq!(chains, ["n1", "n1#1", "n1#2"]);
    let mut events = 0;
    for node in &report.nodes {
        // Sealed to its end by the stop.
        assert_eq!(node.last_sealed_seq, node.last_seq, "{node:?}");
        let chain = store.audit_chain_page(&node.node_id, 0, 100).await.unwrap();
        assert_eq!(chain.first().unwrap().event_type, "audit.start");
        assert_eq!(chain.last().unwrap().event_type, "audit.stop");
        let own = chain.len() - 2;
        // Round robin: every lane took its share of the 61 events.
        assert!(own >= 15, "{}: {own} events", node.node_id);
        events += own;
    }
    assert_eq!(events, 61);
}

crate::on_both_databases!(
    writer_lanes_keep_a_chain_each,
    rows_ride_in_the_writers_commit_and_a_refused_one_keeps_nothing,
    two_writers_misconfigured_with_one_node_id_never_fork_the_chain,
    old_records_are_archived_to_a_file_and_the_chain_still_verifies,
    auditors_search_export_and_verify_over_http,
    an_intact_chain_verifies,
    an_edited_field_is_named,
    a_deleted_record_is_named,
    an_inserted_record_is_named,
    swapped_records_are_named,
    a_cut_tail_is_named,
    a_recomputed_chain_fails_at_its_checkpoint,
    a_forged_checkpoint_is_named,
    the_service_cannot_change_or_remove_audit_rows,
    two_nodes_writing_at_once_keep_valid_chains,
    a_restarted_writer_continues_its_chain,
    a_write_fails_closed_when_the_database_is_gone,
    search_filters_and_pages_with_a_cursor,
    exports_hold_every_record_and_no_card_number,
);
