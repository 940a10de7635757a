//! `voltvault dev`: a complete local instance with no setup. SQLite in a
//! data directory, a development PKI written there, everything on loopback.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use crate::clock::{OsRandom, Random};
use crate::config::{
    AuthConfig, ClientAuth, Config, DatabaseConfig, KeyProviderKind, KeysConfig, LogFormat,
    LoggingConfig, Mode, OpsConfig, Pkcs11Settings, ServerConfig, SoftwareKeySettings, TlsConfig,
};
use crate::devpki::{DevPkiFiles, PkiError, write_file};
use crate::keys::KeyError;
use crate::keys::software::Unseal;
use crate::secret::SecretString;

/// The PKCS#11 module `voltvault dev` uses when SoftHSM2 is installed.
pub const SOFTHSM_MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";
const DEV_TOKEN_LABEL: &str = "voltvault-dev";

#[derive(Debug, thiserror::Error)]
pub enum DevError {
    #[error("{path}: {reason}")]
    DataDir { path: String, reason: String },
    #[error(transparent)]
    Pki(#[from] PkiError),
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error("keys: {0}")]
    Keys(#[from] KeyError),
}

/// Which key provider `voltvault dev` runs with.
pub enum DevKeys {
    /// A SoftHSM2 token of its own under the data directory.
    SoftHsm { conf: PathBuf },
    /// A software KEK sealed under a passphrase kept in the data directory.
    Software,
}

impl DevKeys {
    /// SoftHSM2 when its module is installed, else software keys.
    pub fn choose(data_dir: &Path) -> Self {
        if Path::new(SOFTHSM_MODULE).exists() {
            DevKeys::SoftHsm {
                conf: data_dir.join("softhsm").join("softhsm2.conf"),
            }
        } else {
            DevKeys::Software
        }
    }

    pub fn describe(&self) -> &'static str {
        match self {
            DevKeys::SoftHsm { .. } => "SoftHSM2 (PKCS#11) token in the data directory",
            DevKeys::Software => "software KEK (SoftHSM2 is not installed; development only)",
        }
    }
}

/// Makes the key material `voltvault dev` needs on first run and returns
/// the `[keys]` configuration plus what unseals a software KEK.
/// SoftHSM reads `SOFTHSM2_CONF` when it loads, so the caller must already
/// run with it pointing at `conf` (see `main`).
async fn prepare_keys(
    data_dir: &Path,
    keys: &DevKeys,
) -> Result<(KeysConfig, Option<Unseal>), DevError> {
    let mut config = KeysConfig {
        provider: KeyProviderKind::Software,
        pkcs11: None,
        software: None,
        max_data_key_age_days: 90,
        max_data_key_uses: 1 << 28,
    };
    match keys {
        DevKeys::SoftHsm { conf } => {
            write_softhsm_conf(conf)?;
            let pin_file = data_dir.join("hsm.pin");
            let pin = secret_in_file(&pin_file)?;
            let so_pin = SecretString::new(random_hex(16));
            crate::keys::setup::init_token(
                Path::new(SOFTHSM_MODULE),
                DEV_TOKEN_LABEL,
                &so_pin,
                &pin,
            )?;
            let hsm = crate::keys::pkcs11::Pkcs11Provider::connect(
                crate::keys::pkcs11::Pkcs11Config::new(SOFTHSM_MODULE, DEV_TOKEN_LABEL, pin),
            )
            .await?;
            if crate::keys::KeyProvider::kek_versions(&hsm)
                .await?
                .is_empty()
            {
                hsm.init_token_objects().await?;
            }
            config.provider = KeyProviderKind::Pkcs11;
            config.pkcs11 = Some(Pkcs11Settings {
                module: SOFTHSM_MODULE.into(),
                token_label: DEV_TOKEN_LABEL.into(),
                pin_file: Some(pin_file),
                sessions: 4,
            });
            Ok((config, None))
        }
        DevKeys::Software => {
            let passphrase = secret_in_file(&data_dir.join("kek.passphrase"))?;
            let kek_file = data_dir.join("kek.sealed");
            if !kek_file.exists() {
                crate::keys::software::SoftwareProvider::init_with_passphrase(
                    Mode::Development,
                    &kek_file,
                    &passphrase,
                    crate::keys::software::KdfParams::default(),
                    std::sync::Arc::new(OsRandom),
                )?;
            }
            config.software = Some(SoftwareKeySettings { kek_file });
            Ok((config, Some(Unseal::Passphrase(passphrase))))
        }
    }
}

fn io_error(path: &Path, e: std::io::Error) -> DevError {
    DevError::DataDir {
        path: path.display().to_string(),
        reason: e.kind().to_string(),
    }
}

fn write_softhsm_conf(conf: &Path) -> Result<(), DevError> {
    let Some(dir) = conf.parent() else {
        return Err(io_error(conf, std::io::ErrorKind::NotFound.into()));
    };
    let tokens = dir.join("tokens");
    std::fs::create_dir_all(&tokens).map_err(|e| io_error(&tokens, e))?;
    if !conf.exists() {
        let text = format!(
            "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n",
            tokens.display()
        );
        write_file(conf, &text, 0o600)?;
    }
    Ok(())
}

/// A random development secret kept in a private file, made on first use.
fn secret_in_file(path: &Path) -> Result<SecretString, DevError> {
    if !path.exists() {
        write_file(path, &random_hex(24), 0o600)?;
    }
    SecretString::from_file(path).map_err(|e| DevError::DataDir {
        path: path.display().to_string(),
        reason: e.to_string(),
    })
}

fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    OsRandom.fill(&mut buf);
    hex::encode(buf)
}

/// Prepares the data directory and returns the configuration to run with.
pub async fn prepare(
    data_dir: &Path,
    port: u16,
    ops_port: u16,
    keys: &DevKeys,
) -> Result<(Config, Option<Unseal>), DevError> {
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
    let (keys_config, unseal) = prepare_keys(&data_dir, keys).await?;
    let pepper_file = data_dir.join("auth-pepper");
    if !pepper_file.is_file() {
        let pepper = crate::auth::keys::PepperKeys::generate_hex(&crate::clock::OsRandom);
        crate::devpki::write_file(&pepper_file, pepper.expose_secret(), 0o600)?;
    }
    let tariffs_file = data_dir.join("tariffs.json");
    if !tariffs_file.is_file() {
        write_file(&tariffs_file, crate::payments::tariffs::DEMO_TARIFFS, 0o600)?;
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
        keys: keys_config,
        logging: LoggingConfig {
            format: LogFormat::Human,
            level: "info".into(),
        },
        auth: AuthConfig {
            pepper_file: Some(pepper_file),
            ..AuthConfig::default()
        },
        audit: crate::config::AuditConfig::default(),
        billing: crate::config::BillingConfig {
            operator_name: Some("voltvault dev".into()),
            locations: vec![crate::billing::location::demo_site()],
            ..Default::default()
        },
        payments: crate::config::PaymentsConfig {
            acquirer: Some(crate::config::AcquirerKind::Simulator),
            tariffs_file: Some(tariffs_file),
            ..crate::config::PaymentsConfig::default()
        },
        notifications: Default::default(),
    };
    Ok((Config::from_defaults(&config)?, unseal))
}

/// What `voltvault dev` prints once it listens.
pub fn banner(data_dir: &Path, api: SocketAddr, ops: SocketAddr, keys: &DevKeys) -> String {
    let pki = DevPkiFiles::in_dir(
        &data_dir
            .canonicalize()
            .unwrap_or_else(|_| PathBuf::from(data_dir)),
    );
    let ca = pki.ca_cert.display();
    format!(
        "\nvoltvault dev is running (SQLite, development certificates; not for production)\n\
         \n  API        https://{api}\n  operations http://{ops}\n  data       {dir}\n  keys       {keys}\n\
         \nTry:\n\
         \n  curl --cacert {ca} https://{api}/healthz\
         \n  curl --cacert {ca} --cert {cc} --key {ck} https://{api}/v1/whoami\
         \n  curl --cacert {ca} https://{api}/openapi.json\
         \n  curl http://{ops}/readyz\
         \n  curl http://{ops}/metrics\
         \n\nCtrl-C stops it.\n",
        dir = data_dir.display(),
        keys = keys.describe(),
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
