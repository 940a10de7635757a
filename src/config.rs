//! Configuration: a versioned TOML file plus `VOLTVAULT_` environment
//! overrides (`VOLTVAULT_SERVER__LISTEN=0.0.0.0:8443`). Unknown keys are
//! rejected. Secrets never live in the file: they come from the environment
//! or from files that only the service may read.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

use crate::secret::{SecretFileError, SecretString, check_secret_file_permissions};

/// The configuration format this build understands.
pub const CONFIG_VERSION: u32 = 1;

/// Environment variables that carry secrets directly. They are read on their
/// own and never merged into the configuration tree.
pub const DATABASE_PASSWORD_ENV: &str = "VOLTVAULT_DATABASE_PASSWORD";
pub const HSM_PIN_ENV: &str = "VOLTVAULT_HSM_PIN";
const SECRET_ENV_KEYS: &[&str] = &["database_password", "hsm_pin"];

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Configuration format version; must be 1.
    pub version: u32,
    /// `production` refuses development-only shortcuts; `development` is for `voltvault dev`.
    #[serde(default)]
    pub mode: Mode,
    /// Names this node in logs, metrics and audit records; defaults to the host name.
    #[serde(default)]
    pub node_id: Option<String>,
    pub server: ServerConfig,
    pub tls: TlsConfig,
    #[serde(default)]
    pub ops: OpsConfig,
    pub database: DatabaseConfig,
    #[serde(default)]
    pub logging: LoggingConfig,
    #[serde(default)]
    pub audit: AuditConfig,
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    #[default]
    Production,
    Development,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Address of the public HTTPS listener.
    pub listen: SocketAddr,
    /// Largest request body accepted, in bytes.
    #[serde(default = "default_body_limit")]
    pub body_limit_bytes: usize,
    /// A request that has not produced its response head by then gets a 408.
    #[serde(default = "default_request_timeout")]
    pub request_timeout_secs: u64,
    /// How long shutdown waits for in-flight requests before closing connections.
    #[serde(default = "default_shutdown_grace")]
    pub shutdown_grace_secs: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM certificate chain of the server, leaf first.
    pub cert_file: PathBuf,
    /// PEM private key of the server; must not be readable by other users.
    pub key_file: PathBuf,
    /// Whether clients present certificates: `none`, `optional` (chargers do, apps use API keys) or `required`.
    #[serde(default)]
    pub client_auth: ClientAuth,
    /// PEM bundles of the CAs whose client certificates are accepted.
    #[serde(default)]
    pub client_ca_files: Vec<PathBuf>,
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ClientAuth {
    None,
    #[default]
    Optional,
    Required,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct OpsConfig {
    /// Plain-HTTP listener for /healthz, /readyz and /metrics; keep it on loopback or a management network.
    #[serde(default = "default_ops_listen")]
    pub listen: SocketAddr,
}

impl Default for OpsConfig {
    fn default() -> Self {
        Self {
            listen: default_ops_listen(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DatabaseConfig {
    /// `sqlite:///path/to/voltvault.db` or `postgres://user@host:5432/db` (no password in the URL).
    pub url: String,
    /// File holding the database password (or set VOLTVAULT_DATABASE_PASSWORD).
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    #[serde(default = "default_max_connections")]
    pub max_connections: u32,
    /// Apply pending migrations at start.
    #[serde(default = "default_true")]
    pub migrate_on_start: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LoggingConfig {
    #[serde(default)]
    pub format: LogFormat,
    /// A tracing filter, e.g. `info` or `voltvault=debug,sqlx=warn`.
    #[serde(default = "default_log_level")]
    pub level: String,
}

impl Default for LoggingConfig {
    fn default() -> Self {
        Self {
            format: LogFormat::default(),
            level: default_log_level(),
        }
    }
}

/// The audit trail's writer and checkpoint sealing.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AuditConfig {
    /// Hex key (at least 32 bytes) for the software checkpoint sealer, owner-only
    /// file. Stand-in until the HSM's audit key seals checkpoints; without it a
    /// key is made at start and checkpoints of earlier runs no longer verify.
    #[serde(default)]
    pub seal_key_file: Option<PathBuf>,
    /// Seal a checkpoint after this many records...
    #[serde(default = "default_checkpoint_every")]
    pub checkpoint_every: u64,
    /// ...or this many seconds after the last one.
    #[serde(default = "default_checkpoint_interval")]
    pub checkpoint_interval_secs: u64,
    /// Forward a copy of every record to a SIEM (RFC 5424 over TLS).
    #[serde(default)]
    pub syslog: Option<SyslogConfig>,
}

impl Default for AuditConfig {
    fn default() -> Self {
        Self {
            seal_key_file: None,
            checkpoint_every: default_checkpoint_every(),
            checkpoint_interval_secs: default_checkpoint_interval(),
            syslog: None,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SyslogConfig {
    /// `host:port` of the collector (RFC 5425 usually listens on 6514).
    pub address: String,
    /// The DNS name (or IP address) the collector's certificate must carry.
    pub server_name: String,
    /// PEM bundle of the CAs that may issue the collector's certificate.
    pub ca_file: PathBuf,
}

fn default_checkpoint_every() -> u64 {
    1000
}
fn default_checkpoint_interval() -> u64 {
    60
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Json,
    Human,
}

fn default_body_limit() -> usize {
    64 * 1024
}
fn default_request_timeout() -> u64 {
    15
}
fn default_shutdown_grace() -> u64 {
    20
}
fn default_ops_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 9090))
}
fn default_max_connections() -> u32 {
    16
}
fn default_true() -> bool {
    true
}
fn default_log_level() -> String {
    "info".into()
}

/// Why a configuration was refused. Each renders as one line that names the
/// key and the problem.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{0}")]
    Parse(String),
    #[error("version: this build reads configuration version {CONFIG_VERSION}, the file says {0}")]
    Version(u32),
    #[error("{key}: {problem}")]
    Invalid { key: &'static str, problem: String },
    #[error("{key}: {source}")]
    SecretFile {
        key: &'static str,
        source: SecretFileError,
    },
}

fn invalid(key: &'static str, problem: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key,
        problem: problem.into(),
    }
}

impl Config {
    /// Reads a file and the `VOLTVAULT_` environment, then validates.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        if !path.exists() {
            return Err(invalid(
                "config",
                format!("file {} does not exist", path.display()),
            ));
        }
        Self::from_figment(Figment::new().merge(Toml::file_exact(path)))
    }

    /// Builds a configuration from values (used by `voltvault dev` and tests),
    /// still applying environment overrides and validation.
    pub fn from_defaults(config: &Config) -> Result<Self, ConfigError> {
        Self::from_figment(Figment::new().merge(Serialized::defaults(config)))
    }

    fn from_figment(figment: Figment) -> Result<Self, ConfigError> {
        let env = Env::prefixed("VOLTVAULT_")
            .split("__")
            .filter(|key| !SECRET_ENV_KEYS.contains(&key.as_str()));
        let config: Config = figment
            .merge(env)
            .extract()
            .map_err(|e| ConfigError::Parse(one_line(&e)))?;
        config.validate()?;
        Ok(config)
    }

    /// Checks what serde cannot: versions, files, secrets, mode rules.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.version != CONFIG_VERSION {
            return Err(ConfigError::Version(self.version));
        }
        if let Some(node) = &self.node_id
            && (node.is_empty()
                || node.len() > 64
                || !node
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.'))
        {
            return Err(invalid(
                "node_id",
                "1 to 64 letters, digits, '-', '_' or '.'",
            ));
        }
        if self.server.body_limit_bytes < 1024 || self.server.body_limit_bytes > 16 * 1024 * 1024 {
            return Err(invalid(
                "server.body_limit_bytes",
                "must be between 1024 and 16777216",
            ));
        }
        if self.server.request_timeout_secs == 0 || self.server.request_timeout_secs > 300 {
            return Err(invalid(
                "server.request_timeout_secs",
                "must be between 1 and 300",
            ));
        }
        if self.audit.checkpoint_every == 0 || self.audit.checkpoint_interval_secs == 0 {
            return Err(invalid(
                "audit",
                "checkpoint_every and checkpoint_interval_secs must be at least 1",
            ));
        }
        if let Some(path) = &self.audit.seal_key_file {
            check_secret_file_permissions(path).map_err(|source| ConfigError::SecretFile {
                key: "audit.seal_key_file",
                source,
            })?;
        }
        require_file("tls.cert_file", &self.tls.cert_file)?;
        require_file("tls.key_file", &self.tls.key_file)?;
        check_secret_file_permissions(&self.tls.key_file).map_err(|source| {
            ConfigError::SecretFile {
                key: "tls.key_file",
                source,
            }
        })?;
        if self.tls.client_auth != ClientAuth::None && self.tls.client_ca_files.is_empty() {
            return Err(invalid(
                "tls.client_ca_files",
                "client_auth is optional or required but no CA bundle is configured",
            ));
        }
        for ca in &self.tls.client_ca_files {
            require_file("tls.client_ca_files", ca)?;
        }
        if self.mode == Mode::Production && !self.ops.listen.ip().is_loopback() {
            tracing::warn!(
                listen = %self.ops.listen,
                "ops.listen is not on loopback; keep it on a management network"
            );
        }
        self.database_backend()?;
        let url = url::Url::parse(&self.database.url)
            .map_err(|e| invalid("database.url", format!("not a URL: {e}")))?;
        if url.password().is_some() {
            return Err(invalid(
                "database.url",
                format!(
                    "carries a password; use {DATABASE_PASSWORD_ENV} or database.password_file"
                ),
            ));
        }
        if self.database.max_connections == 0 || self.database.max_connections > 512 {
            return Err(invalid(
                "database.max_connections",
                "must be between 1 and 512",
            ));
        }
        if let Some(path) = &self.database.password_file {
            require_file("database.password_file", path)?;
            check_secret_file_permissions(path).map_err(|source| ConfigError::SecretFile {
                key: "database.password_file",
                source,
            })?;
        }
        tracing_subscriber::EnvFilter::try_new(&self.logging.level)
            .map_err(|e| invalid("logging.level", e.to_string()))?;
        Ok(())
    }

    pub fn database_backend(&self) -> Result<DatabaseBackend, ConfigError> {
        let url = &self.database.url;
        if url.starts_with("sqlite:") {
            Ok(DatabaseBackend::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(DatabaseBackend::Postgres)
        } else {
            Err(invalid(
                "database.url",
                "must start with sqlite: or postgres://",
            ))
        }
    }

    /// The database password from VOLTVAULT_DATABASE_PASSWORD or
    /// database.password_file, if either is set.
    pub fn database_password(&self) -> Result<Option<SecretString>, ConfigError> {
        if let Ok(value) = std::env::var(DATABASE_PASSWORD_ENV) {
            return Ok(Some(SecretString::new(value)));
        }
        match &self.database.password_file {
            Some(path) => {
                SecretString::from_file(path)
                    .map(Some)
                    .map_err(|source| ConfigError::SecretFile {
                        key: "database.password_file",
                        source,
                    })
            }
            None => Ok(None),
        }
    }

    pub fn node_id(&self) -> String {
        self.node_id.clone().unwrap_or_else(|| {
            nix::unistd::gethostname()
                .ok()
                .and_then(|h| h.into_string().ok())
                .unwrap_or_else(|| "voltvault".into())
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatabaseBackend {
    Sqlite,
    Postgres,
}

fn require_file(key: &'static str, path: &Path) -> Result<(), ConfigError> {
    if path.is_file() {
        Ok(())
    } else {
        Err(invalid(
            key,
            format!("{} is not a readable file", path.display()),
        ))
    }
}

/// figment errors can span lines; the operator gets one.
fn one_line(error: &figment::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for e in error.clone() {
        let key = e.path.join(".");
        let kind = e.kind.to_string();
        let origin = e
            .metadata
            .as_ref()
            .and_then(|m| m.source.as_ref())
            .map(|s| format!(" (in {s})"))
            .unwrap_or_default();
        if key.is_empty() {
            parts.push(format!("{kind}{origin}"));
        } else {
            parts.push(format!("{key}: {kind}{origin}"));
        }
    }
    parts.join("; ").replace('\n', " ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn write(dir: &Path, name: &str, body: &str, mode: u32) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, body).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        p
    }

    fn sample(dir: &Path, extra: &str) -> PathBuf {
        let cert = write(dir, "server.pem", "x", 0o644);
        let key = write(dir, "server.key", "x", 0o600);
        let ca = write(dir, "ca.pem", "x", 0o644);
        let body = format!(
            r#"version = 1
[server]
listen = "127.0.0.1:8443"
[tls]
cert_file = "{}"
key_file = "{}"
client_ca_files = ["{}"]
[database]
url = "sqlite://{}/vv.db"
{extra}
"#,
            cert.display(),
            key.display(),
            ca.display(),
            dir.display()
        );
        write(dir, "voltvault.toml", &body, 0o644)
    }

    #[test]
    fn a_good_file_loads_with_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let config = Config::load(&sample(dir.path(), "")).unwrap();
        assert_eq!(config.mode, Mode::Production);
        assert_eq!(config.server.body_limit_bytes, 64 * 1024);
        assert_eq!(config.tls.client_auth, ClientAuth::Optional);
        assert_eq!(config.database_backend().unwrap(), DatabaseBackend::Sqlite);
    }

    #[test]
    fn an_unknown_key_is_named_in_one_line() {
        let dir = tempfile::tempdir().unwrap();
        let err = Config::load(&sample(dir.path(), "pool_size = 3")).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("pool_size"), "{msg}");
        assert!(msg.contains("database"), "{msg}");
        assert!(!msg.contains('\n'), "{msg}");
    }

    #[test]
    fn a_password_in_the_url_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = sample(dir.path(), "");
        let body = std::fs::read_to_string(&path).unwrap().replace(
            &format!("sqlite://{}/vv.db", dir.path().display()),
            "postgres://vv:s3cret@db/vv",
        );
        std::fs::write(&path, body).unwrap();
        let msg = Config::load(&path).unwrap_err().to_string();
        assert!(msg.starts_with("database.url:"), "{msg}");
        assert!(!msg.contains("s3cret"), "{msg}");
    }

    #[test]
    fn an_open_key_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = sample(dir.path(), "");
        std::fs::set_permissions(
            dir.path().join("server.key"),
            std::fs::Permissions::from_mode(0o644),
        )
        .unwrap();
        let msg = Config::load(&path).unwrap_err().to_string();
        assert!(msg.starts_with("tls.key_file:"), "{msg}");
    }

    #[test]
    fn a_missing_certificate_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = sample(dir.path(), "");
        std::fs::remove_file(dir.path().join("server.pem")).unwrap();
        let msg = Config::load(&path).unwrap_err().to_string();
        assert!(msg.starts_with("tls.cert_file:"), "{msg}");
    }

    #[test]
    fn a_wrong_version_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = sample(dir.path(), "");
        let body = std::fs::read_to_string(&path)
            .unwrap()
            .replace("version = 1", "version = 2");
        std::fs::write(&path, body).unwrap();
        assert!(matches!(Config::load(&path), Err(ConfigError::Version(2))));
    }
}
