//! The HTTP edge: the public router with its layers, the TLS listener and
//! the operations listener. Handlers turn requests into domain calls; they
//! never run SQL themselves.

pub mod auth;
pub mod error;
pub mod extract;
pub mod idempotency;
pub mod metrics;
pub mod middleware;
pub mod openapi;
pub mod ops;
pub mod routes;
pub mod server;
pub mod tls;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, HeaderValue, header};
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::timeout::TimeoutLayer;

use crate::audit::AuditSink;
use crate::auth::AuthService;
use crate::clock::Environment;
use crate::store::Store;
use error::ApiError;
use metrics::Metrics;

/// What handlers share. Later parts (keys, tokens, payments) join here as
/// capability handles.
#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    /// Authentication, the policy and request budgets; the route guard uses it.
    pub auth: Arc<AuthService>,
    /// Where audit events go (fail closed).
    pub audit: Arc<dyn AuditSink>,
    pub env: Environment,
    pub node_id: Arc<str>,
    pub keys: Arc<crate::keys::KeyManager>,
    pub tokens: Arc<crate::tokens::service::TokenService>,
    pub cvcs: Arc<routes::tokens::TokenCvcs>,
    /// The read side of the audit trail, for auditors.
    pub audit_log: crate::audit::AuditLog,
    /// Published tariffs over the deployment's own.
    pub tariffs: Arc<crate::payments::tariffs::TariffBook>,
    /// EV payment sessions; `None` when no acquirer is configured.
    pub payments: Option<Arc<crate::payments::service::PaymentService>>,
    /// The tenant's webhook endpoints and their delivery log.
    pub webhooks: Arc<crate::notify::webhooks::WebhookService>,
    /// Receipts, history and accounting exports.
    pub billing: Arc<crate::billing::service::BillingService>,
    /// Drivers' and fleets' accounts, their tokens and RFID cards.
    pub accounts: Arc<crate::accounts::service::AccountService>,
    /// Monthly invoices per account.
    pub invoices: Arc<crate::billing::invoices::InvoiceService>,
    /// Notification e-mail: queue here, a worker sends it.
    pub mail: Arc<crate::notify::mail_queue::MailQueue>,
    /// Idempotency keys of requests running on this node that write their
    /// record only when they commit (ADR 0008).
    pub in_flight: Arc<idempotency::InFlight>,
    /// Prepaid wallets of accounts and their top-ups.
    pub wallets: Arc<crate::wallets::service::WalletService>,
}

/// Limits the edge enforces on every request.
#[derive(Debug, Clone, Copy)]
pub struct EdgeLimits {
    pub body_limit_bytes: usize,
    pub request_timeout: Duration,
}

/// The public API with every layer applied. `extra` lets tests mount a
/// route of their own behind the same layers.
pub fn public_router(
    state: AppState,
    metrics: Arc<Metrics>,
    limits: EdgeLimits,
    extra: Option<Router>,
) -> Router {
    let mut api = routes::api_routes().into_router(state);
    if let Some(extra) = extra {
        api = api.merge(extra);
    }
    api.fallback(|| async { ApiError::not_found() })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                axum::http::StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
            )
        })
        .layer(
            ServiceBuilder::new()
                .layer(axum::middleware::from_fn_with_state(
                    metrics,
                    middleware::observe,
                ))
                .layer(CatchPanicLayer::custom(|_| {
                    // The panic payload is never shown or logged: it could hold anything.
                    middleware::panic_response()
                }))
                .layer(TimeoutLayer::with_status_code(
                    axum::http::StatusCode::REQUEST_TIMEOUT,
                    limits.request_timeout,
                ))
                .layer(DefaultBodyLimit::max(limits.body_limit_bytes))
                .layer(security_header(
                    header::STRICT_TRANSPORT_SECURITY,
                    "max-age=63072000; includeSubDomains",
                ))
                .layer(security_header(header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
                .layer(security_header(header::X_FRAME_OPTIONS, "DENY"))
                .layer(security_header(
                    header::CONTENT_SECURITY_POLICY,
                    "default-src 'none'; frame-ancestors 'none'",
                ))
                .layer(security_header(header::REFERRER_POLICY, "no-referrer"))
                .layer(SetResponseHeaderLayer::if_not_present(
                    header::CACHE_CONTROL,
                    HeaderValue::from_static("no-store"),
                )),
        )
}

fn security_header(name: HeaderName, value: &'static str) -> SetResponseHeaderLayer<HeaderValue> {
    SetResponseHeaderLayer::overriding(name, HeaderValue::from_static(value))
}
