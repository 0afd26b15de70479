//! Holders: the jobs behind the lock files. restic replaces its lock file at every
//! refresh (a new ID, the age back to 0), so a job that runs for hours is a string of
//! files; an operator asks about the job. A holder is one repository's (host, user, PID,
//! kind). A lock written before the process now holding its PID started is an earlier
//! job's: a holder of its own, not the live one's.
//!
//! [`group`] is pure; [`super::Memory`] carries holders from one reading to the next.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::JudgedLock;
use super::lives::{Span, Worst};
use crate::peer::Consulted;
use crate::process::HostView;
use crate::verdict::Holder;
pub(super) use crate::verdict::{ser_opt_time, ser_time};

/// What makes two lock files one job's.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct HolderKey {
    pub hostname: String,
    pub username: String,
    pub pid: i64,
    pub exclusive: bool,
    /// Written before the live process with this PID started: an earlier job.
    #[serde(skip)]
    pub earlier: bool,
}

/// A lock's [`HolderKey`], borrowed: grouping clones a key once per holder, not per lock.
fn key_of(l: &JudgedLock) -> (&str, &str, i64, bool, bool) {
    (
        &l.hostname,
        &l.username,
        l.pid,
        l.exclusive,
        l.verdict.holder == Holder::Reused,
    )
}

/// One job and its verdict: the verdict of its newest lock (its latest sign of life),
/// unsafe when any of its locks is.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JudgedHolder {
    /// Its key and span, as the history shows a job.
    #[serde(flatten)]
    pub span: Span,
    /// Its lock files now, oldest first.
    pub lock_ids: Vec<String>,
    pub holder: Holder,
    pub stale: bool,
    #[serde(rename = "unsafe")]
    pub unsafe_: bool,
    pub restic_unlock_removes: bool,
    pub abandoned: bool,
    /// Seconds since its newest lock was written.
    pub age_seconds: i64,
    pub reason: String,
    /// As the newest lock's: the host whose view decided `holder`.
    #[serde(default)]
    pub judged_on: Option<String>,
    #[serde(default)]
    pub peer_error: Option<String>,
}

/// Longest held first; ties by key.
pub(super) fn sort(holders: &mut [JudgedHolder]) {
    holders.sort_by(|a, b| {
        a.span
            .held_since
            .cmp(&b.span.held_since)
            .then(a.span.key.cmp(&b.span.key))
    });
}

/// The holders of `locks` (oldest first, as a report keeps them), longest held first.
/// `host` tells the start time of this host's live holders.
pub fn group(
    locks: &[JudgedLock],
    now: DateTime<Utc>,
    host: &dyn HostView,
    peers: &Consulted,
) -> Vec<JudgedHolder> {
    let mut sorted: Vec<&JudgedLock> = locks.iter().collect();
    // Stable: each holder's locks stay oldest first.
    sorted.sort_by(|a, b| key_of(a).cmp(&key_of(b)));
    let mut holders: Vec<JudgedHolder> = sorted
        .chunk_by(|a, b| key_of(a) == key_of(b))
        .map(|ls| judged(ls, now, host, peers))
        .collect();
    sort(&mut holders);
    holders
}

/// `ls`: one holder's locks, oldest first (never empty).
fn judged(
    ls: &[&JudgedLock],
    now: DateTime<Utc>,
    host: &dyn HostView,
    peers: &Consulted,
) -> JudgedHolder {
    let newest = ls.last().expect("a holder has a lock");
    let (hostname, username, pid, exclusive, earlier) = key_of(newest);
    let key = HolderKey {
        hostname: hostname.to_string(),
        username: username.to_string(),
        pid,
        exclusive,
        earlier,
    };
    let deciding = ls.iter().find(|l| l.verdict.unsafe_).unwrap_or(newest);
    let v = &newest.verdict;
    let oldest = ls.first().expect("a holder has a lock").at;
    // restic takes its lock as it starts: a live holder has held it since its start (as
    // its own host tells it).
    let its_host: Option<&dyn HostView> = if newest.hostname == host.hostname() {
        Some(host)
    } else {
        match peers.of(&newest.hostname) {
            crate::peer::Answering::View(v) if v.answer.hostname == newest.hostname => {
                Some(v as &dyn HostView)
            }
            _ => None,
        }
    };
    // Only where the PID means the holder there: not for one found in another PID
    // namespace (the PID here may be a stranger's).
    let started = its_host
        .filter(|_| v.holder == Holder::Alive && v.namespace.is_none())
        .and_then(|h| h.started(i32::try_from(pid).ok()?));
    let mut h = JudgedHolder {
        span: Span {
            key,
            held_since: started.map_or(oldest, |s| s.min(oldest)),
            first_seen: now,
            last_seen: now,
            ended_at: None,
            ended: None,
            worst: None,
        },
        lock_ids: ls.iter().map(|l| l.id.clone()).collect(),
        holder: v.holder,
        stale: v.stale,
        unsafe_: ls.iter().any(|l| l.verdict.unsafe_),
        restic_unlock_removes: ls.iter().any(|l| l.verdict.restic_unlock_removes),
        abandoned: v.abandoned,
        age_seconds: v.age_seconds,
        reason: deciding.verdict.reason.clone(),
        judged_on: v.judged_on.clone(),
        peer_error: v.peer_error.clone(),
    };
    h.span.worst = Worst::of(&h);
    h
}

#[cfg(test)]
pub(crate) mod tests {
    use chrono::Duration;

    use super::*;
    use crate::locks::{Inventory, Lock, LockEntry};
    use crate::process::PidState;
    use crate::report::Report;

    /// This host ("here"): PID 100 alive since `t(-60)`, every other PID gone.
    pub(crate) struct Here;

    pub(crate) fn t(minutes: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000, 0).unwrap() + Duration::minutes(minutes)
    }

    impl HostView for Here {
        fn hostname(&self) -> &str {
            "here"
        }
        fn probe(&self, pid: i32) -> PidState {
            if pid == 100 {
                PidState::Signalable
            } else {
                PidState::Absent
            }
        }
        fn probe_group(&self, _: i32) -> PidState {
            PidState::Absent
        }
        fn started(&self, pid: i32) -> Option<DateTime<Utc>> {
            (pid == 100).then(|| t(-60))
        }
        fn command(&self, _: i32) -> Option<String> {
            Some("restic".into())
        }
    }

    pub(crate) fn lock(n: u8, minutes: i64, host: &str, pid: i64, exclusive: bool) -> LockEntry {
        LockEntry {
            id: format!("{n:02x}").repeat(32),
            lock: Lock {
                time: t(minutes).fixed_offset(),
                exclusive,
                hostname: host.into(),
                username: "root".into(),
                pid,
                uid: 0,
                gid: 0,
            },
            stored_at: None,
        }
    }

    pub(crate) fn report(now: i64, locks: Vec<LockEntry>) -> Report {
        let mut inv = Inventory {
            locks,
            ..Inventory::default()
        };
        inv.sort();
        Report::new("/r", "id", 2, inv, t(now), &Here)
    }

    /// (locks, holders as (host, pid, exclusive, held_since in minutes, lock count)).
    #[test]
    fn locks_group_into_holders() {
        type Case = (Vec<LockEntry>, Vec<(&'static str, i64, bool, i64, usize)>);
        let cases: Vec<Case> = vec![
            // Another host's job, two files (restic crashed between create and remove).
            (
                vec![lock(1, -10, "b", 7, false), lock(2, -5, "b", 7, false)],
                vec![("b", 7, false, -10, 2)],
            ),
            // Kind and PID apart.
            (
                vec![
                    lock(1, -10, "b", 7, true),
                    lock(2, -5, "b", 7, false),
                    lock(3, -1, "b", 8, false),
                ],
                vec![
                    ("b", 7, true, -10, 1),
                    ("b", 7, false, -5, 1),
                    ("b", 8, false, -1, 1),
                ],
            ),
            // A live holder here has held it since its process started.
            (
                vec![lock(1, -3, "here", 100, true)],
                vec![("here", 100, true, -60, 1)],
            ),
            // A lock older than the process now holding its PID: an earlier job of its own.
            (
                vec![
                    lock(1, -90, "here", 100, true),
                    lock(2, -3, "here", 100, true),
                ],
                vec![("here", 100, true, -90, 1), ("here", 100, true, -60, 1)],
            ),
            // A gone holder here: since its oldest lock.
            (
                vec![lock(1, -40, "here", 55, false)],
                vec![("here", 55, false, -40, 1)],
            ),
        ];
        for (locks, want) in cases {
            let r = report(0, locks);
            let got: Vec<_> = r
                .holders
                .iter()
                .map(|h| {
                    let since = (h.span.held_since - t(0)).num_minutes();
                    (
                        h.span.key.hostname.as_str(),
                        h.span.key.pid,
                        h.span.key.exclusive,
                        since,
                        h.lock_ids.len(),
                    )
                })
                .collect();
            assert_eq!(got, want);
        }
    }

    #[test]
    fn a_holder_takes_its_newest_locks_verdict_and_any_unsafe() {
        let r = report(
            0,
            vec![lock(1, -40, "b", 7, false), lock(2, -2, "b", 7, false)],
        );
        let h = &r.holders[0];
        assert!(r.locks[0].verdict.stale && !h.stale, "{h:?}");
        assert_eq!(h.age_seconds, 120);
        assert!(h.restic_unlock_removes, "its old file is removed by restic");
        let gone = report(0, vec![lock(1, -3, "here", 55, false)]);
        assert!(gone.holders[0].stale);
        assert_eq!(gone.holders[0].holder, Holder::Gone);
    }
}
