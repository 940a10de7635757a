//! The e-mail queue against a real SMTP server (aiosmtpd) on both
//! databases: a queued mail arrives once, a relay that is down is retried
//! until it takes the mail, one that never comes back leaves the mail dead,
//! and bad mail is refused before anything is stored. (The SMTP password
//! in the logs: tests/mail_logs.rs.)

use std::sync::Arc;
use std::time::Duration;

use voltvault::clock::Environment;
use voltvault::config::{SmtpConfig, SmtpTls};
use voltvault::ids::TenantId;
use voltvault::money::{Currency, Money};
use voltvault::notify::DeliveryState;
use voltvault::notify::mail::{EmailMessage, ReceiptSummary, Template, render};
use voltvault::notify::mail_queue::{MailQueue, MailQueueError, MailSettings, MailWorker};
use voltvault::notify::smtp::SmtpMailer;
use voltvault::secret::SecretString;
use voltvault::store::Store;
use voltvault::tenants::{Tenant, TenantName};

use crate::helpers::{Backend, TestDb};
use crate::smtp_sink::{SMTP_USER, SmtpSink, body, free_port, subject};

const PASSWORD: &str = "relay-pw-7f3a9c";

struct Rig {
    db: TestDb,
    store: Arc<dyn Store>,
    tenant: TenantId,
    queue: MailQueue,
}

async fn rig(backend: Backend) -> Rig {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    let tenant = Tenant {
        id: TenantId::generate(),
        name: TenantName::parse("mailers").unwrap(),
        created_at: Environment::system().clock.now(),
    };
    store.insert_tenant(&tenant).await.unwrap();
    let queue = MailQueue::new(store.clone(), Environment::system(), true);
    Rig {
        db,
        store,
        tenant: tenant.id,
        queue,
    }
}

/// A worker sending to 127.0.0.1:`port` as `SMTP_USER`; backoff from 50 ms.
fn worker(store: Arc<dyn Store>, port: u16, max_attempts: u32) -> MailWorker {
    let config = SmtpConfig {
        host: "127.0.0.1".into(),
        port,
        tls: SmtpTls::None,
        username: Some(SMTP_USER.into()),
        password_file: None,
        from: "Example Charging <receipts@example.com>".into(),
        ca_file: None,
        timeout_secs: 5,
    };
    let password = SecretString::new(PASSWORD.into());
    let mailer = SmtpMailer::new(&config, Some(&password)).unwrap();
    assert!(!format!("{mailer:?}").contains(PASSWORD));
    MailWorker::new(
        store,
        Arc::new(mailer),
        Environment::system(),
        MailSettings {
            interval: Duration::from_millis(50),
            max_attempts,
            backoff_base: Duration::from_millis(50),
            backoff_max: Duration::from_secs(1),
            send_timeout: Duration::from_secs(5),
        },
    )
}

fn receipt_mail() -> EmailMessage {
    let eur = Currency::parse("EUR").unwrap();
    render(
        "driver@example.com",
        &Template::SessionCompleted(ReceiptSummary {
            receipt_id: "rcpt_0001",
            evse_id: "DE*VVT*E0001*1",
            energy_wh: 30_250,
            total: Money::new(2125, eur),
            ended_at: Environment::system().clock.now(),
            card_last4: Some("4242"),
        }),
    )
}

async fn a_queued_mail_arrives_once_with_its_subject_and_text(backend: Backend) {
    let r = rig(backend).await;
    let sink = SmtpSink::start(0, PASSWORD).await;
    let message = receipt_mail();
    assert!(
        r.queue
            .enqueue(r.tenant, &message, "receipt:0001")
            .await
            .unwrap()
    );
    // At least once from the caller is once to the driver, whatever the
    // second call says.
    let mut again = message.clone();
    again.subject = "something else".into();
    assert!(
        !r.queue
            .enqueue(r.tenant, &again, "receipt:0001")
            .await
            .unwrap()
    );
    assert_eq!(r.db.count_rows("mail_outbox").await, 1);

    let w = worker(r.store.clone(), sink.port, 3);
    assert_eq!(w.run_once().await.unwrap(), 1);
    assert_eq!(w.run_once().await.unwrap(), 0, "nothing left to send");

    let sent = sink.messages();
    assert_eq!(sent.len(), 1, "{sent:?}");
    let raw = &sent[0];
    assert!(
        raw.starts_with("X-Rcpt-To: driver@example.com\r\n"),
        "{raw}"
    );
    assert_eq!(
        subject(raw).as_deref(),
        Some("Your charging receipt rcpt_0001")
    );
    let text = body(raw);
    assert_eq!(text.trim_end(), message.text.trim_end(), "{raw}");
    assert!(
        raw.contains("From: \"Example Charging\" <receipts@example.com>")
            || raw.contains("From: Example Charging <receipts@example.com>"),
        "{raw}"
    );

    let record = r.store.mail_by_key(r.tenant, "receipt:0001").await.unwrap();
    assert_eq!(record.state, DeliveryState::Delivered);
    assert_eq!(record.attempts, 1);
    assert_eq!(record.last_error, None);
    // Delivered: the text is not kept.
    assert_eq!(record.body, "");
}

async fn a_relay_that_is_down_is_retried_then_delivers(backend: Backend) {
    let r = rig(backend).await;
    let port = free_port();
    r.queue
        .enqueue(r.tenant, &receipt_mail(), "receipt:down")
        .await
        .unwrap();
    let w = worker(r.store.clone(), port, 5);
    assert_eq!(w.run_once().await.unwrap(), 1);
    let record = r.store.mail_by_key(r.tenant, "receipt:down").await.unwrap();
    assert_eq!(record.state, DeliveryState::Pending);
    assert_eq!(record.attempts, 1);
    assert_eq!(record.last_error.as_deref(), Some("unavailable"));
    assert!(record.next_attempt_at > record.updated_at, "backs off");
    assert_ne!(record.body, "", "kept until it is sent");

    let sink = SmtpSink::start(port, PASSWORD).await;
    let mut record = record;
    // Up to 30 s: a loaded CI machine may take seconds per attempt.
    for _ in 0..1000 {
        tokio::time::sleep(Duration::from_millis(30)).await;
        w.run_once().await.unwrap();
        record = r.store.mail_by_key(r.tenant, "receipt:down").await.unwrap();
        if record.state != DeliveryState::Pending {
            break;
        }
    }
    assert_eq!(record.state, DeliveryState::Delivered, "{record:?}");
    assert_eq!(record.attempts, 2);
    let sent = sink.messages();
    assert_eq!(sent.len(), 1);
    assert_eq!(
        subject(&sent[0]).as_deref(),
        Some("Your charging receipt rcpt_0001")
    );
}

async fn a_relay_that_never_comes_back_leaves_the_mail_dead(backend: Backend) {
    let r = rig(backend).await;
    let port = free_port();
    r.queue
        .enqueue(r.tenant, &receipt_mail(), "receipt:dead")
        .await
        .unwrap();
    let w = worker(r.store.clone(), port, 2);
    let mut record = r.store.mail_by_key(r.tenant, "receipt:dead").await.unwrap();
    for _ in 0..1000 {
        w.run_once().await.unwrap();
        record = r.store.mail_by_key(r.tenant, "receipt:dead").await.unwrap();
        if record.state != DeliveryState::Pending {
            break;
        }
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    assert_eq!(record.state, DeliveryState::Dead, "{record:?}");
    assert_eq!(record.attempts, 2);
    assert_eq!(record.last_error.as_deref(), Some("unavailable"));
    // Dead is final: a relay that comes up later does not get it.
    let sink = SmtpSink::start(port, PASSWORD).await;
    assert_eq!(w.run_once().await.unwrap(), 0);
    assert!(sink.messages().is_empty());
}

async fn a_refused_login_is_retried_and_named_rejected(backend: Backend) {
    let r = rig(backend).await;
    let sink = SmtpSink::start(0, "another-password").await;
    r.queue
        .enqueue(r.tenant, &receipt_mail(), "receipt:auth")
        .await
        .unwrap();
    let w = worker(r.store.clone(), sink.port, 3);
    assert_eq!(w.run_once().await.unwrap(), 1);
    let record = r.store.mail_by_key(r.tenant, "receipt:auth").await.unwrap();
    assert_eq!(record.state, DeliveryState::Pending);
    assert_eq!(record.last_error.as_deref(), Some("rejected"));
    assert!(sink.messages().is_empty());
}

async fn two_nodes_send_a_due_mail_once(backend: Backend) {
    let r = rig(backend).await;
    let sink = SmtpSink::start(0, PASSWORD).await;
    for i in 0..5 {
        r.queue
            .enqueue(r.tenant, &receipt_mail(), &format!("receipt:{i}"))
            .await
            .unwrap();
    }
    let one = worker(r.store.clone(), sink.port, 3);
    let two = worker(r.store.clone(), sink.port, 3);
    let (a, b) = tokio::join!(one.run_once(), two.run_once());
    assert_eq!(a.unwrap() + b.unwrap(), 5, "each mail claimed by one node");
    assert_eq!(one.run_once().await.unwrap(), 0);
    assert_eq!(sink.messages().len(), 5);
    for i in 0..5 {
        let m = r
            .store
            .mail_by_key(r.tenant, &format!("receipt:{i}"))
            .await
            .unwrap();
        assert_eq!((m.state, m.attempts), (DeliveryState::Delivered, 1));
    }
}

async fn bad_mail_is_refused_and_nothing_is_stored(backend: Backend) {
    let r = rig(backend).await;
    let mut card = receipt_mail();
    card.text.push_str("Card: 4242 4242 4242 4242\n");
    assert!(matches!(
        r.queue.enqueue(r.tenant, &card, "receipt:card").await,
        Err(MailQueueError::CardData)
    ));
    let mut header = receipt_mail();
    header.to = "driver@example.com\r\nBcc: all@example.com".into();
    assert!(matches!(
        r.queue.enqueue(r.tenant, &header, "receipt:hdr").await,
        Err(MailQueueError::Recipient)
    ));
    assert!(matches!(
        r.queue
            .enqueue(r.tenant, &receipt_mail(), "two words")
            .await,
        Err(MailQueueError::DedupeKey)
    ));
    // A tenant that does not exist: the reference is refused.
    assert!(matches!(
        r.queue
            .enqueue(TenantId::generate(), &receipt_mail(), "receipt:x")
            .await,
        Err(MailQueueError::Store(_))
    ));
    assert_eq!(r.db.count_rows("mail_outbox").await, 0);
}

crate::on_both_databases!(
    a_queued_mail_arrives_once_with_its_subject_and_text,
    a_relay_that_is_down_is_retried_then_delivers,
    a_relay_that_never_comes_back_leaves_the_mail_dead,
    a_refused_login_is_retried_and_named_rejected,
    two_nodes_send_a_due_mail_once,
    bad_mail_is_refused_and_nothing_is_stored,
);
