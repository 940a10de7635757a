//! HTTPS load on tokenize and detokenize, against the `voltvault` binary as
//! an operator runs it: `voltvault serve` in its own process (so its peak
//! memory can be read from `/proc/<pid>/status`), a SoftHSM2 token of its
//! own, a fresh database per backend, principals made with `voltvault admin`.
//!
//! 32 workers, each with its own keep-alive HTTP/1.1 connection, send
//! requests back to back for a fixed time per phase. Printed per phase:
//! requests/s, p50, p99, errors and CPU per request; per backend: the
//! server's VmHWM, and what auditing costs the in-process tokenize path
//! (production writer against a discarding double). The yardstick, the
//! machine's ceiling for durable single-row INSERTs into PostgreSQL (and
//! SELECT by key), is measured with pgbench in the same run, before and
//! after the load.
//!
//!   cargo bench --bench http_load                 # both databases, 15 s phases
//!   HTTP_LOAD_BACKENDS=postgres HTTP_LOAD_SECS=20 cargo bench --bench http_load
//!   HTTP_LOAD_DB_CONNECTIONS=48 ...               # database.max_connections
//!   HTTP_LOAD_AUDIT_LANES=1 ...                   # audit.writer_lanes
//!
//! (Not `VOLTVAULT_*`: the service reads those as configuration.)
//!
//! Without `--bench` (`cargo test --all-targets`) it is a smoke run of a
//! quarter second per phase and skips the pgbench yardstick. Asserts nothing
//! about speed.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use sqlx::Connection;
use voltvault::devpki::{DevCa, write_file};
use voltvault::keys::testing::{SOFTHSM_MODULE, TestToken};

const BIN: &str = env!("CARGO_BIN_EXE_voltvault");
const CONCURRENCY: usize = 32;

fn postgres_admin_url() -> String {
    std::env::var("VOLTVAULT_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into())
}

/// A Luhn-valid 16-digit Visa test-range number, different for each `n`.
fn pan(n: u64) -> String {
    let body = format!("4{:014}", n % 100_000_000_000_000);
    let digits: Vec<u32> = body.chars().map(|c| c.to_digit(10).unwrap()).collect();
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            if i % 2 == 0 {
                let x = d * 2;
                if x > 9 { x - 9 } else { x }
            } else {
                d
            }
        })
        .sum();
    format!("{body}{}", (10 - sum % 10) % 10)
}

/// Everything one service instance needs: PKI, HSM token, pepper, config.
struct Setup {
    dir: tempfile::TempDir,
    token: TestToken,
    ca_pem: String,
    config: PathBuf,
}

impl Setup {
    fn new(database_url: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let ca = DevCa::generate("bench CA").unwrap();
        let server = ca.issue_server(&["localhost", "127.0.0.1"]).unwrap();
        let path = |name: &str| dir.path().join(name);
        write_file(&path("ca.pem"), &ca.cert_pem(), 0o644).unwrap();
        write_file(&path("server.pem"), &server.cert_pem, 0o644).unwrap();
        write_file(&path("server.key"), &server.key_pem, 0o600).unwrap();
        write_file(&path("pepper"), &"5a".repeat(32), 0o600).unwrap();
        let token = TestToken::new();
        write_file(&path("hsm.pin"), token.pin.expose_secret(), 0o600).unwrap();
        // Production settings except: loopback, the bench's own token, and
        // request budgets high enough that 32 workers from one address are
        // measured rather than throttled.
        let body = format!(
            r#"version = 1
node_id = "bench"
[server]
listen = "127.0.0.1:0"
[tls]
cert_file = "{cert}"
key_file = "{key}"
[ops]
listen = "127.0.0.1:0"
[database]
url = "{url}"
{connections}
[logging]
format = "json"
level = "info"
[auth]
pepper_file = "{pepper}"
rate_limit_per_principal_per_minute = 100000000
rate_limit_per_address_per_minute = 100000000
[keys]
provider = "pkcs11"
[keys.pkcs11]
module = "{module}"
token_label = "{label}"
pin_file = "{pin}"
{lanes}
"#,
            cert = path("server.pem").display(),
            key = path("server.key").display(),
            url = database_url,
            pepper = path("pepper").display(),
            module = SOFTHSM_MODULE,
            label = token.label,
            pin = path("hsm.pin").display(),
            // The service's default unless HTTP_LOAD_DB_CONNECTIONS says otherwise.
            connections = std::env::var("HTTP_LOAD_DB_CONNECTIONS")
                .map(|n| format!("max_connections = {n}"))
                .unwrap_or_default(),
            // The service's default (one lane) unless HTTP_LOAD_AUDIT_LANES says otherwise.
            lanes = std::env::var("HTTP_LOAD_AUDIT_LANES")
                .map(|n| format!("[audit]\nwriter_lanes = {n}"))
                .unwrap_or_default(),
        );
        let config = path("voltvault.toml");
        std::fs::write(&config, body).unwrap();
        Self {
            ca_pem: ca.cert_pem(),
            dir,
            token,
            config,
        }
    }

    /// Runs a `voltvault` command with the bench's configuration; returns stdout.
    fn command(&self, args: &[&str], stdin: &str) -> String {
        let mut child = Command::new(BIN)
            .args(&args[..1])
            .arg("--config")
            .arg(&self.config)
            .args(&args[1..])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "voltvault {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }
}

/// `voltvault serve` in its own process; stderr is drained on a thread.
struct Server {
    child: Child,
    api: SocketAddr,
}

impl Server {
    fn start(setup: &Setup) -> Self {
        let mut child = Command::new(BIN)
            .arg("serve")
            .arg("--config")
            .arg(&setup.config)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if line.contains("voltvault is serving")
                    && let Some(tx) = tx.take()
                {
                    let _ = tx.send(line);
                }
            }
        });
        let line = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("voltvault serve did not start");
        let event: serde_json::Value = serde_json::from_str(&line).unwrap();
        let api = event["fields"]["api_addr"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        Self { child, api }
    }

    /// Peak resident set size so far, in kB.
    fn vm_hwm_kb(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap()
    }

    /// SIGTERM, then wait for a clean exit.
    fn stop(mut self) {
        use nix::sys::signal::{Signal, kill};
        kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            Signal::SIGTERM,
        )
        .unwrap();
        let status = self.child.wait().unwrap();
        assert!(status.success(), "voltvault serve exited with {status}");
    }
}

/// CPU time (user + system) a process has used, in seconds.
fn cpu_seconds(pid: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name in parentheses; utime and stime are 14 and 15.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    // Linux reports in USER_HZ, 100 on every platform it runs on here.
    ticks as f64 / 100.0
}

fn client(setup: &Setup, api: SocketAddr, bearer: &str) -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        format!("Bearer {bearer}").parse().unwrap(),
    );
    reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(setup.ca_pem.as_bytes()).unwrap())
        .resolve("localhost", api)
        .http1_only()
        .pool_max_idle_per_host(1)
        .default_headers(headers)
        .build()
        .unwrap()
}

/// What one phase measured.
struct Phase {
    requests: u64,
    errors: u64,
    seconds: f64,
    /// Sorted latencies of successful requests, in microseconds.
    latencies: Vec<u32>,
    /// Tokens returned by tokenize.
    tokens: Vec<String>,
    /// CPU seconds the server and this load generator used during the phase.
    server_cpu: f64,
    client_cpu: f64,
}

impl Phase {
    fn percentile(&self, p: f64) -> f64 {
        if self.latencies.is_empty() {
            return f64::NAN;
        }
        let i = ((self.latencies.len() as f64 * p).ceil() as usize).clamp(1, self.latencies.len());
        f64::from(self.latencies[i - 1]) / 1000.0
    }

    fn line(&self, name: &str) -> String {
        format!(
            "{name:<10} {:>7.0} req/s  p50 {:>6.2} ms  p99 {:>7.2} ms  {} ok, {} errors in {:.1} s; CPU per request: server {:.0} µs, load generator {:.0} µs",
            self.latencies.len() as f64 / self.seconds,
            self.percentile(0.50),
            self.percentile(0.99),
            self.latencies.len(),
            self.errors,
            self.seconds,
            1e6 * self.server_cpu / self.requests.max(1) as f64,
            1e6 * self.client_cpu / self.requests.max(1) as f64,
        )
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Tokenize,
    Detokenize,
}

/// Runs `CONCURRENCY` workers for `duration`, each on its own connection.
async fn phase(
    kind: Kind,
    clients: &[reqwest::Client],
    server: &Server,
    duration: Duration,
    tokens: Arc<Vec<String>>,
) -> Phase {
    let api = server.api;
    let server_pid = server.child.id().to_string();
    let (server_cpu, client_cpu) = (cpu_seconds(&server_pid), cpu_seconds("self"));
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let deadline = started + duration;
    let base = format!("https://localhost:{}", api.port());
    let run = uuid::Uuid::new_v4().simple().to_string();
    let mut tasks = Vec::new();
    for client in clients {
        let (client, next, base, tokens, run) = (
            client.clone(),
            next.clone(),
            base.clone(),
            tokens.clone(),
            run.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut made = Vec::new();
            let mut errors = 0u64;
            while Instant::now() < deadline {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let request = match kind {
                    Kind::Tokenize => client
                        .post(format!("{base}/v1/tokens"))
                        .header("idempotency-key", format!("{run}-{i}"))
                        .json(&serde_json::json!({
                            "card": {"number": pan(i), "exp_month": 12, "exp_year": 2030}
                        })),
                    Kind::Detokenize => {
                        let token = &tokens[(i as usize * 7919) % tokens.len()];
                        client.post(format!("{base}/v1/tokens/{token}/detokenize"))
                    }
                };
                let sent = Instant::now();
                let response = request.send().await;
                let ok = match response {
                    Ok(r) if r.status().is_success() => match r.bytes().await {
                        Ok(body) => {
                            if kind == Kind::Tokenize {
                                let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
                                made.push(v["token"].as_str().unwrap().to_owned());
                            }
                            true
                        }
                        Err(_) => false,
                    },
                    Ok(r) => {
                        let _ = r.bytes().await;
                        false
                    }
                    Err(_) => false,
                };
                if ok {
                    latencies.push(sent.elapsed().as_micros().min(u128::from(u32::MAX)) as u32);
                } else {
                    errors += 1;
                }
            }
            (latencies, made, errors)
        }));
    }
    let mut result = Phase {
        requests: 0,
        errors: 0,
        seconds: 0.0,
        latencies: Vec::new(),
        tokens: Vec::new(),
        server_cpu: 0.0,
        client_cpu: 0.0,
    };
    for task in tasks {
        let (latencies, made, errors) = task.await.unwrap();
        result.latencies.extend(latencies);
        result.tokens.extend(made);
        result.errors += errors;
    }
    result.seconds = started.elapsed().as_secs_f64();
    result.server_cpu = cpu_seconds(&server_pid) - server_cpu;
    result.client_cpu = cpu_seconds("self") - client_cpu;
    result.requests = result.latencies.len() as u64 + result.errors;
    result.latencies.sort_unstable();
    result
}

/// Bench-only test double: an audit sink that throws every event away. It
/// lives in this bench, so no configuration of the service can reach it.
/// It does not join rows (ADR 0008), so with it `TokenService` inserts the
/// token itself, one commit per request: tokenize as it would be without
/// an audit trail.
struct DiscardingAuditSinkForBench;

#[async_trait::async_trait]
impl voltvault::audit::AuditSink for DiscardingAuditSinkForBench {
    async fn record(
        &self,
        _event: voltvault::audit::AuditEvent,
    ) -> Result<(), voltvault::audit::AuditError> {
        Ok(())
    }
}

/// Bench-only test double: the production writer's group commit for the
/// token rows, with every audit event thrown away. Against the production
/// writer it isolates what the events cost inside the shared commit.
struct RowsWithoutEventsForBench(voltvault::audit::AuditWriter);

#[async_trait::async_trait]
impl voltvault::audit::AuditSink for RowsWithoutEventsForBench {
    async fn record(
        &self,
        _event: voltvault::audit::AuditEvent,
    ) -> Result<(), voltvault::audit::AuditError> {
        Ok(())
    }

    fn joins_rows(&self) -> bool {
        true
    }

    async fn commit_joined(
        &self,
        rows: voltvault::store::joined::JoinedRows,
        _events: Vec<voltvault::audit::AuditEvent>,
    ) -> Result<voltvault::store::joined::JoinedOutcome, voltvault::audit::AuditError> {
        self.0.commit_joined(rows, Vec::new()).await
    }
}

/// What auditing costs tokenize: the service's own `TokenService` (HSM
/// fingerprint, AES-GCM seal, token INSERT) called in process by 32 tasks,
/// once with the production audit writer and once with the discarding
/// double, and once with the writer committing the token rows but no events
/// (`RowsWithoutEventsForBench`); alternated, best of two. Returns
/// (audited/s, discarded/s, rows without events/s, and
/// the HSM fingerprint alone at the same concurrency).
async fn audit_cost(setup: &Setup, duration: Duration) -> (f64, f64, f64, f64) {
    use voltvault::audit::{ActorKind, AuditSink};
    use voltvault::clock::Environment;
    use voltvault::tokens::service::{Caller, TokenService, TokenizeRequest};

    let config = voltvault::config::Config::load(&setup.config).unwrap();
    let env = Environment::system();
    let store = voltvault::store::connect(&config).await.unwrap();
    // The audit writer lanes `voltvault serve` runs with this configuration.
    let lanes = config.audit.writer_lanes;
    let core = voltvault::app::open_keys(&config, &env, store.clone(), None, "bench-inproc", lanes)
        .await
        .unwrap();
    let tenant = store
        .tenant_by_name(&voltvault::tenants::TenantName::parse("loadtest").unwrap())
        .await
        .unwrap()
        .id;
    let writer: Arc<dyn AuditSink> = Arc::new(core.audit.handle());
    let discard: Arc<dyn AuditSink> = Arc::new(DiscardingAuditSinkForBench);
    let rows_only: Arc<dyn AuditSink> = Arc::new(RowsWithoutEventsForBench(core.audit.handle()));
    let run = |sink: Arc<dyn AuditSink>, duration: Duration| {
        let service = Arc::new(TokenService::new(
            store.clone(),
            core.keys.clone(),
            sink,
            env.clone(),
        ));
        let env = env.clone();
        async move {
            let next = Arc::new(AtomicU64::new(0));
            let done = Arc::new(AtomicU64::new(0));
            let started = Instant::now();
            let deadline = started + duration;
            let mut tasks = Vec::new();
            for _ in 0..CONCURRENCY {
                let (service, env, next, done) =
                    (service.clone(), env.clone(), next.clone(), done.clone());
                tasks.push(tokio::spawn(async move {
                    while Instant::now() < deadline {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let caller = Caller {
                            tenant,
                            actor_kind: ActorKind::Client,
                            actor_id: "client:bench".into(),
                            origin: Some("127.0.0.1".into()),
                            request_id: Some(format!("inproc-{i}")),
                        };
                        let card = voltvault::card::Card::parse(
                            &pan(i + 1_000_000_000),
                            12,
                            2030,
                            env.clock.as_ref(),
                        )
                        .unwrap();
                        let request = TokenizeRequest {
                            card,
                            holder_name: None,
                            format: voltvault::tokens::TokenFormat::Random,
                            expires_at: None,
                            metadata: None,
                        };
                        service.tokenize(&caller, request).await.unwrap();
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                }));
            }
            for task in tasks {
                task.await.unwrap();
            }
            done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64()
        }
    };
    // Warm-up: HSM sessions, data key, pools.
    run(discard.clone(), duration / 10).await;
    // One stage alone: the fingerprint HMAC in the HSM, 32 callers.
    let fingerprints = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let deadline = started + duration / 4;
    let mut tasks = Vec::new();
    for _ in 0..CONCURRENCY {
        let (keys, fingerprints) = (core.keys.clone(), fingerprints.clone());
        tasks.push(tokio::spawn(async move {
            while Instant::now() < deadline {
                keys.fingerprint("bench", b"4111111111111111")
                    .await
                    .unwrap();
                fingerprints.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let hmac = fingerprints.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64();
    let (mut audited, mut discarded, mut rows) = (0f64, 0f64, 0f64);
    for _ in 0..2 {
        discarded = discarded.max(run(discard.clone(), duration / 2).await);
        rows = rows.max(run(rows_only.clone(), duration / 2).await);
        audited = audited.max(run(writer.clone(), duration / 2).await);
    }
    drop(writer);
    drop(rows_only);
    core.audit.stop().await;
    store.close().await;
    (audited, discarded, rows, hmac)
}

/// Signs the admin in (password, then TOTP) and returns the session token.
async fn staff_session(setup: &Setup, api: SocketAddr, password: &str, totp_uri: &str) -> String {
    let base = format!("https://localhost:{}", api.port());
    let login: serde_json::Value = reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(setup.ca_pem.as_bytes()).unwrap())
        .resolve("localhost", api)
        .build()
        .unwrap()
        .post(format!("{base}/v1/auth/login"))
        .json(&serde_json::json!({"username": "bench-admin", "password": password}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let totp = totp_rs::TOTP::from_url(totp_uri).unwrap();
    let mfa: serde_json::Value = reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(setup.ca_pem.as_bytes()).unwrap())
        .resolve("localhost", api)
        .build()
        .unwrap()
        .post(format!("{base}/v1/auth/mfa"))
        .json(&serde_json::json!({"challenge": login["challenge"], "code": totp.generate_current().unwrap()}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    mfa["session_token"]
        .as_str()
        .unwrap_or_else(|| panic!("no session: {mfa}"))
        .to_owned()
}

/// A fresh database for one backend: its URL and, for PostgreSQL, its name.
async fn fresh_database(backend: &str, dir: &Path) -> (String, Option<String>) {
    if backend == "sqlite" {
        return (
            format!("sqlite://{}", dir.join("voltvault.db").display()),
            None,
        );
    }
    let admin = postgres_admin_url();
    let name = format!("vv_load_{}", uuid::Uuid::new_v4().simple());
    let mut conn = sqlx::PgConnection::connect(&format!("{admin}/postgres"))
        .await
        .unwrap();
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();
    (format!("{admin}/{name}"), Some(name))
}

async fn drop_database(name: &str) {
    let mut conn = sqlx::PgConnection::connect(&format!("{}/postgres", postgres_admin_url()))
        .await
        .unwrap();
    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .execute(&mut conn)
        .await;
    conn.close().await.unwrap();
}

async fn bench(backend: &str, duration: Duration) {
    let db_dir = tempfile::tempdir().unwrap();
    let (url, pg_name) = fresh_database(backend, db_dir.path()).await;
    let setup = Setup::new(&url);
    setup.command(&["keys", "init"], "");
    setup.command(&["admin", "tenant", "create", "loadtest"], "");
    let out = setup.command(
        &[
            "admin",
            "client",
            "create",
            "--tenant",
            "loadtest",
            "--name",
            "bench-app",
        ],
        "",
    );
    let api_key = out
        .lines()
        .find_map(|l| l.strip_prefix("API key (shown once): "))
        .unwrap()
        .to_owned();
    let password = "bench-admin-password-1";
    let out = setup.command(
        &[
            "admin",
            "user",
            "create",
            "--tenant",
            "loadtest",
            "--username",
            "bench-admin",
            "--role",
            "admin",
        ],
        &format!("{password}\n"),
    );
    let totp_uri = out
        .split_whitespace()
        .find(|w| w.starts_with("otpauth://"))
        .unwrap()
        .to_owned();

    let (audited, discarded, rows, hmac) = audit_cost(&setup, duration).await;
    println!(
        "{backend:<9} in-process tokenize x{CONCURRENCY}: audit discarded {discarded:>7.0}/s | rows in the writer, events discarded {rows:>7.0}/s | production audit writer {audited:>7.0}/s ({:.0}% / {:.0}%) | HSM fingerprint alone {hmac:>7.0}/s",
        100.0 * audited / discarded,
        100.0 * audited / rows
    );

    let server = Server::start(&setup);
    let idle_kb = server.vm_hwm_kb();
    let apps: Vec<_> = (0..CONCURRENCY)
        .map(|_| client(&setup, server.api, &api_key))
        .collect();
    // Warm-up: connections open, sessions and data key ready.
    let warm = phase(
        Kind::Tokenize,
        &apps,
        &server,
        duration / 10,
        Arc::default(),
    )
    .await;
    let tokenize = phase(Kind::Tokenize, &apps, &server, duration, Arc::default()).await;
    let session = staff_session(&setup, server.api, password, &totp_uri).await;
    let admins: Vec<_> = (0..CONCURRENCY)
        .map(|_| client(&setup, server.api, &session))
        .collect();
    let mut tokens = warm.tokens;
    tokens.extend(tokenize.tokens.iter().cloned());
    let detokenize = phase(
        Kind::Detokenize,
        &admins,
        &server,
        duration,
        Arc::new(tokens),
    )
    .await;
    let peak_kb = server.vm_hwm_kb();
    println!("{backend:<9} {}", tokenize.line("tokenize"));
    println!("{backend:<9} {}", detokenize.line("detokenize"));
    println!(
        "{backend:<9} server VmHWM {:.1} MB (after start-up: {:.1} MB)",
        peak_kb as f64 / 1024.0,
        idle_kb as f64 / 1024.0
    );
    drop((apps, admins));
    server.stop();
    drop(setup.token);
    drop(setup.dir);
    if let Some(name) = pg_name {
        drop_database(&name).await;
    }
}

/// The machine's ceiling for durable single-row INSERTs shaped like a token
/// row, and for SELECT by key, measured with pgbench on a scratch database.
async fn pg_ceiling(clients: usize, seconds: u64) {
    if Command::new("pgbench").arg("--version").output().is_err() {
        println!("pgbench not installed: PostgreSQL ceiling not measured");
        return;
    }
    let (url, name) = fresh_database("postgres", Path::new(".")).await;
    let name = name.unwrap();
    let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
    for sql in [
        "CREATE EXTENSION IF NOT EXISTS pgcrypto",
        "CREATE TABLE t (id bigserial PRIMARY KEY, tenant text NOT NULL, token text NOT NULL, \
         fp bytea NOT NULL, ct bytea NOT NULL, created timestamptz DEFAULT now(), UNIQUE (tenant, token))",
    ] {
        sqlx::query(sql).execute(&mut conn).await.unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let run = |script: &str| -> String {
        let file = dir.path().join("script.sql");
        std::fs::write(&file, script).unwrap();
        let url = url::Url::parse(&url).unwrap();
        let out = Command::new("pgbench")
            .args(["-h", url.host_str().unwrap(), "-U", url.username()])
            .args(["-p", &url.port().unwrap_or(5432).to_string()])
            .args(["-n", "-M", "prepared", "-j", "2"])
            .args(["-c", &clients.to_string(), "-T", &seconds.to_string()])
            .arg("-f")
            .arg(&file)
            .arg(&name)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        text.lines()
            .find(|l| l.starts_with("tps"))
            .and_then(|l| l.split_whitespace().nth(2))
            .map(|t| format!("{:.0}", t.parse::<f64>().unwrap_or(f64::NAN)))
            .unwrap_or_else(|| "?".into())
    };
    let insert = run(
        "insert into t(tenant, token, fp, ct) values ('t1', md5(random()::text), \
         sha256(random()::text::bytea), gen_random_bytes(64));\n",
    );
    let (max,): (i64,) = sqlx::query_as("SELECT max(id) FROM t")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    let select = run(&format!(
        "\\set k random(1, {max})\nselect * from t where id = :k;\n"
    ));
    conn.close().await.unwrap();
    drop_database(&name).await;
    println!(
        "PostgreSQL ceiling ({clients} clients, {seconds} s, synchronous_commit on): insert {insert} tps, select by key {select} tps"
    );
}

fn main() {
    // `cargo test --all-targets` runs this without `--bench`: a smoke run.
    let measuring = std::env::args().any(|a| a == "--bench");
    if !voltvault::keys::testing::softhsm_available() {
        println!("SoftHSM not installed; http_load skipped");
        return;
    }
    let backends = std::env::var("HTTP_LOAD_BACKENDS").unwrap_or_else(|_| "sqlite,postgres".into());
    let seconds: f64 = std::env::var("HTTP_LOAD_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(if measuring { 15.0 } else { 0.25 });
    let duration = Duration::from_secs_f64(seconds);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "http_load: {CONCURRENCY} connections, {seconds} s per phase, load average before: {}",
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    if measuring {
        runtime.block_on(pg_ceiling(CONCURRENCY, 10));
    }
    for backend in backends.split(',') {
        runtime.block_on(bench(backend, duration));
    }
    if measuring {
        runtime.block_on(pg_ceiling(CONCURRENCY, 10));
    }
}
