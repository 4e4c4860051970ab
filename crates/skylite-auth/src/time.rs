//! Time as JWTs count it (seconds since 1970, UTC): the clock, RFC 3339 text for messages, and
//! token lifetimes written as `30d`, `12h`, `90m`, `3600s`, `2w` or `never`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Seconds since 1970-01-01T00:00:00Z (negative if the clock is before it).
pub fn now_unix() -> i64 {
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_secs() as i64,
        Err(e) => -(e.duration().as_secs() as i64),
    }
}

/// `2026-11-20T10:00:00Z` for a Unix time in seconds.
pub fn format_unix(ts: i64) -> String {
    let days = ts.div_euclid(86_400);
    let secs = ts.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// Year, month, day of the proleptic Gregorian calendar for a count of days since 1970-01-01.
/// Works in 400-year eras (146097 days), each starting on March 1st so leap days fall last.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468; // days since 0000-03-01
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // day of era, 0..146096
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // year of era, 0..399
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // day of the March-based year
    let mp = (5 * doy + 2) / 153; // month index from March, 0..11
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Parses a token lifetime: a whole number followed by `s`, `m`, `h`, `d` or `w`, or `never`
/// (returned as `None`). `0s` and other zero values are refused: such a token is born expired.
pub fn parse_lifetime(text: &str) -> Result<Option<Duration>, String> {
    let text = text.trim();
    if text.eq_ignore_ascii_case("never") {
        return Ok(None);
    }
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| format!("`{text}` needs a unit: s, m, h, d or w (e.g. 30d), or `never`"))?;
    let (number, unit) = text.split_at(split);
    let n: u64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a lifetime such as 30d, 12h, 90m, 3600s or never"))?;
    let unit_secs = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => {
            return Err(format!(
                "unknown unit `{unit}` in `{text}`: use s, m, h, d or w"
            ))
        }
    };
    if n == 0 {
        return Err(format!(
            "`{text}` would make a token that is already expired"
        ));
    }
    let secs = n
        .checked_mul(unit_secs)
        .filter(|s| *s <= 100 * 365 * 86_400)
        .ok_or_else(|| format!("`{text}` is more than 100 years; use `never`"))?;
    Ok(Some(Duration::from_secs(secs)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_dates() {
        assert_eq!(format_unix(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_unix(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(format_unix(1_795_168_800), "2026-11-20T10:00:00Z");
        assert_eq!(format_unix(4_107_542_399), "2100-02-28T23:59:59Z");
        assert_eq!(format_unix(-1), "1969-12-31T23:59:59Z");
    }

    #[test]
    fn parses_lifetimes() {
        let secs = |t: &str| parse_lifetime(t).unwrap().map(|d| d.as_secs());
        assert_eq!(secs("30d"), Some(30 * 86_400));
        assert_eq!(secs("12h"), Some(12 * 3600));
        assert_eq!(secs("90m"), Some(90 * 60));
        assert_eq!(secs("3600s"), Some(3600));
        assert_eq!(secs("2w"), Some(14 * 86_400));
        assert_eq!(secs("never"), None);
        assert_eq!(secs("NEVER"), None);
        for bad in ["", "30", "d", "30y", "-5d", "0s", "1.5h", "99999999999w"] {
            assert!(parse_lifetime(bad).is_err(), "{bad}");
        }
    }
}
