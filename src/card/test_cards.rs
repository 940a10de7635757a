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

/// A BIN prefix and the lengths to try for each brand.
fn brand_shapes() -> Vec<(&'static str, Vec<usize>)> {
    vec![
        ("4", vec![13, 16, 19]),
        ("51", vec![16]),
        ("2221", vec![16]),
        ("2720", vec![16]),
        ("34", vec![15]),
        ("37", vec![15]),
        ("6011", vec![16, 17, 18, 19]),
        ("645", vec![16, 19]),
        ("65", vec![16, 19]),
        ("3528", vec![16, 19]),
        ("3589", vec![16, 19]),
        ("62", vec![16, 17, 18, 19]),
        ("300", vec![14, 16, 19]),
        ("36", vec![14]),
        ("38", vec![16]),
        ("50", vec![12, 13, 16, 19]),
        ("6759", vec![12, 16, 19]),
    ]
}

/// Valid numbers of every brand and every length it issues (sampled).
pub(crate) fn valid_pan() -> impl Strategy<Value = String> {
    let shapes: Vec<(String, usize)> = brand_shapes()
        .into_iter()
        .flat_map(|(p, lens)| lens.into_iter().map(move |l| (p.to_owned(), l)))
        .collect();
    prop::sample::select(shapes).prop_flat_map(|(prefix, len)| {
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
