//! Which digits of a PAN a token keeps in clear.

use serde::{Deserialize, Serialize};

use crate::card::mask::{LAST4_LEN, visible_head_len};

/// A tenant's policy for the clear digits of its tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeptDigits {
    #[default]
    LastFour,
    /// The BIN as well, where the number is long enough that six digits
    /// stay hidden (16 digits or more; see `card::mask`).
    BinAndLastFour,
}

impl KeptDigits {
    /// The range of hidden digits in an `len`-digit number.
    pub(super) fn hidden(self, len: usize) -> std::ops::Range<usize> {
        let head = match self {
            KeptDigits::LastFour => 0,
            KeptDigits::BinAndLastFour => visible_head_len(len),
        };
        head..len.saturating_sub(LAST4_LEN)
    }
}
