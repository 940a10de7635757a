//! The HSM going away under the running service and coming back, seen over
//! HTTP: card operations answer 503 `key_provider_unavailable` and store
//! nothing, readiness turns false, and both recover on their own.
//!
//! Its own test binary because it finalizes the process-wide PKCS#11
//! module; the outage is the same stand-in as in `tests/hsm_outage.rs` (a
//! `C_Finalize` behind the provider's back, then `C_Initialize` again).
//! The two databases run one after the other in one test, so no other test
//! in this process holds the module while it is finalized.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "api/helpers.rs"]
mod helpers;

use std::path::Path;
use std::time::Duration;

use cryptoki::context::{CInitializeArgs, CInitializeFlags};
use reqwest::StatusCode;
use serde_json::{Value, json};
use voltvault::auth::policy::Role;
use voltvault::auth::{Actor, Origin};
use voltvault::keys::pkcs11::module;
use voltvault::keys::testing::SOFTHSM_MODULE;
use voltvault::secret::SecretString;

use helpers::{Backend, TestApp, spawn_app};

const PASSWORD: &str = "outage-pass-2026";

fn card(number: &str) -> Value {
    json!({"card": {"number": number, "exp_month": 12, "exp_year": 2034}})
}

/// An API key and an admin session (fresh second factor) in one tenant.
async fn principals(app: &TestApp) -> (String, String) {
    let (cli, origin) = (Actor::cli(), Origin::cli());
    let tenant = app
        .auth
        .create_tenant("fleet", &cli, &origin)
        .await
        .unwrap()
        .id;
    let (_, key) = app
        .auth
        .create_api_key(tenant, "app", Role::App, None, &cli, &origin)
        .await
        .unwrap();
    let (_, totp) = app
        .auth
        .create_user(
            tenant,
            "admin-fleet",
            Role::Admin,
            &SecretString::new(PASSWORD.into()),
            &cli,
            &origin,
        )
        .await
        .unwrap();
    let totp = totp_rs::TOTP::from_url(totp.uri.as_str()).unwrap();
    let c = app.client();
    let login: Value = c
        .post(app.url("/v1/auth/login"))
        .json(&json!({"username": "admin-fleet", "password": PASSWORD}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mfa: Value = c
        .post(app.url("/v1/auth/mfa"))
        .json(&json!({"challenge": login["challenge"], "code": totp.generate_current().unwrap()}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    (
        key.expose_secret().to_owned(),
        mfa["session_token"].as_str().unwrap().to_owned(),
    )
}

async fn tokenize(app: &TestApp, key: &str, idem: &str, pan: &str) -> reqwest::Response {
    app.client()
        .post(app.url("/v1/tokens"))
        .bearer_auth(key)
        .header("idempotency-key", idem)
        .json(&card(pan))
        .send()
        .await
        .unwrap()
}

async fn detokenize(app: &TestApp, session: &str, token: &str) -> reqwest::Response {
    app.client()
        .post(app.url(&format!("/v1/tokens/{token}/detokenize")))
        .bearer_auth(session)
        .send()
        .await
        .unwrap()
}

async fn readyz(app: &TestApp) -> (StatusCode, Value) {
    let r = reqwest::get(app.ops_url("/readyz")).await.unwrap();
    (r.status(), r.json().await.unwrap())
}

/// Rows in the tokens table, counted in the database itself.
async fn token_rows(app: &TestApp) -> i64 {
    use sqlx::Connection;
    let sql = "SELECT COUNT(*) FROM tokens";
    match app.db.backend {
        Backend::Sqlite => {
            let mut c = sqlx::SqliteConnection::connect(&app.db.url).await.unwrap();
            sqlx::query_scalar(sql).fetch_one(&mut c).await.unwrap()
        }
        Backend::Postgres => {
            let mut c = sqlx::PgConnection::connect(&app.db.url).await.unwrap();
            sqlx::query_scalar(sql).fetch_one(&mut c).await.unwrap()
        }
    }
}

async fn assert_problem(response: reqwest::Response, code: &str) {
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    let problem: Value = response.json().await.unwrap();
    assert_eq!(problem["code"], code, "{problem}");
}

async fn outage_over_http(backend: Backend) {
    let app = spawn_app(backend).await;
    let (key, session) = principals(&app).await;
    let first = tokenize(&app, &key, "before", "4111111111111111").await;
    assert_eq!(first.status(), StatusCode::CREATED);
    let first: Value = first.json().await.unwrap();
    let token = first["token"].as_str().unwrap().to_owned();
    // The data key is now cached: detokenize would need no HSM call at all.
    assert_eq!(detokenize(&app, &session, &token).await.status(), 200);
    assert_eq!(readyz(&app).await.0, StatusCode::OK);
    assert_eq!(token_rows(&app).await, 1);

    // Outage.
    let ctx = module(Path::new(SOFTHSM_MODULE)).unwrap();
    ctx.clone().finalize().unwrap();

    assert_problem(
        tokenize(&app, &key, "during", "5555555555554444").await,
        "key_provider_unavailable",
    )
    .await;
    assert_eq!(token_rows(&app).await, 1, "a failed tokenize stored a row");
    assert_problem(
        detokenize(&app, &session, &token).await,
        "key_provider_unavailable",
    )
    .await;
    // Metadata needs no key: reading the token still works.
    let read = app
        .client()
        .get(app.url(&format!("/v1/tokens/{token}")))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(read.status(), 200);
    let (status, body) = readyz(&app).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["status"], "not_ready");
    assert_eq!(body["checks"]["keys"], "unavailable");
    assert_eq!(body["checks"]["database"], "ok");

    // The HSM returns; the provider reconnects after its backoff. Bounded
    // by attempts, not by time: the backoff doubles while down.
    ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK))
        .unwrap();
    let mut ready = false;
    for _ in 0..300 {
        if readyz(&app).await.0 == StatusCode::OK {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ready, "readiness did not return after the HSM came back");

    // The same idempotency key as the refused request: a 503 left no claim behind.
    let again = tokenize(&app, &key, "during", "5555555555554444").await;
    assert_eq!(again.status(), StatusCode::CREATED);
    let again: Value = again.json().await.unwrap();
    let response = detokenize(&app, &session, again["token"].as_str().unwrap()).await;
    assert_eq!(response.status(), 200);
    let back: Value = response.json().await.unwrap();
    assert_eq!(back["card"]["number"], "5555555555554444");
    assert_eq!(detokenize(&app, &session, &token).await.status(), 200);
    assert_eq!(token_rows(&app).await, 2);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hsm_loss_gives_503_and_not_ready_then_recovers() {
    outage_over_http(Backend::Sqlite).await;
    outage_over_http(Backend::Postgres).await;
}
