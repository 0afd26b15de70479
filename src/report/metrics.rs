//! The one Prometheus exposition (text format): `/metrics` and `locks --textfile` (one
//! `repository` label on every series), and unlock's `restic_unlock.prom` (the contract's
//! five gauges first). Every `# HELP`/`# TYPE` line is written by [`write`].
//!
//! `restic_locks_total` and `restic_stale_locks_total` keep the names the restic exporters
//! use, so dashboards built on them keep working.

use std::fmt::{Display, Write};

use super::{Report, Status};

/// Per-lock series kept per repository (oldest first); the rest are counted.
pub const LOCK_SERIES_CAP: usize = 50;

/// Label values escape `\`, `"` and newlines.
pub fn escape_label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn label(k: &str, v: &str) -> String {
    format!("{k}=\"{}\"", escape_label(v))
}

/// A family's name, type and help.
type Declared = (&'static str, &'static str, &'static str);

/// Families in the order they are written; each with its samples (labels, value).
struct Exposition {
    families: Vec<(Declared, Vec<(String, String)>)>,
}

impl Exposition {
    fn of(declared: &[Declared]) -> Exposition {
        Exposition {
            families: declared.iter().map(|d| (*d, Vec::new())).collect(),
        }
    }

    fn add(&mut self, name: &str, labels: String, value: impl Display) {
        let (_, samples) = self
            .families
            .iter_mut()
            .find(|((n, _, _), _)| *n == name)
            .unwrap_or_else(|| panic!("metric family {name} is not declared"));
        samples.push((labels, value.to_string()));
    }

    /// The text: a family without samples is left out (its series are absent, not zero).
    fn write(&self) -> String {
        let mut out = String::new();
        for ((name, kind, help), samples) in &self.families {
            if samples.is_empty() {
                continue;
            }
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} {kind}");
            for (labels, value) in samples {
                if labels.is_empty() {
                    let _ = writeln!(out, "{name} {value}");
                } else {
                    let _ = writeln!(out, "{name}{{{labels}}} {value}");
                }
            }
        }
        out
    }
}

const REPOSITORY_FAMILIES: &[Declared] = &[
    // The exporters' names; `untyped` because promtool's lint keeps `_total` for counters,
    // and these are levels, not counts of events.
    (
        "restic_locks_total",
        "untyped",
        "Locks in the repository that decode (the name restic exporters use).",
    ),
    (
        "restic_stale_locks_total",
        "untyped",
        "Locks restic unlock would remove now, run on this host.",
    ),
    ("locksmith_locks", "gauge", "Decoded locks by kind."),
    (
        "locksmith_locks_stale",
        "gauge",
        "Locks stale by locksmith's rule (holder gone, or another host's lock past 30 minutes).",
    ),
    (
        "locksmith_locks_unsafe",
        "gauge",
        "Locks restic unlock would remove although their holder is alive, or whose removal probe would signal a live process.",
    ),
    ("locksmith_locks_abandoned", "gauge", ABANDONED_HELP),
    (
        "locksmith_locks_unreadable",
        "gauge",
        "Entries of locks/ that do not decode; from restic 0.15 each blocks every locking command.",
    ),
    (
        "locksmith_locks_ignored",
        "gauge",
        "Entries of locks/ that are not lock files (temporary uploads, empty files).",
    ),
    (
        "locksmith_oldest_lock_age_seconds",
        "gauge",
        "Seconds since the oldest lock was last refreshed (0 when there is none).",
    ),
    (
        "locksmith_lock_info",
        "gauge",
        "1 for each lock file, oldest first, at most 50 per repository; its labels never change.",
    ),
    (
        "locksmith_lock_timestamp_seconds",
        "gauge",
        "When each lock was written (restic's time field), in seconds since the epoch.",
    ),
    (
        "locksmith_lock_stale",
        "gauge",
        "1 when the lock is stale by locksmith's rule, else 0.",
    ),
    (
        "locksmith_lock_unsafe",
        "gauge",
        "1 when removing the lock with restic unlock (or its probe) would hit a live process, else 0.",
    ),
    (
        "locksmith_lock_series_omitted",
        "gauge",
        "Locks left out of the per-lock series by their cap.",
    ),
    (
        "locksmith_holder_since_timestamp_seconds",
        "gauge",
        "Since when each job (host, user, PID, kind) has held its lock across restic's lock replacements, in seconds since the epoch; at most 50 per repository.",
    ),
    (
        "locksmith_holder_series_omitted",
        "gauge",
        "Holders left out of locksmith_holder_since_timestamp_seconds by its cap.",
    ),
    (
        "locksmith_exclusive_held",
        "gauge",
        "1 while an exclusive lock is held (prune, forget, check … running or died), else 0.",
    ),
    (
        "locksmith_exclusive_held_seconds_total",
        "counter",
        "Seconds an exclusive lock was held, over the readings of this serve process.",
    ),
    (
        "locksmith_refresh_success",
        "gauge",
        "1 when the last refresh read the whole repository, else 0.",
    ),
    (
        "locksmith_refresh_timestamp_seconds",
        "gauge",
        "When the repository was last read successfully, in seconds since the epoch.",
    ),
    (
        "locksmith_refresh_duration_seconds",
        "gauge",
        "How long the last refresh took.",
    ),
    (
        "locksmith_refresh_failures_total",
        "counter",
        "Refreshes that failed.",
    ),
    (
        "locksmith_key_derivations_total",
        "counter",
        "Times the repository key was derived from the password (scrypt).",
    ),
    (
        "locksmith_lock_files_read_total",
        "counter",
        "Lock files read from the backend.",
    ),
    (
        "locksmith_peer_up",
        "gauge",
        "1 when the agent of a host holding locks answered at the last refresh, 0 when it could not tell (its locks are then judged by age alone).",
    ),
    (
        "locksmith_peer_clock_offset_seconds",
        "gauge",
        "The host's clock minus this host's, measured at the last refresh; restic's 30-minute rule here is off by as much for its locks.",
    ),
    (
        "locksmith_history_write_failures_total",
        "counter",
        "Refreshes serve could not record in its history (the state directory full or unwritable).",
    ),
    (
        "locksmith_history_set_aside_total",
        "counter",
        "Damaged history databases serve moved aside at start (history.sqlite.damaged-TIME) to start afresh.",
    ),
    (
        "locksmith_build_info",
        "gauge",
        "1, labelled with the version of locksmith that wrote these series.",
    ),
    (
        "locksmith_http_connections",
        "gauge",
        "Connections open to serve's listener.",
    ),
    (
        "locksmith_http_connections_max",
        "gauge",
        "Connections serve's listener holds at most (--max-connections).",
    ),
    (
        "process_start_time_seconds",
        "gauge",
        "Start time of the process since unix epoch in seconds.",
    ),
    (
        "process_cpu_seconds_total",
        "counter",
        "Total user and system CPU time spent in seconds.",
    ),
    (
        "process_resident_memory_bytes",
        "gauge",
        "Resident memory size in bytes.",
    ),
    (
        "process_virtual_memory_bytes",
        "gauge",
        "Virtual memory size in bytes.",
    ),
    (
        "process_open_fds",
        "gauge",
        "Number of open file descriptors.",
    ),
    (
        "process_max_fds",
        "gauge",
        "Maximum number of open file descriptors.",
    ),
];

/// serve's own state, for its own series (absent from one-shot textfiles).
#[derive(Debug, Clone, Copy)]
pub struct Serving {
    /// Connections open to the listener, and the most it holds.
    pub open: usize,
    pub max: usize,
    pub usage: Option<crate::process::Usage>,
    /// Damaged history databases set aside at start (`None`: no history kept).
    pub set_aside: Option<u64>,
}

/// The unit test ties these words to `verdict::ABANDONED_AFTER`, so the help cannot drift from it.
const ABANDONED_HELP: &str = "Locks not refreshed for over 10 minutes (two missed refreshes): their holder has almost surely stopped.";

/// The exposition for every repository, families in a fixed order; `serving`: serve's.
pub fn repositories(statuses: &[Status], serving: Option<Serving>) -> String {
    let mut x = Exposition::of(REPOSITORY_FAMILIES);
    let version = label("version", env!("CARGO_PKG_VERSION"));
    x.add("locksmith_build_info", version, 1);
    if let Some(s) = serving {
        serving_samples(&mut x, s);
    }
    for s in statuses {
        let repo = label("repository", &s.name);
        refresh_samples(&mut x, &repo, s);
        // A repository never read has no inventory: its gauges are absent, not zero.
        if let Some(r) = &s.report {
            count_samples(&mut x, &repo, r);
            lock_samples(&mut x, &repo, r);
            holder_samples(&mut x, &repo, r);
            peer_samples(&mut x, &repo, r);
        }
        if let Some(held) = s.exclusive_held_seconds {
            let name = "locksmith_exclusive_held_seconds_total";
            x.add(name, repo.clone(), format!("{held:.3}"));
        }
    }
    x.write()
}

fn serving_samples(x: &mut Exposition, s: Serving) {
    x.add("locksmith_http_connections", String::new(), s.open);
    x.add("locksmith_http_connections_max", String::new(), s.max);
    if let Some(n) = s.set_aside {
        x.add("locksmith_history_set_aside_total", String::new(), n);
    }
    if let Some(u) = s.usage {
        let none = String::new;
        x.add(
            "process_start_time_seconds",
            none(),
            format!("{:.2}", u.start_time_seconds),
        );
        x.add(
            "process_cpu_seconds_total",
            none(),
            format!("{:.2}", u.cpu_seconds),
        );
        x.add(
            "process_resident_memory_bytes",
            none(),
            u.resident_memory_bytes,
        );
        x.add(
            "process_virtual_memory_bytes",
            none(),
            u.virtual_memory_bytes,
        );
        x.add("process_open_fds", none(), u.open_fds);
        x.add("process_max_fds", none(), u.max_fds);
    }
}

fn refresh_samples(x: &mut Exposition, repo: &str, s: &Status) {
    x.add("locksmith_refresh_success", repo.into(), u8::from(s.ok()));
    if let Some(t) = s.refreshed_at {
        x.add(
            "locksmith_refresh_timestamp_seconds",
            repo.into(),
            t.timestamp(),
        );
    }
    if let Some(d) = s.duration {
        x.add(
            "locksmith_refresh_duration_seconds",
            repo.into(),
            format!("{d:.6}"),
        );
    }
    x.add(
        "locksmith_refresh_failures_total",
        repo.into(),
        s.costs.failures,
    );
    x.add(
        "locksmith_key_derivations_total",
        repo.into(),
        s.costs.key_derivations,
    );
    x.add(
        "locksmith_lock_files_read_total",
        repo.into(),
        s.costs.lock_files_read,
    );
    if let Some(n) = s.history_failures {
        x.add("locksmith_history_write_failures_total", repo.into(), n);
    }
}

fn count_samples(x: &mut Exposition, repo: &str, r: &Report) {
    let c = &r.counts;
    x.add("restic_locks_total", repo.into(), c.total);
    x.add(
        "restic_stale_locks_total",
        repo.into(),
        c.restic_unlock_removes,
    );
    by_kind(x, "locksmith_locks", repo, r);
    x.add("locksmith_locks_stale", repo.into(), c.stale);
    x.add("locksmith_locks_unsafe", repo.into(), c.unsafe_);
    let abandoned = r.locks.iter().filter(|l| l.verdict.abandoned).count();
    x.add("locksmith_locks_abandoned", repo.into(), abandoned);
    x.add("locksmith_locks_unreadable", repo.into(), c.unreadable);
    x.add("locksmith_locks_ignored", repo.into(), c.ignored);
    x.add(
        "locksmith_oldest_lock_age_seconds",
        repo.into(),
        oldest_age(r),
    );
}

/// One sample per kind of lock, under `labels` and `kind`.
fn by_kind(x: &mut Exposition, name: &str, labels: &str, r: &Report) {
    let c = &r.counts;
    for (exclusive, n) in [(true, c.exclusive), (false, c.non_exclusive)] {
        let kind = label("kind", kind_of(exclusive));
        x.add(name, format!("{labels},{kind}"), n);
    }
}

fn oldest_age(r: &Report) -> i64 {
    r.locks
        .iter()
        .map(|l| l.verdict.age_seconds.max(0))
        .max()
        .unwrap_or(0)
}

fn kind_of(exclusive: bool) -> &'static str {
    if exclusive {
        "exclusive"
    } else {
        "non_exclusive"
    }
}

/// Per lock, series whose labels never change: what the lock is (`locksmith_lock_info`)
/// apart from what is judged of it (a verdict changes its value, not its series).
fn lock_samples(x: &mut Exposition, repo: &str, r: &Report) {
    for l in r.locks.iter().take(LOCK_SERIES_CAP) {
        let id = format!("{repo},{}", label("id", &l.id));
        let info = [
            label("kind", kind_of(l.exclusive)),
            label("hostname", &l.hostname),
            label("username", &l.username),
            label("pid", &l.pid.to_string()),
        ];
        x.add("locksmith_lock_info", format!("{id},{}", info.join(",")), 1);
        let at = l.at.timestamp_millis() as f64 / 1000.0;
        x.add(
            "locksmith_lock_timestamp_seconds",
            id.clone(),
            format!("{at:.3}"),
        );
        x.add(
            "locksmith_lock_stale",
            id.clone(),
            u8::from(l.verdict.stale),
        );
        x.add("locksmith_lock_unsafe", id, u8::from(l.verdict.unsafe_));
    }
    let left_out = r.locks.len().saturating_sub(LOCK_SERIES_CAP);
    x.add("locksmith_lock_series_omitted", repo.into(), left_out);
}

/// Per peer asked (a host holding locks): whether it answered, and its clock's offset.
fn peer_samples(x: &mut Exposition, repo: &str, r: &Report) {
    for p in &r.peers {
        let labels = format!("{repo},{}", label("hostname", &p.hostname));
        x.add("locksmith_peer_up", labels.clone(), u8::from(p.ok));
        if let Some(off) = p.clock_offset_seconds {
            x.add(
                "locksmith_peer_clock_offset_seconds",
                labels,
                format!("{off:.3}"),
            );
        }
    }
}

/// Per job, since when it has held its lock. An earlier job of the same host, user and PID
/// (its lock predates the live process) is left out: its labels are the live job's.
fn holder_samples(x: &mut Exposition, repo: &str, r: &Report) {
    let exclusive = r.holders.iter().any(|h| h.span.key.exclusive);
    x.add("locksmith_exclusive_held", repo.into(), u8::from(exclusive));
    let current = r.holders.iter().filter(|h| !h.span.key.earlier);
    let mut shown = 0;
    for h in current.clone().take(LOCK_SERIES_CAP) {
        let labels = [
            label("hostname", &h.span.key.hostname),
            label("username", &h.span.key.username),
            label("pid", &h.span.key.pid.to_string()),
            label("kind", kind_of(h.span.key.exclusive)),
        ];
        let name = "locksmith_holder_since_timestamp_seconds";
        x.add(
            name,
            format!("{repo},{}", labels.join(",")),
            h.span.held_since.timestamp(),
        );
        shown += 1;
    }
    let left_out = current.count() - shown;
    x.add("locksmith_holder_series_omitted", repo.into(), left_out);
}

/// How the last unlock run ended, for `restic_unlock.prom`.
pub struct RunMetrics {
    pub hostname: String,
    pub exit_code: i32,
    pub duration_seconds: u64,
    pub started_epoch: i64,
    pub finished_epoch: i64,
}

/// The contract's five gauges, in its order; then the lock gauges after the run.
const UNLOCK_FAMILIES: &[Declared] = &[
    (
        "restic_unlock_last_exit_code",
        "gauge",
        "Exit code of the last unlock run.",
    ),
    (
        "restic_unlock_last_success",
        "gauge",
        "1 when the last unlock run exited 0, else 0.",
    ),
    (
        "restic_unlock_last_duration_seconds",
        "gauge",
        "Duration of the last unlock run in seconds.",
    ),
    (
        "restic_unlock_last_started_timestamp",
        "gauge",
        "Start of the last unlock run, in seconds since the epoch.",
    ),
    (
        "restic_unlock_last_finished_timestamp",
        "gauge",
        "End of the last unlock run, in seconds since the epoch.",
    ),
    (
        "restic_unlock_locks",
        "gauge",
        "Readable locks in the repository after the last unlock run, by kind.",
    ),
    (
        "restic_unlock_locks_stale",
        "gauge",
        "Stale locks (holder gone, or another host's lock past 30 minutes) after the last unlock run.",
    ),
    (
        "restic_unlock_locks_unsafe",
        "gauge",
        "Locks that restic unlock would remove although their holder is alive, after the last unlock run.",
    ),
    (
        "restic_unlock_locks_unreadable",
        "gauge",
        "Entries of locks/ that could not be decoded, after the last unlock run.",
    ),
    (
        "restic_unlock_oldest_lock_age_seconds",
        "gauge",
        "Seconds since the oldest lock was last refreshed (0 when there is none), after the last unlock run.",
    ),
];

/// `restic_unlock.prom`; `locks`: the state after the run (for a dry run, as found), when
/// it could be read.
pub fn unlock_run(run: &RunMetrics, locks: Option<&Report>) -> String {
    let host = label("hostname", &run.hostname);
    let mut x = Exposition::of(UNLOCK_FAMILIES);
    x.add("restic_unlock_last_exit_code", host.clone(), run.exit_code);
    x.add(
        "restic_unlock_last_success",
        host.clone(),
        u8::from(run.exit_code == 0),
    );
    x.add(
        "restic_unlock_last_duration_seconds",
        host.clone(),
        run.duration_seconds,
    );
    x.add(
        "restic_unlock_last_started_timestamp",
        host.clone(),
        run.started_epoch,
    );
    x.add(
        "restic_unlock_last_finished_timestamp",
        host.clone(),
        run.finished_epoch,
    );
    if let Some(r) = locks {
        let c = &r.counts;
        by_kind(&mut x, "restic_unlock_locks", &host, r);
        x.add("restic_unlock_locks_stale", host.clone(), c.stale);
        x.add("restic_unlock_locks_unsafe", host.clone(), c.unsafe_);
        x.add("restic_unlock_locks_unreadable", host.clone(), c.unreadable);
        x.add("restic_unlock_oldest_lock_age_seconds", host, oldest_age(r));
    }
    x.write()
}

/// How a `locksmith run` ended, for its `--textfile`.
pub struct JobMetrics {
    pub hostname: String,
    /// The repository, masked.
    pub repository: String,
    /// The restic command (`backup`, `prune`, …).
    pub command: String,
    pub exit_code: i32,
    pub waited_seconds: u64,
    pub recovered: usize,
    pub waited_out: bool,
    pub finished_epoch: i64,
}

const JOB_FAMILIES: &[Declared] = &[
    (
        "locksmith_run_last_exit_code",
        "gauge",
        "Exit code of the last locksmith run: restic's own when it ran, 21 when the wait ran out.",
    ),
    (
        "locksmith_run_last_waited_seconds",
        "gauge",
        "Seconds the last locksmith run waited for the locks in its way.",
    ),
    (
        "locksmith_run_last_recovered_locks",
        "gauge",
        "Proven-dead holders' locks the last locksmith run had removed through the audited unlock.",
    ),
    (
        "locksmith_run_last_waited_out",
        "gauge",
        "1 when the last locksmith run's wait ran out and restic did not run, else 0.",
    ),
    (
        "locksmith_run_last_finished_timestamp",
        "gauge",
        "End of the last locksmith run, in seconds since the epoch.",
    ),
];

/// `locksmith run --textfile`: one job's last run, labelled by host, repository and
/// command, so that jobs on one host keep files (and series) of their own.
pub fn job_run(m: &JobMetrics) -> String {
    let labels = [
        label("hostname", &m.hostname),
        label("repository", &m.repository),
        label("command", &m.command),
    ]
    .join(",");
    let mut x = Exposition::of(JOB_FAMILIES);
    x.add("locksmith_run_last_exit_code", labels.clone(), m.exit_code);
    x.add(
        "locksmith_run_last_waited_seconds",
        labels.clone(),
        m.waited_seconds,
    );
    x.add(
        "locksmith_run_last_recovered_locks",
        labels.clone(),
        m.recovered,
    );
    x.add(
        "locksmith_run_last_waited_out",
        labels.clone(),
        u8::from(m.waited_out),
    );
    x.add(
        "locksmith_run_last_finished_timestamp",
        labels,
        m.finished_epoch,
    );
    x.write()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verdict::ABANDONED_AFTER;

    #[test]
    fn five_gauges_first_with_escaped_hostname() {
        let m = RunMetrics {
            hostname: "a\"b\\c\nd".into(),
            exit_code: 3,
            duration_seconds: 2,
            started_epoch: 10,
            finished_epoch: 12,
        };
        let s = unlock_run(&m, None);
        let names: Vec<&str> = s
            .lines()
            .filter(|l| !l.starts_with('#'))
            .map(|l| &l[..l.find('{').unwrap()])
            .collect();
        assert_eq!(
            names,
            [
                "restic_unlock_last_exit_code",
                "restic_unlock_last_success",
                "restic_unlock_last_duration_seconds",
                "restic_unlock_last_started_timestamp",
                "restic_unlock_last_finished_timestamp"
            ]
        );
        assert!(s.contains("restic_unlock_last_exit_code{hostname=\"a\\\"b\\\\c\\nd\"} 3\n"));
        assert!(s.contains("restic_unlock_last_success{hostname=\"a\\\"b\\\\c\\nd\"} 0\n"));
    }

    /// The help states the rule's own threshold.
    #[test]
    fn abandoned_help_names_the_rule() {
        let minutes = ABANDONED_AFTER.num_minutes();
        assert!(
            ABANDONED_HELP.contains(&format!("over {minutes} minutes")),
            "{ABANDONED_HELP}"
        );
    }

    #[test]
    fn a_never_read_repository_has_no_gauges_and_is_not_a_success() {
        let s = Status {
            name: "r".into(),
            ..Status::default()
        };
        let text = repositories(&[s], None);
        assert!(
            text.contains("locksmith_refresh_success{repository=\"r\"} 0\n"),
            "{text}"
        );
        assert!(!text.contains("restic_locks_total"), "{text}");
    }
}
