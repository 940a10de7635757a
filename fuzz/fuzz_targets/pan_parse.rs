//! Pan::parse on arbitrary text: never panics, and what it accepts or
//! refuses never leaks the digits it was given.
#![no_main]

use libfuzzer_sys::fuzz_target;
use voltvault::card::{Pan, luhn};

fuzz_target!(|input: &str| {
    let digits: String = input.chars().filter(char::is_ascii_digit).collect();
    match Pan::parse(input) {
        Ok(pan) => {
            let d = pan.expose_digits();
            assert_eq!(d, digits);
            assert!((12..=19).contains(&d.len()));
            assert!(luhn::passes(d.as_bytes()));
            assert!(pan.brand().allows_length(d.len()));
            let shown = format!("{pan:?}");
            assert!(!shown.contains(d));
            let masked = pan.masked();
            assert_eq!(masked.as_str().len(), d.len());
            assert!(masked.as_str().chars().filter(|c| *c == '*').count() >= 6);
        }
        Err(err) => {
            let text = format!("{err} {err:?}");
            if digits.len() >= 4 {
                for w in digits.as_bytes().windows(4) {
                    let w = std::str::from_utf8(w).unwrap_or_default();
                    assert!(!text.contains(w), "error echoes input digits");
                }
            }
        }
    }
});
