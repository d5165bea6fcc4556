//! UTC calendar arithmetic for the emulator: parsing `X-Amz-Date`, formatting
//! credential expirations and log time stamps. Pure functions of a Unix time; the
//! only place that reads the system clock is [`now`].

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The current time as a duration since the Unix epoch (zero if the clock is before 1970).
pub(crate) fn now() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day number since 1970-01-01: (year, month 1..=12, day 1..=31).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    // Both values are in range by construction (1..=31 and 1..=12).
    (year, day_or_month(month), day_or_month(day))
}

fn day_or_month(v: i64) -> u32 {
    u32::try_from(v).unwrap_or(1)
}

fn is_leap(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap(year) => 29,
        2 => 28,
        _ => 0,
    }
}

/// Broken-down UTC time of a Unix time in seconds.
struct Civil {
    year: i64,
    month: u32,
    day: u32,
    hour: u64,
    minute: u64,
    second: u64,
}

fn civil(unix: u64) -> Civil {
    let days = i64::try_from(unix / 86_400).unwrap_or(i64::MAX / 2);
    let secs = unix % 86_400;
    let (year, month, day) = civil_from_days(days);
    Civil {
        year,
        month,
        day,
        hour: secs / 3600,
        minute: secs % 3600 / 60,
        second: secs % 60,
    }
}

fn digits(s: &str) -> Option<u32> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Parses an `X-Amz-Date` value (`YYYYMMDD'T'HHMMSS'Z'`, UTC) into Unix seconds.
/// Returns `None` for anything else, including impossible dates such as February 30.
pub(crate) fn parse_amz_date(s: &str) -> Option<u64> {
    if s.len() != 16 || !s.is_ascii() || &s[8..9] != "T" || &s[15..16] != "Z" {
        return None;
    }
    let year = i64::from(digits(&s[0..4])?);
    let month = digits(&s[4..6])?;
    let day = digits(&s[6..8])?;
    let hour = u64::from(digits(&s[9..11])?);
    let minute = u64::from(digits(&s[11..13])?);
    let second = u64::from(digits(&s[13..15])?);
    if year < 1970
        || !(1..=12).contains(&month)
        || day == 0
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 59
    {
        return None;
    }
    let days = u64::try_from(days_from_civil(year, month, day)).ok()?;
    Some(days * 86_400 + hour * 3600 + minute * 60 + second)
}

/// Formats Unix seconds as `X-Amz-Date` does: `20250101T000000Z`.
pub(crate) fn amz_date(unix: u64) -> String {
    let c = civil(unix);
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        c.year, c.month, c.day, c.hour, c.minute, c.second
    )
}

/// Formats Unix seconds as ISO 8601 without fractions: `2025-01-01T00:00:00Z`
/// (the form of `credentials.expiration`).
pub(crate) fn iso8601(unix: u64) -> String {
    let c = civil(unix);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        c.year, c.month, c.day, c.hour, c.minute, c.second
    )
}

/// Formats Unix seconds as an HTTP `Date` (RFC 9110 IMF-fixdate):
/// `Thu, 01 Jan 2025 00:00:00 GMT`.
pub(crate) fn http_date(unix: u64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let c = civil(unix);
    // 1970-01-01 was a Thursday.
    let weekday = DAYS[usize::try_from(unix / 86_400 % 7).unwrap_or(0)];
    let month = MONTHS[usize::try_from(c.month.saturating_sub(1)).unwrap_or(0) % 12];
    format!(
        "{weekday}, {:02} {month} {:04} {:02}:{:02}:{:02} GMT",
        c.day, c.year, c.hour, c.minute, c.second
    )
}

/// Formats a time since the epoch as ISO 8601 with milliseconds, for log lines.
pub(crate) fn iso8601_millis(t: Duration) -> String {
    let c = civil(t.as_secs());
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        c.year,
        c.month,
        c.day,
        c.hour,
        c.minute,
        c.second,
        t.subsec_millis()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_known_dates() {
        assert_eq!(parse_amz_date("19700101T000000Z"), Some(0));
        assert_eq!(parse_amz_date("20000229T123456Z"), Some(951_827_696));
        assert_eq!(amz_date(951_827_696), "20000229T123456Z");
        assert_eq!(iso8601(1_765_470_865), "2025-12-11T16:34:25Z");
        assert_eq!(
            iso8601_millis(Duration::from_millis(1_765_470_865_042)),
            "2025-12-11T16:34:25.042Z"
        );
        for t in [0u64, 59, 86_399, 86_400, 1_000_000_000, 4_102_444_800] {
            assert_eq!(parse_amz_date(&amz_date(t)), Some(t));
        }
    }

    #[test]
    fn http_dates() {
        assert_eq!(http_date(784_111_777), "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(http_date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
    }

    #[test]
    fn rejects_malformed_dates() {
        for bad in [
            "",
            "20250101T000000",
            "20250101 000000Z",
            "2025-01-01T00:00:00Z",
            "20250230T000000Z",
            "20250101T240000Z",
            "20250101T006000Z",
            "20251301T000000Z",
            "+0250101T000000Z",
            "19691231T235959Z",
            "2025010１T00000Z",
        ] {
            assert_eq!(parse_amz_date(bad), None, "{bad:?}");
        }
    }
}
