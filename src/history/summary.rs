//! What the history says, in figures an operator sizes `--retry-lock` and schedules by:
//! per host the longest and the 95th-percentile exclusive hold, the time exclusive locks
//! blocked everyone else, and how many jobs ended stale. Pure.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::report::Life;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    pub holders: usize,
    /// Per host name, the exclusive holds (at most [`MAX_HOSTS`], by name).
    pub hosts: Vec<HostHolds>,
    /// Host names left out of `hosts`: those with the shortest holds.
    pub hosts_omitted: usize,
    /// Seconds of the span during which some exclusive lock was held.
    pub exclusive_blocked_seconds: i64,
    /// Jobs that ended while their last verdict was stale.
    pub ended_stale: usize,
    /// The longest exclusive hold, in words a `--retry-lock` can be sized by.
    pub advice: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HostHolds {
    pub hostname: String,
    pub exclusive_holds: usize,
    pub longest_exclusive_seconds: i64,
    pub p95_exclusive_seconds: i64,
}

/// The most hosts a summary names: host names come from lock files, which anyone who can
/// write to the repository can forge. Those with the longest holds are kept.
pub const MAX_HOSTS: usize = 50;

/// One pass over the lives, whatever the number of host names.
pub fn summarise(lives: &[Life], since: DateTime<Utc>, now: DateTime<Utc>) -> Summary {
    let exclusive: Vec<&Life> = lives.iter().filter(|l| l.span.key.exclusive).collect();
    let mut by_host: std::collections::HashMap<&str, Vec<i64>> = Default::default();
    for l in &exclusive {
        by_host
            .entry(l.span.key.hostname.as_str())
            .or_default()
            .push(l.held_seconds());
    }
    let mut hosts: Vec<HostHolds> = by_host
        .into_iter()
        .map(|(host, mut held)| {
            held.sort_unstable();
            HostHolds {
                hostname: host.to_string(),
                exclusive_holds: held.len(),
                longest_exclusive_seconds: *held.last().expect("one at least"),
                p95_exclusive_seconds: nearest_rank(&held, 95),
            }
        })
        .collect();
    let hosts_omitted = hosts.len().saturating_sub(MAX_HOSTS);
    if hosts_omitted > 0 {
        hosts.sort_unstable_by_key(|h| std::cmp::Reverse(h.longest_exclusive_seconds));
        hosts.truncate(MAX_HOSTS);
    }
    hosts.sort_unstable_by(|a, b| a.hostname.cmp(&b.hostname));
    Summary {
        holders: lives.len(),
        hosts,
        hosts_omitted,
        exclusive_blocked_seconds: blocked(&exclusive, since, now),
        ended_stale: lives
            .iter()
            .filter(|l| l.span.ended.is_some() && l.stale)
            .count(),
        advice: advice(lives, None),
    }
}

/// The longest exclusive hold whose holder lived through it (a killed job's stale lock
/// is no measure of how long a job runs), in the words that fit `restic` (its version,
/// when known), past a minute.
pub fn advice(lives: &[Life], restic: Option<(u32, u32, u32)>) -> Option<String> {
    let l = lives
        .iter()
        .filter(|l| l.span.key.exclusive && !l.stale)
        .filter(|l| !matches!(l.span.ended, Some(crate::report::Ended::Removed)))
        .max_by_key(|l| l.held_seconds())?;
    let held = l.held_seconds();
    if held < 60 {
        return None;
    }
    // A tenth more, at least a minute, in whole minutes.
    let wait = go_duration(held + (held / 10).max(60));
    let fix = match restic {
        Some(v) if v < (0, 16, 0) => format!(
            "restic {}.{}.{} has no --retry-lock (0.16 added it): run them under `locksmith run --wait {wait}`",
            v.0, v.1, v.2
        ),
        Some(_) => format!(
            "give them --retry-lock {wait}, or run them under `locksmith run --wait {wait}`"
        ),
        None => format!(
            "give them --retry-lock {wait} (restic 0.16 and later), or run them under `locksmith run --wait {wait}`"
        ),
    };
    Some(format!(
        "the longest exclusive hold by a live job was {} ({}@{}, PID {}, from {}): a backup, forget or prune that met it waited that long; {fix}, or move the schedules apart",
        crate::duration::human(held, crate::duration::Style::Contract),
        l.span.key.username,
        l.span.key.hostname,
        l.span.key.pid,
        l.span.held_since.format("%Y-%m-%d %H:%M UTC"),
    ))
}

/// The `pct`th percentile of `sorted` (non-empty), by nearest rank.
fn nearest_rank(sorted: &[i64], pct: usize) -> i64 {
    let rank = (sorted.len() * pct).div_ceil(100).max(1);
    sorted[rank - 1]
}

/// Seconds of `[since, now]` covered by at least one of the holds.
fn blocked(holds: &[&Life], since: DateTime<Utc>, now: DateTime<Utc>) -> i64 {
    let mut spans: Vec<(i64, i64)> = holds
        .iter()
        .map(|l| {
            let from = l.span.held_since.max(since).timestamp();
            (from, l.span.last_seen.min(now).timestamp())
        })
        .filter(|(a, b)| b > a)
        .collect();
    spans.sort_unstable();
    let (mut total, mut reach) = (0, i64::MIN);
    for (a, b) in spans {
        let a = a.max(reach);
        if b > a {
            total += b - a;
            reach = b;
        }
    }
    total
}

/// Whole minutes as Go (restic's flags) writes a duration: `1h30m`, `45m`, `2h`.
fn go_duration(secs: i64) -> String {
    let (h, m) = (
        secs / 3600,
        (secs % 3600).unsigned_abs().div_ceil(60) as i64,
    );
    let (h, m) = if m == 60 { (h + 1, 0) } else { (h, m) };
    match (h, m) {
        (0, m) => format!("{m}m"),
        (h, 0) => format!("{h}h"),
        (h, m) => format!("{h}h{m}m"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(minutes: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000, 0).unwrap() + chrono::Duration::minutes(minutes)
    }

    fn life(host: &str, exclusive: bool, from: i64, to: i64, stale_end: bool) -> Life {
        Life {
            stale: stale_end,
            ..Life::sample(host, exclusive, t(from), t(to))
        }
    }

    #[test]
    fn holds_per_host_blocked_time_and_advice() {
        let lives = [
            life("a", true, 0, 86, false), // the 1 h 26 min prune
            life("a", true, 100, 110, false),
            life("a", true, 50, 60, false), // overlaps the first: blocked once
            life("b", true, 200, 205, true),
            life("b", false, 0, 300, true), // shared: never blocks, never a hold
        ];
        let s = summarise(&lives, t(-60), t(300));
        let holds: Vec<_> = s
            .hosts
            .iter()
            .map(|h| {
                (
                    h.hostname.as_str(),
                    h.exclusive_holds,
                    h.longest_exclusive_seconds,
                    h.p95_exclusive_seconds,
                )
            })
            .collect();
        assert_eq!(holds, vec![("a", 3, 86 * 60, 86 * 60), ("b", 1, 300, 300)]);
        assert_eq!(s.exclusive_blocked_seconds, (86 + 10 + 5) * 60);
        assert_eq!(s.ended_stale, 2);
        let advice = s.advice.unwrap();
        assert!(advice.contains("was 1h26m (root@a, PID 42"), "{advice}");
        assert!(
            advice.contains("give them --retry-lock 1h35m (restic 0.16 and later)"),
            "{advice}"
        );
        assert!(!advice.contains("below"), "one number: {advice}");
    }

    #[test]
    fn the_advice_counts_only_live_holds_and_fits_the_restic_in_use() {
        let killed = life("k", true, 0, 120, true); // a stale lock: its job was dead
        let lived = life("a", true, 0, 3, false);
        let lives = [killed, lived];
        let advice = |v| super::advice(&lives, v).unwrap();
        let any = advice(None);
        assert!(any.contains("was 3m0s (root@a"), "{any}");
        assert!(any.contains("--retry-lock 4m"), "{any}");
        let old = advice(Some((0, 14, 0)));
        assert!(
            old.contains("restic 0.14.0 has no --retry-lock (0.16 added it): run them under `locksmith run --wait 4m`")
                && !old.contains("give them --retry-lock"),
            "{old}"
        );
        assert!(advice(Some((0, 18, 1))).contains("give them --retry-lock 4m,"));
    }

    #[test]
    fn the_span_clips_the_blocked_time_and_short_holds_need_no_advice() {
        let s = summarise(&[life("a", true, 0, 30, false)], t(20), t(25));
        assert_eq!(s.exclusive_blocked_seconds, 5 * 60);
        assert!(
            summarise(&[life("a", true, 0, 0, false)], t(0), t(1))
                .advice
                .is_none()
        );
    }

    #[test]
    fn percentiles_by_nearest_rank_and_go_durations() {
        let v: Vec<i64> = (1..=20).collect();
        assert_eq!((nearest_rank(&v, 95), nearest_rank(&v[..1], 95)), (19, 1));
        assert_eq!(nearest_rank(&(1..=100).collect::<Vec<_>>(), 95), 95);
        let go: Vec<_> = [60, 2700, 7200, 5400, 5160, 3599].map(go_duration).into();
        assert_eq!(go, ["1m", "45m", "2h", "1h30m", "1h26m", "1h"]);
    }
}
