//! `restic_unlock.prom`, Prometheus text format: the five contract gauges first, then the
//! lock gauges (only when the locks could be read).

use std::fmt::Write;

use crate::report::Report;

/// Label values escape `\`, `"` and newlines.
pub fn escape_label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

pub struct RunMetrics {
    pub hostname: String,
    pub exit_code: i32,
    pub duration_seconds: u64,
    pub started_epoch: i64,
    pub finished_epoch: i64,
}

fn gauge(out: &mut String, name: &str, help: &str, samples: &[(String, String)]) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} gauge");
    for (labels, value) in samples {
        let _ = writeln!(out, "{name}{{{labels}}} {value}");
    }
}

/// `locks`: the state after the run (for a dry run, as found).
pub fn render(run: &RunMetrics, locks: Option<&Report>) -> String {
    let host = format!("hostname=\"{}\"", escape_label(&run.hostname));
    let one = |v: String| vec![(host.clone(), v)];
    let mut out = String::new();
    gauge(
        &mut out,
        "restic_unlock_last_exit_code",
        "Exit code of the last unlock run.",
        &one(run.exit_code.to_string()),
    );
    gauge(
        &mut out,
        "restic_unlock_last_success",
        "1 when the last unlock run exited 0, else 0.",
        &one(u8::from(run.exit_code == 0).to_string()),
    );
    gauge(
        &mut out,
        "restic_unlock_last_duration_seconds",
        "Duration of the last unlock run in seconds.",
        &one(run.duration_seconds.to_string()),
    );
    gauge(
        &mut out,
        "restic_unlock_last_started_timestamp",
        "Start of the last unlock run, in seconds since the epoch.",
        &one(run.started_epoch.to_string()),
    );
    gauge(
        &mut out,
        "restic_unlock_last_finished_timestamp",
        "End of the last unlock run, in seconds since the epoch.",
        &one(run.finished_epoch.to_string()),
    );
    if let Some(r) = locks {
        let c = &r.counts;
        gauge(
            &mut out,
            "restic_unlock_locks",
            "Readable locks in the repository after the last unlock run, by kind.",
            &[
                (
                    format!("{host},kind=\"exclusive\""),
                    c.exclusive.to_string(),
                ),
                (
                    format!("{host},kind=\"non_exclusive\""),
                    c.non_exclusive.to_string(),
                ),
            ],
        );
        gauge(
            &mut out,
            "restic_unlock_locks_stale",
            "Stale locks (holder gone, or another host's lock past 30 minutes) after the last unlock run.",
            &one(c.stale.to_string()),
        );
        gauge(
            &mut out,
            "restic_unlock_locks_unsafe",
            "Locks that restic unlock would remove although their holder is alive, after the last unlock run.",
            &one(c.unsafe_.to_string()),
        );
        gauge(
            &mut out,
            "restic_unlock_locks_unreadable",
            "Entries of locks/ that could not be decoded, after the last unlock run.",
            &one(c.unreadable.to_string()),
        );
        let oldest = r
            .locks
            .iter()
            .map(|l| l.verdict.age_seconds.max(0))
            .max()
            .unwrap_or(0);
        gauge(
            &mut out,
            "restic_unlock_oldest_lock_age_seconds",
            "Seconds since the oldest lock was last refreshed (0 when there is none), after the last unlock run.",
            &one(oldest.to_string()),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn five_gauges_first_with_escaped_hostname() {
        let m = RunMetrics {
            hostname: "a\"b\\c\nd".into(),
            exit_code: 3,
            duration_seconds: 2,
            started_epoch: 10,
            finished_epoch: 12,
        };
        let s = render(&m, None);
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
}
