use chrono::{TimeZone, Utc};
use proptest::prelude::*;

use super::test_cards::{KNOWN, valid_pan, with_check_digit};
use super::*;
use crate::clock::FixedClock;

/// No run of the input's digits (of four or more) may appear in `text`.
fn assert_no_digits_of(input: &str, text: &str) {
    let digits: String = input.chars().filter(char::is_ascii_digit).collect();
    if digits.len() >= 4 {
        for window in digits.as_bytes().windows(4) {
            let w = std::str::from_utf8(window).unwrap();
            assert!(!text.contains(w), "{text:?} echoes {w}");
        }
    }
}

fn parse_err(input: &str) -> CardError {
    let err = Pan::parse(input).unwrap_err();
    assert_no_digits_of(input, &err.to_string());
    assert_no_digits_of(input, &format!("{err:?}"));
    assert_eq!(err.field(), "number");
    err
}

#[test]
fn known_numbers_parse_with_their_brand() {
    for (number, brand) in KNOWN {
        let pan = Pan::parse(number).unwrap();
        assert_eq!(pan.brand(), *brand, "{number}");
        assert_eq!(pan.expose_digits(), *number);
        assert_eq!(pan.digit_count(), number.len());
        assert_eq!(pan.last4().as_str(), &number[number.len() - 4..]);
    }
}

#[test]
fn spaces_and_dashes_are_dropped() {
    let pan = Pan::parse(" 4111-1111 1111-1111 ").unwrap();
    assert_eq!(pan.expose_digits(), "4111111111111111");
}

#[test]
fn rejects_non_digits() {
    for input in [
        "4111 1111 1111 111a",
        "4111.1111.1111.1111",
        "4111111111111111\n",
        "４１１１１１１１１１１１１１１１",
        "+4111111111111111",
    ] {
        assert_eq!(parse_err(input), CardError::NumberNotDigits, "{input:?}");
    }
}

#[test]
fn rejects_wrong_lengths() {
    for input in [
        "",
        "   ",
        "42424242424",
        &with_check_digit("4111111111111111111"),
        &"4".repeat(400),
    ] {
        assert_eq!(parse_err(input), CardError::NumberLength, "{input:?}");
    }
    // Lengths in range the brand does not issue.
    assert_eq!(
        parse_err(&with_check_digit("41111111111111")),
        CardError::NumberBrandLength(CardBrand::Visa)
    );
    assert_eq!(
        parse_err(&with_check_digit("3782822463100051")),
        CardError::NumberBrandLength(CardBrand::Amex)
    );
    assert_eq!(
        parse_err(&with_check_digit("55555555555544")),
        CardError::NumberBrandLength(CardBrand::Mastercard)
    );
}

#[test]
fn rejects_failed_luhn() {
    for input in ["4111111111111112", "5555555555554440", "378282246310006"] {
        assert_eq!(parse_err(input), CardError::NumberLuhn, "{input}");
    }
}

#[test]
fn rejects_unknown_brands() {
    // Luhn-valid numbers outside every supported BIN range.
    for body in [
        "100000000000000",
        "900000000000000",
        "222000000000000",
        "272100000000000",
    ] {
        let input = with_check_digit(body);
        assert_eq!(parse_err(&input), CardError::NumberUnknownBrand, "{input}");
    }
}

#[test]
fn debug_shows_brand_and_mask_only() {
    let pan = Pan::parse("4111111111111111").unwrap();
    let dbg = format!("{pan:?}");
    assert_eq!(dbg, r#"Pan { brand: Visa, masked: "411111******1111" }"#);
    let amex = Pan::parse("378282246310005").unwrap();
    assert_eq!(amex.masked().as_str(), "***********0005");
    assert_eq!(amex.bin(), None);
    assert_eq!(pan.bin().unwrap().as_str(), "411111");
}

#[test]
fn zeroize_clears_the_digits() {
    use zeroize::Zeroize;
    let mut pan = Pan::parse("4111111111111111").unwrap();
    pan.zeroize();
    assert_eq!(pan.expose_digits(), "");
    fn zeroized_on_drop<T: zeroize::ZeroizeOnDrop>() {}
    zeroized_on_drop::<Pan>();
}

#[test]
fn card_checks_number_then_expiry() {
    let clock = FixedClock::new(Utc.with_ymd_and_hms(2026, 11, 25, 0, 0, 0).unwrap());
    let card = Card::parse("5555 5555 5555 4444", 12, 2028, &clock).unwrap();
    assert_eq!(card.pan.brand(), CardBrand::Mastercard);
    assert_eq!((card.expiry.month(), card.expiry.year()), (12, 2028));
    let err = Card::parse("5555555555554444", 10, 2026, &clock).unwrap_err();
    assert_eq!(err, CardError::Expired);
    assert_no_digits_of("5555555555554444", &err.to_string());
    assert_eq!(
        Card::parse("5555555555554445", 12, 2028, &clock).unwrap_err(),
        CardError::NumberLuhn
    );
    let dbg = format!("{card:?}");
    assert!(!dbg.contains("5555555555554444"));
}

#[test]
fn error_codes_are_distinct() {
    let all = [
        CardError::NumberNotDigits,
        CardError::NumberLength,
        CardError::NumberLuhn,
        CardError::NumberUnknownBrand,
        CardError::NumberBrandLength(CardBrand::Visa),
        CardError::ExpiryMonth,
        CardError::ExpiryYear,
        CardError::Expired,
        CardError::CvcNotDigits,
        CardError::CvcLength(3),
    ];
    let codes: std::collections::HashSet<_> = all.iter().map(|e| e.code()).collect();
    assert_eq!(codes.len(), all.len());
    for e in all {
        assert!(e.to_string().starts_with(e.field()), "{e}");
    }
}

proptest! {
    #[test]
    fn generated_pans_parse(number in valid_pan()) {
        let pan = Pan::parse(&number).unwrap();
        prop_assert_eq!(pan.expose_digits(), number.as_str());
        let masked = pan.masked();
        prop_assert!(!masked.as_str().contains(&number[..number.len() - 4]));
        let dbg = format!("{pan:?}");
        prop_assert!(!dbg.contains(&number));
    }

    #[test]
    fn any_one_digit_typo_is_caught(number in valid_pan(), pos in any::<prop::sample::Index>(), delta in 1u8..10) {
        let mut bytes = number.into_bytes();
        let i = pos.index(bytes.len());
        bytes[i] = b'0' + (bytes[i] - b'0' + delta) % 10;
        let typo = String::from_utf8(bytes).unwrap();
        let err = Pan::parse(&typo).unwrap_err();
        prop_assert!(matches!(err, CardError::NumberLuhn), "{:?}", err);
    }

    #[test]
    fn parse_never_panics_or_echoes(input in "[0-9 a-z-]{0,40}") {
        if let Err(err) = Pan::parse(&input) {
            assert_no_digits_of(&input, &err.to_string());
        }
    }
}
