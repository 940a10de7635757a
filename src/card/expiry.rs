//! Card expiry dates. A card is good through the last day of its month.

use chrono::{DateTime, Datelike, Utc};
use serde::Serialize;

use super::CardError;
use crate::clock::Clock;

/// How far ahead an expiry may lie; issuers stay well within this.
const MAX_YEARS_AHEAD: u16 = 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct Expiry {
    month: u8,
    year: u16,
}

impl Expiry {
    /// An expiry as a card presents it, refused if it has passed by the
    /// clock's "now" or lies implausibly far ahead. Two-digit years are
    /// read as 20YY, as on magnetic stripe and chip data.
    pub fn parse(month: u32, year: u32, clock: &dyn Clock) -> Result<Self, CardError> {
        let expiry = Self::new(month, year)?;
        let now = clock.now();
        if expiry.is_expired_at(now) {
            return Err(CardError::Expired);
        }
        let this_year = u16::try_from(now.year()).map_err(|_| CardError::ExpiryYear)?;
        if expiry.year > this_year.saturating_add(MAX_YEARS_AHEAD) {
            return Err(CardError::ExpiryYear);
        }
        Ok(expiry)
    }

    /// An expiry checked for shape only, for dates read back from storage
    /// where being in the past is a fact, not an input error.
    pub fn new(month: u32, year: u32) -> Result<Self, CardError> {
        let month = u8::try_from(month)
            .ok()
            .filter(|m| (1..=12).contains(m))
            .ok_or(CardError::ExpiryMonth)?;
        let year = match year {
            0..=99 => 2000 + year,
            2000..=2199 => year,
            _ => return Err(CardError::ExpiryYear),
        };
        let year = u16::try_from(year).map_err(|_| CardError::ExpiryYear)?;
        Ok(Self { month, year })
    }

    pub fn month(self) -> u8 {
        self.month
    }

    pub fn year(self) -> u16 {
        self.year
    }

    /// Whether the card can no longer be used at `now` (UTC).
    pub fn is_expired_at(self, now: DateTime<Utc>) -> bool {
        let (y, m) = (now.year(), now.month());
        (i32::from(self.year), u32::from(self.month)) < (y, m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::FixedClock;
    use chrono::TimeZone;

    fn clock(y: i32, m: u32, d: u32) -> FixedClock {
        FixedClock::new(Utc.with_ymd_and_hms(y, m, d, 12, 0, 0).unwrap())
    }

    #[test]
    fn good_through_the_end_of_the_month() {
        let c = clock(2026, 11, 30);
        assert_eq!(
            Expiry::parse(11, 2026, &c).unwrap(),
            Expiry {
                month: 11,
                year: 2026
            }
        );
        assert_eq!(Expiry::parse(10, 2026, &c), Err(CardError::Expired));
        assert_eq!(Expiry::parse(12, 2025, &c), Err(CardError::Expired));
        c.advance(chrono::Duration::days(1));
        assert_eq!(Expiry::parse(11, 2026, &c), Err(CardError::Expired));
        assert!(Expiry::parse(12, 2026, &c).is_ok());
    }

    #[test]
    fn two_digit_years() {
        let c = clock(2026, 1, 1);
        let e = Expiry::parse(3, 29, &c).unwrap();
        assert_eq!((e.month(), e.year()), (3, 2029));
        assert_eq!(Expiry::parse(3, 25, &c), Err(CardError::Expired));
    }

    #[test]
    fn rejects_bad_months_and_years() {
        let c = clock(2026, 1, 1);
        for m in [0, 13, 255, 256, u32::MAX] {
            assert_eq!(Expiry::parse(m, 2030, &c), Err(CardError::ExpiryMonth));
        }
        for y in [100, 1999, 2047, 2200, u32::MAX] {
            assert_eq!(Expiry::parse(1, y, &c), Err(CardError::ExpiryYear), "{y}");
        }
        assert!(Expiry::parse(12, 2046, &c).is_ok());
        assert!(!Expiry::parse(1, 2030, &c).unwrap().is_expired_at(c.now()));
    }

    #[test]
    fn errors_name_the_field() {
        assert_eq!(CardError::Expired.field(), "exp_month");
        assert_eq!(CardError::ExpiryYear.field(), "exp_year");
        assert!(CardError::Expired.to_string().starts_with("exp_month:"));
    }
}
