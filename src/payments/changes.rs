//! Wakes this node's live-cost streams when one of their sessions changes,
//! so a reading taken here is pushed at once. A reading taken on another
//! node reaches the stream when the stream next polls the database.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::watch;

use crate::ids::PaymentSessionId;

/// One channel per watched session; a session nobody watches has none.
#[derive(Default)]
pub struct SessionChanges {
    watched: Mutex<HashMap<PaymentSessionId, watch::Sender<()>>>,
}

impl SessionChanges {
    /// Says that `id` was written; wakes whoever watches it.
    pub fn changed(&self, id: PaymentSessionId) {
        let mut watched = self.watched.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(sender) = watched.get(&id)
            && sender.send(()).is_err()
        {
            // Every watcher has gone.
            watched.remove(&id);
        }
    }

    /// A watch on `id`. Take it before reading the session: a write after
    /// the read then always wakes it.
    pub fn watch(&self, id: PaymentSessionId) -> SessionWatch {
        let mut watched = self.watched.lock().unwrap_or_else(|e| e.into_inner());
        // Channels of streams that ended and whose session never changed again.
        watched.retain(|_, sender| sender.receiver_count() > 0);
        let receiver = watched
            .entry(id)
            .or_insert_with(|| watch::channel(()).0)
            .subscribe();
        SessionWatch { receiver }
    }

    #[cfg(test)]
    fn watched(&self) -> usize {
        self.watched.lock().unwrap().len()
    }
}

pub struct SessionWatch {
    receiver: watch::Receiver<()>,
}

impl SessionWatch {
    /// Returns when the session was written on this node since the last
    /// return, or after `poll`, whichever comes first.
    pub async fn next(&mut self, poll: Duration) {
        let _ = tokio::time::timeout(poll, self.receiver.changed()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_write_wakes_its_watchers_and_no_others() {
        let changes = SessionChanges::default();
        let (one, two) = (PaymentSessionId::generate(), PaymentSessionId::generate());
        let mut watching_one = changes.watch(one);
        let mut watching_two = changes.watch(two);
        changes.changed(one);
        let long = Duration::from_secs(3600);
        // A write before the wait is not lost.
        tokio::time::timeout(Duration::from_secs(5), watching_one.next(long))
            .await
            .expect("the watcher of the written session wakes");
        assert!(
            tokio::time::timeout(Duration::from_millis(50), watching_two.next(long))
                .await
                .is_err(),
            "the other session's watcher sleeps on"
        );
    }

    #[tokio::test]
    async fn a_quiet_session_is_polled() {
        let changes = SessionChanges::default();
        let mut watch = changes.watch(PaymentSessionId::generate());
        tokio::time::timeout(
            Duration::from_secs(5),
            watch.next(Duration::from_millis(10)),
        )
        .await
        .expect("the poll interval ends the wait");
    }

    #[test]
    fn channels_of_ended_streams_are_dropped() {
        let changes = SessionChanges::default();
        let (one, two) = (PaymentSessionId::generate(), PaymentSessionId::generate());
        drop(changes.watch(one));
        let _kept = changes.watch(two);
        assert_eq!(changes.watched(), 1);
        changes.changed(two);
        assert_eq!(changes.watched(), 1);
        drop(_kept);
        changes.changed(two);
        assert_eq!(changes.watched(), 0);
    }
}
