//! Times as restic's Go reads them from a lock file: `time.Time`'s JSON decoding, which is
//! Go's `time.Parse(time.RFC3339, …)` on the raw JSON bytes (restic 0.14's Go 1.19
//! directly; newer Go after a strict fast path whose fall-back, issue 54580, is the same
//! parser). So: exactly four year digits, `T` and `Z` in upper case only, an hour of one or
//! two digits, seconds below 60, fraction after `.` or `,` (digits past nine ignored), an
//! offset `±hh:mm` up to 24:60, days checked against the month, nothing after — and any
//! escape in the JSON string fails, since Go parses the bytes before unescaping them.

use chrono::{DateTime, FixedOffset, NaiveDate, TimeZone, Utc};

/// Go's zero `time.Time`, which a `null` or a missing `time` leaves in place.
pub fn go_zero_time() -> DateTime<FixedOffset> {
    Utc.with_ymd_and_hms(1, 1, 1, 0, 0, 0)
        .single()
        .expect("year 1 exists")
        .fixed_offset()
}

fn digits(s: &[u8], n: usize) -> Option<u32> {
    if s.len() < n || !s[..n].iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(s[..n].iter().fold(0, |a, d| a * 10 + u32::from(d - b'0')))
}

/// Parses the text of a JSON string (between its quotes, still escaped) as Go would.
pub fn parse(raw: &str) -> Result<DateTime<FixedOffset>, String> {
    let bad = |why: &str| Err(format!("restic cannot parse the time {raw:?}: {why}"));
    if raw.contains('\\') {
        return bad("Go parses the JSON text before unescaping it");
    }
    let s = raw.as_bytes();
    let Some(year) = digits(s, 4) else {
        return bad("the year is not four digits");
    };
    let mut rest = &s[4..];
    let mut field = |sep: Option<u8>, fixed: bool, what: &str| -> Result<u32, String> {
        if let Some(c) = sep {
            if rest.first() != Some(&c) {
                return Err(format!(
                    "restic cannot parse the time {raw:?}: expected {:?} before the {what}",
                    c as char
                ));
            }
            rest = &rest[1..];
        }
        let two = digits(rest, 2);
        let (v, used) = match (two, digits(rest, 1)) {
            (Some(v), _) => (v, 2),
            (None, Some(v)) if !fixed => (v, 1),
            _ => {
                return Err(format!("restic cannot parse the time {raw:?}: bad {what}"));
            }
        };
        rest = &rest[used..];
        Ok(v)
    };
    let month = field(Some(b'-'), true, "month")?;
    let day = field(Some(b'-'), true, "day")?;
    let hour = field(Some(b'T'), false, "hour")?;
    let min = field(Some(b':'), true, "minute")?;
    let sec = field(Some(b':'), true, "second")?;
    if !(1..=12).contains(&month) {
        return bad("month out of range");
    }
    if hour >= 24 || min >= 60 || sec >= 60 {
        return bad("hour, minute or second out of range");
    }
    let Some(date) = NaiveDate::from_ymd_opt(year as i32, month, day) else {
        return bad("day out of range");
    };
    let mut nanos = 0u32;
    if rest.len() >= 2 && matches!(rest[0], b'.' | b',') && rest[1].is_ascii_digit() {
        let n = 1 + rest[1..].iter().take_while(|b| b.is_ascii_digit()).count();
        let frac = &rest[1..n.min(10)];
        nanos = frac.iter().fold(0, |a, d| a * 10 + u32::from(d - b'0'))
            * 10u32.pow(9 - frac.len() as u32);
        rest = &rest[n..];
    }
    let offset = match rest {
        [b'Z'] => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let (Some(h), Some(m)) = (digits(&[*h1, *h2], 2), digits(&[*m1, *m2], 2)) else {
                return bad("bad offset");
            };
            if h > 24 || m > 60 {
                return bad("offset out of range");
            }
            let secs = (h * 60 + m) as i32 * 60;
            if *sign == b'-' { -secs } else { secs }
        }
        _ => return bad("no valid offset, or text after it"),
    };
    let local = date
        .and_hms_nano_opt(hour, min, sec, nanos)
        .expect("ranges checked");
    let utc = local - chrono::Duration::seconds(offset.into());
    // Go takes offsets up to 24:60; chrono holds less than a day: keep the instant in UTC.
    let tz = FixedOffset::east_opt(offset).unwrap_or(FixedOffset::east_opt(0).expect("UTC"));
    Ok(Utc.from_utc_datetime(&utc).with_timezone(&tz))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_restic_writes_parses() {
        let t = parse("2026-11-24T15:35:40.37577364Z").unwrap();
        assert_eq!(t.timestamp_subsec_nanos(), 375_773_640);
        let t = parse("2026-11-24T16:35:40.1+01:00").unwrap();
        assert_eq!(t.to_utc().to_rfc3339(), "2026-11-24T15:35:40.100+00:00");
        assert!(parse("2026-11-24T15:35:40Z").is_ok());
    }

    #[test]
    fn go_accepts_what_strict_rfc_3339_would_not() {
        assert!(parse("2026-11-24T5:35:40Z").is_ok(), "one-digit hour");
        assert!(parse("2026-11-24T15:35:40,5Z").is_ok(), "comma fraction");
        let t = parse("2026-11-24T15:35:40.1234567891234Z").unwrap();
        assert_eq!(
            t.timestamp_subsec_nanos(),
            123_456_789,
            "past nine digits ignored"
        );
        let t = parse("2026-11-24T15:35:40+24:00").unwrap();
        assert_eq!(t.to_utc().to_rfc3339(), "2026-11-23T15:35:40+00:00");
    }

    /// chrono takes these; Go does not, so restic cannot load such a lock.
    #[test]
    fn lock_times_restic_cannot_load() {
        for raw in [
            "2026-11-24T10:00:60Z",
            "2026-11-24 10:00:00Z",
            "2026-11-24t10:00:00Z",
            "2026-11-24T10:00:00z",
            "2026-02-30T10:00:00Z",
            "2026-11-24T10:00:00",
            "2026-11-24T10:00:00Zjunk",
            "2026-11-24T10:00:00+0100",
            "2026-11-24T10:00:00+25:00",
            "\\u0032026-11-24T10:00:00Z",
            "26-11-24T10:00:00Z",
            "2026-11-24T24:00:00Z",
            "",
        ] {
            assert!(parse(raw).is_err(), "{raw:?} parsed");
        }
    }
}
