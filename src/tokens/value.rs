//! The token string handed to callers.

use serde::{Deserialize, Serialize};

use super::TokenError;
use crate::card::{Last4, MAX_PAN_LEN, MIN_PAN_LEN, luhn};

/// A token: 12–19 digits that fail the Luhn check. No constructor accepts
/// a string that passes it, so a `TokenValue` is never a card number.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TokenValue(String);

impl TokenValue {
    pub fn parse(s: &str) -> Result<Self, TokenError> {
        let b = s.as_bytes();
        if !(MIN_PAN_LEN..=MAX_PAN_LEN).contains(&b.len()) || !b.iter().all(u8::is_ascii_digit) {
            return Err(TokenError::Malformed);
        }
        if luhn::passes(b) {
            return Err(TokenError::PassesLuhn);
        }
        Ok(Self(s.to_owned()))
    }

    /// Checks digits built by a token format.
    pub(super) fn from_digits(digits: &[u8]) -> Result<Self, TokenError> {
        let s = std::str::from_utf8(digits).map_err(|_| TokenError::Malformed)?;
        Self::parse(s)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn digit_count(&self) -> usize {
        self.0.len()
    }

    pub fn last4(&self) -> Last4 {
        Last4::tail_of(&self.0)
    }
}

impl TryFrom<String> for TokenValue {
    type Error = TokenError;

    fn try_from(s: String) -> Result<Self, TokenError> {
        Self::parse(&s)
    }
}

impl From<TokenValue> for String {
    fn from(t: TokenValue) -> String {
        t.0
    }
}

impl std::fmt::Display for TokenValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
