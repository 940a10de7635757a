//! Whole EV payment sessions per second: a charger (mTLS, keep-alive)
//! opens a session with a card (tokenized on the way in, hold at the
//! built-in simulator), posts 10 meter readings and completes (capture).
//! Every step is audited and durable before it answers.
//!
//! `cargo bench --bench payment_sessions` measures on PostgreSQL and SQLite
//! with 16 chargers at once for 20 s each, and prints this machine's
//! PostgreSQL INSERT ceiling from the same run as the yardstick.
//! `cargo test --benches` runs two sessions as a smoke test.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;
use voltvault::app::App;
use voltvault::auth::{Actor, Origin};
use voltvault::clock::Environment;
use voltvault::config::{
    AcquirerKind, AuthConfig, ClientAuth, Config, DatabaseConfig, KeyProviderKind, KeysConfig,
    LogFormat, LoggingConfig, Mode, OpsConfig, PaymentsConfig, Pkcs11Settings, ServerConfig,
    TlsConfig,
};
use voltvault::devpki::{DevCa, write_file};
use voltvault::keys::testing::{SOFTHSM_MODULE, TestToken, softhsm_available};

const POSTGRES: &str = "postgres://postgres@127.0.0.1:5432";

struct Run {
    sessions: u64,
    secs: f64,
    latencies_ms: Vec<f64>,
    errors: u64,
    /// Each export of the sessions just made: name and milliseconds.
    exports_ms: Vec<(&'static str, f64)>,
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

async fn database_url(backend: &str, dir: &Path) -> String {
    if backend == "sqlite" {
        return format!("sqlite://{}", dir.join("bench.db").display());
    }
    use sqlx::Connection;
    let name = format!("vv_bench_{}", uuid::Uuid::new_v4().simple());
    let mut admin = sqlx::PgConnection::connect(&format!("{POSTGRES}/postgres"))
        .await
        .unwrap();
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut admin)
        .await
        .unwrap();
    format!("{POSTGRES}/{name}")
}

async fn run(backend: &str, chargers: usize, duration: Duration, smoke: bool) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ca = DevCa::generate("bench CA").unwrap();
    let server = ca.issue_server(&["localhost"]).unwrap();
    let charger = ca.issue_client("charger-bench").unwrap();
    write_file(&d.join("ca.pem"), &ca.cert_pem(), 0o644).unwrap();
    write_file(&d.join("server.pem"), &server.cert_pem, 0o644).unwrap();
    write_file(&d.join("server.key"), &server.key_pem, 0o600).unwrap();
    write_file(&d.join("pepper"), &"5a".repeat(32), 0o600).unwrap();
    write_file(
        &d.join("tariffs.json"),
        voltvault::payments::tariffs::DEMO_TARIFFS,
        0o600,
    )
    .unwrap();
    let token = TestToken::new();
    write_file(&d.join("hsm.pin"), token.pin.expose_secret(), 0o600).unwrap();
    token.initialized().await.unwrap();
    let config = Config {
        version: 1,
        mode: Mode::Development,
        node_id: Some("bench".into()),
        server: ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            body_limit_bytes: 64 * 1024,
            request_timeout_secs: 30,
            shutdown_grace_secs: 5,
        },
        tls: TlsConfig {
            cert_file: d.join("server.pem"),
            key_file: d.join("server.key"),
            client_auth: ClientAuth::Optional,
            client_ca_files: vec![d.join("ca.pem")],
        },
        ops: OpsConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        },
        database: DatabaseConfig {
            url: database_url(backend, d).await,
            password_file: None,
            max_connections: 16,
            migrate_on_start: true,
        },
        keys: KeysConfig {
            provider: KeyProviderKind::Pkcs11,
            pkcs11: Some(Pkcs11Settings {
                module: SOFTHSM_MODULE.into(),
                token_label: token.label.clone(),
                pin_file: Some(d.join("hsm.pin")),
                sessions: 4,
            }),
            software: None,
            max_data_key_age_days: 90,
            max_data_key_uses: 1 << 28,
        },
        logging: LoggingConfig {
            format: LogFormat::Json,
            level: "warn".into(),
        },
        auth: AuthConfig {
            pepper_file: Some(d.join("pepper")),
            // Sixteen chargers behind one address would trip the address budget.
            rate_limit_per_address_per_minute: 1_000_000,
            rate_limit_per_principal_per_minute: 1_000_000,
            ..AuthConfig::default()
        },
        audit: Default::default(),
        billing: voltvault::config::BillingConfig {
            locations: vec![voltvault::billing::location::demo_site()],
            ..Default::default()
        },
        payments: PaymentsConfig {
            acquirer: Some(AcquirerKind::Simulator),
            tariffs_file: Some(d.join("tariffs.json")),
            ..PaymentsConfig::default()
        },
        notifications: Default::default(),
    };
    let app = App::build(config, Environment::system()).await.unwrap();
    let auth = app.auth();
    let tenant = auth
        .create_tenant("bench", &Actor::cli(), &Origin::cli())
        .await
        .unwrap()
        .id;
    auth.register_charger_ca(
        tenant,
        "chargers",
        &ca.cert_pem(),
        &Actor::cli(),
        &Origin::cli(),
    )
    .await
    .unwrap();
    let running = app.start(None).await.unwrap();
    let addr = running.api_addr;
    let identity = reqwest::Identity::from_pem(
        format!("{}\n{}", charger.cert_pem, charger.key_pem).as_bytes(),
    )
    .unwrap();
    let client = reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(ca.cert_pem().as_bytes()).unwrap())
        .identity(identity)
        .resolve("localhost", addr)
        .pool_max_idle_per_host(chargers)
        .build()
        .unwrap();
    let base = format!("https://localhost:{}", addr.port());

    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..chargers {
        let (client, base, stop) = (client.clone(), base.clone(), stop.clone());
        workers.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut errors = 0u64;
            let t0 = chrono::DateTime::parse_from_rfc3339("2026-11-25T10:00:00Z").unwrap();
            while !stop.load(Ordering::Relaxed) {
                let began = Instant::now();
                let key = uuid::Uuid::new_v4().simple().to_string();
                let post = |path: String, k: String, body: serde_json::Value| {
                    let c = client.clone();
                    async move {
                        c.post(path)
                            .header("idempotency-key", k)
                            .json(&body)
                            .send()
                            .await
                            .map(|r| r.status().is_success())
                            .unwrap_or(false)
                    }
                };
                let r = client
                    .post(format!("{base}/v1/payment-sessions"))
                    .header("idempotency-key", &key)
                    .json(&json!({
                        "evse_id": "DE*VVT*E0001*1", "connector_id": "1", "tariff_id": "standard",
                        "payment_method": {"card": {"number": "4242424242424242",
                            "exp_month": 12, "exp_year": 2039, "cvc": "123"}},
                        "hold": {"value": 5000, "currency": "EUR"}}))
                    .send()
                    .await;
                let id = match r {
                    Ok(r) if r.status().is_success() => {
                        let v: serde_json::Value = r.json().await.unwrap();
                        v["id"].as_str().unwrap().to_owned()
                    }
                    _ => {
                        errors += 1;
                        continue;
                    }
                };
                let mut ok = true;
                for i in 0..10i64 {
                    let at = (t0 + chrono::Duration::minutes(i * 3)).to_rfc3339();
                    ok &= post(
                        format!("{base}/v1/payment-sessions/{id}/meter"),
                        format!("{key}-m{i}"),
                        json!({"energy_wh": i * 2500, "at": at}),
                    )
                    .await;
                }
                let at = (t0 + chrono::Duration::minutes(30)).to_rfc3339();
                ok &= post(
                    format!("{base}/v1/payment-sessions/{id}/complete"),
                    format!("{key}-c"),
                    json!({"energy_wh": 25_000, "at": at}),
                )
                .await;
                if ok {
                    latencies.push(began.elapsed().as_secs_f64() * 1000.0);
                } else {
                    errors += 1;
                }
                if smoke && latencies.len() + errors as usize >= 2 {
                    break;
                }
            }
            (latencies, errors)
        }));
    }
    if !smoke {
        // A smoke run's workers stop by themselves after two sessions.
        tokio::time::sleep(duration).await;
        stop.store(true, Ordering::Relaxed);
    }
    let mut latencies_ms = Vec::new();
    let mut errors = 0;
    for w in workers {
        let (l, e) = w.await.unwrap();
        latencies_ms.extend(l);
        errors += e;
    }
    let secs = started.elapsed().as_secs_f64();

    // The exports an operator runs on what the load left: every session
    // in one period, read by an app key over HTTPS like the chargers.
    let (_, key) = auth
        .create_api_key(
            tenant,
            "bench app",
            voltvault::auth::policy::Role::App,
            None,
            &Actor::cli(),
            &Origin::cli(),
        )
        .await
        .unwrap();
    let app_client = reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(ca.cert_pem().as_bytes()).unwrap())
        .resolve("localhost", addr)
        .build()
        .unwrap();
    let now = voltvault::clock::Clock::now(&voltvault::clock::SystemClock);
    let period = format!(
        "from={}&to={}",
        (now - chrono::Duration::days(1)).format("%Y-%m-%dT%H:%M:%SZ"),
        (now + chrono::Duration::days(1)).format("%Y-%m-%dT%H:%M:%SZ")
    );
    let mut exports_ms = Vec::new();
    for export in ["sessions.csv", "payments.csv", "cdrs"] {
        let began = Instant::now();
        let r = app_client
            .get(format!("{base}/v1/exports/{export}?{period}"))
            .bearer_auth(key.expose_secret())
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{export}: {}", r.status());
        let body = r.bytes().await.unwrap();
        assert!(!body.is_empty());
        exports_ms.push((export, began.elapsed().as_secs_f64() * 1000.0));
    }
    running.stop().await;
    latencies_ms.sort_by(f64::total_cmp);
    Run {
        sessions: latencies_ms.len() as u64,
        secs,
        latencies_ms,
        errors,
        exports_ms,
    }
}

fn pg_ceiling() {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/bench/pg-insert-ceiling.sh");
    if !script.exists() {
        println!("(pg-insert-ceiling.sh not found; no yardstick this run)");
        return;
    }
    let out = std::process::Command::new("bash")
        .arg(&script)
        .args(["16", "10"])
        .output()
        .unwrap();
    print!(
        "PostgreSQL ceiling, same run (16 clients):\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let measuring = std::env::args().any(|a| a == "--bench");
    if !softhsm_available() {
        println!("SoftHSM not installed; payment session benchmark skipped");
        return;
    }
    let backends: &[&str] = if measuring {
        &["postgres", "sqlite"]
    } else {
        &["sqlite"]
    };
    let (chargers, duration) = if measuring {
        (16, Duration::from_secs(20))
    } else {
        (1, Duration::ZERO)
    };
    for backend in backends {
        let r = run(backend, chargers, duration, !measuring).await;
        let rate = r.sessions as f64 / r.secs;
        println!(
            "{backend:<8} {chargers} chargers: {:>7.1} sessions/s ({:>6.0} requests/s), \
             session p50 {:>6.1} ms p99 {:>6.1} ms, {} sessions, {} failed",
            rate,
            rate * 12.0,
            percentile(&r.latencies_ms, 0.5),
            percentile(&r.latencies_ms, 0.99),
            r.sessions,
            r.errors
        );
        let exports: Vec<String> = r
            .exports_ms
            .iter()
            .map(|(name, ms)| format!("{name} {ms:.0} ms"))
            .collect();
        println!(
            "{backend:<8} exports of those {} sessions: {}",
            r.sessions,
            exports.join(", ")
        );
        assert!(r.sessions > 0 && r.errors == 0, "sessions failed");
    }
    if measuring {
        pg_ceiling();
    }
}
