//! The tariff's time zone: an IANA name (daylight saving time followed) or a
//! fixed UTC offset. Restrictions on time of day, date and weekday are read
//! in this zone.

use std::str::FromStr;

use chrono::{DateTime, FixedOffset, NaiveDateTime, Offset, TimeZone, Utc};
use chrono_tz::Tz;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TariffZone {
    Named(Tz),
    Fixed(FixedOffset),
}

impl TariffZone {
    /// `Europe/Berlin`, `UTC`, or an offset such as `+01:00`.
    pub fn parse(s: &str) -> Option<Self> {
        if s.starts_with('+') || s.starts_with('-') {
            return FixedOffset::from_str(s).ok().map(TariffZone::Fixed);
        }
        Tz::from_str(s).ok().map(TariffZone::Named)
    }

    pub fn name(&self) -> String {
        match self {
            TariffZone::Named(tz) => tz.name().to_string(),
            TariffZone::Fixed(off) => off.to_string(),
        }
    }

    pub fn local(&self, t: DateTime<Utc>) -> NaiveDateTime {
        match self {
            TariffZone::Named(tz) => t.with_timezone(tz).naive_local(),
            TariffZone::Fixed(off) => t.with_timezone(off).naive_local(),
        }
    }

    fn offset_secs(&self, t: DateTime<Utc>) -> i32 {
        match self {
            TariffZone::Named(tz) => tz.offset_from_utc_datetime(&t.naive_utc()).fix(),
            TariffZone::Fixed(off) => *off,
        }
        .local_minus_utc()
    }

    /// The instants at which the local clock shows `local`: one normally,
    /// two when the clock is set back, and in a spring-forward gap the
    /// instant the gap ends (the first moment local time is past `local`).
    pub fn instants(&self, local: NaiveDateTime) -> Vec<DateTime<Utc>> {
        let resolved = match self {
            TariffZone::Named(tz) => tz.from_local_datetime(&local).map(|t| t.to_utc()),
            TariffZone::Fixed(off) => off.from_local_datetime(&local).map(|t| t.to_utc()),
        };
        match resolved {
            chrono::LocalResult::Single(t) => vec![t],
            chrono::LocalResult::Ambiguous(a, b) => vec![a, b],
            chrono::LocalResult::None => {
                // Gaps are whole minutes and shorter than a day.
                let mut probe = local;
                for _ in 0..(24 * 60) {
                    probe += chrono::Duration::minutes(1);
                    if let Some(t) = self.instants_exact(probe) {
                        return vec![t];
                    }
                }
                Vec::new()
            }
        }
    }

    fn instants_exact(&self, local: NaiveDateTime) -> Option<DateTime<Utc>> {
        match self {
            TariffZone::Named(tz) => tz
                .from_local_datetime(&local)
                .earliest()
                .map(|t| t.to_utc()),
            TariffZone::Fixed(off) => off
                .from_local_datetime(&local)
                .earliest()
                .map(|t| t.to_utc()),
        }
    }

    /// The first instant in `(a, b]` whose UTC offset differs from `a`'s, to
    /// the second. Assumes at most one change in the span (spans passed in
    /// are cut at every local midnight, so shorter than a day and a half).
    pub fn offset_change(&self, a: DateTime<Utc>, b: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let oa = self.offset_secs(a);
        if b <= a || self.offset_secs(b) == oa {
            return None;
        }
        let (mut lo, mut hi) = (a.timestamp(), b.timestamp());
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            let t = DateTime::from_timestamp(mid, 0)?;
            if self.offset_secs(t) == oa {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        DateTime::from_timestamp(hi, 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().to_utc()
    }

    fn local(s: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M").unwrap()
    }

    #[test]
    fn parses_names_and_offsets() {
        assert!(matches!(
            TariffZone::parse("Europe/Berlin"),
            Some(TariffZone::Named(_))
        ));
        assert!(matches!(
            TariffZone::parse("+05:30"),
            Some(TariffZone::Fixed(_))
        ));
        assert_eq!(TariffZone::parse("Mars/Olympus"), None);
        assert_eq!(TariffZone::parse("+25:00"), None);
    }

    #[test]
    fn dst_gap_and_overlap() {
        let berlin = TariffZone::parse("Europe/Berlin").unwrap();
        // 2025-03-30: 02:00 CET jumps to 03:00 CEST (01:00 UTC).
        assert_eq!(
            berlin.instants(local("2025-03-30 02:30")),
            vec![utc("2025-03-30T01:00:00Z")]
        );
        // 2025-10-26: 03:00 CEST goes back to 02:00 CET; 02:30 happens twice.
        assert_eq!(
            berlin.instants(local("2025-10-26 02:30")),
            vec![utc("2025-10-26T00:30:00Z"), utc("2025-10-26T01:30:00Z")]
        );
        assert_eq!(
            berlin.offset_change(utc("2025-10-25T22:00:00Z"), utc("2025-10-26T22:00:00Z")),
            Some(utc("2025-10-26T01:00:00Z"))
        );
        assert_eq!(
            berlin.local(utc("2025-07-01T16:00:00Z")),
            NaiveDate::from_ymd_opt(2025, 7, 1)
                .unwrap()
                .and_hms_opt(18, 0, 0)
                .unwrap()
        );
    }
}
