//! Card numbers for tests, and a generator of valid ones per brand.

use proptest::prelude::*;

use super::{CardBrand, luhn};

/// Well-known test numbers, one or more per brand.
pub(crate) const KNOWN: &[(&str, CardBrand)] = &[
    ("4111111111111111", CardBrand::Visa),
    ("4222222222222", CardBrand::Visa),
    ("5555555555554444", CardBrand::Mastercard),
    ("2223003122003222", CardBrand::Mastercard),
    ("378282246310005", CardBrand::Amex),
    ("6011111111111117", CardBrand::Discover),
    ("3530111333300000", CardBrand::Jcb),
    ("6200000000000005", CardBrand::UnionPay),
    ("30569309025904", CardBrand::Diners),
    ("36227206271667", CardBrand::Diners),
    ("6759649826438453", CardBrand::Maestro),
];

/// Appends the digit that makes `body` pass Luhn.
pub(crate) fn with_check_digit(body: &str) -> String {
    let mut s = format!("{body}0");
    let sum = luhn::sum_mod10(s.as_bytes());
    s.pop();
    s.push(char::from(b'0' + (10 - sum) % 10));
    s
}

/// BIN prefixes covering each brand's ranges, edges included.
const PREFIXES: &[&str] = &[
    "4", "51", "55", "2221", "2720", "34", "37", "6011", "644", "649", "65", "3528", "3589", "62",
    "300", "305", "3095", "36", "38", "39", "50", "56", "58", "6304", "6390", "67",
];

/// Every (prefix, length) a brand issues, from `CardBrand::allows_length`.
fn brand_shapes() -> Vec<(String, usize)> {
    PREFIXES
        .iter()
        .flat_map(|p| {
            let brand = CardBrand::detect(format!("{p:0<12}").as_bytes());
            (12..=19)
                .filter(move |&len| brand.is_some_and(|b| b.allows_length(len)))
                .map(move |len| ((*p).to_owned(), len))
        })
        .collect()
}

/// Valid numbers of every brand and every length it issues.
pub(crate) fn valid_pan() -> impl Strategy<Value = String> {
    prop::sample::select(brand_shapes()).prop_flat_map(|(prefix, len)| {
        let fill = len - prefix.len() - 1;
        prop::collection::vec(0u8..10, fill).prop_map(move |rest| {
            let body: String = prefix
                .chars()
                .chain(rest.iter().map(|d| char::from(b'0' + d)))
                .collect();
            with_check_digit(&body)
        })
    })
}

#[test]
fn shapes_cover_every_brand_and_length() {
    let shapes = brand_shapes();
    let brands: std::collections::HashSet<_> = shapes
        .iter()
        .filter_map(|(p, _)| CardBrand::detect(format!("{p:0<12}").as_bytes()))
        .collect();
    assert_eq!(brands.len(), 8);
    for len in 12..=19 {
        assert!(shapes.iter().any(|(_, l)| *l == len), "{len}");
    }
    assert_eq!(
        PREFIXES.len(),
        shapes
            .iter()
            .map(|(p, _)| p)
            .collect::<std::collections::HashSet<_>>()
            .len()
    );
}
