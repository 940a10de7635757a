//! The operations listener (plain HTTP, loopback by default): liveness,
//! readiness and Prometheus metrics. It carries no card data and no API.

use std::sync::Arc;

use async_trait::async_trait;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;

use super::metrics::Metrics;
use crate::store::Store;

/// Something the service needs before it can take traffic.
#[async_trait]
pub trait ReadinessCheck: Send + Sync {
    fn name(&self) -> &'static str;
    async fn ready(&self) -> bool;
}

pub struct StoreReadiness(pub Arc<dyn Store>);

#[async_trait]
impl ReadinessCheck for StoreReadiness {
    fn name(&self) -> &'static str {
        "database"
    }

    async fn ready(&self) -> bool {
        self.0.ping().await.is_ok()
    }
}

pub struct KeyProviderReadiness(pub Arc<dyn crate::keys::KeyProvider>);

#[async_trait]
impl ReadinessCheck for KeyProviderReadiness {
    fn name(&self) -> &'static str {
        "keys"
    }

    async fn ready(&self) -> bool {
        self.0.health().await
    }
}

#[derive(Clone)]
struct OpsState {
    metrics: Arc<Metrics>,
    checks: Arc<Vec<Arc<dyn ReadinessCheck>>>,
}

pub fn ops_router(metrics: Arc<Metrics>, checks: Vec<Arc<dyn ReadinessCheck>>) -> Router {
    Router::new()
        .route(
            "/healthz",
            get(|| async { axum::Json(json!({"status": "ok"})) }),
        )
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .with_state(OpsState {
            metrics,
            checks: Arc::new(checks),
        })
}

async fn readyz(State(state): State<OpsState>) -> Response {
    let mut all_ready = true;
    let mut checks = serde_json::Map::new();
    for check in state.checks.iter() {
        let ready = check.ready().await;
        all_ready &= ready;
        checks.insert(
            check.name().into(),
            json!(if ready { "ok" } else { "unavailable" }),
        );
    }
    let status = if all_ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        axum::Json(
            json!({"status": if all_ready { "ready" } else { "not_ready" }, "checks": checks}),
        ),
    )
        .into_response()
}

async fn metrics_text(State(state): State<OpsState>) -> Response {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.render(),
    )
        .into_response()
}
