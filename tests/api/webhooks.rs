//! Webhooks end to end, on both databases: a receiver on loopback (plain
//! HTTP, development mode) gets signed events for simulator sessions;
//! retries, dead letters, and bad input. The signing secret is shown once
//! and is not in the SQLite file (nor in the logs: tests/webhook_logs.rs).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode as AxumStatus};
use reqwest::StatusCode;
use serde_json::{Value, json};
use voltvault::auth::policy::Role;
use voltvault::auth::{Actor, Origin};
use voltvault::clock::{Clock, SystemClock};
use voltvault::config::{Config, Mode};

use crate::helpers::{Backend, contains_bytes, read_all_files_under};
use crate::payments::{APPROVE, Charging, card, charging};

/// A webhook receiver: fails the first `fail_first` requests (or all),
/// records every request.
#[derive(Default)]
pub struct Receiver {
    fail_first: usize,
    always_fail: bool,
    calls: Mutex<Vec<(HeaderMap, Bytes)>>,
}

impl Receiver {
    pub fn calls(&self) -> Vec<(HeaderMap, Bytes)> {
        self.calls.lock().unwrap().clone()
    }
}

async fn receive(State(r): State<Arc<Receiver>>, headers: HeaderMap, body: Bytes) -> AxumStatus {
    let n = {
        let mut calls = r.calls.lock().unwrap();
        calls.push((headers, body));
        calls.len()
    };
    if r.always_fail || n <= r.fail_first {
        AxumStatus::INTERNAL_SERVER_ERROR
    } else {
        AxumStatus::NO_CONTENT
    }
}

/// Serves `receiver` on 127.0.0.1:0; returns its URL.
pub async fn serve(receiver: Arc<Receiver>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new()
        .route("/hook", axum::routing::post(receive))
        .with_state(receiver);
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    format!("http://{addr}/hook")
}

/// Deliveries every 50 ms, backoff from 50 ms, three attempts.
pub fn fast_deliveries(c: &mut Config) {
    c.notifications.worker_interval_ms = 50;
    c.notifications.backoff_base_ms = 50;
    c.notifications.max_attempts = 3;
}

/// An app API key of the charging tenant, as a client.
async fn app_client(w: &Charging) -> reqwest::Client {
    let (_, key) = w
        .app
        .auth
        .create_api_key(
            w.tenant,
            "app",
            Role::App,
            None,
            &Actor::cli(),
            &Origin::cli(),
        )
        .await
        .unwrap();
    w.app.bearer_client(key.expose_secret())
}

pub async fn create_webhook(
    w: &Charging,
    client: &reqwest::Client,
    url: &str,
    events: &[&str],
) -> (StatusCode, Value) {
    let r = client
        .post(w.app.url("/v1/webhooks"))
        .json(&json!({"url": url, "events": events}))
        .send()
        .await
        .unwrap();
    (r.status(), r.json().await.unwrap_or(Value::Null))
}

async fn delivery_log(w: &Charging, client: &reqwest::Client, id: &str) -> Vec<Value> {
    let r = client
        .get(w.app.url(&format!("/v1/webhooks/{id}/deliveries")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    r.json::<Vec<Value>>().await.unwrap()
}

/// Polls the delivery log until its one delivery leaves `pending`.
async fn settled(w: &Charging, client: &reqwest::Client, id: &str) -> Value {
    for _ in 0..600 {
        let log = delivery_log(w, client, id).await;
        if let [only] = log.as_slice()
            && only["state"] != "pending"
        {
            return only.clone();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the delivery never settled");
}

/// A session that is held and completed for 10 kWh; returns it.
async fn completed_session(w: &Charging, key: &str) -> Value {
    let (status, s) = w.open(key, card(APPROVE), 5000).await;
    assert_eq!(status, StatusCode::CREATED, "{s}");
    let id = s["id"].as_str().unwrap().to_owned();
    let (status, m) = w.meter(&id, &format!("{key}-m0"), 0, 0).await;
    assert_eq!(status, StatusCode::OK, "{m}");
    let (status, done) = w.complete(&id, 10_000, 20).await;
    assert_eq!(status, StatusCode::OK, "{done}");
    assert_eq!(done["status"], "completed");
    done
}

async fn a_completed_session_is_delivered_signed_with_the_shown_secret(backend: Backend) {
    let w = charging(backend, fast_deliveries).await;
    let client = app_client(&w).await;
    let receiver = Arc::new(Receiver::default());
    let url = serve(receiver.clone()).await;
    let (status, hook) =
        create_webhook(&w, &client, &url, &["session.completed", "payment.failed"]).await;
    assert_eq!(status, StatusCode::CREATED, "{hook}");
    let secret = hook["secret"].as_str().unwrap().to_owned();
    assert!(
        secret.starts_with("whsec_") && secret.len() == 6 + 64,
        "{secret}"
    );
    let hook_id = hook["id"].as_str().unwrap().to_owned();

    // The list never shows the secret.
    let listed: Value = client
        .get(w.app.url("/v1/webhooks"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed[0]["id"], hook_id.as_str());
    assert_eq!(listed[0]["url"], url.as_str());
    assert!(!listed.to_string().contains(&secret));

    let done = completed_session(&w, "wh-1").await;
    let delivery = settled(&w, &client, &hook_id).await;
    assert_eq!(delivery["state"], "delivered", "{delivery}");
    assert_eq!(delivery["attempts"], 1);
    assert_eq!(delivery["last_status_code"], 204);
    assert_eq!(delivery["event_type"], "session.completed");
    assert!(delivery.get("next_attempt_at").is_none());

    let calls = receiver.calls();
    assert_eq!(calls.len(), 1);
    let (headers, body) = &calls[0];
    let signature = headers["voltvault-signature"].to_str().unwrap();
    let (t, mac) = signature
        .strip_prefix("t=")
        .and_then(|s| s.split_once(",v1="))
        .unwrap();
    // Verified the way a receiver would, with the secret shown on creation.
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
    let mut signed = format!("{t}.").into_bytes();
    signed.extend_from_slice(body);
    ring::hmac::verify(&key, &signed, &hex::decode(mac).unwrap()).expect("valid signature");
    assert_eq!(
        voltvault::notify::signature::verify(secret.as_bytes(), signature, body),
        t.parse().ok()
    );
    assert_eq!(headers["voltvault-event"], "session.completed");
    assert_eq!(
        headers["voltvault-delivery"],
        delivery["id"].as_str().unwrap()
    );
    assert_eq!(headers["content-type"], "application/json");

    let event: Value = serde_json::from_slice(body).unwrap();
    assert_eq!(event["type"], "session.completed");
    assert_eq!(event["data"]["session_id"], done["id"]);
    assert_eq!(event["data"]["captured_amount"], done["captured_amount"]);
    assert!(done["captured_amount"]["value"].as_i64().unwrap() > 0);
    assert_eq!(event["data"]["energy_wh"], done["energy_wh"]);
    assert_eq!(event["data"]["receipt_id"], done["receipt_id"]);
    assert_eq!(delivery["event_id"], event["id"]);
    // No card data, not even the token.
    let text = String::from_utf8_lossy(body);
    assert!(!text.contains(APPROVE) && !text.contains("4242"), "{text}");
    assert!(!text.contains(done["token"].as_str().unwrap()));

    // The secret is nowhere but in that one answer (the logs are scanned
    // in tests/webhook_logs.rs, which owns the process-wide subscriber).
    if let Some(path) = w.app.db.sqlite_path() {
        let files = read_all_files_under(path.parent().unwrap());
        assert!(!files.is_empty());
        assert!(!contains_bytes(&files, secret.as_bytes()));
        assert!(!contains_bytes(&files, &secret.as_bytes()[6..]));
    }
    w.app.stop().await;
}

async fn a_receiver_that_fails_twice_gets_it_on_the_third_attempt(backend: Backend) {
    let w = charging(backend, fast_deliveries).await;
    let client = app_client(&w).await;
    let receiver = Arc::new(Receiver {
        fail_first: 2,
        ..Receiver::default()
    });
    let url = serve(receiver.clone()).await;
    let (_, hook) = create_webhook(&w, &client, &url, &["session.completed"]).await;
    let hook_id = hook["id"].as_str().unwrap().to_owned();
    completed_session(&w, "wh-2").await;
    let delivery = settled(&w, &client, &hook_id).await;
    assert_eq!(delivery["state"], "delivered", "{delivery}");
    assert_eq!(delivery["attempts"], 3);
    assert_eq!(delivery["last_status_code"], 204);
    let calls = receiver.calls();
    assert_eq!(calls.len(), 3);
    // Every attempt is the same delivery of the same body.
    assert!(calls.iter().all(|(h, b)| {
        h["voltvault-delivery"] == calls[0].0["voltvault-delivery"] && *b == calls[0].1
    }));
    w.app.stop().await;
}

async fn a_receiver_that_always_fails_ends_dead(backend: Backend) {
    let w = charging(backend, fast_deliveries).await;
    let client = app_client(&w).await;
    let receiver = Arc::new(Receiver {
        always_fail: true,
        ..Receiver::default()
    });
    let url = serve(receiver.clone()).await;
    let (_, hook) = create_webhook(&w, &client, &url, &["session.completed"]).await;
    let hook_id = hook["id"].as_str().unwrap().to_owned();
    completed_session(&w, "wh-3").await;
    let delivery = settled(&w, &client, &hook_id).await;
    assert_eq!(delivery["state"], "dead", "{delivery}");
    assert_eq!(delivery["attempts"], 3);
    assert_eq!(delivery["last_status_code"], 500);
    assert_eq!(delivery["last_error"], "status");
    // Dead is final: nothing more is sent.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(receiver.calls().len(), 3);
    w.app.stop().await;
}

async fn a_declined_session_emits_exactly_one_payment_failed(backend: Backend) {
    let w = charging(backend, fast_deliveries).await;
    let client = app_client(&w).await;
    let receiver = Arc::new(Receiver::default());
    let url = serve(receiver.clone()).await;
    let (_, hook) =
        create_webhook(&w, &client, &url, &["payment.failed", "session.completed"]).await;
    let hook_id = hook["id"].as_str().unwrap().to_owned();
    let (status, s) = w.open("wh-4", card("4000000000009995"), 5000).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(s["status"], "declined");
    // The retried request is the same session, and no second event.
    let (_, again) = w.open("wh-4", card("4000000000009995"), 5000).await;
    assert_eq!(again["id"], s["id"]);
    let delivery = settled(&w, &client, &hook_id).await;
    assert_eq!(delivery["state"], "delivered");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let calls = receiver.calls();
    assert_eq!(calls.len(), 1);
    assert_eq!(delivery_log(&w, &client, &hook_id).await.len(), 1);
    let event: Value = serde_json::from_slice(&calls[0].1).unwrap();
    assert_eq!(event["type"], "payment.failed");
    assert_eq!(
        event["id"],
        format!("evt_{}_payment_failed", s["id"].as_str().unwrap())
    );
    assert_eq!(event["data"]["session_id"], s["id"]);
    assert_eq!(event["data"]["status"], "declined");
    assert_eq!(event["data"]["decline_code"], "insufficient_funds");
    assert_eq!(event["data"]["step"], "authorize");
    assert_eq!(event["data"]["error_code"], "payment_declined");
    assert!(!String::from_utf8_lossy(&calls[0].1).contains("9995"));
    // A bare card has no account to mail.
    assert_eq!(w.app.db.count_rows("mail_outbox").await, 0);
    w.app.stop().await;
}

/// A capture that fails for certain ends the session `failed` with one
/// `payment.failed` naming the step, and the account's driver gets one
/// mail. The fault is a real one: the session pays from its account's
/// wallet, and its wallet hold is released behind it (as a hold at an
/// acquirer can lapse), so the wallet ledger refuses the capture with
/// `wrong_state`. (A failed release takes the same path in
/// `PaymentService::apply`; `notify::events` tests its event.)
async fn a_failed_capture_emits_one_payment_failed_and_mails_the_driver(backend: Backend) {
    use crate::smtp_sink::{Relay, body, subject};
    let relay = Relay::start().await;
    let w = charging(backend, |c| {
        fast_deliveries(c);
        c.notifications.smtp = Some(relay.config.clone());
    })
    .await;
    let client = app_client(&w).await;
    let receiver = Arc::new(Receiver::default());
    let url = serve(receiver.clone()).await;
    let (_, hook) = create_webhook(
        &w,
        &client,
        &url,
        &["payment.failed", "session.completed", "receipt.ready"],
    )
    .await;
    let hook_id = hook["id"].as_str().unwrap().to_owned();
    let (account, _) = crate::accounts::driver_with_card(&w, &client, "cf").await;
    crate::wallets::open_wallet(&w, &client, &account, 0, true).await;
    let (status, _) = crate::wallets::top_up(&w, &client, &account, "cf-t", 5000).await;
    assert_eq!(status, StatusCode::CREATED);

    // A session paid from the wallet, metered; then its wallet hold is
    // released behind its back.
    let (status, s) = w
        .open("cf-1", json!({"rfid_uid": "04A2B3C4D5E6F7"}), 2000)
        .await;
    assert_eq!(status, StatusCode::CREATED, "{s}");
    assert_eq!(s["status"], "authorized", "{s}");
    let id = s["id"].as_str().unwrap().to_owned();
    let (status, m) = w.meter(&id, "cf-1-m0", 0, 0).await;
    assert_eq!(status, StatusCode::OK, "{m}");
    let hold = w.app.store.wallet_hold(None, Some(&id)).await.unwrap();
    w.app
        .store
        .release_wallet_hold(&hold.id, "cf-1-lapsed", SystemClock.now())
        .await
        .unwrap()
        .unwrap();

    // The capture fails; the charger's retry is the same answer.
    let (status, failed) = w.complete(&id, 10_000, 20).await;
    assert_eq!(status, StatusCode::OK, "{failed}");
    assert_eq!(failed["status"], "failed", "{failed}");
    assert!(failed.get("captured_amount").is_none(), "{failed}");
    let (_, again) = w.complete(&id, 10_000, 20).await;
    assert_eq!(again["status"], "failed", "{again}");

    let delivery = settled(&w, &client, &hook_id).await;
    assert_eq!(delivery["event_type"], "payment.failed");
    assert_eq!(delivery["state"], "delivered");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(delivery_log(&w, &client, &hook_id).await.len(), 1);
    let calls = receiver.calls();
    assert_eq!(calls.len(), 1);
    let event: Value = serde_json::from_slice(&calls[0].1).unwrap();
    assert_eq!(event["type"], "payment.failed");
    assert_eq!(event["id"], format!("evt_{id}_payment_failed"));
    let data = &event["data"];
    assert_eq!(data["session_id"], id.as_str());
    assert_eq!(data["status"], "failed");
    assert_eq!(data["step"], "capture");
    assert_eq!(data["error_code"], "wrong_state");
    assert_eq!(data["decline_code"], Value::Null);
    assert_eq!(data["hold"]["value"], 2000);
    assert_eq!(data["evse_id"], "DE*VVT*E0001*1");

    let mails = relay.wait_for("could not be completed", 1).await;
    assert_eq!(mails.len(), 1, "{mails:?}");
    assert!(mails[0].contains("dana@example.com"));
    assert!(
        body(&mails[0]).contains("No money was taken"),
        "{}",
        mails[0]
    );

    // That one mail and nothing else (no receipt), and no card data.
    let messages = relay.sink.messages();
    assert_eq!(messages.len(), 1, "{messages:?}");
    for m in &messages {
        assert!(!m.contains(APPROVE), "{m}");
        assert!(subject(m).is_some());
    }
    w.app.stop().await;
}

async fn a_completed_session_makes_its_receipt_ready_exactly_once(backend: Backend) {
    let w = charging(backend, fast_deliveries).await;
    let client = app_client(&w).await;
    let receiver = Arc::new(Receiver::default());
    let url = serve(receiver.clone()).await;
    let (_, hook) = create_webhook(&w, &client, &url, &["receipt.ready"]).await;
    let hook_id = hook["id"].as_str().unwrap().to_owned();
    let done = completed_session(&w, "wh-r").await;
    let id = done["id"].as_str().unwrap().to_owned();
    // The charger retries its complete: same session, no second event.
    let (status, again) = w.complete(&id, 10_000, 20).await;
    assert_eq!(status, StatusCode::OK, "{again}");
    let delivery = settled(&w, &client, &hook_id).await;
    assert_eq!(delivery["state"], "delivered", "{delivery}");
    assert_eq!(delivery["event_type"], "receipt.ready");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let calls = receiver.calls();
    assert_eq!(calls.len(), 1);
    assert_eq!(delivery_log(&w, &client, &hook_id).await.len(), 1);
    let (headers, body) = &calls[0];
    assert_eq!(headers["voltvault-event"], "receipt.ready");
    let event: Value = serde_json::from_slice(body).unwrap();
    assert_eq!(event["type"], "receipt.ready");
    assert_eq!(event["id"], format!("evt_{id}_receipt_ready"));
    let data = &event["data"];
    assert_eq!(data["receipt_id"], done["receipt_id"]);
    assert_eq!(data["session_id"], done["id"]);
    assert_eq!(data["total"], done["captured_amount"]);
    assert_eq!(data["currency"], "EUR");
    // The URL it names answers with the receipt, and the totals agree.
    let receipt_url = data["url"].as_str().unwrap();
    assert_eq!(
        receipt_url,
        format!("/v1/receipts/{}", done["receipt_id"].as_str().unwrap())
    );
    let r = client.get(w.app.url(receipt_url)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let receipt: Value = r.json().await.unwrap();
    assert_eq!(receipt["total_incl_vat"], data["total"]);
    assert_eq!(receipt["id"], data["receipt_id"]);
    // No card data, not even the token or the last four.
    let text = String::from_utf8_lossy(body);
    assert!(!text.contains(APPROVE) && !text.contains("4242"), "{text}");
    assert!(!text.contains(done["token"].as_str().unwrap()));
    w.app.stop().await;
}

async fn an_endpoint_gets_only_the_events_it_subscribed_to(backend: Backend) {
    let w = charging(backend, fast_deliveries).await;
    let client = app_client(&w).await;
    let receiver = Arc::new(Receiver::default());
    let url = serve(receiver.clone()).await;
    let (_, hook) = create_webhook(&w, &client, &url, &["invoice.issued"]).await;
    let hook_id = hook["id"].as_str().unwrap().to_owned();
    completed_session(&w, "wh-5").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(receiver.calls().is_empty());
    assert!(delivery_log(&w, &client, &hook_id).await.is_empty());
    // Deleted, it is gone with its log.
    let r = client
        .delete(w.app.url(&format!("/v1/webhooks/{hook_id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(w.app.db.count_rows("webhooks").await, 0);
    w.app.stop().await;
}

async fn bad_input_gets_stable_codes_and_stores_nothing(backend: Backend) {
    let w = charging(backend, fast_deliveries).await;
    let client = app_client(&w).await;
    let ok_url = "http://127.0.0.1:9/hook";
    let cases: &[(Value, StatusCode, &str)] = &[
        (
            json!({"url": "http://hooks.example.com/x", "events": ["session.completed"]}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "insecure_webhook_url",
        ),
        (
            json!({"url": "ftp://hooks.example.com/x", "events": ["session.completed"]}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_webhook_url",
        ),
        (
            json!({"url": "https://user:pw@hooks.example.com/x", "events": ["session.completed"]}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_webhook_url",
        ),
        (
            json!({"url": ok_url, "events": ["session.started"]}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown_event_type",
        ),
        (
            json!({"url": ok_url, "events": []}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_event_types",
        ),
    ];
    for (body, status, code) in cases {
        let r = client
            .post(w.app.url("/v1/webhooks"))
            .json(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), *status, "{body}");
        let problem: Value = r.json().await.unwrap();
        assert_eq!(problem["code"], *code, "{body}");
    }
    assert_eq!(w.app.db.count_rows("webhooks").await, 0);

    // A charger may not manage webhooks.
    let r = w
        .charger
        .post(w.app.url("/v1/webhooks"))
        .json(&json!({"url": ok_url, "events": ["session.completed"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);

    // Another tenant's endpoint does not exist for this one.
    let (status, hook) = create_webhook(&w, &client, ok_url, &["session.completed"]).await;
    assert_eq!(status, StatusCode::CREATED);
    let hook_id = hook["id"].as_str().unwrap().to_owned();
    let other = w
        .app
        .auth
        .create_tenant("elsewhere", &Actor::cli(), &Origin::cli())
        .await
        .unwrap()
        .id;
    let (_, other_key) = w
        .app
        .auth
        .create_api_key(other, "app", Role::App, None, &Actor::cli(), &Origin::cli())
        .await
        .unwrap();
    let stranger = w.app.bearer_client(other_key.expose_secret());
    for r in [
        stranger
            .get(w.app.url(&format!("/v1/webhooks/{hook_id}/deliveries")))
            .send()
            .await
            .unwrap(),
        stranger
            .delete(w.app.url(&format!("/v1/webhooks/{hook_id}")))
            .send()
            .await
            .unwrap(),
        stranger
            .delete(w.app.url("/v1/webhooks/not-an-id"))
            .send()
            .await
            .unwrap(),
    ] {
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
        assert_eq!(
            r.json::<Value>().await.unwrap()["code"],
            "webhook_not_found"
        );
    }
    let theirs: Value = stranger
        .get(w.app.url("/v1/webhooks"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(theirs, json!([]));
    assert_eq!(w.app.db.count_rows("webhooks").await, 1);
    w.app.stop().await;
}

/// Production mode, through the service on a real store (a production
/// instance needs a recorded KEK, which `spawn_app` does not make): plain
/// HTTP and private hosts are refused, nothing is stored; an audit trail
/// that fails refuses a creation too (fail closed).
async fn production_mode_refuses_plain_http_and_private_hosts(backend: Backend) {
    use voltvault::notify::webhooks::{WebhookError, WebhookService};
    let db = crate::helpers::TestDb::new(backend).await;
    let store = db.store().await;
    let tenant = voltvault::tenants::Tenant {
        id: voltvault::ids::TenantId::generate(),
        name: voltvault::tenants::TenantName::parse("prod").unwrap(),
        created_at: chrono::DateTime::from_timestamp(1_764_000_000, 0).unwrap(),
    };
    store.insert_tenant(&tenant).await.unwrap();
    let audit = crate::audit_double::RecordingAudit::default();
    let service = WebhookService::new(
        store.clone(),
        Arc::new(voltvault::auth::keys::PepperKeys::from_bytes(&[7u8; 32]).unwrap()),
        Arc::new(audit.clone()),
        voltvault::clock::Environment::system(),
        Mode::Production,
    );
    let caller = voltvault::tokens::service::Caller {
        tenant: tenant.id,
        actor_kind: voltvault::audit::ActorKind::Staff,
        actor_id: "staff:op".into(),
        origin: None,
        request_id: None,
    };
    let events = vec!["session.completed".to_owned()];
    for url in [
        "http://127.0.0.1:9/hook",
        "http://hooks.example.com/hook",
        "https://10.0.0.7/hook",
        "https://localhost/hook",
    ] {
        let refused = service.create(&caller, url, &events).await;
        assert!(
            matches!(refused, Err(WebhookError::InsecureUrl(_))),
            "{url}"
        );
    }
    assert_eq!(db.count_rows("webhooks").await, 0);
    let created = service
        .create(&caller, "https://hooks.example.com/hook", &events)
        .await
        .unwrap();
    assert_eq!(created.webhook.url, "https://hooks.example.com/hook");
    assert_eq!(audit.events().len(), 1);
    audit.fail(true);
    assert!(matches!(
        service
            .create(&caller, "https://hooks.example.com/other", &events)
            .await,
        Err(WebhookError::Audit(_))
    ));
}

/// Two nodes claiming at once: one gets the delivery. An attempt whose
/// lease was taken over cannot record its outcome.
async fn a_due_delivery_is_claimed_by_one_node_only(backend: Backend) {
    use voltvault::notify::{DeliveryState, EventType, OutboxEvent};
    use voltvault::store::webhooks::{AttemptOutcome, WebhookRecord};
    let db = crate::helpers::TestDb::new(backend).await;
    let (a, b) = (db.store().await, db.store().await);
    let t0 = chrono::DateTime::parse_from_rfc3339("2026-11-25T10:00:00Z")
        .unwrap()
        .with_timezone(&chrono::Utc);
    let tenant = voltvault::tenants::Tenant {
        id: voltvault::ids::TenantId::generate(),
        name: voltvault::tenants::TenantName::parse("claims").unwrap(),
        created_at: t0,
    };
    a.insert_tenant(&tenant).await.unwrap();
    let webhook = voltvault::ids::WebhookId::generate();
    a.insert_webhook(&WebhookRecord {
        id: webhook,
        tenant: tenant.id,
        url: "https://hooks.example.com/x".into(),
        events: vec![EventType::SessionCompleted],
        secret_sealed: vec![1, 2, 3],
        created_by: "staff:op".into(),
        created_at: t0,
    })
    .await
    .unwrap();
    let event = OutboxEvent {
        id: "evt_1".into(),
        tenant: tenant.id,
        event_type: EventType::SessionCompleted,
        payload: "{}".into(),
        at: t0,
    };
    assert_eq!(a.enqueue_event(&event).await.unwrap(), 1);
    // Emitted again: still one delivery.
    assert_eq!(b.enqueue_event(&event).await.unwrap(), 0);
    let lease = t0 + chrono::Duration::seconds(40);
    let (ca, cb) = tokio::join!(
        a.claim_due_deliveries(t0, lease, 10),
        b.claim_due_deliveries(t0, lease, 10)
    );
    let (ca, cb) = (ca.unwrap(), cb.unwrap());
    assert_eq!(ca.len() + cb.len(), 1, "claimed twice");
    let claimed = ca.into_iter().chain(cb).next().unwrap();
    assert_eq!(claimed.delivery.attempts, 1);
    // Before the lease runs out nobody else gets it.
    assert!(
        a.claim_due_deliveries(t0 + chrono::Duration::seconds(39), lease, 10)
            .await
            .unwrap()
            .is_empty()
    );
    // After it, another node takes it over; the first can no longer record.
    let later = t0 + chrono::Duration::seconds(41);
    let lease2 = later + chrono::Duration::seconds(40);
    let taken = b.claim_due_deliveries(later, lease2, 10).await.unwrap();
    assert_eq!(taken.len(), 1);
    assert_eq!(taken[0].delivery.attempts, 2);
    let outcome = AttemptOutcome {
        state: DeliveryState::Delivered,
        last_status: Some(200),
        last_error: None,
        next_attempt_at: later,
        at: later,
    };
    assert!(
        !a.finish_delivery_attempt(claimed.delivery.id, lease, &outcome)
            .await
            .unwrap()
    );
    assert!(
        b.finish_delivery_attempt(claimed.delivery.id, lease2, &outcome)
            .await
            .unwrap()
    );
    let log = a.webhook_deliveries(tenant.id, webhook, 10).await.unwrap();
    assert_eq!(log[0].state, DeliveryState::Delivered);
    assert!(
        a.claim_due_deliveries(later + chrono::Duration::hours(1), lease2, 10)
            .await
            .unwrap()
            .is_empty()
    );
}

crate::on_both_databases!(
    a_completed_session_is_delivered_signed_with_the_shown_secret,
    a_receiver_that_fails_twice_gets_it_on_the_third_attempt,
    a_receiver_that_always_fails_ends_dead,
    a_declined_session_emits_exactly_one_payment_failed,
    a_failed_capture_emits_one_payment_failed_and_mails_the_driver,
    a_completed_session_makes_its_receipt_ready_exactly_once,
    an_endpoint_gets_only_the_events_it_subscribed_to,
    bad_input_gets_stable_codes_and_stores_nothing,
    production_mode_refuses_plain_http_and_private_hosts,
    a_due_delivery_is_claimed_by_one_node_only,
);
