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

use crate::clock::Environment;
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
        Ok(Self {
            config,
            store,
            env,
            tls,
        })
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
        self.store.close().await;
        tracing::info!("voltvault stopped");
    }
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
