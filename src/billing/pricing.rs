//! Prices a charging session from its meter readings with one tariff
//! version. The same function gives the live cost of a running session (the
//! readings so far) and the final cost (all readings).
//!
//! # Session model
//!
//! The session is its cumulative meter readings `(at, energy_wh)`: the first
//! is the start, the last is the end (or "now" for a live cost). Between two
//! readings the car was *charging* if the meter rose, and *idle* (connected,
//! not charging: PARKING_TIME) if it did not. TIME counts charging seconds,
//! PARKING_TIME idle seconds. Times count in whole seconds (sub-second parts
//! are dropped). Within an interval, energy is spread evenly over time. The
//! power of an interval is its energy over its duration; its current is the
//! one reported with the reading that closes it. An interval of zero seconds
//! has no known power, so power restrictions do not match it.
//!
//! Intervals are cut wherever a restriction can change its answer: at the
//! local times of day named by the tariff, local midnights, daylight saving
//! changes, duration thresholds and energy thresholds. Each piece is priced,
//! per dimension, with the first element whose restrictions match at the
//! piece's start. FLAT is charged once, from the element that matches at
//! the start of the session.
//!
//! # Step size (OCPI 2.2.1)
//!
//! While a dimension stays priced, switching elements does not round. When
//! it stops being priced (no element matches) or the session ends, the
//! quantity of that stretch is rounded up to a multiple of the step size of
//! the last component that billed it, and the extra is billed at that
//! component's price. So 8 minutes with a 300 s step bill 10 minutes.
//! Dimensions round independently: charging time rounded up does not eat
//! into the parking time after it. That is how OCPI's complex example bills;
//! its first step-size example lets the parking vanish instead, and the two
//! cannot both hold (see `worked_examples`).
//!
//! # Rounding rule
//!
//! One rule, halves rounded up (away from zero), at two places only:
//! 1. each line's amount excl. VAT is `billed quantity × unit price`,
//!    computed exactly and rounded to the currency's minor unit;
//! 2. the session's VAT is the exact sum of every line's `amount × rate`,
//!    rounded once. Each line shows its share of that VAT (its exact VAT
//!    rounded down, the cents left over going to the lines with the largest
//!    remainders), so the lines add up to the total.
//!
//! Then, as OCPI says, the minimum and maximum price bound the excl-VAT total
//! and the incl-VAT total, each with its own figure; VAT is incl minus excl.
//! This is the rule under which OCPI's worked examples come out as printed
//! (the complex example's 10.00 and 14.13 EUR: rounding VAT per line gives
//! 10.01 EUR whichever way halves go).

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;

use super::exact::{VAT_DENOMINATOR, amount_minor, div_ceil, div_round_half_up, vat_numerator};
use super::restriction::State;
use super::tariff::{Dimension, Tariff};
use crate::money::Money;

/// Longest session priced (31 days), which bounds the work and the numbers.
pub const MAX_SESSION_SECS: i64 = 31 * 86_400;
/// Most energy in one session (1 GWh).
pub const MAX_SESSION_WH: i64 = 1_000_000_000;

/// A cumulative meter reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MeterReading {
    pub at: DateTime<Utc>,
    /// The meter register in Wh (cumulative, never decreasing).
    pub energy_wh: i64,
    /// Charging current (sum over phases, mA) since the previous reading,
    /// if the charger reports it; used only by current restrictions.
    pub current_ma: Option<i64>,
}

impl MeterReading {
    pub fn new(at: DateTime<Utc>, energy_wh: i64) -> Self {
        Self {
            at,
            energy_wh,
            current_ma: None,
        }
    }
}

/// One priced component of a session.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CostLine {
    pub kind: Dimension,
    /// Index of the tariff element whose component priced this line.
    pub element: usize,
    /// Measured: Wh for ENERGY, seconds for TIME and PARKING_TIME, 1 for FLAT.
    pub quantity: i64,
    /// After rounding up to the step size.
    pub billed_quantity: i64,
    /// Per kWh, per hour or per session, excluding VAT.
    pub unit_price: Decimal,
    pub amount_excl_vat: Money,
    pub vat_rate: Option<Decimal>,
    pub vat: Money,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PriceLimitApplied {
    MinPrice,
    MaxPrice,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Cost {
    pub lines: Vec<CostLine>,
    /// Sums of the lines, before the minimum and maximum price.
    pub lines_excl_vat: Money,
    pub lines_incl_vat: Money,
    pub limit_applied: Option<PriceLimitApplied>,
    pub excl_vat: Money,
    pub vat: Money,
    pub incl_vat: Money,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PricingError {
    #[error("readings: a session needs at least one meter reading")]
    EmptyTimeline,
    #[error("readings[{0}]: earlier than the reading before it")]
    OutOfOrder(usize),
    #[error("readings[{0}].energy_wh: lower than the reading before it")]
    MeterWentBackwards(usize),
    #[error("readings[{0}]: energy and current must not be negative")]
    InvalidReading(usize),
    #[error("readings: the session is longer than {} days", MAX_SESSION_SECS / 86_400)]
    SessionTooLong,
    #[error("readings: more than {MAX_SESSION_WH} Wh in one session")]
    EnergyOutOfRange,
    #[error("readings: a time is outside the supported calendar")]
    TimeOutOfRange,
    #[error("amount out of range")]
    AmountOutOfRange,
}

impl PricingError {
    pub fn code(&self) -> &'static str {
        match self {
            PricingError::EmptyTimeline => "empty_timeline",
            PricingError::OutOfOrder(_) => "reading_out_of_order",
            PricingError::MeterWentBackwards(_) => "meter_went_backwards",
            PricingError::InvalidReading(_) => "invalid_meter_reading",
            PricingError::SessionTooLong => "session_too_long",
            PricingError::EnergyOutOfRange => "energy_out_of_range",
            PricingError::TimeOutOfRange => "time_out_of_range",
            PricingError::AmountOutOfRange => "amount_out_of_range",
        }
    }
}

/// A stretch of the session over which no restriction changes.
#[derive(Debug, Clone, Copy)]
struct Piece {
    /// Unix seconds.
    start: i64,
    secs: i64,
    wh: i64,
    charging: bool,
    state: State,
}

const METERED: [Dimension; 3] = [Dimension::Energy, Dimension::Time, Dimension::ParkingTime];

/// The cost of a session (or of a running session so far).
pub fn price_session(tariff: &Tariff, readings: &[MeterReading]) -> Result<Cost, PricingError> {
    check(readings)?;
    let pieces = cut(tariff, readings)?;
    let mut lines: BTreeMap<(Dimension, usize), (i64, i64)> = BTreeMap::new();

    let first_state = match pieces.first() {
        Some(p) => p.state,
        None => start_state(tariff, readings)?,
    };
    if let Some((idx, _)) = tariff.active(Dimension::Flat, &first_state) {
        lines.insert((Dimension::Flat, idx), (1, 0));
    }

    // Per metered dimension: quantity of the current priced stretch and the
    // element that billed it last.
    let mut runs: [(i64, Option<usize>); 3] = [(0, None); 3];
    for piece in &pieces {
        for (d, dim) in METERED.iter().enumerate() {
            let qty = match dim {
                Dimension::Energy => piece.wh,
                Dimension::Time if piece.charging => piece.secs,
                Dimension::ParkingTime if !piece.charging => piece.secs,
                _ => 0,
            };
            match tariff.active(*dim, &piece.state) {
                Some((idx, _)) => {
                    if qty > 0 {
                        let line = lines.entry((*dim, idx)).or_insert((0, 0));
                        line.0 += qty;
                        runs[d].0 += qty;
                        runs[d].1 = Some(idx);
                    }
                }
                None => close_run(tariff, *dim, &mut runs[d], &mut lines)?,
            }
        }
    }
    for (d, dim) in METERED.iter().enumerate() {
        close_run(tariff, *dim, &mut runs[d], &mut lines)?;
    }
    total(tariff, lines)
}

/// One charging period of a CDR (OCPI 2.2.1): a stretch of the session over
/// which the car was either charging or idle throughout, and each metered
/// dimension was priced by one tariff element (or by none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stretch {
    pub start: DateTime<Utc>,
    /// Whole seconds.
    pub secs: i64,
    /// Energy in the stretch, Wh.
    pub wh: i64,
    pub charging: bool,
    /// The element that prices ENERGY, TIME, PARKING_TIME in this stretch
    /// (in that order), if any. Only dimensions the stretch bills count:
    /// ENERGY and TIME while charging, PARKING_TIME while idle, so a day
    /// rate for energy ending while the car stands idle cuts nothing.
    pub elements: [Option<usize>; 3],
}

/// The charging periods of a session (OCPI: "each time a relevant tariff
/// dimension changes, a new period starts"): the pieces `price_session`
/// prices, merged while charging and the element of every metered dimension
/// stay the same. FLAT is not metered, so it never cuts. Their seconds and
/// energy add up to the session's; one reading gives none.
pub fn stretches(tariff: &Tariff, readings: &[MeterReading]) -> Result<Vec<Stretch>, PricingError> {
    check(readings)?;
    let mut out: Vec<Stretch> = Vec::new();
    for piece in cut(tariff, readings)? {
        if piece.secs == 0 && piece.wh == 0 {
            continue;
        }
        let billed = |dim: Dimension| match dim {
            Dimension::Energy | Dimension::Time => piece.charging,
            _ => !piece.charging,
        };
        let elements = METERED.map(|dim| {
            billed(dim)
                .then(|| tariff.active(dim, &piece.state).map(|(i, _)| i))
                .flatten()
        });
        match out.last_mut() {
            Some(s) if s.charging == piece.charging && s.elements == elements => {
                s.secs += piece.secs;
                s.wh += piece.wh;
            }
            _ => out.push(Stretch {
                start: at(piece.start)?,
                secs: piece.secs,
                wh: piece.wh,
                charging: piece.charging,
                elements,
            }),
        }
    }
    Ok(out)
}

fn check(readings: &[MeterReading]) -> Result<(), PricingError> {
    let first = readings.first().ok_or(PricingError::EmptyTimeline)?;
    for (i, r) in readings.iter().enumerate() {
        if r.energy_wh < 0 || r.current_ma.is_some_and(|c| c < 0) {
            return Err(PricingError::InvalidReading(i));
        }
        if i > 0 {
            let prev = &readings[i - 1];
            if r.at.timestamp() < prev.at.timestamp() {
                return Err(PricingError::OutOfOrder(i));
            }
            if r.energy_wh < prev.energy_wh {
                return Err(PricingError::MeterWentBackwards(i));
            }
        }
    }
    let last = &readings[readings.len() - 1];
    if last.at.timestamp() - first.at.timestamp() > MAX_SESSION_SECS {
        return Err(PricingError::SessionTooLong);
    }
    if last.energy_wh - first.energy_wh > MAX_SESSION_WH {
        return Err(PricingError::EnergyOutOfRange);
    }
    Ok(())
}

fn at(secs: i64) -> Result<DateTime<Utc>, PricingError> {
    DateTime::from_timestamp(secs, 0).ok_or(PricingError::TimeOutOfRange)
}

fn start_state(tariff: &Tariff, readings: &[MeterReading]) -> Result<State, PricingError> {
    let first = readings.first().ok_or(PricingError::EmptyTimeline)?;
    Ok(State {
        local: tariff.time_zone.local(at(first.at.timestamp())?),
        duration_s: 0,
        energy_wh: 0,
        power: None,
        current_ma: first.current_ma,
    })
}

/// Where restrictions can change: local minutes of the day, session
/// durations and session energies named by the tariff.
struct Boundaries {
    minutes: BTreeSet<u16>,
    durations: BTreeSet<i64>,
    energies: BTreeSet<i64>,
}

impl Boundaries {
    fn of(tariff: &Tariff) -> Self {
        let mut b = Boundaries {
            minutes: BTreeSet::new(),
            durations: BTreeSet::new(),
            energies: BTreeSet::new(),
        };
        for r in tariff.elements.iter().map(|e| &e.restrictions) {
            b.minutes.extend(r.boundary_minutes());
            if r.days.is_some() || r.start_date.is_some() || r.end_date.is_some() {
                b.minutes.insert(0);
            }
            b.durations
                .extend([r.duration_s.min, r.duration_s.max].into_iter().flatten());
            b.energies
                .extend([r.energy_wh.min, r.energy_wh.max].into_iter().flatten());
        }
        if !b.minutes.is_empty() {
            b.minutes.insert(0);
        }
        b
    }
}

/// Cut the readings into pieces over which no restriction changes.
fn cut(tariff: &Tariff, readings: &[MeterReading]) -> Result<Vec<Piece>, PricingError> {
    let zone = tariff.time_zone;
    let bounds = Boundaries::of(tariff);
    let start = readings[0].at.timestamp();
    let e_start = readings[0].energy_wh;
    let mut pieces = Vec::new();
    for pair in readings.windows(2) {
        let (a, b) = (&pair[0], &pair[1]);
        let (t0, t1) = (a.at.timestamp(), b.at.timestamp());
        let (e0, e1) = (a.energy_wh - e_start, b.energy_wh - e_start);
        let (dt, de) = (t1 - t0, e1 - e0);

        // Times (seconds after t0) at which a restriction may switch.
        let mut times: BTreeSet<i64> = BTreeSet::from([0, dt]);
        if !bounds.minutes.is_empty() {
            // One local day either side covers every offset a zone can have.
            let first_day = zone.local(at(t0)?).date().pred_opt();
            let last_day = zone.local(at(t1)?).date().succ_opt();
            let (Some(mut day), Some(last_day)) = (first_day, last_day) else {
                return Err(PricingError::TimeOutOfRange);
            };
            while day <= last_day {
                for m in &bounds.minutes {
                    let local = day.and_hms_opt(u32::from(*m / 60), u32::from(*m % 60), 0);
                    for t in local.map(|l| zone.instants(l)).unwrap_or_default() {
                        let s = t.timestamp() - t0;
                        if s > 0 && s < dt {
                            times.insert(s);
                        }
                    }
                }
                match day.succ_opt() {
                    Some(next) => day = next,
                    None => break,
                }
            }
            // Daylight saving changes move the local clock without a named
            // minute passing; spans are under two days, so one check each.
            let marks: Vec<i64> = times.iter().copied().collect();
            for w in marks.windows(2) {
                if let Some(t) = zone.offset_change(at(t0 + w[0])?, at(t0 + w[1])?) {
                    times.insert(t.timestamp() - t0);
                }
            }
        }
        for d in &bounds.durations {
            let s = start + d - t0;
            if s > 0 && s < dt {
                times.insert(s);
            }
        }

        // Points (seconds after t0, session energy) in time and energy order.
        let energy_at = |s: i64| -> i64 {
            if dt == 0 {
                e0
            } else {
                e0 + (i128::from(de) * i128::from(s) / i128::from(dt)) as i64
            }
        };
        let mut points: BTreeSet<(i64, i64)> = times.iter().map(|s| (*s, energy_at(*s))).collect();
        points.insert((dt, e1));
        // Energy thresholds strictly inside the interval (none when idle).
        if de > 1 {
            for x in bounds.energies.range((e0 + 1)..e1) {
                let s = (i128::from(x - e0) * i128::from(dt) / i128::from(de)) as i64;
                points.insert((s, *x));
            }
        }

        let power = (dt > 0).then_some((de, dt));
        let points: Vec<(i64, i64)> = points.into_iter().collect();
        for w in points.windows(2) {
            let ((s0, en0), (s1, en1)) = (w[0], w[1]);
            if s1 == s0 && en1 == en0 {
                continue;
            }
            pieces.push(Piece {
                start: t0 + s0,
                secs: s1 - s0,
                wh: en1 - en0,
                charging: de > 0,
                state: State {
                    local: zone.local(at(t0 + s0)?),
                    duration_s: t0 + s0 - start,
                    energy_wh: en0,
                    power,
                    current_ma: b.current_ma,
                },
            });
        }
    }
    Ok(pieces)
}

/// End a priced stretch of `dim`: round its quantity up to the step size of
/// the last component that billed it; the extra goes on that line.
fn close_run(
    tariff: &Tariff,
    dim: Dimension,
    run: &mut (i64, Option<usize>),
    lines: &mut BTreeMap<(Dimension, usize), (i64, i64)>,
) -> Result<(), PricingError> {
    let (total, last) = std::mem::take(run);
    let Some(idx) = last else { return Ok(()) };
    let step = tariff.elements[idx]
        .component(dim)
        .map_or(1, |c| c.step_size);
    let rounded = div_ceil(total, step)
        .and_then(|n| n.checked_mul(step))
        .ok_or(PricingError::AmountOutOfRange)?;
    if let Some(line) = lines.get_mut(&(dim, idx)) {
        line.1 += rounded - total;
    }
    Ok(())
}

fn money(v: i128, tariff: &Tariff) -> Result<Money, PricingError> {
    i64::try_from(v)
        .map(|v| Money::new(v, tariff.currency))
        .map_err(|_| PricingError::AmountOutOfRange)
}

fn total(
    tariff: &Tariff,
    lines: BTreeMap<(Dimension, usize), (i64, i64)>,
) -> Result<Cost, PricingError> {
    let exp = tariff.currency.exponent();
    let mut out = Vec::with_capacity(lines.len());
    let mut vat_parts: Vec<i128> = Vec::with_capacity(lines.len());
    let mut excl = 0i128;
    for ((kind, element), (quantity, extra)) in lines {
        let Some(c) = tariff.elements[element].component(kind) else {
            continue;
        };
        let billed = quantity + extra;
        let amount = amount_minor(billed, c.price, kind.unit(), exp)
            .ok_or(PricingError::AmountOutOfRange)?;
        let vat = match c.vat_percent {
            Some(rate) => vat_numerator(amount, rate).ok_or(PricingError::AmountOutOfRange)?,
            None => 0,
        };
        excl = excl
            .checked_add(amount)
            .ok_or(PricingError::AmountOutOfRange)?;
        vat_parts.push(vat);
        out.push(CostLine {
            kind,
            element,
            quantity,
            billed_quantity: billed,
            unit_price: c.price,
            amount_excl_vat: money(amount, tariff)?,
            vat_rate: c.vat_percent,
            vat: Money::zero(tariff.currency),
        });
    }
    let shares = allocate_vat(&vat_parts).ok_or(PricingError::AmountOutOfRange)?;
    let vat: i128 = shares.iter().sum();
    for (line, share) in out.iter_mut().zip(shares) {
        line.vat = money(share, tariff)?;
    }
    let lines_incl = excl + vat;
    let (mut total_excl, mut total_incl) = (excl, lines_incl);
    let mut applied = None;
    if let Some(min) = tariff.min_price {
        let (lo_excl, lo_incl) = (
            i128::from(min.excl_vat.value),
            i128::from(min.incl_vat.value),
        );
        if total_excl < lo_excl || total_incl < lo_incl {
            applied = Some(PriceLimitApplied::MinPrice);
        }
        total_excl = total_excl.max(lo_excl);
        total_incl = total_incl.max(lo_incl);
    }
    if let Some(max) = tariff.max_price {
        let (hi_excl, hi_incl) = (
            i128::from(max.excl_vat.value),
            i128::from(max.incl_vat.value),
        );
        if total_excl > hi_excl || total_incl > hi_incl {
            applied = Some(PriceLimitApplied::MaxPrice);
        }
        total_excl = total_excl.min(hi_excl);
        total_incl = total_incl.min(hi_incl);
    }
    Ok(Cost {
        lines: out,
        lines_excl_vat: money(excl, tariff)?,
        lines_incl_vat: money(lines_incl, tariff)?,
        limit_applied: applied,
        excl_vat: money(total_excl, tariff)?,
        vat: money(total_incl - total_excl, tariff)?,
        incl_vat: money(total_incl, tariff)?,
    })
}

/// Round the exact sum of the lines' VAT once, then share it out: each line
/// gets its exact VAT rounded down, and the cents left over go one each to
/// the lines with the largest remainders (the earlier line on a tie).
fn allocate_vat(parts: &[i128]) -> Option<Vec<i128>> {
    let total = div_round_half_up(
        parts.iter().try_fold(0i128, |a, p| a.checked_add(*p))?,
        VAT_DENOMINATOR,
    )?;
    let mut shares: Vec<i128> = parts
        .iter()
        .map(|p| p.div_euclid(VAT_DENOMINATOR))
        .collect();
    let mut order: Vec<usize> = (0..parts.len()).collect();
    order.sort_by_key(|i| std::cmp::Reverse(parts[*i].rem_euclid(VAT_DENOMINATOR)));
    let left = total - shares.iter().sum::<i128>();
    for i in order.into_iter().take(usize::try_from(left.max(0)).ok()?) {
        shares[i] += 1;
    }
    Some(shares)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vat_shares_add_up_to_the_rounded_total() {
        let d = VAT_DENOMINATOR;
        // 0.375 + 0.50 + 0.375 cents*100: exact 1.25 EUR -> 125 cents;
        // shares 37 + 50 + 37 = 124, one cent left to the first remainder.
        let parts = [d * 375 / 10, d * 50, d * 375 / 10];
        assert_eq!(allocate_vat(&parts), Some(vec![38, 50, 37]));
        assert_eq!(allocate_vat(&[]), Some(vec![]));
        assert_eq!(allocate_vat(&[d / 2]), Some(vec![1]));
        assert_eq!(allocate_vat(&[d / 2 - 1]), Some(vec![0]));
    }
}

#[cfg(test)]
mod bad_input {
    use super::*;

    fn tariff() -> Tariff {
        Tariff::from_json(
            r#"{"id":"t","version":1,"currency":"EUR","time_zone":"UTC","elements":[{"price_components":[{"type":"ENERGY","price":"0.25"}]}]}"#,
        )
        .unwrap()
    }

    fn r(secs: i64, wh: i64) -> MeterReading {
        MeterReading::new(
            DateTime::from_timestamp(1_750_000_000 + secs, 0).unwrap(),
            wh,
        )
    }

    #[test]
    fn bad_timelines_have_stable_codes() {
        let t = tariff();
        let cases: Vec<(Vec<MeterReading>, PricingError, &str)> = vec![
            (vec![], PricingError::EmptyTimeline, "empty_timeline"),
            (
                vec![r(0, 10), r(60, 500), r(120, 400)],
                PricingError::MeterWentBackwards(2),
                "meter_went_backwards",
            ),
            (
                vec![r(0, 10), r(60, 20), r(30, 30)],
                PricingError::OutOfOrder(2),
                "reading_out_of_order",
            ),
            (
                vec![r(0, -1)],
                PricingError::InvalidReading(0),
                "invalid_meter_reading",
            ),
            (
                vec![
                    r(0, 0),
                    MeterReading {
                        current_ma: Some(-1),
                        ..r(60, 10)
                    },
                ],
                PricingError::InvalidReading(1),
                "invalid_meter_reading",
            ),
            (
                vec![r(0, 0), r(MAX_SESSION_SECS + 1, 10)],
                PricingError::SessionTooLong,
                "session_too_long",
            ),
            (
                vec![r(0, 0), r(60, MAX_SESSION_WH + 1)],
                PricingError::EnergyOutOfRange,
                "energy_out_of_range",
            ),
        ];
        for (readings, want, code) in cases {
            let err = price_session(&t, &readings).unwrap_err();
            assert_eq!(err, want);
            assert_eq!(err.code(), code);
        }
        assert_eq!(
            PricingError::MeterWentBackwards(2).to_string(),
            "readings[2].energy_wh: lower than the reading before it"
        );
    }

    #[test]
    fn a_reading_repeated_or_without_time_is_fine() {
        let t = tariff();
        // Same instant twice with energy: 1000 Wh in 0 s still bills 0.25.
        let c = price_session(&t, &[r(0, 0), r(0, 1000), r(0, 1000)]).unwrap();
        assert_eq!(c.excl_vat.value, 25);
    }
}

#[cfg(test)]
mod limits {
    use super::*;

    #[test]
    fn the_last_representable_day_does_not_panic() {
        let t = Tariff::from_json(
            r#"{"id":"t","version":1,"currency":"EUR","time_zone":"UTC","elements":[{"price_components":[{"type":"ENERGY","price":"0.25"}],"restrictions":{"start_time":"18:00"}}]}"#,
        )
        .unwrap();
        let end = DateTime::<Utc>::MAX_UTC.timestamp();
        let readings = [
            MeterReading::new(DateTime::from_timestamp(end - 60, 0).unwrap(), 0),
            MeterReading::new(DateTime::from_timestamp(end, 0).unwrap(), 10),
        ];
        let err = price_session(&t, &readings).unwrap_err();
        assert_eq!(err, PricingError::TimeOutOfRange);
        assert_eq!(err.code(), "time_out_of_range");
    }
}

#[cfg(test)]
mod stretches_tests {
    use super::*;

    fn tariff(zone: &str, elements: &str) -> Tariff {
        Tariff::from_json(&format!(
            r#"{{"id":"t","version":1,"currency":"EUR","time_zone":"{zone}","elements":{elements}}}"#
        ))
        .unwrap()
    }

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().to_utc()
    }

    fn r(s: &str, wh: i64) -> MeterReading {
        MeterReading::new(at(s), wh)
    }

    const ALL_THREE: &str = r#"[{"price_components":[{"type":"ENERGY","price":"0.25"},{"type":"TIME","price":"1.00"},{"type":"PARKING_TIME","price":"2.00"}]}]"#;

    /// ENERGY at 0.30 from 08:00 to 20:00 local, 0.20 otherwise; TIME only
    /// in the fallback.
    const DAY_NIGHT: &str = r#"[{"price_components":[{"type":"ENERGY","price":"0.30"}],"restrictions":{"start_time":"08:00","end_time":"20:00"}},
        {"price_components":[{"type":"ENERGY","price":"0.20"},{"type":"TIME","price":"1.00"}]}]"#;

    /// ENERGY at 0.10 for the first kWh, 0.30 beyond.
    const THRESHOLD: &str = r#"[{"price_components":[{"type":"ENERGY","price":"0.10"}],"restrictions":{"max_kwh":"1"}},
        {"price_components":[{"type":"ENERGY","price":"0.30"}]}]"#;

    #[test]
    fn one_element_charging_throughout_is_one_stretch() {
        let t = tariff("UTC", ALL_THREE);
        let readings: Vec<MeterReading> = (0..10)
            .map(|i: i64| {
                MeterReading::new(
                    at("2025-06-02T10:00:00Z") + chrono::Duration::seconds(i * i * 37 + i),
                    100 + i * 250 + i * i,
                )
            })
            .collect();
        let (first, last) = (readings[0], readings[9]);
        assert_eq!(
            stretches(&t, &readings).unwrap(),
            vec![Stretch {
                start: first.at,
                secs: (last.at - first.at).num_seconds(),
                wh: last.energy_wh - first.energy_wh,
                charging: true,
                // Parking is not billed while charging.
                elements: [Some(0), Some(0), None],
            }]
        );
    }

    #[test]
    fn charging_idle_charging_is_three_stretches() {
        let t = tariff("UTC", ALL_THREE);
        let s = stretches(
            &t,
            &[
                r("2025-06-02T10:00:00Z", 1_000),
                r("2025-06-02T10:15:00Z", 4_000),
                r("2025-06-02T10:30:00Z", 7_000),
                r("2025-06-02T10:45:00Z", 7_000),
                r("2025-06-02T11:00:00Z", 7_000),
                r("2025-06-02T11:20:00Z", 10_000),
            ],
        )
        .unwrap();
        let got: Vec<_> = s
            .iter()
            .map(|s| (s.start, s.secs, s.wh, s.charging))
            .collect();
        assert_eq!(
            got,
            vec![
                (at("2025-06-02T10:00:00Z"), 1_800, 6_000, true),
                (at("2025-06-02T10:30:00Z"), 1_800, 0, false),
                (at("2025-06-02T11:00:00Z"), 1_200, 3_000, true),
            ]
        );
        let elements: Vec<_> = s.iter().map(|s| s.elements).collect();
        assert_eq!(
            elements,
            [
                [Some(0), Some(0), None],
                [None, None, Some(0)],
                [Some(0), Some(0), None]
            ]
        );
    }

    #[test]
    fn an_energy_rate_ending_while_idle_cuts_nothing() {
        // 20:00 local (18:00Z) passes while the car stands idle.
        let t = tariff("Europe/Berlin", DAY_NIGHT);
        let s = stretches(
            &t,
            &[
                r("2025-06-14T17:00:00Z", 0),
                r("2025-06-14T17:30:00Z", 5_000),
                r("2025-06-14T18:30:00Z", 5_000),
            ],
        )
        .unwrap();
        let got: Vec<_> = s.iter().map(|s| (s.start, s.secs, s.elements)).collect();
        assert_eq!(
            got,
            vec![
                (at("2025-06-14T17:00:00Z"), 1_800, [Some(0), Some(1), None]),
                (at("2025-06-14T17:30:00Z"), 3_600, [None, None, None]),
            ]
        );
    }

    #[test]
    fn a_day_element_ends_at_20_local() {
        // Berlin is UTC+2 in June: 20:00 local is 18:00Z, 600 s into the
        // 17:50Z-18:25Z interval, whose 3500 Wh spread evenly give 1000 Wh
        // before the cut.
        let t = tariff("Europe/Berlin", DAY_NIGHT);
        let readings = [
            r("2025-06-14T17:10:00Z", 0),
            r("2025-06-14T17:50:00Z", 4_000),
            r("2025-06-14T18:25:00Z", 7_500),
            r("2025-06-14T19:00:00Z", 11_000),
        ];
        assert_eq!(
            stretches(&t, &readings).unwrap(),
            vec![
                Stretch {
                    start: at("2025-06-14T17:10:00Z"),
                    secs: 3_000,
                    wh: 5_000,
                    charging: true,
                    elements: [Some(0), Some(1), None],
                },
                Stretch {
                    start: at("2025-06-14T18:00:00Z"),
                    secs: 3_600,
                    wh: 6_000,
                    charging: true,
                    elements: [Some(1), Some(1), None],
                },
            ]
        );
    }

    #[test]
    fn an_energy_threshold_cuts_where_pricing_does() {
        // 1000 Wh is reached 300 of the 1400 Wh into the 10:07-10:20
        // interval: 300 * 780 / 1400 = 167.1 s, so at 10:09:47.
        let t = tariff("UTC", THRESHOLD);
        let readings = [
            r("2025-06-02T10:00:00Z", 0),
            r("2025-06-02T10:07:00Z", 700),
            r("2025-06-02T10:20:00Z", 2_100),
        ];
        let s = stretches(&t, &readings).unwrap();
        let got: Vec<_> = s
            .iter()
            .map(|s| (s.start, s.secs, s.wh, s.elements))
            .collect();
        assert_eq!(
            got,
            vec![
                (
                    at("2025-06-02T10:00:00Z"),
                    587,
                    1_000,
                    [Some(0), None, None]
                ),
                (
                    at("2025-06-02T10:09:47Z"),
                    613,
                    1_100,
                    [Some(1), None, None]
                ),
            ]
        );
        let cost = price_session(&t, &readings).unwrap();
        let energy: Vec<_> = cost.lines.iter().map(|l| (l.element, l.quantity)).collect();
        assert_eq!(energy, vec![(0, 1_000), (1, 1_100)]);
    }

    /// Per (dimension, element), the quantity the stretches give it.
    fn quantities(s: &[Stretch]) -> BTreeMap<(Dimension, usize), i64> {
        let mut q = BTreeMap::new();
        for s in s {
            let amounts = [
                s.wh,
                if s.charging { s.secs } else { 0 },
                if s.charging { 0 } else { s.secs },
            ];
            for ((dim, element), amount) in METERED.iter().zip(s.elements).zip(amounts) {
                if let Some(i) = element.filter(|_| amount > 0) {
                    *q.entry((*dim, i)).or_insert(0) += amount;
                }
            }
        }
        q
    }

    #[test]
    fn stretches_add_up_and_neighbours_differ() {
        let idle_across_20 = [
            r("2025-06-14T17:00:00Z", 0),
            r("2025-06-14T17:30:00Z", 2_000),
            r("2025-06-14T18:30:00Z", 2_000),
            r("2025-06-14T19:00:00Z", 3_001),
        ];
        // Across the spring-forward night in Berlin, with a repeated
        // reading and energy arriving in no time.
        let dst_night = [
            r("2025-03-29T18:59:59Z", 10),
            r("2025-03-29T23:00:00Z", 10),
            r("2025-03-29T23:00:00Z", 10),
            r("2025-03-30T01:30:00Z", 5_010),
            r("2025-03-30T01:30:00Z", 5_500),
            r("2025-03-30T07:01:01Z", 9_999),
        ];
        let threshold_in_no_time = [
            r("2025-06-02T10:00:00Z", 0),
            r("2025-06-02T10:05:00Z", 400),
            r("2025-06-02T10:05:00Z", 1_600),
            r("2025-06-02T10:10:00Z", 1_600),
            r("2025-06-02T10:11:00Z", 1_601),
        ];
        let cases: Vec<(Tariff, &[MeterReading])> = vec![
            (tariff("Europe/Berlin", DAY_NIGHT), &idle_across_20),
            (tariff("Europe/Berlin", DAY_NIGHT), &dst_night),
            (tariff("UTC", THRESHOLD), &threshold_in_no_time),
            (tariff("UTC", THRESHOLD), &dst_night),
            (tariff("+05:30", ALL_THREE), &idle_across_20),
        ];
        for (t, readings) in cases {
            let s = stretches(&t, readings).unwrap();
            let (first, last) = (readings[0], readings[readings.len() - 1]);
            assert_eq!(
                s.iter().map(|s| s.secs).sum::<i64>(),
                (last.at - first.at).num_seconds()
            );
            assert_eq!(
                s.iter().map(|s| s.wh).sum::<i64>(),
                last.energy_wh - first.energy_wh
            );
            assert_eq!(s[0].start, first.at);
            for w in s.windows(2) {
                assert_eq!(
                    w[1].start,
                    w[0].start + chrono::Duration::seconds(w[0].secs)
                );
                assert_ne!(
                    (w[0].charging, w[0].elements),
                    (w[1].charging, w[1].elements),
                    "{s:#?}"
                );
            }
            // Each element's stretches hold what price_session bills it.
            let cost = price_session(&t, readings).unwrap();
            let billed: BTreeMap<(Dimension, usize), i64> = cost
                .lines
                .iter()
                .filter(|l| l.kind != Dimension::Flat)
                .map(|l| ((l.kind, l.element), l.quantity))
                .collect();
            assert_eq!(quantities(&s), billed, "{s:#?}");
            // A live cost at the first reading has no stretch yet.
            assert_eq!(stretches(&t, &readings[..1]).unwrap(), vec![]);
        }
    }

    #[test]
    fn bad_input_fails_as_price_session_does() {
        let t = tariff("UTC", THRESHOLD);
        let cases: Vec<(Vec<MeterReading>, PricingError)> = vec![
            (vec![], PricingError::EmptyTimeline),
            (
                vec![r("2025-06-02T10:00:00Z", 10), r("2025-06-02T10:01:00Z", 5)],
                PricingError::MeterWentBackwards(1),
            ),
            (
                vec![r("2025-06-02T10:01:00Z", 10), r("2025-06-02T10:00:00Z", 20)],
                PricingError::OutOfOrder(1),
            ),
            (
                vec![r("2025-06-02T10:00:00Z", -1)],
                PricingError::InvalidReading(0),
            ),
            (
                vec![r("2025-06-01T00:00:00Z", 0), r("2025-07-02T00:00:01Z", 1)],
                PricingError::SessionTooLong,
            ),
        ];
        for (readings, want) in cases {
            assert_eq!(stretches(&t, &readings), Err(want.clone()));
            assert_eq!(price_session(&t, &readings), Err(want));
        }
    }
}
