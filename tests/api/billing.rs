//! Receipts, the charging history and the accounting exports, on both
//! databases: one EV session against the simulator comes out the same, to
//! the cent, on its receipt (JSON, HTML, PDF), in the sessions CSV, as an
//! OCPI CDR and in the revenue; none of them carries the card number. The
//! payments CSV puts a capture and a later refund each in its own period.

use reqwest::StatusCode;
use serde_json::{Value, json};
use voltvault::app::App;
use voltvault::auth::policy::Role;
use voltvault::auth::{Actor, Origin};
use voltvault::clock::{Clock, Environment, FixedClock, SystemClock};

use voltvault::devpki::write_file;

use crate::helpers::{Backend, TestApp, test_config};
use crate::payments::{APPROVE, Charging, card, charging_at};

/// 0.59 EUR/kWh and 6.00 EUR/h idle (per minute), both with 19% VAT.
const TARIFFS: &str = r#"[{"id":"standard","version":1,"currency":"EUR","time_zone":"Europe/Berlin",
 "elements":[{"price_components":[
   {"type":"ENERGY","price":"0.59","vat":"19","step_size":1},
   {"type":"PARKING_TIME","price":"6.00","vat":"19","step_size":60}]}]}]"#;

/// "63.18" -> 6318: amounts in exports are decimals in major units.
fn cents(text: &str) -> i64 {
    let (units, frac) = text.split_once('.').unwrap_or((text, ""));
    let frac = format!("{frac:0<2}");
    units.parse::<i64>().unwrap() * 100 + frac[..2].parse::<i64>().unwrap()
}

fn money(v: &Value) -> i64 {
    v["value"].as_i64().unwrap()
}

/// A whole day either side of now: sessions start on the system clock.
pub(crate) fn today() -> String {
    let now = SystemClock.now();
    let from = (now - chrono::Duration::days(1)).to_rfc3339();
    let to = (now + chrono::Duration::days(1)).to_rfc3339();
    format!("from={}&to={}", urlencode(&from), urlencode(&to))
}

fn urlencode(s: &str) -> String {
    s.replace('+', "%2B").replace(':', "%3A")
}

async fn with_billing(backend: Backend) -> (Charging, tempfile::TempDir) {
    with_billing_at(backend, None).await
}

/// Like [`with_billing`], on `clock` when given.
async fn with_billing_at(
    backend: Backend,
    clock: Option<FixedClock>,
) -> (Charging, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let tariffs = dir.path().join("tariffs.json");
    write_file(&tariffs, TARIFFS, 0o600).unwrap();
    let w = charging_at(
        backend,
        |c| {
            c.payments.tariffs_file = Some(tariffs);
            c.billing.operator_name = Some("Volt <Charging> & Co".into());
            c.billing.operator_address = Some("Musterstrasse 1, 10115 Berlin".into());
            c.billing.operator_vat_id = Some("DE123456789".into());
        },
        clock,
    )
    .await;
    (w, dir)
}

async fn app_client(w: &Charging) -> reqwest::Client {
    w.app_client().await
}

async fn get(client: &reqwest::Client, w: &Charging, path: &str) -> (StatusCode, Value) {
    let r = client.get(w.app.url(path)).send().await.unwrap();
    let status = r.status();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// Opens, meters (charging, then idle) and completes one session; returns its id.
async fn one_session(w: &Charging, key: &str) -> String {
    let (status, s) = w.open(key, card(APPROVE), 5000).await;
    assert_eq!(status, StatusCode::CREATED, "{s}");
    let id = s["id"].as_str().unwrap().to_owned();
    for (i, (wh, minute)) in [(0, 0), (10_000, 15), (22_500, 30), (22_500, 38)]
        .into_iter()
        .enumerate()
    {
        let (status, m) = w.meter(&id, &format!("{id}-m{i}"), wh, minute).await;
        assert_eq!(status, StatusCode::OK, "{m}");
    }
    let (status, done) = w.complete(&id, 22_500, 45).await;
    assert_eq!(status, StatusCode::OK, "{done}");
    assert_eq!(done["status"], "completed");
    id
}

async fn one_session_agrees_everywhere_to_the_cent(backend: Backend) {
    let (w, _dir) = with_billing(backend).await;
    let id = one_session(&w, "b-1").await;
    let session = w.get(&id).await;
    let captured = money(&session["captured_amount"]);
    // 22.5 kWh × 0.59 = 13.275 -> 13.28; 15 idle minutes × 6.00/h = 1.50;
    // VAT 19% of 14.78 = 2.8082 -> 2.81: 17.59 EUR.
    assert_eq!(captured, 1759, "{session}");
    let receipt_id = session["receipt_id"].as_str().unwrap().to_owned();
    assert_eq!(receipt_id, format!("rcpt_{id}"));
    let app = app_client(&w).await;
    let operator = w
        .app
        .bearer_client(&w.app.staff_session_in(w.tenant, Role::Operator).await);
    let mut outputs: Vec<Vec<u8>> = Vec::new();

    // The receipt as JSON (the default).
    let path = format!("/v1/receipts/{receipt_id}");
    let (status, r) = get(&app, &w, &path).await;
    assert_eq!(status, StatusCode::OK, "{r}");
    assert_eq!(money(&r["total_incl_vat"]), captured);
    assert_eq!(money(&r["captured_amount"]), captured);
    assert_eq!(money(&r["total_excl_vat"]), 1478);
    assert_eq!(money(&r["total_vat"]), 281);
    assert_eq!(r["url"], path.as_str());
    assert_eq!(r["card"], json!({"brand": "visa", "last4": "4242"}));
    assert!(r["authorization_code"].as_str().is_some(), "{r}");
    assert_eq!(r["evse_id"], "DE*VVT*E0001*1");
    assert_eq!(r["connector_id"], "1");
    assert_eq!(r["energy_kwh"], "22.5");
    assert_eq!(r["operator"]["vat_id"], "DE123456789");
    let kinds: Vec<&str> = r["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["energy", "parking_time"]);
    let lines: i64 = r["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| money(&l["amount_incl_vat"]))
        .sum();
    assert_eq!(lines, captured);
    assert_eq!(r["vat"].as_array().unwrap().len(), 1);
    assert_eq!(r["vat"][0]["rate"], "19");
    assert_eq!(money(&r["vat"][0]["gross"]), captured);
    outputs.push(r.to_string().into_bytes());
    // An operator of the tenant reads it too; a charger does not (billing:read).
    let (status, _) = get(&operator, &w, &path).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = get(&w.charger, &w, &path).await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // HTML: escaped, self-contained.
    let html = app
        .get(w.app.url(&path))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(html.status(), StatusCode::OK);
    assert!(
        html.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert!(
        html.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("default-src 'none'")
    );
    let html = html.text().await.unwrap();
    assert!(html.contains("Volt &lt;Charging&gt; &amp; Co"), "{html}");
    assert!(!html.contains("<Charging>"));
    assert!(html.contains("17.59 EUR"));
    assert!(html.contains("VISA ending 4242"));
    assert!(!html.contains("src=") && !html.contains("href="));
    outputs.push(html.into_bytes());

    // PDF.
    let pdf = app
        .get(w.app.url(&path))
        .header("accept", "application/pdf")
        .send()
        .await
        .unwrap();
    assert_eq!(pdf.status(), StatusCode::OK);
    assert_eq!(pdf.headers()["content-type"], "application/pdf");
    let pdf = pdf.bytes().await.unwrap().to_vec();
    assert!(pdf.starts_with(b"%PDF"));
    assert!(crate::helpers::contains_bytes(&pdf, b"17.59 EUR"));
    outputs.push(pdf);

    // The sessions CSV: one row, the same figures.
    let csv = operator
        .get(w.app.url(&format!("/v1/exports/sessions.csv?{}", today())))
        .send()
        .await
        .unwrap();
    assert_eq!(csv.status(), StatusCode::OK);
    assert!(
        csv.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    let csv = csv.bytes().await.unwrap().to_vec();
    let mut reader = csv::Reader::from_reader(csv.as_slice());
    let header = reader.headers().unwrap().clone();
    let col = |name: &str| header.iter().position(|h| h == name).unwrap();
    let rows: Vec<csv::StringRecord> = reader.records().map(|r| r.unwrap()).collect();
    assert_eq!(rows.len(), 1);
    let row = &rows[0];
    assert_eq!(&row[col("session_id")], id.as_str());
    assert_eq!(&row[col("receipt_id")], receipt_id.as_str());
    assert_eq!(&row[col("site")], "DE*VVT*E0001");
    assert_eq!(cents(&row[col("captured")]), captured);
    assert_eq!(cents(&row[col("refunded")]), 0);
    assert_eq!(cents(&row[col("net")]), captured);
    outputs.push(csv);

    // The CDR.
    let (status, cdrs) = get(&operator, &w, &format!("/v1/exports/cdrs?{}", today())).await;
    assert_eq!(status, StatusCode::OK, "{cdrs}");
    let cdrs = cdrs.as_array().unwrap();
    assert_eq!(cdrs.len(), 1);
    let cdr = &cdrs[0];
    assert_eq!(cdr["id"], id.as_str());
    assert_eq!(cdr["currency"], "EUR");
    assert_eq!(cdr["country_code"], "DE");
    assert_eq!(cdr["party_id"], "VVT");
    assert_eq!(cdr["cdr_token"]["uid"], session["token"]);
    assert_eq!(cdr["cdr_token"]["type"], "AD_HOC_USER");
    assert_eq!(cdr["cdr_token"]["party_id"], "VVT");
    assert_eq!(cdr["auth_method"], "AUTH_REQUEST");
    assert_eq!(cdr["cdr_location"]["evse_id"], "DE*VVT*E0001*1");
    assert_eq!(cdr["cdr_location"]["id"], "DE*VVT*E0001");
    // The site as billing.locations describes it.
    assert_eq!(cdr["cdr_location"]["city"], "Berlin");
    assert_eq!(cdr["cdr_location"]["country"], "DEU");
    assert_eq!(cdr["cdr_location"]["coordinates"]["longitude"], "13.38490");
    assert_eq!(cdr["cdr_location"]["connector_power_type"], "DC");
    assert_eq!(cents(&cdr["total_cost"]["incl_vat"].to_string()), captured);
    assert_eq!(cents(&cdr["total_cost"]["excl_vat"].to_string()), 1478);
    assert_eq!(cdr["total_energy"].to_string(), "22.5");
    assert_eq!(cdr["total_time"].to_string(), "0.75");
    assert_eq!(cdr["total_parking_time"].to_string(), "0.25");
    // The tariff as an OCPI object, dated by the deployment's file.
    let tariff = &cdr["tariffs"][0];
    assert_eq!(tariff["id"], "standard");
    assert_eq!(tariff["currency"], "EUR");
    assert!(
        tariff["elements"][0]["price_components"][0]["price"].is_number(),
        "{tariff}"
    );
    let dated = tariff["last_updated"].as_str().unwrap();
    assert!(dated.len() == 20 && dated.ends_with('Z'), "{dated}");
    // Charging for 30 minutes over three readings, then idle: two periods.
    let periods = cdr["charging_periods"].as_array().unwrap();
    assert_eq!(periods.len(), 2, "{cdr}");
    assert_eq!(periods[0]["dimensions"][0]["type"], "ENERGY");
    assert_eq!(periods[0]["dimensions"][0]["volume"].to_string(), "22.5");
    assert_eq!(periods[1]["dimensions"][0]["type"], "PARKING_TIME");
    assert_eq!(periods[1]["tariff_id"], "standard");
    outputs.push(cdr.to_string().into_bytes());

    // Revenue by site, EVSE and day.
    for group in ["site", "evse", "day"] {
        let (status, rev) = get(
            &operator,
            &w,
            &format!("/v1/exports/revenue?{}&group={group}", today()),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{rev}");
        assert_eq!(rev["group"], group);
        assert_eq!(rev["rows"].as_array().unwrap().len(), 1, "{rev}");
        assert_eq!(money(&rev["rows"][0]["net"]), captured);
        assert_eq!(rev["rows"][0]["sessions"], 1);
        outputs.push(rev.to_string().into_bytes());
    }

    // The history, as the app and as the charger that ran it.
    for client in [&app, &w.charger] {
        let (status, h) = get(client, &w, "/v1/payment-sessions?status=completed").await;
        assert_eq!(status, StatusCode::OK, "{h}");
        assert_eq!(h["data"][0]["id"], id.as_str());
        assert_eq!(h["data"][0]["receipt_id"], receipt_id.as_str());
        outputs.push(h.to_string().into_bytes());
    }

    // A refund shows on the receipt and in the exports.
    let (status, _) = w
        .post(
            &operator,
            &format!("/v1/payment-sessions/{id}/refunds"),
            "b-refund",
            json!({"amount": {"value": 259, "currency": "EUR"}, "reason": "idle fee waived"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, r) = get(&app, &w, &path).await;
    assert_eq!(money(&r["refunded_amount"]), 259);
    assert_eq!(money(&r["refunds"][0]["amount"]), 259);
    assert_eq!(money(&r["net_paid"]), captured - 259);
    assert_eq!(money(&r["total_incl_vat"]), captured);
    let (_, rev) = get(&operator, &w, &format!("/v1/exports/revenue?{}", today())).await;
    assert_eq!(money(&rev["rows"][0]["net"]), captured - 259);
    outputs.push(r.to_string().into_bytes());

    // No card number anywhere.
    for out in &outputs {
        assert!(!crate::helpers::contains_bytes(out, APPROVE.as_bytes()));
        assert!(!crate::helpers::contains_bytes(out, b"4242 4242"));
    }
    // Exports are in the audit trail.
    let events = w.app.audit_trail().await;
    assert!(
        events
            .iter()
            .any(|e| e.event_type == "billing.export"
                && e.resource.as_deref() == Some("export:cdrs"))
    );
}

async fn bad_requests_get_stable_codes(backend: Backend) {
    let (w, _dir) = with_billing(backend).await;
    let app = app_client(&w).await;
    let operator = w
        .app
        .bearer_client(&w.app.staff_session_in(w.tenant, Role::Operator).await);

    // Unknown receipts.
    for id in [
        format!("rcpt_{}", uuid::Uuid::new_v4()),
        "rcpt_nope".to_owned(),
        uuid::Uuid::new_v4().to_string(),
    ] {
        let (status, p) = get(&app, &w, &format!("/v1/receipts/{id}")).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{p}");
        assert_eq!(p["code"], "receipt_not_found");
    }

    // A session still charging has no receipt yet.
    let (_, s) = w.open("b-open", card(APPROVE), 5000).await;
    let open_id = s["id"].as_str().unwrap().to_owned();
    let (status, p) = get(&app, &w, &format!("/v1/receipts/rcpt_{open_id}")).await;
    assert_eq!(status, StatusCode::CONFLICT, "{p}");
    assert_eq!(p["code"], "receipt_not_available");

    // Another tenant's receipt does not exist for this one.
    let done = one_session(&w, "b-done").await;
    let stranger = w.stranger("elsewhere").await;
    let (status, p) = get(&stranger, &w, &format!("/v1/receipts/rcpt_{done}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{p}");
    let (_, h) = get(&stranger, &w, "/v1/payment-sessions").await;
    assert_eq!(h["data"], json!([]));
    let csv = stranger
        .get(w.app.url(&format!("/v1/exports/sessions.csv?{}", today())))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!csv.contains(&done), "{csv}");

    // A format no one offers.
    let r = app
        .get(w.app.url(&format!("/v1/receipts/rcpt_{done}")))
        .header("accept", "image/png")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_ACCEPTABLE);

    // Periods.
    for (query, status, code) in [
        ("", StatusCode::BAD_REQUEST, "invalid_period"),
        (
            "from=2026-11-01T00:00:00Z",
            StatusCode::BAD_REQUEST,
            "invalid_period",
        ),
        (
            "from=yesterday&to=2026-11-01T00:00:00Z",
            StatusCode::BAD_REQUEST,
            "invalid_time",
        ),
        (
            "from=2026-11-02T00:00:00Z&to=2026-11-01T00:00:00Z",
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_range",
        ),
        (
            "from=2024-01-01T00:00:00Z&to=2026-01-01T00:00:00Z",
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_range",
        ),
        (
            "from=2026-11-01T00:00:00Z&to=2026-11-02T00:00:00Z&bogus=1",
            StatusCode::BAD_REQUEST,
            "invalid_query",
        ),
    ] {
        for export in ["sessions.csv", "payments.csv", "cdrs", "revenue"] {
            let (s, p) = get(&operator, &w, &format!("/v1/exports/{export}?{query}")).await;
            assert_eq!(s, status, "{export}?{query}: {p}");
            assert_eq!(p["code"], code, "{export}?{query}");
        }
    }
    let (status, p) = get(
        &operator,
        &w,
        "/v1/exports/revenue?from=2026-11-01T00:00:00Z&to=2026-11-02T00:00:00Z&group=planet",
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(p["code"], "invalid_group");
    // Exports are for billing:read; a charger has payments:read only.
    let (status, _) = get(&w.charger, &w, &format!("/v1/exports/cdrs?{}", today())).await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // History filters.
    for (query, code) in [
        ("limit=0", "invalid_limit"),
        ("limit=101", "invalid_limit"),
        ("status=paid", "invalid_status"),
        ("cursor=zzz", "invalid_cursor"),
        ("from=later", "invalid_time"),
    ] {
        let (status, p) = get(&app, &w, &format!("/v1/payment-sessions?{query}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {p}");
        assert_eq!(p["code"], code);
    }
    let (status, p) = get(
        &app,
        &w,
        "/v1/payment-sessions?from=2026-11-02T00:00:00Z&to=2026-11-01T00:00:00Z",
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(p["code"], "invalid_range");
}

async fn a_site_not_described_has_no_cdr(backend: Backend) {
    let w = charging_at(backend, |c| c.billing.locations.clear(), None).await;
    let operator = w
        .app
        .bearer_client(&w.app.staff_session_in(w.tenant, Role::Operator).await);
    one_session(&w, "far-away").await;
    let (status, p) = get(&operator, &w, &format!("/v1/exports/cdrs?{}", today())).await;
    assert_eq!(status, StatusCode::CONFLICT, "{p}");
    assert_eq!(p["code"], "location_unknown");
    assert!(
        p["detail"].as_str().unwrap().contains("DE*VVT*E0001"),
        "{p}"
    );
    // The other exports do not need the site's address.
    let (status, rev) = get(
        &operator,
        &w,
        &format!("/v1/exports/revenue?{}&group=site", today()),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{rev}");
    // Nothing was exported, so nothing was recorded as exported.
    let events = w.app.audit_trail().await;
    assert!(
        !events
            .iter()
            .any(|e| e.resource.as_deref() == Some("export:cdrs"))
    );
}

async fn batched_reads_agree_with_one_session_at_a_time(backend: Backend) {
    let (w, _dir) = with_billing(backend).await;
    let ids: Vec<voltvault::ids::PaymentSessionId> = [
        one_session(&w, "batch-1").await,
        one_session(&w, "batch-2").await,
        one_session(&w, "batch-3").await,
    ]
    .iter()
    .map(|id| id.parse().unwrap())
    .collect();
    let store = &w.app.store;

    let readings = store.meter_readings_of(&ids).await.unwrap();
    let intents = store.payment_intents_of(&ids).await.unwrap();
    let mut tokens = Vec::new();
    for id in &ids {
        let one: Vec<_> = readings
            .iter()
            .filter(|(s, _)| s == id)
            .map(|(_, r)| *r)
            .collect();
        assert_eq!(one, store.meter_readings(*id).await.unwrap());
        assert_eq!(one.len(), 5);
        let mine: Vec<String> = intents
            .iter()
            .filter(|i| i.session == *id)
            .map(|i| i.acquirer_key.clone())
            .collect();
        let alone: Vec<String> = store
            .payment_intents(*id)
            .await
            .unwrap()
            .into_iter()
            .map(|i| i.acquirer_key)
            .collect();
        assert_eq!(mine, alone);
        assert!(!mine.is_empty());
        tokens.push(store.payment_session(w.tenant, *id).await.unwrap().token);
    }
    assert!(intents.iter().all(|i| ids.contains(&i.session)));

    // Tokens of the tenant only; unknown ones are left out.
    tokens.push("not-a-token".into());
    let found = store.tokens_of(w.tenant, &tokens).await.unwrap();
    assert_eq!(found.len(), 3);
    let other = w
        .app
        .auth
        .create_tenant("batch-stranger", &Actor::cli(), &Origin::cli())
        .await
        .unwrap()
        .id;
    assert!(store.tokens_of(other, &tokens).await.unwrap().is_empty());

    // Empty asks nothing; more than a batch is refused, not cut.
    assert!(store.meter_readings_of(&[]).await.unwrap().is_empty());
    let too_many = vec![ids[0]; voltvault::store::payments::MAX_BATCH + 1];
    assert!(store.meter_readings_of(&too_many).await.is_err());
    assert!(store.payment_intents_of(&too_many).await.is_err());
}

async fn history_pages_with_a_stable_cursor(backend: Backend) {
    let (w, _dir) = with_billing(backend).await;
    let app = app_client(&w).await;
    let mut opened = Vec::new();
    for i in 0..5 {
        let (status, s) = w.open(&format!("h-{i}"), card(APPROVE), 5000).await;
        assert_eq!(status, StatusCode::CREATED, "{s}");
        opened.push(s["id"].as_str().unwrap().to_owned());
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/payment-sessions?limit=2&cursor={c}"),
            None => "/v1/payment-sessions?limit=2".to_owned(),
        };
        let (status, page) = get(&app, &w, &path).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        pages += 1;
        for s in page["data"].as_array().unwrap() {
            seen.push(s["id"].as_str().unwrap().to_owned());
            assert!(!s.to_string().contains(APPROVE));
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    // Oldest first, each once: the order they were opened in.
    assert_eq!(seen, opened);
    // Filters.
    let (_, page) = get(&app, &w, "/v1/payment-sessions?status=completed").await;
    assert_eq!(page["data"], json!([]));
    let (_, page) = get(
        &app,
        &w,
        "/v1/payment-sessions?evse_id=DE%2AVVT%2AE0001%2A1&limit=100",
    )
    .await;
    assert_eq!(page["data"].as_array().unwrap().len(), 5);
    let (_, page) = get(&app, &w, "/v1/payment-sessions?evse_id=elsewhere").await;
    assert_eq!(page["data"], json!([]));
    let (_, page) = get(&app, &w, &format!("/v1/payment-sessions?{}", today())).await;
    assert_eq!(page["data"].as_array().unwrap().len(), 5);
}

/// A card good for 100.00 in all: the session runs past it, the capture
/// stops at the hold, and every output says so the same way.
async fn a_capped_capture_is_shown_honestly(backend: Backend) {
    const UP_TO_100: &str = "4000000000000770";
    let (w, _dir) = with_billing(backend).await;
    let (_, s) = w.open("cap-1", card(UP_TO_100), 5000).await;
    let id = s["id"].as_str().unwrap().to_owned();
    let mut last = 0;
    for i in 0..20 {
        let (status, m) = w.meter(&id, &format!("cap-m{i}"), i * 10_000, i * 10).await;
        assert_eq!(status, StatusCode::OK, "{m}");
        last = i;
        if m["action"] == "stop" {
            break;
        }
    }
    // The car takes another 50 kWh before the charger stops it.
    let (status, done) = w
        .complete(&id, last * 10_000 + 50_000, last * 10 + 30)
        .await;
    assert_eq!(status, StatusCode::OK, "{done}");
    let captured = money(&done["captured_amount"]);
    assert_eq!(captured, 10_000);
    assert!(money(&done["cost"]) > captured, "{done}");

    let app = app_client(&w).await;
    let (status, r) = get(&app, &w, &format!("/v1/receipts/rcpt_{id}")).await;
    assert_eq!(status, StatusCode::OK, "{r}");
    assert_eq!(money(&r["total_incl_vat"]), captured);
    let lines = r["lines"].as_array().unwrap();
    let cap = lines.last().unwrap();
    assert_eq!(cap["kind"], "hold_cap", "{r}");
    assert_eq!(
        money(&cap["amount_incl_vat"]),
        captured - money(&done["cost"])
    );
    let sum: i64 = lines.iter().map(|l| money(&l["amount_incl_vat"])).sum();
    assert_eq!(sum, captured);
    assert_eq!(
        money(&r["total_excl_vat"]) + money(&r["total_vat"]),
        captured
    );
    let operator = w
        .app
        .bearer_client(&w.app.staff_session_in(w.tenant, Role::Operator).await);
    let (_, cdrs) = get(&operator, &w, &format!("/v1/exports/cdrs?{}", today())).await;
    assert_eq!(
        cents(&cdrs[0]["total_cost"]["incl_vat"].to_string()),
        captured
    );
    assert_eq!(
        cents(&cdrs[0]["total_cost"]["excl_vat"].to_string()),
        money(&r["total_excl_vat"])
    );
    let html = app
        .get(w.app.url(&format!("/v1/receipts/rcpt_{id}")))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains("Capped at the authorized amount"));
    for out in [r.to_string(), cdrs.to_string(), html] {
        assert!(!out.contains(UP_TO_100));
    }
}

/// The node restarts with version 2 of the tariff in its catalog: a session
/// priced with version 1 gets no receipt with made-up figures.
async fn a_receipt_whose_tariff_version_is_gone_is_refused(backend: Backend) {
    let (w, dir) = with_billing(backend).await;
    let id = one_session(&w, "v-1").await;
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
    let TestApp {
        mut running,
        pki,
        db,
        ..
    } = w.app;
    running.take().unwrap().stop().await;
    let newer = dir.path().join("tariffs-v2.json");
    write_file(
        &newer,
        &TARIFFS.replace("\"version\":1", "\"version\":2"),
        0o600,
    )
    .unwrap();
    let mut config = test_config(&pki, &db);
    config.payments.tariffs_file = Some(newer);
    let app = App::build_observed(config, Environment::system(), None, None)
        .await
        .unwrap();
    let (store, auth, audit) = (app.store(), app.auth(), app.audit());
    let running = app.start(None).await.unwrap();
    let restarted = TestApp {
        auth,
        addr: running.api_addr,
        ops_addr: running.ops_addr,
        running: Some(running),
        store,
        audit,
        pki,
        db,
    };
    let client = restarted.bearer_client(key.expose_secret());
    let r = client
        .get(restarted.url(&format!("/v1/receipts/rcpt_{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CONFLICT);
    let p: Value = r.json().await.unwrap();
    assert_eq!(p["code"], "tariff_version_unavailable");
    assert!(p["detail"].as_str().unwrap().contains("version 1"), "{p}");
    restarted.stop().await;
}

fn t(text: &str) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::parse_from_rfc3339(text)
        .unwrap()
        .with_timezone(&chrono::Utc)
}

/// A session `charger` opens at the clock's time and completes 30 minutes
/// later with `wh` charged; returns its id and the amount captured.
async fn charge_with(
    w: &Charging,
    charger: &reqwest::Client,
    clock: &FixedClock,
    key: &str,
    wh: i64,
) -> (String, i64) {
    let (status, s) = w
        .post(
            charger,
            "/v1/payment-sessions",
            key,
            crate::payments::open_body(card(APPROVE), 5000),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{s}");
    let id = s["id"].as_str().unwrap().to_owned();
    let (status, m) = w
        .post(
            charger,
            &format!("/v1/payment-sessions/{id}/meter"),
            &format!("{key}-m0"),
            json!({"energy_wh": 0, "at": clock.now()}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{m}");
    clock.advance(chrono::Duration::minutes(30));
    let (status, done) = w
        .post(
            charger,
            &format!("/v1/payment-sessions/{id}/complete"),
            &format!("{key}-done"),
            json!({"energy_wh": wh, "at": clock.now()}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{done}");
    assert_eq!(done["status"], "completed", "{done}");
    (id, money(&done["captured_amount"]))
}

/// An export's CSV rows, each as column name -> cell.
pub(crate) async fn csv_rows(
    client: &reqwest::Client,
    w: &Charging,
    path: &str,
) -> Vec<std::collections::HashMap<String, String>> {
    let r = client.get(w.app.url(path)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK, "{path}");
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    let body = r.bytes().await.unwrap();
    let mut reader = csv::Reader::from_reader(body.as_ref());
    let header = reader.headers().unwrap().clone();
    reader
        .records()
        .map(|row| {
            header
                .iter()
                .map(str::to_owned)
                .zip(row.unwrap().iter().map(str::to_owned))
                .collect()
        })
        .collect()
}

const OCTOBER: &str = "from=2026-10-01T00:00:00Z&to=2026-11-01T00:00:00Z";
const NOVEMBER: &str = "from=2026-11-01T00:00:00Z&to=2026-12-01T00:00:00Z";

/// A session captured on 31 October and partly refunded on 1 November:
/// October's payments CSV has the capture, November's the refund, each to
/// the cent of the session's figures; another tenant's money, moving in the
/// same hours, shows in neither.
async fn payments_csv_lists_each_movement_in_the_period_it_moved(backend: Backend) {
    let clock = FixedClock::new(t("2026-10-31T22:00:00Z"));
    let (w, _dir) = with_billing_at(backend, Some(clock.clone())).await;
    let (cli, origin) = (Actor::cli(), Origin::cli());
    let other = w
        .app
        .auth
        .create_tenant("elsewhere", &cli, &origin)
        .await
        .unwrap()
        .id;
    let other_ca = voltvault::devpki::DevCa::generate("elsewhere chargers").unwrap();
    w.app
        .auth
        .register_charger_ca(other, "chargers", &other_ca.cert_pem(), &cli, &origin)
        .await
        .unwrap();
    let issued = other_ca.issue_client("elsewhere-1").unwrap();
    let other_charger = w
        .app
        .client_with_identity(&issued.cert_pem, &issued.key_pem);

    // Captured at 22:30 and 23:00 on 31 October (UTC).
    let (id, captured) = charge_with(&w, &w.charger, &clock, "p-1", 22_500).await;
    let (other_id, _) = charge_with(&w, &other_charger, &clock, "p-x", 10_000).await;
    assert!(captured > 259);
    // Refunded at 01:00 on 1 November, in both tenants.
    clock.advance(chrono::Duration::hours(2));
    let at = clock.now();
    let operator = w.app.bearer_client(
        &w.app
            .staff_session_at(w.tenant, Role::Operator, Some(at))
            .await,
    );
    let other_operator = w.app.bearer_client(
        &w.app
            .staff_session_at(other, Role::Operator, Some(at))
            .await,
    );
    let (status, r) = w
        .post(
            &operator,
            &format!("/v1/payment-sessions/{id}/refunds"),
            "p-1-refund",
            json!({"amount": {"value": 259, "currency": "EUR"}, "reason": "=idle fee waived"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{r}");
    let (status, r) = w
        .post(
            &other_operator,
            &format!("/v1/payment-sessions/{other_id}/refunds"),
            "p-x-refund",
            json!({"reason": "goodwill"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{r}");
    let session = w.get(&id).await;
    assert_eq!(money(&session["captured_amount"]), captured);
    assert_eq!(money(&session["refunded_amount"]), 259);

    let october = csv_rows(
        &operator,
        &w,
        &format!("/v1/exports/payments.csv?{OCTOBER}"),
    )
    .await;
    assert_eq!(october.len(), 1, "{october:?}");
    let capture = &october[0];
    assert_eq!(capture["kind"], "capture");
    assert_eq!(t(&capture["at"]), t("2026-10-31T22:30:00Z"));
    assert_eq!(capture["session_id"], id);
    assert_eq!(capture["receipt_id"], format!("rcpt_{id}"));
    assert_eq!(capture["site"], "DE*VVT*E0001");
    assert_eq!(capture["evse_id"], "DE*VVT*E0001*1");
    assert_eq!(capture["currency"], "EUR");
    assert_eq!(cents(&capture["amount"]), captured);
    assert_eq!(capture["reason"], "");
    assert!(!capture["acquirer"].is_empty(), "{capture:?}");
    assert!(!capture["reference"].is_empty(), "{capture:?}");

    let november = csv_rows(
        &operator,
        &w,
        &format!("/v1/exports/payments.csv?{NOVEMBER}"),
    )
    .await;
    assert_eq!(november.len(), 1, "{november:?}");
    let refund = &november[0];
    assert_eq!(refund["kind"], "refund");
    assert_eq!(t(&refund["at"]), at);
    assert_eq!(refund["session_id"], id);
    assert_eq!(cents(&refund["amount"]), 259);
    // The reason is the operator's text, defused for spreadsheets.
    assert_eq!(refund["reason"], "'=idle fee waived");
    assert_eq!(refund["acquirer"], capture["acquirer"]);
    assert_ne!(refund["reference"], capture["reference"]);
    // The sessions CSV is by session start: November has none of this.
    let sessions = csv_rows(
        &operator,
        &w,
        &format!("/v1/exports/sessions.csv?{NOVEMBER}"),
    )
    .await;
    assert!(sessions.is_empty(), "{sessions:?}");

    // The other tenant sees its own capture and refund, never ours.
    let mut theirs = Vec::new();
    for period in [OCTOBER, NOVEMBER] {
        let rows = csv_rows(
            &other_operator,
            &w,
            &format!("/v1/exports/payments.csv?{period}"),
        )
        .await;
        assert_eq!(rows.len(), 1, "{rows:?}");
        theirs.extend(rows);
    }
    assert!(theirs.iter().all(|r| r["session_id"] == other_id));
    assert_eq!(theirs[0]["kind"], "capture");
    assert_eq!(theirs[1]["kind"], "refund");
    assert_eq!(theirs[0]["amount"], theirs[1]["amount"]);

    // The store pages by (at, acquirer key): one at a time, each once.
    let mut after = None;
    let mut paged = Vec::new();
    loop {
        let page = w
            .app
            .store
            .payment_movements_page(&voltvault::store::billing::MovementQuery {
                tenant: w.tenant,
                from: t("2026-10-01T00:00:00Z"),
                to: t("2026-12-01T00:00:00Z"),
                after: after.clone(),
                limit: 1,
            })
            .await
            .unwrap();
        let Some(m) = page.last() else { break };
        after = Some((m.at, m.acquirer_key.clone()));
        paged.extend(page.into_iter().map(|m| m.acquirer_key));
    }
    assert_eq!(
        paged,
        [capture["reference"].as_str(), refund["reference"].as_str()]
    );

    // The export is in the audit trail.
    let events = w.app.audit_trail().await;
    assert!(events.iter().any(|e| e.event_type == "billing.export"
        && e.tenant == Some(w.tenant)
        && e.resource.as_deref() == Some("export:payments.csv")
        && e.reason.as_deref() == Some("rows=1")));
}

crate::on_both_databases!(
    one_session_agrees_everywhere_to_the_cent,
    a_receipt_whose_tariff_version_is_gone_is_refused,
    a_capped_capture_is_shown_honestly,
    bad_requests_get_stable_codes,
    a_site_not_described_has_no_cdr,
    batched_reads_agree_with_one_session_at_a_time,
    history_pages_with_a_stable_cursor,
    payments_csv_lists_each_movement_in_the_period_it_moved,
);
