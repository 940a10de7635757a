//! The token API end to end: tokenize, read, detokenize, delete, batch, on
//! both databases, with real authentication, the SoftHSM key layer and the
//! durable audit trail.

use reqwest::StatusCode;
use serde_json::{Value, json};
use voltvault::audit::{AuditQuery, Outcome};
use voltvault::auth::policy::Role;
use voltvault::auth::{Actor, Origin};
use voltvault::ids::TenantId;
use voltvault::secret::SecretString;
use voltvault::store::tokens::TokenPolicy;

use crate::helpers::{Backend, TestApp, contains_bytes, spawn_app};

const PASSWORD: &str = "charge-it-2026";

/// Valid test cards of several brands and lengths (Luhn-valid, unexpired below).
const CARDS: &[&str] = &[
    "4111111111111111",
    "4000056655665556",
    "5555555555554444",
    "2223003122003222",
    "378282246310005",
    "6011111111111117",
    "3566002020360505",
    "6200000000000005",
    "36227206271667",
    "4222222222222",
];

struct Tenantry {
    app: TestApp,
    tenant: TenantId,
    app_key: String,
    other_key: String,
}

async fn setup(backend: Backend) -> Tenantry {
    let app = spawn_app(backend).await;
    let (cli, origin) = (Actor::cli(), Origin::cli());
    let tenant = app
        .auth
        .create_tenant("tenant-a", &cli, &origin)
        .await
        .unwrap()
        .id;
    let other = app
        .auth
        .create_tenant("tenant-b", &cli, &origin)
        .await
        .unwrap()
        .id;
    let key = |t| {
        let auth = app.auth.clone();
        async move {
            let (_, secret) = auth
                .create_api_key(t, "app", Role::App, None, &Actor::cli(), &Origin::cli())
                .await
                .unwrap();
            secret.expose_secret().to_owned()
        }
    };
    let app_key = key(tenant).await;
    let other_key = key(other).await;
    Tenantry {
        app,
        tenant,
        app_key,
        other_key,
    }
}

impl Tenantry {
    async fn tokenize(&self, key: &str, idem: &str, body: Value) -> reqwest::Response {
        self.app
            .client()
            .post(self.app.url("/v1/tokens"))
            .bearer_auth(key)
            .header("idempotency-key", idem)
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    async fn get(&self, key: &str, token: &str) -> reqwest::Response {
        self.app
            .client()
            .get(self.app.url(&format!("/v1/tokens/{token}")))
            .bearer_auth(key)
            .send()
            .await
            .unwrap()
    }

    /// An admin session with a fresh second factor.
    async fn admin_session(&self) -> String {
        let (_, totp) = self
            .app
            .auth
            .create_user(
                self.tenant,
                "admin-a",
                Role::Admin,
                &SecretString::new(PASSWORD.into()),
                &Actor::cli(),
                &Origin::cli(),
            )
            .await
            .unwrap();
        let totp = totp_rs::TOTP::from_url(totp.uri.as_str()).unwrap();
        let c = self.app.client();
        let body: Value = c
            .post(self.app.url("/v1/auth/login"))
            .json(&json!({"username": "admin-a", "password": PASSWORD}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let code = totp.generate_current().unwrap();
        let body: Value = c
            .post(self.app.url("/v1/auth/mfa"))
            .json(&json!({"challenge": body["challenge"], "code": code}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        body["session_token"].as_str().unwrap().to_owned()
    }

    async fn detokenize(&self, session: &str, token: &str) -> reqwest::Response {
        self.app
            .client()
            .post(self.app.url(&format!("/v1/tokens/{token}/detokenize")))
            .bearer_auth(session)
            .send()
            .await
            .unwrap()
    }
}

fn card(number: &str) -> Value {
    json!({"card": {"number": number, "exp_month": 12, "exp_year": 2034}})
}

fn ff1_card(number: &str) -> Value {
    json!({"card": {"number": number, "exp_month": 12, "exp_year": 2034}, "format": "ff1"})
}

fn luhn(digits: &str) -> bool {
    voltvault::card::luhn::passes(digits.as_bytes())
}

async fn tokenize_read_detokenize_round_trip_for_every_brand(backend: Backend) {
    let t = setup(backend).await;
    let session = t.admin_session().await;
    for (i, pan) in CARDS.iter().enumerate() {
        let response = t.tokenize(&t.app_key, &format!("k{i}"), card(pan)).await;
        assert_eq!(response.status(), StatusCode::CREATED, "{pan}");
        let body: Value = response.json().await.unwrap();
        let token = body["token"].as_str().unwrap();
        assert_eq!(token.len(), pan.len());
        assert!(!luhn(token), "token {token} passes Luhn");
        assert_ne!(token, *pan);
        assert_eq!(&token[token.len() - 4..], &pan[pan.len() - 4..]);
        assert_eq!(body["card"]["last4"], &pan[pan.len() - 4..]);
        assert!(!body.to_string().contains(pan));

        let read: Value = t.get(&t.app_key, token).await.json().await.unwrap();
        assert_eq!(read["card"]["exp_year"], 2034);
        assert_eq!(read["fingerprint"], body["fingerprint"]);

        let response = t.detokenize(&session, token).await;
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["cache-control"], "no-store");
        let card: Value = response.json().await.unwrap();
        assert_eq!(card["card"]["number"], *pan);
    }
    // Every detokenize was audited durably, naming the token and never the PAN.
    let mut query = AuditQuery::new();
    query.event_type = Some("token.detokenize".into());
    let records = t.app.store.search_audit(&query).await.unwrap();
    assert_eq!(records.len(), CARDS.len());
    assert!(records.iter().all(|r| r.outcome == Outcome::Success));
}

/// A tokenize commits its authentication event, its token and its stored
/// answer with its tokenize event, in one transaction of the audit writer
/// (ADR 0008): the two events sit next to each other on the chain, the
/// replay is the first answer byte for byte, and requests racing on one key
/// make one token.
async fn a_tokenize_is_one_commit_with_its_authentication(backend: Backend) {
    let t = setup(backend).await;
    let first = t.tokenize(&t.app_key, "joined-1", card(CARDS[1])).await;
    assert_eq!(first.status(), 201);
    let first = first.bytes().await.unwrap();
    let token = serde_json::from_slice::<Value>(&first).unwrap()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut query = AuditQuery::new();
    query.resource = Some(token.clone());
    let records = t.app.store.search_audit(&query).await.unwrap();
    assert_eq!(records.len(), 1);
    let tokenized = &records[0];
    assert_eq!(tokenized.event_type, "token.tokenize");
    let before = t
        .app
        .store
        .audit_chain_page(&tokenized.node_id, tokenized.seq - 2, 1)
        .await
        .unwrap();
    assert_eq!(before[0].event_type, "auth.authenticate");
    assert_eq!(before[0].outcome, Outcome::Success);
    assert_eq!(before[0].request_id, tokenized.request_id);
    assert!(tokenized.request_id.is_some());

    let again = t.tokenize(&t.app_key, "joined-1", card(CARDS[1])).await;
    assert_eq!(again.status(), 201);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    assert_eq!(again.bytes().await.unwrap(), first);

    let mut query = AuditQuery::new();
    query.event_type = Some("token.tokenize".into());
    let tokenized_before = t.app.store.search_audit(&query).await.unwrap().len();
    let racing = futures_util::future::join_all(
        (0..6).map(|_| t.tokenize(&t.app_key, "joined-2", card(CARDS[2]))),
    )
    .await;
    let mut tokens = std::collections::HashSet::new();
    for response in racing {
        match response.status().as_u16() {
            201 => {
                let body: Value = response.json().await.unwrap();
                tokens.insert(body["token"].as_str().unwrap().to_owned());
            }
            409 => {
                let body: Value = response.json().await.unwrap();
                assert_eq!(body["code"], "idempotency_in_progress");
            }
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!(tokens.len(), 1, "{tokens:?}");
    let tokenized_after = t.app.store.search_audit(&query).await.unwrap().len();
    assert_eq!(tokenized_after, tokenized_before + 1);

    // Detokenize: its authentication and the detokenize event, one commit.
    let session = t.admin_session().await;
    assert_eq!(t.detokenize(&session, &token).await.status(), 200);
    let mut query = AuditQuery::new();
    query.event_type = Some("token.detokenize".into());
    let detokenized = t.app.store.search_audit(&query).await.unwrap();
    let detokenized = detokenized.last().unwrap();
    let before = t
        .app
        .store
        .audit_chain_page(&detokenized.node_id, detokenized.seq - 2, 1)
        .await
        .unwrap();
    assert_eq!(before[0].event_type, "auth.authenticate");
    assert_eq!(before[0].request_id, detokenized.request_id);
    let reader = voltvault::audit::Reader::command_line("test");
    let report = t.app.audit.verify(&reader).await.unwrap();
    assert!(report.ok, "{report:?}");
}

async fn replays_are_answered_from_the_first_response(backend: Backend) {
    let t = setup(backend).await;
    let first = t.tokenize(&t.app_key, "same", card(CARDS[0])).await;
    assert_eq!(first.status(), 201);
    let first: Value = first.json().await.unwrap();
    let again = t.tokenize(&t.app_key, "same", card(CARDS[0])).await;
    assert_eq!(again.status(), 201);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    let again: Value = again.json().await.unwrap();
    assert_eq!(first["token"], again["token"]);
    let other = t.tokenize(&t.app_key, "same", card(CARDS[2])).await;
    assert_eq!(other.status(), 422);
    let problem: Value = other.json().await.unwrap();
    assert_eq!(problem["code"], "idempotency_key_reused");
    let missing = t
        .app
        .client()
        .post(t.app.url("/v1/tokens"))
        .bearer_auth(&t.app_key)
        .json(&card(CARDS[0]))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 400);
    let problem: Value = missing.json().await.unwrap();
    assert_eq!(problem["code"], "idempotency_key_required");
}

async fn bad_cards_get_stable_codes_and_store_nothing(backend: Backend) {
    let t = setup(backend).await;
    let cases = [
        (
            json!({"card": {"number": "4111-abcd-1111-1111", "exp_month": 12, "exp_year": 2034}}),
            422,
        ),
        (
            json!({"card": {"number": "4111111111111112", "exp_month": 12, "exp_year": 2034}}),
            422,
        ),
        (
            json!({"card": {"number": "41111111", "exp_month": 12, "exp_year": 2034}}),
            422,
        ),
        (
            json!({"card": {"number": "4111111111111111", "exp_month": 1, "exp_year": 2020}}),
            422,
        ),
        (
            json!({"card": {"number": "4111111111111111", "exp_month": 12, "exp_year": 2034, "cvc": "12"}}),
            422,
        ),
        (
            json!({"card": {"number": "4111111111111111", "exp_month": 12, "exp_year": 2034}, "metadata": {"note": "4111 1111 1111 1111"}}),
            422,
        ),
        (
            json!({"card": {"number": "4111111111111111", "exp_month": 12, "exp_year": 2034}, "format": "ff3"}),
            422,
        ),
        (
            json!({"card": {"number": "4111111111111111", "exp_month": 12}}),
            422,
        ),
    ];
    let mut codes = Vec::new();
    for (i, (body, status)) in cases.into_iter().enumerate() {
        let response = t.tokenize(&t.app_key, &format!("bad{i}"), body).await;
        assert_eq!(response.status(), status);
        let problem: Value = response.json().await.unwrap();
        assert!(
            !problem.to_string().contains("4111111111111111"),
            "{problem}"
        );
        assert!(!problem.to_string().contains("1111 1111"), "{problem}");
        codes.push(problem["code"].as_str().unwrap().to_owned());
    }
    // Duplicate keys in JSON are refused, not resolved silently.
    let duplicate = t
        .app
        .client()
        .post(t.app.url("/v1/tokens"))
        .bearer_auth(&t.app_key)
        .header("idempotency-key", "dup")
        .header("content-type", "application/json")
        .body(r#"{"card": {"number": "4111111111111111", "number": "5555555555554444", "exp_month": 12, "exp_year": 2034}}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(duplicate.status(), 422);
    assert!(codes.iter().all(|c| !c.is_empty()));
    assert!(
        codes.contains(&"luhn_failed".to_owned()) || codes.iter().any(|c| c.contains("luhn")),
        "{codes:?}"
    );
    // Nothing was stored: a lookup by any of those cards' fingerprints finds nothing,
    // and the unknown-token path answers 404.
    let unknown = t.get(&t.app_key, "4000001234567891").await;
    assert_eq!(unknown.status(), 404);
    let mut query = AuditQuery::new();
    query.event_type = Some("token.tokenize".into());
    assert!(t.app.store.search_audit(&query).await.unwrap().is_empty());
}

async fn tokens_stay_in_their_tenant(backend: Backend) {
    let t = setup(backend).await;
    let body: Value = t
        .tokenize(&t.app_key, "a", card(CARDS[0]))
        .await
        .json()
        .await
        .unwrap();
    let token = body["token"].as_str().unwrap();
    assert_eq!(t.get(&t.app_key, token).await.status(), 200);
    assert_eq!(t.get(&t.other_key, token).await.status(), 404);
    // The same card in the other tenant has another fingerprint.
    let other: Value = t
        .tokenize(&t.other_key, "b", card(CARDS[0]))
        .await
        .json()
        .await
        .unwrap();
    assert_ne!(other["fingerprint"], body["fingerprint"]);
}

async fn only_admins_with_a_fresh_factor_detokenize_and_delete_shreds(backend: Backend) {
    let t = setup(backend).await;
    let body: Value = t
        .tokenize(&t.app_key, "a", card(CARDS[2]))
        .await
        .json()
        .await
        .unwrap();
    let token = body["token"].as_str().unwrap().to_owned();
    assert_eq!(t.detokenize(&t.app_key, &token).await.status(), 403);
    let delete = || {
        t.app
            .client()
            .delete(t.app.url(&format!("/v1/tokens/{token}")))
            .bearer_auth(&t.app_key)
            .send()
    };
    assert_eq!(delete().await.unwrap().status(), 204);
    assert_eq!(t.get(&t.app_key, &token).await.status(), 410);
    let session = t.admin_session().await;
    assert_eq!(t.detokenize(&session, &token).await.status(), 410);
    let stored = t.app.store.token(t.tenant, &token).await.unwrap();
    assert!(stored.sealed.is_none() && stored.deleted_at.is_some());
    // Deleting it again is refused, and the refusal is in the trail too.
    assert_eq!(delete().await.unwrap().status(), 410);
    let deletes: Vec<_> = t
        .app
        .audit_trail()
        .await
        .into_iter()
        .filter(|r| r.event_type == "token.delete")
        .map(|r| (r.outcome, r.resource))
        .collect();
    assert_eq!(
        deletes,
        [
            (Outcome::Success, Some(token.clone())),
            (Outcome::Failure, Some(token.clone()))
        ]
    );
}

async fn deterministic_tenants_get_the_same_token_for_the_same_card(backend: Backend) {
    let t = setup(backend).await;
    t.app
        .store
        .set_token_policy(
            t.tenant,
            TokenPolicy {
                keep_bin: true,
                deterministic: true,
            },
        )
        .await
        .unwrap();
    let a: Value = t
        .tokenize(&t.app_key, "1", card(CARDS[0]))
        .await
        .json()
        .await
        .unwrap();
    let b: Value = t
        .tokenize(&t.app_key, "2", card(CARDS[0]))
        .await
        .json()
        .await
        .unwrap();
    let c: Value = t
        .tokenize(&t.app_key, "3", card(CARDS[1]))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(a["token"], b["token"]);
    assert_ne!(a["token"], c["token"]);
    let token = a["token"].as_str().unwrap();
    assert_eq!(&token[..6], &CARDS[0][..6], "the BIN is kept by policy");
    assert_eq!(a["card"]["bin"], &CARDS[0][..6]);
}

async fn batches_answer_per_item_and_refuse_oversize(backend: Backend) {
    let t = setup(backend).await;
    let items = json!({"items": [card(CARDS[0]), card("4111111111111112"), card(CARDS[2])]});
    let response = t
        .app
        .client()
        .post(t.app.url("/v1/tokens/batch"))
        .bearer_auth(&t.app_key)
        .header("idempotency-key", "batch-1")
        .json(&items)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    let results = body["results"].as_array().unwrap();
    assert_eq!(results.len(), 3);
    assert!(results[0]["token"].is_object() && results[2]["token"].is_object());
    assert!(results[1]["token"].is_null());
    assert!(!results[1]["error"]["code"].as_str().unwrap().is_empty());
    let too_many = json!({"items": vec![card(CARDS[0]); 1001]});
    let response = t
        .app
        .client()
        .post(t.app.url("/v1/tokens/batch"))
        .bearer_auth(&t.app_key)
        .header("idempotency-key", "batch-2")
        .json(&too_many)
        .send()
        .await
        .unwrap();
    // The body limit or the batch limit refuses it; either way nothing is stored.
    assert!(
        response.status() == 422 || response.status() == 413,
        "{}",
        response.status()
    );
}

/// Known PANs and CVCs through the whole HTTP path, then the database is
/// scanned for their digits: the SQLite file, or a dump of PostgreSQL.
async fn no_card_digits_reach_the_database(backend: Backend) {
    let t = setup(backend).await;
    let secrets = [("5555555555554444", "737"), ("4000056655665556", "912")];
    for (i, (pan, cvc)) in secrets.iter().enumerate() {
        let body = json!({"card": {"number": pan, "exp_month": 11, "exp_year": 2033, "cvc": cvc, "holder_name": "Ada Lovelace"}});
        let response = t.tokenize(&t.app_key, &format!("leak{i}"), body).await;
        assert_eq!(response.status(), 201);
    }
    let session = t.admin_session().await;
    let stored: Value = t.tokenize(&t.app_key, "leak0", json!({"card": {"number": secrets[0].0, "exp_month": 11, "exp_year": 2033, "cvc": secrets[0].1, "holder_name": "Ada Lovelace"}})).await.json().await.unwrap();
    assert_eq!(
        t.detokenize(&session, stored["token"].as_str().unwrap())
            .await
            .status(),
        200
    );
    let bytes = match backend {
        Backend::Sqlite => {
            t.app.store.close().await;
            let path = t.app.db.sqlite_path().unwrap();
            crate::helpers::read_all_files_under(path.parent().unwrap())
        }
        Backend::Postgres => {
            let out = std::process::Command::new("pg_dump")
                .args(["--data-only", "--no-owner", &t.app.db.url])
                .output()
                .unwrap();
            assert!(out.status.success());
            out.stdout
        }
    };
    assert!(bytes.len() > 1000);
    for (pan, _) in secrets {
        assert!(
            !contains_bytes(&bytes, pan.as_bytes()),
            "PAN {pan} found in the database"
        );
    }
    assert!(
        !contains_bytes(&bytes, b"Ada Lovelace"),
        "holder name in clear"
    );
}

async fn keep_bin(t: &Tenantry, tenant: TenantId) {
    t.app
        .store
        .set_token_policy(
            tenant,
            TokenPolicy {
                keep_bin: true,
                deterministic: false,
            },
        )
        .await
        .unwrap();
}

async fn ff1_tokens_round_trip_keep_the_clear_digits_and_differ_per_tenant(backend: Backend) {
    let t = setup(backend).await;
    keep_bin(&t, t.tenant).await;
    let session = t.admin_session().await;
    let mut tokens = Vec::new();
    for (i, pan) in CARDS.iter().enumerate() {
        let response = t
            .tokenize(&t.app_key, &format!("f{i}"), ff1_card(pan))
            .await;
        assert_eq!(response.status(), StatusCode::CREATED, "{pan}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["format"], "ff1");
        let token = body["token"].as_str().unwrap().to_owned();
        assert_eq!(token.len(), pan.len());
        assert!(!luhn(&token), "token {token} passes Luhn");
        assert_ne!(token, *pan);
        assert_eq!(&token[token.len() - 4..], &pan[pan.len() - 4..]);
        // The BIN stays where at least six digits are left to encrypt.
        if pan.len() >= 16 {
            assert_eq!(&token[..6], &pan[..6], "{pan}");
            assert_eq!(body["card"]["bin"], &pan[..6]);
        }
        assert!(!body.to_string().contains(pan));

        let read: Value = t.get(&t.app_key, &token).await.json().await.unwrap();
        assert_eq!(read["format"], "ff1");
        assert_eq!(read["fingerprint"], body["fingerprint"]);
        let response = t.detokenize(&session, &token).await;
        assert_eq!(response.status(), 200);
        let card: Value = response.json().await.unwrap();
        assert_eq!(card["card"]["number"], *pan);
        tokens.push(token);
    }

    // One value per card: the same card again answers with its token.
    let again: Value = t
        .tokenize(&t.app_key, "again", ff1_card(CARDS[0]))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(again["token"], tokens[0].as_str());
    // A random token of the same card is another value.
    let random: Value = t
        .tokenize(&t.app_key, "random", card(CARDS[0]))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(random["format"], "random");
    assert_ne!(random["token"], tokens[0].as_str());

    // Another tenant, same policy, same card: another FF1 key and tweak.
    let other_tenant = t
        .app
        .store
        .tenant_by_name(&voltvault::tenants::TenantName::parse("tenant-b").unwrap())
        .await
        .unwrap()
        .id;
    keep_bin(&t, other_tenant).await;
    let other: Value = t
        .tokenize(&t.other_key, "b", ff1_card(CARDS[0]))
        .await
        .json()
        .await
        .unwrap();
    let other = other["token"].as_str().unwrap();
    assert_ne!(other, tokens[0]);
    assert_eq!(&other[..6], &CARDS[0][..6]);

    // A deleted FF1 token keeps its value: the card cannot take it again.
    let deleted = t
        .app
        .client()
        .delete(t.app.url(&format!("/v1/tokens/{}", tokens[1])))
        .bearer_auth(&t.app_key)
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 204);
    let taken = t
        .tokenize(&t.app_key, "after-delete", ff1_card(CARDS[1]))
        .await;
    assert_eq!(taken.status(), StatusCode::CONFLICT);
    let problem: Value = taken.json().await.unwrap();
    assert_eq!(problem["code"], "ff1_token_taken");

    // Each tenant's FF1 key was made once, and audited.
    let mut query = AuditQuery::new();
    query.event_type = Some("key.ff1_key.created".into());
    let created = t.app.store.search_audit(&query).await.unwrap();
    assert_eq!(created.len(), 2, "{created:?}");
    assert!(created.iter().any(|r| r.tenant == Some(t.tenant)));
}

/// `keys rotate-kek` run beside the service (as the CLI does): the FF1 key
/// is rewrapped, and the key a fresh process unwraps makes the same tokens.
async fn ff1_tokens_survive_rotate_kek(backend: Backend) {
    use std::sync::Arc;
    use voltvault::clock::Environment;
    use voltvault::keys::{KekVersion, KeyManager, MemoryAuditSink, RotationPolicy};
    use voltvault::tokens::KeptDigits;
    use voltvault::tokens::ff1::{Ff1Tokenizer, Ff1Tweak};

    let t = setup(backend).await;
    let session = t.admin_session().await;
    let first: Value = t
        .tokenize(&t.app_key, "1", ff1_card(CARDS[2]))
        .await
        .json()
        .await
        .unwrap();
    let token = first["token"].as_str().unwrap().to_owned();

    let manager = async |t: &Tenantry| {
        KeyManager::new(
            Arc::new(t.app.pki.token.provider().await),
            t.app.store.clone().data_key_store(),
            Arc::new(MemoryAuditSink::default()),
            &Environment::system(),
            RotationPolicy::default(),
        )
    };
    let cli = manager(&t).await;
    let report = cli.rotate_kek().await.unwrap();
    assert_eq!(report.ff1_rewrapped, 1);
    assert_eq!(report.destroyed, vec![KekVersion(1)]);
    let status = cli.status().await.unwrap();
    assert_eq!(status.ff1_keys, 1);
    assert_eq!(status.keks[1].ff1_keys, 1);
    assert_eq!(status.keks[0].ff1_keys, 0);

    // A fresh process unwraps the FF1 key under KEK v2 and gets the same token.
    let key = manager(&t).await.ff1_key(t.tenant).await.unwrap();
    let id = t.tenant.as_uuid();
    let pan = voltvault::card::Pan::parse(CARDS[2]).unwrap();
    let remade = Ff1Tokenizer::with_key(key.expose_secret())
        .unwrap()
        .tokenize(
            &pan,
            KeptDigits::LastFour,
            &Ff1Tweak::for_tenant(id.as_bytes()),
        )
        .unwrap();
    assert_eq!(remade.as_str(), token);

    // The service goes on: detokenize, and new FF1 tokens.
    let response = t.detokenize(&session, &token).await;
    assert_eq!(response.status(), 200);
    let card: Value = response.json().await.unwrap();
    assert_eq!(card["card"]["number"], CARDS[2]);
    let again: Value = t
        .tokenize(&t.app_key, "2", ff1_card(CARDS[2]))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(again["token"], token.as_str());
    let new = t.tokenize(&t.app_key, "3", ff1_card(CARDS[3])).await;
    assert_eq!(new.status(), StatusCode::CREATED);
}

crate::on_both_databases!(
    ff1_tokens_round_trip_keep_the_clear_digits_and_differ_per_tenant,
    ff1_tokens_survive_rotate_kek,
    tokenize_read_detokenize_round_trip_for_every_brand,
    replays_are_answered_from_the_first_response,
    a_tokenize_is_one_commit_with_its_authentication,
    bad_cards_get_stable_codes_and_store_nothing,
    tokens_stay_in_their_tenant,
    only_admins_with_a_fresh_factor_detokenize_and_delete_shreds,
    deterministic_tenants_get_the_same_token_for_the_same_card,
    batches_answer_per_item_and_refuse_oversize,
    no_card_digits_reach_the_database,
);

/// Valid numbers of every brand and every length it issues: a BIN prefix
/// per brand range (edges included), random digits, the Luhn digit last.
fn generated_pan() -> impl proptest::strategy::Strategy<Value = String> {
    use proptest::prelude::*;
    use voltvault::card::CardBrand;
    const PREFIXES: &[&str] = &[
        "4", "51", "55", "2221", "2720", "34", "37", "6011", "644", "649", "65", "3528", "3589",
        "62", "300", "305", "3095", "36", "38", "39", "50", "56", "58", "6304", "6390", "67",
    ];
    let shapes: Vec<(&str, usize)> = PREFIXES
        .iter()
        .flat_map(|p| {
            let brand = CardBrand::detect(format!("{p:0<12}").as_bytes());
            (12..=19)
                .filter(move |&len| brand.is_some_and(|b| b.allows_length(len)))
                .map(move |len| (*p, len))
        })
        .collect();
    prop::sample::select(shapes).prop_flat_map(|(prefix, len)| {
        prop::collection::vec(0u8..10, len - prefix.len() - 1).prop_map(move |rest| {
            let body: String = prefix
                .chars()
                .chain(rest.iter().map(|d| char::from(b'0' + d)))
                .collect();
            (0..10)
                .map(|d| format!("{body}{d}"))
                .find(|pan| luhn(pan))
                .unwrap()
        })
    })
}

/// detokenize(tokenize(pan)) == pan over HTTP for generated cards of every
/// brand and length, both formats, spaced or not. Few cases per database:
/// the card module's own properties run thousands without the network.
async fn detokenize_inverts_tokenize_for_generated_cards(backend: Backend) {
    use proptest::prelude::*;
    use proptest::test_runner::{Config, TestRunner};
    let t = setup(backend).await;
    keep_bin(&t, t.tenant).await;
    let session = t.admin_session().await;
    let handle = tokio::runtime::Handle::current();
    let counter = std::sync::atomic::AtomicU32::new(0);
    let mut runner = TestRunner::new(Config {
        cases: 24,
        failure_persistence: None,
        ..Config::default()
    });
    let cases = (generated_pan(), any::<bool>(), any::<bool>());
    let result = runner.run(&cases, |(pan, ff1, spaced)| {
        let n = counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let typed = if spaced {
            let chunks: Vec<String> = pan
                .as_bytes()
                .chunks(4)
                .map(|c| String::from_utf8(c.to_vec()).unwrap())
                .collect();
            chunks.join(" ")
        } else {
            pan.clone()
        };
        let body = if ff1 { ff1_card(&typed) } else { card(&typed) };
        // The runner is synchronous; the HTTP calls run on this test's runtime.
        let (token, brand, number) = tokio::task::block_in_place(|| {
            handle.block_on(async {
                let response = t.tokenize(&t.app_key, &format!("p{n}"), body).await;
                assert_eq!(response.status(), StatusCode::CREATED);
                let view: Value = response.json().await.unwrap();
                let token = view["token"].as_str().unwrap().to_owned();
                let response = t.detokenize(&session, &token).await;
                assert_eq!(response.status(), 200);
                let back: Value = response.json().await.unwrap();
                (
                    token,
                    view["card"]["brand"].as_str().unwrap().to_owned(),
                    back["card"]["number"].as_str().unwrap().to_owned(),
                )
            })
        });
        prop_assert_eq!(&number, &pan);
        prop_assert_eq!(token.len(), pan.len());
        prop_assert_eq!(&token[token.len() - 4..], &pan[pan.len() - 4..]);
        prop_assert!(!luhn(&token));
        let expected = voltvault::card::CardBrand::detect(pan.as_bytes()).unwrap();
        prop_assert_eq!(brand.as_str(), expected.as_str());
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn detokenize_inverts_tokenize_for_generated_cards_on_sqlite() {
    detokenize_inverts_tokenize_for_generated_cards(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn detokenize_inverts_tokenize_for_generated_cards_on_postgres() {
    detokenize_inverts_tokenize_for_generated_cards(Backend::Postgres).await;
}
