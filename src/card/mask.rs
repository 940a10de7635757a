//! What of a card number may be shown: the last four always, the BIN only
//! when at least six digits stay hidden (PCI DSS 3.4.1 allows at most the
//! first six and last four; on a 12–15 digit number that would leave too
//! few hidden digits, so those show the last four only). Token layouts use
//! the same rule, which also keeps an FF1 domain at 10^6 or more.

use serde::Serialize;

/// Digits a number must keep hidden before its BIN may be shown.
pub const MIN_HIDDEN_DIGITS: usize = 6;
pub const BIN_LEN: usize = 6;
pub const LAST4_LEN: usize = 4;

/// How many leading digits of an `len`-digit number may be shown.
pub fn visible_head_len(len: usize) -> usize {
    if len >= BIN_LEN + MIN_HIDDEN_DIGITS + LAST4_LEN {
        BIN_LEN
    } else {
        0
    }
}

/// The masked form of a card number, e.g. `411111******1111`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MaskedPan(String);

impl MaskedPan {
    /// Masks ASCII digits; only the visible head and last four survive.
    pub(crate) fn from_digits(digits: &str) -> Self {
        let len = digits.len();
        let head = visible_head_len(len);
        let tail_from = len.saturating_sub(LAST4_LEN);
        let masked = digits
            .char_indices()
            .map(|(i, c)| if i < head || i >= tail_from { c } else { '*' })
            .collect();
        Self(masked)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for MaskedPan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The last four digits of a card number: metadata, readable without
/// detokenizing.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Last4(String);

impl Last4 {
    /// The last four of a digit string already known to be long enough.
    pub(crate) fn tail_of(digits: &str) -> Self {
        let from = digits.len().saturating_sub(LAST4_LEN);
        Self(digits.get(from..).unwrap_or_default().to_owned())
    }

    /// Four digits read back from storage.
    pub fn parse(s: &str) -> Option<Self> {
        (s.len() == LAST4_LEN && s.bytes().all(|b| b.is_ascii_digit())).then(|| Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The first six digits (issuer identification number), shown only under
/// the rule above.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Bin(String);

impl Bin {
    pub(crate) fn from_digits(digits: &str) -> Option<Self> {
        if visible_head_len(digits.len()) < BIN_LEN {
            return None;
        }
        let head = digits.get(..BIN_LEN)?;
        head.bytes()
            .all(|b| b.is_ascii_digit())
            .then(|| Self(head.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_keep_at_most_six_and_four() {
        assert_eq!(
            MaskedPan::from_digits("4111111111111111").as_str(),
            "411111******1111"
        );
        assert_eq!(
            MaskedPan::from_digits("6200000000000000005").as_str(),
            "620000*********0005"
        );
        // Too short to show the BIN and still hide six digits.
        assert_eq!(
            MaskedPan::from_digits("378282246310005").as_str(),
            "***********0005"
        );
        assert_eq!(
            MaskedPan::from_digits("501800000009").as_str(),
            "********0009"
        );
    }

    #[test]
    fn at_least_six_digits_stay_hidden() {
        for len in 12..=19 {
            let digits: String = "1234567890123456789".chars().take(len).collect();
            let m = MaskedPan::from_digits(&digits);
            let hidden = m.as_str().chars().filter(|c| *c == '*').count();
            assert!(hidden >= MIN_HIDDEN_DIGITS, "len {len}");
            assert!(hidden <= len - LAST4_LEN);
            assert_eq!(m.as_str().len(), len);
        }
    }

    #[test]
    fn bin_and_last4() {
        assert_eq!(
            Bin::from_digits("4111111111111111").unwrap().as_str(),
            "411111"
        );
        assert_eq!(Bin::from_digits("378282246310005"), None);
        assert_eq!(Last4::tail_of("378282246310005").as_str(), "0005");
        assert_eq!(Last4::parse("0005"), Some(Last4::tail_of("0005")));
        assert_eq!(Last4::parse("123"), None);
        assert_eq!(Last4::parse("12a4"), None);
    }
}
