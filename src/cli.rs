//! The command line.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "voltvault",
    version,
    about = "Payment tokenization and card-data vault for EV charging networks",
    long_about = "voltvault holds card numbers for EV charging networks: chargers and apps \
        tokenize cards over mTLS or API keys, charges go to acquirers, and only tokens leave the vault."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the service with a configuration file (production).
    Serve {
        /// The TOML configuration (see deploy/voltvault.example.toml).
        #[arg(long, short, value_name = "FILE")]
        config: PathBuf,
    },
    /// Run a complete local instance with no setup: SQLite, development
    /// certificates, SoftHSM2 keys (software keys without it) and everything
    /// on loopback.
    Dev {
        /// Where the database, keys and development certificates live.
        #[arg(long, value_name = "DIR", default_value = "voltvault-dev")]
        data_dir: PathBuf,
        /// Port of the HTTPS API on 127.0.0.1.
        #[arg(long, default_value_t = 8443)]
        port: u16,
        /// Port of the operations listener (healthz, readyz, metrics) on 127.0.0.1.
        #[arg(long, default_value_t = 9090)]
        ops_port: u16,
    },
    /// Apply pending database migrations and exit.
    Migrate {
        #[arg(long, short, value_name = "FILE")]
        config: PathBuf,
    },
    /// Administer tenants, API keys, charger CAs and staff users.
    Admin {
        #[arg(long, short, value_name = "FILE")]
        config: PathBuf,
        #[command(subcommand)]
        command: AdminCommand,
    },
    /// Validate a configuration file and exit: 0 if it would start, 1 with a one-line reason if not.
    CheckConfig {
        #[arg(value_name = "FILE")]
        config: PathBuf,
    },
    /// Key management: initialization, status, rotation, re-encryption.
    Keys {
        #[arg(long, short, value_name = "FILE", global = true)]
        config: Option<PathBuf>,
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Verify, search and export the audit trail. Every use is itself audited.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Create the KEK, fingerprint and audit keys (in the HSM, or a sealed
    /// software KEK in development) and record the KEK's check value.
    Init {
        /// Software keys only: split the sealing key into this many Shamir shares...
        #[arg(long, requires = "threshold")]
        shares: Option<u8>,
        /// ...of which this many unseal it. Without these, a passphrase
        /// (VOLTVAULT_KEK_PASSPHRASE) seals it.
        #[arg(long, requires = "shares")]
        threshold: Option<u8>,
    },
    /// Show KEK and data key versions, states and counts (never key material).
    Status,
    /// Create a new KEK and rewrap every data key under it.
    RotateKek,
    /// Start a new data key now; the old one stays for decryption.
    RotateDek,
    /// Move every record to the active data key, in batches; resumable.
    Reencrypt {
        #[arg(long, default_value_t = 500)]
        batch: usize,
    },
}

/// `voltvault admin ...`: principals and tenants, against the configured database.
#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Tenants.
    Tenant {
        #[command(subcommand)]
        command: TenantCommand,
    },
    /// API keys of apps and services.
    Client {
        #[command(subcommand)]
        command: ClientCommand,
    },
    /// Charger CAs and revoked charger certificates.
    ChargerCa {
        #[command(subcommand)]
        command: ChargerCaCommand,
    },
    /// Staff users (operator, auditor, admin).
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Every principal of a tenant and when it was last used.
    Principals {
        #[arg(long)]
        tenant: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum TenantCommand {
    Create { name: String },
    List,
}

#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// Prints the new API key once.
    Create {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        name: String,
        /// `app` or `payments`.
        #[arg(long, default_value = "app")]
        role: String,
        #[arg(long)]
        expires_in_days: Option<u32>,
    },
    List {
        #[arg(long)]
        tenant: String,
    },
    Revoke {
        #[arg(long)]
        tenant: String,
        id: String,
    },
    /// Prints the new secret once; the old one stops working.
    Rotate {
        #[arg(long)]
        tenant: String,
        id: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum ChargerCaCommand {
    Register {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        name: String,
        /// The CA certificate, PEM.
        #[arg(long, value_name = "FILE")]
        cert: PathBuf,
    },
    List {
        #[arg(long)]
        tenant: String,
    },
    /// Imports the CA's certificate revocation list (PEM or DER file).
    ImportCrl {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        ca: String,
        #[arg(value_name = "FILE")]
        crl: PathBuf,
    },
    /// Revokes a charger certificate: its serial in hex, or a PEM file.
    RevokeCert {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        ca: String,
        certificate: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Reads the password from standard input (one line), prints the TOTP
    /// provisioning URI and a QR code.
    Create {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        username: String,
        /// `operator`, `auditor` or `admin`.
        #[arg(long)]
        role: String,
    },
    List {
        #[arg(long)]
        tenant: String,
    },
    Disable {
        #[arg(long)]
        tenant: String,
        username: String,
    },
    /// Reads the new password from standard input; prints a new TOTP URI and QR code.
    Reset {
        #[arg(long)]
        tenant: String,
        username: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Verify every node's hash chain and sealed checkpoints; exits 1 and
    /// names the first bad record if one is broken.
    Verify {
        #[arg(long, short, value_name = "FILE")]
        config: PathBuf,
        /// Print the full report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print one page of matching records as JSON, with the cursor for the next.
    Search {
        #[arg(long, short, value_name = "FILE")]
        config: PathBuf,
        #[command(flatten)]
        filters: AuditFilters,
        /// `next_cursor` of the previous page.
        #[arg(long)]
        cursor: Option<String>,
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
    /// Move records older than the 90-day queryable window into archive
    /// files (up to each node's last sealed checkpoint) and remove them.
    Archive {
        #[arg(long, short, value_name = "FILE")]
        config: PathBuf,
        /// Where the archive files go.
        #[arg(long, value_name = "DIR")]
        dir: PathBuf,
    },
    /// Export every matching record.
    Export {
        #[arg(long, short, value_name = "FILE")]
        config: PathBuf,
        #[command(flatten)]
        filters: AuditFilters,
        #[arg(long, value_enum, default_value_t = AuditFormat::Jsonl)]
        format: AuditFormat,
        /// Write here (created owner-only) instead of standard output.
        #[arg(long, short, value_name = "FILE")]
        output: Option<PathBuf>,
    },
}

#[derive(Debug, Clone, Args)]
pub struct AuditFilters {
    /// Inclusive lower bound, RFC 3339.
    #[arg(long)]
    pub from: Option<String>,
    /// Exclusive upper bound, RFC 3339.
    #[arg(long)]
    pub to: Option<String>,
    #[arg(long)]
    pub actor: Option<String>,
    #[arg(long = "type")]
    pub event_type: Option<String>,
    #[arg(long)]
    pub resource: Option<String>,
    /// success, failure or denied.
    #[arg(long)]
    pub outcome: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AuditFormat {
    Jsonl,
    Csv,
}
