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

use std::num::NonZeroU32;

use crate::audit::syslog::{SyslogForwarder, SyslogTarget};
use crate::audit::{AuditLog, AuditSink, AuditWriter, CheckpointSealer, WriterConfig, WriterTask};
use crate::auth::charger::ChargerTrust;
use crate::auth::keys::PepperKeys;
use crate::auth::ratelimit::RateLimitSettings;
use crate::auth::{AuthService, AuthSettings, Policy};
use crate::clock::Environment;
use crate::config::{AcquirerKind, Config, ConfigError, Mode, SyslogConfig};
use crate::http::metrics::Metrics;
use crate::http::ops::{KeyProviderReadiness, ReadinessCheck, StoreReadiness, ops_router};
use crate::http::tls::TlsSetupError;
use crate::http::{AppState, EdgeLimits, public_router, server};
use crate::keys::setup::{
    KeyEventsToAudit, ProviderCheckpointSealer, open_provider, rotation_policy,
};
use crate::keys::software::Unseal;
use crate::keys::{KeyError, KeyManager, KeyProvider};
use crate::payments::connectors::simulator::Simulator;
use crate::payments::connectors::stripe::{StripeConfig, StripeConnector};
use crate::payments::connectors::{Acquirer, Connector};
use crate::payments::service::{PaymentService, PaymentSettings};
use crate::payments::session::HoldRules;
use crate::payments::tariffs::{TariffBook, TariffCatalog};
use crate::store::{self, ConnectError, MigrateError, Store};
use crate::tokens::service::TokenService;

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
    #[error("keys: {0}")]
    Keys(#[from] KeyError),
    #[error("audit: {0}")]
    Audit(String),
    #[error(transparent)]
    Policy(#[from] crate::auth::policy::PolicyError),
    #[error(transparent)]
    AuthKeys(#[from] crate::auth::keys::AuthKeyError),
    #[error("payments: {0}")]
    Payments(String),
    #[error("notifications: {0}")]
    Notifications(String),
    #[error("charger CAs: cannot load them from the database ({0})")]
    ChargerCas(crate::store::StoreError),
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
    provider: Arc<dyn KeyProvider>,
    keys: Arc<KeyManager>,
    audit: WriterTask,
    /// The read side of the audit trail, for auditors.
    audit_log: AuditLog,
    auth: Arc<AuthService>,
    /// Where audit events go: the durable writer, with an observer if one was given.
    audit_sink: Arc<dyn AuditSink>,
    /// The configured acquirer and the tariffs sessions are priced with.
    acquirer: Option<Arc<dyn Acquirer>>,
    tariffs: Arc<TariffCatalog>,
}

/// The acquirer named in `[payments]`, if any.
pub fn open_acquirer(
    config: &Config,
    env: &Environment,
) -> Result<Option<Arc<dyn Acquirer>>, StartError> {
    let Some(kind) = config.payments.acquirer else {
        return Ok(None);
    };
    Ok(Some(match kind {
        AcquirerKind::Simulator => Arc::new(Simulator::new(env.clock.clone())),
        AcquirerKind::Stripe => {
            let settings = config
                .payments
                .stripe
                .as_ref()
                .ok_or_else(|| StartError::Payments("[payments.stripe] is missing".into()))?;
            let key = config.stripe_api_key()?;
            let mut stripe = StripeConfig::production(key);
            if let Some(base_url) = &settings.base_url {
                let host = url::Url::parse(base_url)
                    .ok()
                    .and_then(|u| u.host_str().map(str::to_owned))
                    .ok_or_else(|| {
                        StartError::Payments("payments.stripe.base_url: not a URL".into())
                    })?;
                stripe.base_url = base_url.clone();
                stripe.allowed_hosts = vec![host];
                // Plain HTTP to a local Stripe-compatible server, never in production.
                stripe.allow_loopback_http = config.mode == Mode::Development;
            }
            stripe.incremental_authorization = settings.incremental_authorization;
            stripe.request_timeout = Duration::from_secs(settings.request_timeout_secs);
            Arc::new(
                StripeConnector::new(stripe, env.clock.clone())
                    .map_err(|e| StartError::Payments(e.to_string()))?,
            )
        }
    }))
}

/// The tariffs in `payments.tariffs_file` (none without one).
pub fn load_tariffs(config: &Config) -> Result<Arc<TariffCatalog>, StartError> {
    Ok(Arc::new(match &config.payments.tariffs_file {
        Some(path) => TariffCatalog::load(path).map_err(|e| StartError::Payments(e.to_string()))?,
        None => TariffCatalog::default(),
    }))
}

/// The policy named in the configuration, or the one built in.
pub fn load_policy(config: &Config) -> Result<Policy, StartError> {
    Ok(match &config.auth.policy_file {
        Some(path) => Policy::load(path)?,
        None => Policy::shipped()?,
    })
}

/// The authentication service over an open store (the CLI uses it too).
pub async fn auth_service(
    config: &Config,
    store: Arc<dyn Store>,
    env: Environment,
    audit: Arc<dyn AuditSink>,
) -> Result<Arc<AuthService>, StartError> {
    let policy = load_policy(config)?;
    let keys = Arc::new(PepperKeys::load(config.auth.pepper_file.as_deref())?);
    let roots = crate::http::tls::configured_client_roots(&config.tls)?;
    let chargers = Arc::new(ChargerTrust::new(crate::http::tls::provider(), roots));
    chargers
        .reload(store.as_ref())
        .await
        .map_err(StartError::ChargerCas)?;
    let settings = AuthSettings {
        session_absolute: chrono::Duration::hours(i64::from(config.auth.session_absolute_hours)),
        rate_limits: RateLimitSettings {
            per_principal_per_minute: NonZeroU32::new(
                config.auth.rate_limit_per_principal_per_minute,
            )
            .unwrap_or(NonZeroU32::MIN),
            per_address_per_minute: NonZeroU32::new(config.auth.rate_limit_per_address_per_minute)
                .unwrap_or(NonZeroU32::MIN),
        },
        ..AuthSettings::default()
    };
    Ok(Arc::new(AuthService::new(
        store, env, keys, policy, audit, chargers, settings,
    )))
}

impl App {
    /// Builds with the interim log audit sink.
    pub async fn build(config: Config, env: Environment) -> Result<Self, StartError> {
        Self::build_with(config, env, None).await
    }

    /// Like [`App::build`], with the software KEK unsealed by `unseal`
    /// instead of the environment (`voltvault dev`).
    pub async fn build_with(
        config: Config,
        env: Environment,
        unseal: Option<Unseal>,
    ) -> Result<Self, StartError> {
        Self::build_observed(config, env, unseal, None).await
    }

    /// Like [`App::build_with`]; every audit event, once durable, is also
    /// given to `observer` (a forwarder, or a test's recorder).
    pub async fn build_observed(
        config: Config,
        env: Environment,
        unseal: Option<Unseal>,
        observer: Option<Arc<dyn AuditSink>>,
    ) -> Result<Self, StartError> {
        config.validate()?;
        load_policy(&config)?;
        let store = store::connect(&config).await?;
        if config.database.migrate_on_start {
            let applied = store.migrate().await?;
            if applied > 0 {
                tracing::info!(applied, "database migrations applied");
            }
        }
        let KeyCore {
            provider,
            audit,
            audit_log,
            keys,
        } = open_keys(
            &config,
            &env,
            store.clone(),
            unseal,
            &config.node_id(),
            config.audit.writer_lanes,
        )
        .await?;
        verify_keys(&keys, config.mode).await?;
        let durable: Arc<dyn AuditSink> = Arc::new(audit.handle());
        let (audit_sink, audit_log): (Arc<dyn AuditSink>, AuditLog) = match observer {
            Some(observer) => {
                let tee: Arc<dyn AuditSink> = Arc::new(crate::audit::Tee { durable, observer });
                (tee.clone(), audit_log.with_sink(tee))
            }
            None => (durable, audit_log),
        };
        let auth = auth_service(&config, store.clone(), env.clone(), audit_sink.clone()).await?;
        let tls = crate::http::tls::server_config(&config.tls, auth.chargers().clone())?;
        let acquirer = open_acquirer(&config, &env)?;
        let tariffs = load_tariffs(&config)?;
        Ok(Self {
            acquirer,
            tariffs,
            config,
            store,
            env,
            tls,
            provider,
            keys,
            auth,
            audit_sink,
            audit_log,
            audit,
        })
    }

    pub fn audit(&self) -> AuditLog {
        self.audit_log.clone()
    }

    pub fn store(&self) -> Arc<dyn Store> {
        self.store.clone()
    }

    pub fn auth(&self) -> Arc<AuthService> {
        self.auth.clone()
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
        let audit = self.audit_sink.clone();
        let tokens = Arc::new(TokenService::new(
            self.store.clone(),
            self.keys.clone(),
            audit.clone(),
            self.env.clone(),
        ));
        let cvcs = crate::http::routes::tokens::new_cvc_vault(&self.env);
        let tariffs = Arc::new(TariffBook::new(
            self.store.clone(),
            self.tariffs.clone(),
            audit.clone(),
            self.env.clone(),
        ));
        let (mail, mail_worker) = self.mail()?;
        // Webhooks first, then the e-mail to the account concerned.
        let notifier: Arc<dyn crate::notify::Notifier> =
            Arc::new(crate::notify::mailing::MailingNotifier::new(
                Arc::new(crate::notify::OutboxNotifier::new(self.store.clone())),
                self.store.clone(),
                mail.clone(),
            ));
        let payments = self.acquirer.clone().map(|acquirer| {
            let p = &self.config.payments;
            Arc::new(
                PaymentService::new(
                    self.store.clone(),
                    Connector::new(acquirer, audit.clone(), self.env.clock.clone()),
                    tokens.clone(),
                    cvcs.clone(),
                    tariffs.clone(),
                    audit.clone(),
                    self.env.clone(),
                    PaymentSettings {
                        rules: HoldRules {
                            near_percent: p.increment_at_percent,
                            max_total: p.max_authorized_minor_units,
                        },
                        max_hold: p.max_hold_minor_units,
                        lease: chrono::Duration::seconds(
                            i64::try_from(p.intent_lease_secs).unwrap_or(i64::MAX / 1000),
                        ),
                        max_session_age: chrono::Duration::hours(i64::from(p.max_session_hours)),
                        events_poll: Duration::from_secs(p.events_poll_secs),
                    },
                )
                .with_notifier(notifier.clone()),
            )
        });
        let webhooks = Arc::new(crate::notify::webhooks::WebhookService::new(
            self.store.clone(),
            self.auth.sealing_keys(),
            audit.clone(),
            self.env.clone(),
            self.config.mode,
        ));
        let deliverer = Arc::new(
            crate::notify::delivery::Deliverer::new(
                self.store.clone(),
                self.auth.sealing_keys(),
                self.env.clone(),
                delivery_settings(&self.config),
            )
            .map_err(|e| StartError::Notifications(e.to_string()))?,
        );
        let operator = crate::billing::receipt::OperatorDetails {
            name: self.config.billing.operator_name.clone(),
            address: self.config.billing.operator_address.clone(),
            vat_id: self.config.billing.operator_vat_id.clone(),
        };
        let locations = crate::billing::location::Locations::new(&self.config.billing.locations)
            .map_err(|entry| ConfigError::InvalidEntry {
                key: "billing.locations",
                entry,
            })?;
        let billing = Arc::new(crate::billing::service::BillingService::new(
            self.store.clone(),
            tariffs.clone(),
            operator.clone(),
            locations,
            audit.clone(),
            self.env.clone(),
        ));
        let invoices = Arc::new(crate::billing::invoices::InvoiceService::new(
            self.store.clone(),
            billing.clone(),
            operator,
            self.config.billing.invoice_number_prefix.clone(),
            audit.clone(),
            notifier,
            self.env.clone(),
        ));
        let accounts = Arc::new(crate::accounts::service::AccountService::new(
            self.store.clone(),
            tokens.clone(),
            audit.clone(),
            self.env.clone(),
        ));
        let wallets = Arc::new(crate::wallets::service::WalletService::new(
            self.store.clone(),
            self.acquirer
                .clone()
                .map(|a| Connector::new(a, audit.clone(), self.env.clock.clone())),
            tokens.clone(),
            cvcs.clone(),
            audit.clone(),
            self.env.clone(),
        ));
        let state = AppState {
            accounts,
            invoices,
            wallets,
            tariffs,
            billing,
            payments: payments.clone(),
            store: self.store.clone(),
            auth: self.auth.clone(),
            env: self.env.clone(),
            node_id: node_id.clone(),
            keys: self.keys.clone(),
            audit,
            tokens,
            cvcs,
            audit_log: self.audit_log.clone(),
            webhooks,
            mail,
            in_flight: Default::default(),
        };
        let limits = EdgeLimits {
            body_limit_bytes: self.config.server.body_limit_bytes,
            request_timeout: Duration::from_secs(self.config.server.request_timeout_secs),
        };
        let invoice_run = state.invoices.clone();
        let sweep_state = state.clone();
        let router = public_router(state, metrics.clone(), limits, extra_routes);
        let checks: Vec<Arc<dyn ReadinessCheck>> = vec![
            Arc::new(StoreReadiness(self.store.clone())),
            Arc::new(KeyProviderReadiness(self.provider.clone())),
        ];
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
        let refresh = tokio::spawn(refresh_auth(self.auth.clone(), shutdown.clone()));
        let sweep = tokio::spawn(crate::http::routes::tokens::sweep(
            sweep_state,
            TOKEN_SWEEP,
            shutdown.clone(),
        ));
        let mut tasks = Vec::new();
        if let Some(payments) = payments {
            tasks.push(tokio::spawn(crate::payments::recovery::run(
                payments,
                Duration::from_secs(self.config.payments.recovery_interval_secs),
                shutdown.clone(),
            )));
        }
        if self.config.billing.invoice_run_interval_secs > 0 {
            tasks.push(tokio::spawn(crate::billing::invoices::run(
                invoice_run,
                Duration::from_secs(self.config.billing.invoice_run_interval_secs),
                shutdown.clone(),
            )));
        }
        tasks.push(tokio::spawn(crate::notify::delivery::run(
            deliverer,
            shutdown.clone(),
        )));
        if let Some(worker) = mail_worker {
            tasks.push(tokio::spawn(crate::notify::mail_queue::run(
                worker,
                shutdown.clone(),
            )));
        }
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
            tasks: {
                tasks.extend([api_task, ops_task, refresh, sweep]);
                tasks
            },
            store: self.store,
            audit: self.audit,
        })
    }
}

type MailParts = (
    Arc<crate::notify::mail_queue::MailQueue>,
    Option<Arc<crate::notify::mail_queue::MailWorker>>,
);

impl App {
    /// The mail queue, and its worker when `[notifications.smtp]` names a
    /// relay. Without one, mail is queued and waits (development).
    fn mail(&self) -> Result<MailParts, StartError> {
        use crate::notify::mail_queue::{MailQueue, MailSettings, MailWorker};
        let Some(smtp) = &self.config.notifications.smtp else {
            let queue = MailQueue::new(self.store.clone(), self.env.clone(), false);
            return Ok((Arc::new(queue), None));
        };
        let password = self
            .config
            .smtp_password()
            .map_err(|e| StartError::Notifications(e.to_string()))?;
        let mailer = crate::notify::smtp::SmtpMailer::new(smtp, password.as_ref())
            .map_err(|e| StartError::Notifications(e.to_string()))?;
        let n = &self.config.notifications;
        let settings = MailSettings {
            interval: Duration::from_millis(n.worker_interval_ms),
            max_attempts: n.max_attempts,
            backoff_base: Duration::from_millis(n.backoff_base_ms),
            backoff_max: Duration::from_secs(n.backoff_max_secs),
            send_timeout: Duration::from_secs(smtp.timeout_secs),
        };
        let queue = MailQueue::new(self.store.clone(), self.env.clone(), true);
        let worker = MailWorker::new(
            self.store.clone(),
            Arc::new(mailer),
            self.env.clone(),
            settings,
        );
        Ok((Arc::new(queue), Some(Arc::new(worker))))
    }
}

/// The `[notifications]` section as the delivery worker takes it.
fn delivery_settings(config: &Config) -> crate::notify::delivery::DeliverySettings {
    let n = &config.notifications;
    crate::notify::delivery::DeliverySettings {
        interval: Duration::from_millis(n.worker_interval_ms),
        max_attempts: n.max_attempts,
        backoff_base: Duration::from_millis(n.backoff_base_ms),
        backoff_max: Duration::from_secs(n.backoff_max_secs),
        request_timeout: Duration::from_secs(n.request_timeout_secs),
        // Plain HTTP only to loopback, only in development (checked on creation too).
        allow_http: config.mode == Mode::Development,
    }
}

/// A service that is listening.
pub struct RunningApp {
    pub api_addr: SocketAddr,
    pub ops_addr: SocketAddr,
    shutdown: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
    store: Arc<dyn Store>,
    audit: WriterTask,
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
        self.audit.stop().await;
        self.store.close().await;
        tracing::info!("voltvault stopped");
    }
}

/// The key layer with its audit trail, as the service and the `keys`,
/// `admin` and `audit` commands use it.
pub struct KeyCore {
    pub provider: Arc<dyn KeyProvider>,
    /// The audit writer; checkpoints are sealed with the provider's audit key.
    pub audit: WriterTask,
    /// The read side of the audit trail (search, export, verify).
    pub audit_log: AuditLog,
    pub keys: Arc<KeyManager>,
}

/// Opens the key provider and starts this node's audit writer under
/// `node_id` (the service's, or `<node>.cli` for commands) with `lanes`
/// writers side by side.
pub async fn open_keys(
    config: &Config,
    env: &Environment,
    store: Arc<dyn Store>,
    unseal: Option<Unseal>,
    node_id: &str,
    lanes: usize,
) -> Result<KeyCore, StartError> {
    let provider = open_provider(config, env, unseal).await?;
    let sealer: Arc<dyn CheckpointSealer> =
        Arc::new(ProviderCheckpointSealer::new(provider.clone()));
    let (audit, audit_log) =
        start_audit(config, store.clone(), env, node_id, lanes, sealer).await?;
    let keys = Arc::new(KeyManager::new(
        provider.clone(),
        store.data_key_store(),
        Arc::new(KeyEventsToAudit {
            audit: Arc::new(audit.handle()),
            clock: env.clock.clone(),
        }),
        env,
        rotation_policy(&config.keys),
    ));
    Ok(KeyCore {
        provider,
        audit,
        audit_log,
        keys,
    })
}

/// Start-up refuses a KEK that no longer matches its recorded check value.
/// A development instance records its first KEK itself.
async fn verify_keys(keys: &KeyManager, mode: Mode) -> Result<(), KeyError> {
    match keys.verify_keks().await {
        Err(KeyError::Misconfigured(_)) if mode == Mode::Development => {
            let kcv = keys.record_initial_kek().await?;
            tracing::info!(check_value = %kcv.to_hex(), "development key registry initialized");
            keys.verify_keks().await
        }
        other => other,
    }
}

/// Picks up charger CAs and revocations made by other nodes or the CLI, and
/// forgets idle rate-limit state.
async fn refresh_auth(auth: Arc<AuthService>, shutdown: CancellationToken) {
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(AUTH_REFRESH) => {}
        }
        if auth.reload_chargers().await.is_err() {
            tracing::warn!("charger CAs could not be reloaded; keeping the current set");
        }
        auth.forget_idle_budgets();
        if auth.disable_idle_accounts().await.is_err() {
            tracing::warn!("idle staff accounts could not be disabled this round");
        }
    }
}

const AUTH_REFRESH: Duration = Duration::from_secs(30);
/// How often expired tokens are shredded and stale CVCs dropped.
const TOKEN_SWEEP: Duration = Duration::from_secs(60);

/// Starts this node's audit writer (recording the start of logging) and
/// the read side auditors use.
pub async fn start_audit(
    config: &Config,
    store: Arc<dyn Store>,
    env: &Environment,
    node_id: &str,
    lanes: usize,
    sealer: Arc<dyn CheckpointSealer>,
) -> Result<(WriterTask, AuditLog), StartError> {
    let writer_config = WriterConfig {
        checkpoint_every: config.audit.checkpoint_every,
        checkpoint_interval: Duration::from_secs(config.audit.checkpoint_interval_secs),
        lanes,
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
