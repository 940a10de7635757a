//! Events a request has produced but not yet made durable. A route whose
//! own write goes through the audit writer (tokenize, detokenize) keeps its
//! authentication event here and commits it with its own events, so the
//! request waits for one group commit instead of two (ADR 0008). Whatever is
//! still here when the handler is done is recorded before the answer
//! leaves, and the request fails if that fails.

use std::sync::{Arc, Mutex, MutexGuard};

use super::AuditEvent;

#[derive(Clone, Default)]
pub struct PendingAudit(Arc<Mutex<Vec<AuditEvent>>>);

impl PendingAudit {
    fn events(&self) -> MutexGuard<'_, Vec<AuditEvent>> {
        // A panic while holding the lock cannot leave a half-pushed event.
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn push(&self, event: AuditEvent) {
        self.events().push(event);
    }

    /// A copy of what is waiting, to commit with the caller's own events.
    pub fn peek(&self) -> Vec<AuditEvent> {
        self.events().clone()
    }

    /// Forgets the first `n` events: they were committed.
    pub fn committed(&self, n: usize) {
        let mut events = self.events();
        let n = n.min(events.len());
        events.drain(..n);
    }

    /// Everything waiting, removed.
    pub fn take(&self) -> Vec<AuditEvent> {
        std::mem::take(&mut *self.events())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::Outcome;

    fn event(kind: &str) -> AuditEvent {
        AuditEvent::system(kind, chrono::DateTime::UNIX_EPOCH, Outcome::Success)
    }

    #[test]
    fn committed_events_are_forgotten_and_later_ones_kept() {
        let pending = PendingAudit::default();
        pending.push(event("a"));
        let seen = pending.peek();
        pending.push(event("b"));
        pending.committed(seen.len());
        let left = pending.take();
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].event_type, "b");
        assert!(pending.take().is_empty());
    }
}
