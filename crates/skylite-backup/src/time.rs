//! Points in time as a restore names them: RFC 3339 text (`2026-12-01T10:00:00Z`,
//! `2026-12-01T11:00:00.250+01:00`) to and from unix milliseconds, the unit of commit times in
//! the backup format.

/// Why a time could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid time {text:?}: {reason} (expected RFC 3339, e.g. 2026-12-01T10:00:00Z)")]
pub struct TimeError {
    text: String,
    reason: &'static str,
}

/// Parses an RFC 3339 date-time (`T` or a space between date and time, `Z` or `±HH:MM`,
/// optional fraction of a second, kept to the millisecond) into unix milliseconds.
pub fn parse_rfc3339(text: &str) -> Result<u64, TimeError> {
    let fail = |reason| TimeError {
        text: text.chars().take(64).collect(),
        reason,
    };
    let b = text.trim().as_bytes();
    let digits = |from: usize, len: usize| -> Result<i64, TimeError> {
        let part = b.get(from..from + len).ok_or_else(|| fail("too short"))?;
        if !part.iter().all(u8::is_ascii_digit) {
            return Err(fail("a digit was expected"));
        }
        Ok(part.iter().fold(0i64, |n, d| n * 10 + i64::from(d - b'0')))
    };
    let expect = |at: usize, allowed: &[u8]| -> Result<(), TimeError> {
        match b.get(at) {
            Some(c) if allowed.contains(c) => Ok(()),
            _ => Err(fail("unexpected character")),
        }
    };
    let year = digits(0, 4)?;
    expect(4, b"-")?;
    let month = digits(5, 2)?;
    expect(7, b"-")?;
    let day = digits(8, 2)?;
    expect(10, b"Tt ")?;
    let hour = digits(11, 2)?;
    expect(13, b":")?;
    let minute = digits(14, 2)?;
    expect(16, b":")?;
    let second = digits(17, 2)?;
    let mut at = 19;
    let mut millis = 0i64;
    if b.get(at) == Some(&b'.') {
        at += 1;
        let start = at;
        while b.get(at).is_some_and(u8::is_ascii_digit) {
            if at - start < 3 {
                millis = millis * 10 + i64::from(b[at] - b'0');
            }
            at += 1;
        }
        if at == start {
            return Err(fail("digits must follow the '.'"));
        }
        for _ in (at - start)..3 {
            millis *= 10;
        }
    }
    let offset_minutes = match b.get(at) {
        Some(b'Z' | b'z') if at + 1 == b.len() => 0,
        Some(sign @ (b'+' | b'-')) if at + 6 == b.len() => {
            expect(at + 3, b":")?;
            let minutes = digits(at + 1, 2)? * 60 + digits(at + 4, 2)?;
            if *sign == b'-' {
                -minutes
            } else {
                minutes
            }
        }
        _ => return Err(fail("a time zone (Z or +HH:MM) must end it")),
    };
    let days_in_month = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        _ => return Err(fail("month out of range")),
    };
    if !(1..=days_in_month).contains(&day) || hour > 23 || minute > 59 || second > 60 {
        return Err(fail("a field is out of range"));
    }
    let days = days_from_civil(year, month, day);
    let secs = days * 86_400 + hour * 3600 + minute * 60 + second.min(59) - offset_minutes * 60;
    if secs < 0 {
        return Err(fail("before 1970"));
    }
    Ok(secs as u64 * 1000 + millis as u64)
}

/// `2026-12-01T10:00:00.250Z` for unix milliseconds (the fraction only when not zero).
pub fn format_ms(ms: u64) -> String {
    let secs = (ms / 1000) as i64;
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    let frac = ms % 1000;
    let fraction = if frac == 0 {
        String::new()
    } else {
        format!(".{frac:03}")
    };
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}{fraction}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// Now, in unix milliseconds.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (eras of 400 years starting March 1st).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The inverse of [`days_from_civil`].
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_formats() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z").unwrap(), 0);
        let t = parse_rfc3339("2026-12-01T10:00:00Z").unwrap();
        assert_eq!(t, 1_796_119_200_000);
        assert_eq!(format_ms(t), "2026-12-01T10:00:00Z");
        assert_eq!(parse_rfc3339("2026-12-01T11:00:00+01:00").unwrap(), t);
        assert_eq!(parse_rfc3339("2026-12-01 09:30:00-00:30").unwrap(), t);
        assert_eq!(parse_rfc3339("2026-12-01T10:00:00.25Z").unwrap(), t + 250);
        assert_eq!(
            parse_rfc3339("2026-12-01T10:00:00.123456Z").unwrap(),
            t + 123
        );
        assert_eq!(format_ms(t + 5), "2026-12-01T10:00:00.005Z");
        assert_eq!(
            parse_rfc3339("2024-02-29T00:00:00Z")
                .map(format_ms)
                .unwrap(),
            "2024-02-29T00:00:00Z"
        );
        for bad in [
            "",
            "2026-12-01",
            "2026-12-01T10:00:00",
            "2026-13-01T10:00:00Z",
            "2025-02-29T10:00:00Z",
            "2026-12-01T24:00:00Z",
            "2026-12-01T10:00:00.Z",
            "2026-12-01T10:00:00Zjunk",
            "yesterday",
        ] {
            assert!(parse_rfc3339(bad).is_err(), "{bad} accepted");
        }
    }
}
