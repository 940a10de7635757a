//! The tariffs payment sessions are priced with: OCPI 2.2.1 tariffs read
//! from a file at start (`payments.tariffs_file`, a JSON array). A session
//! keeps the id and version it started with.

use std::collections::HashMap;
use std::path::Path;

use crate::billing::tariff::Tariff;

/// `voltvault dev`'s tariff: 0.59 EUR/kWh excluding 19% VAT, billed per Wh.
pub const DEMO_TARIFFS: &str = r#"[{"id":"standard","version":1,"currency":"EUR","time_zone":"Europe/Berlin",
 "elements":[{"price_components":[{"type":"ENERGY","price":"0.59","vat":"19","step_size":1}]}]}]"#;

#[derive(Debug, Default)]
pub struct TariffCatalog {
    tariffs: HashMap<String, Tariff>,
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
        let text = std::fs::read_to_string(path).map_err(|e| TariffCatalogError::Read(e.kind()))?;
        Self::parse(&text)
    }

    pub fn parse(json: &str) -> Result<Self, TariffCatalogError> {
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
        Ok(Self { tariffs })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_tariff_loads() {
        let c = TariffCatalog::parse(DEMO_TARIFFS).unwrap();
        assert_eq!(c.len(), 1);
        assert_eq!(c.get("standard").unwrap().currency().code(), "EUR");
        assert!(c.get("other").is_none());
    }

    #[test]
    fn bad_files_are_refused_with_the_reason() {
        assert!(matches!(
            TariffCatalog::parse("{}"),
            Err(TariffCatalogError::NotAnArray)
        ));
        assert!(matches!(
            TariffCatalog::parse(r#"[{"id":"x"}]"#),
            Err(TariffCatalogError::Invalid { index: 0, .. })
        ));
        let twice = format!(
            "[{},{}]",
            &DEMO_TARIFFS[1..DEMO_TARIFFS.len() - 1],
            &DEMO_TARIFFS[1..DEMO_TARIFFS.len() - 1]
        );
        assert!(matches!(
            TariffCatalog::parse(&twice),
            Err(TariffCatalogError::Duplicate(_))
        ));
    }
}
