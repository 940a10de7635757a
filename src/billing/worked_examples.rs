//! Worked examples. The `ocpi_*` tests are the examples of the OCPI 2.2.1
//! tariffs module, written in this crate's JSON form with the spec's
//! figures; the others are ours, with the arithmetic in the comments.

use chrono::{DateTime, Utc};

use super::pricing::{Cost, MeterReading, PriceLimitApplied, price_session};
use super::tariff::{Dimension, Tariff};

fn tariff(currency: &str, zone: &str, extra: &str, elements: &str) -> Tariff {
    Tariff::from_json(&format!(
        r#"{{"id":"t","version":1,"currency":"{currency}","time_zone":"{zone}"{extra},"elements":{elements}}}"#
    ))
    .unwrap()
}

fn eur(elements: &str) -> Tariff {
    tariff("EUR", "UTC", "", elements)
}

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().to_utc()
}

fn r(s: &str, wh: i64) -> MeterReading {
    MeterReading::new(at(s), wh)
}

fn ra(s: &str, wh: i64, amps: i64) -> MeterReading {
    MeterReading {
        current_ma: Some(amps * 1000),
        ..r(s, wh)
    }
}

/// (excl. VAT, incl. VAT) in minor units.
fn totals(c: &Cost) -> (i64, i64) {
    assert_eq!(c.excl_vat.value + c.vat.value, c.incl_vat.value);
    (c.excl_vat.value, c.incl_vat.value)
}

fn line(c: &Cost, kind: Dimension, element: usize) -> (i64, i64, i64) {
    let l = c
        .lines
        .iter()
        .find(|l| l.kind == kind && l.element == element)
        .unwrap_or_else(|| panic!("no {kind} line for element {element}: {c:#?}"));
    (l.quantity, l.billed_quantity, l.amount_excl_vat.value)
}

const ENERGY_025_VAT10: &str = r#"{"type":"ENERGY","price":"0.25","vat":"10","step_size":1}"#;
const START_050_VAT20: &str = r#"{"type":"FLAT","price":"0.50","vat":"20"}"#;

#[test]
fn ocpi_simple_025_per_kwh() {
    // 20 kWh × 0.25 = 5.00 excl.; + 10 % = 5.50 incl.
    let t = eur(&format!(r#"[{{"price_components":[{ENERGY_025_VAT10}]}}]"#));
    let c = price_session(
        &t,
        &[
            r("2025-06-02T10:00:00Z", 0),
            r("2025-06-02T11:00:00Z", 20_000),
        ],
    )
    .unwrap();
    assert_eq!(totals(&c), (500, 550));
}

#[test]
fn ocpi_025_per_kwh_and_start_fee() {
    // 0.50 start (20 % VAT: 0.10) + 5.00 energy (10 %: 0.50) = 5.50 / 6.10.
    let t = eur(&format!(
        r#"[{{"price_components":[{START_050_VAT20},{ENERGY_025_VAT10}]}}]"#
    ));
    let c = price_session(
        &t,
        &[
            r("2025-06-02T10:00:00Z", 0),
            r("2025-06-02T11:00:00Z", 20_000),
        ],
    )
    .unwrap();
    assert_eq!(totals(&c), (550, 610));
    assert_eq!(line(&c, Dimension::Flat, 0), (1, 1, 50));
}

#[test]
fn ocpi_025_per_kwh_and_min_price() {
    let t = tariff(
        "EUR",
        "UTC",
        r#","min_price":{"excl_vat":50,"incl_vat":55}"#,
        &format!(r#"[{{"price_components":[{ENERGY_025_VAT10}]}}]"#),
    );
    let c = price_session(
        &t,
        &[
            r("2025-06-02T10:00:00Z", 0),
            r("2025-06-02T11:00:00Z", 20_000),
        ],
    )
    .unwrap();
    assert_eq!(totals(&c), (500, 550));
    assert_eq!(c.limit_applied, None);
    // 1 kWh: 0.25 / 0.28 (0.275 rounds up), below the minimum: 0.50 / 0.55.
    let c = price_session(
        &t,
        &[
            r("2025-06-02T10:00:00Z", 0),
            r("2025-06-02T10:05:00Z", 1_000),
        ],
    )
    .unwrap();
    assert_eq!((c.lines_excl_vat.value, c.lines_incl_vat.value), (25, 28));
    assert_eq!(totals(&c), (50, 55));
    assert_eq!(c.limit_applied, Some(PriceLimitApplied::MinPrice));
}

#[test]
fn ocpi_025_per_kwh_parking_and_start_fee() {
    // 20 kWh, then 40 min parked; parking billed per 15 min, so 45 min:
    // 0.50 + 5.00 + 45/60 × 2.00 = 1.50 -> 7.00; VAT 0.10 + 0.50 + 0.30 -> 7.90.
    let t = eur(&format!(
        r#"[{{"price_components":[{START_050_VAT20},{ENERGY_025_VAT10},{{"type":"PARKING_TIME","price":"2.00","vat":"20","step_size":900}}]}}]"#
    ));
    let c = price_session(
        &t,
        &[
            r("2025-06-02T10:00:00Z", 0),
            r("2025-06-02T11:00:00Z", 20_000),
            r("2025-06-02T11:40:00Z", 20_000),
        ],
    )
    .unwrap();
    assert_eq!(totals(&c), (700, 790));
    assert_eq!(line(&c, Dimension::ParkingTime, 0), (2400, 2700, 150));
}

#[test]
fn ocpi_start_fee_and_max_price() {
    let t = tariff(
        "EUR",
        "UTC",
        r#","max_price":{"excl_vat":1000,"incl_vat":1100}"#,
        &format!(r#"[{{"price_components":[{START_050_VAT20},{ENERGY_025_VAT10}]}}]"#),
    );
    // 50 kWh: 0.50 + 12.50 = 13.00 / 14.35, capped at 10.00 / 11.00.
    let c = price_session(
        &t,
        &[
            r("2025-06-02T10:00:00Z", 0),
            r("2025-06-02T11:00:00Z", 50_000),
        ],
    )
    .unwrap();
    assert_eq!(
        (c.lines_excl_vat.value, c.lines_incl_vat.value),
        (1300, 1435)
    );
    assert_eq!(totals(&c), (1000, 1100));
    assert_eq!(c.limit_applied, Some(PriceLimitApplied::MaxPrice));
    // 30 kWh: 0.50 + 7.50 = 8.00; VAT 0.10 + 0.75 -> 8.85.
    let c = price_session(
        &t,
        &[
            r("2025-06-02T10:00:00Z", 0),
            r("2025-06-02T11:00:00Z", 30_000),
        ],
    )
    .unwrap();
    assert_eq!(totals(&c), (800, 885));
    assert_eq!(c.limit_applied, None);
}

#[test]
fn ocpi_2_euro_per_hour_charging_only() {
    // 2.5 h charging × 2.00 = 5.00 / 5.50; the half hour parked after is free.
    let t =
        eur(r#"[{"price_components":[{"type":"TIME","price":"2.00","vat":"10","step_size":60}]}]"#);
    let c = price_session(
        &t,
        &[
            r("2025-06-02T10:00:00Z", 0),
            r("2025-06-02T12:30:00Z", 40_000),
            r("2025-06-02T13:00:00Z", 40_000),
        ],
    )
    .unwrap();
    assert_eq!(totals(&c), (500, 550));
    assert_eq!(line(&c, Dimension::Time, 0), (9000, 9000, 500));
}

#[test]
fn ocpi_3_per_hour_and_5_per_hour_parking() {
    // 150 min × 3.00/h = 7.50 (VAT 0.75); 42 min parked billed as 45 (300 s
    // steps) × 5.00/h = 3.75 (VAT 0.75): 11.25 / 12.75.
    let t = eur(
        r#"[{"price_components":[{"type":"TIME","price":"3.00","vat":"10","step_size":60},{"type":"PARKING_TIME","price":"5.00","vat":"20","step_size":300}]}]"#,
    );
    let c = price_session(
        &t,
        &[
            r("2025-06-02T10:00:00Z", 0),
            r("2025-06-02T12:30:00Z", 30_000),
            r("2025-06-02T13:12:00Z", 30_000),
        ],
    )
    .unwrap();
    assert_eq!(totals(&c), (1125, 1275));
    assert_eq!(line(&c, Dimension::ParkingTime, 0), (2520, 2700, 375));
}

#[test]
fn ocpi_ad_hoc_1_90_per_hour() {
    // 2.5 h × 1.90 = 4.75; VAT 5.2 % = 0.247 -> 0.25; 5.00 incl.
    let t = eur(
        r#"[{"price_components":[{"type":"TIME","price":"1.90","vat":"5.2","step_size":300}]}]"#,
    );
    let c = price_session(
        &t,
        &[
            r("2025-06-02T10:00:00Z", 0),
            r("2025-06-02T12:30:00Z", 20_000),
        ],
    )
    .unwrap();
    assert_eq!(totals(&c), (475, 500));
}

#[test]
fn ocpi_energy_step_of_100_wh() {
    // 20.45 kWh billed as 20.5 kWh (100 Wh steps). At the 0.22 EUR/kWh the
    // example finally applies: 4.51 excl., 0.451 VAT -> 4.96 incl.
    let step100 = |price: &str| {
        eur(&format!(
            r#"[{{"price_components":[{{"type":"ENERGY","price":"{price}","vat":"10","step_size":100}}]}}]"#
        ))
    };
    let readings = [
        r("2025-06-02T10:00:00Z", 0),
        r("2025-06-02T11:00:00Z", 20_450),
    ];
    let c = price_session(&step100("0.22"), &readings).unwrap();
    assert_eq!(totals(&c), (451, 496));
    assert_eq!(line(&c, Dimension::Energy, 0), (20_450, 20_500, 451));
    // At the announced 0.25 the same session is 20.5 × 0.25 = 5.125 -> 5.13
    // (the spec prints 5.50 here, which its own inputs do not give).
    let c = price_session(&step100("0.25"), &readings).unwrap();
    assert_eq!(c.excl_vat.value, 513);
}

#[test]
fn ocpi_energy_step_sizes_25_and_500() {
    // The step_size note: 101..=125 Wh with step 25 bills 125 Wh = 0.03125
    // -> 0.03 EUR; with step 500 bills 500 Wh = 0.125 -> 0.13 EUR.
    for (step, wh, cents) in [(25, 101, 3), (25, 125, 3), (500, 1, 13), (500, 116, 13)] {
        let t = eur(&format!(
            r#"[{{"price_components":[{{"type":"ENERGY","price":"0.25","step_size":{step}}}]}}]"#
        ));
        let c = price_session(
            &t,
            &[r("2025-06-02T10:00:00Z", 0), r("2025-06-02T10:01:00Z", wh)],
        )
        .unwrap();
        assert_eq!(c.excl_vat.value, cents, "step {step}, {wh} Wh");
    }
}

pub(super) const OCPI_COMPLEX: &str = r#"[
  {"price_components":[{"type":"FLAT","price":"2.50","vat":"15","step_size":1}]},
  {"price_components":[{"type":"TIME","price":"1.00","vat":"20","step_size":900}],
   "restrictions":{"max_current":"32.00"}},
  {"price_components":[{"type":"TIME","price":"2.00","vat":"20","step_size":600}],
   "restrictions":{"min_current":"32.00","day_of_week":["MONDAY","TUESDAY","WEDNESDAY","THURSDAY","FRIDAY"]}},
  {"price_components":[{"type":"TIME","price":"1.25","vat":"20","step_size":600}],
   "restrictions":{"min_current":"32.00","day_of_week":["SATURDAY","SUNDAY"]}},
  {"price_components":[{"type":"PARKING_TIME","price":"5.00","vat":"10","step_size":300}],
   "restrictions":{"start_time":"09:00","end_time":"18:00","day_of_week":["MONDAY","TUESDAY","WEDNESDAY","THURSDAY","FRIDAY"]}},
  {"price_components":[{"type":"PARKING_TIME","price":"6.00","vat":"10","step_size":300}],
   "restrictions":{"start_time":"10:00","end_time":"17:00","day_of_week":["SATURDAY"]}}
]"#;

#[test]
fn ocpi_complex_monday_morning() {
    // Monday 09:30, 147 min charging at 16 A, then 42 min parked.
    // Start 2.50 (VAT 15 % = 0.375); time < 32 A: 147 -> 150 min (900 s
    // steps) × 1.00/h = 2.50 (VAT 0.50); parking weekday 09-18: 42 -> 45 min
    // × 5.00/h = 3.75 (VAT 0.375). 8.75 excl.; VAT 1.25 exactly; 10.00 incl.
    let t = eur(OCPI_COMPLEX);
    let c = price_session(
        &t,
        &[
            r("2025-06-02T09:30:00Z", 0),
            ra("2025-06-02T11:57:00Z", 8_000, 16),
            ra("2025-06-02T12:39:00Z", 8_000, 0),
        ],
    )
    .unwrap();
    assert_eq!(totals(&c), (875, 1000));
    assert_eq!(line(&c, Dimension::Time, 1), (8820, 9000, 250));
    assert_eq!(line(&c, Dimension::ParkingTime, 4), (2520, 2700, 375));
    // Line VAT shares add up: 0.38 + 0.50 + 0.37.
    assert_eq!(c.lines.iter().map(|l| l.vat.value).sum::<i64>(), 125);
}

#[test]
fn ocpi_complex_saturday_afternoon() {
    // Saturday 13:30, 114 min at 43 A, then 71 min parked.
    // Start 2.50 (0.375); time >= 32 A at the weekend: 114 -> 120 min × 1.25
    // = 2.50 (0.50); parking Saturday 10-17: 71 -> 75 min × 6.00 = 7.50
    // (0.75). 12.50 excl.; VAT 1.625 -> 1.63; 14.13 incl.
    let t = eur(OCPI_COMPLEX);
    let c = price_session(
        &t,
        &[
            r("2025-06-07T13:30:00Z", 0),
            ra("2025-06-07T15:24:00Z", 25_000, 43),
            ra("2025-06-07T16:35:00Z", 25_000, 0),
        ],
    )
    .unwrap();
    assert_eq!(totals(&c), (1250, 1413));
    assert_eq!(line(&c, Dimension::Time, 3), (6840, 7200, 250));
    assert_eq!(line(&c, Dimension::ParkingTime, 5), (4260, 4500, 750));
}

pub(super) const OCPI_STEP_SIZE: &str = r#"[
  {"price_components":[{"type":"TIME","price":"1.20","step_size":1800},{"type":"PARKING_TIME","price":"1.00","step_size":900}],
   "restrictions":{"start_time":"00:00","end_time":"17:00"}},
  {"price_components":[{"type":"TIME","price":"2.40","step_size":900},{"type":"PARKING_TIME","price":"1.00","step_size":900}],
   "restrictions":{"start_time":"17:00","end_time":"20:00"}},
  {"price_components":[{"type":"TIME","price":"2.40","step_size":900}],
   "restrictions":{"start_time":"20:00","end_time":"23:59"}}
]"#;

#[test]
fn ocpi_step_size_switching_element_1() {
    // 16:55, 10 min charging, 2 min parked. Time: 5 min before 17:00 × 1.20
    // = 0.10; 10 min total rounded to the last step (900 s) = 15 min, so 10
    // min after 17:00 × 2.40 = 0.40.
    let t = eur(OCPI_STEP_SIZE);
    let c = price_session(
        &t,
        &[
            r("2025-06-02T16:55:00Z", 0),
            r("2025-06-02T17:05:00Z", 3_000),
            r("2025-06-02T17:07:00Z", 3_000),
        ],
    )
    .unwrap();
    assert_eq!(line(&c, Dimension::Time, 0), (300, 300, 10));
    assert_eq!(line(&c, Dimension::Time, 1), (300, 600, 40));
    // The spec lets the 2 parked minutes vanish into the rounded-up charging
    // time and totals 0.50. Its complex example (above) bills parking on top
    // of rounded-up charging time; we keep dimensions apart, as it does, so
    // the 2 min are billed as one 900 s step at 1.00/h = 0.25.
    assert_eq!(line(&c, Dimension::ParkingTime, 1), (120, 900, 25));
    assert_eq!(c.excl_vat.value, 75);
}

#[test]
fn ocpi_step_size_switching_element_2() {
    // 16:35, 35 min charging: 25 min × 1.20 = 0.50; 35 min rounded to 45 by
    // the last step (900 s), so 20 min × 2.40 = 0.80. Total 1.30.
    let t = eur(OCPI_STEP_SIZE);
    let c = price_session(
        &t,
        &[
            r("2025-06-02T16:35:00Z", 0),
            r("2025-06-02T17:10:00Z", 7_000),
        ],
    )
    .unwrap();
    assert_eq!(line(&c, Dimension::Time, 0), (1500, 1500, 50));
    assert_eq!(line(&c, Dimension::Time, 1), (600, 1200, 80));
    assert_eq!(c.excl_vat.value, 130);
}

#[test]
fn ocpi_step_size_switching_to_free_parking() {
    // 19:55, 10 min charging, 2 min parked after 20:00 (no parking price
    // then). Time: 5 + 5 min, 15 min billed × 2.40 = 0.60. Parking free.
    let t = eur(OCPI_STEP_SIZE);
    let c = price_session(
        &t,
        &[
            r("2025-06-02T19:55:00Z", 0),
            r("2025-06-02T20:05:00Z", 3_000),
            r("2025-06-02T20:07:00Z", 3_000),
        ],
    )
    .unwrap();
    assert_eq!(line(&c, Dimension::Time, 1), (300, 300, 20));
    assert_eq!(line(&c, Dimension::Time, 2), (300, 600, 40));
    assert!(c.lines.iter().all(|l| l.kind != Dimension::ParkingTime));
    assert_eq!(c.excl_vat.value, 60);
}

pub(super) const OCPI_MAX_POWER: &str = r#"[
  {"price_components":[{"type":"ENERGY","price":"0.20","vat":"20"}],"restrictions":{"max_power":"16.00"}},
  {"price_components":[{"type":"ENERGY","price":"0.35","vat":"20"}],"restrictions":{"max_power":"32.00"}},
  {"price_components":[{"type":"ENERGY","price":"0.50","vat":"20"}]}
]"#;

#[test]
fn ocpi_max_power() {
    // 1 kWh at 6 kW (10 min), 40 kWh at 48 kW (50 min), 0.5 kWh at 4 kW
    // (7.5 min): 1.5 kWh × 0.20 + 40 kWh × 0.50 = 0.30 + 20.00 = 20.30.
    let t = eur(OCPI_MAX_POWER);
    let c = price_session(
        &t,
        &[
            r("2025-06-02T10:00:00Z", 0),
            r("2025-06-02T10:10:00Z", 1_000),
            r("2025-06-02T11:00:00Z", 41_000),
            r("2025-06-02T11:07:30Z", 41_500),
        ],
    )
    .unwrap();
    assert_eq!(c.excl_vat.value, 2030);
    assert_eq!(line(&c, Dimension::Energy, 0), (1_500, 1_500, 30));
    assert_eq!(line(&c, Dimension::Energy, 2), (40_000, 40_000, 2000));
}

#[test]
fn ocpi_max_duration() {
    // Free for 30 min, 0.25/kWh until 60 min, 0.40 after. 40 min session:
    // 5 kWh in the first 30 min free, 1.2 kWh after × 0.25 = 0.30 (+20 %).
    let t = eur(
        r#"[{"price_components":[{"type":"ENERGY","price":"0.00","vat":"20"}],"restrictions":{"max_duration":1800}},
            {"price_components":[{"type":"ENERGY","price":"0.25","vat":"20"}],"restrictions":{"max_duration":3600}},
            {"price_components":[{"type":"ENERGY","price":"0.40","vat":"20"}]}]"#,
    );
    let c = price_session(
        &t,
        &[
            r("2025-06-02T10:00:00Z", 0),
            r("2025-06-02T10:30:00Z", 5_000),
            r("2025-06-02T10:40:00Z", 6_200),
        ],
    )
    .unwrap();
    assert_eq!(totals(&c), (30, 36));
}

pub(super) const OCPI_FIRST_KWH_FREE: &str = r#"[
  {"price_components":[{"type":"ENERGY","price":"0.0"}],"restrictions":{"max_kwh":"1.0"}},
  {"price_components":[{"type":"ENERGY","price":"0.2"}],"restrictions":{"min_kwh":"1.0"}}
]"#;

#[test]
fn ocpi_first_kwh_free_split_inside_an_interval() {
    // The first kWh free, then 0.20/kWh; one reading pair of 20 kWh is cut at
    // 1000 Wh: 19 kWh × 0.20 = 3.80.
    let t = eur(OCPI_FIRST_KWH_FREE);
    let c = price_session(
        &t,
        &[
            r("2025-06-02T10:00:00Z", 0),
            r("2025-06-02T11:00:00Z", 20_000),
        ],
    )
    .unwrap();
    assert_eq!(line(&c, Dimension::Energy, 0), (1_000, 1_000, 0));
    assert_eq!(line(&c, Dimension::Energy, 1), (19_000, 19_000, 380));
}

#[test]
fn energy_and_time() {
    // 0.39/kWh + 1.20/h charging, 19 % VAT; 45 min for 30.5 kWh:
    // 30.5 × 0.39 = 11.895 -> 11.90; 0.75 h × 1.20 = 0.90; 12.80 excl.;
    // VAT (11.90 + 0.90) × 0.19 = 2.432 -> 2.43; 15.23 incl.
    let t = eur(
        r#"[{"price_components":[{"type":"ENERGY","price":"0.39","vat":"19"},{"type":"TIME","price":"1.20","vat":"19"}]}]"#,
    );
    let c = price_session(
        &t,
        &[
            r("2025-06-02T10:00:00Z", 100_000),
            r("2025-06-02T10:45:00Z", 130_500),
        ],
    )
    .unwrap();
    assert_eq!(totals(&c), (1280, 1523));
    assert_eq!(line(&c, Dimension::Energy, 0), (30_500, 30_500, 1190));
}

#[test]
fn step_of_300_s_bills_8_minutes_as_10() {
    // 8 min charging at 6.00/h with 300 s steps: 2 steps = 10 min = 1.00.
    let t = eur(r#"[{"price_components":[{"type":"TIME","price":"6.00","step_size":300}]}]"#);
    let c = price_session(
        &t,
        &[
            r("2025-06-02T10:00:00Z", 0),
            r("2025-06-02T10:08:00Z", 2_000),
        ],
    )
    .unwrap();
    assert_eq!(line(&c, Dimension::Time, 0), (480, 600, 100));
    // Exactly 10 min stays 10 min.
    let c = price_session(
        &t,
        &[
            r("2025-06-02T10:00:00Z", 0),
            r("2025-06-02T10:10:00Z", 2_000),
        ],
    )
    .unwrap();
    assert_eq!(line(&c, Dimension::Time, 0), (600, 600, 100));
}

#[test]
fn parking_between_charging_stretches() {
    // Charging 10:00-10:30, idle 10:30-10:50 (meter still), charging
    // 10:50-11:00, idle till 11:10. Parking 30 min × 3.00/h = 1.50; time
    // 40 min × 0.60/h = 0.40.
    let t = eur(
        r#"[{"price_components":[{"type":"TIME","price":"0.60"},{"type":"PARKING_TIME","price":"3.00"}]}]"#,
    );
    let c = price_session(
        &t,
        &[
            r("2025-06-02T10:00:00Z", 0),
            r("2025-06-02T10:30:00Z", 5_000),
            r("2025-06-02T10:50:00Z", 5_000),
            r("2025-06-02T11:00:00Z", 6_000),
            r("2025-06-02T11:10:00Z", 6_000),
        ],
    )
    .unwrap();
    assert_eq!(line(&c, Dimension::Time, 0), (2400, 2400, 40));
    assert_eq!(line(&c, Dimension::ParkingTime, 0), (1800, 1800, 150));
}

const EVENING: &str = r#"[
  {"price_components":[{"type":"ENERGY","price":"0.45","vat":"19"}],"restrictions":{"start_time":"18:00","end_time":"22:00"}},
  {"price_components":[{"type":"ENERGY","price":"0.30","vat":"19"}]}
]"#;

#[test]
fn time_of_day_switches_price_at_18_00_local() {
    // Berlin summer (UTC+2). 17:30-18:30 local at a steady 22 kW, one reading
    // pair: 22 kWh/h spread evenly, 11 kWh before 18:00 and 11 kWh after.
    // 11 × 0.30 = 3.30; 11 × 0.45 = 4.95; 8.25 excl.; VAT 1.5675 -> 1.57.
    let t = tariff("EUR", "Europe/Berlin", "", EVENING);
    let c = price_session(
        &t,
        &[
            r("2025-06-02T15:30:00Z", 0),
            r("2025-06-02T16:30:00Z", 22_000),
        ],
    )
    .unwrap();
    assert_eq!(line(&c, Dimension::Energy, 1), (11_000, 11_000, 330));
    assert_eq!(line(&c, Dimension::Energy, 0), (11_000, 11_000, 495));
    assert_eq!(totals(&c), (825, 982));
}

#[test]
fn time_of_day_uneven_split_and_dst() {
    // 17:50-18:30 local (40 min, 10 000 Wh): 10 min before 18:00 gets
    // floor(10 000 × 600 / 2400) = 2500 Wh, 7500 Wh after.
    let t = tariff("EUR", "Europe/Berlin", "", EVENING);
    let c = price_session(
        &t,
        &[
            r("2025-06-02T15:50:00Z", 0),
            r("2025-06-02T16:30:00Z", 10_000),
        ],
    )
    .unwrap();
    assert_eq!(line(&c, Dimension::Energy, 1).0, 2_500);
    assert_eq!(line(&c, Dimension::Energy, 0).0, 7_500);
    // In winter (UTC+1) the same UTC times are 16:50-17:30 local: all day price.
    let c = price_session(
        &t,
        &[
            r("2025-12-01T15:50:00Z", 0),
            r("2025-12-01T16:30:00Z", 10_000),
        ],
    )
    .unwrap();
    assert_eq!(c.lines.len(), 1);
    assert_eq!(line(&c, Dimension::Energy, 1).0, 10_000);
}

#[test]
fn daylight_saving_change_inside_a_window() {
    // 02:30-03:00 local is dearer. On 2025-10-26 Berlin goes from 03:00 CEST
    // back to 02:00 CET (01:00 UTC), so 02:30-03:00 happens twice: 00:30-01:00
    // and 01:30-02:00 UTC. Session 00:00-02:00 UTC, 1 Wh per second.
    let t = tariff(
        "EUR",
        "Europe/Berlin",
        "",
        r#"[{"price_components":[{"type":"ENERGY","price":"1.00"}],"restrictions":{"start_time":"02:30","end_time":"03:00"}},
            {"price_components":[{"type":"ENERGY","price":"0.10"}]}]"#,
    );
    let c = price_session(
        &t,
        &[
            r("2025-10-26T00:00:00Z", 0),
            r("2025-10-26T02:00:00Z", 7_200),
        ],
    )
    .unwrap();
    assert_eq!(line(&c, Dimension::Energy, 0).0, 3_600);
    assert_eq!(line(&c, Dimension::Energy, 1).0, 3_600);
}

#[test]
fn day_of_week_across_midnight() {
    // Weekend energy 0.20, weekdays 0.40 (fallback). Friday 23:00 to
    // Saturday 01:00 UTC, 10 kWh/h: 10 kWh × 0.40 + 10 kWh × 0.20 = 6.00.
    let t = eur(
        r#"[{"price_components":[{"type":"ENERGY","price":"0.20"}],"restrictions":{"day_of_week":["SATURDAY","SUNDAY"]}},
            {"price_components":[{"type":"ENERGY","price":"0.40"}]}]"#,
    );
    let c = price_session(
        &t,
        &[
            r("2025-06-06T23:00:00Z", 0),
            r("2025-06-07T01:00:00Z", 20_000),
        ],
    )
    .unwrap();
    assert_eq!(line(&c, Dimension::Energy, 0), (10_000, 10_000, 200));
    assert_eq!(line(&c, Dimension::Energy, 1), (10_000, 10_000, 400));
    assert_eq!(c.excl_vat.value, 600);
}

#[test]
fn min_and_max_without_vat() {
    // No VAT anywhere, so the limits need no incl. figure.
    let t = tariff(
        "EUR",
        "UTC",
        r#","min_price":{"excl_vat":200},"max_price":{"excl_vat":2000}"#,
        r#"[{"price_components":[{"type":"ENERGY","price":"0.50"}]}]"#,
    );
    let cost = |wh| {
        price_session(
            &t,
            &[r("2025-06-02T10:00:00Z", 0), r("2025-06-02T11:00:00Z", wh)],
        )
        .unwrap()
    };
    assert_eq!(totals(&cost(1_000)), (200, 200)); // 0.50 -> min 2.00
    assert_eq!(totals(&cost(10_000)), (500, 500)); // 5.00
    assert_eq!(totals(&cost(100_000)), (2000, 2000)); // 50.00 -> max 20.00
}

#[test]
fn vat_rounded_once_over_lines() {
    // Three 0.05 EUR flat-ish lines at 10 %: each 0.005 VAT. Rounded per line
    // that would be 0.03; once over the session it is 0.015 -> 0.02.
    let t = eur(
        r#"[{"price_components":[{"type":"FLAT","price":"0.05","vat":"10"},{"type":"ENERGY","price":"0.05","vat":"10"},{"type":"TIME","price":"0.05","vat":"10"}]}]"#,
    );
    let c = price_session(
        &t,
        &[
            r("2025-06-02T10:00:00Z", 0),
            r("2025-06-02T11:00:00Z", 1_000),
        ],
    )
    .unwrap();
    assert_eq!(c.lines_excl_vat.value, 15);
    assert_eq!(c.vat.value, 2);
    assert_eq!(c.lines.iter().map(|l| l.vat.value).sum::<i64>(), 2);
}

#[test]
fn jpy_has_no_minor_unit() {
    // 12.5 kWh × 30 JPY = 375 JPY; VAT 10 % = 37.5 -> 38; 413 JPY.
    let t = tariff(
        "JPY",
        "Asia/Tokyo",
        "",
        r#"[{"price_components":[{"type":"ENERGY","price":"30","vat":"10"}]}]"#,
    );
    let c = price_session(
        &t,
        &[
            r("2025-06-02T10:00:00Z", 0),
            r("2025-06-02T10:30:00Z", 12_500),
        ],
    )
    .unwrap();
    assert_eq!(totals(&c), (375, 413));
    assert_eq!(c.incl_vat.to_string(), "413 JPY");
}

#[test]
fn fine_grained_prices_stay_exact() {
    // 0.0333 EUR/min is 1.998 EUR/h: 90 min = 2.997 -> 3.00 EUR.
    let t = eur(r#"[{"price_components":[{"type":"TIME","price":"1.998"}]}]"#);
    let c = price_session(
        &t,
        &[r("2025-06-02T10:00:00Z", 0), r("2025-06-02T11:30:00Z", 1)],
    )
    .unwrap();
    assert_eq!(c.excl_vat.value, 300);
}

#[test]
fn live_cost_is_the_same_function_on_a_prefix() {
    let t = eur(&format!(
        r#"[{{"price_components":[{START_050_VAT20},{ENERGY_025_VAT10},{{"type":"PARKING_TIME","price":"2.00","vat":"20","step_size":900}}]}}]"#
    ));
    let all = [
        r("2025-06-02T10:00:00Z", 0),
        r("2025-06-02T10:30:00Z", 10_000),
        r("2025-06-02T11:00:00Z", 20_000),
        r("2025-06-02T11:40:00Z", 20_000),
    ];
    // At plug-in only the start fee: 0.50 / 0.60.
    assert_eq!(totals(&price_session(&t, &all[..1]).unwrap()), (50, 60));
    // After 10 kWh: 0.50 + 2.50 = 3.00; VAT 0.10 + 0.25 -> 3.35.
    assert_eq!(totals(&price_session(&t, &all[..2]).unwrap()), (300, 335));
    assert_eq!(totals(&price_session(&t, &all).unwrap()), (700, 790));
}

#[test]
fn energy_threshold_with_idle_intervals() {
    // An idle interval has no energy to cut at a kWh threshold. 0-1 kWh at
    // 0.10, beyond at 0.30: 1 kWh, idle, then 2 kWh more = 0.10 + 0.60.
    let t = eur(
        r#"[{"price_components":[{"type":"ENERGY","price":"0.10"}],"restrictions":{"max_kwh":"1"}},
            {"price_components":[{"type":"ENERGY","price":"0.30"}]}]"#,
    );
    let c = price_session(
        &t,
        &[
            r("2025-06-02T10:00:00Z", 500),
            r("2025-06-02T10:10:00Z", 1_500),
            r("2025-06-02T10:20:00Z", 1_500),
            r("2025-06-02T10:30:00Z", 3_500),
        ],
    )
    .unwrap();
    assert_eq!(line(&c, Dimension::Energy, 0), (1_000, 1_000, 10));
    assert_eq!(line(&c, Dimension::Energy, 1), (2_000, 2_000, 60));
}

#[test]
fn cost_serializes_with_money_as_minor_units_and_prices_as_strings() {
    let t = eur(&format!(r#"[{{"price_components":[{ENERGY_025_VAT10}]}}]"#));
    let c = price_session(
        &t,
        &[
            r("2025-06-02T10:00:00Z", 0),
            r("2025-06-02T11:00:00Z", 20_000),
        ],
    )
    .unwrap();
    let v = serde_json::to_value(&c).unwrap();
    assert_eq!(
        v["incl_vat"],
        serde_json::json!({"value": 550, "currency": "EUR"})
    );
    assert_eq!(v["lines"][0]["kind"], "ENERGY");
    assert_eq!(v["lines"][0]["unit_price"], "0.25");
    assert_eq!(v["lines"][0]["vat_rate"], "10");
    assert_eq!(v["limit_applied"], serde_json::Value::Null);
}
