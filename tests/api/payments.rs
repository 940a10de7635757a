//! EV payment sessions end to end against the built-in simulator, on both
//! databases: a charger (mTLS) opens a session with a card, meters, and
//! completes; an operator refunds. Declines, lost answers settled by
//! recovery, expiry, and bad input.

use std::sync::Arc;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use voltvault::auth::policy::Role;
use voltvault::auth::{Actor, Origin};
use voltvault::clock::{Clock, Environment, FixedClock, OsRandom, SystemClock};
use voltvault::config::Config;
use voltvault::ids::TenantId;

use crate::helpers::{Backend, TestApp, contains_bytes, spawn_app_full};

pub const APPROVE: &str = "4242424242424242";

pub struct Charging {
    pub app: TestApp,
    pub tenant: TenantId,
    pub charger: reqwest::Client,
    pub clock: Option<FixedClock>,
}

/// The service with a tenant whose chargers present certificates from the test CA.
pub async fn charging(backend: Backend, customize: impl FnOnce(&mut Config)) -> Charging {
    charging_at(backend, customize, None).await
}

pub async fn charging_at(
    backend: Backend,
    customize: impl FnOnce(&mut Config),
    clock: Option<FixedClock>,
) -> Charging {
    let env = match &clock {
        Some(c) => Environment {
            clock: Arc::new(c.clone()),
            random: Arc::new(OsRandom),
        },
        None => Environment::system(),
    };
    let app = spawn_app_full(backend, customize, None, env, None).await;
    let (cli, origin) = (Actor::cli(), Origin::cli());
    let tenant = app
        .auth
        .create_tenant("chargepoint", &cli, &origin)
        .await
        .unwrap()
        .id;
    app.auth
        .register_charger_ca(tenant, "chargers", &app.pki.ca_pem, &cli, &origin)
        .await
        .unwrap();
    let charger = app.charger_client();
    Charging {
        app,
        tenant,
        charger,
        clock,
    }
}

pub fn card(number: &str) -> Value {
    json!({"card": {"number": number, "exp_month": 12, "exp_year": 2039, "cvc": "123"}})
}

pub fn open_body(method: Value, hold: i64) -> Value {
    json!({
        "evse_id": "DE*VVT*E0001*1",
        "connector_id": "1",
        "tariff_id": "standard",
        "payment_method": method,
        "hold": {"value": hold, "currency": "EUR"},
    })
}

pub fn at(minute: i64) -> String {
    (chrono::DateTime::parse_from_rfc3339("2026-11-25T10:00:00Z").unwrap()
        + chrono::Duration::minutes(minute))
    .to_rfc3339()
}

impl Charging {
    /// A client with a new API key of the tenant (role `app`).
    pub async fn app_client(&self) -> reqwest::Client {
        self.app_client_of(self.tenant).await
    }

    /// A client with a new API key (role `app`) of `tenant`.
    pub async fn app_client_of(&self, tenant: TenantId) -> reqwest::Client {
        let (_, key) = self
            .app
            .auth
            .create_api_key(
                tenant,
                "app",
                Role::App,
                None,
                &Actor::cli(),
                &Origin::cli(),
            )
            .await
            .unwrap();
        self.app.bearer_client(key.expose_secret())
    }

    /// An app of a new tenant, `name`.
    pub async fn stranger(&self, name: &str) -> reqwest::Client {
        let other = self
            .app
            .auth
            .create_tenant(name, &Actor::cli(), &Origin::cli())
            .await
            .unwrap()
            .id;
        self.app_client_of(other).await
    }

    pub async fn post(
        &self,
        client: &reqwest::Client,
        path: &str,
        key: &str,
        body: Value,
    ) -> (StatusCode, Value) {
        let r = client
            .post(self.app.url(path))
            .header("idempotency-key", key)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = r.status();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    pub async fn open(&self, key: &str, method: Value, hold: i64) -> (StatusCode, Value) {
        self.post(
            &self.charger,
            "/v1/payment-sessions",
            key,
            open_body(method, hold),
        )
        .await
    }

    pub async fn meter(&self, id: &str, key: &str, wh: i64, minute: i64) -> (StatusCode, Value) {
        self.post(
            &self.charger,
            &format!("/v1/payment-sessions/{id}/meter"),
            key,
            json!({"energy_wh": wh, "at": at(minute)}),
        )
        .await
    }

    pub async fn complete(&self, id: &str, wh: i64, minute: i64) -> (StatusCode, Value) {
        self.post(
            &self.charger,
            &format!("/v1/payment-sessions/{id}/complete"),
            &format!("{id}-complete"),
            json!({"energy_wh": wh, "at": at(minute)}),
        )
        .await
    }

    pub async fn get(&self, id: &str) -> Value {
        self.charger
            .get(self.app.url(&format!("/v1/payment-sessions/{id}")))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// Polls until the session leaves `status` (the workers run every second here).
    pub async fn wait_while(&self, id: &str, status: &str) -> Value {
        for _ in 0..300 {
            let s = self.get(id).await;
            if s["status"] != status {
                return s;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("session {id} stayed {status}");
    }
}

/// Recovery and expiry run every second; an intent is recoverable after a second.
pub fn fast_workers(c: &mut Config) {
    c.payments.intent_lease_secs = 1;
    c.payments.recovery_interval_secs = 1;
}

fn money(v: &Value) -> i64 {
    v["value"].as_i64().unwrap()
}

async fn a_whole_session_is_held_metered_captured_and_refunded(backend: Backend) {
    let w = charging(backend, |_| {}).await;
    let (status, s) = w.open("open-1", card(APPROVE), 5000).await;
    assert_eq!(status, StatusCode::CREATED, "{s}");
    assert_eq!(s["status"], "authorized");
    assert_eq!(money(&s["authorized_amount"]), 5000);
    assert_eq!(s["hold"]["currency"], "EUR");
    assert!(!s.to_string().contains(APPROVE));
    let id = s["id"].as_str().unwrap().to_owned();

    // The same request again is the same session, replayed.
    let replay = w
        .charger
        .post(w.app.url("/v1/payment-sessions"))
        .header("idempotency-key", "open-1")
        .json(&open_body(card(APPROVE), 5000))
        .send()
        .await
        .unwrap();
    assert_eq!(replay.headers()["idempotent-replayed"], "true");
    assert_eq!(replay.json::<Value>().await.unwrap()["id"], id.as_str());

    // Ten readings, 10 kWh apart: 0.59 EUR/kWh excluding 19% VAT.
    let mut last = Value::Null;
    for i in 0..10 {
        let (status, m) = w
            .meter(&id, &format!("{id}-m{i}"), i * 10_000, i * 10)
            .await;
        assert_eq!(status, StatusCode::OK, "{m}");
        // VAT is rounded half up on the line: 29.50 EUR + 5.605 = 35.11 EUR.
        let excl = 590 * i;
        assert_eq!(money(&m["cost"]), excl + (excl * 19 + 50) / 100);
        assert_eq!(m["action"], "continue", "{m}");
        assert!(
            m["display_message"]
                .as_str()
                .unwrap()
                .starts_with("Charging")
        );
        last = m;
    }
    // 63.18 EUR reached 80% of the 50.00 hold long ago: the simulator raised it.
    assert!(money(&last["authorized_amount"]) >= 10_000, "{last}");
    assert_eq!(last["energy_wh"], 90_000);

    let (status, done) = w.complete(&id, 95_000, 100).await;
    assert_eq!(status, StatusCode::OK, "{done}");
    assert_eq!(done["status"], "completed");
    let captured = money(&done["captured_amount"]);
    assert_eq!(captured, money(&done["cost"]));
    assert_eq!(
        captured + money(&done["released_amount"]),
        money(&done["authorized_amount"])
    );
    assert!(done["receipt_id"].as_str().unwrap().starts_with("rcpt_"));

    // Completing again changes nothing.
    let (_, again) = w.complete(&id, 95_000, 100).await;
    assert_eq!(again["captured_amount"], done["captured_amount"]);

    // An operator of the tenant refunds part, then asks for too much.
    let operator = w
        .app
        .bearer_client(&w.app.staff_session_in(w.tenant, Role::Operator).await);
    let refunds = format!("/v1/payment-sessions/{id}/refunds");
    let (status, r) = w
        .post(
            &operator,
            &refunds,
            "refund-1",
            json!({"amount": {"value": 500, "currency": "EUR"}, "reason": "connector fault"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{r}");
    assert_eq!(money(&r["refunded_amount"]), 500);
    let (status, r) = w
        .post(
            &operator,
            &refunds,
            "refund-2",
            json!({"amount": {"value": captured, "currency": "EUR"}, "reason": "again"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{r}");
    assert_eq!(r["code"], "invalid_refund_amount");
    // A charger may not refund.
    let (status, _) = w
        .post(&w.charger, &refunds, "refund-3", json!({"reason": "x"}))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // The trail: the card's decryption for the hold, every money movement.
    let events = w.app.audit_trail().await;
    let types: Vec<&str> = events.iter().map(|r| r.event_type.as_str()).collect();
    for t in [
        "token.tokenize",
        "card.decrypt",
        "payment.authorize",
        "payment.increment",
        "payment.capture",
        "payment.refund",
    ] {
        assert!(types.contains(&t), "no {t} in {types:?}");
    }
    let resource = format!("payment_session:{id}");
    assert!(
        events.iter().any(|r| r.event_type == "payment.capture"
            && r.resource.as_deref() == Some(resource.as_str()))
    );
    for r in &events {
        assert!(!format!("{r:?}").contains(APPROVE));
    }
    // The database (file and write-ahead log) never saw the card number.
    if let Some(path) = w.app.db.sqlite_path() {
        let bytes = crate::helpers::read_all_files_under(path.parent().unwrap());
        assert!(!bytes.is_empty());
        assert!(!contains_bytes(&bytes, APPROVE.as_bytes()));
    }
}

async fn declines_and_stops(backend: Backend) {
    let w = charging(backend, |_| {}).await;
    let (status, s) = w.open("d-1", card("4000000000009995"), 5000).await;
    assert_eq!(status, StatusCode::CREATED, "{s}");
    assert_eq!(s["status"], "declined");
    assert_eq!(s["decline_code"], "insufficient_funds");
    assert_eq!(s["display_message"], "Card declined");
    let id = s["id"].as_str().unwrap();
    let (status, m) = w.meter(id, "d-1-m", 100, 1).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(m["code"], "session_state");

    // Approves up to 100.00 in total: the first raise works, the second is
    // declined, and from then on the charger is told to stop.
    let (_, s) = w.open("d-2", card("4000000000000770"), 5000).await;
    assert_eq!(s["status"], "authorized");
    let id = s["id"].as_str().unwrap();
    let mut actions = Vec::new();
    for i in 0..16 {
        let (status, m) = w.meter(id, &format!("d-2-{i}"), i * 10_000, i * 10).await;
        assert_eq!(status, StatusCode::OK, "{m}");
        actions.push((
            money(&m["cost"]),
            money(&m["authorized_amount"]),
            m["action"].clone(),
        ));
        if m["action"] == "stop" {
            break;
        }
    }
    let (cost, authorized, action) = actions.last().unwrap().clone();
    assert_eq!(action, "stop", "{actions:?}");
    assert_eq!(authorized, 10_000);
    assert!(
        cost < authorized,
        "stopped before the hold ran out: {actions:?}"
    );
    // Completing captures no more than was held.
    let (_, done) = w.complete(id, 150_000, 200).await;
    assert_eq!(done["status"], "completed");
    assert!(money(&done["captured_amount"]) <= 10_000);
}

async fn lost_answers_are_settled_by_recovery(backend: Backend) {
    let w = charging(backend, fast_workers).await;
    // The simulator times out on this card without holding anything.
    let (status, s) = w.open("t-1", card("4000000000001018"), 5000).await;
    assert_eq!(status, StatusCode::CREATED, "{s}");
    assert_eq!(s["status"], "authorizing");
    let id = s["id"].as_str().unwrap();
    let settled = w.wait_while(id, "authorizing").await;
    assert_eq!(settled["status"], "failed", "{settled}");
    // Nothing was held, so nothing is released.
    assert!(settled.get("released_amount").is_none());

    // A 5xx-like failure is just as unknown, and settles the same way.
    let (_, s) = w.open("t-2", card("4000000000005001"), 5000).await;
    assert_eq!(s["status"], "authorizing");
    let settled = w.wait_while(s["id"].as_str().unwrap(), "authorizing").await;
    assert_eq!(settled["status"], "failed");
}

async fn cancel_releases_the_hold(backend: Backend) {
    let w = charging(backend, |_| {}).await;
    let (_, s) = w.open("c-1", card(APPROVE), 4000).await;
    let id = s["id"].as_str().unwrap();
    let cancel = format!("/v1/payment-sessions/{id}/cancel");
    let (status, c) = w.post(&w.charger, &cancel, "c-1-x", json!({})).await;
    assert_eq!(status, StatusCode::OK, "{c}");
    assert_eq!(c["status"], "cancelled");
    assert_eq!(money(&c["released_amount"]), 4000);
    let (status, c) = w.post(&w.charger, &cancel, "c-1-y", json!({})).await;
    assert_eq!(
        (status, c["status"].as_str()),
        (StatusCode::OK, Some("cancelled"))
    );
    let (status, e) = w.complete(id, 10, 1).await;
    assert_eq!(status, StatusCode::CONFLICT, "{e}");
    // A session that cost nothing completes by releasing everything.
    let (_, s) = w.open("c-2", card(APPROVE), 4000).await;
    let id = s["id"].as_str().unwrap();
    w.meter(id, "c-2-m", 7000, 0).await;
    let (_, done) = w.complete(id, 7000, 30).await;
    assert_eq!(done["status"], "completed");
    assert_eq!(money(&done["captured_amount"]), 0);
    assert_eq!(money(&done["released_amount"]), 4000);
}

async fn holds_never_completed_expire(backend: Backend) {
    let clock = FixedClock::new(SystemClock.now());
    let w = charging_at(backend, fast_workers, Some(clock)).await;
    let (_, s) = w.open("e-1", card(APPROVE), 4000).await;
    let id = s["id"].as_str().unwrap();
    w.meter(id, "e-1-m", 1000, 0).await;
    w.clock
        .as_ref()
        .unwrap()
        .advance(chrono::Duration::hours(25));
    // Expiry releases the hold through `cancelling`; wait past both.
    w.wait_while(id, "charging").await;
    let expired = w.wait_while(id, "cancelling").await;
    assert_eq!(expired["status"], "expired", "{expired}");
    assert_eq!(money(&expired["released_amount"]), 4000);
}

async fn bad_requests_are_refused_and_store_nothing(backend: Backend) {
    let w = charging(backend, |_| {}).await;
    let cases = [
        (open_body(card(APPROVE), 0), "hold_out_of_range"),
        (open_body(card(APPROVE), 1_000_000), "hold_out_of_range"),
        (
            json!({"evse_id": "E1", "connector_id": "1", "tariff_id": "nope",
                   "payment_method": card(APPROVE), "hold": {"value": 100, "currency": "EUR"}}),
            "unknown_tariff",
        ),
        (
            json!({"evse_id": "E1", "connector_id": "1", "tariff_id": "standard",
                   "payment_method": card(APPROVE), "hold": {"value": 100, "currency": "GBP"}}),
            "currency_mismatch",
        ),
        (
            open_body(json!({"token": "x", "card": card(APPROVE)["card"]}), 100),
            "invalid_payment_method",
        ),
        (
            open_body(json!({"rfid_uid": "04A2B3C4"}), 100),
            "rfid_card_unknown",
        ),
        (open_body(card("4242424242424241"), 100), "card_number_luhn"),
        (
            open_body(json!({"token": "9999000000001111"}), 100),
            "token_not_found",
        ),
        (
            json!({"evse_id": "has space", "connector_id": "1", "tariff_id": "standard",
                   "payment_method": card(APPROVE), "hold": {"value": 100, "currency": "EUR"}}),
            "invalid_field",
        ),
    ];
    for (i, (body, code)) in cases.iter().enumerate() {
        let key = format!("bad-{i}");
        let (status, p) = w
            .post(&w.charger, "/v1/payment-sessions", &key, body.clone())
            .await;
        assert!(status.is_client_error(), "{i}: {status} {p}");
        assert_eq!(p["code"], *code, "{i}: {p}");
        assert!(!p.to_string().contains(APPROVE));
    }
    assert_eq!(w.app.db.count_rows("payment_sessions").await, 0);
    assert_eq!(w.app.db.count_rows("payment_intents").await, 0);
    assert_eq!(w.app.db.count_rows("tokens").await, 0);
    // No Idempotency-Key.
    let r = w
        .charger
        .post(w.app.url("/v1/payment-sessions"))
        .json(&open_body(card(APPROVE), 100))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    // The same key with another body.
    let (_, s) = w.open("k-1", card(APPROVE), 100).await;
    let (status, p) = w.open("k-1", card(APPROVE), 200).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(p["code"], "idempotency_key_reused");
    // Readings must move forward; a refused one changes nothing.
    let id = s["id"].as_str().unwrap();
    // (100 Wh within the 1.00 EUR hold.)
    let (status, m) = w.meter(id, "k-1-0", 4900, 0).await;
    assert_eq!(status, StatusCode::OK, "{m}");
    let (status, m) = w.meter(id, "k-1-a", 5000, 10).await;
    assert_eq!(status, StatusCode::OK, "{m}");
    let before = w.get(id).await;
    assert_eq!(before["energy_wh"], 100, "{before}");
    assert!(money(&before["cost"]) > 0, "{before}");
    let readings = w.app.db.count_rows("payment_meter_readings").await;
    assert_eq!(readings, 2);
    let (status, p) = w.meter(id, "k-1-b", 4000, 11).await;
    assert_eq!(
        (status, p["code"].as_str()),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("meter_went_backwards")
        )
    );
    assert_eq!(w.get(id).await, before);
    assert_eq!(
        w.app.db.count_rows("payment_meter_readings").await,
        readings
    );
    let (status, p) = w.meter(id, "k-1-c", 6000, 9).await;
    assert_eq!(
        (status, p["code"].as_str()),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("reading_out_of_order")
        )
    );
    assert_eq!(w.get(id).await, before);
    assert_eq!(
        w.app.db.count_rows("payment_meter_readings").await,
        readings
    );
    // The same reading again (a retry under a new key) answers the same.
    let (status, m) = w.meter(id, "k-1-d", 5000, 10).await;
    assert_eq!(
        (status, m["action"].as_str()),
        (StatusCode::OK, Some("continue"))
    );
    // Another charger of the same operator cannot see or drive this session.
    let other = w.app.pki.ca.issue_client("charger-8").unwrap();
    let other = w.app.client_with_identity(&other.cert_pem, &other.key_pem);
    let r = other
        .get(w.app.url(&format!("/v1/payment-sessions/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let (status, _) = w
        .post(
            &other,
            &format!("/v1/payment-sessions/{id}/meter"),
            "k-1-e",
            json!({"energy_wh": 6000, "at": at(12)}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // Unknown and malformed ids, and another tenant's session.
    for path in [
        "/v1/payment-sessions/not-a-uuid".to_owned(),
        format!("/v1/payment-sessions/{}", uuid::Uuid::new_v4()),
    ] {
        let r = w.charger.get(w.app.url(&path)).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
    }
    let other = w
        .app
        .auth
        .create_tenant("elsewhere", &Actor::cli(), &Origin::cli())
        .await
        .unwrap()
        .id;
    let (_, key) = w
        .app
        .auth
        .create_api_key(other, "app", Role::App, None, &Actor::cli(), &Origin::cli())
        .await
        .unwrap();
    let r = w
        .app
        .bearer_client(key.expose_secret())
        .get(w.app.url(&format!("/v1/payment-sessions/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
}

/// A completed session takes no more readings: 409 `session_state`, and
/// its readings, energy, cost and capture stay as they were.
async fn a_reading_after_completion_is_refused_and_changes_nothing(backend: Backend) {
    let w = charging(backend, |_| {}).await;
    let (_, s) = w.open("ac-1", card(APPROVE), 5000).await;
    let id = s["id"].as_str().unwrap();
    let (status, m) = w.meter(id, "ac-1-m0", 0, 0).await;
    assert_eq!(status, StatusCode::OK, "{m}");
    let (status, done) = w.complete(id, 12_500, 15).await;
    assert_eq!(status, StatusCode::OK, "{done}");
    assert_eq!(done["status"], "completed");
    let before = w.get(id).await;
    assert_eq!(before["energy_wh"], 12_500, "{before}");
    assert_eq!(money(&before["captured_amount"]), 878, "{before}");
    assert_eq!(before["cost"], before["captured_amount"]);
    let readings = w.app.db.count_rows("payment_meter_readings").await;
    assert_eq!(readings, 2);
    let intents = w.app.db.count_rows("payment_intents").await;

    // A later reading, and one that repeats the final reading.
    for (key, wh, minute) in [("ac-1-m1", 20_000, 30), ("ac-1-m2", 12_500, 15)] {
        let (status, p) = w.meter(id, key, wh, minute).await;
        assert_eq!(
            (status, p["code"].as_str()),
            (StatusCode::CONFLICT, Some("session_state")),
            "{p}"
        );
        assert_eq!(w.get(id).await, before);
        assert_eq!(
            w.app.db.count_rows("payment_meter_readings").await,
            readings
        );
        assert_eq!(w.app.db.count_rows("payment_intents").await, intents);
    }
}

async fn live_cost_streams_until_the_session_ends(backend: Backend) {
    let w = charging(backend, |_| {}).await;
    let (_, s) = w.open("sse-1", card(APPROVE), 5000).await;
    let id = s["id"].as_str().unwrap().to_owned();
    let stream = w
        .charger
        .get(w.app.url(&format!("/v1/payment-sessions/{id}/events")))
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), StatusCode::OK);
    assert!(
        stream.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let reader = tokio::spawn(async move { stream.text().await.unwrap() });
    w.meter(&id, "sse-m0", 0, 0).await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    w.meter(&id, "sse-m1", 10_000, 10).await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    w.complete(&id, 20_000, 20).await;
    let text = tokio::time::timeout(Duration::from_secs(10), reader)
        .await
        .expect("the stream ends with the session")
        .unwrap();
    let mut events: Vec<Value> = text
        .lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .map(|d| serde_json::from_str(d.trim()).unwrap())
        .collect();
    assert!(
        text.contains("event: session") && text.contains("event: final"),
        "{text}"
    );
    // After `final`, the receipt closes the stream. The charger may not
    // read receipts (no billing:read): it gets where the receipt is and its total.
    assert!(
        text.trim_end()
            .rsplit("\n\n")
            .next()
            .unwrap()
            .starts_with("event: receipt"),
        "{text}"
    );
    let receipt = events.pop().unwrap();
    let costs: Vec<i64> = events.iter().map(|e| money(&e["cost"])).collect();
    assert!(
        costs.contains(&702),
        "the live cost after 10 kWh: {costs:?}"
    );
    let last = events.last().unwrap();
    assert_eq!(last["status"], "completed");
    assert_eq!(money(&last["captured_amount"]), 1404);
    assert_eq!(receipt["receipt_id"], last["receipt_id"]);
    assert_eq!(receipt["session_id"], last["id"]);
    assert_eq!(money(&receipt["total"]), 1404);
    assert_eq!(receipt["currency"], "EUR");
    assert!(receipt.get("lines").is_none() && receipt.get("card").is_none());
    // An app key with billing:read gets the whole receipt, at once for a
    // session that has ended.
    let (_, key) = w
        .app
        .auth
        .create_api_key(
            w.tenant,
            "app",
            voltvault::auth::policy::Role::App,
            None,
            &voltvault::auth::Actor::cli(),
            &voltvault::auth::Origin::cli(),
        )
        .await
        .unwrap();
    let app = w.app.bearer_client(key.expose_secret());
    let text = tokio::time::timeout(
        Duration::from_secs(10),
        app.get(w.app.url(&format!("/v1/payment-sessions/{id}/events")))
            .send()
            .await
            .unwrap()
            .text(),
    )
    .await
    .expect("an ended session's stream closes at once")
    .unwrap();
    let data: Vec<Value> = text
        .lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .map(|d| serde_json::from_str(d.trim()).unwrap())
        .collect();
    assert_eq!(data.len(), 2, "{text}");
    assert!(text.starts_with("event: final"), "{text}");
    assert_eq!(data[1]["id"], last["receipt_id"]);
    assert_eq!(money(&data[1]["total_incl_vat"]), 1404);
    assert!(!data[1]["lines"].as_array().unwrap().is_empty());
    // Without credentials there is nothing to stream.
    let r = w
        .app
        .client()
        .get(w.app.url(&format!("/v1/payment-sessions/{id}/events")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
}

/// Every reading stored on the stream's node is pushed as it is stored:
/// with the database poll an hour apart, each reading's cost still
/// arrives before the next reading is sent.
async fn each_reading_is_pushed_as_it_is_stored(backend: Backend) {
    let w = charging(backend, |c| c.payments.events_poll_secs = 3600).await;
    let (_, s) = w.open("push-1", card(APPROVE), 5000).await;
    let id = s["id"].as_str().unwrap().to_owned();
    let response = w
        .charger
        .get(w.app.url(&format!("/v1/payment-sessions/{id}/events")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let mut body = response;
    let mut buffered = String::new();
    // The next whole event: (name, data).
    let mut next_event = async move || -> (String, Value) {
        // Keep-alive comments arrive too; the event itself must come in time.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            if let Some((event, rest)) = buffered.split_once("\n\n") {
                let (event, rest) = (event.to_owned(), rest.to_owned());
                buffered = rest;
                let name = event.lines().find_map(|l| l.strip_prefix("event:"));
                let data = event.lines().find_map(|l| l.strip_prefix("data:"));
                if let (Some(name), Some(data)) = (name, data) {
                    return (
                        name.trim().to_owned(),
                        serde_json::from_str(data.trim()).unwrap(),
                    );
                }
                continue;
            }
            let chunk = tokio::time::timeout_at(deadline, body.chunk())
                .await
                .expect("an event arrives without waiting for the poll")
                .unwrap()
                .expect("the stream stays open");
            buffered.push_str(std::str::from_utf8(&chunk).unwrap());
        }
    };
    let (name, first) = next_event().await;
    assert_eq!((name.as_str(), money(&first["cost"])), ("session", 0));
    for (n, (wh, minute, cost)) in [(0, 0, 0), (10_000, 10, 702), (15_000, 15, 1053)]
        .into_iter()
        .enumerate()
    {
        let (status, view) = w.meter(&id, &format!("push-m{n}"), wh, minute).await;
        assert_eq!(status, StatusCode::OK, "{view}");
        if n == 0 {
            // The first reading changes the status, not the cost.
            let (name, pushed) = next_event().await;
            assert_eq!(
                (name.as_str(), pushed["status"].as_str()),
                ("session", Some("charging"))
            );
            continue;
        }
        let (name, pushed) = next_event().await;
        assert_eq!(name, "session");
        assert_eq!(
            (pushed["energy_wh"].as_i64(), money(&pushed["cost"])),
            (Some(wh), cost),
            "{pushed}"
        );
    }
    w.complete(&id, 20_000, 20).await;
    // Completing is two writes (the capture's intent, then its answer).
    let (mut name, mut last) = next_event().await;
    if last["status"] == "completing" {
        (name, last) = next_event().await;
    }
    assert_eq!(
        (name.as_str(), last["status"].as_str()),
        ("final", Some("completed"))
    );
    let (name, _) = next_event().await;
    assert_eq!(name, "receipt");
}

crate::on_both_databases!(
    live_cost_streams_until_the_session_ends,
    each_reading_is_pushed_as_it_is_stored,
    a_whole_session_is_held_metered_captured_and_refunded,
    declines_and_stops,
    lost_answers_are_settled_by_recovery,
    cancel_releases_the_hold,
    holds_never_completed_expire,
    bad_requests_are_refused_and_store_nothing,
    a_reading_after_completion_is_refused_and_changes_nothing,
);

/// The same session against localstripe: a PaymentIntent with manual
/// capture; localstripe cannot raise a hold, so the charger is stopped.
async fn a_whole_session_against_localstripe(backend: Backend) {
    let stripe = crate::localstripe::LocalStripe::start().await;
    let key_dir = tempfile::tempdir().unwrap();
    let key_file = key_dir.path().join("stripe.key");
    voltvault::devpki::write_file(&key_file, crate::localstripe::API_KEY, 0o600).unwrap();
    let url = stripe.url.clone();
    let w = charging(backend, move |c| {
        c.payments.acquirer = Some(voltvault::config::AcquirerKind::Stripe);
        c.payments.stripe = Some(voltvault::config::StripeSettings {
            base_url: Some(url),
            api_key_file: Some(key_file),
            incremental_authorization: true,
            request_timeout_secs: 10,
        });
    })
    .await;
    let (status, s) = w.open("ls-1", card(APPROVE), 2000).await;
    assert_eq!(status, StatusCode::CREATED, "{s}");
    assert_eq!(s["status"], "authorized", "{s}");
    let id = s["id"].as_str().unwrap().to_owned();
    let mut stopped_at = None;
    for i in 0..10 {
        let (status, m) = w.meter(&id, &format!("ls-m{i}"), i * 5_000, i * 5).await;
        assert_eq!(status, StatusCode::OK, "{m}");
        assert_eq!(money(&m["authorized_amount"]), 2000, "no increments here");
        if m["action"] == "stop" {
            stopped_at = Some(money(&m["cost"]));
            break;
        }
    }
    // Stopped once the cost reached 80% of the hold, before passing it.
    let cost = stopped_at.expect("the charger was told to stop");
    assert!((1600..2000).contains(&cost), "{cost}");
    let (status, done) = w.complete(&id, 25_000, 60).await;
    assert_eq!(status, StatusCode::OK, "{done}");
    assert_eq!(done["status"], "completed");
    assert_eq!(
        money(&done["captured_amount"]),
        2000.min(money(&done["cost"]))
    );
    assert_eq!(stripe.payment_intent_count().await, 1);

    // Declined by the issuer at localstripe.
    let (status, d) = w.open("ls-2", card("4000000000000341"), 2000).await;
    assert_eq!(status, StatusCode::CREATED, "{d}");
    assert_eq!(d["status"], "declined", "{d}");
    assert!(d["decline_code"].is_string(), "{d}");
    // Cancelled before charging: the hold is released at localstripe.
    let (_, s) = w.open("ls-3", card(APPROVE), 2000).await;
    let sid = s["id"].as_str().unwrap();
    let (status, c) = w
        .post(
            &w.charger,
            &format!("/v1/payment-sessions/{sid}/cancel"),
            "ls-3-c",
            json!({}),
        )
        .await;
    assert_eq!(
        (status, c["status"].as_str()),
        (StatusCode::OK, Some("cancelled")),
        "{c}"
    );
}

mod localstripe {
    crate::on_both_databases!(a_whole_session_against_localstripe);
    use super::a_whole_session_against_localstripe;
}
