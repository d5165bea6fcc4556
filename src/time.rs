//! UTC calendar arithmetic for the few timestamps the protocols use (`X-Amz-Date`,
//! RFC 3339 expirations). Kept here, small and tested, instead of pulling in a date crate.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A UTC instant with one-second resolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct UtcTime(u64);

impl UtcTime {
    /// From seconds since the Unix epoch.
    pub fn from_unix(secs: u64) -> Self {
        UtcTime(secs)
    }

    /// The current time.
    pub fn now() -> Self {
        UtcTime::from_system(SystemTime::now())
    }

    /// From a `SystemTime` (times before 1970 clamp to the epoch).
    pub fn from_system(t: SystemTime) -> Self {
        UtcTime(
            t.duration_since(UNIX_EPOCH)
                .unwrap_or(Duration::ZERO)
                .as_secs(),
        )
    }

    /// Seconds since the Unix epoch.
    pub fn unix(self) -> u64 {
        self.0
    }

    /// `YYYYMMDD'T'HHMMSS'Z'`, the `X-Amz-Date` form.
    pub fn amz_date(self) -> String {
        let (y, mo, d, h, mi, s) = self.civil();
        format!("{y:04}{mo:02}{d:02}T{h:02}{mi:02}{s:02}Z")
    }

    /// `YYYYMMDD`, the credential-scope date.
    pub fn scope_date(self) -> String {
        let (y, mo, d, ..) = self.civil();
        format!("{y:04}{mo:02}{d:02}")
    }

    /// `YYYY-MM-DDTHH:MM:SSZ`.
    pub fn rfc3339(self) -> String {
        let (y, mo, d, h, mi, s) = self.civil();
        format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z")
    }

    /// Parses an RFC 3339 UTC time: `YYYY-MM-DDTHH:MM:SS[.fraction](Z|+00:00)`. Offsets
    /// other than zero are applied.
    pub fn parse_rfc3339(s: &str) -> Option<Self> {
        let b = s.as_bytes();
        if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
            return None;
        }
        if b[13] != b':' || b[16] != b':' {
            return None;
        }
        let num = |r: std::ops::Range<usize>| -> Option<u64> {
            let part = s.get(r)?;
            if part.bytes().all(|c| c.is_ascii_digit()) {
                part.parse().ok()
            } else {
                None
            }
        };
        let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
        let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
        if !(1..=12).contains(&mo) || d < 1 || d > days_in_month(y, mo) {
            return None;
        }
        if h > 23 || mi > 59 || sec > 60 {
            return None;
        }
        let mut rest = &s[19..];
        if let Some(frac) = rest.strip_prefix('.') {
            let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
            if digits == 0 {
                return None;
            }
            rest = &frac[digits..];
        }
        let offset: i64 = match rest {
            "Z" | "z" => 0,
            _ => {
                let rb = rest.as_bytes();
                if rb.len() != 6 || rb[3] != b':' || !matches!(rb[0], b'+' | b'-') {
                    return None;
                }
                // Digits only: `parse` alone would take "+1" or "-0" as an hour.
                if ![1, 2, 4, 5].iter().all(|&i| rb[i].is_ascii_digit()) {
                    return None;
                }
                let oh = i64::from(rb[1] - b'0') * 10 + i64::from(rb[2] - b'0');
                let om = i64::from(rb[4] - b'0') * 10 + i64::from(rb[5] - b'0');
                if oh > 23 || om > 59 {
                    return None;
                }
                let sign = if rb[0] == b'-' { -1 } else { 1 };
                sign * (oh * 3600 + om * 60)
            }
        };
        let days = days_from_civil(y as i64, mo as u32, d as u32);
        let secs = days * 86400 + (h * 3600 + mi * 60 + sec) as i64 - offset;
        u64::try_from(secs).ok().map(UtcTime)
    }

    /// Parses an HTTP `Date` header in its one current form (RFC 9110 §5.6.7,
    /// IMF-fixdate): `Sun, 06 Nov 1994 08:49:37 GMT`.
    pub fn parse_http_date(s: &str) -> Option<Self> {
        const MONTHS: [&str; 12] = [
            "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
        ];
        let fields: Vec<&str> = s.trim().split(' ').collect();
        let [weekday, day, month, year, clock, "GMT"] = fields.as_slice() else {
            return None;
        };
        if weekday.len() != 4 || !weekday.ends_with(',') || day.len() != 2 || year.len() != 4 {
            return None;
        }
        let number = |t: &str| -> Option<u64> {
            if t.bytes().all(|b| b.is_ascii_digit()) {
                t.parse().ok()
            } else {
                None
            }
        };
        let (d, y) = (number(day)?, number(year)?);
        let mo = MONTHS.iter().position(|m| m == month)? as u64 + 1;
        let hms: Vec<&str> = clock.split(':').collect();
        let [h, mi, sec] = hms.as_slice() else {
            return None;
        };
        if [h, mi, sec].iter().any(|t| t.len() != 2) {
            return None;
        }
        let (h, mi, sec) = (number(h)?, number(mi)?, number(sec)?);
        if y < 1970 || d == 0 || d > days_in_month(y, mo) || h > 23 || mi > 59 || sec > 60 {
            return None;
        }
        let days = days_from_civil(y as i64, mo as u32, d as u32);
        let secs = days * 86400 + (h * 3600 + mi * 60 + sec) as i64;
        u64::try_from(secs).ok().map(UtcTime)
    }

    fn civil(self) -> (i64, u32, u32, u64, u64, u64) {
        let days = (self.0 / 86400) as i64;
        let rem = self.0 % 86400;
        let (y, m, d) = civil_from_days(days);
        (y, m, d, rem / 3600, rem % 3600 / 60, rem % 60)
    }
}

impl std::ops::Add<Duration> for UtcTime {
    type Output = UtcTime;
    fn add(self, d: Duration) -> UtcTime {
        UtcTime(self.0.saturating_add(d.as_secs()))
    }
}

fn days_in_month(year: u64, month: u64) -> u64 {
    match month {
        4 | 6 | 9 | 11 => 30,
        2 if year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400)) => {
            29
        }
        2 => 28,
        _ => 31,
    }
}

// Howard Hinnant's days-from-civil algorithms (public domain), proleptic Gregorian.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = i64::from(if m > 2 { m - 3 } else { m + 9 });
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_known_instants() {
        let t = UtcTime::from_unix(0);
        assert_eq!(t.amz_date(), "19700101T000000Z");
        // 2024-02-29T23:59:59Z, a leap day.
        let t = UtcTime::from_unix(1_709_251_199);
        assert_eq!(t.rfc3339(), "2024-02-29T23:59:59Z");
        assert_eq!(t.scope_date(), "20240229");
        let t = UtcTime::from_unix(1_765_470_865);
        assert_eq!(t.rfc3339(), "2025-12-11T16:34:25Z");
    }

    #[test]
    fn leap_days_and_month_ends() {
        for (good, secs) in [
            ("2024-02-29T00:00:00Z", 1_709_164_800),
            ("2000-02-29T00:00:00Z", 951_782_400),
            ("2025-01-31T00:00:00Z", 1_738_281_600),
            ("2025-12-11T16:34:25-23:59", 1_765_557_205),
        ] {
            assert_eq!(
                UtcTime::parse_rfc3339(good).map(UtcTime::unix),
                Some(secs),
                "{good}"
            );
        }
        assert_eq!(UtcTime::parse_rfc3339("2100-02-29T00:00:00Z"), None);
    }

    #[test]
    fn parses_what_it_formats_and_offsets() {
        for secs in [0, 951_782_400, 1_709_251_199, 4_102_444_800] {
            let t = UtcTime::from_unix(secs);
            assert_eq!(UtcTime::parse_rfc3339(&t.rfc3339()), Some(t));
        }
        assert_eq!(
            UtcTime::parse_rfc3339("2025-12-11T17:34:25.123+01:00"),
            UtcTime::parse_rfc3339("2025-12-11T16:34:25Z")
        );
        for bad in [
            "",
            "2025-13-01T00:00:00Z",
            // Found by the fuzz target (tests/it/fuzz/rfc3339.rs): days past the month's
            // end, and offsets out of range or with a sign where a digit belongs.
            "9999-02-31T23:59:59.9Z",
            "2025-02-29T00:00:00Z",
            "2025-04-31T00:00:00Z",
            "1970-01-02T01:12:00+24:00",
            "2025-12-11T16:34:25+01:60",
            "2025-12-11T16:34:25++1:00",
            "2025-12-11T16:34:25+-1:00",
            "2025-12-11T16:34:25-+0:00",
            "2025-12-11 16:34:25",
            "2025-12-11T16:34:25",
        ] {
            assert_eq!(UtcTime::parse_rfc3339(bad), None, "{bad}");
        }
    }

    #[test]
    fn http_dates() {
        assert_eq!(
            UtcTime::parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT").map(UtcTime::unix),
            Some(784_111_777)
        );
        assert_eq!(
            UtcTime::parse_http_date("Wed, 02 Dec 2026 06:45:13 GMT").map(UtcTime::rfc3339),
            Some("2026-12-02T06:45:13Z".into())
        );
        for bad in [
            "",
            "Sunday, 06-Nov-94 08:49:37 GMT",
            "Sun Nov  6 08:49:37 1994",
            "Sun, 06 Nov 1994 08:49:37 UTC",
            "Sun, 31 Feb 1994 08:49:37 GMT",
            "Sun, 06 Foo 1994 08:49:37 GMT",
            "Sun, 06 Nov 1994 24:00:00 GMT",
            "Sun, +6 Nov 1994 08:49:37 GMT",
        ] {
            assert_eq!(UtcTime::parse_http_date(bad), None, "{bad}");
        }
    }
}
