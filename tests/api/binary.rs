//! The `voltvault` binary as an operator runs it: configuration checks,
//! `serve` with JSON logs scanned for card numbers, `dev`, and signals.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::helpers::{Backend, TestDb, TestPki, contains_bytes};

pub const BIN: &str = env!("CARGO_BIN_EXE_voltvault");
const PAN: &str = "4111111111111111";
const SPACED_PAN: &str = "5555 5555 5555 4444";

fn write_config(pki: &TestPki, db: &TestDb, extra: &str) -> std::path::PathBuf {
    write_config_file(pki, db, "voltvault.toml", "bin-test", extra)
}

/// A configuration file of its own for node `node`, with `extra` at the
/// top level before the first table.
pub fn write_node_config(
    pki: &TestPki,
    db: &TestDb,
    node: &str,
    extra: &str,
) -> std::path::PathBuf {
    write_config_file(pki, db, &format!("{node}.toml"), node, extra)
}

fn write_config_file(
    pki: &TestPki,
    db: &TestDb,
    file: &str,
    node: &str,
    extra: &str,
) -> std::path::PathBuf {
    let path = pki.dir.path().join(file);
    let body = format!(
        r#"version = 1
node_id = "{node}"
{extra}
[server]
listen = "127.0.0.1:0"
[tls]
cert_file = "{cert}"
key_file = "{key}"
client_ca_files = ["{ca}"]
[auth]
pepper_file = "{pepper}"
[ops]
listen = "127.0.0.1:0"
[database]
url = "{url}"
[logging]
format = "json"
[keys]
provider = "pkcs11"
[keys.pkcs11]
module = "{module}"
token_label = "{label}"
pin_file = "{pin}"
"#,
        cert = pki.path("server.pem").display(),
        key = pki.path("server.key").display(),
        ca = pki.path("ca.pem").display(),
        pepper = pki.path("pepper").display(),
        url = db.url,
        module = voltvault::keys::testing::SOFTHSM_MODULE,
        label = pki.token.label,
        pin = pki.path("hsm.pin").display(),
    );
    std::fs::write(&path, body).unwrap();
    path
}

fn check_config(path: &std::path::Path) -> (bool, String, String) {
    let out = Command::new(BIN)
        .arg("check-config")
        .arg(path)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[tokio::test]
async fn check_config_accepts_a_good_file_and_names_the_key_of_a_bad_one() {
    let pki = TestPki::new();
    let db = TestDb::new(Backend::Sqlite).await;
    let path = write_config(&pki, &db, "");
    let (ok, stdout, stderr) = check_config(&path);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("configuration OK"), "{stdout}");

    let path = write_config(&pki, &db, "colour = \"blue\"");
    let (ok, _, stderr) = check_config(&path);
    assert!(!ok);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("colour"), "{stderr}");

    let path = write_config(&pki, &db, "");
    std::fs::remove_file(pki.path("server.pem")).unwrap();
    let (ok, _, stderr) = check_config(&path);
    assert!(!ok);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("tls.cert_file"), "{stderr}");
}

#[tokio::test]
async fn a_key_file_others_can_read_refuses_to_start() {
    use std::os::unix::fs::PermissionsExt;
    let pki = TestPki::new();
    let db = TestDb::new(Backend::Sqlite).await;
    let path = write_config(&pki, &db, "");
    std::fs::set_permissions(
        pki.path("server.key"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let out = Command::new(BIN)
        .args(["serve", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("tls.key_file") && stderr.contains("644"),
        "{stderr}"
    );
}

#[tokio::test]
async fn migrate_applies_pending_migrations_once() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let pki = TestPki::new();
        let db = TestDb::new(backend).await;
        let path = write_config(&pki, &db, "");
        let run = || {
            let out = Command::new(BIN)
                .args(["migrate", "--config"])
                .arg(&path)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8(out.stdout).unwrap()
        };
        assert_ne!(run().trim(), "migrations applied: 0");
        assert_eq!(run().trim(), "migrations applied: 0");
    }
}

fn admin(path: &std::path::Path, args: &[&str], stdin: &str) -> (bool, String, String) {
    use std::io::Write;
    let mut child = Command::new(BIN)
        .args(["admin", "--config"])
        .arg(path)
        .args(args)
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
    (
        out.status.success(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[tokio::test]
async fn admin_cli_manages_tenants_clients_and_users() {
    let pki = TestPki::new();
    let db = TestDb::new(Backend::Sqlite).await;
    let path = write_config(&pki, &db, "");
    // Administrative actions are audited under sealed checkpoints: keys first.
    let (ok, _, err) = admin(&path, &["tenant", "list"], "");
    assert!(!ok && err.contains("keys init"), "{err}");
    keys_init(&path);
    let (ok, out, err) = admin(&path, &["tenant", "create", "acme"], "");
    assert!(ok && out.starts_with("tenant acme"), "{out}{err}");
    let (ok, out, err) = admin(
        &path,
        &["client", "create", "--tenant", "acme", "--name", "app1"],
        "",
    );
    assert!(
        ok && out.contains("API key (shown once): vv_"),
        "{out}{err}"
    );
    let (ok, out, err) = admin(
        &path,
        &[
            "user",
            "create",
            "--tenant",
            "acme",
            "--username",
            "ops1",
            "--role",
            "operator",
        ],
        "a-long-password-1\n",
    );
    assert!(ok, "{err}");
    assert!(out.contains("otpauth://totp/voltvault:ops1?"), "{out}");
    assert!(
        out.contains('█') || out.contains('▀'),
        "a QR code is drawn: {out}"
    );
    assert!(!out.contains("a-long-password-1") && !err.contains("a-long-password-1"));
    let (ok, _, err) = admin(
        &path,
        &[
            "user",
            "create",
            "--tenant",
            "acme",
            "--username",
            "ops2",
            "--role",
            "operator",
        ],
        "short\n",
    );
    assert!(!ok);
    assert_eq!(
        err.lines().count(),
        2,
        "a prompt and one line of reason: {err}"
    );
    assert!(err.contains("password_rejected"), "{err}");
    let (ok, out, _) = admin(&path, &["principals", "--tenant", "acme"], "");
    assert!(
        ok && out.contains("staff:ops1") && out.contains("client:"),
        "{out}"
    );
    let (ok, _, err) = admin(
        &path,
        &[
            "client", "create", "--tenant", "acme", "--name", "x", "--role", "admin",
        ],
        "",
    );
    assert!(!ok && err.contains("invalid_role"), "{err}");
}

/// `voltvault keys init` on the test's own SoftHSM token.
pub fn keys_init(config: &std::path::Path) {
    let init = Command::new(BIN)
        .args(["keys", "init", "--config"])
        .arg(config)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&init.stdout);
    assert!(
        init.status.success(),
        "{}",
        String::from_utf8_lossy(&init.stderr)
    );
    assert!(said.contains("check value"), "{said}");
}

/// A running child whose stderr lines arrive on a channel.
pub struct Running {
    pub child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Running {
    pub fn start(args: &[&str], stdout_too: bool) -> Self {
        let mut child = Command::new(BIN)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, lines) = mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        let tx2 = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if stdout_too {
                    let _ = tx2.send(line);
                }
            }
        });
        Self {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Waits for a line containing `needle` and returns it.
    pub fn wait_for(&mut self, needle: &str) -> String {
        loop {
            let line = self
                .lines
                .recv_timeout(Duration::from_secs(30))
                .unwrap_or_else(|_| panic!("no line with {needle:?}; saw {:#?}", self.seen));
            self.seen.push(line.clone());
            if line.contains(needle) {
                return line;
            }
        }
    }

    /// Signals the process and waits for it to exit, keeping the runtime
    /// free so that open client connections can take part in the shutdown.
    pub async fn signal_and_collect(mut self, signal: Signal) -> (bool, Vec<String>) {
        kill(Pid::from_raw(self.child.id() as i32), signal).unwrap();
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        // The readers end at end-of-file, so this takes every line the
        // process wrote, however long a busy machine keeps them waiting.
        while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(30)) {
            self.seen.push(line);
        }
        (status.success(), self.seen)
    }
}

#[tokio::test]
async fn serve_logs_json_with_request_ids_and_never_a_card_number() {
    let pki = TestPki::new();
    let db = TestDb::new(Backend::Sqlite).await;
    let path = write_config(&pki, &db, "");
    let path = path.to_str().unwrap().to_owned();
    let init = Command::new(BIN)
        .args(["keys", "init", "--config", &path])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&init.stdout);
    assert!(
        init.status.success(),
        "{}",
        String::from_utf8_lossy(&init.stderr)
    );
    assert!(said.contains("check value"), "{said}");
    let mut running = Running::start(&["serve", "--config", &path], false);
    let line = running.wait_for("voltvault is serving");
    let event: serde_json::Value = serde_json::from_str(&line).unwrap();
    let api: std::net::SocketAddr = event["fields"]["api_addr"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();

    // Core dumps are off in the running process.
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", running.child.id())).unwrap();
    let core = limits
        .lines()
        .find(|l| l.starts_with("Max core file size"))
        .unwrap();
    assert_eq!(core.split_whitespace().nth(4), Some("0"), "{core}");

    let client = reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(pki.ca_pem.as_bytes()).unwrap())
        .resolve("localhost", api)
        .build()
        .unwrap();
    let base = format!("https://localhost:{}", api.port());
    let spaced = SPACED_PAN.replace(' ', "%20");
    let responses = [
        client
            .get(format!("{base}/v1/tokens/{PAN}"))
            .send()
            .await
            .unwrap(),
        client
            .get(format!("{base}/v1/cards/{spaced}?pan={PAN}"))
            .send()
            .await
            .unwrap(),
        client
            .post(format!("{base}/v1/tokens"))
            .header("content-type", "application/json")
            .header("x-card", PAN)
            .body(format!("{{\"card\": {{\"number\": \"{PAN}\" "))
            .send()
            .await
            .unwrap(),
    ];
    let mut request_ids = Vec::new();
    for r in responses {
        assert!(r.status().is_client_error());
        request_ids.push(r.headers()["x-request-id"].to_str().unwrap().to_owned());
    }
    // Wait until the last request's access line is out.
    running.wait_for(&request_ids[2]);

    let (exited_cleanly, lines) = running.signal_and_collect(Signal::SIGTERM).await;
    assert!(
        exited_cleanly,
        "SIGTERM should end the process with status 0"
    );
    let log = lines.join("\n");
    for digits in [
        PAN,
        "5555555555554444",
        SPACED_PAN,
        "5555%205555%205555%204444",
    ] {
        assert!(
            !log.contains(digits),
            "card digits {digits} in the log:\n{log}"
        );
    }
    assert!(
        log.contains("[REDACTED PAN]"),
        "the path was logged, masked:\n{log}"
    );
    for id in &request_ids {
        assert!(
            log.contains(id.as_str()),
            "request id {id} missing from the log"
        );
    }
    for line in &lines {
        serde_json::from_str::<serde_json::Value>(line)
            .unwrap_or_else(|_| panic!("not a JSON log line: {line}"));
    }
    assert!(log.contains("voltvault stopped"), "{log}");
}

#[tokio::test]
async fn dev_runs_with_no_setup_and_stops_on_ctrl_c() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data_str = data.to_str().unwrap().to_owned();
    let mut running = Running::start(
        &[
            "dev",
            "--data-dir",
            &data_str,
            "--port",
            "0",
            "--ops-port",
            "0",
        ],
        true,
    );
    let line = running.wait_for("API        https://");
    let api: std::net::SocketAddr = line
        .split("https://")
        .nth(1)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let ca = std::fs::read(data.join("ca.pem")).unwrap();
    let client = reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap())
        .build()
        .unwrap();
    let health = client
        .get(format!("https://{api}/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    assert!(data.join("voltvault.db").is_file());
    // The demo principals: the API key authenticates (the app role may not list users).
    let line = running.wait_for("Authorization: Bearer vv_");
    let key = line.split("Bearer ").nth(1).unwrap().trim().to_owned();
    let response = client
        .get(format!("https://{api}/v1/users"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    running.wait_for("otpauth://totp/voltvault:demo-admin");
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(data.join("auth-pepper"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let (exited_cleanly, _) = running.signal_and_collect(Signal::SIGINT).await;
    assert!(exited_cleanly);
}

#[tokio::test]
async fn serve_never_logs_passwords_api_keys_or_session_secrets() {
    let pki = TestPki::new();
    let db = TestDb::new(Backend::Sqlite).await;
    let path = write_config(&pki, &db, "");
    const PASSWORD: &str = "never-in-a-log-77";
    keys_init(&path);
    assert!(admin(&path, &["tenant", "create", "acme"], "").0);
    let (ok, out, _) = admin(
        &path,
        &["client", "create", "--tenant", "acme", "--name", "app"],
        "",
    );
    assert!(ok);
    let key = out
        .lines()
        .find_map(|l| l.strip_prefix("API key (shown once): "))
        .unwrap()
        .to_owned();
    let (ok, _, err) = admin(
        &path,
        &[
            "user",
            "create",
            "--tenant",
            "acme",
            "--username",
            "ops",
            "--role",
            "operator",
        ],
        &format!("{PASSWORD}\n"),
    );
    assert!(ok, "{err}");

    let path = path.to_str().unwrap().to_owned();
    let mut running = Running::start(&["serve", "--config", &path], false);
    let line = running.wait_for("voltvault is serving");
    let event: serde_json::Value = serde_json::from_str(&line).unwrap();
    let api: std::net::SocketAddr = event["fields"]["api_addr"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let client = reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(pki.ca_pem.as_bytes()).unwrap())
        .resolve("localhost", api)
        .build()
        .unwrap();
    let base = format!("https://localhost:{}", api.port());
    let wrong_key = format!("{}{}", &key[..20], "A".repeat(43));
    let as_key = client
        .get(format!("{base}/v1/users"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(as_key.status(), 403);
    let wrong = client
        .get(format!("{base}/v1/users"))
        .bearer_auth(&wrong_key)
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let login = client
        .post(format!("{base}/v1/auth/login"))
        .json(&serde_json::json!({"username": "ops", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 200);
    let challenge: serde_json::Value = login.json().await.unwrap();
    let challenge = challenge["challenge"].as_str().unwrap().to_owned();
    let mfa = client
        .post(format!("{base}/v1/auth/mfa"))
        .json(&serde_json::json!({"challenge": challenge, "code": "000000"}))
        .send()
        .await
        .unwrap();
    assert_eq!(mfa.status(), 401);
    let last = mfa.headers()["x-request-id"].to_str().unwrap().to_owned();
    running.wait_for(&last);
    let (_, lines) = running.signal_and_collect(Signal::SIGTERM).await;
    let log = lines.join("\n");
    for (what, secret) in [
        ("API key", &key[20..]),
        ("wrong API key", &wrong_key[20..]),
        ("password", PASSWORD),
        ("challenge", &challenge[4..]),
    ] {
        assert!(!log.contains(secret), "{what} in the log:\n{log}");
    }
    // The failures went to the durable audit trail, not to the log.
    let store = db.store().await;
    let mut query = voltvault::audit::AuditQuery::new();
    query.event_type = Some("auth.authenticate".into());
    let failures = store.search_audit(&query).await.unwrap();
    assert!(
        failures
            .iter()
            .any(|r| r.reason.as_deref() == Some("invalid_credentials")),
        "{failures:?}"
    );
}

/// The success paths, as an operator runs the service: cards with CVCs
/// tokenized (random, FF1, batch) and detokenized over HTTP with debug
/// logging, and a card number sent where none belongs; then the log, the
/// SQLite files or a PostgreSQL dump scanned for the card numbers, CVCs and
/// holder name: zero hits.
#[tokio::test]
async fn successful_card_paths_leave_no_card_data_in_logs_or_database() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        successful_card_paths_leave_no_card_data(backend).await;
    }
}

/// Sent where no card number belongs; must be found nowhere afterwards.
const MISPLACED_PAN: &str = "4242424242424242";

async fn successful_card_paths_leave_no_card_data(backend: Backend) {
    const PASSWORD: &str = "detokenize-pass-2026";
    const HOLDER: &str = "Grace Hopper";
    // (number as typed, CVC, format)
    let cards = [
        ("5555555555554444", "737", "random"),
        ("4000 0566 5566 5556", "912", "ff1"),
        ("378282246310005", "4829", "random"),
        ("6011-1111-1111-1117", "381", "ff1"),
    ];
    let pki = TestPki::new();
    let db = TestDb::new(backend).await;
    let path = write_config(&pki, &db, "");
    let config = std::fs::read_to_string(&path).unwrap();
    std::fs::write(
        &path,
        config.replace("format = \"json\"", "format = \"json\"\nlevel = \"debug\""),
    )
    .unwrap();
    keys_init(&path);
    assert!(admin(&path, &["tenant", "create", "acme"], "").0);
    let (ok, out, _) = admin(
        &path,
        &["client", "create", "--tenant", "acme", "--name", "app"],
        "",
    );
    assert!(ok);
    let key = out
        .lines()
        .find_map(|l| l.strip_prefix("API key (shown once): "))
        .unwrap()
        .to_owned();
    let (ok, out, err) = admin(
        &path,
        &[
            "user",
            "create",
            "--tenant",
            "acme",
            "--username",
            "root-admin",
            "--role",
            "admin",
        ],
        &format!("{PASSWORD}\n"),
    );
    assert!(ok, "{err}");
    let uri = out
        .split_whitespace()
        .find(|w| w.starts_with("otpauth://"))
        .unwrap();
    let totp = totp_rs::TOTP::from_url(uri).unwrap();

    let path = path.to_str().unwrap().to_owned();
    let mut running = Running::start(&["serve", "--config", &path], false);
    let line = running.wait_for("voltvault is serving");
    let event: serde_json::Value = serde_json::from_str(&line).unwrap();
    let api: std::net::SocketAddr = event["fields"]["api_addr"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let client = reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(pki.ca_pem.as_bytes()).unwrap())
        .resolve("localhost", api)
        .build()
        .unwrap();
    let base = format!("https://localhost:{}", api.port());
    let body = |number: &str, cvc: &str, format: &str| {
        serde_json::json!({"card": {"number": number, "exp_month": 10, "exp_year": 2035,
            "cvc": cvc, "holder_name": HOLDER}, "format": format})
    };
    let mut tokens = Vec::new();
    for (i, (number, cvc, format)) in cards.iter().enumerate() {
        let response = client
            .post(format!("{base}/v1/tokens"))
            .bearer_auth(&key)
            .header("idempotency-key", format!("leak-{i}"))
            .json(&body(number, cvc, format))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201);
        let view: serde_json::Value = response.json().await.unwrap();
        tokens.push(view["token"].as_str().unwrap().to_owned());
    }
    let batch = client
        .post(format!("{base}/v1/tokens/batch"))
        .bearer_auth(&key)
        .header("idempotency-key", "leak-batch")
        .json(&serde_json::json!({"items": cards.iter().map(|(n, c, f)| body(n, c, f)).collect::<Vec<_>>()}))
        .send()
        .await
        .unwrap();
    assert_eq!(batch.status(), 200);

    let login: serde_json::Value = client
        .post(format!("{base}/v1/auth/login"))
        .json(&serde_json::json!({"username": "root-admin", "password": PASSWORD}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mfa: serde_json::Value = client
        .post(format!("{base}/v1/auth/mfa"))
        .json(&serde_json::json!({"challenge": login["challenge"], "code": totp.generate_current().unwrap()}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let session = mfa["session_token"].as_str().unwrap().to_owned();

    // A card number where none belongs: in a path, a login name, token
    // metadata, a query string, an Idempotency-Key. The number is scanned
    // for below with the others.
    let misplaced = [
        client
            .get(format!("{base}/v1/tokens/{MISPLACED_PAN}"))
            .bearer_auth(&key),
        client
            .delete(format!("{base}/v1/tokens/{MISPLACED_PAN}"))
            .bearer_auth(&key)
            .header("idempotency-key", "leak-delete"),
        client
            .post(format!("{base}/v1/tokens/{MISPLACED_PAN}/detokenize"))
            .bearer_auth(&session),
        client
            .get(format!(
                "{base}/v1/tokens/{}?card={MISPLACED_PAN}",
                tokens[0]
            ))
            .bearer_auth(&key),
        client
            .post(format!("{base}/v1/auth/login"))
            .json(&serde_json::json!({"username": MISPLACED_PAN, "password": PASSWORD})),
        client
            .post(format!("{base}/v1/tokens"))
            .bearer_auth(&key)
            .header("idempotency-key", "leak-metadata")
            .json(&{
                let mut b = body(cards[0].0, cards[0].1, "random");
                b["metadata"] = serde_json::json!({"note": MISPLACED_PAN});
                b
            }),
    ];
    for request in misplaced {
        let response = request.send().await.unwrap();
        let status = response.status();
        // Refused, or (the query string) ignored; never a failure of ours.
        assert!(
            !status.is_server_error(),
            "{status} for {:?}",
            response.url().path()
        );
    }
    // A client that keys its requests by the card: it works (the replay
    // answers with the same token), and the key is stored only hashed.
    let keyed_by_card = || {
        client
            .post(format!("{base}/v1/tokens"))
            .bearer_auth(&key)
            .header("idempotency-key", format!("tok-{MISPLACED_PAN}"))
            .json(&body(cards[1].0, cards[1].1, "random"))
            .send()
    };
    let first = keyed_by_card().await.unwrap();
    assert_eq!(first.status(), 201);
    let first: serde_json::Value = first.json().await.unwrap();
    let replay: serde_json::Value = keyed_by_card().await.unwrap().json().await.unwrap();
    assert_eq!(replay["token"], first["token"]);
    let mut last = String::new();
    for (token, (number, _, _)) in tokens.iter().zip(&cards) {
        let response = client
            .post(format!("{base}/v1/tokens/{token}/detokenize"))
            .bearer_auth(&session)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        last = response.headers()["x-request-id"]
            .to_str()
            .unwrap()
            .to_owned();
        let back: serde_json::Value = response.json().await.unwrap();
        let digits: String = number.chars().filter(char::is_ascii_digit).collect();
        assert_eq!(back["card"]["number"], digits.as_str());
    }
    running.wait_for(&last);
    let (exited_cleanly, lines) = running.signal_and_collect(Signal::SIGTERM).await;
    assert!(exited_cleanly);
    let log = lines.join("\n");
    assert!(
        log.contains("\"level\":\"DEBUG\""),
        "debug lines were logged"
    );

    let stored = match backend {
        Backend::Sqlite => {
            crate::helpers::read_all_files_under(db.sqlite_path().unwrap().parent().unwrap())
        }
        Backend::Postgres => {
            let out = Command::new("pg_dump")
                .args(["--data-only", "--no-owner", &db.url])
                .output()
                .unwrap();
            assert!(out.status.success());
            out.stdout
        }
    };
    assert!(stored.len() > 1000);
    for (what, haystack) in [("log", log.as_bytes()), ("database", stored.as_slice())] {
        assert!(
            !contains_bytes(haystack, MISPLACED_PAN.as_bytes()),
            "the misplaced card number in the {what}"
        );
        for (number, cvc, _) in &cards {
            let digits: String = number.chars().filter(char::is_ascii_digit).collect();
            for needle in [digits.as_str(), number] {
                assert!(
                    !contains_bytes(haystack, needle.as_bytes()),
                    "card number {needle} in the {what}"
                );
            }
            // A CVC is too short to scan for bare; a leak shows it as a
            // string value or beside its field name.
            for needle in [
                format!("\"{cvc}\""),
                format!("cvc\":\"{cvc}"),
                format!("cvc: \"{cvc}"),
                format!("cvc={cvc}"),
            ] {
                assert!(
                    !contains_bytes(haystack, needle.as_bytes()),
                    "CVC {needle} in the {what}"
                );
            }
        }
        assert!(
            !contains_bytes(haystack, HOLDER.as_bytes()),
            "holder name in the {what}"
        );
    }
}

/// Two `voltvault serve` processes (nodes node-a and node-b) on one fresh
/// PostgreSQL database and one SoftHSM token, tokenizing concurrently:
/// after SIGTERM, `voltvault audit verify` finds both chains intact with
/// every request in them, and names node-b's record once it is tampered with.
#[tokio::test]
async fn two_serve_processes_on_one_postgres_keep_verifiable_chains() {
    use sqlx::Connection;
    const TASKS: usize = 4;
    const PER_TASK: usize = 10;
    let pki = TestPki::new();
    let db = TestDb::new(Backend::Postgres).await;
    // Each node with four audit writer lanes (ADR 0011).
    let text = std::fs::read_to_string(write_config(&pki, &db, "audit.writer_lanes = 4")).unwrap();
    let configs: Vec<String> = ["node-a", "node-b"]
        .iter()
        .map(|node| {
            let path = pki.path(&format!("{node}.toml"));
            let body = text.replace("node_id = \"bin-test\"", &format!("node_id = \"{node}\""));
            assert_ne!(body, text);
            std::fs::write(&path, body).unwrap();
            path.to_str().unwrap().to_owned()
        })
        .collect();
    let first = std::path::Path::new(&configs[0]);
    keys_init(first);
    assert!(admin(first, &["tenant", "create", "acme"], "").0);
    let (ok, out, err) = admin(
        first,
        &["client", "create", "--tenant", "acme", "--name", "app"],
        "",
    );
    assert!(ok, "{err}");
    let key = out
        .lines()
        .find_map(|l| l.strip_prefix("API key (shown once): "))
        .unwrap()
        .to_owned();

    let mut nodes = Vec::new();
    for config in &configs {
        let mut running = Running::start(&["serve", "--config", config], false);
        let line = running.wait_for("voltvault is serving");
        let event: serde_json::Value = serde_json::from_str(&line).unwrap();
        let api: std::net::SocketAddr = event["fields"]["api_addr"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        nodes.push((running, api));
    }
    let mut requests = Vec::new();
    for (n, (_, api)) in nodes.iter().enumerate() {
        let client = reqwest::Client::builder()
            .use_rustls_tls()
            .tls_built_in_root_certs(false)
            .add_root_certificate(reqwest::Certificate::from_pem(pki.ca_pem.as_bytes()).unwrap())
            .resolve("localhost", *api)
            .build()
            .unwrap();
        let url = format!("https://localhost:{}/v1/tokens", api.port());
        for task in 0..TASKS {
            let (client, url, key) = (client.clone(), url.clone(), key.clone());
            requests.push(tokio::spawn(async move {
                for i in 0..PER_TASK {
                    let response = client
                        .post(&url)
                        .bearer_auth(&key)
                        .header("idempotency-key", format!("n{n}-t{task}-{i}"))
                        .json(&serde_json::json!({
                            "card": {"number": PAN, "exp_month": 12, "exp_year": 2030}
                        }))
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(response.status(), 201);
                }
            }));
        }
    }
    for request in requests {
        request.await.unwrap();
    }
    for (running, _) in nodes {
        let (exited_cleanly, lines) = running.signal_and_collect(Signal::SIGTERM).await;
        assert!(exited_cleanly, "{lines:#?}");
    }

    let verify = || {
        let out = Command::new(BIN)
            .args(["audit", "verify", "--json", "--config", &configs[0]])
            .output()
            .unwrap();
        let report: serde_json::Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&out.stderr)));
        (out.status.success(), report)
    };
    let node = |report: &serde_json::Value, id: &str| {
        report["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["node_id"] == id)
            .unwrap_or_else(|| panic!("no chain for {id}: {report}"))
            .clone()
    };
    let (ok, report) = verify();
    assert!(ok && report["ok"] == true, "{report}");
    let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap();
    for id in ["node-a", "node-b"] {
        // A chain per audit writer lane: `<node>`, `<node>#1`, ...
        let chains: Vec<serde_json::Value> = report["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|n| {
                let chain = n["node_id"].as_str().unwrap();
                chain == id || chain.starts_with(&format!("{id}#"))
            })
            .cloned()
            .collect();
        assert_eq!(chains.len(), 4, "one chain per lane: {report}");
        let (mut tokenized, mut authenticated) = (0, 0);
        for chain in &chains {
            let chain_id = chain["node_id"].as_str().unwrap();
            let counts: Vec<(String, String, i64)> = sqlx::query_as(
                "SELECT event_type, outcome, count(*) FROM audit_events \
                 WHERE node_id = $1 GROUP BY event_type, outcome",
            )
            .bind(chain_id)
            .fetch_all(&mut conn)
            .await
            .unwrap();
            let count = |event: &str, outcome: &str| {
                counts
                    .iter()
                    .find(|(e, o, _)| e == event && o == outcome)
                    .map_or(0, |(_, _, n)| *n)
            };
            tokenized += count("token.tokenize", "success");
            authenticated += count("auth.authenticate", "success");
            assert_eq!(count("audit.start", "success"), 1, "{chain_id}: {counts:?}");
            assert_eq!(count("audit.stop", "success"), 1, "{chain_id}: {counts:?}");
            // Anything else on the chain is the key layer's own (a data key made or unwrapped).
            assert!(
                counts.iter().all(|(e, _, _)| e.starts_with("key.")
                    || [
                        "token.tokenize",
                        "auth.authenticate",
                        "audit.start",
                        "audit.stop"
                    ]
                    .contains(&e.as_str())),
                "{chain_id}: {counts:?}"
            );
            let total: i64 = counts.iter().map(|(_, _, n)| n).sum();
            assert_eq!(chain["records_checked"], total, "{chain_id}: {chain}");
            assert_eq!(chain["first_seq"], 1, "{chain_id}: {chain}");
            assert_eq!(chain["last_seq"], total, "{chain_id}: {chain}");
            assert_eq!(chain["last_sealed_seq"], total, "sealed at stop: {chain}");
        }
        let expected = (TASKS * PER_TASK) as i64;
        assert_eq!(tokenized, expected, "{id}: {report}");
        assert_eq!(authenticated, expected, "{id}: {report}");
    }
    conn.close().await.unwrap();

    crate::audit::tamper(
        &db,
        &["UPDATE audit_events SET outcome = 'failure' WHERE node_id = 'node-b' AND seq = 5"],
    )
    .await;
    let (ok, report) = verify();
    assert!(!ok && report["ok"] == false, "{report}");
    assert!(node(&report, "node-a")["problem"].is_null(), "{report}");
    let problem = &node(&report, "node-b")["problem"];
    assert_eq!(problem["seq"], 5, "{report}");
    assert_eq!(problem["kind"], "modified", "{report}");
}
