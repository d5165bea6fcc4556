//! RFC 3339 times through [`UtcTime::parse_rfc3339`], checked against a reference written
//! here from the RFC's grammar (§5.6) and a plain civil-calendar count, independent of the
//! crate's days-from-civil arithmetic.

use proptest::prelude::*;
use proptest::test_runner::{TestCaseError, TestCaseResult};
use ra_signer::time::UtcTime;

use super::{corpus, fuzz, inputs};

const TOKENS: &[&[u8]] = &[
    b"-", b":", b"T", b"t", b" ", b"Z", b"z", b".", b"+", b"-00:00", b"+23:59", b"0", b"9",
    b"02-29", b"02-30", b"12-31", b"60",
];

fn leap(year: i64) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if leap(year) => 29,
        _ => 28,
    }
}

/// Leap years in `1..y` (of the proleptic Gregorian calendar, with a year 0 before 1).
fn leap_years_before(y: i64) -> i64 {
    let p = y - 1;
    p.div_euclid(4) - p.div_euclid(100) + p.div_euclid(400)
}

/// Seconds since 1970 of a valid civil UTC time: whole years of 365 days plus their leap
/// days, then the months of the year one by one.
fn civil_seconds(y: i64, mo: i64, d: i64, h: i64, mi: i64, s: i64) -> i64 {
    let mut days = (y - 1970) * 365 + leap_years_before(y) - leap_years_before(1970);
    days += (1..mo).map(|m| days_in_month(y, m)).sum::<i64>();
    days += d - 1;
    days * 86_400 + h * 3600 + mi * 60 + s
}

/// RFC 3339 `date-time`, with the §5.6 note's space (or `t`) for `T` and `z` for `Z`; a
/// leap second (`:60`) counts as the next second; instants before 1970 are out of range.
pub(super) fn reference(text: &str) -> Option<u64> {
    let b = text.as_bytes();
    let digits = |r: std::ops::Range<usize>| -> Option<i64> {
        let part = b.get(r)?;
        part.iter().all(u8::is_ascii_digit).then(|| {
            part.iter()
                .fold(0i64, |acc, d| acc * 10 + i64::from(d - b'0'))
        })
    };
    let sep = |i: usize, c: u8| b.get(i) == Some(&c);
    let separators = sep(4, b'-')
        && sep(7, b'-')
        && matches!(b.get(10), Some(b'T' | b't' | b' '))
        && sep(13, b':')
        && sep(16, b':');
    if !separators {
        return None;
    }
    let (y, mo, d) = (digits(0..4)?, digits(5..7)?, digits(8..10)?);
    let (h, mi, s) = (digits(11..13)?, digits(14..16)?, digits(17..19)?);
    if !(1..=12).contains(&mo) || d < 1 || d > days_in_month(y, mo) {
        return None;
    }
    if h > 23 || mi > 59 || s > 60 {
        return None;
    }
    let mut i = 19;
    if sep(i, b'.') {
        let n = b[i + 1..].iter().take_while(|c| c.is_ascii_digit()).count();
        if n == 0 {
            return None;
        }
        i += 1 + n;
    }
    let offset = match &b[i..] {
        b"Z" | b"z" => 0,
        [sign @ (b'+' | b'-'), _, _, b':', _, _] => {
            let (oh, om) = (digits(i + 1..i + 3)?, digits(i + 4..i + 6)?);
            if oh > 23 || om > 59 {
                return None;
            }
            let minutes = oh * 60 + om;
            if *sign == b'-' { -minutes } else { minutes }
        }
        _ => return None,
    };
    u64::try_from(civil_seconds(y, mo, d, h, mi, s) - offset * 60).ok()
}

fn agrees(text: &str) -> TestCaseResult {
    let got = UtcTime::parse_rfc3339(text).map(UtcTime::unix);
    let want = reference(text);
    if got != want {
        return Err(TestCaseError::fail(format!(
            "{text:?} parses to {got:?}; RFC 3339 says {want:?}"
        )));
    }
    Ok(())
}

/// Mutated seeds and random bytes: the parser never panics and agrees with the reference.
#[test]
fn rfc3339_times() {
    let seeds = corpus("rfc3339").into_iter().map(|(_, b)| b).collect();
    fuzz(
        "rfc3339",
        super::cases(6000),
        inputs(seeds, TOKENS),
        |input| agrees(&String::from_utf8_lossy(input)),
    );
}

/// Times built field by field, each field in and just outside its range, with every
/// separator, fraction and offset form: the parser agrees with the reference.
#[test]
fn generated_rfc3339_fields() {
    let offset = prop_oneof![
        Just("Z".to_owned()),
        Just("z".to_owned()),
        (prop_oneof![Just('+'), Just('-')], 0u32..26, 0u32..62)
            .prop_map(|(s, h, m)| format!("{s}{h:02}:{m:02}")),
        "[-+0-9:Zz]{0,7}",
    ];
    let strategy = (
        (0u32..10_000, 0u32..14, 0u32..33),
        (0u32..25, 0u32..61, 0u32..62),
        prop_oneof![Just('T'), Just('t'), Just(' '), Just('x')],
        prop_oneof![Just(String::new()), "\\.[0-9]{0,12}"],
        offset,
    )
        .prop_map(|((y, mo, d), (h, mi, s), sep, frac, off)| {
            format!("{y:04}-{mo:02}-{d:02}{sep}{h:02}:{mi:02}:{s:02}{frac}{off}")
        });
    let (mut runner, _) = super::runner(super::cases(4000));
    runner
        .run(&strategy, |text| agrees(&text))
        .unwrap_or_else(|e| panic!("{e}"));
}

/// Every instant from 1970 to 9999 formats to canonical RFC 3339 that parses back to it,
/// and canonical text formats back to itself.
#[test]
fn rfc3339_round_trips() {
    let (mut runner, _) = super::runner(super::cases(4000));
    runner
        .run(&(0u64..253_402_300_800), |secs| {
            let t = UtcTime::from_unix(secs);
            let text = t.rfc3339();
            agrees(&text)?;
            if UtcTime::parse_rfc3339(&text) != Some(t) {
                return Err(TestCaseError::fail(format!(
                    "{secs} -> {text:?} does not read back"
                )));
            }
            let reparsed = UtcTime::parse_rfc3339(&text).map(UtcTime::rfc3339);
            if reparsed.as_deref() != Some(text.as_str()) {
                return Err(TestCaseError::fail(format!(
                    "{text:?} formats as {reparsed:?}"
                )));
            }
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{e}"));
}
