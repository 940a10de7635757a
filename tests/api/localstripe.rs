//! localstripe on a free port of its own, for connector tests.

#![allow(dead_code)]

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use voltvault::payments::connectors::stripe::StripeConfig;
use voltvault::secret::SecretString;

/// localstripe takes any key that starts with `sk_`.
pub const API_KEY: &str = "sk_test_voltvault_connectors";

/// localstripe on a free port of its own, killed when dropped.
pub struct LocalStripe {
    child: Child,
    pub url: String,
}

impl LocalStripe {
    pub async fn start() -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("localstripe")
            .args(["--port", &port.to_string(), "--from-scratch"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("localstripe must be installed (scripts/test.sh installs it)");
        let server = Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        let client = reqwest::Client::new();
        for _ in 0..300 {
            if client
                .get(format!("{}/v1/balance", server.url))
                .bearer_auth(API_KEY)
                .send()
                .await
                .is_ok()
            {
                return server;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("localstripe did not answer on port {port}");
    }

    pub fn config(&self) -> StripeConfig {
        StripeConfig {
            backoff: Duration::from_millis(1),
            ..StripeConfig::loopback(&self.url, SecretString::new(API_KEY.into()))
        }
    }

    /// The PaymentIntents localstripe holds, from its own API.
    pub async fn payment_intent_count(&self) -> u64 {
        let list: serde_json::Value = reqwest::Client::new()
            .get(format!("{}/v1/payment_intents?limit=100", self.url))
            .bearer_auth(API_KEY)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        list["total_count"].as_u64().unwrap()
    }
}

impl LocalStripe {
    /// An intent that was never confirmed, carrying `reference` as ours.
    pub async fn create_unconfirmed_intent(&self, reference: &str) {
        let response = reqwest::Client::new()
            .post(format!("{}/v1/payment_intents", self.url))
            .bearer_auth(API_KEY)
            .form(&[
                ("amount", "100"),
                ("currency", "eur"),
                ("metadata[reference]", reference),
            ])
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success(), "{}", response.status());
    }
}

impl Drop for LocalStripe {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
