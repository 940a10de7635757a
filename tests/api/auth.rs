//! Authentication and authorization over the real router: every role against
//! every permissioned route, and each way a credential can be wrong, with
//! its status, problem code and audit event.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::Duration;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use voltvault::audit::Outcome;
use voltvault::auth::{Actor, Origin, Permission, Role};
use voltvault::clock::{Clock, Environment, FixedClock, OsRandom, SystemClock};
use voltvault::devpki::{DevCa, Issued};
use voltvault::http::routes::{Access, api_routes};
use voltvault::ids::{ChargerCaId, TenantId};
use voltvault::secret::SecretString;

use crate::audit_double::RecordingAudit;
use crate::helpers::{Backend, TestApp, spawn_app_full};

const PASSWORD: &str = "charge-it-2026";

struct Staff {
    username: String,
    totp: totp_rs::TOTP,
}

struct World {
    app: TestApp,
    clock: FixedClock,
    audit: RecordingAudit,
    tenant_a: TenantId,
    tenant_b: TenantId,
    ca_a: ChargerCaId,
    keys: HashMap<Role, String>,
    staff: HashMap<Role, Staff>,
}

async fn world(backend: Backend) -> World {
    world_with(backend, |_| {}).await
}

async fn world_with(
    backend: Backend,
    customize: impl FnOnce(&mut voltvault::config::Config),
) -> World {
    let clock = FixedClock::new(SystemClock.now());
    let audit = RecordingAudit::default();
    let env = Environment {
        clock: Arc::new(clock.clone()),
        random: Arc::new(OsRandom),
    };
    let app = spawn_app_full(backend, customize, None, env, Some(Arc::new(audit.clone()))).await;
    let auth = app.auth.clone();
    let (cli, origin) = (Actor::cli(), Origin::cli());
    let tenant_a = auth
        .create_tenant("tenant-a", &cli, &origin)
        .await
        .unwrap()
        .id;
    let tenant_b = auth
        .create_tenant("tenant-b", &cli, &origin)
        .await
        .unwrap()
        .id;
    let ca_a = auth
        .register_charger_ca(tenant_a, "a chargers", &app.pki.ca_pem, &cli, &origin)
        .await
        .unwrap()
        .id;
    let mut keys = HashMap::new();
    for role in [Role::App, Role::Payments] {
        let (_, secret) = auth
            .create_api_key(tenant_a, role.as_str(), role, None, &cli, &origin)
            .await
            .unwrap();
        keys.insert(role, secret.expose_secret().to_owned());
    }
    let mut staff = HashMap::new();
    for role in [Role::Operator, Role::Auditor, Role::Admin] {
        let username = format!("{}-a", role.as_str());
        let (_, totp) = auth
            .create_user(
                tenant_a,
                &username,
                role,
                &SecretString::new(PASSWORD.into()),
                &cli,
                &origin,
            )
            .await
            .unwrap();
        staff.insert(
            role,
            Staff {
                username,
                totp: totp_rs::TOTP::from_url(totp.uri.as_str()).unwrap(),
            },
        );
    }
    World {
        app,
        clock,
        audit,
        tenant_a,
        tenant_b,
        ca_a,
        keys,
        staff,
    }
}

impl World {
    fn url(&self, path: &str) -> String {
        self.app.url(path)
    }

    /// A code for the next TOTP step (the clock moves 30 s so no code repeats).
    fn next_code(&self, totp: &totp_rs::TOTP) -> String {
        self.clock.advance(Duration::seconds(30));
        totp.generate(self.clock.now().timestamp() as u64)
    }

    async fn login(&self, username: &str, password: &str) -> reqwest::Response {
        self.app
            .client()
            .post(self.url("/v1/auth/login"))
            .json(&json!({"username": username, "password": password}))
            .send()
            .await
            .unwrap()
    }

    async fn mfa(&self, challenge: &str, code: &str) -> reqwest::Response {
        self.app
            .client()
            .post(self.url("/v1/auth/mfa"))
            .json(&json!({"challenge": challenge, "code": code}))
            .send()
            .await
            .unwrap()
    }

    async fn challenge(&self, role: Role) -> String {
        let response = self.login(&self.staff[&role].username, PASSWORD).await;
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await.unwrap();
        body["challenge"].as_str().unwrap().to_owned()
    }

    /// Signs a staff member in; returns the session token.
    async fn session(&self, role: Role) -> String {
        let challenge = self.challenge(role).await;
        let code = self.next_code(&self.staff[&role].totp);
        let response = self.mfa(&challenge, &code).await;
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await.unwrap();
        body["session_token"].as_str().unwrap().to_owned()
    }

    /// An admin of tenant B, signed in.
    async fn admin_b(&self) -> String {
        let (_, totp) = self
            .app
            .auth
            .create_user(
                self.tenant_b,
                "admin-b",
                Role::Admin,
                &SecretString::new(PASSWORD.into()),
                &Actor::cli(),
                &Origin::cli(),
            )
            .await
            .unwrap();
        let totp = totp_rs::TOTP::from_url(totp.uri.as_str()).unwrap();
        let body: Value = self.login("admin-b", PASSWORD).await.json().await.unwrap();
        let code = self.next_code(&totp);
        let body: Value = self
            .mfa(body["challenge"].as_str().unwrap(), &code)
            .await
            .json()
            .await
            .unwrap();
        body["session_token"].as_str().unwrap().to_owned()
    }

    async fn get_with(
        &self,
        client: &reqwest::Client,
        path: &str,
        token: Option<&str>,
    ) -> reqwest::Response {
        let mut request = client.get(self.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send().await.unwrap()
    }

    async fn get(&self, path: &str, token: &str) -> reqwest::Response {
        self.get_with(&self.app.client(), path, Some(token)).await
    }

    async fn post(&self, path: &str, token: &str, body: Value) -> reqwest::Response {
        self.app
            .client()
            .post(self.url(path))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .unwrap()
    }
}

/// Asserts status and problem code; returns the problem document.
async fn expect(response: reqwest::Response, status: StatusCode, code: &str) -> Value {
    assert_eq!(response.status(), status);
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["code"], code, "{body}");
    body
}

fn issue(ca: &DevCa, cn: &str, not_after_year: Option<i32>) -> Issued {
    use rcgen::{CertificateParams, DnType, ExtendedKeyUsagePurpose, KeyPair};
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name.push(DnType::CommonName, cn);
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    if let Some(year) = not_after_year {
        params.not_before = rcgen::date_time_ymd(year - 1, 1, 1);
        params.not_after = rcgen::date_time_ymd(year, 1, 1);
    }
    let cert = params.signed_by(&key, &ca.cert, &ca.key).unwrap();
    Issued {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    }
}

/// Every role against every permissioned route: allowed exactly where the
/// policy grants the permission, 403 with an audit event everywhere else.
#[tokio::test]
async fn each_role_can_do_exactly_its_permissions() {
    let w = world(Backend::Sqlite).await;
    let policy = w.app.auth.policy().clone();
    let mut callers: Vec<(Role, reqwest::Client, Option<String>)> = vec![
        (Role::Charger, w.app.charger_client(), None),
        (Role::App, w.app.client(), Some(w.keys[&Role::App].clone())),
        (
            Role::Payments,
            w.app.client(),
            Some(w.keys[&Role::Payments].clone()),
        ),
    ];
    for role in [Role::Operator, Role::Auditor, Role::Admin] {
        callers.push((role, w.app.client(), Some(w.session(role).await)));
    }
    assert_eq!(callers.len(), Role::ALL.len());
    let placeholder = uuid::Uuid::now_v7().to_string();
    // Without credentials, every route that names a permission is a 401.
    for spec in api_routes().specs() {
        if spec.access == Access::Public {
            continue;
        }
        let method = Method::from_bytes(spec.method.as_str().as_bytes()).unwrap();
        let path = spec.path.replace("{id}", &placeholder);
        let response = w
            .app
            .client()
            .request(method, w.url(&path))
            .send()
            .await
            .unwrap();
        expect(response, StatusCode::UNAUTHORIZED, "unauthenticated").await;
    }
    let mut checked = 0;
    for spec in api_routes().specs() {
        let Access::Permission(permission) = spec.access else {
            continue;
        };
        let path = spec.path.replace("{id}", &placeholder);
        for (role, client, token) in &callers {
            let allowed = policy.permissions(*role).contains(&permission);
            if allowed && permission == Permission::SessionEnd {
                continue; // signing out here would end the session the table uses
            }
            let method = Method::from_bytes(spec.method.as_str().as_bytes()).unwrap();
            let mut request = client.request(method, w.url(&path));
            if let Some(token) = token {
                request = request.bearer_auth(token);
            }
            if spec.method == axum::http::Method::POST {
                request = request.json(&json!({}));
            }
            let response = request.send().await.unwrap();
            let status = response.status();
            if allowed {
                assert!(
                    status != StatusCode::UNAUTHORIZED && status != StatusCode::FORBIDDEN,
                    "{role} may {} {} ({permission}) but got {status}",
                    spec.method,
                    spec.path
                );
            } else {
                let body = expect(response, StatusCode::FORBIDDEN, "permission_denied").await;
                assert!(body.get("detail").is_none() || !body["detail"].is_null());
                let denied =
                    w.audit
                        .matching("auth.authorize", Outcome::Denied, Some("permission_denied"));
                assert!(
                    denied
                        .iter()
                        .any(|e| e.resource.as_deref() == Some(permission.as_str())
                            && e.tenant == Some(w.tenant_a)),
                    "no denial recorded for {role} on {permission}"
                );
            }
            checked += 1;
        }
    }
    assert!(checked > 50, "{checked}");
    // Logout is the permission the loop skipped for staff: every staff role holds it.
    for (role, _, token) in &callers[3..] {
        let token = token.as_deref().unwrap();
        let response = w.post("/v1/auth/logout", token, json!({})).await;
        assert_eq!(response.status(), 204, "{role}");
        expect(
            w.get("/v1/principals", token).await,
            StatusCode::UNAUTHORIZED,
            "session_invalid",
        )
        .await;
    }
    w.audit.expect("auth.logout", Outcome::Success, None);
    w.app.stop().await;
}

#[tokio::test]
async fn no_credentials_or_a_malformed_one_is_401_and_audited() {
    let w = world(Backend::Sqlite).await;
    let c = w.app.client();
    expect(
        w.get_with(&c, "/v1/users", None).await,
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
    )
    .await;
    w.audit.expect(
        "auth.authenticate",
        Outcome::Failure,
        Some("unauthenticated"),
    );
    let response = c
        .get(w.url("/v1/users"))
        .header("authorization", "Basic YWxpY2U6c2VjcmV0")
        .send()
        .await
        .unwrap();
    expect(response, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    expect(
        w.get("/v1/users", "vv_garbage").await,
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
    )
    .await;
    // Public routes stay public.
    assert_eq!(w.get_with(&c, "/healthz", None).await.status(), 200);
    w.app.stop().await;
}

#[tokio::test]
async fn certificates_that_are_unknown_expired_revoked_or_another_tenants() {
    let w = world(Backend::Sqlite).await;
    let admin = w.session(Role::Admin).await;

    // Expired: chained to tenant A's CA, validity over.
    let expired = issue(&w.app.pki.ca, "charger-old", Some(2021));
    let client = w
        .app
        .client_with_identity(&expired.cert_pem, &expired.key_pem);
    expect(
        w.get_with(&client, "/v1/principals", None).await,
        StatusCode::UNAUTHORIZED,
        "certificate_expired",
    )
    .await;
    w.audit.expect(
        "auth.authenticate",
        Outcome::Failure,
        Some("certificate_expired"),
    );

    // Revoked: the charger certificate, by PEM, through the admin API.
    let response = w
        .post(
            &format!("/v1/charger-cas/{}/revocations", w.ca_a),
            &admin,
            json!({"certificate": w.app.pki.charger_pem}),
        )
        .await;
    assert_eq!(response.status(), 201);
    w.audit
        .expect("charger_ca.revoke_certificate", Outcome::Success, None);
    expect(
        w.get_with(&w.app.charger_client(), "/v1/principals", None)
            .await,
        StatusCode::UNAUTHORIZED,
        "certificate_revoked",
    )
    .await;
    w.audit.expect(
        "auth.authenticate",
        Outcome::Failure,
        Some("certificate_revoked"),
    );

    // Another tenant's CA: a charger of tenant B is a principal of B only.
    let ca_b = DevCa::generate("tenant B chargers").unwrap();
    w.app
        .auth
        .register_charger_ca(
            w.tenant_b,
            "b chargers",
            &ca_b.cert_pem(),
            &Actor::cli(),
            &Origin::cli(),
        )
        .await
        .unwrap();
    let charger_b = issue(&ca_b, "charger-b1", None);
    let client_b = w
        .app
        .client_with_identity(&charger_b.cert_pem, &charger_b.key_pem);
    expect(
        w.get_with(&client_b, "/v1/principals", None).await,
        StatusCode::FORBIDDEN,
        "permission_denied",
    )
    .await;
    let denial = w
        .audit
        .expect("auth.authorize", Outcome::Denied, Some("permission_denied"));
    assert_eq!(denial.actor_id, "charger:charger-b1");
    assert_eq!(denial.tenant, Some(w.tenant_b));
    let report: Value = w.get("/v1/principals", &admin).await.json().await.unwrap();
    assert!(!report.to_string().contains("charger-b1"), "{report}");

    // A certificate whose CA nobody registered or configured never gets past TLS.
    assert!(
        w.app
            .foreign_client()
            .get(w.url("/healthz"))
            .send()
            .await
            .is_err()
    );
    w.app.stop().await;
}

#[tokio::test]
async fn a_certificate_trusted_by_tls_but_registered_for_no_tenant_is_401() {
    // The test CA is in tls.client_ca_files, but no tenant registered it here.
    let fresh = crate::helpers::spawn_app(Backend::Sqlite).await;
    let response = fresh
        .charger_client()
        .get(fresh.url("/v1/principals"))
        .send()
        .await
        .unwrap();
    expect(response, StatusCode::UNAUTHORIZED, "certificate_unknown_ca").await;
    fresh.stop().await;
}

#[tokio::test]
async fn api_keys_that_are_wrong_revoked_or_expired() {
    let w = world(Backend::Sqlite).await;
    let key = w.keys[&Role::App].clone();
    let admin = w.session(Role::Admin).await;
    // The app role may not list users; that proves the key authenticates.
    expect(
        w.get("/v1/users", &key).await,
        StatusCode::FORBIDDEN,
        "permission_denied",
    )
    .await;
    w.audit.expect("auth.authenticate", Outcome::Success, None);

    // Right id, wrong secret.
    let (prefix, secret) = key.split_at(20); // "vv_" + 16-digit id + "_"
    let flipped = if secret.starts_with('A') { "B" } else { "A" };
    let wrong = format!("{prefix}{flipped}{}", &secret[1..]);
    expect(
        w.get("/v1/users", &wrong).await,
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
    )
    .await;
    let event = w.audit.expect(
        "auth.authenticate",
        Outcome::Failure,
        Some("invalid_credentials"),
    );
    assert_eq!(event.tenant, Some(w.tenant_a));
    assert!(
        !format!("{:?}", w.audit.events()).contains(secret),
        "no secret in audit events"
    );

    // Revoked through the API.
    let id = &prefix[3..19];
    let response = w
        .post(&format!("/v1/clients/{id}/revoke"), &admin, json!({}))
        .await;
    assert_eq!(response.status(), 204);
    w.audit.expect("client.revoke", Outcome::Success, None);
    expect(
        w.get("/v1/users", &key).await,
        StatusCode::UNAUTHORIZED,
        "api_key_revoked",
    )
    .await;
    w.audit.expect(
        "auth.authenticate",
        Outcome::Failure,
        Some("api_key_revoked"),
    );

    // Expiring: created through the API, then the clock passes its end.
    let expires_at = w.clock.now() + Duration::hours(1);
    let created: Value = w
        .post(
            "/v1/clients",
            &admin,
            json!({"name": "short", "role": "app", "expires_at": expires_at}),
        )
        .await
        .json()
        .await
        .unwrap();
    let short = created["api_key"].as_str().unwrap().to_owned();
    expect(
        w.get("/v1/users", &short).await,
        StatusCode::FORBIDDEN,
        "permission_denied",
    )
    .await;
    w.clock.advance(Duration::hours(2));
    expect(
        w.get("/v1/users", &short).await,
        StatusCode::UNAUTHORIZED,
        "api_key_expired",
    )
    .await;
    w.audit.expect(
        "auth.authenticate",
        Outcome::Failure,
        Some("api_key_expired"),
    );

    // Rotation: the old secret stops, the new one works.
    let (_, fresh) = w
        .app
        .auth
        .create_api_key(
            w.tenant_a,
            "rotating",
            Role::App,
            None,
            &Actor::cli(),
            &Origin::cli(),
        )
        .await
        .unwrap();
    let fresh = fresh.expose_secret().to_owned();
    let id = fresh[3..19].to_owned();
    let admin = w.session(Role::Admin).await;
    let rotated: Value = w
        .post(&format!("/v1/clients/{id}/rotate"), &admin, json!({}))
        .await
        .json()
        .await
        .unwrap();
    let rotated = rotated["api_key"].as_str().unwrap().to_owned();
    assert_ne!(rotated, fresh);
    expect(
        w.get("/v1/users", &fresh).await,
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
    )
    .await;
    expect(
        w.get("/v1/users", &rotated).await,
        StatusCode::FORBIDDEN,
        "permission_denied",
    )
    .await;
    w.audit.expect("client.rotate", Outcome::Success, None);
    w.app.stop().await;
}

async fn staff_sign_in_wrong_totp_replay_and_expiry(backend: Backend) {
    let w = world(backend).await;
    let op = &w.staff[&Role::Operator];

    // Wrong password.
    expect(
        w.login(&op.username, "wrong-password-1").await,
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
    )
    .await;
    w.audit
        .expect("auth.login", Outcome::Failure, Some("invalid_credentials"));
    expect(
        w.login("nobody-here", PASSWORD).await,
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
    )
    .await;

    // Wrong TOTP.
    let challenge = w.challenge(Role::Operator).await;
    let code = w.next_code(&op.totp);
    let wrong = format!("{:06}", (code.parse::<u32>().unwrap() + 1) % 1_000_000);
    expect(
        w.mfa(&challenge, &wrong).await,
        StatusCode::UNAUTHORIZED,
        "totp_invalid",
    )
    .await;
    w.audit
        .expect("auth.mfa", Outcome::Failure, Some("totp_invalid"));

    // The right code works once; the same code on a new challenge is a replay.
    let response = w.mfa(&challenge, &code).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    let token = body["session_token"].as_str().unwrap().to_owned();
    assert!(token.starts_with("vvs_"));
    w.audit.expect("auth.mfa", Outcome::Success, None);
    let again = w.challenge(Role::Operator).await;
    expect(
        w.mfa(&again, &code).await,
        StatusCode::UNAUTHORIZED,
        "totp_replayed",
    )
    .await;
    w.audit
        .expect("auth.mfa", Outcome::Failure, Some("totp_replayed"));
    // A used challenge is gone.
    expect(
        w.mfa(&challenge, &w.next_code(&op.totp)).await,
        StatusCode::UNAUTHORIZED,
        "challenge_invalid",
    )
    .await;

    // The session works, stays alive while used, and dies after 15 idle minutes.
    expect(
        w.get("/v1/users", &token).await,
        StatusCode::FORBIDDEN,
        "permission_denied",
    )
    .await;
    w.clock.advance(Duration::minutes(14));
    expect(
        w.get("/v1/users", &token).await,
        StatusCode::FORBIDDEN,
        "permission_denied",
    )
    .await;
    w.clock.advance(Duration::minutes(15));
    expect(
        w.get("/v1/users", &token).await,
        StatusCode::UNAUTHORIZED,
        "session_expired",
    )
    .await;
    w.audit.expect(
        "auth.authenticate",
        Outcome::Failure,
        Some("session_expired"),
    );
    expect(
        w.get("/v1/users", &token).await,
        StatusCode::UNAUTHORIZED,
        "session_invalid",
    )
    .await;

    // The absolute lifetime ends a session that is never idle.
    let token = w.session(Role::Operator).await;
    for _ in 0..(8 * 6) {
        w.clock.advance(Duration::minutes(10));
        let status = w.get("/v1/users", &token).await.status();
        if status == StatusCode::UNAUTHORIZED {
            break;
        }
    }
    expect(
        w.get("/v1/users", &token).await,
        StatusCode::UNAUTHORIZED,
        "session_invalid",
    )
    .await;
    w.app.stop().await;
}

async fn ten_failures_lock_the_account_for_thirty_minutes(backend: Backend) {
    let w = world(backend).await;
    let name = w.staff[&Role::Auditor].username.clone();
    for _ in 0..10 {
        expect(
            w.login(&name, "not-the-password-9").await,
            StatusCode::UNAUTHORIZED,
            "invalid_credentials",
        )
        .await;
    }
    w.audit.expect(
        "auth.user.lock",
        Outcome::Success,
        Some("too_many_failures"),
    );
    let response = w.login(&name, PASSWORD).await;
    let retry: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=1800).contains(&retry), "{retry}");
    expect(response, StatusCode::TOO_MANY_REQUESTS, "account_locked").await;
    w.audit
        .expect("auth.login", Outcome::Failure, Some("account_locked"));
    w.clock.advance(Duration::minutes(29));
    expect(
        w.login(&name, PASSWORD).await,
        StatusCode::TOO_MANY_REQUESTS,
        "account_locked",
    )
    .await;
    w.clock.advance(Duration::minutes(2));
    w.session(Role::Auditor).await;
    w.app.stop().await;
}

crate::on_both_databases!(
    staff_sign_in_wrong_totp_replay_and_expiry,
    ten_failures_lock_the_account_for_thirty_minutes,
);

#[tokio::test]
async fn an_account_idle_for_ninety_days_is_disabled() {
    let w = world(Backend::Sqlite).await;
    w.session(Role::Operator).await;
    w.clock.advance(Duration::days(91));
    expect(
        w.login(&w.staff[&Role::Operator].username, PASSWORD).await,
        StatusCode::UNAUTHORIZED,
        "account_disabled",
    )
    .await;
    w.audit
        .expect("auth.user.disable", Outcome::Success, Some("idle_90_days"));
    // The periodic sweep disables the others that were never used.
    assert_eq!(w.app.auth.disable_idle_accounts().await.unwrap(), 2);
    assert_eq!(w.app.auth.disable_idle_accounts().await.unwrap(), 0);
    let report: Value = w
        .app
        .auth
        .principals_report(w.tenant_a)
        .await
        .map(|r| serde_json::to_value(r).unwrap())
        .unwrap();
    let staff: Vec<&Value> = report
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["kind"] == "staff")
        .collect();
    assert!(staff.iter().all(|p| p["state"] == "disabled"), "{report}");
    // An admin reset brings it back with a new password (not a recent one).
    let admin_user = w
        .app
        .auth
        .users(w.tenant_a)
        .await
        .unwrap()
        .into_iter()
        .find(|u| u.role == Role::Operator)
        .unwrap();
    let err = w
        .app
        .auth
        .reset_user(
            w.tenant_a,
            admin_user.id,
            &SecretString::new(PASSWORD.into()),
            &Actor::cli(),
            &Origin::cli(),
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("password_rejected"), "{err}");
    w.app
        .auth
        .reset_user(
            w.tenant_a,
            admin_user.id,
            &SecretString::new("a-new-one-2027".into()),
            &Actor::cli(),
            &Origin::cli(),
        )
        .await
        .unwrap();
    w.audit.expect("user.reset", Outcome::Success, None);
    assert_eq!(
        w.login(&admin_user.username, "a-new-one-2027")
            .await
            .status(),
        200
    );
    w.app.stop().await;
}

#[tokio::test]
async fn passwords_follow_the_rules_and_users_are_managed_over_the_api() {
    let w = world(Backend::Sqlite).await;
    let admin = w.session(Role::Admin).await;
    let short = w
        .post(
            "/v1/users",
            &admin,
            json!({"username": "op2", "role": "operator", "password": "short1"}),
        )
        .await;
    expect(short, StatusCode::UNPROCESSABLE_ENTITY, "password_rejected").await;
    let letters = w
        .post(
            "/v1/users",
            &admin,
            json!({"username": "op2", "role": "operator", "password": "no digits at all"}),
        )
        .await;
    expect(
        letters,
        StatusCode::UNPROCESSABLE_ENTITY,
        "password_rejected",
    )
    .await;
    let as_key = w
        .post("/v1/clients", &admin, json!({"name": "x", "role": "admin"}))
        .await;
    expect(as_key, StatusCode::UNPROCESSABLE_ENTITY, "invalid_role").await;
    let created = w
        .post(
            "/v1/users",
            &admin,
            json!({"username": "op2", "role": "operator", "password": "long enough 42"}),
        )
        .await;
    assert_eq!(created.status(), 201);
    let created: Value = created.json().await.unwrap();
    assert!(
        created["totp_uri"]
            .as_str()
            .unwrap()
            .starts_with("otpauth://totp/")
    );
    w.audit.expect("user.create", Outcome::Success, None);
    let id = created["user"]["id"].as_str().unwrap();
    let response = w
        .post(&format!("/v1/users/{id}/disable"), &admin, json!({}))
        .await;
    assert_eq!(response.status(), 204);
    w.audit.expect("user.disable", Outcome::Success, None);
    expect(
        w.login("op2", "long enough 42").await,
        StatusCode::UNAUTHORIZED,
        "account_disabled",
    )
    .await;
    // The report names every principal with its last use.
    let report: Value = w.get("/v1/principals", &admin).await.json().await.unwrap();
    let ids: Vec<&str> = report
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap())
        .collect();
    assert!(
        ids.contains(&"staff:admin-a") && ids.contains(&"staff:op2"),
        "{ids:?}"
    );
    assert!(ids.iter().any(|i| i.starts_with("client:")), "{ids:?}");
    w.app.stop().await;
}

#[tokio::test]
async fn cross_tenant_access_is_not_found_and_audited() {
    let w = world(Backend::Sqlite).await;
    let admin_b = w.admin_b().await;
    let key_a = w.keys[&Role::App][3..19].to_owned();
    let response = w
        .post(&format!("/v1/clients/{key_a}/revoke"), &admin_b, json!({}))
        .await;
    expect(response, StatusCode::NOT_FOUND, "not_found").await;
    let event = w
        .audit
        .expect("auth.authorize", Outcome::Denied, Some("other_tenant"));
    assert_eq!(event.tenant, Some(w.tenant_b));
    assert_eq!(
        event.resource.as_deref(),
        Some(format!("client:{key_a}").as_str())
    );
    // Tenant A's key still works.
    expect(
        w.get("/v1/users", &w.keys[&Role::App]).await,
        StatusCode::FORBIDDEN,
        "permission_denied",
    )
    .await;

    let response = w
        .post(
            &format!("/v1/charger-cas/{}/revocations", w.ca_a),
            &admin_b,
            json!({"certificate": "01"}),
        )
        .await;
    expect(response, StatusCode::NOT_FOUND, "not_found").await;
    let users_a = w.app.auth.users(w.tenant_a).await.unwrap();
    let response = w
        .post(
            &format!("/v1/users/{}/disable", users_a[0].id),
            &admin_b,
            json!({}),
        )
        .await;
    expect(response, StatusCode::NOT_FOUND, "not_found").await;
    assert!(
        w.audit
            .matching("auth.authorize", Outcome::Denied, Some("other_tenant"))
            .len()
            >= 3
    );
    // Lists only show the caller's tenant.
    let clients: Value = w.get("/v1/clients", &admin_b).await.json().await.unwrap();
    assert_eq!(clients.as_array().unwrap().len(), 0);
    w.app.stop().await;
}

#[tokio::test]
async fn rate_limits_answer_429_with_retry_after() {
    let w = world_with(Backend::Sqlite, |c| {
        c.auth.rate_limit_per_principal_per_minute = 3
    })
    .await;
    let key = w.keys[&Role::App].clone();
    for _ in 0..3 {
        expect(
            w.get("/v1/users", &key).await,
            StatusCode::FORBIDDEN,
            "permission_denied",
        )
        .await;
    }
    let response = w.get("/v1/users", &key).await;
    let retry: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    expect(response, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
    w.audit.expect(
        "auth.rate_limit",
        Outcome::Denied,
        Some("principal_rate_limited"),
    );
    // Another principal has its own budget.
    expect(
        w.get("/v1/users", &w.keys[&Role::Payments]).await,
        StatusCode::FORBIDDEN,
        "permission_denied",
    )
    .await;
    w.app.stop().await;

    let w = world_with(Backend::Sqlite, |c| {
        c.auth.rate_limit_per_address_per_minute = 4
    })
    .await;
    let c = w.app.client();
    let mut statuses = Vec::new();
    for _ in 0..6 {
        statuses.push(w.get_with(&c, "/healthz", None).await.status().as_u16());
    }
    assert_eq!(statuses, [200, 200, 200, 200, 429, 429]);
    w.audit.expect(
        "auth.rate_limit",
        Outcome::Denied,
        Some("address_rate_limited"),
    );
    w.app.stop().await;
}

#[tokio::test]
async fn when_the_audit_trail_fails_requests_fail_closed() {
    let w = world(Backend::Sqlite).await;
    w.audit.fail(true);
    expect(
        w.get("/v1/users", &w.keys[&Role::App]).await,
        StatusCode::SERVICE_UNAVAILABLE,
        "audit_unavailable",
    )
    .await;
    expect(
        w.login(&w.staff[&Role::Admin].username, PASSWORD).await,
        StatusCode::SERVICE_UNAVAILABLE,
        "audit_unavailable",
    )
    .await;
    w.audit.fail(false);
    w.app.stop().await;
}

#[tokio::test]
async fn admin_changes_need_a_second_factor_from_the_last_five_minutes() {
    let w = world(Backend::Sqlite).await;
    let admin = w.session(Role::Admin).await;
    let body = json!({"name": "late", "role": "app"});
    assert_eq!(
        w.post("/v1/clients", &admin, body.clone()).await.status(),
        201
    );
    w.clock.advance(Duration::minutes(6));
    // The report is fine; managing credentials is not.
    assert_eq!(w.get("/v1/principals", &admin).await.status(), 200);
    expect(
        w.post("/v1/clients", &admin, body.clone()).await,
        StatusCode::FORBIDDEN,
        "fresh_second_factor_required",
    )
    .await;
    let denial = w.audit.expect(
        "auth.authorize",
        Outcome::Denied,
        Some("fresh_second_factor_required"),
    );
    assert_eq!(denial.resource.as_deref(), Some("clients:manage"));
    // A wrong code does not help and counts as a failure; a right one does.
    let totp = &w.staff[&Role::Admin].totp;
    expect(
        w.post("/v1/auth/step-up", &admin, json!({"code": "000000x"}))
            .await,
        StatusCode::UNAUTHORIZED,
        "totp_invalid",
    )
    .await;
    let code = w.next_code(totp);
    assert_eq!(
        w.post("/v1/auth/step-up", &admin, json!({"code": code}))
            .await
            .status(),
        200
    );
    w.audit.expect("auth.step_up", Outcome::Success, None);
    expect(
        w.post("/v1/auth/step-up", &admin, json!({"code": code}))
            .await,
        StatusCode::UNAUTHORIZED,
        "totp_replayed",
    )
    .await;
    assert_eq!(w.post("/v1/clients", &admin, body).await.status(), 201);
    // API keys cannot step up.
    expect(
        w.post(
            "/v1/auth/step-up",
            &w.keys[&Role::App],
            json!({"code": "123456"}),
        )
        .await,
        StatusCode::FORBIDDEN,
        "permission_denied",
    )
    .await;
    w.app.stop().await;
}

/// Only keyed hashes, argon2id hashes and sealed seeds reach the database.
#[tokio::test]
async fn no_credential_is_stored_in_clear() {
    let w = world(Backend::Sqlite).await;
    let token = w.session(Role::Operator).await;
    expect(
        w.get("/v1/users", &token).await,
        StatusCode::FORBIDDEN,
        "permission_denied",
    )
    .await;
    let key = w.keys[&Role::App].clone();
    expect(
        w.get("/v1/users", &key).await,
        StatusCode::FORBIDDEN,
        "permission_denied",
    )
    .await;
    let dir = w.app.db.sqlite_path().unwrap().parent().unwrap().to_owned();
    let bytes = crate::helpers::read_all_files_under(&dir);
    assert!(bytes.len() > 10_000);
    let totp = &w.staff[&Role::Operator].totp;
    for (what, needle) in [
        ("API key secret", key.as_bytes()[20..].to_vec()),
        ("session token", token.as_bytes().to_vec()),
        ("password", PASSWORD.as_bytes().to_vec()),
        ("TOTP seed", totp.secret.clone()),
        ("TOTP seed (base32)", totp.get_secret_base32().into_bytes()),
    ] {
        assert!(
            !crate::helpers::contains_bytes(&bytes, &needle),
            "{what} found in the database files"
        );
    }
    w.app.stop().await;
}

fn crl(ca: &DevCa, revoked_pem: &[&str]) -> String {
    use rcgen::{CertificateRevocationListParams, KeyIdMethod, RevokedCertParams, SerialNumber};
    use rustls_pki_types::pem::PemObject;
    let revoked_certs = revoked_pem
        .iter()
        .map(|pem| {
            let der = rustls_pki_types::CertificateDer::from_pem_slice(pem.as_bytes()).unwrap();
            let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref()).unwrap();
            RevokedCertParams {
                serial_number: SerialNumber::from_slice(cert.raw_serial()),
                revocation_time: rcgen::date_time_ymd(2025, 1, 1),
                reason_code: None,
                invalidity_date: None,
            }
        })
        .collect();
    CertificateRevocationListParams {
        this_update: rcgen::date_time_ymd(2025, 1, 1),
        next_update: rcgen::date_time_ymd(2100, 1, 1),
        crl_number: SerialNumber::from(1u64),
        issuing_distribution_point: None,
        revoked_certs,
        key_identifier_method: KeyIdMethod::Sha256,
    }
    .signed_by(&ca.cert, &ca.key)
    .unwrap()
    .pem()
    .unwrap()
}

#[tokio::test]
async fn a_crl_signed_by_the_ca_revokes_what_it_lists() {
    let w = world(Backend::Sqlite).await;
    let admin = w.session(Role::Admin).await;
    let other = issue(&w.app.pki.ca, "charger-9", None);
    let other_client = w.app.client_with_identity(&other.cert_pem, &other.key_pem);
    // A CRL from someone else is refused.
    let stranger = DevCa::generate("stranger").unwrap();
    let path = format!("/v1/charger-cas/{}/crl", w.ca_a);
    let forged = w
        .post(
            &path,
            &admin,
            json!({"crl_pem": crl(&stranger, &[&w.app.pki.charger_pem])}),
        )
        .await;
    expect(forged, StatusCode::UNPROCESSABLE_ENTITY, "invalid_crl").await;
    expect(
        w.get_with(&w.app.charger_client(), "/v1/principals", None)
            .await,
        StatusCode::FORBIDDEN,
        "permission_denied",
    )
    .await;
    // The CA's own CRL listing charger-7 revokes it and leaves charger-9 alone.
    let response = w
        .post(
            &path,
            &admin,
            json!({"crl_pem": crl(&w.app.pki.ca, &[&w.app.pki.charger_pem])}),
        )
        .await;
    assert_eq!(response.status(), 204);
    w.audit
        .expect("charger_ca.import_crl", Outcome::Success, None);
    expect(
        w.get_with(&w.app.charger_client(), "/v1/principals", None)
            .await,
        StatusCode::UNAUTHORIZED,
        "certificate_revoked",
    )
    .await;
    w.audit.expect(
        "auth.authenticate",
        Outcome::Failure,
        Some("certificate_revoked"),
    );
    expect(
        w.get_with(&other_client, "/v1/principals", None).await,
        StatusCode::FORBIDDEN,
        "permission_denied",
    )
    .await;
    w.app.stop().await;
}
