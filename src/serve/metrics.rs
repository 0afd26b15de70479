//! `/metrics` (and `locks --textfile`): Prometheus text format, one `repository` label on
//! every series. `restic_locks_total` and `restic_stale_locks_total` keep the names the
//! exporters already use, so dashboards built on them keep working.

use std::fmt::Write;

use crate::audit::metrics::escape_label;
use crate::serve::Status;

/// Per-lock series kept per repository (oldest first); the rest are counted.
pub const LOCK_SERIES_CAP: usize = 50;

struct Family {
    name: &'static str,
    kind: &'static str,
    help: &'static str,
    samples: Vec<(String, String)>,
}

fn family(name: &'static str, kind: &'static str, help: &'static str) -> Family {
    Family {
        name,
        kind,
        help,
        samples: Vec::new(),
    }
}

fn label(k: &str, v: &str) -> String {
    format!("{k}=\"{}\"", escape_label(v))
}

/// The exposition for every repository, families in a fixed order.
pub fn render(statuses: &[Status]) -> String {
    use Family as F;
    let mut locks_total = family(
        "restic_locks_total",
        // The exporters' name; `untyped` because promtool's lint keeps `_total` for
        // counters, and this is a level, not a count of events.
        "untyped",
        "Locks in the repository that decode (the name restic exporters use).",
    );
    let mut stale_total = family(
        "restic_stale_locks_total",
        "untyped",
        "Locks restic unlock would remove now, run on this host.",
    );
    let mut by_kind = family("locksmith_locks", "gauge", "Decoded locks by kind.");
    let mut stale = family(
        "locksmith_locks_stale",
        "gauge",
        "Locks stale by locksmith's rule (holder gone, or another host's lock past 30 minutes).",
    );
    let mut unsafe_ = family(
        "locksmith_locks_unsafe",
        "gauge",
        "Locks restic unlock would remove although their holder is alive, or whose removal probe would signal a live process.",
    );
    let mut abandoned = family(
        "locksmith_locks_abandoned",
        "gauge",
        "Locks not refreshed for over 30 minutes: their holder no longer refreshes them.",
    );
    let mut unreadable = family(
        "locksmith_locks_unreadable",
        "gauge",
        "Entries of locks/ that do not decode; from restic 0.15 each blocks every locking command.",
    );
    let mut ignored = family(
        "locksmith_locks_ignored",
        "gauge",
        "Entries of locks/ that are not lock files (temporary uploads, empty files).",
    );
    let mut oldest = family(
        "locksmith_oldest_lock_age_seconds",
        "gauge",
        "Seconds since the oldest lock was last refreshed (0 when there is none).",
    );
    let mut per_lock = family(
        "locksmith_lock_age_seconds",
        "gauge",
        "Seconds since each lock was last refreshed, oldest first, at most 50 per repository.",
    );
    let mut omitted = family(
        "locksmith_lock_series_omitted",
        "gauge",
        "Locks left out of locksmith_lock_age_seconds by its cap.",
    );
    let mut success = family(
        "locksmith_refresh_success",
        "gauge",
        "1 when the last refresh read the repository, else 0.",
    );
    let mut at = family(
        "locksmith_refresh_timestamp_seconds",
        "gauge",
        "When the repository was last read successfully, in seconds since the epoch.",
    );
    let mut took = family(
        "locksmith_refresh_duration_seconds",
        "gauge",
        "How long the last refresh took.",
    );
    let mut derivations = family(
        "locksmith_key_derivations_total",
        "counter",
        "Times the repository key was derived from the password (scrypt).",
    );
    let mut files_read = family(
        "locksmith_lock_files_read_total",
        "counter",
        "Lock files read from the backend.",
    );
    for s in statuses {
        let repo = label("repository", &s.name);
        let one = |f: &mut F, v: String| f.samples.push((repo.clone(), v));
        // Not read yet is not a success.
        let ok = s.error.is_none() && s.refreshed_at.is_some();
        one(&mut success, u8::from(ok).to_string());
        if let Some(t) = s.refreshed_at {
            one(&mut at, t.timestamp().to_string());
        }
        if let Some(d) = s.duration {
            one(&mut took, format!("{d:.6}"));
        }
        one(&mut derivations, s.costs.key_derivations.to_string());
        one(&mut files_read, s.costs.lock_files_read.to_string());
        // A repository never read has no inventory: its gauges are absent, not zero.
        let Some(r) = &s.report else { continue };
        let c = &r.counts;
        one(&mut locks_total, c.total.to_string());
        one(&mut stale_total, c.restic_unlock_removes.to_string());
        for (kind, n) in [
            ("exclusive", c.exclusive),
            ("non_exclusive", c.non_exclusive),
        ] {
            by_kind
                .samples
                .push((format!("{repo},{}", label("kind", kind)), n.to_string()));
        }
        one(&mut stale, c.stale.to_string());
        one(&mut unsafe_, c.unsafe_.to_string());
        let n_abandoned = r.locks.iter().filter(|l| l.verdict.abandoned).count();
        one(&mut abandoned, n_abandoned.to_string());
        one(&mut unreadable, c.unreadable.to_string());
        one(&mut ignored, c.ignored.to_string());
        let age = r.locks.iter().map(|l| l.verdict.age_seconds.max(0)).max();
        one(&mut oldest, age.unwrap_or(0).to_string());
        for l in r.locks.iter().take(LOCK_SERIES_CAP) {
            let v = &l.verdict;
            let labels = [
                label("id", &l.id),
                label(
                    "kind",
                    if l.exclusive {
                        "exclusive"
                    } else {
                        "non_exclusive"
                    },
                ),
                label("hostname", &l.hostname),
                label("username", &l.username),
                label("pid", &l.pid.to_string()),
                label("holder", v.holder.as_str()),
                label("stale", if v.stale { "true" } else { "false" }),
                label("unsafe", if v.unsafe_ { "true" } else { "false" }),
            ];
            per_lock.samples.push((
                format!("{repo},{}", labels.join(",")),
                v.age_seconds.max(0).to_string(),
            ));
        }
        let left_out = r.locks.len().saturating_sub(LOCK_SERIES_CAP);
        one(&mut omitted, left_out.to_string());
    }
    let mut out = String::new();
    for f in [
        locks_total,
        stale_total,
        by_kind,
        stale,
        unsafe_,
        abandoned,
        unreadable,
        ignored,
        oldest,
        per_lock,
        omitted,
        success,
        at,
        took,
        derivations,
        files_read,
    ] {
        if f.samples.is_empty() {
            continue;
        }
        let _ = writeln!(out, "# HELP {} {}", f.name, f.help);
        let _ = writeln!(out, "# TYPE {} {}", f.name, f.kind);
        for (labels, value) in f.samples {
            let _ = writeln!(out, "{}{{{labels}}} {value}", f.name);
        }
    }
    out
}
