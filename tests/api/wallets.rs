//! Prepaid wallets on both databases: opening one, top-ups charged to a
//! token through the simulator (credited once, a decline credits nothing),
//! bad input and tenancy.

use std::sync::{Arc, Mutex};

use axum::extract::State;
use reqwest::StatusCode;
use serde_json::{Value, json};
use voltvault::auth::policy::Role;
use voltvault::auth::{Actor, Origin};

use crate::accounts::{driver_with_card, get, tokenize};
use crate::helpers::Backend;
use crate::payments::{Charging, charging, fast_workers};

const DECLINE_FUNDS: &str = "4000000000009995";

async fn put(
    w: &Charging,
    app: &reqwest::Client,
    account: &str,
    body: Value,
) -> (StatusCode, Value) {
    let r = app
        .put(w.app.url(&format!("/v1/accounts/{account}/wallet")))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = r.status();
    (status, r.json().await.unwrap_or(Value::Null))
}

pub async fn open_wallet(
    w: &Charging,
    app: &reqwest::Client,
    account: &str,
    threshold: i64,
    pays_sessions: bool,
) {
    let (status, v) = put(
        w,
        app,
        account,
        json!({"currency": "EUR", "low_balance_threshold": threshold, "pays_sessions": pays_sessions}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{v}");
}

pub async fn top_up(
    w: &Charging,
    app: &reqwest::Client,
    account: &str,
    key: &str,
    value: i64,
) -> (StatusCode, Value) {
    w.post(
        app,
        &format!("/v1/accounts/{account}/wallet/top-ups"),
        key,
        json!({"amount": {"value": value, "currency": "EUR"}}),
    )
    .await
}

fn value(v: &Value) -> i64 {
    v["value"].as_i64().unwrap()
}

async fn a_wallet_is_opened_and_topped_up_once(backend: Backend) {
    let w = charging(backend, fast_workers).await;
    let app = w.app_client().await;
    let (account, token) = driver_with_card(&w, &app, "w1").await;
    let path = format!("/v1/accounts/{account}/wallet");

    // No wallet yet.
    let (status, p) = get(&w, &app, &path).await;
    assert_eq!(
        (status, p["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("wallet_not_found"))
    );
    let (status, p) = top_up(&w, &app, &account, "t-0", 1000).await;
    assert_eq!(
        (status, p["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("wallet_not_found")),
        "{p}"
    );

    let (status, v) = put(
        &w,
        &app,
        &account,
        json!({"currency": "EUR", "low_balance_threshold": 500}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(value(&v["balance"]), 0);
    assert_eq!(v["currency"], "EUR");
    assert_eq!(v["pays_sessions"], false);
    assert_eq!(value(&v["low_balance_threshold"]), 500);

    // A top-up: charged to the default token, credited once.
    let before = w.app.db.count_rows("payment_intents").await;
    let (status, t) = top_up(&w, &app, &account, "t-1", 2500).await;
    assert_eq!(status, StatusCode::CREATED, "{t}");
    assert_eq!(t["token"], token.as_str());
    assert_eq!(value(&t["wallet"]["balance"]), 2500);
    assert_eq!(value(&t["wallet"]["available"]), 2500);
    assert_eq!(t["wallet"]["entries"][0]["kind"], "top_up");
    assert!(t["top_up_id"].as_str().unwrap().starts_with("tu_"));
    // A top-up is not a payment session.
    assert_eq!(w.app.db.count_rows("payment_intents").await, before);
    // The same request again: the same answer, no second credit.
    let (status, again) = top_up(&w, &app, &account, "t-1", 2500).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(again["top_up_id"], t["top_up_id"]);
    let (_, v) = get(&w, &app, &path).await;
    assert_eq!(value(&v["balance"]), 2500, "{v}");
    assert_eq!(v["entries"].as_array().unwrap().len(), 1);
    // Another key is another top-up, to a named payment method.
    let (status, t2) = w
        .post(
            &app,
            &format!("/v1/accounts/{account}/wallet/top-ups"),
            "t-2",
            json!({"amount": {"value": 1000, "currency": "EUR"}, "token": token}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{t2}");
    assert_eq!(value(&t2["wallet"]["balance"]), 3500);

    // A declined card: 422, nothing credited.
    let poor = tokenize(&w, &app, DECLINE_FUNDS, "w1-poor").await;
    let (status, _) = w
        .post(
            &app,
            &format!("/v1/accounts/{account}/payment-methods"),
            "w1-pm2",
            json!({"token": poor}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, p) = w
        .post(
            &app,
            &format!("/v1/accounts/{account}/wallet/top-ups"),
            "t-3",
            json!({"amount": {"value": 1000, "currency": "EUR"}, "token": poor}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{p}");
    assert_eq!(p["code"], "payment_declined");
    let (_, v) = get(&w, &app, &path).await;
    assert_eq!(value(&v["balance"]), 3500);
    assert_eq!(w.app.db.count_rows("wallet_entries").await, 2);

    // The payments export has both card charges, named by their capture
    // keys, and not the declined one.
    let operator = w
        .app
        .bearer_client(&w.app.staff_session_in(w.tenant, Role::Operator).await);
    let day = chrono::Duration::days(1);
    let now = voltvault::clock::Clock::now(&voltvault::clock::SystemClock);
    let period = format!(
        "from={}&to={}",
        (now - day).format("%Y-%m-%dT%H:%M:%SZ"),
        (now + day).format("%Y-%m-%dT%H:%M:%SZ")
    );
    let rows =
        crate::billing::csv_rows(&operator, &w, &format!("/v1/exports/payments.csv?{period}"))
            .await;
    assert_eq!(rows.len(), 2, "{rows:?}");
    for (row, (top_up, amount)) in rows.iter().zip([(&t, "25.00"), (&t2, "10.00")]) {
        assert_eq!(row["kind"], "wallet_top_up", "{row:?}");
        assert_eq!(row["amount"], amount);
        assert_eq!(row["currency"], "EUR");
        assert_eq!(row["account_id"], account);
        assert_eq!(
            row["reference"],
            format!("vv_topup_{}_capture", top_up["top_up_id"].as_str().unwrap())
        );
        assert_eq!(
            (row["session_id"].as_str(), row["evse_id"].as_str()),
            ("", "")
        );
    }

    // Changing the settings keeps the money; the currency is fixed now.
    let (status, v) = put(
        &w,
        &app,
        &account,
        json!({"currency": "EUR", "low_balance_threshold": 800, "pays_sessions": true}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(value(&v["balance"]), 3500);
    assert_eq!(v["pays_sessions"], true);
    let (status, p) = put(
        &w,
        &app,
        &account,
        json!({"currency": "GBP", "low_balance_threshold": 800}),
    )
    .await;
    assert_eq!(
        (status, p["code"].as_str()),
        (StatusCode::CONFLICT, Some("wallet_currency_fixed"))
    );

    // Audited: configuration and top-ups (the declined one as a failure).
    let events = w.app.audit_trail().await;
    let count = |t: &str| events.iter().filter(|e| e.event_type == t).count();
    assert_eq!(count("wallet.configure"), 2);
    assert_eq!(count("wallet.top_up"), 3);
    for e in &events {
        let text = format!("{:?} {:?}", e.resource, e.reason);
        assert!(!text.contains("4242424242424242"), "{text}");
    }
}

async fn bad_wallet_input_is_refused_and_writes_nothing(backend: Backend) {
    let w = charging(backend, fast_workers).await;
    let app = w.app_client().await;
    let (account, _) = driver_with_card(&w, &app, "b1").await;
    open_wallet(&w, &app, &account, 100, false).await;
    let (status, _) = top_up(&w, &app, &account, "ok-1", 1000).await;
    assert_eq!(status, StatusCode::CREATED);
    let entries = w.app.db.count_rows("wallet_entries").await;
    let top_ups = format!("/v1/accounts/{account}/wallet/top-ups");

    let cases: Vec<(Value, StatusCode, &str)> = vec![
        (
            json!({"amount": {"value": 0, "currency": "EUR"}}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
        ),
        (
            json!({"amount": {"value": -500, "currency": "EUR"}}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
        ),
        (
            json!({"amount": {"value": 500, "currency": "XYZ"}}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown_currency",
        ),
        (
            json!({"amount": {"value": 500, "currency": "GBP"}}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "currency_mismatch",
        ),
        (
            json!({"amount": {"value": 500, "currency": "EUR"}, "token": "nope"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "token_not_a_payment_method",
        ),
        (
            json!({"amount": 500}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
        ),
    ];
    for (i, (body, status, code)) in cases.into_iter().enumerate() {
        let (got, p) = w
            .post(&app, &top_ups, &format!("bad-{i}"), body.clone())
            .await;
        assert_eq!(
            (got, p["code"].as_str()),
            (status, Some(code)),
            "{body}: {p}"
        );
    }
    for (body, status, code) in [
        (
            json!({"currency": "XYZ", "low_balance_threshold": 1}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown_currency",
        ),
        (
            json!({"currency": "EUR", "low_balance_threshold": -1}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
        ),
        (
            json!({"currency": "EUR"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
        ),
    ] {
        let (got, p) = put(&w, &app, &account, body.clone()).await;
        assert_eq!(
            (got, p["code"].as_str()),
            (status, Some(code)),
            "{body}: {p}"
        );
    }
    let (got, p) = put(
        &w,
        &app,
        "not-an-id",
        json!({"currency": "EUR", "low_balance_threshold": 1}),
    )
    .await;
    assert_eq!(
        (got, p["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("account_not_found"))
    );

    // Another tenant: the account is unknown there, and nothing is charged.
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
    let stranger = w.app.bearer_client(key.expose_secret());
    let (got, p) = top_up(&w, &stranger, &account, "x-1", 500).await;
    assert_eq!(
        (got, p["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("account_not_found")),
        "{p}"
    );
    let (got, _) = get(&w, &stranger, &format!("/v1/accounts/{account}/wallet")).await;
    assert_eq!(got, StatusCode::NOT_FOUND);
    let (got, _) = put(
        &w,
        &stranger,
        &account,
        json!({"currency": "EUR", "low_balance_threshold": 0}),
    )
    .await;
    assert_eq!(got, StatusCode::NOT_FOUND);

    // A wallet in another currency than the tariff cannot pay the session.
    let (status, other) = w
        .post(
            &app,
            "/v1/accounts",
            "b1-gbp",
            json!({"kind": "driver", "name": "Pound Driver"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let other = other["id"].as_str().unwrap();
    let (status, _) = put(
        &w,
        &app,
        other,
        json!({"currency": "GBP", "low_balance_threshold": 0, "pays_sessions": true}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let sessions = w.app.db.count_rows("payment_sessions").await;
    let (got, p) = w
        .post(
            &app,
            "/v1/payment-sessions",
            "b1-gbp-s",
            crate::payments::open_body(json!({"account_id": other}), 500),
        )
        .await;
    assert_eq!(
        (got, p["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_field")),
        "{p}"
    );
    assert_eq!(w.app.db.count_rows("payment_sessions").await, sessions);

    assert_eq!(w.app.db.count_rows("wallet_entries").await, entries);
    let (_, v) = get(&w, &app, &format!("/v1/accounts/{account}/wallet")).await;
    assert_eq!(value(&v["balance"]), 1000);
    assert_eq!(value(&v["low_balance_threshold"]), 100);
}

async fn sessions_pay_from_the_wallet_without_a_card(backend: Backend) {
    let w = charging(backend, fast_workers).await;
    let app = w.app_client().await;
    let (account, _) = driver_with_card(&w, &app, "s1").await;
    open_wallet(&w, &app, &account, 0, true).await;
    let (status, _) = top_up(&w, &app, &account, "s1-t", 3000).await;
    assert_eq!(status, StatusCode::CREATED);
    let wallet_path = format!("/v1/accounts/{account}/wallet");
    let decrypts = |events: &[voltvault::audit::AuditRecord]| {
        events
            .iter()
            .filter(|e| e.event_type == "card.decrypt")
            .count()
    };
    let decrypted_before = decrypts(&w.app.audit_trail().await);

    // A tap: the hold is reserved from the wallet, not asked of a card.
    let (status, s) = w
        .open("s1-tap", json!({"rfid_uid": "04A2B3C4D5E6F7"}), 2000)
        .await;
    assert_eq!(status, StatusCode::CREATED, "{s}");
    assert_eq!(s["status"], "authorized", "{s}");
    assert_eq!(s["account_id"], account.as_str());
    assert_eq!(s["token"], format!("wallet_{account}"));
    let id = s["id"].as_str().unwrap().to_owned();
    let (_, v) = get(&w, &app, &wallet_path).await;
    assert_eq!(
        (
            value(&v["balance"]),
            value(&v["reserved"]),
            value(&v["available"])
        ),
        (3000, 2000, 1000),
        "{v}"
    );

    // A second one finds too little available: declined, nothing reserved.
    let (status, d) = w
        .post(
            &app,
            "/v1/payment-sessions",
            "s1-acct",
            crate::payments::open_body(json!({"account_id": account}), 2000),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{d}");
    assert_eq!(d["status"], "declined", "{d}");
    assert_eq!(d["decline_code"], "insufficient_funds");
    let (_, v) = get(&w, &app, &wallet_path).await;
    assert_eq!(value(&v["reserved"]), 2000);

    // Completing captures the cost from the balance and releases the rest.
    w.meter(&id, "s1-m0", 0, 0).await;
    let (status, done) = w.complete(&id, 3_000, 10).await;
    assert_eq!(status, StatusCode::OK, "{done}");
    assert_eq!(done["status"], "completed", "{done}");
    let captured = value(&done["captured_amount"]);
    assert!(captured > 0 && captured <= 2000, "{done}");
    let (_, v) = get(&w, &app, &wallet_path).await;
    assert_eq!(
        (value(&v["balance"]), value(&v["reserved"])),
        (3000 - captured, 0),
        "{v}"
    );
    let kinds: Vec<&str> = v["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, vec!["release", "capture", "hold", "top_up"], "{v}");
    // Completing again changes nothing.
    let (_, again) = w.complete(&id, 3_000, 10).await;
    assert_eq!(again["captured_amount"], done["captured_amount"]);
    // Its receipt names no card and totals what the wallet paid.
    let (status, receipt) = get(&w, &app, &format!("/v1/receipts/rcpt_{id}")).await;
    assert_eq!(status, StatusCode::OK, "{receipt}");
    assert!(!receipt.to_string().contains("4242"), "{receipt}");
    assert_eq!(value(&receipt["total_incl_vat"]), captured, "{receipt}");

    // A refund credits the wallet back, once per key.
    let operator = w
        .app
        .bearer_client(&w.app.staff_session_in(w.tenant, Role::Operator).await);
    for _ in 0..2 {
        let (status, r) = w
            .post(
                &operator,
                &format!("/v1/payment-sessions/{id}/refunds"),
                "s1-refund",
                json!({"amount": {"value": 100, "currency": "EUR"}, "reason": "connector fault"}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{r}");
        assert_eq!(value(&r["refunded_amount"]), 100);
    }
    let (_, v) = get(&w, &app, &wallet_path).await;
    assert_eq!(value(&v["balance"]), 3000 - captured + 100, "{v}");

    // A cancelled session gives its whole hold back.
    let (status, c) = w
        .open("s1-tap2", json!({"rfid_uid": "04A2B3C4D5E6F7"}), 500)
        .await;
    assert_eq!(c["status"], "authorized", "{c}");
    let cid = c["id"].as_str().unwrap();
    let (status2, x) = w
        .post(
            &w.charger,
            &format!("/v1/payment-sessions/{cid}/cancel"),
            "s1-cancel",
            json!({}),
        )
        .await;
    assert_eq!(
        (status, status2),
        (StatusCode::CREATED, StatusCode::OK),
        "{x}"
    );
    assert_eq!(x["status"], "cancelled", "{x}");
    let (_, v) = get(&w, &app, &wallet_path).await;
    assert_eq!(
        (value(&v["balance"]), value(&v["reserved"])),
        (3000 - captured + 100, 0),
        "{v}"
    );

    // No card was opened for any of it.
    assert_eq!(decrypts(&w.app.audit_trail().await), decrypted_before);
    // The ledger adds up: top-up less captures plus refunds.
    assert_eq!(w.app.db.count_rows("wallet_holds").await, 2);
}

/// Records every webhook body it is sent and answers 204.
async fn receiver() -> (String, Arc<Mutex<Vec<Value>>>) {
    async fn receive(
        State(seen): State<Arc<Mutex<Vec<Value>>>>,
        body: axum::body::Bytes,
    ) -> axum::http::StatusCode {
        seen.lock()
            .unwrap()
            .push(serde_json::from_slice(&body).unwrap_or(Value::Null));
        axum::http::StatusCode::NO_CONTENT
    }
    let seen = Arc::new(Mutex::new(Vec::new()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new()
        .route("/hook", axum::routing::post(receive))
        .with_state(seen.clone());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{addr}/hook"), seen)
}

/// Opens `n` sessions of `hold` each for the account, then completes them
/// all at once with more energy than the hold covers: each captures `hold`.
async fn drain(w: &Charging, prefix: &str, n: usize, hold: i64) {
    let mut ids = Vec::new();
    for i in 0..n {
        let (status, s) = w
            .open(
                &format!("{prefix}-{i}"),
                json!({"rfid_uid": "04A2B3C4D5E6F7"}),
                hold,
            )
            .await;
        assert_eq!(
            (status, s["status"].as_str()),
            (StatusCode::CREATED, Some("authorized")),
            "{s}"
        );
        let id = s["id"].as_str().unwrap().to_owned();
        w.meter(&id, &format!("{prefix}-{i}-m0"), 0, 0).await;
        ids.push(id);
    }
    let done =
        futures_util::future::join_all(ids.iter().map(|id| w.complete(id, 80_000, 120))).await;
    for (status, d) in done {
        assert_eq!(status, StatusCode::OK, "{d}");
        assert_eq!(d["status"], "completed", "{d}");
        assert_eq!(value(&d["captured_amount"]), hold, "{d}");
    }
}

async fn low_balance_events(w: &Charging) -> i64 {
    w.app
        .db
        .count_rows("webhook_deliveries WHERE event_type = 'wallet.low_balance'")
        .await
}

async fn a_low_balance_triggers_exactly_one_notification(backend: Backend) {
    let relay = crate::smtp_sink::Relay::start().await;
    let w = charging(backend, |c| {
        fast_workers(c);
        c.notifications.worker_interval_ms = 50;
        c.notifications.backoff_base_ms = 50;
        c.notifications.smtp = Some(relay.config.clone());
    })
    .await;
    let app = w.app_client().await;
    let (url, seen) = receiver().await;
    let r = app
        .post(w.app.url("/v1/webhooks"))
        .json(&json!({"url": url, "events": ["wallet.low_balance"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let (account, token) = driver_with_card(&w, &app, "l1").await;
    open_wallet(&w, &app, &account, 1000, true).await;
    let (status, _) = top_up(&w, &app, &account, "l1-t1", 3000).await;
    assert_eq!(status, StatusCode::CREATED);
    let wallet_path = format!("/v1/accounts/{account}/wallet");

    // 3000 -> 2300 -> 1600 -> 900 (below 1000) -> 200: four sessions
    // completed at once; one crossing, one event.
    drain(&w, "l1-a", 4, 700).await;
    let (_, v) = get(&w, &app, &wallet_path).await;
    assert_eq!(
        (value(&v["balance"]), value(&v["reserved"])),
        (200, 0),
        "{v}"
    );
    assert_eq!(low_balance_events(&w).await, 1);
    // Further debits below the threshold send nothing more.
    drain(&w, "l1-b", 1, 150).await;
    assert_eq!(low_balance_events(&w).await, 1);

    // A top-up that stays below the threshold does not re-arm it ...
    let (status, _) = top_up(&w, &app, &account, "l1-t2", 100).await;
    assert_eq!(status, StatusCode::CREATED);
    drain(&w, "l1-c", 1, 100).await;
    assert_eq!(low_balance_events(&w).await, 1);
    // ... one that lifts the balance to it does: the next crossing notifies again.
    let (status, t) = top_up(&w, &app, &account, "l1-t3", 2000).await;
    assert_eq!(status, StatusCode::CREATED, "{t}");
    assert_eq!(value(&t["wallet"]["balance"]), 2050);
    drain(&w, "l1-d", 3, 600).await; // 2050 -> 1450 -> 850 -> 250
    assert_eq!(low_balance_events(&w).await, 2);

    // Delivered to the endpoint: exactly two, one per crossing.
    for _ in 0..600 {
        if seen.lock().unwrap().len() >= 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let bodies = seen.lock().unwrap().clone();
    assert_eq!(bodies.len(), 2, "{bodies:?}");
    let ids: Vec<&str> = bodies.iter().map(|b| b["id"].as_str().unwrap()).collect();
    assert_eq!(
        ids,
        vec![
            format!("evt_wallet_{account}_low_1"),
            format!("evt_wallet_{account}_low_2")
        ]
    );
    let first = &bodies[0];
    assert_eq!(first["type"], "wallet.low_balance");
    assert_eq!(first["data"]["account_id"], account.as_str());
    assert_eq!(first["data"]["currency"], "EUR");
    assert_eq!(value(&first["data"]["low_balance_threshold"]), 1000);
    assert_eq!(value(&first["data"]["balance"]), 900);
    assert_eq!(value(&bodies[1]["data"]["balance"]), 850);
    for b in &bodies {
        let text = b.to_string();
        assert!(!text.contains(&token) && !text.contains("4242"), "{text}");
    }
    // And one mail to the owner per crossing.
    let mails = relay.wait_for("running low", 2).await;
    assert_eq!(mails.len(), 2, "{mails:?}");
    assert!(mails.iter().all(|m| m.contains("dana@example.com")));
    // The balance as it stood when the mail was queued; the threshold.
    assert!(
        crate::smtp_sink::body(&mails[0]).contains("below the 10.00 EUR"),
        "{}",
        mails[0]
    );
}

async fn holds_never_overdraw_and_raise_while_the_wallet_allows(backend: Backend) {
    let w = charging(backend, fast_workers).await;
    let app = w.app_client().await;
    let (account, _) = driver_with_card(&w, &app, "h1").await;
    open_wallet(&w, &app, &account, 0, true).await;
    let (status, _) = top_up(&w, &app, &account, "h1-t", 3000).await;
    assert_eq!(status, StatusCode::CREATED);
    let wallet_path = format!("/v1/accounts/{account}/wallet");

    // Five holds of 700 at once against 3000: four fit, one is declined.
    let keys: Vec<String> = (0..5).map(|i| format!("h1-{i}")).collect();
    let opened = futures_util::future::join_all(
        keys.iter()
            .map(|k| w.open(k, json!({"rfid_uid": "04A2B3C4D5E6F7"}), 700)),
    )
    .await;
    let mut statuses: Vec<String> = opened
        .iter()
        .map(|(_, s)| s["status"].as_str().unwrap().to_owned())
        .collect();
    statuses.sort();
    assert_eq!(
        statuses,
        vec![
            "authorized",
            "authorized",
            "authorized",
            "authorized",
            "declined"
        ],
        "{opened:?}"
    );
    let (_, v) = get(&w, &app, &wallet_path).await;
    assert_eq!(
        (value(&v["reserved"]), value(&v["available"])),
        (2800, 200),
        "{v}"
    );
    for (_, s) in &opened {
        if s["status"] == "authorized" {
            let id = s["id"].as_str().unwrap();
            let (status, c) = w
                .post(
                    &w.charger,
                    &format!("/v1/payment-sessions/{id}/cancel"),
                    &format!("{id}-cancel"),
                    json!({}),
                )
                .await;
            assert_eq!(status, StatusCode::OK, "{c}");
        }
    }
    let (_, v) = get(&w, &app, &wallet_path).await;
    assert_eq!(
        (value(&v["balance"]), value(&v["reserved"])),
        (3000, 0),
        "{v}"
    );

    // Near the hold, it is raised from the wallet; when the wallet cannot
    // cover the next raise, the charger is told to stop.
    let (_, s) = w
        .open("h1-inc", json!({"rfid_uid": "04A2B3C4D5E6F7"}), 2000)
        .await;
    assert_eq!(s["status"], "authorized", "{s}");
    let id = s["id"].as_str().unwrap().to_owned();
    w.meter(&id, "h1-inc-m0", 0, 0).await;
    // 0.59 EUR/kWh + 19% VAT: 23 kWh cost 16.15 EUR, past 80% of the 20.00
    // held. Raising it to 40.00 needs 20.00 more; only 10.00 is available.
    let (status, m) = w.meter(&id, "h1-inc-m1", 23_000, 30).await;
    assert_eq!(status, StatusCode::OK, "{m}");
    assert_eq!(m["action"], "stop", "{m}");
    assert_eq!(value(&m["authorized_amount"]), 2000, "{m}");
    let (_, v) = get(&w, &app, &wallet_path).await;
    assert_eq!(value(&v["reserved"]), 2000, "{v}");
    let (status, done) = w.complete(&id, 23_000, 30).await;
    assert_eq!(status, StatusCode::OK, "{done}");
    let captured = value(&done["captured_amount"]);

    // With more in the wallet the same happens with a raise.
    let (status, _) = top_up(&w, &app, &account, "h1-t3", 5000).await;
    assert_eq!(status, StatusCode::CREATED);
    let (_, s) = w
        .open("h1-inc2", json!({"rfid_uid": "04A2B3C4D5E6F7"}), 2000)
        .await;
    let id = s["id"].as_str().unwrap().to_owned();
    w.meter(&id, "h1-inc2-m0", 0, 0).await;
    let (status, m) = w.meter(&id, "h1-inc2-m1", 23_000, 30).await;
    assert_eq!(status, StatusCode::OK, "{m}");
    assert_eq!(m["action"], "continue", "{m}");
    assert_eq!(value(&m["authorized_amount"]), 4000, "{m}");
    let (_, v) = get(&w, &app, &wallet_path).await;
    assert_eq!(value(&v["reserved"]), 4000, "{v}");
    assert_eq!(v["entries"][0]["kind"], "increment", "{v}");
    let (_, done) = w.complete(&id, 30_000, 40).await;
    let captured2 = value(&done["captured_amount"]);
    assert!(captured2 > 2000, "{done}");
    let (_, v) = get(&w, &app, &wallet_path).await;
    assert_eq!(
        (value(&v["balance"]), value(&v["reserved"])),
        (3000 - captured + 5000 - captured2, 0),
        "{v}"
    );
}

/// The ledger through the wallet acquirer: every operation retried with its
/// key is one entry, and what recovery reads matches.
async fn retried_ledger_operations_are_one_entry_each(backend: Backend) {
    use voltvault::clock::SystemClock;
    use voltvault::ids::AccountId;
    use voltvault::money::{Currency, Money};
    use voltvault::payments::connectors::{
        Acquirer, AcquirerError, CaptureRequest, DeclineCode, HoldLookup, HoldState,
        IncrementRequest, InvalidReason, RefundRequest, VoidRequest,
    };
    use voltvault::wallets::acquirer::WalletAcquirer;

    let w = charging(backend, fast_workers).await;
    let app = w.app_client().await;
    let (account, _) = driver_with_card(&w, &app, "r1").await;
    open_wallet(&w, &app, &account, 0, true).await;
    let (status, _) = top_up(&w, &app, &account, "r1-t", 1000).await;
    assert_eq!(status, StatusCode::CREATED);
    let id: AccountId = account.parse().unwrap();
    let eur = Currency::parse("EUR").unwrap();
    let wallet = WalletAcquirer::new(w.app.store.clone(), std::sync::Arc::new(SystemClock));
    let entries = || async { w.app.db.count_rows("wallet_entries").await };
    let start = entries().await;

    let a = wallet
        .reserve("k-auth", Money::new(400, eur), "sess-1", id)
        .await
        .unwrap();
    let again = wallet
        .reserve("k-auth", Money::new(400, eur), "sess-1", id)
        .await
        .unwrap();
    assert_eq!(a, again);
    assert_eq!(entries().await, start + 1);
    // Another currency is refused before anything is reserved.
    assert_eq!(
        wallet
            .reserve(
                "k-x",
                Money::new(1, Currency::parse("GBP").unwrap()),
                "sess-x",
                id
            )
            .await,
        Err(AcquirerError::Invalid(InvalidReason::CurrencyMismatch))
    );
    // More than is available: declined.
    assert_eq!(
        wallet
            .reserve("k-big", Money::new(601, eur), "sess-2", id)
            .await,
        Err(AcquirerError::Declined(DeclineCode::InsufficientFunds))
    );
    let raise = IncrementRequest {
        idempotency_key: "k-inc".into(),
        auth_ref: a.reference.clone(),
        new_total: Money::new(700, eur),
    };
    assert_eq!(wallet.increment(raise.clone()).await.unwrap().value, 700);
    assert_eq!(wallet.increment(raise).await.unwrap().value, 700);
    assert_eq!(entries().await, start + 2);

    let capture = CaptureRequest {
        idempotency_key: "k-cap".into(),
        auth_ref: a.reference.clone(),
        amount: Money::new(650, eur),
    };
    assert_eq!(
        wallet
            .capture(CaptureRequest {
                amount: Money::new(701, eur),
                ..capture.clone()
            })
            .await,
        Err(AcquirerError::Invalid(
            InvalidReason::CaptureExceedsAuthorization
        ))
    );
    let c1 = wallet.capture(capture.clone()).await.unwrap();
    let c2 = wallet.capture(capture).await.unwrap();
    assert_eq!(c1, c2);
    assert_eq!((c1.captured.value, c1.released.value), (650, 50));
    assert_eq!(entries().await, start + 4); // capture and release
    // A captured hold cannot be released.
    assert_eq!(
        wallet
            .void(VoidRequest {
                idempotency_key: "k-void".into(),
                auth_ref: a.reference.clone(),
            })
            .await,
        Err(AcquirerError::Invalid(InvalidReason::WrongState))
    );
    let refund = RefundRequest {
        idempotency_key: "k-ref".into(),
        capture_ref: c1.reference.clone(),
        amount: Money::new(200, eur),
    };
    wallet.refund(refund.clone()).await.unwrap();
    wallet.refund(refund).await.unwrap();
    assert_eq!(entries().await, start + 5);
    assert_eq!(
        wallet
            .refund(RefundRequest {
                idempotency_key: "k-ref2".into(),
                capture_ref: c1.reference.clone(),
                amount: Money::new(451, eur),
            })
            .await,
        Err(AcquirerError::Invalid(InvalidReason::RefundExceedsCapture))
    );
    let hold = wallet
        .find_hold(HoldLookup::Reference("sess-1"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(hold.state, HoldState::Captured);
    assert_eq!(
        (
            hold.authorized.value,
            hold.captured.value,
            hold.refunded.value
        ),
        (700, 650, 200)
    );
    assert!(
        wallet
            .find_hold(HoldLookup::Reference("sess-2"))
            .await
            .unwrap()
            .is_none()
    );
    let (_, v) = get(&w, &app, &format!("/v1/accounts/{account}/wallet")).await;
    assert_eq!(
        (value(&v["balance"]), value(&v["reserved"])),
        (1000 - 650 + 200, 0),
        "{v}"
    );

    // The ledger is append-only in the database itself, even for its owner.
    use sqlx::Connection;
    for sql in [
        "UPDATE wallet_entries SET amount = 0",
        "DELETE FROM wallet_entries",
    ] {
        let refused = match w.app.db.backend {
            Backend::Sqlite => {
                let mut c = sqlx::SqliteConnection::connect(&w.app.db.url)
                    .await
                    .unwrap();
                sqlx::query(sql).execute(&mut c).await.map(|_| ())
            }
            Backend::Postgres => {
                let mut c = sqlx::PgConnection::connect(&w.app.db.url).await.unwrap();
                sqlx::query(sql).execute(&mut c).await.map(|_| ())
            }
        };
        let error = refused.expect_err(sql);
        assert!(error.to_string().contains("append-only"), "{sql}: {error}");
    }
    assert_eq!(entries().await, start + 5);
}

/// A wallet session whose authorization answer was lost: recovery asks the
/// ledger, and either finds the reservation (authorized) or not (failed,
/// nothing reserved), without placing a second one.
async fn recovery_settles_a_lost_wallet_hold_from_the_ledger(backend: Backend) {
    use voltvault::clock::SystemClock;
    use voltvault::ids::{AccountId, PaymentSessionId};
    use voltvault::money::{Currency, Money};
    use voltvault::payments::session::{
        Intent, IntentKind, IntentState, PaymentSession, SessionStatus, acquirer_key,
    };
    use voltvault::wallets::acquirer::WalletAcquirer;

    let w = charging(backend, fast_workers).await;
    let app = w.app_client().await;
    let (account, _) = driver_with_card(&w, &app, "c1").await;
    open_wallet(&w, &app, &account, 0, true).await;
    let (status, _) = top_up(&w, &app, &account, "c1-t", 1000).await;
    assert_eq!(status, StatusCode::CREATED);
    let id: AccountId = account.parse().unwrap();
    let eur = Currency::parse("EUR").unwrap();
    let wallet = WalletAcquirer::new(w.app.store.clone(), std::sync::Arc::new(SystemClock));

    // Two sessions written as `create` writes them, their intents' leases
    // already run out: the node that wrote them is gone.
    let past = voltvault::clock::Clock::now(&SystemClock) - chrono::Duration::seconds(30);
    let mut sessions = Vec::new();
    for key in ["c1-landed", "c1-lost"] {
        let sid = PaymentSessionId::generate();
        let session = PaymentSession {
            id: sid,
            tenant: w.tenant,
            created_by: "test".into(),
            idem_key: key.into(),
            evse_id: "DE*VVT*E0001*1".into(),
            connector_id: "1".into(),
            tariff_id: "standard".into(),
            tariff_version: 1,
            token: format!("wallet_{account}"),
            account: Some(id),
            rfid: None,
            acquirer: "wallet".into(),
            hold: Money::new(400, eur),
            authorized: Money::zero(eur),
            cost: Money::zero(eur),
            energy_wh: 0,
            captured: None,
            refunded: Money::zero(eur),
            status: SessionStatus::Authorizing,
            stop_requested: false,
            incremental: false,
            auth_ref: None,
            authorization_code: None,
            capture_ref: None,
            decline_code: None,
            created_at: past,
            updated_at: past,
            ended_at: None,
            revision: 0,
        };
        let intent = Intent {
            acquirer_key: acquirer_key(sid, IntentKind::Authorize, ""),
            session: sid,
            kind: IntentKind::Authorize,
            amount: 400,
            state: IntentState::Pending,
            error_code: None,
            reason: None,
            idem_principal: None,
            idem_key: None,
            attempts: 0,
            created_at: past,
            updated_at: past,
            lease_until: past,
        };
        w.app
            .store
            .create_payment_session(&session, &intent)
            .await
            .unwrap();
        sessions.push((sid, intent.acquirer_key));
    }
    // The first one's call reached the ledger before the node died.
    let (landed, landed_key) = &sessions[0];
    wallet
        .reserve(landed_key, Money::new(400, eur), &landed.to_string(), id)
        .await
        .unwrap();

    let settled = |sid: PaymentSessionId| {
        let app = app.clone();
        let url = w.app.url(&format!("/v1/payment-sessions/{sid}"));
        async move {
            for _ in 0..300 {
                let s: Value = app.get(&url).send().await.unwrap().json().await.unwrap();
                if s["status"] != "authorizing" {
                    return s;
                }
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            panic!("{sid} stayed authorizing");
        }
    };
    let s = settled(*landed).await;
    assert_eq!(s["status"], "authorized", "{s}");
    assert_eq!(value(&s["authorized_amount"]), 400, "{s}");
    let s = settled(sessions[1].0).await;
    assert_eq!(s["status"], "failed", "{s}");
    // One reservation, for the one that landed.
    let (_, v) = get(&w, &app, &format!("/v1/accounts/{account}/wallet")).await;
    assert_eq!(
        (value(&v["balance"]), value(&v["reserved"])),
        (1000, 400),
        "{v}"
    );
    assert_eq!(w.app.db.count_rows("wallet_holds").await, 1);
}

crate::on_both_databases!(
    a_wallet_is_opened_and_topped_up_once,
    bad_wallet_input_is_refused_and_writes_nothing,
    sessions_pay_from_the_wallet_without_a_card,
    a_low_balance_triggers_exactly_one_notification,
    holds_never_overdraw_and_raise_while_the_wallet_allows,
    retried_ledger_operations_are_one_entry_each,
    recovery_settles_a_lost_wallet_hold_from_the_ledger,
);
