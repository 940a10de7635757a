//! `voltvault dev`: a complete local instance with no setup. SQLite in a
//! data directory, a development PKI written there, everything on loopback.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use crate::config::{
    AuthConfig, ClientAuth, Config, DatabaseConfig, LogFormat, LoggingConfig, Mode, OpsConfig,
    ServerConfig, TlsConfig,
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
    let pepper_file = data_dir.join("auth-pepper");
    if !pepper_file.is_file() {
        let pepper = crate::auth::keys::PepperKeys::generate_hex(&crate::clock::OsRandom);
        crate::devpki::write_file(&pepper_file, pepper.expose_secret(), 0o600)?;
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
        auth: AuthConfig {
            pepper_file: Some(pepper_file),
            ..AuthConfig::default()
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

/// Credentials of the demo principals, shown once when they are created.
pub struct DemoPrincipals {
    pub text: String,
}

/// Creates the `demo` tenant with one principal of each kind, unless it
/// exists: its charger CA is the development CA (so `charger-1.pem` is a
/// charger), an API key for the app role, and an admin with password and
/// TOTP. Returns what to print, or `None` when the demo was made before.
pub async fn seed_demo(
    auth: &crate::auth::AuthService,
    store: &dyn crate::store::Store,
    data_dir: &Path,
) -> Result<Option<DemoPrincipals>, String> {
    use crate::auth::{Actor, Origin, Role};
    let name = crate::tenants::TenantName::parse("demo").map_err(|e| e.to_string())?;
    if store.tenant_by_name(&name).await.is_ok() {
        return Ok(None);
    }
    let explain = |e: crate::auth::AuthError| e.to_string();
    let (by, origin) = (Actor::cli(), Origin::cli());
    let tenant = auth
        .create_tenant("demo", &by, &origin)
        .await
        .map_err(explain)?;
    let pki = DevPkiFiles::in_dir(&data_dir.canonicalize().map_err(|e| e.kind().to_string())?);
    let ca_pem = std::fs::read_to_string(&pki.ca_cert).map_err(|e| e.kind().to_string())?;
    auth.register_charger_ca(tenant.id, "development CA", &ca_pem, &by, &origin)
        .await
        .map_err(explain)?;
    let (key, api_key) = auth
        .create_api_key(tenant.id, "demo app", Role::App, None, &by, &origin)
        .await
        .map_err(explain)?;
    let mut bytes = [0u8; 12];
    crate::clock::Random::fill(&crate::clock::OsRandom, &mut bytes);
    let password = crate::secret::SecretString::new(format!("demo-{}-7", hex::encode(bytes)));
    let (user, totp) = auth
        .create_user(
            tenant.id,
            "demo-admin",
            Role::Admin,
            &password,
            &by,
            &origin,
        )
        .await
        .map_err(explain)?;
    let qr = crate::auth::totp::terminal_qr(&totp.uri).unwrap_or_default();
    let text = format!(
        "\nDemo tenant `demo` (credentials are shown this once):\n\
         \n  charger  certificate {cc} (key {ck}), CN charger-1\
         \n  client   {kid}: Authorization: Bearer {api_key}\
         \n  admin    user {user}, password {password}\
         \n           TOTP {uri}\n{qr}",
        cc = pki.charger_cert.display(),
        ck = pki.charger_key.display(),
        kid = key.id,
        api_key = api_key.expose_secret(),
        user = user.username,
        password = password.expose_secret(),
        uri = totp.uri.as_str(),
    );
    Ok(Some(DemoPrincipals { text }))
}
