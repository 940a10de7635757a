//! `RecordingAudit`: an observer behind the durable audit writer (see
//! `audit::Tee`). It keeps a copy of each event so tests can assert which
//! ones a request caused, and is the fault double for an audit trail that
//! fails, to prove that requests then fail closed.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use voltvault::audit::{AuditError, AuditEvent, AuditSink, Outcome};

#[derive(Clone, Default)]
pub struct RecordingAudit {
    events: Arc<Mutex<Vec<AuditEvent>>>,
    failing: Arc<AtomicBool>,
}

#[async_trait::async_trait]
impl AuditSink for RecordingAudit {
    async fn record(&self, event: AuditEvent) -> Result<(), AuditError> {
        if self.failing.load(Ordering::SeqCst) {
            return Err(AuditError::Unavailable);
        }
        self.events.lock().unwrap().push(event);
        Ok(())
    }
}

impl RecordingAudit {
    pub fn events(&self) -> Vec<AuditEvent> {
        self.events.lock().unwrap().clone()
    }

    pub fn fail(&self, failing: bool) {
        self.failing.store(failing, Ordering::SeqCst);
    }

    /// The events of this type, outcome and reason.
    pub fn matching(
        &self,
        event_type: &str,
        outcome: Outcome,
        reason: Option<&str>,
    ) -> Vec<AuditEvent> {
        self.events()
            .into_iter()
            .filter(|e| {
                e.event_type == event_type && e.outcome == outcome && e.reason.as_deref() == reason
            })
            .collect()
    }

    /// Panics unless at least one such event was recorded.
    pub fn expect(&self, event_type: &str, outcome: Outcome, reason: Option<&str>) -> AuditEvent {
        self.matching(event_type, outcome, reason)
            .pop()
            .unwrap_or_else(|| {
                panic!(
                    "no audit event {event_type} {outcome:?} {reason:?}; got {:#?}",
                    self.events()
                        .iter()
                        .map(|e| (&e.event_type, e.outcome, &e.reason))
                        .collect::<Vec<_>>()
                )
            })
    }
}
