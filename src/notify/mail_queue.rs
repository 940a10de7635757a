//! The durable e-mail queue and the worker that empties it.
//!
//! Other code queues a notification mail with [`MailQueue::enqueue`],
//! naming it with a dedupe key (`receipt:<session>`,
//! `invoice:<number>`...): the same key queued again for the same tenant
//! is the same mail, so callers may be at-least-once. The row is written
//! before `enqueue` returns; a [`MailWorker`] on every node claims due
//! mails with a lease (as webhook deliveries are), sends each through the
//! [`Mailer`], and retries failures with exponential backoff until
//! `max_attempts`, after which the mail is dead (kept, never sent).
//!
//! At least once towards the relay: a node that dies after the relay took
//! a mail but before recording it sends it again when the lease runs out.
//!
//! What may be in a mail: a driver's address, amounts, charge points,
//! receipt ids, a card's last four. Never card data: text that holds a
//! card number (12 to 19 digits passing Luhn) is refused. Logs name the
//! mail's id and state, never its address, subject or text.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use tokio_util::sync::CancellationToken;

use super::DeliveryState;
use super::delivery::{backoff, to_chrono, whole_ms};
use super::mail::{EmailMessage, MailError, Mailer, check_recipient};
use crate::clock::Environment;
use crate::ids::{MailId, TenantId};
use crate::store::mail::{MailAttempt, MailRecord};
use crate::store::{Store, StoreError};

/// The longest dedupe key.
pub const MAX_DEDUPE_KEY: usize = 200;
/// The longest subject, in characters.
pub const MAX_SUBJECT: usize = 200;
/// The longest text, in bytes.
pub const MAX_TEXT: usize = 64 * 1024;
/// Mails one node sends at once.
const CONCURRENCY: usize = 4;
/// Mails one node claims per round.
const BATCH: i64 = 16;

#[derive(Debug, thiserror::Error)]
pub enum MailQueueError {
    #[error("mail: the recipient address is not valid")]
    Recipient,
    #[error("mail: the dedupe key must be 1 to 200 printable ASCII characters without spaces")]
    DedupeKey,
    #[error("mail: the subject must be one line of at most 200 characters")]
    Subject,
    #[error("mail: the text is longer than 64 KiB")]
    Text,
    /// The subject or text holds what looks like a card number.
    #[error("mail: the message holds a card number")]
    CardData,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Queues mail. Cheap to clone behind an `Arc`; every node has one.
pub struct MailQueue {
    store: Arc<dyn Store>,
    env: Environment,
    /// Whether a relay is configured; without one, mail waits in the queue.
    relay: bool,
}

impl MailQueue {
    pub fn new(store: Arc<dyn Store>, env: Environment, relay: bool) -> Self {
        Self { store, env, relay }
    }

    /// Queues `message` for `tenant` under `dedupe_key`. True if it is
    /// new; false if that key was queued before (the earlier mail stands,
    /// whatever this one says). Refuses, storing nothing, a bad address,
    /// key, subject or size, and any text holding a card number.
    ///
    /// From a handler or service holding `AppState::mail`:
    ///
    /// ```text
    /// let message = mail::render(&account.email, &Template::InvoiceIssued { .. });
    /// state.mail.enqueue(tenant, &message, &format!("invoice:{number}")).await?;
    /// ```
    pub async fn enqueue(
        &self,
        tenant: TenantId,
        message: &EmailMessage,
        dedupe_key: &str,
    ) -> Result<bool, MailQueueError> {
        check_message(message, dedupe_key)?;
        let now = whole_ms(self.env.clock.now());
        let record = MailRecord {
            id: MailId::generate(),
            tenant,
            dedupe_key: dedupe_key.to_owned(),
            recipient: message.to.clone(),
            subject: message.subject.clone(),
            body: message.text.clone(),
            state: DeliveryState::Pending,
            attempts: 0,
            last_error: None,
            next_attempt_at: now,
            created_at: now,
            updated_at: now,
        };
        let new = self.store.enqueue_mail(&record).await?;
        if new && !self.relay {
            tracing::info!(mail = %record.id, "mail queued, no relay: it waits until [notifications.smtp] is set");
        } else {
            tracing::debug!(mail = %record.id, new, "mail queued");
        }
        Ok(new)
    }
}

fn check_message(message: &EmailMessage, dedupe_key: &str) -> Result<(), MailQueueError> {
    if dedupe_key.is_empty()
        || dedupe_key.len() > MAX_DEDUPE_KEY
        || !dedupe_key.bytes().all(|b| b.is_ascii_graphic())
    {
        return Err(MailQueueError::DedupeKey);
    }
    check_recipient(&message.to).map_err(|_| MailQueueError::Recipient)?;
    if super::smtp::parse_mailbox(&message.to).is_none() {
        return Err(MailQueueError::Recipient);
    }
    if message.subject.chars().count() > MAX_SUBJECT
        || message.subject.chars().any(char::is_control)
    {
        return Err(MailQueueError::Subject);
    }
    if message.text.len() > MAX_TEXT {
        return Err(MailQueueError::Text);
    }
    // The log redactor's PAN test, used here to refuse instead of mask.
    let holds_pan = |t: &str| matches!(crate::redact::mask_pans(t), std::borrow::Cow::Owned(_));
    if holds_pan(&message.subject) || holds_pan(&message.text) || holds_pan(&message.to) {
        return Err(MailQueueError::CardData);
    }
    Ok(())
}

#[derive(Debug, Clone, Copy)]
pub struct MailSettings {
    pub interval: Duration,
    pub max_attempts: u32,
    /// The wait after the first failed attempt; it doubles after each.
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    /// One attempt at most (the relay's own timeout is set to it too).
    pub send_timeout: Duration,
}

impl MailSettings {
    /// A claimed mail is this node's for one attempt and some slack.
    fn lease(&self) -> chrono::Duration {
        to_chrono(self.send_timeout) + chrono::Duration::seconds(30)
    }
}

/// Sends queued mail through a [`Mailer`]; one per node.
pub struct MailWorker {
    store: Arc<dyn Store>,
    mailer: Arc<dyn Mailer>,
    env: Environment,
    settings: MailSettings,
}

impl MailWorker {
    pub fn new(
        store: Arc<dyn Store>,
        mailer: Arc<dyn Mailer>,
        env: Environment,
        settings: MailSettings,
    ) -> Self {
        Self {
            store,
            mailer,
            env,
            settings,
        }
    }

    /// One round: claims what is due and sends it. Returns how many were claimed.
    pub async fn run_once(&self) -> Result<usize, StoreError> {
        let now = whole_ms(self.env.clock.now());
        let lease_until = whole_ms(now + self.settings.lease());
        let claimed = self.store.claim_due_mail(now, lease_until, BATCH).await?;
        let n = claimed.len();
        futures_util::stream::iter(claimed)
            .for_each_concurrent(CONCURRENCY, |m| async move {
                self.attempt(m, lease_until).await;
            })
            .await;
        Ok(n)
    }

    async fn attempt(&self, mail: MailRecord, lease_until: DateTime<Utc>) {
        let message = EmailMessage {
            to: mail.recipient,
            subject: mail.subject,
            text: mail.body,
        };
        let result =
            match tokio::time::timeout(self.settings.send_timeout, self.mailer.send(message)).await
            {
                Ok(result) => result,
                Err(_) => Err(MailError::Unavailable),
            };
        let now = whole_ms(self.env.clock.now());
        let attempts = u32::try_from(mail.attempts).unwrap_or(u32::MAX);
        let (state, next) = match &result {
            Ok(()) => (DeliveryState::Delivered, now),
            // An address no relay will take does not get better.
            Err(MailError::Recipient) => (DeliveryState::Dead, now),
            Err(_) if attempts >= self.settings.max_attempts => (DeliveryState::Dead, now),
            Err(_) => (
                DeliveryState::Pending,
                whole_ms(
                    now + backoff(
                        self.settings.backoff_base,
                        self.settings.backoff_max,
                        attempts,
                    ),
                ),
            ),
        };
        let error = result.err().map(|e| e.code());
        let outcome = MailAttempt {
            state,
            last_error: error,
            next_attempt_at: next,
            at: now,
        };
        match self
            .store
            .finish_mail_attempt(mail.id, lease_until, &outcome)
            .await
        {
            Ok(true) => {}
            Ok(false) => tracing::warn!(
                mail = %mail.id,
                "mail lease ran out before its outcome was recorded"
            ),
            Err(_) => tracing::warn!(
                mail = %mail.id,
                "mail outcome could not be recorded; it will be retried"
            ),
        }
        match state {
            DeliveryState::Delivered => tracing::debug!(mail = %mail.id, "mail sent"),
            DeliveryState::Pending => tracing::info!(
                mail = %mail.id,
                attempts,
                error = error.unwrap_or("-"),
                "mail not sent; will retry"
            ),
            DeliveryState::Dead => tracing::warn!(
                mail = %mail.id,
                attempts,
                error = error.unwrap_or("-"),
                "mail dead after its last attempt"
            ),
        }
    }
}

/// Runs mail rounds every `settings.interval` until shutdown.
pub async fn run(worker: Arc<MailWorker>, shutdown: CancellationToken) {
    let every = worker.settings.interval;
    loop {
        if worker.run_once().await.is_err() {
            tracing::warn!("mail could not be claimed this round");
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(every) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(to: &str, subject: &str, text: &str) -> EmailMessage {
        EmailMessage {
            to: to.into(),
            subject: subject.into(),
            text: text.into(),
        }
    }

    #[test]
    fn messages_are_checked_before_they_are_queued() {
        let ok = message("driver@example.com", "Your receipt", "Total: EUR 12.34\n");
        assert!(check_message(&ok, "receipt:abc").is_ok());
        for key in ["", "has space", "tab\tkey", &"k".repeat(201), "ümlaut"] {
            assert!(
                matches!(check_message(&ok, key), Err(MailQueueError::DedupeKey)),
                "{key:?}"
            );
        }
        for to in ["nobody", "a@b.example\r\nBcc: x@y", "a,b@c.example", "@x"] {
            assert!(
                matches!(
                    check_message(&message(to, "s", "t"), "k"),
                    Err(MailQueueError::Recipient)
                ),
                "{to:?}"
            );
        }
        assert!(matches!(
            check_message(&message("d@example.com", "a\r\nBcc: x@y", "t"), "k"),
            Err(MailQueueError::Subject)
        ));
        assert!(matches!(
            check_message(
                &message("d@example.com", "s", &"x".repeat(MAX_TEXT + 1)),
                "k"
            ),
            Err(MailQueueError::Text)
        ));
        for text in ["Card 4242424242424242", "card 4242 4242 4242 4242 used"] {
            assert!(
                matches!(
                    check_message(&message("d@example.com", "s", text), "k"),
                    Err(MailQueueError::CardData)
                ),
                "{text}"
            );
        }
        // Last four, amounts, dates and ids are fine.
        let fine = "Card: **** 4242\nTotal: 21.25 EUR\nEnded: 2026-11-25 10:40 UTC\n\
                    Receipt: rcpt_0193a1b2-7c4d-7e8f-9a0b-1c2d3e4f5a6b\n";
        assert!(check_message(&message("d@example.com", "s", fine), "k").is_ok());
    }
}
