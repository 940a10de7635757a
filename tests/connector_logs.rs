//! No card number or API key in any log line, error or `Debug` output of
//! the connectors, at every log level, their HTTP stack included.
//!
//! Its own test binary because it installs the process-wide log subscriber:
//! a thread-local one misses events whose callsites other tests' threads
//! registered first.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "api/localstripe.rs"]
mod localstripe;

use std::io::Write;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use voltvault::audit::{AuditError, AuditEvent, AuditSink};
use voltvault::card::{Cvc, Expiry, Pan};
use voltvault::clock::FixedClock;
use voltvault::money::{Currency, Money};
use voltvault::payments::connectors::simulator::Simulator;
use voltvault::payments::connectors::stripe::{StripeConfig, StripeConnector};
use voltvault::payments::connectors::{Acquirer, Connector, OpenedCard, PresentedCard};
use voltvault::secret::SecretString;

use localstripe::{API_KEY, LocalStripe};

/// Approved, declined by localstripe, declined by the simulator.
const NUMBERS: [&str; 3] = ["4242424242424242", "4000000000000341", "4000000000000051"];

#[derive(Clone, Default)]
struct LogBuffer(Arc<Mutex<Vec<u8>>>);

impl Write for LogBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[derive(Default)]
struct RecordingAuditSink(Mutex<Vec<AuditEvent>>);

#[async_trait]
impl AuditSink for RecordingAuditSink {
    async fn record(&self, event: AuditEvent) -> Result<(), AuditError> {
        self.0.lock().unwrap().push(event);
        Ok(())
    }
}

fn presented(number: &str) -> PresentedCard {
    let pan = Pan::parse(number).unwrap();
    let cvc = Cvc::parse("123", pan.brand()).unwrap();
    let expiry = Expiry::new(12, 2030).unwrap();
    PresentedCard::new("scan", OpenedCard::new(pan, expiry, Some(cvc)))
}

#[tokio::test]
async fn no_card_number_in_logs_errors_or_debug() {
    use tracing_subscriber::util::SubscriberInitExt;
    let logs = LogBuffer::default();
    let writer = logs.clone();
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish()
        .try_init()
        .unwrap();

    let clock = FixedClock::new(DateTime::<Utc>::from_timestamp(1_790_000_000, 0).unwrap());
    let server = LocalStripe::start().await;
    // Nothing listens here: the retry and failure paths log too.
    let dead_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let acquirers: Vec<Arc<dyn Acquirer>> = vec![
        Arc::new(Simulator::new(Arc::new(clock.clone()))),
        Arc::new(StripeConnector::new(server.config(), Arc::new(clock.clone())).unwrap()),
        Arc::new(
            StripeConnector::new(
                StripeConfig {
                    backoff: std::time::Duration::from_millis(1),
                    ..StripeConfig::loopback(
                        format!("http://127.0.0.1:{dead_port}"),
                        SecretString::new(API_KEY.into()),
                    )
                },
                Arc::new(clock.clone()),
            )
            .unwrap(),
        ),
    ];
    let eur = Currency::parse("EUR").unwrap();
    let mut seen = Vec::new();
    for acquirer in acquirers {
        let audit = Arc::new(RecordingAuditSink::default());
        let connector = Connector::new(acquirer, audit.clone(), Arc::new(clock.clone()));
        seen.push(format!("{connector:?}"));
        for (i, number) in NUMBERS.into_iter().enumerate() {
            let card = presented(number);
            seen.push(format!("{card:?}"));
            let outcome = connector
                .authorize(&format!("scan:{i}"), Money::new(5000, eur), "scan", &card)
                .await;
            seen.push(format!("{outcome:?}"));
            if let Err(e) = &outcome {
                seen.push(e.to_string());
            }
        }
        seen.push(format!("{:?}", audit.0.lock().unwrap()));
    }

    let logs = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    for expected in [
        "acquirer answered",
        "acquirer refused the request",
        "acquirer call failed",
        "reqwest::connect",
    ] {
        assert!(logs.contains(expected), "{expected:?} is in the scan");
    }
    let everything = format!("{logs}\n{}", seen.join("\n"));
    for number in NUMBERS {
        assert!(!everything.contains(number), "a card number leaked");
    }
    assert!(!everything.contains(API_KEY), "the API key leaked");
}
