//! The tariffs payment sessions are priced with: versions an operator
//! published for its tenant (`PUT /v1/tariffs/{id}`), and the deployment's
//! own tariffs read from a file at start (`payments.tariffs_file`, a JSON
//! array), which every tenant may use. A published tariff hides a file
//! tariff of the same id. A session keeps the id and version it started
//! with, and is priced with exactly that version.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::audit::{AuditError, AuditEvent, AuditSink, Outcome};
use crate::billing::display::{DisplayError, price_display};
use crate::billing::tariff::{DatedTariff, Tariff, TariffError};
use crate::clock::Environment;
use crate::ids::TenantId;
use crate::store::tariffs::StoredTariff;
use crate::store::{Store, StoreError};
use crate::tokens::service::Caller;

/// `voltvault dev`'s tariff: 0.59 EUR/kWh excluding 19% VAT, billed per Wh.
pub const DEMO_TARIFFS: &str = r#"[{"id":"standard","version":1,"currency":"EUR","time_zone":"Europe/Berlin",
 "elements":[{"price_components":[{"type":"ENERGY","price":"0.59","vat":"19","step_size":1}]}]}]"#;

#[derive(Debug, Default)]
pub struct TariffCatalog {
    tariffs: HashMap<String, Tariff>,
    /// When the file was last changed: the `last_updated` of its tariffs.
    updated: DateTime<Utc>,
}

#[derive(Debug, thiserror::Error)]
pub enum TariffCatalogError {
    #[error("payments.tariffs_file: cannot read it ({0})")]
    Read(std::io::ErrorKind),
    #[error("payments.tariffs_file: not a JSON array of OCPI tariffs")]
    NotAnArray,
    #[error("payments.tariffs_file: tariff {index}: {reason}")]
    Invalid { index: usize, reason: String },
    #[error("payments.tariffs_file: tariff id {0:?} appears twice")]
    Duplicate(String),
}

impl TariffCatalog {
    pub fn load(path: &Path) -> Result<Self, TariffCatalogError> {
        let read = |e: std::io::Error| TariffCatalogError::Read(e.kind());
        let text = std::fs::read_to_string(path).map_err(read)?;
        let changed = std::fs::metadata(path)
            .and_then(|m| m.modified())
            .map_err(read)?;
        Self::parse(&text, changed.into())
    }

    /// The tariffs of a file's `json`, last changed at `updated`.
    pub fn parse(json: &str, updated: DateTime<Utc>) -> Result<Self, TariffCatalogError> {
        let items: Vec<serde_json::Value> =
            serde_json::from_str(json).map_err(|_| TariffCatalogError::NotAnArray)?;
        let mut tariffs = HashMap::new();
        for (index, item) in items.iter().enumerate() {
            let tariff =
                Tariff::from_json(&item.to_string()).map_err(|e| TariffCatalogError::Invalid {
                    index,
                    reason: e.to_string(),
                })?;
            let id = tariff.id().to_owned();
            if tariffs.insert(id.clone(), tariff).is_some() {
                return Err(TariffCatalogError::Duplicate(id));
            }
        }
        Ok(Self { tariffs, updated })
    }

    pub fn get(&self, id: &str) -> Option<&Tariff> {
        self.tariffs.get(id)
    }

    pub fn len(&self) -> usize {
        self.tariffs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tariffs.is_empty()
    }
}

/// Parsed published versions kept per node.
const MAX_PARSED: usize = 1024;

/// A tariff as callers see it: the document, its version and the price
/// display a charger shows before the session starts (EU AFIR).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct TariffView {
    pub id: String,
    pub version: u32,
    /// `published` by the tenant, or the `deployment`'s own.
    pub source: &'static str,
    pub currency: String,
    pub display: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub published_at: Option<DateTime<Utc>>,
    #[schema(value_type = Object)]
    pub document: serde_json::Value,
}

#[derive(Debug, thiserror::Error)]
pub enum TariffBookError {
    #[error("tariff: not found")]
    NotFound,
    #[error("{0}")]
    Invalid(#[from] TariffError),
    #[error("tariff: must be a JSON object")]
    NotAnObject,
    #[error(transparent)]
    Display(#[from] DisplayError),
    #[error("tariff: another version was published at the same moment; retry")]
    Busy,
    #[error(transparent)]
    Store(StoreError),
    #[error(transparent)]
    Audit(#[from] AuditError),
}

impl From<StoreError> for TariffBookError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => TariffBookError::NotFound,
            StoreError::Conflict(_) => TariffBookError::Busy,
            other => TariffBookError::Store(other),
        }
    }
}

/// Published tariffs over the deployment's defaults.
pub struct TariffBook {
    store: Arc<dyn Store>,
    defaults: Arc<TariffCatalog>,
    audit: Arc<dyn AuditSink>,
    env: Environment,
    /// Published versions never change, so every meter reading of a session
    /// can price with the one parsed the first time.
    parsed: std::sync::Mutex<HashMap<(TenantId, String, u32), DatedTariff>>,
}

impl TariffBook {
    pub fn new(
        store: Arc<dyn Store>,
        defaults: Arc<TariffCatalog>,
        audit: Arc<dyn AuditSink>,
        env: Environment,
    ) -> Self {
        Self {
            store,
            defaults,
            audit,
            env,
            parsed: std::sync::Mutex::new(HashMap::new()),
        }
    }

    /// Publishes `document` as the next version of tariff `id`. Its own
    /// `id` and `version` fields are set here; everything else is validated
    /// as an OCPI tariff before anything is stored.
    pub async fn publish(
        &self,
        caller: &Caller,
        id: &str,
        document: serde_json::Value,
    ) -> Result<TariffView, TariffBookError> {
        let serde_json::Value::Object(mut doc) = document else {
            return Err(TariffBookError::NotAnObject);
        };
        let next = self
            .store
            .latest_tariff_version(caller.tenant, id)
            .await?
            .map_or(1, |v| v.saturating_add(1));
        doc.insert("id".into(), serde_json::Value::String(id.to_owned()));
        doc.insert("version".into(), serde_json::Value::from(next));
        let text = serde_json::Value::Object(doc).to_string();
        let tariff = Tariff::from_json(&text)?;
        let now = self.env.clock.now();
        let display = price_display(&tariff, now)?;
        let stored = StoredTariff {
            tenant: caller.tenant,
            id: tariff.id().to_owned(),
            version: next,
            document: text,
            created_at: now,
            created_by: caller.actor_id.clone(),
        };
        self.store.insert_tariff(&stored).await?;
        self.audit
            .record(AuditEvent {
                event_type: "tariff.publish".into(),
                at: now,
                actor_kind: caller.actor_kind,
                actor_id: caller.actor_id.clone(),
                tenant: Some(caller.tenant),
                outcome: Outcome::Success,
                origin: caller.origin.clone(),
                resource: Some(format!("tariff:{id}:{next}")),
                request_id: caller.request_id.clone(),
                reason: None,
            })
            .await?;
        view(&tariff, Some(&stored), display)
    }

    /// The version a new session starts with: the tenant's latest, else the
    /// deployment's.
    pub async fn current(&self, tenant: TenantId, id: &str) -> Result<Tariff, TariffBookError> {
        match self.store.latest_tariff_version(tenant, id).await? {
            Some(v) => self.version(tenant, id, v).await,
            None => self
                .defaults
                .get(id)
                .cloned()
                .ok_or(TariffBookError::NotFound),
        }
    }

    /// Exactly this version (a running session's).
    pub async fn version(
        &self,
        tenant: TenantId,
        id: &str,
        version: u32,
    ) -> Result<Tariff, TariffBookError> {
        Ok(self.dated_version(tenant, id, version).await?.tariff)
    }

    /// Exactly this version, with when it was last updated.
    pub async fn dated_version(
        &self,
        tenant: TenantId,
        id: &str,
        version: u32,
    ) -> Result<DatedTariff, TariffBookError> {
        let key = (tenant, id.to_owned(), version);
        if let Some(dated) = self.cached(&key) {
            return Ok(dated);
        }
        match self.store.tariff_version(tenant, id, version).await {
            Ok(stored) => {
                let dated = DatedTariff {
                    tariff: Tariff::from_json(&stored.document)?,
                    last_updated: stored.created_at,
                };
                if let Ok(mut parsed) = self.parsed.lock() {
                    // Bounded: a node that somehow sees very many versions starts over.
                    if parsed.len() >= MAX_PARSED {
                        parsed.clear();
                    }
                    parsed.insert(key, dated.clone());
                }
                Ok(dated)
            }
            Err(StoreError::NotFound) => self
                .defaults
                .get(id)
                .filter(|t| t.version() == version)
                .map(|t| DatedTariff {
                    tariff: t.clone(),
                    last_updated: self.defaults.updated,
                })
                .ok_or(TariffBookError::NotFound),
            Err(e) => Err(e.into()),
        }
    }

    fn cached(&self, key: &(TenantId, String, u32)) -> Option<DatedTariff> {
        self.parsed.lock().ok()?.get(key).cloned()
    }

    /// One tariff as callers see it (`version` none: the current one).
    pub async fn view(
        &self,
        tenant: TenantId,
        id: &str,
        version: Option<u32>,
    ) -> Result<TariffView, TariffBookError> {
        let published = match version {
            Some(v) => self.store.tariff_version(tenant, id, v).await.map(Some),
            None => match self.store.latest_tariff_version(tenant, id).await? {
                Some(v) => self.store.tariff_version(tenant, id, v).await.map(Some),
                None => Ok(None),
            },
        };
        let published = match published {
            Err(StoreError::NotFound) => None,
            other => other?,
        };
        let now = self.env.clock.now();
        match published {
            Some(stored) => {
                let tariff = Tariff::from_json(&stored.document)?;
                let display = price_display(&tariff, now)?;
                view(&tariff, Some(&stored), display)
            }
            None => {
                let tariff = self
                    .defaults
                    .get(id)
                    .filter(|t| version.is_none_or(|v| t.version() == v))
                    .ok_or(TariffBookError::NotFound)?;
                let display = price_display(tariff, now)?;
                view(tariff, None, display)
            }
        }
    }

    /// Every tariff a tenant's sessions may name, current versions.
    pub async fn list(&self, tenant: TenantId) -> Result<Vec<TariffView>, TariffBookError> {
        let now = self.env.clock.now();
        let mut out = Vec::new();
        let published = self.store.latest_tariffs(tenant).await?;
        for stored in &published {
            let tariff = Tariff::from_json(&stored.document)?;
            let display = price_display(&tariff, now)?;
            out.push(view(&tariff, Some(stored), display)?);
        }
        let mut defaults: Vec<&Tariff> = self.defaults.tariffs.values().collect();
        defaults.sort_by(|a, b| a.id().cmp(b.id()));
        for tariff in defaults {
            if published.iter().all(|p| p.id != tariff.id()) {
                let display = price_display(tariff, now)?;
                out.push(view(tariff, None, display)?);
            }
        }
        Ok(out)
    }
}

fn view(
    tariff: &Tariff,
    stored: Option<&StoredTariff>,
    display: String,
) -> Result<TariffView, TariffBookError> {
    let document = match stored {
        Some(s) => serde_json::from_str(&s.document).map_err(|_| TariffBookError::NotAnObject)?,
        None => serde_json::json!({"id": tariff.id(), "version": tariff.version()}),
    };
    Ok(TariffView {
        id: tariff.id().to_owned(),
        version: tariff.version(),
        source: if stored.is_some() {
            "published"
        } else {
            "deployment"
        },
        currency: tariff.currency().code().to_owned(),
        display,
        published_at: stored.map(|s| s.created_at),
        document,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_tariff_loads() {
        let c = TariffCatalog::parse(DEMO_TARIFFS, DateTime::UNIX_EPOCH).unwrap();
        assert_eq!(c.len(), 1);
        assert_eq!(c.get("standard").unwrap().currency().code(), "EUR");
        assert!(c.get("other").is_none());
    }

    #[test]
    fn bad_files_are_refused_with_the_reason() {
        assert!(matches!(
            TariffCatalog::parse("{}", DateTime::UNIX_EPOCH),
            Err(TariffCatalogError::NotAnArray)
        ));
        assert!(matches!(
            TariffCatalog::parse(r#"[{"id":"x"}]"#, DateTime::UNIX_EPOCH),
            Err(TariffCatalogError::Invalid { index: 0, .. })
        ));
        let twice = format!(
            "[{},{}]",
            &DEMO_TARIFFS[1..DEMO_TARIFFS.len() - 1],
            &DEMO_TARIFFS[1..DEMO_TARIFFS.len() - 1]
        );
        assert!(matches!(
            TariffCatalog::parse(&twice, DateTime::UNIX_EPOCH),
            Err(TariffCatalogError::Duplicate(_))
        ));
    }
}
