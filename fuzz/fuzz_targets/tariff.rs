//! Tariff documents and meter timelines from arbitrary bytes: parsing never
//! panics, every refusal has a code and names its field, and whatever
//! parses prices to a well-formed, non-negative cost and a bounded display.
//! Input: tariff JSON, a NUL byte, then (seconds: u16, Wh: u16) pairs.
#![no_main]

use chrono::DateTime;
use libfuzzer_sys::fuzz_target;
use voltvault::billing::{MAX_DISPLAY_CHARS, MeterReading, Tariff, price_display, price_session};

fuzz_target!(|data: &[u8]| {
    let (doc, rest) = match data.iter().position(|b| *b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let Ok(json) = std::str::from_utf8(doc) else { return };
    let tariff = match Tariff::from_json(json) {
        Ok(t) => t,
        Err(err) => {
            assert!(!err.code().is_empty());
            assert!(err.to_string().starts_with(&err.field));
            return;
        }
    };
    let (mut t, mut e) = (1_750_000_000i64, 0i64);
    let mut readings = vec![MeterReading::new(DateTime::from_timestamp(t, 0).unwrap(), e)];
    for pair in rest.chunks_exact(4) {
        t += i64::from(u16::from_le_bytes([pair[0], pair[1]]));
        e += i64::from(u16::from_le_bytes([pair[2], pair[3]]));
        readings.push(MeterReading::new(DateTime::from_timestamp(t, 0).unwrap(), e));
    }
    if let Ok(cost) = price_session(&tariff, &readings) {
        assert!(cost.excl_vat.value >= 0 && cost.vat.value >= 0);
        assert_eq!(cost.excl_vat.value + cost.vat.value, cost.incl_vat.value);
        let lines: i64 = cost.lines.iter().map(|l| l.amount_excl_vat.value).sum();
        assert_eq!(lines, cost.lines_excl_vat.value);
    }
    if let Ok(text) = price_display(&tariff, readings[0].at) {
        assert!(text.chars().count() <= MAX_DISPLAY_CHARS);
    }
});
