//! The token table as the key layer's re-encryption sees it.

use std::sync::Arc;

use async_trait::async_trait;

use crate::ids::TenantId;
use crate::keys::reencrypt::{RecordCursor, SealedRecords, StoredRecord};
use crate::keys::{DataKeyId, KeyError, SealedRecord};
use crate::store::{Store, StoreError};

pub struct TokenRecords(pub Arc<dyn Store>);

fn storage(e: StoreError) -> KeyError {
    KeyError::Storage(e.to_string())
}

#[async_trait]
impl SealedRecords for TokenRecords {
    async fn not_under(
        &self,
        key: DataKeyId,
        after: Option<&RecordCursor>,
        limit: usize,
    ) -> Result<Vec<StoredRecord>, KeyError> {
        let after = match after {
            Some(c) => Some((
                c.tenant
                    .parse::<TenantId>()
                    .map_err(|_| KeyError::Storage("bad cursor".into()))?,
                c.record_id.clone(),
            )),
            None => None,
        };
        let limit = u32::try_from(limit).unwrap_or(u32::MAX);
        let rows = self
            .0
            .sealed_tokens_not_under(key.0, after, limit)
            .await
            .map_err(storage)?;
        Ok(rows
            .into_iter()
            .map(|(tenant, token, sealed)| StoredRecord {
                tenant: tenant.to_string(),
                record_id: token,
                sealed,
            })
            .collect())
    }

    async fn count_not_under(&self, key: DataKeyId) -> Result<u64, KeyError> {
        self.0.count_sealed_not_under(key.0).await.map_err(storage)
    }

    async fn count_by_data_key(&self) -> Result<Vec<(DataKeyId, u64)>, KeyError> {
        Ok(self
            .0
            .count_sealed_by_data_key()
            .await
            .map_err(storage)?
            .into_iter()
            .map(|(id, n)| (DataKeyId(id), n))
            .collect())
    }

    async fn replace(&self, record: &StoredRecord, new: &SealedRecord) -> Result<bool, KeyError> {
        let tenant = record
            .tenant
            .parse::<TenantId>()
            .map_err(|_| KeyError::Storage("bad tenant id".into()))?;
        self.0
            .replace_sealed(tenant, &record.record_id, &record.sealed, new)
            .await
            .map_err(storage)
    }
}
