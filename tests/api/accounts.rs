//! Accounts on both databases: a fleet and its driver, a token as payment
//! method, an RFID card whose tap at a charger opens a session billed to the
//! account, the account's history, blocking, tenancy and bad input.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::Backend;
use crate::payments::{APPROVE, Charging, charging, fast_workers};

const UID: &str = "04:a2:b3:c4:d5:e6:f7";

pub async fn tokenize(w: &Charging, app: &reqwest::Client, number: &str, key: &str) -> String {
    let (status, t) = w
        .post(
            app,
            "/v1/tokens",
            key,
            json!({"card": {"number": number, "exp_month": 12, "exp_year": 2039}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{t}");
    t["token"].as_str().unwrap().to_owned()
}

pub async fn get(w: &Charging, client: &reqwest::Client, path: &str) -> (StatusCode, Value) {
    let r = client.get(w.app.url(path)).send().await.unwrap();
    let status = r.status();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// A driver account with one token and one RFID card; returns (account, token).
pub async fn driver_with_card(
    w: &Charging,
    app: &reqwest::Client,
    prefix: &str,
) -> (String, String) {
    let token = tokenize(w, app, APPROVE, &format!("{prefix}-tok")).await;
    let (status, a) = w
        .post(
            app,
            "/v1/accounts",
            &format!("{prefix}-acc"),
            json!({"kind": "driver", "name": "Dana Driver", "email": "dana@example.com"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{a}");
    let account = a["id"].as_str().unwrap().to_owned();
    let (status, m) = w
        .post(
            app,
            &format!("/v1/accounts/{account}/payment-methods"),
            &format!("{prefix}-pm"),
            json!({"token": token}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{m}");
    let (status, c) = w
        .post(
            app,
            &format!("/v1/accounts/{account}/rfid-cards"),
            &format!("{prefix}-rfid"),
            json!({"uid": UID, "label": "blue key fob"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{c}");
    (account, token)
}

async fn taps_charge_the_account(backend: Backend) {
    let w = charging(backend, fast_workers).await;
    let app = w.app_client().await;

    // A fleet, and a driver billed through it.
    let (status, fleet) = w
        .post(
            &app,
            "/v1/accounts",
            "fleet-1",
            json!({"kind": "fleet", "name": "Nord Logistics GmbH", "email": "ap@nord.example"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{fleet}");
    let fleet_id = fleet["id"].as_str().unwrap();
    let (status, member) = w
        .post(
            &app,
            "/v1/accounts",
            "member-1",
            json!({"kind": "driver", "name": "Fahrer Eins", "fleet_id": fleet_id}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{member}");
    assert_eq!(member["fleet_id"], fleet_id);

    let (account, token) = driver_with_card(&w, &app, "d1").await;
    let (_, a) = get(&w, &app, &format!("/v1/accounts/{account}")).await;
    assert_eq!(a["default_payment_method"], token.as_str(), "{a}");
    let (_, methods) = get(&w, &app, &format!("/v1/accounts/{account}/payment-methods")).await;
    assert_eq!(methods[0]["token"], token.as_str());
    assert_eq!(methods[0]["default"], true);
    assert_eq!(methods[0]["card"]["last4"], "4242");
    let (_, cards) = get(&w, &app, &format!("/v1/accounts/{account}/rfid-cards")).await;
    assert_eq!(cards[0]["uid"], "04A2B3C4D5E6F7", "{cards}");
    assert_eq!(cards[0]["status"], "active");

    // A tap at the charger: written another way, the same card.
    let (status, s) = w
        .open("tap-1", json!({"rfid_uid": "04A2B3C4D5E6F7"}), 5000)
        .await;
    assert_eq!(status, StatusCode::CREATED, "{s}");
    assert_eq!(s["status"], "authorized", "{s}");
    assert_eq!(s["account_id"], account.as_str());
    assert_eq!(s["token"], token.as_str());
    let id = s["id"].as_str().unwrap();
    w.meter(id, "tap-1-m0", 0, 0).await;
    let (status, done) = w.complete(id, 12_500, 20).await;
    assert_eq!(status, StatusCode::OK, "{done}");
    assert_eq!(done["status"], "completed");

    // The app starts one for the account too.
    let (status, s2) = w
        .post(
            &app,
            "/v1/payment-sessions",
            "acct-1",
            crate::payments::open_body(json!({"account_id": account}), 3000),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{s2}");
    assert_eq!(s2["account_id"], account.as_str());

    // The account's history has both, and nothing of other sessions.
    w.open("other-1", crate::payments::card(APPROVE), 2000)
        .await;
    let (status, h) = get(&w, &app, &format!("/v1/accounts/{account}/sessions")).await;
    assert_eq!(status, StatusCode::OK, "{h}");
    let ids: Vec<&str> = h["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![id, s2["id"].as_str().unwrap()]);
    assert_eq!(h["data"][0]["captured_amount"], done["captured_amount"]);

    // Blocked: the tap is refused and no session is written.
    let r = app
        .delete(
            w.app
                .url(&format!("/v1/accounts/{account}/rfid-cards/04A2B3C4D5E6F7")),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let before = w.app.db.count_rows("payment_sessions").await;
    let (status, p) = w.open("tap-2", json!({"rfid_uid": UID}), 5000).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{p}");
    assert_eq!(p["code"], "rfid_card_blocked");
    let (status, p) = w.open("tap-3", json!({"rfid_uid": "04000000"}), 5000).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{p}");
    assert_eq!(p["code"], "rfid_card_unknown");
    assert_eq!(w.app.db.count_rows("payment_sessions").await, before);

    // Detaching the only token leaves the account unable to pay.
    let r = app
        .delete(
            w.app
                .url(&format!("/v1/accounts/{account}/payment-methods/{token}")),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let (_, a) = get(&w, &app, &format!("/v1/accounts/{account}")).await;
    assert!(a.get("default_payment_method").is_none(), "{a}");
    let (status, p) = w
        .post(
            &app,
            "/v1/payment-sessions",
            "acct-2",
            crate::payments::open_body(json!({"account_id": account}), 3000),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{p}");
    assert_eq!(p["code"], "account_without_payment_method");

    // The trail names accounts and cards, never a whole UID.
    let events = w.app.audit_trail().await;
    let types: Vec<&str> = events.iter().map(|r| r.event_type.as_str()).collect();
    for t in [
        "account.create",
        "account.payment_method.add",
        "account.payment_method.remove",
        "rfid.register",
        "rfid.block",
    ] {
        assert!(types.contains(&t), "{t} missing from {types:?}");
    }
    for e in &events {
        let text = serde_json::to_string(&e.resource).unwrap();
        assert!(!text.contains("A2B3C4D5"), "{text}");
    }
}

async fn accounts_stay_in_their_tenant(backend: Backend) {
    let w = charging(backend, |_| {}).await;
    let app = w.app_client().await;
    let (account, token) = driver_with_card(&w, &app, "t1").await;

    let stranger = w.stranger("elsewhere").await;

    let (status, _) = get(&w, &stranger, &format!("/v1/accounts/{account}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, list) = get(&w, &stranger, "/v1/accounts").await;
    assert_eq!(list["data"], json!([]));
    let (status, _) = get(&w, &stranger, &format!("/v1/accounts/{account}/sessions")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // Its card, its account and its token are unknown to the other tenant.
    let (status, p) = w
        .post(
            &stranger,
            "/v1/payment-sessions",
            "x-1",
            crate::payments::open_body(json!({"rfid_uid": UID}), 3000),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{p}");
    assert_eq!(p["code"], "rfid_card_unknown");
    let (status, p) = w
        .post(
            &stranger,
            "/v1/payment-sessions",
            "x-2",
            crate::payments::open_body(json!({"account_id": account}), 3000),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{p}");
    assert_eq!(p["code"], "account_unknown");
    let (status, own) = w
        .post(
            &stranger,
            "/v1/accounts",
            "x-3",
            json!({"kind": "driver", "name": "Other"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let own = own["id"].as_str().unwrap();
    let (status, p) = w
        .post(
            &stranger,
            &format!("/v1/accounts/{own}/payment-methods"),
            "x-4",
            json!({"token": token}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{p}");
    // The same UID is another card in another tenant.
    let (status, _) = w
        .post(
            &stranger,
            &format!("/v1/accounts/{own}/rfid-cards"),
            "x-5",
            json!({"uid": UID}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (_, s) = w.open("tap-t1", json!({"rfid_uid": UID}), 3000).await;
    assert_eq!(s["account_id"], account.as_str(), "{s}");
}

async fn bad_account_input_is_refused_and_stores_nothing(backend: Backend) {
    let w = charging(backend, |_| {}).await;
    let app = w.app_client().await;
    let (account, token) = driver_with_card(&w, &app, "b1").await;
    let accounts = w.app.db.count_rows("accounts").await;
    let cards = w.app.db.count_rows("rfid_cards").await;
    let methods = w.app.db.count_rows("account_payment_methods").await;
    let cards_path = format!("/v1/accounts/{account}/rfid-cards");
    let methods_path = format!("/v1/accounts/{account}/payment-methods");

    let cases: Vec<(&str, Value, StatusCode, &str)> = vec![
        (
            "/v1/accounts",
            json!({"kind": "robot", "name": "R"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
        ),
        (
            "/v1/accounts",
            json!({"kind": "driver", "name": ""}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
        ),
        (
            "/v1/accounts",
            json!({"kind": "driver", "name": "A", "email": "a@b, c@d"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
        ),
        (
            "/v1/accounts",
            json!({"kind": "fleet", "name": "F", "fleet_id": account}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
        ),
        (
            "/v1/accounts",
            json!({"kind": "driver", "name": "D", "fleet_id": account}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
        ),
        (
            &cards_path,
            json!({"uid": "04a2b3"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
        ),
        (
            &cards_path,
            json!({"uid": "04-A2-B3-C4-D5-E6-F7"}),
            StatusCode::CONFLICT,
            "rfid_card_exists",
        ),
        (
            &methods_path,
            json!({"token": token}),
            StatusCode::CONFLICT,
            "payment_method_exists",
        ),
        (
            &methods_path,
            json!({"token": "no-such-token"}),
            StatusCode::NOT_FOUND,
            "token_not_found",
        ),
        (
            "/v1/accounts/not-an-id/rfid-cards",
            json!({"uid": "04a2b3c4"}),
            StatusCode::NOT_FOUND,
            "account_not_found",
        ),
    ];
    for (i, (path, body, status, code)) in cases.into_iter().enumerate() {
        let (got, p) = w.post(&app, path, &format!("bad-{i}"), body.clone()).await;
        assert_eq!(
            (got, p["code"].as_str()),
            (status, Some(code)),
            "{body}: {p}"
        );
    }
    let (status, p) = w.open("tap-bad", json!({"rfid_uid": "zz"}), 3000).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{p}");
    assert_eq!(p["code"], "invalid_field");
    let (status, p) = get(&w, &app, "/v1/accounts?cursor=garbage").await;
    assert_eq!(
        (status, p["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_cursor"))
    );
    assert_eq!(w.app.db.count_rows("accounts").await, accounts);
    assert_eq!(w.app.db.count_rows("rfid_cards").await, cards);
    assert_eq!(
        w.app.db.count_rows("account_payment_methods").await,
        methods
    );
}

async fn accounts_page_with_a_cursor(backend: Backend) {
    let w = charging(backend, |_| {}).await;
    let app = w.app_client().await;
    for i in 0..5 {
        let (status, _) = w
            .post(
                &app,
                "/v1/accounts",
                &format!("p-{i}"),
                json!({"kind": "driver", "name": format!("Driver {i}")}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED);
    }
    let mut names = Vec::new();
    let mut path = "/v1/accounts?limit=2".to_owned();
    loop {
        let (status, page) = get(&w, &app, &path).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        for a in page["data"].as_array().unwrap() {
            names.push(a["name"].as_str().unwrap().to_owned());
        }
        match page["next_cursor"].as_str() {
            Some(c) => path = format!("/v1/accounts?limit=2&cursor={c}"),
            None => break,
        }
    }
    let expected: Vec<String> = (0..5).map(|i| format!("Driver {i}")).collect();
    assert_eq!(names, expected);
}

crate::on_both_databases!(
    taps_charge_the_account,
    accounts_stay_in_their_tenant,
    bad_account_input_is_refused_and_stores_nothing,
    accounts_page_with_a_cursor,
);
