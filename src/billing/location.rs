//! Where the operator's sites are, as an OCPI 2.2.1 CDR must say
//! (`cdr_location`): address, city, country, coordinates and the kind of
//! connector. voltvault learns EVSE ids from the chargers, not addresses, so
//! the deployment states its sites (`[[billing.locations]]`). A site is an
//! eMI3 EVSE id without its last part (`DE*VVT*E0001*1` → `DE*VVT*E0001`,
//! see [`site_of`]).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::cdr::site_of;

/// OCPI ConnectorType values for the connectors of public chargers.
const CONNECTOR_STANDARDS: &[&str] = &[
    "CHADEMO",
    "CHAOJI",
    "GBT_AC",
    "GBT_DC",
    "IEC_62196_T1",
    "IEC_62196_T1_COMBO",
    "IEC_62196_T2",
    "IEC_62196_T2_COMBO",
    "IEC_62196_T3A",
    "IEC_62196_T3C",
    "NEMA_5_20",
    "NEMA_6_30",
    "NEMA_6_50",
    "NEMA_10_30",
    "NEMA_10_50",
    "NEMA_14_30",
    "NEMA_14_50",
    "PANTOGRAPH_BOTTOM_UP",
    "PANTOGRAPH_TOP_DOWN",
    "TESLA_R",
    "TESLA_S",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ConnectorFormat {
    Socket,
    Cable,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PowerType {
    #[serde(rename = "AC_1_PHASE")]
    Ac1Phase,
    #[serde(rename = "AC_2_PHASE")]
    Ac2Phase,
    #[serde(rename = "AC_2_PHASE_SPLIT")]
    Ac2PhaseSplit,
    #[serde(rename = "AC_3_PHASE")]
    Ac3Phase,
    Dc,
}

/// One site, in OCPI's words. The connector fields hold for every EVSE of
/// the site (a DC fast-charging site with one kind of plug).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SiteLocation {
    /// The site: EVSE ids without their last `*` part.
    pub id: String,
    #[serde(default)]
    pub name: Option<String>,
    pub address: String,
    pub city: String,
    #[serde(default)]
    pub postal_code: Option<String>,
    #[serde(default)]
    pub state: Option<String>,
    /// ISO 3166-1 alpha-3, as OCPI asks.
    pub country: String,
    /// Decimal degrees with 5 to 7 decimals, as OCPI writes them.
    pub latitude: String,
    pub longitude: String,
    pub connector_standard: String,
    pub connector_format: ConnectorFormat,
    pub power_type: PowerType,
}

/// A site description that OCPI would not take; `field` names it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {problem}")]
pub struct LocationProblem {
    pub field: &'static str,
    pub problem: String,
}

fn problem(field: &'static str, problem: impl Into<String>) -> LocationProblem {
    LocationProblem {
        field,
        problem: problem.into(),
    }
}

/// 1 to `max` characters on one line (OCPI's string lengths).
fn text(field: &'static str, value: &str, max: usize) -> Result<(), LocationProblem> {
    let n = value.chars().count();
    if n == 0 || n > max || value.trim() != value || value.chars().any(char::is_control) {
        return Err(problem(
            field,
            format!("1 to {max} characters on one line, no surrounding spaces"),
        ));
    }
    Ok(())
}

/// `-?` then 1 to `int_digits` digits, a dot and 5 to 7 decimals, within
/// `±limit` degrees.
fn degrees(
    field: &'static str,
    value: &str,
    int_digits: usize,
    limit: u32,
) -> Result<(), LocationProblem> {
    let shaped = || {
        let unsigned = value.strip_prefix('-').unwrap_or(value);
        let (int, frac) = unsigned.split_once('.')?;
        let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        let ok = (1..=int_digits).contains(&int.len())
            && (5..=7).contains(&frac.len())
            && digits(int)
            && digits(frac);
        let whole: u32 = int.parse().ok()?;
        let within = whole < limit || (whole == limit && frac.bytes().all(|b| b == b'0'));
        (ok && within).then_some(())
    };
    shaped().ok_or_else(|| problem(
        field,
        "decimal degrees with 5 to 7 decimals, e.g. 52.52000 (latitude within ±90, longitude within ±180)",
    ))
}

impl SiteLocation {
    /// The operator as OCPI names it: the site id's country code and party
    /// id (`DE*VVT*E0001` → `DE`, `VVT`).
    pub fn party(&self) -> Option<(&str, &str)> {
        let mut parts = self.id.splitn(3, '*');
        let (country, party, station) = (parts.next()?, parts.next()?, parts.next()?);
        let upper = |s: &str, n: usize| {
            s.len() == n
                && s.bytes()
                    .all(|b| b.is_ascii_uppercase() || (n == 3 && b.is_ascii_digit()))
        };
        (upper(country, 2) && upper(party, 3) && !station.is_empty()).then_some((country, party))
    }

    /// OCPI's field lengths and formats, so that every CDR is valid.
    pub fn check(&self) -> Result<(), LocationProblem> {
        text("id", &self.id, 36)?;
        if self.party().is_none() || self.id.contains(' ') {
            return Err(problem(
                "id",
                "an eMI3 id of the site: country, operator and station, e.g. DE*VVT*E0001",
            ));
        }
        if let Some(name) = &self.name {
            text("name", name, 255)?;
        }
        text("address", &self.address, 45)?;
        text("city", &self.city, 45)?;
        if let Some(code) = &self.postal_code {
            text("postal_code", code, 10)?;
        }
        if let Some(state) = &self.state {
            text("state", state, 20)?;
        }
        if self.country.len() != 3 || !self.country.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(problem(
                "country",
                "ISO 3166-1 alpha-3, three capital letters (DEU)",
            ));
        }
        degrees("latitude", &self.latitude, 2, 90)?;
        degrees("longitude", &self.longitude, 3, 180)?;
        if !CONNECTOR_STANDARDS.contains(&self.connector_standard.as_str()) {
            return Err(problem(
                "connector_standard",
                "an OCPI ConnectorType, e.g. IEC_62196_T2_COMBO or CHADEMO",
            ));
        }
        Ok(())
    }
}

/// The deployment's sites, by id.
#[derive(Debug, Clone, Default)]
pub struct Locations(BTreeMap<String, SiteLocation>);

/// Why a list of sites was refused: which entry, and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LocationsError {
    #[error("[{index}].{problem}")]
    Invalid {
        index: usize,
        problem: LocationProblem,
    },
    #[error("[{index}].id: {id:?} is listed twice")]
    Duplicate { index: usize, id: String },
}

impl Locations {
    pub fn new(sites: &[SiteLocation]) -> Result<Self, LocationsError> {
        let mut by_id = BTreeMap::new();
        for (index, site) in sites.iter().enumerate() {
            site.check()
                .map_err(|problem| LocationsError::Invalid { index, problem })?;
            if by_id.insert(site.id.clone(), site.clone()).is_some() {
                return Err(LocationsError::Duplicate {
                    index,
                    id: site.id.clone(),
                });
            }
        }
        Ok(Self(by_id))
    }

    /// The site an EVSE belongs to, if the deployment describes it.
    pub fn of_evse(&self, evse_id: &str) -> Option<&SiteLocation> {
        self.0.get(site_of(evse_id))
    }
}

/// The site `voltvault dev`, the tests and the benchmarks charge at: every
/// `DE*VVT*E0001*<n>` EVSE.
pub fn demo_site() -> SiteLocation {
    SiteLocation {
        id: "DE*VVT*E0001".into(),
        name: Some("voltvault demo site".into()),
        address: "Musterstrasse 1".into(),
        city: "Berlin".into(),
        postal_code: Some("10115".into()),
        state: None,
        country: "DEU".into(),
        latitude: "52.53190".into(),
        longitude: "13.38490".into(),
        connector_standard: "IEC_62196_T2_COMBO".into(),
        connector_format: ConnectorFormat::Cable,
        power_type: PowerType::Dc,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_site_is_valid_and_found_by_its_evses() {
        let sites = Locations::new(&[demo_site()]).unwrap();
        assert_eq!(demo_site().party(), Some(("DE", "VVT")));
        assert_eq!(sites.of_evse("DE*VVT*E0001*2").unwrap().city, "Berlin");
        assert!(sites.of_evse("DE*VVT*E0002*1").is_none());
        assert!(sites.of_evse("E1").is_none());
    }

    #[test]
    fn what_ocpi_would_refuse_is_named() {
        type Spoil = fn(&mut SiteLocation);
        let cases: Vec<(Spoil, &str)> = vec![
            (|s| s.country = "DE".into(), "country"),
            (|s| s.country = "deu".into(), "country"),
            (|s| s.latitude = "52.5".into(), "latitude"),
            (|s| s.latitude = "91.00000".into(), "latitude"),
            (|s| s.latitude = "90.00001".into(), "latitude"),
            (|s| s.longitude = "13,38490".into(), "longitude"),
            (|s| s.longitude = "-181.00000".into(), "longitude"),
            (|s| s.address = "x".repeat(46), "address"),
            (|s| s.city = String::new(), "city"),
            (|s| s.city = " Berlin".into(), "city"),
            (
                |s| s.postal_code = Some("12345678901".into()),
                "postal_code",
            ),
            (|s| s.name = Some("line\nbreak".into()), "name"),
            (
                |s| s.connector_standard = "CCS".into(),
                "connector_standard",
            ),
            (|s| s.id = "DE*VVT*E 1".into(), "id"),
            (|s| s.id = "E1".into(), "id"),
            (|s| s.id = "DE*VVT".into(), "id"),
            (|s| s.id = "de*VVT*E1".into(), "id"),
        ];
        for (spoil, field) in cases {
            let mut site = demo_site();
            spoil(&mut site);
            let err = site.check().unwrap_err();
            assert_eq!(err.field, field, "{site:?}");
        }
        let mut edge = demo_site();
        edge.latitude = "-90.0000000".into();
        edge.longitude = "180.00000".into();
        edge.check().unwrap();
    }

    #[test]
    fn a_site_listed_twice_is_refused_with_its_index() {
        let err = Locations::new(&[demo_site(), demo_site()]).unwrap_err();
        assert_eq!(err.to_string(), "[1].id: \"DE*VVT*E0001\" is listed twice");
        let mut bad = demo_site();
        bad.country = "Germany".into();
        let err = Locations::new(&[demo_site(), bad]).unwrap_err();
        assert!(err.to_string().starts_with("[1].country: "), "{err}");
    }

    #[test]
    fn connector_fields_are_read_as_ocpi_spells_them() {
        let site: SiteLocation = serde_json::from_value(serde_json::json!({
            "id": "NL*ABC*S1", "address": "Kerkstraat 1", "city": "Utrecht",
            "country": "NLD", "latitude": "52.09074", "longitude": "5.12142",
            "connector_standard": "CHADEMO", "connector_format": "SOCKET",
            "power_type": "AC_3_PHASE"
        }))
        .unwrap();
        assert_eq!(site.power_type, PowerType::Ac3Phase);
        assert_eq!(site.connector_format, ConnectorFormat::Socket);
        assert_eq!(
            serde_json::to_value(PowerType::Ac2PhaseSplit).unwrap(),
            "AC_2_PHASE_SPLIT"
        );
        site.check().unwrap();
    }
}
