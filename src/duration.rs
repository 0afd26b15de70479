//! Human durations, the one formatter: lock ages in the table and the log (`2m05s`,
//! `3h07m`, `2d04h`, negative under clock skew), and the unlock contract's run time
//! (`<60 s: Ns`, `<1 h: NmNs`, else `NhNm`: unpadded, no days).

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// Padded minutes and seconds, days past 24 hours.
    Age,
    /// The unlock contract's finish line and mail subject.
    Contract,
}

/// A time of day as every human line says it: in UTC, and saying so (JSON fields are UTC
/// too, so a reason in JSON and its field agree).
pub fn clock(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format("%H:%M:%S UTC").to_string()
}

/// A date and time as every human line says it (see [`clock`]).
pub fn date_clock(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// A span in the contract's words (`1h26m`, `4m0s`, `12s`).
pub fn words(d: std::time::Duration) -> String {
    human(d.as_secs() as i64, Style::Contract)
}

pub fn human(secs: i64, style: Style) -> String {
    let sign = if secs < 0 { "-" } else { "" };
    let s = secs.unsigned_abs();
    let body = match (style, s) {
        (_, s) if s < 60 => format!("{s}s"),
        (Style::Age, s) if s < 3600 => format!("{}m{:02}s", s / 60, s % 60),
        (Style::Age, s) if s < 86400 => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
        (Style::Age, s) => format!("{}d{:02}h", s / 86400, (s % 86400) / 3600),
        (Style::Contract, s) if s < 3600 => format!("{}m{}s", s / 60, s % 60),
        (Style::Contract, s) => format!("{}h{}m", s / 3600, (s % 3600) / 60),
    };
    format!("{sign}{body}")
}

/// `30m`, `24h`, `7d`, `2w`: a span back from now.
pub fn parse_age(s: &str) -> Result<chrono::Duration, String> {
    let bad = || format!("{s:?}: a number and a unit, one of s, m, h, d, w (e.g. 7d)");
    // The unit is the last character, whatever its width (`7é` must not split a char).
    let cut = s.char_indices().last().map_or(0, |(i, _)| i);
    let (n, unit) = s.split_at(cut);
    let n: i64 = n.parse().map_err(|_| bad())?;
    let seconds = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 60 * 60,
        "d" => 24 * 60 * 60,
        "w" => 7 * 24 * 60 * 60,
        _ => return Err(bad()),
    };
    match n.checked_mul(seconds) {
        Some(t) if n > 0 && t <= 100 * 365 * 24 * 60 * 60 => Ok(chrono::Duration::seconds(t)),
        _ => Err(bad()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages() {
        let age = |s| human(s, Style::Age);
        assert_eq!(age(5), "5s");
        assert_eq!(age(125), "2m05s");
        assert_eq!(age(3 * 3600 + 7 * 60), "3h07m");
        assert_eq!(age(2 * 86400 + 4 * 3600), "2d04h");
        assert_eq!(age(-90), "-1m30s");
        assert_eq!(age(i64::MIN), "-106751991167300d15h");
    }

    #[test]
    fn an_age_with_a_wide_last_character_is_refused_not_split() {
        for bad in ["7é", "é", "7日", "", "7", "0d", "-1d", "7 d"] {
            assert!(parse_age(bad).is_err(), "{bad:?}");
        }
        assert_eq!(parse_age("7d"), Ok(chrono::Duration::days(7)));
        assert_eq!(parse_age("90m"), Ok(chrono::Duration::minutes(90)));
    }

    #[test]
    fn contract_run_times() {
        let run = |s| human(s, Style::Contract);
        assert_eq!(run(0), "0s");
        assert_eq!(run(59), "59s");
        assert_eq!(run(60), "1m0s");
        assert_eq!(run(3599), "59m59s");
        assert_eq!(run(3600), "1h0m");
        assert_eq!(run(7384), "2h3m");
    }
}
