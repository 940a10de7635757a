//! Card brands, detected from the issuer identification number (BIN).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CardBrand {
    Visa,
    Mastercard,
    Amex,
    Discover,
    Jcb,
    UnionPay,
    Diners,
    Maestro,
}

/// A BIN range: numbers whose first `width` digits, read as an integer,
/// lie in `low..=high`.
struct Range {
    width: usize,
    low: u32,
    high: u32,
    brand: CardBrand,
}

const fn r(width: usize, low: u32, high: u32, brand: CardBrand) -> Range {
    Range {
        width,
        low,
        high,
        brand,
    }
}

/// Ranges are tried in order, so narrower ranges that sit inside a wider
/// one of another brand come first (6011 before Maestro's 6x, and so on).
const RANGES: &[Range] = &[
    r(2, 34, 34, CardBrand::Amex),
    r(2, 37, 37, CardBrand::Amex),
    r(4, 3528, 3589, CardBrand::Jcb),
    r(3, 300, 305, CardBrand::Diners),
    r(4, 3095, 3095, CardBrand::Diners),
    r(2, 36, 36, CardBrand::Diners),
    r(2, 38, 39, CardBrand::Diners),
    r(1, 4, 4, CardBrand::Visa),
    r(2, 51, 55, CardBrand::Mastercard),
    r(4, 2221, 2720, CardBrand::Mastercard),
    r(4, 6011, 6011, CardBrand::Discover),
    r(3, 644, 649, CardBrand::Discover),
    r(2, 65, 65, CardBrand::Discover),
    r(2, 62, 62, CardBrand::UnionPay),
    r(2, 50, 50, CardBrand::Maestro),
    r(2, 56, 58, CardBrand::Maestro),
    r(4, 6304, 6304, CardBrand::Maestro),
    r(4, 6390, 6390, CardBrand::Maestro),
    r(2, 67, 67, CardBrand::Maestro),
];

impl CardBrand {
    /// The brand whose BIN range holds these ASCII digits, if any.
    pub fn detect(digits: &[u8]) -> Option<CardBrand> {
        RANGES.iter().find_map(|range| {
            let prefix = digits.get(..range.width)?;
            let value = prefix.iter().try_fold(0u32, |acc, d| {
                d.is_ascii_digit().then(|| acc * 10 + u32::from(d - b'0'))
            })?;
            (range.low..=range.high)
                .contains(&value)
                .then_some(range.brand)
        })
    }

    /// Whether the brand issues numbers of this many digits.
    pub fn allows_length(self, len: usize) -> bool {
        match self {
            CardBrand::Visa => matches!(len, 13 | 16 | 19),
            CardBrand::Mastercard => len == 16,
            CardBrand::Amex => len == 15,
            CardBrand::Discover | CardBrand::Jcb | CardBrand::UnionPay => (16..=19).contains(&len),
            CardBrand::Diners => (14..=19).contains(&len),
            CardBrand::Maestro => (12..=19).contains(&len),
        }
    }

    /// The number of digits in this brand's card verification code.
    pub fn cvc_len(self) -> usize {
        match self {
            CardBrand::Amex => 4,
            _ => 3,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            CardBrand::Visa => "visa",
            CardBrand::Mastercard => "mastercard",
            CardBrand::Amex => "amex",
            CardBrand::Discover => "discover",
            CardBrand::Jcb => "jcb",
            CardBrand::UnionPay => "unionpay",
            CardBrand::Diners => "diners",
            CardBrand::Maestro => "maestro",
        }
    }
}

impl std::fmt::Display for CardBrand {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn detect(prefix: &str) -> Option<CardBrand> {
        // Pad to a full length: detection reads prefixes only.
        let digits = format!("{prefix:0<16}");
        CardBrand::detect(digits.as_bytes())
    }

    #[test]
    fn brand_table() {
        use CardBrand::*;
        let table: &[(&str, Option<CardBrand>)] = &[
            ("4", Some(Visa)),
            ("49", Some(Visa)),
            ("51", Some(Mastercard)),
            ("55", Some(Mastercard)),
            ("2220", None),
            ("2221", Some(Mastercard)),
            ("2500", Some(Mastercard)),
            ("2720", Some(Mastercard)),
            ("2721", None),
            ("34", Some(Amex)),
            ("37", Some(Amex)),
            ("35", None),
            ("6011", Some(Discover)),
            ("6012", None),
            ("643", None),
            ("644", Some(Discover)),
            ("649", Some(Discover)),
            ("65", Some(Discover)),
            ("3527", None),
            ("3528", Some(Jcb)),
            ("3589", Some(Jcb)),
            ("3590", None),
            ("62", Some(UnionPay)),
            ("300", Some(Diners)),
            ("305", Some(Diners)),
            ("306", None),
            ("3095", Some(Diners)),
            ("36", Some(Diners)),
            ("38", Some(Diners)),
            ("39", Some(Diners)),
            ("50", Some(Maestro)),
            ("5018", Some(Maestro)),
            ("56", Some(Maestro)),
            ("58", Some(Maestro)),
            ("6304", Some(Maestro)),
            ("6759", Some(Maestro)),
            ("59", None),
            ("1", None),
            ("9", None),
        ];
        for (prefix, want) in table {
            assert_eq!(detect(prefix), *want, "prefix {prefix}");
        }
    }

    #[test]
    fn short_or_non_digit_input_has_no_brand() {
        assert_eq!(CardBrand::detect(b""), None);
        assert_eq!(CardBrand::detect(b"3"), None);
        assert_eq!(CardBrand::detect(b"4"), Some(CardBrand::Visa));
        assert_eq!(CardBrand::detect(b"x4"), None);
    }

    #[test]
    fn lengths_and_cvc() {
        assert!(CardBrand::Visa.allows_length(13));
        assert!(!CardBrand::Visa.allows_length(15));
        assert!(CardBrand::Amex.allows_length(15));
        assert!(!CardBrand::Amex.allows_length(16));
        assert!(!CardBrand::Mastercard.allows_length(19));
        assert!(CardBrand::Maestro.allows_length(12));
        assert!(!CardBrand::Diners.allows_length(13));
        assert_eq!(CardBrand::Amex.cvc_len(), 4);
        assert_eq!(CardBrand::Visa.cvc_len(), 3);
    }

    #[test]
    fn serde_is_lowercase() {
        assert_eq!(
            serde_json::to_string(&CardBrand::UnionPay).unwrap(),
            "\"unionpay\""
        );
        assert_eq!(
            serde_json::from_str::<CardBrand>("\"mastercard\"").unwrap(),
            CardBrand::Mastercard
        );
        for b in [CardBrand::Visa, CardBrand::Amex, CardBrand::Jcb] {
            assert_eq!(serde_json::to_string(&b).unwrap(), format!("\"{b}\""));
        }
    }
}
