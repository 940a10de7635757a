//! Money: integer minor units with the ISO 4217 exponent of the currency.
//! No floating point anywhere money flows. On the wire:
//! `{"value": 5000, "currency": "EUR"}` is 50.00 EUR.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use utoipa::ToSchema;

/// An ISO 4217 currency this deployment can price and charge in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Currency {
    code: [u8; 3],
    exponent: u8,
}

/// The currencies of the EU/EEA, the UK, Switzerland and the US; add rows as
/// operators need them. (code, minor-unit exponent)
const CURRENCIES: &[(&str, u8)] = &[
    ("EUR", 2),
    ("GBP", 2),
    ("CHF", 2),
    ("SEK", 2),
    ("NOK", 2),
    ("DKK", 2),
    ("PLN", 2),
    ("CZK", 2),
    ("HUF", 2),
    ("RON", 2),
    ("BGN", 2),
    ("ISK", 0),
    ("USD", 2),
    ("JPY", 0),
    ("KWD", 3),
];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    #[error("currency: not a supported ISO 4217 code")]
    UnknownCurrency,
    #[error("currency: amounts in different currencies")]
    CurrencyMismatch,
    #[error("value: out of range")]
    Overflow,
    #[error("value: must not be negative")]
    Negative,
}

impl MoneyError {
    pub fn code(&self) -> &'static str {
        match self {
            MoneyError::UnknownCurrency => "unknown_currency",
            MoneyError::CurrencyMismatch => "currency_mismatch",
            MoneyError::Overflow => "amount_out_of_range",
            MoneyError::Negative => "negative_amount",
        }
    }
}

impl Currency {
    pub fn parse(code: &str) -> Result<Self, MoneyError> {
        CURRENCIES
            .iter()
            .find(|(c, _)| *c == code)
            .map(|(c, exponent)| {
                let b = c.as_bytes();
                Currency {
                    code: [b[0], b[1], b[2]],
                    exponent: *exponent,
                }
            })
            .ok_or(MoneyError::UnknownCurrency)
    }

    pub fn code(&self) -> &str {
        // Built only from the ASCII table above.
        std::str::from_utf8(&self.code).unwrap_or("XXX")
    }

    /// Digits after the decimal point (2 for EUR, 0 for JPY, 3 for KWD).
    pub fn exponent(&self) -> u8 {
        self.exponent
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl Serialize for Currency {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.code())
    }
}

impl<'de> Deserialize<'de> for Currency {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let code = String::deserialize(d)?;
        Currency::parse(&code).map_err(serde::de::Error::custom)
    }
}

/// An amount in minor units of a currency. May be negative (refunds,
/// corrections); use [`Money::non_negative`] where that is not allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
pub struct Money {
    /// Integer minor units: cents for EUR.
    pub value: i64,
    #[schema(value_type = String, example = "EUR")]
    pub currency: Currency,
}

impl Money {
    pub fn new(value: i64, currency: Currency) -> Self {
        Self { value, currency }
    }

    pub fn zero(currency: Currency) -> Self {
        Self { value: 0, currency }
    }

    pub fn non_negative(self) -> Result<Self, MoneyError> {
        if self.value < 0 {
            Err(MoneyError::Negative)
        } else {
            Ok(self)
        }
    }

    pub fn checked_add(self, other: Money) -> Result<Money, MoneyError> {
        self.same_currency(other)?;
        self.value
            .checked_add(other.value)
            .map(|value| Money::new(value, self.currency))
            .ok_or(MoneyError::Overflow)
    }

    pub fn checked_sub(self, other: Money) -> Result<Money, MoneyError> {
        self.same_currency(other)?;
        self.value
            .checked_sub(other.value)
            .map(|value| Money::new(value, self.currency))
            .ok_or(MoneyError::Overflow)
    }

    pub fn min(self, other: Money) -> Result<Money, MoneyError> {
        self.same_currency(other)?;
        Ok(if self.value <= other.value {
            self
        } else {
            other
        })
    }

    fn same_currency(self, other: Money) -> Result<(), MoneyError> {
        if self.currency == other.currency {
            Ok(())
        } else {
            Err(MoneyError::CurrencyMismatch)
        }
    }
}

impl fmt::Display for Money {
    /// `12.34 EUR`, `-0.05 EUR`, `500 JPY`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let exp = u32::from(self.currency.exponent);
        let sign = if self.value < 0 { "-" } else { "" };
        let abs = self.value.unsigned_abs();
        if exp == 0 {
            return write!(f, "{sign}{abs} {}", self.currency);
        }
        let unit = 10u64.pow(exp);
        write!(
            f,
            "{sign}{}.{:0width$} {}",
            abs / unit,
            abs % unit,
            self.currency,
            width = exp as usize
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eur(v: i64) -> Money {
        Money::new(v, Currency::parse("EUR").unwrap())
    }

    #[test]
    fn exponents_follow_iso_4217() {
        assert_eq!(Currency::parse("EUR").unwrap().exponent(), 2);
        assert_eq!(Currency::parse("JPY").unwrap().exponent(), 0);
        assert_eq!(Currency::parse("KWD").unwrap().exponent(), 3);
        assert_eq!(Currency::parse("eur"), Err(MoneyError::UnknownCurrency));
        assert_eq!(Currency::parse("XYZ"), Err(MoneyError::UnknownCurrency));
    }

    #[test]
    fn display_uses_the_exponent() {
        assert_eq!(eur(5000).to_string(), "50.00 EUR");
        assert_eq!(eur(-5).to_string(), "-0.05 EUR");
        assert_eq!(
            Money::new(500, Currency::parse("JPY").unwrap()).to_string(),
            "500 JPY"
        );
        assert_eq!(
            Money::new(1234, Currency::parse("KWD").unwrap()).to_string(),
            "1.234 KWD"
        );
    }

    #[test]
    fn arithmetic_is_checked() {
        assert_eq!(eur(100).checked_add(eur(23)).unwrap(), eur(123));
        assert_eq!(eur(100).checked_sub(eur(123)).unwrap(), eur(-23));
        assert_eq!(eur(i64::MAX).checked_add(eur(1)), Err(MoneyError::Overflow));
        let gbp = Money::new(1, Currency::parse("GBP").unwrap());
        assert_eq!(eur(1).checked_add(gbp), Err(MoneyError::CurrencyMismatch));
        assert_eq!(eur(-1).non_negative(), Err(MoneyError::Negative));
    }

    #[test]
    fn json_shape() {
        let m: Money = serde_json::from_str(r#"{"value": 5000, "currency": "EUR"}"#).unwrap();
        assert_eq!(m, eur(5000));
        assert_eq!(
            serde_json::to_string(&m).unwrap(),
            r#"{"value":5000,"currency":"EUR"}"#
        );
        assert!(serde_json::from_str::<Money>(r#"{"value": 50.5, "currency": "EUR"}"#).is_err());
        assert!(serde_json::from_str::<Money>(r#"{"value": 5, "currency": "XXX"}"#).is_err());
    }
}
