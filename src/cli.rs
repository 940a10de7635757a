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
    /// certificates and everything on loopback.
    Dev {
        /// Where the database and development certificates live.
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
    /// Validate a configuration file and exit: 0 if it would start, 1 with a one-line reason if not.
    CheckConfig {
        #[arg(value_name = "FILE")]
        config: PathBuf,
    },
    /// Verify, search and export the audit trail. Every use is itself audited.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
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
