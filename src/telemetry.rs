//! Logging: tracing to stderr, JSON or human, every line masked by
//! [`crate::redact`] before it is written.

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;
use crate::redact::RedactingMakeWriter;

/// Installs the global subscriber. A second call (tests) keeps the first.
pub fn init(format: LogFormat, level: &str) {
    let filter = EnvFilter::try_new(level).unwrap_or_else(|_| EnvFilter::new("info"));
    let writer = RedactingMakeWriter::new(std::io::stderr);
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_target(false);
    let _ = match format {
        LogFormat::Json => builder
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
        LogFormat::Human => builder.with_ansi(false).try_init(),
    };
}
