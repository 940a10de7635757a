//! `spawn_app`: a real voltvault on port 0 with its own database, its own
//! PKI and TLS clients with and without a client certificate.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::Router;
use voltvault::app::{App, RunningApp};
use voltvault::clock::Environment;
use voltvault::config::{
    AcquirerKind, AuthConfig, ClientAuth, Config, DatabaseConfig, KeyProviderKind, KeysConfig,
    LogFormat, LoggingConfig, Mode, OpsConfig, PaymentsConfig, Pkcs11Settings, ServerConfig,
    TlsConfig,
};
use voltvault::devpki::{DevCa, write_file};
use voltvault::keys::testing::{SOFTHSM_MODULE, TestToken};
use voltvault::store::Store;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The PostgreSQL server tests use; each test makes its own database on it.
pub fn postgres_admin_url() -> String {
    std::env::var("VOLTVAULT_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into())
}

/// A database of one's own: a SQLite file in a temp dir, or a PostgreSQL
/// database created for this test and dropped after it.
pub struct TestDb {
    pub url: String,
    pub backend: Backend,
    dir: Option<tempfile::TempDir>,
    pg_name: Option<String>,
}

impl TestDb {
    pub async fn new(backend: Backend) -> Self {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().unwrap();
                let url = format!("sqlite://{}", dir.path().join("voltvault.db").display());
                Self {
                    url,
                    backend,
                    dir: Some(dir),
                    pg_name: None,
                }
            }
            Backend::Postgres => {
                use sqlx::Connection;
                let name = format!("vv_test_{}", uuid::Uuid::new_v4().simple());
                let admin = postgres_admin_url();
                let mut conn = sqlx::PgConnection::connect(&format!("{admin}/postgres"))
                    .await
                    .expect(
                        "PostgreSQL must answer at 127.0.0.1:5432 (the test command starts it)",
                    );
                sqlx::query(&format!("CREATE DATABASE {name}"))
                    .execute(&mut conn)
                    .await
                    .unwrap();
                conn.close().await.unwrap();
                Self {
                    url: format!("{admin}/{name}"),
                    backend,
                    dir: None,
                    pg_name: Some(name),
                }
            }
        }
    }

    /// The SQLite file, for tests that scan it.
    pub fn sqlite_path(&self) -> Option<PathBuf> {
        self.dir.as_ref().map(|d| d.path().join("voltvault.db"))
    }

    /// How many rows `table` holds (a name from the migrations, never input).
    pub async fn count_rows(&self, table: &str) -> i64 {
        use sqlx::Connection;
        let sql = format!("SELECT count(*) FROM {table}");
        match self.backend {
            Backend::Sqlite => {
                let mut c = sqlx::SqliteConnection::connect(&self.url).await.unwrap();
                sqlx::query_scalar(&sql).fetch_one(&mut c).await.unwrap()
            }
            Backend::Postgres => {
                let mut c = sqlx::PgConnection::connect(&self.url).await.unwrap();
                sqlx::query_scalar(&sql).fetch_one(&mut c).await.unwrap()
            }
        }
    }

    /// Runs one statement as the database owner, bypassing the service
    /// (to show what the database itself refuses).
    pub async fn execute(&self, sql: &str) -> Result<(), sqlx::Error> {
        use sqlx::Connection;
        match self.backend {
            Backend::Sqlite => {
                let mut c = sqlx::SqliteConnection::connect(&self.url).await?;
                sqlx::query(sql).execute(&mut c).await.map(|_| ())
            }
            Backend::Postgres => {
                let mut c = sqlx::PgConnection::connect(&self.url).await?;
                sqlx::query(sql).execute(&mut c).await.map(|_| ())
            }
        }
    }

    /// A migrated store on this database.
    pub async fn store(&self) -> Arc<dyn Store> {
        let store: Arc<dyn Store> = match self.backend {
            Backend::Sqlite => Arc::new(
                voltvault::store::sqlite::SqliteStore::connect(&self.url, 4)
                    .await
                    .unwrap(),
            ),
            Backend::Postgres => Arc::new(
                voltvault::store::postgres::PostgresStore::connect(&self.url, None, 8)
                    .await
                    .unwrap(),
            ),
        };
        store.migrate().await.unwrap();
        store
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let Some(name) = self.pg_name.take() else {
            return;
        };
        // Drop runs outside async; use a short-lived runtime on its own thread.
        let admin = postgres_admin_url();
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                use sqlx::Connection;
                if let Ok(mut conn) =
                    sqlx::PgConnection::connect(&format!("{admin}/postgres")).await
                {
                    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .execute(&mut conn)
                        .await;
                    let _ = conn.close().await;
                }
            });
        })
        .join();
    }
}

/// Certificates for one test: a CA the server trusts for clients, the
/// server's own certificate, a charger certificate from that CA, and one
/// from a CA nobody configured.
pub struct TestPki {
    pub dir: tempfile::TempDir,
    /// A SoftHSM2 token of this test's own, with `keys init` done.
    pub token: TestToken,
    /// The CA behind `ca_pem`, to issue more client certificates.
    pub ca: DevCa,
    pub ca_pem: String,
    pub charger_pem: String,
    pub charger_key_pem: String,
    pub foreign_pem: String,
    pub foreign_key_pem: String,
}

impl TestPki {
    /// Creates the certificates and a fresh token; `keys init` runs on first use.
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let ca = DevCa::generate("test CA").unwrap();
        let server = ca.issue_server(&["localhost", "127.0.0.1"]).unwrap();
        let charger = ca.issue_client("charger-7").unwrap();
        let foreign_ca = DevCa::generate("someone else's CA").unwrap();
        let foreign = foreign_ca.issue_client("charger-7").unwrap();
        write_file(&dir.path().join("ca.pem"), &ca.cert_pem(), 0o644).unwrap();
        write_file(&dir.path().join("server.pem"), &server.cert_pem, 0o644).unwrap();
        write_file(&dir.path().join("server.key"), &server.key_pem, 0o600).unwrap();
        let token = TestToken::new();
        write_file(
            &dir.path().join("hsm.pin"),
            token.pin.expose_secret(),
            0o600,
        )
        .unwrap();
        write_file(&dir.path().join("pepper"), &"5a".repeat(32), 0o600).unwrap();
        write_file(
            &dir.path().join("tariffs.json"),
            voltvault::payments::tariffs::DEMO_TARIFFS,
            0o600,
        )
        .unwrap();
        Self {
            dir,
            token,
            ca_pem: ca.cert_pem(),
            charger_pem: charger.cert_pem,
            charger_key_pem: charger.key_pem,
            foreign_pem: foreign.cert_pem,
            foreign_key_pem: foreign.key_pem,
            ca,
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

/// A configuration for tests: loopback, port 0, the test PKI and database.
pub fn test_config(pki: &TestPki, db: &TestDb) -> Config {
    Config {
        version: 1,
        mode: Mode::Development,
        node_id: Some("test".into()),
        server: ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            body_limit_bytes: 16 * 1024,
            request_timeout_secs: 5,
            shutdown_grace_secs: 5,
        },
        tls: TlsConfig {
            cert_file: pki.path("server.pem"),
            key_file: pki.path("server.key"),
            client_auth: ClientAuth::Optional,
            client_ca_files: vec![pki.path("ca.pem")],
        },
        ops: OpsConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        },
        database: DatabaseConfig {
            url: db.url.clone(),
            password_file: None,
            max_connections: 8,
            migrate_on_start: true,
        },
        keys: KeysConfig {
            provider: KeyProviderKind::Pkcs11,
            pkcs11: Some(Pkcs11Settings {
                module: SOFTHSM_MODULE.into(),
                token_label: pki.token.label.clone(),
                pin_file: Some(pki.path("hsm.pin")),
                sessions: 2,
            }),
            software: None,
            max_data_key_age_days: 90,
            max_data_key_uses: 1 << 28,
        },
        logging: LoggingConfig {
            format: LogFormat::Human,
            level: "info".into(),
        },
        auth: AuthConfig {
            pepper_file: Some(pki.path("pepper")),
            ..AuthConfig::default()
        },
        audit: Default::default(),
        billing: voltvault::config::BillingConfig {
            locations: vec![voltvault::billing::location::demo_site()],
            ..Default::default()
        },
        payments: PaymentsConfig {
            acquirer: Some(AcquirerKind::Simulator),
            tariffs_file: Some(pki.path("tariffs.json")),
            ..PaymentsConfig::default()
        },
        notifications: Default::default(),
    }
}

pub struct TestApp {
    pub auth: Arc<voltvault::auth::AuthService>,
    pub addr: SocketAddr,
    pub ops_addr: SocketAddr,
    pub running: Option<RunningApp>,
    pub store: Arc<dyn Store>,
    pub audit: voltvault::audit::AuditLog,
    pub pki: TestPki,
    pub db: TestDb,
}

pub async fn spawn_app(backend: Backend) -> TestApp {
    spawn_app_with(backend, |_| {}, None).await
}

pub async fn spawn_app_with(
    backend: Backend,
    customize: impl FnOnce(&mut Config),
    extra_routes: Option<Router>,
) -> TestApp {
    spawn_app_full(
        backend,
        customize,
        extra_routes,
        Environment::system(),
        None,
    )
    .await
}

/// The service with a given clock, and an observer that sees every audit
/// event after the durable writer has it.
pub async fn spawn_app_full(
    backend: Backend,
    customize: impl FnOnce(&mut Config),
    extra_routes: Option<Router>,
    env: Environment,
    audit_observer: Option<Arc<dyn voltvault::audit::AuditSink>>,
) -> TestApp {
    let pki = TestPki::new();
    let db = TestDb::new(backend).await;
    pki.token.initialized().await.unwrap();
    let mut config = test_config(&pki, &db);
    customize(&mut config);
    let app = App::build_observed(config, env, None, audit_observer)
        .await
        .unwrap();
    let store = app.store();
    let auth = app.auth();
    let audit = app.audit();
    let running = app.start(extra_routes).await.unwrap();
    TestApp {
        auth,
        addr: running.api_addr,
        ops_addr: running.ops_addr,
        running: Some(running),
        store,
        audit,
        pki,
        db,
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("https://localhost:{}{path}", self.addr.port())
    }

    /// The first thousand records of the audit trail, oldest first.
    pub async fn audit_trail(&self) -> Vec<voltvault::audit::AuditRecord> {
        self.store
            .search_audit(&voltvault::audit::AuditQuery {
                limit: 1000,
                ..voltvault::audit::AuditQuery::new()
            })
            .await
            .unwrap()
    }

    pub fn ops_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.ops_addr)
    }

    fn builder(&self) -> reqwest::ClientBuilder {
        reqwest::Client::builder()
            .use_rustls_tls()
            .tls_built_in_root_certs(false)
            .add_root_certificate(
                reqwest::Certificate::from_pem(self.pki.ca_pem.as_bytes()).unwrap(),
            )
            .resolve("localhost", self.addr)
    }

    /// Creates a staff member of `role` in a tenant of its own and signs
    /// them in (password, then TOTP); returns the session token.
    pub async fn staff_session(&self, role: voltvault::auth::Role) -> String {
        use voltvault::auth::{Actor, Origin};

        let tenant = format!("staff-{}", uuid::Uuid::new_v4().simple());
        let tenant = &tenant[..20];
        let t = self
            .auth
            .create_tenant(tenant, &Actor::cli(), &Origin::cli())
            .await
            .unwrap()
            .id;
        self.staff_session_in(t, role).await
    }

    /// Like [`TestApp::staff_session`], for a staff member of tenant `t`.
    pub async fn staff_session_in(
        &self,
        t: voltvault::ids::TenantId,
        role: voltvault::auth::Role,
    ) -> String {
        self.staff_session_at(t, role, None).await
    }

    /// Signs in with the TOTP code of `at` (the service's fixed clock), or
    /// of now.
    pub async fn staff_session_at(
        &self,
        t: voltvault::ids::TenantId,
        role: voltvault::auth::Role,
        at: Option<chrono::DateTime<chrono::Utc>>,
    ) -> String {
        use voltvault::auth::{Actor, Origin};
        let password = "staff-pass-2026";
        let username = format!(
            "{}-{}",
            role.as_str(),
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        );
        let (_, totp) = self
            .auth
            .create_user(
                t,
                &username,
                role,
                &voltvault::secret::SecretString::new(password.into()),
                &Actor::cli(),
                &Origin::cli(),
            )
            .await
            .unwrap();
        let totp = totp_rs::TOTP::from_url(totp.uri.as_str()).unwrap();
        let c = self.client();
        let body: serde_json::Value = c
            .post(self.url("/v1/auth/login"))
            .json(&serde_json::json!({"username": username, "password": password}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let code = match at {
            Some(at) => totp.generate(u64::try_from(at.timestamp()).unwrap()),
            None => totp.generate_current().unwrap(),
        };
        let body: serde_json::Value = c
            .post(self.url("/v1/auth/mfa"))
            .json(&serde_json::json!({"challenge": body["challenge"], "code": code}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        body["session_token"].as_str().unwrap().to_owned()
    }

    /// A client that sends `token` as its bearer credential.
    pub fn bearer_client(&self, token: &str) -> reqwest::Client {
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(
            reqwest::header::AUTHORIZATION,
            format!("Bearer {token}").parse().unwrap(),
        );
        self.builder().default_headers(headers).build().unwrap()
    }

    /// A client that presents no certificate (an app using API keys).
    pub fn client(&self) -> reqwest::Client {
        self.builder().build().unwrap()
    }

    /// A charger: a client certificate from the configured CA.
    pub fn charger_client(&self) -> reqwest::Client {
        identity_client(
            self.builder(),
            &self.pki.charger_pem,
            &self.pki.charger_key_pem,
        )
    }

    /// A client presenting the given certificate and key (PEM).
    pub fn client_with_identity(&self, cert_pem: &str, key_pem: &str) -> reqwest::Client {
        identity_client(self.builder(), cert_pem, key_pem)
    }

    /// A client certificate from a CA the server does not know.
    pub fn foreign_client(&self) -> reqwest::Client {
        identity_client(
            self.builder(),
            &self.pki.foreign_pem,
            &self.pki.foreign_key_pem,
        )
    }

    pub async fn stop(mut self) {
        if let Some(running) = self.running.take() {
            running.stop().await;
        }
    }
}

pub fn identity_client(builder: reqwest::ClientBuilder, cert: &str, key: &str) -> reqwest::Client {
    let pem = format!("{cert}\n{key}");
    builder
        .identity(reqwest::Identity::from_pem(pem.as_bytes()).unwrap())
        .build()
        .unwrap()
}

/// Runs the same async test body on both databases.
#[macro_export]
macro_rules! on_both_databases {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name($crate::helpers::Backend::Sqlite).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name($crate::helpers::Backend::Postgres).await;
                }
            )*
        }
    };
}

/// Scans bytes for a needle (used to look for card digits in files and dumps).
pub fn contains_bytes(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

pub fn read_all_files_under(dir: &Path) -> Vec<u8> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                out.extend(read_all_files_under(&path));
            } else if let Ok(bytes) = std::fs::read(&path) {
                out.extend(bytes);
            }
        }
    }
    out
}
