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
/// Unseals the development software KEK: a passphrase, or shares separated by commas.
pub const KEK_PASSPHRASE_ENV: &str = "VOLTVAULT_KEK_PASSPHRASE";
pub const KEK_SHARES_ENV: &str = "VOLTVAULT_KEK_SHARES";
pub const AUTH_PEPPER_ENV: &str = crate::auth::keys::PEPPER_ENV;
pub const STRIPE_API_KEY_ENV: &str = "VOLTVAULT_STRIPE_API_KEY";
pub const SMTP_PASSWORD_ENV: &str = "VOLTVAULT_SMTP_PASSWORD";
const SECRET_ENV_KEYS: &[&str] = &[
    "stripe_api_key",
    "smtp_password",
    "database_password",
    "hsm_pin",
    "kek_passphrase",
    "kek_shares",
    "auth_pepper",
];

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
    pub keys: KeysConfig,
    #[serde(default)]
    pub logging: LoggingConfig,
    #[serde(default)]
    pub auth: AuthConfig,
    #[serde(default)]
    pub audit: AuditConfig,
    #[serde(default)]
    pub payments: PaymentsConfig,
    #[serde(default)]
    pub notifications: NotificationsConfig,
    #[serde(default)]
    pub billing: BillingConfig,
}

/// Webhook deliveries: how often each node looks for due ones, how often
/// and how patiently it retries.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct NotificationsConfig {
    /// How often each node looks for deliveries that are due.
    #[serde(default = "default_notify_interval")]
    pub worker_interval_ms: u64,
    /// Attempts before a delivery is given up (dead).
    #[serde(default = "default_notify_attempts")]
    pub max_attempts: u32,
    /// The wait after the first failed attempt; it doubles after each.
    #[serde(default = "default_notify_backoff")]
    pub backoff_base_ms: u64,
    /// The longest wait between two attempts.
    #[serde(default = "default_notify_backoff_max")]
    pub backoff_max_secs: u64,
    /// One attempt, connection included; longer counts as failed.
    #[serde(default = "default_notify_timeout")]
    pub request_timeout_secs: u64,
    /// The relay e-mail goes out through. Without it mail is queued but
    /// not sent (development).
    #[serde(default)]
    pub smtp: Option<SmtpConfig>,
}

/// An SMTP relay. The password is read from `password_file` or
/// `VOLTVAULT_SMTP_PASSWORD`, never from this section.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SmtpConfig {
    pub host: String,
    #[serde(default = "default_smtp_port")]
    pub port: u16,
    /// `tls` (implicit TLS, usually port 465), `starttls` (usually 587), or
    /// `none` (plain text; only to a relay on loopback).
    #[serde(default)]
    pub tls: SmtpTls,
    /// Who the service logs in as; without it, no AUTH.
    #[serde(default)]
    pub username: Option<String>,
    /// File holding the password (or set VOLTVAULT_SMTP_PASSWORD).
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// The From address of every mail, e.g. `Voltvault <receipts@example.com>`.
    pub from: String,
    /// PEM roots the relay's certificate is checked against; default the
    /// system bundle.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// One attempt, connection included.
    #[serde(default = "default_smtp_timeout")]
    pub timeout_secs: u64,
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    None,
    #[default]
    Starttls,
    Tls,
}

fn default_smtp_port() -> u16 {
    587
}
fn default_smtp_timeout() -> u64 {
    30
}

impl Default for NotificationsConfig {
    fn default() -> Self {
        Self {
            worker_interval_ms: default_notify_interval(),
            max_attempts: default_notify_attempts(),
            backoff_base_ms: default_notify_backoff(),
            backoff_max_secs: default_notify_backoff_max(),
            request_timeout_secs: default_notify_timeout(),
            smtp: None,
        }
    }
}

fn default_notify_interval() -> u64 {
    2_000
}
fn default_notify_attempts() -> u32 {
    10
}
fn default_notify_backoff() -> u64 {
    30_000
}
fn default_notify_backoff_max() -> u64 {
    6 * 3600
}
fn default_notify_timeout() -> u64 {
    10
}

/// Who issues receipts: printed on every receipt (HTML, PDF and JSON).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct BillingConfig {
    /// The operator's legal name.
    #[serde(default)]
    pub operator_name: Option<String>,
    /// Postal address, one line.
    #[serde(default)]
    pub operator_address: Option<String>,
    /// VAT identification number.
    #[serde(default)]
    pub operator_vat_id: Option<String>,
    /// Invoice numbers are this followed by the tenant's gapless sequence.
    #[serde(default = "default_invoice_prefix")]
    pub invoice_number_prefix: String,
    /// How often each node looks for last month's invoices not yet issued;
    /// 0 turns the monthly run off (invoices are then issued by API only).
    #[serde(default = "default_invoice_run_secs")]
    pub invoice_run_interval_secs: u64,
    /// The operator's sites, for the `cdr_location` of OCPI CDRs.
    #[serde(default)]
    pub locations: Vec<crate::billing::location::SiteLocation>,
}

impl Default for BillingConfig {
    fn default() -> Self {
        Self {
            operator_name: None,
            operator_address: None,
            operator_vat_id: None,
            invoice_number_prefix: default_invoice_prefix(),
            invoice_run_interval_secs: default_invoice_run_secs(),
            locations: Vec::new(),
        }
    }
}

fn default_invoice_run_secs() -> u64 {
    3600
}

fn default_invoice_prefix() -> String {
    "INV-".into()
}

impl BillingConfig {
    /// Printed on every receipt: one line of text each, of a printable length.
    fn validate(&self) -> Result<(), ConfigError> {
        for (key, value) in [
            ("billing.operator_name", &self.operator_name),
            ("billing.operator_address", &self.operator_address),
            ("billing.operator_vat_id", &self.operator_vat_id),
        ] {
            if let Some(v) = value {
                if v.trim().is_empty() || v.chars().count() > 200 || v.chars().any(char::is_control)
                {
                    return Err(invalid(key, "1 to 200 characters on one line"));
                }
            }
        }
        let prefix = &self.invoice_number_prefix;
        if prefix.len() > 20
            || !prefix
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '/' | '_'))
        {
            return Err(invalid(
                "billing.invoice_number_prefix",
                "up to 20 letters, digits, '-', '/' or '_'",
            ));
        }
        crate::billing::location::Locations::new(&self.locations).map_err(|entry| {
            ConfigError::InvalidEntry {
                key: "billing.locations",
                entry,
            }
        })?;
        Ok(())
    }
}

/// Which acquirer payment sessions go to.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum AcquirerKind {
    /// Built in; development only.
    Simulator,
    Stripe,
}

/// EV payment sessions. Without an acquirer the payment routes answer 503.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PaymentsConfig {
    #[serde(default)]
    pub acquirer: Option<AcquirerKind>,
    #[serde(default)]
    pub stripe: Option<StripeSettings>,
    /// A JSON array of OCPI 2.2.1 tariffs sessions may name.
    #[serde(default)]
    pub tariffs_file: Option<PathBuf>,
    /// The largest first hold a charger may ask for, in minor units.
    #[serde(default = "default_max_hold")]
    pub max_hold_minor_units: i64,
    /// Increments never raise a hold beyond this, in minor units.
    #[serde(default = "default_max_authorized")]
    pub max_authorized_minor_units: i64,
    /// Raise the hold (or stop the charger) when the cost reaches this
    /// percentage of it.
    #[serde(default = "default_increment_at")]
    pub increment_at_percent: u8,
    /// Holds not completed after this many hours are released.
    #[serde(default = "default_max_session_hours")]
    pub max_session_hours: u32,
    /// How long the node that made an acquirer call owns it before
    /// recovery on any node may settle it. Longer than an acquirer call
    /// with its retries.
    #[serde(default = "default_intent_lease")]
    pub intent_lease_secs: u64,
    /// How often each node looks for calls to recover and holds to expire.
    #[serde(default = "default_recovery_interval")]
    pub recovery_interval_secs: u64,
    /// How often a live-cost stream reads its session from the database,
    /// for readings taken on other nodes; readings taken on its own node
    /// are pushed at once.
    #[serde(default = "default_events_poll")]
    pub events_poll_secs: u64,
}

impl Default for PaymentsConfig {
    fn default() -> Self {
        Self {
            acquirer: None,
            stripe: None,
            tariffs_file: None,
            max_hold_minor_units: default_max_hold(),
            max_authorized_minor_units: default_max_authorized(),
            increment_at_percent: default_increment_at(),
            max_session_hours: default_max_session_hours(),
            intent_lease_secs: default_intent_lease(),
            recovery_interval_secs: default_recovery_interval(),
            events_poll_secs: default_events_poll(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct StripeSettings {
    /// Defaults to Stripe's API. `http://` only to loopback, never in production.
    #[serde(default)]
    pub base_url: Option<String>,
    /// File holding the secret or restricted key (or set VOLTVAULT_STRIPE_API_KEY).
    #[serde(default)]
    pub api_key_file: Option<PathBuf>,
    /// Ask for incremental authorization where the card allows it.
    #[serde(default = "default_true")]
    pub incremental_authorization: bool,
    /// One HTTP attempt, connection included.
    #[serde(default = "default_stripe_timeout")]
    pub request_timeout_secs: u64,
}

fn default_max_hold() -> i64 {
    15_000
}
fn default_max_authorized() -> i64 {
    50_000
}
fn default_increment_at() -> u8 {
    80
}
fn default_max_session_hours() -> u32 {
    24
}
fn default_intent_lease() -> u64 {
    120
}
fn default_recovery_interval() -> u64 {
    10
}
fn default_events_poll() -> u64 {
    1
}
fn default_stripe_timeout() -> u64 {
    20
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// File holding the key for API-key and session hashes, as hex (at least
    /// 32 bytes), readable only by voltvault; or set VOLTVAULT_AUTH_PEPPER.
    #[serde(default)]
    pub pepper_file: Option<PathBuf>,
    /// Roles and permissions; the policy built into the binary when unset.
    #[serde(default)]
    pub policy_file: Option<PathBuf>,
    /// Absolute lifetime of a staff session (it also ends after 15 idle minutes).
    #[serde(default = "default_session_hours")]
    pub session_absolute_hours: u32,
    /// Requests per minute one principal may send.
    #[serde(default = "default_principal_rate")]
    pub rate_limit_per_principal_per_minute: u32,
    /// Requests per minute one source address may send.
    #[serde(default = "default_address_rate")]
    pub rate_limit_per_address_per_minute: u32,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            pepper_file: None,
            policy_file: None,
            session_absolute_hours: default_session_hours(),
            rate_limit_per_principal_per_minute: default_principal_rate(),
            rate_limit_per_address_per_minute: default_address_rate(),
        }
    }
}

fn default_session_hours() -> u32 {
    8
}
fn default_principal_rate() -> u32 {
    600
}
fn default_address_rate() -> u32 {
    1200
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
    /// PEM bundles of CAs whose client certificates pass TLS, besides the
    /// charger CAs registered per tenant in the database (only those make a
    /// certificate a principal).
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
    /// Connections per node; on SQLite the audit writer has one more of its own.
    #[serde(default = "default_max_connections")]
    pub max_connections: u32,
    /// Apply pending migrations at start.
    #[serde(default = "default_true")]
    pub migrate_on_start: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct KeysConfig {
    /// `pkcs11` (an HSM; production) or `software` (development only).
    pub provider: KeyProviderKind,
    #[serde(default)]
    pub pkcs11: Option<Pkcs11Settings>,
    #[serde(default)]
    pub software: Option<SoftwareKeySettings>,
    /// Data keys rotate at whichever limit comes first.
    #[serde(default = "default_max_data_key_age_days")]
    pub max_data_key_age_days: u32,
    #[serde(default = "default_max_data_key_uses")]
    pub max_data_key_uses: u64,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum KeyProviderKind {
    Pkcs11,
    Software,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Pkcs11Settings {
    /// Path of the PKCS#11 module.
    pub module: PathBuf,
    /// Label of the token holding voltvault's keys.
    pub token_label: String,
    /// File holding the user PIN (or set VOLTVAULT_HSM_PIN).
    #[serde(default)]
    pub pin_file: Option<PathBuf>,
    /// Sessions kept open; also the bound on concurrent HSM calls.
    #[serde(default = "default_hsm_sessions")]
    pub sessions: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SoftwareKeySettings {
    /// The sealed software KEK file; unsealed by VOLTVAULT_KEK_PASSPHRASE or VOLTVAULT_KEK_SHARES.
    pub kek_file: PathBuf,
}

fn default_max_data_key_age_days() -> u32 {
    90
}
fn default_max_data_key_uses() -> u64 {
    1 << 28
}
fn default_hsm_sessions() -> usize {
    4
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
    /// Seal a checkpoint after this many records...
    #[serde(default = "default_checkpoint_every")]
    pub checkpoint_every: u64,
    /// ...or this many seconds after the last one.
    #[serde(default = "default_checkpoint_interval")]
    pub checkpoint_interval_secs: u64,
    /// Audit writers side by side, each with its own chain (ADR 0011).
    #[serde(default = "default_writer_lanes")]
    pub writer_lanes: usize,
    /// Forward a copy of every record to a SIEM (RFC 5424 over TLS).
    #[serde(default)]
    pub syslog: Option<SyslogConfig>,
}

impl Default for AuditConfig {
    fn default() -> Self {
        Self {
            checkpoint_every: default_checkpoint_every(),
            checkpoint_interval_secs: default_checkpoint_interval(),
            writer_lanes: default_writer_lanes(),
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
fn default_writer_lanes() -> usize {
    1
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
    /// One entry of a list of tables: `key[index].field: problem`.
    #[error("{key}{entry}")]
    InvalidEntry {
        key: &'static str,
        entry: crate::billing::location::LocationsError,
    },
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
            // `VOLTVAULT_TEST_*` belongs to the test suite, not to a node.
            .filter(|key| {
                !SECRET_ENV_KEYS.contains(&key.as_str()) && !key.as_str().starts_with("test_")
            });
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
        self.validate_payments()?;
        self.validate_notifications()?;
        self.billing.validate()?;
        if self.audit.checkpoint_every == 0 || self.audit.checkpoint_interval_secs == 0 {
            return Err(invalid(
                "audit",
                "checkpoint_every and checkpoint_interval_secs must be at least 1",
            ));
        }
        if !(1..=16).contains(&self.audit.writer_lanes) {
            return Err(invalid("audit.writer_lanes", "must be between 1 and 16"));
        }
        require_file("tls.cert_file", &self.tls.cert_file)?;
        require_file("tls.key_file", &self.tls.key_file)?;
        check_secret_file_permissions(&self.tls.key_file).map_err(|source| {
            ConfigError::SecretFile {
                key: "tls.key_file",
                source,
            }
        })?;
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
        self.validate_keys()?;
        self.validate_auth()?;
        tracing_subscriber::EnvFilter::try_new(&self.logging.level)
            .map_err(|e| invalid("logging.level", e.to_string()))?;
        Ok(())
    }

    fn validate_keys(&self) -> Result<(), ConfigError> {
        let keys = &self.keys;
        match keys.provider {
            KeyProviderKind::Pkcs11 => {
                let hsm = keys.pkcs11.as_ref().ok_or_else(|| {
                    invalid(
                        "keys.pkcs11",
                        "provider is pkcs11 but [keys.pkcs11] is missing",
                    )
                })?;
                require_file("keys.pkcs11.module", &hsm.module)?;
                if hsm.token_label.is_empty() || hsm.token_label.len() > 32 {
                    return Err(invalid("keys.pkcs11.token_label", "1 to 32 characters"));
                }
                if hsm.sessions == 0 || hsm.sessions > 64 {
                    return Err(invalid("keys.pkcs11.sessions", "must be between 1 and 64"));
                }
                if let Some(pin) = &hsm.pin_file {
                    require_file("keys.pkcs11.pin_file", pin)?;
                    check_secret_file_permissions(pin).map_err(|source| {
                        ConfigError::SecretFile {
                            key: "keys.pkcs11.pin_file",
                            source,
                        }
                    })?;
                } else if std::env::var_os(HSM_PIN_ENV).is_none() {
                    return Err(invalid(
                        "keys.pkcs11.pin_file",
                        format!("no HSM PIN: set {HSM_PIN_ENV} or keys.pkcs11.pin_file"),
                    ));
                }
            }
            KeyProviderKind::Software => {
                if self.mode == Mode::Production {
                    return Err(invalid(
                        "keys.provider",
                        "software keys are for development only; production needs pkcs11",
                    ));
                }
                if keys.software.is_none() {
                    return Err(invalid(
                        "keys.software",
                        "provider is software but [keys.software] is missing",
                    ));
                }
            }
        }
        if keys.max_data_key_age_days == 0 || keys.max_data_key_age_days > 366 {
            return Err(invalid(
                "keys.max_data_key_age_days",
                "must be between 1 and 366",
            ));
        }
        // AES-GCM with random nonces stays safe for about 2^32 encryptions per key.
        if keys.max_data_key_uses == 0 || keys.max_data_key_uses > 1 << 31 {
            return Err(invalid(
                "keys.max_data_key_uses",
                "must be between 1 and 2^31",
            ));
        }
        Ok(())
    }

    fn validate_auth(&self) -> Result<(), ConfigError> {
        let auth = &self.auth;
        if !(1..=24).contains(&auth.session_absolute_hours) {
            return Err(invalid(
                "auth.session_absolute_hours",
                "must be between 1 and 24",
            ));
        }
        if auth.rate_limit_per_principal_per_minute == 0 {
            return Err(invalid(
                "auth.rate_limit_per_principal_per_minute",
                "must be at least 1",
            ));
        }
        if auth.rate_limit_per_address_per_minute == 0 {
            return Err(invalid(
                "auth.rate_limit_per_address_per_minute",
                "must be at least 1",
            ));
        }
        if let Some(path) = &auth.pepper_file {
            require_file("auth.pepper_file", path)?;
            check_secret_file_permissions(path).map_err(|source| ConfigError::SecretFile {
                key: "auth.pepper_file",
                source,
            })?;
        } else if std::env::var_os(AUTH_PEPPER_ENV).is_none() {
            return Err(invalid(
                "auth.pepper_file",
                format!("not set; name a 0600 file or set {AUTH_PEPPER_ENV}"),
            ));
        }
        if let Some(path) = &auth.policy_file {
            require_file("auth.policy_file", path)?;
        }
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

    pub fn stripe_api_key(&self) -> Result<SecretString, ConfigError> {
        if let Ok(value) = std::env::var(STRIPE_API_KEY_ENV) {
            return Ok(SecretString::new(value));
        }
        let path = self
            .payments
            .stripe
            .as_ref()
            .and_then(|s| s.api_key_file.as_ref())
            .ok_or_else(|| {
                invalid(
                    "payments.stripe.api_key_file",
                    "required (or set VOLTVAULT_STRIPE_API_KEY)",
                )
            })?;
        SecretString::from_file(path).map_err(|source| ConfigError::SecretFile {
            key: "payments.stripe.api_key_file",
            source,
        })
    }

    fn validate_notifications(&self) -> Result<(), ConfigError> {
        let n = &self.notifications;
        if n.worker_interval_ms < 10 || n.worker_interval_ms > 3_600_000 {
            return Err(invalid(
                "notifications.worker_interval_ms",
                "must be between 10 and 3600000",
            ));
        }
        if n.max_attempts == 0 || n.max_attempts > 100 {
            return Err(invalid(
                "notifications.max_attempts",
                "must be between 1 and 100",
            ));
        }
        if n.backoff_base_ms == 0 || n.backoff_base_ms > n.backoff_max_secs.saturating_mul(1000) {
            return Err(invalid(
                "notifications.backoff_base_ms",
                "must be at least 1 and at most backoff_max_secs",
            ));
        }
        if n.request_timeout_secs == 0 || n.request_timeout_secs > 120 {
            return Err(invalid(
                "notifications.request_timeout_secs",
                "must be between 1 and 120",
            ));
        }
        if let Some(smtp) = &n.smtp {
            validate_smtp(smtp)?;
        }
        Ok(())
    }

    /// The SMTP password from VOLTVAULT_SMTP_PASSWORD or
    /// notifications.smtp.password_file, if either is set.
    pub fn smtp_password(&self) -> Result<Option<SecretString>, ConfigError> {
        if let Ok(value) = std::env::var(SMTP_PASSWORD_ENV) {
            return Ok(Some(SecretString::new(value)));
        }
        match self
            .notifications
            .smtp
            .as_ref()
            .and_then(|s| s.password_file.as_ref())
        {
            Some(path) => {
                SecretString::from_file(path)
                    .map(Some)
                    .map_err(|source| ConfigError::SecretFile {
                        key: "notifications.smtp.password_file",
                        source,
                    })
            }
            None => Ok(None),
        }
    }

    fn validate_payments(&self) -> Result<(), ConfigError> {
        let p = &self.payments;
        if p.acquirer == Some(AcquirerKind::Simulator) && self.mode == Mode::Production {
            return Err(invalid(
                "payments.acquirer",
                "the simulator is for development; use stripe in production",
            ));
        }
        if p.acquirer == Some(AcquirerKind::Stripe) && p.stripe.is_none() {
            return Err(invalid(
                "payments.stripe",
                "acquirer is stripe but [payments.stripe] is missing",
            ));
        }
        if let Some(stripe) = &p.stripe
            && (stripe.request_timeout_secs == 0 || stripe.request_timeout_secs > 120)
        {
            return Err(invalid(
                "payments.stripe.request_timeout_secs",
                "must be between 1 and 120",
            ));
        }
        if let Some(path) = &p.tariffs_file {
            require_file("payments.tariffs_file", path)?;
        }
        if p.max_hold_minor_units < 1 || p.max_authorized_minor_units < p.max_hold_minor_units {
            return Err(invalid(
                "payments.max_hold_minor_units",
                "must be at least 1 and at most max_authorized_minor_units",
            ));
        }
        if !(50..=100).contains(&p.increment_at_percent) {
            return Err(invalid(
                "payments.increment_at_percent",
                "must be between 50 and 100",
            ));
        }
        if p.max_session_hours == 0 || p.max_session_hours > 24 * 7 {
            return Err(invalid(
                "payments.max_session_hours",
                "must be between 1 and 168 (acquirers release holds after about 7 days)",
            ));
        }
        if p.intent_lease_secs == 0 || p.recovery_interval_secs == 0 {
            return Err(invalid(
                "payments",
                "intent_lease_secs and recovery_interval_secs must be positive",
            ));
        }
        if !(1..=3600).contains(&p.events_poll_secs) {
            return Err(invalid(
                "payments.events_poll_secs",
                "must be between 1 and 3600",
            ));
        }
        Ok(())
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

fn validate_smtp(smtp: &SmtpConfig) -> Result<(), ConfigError> {
    let host = smtp.host.trim();
    if host.is_empty() || host.len() > 253 || host.contains(|c: char| c.is_whitespace() || c == '/')
    {
        return Err(invalid("notifications.smtp.host", "a host name or address"));
    }
    if smtp.port == 0 {
        return Err(invalid("notifications.smtp.port", "must not be 0"));
    }
    // Plain text only where nothing but this machine can listen in.
    if smtp.tls == SmtpTls::None && !is_loopback_host(host) {
        return Err(invalid(
            "notifications.smtp.tls",
            "none is only for a relay on loopback; use starttls or tls",
        ));
    }
    if smtp.password_file.is_some() && smtp.username.is_none() {
        return Err(invalid(
            "notifications.smtp.username",
            "required when a password is set",
        ));
    }
    if let Some(path) = &smtp.password_file {
        require_file("notifications.smtp.password_file", path)?;
        check_secret_file_permissions(path).map_err(|source| ConfigError::SecretFile {
            key: "notifications.smtp.password_file",
            source,
        })?;
    }
    if let Some(path) = &smtp.ca_file {
        require_file("notifications.smtp.ca_file", path)?;
    }
    if crate::notify::smtp::parse_mailbox(&smtp.from).is_none() {
        return Err(invalid(
            "notifications.smtp.from",
            "an address such as receipts@example.com or `Name <receipts@example.com>`",
        ));
    }
    if smtp.timeout_secs == 0 || smtp.timeout_secs > 300 {
        return Err(invalid(
            "notifications.smtp.timeout_secs",
            "must be between 1 and 300",
        ));
    }
    Ok(())
}

/// `localhost` or a loopback address literal.
pub(crate) fn is_loopback_host(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
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
        let pin = write(dir, "hsm.pin", "1234", 0o600);
        let pepper = write(dir, "pepper", &"ab".repeat(32), 0o600);
        let body = format!(
            r#"version = 1
[server]
listen = "127.0.0.1:8443"
[tls]
cert_file = "{}"
key_file = "{}"
client_ca_files = ["{}"]
[auth]
pepper_file = "{}"
[database]
url = "sqlite://{}/vv.db"
{extra}
[keys]
provider = "pkcs11"
[keys.pkcs11]
module = "{}"
token_label = "voltvault"
pin_file = "{}"
"#,
            cert.display(),
            key.display(),
            ca.display(),
            pepper.display(),
            dir.display(),
            cert.display(),
            pin.display()
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
    fn audit_writer_lanes_default_to_one_and_stay_in_range() {
        let dir = tempfile::tempdir().unwrap();
        let config = Config::load(&sample(dir.path(), "")).unwrap();
        assert_eq!(config.audit.writer_lanes, 1);
        let config = Config::load(&sample(dir.path(), "[audit]\nwriter_lanes = 4")).unwrap();
        assert_eq!(config.audit.writer_lanes, 4);
        for bad in ["0", "17"] {
            let body = format!("[audit]\nwriter_lanes = {bad}");
            let msg = Config::load(&sample(dir.path(), &body))
                .unwrap_err()
                .to_string();
            assert!(msg.starts_with("audit.writer_lanes:"), "{msg}");
        }
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

    fn key_paths(value: &serde_json::Value, prefix: &str, out: &mut Vec<String>) {
        if let serde_json::Value::Object(map) = value {
            for (k, v) in map {
                let path = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                if v.is_object() {
                    key_paths(v, &path, out);
                } else if !v.is_null() {
                    out.push(path);
                }
            }
        }
        out.sort();
    }

    #[test]
    fn the_example_file_documents_every_key_and_only_real_ones() {
        let text = include_str!("../deploy/voltvault.example.toml");
        let example: Config = Figment::new().merge(Toml::string(text)).extract().unwrap();
        assert_eq!(example.version, CONFIG_VERSION);
        // What the file itself says, before defaults fill anything in.
        let raw: serde_json::Value = Figment::new().merge(Toml::string(text)).extract().unwrap();
        let mut documented = Vec::new();
        key_paths(&raw, "", &mut documented);
        let mut full = example.clone();
        full.node_id = Some("n".into());
        full.database.password_file = Some("/p".into());
        full.keys.software = Some(SoftwareKeySettings {
            kek_file: "/k".into(),
        });
        full.auth.pepper_file = Some("/a".into());
        full.auth.policy_file = Some("/r".into());
        full.audit.syslog = Some(SyslogConfig {
            address: "siem:6514".into(),
            server_name: "siem".into(),
            ca_file: "/c".into(),
        });
        full.notifications.smtp = Some(SmtpConfig {
            host: "smtp.example.com".into(),
            port: 587,
            tls: SmtpTls::Starttls,
            username: Some("u".into()),
            password_file: Some("/s".into()),
            from: "r@example.com".into(),
            ca_file: Some("/c".into()),
            timeout_secs: 30,
        });
        let mut all = Vec::new();
        key_paths(&serde_json::to_value(&full).unwrap(), "", &mut all);
        for key in &all {
            // Optional keys may be documented as comments.
            let leaf = key.rsplit('.').next().unwrap();
            assert!(
                documented.contains(key) || text.contains(&format!("# {leaf} = ")),
                "{key} is not documented in deploy/voltvault.example.toml"
            );
        }
        for key in &documented {
            assert!(all.contains(key), "{key} is documented but not a key");
        }
    }

    #[test]
    fn software_keys_are_refused_in_production() {
        let dir = tempfile::tempdir().unwrap();
        let path = sample(dir.path(), "");
        let body = std::fs::read_to_string(&path).unwrap().replace(
            "provider = \"pkcs11\"",
            "provider = \"software\"\n[keys.software]\nkek_file = \"/tmp/kek\"",
        );
        std::fs::write(&path, body).unwrap();
        let msg = Config::load(&path).unwrap_err().to_string();
        assert!(msg.starts_with("keys.provider:"), "{msg}");
    }

    fn example_config() -> Config {
        let text = include_str!("../deploy/voltvault.example.toml");
        Figment::new().merge(Toml::string(text)).extract().unwrap()
    }

    #[test]
    fn smtp_relays_are_checked_and_plain_text_is_for_loopback_only() {
        let dir = tempfile::tempdir().unwrap();
        let good = SmtpConfig {
            host: "smtp.example.com".into(),
            port: 587,
            tls: SmtpTls::Starttls,
            username: Some("voltvault".into()),
            password_file: Some(write(dir.path(), "smtp.pw", "s3cret-smtp\n", 0o600)),
            from: "Example Charging <receipts@example.com>".into(),
            ca_file: None,
            timeout_secs: 30,
        };
        assert!(validate_smtp(&good).is_ok());
        let key_of = |c: &SmtpConfig| match validate_smtp(c) {
            Err(ConfigError::Invalid { key, .. }) | Err(ConfigError::SecretFile { key, .. }) => key,
            other => panic!("{other:?}"),
        };
        let plain = SmtpConfig {
            tls: SmtpTls::None,
            ..good.clone()
        };
        assert_eq!(key_of(&plain), "notifications.smtp.tls");
        for host in ["127.0.0.1", "localhost", "::1", "[::1]"] {
            let local = SmtpConfig {
                host: host.into(),
                ..plain.clone()
            };
            assert!(validate_smtp(&local).is_ok(), "{host}");
        }
        let bad_from = SmtpConfig {
            from: "not an address".into(),
            ..good.clone()
        };
        assert_eq!(key_of(&bad_from), "notifications.smtp.from");
        let readable = SmtpConfig {
            password_file: Some(write(dir.path(), "open.pw", "x", 0o644)),
            ..good.clone()
        };
        assert_eq!(key_of(&readable), "notifications.smtp.password_file");
        let anonymous = SmtpConfig {
            username: None,
            ..good.clone()
        };
        assert_eq!(key_of(&anonymous), "notifications.smtp.username");

        // The password is read from the file and shows nowhere in Debug.
        let mut config = Config {
            notifications: NotificationsConfig {
                smtp: Some(good),
                ..NotificationsConfig::default()
            },
            ..example_config()
        };
        let password = config.smtp_password().unwrap().unwrap();
        assert_eq!(password.expose_secret(), "s3cret-smtp");
        assert!(!format!("{config:?} {password:?}").contains("s3cret"));
        config.notifications.smtp = None;
        assert!(config.smtp_password().unwrap().is_none());
    }

    #[test]
    fn receipt_operator_details_are_one_printable_line() {
        let mut b = BillingConfig {
            operator_name: Some("Example Charging GmbH".into()),
            ..BillingConfig::default()
        };
        assert!(b.validate().is_ok());
        b.operator_address = Some("line\nbreak".into());
        let msg = b.validate().unwrap_err().to_string();
        assert!(msg.starts_with("billing.operator_address:"), "{msg}");
        b.operator_address = Some(" ".into());
        assert!(b.validate().is_err());
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
