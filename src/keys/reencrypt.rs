//! `voltvault keys reencrypt`: move every record to the active data key, in
//! batches, while the service keeps serving.
//!
//! The records belong to other modules (cards, tokens); they expose them
//! through [`SealedRecords`]. Resumable without a saved cursor: a moved
//! record no longer matches "not under the active key", so a run killed
//! anywhere is finished by the next. Each replacement is a compare-and-swap
//! on the old sealed form, so a record rewritten by the service meanwhile is
//! left alone. When nothing is left on a decrypt-only key, it is retired.

use async_trait::async_trait;

use super::{DataKeyId, KeyError, KeyManager, SealedRecord};
use crate::store::data_keys::DataKeyState;

/// One encrypted record, as its owner stores it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRecord {
    pub tenant: String,
    pub record_id: String,
    pub sealed: SealedRecord,
}

/// Position in a scan: records are visited in (tenant, record id) order.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct RecordCursor {
    pub tenant: String,
    pub record_id: String,
}

#[async_trait]
pub trait SealedRecords: Send + Sync {
    /// Up to `limit` records not sealed under `key`, strictly after `after`
    /// in (tenant, record id) order.
    async fn not_under(
        &self,
        key: DataKeyId,
        after: Option<&RecordCursor>,
        limit: usize,
    ) -> Result<Vec<StoredRecord>, KeyError>;
    /// How many records are not under `key` (for progress).
    async fn count_not_under(&self, key: DataKeyId) -> Result<u64, KeyError>;
    /// Records per data key id.
    async fn count_by_data_key(&self) -> Result<Vec<(DataKeyId, u64)>, KeyError>;
    /// Replaces `record.sealed` with `new` if the stored form is still
    /// `record.sealed`; `false` if it changed meanwhile.
    async fn replace(&self, record: &StoredRecord, new: &SealedRecord) -> Result<bool, KeyError>;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReencryptReport {
    pub moved: u64,
    /// Records rewritten by someone else during the run.
    pub skipped: u64,
    pub retired_keys: u64,
}

impl KeyManager {
    /// Moves records in batches of `batch`, calling `progress(done, total)`
    /// after each batch.
    pub async fn reencrypt(
        &self,
        records: &dyn SealedRecords,
        batch: usize,
        progress: &mut (dyn FnMut(u64, u64) + Send),
    ) -> Result<ReencryptReport, KeyError> {
        let mut report = ReencryptReport::default();
        let mut target = self.active_data_key_id().await?;
        let total = records.count_not_under(target).await?;
        let mut cursor: Option<RecordCursor> = None;
        loop {
            let page = records
                .not_under(target, cursor.as_ref(), batch.max(1))
                .await?;
            let Some(last) = page.last() else { break };
            cursor = Some(RecordCursor {
                tenant: last.tenant.clone(),
                record_id: last.record_id.clone(),
            });
            for record in &page {
                let plain = self
                    .open(&record.tenant, &record.record_id, &record.sealed)
                    .await?;
                let new = self
                    .seal(&record.tenant, &record.record_id, plain.expose_secret())
                    .await?;
                if records.replace(record, &new).await? {
                    report.moved += 1;
                } else {
                    report.skipped += 1;
                }
            }
            progress(report.moved + report.skipped, total);
            // A rotation by count during the run changes the target; records
            // moved before it are picked up by the next run.
            target = self.active_data_key_id().await?;
        }
        report.retired_keys = self.retire_unused(records).await?;
        Ok(report)
    }

    /// Retires decrypt-only data keys that no record uses any more.
    async fn retire_unused(&self, records: &dyn SealedRecords) -> Result<u64, KeyError> {
        let used = records.count_by_data_key().await?;
        let mut retired = 0;
        for key in self.status().await?.data_keys {
            let in_use = used.iter().any(|(id, n)| *id == key.id && *n > 0);
            if key.state == DataKeyState::DecryptOnly && !in_use {
                self.retire_data_key(key.id).await?;
                retired += 1;
            }
        }
        Ok(retired)
    }
}
