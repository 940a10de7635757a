//! Acquirer connectors: one behavioural suite run against the simulator and
//! against the Stripe connector talking to localstripe (a fresh server on
//! a free port per test), then the faults only a double can make: a server
//! that never answers and one that answers 503. The scan of logs for card
//! numbers is its own binary (`tests/connector_logs.rs`): it needs the
//! process-wide log subscriber to itself.

use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use voltvault::audit::{AuditError, AuditEvent, AuditSink};
use voltvault::card::{Cvc, Expiry, Pan};
use voltvault::clock::FixedClock;
use voltvault::ids::TenantId;
use voltvault::money::{Currency, Money};
use voltvault::payments::connectors::breaker::{BreakerConfig, BreakerState};
use voltvault::payments::connectors::simulator::Simulator;
use voltvault::payments::connectors::stripe::{StripeConfig, StripeConnector};
use voltvault::payments::connectors::{
    Acquirer, AcquirerError, CaptureRequest, Connector, DeclineCode, HoldLookup, HoldState,
    HoldStatus, IncrementRequest, InvalidReason, OpenedCard, PresentedCard, RefundRequest,
    VoidRequest,
};
use voltvault::secret::SecretString;

use super::localstripe::{API_KEY, LocalStripe};

const APPROVES: &str = "4242424242424242";
/// Declined on charge by localstripe.
const LOCALSTRIPE_DECLINES: &str = "4000000000000341";
const SIM_INSUFFICIENT_FUNDS: &str = "4000000000009995";
const SIM_DO_NOT_HONOUR: &str = "4000000000000051";
const SIM_LIMITED_TO_100: &str = "4000000000000770";
const SIM_TIMES_OUT: &str = "4000000000001018";
const SIM_FAILS: &str = "4000000000005001";

fn eur(value: i64) -> Money {
    Money::new(value, Currency::parse("EUR").unwrap())
}

fn tenant() -> TenantId {
    TenantId::from_uuid(uuid::Uuid::from_u128(7))
}

fn clock() -> FixedClock {
    FixedClock::new(DateTime::<Utc>::from_timestamp(1_790_000_000, 0).unwrap())
}

/// A card as a charger presents it.
fn presented(number: &str) -> PresentedCard {
    let pan = Pan::parse(number).unwrap();
    let cvc = Cvc::parse("123", pan.brand()).unwrap();
    let expiry = Expiry::new(12, 2030).unwrap();
    PresentedCard::new("session-test", OpenedCard::new(pan, expiry, Some(cvc)))
        .with_tenant(tenant())
}

/// Keeps what the connector recorded; `fail` makes it refuse, as a full disk would.
#[derive(Default)]
struct RecordingAuditSink {
    events: Mutex<Vec<AuditEvent>>,
    fail: AtomicBool,
}

#[async_trait]
impl AuditSink for RecordingAuditSink {
    async fn record(&self, event: AuditEvent) -> Result<(), AuditError> {
        if self.fail.load(Ordering::SeqCst) {
            return Err(AuditError::Unavailable);
        }
        self.events.lock().unwrap().push(event);
        Ok(())
    }
}

struct Harness {
    connector: Connector,
    audit: Arc<RecordingAuditSink>,
}

fn harness(acquirer: Arc<dyn Acquirer>, clock: &FixedClock) -> Harness {
    let audit = Arc::new(RecordingAuditSink::default());
    Harness {
        connector: Connector::new(acquirer, audit.clone(), Arc::new(clock.clone())),
        audit,
    }
}

fn simulator() -> Harness {
    let c = clock();
    harness(Arc::new(Simulator::new(Arc::new(c.clone()))), &c)
}

fn stripe(server: &LocalStripe) -> Harness {
    let c = clock();
    let connector = StripeConnector::new(server.config(), Arc::new(c.clone())).unwrap();
    harness(Arc::new(connector), &c)
}

// --- the behavioural suite ------------------------------------------------------

async fn capture_less_than_authorized_then_refund_part(h: &Harness) {
    let auth = h
        .connector
        .authorize("s1:authorize:0", eur(5000), "s1", &presented(APPROVES))
        .await
        .unwrap();
    assert_eq!(auth.authorized, eur(5000));
    assert!(!auth.reference.is_empty());

    let capture = h
        .connector
        .capture(CaptureRequest {
            idempotency_key: "s1:capture:0".into(),
            auth_ref: auth.reference.clone(),
            amount: eur(3210),
        })
        .await
        .unwrap();
    assert_eq!(capture.captured, eur(3210));
    assert_eq!(capture.released, eur(1790));

    let refund = h
        .connector
        .refund(RefundRequest {
            idempotency_key: "s1:refund:0".into(),
            capture_ref: capture.reference.clone(),
            amount: eur(1000),
        })
        .await
        .unwrap();
    assert_eq!(refund.refunded, eur(1000));
    assert!(!refund.reference.is_empty());

    let events = h.audit.events.lock().unwrap();
    assert_eq!(events.len(), 1, "one card use, one audit event");
    assert_eq!(events[0].event_type, "card.use");
    assert_eq!(events[0].resource.as_deref(), Some("session-test"));
    assert_eq!(events[0].tenant, Some(tenant()));
}

async fn authorize_then_void(h: &Harness) {
    let auth = h
        .connector
        .authorize("s2:authorize:0", eur(2500), "s2", &presented(APPROVES))
        .await
        .unwrap();
    let void = h
        .connector
        .void(VoidRequest {
            idempotency_key: "s2:void:0".into(),
            auth_ref: auth.reference.clone(),
        })
        .await
        .unwrap();
    assert_eq!(void.released, eur(2500));
    let err = h
        .connector
        .capture(CaptureRequest {
            idempotency_key: "s2:capture:0".into(),
            auth_ref: auth.reference,
            amount: eur(100),
        })
        .await
        .unwrap_err();
    assert!(matches!(err, AcquirerError::Invalid(_)), "{err:?}");
}

async fn declines_map_to(h: &Harness, number: &str, want: DeclineCode) {
    let err = h
        .connector
        .authorize("s3:authorize:0", eur(5000), "s3", &presented(number))
        .await
        .unwrap_err();
    assert_eq!(err, AcquirerError::Declined(want));
    assert_eq!(err.code(), "payment_declined");
    assert_eq!(err.display_message(), want.display_message());
}

async fn capture_more_than_authorized_is_refused(h: &Harness) {
    let auth = h
        .connector
        .authorize("s4:authorize:0", eur(5000), "s4", &presented(APPROVES))
        .await
        .unwrap();
    let err = h
        .connector
        .capture(CaptureRequest {
            idempotency_key: "s4:capture:0".into(),
            auth_ref: auth.reference.clone(),
            amount: eur(5001),
        })
        .await
        .unwrap_err();
    assert!(matches!(err, AcquirerError::Invalid(_)), "{err:?}");
    // The hold is still there to capture properly.
    let capture = h
        .connector
        .capture(CaptureRequest {
            idempotency_key: "s4:capture:1".into(),
            auth_ref: auth.reference,
            amount: eur(5000),
        })
        .await
        .unwrap();
    assert_eq!(capture.released, eur(0));
}

/// Returns the one reference both calls got.
async fn replay_returns_the_first_outcome(h: &Harness) -> String {
    let first = h
        .connector
        .authorize("s5:authorize:0", eur(5000), "s5", &presented(APPROVES))
        .await
        .unwrap();
    let again = h
        .connector
        .authorize("s5:authorize:0", eur(5000), "s5", &presented(APPROVES))
        .await
        .unwrap();
    assert_eq!(first, again);
    let changed = h
        .connector
        .authorize("s5:authorize:0", eur(6000), "s5", &presented(APPROVES))
        .await
        .unwrap_err();
    assert_eq!(
        changed,
        AcquirerError::Invalid(InvalidReason::IdempotencyKeyReused)
    );
    let capture = CaptureRequest {
        idempotency_key: "s5:capture:0".into(),
        auth_ref: first.reference.clone(),
        amount: eur(4000),
    };
    let c1 = h.connector.capture(capture.clone()).await.unwrap();
    let c2 = h.connector.capture(capture).await.unwrap();
    assert_eq!(c1, c2);

    // Two at once with one key: the second waits for the first's outcome.
    let (card_a, card_b) = (presented(APPROVES), presented(APPROVES));
    let (a, b) = tokio::join!(
        h.connector
            .authorize("s5b:authorize:0", eur(3000), "s5b", &card_a),
        h.connector
            .authorize("s5b:authorize:0", eur(3000), "s5b", &card_b),
    );
    assert_eq!(a.unwrap(), b.unwrap());
    first.reference
}

async fn an_unusable_audit_trail_stops_the_card(h: &Harness) {
    h.audit.fail.store(true, Ordering::SeqCst);
    let err = h
        .connector
        .authorize("s6:authorize:0", eur(5000), "s6", &presented(APPROVES))
        .await
        .unwrap_err();
    assert_eq!(err, AcquirerError::AuditUnavailable);
    h.audit.fail.store(false, Ordering::SeqCst);
}

#[tokio::test]
async fn simulator_capture_release_refund() {
    capture_less_than_authorized_then_refund_part(&simulator()).await;
}

#[tokio::test]
async fn localstripe_capture_release_refund() {
    let server = LocalStripe::start().await;
    capture_less_than_authorized_then_refund_part(&stripe(&server)).await;
}

#[tokio::test]
async fn simulator_void() {
    authorize_then_void(&simulator()).await;
}

#[tokio::test]
async fn localstripe_void() {
    let server = LocalStripe::start().await;
    authorize_then_void(&stripe(&server)).await;
}

#[tokio::test]
async fn simulator_declines() {
    declines_map_to(
        &simulator(),
        SIM_INSUFFICIENT_FUNDS,
        DeclineCode::InsufficientFunds,
    )
    .await;
    declines_map_to(&simulator(), SIM_DO_NOT_HONOUR, DeclineCode::DoNotHonour).await;
}

#[tokio::test]
async fn localstripe_declines() {
    let server = LocalStripe::start().await;
    declines_map_to(
        &stripe(&server),
        LOCALSTRIPE_DECLINES,
        DeclineCode::CardDeclined,
    )
    .await;
}

#[tokio::test]
async fn simulator_refuses_capture_above_the_hold() {
    let h = simulator();
    capture_more_than_authorized_is_refused(&h).await;
}

#[tokio::test]
async fn localstripe_refuses_capture_above_the_hold() {
    let server = LocalStripe::start().await;
    capture_more_than_authorized_is_refused(&stripe(&server)).await;
}

#[tokio::test]
async fn simulator_replays() {
    replay_returns_the_first_outcome(&simulator()).await;
}

#[tokio::test]
async fn localstripe_replays_hold_one_payment_intent() {
    let server = LocalStripe::start().await;
    let h = stripe(&server);
    let reference = replay_returns_the_first_outcome(&h).await;
    assert!(reference.starts_with("pi_"));
    assert_eq!(server.payment_intent_count().await, 2, "one per key");
}

#[tokio::test]
async fn simulator_audit_fails_closed() {
    an_unusable_audit_trail_stops_the_card(&simulator()).await;
}

#[tokio::test]
async fn localstripe_audit_fails_closed() {
    let server = LocalStripe::start().await;
    an_unusable_audit_trail_stops_the_card(&stripe(&server)).await;
    assert_eq!(server.payment_intent_count().await, 0);
}

// --- finding a hold after a lost answer ------------------------------------------

async fn find(h: &Harness, lookup: HoldLookup<'_>) -> Option<HoldStatus> {
    h.connector.find_hold(lookup).await.unwrap()
}

/// Both lookups agree; returns what they found.
async fn find_both(h: &Harness, auth_ref: &str, reference: &str) -> HoldStatus {
    let by_ours = find(h, HoldLookup::Reference(reference)).await;
    assert_eq!(find(h, HoldLookup::AuthRef(auth_ref)).await, by_ours);
    by_ours.unwrap()
}

async fn find_hold_follows_a_hold(h: &Harness) {
    assert_eq!(find(h, HoldLookup::Reference("h1")).await, None);
    let auth = h
        .connector
        .authorize("h1:authorize:0", eur(5000), "h1", &presented(APPROVES))
        .await
        .unwrap();
    assert_eq!(
        find_both(h, &auth.reference, "h1").await,
        HoldStatus {
            auth_ref: auth.reference.clone(),
            state: HoldState::Authorized,
            authorized: eur(5000),
            captured: eur(0),
            capture_ref: None,
            refunded: eur(0),
        }
    );

    let capture = h
        .connector
        .capture(CaptureRequest {
            idempotency_key: "h1:capture:0".into(),
            auth_ref: auth.reference.clone(),
            amount: eur(3210),
        })
        .await
        .unwrap();
    let status = find_both(h, &auth.reference, "h1").await;
    assert_eq!(status.state, HoldState::Captured);
    assert_eq!(status.authorized, eur(5000));
    assert_eq!(status.captured, eur(3210));
    assert_eq!(status.refunded, eur(0), "the released rest is no refund");
    assert_eq!(status.capture_ref.as_ref(), Some(&capture.reference));

    // What find_hold names is what a refund needs.
    h.connector
        .refund(RefundRequest {
            idempotency_key: "h1:refund:0".into(),
            capture_ref: status.capture_ref.unwrap(),
            amount: eur(1000),
        })
        .await
        .unwrap();
    let status = find_both(h, &auth.reference, "h1").await;
    assert_eq!(status.state, HoldState::Captured);
    assert_eq!(status.captured, eur(3210));
    assert_eq!(status.refunded, eur(1000));

    let auth = h
        .connector
        .authorize("h2:authorize:0", eur(2500), "h2", &presented(APPROVES))
        .await
        .unwrap();
    h.connector
        .void(VoidRequest {
            idempotency_key: "h2:void:0".into(),
            auth_ref: auth.reference.clone(),
        })
        .await
        .unwrap();
    let status = find_both(h, &auth.reference, "h2").await;
    assert_eq!(status.state, HoldState::Voided);
    assert_eq!(status.authorized, eur(2500));
    assert_eq!(status.captured, eur(0));
    assert_eq!(status.capture_ref, None);

    assert_eq!(
        find(h, HoldLookup::Reference("no-such-session")).await,
        None
    );
    assert_eq!(find(h, HoldLookup::AuthRef("pi_NoSuchIntent0")).await, None);
}

/// A declined authorization placed nothing: found as `Failed`, zero held.
async fn a_declined_hold_is_found_failed(h: &Harness, number: &str) {
    let err = h
        .connector
        .authorize("h3:authorize:0", eur(5000), "h3", &presented(number))
        .await
        .unwrap_err();
    assert!(matches!(err, AcquirerError::Declined(_)), "{err:?}");
    let status = find(h, HoldLookup::Reference("h3")).await.unwrap();
    assert_eq!(status.state, HoldState::Failed);
    assert_eq!(status.authorized, eur(0));
    assert_eq!(status.capture_ref, None);
}

#[tokio::test]
async fn simulator_find_hold() {
    let h = simulator();
    find_hold_follows_a_hold(&h).await;
    a_declined_hold_is_found_failed(&h, SIM_DO_NOT_HONOUR).await;
}

#[tokio::test]
async fn localstripe_find_hold() {
    let server = LocalStripe::start().await;
    let h = stripe(&server);
    find_hold_follows_a_hold(&h).await;
    a_declined_hold_is_found_failed(&h, LOCALSTRIPE_DECLINES).await;
}

#[tokio::test]
async fn localstripe_find_hold_pages_past_declines_and_other_sessions() {
    let server = LocalStripe::start().await;
    let h = stripe(&server);
    // localstripe lists oldest first: a declined attempt on the first page,
    // more than a page of other intents, then the hold that was placed.
    h.connector
        .authorize(
            "p1:authorize:0",
            eur(5000),
            "p1",
            &presented(LOCALSTRIPE_DECLINES),
        )
        .await
        .unwrap_err();
    for i in 0..105 {
        server
            .create_unconfirmed_intent(&format!("other-{i}"))
            .await;
    }
    let auth = h
        .connector
        .authorize("p1:authorize:1", eur(4000), "p1", &presented(APPROVES))
        .await
        .unwrap();
    let status = find(&h, HoldLookup::Reference("p1")).await.unwrap();
    assert_eq!(status.auth_ref, auth.reference);
    assert_eq!(status.state, HoldState::Authorized);
    assert_eq!(status.authorized, eur(4000));
    let other = find(&h, HoldLookup::Reference("other-104")).await.unwrap();
    assert_eq!(
        other.state,
        HoldState::Failed,
        "never confirmed, nothing held"
    );
}

#[tokio::test]
async fn find_hold_retries_reads_and_counts_failures() {
    let server = FaultServer::start(Fault::Answers503).await;
    let clock = clock();
    let stripe = stripe_at(&format!("http://{}", server.addr), &clock, 2, 4);
    for lookup in [HoldLookup::AuthRef("pi_fault"), HoldLookup::Reference("f4")] {
        assert_eq!(
            stripe.find_hold(lookup).await,
            Err(AcquirerError::Unavailable)
        );
    }
    assert_eq!(server.count(), 4, "a read is retried");
    assert_eq!(stripe.breaker_state(), BreakerState::Open);
    assert_eq!(
        stripe.find_hold(HoldLookup::AuthRef("pi_1/../x")).await,
        Err(AcquirerError::Invalid(InvalidReason::UnknownReference))
    );
    assert_eq!(server.count(), 4);
}

// --- increments ---------------------------------------------------------------

#[tokio::test]
async fn simulator_increments_within_the_card_limit() {
    let h = simulator();
    assert!(h.connector.supports_increment());
    let auth = h
        .connector
        .authorize(
            "s7:authorize:0",
            eur(5000),
            "s7",
            &presented(SIM_LIMITED_TO_100),
        )
        .await
        .unwrap();
    assert!(auth.incremental);
    let raised = h
        .connector
        .increment(IncrementRequest {
            idempotency_key: "s7:increment:0".into(),
            auth_ref: auth.reference.clone(),
            new_total: eur(8000),
        })
        .await
        .unwrap();
    assert_eq!(raised, eur(8000));
    let refused = h
        .connector
        .increment(IncrementRequest {
            idempotency_key: "s7:increment:1".into(),
            auth_ref: auth.reference.clone(),
            new_total: eur(12000),
        })
        .await
        .unwrap_err();
    assert_eq!(
        refused,
        AcquirerError::Declined(DeclineCode::InsufficientFunds)
    );
    let capture = h
        .connector
        .capture(CaptureRequest {
            idempotency_key: "s7:capture:0".into(),
            auth_ref: auth.reference,
            amount: eur(7500),
        })
        .await
        .unwrap();
    assert_eq!(capture.released, eur(500));
}

#[tokio::test]
async fn localstripe_has_no_increments_so_the_session_stops() {
    let server = LocalStripe::start().await;
    let h = stripe(&server);
    let auth = h
        .connector
        .authorize("s8:authorize:0", eur(5000), "s8", &presented(APPROVES))
        .await
        .unwrap();
    assert!(!auth.incremental);
    let err = h
        .connector
        .increment(IncrementRequest {
            idempotency_key: "s8:increment:0".into(),
            auth_ref: auth.reference,
            new_total: eur(8000),
        })
        .await
        .unwrap_err();
    assert_eq!(err, AcquirerError::Unsupported);
}

// --- simulator faults -----------------------------------------------------------

#[tokio::test]
async fn simulator_timeout_and_failure_cards() {
    let h = simulator();
    for (number, want) in [
        (SIM_TIMES_OUT, AcquirerError::Timeout),
        (SIM_FAILS, AcquirerError::Unavailable),
    ] {
        for _ in 0..2 {
            let err = h
                .connector
                .authorize("s9:authorize:0", eur(5000), "s9", &presented(number))
                .await
                .unwrap_err();
            assert_eq!(err, want);
        }
    }
}

// --- transport faults, against doubles --------------------------------------------

#[derive(Clone, Copy)]
enum Fault {
    /// Accepts, reads, never answers.
    NeverAnswers,
    /// Answers every request with 503.
    Answers503,
}

/// A fault double: a local HTTP server that misbehaves in one way and
/// counts the requests it got.
struct FaultServer {
    addr: SocketAddr,
    requests: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl FaultServer {
    async fn start(fault: Fault) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(AtomicUsize::new(0));
        let counter = requests.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut socket, _)) = listener.accept().await else {
                    return;
                };
                let counter = counter.clone();
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 8192];
                    let _ = socket.read(&mut buf).await;
                    counter.fetch_add(1, Ordering::SeqCst);
                    match fault {
                        Fault::NeverAnswers => {
                            let _ = socket.read(&mut buf).await;
                        }
                        Fault::Answers503 => {
                            let _ = socket
                                .write_all(
                                    b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                                )
                                .await;
                        }
                    }
                });
            }
        });
        Self {
            addr,
            requests,
            task,
        }
    }

    fn count(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

impl Drop for FaultServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn stripe_at(
    url: &str,
    clock: &FixedClock,
    max_attempts: u32,
    failure_threshold: u32,
) -> Arc<StripeConnector> {
    let config = StripeConfig {
        request_timeout: Duration::from_millis(300),
        connect_timeout: Duration::from_millis(300),
        max_attempts,
        backoff: Duration::from_millis(1),
        breaker: BreakerConfig {
            failure_threshold,
            open_for: chrono::Duration::seconds(30),
        },
        ..StripeConfig::loopback(url, SecretString::new(API_KEY.into()))
    };
    Arc::new(StripeConnector::new(config, Arc::new(clock.clone())).unwrap())
}

fn capture_of(key: &str) -> CaptureRequest {
    CaptureRequest {
        idempotency_key: key.into(),
        auth_ref: "pi_fault".into(),
        amount: eur(100),
    }
}

#[tokio::test]
async fn server_errors_are_retried_then_the_breaker_opens_and_half_opens() {
    let server = FaultServer::start(Fault::Answers503).await;
    let clock = clock();
    let stripe = stripe_at(&format!("http://{}", server.addr), &clock, 3, 3);

    let err = stripe
        .capture(capture_of("f1:capture:0"))
        .await
        .unwrap_err();
    assert_eq!(err, AcquirerError::Unavailable);
    assert_eq!(server.count(), 3, "an idempotent call is tried three times");
    assert_eq!(stripe.breaker_state(), BreakerState::Open);

    let err = stripe
        .capture(capture_of("f1:capture:1"))
        .await
        .unwrap_err();
    assert_eq!(err, AcquirerError::Unavailable);
    assert_eq!(server.count(), 3, "an open breaker sends nothing");

    clock.advance(chrono::Duration::seconds(30));
    assert_eq!(stripe.breaker_state(), BreakerState::HalfOpen);
    let err = stripe
        .capture(capture_of("f1:capture:2"))
        .await
        .unwrap_err();
    assert_eq!(err, AcquirerError::Unavailable);
    assert_eq!(
        server.count(),
        4,
        "half-open lets exactly one probe through"
    );
    assert_eq!(stripe.breaker_state(), BreakerState::Open);
}

#[tokio::test]
async fn a_silent_server_times_out_after_the_retries() {
    let server = FaultServer::start(Fault::NeverAnswers).await;
    let clock = clock();
    let stripe = stripe_at(&format!("http://{}", server.addr), &clock, 2, 5);
    let first = stripe
        .void(VoidRequest {
            idempotency_key: "f2:void:0".into(),
            auth_ref: "pi_fault".into(),
        })
        .await;
    assert_eq!(first.unwrap_err(), AcquirerError::Timeout);
    assert_eq!(server.count(), 2);
    // A timeout is not a final outcome: the same key asks again.
    let again = stripe
        .void(VoidRequest {
            idempotency_key: "f2:void:0".into(),
            auth_ref: "pi_fault".into(),
        })
        .await;
    assert_eq!(again.unwrap_err(), AcquirerError::Timeout);
    assert_eq!(server.count(), 4);
}

#[tokio::test]
async fn nothing_listening_is_unavailable() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let stripe = stripe_at(&format!("http://127.0.0.1:{port}"), &clock(), 2, 5);
    let err = stripe
        .capture(capture_of("f3:capture:0"))
        .await
        .unwrap_err();
    assert_eq!(err, AcquirerError::Unavailable);
}

#[tokio::test]
async fn a_call_without_an_idempotency_key_is_never_sent() {
    let server = FaultServer::start(Fault::Answers503).await;
    let stripe = stripe_at(&format!("http://{}", server.addr), &clock(), 3, 5);
    for key in ["", "has space"] {
        let err = stripe.capture(capture_of(key)).await.unwrap_err();
        assert_eq!(err, AcquirerError::Invalid(InvalidReason::IdempotencyKey));
    }
    assert_eq!(server.count(), 0);
}

/// A fault double that speaks TLS with a certificate from `ca` for
/// `localhost` and answers every request with 503; counts the requests that
/// got through the handshake.
async fn tls_503_server(ca: &voltvault::devpki::DevCa) -> (u16, Arc<AtomicUsize>) {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let issued = ca.issue_server(&["localhost"]).unwrap();
    let chain = vec![CertificateDer::from_pem_slice(issued.cert_pem.as_bytes()).unwrap()];
    let key = PrivateKeyDer::from_pem_slice(issued.key_pem.as_bytes()).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(voltvault::http::tls::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let requests = Arc::new(AtomicUsize::new(0));
    let counter = requests.clone();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            let counter = counter.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(socket).await else {
                    return;
                };
                let mut buf = vec![0u8; 8192];
                if tls.read(&mut buf).await.unwrap_or(0) > 0 {
                    counter.fetch_add(1, Ordering::SeqCst);
                    let _ = tls
                        .write_all(
                            b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                        )
                        .await;
                    let _ = tls.shutdown().await;
                }
            });
        }
    });
    (port, requests)
}

fn https_config(port: u16, roots: &str) -> StripeConfig {
    StripeConfig {
        base_url: format!("https://localhost:{port}"),
        allowed_hosts: vec!["localhost".into()],
        trust_roots_pem: Some(roots.as_bytes().to_vec()),
        request_timeout: Duration::from_secs(5),
        max_attempts: 2,
        backoff: Duration::from_millis(1),
        ..StripeConfig::production(SecretString::new(API_KEY.into()))
    }
}

#[tokio::test]
async fn https_reaches_an_allowed_host_that_the_configured_roots_vouch_for() {
    let ca = voltvault::devpki::DevCa::generate("acquirer test CA").unwrap();
    let (port, requests) = tls_503_server(&ca).await;
    let stripe =
        StripeConnector::new(https_config(port, &ca.cert_pem()), Arc::new(clock())).unwrap();
    let err = stripe
        .capture(capture_of("t1:capture:0"))
        .await
        .unwrap_err();
    assert_eq!(err, AcquirerError::Unavailable);
    assert_eq!(
        requests.load(Ordering::SeqCst),
        2,
        "both attempts got through TLS"
    );

    let stranger = voltvault::devpki::DevCa::generate("some other CA").unwrap();
    let stripe =
        StripeConnector::new(https_config(port, &stranger.cert_pem()), Arc::new(clock())).unwrap();
    let err = stripe
        .capture(capture_of("t2:capture:0"))
        .await
        .unwrap_err();
    assert_eq!(err, AcquirerError::Unavailable);
    assert_eq!(
        requests.load(Ordering::SeqCst),
        2,
        "no request over a connection the roots do not vouch for"
    );
}

#[test]
fn production_config_needs_an_allowed_https_host() {
    let key = || SecretString::new(API_KEY.into());
    assert!(StripeConnector::new(StripeConfig::production(key()), Arc::new(clock())).is_ok());
    let elsewhere = StripeConfig {
        base_url: "https://stripe.example.net".into(),
        ..StripeConfig::production(key())
    };
    assert_eq!(
        StripeConnector::new(elsewhere, Arc::new(clock())).unwrap_err(),
        voltvault::payments::connectors::stripe::StripeConfigError::HostNotAllowed
    );
    let plain = StripeConfig {
        base_url: "http://127.0.0.1:8420".into(),
        ..StripeConfig::production(key())
    };
    assert_eq!(
        StripeConnector::new(plain, Arc::new(clock())).unwrap_err(),
        voltvault::payments::connectors::stripe::StripeConfigError::NotHttps
    );
}
