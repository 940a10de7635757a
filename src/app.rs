//! The composition root: configuration in, a running service out. Ports
//! (store, and later keys, acquirers, audit) are built here and handed to the
//! router as shared handles.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::audit::syslog::{SyslogForwarder, SyslogTarget};
use crate::audit::{
    AuditLog, AuditWriter, CheckpointSealer, SoftwareSealer, WriterConfig, WriterTask,
};
use crate::clock::Environment;
use crate::config::SyslogConfig;
use crate::config::{Config, ConfigError};
use crate::http::metrics::Metrics;
use crate::http::ops::{ReadinessCheck, StoreReadiness, ops_router};
use crate::http::tls::TlsSetupError;
use crate::http::{AppState, EdgeLimits, public_router, server};
use crate::store::{self, ConnectError, MigrateError, Store};

/// Why the service refused to start. Each renders as one line.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Connect(#[from] ConnectError),
    #[error(transparent)]
    Migrate(#[from] MigrateError),
    #[error(transparent)]
    Tls(#[from] TlsSetupError),
    #[error("audit: {0}")]
    Audit(String),
    #[error("{key}: cannot listen on {addr}: {reason}")]
    Bind {
        key: &'static str,
        addr: SocketAddr,
        reason: String,
    },
}

/// A configured service, connected and migrated, not yet listening.
pub struct App {
    config: Config,
    store: Arc<dyn Store>,
    env: Environment,
    tls: Arc<rustls::ServerConfig>,
    audit_writer: WriterTask,
    audit: AuditLog,
}

impl App {
    pub async fn build(config: Config, env: Environment) -> Result<Self, StartError> {
        config.validate()?;
        let tls = crate::http::tls::server_config(&config.tls)?;
        let store = store::connect(&config).await?;
        if config.database.migrate_on_start {
            let applied = store.migrate().await?;
            if applied > 0 {
                tracing::info!(applied, "database migrations applied");
            }
        }
        let (audit_writer, audit) =
            start_audit(&config, store.clone(), &env, &config.node_id()).await?;
        Ok(Self {
            config,
            store,
            env,
            tls,
            audit_writer,
            audit,
        })
    }

    pub fn audit(&self) -> AuditLog {
        self.audit.clone()
    }

    pub fn store(&self) -> Arc<dyn Store> {
        self.store.clone()
    }

    /// Binds both listeners and serves in the background. `extra_routes`
    /// are mounted behind the public layers (tests use it).
    pub async fn start(self, extra_routes: Option<Router>) -> Result<RunningApp, StartError> {
        let api_listener = bind("server.listen", self.config.server.listen).await?;
        let ops_listener = bind("ops.listen", self.config.ops.listen).await?;
        let api_addr = local_addr("server.listen", &api_listener, self.config.server.listen)?;
        let ops_addr = local_addr("ops.listen", &ops_listener, self.config.ops.listen)?;

        let node_id: Arc<str> = self.config.node_id().into();
        let metrics = Arc::new(Metrics::new());
        let state = AppState {
            store: self.store.clone(),
            env: self.env.clone(),
            node_id: node_id.clone(),
            audit: self.audit.clone(),
        };
        let limits = EdgeLimits {
            body_limit_bytes: self.config.server.body_limit_bytes,
            request_timeout: Duration::from_secs(self.config.server.request_timeout_secs),
        };
        let router = public_router(state, metrics.clone(), limits, extra_routes);
        let checks: Vec<Arc<dyn ReadinessCheck>> =
            vec![Arc::new(StoreReadiness(self.store.clone()))];
        let ops = ops_router(metrics, checks);

        let shutdown = CancellationToken::new();
        let grace = Duration::from_secs(self.config.server.shutdown_grace_secs);
        let api_task = tokio::spawn(server::serve_tls(
            api_listener,
            self.tls.clone(),
            router,
            shutdown.clone(),
            grace,
        ));
        let ops_shutdown = shutdown.clone();
        let ops_task = tokio::spawn(async move {
            let served = axum::serve(ops_listener, ops)
                .with_graceful_shutdown(async move { ops_shutdown.cancelled().await })
                .await;
            if let Err(error) = served {
                tracing::error!(%error, "operations listener failed");
            }
        });
        tracing::info!(
            %api_addr,
            %ops_addr,
            node_id = %node_id,
            database = ?self.store.backend(),
            "voltvault is serving"
        );
        Ok(RunningApp {
            api_addr,
            ops_addr,
            shutdown,
            tasks: vec![api_task, ops_task],
            store: self.store,
            audit_writer: self.audit_writer,
        })
    }
}

/// A service that is listening.
pub struct RunningApp {
    pub api_addr: SocketAddr,
    pub ops_addr: SocketAddr,
    shutdown: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
    store: Arc<dyn Store>,
    audit_writer: WriterTask,
}

impl RunningApp {
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Stops accepting, lets open requests finish, then closes the database.
    pub async fn stop(self) {
        self.shutdown.cancel();
        self.wait().await;
    }

    /// Waits until the listeners have stopped (after the token is cancelled).
    pub async fn wait(self) {
        for task in self.tasks {
            let _ = task.await;
        }
        // Requests are done: record the stop of logging and seal the chain.
        self.audit_writer.stop().await;
        self.store.close().await;
        tracing::info!("voltvault stopped");
    }
}

/// The checkpoint sealer. Until the HSM's audit key is wired in, a
/// software HMAC key from `audit.seal_key_file` (or, without one, a key
/// made now that dies with the process).
pub fn audit_sealer(
    config: &Config,
    env: &Environment,
) -> Result<Arc<dyn CheckpointSealer>, StartError> {
    let key = match &config.audit.seal_key_file {
        Some(path) => {
            let text = crate::secret::SecretString::from_file(path)
                .map_err(|e| StartError::Audit(format!("seal_key_file: {e}")))?;
            let key = zeroize::Zeroizing::new(
                hex::decode(text.expose_secret().trim())
                    .map_err(|_| StartError::Audit("seal_key_file: not hex".into()))?,
            );
            if key.len() < 32 {
                return Err(StartError::Audit(
                    "seal_key_file: needs at least 32 bytes (64 hex digits)".into(),
                ));
            }
            key
        }
        None => {
            tracing::warn!(
                "audit.seal_key_file is not set: checkpoints are sealed with a key that \
                 ends with this process and will not verify after a restart"
            );
            let mut key = zeroize::Zeroizing::new(vec![0u8; 32]);
            env.random.fill(&mut key);
            key
        }
    };
    let digest = ring::digest::digest(&ring::digest::SHA256, &key);
    let key_id = format!("software-{}", hex::encode(&digest.as_ref()[..6]));
    Ok(Arc::new(SoftwareSealer::new(key_id, &key)))
}

/// Starts this node's audit writer (recording the start of logging) and
/// the read side auditors use.
pub async fn start_audit(
    config: &Config,
    store: Arc<dyn Store>,
    env: &Environment,
    node_id: &str,
) -> Result<(WriterTask, AuditLog), StartError> {
    let sealer = audit_sealer(config, env)?;
    let writer_config = WriterConfig {
        checkpoint_every: config.audit.checkpoint_every,
        checkpoint_interval: Duration::from_secs(config.audit.checkpoint_interval_secs),
        ..WriterConfig::default()
    };
    let forward = match &config.audit.syslog {
        Some(syslog) => Some(SyslogForwarder::start(syslog_target(syslog, node_id)?)),
        None => None,
    };
    let audit_store: Arc<dyn crate::store::AuditStore> = store.clone();
    let writer = AuditWriter::start_forwarding(
        audit_store.clone(),
        sealer.clone(),
        env.clock.clone(),
        node_id,
        writer_config,
        forward,
    )
    .await
    .map_err(|e| StartError::Audit(e.to_string()))?;
    let log = AuditLog::new(
        audit_store,
        sealer,
        Arc::new(writer.handle()),
        env.clock.clone(),
    );
    Ok((writer, log))
}

fn syslog_target(syslog: &SyslogConfig, node_id: &str) -> Result<SyslogTarget, StartError> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in crate::http::tls::load_certificates("audit.syslog.ca_file", &syslog.ca_file)? {
        roots
            .add(cert)
            .map_err(|e| StartError::Audit(format!("syslog.ca_file: {e}")))?;
    }
    let tls = rustls::ClientConfig::builder_with_provider(crate::http::tls::provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| StartError::Audit(format!("syslog: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let server_name = rustls_pki_types::ServerName::try_from(syslog.server_name.clone())
        .map_err(|_| StartError::Audit("syslog.server_name: not a DNS name or IP".into()))?;
    Ok(SyslogTarget {
        address: syslog.address.clone(),
        server_name,
        tls: Arc::new(tls),
        hostname: node_id.to_owned(),
    })
}

async fn bind(key: &'static str, addr: SocketAddr) -> Result<TcpListener, StartError> {
    TcpListener::bind(addr).await.map_err(|e| StartError::Bind {
        key,
        addr,
        reason: e.kind().to_string(),
    })
}

fn local_addr(
    key: &'static str,
    listener: &TcpListener,
    addr: SocketAddr,
) -> Result<SocketAddr, StartError> {
    listener.local_addr().map_err(|e| StartError::Bind {
        key,
        addr,
        reason: e.kind().to_string(),
    })
}

/// Runs until SIGINT or SIGTERM, then shuts down gracefully.
pub async fn serve_until_signal(config: Config) -> Result<(), StartError> {
    let app = App::build(config, Environment::system()).await?;
    let running = app.start(None).await?;
    run_until_signal(running).await;
    Ok(())
}

/// Waits for SIGINT or SIGTERM, then stops `running` gracefully.
pub async fn run_until_signal(running: RunningApp) {
    let token = running.shutdown_token();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutdown requested; finishing open requests");
        token.cancel();
    });
    running.wait().await;
}

async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
