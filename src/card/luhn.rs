//! The Luhn (mod 10) check over ASCII digits.

/// The Luhn sum of `digits` modulo 10; a number passes when it is 0.
/// Every byte must be an ASCII digit; callers check that first.
pub(crate) fn sum_mod10(digits: &[u8]) -> u8 {
    let mut sum: u32 = 0;
    for (i, d) in digits.iter().rev().enumerate() {
        let mut v = u32::from(d.wrapping_sub(b'0'));
        if i % 2 == 1 {
            v *= 2;
            if v > 9 {
                v -= 9;
            }
        }
        sum += v;
    }
    // sum % 10 < 10, so the cast cannot truncate.
    (sum % 10) as u8
}

/// Whether an ASCII digit string passes the Luhn check.
pub fn passes(digits: &[u8]) -> bool {
    !digits.is_empty() && sum_mod10(digits) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_numbers() {
        assert!(passes(b"79927398713"));
        assert!(!passes(b"79927398710"));
        assert!(passes(b"4111111111111111"));
        assert!(!passes(b"4111111111111112"));
        assert!(!passes(b""));
    }

    #[test]
    fn any_single_digit_change_breaks_the_check() {
        // Doubling is a permutation of 0..=9 after digit-summing, so a change
        // of one digit always moves the sum; token code relies on this.
        let base = *b"4111111111111111";
        for pos in 0..base.len() {
            for d in b'0'..=b'9' {
                if d == base[pos] {
                    continue;
                }
                let mut v = base;
                v[pos] = d;
                assert!(!passes(&v), "pos {pos} digit {d}");
            }
        }
    }
}
