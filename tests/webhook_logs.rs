//! A webhook's signing secret appears in no log line, at every level, while
//! an endpoint is created, a session completes and its event is delivered
//! (and once more when the endpoint refuses it and it is retried).
//!
//! Its own test binary because it installs the process-wide log subscriber:
//! a thread-local one misses events whose callsites other tests' threads
//! registered first.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "api/helpers.rs"]
mod helpers;

use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::StatusCode as AxumStatus;
use serde_json::{Value, json};
use voltvault::auth::policy::Role;
use voltvault::auth::{Actor, Origin};

use helpers::{Backend, contains_bytes, spawn_app_with};

const CARD: &str = "4242424242424242";

#[derive(Clone, Default)]
struct LogBuffer(Arc<Mutex<Vec<u8>>>);

impl Write for LogBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn the_webhook_secret_is_never_logged() {
    use tracing_subscriber::util::SubscriberInitExt;
    let logs = LogBuffer::default();
    let writer = logs.clone();
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish()
        .try_init()
        .unwrap();

    let app = spawn_app_with(
        Backend::Sqlite,
        |c| {
            c.notifications.worker_interval_ms = 50;
            c.notifications.backoff_base_ms = 50;
        },
        None,
    )
    .await;
    let (cli, origin) = (Actor::cli(), Origin::cli());
    let tenant = app
        .auth
        .create_tenant("logscan", &cli, &origin)
        .await
        .unwrap()
        .id;
    app.auth
        .register_charger_ca(tenant, "chargers", &app.pki.ca_pem, &cli, &origin)
        .await
        .unwrap();
    let (_, key) = app
        .auth
        .create_api_key(tenant, "app", Role::App, None, &cli, &origin)
        .await
        .unwrap();
    let client = app.bearer_client(key.expose_secret());
    let charger = app.charger_client();

    // Refuses the first delivery, so the retry path logs too.
    let calls = Arc::new(AtomicUsize::new(0));
    let seen = calls.clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let receiver = axum::Router::new().route(
        "/hook",
        axum::routing::post(move || async move {
            if seen.fetch_add(1, Ordering::SeqCst) == 0 {
                AxumStatus::SERVICE_UNAVAILABLE
            } else {
                AxumStatus::OK
            }
        }),
    );
    tokio::spawn(async move {
        let _ = axum::serve(listener, receiver).await;
    });

    let hook: Value = client
        .post(app.url("/v1/webhooks"))
        .json(&json!({"url": format!("http://{addr}/hook"), "events": ["session.completed"]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let secret = hook["secret"].as_str().unwrap().to_owned();
    let hook_id = hook["id"].as_str().unwrap().to_owned();

    let session: Value = charger
        .post(app.url("/v1/payment-sessions"))
        .header("idempotency-key", "log-1")
        .json(&json!({
            "evse_id": "DE*VVT*E0001*1",
            "connector_id": "1",
            "tariff_id": "standard",
            "payment_method": {"card": {"number": CARD, "exp_month": 12, "exp_year": 2039, "cvc": "123"}},
            "hold": {"value": 5000, "currency": "EUR"},
        }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = session["id"].as_str().unwrap();
    let done: Value = charger
        .post(app.url(&format!("/v1/payment-sessions/{id}/complete")))
        .header("idempotency-key", "log-1-c")
        .json(&json!({"energy_wh": 5000, "at": "2026-11-25T10:20:00Z"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(done["status"], "completed", "{done}");

    let mut delivered = false;
    for _ in 0..200 {
        let log: Vec<Value> = client
            .get(app.url(&format!("/v1/webhooks/{hook_id}/deliveries")))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if log.first().is_some_and(|d| d["state"] == "delivered") {
            delivered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(delivered);
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    app.stop().await;

    let logged = logs.0.lock().unwrap().clone();
    assert!(contains_bytes(
        &logged,
        b"webhook delivery failed; will retry"
    ));
    assert!(!contains_bytes(&logged, secret.as_bytes()), "secret logged");
    assert!(
        !contains_bytes(&logged, &secret.as_bytes()[6..]),
        "secret logged"
    );
    assert!(!contains_bytes(&logged, CARD.as_bytes()), "card logged");
}
