//! What auditing costs a write request. Concurrent "requests" each insert
//! one row (standing in for tokenize's card record) and then, depending on
//! the run, record nothing, record through the group-committing writer, or
//! insert their own audit record in its own transaction. Prints requests
//! per second and the ratios; asserts nothing.
//!
//!   cargo bench --bench audit_writer            # SQLite and PostgreSQL
//!   VOLTVAULT_BENCH_BACKENDS=sqlite cargo bench --bench audit_writer

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use sqlx::Connection;
use voltvault::audit::{
    ActorKind, AuditEvent, AuditRecord, AuditSink, AuditWriter, Outcome, SoftwareSealer,
    WriterConfig,
};
use voltvault::clock::{Clock, SystemClock};
use voltvault::store::{AuditStore, Store};

const CONCURRENCY: usize = 64;

#[derive(Clone, Copy, Debug)]
enum Mode {
    NoAudit,
    Writer,
    DirectInsert,
}

fn event(i: u64, clock: &dyn Clock) -> AuditEvent {
    AuditEvent {
        event_type: "token.tokenize".into(),
        at: clock.now(),
        actor_kind: ActorKind::Charger,
        actor_id: "cert:3f2a9c".into(),
        tenant: None,
        outcome: Outcome::Success,
        origin: Some("192.0.2.10:51234".into()),
        resource: Some(format!("tok_{i}")),
        request_id: Some(uuid::Uuid::new_v4().to_string()),
        reason: None,
    }
}

/// Inserts the stand-in for the request's own work.
async fn request_row(db: &Db, i: u64) {
    let id = uuid::Uuid::new_v4();
    match db {
        Db::Sqlite(pool) => {
            sqlx::query("INSERT INTO bench_rows (id, n) VALUES ($1, $2)")
                .bind(id)
                .bind(i as i64)
                .execute(pool)
                .await
                .unwrap();
        }
        Db::Postgres(pool) => {
            sqlx::query("INSERT INTO bench_rows (id, n) VALUES ($1, $2)")
                .bind(id)
                .bind(i as i64)
                .execute(pool)
                .await
                .unwrap();
        }
    }
}

enum Db {
    Sqlite(sqlx::SqlitePool),
    Postgres(sqlx::PgPool),
}

async fn run(
    mode: Mode,
    requests: u64,
    db: Arc<Db>,
    store: Arc<dyn Store>,
    writer: Option<AuditWriter>,
) -> f64 {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for worker in 0..CONCURRENCY {
        let (db, store, writer, clock, next) = (
            db.clone(),
            store.clone(),
            writer.clone(),
            clock.clone(),
            next.clone(),
        );
        tasks.push(tokio::spawn(async move {
            // Direct inserts: one chain per worker, so workers never wait on each other.
            let node = format!("direct-{worker}-{}", uuid::Uuid::new_v4().simple());
            let mut prev = [0u8; 32];
            let mut seq = 0u64;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= requests {
                    break;
                }
                request_row(&db, i).await;
                match mode {
                    Mode::NoAudit => {}
                    Mode::Writer => writer
                        .as_ref()
                        .unwrap()
                        .record(event(i, clock.as_ref()))
                        .await
                        .unwrap(),
                    Mode::DirectInsert => {
                        seq += 1;
                        let record = AuditRecord::link(&node, seq, prev, event(i, clock.as_ref()));
                        prev = record.record_hash;
                        store.append_audit(&[record], None).await.unwrap();
                    }
                }
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    requests as f64 / started.elapsed().as_secs_f64()
}

async fn bench(backend: &str, requests: u64) {
    let dir = tempfile::tempdir().unwrap();
    let (url, pg_name) = match backend {
        "sqlite" => (
            format!("sqlite://{}", dir.path().join("bench.db").display()),
            None,
        ),
        _ => {
            let admin = std::env::var("VOLTVAULT_TEST_POSTGRES_URL")
                .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into());
            let name = format!("vv_bench_{}", uuid::Uuid::new_v4().simple());
            let mut conn = sqlx::PgConnection::connect(&format!("{admin}/postgres"))
                .await
                .unwrap();
            sqlx::query(&format!("CREATE DATABASE {name}"))
                .execute(&mut conn)
                .await
                .unwrap();
            conn.close().await.unwrap();
            (format!("{admin}/{name}"), Some((admin, name)))
        }
    };
    let (store, db): (Arc<dyn Store>, Db) = if backend == "sqlite" {
        let s = voltvault::store::sqlite::SqliteStore::connect(&url, 8)
            .await
            .unwrap();
        let pool = s.pool().clone();
        (Arc::new(s), Db::Sqlite(pool))
    } else {
        let s = voltvault::store::postgres::PostgresStore::connect(&url, None, 16)
            .await
            .unwrap();
        let pool = s.pool().clone();
        (Arc::new(s), Db::Postgres(pool))
    };
    store.migrate().await.unwrap();
    let create = "CREATE TABLE bench_rows (id UUID PRIMARY KEY, n BIGINT NOT NULL)";
    match &db {
        Db::Sqlite(pool) => {
            sqlx::query("CREATE TABLE bench_rows (id BLOB PRIMARY KEY, n INTEGER NOT NULL)")
                .execute(pool)
                .await
                .unwrap();
        }
        Db::Postgres(pool) => {
            sqlx::query(create).execute(pool).await.unwrap();
        }
    }
    let db = Arc::new(db);
    let audit_store: Arc<dyn AuditStore> = store.clone();
    let task = AuditWriter::start(
        audit_store,
        Arc::new(SoftwareSealer::new("bench", &[1; 32])),
        Arc::new(SystemClock),
        "bench-node",
        WriterConfig {
            checkpoint_interval: Duration::from_secs(1),
            ..WriterConfig::default()
        },
    )
    .await
    .unwrap();

    // Warm the pools, then measure each mode twice, alternating.
    run(
        Mode::NoAudit,
        requests / 10,
        db.clone(),
        store.clone(),
        None,
    )
    .await;
    let mut best = [0f64; 3];
    for _ in 0..2 {
        for (slot, mode) in [Mode::NoAudit, Mode::Writer, Mode::DirectInsert]
            .into_iter()
            .enumerate()
        {
            let rate = run(
                mode,
                requests,
                db.clone(),
                store.clone(),
                Some(task.handle()),
            )
            .await;
            best[slot] = best[slot].max(rate);
        }
    }
    task.stop().await;
    let report =
        voltvault::audit::verify_all(store.as_ref(), &SoftwareSealer::new("bench", &[1; 32]))
            .await
            .unwrap();
    println!(
        "{backend:8} {requests:>6} requests x{CONCURRENCY}: no audit {:>8.0}/s | writer {:>8.0}/s ({:>3.0}%) | direct insert {:>8.0}/s ({:>3.0}%) | chains verify: {}",
        best[0],
        best[1],
        100.0 * best[1] / best[0],
        best[2],
        100.0 * best[2] / best[0],
        report.ok
    );
    store.close().await;
    if let Some((admin, name)) = pg_name {
        let mut conn = sqlx::PgConnection::connect(&format!("{admin}/postgres"))
            .await
            .unwrap();
        let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .execute(&mut conn)
            .await;
    }
}

fn main() {
    let backends =
        std::env::var("VOLTVAULT_BENCH_BACKENDS").unwrap_or_else(|_| "sqlite,postgres".into());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    // `cargo test --all-targets` runs this without `--bench`: a quick smoke run.
    let measuring = std::env::args().any(|a| a == "--bench");
    for backend in backends.split(',') {
        let requests = match (measuring, backend) {
            (false, _) => 200,
            (true, "sqlite") => 3_000,
            (true, _) => 20_000,
        };
        runtime.block_on(bench(backend, requests));
    }
}
