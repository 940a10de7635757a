//! Exactly once across crashes and nodes, with the real binary, PostgreSQL
//! and localstripe.
//!
//! Between the service and localstripe sits a pass-through proxy of this
//! test's own. It can be told to forward one request and then withhold the
//! answer: the acquirer has acted, the service never learns it. That is the
//! moment a crash hurts most, and the test SIGKILLs the service right then.
//! The proxy also counts what reached localstripe, so "one hold, one
//! capture" is checked at the acquirer's door.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use nix::sys::signal::Signal;
use serde_json::{Value, json};
use tokio::sync::oneshot;

use crate::binary::{BIN, Running, keys_init, write_node_config};
use crate::helpers::{Backend, TestDb, TestPki};
use crate::localstripe::{API_KEY, LocalStripe};
use crate::payments::{card, open_body};

/// Forward one matching request, then never answer it.
struct Trap {
    method: Method,
    path_suffix: &'static str,
    reached: oneshot::Sender<()>,
}

#[derive(Clone, Default)]
struct ProxyState {
    upstream: String,
    trap: Arc<Mutex<Option<Trap>>>,
    /// (method, path pattern) -> requests that reached localstripe
    seen: Arc<Mutex<HashMap<String, usize>>>,
}

struct Proxy {
    url: String,
    state: ProxyState,
}

/// `/v1/payment_intents/pi_x/capture` -> `/v1/payment_intents/*/capture`
fn pattern(path: &str) -> String {
    path.split('/')
        .map(|seg| {
            let is_id = ["pi_", "pm_", "ch_", "re_"]
                .iter()
                .any(|p| seg.starts_with(p));
            if is_id { "*" } else { seg }
        })
        .collect::<Vec<_>>()
        .join("/")
}

impl Proxy {
    async fn start(upstream: &str) -> Self {
        let state = ProxyState {
            upstream: upstream.to_owned(),
            ..Default::default()
        };
        let app = axum::Router::new()
            .fallback(forward)
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr: SocketAddr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self {
            url: format!("http://{addr}"),
            state,
        }
    }

    fn arm(&self, method: Method, path_suffix: &'static str) -> oneshot::Receiver<()> {
        let (tx, rx) = oneshot::channel();
        *self.state.trap.lock().unwrap() = Some(Trap {
            method,
            path_suffix,
            reached: tx,
        });
        rx
    }

    fn count(&self, key: &str) -> usize {
        self.state
            .seen
            .lock()
            .unwrap()
            .get(key)
            .copied()
            .unwrap_or(0)
    }
}

async fn forward(
    axum::extract::State(state): axum::extract::State<ProxyState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, HeaderMap, Bytes) {
    let path = uri.path().to_owned();
    let trapped = {
        let mut trap = state.trap.lock().unwrap();
        match trap.as_ref() {
            Some(t) if t.method == method && path.ends_with(t.path_suffix) => trap.take(),
            _ => None,
        }
    };
    let mut request = reqwest::Client::new().request(
        method.clone(),
        format!(
            "{}{}",
            state.upstream,
            uri.path_and_query().map_or("/", |p| p.as_str())
        ),
    );
    for (name, value) in &headers {
        if name != "host" && name != "content-length" {
            request = request.header(name, value);
        }
    }
    let answer = request.body(body).send().await.unwrap();
    *state
        .seen
        .lock()
        .unwrap()
        .entry(format!("{method} {}", pattern(&path)))
        .or_default() += 1;
    let status = StatusCode::from_u16(answer.status().as_u16()).unwrap();
    let mut out = HeaderMap::new();
    if let Some(ct) = answer.headers().get("content-type") {
        out.insert("content-type", ct.clone());
    }
    let bytes = answer.bytes().await.unwrap();
    if let Some(trap) = trapped {
        // localstripe has acted; the service never hears of it.
        let _ = trap.reached.send(());
        std::future::pending::<()>().await;
    }
    (status, out, bytes)
}

/// One service process, its address, and a charger client for it.
struct Node {
    running: Running,
    base: String,
    charger: reqwest::Client,
}

impl Node {
    fn start(pki: &TestPki, config: &std::path::Path) -> Self {
        let mut running = Running::start(&["serve", "--config", config.to_str().unwrap()], false);
        let line = running.wait_for("voltvault is serving");
        let event: Value = serde_json::from_str(&line).unwrap();
        let api: SocketAddr = event["fields"]["api_addr"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        let identity = reqwest::Identity::from_pem(
            format!("{}\n{}", pki.charger_pem, pki.charger_key_pem).as_bytes(),
        )
        .unwrap();
        let charger = reqwest::Client::builder()
            .use_rustls_tls()
            .tls_built_in_root_certs(false)
            .add_root_certificate(reqwest::Certificate::from_pem(pki.ca_pem.as_bytes()).unwrap())
            .identity(identity)
            .resolve("localhost", api)
            .timeout(Duration::from_secs(20))
            .build()
            .unwrap();
        Self {
            running,
            base: format!("https://localhost:{}", api.port()),
            charger,
        }
    }

    fn kill(mut self) {
        self.running.child.kill().unwrap();
        self.running.child.wait().unwrap();
    }

    async fn post(&self, path: &str, key: &str, body: Value) -> (StatusCode, Value) {
        post(&self.charger, &self.base, path, key, body).await
    }
}

async fn post(
    client: &reqwest::Client,
    base: &str,
    path: &str,
    key: &str,
    body: Value,
) -> (StatusCode, Value) {
    let r = client
        .post(format!("{base}{path}"))
        .header("idempotency-key", key)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = StatusCode::from_u16(r.status().as_u16()).unwrap();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// Retries a request with the same key until it is answered with a session
/// in `status` (while the claim is held it is a 409 in progress).
async fn retry_until(node: &Node, path: &str, key: &str, body: Value, status: &str) -> Value {
    let mut last = Value::Null;
    for _ in 0..150 {
        let (code, answer) = node.post(path, key, body.clone()).await;
        if code.is_success() && answer["status"] == status {
            return answer;
        }
        last = json!({"code": code.as_u16(), "answer": answer});
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("{path} never reached {status}: {last}");
}

fn admin(config: &std::path::Path, args: &[&str]) -> String {
    let out = std::process::Command::new(BIN)
        .arg("admin")
        .arg("--config")
        .arg(config)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "admin {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A PostgreSQL deployment going to localstripe through the proxy.
async fn deployment(
    nodes: &[&str],
) -> (LocalStripe, Proxy, TestPki, TestDb, Vec<std::path::PathBuf>) {
    let stripe = LocalStripe::start().await;
    let proxy = Proxy::start(&stripe.url).await;
    let pki = TestPki::new();
    let db = TestDb::new(Backend::Postgres).await;
    let key_file = pki.path("stripe.key");
    voltvault::devpki::write_file(&key_file, API_KEY, 0o600).unwrap();
    let extra = format!(
        "mode = \"development\"\n[payments]\nacquirer = \"stripe\"\ntariffs_file = \"{tariffs}\"\n\
         intent_lease_secs = 1\nrecovery_interval_secs = 1\n\
         [payments.stripe]\nbase_url = \"{proxy}\"\napi_key_file = \"{key}\"\nrequest_timeout_secs = 10\n",
        tariffs = pki.path("tariffs.json").display(),
        proxy = proxy.url,
        key = key_file.display(),
    );
    let configs: Vec<_> = nodes
        .iter()
        .map(|n| write_node_config(&pki, &db, n, &extra))
        .collect();
    keys_init(&configs[0]);
    admin(&configs[0], &["tenant", "create", "chargepoint"]);
    admin(
        &configs[0],
        &[
            "charger-ca",
            "register",
            "--tenant",
            "chargepoint",
            "--name",
            "chargers",
            "--cert",
            pki.path("ca.pem").to_str().unwrap(),
        ],
    );
    (stripe, proxy, pki, db, configs)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_between_intent_and_answer_holds_once_and_captures_once() {
    let (stripe, proxy, pki, _db, configs) = deployment(&["crash-node"]).await;
    let config = &configs[0];
    let open = open_body(card("4242424242424242"), 5000);

    // 1. The hold reaches localstripe; the answer never comes back; SIGKILL.
    let reached = proxy.arm(Method::POST, "/v1/payment_intents");
    let node = Node::start(&pki, config);
    let (client, base) = (node.charger.clone(), node.base.clone());
    let body = open.clone();
    // Its connection dies with the process: the charger never hears back.
    let pending = tokio::spawn(async move {
        client
            .post(format!("{base}/v1/payment-sessions"))
            .header("idempotency-key", "crash-open")
            .json(&body)
            .send()
            .await
    });
    tokio::time::timeout(Duration::from_secs(30), reached)
        .await
        .unwrap()
        .unwrap();
    node.kill();
    assert!(pending.await.unwrap().is_err(), "no answer after SIGKILL");

    // 2. Restarted, recovery finds the hold at localstripe and adopts it;
    //    the charger's retry with the same key gets that session.
    let node = Node::start(&pki, config);
    let session = retry_until(
        &node,
        "/v1/payment-sessions",
        "crash-open",
        open.clone(),
        "authorized",
    )
    .await;
    let id = session["id"].as_str().unwrap().to_owned();
    assert_eq!(session["authorized_amount"]["value"], 5000);

    // 3. Charge 20 kWh, then the capture reaches localstripe and the
    //    answer is lost; SIGKILL again.
    for (i, wh) in [0, 20_000].iter().enumerate() {
        let (code, m) = node
            .post(
                &format!("/v1/payment-sessions/{id}/meter"),
                &format!("m-{i}"),
                json!({"energy_wh": wh, "at": crate::payments::at(i as i64 * 30)}),
            )
            .await;
        assert_eq!(code, StatusCode::OK, "{m}");
    }
    let reached = proxy.arm(Method::POST, "/capture");
    let complete_path = format!("/v1/payment-sessions/{id}/complete");
    let done_body = json!({"energy_wh": 20_000, "at": crate::payments::at(60)});
    let (client, base, path, body) = (
        node.charger.clone(),
        node.base.clone(),
        complete_path.clone(),
        done_body.clone(),
    );
    let pending = tokio::spawn(async move {
        client
            .post(format!("{base}{path}"))
            .header("idempotency-key", "crash-complete")
            .json(&body)
            .send()
            .await
    });
    tokio::time::timeout(Duration::from_secs(30), reached)
        .await
        .unwrap()
        .unwrap();
    node.kill();
    assert!(pending.await.unwrap().is_err(), "no answer after SIGKILL");

    // 4. Restarted, recovery sees the capture happened and records it.
    let node = Node::start(&pki, config);
    let done = retry_until(
        &node,
        &complete_path,
        "crash-complete",
        done_body,
        "completed",
    )
    .await;
    // 20 kWh at 0.59 EUR + 19% VAT.
    assert_eq!(done["captured_amount"]["value"], 1404, "{done}");
    assert_eq!(done["released_amount"]["value"], 5000 - 1404);
    let (exited, _) = node.running.signal_and_collect(Signal::SIGTERM).await;
    assert!(exited);

    // At the acquirer's door: one hold, one capture, nothing else that moves money.
    assert_eq!(proxy.count("POST /v1/payment_intents"), 1);
    assert_eq!(proxy.count("POST /v1/payment_intents/*/capture"), 1);
    assert_eq!(proxy.count("POST /v1/payment_intents/*/cancel"), 0);
    assert_eq!(stripe.payment_intent_count().await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_nodes_given_the_same_request_at_once_charge_once() {
    let (stripe, proxy, pki, _db, configs) = deployment(&["node-a", "node-b"]).await;
    let a = Node::start(&pki, &configs[0]);
    let b = Node::start(&pki, &configs[1]);
    let rounds = 5;
    for round in 0..rounds {
        let key = format!("same-{round}");
        let body = open_body(card("4242424242424242"), 3000);
        let (ra, rb) = tokio::join!(
            a.post("/v1/payment-sessions", &key, body.clone()),
            b.post("/v1/payment-sessions", &key, body.clone()),
        );
        let ids: Vec<&Value> = [&ra, &rb]
            .iter()
            .filter(|(code, _)| code.is_success())
            .map(|(_, v)| &v["id"])
            .collect();
        assert!(!ids.is_empty(), "{ra:?} {rb:?}");
        // The other either waited for the first answer or was told it is in progress.
        for (code, answer) in [&ra, &rb] {
            assert!(
                code.is_success() || answer["code"] == "idempotency_in_progress",
                "{code} {answer}"
            );
        }
        assert!(ids.windows(2).all(|w| w[0] == w[1]));
        // A later retry on either node is the same session.
        let again = retry_until(&b, "/v1/payment-sessions", &key, body, "authorized").await;
        assert_eq!(&again["id"], ids[0]);
    }
    assert_eq!(proxy.count("POST /v1/payment_intents"), rounds);
    assert_eq!(stripe.payment_intent_count().await, rounds as u64);
    a.kill();
    b.kill();
}
