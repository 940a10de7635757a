//! Monthly invoices on both databases, with the clock fixed at the end of
//! October: sessions billed to a fleet and its driver, then, in November,
//! the fleet's October invoice. Its line agrees with the receipt, the CSV
//! row, the CDR and the webhooks to the cent; numbers are gapless per
//! tenant; an invoice never changes and a session is on one invoice.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::StatusCode;
use serde_json::{Value, json};
use voltvault::auth::policy::Role;
use voltvault::clock::FixedClock;

use crate::helpers::Backend;
use crate::payments::{APPROVE, Charging, charging_at};
use crate::webhooks::{Receiver, create_webhook, fast_deliveries, serve};

fn t(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .unwrap()
        .with_timezone(&Utc)
}

fn money(v: &Value) -> i64 {
    v["value"].as_i64().unwrap()
}

/// "8.78" -> 878.
fn cents(text: &str) -> i64 {
    let (units, frac) = text
        .trim_matches('"')
        .split_once('.')
        .unwrap_or((text, "0"));
    units.parse::<i64>().unwrap() * 100 + format!("{frac:0<2}")[..2].parse::<i64>().unwrap()
}

/// An operator signed in at the clock's time.
async fn operator(w: &Charging, clock: &FixedClock) -> reqwest::Client {
    w.app.bearer_client(
        &w.app
            .staff_session_at(w.tenant, Role::Operator, Some(clock_now(clock)))
            .await,
    )
}

async fn get(w: &Charging, client: &reqwest::Client, path: &str) -> (StatusCode, Value) {
    let r = client.get(w.app.url(path)).send().await.unwrap();
    let status = r.status();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// A session started with `method` by the charger at the clock's time,
/// charging `wh` over 30 minutes; returns the completed session.
async fn charge(w: &Charging, clock: &FixedClock, key: &str, method: Value, wh: i64) -> Value {
    let start = clock_now(clock);
    let (status, s) = w.open(key, method, 5000).await;
    assert_eq!(status, StatusCode::CREATED, "{s}");
    let id = s["id"].as_str().unwrap().to_owned();
    let path = format!("/v1/payment-sessions/{id}/meter");
    let (status, m) = w
        .post(
            &w.charger,
            &path,
            &format!("{key}-m0"),
            json!({"energy_wh": 0, "at": start}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{m}");
    clock.advance(chrono::Duration::minutes(30));
    let (status, done) = w
        .post(
            &w.charger,
            &format!("/v1/payment-sessions/{id}/complete"),
            &format!("{key}-done"),
            json!({"energy_wh": wh, "at": clock_now(clock)}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{done}");
    assert_eq!(done["status"], "completed", "{done}");
    done
}

fn clock_now(clock: &FixedClock) -> DateTime<Utc> {
    use voltvault::clock::Clock;
    clock.now()
}

/// `POST /v1/invoices` for `account`'s `period`.
async fn issue(
    w: &Charging,
    client: &reqwest::Client,
    key: &str,
    account: &str,
    period: &str,
) -> (StatusCode, Value) {
    w.post(
        client,
        "/v1/invoices",
        key,
        json!({"account_id": account, "period": period}),
    )
    .await
}

async fn create(w: &Charging, app: &reqwest::Client, key: &str, body: Value) -> String {
    let (status, a) = w.post(app, "/v1/accounts", key, body).await;
    assert_eq!(status, StatusCode::CREATED, "{a}");
    a["id"].as_str().unwrap().to_owned()
}

async fn attach_card(w: &Charging, app: &reqwest::Client, account: &str, uid: &str, key: &str) {
    let (status, tok) = w
        .post(
            app,
            "/v1/tokens",
            &format!("{key}-t"),
            json!({"card": {"number": APPROVE, "exp_month": 12, "exp_year": 2039}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{tok}");
    let (status, m) = w
        .post(
            app,
            &format!("/v1/accounts/{account}/payment-methods"),
            &format!("{key}-pm"),
            json!({"token": tok["token"]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{m}");
    let (status, c) = w
        .post(
            app,
            &format!("/v1/accounts/{account}/rfid-cards"),
            &format!("{key}-rf"),
            json!({"uid": uid}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{c}");
}

async fn a_fleet_invoice_agrees_everywhere_to_the_cent(backend: Backend) {
    let clock = FixedClock::new(t("2026-10-31T20:00:00Z"));
    let w = charging_at(backend, fast_deliveries, Some(clock.clone())).await;
    let app = w.app_client().await;
    let receiver = Arc::new(Receiver::default());
    let url = serve(receiver.clone()).await;
    let (status, hook) =
        create_webhook(&w, &app, &url, &["session.completed", "invoice.issued"]).await;
    assert_eq!(status, StatusCode::CREATED, "{hook}");

    let fleet = create(
        &w,
        &app,
        "fleet",
        json!({"kind": "fleet", "name": "Nord Logistics GmbH", "email": "ap@nord.example"}),
    )
    .await;
    let driver = create(
        &w,
        &app,
        "driver",
        json!({"kind": "driver", "name": "Fahrer Eins", "fleet_id": fleet}),
    )
    .await;
    let loner = create(&w, &app, "loner", json!({"kind": "driver", "name": "Solo"})).await;
    attach_card(&w, &app, &driver, "04A2B3C4D5E6F7", "d").await;
    attach_card(&w, &app, &loner, "04A2B3C4D5E6F8", "l").await;

    // In October: the fleet's driver taps twice, someone else once.
    let first = charge(
        &w,
        &clock,
        "s1",
        json!({"rfid_uid": "04A2B3C4D5E6F7"}),
        12_500,
    )
    .await;
    let second = charge(
        &w,
        &clock,
        "s2",
        json!({"rfid_uid": "04A2B3C4D5E6F7"}),
        30_000,
    )
    .await;
    let other = charge(
        &w,
        &clock,
        "s3",
        json!({"rfid_uid": "04A2B3C4D5E6F8"}),
        5_000,
    )
    .await;

    // Not before the month has ended.
    let operator = operator(&w, &clock).await;
    let (status, p) = issue(&w, &operator, "i-early", &fleet, "2026-10").await;
    assert_eq!(
        (status, p["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("period_not_ended"))
    );

    clock.advance(chrono::Duration::hours(3));
    let operator = self::operator(&w, &clock).await;
    let (status, inv) = issue(&w, &operator, "i-1", &fleet, "2026-10").await;
    assert_eq!(status, StatusCode::CREATED, "{inv}");
    assert_eq!(inv["number"], "INV-000001");
    assert_eq!(inv["period"], "2026-10");
    assert_eq!(inv["bill_to"]["name"], "Nord Logistics GmbH");
    let lines = inv["lines"].as_array().unwrap();
    assert_eq!(lines.len(), 2, "{inv}");
    assert_eq!(lines[0]["session_id"], first["id"]);
    assert_eq!(lines[1]["session_id"], second["id"]);
    // 12.5 kWh × 0.59 × 1.19 = 8.78; 30 kWh = 21.06.
    assert_eq!(money(&lines[0]["gross"]), 878);
    assert_eq!(money(&lines[1]["gross"]), 2106);
    let total = money(&inv["total_incl_vat"]);
    assert_eq!(total, 878 + 2106);
    assert_eq!(
        money(&inv["total_excl_vat"]) + money(&inv["total_vat"]),
        total
    );
    assert_eq!(inv["vat"].as_array().unwrap().len(), 1);
    assert_eq!(inv["vat"][0]["rate"], "19");
    assert_eq!(money(&inv["vat"][0]["gross"]), total);
    assert_eq!(money(&inv["amount_paid"]), total);
    assert_eq!(money(&inv["amount_due"]), 0);

    // Each line is its session's receipt, CSV row and CDR.
    let csv = operator
        .get(
            w.app
                .url("/v1/exports/sessions.csv?from=2026-10-01T00:00:00Z&to=2026-11-01T00:00:00Z"),
        )
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let mut reader = csv::Reader::from_reader(csv.as_ref());
    let header = reader.headers().unwrap().clone();
    let col = |name: &str| header.iter().position(|h| h == name).unwrap();
    let rows: Vec<csv::StringRecord> = reader.records().map(|r| r.unwrap()).collect();
    assert_eq!(rows.len(), 3);
    let (status, cdrs) = get(
        &w,
        &operator,
        "/v1/exports/cdrs?from=2026-10-01T00:00:00Z&to=2026-11-01T00:00:00Z",
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{cdrs}");
    for (line, session) in lines.iter().zip([&first, &second]) {
        let sid = session["id"].as_str().unwrap();
        let gross = money(&line["gross"]);
        assert_eq!(money(&session["captured_amount"]), gross);
        let (_, receipt) = get(&w, &app, &format!("/v1/receipts/rcpt_{sid}")).await;
        assert_eq!(money(&receipt["total_incl_vat"]), gross);
        assert_eq!(money(&receipt["total_vat"]), money(&line["vat"]));
        assert_eq!(line["receipt_id"], receipt["id"]);
        let row = rows.iter().find(|r| &r[col("session_id")] == sid).unwrap();
        assert_eq!(cents(&row[col("captured")]), gross);
        let cdr = cdrs
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["id"] == sid)
            .unwrap();
        assert_eq!(cents(&cdr["total_cost"]["incl_vat"].to_string()), gross);
        // A tap: the CDR names the card and the account it belongs to.
        assert_eq!(cdr["cdr_token"]["type"], "RFID", "{cdr}");
        assert_eq!(cdr["cdr_token"]["uid"], "04A2B3C4D5E6F7");
        assert_eq!(cdr["cdr_token"]["contract_id"], driver.as_str());
        assert_eq!(cdr["auth_method"], "WHITELIST");
    }

    // The webhooks: each session's completion and the invoice, same figures.
    // Four deliveries are due: three completions and the invoice. Wait for
    // them (a loaded machine may take seconds), then check there is no more.
    let delivered = || -> Vec<Value> {
        receiver
            .calls()
            .iter()
            .map(|(_, b)| serde_json::from_slice(b).unwrap())
            .collect()
    };
    for _ in 0..600 {
        if delivered().len() >= 4 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let bodies = delivered();
    assert_eq!(bodies.len(), 4, "{bodies:?}");
    let issued: Vec<&Value> = bodies
        .iter()
        .filter(|b| b["type"] == "invoice.issued")
        .collect();
    assert_eq!(issued.len(), 1, "{bodies:?}");
    assert_eq!(issued[0]["data"]["number"], "INV-000001");
    assert_eq!(money(&issued[0]["data"]["total_incl_vat"]), total);
    assert_eq!(issued[0]["data"]["lines"], 2);
    for session in [&first, &second] {
        let done = bodies
            .iter()
            .find(|b| b["type"] == "session.completed" && b["data"]["session_id"] == session["id"])
            .unwrap_or_else(|| panic!("no session.completed in {bodies:?}"));
        assert_eq!(done["data"]["captured_amount"], session["captured_amount"]);
    }

    // Once per account and month; the next invoice takes the next number.
    let (status, p) = issue(&w, &operator, "i-2", &fleet, "2026-10").await;
    assert_eq!(
        (status, p["code"].as_str()),
        (StatusCode::CONFLICT, Some("invoice_exists"))
    );
    // The driver's sessions are on the fleet's invoice already.
    let (status, p) = issue(&w, &operator, "i-3", &driver, "2026-10").await;
    assert_eq!(
        (status, p["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("nothing_to_invoice"))
    );
    let (status, solo) = issue(&w, &operator, "i-4", &loner, "2026-10").await;
    assert_eq!(status, StatusCode::CREATED, "{solo}");
    assert_eq!(solo["number"], "INV-000002", "refusals use no number");
    assert_eq!(
        money(&solo["total_incl_vat"]),
        money(&other["captured_amount"])
    );

    // History: by account and month, a page at a time; the app reads them too.
    let (status, page) = get(&w, &app, "/v1/invoices?period=2026-10&limit=1").await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(page["data"][0]["number"], "INV-000001");
    let cursor = page["next_cursor"].as_str().unwrap();
    let (_, page) = get(
        &w,
        &app,
        &format!("/v1/invoices?period=2026-10&limit=1&cursor={cursor}"),
    )
    .await;
    assert_eq!(page["data"][0]["number"], "INV-000002");
    assert!(page.get("next_cursor").is_none(), "{page}");
    let (_, mine) = get(&w, &app, &format!("/v1/invoices?account_id={loner}")).await;
    assert_eq!(mine["data"].as_array().unwrap().len(), 1);
    let id = inv["id"].as_str().unwrap();
    let (status, again) = get(&w, &app, &format!("/v1/invoices/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(again, inv);
    // A charger reads no invoices and issues none.
    let (status, _) = get(&w, &w.charger, "/v1/invoices").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = issue(&w, &app, "i-app", &loner, "2026-10").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // No card number in any of it.
    for text in [inv.to_string(), solo.to_string(), format!("{bodies:?}")] {
        assert!(!text.contains(APPROVE));
    }
}

/// A driver with one session in October, and the clock in November.
struct October {
    w: Charging,
    clock: FixedClock,
    app: reqwest::Client,
    account: String,
    operator: reqwest::Client,
}

async fn one_session_in_october(backend: Backend) -> October {
    let clock = FixedClock::new(t("2026-10-31T20:00:00Z"));
    let w = charging_at(backend, |_| {}, Some(clock.clone())).await;
    let app = w.app_client().await;
    let account = create(&w, &app, "a", json!({"kind": "driver", "name": "D"})).await;
    attach_card(&w, &app, &account, "04A2B3C4", "a").await;
    charge(&w, &clock, "s1", json!({"rfid_uid": "04A2B3C4"}), 1_000).await;
    clock.advance(chrono::Duration::days(2));
    let operator = operator(&w, &clock).await;
    October {
        w,
        clock,
        app,
        account,
        operator,
    }
}

async fn bad_invoice_requests_change_nothing(backend: Backend) {
    let October {
        w,
        clock,
        app,
        account,
        operator,
    } = one_session_in_october(backend).await;

    let cases = [
        (
            json!({"account_id": account, "period": "2026-13"}),
            "invalid_field",
        ),
        (
            json!({"account_id": account, "period": "October"}),
            "invalid_field",
        ),
        (
            json!({"account_id": "nobody", "period": "2026-10"}),
            "account_unknown",
        ),
        (
            json!({"account_id": account, "period": "2026-09"}),
            "nothing_to_invoice",
        ),
        (
            json!({"account_id": account, "period": "2026-11"}),
            "period_not_ended",
        ),
        (json!({"account_id": account}), "invalid_body"),
    ];
    for (i, (body, code)) in cases.into_iter().enumerate() {
        let (status, p) = w
            .post(&operator, "/v1/invoices", &format!("b-{i}"), body.clone())
            .await;
        assert!(status.is_client_error(), "{body}: {status} {p}");
        assert_eq!(p["code"], code, "{body}: {p}");
    }
    assert_eq!(w.app.db.count_rows("invoices").await, 0);
    assert_eq!(w.app.db.count_rows("invoice_counters").await, 0);
    for path in [
        "/v1/invoices?period=10-2026",
        "/v1/invoices?account_id=x",
        "/v1/invoices?cursor=zz",
    ] {
        let (status, p) = get(&w, &app, path).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: {p}");
    }
    let (status, _) = get(&w, &app, "/v1/invoices/not-an-id").await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Another tenant's account is unknown here, its invoices invisible.
    let (status, inv) = issue(&w, &operator, "ok", &account, "2026-10").await;
    assert_eq!(status, StatusCode::CREATED, "{inv}");
    let other = w
        .app
        .auth
        .create_tenant(
            "elsewhere",
            &voltvault::auth::Actor::cli(),
            &voltvault::auth::Origin::cli(),
        )
        .await
        .unwrap()
        .id;
    let stranger = w.app.bearer_client(
        &w.app
            .staff_session_at(other, Role::Operator, Some(clock_now(&clock)))
            .await,
    );
    let (status, p) = issue(&w, &stranger, "x", &account, "2026-10").await;
    assert_eq!(
        (status, p["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("account_unknown"))
    );
    let (status, _) = get(
        &w,
        &stranger,
        &format!("/v1/invoices/{}", inv["id"].as_str().unwrap()),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, list) = get(&w, &stranger, "/v1/invoices").await;
    assert_eq!(list["data"], json!([]));
}

/// The database itself refuses to change an issued invoice.
async fn issued_invoices_cannot_be_changed(backend: Backend) {
    let October {
        w,
        account,
        operator,
        ..
    } = one_session_in_october(backend).await;
    let (status, _) = issue(&w, &operator, "ok", &account, "2026-10").await;
    assert_eq!(status, StatusCode::CREATED);
    for sql in [
        "UPDATE invoices SET total_incl_vat = 1",
        "DELETE FROM invoices",
        "DELETE FROM invoice_lines",
    ] {
        assert!(w.app.db.execute(sql).await.is_err(), "{sql} was allowed");
    }
    assert_eq!(w.app.db.count_rows("invoices").await, 1);
}

/// Invoices issued at the same time take consecutive numbers, and the same
/// invoice asked for twice at once is issued once.
async fn numbers_stay_gapless_under_concurrent_issuing(backend: Backend) {
    let clock = FixedClock::new(t("2026-10-31T12:00:00Z"));
    let w = charging_at(backend, |_| {}, Some(clock.clone())).await;
    let app = w.app_client().await;
    let mut accounts = Vec::new();
    for i in 0..6 {
        let account = create(
            &w,
            &app,
            &format!("a{i}"),
            json!({"kind": "driver", "name": format!("D{i}")}),
        )
        .await;
        let uid = format!("04A2B3C{i}");
        attach_card(&w, &app, &account, &uid, &format!("a{i}")).await;
        charge(
            &w,
            &clock,
            &format!("s{i}"),
            json!({"rfid_uid": uid}),
            1_000 + i * 100,
        )
        .await;
        accounts.push(account);
    }
    clock.advance(chrono::Duration::days(1));
    let operator = operator(&w, &clock).await;
    // Every account once, and the first one three times more, all at once.
    let mut requests = Vec::new();
    for (i, account) in accounts
        .iter()
        .chain(std::iter::repeat_n(&accounts[0], 3))
        .enumerate()
    {
        let (w, operator) = (&w, operator.clone());
        let body = json!({"account_id": account, "period": "2026-10"});
        requests.push(async move {
            w.post(&operator, "/v1/invoices", &format!("c-{i}"), body)
                .await
        });
    }
    let answers = futures_util::future::join_all(requests).await;
    let mut numbers: Vec<String> = answers
        .iter()
        .filter(|(status, _)| *status == StatusCode::CREATED)
        .map(|(_, inv)| inv["number"].as_str().unwrap().to_owned())
        .collect();
    numbers.sort();
    let expected: Vec<String> = (1..=6).map(|n| format!("INV-{n:06}")).collect();
    assert_eq!(numbers, expected, "{answers:?}");
    for (status, p) in answers.iter().filter(|(s, _)| *s != StatusCode::CREATED) {
        assert_eq!(
            (*status, p["code"].as_str()),
            (StatusCode::CONFLICT, Some("invoice_exists"))
        );
    }
    assert_eq!(w.app.db.count_rows("invoices").await, 6);
    assert_eq!(w.app.db.count_rows("invoice_lines").await, 6);
}

/// Every node runs the monthly run: once October has ended, every payer of
/// October gets its invoice, once, and November's sessions wait.
async fn the_monthly_run_issues_last_months_invoices(backend: Backend) {
    let clock = FixedClock::new(t("2026-10-31T22:00:00Z"));
    let w = charging_at(
        backend,
        |c| c.billing.invoice_run_interval_secs = 1,
        Some(clock.clone()),
    )
    .await;
    let app = w.app_client().await;
    let fleet = create(&w, &app, "f", json!({"kind": "fleet", "name": "F"})).await;
    let driver = create(
        &w,
        &app,
        "d",
        json!({"kind": "driver", "name": "D", "fleet_id": fleet}),
    )
    .await;
    let solo = create(&w, &app, "s", json!({"kind": "driver", "name": "S"})).await;
    attach_card(&w, &app, &driver, "04A2B3C1", "d").await;
    attach_card(&w, &app, &solo, "04A2B3C2", "s").await;
    charge(&w, &clock, "s1", json!({"rfid_uid": "04A2B3C1"}), 2_000).await;
    charge(&w, &clock, "s2", json!({"rfid_uid": "04A2B3C2"}), 3_000).await;
    // 23:00 in October: the run (for September) issues nothing.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(w.app.db.count_rows("invoices").await, 0);
    clock.advance(chrono::Duration::hours(2));
    charge(&w, &clock, "s3", json!({"rfid_uid": "04A2B3C2"}), 4_000).await;
    for _ in 0..300 {
        if w.app.db.count_rows("invoices").await >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (_, page) = get(&w, &app, "/v1/invoices").await;
    let invoices = page["data"].as_array().unwrap();
    assert_eq!(invoices.len(), 2, "{page}");
    let mut numbers: Vec<&str> = invoices
        .iter()
        .map(|i| i["number"].as_str().unwrap())
        .collect();
    numbers.sort_unstable();
    assert_eq!(numbers, ["INV-000001", "INV-000002"]);
    let of = |account: &str| {
        invoices
            .iter()
            .find(|i| i["bill_to"]["account_id"] == account)
            .unwrap_or_else(|| panic!("no invoice for {account} in {page}"))
    };
    assert_eq!(of(&fleet)["lines"].as_array().unwrap().len(), 1);
    assert_eq!(
        of(&solo)["lines"].as_array().unwrap().len(),
        1,
        "November's session waits"
    );
    assert_eq!(of(&solo)["period"], "2026-10");
}

/// The driver gets the receipt by e-mail, the fleet its invoice, through a
/// real SMTP relay; an account without an address gets none.
async fn receipts_and_invoices_are_mailed_to_the_account(backend: Backend) {
    use crate::smtp_sink::{Relay, body};
    let relay = Relay::start().await;
    let clock = FixedClock::new(t("2026-10-31T20:00:00Z"));
    let w = charging_at(
        backend,
        |c| {
            fast_deliveries(c);
            c.notifications.smtp = Some(relay.config.clone());
        },
        Some(clock.clone()),
    )
    .await;
    let app = w.app_client().await;
    let fleet = create(
        &w,
        &app,
        "f",
        json!({"kind": "fleet", "name": "F", "email": "ap@fleet.example"}),
    )
    .await;
    let driver = create(
        &w,
        &app,
        "d",
        json!({"kind": "driver", "name": "D", "email": "dana@example.com", "fleet_id": fleet}),
    )
    .await;
    let quiet = create(&w, &app, "q", json!({"kind": "driver", "name": "Q"})).await;
    attach_card(&w, &app, &driver, "04A2B3C1", "d").await;
    attach_card(&w, &app, &quiet, "04A2B3C2", "q").await;
    let done = charge(&w, &clock, "s1", json!({"rfid_uid": "04A2B3C1"}), 12_500).await;
    charge(&w, &clock, "s2", json!({"rfid_uid": "04A2B3C2"}), 12_500).await;
    clock.advance(chrono::Duration::hours(4));
    let operator = operator(&w, &clock).await;
    let (status, inv) = issue(&w, &operator, "i", &fleet, "2026-10").await;
    assert_eq!(status, StatusCode::CREATED, "{inv}");

    let receipts = relay.wait_for("receipt", 1).await;
    assert_eq!(
        receipts.len(),
        1,
        "one receipt: the account without an address gets none; subjects: {:?}",
        relay.subjects()
    );
    let receipt = &receipts[0];
    assert!(receipt.contains("dana@example.com"));
    assert!(body(receipt).contains(done["receipt_id"].as_str().unwrap()));
    assert!(body(receipt).contains("8.78"), "{}", body(receipt));
    let invoices = relay.wait_for("INV-000001", 1).await;
    assert_eq!(invoices.len(), 1, "subjects: {:?}", relay.subjects());
    assert!(invoices[0].contains("ap@fleet.example"));
    let messages = relay.sink.messages();
    assert_eq!(messages.len(), 2, "{messages:?}");
    for m in &messages {
        assert!(!m.contains(APPROVE));
    }
}

/// A session left off its own month's invoice (settled late, or before
/// the account was ever invoiced) joins the next invoice, once.
async fn an_uninvoiced_earlier_session_joins_the_next_invoice(backend: Backend) {
    let clock = FixedClock::new(t("2026-09-30T20:00:00Z"));
    let w = charging_at(backend, |_| {}, Some(clock.clone())).await;
    let app = w.app_client().await;
    let account = create(&w, &app, "a", json!({"kind": "driver", "name": "D"})).await;
    attach_card(&w, &app, &account, "04A2B3C4", "a").await;
    let september = charge(&w, &clock, "s1", json!({"rfid_uid": "04A2B3C4"}), 1_000).await;
    clock.advance(chrono::Duration::days(15));
    let october = charge(&w, &clock, "s2", json!({"rfid_uid": "04A2B3C4"}), 2_000).await;
    clock.advance(chrono::Duration::days(17));
    let operator = operator(&w, &clock).await;
    let (status, inv) = issue(&w, &operator, "i-10", &account, "2026-10").await;
    assert_eq!(status, StatusCode::CREATED, "{inv}");
    let ids: Vec<&Value> = inv["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| &l["session_id"])
        .collect();
    assert_eq!(ids, vec![&september["id"], &october["id"]]);
    let (status, p) = issue(&w, &operator, "i-09", &account, "2026-09").await;
    assert_eq!(
        (status, p["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("nothing_to_invoice"))
    );
}

crate::on_both_databases!(
    an_uninvoiced_earlier_session_joins_the_next_invoice,
    receipts_and_invoices_are_mailed_to_the_account,
    the_monthly_run_issues_last_months_invoices,
    numbers_stay_gapless_under_concurrent_issuing,
    a_fleet_invoice_agrees_everywhere_to_the_cent,
    bad_invoice_requests_change_nothing,
    issued_invoices_cannot_be_changed,
);
