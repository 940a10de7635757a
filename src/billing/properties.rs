//! Properties over generated tariffs and meter timelines.

use chrono::DateTime;
use proptest::prelude::*;
use rust_decimal::Decimal;

use super::pricing::{Cost, MeterReading, price_session};
use super::tariff::{Dimension, Tariff};

fn decimal(max_mantissa: i64) -> impl Strategy<Value = String> {
    (0..=max_mantissa, 0u32..=4).prop_map(|(m, s)| Decimal::new(m, s).to_string())
}

fn vat() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        Just(None),
        (0i64..=2500).prop_map(|v| Some(Decimal::new(v, 2).to_string()))
    ]
}

fn component(kind: &'static str) -> impl Strategy<Value = String> {
    (decimal(50_000), vat(), 1i64..=3600).prop_map(move |(price, vat, step)| {
        let vat = vat.map(|v| format!(r#","vat":"{v}""#)).unwrap_or_default();
        format!(r#"{{"type":"{kind}","price":"{price}"{vat},"step_size":{step}}}"#)
    })
}

/// One element with every dimension and no restrictions, plus optional
/// minimum and maximum prices: the price of each dimension never switches.
fn flat_rate_tariff() -> impl Strategy<Value = Tariff> {
    (
        component("ENERGY"),
        component("TIME"),
        component("PARKING_TIME"),
        component("FLAT"),
        proptest::option::of((0i64..5_000, 0i64..1_000, 0i64..50_000, 0i64..10_000)),
        prop_oneof![Just("UTC"), Just("Europe/Berlin"), Just("+05:30")],
    )
        .prop_map(|(e, t, p, f, limits, zone)| {
            let limits = limits
                .map(|(lo, lo_vat, span, hi_vat)| {
                    format!(
                        r#","min_price":{{"excl_vat":{lo},"incl_vat":{}}},"max_price":{{"excl_vat":{},"incl_vat":{}}}"#,
                        lo + lo_vat,
                        lo + span,
                        lo + lo_vat + span + hi_vat
                    )
                })
                .unwrap_or_default();
            Tariff::from_json(&format!(
                r#"{{"id":"p","version":1,"currency":"EUR","time_zone":"{zone}"{limits},"elements":[{{"price_components":[{e},{t},{p},{f}]}}]}}"#
            ))
            .unwrap()
        })
}

fn restrictions() -> impl Strategy<Value = String> {
    (
        proptest::option::of((0u16..96, 0u16..96)),
        proptest::option::of(1u8..127),
        proptest::option::of((0i64..40, 1i64..40)),
        proptest::option::of((0i64..24, 1i64..24)),
        proptest::option::of((0i64..100, 1i64..100)),
    )
        .prop_map(|(window, days, kwh, duration, power)| {
            let mut fields: Vec<String> = Vec::new();
            if let Some((a, b)) = window {
                let (a, b) = (a * 15, b * 15);
                if a != b {
                    fields.push(format!(
                        r#""start_time":"{:02}:{:02}","end_time":"{:02}:{:02}""#,
                        a / 60,
                        a % 60,
                        b / 60,
                        b % 60
                    ));
                }
            }
            if let Some(mask) = days {
                let names = super::ocpi_tariff::DAYS;
                let list: Vec<String> = (0..7)
                    .filter(|i| mask & (1 << i) != 0)
                    .map(|i| format!("\"{}\"", names[i]))
                    .collect();
                fields.push(format!(r#""day_of_week":[{}]"#, list.join(",")));
            }
            if let Some((lo, span)) = kwh {
                fields.push(format!(
                    r#""min_kwh":"{}","max_kwh":"{}""#,
                    Decimal::new(lo * 5, 1),
                    Decimal::new((lo + span) * 5, 1)
                ));
            }
            if let Some((lo, span)) = duration {
                fields.push(format!(
                    r#""min_duration":{},"max_duration":{}"#,
                    lo * 300,
                    (lo + span) * 300
                ));
            }
            if let Some((lo, span)) = power {
                fields.push(format!(r#""min_power":"{lo}","max_power":"{}""#, lo + span));
            }
            format!("{{{}}}", fields.join(","))
        })
}

/// Up to four restricted elements, then a fallback element pricing every
/// metered dimension (so every Wh and second is priced by someone).
fn restricted_tariff() -> impl Strategy<Value = Option<Tariff>> {
    (
        proptest::collection::vec(
            (prop_oneof![Just("ENERGY"), Just("TIME"), Just("PARKING_TIME"), Just("FLAT")], decimal(90_000), restrictions()),
            0..4,
        ),
        prop_oneof![Just("UTC"), Just("Europe/Berlin"), Just("America/New_York")],
    )
        .prop_map(|(elements, zone)| {
            let mut list: Vec<String> = elements
                .into_iter()
                .map(|(kind, price, r)| {
                    format!(r#"{{"price_components":[{{"type":"{kind}","price":"{price}","vat":"19","step_size":60}}],"restrictions":{r}}}"#)
                })
                .collect();
            list.push(
                r#"{"price_components":[{"type":"ENERGY","price":"0.3"},{"type":"TIME","price":"1.5","step_size":300},{"type":"PARKING_TIME","price":"4"}]}"#
                    .to_string(),
            );
            // Some generated elements shadow others; those documents are
            // rightly refused and the case is skipped.
            Tariff::from_json(&format!(
                r#"{{"id":"r","version":1,"currency":"EUR","time_zone":"{zone}","elements":[{}]}}"#,
                list.join(",")
            ))
            .ok()
        })
}

/// Intervals of (seconds, Wh) after a start instant and register.
fn timeline() -> impl Strategy<Value = (i64, i64, Vec<(i64, i64)>)> {
    (
        1_735_689_600i64..1_767_225_600,
        0i64..1_000_000,
        proptest::collection::vec((0i64..=5400, prop_oneof![Just(0i64), 1i64..40_000]), 0..25),
    )
}

fn readings(start: i64, register: i64, steps: &[(i64, i64)]) -> Vec<MeterReading> {
    let (mut t, mut e) = (start, register);
    let mut out = vec![MeterReading::new(
        DateTime::from_timestamp(t, 0).unwrap(),
        e,
    )];
    for (dt, de) in steps {
        t += dt;
        e += de;
        out.push(MeterReading::new(
            DateTime::from_timestamp(t, 0).unwrap(),
            e,
        ));
    }
    out
}

fn check_shape(c: &Cost) {
    assert!(c.excl_vat.value >= 0 && c.vat.value >= 0, "{c:?}");
    assert_eq!(c.excl_vat.value + c.vat.value, c.incl_vat.value);
    assert!(
        c.lines
            .iter()
            .all(|l| l.amount_excl_vat.value >= 0 && l.vat.value >= 0)
    );
    assert!(c.lines.iter().all(|l| l.billed_quantity >= l.quantity));
    assert_eq!(
        c.lines.iter().map(|l| l.amount_excl_vat.value).sum::<i64>(),
        c.lines_excl_vat.value
    );
    assert_eq!(
        c.lines.iter().map(|l| l.vat.value).sum::<i64>(),
        c.lines_incl_vat.value - c.lines_excl_vat.value
    );
}

proptest! {
    #[test]
    fn cost_is_never_negative_and_lines_add_up(t in restricted_tariff(), (start, reg, steps) in timeline()) {
        prop_assume!(t.is_some());
        let Some(t) = t else { return Ok(()) };
        let c = price_session(&t, &readings(start, reg, &steps)).unwrap();
        check_shape(&c);
    }

    #[test]
    fn every_wh_and_second_is_priced_exactly_once(t in restricted_tariff(), (start, reg, steps) in timeline()) {
        prop_assume!(t.is_some());
        let Some(t) = t else { return Ok(()) };
        let c = price_session(&t, &readings(start, reg, &steps)).unwrap();
        let sum = |k: Dimension| c.lines.iter().filter(|l| l.kind == k).map(|l| l.quantity).sum::<i64>();
        let energy: i64 = steps.iter().map(|s| s.1).sum();
        let charging: i64 = steps.iter().filter(|s| s.1 > 0).map(|s| s.0).sum();
        let idle: i64 = steps.iter().filter(|s| s.1 == 0).map(|s| s.0).sum();
        prop_assert_eq!(sum(Dimension::Energy), energy);
        prop_assert_eq!(sum(Dimension::Time), charging);
        prop_assert_eq!(sum(Dimension::ParkingTime), idle);
    }

    #[test]
    fn a_reading_on_the_straight_line_changes_nothing(
        t in restricted_tariff(),
        (start, reg, steps) in timeline(),
        at in 0usize..25,
    ) {
        // Even intervals, then the midpoint of one of them as an extra
        // reading: the pieces priced are the same, so is every figure.
        prop_assume!(t.is_some() && !steps.is_empty());
        let Some(t) = t else { return Ok(()) };
        let doubled: Vec<(i64, i64)> = steps.iter().map(|(dt, de)| (dt * 2, de * 2)).collect();
        let i = at % doubled.len();
        let (dt, de) = doubled[i];
        let mut split = doubled.clone();
        split.splice(i..=i, [(dt / 2, de / 2), (dt / 2, de / 2)]);
        let a = price_session(&t, &readings(start, reg, &doubled)).unwrap();
        let b = price_session(&t, &readings(start, reg, &split)).unwrap();
        prop_assert_eq!(a, b);
    }

    #[test]
    fn more_energy_never_costs_less(
        t in flat_rate_tariff(),
        (start, reg, steps) in timeline(),
        extra in proptest::collection::vec(0i64..20_000, 25),
    ) {
        // Same intervals, each charging interval delivering at least as much.
        let more: Vec<(i64, i64)> = steps
            .iter()
            .zip(&extra)
            .map(|(s, x)| (s.0, if s.1 > 0 { s.1 + x } else { 0 }))
            .collect();
        let a = price_session(&t, &readings(start, reg, &steps)).unwrap();
        let b = price_session(&t, &readings(start, reg, &more)).unwrap();
        prop_assert!(b.excl_vat.value >= a.excl_vat.value, "{a:?}\n{b:?}");
        prop_assert!(b.incl_vat.value >= a.incl_vat.value, "{a:?}\n{b:?}");
    }

    #[test]
    fn live_cost_never_exceeds_the_final_cost(t in flat_rate_tariff(), (start, reg, steps) in timeline()) {
        let all = readings(start, reg, &steps);
        let last = price_session(&t, &all).unwrap();
        check_shape(&last);
        let mut previous = 0;
        for n in 1..=all.len() {
            let live = price_session(&t, &all[..n]).unwrap();
            prop_assert!(live.incl_vat.value <= last.incl_vat.value);
            prop_assert!(live.excl_vat.value <= last.excl_vat.value);
            // And the live cost only goes up as the session runs.
            prop_assert!(live.incl_vat.value >= previous);
            previous = live.incl_vat.value;
        }
    }
}
