//! The HTTP edge: TLS and mTLS, bad input, problem documents, headers,
//! limits, metrics, readiness and graceful shutdown.

use std::time::Duration;

use axum::Router;
use axum::routing::{get, post};
use reqwest::StatusCode;
use serde::Deserialize;
use serde_json::Value;
use voltvault::config::ClientAuth;
use voltvault::http::extract::Json;

use crate::helpers::{Backend, TestApp, spawn_app, spawn_app_with};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct Echo {
    name: String,
    amount: u32,
}

/// Routes that exist only in these tests, mounted behind the real layers, to
/// reach a JSON body, a slow handler and a panicking one.
fn test_routes() -> Router {
    Router::new()
        .route(
            "/test/echo",
            post(|Json(body): Json<Echo>| async move { body.name }),
        )
        .route(
            "/test/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_millis(1500)).await;
                "done"
            }),
        )
        .route(
            "/test/panic",
            get(|| async {
                let secret = std::hint::black_box("4111111111111111");
                if !secret.is_empty() {
                    panic!("boom with {secret}");
                }
                "unreachable"
            }),
        )
}

async fn app_with_test_routes(backend: Backend) -> TestApp {
    spawn_app_with(
        backend,
        |c| c.server.request_timeout_secs = 1,
        Some(test_routes()),
    )
    .await
}

async fn problem(response: reqwest::Response) -> (StatusCode, Value) {
    let status = response.status();
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json",
        "status {status}"
    );
    let header_id = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["request_id"], header_id.as_str(), "{body}");
    assert_eq!(body["status"], status.as_u16());
    (status, body)
}

#[tokio::test]
async fn healthz_answers_over_tls_with_security_headers() {
    let app = spawn_app(Backend::Sqlite).await;
    let response = app.client().get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let h = response.headers();
    assert_eq!(h["cache-control"], "no-store");
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert_eq!(h["x-frame-options"], "DENY");
    assert!(
        h["strict-transport-security"]
            .to_str()
            .unwrap()
            .contains("max-age=")
    );
    assert!(h.contains_key("x-request-id"));
    app.stop().await;
}

#[tokio::test]
async fn bad_input_gets_problem_documents_with_stable_codes() {
    let app = app_with_test_routes(Backend::Sqlite).await;
    let c = app.client();
    let url = app.url("/test/echo");

    let (status, body) = problem(
        c.post(&url)
            .header("content-type", "application/json")
            .body("{\"name\": ")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("malformed_json"))
    );

    let (status, body) = problem(c.post(&url).body("name=x").send().await.unwrap()).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Some("unsupported_media_type")
        )
    );

    let (status, body) = problem(
        c.post(&url)
            .json(&serde_json::json!({"name": "x", "amount": 1, "pan": "4111111111111111"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_body"))
    );
    assert!(body["detail"].as_str().unwrap().contains("pan"), "{body}");

    let (status, body) = problem(
        c.post(&url)
            .json(&serde_json::json!({"name": "4111111111111111", "amount": "4111111111111111"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(!body.to_string().contains("4111111111111111"), "{body}");

    let big = format!("{{\"name\": \"{}\", \"amount\": 1}}", "x".repeat(20_000));
    let (status, body) = problem(
        c.post(&url)
            .header("content-type", "application/json")
            .body(big)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::PAYLOAD_TOO_LARGE, Some("payload_too_large"))
    );

    let (status, body) = problem(c.get(app.url("/v1/nothing-here")).send().await.unwrap()).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("not_found"))
    );

    let (status, body) = problem(c.delete(app.url("/healthz")).send().await.unwrap()).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::METHOD_NOT_ALLOWED, Some("method_not_allowed"))
    );

    // A good request still works after all that.
    let ok = c
        .post(&url)
        .json(&serde_json::json!({"name": "ok", "amount": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    assert_eq!(ok.text().await.unwrap(), "ok");
    app.stop().await;
}

#[tokio::test]
async fn a_panic_is_a_500_that_says_nothing_and_the_server_lives_on() {
    let app = app_with_test_routes(Backend::Sqlite).await;
    let (status, body) = problem(
        app.client()
            .get(app.url("/test/panic"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::INTERNAL_SERVER_ERROR, Some("internal_error"))
    );
    assert!(!body.to_string().contains("boom"), "{body}");
    assert!(!body.to_string().contains("4111"), "{body}");
    let again = app.client().get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(again.status(), 200);
    app.stop().await;
}

#[tokio::test]
async fn a_slow_request_times_out_with_408() {
    let app = app_with_test_routes(Backend::Sqlite).await;
    let (status, body) = problem(
        app.client()
            .get(app.url("/test/slow"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::REQUEST_TIMEOUT, Some("request_timeout"))
    );
    app.stop().await;
}

#[tokio::test]
async fn plain_http_on_the_tls_port_gets_a_400() {
    let app = spawn_app(Backend::Sqlite).await;
    let response = reqwest::get(format!("http://{}/healthz", app.addr))
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["code"], "tls_required");
    app.stop().await;
}

#[tokio::test]
async fn a_verified_client_certificate_reaches_handlers() {
    let app = spawn_app(Backend::Sqlite).await;
    let body: Value = app
        .charger_client()
        .get(app.url("/v1/whoami"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        body["client_certificate"]["subject"]
            .as_str()
            .unwrap()
            .contains("CN=charger-7"),
        "{body}"
    );
    assert_eq!(
        body["client_certificate"]["sha256"].as_str().unwrap().len(),
        64
    );
    let anonymous: Value = app
        .client()
        .get(app.url("/v1/whoami"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(anonymous["client_certificate"].is_null());
    // Optional mTLS still refuses a certificate it cannot verify.
    assert!(
        app.foreign_client()
            .get(app.url("/v1/whoami"))
            .send()
            .await
            .is_err()
    );
    app.stop().await;
}

#[tokio::test]
async fn required_client_certificates_refuse_clients_without_one() {
    let app = spawn_app_with(
        Backend::Sqlite,
        |c| c.tls.client_auth = ClientAuth::Required,
        None,
    )
    .await;
    assert!(app.client().get(app.url("/healthz")).send().await.is_err());
    assert!(
        app.foreign_client()
            .get(app.url("/healthz"))
            .send()
            .await
            .is_err()
    );
    let ok = app
        .charger_client()
        .get(app.url("/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    app.stop().await;
}

#[tokio::test]
async fn tls_1_2_and_http_1_1_work_too() {
    let app = spawn_app(Backend::Sqlite).await;
    let client = reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(app.pki.ca_pem.as_bytes()).unwrap())
        .resolve("localhost", app.addr)
        .max_tls_version(reqwest::tls::Version::TLS_1_2)
        .http1_only()
        .build()
        .unwrap();
    let body: Value = client
        .get(app.url("/v1/whoami"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["tls_version"], "TLSv1.2");
    app.stop().await;
}

#[tokio::test]
async fn openapi_document_is_served() {
    let app = spawn_app(Backend::Sqlite).await;
    let doc: Value = app
        .client()
        .get(app.url("/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    assert!(doc["paths"]["/v1/whoami"]["get"].is_object());
    app.stop().await;
}

async fn ops_listener_reports_health_readiness_and_metrics(backend: Backend) {
    let app = spawn_app(backend).await;
    app.client().get(app.url("/healthz")).send().await.unwrap();
    app.client()
        .get(app.url("/v1/nothing/4111111111111111"))
        .send()
        .await
        .unwrap();
    let health = reqwest::get(app.ops_url("/healthz")).await.unwrap();
    assert_eq!(health.status(), 200);
    let ready: Value = reqwest::get(app.ops_url("/readyz"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ready["checks"]["database"], "ok");
    let metrics = reqwest::get(app.ops_url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(
            r#"voltvault_http_requests_total{method="GET",route="/healthz",status="200"} 1"#
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"route="unmatched",status="404""#),
        "{metrics}"
    );
    assert!(
        !metrics.contains("4111"),
        "a path became a label: {metrics}"
    );

    // With the database gone, the node says it is not ready.
    app.store.close().await;
    let not_ready = reqwest::get(app.ops_url("/readyz")).await.unwrap();
    assert_eq!(not_ready.status(), 503);
    app.stop().await;
}

#[tokio::test]
async fn shutdown_lets_a_request_in_flight_finish_and_then_refuses_new_ones() {
    let app = spawn_app_with(Backend::Sqlite, |_| {}, Some(test_routes())).await;
    let client = app.client();
    let slow = tokio::spawn({
        let client = client.clone();
        let url = app.url("/test/slow");
        async move { client.get(url).send().await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let url = app.url("/healthz");
    app.stop().await;
    let finished = slow.await.unwrap().unwrap();
    assert_eq!(finished.status(), 200);
    assert_eq!(finished.text().await.unwrap(), "done");
    assert!(reqwest::Client::new().get(url).send().await.is_err());
}

crate::on_both_databases!(ops_listener_reports_health_readiness_and_metrics);
