//! A tariff's versions. A published version never changes; a new price is a
//! new version valid from a later instant, and a session is priced with the
//! version in force when it started.

use chrono::{DateTime, Utc};

use super::tariff::Tariff;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VersionError {
    #[error("id: the version belongs to another tariff")]
    IdMismatch,
    #[error("version: {found} is published with other content; the next version is {expected}")]
    VersionConflict { found: u32, expected: u32 },
    #[error("valid_from: must be after the previous version's")]
    NotAfterPrevious,
}

impl VersionError {
    pub fn code(&self) -> &'static str {
        match self {
            VersionError::IdMismatch => "tariff_id_mismatch",
            VersionError::VersionConflict { .. } => "tariff_version_conflict",
            VersionError::NotAfterPrevious => "tariff_valid_from_not_after_previous",
        }
    }
}

/// The published versions of one tariff, oldest first. Append-only.
#[derive(Debug, Clone)]
pub struct TariffVersions {
    versions: Vec<(DateTime<Utc>, Tariff)>,
}

impl TariffVersions {
    pub fn new(first: Tariff, valid_from: DateTime<Utc>) -> Self {
        Self {
            versions: vec![(valid_from, first)],
        }
    }

    /// Publish the next version. Publishing the same version again with the
    /// same content is a no-op (a retried request); anything else that
    /// would change a published version is refused.
    pub fn publish(
        &mut self,
        tariff: Tariff,
        valid_from: DateTime<Utc>,
    ) -> Result<(), VersionError> {
        let (last_from, last) = self.latest_entry();
        let expected = last.version().saturating_add(1);
        if tariff.id() != last.id() {
            return Err(VersionError::IdMismatch);
        }
        if let Some((from, existing)) = self
            .versions
            .iter()
            .find(|(_, t)| t.version() == tariff.version())
        {
            return if *existing == tariff && *from == valid_from {
                Ok(())
            } else {
                Err(VersionError::VersionConflict {
                    found: tariff.version(),
                    expected,
                })
            };
        }
        if tariff.version() != expected {
            return Err(VersionError::VersionConflict {
                found: tariff.version(),
                expected,
            });
        }
        if valid_from <= *last_from {
            return Err(VersionError::NotAfterPrevious);
        }
        self.versions.push((valid_from, tariff));
        Ok(())
    }

    fn latest_entry(&self) -> (&DateTime<Utc>, &Tariff) {
        let (from, t) = &self.versions[self.versions.len() - 1];
        (from, t)
    }

    pub fn latest(&self) -> &Tariff {
        self.latest_entry().1
    }

    pub fn get(&self, version: u32) -> Option<&Tariff> {
        self.versions
            .iter()
            .map(|(_, t)| t)
            .find(|t| t.version() == version)
    }

    /// The version a session starting at `start` is priced with, for its
    /// whole length; `None` before the first version is valid.
    pub fn for_session_start(&self, start: DateTime<Utc>) -> Option<&Tariff> {
        self.versions
            .iter()
            .rev()
            .find(|(from, _)| *from <= start)
            .map(|(_, t)| t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(version: u32, price: &str) -> Tariff {
        Tariff::from_json(&format!(
            r#"{{"id":"ac-1","version":{version},"currency":"EUR","time_zone":"UTC","elements":[{{"price_components":[{{"type":"ENERGY","price":"{price}"}}]}}]}}"#
        ))
        .unwrap()
    }

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().to_utc()
    }

    #[test]
    fn a_session_keeps_the_version_it_started_with() {
        let mut versions = TariffVersions::new(v(1, "0.30"), at("2025-01-01T00:00:00Z"));
        versions
            .publish(v(2, "0.40"), at("2025-06-01T00:00:00Z"))
            .unwrap();
        assert_eq!(
            versions
                .for_session_start(at("2025-05-31T23:59:59Z"))
                .unwrap()
                .version(),
            1
        );
        assert_eq!(
            versions
                .for_session_start(at("2025-06-01T00:00:00Z"))
                .unwrap()
                .version(),
            2
        );
        assert!(
            versions
                .for_session_start(at("2024-12-31T00:00:00Z"))
                .is_none()
        );
        assert_eq!(versions.get(1).unwrap(), &v(1, "0.30"));
        assert_eq!(versions.latest().version(), 2);
    }

    #[test]
    fn published_versions_do_not_change() {
        let mut versions = TariffVersions::new(v(1, "0.30"), at("2025-01-01T00:00:00Z"));
        // Same version, same content: a retry, accepted.
        versions
            .publish(v(1, "0.30"), at("2025-01-01T00:00:00Z"))
            .unwrap();
        let err = versions
            .publish(v(1, "0.99"), at("2025-01-01T00:00:00Z"))
            .unwrap_err();
        assert_eq!(err.code(), "tariff_version_conflict");
        let err = versions
            .publish(v(3, "0.40"), at("2025-06-01T00:00:00Z"))
            .unwrap_err();
        assert_eq!(
            err,
            VersionError::VersionConflict {
                found: 3,
                expected: 2
            }
        );
        let err = versions
            .publish(v(2, "0.40"), at("2024-06-01T00:00:00Z"))
            .unwrap_err();
        assert_eq!(err.code(), "tariff_valid_from_not_after_previous");
        let other = Tariff::from_json(
            r#"{"id":"dc-9","version":2,"currency":"EUR","time_zone":"UTC","elements":[{"price_components":[{"type":"FLAT","price":"1"}]}]}"#,
        )
        .unwrap();
        assert_eq!(
            versions
                .publish(other, at("2025-06-01T00:00:00Z"))
                .unwrap_err()
                .code(),
            "tariff_id_mismatch"
        );
        assert_eq!(versions.get(1).unwrap(), &v(1, "0.30"));
        assert!(versions.get(2).is_none());
    }
}
