//! Tariffs as operators publish them: versions that never change, sessions
//! priced with the version they started with, and the price display a
//! charger shows first.

use reqwest::StatusCode;
use serde_json::{Value, json};
use voltvault::auth::policy::Role;

use crate::helpers::Backend;
use crate::payments::{APPROVE, Charging, card, charging};

fn energy_tariff(price: &str) -> Value {
    json!({
        "currency": "EUR",
        "time_zone": "Europe/Berlin",
        "elements": [{"price_components": [
            {"type": "ENERGY", "price": price, "vat": "19", "step_size": 1}
        ]}]
    })
}

async fn publish(
    w: &Charging,
    operator: &reqwest::Client,
    key: &str,
    doc: Value,
) -> (StatusCode, Value) {
    let r = operator
        .put(w.app.url("/v1/tariffs/fast"))
        .header("idempotency-key", key)
        .json(&doc)
        .send()
        .await
        .unwrap();
    let status = r.status();
    (status, r.json().await.unwrap())
}

async fn versions_are_immutable_and_sessions_keep_theirs(backend: Backend) {
    let w = charging(backend, |_| {}).await;
    let operator = w
        .app
        .bearer_client(&w.app.staff_session_in(w.tenant, Role::Operator).await);
    let (status, v1) = publish(&w, &operator, "t-1", energy_tariff("0.79")).await;
    assert_eq!(status, StatusCode::CREATED, "{v1}");
    assert_eq!(
        (v1["id"].as_str(), v1["version"].as_u64()),
        (Some("fast"), Some(1))
    );
    assert_eq!(v1["source"], "published");
    assert!(
        v1["display"].as_str().unwrap().contains("0.9401 EUR/kWh"),
        "{v1}"
    );

    // A session starts on version 1.
    let (_, s) = w
        .post(
            &w.charger,
            "/v1/payment-sessions",
            "t-open-1",
            json!({"evse_id": "DE*VVT*E0001*1", "connector_id": "1", "tariff_id": "fast",
                   "payment_method": card(APPROVE), "hold": {"value": 5000, "currency": "EUR"}}),
        )
        .await;
    let id = s["id"].as_str().unwrap().to_owned();
    w.meter(&id, "t-m0", 0, 0).await;

    // The price changes: version 2.
    let (status, v2) = publish(&w, &operator, "t-2", energy_tariff("0.99")).await;
    assert_eq!(status, StatusCode::CREATED, "{v2}");
    assert_eq!(v2["version"], 2);
    let current: Value = operator
        .get(w.app.url("/v1/tariffs/fast"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(current["version"], 2);
    let old: Value = operator
        .get(w.app.url("/v1/tariffs/fast?version=1"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        old["document"]["elements"][0]["price_components"][0]["price"],
        "0.79"
    );

    // The running session is still priced at 0.79: 10 kWh = 7.90 + 1.50 VAT.
    let (_, m) = w.meter(&id, "t-m1", 10_000, 10).await;
    assert_eq!(m["cost"]["value"], 940, "{m}");
    // Its CDR carries version 1 as an OCPI Tariff, dated by its publication.
    let (status, done) = w.complete(&id, 10_000, 12).await;
    assert_eq!(status, StatusCode::OK, "{done}");
    let cdrs: Value = operator
        .get(
            w.app
                .url(&format!("/v1/exports/cdrs?{}", crate::billing::today())),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let tariff = &cdrs[0]["tariffs"][0];
    assert_eq!(
        tariff["elements"][0]["price_components"][0]["price"].to_string(),
        "0.79",
        "{cdrs}"
    );
    let published: chrono::DateTime<chrono::Utc> =
        v1["published_at"].as_str().unwrap().parse().unwrap();
    assert_eq!(
        tariff["last_updated"],
        published.format("%Y-%m-%dT%H:%M:%SZ").to_string()
    );
    // A new session takes 0.99: 10 kWh = 9.90 + 1.88 VAT.
    let (_, s2) = w
        .post(
            &w.charger,
            "/v1/payment-sessions",
            "t-open-2",
            json!({"evse_id": "DE*VVT*E0001*2", "connector_id": "2", "tariff_id": "fast",
                   "payment_method": card(APPROVE), "hold": {"value": 5000, "currency": "EUR"}}),
        )
        .await;
    let id2 = s2["id"].as_str().unwrap().to_owned();
    w.meter(&id2, "t2-m0", 0, 0).await;
    let (_, m2) = w.meter(&id2, "t2-m1", 10_000, 10).await;
    assert_eq!(m2["cost"]["value"], 1178, "{m2}");

    // The list shows the published tariff and the deployment's own.
    let list: Value = operator
        .get(w.app.url("/v1/tariffs"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ids: Vec<(&str, &str)> = list["tariffs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["id"].as_str().unwrap(), t["source"].as_str().unwrap()))
        .collect();
    assert_eq!(ids, [("fast", "published"), ("standard", "deployment")]);

    // The charger reads the price display; it may not publish.
    let d: Value = w
        .charger
        .get(w.app.url("/v1/tariffs/fast/display"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(d["version"], 2);
    assert!(
        d["display"].as_str().unwrap().contains("1.1781 EUR/kWh"),
        "{d}"
    );
    let (status, _) = publish(&w, &w.charger, "t-3", energy_tariff("0.01")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // The database refuses to change a stored version.
    let changed = w.app.db.execute("UPDATE tariffs SET document = '{}'").await;
    assert!(changed.is_err());
}

async fn bad_tariffs_are_refused_and_nothing_is_stored(backend: Backend) {
    let w = charging(backend, |_| {}).await;
    let operator = w
        .app
        .bearer_client(&w.app.staff_session_in(w.tenant, Role::Operator).await);
    let overlapping = json!({
        "currency": "EUR", "time_zone": "UTC",
        "elements": [
            {"price_components": [{"type": "ENERGY", "price": "0.50", "step_size": 1}]},
            {"price_components": [{"type": "ENERGY", "price": "0.60", "step_size": 1}],
             "restrictions": {"start_time": "08:00", "end_time": "18:00"}}
        ]
    });
    let cases = [
        (energy_tariff("-0.10"), "negative_price"),
        (
            json!({"currency": "XXX", "time_zone": "UTC", "elements": []}),
            "unknown_currency",
        ),
        (overlapping, "overlapping_restrictions"),
        (json!(["not", "an", "object"]), "invalid_tariff_json"),
    ];
    for (i, (doc, code)) in cases.into_iter().enumerate() {
        let (status, p) = publish(&w, &operator, &format!("bad-{i}"), doc).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{i}: {p}");
        assert_eq!(p["code"], code, "{i}: {p}");
    }
    assert_eq!(w.app.db.count_rows("tariffs").await, 0);
    let r = operator
        .get(w.app.url("/v1/tariffs/nope"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
}

crate::on_both_databases!(
    versions_are_immutable_and_sessions_keep_theirs,
    bad_tariffs_are_refused_and_nothing_is_stored,
);
