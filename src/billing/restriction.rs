//! When a tariff element applies (OCPI 2.2.1 TariffRestrictions), in the
//! units pricing works in: minutes of the local day, Wh, W, mA, seconds.
//! Lower bounds are inclusive and upper bounds exclusive, as in OCPI.

use chrono::{Datelike, NaiveDate, NaiveDateTime, Timelike, Weekday};

pub const MINUTES_PER_DAY: u16 = 24 * 60;

/// A half-open interval `[min, max)`; `None` is unbounded on that side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Range {
    pub min: Option<i64>,
    pub max: Option<i64>,
}

impl Range {
    fn contains(&self, v: i64) -> bool {
        self.min.is_none_or(|m| v >= m) && self.max.is_none_or(|m| v < m)
    }

    fn is_unbounded(&self) -> bool {
        self.min.is_none() && self.max.is_none()
    }

    pub fn is_empty(&self) -> bool {
        matches!((self.min, self.max), (Some(a), Some(b)) if a >= b)
    }

    /// Every value in `other` is in `self`.
    fn covers(&self, other: &Range) -> bool {
        let lo = match (self.min, other.min) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some(a), Some(b)) => a <= b,
        };
        let hi = match (self.max, other.max) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some(a), Some(b)) => b <= a,
        };
        lo && hi
    }

    /// Some value is in both.
    fn meets(&self, other: &Range) -> bool {
        // `None` sorts first, so `max` keeps the higher lower bound.
        let min = self.min.max(other.min);
        let max = earlier_end(self.max, other.max);
        !(Range { min, max }).is_empty()
    }
}

/// The nearer of two exclusive upper bounds, `None` being unbounded.
fn earlier_end<T: Ord>(a: Option<T>, b: Option<T>) -> Option<T> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// A time-of-day window in local minutes. `end < start` wraps past
/// midnight; an `end` of 00:00 means the end of the day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeWindow {
    pub start: Option<u16>,
    pub end: Option<u16>,
}

impl TimeWindow {
    fn contains(&self, minute: u16) -> bool {
        let start = self.start.unwrap_or(0);
        let end = match self.end {
            None | Some(0) => MINUTES_PER_DAY,
            Some(e) => e,
        };
        if start < end {
            (start..end).contains(&minute)
        } else {
            minute >= start || minute < end
        }
    }

    pub fn is_empty(&self) -> bool {
        match (self.start, self.end) {
            (Some(s), Some(e)) => s == e,
            (None, Some(0)) => true,
            _ => false,
        }
    }

    fn covers(&self, other: &TimeWindow) -> bool {
        (0..MINUTES_PER_DAY).all(|m| !other.contains(m) || self.contains(m))
    }

    fn meets(&self, other: &TimeWindow) -> bool {
        (0..MINUTES_PER_DAY).any(|m| other.contains(m) && self.contains(m))
    }
}

/// A set of weekdays as a bit mask (bit 0 = Monday).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Days(pub u8);

impl Days {
    pub fn with(self, d: Weekday) -> Days {
        Days(self.0 | (1 << d.num_days_from_monday()))
    }

    fn contains(&self, d: Weekday) -> bool {
        self.0 & (1 << d.num_days_from_monday()) != 0
    }

    fn covers(&self, other: &Days) -> bool {
        other.0 & !self.0 == 0
    }

    const ALL: Days = Days(0x7f);
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Restrictions {
    pub time_of_day: Option<TimeWindow>,
    /// Local dates `[start_date, end_date)`.
    pub start_date: Option<NaiveDate>,
    pub end_date: Option<NaiveDate>,
    /// Energy consumed in the session so far.
    pub energy_wh: Range,
    /// Average power of the current metering interval.
    pub power_w: Range,
    /// Current (sum over phases) reported for the current metering interval.
    pub current_ma: Range,
    /// Time since the session started.
    pub duration_s: Range,
    pub days: Option<Days>,
}

/// The session as seen at one instant, for matching restrictions.
#[derive(Debug, Clone, Copy)]
pub struct State {
    pub local: NaiveDateTime,
    pub duration_s: i64,
    pub energy_wh: i64,
    /// `(Wh, s)` of the metering interval; `None` when not known (the
    /// session has no interval yet, or the interval lasted no time).
    pub power: Option<(i64, i64)>,
    pub current_ma: Option<i64>,
}

impl Restrictions {
    pub fn matches(&self, s: &State) -> bool {
        let minute = (s.local.hour() * 60 + s.local.minute()) as u16;
        let date = s.local.date();
        self.time_of_day.is_none_or(|w| w.contains(minute))
            && self.start_date.is_none_or(|d| date >= d)
            && self.end_date.is_none_or(|d| date < d)
            && self.days.is_none_or(|d| d.contains(date.weekday()))
            && self.energy_wh.contains(s.energy_wh)
            && self.duration_s.contains(s.duration_s)
            && self.power_matches(s.power)
            && (self.current_ma.is_unbounded()
                || s.current_ma.is_some_and(|c| self.current_ma.contains(c)))
    }

    fn power_matches(&self, power: Option<(i64, i64)>) -> bool {
        if self.power_w.is_unbounded() {
            return true;
        }
        // Power is wh * 3600 / secs W; compare without dividing.
        let Some((wh, secs)) = power else {
            return false;
        };
        let scaled = i128::from(wh) * 3600;
        let secs = i128::from(secs);
        self.power_w
            .min
            .is_none_or(|m| scaled >= i128::from(m) * secs)
            && self
                .power_w
                .max
                .is_none_or(|m| scaled < i128::from(m) * secs)
    }

    /// Every state matched by `other` is matched by `self`, judged field by
    /// field (so it never claims a cover that does not hold).
    pub fn covers(&self, other: &Restrictions) -> bool {
        let window = match (&self.time_of_day, &other.time_of_day) {
            (None, _) => true,
            (Some(a), Some(b)) => a.covers(b),
            (Some(a), None) => a.covers(&TimeWindow {
                start: None,
                end: None,
            }),
        };
        let start = match (self.start_date, other.start_date) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some(a), Some(b)) => a <= b,
        };
        let end = match (self.end_date, other.end_date) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some(a), Some(b)) => b <= a,
        };
        let days = match (&self.days, &other.days) {
            (None, _) => true,
            (Some(a), Some(b)) => a.covers(b),
            (Some(a), None) => a.covers(&Days::ALL),
        };
        window
            && start
            && end
            && days
            && self.energy_wh.covers(&other.energy_wh)
            && self.power_w.covers(&other.power_w)
            && self.current_ma.covers(&other.current_ma)
            && self.duration_s.covers(&other.duration_s)
    }

    /// Some state could match both. Judged field by field, except that dates
    /// and weekdays are judged together (a short date range holds only some
    /// weekdays); links between other fields (no session reaches 100 kWh in
    /// a minute) are not seen, so it may find a meeting no session reaches.
    pub fn meets(&self, other: &Restrictions) -> bool {
        let windows = match (&self.time_of_day, &other.time_of_day) {
            (Some(a), Some(b)) => a.meets(b),
            (Some(w), None) | (None, Some(w)) => !w.is_empty(),
            (None, None) => true,
        };
        windows
            && self.dates_meet(other)
            && self.energy_wh.meets(&other.energy_wh)
            && self.power_w.meets(&other.power_w)
            && self.current_ma.meets(&other.current_ma)
            && self.duration_s.meets(&other.duration_s)
    }

    /// Some local date lies in both date ranges on a weekday both allow.
    fn dates_meet(&self, other: &Restrictions) -> bool {
        let start = self.start_date.max(other.start_date);
        let end = earlier_end(self.end_date, other.end_date);
        let days = self.days.unwrap_or(Days::ALL).0 & other.days.unwrap_or(Days::ALL).0;
        if days == 0 {
            return false;
        }
        match (start, end) {
            (Some(s), Some(e)) => s
                .iter_days()
                .take_while(|d| *d < e)
                .take(7)
                .any(|d| Days(days).contains(d.weekday())),
            _ => true,
        }
    }

    /// Local minutes of the day at which this element may switch on or off.
    pub fn boundary_minutes(&self) -> impl Iterator<Item = u16> + '_ {
        self.time_of_day
            .iter()
            .flat_map(|w| [w.start, w.end])
            .flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(h: u32, m: u32) -> State {
        State {
            local: NaiveDate::from_ymd_opt(2025, 1, 6) // a Monday
                .unwrap()
                .and_hms_opt(h, m, 0)
                .unwrap(),
            duration_s: 0,
            energy_wh: 0,
            power: None,
            current_ma: None,
        }
    }

    #[test]
    fn windows_wrap_and_end_at_midnight() {
        let night = TimeWindow {
            start: Some(22 * 60),
            end: Some(6 * 60),
        };
        assert!(night.contains(23 * 60));
        assert!(night.contains(0));
        assert!(!night.contains(6 * 60));
        assert!(!night.contains(12 * 60));
        let evening = TimeWindow {
            start: Some(18 * 60),
            end: Some(0),
        };
        assert!(evening.contains(23 * 60 + 59));
        assert!(!evening.contains(17 * 60 + 59));
        assert!(
            TimeWindow {
                start: Some(60),
                end: Some(60)
            }
            .is_empty()
        );
    }

    #[test]
    fn bounds_are_inclusive_below_and_exclusive_above() {
        let r = Restrictions {
            energy_wh: Range {
                min: Some(1000),
                max: Some(2000),
            },
            ..Default::default()
        };
        let mut s = at(12, 0);
        s.energy_wh = 999;
        assert!(!r.matches(&s));
        s.energy_wh = 1000;
        assert!(r.matches(&s));
        s.energy_wh = 2000;
        assert!(!r.matches(&s));
    }

    #[test]
    fn power_is_compared_exactly() {
        // max_power 16 kW; 1000 Wh in 225 s is exactly 16 kW (not below).
        let r = Restrictions {
            power_w: Range {
                min: None,
                max: Some(16_000),
            },
            ..Default::default()
        };
        let mut s = at(12, 0);
        s.power = Some((1000, 225));
        assert!(!r.matches(&s));
        s.power = Some((1000, 226));
        assert!(r.matches(&s));
        s.power = None;
        assert!(!r.matches(&s));
    }

    #[test]
    fn covering_is_field_by_field() {
        let any = Restrictions::default();
        let evening = Restrictions {
            time_of_day: Some(TimeWindow {
                start: Some(18 * 60),
                end: None,
            }),
            ..Default::default()
        };
        let late = Restrictions {
            time_of_day: Some(TimeWindow {
                start: Some(20 * 60),
                end: Some(22 * 60),
            }),
            days: Some(Days(0).with(Weekday::Sat)),
            ..Default::default()
        };
        assert!(any.covers(&evening));
        assert!(!evening.covers(&any));
        assert!(evening.covers(&late));
        assert!(!late.covers(&evening));
    }

    #[test]
    fn meeting_needs_every_field_to_share_a_value() {
        let window = |s: u16, e: u16| Restrictions {
            time_of_day: Some(TimeWindow {
                start: Some(s * 60),
                end: Some(e * 60),
            }),
            ..Default::default()
        };
        // [17, 20) and [19, 23) share 19:00-20:00; [17, 19) does not.
        assert!(window(17, 20).meets(&window(19, 23)));
        assert!(!window(17, 19).meets(&window(19, 23)));
        // A night window wrapping midnight meets an early morning one.
        assert!(window(22, 6).meets(&window(5, 8)));
        assert!(Restrictions::default().meets(&window(5, 8)));

        let kwh = |lo: i64, hi: i64| Restrictions {
            energy_wh: Range {
                min: Some(lo),
                max: Some(hi),
            },
            ..Default::default()
        };
        assert!(!kwh(0, 10_000).meets(&kwh(10_000, 20_000)));
        assert!(kwh(0, 10_001).meets(&kwh(10_000, 20_000)));
        let mut peak = window(17, 20);
        peak.days = Some(Days(0).with(Weekday::Mon));
        let mut weekend = window(17, 20);
        weekend.days = Some(Days(0).with(Weekday::Sat).with(Weekday::Sun));
        assert!(!peak.meets(&weekend));
    }

    #[test]
    fn a_short_date_range_holds_only_its_weekdays() {
        let day = |d: u32| NaiveDate::from_ymd_opt(2025, 1, d).unwrap();
        // 2025-01-06 is a Monday: [Mon 6th, Wed 8th) holds Monday and Tuesday.
        let early_week = Restrictions {
            start_date: Some(day(6)),
            end_date: Some(day(8)),
            ..Default::default()
        };
        let friday = Restrictions {
            days: Some(Days(0).with(Weekday::Fri)),
            ..Default::default()
        };
        let tuesday = Restrictions {
            days: Some(Days(0).with(Weekday::Tue)),
            ..Default::default()
        };
        assert!(!early_week.meets(&friday));
        assert!(early_week.meets(&tuesday));
        let later = Restrictions {
            start_date: Some(day(8)),
            ..Default::default()
        };
        assert!(!early_week.meets(&later));
    }
}
