//! Key events for the audit log. The audit module implements
//! [`KeyAuditSink`]; the key layer only describes what happened. Events name
//! keys by version, id and check value — never by material.

use std::sync::Mutex;

use async_trait::async_trait;

use super::{DataKeyId, KekVersion, KeyCheckValue, KeyError};
use crate::ids::TenantId;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyEvent {
    /// `keys init` recorded the first KEK.
    KekInitialized {
        kek: KekVersion,
        check_value: KeyCheckValue,
    },
    /// Start-up compared the KEKs found with the recorded check values.
    KekVerified {
        kek: KekVersion,
        matched: bool,
    },
    KekCreated {
        kek: KekVersion,
        check_value: KeyCheckValue,
    },
    KekActivated {
        kek: KekVersion,
    },
    KekDestroyed {
        kek: KekVersion,
    },
    DataKeyCreated {
        id: DataKeyId,
        kek: KekVersion,
    },
    /// A data key was unwrapped into this process's cache.
    DataKeyLoaded {
        id: DataKeyId,
    },
    DataKeyRewrapped {
        id: DataKeyId,
        from: KekVersion,
        to: KekVersion,
    },
    DataKeyRetired {
        id: DataKeyId,
    },
    /// A tenant's FF1 key was generated and stored wrapped.
    Ff1KeyCreated {
        tenant: TenantId,
        kek: KekVersion,
    },
    /// A tenant's FF1 key was unwrapped into this process's cache.
    Ff1KeyLoaded {
        tenant: TenantId,
    },
    Ff1KeyRewrapped {
        tenant: TenantId,
        from: KekVersion,
        to: KekVersion,
    },
}

impl KeyEvent {
    /// A stable event type name for the audit record.
    pub fn kind(&self) -> &'static str {
        match self {
            KeyEvent::KekInitialized { .. } => "key.kek.initialized",
            KeyEvent::KekVerified { .. } => "key.kek.verified",
            KeyEvent::KekCreated { .. } => "key.kek.created",
            KeyEvent::KekActivated { .. } => "key.kek.activated",
            KeyEvent::KekDestroyed { .. } => "key.kek.destroyed",
            KeyEvent::DataKeyCreated { .. } => "key.data_key.created",
            KeyEvent::DataKeyLoaded { .. } => "key.data_key.loaded",
            KeyEvent::DataKeyRewrapped { .. } => "key.data_key.rewrapped",
            KeyEvent::DataKeyRetired { .. } => "key.data_key.retired",
            KeyEvent::Ff1KeyCreated { .. } => "key.ff1_key.created",
            KeyEvent::Ff1KeyLoaded { .. } => "key.ff1_key.loaded",
            KeyEvent::Ff1KeyRewrapped { .. } => "key.ff1_key.rewrapped",
        }
    }
}

/// Where key events go. A failure to record makes the key operation fail
/// (fail closed).
#[async_trait]
pub trait KeyAuditSink: Send + Sync + 'static {
    async fn record(&self, event: KeyEvent) -> Result<(), KeyError>;
}

/// Keeps events in memory: for tests and for `voltvault dev` until the
/// audit module provides the real sink.
#[derive(Debug, Default)]
pub struct MemoryAuditSink {
    events: Mutex<Vec<KeyEvent>>,
}

impl MemoryAuditSink {
    pub fn events(&self) -> Vec<KeyEvent> {
        match self.events.lock() {
            Ok(e) => e.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }
}

#[async_trait]
impl KeyAuditSink for MemoryAuditSink {
    async fn record(&self, event: KeyEvent) -> Result<(), KeyError> {
        match self.events.lock() {
            Ok(mut e) => e.push(event),
            Err(p) => p.into_inner().push(event),
        }
        Ok(())
    }
}
