//! `voltvault dev`: a complete local instance with no setup. SQLite in a
//! data directory, a development PKI written there, everything on loopback.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use crate::config::{
    ClientAuth, Config, DatabaseConfig, LogFormat, LoggingConfig, Mode, OpsConfig, ServerConfig,
    TlsConfig,
};
use crate::devpki::{DevPkiFiles, PkiError};

#[derive(Debug, thiserror::Error)]
pub enum DevError {
    #[error("{path}: {reason}")]
    DataDir { path: String, reason: String },
    #[error(transparent)]
    Pki(#[from] PkiError),
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
}

/// Prepares the data directory and returns the configuration to run with.
pub fn prepare(data_dir: &Path, port: u16, ops_port: u16) -> Result<Config, DevError> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(data_dir)
        .and_then(|()| std::fs::set_permissions(data_dir, std::fs::Permissions::from_mode(0o700)))
        .map_err(|e| DevError::DataDir {
            path: data_dir.display().to_string(),
            reason: e.kind().to_string(),
        })?;
    let data_dir = data_dir.canonicalize().map_err(|e| DevError::DataDir {
        path: data_dir.display().to_string(),
        reason: e.kind().to_string(),
    })?;
    let pki = DevPkiFiles::in_dir(&data_dir);
    if pki.ensure()? {
        tracing::info!(dir = %data_dir.display(), "development certificates written");
    }
    let seal_key = data_dir.join("audit-seal.key");
    if !seal_key.exists() {
        use crate::clock::Random;
        let mut key = zeroize::Zeroizing::new([0u8; 32]);
        crate::clock::OsRandom.fill(key.as_mut());
        let hex = zeroize::Zeroizing::new(hex::encode(key.as_ref()));
        crate::devpki::write_file(&seal_key, &hex, 0o600)?;
    }
    let config = Config {
        version: crate::config::CONFIG_VERSION,
        mode: Mode::Development,
        node_id: Some("dev".into()),
        server: ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], port)),
            body_limit_bytes: 64 * 1024,
            request_timeout_secs: 15,
            shutdown_grace_secs: 5,
        },
        tls: TlsConfig {
            cert_file: pki.server_cert.clone(),
            key_file: pki.server_key.clone(),
            client_auth: ClientAuth::Optional,
            client_ca_files: vec![pki.ca_cert.clone()],
        },
        ops: OpsConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], ops_port)),
        },
        database: DatabaseConfig {
            url: format!("sqlite://{}", data_dir.join("voltvault.db").display()),
            password_file: None,
            max_connections: 8,
            migrate_on_start: true,
        },
        logging: LoggingConfig {
            format: LogFormat::Human,
            level: "info".into(),
        },
        audit: crate::config::AuditConfig {
            seal_key_file: Some(seal_key),
            ..Default::default()
        },
    };
    Ok(Config::from_defaults(&config)?)
}

/// What `voltvault dev` prints once it listens.
pub fn banner(data_dir: &Path, api: SocketAddr, ops: SocketAddr) -> String {
    let pki = DevPkiFiles::in_dir(
        &data_dir
            .canonicalize()
            .unwrap_or_else(|_| PathBuf::from(data_dir)),
    );
    let ca = pki.ca_cert.display();
    format!(
        "\nvoltvault dev is running (SQLite, development certificates; not for production)\n\
         \n  API        https://{api}\n  operations http://{ops}\n  data       {dir}\n\
         \nTry:\n\
         \n  curl --cacert {ca} https://{api}/healthz\
         \n  curl --cacert {ca} --cert {cc} --key {ck} https://{api}/v1/whoami\
         \n  curl --cacert {ca} https://{api}/openapi.json\
         \n  curl http://{ops}/readyz\
         \n  curl http://{ops}/metrics\
         \n\nCtrl-C stops it.\n",
        dir = data_dir.display(),
        cc = pki.charger_cert.display(),
        ck = pki.charger_key.display(),
    )
}
