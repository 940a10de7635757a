//! The SMTP password appears in no log line, at every level, while a node
//! sends queued mail through a relay that is down, then refuses the login,
//! then takes the mail. Nor do the driver's address or the mail's subject.
//!
//! Its own test binary because it installs the process-wide log subscriber
//! (see tests/webhook_logs.rs).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "api/helpers.rs"]
mod helpers;
#[path = "api/smtp_sink.rs"]
mod smtp_sink;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use voltvault::auth::{Actor, Origin};
use voltvault::clock::Environment;
use voltvault::config::{SmtpConfig, SmtpTls};
use voltvault::notify::DeliveryState;
use voltvault::notify::mail::EmailMessage;
use voltvault::notify::mail_queue::MailQueue;

use helpers::{Backend, contains_bytes, spawn_app_with};
use smtp_sink::{SMTP_USER, SmtpSink, free_port, subject};

const PASSWORD: &str = "smtp-pw-Zq81xLr4";
const DRIVER: &str = "driver.logscan@example.com";
const SUBJECT: &str = "Your charging receipt rcpt_logscan";

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

#[tokio::test]
async fn the_smtp_password_is_never_logged() {
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
    for backend in [Backend::Sqlite, Backend::Postgres] {
        one_backend(backend).await;
    }
    let text = logs.0.lock().unwrap().clone();
    // The capture works: the attempts were logged.
    assert!(contains_bytes(&text, b"mail not sent; will retry"));
    assert!(
        contains_bytes(&text, b"error=\"unavailable\"")
            || contains_bytes(&text, b"error=unavailable")
    );
    assert!(contains_bytes(&text, b"rejected"));
    assert!(contains_bytes(&text, b"mail sent"));
    for secret in [PASSWORD, DRIVER, SUBJECT] {
        assert!(
            !contains_bytes(&text, secret.as_bytes()),
            "{secret} is in the logs"
        );
    }
}

async fn one_backend(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let password_file = dir.path().join("smtp.password");
    voltvault::devpki::write_file(&password_file, &format!("{PASSWORD}\n"), 0o600).unwrap();
    let port = free_port();
    let app = spawn_app_with(
        backend,
        |c| {
            c.notifications.worker_interval_ms = 50;
            c.notifications.backoff_base_ms = 50;
            c.notifications.backoff_max_secs = 1;
            c.notifications.max_attempts = 50;
            c.notifications.smtp = Some(SmtpConfig {
                host: "127.0.0.1".into(),
                port,
                tls: SmtpTls::None,
                username: Some(SMTP_USER.into()),
                password_file: Some(password_file.clone()),
                from: "receipts@example.com".into(),
                ca_file: None,
                timeout_secs: 5,
            });
        },
        None,
    )
    .await;
    let tenant = app
        .auth
        .create_tenant("mail-logs", &Actor::cli(), &Origin::cli())
        .await
        .unwrap()
        .id;
    let queue = MailQueue::new(app.store.clone(), Environment::system(), true);
    let message = EmailMessage {
        to: DRIVER.into(),
        subject: SUBJECT.into(),
        text: "Total paid: 21.25 EUR\n".into(),
    };
    assert!(
        queue
            .enqueue(tenant, &message, "receipt:logscan")
            .await
            .unwrap()
    );

    let state = |e: Option<&str>| {
        let store = app.store.clone();
        let wanted = e.map(str::to_owned);
        async move {
            for _ in 0..200 {
                let m = store.mail_by_key(tenant, "receipt:logscan").await.unwrap();
                let done = match &wanted {
                    Some(code) => m.last_error.as_deref() == Some(code.as_str()),
                    None => m.state != DeliveryState::Pending,
                };
                if done {
                    return m;
                }
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
            panic!("the mail never got to {wanted:?}");
        }
    };
    // Nothing listens: the node's worker retries.
    state(Some("unavailable")).await;
    // A relay that refuses this password.
    let wrong = SmtpSink::start(port, "not-the-password").await;
    state(Some("rejected")).await;
    assert!(wrong.messages().is_empty());
    drop(wrong);
    // The relay that takes it.
    let sink = SmtpSink::start(port, PASSWORD).await;
    let m = state(None).await;
    assert_eq!(m.state, DeliveryState::Delivered, "{m:?}");
    let sent = sink.messages();
    assert_eq!(sent.len(), 1);
    assert_eq!(subject(&sent[0]).as_deref(), Some(SUBJECT));
    app.stop().await;
}
