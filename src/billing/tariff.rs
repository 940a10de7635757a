//! Tariffs modelled on OCPI 2.2.1: elements of price components (ENERGY per
//! kWh, TIME per hour charging, PARKING_TIME per hour connected but not
//! charging, FLAT per session) with restrictions, a VAT rate per component,
//! and a minimum and maximum price.
//!
//! The JSON form follows OCPI's field names with three deliberate changes:
//! every decimal is a JSON string (`"0.25"`), so that no price ever passes
//! through a binary float; `min_price`/`max_price` are integer minor units
//! like every amount in this API; and the tariff carries its `version` and
//! `time_zone`. Unknown fields are refused. Every error names its field.
//!
//! Per dimension, the first element (in list order) that has a component of
//! that dimension and whose restrictions match is the one used. Two elements
//! of one dimension may overlap only when the earlier is the narrower (OCPI's
//! fallback pattern); an element that an earlier one shadows, or that partly
//! overlaps an earlier one, is refused as overlapping.

use std::fmt;
use std::str::FromStr;

use chrono::{NaiveDate, NaiveTime, Timelike, Weekday};
use rust_decimal::Decimal;
use serde::{Deserialize, Deserializer};

use super::exact::{MAX_PRICE_UNITS, MAX_SCALE, to_scaled_int};
use super::restriction::{Days, Range, Restrictions, TimeWindow};
use super::zone::TariffZone;
use crate::money::{Currency, Money};

pub const MAX_ELEMENTS: usize = 64;
pub const MAX_STEP_SIZE: i64 = 10_000_000;
const MAX_ID_LEN: usize = 64;

/// What a price component charges for.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, serde::Serialize,
)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Dimension {
    /// Per kWh; quantities in Wh.
    Energy,
    /// Per hour charging; quantities in seconds.
    Time,
    /// Per hour connected but not charging; quantities in seconds.
    ParkingTime,
    /// Once per session.
    Flat,
}

impl Dimension {
    /// Quantity per priced unit: Wh per kWh, seconds per hour, 1 per session.
    pub fn unit(self) -> i64 {
        match self {
            Dimension::Energy => 1000,
            Dimension::Time | Dimension::ParkingTime => 3600,
            Dimension::Flat => 1,
        }
    }
}

impl fmt::Display for Dimension {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Dimension::Energy => "ENERGY",
            Dimension::Time => "TIME",
            Dimension::ParkingTime => "PARKING_TIME",
            Dimension::Flat => "FLAT",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PriceComponent {
    pub(crate) kind: Dimension,
    /// Per kWh, per hour or per session, excluding VAT.
    pub(crate) price: Decimal,
    /// `None`: no VAT applies (which is not the same as 0 %).
    pub(crate) vat_percent: Option<Decimal>,
    /// In Wh for ENERGY, seconds for TIME and PARKING_TIME; 1 for FLAT.
    pub(crate) step_size: i64,
}

impl PriceComponent {
    pub fn kind(&self) -> Dimension {
        self.kind
    }
    pub fn price(&self) -> Decimal {
        self.price
    }
    pub fn vat_percent(&self) -> Option<Decimal> {
        self.vat_percent
    }
    pub fn step_size(&self) -> i64 {
        self.step_size
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TariffElement {
    pub(crate) price_components: Vec<PriceComponent>,
    pub(crate) restrictions: Restrictions,
}

impl TariffElement {
    pub fn component(&self, kind: Dimension) -> Option<&PriceComponent> {
        self.price_components.iter().find(|c| c.kind == kind)
    }
    pub fn restrictions(&self) -> &Restrictions {
        &self.restrictions
    }
}

/// A minimum or maximum price for a session, both sides of VAT (OCPI: each
/// applies to its own total).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PriceLimit {
    pub excl_vat: Money,
    pub incl_vat: Money,
}

/// One immutable version of a tariff. Built only by [`Tariff::from_json`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tariff {
    pub(crate) id: String,
    pub(crate) version: u32,
    pub(crate) currency: Currency,
    pub(crate) time_zone: TariffZone,
    pub(crate) elements: Vec<TariffElement>,
    pub(crate) min_price: Option<PriceLimit>,
    pub(crate) max_price: Option<PriceLimit>,
}

impl Tariff {
    pub fn id(&self) -> &str {
        &self.id
    }
    pub fn version(&self) -> u32 {
        self.version
    }
    pub fn currency(&self) -> Currency {
        self.currency
    }
    pub fn time_zone(&self) -> TariffZone {
        self.time_zone
    }
    pub fn elements(&self) -> &[TariffElement] {
        &self.elements
    }
    pub fn min_price(&self) -> Option<PriceLimit> {
        self.min_price
    }
    pub fn max_price(&self) -> Option<PriceLimit> {
        self.max_price
    }

    /// The first element with a `kind` component whose restrictions match.
    pub(crate) fn active(
        &self,
        kind: Dimension,
        state: &super::restriction::State,
    ) -> Option<(usize, &PriceComponent)> {
        self.elements.iter().enumerate().find_map(|(i, e)| {
            e.component(kind)
                .filter(|_| e.restrictions.matches(state))
                .map(|c| (i, c))
        })
    }

    /// Parse and validate a tariff document.
    pub fn from_json(json: &str) -> Result<Tariff, TariffError> {
        let de = &mut serde_json::Deserializer::from_str(json);
        let doc: TariffDoc = serde_path_to_error::deserialize(de).map_err(|e| {
            // The document itself has the path ".".
            let path = match e.path().to_string() {
                p if p == "." => "tariff".to_string(),
                p => p,
            };
            TariffError::at(&path, TariffProblem::Json(e.into_inner().to_string()))
        })?;
        doc.validate()
    }
}

/// A tariff version and when it was last updated (OCPI `last_updated`):
/// its publication, or for a deployment tariff the file's last change.
#[derive(Debug, Clone)]
pub struct DatedTariff {
    pub tariff: Tariff,
    pub last_updated: chrono::DateTime<chrono::Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {problem}")]
pub struct TariffError {
    /// Where in the document, e.g. `elements[1].price_components[0].price`.
    pub field: String,
    pub problem: TariffProblem,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TariffProblem {
    #[error("{0}")]
    Json(String),
    #[error("not a supported ISO 4217 currency code")]
    UnknownCurrency,
    #[error("not an IANA time zone name or a UTC offset such as +01:00")]
    UnknownTimeZone,
    #[error("must be 1 to 64 characters of A-Z, a-z, 0-9, '-', '_' or '.'")]
    InvalidId,
    #[error("must be 1 or more")]
    InvalidVersion,
    #[error("must not be negative")]
    NegativePrice,
    #[error("not a decimal with at most {max} places", max = MAX_SCALE)]
    InvalidDecimal,
    #[error("out of range")]
    OutOfRange,
    #[error("VAT must be from 0 to 100 percent")]
    InvalidVat,
    #[error("must be a whole number from 1 to {max}", max = MAX_STEP_SIZE)]
    InvalidStepSize,
    #[error("not a time of day HH:MM")]
    InvalidTime,
    #[error("not a date YYYY-MM-DD")]
    InvalidDate,
    #[error("can never match: {0}")]
    EmptyRestriction(&'static str),
    #[error(
        "{dimension} here can never apply: elements[{earlier}] matches every case this one does"
    )]
    OverlappingRestrictions {
        earlier: usize,
        dimension: Dimension,
    },
    #[error(
        "{dimension} here partly overlaps elements[{earlier}]: where both match, the earlier one wins; split the restrictions, or put the narrower element first"
    )]
    PartialOverlap {
        earlier: usize,
        dimension: Dimension,
    },
    #[error("{0} appears twice in one element")]
    DuplicateComponent(Dimension),
    #[error("must have 1 to {max} entries", max = MAX_ELEMENTS)]
    InvalidCount,
    #[error("{0}")]
    InvalidPriceLimit(&'static str),
}

impl TariffError {
    fn at(field: &str, problem: TariffProblem) -> Self {
        TariffError {
            field: field.to_string(),
            problem,
        }
    }

    /// A stable code for API responses.
    pub fn code(&self) -> &'static str {
        match self.problem {
            TariffProblem::Json(_) => "invalid_tariff_json",
            TariffProblem::UnknownCurrency => "unknown_currency",
            TariffProblem::UnknownTimeZone => "unknown_time_zone",
            TariffProblem::InvalidId => "invalid_tariff_id",
            TariffProblem::InvalidVersion => "invalid_tariff_version",
            TariffProblem::NegativePrice => "negative_price",
            TariffProblem::InvalidDecimal => "invalid_decimal",
            TariffProblem::OutOfRange => "value_out_of_range",
            TariffProblem::InvalidVat => "invalid_vat",
            TariffProblem::InvalidStepSize => "invalid_step_size",
            TariffProblem::InvalidTime => "invalid_time_of_day",
            TariffProblem::InvalidDate => "invalid_date",
            TariffProblem::EmptyRestriction(_) => "empty_restriction",
            TariffProblem::OverlappingRestrictions { .. }
            | TariffProblem::PartialOverlap { .. } => "overlapping_restrictions",
            TariffProblem::DuplicateComponent(_) => "duplicate_price_component",
            TariffProblem::InvalidCount => "invalid_element_count",
            TariffProblem::InvalidPriceLimit(_) => "invalid_price_limit",
        }
    }
}

/// A decimal carried as a JSON string, so it is never a binary float.
#[derive(Debug, Clone)]
struct DecimalText(String);

impl<'de> Deserialize<'de> for DecimalText {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = DecimalText;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a decimal in a JSON string, such as \"0.25\"")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<DecimalText, E> {
                Ok(DecimalText(v.to_string()))
            }
        }
        d.deserialize_str(V)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TariffDoc {
    id: String,
    version: u32,
    currency: String,
    time_zone: String,
    #[serde(default)]
    min_price: Option<PriceLimitDoc>,
    #[serde(default)]
    max_price: Option<PriceLimitDoc>,
    elements: Vec<ElementDoc>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PriceLimitDoc {
    excl_vat: i64,
    #[serde(default)]
    incl_vat: Option<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ElementDoc {
    price_components: Vec<ComponentDoc>,
    #[serde(default)]
    restrictions: Option<RestrictionsDoc>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ComponentDoc {
    #[serde(rename = "type")]
    kind: Dimension,
    price: DecimalText,
    #[serde(default)]
    vat: Option<DecimalText>,
    #[serde(default)]
    step_size: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RestrictionsDoc {
    start_time: Option<String>,
    end_time: Option<String>,
    start_date: Option<String>,
    end_date: Option<String>,
    min_kwh: Option<DecimalText>,
    max_kwh: Option<DecimalText>,
    min_current: Option<DecimalText>,
    max_current: Option<DecimalText>,
    min_power: Option<DecimalText>,
    max_power: Option<DecimalText>,
    min_duration: Option<i64>,
    max_duration: Option<i64>,
    day_of_week: Option<Vec<DayDoc>>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
enum DayDoc {
    Monday,
    Tuesday,
    Wednesday,
    Thursday,
    Friday,
    Saturday,
    Sunday,
}

impl From<DayDoc> for Weekday {
    fn from(d: DayDoc) -> Weekday {
        match d {
            DayDoc::Monday => Weekday::Mon,
            DayDoc::Tuesday => Weekday::Tue,
            DayDoc::Wednesday => Weekday::Wed,
            DayDoc::Thursday => Weekday::Thu,
            DayDoc::Friday => Weekday::Fri,
            DayDoc::Saturday => Weekday::Sat,
            DayDoc::Sunday => Weekday::Sun,
        }
    }
}

fn parse_decimal(field: &str, text: &DecimalText) -> Result<Decimal, TariffError> {
    let s = text.0.as_str();
    // Plain digits with an optional sign and point: no exponents, no spaces.
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_digit() || c == '.' || c == '-' || c == '+');
    let d = Decimal::from_str_exact(s)
        .ok()
        .filter(|_| plain)
        .ok_or_else(|| TariffError::at(field, TariffProblem::InvalidDecimal))?;
    if d.is_sign_negative() && !d.is_zero() {
        return Err(TariffError::at(field, TariffProblem::NegativePrice));
    }
    let d = d.abs().normalize();
    if d.scale() > MAX_SCALE {
        return Err(TariffError::at(field, TariffProblem::InvalidDecimal));
    }
    Ok(d)
}

/// A non-negative decimal quantity as an integer in `10^-shift` units.
fn parse_quantity(
    field: &str,
    text: &Option<DecimalText>,
    shift: u32,
) -> Result<Option<i64>, TariffError> {
    let Some(text) = text else { return Ok(None) };
    let d = parse_decimal(field, text)?;
    to_scaled_int(d, shift)
        .filter(|v| *v <= 1_000_000_000_000)
        .map(Some)
        .ok_or_else(|| TariffError::at(field, TariffProblem::InvalidDecimal))
}

fn parse_minute(field: &str, s: &Option<String>) -> Result<Option<u16>, TariffError> {
    let Some(s) = s else { return Ok(None) };
    // OCPI: ([0-1][0-9]|2[0-3]):[0-5][0-9]
    if s.len() != 5 {
        return Err(TariffError::at(field, TariffProblem::InvalidTime));
    }
    NaiveTime::parse_from_str(s, "%H:%M")
        .map(|t| Some((t.hour() * 60 + t.minute()) as u16))
        .map_err(|_| TariffError::at(field, TariffProblem::InvalidTime))
}

fn parse_date(field: &str, s: &Option<String>) -> Result<Option<NaiveDate>, TariffError> {
    let Some(s) = s else { return Ok(None) };
    if s.len() != 10 {
        return Err(TariffError::at(field, TariffProblem::InvalidDate));
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .map(Some)
        .map_err(|_| TariffError::at(field, TariffProblem::InvalidDate))
}

fn range(
    field: &str,
    min: Option<i64>,
    max: Option<i64>,
    what: &'static str,
) -> Result<Range, TariffError> {
    let r = Range { min, max };
    if r.is_empty() {
        return Err(TariffError::at(
            field,
            TariffProblem::EmptyRestriction(what),
        ));
    }
    Ok(r)
}

impl RestrictionsDoc {
    fn validate(&self, at: &str) -> Result<Restrictions, TariffError> {
        let f = |name: &str| format!("{at}.{name}");
        let start = parse_minute(&f("start_time"), &self.start_time)?;
        let end = parse_minute(&f("end_time"), &self.end_time)?;
        let time_of_day = match (start, end) {
            (None, None) => None,
            _ => {
                let w = TimeWindow { start, end };
                if w.is_empty() {
                    return Err(TariffError::at(
                        &f("end_time"),
                        TariffProblem::EmptyRestriction("the time window is empty"),
                    ));
                }
                Some(w)
            }
        };
        let start_date = parse_date(&f("start_date"), &self.start_date)?;
        let end_date = parse_date(&f("end_date"), &self.end_date)?;
        if let (Some(a), Some(b)) = (start_date, end_date) {
            if a >= b {
                return Err(TariffError::at(
                    &f("end_date"),
                    TariffProblem::EmptyRestriction("end_date is not after start_date"),
                ));
            }
        }
        for (name, v) in [
            ("min_duration", self.min_duration),
            ("max_duration", self.max_duration),
        ] {
            if v.is_some_and(|v| !(0..=MAX_STEP_SIZE * 10).contains(&v)) {
                return Err(TariffError::at(&f(name), TariffProblem::OutOfRange));
            }
        }
        let days = match &self.day_of_week {
            None => None,
            Some(list) if list.is_empty() => {
                return Err(TariffError::at(
                    &f("day_of_week"),
                    TariffProblem::EmptyRestriction("no day of the week"),
                ));
            }
            Some(list) => Some(list.iter().fold(Days(0), |acc, d| acc.with((*d).into()))),
        };
        Ok(Restrictions {
            time_of_day,
            start_date,
            end_date,
            energy_wh: range(
                &f("max_kwh"),
                parse_quantity(&f("min_kwh"), &self.min_kwh, 3)?,
                parse_quantity(&f("max_kwh"), &self.max_kwh, 3)?,
                "max_kwh is not above min_kwh",
            )?,
            power_w: range(
                &f("max_power"),
                parse_quantity(&f("min_power"), &self.min_power, 3)?,
                parse_quantity(&f("max_power"), &self.max_power, 3)?,
                "max_power is not above min_power",
            )?,
            current_ma: range(
                &f("max_current"),
                parse_quantity(&f("min_current"), &self.min_current, 3)?,
                parse_quantity(&f("max_current"), &self.max_current, 3)?,
                "max_current is not above min_current",
            )?,
            duration_s: range(
                &f("max_duration"),
                self.min_duration,
                self.max_duration,
                "max_duration is not above min_duration",
            )?,
            days,
        })
    }
}

impl ComponentDoc {
    fn validate(&self, at: &str) -> Result<PriceComponent, TariffError> {
        let price_field = format!("{at}.price");
        let price = parse_decimal(&price_field, &self.price)?;
        if price > Decimal::from(MAX_PRICE_UNITS) {
            return Err(TariffError::at(&price_field, TariffProblem::OutOfRange));
        }
        let vat_percent = match &self.vat {
            None => None,
            Some(text) => {
                let field = format!("{at}.vat");
                let v = parse_decimal(&field, text).map_err(|e| match e.problem {
                    TariffProblem::NegativePrice => {
                        TariffError::at(&field, TariffProblem::InvalidVat)
                    }
                    _ => e,
                })?;
                if v > Decimal::from(100) {
                    return Err(TariffError::at(&field, TariffProblem::InvalidVat));
                }
                Some(v)
            }
        };
        let step_size = self.step_size.unwrap_or(1);
        if !(1..=MAX_STEP_SIZE).contains(&step_size) {
            return Err(TariffError::at(
                &format!("{at}.step_size"),
                TariffProblem::InvalidStepSize,
            ));
        }
        Ok(PriceComponent {
            kind: self.kind,
            price,
            vat_percent,
            step_size: if self.kind == Dimension::Flat {
                1
            } else {
                step_size
            },
        })
    }
}

impl TariffDoc {
    fn validate(self) -> Result<Tariff, TariffError> {
        let id_ok = !self.id.is_empty()
            && self.id.len() <= MAX_ID_LEN
            && self
                .id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !id_ok {
            return Err(TariffError::at("id", TariffProblem::InvalidId));
        }
        if self.version == 0 {
            return Err(TariffError::at("version", TariffProblem::InvalidVersion));
        }
        let currency = Currency::parse(&self.currency)
            .map_err(|_| TariffError::at("currency", TariffProblem::UnknownCurrency))?;
        let time_zone = TariffZone::parse(&self.time_zone)
            .ok_or_else(|| TariffError::at("time_zone", TariffProblem::UnknownTimeZone))?;
        if self.elements.is_empty() || self.elements.len() > MAX_ELEMENTS {
            return Err(TariffError::at("elements", TariffProblem::InvalidCount));
        }
        let mut elements: Vec<TariffElement> = Vec::with_capacity(self.elements.len());
        for (i, e) in self.elements.iter().enumerate() {
            let at = format!("elements[{i}]");
            if e.price_components.is_empty() || e.price_components.len() > 4 {
                return Err(TariffError::at(
                    &format!("{at}.price_components"),
                    TariffProblem::InvalidCount,
                ));
            }
            let mut components: Vec<PriceComponent> = Vec::new();
            for (j, c) in e.price_components.iter().enumerate() {
                let field = format!("{at}.price_components[{j}]");
                let c = c.validate(&field)?;
                if components.iter().any(|o| o.kind == c.kind) {
                    return Err(TariffError::at(
                        &format!("{field}.type"),
                        TariffProblem::DuplicateComponent(c.kind),
                    ));
                }
                components.push(c);
            }
            let restrictions = match &e.restrictions {
                None => Restrictions::default(),
                Some(r) => r.validate(&format!("{at}.restrictions"))?,
            };
            let element = TariffElement {
                price_components: components,
                restrictions,
            };
            for c in &element.price_components {
                if let Some(problem) = overlap(&elements, &element, c.kind) {
                    return Err(TariffError::at(&format!("{at}.restrictions"), problem));
                }
            }
            elements.push(element);
        }
        let any_vat = elements
            .iter()
            .flat_map(|e| &e.price_components)
            .any(|c| c.vat_percent.is_some());
        let min_price = validate_limit("min_price", self.min_price.as_ref(), currency, any_vat)?;
        let max_price = validate_limit("max_price", self.max_price.as_ref(), currency, any_vat)?;
        if let (Some(lo), Some(hi)) = (min_price, max_price) {
            if lo.excl_vat.value > hi.excl_vat.value || lo.incl_vat.value > hi.incl_vat.value {
                return Err(TariffError::at(
                    "max_price",
                    TariffProblem::InvalidPriceLimit("is below min_price"),
                ));
            }
        }
        Ok(Tariff {
            id: self.id,
            version: self.version,
            currency,
            time_zone,
            elements,
            min_price,
            max_price,
        })
    }
}

/// Why `element` may not follow `earlier` for `kind`, if it may not: an
/// earlier element for the same dimension matches all it matches (it would
/// never apply), or the two meet while the earlier one is not the narrower
/// (which of them prices a moment would hang on list order alone). OCPI's
/// pattern, narrower elements first and wider ones after, passes.
fn overlap(
    earlier: &[TariffElement],
    element: &TariffElement,
    kind: Dimension,
) -> Option<TariffProblem> {
    let new = &element.restrictions;
    earlier.iter().enumerate().find_map(|(i, e)| {
        let old = &e.restrictions;
        if e.component(kind).is_none() {
            None
        } else if old.covers(new) {
            Some(TariffProblem::OverlappingRestrictions {
                earlier: i,
                dimension: kind,
            })
        } else if old.meets(new) && !new.covers(old) {
            Some(TariffProblem::PartialOverlap {
                earlier: i,
                dimension: kind,
            })
        } else {
            None
        }
    })
}

fn validate_limit(
    field: &str,
    doc: Option<&PriceLimitDoc>,
    currency: Currency,
    any_vat: bool,
) -> Result<Option<PriceLimit>, TariffError> {
    let Some(doc) = doc else { return Ok(None) };
    if doc.excl_vat < 0 || doc.incl_vat.is_some_and(|v| v < 0) {
        return Err(TariffError::at(field, TariffProblem::NegativePrice));
    }
    let incl = match doc.incl_vat {
        Some(v) => v,
        None if !any_vat => doc.excl_vat,
        None => {
            return Err(TariffError::at(
                &format!("{field}.incl_vat"),
                TariffProblem::InvalidPriceLimit("required when price components carry VAT"),
            ));
        }
    };
    if incl < doc.excl_vat {
        return Err(TariffError::at(
            &format!("{field}.incl_vat"),
            TariffProblem::InvalidPriceLimit("is below excl_vat"),
        ));
    }
    Ok(Some(PriceLimit {
        excl_vat: Money::new(doc.excl_vat, currency),
        incl_vat: Money::new(incl, currency),
    }))
}

impl FromStr for Tariff {
    type Err = TariffError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Tariff::from_json(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ENERGY: &str = r#"{"price_components":[{"type":"ENERGY","price":"0.25","vat":"10"}]}"#;

    fn doc(top: &str, elements: &str) -> String {
        format!(
            r#"{{"id":"t-1","version":1,"currency":"EUR","time_zone":"Europe/Paris"{top},"elements":{elements}}}"#
        )
    }

    fn with_component(component: &str) -> String {
        doc("", &format!(r#"[{{"price_components":[{component}]}}]"#))
    }

    fn with_restrictions(restrictions: &str) -> String {
        doc(
            "",
            &format!(
                r#"[{{"price_components":[{{"type":"ENERGY","price":"0.25"}}],"restrictions":{restrictions}}}]"#
            ),
        )
    }

    #[test]
    fn a_valid_tariff_parses() {
        let t = Tariff::from_json(&doc(
            r#","min_price":{"excl_vat":50,"incl_vat":55}"#,
            &format!(
                r#"[{{"price_components":[{{"type":"ENERGY","price":"0.45","vat":"10"}}],"restrictions":{{"start_time":"18:00","end_time":"22:00","day_of_week":["MONDAY","FRIDAY"],"min_kwh":"0.5","max_power":"50","start_date":"2025-01-01","end_date":"2026-01-01","min_duration":0,"max_duration":7200}}}},{ENERGY}]"#
            ),
        ))
        .unwrap();
        assert_eq!(t.id(), "t-1");
        assert_eq!(t.version(), 1);
        assert_eq!(t.currency().code(), "EUR");
        assert_eq!(t.time_zone().name(), "Europe/Paris");
        assert_eq!(t.elements().len(), 2);
        let r = t.elements()[0].restrictions();
        assert_eq!(r.energy_wh.min, Some(500));
        assert_eq!(r.power_w.max, Some(50_000));
        assert_eq!(r.duration_s.max, Some(7200));
        let c = t.elements()[0].component(Dimension::Energy).unwrap();
        assert_eq!(c.price().to_string(), "0.45");
        assert_eq!(
            c.vat_percent().map(|v| v.to_string()),
            Some("10".to_string())
        );
        assert_eq!(c.step_size(), 1);
        assert_eq!(t.min_price().unwrap().incl_vat.value, 55);
    }

    #[test]
    fn bad_input_has_a_stable_code_and_names_the_field() {
        let p0 = "elements[0].price_components[0]";
        let r0 = "elements[0].restrictions";
        let cases: Vec<(String, &str, String)> = vec![
            (
                with_component(r#"{"type":"ENERGY","price":"-0.25"}"#),
                "negative_price",
                format!("{p0}.price"),
            ),
            (
                doc("", &format!("[{ENERGY}]")).replace("EUR", "XYZ"),
                "unknown_currency",
                "currency".into(),
            ),
            (
                doc(
                    "",
                    &format!(
                        r#"[{ENERGY},{{"price_components":[{{"type":"ENERGY","price":"0.45"}}],"restrictions":{{"start_time":"18:00"}}}}]"#
                    ),
                ),
                "overlapping_restrictions",
                "elements[1].restrictions".into(),
            ),
            (
                doc(
                    "",
                    r#"[{"price_components":[{"type":"TIME","price":"1"}],"restrictions":{"start_time":"08:00"}},
                          {"price_components":[{"type":"TIME","price":"2"}],"restrictions":{"start_time":"09:00","day_of_week":["MONDAY"]}}]"#,
                ),
                "overlapping_restrictions",
                "elements[1].restrictions".into(),
            ),
            (
                doc(
                    "",
                    r#"[{"price_components":[{"type":"ENERGY","price":"0.4"}],"restrictions":{"start_time":"17:00","end_time":"20:00"}},
                          {"price_components":[{"type":"TIME","price":"1"}]},
                          {"price_components":[{"type":"ENERGY","price":"0.35"}],"restrictions":{"start_time":"19:00","end_time":"23:00"}}]"#,
                ),
                "overlapping_restrictions",
                "elements[2].restrictions".into(),
            ),
            (
                with_component(r#"{"type":"ENERGY","price":0.25}"#),
                "invalid_tariff_json",
                format!("{p0}.price"),
            ),
            (
                with_component(r#"{"type":"ENERGY","price":"0.25","colour":"red"}"#),
                "invalid_tariff_json",
                format!("{p0}.colour"),
            ),
            (
                with_component(r#"{"type":"ENERGY","price":"1e3"}"#),
                "invalid_decimal",
                format!("{p0}.price"),
            ),
            (
                with_component(r#"{"type":"ENERGY","price":"0.1234567"}"#),
                "invalid_decimal",
                format!("{p0}.price"),
            ),
            (
                with_component(r#"{"type":"ENERGY","price":"1000001"}"#),
                "value_out_of_range",
                format!("{p0}.price"),
            ),
            (
                with_component(r#"{"type":"ENERGY","price":"0.25","vat":"120"}"#),
                "invalid_vat",
                format!("{p0}.vat"),
            ),
            (
                with_component(r#"{"type":"ENERGY","price":"0.25","vat":"-1"}"#),
                "invalid_vat",
                format!("{p0}.vat"),
            ),
            (
                with_component(r#"{"type":"TIME","price":"1","step_size":0}"#),
                "invalid_step_size",
                format!("{p0}.step_size"),
            ),
            (
                with_component(r#"{"type":"KWH","price":"1"}"#),
                "invalid_tariff_json",
                format!("{p0}.type"),
            ),
            (
                doc(
                    "",
                    r#"[{"price_components":[{"type":"FLAT","price":"1"},{"type":"FLAT","price":"2"}]}]"#,
                ),
                "duplicate_price_component",
                "elements[0].price_components[1].type".into(),
            ),
            (
                with_restrictions(r#"{"start_time":"24:00"}"#),
                "invalid_time_of_day",
                format!("{r0}.start_time"),
            ),
            (
                with_restrictions(r#"{"end_time":"8:00"}"#),
                "invalid_time_of_day",
                format!("{r0}.end_time"),
            ),
            (
                with_restrictions(r#"{"start_time":"08:00","end_time":"08:00"}"#),
                "empty_restriction",
                format!("{r0}.end_time"),
            ),
            (
                with_restrictions(r#"{"min_kwh":"20","max_kwh":"10"}"#),
                "empty_restriction",
                format!("{r0}.max_kwh"),
            ),
            (
                with_restrictions(r#"{"min_kwh":"0.0005"}"#),
                "invalid_decimal",
                format!("{r0}.min_kwh"),
            ),
            (
                with_restrictions(r#"{"min_power":"-5"}"#),
                "negative_price",
                format!("{r0}.min_power"),
            ),
            (
                with_restrictions(r#"{"min_duration":-1}"#),
                "value_out_of_range",
                format!("{r0}.min_duration"),
            ),
            (
                with_restrictions(r#"{"start_date":"2025-02-01","end_date":"2025-01-01"}"#),
                "empty_restriction",
                format!("{r0}.end_date"),
            ),
            (
                with_restrictions(r#"{"start_date":"2025-02-30"}"#),
                "invalid_date",
                format!("{r0}.start_date"),
            ),
            (
                with_restrictions(r#"{"day_of_week":[]}"#),
                "empty_restriction",
                format!("{r0}.day_of_week"),
            ),
            (
                with_restrictions(r#"{"reservation":"RESERVATION"}"#),
                "invalid_tariff_json",
                format!("{r0}.reservation"),
            ),
            (doc("", "[]"), "invalid_element_count", "elements".into()),
            (
                doc("", r#"[{"price_components":[]}]"#),
                "invalid_element_count",
                "elements[0].price_components".into(),
            ),
            (
                doc("", &format!("[{ENERGY}]")).replace("Europe/Paris", "Mars/Olympus"),
                "unknown_time_zone",
                "time_zone".into(),
            ),
            (
                doc("", &format!("[{ENERGY}]")).replace("\"t-1\"", "\"\""),
                "invalid_tariff_id",
                "id".into(),
            ),
            (
                doc("", &format!("[{ENERGY}]")).replace("\"version\":1", "\"version\":0"),
                "invalid_tariff_version",
                "version".into(),
            ),
            (
                doc(r#","min_price":{"excl_vat":50}"#, &format!("[{ENERGY}]")),
                "invalid_price_limit",
                "min_price.incl_vat".into(),
            ),
            (
                doc(
                    r#","min_price":{"excl_vat":-5,"incl_vat":0}"#,
                    &format!("[{ENERGY}]"),
                ),
                "negative_price",
                "min_price".into(),
            ),
            (
                doc(
                    r#","max_price":{"excl_vat":100,"incl_vat":90}"#,
                    &format!("[{ENERGY}]"),
                ),
                "invalid_price_limit",
                "max_price.incl_vat".into(),
            ),
            (
                doc(
                    r#","min_price":{"excl_vat":500,"incl_vat":550},"max_price":{"excl_vat":100,"incl_vat":110}"#,
                    &format!("[{ENERGY}]"),
                ),
                "invalid_price_limit",
                "max_price".into(),
            ),
            (
                "not json".to_string(),
                "invalid_tariff_json",
                "tariff".into(),
            ),
            (
                r#"{"id":"t"}"#.to_string(),
                "invalid_tariff_json",
                "tariff".into(),
            ),
        ];
        for (json, code, field) in cases {
            let err = Tariff::from_json(&json).expect_err(&json);
            assert_eq!(
                (err.code(), err.field.as_str()),
                (code, field.as_str()),
                "{json}\n{err}"
            );
            assert!(err.to_string().starts_with(&field), "{err}");
        }
    }

    #[test]
    fn narrower_elements_first_are_not_overlaps() {
        // The OCPI pattern: specific elements first, a fallback without
        // restrictions last. Also different dimensions never shadow.
        Tariff::from_json(&doc(
            "",
            &format!(r#"[{{"price_components":[{{"type":"ENERGY","price":"0.45"}}],"restrictions":{{"start_time":"18:00"}}}},{ENERGY},{{"price_components":[{{"type":"TIME","price":"1"}}]}}]"#),
        ))
        .unwrap();
    }

    #[test]
    fn overlaps_are_allowed_only_narrower_first() {
        let energy = |price: &str, r: &str| {
            format!(
                r#"{{"price_components":[{{"type":"ENERGY","price":"{price}"}}],"restrictions":{r}}}"#
            )
        };
        let peak = energy(
            "0.45",
            r#"{"start_time":"17:00","end_time":"20:00","day_of_week":["MONDAY","FRIDAY"]}"#,
        );
        let evening = energy("0.40", r#"{"start_time":"17:00","end_time":"23:00"}"#);
        let late = energy("0.35", r#"{"start_time":"19:00","end_time":"23:30"}"#);
        let weekend = energy(
            "0.30",
            r#"{"start_time":"17:00","end_time":"20:00","day_of_week":["SATURDAY"]}"#,
        );
        // Nested, narrowest first, then the fallback: accepted.
        Tariff::from_json(&doc("", &format!("[{peak},{evening},{ENERGY}]"))).unwrap();
        // Elements that never meet may come in any order.
        Tariff::from_json(&doc("", &format!("[{weekend},{peak},{ENERGY}]"))).unwrap();
        // Meeting without nesting: which price applies at 19:30 would hang
        // on the order alone.
        let err = Tariff::from_json(&doc("", &format!("[{evening},{late},{ENERGY}]"))).unwrap_err();
        assert_eq!(
            (err.code(), err.field.as_str()),
            ("overlapping_restrictions", "elements[1].restrictions")
        );
        assert!(
            err.to_string().contains("partly overlaps elements[0]"),
            "{err}"
        );
        // The wider one first leaves the narrower nothing to price: refused.
        let err = Tariff::from_json(&doc("", &format!("[{evening},{peak},{ENERGY}]"))).unwrap_err();
        assert_eq!(err.code(), "overlapping_restrictions");
    }
}
