//! Checkpoints: (node, sequence, record hash, time) sealed with the audit
//! key. Anyone who can write the database can recompute SHA-256 chains; only
//! the holder of the audit key can seal, so a sealed checkpoint pins every
//! record up to it.

use async_trait::async_trait;
use ring::hmac;

/// A sealed statement that record `seq` of `node_id` has hash `record_hash`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub node_id: String,
    pub seq: u64,
    pub record_hash: [u8; 32],
    pub at_us: i64,
    /// Which audit key sealed it, so keys can rotate.
    pub key_id: String,
    pub seal: [u8; 32],
}

impl Checkpoint {
    /// The bytes that are sealed: versioned and length-prefixed.
    pub fn sealed_bytes(node_id: &str, seq: u64, record_hash: &[u8; 32], at_us: i64) -> Vec<u8> {
        let mut out = Vec::with_capacity(96);
        for text in ["voltvault/audit-checkpoint", node_id] {
            let len = u32::try_from(text.len()).unwrap_or(u32::MAX);
            out.extend_from_slice(&len.to_be_bytes());
            out.extend_from_slice(text.as_bytes());
        }
        out.extend_from_slice(&1u32.to_be_bytes());
        out.extend_from_slice(&seq.to_be_bytes());
        out.extend_from_slice(record_hash);
        out.extend_from_slice(&at_us.to_be_bytes());
        out
    }

    /// Seals a new checkpoint.
    pub async fn seal(
        sealer: &dyn CheckpointSealer,
        node_id: &str,
        seq: u64,
        record_hash: [u8; 32],
        at_us: i64,
    ) -> Result<Self, SealError> {
        let seal = sealer
            .seal(&Self::sealed_bytes(node_id, seq, &record_hash, at_us))
            .await?;
        Ok(Self {
            node_id: node_id.to_owned(),
            seq,
            record_hash,
            at_us,
            key_id: sealer.key_id().to_owned(),
            seal,
        })
    }

    /// Whether the seal is genuine, compared in constant time.
    pub async fn verify(&self, sealer: &dyn CheckpointSealer) -> Result<bool, SealError> {
        if self.key_id != sealer.key_id() {
            return Ok(false);
        }
        let expected = sealer
            .seal(&Self::sealed_bytes(
                &self.node_id,
                self.seq,
                &self.record_hash,
                self.at_us,
            ))
            .await?;
        Ok(bool::from(subtle::ConstantTimeEq::ct_eq(
            &expected[..],
            &self.seal[..],
        )))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error("the audit key is unavailable")]
    Unavailable,
}

/// MACs checkpoint bytes with the audit key. Production plugs in the HSM
/// (`KeyProvider::audit_mac`, HMAC-SHA256 with a non-extractable key); the
/// software implementation below is for tests and development only.
#[async_trait]
pub trait CheckpointSealer: Send + Sync {
    /// Names the key, e.g. its HSM label and version.
    fn key_id(&self) -> &str;
    async fn seal(&self, bytes: &[u8]) -> Result<[u8; 32], SealError>;
}

/// HMAC-SHA256 in process memory. Tests and development only: in
/// production the audit key never leaves the HSM.
pub struct SoftwareSealer {
    key_id: String,
    key: hmac::Key,
}

impl SoftwareSealer {
    pub fn new(key_id: impl Into<String>, key: &[u8]) -> Self {
        Self {
            key_id: key_id.into(),
            key: hmac::Key::new(hmac::HMAC_SHA256, key),
        }
    }
}

impl std::fmt::Debug for SoftwareSealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SoftwareSealer")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl CheckpointSealer for SoftwareSealer {
    fn key_id(&self) -> &str {
        &self.key_id
    }

    async fn seal(&self, bytes: &[u8]) -> Result<[u8; 32], SealError> {
        let tag = hmac::sign(&self.key, bytes);
        let mut out = [0u8; 32];
        out.copy_from_slice(tag.as_ref());
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_seal_verifies_only_unchanged_and_with_its_key() {
        let sealer = SoftwareSealer::new("audit-1", &[7; 32]);
        let cp = Checkpoint::seal(&sealer, "node-a", 10, [1; 32], 99)
            .await
            .unwrap();
        assert!(cp.verify(&sealer).await.unwrap());
        for change in [
            |c: &mut Checkpoint| c.seq = 11,
            |c: &mut Checkpoint| c.record_hash[0] ^= 1,
            |c: &mut Checkpoint| c.node_id = "node-b".into(),
            |c: &mut Checkpoint| c.at_us = 98,
        ] {
            let mut forged = cp.clone();
            change(&mut forged);
            assert!(!forged.verify(&sealer).await.unwrap());
        }
        let other = SoftwareSealer::new("audit-1", &[8; 32]);
        assert!(!cp.verify(&other).await.unwrap());
    }
}
